//! Sharing events between hosts through the database they share, when no Redis relays
//! them: each host appends its events to the store's shared log in batches (one write per
//! batch, never in a saga's path) and reads the other hosts' events from it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Event, EventBus, Log, RelayError};
use crate::store::{SharedEvent, TxStore, now_ms};

/// How long this host's events gather before they are written together.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often the other hosts' events are read.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// Shared events older than this are deleted (every host's log has read them long before).
const KEEP_FOR: Duration = Duration::from_secs(600);
/// How often old shared events are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// How long a hole in the log's positions may still be filled by a writer that has not
/// committed yet; after that the hole is taken to be a rolled-back write.
const GAP_WAIT: Duration = Duration::from_secs(5);
/// Events not yet written beyond this many are dropped (the database is away for long).
const MAX_PENDING: usize = 50_000;
/// Shared events read per query.
const READ_BATCH: u32 = 1000;

impl EventBus {
    /// Share events with every host relaying through the same database: this host's
    /// events are appended to the shared log, and other hosts' events are delivered here
    /// as if they were local (to the event log, the stream and subscribers), a fraction of
    /// a second later. The log's latest events fill this host's event log at the start.
    /// Stops when the bus is dropped.
    pub async fn relay_through_store(&self, store: Arc<dyn TxStore>) -> Result<(), RelayError> {
        let origin = uuid::Uuid::now_v7().simple().to_string();
        let latest = store
            .events_latest(self.log.capacity as u32)
            .await
            .map_err(RelayError::Store)?;
        let mut reader = Reader::new(latest.last().map_or(0, |e| e.id));
        for shared in &latest {
            if let Some(event) = decode(shared) {
                self.log.remember(event);
            }
        }
        let rx = self.start_relay().ok_or(RelayError::AlreadyRelayed)?;
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        tokio::spawn(write_loop(store.clone(), origin.clone(), rx, stop));
        let log = self.log.clone();
        // Where the database pushes appends, they wake the reader at once (a saga's end
        // reaches a request waiting on another host without a poll's delay).
        let mut wakes = match store.events_listen().await {
            Ok(wakes) => wakes,
            Err(e) => {
                tracing::warn!(error = %e, "not notified of shared events; polling them");
                None
            }
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                    Some(()) = next_wake(&mut wakes) => {}
                    _ = stopped.changed() => return,
                }
                reader.poll(&*store, &origin, &log).await;
            }
        });
        Ok(())
    }
}

/// Write this host's events in batches until the bus goes, deleting old ones now and then.
async fn write_loop(
    store: Arc<dyn TxStore>,
    origin: String,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Arc<Event>>,
    _stop: tokio::sync::watch::Sender<()>,
) {
    let mut pending: Vec<(i64, String)> = Vec::new();
    let mut purged = Instant::now();
    let mut failing = false;
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(event) => pending.push(encode(&event)),
                None => return,
            }
        }
        tokio::time::sleep(FLUSH_EVERY).await;
        while let Ok(event) = rx.try_recv() {
            pending.push(encode(&event));
        }
        if pending.len() > MAX_PENDING {
            let dropped = pending.len() - MAX_PENDING;
            pending.drain(..dropped);
            tracing::warn!(
                dropped,
                "shared event log unreachable; oldest events not shared"
            );
        }
        match store.events_append(&origin, &pending).await {
            Ok(()) => {
                pending.clear();
                failing = false;
            }
            // The bus is gone (the host stopped): nothing more to share, so no retrying.
            Err(_) if rx.is_closed() && rx.is_empty() => return,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot write to the shared event log; retrying");
                }
                failing = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if purged.elapsed() >= PURGE_EVERY {
            purged = Instant::now();
            let before = now_ms() - KEEP_FOR.as_millis() as i64;
            if let Err(e) = store.purge_events(before, 10_000).await {
                tracing::debug!(error = %e, "could not purge the shared event log");
            }
        }
    }
}

/// The next wake-up; never, without a stream of them (or once it ended).
async fn next_wake(wakes: &mut Option<futures::stream::BoxStream<'static, ()>>) -> Option<()> {
    use futures::StreamExt;
    match wakes {
        Some(stream) => match stream.next().await {
            Some(()) => Some(()),
            None => {
                *wakes = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

fn encode(event: &Event) -> (i64, String) {
    (
        now_ms(),
        serde_json::to_string(event).unwrap_or_else(|_| "null".into()),
    )
}

fn decode(shared: &SharedEvent) -> Option<Arc<Event>> {
    serde_json::from_str::<Event>(&shared.payload)
        .ok()
        .map(Arc::new)
}

/// Reads the shared log in position order. Positions come from the database as writes
/// begin, not as they commit, so a later position can be seen before an earlier one: the
/// reader keeps its place at the first hole until the hole fills or [`GAP_WAIT`] passes,
/// and remembers what it delivered beyond it.
struct Reader {
    /// Every position up to here has been handled.
    cursor: i64,
    /// Positions beyond the cursor already handled.
    seen: BTreeSet<i64>,
    /// Since when the position after the cursor has been missing.
    hole_since: Option<Instant>,
}

impl Reader {
    fn new(cursor: i64) -> Self {
        Self {
            cursor,
            seen: BTreeSet::new(),
            hole_since: None,
        }
    }

    async fn poll(&mut self, store: &dyn TxStore, origin: &str, log: &Log) {
        let rows = match store.events_after(self.cursor, READ_BATCH, origin).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the shared event log");
                return;
            }
        };
        for shared in &rows {
            if !self.seen.insert(shared.id) {
                continue;
            }
            if shared.origin != origin
                && let Some(event) = decode(shared)
            {
                log.deliver(event);
            }
        }
        self.advance();
    }

    /// Move the cursor over handled positions; give up on a hole older than [`GAP_WAIT`].
    fn advance(&mut self) {
        loop {
            let from = self.cursor;
            while self.seen.remove(&(self.cursor + 1)) {
                self.cursor += 1;
            }
            if self.cursor != from {
                self.hole_since = None;
            }
            let Some(&next) = self.seen.first() else {
                self.hole_since = None;
                return;
            };
            let since = *self.hole_since.get_or_insert_with(Instant::now);
            if since.elapsed() < GAP_WAIT {
                return;
            }
            self.cursor = next - 1;
            self.hole_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_waits_at_a_hole_then_moves_past_it() {
        let mut r = Reader::new(10);
        r.seen.extend([11, 12, 14]);
        r.advance();
        assert_eq!(r.cursor, 12, "stops before the hole at 13");
        assert!(r.hole_since.is_some());
        r.seen.insert(13);
        r.advance();
        assert_eq!(r.cursor, 14, "the hole filled");
        assert!(r.seen.is_empty() && r.hole_since.is_none());

        r.seen.insert(17);
        r.advance();
        assert_eq!(r.cursor, 14);
        r.hole_since = Some(Instant::now() - GAP_WAIT);
        r.advance();
        assert_eq!(
            r.cursor, 17,
            "a hole older than the wait is a rolled-back write"
        );
    }
}
