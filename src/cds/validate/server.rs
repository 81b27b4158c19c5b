//! Checks across all documents of one server (WG1-01 §2 capability union, §3 ordering and
//! unique ids).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use super::fields::{parse_datetime, str_items};
use super::{rules, EntryRef};
use crate::cds::finding::{Finding, Severity};
use crate::cds::CAP_COVERAGE;

/// Checks across all documents of one server: metadata plus every coverage entry of
/// every page, in listing order (WG1-01 §2 capability union, §3 ordering and unique ids).
///
/// - META-CAP-UNION: one finding at the metadata's `/capabilities`, listing every missing
///   capability; only when the metadata declares `coverage` (otherwise there is no listing
///   the union could come from).
/// - COV-DUP-ID: one finding per duplicated id, at the id of its *second* occurrence
///   (`<page>` + `/coverage_entries/<i>/id`); the message names the first one and the count.
/// - COV-ORDER: at most one finding per listing, at the first entry that is newer than the
///   one before it. Entries whose `updated` does not parse are skipped (they already have
///   a COV-TYPE finding).
pub fn validate_server(meta: &Value, meta_url: &str, entries: &[EntryRef<'_>]) -> Vec<Finding> {
    let mut checks = ServerChecks::default();
    for e in entries {
        checks.entry(e);
    }
    checks.finish(meta, meta_url)
}

/// [`validate_server`] fed one entry at a time, in listing order, so that a crawler can
/// let each page go once it is read: it keeps only what the checks need across pages (the
/// capabilities seen, each string id's first two places and count, the last `updated`),
/// not the entries. The ids it keeps are every string id listed ([`ServerChecks::into_ids`]).
#[derive(Default)]
pub struct ServerChecks {
    /// The entries' capabilities, in first-seen order.
    union: Vec<String>,
    /// The page URLs seen, in order; places below index into it.
    pages: Vec<String>,
    /// Id -> (first place, second place, count).
    seen: HashMap<String, (Place, Option<Place>, usize)>,
    /// The last parsable `updated`, its text and place, until the first COV-ORDER.
    prev: Option<(DateTime<FixedOffset>, String, Place)>,
    order_finding: Option<Finding>,
}

/// An entry's page (in `ServerChecks::pages`) and index in its `coverage_entries`; in
/// listing order when compared.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Place(u32, u32);

impl ServerChecks {
    /// The next entry of the listing.
    pub fn entry(&mut self, e: &EntryRef<'_>) {
        if self.pages.last().map(String::as_str) != Some(e.page_url) {
            self.pages.push(e.page_url.to_owned());
        }
        let place = Place((self.pages.len() - 1) as u32, e.index as u32);
        if let Some(caps) = e.entry.get("capabilities").and_then(Value::as_array) {
            for cap in caps.iter().filter_map(Value::as_str) {
                if !self.union.iter().any(|c| c == cap) {
                    self.union.push(cap.to_owned());
                }
            }
        }
        // Only string ids: a non-string id is a COV-TYPE finding already, and comparing
        // `5` with `"5"` would invent a duplicate.
        if let Some(id) = e.entry.get("id").and_then(Value::as_str) {
            match self.seen.get_mut(id) {
                Some(slot) => {
                    slot.2 += 1;
                    if slot.2 == 2 {
                        slot.1 = Some(place);
                    }
                }
                None => {
                    self.seen.insert(id.to_owned(), (place, None, 1));
                }
            }
        }
        self.ordering(e, place);
    }

    fn ordering(&mut self, e: &EntryRef<'_>, place: Place) {
        // WG1-01 §3: newest `updated` first, across the pages in order. Clients rely on it
        // to stop paging once they reach entries they already have.
        if self.order_finding.is_some() {
            return; // once per listing: one misplaced entry usually shifts many
        }
        let Some(raw) = e.entry.get("updated").and_then(Value::as_str) else {
            return;
        };
        let Some(t) = parse_datetime(raw) else {
            return;
        };
        if let Some((pt, praw, pplace)) = &self.prev {
            if t > *pt {
                self.order_finding = Some(
                    Finding::new(
                        rules::COV_ORDER,
                        // A MUST of WG1-01 §3 (CDS-SPEC-NOTES §3), so an error.
                        Severity::Error,
                        e.page_url,
                        format!("{}/updated", e.pointer()),
                        format!(
                            "coverage entries must be ordered by `updated`, newest first; this entry ({raw}) is newer than the one before it ({praw} at {})",
                            self.at(*pplace)
                        ),
                    )
                    .expected(format!("not later than {praw}"))
                    .actual(raw),
                );
                return;
            }
        }
        self.prev = Some((t, raw.to_owned(), place));
    }

    /// `page#/coverage_entries/i`, as the findings name an entry.
    fn at(&self, p: Place) -> String {
        format!("{}#/coverage_entries/{}", self.pages[p.0 as usize], p.1)
    }

    /// The findings, in the order [`validate_server`] gives them.
    pub fn finish(&self, meta: &Value, meta_url: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        cap_union(meta, meta_url, &self.union, &mut out);
        // Duplicates in the listing order of their first occurrence.
        let mut dups: Vec<(Place, Place, usize, &str)> = self
            .seen
            .iter()
            .filter_map(|(id, &(first, second, count))| Some((first, second?, count, id.as_str())))
            .collect();
        dups.sort_unstable_by_key(|d| d.0);
        for (first, second, count, id) in dups {
            out.push(
                Finding::new(
                    rules::COV_DUP_ID,
                    Severity::Error,
                    &self.pages[second.0 as usize],
                    format!("/coverage_entries/{}/id", second.1),
                    format!(
                        "coverage entry id {id:?} is used {count} times; ids must be unique within a server (first at {})",
                        self.at(first)
                    ),
                )
                .expected("a unique id")
                .actual(id),
            );
        }
        out.extend(self.order_finding.clone());
        out
    }

    /// Every string `id` the listing had (each once).
    pub fn into_ids(self) -> HashSet<String> {
        self.seen.into_keys().collect()
    }
}

fn cap_union(meta: &Value, meta_url: &str, union: &[String], out: &mut Vec<Finding>) {
    let Some(obj) = meta.as_object() else {
        return;
    };
    let declared = str_items(obj, "capabilities");
    if !declared.contains(&CAP_COVERAGE) {
        return;
    }
    // WG1-01 §2: with `coverage`, the server's capabilities include the union of its
    // entries' capabilities. Listed in first-seen order so the message is stable.
    let missing: Vec<&str> = union
        .iter()
        .map(String::as_str)
        .filter(|c| !declared.contains(c))
        .collect();
    if missing.is_empty() {
        return;
    }
    let quoted = |list: &[&str]| {
        list.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(
        Finding::new(
            rules::META_CAP_UNION,
            Severity::Error,
            meta_url,
            "/capabilities",
            format!(
                "`capabilities` must include every capability its coverage entries list; missing: {}",
                quoted(&missing)
            ),
        )
        .expected(Value::from(union.to_vec()).to_string())
        .actual(Value::from(declared).to_string()),
    );
}
