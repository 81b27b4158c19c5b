//! `cds-bench profile`: the in-process loops alone, for callgrind.

use crate::data::{county_entries, gen_points, read_counties};
use crate::heap::live_bytes;
use crate::process::memory_kb;
use crate::ProfileArgs;
use anyhow::{bail, Result};
use cds_registry::heap::release_free_heap;
use cds_registry::index::{Filter, SearchIndex};
use std::time::Instant;

pub(crate) fn profile(a: ProfileArgs) -> Result<()> {
    let counties = read_counties(&a.counties)?;
    let (entries, _) = county_entries(&counties)?;
    drop(counties);
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
            if a.mode == "single" {
                // One more pass, each call timed: the distribution behind the mean.
                let mut ns = crate::compare::inproc_single(&index, &points);
                ns.sort_unstable();
                let q = |f: f64| ns[((ns.len() - 1) as f64 * f) as usize];
                println!("single: p50 {} ns, p99 {} ns", q(0.5), q(0.99));
            }
        }
        "memory" => {
            // What the index adds to the geometry the entries already hold (the index
            // shares it): live heap bytes after the build minus before (exact), and the
            // resident bytes likewise, with freed heap returned to the system first on
            // both sides so only live memory counts.
            let vertices: usize = entries
                .iter()
                .filter_map(|e| e.territory.as_deref())
                .map(geo::CoordsIter::coords_count)
                .sum();
            release_free_heap();
            let (heap_before, rss_before) = (live_bytes(), memory_kb(std::process::id())?.1);
            let index = SearchIndex::build(entries);
            release_free_heap();
            let (heap_after, rss_after) = (live_bytes(), memory_kb(std::process::id())?.1);
            found = index.len();
            let mib = |b: f64| b / 1024.0 / 1024.0;
            let raw = vertices as f64 * 16.0;
            let added = heap_after.saturating_sub(heap_before) as f64;
            let rss_added = rss_after.saturating_sub(rss_before) as f64 * 1024.0;
            println!(
                "memory: {vertices} vertices, raw coordinates {:.1} MiB; geometry + entries before the build: {:.1} MiB live heap, {:.1} MiB RSS",
                mib(raw),
                mib(heap_before as f64),
                mib(rss_before as f64 * 1024.0),
            );
            println!(
                "memory: the index adds {:.1} MiB live heap ({:.1} bytes per vertex; geometry + index = {:.2}x raw), {:.1} MiB RSS",
                mib(added),
                added / vertices as f64,
                (added + raw) / raw,
                mib(rss_added),
            );
            std::hint::black_box(&index);
        }
        m => bail!("unknown mode {m:?}: single | batch | build | memory"),
    }
    println!(
        "{} in {:.3} s ({found} results)",
        a.mode,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
