//! Breakers kept in Redis: each breaker is one JSON value, changed by read, apply the
//! shared state machine, then compare-and-set in a Lua script, so concurrent hosts never
//! lose each other's updates.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Script};

use super::{Breaker, BreakerState};

/// Upper bound on one round trip.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
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
    conn: ConnectionManager,
    prefix: String,
    location: String,
}

impl RedisBreakers {
    pub(super) async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let (conn, location) = crate::lock::redis::connect(url).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            location,
        })
    }

    pub(super) fn location(&self) -> &str {
        &self.location
    }

    fn key(&self, service: &str) -> String {
        format!("{}breaker:{service}", self.prefix)
    }

    fn index(&self) -> String {
        format!("{}breakers", self.prefix)
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("redis at {}: {e}", self.location)),
            Err(_) => Err(format!(
                "redis at {} did not answer within {CALL_TIMEOUT:?}",
                self.location
            )),
        }
    }

    pub(super) async fn update<R>(
        &self,
        service: &str,
        change: &impl Fn(&mut Breaker) -> R,
    ) -> Result<(R, BreakerState, BreakerState), String> {
        let key = self.key(service);
        let mut conn = self.conn.clone();
        for _ in 0..MAX_ATTEMPTS {
            let raw: Option<String> = self.timed(conn.get(&key)).await?;
            let current: Breaker = raw
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default();
            let mut next = current.clone();
            let result = change(&mut next);
            if next == current {
                return Ok((result, current.state, next.state));
            }
            let encoded = serde_json::to_string(&next).map_err(|e| e.to_string())?;
            let mut invocation = COMPARE_AND_SET.key(&key);
            invocation
                .key(self.index())
                .arg(raw.unwrap_or_default())
                .arg(encoded)
                .arg(service);
            let swapped: i64 = self.timed(invocation.invoke_async(&mut conn)).await?;
            if swapped == 1 {
                return Ok((result, current.state, next.state));
            }
        }
        Err(format!(
            "breaker `{service}` is changing too fast to update"
        ))
    }

    pub(super) async fn list(&self) -> Result<Vec<(String, Breaker)>, String> {
        let mut conn = self.conn.clone();
        let mut services: Vec<String> = self.timed(conn.smembers(self.index())).await?;
        services.sort();
        let mut out = Vec::with_capacity(services.len());
        for service in services {
            let raw: Option<String> = self.timed(conn.get(self.key(&service))).await?;
            if let Some(b) = raw.and_then(|r| serde_json::from_str(&r).ok()) {
                out.push((service, b));
            }
        }
        Ok(out)
    }
}
