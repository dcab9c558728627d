//! Locks in Redis, shared by every host that points at the same server: each lock is one
//! key holding its holder's token with a TTL, and each check-then-act runs as a Lua script
//! so no other client can interleave.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{FromRedisValue, Script, ScriptInvocation};
use async_trait::async_trait;

use super::{LockError, LockManager};
use crate::redis_client::RedisConn;

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
    conn: RedisConn,
    prefix: String,
}

impl RedisLocks {
    /// Connect to the Redis server at `url` (`redis://[user:password@]host:port[/db]`)
    /// and keep every key under `prefix`.
    ///
    /// Fails with [`LockError::Unavailable`] when the URL is invalid or the server does
    /// not answer within a couple of seconds.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, LockError> {
        Ok(Self {
            conn: RedisConn::connect(url).await?,
            prefix: prefix.to_string(),
        })
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}lock:{key}", self.prefix)
    }

    async fn run<T: FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, LockError> {
        let mut conn = self.conn.handle();
        Ok(self.conn.call(invocation.invoke_async(&mut conn)).await?)
    }
}

#[async_trait]
impl LockManager for RedisLocks {
    fn summary(&self) -> String {
        format!("redis locks at {}", self.conn.location())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_at_least_a_millisecond() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_millis(300)), 300);
    }
}
