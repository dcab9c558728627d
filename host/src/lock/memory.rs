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

    async fn try_acquire(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, LockError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match held.get(key) {
            Some(h) if h.expires > now && h.token != token => Ok(false),
            _ => {
                held.insert(
                    key.to_string(),
                    Held {
                        token: token.to_string(),
                        expires: now + ttl,
                    },
                );
                Ok(true)
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
        assert!(locks.try_acquire("a", "t1", ttl).await.unwrap());
        assert!(!locks.try_acquire("a", "t2", ttl).await.unwrap());
        assert!(!locks.extend("a", "t2", ttl).await.unwrap());
        assert!(!locks.release("a", "t2").await.unwrap());
        assert!(locks.extend("a", "t1", ttl).await.unwrap());
        assert!(locks.release("a", "t1").await.unwrap());
        assert!(locks.try_acquire("a", "t2", ttl).await.unwrap());
    }
}
