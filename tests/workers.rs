//! Past one machine: workers lease hosts through the database, a dead worker's hosts are
//! taken over, API replicas follow commits, and the change feed lists exactly what
//! changed. Postgres is the shared engine; the endpoints also run on SQLite.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cds_registry::cds::WELL_KNOWN_PATH;
use cds_registry::cli::serve::{self, Role};
use cds_registry::crawl::{Crawler, NoProgress};
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_testkit::utility::{publish, EntrySpec, UtilitySpec};
use cds_testkit::FixtureServer;
use common::{start_registry, test_config, Backend, TestDb};
use serde_json::{json, Value};

/// `n` small utilities on loopback (metadata only), each answering after `delay`.
async fn small_web(n: usize, delay: Duration) -> Vec<FixtureServer> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let ip = Ipv4Addr::new(127, 0, 1 + (i / 200) as u8, 1 + (i % 200) as u8);
        let s = FixtureServer::start(ip).await.unwrap();
        publish(&s, &UtilitySpec::new(&format!("Utility {i}")));
        s.set_delay(WELL_KNOWN_PATH, delay);
        out.push(s);
    }
    out
}

async fn seeded(
    backend: Backend,
    web: &[FixtureServer],
) -> (TestDb, cds_registry::config::Config, Store) {
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, web.iter().map(|s| s.host()).collect());
    cfg.crawl.concurrency = 8;
    cfg.database_max_connections = 8;
    let store = db.store().await;
    let seeds: Vec<Seed> = web.iter().map(|s| Seed::Host(s.host())).collect();
    store.add_hosts(&seeds, "seed").await.unwrap();
    (db, cfg, store)
}

/// [`start_registry`] with `host` seeded.
async fn start_seeded(cfg: cds_registry::config::Config, host: String) -> serve::Running {
    let reg = start_registry(cfg).await;
    reg.state
        .store
        .add_hosts(&[Seed::Host(host)], "seed")
        .await
        .unwrap();
    reg
}

/// A minimal Server-Sent Events reader for `/v1/changes/stream` (every wait is bounded).
struct EventReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl EventReader {
    async fn open(url: &str, last_event_id: Option<i64>) -> EventReader {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        EventReader {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next `change` event as (id, data), or None when none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(i64, Value)> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data, mut event) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<i64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    assert_eq!(event.as_deref(), Some("change"));
                    return Some((id, data));
                }
                // A keep-alive comment: read on.
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }

    /// Events until none comes for `quiet`.
    async fn drain(&mut self, quiet: Duration) -> Vec<(i64, Value)> {
        let mut out = Vec::new();
        while let Some(e) = self.next(quiet).await {
            out.push(e);
        }
        out
    }
}

/// (entity, op, ref) of each row of a `/v1/changes` page.
fn change_rows(page: &Value) -> Vec<(String, String, String)> {
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["entity"].as_str().unwrap().into(),
                c["op"].as_str().unwrap().into(),
                c["ref"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// (entity, op) of each row of a `/v1/changes` page.
fn entity_ops(page: &Value) -> Vec<(String, String)> {
    change_rows(page)
        .into_iter()
        .map(|(entity, op, _)| (entity, op))
        .collect()
}

/// host seed → outcomes recorded in `run_id`
async fn outcomes_by_host(store: &Store, run_id: i64) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (seed, _) in store.run_outcomes(run_id).await.unwrap() {
        *m.entry(seed).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_a_run_and_crawl_each_host_once() {
    let web = small_web(500, Duration::from_millis(40)).await;
    let (db, cfg, store) = seeded(Backend::Postgres, &web).await;

    // One worker alone.
    let one = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    let t = Instant::now();
    let run1 = one.run("test", &[]).await.unwrap();
    let alone = t.elapsed();
    let o1 = outcomes_by_host(&store, run1.run_id).await;
    assert_eq!(o1.len(), 500);
    assert!(o1.values().all(|&n| n == 1));

    // Two workers with separate pools (as two processes would have).
    let store_b = Store::open(&db.url, 8).await.unwrap();
    let a = Arc::new(Crawler::new(store.clone(), cfg.crawl.clone()).unwrap());
    let b = Arc::new(Crawler::new(store_b.clone(), cfg.crawl.clone()).unwrap());
    let t = Instant::now();
    let (run_id, total) = a.trigger("test", &[]).await.unwrap();
    assert_eq!(total, 500);
    let (ra, rb) = tokio::join!(a.work(&NoProgress), b.work(&NoProgress));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        store.maybe_finish_run(run_id).await.unwrap()
            || store.run(run_id).await.unwrap().status.as_str() == "finished"
    );
    let together = t.elapsed();
    let o2 = outcomes_by_host(&store, run_id).await;
    assert_eq!(o2.len(), 500, "every host crawled");
    assert!(o2.values().all(|&n| n == 1), "no host crawled twice");
    assert_eq!(ra.outcomes.len() + rb.outcomes.len(), 500);
    assert!(
        ra.outcomes.len() > 50 && rb.outcomes.len() > 50,
        "both workers took part: {} / {}",
        ra.outcomes.len(),
        rb.outcomes.len()
    );
    // The run's progress is the same seen from either worker's connection.
    assert_eq!(store_b.run(run_id).await.unwrap().hosts_ok, 500);
    println!("one worker: {alone:?}, two workers: {together:?}");
    assert!(
        together < alone,
        "two workers ({together:?}) are faster than one ({alone:?})"
    );
    for s in web {
        s.shutdown().await;
    }
}

async fn a_dead_workers_hosts_are_taken_over(backend: Backend) {
    let web = small_web(24, Duration::from_millis(1500)).await;
    let (db, mut cfg, store) = seeded(backend, &web).await;
    cfg.crawl.lease_secs = 1;
    let a = Arc::new(Crawler::new(store.clone(), cfg.crawl.clone()).unwrap());
    let (run_id, _) = a.trigger("test", &[]).await.unwrap();
    // Worker A leases a first batch and dies mid-crawl (its task is dropped, so it never
    // records outcomes nor renews its leases).
    let a2 = a.clone();
    let dying = tokio::spawn(async move { a2.work(&NoProgress).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let leased = store.lease_counts().await.unwrap();
    assert!(
        leased.iter().any(|(w, n)| w == a.worker_id() && *n > 0),
        "{leased:?}"
    );
    dying.abort();
    let _ = dying.await;

    let store_b = Store::open(&db.url, 8).await.unwrap();
    let b = Crawler::new(store_b, cfg.crawl.clone()).unwrap();
    let summary = b.run("test", &[]).await.unwrap();
    assert_eq!(summary.run_id, run_id, "B joined the interrupted run");
    let o = outcomes_by_host(&store, run_id).await;
    assert_eq!(o.len(), 24, "every host finished");
    assert!(o.values().all(|&n| n == 1));
    assert_eq!(store.run(run_id).await.unwrap().status.as_str(), "finished");
    for s in web {
        s.shutdown().await;
    }
}

async fn change_feed_lists_exactly_the_mutations(backend: Backend) {
    let s = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 70))
        .await
        .unwrap();
    let spec = UtilitySpec::new("Feed Utility")
        .entry(
            EntrySpec::geographic("feed-a", "Feed Utility", "A", &["06069"])
                .dates("2024-01-03T00:00:00Z", "2024-01-03T00:00:00Z"),
        )
        .entry(
            EntrySpec::geographic("feed-b", "Feed Utility", "B", &["06053"])
                .dates("2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z"),
        )
        .entry(
            EntrySpec::geographic("feed-c", "Feed Utility", "C", &["06087"])
                .dates("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        );
    let p = publish(&s, &spec);
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, vec![s.host()]);
    cfg.crawl.stale_after_failures = 1;
    let reg = start_seeded(cfg, s.host()).await;
    reg.crawler.run("test", &[]).await.unwrap();
    let c = reqwest::Client::new();
    let feed = |after: i64| {
        let c = c.clone();
        let url = format!("{}/v1/changes?after={after}", reg.url());
        async move {
            c.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let v = feed(0).await;
    let first = entity_ops(&v);
    assert_eq!(
        first
            .iter()
            .filter(|(e, o)| e == "entry" && o == "added")
            .count(),
        3
    );
    let seq = v["next_after"].as_i64().unwrap();
    // The streaming form lists the same rows, `id` = `seq`, then stays open.
    let stream_url = format!("{}/v1/changes/stream?after=0", reg.url());
    let mut stream = EventReader::open(&stream_url, None).await;
    let streamed = stream.drain(Duration::from_millis(1500)).await;
    assert_eq!(
        streamed.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        v["changes"].as_array().unwrap().clone()
    );
    assert!(streamed.iter().all(|(id, d)| d["seq"] == *id));

    // Add D, update B, remove C.
    s.update_json(&p.page_paths[0], |v| {
        let arr = v["coverage_entries"].as_array_mut().unwrap();
        let mut d = arr[0].clone();
        d["id"] = "feed-d".into();
        d["updated"] = "2024-02-01T00:00:00Z".into();
        arr.retain(|e| e["id"] != "feed-c");
        for e in arr.iter_mut() {
            if e["id"] == "feed-b" {
                e["name"] = "B (renamed)".into();
            }
        }
        arr.insert(0, d);
    });
    reg.crawler.run("test", &[]).await.unwrap();
    let v = feed(seq).await;
    let mut got = change_rows(&v);
    got.sort();
    let url = p.metadata_url.clone();
    let mut want = vec![
        ("entry".to_owned(), "added".to_owned(), "feed-d".to_owned()),
        ("entry".into(), "removed".into(), "feed-c".into()),
        ("entry".into(), "updated".into(), "feed-b".into()),
        ("server".into(), "updated".into(), url.clone()),
    ];
    want.sort();
    assert_eq!(got, want);
    // The open stream delivered the same rows live, in seq order.
    let live = stream.drain(Duration::from_millis(2500)).await;
    assert_eq!(
        live.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        v["changes"].as_array().unwrap().clone()
    );
    // A reconnecting client resumes after its Last-Event-ID.
    let (resume_from, _) = live[1];
    let mut resumed = EventReader::open(&stream_url, Some(resume_from)).await;
    let rest = resumed.drain(Duration::from_millis(1500)).await;
    assert_eq!(rest, live[2..].to_vec());
    drop((stream, resumed));
    let seq = v["next_after"].as_i64().unwrap();

    // The well-known URL now 404s: the server goes stale (one failure in this config).
    s.remove(WELL_KNOWN_PATH);
    reg.crawler.run("test", &[]).await.unwrap();
    let v = feed(seq).await;
    let ops = entity_ops(&v);
    assert_eq!(ops, vec![("server".to_owned(), "stale".to_owned())]);
    // Bad input is a 400.
    let r = c
        .get(format!("{}/v1/changes?after=-1", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    reg.shutdown().await.unwrap();
    s.shutdown().await;
}

async fn crawl_runs_and_metrics_endpoints(backend: Backend) {
    let web = small_web(5, Duration::ZERO).await;
    let (db, cfg, _store) = seeded(backend, &web).await;
    let _ = db;
    // All roles in one process, with the background worker: the API's 202 is picked up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = cfg;
    cfg.crawl.poll_secs = 1;
    let reg = serve::start_with_role(cfg, listener, Role::All, true)
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let base = reg.url();
    let r = c
        .post(format!("{base}/v1/crawls"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "admin only");
    let r = c
        .post(format!("{base}/v1/crawls"))
        .bearer_auth("test-admin-token")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let run_id = v["run_id"].as_i64().unwrap();
    let mut finished = Value::Null;
    for _ in 0..100 {
        let v = common::get_ok_json(&c, &base, &format!("/v1/crawls/{run_id}")).await;
        if v["run"]["status"] == "finished" {
            finished = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(finished["run"]["hosts_ok"], 5, "{finished}");
    assert_eq!(finished["outcomes"]["ok"], 5);
    let v = common::get_ok_json(&c, &base, "/v1/crawls").await;
    assert_eq!(v["runs"][0]["id"], run_id);
    assert!(v["runs"][0]["duration_ms"].as_i64().is_some());
    let m = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "cds_fetches_total",
        "cds_fetch_duration_seconds",
        "cds_index_entries",
        "cds_crawl_runs_total",
        "cds_leases_held",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
    reg.shutdown().await.unwrap();
    for s in web {
        s.shutdown().await;
    }
}

/// An API replica (role `api`) sees a crawler process's commit without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_replica_follows_a_crawlers_commits() {
    let web = small_web(1, Duration::ZERO).await;
    let s = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 71))
        .await
        .unwrap();
    let spec = UtilitySpec::new("Replica Utility").entry(EntrySpec::geographic(
        "rep-a",
        "Replica Utility",
        "A",
        &["06069"],
    ));
    publish(&s, &spec);
    let (db, mut cfg, store) = seeded(Backend::Postgres, &web).await;
    cfg.crawl.allow_http.push(s.host());
    store
        .add_hosts(&[Seed::Host(s.host())], "seed")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = serve::start_with_role(cfg.clone(), listener, Role::Api, true)
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let total = |v: Value| v["total"].as_i64().unwrap();
    let url = format!("{}/v1/coverage?q=replica", api.url());
    assert_eq!(
        total(c.get(&url).send().await.unwrap().json().await.unwrap()),
        0
    );

    // A crawler elsewhere (its own pool) commits.
    let crawler_store = Store::open(&db.url, 4).await.unwrap();
    Crawler::new(crawler_store, cfg.crawl.clone())
        .unwrap()
        .run("test", &[])
        .await
        .unwrap();
    let t = Instant::now();
    let mut seen = 0;
    while t.elapsed() < Duration::from_secs(10) {
        seen = total(c.get(&url).send().await.unwrap().json().await.unwrap());
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1, "the replica's index picked up the commit");
    println!("replica caught up after {:?}", t.elapsed());
    api.shutdown().await.unwrap();
    s.shutdown().await;
    for w in web {
        w.shutdown().await;
    }
}

/// The change feed is read by "everything after the highest `seq` I have seen", so no
/// change may become visible after one with a higher `seq`. Here a writer that follows
/// the store's protocol (the advisory lock, then its change row) holds its transaction
/// open: a store commit that logs changes meanwhile must wait, not commit a higher `seq`
/// first (which a reader would take as its new high-water mark, skipping the open one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_log_commits_in_seq_order() {
    use sqlx::{Connection, Row};
    let s = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 72))
        .await
        .unwrap();
    publish(
        &s,
        &UtilitySpec::new("Order Utility").entry(EntrySpec::geographic(
            "ord-a",
            "Order Utility",
            "A",
            &["06069"],
        )),
    );
    let db = TestDb::new(Backend::Postgres).await;
    let cfg = test_config(&db, vec![s.host()]);
    let store = db.store().await;
    store
        .add_hosts(&[Seed::Host(s.host())], "seed")
        .await
        .unwrap();
    Crawler::new(store.clone(), cfg.crawl.clone())
        .unwrap()
        .run("test", &[])
        .await
        .unwrap();
    let host_id = store.list_hosts().await.unwrap()[0].id;
    let high = store.max_change_seq().await.unwrap();
    assert!(high > 0, "the crawl logged its additions");

    // Writer A: lock, take a seq, stay open.
    let mut a = sqlx::postgres::PgConnection::connect(&db.url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(cds_registry::store::CHANGE_LOG_LOCK)
        .execute(&mut a)
        .await
        .unwrap();
    let seq_a: i64 = sqlx::query(
        "INSERT INTO changes (at_ms, entity, op, ref) VALUES (0, 'host', 'moved', 'a') RETURNING seq",
    )
    .fetch_one(&mut a)
    .await
    .unwrap()
    .get("seq");

    // Writer B: the store removes the host (its server leaves search: a logged change).
    let b = tokio::spawn({
        let store = store.clone();
        async move { store.remove_host(host_id).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let visible = store.changes_after(high, 100).await.unwrap();
    assert!(
        visible.is_empty(),
        "nothing after seq {high} may show while seq {seq_a} is uncommitted: {visible:?}"
    );
    assert!(
        !b.is_finished(),
        "the store's commit waits for the open writer"
    );

    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .expect("the store's commit goes on once the lock is free")
        .unwrap()
        .unwrap();
    let after: Vec<(i64, String)> = store
        .changes_after(high, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c.op.to_string()))
        .collect();
    assert_eq!(after[0], (seq_a, "moved".to_owned()), "{after:?}");
    assert!(
        after.len() >= 2 && after[1..].iter().all(|(q, op)| *q > seq_a && op == "gone"),
        "{after:?}"
    );
    s.shutdown().await;
}

/// Several open streams wait on one change watcher per process: a crawl reaches all of
/// them live; after the last one closes the watcher stands down, and a stream opened later
/// starts it again and is served live as well.
async fn change_streams_share_one_watcher(backend: Backend) {
    let s = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 71))
        .await
        .unwrap();
    let p = publish(
        &s,
        &UtilitySpec::new("Stream Utility").entry(EntrySpec::geographic(
            "st-a",
            "Stream Utility",
            "A",
            &["06069"],
        )),
    );
    let db = TestDb::new(backend).await;
    let cfg = test_config(&db, vec![s.host()]);
    let reg = start_seeded(cfg, s.host()).await;
    let stream_url = format!("{}/v1/changes/stream?after=0", reg.url());
    let feed_url = |after: i64| format!("{}/v1/changes?after={after}", reg.url());
    let feed = |after: i64| async move {
        reqwest::get(feed_url(after))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };

    // Three idle streams on an empty log: nothing to send yet.
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(EventReader::open(&stream_url, None).await);
    }
    for st in &mut streams {
        assert_eq!(st.drain(Duration::from_millis(300)).await, vec![]);
    }
    reg.crawler.run("test", &[]).await.unwrap();
    let v = feed(0).await;
    let rows = v["changes"].as_array().unwrap().clone();
    assert!(rows.len() >= 2, "server and entry added: {v}");
    for st in &mut streams {
        let got = st.drain(Duration::from_millis(2500)).await;
        assert_eq!(got.into_iter().map(|(_, d)| d).collect::<Vec<_>>(), rows);
    }

    // All streams gone; the watcher notices within a poll and stands down.
    drop(streams);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seq = v["next_after"].as_i64().unwrap();
    let mut late = EventReader::open(
        &format!("{}/v1/changes/stream?after={seq}", reg.url()),
        None,
    )
    .await;
    assert_eq!(late.drain(Duration::from_millis(300)).await, vec![]);
    s.update_json(&p.page_paths[0], |v| {
        let e = &mut v["coverage_entries"][0];
        e["name"] = "A (renamed)".into();
        e["updated"] = "2025-01-01T00:00:00Z".into();
    });
    reg.crawler.run("test", &[]).await.unwrap();
    let v = feed(seq).await;
    let rows = v["changes"].as_array().unwrap().clone();
    assert!(
        entity_ops(&v).contains(&("entry".to_owned(), "updated".to_owned())),
        "{v}"
    );
    let got = late.drain(Duration::from_millis(2500)).await;
    assert_eq!(got.into_iter().map(|(_, d)| d).collect::<Vec<_>>(), rows);
    drop(late);
    reg.shutdown().await.unwrap();
    s.shutdown().await;
}

both_backends!(
    a_dead_workers_hosts_are_taken_over,
    change_feed_lists_exactly_the_mutations,
    change_streams_share_one_watcher,
    crawl_runs_and_metrics_endpoints
);
