//! In-process locks: the default when no Redis is configured (one host).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{LockError, LockManager};

struct Held {
    token: String,
    expires: Instant,
}

/// Locks held in this process's memory.
#[derive(Default)]
pub struct MemoryLocks {
    held: Mutex<HashMap<String, Held>>,
    fence: std::sync::atomic::AtomicU64,
}

impl MemoryLocks {
    /// No locks held.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LockManager for MemoryLocks {
    fn summary(&self) -> String {
        "in-process locks".into()
    }

    async fn try_acquire(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, LockError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match held.get(key) {
            Some(h) if h.expires > now && h.token != token => Ok(None),
            _ => {
                held.insert(
                    key.to_string(),
                    Held {
                        token: token.to_string(),
                        expires: now + ttl,
                    },
                );
                Ok(Some(
                    self.fence
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        + 1,
                ))
            }
        }
    }

    async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, LockError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match held.get_mut(key) {
            Some(h) if h.token == token && h.expires > now => {
                h.expires = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, token: &str) -> Result<bool, LockError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.get(key).is_some_and(|h| h.token == token) {
            held.remove(key);
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_holder_extends_or_releases() {
        let locks = MemoryLocks::new();
        let ttl = Duration::from_secs(5);
        let f1 = locks.try_acquire("a", "t1", ttl).await.unwrap().unwrap();
        assert_eq!(locks.try_acquire("a", "t2", ttl).await.unwrap(), None);
        assert!(!locks.extend("a", "t2", ttl).await.unwrap());
        assert!(!locks.release("a", "t2").await.unwrap());
        assert!(locks.extend("a", "t1", ttl).await.unwrap());
        assert!(locks.release("a", "t1").await.unwrap());
        let f2 = locks.try_acquire("a", "t2", ttl).await.unwrap().unwrap();
        assert!(f2 > f1, "fencing numbers grow");
    }
}
