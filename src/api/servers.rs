//! `/v1/servers` and `/v1/findings`: crawled metadata documents and their conformance.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, AppState};
use crate::cds::Severity;
use crate::store::{FindingFilter, ServerDetail};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/servers", get(list))
        .route("/v1/servers/{id}", get(detail))
        .route("/v1/findings", get(findings))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let servers = state.store.list_servers().await?;
    Ok(Json(json!({ "servers": servers })))
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ServerDetail>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("server id must be an integer, got {id:?}")))?;
    Ok(Json(state.store.server_detail(id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsQuery {
    severity: Option<String>,
    rule: Option<String>,
    server: Option<i64>,
    cursor: Option<i64>,
    limit: Option<i64>,
}

async fn findings(
    State(state): State<AppState>,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
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
    let next = if rows.len() as i64 == limit {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(json!({ "findings": rows, "next_cursor": next })))
}
