//! A worker pass: lease hosts of any run, crawl up to `concurrency` of them at once, and
//! keep their leases alive meanwhile.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tracing::warn;

use super::host::RunContext;
use super::{CrawlError, Crawler, Progress, RunSummary};
use crate::store::{now_ms, Leased, StoreError};

/// A lease query in flight.
type LeaseFuture<'a> = futures::future::BoxFuture<'a, Result<Vec<Leased>, StoreError>>;

/// Hosts a worker pass has in hand (queued or crawling): only these are renewed.
type InHand = Arc<Mutex<HashSet<i64>>>;

/// Aborts a background task when dropped (also when the owner's future is cancelled).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Crawler {
    pub(super) fn lease_ms(&self) -> i64 {
        self.cfg.lease_secs.max(1) as i64 * 1000
    }

    /// Time one host's crawl may take before it is abandoned as `timeout`.
    pub(super) fn host_budget(&self) -> Duration {
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
        let in_hand: InHand = Arc::default();
        let _stop_renewal = AbortOnDrop(self.spawn_renewal(in_hand.clone()));
        let mut in_flight = FuturesUnordered::new();
        let mut pending: Option<(usize, LeaseFuture<'_>)> = None;
        // Hosts leased ahead of a free slot: a slot that frees up starts the next host at
        // once instead of waiting for a lease round trip (measured in PERFORMANCE.md,
        // "Crawl at scale": slots sat idle behind the lease query). Queued hosts' leases
        // are renewed like the running ones.
        let mut queued: VecDeque<Leased> = VecDeque::new();
        let ahead = (limit / 2).max(1);
        let mut exhausted = false;
        loop {
            while in_flight.len() < limit {
                let Some(l) = queued.pop_front() else { break };
                let ctx = self.context(l.run_id).await?;
                in_flight.push(self.host_attempt(ctx, l, &summary, &in_hand, progress));
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

    /// Renew the leases of the hosts in hand every third of the lease time, in a task of
    /// its own (see [`Self::work`]).
    fn spawn_renewal(&self, in_hand: InHand) -> tokio::task::JoinHandle<()> {
        let lease_ms = self.lease_ms();
        // A host is renewed for at most two budgets after it was leased: one for waiting
        // in `queued` (a slot frees within a budget) and one for its crawl. A crawl stuck
        // where the budget's timer cannot stop it (blocking the thread) loses its lease
        // then, and the takeover counts towards `max_lease_expiries`.
        let hold_ms = 2 * self.host_budget().as_millis() as i64;
        let store = self.store.clone();
        let worker = self.worker.clone();
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
    }

    /// One leased host: crawled, or given up after too many lost leases.
    #[tracing::instrument(name = "host", skip_all, fields(run_id = l.run_id, host = %l.host.seed))]
    async fn host_attempt(
        &self,
        ctx: Arc<RunContext>,
        l: Leased,
        summary: &Mutex<RunSummary>,
        in_hand: &Mutex<HashSet<i64>>,
        progress: &dyn Progress,
    ) {
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

    /// The shared state of run `run_id`, made when this worker first works on it.
    pub(super) async fn context(&self, run_id: i64) -> Result<Arc<RunContext>, CrawlError> {
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
}
