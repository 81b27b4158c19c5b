//! One aggregator server with N entries, each linking its own small GeoJSON territory,
//! crawled twice (first crawl, then unchanged: every document 304) with the default
//! crawl settings: the measurement behind docs/PERFORMANCE.md, "One aggregator host".
//!
//! ```text
//! cargo run --example aggregator_crawl -- [entries=2000] [latency_ms=2] [DATABASE_URL]
//! ```
//!
//! Without a database URL it uses a fresh SQLite file in a temporary directory; a
//! Postgres URL must name an empty database. The fixture server runs in the same process
//! on 127.0.0.151 (pages of 1,000 entries, every response delayed by `latency_ms`).
//! Prints wall times, the ideal (requests × latency / per-host concurrency) and the
//! commit time (the crawler logs it at debug). Every loop is bounded by `entries`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cds_registry::config::Config;
use cds_registry::crawl::Crawler;
use cds_registry::seeds::Seed;
use cds_registry::store::Store;
use cds_testkit::aggregator::publish_aggregator;
use cds_testkit::FixtureServer;

const PAGE: usize = 1_000;

fn publish(server: &FixtureServer, n: usize) {
    publish_aggregator(server, n, PAGE);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("cds_registry::crawl=debug,warn")
        .with_ansi(false)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(2_000), |a| a.parse())?;
    let latency: u64 = args.get(1).map_or(Ok(2), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let url = match args.get(2) {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", dir.path().join("agg.db").display()),
    };

    let server = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 151)).await?;
    publish(&server, n);
    for p in server.paths() {
        server.set_delay(&p, Duration::from_millis(latency));
    }
    let store = Store::open(&url, 4).await?;
    store.migrate().await?;
    let mut cfg = Config::default();
    cfg.crawl.allow_http = vec![server.host()];
    cfg.crawl.allow_private = vec!["127.0.0.0/8".into()];
    store
        .add_hosts(&[Seed::Host(server.host())], "seed")
        .await?;
    let crawler = Crawler::new(store.clone(), cfg.crawl.clone())?;
    let requests = n + 1 + n.div_ceil(PAGE);
    let ideal = requests as f64 * latency as f64 / 1000.0 / cfg.crawl.per_host_concurrency as f64;
    for round in ["first", "unchanged"] {
        let t = Instant::now();
        let run = crawler.run("aggregator_crawl", &[server.host()]).await?;
        let wall = t.elapsed().as_secs_f64();
        println!(
            "{round}: {wall:.2} s for {requests} requests, ideal {ideal:.2} s (ratio {:.2}), outcome {:?}",
            ideal / wall,
            run.outcomes.first().map(|o| o.1.as_str())
        );
    }
    store.close().await;
    Ok(())
}
