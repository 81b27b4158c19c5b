//! `cds-bench profile`: the in-process loops alone, for callgrind.

use crate::data::{county_entries, gen_points, read_counties};
use crate::ProfileArgs;
use anyhow::{bail, Result};
use cds_registry::index::{Filter, SearchIndex};
use std::time::Instant;

pub(crate) fn profile(a: ProfileArgs) -> Result<()> {
    let counties = read_counties(&a.counties)?;
    let (entries, _) = county_entries(&counties)?;
    let points = gen_points(a.points, a.seed);
    let none = Filter::default();
    let t = Instant::now();
    let mut found = 0usize;
    match a.mode.as_str() {
        "build" => {
            for _ in 0..a.repeat {
                found += SearchIndex::build(entries.clone()).len();
            }
        }
        "single" | "batch" => {
            let index = SearchIndex::build(entries);
            let t = Instant::now();
            for _ in 0..a.repeat {
                if a.mode == "single" {
                    for &[lon, lat] in &points {
                        found += index.lookup(lon, lat, &none).len();
                    }
                } else {
                    found += index.lookup_batch_csr(&points, &none).hits.len();
                }
            }
            let per = t.elapsed().as_secs_f64() / (a.repeat * points.len()) as f64;
            println!("{}: {:.0} ns per point", a.mode, per * 1e9);
        }
        m => bail!("unknown mode {m:?}: single | batch | build"),
    }
    println!(
        "{} in {:.3} s ({found} results)",
        a.mode,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
