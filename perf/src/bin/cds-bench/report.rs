//! The Markdown report and the raw results (`results.json`).

use crate::agree::Agreement;
use crate::compare::Rounds;
use crate::env::Env;
use crate::http::Registry;
use crate::load::LoadRun;
use crate::postgis::{PgInfo, PG_LOOKUP};
use crate::stats::{median, min_max, Latency};
use crate::{CompareArgs, BATCH, BATCH_REPS, CLIENTS, DOC_BEGIN, DOC_END, POST_BATCHES_PER_ROUND};
use anyhow::Result;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

pub(crate) struct Report<'a> {
    pub(crate) a: &'a CompareArgs,
    pub(crate) env: &'a Env,
    pub(crate) pgi: &'a PgInfo,
    pub(crate) py_info: &'a Value,
    pub(crate) reg: &'a Registry,
    pub(crate) r: &'a Rounds,
    pub(crate) agree: &'a Agreement,
    pub(crate) build_ms: &'a [f64],
    pub(crate) hwm_end_kb: u64,
    pub(crate) rss_end_kb: u64,
    pub(crate) n_counties: usize,
    pub(crate) n_points: usize,
    pub(crate) per_round: usize,
    pub(crate) rounds: usize,
    pub(crate) wrk_lookup_cmd: &'a str,
    pub(crate) wrk_healthz_cmd: &'a str,
    pub(crate) pgbench_cmd: &'a str,
    pub(crate) pg_load_s: f64,
    pub(crate) total_s: f64,
    pub(crate) load_end: String,
}

pub(crate) fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

pub(crate) fn us(ns: f64) -> String {
    if ns < 10_000.0 {
        format!("{:.2}", ns / 1e3)
    } else {
        format!("{:.1}", ns / 1e3)
    }
}

pub(crate) fn spread(v: &[f64]) -> String {
    let (lo, hi) = min_max(v);
    format!("{}–{}", thousands(lo), thousands(hi))
}

pub(crate) fn ratio_per_round(num: &[f64], den: &[f64]) -> Vec<f64> {
    num.iter().zip(den).map(|(n, d)| n / d).collect()
}

/// The load generator's CPU per request, median over rounds.
fn cpu_note(runs: &[LoadRun]) -> String {
    let c: Vec<f64> = runs.iter().map(|x| x.client_cpu_us).collect();
    format!("; load generator CPU {:.0} µs/request", median(&c))
}

/// Latency under load, medians over rounds.
fn lat_note(runs: &[LoadRun]) -> String {
    let p50: Vec<f64> = runs.iter().map(|x| x.p50_us).collect();
    let p99: Vec<f64> = runs.iter().map(|x| x.p99_us).collect();
    format!(
        "latency under load p50 {:.0} µs, p99 {:.0} µs",
        median(&p50),
        median(&p99)
    )
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**missed**"
    }
}

/// The per-round series and ratios the report's sections share.
pub(crate) struct Derived {
    pg_tps: Vec<f64>,
    get_rps: Vec<f64>,
    hz_rps: Vec<f64>,
    floor_rps: Vec<f64>,
    single_ratio: Vec<f64>,
    get_vs_pg: Vec<f64>,
    batch_ratio: Vec<f64>,
    lookup_vs_hz: Vec<f64>,
    build_med: f64,
    rss_mb: f64,
    errors: u64,
}

impl Derived {
    fn new(rep: &Report) -> Derived {
        let r = rep.r;
        let pg_tps = Report::per_s(&r.pgbench);
        let get_rps = Report::per_s(&r.wrk_lookup);
        let hz_rps = Report::per_s(&r.wrk_healthz);
        let floor_rps = Report::per_s(&r.wrk_floor);
        Derived {
            single_ratio: ratio_per_round(&r.lat_shapely.round_p50, &r.lat_inproc.round_p50),
            get_vs_pg: ratio_per_round(&get_rps, &pg_tps),
            batch_ratio: ratio_per_round(&r.inproc_batch_pts_per_s, &r.shapely_vector_pts_per_s),
            lookup_vs_hz: ratio_per_round(&get_rps, &hz_rps),
            build_med: median(rep.build_ms),
            rss_mb: rep.hwm_end_kb as f64 / 1024.0,
            errors: r
                .pgbench
                .iter()
                .chain(&r.wrk_lookup)
                .chain(&r.wrk_healthz)
                .chain(&r.wrk_floor)
                .map(|x| x.errors)
                .sum(),
            pg_tps,
            get_rps,
            hz_rps,
            floor_rps,
        }
    }
}

impl Report<'_> {
    pub(crate) fn per_s(runs: &[LoadRun]) -> Vec<f64> {
        runs.iter().map(|r| r.per_sec).collect()
    }

    pub(crate) fn markdown(&self) -> String {
        let d = Derived::new(self);
        let mut s = String::new();
        let _ = writeln!(s, "{DOC_BEGIN}");
        self.md_intro(&mut s);
        self.md_targets(&mut s, &d);
        self.md_latency(&mut s);
        self.md_throughput(&mut s, &d);
        self.md_agreement(&mut s);
        self.md_memory(&mut s, &d);
        self.md_machine(&mut s);
        self.md_http(&mut s, &d);
        let _ = writeln!(s, "{DOC_END}");
        s
    }

    /// The heading and how the run was made.
    fn md_intro(&self, s: &mut String) {
        let e = self.env;
        let _ = writeln!(s, "## PostGIS / Shapely comparison\n");
        let _ = writeln!(
            s,
            "Measured by `{}` on {} ({:.0} s in all). Point lookups on the {} {}, \
             {} points drawn uniformly in lon -125..-66, \
             lat 24..50 (seed {}). The systems were measured **interleaved**: {} rounds, each \
             round running every system once (order rotated per round), so noise from the \
             shared 2-core machine hits all alike. Medians over rounds; ratios are the median \
             of the per-round ratios (min–max in brackets).\n",
            self.a.invoked_as,
            e.date,
            self.total_s,
            thousands(self.n_counties as f64),
            self.a.data_label,
            thousands(self.n_points as f64),
            self.a.seed,
            self.rounds
        );
    }

    /// The issue's targets, each with its verdict.
    fn md_targets(&self, s: &mut String, d: &Derived) {
        let _ = writeln!(s, "### Headline: targets\n");
        let _ = writeln!(s, "| target | measured | verdict |\n|---|---|---|");
        let rr = |v: &[f64]| {
            let (lo, hi) = min_max(v);
            format!("{:.2}× ({:.2}–{:.2})", median(v), lo, hi)
        };
        let _ = writeln!(
            s,
            "| in-process single lookup ≥ 4× faster than Shapely per-point (p50) | {} | {} |",
            rr(&d.single_ratio),
            verdict(median(&d.single_ratio) >= 4.0)
        );
        let _ = writeln!(
            s,
            "| HTTP `GET /v1/lookup` throughput ≥ 3× PostGIS 4-client tps | {} | {} |",
            rr(&d.get_vs_pg),
            verdict(median(&d.get_vs_pg) >= 3.0)
        );
        let _ = writeln!(
            s,
            "| in-process batch ≥ 2× Shapely vectorised (points/s) | {} | {} |",
            rr(&d.batch_ratio),
            verdict(median(&d.batch_ratio) >= 2.0)
        );
        let _ = writeln!(
            s,
            "| index build < 1 s ({} polygons, median of 5) | {:.1} ms | {} |",
            thousands(self.n_counties as f64),
            d.build_med,
            verdict(d.build_med < 1000.0)
        );
        let _ = writeln!(
            s,
            "| `serve` peak RSS < 150 MB (VmHWM, polygons loaded, after the whole run) | {:.1} MB | {} |",
            d.rss_mb,
            verdict(d.rss_mb < 150.0)
        );
        let _ = writeln!(
            s,
            "| `/v1/lookup` ≥ 80 % of `/healthz` req/s (same server, same wrk settings) | {:.0} % ({:.0}–{:.0} %) | {} |\n",
            median(&d.lookup_vs_hz) * 100.0,
            min_max(&d.lookup_vs_hz).0 * 100.0,
            min_max(&d.lookup_vs_hz).1 * 100.0,
            verdict(median(&d.lookup_vs_hz) >= 0.8)
        );
        let hz_vs_pg = ratio_per_round(&d.hz_rps, &d.pg_tps);
        let _ = writeln!(
            s,
            "For scale: the trivial route `/healthz` of the same server reaches {} PostGIS's 4-client tps on this machine; \
             no HTTP/1.1 route of this server can do better here, so that ratio is the ceiling of the second target. \
             See \"Where the time goes\" below for the analysis of the missed targets.\n",
            rr(&hz_vs_pg)
        );
    }

    /// Single-point latency per system.
    fn md_latency(&self, s: &mut String) {
        let r = self.r;
        let _ = writeln!(s, "### Single-point latency\n");
        let _ = writeln!(
            s,
            "{} points per system ({} per round, the same points for every system), one call at a time.\n",
            thousands(r.lat_inproc.ns.len() as f64),
            thousands(self.per_round as f64)
        );
        let _ = writeln!(
            s,
            "| system | p50 µs | p99 µs | mean µs | per-round p50 µs (min–max) |\n|---|---|---|---|---|"
        );
        for (name, l) in [
            (
                "PostGIS: prepared `ST_Contains` query, 1 connection (sqlx)",
                &r.lat_pg,
            ),
            (
                "registry: `GET /v1/lookup`, 1 keep-alive connection (reqwest)",
                &r.lat_get,
            ),
            ("registry in-process: `SearchIndex::lookup`", &r.lat_inproc),
            (
                "Shapely: `STRtree.query(Point, predicate=\"within\")`",
                &r.lat_shapely,
            ),
            (
                "*floor:* PostgreSQL prepared `SELECT 1`, same connection",
                &r.lat_pg_floor,
            ),
            (
                "*floor:* registry `GET /healthz`, same client",
                &r.lat_healthz,
            ),
            (
                "registry: `GET /v1/lookup`, minimal HTTP/1.1 client (raw socket), 1 connection",
                &r.lat_raw_get,
            ),
            (
                "*floor:* registry `GET /healthz`, minimal HTTP/1.1 client",
                &r.lat_raw_healthz,
            ),
        ] {
            let (lo, hi) = min_max(&l.round_p50);
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {}–{} |",
                us(l.p(0.5)),
                us(l.p(0.99)),
                us(l.mean()),
                us(lo),
                us(hi)
            );
        }
    }

    /// Throughput per system, and errors over all load runs.
    fn md_throughput(&self, s: &mut String, d: &Derived) {
        let r = self.r;
        let _ = writeln!(s, "\n### Throughput\n");
        let _ = writeln!(
            s,
            "| system | median per s | per-round range | note |\n|---|---|---|---|"
        );
        let pg_avg: Vec<f64> = r.pgbench.iter().map(|x| x.p50_us).collect();
        let _ = writeln!(
            s,
            "| PostGIS, pgbench 4 clients (`-M prepared -c4 -j2 -T{}`) | {} tps | {} | average latency {:.0} µs{} |",
            self.a.duration,
            thousands(median(&d.pg_tps)),
            spread(&d.pg_tps),
            median(&pg_avg),
            cpu_note(&r.pgbench)
        );
        let _ = writeln!(
            s,
            "| registry `GET /v1/lookup`, wrk `-t2 -c4 -d{}s` cycling through the points | {} req/s | {} | {}{} |",
            self.a.duration,
            thousands(median(&d.get_rps)),
            spread(&d.get_rps),
            lat_note(&r.wrk_lookup),
            cpu_note(&r.wrk_lookup)
        );
        let _ = writeln!(
            s,
            "| registry `GET /healthz` (trivial route), same wrk settings | {} req/s | {} | {}{} |",
            thousands(median(&d.hz_rps)),
            spread(&d.hz_rps),
            lat_note(&r.wrk_healthz),
            cpu_note(&r.wrk_healthz)
        );
        let _ = writeln!(
            s,
            "| *floor:* bare hyper HTTP/1.1 server, fixed {}-byte JSON body, same wrk settings | {} req/s | {} | {}{} |",
            crate::floor::BODY_BYTES,
            thousands(median(&d.floor_rps)),
            spread(&d.floor_rps),
            lat_note(&r.wrk_floor),
            cpu_note(&r.wrk_floor)
        );
        let _ = writeln!(
            s,
            "| registry `POST /v1/lookup`, batches of {} points, {} connections | {} points/s | {} | {} batches per round, response bodies read in full |",
            thousands(BATCH as f64),
            CLIENTS,
            thousands(median(&r.post_pts_per_s)),
            spread(&r.post_pts_per_s),
            POST_BATCHES_PER_ROUND
        );
        self.md_batch_throughput(s, d);
    }

    /// Throughput rows of the in-process and Shapely batch runs, and errors over all runs.
    fn md_batch_throughput(&self, s: &mut String, d: &Derived) {
        let r = self.r;
        let errors = d.errors;
        let _ = writeln!(
            s,
            "| registry in-process `lookup_batch_csr`, {} points, 1 thread | {} points/s | {} | median of {BATCH_REPS} runs per round |",
            thousands(self.n_points as f64),
            thousands(median(&r.inproc_batch_pts_per_s)),
            spread(&r.inproc_batch_pts_per_s)
        );
        let _ = writeln!(
            s,
            "| Shapely vectorised `STRtree.query(points, predicate=\"within\")`, 1 thread | {} points/s | {} | median of {BATCH_REPS} runs per round |",
            thousands(median(&r.shapely_vector_pts_per_s)),
            spread(&r.shapely_vector_pts_per_s)
        );
        let _ = writeln!(
            s,
            "| Shapely vectorised, bbox query + `contains_xy` on prepared polygons (extra, faster variant) | {} points/s | {} | not a target; shows Shapely at its best |",
            thousands(median(&r.shapely_prepared_pts_per_s)),
            spread(&r.shapely_prepared_pts_per_s)
        );
        let _ = writeln!(
            s,
            "\nErrors (non-2xx, socket errors, failed transactions) over all load runs: {errors}.\n"
        );
    }

    /// Agreement with PostGIS on every point.
    fn md_agreement(&self, s: &mut String) {
        let ag = self.agree;
        let _ = writeln!(
            s,
            "### Agreement on all {} points\n",
            thousands(self.n_points as f64)
        );
        let _ = writeln!(
            s,
            "Reference: PostGIS, one bulk query (`SELECT p.i, c.id FROM bench_points p JOIN counties c ON ST_Contains(c.geom, p.pt)`): \
             {} points in exactly one county, {} in none, {} in more than one.\n",
            thousands(ag.points_in_one as f64),
            thousands(ag.points_in_none as f64),
            thousands(ag.points_in_more as f64)
        );
        let _ = writeln!(
            s,
            "| system | points answered differently from PostGIS |\n|---|---|"
        );
        for (name, n) in ag.systems.iter().zip(&ag.vs_postgis).skip(1) {
            let _ = writeln!(s, "| {name} | {n} |");
        }
        let _ = writeln!(
            s,
            "\nPoints where not all systems agree: {}, of which {} are ties (every disputed county boundary within 1e-9° of the point).",
            ag.any, ag.ties
        );
        if !ag.examples.is_empty() {
            let _ = writeln!(s, "\n```");
            for ex in &ag.examples {
                let _ = writeln!(s, "{ex}");
            }
            let _ = writeln!(s, "```");
        }
    }

    /// Memory and build time.
    fn md_memory(&self, s: &mut String, d: &Derived) {
        let _ = writeln!(s, "\n### Memory and build time\n");
        let _ = writeln!(s, "| measure | value |\n|---|---|");
        let _ = writeln!(
            s,
            "| `SearchIndex::build`, {} polygons, in process: median of 5 (all runs) | {:.1} ms ({}) |",
            thousands(self.n_counties as f64),
            d.build_med,
            self.build_ms
                .iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "| `cds-registry serve`: process start → `/readyz` reports {} entries (migrations, SQLite read, WKB decode, index build) | {:.2} s |",
            thousands(self.n_counties as f64), self.reg.start_to_ready_secs
        );
        let _ = writeln!(
            s,
            "| `serve` VmHWM / VmRSS right after start | {:.1} MB / {:.1} MB |",
            self.reg.hwm_after_start_kb as f64 / 1024.0,
            self.reg.rss_after_start_kb as f64 / 1024.0
        );
        let _ = writeln!(
            s,
            "| `serve` VmHWM / VmRSS after the whole run (incl. {}-point POST batches) | {:.1} MB / {:.1} MB |",
            thousands(BATCH as f64),
            d.rss_mb,
            self.rss_end_kb as f64 / 1024.0
        );
        let _ = writeln!(
            s,
            "| crawl of the fixture utility (`cds-registry crawl`, {} entries + territories over loopback into SQLite) | {:.1} s |",
            thousands(self.n_counties as f64), self.reg.crawl_secs
        );
        let _ = writeln!(
            s,
            "| PostGIS load (`ST_GeomFromGeoJSON` per feature, GiST index, 100k points, VACUUM ANALYZE) | {:.1} s |",
            self.pg_load_s
        );
        let _ = writeln!(
            s,
            "| Shapely STRtree build | {:.1} ms |",
            self.py_info["strtree_build_s"].as_f64().unwrap_or(f64::NAN) * 1e3
        );
    }

    /// Machine, versions and the exact commands.
    fn md_machine(&self, s: &mut String) {
        let e = self.env;
        let _ = writeln!(s, "\n### Machine, versions, commands\n");
        let _ = writeln!(
            s,
            "- machine: {} CPUs (`nproc`), {}, {} RAM, Linux {}; shared with other engineers' builds (load average {} at the start, {} at the end), so absolute numbers are noisy and the ratios are the result",
            e.nproc, e.cpu, e.ram, e.kernel, e.load_start, self.load_end
        );
        let _ = writeln!(
            s,
            "- versions: PostgreSQL {}, PostGIS {} (GEOS {}), Shapely {} (GEOS {}, NumPy {}, Python {}), {}, {}, {}, cds-registry commit {}",
            self.pgi.postgres,
            self.pgi.postgis,
            self.pgi.geos,
            self.py_info["shapely"].as_str().unwrap_or("?"),
            self.py_info["geos"].as_str().unwrap_or("?"),
            self.py_info["numpy"].as_str().unwrap_or("?"),
            self.py_info["python"].as_str().unwrap_or("?"),
            e.rustc,
            e.wrk,
            e.pgbench,
            e.commit
        );
        let _ = writeln!(
            s,
            "- run: `{}` (release build; it calls `target/release/cds-bench compare …`)",
            self.a.invoked_as
        );
        let _ = writeln!(
            s,
            "- registry: `cds-registry seed` + `cds-registry crawl` from a fixture utility on 127.0.0.50 (`start_feature_utility`, 400 entries per page), then `cds-registry serve` with \
             `CDS_REGISTRY_API__RATE_LIMIT_PER_SECOND=0` (**per-IP rate limit disabled**: all load comes from 127.0.0.1), scheduler off, default log filter. Config:\n\n```toml\n{}```",
            self.reg.config_text
        );
        let _ = writeln!(s, "- `{}`", self.wrk_lookup_cmd);
        let _ = writeln!(s, "- `{}`", self.wrk_healthz_cmd);
        let _ = writeln!(
            s,
            "- `{}` (random points in the same box; `perf/bench/postgis_lookup.sql`)",
            self.pgbench_cmd
        );
        let _ = writeln!(
            s,
            "- single lookups: PostGIS `{PG_LOOKUP}` (prepared by sqlx, binary float8 parameters); HTTP client without compression, as wrk; Shapely through `perf/bench/shapely_bench.py` (timed inside Python with `perf_counter_ns`)"
        );
    }

    /// `/v1/lookup` against the trivial route, per round and per request.
    fn md_http(&self, s: &mut String, d: &Derived) {
        let r = self.r;
        let ag = self.agree;
        let _ = writeln!(s, "\n## HTTP lookup vs trivial route\n");
        let _ = writeln!(
            s,
            "Same server process, same wrk settings (`-t2 -c{CLIENTS} -d{}s`, keep-alive, no compression) and the same Lua script (`perf/bench/lookup.lua`; for `/healthz` its path list holds only `/healthz`), run back to back in each of the {} rounds. \
             `/v1/lookup` cycles through the {} benchmark points ({:.0} % of them fall in a county and get one coverage row back, the rest an empty list); \
             `/healthz` returns `{{\"status\":\"ok\"}}` through the same middleware stack (request span, CORS, compression, body limit, rate limiter (off), ETag).\n",
            self.a.duration,
            self.rounds,
            thousands(self.n_points as f64),
            ag.points_in_one as f64 * 100.0 / self.n_points as f64
        );
        let _ = writeln!(
            s,
            "| round | `/v1/lookup` req/s | `/healthz` req/s | ratio |\n|---|---|---|---|"
        );
        for (i, (l, h)) in d.get_rps.iter().zip(d.hz_rps.iter()).enumerate() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} % |",
                i + 1,
                thousands(*l),
                thousands(*h),
                l / h * 100.0
            );
        }
        let _ = writeln!(
            s,
            "| **median** | **{}** | **{}** | **{:.0} %** (target ≥ 80 %: {}) |",
            thousands(median(&d.get_rps)),
            thousands(median(&d.hz_rps)),
            median(&d.lookup_vs_hz) * 100.0,
            verdict(median(&d.lookup_vs_hz) >= 0.8)
        );
        let per_req = |runs: &[LoadRun], f: fn(&LoadRun) -> f64| {
            median(&runs.iter().map(f).collect::<Vec<_>>())
        };
        let _ = writeln!(
            s,
            "\nWhere the difference comes from, per request (medians over rounds; CPU from `/proc/PID/stat` \
             before and after each wrk run, so it includes the kernel's loopback TCP work done on each side's behalf):\n"
        );
        let _ = writeln!(
            s,
            "| per request | `/v1/lookup` | `/healthz` | bare hyper floor |\n|---|---|---|---|"
        );
        let _ = writeln!(
            s,
            "| server CPU (user + system) | {:.1} µs | {:.1} µs | {:.1} µs |",
            per_req(&r.wrk_lookup, |x| x.server_cpu_us),
            per_req(&r.wrk_healthz, |x| x.server_cpu_us),
            per_req(&r.wrk_floor, |x| x.server_cpu_us)
        );
        let _ = writeln!(
            s,
            "| wrk CPU | {:.1} µs | {:.1} µs | {:.1} µs |",
            per_req(&r.wrk_lookup, |x| x.client_cpu_us),
            per_req(&r.wrk_healthz, |x| x.client_cpu_us),
            per_req(&r.wrk_floor, |x| x.client_cpu_us)
        );
        let _ = writeln!(
            s,
            "| response bytes (headers + body) | {:.0} | {:.0} | {:.0} |",
            per_req(&r.wrk_lookup, |x| x.bytes / x.requests),
            per_req(&r.wrk_healthz, |x| x.bytes / x.requests),
            per_req(&r.wrk_floor, |x| x.bytes / x.requests)
        );
        let _ = writeln!(
            s,
            "| req/s, median (ratio to the floor) | {} ({:.0} %) | {} ({:.0} %) | {} |",
            thousands(median(&d.get_rps)),
            median(&ratio_per_round(&d.get_rps, &d.floor_rps)) * 100.0,
            thousands(median(&d.hz_rps)),
            median(&ratio_per_round(&d.hz_rps, &d.floor_rps)) * 100.0,
            thousands(median(&d.floor_rps))
        );
        let _ = writeln!(
            s,
            "| single request over one connection, p50 (table above) | {} µs | {} µs | not measured |",
            us(r.lat_get.p(0.5)),
            us(r.lat_healthz.p(0.5))
        );
    }

    pub(crate) fn raw(&self) -> Value {
        let r = self.r;
        let runs = |v: &[LoadRun]| {
            v.iter()
                .map(|x| {
                    json!({"per_s": x.per_sec, "p50_us": x.p50_us, "p99_us": x.p99_us,
                           "errors": x.errors, "requests": x.requests, "bytes": x.bytes,
                           "client_cpu_us": x.client_cpu_us, "server_cpu_us": x.server_cpu_us})
                })
                .collect::<Vec<_>>()
        };
        let lat = |l: &Latency| json!({"p50_ns": l.p(0.5), "p99_ns": l.p(0.99), "mean_ns": l.mean(), "round_p50_ns": l.round_p50, "n": l.ns.len()});
        json!({
            "date": self.env.date,
            "latency": {
                "postgis": lat(&r.lat_pg),
                "postgres_select1": lat(&r.lat_pg_floor),
                "http_get": lat(&r.lat_get),
                "http_healthz": lat(&r.lat_healthz),
                "raw_http_get": lat(&r.lat_raw_get),
                "raw_http_healthz": lat(&r.lat_raw_healthz),
                "inprocess": lat(&r.lat_inproc),
                "shapely": lat(&r.lat_shapely),
            },
            "pgbench": runs(&r.pgbench),
            "wrk_lookup": runs(&r.wrk_lookup),
            "wrk_healthz": runs(&r.wrk_healthz),
            "wrk_floor": runs(&r.wrk_floor),
            "post_points_per_s": r.post_pts_per_s,
            "inprocess_batch_points_per_s": r.inproc_batch_pts_per_s,
            "shapely_vector_points_per_s": r.shapely_vector_pts_per_s,
            "shapely_prepared_points_per_s": r.shapely_prepared_pts_per_s,
            "build_ms": self.build_ms,
            "serve": {
                "start_to_ready_s": self.reg.start_to_ready_secs,
                "hwm_after_start_kb": self.reg.hwm_after_start_kb,
                "hwm_end_kb": self.hwm_end_kb,
                "rss_end_kb": self.rss_end_kb,
            },
            "agreement": {
                "systems": self.agree.systems,
                "vs_postgis": self.agree.vs_postgis,
                "any": self.agree.any,
                "ties": self.agree.ties,
                "examples": self.agree.examples,
            },
        })
    }
}

/// Replace the generated block of `doc` (between the markers) with `block`, keeping every
/// other section; create the file, or append the block, when there is none yet.
pub(crate) fn update_doc(doc: &Path, block: &str) -> Result<()> {
    let old = std::fs::read_to_string(doc).unwrap_or_default();
    let new = match (old.find(DOC_BEGIN), old.find(DOC_END)) {
        (Some(b), Some(e)) if b < e => {
            format!(
                "{}{}{}",
                &old[..b],
                block.trim_end(),
                &old[e + DOC_END.len()..]
            )
        }
        _ if old.trim().is_empty() => format!("# Performance\n\n{block}"),
        _ => format!("{}\n\n{block}", old.trim_end()),
    };
    if let Some(dir) = doc.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(doc, new)?;
    Ok(())
}
