//! The crawler: runs over due hosts with bounded concurrency, commits each server's new
//! state atomically, records per-host outcomes with back-off, and never runs twice at once.

mod commit;
mod cross;
pub mod fetch;
pub mod guard;
pub mod host;
pub mod lifecycle;
mod runs;
pub mod schedule;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tracing::{info, warn};

use crate::config::CrawlConfig;
use crate::model::Outcome;
use crate::store::{now_ms, HostRow, OutcomeRecord, RunTotals, Store, StoreError};
use commit::Committed;
use fetch::{FailureClass, FetchError, Fetcher};
use host::{crawl_host, HostCrawl, RunContext, Start};

/// How one host's crawl ended, as recorded: the outcome and what explains it.
struct Verdict {
    outcome: Outcome,
    detail: Option<String>,
    status: Option<i64>,
    url: Option<String>,
    retry_after: Option<Duration>,
}

impl Verdict {
    fn of(crawl: &HostCrawl, store_error: Option<String>) -> Verdict {
        let plain = |outcome, detail| Verdict {
            outcome,
            detail,
            status: None,
            url: None,
            retry_after: None,
        };
        match (&crawl.failure, store_error) {
            (Some(e), _) => Verdict {
                outcome: Outcome::Failed(e.class),
                detail: Some(e.detail.clone()),
                status: e.status.map(i64::from),
                url: Some(e.url.clone()),
                retry_after: e.retry_after,
            },
            (None, Some(e)) => plain(FailureClass::StoreError.into(), Some(e)),
            // Related servers that failed, or listings not read to their end (page cap,
            // a page that failed for good; CDS-SPEC-NOTES §3, §5a): what was read is
            // committed, unread entries keep their state, and the outcome says so.
            (None, None) if !crawl.failed_servers.is_empty() || !crawl.incomplete.is_empty() => {
                let mut why = Vec::new();
                if !crawl.failed_servers.is_empty() {
                    why.push(format!(
                        "{} related server(s) failed",
                        crawl.failed_servers.len()
                    ));
                }
                why.extend(crawl.incomplete.iter().cloned());
                plain(Outcome::Partial, Some(why.join("; ")))
            }
            (None, None) => plain(Outcome::Ok, None),
        }
    }
}

/// `host` or `host:port` of a URL (the form seeds use).
fn authority_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    u.host_str()?;
    Some(crate::seeds::authority(&u))
}

/// Why a crawl could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    #[error("a crawl is already running")]
    AlreadyRunning,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run did (totals from the store, so they include other workers' hosts;
/// outcomes and server counts are this worker's).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub totals: RunTotals,
    /// (host seed, outcome) in completion order.
    pub outcomes: Vec<(String, Outcome)>,
    pub servers_committed: usize,
    pub servers_changed: usize,
}

impl RunSummary {
    fn merge(&mut self, o: RunSummary) {
        self.outcomes.extend(o.outcomes);
        self.servers_committed += o.servers_committed;
        self.servers_changed += o.servers_changed;
    }
}

/// Releases a host attempt's server claims when dropped, unless the attempt recorded its
/// outcome: an attempt cancelled with its worker pass (a database error), abandoned, or
/// unable to record leaves its servers to the retry, which would otherwise skip them as
/// claimed and report `ok` with nothing committed (issue 19).
struct ClaimsGuard<'a> {
    ctx: &'a RunContext,
    host_id: i64,
    recorded: bool,
}

impl<'a> ClaimsGuard<'a> {
    fn new(ctx: &'a RunContext, host_id: i64) -> Self {
        ClaimsGuard {
            ctx,
            host_id,
            recorded: false,
        }
    }
}

impl Drop for ClaimsGuard<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.ctx.release_claims(self.host_id);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "worker".into())
}

/// Called after a run committed changes (the API rebuilds its index).
/// Awaited before `run` returns, so a caller that saw the run finish also sees its
/// results in search.
pub type OnCommit = Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Progress reporting for the CLI (a bar on a terminal); no-op by default.
pub trait Progress: Send + Sync {
    fn start(&self, _hosts: usize) {}
    fn host_done(&self, _seed: &str, _outcome: &str) {}
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

pub struct Crawler {
    store: Store,
    cfg: CrawlConfig,
    fetcher: Fetcher,
    /// This worker's name in leases (unique per process and crawler).
    worker: String,
    on_commit: Mutex<Option<OnCommit>>,
    /// Per-run state (validators, claimed servers) of the runs this worker takes part in.
    contexts: Mutex<HashMap<i64, Arc<RunContext>>>,
}

/// How long a lease lasts unless renewed; a dead worker's hosts wait this long.
pub const DEFAULT_LEASE_MS: i64 = 60_000;

impl Crawler {
    pub fn new(store: Store, cfg: CrawlConfig) -> anyhow::Result<Crawler> {
        let fetcher = Fetcher::new(&cfg)?;
        let worker = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::rng().random::<u32>()
        );
        Ok(Crawler {
            store,
            cfg,
            fetcher,
            worker,
            on_commit: Mutex::new(None),
            contexts: Mutex::new(HashMap::new()),
        })
    }

    pub fn set_on_commit(&self, f: OnCommit) {
        *self.on_commit.lock().expect("on_commit lock") = Some(f);
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    /// Crawl and commit one host; returns its outcome class.
    async fn crawl_one(
        &self,
        ctx: &RunContext,
        h: HostRow,
        summary: &Mutex<RunSummary>,
    ) -> Outcome {
        let started = now_ms();
        let start = match Start::for_seed(&h.to_seed()) {
            Ok(s) => s,
            Err(e) => return self.bad_seed(ctx, h, e, summary).await,
        };
        let mut claims = ClaimsGuard::new(ctx, h.id);
        let crawl = self.crawl_in_budget(ctx, &h, start).await;
        let Committed {
            committed,
            changed,
            findings,
            store_error,
        } = self.commit_crawl(ctx, &h.seed, &crawl).await;

        let Verdict {
            outcome,
            detail,
            status,
            url,
            retry_after,
        } = Verdict::of(&crawl, store_error);
        if let Some(e) = &crawl.failure {
            let _ = self.store.note_server_failure(&e.url, &e.to_string()).await;
        }
        let next_due_ms = if outcome.keeps_data() {
            None
        } else {
            Some(
                now_ms()
                    + self
                        .backoff(h.consecutive_failures + 1, retry_after)
                        .as_millis() as i64,
            )
        };
        let rec = OutcomeRecord {
            host_id: h.id,
            outcome,
            detail,
            http_status: status,
            url,
            started_ms: started,
            finished_ms: now_ms(),
            docs_fetched: crawl.stats.docs_fetched.load(Ordering::Relaxed) as i64,
            docs_unchanged: crawl.stats.docs_unchanged.load(Ordering::Relaxed) as i64,
            bytes: crawl.stats.bytes.load(Ordering::Relaxed) as i64,
            servers_ok: committed as i64,
            servers_failed: crawl.failed_servers.len() as i64 + crawl.failure.is_some() as i64,
            next_due_ms,
            moved_to: crawl.moved_to.clone(),
            host_findings: crawl.host_findings.clone(),
        };
        let recorded = self
            .finish_host(ctx, &h.seed, &rec, (committed, changed, findings), summary)
            .await;
        claims.recorded = recorded;
        outcome
    }

    /// Record the outcome of a host whose stored seed does not parse.
    async fn bad_seed(
        &self,
        ctx: &RunContext,
        h: HostRow,
        e: String,
        summary: &Mutex<RunSummary>,
    ) -> Outcome {
        // A stored seed that cannot be crawled is recorded like any failure, so
        // the host is released and backs off instead of its lease lapsing.
        warn!(error = %e, "bad seed");
        let now = now_ms();
        let rec = OutcomeRecord {
            host_id: h.id,
            outcome: FailureClass::Invalid.into(),
            detail: Some(format!("the stored seed cannot be crawled: {e}")),
            started_ms: now,
            finished_ms: now,
            servers_failed: 1,
            next_due_ms: Some(
                now + self.backoff(h.consecutive_failures + 1, None).as_millis() as i64,
            ),
            ..OutcomeRecord::default()
        };
        self.finish_host(ctx, &h.seed, &rec, (0, 0, 0), summary)
            .await;
        rec.outcome
    }

    /// Crawl the host within its time budget; a crawl over budget is abandoned (a
    /// `timeout` failure, nothing committed).
    async fn crawl_in_budget(&self, ctx: &RunContext, h: &HostRow, start: Start) -> HostCrawl {
        let budget = self.host_budget();
        match tokio::time::timeout(budget, crawl_host(ctx, h.id, start)).await {
            Ok(c) => c,
            Err(_) => {
                // Abandoned: nothing of it is committed, so its claims go back now (a
                // host reached later in this run may crawl those servers).
                warn!(
                    budget_secs = budget.as_secs(),
                    "host crawl exceeded its time budget; abandoned"
                );
                ctx.release_claims(h.id);
                HostCrawl {
                    failure: Some(FetchError::for_target(
                        FailureClass::Timeout,
                        h.seed.clone(),
                        format!(
                            "the host's crawl took longer than its budget of {} s (crawl.host_budget_secs); abandoned, nothing committed",
                            budget.as_secs()
                        ),
                    )),
                    ..HostCrawl::default()
                }
            }
        }
    }

    /// Record the outcome `timeout` for a host whose lease expired `expiries` times without
    /// an outcome (its workers were killed or stuck on it), instead of crawling it again:
    /// it counts a failure, so back-off and `stale` apply, and the run can end.
    async fn give_up(
        &self,
        ctx: &RunContext,
        h: HostRow,
        expiries: i64,
        summary: &Mutex<RunSummary>,
    ) -> Outcome {
        let now = now_ms();
        warn!(
            expiries,
            "host's lease expired repeatedly without an outcome; recorded as timeout"
        );
        let rec = OutcomeRecord {
            host_id: h.id,
            outcome: FailureClass::Timeout.into(),
            detail: Some(format!(
                "the host's lease expired {expiries} times without an outcome (worker killed or stuck \
                 on it, crawl.max_lease_expiries = {}); not crawled again in this run",
                self.cfg.max_lease_expiries
            )),
            started_ms: now,
            finished_ms: now,
            servers_failed: 1,
            next_due_ms: Some(now + self.backoff(h.consecutive_failures + 1, None).as_millis() as i64),
            ..OutcomeRecord::default()
        };
        self.finish_host(ctx, &h.seed, &rec, (0, 0, 0), summary)
            .await;
        rec.outcome
    }

    /// Record a host's outcome (as lease holder) and count it in this worker's summary.
    /// Returns whether it was recorded. `counts` = (servers committed, changed, findings).
    async fn finish_host(
        &self,
        ctx: &RunContext,
        seed: &str,
        rec: &OutcomeRecord,
        (committed, changed, findings): (usize, usize, i64),
        summary: &Mutex<RunSummary>,
    ) -> bool {
        let outcome = rec.outcome;
        match self
            .store
            .record_outcome(
                ctx.run_id,
                &self.worker,
                rec,
                self.cfg.stale_after_failures,
                (self.cfg.gone_after_secs * 1000) as i64,
            )
            .await
        {
            Ok(true) => {
                // The run's findings total (`GET /v1/crawls/{id}`, the crawl summary) counts
                // what each host's crawl reported: host findings and committed servers'.
                if findings > 0 {
                    if let Err(e) = self.store.add_run_findings(ctx.run_id, findings).await {
                        warn!(error = %e, "adding to the run's findings total failed");
                    }
                }
            }
            Ok(false) => {
                // Our lease expired and another worker took the host over: its outcome
                // counts, ours is dropped (the commits were idempotent).
                warn!("lease lost before the outcome was recorded; outcome dropped");
                return false;
            }
            Err(e) => {
                // The host stays leased to us until the lease lapses; then it is crawled
                // again (its claims released), so the run gets one true outcome for it.
                warn!(error = %e, "recording the outcome failed");
                return false;
            }
        }
        // The run is finished by whoever finds nothing left to lease (`run_with_progress`,
        // `finish_idle_runs`), not checked after every host: that was one more transaction
        // per host on the crawl's critical path (PERFORMANCE.md, "Crawl at scale").
        crate::metrics::host_crawled(outcome.as_str());
        info!(outcome = %outcome, fetched = rec.docs_fetched, unchanged = rec.docs_unchanged, "host crawled");
        let mut s = summary.lock().expect("summary lock");
        s.outcomes.push((seed.to_owned(), outcome));
        s.servers_committed += committed;
        s.servers_changed += changed;
        if outcome.keeps_data() {
            s.totals.hosts_ok += 1;
        } else {
            s.totals.hosts_failed += 1;
        }
        s.totals.docs_fetched += rec.docs_fetched;
        s.totals.docs_unchanged += rec.docs_unchanged;
        s.totals.bytes += rec.bytes;
        s.totals.findings += findings;
        true
    }

    /// Exponential back-off with ±25 % jitter, never shorter than the server's Retry-After.
    fn backoff(&self, failures: i64, retry_after: Option<Duration>) -> Duration {
        let exp = failures.clamp(1, 20) as u32 - 1;
        let base = self
            .cfg
            .backoff_base_secs
            .saturating_mul(1u64 << exp.min(30));
        let capped = base.min(self.cfg.backoff_max_secs) as f64;
        let jitter = rand::rng().random_range(0.75..1.25);
        let d = Duration::from_secs_f64(capped * jitter);
        match retry_after {
            Some(r) => d.max(r.min(Duration::from_secs(self.cfg.backoff_max_secs))),
            None => d,
        }
    }
}
