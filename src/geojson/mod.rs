//! The one GeoJSON reader, for crawled territories and for request geometries: any
//! GeoJSON object in, one oriented `geo::MultiPolygon` out, plus the findings the spec asks
//! for (CDS-SPEC-NOTES §5), each with a JSON pointer; a WKB codec for storage.
//!
//! We read GeoJSON ourselves instead of through a GeoJSON crate so that every defect
//! becomes a classified finding with a JSON pointer (a crate would give one opaque error),
//! and so a broken ring is skipped or repaired instead of failing the whole file.
//!
//! A territory is untrusted input of up to `crawl.max_geojson_bytes`, so its cost is
//! bounded ([`GeoLimits`]): the JSON is read straight into compact coordinate vectors
//! ([`node`], no `serde_json::Value` tree, which costs several times the body), positions
//! are counted while reading so an oversized document stops early (`GEO-TOO-LARGE`), the
//! self-intersection check is a sweep line (O(n log n), see [`crate::territory::sweep`]),
//! and every long loop looks at a deadline (`GEO-TOO-COSTLY`).
//!
//! - [`limits`]: what a document may cost, and the counter that enforces it;
//! - [`node`]: JSON straight into compact nodes;
//! - [`walk`]: the nodes' GeoJSON objects to polygons and findings;
//! - [`request`]: a request's geometry (the API's `geometry` body member);
//! - [`wkb`]: the storage codec.

use serde::de::{self, DeserializeSeed};
use serde_json::Value;

use crate::cds::lenient::{self, Parsed};
use crate::cds::validate::{self, rules};
use crate::cds::{Finding, Severity};
use crate::territory::Territory;

pub mod limits;
mod node;
pub mod request;
pub(crate) mod walk;
pub mod wkb;

pub(crate) use limits::Budget;
pub use limits::{Abort, GeoLimits};
pub use request::{geometry_from_value, RequestError};
pub use wkb::{from_wkb, to_wkb, WkbError};

use node::{Item, ItemSeed};

/// [`read_document`], with a body that is not JSON reported as `GEO-NO-POLYGON` (for
/// callers with no earlier state to fall back on).
pub fn parse_document(
    body: &[u8],
    url: &str,
    limits: GeoLimits,
) -> (Option<Territory>, Vec<Finding>) {
    read_document(body, url, limits).unwrap_or_else(|not_json| {
        let f = Finding::new(rules::GEO_NO_POLYGON, Severity::Error, url, "", not_json);
        (None, vec![f])
    })
}

/// Read one fetched GeoJSON document under `limits`: JSON (strict, else lenient with a
/// `JSON-LENIENT` finding), then [`parse_territory`]'s rules. A document over a limit
/// yields no territory and one `GEO-TOO-LARGE` or `GEO-TOO-COSTLY` error finding. A body
/// that is not JSON at all is `Err` with the reason: the crawler treats it as a linked
/// document that failed for good (CDS-SPEC-NOTES §5a, `COV-GEO-FETCH`), which keeps the
/// territory last read from the same URL.
pub fn read_document(
    body: &[u8],
    url: &str,
    limits: GeoLimits,
) -> Result<(Option<Territory>, Vec<Finding>), String> {
    let budget = Budget::new(limits);
    let read = |bytes: &[u8]| -> Result<Item, serde_json::Error> {
        if budget.aborted().is_some() {
            // Never retry leniently after a limit: the second pass would cost as much.
            return Err(de::Error::custom("limit reached"));
        }
        budget.restart();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let item = ItemSeed(&budget).deserialize(&mut de)?;
        de.end()?;
        Ok(item)
    };
    let mut findings = Vec::new();
    let item = match lenient::parse_with(body, read) {
        Ok((item, p)) => {
            if p == Parsed::Lenient {
                findings.push(validate::finding_lenient_json(url));
            }
            item
        }
        Err(e) => {
            match budget.aborted() {
                Some(a) => findings.push(abort_finding(a, url, limits)),
                None => return Err(format!("GeoJSON is not valid JSON: {e}")),
            }
            return Ok((None, findings));
        }
    };
    match walk::interpret(item, url, &budget) {
        Ok((t, f)) => {
            findings.extend(f);
            Ok((t, findings))
        }
        Err(a) => {
            findings.push(abort_finding(a, url, limits));
            Ok((None, findings))
        }
    }
}

fn abort_finding(a: Abort, url: &str, limits: GeoLimits) -> Finding {
    match a {
        Abort::TooLarge => Finding::new(
            rules::GEO_TOO_LARGE,
            Severity::Error,
            url,
            "",
            format!(
                "the GeoJSON holds more than {} positions (crawl.max_territory_vertices); not stored",
                limits.max_vertices
            ),
        )
        .expected(format!("at most {} positions", limits.max_vertices)),
        Abort::TooCostly => Finding::new(
            rules::GEO_TOO_COSTLY,
            Severity::Error,
            url,
            "",
            format!(
                "reading and validating the GeoJSON took longer than {} ms (crawl.geojson_budget_ms); not stored",
                limits.budget_ms
            ),
        ),
    }
}

/// Parse any GeoJSON object (Geometry, Feature, FeatureCollection, GeometryCollection) into
/// the union of its (Multi)Polygons. Returns `None` when no usable polygon is left or the
/// coordinates are not WGS 84; the findings say why. No limits: for trusted input; the
/// crawler uses [`parse_document`].
pub fn parse_territory(doc: &Value, url: &str) -> (Option<Territory>, Vec<Finding>) {
    let budget = Budget::new(GeoLimits::UNLIMITED);
    let item = ItemSeed(&budget)
        .deserialize(doc)
        .expect("a Value always reads");
    walk::interpret(item, url, &budget).expect("no limits, no abort")
}
