//! `cds-registry serve`: bind, start the API and/or the crawler workers by role, and stop
//! them on a signal. Tests and the demo start registries through [`start`] as well.

use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use crate::api::{self, AppState};
use crate::cli::open_store;
use crate::config::Config;
use crate::crawl::{self, Crawler};

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
    // Published links name the address actually bound (`listen` may give port 0) unless
    // `publish.base_url` says otherwise.
    let mut cfg = cfg;
    cfg.publish = cfg.publish.at(listener.local_addr()?);
    let store = open_store(&cfg).await?;
    let crawler = Arc::new(Crawler::new(store.clone(), cfg.crawl_config())?);
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
            background_tasks.push(tokio::spawn(crate::index::live::follow(
                state.live.clone(),
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

/// The `serve` command: run until Ctrl-C or SIGTERM.
pub async fn command(cfg: Config, role: Role) -> anyhow::Result<()> {
    let listener = bind(cfg.listen).await?;
    let running = start_with_role(cfg, listener, role, true).await?;
    println!("cds-registry ({role:?}) listening on {}", running.url());
    shutdown_signal().await;
    running.shutdown().await
}
