//! Whole-server rules (WG1-01 §2, §3).

use super::*;

#[test]
fn meta_cap_union() {
    let meta = meta_with(|m| m["capabilities"] = json!(["coverage", "oauth"]));
    let mut e2 = conforming_entry("south", "2024-05-01T00:00:00Z");
    e2["capabilities"] = json!(["oauth", "ieee1547", "billing"]);
    let pages = [(
        PAGE1,
        page(vec![conforming_entry("north", "2024-06-01T00:00:00Z"), e2]),
    )];
    let f = validate_server(&meta, META_URL, &refs(&pages));
    assert_eq!(ids(&f), set(&["META-CAP-UNION"]));
    assert_eq!(f[0].severity, Severity::Error);
    assert_eq!(f[0].url, META_URL);
    assert_eq!(f[0].pointer, "/capabilities");
    assert!(
        f[0].message.ends_with("missing: `ieee1547`, `billing`"),
        "{}",
        f[0].message
    );
    assert_eq!(
        f[0].expected.as_deref(),
        Some(r#"["oauth","ieee1547","billing"]"#)
    );
    assert_eq!(f[0].actual.as_deref(), Some(r#"["coverage","oauth"]"#));
    // Without the `coverage` capability there is no union to check.
    let meta = meta_with(|m| m["capabilities"] = json!(["oauth"]));
    assert_eq!(
        ids(&validate_server(&meta, META_URL, &refs(&pages))),
        set(&[])
    );
}

#[test]
fn cov_dup_id() {
    let pages = [
        (
            PAGE1,
            page(vec![
                conforming_entry("north", "2024-06-01T00:00:00Z"),
                conforming_entry("south", "2024-05-01T00:00:00Z"),
            ]),
        ),
        (
            PAGE2,
            page(vec![
                conforming_entry("west", "2024-04-01T00:00:00Z"),
                conforming_entry("north", "2024-03-01T00:00:00Z"),
                conforming_entry("north", "2024-02-01T00:00:00Z"),
            ]),
        ),
    ];
    let f = validate_server(&conforming_metadata(), META_URL, &refs(&pages));
    assert_eq!(ids(&f), set(&["COV-DUP-ID"]));
    assert_eq!(f.len(), 1, "one finding per duplicated id");
    assert_eq!(f[0].url, PAGE2);
    assert_eq!(f[0].pointer, "/coverage_entries/1/id");
    assert_eq!(f[0].actual.as_deref(), Some("north"));
    assert!(f[0].message.contains("3 times"), "{}", f[0].message);
    assert!(f[0]
        .message
        .contains(&format!("{PAGE1}#/coverage_entries/0")));
}

#[test]
fn cov_order() {
    let pages = [
        (
            PAGE1,
            page(vec![
                conforming_entry("a", "2024-06-01T00:00:00Z"),
                conforming_entry("b", "2024-05-01T00:00:00Z"),
            ]),
        ),
        (
            PAGE2,
            page(vec![
                // Newer than the last entry of page 1, then another inversion: one finding.
                conforming_entry("c", "2024-07-01T00:00:00Z"),
                conforming_entry("d", "2024-01-01T00:00:00Z"),
                conforming_entry("e", "2024-02-01T00:00:00Z"),
            ]),
        ),
    ];
    let f = validate_server(&conforming_metadata(), META_URL, &refs(&pages));
    assert_eq!(ids(&f), set(&["COV-ORDER"]));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Error, "a MUST (CDS-SPEC-NOTES §3)");
    assert_eq!(f[0].url, PAGE2);
    assert_eq!(f[0].pointer, "/coverage_entries/0/updated");
}

#[test]
fn cov_order_compares_instants_and_skips_unparsable() {
    let pages = [(
        PAGE1,
        page(vec![
            // 10:00+02:00 is 08:00Z: later instant first, although the text sorts lower.
            conforming_entry("a", "2024-06-01T10:00:00+02:00"),
            conforming_entry("b", "2024-06-01T07:59:59.999Z"),
            conforming_entry("c", "not a date"),
            conforming_entry("d", "2024-06-01T07:59:59.999Z"), // equal is fine
            conforming_entry("e", "2024-01-01T00:00:00Z"),
        ]),
    )];
    let f = validate_server(&conforming_metadata(), META_URL, &refs(&pages));
    assert_eq!(ids(&f), set(&[]));
}
