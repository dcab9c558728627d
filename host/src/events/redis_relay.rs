//! Sharing events between hosts through Redis pub/sub.

use std::sync::Arc;

use super::{Event, EventBus, RelayError};
use crate::redis_client::RedisConn;

impl EventBus {
    /// Share events with every host relaying through the same Redis channel: this host's
    /// events are published there, and other hosts' events are delivered here as if they
    /// were local (to the event log, the stream and subscribers). Reconnects on its own;
    /// stops when the bus is dropped.
    pub async fn relay_through_redis(&self, url: &str, prefix: &str) -> Result<(), RelayError> {
        use futures::StreamExt;
        use redis::AsyncCommands;

        let channel = format!("{prefix}events");
        let origin = uuid::Uuid::now_v7().to_string();
        let redis = RedisConn::connect(url).await?;
        let (mut conn, client) = (redis.handle(), redis.client().clone());
        let location = redis.location().to_string();
        let mut rx = self.start_relay().ok_or(RelayError::AlreadyRelayed)?;
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        let (out_channel, out_origin) = (channel.clone(), origin.clone());
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let payload =
                    serde_json::json!({"origin": out_origin, "event": &*event}).to_string();
                if let Err(e) = conn.publish::<_, _, ()>(&out_channel, payload).await {
                    tracing::debug!(error = %e, "could not relay an event");
                }
            }
            drop(stop);
        });
        let log = self.log.clone();
        let receive = async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if pubsub.subscribe(&channel).await.is_ok() {
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                let Ok(payload) = msg.get_payload::<String>() else {
                                    continue;
                                };
                                let Ok(envelope) =
                                    serde_json::from_str::<serde_json::Value>(&payload)
                                else {
                                    continue;
                                };
                                if envelope["origin"].as_str() == Some(origin.as_str()) {
                                    continue;
                                }
                                if let Ok(event) =
                                    serde_json::from_value::<Event>(envelope["event"].clone())
                                {
                                    log.deliver(Arc::new(event));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, redis = %location, "event relay disconnected; retrying")
                    }
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = receive => {}
                _ = stopped.changed() => {}
            }
        });
        Ok(())
    }
}
