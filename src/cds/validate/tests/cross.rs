//! Cross-server rules (WG1-01 §4).

use super::*;

fn claim(
    server: &str,
    id: &str,
    caps: &[&str],
    country: &str,
    bbox: Option<[f64; 4]>,
) -> AuthClaim {
    AuthClaim {
        server_url: format!("https://{server}/.well-known/cds-server-metadata.json"),
        entry_url: format!("https://{server}/coverage"),
        pointer: "/coverage_entries/0".into(),
        entry_id: id.into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        country: country.into(),
        bbox,
    }
}

#[test]
fn xs_auth_conflict_reports_both_sides() {
    let claims = [
        claim(
            "a.example",
            "a1",
            &["oauth", "ieee1547"],
            "US",
            Some([-100.0, 30.0, -90.0, 40.0]),
        ),
        claim(
            "b.example",
            "b1",
            &["ieee1547"],
            "US",
            Some([-95.0, 35.0, -85.0, 45.0]),
        ),
    ];
    let f = authoritative_conflicts(&claims);
    assert_eq!(ids(&f), set(&["XS-AUTH-CONFLICT"]));
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|x| x.severity == Severity::Warning));
    assert_eq!(f[0].url, "https://a.example/coverage");
    assert_eq!(f[1].url, "https://b.example/coverage");
    assert!(f[0].message.contains("b1") && f[0].message.contains("`ieee1547`"));
    assert!(!f[0].message.contains("oauth"));
    assert_eq!(f[1].actual.as_deref(), Some(claims[0].server_url.as_str()));
}

#[test]
fn xs_auth_no_conflict_cases() {
    let bbox = Some([-100.0, 30.0, -90.0, 40.0]);
    let none: Vec<(AuthClaim, AuthClaim)> = vec![
        // same server
        (
            claim("a.example", "a1", &["oauth"], "US", bbox),
            claim("a.example", "a2", &["oauth"], "US", bbox),
        ),
        // no shared capability
        (
            claim("a.example", "a1", &["oauth"], "US", bbox),
            claim("b.example", "b1", &["ieee1547"], "US", bbox),
        ),
        // disjoint territory
        (
            claim("a.example", "a1", &["oauth"], "US", bbox),
            claim(
                "b.example",
                "b1",
                &["oauth"],
                "US",
                Some([-80.0, 30.0, -70.0, 40.0]),
            ),
        ),
        // different country
        (
            claim("a.example", "a1", &["oauth"], "US", bbox),
            claim("b.example", "b1", &["oauth"], "CA", bbox),
        ),
        // unknown territory
        (
            claim("a.example", "a1", &["oauth"], "US", None),
            claim("b.example", "b1", &["oauth"], "US", bbox),
        ),
    ];
    for (a, b) in none {
        assert_eq!(
            authoritative_conflicts(&[a.clone(), b.clone()]),
            vec![],
            "{a:?} {b:?}"
        );
    }
}

#[test]
fn xs_auth_conflict_takes_the_callers_overlap_test() {
    let claims = [
        claim("a.example", "a1", &["oauth"], "US", None),
        claim("b.example", "b1", &["oauth"], "CA", None),
        claim("c.example", "c1", &["oauth"], "MX", None),
    ];
    let all = authoritative_conflicts_with(&claims, &|_, _| true);
    assert_eq!(all.len(), 6, "three pairs, two findings each");
    let only_ab =
        authoritative_conflicts_with(&claims, &|a, b| a.entry_id == "a1" && b.entry_id == "b1");
    let urls: Vec<&str> = only_ab.iter().map(|f| f.url.as_str()).collect();
    assert_eq!(
        urls,
        ["https://a.example/coverage", "https://b.example/coverage"]
    );
}

#[test]
fn bbox_overlap_edges_antimeridian_and_nan() {
    let a = [0.0, 0.0, 10.0, 10.0];
    assert!(bbox_overlap(&a, &[5.0, 5.0, 15.0, 15.0]));
    assert!(bbox_overlap(&a, &[2.0, 2.0, 3.0, 3.0])); // contained
    assert!(!bbox_overlap(&a, &[10.0, 0.0, 20.0, 10.0])); // shared edge only
    assert!(!bbox_overlap(&a, &[0.0, 10.0, 10.0, 20.0]));
    assert!(!bbox_overlap(&a, &[20.0, 0.0, 30.0, 10.0]));
    // Fiji-like box across the antimeridian.
    let fiji = [177.0, -21.0, -178.0, -12.0];
    assert!(bbox_overlap(&fiji, &[179.0, -20.0, 179.5, -15.0]));
    assert!(bbox_overlap(&fiji, &[-179.0, -20.0, -178.5, -15.0]));
    assert!(!bbox_overlap(&fiji, &[0.0, -20.0, 10.0, -15.0]));
    assert!(!bbox_overlap(&a, &[f64::NAN, 0.0, 10.0, 10.0]));
}

#[test]
fn territories_overlap_needs_shared_interior() {
    use crate::demo::territory_multipolygon;
    use crate::territory::parse_territory;
    let shape = |fips: &[&str]| {
        let (t, _) = parse_territory(&territory_multipolygon(fips), "t.geojson");
        t.expect("fixture counties parse").geometry
    };
    // Undissolved county unions, as utilities publish them.
    let central_coast = shape(&["06069", "06053", "06087"]); // San Benito, Monterey, Santa Cruz
    let monterey_fresno = shape(&["06053", "06019"]);
    let fresno = shape(&["06019"]);
    let san_benito = shape(&["06069"]);
    assert!(territories_overlap(&central_coast, &monterey_fresno));
    assert!(territories_overlap(&monterey_fresno, &central_coast));
    assert!(
        territories_overlap(&central_coast, &san_benito),
        "containment overlaps"
    );
    // Neighbours share a border, not territory: their bounding boxes overlap and
    // `Intersects` is true, but there is no conflict.
    let bbox = |m: &geo::MultiPolygon<f64>| {
        let r = geo::BoundingRect::bounding_rect(m).unwrap();
        [r.min().x, r.min().y, r.max().x, r.max().y]
    };
    assert!(bbox_overlap(&bbox(&san_benito), &bbox(&fresno)));
    assert!(geo::Intersects::intersects(&san_benito, &fresno));
    assert!(!territories_overlap(&san_benito, &fresno));
    assert!(!territories_overlap(&central_coast, &fresno));
    assert!(
        !territories_overlap(&san_benito, &shape(&["48453"])),
        "Travis County, TX"
    );
}

mod indexed {
    use super::*;
    use proptest::prelude::*;

    // Coordinates on a coarse grid, so shared edges, containment, identical boxes,
    // antimeridian boxes (min_lon > max_lon) and degenerate boxes all come up often.
    fn coord(range: std::ops::RangeInclusive<i32>) -> impl Strategy<Value = f64> {
        range.prop_map(|v| v as f64 * 10.0)
    }

    fn arb_claim() -> impl Strategy<Value = AuthClaim> {
        let bbox = prop_oneof![
            1 => Just(None),
            1 => Just(Some([f64::NAN, 0.0, 10.0, 10.0])),
            12 => (coord(-18..=18), coord(-9..=9), coord(-18..=18), coord(-9..=9))
                .prop_map(|(a, b, c, d)| Some([a, b.min(d), c, b.max(d)])),
        ];
        (
            0..4usize,
            prop::sample::subsequence(vec!["oauth", "ieee1547", "coverage"], 0..=3),
            prop::sample::select(vec!["US", "CA"]),
            bbox,
        )
            .prop_map(|(server, caps, country, bbox)| {
                claim(&format!("s{server}.example"), "e", &caps, country, bbox)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// The sweep finds exactly what the full pairwise scan finds, in the same order.
        #[test]
        fn indexed_equals_the_full_scan(claims in prop::collection::vec(arb_claim(), 0..40)) {
            let full = authoritative_conflicts_with(&claims, &default_overlap);
            let fast = authoritative_conflicts_indexed(&claims, &default_overlap);
            prop_assert_eq!(fast, full);
        }
    }

    #[test]
    fn indexed_finds_the_antimeridian_pair_once() {
        let claims = [
            claim(
                "a.example",
                "a1",
                &["oauth"],
                "FJ",
                Some([177.0, -21.0, -178.0, -12.0]),
            ),
            claim(
                "b.example",
                "b1",
                &["oauth"],
                "FJ",
                Some([170.0, -22.0, -179.0, -10.0]),
            ),
        ];
        let f = authoritative_conflicts_indexed(&claims, &default_overlap);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f, authoritative_conflicts_with(&claims, &default_overlap));
    }
}
