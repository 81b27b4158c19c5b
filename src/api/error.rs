//! The API's one error type, rendered as RFC 9457 `application/problem+json`.
//! Database and internal errors are logged and answered with a 500 that leaks nothing.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

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
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "Bad request", d.clone()),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "Not found", d.clone()),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "this endpoint needs `Authorization: Bearer <admin token>`".into(),
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "Forbidden", d.clone()),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "Conflict", d.clone()),
            ApiError::TooManyRequests(d) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                d.clone(),
            ),
            ApiError::Unavailable(d) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                d.clone(),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
                "an internal error occurred; it has been logged".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(d) = &self {
            tracing::error!(error = %d, "internal error");
        }
        let (status, title, detail) = self.parts();
        let body = json!({
            "type": "about:blank",
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("no such resource".into()),
            StoreError::Conflict(c) => ApiError::Conflict(c),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
