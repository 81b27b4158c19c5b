//! Scheduled crawls in `serve`: tokio-cron-scheduler fires on the configured 6-field cron
//! expression; the crawler's own lock keeps runs from overlapping (the scheduler would let
//! a slow run overlap the next, CRATES.md).

use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{info, warn};

use super::{CrawlError, Crawler};

/// Lease and crawl hosts of any run, forever: the worker loop of `serve --role
/// crawler|all`. Stops when `stop` resolves.
pub async fn worker_loop(
    crawler: Arc<Crawler>,
    poll: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = crawler.work(&super::NoProgress).await {
            warn!(error = %e, "crawl worker pass failed");
        }
        if let Err(e) = crawler.finish_idle_runs().await {
            warn!(error = %e, "finishing idle runs failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Start the scheduler; the returned handle keeps it alive.
pub async fn start(crawler: Arc<Crawler>, schedule: &str) -> anyhow::Result<JobScheduler> {
    let sched = JobScheduler::new().await?;
    let job = Job::new_async(schedule, move |_id, _lock| {
        let crawler = crawler.clone();
        Box::pin(async move {
            // The tick only marks the due hosts; crawler workers (in this process or in
            // others sharing the database) lease and crawl them.
            match crawler.trigger("schedule", &[]).await {
                Ok((run_id, hosts)) => info!(run_id, hosts, "scheduled crawl started"),
                Err(CrawlError::AlreadyRunning) => {
                    info!("previous crawl still running; tick skipped")
                }
                Err(e) => warn!(error = %e, "starting the scheduled crawl failed"),
            }
        })
    })
    .map_err(|e| anyhow::anyhow!("invalid crawl schedule {schedule:?}: {e}"))?;
    sched.add(job).await?;
    sched.start().await?;
    Ok(sched)
}
