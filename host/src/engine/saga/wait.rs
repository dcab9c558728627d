//! Steps that wait for a reply. A call that ends waiting commits the step as `WAITING`
//! with its wait (correlation id, deadline) and its published messages, and the pass ends:
//! the saga holds no task, instance or lock while it waits. The reply (or the deadline)
//! is recorded once by whichever host receives it, which then drives the saga again: the
//! step's `on-reply` runs in a fresh instance, and its result commits as the call's would
//! have, closing the wait in the same commit.

use serde_json::Map;
use tracing::Instrument;

use super::{Executed, SagaRun};
use crate::engine::{Engine, StepStatus};
use crate::error::Result;
use crate::events::{Event, kinds};
use crate::lifecycle::{AttemptOutcome, Phase, TxEvent};
use crate::plugin::{CallFailure, FailureKind, Published};
use crate::store::{OutboxMessage, ReplyBody, ReplyOutcome, WaitRecord};
use crate::telemetry;

/// Where a reply came from, for metrics and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplySource {
    /// The message broker's reply stream.
    Broker,
    /// The HTTP completion endpoint (a service's callback, or an operator).
    Http,
    /// The wait's deadline passed.
    Deadline,
}

impl ReplySource {
    fn as_str(self) -> &'static str {
        match self {
            ReplySource::Broker => "broker",
            ReplySource::Http => "http",
            ReplySource::Deadline => "deadline",
        }
    }
}

/// Waits one sweep times out at most.
const SWEEP_BATCH: u32 = 500;

impl Engine {
    /// Record `reply` for the wait `correlation_id` and resume its saga here. A wait
    /// takes one reply: a second one, one after the deadline was recorded, or one for no
    /// known wait is counted, logged and otherwise ignored.
    pub async fn deliver_reply(
        &self,
        correlation_id: &str,
        reply: ReplyBody,
        source: ReplySource,
    ) -> Result<ReplyOutcome> {
        let now = self.now_ms();
        let outcome = self
            .inner
            .store
            .record_reply(correlation_id, &reply, now)
            .await?;
        let label = match &outcome {
            ReplyOutcome::Recorded { .. } => "recorded",
            ReplyOutcome::Duplicate { .. } => "duplicate",
            ReplyOutcome::Late { .. } => "late",
            ReplyOutcome::Unknown => "unknown",
        };
        telemetry::metrics()
            .replies
            .with_label_values(&[source.as_str(), label])
            .inc();
        match &outcome {
            ReplyOutcome::Recorded { tx_id } => {
                tracing::info!(%tx_id, %correlation_id, kind = reply.kind(), source = source.as_str(), "reply recorded; resuming the saga");
                self.inner.events.publish(
                    Event::new(kinds::REPLY_RECEIVED)
                        .with("tx_id", tx_id.as_str())
                        .with("correlation_id", correlation_id)
                        .with("reply", reply.kind())
                        .with("source", source.as_str()),
                );
                if self.inner.plugins.loading().is_empty() {
                    self.spawn(tx_id.clone(), None);
                } else {
                    // The plugin that finishes the wait may still be compiling at start.
                    let (engine, tx_id) = (self.clone(), tx_id.clone());
                    tokio::spawn(async move {
                        engine.inner.plugins.wait_loaded().await;
                        engine.spawn(tx_id, None);
                    });
                }
            }
            ReplyOutcome::Duplicate { tx_id } | ReplyOutcome::Late { tx_id } => {
                tracing::warn!(%tx_id, %correlation_id, outcome = label, source = source.as_str(), "reply not applied: its wait already has its answer");
                self.inner.events.publish(
                    Event::new(kinds::REPLY_IGNORED)
                        .with("tx_id", tx_id.as_str())
                        .with("correlation_id", correlation_id)
                        .with("reason", label)
                        .with("source", source.as_str()),
                );
            }
            ReplyOutcome::Unknown => {
                tracing::warn!(%correlation_id, source = source.as_str(), "reply for no known wait; ignored");
                self.inner.events.publish(
                    Event::new(kinds::REPLY_IGNORED)
                        .with("correlation_id", correlation_id)
                        .with("reason", label)
                        .with("source", source.as_str()),
                );
            }
        }
        Ok(outcome)
    }

    /// Time out every open wait whose deadline passed (its `on-reply` gets `timed-out`).
    /// Returns how many were timed out here (another host may have taken some).
    pub async fn time_out_waits(&self) -> Result<usize> {
        let due = self
            .inner
            .store
            .waits_due(self.now_ms(), SWEEP_BATCH)
            .await?;
        let mut timed_out = 0;
        for correlation_id in due {
            let outcome = self
                .deliver_reply(&correlation_id, ReplyBody::TimedOut, ReplySource::Deadline)
                .await?;
            if matches!(outcome, ReplyOutcome::Recorded { .. }) {
                timed_out += 1;
            }
        }
        Ok(timed_out)
    }
}

impl SagaRun {
    /// Put the messages a call of step `i` published in the outbox of the next commit.
    /// Each gets an id made of the saga, step, call and position, the same if the call's
    /// commit is retried, so the broker and receivers can deduplicate on it.
    pub(super) fn stage_messages(
        &mut self,
        i: usize,
        phase: Phase,
        attempt: u32,
        messages: Vec<Published>,
    ) {
        if messages.is_empty() {
            return;
        }
        let step = &self.steps[i];
        // Which call of the attempt this is: execute (0), or its n-th on-reply.
        let round = step
            .attempt_log
            .iter()
            .filter(|a| {
                a.phase == phase && a.attempt == attempt && a.outcome == AttemptOutcome::Waiting
            })
            .count();
        let now = self.now();
        for (n, m) in messages.into_iter().enumerate() {
            let message_id = format!(
                "{}/{}/{}/{attempt}.{round}/{n}",
                self.tx.tx_id, step.step_index, phase
            );
            let mut headers = vec![
                ("Rte-Message-Id".to_string(), message_id.clone()),
                ("Rte-Tx-Id".to_string(), self.tx.tx_id.clone()),
                ("Rte-Step".to_string(), step.step_name.clone()),
            ];
            headers.extend(m.headers);
            self.outbox.push(OutboxMessage {
                message_id,
                tx_id: self.tx.tx_id.clone(),
                subject: m.subject,
                payload: m.payload,
                headers,
                created_at: now,
            });
        }
    }

    /// Step `i`'s `phase` call (attempt `attempt`) ended waiting: commit the step as
    /// `WAITING` with its wait, its plugin writes and messages, and end this pass. A wait
    /// the saga cannot take is returned as the call's failure instead.
    pub(super) async fn start_wait(
        &mut self,
        i: usize,
        phase: Phase,
        attempt: u32,
        done: Executed,
    ) -> Result<Option<CallFailure>> {
        let request = done.wait.expect("start_wait is given a call that waits");
        let correlation_id = request.correlation_id;
        let now = self.now();
        // The saga's deadline bounds an execute's wait; compensation has no deadline.
        let mut deadline =
            now.saturating_add(request.timeout.as_millis().min(i64::MAX as u128) as i64);
        if phase == Phase::Execute {
            deadline = deadline.min(self.tx.deadline_at);
        }
        let reused = match self.engine.inner.store.wait_get(&correlation_id).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                return Ok(Some(CallFailure::new(
                    FailureKind::StoreUnavailable,
                    format!("cannot check the wait's correlation id: {e}"),
                )));
            }
        };
        if reused && self.closing.as_deref() != Some(correlation_id.as_str()) {
            return Ok(Some(CallFailure::new(
                FailureKind::Permanent,
                format!(
                    "correlation id `{correlation_id}` was already used by another wait; each wait needs its own (for example `{{tx-id}}/{{step}}/{{attempt}}`)"
                ),
            )));
        }
        if reused {
            return Ok(Some(CallFailure::new(
                FailureKind::Permanent,
                format!(
                    "on-reply asked to wait again on `{correlation_id}`, the wait it is finishing; a new wait needs a new correlation id"
                ),
            )));
        }
        // Only a call that wrote plugin state can be refused: keep what to go back to.
        let before = done
            .kv
            .has_writes()
            .then(|| (self.tx.clone(), self.steps.clone()));
        self.stage_messages(i, phase, attempt, done.messages);
        self.log_attempt(
            i,
            phase,
            attempt,
            self.call_started,
            AttemptOutcome::Waiting,
            None,
        );
        let step = &mut self.steps[i];
        step.status = StepStatus::Waiting;
        if phase == Phase::Execute {
            step.idempotency_key = done.key;
        }
        let name = step.step_name.clone();
        let step_index = step.step_index;
        self.tx.outputs.extend(done.outputs);
        self.opening = Some(WaitRecord {
            correlation_id: correlation_id.clone(),
            tx_id: self.tx.tx_id.clone(),
            step_index,
            phase,
            attempt,
            created_at: now,
            deadline_at: deadline,
            replied_at: None,
            reply: None,
            closed_at: None,
        });
        let committed = self
            .commit(TxEvent::Progress, &[i], Some(&done.kv), None)
            .await;
        if let Err(crate::error::Error::Store(crate::store::StoreError::KvConflict { key, .. })) =
            &committed
            && let Some((tx, steps)) = before
        {
            // Nothing was written; the call runs again on fresh state.
            (self.tx, self.steps) = (tx, steps);
            self.opening = None;
            let phase_name = if phase == Phase::Compensate {
                "compensate"
            } else {
                "execute"
            };
            return Ok(Some(self.kv_conflict(i, phase_name, key)));
        }
        committed?;
        self.parked = true;
        telemetry::metrics()
            .waits_started
            .with_label_values(&[name.as_str()])
            .inc();
        tracing::info!(tx_id = %self.tx.tx_id, step = %name, %correlation_id, %phase, deadline_at = deadline, "step waits for a reply");
        self.events().publish(
            self.event(kinds::STEP_WAITING)
                .step(&name)
                .with("correlation_id", correlation_id)
                .with("phase", phase.as_str())
                .with("attempt", attempt)
                .with("deadline_at", crate::admin::rfc3339(deadline)),
        );
        Ok(None)
    }

    /// The open wait of step `i`, with its reply when one is recorded (recording the
    /// timeout when the deadline passed); `None` while the reply is still to come.
    async fn answered_wait(&mut self, i: usize) -> Result<Option<WaitAnswer>> {
        let store = self.engine.inner.store.clone();
        let tx_id = self.tx.tx_id.clone();
        let Some(mut wait) = store.wait_of_step(&tx_id, i as u32).await? else {
            return Ok(Some(WaitAnswer::Missing));
        };
        if wait.reply.is_none() && self.now() >= wait.deadline_at {
            self.engine
                .deliver_reply(
                    &wait.correlation_id,
                    ReplyBody::TimedOut,
                    ReplySource::Deadline,
                )
                .await?;
            match store.wait_of_step(&tx_id, i as u32).await? {
                Some(w) => wait = w,
                None => return Ok(Some(WaitAnswer::Missing)),
            }
        }
        Ok(wait
            .reply
            .clone()
            .map(|reply| WaitAnswer::Reply(Box::new((wait, reply)))))
    }

    /// Step `i` waits in execute: finish it with its reply, or end the pass while the reply
    /// is still to come.
    pub(super) async fn resume_wait(&mut self, i: usize) -> Result<()> {
        let (wait, reply) = match self.answered_wait(i).await? {
            None => {
                self.parked = true;
                return Ok(());
            }
            Some(WaitAnswer::Missing) => {
                // Nothing to finish: run the step again.
                let attempt = self.steps[i].attempts + 1;
                self.steps[i].status = StepStatus::Executing;
                let f = CallFailure::new(
                    FailureKind::Lost,
                    "the step was waiting for a reply, but its wait is not on record",
                );
                return self.retry_or_fail(i, attempt, f).await;
            }
            Some(WaitAnswer::Reply(found)) => *found,
        };
        let attempt = wait.attempt;
        self.closing = Some(wait.correlation_id.clone());
        self.call_started = self.now();
        let mut outcome = self.call_on_reply(i, &wait, &reply).await;
        // The request went out and nothing came back: whatever the step says, its effect
        // is unknown, so it counts as a timeout (retried, and compensated if the saga
        // fails).
        if let Err(f) = &mut outcome
            && reply == ReplyBody::TimedOut
            && matches!(f.kind, FailureKind::Retryable | FailureKind::Permanent)
        {
            f.kind = FailureKind::Timeout;
        }
        match outcome {
            Err(f) if f.kind == FailureKind::StoreUnavailable => {
                self.wait_for_store(&f).await;
                Ok(())
            }
            Ok(done) => {
                self.store_waits = 0;
                let failed = if done.wait.is_some() {
                    self.start_wait(i, Phase::Execute, attempt, done).await?
                } else {
                    let plugin = match self.plugin(i) {
                        Ok(p) => p,
                        Err(f) => return self.after_reply_failed(i, attempt, f).await,
                    };
                    self.complete_step(i, attempt, &plugin, done).await?
                };
                match failed {
                    Some(f) => self.after_reply_failed(i, attempt, f).await,
                    None => Ok(()),
                }
            }
            Err(f) => self.after_reply_failed(i, attempt, f).await,
        }
    }

    /// Execute's wait ended in a failure: the step runs again (a new request, a new wait)
    /// while retries and the deadline allow, else the saga fails. The wait closes with
    /// the failure's commit.
    async fn after_reply_failed(&mut self, i: usize, attempt: u32, f: CallFailure) -> Result<()> {
        self.steps[i].status = StepStatus::Executing;
        if self.now() >= self.tx.deadline_at {
            return self
                .fail(i, f, crate::engine::TxStatus::Timeout, Some(attempt))
                .await;
        }
        self.retry_or_fail(i, attempt, f).await
    }

    /// Step `j` waits while the saga compensates. If its compensation waits, finish that
    /// with its reply (or end the pass until it comes) and return `true`; if it is
    /// execute's wait, close it with the compensation that follows and return `false`.
    pub(super) async fn resume_undo_wait(&mut self, j: usize) -> Result<bool> {
        let store = self.engine.inner.store.clone();
        let open = store.wait_of_step(&self.tx.tx_id, j as u32).await?;
        match open {
            Some(w) if w.phase == Phase::Compensate => {}
            Some(w) => {
                // Execute's request went out; its answer no longer matters.
                self.closing = Some(w.correlation_id);
                return Ok(false);
            }
            None => return Ok(false),
        }
        let (wait, reply) = match self.answered_wait(j).await? {
            None => {
                self.parked = true;
                return Ok(true);
            }
            Some(WaitAnswer::Missing) => return Ok(false),
            Some(WaitAnswer::Reply(found)) => *found,
        };
        let attempt = wait.attempt;
        self.closing = Some(wait.correlation_id.clone());
        self.call_started = self.now();
        match self.call_on_reply(j, &wait, &reply).await {
            Err(f) if f.kind == FailureKind::StoreUnavailable => self.wait_for_store(&f).await,
            Ok(done) if done.wait.is_some() => {
                if let Some(f) = self.start_wait(j, Phase::Compensate, attempt, done).await? {
                    self.steps[j].status = StepStatus::Compensating;
                    self.compensation_failed_attempt(j, f).await?;
                }
            }
            Ok(done) => {
                let plugin = match self.plugin(j) {
                    Ok(p) => p,
                    Err(f) => {
                        self.steps[j].status = StepStatus::Compensating;
                        self.compensation_failed_attempt(j, f).await?;
                        return Ok(true);
                    }
                };
                let execute_completed = self.steps[j].output.is_some();
                self.undone(
                    j,
                    attempt,
                    &plugin,
                    done.kv,
                    done.messages,
                    execute_completed,
                )
                .await?;
            }
            Err(f) => {
                self.steps[j].status = StepStatus::Compensating;
                self.compensation_failed_attempt(j, f).await?;
            }
        }
        Ok(true)
    }

    /// Call step `i`'s `on-reply` for `wait` with `reply`, in a fresh instance, within the
    /// saga's deadline for execute.
    async fn call_on_reply(
        &mut self,
        i: usize,
        wait: &WaitRecord,
        reply: &ReplyBody,
    ) -> std::result::Result<Executed, CallFailure> {
        let plugin = self.plugin(i)?;
        let name = self.steps[i].step_name.clone();
        let span = telemetry::step_span(
            &self.tx.tx_id,
            &self.tx.tx_type,
            &name,
            wait.attempt,
            "on_reply",
        );
        let execute_completed =
            (wait.phase == Phase::Compensate).then(|| self.steps[i].output.is_some());
        let call = span.in_scope(|| self.call_for(i, wait.attempt, execute_completed));
        self.steps[i].plugin_digest = Some(plugin.digest.clone());
        let inner = self.engine.inner.clone();
        let run = inner
            .plugins
            .on_reply(
                &plugin,
                &call,
                inner.store.clone(),
                (wait.phase, wait.correlation_id.as_str(), reply),
            )
            .instrument(span.clone());
        let out = if wait.phase == Phase::Execute {
            tokio::select! {
                out = run => out,
                _ = tokio::time::sleep_until(self.deadline()) => Err(CallFailure::new(FailureKind::Timeout, "saga passed its deadline while the step's on-reply ran")),
            }
        } else {
            run.await
        };
        span.record(
            "outcome",
            match &out {
                Ok(_) => "completed",
                Err(f) => f.kind.as_str(),
            },
        );
        let out = out?;
        Ok(Executed {
            outputs: if wait.phase == Phase::Execute {
                out.value
            } else {
                Map::new()
            },
            kv: out.kv,
            key: self.steps[i].idempotency_key.clone(),
            replayed: false,
            messages: out.messages,
            wait: out.wait,
        })
    }
}

/// What a waiting step's record holds.
enum WaitAnswer {
    /// The step is waiting, but no open wait is on record.
    Missing,
    /// The reply came (or the deadline passed).
    Reply(Box<(WaitRecord, ReplyBody)>),
}
