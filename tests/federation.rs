//! The registry as a CDS server (issue 18, DESIGN.md "Federation"), on both backends:
//! its own `validate` accepts what it publishes, a second registry crawling it answers
//! the same lookups, a change at a utility travels through both, and registries that
//! crawl each other (or a third that crawls both) do not multiply entries.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cds_registry::cli::serve::Running;
use cds_registry::config::Config;
use cds_registry::seeds::Seed;
use cds_testkit::web::FixtureWeb;
use cds_testkit::ExpectedExt;
use common::{crawled_fixture_web_with, get_ok_json, start_registry, test_config, Backend, TestDb};
use serde_json::Value;

both_backends!(
    published_documents_validate_page_and_revalidate,
    a_second_registry_answers_the_same_lookups_and_follows_changes,
    registries_crawling_each_other_do_not_multiply_entries,
);

const WELL_KNOWN: &str = "/.well-known/cds-server-metadata.json";

fn publishing(cfg: &mut Config) {
    cfg.publish.enabled = true;
    // Small pages, so the fixture's listing spans several.
    cfg.publish.page_size = 4;
}

/// A registry on `backend` that crawls only `seeds` (other registries), publishing too.
async fn registry_of(backend: Backend, seeds: &[String]) -> (TestDb, Running) {
    let db = TestDb::new(backend).await;
    let mut cfg = test_config(&db, seeds.to_vec());
    publishing(&mut cfg);
    let reg = start_registry(cfg).await;
    let s: Vec<Seed> = seeds.iter().cloned().map(Seed::Host).collect();
    reg.state.store.add_hosts(&s, "seed").await.unwrap();
    (db, reg)
}

fn host_of(reg: &Running) -> String {
    reg.addr.to_string()
}

/// Crawl everything due now and bring the index up to the commits.
async fn crawl(reg: &Running) {
    let run = reg.crawler.run("test", &[]).await.unwrap();
    for (seed, outcome) in &run.outcomes {
        assert!(outcome.keeps_data(), "{seed}: {outcome}");
    }
    reg.state.reload_index().await.unwrap();
}

/// `GET url` (absolute), answered with JSON.
async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

/// The status of `GET url` with one request header.
async fn status_with(c: &reqwest::Client, url: &str, header: &str, value: &str) -> u16 {
    let r = c.get(url).header(header, value).send().await.unwrap();
    r.status().as_u16()
}

/// The `id`s of published entries.
fn ids_of(entries: &[Value]) -> BTreeSet<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every entry of a registry's published listing, following `next` to the end.
async fn published(c: &reqwest::Client, reg: &Running) -> Vec<Value> {
    let meta = get_ok_json(c, &reg.url(), WELL_KNOWN).await;
    let mut url = meta["coverage"].as_str().unwrap().to_owned();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let page = get_json(c, &url).await;
        out.extend(page["coverage_entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => url = n.to_owned(),
            None => return out,
        }
    }
    panic!("the listing did not end within 1000 pages");
}

/// A lookup answer as what it says about each entry: (entity, entry name, country, the
/// role its origin gave it), in answer order.
fn answer(rows: &Value) -> Vec<(String, String, String, String)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let role = r["origin"]["role"].as_str().or(r["role"].as_str());
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (
                s("entity_name"),
                s("name"),
                s("country"),
                role.unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `answer` with rows in a canonical order: entries that tie in the ranking (same role
/// and territory) come by registry id, which two registries assign differently.
fn answer_set(rows: &Value) -> Vec<(String, String, String, String)> {
    let mut a = answer(rows);
    a.sort();
    a
}

async fn lookup(c: &reqwest::Client, reg: &Running, lat: f64, lon: f64) -> Value {
    get_ok_json(c, &reg.url(), &format!("/v1/lookup?lat={lat}&lon={lon}")).await["results"].clone()
}

async fn published_documents_validate_page_and_revalidate(backend: Backend) {
    let (web, db, a) = crawled_fixture_web_with(backend, publishing).await;
    let c = reqwest::Client::new();
    let base = a.url();

    // The metadata: capabilities are `coverage` plus what the entries offer by proxy,
    // never `oauth` (a registry has no `oauth_metadata` of its own).
    let meta = get_ok_json(&c, &base, WELL_KNOWN).await;
    assert_eq!(meta["cds_metadata_url"], format!("{base}{WELL_KNOWN}"));
    let caps: Vec<&str> = meta["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"coverage"), "{caps:?}");
    assert!(!caps.contains(&"oauth"), "{caps:?}");

    // The listing: every page, newest `updated` first, role aggregator, each entry's
    // origin naming its server and this registry as the one hop.
    let entries = published(&c, &a).await;
    assert!(entries.len() > 8, "several pages of 4: {}", entries.len());
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = entries
        .iter()
        .map(|e| chrono::DateTime::parse_from_rfc3339(e["updated"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let ids = ids_of(&entries);
    assert_eq!(ids.len(), entries.len(), "ids are unique");
    for e in &entries {
        assert_eq!(e["role"], "aggregator");
        assert_eq!(
            e["cds_registry_origin"]["via"],
            serde_json::json!([format!("{base}{WELL_KNOWN}")])
        );
        let origin = e["cds_registry_origin"]["server"].as_str().unwrap();
        assert!(
            origin.ends_with(".json") && !origin.starts_with(&base),
            "{origin}"
        );
        assert!(!e["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "oauth"));
    }
    // Every entry of a server without error findings is published; nothing else is.
    let searchable = get_ok_json(&c, &base, "/v1/coverage?limit=1000").await;
    let rows = searchable["coverage"].as_array().unwrap();
    let all: BTreeSet<String> = rows.iter().map(|r| r["id"].to_string()).collect();
    assert!(ids.is_subset(&all));
    let findings = get_ok_json(&c, &base, "/v1/findings?severity=error&limit=1000").await;
    let faulty: BTreeSet<i64> = findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["server_id"].as_i64())
        .collect();
    let clean: BTreeSet<String> = rows
        .iter()
        .filter(|r| !faulty.contains(&r["server"]["id"].as_i64().unwrap()))
        .map(|r| r["id"].to_string())
        .collect();
    assert!(!clean.is_empty());
    assert!(
        clean.is_subset(&ids),
        "missing: {:?}",
        clean.difference(&ids)
    );

    // `previous` leads back; `ids` filters (WG1-01 §4.2).
    let first: Value = get_ok_json(&c, &base, "/v1/cds/coverage").await;
    let second = get_json(&c, first["next"].as_str().unwrap()).await;
    assert_eq!(first["previous"], Value::Null);
    let back = get_json(&c, second["previous"].as_str().unwrap()).await;
    assert_eq!(back["coverage_entries"], first["coverage_entries"]);
    let two: Vec<&String> = ids.iter().take(2).collect();
    let filtered = get_ok_json(
        &c,
        &base,
        &format!("/v1/cds/coverage?ids={}%20{}", two[0], two[1]),
    )
    .await;
    let got: BTreeSet<&str> = filtered["coverage_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, two.iter().map(|s| s.as_str()).collect());

    // ETag and Last-Modified on each document; a repeat is a 304 without a body.
    let geometry = entries[0]["geojson_resource"].as_str().unwrap().to_owned();
    for url in [
        format!("{base}{WELL_KNOWN}"),
        first["next"].as_str().unwrap().to_owned(),
        geometry,
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        let date = r.headers()["last-modified"].to_str().unwrap().to_owned();
        for (header, value, want) in [
            ("if-none-match", tag.as_str(), 304),
            ("if-modified-since", date.as_str(), 304),
            ("if-none-match", "\"x\"", 200),
        ] {
            assert_eq!(
                status_with(&c, &url, header, value).await,
                want,
                "{url} {header}"
            );
        }
    }

    // The registry's own validator accepts all of it (exit 0).
    let mut cmd = common::registry_cli(&db.url, &[host_of(&a)]);
    cmd.arg("validate").arg(format!("{base}{WELL_KNOWN}"));
    let (code, out, err) = tokio::task::spawn_blocking(move || common::run_cmd(&mut cmd))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\n0 errors, 0 warnings, "), "{out}");

    a.shutdown().await.unwrap();
    web.shutdown().await;
}

async fn a_second_registry_answers_the_same_lookups_and_follows_changes(backend: Backend) {
    let (web, _db_a, a) = crawled_fixture_web_with(backend, publishing).await;
    let (_db_b, b) = registry_of(backend, &[host_of(&a)]).await;
    crawl(&b).await;
    let c = reqwest::Client::new();
    let published = ids_of(&published(&c, &a).await);
    let exp = web.expected();
    let mut compared = 0;
    for p in &exp.points {
        let from_a = lookup(&c, &a, p.lat, p.lon).await;
        // B knows what A publishes: A's answer without the entries A does not publish.
        let want: Vec<Value> = from_a
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| published.contains(&r["id"].to_string()))
            .cloned()
            .collect();
        let want = Value::Array(want);
        let got = lookup(&c, &b, p.lat, p.lon).await;
        assert_eq!(answer_set(&got), answer_set(&want), "county {}", p.county);
        // Ranked the same: by the origin's role first.
        let roles = |v: &Value| answer(v).into_iter().map(|a| a.3).collect::<Vec<_>>();
        assert_eq!(roles(&got), roles(&want), "county {}", p.county);
        compared += answer(&got).len();
    }
    assert!(compared > 0, "the points are served");

    // A change at a utility: A's next crawl takes it, B's next crawl of A takes it on.
    common::rename_everything(&web);
    crawl(&a).await;
    crawl(&b).await;
    let p = exp.points.iter().find(|p| !p.served_by.is_empty()).unwrap();
    let got = answer(&lookup(&c, &b, p.lat, p.lon).await);
    assert!(!got.is_empty());
    assert!(got.iter().all(|a| a.1.ends_with("(renamed)")), "{got:?}");

    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    web.shutdown().await;
}

/// Per point: how many times each origin entry is answered.
async fn answered_origins(
    c: &reqwest::Client,
    reg: &Running,
    web: &FixtureWeb,
) -> Vec<BTreeMap<(String, String), usize>> {
    let mut out = Vec::new();
    for p in &web.expected().points {
        let mut n = BTreeMap::new();
        for r in lookup(c, reg, p.lat, p.lon).await.as_array().unwrap() {
            let key = match r["origin"].as_object() {
                Some(o) => (o["server"].to_string(), o["id"].to_string()),
                None => (r["server"]["url"].to_string(), r["entry_id"].to_string()),
            };
            *n.entry(key).or_insert(0) += 1;
        }
        out.push(n);
    }
    out
}

async fn registries_crawling_each_other_do_not_multiply_entries(backend: Backend) {
    // A crawls the utilities; B crawls A; A also crawls B (a loop); C crawls both. The
    // registries all listen on 127.0.0.1 (any port), the fixtures elsewhere in 127/8.
    let (web, _db_a, a) = crawled_fixture_web_with(backend, |cfg| {
        publishing(cfg);
        cfg.crawl.allow_http.push("127.0.0.1".into());
    })
    .await;
    let (_db_b, b) = registry_of(backend, &[host_of(&a)]).await;
    crawl(&b).await;
    a.state
        .store
        .add_hosts(&[Seed::Host(host_of(&b))], "seed")
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let count = |v: Value| v["total"].as_u64().unwrap();
    let a_before = count(get_ok_json(&c, &a.url(), "/v1/coverage?limit=1").await);
    let a_answers = answered_origins(&c, &a, &web).await;

    // Each registry crawls the other twice: what comes back through itself is not
    // imported (REG-LOOP), so nothing grows.
    for _ in 0..2 {
        let run = a.crawler.run("test", &[host_of(&b)]).await.unwrap();
        assert!(run.outcomes[0].1.keeps_data(), "{:?}", run.outcomes);
        a.state.reload_index().await.unwrap();
        crawl(&b).await;
    }
    assert_eq!(
        count(get_ok_json(&c, &a.url(), "/v1/coverage?limit=1").await),
        a_before
    );
    assert_eq!(answered_origins(&c, &a, &web).await, a_answers);
    let loops = common::findings_of_rule(&a.state.store, "REG-LOOP").await;
    assert_eq!(loops.len(), 1, "{loops:?}");
    let a_published = published(&c, &a).await.len();
    let b_published = published(&c, &b).await;
    assert_eq!(
        b_published.len(),
        a_published,
        "B publishes A's entries once"
    );
    for e in &b_published {
        assert_eq!(e["cds_registry_origin"]["via"].as_array().unwrap().len(), 2);
    }

    // C reads the same entries from A (one hop) and from B (two): it answers each once,
    // A's copy (fewer hops) shown.
    let (_db_c, reg_c) = registry_of(backend, &[host_of(&a), host_of(&b)]).await;
    crawl(&reg_c).await;
    let total_c = count(get_ok_json(&c, &reg_c.url(), "/v1/coverage?limit=1").await);
    assert_eq!(total_c as usize, a_published);
    let a_server = get_ok_json(&c, &a.url(), WELL_KNOWN).await["cds_metadata_url"].clone();
    for (i, answers) in answered_origins(&c, &reg_c, &web).await.iter().enumerate() {
        assert!(answers.values().all(|&n| n == 1), "point {i}: {answers:?}");
    }
    let exp = web.expected();
    let p = exp.points.iter().find(|p| !p.served_by.is_empty()).unwrap();
    for r in lookup(&c, &reg_c, p.lat, p.lon).await.as_array().unwrap() {
        assert_eq!(
            r["server"]["url"], a_server,
            "the copy with fewer hops: {r}"
        );
    }

    reg_c.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    web.shutdown().await;
}
