//! `rte bench --waits N`: N sagas whose first step waits for a reply, all waiting at once
//! (resident memory then), then every reply delivered at `--concurrency`, each timed from
//! its delivery to the end of its saga (the step after the wait run and committed).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, json};

use super::{
    ADMISSION_BACKLOG, Bench, BenchArgs, current_rss_mb, peak_rss_mb, percentile, reset_peak_rss,
};
use crate::engine::{Engine, ReplySource, TxStatus};
use crate::store::{ReplyBody, TxStore, WaitStore};

/// Figures of a waits run.
#[derive(Debug, Clone, Serialize)]
pub struct WaitsReport {
    /// The store.
    pub store: String,
    /// Sagas started, each waiting once.
    pub sagas: usize,
    /// Replies delivered at once.
    pub concurrency: usize,
    /// Resident memory with the engine ready and no saga, MiB.
    pub idle_rss_mb: Option<f64>,
    /// Resident memory with every saga waiting, MiB.
    pub waiting_rss_mb: Option<f64>,
    /// Peak resident memory over the run, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Seconds to start every saga and have it waiting.
    pub start_s: f64,
    /// Sagas that ended `COMPLETED`.
    pub completed: usize,
    /// Replies recorded per second, each until its saga ended.
    pub replies_per_s: f64,
    /// Reply to the saga's end (on-reply, its commit, the next step), median, ms.
    pub reply_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub reply_p99_ms: f64,
}

/// Saga `i`: a step that waits (ten minutes at most), then `test_ok`.
fn waiter(engine: &Engine, i: usize) -> crate::Result<crate::Transaction> {
    let mut input = Map::new();
    input.insert("wait_ms".into(), json!(600_000));
    engine.transaction_from_request(
        Some("bench_waits".into()),
        Some(vec!["test_wait".into(), "test_ok".into()]),
        input,
        vec![format!("bench-wait:{i}")],
        None,
        None,
        None,
        None,
    )
}

/// Run the waits bench.
pub(super) async fn run(args: &BenchArgs, n: usize) -> anyhow::Result<WaitsReport> {
    let bench = Bench::start(
        args,
        &["test_wait", "test_ok"],
        256,
        Duration::from_secs(10),
    )
    .await?;
    let engine = bench.engine.clone();
    let idle = current_rss_mb();
    reset_peak_rss();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..16)
        .map(|_| {
            let (engine, store, next) = (engine.clone(), bench.store.clone(), next.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, crate::Error>(ids);
                    }
                    while store.counts.backlog() > ADMISSION_BACKLOG {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    ids.push(engine.submit(waiter(&engine, i)?).await?.tx_id);
                }
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(n);
    for s in submitters {
        ids.extend(s.await?.context("cannot start a saga")?);
    }
    // Every saga waiting: no driver, no instance left.
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let open = bench.store.waits_open(n as u32 + 1).await?.len();
        if open >= n && engine.in_flight() == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "only {open} of {n} sagas got to wait"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start_s = started.elapsed().as_secs_f64();
    // Let freed memory settle before reading the resident size.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = current_rss_mb();

    let replied = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(ids);
    let repliers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (engine, next, ids) = (engine.clone(), next.clone(), ids.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut completed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(tx_id) = ids.get(i) else {
                        return Ok::<_, crate::Error>((latencies, completed));
                    };
                    let t0 = Instant::now();
                    let body = ReplyBody::Message {
                        payload: br#"{"ok": true}"#.to_vec(),
                        headers: Vec::new(),
                    };
                    engine
                        .deliver_reply(&format!("{tx_id}:test_wait:0:1"), body, ReplySource::Broker)
                        .await?;
                    let end = engine.wait(tx_id, Duration::from_secs(60)).await?;
                    latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                    if end.status == TxStatus::Completed {
                        completed += 1;
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    let mut completed = 0;
    for r in repliers {
        let (l, c) = r.await?.context("a reply failed")?;
        latencies.extend(l);
        completed += c;
    }
    let secs = replied.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let report = WaitsReport {
        store: bench.store.summary(),
        sagas: n,
        concurrency: args.concurrency,
        idle_rss_mb: idle,
        waiting_rss_mb: waiting,
        peak_rss_mb: peak_rss_mb(),
        start_s,
        completed,
        replies_per_s: n as f64 / secs,
        reply_p50_ms: percentile(&latencies, 50.0),
        reply_p99_ms: percentile(&latencies, 99.0),
    };
    bench.stop().await;
    Ok(report)
}

/// Print a waits report as a table.
pub(super) fn print(r: &WaitsReport) {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    println!(
        "rte bench --waits: {} sagas waiting at once, replies at concurrency {}",
        r.sagas, r.concurrency
    );
    println!("  store                {}", r.store);
    println!("  all waiting after s  {:.1}", r.start_s);
    println!("  idle RSS MiB         {}", opt(r.idle_rss_mb));
    println!("  waiting RSS MiB      {}", opt(r.waiting_rss_mb));
    println!("  peak RSS MiB         {}", opt(r.peak_rss_mb));
    println!("  completed            {}", r.completed);
    println!("  replies/s            {:.1}", r.replies_per_s);
    println!(
        "  reply to end ms      p50 {:.2}  p99 {:.2}",
        r.reply_p50_ms, r.reply_p99_ms
    );
}
