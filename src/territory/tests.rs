use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::*;
use crate::cds::{Finding, Severity};
use crate::geojson::walk::MAX_LISTED_FINDINGS;

fn rule_set(f: &[Finding]) -> Vec<String> {
    let mut v: Vec<String> = f.iter().map(|f| f.rule.clone()).collect();
    v.sort();
    v.dedup();
    v
}

const SQUARE: &str = "[[[0,0],[0,1],[1,1],[1,0],[0,0]]]";

#[test]
fn every_geojson_object_kind_parses() {
    let sq: Value = serde_json::from_str(SQUARE).unwrap();
    let docs = [
        json!({"type": "Polygon", "coordinates": sq}),
        json!({"type": "MultiPolygon", "coordinates": [sq]}),
        json!({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": sq}}),
        json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": null},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": sq}}]}),
        json!({"type": "GeometryCollection", "geometries": [{"type": "Polygon", "coordinates": sq}]}),
    ];
    for d in docs {
        let (t, f) = parse_territory(&d, "u");
        assert!(f.is_empty(), "{d}: {f:?}");
        let t = t.unwrap();
        assert_eq!(t.bbox, [0.0, 0.0, 1.0, 1.0]);
        assert_eq!(t.vertex_count, 5);
    }
}

#[test]
fn rings_are_oriented_exterior_ccw() {
    use geo::winding_order::Winding;
    let d =
        json!({"type": "Polygon", "coordinates": serde_json::from_str::<Value>(SQUARE).unwrap()});
    let (t, _) = parse_territory(&d, "u");
    assert!(t.unwrap().geometry.0[0].exterior().is_ccw());
}

#[test]
fn projected_coordinates_are_rejected() {
    let d = json!({"type": "Polygon", "coordinates": [[[500000.0, 4100000.0], [500100.0, 4100000.0], [500100.0, 4100100.0], [500000.0, 4100000.0]]]});
    let (t, f) = parse_territory(&d, "u");
    assert!(t.is_none());
    assert_eq!(rule_set(&f), vec!["GEO-CRS"]);
    assert_eq!(f[0].pointer, "/coordinates/0/0");
}

#[test]
fn no_polygon_is_reported() {
    let d = json!({"type": "LineString", "coordinates": [[0, 0], [1, 1]]});
    let (t, f) = parse_territory(&d, "u");
    assert!(t.is_none());
    assert_eq!(rule_set(&f), vec!["GEO-NO-POLYGON"]);
    let (t, f) = parse_territory(&json!([1, 2]), "u");
    assert!(t.is_none());
    assert_eq!(rule_set(&f), vec!["GEO-NO-POLYGON"]);
}

#[test]
fn broken_rings_are_repaired_or_skipped_with_a_warning() {
    // Unclosed exterior: closed, warned, kept.
    let d = json!({"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0]]]});
    let (t, f) = parse_territory(&d, "u");
    assert_eq!(t.unwrap().vertex_count, 5);
    assert_eq!(rule_set(&f), vec!["GEO-INVALID"]);
    // Too few positions: polygon skipped, the other one kept.
    let d = json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 1], [0, 0]]], serde_json::from_str::<Value>(SQUARE).unwrap()]});
    let (t, f) = parse_territory(&d, "u");
    assert_eq!(t.unwrap().geometry.0.len(), 1);
    assert_eq!(rule_set(&f), vec!["GEO-INVALID"]);
    // Bow-tie: self-intersecting, kept, warned.
    let d = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]});
    let (t, f) = parse_territory(&d, "u");
    assert!(t.is_some());
    assert_eq!(rule_set(&f), vec!["GEO-INVALID"]);
}

#[test]
fn wkb_round_trips() {
    let d = json!({"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [0, 4], [4, 4], [4, 0], [0, 0]], [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]],
        [[[10.5, 10.25], [10.5, 11], [11, 11], [10.5, 10.25]]]]});
    let (t, _) = parse_territory(&d, "u");
    let g = t.unwrap().geometry;
    let wkb = to_wkb(&g);
    assert_eq!(wkb.capacity(), wkb.len(), "no slack kept per territory");
    assert_eq!(from_wkb(&wkb).unwrap(), g);
    assert!(from_wkb(&wkb[..wkb.len() - 3]).is_err());
    assert!(from_wkb(&[1, 6, 0, 0, 0, 255, 255, 255, 255]).is_err());
    assert!(from_wkb(&[]).is_err());
}

// ---- Equivalence with the parser this one replaced (see `oracle`) ----

/// A random closed ring: on a 4×4 grid (collinear runs, repeated points, spikes and
/// touching are common there) or with random real coordinates.
fn random_ring(rng: &mut StdRng, grid: bool) -> Vec<Coord<f64>> {
    let n = rng.random_range(2..=9);
    let mut v: Vec<Coord<f64>> = (0..n)
        .map(|_| {
            if grid {
                Coord {
                    x: rng.random_range(0..4) as f64,
                    y: rng.random_range(0..4) as f64,
                }
            } else {
                Coord {
                    x: rng.random_range(-1.0..1.0),
                    y: rng.random_range(-1.0..1.0),
                }
            }
        })
        .collect();
    v.push(v[0]);
    v
}

/// A simple polygon of `n` vertices (sorted angles around the origin), sometimes with
/// two vertices swapped (usually a crossing) or one repeated.
fn star_ring(rng: &mut StdRng, n: usize) -> Vec<Coord<f64>> {
    let mut angles: Vec<f64> = (0..n)
        .map(|_| rng.random_range(0.0..std::f64::consts::TAU))
        .collect();
    angles.sort_by(f64::total_cmp);
    let mut v: Vec<Coord<f64>> = angles
        .iter()
        .map(|a| {
            let r = rng.random_range(0.5..1.0);
            Coord {
                x: r * a.cos(),
                y: r * a.sin(),
            }
        })
        .collect();
    match rng.random_range(0..4) {
        0 => {
            let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
            v.swap(i, j);
        }
        1 => {
            let i = rng.random_range(1..n);
            v[i] = v[rng.random_range(0..i)];
        }
        _ => {}
    }
    v.push(v[0]);
    v
}

fn sweep_says(ring: &[Coord<f64>]) -> bool {
    sweep::ring_self_intersects(ring, &Budget::new(GeoLimits::UNLIMITED)).unwrap()
}

#[test]
fn sweep_decides_like_the_brute_force_rule_on_random_rings() {
    let mut rng = StdRng::seed_from_u64(19);
    let (mut yes, mut no) = (0, 0);
    for k in 0..150_000 {
        let ring = match k % 10 {
            0 => random_ring(&mut rng, false),
            1 => {
                let n = rng.random_range(4..60);
                star_ring(&mut rng, n)
            }
            _ => random_ring(&mut rng, true),
        };
        let old = oracle::ring_self_intersects(&ring);
        assert_eq!(sweep_says(&ring), old, "{ring:?}");
        if old {
            yes += 1
        } else {
            no += 1
        }
    }
    // Both answers are well represented, or the comparison proves little.
    assert!(yes > 20_000 && no > 20_000, "{yes} crossing, {no} simple");
}

#[test]
fn sweep_agrees_on_every_county_ring() {
    let mut rings = 0;
    for c in crate::demo::counties::counties() {
        let (t, _) = parse_territory(&c.geometry, &c.fips);
        for p in &t.unwrap().geometry.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                assert_eq!(sweep_says(&r.0), oracle::ring_self_intersects(&r.0));
                // and with one position moved across the ring: a crossing
                let mut bent = r.0.clone();
                let (i, j) = (bent.len() / 3, 2 * bent.len() / 3);
                bent.swap(i, j);
                assert_eq!(sweep_says(&bent), oracle::ring_self_intersects(&bent));
                rings += 1;
            }
        }
    }
    assert!(rings >= 30);
}

/// Random GeoJSON-ish documents: every object kind, members in random order, rings
/// from the grid with junk, out-of-range numbers, open or short rings mixed in.
fn random_doc(rng: &mut StdRng, depth: usize) -> Value {
    let ring = |rng: &mut StdRng| -> Value {
        match rng.random_range(0..12) {
            0 => json!("ring"),
            1 => json!([[0, 0], [1, "x"], [0, 1], [0, 0]]),
            2 => json!([[0, 0], [500000, 4000000], [1, 1], [0, 0]]),
            3 => json!([[0, 0], [1, 1]]),
            4 => json!([]),
            5 => json!([[0, 0, 7], [0, 1, 7], [1, 1, "alt"], [1, 0], [0, 0]]),
            6 => json!([[[0, 0]], [0, 1], [1, 1], [0, 0]]),
            7 => json!([0, 1]),
            _ => {
                let mut r = random_ring(rng, true);
                if rng.random_bool(0.2) {
                    r.pop(); // open
                }
                Value::Array(r.iter().map(|c| json!([c.x, c.y])).collect())
            }
        }
    };
    let polygon = |rng: &mut StdRng| -> Value {
        match rng.random_range(0..10) {
            0 => json!(null),
            1 => json!([]),
            2 => json!([[1, 2], [3, 4]]),
            _ => Value::Array((0..rng.random_range(1..3)).map(|_| ring(rng)).collect()),
        }
    };
    let kinds = [
        "FeatureCollection",
        "Feature",
        "GeometryCollection",
        "Polygon",
        "MultiPolygon",
        "Point",
    ];
    let kind = if depth > 3 {
        "Polygon"
    } else {
        kinds[rng.random_range(0..kinds.len())]
    };
    let mut members: Vec<(&str, Value)> = vec![("type", json!(kind))];
    match kind {
        "FeatureCollection" => members.push((
            "features",
            Value::Array(
                (0..rng.random_range(0..3))
                    .map(|_| random_doc(rng, depth + 1))
                    .chain(std::iter::once(json!(3)))
                    .collect(),
            ),
        )),
        "Feature" => {
            members.push(("properties", json!({"coordinates": [[9, 9]]})));
            if rng.random_bool(0.8) {
                members.push(("geometry", random_doc(rng, depth + 1)));
            } else {
                members.push(("geometry", json!(null)));
            }
        }
        "GeometryCollection" => members.push((
            "geometries",
            Value::Array(
                (0..rng.random_range(0..3))
                    .map(|_| random_doc(rng, depth + 1))
                    .collect(),
            ),
        )),
        "Polygon" if rng.random_bool(0.9) => members.push(("coordinates", polygon(rng))),
        "MultiPolygon" if rng.random_bool(0.9) => members.push((
            "coordinates",
            Value::Array((0..rng.random_range(0..3)).map(|_| polygon(rng)).collect()),
        )),
        "Point" => members.push(("coordinates", json!([1, 2]))),
        _ => {}
    }
    if rng.random_bool(0.1) {
        members.push(("type", json!(7))); // a repeated member replaces the first
    }
    if rng.random_bool(0.5) {
        members.reverse(); // sorted keys put `coordinates` before `type`
    }
    let mut m = serde_json::Map::new();
    for (k, v) in members {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

#[test]
fn documents_read_like_the_value_parser_did() {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut with_territory, mut with_findings) = (0, 0);
    for _ in 0..20_000 {
        let doc = random_doc(&mut rng, 0);
        let old = oracle::parse_territory(&doc, "u");
        assert_eq!(parse_territory(&doc, "u"), old, "{doc}");
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_eq!(
            parse_document(&bytes, "u", GeoLimits::UNLIMITED),
            old,
            "{doc}"
        );
        with_territory += old.0.is_some() as usize;
        with_findings += !old.1.is_empty() as usize;
    }
    assert!(with_territory > 2_000 && with_findings > 2_000);
}

#[test]
fn deep_nesting_reads_like_the_value_parser_did() {
    let mut d =
        json!({"type": "Polygon", "coordinates": serde_json::from_str::<Value>(SQUARE).unwrap()});
    for _ in 0..20 {
        d = json!({"type": "FeatureCollection", "features": [1, null, {"type": "Feature", "geometry": d}]});
    }
    let bytes = serde_json::to_vec(&d).unwrap();
    let old = oracle::parse_territory(&d, "u");
    assert!(old.0.is_none());
    assert_eq!(parse_document(&bytes, "u", GeoLimits::UNLIMITED), old);
}

// ---- Limits ----

/// A valid ring of `n` positions (a regular polygon) as GeoJSON text.
fn circle_geojson(n: usize) -> String {
    let mut s = String::from(r#"{"type":"Polygon","coordinates":[["#);
    for i in 0..=n {
        let a = (i % n) as f64 / n as f64 * std::f64::consts::TAU;
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("[{:.7},{:.7}]", 10.0 * a.cos(), 10.0 * a.sin()));
    }
    s.push_str("]]}");
    s
}

#[test]
fn too_many_positions_stop_the_read() {
    let doc = circle_geojson(1000);
    let limits = GeoLimits {
        max_vertices: 500,
        ..GeoLimits::UNLIMITED
    };
    let (t, f) = parse_document(doc.as_bytes(), "u", limits);
    assert!(t.is_none());
    assert_eq!(rule_set(&f), vec!["GEO-TOO-LARGE"]);
    assert_eq!(f[0].severity, Severity::Error);
    // At the limit it is fine.
    let limits = GeoLimits {
        max_vertices: 1003, // 1001 positions, the array of rings, the object
        ..GeoLimits::UNLIMITED
    };
    let (t, f) = parse_document(doc.as_bytes(), "u", limits);
    assert_eq!(t.unwrap().vertex_count, 1001);
    assert!(f.is_empty(), "{f:?}");
    // Arrays of nothing count too: no free lunch for `[[],[],[],...]`.
    let empties = format!("[{}]", vec!["[]"; 2000].join(","));
    let (t, f) = parse_document(empties.as_bytes(), "u", limits);
    assert!(t.is_none());
    assert_eq!(rule_set(&f), vec!["GEO-TOO-LARGE"]);
    // A limit is never retried leniently (and trailing commas still work below it).
    let lenient = doc.replace("]]}", "],]}");
    let (_, f) = parse_document(
        lenient.as_bytes(),
        "u",
        GeoLimits {
            max_vertices: 500,
            ..GeoLimits::UNLIMITED
        },
    );
    assert_eq!(rule_set(&f), vec!["GEO-TOO-LARGE"]);
    let (t, f) = parse_document(lenient.as_bytes(), "u", GeoLimits::UNLIMITED);
    assert!(t.is_some());
    assert_eq!(rule_set(&f), vec!["JSON-LENIENT"]);
}

#[test]
fn a_passed_deadline_stops_reading_and_validation() {
    let doc = circle_geojson(20_000);
    let limits = GeoLimits {
        deadline: Some(Instant::now()),
        budget_ms: 0,
        ..GeoLimits::UNLIMITED
    };
    let (t, f) = parse_document(doc.as_bytes(), "u", limits);
    assert!(t.is_none());
    assert_eq!(rule_set(&f), vec!["GEO-TOO-COSTLY"]);
    // The sweep alone checks it too.
    let ring: Vec<Coord<f64>> = (0..=20_000)
        .map(|i| {
            let a = (i % 20_000) as f64 / 20_000.0 * std::f64::consts::TAU;
            Coord {
                x: a.cos(),
                y: a.sin(),
            }
        })
        .collect();
    assert_eq!(
        sweep::ring_self_intersects(&ring, &Budget::new(limits)),
        Err(Abort::TooCostly)
    );
    assert!(!sweep_says(&ring));
}

#[test]
fn findings_per_document_are_capped() {
    let polys: Vec<Value> = (0..500).map(|_| json!("no rings")).collect();
    let mut polys = polys;
    polys.push(serde_json::from_str(SQUARE).unwrap());
    let d = json!({"type": "MultiPolygon", "coordinates": polys});
    let (t, f) = parse_territory(&d, "u");
    assert!(t.is_some());
    assert_eq!(f.len(), MAX_LISTED_FINDINGS + 1);
    assert!(
        f.last().unwrap().message.starts_with("400 more"),
        "{:?}",
        f.last()
    );
}
