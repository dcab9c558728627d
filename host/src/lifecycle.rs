//! The saga state machine: statuses, failure kinds, history kinds and the one transition
//! table every writer checks. A leaf module: it knows nothing of the engine, the store or
//! the API, so the rules can be read (and tested) in one place.
//!
//! ```text
//! CREATED ──locks held──▶ LOCKED ──step completed──▶ EXECUTING ──all executed──▶ COMPLETED
//!    │                      │                            │   └──all executed, confirms──▶ CONFIRMING ──▶ COMPLETED
//!    │                      └───────── step failed ──────┤
//!    │                                                    ├─ nothing to undo ─▶ FAILED | TIMEOUT
//!    └── deadline (waiting for locks) ─▶ TIMEOUT          └─ something to undo ─▶ COMPENSATING
//! COMPENSATING ──▶ COMPENSATED | CANCELLED (an operator's cancel) | COMPENSATION_FAILED
//! ```
//!
//! Operator actions and recovery are events of the same table: see [`TxEvent`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident, $case:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = $case)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownName { kind: stringify!($name), name: other.to_string() }),
                }
            }
        }
    };
}

/// A stored name that is not one of a type's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`")]
pub struct UnknownName {
    /// The type.
    pub kind: &'static str,
    /// The name found.
    pub name: String,
}

named_enum! {
    /// Where a saga is in its life.
    TxStatus, "SCREAMING_SNAKE_CASE" {
        /// Recorded, not yet holding its locks.
        Created = "CREATED",
        /// Holds its locks; its first step is being called.
        Locked = "LOCKED",
        /// Running its steps forward (at least one completed).
        Executing = "EXECUTING",
        /// Every step executed; their confirms are being called.
        Confirming = "CONFIRMING",
        /// Every step executed (and confirmed).
        Completed = "COMPLETED",
        /// A step failed and nothing had taken effect: nothing to undo.
        Failed = "FAILED",
        /// Undoing steps in reverse order.
        Compensating = "COMPENSATING",
        /// Every step that may have taken effect was undone.
        Compensated = "COMPENSATED",
        /// A compensation failed after its retries: needs an operator.
        CompensationFailed = "COMPENSATION_FAILED",
        /// Passed its deadline with nothing to undo.
        Timeout = "TIMEOUT",
        /// Cancelled by an operator (after undoing what had taken effect).
        Cancelled = "CANCELLED",
    }
}

named_enum! {
    /// Where one step of a saga is.
    StepStatus, "SCREAMING_SNAKE_CASE" {
        /// Not started.
        Pending = "PENDING",
        /// Execute was called (and may be running, or its host died).
        Executing = "EXECUTING",
        /// Execute (or compensate) was called and ended waiting for a reply; the wait's
        /// record says which call and until when.
        Waiting = "WAITING",
        /// Execute succeeded.
        Completed = "COMPLETED",
        /// Execute succeeded and the step's confirm made its effect final (TCC).
        Confirmed = "CONFIRMED",
        /// Execute failed.
        Failed = "FAILED",
        /// Compensate was called.
        Compensating = "COMPENSATING",
        /// Compensate succeeded.
        Compensated = "COMPENSATED",
        /// Compensate failed after its retries.
        CompensationFailed = "COMPENSATION_FAILED",
        /// Never run because the saga ended first, or run by a step that has nothing to
        /// undo when the saga was compensated (its attempt history says which).
        Skipped = "SKIPPED",
    }
}

named_enum! {
    /// Why a step call failed. Decides retry, compensation and what operators see; stored
    /// in its own column, never read back from a message.
    FailureKind, "snake_case" {
        /// The step said: try again later.
        Retryable = "retryable",
        /// The step said: this will never work.
        Permanent = "permanent",
        /// The guest trapped (panic, stack overflow, bad output): its effect, if it had one
        /// outside the host, is unknown.
        Trap = "trap",
        /// The guest ran out of its memory cap: as a trap, its effect is unknown.
        Memory = "memory",
        /// The call ran past its deadline and was stopped: its effect is unknown.
        Timeout = "timeout",
        /// The step's circuit breaker is open: the call was not made.
        BreakerOpen = "breaker_open",
        /// A plugin key the call read changed before its commit: its writes were
        /// discarded and the step runs again on fresh state.
        KvConflict = "kv_conflict",
        /// The plugin could not be called (not loaded, or the store refused for good).
        Unavailable = "unavailable",
        /// The host's store could not be reached during the call: nothing it produced
        /// counts, the attempt is not counted, and the step runs again once the store
        /// answers.
        StoreUnavailable = "store_unavailable",
        /// The call's outcome was lost: its host stopped while it ran, or an operator
        /// closed the saga around it. Its effect is unknown.
        Lost = "lost",
        /// The call went over one of its resource limits (kv data written, a saga's
        /// total outputs): nothing it wrote counts, and another try would do the same.
        ResourceLimit = "resource_limit",
        /// A branch of a parallel group set an output another branch of the group had
        /// set: its result is refused (never a silent last-writer-wins). It ran, so its
        /// effect may exist and compensation considers it.
        OutputConflict = "output_conflict",
    }
}

impl FailureKind {
    /// Whether trying again may succeed.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            FailureKind::Permanent | FailureKind::ResourceLimit | FailureKind::OutputConflict
        )
    }

    /// Whether the call may have acted before it failed, so compensation must consider
    /// it.
    pub fn may_have_acted(self) -> bool {
        matches!(
            self,
            FailureKind::Trap
                | FailureKind::Memory
                | FailureKind::Timeout
                | FailureKind::Lost
                | FailureKind::OutputConflict
        )
    }

    /// Whether the attempt counts against the step's retries.
    pub fn counts_as_attempt(self) -> bool {
        !matches!(self, FailureKind::StoreUnavailable)
    }
}

named_enum! {
    /// Which call of a step an attempt made.
    Phase, "snake_case" {
        /// `execute` (after `idempotency-key`, for steps that give one).
        Execute = "execute",
        /// `compensate`.
        Compensate = "compensate",
        /// `confirm`.
        Confirm = "confirm",
    }
}

named_enum! {
    /// How one attempt ended.
    AttemptOutcome, "snake_case" {
        /// The call succeeded and its result was committed.
        Completed = "completed",
        /// A completed idempotency key's stored output was reused; execute did not run.
        Replayed = "replayed",
        /// The call failed (see its failure kind).
        Failed = "failed",
        /// The step declares no compensation: nothing to undo.
        NothingToUndo = "nothing_to_undo",
        /// The call ended waiting for a reply; `on-reply` finishes it (a later entry of the
        /// same attempt).
        Waiting = "waiting",
    }
}

named_enum! {
    /// What a line of a saga's durable history records, besides step attempts.
    HistoryKind, "snake_case" {
        /// An operator completed the saga by hand.
        ForceComplete = "force_complete",
        /// An operator cancelled the saga.
        ForceCancel = "force_cancel",
        /// The saga was run again (by an operator, or by recovery).
        Retry = "retry",
        /// Recovery took over a saga whose host stopped advancing it.
        Recovery = "recovery",
        /// Recovery stopped trying a saga that kept getting stuck.
        RecoveryGivenUp = "recovery_given_up",
    }
}

/// Who changed a saga: the host that drives it, an operator, or a host's recovery worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// An operator, through the API or the library.
    Operator {
        /// Why, as they gave it.
        reason: String,
    },
    /// The recovery worker of a host.
    Recovery {
        /// The host.
        host: String,
    },
    /// The host driving the saga.
    Host {
        /// The host.
        host: String,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator { reason } => write!(f, "operator ({reason})"),
            Actor::Recovery { host } => write!(f, "recovery on host {host}"),
            Actor::Host { host } => write!(f, "host {host}"),
        }
    }
}

named_enum! {
    /// What a compensation is for: how the saga ends once everything is undone.
    Undo, "snake_case" {
        /// A step failed, or the saga passed its deadline: `COMPENSATED`.
        Failure = "failure",
        /// An operator cancelled the saga: `CANCELLED`.
        Cancel = "cancel",
    }
}

/// What happens to a saga. Each is allowed from some statuses only (see
/// [`TxStatus::on`]); `undo` says whether anything may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxEvent {
    /// The saga's locks are held and its first step is called.
    LocksHeld,
    /// A step completed and more remain.
    StepCompleted,
    /// Every step executed; `confirm`: some step has a confirm to call.
    AllExecuted {
        /// Whether confirms follow.
        confirm: bool,
    },
    /// Every confirm succeeded.
    Confirmed,
    /// A step failed for good.
    StepFailed {
        /// Whether anything may need undoing.
        undo: bool,
    },
    /// The saga passed its deadline.
    DeadlinePassed {
        /// Whether anything may need undoing.
        undo: bool,
    },
    /// Every step that may have taken effect was undone.
    Undone {
        /// What the compensation was for.
        cause: Undo,
    },
    /// A compensation failed after its retries.
    CompensationGaveUp,
    /// A change that keeps the status: an attempt failed and will be retried, the saga
    /// showed it is alive while waiting for locks, or recovery took it over.
    Progress,
    /// An operator completed the saga by hand.
    ForceComplete,
    /// An operator cancelled the saga.
    ForceCancel {
        /// Whether anything may need undoing.
        undo: bool,
    },
    /// A failed or timed-out saga runs again from its failed step.
    Retry,
    /// A saga whose compensation gave up compensates again.
    RetryCompensation,
}

impl TxEvent {
    /// Every event the table knows, with each value of its flags.
    pub fn all() -> Vec<TxEvent> {
        use TxEvent as E;
        let mut out = vec![
            E::LocksHeld,
            E::StepCompleted,
            E::Confirmed,
            E::CompensationGaveUp,
            E::Progress,
            E::ForceComplete,
            E::Retry,
            E::RetryCompensation,
        ];
        out.extend([Undo::Failure, Undo::Cancel].map(|cause| E::Undone { cause }));
        for b in [false, true] {
            out.push(E::AllExecuted { confirm: b });
            out.push(E::StepFailed { undo: b });
            out.push(E::DeadlinePassed { undo: b });
            out.push(E::ForceCancel { undo: b });
        }
        out
    }
}

/// A move the table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a saga in status {from} cannot take {event:?}")]
pub struct Refused {
    /// The saga's status.
    pub from: TxStatus,
    /// What was asked.
    pub event: TxEvent,
}

impl TxStatus {
    /// A saga in this status will not move again by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TxStatus::Completed
                | TxStatus::Compensated
                | TxStatus::CompensationFailed
                | TxStatus::Cancelled
                | TxStatus::Failed
                | TxStatus::Timeout
        )
    }

    /// The transition table: the status `event` moves a saga in `self` to, or why not.
    pub fn on(self, event: TxEvent) -> Result<TxStatus, Refused> {
        use TxEvent as E;
        use TxStatus::*;
        let next = match (self, event) {
            (Created, E::LocksHeld) => Some(Locked),
            (Locked | Executing, E::StepCompleted) => Some(Executing),
            (Locked | Executing, E::AllExecuted { confirm: false }) => Some(Completed),
            (Locked | Executing, E::AllExecuted { confirm: true }) => Some(Confirming),
            (Confirming, E::Confirmed) => Some(Completed),
            (Locked | Executing, E::StepFailed { undo: false }) => Some(Failed),
            (Locked | Executing, E::StepFailed { undo: true }) => Some(Compensating),
            (Created | Locked | Executing, E::DeadlinePassed { undo: false }) => Some(Timeout),
            (Locked | Executing, E::DeadlinePassed { undo: true }) => Some(Compensating),
            (
                Compensating,
                E::Undone {
                    cause: Undo::Failure,
                },
            ) => Some(Compensated),
            (
                Compensating,
                E::Undone {
                    cause: Undo::Cancel,
                },
            ) => Some(Cancelled),
            (Compensating, E::CompensationGaveUp) => Some(CompensationFailed),
            (s, E::Progress) if !s.is_terminal() => Some(s),
            // An operator settles a saga by hand: one that failed or timed out, whose
            // compensation gave up, or one no host is advancing (the engine checks that
            // no call is running).
            (
                Created | Locked | Executing | Confirming | Failed | Timeout | CompensationFailed,
                E::ForceComplete,
            ) => Some(Completed),
            // Confirms are never followed by compensation, so a confirming saga cannot be
            // cancelled.
            (
                Created | Locked | Executing | Failed | Timeout | CompensationFailed,
                E::ForceCancel { undo: false },
            ) => Some(Cancelled),
            (
                Created | Locked | Executing | Failed | Timeout | CompensationFailed,
                E::ForceCancel { undo: true },
            ) => Some(Compensating),
            // Run again from the start of the lifecycle: the locks are taken again.
            (Failed | Timeout, E::Retry) => Some(Created),
            (CompensationFailed, E::RetryCompensation) => Some(Compensating),
            _ => None,
        };
        next.ok_or(Refused { from: self, event })
    }
}

impl StepStatus {
    /// Whether this step's execute may have had an effect that compensation must undo.
    pub fn needs_compensation(self) -> bool {
        matches!(
            self,
            StepStatus::Completed
                | StepStatus::Executing
                | StepStatus::Waiting
                | StepStatus::Compensating
                | StepStatus::CompensationFailed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in TxStatus::ALL {
            assert_eq!(s.as_str().parse::<TxStatus>().unwrap(), *s);
            assert_eq!(
                serde_json::to_string(s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>().unwrap(), *s);
        }
        for k in FailureKind::ALL {
            assert_eq!(k.as_str().parse::<FailureKind>().unwrap(), *k);
            assert_eq!(
                serde_json::to_string(k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for k in HistoryKind::ALL {
            assert_eq!(k.as_str().parse::<HistoryKind>().unwrap(), *k);
        }
        assert!("DONE".parse::<TxStatus>().is_err());
    }

    /// The table written out pair by pair: every (status, event) not listed is refused.
    #[test]
    fn every_status_event_pair_follows_the_table() {
        use TxEvent as E;
        use TxStatus::*;
        let live = [Created, Locked, Executing, Confirming, Compensating];
        let mut allowed: Vec<(TxStatus, TxEvent, TxStatus)> = vec![
            (Created, E::LocksHeld, Locked),
            (Locked, E::StepCompleted, Executing),
            (Executing, E::StepCompleted, Executing),
            (Locked, E::AllExecuted { confirm: false }, Completed),
            (Executing, E::AllExecuted { confirm: false }, Completed),
            (Locked, E::AllExecuted { confirm: true }, Confirming),
            (Executing, E::AllExecuted { confirm: true }, Confirming),
            (Confirming, E::Confirmed, Completed),
            (Locked, E::StepFailed { undo: false }, Failed),
            (Executing, E::StepFailed { undo: false }, Failed),
            (Locked, E::StepFailed { undo: true }, Compensating),
            (Executing, E::StepFailed { undo: true }, Compensating),
            (Created, E::DeadlinePassed { undo: false }, Timeout),
            (Locked, E::DeadlinePassed { undo: false }, Timeout),
            (Executing, E::DeadlinePassed { undo: false }, Timeout),
            (Locked, E::DeadlinePassed { undo: true }, Compensating),
            (Executing, E::DeadlinePassed { undo: true }, Compensating),
            (
                Compensating,
                E::Undone {
                    cause: Undo::Failure,
                },
                Compensated,
            ),
            (
                Compensating,
                E::Undone {
                    cause: Undo::Cancel,
                },
                Cancelled,
            ),
            (Compensating, E::CompensationGaveUp, CompensationFailed),
            (Failed, E::Retry, Created),
            (Timeout, E::Retry, Created),
            (CompensationFailed, E::RetryCompensation, Compensating),
        ];
        for s in live {
            allowed.push((s, E::Progress, s));
        }
        for s in [
            Created,
            Locked,
            Executing,
            Confirming,
            Failed,
            Timeout,
            CompensationFailed,
        ] {
            allowed.push((s, E::ForceComplete, Completed));
        }
        for s in [
            Created,
            Locked,
            Executing,
            Failed,
            Timeout,
            CompensationFailed,
        ] {
            allowed.push((s, E::ForceCancel { undo: false }, Cancelled));
            allowed.push((s, E::ForceCancel { undo: true }, Compensating));
        }
        let mut checked = 0;
        for &from in TxStatus::ALL {
            for event in TxEvent::all() {
                let expected = allowed
                    .iter()
                    .find(|(s, e, _)| *s == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (from.on(event), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from} on {event:?}"),
                    (Err(r), None) => assert_eq!(r, Refused { from, event }),
                    (got, want) => panic!("{from} on {event:?}: got {got:?}, table says {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, TxStatus::ALL.len() * TxEvent::all().len());
    }

    #[test]
    fn finished_sagas_stay_finished_except_by_operator() {
        for &from in TxStatus::ALL.iter().filter(|s| s.is_terminal()) {
            for event in TxEvent::all() {
                let operator = matches!(
                    event,
                    TxEvent::ForceComplete
                        | TxEvent::ForceCancel { .. }
                        | TxEvent::Retry
                        | TxEvent::RetryCompensation
                );
                if !operator {
                    assert!(from.on(event).is_err(), "{from} moved on {event:?}");
                }
            }
        }
        for event in TxEvent::all() {
            for end in [
                TxStatus::Completed,
                TxStatus::Compensated,
                TxStatus::Cancelled,
            ] {
                assert!(end.on(event).is_err(), "{end} moved on {event:?}");
            }
        }
    }

    #[test]
    fn failure_kinds_decide_retry_and_undo() {
        assert!(!FailureKind::Permanent.is_retryable());
        assert!(FailureKind::KvConflict.is_retryable());
        for k in FailureKind::ALL {
            assert_eq!(
                k.may_have_acted(),
                matches!(
                    k,
                    FailureKind::Trap
                        | FailureKind::Memory
                        | FailureKind::Timeout
                        | FailureKind::Lost
                        | FailureKind::OutputConflict
                ),
                "{k}"
            );
        }
        assert!(!FailureKind::OutputConflict.is_retryable());
        assert!(!FailureKind::StoreUnavailable.counts_as_attempt());
    }
}
