//! An incremental update of the grid: the next snapshot's grid keeps this one's layout and
//! computes again only the level-1 cells a changed part meets (docs/PERFORMANCE.md,
//! "Incremental index updates").

use geo::Polygon;

use super::{number_words, ByCell, Candidate, Cell, PointGrid, Scratch, INSIDE};
use crate::index::spatial::Part;

impl PointGrid {
    /// The grid for `parts` (the next snapshot's, renumbered) reusing this one's layout and
    /// every level-1 cell that no changed part meets: only the cells met by the bounding
    /// boxes in `changed` (removed parts' and added parts' boxes) are computed again, the
    /// rest are copied with their ids mapped through `part_map` (old part -> new part,
    /// `u32::MAX` for removed) and `terr_map` (old territory -> new, likewise). The cost
    /// is the copy (memory speed, proportional to the grid), a pass over the parts'
    /// boxes, and the segments of the parts meeting changed cells. `None` when the layout
    /// no longer fits (a part outside the extent, or the number of parts far from the one
    /// the cell size was chosen for): build afresh.
    pub fn update<'a>(
        &self,
        parts: &[Part],
        poly_of: impl Fn(&Part) -> &'a Polygon<f64>,
        part_map: &[u32],
        terr_map: &[u32],
        changed: &[[f64; 4]],
    ) -> Option<PointGrid> {
        let n = parts.len();
        if self.nx == 0
            || n >= INSIDE as usize
            || n > self.layout_parts * 2
            || n * 2 < self.layout_parts
        {
            return None;
        }
        let touched = self.touched_cells(changed)?;

        // The parts meeting each changed cell, decided as the full build does (by bounding
        // box): one pass over every part's cell range. An R-tree query per changed cell
        // needed the next snapshot's R-tree at once, and bulk-loading it was ~9 % of a
        // replica's catch-up (docs/PERFORMANCE.md).
        let mut cell_parts: Vec<(u32, u32)> = Vec::new();
        for (pi, p) in parts.iter().enumerate() {
            self.push_cells_of(p.bbox, pi as u32, |c| touched[c as usize], &mut cell_parts);
        }
        cell_parts.sort_unstable();

        let (mut involved, mut segs) = (Vec::new(), Vec::new());
        let keep = |c: u32| touched[c as usize];
        self.segments_of(&cell_parts, parts, &poly_of, keep, &mut involved, &mut segs);

        let mut grid = PointGrid {
            cells: vec![Cell::default(); self.nx * self.ny],
            blocks: Vec::with_capacity(self.blocks.len()),
            candidates: Vec::with_capacity(self.candidates.len()),
            ..*self
        };
        let mut scratch = Scratch::default();
        let mut by_cell = ByCell::new(&cell_parts, &segs);
        for cell in 0..(self.nx * self.ny) as u32 {
            if touched[cell as usize] {
                let (here, cell_segs) = by_cell.take(cell);
                if !here.is_empty() {
                    grid.compute_cell(cell, here, cell_segs, parts, &mut scratch);
                }
            } else {
                grid.copy_cell(self, cell, part_map, terr_map);
            }
        }
        Some(grid)
    }

    /// Which level-1 cells the boxes meet, by cell; `None` when a box leaves the extent.
    fn touched_cells(&self, changed: &[[f64; 4]]) -> Option<Vec<bool>> {
        let mut touched = vec![false; self.nx * self.ny];
        for b in changed {
            // Both corners in the grid (a box's minimum never exceeds its maximum).
            self.locate(b[0], b[1])?;
            self.locate(b[2], b[3])?;
            let (i0, j0, i1, j1) = self.cell_range(*b, 0.0);
            for j in j0..=j1 {
                touched[j * self.nx + i0..=j * self.nx + i1].fill(true);
            }
        }
        Some(touched)
    }

    /// Append `old`'s cell `cell` unchanged but for its ids, mapped to the next snapshot's.
    fn copy_cell(&mut self, old: &PointGrid, cell: u32, part_map: &[u32], terr_map: &[u32]) {
        let was = old.cells[cell as usize];
        if was.k == 0 {
            return;
        }
        // No removed part meets an unchanged cell (its cells are all changed), so the
        // cell's lists move over whole: one pass over its candidates, ids mapped. Its
        // list numbers stay; its offsets move with its candidates.
        let start = was.start as usize;
        let words = number_words(was.k as usize);
        let offs = &old.blocks[start + words..=start + words + was.lists as usize];
        let (c0, c1) = (offs[0] as usize, offs[offs.len() - 1] as usize);
        self.cells[cell as usize] = Cell {
            start: self.blocks.len() as u32,
            ..was
        };
        let shift = self.candidates.len() as i64 - c0 as i64;
        self.blocks
            .extend_from_slice(&old.blocks[start..start + words]);
        self.blocks
            .extend(offs.iter().map(|&o| (o as i64 + shift) as u32));
        self.candidates
            .extend(old.candidates[c0..c1].iter().map(|c| match c.get() {
                // Never a removed one (`u32::MAX`, which the constructors' debug
                // assertions refuse): its cells are all changed.
                Ok(t) => Candidate::inside(terr_map[t as usize]),
                Err(p) => Candidate::boundary(part_map[p as usize]),
            }));
    }
}
