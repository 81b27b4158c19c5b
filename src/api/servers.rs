//! `/v1/servers` and `/v1/findings`: crawled metadata documents and their conformance.

use axum::extract::{Path, Query, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiResult, AppState};
use crate::cds::Severity;
use crate::store::{FindingFilter, FindingRow, ServerDetail, ServerRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/servers", get(list))
        .route("/v1/servers/{id}", get(detail))
        .route("/v1/findings", get(findings))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerList {
    pub servers: Vec<ServerRow>,
}

/// `GET /v1/servers`: every crawled metadata document, by id.
#[utoipa::path(get, path = "/v1/servers", tag = "servers", operation_id = "list_servers",
    responses((status = 200, body = ServerList),
              (status = 400, description = "a query parameter (this endpoint takes none)", content_type = "application/problem+json"),
              (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ServerList>> {
    super::params::none(raw.as_deref())?;
    let servers = state.store.list_servers().await?;
    Ok(Json(ServerList { servers }))
}

/// `GET /v1/servers/{id}`: one server in full.
#[utoipa::path(get, path = "/v1/servers/{id}", tag = "servers", operation_id = "server_detail",
    params(("id" = i64, Path, description = "registry id of the server")),
    responses(
        (status = 200, body = ServerDetail),
        (status = 400, description = "`id` is not an integer, or a query parameter (this endpoint takes none)", content_type = "application/problem+json"),
        (status = 404, description = "no such server", content_type = "application/problem+json"),
        (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ServerDetail>> {
    super::params::none(raw.as_deref())?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("server id must be an integer, got {id:?}")))?;
    Ok(Json(state.store.server_detail(id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    /// `error`, `warning` (or `warn`) or `info`.
    #[param(pattern = "^(error|warning|warn|info)$")]
    severity: Option<String>,
    /// Exact rule id, e.g. `COV-COUNTRY` or `META-REQUIRED:name`.
    rule: Option<String>,
    /// Only findings about this server id.
    server: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// Page size, 1..1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingsPage {
    pub findings: Vec<FindingRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<i64>,
}

/// `GET /v1/findings`: stored conformance findings, by id, filtered.
#[utoipa::path(get, path = "/v1/findings", tag = "servers", operation_id = "list_findings",
    params(FindingsQuery),
    responses(
        (status = 200, body = FindingsPage),
        (status = 400, description = "bad parameter", content_type = "application/problem+json"),
        (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
pub async fn findings(
    State(state): State<AppState>,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<FindingsPage>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(s) = &q.severity {
        if Severity::parse(s).is_none() {
            return Err(ApiError::BadRequest(format!(
                "severity must be error, warning or info, got {s:?}"
            )));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1..1000".into()));
    }
    let rows = state
        .store
        .list_findings(&FindingFilter {
            severity: q.severity.as_deref().and_then(Severity::parse),
            rule: q.rule,
            server_id: q.server,
            after_id: q.cursor.unwrap_or(0),
            limit,
        })
        .await?;
    let next_cursor = if rows.len() as i64 == limit {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(FindingsPage {
        findings: rows,
        next_cursor,
    }))
}
