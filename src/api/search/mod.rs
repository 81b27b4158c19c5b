//! The search endpoints, answered from the in-memory index: `/v1/entities`,
//! `/v1/coverage`, `/v1/lookup` (GET one point, POST a batch or a geometry), `/v1/facets`.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

mod rows;

pub use rows::{row, CoverageRow, OAuthInfo, ScopeInfo, ServerBrief};

use super::error::Problem;
use super::page::{after_key, Listing};
use super::params::{self, check_point, route};
use super::responses::{BadRequest, TooLarge};
use super::routes::Routes;
use super::{ApiError, ApiResult, AppState};
use crate::geocode::Geocoded;
use crate::index::{Facets, OverBudget, SearchIndex, WorkBudget};

/// Most points one batch lookup takes (one pass over the index; ~2 MB of JSON in).
pub const MAX_BATCH_POINTS: usize = 100_000;

pub fn routes() -> Routes {
    Routes::new("search")
        .add_with_query(__path_entities, entities, route::LISTING)
        .add_with_query(__path_coverage, coverage, route::LISTING)
        .add_with_query(__path_lookup, lookup, route::LOOKUP)
        .add_with_query(__path_lookup_batch, lookup_batch, route::LOOKUP_BATCH)
        .add_with_query(__path_facets, facets, route::FACETS)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CoveragePage {
    pub coverage: Vec<CoverageRow>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Matches in total (all pages).
    pub total: usize,
}

/// `GET /v1/coverage`: one row per matching coverage entry, by registry id.
#[utoipa::path(get, path = "/v1/coverage",
    responses((status = 200, body = CoveragePage), BadRequest))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn coverage(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<CoveragePage>> {
    let p = params::parse(raw.as_deref(), route::LISTING)?;
    let limit = params::limit(&p, 100, 1000)?;
    let index = state.index();
    let hits = index.search(&p.filter);
    let cursor = p.extra.get("cursor");
    let (page, next_cursor) =
        after_key(&hits, cursor, Listing::Coverage, limit, |&i| index.key(i))?;
    Ok(Json(CoveragePage {
        coverage: page.iter().map(|&i| row(&index, i)).collect(),
        next_cursor,
        total: hits.len(),
    }))
}

/// A covered entity: entries grouped across servers by country + normalised name.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entity {
    pub entity_name: String,
    pub country: String,
    /// Servers offering coverage for this entity.
    pub servers: Vec<ServerBrief>,
    pub commodity_types: Vec<String>,
    pub roles: Vec<String>,
    pub entries: Vec<CoverageRow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntitiesPage {
    pub entities: Vec<Entity>,
    pub next_cursor: Option<String>,
    pub total: usize,
}

/// `GET /v1/entities`: the covered entities with their matching entries.
#[utoipa::path(get, path = "/v1/entities",
    responses((status = 200, body = EntitiesPage), BadRequest))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn entities(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<EntitiesPage>> {
    let p = params::parse(raw.as_deref(), route::LISTING)?;
    let limit = params::limit(&p, 50, 500)?;
    let index = state.index();
    let groups = index.entities(&p.filter);
    // Groups are ordered by (normalised name, country): the cursor is the last group's key.
    let (page, next_cursor) = after_key(
        &groups,
        p.extra.get("cursor"),
        Listing::Entities,
        limit,
        |g| format!("{}\u{1f}{}", g.name_key, g.country),
    )?;
    let entities = page
        .iter()
        .map(|g| {
            let entries: Vec<CoverageRow> = g.entries.iter().map(|&i| row(&index, i)).collect();
            let mut servers: BTreeMap<i64, ServerBrief> = BTreeMap::new();
            let mut commodities = std::collections::BTreeSet::new();
            let mut roles = std::collections::BTreeSet::new();
            for r in &entries {
                servers.entry(r.server.id).or_insert_with(|| ServerBrief {
                    id: r.server.id,
                    url: r.server.url.clone(),
                    name: r.server.name.clone(),
                });
                commodities.extend(r.commodity_types.iter().cloned());
                roles.insert(r.role.clone());
            }
            Entity {
                entity_name: g.entity_name.clone(),
                country: g.country.clone(),
                servers: servers.into_values().collect(),
                commodity_types: commodities.into_iter().collect(),
                roles: roles.into_iter().collect(),
                entries,
            }
        })
        .collect();
    Ok(Json(EntitiesPage {
        entities,
        next_cursor,
        total: groups.len(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LookupResult {
    /// `[lon, lat]`.
    pub point: [f64; 2],
    /// With `address=`: what the geocoder made of it (the point above is its answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geocoded: Option<Geocoded>,
    /// Authoritative before official before aggregator, then the smallest territory.
    pub results: Vec<CoverageRow>,
}

/// `GET /v1/lookup?lat=&lon=` (or `?address=`): who serves this point.
#[utoipa::path(get, path = "/v1/lookup",
    responses((status = 200, body = LookupResult),
              (status = 400, description = "missing or bad lat/lon, or `address` without a configured geocoder", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "the geocoder found no place for `address`", body = Problem, content_type = "application/problem+json"),
              (status = 502, description = "the geocoder failed", body = Problem, content_type = "application/problem+json"),
              (status = 504, description = "the geocoder did not answer within `geocoder.timeout_ms`", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lookup(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::response::Response> {
    let mut p = params::parse(raw.as_deref(), route::LOOKUP)?;
    // `get` on the usually empty map returns before hashing the key (`remove` hashes first).
    let address = p.extra.get("address").cloned();
    let (point, geocoded) = match (p.filter.point.take(), address) {
        (Some(point), None) => (point, None),
        (None, Some(address)) => {
            let g = state.geocoder.geocode(&address).await?;
            ((g.lon, g.lat), Some(g))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give either `lat`/`lon` or `address`, not both".into(),
            ))
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "`lat` and `lon` are required (or `address`, with a geocoder configured)".into(),
            ))
        }
    };
    let (lon, lat) = point;
    let index = state.index();
    let t0 = std::time::Instant::now();
    let hits = index.lookup(lon, lat, &p.filter);
    crate::metrics::lookup(crate::metrics::LookupKind::Single, 1, t0.elapsed());
    let body = lookup_body(&index, [lon, lat], geocoded.as_ref(), &hits);
    Ok(json_response(body))
}

/// A 200 with a ready JSON body (both lookups), its `Content-Type` and `Content-Length`
/// set here: the header map is made with room for what the way out adds (`edge`: `Vary`,
/// CORS, `nosniff`, the ETag), so it is allocated once, and axum's `(headers, body)`
/// conversion and its later `Content-Length` step have nothing left to do
/// (docs/PERFORMANCE.md, "The lookup's own work").
fn json_response(body: Vec<u8>) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let mut headers = axum::http::HeaderMap::with_capacity(8);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut resp = axum::response::Response::new(axum::body::Body::from(body));
    *resp.headers_mut() = headers;
    resp
}

/// A [`LookupResult`] as JSON: the same bytes serde would write for the struct, each hit's
/// row written in place from the index ([`rows::write_row`]) rather than built as a
/// `CoverageRow` of ~15 cloned strings and serialized (docs/PERFORMANCE.md, "HTTP lookup
/// vs trivial route").
pub fn lookup_body(
    index: &SearchIndex,
    point: [f64; 2],
    geocoded: Option<&Geocoded>,
    hits: &[usize],
) -> Vec<u8> {
    // Room for the frame, two shortest-form floats (at most 24 characters each) and rows
    // of a typical size, so that a body of one or two hits is written without growing (a
    // reallocation was ~900 instructions per lookup).
    const ROW: usize = 768;
    let frame = r#"{"point":[,],"results":[]}"#.len() + 2 * 24;
    let mut body = Vec::with_capacity(frame + hits.len() * ROW);
    body.extend_from_slice(b"{\"point\":");
    // Written into the body, not into a string of their own first.
    serde_json::to_writer(&mut body, &point).expect("two numbers serialize");
    if let Some(g) = geocoded {
        body.extend_from_slice(b",\"geocoded\":");
        serde_json::to_writer(&mut body, g).expect("a geocoded place serializes");
    }
    body.extend_from_slice(b",\"results\":[");
    for (n, &i) in hits.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        rows::write_row(&mut body, index, i);
    }
    body.extend_from_slice(b"]}");
    body
}

/// Body of `POST /v1/lookup`: many points, or one GeoJSON geometry. Filters go in the
/// query string, as for `GET`.
// Two options rather than an untagged enum, so that a body with both or neither is told
// which rule it breaks (an untagged enum only says that no variant matched); the schema
// below states the same rule as a `oneOf`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// `[[lon, lat], ...]`, up to 100,000 points.
    #[serde(default)]
    pub points: Option<Vec<[f64; 2]>>,
    /// A GeoJSON Geometry (or Feature): entries whose territory intersects it.
    #[serde(default)]
    pub geometry: Option<Value>,
}

impl utoipa::PartialSchema for BatchRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let point = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::Number))
            .min_items(Some(2))
            .max_items(Some(2));
        let points = ObjectBuilder::new()
            .property(
                "points",
                ArrayBuilder::new()
                    .items(point)
                    .min_items(Some(1))
                    .max_items(Some(MAX_BATCH_POINTS))
                    .description(Some(
                        "`[[lon, lat], ...]`, 1 to 100,000 points, WGS 84 degrees.",
                    )),
            )
            .required("points");
        let geometry = ObjectBuilder::new()
            .property(
                "geometry",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some(
                        "A GeoJSON Geometry (or Feature): entries whose territory intersects it.",
                    )),
            )
            .required("geometry");
        OneOfBuilder::new()
            .item(points)
            .item(geometry)
            .description(Some("Either `points` or `geometry`, not both."))
            .into()
    }
}

impl ToSchema for BatchRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// Per input point (same order), the ranked registry ids of the entries serving it;
    /// for a geometry, one list.
    pub matches: Vec<Vec<i64>>,
    /// Each entry referenced in `matches`, once, by registry id.
    pub entries: BTreeMap<String, CoverageRow>,
}

/// `POST /v1/lookup`: a batch of points in one pass, or a geometry.
///
/// Bounded (issue 19): the work runs on the blocking pool in one of
/// `api.expensive_concurrency` slots (503 + `Retry-After` when none frees up within
/// `api.lookup_budget_ms`), under a deadline of `api.lookup_budget_ms` and, for a
/// geometry, at most `api.max_geometry_work` units of work (422 past either).
#[utoipa::path(post, path = "/v1/lookup",
    request_body = BatchRequest,
    responses((status = 200, body = BatchResult),
              BadRequest,
              TooLarge,
              (status = 422, description = "the lookup would exceed its work or time budget (`api.max_geometry_work`, `api.lookup_budget_ms`): simplify the geometry or split the request", body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "every slot for expensive requests is taken; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn lookup_batch(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    body: Result<Json<BatchRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<axum::response::Response> {
    let Json(body) = body?;
    let p = params::parse(raw.as_deref(), route::LOOKUP_BATCH)?;
    if p.filter.point.is_some() {
        return Err(ApiError::BadRequest(
            "POST /v1/lookup takes its points in the body".into(),
        ));
    }
    match (&body.points, &body.geometry) {
        (Some(points), None) if points.len() > MAX_BATCH_POINTS => {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_BATCH_POINTS} points per request, got {}",
                points.len()
            )))
        }
        (Some(_), None) | (None, Some(_)) => {}
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `points` or `geometry`".into(),
            ))
        }
    }
    let slot = state.expensive_slot().await?;
    let index = state.index();
    let budget_ms = state.config.api.lookup_budget_ms;
    let max_work = state.config.api.max_geometry_work;
    let json = tokio::task::spawn_blocking(move || {
        // Held until the work ends, even when the client has gone meanwhile.
        let _slot = slot;
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(budget_ms);
        let matches = batch_matches(&index, body, &p.filter, deadline, max_work)?;
        let body = batch_result(&index, matches);
        serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(json_response(json))
}

/// The ranked entry positions per point (or one list for a geometry), within budget.
fn batch_matches(
    index: &SearchIndex,
    body: BatchRequest,
    filter: &crate::index::Filter,
    deadline: std::time::Instant,
    max_work: u64,
) -> ApiResult<Vec<Vec<usize>>> {
    let t0 = std::time::Instant::now();
    match (body.points, body.geometry) {
        (Some(points), None) => {
            for (i, [lon, lat]) in points.iter().enumerate() {
                check_point(*lon, *lat)
                    .map_err(|e| ApiError::BadRequest(format!("points[{i}]: {}", detail(&e))))?;
            }
            let hits = index
                .lookup_batch_csr_within(&points, filter, Some(deadline))
                .map_err(|e| too_costly(e, "split the points into smaller batches"))?;
            crate::metrics::lookup(
                crate::metrics::LookupKind::Batch,
                points.len(),
                t0.elapsed(),
            );
            Ok((0..hits.len())
                .map(|i| hits.get(i).iter().map(|&x| x as usize).collect())
                .collect())
        }
        (None, Some(g)) => {
            let geom = super::geojson::geometry_from_value(&g)?;
            drop(g);
            let budget = WorkBudget {
                max_work,
                deadline: Some(deadline),
            };
            let hits = index
                .intersecting_within(&geom, filter, &budget)
                .map_err(|e| {
                    too_costly(
                        e,
                        "simplify the geometry (fewer vertices) or split it into smaller pieces \
                     and send them as separate requests",
                    )
                })?;
            Ok(vec![hits])
        }
        _ => Err(ApiError::BadRequest(
            "give exactly one of `points` or `geometry`".into(),
        )),
    }
}

fn too_costly(e: OverBudget, advice: &str) -> ApiError {
    ApiError::TooCostly(format!("{e}; {advice}"))
}

/// Matches as registry ids, with each entry's row once.
fn batch_result(index: &SearchIndex, matches: Vec<Vec<usize>>) -> BatchResult {
    let mut entries = BTreeMap::new();
    let matches = matches
        .into_iter()
        .map(|hits| {
            hits.into_iter()
                .map(|i| {
                    let key = index.key(i);
                    entries
                        .entry(key.to_string())
                        .or_insert_with(|| row(index, i));
                    key
                })
                .collect()
        })
        .collect();
    BatchResult { matches, entries }
}

fn detail(e: &ApiError) -> String {
    match e {
        ApiError::BadRequest(d) => d.clone(),
        other => other.to_string(),
    }
}

/// Body of `GET /v1/facets`: the number of matching entries, and the index's counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetsResult {
    pub total: usize,
    #[serde(flatten)]
    pub facets: Facets,
}

/// `GET /v1/facets`: entry counts per field value under the filters.
#[utoipa::path(get, path = "/v1/facets",
    responses((status = 200, body = FacetsResult), BadRequest))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn facets(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<FacetsResult>> {
    let p = params::parse(raw.as_deref(), route::FACETS)?;
    let index = state.index();
    Ok(Json(FacetsResult {
        total: index.search(&p.filter).len(),
        facets: index.facets(&p.filter),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use geo::{LineString, MultiPolygon, Polygon};

    use super::*;
    use crate::cds::oauth::OAuthOffer;
    use crate::cds::CoverageEntry;
    use crate::index::{Filter, IndexEntry};

    fn square(key: i64, x0: f64, oauth: Option<OAuthOffer>) -> IndexEntry {
        let ring = LineString::from(vec![
            (x0, 0.0),
            (x0 + 2.0, 0.0),
            (x0 + 2.0, 2.0),
            (x0, 2.0),
            (x0, 0.0),
        ]);
        IndexEntry {
            key,
            server_id: 7,
            server_url: "https://u.example/.well-known/cds-server-metadata.json".into(),
            server_name: "Utility \"U\" \u{e9}".into(),
            entry: CoverageEntry {
                id: format!("e{key}"),
                entity_name: "Entity".into(),
                country: "US".into(),
                name: format!("Entry {key}"),
                description: Some("line\nbreak".into()),
                kind: "service_territory".into(),
                role: "authoritative".into(),
                commodity_types: vec!["electricity".into()],
                ..CoverageEntry::default()
            },
            territory_id: Some(key),
            territory: Some(Arc::new(MultiPolygon(vec![Polygon::new(ring, vec![])]))),
            scopes: vec!["customer_data".into()],
            scope_types: vec!["cds_usage".into()],
            oauth: oauth.map(Arc::new),
        }
    }

    /// Each row the lookup writes is byte for byte serde's of [`row`], on entries whose
    /// strings need no escaping (written as they are) and on entries where one string of
    /// the row, its lists' or its server's does (written by serde): random strings from a
    /// pool of both kinds, with and without the optional fields, a territory, scopes and
    /// an origin.
    #[test]
    fn written_rows_are_the_serialized_rows() {
        use rand::{Rng, SeedableRng};
        const PLAIN: &[&str] = &["", "abc", "Ünïcødé 😀", "a/b <c> & 'd'", "\u{7f}", "1.5"];
        const ESCAPED: &[&str] = &["q\"uote", "back\\slash", "tab\t", "\u{1}", "line\nbreak"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let pick = |rng: &mut rand::rngs::StdRng| -> String {
            let pool = if rng.random_bool(0.9) { PLAIN } else { ESCAPED };
            pool[rng.random_range(0..pool.len())].to_owned()
        };
        let entries: Vec<IndexEntry> = (1..=400)
            .map(|key| {
                let mut e = square(key, (key % 7) as f64, None);
                let c = &mut e.entry;
                c.id = pick(&mut rng);
                c.entity_name = pick(&mut rng);
                c.entity_abbreviation = rng.random_bool(0.5).then(|| pick(&mut rng));
                c.name = pick(&mut rng);
                c.description = rng.random_bool(0.5).then(|| pick(&mut rng));
                c.kind = pick(&mut rng);
                c.map_resource = rng.random_bool(0.3).then(|| pick(&mut rng));
                c.map_content_type = rng.random_bool(0.3).then(|| pick(&mut rng));
                c.geojson_resource = rng.random_bool(0.7).then(|| pick(&mut rng));
                for list in [
                    &mut c.infrastructure_types,
                    &mut c.commodity_types,
                    &mut c.capabilities,
                ] {
                    *list = (0..rng.random_range(0..4))
                        .map(|_| pick(&mut rng))
                        .collect();
                }
                if rng.random_bool(0.2) {
                    c.origin = Some(crate::cds::origin::Origin {
                        server: pick(&mut rng),
                        id: pick(&mut rng),
                        ..Default::default()
                    });
                }
                if rng.random_bool(0.5) {
                    e.scopes.clear();
                    e.scope_types.clear();
                }
                if rng.random_bool(0.2) {
                    e.oauth = Some(Arc::new(OAuthOffer {
                        registration_endpoint: Some(pick(&mut rng)),
                        ..OAuthOffer::default()
                    }));
                }
                if rng.random_bool(0.2) {
                    e.territory = None;
                    e.territory_id = None;
                }
                let name = pick(&mut rng);
                e.server_name = name.into();
                e
            })
            .collect();
        let index = SearchIndex::build(entries);
        let mut plain = 0;
        for i in 0..index.len() {
            let mut out = Vec::new();
            rows::write_row(&mut out, &index, i);
            let want = serde_json::to_string(&row(&index, i)).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want);
            plain += usize::from(index.entry(i).json_plain());
        }
        // Both ways of writing were taken.
        assert!(
            plain > 0 && plain < index.len(),
            "{plain} of {}",
            index.len()
        );
    }

    /// The assembled body is byte for byte what serializing `LookupResult` gives, for no
    /// hit, one hit and several (overlapping squares), with and without a geocoded place.
    #[test]
    fn lookup_body_is_the_serialized_lookup_result() {
        let offer = OAuthOffer {
            registration_endpoint: Some("https://u.example/register".into()),
            ..OAuthOffer::default()
        };
        let index = SearchIndex::build(vec![
            square(1, 0.0, Some(offer)),
            square(2, 1.0, None),
            square(3, 10.0, None),
        ]);
        let place = Geocoded {
            lat: 1.0,
            lon: 1.5,
            display_name: "Somewhere \"quoted\"".into(),
            importance: Some(0.5),
            source: crate::geocode::GeocoderKind::Nominatim,
        };
        for (point, geocoded) in [
            ([0.5, 1.0], None),
            ([1.5, 1.0], None),
            ([11.0, 1.0], None),
            ([50.0, 50.0], None),
            ([1.5, 1.0], None),
            ([1.5, 1.0], Some(&place)),
        ] {
            let hits = index.lookup(point[0], point[1], &Filter::default());
            let expected = serde_json::to_string(&LookupResult {
                point,
                geocoded: geocoded.cloned(),
                results: hits.iter().map(|&i| row(&index, i)).collect(),
            })
            .unwrap();
            let body = lookup_body(&index, point, geocoded, &hits);
            assert_eq!(String::from_utf8(body).unwrap(), expected, "{point:?}");
        }
        assert_eq!(index.lookup(1.5, 1.0, &Filter::default()).len(), 2);
    }
}
