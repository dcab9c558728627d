//! The admin REST API: [`router`] over an [`AppState`], with bearer-token access control
//! and size-limited JSON bodies. Handlers are split by resource.

mod assets;
mod auth;
mod error;
mod json;
mod misc;
mod stream;
mod transactions;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use error::ApiError;
pub use json::ApiJson;
pub use views::{StepView, TxView, rfc3339};

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
}

/// The whole HTTP surface: `/api/*`, `/healthz`, `/readyz`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/transactions",
            post(transactions::create).get(transactions::list),
        )
        .route("/transactions/{tx_id}", get(transactions::get_one))
        .route(
            "/transactions/{tx_id}/force-complete",
            post(transactions::force_complete),
        )
        .route(
            "/transactions/{tx_id}/force-cancel",
            post(transactions::force_cancel),
        )
        .route("/transactions/{tx_id}/retry", post(transactions::retry))
        .route("/stats", get(misc::stats))
        .route("/stats/timeline", get(misc::timeline))
        .route("/recovery/stats", get(misc::recovery_stats))
        .route("/sagas", get(misc::sagas))
        .route("/events/stream", get(stream::events_stream))
        .route("/plugins", get(misc::plugins))
        .route("/circuit-breakers", get(misc::breakers))
        .route(
            "/circuit-breakers/{service}/reset",
            post(misc::reset_breaker),
        )
        .route("/events", get(misc::events))
        .fallback(misc::api_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body));
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(misc::healthz))
        .route("/metrics", get(misc::metrics))
        .route("/readyz", get(misc::readyz))
        .fallback(assets::serve)
        .with_state(state)
}
