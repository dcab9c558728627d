//! The lock contract on every backend: the in-process locks, Redis on the loopback
//! server (under a fresh key prefix per test), and a Redis this test starts and kills.
//!
//! Exclusion is checked by an invariant (no key ever has two holders), never by timing;
//! time bounds only turn a hang into a failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rte_host::lock::{self, LockError, LockManager, MemoryLocks, RedisLocks};
use rte_host::redis_client::RedisError;
use rte_tests::faults::{OWN_REDIS_TESTS, OwnRedis};
use rte_tests::services_required;
use tokio::time::{Instant, sleep, timeout};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Handles on one lock service, one per simulated engine: the same in-process locks, or
/// separate Redis connections sharing a key prefix.
struct Engines {
    handles: Vec<Arc<dyn LockManager>>,
    /// The Redis key prefix to clean up afterwards.
    prefix: Option<String>,
}

fn memory(engines: usize) -> Engines {
    let locks: Arc<dyn LockManager> = Arc::new(MemoryLocks::new());
    Engines {
        handles: vec![locks; engines],
        prefix: None,
    }
}

/// `None` (after saying why) when the loopback Redis is down and not required.
async fn redis(engines: usize) -> Option<Engines> {
    let prefix = format!("rte-test-{:016x}:", rand::random::<u64>());
    let mut handles: Vec<Arc<dyn LockManager>> = Vec::new();
    for _ in 0..engines {
        match RedisLocks::connect(REDIS_URL, &prefix).await {
            Ok(locks) => handles.push(Arc::new(locks)),
            Err(e) if services_required() => panic!("redis is required: {e}"),
            Err(e) => {
                eprintln!("skipping: {e}");
                return None;
            }
        }
    }
    assert_eq!(
        handles[0].summary(),
        "redis locks at redis://127.0.0.1:6379"
    );
    Some(Engines {
        handles,
        prefix: Some(prefix),
    })
}

impl Engines {
    /// Drop the test's keys, so a failed run leaves nothing behind.
    async fn cleanup(self) {
        let Some(prefix) = self.prefix else { return };
        let client = redis::Client::open(REDIS_URL).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// One `memory` and one `redis` test per suite, each on fresh locks.
macro_rules! on_every_backend {
    ($($suite:ident($engines:expr)),* $(,)?) => {$(
        mod $suite {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$suite(&super::memory($engines)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                let Some(engines) = super::redis($engines).await else { return };
                super::$suite(&engines).await;
                engines.cleanup().await;
            }
        }
    )*};
}

on_every_backend!(
    only_the_holder_extends_or_releases(1),
    contenders_never_share_a_key(2),
    a_silent_holder_loses_the_lock(2),
);

async fn only_the_holder_extends_or_releases(engines: &Engines) {
    let locks = &engines.handles[0];
    let ttl = Duration::from_secs(30);
    assert!(
        locks.try_acquire("acct:1", "holder", ttl).await.unwrap(),
        "a free key is granted"
    );
    assert!(!locks.try_acquire("acct:1", "other", ttl).await.unwrap());
    assert!(!locks.extend("acct:1", "other", ttl).await.unwrap());
    assert!(!locks.release("acct:1", "other").await.unwrap());
    assert!(
        !locks.try_acquire("acct:1", "other", ttl).await.unwrap(),
        "a wrong-token release must not free the key"
    );
    assert!(locks.extend("acct:1", "holder", ttl).await.unwrap());
    assert!(locks.release("acct:1", "holder").await.unwrap());
    assert!(!locks.release("acct:1", "holder").await.unwrap());
    assert!(!locks.extend("acct:1", "holder", ttl).await.unwrap());

    assert!(
        locks.try_acquire("acct:1", "other", ttl).await.unwrap(),
        "a released key is granted"
    );
    assert!(!locks.release("acct:1", "holder").await.unwrap());
    assert!(locks.release("acct:1", "other").await.unwrap());
    assert!(locks.try_acquire("acct:1", "holder", ttl).await.unwrap());
    assert!(locks.release("acct:1", "holder").await.unwrap());
}

async fn contenders_never_share_a_key(engines: &Engines) {
    const TASKS_PER_ENGINE: usize = 20;
    const CYCLES: usize = 300;
    // Overlapping sets, and pairs that can run side by side ({1,2} with {3}).
    const KEY_SETS: [&[&str]; 4] = [
        &["acct:1", "acct:2"],
        &["acct:2", "acct:3"],
        &["acct:3"],
        &["acct:1"],
    ];
    // Far longer than the test, so a lock never expires under a slow holder: exclusion
    // here must come from the lock service alone.
    let ttl = Duration::from_secs(60);
    let holders: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let tickets = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));

    let mut tasks = tokio::task::JoinSet::new();
    for (engine, locks) in engines.handles.iter().enumerate() {
        for task in 0..TASKS_PER_ENGINE {
            let (locks, holders) = (locks.clone(), holders.clone());
            let (tickets, completed) = (tickets.clone(), completed.clone());
            tasks.spawn(async move {
                loop {
                    let cycle = tickets.fetch_add(1, Ordering::Relaxed);
                    if cycle >= CYCLES {
                        return;
                    }
                    let keys: Vec<String> = KEY_SETS[cycle % KEY_SETS.len()]
                        .iter()
                        .map(|k| k.to_string())
                        .collect();
                    let token = format!("engine{engine}-task{task}-cycle{cycle}");
                    let held = loop {
                        match lock::acquire_all(&locks, &keys, &token, ttl, Duration::from_secs(2))
                            .await
                        {
                            Ok(held) => break held,
                            Err(LockError::Busy { .. }) => continue,
                            Err(e) => panic!("{token}: {e}"),
                        }
                    };
                    {
                        let mut map = holders.lock().unwrap();
                        for key in &held {
                            if let Some(other) = map.insert(key.clone(), token.clone()) {
                                panic!("{key} held by {other} and {token} at once");
                            }
                        }
                    }
                    // Hold across a scheduling point so overlapping holds could show.
                    sleep(Duration::from_millis(1)).await;
                    {
                        let mut map = holders.lock().unwrap();
                        for key in &held {
                            assert_eq!(map.remove(key).as_deref(), Some(token.as_str()));
                        }
                    }
                    lock::release_all(&locks, &held, &token).await;
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    timeout(Duration::from_secs(25), async {
        while let Some(joined) = tasks.join_next().await {
            joined.expect("a contender failed");
        }
    })
    .await
    .expect("contenders finished");

    assert_eq!(completed.load(Ordering::Relaxed), CYCLES);
    assert!(holders.lock().unwrap().is_empty());
    // Every release went through: all keys are free again.
    for key in ["acct:1", "acct:2", "acct:3"] {
        let locks = &engines.handles[0];
        assert!(locks.try_acquire(key, "after", ttl).await.unwrap());
        assert!(locks.release(key, "after").await.unwrap());
    }
}

async fn a_silent_holder_loses_the_lock(engines: &Engines) {
    let (stalled, successor) = (&engines.handles[0], &engines.handles[1]);
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(30);
    assert!(
        stalled
            .try_acquire("acct:9", "stalled", short)
            .await
            .unwrap(),
        "a free key is granted"
    );

    // The stalled holder never extends; the other side gets the key once the ttl lapses.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !successor
        .try_acquire("acct:9", "successor", long)
        .await
        .unwrap()
    {
        assert!(Instant::now() < deadline, "the lock outlived its ttl");
        sleep(Duration::from_millis(20)).await;
    }
    assert!(!stalled.extend("acct:9", "stalled", short).await.unwrap());
    assert!(!stalled.release("acct:9", "stalled").await.unwrap());
    assert!(
        !stalled
            .try_acquire("acct:9", "stalled", short)
            .await
            .unwrap()
    );
    assert!(successor.release("acct:9", "successor").await.unwrap());
}

#[tokio::test]
async fn no_redis_url_means_in_process_locks() {
    let locks = lock::from_url(None, "rte:").await.unwrap();
    assert_eq!(locks.summary(), "in-process locks");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_is_an_error_not_a_hang() {
    let _one_at_a_time = OWN_REDIS_TESTS.lock().await;
    let Some(mut server) = OwnRedis::start(free_port()).await else {
        return;
    };
    let url = server.url();
    let locks = lock::from_url(Some(&url), "rte-test:").await.unwrap();
    assert_eq!(locks.summary(), format!("redis locks at {url}"));
    let ttl = Duration::from_secs(30);
    let wait = Duration::from_secs(1);
    let keys = vec!["acct:2".to_string(), "acct:3".to_string()];
    assert!(locks.try_acquire("acct:1", "holder", ttl).await.unwrap());
    lock::acquire_all(&locks, &keys, "holder", ttl, wait)
        .await
        .unwrap();

    server.kill().await;

    // Every call answers within a bound (the backend's own timeout is shorter), and the
    // answer is "unavailable", never a grant.
    let bound = Duration::from_secs(10);
    let r = timeout(bound, locks.try_acquire("acct:1", "other", ttl)).await;
    let r = r.expect("try_acquire hung");
    assert!(matches!(r, Err(LockError::Unavailable(_))), "{r:?}");
    let r = timeout(bound, locks.extend("acct:1", "holder", ttl)).await;
    let r = r.expect("extend hung");
    assert!(matches!(r, Err(LockError::Unavailable(_))), "{r:?}");
    let r = timeout(bound, locks.release("acct:1", "holder")).await;
    let r = r.expect("release hung");
    assert!(matches!(r, Err(LockError::Unavailable(_))), "{r:?}");
    let r = timeout(bound, lock::acquire_all(&locks, &keys, "other", ttl, wait)).await;
    let r = r.expect("acquire_all hung");
    assert!(matches!(r, Err(LockError::Unavailable(_))), "{r:?}");

    // Connecting to the dead server fails the same way, and the error hides the password.
    let secret_url = format!("redis://:hunter2@127.0.0.1:{}", server.port());
    let err = timeout(bound, RedisLocks::connect(&secret_url, "rte-test:"))
        .await
        .expect("connect hung")
        .err()
        .expect("connecting to a dead server fails");
    // The cause stays typed beneath: which server, and the driver's own error.
    match &err {
        LockError::Unavailable(RedisError::Failed { location, source }) => {
            assert_eq!(location, &url);
            assert!(
                source.is_connection_refusal() || source.is_io_error(),
                "{source:?}"
            );
        }
        other => panic!("expected a refused connection: {other:?}"),
    }
    assert!(err.to_string().contains(&url), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    // The same handle reconnects once Redis is back (with no data: it kept none).
    let Some(_restarted) = OwnRedis::start(server.port()).await else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match locks.try_acquire("acct:1", "after", ttl).await {
            Ok(granted) => {
                assert!(granted, "a restarted Redis holds no locks");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no reconnect: {e}"),
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// Redis dies while a saga's step runs. The saga cannot keep its lock, so it stops at its
/// next write instead of carrying on unguarded; once Redis is back, recovery resumes it
/// and it finishes, with each counting step counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_whose_redis_dies_mid_step_pauses_then_finishes() -> anyhow::Result<()> {
    use serde_json::json;
    let _one_at_a_time = OWN_REDIS_TESTS.lock().await;
    let Some(mut server) = OwnRedis::start(free_port()).await else {
        return Ok(());
    };
    let port = server.port();
    let h = rte_tests::TestHost::start(rte_tests::HostOptions {
        plugins: vec!["testkit"],
        redis_url: Some(server.url()),
        configure: |c| {
            c.lock_ttl = Duration::from_secs(2);
            c.lock_extend_period = Duration::from_millis(200);
            // Longer than the sleeping step, so recovery never takes a saga still running.
            c.stuck_threshold = Duration::from_secs(3);
            c.recovery_interval = Duration::from_millis(500);
            c.step_timeout = Duration::from_secs(10);
        },
        ..rte_tests::HostOptions::default()
    })
    .await?;
    let (status, v) = h
        .post(
            "/api/transactions",
            json!({
                "steps": ["test_kv_counter", "test_sleep", "test_kv_counter"],
                "lock_keys": ["acct:mid-saga"],
                "input": {"sleep_ms": 1500, "key": "mid-saga"}
            }),
        )
        .await?;
    assert_eq!(status, 201, "{v}");
    let tx_id = v["tx_id"].as_str().unwrap().to_string();
    let path = format!("/api/transactions/{tx_id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, t) = h.get(&path).await?;
        if t["steps"][1]["status"] == "EXECUTING" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sleeping step never started: {t}"
        );
        sleep(Duration::from_millis(20)).await;
    }
    server.kill().await;
    drop(server);

    // The step ends while Redis is away: its result is not written, the saga waits.
    sleep(Duration::from_millis(2000)).await;
    let (_, paused) = h.get(&path).await?;
    assert_eq!(paused["status"], "EXECUTING", "{paused}");
    assert_eq!(paused["steps"][1]["status"], "EXECUTING", "{paused}");
    assert_eq!(paused["steps"][2]["status"], "PENDING", "{paused}");
    let (_, lost) = h
        .get(&format!("/api/events?tx_id={tx_id}&type=alert.warning"))
        .await?;
    assert!(
        lost["events"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("lost lock")),
        "{lost}"
    );

    let Some(_back) = OwnRedis::start(port).await else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (_, t) = h.get(&path).await?;
        if t["status"] == "COMPLETED" {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the saga did not finish after Redis came back: {t}"
        );
        sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        done["output"]["count"], 2,
        "each counting step counted once: {done}"
    );
    assert!(
        done["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "recovery"),
        "{done}"
    );
    h.stop().await;
    Ok(())
}
