//! The error a step returns, and how the host treats it.

use std::fmt;

/// Why a step call failed, which decides what the host does next.
///
/// A [`Retryable`](StepError::Retryable) error is retried under the saga's retry policy (a
/// timeout, a busy downstream service); a [`Permanent`](StepError::Permanent) one fails the step
/// at once (bad input, a business rule such as insufficient funds), since trying again cannot
/// change the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// A transient failure: the host may call the step again.
    Retryable(String),
    /// A failure that another attempt cannot fix: the host does not retry.
    Permanent(String),
}

impl StepError {
    /// A transient failure that the host may retry.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }

    /// Whether the host may retry the call.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(message) | Self::Permanent(message) => message,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for StepError {}

/// JSON that does not fit the expected shape will not fit on a retry either.
impl From<serde_json::Error> for StepError {
    fn from(err: serde_json::Error) -> Self {
        Self::permanent(err.to_string())
    }
}
