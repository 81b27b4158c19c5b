//! Percentiles, medians and per-round latency samples.

pub(crate) fn percentile_ns(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub(crate) fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Per-call latencies of one system: all samples, and the p50 of each round.
#[derive(Default)]
pub(crate) struct Latency {
    pub(crate) ns: Vec<u64>,
    pub(crate) round_p50: Vec<f64>,
}

impl Latency {
    pub(crate) fn add_round(&mut self, mut ns: Vec<u64>) {
        ns.sort_unstable();
        self.round_p50.push(percentile_ns(&ns, 0.5));
        self.ns.extend(ns);
    }
    pub(crate) fn sorted(&self) -> Vec<u64> {
        let mut s = self.ns.clone();
        s.sort_unstable();
        s
    }
    pub(crate) fn p(&self, p: f64) -> f64 {
        percentile_ns(&self.sorted(), p)
    }
    pub(crate) fn mean(&self) -> f64 {
        self.ns.iter().sum::<u64>() as f64 / self.ns.len().max(1) as f64
    }
}
