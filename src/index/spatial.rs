//! The spatial half of the index: an R-tree over the bounding box of every *polygon part*
//! of every territory (box and geometry queries), a grid over the same parts (point
//! queries, see `grid.rs`), and one exact point-in-polygon test per part (`pip.rs`).
//!
//! Why parts and not territories: a territory that crosses the antimeridian (Aleutians
//! West has islands at lon −179 and +179) has a planar bounding box spanning the globe, so
//! one box per territory would make it a candidate for every point on Earth. Each part's
//! own box is small. Testing a part rather than the whole territory also keeps the
//! point-in-polygon work proportional to the one island the point is near.

use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use geo::algorithm::indexed::IntervalTreeMultiPolygon;
use geo::orient::{Direction, Orient};
use geo::winding_order::Winding;
use geo::{
    Area, BoundingRect, Contains, Coord, CoordsIter, Geometry, Intersects, Line, LineString,
    MultiPolygon, Polygon,
};
use rstar::{RTree, RTreeObject, AABB};

use super::grid::PointGrid;
use super::pip::PartTest;

/// One R-tree leaf: a part's bounding box and the part's position in `Spatial::parts`.
struct PartBox {
    env: AABB<[f64; 2]>,
    part: u32,
}

impl RTreeObject for PartBox {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.env
    }
}

/// One polygon (exterior + holes) of a territory. Cloning shares the exact test's data,
/// so an updated index reuses the parts of every territory that did not change.
#[derive(Clone)]
pub(crate) struct Part {
    pub terr: u32,
    /// Position of the polygon in the territory's `MultiPolygon`.
    pub poly: u32,
    /// `[min_x, min_y, max_x, max_y]`.
    pub bbox: [f64; 4],
    /// Vertices of the polygon (all rings): the cost unit of the exact geometry test.
    pub vertices: u32,
    pip: PartTest,
}

impl Part {
    /// Strictly inside (a point on the boundary is not).
    #[inline]
    pub fn contains(&self, c: Coord<f64>) -> bool {
        self.pip.contains(c)
    }
}

/// A distinct territory (several entries may share one).
pub(crate) struct Terr {
    pub geom: Arc<MultiPolygon<f64>>,
    /// Unsigned planar area in square degrees: only compared, to rank the most specific
    /// territory first.
    pub area: f64,
    pub parts: Range<u32>,
}

pub(crate) struct Spatial {
    /// Built on the first box or geometry query ([`Spatial::tree`]): point lookups use the
    /// grid, and bulk-loading the tree again for every snapshot was ~9 % of a replica's
    /// catch-up at 100,000 territories (docs/PERFORMANCE.md, "Scale"), paid even by
    /// replicas that never answer a box query.
    tree: OnceLock<RTree<PartBox>>,
    grid: PointGrid,
    pub parts: Vec<Part>,
    pub terrs: Vec<Terr>,
}

/// Territory `t`'s parts (appended to `parts`, exact tests built) and its record.
fn new_terr(t: u32, geom: Arc<MultiPolygon<f64>>, parts: &mut Vec<Part>) -> Terr {
    let first = parts.len() as u32;
    for (pi, poly) in geom.0.iter().enumerate() {
        let Some(bbox) = bbox_of(poly) else { continue };
        // The winding-number test needs holes wound against their exterior; the
        // territory parser orients already, so this copy is only a safety net.
        let oriented;
        let poly = if rings_oriented(poly) {
            poly
        } else {
            oriented = poly.orient(Direction::Default);
            &oriented
        };
        let positions = poly.coords_count();
        parts.push(Part {
            terr: t,
            poly: pi as u32,
            bbox,
            vertices: positions.min(u32::MAX as usize) as u32,
            pip: PartTest::of(&geom, pi, poly, positions),
        });
    }
    Terr {
        area: geom.unsigned_area(),
        geom,
        parts: first..parts.len() as u32,
    }
}

/// The R-tree over the parts' bounding boxes.
fn tree_of(parts: &[Part]) -> RTree<PartBox> {
    let boxes = parts
        .iter()
        .enumerate()
        .map(|(i, p)| PartBox {
            env: AABB::from_corners([p.bbox[0], p.bbox[1]], [p.bbox[2], p.bbox[3]]),
            part: i as u32,
        })
        .collect();
    RTree::bulk_load(boxes)
}

fn rings_oriented(p: &Polygon<f64>) -> bool {
    p.exterior().is_ccw() && p.interiors().iter().all(|r| r.is_cw())
}

fn bbox_of(p: &Polygon<f64>) -> Option<[f64; 4]> {
    let r = p.bounding_rect()?;
    let b = [r.min().x, r.min().y, r.max().x, r.max().y];
    b.iter().all(|v| v.is_finite()).then_some(b)
}

impl Spatial {
    /// Index the given distinct territories (their positions are the territory ids).
    pub fn build(geoms: Vec<Arc<MultiPolygon<f64>>>) -> Spatial {
        let mut parts = Vec::new();
        let mut terrs = Vec::with_capacity(geoms.len());
        for (t, geom) in geoms.into_iter().enumerate() {
            terrs.push(new_terr(t as u32, geom, &mut parts));
        }
        let grid = PointGrid::build(&parts, |p| &terrs[p.terr as usize].geom.0[p.poly as usize]);
        Spatial {
            tree: OnceLock::new(),
            grid,
            parts,
            terrs,
        }
    }

    /// The spatial index of `geoms` (the next snapshot's distinct territories), reusing
    /// this one where it can: `old_of[t]` names a territory of `self` with the same
    /// geometry as `geoms[t]` (or `u32::MAX`), whose parts and exact tests are shared
    /// instead of rebuilt, and the point grid is updated only in the cells that changed
    /// parts meet ([`PointGrid::update`]); where the grid's layout no longer fits it is
    /// built afresh. The R-tree over part boxes is left to be bulk-loaded on first use.
    /// Answers equal those of `Spatial::build(geoms)`.
    pub fn update(&self, geoms: Vec<Arc<MultiPolygon<f64>>>, old_of: &[u32]) -> Spatial {
        // Sized for about as many parts as before: grown by doubling, the vector was
        // copied and its fresh pages faulted in several times (~2 % of a catch-up).
        let mut parts: Vec<Part> = Vec::with_capacity(self.parts.len() + self.parts.len() / 16);
        let mut terrs = Vec::with_capacity(geoms.len());
        let mut part_map = vec![u32::MAX; self.parts.len()];
        // Bounding boxes of the parts that came or went: the grid cells to redo.
        let mut changed: Vec<[f64; 4]> = Vec::new();
        let mut kept_terr = vec![false; self.terrs.len()];
        let mut terr_map = vec![u32::MAX; self.terrs.len()];
        for (t, geom) in geoms.iter().enumerate() {
            // A territory of `self` serves at most one new one.
            match old_of[t] {
                o if o == u32::MAX || kept_terr[o as usize] => {
                    let first = parts.len();
                    terrs.push(new_terr(t as u32, Arc::clone(geom), &mut parts));
                    changed.extend(parts[first..].iter().map(|p| p.bbox));
                }
                o => {
                    let old = &self.terrs[o as usize];
                    kept_terr[o as usize] = true;
                    terr_map[o as usize] = t as u32;
                    let first = parts.len() as u32;
                    for op in old.parts.clone() {
                        part_map[op as usize] = parts.len() as u32;
                        let mut p = self.parts[op as usize].clone();
                        p.terr = t as u32;
                        parts.push(p);
                    }
                    terrs.push(Terr {
                        geom: Arc::clone(geom),
                        area: old.area,
                        parts: first..parts.len() as u32,
                    });
                }
            }
        }
        for (o, kept) in kept_terr.iter().enumerate() {
            if !kept {
                changed.extend(self.part_range(o as u32).iter().map(|p| p.bbox));
            }
        }
        let grid = self
            .grid
            .update(
                &parts,
                |p| &terrs[p.terr as usize].geom.0[p.poly as usize],
                &part_map,
                &terr_map,
                &changed,
            )
            .unwrap_or_else(|| {
                PointGrid::build(&parts, |p| &terrs[p.terr as usize].geom.0[p.poly as usize])
            });
        Spatial {
            tree: OnceLock::new(),
            grid,
            parts,
            terrs,
        }
    }

    /// The R-tree over the parts' boxes, bulk-loaded on first use: the first box or
    /// geometry query of a snapshot pays it (29 ms at 100,000 parts, on the request's own
    /// thread and outside its work budget; docs/PERFORMANCE.md, "Scale"), concurrent first
    /// queries wait for the one load.
    fn tree(&self) -> &RTree<PartBox> {
        self.tree.get_or_init(|| tree_of(&self.parts))
    }

    /// Call `f(territory)` for every part that strictly contains the point. A territory
    /// whose parts overlap (invalid input) may be reported twice; callers dedup.
    #[inline]
    pub fn territories_at(&self, x: f64, y: f64, mut f: impl FnMut(u32)) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        let c = Coord { x, y };
        let (sub, whole) = self.grid.candidates(x, y);
        // A point in a boundary sub-cell has usually two or three parts to test, and each
        // part's record and ring lie far from the others': on 100,000 territories each is
        // likely a cache miss. Asking for all the records, then all the rings, before the
        // first test lets those misses overlap instead of following one another
        // (docs/PERFORMANCE.md, "In-process p50").
        let tested = || sub.iter().filter_map(|cand| cand.get().err());
        if sub.len() > 1 {
            for p in tested() {
                // A record is over 64 bytes: it may straddle two lines.
                let part = &self.parts[p as usize];
                super::pip::prefetch(part);
                super::pip::prefetch(&part.pip);
            }
        }
        for p in tested() {
            self.parts[p as usize].pip.prefetch();
        }
        for cand in whole.iter().chain(sub) {
            match cand.get() {
                Ok(t) => f(t),
                Err(p) => {
                    let part = &self.parts[p as usize];
                    if part.contains(c) {
                        f(part.terr);
                    }
                }
            }
        }
    }

    /// Does territory `t` strictly contain the point?
    pub fn territory_contains(&self, t: u32, x: f64, y: f64) -> bool {
        let c = Coord { x, y };
        self.part_range(t).iter().any(|p| {
            p.bbox[0] <= x && x <= p.bbox[2] && p.bbox[1] <= y && y <= p.bbox[3] && p.contains(c)
        })
    }

    fn part_range(&self, t: u32) -> &[Part] {
        let r = &self.terrs[t as usize].parts;
        &self.parts[r.start as usize..r.end as usize]
    }

    /// Does the bounding box of any part of territory `t` intersect `b`?
    pub fn territory_meets_bbox(&self, t: u32, b: &Bbox) -> bool {
        self.part_range(t).iter().any(|p| b.meets(&p.bbox))
    }

    /// Territories with a part whose bounding box intersects `b` (unsorted, may repeat).
    pub fn territories_meeting_bbox(&self, b: &Bbox, out: &mut Vec<u32>) {
        for env in b.envelopes() {
            for pb in self.tree().locate_in_envelope_intersecting(&env) {
                out.push(self.parts[pb.part as usize].terr);
            }
        }
    }

    /// Territories that intersect `g` exactly (unsorted, may repeat), within `budget`.
    ///
    /// Each component of a multi-geometry is looked up with its own box, so a query
    /// geometry that straddles the antimeridian does not scan the whole tree. For each
    /// (component, candidate part) pair whose territory is not matched yet:
    /// 1. a vertex of either lying strictly inside the other decides it, through the
    ///    exact tests (the part's is built with the index, the component's interval tree
    ///    once per query);
    /// 2. otherwise the boundaries are compared, segment against segment, only among the
    ///    segments of each that meet the other's bounding box.
    ///
    /// Two polygons intersect iff their boundaries meet or one holds a point of the
    /// other, so (1) and (2) together are exact (boundaries touching count, as with
    /// `geo::Intersects`).
    ///
    /// Work is counted as the vertices scanned per pair (the component's; the part's only
    /// when some component segment meets the part's box) plus the segment pairs compared.
    /// Over `budget.max_work`, or past `budget.deadline` (checked between pairs, and every
    /// 4,096 candidates), the query stops with [`OverBudget`].
    pub fn territories_intersecting(
        &self,
        g: &Geometry<f64>,
        budget: &WorkBudget,
        out: &mut Vec<u32>,
    ) -> Result<(), OverBudget> {
        let mut components = Vec::new();
        flatten(g, &mut components);
        let mut matched = vec![0u64; self.terrs.len().div_ceil(64)];
        let mut work = Work { budget, spent: 0 };
        let mut seen: u64 = 0;
        for c in components {
            let Some(mut c) = Component::of(c) else {
                continue;
            };
            let env = AABB::from_corners([c.bbox[0], c.bbox[1]], [c.bbox[2], c.bbox[3]]);
            for pb in self.tree().locate_in_envelope_intersecting(&env) {
                seen += 1;
                if seen % 4096 == 0 {
                    budget.check_time()?;
                }
                let part = &self.parts[pb.part as usize];
                let t = part.terr as usize;
                if matched[t / 64] & (1 << (t % 64)) != 0 {
                    continue;
                }
                let poly = &self.terrs[t].geom.0[part.poly as usize];
                if c.meets(part, poly, &mut work)? {
                    matched[t / 64] |= 1 << (t % 64);
                    out.push(part.terr);
                }
            }
        }
        Ok(())
    }
}

/// Work spent by one geometry query, against its budget.
struct Work<'b> {
    budget: &'b WorkBudget,
    spent: u64,
}

impl Work<'_> {
    fn spend(&mut self, w: u64) -> Result<(), OverBudget> {
        self.spent = self.spent.saturating_add(w);
        if self.spent > self.budget.max_work {
            Err(OverBudget::Work {
                max: self.budget.max_work,
            })
        } else {
            Ok(())
        }
    }
}

/// One component of a query geometry, with what the pair tests need of it.
struct Component {
    g: Geometry<f64>,
    bbox: [f64; 4],
    /// A vertex of the component.
    probe: Option<Coord<f64>>,
    vertices: u64,
    rings: Option<Vec<LineString<f64>>>,
    /// The component's own interval tree, built on its first undecided candidate
    /// (polygons only).
    pip: Option<Option<IntervalTreeMultiPolygon<f64>>>,
}

impl Component {
    /// `None` for a component without a bounding box (empty).
    fn of(g: Geometry<f64>) -> Option<Component> {
        let r = g.bounding_rect()?;
        let probe = g.coords_iter().next();
        Some(Component {
            bbox: [r.min().x, r.min().y, r.max().x, r.max().y],
            probe,
            vertices: g.coords_count() as u64,
            rings: rings(&g),
            pip: None,
            g,
        })
    }

    /// Does this component intersect the part (`poly`)? A vertex of either strictly
    /// inside the other decides it; otherwise the boundaries are compared.
    fn meets(
        &mut self,
        part: &Part,
        poly: &Polygon<f64>,
        work: &mut Work,
    ) -> Result<bool, OverBudget> {
        if self.probe.is_some_and(|p| part.contains(p)) {
            return Ok(true);
        }
        work.budget.check_time()?;
        let vc = self.vertices;
        let g = &self.g;
        let pip = self.pip.get_or_insert_with(|| {
            if let Geometry::Polygon(p) = g {
                work.spent = work.spent.saturating_add(vc);
                Some(IntervalTreeMultiPolygon::new(&MultiPolygon(vec![
                    p.orient(Direction::Default)
                ])))
            } else {
                None
            }
        });
        let inside = pip
            .as_ref()
            .is_some_and(|pip| poly.exterior().0.first().is_some_and(|q| pip.contains(q)));
        if inside {
            return Ok(true);
        }
        match &self.rings {
            Some(c_rings) => {
                work.spend(vc)?;
                let cs = segments_meeting(c_rings, &part.bbox);
                // No segment of the component near the part: the boundaries cannot meet,
                // and the part needs no scan.
                if cs.is_empty() {
                    return Ok(false);
                }
                work.spend(u64::from(part.vertices))?;
                let p_rings: Vec<&LineString<f64>> = std::iter::once(poly.exterior())
                    .chain(poly.interiors())
                    .collect();
                let ps = segments_meeting(&p_rings, &self.bbox);
                work.spend(cs.len() as u64 * ps.len() as u64)?;
                Ok(cs.iter().any(|a| ps.iter().any(|b| a.intersects(b))))
            }
            None => {
                // Other component kinds (not produced by the API's parser): geo's own
                // test, charged at its worst case.
                work.spend(vc.max(1) * u64::from(part.vertices))?;
                Ok(self.g.intersects(poly))
            }
        }
    }
}

/// Limits on one geometry query ([`Spatial::territories_intersecting`]).
#[derive(Debug, Clone, Copy)]
pub struct WorkBudget {
    /// Most work units (vertices scanned + segment pairs compared) the query may spend.
    pub max_work: u64,
    /// When the query must stop, finished or not.
    pub deadline: Option<Instant>,
}

impl WorkBudget {
    /// No limits (in-process callers that trust their geometry).
    pub const UNLIMITED: WorkBudget = WorkBudget {
        max_work: u64::MAX,
        deadline: None,
    };

    fn check_time(&self) -> Result<(), OverBudget> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(OverBudget::Time),
            _ => Ok(()),
        }
    }
}

/// Why a geometry query stopped before its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    #[error("the geometry needs more than {max} units of work against the indexed territories")]
    Work { max: u64 },
    #[error("the geometry query ran out of its time budget")]
    Time,
}

/// The boundary of a point, line or polygon component as rings (a point is a one-vertex
/// "ring", compared as a degenerate segment); `None` for other kinds.
fn rings(g: &Geometry<f64>) -> Option<Vec<LineString<f64>>> {
    match g {
        Geometry::Point(p) => Some(vec![LineString(vec![p.0])]),
        Geometry::LineString(l) => Some(vec![l.clone()]),
        Geometry::Polygon(p) => Some(
            std::iter::once(p.exterior().clone())
                .chain(p.interiors().iter().cloned())
                .collect(),
        ),
        _ => None,
    }
}

/// The segments of `rings` whose bounding box meets `b` (`[min_x, min_y, max_x, max_y]`).
/// A one-vertex ring gives one degenerate segment.
fn segments_meeting<R: std::borrow::Borrow<LineString<f64>>>(
    rings: &[R],
    b: &[f64; 4],
) -> Vec<Line<f64>> {
    let meets = |l: &Line<f64>| {
        l.start.x.min(l.end.x) <= b[2]
            && b[0] <= l.start.x.max(l.end.x)
            && l.start.y.min(l.end.y) <= b[3]
            && b[1] <= l.start.y.max(l.end.y)
    };
    let mut out = Vec::new();
    for r in rings {
        let r = r.borrow();
        if r.0.len() == 1 {
            let l = Line::new(r.0[0], r.0[0]);
            if meets(&l) {
                out.push(l);
            }
        } else {
            out.extend(r.lines().filter(|l| meets(l)));
        }
    }
    out
}

/// The single geometries inside `g` (multi-geometries and collections opened up).
fn flatten(g: &Geometry<f64>, out: &mut Vec<Geometry<f64>>) {
    match g {
        Geometry::MultiPoint(m) => out.extend(m.0.iter().map(|p| Geometry::Point(*p))),
        Geometry::MultiLineString(m) => out.extend(m.0.iter().cloned().map(Geometry::LineString)),
        Geometry::MultiPolygon(m) => out.extend(m.0.iter().cloned().map(Geometry::Polygon)),
        Geometry::GeometryCollection(c) => {
            for g in &c.0 {
                flatten(g, out);
            }
        }
        other => out.push(other.clone()),
    }
}

/// A query box `[min_lon, min_lat, max_lon, max_lat]`. When `min_lon > max_lon` the box
/// wraps across the antimeridian (as in RFC 7946 §5.2) and is treated as two boxes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bbox([f64; 4]);

impl Bbox {
    /// `None` for a box that cannot match anything (NaN, or min_lat > max_lat).
    pub fn new(b: [f64; 4]) -> Option<Bbox> {
        (b.iter().all(|v| !v.is_nan()) && b[1] <= b[3]).then_some(Bbox(b))
    }

    fn pieces(&self) -> impl Iterator<Item = [f64; 4]> {
        let [x0, y0, x1, y1] = self.0;
        let (a, b) = if x0 <= x1 {
            ([x0, y0, x1, y1], None)
        } else {
            (
                [x0, y0, f64::INFINITY, y1],
                Some([f64::NEG_INFINITY, y0, x1, y1]),
            )
        };
        std::iter::once(a).chain(b)
    }

    fn envelopes(&self) -> impl Iterator<Item = AABB<[f64; 2]>> {
        self.pieces()
            .map(|p| AABB::from_corners([p[0], p[1]], [p[2], p[3]]))
    }

    fn meets(&self, o: &[f64; 4]) -> bool {
        self.pieces()
            .any(|p| p[0] <= o[2] && o[0] <= p[2] && p[1] <= o[3] && o[1] <= p[3])
    }
}
