//! GeoJSON territories: any GeoJSON object in, one oriented `geo::MultiPolygon` out, plus
//! the findings the spec asks for (CDS-SPEC-NOTES §5), and a WKB codec for storage.
//!
//! We read GeoJSON from `serde_json::Value` ourselves instead of through a GeoJSON crate so
//! that every defect becomes a classified finding with a JSON pointer (a crate would give
//! one opaque error), and so a broken ring is skipped or repaired instead of failing the
//! whole file.

use geo::orient::{Direction, Orient};
use geo::{BoundingRect, Coord, LineString, MultiPolygon, Polygon, Validation};
use serde_json::Value;

use crate::cds::validate::rules;
use crate::cds::{Finding, Severity};

/// A parsed, oriented territory with the facts we store next to its WKB.
#[derive(Debug, Clone, PartialEq)]
pub struct Territory {
    pub geometry: MultiPolygon<f64>,
    /// `[min_lon, min_lat, max_lon, max_lat]` (planar; see the index for the antimeridian).
    pub bbox: [f64; 4],
    /// Number of stored positions (closing positions included, as in GeoJSON).
    pub vertex_count: usize,
}

impl Territory {
    pub fn from_geometry(geometry: MultiPolygon<f64>) -> Option<Territory> {
        let rect = geometry.bounding_rect()?;
        let vertex_count = geometry
            .0
            .iter()
            .map(|p| p.exterior().0.len() + p.interiors().iter().map(|r| r.0.len()).sum::<usize>())
            .sum();
        Some(Territory {
            bbox: [rect.min().x, rect.min().y, rect.max().x, rect.max().y],
            geometry,
            vertex_count,
        })
    }
}

/// Parse any GeoJSON object (Geometry, Feature, FeatureCollection, GeometryCollection) into
/// the union of its (Multi)Polygons. Returns `None` when no usable polygon is left or the
/// coordinates are not WGS 84; the findings say why.
pub fn parse_territory(doc: &Value, url: &str) -> (Option<Territory>, Vec<Finding>) {
    let mut p = Parser {
        url,
        polygons: Vec::new(),
        findings: Vec::new(),
        out_of_range: None,
    };
    p.object(doc, String::new(), 0);
    if let Some((pointer, lon, lat)) = p.out_of_range.take() {
        // RFC 7946 §4: WGS 84 only. Out-of-range numbers usually mean a projected CRS,
        // so any answer computed from them would be wrong: reject the whole file.
        p.findings.push(
            Finding::new(
                rules::GEO_CRS,
                Severity::Error,
                url,
                pointer,
                "coordinates outside WGS 84 longitude/latitude ranges (projected CRS?)",
            )
            .expected("lon -180..180, lat -90..90")
            .actual(format!("[{lon}, {lat}]")),
        );
        return (None, p.findings);
    }
    if p.polygons.is_empty() {
        p.findings.push(Finding::new(
            rules::GEO_NO_POLYGON,
            Severity::Error,
            url,
            "",
            "the GeoJSON holds no usable Polygon or MultiPolygon",
        ));
        return (None, p.findings);
    }
    // Orient rings (exterior CCW, holes CW): the interval-tree point-in-polygon in the
    // index gives wrong answers on unoriented input (measured, see CRATES.md).
    let mp = MultiPolygon(p.polygons).orient(Direction::Default);
    (Territory::from_geometry(mp), p.findings)
}

/// Nesting deeper than this is not a territory but an attack on the stack.
const MAX_DEPTH: usize = 16;

struct Parser<'a> {
    url: &'a str,
    polygons: Vec<Polygon<f64>>,
    findings: Vec<Finding>,
    out_of_range: Option<(String, f64, f64)>,
}

impl Parser<'_> {
    fn invalid(&mut self, pointer: String, message: impl Into<String>) {
        self.findings.push(Finding::new(
            rules::GEO_INVALID,
            Severity::Warning,
            self.url,
            pointer,
            message,
        ));
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
        if coords.len() >= 2 && coords.first() != coords.last() {
            self.invalid(ptr.to_owned(), "ring is not closed; closed it");
            coords.push(coords[0]);
        }
        if coords.len() < 4 {
            self.invalid(ptr.to_owned(), "ring has fewer than 4 positions; skipped");
            return None;
        }
        Some(LineString(coords))
    }
}

// ---- WKB (OGC Simple Features, little-endian, 2D) ----

const WKB_POLYGON: u32 = 3;
const WKB_MULTIPOLYGON: u32 = 6;

/// Encode as a WKB MultiPolygon (little-endian).
pub fn to_wkb(mp: &MultiPolygon<f64>) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(1u8);
    out.extend_from_slice(&WKB_MULTIPOLYGON.to_le_bytes());
    out.extend_from_slice(&(mp.0.len() as u32).to_le_bytes());
    for p in &mp.0 {
        out.push(1u8);
        out.extend_from_slice(&WKB_POLYGON.to_le_bytes());
        out.extend_from_slice(&((1 + p.interiors().len()) as u32).to_le_bytes());
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            out.extend_from_slice(&(ring.0.len() as u32).to_le_bytes());
            for c in &ring.0 {
                out.extend_from_slice(&c.x.to_le_bytes());
                out.extend_from_slice(&c.y.to_le_bytes());
            }
        }
    }
    out
}

/// Why stored WKB could not be read (only our own writer produces it, so this means
/// corruption).
#[derive(Debug, thiserror::Error)]
#[error("invalid WKB at byte {0}")]
pub struct WkbError(usize);

struct WkbReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl WkbReader<'_> {
    fn take<const N: usize>(&mut self, le: bool) -> Result<[u8; N], WkbError> {
        let s = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or(WkbError(self.pos))?;
        self.pos += N;
        let mut a: [u8; N] = s.try_into().map_err(|_| WkbError(self.pos))?;
        if !le {
            a.reverse();
        }
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WkbError> {
        Ok(self.take::<1>(true)?[0])
    }
    fn u32(&mut self, le: bool) -> Result<u32, WkbError> {
        Ok(u32::from_le_bytes(self.take(le)?))
    }
    fn f64(&mut self, le: bool) -> Result<f64, WkbError> {
        Ok(f64::from_le_bytes(self.take(le)?))
    }
    /// A count, bounded by what the remaining bytes could hold (a corrupt count must not
    /// make us allocate gigabytes).
    fn count(&mut self, le: bool, min_item_size: usize) -> Result<usize, WkbError> {
        let n = self.u32(le)? as usize;
        if n.saturating_mul(min_item_size) > self.buf.len() - self.pos {
            return Err(WkbError(self.pos));
        }
        Ok(n)
    }
    fn header(&mut self) -> Result<(bool, u32), WkbError> {
        let le = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(WkbError(self.pos - 1)),
        };
        Ok((le, self.u32(le)?))
    }
    fn polygon_body(&mut self, le: bool) -> Result<Polygon<f64>, WkbError> {
        let nrings = self.count(le, 4)?;
        let mut rings = Vec::with_capacity(nrings);
        for _ in 0..nrings {
            let npts = self.count(le, 16)?;
            let mut coords = Vec::with_capacity(npts);
            for _ in 0..npts {
                coords.push(Coord {
                    x: self.f64(le)?,
                    y: self.f64(le)?,
                });
            }
            rings.push(LineString(coords));
        }
        if rings.is_empty() {
            return Ok(Polygon::new(LineString(vec![]), vec![]));
        }
        let ext = rings.remove(0);
        Ok(Polygon::new(ext, rings))
    }
}

/// Decode a WKB Polygon or MultiPolygon.
pub fn from_wkb(buf: &[u8]) -> Result<MultiPolygon<f64>, WkbError> {
    let mut r = WkbReader { buf, pos: 0 };
    let (le, ty) = r.header()?;
    match ty {
        WKB_POLYGON => Ok(MultiPolygon(vec![r.polygon_body(le)?])),
        WKB_MULTIPOLYGON => {
            let n = r.count(le, 9)?;
            let mut polys = Vec::with_capacity(n);
            for _ in 0..n {
                let (ple, pty) = r.header()?;
                if pty != WKB_POLYGON {
                    return Err(WkbError(r.pos));
                }
                polys.push(r.polygon_body(ple)?);
            }
            Ok(MultiPolygon(polys))
        }
        _ => Err(WkbError(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let d = json!({"type": "Polygon", "coordinates": serde_json::from_str::<Value>(SQUARE).unwrap()});
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
        let d =
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]});
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
        assert_eq!(from_wkb(&wkb).unwrap(), g);
        assert!(from_wkb(&wkb[..wkb.len() - 3]).is_err());
        assert!(from_wkb(&[1, 6, 0, 0, 0, 255, 255, 255, 255]).is_err());
        assert!(from_wkb(&[]).is_err());
    }
}
