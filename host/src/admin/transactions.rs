//! `/api/transactions`: start, list, read.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ErrorBody;
use super::views::TxView;
use super::{ApiError, ApiJson, AppState};
use crate::engine::TxStatus;
use crate::store::{InputMatch, TxFilter};

/// Longest `?wait=` honoured.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Largest page.
const MAX_PAGE_SIZE: u32 = 500;

/// Body of `POST /api/transactions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// A defined saga type, or a label for a saga given with `steps`.
    pub tx_type: Option<String>,
    /// The input object every step sees.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// Steps in order (instead of, or overriding, the type's definition): names, or
    /// parallel groups `{"parallel": ["a", "b"], "max_concurrent": 2}`.
    pub steps: Option<Vec<crate::engine::StepEntry>>,
    /// Extra lock keys.
    #[serde(default)]
    pub lock_keys: Vec<String>,
    /// Saga timeout (`30s`, `2m`).
    pub timeout: Option<String>,
    /// Step retries.
    pub max_retries: Option<u32>,
}

/// Longest part of a saga id `q` may be (ids are 36 characters).
const MAX_ID_PART: usize = 64;
/// Most input conditions one search may hold.
pub(super) const MAX_INPUT_MATCHES: usize = 8;
/// The query parameters that search the input start with this: `input.account_id=ACC-1007`.
const INPUT_PARAM: &str = "input.";

/// `q`, a part of a saga id, checked.
pub(super) fn id_part(q: Option<String>) -> Result<Option<String>, ApiError> {
    match q.map(|q| q.trim().to_string()).filter(|q| !q.is_empty()) {
        Some(q) if q.chars().count() > MAX_ID_PART => Err(ApiError::bad_request(format!(
            "`q` is part of a saga id: at most {MAX_ID_PART} characters"
        ))),
        q => Ok(q),
    }
}

/// Input conditions from (key, value) pairs, checked: each must be one an indexed value
/// could match, and there may be at most [`MAX_INPUT_MATCHES`].
pub(super) fn input_matches<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    what: impl Fn(&str) -> String,
) -> Result<Vec<InputMatch>, ApiError> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        if out.len() == MAX_INPUT_MATCHES {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_INPUT_MATCHES} input conditions per search"
            )));
        }
        let m = InputMatch::new(key, value)
            .map_err(|e| ApiError::bad_request(format!("{}: {e}", what(key))))?;
        out.push(m);
    }
    Ok(out)
}

fn parse_duration(text: &str, what: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        ApiError::bad_request(format!("`{what}` must be a duration like 30s or 2m: {e}"))
    })
}

/// Parse a query string into key → values (keys may repeat).
fn query_pairs(raw: Option<String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded(raw.as_deref().unwrap_or("")) {
        out.entry(k).or_default().push(v);
    }
    out
}

fn form_urlencoded(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decode one query-string component (`+` is a space).
pub(super) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(()) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /api/transactions`: record a saga and start it; `?wait=30s` waits for its end.
#[utoipa::path(post, path = "/transactions", tag = "transactions", request_body = CreateRequest,
    params(
        ("wait" = Option<String>, Query, description = "Wait up to this long (`30s`, at most `5m`) for a terminal status"),
        ("Idempotency-Key" = Option<String>, Header, description = "Visible ASCII. A retried request with the same key returns the first saga; the key used for a different request is refused (422)"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context: the saga joins the caller's trace"),
    ),
    responses(
        (status = 201, description = "Recorded and started", body = TxView),
        (status = 200, description = "An earlier request with the same Idempotency-Key made it", body = TxView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, description = "Invalid saga, or the Idempotency-Key was first used for a different request", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 503, description = "The store is unavailable, or a step it needs is not served yet while plugins are still loading (`plugins_loading`)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<TxView>), ApiError> {
    let query = query_pairs(query);
    let wait = match query.get("wait").and_then(|v| v.last()) {
        Some(w) => Some(parse_duration(w, "wait")?.min(MAX_WAIT)),
        None => None,
    };
    let input = match body.input {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "`input` must be a JSON object",
            ));
        }
    };
    let timeout = body
        .timeout
        .as_deref()
        .map(|t| {
            let timeout = parse_duration(t, "timeout")?;
            crate::engine::check_tx_timeout(timeout).map_err(ApiError::bad_request)?;
            Ok::<_, ApiError>(timeout)
        })
        .transpose()?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let request_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("`Idempotency-Key` must be visible ASCII text"))?
                .to_string(),
        ),
    };
    if body.tx_type.is_none() && body.steps.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "give `tx_type`, `steps`, or both",
        ));
    }
    let engine = &state.engine;
    // Just after start, plugins may still be compiling: wait (bounded) for those needed.
    engine
        .wait_for_steps(body.tx_type.as_deref(), body.steps.as_deref())
        .await;
    let tx = engine.transaction_from_request(
        body.tx_type,
        body.steps,
        input,
        body.lock_keys,
        timeout,
        body.max_retries,
        request_key,
        header("traceparent"),
    )?;
    let (submitted, known) = match wait {
        Some(wait) => engine.submit_and_wait(tx, wait).await?,
        None => engine.submit_recorded(tx).await?,
    };
    let status = if submitted.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let view = match known {
        // As recorded, or handed over by the driver that ran it uninterrupted since it was
        // recorded: no operator or recovery action can have written history in between.
        Some((tx, steps)) => Json(TxView::detail(&tx, &steps, &[])),
        None => detail(&state, &submitted.tx_id).await?,
    };
    Ok((status, view))
}

/// `GET /api/transactions/{tx_id}`: the saga, its steps and its history; `?wait=30s`
/// first waits for its end, whichever host drives it.
#[utoipa::path(get, path = "/transactions/{tx_id}", tag = "transactions",
    params(
        ("tx_id" = String, Path, description = "Saga id"),
        ("wait" = Option<String>, Query, description = "Wait up to this long (`30s`, at most `5m`) for a terminal status; answers with the saga as it is then"),
    ),
    responses((status = 200, body = TxView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(tx_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<TxView>, ApiError> {
    if let Some(w) = query_pairs(query).get("wait").and_then(|v| v.last()) {
        let wait = parse_duration(w, "wait")?.min(MAX_WAIT);
        state.engine.wait(&tx_id, wait).await?;
    }
    detail(&state, &tx_id).await
}

/// A page of transactions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListResponse {
    /// This page, newest first.
    pub transactions: Vec<TxView>,
    /// How many match in all.
    pub total: u64,
    /// Page number (1-based).
    pub page: u64,
    /// Page size.
    pub page_size: u32,
}

/// `GET /api/transactions?status=FAILED&status=TIMEOUT&tx_type=…&page=1&page_size=20&from=…&to=…&q=…&input.account_id=…`
#[utoipa::path(get, path = "/transactions", tag = "transactions",
    params(
        ("status" = Option<Vec<TxStatus>>, Query, explode = true, description = "Any of these statuses (repeat the parameter, or separate with commas)"),
        ("tx_type" = Option<String>, Query, description = "Only this saga type"),
        ("from" = Option<String>, Query, description = "Created at or after (RFC 3339)"),
        ("to" = Option<String>, Query, description = "Created before (RFC 3339)"),
        ("q" = Option<String>, Query, description = "Part of the saga id, anywhere in it (at most 64 characters)"),
        ("input.{key}" = Option<String>, Query, description = "Sagas whose input has the top-level key `{key}` with this value: \
            `input.account_id=ACC-1007`. A string matches without its quotes, a number or boolean as its JSON text (`input.amount=100`, `input.urgent=true`); \
            objects, arrays and null are not searchable, nor keys over 128 or values over 255 characters (refused with 400). \
            Up to 8 such parameters, all of which must match; combines with every other filter. Served by an index."),
        ("page" = Option<u64>, Query, description = "1-based page (default 1)"),
        ("page_size" = Option<u32>, Query, description = "Rows per page (default 20, at most 500)"),
    ),
    responses((status = 200, body = ListResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<ListResponse>, ApiError> {
    let query = query_pairs(query);
    let one = |k: &str| {
        query
            .get(k)
            .and_then(|v| v.last())
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let mut statuses = Vec::new();
    for s in query
        .get("status")
        .into_iter()
        .flatten()
        .flat_map(|v| v.split(','))
    {
        if s.is_empty() {
            continue;
        }
        statuses.push(
            s.trim()
                .to_ascii_uppercase()
                .parse::<TxStatus>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    let number = |k: &str, default: u64| -> Result<u64, ApiError> {
        one(k).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("`{k}` must be a positive number")))
        })
    };
    // Bounded so the offset stays a sane database value.
    let page = number("page", 1)?.clamp(1, 1_000_000);
    let page_size = number("page_size", 20)?.clamp(1, MAX_PAGE_SIZE as u64) as u32;
    let time = |k: &str| -> Result<Option<i64>, ApiError> {
        one(k)
            .map(|v| {
                humantime::parse_rfc3339_weak(&v)
                    .map(|t| {
                        t.duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis() as i64)
                            .unwrap_or(0)
                    })
                    .map_err(|_| ApiError::bad_request(format!("`{k}` must be an RFC 3339 time")))
            })
            .transpose()
    };
    let filter = TxFilter {
        statuses,
        tx_type: one("tx_type"),
        created_after: time("from")?,
        created_before: time("to")?,
        tx_id_contains: id_part(one("q"))?,
        input: input_matches(
            query.iter().flat_map(|(k, values)| {
                let key = k.strip_prefix(INPUT_PARAM);
                values.iter().filter_map(move |v| Some((key?, v.as_str())))
            }),
            |key| format!("`{INPUT_PARAM}{key}`"),
        )?,
        offset: (page - 1) * page_size as u64,
        limit: page_size,
    };
    let result = state.engine.admin().list(&filter).await?;
    Ok(Json(ListResponse {
        transactions: result.items.iter().map(TxView::summary).collect(),
        total: result.total,
        page,
        page_size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_repeat() {
        let q = query_pairs(Some(
            "status=FAILED&status=TIMEOUT&tx_type=fund%20transfer&x=a+b&bad=%zz".into(),
        ));
        assert_eq!(q["status"], ["FAILED", "TIMEOUT"]);
        assert_eq!(q["tx_type"], ["fund transfer"]);
        assert_eq!(q["x"], ["a b"]);
        assert_eq!(q["bad"], ["%zz"]);
    }
}

/// Body of force-complete and force-cancel.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why, for the saga's history.
    pub reason: String,
}

/// Body of retry.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Why, for the saga's history.
    #[serde(default)]
    pub reason: Option<String>,
    /// Re-run from this step, keeping the outputs of the steps before it.
    #[serde(default)]
    pub from_step: Option<u32>,
}

fn reason(text: &str) -> Result<&str, ApiError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 1000 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "`reason` must be 1 to 1000 characters",
        ));
    }
    Ok(text)
}

pub(super) async fn detail(state: &AppState, tx_id: &str) -> Result<Json<TxView>, ApiError> {
    let d = state.engine.admin().get(tx_id).await?;
    let mut view = TxView::detail(&d.transaction, &d.steps, &d.history);
    // Only a saga with a waiting step costs the read of its waits.
    if d.steps
        .iter()
        .any(|s| s.status == crate::engine::StepStatus::Waiting)
    {
        let waits = state
            .engine
            .store()
            .waits_of(tx_id)
            .await
            .map_err(crate::error::Error::from)?;
        for step in view.steps.iter_mut().flatten() {
            if step.status == crate::engine::StepStatus::Waiting {
                step.wait = waits
                    .iter()
                    .rev()
                    .find(|w| w.step_index == step.step_index && w.closed_at.is_none())
                    .map(super::views::WaitView::from);
            }
        }
    }
    Ok(Json(view))
}

/// `POST /api/transactions/{tx_id}/force-complete` `{"reason"}`.
#[utoipa::path(post, path = "/transactions/{tx_id}/force-complete", tag = "transactions", request_body = ReasonRequest,
    params(("tx_id" = String, Path, description = "Saga id")),
    responses((status = 200, body = TxView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The saga's status forbids it", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn force_complete(
    State(state): State<AppState>,
    Path(tx_id): Path<String>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Json<TxView>, ApiError> {
    state
        .engine
        .admin()
        .force_complete(&tx_id, reason(&body.reason)?)
        .await?;
    detail(&state, &tx_id).await
}

/// `POST /api/transactions/{tx_id}/force-cancel` `{"reason"}`: compensates what completed.
#[utoipa::path(post, path = "/transactions/{tx_id}/force-cancel", tag = "transactions", request_body = ReasonRequest,
    params(("tx_id" = String, Path, description = "Saga id")),
    responses((status = 200, body = TxView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The saga's status forbids it", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn force_cancel(
    State(state): State<AppState>,
    Path(tx_id): Path<String>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Json<TxView>, ApiError> {
    state
        .engine
        .admin()
        .force_cancel(&tx_id, reason(&body.reason)?)
        .await?;
    detail(&state, &tx_id).await
}

/// `POST /api/transactions/{tx_id}/retry` `{"reason"?, "from_step"?}` (the body may be empty).
#[utoipa::path(post, path = "/transactions/{tx_id}/retry", tag = "transactions", request_body(content = Option<RetryRequest>),
    params(("tx_id" = String, Path, description = "Saga id")),
    responses((status = 200, body = TxView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The saga's status forbids it", body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    Path(tx_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<TxView>, ApiError> {
    let body: RetryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RetryRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?
    };
    let why = match body.reason.as_deref() {
        Some(r) => reason(r)?.to_string(),
        None => "manual retry".to_string(),
    };
    state
        .engine
        .admin()
        .retry_transaction(&tx_id, body.from_step, &why)
        .await?;
    detail(&state, &tx_id).await
}
