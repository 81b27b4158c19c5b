//! What the commands do, callable from `main.rs`, tests and the demo.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpListener;
use tracing::info;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::crawl::{self, Crawler, Progress, RunSummary};
use crate::seeds;
use crate::store::Store;

/// Bind the API address; a busy or forbidden address says which and what to do.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another process listens there; pick another address with --listen \
                 (demo) or `listen` / CDS_REGISTRY_LISTEN, e.g. 127.0.0.1:8081, or 127.0.0.1:0 \
                 for any free port"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges; use a higher port"
            }
            _ => "check the `listen` setting (CDS_REGISTRY_LISTEN, or --listen for the demo)",
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}; {hint}")
    })
}

/// Open the configured store (migrations applied).
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&cfg.database_url, cfg.database_max_connections).await?)
}

/// `seed FILE`: add the file's hosts; returns (parsed, newly added). A file with any bad
/// line stores nothing (every bad line is named in the error).
pub async fn seed_file(store: &Store, path: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    let text = read_seeds_file(path)?;
    let seeds = seeds::parse_seeds(&text)?;
    let added = store.add_hosts(&seeds, "seed").await?;
    Ok((seeds.len(), added))
}

fn read_seeds_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// `seed --dry-run FILE`: what each line will crawl, without storing anything. For each
/// line: the normalised host, the URL tried first, whether `allow_http` / `allow_private`
/// apply, and whether the host is new, already present, or a repeat of an earlier line.
pub async fn seed_dry_run(cfg: &Config, path: &std::path::Path) -> anyhow::Result<String> {
    let text = read_seeds_file(path)?;
    let lines = seeds::parse_seed_lines(&text).map_err(seeds::SeedErrors)?;
    let store = open_store(cfg).await?;
    let present: std::collections::HashSet<String> = store
        .list_hosts()
        .await?
        .into_iter()
        .map(|h| h.seed)
        .collect();
    store.close().await;
    let guard = crawl::guard::Guard::new(&cfg.crawl.allow_http, &cfg.crawl.allow_private);
    let mut out = String::new();
    let (mut new, mut known, mut repeated) = (0, 0, 0);
    for l in &lines {
        let status = match l.duplicate_of {
            Some(first) => {
                repeated += 1;
                format!("same host as line {first}")
            }
            None if present.contains(l.seed.key()) => {
                known += 1;
                "already present".to_owned()
            }
            None => {
                new += 1;
                "new".to_owned()
            }
        };
        let plan = crawl::host::plan(&l.seed, &guard);
        out.push_str(&format!(
            "line {}: {} -> {} ({status})\n    first URL: {}\n    allow_http: {}; allow_private: {}\n",
            l.line, l.text, plan.host, plan.first_url, plan.http, plan.private
        ));
    }
    out.push_str(&format!(
        "{} hosts in {}: {new} new, {known} already present, {repeated} repeated lines; dry run, nothing stored",
        new + known,
        path.display()
    ));
    Ok(out)
}

/// A progress bar on a terminal, silent elsewhere.
pub struct BarProgress(pub ProgressBar);

impl BarProgress {
    pub fn new(visible: bool) -> BarProgress {
        let bar = if visible {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} crawling [{bar:30}] {pos}/{len} hosts {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        BarProgress(bar)
    }
}

impl Progress for BarProgress {
    fn start(&self, hosts: usize) {
        self.0.set_length(hosts as u64);
    }
    fn host_done(&self, seed: &str, outcome: &str) {
        self.0.set_message(format!("{seed}: {outcome}"));
        self.0.inc(1);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

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
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone())?;
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

/// What a `serve` process does (DESIGN.md, "Scaling past one machine").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// API + index that follows the crawlers' commits (LISTEN/NOTIFY + periodic check).
    Api,
    /// Scheduler + crawl worker (leases hosts); serves only health, metrics and admin.
    Crawler,
    /// Everything in one process (the only sensible role on SQLite).
    All,
}

/// A running registry. Dropping the handle does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub state: AppState,
    pub crawler: Arc<Crawler>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    scheduler: Option<tokio_cron_scheduler::JobScheduler>,
    stop_background: tokio::sync::watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(mut s) = self.scheduler.take() {
            let _ = s.shutdown().await;
        }
        let _ = self.stop_background.send(true);
        for t in self.background.drain(..) {
            let _ = t.await;
        }
        let _ = self.shutdown.send(());
        self.server.await??;
        self.state.store.close().await;
        Ok(())
    }
}

/// Start the registry with role `all`; `background` starts the cron scheduler, the crawl
/// worker loop and the index follower (tests drive crawls themselves and pass `false`).
pub async fn start(
    cfg: Config,
    listener: TcpListener,
    background: bool,
) -> anyhow::Result<Running> {
    start_with_role(cfg, listener, Role::All, background).await
}

pub async fn start_with_role(
    cfg: Config,
    listener: TcpListener,
    role: Role,
    background: bool,
) -> anyhow::Result<Running> {
    crate::metrics::handle();
    let store = open_store(&cfg).await?;
    let crawler = Arc::new(Crawler::new(store.clone(), cfg.crawl.clone())?);
    let cfg = Arc::new(cfg);
    let state = AppState::new(store, cfg.clone(), Some(crawler.clone()));
    if role != Role::Crawler {
        let n = state.reload_index().await?;
        info!(entries = n, "index loaded");
        // After a crawl in this process commits, apply the change log's new rows to the
        // index (incrementally, per changed server) and swap it in (readers never wait).
        let st = state.clone();
        crawler.set_on_commit(Arc::new(move || {
            let st = st.clone();
            Box::pin(async move {
                match st.catch_up().await {
                    Ok(Some((seq, n))) => info!(seq, entries = n, "index caught up"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "index reload failed; old index kept"),
                }
            })
        }));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background_tasks = Vec::new();
    let mut scheduler = None;
    if background {
        if role != Role::Api {
            if cfg.crawl.scheduled {
                scheduler =
                    Some(crawl::schedule::start(crawler.clone(), &cfg.crawl.schedule).await?);
            }
            background_tasks.push(tokio::spawn(crawl::schedule::worker_loop(
                crawler.clone(),
                std::time::Duration::from_secs(cfg.crawl.poll_secs.max(1)),
                stop_rx.clone(),
            )));
        }
        if role == Role::Api {
            background_tasks.push(tokio::spawn(crate::api::follow::follow(
                state.clone(),
                cfg.clone(),
                stop_rx.clone(),
            )));
        }
    }
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(state.clone(), listener, async move {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        state,
        crawler,
        shutdown: tx,
        server,
        scheduler,
        stop_background: stop_tx,
        background: background_tasks,
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
