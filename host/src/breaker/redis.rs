//! Breakers kept in Redis: each breaker is one JSON value, changed by read, apply the
//! shared state machine, then compare-and-set in a Lua script, so concurrent hosts never
//! lose each other's updates.

use std::sync::LazyLock;

use ::redis::{AsyncCommands, Script};

use super::{Breaker, BreakerState};
use crate::redis_client::{RedisConn, RedisError};
/// Compare-and-set attempts before giving up under heavy contention.
const MAX_ATTEMPTS: usize = 16;

/// Replace the value only if it is still what the caller read (empty: absent), and
/// remember the service in the index set.
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
",
    )
});

pub(super) struct RedisBreakers {
    conn: RedisConn,
    prefix: String,
}

impl RedisBreakers {
    pub(super) async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        Ok(Self {
            conn: RedisConn::connect(url).await?,
            prefix: prefix.to_string(),
        })
    }

    pub(super) fn location(&self) -> &str {
        self.conn.location()
    }

    fn key(&self, service: &str) -> String {
        format!("{}breaker:{service}", self.prefix)
    }

    fn index(&self) -> String {
        format!("{}breakers", self.prefix)
    }

    pub(super) async fn update<R>(
        &self,
        service: &str,
        change: &impl Fn(&mut Breaker) -> R,
    ) -> Result<(R, BreakerState, BreakerState), RedisError> {
        let key = self.key(service);
        let mut conn = self.conn.handle();
        for _ in 0..MAX_ATTEMPTS {
            let raw: Option<String> = self.conn.call(conn.get(&key)).await?;
            let current: Breaker = raw
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default();
            let mut next = current.clone();
            let result = change(&mut next);
            if next == current {
                return Ok((result, current.state, next.state));
            }
            let encoded = serde_json::to_string(&next).expect("a breaker always encodes as JSON");
            let mut invocation = COMPARE_AND_SET.key(&key);
            invocation
                .key(self.index())
                .arg(raw.unwrap_or_default())
                .arg(encoded)
                .arg(service);
            let swapped: i64 = self.conn.call(invocation.invoke_async(&mut conn)).await?;
            if swapped == 1 {
                return Ok((result, current.state, next.state));
            }
        }
        Err(RedisError::Contended {
            location: self.conn.location().to_string(),
            key,
        })
    }

    pub(super) async fn list(&self) -> Result<Vec<(String, Breaker)>, RedisError> {
        let mut conn = self.conn.handle();
        let mut services: Vec<String> = self.conn.call(conn.smembers(self.index())).await?;
        services.sort();
        let mut out = Vec::with_capacity(services.len());
        for service in services {
            let raw: Option<String> = self.conn.call(conn.get(self.key(&service))).await?;
            if let Some(b) = raw.and_then(|r| serde_json::from_str(&r).ok()) {
                out.push((service, b));
            }
        }
        Ok(out)
    }
}
