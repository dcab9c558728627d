//! `/api/waits`: steps waiting for a reply, and the completion endpoint through which a
//! service that answers by callback (or an operator) gives a waiting step its reply.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ErrorBody;
use super::views::WaitView;
use super::{ApiError, ApiJson, AppState};
use crate::engine::ReplySource;
use crate::store::{ReplyBody, ReplyOutcome};

/// Most waits listed.
const MAX_LISTED: u32 = 500;

/// Body of `POST /api/waits/{correlation_id}/reply`: the answer (`payload`, any JSON, given
/// to the step as its bytes, with `headers`) or an `error`; `reason` says who answered
/// by hand and why.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The answer, any JSON value (the step receives its JSON text).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Headers handed to the step with the payload.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// An error answer instead of a payload.
    pub error: Option<String>,
    /// Why, when an operator answers by hand (kept in the host's log and event).
    pub reason: Option<String>,
}

/// What a reply came to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplyAccepted {
    /// `recorded`: the step resumes with it.
    pub outcome: String,
    /// The saga that resumes.
    pub tx_id: String,
}

/// `GET /api/waits`: waits still without a reply, soonest deadline first.
#[utoipa::path(get, path = "/waits", tag = "waits",
    responses((status = 200, body = Vec<WaitView>), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<WaitView>>, ApiError> {
    let waits = state
        .engine
        .store()
        .waits_open(MAX_LISTED)
        .await
        .map_err(crate::error::Error::from)?;
    Ok(Json(waits.iter().map(WaitView::from).collect()))
}

/// `POST /api/waits/{correlation_id}/reply`: give the waiting step its reply. A wait takes
/// one reply: the second (or one after its deadline) is a `409` and changes nothing.
#[utoipa::path(post, path = "/waits/{correlation_id}/reply", tag = "waits", request_body = ReplyRequest,
    params(("correlation_id" = String, Path, description = "The wait's correlation id (percent-encoded)")),
    responses((status = 200, body = ReplyAccepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No wait has this correlation id", body = ErrorBody),
        (status = 409, description = "The wait already has its reply, or timed out", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn reply(
    State(state): State<AppState>,
    Path(correlation_id): Path<String>,
    ApiJson(body): ApiJson<ReplyRequest>,
) -> Result<Json<ReplyAccepted>, ApiError> {
    let reply = match (body.payload, body.error) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_reply",
                "a reply has a `payload` or an `error`, not both",
            ));
        }
        (None, Some(message)) if message.trim().is_empty() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_reply",
                "an error reply needs a non-empty `error`",
            ));
        }
        (None, Some(message)) => ReplyBody::Error { message },
        (payload, None) => ReplyBody::Message {
            payload: payload
                .map(|p| p.to_string().into_bytes())
                .unwrap_or_default(),
            headers: body.headers.into_iter().collect(),
        },
    };
    if let Some(reason) = body.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        tracing::info!(%correlation_id, %reason, kind = reply.kind(), "reply given through the API");
    }
    let outcome = state
        .engine
        .deliver_reply(&correlation_id, reply, ReplySource::Http)
        .await?;
    match outcome {
        ReplyOutcome::Recorded { tx_id } => Ok(Json(ReplyAccepted {
            outcome: "recorded".into(),
            tx_id,
        })),
        ReplyOutcome::Duplicate { tx_id } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "reply_already_recorded",
            format!(
                "wait `{correlation_id}` of saga {tx_id} already has its reply; this one changes nothing"
            ),
        )),
        ReplyOutcome::Late { tx_id } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "wait_closed",
            format!(
                "wait `{correlation_id}` of saga {tx_id} timed out or was closed; this reply changes nothing"
            ),
        )),
        ReplyOutcome::Unknown => Err(ApiError::not_found(format!(
            "no wait has correlation id `{correlation_id}`"
        ))),
    }
}
