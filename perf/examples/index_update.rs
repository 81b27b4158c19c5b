//! Issue 17: the cost of a 1 % change to a large index, updated incrementally
//! (`SearchIndex::update`) against rebuilt whole (`SearchIndex::build`).
//!
//! ```text
//! cargo run --release --example index_update -- [territories=100000] [runs=5] [seed=17]
//! ```
//!
//! Builds, in process, a synthetic national aggregator: `territories` jittered cells of
//! ~48 vertices tiling the contiguous-US box (neighbours share their edges), one entry
//! each, every territory with its own id, all from one server. Then, `runs` times, picks
//! 1 % of the entries at random and changes them (fields and geometry, a new territory
//! id), and times:
//! - `update`: `index.update(drop the changed keys, the changed entries)`;
//! - `update (server re-read)`: what an API replica does when that one server changed: it
//!   reads all of the server's rows again, so every territory arrives as a freshly decoded
//!   copy, and unchanged ones are recognised by id and equal coordinates;
//! - `build`: `SearchIndex::build` of the same entries (the whole-index rebuild).
//!
//! Prints the median of each and checks the updated index against the rebuilt one on
//! 20,000 random points (mismatches must be 0). Then single-point lookup p50/p99 on 100,000
//! random points, in random order and again in space order (what the caches save).
//!
//! Then the federation costs (issue 18): building the published snapshot of the whole
//! index (`publish::Published::of`: every entry rendered and validated once per index
//! snapshot), rendering one listing page of 1,000 entries, and a build of the same index
//! plus 1 % of its entries again as a second registry's copies (which the index must hide).
//! No I/O besides stdout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cds_registry::cds::CoverageEntry;
use cds_registry::index::{EntryRef, Filter, IndexEntry, SearchIndex};
use geo::{LineString, MultiPolygon, Polygon};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const BOX: [f64; 4] = [-125.0, 24.0, -66.0, 50.0];
/// Vertices per cell edge (4 edges, so ~48 per cell).
const PER_EDGE: usize = 12;

/// The tiling: jittered lattice corners and jittered points along every edge, shared by
/// the two cells each edge bounds.
struct Tiling {
    nx: usize,
    ny: usize,
    corners: Vec<[f64; 2]>,
    /// Horizontal edges (i, j)->(i+1, j): PER_EDGE - 1 inner points each.
    h: Vec<Vec<[f64; 2]>>,
    /// Vertical edges (i, j)->(i, j+1).
    v: Vec<Vec<[f64; 2]>>,
}

impl Tiling {
    fn new(n: usize, rng: &mut impl Rng) -> Tiling {
        let aspect = (BOX[2] - BOX[0]) / (BOX[3] - BOX[1]);
        let nx = ((n as f64 * aspect).sqrt().round() as usize).max(1);
        let ny = n.div_ceil(nx);
        let (cw, ch) = ((BOX[2] - BOX[0]) / nx as f64, (BOX[3] - BOX[1]) / ny as f64);
        let mut corners = Vec::with_capacity((nx + 1) * (ny + 1));
        for j in 0..=ny {
            for i in 0..=nx {
                // Border corners stay on the box, inner ones move up to 20 % of a cell.
                let jx = if i == 0 || i == nx {
                    0.0
                } else {
                    rng.random_range(-0.2..0.2)
                };
                let jy = if j == 0 || j == ny {
                    0.0
                } else {
                    rng.random_range(-0.2..0.2)
                };
                corners.push([BOX[0] + (i as f64 + jx) * cw, BOX[1] + (j as f64 + jy) * ch]);
            }
        }
        let c = |i: usize, j: usize| corners[j * (nx + 1) + i];
        let edge = |a: [f64; 2], b: [f64; 2], rng: &mut dyn rand::RngCore| {
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            (1..PER_EDGE)
                .map(|k| {
                    let t = k as f64 / PER_EDGE as f64;
                    // Sideways, at most 8 % of the edge: rings stay simple.
                    let s = rand::Rng::random_range(rng, -0.08..0.08);
                    [a[0] + t * dx - s * dy, a[1] + t * dy + s * dx]
                })
                .collect::<Vec<_>>()
        };
        let mut h = Vec::with_capacity(nx * (ny + 1));
        for j in 0..=ny {
            for i in 0..nx {
                h.push(edge(c(i, j), c(i + 1, j), rng));
            }
        }
        let mut v = Vec::with_capacity((nx + 1) * ny);
        for j in 0..ny {
            for i in 0..=nx {
                v.push(edge(c(i, j), c(i, j + 1), rng));
            }
        }
        Tiling {
            nx,
            ny,
            corners,
            h,
            v,
        }
    }

    /// Cell `(i, j)` as a counter-clockwise polygon.
    fn cell(&self, i: usize, j: usize) -> Polygon<f64> {
        let c = |i: usize, j: usize| self.corners[j * (self.nx + 1) + i];
        let h = |i: usize, j: usize| &self.h[j * self.nx + i];
        let v = |i: usize, j: usize| &self.v[j * (self.nx + 1) + i];
        let mut ring: Vec<[f64; 2]> = Vec::with_capacity(4 * PER_EDGE + 1);
        ring.push(c(i, j));
        ring.extend(h(i, j).iter().copied());
        ring.push(c(i + 1, j));
        ring.extend(v(i + 1, j).iter().copied());
        ring.push(c(i + 1, j + 1));
        ring.extend(h(i, j + 1).iter().rev().copied());
        ring.push(c(i, j + 1));
        ring.extend(v(i, j).iter().rev().copied());
        ring.push(c(i, j));
        Polygon::new(
            LineString::from(ring.into_iter().map(|[x, y]| (x, y)).collect::<Vec<_>>()),
            vec![],
        )
    }
}

fn entry(key: i64, terr_id: i64, poly: Polygon<f64>, name: &str) -> IndexEntry {
    IndexEntry {
        key,
        server_id: 1,
        server_url: "https://aggregator.example/.well-known/cds-server-metadata.json".into(),
        server_name: "Aggregator".into(),
        // A conforming entry (WG1-01 §4), so that the federation part publishes it.
        entry: CoverageEntry {
            id: format!("e{key}"),
            created: Some("2024-01-01T00:00:00Z".into()),
            updated: Some(format!(
                "2024-01-01T{:02}:{:02}:{:02}Z",
                (key / 3600) % 24,
                (key / 60) % 60,
                key % 60
            )),
            entity_name: format!("{name} {key}"),
            name: format!("Service area {key}"),
            country: "US".into(),
            kind: "geographic".into(),
            role: "aggregator".into(),
            infrastructure_types: vec!["distribution_utility".into()],
            commodity_types: vec![if key % 3 == 0 { "water" } else { "electricity" }.into()],
            geojson_resource: Some(format!("https://aggregator.example/t/{key}.json")),
            ..CoverageEntry::default()
        },
        territory_id: Some(terr_id),
        territory: Some(Arc::new(MultiPolygon(vec![poly]))),
        scopes: vec![],
        scope_types: vec![],
        oauth: None,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let n = arg(0, 100_000) as usize;
    let runs = arg(1, 5).max(1) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(arg(2, 17));

    let t = Instant::now();
    let tiling = Tiling::new(n, &mut rng);
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(n);
    for j in 0..tiling.ny {
        for i in 0..tiling.nx {
            let k = (j * tiling.nx + i) as i64;
            if (k as usize) < n {
                entries.push(entry(k, k, tiling.cell(i, j), "Utility"));
            }
        }
    }
    let vertices: usize = entries
        .iter()
        .map(|e| {
            e.territory
                .as_ref()
                .map_or(0, |t| t.0[0].exterior().0.len())
        })
        .sum();
    println!(
        "{} territories, {vertices} vertices, generated in {:.2} s",
        entries.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut index = SearchIndex::build(entries.clone());
    println!("initial build: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    let keys: Vec<i64> = entries.iter().map(|e| e.key).collect();
    let changes = (n / 100).max(1);
    let (mut inc, mut reread, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut next_terr = n as i64;
    let mut mismatches = 0;
    for run in 0..runs {
        // 1 %: new fields, a geometry moved a little, a new territory id.
        let mut changed: Vec<i64> = keys.choose_multiple(&mut rng, changes).copied().collect();
        changed.sort_unstable();
        let shift = rng.random_range(-0.01..0.01);
        let added: Vec<IndexEntry> = changed
            .iter()
            .map(|&k| {
                let (i, j) = (k as usize % tiling.nx, k as usize / tiling.nx);
                let mut p = tiling.cell(i, j);
                p.exterior_mut(|r| {
                    for c in &mut r.0 {
                        c.x += shift;
                    }
                });
                next_terr += 1;
                entry(k, next_terr, p, &format!("Renamed {run}"))
            })
            .collect();
        for a in &added {
            entries[a.key as usize] = a.clone();
        }
        let is_changed = |e: EntryRef<'_>| changed.binary_search(&e.key()).is_ok();

        let t = Instant::now();
        let next = index.update(is_changed, added.clone());
        inc.push(t.elapsed());

        // The replica's view: the whole server re-read, every territory a fresh copy.
        let fresh: Vec<IndexEntry> = entries
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.territory = e.territory.as_ref().map(|t| Arc::new((**t).clone()));
                e
            })
            .collect();
        let t = Instant::now();
        let via_server = index.update(|e| e.server_id() == 1, fresh);
        reread.push(t.elapsed());
        drop(via_server);

        let input = entries.clone();
        let t = Instant::now();
        let rebuilt = SearchIndex::build(input);
        full.push(t.elapsed());

        let none = Filter::default();
        for _ in 0..20_000 / runs {
            let (x, y) = (
                rng.random_range(BOX[0]..BOX[2]),
                rng.random_range(BOX[1]..BOX[3]),
            );
            let a: Vec<i64> = next
                .lookup(x, y, &none)
                .iter()
                .map(|&i| next.key(i))
                .collect();
            let b: Vec<i64> = rebuilt
                .lookup(x, y, &none)
                .iter()
                .map(|&i| rebuilt.key(i))
                .collect();
            mismatches += usize::from(a != b);
        }
        index = next;
    }
    let (inc, reread, full) = (median(inc), median(reread), median(full));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("1 % update = {changes} entries, median of {runs} runs:");
    println!(
        "  update (changed entries):  {:8.1} ms  ({:.1} % of a rebuild)",
        ms(inc),
        100.0 * inc.as_secs_f64() / full.as_secs_f64()
    );
    println!(
        "  update (server re-read):   {:8.1} ms  ({:.1} % of a rebuild)",
        ms(reread),
        100.0 * reread.as_secs_f64() / full.as_secs_f64()
    );
    println!("  full rebuild:              {:8.1} ms", ms(full));
    println!("lookup mismatches, updated vs rebuilt, on 20,000 points: {mismatches}");
    assert_eq!(
        mismatches, 0,
        "the updated index must answer like the rebuilt one"
    );
    lookups(&index, &mut rng);
    federation(&index, &entries, runs);
}

/// In-process lookups on this index (issue 17, item 4): single-point latency p50/p99 on
/// 100,000 uniform random points in the box, and one batch of all of them. Then the same
/// points in space order (rows of 0.01°, west to east), where each lookup finds the grid
/// cell, the part and its ring its neighbour just brought into the caches: what the random
/// order costs beyond that is memory latency, not the lookup's own work.
fn lookups(index: &SearchIndex, rng: &mut rand::rngs::StdRng) {
    let none = Filter::default();
    let mut points: Vec<[f64; 2]> = (0..100_000)
        .map(|_| {
            [
                rng.random_range(BOX[0]..BOX[2]),
                rng.random_range(BOX[1]..BOX[3]),
            ]
        })
        .collect();
    let (p50, p99, hits) = single_lookups(index, &points);
    let t = Instant::now();
    let batch = index.lookup_batch_csr(&points, &none);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(batch.hits.len(), hits, "batch and single lookups agree");
    println!(
        "lookup, 100,000 random points ({hits} hits): p50 {p50:.2} µs, p99 {p99:.2} µs; batch {:.0} points/s",
        points.len() as f64 / secs
    );
    let row = |p: &[f64; 2]| ((p[1] - BOX[1]) * 100.0) as i64;
    points.sort_by(|a, b| row(a).cmp(&row(b)).then(a[0].total_cmp(&b[0])));
    let (p50, p99, sorted_hits) = single_lookups(index, &points);
    assert_eq!(sorted_hits, hits, "the same points, the same hits");
    println!("  the same points in space order: p50 {p50:.2} µs, p99 {p99:.2} µs");
}

/// p50 and p99 in µs of one `lookup` per point, timed one by one, and the hits.
fn single_lookups(index: &SearchIndex, points: &[[f64; 2]]) -> (f64, f64, usize) {
    let none = Filter::default();
    let mut ns: Vec<u64> = Vec::with_capacity(points.len());
    let mut hits = 0usize;
    for &[x, y] in points {
        let t = Instant::now();
        let r = index.lookup(x, y, &none);
        ns.push(t.elapsed().as_nanos() as u64);
        hits += r.len();
    }
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize] as f64 / 1e3;
    (q(0.5), q(0.99), hits)
}

/// What publishing and de-duplicating cost at this size (see the module docs).
fn federation(index: &SearchIndex, entries: &[IndexEntry], runs: usize) {
    use cds_registry::cds::origin::Origin;
    use cds_registry::publish::{PublishConfig, Published};
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let cfg = PublishConfig {
        enabled: true,
        base_url: Some("https://registry.example/".parse().unwrap()),
        ..PublishConfig::default()
    };
    let mut snap = Vec::new();
    let mut page = Vec::new();
    let mut published = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let p = Published::of(index, &cfg, (0, 0));
        snap.push(t.elapsed());
        published = p.len();
        let t = Instant::now();
        let doc = p.page(index, &cfg, None, 1_000, |c| c.text());
        page.push(t.elapsed());
        assert_eq!(doc["coverage_entries"].as_array().unwrap().len(), 1_000);
    }
    println!("publish: {published} entries published");
    println!(
        "  snapshot (render + validate all): {:8.1} ms",
        ms(median(snap))
    );
    println!(
        "  one page of 1,000 entries:        {:8.1} ms",
        ms(median(page))
    );

    // 1 % of the entries again, as a registry's copies: new keys, the same origin.
    let mut with_copies = entries.to_vec();
    let n = entries.len() as i64;
    for e in entries.iter().step_by(100) {
        let mut c = e.clone();
        c.key += n;
        c.server_id = 2;
        c.server_url = "https://registry.example/.well-known/cds-server-metadata.json".into();
        c.entry.origin = Some(Origin {
            server: e.server_url.to_string(),
            id: e.entry.id.clone(),
            role: e.entry.role.clone(),
            capabilities: vec![],
            via: vec![c.server_url.to_string()],
        });
        with_copies.push(c);
    }
    let (mut plain, mut copies) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let input = entries.to_vec();
        let t = Instant::now();
        drop(SearchIndex::build(input));
        plain.push(t.elapsed());
        let input = with_copies.clone();
        let t = Instant::now();
        let idx = SearchIndex::build(input);
        copies.push(t.elapsed());
        let hidden = (0..idx.len()).filter(|&i| idx.is_hidden(i)).count();
        assert_eq!(
            hidden,
            with_copies.len() - entries.len(),
            "every copy hidden"
        );
    }
    println!(
        "build, no copies: {:8.1} ms; with 1 % copies (all hidden): {:8.1} ms",
        ms(median(plain)),
        ms(median(copies))
    );
}
