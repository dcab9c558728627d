//! Locks in Redis, shared by every host that points at the same server: each lock is one
//! key holding its holder's token with a TTL, and each check-then-act runs as a Lua script
//! so no other client can interleave.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, ConnectionInfo, FromRedisValue, Script, ScriptInvocation};
use async_trait::async_trait;

use super::{LockError, LockManager};

/// Upper bound on any one Redis round trip, so a dead server is an error, never a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Take the lock if it is free, or extend it if it is already ours (as the in-process
/// locks allow).
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
",
    )
});

/// Push the expiry out only while the caller's token still holds the key.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Delete the key only while the caller's token still holds it, so a holder whose lock
/// expired cannot free the next holder's lock.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Locks kept in a Redis server, so several hosts exclude each other.
///
/// Lock `k` lives at `{prefix}lock:k`, and expires with its TTL. The
/// connection reconnects on its own after Redis restarts; until then calls fail with
/// [`LockError::Unavailable`].
pub struct RedisLocks {
    conn: ConnectionManager,
    prefix: String,
    /// The server's URL without credentials, for logs and errors.
    location: String,
}

impl RedisLocks {
    /// Connect to the Redis server at `url` (`redis://[user:password@]host:port[/db]`)
    /// and keep every key under `prefix`.
    ///
    /// Fails with [`LockError::Unavailable`] when the URL is invalid or the server does
    /// not answer within a couple of seconds.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, LockError> {
        let (conn, location) = connect(url).await.map_err(LockError::Unavailable)?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            location,
        })
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}lock:{key}", self.prefix)
    }

    async fn run<T: FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, LockError> {
        // The manager is a cheap handle onto one shared multiplexed connection.
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(LockError::Unavailable(format!(
                "redis at {}: {e}",
                self.location
            ))),
            Err(_) => Err(LockError::Unavailable(format!(
                "redis at {} did not answer within {CALL_TIMEOUT:?}",
                self.location
            ))),
        }
    }
}

#[async_trait]
impl LockManager for RedisLocks {
    fn summary(&self) -> String {
        format!("redis locks at {}", self.location)
    }

    async fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, LockError> {
        let mut invocation = ACQUIRE.prepare_invoke();
        invocation
            .key(self.lock_key(key))
            .arg(token)
            .arg(ttl_ms(ttl));
        // The script answers 1 or nil.
        Ok(self.run::<Option<i64>>(invocation).await?.is_some())
    }

    async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, LockError> {
        let mut invocation = EXTEND.prepare_invoke();
        invocation
            .key(self.lock_key(key))
            .arg(token)
            .arg(ttl_ms(ttl));
        self.run(invocation).await
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, LockError> {
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(self.lock_key(key)).arg(token);
        self.run(invocation).await
    }
}

/// Redis rejects a zero expiry, and a lock that expires at once is never useful.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The server's URL rebuilt without the password.
/// Open a managed connection to the Redis server at `url`; returns it and the server's URL
/// without credentials. Shared by every Redis-backed part of the host.
pub(crate) async fn connect(url: &str) -> Result<(ConnectionManager, String), String> {
    let client = Client::open(url).map_err(|e| format!("invalid redis url: {e}"))?;
    let location = describe(client.get_connection_info());
    // No background retries: each call gets a prompt answer, and the call after a
    // failure starts a fresh connection attempt.
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(CALL_TIMEOUT)
        .set_response_timeout(CALL_TIMEOUT);
    match tokio::time::timeout(
        CALL_TIMEOUT,
        ConnectionManager::new_with_config(client, config),
    )
    .await
    {
        Ok(Ok(conn)) => Ok((conn, location)),
        Ok(Err(e)) => Err(format!("cannot connect to redis at {location}: {e}")),
        Err(_) => Err(format!(
            "redis at {location} did not answer within {CALL_TIMEOUT:?}"
        )),
    }
}

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

    #[test]
    fn ttls_are_at_least_a_millisecond() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_millis(300)), 300);
    }
}
