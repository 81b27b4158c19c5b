//! The crawl pipeline end to end: fixture utilities on loopback, a real database on both
//! backends, the real crawler.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cds_registry::cds::WELL_KNOWN_PATH;
use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::{now_ms, FindingFilter, Store};
use cds_testkit::web::{names, FixtureWeb};
use cds_testkit::ExpectedExt;
use common::{test_config, Backend, TestDb};

struct Setup {
    web: FixtureWeb,
    store: Store,
    crawler: Crawler,
    _db: TestDb,
}

async fn setup(backend: Backend) -> Setup {
    let web = FixtureWeb::start().await.expect("fixtures start");
    let db = TestDb::new(backend).await;
    let cfg = test_config(&db, web.allow_http());
    let store = db.store().await;
    let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
    assert_eq!(store.add_hosts(&seeds, "seed").await.unwrap(), seeds.len());
    // Seeding again is idempotent.
    assert_eq!(store.add_hosts(&seeds, "seed").await.unwrap(), 0);
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    Setup {
        web,
        store,
        crawler,
        _db: db,
    }
}

/// server name → (url, status, entry ids sorted)
async fn stored(store: &Store) -> BTreeMap<String, (String, String, Vec<String>)> {
    let mut out = BTreeMap::new();
    for s in store.list_servers().await.unwrap() {
        let mut ids: Vec<String> = store
            .server_entries(s.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.entry.id)
            .collect();
        ids.sort();
        out.insert(s.name.clone(), (s.url.clone(), s.status.to_string(), ids));
    }
    out
}

async fn crawl_stores_the_fixture_web(backend: Backend) {
    let s = setup(backend).await;
    let exp = s.web.expected();
    let summary = s.crawler.run("test", &[]).await.unwrap();
    let outcomes: BTreeMap<String, String> = summary
        .outcomes
        .iter()
        .map(|(h, o)| (h.clone(), o.to_string()))
        .collect();
    assert_eq!(summary.totals.hosts_total, s.web.seeds().len() as i64);
    assert_eq!(outcomes[&s.web.flaky.host()], "http_status");
    assert_eq!(outcomes[&s.web.gone.host()], "http_status");
    assert_eq!(outcomes[&s.web.sierra.host()], "ok");

    let servers = stored(&s.store).await;
    assert_eq!(servers.len(), exp.stored_servers(), "{servers:#?}");
    let mut total_entries = 0;
    for e in exp.servers.iter().filter(|e| e.stored_by_default) {
        let (url, status, ids) = servers
            .get(&e.name)
            .unwrap_or_else(|| panic!("{} not stored", e.name));
        assert_eq!(url, &e.metadata_url, "{}", e.name);
        assert_eq!(status, "active");
        let mut want = e.entry_ids.clone();
        want.sort();
        want.dedup();
        assert_eq!(ids, &want, "entries of {}", e.name);
        total_entries += ids.len();
    }
    assert_eq!(total_entries, exp.stored_entries());
    assert!(!servers.contains_key(names::FLAKY));
    assert!(!servers.contains_key(names::GONE));

    // Parent links from related_metadata (the cycle back to the root adds nothing).
    let list = s.store.list_servers().await.unwrap();
    let by_url = |u: &str| list.iter().find(|x| x.url == u).unwrap();
    for e in exp.servers.iter().filter(|e| e.parent.is_some()) {
        let child = by_url(&e.metadata_url);
        let parent = by_url(e.parent.as_deref().unwrap());
        assert_eq!(child.parent_id, Some(parent.id), "{}", e.name);
    }
    let root = by_url(&s.web.great_lakes.url(WELL_KNOWN_PATH));
    assert_eq!(
        root.parent_id, None,
        "the cycle must not make the root its own grandchild"
    );

    // The 301: the old host is recorded as moved, the server stored once at its new URL.
    let hosts = s.store.list_hosts().await.unwrap();
    let mv = &exp.moved[0];
    let old = hosts.iter().find(|h| h.seed == mv.old_host).unwrap();
    assert_eq!(old.status.as_str(), "moved");
    assert_eq!(old.moved_to.as_deref(), Some(mv.new_url.as_str()));
    assert_eq!(
        list.iter()
            .filter(|x| x.name == names::OLD_DOMINION)
            .count(),
        1
    );

    // Back-off: Flaky's Retry-After (120 s) pushes its next attempt out.
    let flaky = hosts.iter().find(|h| h.seed == s.web.flaky.host()).unwrap();
    assert_eq!(flaky.consecutive_failures, 1);
    assert!(
        flaky.next_due_ms >= now_ms() + 100_000,
        "Retry-After honoured"
    );

    // Findings: the rules the scenario triggers, per server.
    for e in exp.servers.iter().filter(|e| e.stored_by_default) {
        let id = by_url(&e.metadata_url).id;
        let f = s
            .store
            .list_findings(&FindingFilter {
                server_id: Some(id),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
        rules.sort();
        rules.dedup();
        let mut want = e.rules.clone();
        want.sort();
        assert_eq!(rules, want, "findings of {}: {f:#?}", e.name);
    }
    let counts = s.store.counts().await.unwrap();
    assert!(counts.territories > 0);
    assert!(counts.changes >= (exp.stored_servers() + exp.stored_entries()) as i64);
    s.web.shutdown().await;
}

async fn second_crawl_downloads_only_304s(backend: Backend) {
    let s = setup(backend).await;
    let first = s.crawler.run("test", &[]).await.unwrap();
    assert!(first.totals.docs_fetched > 20);
    let before = s.store.counts().await.unwrap();
    s.web.reset_counts();
    // Crawl every host that succeeded (the failing ones are backing off).
    let second = s.crawler.run("test", &[]).await.unwrap();
    assert_eq!(second.totals.docs_fetched, 0, "{second:#?}");
    assert!(second.totals.docs_unchanged >= 20, "{second:#?}");
    assert_eq!(s.web.count_200(), 0, "every document answered 304");
    assert_eq!(s.web.count_304() as i64, second.totals.docs_unchanged);
    assert_eq!(second.servers_changed, 0);
    let after = s.store.counts().await.unwrap();
    assert_eq!(before, after, "an unchanged crawl changes nothing stored");
    s.web.shutdown().await;
}

async fn a_failed_crawl_keeps_the_last_known_good_state(backend: Backend) {
    let s = setup(backend).await;
    s.crawler.run("test", &[]).await.unwrap();
    let before = stored(&s.store).await;
    let prairie = s.web.published(names::PRAIRIE).unwrap().clone();
    // Page 3 of the paginated listing breaks; page 1 changed meanwhile.
    s.web.prairie.update_json(&prairie.page_paths[0], |v| {
        v["coverage_entries"][0]["name"] = "Renamed area".into();
    });
    s.web.prairie.set_status(&prairie.page_paths[2], 503, None);
    let run = s
        .crawler
        .run("test", &[s.web.prairie.host()])
        .await
        .unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "http_status");
    assert_eq!(
        stored(&s.store).await,
        before,
        "nothing replaced by a partial crawl"
    );
    let list = s.store.list_servers().await.unwrap();
    let server = list.iter().find(|x| x.name == names::PRAIRIE).unwrap();
    let entries = s.store.server_entries(server.id).await.unwrap();
    assert!(entries.iter().all(|e| e.entry.name != "Renamed area"));

    // Recovery: the change lands, and the change feed says exactly which entry changed.
    s.web.prairie.clear_status(&prairie.page_paths[2]);
    let seq = common::last_change_seq(&s.store).await;
    let run = s
        .crawler
        .run("test", &[s.web.prairie.host()])
        .await
        .unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "ok");
    let changes = s.store.changes_after(seq, 1000).await.unwrap();
    let ops: Vec<(String, String)> = changes
        .iter()
        .map(|c| (c.entity.to_string(), c.op.to_string()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("server".into(), "updated".into()),
            ("entry".into(), "updated".into())
        ],
        "{changes:#?}"
    );
    let entries = s.store.server_entries(server.id).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.entry.name == "Renamed area")
            .count(),
        1
    );
    s.web.shutdown().await;
}

async fn removed_entries_and_timeouts_are_classified(backend: Backend) {
    let s = setup(backend).await;
    s.crawler.run("test", &[]).await.unwrap();
    // The slow host now answers after the first-byte timeout (2 s in tests).
    s.web.set_slow_delay(Duration::from_secs(4));
    let run = s.crawler.run("test", &[s.web.slow.host()]).await.unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "timeout");
    let slow = common::server_named(&s.store, names::SLOW).await;
    assert_eq!(
        slow.status.as_str(),
        "active",
        "one timeout does not make a server stale"
    );
    assert!(slow.last_failure.is_some());

    // Sierra drops its gas entry: one `removed` change, and the entry is gone.
    let sierra = s.web.published(names::SIERRA).unwrap().clone();
    let page = sierra.page_paths[0].clone();
    let mut removed = String::new();
    s.web.sierra.update_json(&page, |v| {
        let arr = v["coverage_entries"].as_array_mut().unwrap();
        removed = arr.pop().unwrap()["id"].as_str().unwrap().to_owned();
    });
    let seq = common::last_change_seq(&s.store).await;
    s.crawler.run("test", &[s.web.sierra.host()]).await.unwrap();
    let changes = s.store.changes_after(seq, 1000).await.unwrap();
    assert!(changes.iter().any(|c| c.entity.as_str() == "entry"
        && c.op.as_str() == "removed"
        && c.reference == removed));
    let all = stored(&s.store).await;
    assert!(!all[names::SIERRA].2.contains(&removed));
    s.web.shutdown().await;
}

async fn hosts_that_keep_failing_become_stale(backend: Backend) {
    let s = setup(backend).await;
    s.crawler.run("test", &[]).await.unwrap();
    // Lone Star disappears: after `stale_after_failures` (3) failures its server is stale.
    let lone = s.web.published(names::LONE_STAR).unwrap().clone();
    s.web.lone_star.remove(&lone.metadata_path);
    for _ in 0..3 {
        let r = s
            .crawler
            .run("test", &[s.web.lone_star.host()])
            .await
            .unwrap();
        assert_eq!(r.outcomes[0].1.as_str(), "http_status");
    }
    let server = common::server_named(&s.store, names::LONE_STAR).await;
    assert_eq!(server.status.as_str(), "stale");
    let host = s
        .store
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.seed == s.web.lone_star.host())
        .unwrap();
    assert_eq!(host.status.as_str(), "stale");
    assert_eq!(host.consecutive_failures, 3);
    // Still searchable while stale; entries kept.
    assert_eq!(
        s.store.server_entries(server.id).await.unwrap().len(),
        lone.entry_ids.len()
    );
    s.web.shutdown().await;
}

both_backends!(
    crawl_stores_the_fixture_web,
    second_crawl_downloads_only_304s,
    a_failed_crawl_keeps_the_last_known_good_state,
    removed_entries_and_timeouts_are_classified,
    hosts_that_keep_failing_become_stale,
);

/// The same crawl on SQLite and on Postgres stores the same servers and entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_hold_identical_state_after_the_same_crawl() {
    let web = FixtureWeb::start().await.unwrap();
    let mut results = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let cfg = test_config(&db, web.allow_http());
        let store = db.store().await;
        let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
        store.add_hosts(&seeds, "seed").await.unwrap();
        let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
        crawler.run("test", &[]).await.unwrap();
        let counts = store.counts().await.unwrap();
        results.push((counts, stored(&store).await));
    }
    assert_eq!(results[0].0.servers, results[1].0.servers);
    assert_eq!(results[0].0.entries, results[1].0.entries);
    assert_eq!(results[0].0.territories, results[1].0.territories);
    assert_eq!(results[0].0.findings, results[1].0.findings);
    assert_eq!(results[0].1, results[1].1);
    web.shutdown().await;
}
