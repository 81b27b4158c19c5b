//! `cds-registry demo`: the whole system in one command on a fresh machine. Starts the
//! fixture utilities on loopback, a registry on an embedded SQLite file, seeds, crawls with
//! a progress bar, serves the API and the map page, and prints where to look. Needs
//! nothing but the binary: no Postgres, no network.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::app::{self, BarProgress};
use crate::config::Config;
use crate::fixtures::web::FixtureWeb;
use crate::seeds::Seed;

/// Options of the demo command.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the API and page listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Directory of the SQLite file (created; a fresh file each run).
    pub data_dir: PathBuf,
    /// Show the crawl progress bar.
    pub progress: bool,
}

/// A running demo.
pub struct Demo {
    pub web: FixtureWeb,
    pub registry: app::Running,
}

impl Demo {
    pub fn page_url(&self) -> String {
        format!("{}/", self.registry.url())
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.registry.shutdown().await?;
        self.web.shutdown().await;
        Ok(())
    }

    /// What the demo prints once it is up.
    pub fn banner(&self) -> String {
        let base = self.registry.url();
        let exp = self.web.expected();
        let p = exp
            .point("06053")
            .map(|p| (p.lat, p.lon))
            .unwrap_or((36.35, -121.49));
        format!(
            "\ncds-registry demo is up.\n\n  page:     {base}/\n  API docs: {base}/docs\n\n\
             Try:\n  # who serves this point (Monterey County, California)?\n  curl -s '{base}/v1/lookup?lat={:.5}&lon={:.5}'\n\
             \x20 # gas utilities in the US offering OAuth customer-data access\n  curl -s '{base}/v1/entities?country=US&commodity=natural_gas&capability=oauth'\n\
             \x20 # counts per country, commodity, capability, role...\n  curl -s '{base}/v1/facets'\n\n\
             Press Ctrl-C to stop.\n",
            p.0, p.1
        )
    }
}

/// Start fixtures + registry, seed, crawl; returns when the page is ready.
pub async fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
    let web = FixtureWeb::start().await?;
    std::fs::create_dir_all(&opts.data_dir)?;
    let db = opts.data_dir.join("demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let mut cfg = Config {
        database_url: format!("sqlite://{}", db.display()),
        listen: opts.listen,
        ..Config::default()
    };
    // The fixtures are plain http on loopback: open exactly those, nothing else.
    cfg.crawl.allow_http = web.allow_http();
    cfg.crawl.allow_private = web.allow_private();
    cfg.crawl.scheduled = false;
    cfg.crawl.first_byte_timeout_ms = 3_000;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let registry = app::start(cfg, listener, false).await?;
    let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
    registry.state.store.add_hosts(&seeds, "seed").await?;
    let bar = BarProgress::new(opts.progress);
    let summary = registry
        .crawler
        .run_with_progress("demo", &[], &bar)
        .await?;
    registry.state.reload_index().await?;
    println!("{}", app::format_summary(&summary));
    Ok(Demo { web, registry })
}
