//! NATS with JetStream as the host's broker. Requests go to the stream `RTE_REQUESTS`
//! (the configured subjects), deduplicated by message id; replies are read from the
//! stream `RTE_REPLIES` through one durable pull consumer that every host shares, so a
//! reply that arrives while every host is down waits in the stream, and any host may take
//! it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use async_trait::async_trait;
use futures::StreamExt;

use super::{
    Broker, BrokerError, CORRELATION_HEADER, ERROR_HEADER, IncomingReply, REPLY_SUBJECTS,
    REPLY_TO_HEADER, subject_list,
};
use crate::store::{OutboxMessage, ReplyBody};

/// The stream of requests steps publish.
pub const REQUESTS_STREAM: &str = "RTE_REQUESTS";
/// The stream of replies.
pub const REPLIES_STREAM: &str = "RTE_REPLIES";
/// The durable consumer of replies all hosts share.
pub const REPLIES_CONSUMER: &str = "rte-hosts";
/// How long a taken reply may stay unacknowledged before it is redelivered.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long JetStream remembers message ids to drop repeats.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A connected NATS broker.
pub struct NatsBroker {
    js: jetstream::Context,
}

impl NatsBroker {
    /// Connect to `url` and make sure both streams and the reply consumer exist, the
    /// requests stream covering `subjects` (comma-separated patterns).
    pub async fn connect(url: &str, subjects: &str) -> Result<Self, BrokerError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| BrokerError(format!("cannot connect to NATS at {url}: {e}")))?;
        let js = jetstream::new(client);
        let stream_config = |name: &str, subjects: Vec<String>| stream::Config {
            name: name.to_string(),
            subjects,
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        js.create_or_update_stream(stream_config(REQUESTS_STREAM, subject_list(subjects)))
            .await
            .map_err(|e| BrokerError(format!("cannot set up stream {REQUESTS_STREAM}: {e}")))?;
        js.create_or_update_stream(stream_config(
            REPLIES_STREAM,
            vec![REPLY_SUBJECTS.to_string()],
        ))
        .await
        .map_err(|e| BrokerError(format!("cannot set up stream {REPLIES_STREAM}: {e}")))?;
        Ok(Self { js })
    }

    /// The JetStream context (for tests and tools).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    async fn reply_consumer(&self) -> Result<pull::Stream, BrokerError> {
        let stream = self
            .js
            .get_stream(REPLIES_STREAM)
            .await
            .map_err(|e| BrokerError(format!("cannot open stream {REPLIES_STREAM}: {e}")))?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                REPLIES_CONSUMER,
                pull::Config {
                    durable_name: Some(REPLIES_CONSUMER.to_string()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BrokerError(format!("cannot open consumer {REPLIES_CONSUMER}: {e}")))?;
        consumer
            .messages()
            .await
            .map_err(|e| BrokerError(format!("cannot read replies: {e}")))
    }
}

/// The subject replies for saga `tx_id` go to.
pub fn reply_subject(tx_id: &str) -> String {
    format!("rte.replies.{tx_id}")
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), BrokerError> {
        let mut headers = async_nats::HeaderMap::new();
        for (k, v) in &message.headers {
            headers.append(k.as_str(), v.as_str());
        }
        headers.insert(REPLY_TO_HEADER, reply_subject(&message.tx_id).as_str());
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.payload.clone().into())
            .headers(headers)
            .message_id(&message.message_id);
        let ack = self
            .js
            .send_publish(message.subject.clone(), publish)
            .await
            .map_err(|e| BrokerError(format!("publish to `{}` failed: {e}", message.subject)))?;
        ack.await
            .map_err(|e| BrokerError(format!("`{}` was not acknowledged: {e}", message.subject)))?;
        Ok(())
    }

    async fn consume_replies(
        &self,
        handle: Arc<
            dyn Fn(IncomingReply) -> futures::future::BoxFuture<'static, bool> + Send + Sync,
        >,
    ) -> Result<(), BrokerError> {
        let mut messages = self.reply_consumer().await?;
        while let Some(next) = messages.next().await {
            let message = next.map_err(|e| BrokerError(format!("reading replies failed: {e}")))?;
            let Some(reply) = parse_reply(&message) else {
                tracing::warn!(subject = %message.subject, "a reply without an {CORRELATION_HEADER} header; dropped");
                crate::telemetry::metrics()
                    .replies
                    .with_label_values(&["broker", "malformed"])
                    .inc();
                let _ = message.ack().await;
                continue;
            };
            if handle(reply).await {
                if let Err(e) = message.ack().await {
                    tracing::warn!(error = %e, "cannot acknowledge a reply; it comes again and is ignored as a duplicate");
                }
            } else {
                let _ = message
                    .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
        Ok(())
    }
}

/// A broker message as a reply: its correlation id, and its payload or error.
fn parse_reply(message: &jetstream::Message) -> Option<IncomingReply> {
    let headers = message.headers.as_ref()?;
    let correlation_id = headers.get(CORRELATION_HEADER)?.as_str().to_string();
    if correlation_id.is_empty() {
        return None;
    }
    let body = match headers.get(ERROR_HEADER) {
        Some(error) => ReplyBody::Error {
            message: error.as_str().to_string(),
        },
        None => {
            let mut pairs: Vec<(String, String)> = headers
                .iter()
                .flat_map(|(name, values)| {
                    values
                        .iter()
                        .map(move |v| (name.to_string(), v.as_str().to_string()))
                })
                .collect();
            pairs.sort();
            ReplyBody::Message {
                payload: message.payload.to_vec(),
                headers: pairs,
            }
        }
    };
    Some(IncomingReply {
        correlation_id,
        body,
    })
}
