//! Outbound HTTP for plugins: only to the hosts the operator allows, with clamped
//! timeouts and the saga's `traceparent` added.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The send hook of one plugin call. The default hook of `wasmtime-wasi-http` lets every
/// destination through; this one checks the plugin's allow-list first.
#[derive(Clone, Default)]
pub struct HttpPolicy {
    allowed: Arc<HashSet<String>>,
    traceparent: Option<String>,
    max_timeout: Duration,
}

impl HttpPolicy {
    /// Allow `allowed` hosts (`host`, `host:port`, or `*`), with timeouts of at most `max_timeout`.
    pub fn new(
        allowed: Arc<HashSet<String>>,
        traceparent: Option<String>,
        max_timeout: Duration,
    ) -> Self {
        Self {
            allowed,
            traceparent,
            max_timeout,
        }
    }

    /// Whether a request to `host` (and `port`) may go out.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed.contains("*")
            || self.allowed.contains(&host)
            || port.is_some_and(|p| self.allowed.contains(&format!("{host}:{p}")))
    }

    fn clamp(&self, timeout: Option<Duration>) -> Option<Duration> {
        Some(timeout.map_or(self.max_timeout, |t| t.min(self.max_timeout)))
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let uri = request.uri();
        let allowed = uri.host().is_some_and(|h| self.allows(h, uri.port_u16()));
        if !allowed {
            let host = uri.host().unwrap_or("").to_string();
            tracing::warn!(%host, "plugin HTTP request denied: host not in the allow-list");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if let Some(tp) = self.traceparent.as_deref().and_then(|t| t.parse().ok()) {
            request.headers_mut().insert("traceparent", tp);
        }
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: self.clamp(options.connect_timeout),
            first_byte_timeout: self.clamp(options.first_byte_timeout),
            between_bytes_timeout: self.clamp(options.between_bytes_timeout),
        };
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_host_or_host_and_port() {
        let allowed: HashSet<String> = ["api.example.com", "127.0.0.1:9000"]
            .map(String::from)
            .into();
        let p = HttpPolicy::new(Arc::new(allowed), None, Duration::from_secs(1));
        assert!(p.allows("API.example.com", None));
        assert!(p.allows("127.0.0.1", Some(9000)));
        assert!(!p.allows("127.0.0.1", Some(9001)));
        assert!(!p.allows("evil.example.com", Some(443)));
    }
}
