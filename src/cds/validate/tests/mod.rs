//! Unit tests of the validator: one fixture per rule, the clean case, the spec's own
//! examples. Shared builders live here; each layer has its own file.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::*;
use crate::cds::{Finding, Severity};

mod coverage;
mod cross;
mod metadata;
mod server;
mod spec_examples;
mod transport;

const META_URL: &str = "https://util.example/.well-known/cds-server-metadata.json";
const PAGE1: &str = "https://util.example/cds/coverage";
const PAGE2: &str = "https://util.example/cds/coverage?page=2";

fn ctx(fetched_url: &str) -> MetadataContext<'_> {
    MetadataContext { fetched_url }
}

fn ids(findings: &[Finding]) -> BTreeSet<String> {
    findings.iter().map(|f| f.rule.clone()).collect()
}

fn set(rules: &[&str]) -> BTreeSet<String> {
    rules.iter().map(|r| r.to_string()).collect()
}

/// A complete, conforming metadata document (WG1-01 §2, WG1-02 §3).
fn good_meta() -> Value {
    json!({
        "cds_metadata_version": "v1",
        "cds_metadata_url": META_URL,
        "created": "2024-01-01T00:00:00Z",
        "updated": "2024-06-01T12:30:00.250+02:00",
        "name": "Example Power & Light",
        "description": "A conforming test utility.",
        "website": "https://util.example/",
        "documentation": "https://util.example/docs",
        "support": "https://util.example/support",
        "capabilities": ["coverage", "oauth", "ieee1547"],
        "coverage": PAGE1,
        "related_metadata": ["https://sister.example/.well-known/cds-server-metadata.json"],
        "oauth_metadata": "https://util.example/.well-known/oauth-authorization-server"
    })
}

/// A complete, conforming geographic coverage entry (WG1-01 §4).
fn good_entry(id: &str, updated: &str) -> Value {
    json!({
        "id": id,
        "created": "2024-01-01T00:00:00Z",
        "updated": updated,
        "entity_name": "Example Power & Light",
        "entity_abbreviation": "EP&L",
        "country": "US",
        "name": "Northern service territory",
        "description": "Electric distribution, northern half.",
        "type": "geographic",
        "role": "authoritative",
        "infrastructure_types": ["distribution_utility"],
        "commodity_types": ["electricity"],
        "capabilities": ["oauth"],
        "map_resource": "https://util.example/map.png",
        "map_content_type": "image/png",
        "geojson_resource": "https://util.example/territory.geojson"
    })
}

fn page(entries: Vec<Value>) -> Value {
    json!({ "coverage_entries": entries, "next": null, "previous": null })
}

/// `good_meta()` with `edit` applied to its object.
fn meta_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut m = good_meta();
    edit(m.as_object_mut().unwrap());
    m
}

/// A one-entry page whose entry is `good_entry` with `edit` applied.
fn entry_page_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut e = good_entry("north", "2024-06-01T00:00:00Z");
    edit(e.as_object_mut().unwrap());
    page(vec![e])
}

fn meta_rules(doc: &Value) -> BTreeSet<String> {
    ids(&validate_metadata(doc, &ctx(META_URL)))
}

fn page_rules(doc: &Value) -> BTreeSet<String> {
    ids(&validate_coverage_page(doc, PAGE1))
}

fn refs<'a>(pages: &'a [(&'a str, Value)]) -> Vec<EntryRef<'a>> {
    pages
        .iter()
        .flat_map(|(url, doc)| {
            doc["coverage_entries"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(move |(index, entry)| EntryRef {
                    page_url: url,
                    index,
                    entry,
                })
        })
        .collect()
}

// ---- the clean case -------------------------------------------------------------

#[test]
fn valid_metadata_coverage_and_server_have_zero_findings() {
    let meta = good_meta();
    assert_eq!(validate_metadata(&meta, &ctx(META_URL)), vec![]);
    let p1 = json!({
        "coverage_entries": [
            good_entry("north", "2024-06-01T00:00:00Z"),
            good_entry("south", "2024-05-01T00:00:00Z"),
        ],
        "next": PAGE2,
        "previous": null
    });
    let mut logical = good_entry("ev-program", "2024-04-01T00:00:00Z");
    let o = logical.as_object_mut().unwrap();
    o["type"] = json!("logical");
    o["entity_abbreviation"] = Value::Null;
    o["capabilities"] = json!(["oauth", "ieee1547"]);
    for f in [
        "description",
        "map_resource",
        "map_content_type",
        "geojson_resource",
    ] {
        o.remove(f);
    }
    let p2 = json!({ "coverage_entries": [logical], "next": null, "previous": PAGE1 });
    assert_eq!(validate_coverage_page(&p1, PAGE1), vec![]);
    assert_eq!(validate_coverage_page(&p2, PAGE2), vec![]);
    let pages = [(PAGE1, p1), (PAGE2, p2)];
    assert_eq!(validate_server(&meta, META_URL, &refs(&pages)), vec![]);
}

#[test]
fn unknown_fields_capabilities_and_enum_values_are_ignored() {
    // WG1-01 §2: forward compatibility, never a finding.
    let meta = meta_with(|m| {
        m.insert(
            "ieee1547_setup".into(),
            json!("https://util.example/inverters"),
        );
        m.insert("x_vendor".into(), json!({"anything": [1, 2]}));
        m["capabilities"] = json!(["coverage", "oauth", "ieee1547", "future_thing"]);
    });
    assert_eq!(meta_rules(&meta), set(&[]));
    let p = entry_page_with(|e| {
        e["role"] = json!("community_choice_aggregator");
        e["infrastructure_types"] = json!(["ev_charging_operator"]);
        e["commodity_types"] = json!(["hydrogen"]);
        e["capabilities"] = json!(["future_thing"]);
        e.insert("x_extra".into(), json!(true));
    });
    assert_eq!(page_rules(&p), set(&[]));
    // An unknown `type` is kept; only `geographic` requires a territory resource.
    let p = entry_page_with(|e| {
        e["type"] = json!("virtual");
        e.remove("map_resource");
        e.remove("map_content_type");
        e.remove("geojson_resource");
    });
    assert_eq!(page_rules(&p), set(&[]));
}
