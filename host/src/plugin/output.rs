//! A guest's stdout and stderr, line by line into the host's log inside the call's span
//! (so each line carries the saga and step), within a per-call byte budget and a
//! per-plugin line rate, so a chatty or hostile plugin cannot flood the log.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::stderr::StderrTail;

/// Longest line logged as it is; the rest of a longer one is cut.
const MAX_LINE: usize = 4 << 10;
/// Lines a plugin may log at once, across its calls…
const BURST_LINES: f64 = 200.0;
/// …and per second after that.
const LINES_PER_SECOND: f64 = 50.0;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

/// A token bucket of log lines per plugin, shared by all its calls.
#[derive(Default)]
pub(super) struct LineRates {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LineRates {
    /// Whether `plugin` may log one more line now.
    fn take(&self, plugin: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let bucket = buckets.entry(plugin.to_string()).or_insert(Bucket {
            tokens: BURST_LINES,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * LINES_PER_SECOND;
        bucket.tokens = (bucket.tokens + refill).min(BURST_LINES);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What both streams of one call share: the span, the byte budget, the drop count.
pub(super) struct CallOutput {
    span: tracing::Span,
    plugin: String,
    rates: Arc<LineRates>,
    budget: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

/// One stream of one call: complete lines go to the log; a partial line waits for its end
/// (or the end of the call). Writes never fail.
#[derive(Clone)]
pub(super) struct GuestOutput {
    stream: Stream,
    shared: Arc<Mutex<CallOutput>>,
    partial: Arc<Mutex<Vec<u8>>>,
    /// For stderr: the tail kept for the step's error.
    tail: Option<StderrTail>,
}

impl GuestOutput {
    /// The stdout and stderr of one call of `plugin`, logged in `span` within `budget`
    /// bytes; stderr also feeds `tail`.
    pub(super) fn pair(
        span: tracing::Span,
        plugin: &str,
        rates: Arc<LineRates>,
        budget: u64,
        tail: StderrTail,
    ) -> (Self, Self) {
        let shared = Arc::new(Mutex::new(CallOutput {
            span,
            plugin: plugin.to_string(),
            rates,
            budget,
            dropped_lines: 0,
            dropped_bytes: 0,
        }));
        let stream = |stream, tail| Self {
            stream,
            shared: shared.clone(),
            partial: Arc::default(),
            tail,
        };
        (
            stream(Stream::Stdout, None),
            stream(Stream::Stderr, Some(tail)),
        )
    }

    /// Log what is left of a line without its end, and say how much was dropped. Called
    /// once, when the call ends; returns the bytes dropped.
    pub(super) fn finish(stdout: &Self, stderr: &Self) -> u64 {
        for out in [stdout, stderr] {
            let rest = std::mem::take(&mut *out.partial.lock().unwrap_or_else(|p| p.into_inner()));
            if !rest.is_empty() {
                out.line(&rest);
            }
        }
        let shared = stdout.shared.lock().unwrap_or_else(|p| p.into_inner());
        if shared.dropped_lines > 0 {
            let _entered = shared.span.enter();
            tracing::warn!(
                target: "rte::plugin",
                lines = shared.dropped_lines,
                bytes = shared.dropped_bytes,
                "plugin stdout/stderr over its limits; lines dropped"
            );
        }
        shared.dropped_bytes
    }

    fn line(&self, bytes: &[u8]) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let size = bytes.len() as u64;
        if size > shared.budget || !shared.rates.take(&shared.plugin) {
            shared.dropped_lines += 1;
            shared.dropped_bytes += size;
            return;
        }
        shared.budget -= size;
        let cut = bytes.len().min(MAX_LINE);
        let text = String::from_utf8_lossy(&bytes[..cut]);
        let text = text.trim_end_matches('\r');
        let _entered = shared.span.enter();
        match self.stream {
            Stream::Stdout => tracing::info!(target: "rte::plugin::stdout", "{text}"),
            Stream::Stderr => tracing::warn!(target: "rte::plugin::stderr", "{text}"),
        }
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(tail) = &self.tail {
            tail.push(bytes);
        }
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        partial.extend_from_slice(bytes);
        while let Some(end) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            self.line(&line[..line.len() - 1]);
        }
        // A line that never ends is logged in pieces rather than held without bound.
        if partial.len() > MAX_LINE {
            let piece = std::mem::take(&mut *partial);
            self.line(&piece);
        }
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn write(out: &GuestOutput, bytes: &[u8]) {
        let mut stream = Pin::from(out.async_stream());
        let mut cx = Context::from_waker(Waker::noop());
        let written = stream.as_mut().poll_write(&mut cx, bytes);
        assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    #[test]
    fn lines_are_budgeted_and_rate_limited_and_stderr_keeps_its_tail() {
        let rates = Arc::new(LineRates::default());
        let tail = StderrTail::new(64);
        let (out, err) = GuestOutput::pair(
            tracing::Span::none(),
            "p",
            rates.clone(),
            1 << 20,
            tail.clone(),
        );
        write(&out, b"hel");
        write(&out, b"lo\nworld");
        write(&err, b"oops\n");
        assert_eq!(tail.text(), "oops");
        for _ in 0..1000 {
            write(&out, b"chatter\n");
        }
        let dropped = GuestOutput::finish(&out, &err);
        // 200 lines at once, then about 50 a second: most of the chatter is dropped.
        assert!(dropped > 700 * 7, "dropped {dropped} bytes");

        // A small byte budget stops a call's output even when the rate allows it.
        let (out, err) =
            GuestOutput::pair(tracing::Span::none(), "q", rates, 10, StderrTail::new(64));
        write(&out, b"12345\n1234\n123456\n");
        assert_eq!(
            GuestOutput::finish(&out, &err),
            6,
            "the third line is dropped"
        );
    }
}
