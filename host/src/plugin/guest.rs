//! A plugin's exports, whichever `rte:saga` version it was built against: pre-linking picks
//! the version from what the component exports, and each call is translated to and from
//! that version's types here, so the rest of the host sees one shape.

use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use super::StepDescriptor;
use super::bindings::{v1, v2};
use super::call::{CallFailure, FailureKind, StepCall};
use super::messaging::WaitRequest;
use super::state::CallState;
use crate::lifecycle::Phase;
use crate::store::ReplyBody;

/// The `rte:saga` version a plugin targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum WitVersion {
    /// `rte:saga@0.1.0`: execute and compensate only.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `rte:saga@0.2.0`: adds confirm, replies and messaging.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl WitVersion {
    /// The package version, as written after `rte:saga@`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
        }
    }
}

/// A component pre-linked against the version it exports.
pub(super) enum GuestPre {
    V1(v1::PluginPre<CallState>),
    V2(v2::PluginPre<CallState>),
}

/// A live instance of a plugin.
pub(super) enum Guest {
    V1(v1::Plugin),
    V2(v2::Plugin),
}

/// What a call returned, before the engine reads it; a step error is already a failure.
pub(super) type Returned<T> = wasmtime::Result<Result<T, CallFailure>>;

impl GuestPre {
    /// Pre-link `component` against the newest version it exports.
    pub(super) fn new(
        linker: &Linker<CallState>,
        component: &wasmtime::component::Component,
    ) -> Result<Self, String> {
        let pre: InstancePre<CallState> = linker
            .instantiate_pre(component)
            .map_err(|e| format!("imports what RTE does not provide: {e:#}"))?;
        match v2::PluginPre::new(pre.clone()) {
            Ok(p) => Ok(GuestPre::V2(p)),
            Err(v2_err) => v1::PluginPre::new(pre).map(GuestPre::V1).map_err(|v1_err| {
                format!(
                    "does not export rte:saga/step@0.2.0 ({v2_err:#}) nor rte:saga/step@0.1.0 ({v1_err:#})"
                )
            }),
        }
    }

    /// The version it speaks.
    pub(super) fn version(&self) -> WitVersion {
        match self {
            GuestPre::V1(_) => WitVersion::V0_1,
            GuestPre::V2(_) => WitVersion::V0_2,
        }
    }

    pub(super) async fn instantiate(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Guest> {
        Ok(match self {
            GuestPre::V1(p) => Guest::V1(p.instantiate_async(store).await?),
            GuestPre::V2(p) => Guest::V2(p.instantiate_async(store).await?),
        })
    }
}

impl Guest {
    pub(super) async fn steps(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Vec<StepDescriptor>> {
        Ok(match self {
            Guest::V1(g) => g
                .rte_saga_step()
                .call_steps(store)
                .await?
                .into_iter()
                .map(|i| {
                    descriptor(
                        i.name,
                        i.version,
                        i.service,
                        [i.supports_compensation, i.supports_idempotency, false],
                        i.description,
                        None,
                    )
                })
                .collect(),
            Guest::V2(g) => g
                .rte_saga_step()
                .call_steps(store)
                .await?
                .into_iter()
                .map(|i| {
                    descriptor(
                        i.name,
                        i.version,
                        i.service,
                        [
                            i.supports_compensation,
                            i.supports_idempotency,
                            i.supports_confirm,
                        ],
                        i.description,
                        i.policy.map(|p| crate::policy::StepPolicy {
                            max_retries: p.max_retries,
                            retry_interval: p.retry_interval_ms.map(Duration::from_millis),
                            retry_max_interval: p.retry_max_interval_ms.map(Duration::from_millis),
                            timeout: p.timeout_ms.map(Duration::from_millis),
                            idempotent: p.idempotent,
                        }),
                    )
                })
                .collect(),
        })
    }

    /// Execute; `Ok` is the outputs text.
    pub(super) async fn execute(
        &self,
        store: &mut Store<CallState>,
        step: &str,
        call: &StepCall,
    ) -> Returned<String> {
        Ok(match self {
            Guest::V1(g) => g
                .rte_saga_step()
                .call_execute(store, step, &v1_context(call))
                .await?
                .map_err(v1_error),
            Guest::V2(g) => {
                use v2::rte::saga::types::ExecuteResult;
                let ctx = v2_context(call, v2::rte::saga::types::Phase::Execute);
                match g
                    .rte_saga_step()
                    .call_execute(&mut *store, step, &ctx)
                    .await?
                {
                    Ok(ExecuteResult::Done(text)) => Ok(text),
                    Ok(ExecuteResult::Wait(w)) => Ok(ends_waiting(store, w)),
                    Err(e) => Err(v2_error(e)),
                }
            }
        })
    }

    pub(super) async fn compensate(
        &self,
        store: &mut Store<CallState>,
        step: &str,
        call: &StepCall,
    ) -> Returned<()> {
        Ok(match self {
            Guest::V1(g) => g
                .rte_saga_step()
                .call_compensate(store, step, &v1_context(call))
                .await?
                .map_err(v1_error),
            Guest::V2(g) => {
                use v2::rte::saga::types::CompensateResult;
                let ctx = v2_context(call, v2::rte::saga::types::Phase::Compensate);
                match g
                    .rte_saga_step()
                    .call_compensate(&mut *store, step, &ctx)
                    .await?
                {
                    Ok(CompensateResult::Done) => Ok(()),
                    Ok(CompensateResult::Wait(w)) => {
                        ends_waiting(store, w);
                        Ok(())
                    }
                    Err(e) => Err(v2_error(e)),
                }
            }
        })
    }

    /// On-reply: finish a call of `phase` that ended waiting, with what came back. `Ok` is
    /// the outputs text (ignored for a compensation); the call may end waiting again.
    pub(super) async fn on_reply(
        &self,
        store: &mut Store<CallState>,
        step: &str,
        call: &StepCall,
        phase: Phase,
        correlation_id: &str,
        reply: &ReplyBody,
    ) -> Returned<String> {
        Ok(match self {
            Guest::V1(_) => Err(CallFailure::new(
                FailureKind::Permanent,
                "plugins built against rte:saga@0.1.0 cannot wait for replies",
            )),
            Guest::V2(g) => {
                use v2::rte::saga::types::{
                    ExecuteResult, Message, Phase as P, Reply, ReplyBody as B,
                };
                let wit_phase = match phase {
                    Phase::Compensate => P::Compensate,
                    Phase::Confirm => P::Confirm,
                    Phase::Execute => P::Execute,
                };
                let ctx = v2_context(call, wit_phase);
                let body = match reply {
                    ReplyBody::Message { payload, headers } => B::Message(Message {
                        subject: String::new(),
                        payload: payload.clone(),
                        headers: headers.clone(),
                    }),
                    ReplyBody::Error { message } => B::Error(message.clone()),
                    ReplyBody::TimedOut => B::TimedOut,
                };
                let reply = Reply {
                    correlation_id: correlation_id.to_string(),
                    body,
                };
                match g
                    .rte_saga_step()
                    .call_on_reply(&mut *store, step, &ctx, &reply)
                    .await?
                {
                    Ok(ExecuteResult::Done(text)) => Ok(text),
                    Ok(ExecuteResult::Wait(w)) => Ok(ends_waiting(store, w)),
                    Err(e) => Err(v2_error(e)),
                }
            }
        })
    }

    /// Confirm; a 0.1.0 plugin has none (the host never asks: its steps declare none).
    pub(super) async fn confirm(
        &self,
        store: &mut Store<CallState>,
        step: &str,
        call: &StepCall,
    ) -> Returned<()> {
        Ok(match self {
            Guest::V1(_) => Err(CallFailure::new(
                FailureKind::Permanent,
                "plugins built against rte:saga@0.1.0 have no confirm",
            )),
            Guest::V2(g) => {
                let ctx = v2_context(call, v2::rte::saga::types::Phase::Confirm);
                g.rte_saga_step()
                    .call_confirm(store, step, &ctx)
                    .await?
                    .map_err(v2_error)
            }
        })
    }

    pub(super) async fn idempotency_key(
        &self,
        store: &mut Store<CallState>,
        step: &str,
        call: &StepCall,
    ) -> wasmtime::Result<Option<String>> {
        match self {
            Guest::V1(g) => {
                g.rte_saga_step()
                    .call_idempotency_key(store, step, &v1_context(call))
                    .await
            }
            Guest::V2(g) => {
                let ctx = v2_context(call, v2::rte::saga::types::Phase::Execute);
                g.rte_saga_step()
                    .call_idempotency_key(store, step, &ctx)
                    .await
            }
        }
    }
}

fn descriptor(
    name: String,
    version: String,
    service: String,
    [compensation, idempotency, confirm]: [bool; 3],
    description: String,
    policy: Option<crate::policy::StepPolicy>,
) -> StepDescriptor {
    StepDescriptor {
        service: if service.is_empty() {
            name.clone()
        } else {
            service
        },
        name,
        version,
        supports_compensation: compensation,
        supports_idempotency: idempotency,
        supports_confirm: confirm,
        description,
        policy: policy.filter(|p| !p.is_empty()),
    }
}

/// Note the wait a call ended with; the outputs it records meanwhile.
fn ends_waiting(store: &mut Store<CallState>, w: v2::rte::saga::types::WaitForReply) -> String {
    store.data_mut().wait = Some(WaitRequest {
        correlation_id: w.correlation_id,
        timeout: std::time::Duration::from_millis(w.timeout_ms),
    });
    w.outputs
}

fn v1_context(call: &StepCall) -> v1::exports::rte::saga::step::StepContext {
    use v1::rte::saga::types::ExecuteOutcome as O;
    v1::exports::rte::saga::step::StepContext {
        tx_id: call.tx_id.clone(),
        tx_type: call.tx_type.clone(),
        step_name: call.step_name.clone(),
        step_index: call.step_index,
        attempt: call.attempt,
        input: call.input.clone(),
        outputs: call.outputs.clone(),
        execute_outcome: match call.execute_completed {
            None => O::NotApplicable,
            Some(true) => O::Completed,
            Some(false) => O::Unknown,
        },
    }
}

fn v2_context(
    call: &StepCall,
    phase: v2::rte::saga::types::Phase,
) -> v2::exports::rte::saga::step::StepContext {
    use v2::rte::saga::types::ExecuteOutcome as O;
    v2::exports::rte::saga::step::StepContext {
        tx_id: call.tx_id.clone(),
        tx_type: call.tx_type.clone(),
        step_name: call.step_name.clone(),
        step_index: call.step_index,
        phase,
        attempt: call.attempt,
        input: call.input.clone(),
        outputs: call.outputs.clone(),
        execute_outcome: match call.execute_completed {
            None => O::NotApplicable,
            Some(true) => O::Completed,
            Some(false) => O::Unknown,
        },
    }
}

fn v1_error(e: v1::exports::rte::saga::step::StepError) -> CallFailure {
    use v1::exports::rte::saga::step::StepError as E;
    match e {
        E::Retryable(m) => CallFailure::new(FailureKind::Retryable, m),
        E::Permanent(m) => CallFailure::new(FailureKind::Permanent, m),
    }
}

fn v2_error(e: v2::exports::rte::saga::step::StepError) -> CallFailure {
    use v2::exports::rte::saga::step::StepError as E;
    match e {
        E::Retryable(m) => CallFailure::new(FailureKind::Retryable, m),
        E::Permanent(m) => CallFailure::new(FailureKind::Permanent, m),
    }
}
