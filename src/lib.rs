//! cds-registry: finds, crawls, checks and indexes the public metadata that utilities
//! publish under the LF Energy CDS specification (WG1-01 server metadata), and answers
//! which utility serves a place, for which commodity, with which capabilities.
//!
//! Data flows one way: seeds → hosts → crawler → store → in-memory index → HTTP API.

pub mod api;
pub mod cds;
pub mod cli;
pub mod config;
pub mod crawl;
pub mod fixtures;
pub mod geocode;
pub mod geojson;
pub mod index;
pub mod metrics;
pub mod model;
pub mod seeds;
pub mod store;
pub mod territory;
