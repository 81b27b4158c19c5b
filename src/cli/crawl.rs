//! `cds-registry crawl [HOST...]`: crawl the named hosts, or every due host, now.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::cli::open_store;
use crate::cli::progress::BarProgress;
use crate::config::Config;
use crate::crawl::{Crawler, Progress, RunSummary};
use crate::seeds;

/// `crawl [HOST...]`.
pub async fn crawl_now(
    cfg: &Config,
    hosts: &[String],
    progress: &dyn Progress,
) -> anyhow::Result<RunSummary> {
    let named = seeds::seed_keys(hosts).map_err(|e| anyhow::anyhow!(e))?;
    let store = open_store(cfg).await?;
    let known: std::collections::HashSet<String> = store
        .list_hosts()
        .await?
        .into_iter()
        .map(|h| h.seed)
        .collect();
    if known.is_empty() {
        store.close().await;
        anyhow::bail!(
            "the database has no hosts to crawl: seed first with `cds-registry seed \
             seeds/hosts.txt` (one host per line, see that file) or POST /v1/hosts; \
             `cds-registry demo` shows the registry with fixture data"
        );
    }
    if !named.is_empty() {
        let unknown: Vec<&String> = named.iter().filter(|k| !known.contains(*k)).collect();
        if !unknown.is_empty() {
            store.close().await;
            anyhow::bail!(
                "not seeded: {}; add hosts first with `cds-registry seed FILE` or POST /v1/hosts",
                unknown
                    .iter()
                    .map(|k| seeds::display_host(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let crawler = Crawler::new(store.clone(), cfg.crawl_config())?;
    let summary = crawler.run_with_progress("cli", &named, progress).await?;
    store.close().await;
    Ok(summary)
}

/// A human summary of a run, printed by `crawl` and `demo`.
pub fn format_summary(s: &RunSummary) -> String {
    let t = &s.totals;
    let mut out = format!(
        "crawl run {}: {} hosts, {} ok, {} failed; documents: {} fetched, {} unchanged (304); {} bytes; {} findings; {} servers committed ({} changed)",
        s.run_id, t.hosts_total, t.hosts_ok, t.hosts_failed, t.docs_fetched, t.docs_unchanged, t.bytes, t.findings,
        s.servers_committed, s.servers_changed
    );
    for (seed, outcome) in &s.outcomes {
        if *outcome != crate::model::Outcome::Ok {
            out.push_str(&format!("\n  {seed}: {outcome}"));
        }
    }
    out
}

/// The `crawl` command: exit 1 when nothing could be crawled (no host, or every host
/// failed).
pub async fn command(cfg: &Config, hosts: &[String]) -> anyhow::Result<ExitCode> {
    let bar = BarProgress::new(std::io::stderr().is_terminal());
    let s = crawl_now(cfg, hosts, &bar).await?;
    println!("{}", format_summary(&s));
    if s.totals.hosts_total == 0 && hosts.is_empty() {
        eprintln!(
            "no host is due for a crawl yet (each host waits for its next due time, \
             see GET /v1/hosts); name hosts to crawl them now: `cds-registry crawl HOST`"
        );
    }
    if s.totals.hosts_ok == 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
