//! Query-string parsing for the search endpoints: the shared filters (DESIGN.md, "HTTP
//! API"), validated with a 400 that names the problem. Unknown parameter names are errors,
//! so a typo (`comodity=`) never silently widens a search.

use std::collections::HashMap;

use crate::index::Filter;

use super::ApiError;

/// Filter parameter names shared by the search endpoints.
pub const FILTER_NAMES: &[&str] = &[
    "country",
    "commodity",
    "capability",
    "infrastructure",
    "role",
    "type",
    "scope",
    "q",
    "lat",
    "lon",
    "bbox",
];

/// A parsed query: the filter and the endpoint's other parameters.
#[derive(Debug, Default)]
pub struct Parsed {
    pub filter: Filter,
    pub extra: HashMap<String, String>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn number(name: &str, v: &str) -> Result<f64, ApiError> {
    let x: f64 = v
        .trim()
        .parse()
        .map_err(|_| bad(format!("`{name}` must be a number, got {v:?}")))?;
    if !x.is_finite() {
        return Err(bad(format!("`{name}` must be finite, got {v:?}")));
    }
    Ok(x)
}

/// Check a WGS 84 point.
pub fn check_point(lon: f64, lat: f64) -> Result<(), ApiError> {
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(bad(format!("`lat` must be within -90..90, got {lat}")));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(bad(format!("`lon` must be within -180..180, got {lon}")));
    }
    Ok(())
}

/// Parse `raw` (the query string). `extra` lists the endpoint's own parameter names.
pub fn parse(raw: Option<&str>, extra: &[&str]) -> Result<Parsed, ApiError> {
    let mut out = Parsed::default();
    let mut lat = None;
    let mut lon = None;
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let k = k.as_ref();
        let list = || -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match k {
            "country" => out.filter.country.extend(list()),
            "commodity" => out.filter.commodity.extend(list()),
            "capability" => out.filter.capability.extend(list()),
            "infrastructure" => out.filter.infrastructure.extend(list()),
            "role" => out.filter.role.extend(list()),
            "type" => out.filter.kind.extend(list()),
            "scope" => out.filter.scope.extend(list()),
            "q" => {
                if v.len() > 200 {
                    return Err(bad("`q` is limited to 200 characters"));
                }
                let t = v.trim();
                if !t.is_empty() {
                    out.filter.q = Some(t.to_owned());
                }
            }
            "lat" => lat = Some(number("lat", &v)?),
            "lon" => lon = Some(number("lon", &v)?),
            "bbox" => {
                let parts: Vec<&str> = v.split(',').collect();
                if parts.len() != 4 {
                    return Err(bad(format!(
                        "`bbox` is minLon,minLat,maxLon,maxLat (4 numbers), got {v:?}"
                    )));
                }
                let mut b = [0.0; 4];
                for (i, p) in parts.iter().enumerate() {
                    b[i] = number("bbox", p)?;
                }
                check_point(b[0], b[1])?;
                check_point(b[2], b[3])?;
                if b[1] > b[3] {
                    return Err(bad("`bbox` minLat must not exceed maxLat"));
                }
                // minLon > maxLon is a box across the antimeridian: allowed.
                out.filter.bbox = Some(b);
            }
            other if extra.contains(&other) => {
                out.extra.insert(other.to_owned(), v.into_owned());
            }
            other => {
                let mut allowed: Vec<&str> = FILTER_NAMES.to_vec();
                allowed.extend_from_slice(extra);
                return Err(bad(format!(
                    "unknown parameter `{other}`; allowed: {}",
                    allowed.join(", ")
                )));
            }
        }
    }
    match (lon, lat) {
        (Some(lon), Some(lat)) => {
            check_point(lon, lat)?;
            out.filter.point = Some((lon, lat));
        }
        (None, None) => {}
        _ => return Err(bad("`lat` and `lon` go together")),
    }
    Ok(out)
}

/// For endpoints that take no query parameters: any parameter is a 400 naming it, as an
/// unknown name is on the search endpoints (a typo never passes silently).
pub fn none(raw: Option<&str>) -> Result<(), ApiError> {
    match url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).next() {
        Some((k, _)) => Err(bad(format!(
            "unknown parameter `{k}`; this endpoint takes no query parameters"
        ))),
        None => Ok(()),
    }
}

/// `limit` with a default and a maximum.
pub fn limit(p: &Parsed, default: usize, max: usize) -> Result<usize, ApiError> {
    match p.extra.get("limit") {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad(format!(
                "`limit` must be an integer 1..{max}, got {v:?}"
            ))),
        },
    }
}

/// Opaque cursors: the hex of `"<kind>:<value>"`, so clients do not build them.
pub fn encode_cursor(kind: &str, value: &str) -> String {
    hex::encode(format!("{kind}:{value}"))
}

pub fn decode_cursor(p: &Parsed, kind: &str) -> Result<Option<String>, ApiError> {
    let Some(c) = p.extra.get("cursor") else {
        return Ok(None);
    };
    let raw = hex::decode(c.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("`cursor` is not a cursor this API returned"))?;
    match raw.split_once(':') {
        Some((k, v)) if k == kind => Ok(Some(v.to_owned())),
        _ => Err(bad("`cursor` belongs to another endpoint")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_validate() {
        let p = parse(
            Some("country=us,CA&commodity=electricity&type=geographic&q=Gas%20%26%20Electric&lat=37.5&lon=-121&limit=5"),
            &["limit", "cursor"],
        )
        .unwrap();
        assert_eq!(p.filter.country, vec!["us", "CA"]);
        assert_eq!(p.filter.kind, vec!["geographic"]);
        assert_eq!(p.filter.q.as_deref(), Some("Gas & Electric"));
        assert_eq!(p.filter.point, Some((-121.0, 37.5)));
        assert_eq!(limit(&p, 50, 500).unwrap(), 5);
        for bad_q in [
            "lat=91&lon=0",
            "lat=0",
            "lat=x&lon=0",
            "lon=181&lat=0",
            "bbox=1,2,3",
            "bbox=0,10,1,5",
            "comodity=gas",
            "lat=NaN&lon=0",
        ] {
            let e = parse(Some(bad_q), &[]).unwrap_err();
            assert!(matches!(e, ApiError::BadRequest(_)), "{bad_q}");
        }
        let e = parse(Some("comodity=gas"), &[]).unwrap_err().to_string();
        assert!(e.contains("comodity") && e.contains("commodity"), "{e}");
    }

    #[test]
    fn endpoints_without_parameters_name_the_stray_one() {
        assert!(none(None).is_ok());
        assert!(none(Some("")).is_ok());
        let e = none(Some("limit=5")).unwrap_err().to_string();
        assert!(e.contains("`limit`"), "{e}");
        assert!(none(Some("flag")).is_err());
    }

    #[test]
    fn cursors_round_trip_and_are_checked() {
        let c = encode_cursor("k", "42");
        let p = parse(Some(&format!("cursor={c}")), &["cursor"]).unwrap();
        assert_eq!(decode_cursor(&p, "k").unwrap().as_deref(), Some("42"));
        assert!(decode_cursor(&p, "g").is_err());
        let p = parse(Some("cursor=zz"), &["cursor"]).unwrap();
        assert!(decode_cursor(&p, "k").is_err());
    }
}
