//! The vendored test data (`tests/data/`, gzip) and index entries made straight from it,
//! for the oracle tests and the benchmarks. The service never reads these files.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use serde_json::Value;

use cds_registry::cds::CoverageEntry;
use cds_registry::index::IndexEntry;
use cds_registry::territory::parse_territory;

/// Where the vendored test data lives: `tests/data/` of the source tree (the files are
/// gzip-compressed; see `tests/data/README.md` for their source and licence). Only the
/// tests, benchmarks and `cds-bench` read it; the service never does.
pub fn test_data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data"))
}

/// The text of one vendored data file, `name` without the `.gz`
/// (`us-counties-10m.geojson`, `us-counties-oracle-10k.csv`).
pub fn read_test_data(name: &str) -> anyhow::Result<String> {
    let path = test_data_dir().join(format!("{name}.gz"));
    let file = std::fs::File::open(&path).with_context(|| {
        format!(
            "test data {} is missing (it is part of the repository)",
            path.display()
        )
    })?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .with_context(|| format!("test data {} is not valid gzip/UTF-8", path.display()))?;
    Ok(text)
}

/// The 3,231 US counties (`us-counties-10m.geojson`) as a parsed FeatureCollection.
pub fn us_counties() -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&read_test_data(
        "us-counties-10m.geojson",
    )?)?)
}

/// The server every entry of [`county_index_entries`] belongs to.
pub const COUNTIES_SERVER_NAME: &str = "US Counties Power";

/// Index entries straight from a county FeatureCollection (such as [`us_counties`]), for the oracle test and the benchmarks that
/// query the index without a crawl. One fictional server (id 1) owns one authoritative
/// geographic entry per county: key and territory id = the numeric FIPS code, entry id =
/// the FIPS string, name = the county's name.
pub fn county_index_entries(collection: &Value) -> anyhow::Result<Vec<IndexEntry>> {
    let features = collection["features"]
        .as_array()
        .ok_or_else(|| anyhow!("not a FeatureCollection"))?;
    features
        .iter()
        .map(|f| {
            let fips = f["id"]
                .as_str()
                .ok_or_else(|| anyhow!("a feature without a string id"))?
                .to_owned();
            let territory = parse_territory(f, &fips)
                .0
                .ok_or_else(|| anyhow!("county {fips} has no usable territory"))?;
            let key: i64 = fips.parse().with_context(|| format!("FIPS {fips}"))?;
            Ok(IndexEntry {
                key,
                server_id: 1,
                server_url: "https://counties.example/.well-known/cds-server-metadata.json".into(),
                server_name: COUNTIES_SERVER_NAME.into(),
                entry: CoverageEntry {
                    id: fips,
                    entity_name: COUNTIES_SERVER_NAME.into(),
                    name: f["properties"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    country: "US".into(),
                    kind: "geographic".into(),
                    role: "authoritative".into(),
                    ..CoverageEntry::default()
                },
                territory_id: Some(key),
                territory: Some(Arc::new(territory.geometry)),
                scopes: vec![],
                scope_types: vec![],
                oauth: None,
            })
        })
        .collect()
}
