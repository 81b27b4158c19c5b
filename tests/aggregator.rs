//! One aggregator server listing thousands of entries, each with its own GeoJSON
//! territory (issue 17), on both backends: the per-host limits scale with what the listing
//! declares, so a listing over the old 5,000-document default is crawled whole, and a
//! listing beyond `crawl.max_documents_ceiling` (or `crawl.max_bytes_per_host`) is refused
//! with outcome `limit` and nothing of it stored.

mod common;

use std::net::Ipv4Addr;

use cds_registry::config::CrawlConfig;
use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::{FindingFilter, Store};
use cds_testkit::aggregator::{geo_path, publish_aggregator};
use cds_testkit::FixtureServer;
use common::{test_config, Backend, TestDb};

both_backends!(
    an_unchanged_recrawl_asks_only_for_what_may_have_changed,
    a_replica_catches_up_with_a_few_changed_entries,
    a_listing_over_the_old_document_default_is_crawled_whole,
    a_listing_beyond_the_document_ceiling_is_refused,
    a_host_over_the_byte_ceiling_is_refused,
);

struct Env {
    server: FixtureServer,
    store: Store,
    crawler: Crawler,
    _db: TestDb,
}

async fn env(
    backend: Backend,
    ip: [u8; 4],
    n: usize,
    page_size: usize,
    tune: impl FnOnce(&mut CrawlConfig),
) -> Env {
    let server = FixtureServer::start(Ipv4Addr::from(ip)).await.unwrap();
    publish_aggregator(&server, n, page_size);
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, vec![server.host()]);
    tune(&mut cfg.crawl);
    let store = db.store().await;
    store
        .add_hosts(&[Seed::Host(server.host())], "seed")
        .await
        .unwrap();
    let crawler = Crawler::new(store.clone(), cfg.crawl).unwrap();
    Env {
        server,
        store,
        crawler,
        _db: db,
    }
}

impl Env {
    /// Crawl the aggregator; its outcome and the host's recorded detail.
    async fn crawl(&self) -> (String, Option<String>) {
        let run = self
            .crawler
            .run("test", &[self.server.host()])
            .await
            .unwrap();
        let host = common::host_by_seed(&self.store, &self.server.host()).await;
        (run.outcomes[0].1.to_string(), host.last_detail)
    }

    /// The stored territory id of entry `id` (a new one when its territory changed).
    async fn territory_id_of(&self, id: &str) -> Option<i64> {
        let servers = self.store.list_servers().await.unwrap();
        let entries = self.store.server_entries(servers[0].id).await.unwrap();
        entries
            .iter()
            .find(|x| x.entry.id == id)
            .unwrap()
            .territory_id
    }

    fn territory_requests(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/t/"))
            .count()
    }
}

/// 5,200 entries on 6 pages: 5,207 documents, over the old fixed 5,000. The defaults now
/// admit them, every entry is stored with its own territory, and the change feed has one
/// `added` row per entry.
async fn a_listing_over_the_old_document_default_is_crawled_whole(backend: Backend) {
    const N: usize = 5_200;
    let e = env(backend, [127, 0, 0, 140], N, 1_000, |c| {
        assert_eq!(c.max_documents_per_host, 5_000, "the default under test");
    })
    .await;
    let (outcome, detail) = e.crawl().await;
    assert_eq!(outcome, "ok", "{detail:?}");
    let counts = e.store.counts().await.unwrap();
    assert_eq!(counts.entries, N as i64);
    assert_eq!(counts.territories, N as i64);
    let servers = e.store.list_servers().await.unwrap();
    assert_eq!(servers.len(), 1);
    let entries = e.store.server_entries(servers[0].id).await.unwrap();
    assert_eq!(entries.len(), N);
    assert!(
        entries.iter().all(|x| x.territory_id.is_some()),
        "every entry has its territory"
    );
    let added = e
        .store
        .changes_after(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.entity.as_str() == "entry" && c.op.as_str() == "added")
        .count();
    assert_eq!(added, N);
    assert_eq!(e.territory_requests(), N);
}

/// A ceiling below what the listing declares: the crawl stops before any territory is
/// requested, the outcome is `limit` naming the key, and nothing is stored.
async fn a_listing_beyond_the_document_ceiling_is_refused(backend: Backend) {
    let e = env(backend, [127, 0, 0, 141], 400, 100, |c| {
        c.max_documents_per_host = 100;
        c.max_documents_ceiling = 300;
    })
    .await;
    let (outcome, detail) = e.crawl().await;
    assert_eq!(outcome, "limit");
    let detail = detail.unwrap();
    assert!(detail.contains("crawl.max_documents_ceiling"), "{detail}");
    assert_eq!(
        e.territory_requests(),
        0,
        "refused before fetching territories"
    );
    let counts = e.store.counts().await.unwrap();
    assert_eq!(
        (counts.servers, counts.entries, counts.territories),
        (0, 0, 0)
    );
    assert!(e
        .store
        .list_findings(&FindingFilter {
            limit: 1_000,
            ..FindingFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .all(|f| f.server_id.is_none()));
}

/// Bytes are bounded per host too: over `crawl.max_bytes_per_host` the crawl is `limit`
/// and nothing of it is stored.
async fn a_host_over_the_byte_ceiling_is_refused(backend: Backend) {
    let e = env(backend, [127, 0, 0, 142], 50, 50, |c| {
        c.max_bytes_per_host = 20_000;
    })
    .await;
    let (outcome, detail) = e.crawl().await;
    assert_eq!(outcome, "limit");
    let detail = detail.unwrap();
    assert!(detail.contains("crawl.max_bytes_per_host"), "{detail}");
    let counts = e.store.counts().await.unwrap();
    assert_eq!(
        (counts.servers, counts.entries, counts.territories),
        (0, 0, 0)
    );
}

/// `crawl.territory_max_age_secs` (issue 17): an unchanged re-crawl reads the listing but
/// asks for no territory whose entries did not change; a changed entry's territory is
/// asked for; once the stored territories are older than the limit, all of them are
/// revalidated (304s), and a territory that changed without its entry is read then.
async fn an_unchanged_recrawl_asks_only_for_what_may_have_changed(backend: Backend) {
    const N: usize = 300;
    let e = env(backend, [127, 0, 0, 143], N, 100, |c| {
        c.territory_max_age_secs = CrawlConfig::default().territory_max_age_secs;
    })
    .await;
    let first = e.crawl().await;
    assert_eq!(first.0, "ok", "{first:?}");
    assert_eq!(e.territory_requests(), N);
    let stored = e.store.counts().await.unwrap();

    // Nothing changed: the pages are asked for (304), no territory is.
    let run = e.crawler.run("test", &[e.server.host()]).await.unwrap();
    assert_eq!(run.outcomes[0].1.to_string(), "ok");
    assert_eq!(e.territory_requests(), N, "no territory asked for again");
    assert_eq!(run.servers_changed, 0);
    assert_eq!(e.store.counts().await.unwrap(), stored);

    // One entry changes: only its territory is asked for.
    e.server.update_json("/cds/coverage?page=1", |v| {
        v["coverage_entries"][0]["name"] = "Renamed territory 0".into();
    });
    // Its territory changes too, and so does entry 1's, without entry 1 changing.
    for i in [0, 1] {
        e.server.update_json(&geo_path(i), |v| {
            v["geometry"]["coordinates"][0][2][0] =
                (v["geometry"]["coordinates"][0][2][0].as_f64().unwrap() + 0.0005).into();
        });
    }
    let seen = e.server.requests().len();
    e.crawl().await;
    let asked: Vec<String> = e
        .server
        .requests()
        .iter()
        .skip(seen)
        .map(|r| r.path.clone())
        .collect();
    let territories: Vec<&String> = asked.iter().filter(|p| p.starts_with("/t/")).collect();
    assert_eq!(territories, [&geo_path(0)], "{asked:?}");
    let entry1_before = e.territory_id_of("e1").await;

    // The stored territories age past the limit: every one is revalidated, and entry 1's
    // changed territory is read.
    sqlx::query("UPDATE documents SET fetched_ms = fetched_ms - $1")
        .bind(2 * 1000 * CrawlConfig::default().territory_max_age_secs as i64)
        .execute(e.store.pool())
        .await
        .unwrap();
    let before = e.territory_requests();
    e.crawl().await;
    assert_eq!(e.territory_requests() - before, N, "all revalidated");
    assert_ne!(
        e.territory_id_of("e1").await,
        entry1_before,
        "entry 1's new territory read"
    );
}

/// A replica's catch-up after a crawl that changed a few entries of a large server reads
/// only those entries (issue 17; the choice itself is unit-tested in `index::live`), and
/// ends with the index a full reload makes: renamed, removed and re-territoried entries
/// alike.
async fn a_replica_catches_up_with_a_few_changed_entries(backend: Backend) {
    use cds_registry::index::live::LiveIndex;
    use cds_registry::index::Filter;
    const N: usize = 300;
    let e = env(backend, [127, 0, 0, 144], N, 100, |_| {}).await;
    e.crawl().await;
    let replica = LiveIndex::new(e.store.clone());
    replica.catch_up().await.unwrap();
    assert_eq!(replica.index().len(), N);

    e.server.update_json("/cds/coverage?page=1", |v| {
        v["coverage_entries"][0]["name"] = "Renamed territory 0".into();
    });
    e.server.update_json("/cds/coverage?page=3", |v| {
        v["coverage_entries"].as_array_mut().unwrap().pop();
    });
    e.server.update_json(&geo_path(5), |v| {
        v["geometry"]["coordinates"][0][2][0] =
            (v["geometry"]["coordinates"][0][2][0].as_f64().unwrap() + 0.0005).into();
    });
    let (outcome, _) = e.crawl().await;
    assert_eq!(outcome, "ok");
    assert!(
        replica.catch_up().await.unwrap().is_some(),
        "the replica saw the change"
    );

    let fresh = LiveIndex::new(e.store.clone());
    fresh.reload_index().await.unwrap();
    let (a, b) = (replica.index(), fresh.index());
    let view = |i: &cds_registry::index::SearchIndex| {
        i.entries()
            .map(|x| {
                let x = x.to_entry();
                (x.key, x.entry.name, x.territory_id, x.territory)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&a), view(&b));
    assert_eq!(a.len(), N - 1);
    assert!(a
        .entries()
        .any(|x| x.to_entry().entry.name == "Renamed territory 0"));
    // Lookups agree at the corner of every territory's square and inside it.
    let none = Filter::default();
    for i in 0..N {
        let (x, y) = ((i % 400) as f64, (i / 400) as f64);
        let (lon, lat) = (-120.0 + x * 0.01 + 0.0045, 30.0 + y * 0.01 + 0.0045);
        assert_eq!(
            a.lookup(lon, lat, &none),
            b.lookup(lon, lat, &none),
            "entry {i}"
        );
    }
}
