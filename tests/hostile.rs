//! Hostile hosts: each test plays one thing a remote server can do to a crawler and
//! asserts the registry neither reaches inside, nor hangs, nor loses data.
//!
//! Policy in these tests: plain http is allowed for every loopback host involved (so the
//! scheme never hides an address check), but `allow_private` opens only the hostile
//! host's own address — never the "secret" server's.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cds_registry::cds::WELL_KNOWN_PATH;
use cds_registry::config::Config;
use cds_registry::crawl::guard::Guard;
use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_testkit::utility::{publish, EntrySpec, UtilitySpec};
use cds_testkit::FixtureServer;
use common::{test_config, Backend, TestDb};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a raw hostile server does with every request.
#[derive(Clone)]
enum Behaviour {
    /// `200` with an endless (close-delimited) body of JSON-ish filler.
    Endless,
    /// `200` gzip body that inflates to `n` bytes.
    GzipBomb(usize),
    /// `200`, `Content-Length: 1000`, one byte every `ms`.
    Drip(u64),
    /// Headers, a few body bytes, then a reset.
    Reset,
}

/// A raw TCP server (no HTTP library, so it can misbehave freely). Counts connections
/// and bytes it managed to write.
struct RawServer {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    async fn start(ip: Ipv4Addr, b: Behaviour) -> RawServer {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let (c2, w2) = (connections.clone(), written.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                c2.fetch_add(1, Ordering::Relaxed);
                let b = b.clone();
                let w = w2.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    match b {
                        Behaviour::Endless => {
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n[")
                                .await;
                            let chunk = vec![b' '; 64 * 1024];
                            // Bounded: at most 80 MB, as the "80 MB page".
                            for _ in 0..1280 {
                                if sock.write_all(&chunk).await.is_err() {
                                    return;
                                }
                                w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            }
                        }
                        Behaviour::GzipBomb(n) => {
                            let mut enc = flate2::write::GzEncoder::new(
                                Vec::new(),
                                flate2::Compression::best(),
                            );
                            enc.write_all(b"[").unwrap();
                            let zeros = vec![b' '; 1 << 20];
                            for _ in 0..n / zeros.len() {
                                enc.write_all(&zeros).unwrap();
                            }
                            let body = enc.finish().unwrap();
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = sock.write_all(head.as_bytes()).await;
                            if sock.write_all(&body).await.is_ok() {
                                w.fetch_add(body.len() as u64, Ordering::Relaxed);
                            }
                        }
                        Behaviour::Drip(ms) => {
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
                                .await;
                            // Bounded: 1000 bytes at most.
                            for _ in 0..1000 {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                if sock.write_all(b" ").await.is_err() {
                                    return;
                                }
                                w.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Behaviour::Reset => {
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"cds_")
                                .await;
                            let std = sock.into_std().unwrap();
                            // SO_LINGER 0: close sends RST instead of FIN.
                            let s2 = socket2_linger_zero(std);
                            drop(s2);
                        }
                    }
                });
            }
        });
        RawServer {
            addr,
            connections,
            written,
            task,
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }
}

/// Turn a socket into one whose close resets the connection.
fn socket2_linger_zero(s: std::net::TcpStream) -> std::net::TcpStream {
    use std::os::fd::AsRawFd;
    let l = libc_linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid, owned fd with a correctly sized linger struct.
    unsafe {
        setsockopt(
            s.as_raw_fd(),
            1,  /* SOL_SOCKET */
            13, /* SO_LINGER */
            &l as *const libc_linger as *const std::ffi::c_void,
            std::mem::size_of::<libc_linger>() as u32,
        );
    }
    s
}

#[repr(C)]
struct libc_linger {
    l_onoff: i32,
    l_linger: i32,
}

extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, val: *const std::ffi::c_void, len: u32) -> i32;
}

/// A registry config that allows http to `http_hosts` and private addresses only for
/// `private` (exact /32 networks).
fn hostile_config(db: &TestDb, http_hosts: Vec<String>, private: &[Ipv4Addr]) -> Config {
    let mut c = test_config(db, http_hosts);
    c.crawl.allow_private = private.iter().map(|ip| format!("{ip}/32")).collect();
    c.crawl.max_metadata_bytes = 1 << 20;
    c.crawl.first_byte_timeout_ms = 2_000;
    c.crawl.total_timeout_ms = 3_000;
    c
}

async fn crawl_one(db: &TestDb, cfg: &Config, seed: Seed) -> (Store, String, Option<String>) {
    let store = db.store().await;
    store
        .add_hosts(std::slice::from_ref(&seed), "seed")
        .await
        .unwrap();
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    let run = crawler.run("test", &[]).await.unwrap();
    let outcome = run.outcomes[0].1.to_string();
    let detail = store.list_hosts().await.unwrap()[0].last_detail.clone();
    (store, outcome, detail)
}

async fn findings_with(store: &Store, rule: &str) -> usize {
    common::findings_of_rule(store, rule).await.len()
}

const HOSTILE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 60);
const SECRET: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 99);

async fn redirects_into_the_private_network_are_refused(backend: Backend) {
    let secret = FixtureServer::start(SECRET).await.unwrap();
    secret.set_json("/admin", &json!({"secret": true}));
    let hostile = FixtureServer::start(HOSTILE).await.unwrap();
    hostile.redirect(WELL_KNOWN_PATH, 302, secret.url("/admin"));
    let db = TestDb::new(backend).await;
    let cfg = hostile_config(&db, vec![hostile.host(), secret.host()], &[HOSTILE]);
    let (store, outcome, detail) = crawl_one(&db, &cfg, Seed::Host(hostile.host())).await;
    assert_eq!(outcome, "blocked", "{detail:?}");
    assert_eq!(
        secret.total_hits(),
        0,
        "the secret server was never contacted"
    );
    assert_eq!(findings_with(&store, "URL-BLOCKED").await, 1);

    // The same through `localhost` (no DNS trick needed: refused by name).
    hostile.redirect(
        WELL_KNOWN_PATH,
        301,
        format!("http://localhost:{}/admin", secret.addr.port()),
    );
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    let run = crawler.run("test", &[hostile.host()]).await.unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "blocked");
    assert_eq!(secret.total_hits(), 0);
    assert_eq!(store.counts().await.unwrap().servers, 0);
}

async fn document_urls_to_metadata_services_are_findings_not_requests(backend: Backend) {
    // Guard first: if this failed, the crawl below would try to connect out.
    let g = Guard::new(&["169.254.169.254".into()], &[]);
    assert!(g
        .check_url(&url::Url::parse("http://169.254.169.254/latest/meta-data").unwrap())
        .is_err());

    let secret = FixtureServer::start(SECRET).await.unwrap();
    let hostile = FixtureServer::start(HOSTILE).await.unwrap();
    let spec = UtilitySpec::new("Sneaky Utility")
        .entry(EntrySpec::geographic(
            "sneaky-a",
            "Sneaky Utility",
            "A",
            &["06069"],
        ))
        .entry(EntrySpec::geographic(
            "sneaky-b",
            "Sneaky Utility",
            "B",
            &["06053"],
        ));
    let published = publish(&hostile, &spec);
    // Entry A's territory points at the cloud metadata service; related_metadata points
    // at the secret server; entry B stays good.
    let page = published.page_paths[0].clone();
    hostile.update_json(&page, |v| {
        for e in v["coverage_entries"].as_array_mut().unwrap() {
            if e["id"] == "sneaky-a" {
                e["geojson_resource"] = "http://169.254.169.254/latest/meta-data/iam".into();
            }
        }
    });
    hostile.update_json(WELL_KNOWN_PATH, |v| {
        v["related_metadata"] = json!([secret.url("/cds.json")]);
    });
    let db = TestDb::new(backend).await;
    let cfg = hostile_config(
        &db,
        vec![hostile.host(), secret.host(), "169.254.169.254".into()],
        &[HOSTILE],
    );
    let (store, outcome, _) = crawl_one(&db, &cfg, Seed::Host(hostile.host())).await;
    assert_eq!(outcome, "ok");
    assert_eq!(secret.total_hits(), 0);
    assert_eq!(
        findings_with(&store, "URL-BLOCKED").await,
        2,
        "one for the GeoJSON, one for related_metadata"
    );
    let servers = store.list_servers().await.unwrap();
    assert_eq!(servers.len(), 1);
    let entries = store.server_entries(servers[0].id).await.unwrap();
    let a = entries.iter().find(|e| e.entry.id == "sneaky-a").unwrap();
    let b = entries.iter().find(|e| e.entry.id == "sneaky-b").unwrap();
    assert!(a.territory_id.is_none(), "no territory from a refused URL");
    assert!(b.territory_id.is_some(), "the good entry is unaffected");
}

async fn oversized_bombs_drips_and_resets_are_cut_off(backend: Backend) {
    for (b, want) in [
        (Behaviour::Endless, "too_large"),
        (Behaviour::GzipBomb(64 << 20), "too_large"),
        (Behaviour::Drip(400), "timeout"),
        (Behaviour::Reset, "connect"),
    ] {
        let raw = RawServer::start(HOSTILE, b).await;
        let db = TestDb::new(backend).await;
        let cfg = hostile_config(&db, vec![raw.host()], &[HOSTILE]);
        let started = std::time::Instant::now();
        let (store, outcome, detail) = crawl_one(&db, &cfg, Seed::Host(raw.host())).await;
        assert_eq!(outcome, want, "{detail:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "bounded by the timeouts"
        );
        assert!(raw.connections.load(Ordering::Relaxed) >= 1);
        if want == "too_large" {
            // Reading stopped near the 1 MiB limit, long before the 80 MB / 64 MB body.
            assert!(
                raw.written.load(Ordering::Relaxed) < 40 << 20,
                "stopped early"
            );
        }
        assert_eq!(store.counts().await.unwrap().servers, 0);
        raw.task.abort();
    }
}

async fn retry_after_deep_chains_and_gone_hosts(backend: Backend) {
    // 429 with Retry-After: the next attempt waits at least that long.
    let hostile = FixtureServer::start(HOSTILE).await.unwrap();
    hostile.set_status(WELL_KNOWN_PATH, 429, Some(3600));
    let db = TestDb::new(backend).await;
    let mut cfg = hostile_config(&db, vec![hostile.host()], &[HOSTILE]);
    cfg.crawl.stale_after_failures = 1;
    cfg.crawl.gone_after_secs = 0;
    let (store, outcome, _) = crawl_one(&db, &cfg, Seed::Host(hostile.host())).await;
    assert_eq!(outcome, "http_status");
    let h = &store.list_hosts().await.unwrap()[0];
    assert!(
        h.next_due_ms >= cds_registry::store::now_ms() + 3_500_000,
        "Retry-After: 3600 honoured"
    );
    // Not due: a scheduled run skips it (no request).
    hostile.reset_counts();
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    let run = crawler.run("test", &[]).await.unwrap();
    assert_eq!(run.totals.hosts_total, 0);
    assert_eq!(hostile.total_hits(), 0);

    // A 10-deep related chain stops at the depth cap; the cycle back costs nothing.
    let chain = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 61))
        .await
        .unwrap();
    for i in 0..10 {
        let path = if i == 0 {
            WELL_KNOWN_PATH.to_owned()
        } else {
            format!("/chain/{i}.json")
        };
        let next = if i < 9 {
            chain.url(&format!("/chain/{}.json", i + 1))
        } else {
            chain.url(WELL_KNOWN_PATH)
        };
        let spec = UtilitySpec::new(&format!("Chain {i}"))
            .metadata_path(&path)
            .prefix(&format!("/c{i}"))
            .related(&next);
        publish(&chain, &spec);
    }
    let db2 = TestDb::new(backend).await;
    let mut cfg2 = hostile_config(&db2, vec![chain.host()], &[Ipv4Addr::new(127, 0, 0, 61)]);
    cfg2.crawl.max_related_depth = 4;
    let (store2, outcome, _) = crawl_one(&db2, &cfg2, Seed::Host(chain.host())).await;
    assert_eq!(outcome, "ok");
    assert_eq!(store2.counts().await.unwrap().servers, 5, "depth 0..=4");
    assert!(
        chain.hits("/chain/5.json") == 0,
        "nothing past the cap is requested"
    );

    // A host that keeps failing past gone_after_secs: its servers leave search.
    let gone_host = chain.host();
    chain.set_status(WELL_KNOWN_PATH, 500, None);
    let mut cfg3 = cfg2.clone();
    cfg3.crawl.stale_after_failures = 1;
    cfg3.crawl.gone_after_secs = 0;
    let crawler = Crawler::new(store2.clone(), cfg3.crawl.clone()).unwrap();
    let run = crawler.run("test", &[gone_host]).await.unwrap();
    assert_eq!(run.outcomes[0].1.as_str(), "http_status");
    let servers = store2.list_servers().await.unwrap();
    assert!(
        servers.iter().all(|s| s.status.as_str() == "gone"),
        "{servers:?}"
    );
    assert!(
        store2.index_rows().await.unwrap().is_empty(),
        "gone servers are out of search"
    );
    assert_eq!(store2.counts().await.unwrap().servers, 5, "history kept");
}

both_backends!(
    redirects_into_the_private_network_are_refused,
    document_urls_to_metadata_services_are_findings_not_requests,
    oversized_bombs_drips_and_resets_are_cut_off,
    retry_after_deep_chains_and_gone_hosts,
);
