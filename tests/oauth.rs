//! The `oauth` capability end to end, on both backends: the crawler stores each server's
//! OAuth metadata (WG1-02 §3) with its state, the search API shows and filters by the
//! scopes offered at each coverage entry, the validator's OAUTH-* rules reach
//! `/v1/findings`, and a change in `coverages_supported` reaches the change feed.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use cds_registry::cds::WELL_KNOWN_PATH;
use cds_registry::cli::serve::Running;
use cds_registry::seeds::Seed;
use cds_registry::store::ServerRow;
use cds_testkit::web::{names, FixtureWeb};
use cds_testkit::ExpectedExt;
use cds_testkit::{publish, FixtureServer, Published, UtilitySpec};
use common::{start_registry, test_config, Backend, TestDb};
use serde_json::{json, Value};

both_backends!(
    fixture_scopes_are_stored_with_the_servers,
    lookup_shows_the_scopes_offered_at_each_entry,
    scope_filter_narrows_coverage_facets_and_lookup,
    oauth_defects_are_reported_by_rule,
    refused_and_failing_oauth_metadata,
    scope_coverage_changes_reach_the_change_feed,
);

struct Env {
    reg: Running,
    c: reqwest::Client,
    _db: TestDb,
}

/// A registry on `backend` that may fetch plain http from `allow_http`.
async fn registry(backend: Backend, allow_http: Vec<String>) -> Env {
    let db = TestDb::new(backend).await;
    let cfg = test_config(&db, allow_http);
    let reg = start_registry(cfg).await;
    Env {
        reg,
        c: reqwest::Client::new(),
        _db: db,
    }
}

impl Env {
    async fn seed_and_crawl(&self, hosts: Vec<String>) {
        let seeds: Vec<Seed> = hosts.into_iter().map(Seed::Host).collect();
        self.reg
            .state
            .store
            .add_hosts(&seeds, "seed")
            .await
            .unwrap();
        self.crawl(&[]).await;
    }

    /// Crawl (every due host, or the named ones); returns the outcome class per host.
    async fn crawl(&self, named: &[String]) -> Vec<String> {
        let run = self.reg.crawler.run("test", named).await.unwrap();
        // The commit callback reloads the index in the background; make it certain.
        self.reg.state.reload_index().await.unwrap();
        run.outcomes.into_iter().map(|o| o.1.to_string()).collect()
    }

    async fn get(&self, path: &str) -> Value {
        common::get_ok_json(&self.c, &self.reg.url(), path).await
    }

    async fn server(&self, metadata_url: &str) -> ServerRow {
        let list = self.reg.state.store.list_servers().await.unwrap();
        list.into_iter()
            .find(|s| s.url == metadata_url)
            .unwrap_or_else(|| panic!("{metadata_url} not stored"))
    }

    /// Rule ids of the stored findings of a server, through the API.
    async fn rules_of(&self, server_id: i64) -> BTreeSet<String> {
        let v = self
            .get(&format!("/v1/findings?server={server_id}&limit=1000"))
            .await;
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn done(self) {
        self.reg.shutdown().await.unwrap();
    }
}

async fn web_env(backend: Backend) -> (FixtureWeb, Env) {
    let web = FixtureWeb::start().await.unwrap();
    let env = registry(backend, web.allow_http()).await;
    env.seed_and_crawl(web.seeds()).await;
    (web, env)
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The scopes the fixture facts say are offered for `entry_id` of server `server`.
fn expected_scopes(web: &FixtureWeb, server: &str, entry_id: &str) -> BTreeSet<String> {
    web.expected()
        .scopes
        .iter()
        .filter(|s| s.server == server && s.coverages_supported.iter().any(|c| c == entry_id))
        .map(|s| s.scope.clone())
        .collect()
}

async fn fixture_scopes_are_stored_with_the_servers(backend: Backend) {
    let (web, env) = web_env(backend).await;
    let exp = web.expected();
    let store = &env.reg.state.store;
    let validators = store.validators().await.unwrap();
    for s in exp.servers.iter().filter(|s| s.stored_by_default) {
        let id = env.server(&s.metadata_url).await.id;
        let stored = store.server_oauth(id).await.unwrap();
        let want: Vec<_> = exp.scopes.iter().filter(|x| x.server == s.name).collect();
        if want.is_empty() {
            assert_eq!(stored, None, "{}", s.name);
            continue;
        }
        let stored = stored.unwrap_or_else(|| panic!("{}: no OAuth metadata", s.name));
        let published = web.published(&s.name).unwrap();
        assert_eq!(
            Some(&stored.url),
            published.oauth_metadata_url.as_ref(),
            "{}",
            s.name
        );
        let base = stored.url.split("/.well-known/").next().unwrap().to_owned();
        assert_eq!(
            stored.metadata.registration_endpoint,
            Some(format!("{base}/oauth/register"))
        );
        assert_eq!(
            stored.metadata.human_registration,
            Some(format!("{base}/developers/register"))
        );
        let got: Vec<(String, Vec<String>)> = stored
            .metadata
            .scopes
            .iter()
            .map(|x| (x.id.clone(), x.coverages.clone()))
            .collect();
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|x| (x.scope.clone(), x.coverages_supported.clone()))
            .collect();
        assert_eq!(got, want, "{}", s.name);
        // The document is kept like the others (conditional GET, history).
        assert!(validators.contains_key(&stored.url), "{}", stored.url);
    }
    // Sierra's scopes, by the fixture facts: cds_usage only on the electric entry.
    let sierra = env
        .server(&exp.server(names::SIERRA).unwrap().metadata_url)
        .await;
    let o = store.server_oauth(sierra.id).await.unwrap().unwrap();
    let usage = o
        .metadata
        .scopes
        .iter()
        .find(|s| s.id == "cds_usage")
        .unwrap();
    assert_eq!(usage.coverages, ["sge-electric"]);
    assert_eq!(usage.name.as_deref(), Some("Interval usage"));
    assert_eq!(usage.grant_types, ["authorization_code", "refresh_token"]);
    // The server's page in the API shows the same stored document.
    let detail = env.get(&format!("/v1/servers/{}", sierra.id)).await;
    assert_eq!(detail["oauth"], serde_json::to_value(&o).unwrap());
    assert_eq!(detail["oauth"]["url"], o.url.as_str());
    // A server without OAuth metadata shows null.
    let plain = exp
        .servers
        .iter()
        .filter(|s| s.stored_by_default)
        .find(|s| !exp.scopes.iter().any(|x| x.server == s.name))
        .expect("a fixture server without OAuth");
    let plain_id = env.server(&plain.metadata_url).await.id;
    let detail = env.get(&format!("/v1/servers/{plain_id}")).await;
    assert!(detail["oauth"].is_null(), "{}", detail["oauth"]);
    env.done().await;
    web.shutdown().await;
}

async fn lookup_shows_the_scopes_offered_at_each_entry(backend: Backend) {
    let (web, env) = web_env(backend).await;
    let exp = web.expected();
    let sierra_base = web.sierra.url("");
    // San Benito: electric only; Monterey: electric and gas.
    for (fips, want_entries) in [
        ("06069", vec!["sge-electric"]),
        ("06053", vec!["sge-electric", "sge-gas"]),
    ] {
        let p = exp.point(fips).unwrap();
        let v = env
            .get(&format!("/v1/lookup?lat={}&lon={}", p.lat, p.lon))
            .await;
        let rows = v["results"].as_array().unwrap();
        let got: BTreeSet<&str> = rows
            .iter()
            .map(|r| r["entry_id"].as_str().unwrap())
            .collect();
        assert_eq!(got, want_entries.iter().copied().collect(), "{fips}");
        for r in rows {
            let entry = r["entry_id"].as_str().unwrap();
            let want = expected_scopes(&web, names::SIERRA, entry);
            assert!(!want.is_empty());
            assert_eq!(strs(&r["scopes"]), want, "{fips} {entry}");
            let oauth = &r["oauth"];
            assert_eq!(
                oauth["registration_endpoint"],
                format!("{sierra_base}/oauth/register")
            );
            assert_eq!(
                oauth["human_registration"],
                format!("{sierra_base}/developers/register")
            );
            let detailed: BTreeSet<String> = oauth["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["scope"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(detailed, want, "{fips} {entry}");
            for s in oauth["scopes"].as_array().unwrap() {
                let id = s["scope"].as_str().unwrap();
                assert_eq!(
                    s["documentation"],
                    format!("{sierra_base}/cds/docs#scope-{id}")
                );
                assert_eq!(
                    s["grant_types"],
                    json!(["authorization_code", "refresh_token"])
                );
                assert!(s["name"].is_string() && s["description"].is_string());
            }
            if entry == "sge-gas" {
                assert!(!want.contains("cds_usage"), "usage is electric only");
            }
        }
        let electric = rows
            .iter()
            .find(|r| r["entry_id"] == "sge-electric")
            .unwrap();
        let usage = electric["oauth"]["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["scope"] == "cds_usage")
            .unwrap();
        assert_eq!(usage["name"], "Interval usage");
        assert_eq!(
            usage["description"],
            "Smart-meter interval usage (15-minute electricity)."
        );
    }
    // An entry of a server without OAuth metadata: no scopes, no oauth block.
    let lone = exp.point("48453").unwrap();
    let v = env
        .get(&format!("/v1/lookup?lat={}&lon={}", lone.lat, lone.lon))
        .await;
    let r = &v["results"][0];
    assert_eq!(r["entry_id"], "lspc-service-area");
    assert_eq!(r["scopes"], json!([]));
    assert_eq!(r["oauth"], Value::Null);
    // An incremental reload (what an API replica does after a crawler's commit) reads the
    // OAuth offers of the reloaded server only; every answer stays the same, for the
    // reloaded server's entries and for the entries reused from the previous index.
    let monterey = exp.point("06053").unwrap();
    let paths = [
        format!("/v1/lookup?lat={}&lon={}", monterey.lat, monterey.lon),
        format!("/v1/lookup?lat={}&lon={}", lone.lat, lone.lon),
        "/v1/coverage?scope=cds_usage&limit=1000".to_owned(),
    ];
    let mut before = Vec::new();
    for p in &paths {
        before.push(env.get(p).await);
    }
    for name in [names::SIERRA, names::LONE_STAR] {
        let server = env.server(&exp.server(name).unwrap().metadata_url).await;
        env.reg.state.reload_servers(&[server.id]).await.unwrap();
        for (p, was) in paths.iter().zip(&before) {
            assert_eq!(&env.get(p).await, was, "{p} after reloading {name}");
        }
    }
    env.done().await;
    web.shutdown().await;
}

async fn scope_filter_narrows_coverage_facets_and_lookup(backend: Backend) {
    let (web, env) = web_env(backend).await;
    let exp = web.expected();
    let stored: BTreeSet<&str> = exp
        .servers
        .iter()
        .filter(|s| s.stored_by_default)
        .map(|s| s.name.as_str())
        .collect();
    let offering = |scope: &str| -> BTreeSet<String> {
        exp.scopes
            .iter()
            .filter(|s| s.scope == scope && stored.contains(s.server.as_str()))
            .flat_map(|s| s.coverages_supported.iter().cloned())
            .collect()
    };
    let usage = offering("cds_usage");
    assert!(usage.contains("sge-electric") && !usage.contains("sge-gas"));

    let v = env.get("/v1/coverage?scope=cds_usage&limit=1000").await;
    let got = common::entry_ids(&v["coverage"]);
    assert_eq!(got, usage);
    assert_eq!(v["total"], usage.len());
    let all = env.get("/v1/coverage?limit=1000").await;
    assert!(all["total"].as_u64().unwrap() > usage.len() as u64);

    let f = env.get("/v1/facets?scope=cds_usage").await;
    assert_eq!(f["total"], usage.len());
    let count = |facets: &Value, field: &str, value: &str| {
        facets[field]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"] == value)
            .map(|c| c["count"].as_u64().unwrap())
    };
    assert_eq!(count(&f, "scope", "cds_usage"), Some(usage.len() as u64));
    let f = env.get("/v1/facets").await;
    let bills = offering("cds_bill_statements");
    assert_eq!(count(&f, "scope", "cds_usage"), Some(usage.len() as u64));
    assert_eq!(
        count(&f, "scope", "cds_bill_statements"),
        Some(bills.len() as u64)
    );

    // At Monterey only the electric entry offers usage data.
    let m = exp.point("06053").unwrap();
    let v = env
        .get(&format!(
            "/v1/lookup?lat={}&lon={}&scope=cds_usage",
            m.lat, m.lon
        ))
        .await;
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v:#}");
    assert_eq!(rows[0]["entry_id"], "sge-electric");

    // Entities: only Sierra offers bill statements.
    let v = env.get("/v1/entities?scope=cds_bill_statements").await;
    let names_got: BTreeSet<&str> = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity_name"].as_str().unwrap())
        .collect();
    assert_eq!(names_got, BTreeSet::from([names::SIERRA]));
    env.done().await;
    web.shutdown().await;
}

/// A small utility with an electric and a gas entry and two scopes.
fn utility(name: &str) -> UtilitySpec {
    common::electric_and_gas_utility(name, "u", "cds_usage", "cds_bill_statements")
}

async fn start_utility(ip: [u8; 4], name: &str) -> (FixtureServer, Published, String) {
    let server = FixtureServer::start(Ipv4Addr::from(ip)).await.unwrap();
    let published = publish(&server, &utility(name));
    let path = url::Url::parse(published.oauth_metadata_url.as_ref().unwrap())
        .unwrap()
        .path()
        .to_owned();
    (server, published, path)
}

async fn oauth_defects_are_reported_by_rule(backend: Backend) {
    let (server, published, path) = start_utility([127, 0, 0, 71], "Defective OAuth Utility").await;
    server.update_json(&path, |v| {
        // RFC 8414 §2 / WG1-02 §3.2 required.
        v.as_object_mut().unwrap().remove("registration_endpoint");
        // RFC 8414 §2: an array of strings.
        v["response_types_supported"] = json!("code");
        v["cds_oauth_version"] = json!("v0");
        // One listed scope without description, one described scope not listed.
        v["scopes_supported"] = json!(["cds_usage", "cds_gas_usage"]);
        // A coverage id that is no entry of this server.
        v["cds_scope_descriptions"]["cds_usage"]["coverages_supported"] =
            json!(["u-electric", "u-water"]);
        // PKCE (per scope, WG1-02 §3.4): `plain` must not be offered, even next to S256.
        v["code_challenge_methods_supported"] = json!(["S256", "plain"]);
        v["cds_scope_descriptions"]["cds_usage"]["code_challenge_methods_supported"] =
            json!(["S256", "plain"]);
    });
    let env = registry(backend, vec![server.host()]).await;
    env.seed_and_crawl(vec![server.host()]).await;
    let s = env.server(&published.metadata_url).await;
    let want: BTreeSet<String> = [
        "HTTP-NOT-HTTPS",
        "OAUTH-REQUIRED:registration_endpoint",
        "OAUTH-TYPE:response_types_supported",
        "OAUTH-VERSION",
        "OAUTH-SCOPE-UNDESCRIBED",
        "OAUTH-SCOPE-UNLISTED",
        "OAUTH-COVERAGE-UNKNOWN",
        "OAUTH-PKCE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(env.rules_of(s.id).await, want);
    // Each at its place in the OAuth document.
    let v = env
        .get(&format!(
            "/v1/findings?server={}&rule=OAUTH-COVERAGE-UNKNOWN",
            s.id
        ))
        .await;
    let f = &v["findings"][0];
    assert_eq!(f["url"], server.url(&path));
    assert_eq!(
        f["pointer"],
        "/cds_scope_descriptions/cds_usage/coverages_supported/1"
    );
    assert_eq!(f["severity"], "error");
    // A listed scope without description is legal (WG1-02 §3.2): a remark only.
    let v = env
        .get(&format!(
            "/v1/findings?server={}&rule=OAUTH-SCOPE-UNDESCRIBED",
            s.id
        ))
        .await;
    assert_eq!(v["findings"][0]["severity"], "info");
    // A defective document is still stored and searchable for what it says.
    let o = env
        .reg
        .state
        .store
        .server_oauth(s.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.metadata.registration_endpoint, None);
    assert_eq!(o.metadata.scopes.len(), 2);
    env.done().await;
    server.shutdown().await;
}

async fn refused_and_failing_oauth_metadata(backend: Backend) {
    let (server, published, path) = start_utility([127, 0, 0, 72], "Sometimes OAuth Utility").await;
    let env = registry(backend, vec![server.host()]).await;
    env.seed_and_crawl(vec![server.host()]).await;
    let store = &env.reg.state.store;
    let s = env.server(&published.metadata_url).await;
    let before = store.server_oauth(s.id).await.unwrap();
    assert!(before.is_some());
    let findings_before = env.rules_of(s.id).await;
    assert_eq!(
        findings_before,
        BTreeSet::from(["HTTP-NOT-HTTPS".to_owned()])
    );

    // The OAuth document fails: the server fails like it would on a coverage page, and
    // what was stored stays (last known good), although its metadata changed meanwhile.
    server.update_json(WELL_KNOWN_PATH, |v| v["description"] = json!("changed"));
    server.set_status(&path, 503, None);
    assert_eq!(env.crawl(&[server.host()]).await, ["http_status"]);
    assert_eq!(store.server_oauth(s.id).await.unwrap(), before);
    let after = env.server(&published.metadata_url).await;
    assert_eq!(after.last_changed_ms, s.last_changed_ms);
    let detail = store.server_detail(s.id).await.unwrap();
    assert_ne!(detail.metadata["description"], "changed");

    // A URL the guard refuses (plain http to a host not allowed): never requested,
    // reported on the metadata, and the server is stored without OAuth metadata.
    server.clear_status(&path);
    let refused = "http://127.0.0.73:9/.well-known/oauth-authorization-server";
    server.update_json(WELL_KNOWN_PATH, |v| v["oauth_metadata"] = json!(refused));
    assert_eq!(env.crawl(&[server.host()]).await, ["ok"]);
    let v = env
        .get(&format!("/v1/findings?server={}&rule=URL-BLOCKED", s.id))
        .await;
    let f = &v["findings"][0];
    assert_eq!(f["url"], published.metadata_url);
    assert_eq!(f["pointer"], "/oauth_metadata");
    assert_eq!(f["actual"], refused);
    assert_eq!(store.server_oauth(s.id).await.unwrap(), None);
    let detail = store.server_detail(s.id).await.unwrap();
    assert_eq!(detail.metadata["description"], "changed");
    let v = env.get("/v1/coverage?scope=cds_usage").await;
    assert_eq!(v["total"], 0);
    let v = env.get("/v1/coverage").await;
    assert!(v["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["oauth"].is_null() && r["scopes"] == json!([])));
    env.done().await;
    server.shutdown().await;
}

async fn scope_coverage_changes_reach_the_change_feed(backend: Backend) {
    let (server, published, path) = start_utility([127, 0, 0, 74], "Changing OAuth Utility").await;
    let env = registry(backend, vec![server.host()]).await;
    env.seed_and_crawl(vec![server.host()]).await;
    let store = &env.reg.state.store;
    let scope_rows = |rows: &[cds_registry::store::ChangeRow]| -> BTreeSet<(String, String)> {
        rows.iter()
            .filter(|c| c.entity.as_str() == "scope")
            .map(|c| (c.op.to_string(), c.reference.clone()))
            .collect()
    };
    let first = store.changes_after(0, 100_000).await.unwrap();
    let added = |refs: &[&str]| -> BTreeSet<(String, String)> {
        refs.iter()
            .map(|r| ("added".to_owned(), (*r).to_owned()))
            .collect()
    };
    assert_eq!(
        scope_rows(&first),
        added(&[
            "cds_usage@u-electric",
            "cds_bill_statements@u-electric",
            "cds_bill_statements@u-gas",
        ])
    );
    let seq = first.last().unwrap().seq;

    // Usage becomes available for gas too, bill statements no longer are.
    server.update_json(&path, |v| {
        let d = &mut v["cds_scope_descriptions"];
        d["cds_usage"]["coverages_supported"] = json!(["u-electric", "u-gas"]);
        d["cds_bill_statements"]["coverages_supported"] = json!(["u-electric"]);
    });
    env.crawl(&[server.host()]).await;
    let second = store.changes_after(seq, 100_000).await.unwrap();
    let s = env.server(&published.metadata_url).await;
    assert_eq!(
        scope_rows(&second),
        BTreeSet::from([
            ("added".to_owned(), "cds_usage@u-gas".to_owned()),
            ("removed".to_owned(), "cds_bill_statements@u-gas".to_owned()),
        ])
    );
    assert!(second
        .iter()
        .filter(|c| c.entity.as_str() == "scope")
        .all(|c| c.server_id == Some(s.id) && c.run_id.is_some()));
    // Only the OAuth document changed: the server is updated, no entry is.
    assert!(second
        .iter()
        .any(|c| c.entity.as_str() == "server" && c.op.as_str() == "updated"));
    assert!(
        second.iter().all(|c| c.entity.as_str() != "entry"),
        "{second:#?}"
    );
    // And search follows.
    let v = env.get("/v1/coverage?scope=cds_usage").await;
    assert_eq!(v["total"], 2);

    // An unchanged crawl writes nothing.
    let seq = second.last().unwrap().seq;
    env.crawl(&[server.host()]).await;
    assert_eq!(store.changes_after(seq, 100_000).await.unwrap(), vec![]);
    env.done().await;
    server.shutdown().await;
}
