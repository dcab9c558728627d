//! Bearer-token access control for `/api`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Reject `/api` calls without the configured token (compared in constant time).
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.admin_token.as_deref() else {
        return next.run(request).await;
    };
    // Browsers' EventSource cannot send headers, so the event stream also takes the token
    // as `?access_token=` (percent-decoded: a token may hold `+`, `/` or `=`).
    let allowed = {
        let header = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let from_query = || {
            (request.uri().path().ends_with("/events/stream"))
                .then(|| request.uri().query().unwrap_or(""))
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("access_token=")))
                .map(super::transactions::decode)
        };
        match header {
            Some(given) => constant_time_eq(given.as_bytes(), expected.as_bytes()),
            None => constant_time_eq(
                from_query().unwrap_or_default().as_bytes(),
                expected.as_bytes(),
            ),
        }
    };
    if allowed {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
        .into_response()
    }
}

/// Equal without revealing, through timing, where two inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8;
    for (i, y) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ y;
    }
    diff == 0 && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_whole_tokens() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secre", b"secret"));
        assert!(!super::constant_time_eq(b"secretx", b"secret"));
        assert!(!super::constant_time_eq(b"", b"secret"));
    }
}
