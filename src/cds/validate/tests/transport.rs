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
            rules::COV_PAGE_LOOP,
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
