//! Scope types end to end, on both backends (issue 15, WG1-02 §3.3/§3.4): scope ids are
//! arbitrary strings and clients MUST match scopes by `type`, so the registry stores each
//! scope's type, `scope=` matches an id or a type on every search endpoint, rows show the
//! type next to the id, `/v1/facets` counts types, and `scope` change rows name the type.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use cds_registry::cli::serve::Running;
use cds_registry::seeds::Seed;
use cds_registry::store::ChangeRow;
use cds_testkit::counties::county_interior_point;
use cds_testkit::{publish, FixtureServer, UtilitySpec};
use common::{start_registry, test_config, Backend, TestDb};
use serde_json::{json, Value};

both_backends!(scope_filter_matches_the_type_when_the_id_differs);

/// One county, two entries; the usage scope has an id of the utility's own making
/// (`my_usage_scope`) and the spec-style type `cds_usage`; the bills scope covers both.
fn utility() -> UtilitySpec {
    let name = "Own Scope Names Utility";
    common::electric_and_gas_utility(name, "o", "my_usage_scope", "acme_bills")
}

struct Env {
    reg: Running,
    c: reqwest::Client,
    _db: TestDb,
}

impl Env {
    async fn get(&self, path: &str) -> Value {
        common::get_ok_json(&self.c, &self.reg.url(), path).await
    }

    async fn get_text(&self, path: &str) -> String {
        let r = self
            .c
            .get(format!("{}{path}", self.reg.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.text().await.unwrap()
    }

    async fn crawl(&self, host: &str) {
        self.reg
            .crawler
            .run("test", &[host.to_owned()])
            .await
            .unwrap();
        self.reg.state.reload_index().await.unwrap();
    }

    /// Entry ids of `/v1/coverage` under `query`.
    async fn coverage_ids(&self, query: &str) -> BTreeSet<String> {
        let v = self.get(&format!("/v1/coverage?limit=1000&{query}")).await;
        common::entry_ids(&v["coverage"])
    }
}

fn ids(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn count(facets: &Value, field: &str, value: &str) -> Option<u64> {
    facets[field]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"] == value)
        .map(|c| c["count"].as_u64().unwrap())
}

/// `(op, ref, scope_type)` of the `scope` change rows.
fn scope_rows(rows: &[ChangeRow]) -> BTreeSet<(String, String, Option<String>)> {
    rows.iter()
        .filter(|c| c.entity.as_str() == "scope")
        .map(|c| (c.op.to_string(), c.reference.clone(), c.scope_type.clone()))
        .collect()
}

fn row(op: &str, reference: &str, scope_type: &str) -> (String, String, Option<String>) {
    (op.into(), reference.into(), Some(scope_type.into()))
}

async fn scope_filter_matches_the_type_when_the_id_differs(backend: Backend) {
    let server = FixtureServer::start(Ipv4Addr::new(127, 0, 0, 171))
        .await
        .unwrap();
    let published = publish(&server, &utility());
    let oauth_path = url::Url::parse(published.oauth_metadata_url.as_ref().unwrap())
        .unwrap()
        .path()
        .to_owned();
    // The types (WG1-02 §3.4), set here so the test does not depend on what the shared
    // fixture builder writes for `type`.
    server.update_json(&oauth_path, |v| {
        let d = &mut v["cds_scope_descriptions"];
        d["my_usage_scope"]["type"] = json!("cds_usage");
        d["acme_bills"]["type"] = json!("cds_bill_statements");
    });

    let db = TestDb::new(backend).await;
    let reg = start_registry(test_config(&db, vec![server.host()])).await;
    let env = Env {
        reg,
        c: reqwest::Client::new(),
        _db: db,
    };
    let store = &env.reg.state.store;
    store
        .add_hosts(&[Seed::Host(server.host())], "seed")
        .await
        .unwrap();
    env.crawl(&server.host()).await;

    // Stored.
    let sid = store
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.url == published.metadata_url)
        .unwrap()
        .id;
    let stored = store.server_oauth(sid).await.unwrap().unwrap();
    let types: Vec<(String, Option<String>)> = stored
        .metadata
        .scopes
        .iter()
        .map(|s| (s.id.clone(), s.scope_type.clone()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("my_usage_scope".into(), Some("cds_usage".into())),
            ("acme_bills".into(), Some("cds_bill_statements".into())),
        ]
    );

    // `scope=` by type and by id, on /v1/coverage.
    let electric = ids(&["o-electric"]);
    let both = ids(&["o-electric", "o-gas"]);
    assert_eq!(env.coverage_ids("scope=cds_usage").await, electric);
    assert_eq!(env.coverage_ids("scope=CDS_Usage").await, electric);
    assert_eq!(env.coverage_ids("scope=my_usage_scope").await, electric);
    assert_eq!(env.coverage_ids("scope=cds_bill_statements").await, both);
    assert_eq!(env.coverage_ids("scope=acme_bills").await, both);
    assert_eq!(env.coverage_ids("scope=cds_grant_admin").await, ids(&[]));

    // Rows show the type next to the id.
    let v = env.get("/v1/coverage?scope=cds_usage").await;
    let r = &v["coverage"][0];
    assert_eq!(r["scopes"], json!(["my_usage_scope", "acme_bills"]));
    assert_eq!(
        r["scope_types"],
        json!(["cds_usage", "cds_bill_statements"])
    );
    let offered: Vec<(Value, Value)> = r["oauth"]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["scope"].clone(), s["type"].clone()))
        .collect();
    assert_eq!(
        offered,
        vec![
            (json!("my_usage_scope"), json!("cds_usage")),
            (json!("acme_bills"), json!("cds_bill_statements")),
        ]
    );

    // /v1/lookup, /v1/entities and /v1/export take the same filter.
    let (lon, lat) = county_interior_point("08013");
    let v = env.get(&format!("/v1/lookup?lat={lat}&lon={lon}")).await;
    assert_eq!(v["results"].as_array().unwrap().len(), 2, "{v:#}");
    let v = env
        .get(&format!("/v1/lookup?lat={lat}&lon={lon}&scope=cds_usage"))
        .await;
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v:#}");
    assert_eq!(rows[0]["entry_id"], "o-electric");
    let v = env.get("/v1/entities?scope=cds_usage").await;
    assert_eq!(v["total"], 1, "{v:#}");
    let v = env
        .get("/v1/entities?scope=cds_server_provided_files")
        .await;
    assert_eq!(v["total"], 0, "{v:#}");
    let nd = env
        .get_text("/v1/export?format=ndjson&scope=cds_usage")
        .await;
    let lines: Vec<Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{nd}");
    assert_eq!(lines[0]["properties"]["entry_id"], "o-electric");

    // Facets count types apart from ids.
    let f = env.get("/v1/facets").await;
    assert_eq!(count(&f, "scope_type", "cds_usage"), Some(1));
    assert_eq!(count(&f, "scope_type", "cds_bill_statements"), Some(2));
    assert_eq!(count(&f, "scope_type", "my_usage_scope"), None);
    assert_eq!(count(&f, "scope", "my_usage_scope"), Some(1));
    assert_eq!(count(&f, "scope", "cds_usage"), None);
    let f = env.get("/v1/facets?scope=cds_usage").await;
    assert_eq!(f["total"], 1);
    assert_eq!(count(&f, "scope_type", "cds_bill_statements"), Some(1));

    // The change feed names the type of every scope row.
    let first = store.changes_after(0, 100_000).await.unwrap();
    assert_eq!(
        scope_rows(&first),
        BTreeSet::from([
            row("added", "my_usage_scope@o-electric", "cds_usage"),
            row("added", "acme_bills@o-electric", "cds_bill_statements"),
            row("added", "acme_bills@o-gas", "cds_bill_statements"),
        ])
    );
    let feed = env.get("/v1/changes?limit=5000").await;
    let usage_row = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["entity"] == "scope" && c["ref"] == "my_usage_scope@o-electric")
        .cloned()
        .unwrap();
    assert_eq!(usage_row["scope_type"], "cds_usage");
    assert!(feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["entity"] != "scope")
        .all(|c| c.get("scope_type").is_none()));
    let seq = first.last().unwrap().seq;

    // A re-crawl of a changed document that keeps the scopes keeps their types.
    server.update_json(&oauth_path, |v| {
        v["cds_scope_descriptions"]["my_usage_scope"]["description"] = json!("Usage, hourly.");
    });
    env.crawl(&server.host()).await;
    let again = store.server_oauth(sid).await.unwrap().unwrap();
    assert_ne!(again, stored, "the description changed");
    assert_eq!(
        again
            .metadata
            .scopes
            .iter()
            .map(|s| (s.id.clone(), s.scope_type.clone()))
            .collect::<Vec<_>>(),
        types
    );
    assert_eq!(env.coverage_ids("scope=cds_usage").await, electric);
    let second = store.changes_after(seq, 100_000).await.unwrap();
    assert_eq!(scope_rows(&second), BTreeSet::new());
    let seq = second.last().map_or(seq, |c| c.seq);

    // A scope that changes its type is `updated`, with the new type; search follows.
    server.update_json(&oauth_path, |v| {
        v["cds_scope_descriptions"]["acme_bills"]["type"] = json!("acme_bill_pdfs");
    });
    env.crawl(&server.host()).await;
    let third = store.changes_after(seq, 100_000).await.unwrap();
    assert_eq!(
        scope_rows(&third),
        BTreeSet::from([
            row("updated", "acme_bills@o-electric", "acme_bill_pdfs"),
            row("updated", "acme_bills@o-gas", "acme_bill_pdfs"),
        ])
    );
    assert_eq!(
        env.coverage_ids("scope=cds_bill_statements").await,
        ids(&[])
    );
    assert_eq!(env.coverage_ids("scope=acme_bill_pdfs").await, both);
    let f = env.get("/v1/facets").await;
    assert_eq!(count(&f, "scope_type", "cds_bill_statements"), None);
    assert_eq!(count(&f, "scope_type", "acme_bill_pdfs"), Some(2));

    // A scope withdrawn from an entry: `removed`, with the type it had.
    let seq = third.last().unwrap().seq;
    server.update_json(&oauth_path, |v| {
        v["cds_scope_descriptions"]["acme_bills"]["coverages_supported"] = json!(["o-electric"]);
    });
    env.crawl(&server.host()).await;
    let fourth = store.changes_after(seq, 100_000).await.unwrap();
    assert_eq!(
        scope_rows(&fourth),
        BTreeSet::from([row("removed", "acme_bills@o-gas", "acme_bill_pdfs")])
    );

    // Scopes stored before migration 0006 have no type, and an unchanged server is not
    // rewritten by a crawl: opening the store fills the types in from the stored document.
    let typed = store.server_oauth(sid).await.unwrap().unwrap();
    sqlx::query("UPDATE oauth_scopes SET scope_type = NULL")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store
        .server_oauth(sid)
        .await
        .unwrap()
        .unwrap()
        .metadata
        .scopes
        .iter()
        .all(|s| s.scope_type.is_none()));
    store.migrate().await.unwrap();
    assert_eq!(store.server_oauth(sid).await.unwrap().unwrap(), typed);
    assert_eq!(store.backfill_scope_types().await.unwrap(), 0);
    env.reg.state.reload_index().await.unwrap();
    assert_eq!(env.coverage_ids("scope=cds_usage").await, electric);

    env.reg.shutdown().await.unwrap();
    server.shutdown().await;
}
