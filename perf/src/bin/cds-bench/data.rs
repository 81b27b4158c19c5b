//! The benchmark data: the counties GeoJSON, their index entries and shapes, and the points.

use anyhow::{anyhow, bail, Context, Result};
use cds_registry::index::IndexEntry;
use cds_testkit::data::county_index_entries;
use geo::MultiPolygon;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

pub(crate) fn read_counties(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text).context("counties GeoJSON")?;
    if v["features"].as_array().is_none_or(|f| f.is_empty()) {
        bail!("{}: no features", path.display());
    }
    Ok(v)
}

pub(crate) fn features(counties: &Value) -> &[Value] {
    counties["features"]
        .as_array()
        .map_or(&[], |v| v.as_slice())
}

pub(crate) fn feature_id(f: &Value) -> Result<String> {
    f["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("feature without a string id"))
}

/// County shapes by FIPS id.
pub(crate) type Shapes = HashMap<String, MultiPolygon<f64>>;

/// The counties as index entries, keyed by their numeric FIPS code, and their shapes.
pub(crate) fn county_entries(counties: &Value) -> Result<(Vec<IndexEntry>, Shapes)> {
    let entries = county_index_entries(counties)?;
    let shapes = entries
        .iter()
        .filter_map(|e| Some((e.entry.id.clone(), (**e.territory.as_ref()?).clone())))
        .collect();
    Ok((entries, shapes))
}

/// Uniform points in lon -125..-66, lat 24..50 (the oracle's box), fixed seed.
pub(crate) fn gen_points(n: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let lon = rng.random_range(-125.0..-66.0);
            let lat = rng.random_range(24.0..50.0);
            [lon, lat]
        })
        .collect()
}

/// `points.csv` (`i,lon,lat`, shortest round-trip decimals: every reader gets the same
/// doubles) and `paths.txt` (one `GET /v1/lookup` path per point, for wrk).
pub(crate) fn write_points(dir: &Path, points: &[[f64; 2]]) -> Result<()> {
    let mut csv = String::from("i,lon,lat\n");
    let mut paths = String::new();
    for (i, [lon, lat]) in points.iter().enumerate() {
        let _ = writeln!(csv, "{i},{lon},{lat}");
        let _ = writeln!(paths, "/v1/lookup?lat={lat}&lon={lon}");
    }
    std::fs::write(dir.join("points.csv"), csv)?;
    std::fs::write(dir.join("paths.txt"), paths)?;
    Ok(())
}
