//! The registry as a separate process, and the HTTP clients that measure it.

use crate::process::{memory_kb, run_bounded};
use crate::{CompareArgs, BATCH, CLIENTS};
use anyhow::{anyhow, bail, Context, Result};
use cds_testkit::feature_utility::start_feature_utility;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

pub(crate) struct Registry {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
    pub(crate) crawl_secs: f64,
    pub(crate) start_to_ready_secs: f64,
    pub(crate) hwm_after_start_kb: u64,
    pub(crate) rss_after_start_kb: u64,
    pub(crate) config_text: String,
}

/// Crawl the counties from a fixture utility into a fresh SQLite file, then start `serve`.
pub(crate) async fn start_registry(a: &CompareArgs, counties: &Value) -> Result<Registry> {
    let work = std::fs::canonicalize(&a.work_dir)?;
    let db = work.join("registry.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    let (utility, n) = start_feature_utility(
        Ipv4Addr::new(127, 0, 0, 50),
        "US Counties Power",
        counties,
        400,
    )
    .await
    .context("starting the fixture utility on 127.0.0.50")?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let config_text = format!(
        "# written by cds-bench\n\
         database_url = \"sqlite://{}\"\n\
         listen = \"127.0.0.1:{port}\"\n\
         \n[api]\n\
         # benchmark traffic comes from one IP: the per-IP limit is off\n\
         rate_limit_per_second = 0\n\
         \n[crawl]\n\
         scheduled = false\n\
         allow_http = [\"{}\"]\n\
         allow_private = [\"127.0.0.50/32\"]\n",
        db.display(),
        utility.host(),
    );
    let cfg = work.join("registry.toml");
    std::fs::write(&cfg, &config_text)?;
    std::fs::write(work.join("seeds.txt"), format!("{}\n", utility.host()))?;
    let reg = |args: &[&str]| {
        let mut c = Command::new(&a.registry_bin);
        c.arg("--config")
            .arg(&cfg)
            .args(args)
            .env("CDS_REGISTRY_API__RATE_LIMIT_PER_SECOND", "0")
            .env("RUST_LOG", "warn");
        c
    };
    let seeds = work.join("seeds.txt");
    run_bounded(
        &mut reg(&["seed", &seeds.to_string_lossy()]),
        Duration::from_secs(60),
        "cds-registry seed",
    )
    .await?;
    let t = Instant::now();
    let out = run_bounded(
        &mut reg(&["crawl"]),
        Duration::from_secs(600),
        "cds-registry crawl",
    )
    .await?;
    let crawl_secs = t.elapsed().as_secs_f64();
    eprintln!("crawl: {}", String::from_utf8_lossy(&out.stdout).trim());
    utility.shutdown().await;

    let log = std::fs::File::create(work.join("serve.log"))?;
    let t = Instant::now();
    let child = reg(&["serve"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting cds-registry serve")?;
    let pid = child.id().context("serve pid")?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()?;
    let mut ready = false;
    for _ in 0..1200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if v["index_entries"].as_u64() == Some(n as u64) {
                    ready = true;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !ready {
        bail!("cds-registry serve did not report {n} index entries within 30 s (see serve.log)");
    }
    let start_to_ready_secs = t.elapsed().as_secs_f64();
    let (hwm, rss) = memory_kb(pid)?;
    Ok(Registry {
        child,
        pid,
        base,
        crawl_secs,
        start_to_ready_secs,
        hwm_after_start_kb: hwm,
        rss_after_start_kb: rss,
        config_text,
    })
}

/// A plain HTTP/1.1 client with one keep-alive connection and no compression (as wrk).
pub(crate) fn one_connection_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .no_gzip()
        .no_brotli()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()?)
}

pub(crate) async fn http_single(
    client: &reqwest::Client,
    base: &str,
    pts: &[[f64; 2]],
) -> Result<Vec<u64>> {
    let urls = pts
        .iter()
        .map(|[lon, lat]| format!("{base}/v1/lookup?lat={lat}&lon={lon}"));
    http_urls(client, urls).await
}

/// One request after the other over `client`'s keep-alive connection; per-request time.
pub(crate) async fn http_urls(
    client: &reqwest::Client,
    urls: impl Iterator<Item = String>,
) -> Result<Vec<u64>> {
    let mut ns = Vec::with_capacity(urls.size_hint().0);
    for url in urls {
        let t = Instant::now();
        let r = client.get(url).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        ns.push(t.elapsed().as_nanos() as u64);
        if !status.is_success() {
            bail!("GET: {status}: {}", String::from_utf8_lossy(&body));
        }
    }
    Ok(ns)
}

/// A minimal HTTP/1.1 keep-alive client on one TCP connection: writes the request line,
/// reads the head and a `Content-Length` body. It shows what the server and the protocol
/// cost without a full client library's per-request work (URL parsing, pooling, tasks).
pub(crate) struct RawHttp {
    pub(crate) stream: tokio::net::TcpStream,
    pub(crate) buf: Vec<u8>,
}

impl RawHttp {
    pub(crate) async fn connect(addr: &str) -> Result<RawHttp> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawHttp {
            stream,
            buf: Vec::with_capacity(16 << 10),
        })
    }

    /// GET `path`; returns the response length. Bounded: 30 s per response.
    pub(crate) async fn get(&mut self, path: &str) -> Result<usize> {
        use tokio::io::AsyncReadExt;
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream.write_all(req.as_bytes()).await?;
        self.buf.clear();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut chunk = [0u8; 16 << 10];
        let mut need: Option<usize> = None;
        loop {
            if need.is_none() {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = std::str::from_utf8(&self.buf[..end])?;
                    if !head.starts_with("HTTP/1.1 200") {
                        bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
                    }
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            if k.eq_ignore_ascii_case("content-length") {
                                v.trim().parse::<usize>().ok()
                            } else {
                                None
                            }
                        })
                        .with_context(|| format!("GET {path}: no content-length"))?;
                    need = Some(end + 4 + len);
                }
            }
            if let Some(n) = need {
                if self.buf.len() >= n {
                    return Ok(n);
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| anyhow!("GET {path}: no response within 30 s"))??;
            if n == 0 {
                bail!("GET {path}: connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

pub(crate) async fn raw_paths(
    conn: &mut RawHttp,
    paths: impl Iterator<Item = String>,
) -> Result<Vec<u64>> {
    let mut ns = Vec::with_capacity(paths.size_hint().0);
    for p in paths {
        let t = Instant::now();
        conn.get(&p).await?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    Ok(ns)
}

/// `POST /v1/lookup` of `batches` (round-robin over `CLIENTS` connections): points/s.
pub(crate) async fn http_post_throughput(
    base: &str,
    bodies: &Arc<Vec<bytes::Bytes>>,
    batches: usize,
) -> Result<f64> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let bodies = bodies.clone();
        let url = format!("{base}/v1/lookup");
        tasks.push(tokio::spawn(async move {
            let client = one_connection_client()?;
            let mut points = 0usize;
            for b in (c..batches).step_by(CLIENTS) {
                let body = bodies[b % bodies.len()].clone();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = r.status();
                let bytes = r.bytes().await?;
                if !status.is_success() {
                    bail!(
                        "POST /v1/lookup: {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                points += BATCH;
            }
            anyhow::Ok(points)
        }));
    }
    let mut points = 0;
    for t in tasks {
        points += t.await??;
    }
    Ok(points as f64 / t.elapsed().as_secs_f64())
}

/// The answers of `POST /v1/lookup` for all points, as entry ids (outside any timing).
pub(crate) async fn http_post_answers(
    base: &str,
    points: &[[f64; 2]],
) -> Result<Vec<BTreeSet<String>>> {
    let client = one_connection_client()?;
    let mut out = Vec::with_capacity(points.len());
    for chunk in points.chunks(BATCH) {
        let v: Value = client
            .post(format!("{base}/v1/lookup"))
            .json(&json!({ "points": chunk }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let matches = v["matches"].as_array().context("matches")?;
        if matches.len() != chunk.len() {
            bail!(
                "POST /v1/lookup: {} answers for {} points",
                matches.len(),
                chunk.len()
            );
        }
        for m in matches {
            let mut ids = BTreeSet::new();
            for k in m.as_array().context("match list")? {
                let id = v["entries"][k.to_string()]["entry_id"]
                    .as_str()
                    .with_context(|| format!("entry {k} not in entries"))?;
                ids.insert(id.to_owned());
            }
            out.push(ids);
        }
    }
    Ok(out)
}
