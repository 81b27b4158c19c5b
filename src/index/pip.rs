//! The exact point-in-polygon test of one polygon part, in forms chosen by size.
//!
//! Why more than one: geo's `IntervalTreeMultiPolygon` answers a large polygon in time that
//! grows slowly with its size, but it costs ~60 heap bytes per vertex (`geo-bench pip`:
//! 56–64) and a query walks several separately allocated nodes. On an index of many small
//! parts (a national aggregator's 100,000 cells of ~50 vertices) a lookup is bound by those
//! cache misses, not by arithmetic, and the trees were four times the size of the
//! coordinates. A small part's test walks every edge of its rings instead, read front to
//! back from one contiguous block: the territory's own exterior ring when the part has no
//! hole (no copy), its own rings one after the other when it has holes (no copy either),
//! and its rings packed into one block (16 bytes per vertex) only when the test is given
//! an oriented copy of the part. All forms
//! run the same winding-number rule with geo's robust `orient2d`, so they answer alike to
//! the last bit; a point on the boundary is not inside (as GEOS `contains`).

use std::sync::Arc;

use geo::algorithm::indexed::IntervalTreeMultiPolygon;
use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo::{Coord, MultiPolygon, Polygon};

/// Parts with at least this many positions (all rings) get an interval tree. Below it the
/// plain walk over a contiguous block is faster once the index outgrows the CPU caches,
/// and it is a quarter of the memory (`geo-bench pip`, docs/PERFORMANCE.md "Scale").
pub const TREE_MIN_VERTICES: usize = 256;

/// The exact test of one part. Cloning shares the data, so an updated index reuses the
/// parts of every territory that did not change.
#[derive(Clone)]
pub(crate) enum PartTest {
    /// A polygon without holes: its exterior ring, read where the territory keeps it.
    Ring(SharedRing),
    /// A polygon with holes: its rings, read where the territory keeps them.
    Polygon(SharedPolygon),
    /// The rings, each closed, one after the other, separated by one NaN position.
    Rings(Arc<[Coord<f64>]>),
    Tree(Arc<IntervalTreeMultiPolygon<f64>>),
}

impl PartTest {
    /// The test of `geom.0[pi]`, or of `poly` when that is an oriented copy of it. For an
    /// oriented polygon (exterior counter-clockwise, holes clockwise) the winding numbers
    /// of the rings add up to 0 in a hole and outside, and to 1 inside.
    pub fn of(
        geom: &Arc<MultiPolygon<f64>>,
        pi: usize,
        poly: &Polygon<f64>,
        positions: usize,
    ) -> PartTest {
        if positions >= TREE_MIN_VERTICES {
            PartTest::Tree(Arc::new(IntervalTreeMultiPolygon::new(&MultiPolygon(
                vec![poly.clone()],
            ))))
        } else if poly.interiors().is_empty() && std::ptr::eq(poly, &geom.0[pi]) {
            // Most parts (a cell, a county) have no hole, and then the packed form would
            // be a copy of the exterior ring: with 100,000 such parts that copy was as
            // large as the geometry itself (docs/PERFORMANCE.md "Scale").
            PartTest::Ring(SharedRing::new(geom, pi))
        } else if std::ptr::eq(poly, &geom.0[pi]) {
            // A fifth of a national tiling's parts have holes; their packed copies were
            // 20 MB of an API replica's heap (docs/PERFORMANCE.md "Scale"). Reaching each
            // ring through the polygon costs a load more than a packed block.
            PartTest::Polygon(SharedPolygon {
                geom: Arc::clone(geom),
                pi,
            })
        } else {
            PartTest::Rings(packed_rings(poly))
        }
    }

    /// Strictly inside (a point on the boundary is not).
    #[inline]
    pub fn contains(&self, c: Coord<f64>) -> bool {
        match self {
            PartTest::Ring(r) => rings_contain(r.coords(), c),
            PartTest::Rings(r) => rings_contain(r, c),
            PartTest::Polygon(p) => {
                let poly = &p.geom.0[p.pi];
                let mut winding = 0;
                for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                    match rings_winding(&ring.0, c) {
                        Some(w) => winding += w,
                        None => return false,
                    }
                }
                winding != 0
            }
            PartTest::Tree(t) => geo::Contains::contains(t.as_ref(), &c),
        }
    }

    /// Ask the caches for the start of the coordinates [`contains`](Self::contains) reads
    /// first (the first four lines: 16 positions), without waiting for them. A polygon with
    /// holes and an interval tree are reached through their `Arc`, which would be a load.
    #[inline]
    pub fn prefetch(&self) {
        let coords: &[Coord<f64>] = match self {
            PartTest::Ring(r) => r.coords(),
            PartTest::Rings(r) => r,
            PartTest::Polygon(_) | PartTest::Tree(_) => return,
        };
        for line in coords.chunks(4).take(4) {
            prefetch(line.as_ptr());
        }
    }
}

/// A hint to the processor to bring the cache line holding `p` in (x86_64's `prefetcht0`;
/// nothing elsewhere). It reads nothing and cannot fault, whatever the address.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 processor has; a prefetch is a
    // hint that never dereferences `p` in a way that can fault or be observed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The exterior ring of one polygon of a territory, read in place: the territory's
/// `MultiPolygon` held alive, and the ring's address kept beside it so that a lookup
/// reaches the coordinates in one load, as it does a packed block (going through the
/// `Arc`, the polygon list and the ring's `Vec` costs three dependent loads, each a cache
/// miss on an index of 100,000 parts).
pub(crate) struct SharedRing {
    coords: *const Coord<f64>,
    len: usize,
    /// Owns the coordinates `coords` points to.
    _geom: Arc<MultiPolygon<f64>>,
}

// SAFETY: a `SharedRing` is a shared, read-only view of data owned by the `Arc` it holds
// (see `coords`); `MultiPolygon<f64>` is `Send + Sync`, so sending or sharing the view is
// as safe as sending or sharing `&[Coord<f64>]`.
unsafe impl Send for SharedRing {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedRing {}

impl SharedRing {
    fn new(geom: &Arc<MultiPolygon<f64>>, pi: usize) -> SharedRing {
        let ring = &geom.0[pi].exterior().0;
        SharedRing {
            coords: ring.as_ptr(),
            len: ring.len(),
            _geom: Arc::clone(geom),
        }
    }

    #[inline]
    fn coords(&self) -> &[Coord<f64>] {
        // SAFETY: `coords` and `len` describe the exterior ring's `Vec` inside `_geom`.
        // That allocation lives as long as `_geom` does, and nothing can move or change
        // it: the `MultiPolygon` is reachable only through `Arc`s, which give shared
        // references, and `Arc::get_mut` / `make_mut` cannot hand out a mutable one while
        // this `Arc` exists (a second owner makes `get_mut` fail and `make_mut` clone).
        unsafe { std::slice::from_raw_parts(self.coords, self.len) }
    }
}

impl Clone for SharedRing {
    fn clone(&self) -> SharedRing {
        SharedRing {
            coords: self.coords,
            len: self.len,
            _geom: Arc::clone(&self._geom),
        }
    }
}

/// One polygon of a territory, read in place (the territory held alive).
#[derive(Clone)]
pub(crate) struct SharedPolygon {
    geom: Arc<MultiPolygon<f64>>,
    pi: usize,
}

/// The polygon's rings as one block: each ring closed, a NaN position between rings.
pub fn packed_rings(poly: &Polygon<f64>) -> Arc<[Coord<f64>]> {
    let sep = Coord {
        x: f64::NAN,
        y: f64::NAN,
    };
    let mut out = Vec::with_capacity(
        poly.exterior().0.len()
            + poly
                .interiors()
                .iter()
                .map(|r| r.0.len() + 1)
                .sum::<usize>(),
    );
    out.extend_from_slice(&poly.exterior().0);
    for hole in poly.interiors() {
        out.push(sep);
        out.extend_from_slice(&hole.0);
    }
    out.into()
}

/// Is `c` strictly inside the rings packed by [`packed_rings`] (oriented as there)?
/// The winding-number rule of geo's `coord_pos_relative_to_ring`, summed over the rings;
/// any edge the point lies on decides "not inside" at once.
pub fn rings_contain(rings: &[Coord<f64>], c: Coord<f64>) -> bool {
    rings_winding(rings, c).is_some_and(|w| w != 0)
}

/// The winding number of the rings around `c` ([`rings_contain`]'s rule), `None` when `c`
/// lies on an edge.
fn rings_winding(rings: &[Coord<f64>], c: Coord<f64>) -> Option<i32> {
    let mut winding = 0i32;
    for w in rings.windows(2) {
        let (a, b) = (w[0], w[1]);
        // An edge wholly left of the point neither crosses the ray to its right nor
        // carries the point (geo's interval tree skips it the same way); tested only for
        // the few edges that span the point's latitude, before the costly `orient2d`.
        if a.y <= c.y {
            if b.y >= c.y && !(a.x < c.x && b.x < c.x) {
                let o = RobustKernel::orient2d(a, b, c);
                if o == Orientation::CounterClockwise && b.y != c.y {
                    winding += 1;
                } else if o == Orientation::Collinear && between(c.x, a.x, b.x) {
                    return None;
                }
            }
        // `a.y <= c.y` is also false for a NaN separator (comparisons with NaN are false),
        // so a separator edge is ruled out here; in the branch above neither end is NaN.
        } else if b.y <= c.y && !a.y.is_nan() && !(a.x < c.x && b.x < c.x) {
            let o = RobustKernel::orient2d(a, b, c);
            if o == Orientation::Clockwise {
                winding -= 1;
            } else if o == Orientation::Collinear && between(c.x, a.x, b.x) {
                return None;
            }
        }
    }
    Some(winding)
}

fn between(x: f64, a: f64, b: f64) -> bool {
    if a <= b {
        a <= x && x <= b
    } else {
        b <= x && x <= a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::orient::{Direction, Orient};
    use geo::{Contains, LineString};
    use rand::{Rng, SeedableRng};

    /// A star-shaped ring with its positions rounded to a 1/8 lattice, so that test
    /// points on a 1/16 lattice often fall exactly on vertices and edges.
    fn star(n: usize, c: (f64, f64), r: f64, rng: &mut impl Rng) -> LineString<f64> {
        let lattice = |v: f64| (v * 8.0).round() / 8.0;
        let mut pts: Vec<Coord<f64>> =
            cds_testkit::geometry::star_ring(n, c, r, || rng.random_range(0.5..1.0))
                .into_iter()
                .map(|p| Coord {
                    x: lattice(p.x),
                    y: lattice(p.y),
                })
                .collect();
        pts.dedup();
        LineString(pts)
    }

    /// The packed walk, the in-place walk (ring or polygon), geo's interval tree and geo's
    /// `Contains` agree on random points,
    /// including many exactly on vertices and edges (coordinates on a 1/8 lattice, points
    /// on a 1/16 lattice), for polygons with and without holes, wound either way before
    /// orienting.
    #[test]
    fn the_packed_walk_answers_as_the_interval_tree_and_geo() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for case in 0..300 {
            let n = rng.random_range(3..40);
            let mut ext = star(n, (0.0, 0.0), 2.0, &mut rng);
            if case % 2 == 0 {
                ext.0.reverse();
            }
            let holes = if case % 3 == 0 {
                vec![star(rng.random_range(3..10), (0.0, 0.0), 0.4, &mut rng)]
            } else {
                vec![]
            };
            let poly = Polygon::new(ext, holes).orient(Direction::Default);
            let packed = packed_rings(&poly);
            let tree = IntervalTreeMultiPolygon::new(&MultiPolygon(vec![poly.clone()]));
            let geom = Arc::new(MultiPolygon(vec![poly.clone()]));
            let in_place = PartTest::of(&geom, 0, &geom.0[0], 0);
            assert!(matches!(
                (&in_place, poly.interiors().is_empty()),
                (PartTest::Ring(_), true) | (PartTest::Polygon(_), false)
            ));
            for _ in 0..400 {
                let c = Coord {
                    x: f64::from(rng.random_range(-40..=40)) / 16.0,
                    y: f64::from(rng.random_range(-40..=40)) / 16.0,
                };
                let want = poly.contains(&c);
                assert_eq!(rings_contain(&packed, c), want, "case {case} at {c:?}");
                assert_eq!(in_place.contains(c), want, "in place, case {case} at {c:?}");
                assert_eq!(tree.contains(&c), want, "tree, case {case} at {c:?}");
            }
        }
    }

    #[test]
    fn the_form_follows_the_size() {
        let square = |n: usize| {
            let mut pts: Vec<Coord<f64>> = (0..n)
                .map(|i| Coord {
                    x: (i as f64 / n as f64 * std::f64::consts::TAU).cos(),
                    y: (i as f64 / n as f64 * std::f64::consts::TAU).sin(),
                })
                .collect();
            pts.push(pts[0]);
            Polygon::new(LineString(pts), vec![]).orient(Direction::Default)
        };
        let small = square(20);
        let big = square(TREE_MIN_VERTICES + 10);
        let holed = Polygon::new(
            small.exterior().clone(),
            vec![LineString::from(vec![
                (0.0, 0.0),
                (0.0, 0.1),
                (0.1, 0.1),
                (0.1, 0.0),
                (0.0, 0.0),
            ])],
        )
        .orient(Direction::Default);
        let geom = Arc::new(MultiPolygon(vec![small.clone(), big.clone(), holed]));
        let test = |pi: usize| {
            let p = &geom.0[pi];
            PartTest::of(&geom, pi, p, p.exterior().0.len())
        };
        // A small part without holes is read in place, not copied.
        assert!(
            matches!(test(0), PartTest::Ring(ref r) if std::ptr::eq(r.coords(), &geom.0[0].exterior().0[..]))
        );
        assert!(matches!(test(1), PartTest::Tree(_)));
        // With holes: its rings read in place too.
        assert!(
            matches!(test(2), PartTest::Polygon(ref p) if Arc::ptr_eq(&p.geom, &geom) && p.pi == 2)
        );
        // An oriented copy (the input was wound the wrong way) is packed, not referenced.
        let copy = small.clone();
        assert!(matches!(
            PartTest::of(&geom, 0, &copy, 21),
            PartTest::Rings(_)
        ));
        for pi in 0..3 {
            let t = test(pi);
            assert!(t.contains(Coord { x: 0.1, y: 0.2 }), "part {pi}");
            assert!(!t.contains(Coord { x: 1.1, y: 0.2 }), "part {pi}");
        }
        // Inside the hole of part 2 only.
        assert!(test(0).contains(Coord { x: 0.05, y: 0.05 }));
        assert!(!test(2).contains(Coord { x: 0.05, y: 0.05 }));
    }
}
