//! ETags for the search responses. Every answer of the search endpoints is a function of
//! the index generation and the request URI, so the tag is computed before the handler
//! runs and a matching `If-None-Match` costs no search at all. Territories
//! (`/v1/coverage/{id}/geometry`) and the published CDS documents are tagged by their
//! content instead (`publish::conditional`): another registry re-crawls them, and a tag
//! that changed with every index generation would make it download them all again.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::hash::BuildHasher;

use super::AppState;

fn is_search(path: &str) -> bool {
    matches!(
        path,
        "/v1/entities" | "/v1/coverage" | "/v1/lookup" | "/v1/facets" | "/v1/export"
    )
}

/// The tag of a search request (`GET` of a search path): the index build time and
/// generation and a hash of the path and query. `None` for every other request.
pub fn search_tag(state: &AppState, req: &Request) -> Option<HeaderValue> {
    if req.method() != Method::GET || !is_search(req.uri().path()) {
        return None;
    }
    // A weak tag needs no cryptographic hash, and nothing about it has to be formatted:
    // foldhash of the path and query, and the hex digits written into a buffer on the
    // stack. SHA-256 of the formatted URI was ~7k instructions per lookup, SipHash and
    // `format!` ~2k (docs/PERFORMANCE.md, "HTTP lookup vs trivial route"). The index build
    // time tells process restarts apart, where the generation counter starts over.
    let uri = req.uri();
    let hash = foldhash::fast::FixedState::default().hash_one((uri.path(), uri.query()));
    Some(weak_tag([
        state.index_built_ms() as u64,
        state.index_generation() as u64,
        hash,
    ]))
}

/// `W/"a-b-c"`: the three numbers in lowercase hex without leading zeros.
fn weak_tag(parts: [u64; 3]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // `W/"` + 3 × 16 digits + 2 dashes + `"`.
    let mut buf = [0u8; 54];
    buf[..3].copy_from_slice(b"W/\"");
    let mut n = 3;
    for (i, v) in parts.into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'-';
            n += 1;
        }
        let digits = (16 - v.leading_zeros() as usize / 4).max(1);
        for d in (0..digits).rev() {
            buf[n] = HEX[(v >> (4 * d)) as usize & 15];
            n += 1;
        }
    }
    buf[n] = b'"';
    HeaderValue::from_bytes(&buf[..=n]).expect("hex digits and quotes are a valid header")
}

/// A 304 carrying the tag when the request's `If-None-Match` names it (or `*`).
pub fn not_modified(req: &Request, tag: &HeaderValue) -> Option<Response> {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().as_bytes() == tag.as_bytes() || t.trim() == "*")
        });
    matches.then(|| {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, tag.clone());
        r
    })
}

#[cfg(test)]
mod tests {
    use super::weak_tag;

    #[test]
    fn weak_tag_is_the_three_numbers_in_hex() {
        assert_eq!(weak_tag([0, 1, 0xabc]).as_bytes(), b"W/\"0-1-abc\"");
        let big = weak_tag([u64::MAX, 0x10, 0x0123_4567_89ab_cdef]);
        assert_eq!(
            big.to_str().unwrap(),
            format!(
                "W/\"{:x}-{:x}-{:x}\"",
                u64::MAX,
                0x10,
                0x0123_4567_89ab_cdef_u64
            )
        );
    }
}
