//! The API's bounds (issue 19): costly geometry lookups get a bounded answer and leave the
//! probes responsive, oversized bodies get 413, a database outage is a 503, and the
//! policy headers (CORS, CSP, nosniff), the exact admin token and the query-parameter
//! checks hold.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cds_registry::cds::CoverageEntry;
use cds_registry::index::{IndexEntry, SearchIndex};
use cds_registry::seeds::Seed;
use common::{start_registry, test_config, Backend, TestDb};
use geo::{LineString, MultiPolygon, Polygon};
use serde_json::{json, Value};
use sqlx::Connection;

/// A square ring (half-size `r`) subdivided into `n` vertices, counter-clockwise.
fn square_ring(r: f64, n: usize) -> Vec<(f64, f64)> {
    let side = n / 4;
    let corners = [(-r, -r), (r, -r), (r, r), (-r, r)];
    let mut pts = Vec::with_capacity(n + 1);
    for k in 0..4 {
        let (a, b) = (corners[k], corners[(k + 1) % 4]);
        for i in 0..side {
            let t = i as f64 / side as f64;
            pts.push((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
        }
    }
    pts.push(pts[0]);
    pts
}

/// `n` concentric square annuli around (0, 0) (territory `k`: between half-sizes
/// `9.5 + k` and `10 + k`), each with `verts` vertices. Everything within 9.5° of the
/// origin is inside every hole: a query there has every annulus as a candidate (their
/// boxes contain it) and intersects none, the costly case for the exact test.
fn annuli_index(n: usize, verts: usize) -> SearchIndex {
    let entries = (0..n)
        .map(|k| {
            let outer = square_ring(10.0 + k as f64, verts / 2);
            let mut inner = square_ring(9.5 + k as f64, verts / 2);
            inner.reverse();
            let poly = Polygon::new(LineString::from(outer), vec![LineString::from(inner)]);
            IndexEntry {
                key: k as i64 + 1,
                server_id: 1,
                server_url: "https://rings.example/.well-known/cds-server-metadata.json".into(),
                server_name: "Rings".into(),
                entry: CoverageEntry {
                    id: format!("ring{k}"),
                    entity_name: format!("Ring {k}"),
                    country: "US".into(),
                    name: format!("Ring {k}"),
                    kind: "geographic".into(),
                    role: "authoritative".into(),
                    ..CoverageEntry::default()
                },
                territory_id: Some(k as i64 + 1),
                territory: Some(Arc::new(MultiPolygon(vec![poly]))),
                scopes: vec![],
                scope_types: vec![],
                oauth: None,
            }
        })
        .collect();
    SearchIndex::build(entries)
}

/// A `POST /v1/lookup` body of `n` small distinct squares near the origin (inside every
/// annulus' hole): no match, so every square is tested against every annulus.
fn holes_body(n: usize) -> Value {
    let polys: Vec<Value> = (0..n)
        .map(|i| {
            let x = -5.0 + (i % 100) as f64 * 0.1;
            let y = -5.0 + (i / 100) as f64 * 0.1;
            json!([[
                [x, y],
                [x + 0.05, y],
                [x + 0.05, y + 0.05],
                [x, y + 0.05],
                [x, y]
            ]])
        })
        .collect();
    json!({"geometry": {"type": "MultiPolygon", "coordinates": polys}})
}

/// Three costly geometry lookups at once: each gets a bounded answer (422 past the time
/// budget, or 503 + `Retry-After` while the only slot is busy), and meanwhile `/healthz`
/// and a point lookup keep answering (bound: 1 s, a liveness property, not a speed target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_geometry_lookups_leave_the_probes_responsive() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = test_config(&db, vec![]);
    cfg.api.lookup_budget_ms = 1_500;
    // Only the time budget stops these requests here (the work cap has its own test).
    cfg.api.max_geometry_work = u64::MAX;
    cfg.api.expensive_concurrency = 1;
    let reg = start_registry(cfg).await;
    reg.state.set_index(annuli_index(40, 20_000));
    let base = reg.url();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let body = holes_body(300);
    let t0 = Instant::now();
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let (c, url, body) = (c.clone(), format!("{base}/v1/lookup"), body.clone());
            tokio::spawn(async move {
                let r = c.post(url).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                let retry = r.headers().get("retry-after").is_some();
                (
                    status,
                    retry,
                    common::problem(r, status, "costly lookup").await,
                )
            })
        })
        .collect();
    let mut probes = 0;
    let mut slowest = Duration::ZERO;
    // Bounded: the costly requests end within a few budgets; 60 s is a hard stop.
    while !jobs.iter().all(|j| j.is_finished()) && t0.elapsed() < Duration::from_secs(60) {
        for path in ["/healthz", "/v1/lookup?lat=0&lon=9.75"] {
            let t = Instant::now();
            let r = c.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.bytes().await.unwrap();
            slowest = slowest.max(t.elapsed());
            probes += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        probes >= 4,
        "the costly lookups ended before any probe ({probes})"
    );
    assert!(slowest < Duration::from_secs(1), "a probe took {slowest:?}");
    let mut over_budget = 0;
    for j in jobs {
        let (status, retry, p) = j.await.unwrap();
        match status {
            422 => {
                over_budget += 1;
                let d = &p.detail;
                assert!(d.contains("simplify") && d.contains("split"), "{d}");
            }
            503 => assert!(retry, "503 without Retry-After: {p:?}"),
            other => panic!("costly lookup answered {other}: {p:?}"),
        }
    }
    assert!(over_budget >= 1, "no lookup ran into its budget");
    reg.shutdown().await.unwrap();
}

/// Past `api.max_geometry_work` the answer is 422 at once, saying what to do; an ordinary
/// geometry under the default limits is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geometry_over_the_work_cap_is_422() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = test_config(&db, vec![]);
    cfg.api.max_geometry_work = 100_000;
    let reg = start_registry(cfg).await;
    reg.state.set_index(annuli_index(10, 2_000));
    let c = reqwest::Client::new();
    let url = format!("{}/v1/lookup", reg.url());
    let t = Instant::now();
    let r = c.post(&url).json(&holes_body(50)).send().await.unwrap();
    let d = common::problem(r, 422, "holes").await.detail;
    assert!(d.contains("100000") && d.contains("simplify"), "{d}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // One small box on ring 0 only: answered.
    let small = json!({"geometry": {"type": "Polygon", "coordinates":
        [[[9.6, 0.0], [9.9, 0.0], [9.9, 0.1], [9.6, 0.1], [9.6, 0.0]]]}});
    let r = c.post(&url).json(&small).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["matches"], json!([[1]]), "{v}");
    reg.shutdown().await.unwrap();
}

/// POST `body_len` bytes of spaces to `path` over a raw connection (declared with
/// Content-Length, or chunked) and return the response head. The body is written by a
/// separate task while the response is read, so an early answer is seen before the
/// server closes the connection on the unread rest.
async fn raw_post(
    addr: std::net::SocketAddr,
    path: &str,
    body_len: usize,
    chunked: bool,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {body_len}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer test-admin-token\r\n\
         Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 << 10];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            if chunked {
                wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            }
            wr.write_all(&chunk[..n]).await?;
            if chunked {
                wr.write_all(b"\r\n").await?;
            }
            left -= n;
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    // Bounded: the head is a few hundred bytes; stop at its end, EOF, or 64 KiB.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65_536 {
        match tokio::time::timeout(Duration::from_secs(30), rd.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    writer.abort();
    String::from_utf8_lossy(&buf).into_owned()
}

/// A body over the limit is a 413 problem, on the public lookup and the admin writes,
/// declared (Content-Length) or streamed (chunked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413() {
    let db = TestDb::new(Backend::Sqlite).await;
    let reg = start_registry(test_config(&db, vec![])).await;
    let over = cds_registry::api::MAX_BODY_BYTES + 1;
    for (path, chunked) in [
        ("/v1/lookup", false),
        ("/v1/hosts", false),
        ("/v1/crawls", false),
        ("/v1/lookup", true),
        ("/v1/crawls", true),
    ] {
        let head = raw_post(reg.addr, path, over, chunked).await;
        assert!(
            head.starts_with("HTTP/1.1 413"),
            "{path} chunked={chunked}: {head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{path} chunked={chunked}: {head}"
        );
    }
    reg.shutdown().await.unwrap();
}

/// CORS `*` on the public reads only; the admin writes get no CORS headers, preflight or
/// not. Swagger UI has a CSP and may not be framed; every response has `nosniff`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_headers() {
    let db = TestDb::new(Backend::Sqlite).await;
    let reg = start_registry(test_config(&db, vec![])).await;
    let base = reg.url();
    let c = reqwest::Client::new();
    let origin = "https://dashboard.example";
    let acao = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let r = c
        .get(format!("{base}/v1/hosts"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&r).as_deref(), Some("*"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // Caches must key on the CORS request headers and on the encoding, each named once.
    let vary: Vec<String> = r
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect();
    let names: Vec<&str> = vary
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for name in ["accept-encoding", "origin", "access-control-request-method"] {
        assert_eq!(
            names.iter().filter(|n| **n == name).count(),
            1,
            "{name} in {vary:?}"
        );
    }
    let preflight = |path: &str, method: &str| {
        c.request(reqwest::Method::OPTIONS, format!("{base}{path}"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let r = preflight("/v1/lookup", "POST").await.unwrap();
    assert_eq!(acao(&r).as_deref(), Some("*"));
    for (path, method) in [
        ("/v1/hosts", "POST"),
        ("/v1/hosts/1", "DELETE"),
        ("/v1/crawls", "POST"),
    ] {
        let r = preflight(path, method).await.unwrap();
        assert_eq!(acao(&r), None, "{method} {path}");
        assert!(
            !r.headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{method} {path}: {:?}",
            r.headers()
        );
    }
    let r = c
        .post(format!("{base}/v1/hosts"))
        .header("origin", origin)
        .bearer_auth("test-admin-token")
        .json(&json!({"host": "cors-check.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(acao(&r), None);

    let r = c.get(format!("{base}/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let r = c.get(format!("{base}/v1/coverage")).send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    reg.shutdown().await.unwrap();
}

/// The admin token must match byte for byte: extra whitespace after `Bearer` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_compare_is_exact() {
    let db = TestDb::new(Backend::Sqlite).await;
    let reg = start_registry(test_config(&db, vec![])).await;
    let c = reqwest::Client::new();
    let url = format!("{}/v1/hosts", reg.url());
    let body = json!({"host": "exact-token.example"});
    for auth in [
        "Bearer  test-admin-token",
        "Bearer \ttest-admin-token",
        "bearer test-admin-token",
    ] {
        let r = c
            .post(&url)
            .header("authorization", auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
    }
    let r = c
        .post(&url)
        .header("authorization", "Bearer test-admin-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    reg.shutdown().await.unwrap();
}

/// Endpoints without query parameters reject any, naming it, like the search endpoints.
async fn unknown_query_parameters_are_rejected(backend: Backend) {
    let db = TestDb::new(backend).await;
    let reg = start_registry(test_config(&db, vec![])).await;
    let base = reg.url();
    let c = reqwest::Client::new();
    for path in [
        "/v1/hosts?offset=5",
        "/v1/servers?page=2",
        "/v1/servers/1?verbose",
        "/v1/crawls/1?x=1",
        "/v1/coverage?comodity=gas",
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        let d = common::problem(r, 400, path).await.detail;
        let name = path.split_once('?').unwrap().1.split('=').next().unwrap();
        assert!(d.contains(&format!("`{name}`")), "{path}: {d}");
    }
    for (path, code) in [
        ("/v1/hosts", 200),
        ("/v1/servers", 200),
        ("/v1/servers/1", 404),
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), code, "{path}");
    }
    // The admin writes too, and a bad host id is problem+json like a bad server id.
    let add = c
        .post(format!("{base}/v1/hosts?dry=1"))
        .bearer_auth("test-admin-token")
        .json(&serde_json::json!({"host": "a.example"}))
        .send()
        .await
        .unwrap();
    common::problem(add, 400, "POST /v1/hosts?dry=1").await;
    for path in ["/v1/hosts/1?force=1", "/v1/hosts/abc"] {
        let r = c
            .delete(format!("{base}{path}"))
            .bearer_auth("test-admin-token")
            .send()
            .await
            .unwrap();
        common::problem(r, 400, path).await;
    }
    assert!(reg.state.store.list_hosts().await.unwrap().is_empty());
    reg.shutdown().await.unwrap();
}

/// The database goes away: the store-backed reads answer 503 problem+json with
/// `Retry-After` (not 500), `/readyz` says degraded, lookups keep answering from memory.
/// Postgres refuses connections (`ALLOW_CONNECTIONS false`, sessions terminated) and then
/// comes back; SQLite's pool is closed (an embedded file has no server to stop, and root
/// ignores file permissions).
async fn database_outage_is_503(backend: Backend) {
    let db = TestDb::new(backend).await;
    let reg = start_registry(test_config(&db, vec![])).await;
    reg.state
        .store
        .add_hosts(&[Seed::Host("outage.example".into())], "seed")
        .await
        .unwrap();
    let base = reg.url();
    let c = reqwest::Client::new();
    for path in ["/v1/hosts", "/v1/servers"] {
        assert_eq!(
            c.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = None;
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::postgres::PgConnection::connect(&common::postgres_admin_url())
                .await
                .unwrap();
            sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&name)
            .execute(&mut conn)
            .await
            .unwrap();
            admin = Some(conn);
        }
        Backend::Sqlite => reg.state.store.close().await,
    }
    for path in [
        "/v1/hosts",
        "/v1/servers",
        "/v1/servers/1",
        "/v1/findings",
        "/v1/crawls",
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert!(r.headers().get("retry-after").is_some(), "{path}");
        common::problem(r, 503, path).await;
    }
    assert_eq!(
        c.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let r = c
        .get(format!("{base}/v1/lookup?lat=10&lon=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    if let Some(mut conn) = admin {
        // Back up: the pool reconnects and the same reads answer again.
        sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .execute(&mut conn)
            .await
            .unwrap();
        for path in ["/v1/hosts", "/v1/servers"] {
            assert_eq!(
                c.get(format!("{base}{path}"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                200
            );
        }
    }
    reg.shutdown().await.ok();
}

both_backends!(
    unknown_query_parameters_are_rejected,
    database_outage_is_503
);
