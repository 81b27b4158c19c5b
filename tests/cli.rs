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

    let n = web.seeds().len();
    let (code, out, err) = run(cli(&db, &allow).arg("seed").arg(&seeds));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("{n} hosts")) && out.contains(&format!("{n} new")),
        "{out}"
    );
    let (_, out, _) = run(cli(&db, &allow).arg("seed").arg(&seeds));
    assert!(out.contains(" 0 new"), "seeding twice adds nothing: {out}");

    // The crawl runs in another process while the fixtures run here.
    let (code, out, err) = tokio::task::spawn_blocking(move || run(cli(&db, &allow).arg("crawl")))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
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

#[test]
fn bad_configuration_names_the_key() {
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_cds-registry"))
        .env("CDS_REGISTRY_CRAWL__CONCURRENCY", "lots")
        .arg("migrate"));
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("crawl.concurrency"), "{err}");
}
