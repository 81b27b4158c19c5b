//! GeoJSON → territory: never panics; a territory has finite WGS 84 coordinates and its
//! bbox; it survives the WKB round trip.
#![no_main]

use cds_registry::territory::{from_wkb, parse_territory, to_wkb};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (t, findings) = parse_territory(&doc, "https://util.example/t.geojson");
    for f in &findings {
        assert!(!f.rule.is_empty());
        assert!(f.pointer.is_empty() || f.pointer.starts_with('/'));
    }
    let Some(t) = t else {
        return;
    };
    assert!(!findings.iter().any(|f| f.rule == "GEO-CRS"));
    let [x0, y0, x1, y1] = t.bbox;
    assert!(x0 <= x1 && y0 <= y1, "{:?}", t.bbox);
    for p in &t.geometry.0 {
        for r in std::iter::once(p.exterior()).chain(p.interiors()) {
            for c in &r.0 {
                assert!(c.x.is_finite() && c.y.is_finite());
                assert!((-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y));
            }
        }
        for c in &p.exterior().0 {
            assert!(x0 <= c.x && c.x <= x1 && y0 <= c.y && c.y <= y1);
        }
    }
    assert_eq!(from_wkb(&to_wkb(&t.geometry)).unwrap(), t.geometry);
});
