//! The machine and tool versions, for the report.

pub(crate) struct Env {
    pub(crate) date: String,
    pub(crate) nproc: String,
    pub(crate) cpu: String,
    pub(crate) ram: String,
    pub(crate) rustc: String,
    pub(crate) commit: String,
    pub(crate) wrk: String,
    pub(crate) pgbench: String,
    pub(crate) kernel: String,
    pub(crate) load_start: String,
}

/// The 1-, 5- and 15-minute load averages.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn environment() -> Env {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    let head = sh("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = !sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let wrk = sh("wrk", &["-v"]);
    Env {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        nproc: sh("nproc", &[]),
        cpu,
        ram,
        rustc: sh("rustc", &["-V"]),
        commit: if dirty {
            format!("{head} (+ uncommitted changes in the work tree)")
        } else {
            head
        },
        wrk: wrk.lines().next().unwrap_or("?").to_owned(),
        pgbench: sh("pgbench", &["--version"]),
        kernel: sh("uname", &["-r"]),
        load_start: loadavg(),
    }
}
