//! `commit_server` writes a server's rows in multi-row statements (issue 17). On both
//! backends, the same commits made with one row per statement (a parameter limit too
//! small for two rows) and with the backend's real limit leave identical tables, and the
//! change feed still has one row per added, updated and removed entry, in listing order.

mod common;

use cds_registry::cds::origin::{Origin, ORIGIN_FIELD};
use cds_registry::cds::{Finding, Severity};
use cds_registry::model::DocKind;
use cds_registry::seeds::Seed;
use cds_registry::store::{
    CommitSummary, DocumentRecord, EntryRecord, ServerCommit, Store, TerritoryRecord,
};
use common::{Backend, TestDb};
use sqlx::Row;

both_backends!(batched_commits_store_what_row_by_row_commits_store);

const N: usize = 5_000;
const SERVER: &str = "http://127.0.0.1:9/.well-known/cds-server-metadata.json";

fn geo_url(i: usize) -> String {
    format!("http://127.0.0.1:9/t/{i}.geojson")
}

/// A server of `ids` entries; entry `i` links territory `i` at version `version(i)`.
fn commit(host_id: i64, ids: &[usize], version: impl Fn(usize) -> u32, tag: &str) -> ServerCommit {
    let mut entries = Vec::new();
    let mut territories = Vec::new();
    let mut documents = vec![DocumentRecord {
        url: SERVER.into(),
        kind: DocKind::Metadata,
        etag: Some(format!("\"m-{tag}\"")),
        last_modified: None,
        content_hash: format!("meta-{tag}"),
        http_status: 200,
        size: 10,
        body: Some(format!("{{\"tag\":\"{tag}\"}}")),
    }];
    for &i in ids {
        let hash = format!("h{i}v{}", version(i));
        // The entry as a server lists it; the commit reads its columns from this JSON.
        let mut listed = serde_json::json!({
            "id": format!("e{i}"),
            "v": version(i),
            "created": "2024-01-01T00:00:00Z",
            "updated": (i % 3 == 0).then(|| format!("2024-02-0{}T00:00:00Z", 1 + version(i))),
            "entity_name": format!("Utility {i}"),
            "entity_abbreviation": (i % 2 == 0).then(|| format!("U{i}")),
            "country": "US",
            "name": format!("Territory {i} v{}", version(i)),
            "description": (i % 5 == 0).then_some("with a description"),
            "type": "geographic",
            "role": "authoritative",
            "infrastructure_types": ["distribution_utility"],
            "commodity_types": ["electricity", "water"],
            "capabilities": [],
            "geojson_resource": geo_url(i),
        });
        // Some are a registry's copies: their origin is stored and read back too.
        if i % 4 == 0 {
            listed[ORIGIN_FIELD] = serde_json::to_value(Origin {
                server: format!("https://u{i}.example/.well-known/cds-server-metadata.json"),
                id: format!("o{i}"),
                role: "official".into(),
                capabilities: vec!["oauth".into()],
                via: vec!["https://r.example/.well-known/cds-server-metadata.json".into()],
            })
            .unwrap();
        }
        let mut record = EntryRecord::of(
            &listed,
            format!("http://127.0.0.1:9/cds/coverage?page={}", i / 1000 + 1),
        );
        record.content_hash = format!("{}-{hash}", record.raw_json);
        record.territory = Some(std::sync::Arc::new((geo_url(i), hash.clone())));
        entries.push(record);
        territories.push(TerritoryRecord {
            source_url: geo_url(i),
            source_hash: hash.clone(),
            wkb: (0..(i % 7 + 1) as u8).chain([version(i) as u8]).collect(),
            bbox: [i as f64 * 0.01, 1.5, i as f64 * 0.01 + 0.009, 1.509],
            vertex_count: 5,
        });
        documents.push(DocumentRecord {
            url: geo_url(i),
            kind: DocKind::GeoJson,
            etag: Some(format!("\"{hash}\"")),
            last_modified: None,
            content_hash: hash,
            http_status: 200,
            size: 100 + i as i64,
            body: None,
        });
    }
    // One document recorded twice (two links ending at it): its last record wins.
    documents.push(DocumentRecord {
        etag: Some(format!("\"dup-{tag}\"")),
        ..documents[1].clone()
    });
    ServerCommit {
        url: SERVER.into(),
        host_id,
        parent_url: None,
        depth: 0,
        name: "Aggregator".into(),
        metadata_json: format!("{{\"tag\":\"{tag}\"}}"),
        capabilities: vec!["coverage".into()],
        content_hash: format!("server-{tag}"),
        entries,
        territories,
        findings: (0..40)
            .map(|k| {
                Finding::new(
                    format!("RULE-{k}"),
                    Severity::Warning,
                    SERVER,
                    format!("/x/{k}"),
                    format!("finding {k} of {tag}"),
                )
            })
            .collect(),
        documents,
        oauth: None,
        listing_complete: true,
    }
}

/// Every column that does not hold a clock reading, as text, in a stable order.
async fn dump(store: &Store) -> Vec<(String, Vec<Vec<String>>)> {
    let tables: [(&str, &[&str], &str); 6] = [
        (
            "documents",
            &[
                "id",
                "url",
                "kind",
                "etag",
                "last_modified",
                "content_hash",
                "http_status",
                "size",
                "body",
            ],
            "id",
        ),
        (
            "document_versions",
            &["id", "url", "kind", "content_hash", "size", "body"],
            "id",
        ),
        (
            "territories",
            &[
                "id",
                "source_url",
                "source_hash",
                "LENGTH(wkb)",
                "min_lon",
                "min_lat",
                "max_lon",
                "max_lat",
                "vertex_count",
            ],
            "id",
        ),
        (
            "coverage_entries",
            &[
                "id",
                "server_id",
                "entry_id",
                "position",
                "page_url",
                "created",
                "updated",
                "entity_name",
                "entity_abbreviation",
                "country",
                "name",
                "description",
                "entry_type",
                "role",
                "infrastructure_types",
                "commodity_types",
                "capabilities",
                "map_resource",
                "map_content_type",
                "geojson_resource",
                "territory_id",
                "raw_json",
                "content_hash",
            ],
            "id",
        ),
        (
            "findings",
            &[
                "id",
                "server_id",
                "host_id",
                "run_id",
                "rule",
                "severity",
                "message",
                "url",
                "pointer",
                "expected",
                "actual",
            ],
            "id",
        ),
        (
            "changes",
            &[
                "seq",
                "run_id",
                "entity",
                "op",
                "server_id",
                "ref",
                "detail",
                "scope_type",
            ],
            "seq",
        ),
    ];
    let mut out = Vec::new();
    for (table, cols, order) in tables {
        let select: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("COALESCE(CAST({c} AS TEXT), '<null>') AS c{i}"))
            .collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY {order}", select.join(", "));
        let rows = sqlx::query(&sql)
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (0..cols.len())
                    .map(|i| r.try_get::<String, _>(i).unwrap())
                    .collect()
            })
            .collect();
        out.push((table.to_owned(), rows));
    }
    out
}

/// The ops the change feed recorded for entries, in order.
async fn entry_changes(store: &Store) -> Vec<(String, String)> {
    store
        .changes_after(0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.entity.as_str() == "entry")
        .map(|c| (c.op.to_string(), c.reference))
        .collect()
}

/// A first commit of N entries, then one that updates 1 % (new territory versions),
/// removes 100 and adds 50; `max_binds` = None uses the backend's limit.
async fn run(backend: Backend, max_binds: Option<usize>) -> (TestDb, Store, Vec<CommitSummary>) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .add_hosts(&[Seed::Host("127.0.0.1:9".into())], "seed")
        .await
        .unwrap();
    let host_id = store.list_hosts().await.unwrap()[0].id;
    let first: Vec<usize> = (0..N).collect();
    let second: Vec<usize> = (100..N + 50).collect();
    let commits = [
        commit(host_id, &first, |_| 1, "a"),
        commit(host_id, &second, |i| if i % 100 == 7 { 2 } else { 1 }, "b"),
    ];
    let mut sums = Vec::new();
    for (run_id, c) in (1..).zip(&commits) {
        let s = match max_binds {
            Some(b) => store.commit_server_with_binds(run_id, c, b).await,
            None => store.commit_server(run_id, c).await,
        };
        sums.push(s.unwrap());
    }
    (db, store, sums)
}

async fn batched_commits_store_what_row_by_row_commits_store(backend: Backend) {
    // A limit of one parameter makes every statement one row: the row-by-row reference.
    let (_db1, by_row, by_row_sums) = run(backend, Some(1)).await;
    let (_db2, batched, batched_sums) = run(backend, None).await;
    assert_eq!(by_row_sums, batched_sums);
    let s = &batched_sums[1];
    assert_eq!(
        (s.entries_added, s.entries_updated, s.entries_removed),
        (50, 49, 100),
        "{s:?}"
    );
    let (a, b) = (dump(&by_row).await, dump(&batched).await);
    for ((table, rows_a), (_, rows_b)) in a.iter().zip(&b) {
        assert!(!rows_a.is_empty(), "{table} has rows");
        assert_eq!(rows_a.len(), rows_b.len(), "{table}: row counts");
        for (ra, rb) in rows_a.iter().zip(rows_b) {
            assert_eq!(ra, rb, "{table}");
        }
    }
    // A registry's copy reads back with the origin it was written with; an own entry
    // with none.
    let rows = batched.index_rows().await.unwrap();
    // An API replica's full load reads the same rows one at a time.
    let streamed: Vec<_> = futures::TryStreamExt::try_collect(batched.index_rows_stream())
        .await
        .unwrap();
    let summary = |r: &cds_registry::store::IndexRow| {
        (
            r.key,
            r.server_id,
            r.entry.clone(),
            r.territory_id,
            r.wkb.clone(),
        )
    };
    assert_eq!(
        streamed.iter().map(summary).collect::<Vec<_>>(),
        rows.iter().map(summary).collect::<Vec<_>>()
    );
    assert!(
        rows.iter().any(|r| r.wkb.is_some()),
        "rows with territories"
    );
    let entry = |id: &str| {
        rows.iter()
            .find(|r| r.entry.id == id)
            .unwrap()
            .entry
            .clone()
    };
    let copy = entry("e104").origin.expect("e104 is a copy");
    assert_eq!((copy.id.as_str(), copy.role.as_str()), ("o104", "official"));
    assert_eq!(copy.via.len(), 1);
    assert_eq!(entry("e105").origin, None);
    // Every column comes from the listed JSON.
    let e = entry("e102");
    assert_eq!(
        (
            e.entity_name.as_str(),
            e.entity_abbreviation.as_deref(),
            e.kind.as_str()
        ),
        ("Utility 102", Some("U102"), "geographic")
    );
    assert_eq!(e.commodity_types, ["electricity", "water"]);
    assert_eq!(e.geojson_resource, Some(geo_url(102)));
    assert_eq!(
        entry("e105").description.as_deref(),
        Some("with a description")
    );
    // The duplicate document's last record won.
    let etag: String = sqlx::query("SELECT etag FROM documents WHERE url = $1")
        .bind(geo_url(100))
        .fetch_one(batched.pool())
        .await
        .unwrap()
        .get("etag");
    assert_eq!(etag, "\"dup-b\"");
    // The feed: every entry added once in listing order, then the second commit's
    // updates and additions in listing order, and its removals.
    let feed = entry_changes(&batched).await;
    let added_first: Vec<String> = (0..N).map(|i| format!("e{i}")).collect();
    assert_eq!(
        feed[..N]
            .iter()
            .map(|(op, r)| {
                assert_eq!(op, "added");
                r.clone()
            })
            .collect::<Vec<_>>(),
        added_first
    );
    let rest = &feed[N..];
    let updated: Vec<&str> = rest
        .iter()
        .filter(|(op, _)| op == "updated")
        .map(|(_, r)| r.as_str())
        .collect();
    let expect_updated: Vec<String> = (100..N)
        .filter(|i| i % 100 == 7)
        .map(|i| format!("e{i}"))
        .collect();
    assert_eq!(updated, expect_updated);
    let added: Vec<&str> = rest
        .iter()
        .filter(|(op, _)| op == "added")
        .map(|(_, r)| r.as_str())
        .collect();
    let expect_added: Vec<String> = (N..N + 50).map(|i| format!("e{i}")).collect();
    assert_eq!(added, expect_added);
    // Removals come in the order the entries were stored.
    let removed: Vec<&str> = rest
        .iter()
        .filter(|(op, _)| op == "removed")
        .map(|(_, r)| r.as_str())
        .collect();
    let expect_removed: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
    assert_eq!(removed, expect_removed);
    assert_eq!(rest.len(), 50 + 49 + 100);
}
