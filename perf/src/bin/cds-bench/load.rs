//! wrk and pgbench: commands, output parsing, and CPU accounting.

use crate::process::run_bounded;
use crate::CLIENTS;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

#[derive(Default)]
pub(crate) struct LoadRun {
    pub(crate) per_sec: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) errors: u64,
    pub(crate) requests: f64,
    /// Response bytes read (wrk), total.
    pub(crate) bytes: f64,
    /// CPU time of the load generator (wrk, pgbench) per request, µs.
    pub(crate) client_cpu_us: f64,
    /// CPU time of the `serve` process per request, µs (HTTP runs only).
    pub(crate) server_cpu_us: f64,
}

impl LoadRun {
    /// A run whose rate and percentiles are not known yet (NaN until the output names them;
    /// a run without them is reported as missing, not as zero).
    fn unmeasured() -> Self {
        LoadRun {
            per_sec: f64::NAN,
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            ..LoadRun::default()
        }
    }
}

/// CPU seconds (user + system) of process `pid` from `/proc/PID/stat`; with `children`,
/// of its reaped children instead (this driver's: the wrk or pgbench run just waited for).
pub(crate) fn cpu_secs(pid: &str, children: bool) -> Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &s[s.rfind(')').context("/proc stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime 14, stime 15, cutime 16, cstime 17.
    let (u, k) = if children { (13, 14) } else { (11, 12) };
    // USER_HZ is 100 on Linux.
    Ok((f[u].parse::<f64>()? + f[k].parse::<f64>()?) / 100.0)
}

pub(crate) fn parse_size_bytes(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches(',');
    for (suffix, mul) in [("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1.0)] {
        if let Some(n) = s.strip_suffix(suffix) {
            // wrk's units are binary.
            let mul = match suffix {
                "GB" => 1024.0 * 1024.0 * 1024.0,
                "MB" => 1024.0 * 1024.0,
                "KB" => 1024.0,
                _ => mul,
            };
            return n.parse::<f64>().ok().map(|x| x * mul);
        }
    }
    None
}

pub(crate) fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|x| x * mul)
}

pub(crate) fn parse_wrk(out: &str) -> Result<LoadRun> {
    let mut run = LoadRun::unmeasured();
    for l in out.lines().map(str::trim) {
        if l.contains(" requests in ") {
            // "69904 requests in 6.03s, 45.43MB read"
            let w: Vec<&str> = l.split_whitespace().collect();
            run.requests = w.first().and_then(|n| n.parse().ok()).unwrap_or(f64::NAN);
            run.bytes = w
                .get(4)
                .and_then(|b| parse_size_bytes(b))
                .unwrap_or(f64::NAN);
        }
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            run.per_sec = v.trim().parse()?;
        } else if let Some(v) = l.strip_prefix("50%") {
            run.p50_us = parse_duration_us(v).unwrap_or(f64::NAN);
        } else if let Some(v) = l.strip_prefix("99%") {
            run.p99_us = parse_duration_us(v).unwrap_or(f64::NAN);
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += v.trim().parse::<u64>()?;
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            run.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if !run.per_sec.is_finite() {
        bail!("no Requests/sec in wrk output:\n{out}");
    }
    Ok(run)
}

pub(crate) fn parse_pgbench(out: &str) -> Result<LoadRun> {
    let mut run = LoadRun::unmeasured();
    for l in out.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("number of transactions actually processed:") {
            run.requests = v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(f64::NAN);
        }
        if let Some(v) = l.strip_prefix("tps =") {
            run.per_sec = v.split_whitespace().next().context("tps value")?.parse()?;
        } else if let Some(v) = l.strip_prefix("latency average =") {
            // pgbench has no percentiles: the average, kept in p50's place.
            run.p50_us = parse_duration_us(&v.replace(' ', "")).unwrap_or(f64::NAN);
        } else if let Some(v) = l.strip_prefix("number of failed transactions:") {
            run.errors += v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    if !run.per_sec.is_finite() {
        bail!("no tps in pgbench output:\n{out}");
    }
    Ok(run)
}

/// wrk with the request paths cycled by `perf/bench/lookup.lua` from `paths`. Both routes go
/// through the same script, so the load generator's per-request Lua cost is the same.
pub(crate) fn wrk_command(base: &str, duration: u64, lua: &Path, paths: &Path) -> Command {
    let mut c = Command::new("wrk");
    c.arg("-t2")
        .arg(format!("-c{CLIENTS}"))
        .arg(format!("-d{duration}s"))
        .arg("--latency")
        .arg("-s")
        .arg(lua)
        .arg(base)
        .arg("--")
        .arg(paths);
    c
}

/// Run wrk against the `serve` process `server_pid`, with CPU accounting for both sides.
pub(crate) async fn run_wrk(cmd: &mut Command, duration: u64, server_pid: u32) -> Result<LoadRun> {
    let server = server_pid.to_string();
    let (s0, c0) = (cpu_secs(&server, false)?, cpu_secs("self", true)?);
    let out = run_bounded(cmd, Duration::from_secs(duration + 60), "wrk").await?;
    let (s1, c1) = (cpu_secs(&server, false)?, cpu_secs("self", true)?);
    let mut run = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
    run.server_cpu_us = (s1 - s0) * 1e6 / run.requests;
    run.client_cpu_us = (c1 - c0) * 1e6 / run.requests;
    Ok(run)
}
