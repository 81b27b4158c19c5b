//! Property tests of the parsers that read remote input: strict-then-lenient JSON, the
//! document views, the validator, GeoJSON territories, the WKB codec and the seeds file.
//!
//! Inputs are arbitrary bytes, arbitrary JSON values (objects keyed mostly by CDS field
//! names so the checks are reached) and near-valid documents: a conforming metadata
//! document, coverage listing or GeoJSON object with a few fields replaced, removed or
//! added. Each property runs a bounded number of cases so the suite stays fast; failures
//! found here are kept below as plain `#[test]` regression cases.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use cds_registry::cds::lenient::{self, Parsed};
use cds_registry::cds::validate::{
    validate_coverage_entry, validate_coverage_page, validate_metadata, validate_server, EntryRef,
    MetadataContext,
};
use cds_registry::cds::{CoverageEntry, CoveragePageView, Finding, MetadataView};
use cds_registry::seeds::{parse_seed, parse_seeds, Seed, SeedError, SeedErrors};
use cds_registry::territory::{from_wkb, parse_territory, to_wkb};
use cds_testkit::documents::{
    conforming_entry, conforming_metadata, GEO_URL, META_URL, PAGE1, PAGE2,
};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

// ---- allocation tracking (for the WKB reader's bounds) ----

/// The system allocator, recording the largest single request made on a thread while
/// that thread has tracking switched on.
struct Tracking;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: never panic inside the allocator (e.g. during thread teardown).
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Run `f` and return its result with the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(Cell::get))
}

// ---- configuration and strategies ----

/// 256 cases per property (about a second in all); `PROPTEST_CASES=100000` for a deeper
/// search.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        // Failures are kept as regression tests in this file, not in a side directory.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys the documents use, so random objects reach the field checks.
const KEYS: &[&str] = &[
    "cds_metadata_version",
    "cds_metadata_url",
    "created",
    "updated",
    "name",
    "description",
    "website",
    "documentation",
    "support",
    "capabilities",
    "coverage",
    "related_metadata",
    "oauth_metadata",
    "coverage_entries",
    "next",
    "previous",
    "id",
    "entity_name",
    "entity_abbreviation",
    "country",
    "type",
    "role",
    "infrastructure_types",
    "commodity_types",
    "map_resource",
    "map_content_type",
    "geojson_resource",
    "coordinates",
    "geometry",
    "geometries",
    "features",
    "properties",
    "a/b",
    "~x",
    "",
];

/// String values the checks treat specially.
const STRINGS: &[&str] = &[
    "",
    " ",
    "v1",
    "v2",
    "coverage",
    "oauth",
    "US",
    "us",
    "UK",
    "GB",
    "XX",
    "geographic",
    "logical",
    "authoritative",
    "aggregator",
    "electricity",
    "2024-01-01T00:00:00Z",
    "2024-06-01T12:30:00.250+02:00",
    "2024-13-01T00:00:00Z",
    "yesterday",
    "https://util.example/x",
    "https://util.example/.well-known/cds-server-metadata.json",
    "http://util.example/x",
    " https://util.example/x",
    "javascript:alert(1)",
    "https://",
    "/relative",
    "image/png",
    "image/",
    "text/html; charset=utf-8",
    "Polygon",
    "MultiPolygon",
    "Feature",
    "FeatureCollection",
    "GeometryCollection",
    "Point",
    "é\u{301}",
    "\u{1F600}",
    "~0~1/",
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(STRINGS).prop_map(str::to_owned),
        1 => ".{0,24}",
        1 => "[a-z:/._~ -]{0,20}",
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        (-200.0f64..200.0).prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON numbers are finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
    ]
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => arb_number(),
        3 => arb_string().prop_map(Value::String),
    ]
}

/// Any JSON value: nested arrays and objects of the leaves above.
fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..10)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn good_page() -> Value {
    json!({
        "coverage_entries": [
            conforming_entry("north", "2024-06-01T00:00:00Z"),
            conforming_entry("south", "2024-05-01T00:00:00Z"),
            conforming_entry("east", "2024-04-01T00:00:00Z"),
        ],
        "next": PAGE2,
        "previous": null
    })
}

const SQUARE: &str = "[[[0,0],[0,1],[1,1],[1,0],[0,0]]]";
const HOLED: &str =
    "[[[10,10],[10,14],[14,14],[14,10],[10,10]],[[11,11],[12,11],[12,12],[11,12],[11,11]]]";

fn good_geojson() -> Vec<Value> {
    let sq: Value = serde_json::from_str(SQUARE).unwrap();
    let holed: Value = serde_json::from_str(HOLED).unwrap();
    vec![
        json!({"type": "Polygon", "coordinates": sq}),
        json!({"type": "MultiPolygon", "coordinates": [sq, holed]}),
        json!({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": holed}}),
        json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": null},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}},
            {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [sq]}}]}),
        json!({"type": "GeometryCollection", "geometries": [{"type": "Polygon", "coordinates": sq}]}),
    ]
}

/// One edit of a document: replace a node, remove it, or add a member to an object.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    Remove,
    Insert(String, Value),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => arb_json().prop_map(Edit::Replace),
        2 => Just(Edit::Remove),
        1 => (arb_key(), arb_json()).prop_map(|(k, v)| Edit::Insert(k, v)),
    ]
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// JSON pointers of every node of `v`, root first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(x, format!("{at}/{}", escape(k)), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn split_parent(ptr: &str) -> (&str, String) {
    let cut = ptr.rfind('/').unwrap_or(0);
    let last = ptr[(cut + 1).min(ptr.len())..]
        .replace("~1", "/")
        .replace("~0", "~");
    (&ptr[..cut], last)
}

fn apply(doc: &mut Value, at: Index, edit: Edit) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let ptr = all[at.index(all.len())].clone();
    match edit {
        Edit::Replace(v) => *doc.pointer_mut(&ptr).unwrap() = v,
        Edit::Insert(k, v) => {
            if let Some(Value::Object(m)) = doc.pointer_mut(&ptr) {
                m.insert(k, v);
            }
        }
        Edit::Remove if ptr.is_empty() => {}
        Edit::Remove => {
            let (parent, last) = split_parent(&ptr);
            match doc.pointer_mut(parent).unwrap() {
                Value::Object(m) => {
                    m.shift_remove(&last);
                }
                Value::Array(a) => {
                    a.remove(last.parse::<usize>().unwrap());
                }
                _ => unreachable!("a parent is a container"),
            }
        }
    }
}

/// `base` with up to four random edits.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    prop::collection::vec((any::<Index>(), arb_edit()), 0..4).prop_map(move |edits| {
        let mut d = base.clone();
        for (at, e) in edits {
            apply(&mut d, at, e);
        }
        d
    })
}

fn near_meta() -> impl Strategy<Value = Value> {
    mutated(conforming_metadata())
}

fn near_page() -> impl Strategy<Value = Value> {
    mutated(good_page())
}

fn near_entry() -> impl Strategy<Value = Value> {
    mutated(conforming_entry("north", "2024-06-01T00:00:00Z"))
}

fn near_geojson() -> impl Strategy<Value = Value> {
    prop::sample::select(good_geojson()).prop_flat_map(mutated)
}

fn any_meta() -> impl Strategy<Value = Value> {
    prop_oneof![near_meta(), arb_json()]
}

fn any_page() -> impl Strategy<Value = Value> {
    prop_oneof![near_page(), arb_json()]
}

// ---- finding invariants ----

/// Every finding names a rule and points at the document with an RFC 6901 pointer, and
/// the pointer (or, for a missing field, its parent) exists in `doc`.
fn check_findings(findings: &[Finding], doc: &Value, urls: &[&str]) -> Result<(), TestCaseError> {
    for f in findings {
        prop_assert!(!f.rule.is_empty(), "empty rule: {f:?}");
        prop_assert!(!f.rule.contains(char::is_whitespace), "rule: {f:?}");
        prop_assert!(!f.message.is_empty(), "empty message: {f:?}");
        prop_assert!(
            f.pointer.is_empty() || f.pointer.starts_with('/'),
            "pointer: {f:?}"
        );
        prop_assert!(urls.contains(&f.url.as_str()), "url: {f:?}");
        let (parent, _) = split_parent(&f.pointer);
        prop_assert!(
            doc.pointer(&f.pointer).is_some() || doc.pointer(parent).is_some(),
            "pointer {:?} is not in the document: {f:?}",
            f.pointer
        );
    }
    Ok(())
}

// ---- lenient JSON ----

/// Serialise `v` as JSON text, adding a trailing comma after the last member of each
/// non-empty container for which `commas` says so. Returns whether any was added.
fn with_trailing_commas(
    v: &Value,
    commas: &mut impl Iterator<Item = bool>,
    out: &mut String,
) -> bool {
    let mut added = false;
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                added |= with_trailing_commas(x, commas, out);
            }
            if !a.is_empty() && commas.next().unwrap_or(false) {
                out.push_str(" ,\n ");
                added = true;
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                added |= with_trailing_commas(x, commas, out);
            }
            if !m.is_empty() && commas.next().unwrap_or(false) {
                out.push_str(",\t");
                added = true;
            }
            out.push('}');
        }
        leaf => out.push_str(&serde_json::to_string(leaf).unwrap()),
    }
    added
}

fn check_lenient(bytes: &[u8]) -> Result<(), TestCaseError> {
    let strict = serde_json::from_slice::<Value>(bytes);
    match (strict, lenient::parse(bytes)) {
        (Ok(v), Ok((w, Parsed::Strict))) => prop_assert_eq!(v, w),
        (Ok(_), other) => prop_assert!(false, "strict JSON not parsed strictly: {other:?}"),
        (Err(_), Ok((_, Parsed::Strict))) => prop_assert!(false, "invalid JSON parsed strictly"),
        (Err(_), Ok((_, Parsed::Lenient)) | Err(_)) => {}
    }
    Ok(())
}

/// Bytes that are often almost JSON: a serialised value with random bytes replaced,
/// inserted (mostly commas and brackets) or removed.
fn near_json_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => prop::sample::select(b",]}[{\" \\:".to_vec()),
        1 => any::<u8>(),
    ];
    (
        arb_json(),
        prop::collection::vec((any::<Index>(), 0u8..3, byte), 0..4),
    )
        .prop_map(|(v, edits)| {
            let mut b = serde_json::to_vec(&v).unwrap();
            for (at, op, x) in edits {
                let i = at.index(b.len() + 1);
                match op {
                    0 => b.insert(i, x),
                    1 if i < b.len() => b[i] = x,
                    _ if i < b.len() => {
                        b.remove(i);
                    }
                    _ => {}
                }
            }
            b
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lenient_parse_agrees_with_serde_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_lenient(&bytes)?;
    }

    #[test]
    fn lenient_parse_agrees_with_serde_on_near_json(bytes in near_json_bytes()) {
        check_lenient(&bytes)?;
    }

    #[test]
    fn trailing_commas_parse_leniently_to_the_same_value(
        v in arb_json(),
        commas in prop::collection::vec(any::<bool>(), 0..32),
    ) {
        let mut text = String::new();
        let added = with_trailing_commas(&v, &mut commas.into_iter(), &mut text);
        let (w, how) = lenient::parse(text.as_bytes()).map_err(|e| {
            TestCaseError::fail(format!("{text:?} did not parse: {e}"))
        })?;
        prop_assert_eq!(how, if added { Parsed::Lenient } else { Parsed::Strict }, "{}", text);
        // Compared with serde's own reading of the canonical text: its float parsing is
        // not correctly rounded in every case (no `float_roundtrip`), which is not ours.
        let canonical: Value = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        prop_assert_eq!(w, canonical, "{}", text);
    }
}

// ---- document views ----

fn strings_of(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn string_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn metadata_view_reads_exactly_the_string_fields(v in any_meta()) {
        let m = MetadataView::from_value(&v);
        prop_assert_eq!(m.name, string_of(&v, "name"));
        prop_assert_eq!(m.cds_metadata_url, string_of(&v, "cds_metadata_url"));
        prop_assert_eq!(m.coverage, string_of(&v, "coverage"));
        prop_assert_eq!(m.oauth_metadata, string_of(&v, "oauth_metadata"));
        prop_assert_eq!(m.capabilities, strings_of(&v, "capabilities"));
        prop_assert_eq!(m.related_metadata, strings_of(&v, "related_metadata"));
    }

    #[test]
    fn coverage_views_keep_every_entry(v in any_page()) {
        let p = CoveragePageView::from_value(&v);
        let n = v.get("coverage_entries").and_then(Value::as_array).map_or(0, Vec::len);
        prop_assert_eq!(p.entries.len(), n);
        prop_assert_eq!(p.next, string_of(&v, "next"));
        for e in &p.entries {
            let entry = CoverageEntry::from_value(e);
            let id = match e.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            prop_assert_eq!(&entry.id, &id);
            prop_assert_eq!(&entry.capabilities, &strings_of(e, "capabilities"));
            // The stored form (serde) reads back as the same entry.
            let back: CoverageEntry = serde_json::from_value(serde_json::to_value(&entry).unwrap()).unwrap();
            prop_assert_eq!(back, entry);
        }
    }

    #[test]
    fn coverage_entry_reads_any_value(v in prop_oneof![near_entry(), arb_json()]) {
        let entry = CoverageEntry::from_value(&v);
        prop_assert_eq!(entry.country, string_of(&v, "country").unwrap_or_default());
        prop_assert_eq!(entry.kind, string_of(&v, "type").unwrap_or_default());
        prop_assert_eq!(entry.geojson_resource, string_of(&v, "geojson_resource"));
    }
}

// ---- the validator ----

fn entry_refs<'a>(pages: &'a [(&'a str, Value)]) -> Vec<EntryRef<'a>> {
    pages
        .iter()
        .flat_map(|(url, page)| EntryRef::of_page(url, page))
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn metadata_findings_are_well_formed(doc in any_meta(), fetched_elsewhere in any::<bool>()) {
        let fetched = if fetched_elsewhere { "https://moved.example/cds.json" } else { META_URL };
        let f = validate_metadata(&doc, &MetadataContext { fetched_url: fetched });
        check_findings(&f, &doc, &[fetched])?;
        if doc == conforming_metadata() && !fetched_elsewhere {
            prop_assert!(f.is_empty(), "{f:?}");
        }
    }

    #[test]
    fn coverage_page_findings_are_well_formed(doc in any_page()) {
        let f = validate_coverage_page(&doc, PAGE1);
        check_findings(&f, &doc, &[PAGE1])?;
        if doc == good_page() {
            prop_assert!(f.is_empty(), "{f:?}");
        }
    }

    #[test]
    fn coverage_entry_findings_point_below_the_entry(entry in prop_oneof![near_entry(), arb_json()], i in 0usize..50) {
        let base = format!("/coverage_entries/{i}");
        let f = validate_coverage_entry(&entry, PAGE1, &base);
        // Seen from the page the entry sits in.
        let mut entries = vec![Value::Null; i];
        entries.push(entry.clone());
        let page = json!({ "coverage_entries": entries });
        check_findings(&f, &page, &[PAGE1])?;
        for x in &f {
            prop_assert!(x.pointer.starts_with(&base), "{x:?}");
        }
    }

    #[test]
    fn server_findings_are_well_formed(meta in any_meta(), p1 in any_page(), p2 in any_page()) {
        let pages = [(PAGE1, p1), (PAGE2, p2)];
        let refs = entry_refs(&pages);
        let f = validate_server(&meta, META_URL, &refs);
        for x in &f {
            let doc = if x.url == META_URL { &meta } else if x.url == PAGE1 { &pages[0].1 } else { &pages[1].1 };
            check_findings(std::slice::from_ref(x), doc, &[META_URL, PAGE1, PAGE2])?;
        }
    }
}

// ---- GeoJSON territories ----

fn in_wgs84(c: &Coord<f64>) -> bool {
    c.x.is_finite()
        && c.y.is_finite()
        && (-180.0..=180.0).contains(&c.x)
        && (-90.0..=90.0).contains(&c.y)
}

fn coords(mp: &MultiPolygon<f64>) -> Vec<Coord<f64>> {
    mp.0.iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
        .flat_map(|r| r.0.iter().copied())
        .collect()
}

fn exterior_bbox(mp: &MultiPolygon<f64>) -> [f64; 4] {
    let ext: Vec<Coord<f64>> =
        mp.0.iter()
            .flat_map(|p| p.exterior().0.iter().copied())
            .collect();
    [
        ext.iter().map(|c| c.x).fold(f64::INFINITY, f64::min),
        ext.iter().map(|c| c.y).fold(f64::INFINITY, f64::min),
        ext.iter().map(|c| c.x).fold(f64::NEG_INFINITY, f64::max),
        ext.iter().map(|c| c.y).fold(f64::NEG_INFINITY, f64::max),
    ]
}

/// The invariants of any result of `parse_territory`.
fn check_territory(
    doc: &Value,
) -> Result<Option<cds_registry::territory::Territory>, TestCaseError> {
    let (t, findings) = parse_territory(doc, GEO_URL);
    check_findings(&findings, doc, &[GEO_URL])?;
    let crs = findings.iter().any(|f| f.rule == "GEO-CRS");
    match &t {
        Some(t) => {
            prop_assert!(!crs, "a territory despite GEO-CRS: {findings:?}");
            prop_assert!(!t.geometry.0.is_empty());
            let all = coords(&t.geometry);
            prop_assert!(all.iter().all(in_wgs84), "{all:?}");
            prop_assert_eq!(t.vertex_count, all.len());
            // The bbox is the exterior rings' (holes only remove area; a hole outside its
            // shell is invalid GeoJSON and does not widen the territory).
            prop_assert_eq!(t.bbox, exterior_bbox(&t.geometry));
            for p in &t.geometry.0 {
                for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                    prop_assert!(r.0.len() >= 4, "short ring kept: {r:?}");
                    prop_assert_eq!(r.0.first(), r.0.last(), "open ring kept");
                }
            }
        }
        None => prop_assert!(
            findings
                .iter()
                .any(|f| f.rule == "GEO-CRS" || f.rule == "GEO-NO-POLYGON"),
            "no territory and no reason: {findings:?}"
        ),
    }
    Ok(t)
}

/// A ring of 4..10 random WGS 84 positions, closed.
fn arb_ring() -> impl Strategy<Value = Vec<[f64; 2]>> {
    prop::collection::vec((-180.0f64..=180.0, -90.0f64..=90.0), 4..10).prop_map(|mut v| {
        v.push(v[0]);
        v.into_iter().map(|(x, y)| [x, y]).collect()
    })
}

/// MultiPolygon coordinates: 1..4 polygons of 1..3 rings.
fn arb_polygons() -> impl Strategy<Value = Vec<Vec<Vec<[f64; 2]>>>> {
    prop::collection::vec(prop::collection::vec(arb_ring(), 1..3), 1..4)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn territory_invariants_hold_for_any_json(doc in prop_oneof![near_geojson(), arb_json()]) {
        check_territory(&doc)?;
    }

    #[test]
    fn valid_multipolygons_become_territories(polys in arb_polygons()) {
        let doc = json!({"type": "MultiPolygon", "coordinates": polys});
        let t = check_territory(&doc)?;
        let t = t.ok_or_else(|| TestCaseError::fail("valid MultiPolygon rejected"))?;
        prop_assert_eq!(t.geometry.0.len(), polys.len());
        let n: usize = polys.iter().flatten().map(Vec::len).sum();
        prop_assert_eq!(t.vertex_count, n);
        let xs = polys.iter().flat_map(|p| &p[0]).map(|p| p[0]);
        let ys = polys.iter().flat_map(|p| &p[0]).map(|p| p[1]);
        prop_assert_eq!(t.bbox[0], xs.clone().fold(f64::INFINITY, f64::min));
        prop_assert_eq!(t.bbox[2], xs.fold(f64::NEG_INFINITY, f64::max));
        prop_assert_eq!(t.bbox[1], ys.clone().fold(f64::INFINITY, f64::min));
        prop_assert_eq!(t.bbox[3], ys.fold(f64::NEG_INFINITY, f64::max));
    }

    #[test]
    fn out_of_range_coordinates_are_geo_crs(
        polys in arb_polygons(),
        at in any::<(Index, Index, Index)>(),
        lat in any::<bool>(),
        excess in prop_oneof![1e-9f64..1.0, 1.0f64..1e7],
        negative in any::<bool>(),
    ) {
        let mut polys = polys;
        let i = at.0.index(polys.len());
        let j = at.1.index(polys[i].len());
        let k = at.2.index(polys[i][j].len());
        let limit = if lat { 90.0 } else { 180.0 };
        let bad = if negative { -limit - excess } else { limit + excess };
        polys[i][j][k][usize::from(lat)] = bad;
        let doc = json!({"type": "MultiPolygon", "coordinates": polys});
        let (t, findings) = parse_territory(&doc, GEO_URL);
        prop_assert!(t.is_none());
        let crs: Vec<&Finding> = findings.iter().filter(|f| f.rule == "GEO-CRS").collect();
        prop_assert_eq!(crs.len(), 1, "{:?}", findings);
        prop_assert_eq!(&crs[0].pointer, &format!("/coordinates/{i}/{j}/{k}"));
    }
}

// ---- WKB ----

fn to_multipolygon(polys: &[Vec<Vec<[f64; 2]>>]) -> MultiPolygon<f64> {
    MultiPolygon(
        polys
            .iter()
            .map(|rings| {
                let mut rings: Vec<LineString<f64>> = rings
                    .iter()
                    .map(|r| LineString(r.iter().map(|&[x, y]| Coord { x, y }).collect()))
                    .collect();
                let ext = rings.remove(0);
                Polygon::new(ext, rings)
            })
            .collect(),
    )
}

/// Our reader also takes big-endian WKB (other writers produce it).
fn to_wkb_big_endian(mp: &MultiPolygon<f64>) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&6u32.to_be_bytes());
    out.extend_from_slice(&(mp.0.len() as u32).to_be_bytes());
    for p in &mp.0 {
        out.push(0);
        out.extend_from_slice(&3u32.to_be_bytes());
        out.extend_from_slice(&((1 + p.interiors().len()) as u32).to_be_bytes());
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            out.extend_from_slice(&(ring.0.len() as u32).to_be_bytes());
            for c in &ring.0 {
                out.extend_from_slice(&c.x.to_be_bytes());
                out.extend_from_slice(&c.y.to_be_bytes());
            }
        }
    }
    out
}

/// Bytes that look like WKB: a valid header, then counts (often huge) and noise.
fn wkb_like() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![0u8, 1, 2]),
        prop::sample::select(vec![3u32, 6, 1, 0x2000_0006]),
        prop::collection::vec(
            prop_oneof![any::<u32>(), 0u32..4, Just(u32::MAX), Just(0x1000_0000)],
            0..6,
        ),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(order, ty, counts, tail)| {
            let le = order != 0;
            let mut b = vec![order];
            let put = |b: &mut Vec<u8>, x: u32| {
                b.extend_from_slice(&if le { x.to_le_bytes() } else { x.to_be_bytes() })
            };
            put(&mut b, ty);
            for c in counts {
                put(&mut b, c);
            }
            b.extend(tail);
            b
        })
}

fn check_wkb_reader(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (res, largest) = largest_allocation(|| from_wkb(bytes).map(|mp| mp.0.len()));
    // Every count is bounded by the bytes left, so no single allocation can be much
    // larger than the input (a Polygon is 48 bytes for at least 9 input bytes).
    prop_assert!(
        largest <= 8 * bytes.len() + 1024,
        "{largest} bytes allocated at once for {} input bytes ({res:?})",
        bytes.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wkb_round_trips(polys in prop::collection::vec(prop::collection::vec(arb_ring(), 1..4), 0..4)) {
        let mp = to_multipolygon(&polys);
        let wkb = to_wkb(&mp);
        prop_assert_eq!(&from_wkb(&wkb).unwrap(), &mp);
        prop_assert_eq!(&from_wkb(&to_wkb_big_endian(&mp)).unwrap(), &mp);
        // Every strict prefix is an error, not a panic or a partial geometry.
        for cut in [0, 1, 5, wkb.len() / 2, wkb.len().saturating_sub(1)] {
            if cut < wkb.len() {
                prop_assert!(from_wkb(&wkb[..cut]).is_err(), "prefix {cut} of {}", wkb.len());
            }
        }
    }

    #[test]
    fn wkb_reader_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_wkb_reader(&bytes)?;
    }

    #[test]
    fn wkb_reader_bounds_corrupt_counts(bytes in wkb_like()) {
        check_wkb_reader(&bytes)?;
    }

    #[test]
    fn wkb_reader_survives_corrupted_valid_wkb(
        polys in arb_polygons(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        let mut wkb = to_wkb(&to_multipolygon(&polys));
        for (at, x) in edits {
            let i = at.index(wkb.len());
            wkb[i] = x;
        }
        check_wkb_reader(&wkb)?;
    }
}

// ---- seeds ----

const SEED_LINES: &[&str] = &[
    "",
    "   ",
    "# utilities",
    "example-utility.com",
    "Example-Utility.COM",
    "example-utility.com:8443",
    "example-utility.com:443",
    "  demo.example  # a comment",
    "https://x.example/cds.json",
    "HTTPS://X.EXAMPLE:443/a/../cds.json?x=1",
    "http://127.0.0.1:8080/.well-known/cds-server-metadata.json",
    "127.0.0.2:8080",
    "[::1]:8080",
    "[::1]",
    "xn--bcher-kva.example",
    "BÜCHER.example",
    "a.example.",
    "ftp://x.example/",
    "https://user:pw@x.example/",
    "host.example/path",
    "a b",
    "https://",
    "%41.example",
    "a.example:99999",
    "a.example:",
    "a.example?x",
];

fn arb_seeds_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        3 => prop::sample::select(SEED_LINES).prop_map(str::to_owned),
        1 => ".{0,30}",
        1 => "[a-zA-Z0-9.:/\\[\\]#@%-]{0,30}",
    ];
    (
        prop::collection::vec(line, 0..8),
        prop::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(|(lines, nl)| lines.join(nl))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn seeds_parse_to_normalised_unique_keys(text in arb_seeds_text()) {
        match parse_seeds(&text) {
            Ok(seeds) => {
                for (i, s) in seeds.iter().enumerate() {
                    prop_assert!(!seeds[..i].contains(s), "duplicate {s:?}");
                    prop_assert!(!s.key().is_empty());
                    match s {
                        Seed::Url(u) => prop_assert!(
                            u.starts_with("http://") || u.starts_with("https://"), "{u}"
                        ),
                        Seed::Host(h) | Seed::Origin { host: h, .. } => prop_assert!(
                            !h.contains('/') && !h.contains(char::is_whitespace)
                                && *h == h.to_lowercase() && !h.ends_with('.'),
                            "{h}"
                        ),
                    }
                    // The stored key is a fixed point: it parses back to the same key (an
                    // origin's key is its bare host, which means the same host).
                    let back = parse_seed(s.key());
                    prop_assert_eq!(back.as_ref().map(Seed::key), Ok(s.key()), "key {:?}", s.key());
                    if !matches!(s, Seed::Origin { .. }) {
                        prop_assert_eq!(&back, &Ok(s.clone()), "key {:?}", s.key());
                    }
                }
            }
            Err(SeedErrors(errors)) => {
                prop_assert!(!errors.is_empty());
                for SeedError::Invalid { line, .. } in errors {
                    prop_assert!(line >= 1 && line <= text.lines().count(), "line {line}");
                }
            }
        }
    }
}

// ---- regression cases (inputs proptest found; none yet beyond the fixed examples) ----

#[test]
fn lenient_keeps_strings_with_comma_brackets_intact() {
    let (v, how) = lenient::parse(b"[\"a,]\", \"\\\",}\",]").unwrap();
    assert_eq!(how, Parsed::Lenient);
    assert_eq!(v, json!(["a,]", "\",}"]));
}

#[test]
fn wkb_with_a_huge_count_is_an_error_without_a_huge_allocation() {
    for bytes in [
        &[1u8, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff][..],
        &[1, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        &[0, 0, 0, 0, 3, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff],
    ] {
        let (r, largest) = largest_allocation(|| from_wkb(bytes).is_err());
        assert!(r);
        assert!(largest < 1024, "{largest}");
    }
    // The tracker does see the reader's allocations: 1000 positions are 16,000 bytes.
    let ring: Vec<[f64; 2]> = (0..1000).map(|i| [f64::from(i) / 10.0, 0.0]).collect();
    let wkb = to_wkb(&to_multipolygon(&[vec![ring]]));
    let (r, largest) = largest_allocation(|| from_wkb(&wkb).is_ok());
    assert!(r);
    assert!(largest >= 16_000, "{largest}");
}
