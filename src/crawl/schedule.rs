//! Scheduled crawls in `serve`: tokio-cron-scheduler fires on the configured 6-field cron
//! expression; the crawler's own lock keeps runs from overlapping (the scheduler would let
//! a slow run overlap the next, CRATES.md).

use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{info, warn};

use super::{CrawlError, Crawler};

/// Start the scheduler; the returned handle keeps it alive.
pub async fn start(crawler: Arc<Crawler>, schedule: &str) -> anyhow::Result<JobScheduler> {
    let sched = JobScheduler::new().await?;
    let job = Job::new_async(schedule, move |_id, _lock| {
        let crawler = crawler.clone();
        Box::pin(async move {
            match crawler.run("schedule", &[]).await {
                Ok(s) => info!(
                    run_id = s.run_id,
                    hosts = s.totals.hosts_total,
                    "scheduled crawl done"
                ),
                Err(CrawlError::AlreadyRunning) => {
                    info!("previous crawl still running; tick skipped")
                }
                Err(e) => warn!(error = %e, "scheduled crawl failed"),
            }
        })
    })
    .map_err(|e| anyhow::anyhow!("invalid crawl schedule {schedule:?}: {e}"))?;
    sched.add(job).await?;
    sched.start().await?;
    Ok(sched)
}
