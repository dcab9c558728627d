//! Bulk operator actions: retry or force-cancel every saga a list filter selects, a
//! bounded batch at a time, with a preview (`dry_run`) and a result per saga.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::json::ApiJson;
use super::{ApiError, AppState};
use crate::engine::TxStatus;
use crate::store::TxFilter;

/// At most this many sagas are acted on per request; the answer says how many remain.
pub const MAX_BATCH: u32 = 100;

/// What to do to each saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BulkAction {
    /// As `POST /api/transactions/{tx_id}/retry`, from where each stopped.
    Retry,
    /// As `POST /api/transactions/{tx_id}/force-cancel`.
    ForceCancel,
}

/// Which sagas: the list's filters (`status` is required, so that no request reaches
/// every saga by accident).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Any of these statuses (at least one).
    #[serde(default)]
    pub status: Vec<TxStatus>,
    /// Only this saga type.
    pub tx_type: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<String>,
    /// Created before (RFC 3339).
    pub to: Option<String>,
    /// Part of the saga id, anywhere in it.
    pub q: Option<String>,
    /// Sagas whose input has each of these top-level keys with the value given (as the
    /// list's `input.{key}` parameters: `{"account_id": "ACC-1007"}`).
    #[serde(default)]
    pub input: std::collections::BTreeMap<String, String>,
}

/// `POST /api/transactions/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `retry` or `force-cancel`.
    pub action: BulkAction,
    /// Which sagas.
    pub filter: BulkFilter,
    /// Why, for each saga's history (required to force-cancel, but not to preview it;
    /// 1 to 1000 characters).
    pub reason: Option<String>,
    /// Only count and list the sagas that would be acted on.
    #[serde(default)]
    pub dry_run: bool,
    /// At most this many sagas (newest first; default and ceiling 100).
    pub limit: Option<u32>,
}

/// How one saga fared.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    /// The saga.
    pub tx_id: String,
    /// Its status before.
    pub status_before: TxStatus,
    /// Whether the action was accepted (always true in a dry run).
    pub ok: bool,
    /// Its status after (absent in a dry run or when refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TxStatus>,
    /// Why it was refused: the error a single action would have answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BulkError>,
}

/// A refusal: the `code` and `message` of the single action's error.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkError {
    /// Stable code (`conflict`, `not_found`, …).
    pub code: String,
    /// What was wrong.
    pub message: String,
}

/// The outcome of a bulk request.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    /// The action.
    pub action: BulkAction,
    /// Whether nothing was done.
    pub dry_run: bool,
    /// Sagas the filter selects in all.
    pub matched: u64,
    /// Sagas acted on (or, in a dry run, that would be), newest first.
    pub results: Vec<BulkResult>,
    /// Accepted.
    pub succeeded: usize,
    /// Refused.
    pub failed: usize,
    /// Selected by the filter beyond this batch (send the request again for them).
    pub remaining: u64,
}

/// Retry or force-cancel the sagas a list filter selects, at most 100 per request; a
/// dry run previews how many and which.
#[utoipa::path(post, path = "/transactions/bulk", tag = "transactions", request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn bulk(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BulkRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    let invalid = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", m);
    if body.filter.status.is_empty() {
        return Err(invalid("`filter.status` must name at least one status"));
    }
    let reason = match body.reason.as_deref().map(str::trim) {
        Some(r) if r.is_empty() || r.len() > 1000 => {
            return Err(invalid("`reason` must be 1 to 1000 characters"));
        }
        Some(r) => Some(r.to_string()),
        None if body.action == BulkAction::ForceCancel && !body.dry_run => {
            return Err(invalid("`reason` is required to force-cancel"));
        }
        None => None,
    };
    let time = |k: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| {
                humantime::parse_rfc3339_weak(v)
                    .map(|t| {
                        t.duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64)
                    })
                    .map_err(|_| ApiError::bad_request(format!("`{k}` must be an RFC 3339 time")))
            })
            .transpose()
    };
    let limit = body.limit.unwrap_or(MAX_BATCH).clamp(1, MAX_BATCH);
    let filter = TxFilter {
        statuses: body.filter.status.clone(),
        tx_type: body.filter.tx_type.clone().filter(|t| !t.is_empty()),
        created_after: time("from", &body.filter.from)?,
        created_before: time("to", &body.filter.to)?,
        tx_id_contains: super::transactions::id_part(body.filter.q.clone())?,
        input: super::transactions::input_matches(
            body.filter
                .input
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            |key| format!("`filter.input.{key}`"),
        )?,
        offset: 0,
        limit,
    };
    let page = state.engine.admin().list(&filter).await?;
    let mut results = Vec::with_capacity(page.items.len());
    for tx in &page.items {
        let outcome = if body.dry_run {
            None
        } else {
            let admin = state.engine.admin();
            Some(match body.action {
                BulkAction::Retry => {
                    let why = reason.as_deref().unwrap_or("bulk retry");
                    admin.retry_transaction(&tx.tx_id, None, why).await
                }
                BulkAction::ForceCancel => {
                    let why = reason.as_deref().unwrap_or_default();
                    admin.force_cancel(&tx.tx_id, why).await
                }
            })
        };
        results.push(match outcome {
            None => BulkResult {
                tx_id: tx.tx_id.clone(),
                status_before: tx.status,
                ok: true,
                status: None,
                error: None,
            },
            Some(Ok(after)) => BulkResult {
                tx_id: tx.tx_id.clone(),
                status_before: tx.status,
                ok: true,
                status: Some(after.status),
                error: None,
            },
            Some(Err(e)) => {
                let e = ApiError::from(e);
                BulkResult {
                    tx_id: tx.tx_id.clone(),
                    status_before: tx.status,
                    ok: false,
                    status: None,
                    error: Some(BulkError {
                        code: e.code.to_string(),
                        message: e.message,
                    }),
                }
            }
        });
    }
    let succeeded = results.iter().filter(|r| r.ok).count();
    Ok(Json(BulkResponse {
        action: body.action,
        dry_run: body.dry_run,
        matched: page.total,
        failed: results.len() - succeeded,
        succeeded,
        remaining: page.total.saturating_sub(results.len() as u64),
        results,
    }))
}
