//! OpenAPI 3.1 document generated from the handlers (utoipa), served at `/openapi.json`,
//! and Swagger UI at `/docs` (vendored into the binary: no download at build or run time).
//!
//! The document's paths come from the route table (`super::routes`), the same table the
//! router is built from, so every route is documented. Each operation's response is the
//! type its handler returns; tests here check the schemas against real serialisations.

use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cds-registry",
        description = "Registry of LF Energy CDS server metadata: which utility serves this place, for which commodity, with which capabilities."
    ),
    components(schemas(
        Health,
        super::error::Problem,
        Readiness,
        crate::store::HostRow,
        super::hosts::HostList,
        super::hosts::AddHosts,
        super::hosts::AddedHosts,
        crate::store::ServerRow,
        super::servers::ServerList,
        crate::store::ServerDetail,
        crate::store::ServerRef,
        crate::store::FindingRow,
        super::servers::FindingsPage,
        crate::store::OutcomeRow,
        super::search::CoverageRow,
        super::search::CoveragePage,
        super::search::Entity,
        super::search::EntitiesPage,
        super::search::LookupResult,
        super::search::BatchRequest,
        super::search::BatchResult,
        super::search::FacetsResult,
        crate::index::Facets,
        crate::index::FacetCount,
        super::search::ServerBrief,
        super::search::OAuthInfo,
        super::search::ScopeInfo,
        crate::store::RunRow,
        crate::store::ChangeRow,
        super::ops::StartRun,
        super::ops::StartedRun,
        super::ops::RunPage,
        super::ops::RunProgress,
        super::ops::ChangesPage,
    )),
    modifiers(&AdminAuth),
    tags(
        (name = "search", description = "Answered from the in-memory index"),
        (name = "servers", description = "Crawled metadata documents and their conformance findings"),
        (name = "hosts", description = "Hosts to crawl; writes need the admin bearer token"),
        (name = "ops", description = "Liveness and readiness"),
        (name = "cds", description = "The registry as a CDS server (aggregator role), when `[publish]` is on")
    )
)]
pub struct ApiDoc;

/// Declares the `admin` bearer scheme the write endpoints name in their `security`.
struct AdminAuth;

impl Modify for AdminAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <admin_token>` (configuration key `admin_token`; \
                         unset = writes disabled, 403)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Body of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Body of `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `degraded` (with a 503) when the database does not answer.
    pub status: &'static str,
    /// `ok` or `unreachable`.
    pub database: &'static str,
    /// Coverage entries in the in-memory index.
    pub index_entries: usize,
    /// When the index was last built (epoch milliseconds; 0 = never).
    pub index_built_ms: i64,
}

/// The whole document: [`ApiDoc`]'s frame and schemas with every route's operation.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.paths.merge(super::routes().paths);
    doc
}

pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{json, Value};

    use super::*;

    /// The API's routes, as `(METHOD, path)`: the document's list is made from the route
    /// table, so this is what a client of the API sees change when a route is added.
    /// `/docs` and `/openapi.json` themselves are not API routes.
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/v1/hosts"),
        ("POST", "/v1/hosts"),
        ("DELETE", "/v1/hosts/{id}"),
        ("GET", "/v1/servers"),
        ("GET", "/v1/servers/{id}"),
        ("GET", "/v1/findings"),
        ("GET", "/v1/entities"),
        ("GET", "/v1/coverage"),
        ("GET", "/v1/lookup"),
        ("POST", "/v1/lookup"),
        ("GET", "/v1/facets"),
        ("GET", "/v1/coverage/{id}/geometry"),
        ("GET", "/v1/export"),
        ("POST", "/v1/crawls"),
        ("GET", "/v1/crawls"),
        ("GET", "/v1/crawls/{id}"),
        ("GET", "/v1/changes"),
        ("GET", "/v1/changes/stream"),
        ("GET", "/metrics"),
        ("GET", "/.well-known/cds-server-metadata.json"),
        ("GET", "/v1/cds/coverage"),
    ];

    fn doc() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete", "head", "options"]
                    .contains(&method.as_str())
                {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn document_is_openapi_3_1_and_lists_every_route() {
        let doc = doc();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        let want: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented(&doc), want);
        // operationIds are unique (clients generate one function per operation).
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            }
        }
        // Every `$ref` resolves.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
    }

    #[test]
    fn write_endpoints_need_the_admin_bearer_scheme() {
        let doc = doc();
        let scheme = &doc["components"]["securitySchemes"]["admin"];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        for (method, path) in [("post", "/v1/hosts"), ("delete", "/v1/hosts/{id}")] {
            let op = &doc["paths"][path][method];
            assert_eq!(op["security"], json!([{"admin": []}]), "{method} {path}");
            for code in ["400", "401", "403"] {
                assert!(op["responses"][code].is_object(), "{method} {path} {code}");
            }
        }
        let op = &doc["paths"]["/v1/servers/{id}"]["get"];
        for code in ["200", "400", "404"] {
            assert!(op["responses"][code].is_object(), "{code}");
        }
        let names: BTreeSet<&str> = doc["paths"]["/v1/findings"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["severity", "rule", "server", "cursor", "limit"])
        );
    }

    /// Each search operation documents the query keys its handler accepts (`params::parse`
    /// and its extra keys) and no others, so a client built from the document is not
    /// refused: `GET /v1/lookup` requires its point, `POST /v1/lookup` takes its points in
    /// the body (exactly one of `points` or `geometry`), only the listings page.
    #[test]
    fn search_operations_document_the_keys_their_handlers_accept() {
        let doc = doc();
        let params = |method: &str, path: &str| -> BTreeSet<(String, bool)> {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_owned(),
                        p["required"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        };
        // The filters without the point (documented per operation below).
        let filters: Vec<&str> = crate::api::params::FILTERS.iter().map(|k| k.name).collect();
        let with = |extra: &[(&str, bool)]| -> BTreeSet<(String, bool)> {
            filters
                .iter()
                .map(|f| (f.to_string(), false))
                .chain(extra.iter().map(|(k, r)| (k.to_string(), *r)))
                .collect()
        };
        let near = [("lat", false), ("lon", false)];
        let paged = [
            ("lat", false),
            ("lon", false),
            ("limit", false),
            ("cursor", false),
        ];
        // A point, or an address for the geocoder: neither is required on its own.
        assert_eq!(
            params("get", "/v1/lookup"),
            with(&[("lat", false), ("lon", false), ("address", false)])
        );
        assert_eq!(params("post", "/v1/lookup"), with(&[]));
        assert_eq!(params("get", "/v1/entities"), with(&paged));
        assert_eq!(params("get", "/v1/coverage"), with(&paged));
        assert_eq!(params("get", "/v1/facets"), with(&near));
        let export = [near.as_slice(), &[("format", false), ("simplify", false)]].concat();
        assert_eq!(params("get", "/v1/export"), with(&export));

        let body = component(&doc, "BatchRequest");
        let required: BTreeSet<&str> = body["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["required"][0].as_str().unwrap())
            .collect();
        assert_eq!(required, BTreeSet::from(["points", "geometry"]));
    }

    /// Every documented operation is served by the real router (not the fallback, not a
    /// 405): the route table made both.
    #[tokio::test]
    async fn every_documented_route_is_served() {
        use axum::body::Body;
        use axum::http::{Method, Request, StatusCode};
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        let app = super::super::router(AppState::empty_for_tests(dir.path()).await);
        for (method, path) in documented(&doc()) {
            let uri = path.replace("{id}", "1");
            let req = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            // A stream never ends: that it started is enough here.
            if resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                == Some("text/event-stream")
            {
                assert_eq!(status, StatusCode::OK, "{method} {path}");
                continue;
            }
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no such endpoint"),
                "{method} {path}: {status} {text}"
            );
        }
    }

    /// Keys of the JSON object a schema describes, following `$ref` and `allOf`.
    fn schema_keys(doc: &Value, schema: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            return schema_keys(doc, &doc["components"]["schemas"][name]);
        }
        if let Some(parts) = schema["allOf"].as_array() {
            for p in parts {
                out.extend(schema_keys(doc, p));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            out.extend(props.keys().cloned());
        }
        out
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
        let s = &doc["components"]["schemas"][name];
        assert!(s.is_object(), "no schema {name}");
        s
    }

    /// The mirror schemas of the store's row types have exactly the rows' keys, and the
    /// wrappers the handlers send have the keys their schemas document.
    #[test]
    fn schemas_match_what_the_handlers_send() {
        use crate::store::{FindingRow, HostRow, OutcomeRow, ServerDetail, ServerRef, ServerRow};

        let doc = doc();
        let host = HostRow {
            id: 1,
            seed: "a.example".into(),
            metadata_url: None,
            source: crate::model::HostSource::Seed,
            status: crate::model::HostStatus::Active,
            moved_to: None,
            created_ms: 0,
            last_crawl_ms: None,
            last_success_ms: None,
            last_outcome: None,
            last_detail: None,
            consecutive_failures: 0,
            next_due_ms: 0,
            scheme: Some("https".into()),
            display: "a.example".into(),
        };
        let server = ServerRow {
            id: 1,
            url: "https://a.example/".into(),
            host_id: 1,
            parent_id: None,
            depth: 0,
            status: crate::model::ServerStatus::Active,
            name: "A".into(),
            capabilities: vec![],
            entries: 0,
            first_seen_ms: 0,
            last_success_ms: 0,
            last_changed_ms: 0,
            last_failure_ms: None,
            last_failure: None,
        };
        let finding = FindingRow {
            id: 1,
            server_id: Some(1),
            host_id: None,
            run_id: 1,
            rule: "COV-COUNTRY".into(),
            severity: crate::model::Severity::Error,
            message: "m".into(),
            url: "https://a.example/".into(),
            pointer: String::new(),
            expected: None,
            actual: None,
        };
        let outcome = OutcomeRow {
            run_id: 1,
            host_id: 1,
            outcome: crate::model::Outcome::Ok,
            detail: None,
            http_status: None,
            url: None,
            started_ms: 0,
            finished_ms: 0,
            docs_fetched: 0,
            docs_unchanged: 0,
            bytes: 0,
        };
        let server_ref = ServerRef {
            id: 2,
            url: "https://b.example/".into(),
            name: "B".into(),
            status: crate::model::ServerStatus::Active,
        };
        let detail = ServerDetail {
            server: server.clone(),
            metadata: json!({}),
            parent_url: None,
            related: vec![server_ref.clone()],
            coverage: vec![],
            findings: vec![finding.clone()],
            crawl_history: vec![outcome.clone()],
            oauth: None,
        };
        let cases: Vec<(&str, Value)> = vec![
            ("Host", serde_json::to_value(&host).unwrap()),
            ("Server", serde_json::to_value(&server).unwrap()),
            ("Finding", serde_json::to_value(&finding).unwrap()),
            ("CrawlOutcome", serde_json::to_value(&outcome).unwrap()),
            ("ServerRef", serde_json::to_value(&server_ref).unwrap()),
            ("ServerDetail", serde_json::to_value(&detail).unwrap()),
            (
                "HostList",
                serde_json::to_value(super::super::hosts::HostList {
                    hosts: vec![host.clone()],
                    next_cursor: None,
                })
                .unwrap(),
            ),
            (
                "AddedHosts",
                serde_json::to_value(super::super::hosts::AddedHosts {
                    added: 1,
                    hosts: vec![host],
                })
                .unwrap(),
            ),
            (
                "ServerList",
                serde_json::to_value(super::super::servers::ServerList {
                    servers: vec![server],
                    next_cursor: None,
                })
                .unwrap(),
            ),
            (
                "FacetsResult",
                serde_json::to_value(super::super::search::FacetsResult {
                    total: 0,
                    facets: crate::index::Facets::default(),
                })
                .unwrap(),
            ),
            (
                "FindingsPage",
                serde_json::to_value(super::super::servers::FindingsPage {
                    findings: vec![finding],
                    next_cursor: None,
                })
                .unwrap(),
            ),
        ];
        for (name, value) in cases {
            let schema = component(&doc, name);
            assert_eq!(schema_keys(&doc, schema), keys(&value), "schema {name}");
        }
    }

    /// Every error answer of every operation is documented as a problem details object,
    /// and that schema has exactly the keys an `ApiError` sends. `/readyz`'s 503 is the
    /// one error with a body of its own (the readiness report).
    #[tokio::test]
    async fn every_error_response_is_a_problem() {
        use axum::response::IntoResponse;

        let doc = doc();
        let mut errors = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (code, resp) in op["responses"].as_object().unwrap() {
                    if code.as_str() < "400" || (path == "/readyz" && code == "503") {
                        continue;
                    }
                    errors += 1;
                    let schema = &resp["content"]["application/problem+json"]["schema"];
                    let at = format!("{method} {path} {code}");
                    assert_eq!(schema["$ref"], "#/components/schemas/Problem", "{at}");
                    assert_ne!(resp["description"], "", "{at}");
                }
            }
        }
        assert!(errors >= 40, "only {errors} error responses documented");
        let resp = super::super::ApiError::BadRequest("x".into()).into_response();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(schema_keys(&doc, component(&doc, "Problem")), keys(&sent));
        // A store's 503 tells the client when to retry, as the answer does.
        let db_down = &doc["paths"]["/v1/hosts"]["get"]["responses"]["503"];
        assert!(db_down["headers"]["Retry-After"].is_object(), "{db_down}");
    }
}
