//! One level-1 cell's sub-cells for one part: which a boundary segment passes near
//! (`BOUNDARY`), and which lie inside (`IN`) or outside (`OUT`) the part, decided once per
//! boundary-free region.

use geo::Coord;

use super::{Candidate, PointGrid, MARGIN};

/// The sub-cells of level-1 cell `(ci, cj)`, split `k` times per axis.
pub(super) struct SubCells {
    pub(super) ci: usize,
    pub(super) cj: usize,
    pub(super) k: usize,
}

/// A window of sub-cells, `a0..=a1` by `b0..=b1`, `ww` wide; marks are row by row.
pub(super) struct Window {
    pub(super) a0: usize,
    pub(super) a1: usize,
    pub(super) b0: usize,
    pub(super) b1: usize,
    pub(super) ww: usize,
}

impl Window {
    pub(super) fn len(&self) -> usize {
        self.ww * (self.b1 - self.b0 + 1)
    }
}

impl SubCells {
    /// A level-1 coordinate in sub-cell units from the cell's corner `origin`.
    pub(super) fn local(&self, u: f64, origin: usize) -> f64 {
        (u - origin as f64) * self.k as f64
    }

    /// The sub-cells a bounding box meets, grown by the margin.
    pub(super) fn window(&self, grid: &PointGrid, b: [f64; 4]) -> Window {
        let last = (self.k - 1) as f64;
        let lo = |u: f64| (u - MARGIN).floor().clamp(0.0, last) as usize;
        let hi = |u: f64| (u + MARGIN).floor().clamp(0.0, last) as usize;
        let (a0, a1) = (
            lo(self.local((b[0] - grid.x0) * grid.sx, self.ci)),
            hi(self.local((b[2] - grid.x0) * grid.sx, self.ci)),
        );
        let (b0, b1) = (
            lo(self.local((b[1] - grid.y0) * grid.sy, self.cj)),
            hi(self.local((b[3] - grid.y0) * grid.sy, self.cj)),
        );
        Window {
            a0,
            a1,
            b0,
            b1,
            ww: a1 - a0 + 1,
        }
    }

    /// The centre of the sub-cell at mark `m` of the window, in degrees.
    pub(super) fn centre(&self, grid: &PointGrid, w: &Window, m: usize) -> Coord<f64> {
        let (a, b) = (w.a0 + m % w.ww, w.b0 + m / w.ww);
        let u = self.ci as f64 + (a as f64 + 0.5) / self.k as f64;
        let v = self.cj as f64 + (b as f64 + 0.5) / self.k as f64;
        Coord {
            x: grid.x0 + u / grid.sx,
            y: grid.y0 + v / grid.sy,
        }
    }
}

/// Give `state` to the boundary-free region of marks around `start` (4-connected): one
/// exact point-in-polygon test decides a whole region, since no boundary crosses it.
pub(super) fn fill_region(
    marks: &mut [u8],
    stack: &mut Vec<usize>,
    ww: usize,
    start: usize,
    state: u8,
) {
    marks[start] = state;
    stack.push(start);
    let len = marks.len();
    while let Some(m) = stack.pop() {
        let (ma, mb) = (m % ww, m / ww);
        let mut visit = |n: usize| {
            if marks[n] == UNKNOWN {
                marks[n] = state;
                stack.push(n);
            }
        };
        if ma > 0 {
            visit(m - 1);
        }
        if ma + 1 < ww {
            visit(m + 1);
        }
        if mb > 0 {
            visit(m - ww);
        }
        if m + ww < len {
            visit(m + ww);
        }
    }
}

/// The `(sub-cell, candidate)` pairs of part `pi` from its marks.
pub(super) fn push_pairs(
    pairs: &mut Vec<(u32, Candidate)>,
    marks: &[u8],
    w: &Window,
    k: usize,
    pi: u32,
    terr: u32,
) {
    if marks.len() == k * k && marks.iter().all(|&m| m == IN) {
        // The whole cell is inside: one entry in the cell's own list instead of k² copies,
        // so a territory much larger than the cells costs one entry per cell, plus its
        // boundary.
        pairs.push(((k * k) as u32, Candidate::inside(terr)));
        return;
    }
    for (m, &state) in marks.iter().enumerate() {
        let cand = match state {
            BOUNDARY => Candidate::boundary(pi),
            IN => Candidate::inside(terr),
            _ => continue,
        };
        let sub = ((w.b0 + m / w.ww) * k + w.a0 + m % w.ww) as u32;
        pairs.push((sub, cand));
    }
}

pub(super) const UNKNOWN: u8 = 0;
pub(super) const BOUNDARY: u8 = 1;
pub(super) const IN: u8 = 2;
pub(super) const OUT: u8 = 3;

/// Mark the sub-cells of the window `(a0, a1, b0, b1)` that the segment `p`–`q` (sub-cell
/// coordinates) passes within `MARGIN` of.
pub(super) fn mark_segment(
    p: (f64, f64),
    q: (f64, f64),
    (a0, a1, b0, b1): (usize, usize, usize, usize),
    marks: &mut [u8],
) {
    let ww = a1 - a0 + 1;
    let range = |lo: f64, hi: f64, min: usize, max: usize| -> Option<(usize, usize)> {
        let l = (lo - MARGIN).floor().max(min as f64);
        let h = (hi + MARGIN).floor().min(max as f64);
        (l <= h).then_some((l as usize, h as usize))
    };
    let Some((ia, ja)) = range(p.0.min(q.0), p.0.max(q.0), a0, a1) else {
        return;
    };
    let Some((ib, jb)) = range(p.1.min(q.1), p.1.max(q.1), b0, b1) else {
        return;
    };
    for b in ib..=jb {
        for a in ia..=ja {
            if touches(p, q, a as f64, b as f64) {
                marks[(b - b0) * ww + (a - a0)] = BOUNDARY;
            }
        }
    }
}

/// Does the segment `p`–`q` pass within `MARGIN` of the unit square at `(a, b)`, given
/// that their bounding boxes (the square's grown by `MARGIN`) overlap? Then only the
/// segment's own normal can separate them.
pub(super) fn touches(p: (f64, f64), q: (f64, f64), a: f64, b: f64) -> bool {
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (x0, x1) = (a - MARGIN, a + 1.0 + MARGIN);
    let (y0, y1) = (b - MARGIN, b + 1.0 + MARGIN);
    let side = |x: f64, y: f64| dx * (y - p.1) - dy * (x - p.0);
    let s = [side(x0, y0), side(x1, y0), side(x0, y1), side(x1, y1)];
    !(s.iter().all(|&v| v > 0.0) || s.iter().all(|&v| v < 0.0))
}
