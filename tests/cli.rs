//! The binary, as an operator runs it: migrate, seed (idempotent), crawl with a summary
//! and an exit code.

mod common;

use std::process::Command;

use cds_registry::fixtures::web::FixtureWeb;
use common::{Backend, TestDb};

fn cli(db: &TestDb, allow_http: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cds-registry"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CDS_REGISTRY_DATABASE_URL", &db.url)
        .env(
            "CDS_REGISTRY_CRAWL__ALLOW_HTTP",
            format!("[{}]", allow_http.join(",")),
        )
        .env("CDS_REGISTRY_CRAWL__ALLOW_PRIVATE", "[127.0.0.0/8]")
        .env("CDS_REGISTRY_CRAWL__FIRST_BYTE_TIMEOUT_MS", "2000")
        .env("RUST_LOG", "warn");
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn seed_and_crawl_through_the_binary(backend: Backend) {
    let web = FixtureWeb::start().await.unwrap();
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let seeds = dir.path().join("hosts.txt");
    std::fs::write(&seeds, web.seeds_file()).unwrap();
    let allow = web.allow_http();

    let (code, out, err) = run(cli(&db, &allow).arg("migrate"));
    assert_eq!(code, 0, "{out}{err}");

    // Nothing seeded yet: nothing could be crawled → non-zero exit.
    let (code, out, _) = run(cli(&db, &allow).arg("crawl"));
    assert_eq!(code, 1, "{out}");

    let seeds_list = web.seeds();
    let n = seeds_list.len();
    let (code, out, err) = run(cli(&db, &allow).arg("seed").arg(&seeds));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("{n} hosts")) && out.contains(&format!("{n} new")),
        "{out}"
    );
    let (_, out, _) = run(cli(&db, &allow).arg("seed").arg(&seeds));
    assert!(out.contains(" 0 new"), "seeding twice adds nothing: {out}");

    // The crawl runs in another process while the fixtures run here. Its stderr is a pipe,
    // so it logs JSON lines; info level so the per-host lines are there to check.
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(cli(&db, &allow).env("RUST_LOG", "info").arg("crawl"))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let logged_hosts = assert_crawl_logs_are_json_with_run_and_host(&err);
    for seed in &seeds_list {
        assert!(
            logged_hosts.contains(seed),
            "no log line names {seed}:\n{err}"
        );
    }
    assert!(out.contains(&format!("{n} hosts")), "{out}");
    assert!(
        out.contains("2 failed"),
        "Flaky (503) and Gone (404) fail: {out}"
    );
    assert!(
        out.contains("http_status"),
        "failures are listed by class: {out}"
    );

    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_cds-registry"))
        .arg("seed")
        .arg("/nonexistent/seeds.txt"));
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
    web.shutdown().await;
}

both_backends!(seed_and_crawl_through_the_binary);

/// Every stderr line is one JSON object (tracing's JSON format, chosen because stderr is
/// not a terminal). Every line a crawl module logs carries the run id of its `crawl` or
/// `host` span (or in its own fields, for the run's own lines), and a line logged inside a
/// host's span names the host. Returns the hosts the lines name.
fn assert_crawl_logs_are_json_with_run_and_host(
    stderr: &str,
) -> std::collections::BTreeSet<String> {
    let mut hosts = std::collections::BTreeSet::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let target = v["target"].as_str().unwrap_or_default();
        if !target.starts_with("cds_registry::crawl") {
            continue;
        }
        let spans = v["spans"].as_array().cloned().unwrap_or_default();
        assert!(
            v["fields"]["run_id"].is_number() || spans.iter().any(|s| s["run_id"].is_number()),
            "a crawl line without the run id: {line}"
        );
        if let Some(host_span) = spans.iter().find(|s| s["name"] == "host") {
            let host = host_span["host"].as_str().unwrap_or_default();
            assert!(!host.is_empty(), "a host line without the host: {line}");
            hosts.insert(host.to_string());
        }
    }
    hosts
}

#[test]
fn bad_configuration_names_the_key() {
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_cds-registry"))
        .env("CDS_REGISTRY_CRAWL__CONCURRENCY", "lots")
        .arg("migrate"));
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("crawl.concurrency"), "{err}");
}
