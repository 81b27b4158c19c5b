//! HTTP validators (RFC 9110 §8.8, §13.1): the strong content-hash ETag and the
//! HTTP-date `Last-Modified` that the registry's own CDS documents (`api::publish`) and
//! the demo's fixture servers both send, and the one rule by which both answer a
//! conditional request with 304.

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// HTTP-date format (RFC 9110 §5.6.7, IMF-fixdate).
pub const HTTP_DATE: &str = "%a, %d %b %Y %H:%M:%S GMT";

/// A strong validator for `body`: the quoted hex of the first 16 bytes of its SHA-256.
pub fn strong_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// The HTTP date of `secs` since the epoch.
pub fn http_date(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format(HTTP_DATE)
        .to_string()
}

/// Does the request's validator say it holds this version? `If-None-Match` names `etag`
/// (weak comparison, §13.1.2) or is `*`; without `If-None-Match`, `If-Modified-Since` is
/// not older than `last_modified_secs` (§13.2.2: the tag decides when both come).
pub fn not_modified(req: &HeaderMap, etag: &str, last_modified_secs: i64) -> bool {
    let text = |h| {
        req.get(h)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    match text(header::IF_NONE_MATCH) {
        Some(inm) => none_match_hits(inm, etag),
        None => text(header::IF_MODIFIED_SINCE)
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .is_some_and(|since| since.timestamp() >= last_modified_secs),
    }
}

/// `If-None-Match` (weak comparison, RFC 9110 §13.1.2) matches `etag`?
fn none_match_hits(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_parsing() {
        assert!(none_match_hits("\"abc\"", "\"abc\""));
        assert!(none_match_hits("W/\"abc\"", "\"abc\""));
        assert!(none_match_hits("\"x\", \"abc\"", "\"abc\""));
        assert!(none_match_hits("*", "\"abc\""));
        assert!(!none_match_hits("\"abd\"", "\"abc\""));
    }

    #[test]
    fn etag_is_strong_and_stable() {
        let a = strong_etag(b"hello");
        assert_eq!(a, strong_etag(b"hello"));
        assert_ne!(a, strong_etag(b"hello!"));
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 34);
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }
}
