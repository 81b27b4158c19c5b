//! Linked documents that fail (CDS-SPEC-NOTES §5a), listing limits and redirects (§1,
//! §3), end to end on both backends: a territory, the OAuth metadata or a coverage page
//! that fails for good is reported as a finding and the rest of the server is committed
//! and searchable; unread entries are never shown as removed in the change feed; and
//! `validate` reports every finding it could compute.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use cds_registry::cds::WELL_KNOWN_PATH;
use cds_registry::cli::serve::Running;
use cds_registry::cli::validate::validate_target;
use cds_registry::config::CrawlConfig;
use cds_registry::seeds::Seed;
use cds_registry::store::ServerRow;
use cds_testkit::{publish, EntrySpec, FixtureServer, Published, ScopeSpec, UtilitySpec};
use common::{start_registry, test_config, Backend, TestDb};
use serde_json::Value;

both_backends!(
    a_dead_territory_link_on_a_first_crawl_is_a_finding,
    a_territory_that_now_fails_keeps_its_territory_and_is_not_removed,
    failing_oauth_metadata_leaves_the_server_without_offers,
    a_failed_page_keeps_the_entries,
    the_page_cap_is_a_limit_with_a_finding,
    redirects_307_and_308_are_moves_with_a_finding,
);

const NAME: &str = "Linked Failure Electric";

/// Three geographic entries, one per page, and OAuth metadata with one scope.
fn spec() -> UtilitySpec {
    let e = |id: &str, fips: &str, updated: &str| {
        EntrySpec::geographic(id, NAME, &format!("{id} area"), &[fips])
            .capabilities(&["oauth"])
            .dates("2023-01-01T00:00:00Z", updated)
    };
    UtilitySpec::new(NAME)
        .page_size(1)
        .entry(e("lf-a", "17019", "2024-03-01T00:00:00Z"))
        .entry(e("lf-b", "17113", "2024-02-01T00:00:00Z"))
        .entry(e("lf-c", "17167", "2024-01-01T00:00:00Z"))
        .scope(ScopeSpec::new(
            "cds_usage",
            "Usage",
            "Interval usage.",
            &["lf-a", "lf-b", "lf-c"],
        ))
}

struct Env {
    reg: Running,
    server: FixtureServer,
    published: Published,
    spec: UtilitySpec,
    c: reqwest::Client,
    _db: TestDb,
}

/// A fixture utility at `ip` (changed by `prepare` before anything is crawled) and a
/// registry on `backend` that may crawl it; `tune` adjusts the crawl configuration.
async fn env(
    backend: Backend,
    ip: [u8; 4],
    prepare: impl FnOnce(&FixtureServer, &UtilitySpec, &Published),
    tune: impl FnOnce(&mut CrawlConfig),
) -> Env {
    let server = FixtureServer::start(Ipv4Addr::from(ip)).await.unwrap();
    let spec = spec();
    let published = publish(&server, &spec);
    prepare(&server, &spec, &published);
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, vec![server.host()]);
    tune(&mut cfg.crawl);
    let reg = start_registry(cfg).await;
    reg.state
        .store
        .add_hosts(&[Seed::Host(server.host())], "seed")
        .await
        .unwrap();
    Env {
        reg,
        server,
        published,
        spec,
        c: reqwest::Client::new(),
        _db: db,
    }
}

impl Env {
    /// Crawl the utility's host; its outcome class and detail.
    async fn crawl(&self) -> (String, Option<String>) {
        let run = self
            .reg
            .crawler
            .run("test", &[self.server.host()])
            .await
            .unwrap();
        self.reg.state.reload_index().await.unwrap();
        let host = common::host_by_seed(&self.reg.state.store, &self.server.host()).await;
        (run.outcomes[0].1.to_string(), host.last_detail)
    }

    async fn get(&self, path: &str) -> Value {
        common::get_ok_json(&self.c, &self.reg.url(), path).await
    }

    async fn server_row(&self) -> ServerRow {
        self.reg
            .state
            .store
            .list_servers()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.url == self.published.metadata_url)
            .expect("the server is stored")
    }

    /// Findings of `rule` for the server, through `/v1/findings`.
    async fn findings(&self, rule: &str) -> Vec<Value> {
        let id = self.server_row().await.id;
        let v = self
            .get(&format!("/v1/findings?server={id}&rule={rule}&limit=1000"))
            .await;
        v["findings"].as_array().unwrap().clone()
    }

    /// Entry ids the search API lists for the server.
    async fn searchable_ids(&self) -> BTreeSet<String> {
        let v = self.get("/v1/coverage?limit=100").await;
        common::entry_ids(&v["coverage"])
    }

    /// entry id → territory id, from the store.
    async fn territories(&self) -> std::collections::BTreeMap<String, Option<i64>> {
        let id = self.server_row().await.id;
        self.reg
            .state
            .store
            .server_entries(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.entry.id, e.territory_id))
            .collect()
    }

    /// The last `seq` of the change feed.
    async fn last_seq(&self) -> i64 {
        let v = self.get("/v1/changes?after=0&limit=5000").await;
        v["changes"]
            .as_array()
            .unwrap()
            .last()
            .map_or(0, |c| c["seq"].as_i64().unwrap())
    }

    /// (entity, op, ref) of the change feed after `seq`.
    async fn changes_after(&self, seq: i64) -> Vec<(String, String, String)> {
        let v = self
            .get(&format!("/v1/changes?after={seq}&limit=5000"))
            .await;
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["entity"].as_str().unwrap().to_owned(),
                    c["op"].as_str().unwrap().to_owned(),
                    c["ref"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn all_ids(&self) -> BTreeSet<String> {
        self.published.entry_ids.iter().cloned().collect()
    }

    async fn done(self) {
        self.reg.shutdown().await.unwrap();
        self.server.shutdown().await;
    }
}

async fn a_dead_territory_link_on_a_first_crawl_is_a_finding(backend: Backend) {
    let e = env(
        backend,
        [127, 0, 0, 120],
        |s, spec, _| s.set_status(&spec.territory_path("lf-b"), 404, None),
        |_| {},
    )
    .await;
    assert_eq!(e.crawl().await.0, "ok");
    // Searchable, every entry, the dead link's entry without a territory.
    assert_eq!(e.searchable_ids().await, e.all_ids());
    let t = e.territories().await;
    assert!(t["lf-b"].is_none(), "{t:?}");
    assert!(t["lf-a"].is_some() && t["lf-c"].is_some(), "{t:?}");
    let f = e.findings("COV-GEO-FETCH").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["severity"], "error");
    assert_eq!(f[0]["pointer"], "/coverage_entries/0/geojson_resource");
    assert_eq!(f[0]["url"], e.published.page_urls(&e.server)[1].as_str());
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("without a territory"),
        "{f:#?}"
    );
    // The OAuth offers are stored as usual.
    let id = e.server_row().await.id;
    assert!(e.reg.state.store.server_oauth(id).await.unwrap().is_some());
    e.done().await;
}

async fn a_territory_that_now_fails_keeps_its_territory_and_is_not_removed(backend: Backend) {
    let e = env(backend, [127, 0, 0, 121], |_, _, _| {}, |_| {}).await;
    assert_eq!(e.crawl().await.0, "ok");
    let before = e.territories().await;
    assert!(before.values().all(Option::is_some), "{before:?}");
    assert!(e.findings("COV-GEO-FETCH").await.is_empty());
    let seq = e.last_seq().await;

    // The territory now answers 410; the metadata changed meanwhile, so the server is
    // committed (and a change that is not about the entry is still recorded).
    let geo = e.spec.territory_path("lf-a");
    e.server.set_status(&geo, 410, None);
    e.server.update_json(WELL_KNOWN_PATH, |v| {
        v["description"] = "changed".into();
    });
    assert_eq!(e.crawl().await.0, "ok");
    assert_eq!(e.territories().await, before, "every territory kept");
    let f = e.findings("COV-GEO-FETCH").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("keeps the territory"),
        "flagged as kept: {f:#?}"
    );
    assert_eq!(
        f[0]["actual"].as_str().unwrap().split(' ').nth(1),
        Some("410")
    );
    let changes = e.changes_after(seq).await;
    assert!(
        !changes.iter().any(|c| c.1 == "removed"),
        "a 410 territory is not a removed entry: {changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c.0 == "entry"),
        "the entry did not change: {changes:?}"
    );
    assert!(changes.contains(&(
        "server".into(),
        "updated".into(),
        e.published.metadata_url.clone()
    )));
    assert_eq!(e.searchable_ids().await, e.all_ids());

    // Recovery: the finding goes, the territory stays.
    e.server.clear_status(&geo);
    assert_eq!(e.crawl().await.0, "ok");
    assert!(e.findings("COV-GEO-FETCH").await.is_empty());
    assert_eq!(e.territories().await, before);

    // A 200 whose body is not JSON fails as permanently as a 410 (§5a): same finding,
    // the territory is kept, no entry is removed.
    let seq = e.last_seq().await;
    e.server
        .set_raw(&geo, "application/geo+json", "<html>maintenance</html>");
    assert_eq!(e.crawl().await.0, "ok");
    assert_eq!(e.territories().await, before, "every territory kept");
    let f = e.findings("COV-GEO-FETCH").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        e.findings("GEO-NO-POLYGON").await.is_empty(),
        "not a GEO finding"
    );
    let changes = e.changes_after(seq).await;
    assert!(
        !changes.iter().any(|c| c.1 == "removed"),
        "a broken territory is not a removed entry: {changes:?}"
    );
    assert_eq!(e.searchable_ids().await, e.all_ids());
    e.done().await;
}

async fn failing_oauth_metadata_leaves_the_server_without_offers(backend: Backend) {
    let e = env(
        backend,
        [127, 0, 0, 122],
        |s, spec, _| s.set_status(&spec.oauth_metadata_path(), 404, None),
        |_| {},
    )
    .await;
    assert_eq!(e.crawl().await.0, "ok");
    let id = e.server_row().await.id;
    assert!(e.reg.state.store.server_oauth(id).await.unwrap().is_none());
    assert_eq!(e.searchable_ids().await, e.all_ids());
    let f = e.findings("OAUTH-FETCH").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["severity"], "error");
    assert_eq!(f[0]["pointer"], "/oauth_metadata");
    let v = e.get("/v1/coverage?scope=cds_usage").await;
    assert_eq!(v["total"], 0, "no offers from a missing document");

    // It recovers, then answers something that is not JSON: the offers go again.
    let path = e.spec.oauth_metadata_path();
    e.server.clear_status(&path);
    assert_eq!(e.crawl().await.0, "ok");
    assert!(e.reg.state.store.server_oauth(id).await.unwrap().is_some());
    assert!(e.findings("OAUTH-FETCH").await.is_empty());
    e.server
        .set_raw(&path, "application/json", "<html>maintenance</html>");
    assert_eq!(e.crawl().await.0, "ok");
    assert!(e.reg.state.store.server_oauth(id).await.unwrap().is_none());
    let f = e.findings("OAUTH-FETCH").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0]["actual"].as_str().unwrap().contains("invalid_json"),
        "{f:#?}"
    );
    e.done().await;
}

async fn a_failed_page_keeps_the_entries(backend: Backend) {
    // First crawl: page 2 is missing. The entries read are stored, the outcome says why
    // the listing is partial.
    let e = env(
        backend,
        [127, 0, 0, 123],
        |s, _, p| s.set_status(&p.page_paths[1], 404, None),
        |_| {},
    )
    .await;
    let (outcome, detail) = e.crawl().await;
    assert_eq!(outcome, "partial");
    assert!(detail.unwrap().contains("incomplete"));
    assert_eq!(
        e.searchable_ids().await,
        BTreeSet::from(["lf-a".to_owned()]),
        "only the first page was reachable"
    );
    let f = e.findings("COV-PAGE-FETCH").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["url"], e.published.page_urls(&e.server)[1].as_str());

    // It recovers: every entry. Then page 2 fails again while page 1 changes: page 1's
    // change lands, and no unread entry is removed.
    e.server.clear_status(&e.published.page_paths[1]);
    assert_eq!(e.crawl().await.0, "ok");
    assert_eq!(e.searchable_ids().await, e.all_ids());
    assert!(e.findings("COV-PAGE-FETCH").await.is_empty());
    let seq = e.last_seq().await;
    e.server.update_json(&e.published.page_paths[0], |v| {
        v["coverage_entries"][0]["name"] = "Renamed area".into();
    });
    e.server.set_status(&e.published.page_paths[1], 410, None);
    assert_eq!(e.crawl().await.0, "partial");
    assert_eq!(e.searchable_ids().await, e.all_ids(), "unread entries kept");
    let changes = e.changes_after(seq).await;
    assert!(!changes.iter().any(|c| c.1 == "removed"), "{changes:?}");
    assert!(
        changes.contains(&("entry".into(), "updated".into(), "lf-a".into())),
        "{changes:?}"
    );
    assert_eq!(e.findings("COV-PAGE-FETCH").await.len(), 1);
    // The scope still covers the kept entries of the unread page: no false
    // OAUTH-COVERAGE-UNKNOWN for them.
    let unknown = e.findings("OAUTH-COVERAGE-UNKNOWN").await;
    assert!(unknown.is_empty(), "{unknown:#?}");

    // A transient failure of a page keeps the whole last known good state (as before).
    e.server.set_status(&e.published.page_paths[1], 503, None);
    e.server.update_json(&e.published.page_paths[0], |v| {
        v["coverage_entries"][0]["name"] = "Renamed again".into();
    });
    let seq = e.last_seq().await;
    assert_eq!(e.crawl().await.0, "http_status");
    assert!(e.changes_after(seq).await.is_empty());
    e.done().await;
}

async fn the_page_cap_is_a_limit_with_a_finding(backend: Backend) {
    let e = env(backend, [127, 0, 0, 124], |_, _, _| {}, |c| c.max_pages = 2).await;
    let (outcome, detail) = e.crawl().await;
    assert_eq!(outcome, "partial");
    assert!(detail.unwrap().contains("crawl.max_pages"));
    let f = e.findings("COV-PAGE-CAP").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["severity"], "warning");
    assert!(
        e.findings("COV-PAGE-LOOP").await.is_empty(),
        "a limit, not a loop"
    );
    assert_eq!(
        e.searchable_ids().await,
        BTreeSet::from(["lf-a".to_owned(), "lf-b".to_owned()])
    );
    e.done().await;
}

async fn redirects_307_and_308_are_moves_with_a_finding(backend: Backend) {
    for status in [307u16, 308] {
        let e = env(backend, [127, 0, 0, 125], |_, _, _| {}, |_| {}).await;
        let old = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 126))
            .await
            .unwrap();
        old.redirect(WELL_KNOWN_PATH, status, e.published.metadata_url.clone());
        let store = &e.reg.state.store;
        store
            .add_hosts(&[Seed::Host(old.host())], "seed")
            .await
            .unwrap();
        // The crawl needs plain http to the old host too.
        let cfg = test_config(&e._db, vec![old.host(), e.server.host()]).crawl;
        let crawler = cds_registry::crawl::Crawler::new(store.clone(), cfg).unwrap();
        let run = crawler.run("test", &[old.host()]).await.unwrap();
        assert_eq!(run.outcomes[0].1.as_str(), "ok", "{status}");
        let hosts = store.list_hosts().await.unwrap();
        let h = hosts.iter().find(|h| h.seed == old.host()).unwrap();
        assert_eq!(h.status.as_str(), "moved", "{status}");
        assert_eq!(
            h.moved_to.as_deref(),
            Some(e.published.metadata_url.as_str())
        );
        let f = e.findings("WK-REDIRECT").await;
        assert_eq!(f.len(), 1, "{status}: {f:#?}");
        assert_eq!(f[0]["severity"], "warning");
        assert_eq!(f[0]["actual"], status.to_string());
        assert_eq!(store.list_servers().await.unwrap().len(), 1, "no duplicate");
        old.shutdown().await;
        e.done().await;
    }
}

/// A plain crawl configuration for `validate` on loopback.
fn validate_cfg(host: String) -> CrawlConfig {
    CrawlConfig {
        allow_http: vec![host],
        allow_private: vec!["127.0.0.0/8".into()],
        connect_timeout_ms: 2_000,
        first_byte_timeout_ms: 2_000,
        total_timeout_ms: 5_000,
        ..CrawlConfig::default()
    }
}

/// `validate` the server, which must conform (exit 0).
async fn validate_conforming(cfg: &CrawlConfig, server: &FixtureServer) {
    let r = validate_target(cfg, &server.host()).await;
    let text = cds_registry::cli::validate::render_text(&r);
    assert_eq!(r.exit_code(), 0, "{text}");
}

fn rules_of(r: &cds_registry::cli::validate::Report) -> BTreeSet<String> {
    r.findings().map(|f| f.rule.clone()).collect()
}

/// `validate` reports every finding it can compute whatever linked document failed
/// (exit 1), including transient failures, and exits 2 only for the metadata itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_every_finding_and_exits_2_only_for_the_metadata() {
    let server = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 127))
        .await
        .unwrap();
    let spec = spec();
    let published = publish(&server, &spec);
    let cfg = validate_cfg(server.host());
    validate_conforming(&cfg, &server).await;

    server.set_status(&spec.territory_path("lf-a"), 404, None);
    // Transient for a crawl, reported all the same by `validate`.
    server.set_status(&spec.territory_path("lf-b"), 503, None);
    server.set_status(&spec.oauth_metadata_path(), 404, None);
    server.set_status(&published.page_paths[2], 500, None);
    server.update_json(WELL_KNOWN_PATH, |v| v["cds_metadata_version"] = "v2".into());
    let r = validate_target(&cfg, &server.host()).await;
    let text = cds_registry::cli::validate::render_text(&r);
    assert_eq!(r.exit_code(), 1, "{text}");
    assert!(r.failure.is_none());
    let rules = rules_of(&r);
    for want in [
        "COV-GEO-FETCH",
        "OAUTH-FETCH",
        "COV-PAGE-FETCH",
        "META-VERSION",
    ] {
        assert!(rules.contains(want), "{want}: {text}");
    }
    // lf-c is on page 3, which failed: two territory findings, for lf-a and lf-b.
    assert_eq!(
        r.findings().filter(|f| f.rule == "COV-GEO-FETCH").count(),
        2,
        "{text}"
    );

    server.set_status(WELL_KNOWN_PATH, 404, None);
    let r = validate_target(&cfg, &server.host()).await;
    assert_eq!(r.exit_code(), 2);
    server.shutdown().await;
}

/// `validate` probes the `ids` filter once; the crawler never sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_probes_the_ids_filter() {
    let server = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 128))
        .await
        .unwrap();
    let spec = UtilitySpec::new("Ids Filter Gas")
        .entry(EntrySpec::geographic(
            "if-a",
            "Ids Filter Gas",
            "A",
            &["17019"],
        ))
        .entry(EntrySpec::geographic(
            "if-b",
            "Ids Filter Gas",
            "B",
            &["17113"],
        ));
    let published = publish(&server, &spec);
    let cfg = validate_cfg(server.host());
    validate_conforming(&cfg, &server).await;
    let probes = server
        .requests()
        .iter()
        .filter(|q| q.query.as_deref().is_some_and(|q| q.starts_with("ids=")))
        .count();
    assert_eq!(probes, 1, "probed once");

    server.ignore_ids_filter(true);
    let r = validate_target(&cfg, &server.host()).await;
    assert_eq!(r.exit_code(), 1);
    let f: Vec<_> = r
        .findings()
        .filter(|f| f.rule == "COV-IDS-FILTER")
        .collect();
    assert_eq!(
        f.len(),
        1,
        "{}",
        cds_registry::cli::validate::render_text(&r)
    );
    assert_eq!(f[0].url, published.coverage_url.clone().unwrap());
    assert!(f[0].actual.as_deref().unwrap().starts_with("2 entries"));
    server.shutdown().await;
}
