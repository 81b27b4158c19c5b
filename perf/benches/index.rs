//! Search index benchmarks on the 3,231 US counties (tests/data): build time, a 1 %
//! incremental update against the full rebuild (issue 17), single lookup latency (with
//! p50/p99 printed), batch throughput in points per second.
//!
//! `cargo bench --bench index` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use cds_registry::index::{Filter, IndexEntry, SearchIndex};
use cds_testkit::data::{county_index_entries, us_counties};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn county_entries() -> Vec<IndexEntry> {
    let doc: Value = us_counties().expect("counties GeoJSON");
    county_index_entries(&doc).expect("county entries")
}

/// Uniform points in the contiguous-US box of the oracle (lon -125..-66, lat 24..50).
fn us_points(n: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            [
                rng.random_range(-125.0..-66.0),
                rng.random_range(24.0..50.0),
            ]
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Per-call latency distribution of `lookup`, printed (criterion reports means only).
fn print_latency(idx: &SearchIndex, points: &[[f64; 2]]) {
    let none = Filter::default();
    // Warm up caches and branch predictors on the same points.
    for p in points {
        black_box(idx.lookup(p[0], p[1], &none));
    }
    let mut clock = Vec::with_capacity(points.len());
    for _ in 0..points.len() {
        let t = Instant::now();
        clock.push(t.elapsed().as_nanos() as u64);
    }
    clock.sort_unstable();
    let mut ns = Vec::with_capacity(points.len());
    for p in points {
        let t = Instant::now();
        black_box(idx.lookup(p[0], p[1], &none));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    println!(
        "lookup latency over {} points: p50 {} ns, p99 {} ns, max {} ns (clock overhead p50 {} ns, included)",
        points.len(),
        percentile(&ns, 0.5),
        percentile(&ns, 0.99),
        ns[ns.len() - 1],
        percentile(&clock, 0.5)
    );
}

/// Batch throughput measured directly, printed as points per second.
fn print_throughput(idx: &SearchIndex, points: &[[f64; 2]]) {
    let none = Filter::default();
    let mut best = Duration::MAX;
    let mut hits = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let r = idx.lookup_batch_csr(black_box(points), &none);
        best = best.min(t.elapsed());
        hits = r.hits.len();
    }
    println!(
        "lookup_batch_csr, {} points: {:.2} M points/s (best of 20, {hits} hits)",
        points.len(),
        points.len() as f64 / best.as_secs_f64() / 1e6
    );
}

fn benches(c: &mut Criterion) {
    let entries = county_entries();
    let t = Instant::now();
    let idx = SearchIndex::build(entries.clone());
    println!(
        "build: {} counties in {:.1} ms (one run)",
        idx.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    c.bench_function("build/us-counties", |b| {
        b.iter_batched(
            || entries.clone(),
            SearchIndex::build,
            BatchSize::LargeInput,
        )
    });

    // Issue 17: 1 % of the counties change (a new territory id and a geometry moved by
    // 1e-4°, as a re-crawl that sees edited GeoJSON would deliver them).
    let step = 100;
    let changed: Vec<IndexEntry> = entries
        .iter()
        .step_by(step)
        .map(|e| {
            let mut e = e.clone();
            e.territory_id = e.territory_id.map(|t| t + 1_000_000);
            e.territory = e.territory.as_ref().map(|t| {
                let mut t = (**t).clone();
                for p in &mut t.0 {
                    p.exterior_mut(|r| r.0.iter_mut().for_each(|c| c.x += 1e-4));
                }
                std::sync::Arc::new(t)
            });
            e
        })
        .collect();
    let changed_keys: std::collections::HashSet<i64> = changed.iter().map(|e| e.key).collect();
    let mut after: Vec<IndexEntry> = entries
        .iter()
        .filter(|e| !changed_keys.contains(&e.key))
        .cloned()
        .collect();
    after.extend(changed.iter().cloned());
    let mut group = c.benchmark_group("update-1pct/us-counties");
    group.bench_function("incremental", |b| {
        b.iter_batched(
            || changed.clone(),
            |added| idx.update(|e| changed_keys.contains(&e.key()), added),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("full-rebuild", |b| {
        b.iter_batched(|| after.clone(), SearchIndex::build, BatchSize::LargeInput)
    });
    group.finish();

    let points = us_points(100_000, 7);
    print_latency(&idx, &points);
    let none = Filter::default();
    c.bench_function("lookup/single (100k US points, cycled)", |b| {
        let mut i = 0;
        b.iter(|| {
            let p = points[i];
            i = (i + 1) % points.len();
            idx.lookup(black_box(p[0]), black_box(p[1]), &none)
        })
    });

    let mut group = c.benchmark_group("lookup_batch");
    for n in [10_000usize, 100_000] {
        let pts = us_points(n, 11);
        print_throughput(&idx, &pts);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("csr/{n}"), |b| {
            b.iter(|| idx.lookup_batch_csr(black_box(&pts), &none))
        });
        group.bench_function(format!("nested/{n}"), |b| {
            b.iter(|| idx.lookup_batch(black_box(&pts), &none))
        });
    }
    let authoritative = Filter {
        role: vec!["authoritative".into()],
        ..Filter::default()
    };
    let pts = us_points(100_000, 13);
    group.throughput(Throughput::Elements(pts.len() as u64));
    group.bench_function("csr-filtered/100000", |b| {
        b.iter(|| idx.lookup_batch_csr(black_box(&pts), &authoritative))
    });
    group.finish();
}

criterion_group! {
    name = index;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(index);
