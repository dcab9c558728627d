//! Circuit breakers, one per downstream service a step declares: closed → open after
//! `circuit_threshold` consecutive failures → half-open after `circuit_timeout`, admitting
//! `circuit_half_open_reqs` trial calls → closed when they all succeed, open again on a failure.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::events::{Event, EventBus, kinds};

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few trial calls pass.
    HalfOpen,
}

impl BreakerState {
    /// The seed's gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// Breaker settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// How long it stays open.
    pub timeout: Duration,
    /// Trial calls admitted while half-open.
    pub half_open_reqs: u32,
}

#[derive(Debug)]
struct Breaker {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    trials: u32,
    successes: u32,
    total_failures: u64,
    total_successes: u64,
}

impl Breaker {
    fn new() -> Self {
        Self {
            state: BreakerState::Closed,
            failures: 0,
            opened_at: None,
            trials: 0,
            successes: 0,
            total_failures: 0,
            total_successes: 0,
        }
    }
}

/// A breaker's state, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerStatus {
    /// The service.
    pub service: String,
    /// Its state.
    pub state: BreakerState,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// Failures seen since start.
    pub total_failures: u64,
    /// Successes seen since start.
    pub total_successes: u64,
}

/// Every service's breaker, in this process.
pub struct Breakers {
    config: BreakerConfig,
    breakers: Mutex<BTreeMap<String, Breaker>>,
    events: EventBus,
}

impl Breakers {
    /// Breakers with `config`, reporting transitions on `events`.
    pub fn new(config: BreakerConfig, events: EventBus) -> Self {
        Self {
            config,
            breakers: Mutex::new(BTreeMap::new()),
            events,
        }
    }

    /// Whether a call to `service` may go ahead now.
    pub fn allow(&self, service: &str) -> bool {
        let mut all = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = all.entry(service.to_string()).or_insert_with(Breaker::new);
        match b.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                if b.opened_at
                    .is_some_and(|t| t.elapsed() >= self.config.timeout)
                {
                    b.state = BreakerState::HalfOpen;
                    b.trials = 1;
                    b.successes = 0;
                    crate::telemetry::metrics()
                        .circuit_state
                        .with_label_values(&[service])
                        .set(BreakerState::HalfOpen.gauge());
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen => {
                if b.trials < self.config.half_open_reqs {
                    b.trials += 1;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Record the outcome of a call to `service`.
    pub fn record(&self, service: &str, success: bool) {
        let mut all = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = all.entry(service.to_string()).or_insert_with(Breaker::new);
        let before = b.state;
        if success {
            b.total_successes += 1;
            b.failures = 0;
            if b.state == BreakerState::HalfOpen {
                b.successes += 1;
                if b.successes >= self.config.half_open_reqs {
                    b.state = BreakerState::Closed;
                }
            }
        } else {
            b.total_failures += 1;
            b.failures += 1;
            if b.state == BreakerState::HalfOpen
                || (b.state == BreakerState::Closed && b.failures >= self.config.threshold)
            {
                b.state = BreakerState::Open;
                b.opened_at = Some(Instant::now());
            }
        }
        let after = b.state;
        drop(all);
        self.announce(service, before, after);
    }

    /// Force `service`'s breaker closed; returns whether it existed.
    pub fn reset(&self, service: &str) -> bool {
        let mut all = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = all.get_mut(service) else {
            return false;
        };
        let before = b.state;
        *b = Breaker {
            total_failures: b.total_failures,
            total_successes: b.total_successes,
            ..Breaker::new()
        };
        drop(all);
        self.announce(service, before, BreakerState::Closed);
        true
    }

    /// Every breaker's state.
    pub fn list(&self) -> Vec<BreakerStatus> {
        let mut all = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        all.iter_mut()
            .map(|(service, b)| {
                if b.state == BreakerState::Open
                    && b.opened_at
                        .is_some_and(|t| t.elapsed() >= self.config.timeout)
                {
                    // Shown as half-open once its timeout passed; the next call becomes a trial.
                    b.state = BreakerState::HalfOpen;
                    b.trials = 0;
                    b.successes = 0;
                }
                BreakerStatus {
                    service: service.clone(),
                    state: b.state,
                    consecutive_failures: b.failures,
                    total_failures: b.total_failures,
                    total_successes: b.total_successes,
                }
            })
            .collect()
    }

    fn announce(&self, service: &str, before: BreakerState, after: BreakerState) {
        crate::telemetry::metrics()
            .circuit_state
            .with_label_values(&[service])
            .set(after.gauge());
        if before == after {
            return;
        }
        let kind = match after {
            BreakerState::Open => kinds::CIRCUIT_OPENED,
            BreakerState::Closed => kinds::CIRCUIT_CLOSED,
            BreakerState::HalfOpen => return,
        };
        tracing::warn!(%service, state = ?after, "circuit breaker changed state");
        self.events
            .publish(Event::new(kind).with("service", service));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_open_half_open_closed_and_open_again() {
        let events = EventBus::new(100);
        let b = Breakers::new(
            BreakerConfig {
                threshold: 2,
                timeout: Duration::from_millis(20),
                half_open_reqs: 2,
            },
            events.clone(),
        );
        assert!(b.allow("svc"));
        b.record("svc", false);
        b.record("svc", false);
        assert!(!b.allow("svc"), "open after the threshold");
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            b.allow("svc") && b.allow("svc"),
            "two trials when half-open"
        );
        assert!(!b.allow("svc"), "no third trial");
        b.record("svc", true);
        b.record("svc", true);
        assert!(b.allow("svc"), "closed after the trials succeed");
        b.record("svc", false);
        b.record("svc", false);
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow("svc"));
        b.record("svc", false);
        assert!(!b.allow("svc"), "a failed trial opens it again");
        let kinds: Vec<String> = events.recent().iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                "circuit.opened",
                "circuit.closed",
                "circuit.opened",
                "circuit.opened"
            ]
        );
    }
}
