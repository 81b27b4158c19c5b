//! GeoJSON territories: any GeoJSON object in, one oriented `geo::MultiPolygon` out, plus
//! the findings the spec asks for (CDS-SPEC-NOTES §5), and a WKB codec for storage.
//!
//! We read GeoJSON ourselves instead of through a GeoJSON crate so that every defect
//! becomes a classified finding with a JSON pointer (a crate would give one opaque error),
//! and so a broken ring is skipped or repaired instead of failing the whole file.
//!
//! A territory is untrusted input of up to `crawl.max_geojson_bytes`, so its cost is
//! bounded ([`GeoLimits`]): the JSON is read straight into compact coordinate vectors (no
//! `serde_json::Value` tree, which costs several times the body), positions are counted
//! while reading so an oversized document stops early (`GEO-TOO-LARGE`), the
//! self-intersection check is a sweep line (O(n log n), see [`sweep`]), and every long loop
//! looks at a deadline (`GEO-TOO-COSTLY`).

use std::cell::Cell;
use std::fmt;
use std::time::Instant;

use geo::winding_order::Winding;
use geo::{BoundingRect, Coord, LineString, MultiPolygon, Polygon};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::cds::lenient::{self, Parsed};
use crate::cds::validate::{self, rules};
use crate::cds::{Finding, Severity};

pub mod sweep;

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

/// What one GeoJSON document may cost.
#[derive(Debug, Clone, Copy)]
pub struct GeoLimits {
    /// Positions a document may hold (nested arrays and objects count as one each, so a
    /// document of empty arrays is bounded too). More: `GEO-TOO-LARGE`.
    pub max_vertices: usize,
    /// When reading and validation must have finished. Later: `GEO-TOO-COSTLY`.
    pub deadline: Option<Instant>,
    /// The budget the deadline came from, for the finding's text.
    pub budget_ms: u64,
}

impl GeoLimits {
    /// For trusted input (fixtures, tests).
    pub const UNLIMITED: GeoLimits = GeoLimits {
        max_vertices: usize::MAX,
        deadline: None,
        budget_ms: 0,
    };
}

/// Why reading a document stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    TooLarge,
    TooCostly,
}

/// Work counter shared by the reader and the validator. The clock is read once per
/// `CLOCK_EVERY` units of work, so checking costs nothing measurable.
pub(crate) struct Budget {
    limits: GeoLimits,
    count: Cell<usize>,
    ticks: Cell<u32>,
    abort: Cell<Option<Abort>>,
}

const CLOCK_EVERY: u32 = 4096;

impl Budget {
    pub(crate) fn new(limits: GeoLimits) -> Budget {
        Budget {
            limits,
            count: Cell::new(0),
            ticks: Cell::new(0),
            abort: Cell::new(None),
        }
    }

    /// `n` more positions (or nodes) read.
    fn count(&self, n: usize) -> Result<(), Abort> {
        let c = self.count.get().saturating_add(n);
        self.count.set(c);
        if c > self.limits.max_vertices {
            return self.stop(Abort::TooLarge);
        }
        self.tick(n as u32)
    }

    /// `n` units of work done; errs once the deadline has passed.
    pub(crate) fn tick(&self, n: u32) -> Result<(), Abort> {
        let t = self.ticks.get().saturating_add(n);
        if t < CLOCK_EVERY {
            self.ticks.set(t);
            return Ok(());
        }
        self.ticks.set(0);
        match self.limits.deadline {
            Some(d) if Instant::now() >= d => self.stop(Abort::TooCostly),
            _ => Ok(()),
        }
    }

    fn stop(&self, a: Abort) -> Result<(), Abort> {
        self.abort.set(Some(a));
        Err(a)
    }
}

/// [`read_document`], with a body that is not JSON reported as `GEO-NO-POLYGON` (for
/// callers with no earlier state to fall back on).
pub fn parse_document(
    body: &[u8],
    url: &str,
    limits: GeoLimits,
) -> (Option<Territory>, Vec<Finding>) {
    read_document(body, url, limits).unwrap_or_else(|not_json| {
        let f = Finding::new(rules::GEO_NO_POLYGON, Severity::Error, url, "", not_json);
        (None, vec![f])
    })
}

/// Read one fetched GeoJSON document under `limits`: JSON (strict, else lenient with a
/// `JSON-LENIENT` finding), then [`parse_territory`]'s rules. A document over a limit
/// yields no territory and one `GEO-TOO-LARGE` or `GEO-TOO-COSTLY` error finding. A body
/// that is not JSON at all is `Err` with the reason: the crawler treats it as a linked
/// document that failed for good (CDS-SPEC-NOTES §5a, `COV-GEO-FETCH`), which keeps the
/// territory last read from the same URL.
pub fn read_document(
    body: &[u8],
    url: &str,
    limits: GeoLimits,
) -> Result<(Option<Territory>, Vec<Finding>), String> {
    let budget = Budget::new(limits);
    let read = |bytes: &[u8]| -> Result<Item, serde_json::Error> {
        if budget.abort.get().is_some() {
            // Never retry leniently after a limit: the second pass would cost as much.
            return Err(de::Error::custom("limit reached"));
        }
        budget.count.set(0);
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let item = ItemSeed(&budget).deserialize(&mut de)?;
        de.end()?;
        Ok(item)
    };
    let mut findings = Vec::new();
    let item = match lenient::parse_with(body, read) {
        Ok((item, p)) => {
            if p == Parsed::Lenient {
                findings.push(validate::finding_lenient_json(url));
            }
            item
        }
        Err(e) => {
            match budget.abort.get() {
                Some(a) => findings.push(abort_finding(a, url, limits)),
                None => return Err(format!("GeoJSON is not valid JSON: {e}")),
            }
            return Ok((None, findings));
        }
    };
    match interpret(item, url, &budget) {
        Ok((t, f)) => {
            findings.extend(f);
            Ok((t, findings))
        }
        Err(a) => {
            findings.push(abort_finding(a, url, limits));
            Ok((None, findings))
        }
    }
}

fn abort_finding(a: Abort, url: &str, limits: GeoLimits) -> Finding {
    match a {
        Abort::TooLarge => Finding::new(
            rules::GEO_TOO_LARGE,
            Severity::Error,
            url,
            "",
            format!(
                "the GeoJSON holds more than {} positions (crawl.max_territory_vertices); not stored",
                limits.max_vertices
            ),
        )
        .expected(format!("at most {} positions", limits.max_vertices)),
        Abort::TooCostly => Finding::new(
            rules::GEO_TOO_COSTLY,
            Severity::Error,
            url,
            "",
            format!(
                "reading and validating the GeoJSON took longer than {} ms (crawl.geojson_budget_ms); not stored",
                limits.budget_ms
            ),
        ),
    }
}

/// Parse any GeoJSON object (Geometry, Feature, FeatureCollection, GeometryCollection) into
/// the union of its (Multi)Polygons. Returns `None` when no usable polygon is left or the
/// coordinates are not WGS 84; the findings say why. No limits: for trusted input; the
/// crawler uses [`parse_document`].
pub fn parse_territory(doc: &Value, url: &str) -> (Option<Territory>, Vec<Finding>) {
    let budget = Budget::new(GeoLimits::UNLIMITED);
    let item = ItemSeed(&budget)
        .deserialize(doc)
        .expect("a Value always reads");
    interpret(item, url, &budget).expect("no limits, no abort")
}

/// Does this closed ring intersect itself (RFC 7946 §3.1.6), by the rule in [`sweep`]?
/// Unbounded: for benchmarks and trusted input.
pub fn ring_self_intersects(ring: &[Coord<f64>]) -> bool {
    sweep::ring_self_intersects(ring, &Budget::new(GeoLimits::UNLIMITED)).unwrap_or(true)
}

fn interpret(
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
        return Ok((None, p.findings));
    }
    if p.polygons.is_empty() {
        p.findings.push(Finding::new(
            rules::GEO_NO_POLYGON,
            Severity::Error,
            url,
            "",
            "the GeoJSON holds no usable Polygon or MultiPolygon",
        ));
        return Ok((None, p.findings));
    }
    // Rings were oriented as they were built (exterior CCW, holes CW): the interval-tree
    // point-in-polygon in the index gives wrong answers on unoriented input (measured,
    // see CRATES.md).
    Ok((
        Territory::from_geometry(MultiPolygon(p.polygons)),
        p.findings,
    ))
}

// ---- Reading: JSON straight into compact nodes ----
//
// Only what a territory can use is kept: the members `type`, `features`, `geometry`,
// `geometries` and `coordinates` of objects, arrays (scalars in them only counted), and
// positions, which are stored as bare coordinates; a ring of positions is one
// `Vec<Coord>` (16 bytes a position, less than its JSON text). Member order is free in
// JSON (sorted keys put `coordinates` before `type`), so coordinates are kept until the
// object ends.

/// One JSON value as the territory reader sees it.
enum Item {
    Null,
    Num(f64),
    /// A string or boolean: nothing a territory can use, except as `type`.
    Scalar,
    Node(Node),
}

enum Node {
    /// An array whose first two elements are numbers (any further ones are ignored, as
    /// RFC 7946 §3.1.1 allows altitude and more).
    Pos(Coord<f64>),
    /// A non-empty array of positions only.
    Ring(Vec<Coord<f64>>),
    /// Any other array: its length, and its array and object elements with their index.
    Arr {
        len: usize,
        items: Vec<(usize, Node)>,
    },
    Obj(Box<Obj>),
}

#[derive(Default)]
struct Obj {
    ty: Option<String>,
    features: Option<Item>,
    geometry: Option<Item>,
    geometries: Option<Item>,
    coordinates: Option<Item>,
}

struct ItemSeed<'b>(&'b Budget);

impl ItemSeed<'_> {
    fn counted<E: de::Error>(&self, n: Node) -> Result<Item, E> {
        self.0.count(1).map_err(|_| E::custom("limit reached"))?;
        Ok(Item::Node(n))
    }
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Item;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

/// Builds a generic array from its elements in order.
struct ArrBuilder {
    len: usize,
    items: Vec<(usize, Node)>,
}

impl ArrBuilder {
    fn push(&mut self, it: Item) {
        if let Item::Node(n) = it {
            self.items.push((self.len, n));
        }
        self.len += 1;
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
        Ok(Item::Scalar)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Item, E> {
        Ok(Item::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Item, E> {
        Ok(Item::Num(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Item, E> {
        Ok(Item::Num(v))
    }
    fn visit_str<E>(self, _: &str) -> Result<Item, E> {
        Ok(Item::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::Null)
    }
    fn visit_none<E>(self) -> Result<Item, E> {
        Ok(Item::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        let b = self.0;
        let mut arr = ArrBuilder {
            len: 0,
            items: Vec::new(),
        };
        match seq.next_element_seed(ItemSeed(b))? {
            None => {
                return self.counted(Node::Arr {
                    len: 0,
                    items: vec![],
                })
            }
            Some(Item::Num(x)) => match seq.next_element_seed(ItemSeed(b))? {
                Some(Item::Num(y)) => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return self.counted(Node::Pos(Coord { x, y }));
                }
                second => {
                    arr.push(Item::Num(x));
                    if let Some(s) = second {
                        arr.push(s);
                    }
                }
            },
            Some(Item::Node(Node::Pos(c))) => {
                let mut coords = vec![c];
                loop {
                    match seq.next_element_seed(ItemSeed(b))? {
                        None => {
                            coords.shrink_to_fit();
                            return Ok(Item::Node(Node::Ring(coords)));
                        }
                        Some(Item::Node(Node::Pos(c))) => coords.push(c),
                        Some(other) => {
                            // Mixed: fall back to a generic array (a broken ring).
                            for c in coords {
                                arr.push(Item::Node(Node::Pos(c)));
                            }
                            arr.push(other);
                            break;
                        }
                    }
                }
            }
            Some(first) => arr.push(first),
        }
        while let Some(it) = seq.next_element_seed(ItemSeed(b))? {
            arr.push(it);
        }
        self.counted(Node::Arr {
            len: arr.len,
            items: arr.items,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let b = self.0;
        let mut o = Obj::default();
        // A repeated member replaces the earlier one, as serde_json's own maps do.
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "type" => o.ty = map.next_value_seed(TypeSeed)?,
                "features" => o.features = Some(map.next_value_seed(ItemSeed(b))?),
                "geometry" => o.geometry = Some(map.next_value_seed(ItemSeed(b))?),
                "geometries" => o.geometries = Some(map.next_value_seed(ItemSeed(b))?),
                "coordinates" => o.coordinates = Some(map.next_value_seed(ItemSeed(b))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.counted(Node::Obj(Box::new(o)))
    }
}

/// An object's `type`: its text when it is a string.
struct TypeSeed;

impl<'de> DeserializeSeed<'de> for TypeSeed {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TypeSeed {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// The elements of a value read as an array, in order; `None` for scalars and for a
/// value that is no array at all.
enum Elements {
    Arr {
        len: usize,
        next: usize,
        items: std::iter::Peekable<std::vec::IntoIter<(usize, Node)>>,
    },
    Ring(std::iter::Enumerate<std::vec::IntoIter<Coord<f64>>>),
}

impl Elements {
    fn of(item: Item) -> Option<Elements> {
        match item {
            Item::Node(n) => Elements::of_node(n),
            _ => None,
        }
    }

    fn of_node(n: Node) -> Option<Elements> {
        match n {
            // A position read as an array: two numbers (extra members were not kept; no
            // rule ever looks past the first element of a position used as a container).
            Node::Pos(_) => Some(Elements::Arr {
                len: 2,
                next: 0,
                items: Vec::new().into_iter().peekable(),
            }),
            Node::Ring(coords) => Some(Elements::Ring(coords.into_iter().enumerate())),
            Node::Arr { len, items } => Some(Elements::Arr {
                len,
                next: 0,
                items: items.into_iter().peekable(),
            }),
            Node::Obj(_) => None,
        }
    }
}

impl Iterator for Elements {
    /// (index, the element if it is an array or object)
    type Item = (usize, Option<Node>);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Elements::Ring(it) => it.next().map(|(i, c)| (i, Some(Node::Pos(c)))),
            Elements::Arr { len, next, items } => {
                if *next >= *len {
                    return None;
                }
                let i = *next;
                *next += 1;
                if items.peek().is_some_and(|(j, _)| *j == i) {
                    let (_, n) = items.next()?;
                    Some((i, Some(n)))
                } else {
                    Some((i, None))
                }
            }
        }
    }
}

/// Nesting deeper than this is not a territory but an attack on the stack.
const MAX_DEPTH: usize = 16;

/// `GEO-INVALID` warnings listed per document; the rest are counted in one more finding
/// (a document of a million broken polygons must not become a million findings).
const MAX_LISTED_FINDINGS: usize = 100;

struct Parser<'a> {
    url: &'a str,
    budget: &'a Budget,
    polygons: Vec<Polygon<f64>>,
    findings: Vec<Finding>,
    suppressed: usize,
    out_of_range: Option<(String, f64, f64)>,
}

impl Parser<'_> {
    fn invalid(&mut self, pointer: String, message: impl Into<String>) {
        if self.findings.len() >= MAX_LISTED_FINDINGS {
            self.suppressed += 1;
            return;
        }
        self.findings.push(Finding::new(
            rules::GEO_INVALID,
            Severity::Warning,
            self.url,
            pointer,
            message,
        ));
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
        let mut coords = match r {
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
        if coords.len() >= 2 && coords.first() != coords.last() {
            self.invalid(ptr.to_owned(), "ring is not closed; closed it");
            coords.push(coords[0]);
        }
        if coords.len() < 4 {
            self.invalid(ptr.to_owned(), "ring has fewer than 4 positions; skipped");
            return Ok(None);
        }
        Ok(Some(LineString(coords)))
    }
}

fn node_item(n: Option<Node>) -> Item {
    n.map_or(Item::Scalar, Item::Node)
}

fn in_wgs84(c: &Coord<f64>) -> bool {
    c.x.is_finite()
        && c.y.is_finite()
        && (-180.0..=180.0).contains(&c.x)
        && (-90.0..=90.0).contains(&c.y)
}

// ---- WKB (OGC Simple Features, little-endian, 2D) ----

const WKB_POLYGON: u32 = 3;
const WKB_MULTIPOLYGON: u32 = 6;

/// Encode as a WKB MultiPolygon (little-endian).
pub fn to_wkb(mp: &MultiPolygon<f64>) -> Vec<u8> {
    // Sized exactly: a crawl keeps one WKB per territory until the server commits, and a
    // doubling Vec would hold up to twice the bytes for each of them.
    let len = 9 + mp
        .0
        .iter()
        .map(|p| {
            9 + std::iter::once(p.exterior())
                .chain(p.interiors())
                .map(|r| 4 + 16 * r.0.len())
                .sum::<usize>()
        })
        .sum::<usize>();
    let mut out = Vec::with_capacity(len);
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
    debug_assert_eq!(out.len(), len, "WKB size computed exactly");
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
mod oracle;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
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
        for c in crate::fixtures::counties::counties() {
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
        let mut d = json!({"type": "Polygon", "coordinates": serde_json::from_str::<Value>(SQUARE).unwrap()});
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
}
