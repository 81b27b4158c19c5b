//! Child processes: bounded runs, `/proc` memory, and the Shapely co-process.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub(crate) async fn run_bounded(
    cmd: &mut Command,
    limit: Duration,
    what: &str,
) -> Result<std::process::Output> {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| anyhow!("{what}: no result within {limit:?}"))?
        .with_context(|| format!("{what}: could not start"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

pub(crate) fn command_text(cmd: &Command) -> String {
    let c = cmd.as_std();
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A process's `VmHWM` and `VmRSS` (kB) from `/proc/PID/status`.
pub(crate) fn memory_kb(pid: u32) -> Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// The Shapely co-process (perf/bench/shapely_bench.py): one JSON line per command.
pub(crate) struct Shapely {
    pub(crate) child: Child,
    pub(crate) stdin: ChildStdin,
    pub(crate) stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Shapely {
    pub(crate) async fn start(
        python: &Path,
        script: &Path,
        counties: &Path,
        points: &Path,
    ) -> Result<Shapely> {
        let mut child = Command::new(python)
            .arg(script)
            .arg(counties)
            .arg(points)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().context("python stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("python stdout")?).lines();
        Ok(Shapely {
            child,
            stdin,
            stdout,
        })
    }

    pub(crate) async fn call(&mut self, cmd: &str) -> Result<Value> {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let line = tokio::time::timeout(Duration::from_secs(600), self.stdout.next_line())
            .await
            .map_err(|_| anyhow!("shapely: no answer to {cmd:?} in 600 s"))??
            .ok_or_else(|| anyhow!("shapely exited before answering {cmd:?}"))?;
        let v: Value = serde_json::from_str(&line).context("shapely answer")?;
        if let Some(e) = v.get("error") {
            bail!("shapely: {e}");
        }
        Ok(v)
    }

    pub(crate) async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
