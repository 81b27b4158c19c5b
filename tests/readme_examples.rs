//! Every curl example in the README's "HTTP API" section, run as written against the demo
//! (its fixture data, its admin token): each must succeed and answer something non-empty.
//! A newcomer pastes these first; an example that answers `[]` or 404 on the demo data
//! teaches them nothing.

use std::process::Command;

use cds_registry::cli::demo::{self, DemoOptions};
use serde_json::Value;

/// The shell lines of the README's first ```sh block after "## HTTP API", with `\`
/// continuations joined; only the lines that run curl.
fn readme_curl_lines() -> Vec<String> {
    let readme = include_str!("../README.md");
    let section = readme
        .split_once("## HTTP API")
        .expect("the README has an HTTP API section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the HTTP API section has a sh block")
        .0;
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in block.lines() {
        let line = raw.trim_end();
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            continue;
        }
        current.push_str(line);
        let joined = std::mem::take(&mut current);
        if joined.trim_start().starts_with("curl ") {
            lines.push(joined);
        }
    }
    lines
}

/// Lists that must not be empty when they appear at the top level of an answer.
const MAIN_LISTS: &[&str] = &[
    "results", "entries", "entities", "coverage", "findings", "matches", "hosts", "servers",
    "runs", "changes",
];

fn assert_not_empty(line: &str, out: &str) {
    let out = out.trim();
    assert!(!out.is_empty(), "no output from: {line}");
    let Ok(v) = serde_json::from_str::<Value>(out) else {
        return; // text (metrics, SSE, a status code)
    };
    match &v {
        Value::Array(a) => assert!(!a.is_empty(), "`[]` from: {line}"),
        Value::Object(o) => {
            for key in MAIN_LISTS {
                if let Some(Value::Array(a)) = o.get(*key) {
                    assert!(!a.is_empty(), "empty `{key}` from: {line}\n{out}");
                }
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_curl_example_answers_on_the_demo_data() {
    let lines = readme_curl_lines();
    assert!(lines.len() >= 20, "found only {} curl lines", lines.len());
    let dir = tempfile::tempdir().unwrap();
    let running = demo::start(DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some("readme-token".into()),
        data_dir: dir.path().join("data"),
        progress: false,
    })
    .await
    .unwrap();
    let base = running.registry.url();
    for line in &lines {
        // `--fail-with-body` turns any 4xx/5xx into a failing exit code; stderr shows why.
        let cmd = line.replacen("curl ", "curl --fail-with-body -S ", 1);
        let cmd = cmd.replace("; curl ", "; curl --fail-with-body -S ");
        let (out, status, err) = tokio::task::spawn_blocking({
            let base = base.clone();
            let cwd = dir.path().to_owned();
            move || {
                let o = Command::new("bash")
                    .arg("-c")
                    .arg(&cmd)
                    .current_dir(cwd)
                    .env("B", base)
                    .env("TOKEN", "readme-token")
                    .output()
                    .expect("bash and curl are installed");
                (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                )
            }
        })
        .await
        .unwrap();
        // A live stream ends only at its --max-time (curl exit 28) with what it had.
        let stream_timed_out = line.contains("--max-time") && status == Some(28);
        assert!(
            status == Some(0) || stream_timed_out,
            "{line}\nexit {status:?}: {err}\n{out}"
        );
        if line.contains("> coverage.ndjson") {
            let file = std::fs::read_to_string(dir.path().join("coverage.ndjson")).unwrap();
            assert!(file.lines().count() > 1, "{line}: {file}");
        } else {
            assert_not_empty(line, &out);
        }
    }
    running.shutdown().await.unwrap();
}
