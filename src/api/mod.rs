//! The HTTP API (axum). Each area has its own `router()`; they are merged here.
//! Read endpoints are public; write endpoints need the admin bearer token.

mod admin;
mod edge;
mod error;
mod etag;
pub mod geojson;
mod headers;
mod hosts;
pub mod openapi;
pub mod ops;
mod page;
mod params;
mod publish;
mod ratelimit;
mod responses;
mod routes;
pub mod search;
mod servers;
pub mod state;
mod web;

pub use error::{ApiError, ApiResult, Problem};
pub use routes::Routes;
pub use state::AppState;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

/// Every API route with its OpenAPI operation ([`routes`]).
pub fn routes() -> Routes {
    Routes::new("ops")
        .add(__path_healthz, healthz)
        .add(__path_readyz, readyz)
        .merge(hosts::routes())
        .merge(servers::routes())
        .merge(search::routes())
        .merge(ops::routes())
        .merge(geojson::routes())
        .merge(publish::routes())
}

/// The whole application router: the API, its document and the map page.
pub fn router(state: AppState) -> Router {
    routes()
        .router
        .merge(openapi::router())
        .merge(web::router())
        .fallback(not_found)
        // The request span, body limit, rate limit, ETags, CORS and hardening headers in
        // one layer (see `edge` for why one).
        .layer(axum::middleware::from_fn_with_state(
            edge::Edge {
                limiter: ratelimit::Limiter::new(&state.config.api),
                state: state.clone(),
            },
            edge::edge,
        ))
        // Batch lookups carry up to 100,000 points; nothing else needs more.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CompressionLayer::new().compress_when(Compressible))
        .with_state(state)
}

/// tower-http's default rule for what to compress (bodies of 32 bytes or more, except
/// gRPC, images other than SVG, and event streams), reading the `Content-Type` once: its
/// `DefaultPredicate` looks the header up and converts it once per exception, three times
/// for every answer over 32 bytes, such as each lookup (~660 instructions).
#[derive(Clone, Copy)]
struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B: axum::body::HttpBody>(&self, r: &axum::http::Response<B>) -> bool {
        if !SizeAbove::default().should_compress(r) {
            return false;
        }
        let ct = r
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let not = |kind: &str, except: &str| !ct.starts_with(kind) || ct.starts_with(except);
        not("application/grpc", "application/grpc-web")
            && not("image/", "image/svg+xml")
            && !ct.starts_with("text/event-stream")
    }
}

/// Largest request body taken (413 above): 100,000 batch points are about 4 MB of JSON.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// Serve on an already-bound listener until `shutdown` resolves (tests bind port 0).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[utoipa::path(get, path = "/healthz", summary = "Liveness: the process answers",
    responses((status = 200, description = "the process is up", body = openapi::Health)))]
#[tracing::instrument(level = "debug", skip_all)]
async fn healthz() -> Json<openapi::Health> {
    Json(openapi::Health { status: "ok" })
}

/// Ready = the database answers and the index is loaded. When the database is down the
/// API still answers searches from memory, so this says `degraded` with a 503.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "ready", body = openapi::Readiness),
              (status = 503, description = "degraded: the database does not answer (searches are still served from memory)", body = openapi::Readiness)))]
#[tracing::instrument(level = "debug", skip_all)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Bounded: a database that does not answer must not hang the probe.
    let db = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let body = openapi::Readiness {
        status: if db { "ready" } else { "degraded" },
        database: if db { "ok" } else { "unreachable" },
        index_entries: state.index().len(),
        index_built_ms: state.index_built_ms(),
    };
    let code = if db {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

#[cfg(test)]
mod tests {
    use super::Compressible;
    use axum::http::{header, Response};
    use tower_http::compression::predicate::{DefaultPredicate, Predicate};

    /// The one-read predicate decides as tower-http's default on every kind of answer.
    #[test]
    fn compressible_is_the_default_predicate() {
        let types = [
            None,
            Some("application/json"),
            Some("text/html; charset=utf-8"),
            Some("application/grpc"),
            Some("application/grpc+proto"),
            Some("application/grpc-web"),
            Some("image/png"),
            Some("image/svg+xml"),
            Some("text/event-stream"),
            Some(""),
        ];
        for ct in types {
            for size in [0, 31, 32, 671, 100_000] {
                let mut r = Response::new(axum::body::Body::from(vec![b'x'; size]));
                if let Some(ct) = ct {
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, ct.parse().unwrap());
                }
                assert_eq!(
                    Compressible.should_compress(&r),
                    DefaultPredicate::new().should_compress(&r),
                    "{ct:?}, {size} bytes"
                );
            }
        }
    }
}
