//! Metadata document rules (WG1-01 §2), one rule per fixture.

use super::*;

#[test]
fn meta_type_document() {
    for doc in [json!([]), json!("x"), Value::Null] {
        let f = validate_metadata(&doc, &ctx(META_URL));
        assert_eq!(ids(&f), set(&["META-TYPE:document"]));
        assert_eq!(f[0].pointer, "");
    }
}

#[test]
fn meta_required_each_field() {
    for field in [
        "cds_metadata_version",
        "cds_metadata_url",
        "created",
        "updated",
        "name",
        "description",
        "website",
        "documentation",
        "support",
        "capabilities",
    ] {
        let missing = meta_with(|m| {
            m.remove(field);
        });
        let f = validate_metadata(&missing, &ctx(META_URL));
        assert_eq!(
            ids(&f),
            set(&[&format!("META-REQUIRED:{field}")]),
            "{field}"
        );
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].pointer, format!("/{field}"));
        // `null` is no value for a required field.
        let null = meta_with(|m| m[field] = Value::Null);
        assert_eq!(meta_rules(&null), set(&[&format!("META-REQUIRED:{field}")]));
    }
}

#[test]
fn meta_type_each_field() {
    let cases = [
        ("cds_metadata_version", json!(1)),
        (
            "cds_metadata_url",
            json!("/.well-known/cds-server-metadata.json"),
        ),
        ("created", json!("2024-01-01")),
        ("updated", json!("yesterday")),
        ("name", json!(["Example"])),
        ("description", json!({"en": "x"})),
        ("website", json!("javascript:alert(1)")),
        ("documentation", json!(" https://util.example/docs")),
        ("support", json!(42)),
        ("capabilities", json!("coverage")),
        ("capabilities", json!(["coverage", 7])),
        ("related_metadata", json!("https://sister.example/x.json")),
        (
            "related_metadata",
            json!(["https://ok.example/a.json", "not a url"]),
        ),
    ];
    for (field, bad) in cases {
        let doc = meta_with(|m| m[field] = bad.clone());
        let f = validate_metadata(&doc, &ctx(META_URL));
        // A `capabilities` that is not a list drops `coverage`/`oauth`, and with them
        // the rules that depend on them: still exactly one finding.
        assert_eq!(
            ids(&f),
            set(&[&format!("META-TYPE:{field}")]),
            "{field}: {bad}"
        );
        assert_eq!(f.len(), 1, "{field}: {bad}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].actual.is_some());
    }
    // List elements are pointed at individually.
    let doc = meta_with(|m| m["related_metadata"] = json!(["https://ok.example/", 5]));
    assert_eq!(
        validate_metadata(&doc, &ctx(META_URL))[0].pointer,
        "/related_metadata/1"
    );
}

#[test]
fn meta_type_optional_urls_without_their_capability() {
    let doc = meta_with(|m| {
        m["capabilities"] = json!([]);
        m["coverage"] = json!("cds-coverage.json");
        m["oauth_metadata"] = json!(17);
    });
    assert_eq!(
        meta_rules(&doc),
        set(&["META-TYPE:coverage", "META-TYPE:oauth_metadata"])
    );
    // Absent or null optional fields are simply not given.
    let doc = meta_with(|m| {
        m["capabilities"] = json!([]);
        m.remove("coverage");
        m["oauth_metadata"] = Value::Null;
        m["related_metadata"] = Value::Null;
    });
    assert_eq!(meta_rules(&doc), set(&[]));
}

#[test]
fn meta_version() {
    let f = validate_metadata(
        &meta_with(|m| m["cds_metadata_version"] = json!("v2")),
        &ctx(META_URL),
    );
    assert_eq!(ids(&f), set(&["META-VERSION"]));
    assert_eq!(f[0].severity, Severity::Warning);
    assert_eq!(f[0].actual.as_deref(), Some("v2"));
}

#[test]
fn meta_url_mismatch() {
    let f = validate_metadata(
        &conforming_metadata(),
        &ctx("https://moved.example/.well-known/cds-server-metadata.json"),
    );
    assert_eq!(ids(&f), set(&["META-URL-MISMATCH"]));
    assert_eq!(f[0].severity, Severity::Warning);
    assert_eq!(f[0].pointer, "/cds_metadata_url");
    assert_eq!(f[0].actual.as_deref(), Some(META_URL));
    // Different path on the same host counts too.
    let legacy = "https://util.example/.well-known/carbon-data-spec.json";
    assert_eq!(
        ids(&validate_metadata(&conforming_metadata(), &ctx(legacy))),
        set(&["META-URL-MISMATCH"])
    );
}

#[test]
fn meta_url_trivial_differences_do_not_count() {
    for fetched in [
        "https://UTIL.example:443/.well-known/cds-server-metadata.json",
        "https://util.example/.well-known/cds-server-metadata.json#top",
    ] {
        assert_eq!(
            ids(&validate_metadata(&conforming_metadata(), &ctx(fetched))),
            set(&[]),
            "{fetched}"
        );
    }
    let doc = meta_with(|m| m["cds_metadata_url"] = json!("https://util.example:443"));
    assert_eq!(
        ids(&validate_metadata(&doc, &ctx("https://util.example/"))),
        set(&[])
    );
}

#[test]
fn meta_coverage_url() {
    for bad in [
        None,
        Some(Value::Null),
        Some(json!(42)),
        Some(json!("coverage.json")),
    ] {
        let doc = meta_with(|m| match &bad {
            None => {
                m.remove("coverage");
            }
            Some(v) => m["coverage"] = v.clone(),
        });
        let f = validate_metadata(&doc, &ctx(META_URL));
        assert_eq!(ids(&f), set(&["META-COVERAGE-URL"]), "{bad:?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].pointer, "/coverage");
    }
}

#[test]
fn meta_oauth_url() {
    let doc = meta_with(|m| {
        m.remove("oauth_metadata");
    });
    let f = validate_metadata(&doc, &ctx(META_URL));
    assert_eq!(ids(&f), set(&["META-OAUTH-URL"]));
    assert_eq!(f[0].severity, Severity::Error);
    let doc = meta_with(|m| m["oauth_metadata"] = json!("/oauth"));
    assert_eq!(meta_rules(&doc), set(&["META-OAUTH-URL"]));
}

#[test]
fn datetimes_follow_rfc3339() {
    for ok in [
        "2024-01-01T00:00:00Z",
        "2022-01-01T00:00:00.000000Z",
        "2024-01-01T00:00:00.5-05:00",
    ] {
        assert_eq!(
            meta_rules(&meta_with(|m| m["created"] = json!(ok))),
            set(&[]),
            "{ok}"
        );
    }
    for bad in [
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-13-01T00:00:00Z",
        "1704067200",
    ] {
        assert_eq!(
            meta_rules(&meta_with(|m| m["created"] = json!(bad))),
            set(&["META-TYPE:created"]),
            "{bad}"
        );
    }
}
