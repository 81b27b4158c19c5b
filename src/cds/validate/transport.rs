//! Transport findings raised by the crawler (CDS-SPEC-NOTES §1, §3): built here so their
//! wording and severity are the same wherever they are raised.

use super::rules;
use crate::cds::finding::{Finding, Severity};
use crate::cds::{LEGACY_WELL_KNOWN_PATH, WELL_KNOWN_PATH};

/// WK-LEGACY (info): the server answers only on the pre-rename well-known path.
pub fn finding_legacy_path(url: &str) -> Finding {
    Finding::new(
        rules::WK_LEGACY,
        Severity::Info,
        url,
        "",
        format!(
            "metadata found only at the legacy path {}; publish it at {} too",
            LEGACY_WELL_KNOWN_PATH, WELL_KNOWN_PATH
        ),
    )
    .expected(WELL_KNOWN_PATH)
}

/// SEED-HTTP-UPGRADED (info): an `http://` origin seed was tried over https because
/// `crawl.allow_http` does not name the host (the spec allows only https, WG1-01 §2).
pub fn finding_http_upgraded(seeded: &str, tried: &str) -> Finding {
    Finding::new(
        rules::SEED_HTTP_UPGRADED,
        Severity::Info,
        tried,
        "",
        format!(
            "the seed {seeded} asks for plain http, which crawl.allow_http does not allow for \
             this host; discovered over https instead"
        ),
    )
    .expected("https")
    .actual("http")
}

/// HTTP-NOT-HTTPS: the spec allows only HTTPS (error). When the operator explicitly
/// allowed plain HTTP for this host (tests, the loopback demo) it is `info`, so a good
/// fixture validates clean (CDS-SPEC-NOTES §1).
pub fn finding_plain_http(url: &str, allowed_by_operator: bool) -> Finding {
    let (severity, message) = if allowed_by_operator {
        (
            Severity::Info,
            "fetched over plain http, which the operator allowed for this host; the spec requires https",
        )
    } else {
        (
            Severity::Error,
            "the spec allows only https, but this document is served over plain http",
        )
    };
    Finding::new(rules::HTTP_NOT_HTTPS, severity, url, "", message)
        .expected("https")
        .actual("http")
}

/// WK-AUTH (error): the well-known endpoint answered 401/403; it must not require
/// authentication (CDS-SPEC-NOTES §1).
pub fn finding_auth_required(url: &str, status: u16) -> Finding {
    Finding::new(
        rules::WK_AUTH,
        Severity::Error,
        url,
        "",
        format!("the well-known metadata endpoint answered HTTP {status}; it must be public, without authentication"),
    )
    .expected("200 without authentication")
    .actual(status.to_string())
}

/// COV-PAGE-LOOP (error): `next` led back to a page already seen (CDS-SPEC-NOTES §3).
/// `url` is the page whose `next` closes the loop.
pub fn finding_page_loop(url: &str) -> Finding {
    Finding::new(
        rules::COV_PAGE_LOOP,
        Severity::Error,
        url,
        "/next",
        "the coverage listing loops: `next` points to a page already visited; the listing was cut here",
    )
}

/// COV-PAGE-LOOP (error) for an endless listing: more than `max_pages` pages
/// (CDS-SPEC-NOTES §3 treats both as the same guard).
pub fn finding_page_cap(url: &str, max_pages: usize) -> Finding {
    Finding::new(
        rules::COV_PAGE_LOOP,
        Severity::Error,
        url,
        "/next",
        format!("the coverage listing goes on past {max_pages} pages; it was cut here"),
    )
    .expected(format!("at most {max_pages} pages"))
}

/// JSON-LENIENT (error): the document only parsed after removing trailing commas
/// (see [`super::lenient`]); it is used, but it is not JSON.
pub fn finding_lenient_json(url: &str) -> Finding {
    Finding::new(
        rules::JSON_LENIENT,
        Severity::Error,
        url,
        "",
        "the document is not valid JSON (it has trailing commas); it was read leniently, but strict clients will reject it",
    )
    .expected("strict JSON (RFC 8259)")
}
