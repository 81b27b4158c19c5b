//! The API's one error type, rendered as RFC 9457 `application/problem+json`.
//! Internal errors are logged and answered with a 500 that leaks nothing; a database that
//! does not answer (connection refused or lost, pool exhausted, disk I/O) is a 503 with
//! `Retry-After`, since the same request will work once it is back.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::StoreError;

/// The body of every error answer: an RFC 9457 problem details object, sent as
/// `application/problem+json`. The OpenAPI document names this schema for every error
/// response, so a client has one shape to parse.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank` (RFC 9457 §4.2.1): the status and `title` say what happened.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub type_: String,
    /// The same for every occurrence of the status (§3.1.4), e.g. `Bad request`.
    #[schema(example = "Bad request")]
    pub title: String,
    /// The HTTP status, repeated (§3.1.2).
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong in this request, and what to change (§3.1.3).
    #[schema(example = "lat must be a number in -90..90, got \"x\"")]
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    /// 503 with `Retry-After: 5`: a dependency (the database, the crawler) is missing.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 503 with `Retry-After: 1`: every slot for expensive requests is taken.
    #[error("busy: {0}")]
    Busy(String),
    /// 413: the request body is larger than the API takes.
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// 422: the request is well formed but would cost more work than one request may.
    #[error("too costly: {0}")]
    TooCostly(String),
    /// 502: a service we depend on per request (the geocoder) failed.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// 504: that service did not answer in time.
    #[error("gateway timeout: {0}")]
    GatewayTimeout(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The status and the problem's `title` (RFC 9457 §3.1.4: the same for every
    /// occurrence of the problem type).
    fn status(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::BadRequest(_) => (S::BAD_REQUEST, "Bad request"),
            ApiError::NotFound(_) => (S::NOT_FOUND, "Not found"),
            ApiError::Unauthorized => (S::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (S::FORBIDDEN, "Forbidden"),
            ApiError::Conflict(_) => (S::CONFLICT, "Conflict"),
            ApiError::TooManyRequests(_) => (S::TOO_MANY_REQUESTS, "Too many requests"),
            ApiError::Unavailable(_) | ApiError::Busy(_) => {
                (S::SERVICE_UNAVAILABLE, "Service unavailable")
            }
            ApiError::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "Payload too large"),
            ApiError::TooCostly(_) => (S::UNPROCESSABLE_ENTITY, "Request too costly"),
            ApiError::BadGateway(_) => (S::BAD_GATEWAY, "Bad gateway"),
            ApiError::GatewayTimeout(_) => (S::GATEWAY_TIMEOUT, "Gateway timeout"),
            ApiError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "Internal server error"),
        }
    }

    /// The problem's `detail`: what to fix. An internal error's own text is logged, never
    /// sent.
    fn detail(&self) -> String {
        match self {
            ApiError::Unauthorized => {
                "this endpoint needs `Authorization: Bearer <admin token>`".into()
            }
            ApiError::Internal(_) => "an internal error occurred; it has been logged".into(),
            ApiError::BadRequest(d)
            | ApiError::NotFound(d)
            | ApiError::Forbidden(d)
            | ApiError::Conflict(d)
            | ApiError::TooManyRequests(d)
            | ApiError::Unavailable(d)
            | ApiError::Busy(d)
            | ApiError::TooLarge(d)
            | ApiError::TooCostly(d)
            | ApiError::BadGateway(d)
            | ApiError::GatewayTimeout(d) => d.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(d) = &self {
            tracing::error!(error = %d, "internal error");
        }
        let (status, title) = self.status();
        let detail = self.detail();
        let body = Problem {
            type_: "about:blank".into(),
            title: title.into(),
            status: status.as_u16(),
            detail,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        let retry = match &self {
            ApiError::Unavailable(_) => Some("5"),
            ApiError::Busy(_) => Some("1"),
            _ => None,
        };
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static(secs));
        }
        resp
    }
}

impl From<crate::geocode::GeocodeError> for ApiError {
    fn from(e: crate::geocode::GeocodeError) -> ApiError {
        use crate::geocode::GeocodeError as G;
        let detail = e.to_string();
        match e {
            G::NotConfigured | G::BadAddress(_) => ApiError::BadRequest(detail),
            G::NotFound => ApiError::NotFound(detail),
            G::Upstream(_) => ApiError::BadGateway(detail),
            G::Timeout(_) => ApiError::GatewayTimeout(detail),
        }
    }
}

/// Is `e` the database being unreachable or overloaded (worth a retry later), rather than
/// a bug in a query? Connection-level failures, the pool, and the server-side codes for
/// "going away / not accepting connections / out of resources".
pub(crate) fn database_unavailable(e: &sqlx::Error) -> bool {
    use sqlx::postgres::PgDatabaseError;
    use sqlx::sqlite::SqliteError;
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            if let Some(pg) = d.try_downcast_ref::<PgDatabaseError>() {
                let code = pg.code();
                // PostgreSQL appendix A: class 08 connection exception, class 53
                // insufficient resources (too many connections, disk full, out of
                // memory), 57P01..57P03 shutdown / cannot connect now, 55000 as raised
                // for "database is not currently accepting connections".
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(code, "57P01" | "57P02" | "57P03" | "55000")
            } else if let Some(lite) = d.try_downcast_ref::<SqliteError>() {
                // Primary result codes (the low byte of the extended code): BUSY 5,
                // LOCKED 6, NOMEM 7, IOERR 10, FULL 13, CANTOPEN 14, PROTOCOL 15.
                let code: i64 = sqlx::error::DatabaseError::code(lite)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15)
            } else {
                false
            }
        }
        _ => false,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("no such resource".into()),
            StoreError::Conflict(c) => ApiError::Conflict(c),
            StoreError::Db(e) if database_unavailable(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable("the database does not answer; retry later".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A JSON body the extractor refused: 413 when it is over the body limit (the
/// extractor's own answer would be a plain-text 400/413), else 400 with its reason.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the request body is larger than the API accepts ({} bytes)",
                super::MAX_BODY_BYTES
            ))
        } else {
            ApiError::BadRequest(e.body_text())
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
