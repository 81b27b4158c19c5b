//! Territories: the oriented `geo::MultiPolygon` a coverage entry covers, and the rules
//! its rings must follow (RFC 7946 §3.1.6): [`sweep`] is the O(n log n) self-intersection
//! check, `oracle` the old pairwise parser kept for tests. Reading one from GeoJSON is
//! [`crate::geojson`]'s; its entry points are re-exported here under the names the
//! crawler, the store and the tests have always used.

use geo::{BoundingRect, Coord, MultiPolygon};

use crate::geojson::Budget;

pub use crate::geojson::{
    from_wkb, parse_document, parse_territory, read_document, to_wkb, Abort, GeoLimits, WkbError,
};

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

/// Does this closed ring intersect itself (RFC 7946 §3.1.6), by the rule in [`sweep`]?
/// Unbounded: for benchmarks and trusted input.
pub fn ring_self_intersects(ring: &[Coord<f64>]) -> bool {
    sweep::ring_self_intersects(ring, &Budget::new(GeoLimits::UNLIMITED)).unwrap_or(true)
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests;
