//! Operating the registry: crawl runs (`/v1/crawls`), the change feed (`/v1/changes`)
//! and Prometheus metrics (`/metrics`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::Admin;
use super::{ApiError, ApiResult, AppState};
use crate::crawl::CrawlError;
use crate::store::now_ms;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/crawls", get(list_runs).post(start_run))
        .route("/v1/crawls/{id}", get(run))
        .route("/v1/changes", get(changes))
        .route("/v1/changes/stream", get(changes_stream))
        .route("/metrics", get(metrics))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    #[serde(default)]
    hosts: Vec<String>,
}

#[utoipa::path(post, path = "/v1/crawls", tag = "operations", operation_id = "start_crawl",
    request_body(content = Object, description = "optional `{\"hosts\": [seed, ...]}`; all due hosts when absent"),
    security(("admin" = [])),
    responses((status = 202, description = "run started: `{run_id, hosts, status}`", body = Object),
              (status = 400, description = "bad body", content_type = "application/problem+json"),
              (status = 401, description = "missing or wrong token", content_type = "application/problem+json"),
              (status = 403, description = "no admin token configured", content_type = "application/problem+json"),
              (status = 409, description = "a run is in progress", content_type = "application/problem+json"),
              (status = 413, description = "body over the size limit", content_type = "application/problem+json"),
              (status = 503, description = "the database does not answer, or this process has no crawler", content_type = "application/problem+json")))]
/// `POST /v1/crawls` (admin): start a run over every due host, or `{"hosts": [...]}`;
/// crawler workers (any process) do the work. 202 with the run id; 409 while a run is on.
pub async fn start_run(
    _admin: Admin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Option<Json<StartRun>>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::params::none(raw.as_deref())?;
    let hosts = body?.map(|b| b.0.hosts).unwrap_or_default();
    if hosts.len() > 10_000 {
        return Err(ApiError::BadRequest("at most 10,000 hosts per run".into()));
    }
    // Hosts are named as in a seeds file (`https://Utility.Example/` is `utility.example`).
    let hosts = crate::seeds::seed_keys(&hosts).map_err(ApiError::BadRequest)?;
    let crawler = state
        .crawler
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("this process has no crawler".into()))?;
    match crawler.trigger("api", &hosts).await {
        Ok((run_id, n)) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"run_id": run_id, "hosts": n, "status": format!("/v1/crawls/{run_id}")})),
        )),
        Err(CrawlError::AlreadyRunning) => Err(ApiError::Conflict(
            "a crawl run is already in progress".into(),
        )),
        Err(CrawlError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    cursor: Option<i64>,
    limit: Option<i64>,
}

fn limit(l: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    let l = l.unwrap_or(default);
    if (1..=max).contains(&l) {
        Ok(l)
    } else {
        Err(ApiError::BadRequest(format!("`limit` must be 1..{max}")))
    }
}

#[utoipa::path(get, path = "/v1/crawls", tag = "operations", operation_id = "list_crawls",
    params(("cursor" = Option<i64>, Query, description = "run id from `next_cursor`"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, description = "`{runs, next_cursor}`", body = Object),
              (status = 400, description = "bad parameter", content_type = "application/problem+json"),
              (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
/// `GET /v1/crawls`: runs, newest first, with counts and duration.
pub async fn list_runs(
    State(state): State<AppState>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = limit(q.limit, 50, 500)?;
    let runs = state.store.list_runs(q.cursor.unwrap_or(0), limit).await?;
    let next = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({"runs": runs, "next_cursor": next})))
}

#[utoipa::path(get, path = "/v1/crawls/{id}", tag = "operations", operation_id = "get_crawl",
    params(("id" = i64, Path, description = "run id")),
    responses((status = 200, description = "`{run, outcomes}`", body = Object),
              (status = 400, description = "non-integer id, or a query parameter (this endpoint takes none)", content_type = "application/problem+json"),
              (status = 404, description = "no such run", content_type = "application/problem+json"),
              (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
/// `GET /v1/crawls/{id}`: one run's progress, counted across every worker.
pub async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    super::params::none(raw.as_deref())?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("run id must be an integer, got {id:?}")))?;
    let run = state.store.run(id).await?;
    let outcomes = state.store.run_outcomes(id).await?;
    let mut by_class = std::collections::BTreeMap::<String, i64>::new();
    for (_, o) in &outcomes {
        *by_class.entry(o.outcome.to_string()).or_default() += 1;
    }
    Ok(Json(json!({"run": run, "outcomes": by_class})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/changes", tag = "operations", operation_id = "list_changes",
    params(("after" = Option<i64>, Query, minimum = 0, description = "last `seq` seen"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 5000)),
    responses((status = 200, description = "`{changes, next_after, more}`", body = Object),
              (status = 400, description = "bad parameter", content_type = "application/problem+json"),
              (status = 503, description = "the database does not answer", content_type = "application/problem+json")))]
/// `GET /v1/changes?after=SEQ&limit=`: the change feed, oldest first. Pass the last
/// `seq` you saw as `after` to sync incrementally.
pub async fn changes(
    State(state): State<AppState>,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest("`after` must be ≥ 0".into()));
    }
    let limit = limit(q.limit, 500, 5000)?;
    let rows = state.store.changes_after(after, limit).await?;
    let next = rows.last().map(|c| c.seq).unwrap_or(after);
    Ok(Json(
        json!({"changes": rows, "next_after": next, "more": rows.len() as i64 == limit}),
    ))
}

/// Open change streams per process. Idle streams cost no queries (they wait on the
/// process's change watcher, `AppState::change_seq`); the cap bounds the connections and
/// the catch-up reads when many streams wake at once.
const MAX_STREAMS: usize = 256;
/// Rows read per query while a stream catches up.
const STREAM_BATCH: i64 = 500;

static STREAM_SLOTS: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)));

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    after: Option<i64>,
}

#[utoipa::path(get, path = "/v1/changes/stream", tag = "operations", operation_id = "stream_changes",
    params(("after" = Option<i64>, Query, minimum = 0, description = "last `seq` seen; the `Last-Event-ID` header, sent by a reconnecting EventSource, takes precedence"),
           ("Last-Event-ID" = Option<String>, Header, description = "last event id (`seq`) received")),
    responses((status = 200, description = "Server-Sent Events: one `change` event per change-log row, `id` = its `seq`, `data` = the row as in `/v1/changes`; a comment every 15 s keeps idle connections open", content_type = "text/event-stream"),
              (status = 400, description = "bad `after` or `Last-Event-ID`", content_type = "application/problem+json"),
              (status = 503, description = "too many open streams", content_type = "application/problem+json")))]
/// `GET /v1/changes/stream?after=SEQ`: the change feed as Server-Sent Events, from `after`
/// on and then live. Events come in `seq` order; an EventSource that reconnects sends
/// `Last-Event-ID` and resumes where it stopped.
pub async fn changes_stream(
    State(state): State<AppState>,
    headers: header::HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| ApiError::BadRequest("`Last-Event-ID` must be a change `seq`".into()))?,
        None => q.after.unwrap_or(0),
    };
    if after < 0 {
        return Err(ApiError::BadRequest("`after` must be ≥ 0".into()));
    }
    let slot = STREAM_SLOTS
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable("too many open change streams; retry later".into()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    let mut newest = state.change_seq();
    tokio::spawn(async move {
        let _slot = slot;
        let mut after = after;
        loop {
            let rows = match state.store.changes_after(after, STREAM_BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "change stream: reading the change log failed");
                    Vec::new()
                }
            };
            let full = rows.len() as i64 == STREAM_BATCH;
            for c in rows {
                after = c.seq;
                let event = Event::default()
                    .id(c.seq.to_string())
                    .event("change")
                    .json_data(&c)
                    .expect("a change row serializes");
                if tx.send(event).await.is_err() {
                    return; // the client went away
                }
            }
            if full {
                continue;
            }
            // Sleep until the log holds a row past the last one sent. A row committed
            // after the read above has a larger `seq` than any it returned (seq order is
            // commit order, `store::commit`), so the wait cannot miss it.
            tokio::select! {
                r = newest.wait_for(|&seq| seq > after) => {
                    if r.is_err() {
                        return; // the watch's sender is gone (not while `state` lives)
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let index = state.index();
    let age = Duration::from_millis((now_ms() - state.index_built_ms()).max(0) as u64);
    let leases = state.store.lease_counts().await.unwrap_or_default();
    let body = crate::metrics::render(index.len(), age, &leases);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
