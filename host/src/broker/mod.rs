//! The message broker behind steps that publish and wait for replies: the [`Broker`]
//! port (NATS with JetStream is the one implementation, [`nats`]), the outbox relay that
//! sends what steps published once their commit is durable, the reply consumer that hands
//! replies to the engine, and the sweep that times out waits whose deadline passed.
//!
//! Subjects and headers a remote service sees:
//! - Requests arrive on the subjects steps publish to (`nats_subjects`, stream
//!   `RTE_REQUESTS`), with the step's own headers plus `Rte-Message-Id` (also
//!   `Nats-Msg-Id`, so JetStream drops a repeated send), `Rte-Tx-Id`, `Rte-Step` and
//!   `Rte-Reply-To`: the subject to answer on (`rte.replies.<tx_id>`, stream `RTE_REPLIES`).
//! - A reply carries `Rte-Correlation-Id` (the id the step waits on) and either the answer
//!   as its payload, or an `Rte-Error` header with the error's text.

pub mod nats;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::engine::{Engine, ReplySource};
use crate::plugin::messaging::subject_matches;
use crate::store::{OutboxMessage, ReplyBody};

/// Header naming the wait a reply answers.
pub const CORRELATION_HEADER: &str = "Rte-Correlation-Id";
/// Header carrying an error reply's text.
pub const ERROR_HEADER: &str = "Rte-Error";
/// Header naming the subject to reply on.
pub const REPLY_TO_HEADER: &str = "Rte-Reply-To";
/// Subjects replies are sent to: `rte.replies.<tx_id>`.
pub const REPLY_SUBJECTS: &str = "rte.replies.>";

/// A reply taken from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingReply {
    /// The wait it answers.
    pub correlation_id: String,
    /// What it says.
    pub body: ReplyBody,
}

/// Why a broker call failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

/// What the host asks of a broker.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Send `message` and wait for the broker to have it durably; sending the same
    /// message id twice delivers it once.
    async fn publish(&self, message: &OutboxMessage) -> Result<(), BrokerError>;

    /// Take replies from the durable consumer all hosts share, handing each to `handle`;
    /// a reply is acknowledged once `handle` returns `true`, and redelivered otherwise.
    /// Returns when the subscription ends.
    async fn consume_replies(
        &self,
        handle: Arc<
            dyn Fn(IncomingReply) -> futures::future::BoxFuture<'static, bool> + Send + Sync,
        >,
    ) -> Result<(), BrokerError>;
}

/// Check `nats_subjects`: comma-separated NATS subject patterns, none of which may
/// reach the reply subjects.
pub fn check_subjects(subjects: &str) -> Result<(), String> {
    let list = subject_list(subjects);
    if list.is_empty() {
        return Err("nats_subjects must name at least one subject".into());
    }
    for s in &list {
        let valid = s.split('.').enumerate().all(|(i, t)| {
            !t.is_empty()
                && (t == "*"
                    || (t == ">" && i == s.split('.').count() - 1)
                    || t.chars()
                        .all(|c| !c.is_whitespace() && c != '*' && c != '>'))
        });
        if !valid {
            return Err(format!(
                "nats_subjects: `{s}` is not a NATS subject pattern"
            ));
        }
        if subject_matches(s, "rte.replies.x") || s.starts_with("rte.replies") {
            return Err(format!(
                "nats_subjects: `{s}` overlaps the reply subjects ({REPLY_SUBJECTS})"
            ));
        }
    }
    Ok(())
}

/// The patterns of `nats_subjects`.
pub fn subject_list(subjects: &str) -> Vec<String> {
    subjects
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// How often the relay looks for messages left unsent (a host that stopped between a
/// commit and its send, or a broker that was down).
const RELAY_SWEEP: Duration = Duration::from_secs(2);
/// Messages older than this are the relay sweep's; younger ones are their committing
/// host's to send.
const UNSENT_AGE: Duration = Duration::from_secs(3);

/// Run the broker's side of the host until `shutdown`: the outbox relay (which the engine
/// hands committed messages to) and the reply consumer. The wait-deadline sweep runs on
/// every host, broker or not ([`sweep_waits`]).
pub async fn run(
    engine: Engine,
    broker: Arc<dyn Broker>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let (outlet, inbox) = mpsc::unbounded_channel();
    engine.set_outlet(outlet);
    let relay = tokio::spawn(relay(engine.clone(), broker.clone(), inbox));
    let replies = tokio::spawn(consume(engine.clone(), broker));
    shutdown.await;
    relay.abort();
    replies.abort();
}

/// Connect to the NATS server at `url` (again and again until it answers), then
/// [`run`] until `shutdown`.
pub async fn connect_and_run(
    engine: Engine,
    url: String,
    subjects: String,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let broker = loop {
        tokio::select! {
            _ = &mut shutdown => return,
            connected = nats::NatsBroker::connect(&url, &subjects) => match connected {
                Ok(broker) => break broker,
                Err(e) => {
                    tracing::warn!(error = %e, "message broker not ready; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            },
        }
    };
    tracing::info!(%url, "message broker ready");
    run(engine, Arc::new(broker), shutdown).await;
}

/// Time out waits whose deadline passed, every `interval`, until `shutdown` (on every
/// host, broker or not: HTTP-completed waits time out too).
pub async fn sweep_waits(
    engine: Engine,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = engine.time_out_waits().await {
            tracing::warn!(error = %e, "wait deadline sweep failed; retrying next interval");
        }
    }
}

/// Send what commits hand over at once, and sweep for what was left unsent. After a send
/// fails, messages handed over are left to the sweep for a while (each is already in the
/// outbox), so a broker that is down costs one timeout, not one per saga.
async fn relay(
    engine: Engine,
    broker: Arc<dyn Broker>,
    mut inbox: mpsc::UnboundedReceiver<Vec<OutboxMessage>>,
) {
    let mut down_until: Option<tokio::time::Instant> = None;
    // A sweep every period however busy the host is, so what is left unsent never waits
    // for a lull.
    let mut sweeps = tokio::time::interval(RELAY_SWEEP);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (batch, swept) = tokio::select! {
            got = inbox.recv() => match got {
                Some(batch) => (batch, false),
                None => return,
            },
            _ = sweeps.tick() => {
                let before = engine.now_ms() - UNSENT_AGE.as_millis() as i64;
                match engine.store().outbox_unsent(before, 500).await {
                    Ok(left) => (left, true),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the outbox; retrying");
                        continue;
                    }
                }
            }
        };
        if !swept && down_until.is_some_and(|t| tokio::time::Instant::now() < t) {
            continue;
        }
        down_until = match send(&engine, broker.as_ref(), batch).await {
            true => None,
            false => Some(tokio::time::Instant::now() + RELAY_SWEEP),
        };
    }
}

/// Send `batch` in order, marking what the broker took as sent; at the first failure the
/// rest stays for the sweep. Whether every message went.
async fn send(engine: &Engine, broker: &dyn Broker, batch: Vec<OutboxMessage>) -> bool {
    let m = crate::telemetry::metrics();
    let mut sent = Vec::with_capacity(batch.len());
    let mut all = true;
    for message in &batch {
        match broker.publish(message).await {
            Ok(()) => {
                m.outbox_sent.inc();
                sent.push(message.message_id.clone());
            }
            Err(e) => {
                m.outbox_send_errors.inc();
                tracing::warn!(message_id = %message.message_id, subject = %message.subject, error = %e, "outbox send failed; it is retried");
                all = false;
                break;
            }
        }
    }
    if let Err(e) = engine.store().outbox_sent(&sent, engine.now_ms()).await {
        // Sent but not marked: a later sweep sends them again, and the broker drops the
        // repeat by its message id.
        tracing::warn!(error = %e, "cannot mark outbox messages sent");
    }
    all
}

/// Consume replies until the subscription ends, reconnecting after a pause.
async fn consume(engine: Engine, broker: Arc<dyn Broker>) {
    let handle: Arc<
        dyn Fn(IncomingReply) -> futures::future::BoxFuture<'static, bool> + Send + Sync,
    > = {
        let engine = engine.clone();
        Arc::new(move |reply: IncomingReply| {
            let engine = engine.clone();
            Box::pin(async move {
                match engine
                    .deliver_reply(&reply.correlation_id, reply.body, ReplySource::Broker)
                    .await
                {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(correlation_id = %reply.correlation_id, error = %e, "cannot record a reply; the broker redelivers it");
                        false
                    }
                }
            })
        })
    };
    loop {
        if let Err(e) = broker.consume_replies(handle.clone()).await {
            tracing::warn!(error = %e, "reply consumer stopped; resubscribing");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked() {
        assert!(check_subjects("rte.requests.>").is_ok());
        assert!(check_subjects("ledger.*, billing.charge").is_ok());
        assert!(check_subjects("").is_err());
        assert!(check_subjects("rte.>").is_err(), "overlaps replies");
        assert!(check_subjects("rte.replies.x").is_err());
        assert!(check_subjects("a.>.b").is_err());
        assert!(check_subjects("a..b").is_err());
        assert_eq!(subject_list(" a.b , c.* ,"), vec!["a.b", "c.*"]);
    }
}
