//! `crawl-scale`: the driver of `perf/bench/crawl_scale.sh`, which measures the crawler on a
//! local fixture web of many hosts (docs/PERFORMANCE.md, "Crawl at scale").
//!
//! - `crawl-scale fixtures --hosts 10000 --latency-ms 50` serves the whole web from ONE
//!   process: a single listener on `0.0.0.0:PORT` (Linux delivers every 127.0.0.0/8
//!   address to it; connections from non-loopback peers are dropped at accept), each
//!   "host" `127.A.B.C:PORT` told apart by its `Host` header. Every host serves a small
//!   valid CDS metadata document (capabilities `["coverage"]`), a one-page coverage
//!   listing with one geographic entry, and that entry's tiny GeoJSON territory (a
//!   distinct 0.05° square per host, so no two authoritative entries overlap): 3
//!   documents per host. Every response waits `--latency-ms` first; strong ETags and
//!   `If-None-Match` → 304 are supported. Prints `port=PORT` on stdout once listening and
//!   the request counts on SIGTERM/SIGINT.
//! - `crawl-scale prepare --hosts N --port PORT --seeds FILE --config FILE` writes the
//!   seeds file (one `127.A.B.C:PORT` per line) and a TOML configuration that allows
//!   plain http for each of them and private addresses in 127.0.0.0/8; every other
//!   setting is left at its default.
//! - `crawl-scale report --hosts N --latency-ms 50 --concurrency 64 --workers 1 --wall S
//!   --time FILE...` prints one Markdown table row from the wall time and the
//!   `/usr/bin/time -v` outputs of the worker processes.
//!
//! Everything stays on loopback; every loop is bounded.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use cds_registry::cds::WELL_KNOWN_PATH;
use cds_testkit::counties::counties;
use cds_testkit::utility::metadata_document;
use cds_testkit::{publish, strong_etag, EntrySpec, FixtureServer, UtilitySpec};
use clap::Parser;
use serde_json::json;

/// Placeholder replaced by a host's number in the templated documents.
const IDX: &str = "@IDX@";
/// Hosts per third octet / per second octet block (127.(10+q).(r/250).(r%250+1)).
const PER_C: usize = 250;
const PER_B: usize = 250 * 250;
/// First second octet used (keeps clear of 127.0.0.x, which the tests use).
const FIRST_B: usize = 10;
const ENTRY_ID: &str = "service-area";

/// The subcommands are the whole command line.
#[derive(Parser)]
#[command(
    name = "crawl-scale",
    about = "Crawl-at-scale benchmark: fixture web of many hosts"
)]
enum Cmd {
    /// Serve the fixture web (one process, one listener) until SIGTERM/SIGINT.
    Fixtures {
        #[arg(long, default_value_t = 10_000)]
        hosts: usize,
        #[arg(long, default_value_t = 50)]
        latency_ms: u64,
        /// 0 = any free port (printed as `port=PORT`).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Write the seeds file and the registry configuration for a fixture web.
    Prepare {
        #[arg(long, default_value_t = 10_000)]
        hosts: usize,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        seeds: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
    /// One Markdown table row from a measurement.
    Report(ReportArgs),
}

/// What one crawl-scale measurement gave (`crawl_scale.sh` passes them in).
#[derive(clap::Args)]
struct ReportArgs {
    #[arg(long)]
    label: String,
    #[arg(long)]
    hosts: usize,
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Per worker process.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long)]
    workers: usize,
    /// Wall time in seconds, first worker start to last worker exit.
    #[arg(long)]
    wall: f64,
    /// Documents fetched (200) by all workers together.
    #[arg(long)]
    docs: u64,
    /// `/usr/bin/time -v` output of the fixture process (peak RSS).
    #[arg(long)]
    fixture_time: Option<PathBuf>,
    /// `/usr/bin/time -v` outputs of the worker processes.
    #[arg(long, num_args = 1..)]
    time: Vec<PathBuf>,
}

/// Address of host number `i` (0-based).
fn host_ip(i: usize) -> Ipv4Addr {
    let b = FIRST_B + i / PER_B;
    let r = i % PER_B;
    assert!(b < 256, "too many hosts");
    Ipv4Addr::new(127, b as u8, (r / PER_C) as u8, (r % PER_C + 1) as u8)
}

/// Host number of an address, if it is one of ours.
fn host_index(ip: Ipv4Addr) -> Option<usize> {
    let [a, b, c, d] = ip.octets();
    let (b, c, d) = (b as usize, c as usize, d as usize);
    if a != 127 || b < FIRST_B || c >= PER_C || d == 0 || d > PER_C {
        return None;
    }
    Some((b - FIRST_B) * PER_B + c * PER_C + (d - 1))
}

/// The three documents of every host, as text with the template base URL and [`IDX`]
/// still in them.
struct Templates {
    base: String,
    metadata: String,
    coverage: String,
    coverage_path: String,
    territory_path: String,
}

struct Web {
    t: Templates,
    hosts: usize,
    port: u16,
    latency: Duration,
    requests: AtomicU64,
    not_modified: AtomicU64,
    not_found: AtomicU64,
}

/// Build the documents once on a throwaway fixture host (so they are exactly what the
/// fixtures publish elsewhere), then keep them as templates.
async fn templates() -> Result<Templates> {
    let fips = counties()
        .next()
        .context("no embedded county")?
        .fips
        .clone();
    let spec = UtilitySpec::new(&format!("Scale Utility {IDX}")).entry(EntrySpec::geographic(
        ENTRY_ID,
        &format!("Scale Entity {IDX}"),
        &format!("Scale service area {IDX}"),
        &[fips.as_str()],
    ));
    let server = FixtureServer::start(Ipv4Addr::LOCALHOST).await?;
    let published = publish(&server, &spec);
    let metadata = serde_json::to_string(&metadata_document(&server, &spec))?;
    let coverage_path = published
        .page_paths
        .first()
        .context("no coverage page")?
        .clone();
    let coverage = serde_json::to_string(&server.json(&coverage_path).context("no page")?)?;
    let territory_path = spec.territory_path(ENTRY_ID);
    let base = server.base.clone();
    server.shutdown().await;
    Ok(Templates {
        base,
        metadata,
        coverage,
        coverage_path,
        territory_path,
    })
}

/// A distinct 0.05° square per host inside the continental US (no two overlap for the
/// first 10,000 hosts).
fn territory(i: usize) -> String {
    let lon = -120.0 + (i % 100) as f64 * 0.1;
    let lat = 30.0 + ((i / 100) % 100) as f64 * 0.1;
    let (x0, y0, x1, y1) = (lon, lat, lon + 0.05, lat + 0.05);
    json!({
        "type": "Feature",
        "properties": {"name": format!("Scale service area {i}")},
        "geometry": {"type": "MultiPolygon", "coordinates": [[[
            [x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]
        ]]]},
    })
    .to_string()
}

async fn handle(State(web): State<Arc<Web>>, req: Request) -> Response {
    web.requests.fetch_add(1, Ordering::Relaxed);
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let idx = host
        .parse::<SocketAddr>()
        .ok()
        .filter(|a| a.port() == web.port)
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => host_index(v4),
            _ => None,
        })
        .filter(|i| *i < web.hosts);
    tokio::time::sleep(web.latency).await;
    let Some(i) = idx else {
        web.not_found.fetch_add(1, Ordering::Relaxed);
        return status(StatusCode::NOT_FOUND);
    };
    let path = req.uri().path();
    let n = i.to_string();
    let base = format!("http://{host}");
    let (body, content_type) = if path == WELL_KNOWN_PATH {
        (
            web.t.metadata.replace(&web.t.base, &base).replace(IDX, &n),
            "application/json",
        )
    } else if path == web.t.coverage_path {
        (
            web.t.coverage.replace(&web.t.base, &base).replace(IDX, &n),
            "application/json",
        )
    } else if path == web.t.territory_path {
        (territory(i), "application/geo+json")
    } else {
        web.not_found.fetch_add(1, Ordering::Relaxed);
        return status(StatusCode::NOT_FOUND);
    };
    let etag = strong_etag(body.as_bytes());
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        web.not_modified.fetch_add(1, Ordering::Relaxed);
        status(StatusCode::NOT_MODIFIED)
    } else {
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn status(s: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = s;
    r
}

/// Drops connections from peers outside 127.0.0.0/8 (the socket is bound to 0.0.0.0 so
/// that every loopback address reaches it).
struct LoopbackOnly(tokio::net::TcpListener);

impl axum::serve::Listener for LoopbackOnly {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
            if addr.ip().is_loopback() {
                return (io, addr);
            }
            drop(io);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

async fn fixtures(hosts: usize, latency_ms: u64, port: u16) -> Result<()> {
    if hosts == 0 || hosts > (256 - FIRST_B) * PER_B {
        bail!("--hosts must be 1..={}", (256 - FIRST_B) * PER_B);
    }
    let t = templates().await?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?;
    let port = listener.local_addr()?.port();
    let web = Arc::new(Web {
        t,
        hosts,
        port,
        latency: Duration::from_millis(latency_ms),
        requests: AtomicU64::new(0),
        not_modified: AtomicU64::new(0),
        not_found: AtomicU64::new(0),
    });
    let app = Router::new().fallback(handle).with_state(Arc::clone(&web));
    println!("port={port}");
    println!(
        "hosts={hosts} first={} last={} latency_ms={latency_ms}",
        host_ip(0),
        host_ip(hosts - 1)
    );
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(LoopbackOnly(listener), app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    println!(
        "requests={} not_modified={} not_found={}",
        web.requests.load(Ordering::Relaxed),
        web.not_modified.load(Ordering::Relaxed),
        web.not_found.load(Ordering::Relaxed)
    );
    Ok(())
}

fn prepare(hosts: usize, port: u16, seeds: PathBuf, config: PathBuf) -> Result<()> {
    let names: Vec<String> = (0..hosts)
        .map(|i| format!("{}:{port}", host_ip(i)))
        .collect();
    std::fs::write(&seeds, names.join("\n") + "\n")
        .with_context(|| format!("writing {}", seeds.display()))?;
    let mut toml = String::from(
        "# crawl-scale: default settings except loopback access for the fixture web\n[crawl]\nallow_private = [\"127.0.0.0/8\"]\nallow_http = [\n",
    );
    for n in &names {
        toml.push_str(&format!("  \"{n}\",\n"));
    }
    toml.push_str("]\n");
    std::fs::write(&config, toml).with_context(|| format!("writing {}", config.display()))?;
    Ok(())
}

/// `Maximum resident set size (kbytes): N` of a `/usr/bin/time -v` output, in MiB.
fn peak_rss_mib(path: &PathBuf) -> Result<f64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let kb: f64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes):")
                .and_then(|v| v.trim().parse().ok())
        })
        .with_context(|| format!("no peak RSS in {}", path.display()))?;
    Ok(kb / 1024.0)
}

#[allow(clippy::too_many_arguments)]
fn report(a: ReportArgs) -> Result<()> {
    let ReportArgs {
        label,
        hosts,
        latency_ms,
        concurrency,
        workers,
        wall,
        docs,
        fixture_time,
        time,
    } = a;
    let rss: Vec<String> = time
        .iter()
        .map(|p| peak_rss_mib(p).map(|m| format!("{m:.0}")))
        .collect::<Result<_>>()?;
    let fixture = match fixture_time {
        Some(p) => format!(" {:.0} |", peak_rss_mib(&p)?),
        None => String::new(),
    };
    let ideal = hosts as f64 * 3.0 * latency_ms as f64 / 1000.0 / (concurrency * workers) as f64;
    println!(
        "| {label} | {workers} | {hosts} | {docs} | {wall:.1} | {:.0} | {ideal:.1} | {:.2} | {} |{fixture}",
        docs as f64 / wall,
        ideal / wall,
        rss.join(" / "),
    );
    Ok(())
}

fn main() -> Result<()> {
    match Cmd::parse() {
        Cmd::Fixtures {
            hosts,
            latency_ms,
            port,
        } => tokio::runtime::Runtime::new()?.block_on(fixtures(hosts, latency_ms, port)),
        Cmd::Prepare {
            hosts,
            port,
            seeds,
            config,
        } => prepare(hosts, port, seeds, config),
        Cmd::Report(a) => report(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_numbers_round_trip() {
        for i in [0, 1, 249, 250, 9_999, 62_499, 62_500, 100_000] {
            assert_eq!(host_index(host_ip(i)), Some(i), "{i}");
        }
        assert_eq!(host_index(Ipv4Addr::new(127, 0, 0, 1)), None);
    }
}
