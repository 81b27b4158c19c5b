//! `/v1/hosts`: the seeded hosts and their crawl state; adding and removing hosts (admin).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::Admin;
use super::error::Problem;
use super::page::{slice_by_id, Id, Listing, PageQuery};
use super::params::Params;
use super::responses::{AdminOnly, BadRequest, DbDown, TooLarge};
use super::routes::Routes;
use super::{ApiError, ApiResult, AppState};
use crate::seeds::{parse_seed, EXPECTED_FORMS};
use crate::store::HostRow;

pub fn routes() -> Routes {
    Routes::new("hosts")
        .add(__path_list, list)
        .add(__path_add, add)
        .add(__path_remove, remove)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostList {
    pub hosts: Vec<HostRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/hosts`: seeded, admin-added and discovered hosts with their crawl state, by id,
/// a page at a time.
#[utoipa::path(get, path = "/v1/hosts", operation_id = "list_hosts",
    params(PageQuery),
    responses((status = 200, body = HostList),
              BadRequest,
              DbDown))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<HostList>> {
    // Paged here rather than in SQL: the host table is small (one row per operator-known
    // host), and `list_hosts` is the one host query the store offers.
    let (hosts, next_cursor) =
        slice_by_id(state.store.list_hosts().await?, Listing::Hosts, &q, |h| {
            h.id
        })?;
    Ok(Json(HostList { hosts, next_cursor }))
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
#[utoipa::path(post, path = "/v1/hosts", operation_id = "add_hosts",
    request_body = AddHosts,
    security(("admin" = [])),
    responses(
        (status = 201, description = "at least one host was new", body = AddedHosts),
        (status = 200, description = "every host was known already", body = AddedHosts),
        BadRequest,
        AdminOnly,
        TooLarge,
        DbDown))]
#[tracing::instrument(level = "debug", skip_all)]
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
#[utoipa::path(delete, path = "/v1/hosts/{id}", operation_id = "remove_host",
    params(("id" = i64, Path, description = "registry id of the host")),
    security(("admin" = [])),
    responses(
        (status = 204, description = "removed"),
        BadRequest,
        AdminOnly,
        (status = 404, description = "no such host", body = Problem, content_type = "application/problem+json"),
        DbDown))]
#[tracing::instrument(level = "debug", skip_all, fields(id = id))]
pub async fn remove(
    _admin: Admin,
    State(state): State<AppState>,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    super::params::none(raw.as_deref())?;
    state.store.remove_host(id).await?;
    if let Err(e) = state.reload_index().await {
        tracing::warn!(error = %e, "index reload after host removal failed");
    }
    Ok(StatusCode::NO_CONTENT)
}
