//! The crawler: runs over due hosts with bounded concurrency, commits each server's new
//! state atomically, records per-host outcomes with back-off, and never runs twice at once.

pub mod fetch;
pub mod guard;
pub mod host;
pub mod lifecycle;
pub mod schedule;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::StreamExt;
use rand::Rng;
use tracing::{info, warn, Instrument};

use crate::config::CrawlConfig;
use crate::model::Outcome;
use crate::store::{now_ms, HostRow, Leased, OutcomeRecord, RunTotals, Store, StoreError};
use fetch::{FailureClass, FetchError, Fetcher};
use host::{crawl_host, HostCrawl, RunContext, Start};

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

/// A lease query in flight.
type LeaseFuture<'a> = futures::future::BoxFuture<'a, Result<Vec<Leased>, StoreError>>;

/// Releases a host attempt's server claims when dropped, unless the attempt recorded its
/// outcome: an attempt cancelled with its worker pass (a database error), abandoned, or
/// unable to record leaves its servers to the retry, which would otherwise skip them as
/// claimed and report `ok` with nothing committed (issue 19).
struct ClaimsGuard<'a> {
    ctx: &'a RunContext,
    host_id: i64,
    recorded: bool,
}

impl Drop for ClaimsGuard<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.ctx.release_claims(self.host_id);
        }
    }
}

/// Aborts a background task when dropped (also when the owner's future is cancelled).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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

    /// Crawl the named hosts (by seed), or every due host when `named` is empty.
    pub async fn run(&self, trigger: &str, named: &[String]) -> Result<RunSummary, CrawlError> {
        self.run_with_progress(trigger, named, &NoProgress).await
    }

    /// Start a run (marking its hosts) without working on it: workers anywhere pick it
    /// up. Fails with `AlreadyRunning` while another run holds the lock — in any process
    /// sharing the database, so scheduled ticks and API triggers never overlap.
    pub async fn trigger(&self, trigger: &str, named: &[String]) -> Result<(i64, i64), CrawlError> {
        self.store
            .begin_run(trigger, named)
            .await?
            .ok_or(CrawlError::AlreadyRunning)
    }

    /// Start a run and work on it in this process until none of its hosts is left to
    /// lease (other workers may help), then wait (bounded by the lease time) for hosts
    /// other workers still hold, and finish.
    pub async fn run_with_progress(
        &self,
        trigger: &str,
        named: &[String],
        progress: &dyn Progress,
    ) -> Result<RunSummary, CrawlError> {
        let run_id = match self.store.begin_run(trigger, named).await? {
            Some((run_id, total)) => {
                progress.start(total as usize);
                run_id
            }
            // A run is in progress (another worker's, or one whose process died): join it.
            // Its hosts are leased as their leases allow; a dead worker's after expiry.
            None => {
                let run_id = self
                    .store
                    .running_run()
                    .await?
                    .ok_or(CrawlError::AlreadyRunning)?;
                let run = self.store.run(run_id).await?;
                info!(
                    run_id,
                    pending = run.hosts_pending,
                    "joining the crawl run in progress"
                );
                progress.start(run.hosts_pending.max(0) as usize);
                run_id
            }
        };
        let span = tracing::info_span!("crawl", run_id);
        let mut summary = self.work(progress).instrument(span).await?;
        progress.finish();
        summary.run_id = run_id;
        // Hosts leased by other workers may still be in flight; their leases bound the wait.
        let deadline = now_ms() + self.lease_ms() * 2;
        while !self.store.maybe_finish_run(run_id).await? {
            if now_ms() > deadline || self.store.running_run().await? != Some(run_id) {
                break;
            }
            // A host whose lease expired (its worker died) is leasable again: take it.
            let more = self.work(progress).await?;
            summary.merge(more);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.finish_run_effects(run_id).await;
        summary.totals = self.store.run_totals(run_id).await?;
        info!(run_id, ?summary.totals, "crawl finished");
        Ok(summary)
    }

    /// After a run: cross-server findings, then the index refresh callback.
    async fn finish_run_effects(&self, run_id: i64) {
        crate::metrics::run_finished();
        self.contexts.lock().expect("contexts lock").remove(&run_id);
        self.refresh_cross_server_findings(run_id).await;
        let cb = self.on_commit.lock().expect("on_commit lock").clone();
        if let Some(cb) = cb {
            cb().await;
        }
    }

    fn lease_ms(&self) -> i64 {
        self.cfg.lease_secs.max(1) as i64 * 1000
    }

    /// Time one host's crawl may take before it is abandoned as `timeout`.
    fn host_budget(&self) -> Duration {
        Duration::from_secs(self.cfg.host_budget_secs.max(1))
    }

    /// Lease and crawl hosts of any run until nothing is leasable, keeping up to
    /// `concurrency` hosts in flight and renewing the leases while they run.
    ///
    /// The lease query is one more future in the same `select!` as the crawls in flight,
    /// kept across iterations (never dropped half-way, which could lose leased rows), and
    /// renewal runs in its own task: nothing awaits the database while in-flight crawls
    /// stand still — on SQLite a stalled transaction would hold the write lock the lease
    /// query waits for.
    pub async fn work(&self, progress: &dyn Progress) -> Result<RunSummary, CrawlError> {
        let summary = Mutex::new(RunSummary::default());
        let limit = self.cfg.concurrency.max(1);
        let lease_ms = self.lease_ms();
        // A host is renewed for at most two budgets after it was leased: one for waiting
        // in `queued` (a slot frees within a budget) and one for its crawl. A crawl stuck
        // where the budget's timer cannot stop it (blocking the thread) loses its lease
        // then, and the takeover counts towards `max_lease_expiries`.
        let hold_ms = 2 * self.host_budget().as_millis() as i64;
        // Hosts this pass has in hand (queued or crawling): only these are renewed.
        let in_hand: Arc<Mutex<std::collections::HashSet<i64>>> = Arc::default();
        let renewal = {
            let store = self.store.clone();
            let worker = self.worker.clone();
            let in_hand = in_hand.clone();
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(Duration::from_millis((lease_ms / 3).max(100) as u64));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let now = now_ms();
                    let ids: Vec<i64> = in_hand
                        .lock()
                        .expect("in-hand lock")
                        .iter()
                        .copied()
                        .collect();
                    if let Err(e) = store
                        .renew_leases(&worker, now + lease_ms, now - hold_ms, &ids)
                        .await
                    {
                        warn!(error = %e, "lease renewal failed");
                    }
                }
            })
        };
        let _stop_renewal = AbortOnDrop(renewal);
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut pending: Option<(usize, LeaseFuture<'_>)> = None;
        // Hosts leased ahead of a free slot: a slot that frees up starts the next host at
        // once instead of waiting for a lease round trip (measured in PERFORMANCE.md,
        // "Crawl at scale": slots sat idle behind the lease query). Queued hosts' leases
        // are renewed like the running ones.
        let mut queued: std::collections::VecDeque<Leased> = std::collections::VecDeque::new();
        let ahead = (limit / 2).max(1);
        let mut exhausted = false;
        loop {
            while in_flight.len() < limit {
                let Some(l) = queued.pop_front() else { break };
                let ctx = self.context(l.run_id).await?;
                let summary = &summary;
                let in_hand = &in_hand;
                let span = tracing::info_span!("host", run_id = l.run_id, host = %l.host.seed);
                in_flight.push(
                    async move {
                        let seed = l.host.seed.clone();
                        let host_id = l.host.id;
                        let outcome = if l.lease_expiries >= self.cfg.max_lease_expiries.max(1) {
                            self.give_up(&ctx, l.host, l.lease_expiries, summary).await
                        } else {
                            self.crawl_one(&ctx, l.host, summary).await
                        };
                        in_hand.lock().expect("in-hand lock").remove(&host_id);
                        progress.host_done(&seed, outcome.as_str());
                    }
                    .instrument(span),
                );
            }
            let held = in_flight.len() + queued.len();
            if pending.is_none() && !exhausted && held < limit + ahead {
                let want = limit + ahead - held;
                pending = Some((
                    want,
                    Box::pin(
                        self.store
                            .lease_hosts(&self.worker, want, now_ms() + lease_ms),
                    ),
                ));
            }
            if pending.is_none() && in_flight.is_empty() && queued.is_empty() {
                break;
            }
            tokio::select! {
                Some(_) = in_flight.next(), if !in_flight.is_empty() => {
                    // A slot is free: more hosts may be leasable now.
                    exhausted = false;
                }
                leased = async { pending.as_mut().expect("guarded").1.as_mut().await }, if pending.is_some() => {
                    let want = pending.take().expect("guarded").0;
                    let leased = leased?;
                    if leased.len() < want {
                        exhausted = true;
                    }
                    in_hand
                        .lock()
                        .expect("in-hand lock")
                        .extend(leased.iter().map(|l| l.host.id));
                    queued.extend(leased);
                }
            }
        }
        drop(in_flight);
        Ok(summary.into_inner().expect("summary lock"))
    }

    /// Finish runs whose hosts are all done (a worker that died after the last outcome
    /// left its run open); used by the background worker loop.
    pub async fn finish_idle_runs(&self) -> Result<(), CrawlError> {
        if let Some(run_id) = self.store.running_run().await? {
            if self.store.maybe_finish_run(run_id).await? {
                self.finish_run_effects(run_id).await;
            }
        }
        Ok(())
    }

    async fn context(&self, run_id: i64) -> Result<Arc<RunContext>, CrawlError> {
        if let Some(c) = self.contexts.lock().expect("contexts lock").get(&run_id) {
            return Ok(c.clone());
        }
        let ctx = Arc::new(RunContext {
            run_id,
            store: Some(self.store.clone()),
            fetcher: self.fetcher.clone(),
            cfg: self.cfg.clone(),
            validators: self.store.validators().await?,
            claimed: Mutex::new(HashMap::new()),
        });
        Ok(self
            .contexts
            .lock()
            .expect("contexts lock")
            .entry(run_id)
            .or_insert(ctx)
            .clone())
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
            Err(e) => {
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
                return rec.outcome;
            }
        };
        let mut claims = ClaimsGuard {
            ctx,
            host_id: h.id,
            recorded: false,
        };
        let budget = self.host_budget();
        let crawl = match tokio::time::timeout(budget, crawl_host(ctx, h.id, start)).await {
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
                    failure: Some(FetchError {
                        class: FailureClass::Timeout,
                        url: h.seed.clone(),
                        detail: format!(
                            "the host's crawl took longer than its budget of {} s (crawl.host_budget_secs); abandoned, nothing committed",
                            budget.as_secs()
                        ),
                        status: None,
                        retry_after: None,
                    }),
                    ..HostCrawl::default()
                }
            }
        };
        let mut committed = 0usize;
        let mut changed = 0usize;
        let mut findings = crawl.host_findings.len() as i64;
        let mut store_error = None;
        let mut related_by_server: HashMap<String, Vec<String>> = HashMap::new();
        for s in &crawl.servers {
            let t0 = std::time::Instant::now();
            let committed_now = self.store.commit_server(ctx.run_id, &s.commit).await;
            tracing::debug!(
                server = %s.commit.url,
                entries = s.commit.entries.len(),
                ms = t0.elapsed().as_millis() as u64,
                "server commit"
            );
            match committed_now {
                Ok(sum) => {
                    committed += 1;
                    findings += s.commit.findings.len() as i64;
                    if sum.changed {
                        changed += 1;
                    }
                    related_by_server.insert(s.commit.url.clone(), s.related.clone());
                }
                Err(e) => {
                    warn!(server = %s.commit.url, error = %e, "commit failed; stored state kept");
                    // Not crawled after all: a later host reaching it must not skip it.
                    ctx.release_claim(&s.commit.url);
                    store_error = Some(e.to_string());
                }
            }
        }
        // Hosts reached through related_metadata or a migration are recorded as
        // `discovered` (crawled through the seed that leads to them, not on their own).
        for s in &crawl.servers {
            if let Some(authority) = authority_of(&s.commit.url) {
                if !authority.eq_ignore_ascii_case(&h.seed) {
                    if let Err(e) = self.store.discovered_host(&authority).await {
                        warn!(error = %e, "recording a discovered host failed");
                    }
                }
            }
        }
        // Children a committed parent no longer lists leave search (history kept).
        let committed_urls: Vec<String> =
            crawl.servers.iter().map(|s| s.commit.url.clone()).collect();
        for (parent, related) in &related_by_server {
            let mut listed = related.clone();
            listed.extend(committed_urls.iter().cloned());
            listed.extend(crawl.failed_servers.iter().map(|(u, _)| u.clone()));
            if let Err(e) = self
                .store
                .retire_unlisted_children(ctx.run_id, parent, &listed)
                .await
            {
                warn!(error = %e, "retiring unlisted children failed");
            }
        }
        for (url, e) in &crawl.failed_servers {
            let _ = self.store.note_server_failure(url, &e.to_string()).await;
        }

        let (outcome, detail, status, url, retry_after) = match (&crawl.failure, &store_error) {
            (Some(e), _) => (
                Outcome::Failed(e.class),
                Some(e.detail.clone()),
                e.status.map(i64::from),
                Some(e.url.clone()),
                e.retry_after,
            ),
            (None, Some(e)) => (
                FailureClass::StoreError.into(),
                Some(e.clone()),
                None,
                None,
                None,
            ),
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
                (Outcome::Partial, Some(why.join("; ")), None, None, None)
            }
            (None, None) => (Outcome::Ok, None, None, None, None),
        };
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

    /// Recompute XS-AUTH-CONFLICT (WG1-01 §4: only one server should be `authoritative`
    /// for the same coverage and capability) over every searchable server, and store the
    /// result in place of the previous one. It runs after every run because a conflict
    /// involves two servers, either of which may have changed, gone or come back. Errors
    /// are logged: the run itself succeeded and its commits stand.
    async fn refresh_cross_server_findings(&self, run_id: i64) {
        use crate::cds::validate::{self, AuthClaim};
        let rows = match self.store.authoritative_claims().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "reading authoritative entries failed; cross-server findings kept");
                return;
            }
        };
        let pointer = |page_index: i64| format!("/coverage_entries/{page_index}");
        let findings: Vec<(i64, crate::cds::Finding)> = {
            let claims: Vec<AuthClaim> = rows
                .iter()
                .map(|r| AuthClaim {
                    server_url: r.server_url.clone(),
                    entry_url: r.page_url.clone(),
                    pointer: pointer(r.page_index),
                    entry_id: r.entry_id.clone(),
                    capabilities: r.capabilities.clone(),
                    country: r.country.clone(),
                    bbox: r.bbox,
                })
                .collect();
            // A claim is one entry of one server: (server, page, pointer) finds its row.
            fn key(c: &AuthClaim) -> (&str, &str, &str) {
                (&c.server_url, &c.entry_url, &c.pointer)
            }
            let row_of: HashMap<_, usize> = claims
                .iter()
                .enumerate()
                .map(|(i, c)| (key(c), i))
                .collect();
            // Territories are decoded only for pairs that pass the cheap tests (shared
            // capability, same country, overlapping boxes), and once each.
            let shapes: Vec<std::sync::OnceLock<Option<geo::MultiPolygon<f64>>>> =
                rows.iter().map(|_| std::sync::OnceLock::new()).collect();
            let shape = |c: &AuthClaim| {
                let i = *row_of.get(&key(c))?;
                let decode = || crate::territory::from_wkb(rows[i].wkb.as_deref()?).ok();
                shapes[i].get_or_init(decode).as_ref()
            };
            let overlap = |a: &AuthClaim, b: &AuthClaim| {
                validate::default_overlap(a, b)
                    && match (shape(a), shape(b)) {
                        (Some(x), Some(y)) => validate::territories_overlap(x, y),
                        _ => false,
                    }
            };
            // Each finding is reported against one side (its page and pointer) and names
            // the other side's server in `actual`: that identifies the claim it is about.
            // `overlap` starts with `default_overlap`, so the indexed sweep applies.
            let mut by_place: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
            for (i, c) in claims.iter().enumerate() {
                by_place
                    .entry((&c.entry_url, &c.pointer))
                    .or_default()
                    .push(i);
            }
            validate::authoritative_conflicts_indexed(&claims, &overlap)
                .into_iter()
                .filter_map(|f| {
                    let owner = *by_place
                        .get(&(f.url.as_str(), f.pointer.as_str()))?
                        .iter()
                        .find(|&&i| f.actual.as_deref() != Some(claims[i].server_url.as_str()))?;
                    Some((rows[owner].server_id, f))
                })
                .collect()
        };
        let n = findings.len();
        match self
            .store
            .replace_cross_server_findings(run_id, &findings)
            .await
        {
            Ok(()) => {
                info!(run_id, findings = n, "cross-server findings refreshed");
                if n > 0 {
                    if let Err(e) = self.store.add_run_findings(run_id, n as i64).await {
                        warn!(error = %e, "adding to the run's findings total failed");
                    }
                }
            }
            Err(e) => warn!(error = %e, "storing cross-server findings failed"),
        }
    }
}
