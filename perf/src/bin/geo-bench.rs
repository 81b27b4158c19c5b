//! `geo-bench`: what untrusted geometry costs the crawler (docs/PERFORMANCE.md,
//! "Untrusted geometry").
//!
//! - `geo-bench validate`: time to check a valid ring of 10k … 1M positions for
//!   self-intersection, with the sweep the crawler uses and with geo's brute-force
//!   `validation_errors()` it replaced (the latter only up to `--brute-max` positions: it
//!   is quadratic), and the time of the whole read of the document (JSON text to oriented
//!   territory). Medians of `--runs`.
//! - `geo-bench rss --territories 20 --vertices 200000`: one fixture host on 127.0.0.90
//!   serving one server whose entries have that many territories of that many positions
//!   each; one crawl into a temporary SQLite store; prints the peak RSS growth of the
//!   process during the crawl (VmHWM, reset through /proc/self/clear_refs first).
//!
//! Everything stays on loopback; every loop is bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cds_registry::config::CrawlConfig;
use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_registry::territory::{self, GeoLimits};
use cds_testkit::geometry::{large_ring, large_ring_geojson, polygon_geojson};
use cds_testkit::server::GEOJSON_CONTENT_TYPE;
use cds_testkit::{publish, EntrySpec, FixtureServer, UtilitySpec};
use clap::Parser;
use geo::{LineString, Polygon, Validation};

/// The subcommands are the whole command line.
#[derive(Parser)]
#[command(
    name = "geo-bench",
    about = "Cost of untrusted geometry in the crawler"
)]
enum Cmd {
    Validate {
        #[arg(long, default_value = "5")]
        runs: usize,
        #[arg(long, default_value = "40000")]
        brute_max: usize,
    },
    Rss {
        #[arg(long, default_value = "20")]
        territories: usize,
        #[arg(long, default_value = "200000")]
        vertices: usize,
        /// `crawl.max_territory_vertices` for the crawl.
        #[arg(long, default_value = "1000000")]
        max_vertices: usize,
    },
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn validate(runs: usize, brute_max: usize) {
    println!("| positions | GeoJSON bytes | sweep ms | whole read ms | geo brute force ms |");
    println!("|---|---|---|---|---|");
    for n in [10_000, 20_000, 40_000, 200_000, 1_000_000] {
        let r = large_ring(n);
        let text = polygon_geojson(&r);
        let sweep = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    assert!(!territory::ring_self_intersects(&r));
                    t.elapsed()
                })
                .collect(),
        );
        let limits = GeoLimits {
            max_vertices: 2_000_000,
            ..GeoLimits::UNLIMITED
        };
        let read = median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let (terr, f) = territory::parse_document(text.as_bytes(), "bench", limits);
                    assert!(terr.is_some() && f.is_empty(), "{f:?}");
                    t.elapsed()
                })
                .collect(),
        );
        let brute = if n <= brute_max {
            let poly = Polygon::new(LineString(r.clone()), vec![]);
            let k = if n > 20_000 { 1 } else { runs.min(3) };
            ms(median(
                (0..k)
                    .map(|_| {
                        let t = Instant::now();
                        assert!(poly.validation_errors().is_empty());
                        t.elapsed()
                    })
                    .collect(),
            ))
        } else {
            "not run".to_owned()
        };
        println!(
            "| {n} | {} | {} | {} | {brute} |",
            text.len(),
            ms(sweep),
            ms(read)
        );
    }
}

fn vm_hwm_kib() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM")?.parse()?)
}

async fn rss(territories: usize, vertices: usize, max_vertices: usize) -> Result<()> {
    let server = FixtureServer::start(std::net::Ipv4Addr::new(127, 0, 0, 90)).await?;
    let mut spec = UtilitySpec::new("Many Rings Power");
    for i in 0..territories {
        spec = spec.entry(EntrySpec::geographic(
            &format!("ring-{i}"),
            "Many Rings Power",
            &format!("Ring {i}"),
            &["06069"],
        ));
    }
    publish(&server, &spec);
    // One body shared by every path (the fixture holds it once); the crawler downloads
    // and reads each copy separately.
    let body = bytes::Bytes::from(large_ring_geojson(vertices));
    for i in 0..territories {
        server.set_raw(
            &spec.territory_path(&format!("ring-{i}")),
            GEOJSON_CONTENT_TYPE,
            body.clone(),
        );
    }
    let dir = std::env::temp_dir().join(format!("geo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.display());
    let store = Store::open(&url, 4).await?;
    store
        .add_hosts(&[Seed::Host(server.host())], "seed")
        .await?;
    let cfg = CrawlConfig {
        allow_http: vec![server.host()],
        allow_private: vec!["127.0.0.0/8".into()],
        max_territory_vertices: max_vertices,
        ..CrawlConfig::default()
    };
    let crawler = Crawler::new(store.clone(), cfg)?;
    let before = vm_hwm_kib()?;
    std::fs::write("/proc/self/clear_refs", "5").context("reset VmHWM")?;
    let base = vm_hwm_kib()?;
    let t = Instant::now();
    let run = crawler.run("bench", &[]).await?;
    let wall = t.elapsed();
    let peak = vm_hwm_kib()?;
    let stored = store
        .index_rows()
        .await?
        .iter()
        .filter(|r| r.wkb.is_some())
        .count();
    println!(
        "territories={territories} vertices={vertices} body_mib={:.1} outcome={:?} stored={stored} wall_s={:.2} rss_before_crawl_mib={:.1} peak_growth_mib={:.1} (VmHWM before reset {:.1})",
        body.len() as f64 / (1 << 20) as f64,
        run.outcomes,
        wall.as_secs_f64(),
        base as f64 / 1024.0,
        (peak.saturating_sub(base)) as f64 / 1024.0,
        before as f64 / 1024.0,
    );
    server.shutdown().await;
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn main() -> Result<()> {
    match Cmd::parse() {
        Cmd::Validate { runs, brute_max } => {
            validate(runs, brute_max);
            Ok(())
        }
        Cmd::Rss {
            territories,
            vertices,
            max_vertices,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(rss(territories, vertices, max_vertices)),
    }
}
