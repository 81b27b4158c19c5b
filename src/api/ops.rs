//! Operating the registry: crawl runs (`/v1/crawls`), the change feed (`/v1/changes`)
//! and Prometheus metrics (`/metrics`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::Admin;
use super::error::Problem;
use super::page::{self, split_extra, Id, Listing};
use super::params::Params;
use super::responses::{AdminOnly, BadRequest, DbDown, TooLarge};
use super::routes::Routes;
use super::{ApiError, ApiResult, AppState};
use crate::crawl::CrawlError;
use crate::store::{now_ms, ChangeRow, RunRow};

pub fn routes() -> Routes {
    Routes::new("operations")
        .add(__path_list_runs, list_runs)
        .add(__path_start_run, start_run)
        .add(__path_run, run)
        .add(__path_changes, changes)
        .add(__path_changes_stream, changes_stream)
        .add(__path_metrics, metrics)
}

/// Body of `POST /v1/crawls`; optional: without it, every due host is crawled.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// Hosts to crawl, written as in a seeds file (at most 10,000).
    #[serde(default)]
    #[schema(max_items = 10000)]
    hosts: Vec<String>,
}

/// Answer of `POST /v1/crawls`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedRun {
    pub run_id: i64,
    /// Hosts the run covers.
    pub hosts: i64,
    /// Where to follow the run's progress (`GET /v1/crawls/{id}`).
    pub status: String,
}

#[utoipa::path(post, path = "/v1/crawls", operation_id = "start_crawl",
    request_body(content = StartRun, description = "optional; all due hosts when absent"),
    security(("admin" = [])),
    responses((status = 202, description = "run started", body = StartedRun),
              BadRequest,
              AdminOnly,
              (status = 409, description = "a run is in progress", body = Problem, content_type = "application/problem+json"),
              TooLarge,
              (status = 503, description = "the database does not answer, or this process has no crawler", body = Problem, content_type = "application/problem+json")))]
/// `POST /v1/crawls` (admin): start a run over every due host, or `{"hosts": [...]}`;
/// crawler workers (any process) do the work. 202 with the run id; 409 while a run is on.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start_run(
    _admin: Admin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Option<Json<StartRun>>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
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
        Ok((run_id, hosts)) => Ok((
            StatusCode::ACCEPTED,
            Json(StartedRun {
                run_id,
                hosts,
                status: format!("/v1/crawls/{run_id}"),
            }),
        )),
        Err(CrawlError::AlreadyRunning) => Err(ApiError::Conflict(
            "a crawl run is already in progress".into(),
        )),
        Err(CrawlError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// `next_cursor` of the previous page (a run id is taken too, as before cursors were
    /// opaque).
    cursor: Option<String>,
    /// Page size, 1..500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Answer of `GET /v1/crawls`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunRow>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/crawls", operation_id = "list_crawls",
    params(RunsQuery),
    responses((status = 200, body = RunPage),
              BadRequest,
              DbDown))]
/// `GET /v1/crawls`: runs, newest first, with counts and duration.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list_runs(
    State(state): State<AppState>,
    Params(q): Params<RunsQuery>,
) -> ApiResult<Json<RunPage>> {
    let limit = page::limit(q.limit, 50, 500)?;
    // Newest first: the cursor is the last run shown, the next page the runs before it.
    let before = match &q.cursor {
        Some(c) => Listing::Runs.id(c, true)?,
        None => 0,
    };
    let rows = state.store.list_runs(before, limit + 1).await?;
    let (runs, next_cursor) = split_extra(rows, limit, Listing::Runs, |r| r.id);
    Ok(Json(RunPage { runs, next_cursor }))
}

/// Answer of `GET /v1/crawls/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunProgress {
    pub run: RunRow,
    /// Hosts crawled so far per outcome (`ok`, `partial`, `dns`, ...).
    pub outcomes: BTreeMap<String, i64>,
}

#[utoipa::path(get, path = "/v1/crawls/{id}", operation_id = "get_crawl",
    params(("id" = i64, Path, description = "run id")),
    responses((status = 200, body = RunProgress),
              BadRequest,
              (status = 404, description = "no such run", body = Problem, content_type = "application/problem+json"),
              DbDown))]
/// `GET /v1/crawls/{id}`: one run's progress, counted across every worker.
#[tracing::instrument(level = "debug", skip_all, fields(id = id))]
pub async fn run(
    State(state): State<AppState>,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<RunProgress>> {
    super::params::none(raw.as_deref())?;
    let run = state.store.run(id).await?;
    let mut outcomes = BTreeMap::<String, i64>::new();
    for (_, o) in state.store.run_outcomes(id).await? {
        *outcomes.entry(o.outcome.to_string()).or_default() += 1;
    }
    Ok(Json(RunProgress { run, outcomes }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Last `seq` seen (default 0: from the start); not together with `cursor`.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// `next_cursor` of the previous page; not together with `after`.
    cursor: Option<String>,
    /// Page size, 1..5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<i64>,
}

/// Answer of `GET /v1/changes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesPage {
    pub changes: Vec<ChangeRow>,
    /// The last `seq` of this page (`after` when it is empty): pass it as `after` to sync
    /// incrementally, also once the feed is read to its end.
    pub next_after: i64,
    /// Whether more rows follow this page now.
    pub more: bool,
    /// Pass as `cursor` for the next page; null when no row follows (yet).
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/changes", operation_id = "list_changes",
    params(ChangesQuery),
    responses((status = 200, body = ChangesPage),
              BadRequest,
              DbDown))]
/// `GET /v1/changes?after=SEQ&limit=`: the change feed, oldest first. Pass the last
/// `seq` you saw as `after` to sync incrementally.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn changes(
    State(state): State<AppState>,
    Params(q): Params<ChangesQuery>,
) -> ApiResult<Json<ChangesPage>> {
    let after = match (q.after, &q.cursor) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `after` or `cursor`, not both".into(),
            ))
        }
        (_, Some(c)) => Listing::Changes.id(c, false)?,
        (after, None) => after.unwrap_or(0),
    };
    if after < 0 {
        return Err(ApiError::BadRequest("`after` must be ≥ 0".into()));
    }
    let limit = page::limit(q.limit, 500, 5000)?;
    let rows = state.store.changes_after(after, limit + 1).await?;
    let (changes, next_cursor) = split_extra(rows, limit, Listing::Changes, |c| c.seq);
    Ok(Json(ChangesPage {
        next_after: changes.last().map(|c| c.seq).unwrap_or(after),
        more: next_cursor.is_some(),
        changes,
        next_cursor,
    }))
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

#[utoipa::path(get, path = "/v1/changes/stream", operation_id = "stream_changes",
    params(("after" = Option<i64>, Query, minimum = 0, description = "last `seq` seen; the `Last-Event-ID` header, sent by a reconnecting EventSource, takes precedence"),
           ("Last-Event-ID" = Option<String>, Header, description = "last event id (`seq`) received")),
    responses((status = 200, description = "Server-Sent Events: one `change` event per change-log row, `id` = its `seq`, `data` = the row as in `/v1/changes`; a comment every 15 s keeps idle connections open", content_type = "text/event-stream"),
              (status = 400, description = "bad `after` or `Last-Event-ID`", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "too many open streams", body = Problem, content_type = "application/problem+json")))]
/// `GET /v1/changes/stream?after=SEQ`: the change feed as Server-Sent Events, from `after`
/// on and then live. Events come in `seq` order; an EventSource that reconnects sends
/// `Last-Event-ID` and resumes where it stopped.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn changes_stream(
    State(state): State<AppState>,
    headers: header::HeaderMap,
    Params(q): Params<StreamQuery>,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
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

#[utoipa::path(get, path = "/metrics", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
/// `GET /metrics`: Prometheus text format.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let index = state.index();
    let age = Duration::from_millis((now_ms() - state.index_built_ms()).max(0) as u64);
    let leases = state.store.lease_counts().await.unwrap_or_default();
    let body = crate::metrics::render(index.len(), age, &leases);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
