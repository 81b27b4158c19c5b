//! What reading one GeoJSON document may cost, and the counter that enforces it.

use std::cell::Cell;
use std::time::Instant;

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
    pub(crate) fn count(&self, n: usize) -> Result<(), Abort> {
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

    /// The limit that stopped reading, if one did.
    pub(crate) fn aborted(&self) -> Option<Abort> {
        self.abort.get()
    }

    /// Count positions from zero again, for a second (lenient) read of the same body.
    pub(crate) fn restart(&self) {
        self.count.set(0);
    }

    fn stop(&self, a: Abort) -> Result<(), Abort> {
        self.abort.set(Some(a));
        Err(a)
    }
}
