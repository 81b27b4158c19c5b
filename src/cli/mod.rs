//! The `cds-registry` command line: parsing, configuration, logging, and one module per
//! command (`main.rs` only calls [`main`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::store::Store;

pub mod crawl;
pub mod demo;
pub mod migrate;
pub mod progress;
pub mod seed;
pub mod serve;
pub mod validate;

#[derive(Parser)]
#[command(
    name = "cds-registry",
    version,
    about = "Registry of LF Energy CDS server metadata"
)]
pub struct Cli {
    /// TOML configuration file (environment variables CDS_REGISTRY_* override it).
    #[arg(long, global = true, env = "CDS_REGISTRY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the API and/or the scheduled crawler workers.
    Serve {
        /// `api` (search, follows crawlers' commits), `crawler` (scheduler + worker),
        /// or `all` (one process; the only sensible choice on SQLite).
        #[arg(long, value_enum, default_value = "all")]
        role: serve::Role,
    },
    /// Add the hosts of a seeds file (idempotent). A file with a bad line stores nothing.
    Seed {
        /// One host per line: `name`, `name:port`, an origin URL (`https://name/`), or the
        /// URL of a metadata document; `#` starts a comment (see seeds/hosts.txt).
        file: PathBuf,
        /// Print what each line will crawl (normalised host, first URL, allow_http /
        /// allow_private) and which hosts are already present; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Crawl now: the named hosts, or every due host.
    Crawl {
        /// Seeded hosts to crawl, written in any seeds-file form; none = every due host.
        hosts: Vec<String>,
    },
    /// Apply database migrations.
    Migrate,
    /// Start fixture utilities on loopback, crawl them into an embedded SQLite file, and
    /// serve the API and the map page.
    Demo {
        /// Address of the API and page (default: the configured `listen`,
        /// 127.0.0.1:8080; port 0 picks a free one).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Directory for the demo's SQLite file.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Check one server against the spec (host, host:port, or metadata URL); never
    /// touches the database. Exit 0: no errors, 1: errors, 2: could not validate.
    Validate {
        /// The server: `name`, `name:port`, an origin URL (`https://name/`), or the URL
        /// of its metadata document.
        target: String,
        /// `text` (grouped by document, for people) or `json` (for CI pipelines).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,geo=error"));
    // JSON lines when not on a terminal (log collectors), readable text on one.
    if std::io::stderr().is_terminal() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Raise the soft limit on open files to the hard limit. A crawler keeps each host's
/// connection pooled for a moment after the host is done (2 s idle, `crawl::fetch`), and at
/// a few hundred hosts per second that is hundreds to thousands of sockets besides the
/// database pool: the usual soft limit of 1,024 would turn into connect failures recorded
/// against healthy hosts (docs/PERFORMANCE.md, "Crawl at scale"). The hard limit is the
/// operator's ceiling; we only stop short of it.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(open_files = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

/// Parse the command line, run the command, and turn its result into the exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    raise_open_files_limit();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        // `validate` promises 0/1 for the server's conformance; anything that keeps it
        // from checking at all is 2.
        Err(e) if matches!(cli.command, Command::Validate { .. }) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e),
    };
    match cli.command {
        Command::Migrate => migrate::command(&cfg).await?,
        Command::Seed { file, dry_run } => seed::command(&cfg, &file, dry_run).await?,
        Command::Crawl { hosts } => return crawl::command(&cfg, &hosts).await,
        Command::Validate { target, format } => {
            return Ok(validate::command(&cfg, &target, &format).await)
        }
        Command::Demo { listen, data_dir } => demo::command(&cfg, listen, data_dir).await?,
        Command::Serve { role } => serve::command(cfg, role).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Open the configured store (migrations applied).
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&cfg.database_url, cfg.database_max_connections).await?)
}
