//! Committing a host's crawl: each server in its own transaction, then what the servers
//! say about other hosts and servers (discovered hosts, children no longer listed).

use std::collections::HashMap;

use tracing::warn;

use super::host::{HostCrawl, RunContext, ServerResult};
use super::{authority_of, Crawler};
use crate::store::{CommitSummary, StoreError};

/// What committing one host's crawl did.
pub(super) struct Committed {
    pub(super) committed: usize,
    pub(super) changed: usize,
    /// Findings of the host and of its committed servers.
    pub(super) findings: i64,
    /// The last commit failure, if any (those servers keep their stored state).
    pub(super) store_error: Option<String>,
}

impl Crawler {
    /// Commit every server of `crawl` (the host seeded as `seed`).
    pub(super) async fn commit_crawl(
        &self,
        ctx: &RunContext,
        seed: &str,
        crawl: &HostCrawl,
    ) -> Committed {
        let mut committed = 0usize;
        let mut changed = 0usize;
        let mut findings = crawl.host_findings.len() as i64;
        let mut store_error = None;
        let mut related_by_server: HashMap<String, Vec<String>> = HashMap::new();
        for s in &crawl.servers {
            match self.commit_server(ctx, s).await {
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
        self.record_discovered(seed, crawl).await;
        self.retire_unlisted(ctx, crawl, &related_by_server).await;
        for (url, e) in &crawl.failed_servers {
            let _ = self.store.note_server_failure(url, &e.to_string()).await;
        }
        Committed {
            committed,
            changed,
            findings,
            store_error,
        }
    }

    #[tracing::instrument(name = "commit", level = "debug", skip_all, fields(server = %s.commit.url, entries = s.commit.entries.len()))]
    async fn commit_server(
        &self,
        ctx: &RunContext,
        s: &ServerResult,
    ) -> Result<CommitSummary, StoreError> {
        let t0 = std::time::Instant::now();
        let committed = self.store.commit_server(ctx.run_id, &s.commit).await;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "server commit");
        committed
    }

    /// Hosts reached through related_metadata or a migration are recorded as
    /// `discovered` (crawled through the seed that leads to them, not on their own).
    async fn record_discovered(&self, seed: &str, crawl: &HostCrawl) {
        for s in &crawl.servers {
            if let Some(authority) = authority_of(&s.commit.url) {
                if !authority.eq_ignore_ascii_case(seed) {
                    if let Err(e) = self.store.discovered_host(&authority).await {
                        warn!(error = %e, "recording a discovered host failed");
                    }
                }
            }
        }
    }

    /// Children a committed parent no longer lists leave search (history kept).
    async fn retire_unlisted(
        &self,
        ctx: &RunContext,
        crawl: &HostCrawl,
        related_by_server: &HashMap<String, Vec<String>>,
    ) {
        let committed_urls: Vec<String> =
            crawl.servers.iter().map(|s| s.commit.url.clone()).collect();
        for (parent, related) in related_by_server {
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
    }
}
