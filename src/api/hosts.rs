//! `/v1/hosts`: the seeded hosts and their crawl state; adding and removing hosts (admin).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::Admin;
use super::{ApiError, ApiResult, AppState};
use crate::seeds::parse_seed;
use crate::store::HostRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts", get(list).post(add))
        .route("/v1/hosts/{id}", delete(remove))
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let hosts: Vec<HostRow> = state.store.list_hosts().await?;
    Ok(Json(json!({ "hosts": hosts })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddHosts {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

async fn add(
    _admin: Admin,
    State(state): State<AppState>,
    body: Result<Json<AddHosts>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut texts = body.hosts;
    texts.extend(body.host);
    if texts.is_empty() || texts.len() > 1000 {
        return Err(ApiError::BadRequest(
            "give `host` or 1..1000 `hosts`".into(),
        ));
    }
    let seeds = texts
        .iter()
        .map(|t| parse_seed(t).map_err(|e| ApiError::BadRequest(format!("{t:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let added = state.store.add_hosts(&seeds, "admin").await?;
    let all = state.store.list_hosts().await?;
    let hosts: Vec<&HostRow> = all
        .iter()
        .filter(|h| seeds.iter().any(|s| s.key() == h.seed))
        .collect();
    let code = if added > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(json!({ "added": added, "hosts": hosts }))))
}

async fn remove(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.store.remove_host(id).await?;
    if let Err(e) = state.reload_index().await {
        tracing::warn!(error = %e, "index reload after host removal failed");
    }
    Ok(StatusCode::NO_CONTENT)
}
