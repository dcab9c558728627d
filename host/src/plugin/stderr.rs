//! A guest's stderr, kept for the step's error: the last bytes it wrote.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Keeps the last `cap` bytes a guest writes to stderr, and never fails a write.
///
/// The tail, because a panic message or a traceback comes last. Never failing, because
/// wasmtime's `MemoryOutputPipe` closes the stream once full, and a Rust guest's `eprintln!`
/// then panics: a plugin that merely logs a lot to stderr would fail its step.
#[derive(Clone)]
pub(super) struct StderrTail {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl StderrTail {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            buf: Arc::default(),
            cap,
        }
    }

    /// Keep `bytes`, dropping the oldest beyond the cap.
    pub(super) fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        // Drop old output in batches, so trimming stays cheap per write.
        if buf.len() > 2 * self.cap {
            let excess = buf.len() - self.cap;
            buf.drain(..excess);
        }
    }

    /// What was kept, as text, with `…` in front when older output was dropped.
    pub(super) fn text(&self) -> String {
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let cut = buf.len().saturating_sub(self.cap);
        let text = String::from_utf8_lossy(&buf[cut..]);
        let text = text.trim();
        if cut > 0 {
            format!("…{text}")
        } else {
            text.to_string()
        }
    }
}

impl AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn write(tail: &StderrTail, bytes: &[u8]) {
        let mut stream = Pin::from(tail.async_stream());
        let mut cx = Context::from_waker(Waker::noop());
        let written = stream.as_mut().poll_write(&mut cx, bytes);
        assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));
    }

    #[test]
    fn keeps_the_tail_and_never_refuses_a_write() {
        let tail = StderrTail::new(16);
        assert_eq!(tail.text(), "");
        write(&tail, b"short");
        assert_eq!(tail.text(), "short");
        for _ in 0..1000 {
            write(&tail, b"chatter chatter\n");
        }
        write(&tail, b"panicked at x");
        let text = tail.text();
        assert!(
            text.starts_with('…') && text.ends_with("panicked at x"),
            "{text}"
        );
        assert!(text.len() <= 16 + '…'.len_utf8(), "{text}");
    }
}
