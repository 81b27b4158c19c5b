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

/// Open the configured store (migrations applied).
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&cfg.database_url, cfg.database_max_connections).await?)
}

/// `seed FILE`: add the file's hosts; returns (parsed, newly added).
pub async fn seed_file(store: &Store, path: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let seeds = seeds::parse_seeds(&text)?;
    let added = store.add_hosts(&seeds, "seed").await?;
    Ok((seeds.len(), added))
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
    let store = open_store(cfg).await?;
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone())?;
    let summary = crawler.run_with_progress("cli", hosts, progress).await?;
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
        if outcome != "ok" {
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
        // After a crawl in this process commits, rebuild the index and swap it in
        // (readers never wait).
        let st = state.clone();
        crawler.set_on_commit(Arc::new(move || {
            let st = st.clone();
            Box::pin(async move {
                match st.reload_index().await {
                    Ok(n) => info!(entries = n, "index reloaded"),
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
