//! Transport findings (CDS-SPEC-NOTES §1, §3).

use super::*;

#[test]
fn transport_finding_helpers() {
    let u = "https://util.example/.well-known/carbon-data-spec.json";
    let cases = [
        (finding_legacy_path(u), rules::WK_LEGACY, Severity::Info),
        (
            finding_plain_http(u, false),
            rules::HTTP_NOT_HTTPS,
            Severity::Error,
        ),
        (
            finding_plain_http(u, true),
            rules::HTTP_NOT_HTTPS,
            Severity::Info,
        ),
        (
            finding_auth_required(u, 401),
            rules::WK_AUTH,
            Severity::Error,
        ),
        (finding_page_loop(u), rules::COV_PAGE_LOOP, Severity::Error),
        (
            finding_page_cap(u, 1000),
            rules::COV_PAGE_CAP,
            Severity::Warning,
        ),
        (
            finding_redirect(u, 308, "https://new.example/m.json"),
            rules::WK_REDIRECT,
            Severity::Warning,
        ),
        (
            finding_page_fetch(u, "http_status", Some(404), "HTTP 404"),
            rules::COV_PAGE_FETCH,
            Severity::Error,
        ),
        (
            finding_geo_fetch(
                u,
                "/coverage_entries/0/geojson_resource",
                "https://g",
                ("http_status", Some(410), "gone"),
                true,
            ),
            rules::COV_GEO_FETCH,
            Severity::Error,
        ),
        (
            finding_oauth_fetch(u, "https://o", ("invalid_json", None, "bad")),
            rules::OAUTH_FETCH,
            Severity::Error,
        ),
        (
            finding_ids_filter(u, "a", "2 entries"),
            rules::COV_IDS_FILTER,
            Severity::Error,
        ),
        (
            finding_lenient_json(u),
            rules::JSON_LENIENT,
            Severity::Error,
        ),
    ];
    for (f, rule, severity) in cases {
        assert_eq!(
            (f.rule.as_str(), f.severity, f.url.as_str()),
            (rule, severity, u)
        );
        assert!(!f.message.is_empty());
    }
    assert_eq!(finding_auth_required(u, 403).actual.as_deref(), Some("403"));
}
