//! No data lost: a crawler killed with SIGKILL mid-run leaves every server at its last
//! committed state and the next run completes; with the database down the API keeps
//! answering searches from memory and `/readyz` says degraded.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_testkit::web::{names, FixtureWeb};
use cds_testkit::ExpectedExt;
use common::{crawled_fixture_web, postgres_admin_url, test_config, Backend, TestDb};
use sqlx::Connection;

/// server name → sorted entry names.
async fn snapshot(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for s in store.list_servers().await.unwrap() {
        let mut names: Vec<String> = store
            .server_entries(s.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.entry.name)
            .collect();
        names.sort();
        out.insert(s.name, names);
    }
    out
}

async fn a_killed_crawl_leaves_the_last_committed_state(backend: Backend) {
    let web = FixtureWeb::start().await.unwrap();
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
    store.add_hosts(&seeds, "seed").await.unwrap();
    let mut cfg = test_config(&db, web.allow_http());
    cfg.crawl.lease_secs = 2;
    let crawler = cds_registry::crawl::Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    crawler.run("test", &[]).await.unwrap();
    let before = snapshot(&store).await;

    // Every server renames its entries; Prairie's last page is slow, so the killed run
    // has committed some servers and not others.
    common::rename_everything(&web);
    let prairie = web.published(names::PRAIRIE).unwrap().clone();
    web.prairie
        .set_delay(&prairie.page_paths[2], Duration::from_secs(30));

    let mut child = common::registry_cli(&db.url, &web.allow_http())
        .arg("crawl")
        .env("CDS_REGISTRY_CRAWL__FIRST_BYTE_TIMEOUT_MS", "60000")
        .env("CDS_REGISTRY_CRAWL__TOTAL_TIMEOUT_MS", "60000")
        .env("CDS_REGISTRY_CRAWL__LEASE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the slow page is being fetched, then SIGKILL.
    for _ in 0..200 {
        if web.prairie.hits(&prairie.page_paths[2]) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        web.prairie.hits(&prairie.page_paths[2]) > 0,
        "the crawl reached the slow page"
    );
    // Kill once another server's commit has landed (bounded: Prairie's page waits 30 s),
    // so the kill falls between commits whatever the machine's speed.
    let renamed_servers = |snap: &BTreeMap<String, Vec<String>>| {
        snap.values()
            .filter(|es| !es.is_empty() && es.iter().all(|e| e.ends_with("(renamed)")))
            .count()
    };
    for _ in 0..200 {
        if renamed_servers(&snapshot(&store).await) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Each server is entirely old or entirely new; Prairie (mid-crawl) is old.
    let after_kill = snapshot(&store).await;
    assert_eq!(after_kill.len(), before.len());
    let mut renamed = 0;
    for (name, entries) in &after_kill {
        let old = &before[name];
        let all_new = entries.iter().all(|e| e.ends_with("(renamed)"));
        assert!(
            entries == old || all_new,
            "{name} is half-committed: {entries:?}"
        );
        if all_new && !entries.is_empty() {
            renamed += 1;
        }
    }
    assert_eq!(after_kill[names::PRAIRIE], before[names::PRAIRIE]);
    assert!(
        renamed >= 1,
        "servers committed before the kill keep their new state"
    );

    // The next run resumes the interrupted one: once the dead worker's lease (2 s)
    // expires, its host is taken over, and everything is up to date.
    web.prairie
        .set_delay(&prairie.page_paths[2], Duration::ZERO);
    let interrupted = store
        .running_run()
        .await
        .unwrap()
        .expect("the killed run is still open");
    let resumed = crawler.run("test", &[]).await.unwrap();
    assert_eq!(resumed.run_id, interrupted);
    assert_eq!(
        store.run(interrupted).await.unwrap().status.as_str(),
        "finished"
    );
    let outcomes = store.run_outcomes(interrupted).await.unwrap();
    let mut seeds: Vec<&String> = outcomes.iter().map(|(s, _)| s).collect();
    seeds.sort();
    let n = seeds.len();
    seeds.dedup();
    assert_eq!(seeds.len(), n, "each host has one outcome in the run");
    let done = snapshot(&store).await;
    assert!(done[names::PRAIRIE]
        .iter()
        .all(|e| e.ends_with("(renamed)")));
    web.shutdown().await;
}

both_backends!(a_killed_crawl_leaves_the_last_committed_state);

/// Postgres only: taking one database away from a running registry is something only a
/// server database can do to a test without touching the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_from_memory_while_the_database_is_down() {
    let (web, db, reg) = crawled_fixture_web(Backend::Postgres).await;
    let c = reqwest::Client::new();
    let p = web.expected().point("06053").cloned().unwrap();
    let lookup = format!("{}/v1/lookup?lat={}&lon={}", reg.url(), p.lat, p.lon);

    let dbname = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::postgres::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    let stmt = format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS false");
    sqlx::query(&stmt).execute(&mut admin).await.unwrap();
    let stmt = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'"
    );
    sqlx::query(&stmt).execute(&mut admin).await.unwrap();

    let r = c.get(format!("{}/readyz", reg.url())).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "degraded");
    let r = c.get(&lookup).send().await.unwrap();
    assert_eq!(r.status(), 200, "searches are answered from memory");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    // A crawl cannot start without the database, and changes nothing.
    assert!(reg.crawler.run("test", &[]).await.is_err());

    let stmt = format!("ALTER DATABASE {dbname} ALLOW_CONNECTIONS true");
    sqlx::query(&stmt).execute(&mut admin).await.unwrap();
    let mut ready = false;
    for _ in 0..50 {
        let r = c.get(format!("{}/readyz", reg.url())).send().await.unwrap();
        if r.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once the database is back");
    reg.shutdown().await.unwrap();
    web.shutdown().await;
}
