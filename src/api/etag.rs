//! ETags for the search responses. Every answer of the search endpoints is a function of
//! the index generation and the request URI, so the tag is computed before the handler
//! runs and a matching `If-None-Match` costs no search at all. Territories
//! (`/v1/coverage/{id}/geometry`) and the published CDS documents are tagged by their
//! content instead (`publish::conditional`): another registry re-crawls them, and a tag
//! that changed with every index generation would make it download them all again.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::hash::{Hash, Hasher};

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
    // A weak tag needs no cryptographic hash: SipHash of the path and query (no string
    // built) is what it costs per request; SHA-256 of the formatted URI was ~7k
    // instructions per lookup (PERFORMANCE.md, "Where the time goes"). The index build
    // time tells process restarts apart, where the generation counter starts over.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    req.uri().path().hash(&mut h);
    req.uri().query().hash(&mut h);
    let tag = format!(
        "W/\"{:x}-{:x}-{:016x}\"",
        state.index_built_ms(),
        state.index_generation(),
        h.finish()
    );
    Some(HeaderValue::from_str(&tag).expect("hex tag is a valid header"))
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
