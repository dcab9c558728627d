//! Stats, plugins, breakers, events, saga types, recovery, health and metrics.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::breaker::{BreakerState, BreakerStatus};
use crate::engine::TxStatus;
use crate::events::Event;
use crate::plugin::PluginStatus;
use crate::recovery::RecoveryStatsView;

/// Totals by status and type.
#[derive(Debug, Serialize, ToSchema)]
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

/// Transaction totals by status and by type.
#[utoipa::path(get, path = "/stats", tag = "stats",
    responses((status = 200, body = StatsResponse), (status = 503, body = ErrorBody)))]
pub async fn stats(State(state): State<AppState>) -> Result<Json<StatsResponse>, ApiError> {
    let counts = state.engine.admin().stats().await?;
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

/// Loaded plugins.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginsResponse {
    /// Every plugin file this host has seen: the version serving and the last load error.
    pub plugins: Vec<PluginStatus>,
    /// Whether every live host on the database serves the same plugin versions.
    pub same_on_every_host: bool,
    /// The plugin versions each live host serves, this host first.
    pub hosts: Vec<HostPlugins>,
}

/// The plugin versions one host serves.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostPlugins {
    /// The host.
    pub host_id: String,
    /// Whether it is the host answering.
    pub this_host: bool,
    /// Digest of the version serving, by plugin file.
    pub plugins: BTreeMap<String, String>,
}

/// Loaded plugins: steps, version, digest, limits, load errors; and whether every host
/// on the database serves the same versions.
#[utoipa::path(get, path = "/plugins", tag = "plugins", responses((status = 200, body = PluginsResponse)))]
pub async fn plugins(State(state): State<AppState>) -> Json<PluginsResponse> {
    let hosts: Vec<HostPlugins> = crate::cluster::hosts_with(&state.engine, &state.recovery)
        .await
        .into_iter()
        .map(|h| HostPlugins {
            host_id: h.host_id,
            this_host: h.this_host,
            plugins: h.report.plugins,
        })
        .collect();
    Json(PluginsResponse {
        plugins: state.engine.plugins().plugins(),
        same_on_every_host: hosts.windows(2).all(|w| w[0].plugins == w[1].plugins),
        hosts,
    })
}

/// Circuit breakers.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakersResponse {
    /// One per service that has seen calls, on the host answering.
    pub circuit_breakers: Vec<BreakerStatus>,
    /// Whether every host shares these breakers (they live in Redis); otherwise each host
    /// keeps its own, listed under `hosts`.
    pub shared: bool,
    /// Each live host's breakers, this host first.
    pub hosts: Vec<HostBreakers>,
}

/// One host's circuit breakers.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostBreakers {
    /// The host.
    pub host_id: String,
    /// Whether it is the host answering.
    pub this_host: bool,
    /// Its breakers.
    pub circuit_breakers: Vec<BreakerStatus>,
}

/// Circuit breakers and their states, with every host's where each keeps its own.
#[utoipa::path(get, path = "/circuit-breakers", tag = "circuit-breakers", responses((status = 200, body = BreakersResponse)))]
pub async fn breakers(State(state): State<AppState>) -> Json<BreakersResponse> {
    let hosts = crate::cluster::hosts_with(&state.engine, &state.recovery).await;
    Json(BreakersResponse {
        circuit_breakers: state.engine.breakers().list().await,
        shared: state.engine.breakers().is_shared(),
        hosts: hosts
            .into_iter()
            .map(|h| HostBreakers {
                host_id: h.host_id,
                this_host: h.this_host,
                circuit_breakers: h.report.circuit_breakers,
            })
            .collect(),
    })
}

/// Body of a breaker reset (it may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Why, for the `circuit.reset` event (1 to 1000 characters).
    pub reason: Option<String>,
}

/// A breaker after its reset.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetResponse {
    /// The service.
    pub service: String,
    /// Always `closed`.
    pub state: String,
    /// The state it was in.
    pub previous_state: BreakerState,
    /// The reason given, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Force a service's circuit breaker closed; a `circuit.reset` event records it, with the
/// reason given.
#[utoipa::path(post, path = "/circuit-breakers/{service}/reset", tag = "circuit-breakers",
    request_body(content = Option<ResetRequest>),
    params(("service" = String, Path, description = "The step's declared service")),
    responses((status = 200, body = ResetResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn reset_breaker(
    State(state): State<AppState>,
    Path(service): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ResetResponse>, ApiError> {
    let body: ResetRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResetRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?
    };
    let reason = match body.reason.as_deref().map(str::trim) {
        Some(r) if r.is_empty() || r.len() > 1000 => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "`reason` must be 1 to 1000 characters",
            ));
        }
        other => other,
    };
    match state
        .engine
        .breakers()
        .reset_by_operator(&service, reason)
        .await
    {
        Some(previous_state) => Ok(Json(ResetResponse {
            service,
            state: "closed".into(),
            previous_state,
            reason: reason.map(str::to_string),
        })),
        None => Err(ApiError::not_found(format!(
            "no circuit breaker for service `{service}`"
        ))),
    }
}

/// Filters and page of the event log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only these event types (`tx.completed`, or several: `tx.failed,tx.timeout`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only this saga's events.
    pub tx_id: Option<String>,
    /// Only events of sagas whose id contains this text.
    pub tx: Option<String>,
    /// Only this step's events.
    pub step: Option<String>,
    /// At or after this time (RFC 3339).
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    pub until: Option<String>,
    /// Events per page (default 200, at most 1000).
    pub limit: Option<u32>,
    /// The page, from 1 (newest first).
    pub page: Option<u32>,
}

/// A page of the event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsResponse {
    /// Newest first.
    pub events: Vec<Event>,
    /// Events in the log that match the filters.
    pub total: usize,
    /// This page, from 1.
    pub page: u32,
    /// Events per page.
    pub page_size: u32,
    /// How many events the log keeps (the oldest go first).
    pub log_size: usize,
}

/// The event log, newest first: this host's recent events (and other hosts', where
/// events are shared), filtered by type, saga, step and time, a page at a time.
#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = EventsResponse), (status = 400, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page_size = q.limit.unwrap_or(200).clamp(1, 1000);
    let page = q.page.unwrap_or(1).max(1);
    let kinds: Vec<&str> = q
        .kind
        .as_deref()
        .map(|k| {
            k.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // Event times are written one way (RFC 3339, UTC, milliseconds), so they compare as text.
    let time = |name: &str, value: &Option<String>| -> Result<Option<String>, ApiError> {
        value
            .as_deref()
            .map(|v| {
                humantime::parse_rfc3339_weak(v)
                    .map(|t| humantime::format_rfc3339_millis(t).to_string())
                    .map_err(|_| ApiError::bad_request(format!("`{name}` is not an RFC 3339 time")))
            })
            .transpose()
    };
    let since = time("since", &q.since)?;
    let until = time("until", &q.until)?;
    let tx_part = q.tx.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let recent = state.engine.events().recent();
    let matching = recent
        .iter()
        .rev()
        .filter(|e| kinds.is_empty() || kinds.contains(&e.kind.as_str()))
        .filter(|e| q.tx_id.as_ref().is_none_or(|t| e.tx_id.as_ref() == Some(t)))
        .filter(|e| tx_part.is_none_or(|t| e.tx_id.as_deref().is_some_and(|id| id.contains(t))))
        .filter(|e| {
            q.step
                .as_ref()
                .is_none_or(|s| e.step_name.as_ref() == Some(s))
        })
        .filter(|e| since.as_ref().is_none_or(|t| &e.timestamp >= t))
        .filter(|e| until.as_ref().is_none_or(|t| &e.timestamp < t));
    let mut total = 0;
    let skip = (page as usize - 1) * page_size as usize;
    let mut events = Vec::new();
    for e in matching {
        if total >= skip && events.len() < page_size as usize {
            events.push((**e).clone());
        }
        total += 1;
    }
    Ok(Json(EventsResponse {
        events,
        total,
        page,
        page_size,
        log_size: state.engine.events().capacity(),
    }))
}

/// Health.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, `ready`, `loading` (plugins still compiling after start) or `unavailable`.
    pub status: String,
    /// Steps available (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Plugin files still loading (readiness only; empty once all have loaded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loading: Vec<String>,
}

/// `/healthz`: the process answers.
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        steps: None,
        error: None,
        loading: Vec::new(),
    })
}

/// `/readyz`: the store answers and every plugin has loaded. While plugins are still
/// compiling after start, `503` with status `loading` and their files in `loading` (the
/// API answers meanwhile; sagas needing them wait, bounded).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let loading = state.engine.plugins().loading();
    match state.engine.store().ping().await {
        Ok(()) if !loading.is_empty() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthResponse {
                status: "loading".into(),
                steps: Some(state.engine.plugins().step_names().len()),
                error: None,
                loading,
            }),
        ),
        Ok(()) => (
            StatusCode::OK,
            Json(HealthResponse {
                status: "ready".into(),
                steps: Some(state.engine.plugins().step_names().len()),
                error: None,
                loading: Vec::new(),
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthResponse {
                status: "unavailable".into(),
                steps: None,
                error: Some(e.to_string()),
                loading: Vec::new(),
            }),
        ),
    }
}

/// Unknown `/api` paths.
pub async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

/// The timeline's span.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Hours back from now (1 to 720, default 24); per-minute buckets up to 2 hours.
    pub hours: Option<i64>,
    /// Minutes back from now (15 to 43200), instead of `hours`: the short ranges an operator
    /// watching an incident wants.
    pub minutes: Option<i64>,
}

/// Finished sagas over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineResponse {
    /// Bucket width.
    pub bucket_seconds: i64,
    /// Oldest first.
    pub points: Vec<TimelinePoint>,
}

/// One bucket of the timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePoint {
    /// Bucket start (RFC 3339).
    pub at: String,
    /// Sagas that completed in it.
    pub completed: u64,
    /// Sagas that ended otherwise (failed, compensated, timed out, cancelled).
    pub failed: u64,
}

/// Finished sagas per hour (per minute for two hours or less).
#[utoipa::path(get, path = "/stats/timeline", tag = "stats", params(TimelineQuery),
    responses((status = 200, body = TimelineResponse), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn timeline(
    State(state): State<AppState>,
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TimelineResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let span_ms = match q.minutes {
        Some(m) => m.clamp(15, 60 * 24 * 30) * 60_000,
        None => q.hours.unwrap_or(24).clamp(1, 24 * 30) * 3_600_000,
    };
    let bucket_ms: i64 = if span_ms <= 2 * 3_600_000 {
        60_000
    } else {
        3_600_000
    };
    let now = crate::store::now_ms();
    let since = (now - span_ms) / bucket_ms * bucket_ms;
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
    let points = points
        .into_iter()
        .map(|(at, (completed, failed))| TimelinePoint {
            at: super::rfc3339(at),
            completed,
            failed,
        })
        .collect();
    Ok(Json(TimelineResponse {
        bucket_seconds: bucket_ms / 1000,
        points,
    }))
}

/// The recovery workers' figures: totals over every live host on the database, then
/// each host's own.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryOverview {
    /// Totals: counts summed, the latest scan, `running` if any worker runs.
    #[serde(flatten)]
    pub totals: RecoveryStatsView,
    /// Each live host's worker, this host first.
    pub hosts: Vec<HostRecovery>,
}

/// One host's recovery worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostRecovery {
    /// The host.
    pub host_id: String,
    /// Whether it is the host answering.
    pub this_host: bool,
    /// Its figures.
    #[serde(flatten)]
    pub stats: RecoveryStatsView,
}

/// Recovery worker figures, for every host on the database.
#[utoipa::path(get, path = "/recovery/stats", tag = "recovery", responses((status = 200, body = RecoveryOverview)))]
pub async fn recovery_stats(State(state): State<AppState>) -> Json<RecoveryOverview> {
    let hosts = crate::cluster::hosts_with(&state.engine, &state.recovery).await;
    let mut totals = state.recovery.stats();
    totals.running = hosts.iter().any(|h| h.report.recovery.running);
    totals.scanned = hosts.iter().map(|h| h.report.recovery.scanned).sum();
    totals.processed = hosts.iter().map(|h| h.report.recovery.processed).sum();
    totals.failed = hosts.iter().map(|h| h.report.recovery.failed).sum();
    // RFC 3339 times of one format and zone compare as text.
    if let Some(latest) = hosts
        .iter()
        .map(|h| &h.report.recovery)
        .filter(|r| r.last_run_at.is_some())
        .max_by(|a, b| a.last_run_at.cmp(&b.last_run_at))
    {
        totals.last_run_at = latest.last_run_at.clone();
        totals.last_run_duration_ms = latest.last_run_duration_ms;
    }
    Json(RecoveryOverview {
        totals,
        hosts: hosts
            .into_iter()
            .map(|h| HostRecovery {
                host_id: h.host_id,
                this_host: h.this_host,
                stats: h.report.recovery,
            })
            .collect(),
    })
}

/// The hosts on this database.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostsResponse {
    /// Every host heard from lately, this host first.
    pub hosts: Vec<crate::cluster::HostView>,
}

/// The hosts sharing this database, with what each reports: recovery figures and the
/// plugins it serves.
#[utoipa::path(get, path = "/hosts", tag = "hosts", responses((status = 200, body = HostsResponse)))]
pub async fn hosts(State(state): State<AppState>) -> Json<HostsResponse> {
    Json(HostsResponse {
        hosts: crate::cluster::hosts_with(&state.engine, &state.recovery).await,
    })
}

/// A defined saga type.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagaTypeView {
    /// Steps in order.
    pub steps: Vec<crate::engine::StepEntry>,
    /// Lock-key templates.
    pub lock_keys: Vec<String>,
    /// Timeout override.
    pub timeout: Option<String>,
    /// Retries override.
    pub max_retries: Option<u32>,
    /// One line for operators.
    pub description: String,
    /// The policy each step runs by in this type, by step name: what the step declares,
    /// overridden by the definition, then by the operator's `step_policy`.
    pub policies: BTreeMap<String, crate::policy::EffectivePolicy>,
}

/// Defined saga types.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagasResponse {
    /// By type name.
    pub sagas: BTreeMap<String, SagaTypeView>,
}

/// The saga types defined in the sagas file.
#[utoipa::path(get, path = "/sagas", tag = "transactions", responses((status = 200, body = SagasResponse)))]
pub async fn sagas(State(state): State<AppState>) -> Json<SagasResponse> {
    let sagas = state
        .engine
        .definitions()
        .sagas
        .iter()
        .map(|(name, d)| {
            let view = SagaTypeView {
                steps: d.steps.clone(),
                lock_keys: d.lock_keys.clone(),
                timeout: d.timeout.map(|t| humantime::format_duration(t).to_string()),
                max_retries: d.max_retries,
                description: d.description.clone(),
                policies: state.engine.saga_type_policies(name),
            };
            (name.clone(), view)
        })
        .collect();
    Json(SagasResponse { sagas })
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
