//! Truthful outcomes and poison hosts (issue 19): a host reads `ok` only when its servers'
//! new state was committed in that run, also when a worker pass dies half-way or the
//! database goes away; a host whose crawl never ends (over its time budget, or its worker
//! killed again and again) is recorded as `timeout`, and the run ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cds_registry::crawl::{Crawler, NoProgress};
use cds_registry::model::{FailureClass, Outcome};
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_testkit::web::{names, FixtureWeb};
use common::{rename_everything, test_config, Backend, TestDb};

/// Whether every stored entry of the server named `name` carries its new name.
async fn server_renamed(store: &Store, name: &str) -> bool {
    let s = store
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("server {name} stored"));
    let entries = store.server_entries(s.id).await.unwrap();
    !entries.is_empty() && entries.iter().all(|e| e.entry.name.ends_with("(renamed)"))
}

/// The check of issue 19: every host `ok` in `run_id` has the new state of each of its
/// servers committed (all of them were renamed before the run). Returns the outcome of
/// each host, by seed, each host having exactly one.
async fn outcomes_match_commits(store: &Store, run_id: i64) -> Vec<(String, String)> {
    let outcomes = store.run_outcomes(run_id).await.unwrap();
    let mut seeds: Vec<&String> = outcomes.iter().map(|(s, _)| s).collect();
    seeds.sort();
    let n = seeds.len();
    seeds.dedup();
    assert_eq!(seeds.len(), n, "each host has one outcome in the run");
    let servers = store.list_servers().await.unwrap();
    for (seed, o) in &outcomes {
        if o.outcome != Outcome::Ok {
            continue;
        }
        for s in servers.iter().filter(|s| s.host_id == o.host_id) {
            let entries = store.server_entries(s.id).await.unwrap();
            assert!(
                entries.iter().all(|e| e.entry.name.ends_with("(renamed)")),
                "host {seed} reads ok in run {run_id}, but server {} was not committed: {:?}",
                s.name,
                entries.iter().map(|e| &e.entry.name).collect::<Vec<_>>()
            );
        }
    }
    outcomes
        .into_iter()
        .map(|(s, o)| (s, o.outcome.to_string()))
        .collect()
}

fn outcome_of<'a>(outcomes: &'a [(String, String)], seed: &str) -> &'a str {
    &outcomes
        .iter()
        .find(|(s, _)| s == seed)
        .unwrap_or_else(|| panic!("{seed} has an outcome: {outcomes:?}"))
        .1
}

/// A fixture web seeded into `db` and crawled once, with a crawl configuration whose
/// fetch timeouts outlast the delays these tests put on Prairie's last page.
async fn seeded(db: &TestDb) -> (FixtureWeb, Store, cds_registry::config::Config) {
    let web = FixtureWeb::start().await.unwrap();
    let store = db.store().await;
    let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
    store.add_hosts(&seeds, "seed").await.unwrap();
    let mut cfg = test_config(db, web.allow_http());
    cfg.crawl.lease_secs = 1;
    cfg.crawl.first_byte_timeout_ms = 60_000;
    cfg.crawl.total_timeout_ms = 60_000;
    (web, store, cfg)
}

/// Poll `cond` every 50 ms, at most `tries` times.
async fn wait_for(tries: usize, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// A worker pass that dies with hosts in flight (as one does on a database error) leaves
/// them claimed in the run's shared state; the pass that takes them over must crawl and
/// commit them, not skip their servers as done and report `ok` (issue 19, finding 4).
async fn a_cancelled_pass_is_crawled_again_not_reported_ok(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (web, store, cfg) = seeded(&db).await;
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    crawler.run("test", &[]).await.unwrap();
    assert!(!server_renamed(&store, names::PRAIRIE).await);

    rename_everything(&web);
    web.reset_counts();
    let prairie = web.published(names::PRAIRIE).unwrap().clone();
    let slow_page = prairie.page_paths[2].clone();
    web.prairie.set_delay(&slow_page, Duration::from_secs(30));
    let (run_id, _) = crawler.trigger("test", &[]).await.unwrap();
    {
        let pass = crawler.work(&NoProgress);
        tokio::pin!(pass);
        let reached = async {
            wait_for(400, || web.prairie.hits(&slow_page) > 0).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        tokio::select! {
            r = &mut pass => panic!("the pass ended before Prairie's slow page: {r:?}"),
            _ = reached => {}
        }
        // Dropping the pass cancels Prairie's crawl mid-way; its lease lapses in 1 s.
    }
    assert_eq!(web.prairie.hits(&slow_page), 1, "Prairie was in flight");
    web.prairie.set_delay(&slow_page, Duration::ZERO);

    let resumed = crawler.run("test", &[]).await.unwrap();
    assert_eq!(resumed.run_id, run_id, "the interrupted run is resumed");
    assert_eq!(store.run(run_id).await.unwrap().status.as_str(), "finished");
    assert_eq!(web.prairie.hits(&slow_page), 2, "Prairie was crawled again");
    let outcomes = outcomes_match_commits(&store, run_id).await;
    assert_eq!(outcome_of(&outcomes, &web.prairie.host()), "ok");
    assert!(server_renamed(&store, names::PRAIRIE).await);
    web.shutdown().await;
}

/// A host whose crawl outlasts `crawl.host_budget_secs` is abandoned: recorded as
/// `timeout` (a failure, so back-off applies), nothing of it committed, and the run ends
/// with the other hosts done.
async fn a_host_over_its_budget_is_recorded_timeout(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (web, store, mut cfg) = seeded(&db).await;
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    crawler.run("test", &[]).await.unwrap();

    rename_everything(&web);
    let prairie = web.published(names::PRAIRIE).unwrap().clone();
    // Within every fetch timeout (60 s), beyond the host's budget (2 s).
    web.prairie
        .set_delay(&prairie.page_paths[2], Duration::from_secs(50));
    cfg.crawl.host_budget_secs = 2;
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone()).unwrap();
    let summary = crawler.run("test", &[]).await.unwrap();
    assert_eq!(
        store.run(summary.run_id).await.unwrap().status.as_str(),
        "finished"
    );
    let outcomes = outcomes_match_commits(&store, summary.run_id).await;
    let seed = web.prairie.host();
    assert_eq!(outcome_of(&outcomes, &seed), "timeout");
    assert!(
        !server_renamed(&store, names::PRAIRIE).await,
        "nothing committed"
    );
    assert!(
        server_renamed(&store, names::SIERRA).await,
        "other hosts crawled"
    );
    let host = store
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.seed == seed)
        .unwrap();
    assert_eq!(host.consecutive_failures, 1);
    assert!(
        host.next_due_ms > cds_registry::store::now_ms(),
        "backed off"
    );
    assert!(host
        .last_detail
        .as_deref()
        .unwrap_or("")
        .contains("host_budget_secs"));
    web.prairie
        .set_delay(&prairie.page_paths[2], Duration::ZERO);
    web.shutdown().await;
}

/// The release binary crawling the fixture web into `db`, with Prairie's fetches allowed
/// to wait a minute, 1 s leases, and giving up on a host after 2 lease expiries.
fn spawn_crawler(web: &FixtureWeb, db: &TestDb) -> Child {
    common::registry_cli(&db.url, &web.allow_http())
        .arg("crawl")
        .env("CDS_REGISTRY_CRAWL__FIRST_BYTE_TIMEOUT_MS", "60000")
        .env("CDS_REGISTRY_CRAWL__TOTAL_TIMEOUT_MS", "60000")
        .env("CDS_REGISTRY_CRAWL__LEASE_SECS", "1")
        .env("CDS_REGISTRY_CRAWL__MAX_LEASE_EXPIRIES", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the child when dropped (a failed assertion must not leave a crawler running).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A poison host (here: one that keeps its crawl hanging) whose worker is SIGKILLed each
/// time it crawls it: each restart takes it over once its lease expires, and after
/// `max_lease_expiries` (2) takeovers without an outcome it is recorded as `timeout`
/// instead of being crawled a third time, so the run ends.
async fn a_poison_host_killed_again_and_again_ends_as_timeout(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (web, store, _) = seeded(&db).await;
    let prairie = web.published(names::PRAIRIE).unwrap().clone();
    let page = prairie.page_paths[2].clone();
    web.prairie.set_delay(&page, Duration::from_secs(50));

    for kill in 1..=2u64 {
        // Restart until the crawler is on Prairie's page (a worker that started before
        // the dead one's lease expired may finish the rest and exit first).
        let mut child = Killed(spawn_crawler(&web, &db));
        for _ in 0..10 {
            if wait_for(200, || web.prairie.hits(&page) >= kill).await {
                break;
            }
            if child.0.try_wait().unwrap().is_some() {
                child = Killed(spawn_crawler(&web, &db));
            }
        }
        assert_eq!(
            web.prairie.hits(&page),
            kill,
            "crawl {kill} reached the page"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(child); // SIGKILL
    }
    assert!(
        store.running_run().await.unwrap().is_some(),
        "the run is open"
    );

    // The third worker takes Prairie over for the second time and gives up on it.
    let mut child = Killed(spawn_crawler(&web, &db));
    let mut status = None;
    for _ in 0..1200 {
        status = child.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("the crawl ends (within 60 s)");
    assert!(status.success(), "{status}");
    let run_id = store
        .list_runs(0, 1)
        .await
        .unwrap()
        .first()
        .map(|r| r.id)
        .unwrap();
    assert_eq!(store.run(run_id).await.unwrap().status.as_str(), "finished");
    assert_eq!(
        store.running_run().await.unwrap(),
        None,
        "run lock released"
    );
    assert_eq!(web.prairie.hits(&page), 2, "not crawled a third time");
    let outcomes = store.run_outcomes(run_id).await.unwrap();
    let (_, o) = outcomes
        .iter()
        .find(|(s, _)| *s == web.prairie.host())
        .unwrap();
    assert_eq!(o.outcome, Outcome::Failed(FailureClass::Timeout));
    assert!(o
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("lease expired 2 times"));
    let host = common::host_by_seed(&store, &web.prairie.host()).await;
    assert_eq!(host.consecutive_failures, 1, "counted as a failure");
    assert!(
        host.next_due_ms > cds_registry::store::now_ms(),
        "backed off"
    );
    // Recording the outcome ended its series of expiries: a later run crawls it again.
    web.prairie.set_delay(&page, Duration::ZERO);
    let mut cfg = test_config(&db, web.allow_http());
    cfg.crawl.max_lease_expiries = 2;
    let crawler = Crawler::new(store.clone(), cfg.crawl).unwrap();
    let again = crawler.run("test", &[web.prairie.host()]).await.unwrap();
    assert_eq!(again.outcomes, vec![(web.prairie.host(), Outcome::Ok)]);
    web.shutdown().await;
}

/// The store side of poison hosts: a takeover of an expired lease counts one expiry, an
/// outcome resets the count, and renewal covers only the hosts named, taken after the
/// cut-off.
async fn lease_expiries_are_counted_and_renewal_is_bounded(backend: Backend) {
    use cds_registry::store::{now_ms, OutcomeRecord};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .add_hosts(&[Seed::Host("poison.example".into())], "seed")
        .await
        .unwrap();
    let named = ["poison.example".to_owned()];
    let (run_id, _) = store.begin_run("test", &named).await.unwrap().unwrap();
    let now = now_ms();
    let first = store.lease_hosts("w1", 10, now + 60_000).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].lease_expiries, 0, "a fresh lease is no expiry");
    let id = first[0].host.id;

    let renew = |until: i64, after: i64, ids: Vec<i64>| {
        let store = store.clone();
        async move { store.renew_leases("w1", until, after, &ids).await.unwrap() }
    };
    assert_eq!(renew(now + 60_000, now - 1_000, vec![id]).await, 1);
    assert_eq!(
        renew(now + 60_000, now - 1_000, vec![]).await,
        0,
        "not in hand"
    );
    assert_eq!(renew(now + 60_000, now - 1_000, vec![id + 1]).await, 0);
    assert_eq!(
        renew(now + 60_000, now + 60_000, vec![id]).await,
        0,
        "held past the cut-off"
    );
    assert!(store
        .lease_hosts("w2", 10, now + 60_000)
        .await
        .unwrap()
        .is_empty());

    // The holder dies: its lease lapses and the host is taken over, twice.
    for n in 1..=2 {
        assert_eq!(renew(now_ms() - 1, now - 1_000, vec![id]).await, 1);
        let taken = store
            .lease_hosts("w1", 10, now_ms() + 60_000)
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].lease_expiries, n);
    }
    let rec = OutcomeRecord {
        host_id: id,
        outcome: Outcome::Ok,
        started_ms: now,
        finished_ms: now_ms(),
        ..OutcomeRecord::default()
    };
    assert!(store
        .record_outcome(run_id, "w1", &rec, 3, i64::MAX)
        .await
        .unwrap());
    assert!(store.maybe_finish_run(run_id).await.unwrap());
    store.begin_run("test", &named).await.unwrap().unwrap();
    let again = store
        .lease_hosts("w1", 10, now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(again[0].lease_expiries, 0, "the outcome reset the count");
}

both_backends!(
    lease_expiries_are_counted_and_renewal_is_bounded,
    a_cancelled_pass_is_crawled_again_not_reported_ok,
    a_host_over_its_budget_is_recorded_timeout,
    a_poison_host_killed_again_and_again_ends_as_timeout,
);

/// A Postgres cluster of its own, in a temporary directory, on a free loopback port and
/// with its unix socket in that directory: the outage test stops and restarts it without
/// touching the shared server other tests use.
///
/// `initdb` and `pg_ctl` refuse to run as root. When the tests run as root (as in the CI
/// container), the directory is handed to the `postgres` system user and both run through
/// `runuser -u postgres --`. The binaries are Debian's (`/usr/lib/postgresql/<v>/bin`, the
/// newest version found) or those in `CDS_TEST_PG_BIN`; without them the test fails.
struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let uid = id_of("-u");
            let gid = id_of("-g");
            for p in [dir.path().to_owned(), dir.path().join("sock")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = PrivateCluster {
            bin,
            dir,
            port,
            as_postgres,
        };
        // From here on, dropping `c` stops the cluster and removes the directory.
        c.run(
            "initdb",
            &[
                "-D",
                &c.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        c.start_again();
        c
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Run one of the cluster's programs (as `postgres` when we are root); panics with
    /// its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.args(args).stdin(Stdio::null());
        c
    }

    fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().join("sock").display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"],
        );
    }

    /// Stop at once: clients are disconnected, as in a database outage.
    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        // Also after a failed assertion; the TempDir then removes the directory.
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            let _ = self
                .command(
                    "pg_ctl",
                    &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn pg_bin() -> PathBuf {
    if let Ok(b) = std::env::var("CDS_TEST_PG_BIN") {
        return PathBuf::from(b);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).expect(
        "the database outage test needs the Postgres server binaries (initdb, pg_ctl) in \
         /usr/lib/postgresql/<version>/bin or CDS_TEST_PG_BIN: apt-get install postgresql",
    )
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `id -u postgres` / `id -g postgres`.
fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    assert!(out.status.success(), "a `postgres` system user exists");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The database stops while a run is in the middle of a host and starts again: no host of
/// that run reads `ok` without its servers committed, and the host caught by the outage
/// is committed once the database is back (issue 19, finding 4: it read `ok` with nothing
/// committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_after_a_database_outage_match_commits() {
    let pg = PrivateCluster::start();
    let web = FixtureWeb::start().await.unwrap();
    // Operations fail after 2 s without a connection (30 s by default), so the outage
    // fails Prairie's commit and outcome, and the worker pass, within a few seconds.
    let store = Store::open_with(&pg.url(), 4, Duration::from_secs(2))
        .await
        .unwrap();
    let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
    store.add_hosts(&seeds, "seed").await.unwrap();
    let mut cfg = cds_registry::config::Config::default();
    cfg.crawl.allow_http = web.allow_http();
    cfg.crawl.allow_private = vec!["127.0.0.0/8".into()];
    cfg.crawl.concurrency = 8;
    cfg.crawl.lease_secs = 1;
    cfg.crawl.first_byte_timeout_ms = 30_000;
    cfg.crawl.total_timeout_ms = 30_000;
    let crawler = std::sync::Arc::new(Crawler::new(store.clone(), cfg.crawl.clone()).unwrap());
    crawler.run("test", &[]).await.unwrap();

    rename_everything(&web);
    web.reset_counts();
    let prairie = web.published(names::PRAIRIE).unwrap().clone();
    let page = prairie.page_paths[2].clone();
    web.prairie.set_delay(&page, Duration::from_secs(3));
    let run = tokio::spawn({
        let crawler = crawler.clone();
        async move { crawler.run("test", &[]).await }
    });
    assert!(
        wait_for(400, || web.prairie.hits(&page) > 0).await,
        "the run reached Prairie's slow page"
    );
    let run_id = store.running_run().await.unwrap().expect("a run is open");
    pg.stop();
    // Prairie's page answers while the database is down: its commit and outcome fail, and
    // so does the worker pass (its next lease query), which ends the run call.
    let mut run = run;
    let first = tokio::time::timeout(Duration::from_secs(90), &mut run).await;
    pg.start_again();
    let first = first.expect("the run call ends during the outage").unwrap();
    assert!(
        first.is_err(),
        "a run cannot finish without its database: {first:?}"
    );
    assert_eq!(store.running_run().await.unwrap(), Some(run_id));

    // Joining the open run takes its hosts over once their leases lapse (1 s) and
    // finishes it.
    let resumed = crawler.run("test", &[]).await.unwrap();
    assert_eq!(resumed.run_id, run_id);
    assert_eq!(store.run(run_id).await.unwrap().status.as_str(), "finished");
    let outcomes = outcomes_match_commits(&store, run_id).await;
    // Prairie's first attempt recorded nothing; the takeover crawled and committed it.
    assert_eq!(outcome_of(&outcomes, &web.prairie.host()), "ok");
    assert!(server_renamed(&store, names::PRAIRIE).await);

    // The next run commits whatever the outage left behind.
    web.prairie.set_delay(&page, Duration::ZERO);
    let next = crawler.run("test", &[web.prairie.host()]).await.unwrap();
    outcomes_match_commits(&store, next.run_id).await;
    assert!(server_renamed(&store, names::PRAIRIE).await);
    store.close().await;
    web.shutdown().await;
}
