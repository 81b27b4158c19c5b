//! GeoJSON in and out of the API: request geometries to `geo` types, territories to
//! Features, `/v1/coverage/{id}/geometry` and the streamed `/v1/export`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use geo::{Geometry, LineString, MultiPolygon, Simplify};
use serde_json::{json, Value};

use super::error::Problem;
use super::page::Id;
use super::params;
use super::responses::BadRequest;
use super::routes::Routes;
use super::search::row;
use super::{ApiError, ApiResult, AppState};
use crate::index::SearchIndex;

pub fn routes() -> Routes {
    Routes::new("search")
        .add(__path_geometry, geometry)
        .add_with_query(__path_export, export, params::route::EXPORT)
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::BadRequest(m.into())
}

/// A request geometry (a GeoJSON Geometry or Feature) as a `geo::Geometry`, read by
/// [`crate::geojson::request`]; its first defect is the 400 answer.
pub fn geometry_from_value(v: &Value) -> Result<Geometry<f64>, ApiError> {
    crate::geojson::geometry_from_value(v).map_err(|e| bad(e.0))
}

fn ring_json(r: &LineString<f64>) -> Value {
    Value::Array(r.0.iter().map(|c| json!([c.x, c.y])).collect())
}

/// A territory as GeoJSON MultiPolygon coordinates.
pub fn multipolygon_json(mp: &MultiPolygon<f64>) -> Value {
    json!({
        "type": "MultiPolygon",
        "coordinates": mp.0.iter().map(|p| {
            let mut rings = vec![ring_json(p.exterior())];
            rings.extend(p.interiors().iter().map(ring_json));
            Value::Array(rings)
        }).collect::<Vec<_>>()
    })
}

fn feature(index: &SearchIndex, i: usize, simplify: f64) -> Value {
    let e = index.entry(i);
    let geometry = e.territory().map(|t| {
        if simplify > 0.0 {
            multipolygon_json(&t.simplify(simplify))
        } else {
            multipolygon_json(t)
        }
    });
    json!({
        "type": "Feature",
        "id": e.key(),
        "geometry": geometry,
        "properties": serde_json::to_value(row(index, i)).unwrap_or(Value::Null),
    })
}

/// `GET /v1/coverage/{id}/geometry?simplify=`: the territory as a GeoJSON Feature.
#[utoipa::path(get, path = "/v1/coverage/{id}/geometry",
    params(("id" = i64, Path, description = "registry id of the coverage entry"),
           ("simplify" = Option<f64>, Query, description = "Douglas-Peucker tolerance in degrees, 0..1")),
    responses((status = 200, description = "GeoJSON Feature; a strong ETag of its content and `Last-Modified`", content_type = "application/geo+json"),
              (status = 304, description = "unchanged (`If-None-Match` / `If-Modified-Since`)"),
              (status = 404, description = "no such entry or no territory", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(level = "debug", skip_all, fields(id = id))]
pub async fn geometry(
    State(state): State<AppState>,
    Id(id): Id,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let simplify = simplify_param(raw.as_deref())?;
    let index = state.index();
    let i = index
        .position(id)
        .ok_or_else(|| ApiError::NotFound(format!("no coverage entry {id}")))?;
    if index.entry(i).territory().is_none() {
        return Err(ApiError::NotFound(format!(
            "coverage entry {id} has no territory"
        )));
    }
    let body = serde_json::to_vec(&feature(&index, i, simplify))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(super::publish::conditional(
        &headers,
        "application/geo+json",
        body,
        state.index_built_ms(),
    ))
}

fn simplify_param(raw: Option<&str>) -> Result<f64, ApiError> {
    let mut simplify = 0.0;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "simplify" => {
                simplify = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && (0.0..=1.0).contains(s))
                    .ok_or_else(|| {
                        bad(format!(
                            "`simplify` must be a number 0..1 (degrees), got {v:?}"
                        ))
                    })?;
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter `{other}`; allowed: simplify"
                )))
            }
        }
    }
    Ok(simplify)
}

/// `GET /v1/export?format=geojson|ndjson&simplify=` + filters: all matching active
/// coverage, streamed feature by feature (memory stays flat however large the export).
#[utoipa::path(get, path = "/v1/export",
    responses((status = 200, description = "GeoJSON FeatureCollection or NDJSON"),
              BadRequest,
              (status = 503, description = "`api.max_exports` exports are streaming already; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn export(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let p = params::parse(raw.as_deref(), params::route::EXPORT)?;
    let ndjson = match p.extra.get("format").map(String::as_str) {
        None | Some("geojson") => false,
        Some("ndjson") => true,
        Some(f) => return Err(bad(format!("`format` is geojson or ndjson, got {f:?}"))),
    };
    let simplify = match p.extra.get("simplify") {
        Some(s) => simplify_param(Some(&format!("simplify={s}")))?,
        None => 0.0,
    };
    let slot = state.export_slot()?;
    let index = state.index();
    // Features are rendered (and simplified) on the blocking pool, a few ahead of the
    // client; the export's slot is held until the last one is sent or the client leaves.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let hits = index.search(&p.filter);
        let n = hits.len();
        for k in 0..n + 2 {
            // k = 0: header, 1..=n: features, n+1: footer.
            let chunk = if k == 0 {
                if ndjson {
                    continue;
                }
                br#"{"type":"FeatureCollection","features":["#.to_vec()
            } else if k <= n {
                let mut b =
                    serde_json::to_vec(&feature(&index, hits[k - 1], simplify)).unwrap_or_default();
                if ndjson {
                    b.push(b'\n');
                } else if k < n {
                    b.push(b',');
                }
                b
            } else if ndjson {
                continue;
            } else {
                b"]}".to_vec()
            };
            if tx.blocking_send(Bytes::from(chunk)).is_err() {
                return; // the client went away
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    })
    // The body may be polled once more after its end, which unfold does not allow.
    .fuse();
    let ct = if ndjson {
        "application/x-ndjson"
    } else {
        "application/geo+json"
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, ct)],
        Body::from_stream(stream),
    )
        .into_response())
}
