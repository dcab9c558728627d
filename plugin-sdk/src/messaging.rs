//! Messages to other services through the host's broker (NATS).
//!
//! A publish is held with the call's result and leaves only once that result commits:
//! exactly the messages of the committed call are sent, each once (the host gives each a
//! message id, `Rte-Message-Id`, that the broker and receivers deduplicate on). A call that
//! fails publishes nothing. The host adds `Rte-Tx-Id`, `Rte-Step` and `Rte-Reply-To` (the
//! subject a service answers on) to every message.
//!
//! Publishing fails when the host has no broker, when `subject` is not one of the host's
//! subjects (`nats_subjects`), or past the call's quota (16 messages, 1 MiB).
//!
//! On any target but `wasm32` (in unit tests), messages are collected by
//! [`testing`](crate::testing).

use serde::Serialize;

use crate::StepError;

/// A message: where it goes, its payload, its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Subject (topic) it is addressed to.
    pub subject: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
}

/// Publish `payload` to `subject` with `headers` once the call commits.
pub fn publish(subject: &str, payload: &[u8], headers: &[(&str, &str)]) -> Result<(), StepError> {
    let message = Message {
        subject: subject.to_owned(),
        payload: payload.to_vec(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    send(message).map_err(|err| StepError::permanent(format!("publish to `{subject}`: {err}")))
}

/// Publish `value` as JSON to `subject` with `headers` once the call commits.
pub fn publish_json<T: Serialize + ?Sized>(
    subject: &str,
    value: &T,
    headers: &[(&str, &str)],
) -> Result<(), StepError> {
    publish(subject, &serde_json::to_vec(value)?, headers)
}

#[cfg(target_arch = "wasm32")]
fn send(message: Message) -> Result<(), String> {
    crate::wit::rte::saga::messaging::publish(&crate::wit::rte::saga::types::Message {
        subject: message.subject,
        payload: message.payload,
        headers: message.headers,
    })
}

#[cfg(not(target_arch = "wasm32"))]
fn send(message: Message) -> Result<(), String> {
    crate::testing::fake::publish(message)
}
