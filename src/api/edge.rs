//! The request policy every route shares, as one middleware: body size limit, per-IP rate
//! limit, search ETags, CORS for the public reads and the hardening headers.
//!
//! Why one: each of these was its own `from_fn` layer, plus tower-http's `CorsLayer`, and
//! every such layer boxes the rest of the stack and its future on every request. Under
//! `wrk` on 100,000 territories the stack took ~12 µs of the ~19 µs of user CPU that
//! `serve` spent per `/healthz` (a bare hyper server: 3.5 µs); see docs/PERFORMANCE.md
//! "HTTP at 100,000 territories". The rules themselves live beside their reasons:
//! [`headers`](super::headers), [`ratelimit`](super::ratelimit), [`etag`](super::etag).

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::headers::{body_limit, Policy};
use super::ratelimit::Limiter;
use super::{etag, AppState};

/// What the middleware needs: the state (index generation for ETags) and the limiter.
#[derive(Clone)]
pub struct Edge {
    pub state: AppState,
    pub limiter: Limiter,
}

/// Order as the separate layers had it: preflights are answered first (never limited),
/// then oversized bodies (413) and clients over their rate (429) are refused, then a
/// search whose tag the client holds is a 304 without running the search.
pub async fn edge(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let policy = Policy::of(&req);
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight {
        policy.preflight()
    } else {
        admit(&edge, req, next).await
    };
    policy.finish(preflight, resp.headers_mut());
    resp
}

async fn admit(edge: &Edge, req: Request, next: Next) -> Response {
    if let Some(refused) = body_limit(&req).or_else(|| edge.limiter.check(&req)) {
        return refused;
    }
    let Some(tag) = etag::search_tag(&edge.state, &req) else {
        return next.run(req).await;
    };
    if let Some(not_modified) = etag::not_modified(&req, &tag) {
        return not_modified;
    }
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::OK {
        resp.headers_mut().insert(header::ETAG, tag);
    }
    resp
}
