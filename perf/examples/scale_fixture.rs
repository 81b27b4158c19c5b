//! A synthetic national aggregator (issue 17, "Scale"): ONE CDS server on loopback whose
//! coverage listing holds `--entries` geographic entries, each with its own GeoJSON
//! territory, generated on demand from `--seed` and the entry's number (nothing is kept in
//! memory but the parameters and a few counters).
//!
//! ```text
//! cargo run --release --example scale_fixture -- --entries 100000 --page-size 1000 \
//!     --latency-ms 20 --seed 7 --listen 127.0.0.1:0 [--changed-percent 1 --generation 1]
//! ```
//!
//! - Metadata at the well-known path (WG1-01 §2), capabilities `["coverage"]`.
//! - The listing at `/cds/coverage.json`, pages 2.. at `?page=N`, linked by `next` /
//!   `previous` (WG1-01 §3), newest `updated` first.
//! - Territory `N` at `/cds/territory/N.geojson`: one cell of a jittered grid tiling the
//!   box lon -125..-66, lat 24..50. Corners are jittered, and every shared edge carries
//!   11 perturbed intermediate points computed once per edge (the same coordinates on both
//!   sides), so cells are irregular, ~50 vertices each, and never overlap. One cell in ten
//!   has a hole, one in ten is a MultiPolygon (a hole with an island inside it).
//! - Strong `ETag` and `Last-Modified`; `If-None-Match` (which wins, RFC 9110 §13.2.2) or
//!   `If-Modified-Since` answer 304.
//! - `--latency-ms` of `tokio::time::sleep` before every response.
//! - Update mode: at generation G, `--changed-percent` of the entries (an exact count,
//!   a different deterministic choice per generation) have changed in every generation
//!   1..=G they were chosen in: name, `updated` and the territory (its hole moves, or
//!   appears). A re-crawl from generation G-1 to G sees exactly those entries changed.
//! - `GET /__fixture/stats` (not a CDS document) reports request counters and the time of
//!   the last CDS response, which `perf/bench/scale.sh` uses to bound the commit time.
//!
//! Prints `listen=ADDR` on stdout once listening, the counters on SIGTERM/SIGINT. Only
//! loopback addresses are accepted for `--listen`; every loop is bounded by the entry
//! count, the page size or the generation.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use cds_registry::cds::WELL_KNOWN_PATH;
use cds_testkit::strong_etag;
use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use serde_json::{json, Value};

/// The tiled box: roughly the contiguous United States.
const LON0: f64 = -125.0;
const LON1: f64 = -66.0;
const LAT0: f64 = 24.0;
const LAT1: f64 = 50.0;
/// Segments per cell edge: 4 corners + 4 × 11 intermediate points = 48 distinct vertices.
const SEGMENTS: usize = 12;
/// Corner jitter, as a fraction of the cell size (each axis).
const CORNER_JITTER: f64 = 0.18;
/// Perpendicular perturbation of the edge points, as a fraction of the cell size. With the
/// corner jitter, an edge comes at most 0.18 + 0.18 + 0.06 cell sizes closer to the cell's
/// centre than 0.5, so a hole of radius 0.10 moved by up to 0.06 stays inside.
const EDGE_WIGGLE: f64 = 0.06;
const HOLE_RADIUS: f64 = 0.10;
const HOLE_SHIFT: f64 = 0.06;
const ISLAND_RADIUS: f64 = 0.04;
const COVERAGE_PATH: &str = "/cds/coverage.json";
const TERRITORY_PREFIX: &str = "/cds/territory/";
const STATS_PATH: &str = "/__fixture/stats";
const CREATED: &str = "2023-01-01T00:00:00Z";
/// `updated` of entries never changed (and of the metadata document).
const BASE_UPDATED: &str = "2024-01-15T00:00:00Z";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "scale_fixture",
    about = "Synthetic national CDS aggregator on loopback"
)]
pub struct Params {
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub entries: u64,
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub page_size: u64,
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// A loopback address (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Percentage of the entries changed in each generation after 0.
    #[arg(long, default_value_t = 1.0)]
    pub changed_percent: f64,
    /// 0 = the original data set.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub generation: u32,
    /// Write every territory as one GeoJSON FeatureCollection to this file and exit, for the
    /// benchmarks that load the same polygons elsewhere (`cds-bench compare --counties`,
    /// PostGIS, Shapely). Feature ids are the entry numbers plus one ("1", "2", …).
    #[arg(long)]
    pub dump_features: Option<std::path::PathBuf>,
}

/// splitmix64: a cheap, well-mixed hash of the seed and a few integers.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed_u64, |h, p| mix(h ^ mix(*p)))
}

/// Uniform in [-1, 1).
fn signed_unit(h: u64) -> f64 {
    ((h >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// Coordinates are published with 6 decimals (~0.1 m), like real data sets.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Distinct hash domains.
const H_CORNER_X: u64 = 1;
const H_CORNER_Y: u64 = 2;
const H_EDGE_H: u64 = 3;
const H_EDGE_V: u64 = 4;
const H_KIND: u64 = 5;
const H_CHOICE: u64 = 6;
const H_HOLE: u64 = 7;

type Ring = Vec<[f64; 2]>;

/// The territory of one entry: polygons, each an exterior ring (counter-clockwise)
/// followed by holes (clockwise), as RFC 7946 §3.1.6 recommends.
#[derive(Debug, Clone, PartialEq)]
pub struct Territory {
    pub polygons: Vec<Vec<Ring>>,
}

impl Territory {
    pub fn vertices(&self) -> usize {
        self.polygons.iter().flatten().map(Vec::len).sum()
    }
}

/// The aggregator's data, a pure function of the parameters and the generation.
pub struct Aggregator {
    pub params: Params,
    /// `http://ADDR` of the server, used in the documents' links.
    pub base: String,
    cols: u64,
    rows: u64,
    generation: AtomicU32,
    /// The listing order of the current generation (see [`order`](Self::order)).
    order: Mutex<Option<(u32, Arc<Vec<u64>>)>>,
    pub stats: Stats,
}

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub not_modified: AtomicU64,
    pub not_found: AtomicU64,
    pub bytes: AtomicU64,
    /// Epoch milliseconds of the last 200/304 answer to a CDS document.
    pub last_response_ms: AtomicU64,
}

impl Aggregator {
    pub fn new(params: Params, base: String) -> Aggregator {
        let n = params.entries.max(1);
        // Roughly square cells: cols / rows follows the box's aspect ratio.
        let aspect = (LON1 - LON0) / (LAT1 - LAT0);
        let cols = ((n as f64 * aspect).sqrt().round() as u64).clamp(1, n);
        let rows = n.div_ceil(cols);
        let generation = AtomicU32::new(params.generation);
        Aggregator {
            params,
            base,
            cols,
            rows,
            generation,
            order: Mutex::new(None),
            stats: Stats::default(),
        }
    }

    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Switch to another generation (tests; the CLI fixes it at start).
    pub fn set_generation(&self, g: u32) {
        self.generation.store(g.min(10_000), Ordering::Relaxed);
    }

    pub fn pages(&self) -> u64 {
        self.params.entries.div_ceil(self.params.page_size)
    }

    fn cell_w(&self) -> f64 {
        (LON1 - LON0) / self.cols as f64
    }

    fn cell_h(&self) -> f64 {
        (LAT1 - LAT0) / self.rows as f64
    }

    /// Entries changed in one generation: an exact count.
    pub fn changed_per_generation(&self) -> u64 {
        let n = self.params.entries;
        ((n as f64 * self.params.changed_percent / 100.0).ceil() as u64).min(n)
    }

    /// Whether entry `idx` is among those changed in generation `g` (≥ 1): a
    /// permutation `idx ↦ (idx·K + offset) mod n` with K coprime to n picks exactly
    /// [`changed_per_generation`](Self::changed_per_generation) entries. K near n/φ (the
    /// golden ratio) spreads them evenly over the listing instead of in a few runs.
    fn chosen(&self, idx: u64, g: u32) -> bool {
        let n = self.params.entries as u128;
        let k = self.step();
        let offset = (hash(&[self.params.seed, H_CHOICE, u64::from(g)]) as u128) % n;
        (((idx as u128) * k + offset) % n) < self.changed_per_generation() as u128
    }

    /// The smallest number ≥ n/φ coprime to n (at most n candidates; 1 as the fallback,
    /// which only n = 1 reaches).
    fn step(&self) -> u128 {
        let n = self.params.entries as u128;
        let start = (self.params.entries as f64 / 1.618_033_988_749_895) as u128;
        (start..start + n)
            .find(|k| *k > 0 && gcd(*k, n) == 1)
            .unwrap_or(1)
    }

    /// The last generation (≤ the current one) in which entry `idx` changed; 0 = never.
    pub fn revision(&self, idx: u64) -> u32 {
        let g = self.generation();
        (1..=g).rev().find(|g| self.chosen(idx, *g)).unwrap_or(0)
    }

    /// Corner `(i, j)` of the grid (0..=cols, 0..=rows). Corners on the box's boundary
    /// stay on it.
    fn corner(&self, i: u64, j: u64) -> [f64; 2] {
        let (w, h) = (self.cell_w(), self.cell_h());
        let s = self.params.seed;
        let mut x = LON0 + i as f64 * w;
        let mut y = LAT0 + j as f64 * h;
        if i > 0 && i < self.cols {
            x += signed_unit(hash(&[s, H_CORNER_X, i, j])) * CORNER_JITTER * w;
        }
        if j > 0 && j < self.rows {
            y += signed_unit(hash(&[s, H_CORNER_Y, i, j])) * CORNER_JITTER * h;
        }
        if i == self.cols {
            x = LON1;
        }
        if j == self.rows {
            y = LAT1;
        }
        [round6(x), round6(y)]
    }

    /// The intermediate points of an edge from corner `a` to corner `b`, in that
    /// direction: computed once from the edge's own key, so the two cells sharing it
    /// get the same coordinates. `vertical` edges are perturbed in x, horizontal ones
    /// in y; edges on the box's boundary stay straight.
    fn edge(&self, a: [f64; 2], b: [f64; 2], key: [u64; 3], boundary: bool) -> Ring {
        let vertical = key[0] == H_EDGE_V;
        let amp = EDGE_WIGGLE
            * if vertical {
                self.cell_w()
            } else {
                self.cell_h()
            };
        (1..SEGMENTS)
            .map(|k| {
                let t = k as f64 / SEGMENTS as f64;
                let mut p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
                if !boundary {
                    // sin(πt) tapers the wiggle to nothing at the corners.
                    let d =
                        signed_unit(hash(&[self.params.seed, key[0], key[1], key[2], k as u64]))
                            * amp
                            * (std::f64::consts::PI * t).sin();
                    p[usize::from(vertical)] += d;
                }
                [round6(p[0]), round6(p[1])]
            })
            .collect()
    }

    /// Horizontal edge from corner (i, j) to (i+1, j).
    fn h_edge(&self, i: u64, j: u64) -> Ring {
        let boundary = j == 0 || j == self.rows;
        self.edge(
            self.corner(i, j),
            self.corner(i + 1, j),
            [H_EDGE_H, i, j],
            boundary,
        )
    }

    /// Vertical edge from corner (i, j) to (i, j+1).
    fn v_edge(&self, i: u64, j: u64) -> Ring {
        let boundary = i == 0 || i == self.cols;
        self.edge(
            self.corner(i, j),
            self.corner(i, j + 1),
            [H_EDGE_V, i, j],
            boundary,
        )
    }

    fn cell(&self, idx: u64) -> (u64, u64) {
        (idx % self.cols, idx / self.cols)
    }

    /// The exterior ring of cell `idx`, counter-clockwise, closed.
    fn exterior(&self, idx: u64) -> Ring {
        let (i, j) = self.cell(idx);
        let mut ring = Vec::with_capacity(4 * SEGMENTS + 1);
        ring.push(self.corner(i, j));
        ring.extend(self.h_edge(i, j));
        ring.push(self.corner(i + 1, j));
        ring.extend(self.v_edge(i + 1, j));
        ring.push(self.corner(i + 1, j + 1));
        ring.extend(self.h_edge(i, j + 1).into_iter().rev());
        ring.push(self.corner(i, j + 1));
        ring.extend(self.v_edge(i, j).into_iter().rev());
        ring.push(self.corner(i, j));
        ring
    }

    /// The centre of cell `idx`: the mean of its corners.
    fn centre(&self, idx: u64) -> [f64; 2] {
        let (i, j) = self.cell(idx);
        let c = [
            self.corner(i, j),
            self.corner(i + 1, j),
            self.corner(i + 1, j + 1),
            self.corner(i, j + 1),
        ];
        [
            c.iter().map(|p| p[0]).sum::<f64>() / 4.0,
            c.iter().map(|p| p[1]).sum::<f64>() / 4.0,
        ]
    }

    /// 0 = plain polygon (8 in 10), 1 = polygon with a hole, 2 = MultiPolygon (a hole
    /// with an island in it).
    pub fn kind(&self, idx: u64) -> u8 {
        match hash(&[self.params.seed, H_KIND, idx]) % 10 {
            8 => 1,
            9 => 2,
            _ => 0,
        }
    }

    fn ellipse(&self, c: [f64; 2], r: f64, n: usize, clockwise: bool) -> Ring {
        let (rx, ry) = (r * self.cell_w(), r * self.cell_h());
        let mut ring: Ring = (0..n)
            .map(|k| {
                let a = std::f64::consts::TAU * k as f64 / n as f64;
                let a = if clockwise { -a } else { a };
                [round6(c[0] + rx * a.cos()), round6(c[1] + ry * a.sin())]
            })
            .collect();
        ring.push(ring[0]);
        ring
    }

    /// The territory of entry `idx` in the current generation.
    pub fn territory(&self, idx: u64) -> Territory {
        let kind = self.kind(idx);
        let rev = self.revision(idx);
        let exterior = self.exterior(idx);
        if kind == 0 && rev == 0 {
            return Territory {
                polygons: vec![vec![exterior]],
            };
        }
        // A changed entry's hole moves (or appears): its geometry really differs.
        let c = self.centre(idx);
        let s = self.params.seed;
        let hc = [
            c[0] + signed_unit(hash(&[s, H_HOLE, idx, u64::from(rev), 0]))
                * HOLE_SHIFT
                * self.cell_w(),
            c[1] + signed_unit(hash(&[s, H_HOLE, idx, u64::from(rev), 1]))
                * HOLE_SHIFT
                * self.cell_h(),
        ];
        let hole = self.ellipse(hc, HOLE_RADIUS, 12, true);
        let mut polygons = vec![vec![exterior, hole]];
        if kind == 2 {
            polygons.push(vec![self.ellipse(hc, ISLAND_RADIUS, 8, false)]);
        }
        Territory { polygons }
    }

    /// A point inside entry `idx`'s territory (and outside its hole): 0.2 cell widths
    /// east of the centre, beyond the hole (≤ 0.16) and before the edge (≥ 0.26).
    pub fn interior_point(&self, idx: u64) -> [f64; 2] {
        let c = self.centre(idx);
        [c[0] + 0.2 * self.cell_w(), c[1]]
    }

    pub fn entry_id(idx: u64) -> String {
        format!("sa-{idx:06}")
    }

    pub fn entry_name(&self, idx: u64) -> String {
        match self.revision(idx) {
            0 => format!("Service area {idx}"),
            r => format!("Service area {idx} (revision {r})"),
        }
    }

    /// `updated` of entry `idx`: the base date, or one day per generation after
    /// 2025-01-01 for a changed entry.
    pub fn entry_updated(&self, idx: u64) -> DateTime<Utc> {
        match self.revision(idx) {
            0 => base_updated(),
            r => {
                Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                    .single()
                    .unwrap_or_default()
                    + chrono::Duration::days(i64::from(r))
            }
        }
    }

    pub fn territory_url(&self, idx: u64) -> String {
        format!("{}{TERRITORY_PREFIX}{idx}.geojson", self.base)
    }

    pub fn page_url(&self, page: u64) -> String {
        if page <= 1 {
            format!("{}{COVERAGE_PATH}", self.base)
        } else {
            format!("{}{COVERAGE_PATH}?page={page}", self.base)
        }
    }

    pub fn metadata_json(&self) -> String {
        json!({
            "cds_metadata_version": "v1",
            "cds_metadata_url": format!("{}{WELL_KNOWN_PATH}", self.base),
            "created": CREATED,
            "updated": BASE_UPDATED,
            "name": "National Aggregator (synthetic)",
            "description": format!(
                "A synthetic national aggregator of {} service territories (seed {}).",
                self.params.entries, self.params.seed
            ),
            "website": format!("{}/", self.base),
            "documentation": format!("{}/cds/docs", self.base),
            "support": format!("{}/contact-us", self.base),
            "capabilities": ["coverage"],
            "coverage": self.page_url(1),
        })
        .to_string()
    }

    /// Coverage entry `idx` (WG1-01 §4): electric utilities and water systems alternate.
    pub fn entry_json(&self, idx: u64) -> Value {
        let water = idx % 3 == 2;
        json!({
            "id": Self::entry_id(idx),
            "created": CREATED,
            "updated": rfc3339(self.entry_updated(idx)),
            "entity_name": if water { format!("Water System {idx}") } else { format!("Electric Utility {idx}") },
            "entity_abbreviation": null,
            "country": "US",
            "name": self.entry_name(idx),
            "type": "geographic",
            "role": "authoritative",
            "infrastructure_types": ["distribution_utility"],
            "commodity_types": [if water { "water" } else { "electricity" }],
            "capabilities": [],
            "geojson_resource": self.territory_url(idx),
        })
    }

    /// Entry numbers in listing order: `updated` newest first, as WG1-01 §3 requires
    /// (rule COV-ORDER), so a changed entry moves to the front and the pages after it
    /// shift, as they would on a real server. Computed once per generation: 8 bytes per
    /// entry.
    pub fn order(&self) -> Arc<Vec<u64>> {
        let g = self.generation();
        let mut cached = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cg, order)) = cached.as_ref() {
            if *cg == g {
                return Arc::clone(order);
            }
        }
        let revs: Vec<u32> = (0..self.params.entries).map(|i| self.revision(i)).collect();
        let mut order: Vec<u64> = (0..self.params.entries).collect();
        // Stable: equal `updated` keeps entry-number order.
        order.sort_by_key(|i| std::cmp::Reverse(revs[*i as usize]));
        let order = Arc::new(order);
        *cached = Some((g, Arc::clone(&order)));
        order
    }

    /// Coverage page `page` (1-based), or `None` past the end.
    pub fn page_json(&self, page: u64) -> Option<(String, DateTime<Utc>)> {
        let pages = self.pages();
        if page == 0 || page > pages {
            return None;
        }
        let first = ((page - 1) * self.params.page_size) as usize;
        let last = (first + self.params.page_size as usize).min(self.params.entries as usize);
        let order = self.order();
        let ids = &order[first..last];
        let entries: Vec<Value> = ids.iter().map(|i| self.entry_json(*i)).collect();
        let modified = ids
            .iter()
            .map(|i| self.entry_updated(*i))
            .max()
            .unwrap_or_else(base_updated);
        let doc = json!({
            "coverage_entries": entries,
            "next": if page < pages { json!(self.page_url(page + 1)) } else { Value::Null },
            "previous": if page > 1 { json!(self.page_url(page - 1)) } else { Value::Null },
        });
        Some((doc.to_string(), modified))
    }

    fn feature(&self, idx: u64) -> Value {
        let t = self.territory(idx);
        let geometry = if t.polygons.len() == 1 {
            json!({"type": "Polygon", "coordinates": t.polygons[0]})
        } else {
            json!({"type": "MultiPolygon", "coordinates": t.polygons})
        };
        json!({
            "type": "Feature",
            "properties": {"name": self.entry_name(idx)},
            "geometry": geometry,
        })
    }

    pub fn territory_json(&self, idx: u64) -> Option<(String, DateTime<Utc>)> {
        if idx >= self.params.entries {
            return None;
        }
        Some((self.feature(idx).to_string(), self.entry_updated(idx)))
    }

    /// Every territory as one FeatureCollection, written feature by feature (the whole
    /// document is ~170 MB at 100,000 entries).
    pub fn dump_features(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[")?;
        for idx in 0..self.params.entries {
            let mut f = self.feature(idx);
            f["id"] = Value::String((idx + 1).to_string());
            if idx > 0 {
                out.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut out, &f)?;
        }
        out.write_all(b"]}\n")?;
        out.flush()?;
        Ok(())
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    // Euclid: at most ~90 steps for 64-bit inputs.
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn base_updated() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(BASE_UPDATED)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

fn rfc3339(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn http_date(d: DateTime<Utc>) -> String {
    d.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 9110 §13.1: If-None-Match decides when present; If-Modified-Since otherwise.
fn not_modified(headers: &HeaderMap, etag: &str, modified: DateTime<Utc>) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return inm
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        .is_some_and(|since| modified <= since.with_timezone(&Utc))
}

fn status(s: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = s;
    r
}

fn page_param(query: Option<&str>) -> Option<u64> {
    match query {
        None | Some("") => Some(1),
        Some(q) => q.strip_prefix("page=").and_then(|n| n.parse().ok()),
    }
}

async fn handle(State(agg): State<Arc<Aggregator>>, req: Request) -> Response {
    let path = req.uri().path();
    if path == STATS_PATH {
        let s = &agg.stats;
        let body = json!({
            "requests": s.requests.load(Ordering::Relaxed),
            "ok": s.ok.load(Ordering::Relaxed),
            "not_modified": s.not_modified.load(Ordering::Relaxed),
            "not_found": s.not_found.load(Ordering::Relaxed),
            "bytes": s.bytes.load(Ordering::Relaxed),
            "last_response_ms": s.last_response_ms.load(Ordering::Relaxed),
            "generation": agg.generation(),
        });
        return Response::new(Body::from(body.to_string()));
    }
    agg.stats.requests.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(agg.params.latency_ms)).await;
    let (doc, content_type) = if path == WELL_KNOWN_PATH {
        (
            Some((agg.metadata_json(), base_updated())),
            "application/json",
        )
    } else if path == COVERAGE_PATH {
        (
            page_param(req.uri().query()).and_then(|p| agg.page_json(p)),
            "application/json",
        )
    } else if let Some(n) = path
        .strip_prefix(TERRITORY_PREFIX)
        .and_then(|r| r.strip_suffix(".geojson"))
    {
        (
            n.parse().ok().and_then(|i| agg.territory_json(i)),
            "application/geo+json",
        )
    } else {
        (None, "")
    };
    let Some((body, modified)) = doc else {
        agg.stats.not_found.fetch_add(1, Ordering::Relaxed);
        return status(StatusCode::NOT_FOUND);
    };
    let etag = strong_etag(body.as_bytes());
    let mut resp = if not_modified(req.headers(), &etag, modified) {
        agg.stats.not_modified.fetch_add(1, Ordering::Relaxed);
        status(StatusCode::NOT_MODIFIED)
    } else {
        agg.stats.ok.fetch_add(1, Ordering::Relaxed);
        agg.stats
            .bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    agg.stats
        .last_response_ms
        .fetch_max(now_ms(), Ordering::Relaxed);
    resp
}

/// Serve `agg` on `listener` until `shutdown` completes.
pub async fn serve(
    agg: Arc<Aggregator>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().fallback(handle).with_state(agg);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Bind `params.listen` (loopback only) and describe the aggregator.
pub async fn bind(params: Params) -> anyhow::Result<(Arc<Aggregator>, tokio::net::TcpListener)> {
    anyhow::ensure!(
        params.listen.ip().is_loopback(),
        "--listen must be a loopback address, not {}",
        params.listen
    );
    anyhow::ensure!(
        params.changed_percent.is_finite() && (0.0..=100.0).contains(&params.changed_percent),
        "--changed-percent must be within 0..=100"
    );
    let listener = tokio::net::TcpListener::bind(params.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    Ok((Arc::new(Aggregator::new(params, base)), listener))
}

#[allow(dead_code)] // unused where tests include this file as a module
fn main() -> anyhow::Result<()> {
    let params = Params::parse();
    if let Some(path) = params.dump_features.clone() {
        let agg = Aggregator::new(params, String::new());
        agg.dump_features(&path)?;
        println!("features={} file={}", agg.params.entries, path.display());
        return Ok(());
    }
    tokio::runtime::Runtime::new()?.block_on(async move {
        let (agg, listener) = bind(params).await?;
        println!("listen={}", listener.local_addr()?);
        println!(
            "entries={} pages={} grid={}x{} generation={} changed_per_generation={}",
            agg.params.entries,
            agg.pages(),
            agg.cols,
            agg.rows,
            agg.generation(),
            agg.changed_per_generation()
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        serve(Arc::clone(&agg), listener, async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
        let s = &agg.stats;
        println!(
            "requests={} ok={} not_modified={} not_found={} bytes={}",
            s.requests.load(Ordering::Relaxed),
            s.ok.load(Ordering::Relaxed),
            s.not_modified.load(Ordering::Relaxed),
            s.not_found.load(Ordering::Relaxed),
            s.bytes.load(Ordering::Relaxed)
        );
        Ok(())
    })
}
