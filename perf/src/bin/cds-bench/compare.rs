//! The interleaved comparison: every system once per round, order rotated.

use crate::agree::{agreement, Agreement};
use crate::data::{county_entries, features, gen_points, read_counties, write_points, Shapes};
use crate::env::{environment, loadavg};
use crate::floor::Floor;
use crate::http::{
    http_post_answers, http_post_throughput, http_single, http_urls, one_connection_client,
    raw_paths, start_registry, RawHttp, Registry,
};
use crate::load::{cpu_secs, parse_pgbench, run_wrk, wrk_command, LoadRun};
use crate::postgis::{load_postgis, pg_answers, pg_info, pg_select1, pg_single, PgInfo};
use crate::process::{command_text, memory_kb, run_bounded, Shapely};
use crate::report::{update_doc, Report};
use crate::stats::{median, Latency};
use crate::{CompareArgs, BATCH, BATCH_REPS, CLIENTS, POST_BATCHES_PER_ROUND};
use anyhow::{Context, Result};
use cds_registry::index::{Filter, IndexEntry, SearchIndex};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Single {
    PostGis,
    PgSelect1,
    HttpGet,
    HttpHealthz,
    RawGet,
    RawHealthz,
    InProcess,
    Shapely,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Throughput {
    PgBench,
    WrkLookup,
    WrkHealthz,
    WrkFloor,
    HttpPost,
    InProcessBatch,
    ShapelyVector,
    ShapelyPrepared,
}

#[derive(Default)]
pub(crate) struct Rounds {
    pub(crate) lat_pg: Latency,
    pub(crate) lat_pg_floor: Latency,
    pub(crate) lat_get: Latency,
    pub(crate) lat_healthz: Latency,
    pub(crate) lat_raw_get: Latency,
    pub(crate) lat_raw_healthz: Latency,
    pub(crate) lat_inproc: Latency,
    pub(crate) lat_shapely: Latency,
    pub(crate) pgbench: Vec<LoadRun>,
    pub(crate) wrk_lookup: Vec<LoadRun>,
    pub(crate) wrk_healthz: Vec<LoadRun>,
    pub(crate) wrk_floor: Vec<LoadRun>,
    pub(crate) post_pts_per_s: Vec<f64>,
    pub(crate) inproc_batch_pts_per_s: Vec<f64>,
    pub(crate) shapely_vector_pts_per_s: Vec<f64>,
    pub(crate) shapely_prepared_pts_per_s: Vec<f64>,
}

pub(crate) fn rotate<T: Copy>(items: &[T], by: usize) -> Vec<T> {
    let n = items.len();
    (0..n).map(|i| items[(i + by) % n]).collect()
}

pub(crate) fn inproc_single(index: &SearchIndex, pts: &[[f64; 2]]) -> Vec<u64> {
    let none = Filter::default();
    let mut ns = Vec::with_capacity(pts.len());
    for &[lon, lat] in pts {
        let t = Instant::now();
        let hits = index.lookup(std::hint::black_box(lon), std::hint::black_box(lat), &none);
        ns.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(hits);
    }
    ns
}

pub(crate) fn ns_of(v: &Value) -> Result<Vec<u64>> {
    v["ns"]
        .as_array()
        .context("ns")?
        .iter()
        .map(|x| x.as_u64().context("ns value"))
        .collect()
}

/// The scratch files the load generators read: `points.csv` (Shapely), `paths.txt` (wrk on
/// `/v1/lookup`), `healthz_paths.txt` (wrk on `/healthz`) and `floor_paths.txt` (wrk on
/// the bare hyper server).
pub(crate) struct Files {
    pub(crate) points_csv: PathBuf,
    pub(crate) paths_txt: PathBuf,
    pub(crate) healthz_txt: PathBuf,
    pub(crate) floor_txt: PathBuf,
}

impl Files {
    fn write(dir: &Path, points: &[[f64; 2]]) -> Result<Files> {
        write_points(dir, points)?;
        let files = Files {
            points_csv: dir.join("points.csv"),
            paths_txt: dir.join("paths.txt"),
            healthz_txt: dir.join("healthz_paths.txt"),
            floor_txt: dir.join("floor_paths.txt"),
        };
        std::fs::write(&files.healthz_txt, "/healthz\n")?;
        std::fs::write(&files.floor_txt, "/\n")?;
        eprintln!(
            "[cds-bench] {} points written to {}",
            points.len(),
            files.points_csv.display()
        );
        Ok(files)
    }
}

/// Every system under measurement, started once and measured in the same rounds.
pub(crate) struct Systems {
    pub(crate) points: Vec<[f64; 2]>,
    pub(crate) files: Files,
    pub(crate) shapes: Shapes,
    pub(crate) index: SearchIndex,
    pub(crate) build_ms: Vec<f64>,
    pub(crate) pg: PgConnection,
    pub(crate) pg_load_s: f64,
    pub(crate) pgi: PgInfo,
    pub(crate) reg: Registry,
    pub(crate) floor: Floor,
    pub(crate) py: Shapely,
    pub(crate) py_info: Value,
    pub(crate) client: reqwest::Client,
    pub(crate) raw: RawHttp,
    /// The points as `POST /v1/lookup` bodies of `BATCH` points each.
    pub(crate) bodies: Arc<Vec<bytes::Bytes>>,
}

/// The in-process index from the same GeoJSON; build time: median of 5.
fn build_index(entries: Vec<IndexEntry>) -> (SearchIndex, Vec<f64>) {
    let mut build_ms = Vec::new();
    for _ in 0..5 {
        let e = entries.clone();
        let t = Instant::now();
        let idx = SearchIndex::build(e);
        build_ms.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(idx);
    }
    let index = SearchIndex::build(entries);
    eprintln!(
        "[cds-bench] in-process index: {} entries, build {:?} ms",
        index.len(),
        build_ms
    );
    (index, build_ms)
}

/// Connect to the scratch database and load the counties and points into PostGIS.
async fn start_postgis(
    a: &CompareArgs,
    counties: &Value,
    points: &[[f64; 2]],
) -> Result<(PgConnection, f64, PgInfo)> {
    let pg_url = format!(
        "postgres://{}@{}:{}/{}",
        a.pg_user, a.pg_host, a.pg_port, a.pg_db
    );
    let mut pg = PgConnection::connect(&pg_url)
        .await
        .with_context(|| format!("connecting to {pg_url}"))?;
    let t = Instant::now();
    load_postgis(&mut pg, counties, points).await?;
    let pg_load_s = t.elapsed().as_secs_f64();
    let pgi = pg_info(&mut pg).await?;
    eprintln!("[cds-bench] PostGIS loaded in {pg_load_s:.1} s");
    Ok((pg, pg_load_s, pgi))
}

/// `GET /v1/lookup` paths for the points.
fn lookup_paths(pts: &[[f64; 2]]) -> impl Iterator<Item = String> + '_ {
    pts.iter()
        .map(|[lon, lat]| format!("/v1/lookup?lat={lat}&lon={lon}"))
}

/// pgbench with `postgis_lookup.sql` on `CLIENTS` clients for `a.duration` seconds.
fn pgbench_command(a: &CompareArgs, seed: u64) -> Command {
    let mut c = Command::new("pgbench");
    c.args([
        "-h",
        &a.pg_host,
        "-p",
        &a.pg_port.to_string(),
        "-U",
        &a.pg_user,
    ])
    .args(["-n", "-M", "prepared"])
    .arg(format!("-c{CLIENTS}"))
    .arg("-j2")
    .arg(format!("-T{}", a.duration))
    .arg(format!("--random-seed={seed}"))
    .arg("-f")
    .arg(a.bench_dir.join("postgis_lookup.sql"))
    .arg(&a.pg_db);
    c
}

impl Systems {
    async fn start(a: &CompareArgs, counties: &Value) -> Result<Systems> {
        let points = gen_points(a.points, a.seed);
        let files = Files::write(&a.work_dir, &points)?;
        let (entries, shapes) = county_entries(counties)?;
        let (index, build_ms) = build_index(entries);
        let (pg, pg_load_s, pgi) = start_postgis(a, counties, &points).await?;
        let reg = start_registry(a, counties).await?;
        eprintln!(
            "[cds-bench] registry crawled in {:.1} s, serving at {} (ready {:.2} s after start)",
            reg.crawl_secs, reg.base, reg.start_to_ready_secs
        );
        let floor = Floor::start().await?;
        eprintln!("[cds-bench] bare hyper floor at {}", floor.base);
        let script = a.bench_dir.join("shapely_bench.py");
        let mut py = Shapely::start(&a.python, &script, &a.counties, &files.points_csv).await?;
        let py_info = py.call("info").await?;
        eprintln!("[cds-bench] shapely: {py_info}");
        let client = one_connection_client()?;
        let raw = RawHttp::connect(reg.base.trim_start_matches("http://")).await?;
        let bodies = Arc::new(
            points
                .chunks(BATCH)
                .map(|c| bytes::Bytes::from(json!({ "points": c }).to_string()))
                .collect(),
        );
        Ok(Systems {
            points,
            files,
            shapes,
            index,
            build_ms,
            pg,
            pg_load_s,
            pgi,
            reg,
            floor,
            py,
            py_info,
            client,
            raw,
            bodies,
        })
    }

    /// Warm-up, every system, same points.
    async fn warm_up(&mut self) -> Result<()> {
        let warm = &self.points[..500.min(self.points.len())];
        pg_single(&mut self.pg, warm).await?;
        http_single(&self.client, &self.reg.base, warm).await?;
        raw_paths(&mut self.raw, lookup_paths(warm)).await?;
        inproc_single(&self.index, warm);
        self.py.call(&format!("single 0 {}", warm.len())).await?;
        Ok(())
    }

    /// One single-point latency run of system `s` over `points[start..start + n]`.
    async fn single(&mut self, s: Single, start: usize, n: usize, r: &mut Rounds) -> Result<()> {
        let slice = &self.points[start..start + n];
        match s {
            Single::PostGis => r.lat_pg.add_round(pg_single(&mut self.pg, slice).await?),
            Single::PgSelect1 => r
                .lat_pg_floor
                .add_round(pg_select1(&mut self.pg, slice.len()).await?),
            Single::RawGet => r
                .lat_raw_get
                .add_round(raw_paths(&mut self.raw, lookup_paths(slice)).await?),
            Single::RawHealthz => r
                .lat_raw_healthz
                .add_round(raw_paths(&mut self.raw, (0..n).map(|_| "/healthz".to_owned())).await?),
            Single::HttpHealthz => {
                let urls = (0..n).map(|_| format!("{}/healthz", self.reg.base));
                r.lat_healthz
                    .add_round(http_urls(&self.client, urls).await?)
            }
            Single::HttpGet => r
                .lat_get
                .add_round(http_single(&self.client, &self.reg.base, slice).await?),
            Single::InProcess => r.lat_inproc.add_round(inproc_single(&self.index, slice)),
            Single::Shapely => r
                .lat_shapely
                .add_round(ns_of(&self.py.call(&format!("single {start} {n}")).await?)?),
        }
        Ok(())
    }

    /// One throughput run of system `l` in round `round`.
    async fn throughput(
        &mut self,
        a: &CompareArgs,
        l: Throughput,
        round: usize,
        r: &mut Rounds,
    ) -> Result<()> {
        let lua = a.bench_dir.join("lookup.lua");
        let base = &self.reg.base;
        match l {
            Throughput::PgBench => r.pgbench.push(run_pgbench(a, round).await?),
            Throughput::WrkLookup => {
                let mut cmd = wrk_command(base, a.duration, &lua, &self.files.paths_txt);
                r.wrk_lookup
                    .push(run_wrk(&mut cmd, a.duration, self.reg.pid).await?)
            }
            Throughput::WrkHealthz => {
                let mut cmd = wrk_command(base, a.duration, &lua, &self.files.healthz_txt);
                r.wrk_healthz
                    .push(run_wrk(&mut cmd, a.duration, self.reg.pid).await?)
            }
            Throughput::WrkFloor => {
                let mut cmd =
                    wrk_command(&self.floor.base, a.duration, &lua, &self.files.floor_txt);
                r.wrk_floor
                    .push(run_wrk(&mut cmd, a.duration, self.floor.pid).await?)
            }
            Throughput::HttpPost => r
                .post_pts_per_s
                .push(http_post_throughput(base, &self.bodies, POST_BATCHES_PER_ROUND).await?),
            Throughput::InProcessBatch => r.inproc_batch_pts_per_s.push(self.inproc_batch()),
            Throughput::ShapelyVector => r
                .shapely_vector_pts_per_s
                .push(self.shapely_batch("vector").await?),
            Throughput::ShapelyPrepared => r
                .shapely_prepared_pts_per_s
                .push(self.shapely_batch("vector_prepared").await?),
        }
        Ok(())
    }

    /// The batch runs are short: the median of `BATCH_REPS` per round.
    fn inproc_batch(&self) -> f64 {
        let none = Filter::default();
        let mut v = Vec::new();
        for _ in 0..BATCH_REPS {
            let t = Instant::now();
            let hits = self
                .index
                .lookup_batch_csr(std::hint::black_box(&self.points), &none);
            v.push(self.points.len() as f64 / t.elapsed().as_secs_f64());
            std::hint::black_box(hits);
        }
        median(&v)
    }

    /// Shapely's vectorised query (`cmd`): the median of `BATCH_REPS` per round.
    async fn shapely_batch(&mut self, cmd: &str) -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..BATCH_REPS {
            let secs = self.py.call(cmd).await?["secs"].as_f64().context("secs")?;
            v.push(self.points.len() as f64 / secs);
        }
        Ok(median(&v))
    }

    /// Every system once per round, order rotated per round; returns the samples and the
    /// points each single-lookup run used.
    async fn measure(&mut self, a: &CompareArgs, rounds: usize) -> Result<(Rounds, usize)> {
        let per_round = (a.latency_points / rounds).clamp(1, self.points.len() / rounds);
        let mut r = Rounds::default();
        for round in 0..rounds {
            for s in rotate(&SINGLES, round) {
                eprintln!("[cds-bench] round {}/{rounds}: single {s:?}", round + 1);
                self.single(s, round * per_round, per_round, &mut r).await?;
            }
            for l in rotate(&LOADS, round) {
                eprintln!("[cds-bench] round {}/{rounds}: throughput {l:?}", round + 1);
                self.throughput(a, l, round, &mut r).await?;
            }
        }
        Ok((r, per_round))
    }

    /// Every point's answer from each system, PostGIS first.
    async fn agreement(&mut self) -> Result<Agreement> {
        eprintln!("[cds-bench] agreement");
        let pg_ans = pg_answers(&mut self.pg, self.points.len()).await?;
        let py_ans = id_sets(&self.py.call("agree").await?["ids"])?;
        let none = Filter::default();
        let batch = self.index.lookup_batch_csr(&self.points, &none);
        let ours: Vec<BTreeSet<String>> = (0..batch.len())
            .map(|i| {
                batch
                    .get(i)
                    .iter()
                    .map(|&e| self.index.entry(e as usize).id().to_owned())
                    .collect()
            })
            .collect();
        let http_ans = http_post_answers(&self.reg.base, &self.points).await?;
        Ok(agreement(
            &self.points,
            vec!["PostGIS", "Shapely", "ours in-process", "ours HTTP POST"],
            &[pg_ans, py_ans, ours, http_ans],
            &self.shapes,
        ))
    }
}

const SINGLES: [Single; 8] = [
    Single::PostGis,
    Single::PgSelect1,
    Single::HttpGet,
    Single::HttpHealthz,
    Single::RawGet,
    Single::RawHealthz,
    Single::InProcess,
    Single::Shapely,
];

const LOADS: [Throughput; 8] = [
    Throughput::PgBench,
    Throughput::WrkLookup,
    Throughput::WrkHealthz,
    Throughput::WrkFloor,
    Throughput::HttpPost,
    Throughput::InProcessBatch,
    Throughput::ShapelyVector,
    Throughput::ShapelyPrepared,
];

/// One pgbench run, with the load generator's CPU per transaction.
async fn run_pgbench(a: &CompareArgs, round: usize) -> Result<LoadRun> {
    let c0 = cpu_secs("self", true)?;
    let out = run_bounded(
        &mut pgbench_command(a, a.seed + round as u64),
        Duration::from_secs(a.duration + 60),
        "pgbench",
    )
    .await?;
    let c1 = cpu_secs("self", true)?;
    let mut run = parse_pgbench(&String::from_utf8_lossy(&out.stdout))?;
    run.client_cpu_us = (c1 - c0) * 1e6 / run.requests;
    Ok(run)
}

/// Shapely's answers: one list of county ids per point.
fn id_sets(ids: &Value) -> Result<Vec<BTreeSet<String>>> {
    Ok(ids
        .as_array()
        .context("ids")?
        .iter()
        .map(|l| {
            l.as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect())
}

pub(crate) async fn compare(a: CompareArgs) -> Result<()> {
    let t_all = Instant::now();
    std::fs::create_dir_all(&a.work_dir)?;
    let env = environment();
    let counties = read_counties(&a.counties)?;
    let n_counties = features(&counties).len();
    let mut sys = Systems::start(&a, &counties).await?;
    sys.warm_up().await?;

    let lua = a.bench_dir.join("lookup.lua");
    let base = &sys.reg.base;
    let wrk_lookup_cmd = command_text(&wrk_command(base, a.duration, &lua, &sys.files.paths_txt));
    let wrk_healthz_cmd =
        command_text(&wrk_command(base, a.duration, &lua, &sys.files.healthz_txt));
    let pgbench_cmd_text = command_text(&pgbench_command(&a, a.seed));

    let rounds = a.rounds.max(1);
    let (r, per_round) = sys.measure(&a, rounds).await?;
    let agree = sys.agreement().await?;

    let (hwm_end, rss_end) = memory_kb(sys.reg.pid)?;
    let Systems {
        py,
        mut reg,
        mut floor,
        pg,
        pgi,
        py_info,
        build_ms,
        points,
        pg_load_s,
        ..
    } = sys;
    py.quit().await;
    let _ = reg.child.kill().await;
    let _ = floor.child.kill().await;
    let _ = pg.close().await;
    let report = Report {
        a: &a,
        env: &env,
        pgi: &pgi,
        py_info: &py_info,
        reg: &reg,
        r: &r,
        agree: &agree,
        build_ms: &build_ms,
        hwm_end_kb: hwm_end,
        rss_end_kb: rss_end,
        n_counties,
        n_points: points.len(),
        per_round,
        rounds,
        wrk_lookup_cmd: &wrk_lookup_cmd,
        wrk_healthz_cmd: &wrk_healthz_cmd,
        pgbench_cmd: &pgbench_cmd_text,
        pg_load_s,
        total_s: t_all.elapsed().as_secs_f64(),
        load_end: loadavg(),
    };
    write_report(&a, &report)
}

/// `report.md` and `results.json` in the work directory, the Markdown on stdout, and the
/// generated block of `--doc`.
fn write_report(a: &CompareArgs, report: &Report) -> Result<()> {
    let md = report.markdown();
    std::fs::write(a.work_dir.join("report.md"), &md)?;
    std::fs::write(
        a.work_dir.join("results.json"),
        serde_json::to_string_pretty(&report.raw())?,
    )?;
    println!("{md}");
    if let Some(doc) = &a.doc {
        update_doc(doc, &md)?;
        eprintln!("[cds-bench] report written into {}", doc.display());
    }
    Ok(())
}
