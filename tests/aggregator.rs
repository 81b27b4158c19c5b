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
use cds_testkit::aggregator::publish_aggregator;
use cds_testkit::FixtureServer;
use common::{test_config, Backend, TestDb};

both_backends!(
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
