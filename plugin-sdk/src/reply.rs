//! What comes back to a step that waited (see
//! [`StepContext::wait_for_reply`](crate::StepContext::wait_for_reply)).

use serde::de::DeserializeOwned;

use crate::StepError;

/// The answer to a wait, handed to [`Step::on_reply`](crate::Step::on_reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The correlation id the step waited on.
    pub correlation_id: String,
    /// What came back.
    pub body: ReplyBody,
}

/// What came back for a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// The remote service's answer.
    Message {
        /// Payload bytes.
        payload: Vec<u8>,
        /// Headers, in order.
        headers: Vec<(String, String)>,
    },
    /// The remote service answered with an error.
    Error(String),
    /// Nothing came before the wait's deadline.
    TimedOut,
}

impl Reply {
    /// The answer's payload parsed from JSON. An error answer is a
    /// [permanent](StepError::Permanent) error with its text, a timeout a
    /// [retryable](StepError::Retryable) one (the step runs again: a new request, a new
    /// wait), and a payload that is not the JSON of a `T` a permanent one.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        match &self.body {
            ReplyBody::Message { payload, .. } => serde_json::from_slice(payload).map_err(|err| {
                StepError::permanent(format!(
                    "reply `{}` is not the JSON expected: {err}",
                    self.correlation_id
                ))
            }),
            ReplyBody::Error(message) => Err(StepError::permanent(format!(
                "the remote service answered with an error: {message}"
            ))),
            ReplyBody::TimedOut => Err(StepError::retryable(format!(
                "no reply to `{}` before its deadline",
                self.correlation_id
            ))),
        }
    }

    /// The value of header `name` (case-insensitive) of an answer.
    pub fn header(&self, name: &str) -> Option<&str> {
        match &self.body {
            ReplyBody::Message { headers, .. } => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}
