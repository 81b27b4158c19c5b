//! The binary, as an operator runs it: migrate, seed (idempotent), crawl with a summary
//! and an exit code.

mod common;

use std::process::Command;

use cds_testkit::web::FixtureWeb;
use common::{Backend, TestDb};

fn cli(db: &TestDb, allow_http: &[String]) -> Command {
    common::registry_cli(&db.url, allow_http)
}

use common::run_cmd as run;

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
    let db = std::sync::Arc::new(db);
    let db2 = std::sync::Arc::clone(&db);
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
    // The run's findings are counted (they were always 0), in the summary and the store.
    let findings: i64 = out
        .split_once(" findings")
        .and_then(|(head, _)| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no findings count in: {out}"));
    assert!(findings > 0, "{out}");
    let store = db2.store().await;
    let stored = store.run(1).await.unwrap();
    assert_eq!(
        stored.findings, findings,
        "summary and GET /v1/crawls/1 agree"
    );
    store.close().await;

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

#[test]
fn a_busy_port_names_the_address_and_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_cds-registry"))
        .env(
            "CDS_REGISTRY_DATABASE_URL",
            format!("sqlite://{}/r.db", dir.path().display()),
        )
        .env("CDS_REGISTRY_LISTEN", &addr)
        .env("CDS_REGISTRY_CRAWL__SCHEDULED", "false")
        .arg("serve"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        err.contains("--listen") && err.contains("127.0.0.1:0"),
        "{err}"
    );
    drop(taken);
}

#[test]
fn a_database_that_is_down_is_named_once() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_cds-registry"))
        .env(
            "CDS_REGISTRY_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/registry"),
        )
        .arg("migrate"));
    assert_eq!(code, 1, "{err}");
    let want = format!("Postgres database \"registry\" on 127.0.0.1:{port}");
    assert_eq!(err.matches(&want).count(), 1, "{err}");
    assert_eq!(
        err.to_lowercase().matches("refused").count(),
        1,
        "the cause once: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_bad_schedule_fails_migrate_with_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_cds-registry"))
        .env(
            "CDS_REGISTRY_DATABASE_URL",
            format!("sqlite://{}/r.db", dir.path().display()),
        )
        .env("CDS_REGISTRY_CRAWL__SCHEDULE", "every 6 hours")
        .arg("migrate"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("crawl.schedule") && err.contains("0 0 */6 * * *"),
        "{err}"
    );
    assert!(!dir.path().join("r.db").exists(), "nothing was created");
}

/// `--help` of every command describes every argument and flag.
#[test]
fn every_argument_has_a_description() {
    for cmd in ["serve", "seed", "crawl", "migrate", "demo", "validate"] {
        let (code, out, err) = run(Command::new(env!("CARGO_BIN_EXE_cds-registry"))
            .arg(cmd)
            .arg("--help"));
        assert_eq!(code, 0, "{err}");
        let args = out
            .split_once("Arguments:")
            .map(|(_, a)| a.split("Options:").next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let options = out
            .split_once("Options:")
            .map(|(_, o)| o)
            .unwrap_or_default();
        let lines: Vec<&str> = args.lines().chain(options.lines()).collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            let short_flag = t.len() > 2 && t.starts_with('-') && t.as_bytes()[2] == b',';
            if t.starts_with('<') || t.starts_with("--") || short_flag {
                // "  <TARGET>  The server: ..." (name, two spaces, text), or clap's long
                // form: the text on the next, more indented line.
                let same_line = t
                    .split_once("  ")
                    .is_some_and(|(_, d)| !d.trim().is_empty());
                let next_line = lines.get(i + 1).is_some_and(|n| {
                    let nt = n.trim();
                    !nt.is_empty()
                        && !nt.starts_with("--")
                        && !nt.starts_with('<')
                        && n.len() - n.trim_start().len() > line.len() - line.trim_start().len()
                });
                assert!(
                    same_line || next_line,
                    "`{cmd}`: {t:?} has no description\n{out}"
                );
            }
        }
    }
}
