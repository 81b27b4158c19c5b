//! The territory parser as it was before reading became bounded (a `serde_json::Value`
//! walk with geo's O(n²) `validation_errors()`), kept only as the oracle the bounded one
//! is compared with.

use geo::orient::{Direction, Orient};
use geo::{Coord, LineString, MultiPolygon, Polygon, Validation};
use serde_json::Value;

use super::Territory;
use crate::cds::Finding;
use crate::geojson::walk::{close_ring, conclude, invalid, OutOfRange};

/// geo's brute-force rule for one ring.
pub(crate) fn ring_self_intersects(ring: &[Coord<f64>]) -> bool {
    Polygon::new(LineString(ring.to_vec()), vec![])
        .validation_errors()
        .iter()
        .any(|e| {
            matches!(
                e,
                geo::algorithm::validation::InvalidPolygon::SelfIntersection(_)
            )
        })
}

pub(crate) fn parse_territory(doc: &Value, url: &str) -> (Option<Territory>, Vec<Finding>) {
    let mut p = Parser {
        url,
        polygons: Vec::new(),
        findings: Vec::new(),
        out_of_range: None,
    };
    p.object(doc, String::new(), 0);
    // Orient rings (exterior CCW, holes CW): the interval-tree point-in-polygon in the
    // index gives wrong answers on unoriented input (measured, see CRATES.md).
    let polygons = MultiPolygon(p.polygons).orient(Direction::Default).0;
    conclude(url, polygons, p.findings, p.out_of_range)
}

/// Nesting deeper than this is not a territory but an attack on the stack.
const MAX_DEPTH: usize = 16;

struct Parser<'a> {
    url: &'a str,
    polygons: Vec<Polygon<f64>>,
    findings: Vec<Finding>,
    out_of_range: OutOfRange,
}

impl Parser<'_> {
    fn invalid(&mut self, pointer: String, message: impl Into<String>) {
        self.findings.push(invalid(self.url, pointer, message));
    }

    fn object(&mut self, v: &Value, ptr: String, depth: usize) {
        if depth > MAX_DEPTH {
            self.invalid(ptr, "GeoJSON nested too deeply; ignored");
            return;
        }
        match v.get("type").and_then(Value::as_str) {
            Some("FeatureCollection") => {
                if let Some(fs) = v.get("features").and_then(Value::as_array) {
                    for (i, f) in fs.iter().enumerate() {
                        self.object(f, format!("{ptr}/features/{i}"), depth + 1);
                    }
                }
            }
            Some("Feature") => {
                if let Some(g) = v.get("geometry").filter(|g| !g.is_null()) {
                    self.object(g, format!("{ptr}/geometry"), depth + 1);
                }
            }
            Some("GeometryCollection") => {
                if let Some(gs) = v.get("geometries").and_then(Value::as_array) {
                    for (i, g) in gs.iter().enumerate() {
                        self.object(g, format!("{ptr}/geometries/{i}"), depth + 1);
                    }
                }
            }
            Some("Polygon") => {
                let cptr = format!("{ptr}/coordinates");
                if let Some(poly) = v.get("coordinates").and_then(|c| self.polygon(c, cptr)) {
                    self.polygons.push(poly);
                }
            }
            Some("MultiPolygon") => match v.get("coordinates").and_then(Value::as_array) {
                Some(polys) => {
                    for (i, c) in polys.iter().enumerate() {
                        if let Some(poly) = self.polygon(c, format!("{ptr}/coordinates/{i}")) {
                            self.polygons.push(poly);
                        }
                    }
                }
                None => self.invalid(
                    format!("{ptr}/coordinates"),
                    "MultiPolygon without coordinates",
                ),
            },
            // Points and lines are legal GeoJSON but no territory: GEO-NO-POLYGON if nothing else.
            _ => {}
        }
    }

    /// One Polygon's rings; `None` when its exterior ring is unusable.
    fn polygon(&mut self, c: &Value, ptr: String) -> Option<Polygon<f64>> {
        let Some(rings) = c.as_array() else {
            self.invalid(ptr, "Polygon coordinates are not an array of rings");
            return None;
        };
        let mut parsed = Vec::with_capacity(rings.len());
        for (i, r) in rings.iter().enumerate() {
            let rptr = format!("{ptr}/{i}");
            match self.ring(r, &rptr) {
                Some(ls) => parsed.push(ls),
                None if i == 0 => {
                    // Out-of-range coordinates are reported once, as GEO-CRS.
                    if self.out_of_range.is_none() {
                        self.invalid(rptr, "exterior ring unusable; polygon skipped");
                    }
                    return None;
                }
                None => {}
            }
        }
        if parsed.is_empty() {
            self.invalid(ptr, "Polygon without rings skipped");
            return None;
        }
        let exterior = parsed.remove(0);
        let poly = Polygon::new(exterior, parsed);
        // RFC 7946 §3.1.6: rings must not self-intersect. Such a ring is still usable for
        // point-in-polygon (even-odd), so we keep it and warn.
        if poly.validation_errors().iter().any(|e| {
            matches!(
                e,
                geo::algorithm::validation::InvalidPolygon::SelfIntersection(_)
            )
        }) {
            self.invalid(ptr, "a ring intersects itself");
        }
        Some(poly)
    }

    /// One linear ring: positions checked for WGS 84 ranges, closed if open (with a
    /// warning), skipped when it has fewer than 4 positions (RFC 7946 §3.1.6).
    fn ring(&mut self, r: &Value, ptr: &str) -> Option<LineString<f64>> {
        let Some(positions) = r.as_array() else {
            self.invalid(ptr.to_owned(), "ring is not an array of positions");
            return None;
        };
        let mut coords = Vec::with_capacity(positions.len() + 1);
        for (i, pos) in positions.iter().enumerate() {
            let xy = pos
                .as_array()
                .and_then(|a| Some((a.first()?.as_f64()?, a.get(1)?.as_f64()?)));
            let Some((x, y)) = xy else {
                self.invalid(format!("{ptr}/{i}"), "position is not [lon, lat]");
                return None;
            };
            if !(x.is_finite()
                && y.is_finite()
                && (-180.0..=180.0).contains(&x)
                && (-90.0..=90.0).contains(&y))
            {
                if self.out_of_range.is_none() {
                    self.out_of_range = Some((format!("{ptr}/{i}"), x, y));
                }
                return None;
            }
            coords.push(Coord { x, y });
        }
        close_ring(coords, |m| self.invalid(ptr.to_owned(), m))
    }
}
