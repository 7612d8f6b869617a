//! The OpenAPI 3.1 document: assembled from the routers themselves (utoipa-axum registers a
//! route and its description in one call), so no route can be missing from it.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{OpenApi, RefOr, Response};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "VeloFlux API",
        description = "Control plane, admin and metrics APIs of VeloFlux. Routes tagged `admin` are served on the admin listener (default 127.0.0.1:9000), `metrics` on the metrics listener (default 127.0.0.1:8080), everything else on the API listener (default 127.0.0.1:9090). Every failure answers with the ErrorBody schema.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(crate::ErrorBody, crate::ErrorCode)),
    tags(
        (name = "system", description = "Health, readiness, version and status"),
        (name = "admin", description = "Operator routes on the admin listener"),
        (name = "metrics", description = "Prometheus metrics on the metrics listener"),
        (name = "docs", description = "This document"),
    )
)]
struct BaseDoc;

/// The document every router adds its routes to.
pub fn base() -> OpenApi {
    BaseDoc::openapi()
}

/// Finishes a document: every operation gets the standard error body as its `default`
/// response, so clients know the shape of any failure.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    DefaultErrors.modify(&mut doc);
    doc
}

struct DefaultErrors;

impl Modify for DefaultErrors {
    fn modify(&self, doc: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components.get_or_insert_with(Default::default).add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let response = utoipa::openapi::ResponseBuilder::new()
            .description("Any failure, as the standard error body")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            let operations: [&mut Option<Operation>; 8] = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| RefOr::<Response>::T(response.clone()));
            }
        }
    }
}

/// The finished document, filled in once every router has been assembled.
pub type DocumentCell = Arc<OnceLock<String>>;

/// The route that serves the document.
pub fn router(cell: DocumentCell) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(openapi_json)).with_state(cell)
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "docs",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json(State(cell): State<DocumentCell>) -> Result<impl IntoResponse, ApiError> {
    let doc = cell.get().ok_or_else(|| {
        ApiError::new(
            crate::ErrorCode::ServiceUnavailable,
            "the API description is being assembled",
        )
    })?;
    Ok(([(CONTENT_TYPE, "application/json")], doc.clone()))
}
