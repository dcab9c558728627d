//! `GET /api/events/stream`: live events as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

/// Every event from now on (filter with `?type=` and `?tx_id=`), as `event: <type>` with the
/// event's JSON as data. A client that falls behind gets a `lagged` event saying how many
/// it missed. The stream ends when the client goes away.
#[utoipa::path(get, path = "/events/stream", tag = "events",
    params(
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("tx_id" = Option<String>, Query, description = "Only this saga's events"),
        ("access_token" = Option<String>, Query, description = "The admin token, for clients that cannot send headers"),
    ),
    responses((status = 200, description = "Server-sent events: `event: <type>`, `data: <event JSON>`", content_type = "text/event-stream", body = String),
        (status = 401, body = super::ErrorBody)))]
pub async fn events_stream(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let params: Vec<(String, String)> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let filter = (param("type"), param("tx_id"));
    let rx = state.engine.events().stream();
    let stream = futures::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        loop {
            let item = match rx.recv().await {
                Ok(event) => {
                    let (kind, tx_id) = &filter;
                    if kind.as_ref().is_some_and(|k| &event.kind != k)
                        || tx_id
                            .as_ref()
                            .is_some_and(|t| event.tx_id.as_ref() != Some(t))
                    {
                        continue;
                    }
                    let data = serde_json::to_string(&*event).unwrap_or_default();
                    SseEvent::default().event(event.kind.clone()).data(data)
                }
                Err(RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(item), (rx, filter)));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
