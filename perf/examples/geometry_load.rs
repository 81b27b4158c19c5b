//! `/healthz` latency while costly geometry lookups run (issue 19), on the US counties.
//!
//! ```text
//! cargo run --release --example geometry_load -- COUNTIES.geojson [costly=3] [rounds=5]
//! ```
//!
//! Serves the counties index (`cds_testkit::data::county_index_entries`) with the default
//! `[api]` limits on a loopback port, then per round: sends `costly` geometry lookups at
//! once (bodies of world-spanning thin slivers, each crossing every county's box) and
//! polls `/healthz` every 20 ms until they have all answered. Prints the costly requests'
//! statuses and times, the `/healthz` latency distribution, and for comparison the time
//! of an ordinary geometry lookup (one county's own polygon) and of a 100,000-point batch.
//! All traffic is on 127.0.0.1; every loop is bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cds_registry::api::{self, AppState};
use cds_registry::config::Config;
use cds_registry::index::SearchIndex;
use cds_registry::store::Store;
use cds_testkit::data::county_index_entries;
use serde_json::{json, Value};

/// `n` thin slivers from (-180, -89) to (180, 89), shifted slightly each: every one's
/// bounding box is the world, and no vertex of one lies inside a county.
fn slivers(n: usize) -> Value {
    let polys: Vec<Value> = (0..n)
        .map(|i| {
            let d = i as f64 * 1e-4;
            json!([[
                [-180.0, -89.0 + d],
                [180.0, 89.0 + d],
                [180.0, 89.0001 + d],
                [-180.0, -88.9999 + d],
                [-180.0, -89.0 + d]
            ]])
        })
        .collect();
    json!({"geometry": {"type": "MultiPolygon", "coordinates": polys}})
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// POST `body` to `url` `n` times, each answered 200; the times in ms, sorted.
async fn timed_posts(
    c: &reqwest::Client,
    url: &str,
    body: &Value,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = c.post(url).json(body).send().await?;
        let s = r.status().as_u16();
        r.bytes().await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s, 200);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    // usage: geometry_load [costly] [rounds]; the counties are the vendored tests/data copy.
    let args: Vec<String> = std::env::args().collect();
    let costly: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let rounds: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);

    let collection: Value = cds_testkit::data::us_counties()?;
    let entries = county_index_entries(&collection)?;
    let county = collection["features"][0]["geometry"].clone();
    let n = entries.len();
    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}/load.db", dir.path().display()), 2).await?;
    let mut cfg = Config::default();
    cfg.api.rate_limit_per_second = 0;
    let state = AppState::new(store, Arc::new(cfg.clone()), None);
    state.set_index(SearchIndex::build(entries));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(state, listener, async {
        let _ = stopped.await;
    }));
    let c = reqwest::Client::new();
    println!(
        "{n} counties; api.lookup_budget_ms = {}, api.max_geometry_work = {}, expensive slots = {}",
        cfg.api.lookup_budget_ms,
        cfg.api.max_geometry_work,
        cfg.api.expensive_slots()
    );

    // Ordinary requests first, for scale.
    let lookup = format!("{base}/v1/lookup");
    let ordinary = timed_posts(&c, &lookup, &json!({ "geometry": county }), 5).await?;
    println!(
        "ordinary geometry lookup (one county polygon): median {:.1} ms",
        pct(&ordinary, 0.5)
    );
    let points: Vec<[f64; 2]> = (0..100_000)
        .map(|i| {
            [
                -125.0 + (i % 1000) as f64 * 0.059,
                24.0 + (i / 1000) as f64 * 0.26,
            ]
        })
        .collect();
    let batch = timed_posts(&c, &lookup, &json!({ "points": points }), 3).await?;
    println!("100,000-point batch: median {:.0} ms", pct(&batch, 0.5));

    let body = slivers(40);
    println!(
        "costly body: 40 world-spanning slivers, {} bytes",
        serde_json::to_vec(&body)?.len()
    );
    let mut health = Vec::new();
    for round in 0..rounds {
        let t0 = Instant::now();
        let jobs: Vec<_> = (0..costly)
            .map(|_| {
                let (c, url, body) = (c.clone(), format!("{base}/v1/lookup"), body.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let r = c.post(url).json(&body).send().await.unwrap();
                    let s = r.status().as_u16();
                    r.bytes().await.unwrap();
                    (s, t.elapsed().as_secs_f64() * 1e3)
                })
            })
            .collect();
        // Poll while they run (bounded: at most 60 s per round).
        while t0.elapsed() < Duration::from_secs(60) && !jobs.iter().all(|j| j.is_finished()) {
            let t = Instant::now();
            let r = c.get(format!("{base}/healthz")).send().await?;
            assert_eq!(r.status(), 200);
            r.bytes().await?;
            health.push(t.elapsed().as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut out = Vec::new();
        for j in jobs {
            out.push(j.await?);
        }
        println!(
            "round {round}: costly lookups {:?} (status, ms)",
            out.iter()
                .map(|(s, ms)| format!("{s} {ms:.0}"))
                .collect::<Vec<_>>()
        );
    }
    health.sort_by(f64::total_cmp);
    println!(
        "/healthz during the costly lookups: {} probes, median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        health.len(),
        pct(&health, 0.5),
        pct(&health, 0.99),
        health[health.len() - 1]
    );
    let _ = stop.send(());
    server.await??;
    Ok(())
}
