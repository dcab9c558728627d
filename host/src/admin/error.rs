//! [`ApiError`]: every API failure becomes `{"error": {"code", "message"}}` with the
//! right status; server errors never show internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;
use crate::store::StoreError;

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code (`invalid_request`, `not_found`, `conflict`, …).
    pub code: String,
    /// For people.
    pub message: String,
}

/// An API error: status, machine-readable code, human message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`invalid_request`, `not_found`, …).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 with `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_transaction", m)
            }
            Error::NotFound(id) => Self::not_found(format!("transaction {id} not found")),
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            // As the IETF idempotency-key draft has it: the key was reused for another body.
            Error::KeyReused(m) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                m,
            ),
            Error::Refused(r) => Self::new(StatusCode::CONFLICT, "conflict", r.to_string()),
            Error::Store(StoreError::VersionConflict { .. }) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "the transaction changed meanwhile; try again",
            ),
            Error::Store(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "store unavailable during a request");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is unavailable; try again",
                )
            }
            Error::PluginsLoading(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "plugins_loading", m)
            }
            Error::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the host is shutting down",
            ),
            other => {
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the host's log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        (self.status, body).into_response()
    }
}

/// Longest text of a framework rejection passed on as an error message.
const MAX_REJECTION_TEXT: usize = 512;

/// Bound how long an API request may take (body read included): `request_timeout` beyond
/// the `?wait=` it asks for, then `408`. The event stream, which lasts, is exempt.
pub async fn request_deadline(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path() == "/api/events/stream" {
        return next.run(request).await;
    }
    // A request may ask to wait for a saga's end (at most five minutes): that wait is its
    // own, the deadline comes on top of it.
    let wait = request
        .uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("wait="))
                .and_then(|w| humantime::parse_duration(w).ok())
        })
        .unwrap_or_default()
        .min(std::time::Duration::from_secs(300));
    let limit = state.request_timeout + wait;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} (request_timeout, beyond its wait); nothing of it was applied unless its saga was already recorded",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}

/// Give every error answer that is not already JSON (the framework's own: 405, 413, a bad
/// path or query) the API's error shape, `{"error": {"code", "message"}}`.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = match text.is_empty() {
        true => reason.to_string(),
        false => crate::error::truncate_text(text, MAX_REJECTION_TEXT),
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNAUTHORIZED => "unauthorized",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let mut out = ApiError::new(status, code, message).into_response();
    // Keep what the framework said about the answer (`Allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
