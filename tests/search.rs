//! The search half of the API after a real crawl of the fixture web, on both backends.

mod common;

use std::collections::BTreeSet;

use cds_registry::cli::serve::Running;
use cds_testkit::web::{names, FixtureWeb, UNCOVERED_FIPS};
use cds_testkit::ExpectedExt;
use common::{crawled_fixture_web, Backend, TestDb};
use serde_json::{json, Value};

struct Env {
    web: FixtureWeb,
    reg: Running,
    c: reqwest::Client,
    _db: TestDb,
}

async fn env(backend: Backend) -> Env {
    let (web, db, reg) = crawled_fixture_web(backend).await;
    Env {
        web,
        reg,
        c: reqwest::Client::new(),
        _db: db,
    }
}

impl Env {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .c
            .get(format!("{}{path}", self.reg.url()))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .c
            .post(format!("{}{path}", self.reg.url()))
            .json(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn done(self) {
        self.reg.shutdown().await.unwrap();
        self.web.shutdown().await;
    }
}

fn ids(rows: &Value) -> BTreeSet<String> {
    common::entry_ids(rows)
}

async fn point_lookups_match_the_fixture_territories(backend: Backend) {
    let e = env(backend).await;
    let exp = e.web.expected();
    let mut points = Vec::new();
    for p in &exp.points {
        let (s, v) = e
            .get(&format!("/v1/lookup?lat={}&lon={}", p.lat, p.lon))
            .await;
        assert_eq!(s, 200, "{v}");
        let want: BTreeSet<String> = p.served_by.iter().map(|b| b.entry_id.clone()).collect();
        assert_eq!(ids(&v["results"]), want, "county {} ({})", p.county, p.fips);
        points.push(json!([p.lon, p.lat]));
    }
    // The batch form answers the same, in input order.
    let (s, v) = e.post("/v1/lookup", &json!({ "points": points })).await;
    assert_eq!(s, 200, "{v}");
    for (i, p) in exp.points.iter().enumerate() {
        let got: BTreeSet<String> = v["matches"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                v["entries"][k.to_string()]["entry_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let want: BTreeSet<String> = p.served_by.iter().map(|b| b.entry_id.clone()).collect();
        assert_eq!(got, want, "batch, county {}", p.fips);
    }
    let uncovered = exp.point(UNCOVERED_FIPS).unwrap();
    assert!(uncovered.served_by.is_empty());

    // Ranking: at Monterey, Sierra's two authoritative entries; filters narrow it.
    let m = exp.point("06053").unwrap();
    let (_, v) = e
        .get(&format!(
            "/v1/lookup?lat={}&lon={}&commodity=natural_gas",
            m.lat, m.lon
        ))
        .await;
    assert_eq!(ids(&v["results"]), BTreeSet::from(["sge-gas".to_owned()]));
    let first = &v["results"][0];
    assert_eq!(first["server"]["name"], names::SIERRA);
    assert!(first["geometry"].as_str().unwrap().ends_with("/geometry"));

    // A geometry: a box around Monterey and Santa Cruz intersects both Sierra territories.
    let (s, v) = e
        .post(
            "/v1/lookup",
            &json!({"geometry": {"type": "Polygon", "coordinates": [[[-122.0, 36.0], [-121.0, 36.0], [-121.0, 37.0], [-122.0, 37.0], [-122.0, 36.0]]]}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let got: BTreeSet<&str> = v["entries"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| r["entry_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, BTreeSet::from(["sge-electric", "sge-gas"]));
    e.done().await;
}

async fn search_filters_facets_and_pages(backend: Backend) {
    let e = env(backend).await;
    let exp = e.web.expected();
    let (s, v) = e.get("/v1/coverage?limit=1000").await;
    assert_eq!(s, 200);
    assert_eq!(v["total"], exp.stored_entries());

    // Pagination: pages of 4 cover everything once, in a stable order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/v1/coverage?limit=4&cursor={c}"),
            None => "/v1/coverage?limit=4".into(),
        };
        let (_, v) = e.get(&path).await;
        seen.extend(
            v["coverage"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), exp.stored_entries());
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // Filters: OR within, AND across.
    let (_, v) = e
        .get("/v1/coverage?role=official&commodity=natural_gas,water&limit=1000")
        .await;
    assert!(v["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["role"] == "official"));
    let (_, v2) = e.get("/v1/coverage?role=official&limit=1000").await;
    assert!(
        v["total"].as_u64() < v2["total"].as_u64(),
        "AND across filters narrows"
    );
    let (_, v) = e.get("/v1/coverage?capability=ieee1547").await;
    assert!(
        v["total"].as_u64().unwrap() >= 1,
        "extension capabilities are searchable"
    );
    let (_, v) = e.get("/v1/coverage?q=sierra%20GAS").await;
    assert!(v["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["server"]["name"] == names::SIERRA));
    let (_, v) = e.get("/v1/coverage?type=logical").await;
    assert_eq!(v["total"], 1);

    // Entities group across servers by country + name.
    let (s, v) = e.get("/v1/entities?country=US").await;
    assert_eq!(s, 200);
    let names_: Vec<&str> = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["entity_name"].as_str().unwrap())
        .collect();
    assert!(names_.len() >= 8, "{names_:?}");
    let sierra = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["entity_name"] == names::SIERRA)
        .unwrap();
    assert_eq!(sierra["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        sierra["commodity_types"],
        json!(["electricity", "natural_gas"])
    );

    // Facets count under the filter.
    let (_, f) = e.get("/v1/facets").await;
    assert_eq!(f["total"], exp.stored_entries());
    let role_sum: u64 = f["role"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["count"].as_u64().unwrap())
        .sum();
    assert_eq!(role_sum as usize, exp.stored_entries());
    let (_, f) = e.get("/v1/facets?role=aggregator").await;
    assert_eq!(f["role"], json!([{"value": "aggregator", "count": 2}]));

    // Bad parameters are 400 problem+json with a useful detail.
    for bad in [
        "/v1/lookup?lat=91&lon=0",
        "/v1/lookup?lon=0",
        "/v1/coverage?colour=red",
        "/v1/coverage?limit=0",
        "/v1/coverage?cursor=xyz",
        "/v1/entities?bbox=1,2",
        "/v1/coverage/abc/geometry",
        "/v1/export?format=shp",
    ] {
        let r =
            e.c.get(format!("{}{bad}", e.reg.url()))
                .send()
                .await
                .unwrap();
        common::problem(r, 400, bad).await;
    }
    let (s, _) = e.post("/v1/lookup", &json!({"points": [[0, 95]]})).await;
    assert_eq!(s, 400);
    let (s, _) = e.post("/v1/lookup", &json!({"nope": 1})).await;
    assert_eq!(s, 400);
    e.done().await;
}

async fn geometry_export_etag_and_openapi(backend: Backend) {
    let e = env(backend).await;
    let (_, v) = e.get("/v1/coverage?q=sierra&limit=1").await;
    let geom_path = v["coverage"][0]["geometry"].as_str().unwrap().to_owned();
    let (s, full) = e.get(&geom_path).await;
    assert_eq!(s, 200);
    assert_eq!(full["type"], "Feature");
    assert_eq!(full["geometry"]["type"], "MultiPolygon");
    let (_, simple) = e.get(&format!("{geom_path}?simplify=0.05")).await;
    let count = |v: &Value| v.to_string().matches('[').count();
    assert!(count(&simple) < count(&full), "simplify reduces vertices");
    let (s, _) = e.get("/v1/coverage/999999/geometry").await;
    assert_eq!(s, 404);

    // Export: GeoJSON FeatureCollection and NDJSON, one feature per entry.
    let n = e.web.expected().stored_entries();
    let (s, fc) = e.get("/v1/export").await;
    assert_eq!(s, 200);
    assert_eq!(fc["features"].as_array().unwrap().len(), n);
    let text =
        e.c.get(format!(
            "{}/v1/export?format=ndjson&country=US",
            e.reg.url()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), n);
    for l in text.lines() {
        let f: Value = serde_json::from_str(l).unwrap();
        assert_eq!(f["type"], "Feature");
    }

    // ETag: a repeat with If-None-Match is a 304; compression and CORS are on.
    let url = format!("{}/v1/facets?country=US", e.reg.url());
    // (A client that does not decompress, so the header stays visible.)
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .build()
        .unwrap();
    let r = raw
        .get(&url)
        .header("accept-encoding", "gzip")
        .header("origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let revalidate = || async {
        let r = e.c.get(&url).header("if-none-match", &tag).send().await;
        r.unwrap().status()
    };
    assert_eq!(revalidate().await, 304);
    // A new index generation (after a crawl) changes the tag.
    e.reg.state.reload_index().await.unwrap();
    assert_eq!(revalidate().await, 200);

    // A point lookup builds its answer and its headers itself: its `Content-Length` is
    // the body's, and a client that asks for gzip still gets it.
    let m = e.web.expected().point("06053").unwrap().clone();
    let url = format!("{}/v1/lookup?lat={}&lon={}", e.reg.url(), m.lat, m.lon);
    let r = raw.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("etag"));
    let declared: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let plain = r.bytes().await.unwrap();
    assert_eq!(declared, plain.len());
    let r = raw
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&r.bytes().await.unwrap()[..]),
        &mut inflated,
    )
    .unwrap();
    assert_eq!(inflated, plain);

    // OpenAPI 3.1 and the vendored Swagger UI.
    let (s, doc) = e.get("/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/v1/lookup",
        "/v1/entities",
        "/v1/coverage",
        "/v1/facets",
        "/v1/export",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} documented");
    }
    let r =
        e.c.get(format!("{}/docs/", e.reg.url()))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("swagger"));
    e.done().await;
}

both_backends!(
    point_lookups_match_the_fixture_territories,
    search_filters_facets_and_pages,
    geometry_export_etag_and_openapi,
);
