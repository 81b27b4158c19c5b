//! The HTTP API of `serve` on a real port, after a real crawl, on both backends.

mod common;

use cds_testkit::web::names;
use cds_testkit::ExpectedExt;
use common::{crawled_fixture_web, start_registry, test_config, Backend, TestDb};
use serde_json::{json, Value};

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every row of a listing, walked a page of `limit` at a time along `next_cursor`.
async fn walk(c: &reqwest::Client, base: &str, path: &str, key: &str, limit: u32) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut url = format!("{base}{path}?limit={limit}");
    loop {
        let (s, v) = get(c, url.clone()).await;
        assert_eq!(s, 200, "{url}: {v}");
        let page = v[key].as_array().unwrap();
        assert!(page.len() <= limit as usize, "{url}: {v}");
        rows.extend(page.iter().cloned());
        match v["next_cursor"].as_str() {
            Some(next) => {
                assert!(!page.is_empty(), "{url}: a cursor after an empty page");
                url = format!("{base}{path}?limit={limit}&cursor={next}");
            }
            None => return rows,
        }
    }
}

/// `/v1/hosts` and `/v1/servers` page by id: walking small pages gives every row of the
/// one-page answer once, in order; a cursor that is not theirs is a 400 problem+json.
async fn listings_page_without_gaps_or_repeats(c: &reqwest::Client, base: &str) {
    for (path, key) in [("/v1/hosts", "hosts"), ("/v1/servers", "servers")] {
        let (_, all) = get(c, format!("{base}{path}")).await;
        assert!(all["next_cursor"].is_null(), "{all}");
        let ids = |rows: &[Value]| -> Vec<i64> {
            rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
        };
        let want = ids(all[key].as_array().unwrap());
        assert!(want.len() > 2, "{path}: too few rows to page");
        assert!(want.windows(2).all(|w| w[0] < w[1]), "{path}: {want:?}");
        for limit in [1, 2, 3] {
            assert_eq!(ids(&walk(c, base, path, key, limit).await), want, "{path}");
        }
        for bad in ["zz", "3", &hex_cursor("k:1"), "limit=0"] {
            let url = match bad.strip_prefix("limit=") {
                Some(l) => format!("{base}{path}?limit={l}"),
                None => format!("{base}{path}?cursor={bad}"),
            };
            let r = c.get(url).send().await.unwrap();
            common::problem(r, 400, &format!("{path} {bad}")).await;
        }
    }
    // Runs and changes page with the same cursors and keep today's parameters.
    let runs = walk(c, base, "/v1/crawls", "runs", 1).await;
    assert!(!runs.is_empty());
    let first = runs[0]["id"].as_i64().unwrap();
    let (s, v) = get(c, format!("{base}/v1/crawls?cursor={}", first + 1)).await;
    assert_eq!((s, v["runs"][0]["id"].as_i64()), (200, Some(first)), "{v}");
    let changes = walk(c, base, "/v1/changes", "changes", 7).await;
    let (_, v) = get(c, format!("{base}/v1/changes?after=0&limit=5000")).await;
    assert_eq!(v["changes"].as_array().unwrap(), &changes);
    assert_eq!(
        (v["more"].as_bool(), v["next_cursor"].is_null()),
        (Some(false), true)
    );
}

fn hex_cursor(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn read_endpoints_after_a_crawl(backend: Backend) {
    let (web, _db, reg) = crawled_fixture_web(backend).await;
    let base = reg.url();
    let c = reqwest::Client::new();

    let (s, v) = get(&c, format!("{base}/healthz")).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = get(&c, format!("{base}/readyz")).await;
    assert_eq!(s, 200);
    assert_eq!(v["database"], "ok");

    let (s, v) = get(&c, format!("{base}/v1/hosts")).await;
    assert_eq!(s, 200);
    // The seeds, plus the two hosts found through the 301 and related_metadata.
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), web.seeds().len() + 2, "{v}");
    let discovered: Vec<&str> = hosts
        .iter()
        .filter(|h| h["source"] == "discovered")
        .map(|h| h["seed"].as_str().unwrap())
        .collect();
    assert!(
        discovered.contains(&web.old_dominion_new.host().as_str()),
        "{discovered:?}"
    );
    assert!(
        discovered.contains(&web.great_lakes_electric.host().as_str()),
        "{discovered:?}"
    );

    let (s, v) = get(&c, format!("{base}/v1/servers")).await;
    assert_eq!(s, 200);
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), web.expected().stored_servers());
    let root = servers
        .iter()
        .find(|x| x["name"] == names::GREAT_LAKES_HOLDING)
        .unwrap();
    let (s, d) = get(&c, format!("{base}/v1/servers/{}", root["id"])).await;
    assert_eq!(s, 200);
    assert_eq!(d["related"].as_array().unwrap().len(), 2, "{d}");
    assert!(d["crawl_history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["outcome"] == "ok"));

    let sierra = servers.iter().find(|x| x["name"] == names::SIERRA).unwrap();
    let (_, d) = get(&c, format!("{base}/v1/servers/{}", sierra["id"])).await;
    let cov = d["coverage"].as_array().unwrap();
    assert_eq!(cov.len(), 2);
    assert!(cov
        .iter()
        .all(|e| e["raw"]["id"] == e["entry_id"] && e["id"].is_i64()));
    assert_eq!(d["metadata"]["name"], names::SIERRA);
    assert!(
        d["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "info"),
        "{d}"
    );

    // Findings across servers, filtered.
    let (s, v) = get(&c, format!("{base}/v1/findings?rule=WK-LEGACY")).await;
    assert_eq!(s, 200);
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    let r = c
        .get(format!("{base}/v1/findings?severity=fatal"))
        .send()
        .await
        .unwrap();
    let p = common::problem(r, 400, "severity=fatal").await;
    assert!(p.detail.contains("severity"), "{p:?}");

    // Errors are problem+json with a useful detail.
    for (path, status) in [
        ("/v1/servers/abc", 400),
        ("/v1/servers/999999", 404),
        ("/v1/nothing-here", 404),
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        common::problem(r, status, path).await;
    }

    listings_page_without_gaps_or_repeats(&c, &base).await;

    reg.shutdown().await.unwrap();
    web.shutdown().await;
}

async fn admin_writes_need_the_token(backend: Backend) {
    let db = TestDb::new(backend).await;
    let cfg = test_config(&db, vec![]);
    let reg = start_registry(cfg).await;
    let base = reg.url();
    let c = reqwest::Client::new();
    let body = json!({"host": "new-utility.example"});
    let post = |token: Option<&'static str>, body: Value| {
        let mut req = c.post(format!("{base}/v1/hosts")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap() }
    };

    assert_eq!(post(None, body.clone()).await.status(), 401);
    assert_eq!(post(Some("wrong"), body.clone()).await.status(), 401);
    let r = post(Some("test-admin-token"), body.clone()).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["hosts"][0]["id"].as_i64().unwrap();
    // Deduplicated: adding it again creates nothing.
    let again = json!({"hosts": ["NEW-utility.example"]});
    let r = post(Some("test-admin-token"), again).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["added"], 0);
    // Validated.
    let bad = json!({"host": "ftp://x.example/"});
    assert_eq!(post(Some("test-admin-token"), bad).await.status(), 400);
    let r = c
        .delete(format!("{base}/v1/hosts/{id}"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let hosts = reg.state.store.list_hosts().await.unwrap();
    assert_eq!(hosts[0].status.as_str(), "removed");
    reg.shutdown().await.unwrap();

    // No token configured: writes are disabled, not open.
    let mut cfg = test_config(&db, vec![]);
    cfg.admin_token = None;
    let reg = start_registry(cfg).await;
    let r = c
        .post(format!("{}/v1/hosts", reg.url()))
        .bearer_auth("anything")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    reg.shutdown().await.unwrap();
}

both_backends!(read_endpoints_after_a_crawl, admin_writes_need_the_token);
