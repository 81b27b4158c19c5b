//! Checks across all documents of one server (WG1-01 §2 capability union, §3 ordering and
//! unique ids).

use std::collections::HashMap;

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
    let mut out = Vec::new();
    cap_union(meta, meta_url, entries, &mut out);
    duplicate_ids(entries, &mut out);
    ordering(entries, &mut out);
    out
}

fn cap_union(meta: &Value, meta_url: &str, entries: &[EntryRef<'_>], out: &mut Vec<Finding>) {
    let Some(obj) = meta.as_object() else {
        return;
    };
    let declared = str_items(obj, "capabilities");
    if !declared.contains(&CAP_COVERAGE) {
        return;
    }
    // WG1-01 §2: with `coverage`, the server's capabilities include the union of its
    // entries' capabilities. Listed in first-seen order so the message is stable.
    let mut union: Vec<&str> = Vec::new();
    for e in entries {
        let Some(caps) = e.entry.get("capabilities").and_then(Value::as_array) else {
            continue;
        };
        for cap in caps.iter().filter_map(Value::as_str) {
            if !union.contains(&cap) {
                union.push(cap);
            }
        }
    }
    let missing: Vec<&str> = union
        .iter()
        .copied()
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
        .expected(Value::from(union).to_string())
        .actual(Value::from(declared).to_string()),
    );
}

fn duplicate_ids(entries: &[EntryRef<'_>], out: &mut Vec<Finding>) {
    // id -> (first occurrence, second occurrence, count); insertion order kept in `order`
    // so findings come out in listing order.
    let mut seen: HashMap<&str, (usize, Option<usize>, usize)> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (pos, e) in entries.iter().enumerate() {
        // Only string ids: a non-string id is a COV-TYPE finding already, and comparing
        // `5` with `"5"` would invent a duplicate.
        let Some(id) = e.entry.get("id").and_then(Value::as_str) else {
            continue;
        };
        let slot = seen.entry(id).or_insert_with(|| {
            order.push(id);
            (pos, None, 0)
        });
        slot.2 += 1;
        if slot.2 == 2 {
            slot.1 = Some(pos);
        }
    }
    for id in order {
        let (first, Some(second), count) = seen[id] else {
            continue;
        };
        let (a, b) = (&entries[first], &entries[second]);
        out.push(
            Finding::new(
                rules::COV_DUP_ID,
                Severity::Error,
                b.page_url,
                format!("{}/id", b.pointer()),
                format!(
                    "coverage entry id {id:?} is used {count} times; ids must be unique within a server (first at {}#{})",
                    a.page_url,
                    a.pointer()
                ),
            )
            .expected("a unique id")
            .actual(id),
        );
    }
}

fn ordering(entries: &[EntryRef<'_>], out: &mut Vec<Finding>) {
    // WG1-01 §3: newest `updated` first, across the pages in order. Clients rely on it to
    // stop paging once they reach entries they already have.
    let mut prev: Option<(DateTime<FixedOffset>, &EntryRef<'_>, &str)> = None;
    for e in entries {
        let Some(raw) = e.entry.get("updated").and_then(Value::as_str) else {
            continue;
        };
        let Some(t) = parse_datetime(raw) else {
            continue;
        };
        if let Some((pt, pe, praw)) = prev {
            if t > pt {
                out.push(
                    Finding::new(
                        rules::COV_ORDER,
                        // A MUST of WG1-01 §3 (CDS-SPEC-NOTES §3), so an error.
                        Severity::Error,
                        e.page_url,
                        format!("{}/updated", e.pointer()),
                        format!(
                            "coverage entries must be ordered by `updated`, newest first; this entry ({raw}) is newer than the one before it ({praw} at {}#{})",
                            pe.page_url,
                            pe.pointer()
                        ),
                    )
                    .expected(format!("not later than {praw}"))
                    .actual(raw),
                );
                return; // once per listing: one misplaced entry usually shifts many
            }
        }
        prev = Some((t, e, raw));
    }
}
