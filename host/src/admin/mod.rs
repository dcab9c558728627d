//! The admin REST API: [`router`] over an [`AppState`], with bearer-token access control
//! and size-limited JSON bodies, and its OpenAPI document generated from the handlers.
//! Handlers are split by resource.

mod assets;
mod auth;
mod bulk;
mod error;
mod json;
mod misc;
mod stream;
mod transactions;
mod views;
mod waits;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};
pub use json::ApiJson;
pub use views::{StepView, TxView, WaitView, rfc3339};

use crate::engine::Engine;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// The recovery worker.
    pub recovery: crate::recovery::RecoveryWorker,
    /// The bearer token `/api` requires, if any.
    pub admin_token: Option<Arc<str>>,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// Longest a request may take beyond the `?wait=` it asks for.
    pub request_timeout: std::time::Duration,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "RTE admin API",
        description = "Start, inspect and repair saga transactions; watch breakers, recovery, plugins and events. \
                       When the host has an admin token, every call needs `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "transactions", description = "Sagas: start, list, read, repair"),
        (name = "stats", description = "Totals and timelines"),
        (name = "events", description = "The event log and its live stream"),
        (name = "circuit-breakers", description = "Per-service circuit breakers"),
        (name = "recovery", description = "The recovery worker"),
        (name = "plugins", description = "Loaded plugins"),
        (name = "hosts", description = "The hosts sharing the database"),
        (name = "waits", description = "Steps waiting for a reply, and their completion"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the API, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().split_for_parts().1;
    // Every call may be refused for a missing or wrong token when the host has one.
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            op.responses
                .responses
                .entry("401".into())
                .or_insert_with(|| {
                    let content = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build();
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("Missing or wrong admin token")
                            .content("application/json", content)
                            .build(),
                    )
                });
        }
    }
    doc
}

fn api_routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(transactions::create, transactions::list))
        .routes(routes!(transactions::get_one))
        .routes(routes!(transactions::force_complete))
        .routes(routes!(transactions::force_cancel))
        .routes(routes!(transactions::retry))
        .routes(routes!(bulk::bulk))
        .routes(routes!(misc::sagas))
        .routes(routes!(misc::stats))
        .routes(routes!(misc::timeline))
        .routes(routes!(misc::recovery_stats))
        .routes(routes!(misc::hosts))
        .routes(routes!(misc::breakers))
        .routes(routes!(misc::reset_breaker))
        .routes(routes!(misc::events))
        .routes(routes!(stream::events_stream))
        .routes(routes!(misc::plugins))
        .routes(routes!(waits::list))
        .routes(routes!(waits::reply));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api", api)
}

static OPENAPI_JSON: OnceLock<String> = OnceLock::new();

async fn openapi_json() -> impl axum::response::IntoResponse {
    let body = OPENAPI_JSON
        .get_or_init(|| openapi().to_json().unwrap_or_default())
        .clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
}

/// The whole HTTP surface: `/api/*` (with `/api/openapi.json`), `/healthz`, `/readyz`,
/// `/metrics`, and the console.
pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    let api = api
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/{*rest}", axum::routing::any(misc::api_not_found))
        .route("/api", axum::routing::any(misc::api_not_found))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::request_deadline,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        // A handler bug answers 500 instead of dropping the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the host's log",
            )
            .into_response()
        }));
    api.route("/healthz", get(misc::healthz))
        .route("/metrics", get(misc::metrics))
        .route("/readyz", get(misc::readyz))
        .fallback(assets::serve)
        .with_state(state)
}
