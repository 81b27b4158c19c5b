//! Error answers that several operations share, written once for their
//! `#[utoipa::path(responses(...))]` lists. Every one has a [`Problem`] body; an
//! operation's own errors (a 404 for its resource, a 409, a geocoder's 502) stay beside it.
//!
//! These types exist for the OpenAPI document only: the handlers answer with
//! [`super::ApiError`], which renders the same [`Problem`].
#![allow(dead_code)] // never built: only their `IntoResponses` impls are used

use utoipa::IntoResponses;

use super::error::Problem;

/// 400: the request is refused as written.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "a query parameter, path id or body is refused (unknown key, bad value, or a parameter where the operation takes none); `detail` names it",
    content_type = "application/problem+json"
)]
pub struct BadRequest(Problem);

/// 401 and 403 of the write endpoints (`Authorization: Bearer <admin_token>`).
#[derive(IntoResponses)]
pub enum AdminOnly {
    #[response(
        status = 401,
        description = "missing or wrong bearer token",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "writes are disabled (no `admin_token` configured)",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
}

/// 413: a body over `MAX_BODY_BYTES`.
#[derive(IntoResponses)]
#[response(
    status = 413,
    description = "the body is larger than the API accepts (8 MiB)",
    content_type = "application/problem+json"
)]
pub struct TooLarge(Problem);

/// 503 from a store read or write: the database is down or overloaded. The same request
/// works once it is back.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "the database does not answer",
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "seconds to wait before retrying (5)"))
)]
pub struct DbDown(Problem);
