//! Circuit breakers, one per downstream service a step declares: closed → open after
//! `circuit_threshold` consecutive failures → half-open after `circuit_timeout`, admitting
//! `circuit_half_open_reqs` trial calls → closed when they all succeed, open again on a failure.

mod redis;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::events::{Event, EventBus, kinds};

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// One breaker's state; the same shape in memory and in Redis (as JSON), so both share
/// the state machine below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Breaker {
    state: BreakerState,
    failures: u32,
    /// Wall-clock ms, so hosts sharing the breaker agree on when it opened.
    opened_at: i64,
    trials: u32,
    successes: u32,
    total_failures: u64,
    total_successes: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed,
            failures: 0,
            opened_at: 0,
            trials: 0,
            successes: 0,
            total_failures: 0,
            total_successes: 0,
        }
    }
}

impl Breaker {
    /// An open breaker whose timeout passed becomes half-open.
    fn settle(&mut self, config: &BreakerConfig, now: i64) {
        if self.state == BreakerState::Open
            && now - self.opened_at >= config.timeout.as_millis() as i64
        {
            self.state = BreakerState::HalfOpen;
            self.trials = 0;
            self.successes = 0;
        }
    }

    fn allow(&mut self, config: &BreakerConfig, now: i64) -> bool {
        self.settle(config, now);
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.trials < config.half_open_reqs => {
                self.trials += 1;
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    fn record(&mut self, config: &BreakerConfig, success: bool, now: i64) {
        if success {
            self.total_successes += 1;
            self.failures = 0;
            if self.state == BreakerState::HalfOpen {
                self.successes += 1;
                if self.successes >= config.half_open_reqs {
                    self.state = BreakerState::Closed;
                }
            }
        } else {
            self.total_failures += 1;
            self.failures += 1;
            if self.state == BreakerState::HalfOpen
                || (self.state == BreakerState::Closed && self.failures >= config.threshold)
            {
                self.state = BreakerState::Open;
                self.opened_at = now;
            }
        }
    }
}

/// A breaker's state, for the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

enum Backend {
    Memory(Mutex<BTreeMap<String, Breaker>>),
    Redis(redis::RedisBreakers),
}

/// Every service's breaker: in this process, or in Redis so every host sees the same state.
pub struct Breakers {
    config: BreakerConfig,
    backend: Backend,
    events: EventBus,
    clock: SharedClock,
}

impl Breakers {
    /// In-process breakers with `config`, reporting transitions on `events`.
    pub fn new(config: BreakerConfig, events: EventBus) -> Self {
        Self {
            config,
            backend: Backend::Memory(Mutex::new(BTreeMap::new())),
            events,
            clock: crate::clock::system(),
        }
    }

    /// Read time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Breakers kept in the Redis server at `url` under `prefix`, shared by every host.
    pub async fn redis(
        config: BreakerConfig,
        events: EventBus,
        url: &str,
        prefix: &str,
    ) -> Result<Self, crate::redis_client::RedisError> {
        let backend = Backend::Redis(redis::RedisBreakers::connect(url, prefix).await?);
        Ok(Self {
            config,
            backend,
            events,
            clock: crate::clock::system(),
        })
    }

    /// Whether every host sees the same breakers (they live in Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// One line for startup logs.
    pub fn summary(&self) -> String {
        match &self.backend {
            Backend::Memory(_) => "in-process circuit breakers".into(),
            Backend::Redis(r) => format!("circuit breakers in {}", r.location()),
        }
    }

    /// Apply `change` to `service`'s breaker atomically; returns its result and the states
    /// before and after. A Redis failure leaves the breaker untouched (`None`).
    async fn update<R>(
        &self,
        service: &str,
        change: impl Fn(&mut Breaker) -> R,
    ) -> Option<(R, BreakerState, BreakerState)> {
        match &self.backend {
            Backend::Memory(all) => {
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                let b = all.entry(service.to_string()).or_default();
                let before = b.state;
                let r = change(b);
                Some((r, before, b.state))
            }
            Backend::Redis(redis) => match redis.update(service, &change).await {
                Ok(done) => Some(done),
                Err(e) => {
                    tracing::warn!(%service, error = %e, "circuit breaker store unavailable");
                    None
                }
            },
        }
    }

    /// Whether a call to `service` may go ahead now. Fails open when Redis is unreachable:
    /// a broken breaker store must not stop every saga.
    pub async fn allow(&self, service: &str) -> bool {
        let now = self.clock.now_ms();
        match self.update(service, |b| b.allow(&self.config, now)).await {
            Some((allowed, before, after)) => {
                self.announce(service, before, after);
                allowed
            }
            None => true,
        }
    }

    /// Record the outcome of a call to `service`.
    pub async fn record(&self, service: &str, success: bool) {
        let now = self.clock.now_ms();
        if let Some(((), before, after)) = self
            .update(service, |b| b.record(&self.config, success, now))
            .await
        {
            self.announce(service, before, after);
        }
    }

    /// Force `service`'s breaker closed; returns whether it existed.
    pub async fn reset(&self, service: &str) -> bool {
        self.reset_state(service).await.is_some()
    }

    /// Force `service`'s breaker closed on an operator's word, as [`reset`](Self::reset)
    /// does, and record it: a `circuit.reset` event names the service, the state it left
    /// and the reason given. Returns the state it left, or `None` with no such breaker.
    pub async fn reset_by_operator(
        &self,
        service: &str,
        reason: Option<&str>,
    ) -> Option<BreakerState> {
        let before = self.reset_state(service).await?;
        let mut event = Event::new(kinds::CIRCUIT_RESET)
            .with("service", service)
            .with(
                "previous_state",
                serde_json::to_value(before).unwrap_or_default(),
            )
            .with("by", "operator");
        if let Some(reason) = reason {
            event = event.with("reason", reason);
        }
        tracing::info!(%service, previous = ?before, reason = reason.unwrap_or(""), "circuit breaker reset by an operator");
        self.events.publish(event);
        Some(before)
    }

    /// Close `service`'s breaker, keeping its totals; the state it left, or `None`.
    async fn reset_state(&self, service: &str) -> Option<BreakerState> {
        let before = self
            .list()
            .await
            .into_iter()
            .find(|b| b.service == service)?
            .state;
        let reset = |b: &mut Breaker| {
            *b = Breaker {
                total_failures: b.total_failures,
                total_successes: b.total_successes,
                ..Breaker::default()
            };
        };
        if let Some(((), before, after)) = self.update(service, reset).await {
            self.announce(service, before, after);
        }
        Some(before)
    }

    /// Every breaker's state.
    pub async fn list(&self) -> Vec<BreakerStatus> {
        let now = self.clock.now_ms();
        let all: Vec<(String, Breaker)> = match &self.backend {
            Backend::Memory(all) => all
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Backend::Redis(redis) => redis.list().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list circuit breakers");
                Vec::new()
            }),
        };
        all.into_iter()
            .map(|(service, mut b)| {
                // Shown as half-open once its timeout passed; the next call becomes a trial.
                b.settle(&self.config, now);
                BreakerStatus {
                    service,
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

    /// On a manual clock: the seed's 30 s timeout passes when the test moves time.
    #[tokio::test]
    async fn closed_open_half_open_closed_and_open_again() {
        let events = EventBus::new(100);
        let clock = crate::clock::ManualClock::new();
        let timeout = Duration::from_secs(30);
        let b = Breakers::new(
            BreakerConfig {
                threshold: 2,
                timeout,
                half_open_reqs: 2,
            },
            events.clone(),
        )
        .with_clock(clock.clone());
        assert!(b.allow("svc").await);
        b.record("svc", false).await;
        b.record("svc", false).await;
        assert!(!b.allow("svc").await, "open after the threshold");
        clock.advance(timeout - Duration::from_millis(1));
        assert!(!b.allow("svc").await, "still open just before the timeout");
        clock.advance(Duration::from_millis(1));
        assert!(
            b.allow("svc").await && b.allow("svc").await,
            "two trials when half-open"
        );
        assert!(!b.allow("svc").await, "no third trial");
        b.record("svc", true).await;
        b.record("svc", true).await;
        assert!(b.allow("svc").await, "closed after the trials succeed");
        b.record("svc", false).await;
        b.record("svc", false).await;
        clock.advance(timeout);
        assert!(b.allow("svc").await);
        b.record("svc", false).await;
        assert!(!b.allow("svc").await, "a failed trial opens it again");
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
