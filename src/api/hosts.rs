//! `/v1/hosts`: the seeded hosts and their crawl state; adding and removing hosts (admin).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::Admin;
use super::{ApiError, ApiResult, AppState};
use crate::seeds::{parse_seed, EXPECTED_FORMS};
use crate::store::HostRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts", get(list).post(add))
        .route("/v1/hosts/{id}", delete(remove))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostList {
    pub hosts: Vec<HostRow>,
}

/// `GET /v1/hosts`: seeded, admin-added and discovered hosts with their crawl state.
#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", operation_id = "list_hosts",
    responses((status = 200, body = HostList),
              (status = 400, description = "a query parameter (this endpoint takes none)", content_type = "application/problem+json"),
              (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<HostList>> {
    super::params::none(raw.as_deref())?;
    let hosts: Vec<HostRow> = state.store.list_hosts().await?;
    Ok(Json(HostList { hosts }))
}

/// Body of `POST /v1/hosts`: `host`, or `hosts` (1..1000 in all), each written as in a
/// seeds file: `name`, `name:port`, an origin URL (`https://name/`), or the http(s) URL
/// of a metadata document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddHosts {
    #[serde(default)]
    #[schema(example = "example-utility.com", min_length = 1)]
    pub host: Option<String>,
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddedHosts {
    /// How many of the given hosts were new (0: all were known already).
    pub added: usize,
    /// The given hosts as stored (new and already known).
    pub hosts: Vec<HostRow>,
}

/// `POST /v1/hosts` (admin): add hosts to crawl; idempotent.
#[utoipa::path(post, path = "/v1/hosts", tag = "hosts", operation_id = "add_hosts",
    request_body = AddHosts,
    security(("admin" = [])),
    responses(
        (status = 201, description = "at least one host was new", body = AddedHosts),
        (status = 200, description = "every host was known already", body = AddedHosts),
        (status = 400, description = "bad body, host, or a query parameter (this endpoint takes none)", content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong bearer token", content_type = "application/problem+json"),
        (status = 403, description = "writes are disabled (no admin_token configured)", content_type = "application/problem+json"),
        (status = 413, description = "the body is larger than 8 MiB", content_type = "application/problem+json"),
        (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
pub async fn add(
    _admin: Admin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Json<AddHosts>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<AddedHosts>)> {
    super::params::none(raw.as_deref())?;
    // The rejection's own conversion keeps an oversized (chunked) body a 413.
    let Json(body) = body?;
    let mut texts = body.hosts;
    texts.extend(body.host);
    if texts.is_empty() || texts.len() > 1000 {
        return Err(ApiError::BadRequest(
            "give `host` or 1..1000 `hosts`".into(),
        ));
    }
    let seeds = texts
        .iter()
        .map(|t| {
            parse_seed(t).map_err(|e| ApiError::BadRequest(format!("{t:?}: {e}; {EXPECTED_FORMS}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let added = state.store.add_hosts(&seeds, "admin").await?;
    let hosts: Vec<HostRow> = state
        .store
        .list_hosts()
        .await?
        .into_iter()
        .filter(|h| seeds.iter().any(|s| s.key() == h.seed))
        .collect();
    let code = if added > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(AddedHosts { added, hosts })))
}

/// `DELETE /v1/hosts/{id}` (admin): stop crawling a host; its servers become `gone`
/// (history kept).
#[utoipa::path(delete, path = "/v1/hosts/{id}", tag = "hosts", operation_id = "remove_host",
    params(("id" = i64, Path, description = "registry id of the host")),
    security(("admin" = [])),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "`id` is not an integer, or a query parameter (this endpoint takes none)", content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong bearer token", content_type = "application/problem+json"),
        (status = 403, description = "writes are disabled (no admin_token configured)", content_type = "application/problem+json"),
        (status = 404, description = "no such host", content_type = "application/problem+json"),
        (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
pub async fn remove(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    super::params::none(raw.as_deref())?;
    // Parsed here, not by the extractor, so a bad id is problem+json like everywhere else.
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("host id must be an integer, got {id:?}")))?;
    state.store.remove_host(id).await?;
    if let Err(e) = state.reload_index().await {
        tracing::warn!(error = %e, "index reload after host removal failed");
    }
    Ok(StatusCode::NO_CONTENT)
}
