//! Request and response policy that is not content: the body size limit, which routes
//! browsers on other origins may call (CORS), and the hardening headers on every response.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// A body declared larger than [`super::MAX_BODY_BYTES`] is refused with 413 before any
/// handler reads it (a chunked body over the limit is caught by the extractors, which
/// handlers map to the same 413).
pub fn body_limit(req: &Request) -> Option<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    declared
        .is_some_and(|n| n > super::MAX_BODY_BYTES as u64)
        .then(|| {
            ApiError::TooLarge(format!(
                "the request body is larger than the API accepts ({} bytes)",
                super::MAX_BODY_BYTES
            ))
            .into_response()
        })
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

/// `Vary` on every response: the CORS request headers, as tower-http's permissive CORS
/// sent them (caches keep answers to different origins and preflights apart), and
/// `accept-encoding`, first, because the compression layer outside may compress any
/// answer. That layer adds `accept-encoding` itself unless a `Vary` value contains it,
/// which it checks by a byte-by-byte scan: naming it first took `GET /v1/lookup` from
/// 53,377 to 49,246 instructions per request (docs/PERFORMANCE.md "HTTP at 100,000
/// territories").
const VARY: &str =
    "accept-encoding, origin, access-control-request-method, access-control-request-headers";

/// What a request's answer gets on its way out, read from the request before the handler
/// takes it: CORS for the public reads only (so a page on another origin can neither
/// preflight nor read an admin call), `nosniff` on everything (JSON never runs as script
/// or style), and for Swagger UI a CSP and no framing.
pub struct Policy {
    public: bool,
    docs: bool,
}

impl Policy {
    pub fn of(req: &Request) -> Policy {
        let path = req.uri().path();
        Policy {
            public: is_public(
                req.method(),
                req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD),
                path,
            ),
            docs: path == "/docs" || path.starts_with("/docs/"),
        }
    }

    /// The answer to an `OPTIONS` request (every one is taken for a CORS preflight, as
    /// tower-http's permissive `CorsLayer` did): 200 without a body, allowing any origin,
    /// method and header when the call asked for is a public read.
    pub fn preflight(&self) -> Response {
        let mut r = StatusCode::OK.into_response();
        if self.public {
            let h = r.headers_mut();
            for name in [
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                header::ACCESS_CONTROL_ALLOW_METHODS,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
            ] {
                h.insert(name, HeaderValue::from_static("*"));
            }
        }
        r
    }

    /// The headers every answer gets. A preflight's own CORS headers are set by
    /// [`Policy::preflight`]; any other public answer may be read from any origin.
    pub fn finish(&self, is_preflight: bool, h: &mut HeaderMap) {
        // Room for what is added here and for the `Content-Length` axum adds after this
        // layer, in one step: a map that fills up grows by rehashing every header, which
        // a search answer (its ETag is the seventh header) paid on every request.
        h.reserve(5 + 2 * usize::from(self.docs));
        h.append(header::VARY, HeaderValue::from_static(VARY));
        if self.public && !is_preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("*"),
            );
        }
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if self.docs {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            );
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
    }
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
