//! Request and response policy that is not content: the body size limit, which routes
//! browsers on other origins may call (CORS), and the hardening headers on every response.

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// A body declared larger than [`super::MAX_BODY_BYTES`] is refused with 413 before any
/// handler reads it (a chunked body over the limit is caught by the extractors, which
/// handlers map to the same 413).
pub async fn body_limit(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > super::MAX_BODY_BYTES as u64) {
        return ApiError::TooLarge(format!(
            "the request body is larger than the API accepts ({} bytes)",
            super::MAX_BODY_BYTES
        ))
        .into_response();
    }
    next.run(req).await
}

/// Swagger UI (`/docs`) loads its scripts, styles and the OpenAPI document from this
/// origin only; its CSS sets inline styles and uses `data:` images (the vendored
/// index.html has no inline script).
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; \
base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Is this request one browsers on any origin may make? The public reads: every `GET` /
/// `HEAD`, and `POST /v1/lookup` (a read with a body). For a preflight (`OPTIONS`) the
/// method asked for is what counts. The admin writes (`POST`/`DELETE /v1/hosts`,
/// `POST /v1/crawls`) and anything added later are not.
fn is_public(method: &Method, requested: Option<&HeaderValue>, path: &str) -> bool {
    let method = if method == Method::OPTIONS {
        match requested.and_then(|v| Method::from_bytes(v.as_bytes()).ok()) {
            Some(m) => m,
            None => return false,
        }
    } else {
        method.clone()
    };
    method == Method::GET
        || method == Method::HEAD
        || (method == Method::POST && path == "/v1/lookup")
}

/// Takes the `Access-Control-*` headers (set by the permissive `CorsLayer` inside) off the
/// answers to everything that is not a public read, so a page on another origin can
/// neither preflight nor read an admin call.
pub async fn public_cors(req: Request, next: Next) -> Response {
    let public = is_public(
        req.method(),
        req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD),
        req.uri().path(),
    );
    let mut resp = next.run(req).await;
    if !public {
        let cors: Vec<HeaderName> = resp
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for k in cors {
            resp.headers_mut().remove(k);
        }
    }
    resp
}

/// `nosniff` on every response (JSON never runs as script or style); Swagger UI also
/// gets a CSP and may not be framed.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path() == "/docs" || req.uri().path().starts_with("/docs/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if docs {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_means_reads() {
        let get = HeaderValue::from_static("GET");
        let post = HeaderValue::from_static("POST");
        let delete = HeaderValue::from_static("DELETE");
        assert!(is_public(&Method::GET, None, "/v1/hosts"));
        assert!(is_public(&Method::POST, None, "/v1/lookup"));
        assert!(is_public(&Method::OPTIONS, Some(&get), "/v1/hosts"));
        assert!(is_public(&Method::OPTIONS, Some(&post), "/v1/lookup"));
        assert!(!is_public(&Method::POST, None, "/v1/hosts"));
        assert!(!is_public(&Method::DELETE, None, "/v1/hosts/1"));
        assert!(!is_public(&Method::POST, None, "/v1/crawls"));
        assert!(!is_public(&Method::OPTIONS, Some(&post), "/v1/hosts"));
        assert!(!is_public(&Method::OPTIONS, Some(&delete), "/v1/hosts/1"));
        assert!(!is_public(&Method::OPTIONS, None, "/v1/hosts"));
    }
}
