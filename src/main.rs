//! `cds-registry` command line: parse, load configuration, call the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use cds_registry::app;
use cds_registry::config::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cds-registry",
    version,
    about = "Registry of LF Energy CDS server metadata"
)]
struct Cli {
    /// TOML configuration file (environment variables CDS_REGISTRY_* override it).
    #[arg(long, global = true, env = "CDS_REGISTRY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and/or the scheduled crawler workers.
    Serve {
        /// `api` (search, follows crawlers' commits), `crawler` (scheduler + worker),
        /// or `all` (one process; the only sensible choice on SQLite).
        #[arg(long, value_enum, default_value = "all")]
        role: app::Role,
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

#[tokio::main]
async fn main() -> ExitCode {
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
        Command::Migrate => {
            let store = app::open_store(&cfg).await?;
            store.close().await;
            println!("migrations applied to {}", redact_url(&cfg.database_url));
        }
        Command::Seed {
            file,
            dry_run: true,
        } => {
            println!("{}", app::seed_dry_run(&cfg, &file).await?);
        }
        Command::Seed { file, .. } => {
            let store = app::open_store(&cfg).await?;
            let (n, added) = app::seed_file(&store, &file).await?;
            store.close().await;
            println!("{n} hosts in {}, {added} new", file.display());
        }
        Command::Crawl { hosts } => {
            let bar = app::BarProgress::new(std::io::stderr().is_terminal());
            let s = app::crawl_now(&cfg, &hosts, &bar).await?;
            println!("{}", app::format_summary(&s));
            if s.totals.hosts_total == 0 && hosts.is_empty() {
                eprintln!(
                    "no host is due for a crawl yet (each host waits for its next due time, \
                     see GET /v1/hosts); name hosts to crawl them now: `cds-registry crawl HOST`"
                );
            }
            // Non-zero when nothing could be crawled (no host, or every host failed).
            if s.totals.hosts_ok == 0 {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Validate { target, format } => {
            let report = cds_registry::validate_cmd::validate_target(&cfg.crawl, &target).await;
            match format.as_str() {
                "json" => println!("{}", cds_registry::validate_cmd::render_json(&report)),
                _ => print!("{}", cds_registry::validate_cmd::render_text(&report)),
            }
            return Ok(ExitCode::from(report.exit_code()));
        }
        Command::Demo { listen, data_dir } => {
            let demo = cds_registry::demo::start(cds_registry::demo::DemoOptions {
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
            app::shutdown_signal().await;
            demo.shutdown().await?;
        }
        Command::Serve { role } => {
            let listener = app::bind(cfg.listen).await?;
            let running = app::start_with_role(cfg, listener, role, true).await?;
            println!("cds-registry ({role:?}) listening on {}", running.url());
            app::shutdown_signal().await;
            running.shutdown().await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Never print a database password.
fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) if p.password().is_some() => {
            let _ = p.set_password(Some("***"));
            p.to_string()
        }
        _ => u.to_owned(),
    }
}
