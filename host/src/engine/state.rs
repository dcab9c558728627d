//! Transaction and step statuses, exactly as the seed names them, and which moves are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }
    };
}

status_enum! {
    /// Where a saga is in its life.
    TxStatus {
        /// Recorded, not yet started.
        Created = "CREATED",
        /// Holds its locks.
        Locked = "LOCKED",
        /// Running its steps forward.
        Executing = "EXECUTING",
        /// Every step completed; being confirmed.
        Confirming = "CONFIRMING",
        /// Every step completed.
        Completed = "COMPLETED",
        /// A step failed; compensation follows if anything completed.
        Failed = "FAILED",
        /// Undoing completed steps in reverse order.
        Compensating = "COMPENSATING",
        /// Every completed step was undone.
        Compensated = "COMPENSATED",
        /// A compensation failed after its retries: needs an operator.
        CompensationFailed = "COMPENSATION_FAILED",
        /// Passed its deadline; compensation follows.
        Timeout = "TIMEOUT",
        /// Cancelled by an operator after compensation.
        Cancelled = "CANCELLED",
    }
}

status_enum! {
    /// Where one step of a saga is.
    StepStatus {
        /// Not started.
        Pending = "PENDING",
        /// Execute was called (and may be running, or its host died).
        Executing = "EXECUTING",
        /// Execute succeeded.
        Completed = "COMPLETED",
        /// Execute failed.
        Failed = "FAILED",
        /// Compensate was called.
        Compensating = "COMPENSATING",
        /// Compensate succeeded.
        Compensated = "COMPENSATED",
        /// Compensate failed after its retries.
        CompensationFailed = "COMPENSATION_FAILED",
        /// Never run because the saga ended first.
        Skipped = "SKIPPED",
    }
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

    /// Whether the state machine allows moving from `self` to `next`.
    pub fn can_move_to(self, next: TxStatus) -> bool {
        use TxStatus::*;
        match (self, next) {
            (a, b) if a == b => true,
            (Created, Locked | Executing | Failed | Timeout | Cancelled | Compensating) => true,
            (Locked, Executing | Failed | Timeout | Cancelled | Compensating) => true,
            (Executing, Confirming | Completed | Failed | Timeout | Compensating) => true,
            (Confirming, Completed | Failed | Timeout | Compensating) => true,
            // A failed saga compensates, is retried, or is closed by an operator.
            (Failed, Compensating | Compensated | Executing | Completed | Cancelled) => true,
            (Timeout, Compensating | Compensated | Cancelled | Completed) => true,
            (Compensating, Compensated | CompensationFailed | Cancelled | Timeout) => true,
            // An operator may retry compensation or close the saga by hand.
            (CompensationFailed, Compensating | Compensated | Cancelled | Completed) => true,
            _ => false,
        }
    }
}

impl StepStatus {
    /// Whether this step's execute may have had an effect that compensation must undo.
    pub fn needs_compensation(self) -> bool {
        matches!(
            self,
            StepStatus::Completed
                | StepStatus::Executing
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
        assert!("DONE".parse::<TxStatus>().is_err());
    }

    #[test]
    fn seed_paths_are_legal_and_finished_sagas_stay_finished() {
        use TxStatus::*;
        for (a, b) in [
            (Created, Locked),
            (Locked, Executing),
            (Executing, Confirming),
            (Confirming, Completed),
            (Executing, Failed),
            (Failed, Compensating),
            (Compensating, Compensated),
            (Compensating, CompensationFailed),
            (Executing, Timeout),
            (Timeout, Compensating),
        ] {
            assert!(a.can_move_to(b), "{a} -> {b}");
        }
        assert!(!Completed.can_move_to(Executing));
        assert!(!Compensated.can_move_to(Executing));
        assert!(!Cancelled.can_move_to(Compensating));
    }
}
