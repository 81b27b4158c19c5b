//! Test and benchmark support for cds-registry, kept out of the service crate so the
//! installed binary carries no test oracle (issue 16).
//!
//! - The fixture servers, utilities and the standard scenario are the demo's
//!   (`cds_registry::demo`), re-exported here so tests name one crate.
//! - [`expected`]: [`Expected`], the facts a crawl of the scenario must produce
//!   ([`ExpectedExt::expected`]).
//! - [`data`]: the vendored test data (`tests/data/`) and index entries made from it.
//! - [`documents`]: conforming CDS documents as JSON, for tests that break one field.
//! - [`aggregator`], [`feature_utility`]: fixture utilities with thousands of entries.
//! - [`geometry`]: large synthetic rings.

pub mod aggregator;
pub mod data;
pub mod documents;
pub mod expected;
pub mod feature_utility;
pub mod geometry;

pub use cds_registry::demo::*;
pub use expected::{
    Expected, ExpectedExt, ExpectedFailure, ExpectedMove, ExpectedPoint, ExpectedScope,
    ExpectedServer, ServedBy,
};
