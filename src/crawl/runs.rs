//! Crawl runs: starting or joining one, working on it to its end, and what follows a run
//! (cross-server findings, the index refresh).

use std::time::Duration;

use tracing::info;

use super::{CrawlError, Crawler, NoProgress, Progress, RunSummary};
use crate::store::now_ms;

impl Crawler {
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
        let run_id = self.begin_or_join(trigger, named, progress).await?;
        self.see_run_through(run_id, progress).await
    }

    /// Start a run, or join the one in progress; reports its hosts to `progress`.
    async fn begin_or_join(
        &self,
        trigger: &str,
        named: &[String],
        progress: &dyn Progress,
    ) -> Result<i64, CrawlError> {
        Ok(match self.store.begin_run(trigger, named).await? {
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
        })
    }

    /// Work on run `run_id` until nothing is left to lease, wait for other workers'
    /// hosts, and finish the run.
    #[tracing::instrument(name = "crawl", skip_all, fields(run_id = run_id))]
    async fn see_run_through(
        &self,
        run_id: i64,
        progress: &dyn Progress,
    ) -> Result<RunSummary, CrawlError> {
        let mut summary = self.work(progress).await?;
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
}
