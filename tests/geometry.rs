//! Untrusted geometry in the crawler (issue 19): a huge but valid territory costs bounded
//! work, off the async runtime, and never holds up the other hosts of a run; a territory
//! over `crawl.max_territory_vertices` or `crawl.geojson_budget_ms` is a finding on its
//! document, not a failure of its host.

mod common;

use std::net::Ipv4Addr;

use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_testkit::geometry::large_ring_geojson;
use cds_testkit::server::GEOJSON_CONTENT_TYPE;
use cds_testkit::utility::{publish, EntrySpec, UtilitySpec};
use cds_testkit::FixtureServer;
use common::{test_config, Backend, TestDb};

const BIG: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 70);
const NORMAL: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 71),
    Ipv4Addr::new(127, 0, 0, 72),
    Ipv4Addr::new(127, 0, 0, 73),
];

/// A utility on `server` with a normal county entry and an entry `ring` whose territory
/// is `body`.
fn publish_with_ring(server: &FixtureServer, name: &str, body: String) {
    let spec = UtilitySpec::new(name)
        .entry(EntrySpec::geographic("normal", name, "Normal", &["06069"]))
        .entry(EntrySpec::geographic("ring", name, "Ring", &["06053"]));
    publish(server, &spec);
    server.set_raw(&spec.territory_path("ring"), GEOJSON_CONTENT_TYPE, body);
}

async fn findings_with(store: &Store, rule: &str) -> Vec<String> {
    let found = common::findings_of_rule(store, rule).await;
    found.into_iter().map(|f| f.url).collect()
}

/// (entry id, has a territory) of the searchable entries of the server named `name`.
async fn searchable(store: &Store, name: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = store
        .index_rows()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.server_name == name)
        .map(|r| (r.entry.id.clone(), r.wkb.is_some()))
        .collect();
    v.sort();
    v
}

async fn a_200k_vertex_ring_next_to_normal_hosts(backend: Backend) {
    let big = FixtureServer::start(BIG).await.unwrap();
    publish_with_ring(&big, "Big Ring Power", large_ring_geojson(200_000));
    let mut normal = Vec::new();
    for (i, ip) in NORMAL.into_iter().enumerate() {
        let s = FixtureServer::start(ip).await.unwrap();
        let spec = UtilitySpec::new(&format!("Normal {i}")).entry(EntrySpec::geographic(
            "area",
            &format!("Normal {i}"),
            "Area",
            &["06019"],
        ));
        publish(&s, &spec);
        normal.push(s);
    }
    let db = TestDb::new(backend).await;
    let hosts: Vec<String> = std::iter::once(&big)
        .chain(&normal)
        .map(|s| s.host())
        .collect();
    let cfg = test_config(&db, hosts.clone());
    let store = db.store().await;
    let seeds: Vec<Seed> = hosts.iter().cloned().map(Seed::Host).collect();
    store.add_hosts(&seeds, "seed").await.unwrap();
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();

    let run = crawler.run("test", &[]).await.unwrap();
    assert_eq!(run.outcomes.len(), 4, "{:?}", run.outcomes);
    assert!(
        run.outcomes.iter().all(|(_, o)| o.as_str() == "ok"),
        "{:?}",
        run.outcomes
    );
    for i in 0..3 {
        assert_eq!(
            searchable(&store, &format!("Normal {i}")).await,
            vec![("area".to_owned(), true)]
        );
    }
    // 200,001 positions are under the default cap and a sweep checks them in well under
    // the default budget: stored. (Were the machine so slow that the budget ran out, the
    // outcome would be a GEO-TOO-COSTLY finding instead; anything else is a bug.)
    let costly = findings_with(&store, "GEO-TOO-COSTLY").await;
    let ring_stored = searchable(&store, "Big Ring Power").await
        == vec![("normal".to_owned(), true), ("ring".to_owned(), true)];
    assert!(ring_stored != (costly.len() == 1), "{costly:?}");
    assert!(findings_with(&store, "GEO-INVALID").await.is_empty());

    // The next run gets a 304 for it and keeps it.
    let run = crawler.run("test", &[]).await.unwrap();
    assert!(
        run.outcomes.iter().all(|(_, o)| o.as_str() == "ok"),
        "{:?}",
        run.outcomes
    );
    assert_eq!(
        searchable(&store, "Big Ring Power").await.len(),
        2,
        "still searchable"
    );
    big.shutdown().await;
    for s in normal {
        s.shutdown().await;
    }
}

async fn territories_over_the_bounds_are_findings_not_failures(backend: Backend) {
    let big = FixtureServer::start(BIG).await.unwrap();
    publish_with_ring(&big, "Big Ring Power", large_ring_geojson(20_000));
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, vec![big.host()]);
    cfg.crawl.max_territory_vertices = 10_000;
    let store = db.store().await;
    store
        .add_hosts(&[Seed::Host(big.host())], "seed")
        .await
        .unwrap();

    // Over the vertex cap: GEO-TOO-LARGE on the document; the rest of the server is
    // searchable. Twice: a document that gave no territory keeps no validators, so the
    // second run fetches it again (a 304 would leave nothing to use).
    for round in 0..2 {
        let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
        let run = crawler.run("test", &[]).await.unwrap();
        assert_eq!(run.outcomes[0].1.as_str(), "ok", "round {round}");
        let large = findings_with(&store, "GEO-TOO-LARGE").await;
        assert_eq!(large.len(), 1, "round {round}: {large:?}");
        assert!(large[0].ends_with("/territory/ring.geojson"), "{large:?}");
        assert_eq!(
            searchable(&store, "Big Ring Power").await,
            vec![("normal".to_owned(), true), ("ring".to_owned(), false)]
        );
    }
    let ring_requests: Vec<Option<u16>> = big
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/territory/ring.geojson"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        ring_requests,
        vec![Some(200), Some(200)],
        "no conditional request for an unusable territory"
    );
    assert!(big.count_status(304) > 0, "the other documents were 304s");

    // Under the cap but over a zero time budget: GEO-TOO-COSTLY, same treatment. (The
    // document changes each time: an unchanged server keeps its stored findings.)
    let ring_path = UtilitySpec::new("Big Ring Power").territory_path("ring");
    big.set_raw(&ring_path, GEOJSON_CONTENT_TYPE, large_ring_geojson(20_001));
    cfg.crawl.max_territory_vertices = 1_000_000;
    cfg.crawl.geojson_budget_ms = 0;
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    let run = crawler.run("test", &[]).await.unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "ok");
    assert_eq!(findings_with(&store, "GEO-TOO-COSTLY").await.len(), 1);
    assert!(findings_with(&store, "GEO-TOO-LARGE").await.is_empty());
    let rows = searchable(&store, "Big Ring Power").await;
    assert_eq!(rows.len(), 2, "the entries stay listed: {rows:?}");
    assert_eq!(rows[1], ("ring".to_owned(), false));

    // Within both bounds again: stored.
    big.set_raw(&ring_path, GEOJSON_CONTENT_TYPE, large_ring_geojson(20_002));
    cfg.crawl.geojson_budget_ms = 10_000;
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    let run = crawler.run("test", &[]).await.unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "ok");
    assert!(findings_with(&store, "GEO-TOO-COSTLY").await.is_empty());
    assert_eq!(
        searchable(&store, "Big Ring Power").await,
        vec![("normal".to_owned(), true), ("ring".to_owned(), true)]
    );
    big.shutdown().await;
}

both_backends!(
    a_200k_vertex_ring_next_to_normal_hosts,
    territories_over_the_bounds_are_findings_not_failures,
);
