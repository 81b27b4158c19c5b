//! ETags for the search responses. Every answer of the search endpoints is a function of
//! the index generation and the request URI, so the tag is computed before the handler
//! runs and a matching `If-None-Match` costs no search at all.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;

fn is_search(path: &str) -> bool {
    matches!(
        path,
        "/v1/entities" | "/v1/coverage" | "/v1/lookup" | "/v1/facets" | "/v1/export"
    ) || (path.starts_with("/v1/coverage/") && path.ends_with("/geometry"))
}

pub async fn etag(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET || !is_search(req.uri().path()) {
        return next.run(req).await;
    }
    let mut h = Sha256::new();
    h.update(state.index_generation().to_le_bytes());
    h.update(state.index_built_ms().to_le_bytes());
    h.update(req.uri().to_string().as_bytes());
    let tag = format!("W/\"{}\"", hex::encode(&h.finalize()[..12]));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let value = HeaderValue::from_str(&tag).expect("hex tag is a valid header");
    if matches {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, value);
        return r;
    }
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::OK {
        resp.headers_mut().insert(header::ETAG, value);
    }
    resp
}
