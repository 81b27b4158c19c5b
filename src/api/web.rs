//! The map page (`GET /`) and its assets, embedded in the binary: no CDN, no build step,
//! no runtime download. Leaflet is vendored under `web/vendor/leaflet/` (BSD-2-Clause,
//! its LICENSE is served next to it).
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

const ASSETS: &[Asset] = &[
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/app.js"),
        caching: Caching::Versioned,
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/app.css"),
        caching: Caching::Versioned,
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../web/favicon.svg"),
        caching: Caching::Versioned,
    },
    Asset {
        path: "vendor/leaflet/leaflet.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/vendor/leaflet/leaflet.js"),
        caching: Caching::Vendor,
    },
    Asset {
        path: "vendor/leaflet/leaflet.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/vendor/leaflet/leaflet.css"),
        caching: Caching::Vendor,
    },
    Asset {
        path: "vendor/leaflet/LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../web/vendor/leaflet/LICENSE"),
        caching: Caching::Vendor,
    },
    Asset {
        path: "vendor/leaflet/images/layers.png",
        content_type: "image/png",
        body: include_bytes!("../../web/vendor/leaflet/images/layers.png"),
        caching: Caching::Vendor,
    },
    Asset {
        path: "vendor/leaflet/images/layers-2x.png",
        content_type: "image/png",
        body: include_bytes!("../../web/vendor/leaflet/images/layers-2x.png"),
        caching: Caching::Vendor,
    },
    Asset {
        path: "vendor/leaflet/images/marker-icon.png",
        content_type: "image/png",
        body: include_bytes!("../../web/vendor/leaflet/images/marker-icon.png"),
        caching: Caching::Vendor,
    },
    Asset {
        path: "vendor/leaflet/images/marker-icon-2x.png",
        content_type: "image/png",
        body: include_bytes!("../../web/vendor/leaflet/images/marker-icon-2x.png"),
        caching: Caching::Vendor,
    },
    Asset {
        path: "vendor/leaflet/images/marker-shadow.png",
        content_type: "image/png",
        body: include_bytes!("../../web/vendor/leaflet/images/marker-shadow.png"),
        caching: Caching::Vendor,
    },
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
