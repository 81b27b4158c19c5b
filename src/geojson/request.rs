//! A request's geometry (the `geometry` member of `POST /v1/coverage/lookup` and the
//! like): a GeoJSON Geometry or Feature as one `geo::Geometry`. Unlike a crawled
//! territory, a request is answered or refused as a whole, so the first defect is the
//! answer (with the JSON pointer of where it stands) rather than one finding of many.
//! Bounded by the request body limit, so a `serde_json::Value` is fine here.

use geo::{Coord, Geometry, LineString, MultiPolygon, Point, Polygon};
use serde_json::Value;

/// Why a request geometry was refused; the text is the 400 answer's detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

type Read<T> = Result<T, RequestError>;

fn bad(m: impl Into<String>) -> RequestError {
    RequestError(m.into())
}

/// A longitude and latitude within WGS 84 ranges (RFC 7946 §4), or why not; the same
/// words as the `lon`/`lat` query parameters are refused with.
pub fn check_lon_lat(lon: f64, lat: f64) -> Result<(), String> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(format!("`lat` must be within -90..90, got {lat}"));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("`lon` must be within -180..180, got {lon}"));
    }
    Ok(())
}

fn position(v: &Value, at: &str) -> Read<Coord<f64>> {
    let a = v
        .as_array()
        .filter(|a| a.len() >= 2)
        .ok_or_else(|| bad(format!("{at}: a position is [lon, lat]")))?;
    let (x, y) = (
        a[0].as_f64()
            .ok_or_else(|| bad(format!("{at}: lon must be a number")))?,
        a[1].as_f64()
            .ok_or_else(|| bad(format!("{at}: lat must be a number")))?,
    );
    check_lon_lat(x, y).map_err(|e| bad(format!("{at}: {e}")))?;
    Ok(Coord { x, y })
}

/// The elements of an array member, each read by `item` with its pointer.
fn each<T>(
    v: &Value,
    at: &str,
    expected: &str,
    item: impl Fn(&Value, &str) -> Read<T>,
) -> Read<Vec<T>> {
    let a = v
        .as_array()
        .ok_or_else(|| bad(format!("{at}: expected {expected}")))?;
    a.iter()
        .enumerate()
        .map(|(i, x)| item(x, &format!("{at}/{i}")))
        .collect()
}

fn positions(v: &Value, at: &str) -> Read<Vec<Coord<f64>>> {
    each(v, at, "an array of positions", position)
}

fn polygon(v: &Value, at: &str) -> Read<Polygon<f64>> {
    if v.as_array().is_none_or(|r| r.is_empty()) {
        return Err(bad(format!("{at}: a polygon needs rings")));
    }
    let mut rings = each(v, at, "rings", |r, at| positions(r, at).map(LineString))?;
    let ext = rings.remove(0);
    if ext.0.len() < 4 {
        return Err(bad(format!("{at}: a ring needs at least 4 positions")));
    }
    Ok(Polygon::new(ext, rings))
}

/// A request geometry (a GeoJSON Geometry or Feature) as a `geo::Geometry`, validated
/// for WGS 84 ranges.
pub fn geometry_from_value(v: &Value) -> Read<Geometry<f64>> {
    let v = if v.get("type").and_then(Value::as_str) == Some("Feature") {
        v.get("geometry")
            .ok_or_else(|| bad("Feature without geometry"))?
    } else {
        v
    };
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("geometry needs a `type`"))?;
    let c = v
        .get("coordinates")
        .ok_or_else(|| bad("geometry needs `coordinates`"))?;
    let at = "/coordinates";
    Ok(match ty {
        "Point" => Geometry::Point(Point(position(c, at)?)),
        "MultiPoint" => Geometry::MultiPoint(positions(c, at)?.into_iter().map(Point).collect()),
        "LineString" => Geometry::LineString(LineString(positions(c, at)?)),
        "Polygon" => Geometry::Polygon(polygon(c, at)?),
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(each(c, at, "polygons", polygon)?)),
        other => return Err(bad(format!("unsupported geometry type {other:?}"))),
    })
}
