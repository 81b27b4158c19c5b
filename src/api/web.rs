//! The map page (`GET /`) and its assets, embedded in the binary: no CDN, no build step,
//! no runtime download. Leaflet, topojson-client and the basemap's TopoJSON (Natural Earth
//! countries from `world-atlas`, US states from `us-atlas`) are vendored under `web/vendor/`
//! (versions and licences in `web/vendor/README.md`; each LICENSE is served next to them).
//!
//! Caching: the page is revalidated on every load (`no-cache` + ETag); it refers to the
//! application's own assets with `?v=<hash of the assets>`, so those can be cached for a
//! year and a new binary is picked up on the next page load. Everything answers
//! `If-None-Match` with 304 (weak ETags: the compression layer may re-encode the body).

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};

/// The page's paths. They are not API routes: like `/docs`, they are routed here, outside
/// the route table (`super::routes`), so they are not in the OpenAPI document.
const PAGE: &str = "/";
const PAGE_HTML: &str = "/index.html";
const ASSETS_PATH: &str = "/assets/{*path}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(index))
        .route(PAGE_HTML, get(index))
        .route(ASSETS_PATH, get(asset))
}

/// How long a response may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caching {
    /// Our own code: immutable when asked for with the current `?v=`, else revalidate.
    Versioned,
    /// Third-party files that change only with a vendored version bump.
    Vendor,
}

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    caching: Caching,
}

/// One embedded file: `path` is both its URL under `/assets/` and its place under `web/`.
macro_rules! asset {
    ($path:literal, $content_type:expr, $caching:ident) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../../web/", $path)),
            caching: Caching::$caching,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const PNG: &str = "image/png";

const ASSETS: &[Asset] = &[
    asset!("app.js", JS, Versioned),
    // Imported by app.js as `./basemap.js` (no `?v=`), so it is revalidated on each load.
    asset!("basemap.js", JS, Versioned),
    asset!("app.css", CSS, Versioned),
    asset!("favicon.svg", "image/svg+xml", Versioned),
    asset!("vendor/leaflet/leaflet.js", JS, Vendor),
    asset!("vendor/leaflet/leaflet.css", CSS, Vendor),
    asset!("vendor/leaflet/LICENSE", TEXT, Vendor),
    asset!("vendor/leaflet/images/layers.png", PNG, Vendor),
    asset!("vendor/leaflet/images/layers-2x.png", PNG, Vendor),
    asset!("vendor/leaflet/images/marker-icon.png", PNG, Vendor),
    asset!("vendor/leaflet/images/marker-icon-2x.png", PNG, Vendor),
    asset!("vendor/leaflet/images/marker-shadow.png", PNG, Vendor),
    // The offline basemap (web/vendor/README.md): TopoJSON decoded in the page.
    asset!("vendor/topojson-client/topojson-client.min.js", JS, Vendor),
    asset!("vendor/topojson-client/LICENSE", TEXT, Vendor),
    asset!("vendor/world-atlas/countries-110m.json", JSON, Vendor),
    asset!("vendor/world-atlas/countries-50m.json", JSON, Vendor),
    asset!("vendor/world-atlas/LICENSE", TEXT, Vendor),
    asset!("vendor/us-atlas/states-10m.json", JSON, Vendor),
    asset!("vendor/us-atlas/LICENSE", TEXT, Vendor),
];

const INDEX_TEMPLATE: &str = include_str!("../../web/index.html");

/// Placeholder in `index.html` replaced by [`VERSION`].
const VERSION_PLACEHOLDER: &str = "__ASSET_VERSION__";

fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(&h.finalize()[..8])
}

/// Hash over every asset: the `?v=` the page asks for.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let bodies: Vec<&[u8]> = ASSETS.iter().map(|a| a.body).collect();
    digest(&bodies)
});

/// The page with the asset version filled in, and its ETag.
static INDEX: LazyLock<(String, String)> = LazyLock::new(|| {
    let html = INDEX_TEMPLATE.replace(VERSION_PLACEHOLDER, &VERSION);
    let tag = format!("W/\"{}\"", digest(&[html.as_bytes()]));
    (html, tag)
});

/// ETag per asset, in [`ASSETS`] order.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("W/\"{}\"", digest(&[a.body])))
        .collect()
});

/// The page's Content-Security-Policy: scripts, styles and requests only from this
/// origin (the API's strings are never markup, and this makes sure of it); images from
/// anywhere so that an optional `?tiles=` basemap can load.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: http: https:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
}

fn respond(
    headers: &HeaderMap,
    tag: &str,
    content_type: &'static str,
    cache: &'static str,
    body: impl IntoResponse,
) -> Response {
    let etag = HeaderValue::from_str(tag).expect("hex ETag is a valid header value");
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if not_modified(headers, tag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)], common).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, etag),
        ],
        common,
        body,
    )
        .into_response()
}

/// `GET /`: the map page.
async fn index(headers: HeaderMap) -> Response {
    let (html, tag) = &*INDEX;
    let mut r = respond(
        &headers,
        tag,
        "text/html; charset=utf-8",
        "no-cache",
        html.as_str(),
    );
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// `GET /assets/{path}`: one embedded file.
async fn asset(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (i, a) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, a)| a.path == path)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {path:?}")))?;
    let current = query
        .as_deref()
        .is_some_and(|q| q.strip_prefix("v=") == Some(VERSION.as_str()));
    let cache = match a.caching {
        Caching::Versioned if current => "public, max-age=31536000, immutable",
        Caching::Versioned => "no-cache",
        Caching::Vendor => "public, max-age=86400",
    };
    Ok(respond(&headers, &ETAGS[i], a.content_type, cache, a.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_refers_only_to_embedded_assets() {
        let (html, _) = &*INDEX;
        assert!(!html.contains(VERSION_PLACEHOLDER));
        for part in html.split("/assets/").skip(1) {
            let path = part
                .split(['"', '?', '\''])
                .next()
                .expect("split yields at least one part");
            assert!(
                ASSETS.iter().any(|a| a.path == path),
                "index.html refers to /assets/{path}, which is not embedded"
            );
        }
        // No CDN, no remote script or style.
        assert!(
            !html.contains("://"),
            "index.html must not load remote URLs"
        );
    }

    #[tokio::test]
    async fn page_and_assets_are_served_with_types_and_caching() {
        use axum::body::Body;
        use axum::http::Request;
        use tower::ServiceExt;

        let dir = tempfile::tempdir().unwrap();
        let app = super::super::router(AppState::empty_for_tests(dir.path()).await);
        let get = |uri: String, tag: Option<String>| {
            let app = app.clone();
            async move {
                let mut req = Request::builder().uri(uri);
                if let Some(t) = tag {
                    req = req.header(header::IF_NONE_MATCH, t);
                }
                app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
            }
        };
        let h = |r: &Response, name: header::HeaderName| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };

        let page = get("/".into(), None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(h(&page, header::CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(h(&page, header::CACHE_CONTROL), "no-cache");
        assert!(h(&page, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
        let tag = h(&page, header::ETAG);
        let again = get("/".into(), Some(tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let js = get(format!("/assets/app.js?v={}", *VERSION), None).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            h(&js, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert!(h(&js, header::CACHE_CONTROL).contains("immutable"));
        let stale = get("/assets/app.js?v=old".into(), None).await;
        assert_eq!(h(&stale, header::CACHE_CONTROL), "no-cache");
        let png = get("/assets/vendor/leaflet/images/layers.png".into(), None).await;
        assert_eq!(h(&png, header::CONTENT_TYPE), "image/png");
        assert!(h(&png, header::CACHE_CONTROL).starts_with("public"));
        // The basemap is embedded TopoJSON: countries with names, US states.
        for (path, object, min) in [
            ("vendor/world-atlas/countries-110m.json", "countries", 170),
            ("vendor/world-atlas/countries-50m.json", "countries", 230),
            ("vendor/us-atlas/states-10m.json", "states", 50),
        ] {
            let r = get(format!("/assets/{path}"), None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(h(&r, header::CONTENT_TYPE), "application/json", "{path}");
            let body = axum::body::to_bytes(r.into_body(), 8 << 20).await.unwrap();
            let topo: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(topo["type"], "Topology", "{path}");
            let geometries = topo["objects"][object]["geometries"].as_array().unwrap();
            assert!(geometries.len() >= min, "{path}: {}", geometries.len());
            assert!(geometries
                .iter()
                .all(|g| g["properties"]["name"].is_string()));
        }
        let missing = get("/assets/nope.js".into(), None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn asset_paths_are_unique() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(
                ASSETS[i + 1..].iter().all(|b| b.path != a.path),
                "{}",
                a.path
            );
            assert!(!a.body.is_empty(), "{}", a.path);
        }
    }
}
