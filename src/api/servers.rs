//! `/v1/servers` and `/v1/findings`: crawled metadata documents and their conformance.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::Problem;
use super::page::{self, slice_by_id, split_extra, Id, Listing, PageQuery};
use super::params::Params;
use super::responses::{BadRequest, DbDown};
use super::routes::Routes;
use super::{ApiError, ApiResult, AppState};
use crate::cds::Severity;
use crate::store::{FindingFilter, FindingRow, ServerDetail, ServerRow};

pub fn routes() -> Routes {
    Routes::new("servers")
        .add(__path_list, list)
        .add(__path_detail, detail)
        .add(__path_findings, findings)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerList {
    pub servers: Vec<ServerRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/servers`: every crawled metadata document, by id, a page at a time.
#[utoipa::path(get, path = "/v1/servers", operation_id = "list_servers",
    params(PageQuery),
    responses((status = 200, body = ServerList),
              BadRequest,
              DbDown))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<ServerList>> {
    // Paged here, as `/v1/hosts` is: one server per crawled document is a small table.
    let (servers, next_cursor) = slice_by_id(
        state.store.list_servers().await?,
        Listing::Servers,
        &q,
        |s| s.id,
    )?;
    Ok(Json(ServerList {
        servers,
        next_cursor,
    }))
}

/// `GET /v1/servers/{id}`: one server in full.
#[utoipa::path(get, path = "/v1/servers/{id}", operation_id = "server_detail",
    params(("id" = i64, Path, description = "registry id of the server")),
    responses(
        (status = 200, body = ServerDetail),
        BadRequest,
        (status = 404, description = "no such server", body = Problem, content_type = "application/problem+json"),
        DbDown))]
#[tracing::instrument(level = "debug", skip_all, fields(id = id))]
pub async fn detail(
    State(state): State<AppState>,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ServerDetail>> {
    super::params::none(raw.as_deref())?;
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
    /// `next_cursor` of the previous page (a finding id is taken too, as before cursors
    /// were opaque).
    cursor: Option<String>,
    /// Page size, 1..1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingsPage {
    pub findings: Vec<FindingRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/findings`: stored conformance findings, by id, filtered.
#[utoipa::path(get, path = "/v1/findings", operation_id = "list_findings",
    params(FindingsQuery),
    responses(
        (status = 200, body = FindingsPage),
        BadRequest,
        DbDown))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn findings(
    State(state): State<AppState>,
    Params(q): Params<FindingsQuery>,
) -> ApiResult<Json<FindingsPage>> {
    if let Some(s) = &q.severity {
        if Severity::parse(s).is_none() {
            return Err(ApiError::BadRequest(format!(
                "severity must be error, warning or info, got {s:?}"
            )));
        }
    }
    let limit = page::limit(q.limit, 100, 1000)?;
    let after_id = match &q.cursor {
        Some(c) => Listing::Findings.id(c, true)?,
        None => 0,
    };
    let rows = state
        .store
        .list_findings(&FindingFilter {
            severity: q.severity.as_deref().and_then(Severity::parse),
            rule: q.rule,
            server_id: q.server,
            after_id,
            limit: limit + 1,
        })
        .await?;
    let (findings, next_cursor) = split_extra(rows, limit, Listing::Findings, |r| r.id);
    Ok(Json(FindingsPage {
        findings,
        next_cursor,
    }))
}
