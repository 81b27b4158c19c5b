//! Peak memory of a crawl of many large territories on one host (issue 19): bodies are
//! read as they arrive and dropped, so memory grows with the downloads in flight, not
//! with the number of documents. Alone in its test binary because VmHWM is per process;
//! the measured numbers are in docs/PERFORMANCE.md ("Untrusted geometry"), this test
//! only holds a generous cap.

mod common;

use std::net::Ipv4Addr;

use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::{FindingFilter, Store};
use cds_testkit::geometry::large_ring_geojson;
use cds_testkit::server::GEOJSON_CONTENT_TYPE;
use cds_testkit::utility::{publish, EntrySpec, UtilitySpec};
use cds_testkit::FixtureServer;
use common::{test_config, Backend, TestDb};

const TERRITORIES: usize = 60;
const VERTICES: usize = 50_000;

fn vm_hwm_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kib / 1024.0
}

/// One crawl of a host with `TERRITORIES` territories of `VERTICES` positions, all over
/// a 25k vertex cap (so nothing of them is kept: what remains is the cost of the bodies).
/// Returns the peak RSS growth during the crawl in MiB.
async fn crawl_many(backend: Backend, server: &FixtureServer) -> f64 {
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, vec![server.host()]);
    cfg.crawl.max_territory_vertices = 25_000;
    let store: Store = db.store().await;
    store
        .add_hosts(&[Seed::Host(server.host())], "seed")
        .await
        .unwrap();
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let base = vm_hwm_mib();
    let run = crawler.run("test", &[]).await.unwrap();
    let growth = vm_hwm_mib() - base;
    assert_eq!(run.outcomes[0].1.as_str(), "ok");
    let large = store
        .list_findings(&FindingFilter {
            rule: Some("GEO-TOO-LARGE".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(large.len(), TERRITORIES);
    growth
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_territories_on_one_host_stay_within_a_memory_cap() {
    let server = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 91))
        .await
        .unwrap();
    let name = "Many Rings Power";
    let mut spec = UtilitySpec::new(name);
    for i in 0..TERRITORIES {
        spec = spec.entry(EntrySpec::geographic(
            &format!("ring-{i}"),
            name,
            &format!("Ring {i}"),
            &["06069"],
        ));
    }
    publish(&server, &spec);
    // One body shared by every path: the fixture holds it once, the crawler downloads
    // each copy.
    let body = bytes::Bytes::from(large_ring_geojson(VERTICES));
    let body_mib = body.len() as f64 / (1 << 20) as f64;
    for i in 0..TERRITORIES {
        server.set_raw(
            &spec.territory_path(&format!("ring-{i}")),
            GEOJSON_CONTENT_TYPE,
            body.clone(),
        );
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let growth = crawl_many(backend, &server).await;
        // Keeping every body (as the crawler once did) needs TERRITORIES × body_mib
        // (≈ 64 MiB here) on top of everything else; reading them as they arrive needs a
        // few bodies. The cap is half of "all bodies".
        let cap = TERRITORIES as f64 * body_mib / 2.0;
        eprintln!("{backend:?}: peak RSS growth {growth:.1} MiB (cap {cap:.1} MiB)");
        assert!(growth < cap, "{backend:?}: {growth:.1} MiB >= {cap:.1} MiB");
    }
    server.shutdown().await;
}
