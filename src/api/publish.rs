//! The registry's own CDS documents over HTTP ([`crate::publish`]): the well-known
//! metadata and the coverage listing, with strong ETags and `Last-Modified` on each, and
//! 304 for a conditional request that matches. Off (404) unless `[publish] enabled`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::Problem;
use super::responses::BadRequest;
use super::routes::Routes;
use super::{ApiError, ApiResult, AppState};
use crate::http_cache::{http_date, not_modified, strong_etag};
use crate::index::SearchIndex;
use crate::publish::{Cursor, Published, COVERAGE_PATH};

pub fn routes() -> Routes {
    Routes::new("cds")
        .add(__path_metadata, metadata)
        .add(__path_coverage, coverage)
}

/// The published documents of one index snapshot, built once per snapshot. The snapshot
/// is held weakly: a swapped-out index is freed at once, not kept alive by this cache
/// until the next published request (at 100,000 entries an index is hundreds of MiB).
#[derive(Default)]
pub struct PublishCache(tokio::sync::Mutex<Option<(std::sync::Weak<SearchIndex>, Arc<Published>)>>);

fn off() -> ApiError {
    ApiError::NotFound(
        "this registry does not publish CDS documents; an operator turns it on with \
         `[publish] enabled = true` and `base_url` (see the README, \"The registry as a CDS server\")"
            .into(),
    )
}

/// The index snapshot and what it publishes: from the cache when the index has not
/// changed, else built on the blocking pool (a pass over every entry).
async fn snapshot(state: &AppState) -> ApiResult<(Arc<SearchIndex>, Arc<Published>)> {
    let cfg = &state.config.publish;
    if cfg.metadata_url().is_none() {
        return Err(off());
    }
    let index = state.index();
    let mut cache = state.publish_cache.0.lock().await;
    if let Some((i, p)) = cache.as_ref() {
        // The weak reference keeps the old allocation's address taken (only its contents
        // are freed), so a new index can never sit at the same address.
        if std::ptr::eq(i.as_ptr(), Arc::as_ptr(&index)) {
            return Ok((index, p.clone()));
        }
    }
    let span = state
        .store
        .change_span_ms()
        .await?
        .unwrap_or_else(|| (state.index_built_ms(), state.index_built_ms()));
    let (idx, c) = (index.clone(), cfg.clone());
    let published = tokio::task::spawn_blocking(move || Published::of(&idx, &c, span))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let published = Arc::new(published);
    *cache = Some((Arc::downgrade(&index), published.clone()));
    Ok((index, published))
}

/// `body` with a strong ETag (its content hash, so it survives restarts and is the same
/// on every replica) and `Last-Modified`, or a bodiless 304 when the request's
/// `If-None-Match` names the tag or, without `If-None-Match`, its `If-Modified-Since` is
/// not older than `last_modified_ms` (RFC 9110 §13.2.2: the tag decides when both come).
pub fn conditional(
    req: &HeaderMap,
    content_type: &'static str,
    body: Vec<u8>,
    last_modified_ms: i64,
) -> Response {
    let tag = strong_etag(&body);
    let secs = last_modified_ms.div_euclid(1000);
    let mut resp = if not_modified(req, &tag, secs) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("hex is a valid header"),
    );
    if let Ok(v) = HeaderValue::from_str(&http_date(secs)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    resp
}

fn json_bytes(v: &serde_json::Value) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /.well-known/cds-server-metadata.json`: the registry's metadata document.
#[utoipa::path(get, path = "/.well-known/cds-server-metadata.json", operation_id = "cds_metadata",
    summary = "The registry's own CDS metadata (WG1-01 §2), when publishing is on",
    responses((status = 200, description = "metadata document: `capabilities` is `coverage` plus the union of the published entries'", content_type = "application/json"),
              (status = 304, description = "unchanged (`If-None-Match` / `If-Modified-Since`)"),
              (status = 404, description = "publishing is off (`[publish] enabled`)", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let (_, published) = snapshot(&state).await?;
    let body = json_bytes(&published.metadata(&state.config.publish))?;
    Ok(conditional(
        &headers,
        "application/json",
        body,
        state.index_built_ms(),
    ))
}

/// The listing's query: `ids` (WG1-01 §4.2), `cursor` (from `next`/`previous`), `limit`.
struct ListingQuery {
    ids: Option<String>,
    cursor: Option<Cursor>,
    limit: usize,
}

fn listing_query(raw: Option<&str>, default: usize, max: usize) -> ApiResult<ListingQuery> {
    let bad = |m: String| ApiError::BadRequest(m);
    let mut q = ListingQuery {
        ids: None,
        cursor: None,
        limit: default,
    };
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "ids" => q.ids = Some(v.into_owned()),
            "cursor" => {
                q.cursor = Some(Cursor::parse(&v).ok_or_else(|| {
                    bad("`cursor` is not one this listing returned in `next` or `previous`".into())
                })?)
            }
            "limit" => {
                q.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| bad(format!("`limit` must be 1..={max}, got {v:?}")))?
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter `{other}`; the listing takes ids (WG1-01 §4.2), cursor and limit"
                )))
            }
        }
    }
    Ok(q)
}

/// `GET /v1/cds/coverage`: the registry's coverage listing (WG1-01 §3).
#[utoipa::path(get, path = "/v1/cds/coverage", operation_id = "cds_coverage",
    summary = "The registry's CDS coverage listing (WG1-01 §3): every entry it serves, role `aggregator`, newest `updated` first",
    params(("ids" = Option<String>, Query, description = "space-separated entry ids: only those entries (WG1-01 §4.2)"),
           ("cursor" = Option<String>, Query, description = "a page, as `next` and `previous` link it"),
           ("limit" = Option<usize>, Query, description = "entries per page (default `publish.page_size`, at most `publish.max_page_size`)")),
    responses((status = 200, description = "coverage listing page: `coverage_entries`, `next`, `previous`", content_type = "application/json"),
              (status = 304, description = "unchanged (`If-None-Match` / `If-Modified-Since`)"),
              BadRequest,
              (status = 404, description = "publishing is off (`[publish] enabled`)", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn coverage(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let cfg = &state.config.publish;
    let q = listing_query(raw.as_deref(), cfg.page_size, cfg.max_page_size)?;
    let (index, published) = snapshot(&state).await?;
    let doc = match &q.ids {
        Some(ids) => {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if ids.len() > cfg.max_page_size {
                return Err(ApiError::BadRequest(format!(
                    "`ids` names {} entries; at most {} per request",
                    ids.len(),
                    cfg.max_page_size
                )));
            }
            published.by_ids(&index, cfg, &ids)
        }
        None => {
            let base = cfg.coverage_url().unwrap_or_else(|| COVERAGE_PATH.into());
            let limit = q.limit;
            let keep_limit = limit != cfg.page_size;
            published.page(&index, cfg, q.cursor, limit, |c| {
                let mut u = format!("{base}?cursor={}", c.text());
                if keep_limit {
                    u.push_str(&format!("&limit={limit}"));
                }
                u
            })
        }
    };
    Ok(conditional(
        &headers,
        "application/json",
        json_bytes(&doc)?,
        state.index_built_ms(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_matching_tag_or_date_is_a_304_and_the_tag_wins() {
        let body = b"{\"a\":1}".to_vec();
        let ms = 1_700_000_000_500;
        let first = conditional(&HeaderMap::new(), "application/json", body.clone(), ms);
        assert_eq!(first.status(), 200);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let date = first.headers()[header::LAST_MODIFIED]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(date, "Tue, 14 Nov 2023 22:13:20 GMT");
        let status = |h: HeaderMap, b: &[u8]| conditional(&h, "x/y", b.to_vec(), ms).status();
        assert_eq!(status(req(&[(header::IF_NONE_MATCH, &tag)]), &body), 304);
        assert_eq!(
            status(req(&[(header::IF_NONE_MATCH, &format!("W/{tag}"))]), &body),
            304
        );
        assert_eq!(
            status(req(&[(header::IF_NONE_MATCH, &tag)]), b"{}"),
            200,
            "new content"
        );
        assert_eq!(
            status(req(&[(header::IF_MODIFIED_SINCE, &date)]), &body),
            304
        );
        assert_eq!(
            status(
                req(&[(header::IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:19 GMT")]),
                &body
            ),
            200
        );
        // With both, the tag decides (RFC 9110 §13.2.2).
        let both = req(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, &date),
        ]);
        assert_eq!(status(both, &body), 200);
    }

    #[test]
    fn the_listing_query_is_checked() {
        let q = listing_query(Some("ids=1%202&limit=3"), 10, 100).unwrap();
        assert_eq!((q.ids.as_deref(), q.limit), (Some("1 2"), 3));
        for bad in ["limit=0", "limit=101", "cursor=zz", "page=2"] {
            assert!(listing_query(Some(bad), 10, 100).is_err(), "{bad}");
        }
    }
}
