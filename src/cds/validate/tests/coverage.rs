//! Coverage listing and entry rules (WG1-01 §3, §4), one rule per fixture.

use super::*;

#[test]
fn cov_type_document() {
    let f = validate_coverage_page(
        &json!([conforming_entry("a", "2024-01-01T00:00:00Z")]),
        PAGE1,
    );
    assert_eq!(ids(&f), set(&["COV-TYPE:document"]));
}

#[test]
fn cov_required_page_fields() {
    for field in ["coverage_entries", "next", "previous"] {
        let mut p = page(vec![conforming_entry("a", "2024-01-01T00:00:00Z")]);
        p.as_object_mut().unwrap().remove(field);
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(ids(&f), set(&[&format!("COV-REQUIRED:{field}")]), "{field}");
        assert_eq!(f[0].pointer, format!("/{field}"));
        assert_eq!(f[0].severity, Severity::Error);
    }
    // `null` is a legal `next`/`previous` but no `coverage_entries`.
    let p = json!({ "coverage_entries": null, "next": null, "previous": null });
    assert_eq!(page_rules(&p), set(&["COV-REQUIRED:coverage_entries"]));
}

#[test]
fn cov_type_page_fields() {
    let cases = [
        ("coverage_entries", json!({"id": "a"}), "/coverage_entries"),
        ("coverage_entries", json!(["a"]), "/coverage_entries/0"),
        ("next", json!("?page=2"), "/next"),
        ("previous", json!(5), "/previous"),
    ];
    for (field, bad, pointer) in cases {
        let mut p = page(vec![]);
        p[field] = bad.clone();
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(
            ids(&f),
            set(&[&format!("COV-TYPE:{field}")]),
            "{field}: {bad}"
        );
        assert_eq!(f[0].pointer, pointer);
    }
    // An empty listing is fine.
    assert_eq!(page_rules(&page(vec![])), set(&[]));
}

#[test]
fn cov_required_each_entry_field() {
    for field in [
        "id",
        "created",
        "updated",
        "entity_name",
        "entity_abbreviation",
        "country",
        "name",
        "type",
        "role",
        "infrastructure_types",
        "commodity_types",
        "capabilities",
    ] {
        let p = entry_page_with(|e| {
            e.remove(field);
        });
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(ids(&f), set(&[&format!("COV-REQUIRED:{field}")]), "{field}");
        assert_eq!(f[0].pointer, format!("/coverage_entries/0/{field}"));
        assert_eq!(f[0].url, PAGE1);
    }
    // `null` is legal for `entity_abbreviation` only.
    let p = entry_page_with(|e| e["entity_abbreviation"] = Value::Null);
    assert_eq!(page_rules(&p), set(&[]));
    let p = entry_page_with(|e| e["name"] = Value::Null);
    assert_eq!(page_rules(&p), set(&["COV-REQUIRED:name"]));
    // `description` is optional.
    let p = entry_page_with(|e| {
        e.remove("description");
    });
    assert_eq!(page_rules(&p), set(&[]));
}

#[test]
fn cov_type_each_entry_field() {
    let cases = [
        ("id", json!(5)),
        ("id", json!("")),
        ("created", json!("2024-01-01 noon")),
        ("updated", json!("2024-02-30T00:00:00Z")),
        ("entity_name", json!([])),
        ("entity_abbreviation", json!(3)),
        ("country", json!(840)),
        ("name", json!(true)),
        ("description", json!(5)),
        ("type", json!(1)),
        ("role", json!(["official"])),
        ("infrastructure_types", json!("distribution_utility")),
        ("commodity_types", json!([1])),
        ("capabilities", json!({})),
        ("map_resource", json!("map.png")),
        ("map_content_type", json!("png")),
        ("geojson_resource", json!("ftp://util.example/t.geojson")),
    ];
    for (field, bad) in cases {
        let p = entry_page_with(|e| e[field] = bad.clone());
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(
            ids(&f),
            set(&[&format!("COV-TYPE:{field}")]),
            "{field}: {bad}"
        );
        assert_eq!(f.len(), 1, "{field}: {bad}");
        assert!(f[0]
            .pointer
            .starts_with(&format!("/coverage_entries/0/{field}")));
    }
}

#[test]
fn cov_country() {
    for bad in ["UK", "XX", "us", "USA"] {
        let p = entry_page_with(|e| e["country"] = json!(bad));
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(ids(&f), set(&["COV-COUNTRY"]), "{bad}");
        assert_eq!(f[0].pointer, "/coverage_entries/0/country");
        assert_eq!(f[0].actual.as_deref(), Some(bad));
    }
    let f = validate_coverage_page(&entry_page_with(|e| e["country"] = json!("us")), PAGE1);
    assert!(f[0].message.contains("`US`"), "{}", f[0].message);
}

#[test]
fn cov_cap_coverage() {
    let p = entry_page_with(|e| e["capabilities"] = json!(["oauth", "coverage"]));
    let f = validate_coverage_page(&p, PAGE1);
    assert_eq!(ids(&f), set(&["COV-CAP-COVERAGE"]));
    assert_eq!(f[0].pointer, "/coverage_entries/0/capabilities/1");
}

#[test]
fn cov_map_type() {
    for absent in [None, Some(Value::Null)] {
        let p = entry_page_with(|e| match &absent {
            None => {
                e.remove("map_content_type");
            }
            Some(v) => e["map_content_type"] = v.clone(),
        });
        let f = validate_coverage_page(&p, PAGE1);
        assert_eq!(ids(&f), set(&["COV-MAP-TYPE"]));
        assert_eq!(f[0].pointer, "/coverage_entries/0/map_content_type");
    }
}

#[test]
fn cov_geo_resource() {
    let p = entry_page_with(|e| {
        e.remove("map_resource");
        e.remove("map_content_type");
        e["geojson_resource"] = Value::Null;
    });
    let f = validate_coverage_page(&p, PAGE1);
    assert_eq!(ids(&f), set(&["COV-GEO-RESOURCE"]));
    assert_eq!(f[0].pointer, "/coverage_entries/0");
    // Either resource alone is enough.
    let only_geojson = entry_page_with(|e| {
        e.remove("map_resource");
        e.remove("map_content_type");
    });
    assert_eq!(page_rules(&only_geojson), set(&[]));
    let only_map = entry_page_with(|e| {
        e.remove("geojson_resource");
    });
    assert_eq!(page_rules(&only_map), set(&[]));
}

#[test]
fn entry_pointers_follow_the_index() {
    let mut bad = conforming_entry("b", "2024-01-01T00:00:00Z");
    bad["country"] = json!("ZZ");
    let p = page(vec![conforming_entry("a", "2024-02-01T00:00:00Z"), bad]);
    let f = validate_coverage_page(&p, PAGE1);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].pointer, "/coverage_entries/1/country");
}
