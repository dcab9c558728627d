//! The saga engine: the [`Engine`] that records sagas and the coordinator that drives
//! them through their statuses, calling plugin steps forward and compensations backward.
//!
//! The engine names no concrete backend: it holds a [`TxStore`], a [`LockManager`] and a
//! [`PluginRuntime`].

mod admin;
mod apply;
mod definitions;
mod policy;
mod readiness;
mod retry;
mod saga;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;

pub use crate::lifecycle::{StepStatus, TxStatus};
pub(crate) use admin::note_lost_calls;
pub use admin::{Admin, TxDetail};
pub use apply::{Patience, With};
pub use definitions::{
    Definitions, MAX_GROUP_BRANCHES, ParallelGroup, PlannedStep, SagaDefinition, StepEntry,
    plan_steps, render_lock_keys,
};
pub use retry::backoff;
pub use saga::ReplySource;

use crate::breaker::{BreakerConfig, Breakers};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, EventBus, kinds};
use crate::lock::{self, LockManager, MemoryLocks};
use crate::plugin::PluginRuntime;
use crate::store::{CreateOutcome, OutboxMessage, StepRecord, TxRecord, TxStore};

/// Saga type recorded for a saga given in full with its request.
pub const ADHOC_TYPE: &str = "adhoc";
/// Most steps one saga may have.
pub const MAX_STEPS: usize = 64;

/// Settings the engine runs by (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Lock lifetime unless extended.
    pub lock_ttl: Duration,
    /// How often locks are extended.
    pub lock_extend_period: Duration,
    /// How long to wait for locks.
    pub lock_wait: Duration,
    /// Step retries after retryable errors.
    pub max_retries: u32,
    /// First retry delay.
    pub retry_interval: Duration,
    /// Longest retry delay.
    pub retry_max_interval: Duration,
    /// Saga deadline.
    pub tx_timeout: Duration,
    /// How long idempotency records count.
    pub idempotency_ttl: Duration,
    /// Breaker settings.
    pub breaker: BreakerConfig,
    /// Events kept for the event log.
    pub event_log_size: usize,
    /// A saga not updated for this long has no live host driving it.
    pub stuck_threshold: Duration,
    /// Largest total of a saga's outputs, in bytes of JSON.
    pub max_outputs_bytes: u64,
    /// The operator's per-step policy overrides, by step name.
    pub step_policy: std::collections::BTreeMap<String, crate::policy::StepPolicy>,
    /// How long starting a saga waits for a step whose plugin is still loading.
    pub plugin_load_wait: Duration,
}

impl From<&Config> for EngineConfig {
    fn from(c: &Config) -> Self {
        Self {
            lock_ttl: c.lock_ttl,
            lock_extend_period: c.lock_extend_period,
            lock_wait: c.lock_wait,
            max_retries: c.max_retries,
            retry_interval: c.retry_interval,
            retry_max_interval: c.retry_max_interval,
            tx_timeout: c.tx_timeout,
            idempotency_ttl: c.idempotency_ttl,
            breaker: BreakerConfig {
                threshold: c.circuit_threshold,
                timeout: c.circuit_timeout,
                half_open_reqs: c.circuit_half_open_reqs,
            },
            event_log_size: c.event_log_size,
            stuck_threshold: c.stuck_threshold,
            max_outputs_bytes: c.saga_max_outputs_kb << 10,
            step_policy: c.step_policy.clone(),
            plugin_load_wait: c.plugin_load_wait,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::from(&Config::default())
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn TxStore>,
    pub(crate) locks: Arc<dyn LockManager>,
    pub(crate) plugins: Arc<PluginRuntime>,
    pub(crate) config: EngineConfig,
    pub(crate) definitions: Definitions,
    pub(crate) events: EventBus,
    pub(crate) breakers: Breakers,
    pub(crate) host_id: String,
    /// Where "now" comes from.
    pub(crate) clock: SharedClock,
    /// Sagas this host is advancing now, each with whether it was asked to look again; a
    /// saga is never driven twice at once here.
    pub(crate) active: Mutex<HashMap<String, bool>>,
    pub(crate) tasks: tokio_util_lite::TaskCount,
    /// Where committed outbox messages go to be sent (the broker's relay), once connected.
    pub(crate) outlet:
        arc_swap::ArcSwapOption<tokio::sync::mpsc::UnboundedSender<Vec<OutboxMessage>>>,
}

/// Runs sagas. Cheap to clone; every clone drives the same sagas.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    store: Arc<dyn TxStore>,
    plugins: Arc<PluginRuntime>,
    locks: Option<Arc<dyn LockManager>>,
    config: EngineConfig,
    definitions: Definitions,
    events: Option<EventBus>,
    breakers: Option<Breakers>,
    clock: SharedClock,
}

impl EngineBuilder {
    /// Use this lock service (default: in-process locks).
    pub fn locks(mut self, locks: Arc<dyn LockManager>) -> Self {
        self.locks = Some(locks);
        self
    }

    /// Use these settings.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Use these saga definitions.
    pub fn definitions(mut self, definitions: Definitions) -> Self {
        self.definitions = definitions;
        self
    }

    /// Publish on this event bus.
    pub fn events(mut self, events: EventBus) -> Self {
        self.events = Some(events);
        self
    }

    /// Use these circuit breakers (default: in-process ones on the engine's event bus).
    pub fn breakers(mut self, breakers: Breakers) -> Self {
        self.breakers = Some(breakers);
        self
    }

    /// Read time from `clock` (default: the system clock); default breakers read it too.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let events = self
            .events
            .unwrap_or_else(|| EventBus::new(self.config.event_log_size));
        let breakers = self.breakers.unwrap_or_else(|| {
            Breakers::new(self.config.breaker, events.clone()).with_clock(self.clock.clone())
        });
        Engine {
            inner: Arc::new(Inner {
                store: self.store,
                locks: self.locks.unwrap_or_else(|| Arc::new(MemoryLocks::new())),
                plugins: self.plugins,
                config: self.config,
                definitions: self.definitions,
                events,
                breakers,
                host_id: format!("host-{}", uuid::Uuid::now_v7().simple()),
                clock: self.clock,
                active: Mutex::new(HashMap::new()),
                tasks: Default::default(),
                outlet: arc_swap::ArcSwapOption::empty(),
            }),
        }
    }
}

/// Shortest timeout a saga may be given.
pub const MIN_TX_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest timeout a saga may be given (a year): its deadline must stay a real date.
pub const MAX_TX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

/// Whether `timeout` may be a saga's timeout; the reason when not.
pub fn check_tx_timeout(timeout: Duration) -> std::result::Result<(), String> {
    if (MIN_TX_TIMEOUT..=MAX_TX_TIMEOUT).contains(&timeout) {
        return Ok(());
    }
    Err(format!(
        "`timeout` must lie between {} and {}, got {}",
        humantime::format_duration(MIN_TX_TIMEOUT),
        humantime::format_duration(MAX_TX_TIMEOUT),
        humantime::format_duration(timeout)
    ))
}

/// A saga ready to start, built by [`Engine::new_transaction`] or from an API request.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    tx_type: String,
    steps: Vec<StepEntry>,
    /// The steps laid out (set by validation).
    planned: Vec<PlannedStep>,
    lock_keys: Vec<String>,
    input: Map<String, Value>,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
    request_key: Option<String>,
    traceparent: Option<String>,
}

/// Builds a [`Transaction`] in the seed's shape.
#[derive(Clone)]
pub struct TransactionBuilder {
    engine: Engine,
    tx: Transaction,
    explicit_steps: bool,
    input_error: Option<String>,
}

impl TransactionBuilder {
    /// Resources to lock for the saga's whole run (added to the type's templates).
    pub fn with_lock_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tx.lock_keys.extend(keys.into_iter().map(Into::into));
        self
    }

    /// The input object every step sees.
    pub fn with_input(mut self, input: impl Serialize) -> Self {
        match serde_json::to_value(input) {
            Ok(Value::Object(map)) => self.tx.input = map,
            Ok(_) => self.input_error = Some("input must be a JSON object".into()),
            Err(e) => self.input_error = Some(format!("input cannot be serialised: {e}")),
        }
        self
    }

    /// Saga deadline (default: the type's, else `tx_timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.tx.timeout = Some(timeout);
        self
    }

    /// Step retries (default: the type's, else `max_retries`).
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.tx.max_retries = Some(retries);
        self
    }

    /// A key that makes a repeated submission return the first saga.
    pub fn with_request_key(mut self, key: impl Into<String>) -> Self {
        self.tx.request_key = Some(key.into());
        self
    }

    /// W3C trace context of the caller.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.tx.traceparent = Some(traceparent.into());
        self
    }

    /// Append a step (replaces the type's defined steps once any is added).
    pub fn add_step(mut self, step: impl Into<String>) -> Self {
        if !self.explicit_steps {
            self.tx.steps.clear();
            self.explicit_steps = true;
        }
        self.tx.steps.push(StepEntry::Step(step.into()));
        self
    }

    /// Append a parallel group: `steps` run at once, at most `max_concurrent` at a time
    /// (all of them when `None`); the next step runs once every one completed.
    pub fn add_parallel<I, S>(mut self, steps: I, max_concurrent: Option<u32>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !self.explicit_steps {
            self.tx.steps.clear();
            self.explicit_steps = true;
        }
        self.tx.steps.push(StepEntry::Parallel(ParallelGroup {
            parallel: steps.into_iter().map(Into::into).collect(),
            max_concurrent,
        }));
        self
    }

    /// Check the saga: known steps, a valid input, lock keys resolved.
    pub fn build(self) -> Result<Transaction> {
        if let Some(e) = self.input_error {
            return Err(Error::Invalid(e));
        }
        self.engine.validate(self.tx)
    }
}

/// A saga's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxResult {
    /// Saga id.
    pub tx_id: String,
    /// Its status.
    pub status: TxStatus,
    /// Outputs of its steps.
    pub output: Map<String, Value>,
    /// The error that ended it, if any.
    pub error: Option<String>,
}

impl From<&TxRecord> for TxResult {
    fn from(tx: &TxRecord) -> Self {
        Self {
            tx_id: tx.tx_id.clone(),
            status: tx.status,
            output: tx.outputs.clone(),
            error: tx.last_error.clone(),
        }
    }
}

/// A saga as its create wrote it, handed to its first driver so it starts without a read.
pub(crate) struct Recorded {
    /// The saga row.
    pub tx: TxRecord,
    /// Its steps.
    pub steps: Vec<StepRecord>,
    /// The lock keys taken before the create (which then recorded the saga `LOCKED`
    /// with its first call announced), so the driver does not take them again.
    pub locks: Option<Vec<String>>,
    /// The span of the saga's first pass, which the lock taken before the create is in.
    pub span: tracing::Span,
}

/// A submitted saga: its id, and whether an earlier request with the same key made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Saga id.
    pub tx_id: String,
    /// `true` when the request key matched an existing saga.
    pub existing: bool,
}

impl Engine {
    /// Start building an engine over `store` and `plugins`.
    pub fn builder(store: Arc<dyn TxStore>, plugins: Arc<PluginRuntime>) -> EngineBuilder {
        EngineBuilder {
            store,
            plugins,
            locks: None,
            config: EngineConfig::default(),
            definitions: Definitions::default(),
            events: None,
            breakers: None,
            clock: crate::clock::system(),
        }
    }

    /// Start a saga of `tx_type`: its defined steps, or those added with `add_step`.
    pub fn new_transaction(&self, tx_type: impl Into<String>) -> TransactionBuilder {
        let tx_type = tx_type.into();
        let steps = self
            .inner
            .definitions
            .get(&tx_type)
            .map(|d| d.steps.clone())
            .unwrap_or_default();
        TransactionBuilder {
            engine: self.clone(),
            tx: Transaction {
                tx_type,
                steps,
                ..Transaction::default()
            },
            explicit_steps: false,
            input_error: None,
        }
    }

    /// Build a transaction from its parts (as the REST API receives them).
    #[allow(clippy::too_many_arguments)]
    pub fn transaction_from_request(
        &self,
        tx_type: Option<String>,
        steps: Option<Vec<StepEntry>>,
        input: Map<String, Value>,
        lock_keys: Vec<String>,
        timeout: Option<Duration>,
        max_retries: Option<u32>,
        request_key: Option<String>,
        traceparent: Option<String>,
    ) -> Result<Transaction> {
        let tx_type = tx_type.unwrap_or_else(|| ADHOC_TYPE.to_string());
        let steps = match steps {
            Some(steps) => steps,
            None => match self.inner.definitions.get(&tx_type) {
                Some(def) => def.steps.clone(),
                None => {
                    return Err(Error::Invalid(format!(
                        "unknown saga type `{tx_type}`: define it in the sagas file or give `steps`"
                    )));
                }
            },
        };
        self.validate(Transaction {
            tx_type,
            steps,
            planned: Vec::new(),
            lock_keys,
            input,
            timeout,
            max_retries,
            request_key,
            traceparent,
        })
    }

    fn validate(&self, mut tx: Transaction) -> Result<Transaction> {
        if tx.tx_type.trim().is_empty() || tx.tx_type.len() > 128 {
            return Err(Error::Invalid("tx_type must be 1 to 128 characters".into()));
        }
        if tx.steps.is_empty() {
            return Err(Error::Invalid(format!(
                "saga `{}` has no steps",
                tx.tx_type
            )));
        }
        tx.planned = plan_steps(&tx.steps).map_err(Error::Invalid)?;
        if tx.planned.len() > MAX_STEPS {
            return Err(Error::Invalid(format!(
                "a saga may have at most {MAX_STEPS} steps"
            )));
        }
        for step in &tx.planned {
            if self.inner.plugins.plugin_for(&step.name).is_none() {
                let loading = self.inner.plugins.loading();
                if !loading.is_empty() {
                    return Err(Error::PluginsLoading(format!(
                        "step `{}` is not served yet: plugins still loading ({}); try again shortly",
                        step.name,
                        loading.join(", ")
                    )));
                }
                return Err(Error::Invalid(format!(
                    "unknown step `{}`: no loaded plugin provides it",
                    step.name
                )));
            }
        }
        let input = Value::Object(tx.input.clone());
        if let Some(def) = self.inner.definitions.get(&tx.tx_type) {
            let mut keys = render_lock_keys(&def.lock_keys, &input)?;
            keys.append(&mut tx.lock_keys);
            tx.lock_keys = keys;
            tx.timeout = tx.timeout.or(def.timeout);
            tx.max_retries = tx.max_retries.or(def.max_retries);
        }
        if tx.lock_keys.iter().any(|k| k.is_empty() || k.len() > 200) {
            return Err(Error::Invalid(
                "lock keys must be 1 to 200 characters".into(),
            ));
        }
        if let Some(key) = &tx.request_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err(Error::Invalid(
                "Idempotency-Key must be 1 to 255 characters".into(),
            ));
        }
        Ok(tx)
    }

    /// Record a saga and start it in the background; returns once it is durable.
    pub async fn submit(&self, tx: Transaction) -> Result<Submitted> {
        Ok(self.submit_recorded(tx).await?.0)
    }

    /// [`Engine::submit`], returning the saga as recorded (before its driver's first
    /// commit), so a caller can answer without reading it back; `None` for an existing
    /// saga the request key matched.
    pub async fn submit_recorded(
        &self,
        tx: Transaction,
    ) -> Result<(Submitted, Option<(TxRecord, Vec<StepRecord>)>)> {
        let traceparent = tx.traceparent.clone();
        let (submitted, recorded) = self.record(tx).await?;
        let as_recorded = recorded.as_ref().map(|r| (r.tx.clone(), r.steps.clone()));
        if let Some(state) = recorded {
            self.spawn_from(submitted.tx_id.clone(), traceparent, Some(state));
        }
        Ok((submitted, as_recorded))
    }

    /// Record a saga, start it, and wait up to `limit` for its end. The driver that runs it
    /// here hands over its final state (saga and steps) as it stops, so a saga that ends on
    /// this host costs no read; one that another host finishes (this host's driver was
    /// fenced out or paused) is awaited through [`Engine::wait`]. Returns the final state
    /// when it was handed over, `None` when the caller must read it (an existing saga, the
    /// limit passed, or another host finished it).
    pub async fn submit_and_wait(
        &self,
        tx: Transaction,
        limit: Duration,
    ) -> Result<(Submitted, Option<(TxRecord, Vec<StepRecord>)>)> {
        let until = tokio::time::Instant::now() + limit;
        let traceparent = tx.traceparent.clone();
        let (submitted, recorded) = self.record(tx).await?;
        if let Some(state) = recorded {
            // The driver runs in its own task: a client that gives up does not stop it.
            let driver = self.spawn_from(submitted.tx_id.clone(), traceparent, Some(state));
            match tokio::time::timeout_at(until, driver).await {
                Ok(Ok(Some(last))) if last.0.status.is_terminal() => {
                    return Ok((submitted, Some(last)));
                }
                Err(_) => return Ok((submitted, None)),
                // Stopped before the end (fenced out, paused), or already driven here.
                Ok(_) => {}
            }
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if !left.is_zero() {
            self.wait(&submitted.tx_id, left).await?;
        }
        Ok((submitted, None))
    }

    /// Record a saga and run it to its end (the seed's `Execute`).
    pub async fn execute(&self, tx: Transaction) -> Result<TxResult> {
        let traceparent = tx.traceparent.clone();
        let (submitted, recorded) = self.record(tx).await?;
        if let Some(state) = recorded {
            // Driven from the record just written: no read back before or after.
            let last = self
                .drive_from(&submitted.tx_id, traceparent, Some(state))
                .await;
            if let Some((tx, _)) = last.filter(|(tx, _)| tx.status.is_terminal()) {
                return Ok(TxResult::from(&tx));
            }
        }
        let (tx, _) = self.get(&submitted.tx_id).await?;
        if !tx.status.is_terminal() {
            return self
                .wait(&submitted.tx_id, self.inner.config.tx_timeout * 2)
                .await;
        }
        Ok(TxResult::from(&tx))
    }

    /// Write a new saga; returns what was written, unless the request key matched an
    /// existing saga.
    async fn record(&self, tx: Transaction) -> Result<(Submitted, Option<Recorded>)> {
        let now = self.now_ms();
        let tx_id = uuid::Uuid::now_v7().to_string();
        let timeout = tx.timeout.unwrap_or(self.inner.config.tx_timeout);
        check_tx_timeout(timeout).map_err(Error::Invalid)?;
        let mut record = TxRecord {
            tx_id: tx_id.clone(),
            tx_type: tx.tx_type.clone(),
            status: TxStatus::Created,
            input: Value::Object(tx.input),
            outputs: Map::new(),
            lock_keys: tx.lock_keys,
            current_step: 0,
            total_steps: tx.planned.len() as u32,
            retry_count: 0,
            max_retries: tx.max_retries.unwrap_or(self.inner.config.max_retries),
            timeout_ms: timeout.as_millis() as u64,
            deadline_at: now + timeout.as_millis() as i64,
            last_error: None,
            version: 0,
            request_key: tx.request_key,
            created_at: now,
            updated_at: now,
            completed_at: None,
            undo: None,
        };
        let mut steps: Vec<StepRecord> = tx
            .planned
            .iter()
            .enumerate()
            .map(|(i, planned)| StepRecord {
                group: planned.group,
                ..StepRecord::pending(&tx_id, i as u32, &planned.name)
            })
            .collect();
        let span = crate::telemetry::saga_span(&tx_id, tx.traceparent.as_deref());
        let locks = self
            .lock_before_create(&mut record, &mut steps)
            .instrument(span.clone())
            .await;
        let created = self.inner.store.create(&record, &steps).await;
        if let (Some(keys), false) = (&locks, matches!(created, Ok(CreateOutcome::Created))) {
            lock::release_all(&self.inner.locks, keys, &self.lock_token(&tx_id)).await;
        }
        match created? {
            CreateOutcome::Existing(id) => {
                // The key names one request: the same key with a different saga is a
                // client bug, not a retry.
                if let Some((first, first_steps)) = self.inner.store.get(&id).await? {
                    let same = first.tx_type == record.tx_type
                        && first.input == record.input
                        && first.lock_keys == record.lock_keys
                        && first_steps.len() == steps.len()
                        && first_steps
                            .iter()
                            .zip(&steps)
                            .all(|(a, b)| a.step_name == b.step_name && a.group == b.group);
                    if !same {
                        return Err(Error::KeyReused(format!(
                            "Idempotency-Key `{}` was first used for a different request (saga {id})",
                            record.request_key.as_deref().unwrap_or_default()
                        )));
                    }
                }
                Ok((
                    Submitted {
                        tx_id: id,
                        existing: true,
                    },
                    None,
                ))
            }
            CreateOutcome::Created => {
                let label = crate::telemetry::type_label(&self.inner.definitions, &tx.tx_type);
                crate::telemetry::metrics()
                    .tx_started
                    .with_label_values(&[label])
                    .inc();
                self.inner.events.publish(
                    Event::new(kinds::TX_CREATED)
                        .tx(&tx_id, &tx.tx_type)
                        .with("steps", tx.planned.len()),
                );
                Ok((
                    Submitted {
                        tx_id,
                        existing: false,
                    },
                    Some(Recorded {
                        tx: record,
                        steps,
                        locks,
                        span,
                    }),
                ))
            }
        }
    }

    /// The token this host's driver holds a saga's locks with.
    pub(crate) fn lock_token(&self, tx_id: &str) -> String {
        format!("{}/{}", self.inner.host_id, tx_id)
    }

    /// Take every one of `keys` for `token`, retrying for at most `wait`, in a span of its
    /// own; once taken, count it, timed from `started` (when the saga began to wait).
    pub(crate) async fn acquire_locks(
        &self,
        keys: &[String],
        token: &str,
        wait: Duration,
        started: std::time::Instant,
    ) -> std::result::Result<Vec<String>, lock::LockError> {
        let taken = lock::acquire_all(
            &self.inner.locks,
            keys,
            token,
            self.inner.config.lock_ttl,
            wait,
        )
        .instrument(tracing::info_span!("lock.acquire", keys = keys.len()))
        .await?;
        if !taken.is_empty() {
            let m = crate::telemetry::metrics();
            m.lock_acquired.inc();
            m.lock_acquire_duration
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(taken)
    }

    /// Try once, without waiting, to take a new saga's locks before its create; when they
    /// are free, make `tx` `LOCKED` with its first step's call announced, so the create
    /// also writes what would otherwise be the driver's first commit. Returns the keys
    /// taken; `None` leaves the saga `CREATED` for its driver to lock (the keys are taken,
    /// the first step is a parallel group, or the lock service failed).
    async fn lock_before_create(
        &self,
        tx: &mut TxRecord,
        steps: &mut [StepRecord],
    ) -> Option<Vec<String>> {
        let first = steps.first()?;
        if first.group.is_some() {
            return None;
        }
        let next = tx.status.on(crate::lifecycle::TxEvent::LocksHeld).ok()?;
        let token = self.lock_token(&tx.tx_id);
        let started = std::time::Instant::now();
        let keys = self
            .acquire_locks(&tx.lock_keys, &token, Duration::ZERO, started)
            .await
            .ok()?;
        tx.status = next;
        steps[0].status = StepStatus::Executing;
        steps[0].started_at = Some(tx.created_at);
        Some(keys)
    }

    /// Hand committed outbox messages to be sent from now on to `outlet` (the broker's
    /// relay, which also sends what is left unsent after a crash).
    pub fn set_outlet(&self, outlet: tokio::sync::mpsc::UnboundedSender<Vec<OutboxMessage>>) {
        self.inner.outlet.store(Some(Arc::new(outlet)));
    }

    /// Send messages that just committed, when a relay is connected (else they stay in the
    /// outbox until one is).
    pub(crate) fn send_outbox(&self, messages: Vec<OutboxMessage>) {
        if messages.is_empty() {
            return;
        }
        if let Some(outlet) = self.inner.outlet.load_full() {
            let _ = outlet.send(messages);
        }
    }

    /// Drive `tx_id` in the background on this host (no-op if already running here).
    pub fn spawn(&self, tx_id: String, traceparent: Option<String>) {
        self.spawn_from(tx_id, traceparent, None);
    }

    /// [`Engine::spawn`], starting from a state known to be the stored one; the task
    /// ends with what [`Engine::drive_from`] returned (dropping the handle does not stop it).
    fn spawn_from(
        &self,
        tx_id: String,
        traceparent: Option<String>,
        known: Option<Recorded>,
    ) -> tokio::task::JoinHandle<Option<(TxRecord, Vec<StepRecord>)>> {
        let engine = self.clone();
        let guard = self.inner.tasks.enter();
        tokio::spawn(async move {
            let _guard = guard;
            engine.drive_from(&tx_id, traceparent, known).await
        })
    }

    /// The saga and its steps.
    pub async fn get(&self, tx_id: &str) -> Result<(TxRecord, Vec<StepRecord>)> {
        self.inner
            .store
            .get(tx_id)
            .await?
            .ok_or_else(|| Error::NotFound(tx_id.to_string()))
    }

    /// Wait until `tx_id` reaches a terminal status or `limit` passes; returns its state then.
    /// Reads the saga when its end event arrives (from this host, or from the host that
    /// drives it, through Redis pub/sub, PostgreSQL notifications or the shared event log),
    /// and otherwise now and then, backing off from 50 ms to two seconds, for hosts that
    /// share no events.
    pub async fn wait(&self, tx_id: &str, limit: Duration) -> Result<TxResult> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(50);
        loop {
            // Registered before the read, so an end in between still wakes this wait.
            let mut end = self.inner.events.saga_end(tx_id);
            match self.get(tx_id).await {
                Ok((tx, _)) if tx.status.is_terminal() => return Ok(TxResult::from(&tx)),
                Ok(_) => {}
                // A store outage while waiting is not the saga's end: keep waiting.
                Err(Error::Store(e))
                    if e.is_retryable() && tokio::time::Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
            // Woken by the saga's end event (driven here, or relayed from the host that
            // drives it); the growing poll is the last resort when no event comes.
            let woken = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + pause),
                end.ended(),
            )
            .await;
            if woken.is_err() {
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            if woken.is_err() && tokio::time::Instant::now() >= deadline {
                let (tx, _) = self.get(tx_id).await?;
                return Ok(TxResult::from(&tx));
            }
        }
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The plugin runtime.
    pub fn plugins(&self) -> &Arc<PluginRuntime> {
        &self.inner.plugins
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TxStore> {
        &self.inner.store
    }

    /// The circuit breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.inner.breakers
    }

    /// The saga definitions.
    pub fn definitions(&self) -> &Definitions {
        &self.inner.definitions
    }

    /// The engine's time, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// In a `CONFIRMING` saga, the step whose confirm a host that stopped may have been
    /// calling: the first step (in step order) that executed and still has a confirm to
    /// run (a step whose plugin is not loaded counts, as when confirming).
    pub(crate) fn confirm_in_flight(
        &self,
        status: TxStatus,
        steps: &[StepRecord],
    ) -> Option<usize> {
        if status != TxStatus::Confirming {
            return None;
        }
        steps.iter().position(|s| {
            s.status == StepStatus::Completed && self.step_confirms(&s.step_name).unwrap_or(true)
        })
    }

    /// Whether `step` has a confirm; `None` while no loaded plugin serves it.
    pub(crate) fn step_confirms(&self, step: &str) -> Option<bool> {
        let plugin = self.inner.plugins.plugin_for(step)?;
        Some(plugin.step(step).is_some_and(|d| d.supports_confirm))
    }

    /// This host's id (in history entries and logs).
    pub fn host_id(&self) -> &str {
        &self.inner.host_id
    }

    /// Sagas being driven by this host now.
    pub fn in_flight(&self) -> usize {
        self.inner.tasks.count()
    }

    /// Wait until every saga this host is driving has stopped, or `limit` passes.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.inner.tasks.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether this host is driving `tx_id` right now.
    pub fn is_driving(&self, tx_id: &str) -> bool {
        self.inner
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(tx_id)
    }
}

/// A counter of running tasks (what `tokio-util`'s tracker does, in a few lines).
mod tokio_util_lite {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    pub struct TaskCount(Arc<AtomicUsize>);

    pub struct Guard(Arc<AtomicUsize>);

    impl TaskCount {
        pub fn enter(&self) -> Guard {
            self.0.fetch_add(1, Ordering::SeqCst);
            Guard(self.0.clone())
        }

        pub fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
