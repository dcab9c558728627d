//! `http_call`: one outbound HTTP request through the host's `wasi:http`.
//!
//! The host sends a request only to the hosts the plugin's manifest (`http.toml`) allows, and
//! adds the saga's `traceparent`. A denied request fails the step permanently; other transport
//! failures are retryable. Any HTTP status is a completed call: the status is an output.

use rte_plugin_sdk::{Step, StepContext, StepError, StepInfo, export_steps, log};
use serde_json::Value;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

export_steps!(HttpCall);

/// The largest response body kept as the `body` output.
const MAX_BODY: usize = 64 << 10;

/// `http_call`: GET input `url`, or POST input `body` to it; outputs `status` and `body`.
#[derive(Default)]
pub struct HttpCall;

impl Step for HttpCall {
    fn info() -> StepInfo {
        StepInfo::new("http_call")
            .service("http")
            .description("GET url, or POST body to it; outputs status and body (first 64 KiB)")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let url: String = ctx.input_as("url")?;
        let body: Option<Value> = ctx.input_as("body")?;
        let (scheme, authority, path) = split_url(&url)?;
        let (method, content_type, payload) = match &body {
            None => (Method::Get, None, Vec::new()),
            Some(Value::String(text)) => (
                Method::Post,
                Some("text/plain; charset=utf-8"),
                text.as_bytes().to_vec(),
            ),
            Some(json) => (
                Method::Post,
                Some("application/json"),
                serde_json::to_vec(json)?,
            ),
        };
        let headers = Fields::new();
        if let Some(content_type) = content_type {
            headers
                .set("content-type", &[content_type.as_bytes().to_vec()])
                .map_err(|e| StepError::permanent(format!("content-type header: {e:?}")))?;
        }
        let request = OutgoingRequest::new(headers);
        let invalid = |what: &str| StepError::permanent(format!("invalid {what} in url `{url}`"));
        request
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| invalid("path"))?;
        let response = send(request, &payload).map_err(|e| transport_error(&url, e))?;
        let status = response.status();
        let (text, truncated) = read_body(&response)?;
        log::debug(format!(
            "{method:?} {url}: {status}{}",
            if truncated { " (body truncated)" } else { "" }
        ));
        ctx.set_output("status", status)?;
        ctx.set_output("body", text)
    }
}

/// `scheme://authority/path?query` into its parts; the path defaults to `/`.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), StepError> {
    let bad = || StepError::permanent(format!("input `url` must be an http(s) URL, got `{url}`"));
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(bad()),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], &rest[i..]),
        Some(_) => return Err(bad()),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(bad());
    }
    Ok((scheme, authority, path))
}

/// Send `request` with `payload` as its body and wait for the response head.
fn send(request: OutgoingRequest, payload: &[u8]) -> Result<IncomingResponse, ErrorCode> {
    let body = request.body().expect("a new request's body is available");
    let future = outgoing_handler::handle(request, None)?;
    {
        let stream = body.write().expect("a new body's stream is available");
        for chunk in payload.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| ErrorCode::InternalError(Some(format!("writing the body: {e:?}"))))?;
        }
    }
    OutgoingBody::finish(body, None)?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(result)) => result,
        _ => Err(ErrorCode::InternalError(Some(
            "response already taken".into(),
        ))),
    }
}

/// The response body as text, cut at [`MAX_BODY`] bytes; and whether it was cut.
fn read_body(response: &IncomingResponse) -> Result<(String, bool), StepError> {
    let body = response
        .consume()
        .map_err(|()| StepError::retryable("response body unavailable"))?;
    let mut bytes = Vec::new();
    let mut truncated = false;
    {
        let stream = body
            .stream()
            .map_err(|()| StepError::retryable("response body unavailable"))?;
        loop {
            match stream.blocking_read(16 << 10) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(StepError::retryable(format!(
                        "reading the response body: {}",
                        e.to_debug_string()
                    )));
                }
            }
            if bytes.len() > MAX_BODY {
                truncated = true;
                break;
            }
        }
    }
    drop(body);
    if truncated {
        // Cut at a character boundary: back off over at most three continuation bytes.
        let mut end = MAX_BODY;
        while end > MAX_BODY - 3 && bytes[end] & 0xc0 == 0x80 {
            end -= 1;
        }
        bytes.truncate(end);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok((text, truncated))
}

/// A request the host's allow-list denied will be denied again: permanent. Anything else on
/// the way (refused, reset, timed out, DNS) may clear: retryable.
fn transport_error(url: &str, err: ErrorCode) -> StepError {
    match err {
        ErrorCode::HttpRequestDenied => StepError::permanent(format!(
            "request to `{url}` denied: the host is not in this plugin's HTTP allow-list"
        )),
        other => StepError::retryable(format!("request to `{url}` failed: {other:?}")),
    }
}
