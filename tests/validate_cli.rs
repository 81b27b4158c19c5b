//! `cds-registry validate URL|HOST` through the binary, as a utility engineer runs it:
//! exit codes, each problem printed once with its rule id and JSON pointer, the same
//! fetch guard as the crawler, and no database touched.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cds_registry::cds::WELL_KNOWN_PATH;
use cds_testkit::{publish, EntrySpec, FixtureServer, Published, ScopeSpec, UtilitySpec};
use serde_json::{json, Value};

/// Options of one `validate` run.
struct Opts<'a> {
    allow_http: &'a [String],
    allow_private: &'a str,
}

const LOOPBACK: &str = "[127.0.0.0/8]";

/// Run `cds-registry validate ARGS` in `dir` with a SQLite database URL inside `dir`, off
/// the async runtime (the fixtures answer from it meanwhile).
async fn validate(dir: &Path, o: Opts<'_>, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cds-registry"));
    c.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "CDS_REGISTRY_DATABASE_URL",
            format!("sqlite://{}/x.db", dir.display()),
        )
        .env(
            "CDS_REGISTRY_CRAWL__ALLOW_HTTP",
            format!("[{}]", o.allow_http.join(",")),
        )
        .env("CDS_REGISTRY_CRAWL__ALLOW_PRIVATE", o.allow_private)
        .env("CDS_REGISTRY_CRAWL__CONNECT_TIMEOUT_MS", "2000")
        .env("CDS_REGISTRY_CRAWL__FIRST_BYTE_TIMEOUT_MS", "2000")
        .env("RUST_LOG", "warn")
        .arg("validate")
        .args(args);
    let out = tokio::task::spawn_blocking(move || c.output().expect("run binary"))
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `validate` must not create (or even open) a database: neither the configured file nor
/// the default `data/` directory may appear.
fn assert_no_database(dir: &Path) {
    assert!(!dir.join("x.db").exists(), "validate created the database");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "validate wrote files: {left:?}");
}

/// Rule id → number of findings with it, from `--format json` output.
fn json_rules(report: &Value) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in report["servers"].as_array().unwrap() {
        for d in s["documents"].as_array().unwrap() {
            for f in d["findings"].as_array().unwrap() {
                *m.entry(f["rule"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
    }
    m
}

/// The document header a finding line is printed under: the nearest line above it that
/// is not a finding line.
fn document_of<'a>(out: &'a str, finding_line: &str) -> &'a str {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines.iter().position(|l| *l == finding_line).unwrap();
    lines[..i]
        .iter()
        .rev()
        .find(|l| !l.starts_with("  "))
        .copied()
        .unwrap_or("")
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
}

/// A conforming utility: coverage with a geographic and a logical entry, OAuth with
/// scopes, an extension capability.
fn clean_spec() -> UtilitySpec {
    let name = "Clear Creek Electric";
    UtilitySpec::new(name)
        .extra_capabilities(&["ieee1547"])
        .entry(
            EntrySpec::geographic("cce-electric", name, "Boulder County electric", &["08013"])
                .capabilities(&["oauth", "ieee1547"])
                .with_map_png(),
        )
        .entry(
            EntrySpec::logical("cce-ev", name, "EV charging program")
                .capabilities(&["oauth"])
                .dates("2023-01-01T00:00:00Z", "2023-06-01T00:00:00Z"),
        )
        .scope(ScopeSpec::new(
            "cds_usage",
            "Usage",
            "Interval usage.",
            &["cce-electric", "cce-ev"],
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_utility_validates_with_exit_0() {
    let server = FixtureServer::start([127, 0, 0, 51].into()).await.unwrap();
    let published = publish(&server, &clean_spec());
    let dir = tempfile::tempdir().unwrap();
    let allow = [server.host()];
    let opts = || Opts {
        allow_http: &allow,
        allow_private: LOOPBACK,
    };

    let (code, out, err) = validate(dir.path(), opts(), &[&server.host()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("== Clear Creek Electric <"), "{out}");
    // The one remark: plain http, allowed by the operator for this loopback host.
    assert!(
        out.contains(&format!(
            "{}\n  info    HTTP-NOT-HTTPS  (document)  ",
            published.metadata_url
        )),
        "{out}"
    );
    assert!(
        out.ends_with("0 errors, 0 warnings, 1 info across 4 documents of 1 server\n"),
        "{out}"
    );

    // The metadata URL form and JSON output say the same.
    let (code, out, err) = validate(
        dir.path(),
        opts(),
        &[&published.metadata_url, "--format", "json"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json_rules(&report), counts(&[("HTTP-NOT-HTTPS", 1)]));
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["servers"][0]["name"], "Clear Creek Electric");
    assert_eq!(report["servers"][0]["entries"], 2);
    assert_eq!(report["failure"], Value::Null);
    assert_no_database(dir.path());
}

/// A utility with one of each defect; returns its server, what was published, and the
/// (rule, document URL, pointer) each defect must be reported at.
async fn defective_utility() -> (
    FixtureServer,
    Published,
    Vec<(&'static str, String, String)>,
) {
    let server = FixtureServer::start([127, 0, 0, 52].into()).await.unwrap();
    let name = "Defective Power & Light";
    let e = |id: &str, fips: &str| EntrySpec::geographic(id, name, &format!("{id} area"), &[fips]);
    let spec = UtilitySpec::new(name)
        // WG1-01 §2: this registry validates "v1".
        .extra("cds_metadata_version", json!("v2"))
        .entry(e("dpl-country", "17019").country("XX"))
        .entry(e("dpl-cap", "17113").capabilities(&["coverage"]))
        .entry(e("dpl-map", "17167").extra("map_resource", json!(server.url("/map.png"))))
        .entry(e("dpl-dup", "17143"))
        .entry(e("dpl-dup", "17143").description("listed twice"));
    let published = publish(&server, &spec);
    // Trailing commas, as in the spec's own examples: readable leniently, not JSON.
    let meta = serde_json::to_string_pretty(&server.json(WELL_KNOWN_PATH).unwrap()).unwrap();
    let body = meta.trim_end().strip_suffix('}').unwrap().trim_end();
    server.set_raw(
        WELL_KNOWN_PATH,
        "application/json",
        format!("{body},\n}}\n"),
    );

    let page = published.coverage_url.clone().unwrap();
    let ids = &published.entry_ids;
    let at = |id: &str| ids.iter().position(|x| x == id).unwrap();
    let second_dup = ids.iter().rposition(|x| x == "dpl-dup").unwrap();
    assert_ne!(second_dup, at("dpl-dup"));
    let meta_url = published.metadata_url.clone();
    let expected = vec![
        ("HTTP-NOT-HTTPS", meta_url.clone(), String::new()),
        ("JSON-LENIENT", meta_url.clone(), String::new()),
        ("META-VERSION", meta_url, "/cds_metadata_version".to_owned()),
        (
            "COV-COUNTRY",
            page.clone(),
            format!("/coverage_entries/{}/country", at("dpl-country")),
        ),
        (
            "COV-CAP-COVERAGE",
            page.clone(),
            format!("/coverage_entries/{}/capabilities/0", at("dpl-cap")),
        ),
        (
            "COV-MAP-TYPE",
            page.clone(),
            format!("/coverage_entries/{}/map_content_type", at("dpl-map")),
        ),
        (
            "COV-DUP-ID",
            page,
            format!("/coverage_entries/{second_dup}/id"),
        ),
    ];
    (server, published, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defective_utility_exits_1_and_reports_each_problem_once() {
    let (server, published, expected) = defective_utility().await;
    let dir = tempfile::tempdir().unwrap();
    let allow = [server.host()];
    let opts = || Opts {
        allow_http: &allow,
        allow_private: LOOPBACK,
    };

    let (code, out, err) = validate(dir.path(), opts(), &[&server.host()]).await;
    assert_eq!(code, 1, "{out}{err}");
    for (rule, url, pointer) in &expected {
        // Exactly once in the whole output, on a line with its pointer, under its document.
        assert_eq!(out.matches(rule).count(), 1, "{rule}:\n{out}");
        let shown = if pointer.is_empty() {
            "(document)"
        } else {
            pointer
        };
        let line = out
            .lines()
            .find(|l| l.contains(rule))
            .unwrap_or_else(|| panic!("{rule} missing:\n{out}"));
        let severity = match *rule {
            "META-VERSION" => "warning",
            "HTTP-NOT-HTTPS" => "info",
            _ => "error",
        };
        assert!(
            line.starts_with(&format!("  {severity:<7} {rule}  {shown}  ")),
            "{line}"
        );
        assert_eq!(document_of(&out, line), url, "{rule}:\n{out}");
    }
    // Errors before the warning before the info, within the metadata document.
    let pos = |r: &str| out.find(r).unwrap();
    assert!(
        pos("JSON-LENIENT") < pos("META-VERSION") && pos("META-VERSION") < pos("HTTP-NOT-HTTPS")
    );
    assert!(out.contains("(expected v1, got v2)"), "{out}");
    assert!(
        out.ends_with("5 errors, 1 warning, 1 info across 6 documents of 1 server\n"),
        "{out}"
    );

    let (code, out, err) = validate(
        dir.path(),
        opts(),
        &[&published.metadata_url, "--format", "json"],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let want: Vec<(&str, usize)> = expected.iter().map(|(r, _, _)| (*r, 1)).collect();
    assert_eq!(json_rules(&report), counts(&want));
    for (rule, url, pointer) in &expected {
        let found = report["servers"][0]["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["url"] == url.as_str())
            .flat_map(|d| d["findings"].as_array().unwrap())
            .any(|f| f["rule"] == *rule && f["pointer"] == pointer.as_str());
        assert!(found, "{rule} at {url}#{pointer}: {report:#}");
    }
    assert_eq!(report["summary"]["errors"], 5);
    assert_eq!(report["summary"]["warnings"], 1);
    assert_eq!(report["summary"]["info"], 1);
    assert_no_database(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_exits_2_with_the_failure_class() {
    // A port nobody listens on: bind, read the port, close.
    let listener = std::net::TcpListener::bind("127.0.0.53:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let allow = [host.clone()];
    let opts = || Opts {
        allow_http: &allow,
        allow_private: LOOPBACK,
    };

    let (code, out, err) = validate(dir.path(), opts(), &[&host]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "could not validate {host}: connect fetching http://{host}/"
        )),
        "{out}"
    );
    // The cause is said once: no second copy as a FETCH line under the failed server.
    assert_eq!(out.matches("refused").count(), 1, "{out}");
    assert!(!out.contains("FETCH:connect"), "{out}");

    let (code, out, _) = validate(dir.path(), opts(), &[&host, "--format", "json"]).await;
    assert_eq!(code, 2);
    assert!(
        out.contains("FETCH:connect"),
        "JSON keeps the finding: {out}"
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["failure"]["class"], "connect");
    assert_eq!(report["summary"]["servers"], 0);
    assert_no_database(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crawlers_guard_applies() {
    let server = FixtureServer::start([127, 0, 0, 54].into()).await.unwrap();
    let published = publish(&server, &clean_spec());
    let dir = tempfile::tempdir().unwrap();

    // Plain http to a host that is not in `allow_http`: refused before any request.
    let (code, out, err) = validate(
        dir.path(),
        Opts {
            allow_http: &[],
            allow_private: LOOPBACK,
        },
        &[&published.metadata_url],
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("could not validate") && out.contains(": blocked fetching "),
        "{out}"
    );
    assert!(out.contains("plain http not allowed"), "{out}");
    assert!(out.contains("crawl.allow_http"), "names the setting: {out}");

    // Allowed over http, but loopback is not opened with `allow_private`.
    let allow = [server.host()];
    let (code, out, err) = validate(
        dir.path(),
        Opts {
            allow_http: &allow,
            allow_private: "[]",
        },
        &[&server.host(), "--format", "json"],
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["failure"]["class"], "blocked", "{report:#}");
    assert!(
        report["failure"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("crawl.allow_private")),
        "names the setting: {report:#}"
    );
    // Reported once, as an error (the crawler's own finding for a refused URL).
    assert_eq!(json_rules(&report).values().sum::<usize>(), 1, "{report:#}");
    assert_eq!(report["summary"]["errors"], 1);

    assert_eq!(server.total_hits(), 0, "nothing was requested");
    assert_no_database(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_target_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts {
        allow_http: &[],
        allow_private: LOOPBACK,
    };
    let (code, out, err) = validate(dir.path(), opts, &["not a host"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.starts_with("could not validate not a host: invalid")
            && out.contains("contains a space"),
        "{out}"
    );
    // The error says which forms are accepted.
    assert!(out.contains("`https://utility.example/`"), "{out}");
    assert_no_database(dir.path());
}
