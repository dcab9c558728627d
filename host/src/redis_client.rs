//! The Redis connection every Redis-backed part of the host opens (locks, breakers, the
//! event relay), and [`RedisError`], the one error they report: which server, and the
//! driver's error beneath, never flattened into text.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, ConnectionInfo};

/// Upper bound on any one Redis round trip, so a dead server is an error, never a hang.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call to Redis failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The configured URL cannot be parsed.
    #[error("invalid redis url: {source}")]
    InvalidUrl {
        /// The driver's parse error.
        #[source]
        source: ::redis::RedisError,
    },
    /// The server refused the call or the connection failed.
    #[error("redis at {location}: {source}")]
    Failed {
        /// The server, without credentials.
        location: String,
        /// The driver's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// The server did not answer in time.
    #[error("redis at {location} did not answer within {after:?}")]
    TimedOut {
        /// The server, without credentials.
        location: String,
        /// How long the call waited.
        after: Duration,
    },
    /// A compare-and-set lost to other writers every time it was tried.
    #[error("`{key}` in redis at {location} is changing too fast to update")]
    Contended {
        /// The server, without credentials.
        location: String,
        /// The contended key.
        key: String,
    },
}

/// An open connection to one Redis server; cheap to clone (one shared multiplexed
/// connection underneath).
#[derive(Clone)]
pub struct RedisConn {
    client: Client,
    conn: ConnectionManager,
    location: String,
}

impl RedisConn {
    /// Connect to the server at `url` (`redis://[user:password@]host:port[/db]`).
    ///
    /// The connection reconnects on its own after the server restarts; it makes no
    /// background retries, so each call gets a prompt answer.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        let client = Client::open(url).map_err(|source| RedisError::InvalidUrl { source })?;
        let location = describe(client.get_connection_info());
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT);
        let conn = within(
            &location,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await?;
        Ok(Self {
            client,
            conn,
            location,
        })
    }

    /// The server's URL without the password, for logs and errors.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A handle onto the shared connection, for commands.
    pub fn handle(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Await one call to this server, bounded by [`CALL_TIMEOUT`].
    pub async fn call<T>(
        &self,
        f: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        within(&self.location, f).await
    }
}

async fn within<T>(
    location: &str,
    f: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, RedisError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(RedisError::Failed {
            location: location.to_string(),
            source,
        }),
        Err(_) => Err(RedisError::TimedOut {
            location: location.to_string(),
            after: CALL_TIMEOUT,
        }),
    }
}

/// The server's URL rebuilt without the password.
fn describe(info: &ConnectionInfo) -> String {
    let user = match &info.redis.username {
        Some(user) => format!("{user}@"),
        None => String::new(),
    };
    let db = match info.redis.db {
        0 => String::new(),
        db => format!("/{db}"),
    };
    match &info.addr {
        ConnectionAddr::Tcp(host, port) => format!("redis://{user}{host}:{port}{db}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{user}{host}:{port}{db}"),
        ConnectionAddr::Unix(path) => format!("redis+unix://{}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_hide_the_password() {
        let client = Client::open("redis://app:s3cret@cache.internal:6380/2").unwrap();
        let location = describe(client.get_connection_info());
        assert_eq!(location, "redis://app@cache.internal:6380/2");
    }

    #[tokio::test]
    async fn errors_keep_the_driver_error_beneath() {
        let err = RedisConn::connect("nonsense://x").await.err().unwrap();
        assert!(matches!(err, RedisError::InvalidUrl { .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
        // Nothing listens on port 1.
        let err = RedisConn::connect("redis://127.0.0.1:1")
            .await
            .err()
            .unwrap();
        match &err {
            RedisError::Failed { location, source } => {
                assert_eq!(location, "redis://127.0.0.1:1");
                assert!(
                    source.is_connection_refusal() || source.is_io_error(),
                    "{source:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
