//! The point lookup against an independent oracle: 10,000 random points in the
//! contiguous-US box, answered by GEOS (Shapely `within`) over the 3,231 US counties
//! (`tests/data/README.md`). Every answer must agree, except on points within 1e-9 degrees
//! of the boundary of a county the two disagree on (a tie, not an error).

use std::collections::BTreeSet;

use cds_registry::index::{Filter, IndexEntry, SearchIndex};
use cds_testkit::data::{county_index_entries, read_test_data};
use geo::{Distance, Euclidean, MultiPolygon, Point};
use serde_json::Value;

const TIE_DISTANCE: f64 = 1e-9;

fn read(name: &str) -> String {
    read_test_data(name).unwrap_or_else(|e| panic!("{e:#}"))
}

/// One entry per county: key = FIPS code as a number, entry id = the FIPS string.
fn county_entries() -> Vec<IndexEntry> {
    let doc: Value =
        serde_json::from_str(&read("us-counties-10m.geojson")).expect("counties GeoJSON parses");
    let entries = county_index_entries(&doc).expect("every county has a territory");
    assert_eq!(entries.len(), 3231, "unexpected county file");
    entries
}

struct OraclePoint {
    idx: usize,
    lon: f64,
    lat: f64,
    ids: BTreeSet<String>,
}

fn oracle() -> Vec<OraclePoint> {
    let text = read("us-counties-oracle-10k.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("idx,lon,lat,county_ids"));
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            assert_eq!(cols.len(), 4, "bad oracle line {l:?}");
            OraclePoint {
                idx: cols[0].parse().unwrap(),
                lon: cols[1].parse().unwrap(),
                lat: cols[2].parse().unwrap(),
                ids: cols[3]
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }
        })
        .collect()
}

/// Distance from the point to the nearest ring (exterior or hole) of the territory.
fn boundary_distance(mp: &MultiPolygon<f64>, p: Point<f64>) -> f64 {
    mp.0.iter()
        .flat_map(|poly| std::iter::once(poly.exterior()).chain(poly.interiors()))
        .map(|ring| Euclidean.distance(&p, ring))
        .fold(f64::INFINITY, f64::min)
}

/// Compare one answer with the oracle: `Ok(ties)` with the number of excused
/// disagreements, `Err(message)` for a real one.
fn check(idx: &SearchIndex, p: &OraclePoint, got: &[usize], how: &str) -> Result<usize, String> {
    let got: BTreeSet<String> = got.iter().map(|&i| idx.entry(i).id().to_owned()).collect();
    if got == p.ids {
        return Ok(0);
    }
    let pt = Point::new(p.lon, p.lat);
    let mut ties = 0;
    for id in got.symmetric_difference(&p.ids) {
        let key: i64 = id.parse().unwrap();
        let terr = idx.territory_of(key).expect("disputed county is indexed");
        let d = boundary_distance(terr, pt);
        if d > TIE_DISTANCE {
            return Err(format!(
                "{how}: point #{} ({}, {}): got {got:?}, oracle {:?}; county {id} boundary is {d:e} away",
                p.idx, p.lon, p.lat, p.ids
            ));
        }
        ties += 1;
    }
    Ok(ties)
}

#[test]
fn county_lookup_matches_the_geos_oracle() {
    let started = std::time::Instant::now();
    let entries = county_entries();
    let parsed = started.elapsed();
    let started = std::time::Instant::now();
    let idx = SearchIndex::build(entries);
    let built = started.elapsed();
    assert_eq!(idx.len(), 3231);

    let points = oracle();
    assert_eq!(points.len(), 10_000);
    let none = Filter::default();
    let coords: Vec<[f64; 2]> = points.iter().map(|p| [p.lon, p.lat]).collect();
    let batch = idx.lookup_batch(&coords, &none);
    let csr = idx.lookup_batch_csr(&coords, &none);
    assert_eq!(batch.len(), points.len());

    let (mut ties, mut errors, mut in_a_county) = (0, Vec::new(), 0);
    for (i, p) in points.iter().enumerate() {
        let single = idx.lookup(p.lon, p.lat, &none);
        in_a_county += usize::from(!single.is_empty());
        for (how, got) in [("lookup", &single), ("lookup_batch", &batch[i])] {
            match check(&idx, p, got, how) {
                Ok(t) => ties += t,
                Err(e) => errors.push(e),
            }
        }
        let flat: Vec<usize> = csr.get(i).iter().map(|&h| h as usize).collect();
        assert_eq!(
            flat, batch[i],
            "CSR and nested batch differ at point #{}",
            p.idx
        );
    }
    println!(
        "oracle: {} points, {in_a_county} in a county, {ties} boundary ties excused, {} errors \
         (parse {parsed:?}, build {built:?})",
        points.len(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} disagreements with the oracle:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert_eq!(
        in_a_county,
        points.iter().filter(|p| !p.ids.is_empty()).count()
    );
}
