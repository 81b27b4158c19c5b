//! OpenAPI 3.1 document generated from the handlers (utoipa), served at `/openapi.json`,
//! and Swagger UI at `/docs` (vendored into the binary: no download at build or run time).

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cds-registry",
        description = "Registry of LF Energy CDS server metadata: which utility serves this place, for which commodity, with which capabilities."
    ),
    paths(
        super::search::entities,
        super::search::coverage,
        super::search::lookup,
        super::search::lookup_batch,
        super::search::facets,
        super::geojson::geometry,
        super::geojson::export,
    ),
    components(schemas(
        super::search::CoverageRow,
        super::search::CoveragePage,
        super::search::Entity,
        super::search::EntitiesPage,
        super::search::LookupResult,
        super::search::BatchRequest,
        super::search::BatchResult,
        super::search::FacetsResult,
        super::search::FacetCount,
        super::search::ServerBrief,
    )),
    tags((name = "search", description = "Answered from the in-memory index"))
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
