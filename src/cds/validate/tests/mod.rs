//! Unit tests of the validator: one fixture per rule, the clean case, the spec's own
//! examples. Shared builders live here; each layer has its own file.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::*;
use crate::cds::{Finding, Severity};
use crate::test_documents::{conforming_entry, conforming_metadata, META_URL, PAGE1, PAGE2};

mod coverage;
mod cross;
mod metadata;
mod server;
mod spec_examples;
mod transport;

fn ctx(fetched_url: &str) -> MetadataContext<'_> {
    MetadataContext { fetched_url }
}

fn ids(findings: &[Finding]) -> BTreeSet<String> {
    findings.iter().map(|f| f.rule.clone()).collect()
}

fn set(rules: &[&str]) -> BTreeSet<String> {
    rules.iter().map(|r| r.to_string()).collect()
}

fn page(entries: Vec<Value>) -> Value {
    json!({ "coverage_entries": entries, "next": null, "previous": null })
}

/// `conforming_metadata()` with `edit` applied to its object.
fn meta_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut m = conforming_metadata();
    edit(m.as_object_mut().unwrap());
    m
}

/// A one-entry page whose entry is `conforming_entry` with `edit` applied.
fn entry_page_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut e = conforming_entry("north", "2024-06-01T00:00:00Z");
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
            // Every page a test builds has its entries: a missing list is a broken test.
            assert!(
                doc["coverage_entries"].is_array(),
                "{url}: no coverage_entries"
            );
            EntryRef::of_page(url, doc)
        })
        .collect()
}

// ---- the clean case -------------------------------------------------------------

#[test]
fn valid_metadata_coverage_and_server_have_zero_findings() {
    let meta = conforming_metadata();
    assert_eq!(validate_metadata(&meta, &ctx(META_URL)), vec![]);
    let p1 = json!({
        "coverage_entries": [
            conforming_entry("north", "2024-06-01T00:00:00Z"),
            conforming_entry("south", "2024-05-01T00:00:00Z"),
        ],
        "next": PAGE2,
        "previous": null
    });
    let mut logical = conforming_entry("ev-program", "2024-04-01T00:00:00Z");
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
