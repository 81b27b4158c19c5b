//! The request policy every route shares, as one middleware: body size limit, per-IP rate
//! limit, search ETags, CORS for the public reads and the hardening headers.
//!
//! Why one: each of these was its own `from_fn` layer, plus tower-http's `CorsLayer`, and
//! every such layer boxes the rest of the stack and its future on every request. Under
//! `wrk` on 100,000 territories the stack took ~12 µs of the ~19 µs of user CPU that
//! `serve` spent per `/healthz` (a bare hyper server: 3.5 µs); see docs/PERFORMANCE.md
//! "HTTP at 100,000 territories". The rules themselves live beside their reasons:
//! [`headers`](super::headers), [`ratelimit`](super::ratelimit), [`etag`](super::etag).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

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
///
/// The request's span and its two events are made here too, as tower-http's `TraceLayer`
/// made them (the span at debug level, named `request`, with the method and the route that
/// matched; "started processing request" and "finished processing request" with the
/// status and latency at debug; "response failed" at error for a 5xx): that layer was one
/// more boxed service and future around every request, and a body wrapper polled with
/// every frame: 1,600 instructions per `/healthz` with the span disabled
/// (docs/PERFORMANCE.md, "The lookup's own work").
pub async fn edge(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let span = request_span(&req);
    let start = Instant::now();
    let policy = Policy::of(&req);
    let preflight = req.method() == Method::OPTIONS;
    async move {
        tracing::debug!("started processing request");
        let mut resp = if preflight {
            policy.preflight()
        } else {
            admit(&edge, req, next).await
        };
        policy.finish(preflight, resp.headers_mut());
        let status = resp.status().as_u16();
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        if resp.status().is_server_error() {
            tracing::error!(status, latency_ms, "response failed");
        } else {
            tracing::debug!(status, latency_ms, "finished processing request");
        }
        resp
    }
    .instrument(span)
    .await
}

/// Named by the route that matched (`/v1/servers/{id}`), not the raw URI, so spans group
/// per endpoint and ids stay out of span names. Debug level: a disabled span costs a
/// request nothing.
fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::debug_span!("request", method = %req.method(), route)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::{edge, Edge};
    use crate::api::{ratelimit::Limiter, AppState};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The span and events `TraceLayer` made: a debug span named by the matched route, the
    /// start and finish at debug, a 5xx at error.
    #[tokio::test]
    async fn requests_are_traced_by_route_and_server_errors_logged() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::empty_for_tests(dir.path()).await;
        let app = Router::new()
            .route("/boom/{id}", get(|| async { StatusCode::BAD_GATEWAY }))
            .route("/fine", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Edge {
                    limiter: Limiter::new(&state.config.api),
                    state,
                },
                edge,
            ));
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .with_writer(move || sink.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        for (path, code) in [("/boom/42", 502), ("/fine", 200)] {
            let req = Request::get(path).body(Body::empty()).unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status().as_u16(), code);
        }
        let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        let find = |needle: &str| lines.iter().find(|l| l.contains(needle)).copied();
        let failed = find("response failed").expect("the 5xx is logged");
        assert!(failed.contains("ERROR"), "{failed}");
        assert!(failed.contains(r#"route="/boom/{id}""#), "{failed}");
        assert!(failed.contains("status=502"), "{failed}");
        assert!(
            !failed.contains("/boom/42"),
            "ids stay out of the span: {failed}"
        );
        let finished = find("finished processing request").expect("the 200 is logged");
        assert!(
            finished.contains("DEBUG") && finished.contains(r#"route="/fine""#),
            "{finished}"
        );
        assert!(finished.contains("status=200"), "{finished}");
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("started processing request"))
                .count(),
            2
        );
    }
}
