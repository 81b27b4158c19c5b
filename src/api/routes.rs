//! The one list of the API's routes. Each area adds its handlers with their
//! `#[utoipa::path]` descriptions; the path and methods written there make both the
//! route in the router and the operation in the OpenAPI document, so the two cannot
//! drift apart and no second list has to be kept in step.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use utoipa::openapi::path::{HttpMethod, Paths};

use super::params::Key;
use super::AppState;

/// An area's routes, for the router and for the document.
pub struct Routes {
    tag: &'static str,
    pub router: Router<AppState>,
    pub paths: Paths,
}

fn filter(m: &HttpMethod) -> MethodFilter {
    match m {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    }
}

impl Routes {
    /// Routes whose operations are grouped under `tag` in the document.
    pub fn new(tag: &'static str) -> Routes {
        Routes {
            tag,
            router: Router::new(),
            paths: Paths::new(),
        }
    }

    /// `handler` at the path and methods of its description `D` (the `__path_<fn>` type
    /// `#[utoipa::path]` generates).
    pub fn add<D: utoipa::Path, H: Handler<T, AppState>, T: 'static>(
        self,
        _doc: D,
        handler: H,
    ) -> Routes {
        self.add_with_query::<D, H, T>(_doc, handler, &[])
    }

    /// As [`Routes::add`], for a handler that parses its query string with
    /// `params::parse(raw, query)`: the same table documents its parameters.
    pub fn add_with_query<D: utoipa::Path, H: Handler<T, AppState>, T: 'static>(
        mut self,
        _doc: D,
        handler: H,
        query: &[&[Key]],
    ) -> Routes {
        let path = D::path();
        let methods = D::methods();
        let mut op = D::operation();
        op.tags = Some(vec![self.tag.to_owned()]);
        if !query.is_empty() {
            let params = op.parameters.get_or_insert_with(Vec::new);
            params.extend(query.iter().flat_map(|g| g.iter().map(Key::parameter)));
        }
        let mut method_router = MethodRouter::new();
        for m in &methods {
            method_router = method_router.on(filter(m), handler.clone());
        }
        self.paths.add_path_operation(&path, methods, op);
        self.router = self.router.route(&path, method_router);
        self
    }

    /// Both areas' routes together.
    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.paths.merge(other.paths);
        self
    }
}
