//! Does a ring intersect itself? In O(n log n), for untrusted rings of any size.
//!
//! The rule is the one geo 0.33's `Validation` applied for `SelfIntersection` (which this
//! replaces, because its check compares every segment with every other, O(n²): a 40k
//! vertex ring took 21 s): two segments of the ring intersect itself when they meet
//! (touching counts) unless one of them starts where the other ends. The tests compare
//! both on random rings.
//!
//! How that rule is decided fast:
//! - Zero-length segments (repeated positions) are set aside. When at least four real
//!   segments remain they never decide the answer: a repeated position that lies inside
//!   another segment makes one of its real neighbours cross that segment too.
//! - With at most three real segments the rule is applied pair by pair (a handful).
//! - A position where two segments start, or two end, is a crossing (the ring passes the
//!   same point twice).
//! - Otherwise every position joins exactly one incoming and one outgoing segment, so "one
//!   starts where the other ends" means "neighbours along the ring". A spike (the ring
//!   turns back on itself along a line) overlaps its neighbour, and with four or more
//!   segments the backtracking segment also meets a non-neighbour, so it is a crossing.
//! - What is left is the classic question "do two non-neighbouring segments meet", which
//!   the Shamos–Hoey sweep answers in O(n log n) (Shamos & Hoey 1976; de Berg et al.,
//!   *Computational Geometry*, ch. 2): segments enter an ordered set at their left end
//!   and leave at their right end, and only segments that become adjacent in that order
//!   are tested. All predicates are geo's exact (robust) orientation tests.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

use geo::kernels::{Kernel, Orientation, RobustKernel};
use geo::{Coord, Intersects, Line};

use super::{Abort, Budget};

/// The rule above for the closed ring `ring` (first position repeated last), checking
/// `budget`'s deadline as it goes.
pub(crate) fn ring_self_intersects(ring: &[Coord<f64>], budget: &Budget) -> Result<bool, Abort> {
    let mut segs: Vec<(Coord<f64>, Coord<f64>)> = Vec::with_capacity(ring.len());
    let mut points: Vec<Coord<f64>> = Vec::new();
    for w in ring.windows(2) {
        if w[0] == w[1] {
            if points.len() < 8 && !points.contains(&w[0]) {
                points.push(w[0]);
            }
        } else {
            segs.push((w[0], w[1]));
        }
    }
    budget.tick(ring.len().min(u32::MAX as usize) as u32)?;
    if segs.len() <= 3 {
        // Tiny: the rule itself, with each distinct repeated position once (two copies of
        // one point never count against each other, and each copy meets the same others).
        let all: Vec<Line<f64>> = segs
            .iter()
            .map(|&(a, b)| Line::new(a, b))
            .chain(points.iter().map(|&p| Line::new(p, p)))
            .collect();
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                if meets_by_rule(&all[i], &all[j]) {
                    return Ok(true);
                }
            }
        }
        return Ok(false);
    }
    if passes_a_point_twice(&segs) || has_spike(&segs) {
        return Ok(true);
    }
    shamos_hoey(&segs, budget)
}

/// geo's pairwise rule: the segments meet, and neither starts where the other ends.
pub(crate) fn meets_by_rule(a: &Line<f64>, b: &Line<f64>) -> bool {
    a.intersects(b) && a.start != b.end && a.end != b.start
}

/// A hashable position; `-0.0` and `0.0` are the same place (as `Coord`'s `==` says).
fn key(c: Coord<f64>) -> (u64, u64) {
    ((c.x + 0.0).to_bits(), (c.y + 0.0).to_bits())
}

fn passes_a_point_twice(segs: &[(Coord<f64>, Coord<f64>)]) -> bool {
    let mut starts = HashSet::with_capacity(segs.len());
    let mut ends = HashSet::with_capacity(segs.len());
    segs.iter()
        .any(|&(a, b)| !starts.insert(key(a)) || !ends.insert(key(b)))
}

/// Two consecutive segments on one line, the second heading back along the first.
fn has_spike(segs: &[(Coord<f64>, Coord<f64>)]) -> bool {
    (0..segs.len()).any(|i| {
        let (u, p) = segs[i];
        let w = segs[(i + 1) % segs.len()].1;
        // Collinear, and `u` and `w` on the same side of `p`: on a line, "same side" is the
        // same lexicographic comparison with `p` (exact, unlike a dot product).
        RobustKernel::orient2d(u, p, w) == Orientation::Collinear && lex(u, p) == lex(w, p)
    })
}

fn lex(a: Coord<f64>, b: Coord<f64>) -> Ordering {
    a.x.partial_cmp(&b.x)
        .unwrap_or(Ordering::Equal)
        .then(a.y.partial_cmp(&b.y).unwrap_or(Ordering::Equal))
}

/// A segment in the sweep, oriented from its lexicographically smaller end.
#[derive(Debug, Clone, Copy)]
struct Active {
    l: Coord<f64>,
    r: Coord<f64>,
    /// Position along the ring, for the neighbour test.
    id: usize,
}

impl Active {
    /// Where `o` lies relative to `self`'s line, looking from `self.l` to `self.r`
    /// (counterclockwise = above in the sweep order), decided by `o`'s left end unless that
    /// lies on the line.
    fn side_of(&self, o: &Active) -> Orientation {
        match RobustKernel::orient2d(self.l, self.r, o.l) {
            Orientation::Collinear => RobustKernel::orient2d(self.l, self.r, o.r),
            s => s,
        }
    }
}

/// Bottom-to-top order of segments crossed by the sweep line. Only ever used between
/// segments that are both crossed by the sweep line and do not cross each other (the
/// sweep stops at the first crossing), where it is a total order that does not change
/// as the line moves.
impl Ord for Active {
    fn cmp(&self, o: &Self) -> Ordering {
        if self.id == o.id {
            return Ordering::Equal;
        }
        if lex(self.l, o.l) == Ordering::Greater {
            return o.cmp(self).reverse();
        }
        match self.side_of(o) {
            Orientation::CounterClockwise => Ordering::Less,
            Orientation::Clockwise => Ordering::Greater,
            // Collinear overlap is a crossing the sweep reports; any fixed order will do.
            Orientation::Collinear => self.id.cmp(&o.id),
        }
    }
}

impl PartialOrd for Active {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Active {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
    }
}

impl Eq for Active {}

/// Do two segments that are not neighbours along the ring meet? Precondition: no
/// position starts two segments or ends two, and no spike.
fn shamos_hoey(segs: &[(Coord<f64>, Coord<f64>)], budget: &Budget) -> Result<bool, Abort> {
    let n = segs.len();
    let neighbours = |i: usize, j: usize| (i + 1) % n == j || (j + 1) % n == i;
    let meets = |a: &Active, b: &Active| {
        !neighbours(a.id, b.id) && Line::new(a.l, a.r).intersects(&Line::new(b.l, b.r))
    };
    let active: Vec<Active> = segs
        .iter()
        .enumerate()
        .map(|(id, &(a, b))| {
            let (l, r) = if lex(a, b) == Ordering::Greater {
                (b, a)
            } else {
                (a, b)
            };
            Active { l, r, id }
        })
        .collect();
    // Events: (segment, true = enters). At one point segments enter before others leave,
    // so a segment that ends where another begins is still there to be compared.
    let mut events: Vec<(usize, bool)> = (0..n).flat_map(|i| [(i, true), (i, false)]).collect();
    let at = |&(i, enters): &(usize, bool)| {
        if enters {
            active[i].l
        } else {
            active[i].r
        }
    };
    events.sort_unstable_by(|a, b| lex(at(a), at(b)).then(b.1.cmp(&a.1)));
    budget.tick(n.min(u32::MAX as usize) as u32)?;

    let mut set: BTreeSet<Active> = BTreeSet::new();
    for (i, enters) in events {
        budget.tick(1)?;
        let s = active[i];
        let below = set.range(..s).next_back().copied();
        let above = set
            .range((Bound::Excluded(s), Bound::Unbounded))
            .next()
            .copied();
        if enters {
            if below.is_some_and(|b| meets(&s, &b)) || above.is_some_and(|a| meets(&s, &a)) {
                return Ok(true);
            }
            set.insert(s);
        } else {
            if !set.remove(&s) {
                // The order broke, which only segments that cross can do.
                return Ok(true);
            }
            if let (Some(b), Some(a)) = (below, above) {
                if meets(&b, &a) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}
