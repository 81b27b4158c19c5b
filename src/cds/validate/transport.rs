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

/// COV-PAGE-CAP (warn): the listing goes on past `crawl.max_pages` pages. That is the
/// crawler's limit, not a loop nor a defect of the server (CDS-SPEC-NOTES §3); the
/// entries of the unread pages keep their last known good state. `url` is the last page
/// read, whose `next` was not followed.
pub fn finding_page_cap(url: &str, max_pages: usize) -> Finding {
    Finding::new(
        rules::COV_PAGE_CAP,
        Severity::Warning,
        url,
        "/next",
        format!(
            "the coverage listing goes on past {max_pages} pages (crawl.max_pages); the rest was not read, and the entries of unread pages keep their last known state"
        ),
    )
    .expected(format!("at most {max_pages} pages"))
}

/// WK-REDIRECT (warn): the well-known URL answered 307/308. Followed like 301/302 (the
/// server is recorded as moved), but the spec names 301/302 (CDS-SPEC-NOTES §1).
pub fn finding_redirect(from: &str, status: u16, to: &str) -> Finding {
    Finding::new(
        rules::WK_REDIRECT,
        Severity::Warning,
        from,
        "",
        format!(
            "the well-known URL answered {status} to {to}; a moved server answers 301 or 302 (followed as a move all the same)"
        ),
    )
    .expected("301 or 302")
    .actual(status.to_string())
}

/// How a linked document failed, for the §5a findings: the class and, for an HTTP
/// error, its status.
fn failure_text(class: &str, status: Option<u16>, detail: &str) -> String {
    match status {
        Some(s) => format!("HTTP {s} ({class}: {detail})"),
        None => format!("{class}: {detail}"),
    }
}

/// REG-LOOP (info): `n` coverage entries of the server at `url` are copies that name
/// this registry in `cds_registry_origin.via`, or passed through more than
/// [`crate::cds::origin::MAX_VIA`] registries; `first` is where the first one is. They are
/// not imported, so registries that crawl each other do not multiply entries
/// (CDS-SPEC-NOTES §8).
pub fn finding_registry_loop(first_page: &str, first_pointer: &str, n: usize) -> Finding {
    Finding::new(
        rules::REG_LOOP,
        Severity::Info,
        first_page,
        format!("{first_pointer}/{}", crate::cds::origin::ORIGIN_FIELD),
        format!(
            "{n} coverage entr{} came back through this registry or passed through more than {} registries (`{}.via`); not imported again",
            if n == 1 { "y" } else { "ies" },
            crate::cds::origin::MAX_VIA,
            crate::cds::origin::ORIGIN_FIELD,
        ),
    )
    .actual(format!("{n} looped entries"))
}

/// COV-PAGE-FETCH (error): a coverage page could not be fetched or read (WG1-01 §8.1,
/// CDS-SPEC-NOTES §5a). `url` is the page; the listing is incomplete, so no entry of
/// this server is treated as removed.
pub fn finding_page_fetch(url: &str, class: &str, status: Option<u16>, detail: &str) -> Finding {
    Finding::new(
        rules::COV_PAGE_FETCH,
        Severity::Error,
        url,
        "",
        format!(
            "coverage page could not be used: {}; the listing is incomplete, so the entries keep their last known state",
            failure_text(class, status, detail)
        ),
    )
    .actual(failure_text(class, status, detail))
}

/// COV-GEO-FETCH (error): the `geojson_resource` of an entry could not be fetched or read
/// (CDS-SPEC-NOTES §5a). Reported on the entry (`page_url` + `pointer`); `kept` says the
/// entry keeps the territory last read from the same URL.
pub fn finding_geo_fetch(
    page_url: &str,
    pointer: &str,
    geo_url: &str,
    failure: (&str, Option<u16>, &str),
    kept: bool,
) -> Finding {
    let (class, status, detail) = failure;
    let then = if kept {
        "the entry keeps the territory last read from this URL"
    } else {
        "the entry is stored without a territory"
    };
    Finding::new(
        rules::COV_GEO_FETCH,
        Severity::Error,
        page_url,
        pointer,
        format!(
            "geojson_resource {geo_url} could not be used: {}; {then}",
            failure_text(class, status, detail)
        ),
    )
    .expected("a GeoJSON document")
    .actual(failure_text(class, status, detail))
}

/// OAUTH-FETCH (error): the `oauth_metadata` document could not be fetched or read
/// (CDS-SPEC-NOTES §5a); the server is stored without OAuth offers. Reported on the
/// metadata document's `/oauth_metadata`.
pub fn finding_oauth_fetch(
    metadata_url: &str,
    oauth_url: &str,
    failure: (&str, Option<u16>, &str),
) -> Finding {
    let (class, status, detail) = failure;
    Finding::new(
        rules::OAUTH_FETCH,
        Severity::Error,
        metadata_url,
        "/oauth_metadata",
        format!(
            "oauth_metadata {oauth_url} could not be used: {}; the server is listed without OAuth offers",
            failure_text(class, status, detail)
        ),
    )
    .expected("an OAuth authorization server metadata document")
    .actual(failure_text(class, status, detail))
}

/// COV-IDS-FILTER (error): the coverage URL did not answer `ids=<id>` with exactly that
/// entry (WG1-01 §3: servers MUST accept the filter). Probed by `validate` only.
pub fn finding_ids_filter(coverage_url: &str, id: &str, got: &str) -> Finding {
    Finding::new(
        rules::COV_IDS_FILTER,
        Severity::Error,
        coverage_url,
        "",
        format!(
            "the coverage listing does not honour the `ids` filter: asked for ids={id}, got {got}"
        ),
    )
    .expected(format!("exactly the entry {id}"))
    .actual(got)
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
