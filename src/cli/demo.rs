//! `cds-registry demo`: the whole system in one command on a fresh machine. Starts the
//! fixture utilities on loopback, a registry on an embedded SQLite file, seeds, crawls with
//! a progress bar, serves the API and the map page, and prints where to look. Needs
//! nothing but the binary: no Postgres, no network.
//!
//! Configuration: the demo honours `listen` (the `--listen` flag wins) and `admin_token`
//! from the file and environment like every command; when no token is configured it makes
//! a random one and prints it, so the write examples it prints work. Its database (a fresh
//! SQLite file under `--data-dir`) and its crawl policy (exactly the fixtures' loopback
//! addresses) are its own: `database_url` and `crawl.*` are not used.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::crawl::format_summary;
use crate::cli::progress::BarProgress;
use crate::cli::serve::{self, Running};
use crate::config::{Config, Secret};
use crate::demo::{county_interior_point, FixtureWeb};
use crate::seeds::Seed;

/// Options of the demo command.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the API and page listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The admin token for the write endpoints (`None`: a random one is made).
    pub admin_token: Option<String>,
    /// Directory of the SQLite file (created; a fresh file each run).
    pub data_dir: PathBuf,
    /// Show the crawl progress bar.
    pub progress: bool,
}

/// A running demo.
pub struct Demo {
    pub web: FixtureWeb,
    pub registry: Running,
    /// The admin token in force (configured or made up).
    pub admin_token: String,
    /// The demo crawl's run id and the hosts that did not end `ok`, with their outcome.
    pub run_id: i64,
    pub failed: Vec<(String, String)>,
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
        // Monterey County: inside two Sierra entries (electric and gas).
        let (lon, lat) = county_interior_point("06053");
        let failed = if self.failed.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self
                .failed
                .iter()
                .map(|(h, o)| format!("{h} ({o})"))
                .collect();
            format!(
                "\n{} fixture host(s) fail on purpose, to show how failures look: {}.\n\
                 See them in the Operator tab of the page, or:\n  curl -s '{base}/v1/hosts'\n  \
                 curl -s '{base}/v1/crawls/{}'\n",
                self.failed.len(),
                list.join(", "),
                self.run_id
            )
        };
        format!(
            "\ncds-registry demo is up.\n\n  page:     {base}/\n  API docs: {base}/docs\n{failed}\n\
             Try:\n  # who serves this point (Monterey County, California)?\n  curl -s '{base}/v1/lookup?lat={:.5}&lon={:.5}'\n\
             \x20 # gas utilities in the US offering OAuth customer-data access\n  curl -s '{base}/v1/entities?country=US&commodity=natural_gas&capability=oauth'\n\
             \x20 # counts per country, commodity, capability, role...\n  curl -s '{base}/v1/facets'\n\
             \x20 # the registry is a CDS server itself: any CDS client (or registry) reads it\n  \
             curl -s '{base}/.well-known/cds-server-metadata.json'\n\
             \x20 # write endpoints take the admin token: crawl again now\n  \
             curl -s -X POST '{base}/v1/crawls' -H 'Authorization: Bearer {}'\n\n\
             Press Ctrl-C to stop.\n",
            lat, lon, self.admin_token
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
    let admin_token = opts.admin_token.clone().unwrap_or_else(|| {
        format!(
            "demo-{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        )
    });
    let mut cfg = Config {
        database_url: format!("sqlite://{}", db.display()),
        listen: opts.listen,
        admin_token: Some(Secret(admin_token.clone())),
        ..Config::default()
    };
    // The fixtures are plain http on loopback: open exactly those, nothing else.
    cfg.crawl.allow_http = web.allow_http();
    cfg.crawl.allow_private = web.allow_private();
    cfg.crawl.scheduled = false;
    // One host at a time (the fixtures answer in milliseconds): registry ids are then
    // assigned in the same order on every run, so examples that name an id (the README's
    // `/v1/coverage/12/geometry`) answer the same each time.
    cfg.crawl.concurrency = 1;
    cfg.crawl.first_byte_timeout_ms = 3_000;
    let listener = serve::bind(cfg.listen).await?;
    // The demo speaks CDS itself (README, "The registry as a CDS server"), at the
    // address it is bound to.
    cfg.publish.enabled = true;
    let registry = serve::start(cfg, listener, false).await?;
    let seeds: Vec<Seed> = web.seeds().into_iter().map(Seed::Host).collect();
    registry.state.store.add_hosts(&seeds, "seed").await?;
    let bar = BarProgress::new(opts.progress);
    let summary = registry
        .crawler
        .run_with_progress("demo", &[], &bar)
        .await?;
    registry.state.reload_index().await?;
    println!("{}", format_summary(&summary));
    let failed = summary
        .outcomes
        .iter()
        .filter(|(_, o)| *o != crate::model::Outcome::Ok)
        .map(|(seed, o)| (seed.clone(), o.to_string()))
        .collect();
    Ok(Demo {
        web,
        registry,
        admin_token,
        run_id: summary.run_id,
        failed,
    })
}

/// The `demo` command: start, print the banner, run until Ctrl-C or SIGTERM.
pub async fn command(
    cfg: &crate::config::Config,
    listen: Option<std::net::SocketAddr>,
    data_dir: std::path::PathBuf,
) -> anyhow::Result<()> {
    let demo = start(DemoOptions {
        listen: listen.unwrap_or(cfg.listen),
        admin_token: cfg
            .admin_token
            .as_ref()
            .map(|t| t.0.clone())
            .filter(|t| !t.is_empty()),
        data_dir,
        progress: std::io::stderr().is_terminal(),
    })
    .await?;
    println!("{}", demo.banner());
    serve::shutdown_signal().await;
    demo.shutdown().await
}
