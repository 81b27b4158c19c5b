//! Prometheus metrics: counters and histograms recorded where things happen (fetches,
//! crawl runs, lookups), gauges computed when `/metrics` is scraped (index size and age,
//! leases). One process-wide recorder, installed on first use.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the recorder (idempotent). `None` if another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
                30.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// One document fetch: by kind and result (`ok`, `not_modified`, or a failure class).
pub fn fetch(kind: &'static str, result: &'static str, bytes: u64, took: Duration) {
    metrics::counter!("cds_fetches_total", "kind" => kind, "result" => result).increment(1);
    metrics::counter!("cds_fetch_bytes_total", "kind" => kind).increment(bytes);
    metrics::histogram!("cds_fetch_duration_seconds", "kind" => kind).record(took.as_secs_f64());
}

/// A host crawled, by outcome class.
pub fn host_crawled(outcome: &str) {
    metrics::counter!("cds_hosts_crawled_total", "outcome" => outcome.to_owned()).increment(1);
}

/// A crawl run finished.
pub fn run_finished() {
    metrics::counter!("cds_crawl_runs_total").increment(1);
}

/// The lookup metrics of one kind, registered once: `counter!`/`histogram!` look the key
/// up in the registry (hashing and cloning its labels) on every call, which was ~2,700
/// instructions of each `GET /v1/lookup` (docs/PERFORMANCE.md, "Where the time goes").
struct LookupHandles {
    points: metrics::Counter,
    took: metrics::Histogram,
}

impl LookupHandles {
    fn new(kind: &'static str) -> LookupHandles {
        // Registered against the process recorder, so it has to exist first (a handle
        // taken before installation would stay a no-op for good).
        handle();
        LookupHandles {
            points: metrics::counter!("cds_lookup_points_total", "kind" => kind),
            took: metrics::histogram!("cds_lookup_duration_seconds", "kind" => kind),
        }
    }
}

/// The kinds of lookup, the `kind` label of the lookup metrics.
#[derive(Debug, Clone, Copy)]
pub enum LookupKind {
    Single,
    Batch,
}

/// A lookup answered, with its number of points.
pub fn lookup(kind: LookupKind, points: usize, took: Duration) {
    static SINGLE: OnceLock<LookupHandles> = OnceLock::new();
    static BATCH: OnceLock<LookupHandles> = OnceLock::new();
    let h = match kind {
        LookupKind::Single => SINGLE.get_or_init(|| LookupHandles::new("single")),
        LookupKind::Batch => BATCH.get_or_init(|| LookupHandles::new("batch")),
    };
    h.points.increment(points as u64);
    h.took.record(took.as_secs_f64());
}

/// Render the text exposition, with scrape-time gauges set first.
pub fn render(index_entries: usize, index_age: Duration, leases: &[(String, i64)]) -> String {
    metrics::gauge!("cds_index_entries").set(index_entries as f64);
    metrics::gauge!("cds_index_age_seconds").set(index_age.as_secs_f64());
    metrics::gauge!("cds_leases_held").set(leases.iter().map(|l| l.1).sum::<i64>() as f64);
    match handle() {
        Some(h) => h.render(),
        None => String::new(),
    }
}
