//! `/v1/servers` and `/v1/findings`: crawled metadata documents and their conformance.

use axum::extract::{Path, Query, State};
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

// ---- Documentation of the store's row types (checked against their serialisation in
// `openapi`'s tests, so the document cannot drift from what the handlers send). ----

/// One crawled metadata document (a CDS server). Documents the store's `ServerRow`.
#[derive(ToSchema)]
#[schema(as = Server)]
#[allow(dead_code)]
pub struct ServerDoc {
    pub id: i64,
    /// The URL the metadata document was finally fetched from (after redirects).
    pub url: String,
    pub host_id: i64,
    /// The server whose `related_metadata` led here.
    pub parent_id: Option<i64>,
    /// `related_metadata` hops from a seeded host (0 = seeded).
    pub depth: i64,
    /// `active`, `stale` (failing, still searchable) or `gone` (out of search).
    pub status: String,
    pub name: String,
    pub capabilities: Vec<String>,
    /// Number of coverage entries.
    pub entries: i64,
    /// Epoch milliseconds.
    pub first_seen_ms: i64,
    pub last_success_ms: i64,
    pub last_changed_ms: i64,
    pub last_failure_ms: Option<i64>,
    pub last_failure: Option<String>,
}

/// A conformance finding as stored. Documents the store's `FindingRow`.
#[derive(ToSchema)]
#[schema(as = Finding)]
#[allow(dead_code)]
pub struct FindingDoc {
    pub id: i64,
    pub server_id: Option<i64>,
    pub host_id: Option<i64>,
    pub run_id: i64,
    /// Rule id, e.g. `COV-COUNTRY` or `META-REQUIRED:name` (see the README's rule table).
    pub rule: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// What to fix.
    pub message: String,
    /// The document the finding is about.
    pub url: String,
    /// RFC 6901 JSON pointer inside that document (`""` = the whole document).
    pub pointer: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// A server linked through `related_metadata`. Documents the store's `ServerRef`.
#[derive(ToSchema)]
#[schema(as = ServerRef)]
#[allow(dead_code)]
pub struct ServerRefDoc {
    pub id: i64,
    pub url: String,
    pub name: String,
    pub status: String,
}

/// The outcome of one crawl of the server's host. Documents the store's `OutcomeRow`.
#[derive(ToSchema)]
#[schema(as = CrawlOutcome)]
#[allow(dead_code)]
pub struct OutcomeDoc {
    pub run_id: i64,
    pub host_id: i64,
    /// `ok`, `dns`, `connect`, `tls`, `timeout`, `http_status`, `too_large`,
    /// `invalid_json`, `blocked`, `too_many_redirects`, `invalid` or `limit`.
    pub outcome: String,
    pub detail: Option<String>,
    pub http_status: Option<i64>,
    pub url: Option<String>,
    /// Epoch milliseconds.
    pub started_ms: i64,
    pub finished_ms: i64,
    pub docs_fetched: i64,
    pub docs_unchanged: i64,
    pub bytes: i64,
}

/// A server with its metadata, coverage entries, findings, crawl history and related
/// servers. Documents the store's `ServerDetail`.
#[derive(ToSchema)]
#[schema(as = ServerDetail)]
#[allow(dead_code)]
pub struct ServerDetailDoc {
    #[serde(flatten)]
    pub server: ServerDoc,
    /// The metadata document as published.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// URL of the parent server (`parent_id`).
    pub parent_url: Option<String>,
    /// Servers whose parent this one is.
    pub related: Vec<ServerRefDoc>,
    /// The stored coverage entries: the WG1-01 §4 fields plus `server_id`, `page_url`,
    /// `territory_id` and `raw` (the entry exactly as published).
    #[schema(value_type = Vec<Object>)]
    pub coverage: Vec<serde_json::Value>,
    pub findings: Vec<FindingDoc>,
    /// The last 50 crawls of the server's host, newest first.
    pub crawl_history: Vec<OutcomeDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerList {
    #[schema(value_type = Vec<ServerDoc>)]
    pub servers: Vec<ServerRow>,
}

/// `GET /v1/servers`: every crawled metadata document, by id.
#[utoipa::path(get, path = "/v1/servers", tag = "servers", operation_id = "list_servers",
    responses((status = 200, body = ServerList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ServerList>> {
    let servers = state.store.list_servers().await?;
    Ok(Json(ServerList { servers }))
}

/// `GET /v1/servers/{id}`: one server in full.
#[utoipa::path(get, path = "/v1/servers/{id}", tag = "servers", operation_id = "server_detail",
    params(("id" = i64, Path, description = "registry id of the server")),
    responses(
        (status = 200, body = ServerDetailDoc),
        (status = 400, description = "`id` is not an integer", content_type = "application/problem+json"),
        (status = 404, description = "no such server", content_type = "application/problem+json")))]
pub async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ServerDetail>> {
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
    #[schema(value_type = Vec<FindingDoc>)]
    pub findings: Vec<FindingRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<i64>,
}

/// `GET /v1/findings`: stored conformance findings, by id, filtered.
#[utoipa::path(get, path = "/v1/findings", tag = "servers", operation_id = "list_findings",
    params(FindingsQuery),
    responses(
        (status = 200, body = FindingsPage),
        (status = 400, description = "bad parameter", content_type = "application/problem+json")))]
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
            severity: q
                .severity
                .as_deref()
                .and_then(Severity::parse)
                .map(|s| s.as_str().to_owned()),
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
