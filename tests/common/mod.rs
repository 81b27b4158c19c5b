//! Test harness shared by the integration tests: a fresh database per test on either
//! backend, and a registry configuration that may reach the loopback fixtures.
#![allow(dead_code)]

pub mod geocoder;

use std::sync::atomic::{AtomicU32, Ordering};

use cds_registry::api::Problem;
use cds_registry::cli::serve::{self, Running};
use cds_registry::config::Config;
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_testkit::web::FixtureWeb;
use sqlx::Connection;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test, removed when the value is dropped — also when
/// the test fails, since unwinding drops it: the SQLite file's temp dir is deleted, and the
/// Postgres database is dropped (`WITH (FORCE)` ends connections a pool still holds).
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // `Drop` cannot await, and the test's runtime may be the one dropping us: run the
        // statement on a thread with its own small runtime and wait for it.
        let admin = postgres_admin_url();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = sqlx::postgres::PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| format!("{name}: {e}"))
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {e}"),
            Err(_) => eprintln!("warning: dropping a test database panicked"),
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Where the tests find Postgres; they fail (never skip) when it is not there.
pub fn postgres_admin_url() -> String {
    std::env::var("CDS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/registry.db", dir.path().display());
                TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut conn = sqlx::postgres::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "Postgres is required for this test and is not reachable at {admin}: {e}. \
                             Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                        )
                    });
                let name = format!(
                    "cds_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    rand::random::<u32>()
                );
                let stmt = format!("CREATE DATABASE {name}");
                sqlx::query(&stmt)
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDb {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url, 4).await.expect("open store")
    }
}

/// The `cds-registry` binary on `db_url`, as the tests run it: a clean environment, plain
/// http for `allow_http`, loopback allowed, 2 s first-byte timeout, warnings only. Callers
/// add the command and may override any variable.
pub fn registry_cli(db_url: &str, allow_http: &[String]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cds-registry"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CDS_REGISTRY_DATABASE_URL", db_url)
        .env(
            "CDS_REGISTRY_CRAWL__ALLOW_HTTP",
            format!("[{}]", allow_http.join(",")),
        )
        .env("CDS_REGISTRY_CRAWL__ALLOW_PRIVATE", "[127.0.0.0/8]")
        .env("CDS_REGISTRY_CRAWL__FIRST_BYTE_TIMEOUT_MS", "2000")
        .env("RUST_LOG", "warn");
    c
}

/// Give every entry of every published server a new name, so a committed crawl is visible.
pub fn rename_everything(web: &FixtureWeb) {
    for p in web.published.clone() {
        let server = web
            .servers()
            .into_iter()
            .find(|s| p.metadata_url.starts_with(&s.base))
            .unwrap();
        for page in &p.page_paths {
            server.update_json(page, |v| {
                for e in v["coverage_entries"].as_array_mut().unwrap() {
                    let n = e["name"].as_str().unwrap().to_owned();
                    e["name"] = format!("{n} (renamed)").into();
                }
            });
        }
    }
}

/// `GET base + path`, which must answer 200 with JSON; the body.
/// Asserts that `r` is an error answer with `status`, sent as `application/problem+json`
/// in the shape the OpenAPI document gives it ([`Problem`]), and returns its problem.
/// `at` names the request in a failure.
pub async fn problem(r: reqwest::Response, status: u16, at: &str) -> Problem {
    assert_eq!(r.status().as_u16(), status, "{at}");
    let ct = r.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    assert_eq!(
        ct.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{at}"
    );
    let p: Problem = r.json().await.unwrap();
    assert_eq!(p.status, status, "{at}");
    assert_eq!(p.type_, "about:blank", "{at}");
    assert!(!p.title.is_empty() && !p.detail.is_empty(), "{at}: {p:?}");
    p
}

pub async fn get_ok_json(c: &reqwest::Client, base: &str, path: &str) -> serde_json::Value {
    let r = c.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

/// `POST base + path` with a JSON body, which must answer 200 with JSON; the body.
pub async fn post_ok_json(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let r = c
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

/// The one row of `rows` that `pick` chooses; `what` names it when there is none.
fn the_one<T>(rows: Vec<T>, what: &str, pick: impl Fn(&T) -> bool) -> T {
    rows.into_iter()
        .find(|r| pick(r))
        .unwrap_or_else(|| panic!("none stored: {what}"))
}

/// The stored host with this seed.
pub async fn host_by_seed(store: &Store, seed: &str) -> cds_registry::store::HostRow {
    the_one(store.list_hosts().await.unwrap(), seed, |h| h.seed == seed)
}

/// The seeds of every stored host, in the store's order.
pub async fn host_seeds(store: &Store) -> Vec<String> {
    let hosts = store.list_hosts().await.unwrap();
    hosts.into_iter().map(|h| h.seed).collect()
}

/// The stored server with this name.
pub async fn server_named(store: &Store, name: &str) -> cds_registry::store::ServerRow {
    the_one(store.list_servers().await.unwrap(), name, |s| {
        s.name == name
    })
}

/// Stored findings of one rule (up to 1,000).
pub async fn findings_of_rule(store: &Store, rule: &str) -> Vec<cds_registry::store::FindingRow> {
    let filter = cds_registry::store::FindingFilter {
        rule: Some(rule.into()),
        limit: 1000,
        ..Default::default()
    };
    store.list_findings(&filter).await.unwrap()
}

/// A utility offering OAuth with an electric and a gas entry (`{prefix}-electric`,
/// `{prefix}-gas`) in one Colorado county: scope `usage` on the electric entry, scope
/// `bills` on both.
pub fn electric_and_gas_utility(
    name: &str,
    prefix: &str,
    usage: &str,
    bills: &str,
) -> cds_testkit::utility::UtilitySpec {
    use cds_testkit::utility::{EntrySpec, ScopeSpec, UtilitySpec};
    let electric = format!("{prefix}-electric");
    let gas = format!("{prefix}-gas");
    let entry = |id: &str, area: &str| {
        EntrySpec::geographic(id, name, area, &["08013"]).capabilities(&["oauth"])
    };
    UtilitySpec::new(name)
        .entry(entry(&electric, "Electric territory"))
        .entry(entry(&gas, "Gas territory").commodities(&["natural_gas"]))
        .scope(ScopeSpec::new(
            usage,
            "Usage",
            "Interval usage.",
            &[&electric],
        ))
        .scope(ScopeSpec::new(
            bills,
            "Bills",
            "Bill statements.",
            &[&electric, &gas],
        ))
}

/// The `entry_id`s of an array of API rows (coverage rows, lookup results).
pub fn entry_ids(rows: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let rows = rows.as_array().expect("an array of rows");
    rows.iter()
        .map(|r| r["entry_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The `seq` of the newest change-log row.
pub async fn last_change_seq(store: &Store) -> i64 {
    let all = store.changes_after(0, 100_000).await.unwrap();
    all.last().expect("the change log has rows").seq
}

/// Run a command to its end: (exit code, stdout, stderr).
pub fn run_cmd(c: &mut std::process::Command) -> (i32, String, String) {
    let out = c.output().expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A registry configuration for tests: this database, plain http and private addresses
/// allowed only for the given fixture hosts and loopback, short timeouts.
pub fn test_config(db: &TestDb, allow_http: Vec<String>) -> Config {
    let mut c = Config {
        database_url: db.url.clone(),
        database_max_connections: 4,
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(cds_registry::config::Secret("test-admin-token".into())),
        ..Config::default()
    };
    // Tests drive thousands of requests from one address; the limiter has its own test.
    c.api.rate_limit_per_second = 0;
    c.crawl.allow_http = allow_http;
    c.crawl.allow_private = vec!["127.0.0.0/8".into()];
    c.crawl.scheduled = false;
    c.crawl.connect_timeout_ms = 2_000;
    c.crawl.first_byte_timeout_ms = 2_000;
    c.crawl.total_timeout_ms = 5_000;
    c.crawl.concurrency = 8;
    // Every crawl revalidates every territory, so the tests that count conditional
    // requests see them all; `tests/aggregator.rs` tests the default.
    c.crawl.territory_max_age_secs = 0;
    c
}

/// A registry with role `all` on a loopback port, without background tasks: the test
/// drives the crawls.
pub async fn start_registry(cfg: Config) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve::start(cfg, listener, false).await.unwrap()
}

/// The standard fixture web seeded and crawled once into a fresh registry on `backend`.
/// The index is reloaded before returning (the crawl's commit callback would do it in the
/// background), so searches see the crawl.
pub async fn crawled_fixture_web(backend: Backend) -> (FixtureWeb, TestDb, Running) {
    crawled_fixture_web_with(backend, |_| {}).await
}

/// [`crawled_fixture_web`] with the registry's configuration adjusted by `tune`.
pub async fn crawled_fixture_web_with(
    backend: Backend,
    tune: impl FnOnce(&mut Config),
) -> (FixtureWeb, TestDb, Running) {
    let web = FixtureWeb::start().await.unwrap();
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, web.allow_http());
    tune(&mut cfg);
    let reg = start_registry(cfg).await;
    let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
    reg.state.store.add_hosts(&seeds, "seed").await.unwrap();
    reg.crawler.run("test", &[]).await.unwrap();
    reg.state.reload_index().await.unwrap();
    (web, db, reg)
}

/// Generate one `#[tokio::test]` per backend from an `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Backend::Postgres).await
                }
            )*
        }
    };
}
