use std::sync::Arc;

use geo::{coord, Geometry, LineString, MultiPolygon, Point, Polygon};

use super::*;

/// An axis-aligned rectangle, exterior counter-clockwise.
fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
    Polygon::new(
        LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]),
        vec![],
    )
}

fn terr(polys: Vec<Polygon<f64>>) -> Option<Arc<MultiPolygon<f64>>> {
    Some(Arc::new(MultiPolygon(polys)))
}

/// An entry of server 1 with a few fields set, changed by `f` (also used by `live`'s
/// tests).
pub(super) fn entry(key: i64, f: impl FnOnce(&mut IndexEntry)) -> IndexEntry {
    let mut e = IndexEntry {
        key,
        server_id: 1,
        server_url: "https://example.com/.well-known/cds-server-metadata.json".into(),
        server_name: "Example".into(),
        entry: CoverageEntry {
            id: format!("e{key}"),
            entity_name: format!("Entity {key}"),
            country: "US".into(),
            name: format!("Entry {key}"),
            kind: "service_territory".into(),
            role: "official".into(),
            ..CoverageEntry::default()
        },
        territory_id: None,
        territory: None,
        scopes: vec![],
        scope_types: vec![],
        oauth: None,
    };
    f(&mut e);
    e
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A filter with one field set.
fn by(set: impl FnOnce(&mut Filter)) -> Filter {
    let mut f = Filter::default();
    set(&mut f);
    f
}

/// Facet counts as the index reports them.
fn counts(v: &[(&str, usize)]) -> Vec<FacetCount> {
    v.iter()
        .map(|&(s, n)| FacetCount {
            value: s.to_owned(),
            count: n,
        })
        .collect()
}

fn keys(idx: &SearchIndex, positions: &[usize]) -> Vec<i64> {
    positions.iter().map(|&i| idx.key(i)).collect()
}

/// A small catalogue exercising every field.
fn sample() -> SearchIndex {
    SearchIndex::build(vec![
        entry(30, |e| {
            e.entry.country = "ca".into();
            e.entry.entity_name = "Hydro-Québec".into();
            e.entry.entity_abbreviation = Some("HQ".into());
            e.entry.name = "Réseau de Montréal".into();
            e.entry.commodity_types = strs(&["electricity"]);
            e.entry.capabilities = strs(&["coverage", "oauth"]);
            e.entry.infrastructure_types = strs(&["distribution", "transmission"]);
            e.entry.role = "Authoritative".into();
            e.scopes = strs(&["customer_data"]);
        }),
        entry(10, |e| {
            e.entry.entity_name = "Pacific Gas and Electric".into();
            e.entry.entity_abbreviation = Some("PG&E".into());
            e.entry.commodity_types = strs(&["electricity", "natural_gas", "electricity"]);
            e.entry.capabilities = strs(&["coverage"]);
            e.entry.infrastructure_types = strs(&["distribution"]);
            e.scopes = strs(&["customer_data", "Bill_Read"]);
        }),
        entry(20, |e| {
            e.entry.entity_name = "Acme Water".into();
            e.entry.commodity_types = strs(&["x-hydrogen"]);
            e.entry.kind = "planned".into();
            e.entry.role = "aggregator".into();
        }),
        entry(40, |e| {
            e.entry.country = "US ".into();
            e.entry.entity_name = "  pacific gas AND   electric".into();
            e.entry.commodity_types = strs(&["natural_gas"]);
            e.entry.role = "partner".into();
        }),
    ])
}

#[test]
fn entries_are_ordered_by_key() {
    let idx = sample();
    assert_eq!(idx.len(), 4);
    assert_eq!(
        keys(&idx, &idx.search(&Filter::default())),
        vec![10, 20, 30, 40]
    );
    assert_eq!(idx.position(30), Some(2));
    assert_eq!(idx.position(31), None);
}

#[test]
fn every_enum_filter_is_case_insensitive() {
    let idx = sample();
    let k = |f: Filter| keys(&idx, &idx.search(&f));
    assert_eq!(k(by(|f| f.country = strs(&["CA"]))), vec![30]);
    assert_eq!(k(by(|f| f.country = strs(&["us"]))), vec![10, 20, 40]);
    assert_eq!(
        k(by(|f| f.commodity = strs(&["Natural_Gas"]))),
        vec![10, 40]
    );
    assert_eq!(k(by(|f| f.capability = strs(&["OAUTH"]))), vec![30]);
    assert_eq!(
        k(by(|f| f.infrastructure = strs(&["distribution"]))),
        vec![10, 30]
    );
    assert_eq!(k(by(|f| f.role = strs(&["authoritative"]))), vec![30]);
    assert_eq!(k(by(|f| f.kind = strs(&["PLANNED"]))), vec![20]);
    assert_eq!(k(by(|f| f.scope = strs(&["bill_read"]))), vec![10]);
    // Extension values are searchable like the spec's own.
    assert_eq!(k(by(|f| f.commodity = strs(&["X-Hydrogen"]))), vec![20]);
    assert_eq!(k(by(|f| f.role = strs(&["partner"]))), vec![40]);
}

#[test]
fn or_within_a_filter_and_across_filters() {
    let idx = sample();
    let k = |f: Filter| keys(&idx, &idx.search(&f));
    assert_eq!(
        k(by(|f| f.commodity = strs(&["x-hydrogen", "natural_gas"]))),
        vec![10, 20, 40]
    );
    assert_eq!(
        k(Filter {
            commodity: strs(&["electricity", "natural_gas"]),
            country: strs(&["us"]),
            ..Default::default()
        }),
        vec![10, 40]
    );
    assert_eq!(
        k(Filter {
            commodity: strs(&["electricity", "natural_gas"]),
            country: strs(&["us"]),
            role: strs(&["partner", "aggregator"]),
            ..Default::default()
        }),
        vec![40]
    );
    // An unknown value matches nothing, even beside a known one in another field.
    assert!(k(by(|f| f.commodity = strs(&["steam"]))).is_empty());
    assert_eq!(
        k(by(|f| f.commodity = strs(&["steam", "x-hydrogen"]))),
        vec![20]
    );
    // Blank values do not filter.
    assert_eq!(k(by(|f| f.country = strs(&["", " "]))).len(), 4);
}

#[test]
fn q_is_case_and_accent_insensitive() {
    let idx = sample();
    let k = |q: &str| keys(&idx, &idx.search(&by(|f| f.q = Some(q.into()))));
    assert_eq!(k("montreal"), vec![30]); // entry name
    assert_eq!(k("QUEBEC"), vec![30]); // entity name
    assert_eq!(k("hq"), vec![30]); // abbreviation
    assert_eq!(k("hydro québ"), vec![30]); // tokens, prefixes
    assert_eq!(k("hydro-quebec"), vec![30]);
    assert_eq!(k("pg&e"), vec![10]);
    assert_eq!(k("gas electric"), vec![10, 40]);
    assert!(k("gas water").is_empty());
    assert_eq!(k("   ").len(), 4);
    // Tokens do not span two names.
    assert!(k("quebec hq hydro montreal x").is_empty());
    assert_eq!(
        keys(
            &idx,
            &idx.search(&Filter {
                q: Some("electric".into()),
                role: strs(&["official"]),
                ..Default::default()
            })
        ),
        vec![10]
    );
}

#[test]
fn facets_count_each_entry_once_per_value() {
    let idx = sample();
    let f = idx.facets(&Filter::default());
    assert_eq!(f.country, counts(&[("CA", 1), ("US", 3)]));
    assert_eq!(
        f.commodity,
        counts(&[("electricity", 2), ("natural_gas", 2), ("x-hydrogen", 1)])
    );
    assert_eq!(
        f.role,
        counts(&[
            ("aggregator", 1),
            ("authoritative", 1),
            ("official", 1),
            ("partner", 1)
        ])
    );
    assert_eq!(f.kind, counts(&[("planned", 1), ("service_territory", 3)]));
    assert_eq!(f.scope, counts(&[("bill_read", 1), ("customer_data", 2)]));
    assert_eq!(f.capability, counts(&[("coverage", 2), ("oauth", 1)]));
    assert_eq!(
        f.infrastructure,
        counts(&[("distribution", 2), ("transmission", 1)])
    );

    let f = idx.facets(&by(|f| f.country = strs(&["us"])));
    assert_eq!(f.country, counts(&[("US", 3)]));
    assert_eq!(
        f.commodity,
        counts(&[("electricity", 1), ("natural_gas", 2), ("x-hydrogen", 1)])
    );
    assert!(f.capability.iter().all(|c| c.value != "oauth"));
    assert_eq!(
        idx.facets(&by(|f| f.commodity = strs(&["nope"]))),
        Facets::default()
    );
}

#[test]
fn entities_group_by_country_and_folded_name() {
    let idx = SearchIndex::build(vec![
        entry(1, |e| e.entry.entity_name = "Hydro-Québec".into()),
        entry(2, |e| e.entry.entity_name = "  HYDRO-QUEBEC ".into()),
        entry(3, |e| {
            e.entry.entity_name = "Hydro-Québec".into();
            e.entry.country = "ca".into();
        }),
        entry(4, |e| e.entry.entity_name = "Acme  Power".into()),
        entry(5, |e| {
            e.entry.entity_name = "acme power".into();
            e.entry.role = "aggregator".into();
        }),
    ]);
    let g = idx.entities(&Filter::default());
    let summary: Vec<(&str, &str, Vec<i64>)> = g
        .iter()
        .map(|g| {
            (
                g.name_key.as_str(),
                g.country.as_str(),
                keys(&idx, &g.entries),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("acme power", "US", vec![4, 5]),
            ("hydro-quebec", "CA", vec![3]),
            ("hydro-quebec", "US", vec![1, 2])
        ]
    );
    assert_eq!(g[0].entity_name, "Acme  Power");
    let g = idx.entities(&by(|f| f.role = strs(&["aggregator"])));
    assert_eq!(g.len(), 1);
    assert_eq!(keys(&idx, &g[0].entries), vec![5]);
}

/// Nested territories: a state, a county inside it, a city inside the county, plus a
/// logical entry without territory.
fn nested() -> SearchIndex {
    let state = terr(vec![rect(0.0, 0.0, 10.0, 10.0)]);
    let county = terr(vec![rect(2.0, 2.0, 6.0, 6.0)]);
    let city = terr(vec![rect(3.0, 3.0, 4.0, 4.0)]);
    let none = None;
    let rows = [
        (1, "aggregator", &city),
        (2, "official", &state),
        (3, "official", &county),
        (4, "authoritative", &state),
        (5, "partner", &city),
        (6, "official", &county),
        (7, "authoritative", &none),
    ];
    SearchIndex::build(
        rows.into_iter()
            .map(|(key, role, t)| {
                entry(key, |e| {
                    e.entry.role = role.into();
                    e.territory = t.clone();
                })
            })
            .collect(),
    )
}

#[test]
fn lookup_ranks_role_then_area_then_key() {
    let idx = nested();
    // Inside all three: authoritative state, official county (key 3 before 6), official
    // state, aggregator city, other-role city.
    assert_eq!(
        keys(&idx, &idx.lookup(3.5, 3.5, &Filter::default())),
        vec![4, 3, 6, 2, 1, 5]
    );
    assert_eq!(
        keys(&idx, &idx.lookup(5.0, 5.0, &Filter::default())),
        vec![4, 3, 6, 2]
    );
    assert_eq!(
        keys(&idx, &idx.lookup(9.0, 9.0, &Filter::default())),
        vec![4, 2]
    );
    assert!(idx.lookup(11.0, 5.0, &Filter::default()).is_empty());
    assert!(idx.lookup(f64::NAN, 5.0, &Filter::default()).is_empty());
    let off = by(|f| f.role = strs(&["official", "partner"]));
    assert_eq!(keys(&idx, &idx.lookup(3.5, 3.5, &off)), vec![3, 6, 2, 5]);
    assert!(
        idx.territory_area(idx.position(3).unwrap()).unwrap()
            < idx.territory_area(idx.position(2).unwrap()).unwrap()
    );
}

#[test]
fn lookup_batch_agrees_with_lookup() {
    let idx = nested();
    let pts = [
        [3.5, 3.5],
        [5.0, 5.0],
        [9.0, 9.0],
        [11.0, 5.0],
        [f64::INFINITY, 1.0],
        [3.9, 3.1],
    ];
    for filter in [
        Filter::default(),
        by(|f| f.role = strs(&["official", "partner"])),
        by(|f| f.role = strs(&["unknown"])),
        by(|f| f.point = Some((5.5, 5.5))),
        Filter {
            bbox: Some([3.5, 3.5, 3.6, 3.6]),
            role: strs(&["partner"]),
            ..Default::default()
        },
    ] {
        let batch = idx.lookup_batch(&pts, &filter);
        let csr = idx.lookup_batch_csr(&pts, &filter);
        assert_eq!(batch.len(), pts.len());
        assert_eq!(csr.len(), pts.len());
        for (i, p) in pts.iter().enumerate() {
            let single = idx.lookup(p[0], p[1], &filter);
            assert_eq!(batch[i], single, "{filter:?} at {p:?}");
            assert_eq!(
                csr.get(i).iter().map(|&h| h as usize).collect::<Vec<_>>(),
                single
            );
        }
    }
    assert!(idx.lookup_batch(&[], &Filter::default()).is_empty());
}

#[test]
fn point_and_bbox_filters_never_match_logical_entries() {
    let idx = nested();
    let k = |f: Filter| keys(&idx, &idx.search(&f));
    assert_eq!(
        k(by(|f| f.point = Some((3.5, 3.5)))),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(k(by(|f| f.point = Some((8.0, 8.0)))), vec![2, 4]);
    assert_eq!(
        k(Filter {
            point: Some((8.0, 8.0)),
            role: strs(&["official"]),
            ..Default::default()
        }),
        vec![2]
    );
    assert_eq!(k(by(|f| f.bbox = Some([7.0, 7.0, 20.0, 20.0]))), vec![2, 4]);
    assert_eq!(
        k(by(|f| f.bbox = Some([3.2, 3.2, 3.3, 3.3]))),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        k(Filter {
            bbox: Some([5.0, 5.0, 7.0, 7.0]),
            role: strs(&["official"]),
            ..Default::default()
        }),
        vec![2, 3, 6]
    );
    assert!(k(by(|f| f.bbox = Some([20.0, 20.0, 30.0, 30.0]))).is_empty());
    // min_lat > max_lat, NaN: nothing.
    assert!(k(by(|f| f.bbox = Some([0.0, 5.0, 10.0, 4.0]))).is_empty());
    assert!(k(by(|f| f.bbox = Some([0.0, f64::NAN, 10.0, 4.0]))).is_empty());
    // A box across the antimeridian: lon 170..180 and -180..1.
    assert_eq!(k(by(|f| f.bbox = Some([170.0, 0.0, 1.0, 1.0]))), vec![2, 4]);
    assert!(k(by(|f| f.bbox = Some([170.0, 0.0, -1.0, 1.0]))).is_empty());
    // The logical entry still matches non-spatial filters.
    assert_eq!(k(by(|f| f.role = strs(&["authoritative"]))), vec![4, 7]);
}

#[test]
fn holes_and_boundaries() {
    let ring = |v: &[(f64, f64)]| LineString::from(v.to_vec());
    let donut = Polygon::new(
        ring(&[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)]),
        vec![ring(&[
            (1.0, 1.0),
            (1.0, 3.0),
            (3.0, 3.0),
            (3.0, 1.0),
            (1.0, 1.0),
        ])],
    );
    // Wound the wrong way on purpose: the index orients its own copy.
    let mut reversed = donut.clone();
    reversed.exterior_mut(|r| r.0.reverse());
    reversed.interiors_mut(|rs| rs.iter_mut().for_each(|r| r.0.reverse()));
    let idx = SearchIndex::build(vec![
        entry(1, |e| e.territory = terr(vec![donut])),
        entry(2, |e| e.territory = terr(vec![reversed])),
        // An island in the hole, as its own part.
        entry(3, |e| {
            e.territory = terr(vec![rect(10.0, 10.0, 11.0, 11.0), rect(1.5, 1.5, 2.5, 2.5)])
        }),
    ]);
    let at = |x, y| keys(&idx, &idx.search(&by(|f| f.point = Some((x, y)))));
    assert_eq!(at(0.5, 0.5), vec![1, 2]);
    assert!(at(1.2, 1.2).is_empty());
    assert_eq!(at(2.0, 2.0), vec![3]);
    // On the outer boundary: not strictly inside.
    assert!(at(0.0, 2.0).is_empty());
}

#[test]
fn antimeridian_parts_do_not_span_the_globe() {
    // Two islands: lon 179..180 and -180..-179, like Aleutians West.
    let east = rect(179.0, 51.0, 180.0, 52.0);
    let west = rect(-180.0, 51.0, -179.0, 52.0);
    let idx = SearchIndex::build(vec![
        entry(1, |e| e.territory = terr(vec![east, west])),
        entry(2, |e| e.territory = terr(vec![rect(-1.0, 50.0, 1.0, 53.0)])),
    ]);
    let none = Filter::default();
    assert_eq!(keys(&idx, &idx.lookup(179.5, 51.5, &none)), vec![1]);
    assert_eq!(keys(&idx, &idx.lookup(-179.5, 51.5, &none)), vec![1]);
    assert_eq!(keys(&idx, &idx.lookup(0.0, 51.5, &none)), vec![2]);
    assert!(idx.lookup(100.0, 51.5, &none).is_empty());
    let batch = idx.lookup_batch(&[[179.5, 51.5], [0.0, 51.5], [-179.5, 51.5]], &none);
    assert_eq!(batch, vec![vec![0], vec![1], vec![0]]);
    // No part box reaches lon 0 either.
    let near0 = by(|f| f.bbox = Some([-2.0, 50.0, 2.0, 53.0]));
    assert_eq!(keys(&idx, &idx.search(&near0)), vec![2]);
}

#[test]
fn intersecting_geometries_are_ranked() {
    let idx = nested();
    let f = Filter::default();
    let line = Geometry::LineString(LineString::from(vec![(3.5, 3.5), (8.0, 3.5)]));
    assert_eq!(
        keys(&idx, &idx.intersecting(&line, &f)),
        vec![4, 3, 6, 2, 1, 5]
    );
    let far = Geometry::Point(Point::new(9.0, 9.0));
    assert_eq!(keys(&idx, &idx.intersecting(&far, &f)), vec![4, 2]);
    let poly = Geometry::Polygon(rect(5.5, 5.5, 20.0, 20.0));
    assert_eq!(keys(&idx, &idx.intersecting(&poly, &f)), vec![4, 3, 6, 2]);
    let parts = Geometry::MultiPolygon(MultiPolygon(vec![
        rect(-20.0, -20.0, -19.0, -19.0),
        rect(3.2, 3.2, 3.3, 3.3),
    ]));
    let off = by(|f| f.role = strs(&["aggregator"]));
    assert_eq!(keys(&idx, &idx.intersecting(&parts, &off)), vec![1]);
    assert!(idx
        .intersecting(&Geometry::Point(Point::from(coord! {x: 50.0, y: 50.0})), &f)
        .is_empty());
}

#[test]
fn territories_are_shared_and_found_by_key() {
    let t = terr(vec![rect(0.0, 0.0, 1.0, 1.0)]);
    let copy = terr(vec![rect(0.0, 0.0, 1.0, 1.0)]);
    let idx = SearchIndex::build(vec![
        entry(5, |e| {
            e.territory = t.clone();
            e.territory_id = Some(9);
        }),
        entry(6, |e| {
            e.territory = copy.clone();
            e.territory_id = Some(9);
        }),
        entry(7, |e| e.territory = t.clone()),
        entry(8, |_| {}),
    ]);
    assert_eq!(idx.spatial.terrs.len(), 2);
    assert!(Arc::ptr_eq(
        idx.territory_of(7).unwrap(),
        t.as_ref().unwrap()
    ));
    assert!(idx.territory_of(8).is_none());
    assert!(idx.territory_of(99).is_none());
    assert_eq!(
        keys(&idx, &idx.lookup(0.5, 0.5, &Filter::default())),
        vec![5, 6, 7]
    );
}

/// `search` (posting lists, R-tree) must agree with checking every entry one by one.
#[test]
fn search_agrees_with_a_brute_force_scan() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let pick = |rng: &mut rand::rngs::StdRng, from: &[&str], max: usize| -> Vec<String> {
        let n = rng.random_range(0..=max);
        (0..n)
            .map(|_| from[rng.random_range(0..from.len())].to_string())
            .collect()
    };
    let countries = ["US", "ca", "DE", "fr"];
    let commodities = ["electricity", "natural_gas", "water", "X-Steam"];
    let roles = ["authoritative", "official", "aggregator", "other"];
    let names = [
        "Hydro-Québec",
        "Montréal Énergie",
        "Acme",
        "Stadtwerke Münster",
        "Ørsted",
    ];
    let entries: Vec<IndexEntry> = (0..300)
        .map(|k| {
            let x: f64 = rng.random_range(0.0..20.0);
            let y: f64 = rng.random_range(0.0..20.0);
            let w: f64 = rng.random_range(0.5..5.0);
            let has_terr = rng.random_bool(0.8);
            IndexEntry {
                key: 1000 - k,
                server_id: 1,
                server_url: "".into(),
                server_name: "".into(),
                entry: CoverageEntry {
                    country: pick(&mut rng, &countries, 1).pop().unwrap_or_default(),
                    commodity_types: pick(&mut rng, &commodities, 3),
                    capabilities: pick(&mut rng, &["coverage", "oauth"], 2),
                    role: pick(&mut rng, &roles, 1).pop().unwrap_or_default(),
                    entity_name: pick(&mut rng, &names, 1).pop().unwrap_or_default(),
                    ..CoverageEntry::default()
                },
                territory_id: None,
                territory: has_terr.then(|| Arc::new(MultiPolygon(vec![rect(x, y, x + w, y + w)]))),
                scopes: pick(&mut rng, &["a", "b"], 2),
                scope_types: pick(&mut rng, &["t_a", "b"], 1),
                oauth: None,
            }
        })
        .collect();
    let idx = SearchIndex::build(entries);
    let mut non_empty = 0;
    for round in 0..400 {
        let f = Filter {
            country: pick(&mut rng, &["us", "CA", "de", "xx"], 2),
            commodity: pick(&mut rng, &commodities, 2),
            capability: pick(&mut rng, &["coverage", "OAuth"], 1),
            role: pick(&mut rng, &roles, 2),
            scope: pick(&mut rng, &["A", "b", "T_a"], 1),
            q: rng
                .random_bool(0.3)
                .then(|| pick(&mut rng, &["montreal", "hydro", "MUN", "e"], 1).concat()),
            point: rng
                .random_bool(0.3)
                .then(|| (rng.random_range(0.0..25.0), rng.random_range(0.0..25.0))),
            bbox: rng.random_bool(0.3).then(|| {
                let (x, y) = (rng.random_range(0.0..25.0), rng.random_range(0.0..25.0));
                [x, y, x + 2.0, y + 2.0]
            }),
            ..Default::default()
        };
        let q = idx.compile(&f);
        let brute: Vec<usize> = (0..idx.len()).filter(|&i| idx.matches(i, &q)).collect();
        assert_eq!(idx.search(&f), brute, "round {round}: {f:?}");
        non_empty += usize::from(!brute.is_empty());
        if let Some((x, y)) = f.point {
            let mut l = idx.lookup(x, y, &f);
            l.sort_unstable();
            assert_eq!(l, brute, "lookup round {round}: {f:?}");
        }
        let facets = idx.facets(&f);
        let total: usize = facets.role.iter().map(|c| c.count).sum();
        assert_eq!(
            total,
            brute
                .iter()
                .filter(|&&i| !idx.entry(i).to_entry().entry.role.is_empty())
                .count()
        );
    }
    // The filters are not so strict that every round compares two empty lists.
    assert!(non_empty > 100, "only {non_empty} rounds matched anything");
}

/// A star-shaped (hence simple) polygon with `n` vertices around `(cx, cy)`, optionally
/// with a square hole around the centre.
fn star(
    rng: &mut rand::rngs::StdRng,
    cx: f64,
    cy: f64,
    r: f64,
    n: usize,
    hole: bool,
) -> Polygon<f64> {
    use rand::Rng;
    let mut pts: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            let rr = r * rng.random_range(0.4..1.0);
            (cx + rr * a.cos(), cy + rr * a.sin())
        })
        .collect();
    pts.push(pts[0]);
    let holes = if hole {
        let h = r * 0.2;
        vec![LineString::from(vec![
            (cx - h, cy - h),
            (cx - h, cy + h),
            (cx + h, cy + h),
            (cx + h, cy - h),
            (cx - h, cy - h),
        ])]
    } else {
        vec![]
    };
    Polygon::new(LineString::from(pts), holes)
}

/// The grid shortcut (sub-cells known to be inside, whole-cell lists) must give exactly
/// what an exact point-in-polygon test on every territory gives, on boundaries too.
#[test]
fn lookup_agrees_with_exact_point_in_polygon() {
    use geo::orient::{Direction, Orient};
    use geo::Contains;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut terrs: Vec<MultiPolygon<f64>> = Vec::new();
    // Many small territories, some with holes or two parts.
    for _ in 0..400 {
        let (cx, cy) = (rng.random_range(-20.0..20.0), rng.random_range(-10.0..10.0));
        let r = rng.random_range(0.05..1.5);
        let n = rng.random_range(3..60);
        let hole = rng.random_bool(0.2);
        let mut parts = vec![star(&mut rng, cx, cy, r, n, hole)];
        if rng.random_bool(0.1) {
            parts.push(star(&mut rng, cx + 3.0, cy - 2.0, r / 2.0, 8, false));
        }
        terrs.push(MultiPolygon(parts));
    }
    // A few territories much larger than the grid cells, and one across the antimeridian.
    terrs.push(MultiPolygon(vec![star(
        &mut rng, 0.0, 0.0, 15.0, 200, true,
    )]));
    terrs.push(MultiPolygon(vec![rect(-25.0, -12.0, 25.0, 12.0)]));
    let triangle = LineString::from(vec![
        (-24.0, -11.0),
        (24.0, -9.0),
        (-2.0, 11.5),
        (-24.0, -11.0),
    ]);
    terrs.push(MultiPolygon(vec![Polygon::new(triangle, vec![])]));
    terrs.push(MultiPolygon(vec![
        rect(179.0, 0.0, 180.0, 1.0),
        rect(-180.0, 0.0, -179.0, 1.0),
    ]));
    let terrs: Vec<MultiPolygon<f64>> = terrs
        .into_iter()
        .map(|t| t.orient(Direction::Default))
        .collect();
    let entries = terrs
        .iter()
        .enumerate()
        .map(|(k, t)| entry(k as i64, |e| e.territory = Some(Arc::new(t.clone()))))
        .collect();
    let idx = SearchIndex::build(entries);

    let mut points: Vec<[f64; 2]> = (0..20_000)
        .map(|_| [rng.random_range(-26.0..26.0), rng.random_range(-13.0..13.0)])
        .collect();
    points.extend((0..500).map(|_| [rng.random_range(-180.0..180.0), rng.random_range(-1.0..2.0)]));
    // Vertices and edge midpoints: on the boundary.
    for t in terrs.iter().take(50) {
        for l in t.0[0].exterior().lines().take(10) {
            points.push([l.start.x, l.start.y]);
            points.push([(l.start.x + l.end.x) / 2.0, (l.start.y + l.end.y) / 2.0]);
        }
    }
    let boxes: Vec<geo::Rect<f64>> = terrs
        .iter()
        .map(|t| geo::BoundingRect::bounding_rect(t).unwrap())
        .collect();
    let batch = idx.lookup_batch(&points, &Filter::default());
    for (p, got) in points.iter().zip(&batch) {
        let pt = Point::new(p[0], p[1]);
        let mut want: Vec<i64> = (0..terrs.len())
            .filter(|&k| geo::Intersects::intersects(&boxes[k], &pt) && terrs[k].contains(&pt))
            .map(|k| k as i64)
            .collect();
        want.sort_unstable();
        let mut got = keys(&idx, got);
        got.sort_unstable();
        assert_eq!(got, want, "at {p:?}");
    }
}

/// A random simple polygon: a star around `(cx, cy)` (vertices at increasing angles),
/// optionally with a hole (a smaller star, clockwise), so boundaries cross, nest and touch
/// in every way the random layout happens to produce.
fn snapped_star(
    rng: &mut impl rand::Rng,
    cx: f64,
    cy: f64,
    r: f64,
    n: usize,
    hole: bool,
) -> Polygon<f64> {
    use geo::orient::{Direction, Orient};
    let ring = |rng: &mut dyn rand::RngCore, r: f64| -> LineString<f64> {
        let mut pts: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                let d = r * rand::Rng::random_range(rng, 0.3..1.0);
                // Snap to a coarse grid now and then, so vertices land on other edges.
                let (x, y) = (cx + d * a.cos(), cy + d * a.sin());
                if rand::Rng::random_bool(rng, 0.3) {
                    (x.round(), y.round())
                } else {
                    (x, y)
                }
            })
            .collect();
        pts.push(pts[0]);
        LineString::from(pts)
    };
    let ext = ring(rng, r);
    let holes = if hole {
        vec![ring(rng, r * 0.25)]
    } else {
        vec![]
    };
    Polygon::new(ext, holes).orient(Direction::Default)
}

/// The budgeted exact test agrees with geo's `Intersects` against every territory, for
/// points, lines, polygons with holes and multi-polygons laid out at random.
#[test]
fn intersecting_agrees_with_geo_on_random_geometries() {
    use geo::Intersects;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    let mut entries = Vec::new();
    let mut terrs = Vec::new();
    for key in 0..60 {
        let polys: Vec<Polygon<f64>> = (0..rng.random_range(1..3))
            .map(|_| {
                let (cx, cy): (f64, f64) =
                    (rng.random_range(-20.0..20.0), rng.random_range(-20.0..20.0));
                let r = rng.random_range(1.0..8.0);
                let n = rng.random_range(3..12);
                let hole = rng.random_bool(0.3);
                snapped_star(&mut rng, cx, cy, r, n, hole)
            })
            .collect();
        let mp = MultiPolygon(polys);
        terrs.push(mp.clone());
        entries.push(entry(key, |e| {
            e.territory = Some(Arc::new(mp));
            e.territory_id = Some(key);
        }));
    }
    let idx = SearchIndex::build(entries);
    let f = Filter::default();
    let mut checked = 0;
    for _ in 0..300 {
        let (cx, cy): (f64, f64) = (rng.random_range(-25.0..25.0), rng.random_range(-25.0..25.0));
        let g = match rng.random_range(0..4) {
            0 => Geometry::Point(Point::new(cx.round(), cy.round())),
            1 => Geometry::LineString(LineString::from(
                (0..rng.random_range(2..6))
                    .map(|_| {
                        (
                            cx + rng.random_range(-6.0..6.0),
                            cy + rng.random_range(-6.0..6.0),
                        )
                    })
                    .collect::<Vec<_>>(),
            )),
            2 => {
                let r = rng.random_range(0.5..10.0);
                let n = rng.random_range(3..10);
                let hole = rng.random_bool(0.4);
                Geometry::Polygon(snapped_star(&mut rng, cx, cy, r, n, hole))
            }
            _ => Geometry::MultiPolygon(MultiPolygon(vec![
                snapped_star(&mut rng, cx, cy, 2.0, 5, false),
                snapped_star(&mut rng, -cx, -cy, 3.0, 6, true),
            ])),
        };
        let mut expected: Vec<i64> = terrs
            .iter()
            .enumerate()
            .filter(|(_, t)| g.intersects(*t))
            .map(|(k, _)| k as i64)
            .collect();
        expected.sort_unstable();
        let mut got = keys(&idx, &idx.intersecting(&g, &f));
        got.sort_unstable();
        assert_eq!(got, expected, "{g:?}");
        checked += expected.len();
    }
    assert!(
        checked > 300,
        "the layout should produce many hits, got {checked}"
    );
}

/// A work cap or a passed deadline stops the query with the reason; a sufficient budget
/// gives the unlimited answer.
#[test]
fn intersecting_within_budget_stops_with_the_reason() {
    use std::time::{Duration, Instant};
    // One fine-grained territory: a 4,000-vertex zig-zag strip.
    let mut pts: Vec<(f64, f64)> = (0..2000)
        .map(|i| (i as f64 * 0.01, if i % 2 == 0 { 0.0 } else { 0.005 }))
        .collect();
    pts.extend(
        (0..2000)
            .rev()
            .map(|i| (i as f64 * 0.01, 1.0 + if i % 2 == 0 { 0.0 } else { 0.005 })),
    );
    pts.push(pts[0]);
    let strip = Polygon::new(LineString::from(pts), vec![]);
    let idx = SearchIndex::build(vec![entry(1, |e| {
        e.territory = terr(vec![strip]);
        e.territory_id = Some(1);
    })]);
    // A thin sliver crossing the strip's whole length just above its lower edge: no vertex
    // of either lies inside the other, so the boundaries are compared.
    let sliver = Geometry::Polygon(Polygon::new(
        LineString::from(vec![
            (-1.0, 0.5),
            (25.0, 0.5),
            (25.0, 0.5001),
            (-1.0, 0.5001),
            (-1.0, 0.5),
        ]),
        vec![],
    ));
    let f = Filter::default();
    let all = idx.intersecting(&sliver, &f);
    assert_eq!(keys(&idx, &all), vec![1]);
    let tight = WorkBudget {
        max_work: 1_000,
        deadline: None,
    };
    assert_eq!(
        idx.intersecting_within(&sliver, &f, &tight),
        Err(OverBudget::Work { max: 1_000 })
    );
    let past = WorkBudget {
        max_work: u64::MAX,
        deadline: Some(Instant::now() - Duration::from_millis(1)),
    };
    assert_eq!(
        idx.intersecting_within(&sliver, &f, &past),
        Err(OverBudget::Time)
    );
    let enough = WorkBudget {
        max_work: 1_000_000,
        deadline: Some(Instant::now() + Duration::from_secs(60)),
    };
    assert_eq!(idx.intersecting_within(&sliver, &f, &enough), Ok(all));
    // A batch stops at a passed deadline too.
    let points = vec![[0.5, 0.5]; 5000];
    assert_eq!(
        idx.lookup_batch_csr_within(&points, &f, Some(Instant::now())),
        Err(OverBudget::Time)
    );
    assert_eq!(
        idx.lookup_batch_csr_within(&points, &f, None)
            .unwrap()
            .len(),
        5000
    );
}

/// WG1-02 §3.3: scope ids are arbitrary strings and clients match scopes by `type`, so
/// `scope=` matches an id or a type (case-insensitively), OR across values, while the
/// facets count ids and types apart.
#[test]
fn scope_filter_matches_ids_and_types() {
    let idx = SearchIndex::build(vec![
        // A utility naming its usage scope its own way.
        entry(1, |e| {
            e.scopes = strs(&["my_usage_scope", "openid"]);
            e.scope_types = strs(&["cds_usage", "openid"]);
        }),
        // Id and type the same.
        entry(2, |e| {
            e.scopes = strs(&["cds_usage"]);
            e.scope_types = strs(&["cds_usage"]);
        }),
        // A scope whose id is another scope's type, of a different type itself.
        entry(3, |e| {
            e.scopes = strs(&["cds_bills"]);
            e.scope_types = strs(&["Cds_Bill_Statements"]);
        }),
        // A scope without a type is still found by its id.
        entry(4, |e| e.scopes = strs(&["untyped"])),
        entry(5, |_| {}),
    ]);
    let k = |scope: &[&str]| keys(&idx, &idx.search(&by(|f| f.scope = strs(scope))));
    assert_eq!(k(&["cds_usage"]), vec![1, 2]);
    assert_eq!(k(&["CDS_USAGE "]), vec![1, 2]);
    assert_eq!(k(&["my_usage_scope"]), vec![1]);
    assert_eq!(k(&["cds_bill_statements"]), vec![3]);
    assert_eq!(k(&["cds_bills"]), vec![3]);
    assert_eq!(k(&["cds_bill_statements", "untyped"]), vec![3, 4]);
    assert_eq!(k(&["nothing_like_it"]), Vec::<i64>::new());
    // With other fields and the point-free per-entry check agreeing with the postings.
    let f = Filter {
        scope: strs(&["cds_usage"]),
        country: strs(&["us"]),
        ..Default::default()
    };
    let q = idx.compile(&f);
    let brute: Vec<usize> = (0..idx.len()).filter(|&i| idx.matches(i, &q)).collect();
    assert_eq!(idx.search(&f), brute);

    let all = idx.facets(&Filter::default());
    assert_eq!(
        all.scope_type,
        counts(&[("cds_bill_statements", 1), ("cds_usage", 2), ("openid", 1)])
    );
    assert_eq!(
        all.scope,
        counts(&[
            ("cds_bills", 1),
            ("cds_usage", 1),
            ("my_usage_scope", 1),
            ("openid", 1),
            ("untyped", 1)
        ])
    );
    // Under a filter by type, both facets count the matching entries only.
    let f = idx.facets(&by(|f| f.scope = strs(&["cds_usage"])));
    assert_eq!(f.scope_type, counts(&[("cds_usage", 2), ("openid", 1)]));
    assert_eq!(
        f.scope,
        counts(&[("cds_usage", 1), ("my_usage_scope", 1), ("openid", 1)])
    );
}

/// A random entry for the incremental-update test: a star territory (sometimes two parts,
/// sometimes with a hole, sometimes none at all), random enum fields and scopes.
fn random_entry(rng: &mut rand::rngs::StdRng, key: i64, next_terr: &mut i64) -> IndexEntry {
    use rand::Rng;
    let pick = |rng: &mut rand::rngs::StdRng, from: &[&str], max: usize| -> Vec<String> {
        let n = rng.random_range(0..=max);
        (0..n)
            .map(|_| from[rng.random_range(0..from.len())].to_string())
            .collect()
    };
    let territory = rng.random_bool(0.85).then(|| {
        // Mostly inside the first layout's extent; now and then outside it, which an
        // update must handle by laying the grid out again.
        let span = if rng.random_bool(0.05) { 40.0 } else { 20.0 };
        let mut polys = Vec::new();
        for _ in 0..if rng.random_bool(0.2) { 2 } else { 1 } {
            let (cx, cy) = (rng.random_range(0.0..span), rng.random_range(0.0..span));
            let r = rng.random_range(0.2..3.0);
            let n = rng.random_range(3..24);
            let hole = rng.random_bool(0.2);
            polys.push(star(rng, cx, cy, r, n, hole));
        }
        Arc::new(MultiPolygon(polys))
    });
    let territory_id = territory.as_ref().and_then(|_| {
        rng.random_bool(0.5).then(|| {
            *next_terr += 1;
            *next_terr
        })
    });
    let server_id = rng.random_range(1..6);
    // Now and then a registry's copy of an entry, often of one that is indexed itself or
    // copied by others too, so that copies hide each other and come back as they change.
    let origin = rng.random_bool(0.3).then(|| crate::cds::origin::Origin {
        server: format!("https://s{}/m.json", rng.random_range(1..6)),
        id: format!("e{}", 3 * rng.random_range(1..12)),
        role: pick(rng, &["authoritative", "official"], 1)
            .pop()
            .unwrap_or_default(),
        capabilities: vec![],
        via: (0..rng.random_range(0..3))
            .map(|i| format!("https://r{i}/m.json"))
            .collect(),
    });
    IndexEntry {
        key,
        server_id,
        server_url: format!("https://s{server_id}/m.json").into(),
        server_name: "".into(),
        entry: CoverageEntry {
            id: format!("e{key}"),
            origin,
            country: pick(rng, &["US", "ca", "DE"], 1).pop().unwrap_or_default(),
            commodity_types: pick(rng, &["electricity", "natural_gas", "water"], 2),
            role: pick(rng, &["authoritative", "official", "aggregator", "x"], 1)
                .pop()
                .unwrap_or_default(),
            entity_name: pick(rng, &["Hydro-Québec", "Acme", "Ørsted"], 1)
                .pop()
                .unwrap_or_default(),
            name: format!("Entry {key}"),
            ..CoverageEntry::default()
        },
        territory_id,
        territory,
        scopes: pick(rng, &["a", "b"], 2),
        scope_types: pick(rng, &["t_a", "b"], 1),
        oauth: None,
    }
}

/// Everything a client can observe of two indexes is the same: entries, lookups (single
/// and batch, on random points and on vertices, where boundaries are decided), searches
/// with every kind of filter, facets, entity groups, geometry queries, areas.
fn assert_same_answers(
    inc: &SearchIndex,
    full: &SearchIndex,
    rng: &mut rand::rngs::StdRng,
    step: usize,
) {
    use rand::Rng;
    let k = |idx: &SearchIndex| {
        idx.entries()
            .map(|e| {
                let e = e.to_entry();
                (e.key, e.server_id, e.entry.id, e.territory_id)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(k(inc), k(full), "step {step}: entry sets");
    for i in 0..full.len() {
        assert_eq!(
            inc.territory_area(i),
            full.territory_area(i),
            "step {step}: area of {i}"
        );
        assert_eq!(
            inc.entry(i).territory(),
            full.entry(i).territory(),
            "step {step}"
        );
    }
    let mut points: Vec<[f64; 2]> = (0..400)
        .map(|_| [rng.random_range(-1.0..42.0), rng.random_range(-1.0..42.0)])
        .collect();
    // Vertices of random territories: boundary points, where the grid's flags matter.
    for t in full.entries().filter_map(|e| e.territory()).take(40) {
        points.extend(t.0[0].exterior().0.iter().take(3).map(|c| [c.x, c.y]));
    }
    let none = Filter::default();
    for &[x, y] in &points {
        assert_eq!(
            inc.lookup(x, y, &none),
            full.lookup(x, y, &none),
            "step {step}: lookup {x},{y}"
        );
    }
    assert_eq!(
        inc.lookup_batch_csr(&points, &none),
        full.lookup_batch_csr(&points, &none),
        "step {step}: batch"
    );
    let pick = |rng: &mut rand::rngs::StdRng, from: &[&str], max: usize| -> Vec<String> {
        let n = rng.random_range(0..=max);
        (0..n)
            .map(|_| from[rng.random_range(0..from.len())].to_string())
            .collect()
    };
    for round in 0..60 {
        let f = Filter {
            country: pick(rng, &["us", "CA", "de", "xx"], 1),
            commodity: pick(rng, &["electricity", "water"], 1),
            role: pick(rng, &["authoritative", "official", "x"], 1),
            scope: pick(rng, &["A", "t_a"], 1),
            q: rng.random_bool(0.2).then(|| "acme".to_string()),
            point: rng
                .random_bool(0.3)
                .then(|| (rng.random_range(0.0..40.0), rng.random_range(0.0..40.0))),
            bbox: rng.random_bool(0.3).then(|| {
                let (x, y) = (rng.random_range(0.0..40.0), rng.random_range(0.0..40.0));
                [x, y, x + 3.0, y + 3.0]
            }),
            ..Default::default()
        };
        assert_eq!(
            inc.search(&f),
            full.search(&f),
            "step {step} round {round}: {f:?}"
        );
        assert_eq!(
            inc.facets(&f),
            full.facets(&f),
            "step {step} round {round}: facets"
        );
        assert_eq!(
            inc.entities(&f),
            full.entities(&f),
            "step {step} round {round}: entities"
        );
        let (x, y) = (rng.random_range(0.0..40.0), rng.random_range(0.0..40.0));
        assert_eq!(
            inc.lookup(x, y, &f),
            full.lookup(x, y, &f),
            "step {step} round {round}"
        );
        assert_eq!(
            inc.lookup_batch_csr(&points[..50], &f),
            full.lookup_batch_csr(&points[..50], &f),
            "step {step} round {round}: filtered batch"
        );
        let g = Geometry::Polygon(rect(x, y, x + rng.random_range(0.1..4.0), y + 1.0));
        assert_eq!(
            inc.intersecting(&g, &f),
            full.intersecting(&g, &f),
            "step {step} round {round}: intersecting"
        );
    }
    assert_eq!(inc.facets(&none), full.facets(&none), "step {step}: facets");
}

/// Issue 17: an index updated step by step ([`SearchIndex::update`]: servers dropped,
/// entries added, replaced and removed, territories shared, re-decoded with the same id,
/// or moved outside the grid's extent) answers exactly like one built from scratch on the
/// same entries.
#[test]
fn update_equals_a_full_rebuild_on_random_changes() {
    use rand::seq::IndexedRandom;
    use rand::{Rng, SeedableRng};
    for seed in 0..6u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1700 + seed);
        let mut next_terr = 0;
        let mut next_key = 0;
        let mut entries: Vec<IndexEntry> = (0..150)
            .map(|_| {
                next_key += 1;
                random_entry(&mut rng, next_key * 3, &mut next_terr)
            })
            .collect();
        let mut inc = SearchIndex::build(entries.clone());
        for step in 0..8 {
            let current: Vec<i64> = entries.iter().map(|e| e.key).collect();
            let mut added = Vec::new();
            // Changed entries: same key, new fields and territory.
            let n = rng.random_range(0..8);
            for &key in current.choose_multiple(&mut rng, n) {
                added.push(random_entry(&mut rng, key, &mut next_terr));
            }
            // Unchanged entries read again: same territory id, a fresh decoded copy.
            let n = rng.random_range(0..8);
            for &key in current.choose_multiple(&mut rng, n) {
                let mut e = entries.iter().find(|e| e.key == key).unwrap().clone();
                if e.territory_id.is_some() {
                    e.territory = e.territory.as_ref().map(|t| Arc::new((**t).clone()));
                }
                added.push(e);
            }
            added.sort_by_key(|e| e.key);
            added.dedup_by_key(|e| e.key);
            // New entries, some sharing a territory (and its id) with an existing one.
            for _ in 0..rng.random_range(0..10) {
                next_key += 1;
                let mut e = random_entry(&mut rng, next_key * 3 + 1, &mut next_terr);
                if rng.random_bool(0.2) {
                    if let Some(o) = entries.choose(&mut rng) {
                        e.territory = o.territory.clone();
                        e.territory_id = o.territory_id;
                    }
                }
                added.push(e);
            }
            let n = rng.random_range(0..8);
            let removed: std::collections::HashSet<i64> =
                current.choose_multiple(&mut rng, n).copied().collect();
            // Now and then a whole server goes.
            let gone_server = rng.random_bool(0.25).then(|| rng.random_range(1..6));
            let replaced: std::collections::HashSet<i64> = added.iter().map(|e| e.key).collect();
            let drop = |key: i64, server: i64| {
                removed.contains(&key) || replaced.contains(&key) || Some(server) == gone_server
            };
            entries.retain(|e| !drop(e.key, e.server_id));
            entries.extend(added.iter().cloned());
            inc = inc.update(|e| drop(e.key(), e.server_id()), added);
            let full = SearchIndex::build(entries.clone());
            assert_same_answers(&inc, &full, &mut rng, step);
        }
    }
}

/// Updating an empty index, and updating down to nothing, also agree with a build.
#[test]
fn update_from_and_to_empty() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut next_terr = 0;
    let entries: Vec<IndexEntry> = (1..40)
        .map(|k| random_entry(&mut rng, k, &mut next_terr))
        .collect();
    let empty = SearchIndex::build(Vec::new());
    let inc = empty.update(|_| false, entries.clone());
    assert_same_answers(&inc, &SearchIndex::build(entries), &mut rng, 0);
    let gone = inc.update(|_| true, Vec::new());
    assert!(gone.is_empty());
    assert_eq!(
        gone.lookup(5.0, 5.0, &Filter::default()),
        Vec::<usize>::new()
    );
}

/// An index built from entries pushed one at a time ([`IndexBuilder`], an API replica's
/// load), in key order or not, answers like one built from the same entries at once.
#[test]
fn an_index_built_one_entry_at_a_time_equals_a_build() {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut next_terr = 0;
    let mut entries: Vec<IndexEntry> = (1..120)
        .map(|k| random_entry(&mut rng, k, &mut next_terr))
        .collect();
    let full = SearchIndex::build(entries.clone());
    for shuffle in [false, true] {
        if shuffle {
            entries.shuffle(&mut rng);
        }
        let mut builder = IndexBuilder::default();
        for e in entries.iter().cloned() {
            builder.push(e);
        }
        assert_same_answers(&builder.build(), &full, &mut rng, usize::from(shuffle));
    }
}

/// A kept entry whose territory (by id) takes another entry's geometry in an update ranks
/// by its new area: the kept entries' earlier order no longer holds, and the lookup order
/// is sorted afresh, as in a build.
#[test]
fn update_reorders_kept_entries_whose_territory_changed_size() {
    let small = entry(10, |e| {
        e.territory_id = Some(7);
        e.territory = terr(vec![rect(0.0, 0.0, 1.0, 1.0)]);
    });
    let medium = entry(20, |e| {
        e.territory_id = Some(8);
        e.territory = terr(vec![rect(0.0, 0.0, 2.0, 2.0)]);
    });
    let old = SearchIndex::build(vec![small.clone(), medium.clone()]);
    let none = Filter::default();
    assert_eq!(keys(&old, &old.lookup(0.5, 0.5, &none)), vec![10, 20]);
    // Key 5 comes first and names territory 7 with a large geometry: territory 7 is that
    // one now, for the kept entry 10 too.
    let large = entry(5, |e| {
        e.territory_id = Some(7);
        e.territory = terr(vec![rect(0.0, 0.0, 3.0, 3.0)]);
    });
    let new = old.update(|_| false, vec![large.clone()]);
    let full = SearchIndex::build(vec![large, small, medium]);
    assert_eq!(keys(&full, &full.lookup(0.5, 0.5, &none)), vec![20, 5, 10]);
    assert_eq!(keys(&new, &new.lookup(0.5, 0.5, &none)), vec![20, 5, 10]);
    use rand::SeedableRng;
    assert_same_answers(&new, &full, &mut rand::rngs::StdRng::seed_from_u64(5), 0);
}

/// An update shares the entries it keeps with the index it came from (the same
/// allocation); a replaced entry is a new one.
#[test]
fn update_shares_kept_entries() {
    let old = SearchIndex::build((1..=3).map(|k| entry(k, |_| {})).collect());
    let new = old.update(
        |e| e.key() == 2,
        vec![entry(2, |e| e.entry.name = "Renamed".into())],
    );
    let kept = new.position(1).unwrap();
    assert!(new.entry(kept).same_as(old.entry(0)));
    let replaced = new.position(2).unwrap();
    assert_eq!(new.entry(replaced).row_fields().name, "Renamed");
    assert!(!new.entry(replaced).same_as(old.entry(1)));
}

/// Copies of one entry (the same `cds_registry_origin` server and id, or the original
/// itself) are answered once: the original before its copies, fewer registries between
/// a copy and its origin first, then the lowest key. A copy ranks by its origin's role.
/// When the shown one leaves, the next copy takes its place, in an update as in a build.
#[test]
fn copies_of_one_entry_are_answered_once_the_original_first() {
    use crate::cds::origin::Origin;
    const U: &str = "https://utility.example/.well-known/cds-server-metadata.json";
    const V: &str = "https://other.example/.well-known/cds-server-metadata.json";
    let square = terr(vec![rect(0.0, 0.0, 1.0, 1.0)]);
    let original = entry(1, |e| {
        e.server_url = U.into();
        e.entry.id = "x".into();
        e.entry.role = "authoritative".into();
        e.territory = square.clone();
    });
    let copy = |key: i64, hops: usize, of: (&str, &str)| {
        entry(key, |e| {
            e.server_id = 2;
            e.server_url = "https://registry.example/m.json".into();
            e.entry.role = "aggregator".into();
            e.entry.origin = Some(Origin {
                server: of.0.into(),
                id: of.1.into(),
                role: "authoritative".into(),
                capabilities: vec![],
                via: (0..hops).map(|i| format!("https://r{i}/m.json")).collect(),
            });
            e.territory = square.clone();
        })
    };
    let others = vec![
        copy(2, 1, (U, "x")),
        copy(3, 2, (U, "x")),
        copy(4, 2, (V, "y")),
        copy(5, 1, (V, "y")),
    ];
    // A plain aggregator entry of another server, and an official one: a copy of an
    // authoritative entry ranks before both.
    let aggregator = entry(6, |e| {
        e.server_id = 3;
        e.entry.role = "aggregator".into();
        e.territory = square.clone();
    });
    let official = entry(7, |e| {
        e.server_id = 4;
        e.territory = square.clone();
    });
    let mut all = vec![original];
    all.extend(others.clone());
    all.extend([aggregator, official]);
    let idx = SearchIndex::build(all.clone());
    let none = Filter::default();
    assert_eq!(keys(&idx, &idx.lookup(0.5, 0.5, &none)), [1, 5, 7, 6]);
    assert_eq!(keys(&idx, &idx.search(&none)), [1, 5, 6, 7]);
    assert_eq!(
        keys(
            &idx,
            &idx.intersecting(&Geometry::Point(Point::new(0.5, 0.5)), &none)
        ),
        [1, 5, 7, 6]
    );
    let batch = idx.lookup_batch_csr(&[[0.5, 0.5]], &none);
    assert_eq!(batch.get(0).len(), 4);
    let hidden: Vec<i64> = (0..idx.len())
        .filter(|&i| idx.is_hidden(i))
        .map(|i| idx.key(i))
        .collect();
    assert_eq!(hidden, [2, 3, 4]);
    // Facets count what searches return: the two hidden copies of `x` and one of `y`
    // count nowhere.
    assert_eq!(
        idx.facets(&none).role,
        counts(&[("aggregator", 2), ("authoritative", 1), ("official", 1)])
    );
    // A hidden entry keeps its key: its territory is still there by key.
    assert!(idx.territory_of(3).is_some());

    // The original leaves: its nearest copy (one hop, key 2) is answered in its place,
    // and the update agrees with a build of what is left.
    let upd = idx.update(|e| e.key() == 1, vec![]);
    assert_eq!(keys(&upd, &upd.lookup(0.5, 0.5, &none)), [2, 5, 7, 6]);
    let rest: Vec<IndexEntry> = all.into_iter().filter(|e| e.key != 1).collect();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(18);
    assert_same_answers(&upd, &SearchIndex::build(rest), &mut rng, 0);
}
