//! Query-string parsing for the search endpoints: the shared filters (DESIGN.md, "HTTP
//! API"), validated with a 400 that names the problem. Unknown parameter names are errors,
//! so a typo (`comodity=`) never silently widens a search.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::index::Filter;

use super::ApiError;

/// A typed query string (`serde`, unknown names refused by `deny_unknown_fields`) whose
/// refusal is a 400 problem+json naming the problem, not axum's plain-text rejection.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// One query key an endpoint takes. The tables below are the one list of the search
/// endpoints' keys: [`parse`] accepts what a route's table names, and the OpenAPI
/// document describes the same table ([`Key::parameter`]).
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub doc: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// How a key's value reads, for the document (the parser checks more, e.g. `bbox`).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Text,
    Number { min: f64, max: f64 },
    Integer { min: i64 },
}

const fn text(name: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        doc,
        kind: Kind::Text,
        required: false,
    }
}

const fn degrees(name: &'static str, doc: &'static str, max: f64, required: bool) -> Key {
    Key {
        name,
        doc,
        kind: Kind::Number { min: -max, max },
        required,
    }
}

/// The filters shared by the search endpoints (DESIGN.md, "HTTP API"), without the point.
pub const FILTERS: &[Key] = &[
    text("country", "ISO 3166-1 alpha-2 codes, comma-separated (OR)."),
    text("commodity", "e.g. `electricity,natural_gas`."),
    text(
        "capability",
        "e.g. `oauth`; extension capabilities are searchable too.",
    ),
    text("infrastructure", "e.g. `distribution_utility`."),
    text("role", "`authoritative`, `official`, `aggregator`."),
    text("type", "`geographic` or `logical`."),
    text(
        "scope",
        "OAuth scope offered for the entry, by id or by `type` (WG1-02 §3.3: clients match \
         scopes by type), comma-separated (OR), e.g. `cds_usage`.",
    ),
    text(
        "q",
        "Text in entity or area names (case- and accent-insensitive).",
    ),
    text("bbox", "`minLon,minLat,maxLon,maxLat`."),
];

/// An optional point filter: entries whose territory contains it.
pub const NEAR: &[Key] = &[
    degrees(
        "lat",
        "Latitude (with `lon`): entries whose territory contains the point.",
        90.0,
        false,
    ),
    degrees("lon", "Longitude (with `lat`).", 180.0, false),
];

/// Where `GET /v1/lookup` looks: a point, or an address for the configured geocoder.
pub const POINT: &[Key] = &[
    degrees(
        "lat",
        "Latitude, WGS 84 degrees (with `lon`; or give `address`).",
        90.0,
        false,
    ),
    degrees("lon", "Longitude, WGS 84 degrees.", 180.0, false),
    text(
        "address",
        "An address to geocode instead of `lat`/`lon` (needs `[geocoder] url` in the \
         configuration; 400 without one, 404 when nothing is found, 502/504 when the \
         geocoder fails or is slow).",
    ),
];

/// Paging of the search listings (`super::page`).
pub const PAGE: &[Key] = &[
    Key {
        name: "limit",
        doc: "Page size (entities ≤ 500, coverage ≤ 1000).",
        kind: Kind::Integer { min: 1 },
        required: false,
    },
    text("cursor", "Opaque cursor from `next_cursor`."),
];

/// The export's own keys.
pub const EXPORT: &[Key] = &[
    text(
        "format",
        "`geojson` (FeatureCollection, default) or `ndjson` (one Feature per line)",
    ),
    Key {
        name: "simplify",
        doc: "tolerance in degrees",
        kind: Kind::Number { min: 0.0, max: 1.0 },
        required: false,
    },
];

/// The query of each search route, read by its handler and by the document.
pub mod route {
    use super::{Key, FILTERS, NEAR, PAGE, POINT};

    pub const LISTING: &[&[Key]] = &[FILTERS, NEAR, PAGE];
    pub const LOOKUP: &[&[Key]] = &[POINT, FILTERS];
    /// `POST /v1/lookup` takes its points in the body.
    pub const LOOKUP_BATCH: &[&[Key]] = &[FILTERS];
    pub const FACETS: &[&[Key]] = &[FILTERS, NEAR];
    pub const EXPORT: &[&[Key]] = &[FILTERS, NEAR, super::EXPORT];
}

impl Key {
    /// The key as an OpenAPI query parameter.
    pub fn parameter(&self) -> utoipa::openapi::path::Parameter {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::Required;
        let schema = match self.kind {
            Kind::Text => ObjectBuilder::new().schema_type(Type::String),
            Kind::Number { min, max } => ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(min))
                .maximum(Some(max)),
            Kind::Integer { min } => ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min as f64)),
        };
        ParameterBuilder::new()
            .name(self.name)
            .parameter_in(ParameterIn::Query)
            .description(Some(self.doc))
            .required(if self.required {
                Required::True
            } else {
                Required::False
            })
            .schema(Some(schema))
            .build()
    }
}

/// Is `name` read by the filter parser itself (the filters and the point)?
fn is_filter(name: &str) -> bool {
    name == "lat" || name == "lon" || FILTERS.iter().any(|k| k.name == name)
}

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

/// `bbox=minLon,minLat,maxLon,maxLat`; minLon > maxLon is a box across the antimeridian.
fn parse_bbox(v: &str) -> Result<[f64; 4], ApiError> {
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
    Ok(b)
}

/// Parse `raw` (the query string) against a route's table ([`route`]). The filters and
/// the point are read into the filter whatever the table (an endpoint that has no use for
/// the point says so itself); the route's other keys are kept in `extra`.
pub fn parse(raw: Option<&str>, keys: &[&[Key]]) -> Result<Parsed, ApiError> {
    // The route's own keys, walked only for a name that is not a filter's: a lookup's
    // `lat` and `lon` never need them, and collecting them cost an allocation per request.
    let extra = || {
        keys.iter()
            .flat_map(|g| g.iter().map(|k| k.name))
            .filter(|n| !is_filter(n))
    };
    let mut out = Parsed::default();
    let mut lat = None;
    let mut lon = None;
    for (k, v) in pairs(raw.unwrap_or("")) {
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
            "bbox" => out.filter.bbox = Some(parse_bbox(&v)?),
            other if extra().any(|n| n == other) => {
                out.extra.insert(other.to_owned(), v.into_owned());
            }
            other => {
                let mut allowed: Vec<&str> = FILTERS.iter().map(|k| k.name).collect();
                allowed.extend(["lat", "lon"]);
                allowed.extend(extra());
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

/// The `name=value` pairs of a query string, decoded as `application/x-www-form-urlencoded`:
/// empty pieces are skipped, a piece without `=` is a name with an empty value. One pass
/// over the bytes finds each piece's end, its first `=` and whether it needs decoding;
/// only a piece with `%` or `+` goes through the form decoder, which checks and copies
/// every name and value. A lookup's `lat=37.5&lon=-122.1` needs none of it: the decoder
/// cost ~2,000 instructions per lookup, and a scan of the whole query for `%` and `+`
/// before two string searchers split it ~600 more (docs/PERFORMANCE.md, "The lookup's
/// own work"). The pairs are the decoder's, piece by piece: it splits at `&` and `=`
/// before decoding.
fn pairs(raw: &str) -> Pairs<'_> {
    Pairs(raw)
}

struct Pairs<'a>(&'a str);

impl<'a> Iterator for Pairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.0;
            if rest.is_empty() {
                return None;
            }
            let bytes = rest.as_bytes();
            let (mut end, mut eq, mut encoded) = (0, None, false);
            while end < bytes.len() && bytes[end] != b'&' {
                match bytes[end] {
                    b'=' if eq.is_none() => eq = Some(end),
                    b'%' | b'+' => encoded = true,
                    _ => {}
                }
                end += 1;
            }
            let piece = &rest[..end];
            self.0 = rest.get(end + 1..).unwrap_or("");
            if piece.is_empty() {
                continue;
            }
            if encoded {
                return url::form_urlencoded::parse(piece.as_bytes()).next();
            }
            let (k, v) = match eq {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, ""),
            };
            return Some((Cow::Borrowed(k), Cow::Borrowed(v)));
        }
    }
}

/// For endpoints that take no query parameters: any parameter is a 400 naming it, as an
/// unknown name is on the search endpoints (a typo never passes silently).
pub fn none(raw: Option<&str>) -> Result<(), ApiError> {
    match pairs(raw.unwrap_or("")).next() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_validate() {
        let p = parse(
            Some("country=us,CA&commodity=electricity&type=geographic&q=Gas%20%26%20Electric&lat=37.5&lon=-121&limit=5"),
            route::LISTING,
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
    fn plain_queries_split_as_the_form_decoder_does() {
        for q in [
            "",
            "lat=37.5&lon=-122.1",
            "&&a=1&&b&c=&=d&e=f=g&",
            "q=Gas%20%26%20Electric&lat=1",
            "q=a+b&country=US",
            "q=%FF",
        ] {
            let fast: Vec<_> = pairs(q).collect();
            let form: Vec<_> = url::form_urlencoded::parse(q.as_bytes()).collect();
            assert_eq!(fast, form, "{q}");
        }
        // Every query of up to six characters over the ones that matter to the split and
        // the decoding (19,531 of them).
        const ALPHABET: &[u8] = b"a=&%+";
        let mut q = Vec::new();
        for len in 0..=6u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                q.clear();
                for _ in 0..len {
                    q.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                let q = std::str::from_utf8(&q).unwrap();
                let fast: Vec<_> = pairs(q).collect();
                let form: Vec<_> = url::form_urlencoded::parse(q.as_bytes()).collect();
                assert_eq!(fast, form, "{q:?}");
            }
        }
    }

    #[test]
    fn endpoints_without_parameters_name_the_stray_one() {
        assert!(none(None).is_ok());
        assert!(none(Some("")).is_ok());
        let e = none(Some("limit=5")).unwrap_err().to_string();
        assert!(e.contains("`limit`"), "{e}");
        assert!(none(Some("flag")).is_err());
    }
}
