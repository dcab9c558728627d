//! The lock round trip on a saga's path: take one key and release it, with in-process
//! locks and, when one answers (`RTE_BENCH_REDIS_URL`, default the loopback Redis), with
//! Redis. Each saga pays this once; the extension runs off the hot path.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use rte_host::LockManager;
use rte_host::lock::{MemoryLocks, RedisLocks};

async fn round_trip(locks: &dyn LockManager, key: &str) {
    let ttl = Duration::from_secs(30);
    let granted = locks
        .try_acquire(key, "bench", ttl)
        .await
        .expect("lock service answers");
    assert!(granted, "the bench key is free");
    locks.release(key, "bench").await.expect("released");
}

fn locks(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut group = c.benchmark_group("lock_round_trip");
    let memory: Arc<dyn LockManager> = Arc::new(MemoryLocks::new());
    group.bench_function("memory", |b| {
        b.to_async(&rt)
            .iter(|| round_trip(memory.as_ref(), "bench:1"))
    });
    let url =
        std::env::var("RTE_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("rte-bench:{}:", uuid::Uuid::now_v7().simple());
    match rt.block_on(RedisLocks::connect(&url, &prefix)) {
        Ok(redis) => {
            let redis: Arc<dyn LockManager> = Arc::new(redis);
            group.bench_function("redis", |b| {
                b.to_async(&rt)
                    .iter(|| round_trip(redis.as_ref(), "bench:1"))
            });
        }
        Err(e) => eprintln!("skipping the Redis lock bench: {e}"),
    }
    // The floor in the same run: a bare `SET NX PX` and `DEL` round trip, no scripts.
    if let Ok(client) = redis::Client::open(url.as_str())
        && let Ok(conn) = rt.block_on(client.get_multiplexed_async_connection())
    {
        let key = format!("{prefix}raw");
        group.bench_function("redis_raw_set_nx_del", |b| {
            b.to_async(&rt).iter(|| {
                let (mut conn, key) = (conn.clone(), key.clone());
                async move {
                    let _: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg("bench")
                        .arg("NX")
                        .arg("PX")
                        .arg(30_000)
                        .query_async(&mut conn)
                        .await
                        .expect("SET NX");
                    let _: i64 = redis::cmd("DEL")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("DEL");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, locks);
criterion_main!(benches);
