//! Locks on the resources a saga names: the [`LockManager`] contract, in-process and Redis
//! implementations, and [`acquire_all`], which takes a saga's keys in a fixed order.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use self::redis::RedisLocks;
pub use memory::MemoryLocks;

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The keys stayed taken for the whole wait.
    #[error("lock `{key}` is held by another saga (waited {waited:?})")]
    Busy {
        /// The key that could not be taken.
        key: String,
        /// How long the saga waited.
        waited: Duration,
    },
    /// The lock service failed; retry later.
    #[error("lock service unavailable: {0}")]
    Unavailable(#[from] crate::redis_client::RedisError),
}

/// A lock service. Only the holder (by token) may extend or release a lock.
#[async_trait]
pub trait LockManager: Send + Sync + 'static {
    /// One line for startup logs.
    fn summary(&self) -> String;

    /// Take `key` for `ttl` if it is free (or already `token`'s); `false` when someone
    /// else holds it.
    ///
    /// A lock keeps contenders apart for throughput; it is not what keeps data right. A
    /// holder may stall past `ttl` and act after another took the key over, so every write
    /// a lock guards is also fenced in the store (saga versions, plugin key versions).
    async fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, LockError>;

    /// Extend `key` to `ttl` from now if `token` still holds it.
    async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, LockError>;

    /// Release `key` if `token` holds it.
    async fn release(&self, key: &str, token: &str) -> Result<bool, LockError>;
}

/// The lock service for a host: in-process locks when no Redis URL is configured (one
/// host), otherwise locks in Redis under `prefix`, shared by every host using it.
pub async fn from_url(
    redis_url: Option<&str>,
    prefix: &str,
) -> Result<Arc<dyn LockManager>, LockError> {
    Ok(match redis_url {
        None => Arc::new(MemoryLocks::new()),
        Some(url) => Arc::new(RedisLocks::connect(url, prefix).await?),
    })
}

/// Take every key (sorted, deduplicated, so two sagas never wait on each other in a
/// cycle), all or nothing, retrying for at most `wait`.
pub async fn acquire_all(
    locks: &Arc<dyn LockManager>,
    keys: &[String],
    token: &str,
    ttl: Duration,
    wait: Duration,
) -> Result<Vec<String>, LockError> {
    let mut keys: Vec<String> = keys.to_vec();
    keys.sort();
    keys.dedup();
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let mut taken = Vec::with_capacity(keys.len());
        let mut blocked = None;
        for key in &keys {
            match locks.try_acquire(key, token, ttl).await {
                Ok(true) => taken.push(key.clone()),
                Ok(false) => {
                    blocked = Some(key.clone());
                    break;
                }
                Err(e) => {
                    release_all(locks, &taken, token).await;
                    return Err(e);
                }
            }
        }
        let Some(key) = blocked else {
            return Ok(keys);
        };
        release_all(locks, &taken, token).await;
        if started.elapsed() >= wait {
            return Err(LockError::Busy {
                key,
                waited: started.elapsed(),
            });
        }
        // Jitter keeps contenders from retrying in lockstep.
        let jitter = rand::random_range(0..=pause.as_millis() as u64);
        tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Release every key held by `token`, logging failures (the TTL frees them anyway).
pub async fn release_all(locks: &Arc<dyn LockManager>, keys: &[String], token: &str) {
    for key in keys {
        if let Err(e) = locks.release(key, token).await {
            tracing::warn!(%key, error = %e, "lock release failed; it will expire");
        }
    }
}
