//! A two-level grid that answers "which polygon parts may contain this point" in O(1),
//! and for most points also "this part certainly contains it", with no point-in-polygon
//! test at all.
//!
//! Why: on the US counties an R-tree descent cost as much as the point-in-polygon test
//! after it (~200 ns each under load), and batch lookups must reach millions of points per
//! second. The R-tree stays for box and geometry queries.
//!
//! Level 1 is a uniform grid over the extent of all parts, about four cells per part.
//! Each non-empty level-1 cell is split into k×k sub-cells, k chosen from the size of the
//! parts meeting it (small parts, fine split). Each sub-cell lists the parts that meet it,
//! flagged *inside* when no boundary segment comes near the sub-cell (then every point of
//! the sub-cell is inside: the winding number is constant on a region no boundary
//! crosses). Sub-cells crossed by a boundary list the part unflagged: the caller runs the
//! exact test. Parts only appear in sub-cells within their own bounding box, so a territory
//! on both sides of the antimeridian costs nothing elsewhere.
//!
//! Exactness: build and query map a coordinate to a cell with the same floating-point
//! operations, and a sub-cell counts as boundary-free only if no segment comes within
//! `MARGIN` sub-cell widths of it, far more than the rounding error of that mapping.

use geo::Polygon;

use super::spatial::Part;

mod marks;
mod update;

use marks::{fill_region, mark_segment, push_pairs, touches, SubCells, IN, OUT, UNKNOWN};

/// Margin, in sub-cell widths, by which sub-cells are grown when testing for boundary
/// segments (rounding errors of the coordinate mapping are ~1e-12 of that).
const MARGIN: f64 = 1e-6;
/// Level-1 cells per part, and the cap per axis (bounds memory on odd extents).
const CELLS_PER_PART: f64 = 4.0;
const MAX_CELLS_PER_AXIS: f64 = 1024.0;

/// Bands of level-1 rows a build buckets segments in, one at a time ([`PointGrid::build`]).
const BANDS: usize = 16;
/// Sub-cells per axis: about `SPLIT / (median part size in level-1 cells)`, at most `MAX_K`
/// (so that a cell's k² + 1 lists are numbered by one byte).
const SPLIT: f64 = 8.0;
const MAX_K: usize = 15;
/// Flag on an entry: the sub-cell lies strictly inside the part.
pub(crate) const INSIDE: u32 = 1 << 31;

#[derive(Clone, Copy, Default)]
struct Cell {
    /// The cell's block in `blocks` (see there).
    start: u32,
    /// Sub-cells per axis; 0 for an empty cell.
    k: u16,
    /// The cell's distinct lists (an update copies that many offsets and no more).
    lists: u16,
}

/// Words of a cell's block that hold its k² + 1 list numbers, four per word.
#[inline]
fn number_words(k: usize) -> usize {
    (k * k + 1).div_ceil(4)
}

/// One candidate, four bytes: `territory | INSIDE` when the sub-cell is inside a part of
/// that territory (the common case: the answer, without touching the part at all), else
/// the part to test exactly (which knows its territory). Half the size of a (part,
/// territory) pair, so the grid's largest array, and the copy an update makes of it, is
/// half as large (docs/PERFORMANCE.md "Scale").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate(u32);

impl Candidate {
    pub fn inside(terr: u32) -> Candidate {
        debug_assert!(terr < INSIDE);
        Candidate(terr | INSIDE)
    }

    pub fn boundary(part: u32) -> Candidate {
        debug_assert!(part < INSIDE);
        Candidate(part)
    }

    /// `Ok(territory)` when the point is inside it, `Err(part)` for the exact test.
    #[inline]
    pub fn get(self) -> Result<u32, u32> {
        if self.0 & INSIDE != 0 {
            Ok(self.0 & !INSIDE)
        } else {
            Err(self.0)
        }
    }
}

/// A segment in level-1 coordinates, with the cell and part it is bucketed under.
type Seg = (u32, u32, [f64; 4]);

/// Buffers a build reuses across its bands of rows.
#[derive(Default)]
struct Band {
    parts: Vec<u32>,
    segs: Vec<Seg>,
    scratch: Scratch,
}

/// Buffers reused across cells.
#[derive(Default)]
struct Scratch {
    pairs: Vec<(u32, Candidate)>,
    numbers: Vec<u8>,
    offsets: Vec<u32>,
    marks: Vec<u8>,
    stack: Vec<usize>,
}

pub(crate) struct PointGrid {
    x0: f64,
    y0: f64,
    /// Level-1 cells per degree.
    sx: f64,
    sy: f64,
    nx: usize,
    ny: usize,
    /// The number of parts the cell size was chosen for (an update keeps the layout).
    layout_parts: usize,
    cells: Vec<Cell>,
    /// One block per non-empty cell: the number of each sub-cell's list (k² sub-cells row
    /// by row, then the list of the parts containing the whole cell), one byte each, four
    /// to a word; then where each of the cell's lists starts in `candidates`, and where
    /// the last ends. Neighbouring sub-cells mostly hold the same list (all inside one
    /// part, or empty: 58 % of the sub-cells of the 100,000-territory aggregator), so a
    /// list is stored once per run of equal neighbours and a sub-cell costs a byte, not a
    /// four-byte offset; and a lookup finds the number and the offsets in one block
    /// (docs/PERFORMANCE.md, "Catch-up").
    blocks: Vec<u32>,
    candidates: Vec<Candidate>,
}

impl PointGrid {
    /// Level-1 cell coordinates of a point, `None` outside the grid (or NaN).
    #[inline]
    fn locate(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let u = (x - self.x0) * self.sx;
        let v = (y - self.y0) * self.sy;
        (u >= 0.0 && v >= 0.0 && u < self.nx as f64 && v < self.ny as f64).then_some((u, v))
    }

    /// List `n` of a cell whose offsets start at `blocks[offs]`.
    #[inline]
    fn list(&self, offs: usize, n: u8) -> &[Candidate] {
        let o = offs + n as usize;
        &self.candidates[self.blocks[o] as usize..self.blocks[o + 1] as usize]
    }

    /// The list number of sub-cell `s` of the cell whose block starts at `start`.
    #[inline]
    fn number(&self, start: usize, s: usize) -> u8 {
        (self.blocks[start + s / 4] >> (8 * (s % 4))) as u8
    }

    /// The parts that may contain `(x, y)`: those of its sub-cell, and those containing its
    /// whole level-1 cell (all flagged inside). A part appears in at most one of the two.
    #[inline]
    pub fn candidates(&self, x: f64, y: f64) -> (&[Candidate], &[Candidate]) {
        let Some((u, v)) = self.locate(x, y) else {
            return (&[], &[]);
        };
        let (i, j) = (u as usize, v as usize);
        let cell = self.cells[j * self.nx + i];
        if cell.k == 0 {
            return (&[], &[]);
        }
        let k = cell.k as usize;
        let a = (((u - i as f64) * k as f64) as usize).min(k - 1);
        let b = (((v - j as f64) * k as f64) as usize).min(k - 1);
        let start = cell.start as usize;
        let offs = start + number_words(k);
        (
            self.list(offs, self.number(start, b * k + a)),
            self.list(offs, self.number(start, k * k)),
        )
    }

    pub fn build<'a>(parts: &[Part], poly_of: impl Fn(&Part) -> &'a Polygon<f64>) -> PointGrid {
        let mut grid = PointGrid::layout(parts);
        if parts.is_empty() {
            return grid;
        }
        // Which parts meet which level-1 cell (by bounding box), as (cell, part) pairs.
        let mut cell_parts: Vec<(u32, u32)> = Vec::new();
        for (pi, p) in parts.iter().enumerate() {
            grid.push_cells_of(p.bbox, pi as u32, |_| true, &mut cell_parts);
        }
        cell_parts.sort_unstable();

        // Segments are bucketed one band of level-1 rows at a time, the cells computed in
        // the same order as from one bucketing of all. All at once (40 bytes per segment
        // and cell it may touch, ~8 M at 100,000 territories) was a 320 MB vector: the
        // peak of a replica's start, and the heap it kept afterwards (docs/PERFORMANCE.md).
        // A part in two bands has its rings walked twice.
        let rows_per_band = grid.ny.div_ceil(BANDS);
        let mut band = Band::default();
        let mut at = 0;
        for first_row in (0..grid.ny).step_by(rows_per_band) {
            let end_row = (first_row + rows_per_band).min(grid.ny);
            let cells = (first_row * grid.nx) as u32..(end_row * grid.nx) as u32;
            let len = cell_parts[at..].partition_point(|cp| cp.0 < cells.end);
            grid.build_band(&cell_parts[at..at + len], cells, parts, &poly_of, &mut band);
            at += len;
        }
        grid
    }

    /// An empty grid whose cells suit `parts`: about [`CELLS_PER_PART`] level-1 cells per
    /// part over the extent of their boxes, at most [`MAX_CELLS_PER_AXIS`] per axis.
    fn layout(parts: &[Part]) -> PointGrid {
        let mut grid = PointGrid {
            x0: 0.0,
            y0: 0.0,
            sx: 1.0,
            sy: 1.0,
            nx: 0,
            ny: 0,
            layout_parts: parts.len(),
            cells: Vec::new(),
            blocks: Vec::new(),
            candidates: Vec::new(),
        };
        if parts.is_empty() {
            return grid;
        }
        let mut ext = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for p in parts {
            ext[0] = ext[0].min(p.bbox[0]);
            ext[1] = ext[1].min(p.bbox[1]);
            ext[2] = ext[2].max(p.bbox[2]);
            ext[3] = ext[3].max(p.bbox[3]);
        }
        let w = (ext[2] - ext[0]).max(1e-9);
        let h = (ext[3] - ext[1]).max(1e-9);
        // u32 offsets, and part or territory ids with a flag bit.
        assert!(parts.len() < INSIDE as usize, "too many polygon parts");
        debug_assert!(parts.iter().all(|p| p.terr < INSIDE));
        let side = (w * h / (CELLS_PER_PART * parts.len() as f64)).sqrt();
        let cw = side.max(w / MAX_CELLS_PER_AXIS);
        let ch = side.max(h / MAX_CELLS_PER_AXIS);
        // floor + 1: the extent's maximum falls inside the last cell, not on its edge.
        grid.nx = (w / cw).floor() as usize + 1;
        grid.ny = (h / ch).floor() as usize + 1;
        grid.x0 = ext[0];
        grid.y0 = ext[1];
        grid.sx = 1.0 / cw;
        grid.sy = 1.0 / ch;
        grid.cells = vec![Cell::default(); grid.nx * grid.ny];
        grid
    }

    /// Compute the cells of one band of level-1 rows (`cells`), from the `(cell, part)`
    /// pairs that fall in it, sorted.
    fn build_band<'a>(
        &mut self,
        pairs: &[(u32, u32)],
        cells: std::ops::Range<u32>,
        parts: &[Part],
        poly_of: &impl Fn(&Part) -> &'a Polygon<f64>,
        band: &mut Band,
    ) {
        let keep = |c: u32| cells.contains(&c);
        self.segments_of(pairs, parts, poly_of, keep, &mut band.parts, &mut band.segs);
        let mut by_cell = ByCell::new(pairs, &band.segs);
        while let Some(&(cell, _)) = pairs.get(by_cell.parts_at) {
            let (here, cell_segs) = by_cell.take(cell);
            self.compute_cell(cell, here, cell_segs, parts, &mut band.scratch);
        }
    }

    /// Into `segs`, sorted by cell and part: the segments of the parts named in `pairs`
    /// (`(cell, part)`), bucketed by the cells `keep` accepts. `ids` is a buffer for the
    /// distinct parts.
    fn segments_of<'a>(
        &self,
        pairs: &[(u32, u32)],
        parts: &[Part],
        poly_of: &impl Fn(&Part) -> &'a Polygon<f64>,
        keep: impl Fn(u32) -> bool + Copy,
        ids: &mut Vec<u32>,
        segs: &mut Vec<Seg>,
    ) {
        ids.clear();
        ids.extend(pairs.iter().map(|cp| cp.1));
        ids.sort_unstable();
        ids.dedup();
        segs.clear();
        for &pi in ids.iter() {
            self.bucket_segments(pi, poly_of(&parts[pi as usize]), keep, segs);
        }
        segs.sort_unstable_by_key(|&(c, p, _)| (c, p));
    }

    /// Push `(cell, part)` for every level-1 cell the box meets (of those `keep` accepts).
    fn push_cells_of(
        &self,
        bbox: [f64; 4],
        pi: u32,
        keep: impl Fn(u32) -> bool,
        out: &mut Vec<(u32, u32)>,
    ) {
        let (i0, j0, i1, j1) = self.cell_range(bbox, 0.0);
        for j in j0..=j1 {
            for i in i0..=i1 {
                let c = (j * self.nx + i) as u32;
                if keep(c) {
                    out.push((c, pi));
                }
            }
        }
    }

    /// Each segment of the polygon, in level-1 coordinates, bucketed by the cells it may
    /// touch (those `keep` accepts).
    fn bucket_segments(
        &self,
        pi: u32,
        poly: &Polygon<f64>,
        keep: impl Fn(u32) -> bool,
        segs: &mut Vec<Seg>,
    ) {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for l in ring.lines() {
                let s = [
                    (l.start.x - self.x0) * self.sx,
                    (l.start.y - self.y0) * self.sy,
                    (l.end.x - self.x0) * self.sx,
                    (l.end.y - self.y0) * self.sy,
                ];
                let bb = [
                    l.start.x.min(l.end.x),
                    l.start.y.min(l.end.y),
                    l.start.x.max(l.end.x),
                    l.start.y.max(l.end.y),
                ];
                // Grow by a margin of level-1 units: a segment on a cell edge marks both.
                let (i0, j0, i1, j1) = self.cell_range(bb, MARGIN);
                let long = i1 - i0 > 1 && j1 - j0 > 1;
                for j in j0..=j1 {
                    for i in i0..=i1 {
                        let cell = (j * self.nx + i) as u32;
                        if !keep(cell) {
                            continue;
                        }
                        // A long diagonal edge passes near few of the cells of its box.
                        if long && !touches((s[0], s[1]), (s[2], s[3]), i as f64, j as f64) {
                            continue;
                        }
                        segs.push((cell, pi, s));
                    }
                }
            }
        }
    }

    /// Compute the lists of one level-1 cell from the parts meeting it and their segments
    /// near it, and append them.
    fn compute_cell(
        &mut self,
        cell: u32,
        here: &[(u32, u32)],
        segs: &[Seg],
        parts: &[Part],
        scratch: &mut Scratch,
    ) {
        let k = self.cell_lists(cell, here, segs, parts, scratch);
        self.push_cell(cell, k, scratch);
    }

    /// Append the lists of `cell` (sub-cell pairs from [`PointGrid::cell_lists`]). A
    /// sub-cell whose list equals that of its left or lower neighbour, the list made last,
    /// or the empty list gets that list's number instead of a copy.
    fn push_cell(&mut self, cell: u32, k: usize, scratch: &mut Scratch) {
        let pairs = &mut scratch.pairs;
        if pairs.is_empty() {
            return;
        }
        pairs.sort_by_key(|&(s, _)| s);
        // The cell's lists start where the candidates end now: offsets[n]..offsets[n + 1].
        let offsets = &mut scratch.offsets;
        offsets.clear();
        offsets.push(self.candidates.len() as u32);
        let numbers = &mut scratch.numbers;
        numbers.clear();
        let range = |o: &[u32], n: u8| o[n as usize] as usize..o[n as usize + 1] as usize;
        let mut empty = None;
        let mut next = pairs.iter().peekable();
        for sub in 0..=k * k {
            let from = self.candidates.len();
            while let Some(&(_, c)) = next.next_if(|(s, _)| *s as usize == sub) {
                self.candidates.push(c);
            }
            let fresh = &self.candidates[from..];
            let same = if fresh.is_empty() {
                empty
            } else {
                let left = (sub % k != 0 && sub < k * k).then(|| numbers[sub - 1]);
                let below = (sub >= k && sub < k * k).then(|| numbers[sub - k]);
                let last = (offsets.len() - 1).checked_sub(1).map(|n| n as u8);
                [left, below, last]
                    .into_iter()
                    .flatten()
                    .find(|&n| self.candidates[range(offsets, n)] == *fresh)
            };
            let n = match same {
                Some(n) => {
                    self.candidates.truncate(from);
                    n
                }
                None => {
                    // At most k² + 1 <= 226 lists per cell (MAX_K): a byte numbers them.
                    offsets.push(self.candidates.len() as u32);
                    (offsets.len() - 2) as u8
                }
            };
            if range(offsets, n).is_empty() {
                empty = Some(n);
            }
            numbers.push(n);
        }
        self.cells[cell as usize] = Cell {
            start: self.blocks.len() as u32,
            k: k as u16,
            lists: (offsets.len() - 1) as u16,
        };
        self.blocks.extend(numbers.chunks(4).map(|w| {
            w.iter()
                .enumerate()
                .fold(0u32, |word, (i, &n)| word | (n as u32) << (8 * i))
        }));
        self.blocks.extend_from_slice(offsets);
    }

    /// The sub-cell split `k` of one level-1 cell and its `(sub-cell, candidate)` pairs (in
    /// `scratch.pairs`; sub-cell `k²` is the whole-cell list), from the parts meeting it
    /// (`here`, sorted by part) and their segments near it (`segs`, sorted by part).
    fn cell_lists(
        &self,
        cell: u32,
        here: &[(u32, u32)],
        segs: &[Seg],
        parts: &[Part],
        scratch: &mut Scratch,
    ) -> usize {
        scratch.pairs.clear();
        let k = self.split_of(here, parts);
        let at = SubCells {
            ci: cell as usize % self.nx,
            cj: cell as usize / self.nx,
            k,
        };
        let mut seg_at = 0;
        for &(_, pi) in here {
            let part = &parts[pi as usize];
            let part_segs = run(segs, &mut seg_at, pi, |s| s.1);
            let w = at.window(self, part.bbox);
            let marks = &mut scratch.marks;
            marks.clear();
            marks.resize(w.len(), UNKNOWN);
            for &(_, _, s) in part_segs {
                let p = (at.local(s[0], at.ci), at.local(s[1], at.cj));
                let q = (at.local(s[2], at.ci), at.local(s[3], at.cj));
                mark_segment(p, q, (w.a0, w.a1, w.b0, w.b1), marks);
            }
            for start in 0..marks.len() {
                if marks[start] == UNKNOWN {
                    let state = if part.contains(at.centre(self, &w, start)) {
                        IN
                    } else {
                        OUT
                    };
                    fill_region(marks, &mut scratch.stack, w.ww, start, state);
                }
            }
            push_pairs(&mut scratch.pairs, marks, &w, k, pi, part.terr);
        }
        k
    }

    /// Sub-cells per axis for one level-1 cell: finer where the parts meeting it are small
    /// relative to the cell.
    fn split_of(&self, here: &[(u32, u32)], parts: &[Part]) -> usize {
        let mut sizes: Vec<f64> = here
            .iter()
            .map(|&(_, pi)| {
                let b = parts[pi as usize].bbox;
                ((b[2] - b[0]) * self.sx).min((b[3] - b[1]) * self.sy)
            })
            .collect();
        sizes.sort_unstable_by(f64::total_cmp);
        let median = sizes[sizes.len() / 2];
        // ... but not much finer than the number of parts warrants: a lone small part in
        // a big cell needs a few sub-cells to be skipped by most points, not 256.
        let by_count = (SPLIT * (here.len() as f64).sqrt()).ceil();
        (SPLIT / median)
            .ceil()
            .min(by_count)
            .clamp(1.0, MAX_K as f64) as usize
    }

    /// Level-1 cells meeting the box `[x0, y0, x1, y1]` grown by `margin` cells, clamped.
    fn cell_range(&self, b: [f64; 4], margin: f64) -> (usize, usize, usize, usize) {
        let ix = |x: f64| (x - self.x0) * self.sx;
        let iy = |y: f64| (y - self.y0) * self.sy;
        let clampx = |u: f64| u.floor().clamp(0.0, (self.nx - 1) as f64) as usize;
        let clampy = |v: f64| v.floor().clamp(0.0, (self.ny - 1) as f64) as usize;
        (
            clampx(ix(b[0]) - margin),
            clampy(iy(b[1]) - margin),
            clampx(ix(b[2]) + margin),
            clampy(iy(b[3]) + margin),
        )
    }
}

/// The parts meeting each level-1 cell and the segments near it, both sorted by cell,
/// taken cell by cell in ascending order.
struct ByCell<'a> {
    cell_parts: &'a [(u32, u32)],
    segs: &'a [Seg],
    parts_at: usize,
    segs_at: usize,
}

impl<'a> ByCell<'a> {
    fn new(cell_parts: &'a [(u32, u32)], segs: &'a [Seg]) -> ByCell<'a> {
        ByCell {
            cell_parts,
            segs,
            parts_at: 0,
            segs_at: 0,
        }
    }

    /// The pairs and segments of `cell`; those of earlier cells not taken are skipped.
    fn take(&mut self, cell: u32) -> (&'a [(u32, u32)], &'a [Seg]) {
        (
            run(self.cell_parts, &mut self.parts_at, cell, |cp| cp.0),
            run(self.segs, &mut self.segs_at, cell, |s| s.0),
        )
    }
}

/// In `items` sorted by `key`, from `*at` on: skip the items keyed below `k` and return
/// those keyed `k`, leaving `*at` after them.
fn run<'a, T>(items: &'a [T], at: &mut usize, k: u32, key: impl Fn(&T) -> u32) -> &'a [T] {
    while *at < items.len() && key(&items[*at]) < k {
        *at += 1;
    }
    let start = *at;
    while *at < items.len() && key(&items[*at]) == k {
        *at += 1;
    }
    &items[start..*at]
}
