//! Across servers (WG1-01 §4): only one server should be `authoritative` for the same
//! coverage and capability (XS-AUTH-CONFLICT).

use geo::{Intersects, MultiPolygon, Relate};

use super::rules;
use crate::cds::finding::{Finding, Severity};

/// One coverage entry with `role: "authoritative"`, as input to
/// [`authoritative_conflicts`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuthClaim {
    /// The server (its metadata URL) making the claim; claims of the same server never
    /// conflict with each other.
    pub server_url: String,
    /// The coverage page the entry is on (findings are reported against it).
    pub entry_url: String,
    /// The entry's pointer in that page, `/coverage_entries/<i>`.
    pub pointer: String,
    pub entry_id: String,
    pub capabilities: Vec<String>,
    pub country: String,
    /// Territory bounding box `[min_lon, min_lat, max_lon, max_lat]` (RFC 7946 §5 order),
    /// when the territory is known.
    pub bbox: Option<[f64; 4]>,
}

/// XS-AUTH-CONFLICT with the default overlap test, [`default_overlap`]: same country and
/// overlapping bounding boxes.
pub fn authoritative_conflicts(claims: &[AuthClaim]) -> Vec<Finding> {
    // default_overlap implies itself, so the indexed sweep gives the full scan's answer.
    authoritative_conflicts_indexed(claims, &default_overlap)
}

/// XS-AUTH-CONFLICT (warning), WG1-01 §4: only one server should be authoritative for the
/// same coverage and capability.
///
/// `claims` are the `authoritative` entries of all servers. Two claims conflict when they
/// come from different servers (`server_url` differs), share at least one capability and
/// `overlaps` says their territories overlap; the geometry test stays with the caller
/// (e.g. real polygon intersection after a bbox pre-filter).
///
/// Each conflicting pair yields **two** findings, one reported against each side
/// (`url` = that claim's `entry_url`, `pointer` = its `pointer`), so each server's own
/// findings list shows the conflict; the message names the other server and entry.
/// Findings come in pair order (`claims[i]` before `claims[j]` for `i < j`).
///
/// The scan is quadratic in the number of claims; [`authoritative_conflicts_indexed`]
/// gives the same findings without it when `overlaps` implies [`default_overlap`].
pub fn authoritative_conflicts_with(
    claims: &[AuthClaim],
    overlaps: &dyn Fn(&AuthClaim, &AuthClaim) -> bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, a) in claims.iter().enumerate() {
        for b in &claims[i + 1..] {
            check_pair(a, b, overlaps, &mut out);
        }
    }
    out
}

/// [`authoritative_conflicts_with`] for an `overlaps` test that implies
/// [`default_overlap`] (same country, bounding boxes share interior area), as the
/// crawler's does: only pairs passing that prefilter can conflict, so they are found by
/// a sweep over longitude per country instead of trying every pair. Same findings, same
/// order; the cost follows the number of overlapping boxes, not the square of the claims
/// (every claim in one country sharing one capability was 50 M pairs at 10,000 servers).
pub fn authoritative_conflicts_indexed(
    claims: &[AuthClaim],
    overlaps: &dyn Fn(&AuthClaim, &AuthClaim) -> bool,
) -> Vec<Finding> {
    conflicts_among(claims, &candidate_pairs(claims), overlaps)
}

/// The pairs of claims (`i < j`, ascending, each once) that pass [`default_overlap`] and
/// come from different servers: the only ones an `overlaps` implying it can report. A
/// caller that must fetch geometry for its test fetches it for these claims alone.
pub fn candidate_pairs(claims: &[AuthClaim]) -> Vec<(usize, usize)> {
    let mut by_country: std::collections::HashMap<&str, Vec<(f64, f64, usize)>> =
        std::collections::HashMap::new();
    for (i, c) in claims.iter().enumerate() {
        let Some(b) = c.bbox else { continue };
        if b.iter().any(|v| v.is_nan()) {
            continue; // never overlaps (bbox_overlap)
        }
        // A box across the antimeridian is two longitude ranges (RFC 7946 §5.2).
        for (lo, hi) in lon_ranges(&b) {
            by_country.entry(&c.country).or_default().push((lo, hi, i));
        }
    }
    // Claims of one server never conflict: servers as small integers, compared in the
    // sweep's inner loop.
    let mut server_ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let server: Vec<u32> = claims
        .iter()
        .map(|c| {
            let next = server_ids.len() as u32;
            *server_ids.entry(c.server_url.as_str()).or_insert(next)
        })
        .collect();
    let mut pairs = Vec::new();
    for ranges in by_country.values_mut() {
        ranges.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut active: Vec<(f64, usize)> = Vec::new();
        for &(lo, hi, j) in ranges.iter() {
            // Ranges ending at or before this start cannot share interior with it (nor
            // with anything after it: later ranges start no earlier).
            active.retain(|&(end, _)| end > lo);
            for &(_, i) in &active {
                // Only pairs the scan could report are kept: the sweep matched
                // longitudes, the rest of the prefilter (latitudes) and the other server
                // are checked here. Keeping every longitude match instead made a list of
                // tens of millions of pairs out of one aggregator's own tiling (issue 17:
                // most of a 100,000-entry crawl's peak memory).
                if server[i] != server[j] && default_overlap(&claims[i], &claims[j]) {
                    pairs.push((i.min(j), i.max(j)));
                }
            }
            active.push((hi, j));
        }
    }
    // Same pair order as the full scan; a pair can be found twice through the two halves
    // of an antimeridian box.
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The findings of [`candidate_pairs`]'s `pairs`, in their order.
pub fn conflicts_among(
    claims: &[AuthClaim],
    pairs: &[(usize, usize)],
    overlaps: &dyn Fn(&AuthClaim, &AuthClaim) -> bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for &(i, j) in pairs {
        check_pair(&claims[i], &claims[j], overlaps, &mut out);
    }
    out
}

/// One pair of the scan: different servers, a shared capability, overlapping territories
/// → a finding against each side.
fn check_pair(
    a: &AuthClaim,
    b: &AuthClaim,
    overlaps: &dyn Fn(&AuthClaim, &AuthClaim) -> bool,
    out: &mut Vec<Finding>,
) {
    if a.server_url == b.server_url {
        return;
    }
    let shared: Vec<&str> = a
        .capabilities
        .iter()
        .filter(|c| b.capabilities.contains(c))
        .map(String::as_str)
        .collect();
    if shared.is_empty() || !overlaps(a, b) {
        return;
    }
    out.push(conflict_finding(a, b, &shared));
    out.push(conflict_finding(b, a, &shared));
}

fn conflict_finding(this: &AuthClaim, other: &AuthClaim, shared: &[&str]) -> Finding {
    let caps = shared
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Finding::new(
        rules::XS_AUTH_CONFLICT,
        Severity::Warning,
        &this.entry_url,
        &this.pointer,
        format!(
            "entry {:?} is `authoritative` for {caps}, and so is entry {:?} of another server ({}, listed at {}#{}) for an overlapping territory; only one server should be authoritative there",
            this.entry_id, other.entry_id, other.server_url, other.entry_url, other.pointer
        ),
    )
    .expected("one authoritative server per territory and capability")
    .actual(other.server_url.clone())
}

/// The default territory test: same country and overlapping bounding boxes. Claims
/// without a bounding box (logical entries, territories not downloaded) never overlap:
/// without a territory there is nothing to compare, and a false alarm is worse here.
pub fn default_overlap(a: &AuthClaim, b: &AuthClaim) -> bool {
    a.country == b.country
        && match (a.bbox, b.bbox) {
            (Some(x), Some(y)) => bbox_overlap(&x, &y),
            _ => false,
        }
}

/// Whether two `[min_lon, min_lat, max_lon, max_lat]` boxes share interior area.
/// Touching edges do not count (neighbouring utilities share borders). A box with
/// `min_lon > max_lon` crosses the antimeridian (RFC 7946 §5.2). NaN never overlaps.
pub fn bbox_overlap(a: &[f64; 4], b: &[f64; 4]) -> bool {
    if a.iter().chain(b).any(|v| v.is_nan()) {
        return false;
    }
    let lat = a[1] < b[3] && b[1] < a[3];
    lat && lon_ranges(a)
        .iter()
        .any(|x| lon_ranges(b).iter().any(|y| x.0 < y.1 && y.0 < x.1))
}

fn lon_ranges(b: &[f64; 4]) -> Vec<(f64, f64)> {
    if b[0] <= b[2] {
        vec![(b[0], b[2])]
    } else {
        vec![(b[0], 180.0), (-180.0, b[2])]
    }
}

/// Whether two territories share interior area: the geometry test for XS-AUTH-CONFLICT
/// (WG1-01 §4, "overlapping territory"), meant to follow [`default_overlap`] (same
/// country, bounding boxes overlap) as its prefilter.
///
/// `geo::Intersects` is also true for neighbours that only share a border, the usual case
/// for utilities, so it is only the cheap first test; the DE-9IM matrix then has to show
/// the interiors meeting (`T********`). Territories are remote data and may be invalid
/// (e.g. undissolved counties sharing edges inside one MultiPolygon): should the relate
/// computation panic on such input, the pair is treated as not overlapping, like a claim
/// without territory (a false alarm is worse than a missed one here).
pub fn territories_overlap(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> bool {
    if !a.intersects(b) {
        return false;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Interior of `a` meets interior of `b`; the rest of the matrix is free.
        a.relate(b).matches("T********").unwrap_or(false)
    }))
    .unwrap_or(false)
}
