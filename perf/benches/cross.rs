//! XS-AUTH-CONFLICT at registry scale: the full pairwise scan against the indexed sweep
//! on 10,000 authoritative claims in one country sharing one capability, laid out like the
//! crawl-scale fixture web (a grid of squares, 1/16° wide so that neighbours share exact
//! edges), with every 100th square shifted to overlap its neighbour (so there are
//! conflicts to report).
//!
//! `cargo bench --bench cross` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use cds_registry::cds::validate::{
    authoritative_conflicts_indexed, authoritative_conflicts_with, default_overlap, AuthClaim,
};
use criterion::{criterion_group, criterion_main, Criterion};

fn claims(n: usize) -> Vec<AuthClaim> {
    (0..n)
        .map(|i| {
            let (row, col) = ((i / 200) as f64, (i % 200) as f64);
            let shift = if i % 100 == 99 { 0.03125 } else { 0.0 };
            let (lon, lat) = (-120.0 + col * 0.0625 - shift, 30.0 + row * 0.0625);
            AuthClaim {
                server_url: format!("https://u{i}.example/.well-known/cds-server-metadata.json"),
                entry_url: format!("https://u{i}.example/coverage"),
                pointer: "/coverage_entries/0".into(),
                entry_id: format!("e{i}"),
                capabilities: vec!["coverage".into()],
                country: "US".into(),
                bbox: Some([lon, lat, lon + 0.0625, lat + 0.0625]),
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let claims = claims(10_000);
    let full = authoritative_conflicts_with(&claims, &default_overlap);
    let fast = authoritative_conflicts_indexed(&claims, &default_overlap);
    assert_eq!(
        full, fast,
        "the sweep must report what the full scan reports"
    );
    println!("10,000 claims: {} findings", fast.len());
    let mut g = c.benchmark_group("xs_auth_conflict_10k");
    g.sample_size(10);
    g.bench_function("full_scan", |b| {
        b.iter(|| authoritative_conflicts_with(black_box(&claims), &default_overlap).len())
    });
    g.bench_function("indexed", |b| {
        b.iter(|| authoritative_conflicts_indexed(black_box(&claims), &default_overlap).len())
    });
    g.finish();
}

criterion_group! {
    name = cross;
    config = Criterion::default().measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(cross);
