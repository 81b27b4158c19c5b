//! The lookup oracle over HTTP after a real crawl: the 3,231 US counties are published by
//! a fixture utility (one entry + one GeoJSON per county), crawled into the store, indexed,
//! and `GET /v1/lookup` and `POST /v1/lookup` must agree with GEOS on all 10,000 oracle
//! points (`tests/data/README.md`), except ties within 1e-9° of a boundary.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use cds_registry::seeds::Seed;
use cds_registry::territory::parse_territory;
use cds_testkit::data::read_test_data;
use cds_testkit::feature_utility::start_feature_utility;
use common::{start_registry, test_config, Backend, TestDb};
use geo::{Distance, Euclidean, MultiPolygon, Point};
use serde_json::{json, Value};

fn read(name: &str) -> String {
    read_test_data(name).unwrap_or_else(|e| panic!("{e:#}"))
}

struct OraclePoint {
    lon: f64,
    lat: f64,
    ids: BTreeSet<String>,
}

fn oracle() -> Vec<OraclePoint> {
    read("us-counties-oracle-10k.csv")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            OraclePoint {
                lon: f[1].parse().unwrap(),
                lat: f[2].parse().unwrap(),
                ids: f[3]
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }
        })
        .collect()
}

fn near_boundary(mp: &MultiPolygon<f64>, p: Point<f64>) -> bool {
    mp.0.iter().any(|poly| {
        std::iter::once(poly.exterior())
            .chain(poly.interiors())
            .any(|r| Euclidean.distance(&p, r) <= 1e-9)
    })
}

async fn http_lookup_matches_the_geos_oracle(backend: Backend) {
    let counties: Value = serde_json::from_str(&read("us-counties-10m.geojson")).unwrap();
    let shapes: HashMap<String, MultiPolygon<f64>> = counties["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let id = f["id"].as_str().unwrap().to_owned();
            let t = parse_territory(f, &id).0.unwrap();
            (id, t.geometry)
        })
        .collect();
    let (utility, n) = start_feature_utility(
        Ipv4Addr::new(127, 0, 0, 40),
        "US Counties Power",
        &counties,
        400,
    )
    .await
    .unwrap();
    assert_eq!(n, 3231);
    let db = TestDb::new(backend).await;
    let cfg = test_config(&db, vec![utility.host()]);
    let reg = start_registry(cfg).await;
    reg.state
        .store
        .add_hosts(&[Seed::Host(utility.host())], "seed")
        .await
        .unwrap();
    let run = reg.crawler.run("test", &[]).await.unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "ok", "{run:?}");
    assert_eq!(reg.state.reload_index().await.unwrap(), 3231);

    let points = oracle();
    assert_eq!(points.len(), 10_000);
    let c = reqwest::Client::new();
    let body = json!({"points": points.iter().map(|p| [p.lon, p.lat]).collect::<Vec<_>>()});
    let batch = common::post_ok_json(&c, &reg.url(), "/v1/lookup", &body).await;
    let matches = batch["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 10_000);

    let mut ties = 0;
    let mut errors = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let from_batch: BTreeSet<String> = matches[i]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                batch["entries"][k.to_string()]["entry_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let path = format!("/v1/lookup?lat={}&lon={}", p.lat, p.lon);
        let single = common::get_ok_json(&c, &reg.url(), &path).await;
        let from_get = common::entry_ids(&single["results"]);
        for (how, got) in [("POST", &from_batch), ("GET", &from_get)] {
            if *got == p.ids {
                continue;
            }
            let pt = Point::new(p.lon, p.lat);
            let disputed: Vec<&String> = got.symmetric_difference(&p.ids).collect();
            if disputed.iter().all(|id| near_boundary(&shapes[*id], pt)) {
                ties += 1;
            } else {
                errors.push(format!(
                    "{how} point {i} ({}, {}): got {got:?}, GEOS {:?}",
                    p.lon, p.lat, p.ids
                ));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} differences, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(ties <= 10, "{ties} boundary ties");
    reg.shutdown().await.unwrap();
    utility.shutdown().await;
}

both_backends!(http_lookup_matches_the_geos_oracle);
