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
//! - `geo-bench pip`: the exact point-in-polygon test the index runs on a candidate part:
//!   geo's `Contains` (winding number over the polygon's rings), the index's walk over
//!   the packed rings (`index::pip::rings_contain`) and geo's interval tree, per polygon
//!   size: where the index switches from one to the other (`index::pip::TREE_MIN_VERTICES`).
//!   All in cache: the index also pays the cache misses to reach a part's data.
//!   Star-shaped rings with a hole, uniform points in the bounding box, median ns per
//!   point over `--runs`; also the interval tree's heap bytes per vertex.
//!
//! Everything stays on loopback; every loop is bounded.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cds_registry::config::CrawlConfig;
use cds_registry::crawl::Crawler;
use cds_registry::index::pip::{packed_rings, rings_contain};
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_registry::territory::{self, GeoLimits};
use cds_testkit::geometry::{large_ring, large_ring_geojson, polygon_geojson, star_ring};
use cds_testkit::server::GEOJSON_CONTENT_TYPE;
use cds_testkit::{publish, EntrySpec, FixtureServer, UtilitySpec};
use clap::Parser;
use geo::algorithm::indexed::IntervalTreeMultiPolygon;
use geo::{Contains, Coord, CoordsIter, LineString, MultiPolygon, Orient, Polygon, Validation};
use rand::{Rng, SeedableRng};

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
    Pip {
        #[arg(long, default_value = "5")]
        runs: usize,
        #[arg(long, default_value = "20000")]
        points: usize,
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

fn star(n: usize, c: (f64, f64), r: f64, rng: &mut impl Rng) -> LineString<f64> {
    LineString(star_ring(n, c, r, || rng.random_range(0.7..1.0)))
}

fn pip(runs: usize, points: usize) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    println!("| ring positions | geo Contains ns/point | packed walk ns/point | interval tree ns/point | tree / packed | tree heap bytes/vertex |");
    println!("|---|---|---|---|---|---|");
    for n in [8, 16, 32, 64, 128, 256, 512, 1024, 4096] {
        let ext = star(n, (0.0, 0.0), 1.0, &mut rng);
        let mut hole = star(n / 4 + 4, (0.0, 0.0), 0.3, &mut rng);
        hole.0.reverse();
        let poly = MultiPolygon(vec![Polygon::new(ext, vec![hole])])
            .orient(geo::orient::Direction::Default);
        // Heap of many trees at once, so the per-tree figure is not lost in page noise.
        let copies = (2_000_000 / n).clamp(1, 20_000);
        let before = status_kib("VmRSS:")?;
        let trees: Vec<_> = (0..copies)
            .map(|_| IntervalTreeMultiPolygon::new(&poly))
            .collect();
        let tree_bytes = (status_kib("VmRSS:")?.saturating_sub(before) * 1024) as f64
            / (copies * poly.coords_count()) as f64;
        let tree = &trees[0];
        let pts: Vec<Coord<f64>> = (0..points)
            .map(|_| Coord {
                x: rng.random_range(-1.0..1.0),
                y: rng.random_range(-1.0..1.0),
            })
            .collect();
        let p = &poly.0[0];
        let time = |f: &dyn Fn(&Coord<f64>) -> bool| {
            median(
                (0..runs)
                    .map(|_| {
                        let t = Instant::now();
                        let hits = pts.iter().filter(|c| f(c)).count();
                        std::hint::black_box(hits);
                        t.elapsed()
                    })
                    .collect(),
            )
            .as_nanos() as f64
                / points as f64
        };
        let plain_hits = pts.iter().filter(|c| p.contains(*c)).count();
        let tree_hits = pts.iter().filter(|c| tree.contains(*c)).count();
        assert_eq!(
            plain_hits, tree_hits,
            "the two tests disagree at {n} positions"
        );
        let packed = packed_rings(p);
        let packed_hits = pts.iter().filter(|c| rings_contain(&packed, **c)).count();
        assert_eq!(
            plain_hits, packed_hits,
            "the packed walk disagrees at {n} positions"
        );
        let plain = time(&|c| p.contains(c));
        let walk = time(&|c| rings_contain(&packed, *c));
        let indexed = time(&|c| tree.contains(c));
        println!(
            "| {n} | {plain:.1} | {walk:.1} | {indexed:.1} | {:.2} | {tree_bytes:.0} |",
            indexed / walk
        );
    }
    Ok(())
}

/// A `kB` field of this process's `/proc/self/status` (`"VmRSS:"`, `"VmHWM:"`).
fn status_kib(field: &str) -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context(field.to_owned())?
        .parse()?)
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
    let before = status_kib("VmHWM:")?;
    std::fs::write("/proc/self/clear_refs", "5").context("reset VmHWM")?;
    let base = status_kib("VmHWM:")?;
    let t = Instant::now();
    let run = crawler.run("bench", &[]).await?;
    let wall = t.elapsed();
    let peak = status_kib("VmHWM:")?;
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
        Cmd::Pip { runs, points } => pip(runs, points),
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
