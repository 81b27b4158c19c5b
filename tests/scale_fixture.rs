//! The synthetic national aggregator of `perf/examples/scale_fixture.rs` (issue 17, the scale
//! benchmark's data source), at a tiny size: its cells tile without overlapping, its
//! update mode changes exactly the entries it says, and a real crawl stores every entry
//! and territory on both backends, re-crawls with 304s only, and picks up an update.
//! Speed is measured by `perf/bench/scale.sh`, never here.

mod common;

#[allow(dead_code)]
#[path = "../perf/examples/scale_fixture.rs"]
mod scale_fixture;

use std::collections::HashSet;
use std::sync::Arc;

use cds_registry::index::Filter;
use cds_registry::seeds::Seed;
use common::{start_registry, test_config, Backend, TestDb};
use geo::{
    Area, BooleanOps, Contains, Coord, LineString, MultiPolygon, Point, Polygon, Validation,
};
use scale_fixture::{Aggregator, Params, Territory};

fn params(entries: u64, page_size: u64, changed_percent: f64) -> Params {
    Params {
        entries,
        page_size,
        latency_ms: 0,
        seed: 7,
        listen: "127.0.0.1:0".parse().unwrap(),
        changed_percent,
        generation: 0,
        dump_features: None,
    }
}

fn to_geo(t: &Territory) -> MultiPolygon<f64> {
    let ring = |r: &Vec<[f64; 2]>| -> LineString<f64> {
        r.iter().map(|p| Coord { x: p[0], y: p[1] }).collect()
    };
    MultiPolygon(
        t.polygons
            .iter()
            .map(|p| Polygon::new(ring(&p[0]), p[1..].iter().map(ring).collect()))
            .collect(),
    )
}

#[test]
fn cells_are_valid_and_tile_without_overlap() {
    let agg = Aggregator::new(params(400, 100, 1.0), "http://127.0.0.1:1".into());
    let cells: Vec<MultiPolygon<f64>> = (0..400).map(|i| to_geo(&agg.territory(i))).collect();
    let mut kinds = [0usize; 3];
    for (i, c) in cells.iter().enumerate() {
        let i = i as u64;
        assert!(c.is_valid(), "cell {i} is not a valid MultiPolygon");
        kinds[usize::from(agg.kind(i))] += 1;
        // ~50 vertices on the exterior: 4 corners + 4 × 11 edge points, closed.
        assert_eq!(c.0[0].exterior().0.len(), 49, "cell {i}");
        let p = agg.interior_point(i);
        let p = Point::new(p[0], p[1]);
        for (j, other) in cells.iter().enumerate() {
            assert_eq!(
                other.contains(&p),
                j as u64 == i,
                "point of {i} vs cell {j}"
            );
        }
    }
    assert!(
        kinds.iter().all(|k| *k > 10),
        "all three shapes occur: {kinds:?}"
    );
    // Neighbours share edges exactly: their intersection has no area.
    for i in 0..399 {
        let a = &cells[i];
        for b in &cells[i + 1..] {
            let shared = a.intersection(b).unsigned_area();
            assert!(shared < 1e-12, "cells {i} and another overlap by {shared}");
        }
    }
}

#[test]
fn the_feature_dump_holds_every_territory_as_served() {
    let agg = Aggregator::new(params(250, 100, 1.0), "http://127.0.0.1:1".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cells.geojson");
    agg.dump_features(&path).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let features = doc["features"].as_array().unwrap();
    assert_eq!(features.len(), 250);
    for (idx, f) in features.iter().enumerate() {
        assert_eq!(f["id"], (idx + 1).to_string());
        let served: serde_json::Value =
            serde_json::from_str(&agg.territory_json(idx as u64).unwrap().0).unwrap();
        assert_eq!(f["geometry"], served["geometry"], "feature {idx}");
    }
}

#[test]
fn update_changes_exactly_the_chosen_entries() {
    let agg = Aggregator::new(params(1_000, 100, 1.0), "http://127.0.0.1:1".into());
    let before: Vec<_> = (0..1_000).map(|i| agg.territory_json(i).unwrap()).collect();
    agg.set_generation(1);
    let changed1: HashSet<u64> = (0..1_000)
        .filter(|i| agg.territory_json(*i).unwrap() != before[*i as usize])
        .collect();
    assert_eq!(changed1.len(), 10, "1 % of 1,000");
    for i in &changed1 {
        assert_eq!(agg.revision(*i), 1);
        assert!(agg.entry_name(*i).contains("revision 1"));
    }
    // Generation 2 changes another 10 (possibly some again); generation 1's stay changed.
    let gen1: Vec<_> = (0..1_000).map(|i| agg.territory_json(i).unwrap()).collect();
    agg.set_generation(2);
    let changed2 = (0..1_000)
        .filter(|i| agg.territory_json(*i).unwrap() != gen1[*i as usize])
        .count();
    assert_eq!(changed2, 10);
    assert!((0..1_000).filter(|i| agg.revision(*i) > 0).count() >= 10);
}

/// A handle on a served aggregator that stops it when dropped (also when a test fails).
struct Served {
    agg: Arc<Aggregator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn serve(p: Params) -> Served {
    let (agg, listener) = scale_fixture::bind(p).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(scale_fixture::serve(Arc::clone(&agg), listener, async {
        let _ = rx.await;
    }));
    Served {
        agg,
        stop: Some(tx),
    }
}

async fn aggregator_crawled_stored_and_updated(backend: Backend) {
    // 50 entries on 5 pages, 10 % changed per generation (5 entries).
    let served = serve(params(50, 10, 10.0)).await;
    let agg = &served.agg;
    let host = agg.base.trim_start_matches("http://").to_owned();
    let db = TestDb::new(backend).await;
    let reg = start_registry(test_config(&db, vec![host.clone()])).await;
    let store = &reg.state.store;
    store.add_hosts(&[Seed::Host(host)], "seed").await.unwrap();

    let first = reg.crawler.run("test", &[]).await.unwrap();
    assert_eq!(first.totals.hosts_ok, 1, "{first:#?}");
    assert_eq!(first.totals.docs_fetched, 1 + 5 + 50, "{first:#?}");
    let servers = store.list_servers().await.unwrap();
    assert_eq!(servers.len(), 1);
    let entries = store.server_entries(servers[0].id).await.unwrap();
    assert_eq!(entries.len(), 50);
    let ids: HashSet<String> = entries.iter().map(|e| e.entry.id.clone()).collect();
    assert_eq!(
        ids,
        (0..50).map(Aggregator::entry_id).collect::<HashSet<_>>()
    );
    assert!(entries.iter().all(|e| e.territory_id.is_some()));

    // Every entry's interior point finds that entry and no other.
    reg.state.reload_index().await.unwrap();
    let index = reg.state.index();
    for i in 0..50 {
        let [lon, lat] = agg.interior_point(i);
        let hits: Vec<String> = index
            .lookup(lon, lat, &Filter::default())
            .into_iter()
            .map(|h| index.entry(h).id().to_owned())
            .collect();
        assert_eq!(hits, vec![Aggregator::entry_id(i)], "point of entry {i}");
    }

    // Unchanged: every document answers 304.
    let ok_before = agg.stats.ok.load(std::sync::atomic::Ordering::Relaxed);
    let second = reg.crawler.run("test", &[]).await.unwrap();
    assert_eq!(second.totals.docs_fetched, 0, "{second:#?}");
    assert_eq!(second.totals.docs_unchanged, 56, "{second:#?}");
    assert_eq!(
        agg.stats.ok.load(std::sync::atomic::Ordering::Relaxed),
        ok_before
    );

    // Generation 1: 5 entries changed (name, `updated`, territory); they move to the
    // front of the listing (newest first), so later pages shift too.
    let pages_before: Vec<String> = (1..=5).map(|p| agg.page_json(p).unwrap().0).collect();
    agg.set_generation(1);
    let changed: Vec<u64> = (0..50).filter(|i| agg.revision(*i) == 1).collect();
    assert_eq!(changed.len(), 5);
    let pages = (1..=5u64)
        .filter(|p| agg.page_json(*p).unwrap().0 != pages_before[*p as usize - 1])
        .count();
    assert!(pages >= 1);
    let third = reg.crawler.run("test", &[]).await.unwrap();
    assert_eq!(
        third.totals.docs_fetched,
        (pages + changed.len()) as i64,
        "changed pages and territories only: {third:#?}"
    );
    let entries = store.server_entries(servers[0].id).await.unwrap();
    assert_eq!(entries.len(), 50);
    // The listing stays conforming: no COV-ORDER or any other error finding.
    let detail = store.server_detail(servers[0].id).await.unwrap();
    let errors: Vec<_> = detail
        .findings
        .iter()
        .filter(|f| f.severity.as_str() == "error")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    for e in &entries {
        let i: u64 = e.entry.id.trim_start_matches("sa-").parse().unwrap();
        assert_eq!(e.entry.name, agg.entry_name(i), "entry {i}");
    }
    reg.state.reload_index().await.unwrap();
    let index = reg.state.index();
    for i in &changed {
        let key = entries
            .iter()
            .find(|e| e.entry.id == Aggregator::entry_id(*i))
            .unwrap()
            .id;
        let stored = index.territory_of(key).expect("changed territory indexed");
        let expected = to_geo(&agg.territory(*i));
        // The stored territory is the new geometry (its hole moved or appeared).
        let differ = stored.xor(&expected).unsigned_area();
        assert!(
            differ < 1e-12,
            "entry {i}: stored and served differ by {differ}"
        );
        assert!(
            stored.0.iter().any(|p| !p.interiors().is_empty()),
            "entry {i} has a hole"
        );
    }
    reg.shutdown().await.unwrap();
}

both_backends!(aggregator_crawled_stored_and_updated);
