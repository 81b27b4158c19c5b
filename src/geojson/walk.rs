//! Walking the nodes of one document as GeoJSON objects: Polygons and MultiPolygons,
//! wherever they stand in Features and collections, become oriented polygons; every
//! defect becomes a finding with the JSON pointer of where it stands.

use geo::winding_order::Winding;
use geo::{Coord, LineString, MultiPolygon, Polygon};

use super::node::{Elements, Item, Node};
use super::{Abort, Budget};
use crate::cds::validate::rules;
use crate::cds::{Finding, Severity};
use crate::territory::{sweep, Territory};

pub(super) fn interpret(
    item: Item,
    url: &str,
    budget: &Budget,
) -> Result<(Option<Territory>, Vec<Finding>), Abort> {
    let mut p = Parser {
        url,
        budget,
        polygons: Vec::new(),
        findings: Vec::new(),
        suppressed: 0,
        out_of_range: None,
    };
    p.object(item, String::new(), 0)?;
    if p.suppressed > 0 {
        p.findings.push(Finding::new(
            rules::GEO_INVALID,
            Severity::Warning,
            url,
            "",
            format!("{} more problems of this kind not listed", p.suppressed),
        ));
    }
    // Rings were oriented as they were built (exterior CCW, holes CW): the interval-tree
    // point-in-polygon in the index gives wrong answers on unoriented input (measured,
    // see CRATES.md).
    Ok(conclude(url, p.polygons, p.findings, p.out_of_range))
}

/// A `GEO-INVALID` warning: a defect that was repaired, or a part that was skipped.
pub(crate) fn invalid(url: &str, pointer: String, message: impl Into<String>) -> Finding {
    Finding::new(rules::GEO_INVALID, Severity::Warning, url, pointer, message)
}

/// Where an out-of-range position stands, and its longitude and latitude.
pub(crate) type OutOfRange = Option<(String, f64, f64)>;

/// The territory a walk found, or none with the finding that says why: a position out of
/// WGS 84 ranges rejects the whole file, and a file may hold no usable polygon at all.
pub(crate) fn conclude(
    url: &str,
    polygons: Vec<Polygon<f64>>,
    mut findings: Vec<Finding>,
    out_of_range: OutOfRange,
) -> (Option<Territory>, Vec<Finding>) {
    if let Some((pointer, lon, lat)) = out_of_range {
        // RFC 7946 §4: WGS 84 only. Out-of-range numbers usually mean a projected CRS,
        // so any answer computed from them would be wrong: reject the whole file.
        findings.push(
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
        return (None, findings);
    }
    if polygons.is_empty() {
        findings.push(Finding::new(
            rules::GEO_NO_POLYGON,
            Severity::Error,
            url,
            "",
            "the GeoJSON holds no usable Polygon or MultiPolygon",
        ));
        return (None, findings);
    }
    (Territory::from_geometry(MultiPolygon(polygons)), findings)
}

/// A ring's positions as a linear ring (RFC 7946 §3.1.6): closed if open, refused when it
/// has fewer than 4 positions; `invalid` hears of either.
pub(crate) fn close_ring(
    mut coords: Vec<Coord<f64>>,
    mut invalid: impl FnMut(&'static str),
) -> Option<LineString<f64>> {
    if coords.len() >= 2 && coords.first() != coords.last() {
        invalid("ring is not closed; closed it");
        coords.push(coords[0]);
    }
    if coords.len() < 4 {
        invalid("ring has fewer than 4 positions; skipped");
        return None;
    }
    Some(LineString(coords))
}

/// Nesting deeper than this is not a territory but an attack on the stack.
const MAX_DEPTH: usize = 16;

/// `GEO-INVALID` warnings listed per document; the rest are counted in one more finding
/// (a document of a million broken polygons must not become a million findings).
pub(crate) const MAX_LISTED_FINDINGS: usize = 100;

struct Parser<'a> {
    url: &'a str,
    budget: &'a Budget,
    polygons: Vec<Polygon<f64>>,
    findings: Vec<Finding>,
    suppressed: usize,
    out_of_range: OutOfRange,
}

impl Parser<'_> {
    fn invalid(&mut self, pointer: String, message: impl Into<String>) {
        if self.findings.len() >= MAX_LISTED_FINDINGS {
            self.suppressed += 1;
            return;
        }
        self.findings.push(invalid(self.url, pointer, message));
    }

    /// A GeoJSON object; `None` stands for any scalar.
    fn object(&mut self, v: Item, ptr: String, depth: usize) -> Result<(), Abort> {
        if depth > MAX_DEPTH {
            self.invalid(ptr, "GeoJSON nested too deeply; ignored");
            return Ok(());
        }
        self.budget.tick(1)?;
        let Item::Node(Node::Obj(o)) = v else {
            return Ok(());
        };
        let o = *o;
        match o.ty.as_deref() {
            Some("FeatureCollection") => {
                if let Some(fs) = o.features.and_then(Elements::of) {
                    for (i, f) in fs {
                        self.object(node_item(f), format!("{ptr}/features/{i}"), depth + 1)?;
                    }
                }
            }
            Some("Feature") => {
                if let Some(g) = o.geometry.filter(|g| !matches!(g, Item::Null)) {
                    self.object(g, format!("{ptr}/geometry"), depth + 1)?;
                }
            }
            Some("GeometryCollection") => {
                if let Some(gs) = o.geometries.and_then(Elements::of) {
                    for (i, g) in gs {
                        self.object(node_item(g), format!("{ptr}/geometries/{i}"), depth + 1)?;
                    }
                }
            }
            Some("Polygon") => {
                if let Some(c) = o.coordinates {
                    if let Some(poly) = self.polygon(c, format!("{ptr}/coordinates"))? {
                        self.polygons.push(poly);
                    }
                }
            }
            Some("MultiPolygon") => match o.coordinates.and_then(Elements::of) {
                Some(polys) => {
                    for (i, c) in polys {
                        let cptr = format!("{ptr}/coordinates/{i}");
                        if let Some(poly) = self.polygon(node_item(c), cptr)? {
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
        Ok(())
    }

    /// One Polygon's rings, oriented; `None` when its exterior ring is unusable.
    fn polygon(&mut self, c: Item, ptr: String) -> Result<Option<Polygon<f64>>, Abort> {
        let Some(rings) = Elements::of(c) else {
            self.invalid(ptr, "Polygon coordinates are not an array of rings");
            return Ok(None);
        };
        let mut parsed = Vec::new();
        for (i, r) in rings {
            let rptr = format!("{ptr}/{i}");
            match self.ring(r, &rptr)? {
                Some(ls) => parsed.push(ls),
                None if i == 0 => {
                    // Out-of-range coordinates are reported once, as GEO-CRS.
                    if self.out_of_range.is_none() {
                        self.invalid(rptr, "exterior ring unusable; polygon skipped");
                    }
                    return Ok(None);
                }
                None => {}
            }
        }
        if parsed.is_empty() {
            self.invalid(ptr, "Polygon without rings skipped");
            return Ok(None);
        }
        // RFC 7946 §3.1.6: rings must not self-intersect. Such a ring is still usable for
        // point-in-polygon (even-odd), so we keep it and warn.
        let mut crossed = false;
        for r in &parsed {
            if sweep::ring_self_intersects(&r.0, self.budget)? {
                crossed = true;
                break;
            }
        }
        if crossed {
            self.invalid(ptr, "a ring intersects itself");
        }
        let mut rings = parsed.into_iter();
        let mut exterior = rings.next().expect("not empty");
        // RFC 7946 §3.1.6 right-hand rule (exterior CCW, holes CW), in place.
        exterior.make_ccw_winding();
        let interiors = rings
            .map(|mut r| {
                r.make_cw_winding();
                r
            })
            .collect();
        Ok(Some(Polygon::new(exterior, interiors)))
    }

    /// One linear ring: positions checked for WGS 84 ranges, closed if open (with a
    /// warning), skipped when it has fewer than 4 positions (RFC 7946 §3.1.6).
    fn ring(&mut self, r: Option<Node>, ptr: &str) -> Result<Option<LineString<f64>>, Abort> {
        let coords = match r {
            Some(Node::Ring(coords)) => coords,
            Some(n @ (Node::Arr { .. } | Node::Pos(_))) => {
                let mut coords = Vec::new();
                for (i, pos) in Elements::of_node(n).into_iter().flatten() {
                    let Some(Node::Pos(c)) = pos else {
                        self.invalid(format!("{ptr}/{i}"), "position is not [lon, lat]");
                        return Ok(None);
                    };
                    // Positions are judged in order: the first defect decides.
                    if !in_wgs84(&c) {
                        if self.out_of_range.is_none() {
                            self.out_of_range = Some((format!("{ptr}/{i}"), c.x, c.y));
                        }
                        return Ok(None);
                    }
                    coords.push(c);
                }
                coords
            }
            _ => {
                self.invalid(ptr.to_owned(), "ring is not an array of positions");
                return Ok(None);
            }
        };
        self.budget
            .tick(coords.len().min(u32::MAX as usize) as u32)?;
        if let Some(i) = coords.iter().position(|c| !in_wgs84(c)) {
            if self.out_of_range.is_none() {
                self.out_of_range = Some((format!("{ptr}/{i}"), coords[i].x, coords[i].y));
            }
            return Ok(None);
        }
        Ok(close_ring(coords, |m| self.invalid(ptr.to_owned(), m)))
    }
}

fn node_item(n: Option<Node>) -> Item {
    n.map_or(Item::Scalar, Item::Node)
}

fn in_wgs84(c: &Coord<f64>) -> bool {
    super::request::check_lon_lat(c.x, c.y).is_ok()
}
