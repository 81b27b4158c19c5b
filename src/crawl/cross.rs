//! Findings that involve more than one server, recomputed after every run.

use std::collections::HashMap;
use std::sync::OnceLock;

use tracing::{info, warn};

use super::Crawler;
use crate::cds::validate::{self, AuthClaim};
use crate::cds::Finding;
use crate::store::AuthoritativeClaimRow;

impl Crawler {
    /// Recompute XS-AUTH-CONFLICT (WG1-01 §4: only one server should be `authoritative`
    /// for the same coverage and capability) over every searchable server, and store the
    /// result in place of the previous one. It runs after every run that follows a change,
    /// because a conflict involves two servers, either of which may have changed, gone or
    /// come back. When the change log has not moved since the last refresh (recorded with
    /// its run, so any process sees it), as after an unchanged re-crawl, the stored
    /// findings already are the answer and reading every authoritative territory again is
    /// skipped (at 100,000 entries that read is seconds and most of the crawler's memory).
    /// Errors are logged: the run itself succeeded and its commits stand.
    #[tracing::instrument(name = "cross_server_findings", skip_all, fields(run_id = run_id))]
    pub(super) async fn refresh_cross_server_findings(&self, run_id: i64) {
        // Read before the claims: a change committed in between moves it again, so the
        // next run refreshes.
        let seq = self.store.max_change_seq().await.ok();
        let last = self.store.last_cross_seq().await.ok().flatten();
        if seq.is_some() && seq == last {
            info!(
                run_id,
                "no change since the last refresh: cross-server findings stand"
            );
            return;
        }
        let rows = match self.store.authoritative_claims().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "reading authoritative entries failed; cross-server findings kept");
                return;
            }
        };
        let claims = claims_of(&rows);
        let pairs = validate::candidate_pairs(&claims);
        // Only the claims of candidate pairs have their territory read: reading every
        // authoritative territory (one aggregator's 100,000, ~90 MB of WKB held twice
        // while the rows were converted) set the crawler's peak memory (issue 17,
        // docs/PERFORMANCE.md). A commit between the two reads (the next run may start
        // once this one released the lock) moves the change log past `seq`, so the next
        // refresh computes again, as for a commit after the claims were read.
        let mut keys: Vec<i64> = pairs
            .iter()
            .flat_map(|&(i, j)| [rows[i].entry_key, rows[j].entry_key])
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let wkbs = match self.store.territory_wkbs(&keys).await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "reading territories failed; cross-server findings kept");
                return;
            }
        };
        let findings = authority_conflicts(&rows, &claims, &pairs, &wkbs);
        let n = findings.len();
        match self
            .store
            .replace_cross_server_findings(run_id, &findings)
            .await
        {
            Ok(()) => {
                info!(run_id, findings = n, "cross-server findings refreshed");
                if let Some(s) = seq {
                    if let Err(e) = self.store.set_cross_seq(run_id, s).await {
                        warn!(error = %e, "recording the cross-server refresh failed");
                    }
                }
                if n > 0 {
                    if let Err(e) = self.store.add_run_findings(run_id, n as i64).await {
                        warn!(error = %e, "adding to the run's findings total failed");
                    }
                }
            }
            Err(e) => warn!(error = %e, "storing cross-server findings failed"),
        }
    }
}

/// A claim is one entry of one server: (server, page, pointer) finds its row.
fn key(c: &AuthClaim) -> (&str, &str, &str) {
    (&c.server_url, &c.entry_url, &c.pointer)
}

/// The stored authoritative entries as the validator's claims, in the same order.
fn claims_of(rows: &[AuthoritativeClaimRow]) -> Vec<AuthClaim> {
    rows.iter()
        .map(|r| AuthClaim {
            server_url: r.server_url.clone(),
            entry_url: r.page_url.clone(),
            pointer: format!("/coverage_entries/{}", r.page_index),
            entry_id: r.entry_id.clone(),
            capabilities: r.capabilities.clone(),
            country: r.country.clone(),
            bbox: r.bbox,
        })
        .collect()
}

/// The XS-AUTH-CONFLICT findings among the stored authoritative entries (`claims` made
/// of `rows`, `pairs` their candidate pairs, `wkbs` the territories of those pairs'
/// entries by key), each with the id of the server it is reported on.
fn authority_conflicts(
    rows: &[AuthoritativeClaimRow],
    claims: &[AuthClaim],
    pairs: &[(usize, usize)],
    wkbs: &HashMap<i64, Vec<u8>>,
) -> Vec<(i64, Finding)> {
    let row_of: HashMap<_, usize> = claims
        .iter()
        .enumerate()
        .map(|(i, c)| (key(c), i))
        .collect();
    // Territories are decoded only for pairs that pass the cheap tests (shared
    // capability, same country, overlapping boxes), and once each.
    let shapes: Vec<OnceLock<Option<geo::MultiPolygon<f64>>>> =
        rows.iter().map(|_| OnceLock::new()).collect();
    let shape = |c: &AuthClaim| {
        let i = *row_of.get(&key(c))?;
        let decode = || crate::territory::from_wkb(wkbs.get(&rows[i].entry_key)?).ok();
        shapes[i].get_or_init(decode).as_ref()
    };
    let overlap = |a: &AuthClaim, b: &AuthClaim| {
        validate::default_overlap(a, b)
            && match (shape(a), shape(b)) {
                (Some(x), Some(y)) => validate::territories_overlap(x, y),
                _ => false,
            }
    };
    // `overlap` starts with `default_overlap`, so the candidate pairs are all it can find.
    let conflicts = validate::conflicts_among(claims, pairs, &overlap);
    owned_by_servers(rows, claims, conflicts)
}

/// Each finding is reported against one side (its page and pointer) and names the other
/// side's server in `actual`: that identifies the claim it is about, and so the server
/// it is stored on.
fn owned_by_servers(
    rows: &[AuthoritativeClaimRow],
    claims: &[AuthClaim],
    conflicts: Vec<Finding>,
) -> Vec<(i64, Finding)> {
    let mut by_place: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, c) in claims.iter().enumerate() {
        by_place
            .entry((&c.entry_url, &c.pointer))
            .or_default()
            .push(i);
    }
    conflicts
        .into_iter()
        .filter_map(|f| {
            let owner = *by_place
                .get(&(f.url.as_str(), f.pointer.as_str()))?
                .iter()
                .find(|&&i| f.actual.as_deref() != Some(claims[i].server_url.as_str()))?;
            Some((rows[owner].server_id, f))
        })
        .collect()
}
