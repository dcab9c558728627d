//! Stats, plugins, breakers, events, health.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::engine::TxStatus;

/// Totals by status and type.
#[derive(Debug, Serialize)]
pub struct StatsResponse {
    /// Every transaction.
    pub total_transactions: u64,
    /// Not yet finished.
    pub pending_transactions: u64,
    /// Completed.
    pub completed_transactions: u64,
    /// Failed, compensated, timed out or cancelled.
    pub failed_transactions: u64,
    /// Needing an operator.
    pub compensation_failed_transactions: u64,
    /// Counts by status.
    pub by_status: BTreeMap<String, u64>,
    /// Counts by type, then status.
    pub by_type: BTreeMap<String, BTreeMap<String, u64>>,
}

/// `GET /api/stats`.
pub async fn stats(State(state): State<AppState>) -> Result<Json<StatsResponse>, ApiError> {
    let counts = state
        .engine
        .store()
        .stats()
        .await
        .map_err(crate::Error::from)?;
    let mut by_status: BTreeMap<String, u64> = TxStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    let mut by_type: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let (mut total, mut pending, mut completed, mut failed, mut comp_failed) = (0, 0, 0, 0, 0);
    for c in counts {
        total += c.count;
        *by_status.entry(c.status.as_str().to_string()).or_default() += c.count;
        *by_type
            .entry(c.tx_type.clone())
            .or_default()
            .entry(c.status.as_str().to_string())
            .or_default() += c.count;
        match c.status {
            TxStatus::Completed => completed += c.count,
            TxStatus::CompensationFailed => comp_failed += c.count,
            TxStatus::Failed | TxStatus::Compensated | TxStatus::Timeout | TxStatus::Cancelled => {
                failed += c.count
            }
            _ => pending += c.count,
        }
    }
    Ok(Json(StatsResponse {
        total_transactions: total,
        pending_transactions: pending,
        completed_transactions: completed,
        failed_transactions: failed,
        compensation_failed_transactions: comp_failed,
        by_status,
        by_type,
    }))
}

/// `GET /api/plugins`.
pub async fn plugins(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"plugins": state.engine.plugins().plugins()}))
}

/// `GET /api/circuit-breakers`.
pub async fn breakers(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"circuit_breakers": state.engine.breakers().list().await}))
}

/// `POST /api/circuit-breakers/{service}/reset`.
pub async fn reset_breaker(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.engine.breakers().reset(&service).await {
        Ok(Json(json!({"service": service, "state": "closed"})))
    } else {
        Err(ApiError::not_found(format!(
            "no circuit breaker for service `{service}`"
        )))
    }
}

/// `GET /api/events?type=…&tx_id=…&limit=…`: recent events, newest first.
pub async fn events(State(state): State<AppState>, RawQuery(query): RawQuery) -> Json<Value> {
    let params: BTreeMap<String, String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(200);
    let events: Vec<_> = state
        .engine
        .events()
        .recent()
        .into_iter()
        .rev()
        .filter(|e| params.get("type").is_none_or(|t| &e.kind == t))
        .filter(|e| {
            params
                .get("tx_id")
                .is_none_or(|t| e.tx_id.as_ref() == Some(t))
        })
        .take(limit)
        .collect();
    Json(json!({"events": events}))
}

/// `/healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `/readyz`: the store answers and plugins are loaded.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.engine.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "steps": state.engine.plugins().step_names().len()})),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.to_string()})),
        ),
    }
}

/// Unknown `/api` paths.
pub async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

/// `GET /api/stats/timeline?hours=24`: finished sagas per hour (per minute for ≤ 2 hours).
pub async fn timeline(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let hours = query
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("hours="))
        .map(|h| {
            h.parse::<i64>()
                .map_err(|_| ApiError::bad_request("`hours` must be a whole number"))
        })
        .transpose()?
        .unwrap_or(24)
        .clamp(1, 24 * 30);
    let bucket_ms: i64 = if hours <= 2 { 60_000 } else { 3_600_000 };
    let now = crate::store::now_ms();
    let since = (now - hours * 3_600_000) / bucket_ms * bucket_ms;
    let rows = state
        .engine
        .store()
        .timeline(since, bucket_ms)
        .await
        .map_err(crate::Error::from)?;
    let mut points: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    let mut at = since;
    while at <= now {
        points.insert(at, (0, 0));
        at += bucket_ms;
    }
    for (bucket, status, n) in rows {
        let p = points.entry(bucket).or_default();
        match status {
            TxStatus::Completed => p.0 += n,
            _ => p.1 += n,
        }
    }
    let points: Vec<Value> = points
        .into_iter()
        .map(|(at, (completed, failed))| json!({"at": super::rfc3339(at), "completed": completed, "failed": failed}))
        .collect();
    Ok(Json(
        json!({"bucket_seconds": bucket_ms / 1000, "points": points}),
    ))
}

/// `GET /api/recovery/stats`.
pub async fn recovery_stats(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(state.recovery.stats()).unwrap_or_default())
}

/// `GET /api/sagas`: the defined saga types.
pub async fn sagas(State(state): State<AppState>) -> Json<Value> {
    let sagas: serde_json::Map<String, Value> = state
        .engine
        .definitions()
        .sagas
        .iter()
        .map(|(name, d)| {
            (
                name.clone(),
                json!({
                    "steps": d.steps,
                    "lock_keys": d.lock_keys,
                    "timeout": d.timeout.map(|t| humantime::format_duration(t).to_string()),
                    "max_retries": d.max_retries,
                    "description": d.description,
                }),
            )
        })
        .collect();
    Json(json!({"sagas": sagas}))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics().render(),
    )
}
