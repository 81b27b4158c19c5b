//! Hosts as operators write them, through the binary (`seed`, `seed --dry-run`, `crawl`)
//! and through `POST /v1/hosts`, on both backends: bare hosts, `host:port`, origin URLs
//! with or without a trailing `/`, metadata document URLs, case, trailing dots, IDNs and
//! duplicates; every refusal names its line and stores nothing.

mod common;

use std::process::Command;

use cds_testkit::web::{names, FixtureWeb};
use common::{start_registry, test_config, Backend, TestDb};
use serde_json::{json, Value};

fn cli(db: &TestDb, allow_http: &[String]) -> Command {
    common::registry_cli(&db.url, allow_http)
}

use common::run_cmd as run;

/// A seeds file as an operator pastes it: origins from a browser bar (with and without
/// `/`, upper-case scheme), bare `host:port`, a metadata URL, comments and repeats.
fn mixed_seeds_file(web: &FixtureWeb) -> (String, Vec<String>) {
    let prairie = web.published(names::PRAIRIE).unwrap().metadata_url.clone();
    let text = format!(
        "# pasted from a browser\n\
         http://{sierra}\n\
         HTTP://{lone_star}/\n\
         {old_dominion}\n\
         http://{great_lakes}/   # holding company\n\
         {prairie}\n\
         http://{looping}\n\
         {slow}\n\
         http://{green}/\n\
         \n\
         # repeats of line 2, written differently\n\
         http://{sierra}/\n\
         {sierra}\n",
        sierra = web.sierra.host(),
        lone_star = web.lone_star.host(),
        old_dominion = web.old_dominion_old.host(),
        great_lakes = web.great_lakes.host(),
        looping = web.looping.host(),
        slow = web.slow.host(),
        green = web.green_mountain.host(),
    );
    let keys = vec![
        web.sierra.host(),
        web.lone_star.host(),
        web.old_dominion_old.host(),
        web.great_lakes.host(),
        prairie,
        web.looping.host(),
        web.slow.host(),
        web.green_mountain.host(),
    ];
    (text, keys)
}

async fn a_mixed_seeds_file_crawls_every_host_it_names(backend: Backend) {
    let web = FixtureWeb::start().await.unwrap();
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.txt");
    let (text, keys) = mixed_seeds_file(&web);
    std::fs::write(&file, &text).unwrap();
    let allow = web.allow_http();

    // Dry run on an empty database: every line planned, nothing stored.
    let (code, out, err) = run(cli(&db, &allow).arg("seed").arg("--dry-run").arg(&file));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("8 hosts in") && out.contains("8 new"), "{out}");
    assert!(out.contains("2 repeated lines"), "{out}");
    assert!(out.contains("(same host as line 2)"), "{out}");
    let first = format!(
        "first URL: http://{}/.well-known/cds-server-metadata.json",
        web.sierra.host()
    );
    assert!(out.contains(&first), "{out}");
    assert!(out.contains("allow_http: yes"), "{out}");
    assert!(out.contains("allow_private: yes"), "{out}");
    assert!(db.store().await.list_hosts().await.unwrap().is_empty());

    let (code, out, err) = run(cli(&db, &allow).arg("seed").arg(&file));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("8 hosts") && out.contains("8 new"), "{out}");
    let store = db.store().await;
    let mut stored = common::host_seeds(&store).await;
    stored.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(stored, want, "one normalised key per host");

    let (code, out, _) = run(cli(&db, &allow).arg("seed").arg("--dry-run").arg(&file));
    assert_eq!(code, 0);
    assert_eq!(out.matches("(already present)").count(), 8, "{out}");

    // The crawl runs in another process while the fixtures answer here.
    let (code, out, err) = tokio::task::spawn_blocking({
        let mut c = common::registry_cli(&db.url, &allow);
        move || run(c.arg("crawl"))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("8 hosts, 8 ok, 0 failed"), "{out}");
    // Nobody fetched a home page: every origin was discovered at its well-known path.
    for s in [&web.sierra, &web.great_lakes, &web.green_mountain] {
        assert_eq!(s.hits("/"), 0, "a home page was fetched");
    }
    let crawled: Vec<Option<String>> = store
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .filter(|h| keys.contains(&h.seed))
        .map(|h| h.last_outcome.map(|o| o.to_string()))
        .collect();
    assert_eq!(crawled.len(), 8);
    assert!(
        crawled.iter().all(|o| o.as_deref() == Some("ok")),
        "{crawled:?}"
    );

    // `crawl HOST` takes the same forms.
    let (code, out, err) = run(cli(&db, &allow)
        .arg("crawl")
        .arg(format!("HTTP://{}/", web.looping.host())));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": 1 hosts, 1 ok"), "{out}");
    let (code, _, err) = run(cli(&db, &allow).arg("crawl").arg("unknown.example"));
    assert_eq!(code, 1);
    assert!(err.contains("not seeded: unknown.example"), "{err}");
    store.close().await;
    web.shutdown().await;
}

async fn a_file_with_a_bad_line_stores_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.txt");
    std::fs::write(
        &file,
        "good.example\nftp://files.example/\nutility.example/cds.json\nalso-good.example\nhas space.example\n",
    )
    .unwrap();
    let (code, out, err) = run(cli(&db, &[]).arg("seed").arg(&file));
    assert_eq!(code, 1, "{out}{err}");
    for line in ["line 2:", "line 3:", "line 5:"] {
        assert!(err.contains(line), "{line} missing: {err}");
    }
    assert!(
        !err.contains("line 1:") && !err.contains("line 4:"),
        "{err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");
    assert!(err.contains("write `https://` in front"), "{err}");
    assert!(
        err.contains("`host:port`"),
        "the accepted forms are named: {err}"
    );
    let store = db.store().await;
    assert!(store.list_hosts().await.unwrap().is_empty());
    store.close().await;
}

async fn the_admin_api_takes_the_same_forms(backend: Backend) {
    let db = TestDb::new(backend).await;
    let reg = start_registry(test_config(&db, vec![])).await;
    let c = reqwest::Client::new();
    let post = |body: Value| {
        c.post(format!("{}/v1/hosts", reg.url()))
            .bearer_auth("test-admin-token")
            .json(&body)
            .send()
    };
    let cases = [
        ("https://Utility.Example", "utility.example", Some("https")),
        ("http://127.0.0.12:8443/", "127.0.0.12:8443", Some("http")),
        ("Bücher.Example.", "xn--bcher-kva.example", None),
        (
            "https://static.example/cds/meta.json",
            "https://static.example/cds/meta.json",
            None,
        ),
        ("plain.example:8443", "plain.example:8443", None),
    ];
    for (written, key, scheme) in cases {
        let r = post(json!({ "host": written })).await.unwrap();
        assert_eq!(r.status(), 201, "{written}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["added"], 1, "{written}: {body}");
        let host = &body["hosts"][0];
        assert_eq!(host["seed"], key, "{written}: {body}");
        assert_eq!(host["scheme"].as_str(), scheme, "{written}: {body}");
    }
    // The IDN is shown in unicode.
    let hosts = common::get_ok_json(&c, &reg.url(), "/v1/hosts").await;
    let list = hosts["hosts"]
        .as_array()
        .or(hosts.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        list.iter().any(|h| h["display"] == "bücher.example"),
        "{hosts}"
    );
    // Written differently, the same host: nothing new.
    for same in [
        "utility.example",
        "HTTPS://UTILITY.EXAMPLE./",
        "http://utility.example",
    ] {
        let r = post(json!({ "host": same })).await.unwrap();
        assert_eq!(r.status(), 200, "{same}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["added"], 0, "{same}: {body}");
    }
    // Refusals: 400 naming the text and the accepted forms; a batch with one bad host
    // stores none of it.
    for bad in [
        "ftp://x.example/",
        "x.example/path",
        "a b",
        "https://u:p@x.example/",
    ] {
        let r = post(json!({ "hosts": ["fresh.example", bad] }))
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("`https://utility.example/`"),
            "{bad}: {body}"
        );
    }
    let store = db.store().await;
    let seeds = common::host_seeds(&store).await;
    assert_eq!(seeds.len(), 5, "{seeds:?}");
    assert!(!seeds.iter().any(|s| s == "fresh.example"));
    store.close().await;
    reg.shutdown().await.unwrap();
}

both_backends!(
    a_mixed_seeds_file_crawls_every_host_it_names,
    a_file_with_a_bad_line_stores_nothing,
    the_admin_api_takes_the_same_forms,
);
