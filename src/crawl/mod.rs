//! The crawler: runs over due hosts with bounded concurrency, commits each server's new
//! state atomically, records per-host outcomes with back-off, and never runs twice at once.

pub mod fetch;
pub mod guard;
pub mod host;
pub mod schedule;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use rand::Rng;
use tracing::{info, warn, Instrument};

use crate::config::CrawlConfig;
use crate::store::{now_ms, HostRow, OutcomeRecord, RunTotals, Store, StoreError};
use fetch::Fetcher;
use host::{crawl_host, RunContext, Start};

/// `host` or `host:port` of a URL (the form seeds use).
fn authority_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// Why a crawl could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    #[error("a crawl is already running")]
    AlreadyRunning,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub totals: RunTotals,
    /// (host seed, outcome) in completion order.
    pub outcomes: Vec<(String, String)>,
    pub servers_committed: usize,
    pub servers_changed: usize,
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

struct NoProgress;
impl Progress for NoProgress {}

pub struct Crawler {
    store: Store,
    cfg: CrawlConfig,
    fetcher: Fetcher,
    running: tokio::sync::Mutex<()>,
    on_commit: Mutex<Option<OnCommit>>,
}

impl Crawler {
    pub fn new(store: Store, cfg: CrawlConfig) -> anyhow::Result<Crawler> {
        let fetcher = Fetcher::new(&cfg)?;
        Ok(Crawler {
            store,
            cfg,
            fetcher,
            running: tokio::sync::Mutex::new(()),
            on_commit: Mutex::new(None),
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

    /// Crawl the named hosts (by seed), or every due host when `named` is empty.
    pub async fn run(&self, trigger: &str, named: &[String]) -> Result<RunSummary, CrawlError> {
        self.run_with_progress(trigger, named, &NoProgress).await
    }

    pub async fn run_with_progress(
        &self,
        trigger: &str,
        named: &[String],
        progress: &dyn Progress,
    ) -> Result<RunSummary, CrawlError> {
        // tokio-cron-scheduler lets slow jobs overlap (CRATES.md): guard it here.
        let _running = self
            .running
            .try_lock()
            .map_err(|_| CrawlError::AlreadyRunning)?;
        let hosts = self.store.hosts_to_crawl(named, now_ms()).await?;
        let run_id = self.store.start_run(trigger).await?;
        let span = tracing::info_span!("crawl", run_id);
        let result = self
            .run_hosts(run_id, hosts, progress)
            .instrument(span)
            .await;
        let (status, summary) = match result {
            Ok(s) => ("finished", s),
            Err(e) => {
                let _ = self
                    .store
                    .finish_run(run_id, "failed", &RunTotals::default())
                    .await;
                return Err(e);
            }
        };
        self.store
            .finish_run(run_id, status, &summary.totals)
            .await?;
        self.refresh_cross_server_findings(run_id).await;
        if summary.servers_changed > 0 || summary.totals.hosts_failed > 0 {
            let cb = self.on_commit.lock().expect("on_commit lock").clone();
            if let Some(cb) = cb {
                cb().await;
            }
        }
        info!(run_id, ?summary.totals, "crawl finished");
        Ok(summary)
    }

    async fn run_hosts(
        &self,
        run_id: i64,
        hosts: Vec<HostRow>,
        progress: &dyn Progress,
    ) -> Result<RunSummary, CrawlError> {
        let ctx = Arc::new(RunContext {
            run_id,
            store: Some(self.store.clone()),
            fetcher: self.fetcher.clone(),
            cfg: self.cfg.clone(),
            validators: self.store.validators().await?,
            claimed: Mutex::new(HashSet::new()),
        });
        progress.start(hosts.len());
        let summary = Mutex::new(RunSummary {
            run_id,
            ..Default::default()
        });
        stream::iter(hosts)
            .for_each_concurrent(self.cfg.concurrency.max(1), |h| {
                let ctx = ctx.clone();
                let summary = &summary;
                let span = tracing::info_span!("host", host = %h.seed);
                async move {
                    let seed = h.seed.clone();
                    let outcome = self.crawl_one(&ctx, h, summary).await;
                    progress.host_done(&seed, &outcome);
                }
                .instrument(span)
            })
            .await;
        progress.finish();
        let mut s = summary.into_inner().expect("summary lock");
        s.totals.hosts_total = s.outcomes.len() as i64;
        Ok(s)
    }

    /// Crawl and commit one host; returns its outcome class.
    async fn crawl_one(&self, ctx: &RunContext, h: HostRow, summary: &Mutex<RunSummary>) -> String {
        let started = now_ms();
        let start = match Start::for_seed(&h.seed, h.metadata_url.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "bad seed");
                return "invalid".into();
            }
        };
        let crawl = crawl_host(ctx, h.id, start).await;
        let mut committed = 0usize;
        let mut changed = 0usize;
        let mut findings = crawl.host_findings.len() as i64;
        let mut store_error = None;
        let mut related_by_server: HashMap<String, Vec<String>> = HashMap::new();
        for s in &crawl.servers {
            match self.store.commit_server(ctx.run_id, &s.commit).await {
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
                e.class.as_str().to_owned(),
                Some(e.detail.clone()),
                e.status.map(i64::from),
                Some(e.url.clone()),
                e.retry_after,
            ),
            (None, Some(e)) => ("store_error".to_owned(), Some(e.clone()), None, None, None),
            (None, None) if !crawl.failed_servers.is_empty() => (
                "partial".to_owned(),
                Some(format!(
                    "{} related server(s) failed",
                    crawl.failed_servers.len()
                )),
                None,
                None,
                None,
            ),
            (None, None) => ("ok".to_owned(), None, None, None, None),
        };
        if let Some(e) = &crawl.failure {
            let _ = self.store.note_server_failure(&e.url, &e.to_string()).await;
        }
        let ok = outcome == "ok" || outcome == "partial";
        let next_due_ms = if ok {
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
            outcome: outcome.clone(),
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
        if let Err(e) = self
            .store
            .record_outcome(
                ctx.run_id,
                &rec,
                self.cfg.stale_after_failures,
                (self.cfg.gone_after_secs * 1000) as i64,
            )
            .await
        {
            warn!(error = %e, "recording the outcome failed");
        }
        info!(outcome = %outcome, fetched = rec.docs_fetched, unchanged = rec.docs_unchanged, "host crawled");
        let mut s = summary.lock().expect("summary lock");
        s.outcomes.push((h.seed.clone(), outcome.clone()));
        s.servers_committed += committed;
        s.servers_changed += changed;
        if ok {
            s.totals.hosts_ok += 1;
        } else {
            s.totals.hosts_failed += 1;
        }
        s.totals.docs_fetched += rec.docs_fetched;
        s.totals.docs_unchanged += rec.docs_unchanged;
        s.totals.bytes += rec.bytes;
        s.totals.findings += findings;
        outcome
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
            validate::authoritative_conflicts_with(&claims, &overlap)
                .into_iter()
                .filter_map(|f| {
                    let owner = claims.iter().position(|c| {
                        c.entry_url == f.url
                            && c.pointer == f.pointer
                            && f.actual.as_deref() != Some(c.server_url.as_str())
                    })?;
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
            Ok(()) => info!(run_id, findings = n, "cross-server findings refreshed"),
            Err(e) => warn!(error = %e, "storing cross-server findings failed"),
        }
    }
}
