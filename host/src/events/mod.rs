//! Events: what happened to sagas, steps, breakers and recovery. The [`EventBus`] hands
//! each event to subscribers without ever blocking a saga, and keeps the most recent
//! ones for the event log.

mod redis_relay;
mod store_relay;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

/// Event type names, as the seed defines them.
pub mod kinds {
    /// A saga was recorded.
    pub const TX_CREATED: &str = "tx.created";
    /// A saga completed.
    pub const TX_COMPLETED: &str = "tx.completed";
    /// A saga failed (compensation may follow).
    pub const TX_FAILED: &str = "tx.failed";
    /// A saga passed its deadline.
    pub const TX_TIMEOUT: &str = "tx.timeout";
    /// A saga was cancelled.
    pub const TX_CANCELLED: &str = "tx.cancelled";
    /// A saga's completed steps were all compensated.
    pub const TX_COMPENSATED: &str = "tx.compensated";
    /// A compensation failed for good.
    pub const TX_COMPENSATION_FAILED: &str = "tx.compensation_failed";
    /// A step call started.
    pub const STEP_STARTED: &str = "step.started";
    /// A step completed.
    pub const STEP_COMPLETED: &str = "step.completed";
    /// A step call failed.
    pub const STEP_FAILED: &str = "step.failed";
    /// A step was compensated.
    pub const STEP_COMPENSATED: &str = "step.compensated";
    /// A step's confirm succeeded: its effect is final.
    pub const STEP_CONFIRMED: &str = "step.confirmed";
    /// A step call ended waiting for a reply (with its correlation id and deadline).
    pub const STEP_WAITING: &str = "step.waiting";
    /// A waiting step's reply arrived (or its deadline passed) and was recorded.
    pub const REPLY_RECEIVED: &str = "reply.received";
    /// A reply was not applied: a duplicate, late, or for no known wait.
    pub const REPLY_IGNORED: &str = "reply.ignored";
    /// A circuit breaker opened.
    pub const CIRCUIT_OPENED: &str = "circuit.opened";
    /// A circuit breaker closed.
    pub const CIRCUIT_CLOSED: &str = "circuit.closed";
    /// An operator reset a circuit breaker (with the reason given).
    pub const CIRCUIT_RESET: &str = "circuit.reset";
    /// A recovery scan started.
    pub const RECOVERY_START: &str = "recovery.start";
    /// Something an operator should look at.
    pub const ALERT_WARNING: &str = "alert.warning";
    /// Something an operator must act on.
    pub const ALERT_CRITICAL: &str = "alert.critical";

    /// Whether an event of `kind` says a saga reached an end status.
    pub fn ends_saga(kind: &str) -> bool {
        matches!(
            kind,
            TX_COMPLETED
                | TX_FAILED
                | TX_TIMEOUT
                | TX_CANCELLED
                | TX_COMPENSATED
                | TX_COMPENSATION_FAILED
        )
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Event type (see [`kinds`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// The saga, if any.
    pub tx_id: Option<String>,
    /// The saga's type, if any.
    pub tx_type: Option<String>,
    /// The step, if any.
    pub step_name: Option<String>,
    /// The error, if any.
    pub error: Option<String>,
    /// More detail.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// When (RFC 3339).
    pub timestamp: String,
}

impl Event {
    /// An event of `kind` now.
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
            tx_id: None,
            tx_type: None,
            step_name: None,
            error: None,
            data: Map::new(),
            timestamp: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        }
    }

    /// Set the saga.
    pub fn tx(mut self, tx_id: &str, tx_type: &str) -> Self {
        self.tx_id = Some(tx_id.to_string());
        self.tx_type = Some(tx_type.to_string());
        self
    }

    /// Set the step.
    pub fn step(mut self, step: &str) -> Self {
        self.step_name = Some(step.to_string());
        self
    }

    /// Set the error, cut to [`MAX_ERROR_LEN`](crate::error::MAX_ERROR_LEN) bytes: a step's
    /// error text is the plugin's to choose, and events reach every stream client.
    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(crate::error::truncate_text(
            error.into(),
            crate::error::MAX_ERROR_LEN,
        ));
        self
    }

    /// Add a data field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_string(), value.into());
        self
    }
}

/// Why this host's events cannot be shared with other hosts.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A relay is already running for this bus.
    #[error("events are already relayed")]
    AlreadyRelayed,
    /// The Redis server that relays events cannot be reached.
    #[error("cannot relay events: {0}")]
    Redis(#[from] crate::redis_client::RedisError),
    /// The shared event log in the store cannot be read.
    #[error("cannot read the shared event log: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Publishes events to subscribers and keeps the recent ones.
#[derive(Clone)]
pub struct EventBus {
    log: Arc<Log>,
    /// Where this host's events go to reach other hosts, once relaying is on.
    relay: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Arc<Event>>>>,
}

/// The local side of the bus: live subscribers and the most recent events. Relays hold
/// this, not the bus, so a relay's tasks end when the last handle to the bus goes.
struct Log {
    sender: broadcast::Sender<Arc<Event>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
    capacity: usize,
    /// Who waits for which saga's end ([`EventBus::saga_end`]).
    ends: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<()>>>>,
}

impl Log {
    /// Keep `event` in the event log without announcing it (history from elsewhere).
    fn remember(&self, event: Arc<Event>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == self.capacity {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    /// Hand an event to local subscribers and the event log, and wake whoever waits for
    /// the end it announces.
    fn deliver(&self, event: Arc<Event>) {
        if kinds::ends_saga(&event.kind)
            && let Some(tx_id) = &event.tx_id
        {
            let woken = self
                .ends
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(tx_id);
            for waiter in woken.into_iter().flatten() {
                let _ = waiter.send(());
            }
        }
        self.remember(event.clone());
        let _ = self.sender.send(event);
    }
}

/// The end of one saga, awaited ([`EventBus::saga_end`]); leaves no trace when dropped.
pub struct SagaEnd {
    log: Arc<Log>,
    tx_id: String,
    rx: tokio::sync::oneshot::Receiver<()>,
}

impl SagaEnd {
    /// Resolves when an event announcing the saga's end (here, or relayed from another
    /// host) arrives.
    pub async fn ended(&mut self) {
        let _ = (&mut self.rx).await;
    }
}

impl Drop for SagaEnd {
    fn drop(&mut self) {
        self.rx.close();
        let mut ends = self.log.ends.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiters) = ends.get_mut(&self.tx_id) {
            waiters.retain(|w| !w.is_closed());
            if waiters.is_empty() {
                ends.remove(&self.tx_id);
            }
        }
    }
}

impl EventBus {
    /// A bus that keeps the latest `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(4096);
        let capacity = capacity.max(1);
        Self {
            log: Arc::new(Log {
                sender,
                recent: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
                ends: Mutex::default(),
            }),
            relay: Arc::default(),
        }
    }

    /// Publish an event. Never waits: a subscriber that falls behind misses events
    /// (and is told so) rather than slowing sagas.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        if let Some(relay) = self.relay.get() {
            let _ = relay.send(event.clone());
        }
        self.log.deliver(event);
    }

    /// Route this host's events to a relay as well (once): returns the receiving end,
    /// which closes when the last handle to this bus is dropped.
    fn start_relay(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Arc<Event>>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.relay.set(tx).ok().map(|()| rx)
    }

    /// Wait for `tx_id`'s end: woken by the one event that announces it, with no look at
    /// other sagas' events. Register before reading the saga's state, so an end between
    /// the read and the wait is not missed.
    pub fn saga_end(&self, tx_id: &str) -> SagaEnd {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.log
            .ends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tx_id.to_string())
            .or_default()
            .push(tx);
        SagaEnd {
            log: self.log.clone(),
            tx_id: tx_id.to_string(),
            rx,
        }
    }

    /// How many sagas have someone waiting for their end.
    pub fn awaited_sagas(&self) -> usize {
        self.log
            .ends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// A live stream of every event from now on.
    pub fn stream(&self) -> broadcast::Receiver<Arc<Event>> {
        self.log.sender.subscribe()
    }

    /// How many events the event log keeps.
    pub fn capacity(&self) -> usize {
        self.log.capacity
    }

    /// The most recent events, oldest first.
    pub fn recent(&self) -> Vec<Arc<Event>> {
        self.log
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Call `handler` for every event of type `kind`, on a thread of its own.
    pub fn subscribe<F>(&self, kind: &str, handler: F) -> std::thread::JoinHandle<()>
    where
        F: Fn(Arc<Event>) + Send + 'static,
    {
        let kind = kind.to_string();
        self.spawn_handler(move |e| e.kind == kind, handler)
    }

    /// Call `handler` for every event, on a thread of its own.
    pub fn subscribe_all<F>(&self, handler: F) -> std::thread::JoinHandle<()>
    where
        F: Fn(Arc<Event>) + Send + 'static,
    {
        self.spawn_handler(|_| true, handler)
    }

    /// Each subscriber gets its own thread, so one that blocks or panics never holds up a
    /// saga or another subscriber; one that falls too far behind misses events (and a
    /// warning says how many).
    fn spawn_handler<P, F>(&self, wanted: P, handler: F) -> std::thread::JoinHandle<()>
    where
        P: Fn(&Event) -> bool + Send + 'static,
        F: Fn(Arc<Event>) + Send + 'static,
    {
        let mut rx = self.stream();
        std::thread::Builder::new()
            .name("rte-subscriber".into())
            .spawn(move || {
                loop {
                    match rx.blocking_recv() {
                        Ok(event) if wanted(&event) => {
                            // A panicking handler loses only its own call.
                            let call = std::panic::AssertUnwindSafe(|| handler(event));
                            if std::panic::catch_unwind(call).is_err() {
                                tracing::warn!(
                                    "an event subscriber panicked; it keeps receiving events"
                                );
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "event subscriber fell behind");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            })
            .expect("spawn event subscriber thread")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_saga_end_wakes_only_its_own_waiters_and_leaves_no_trace() {
        let bus = EventBus::new(10);
        let mut mine = bus.saga_end("a");
        let other = bus.saga_end("b");
        assert_eq!(bus.awaited_sagas(), 2);
        // Another saga's end, and a non-ending event of this one, do not wake it.
        bus.publish(Event::new(kinds::TX_COMPLETED).tx("c", "t"));
        bus.publish(Event::new(kinds::STEP_COMPLETED).tx("a", "t"));
        let early = tokio::time::timeout(std::time::Duration::from_millis(20), mine.ended()).await;
        assert!(early.is_err(), "woken before its end");
        bus.publish(Event::new(kinds::TX_COMPENSATED).tx("a", "t"));
        tokio::time::timeout(std::time::Duration::from_secs(5), mine.ended())
            .await
            .expect("woken by its end");
        assert_eq!(bus.awaited_sagas(), 1, "only b is still awaited");
        // A waiter that gives up is forgotten.
        drop(other);
        assert_eq!(bus.awaited_sagas(), 0);
    }
}
