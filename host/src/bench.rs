//! `rte bench`: how fast the engine runs sagas, measured against what the database under it
//! can physically do, in the same run.
//!
//! - Throughput (the default): `--sagas` sagas of `--steps` trivial wasm steps (`test_ok`) at
//!   `--concurrency`, a `--fail-ratio` of them ending in a failing step (`test_fail`) so they
//!   compensate. The store is wrapped in a counter, so commits per saga are counted, not
//!   assumed. Then, on the same connection pool at the same concurrency, the backend's raw
//!   rate of single-row insert transactions; `ratio` is sagas/s over that rate divided by the
//!   saga's commits (1.0: the engine costs nothing beyond its durable writes).
//! - In flight (`--in-flight M`): M sagas whose one step waits (`test_sleep`), all running
//!   at once; reports resident memory.
//! - Remote (`--url`): the throughput run against a running host over its REST API.

mod counting;
mod remote;
mod waits;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Map, json};
use sqlx::{AnyPool, Executor};

use crate::config::Config;
use crate::engine::{Engine, EngineConfig, ParallelGroup, StepEntry, TxStatus};
use crate::plugin::{Limits, PluginRuntime, RuntimeOptions};
use crate::store::{AdminReads, Dialect, SqlStore, TxStore};

use counting::CountingStore;

/// Sagas recorded but not yet started that in-flight mode lets build up before it waits.
const ADMISSION_BACKLOG: u64 = 256;

/// Flags of `rte bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Sagas to run.
    #[arg(long, default_value_t = 2000)]
    pub sagas: usize,
    /// Steps per saga, each a trivial wasm call.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// The testkit step every saga runs `--steps` times. `test_ok` touches no plugin state;
    /// `test_kv_counter` reads a key and writes it back (its commit checks the version it
    /// read), `test_kv_put` writes as many keys without reading (nothing to check). Each
    /// saga's input `key` is its own, so sagas never conflict.
    #[arg(long, default_value = "test_ok")]
    pub step: String,
    /// Run steps 2 to K+1 of each saga as one parallel group of K branches (0: every step
    /// runs alone). Branches must set different outputs: use `--step test_branch`.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub parallel: usize,
    /// Sagas running at once (and writers in the baseline).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Fraction of sagas whose last step fails permanently, so they compensate.
    #[arg(long, default_value_t = 0.0)]
    pub fail_ratio: f64,
    /// Store URL (default: a fresh SQLite file in the temp directory, removed afterwards).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Redis URL for locks (default: in-process locks). Each saga locks one key.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Directory holding the `testkit` plugin.
    #[arg(long, default_value = "./plugins")]
    pub plugins_dir: PathBuf,
    /// Print one JSON object on the last line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Memory mode: start M sagas whose step waits, all in flight at once.
    #[arg(long, value_name = "M")]
    pub in_flight: Option<usize>,
    /// Waits mode: start N sagas whose first step waits for a reply, all waiting at once
    /// (resident memory then), then deliver every reply at `--concurrency`.
    #[arg(long, value_name = "N")]
    pub waits: Option<usize>,
    /// How long the step of an in-flight saga waits, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub sleep_ms: u64,
    /// Drive a running host at this base URL (`http://host:port`) instead of an engine here.
    #[arg(long)]
    pub url: Option<String>,
    /// Measure both ways in one run: in-process, then over the REST API of a host this
    /// command starts on the same database (`rte serve` on a free loopback port), with
    /// the host's CPU time per saga.
    #[arg(long)]
    pub rest: bool,
    /// Bearer token for `--url`.
    #[arg(long)]
    pub admin_token: Option<String>,
}

/// Figures of a throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// Where the sagas ran: `in-process` or the host's URL.
    pub engine: String,
    /// The store.
    pub store: String,
    /// The lock service.
    pub locks: String,
    /// Sagas measured.
    pub sagas: usize,
    /// Steps per saga.
    pub steps: usize,
    /// Branches of the saga's parallel group (0: none).
    pub parallel: usize,
    /// Sagas at once.
    pub concurrency: usize,
    /// Fraction of sagas made to compensate.
    pub fail_ratio: f64,
    /// Sagas that ended `COMPLETED`.
    pub completed: usize,
    /// Sagas that ended `COMPENSATED`.
    pub compensated: usize,
    /// Sagas that ended otherwise than planned (should be 0).
    pub unexpected: usize,
    /// Wall time of the saga phase, seconds.
    pub elapsed_s: f64,
    /// Sagas finished per second.
    pub sagas_per_s: f64,
    /// Plugin calls (executes and compensations) per second.
    pub steps_per_s: f64,
    /// Median saga latency, start to end, ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Slowest saga, ms.
    pub max_ms: f64,
    /// Durable commits per saga, counted (none for a remote host).
    pub commits_per_saga: Option<f64>,
    /// Store reads per saga, counted (none for a remote host).
    pub reads_per_saga: Option<f64>,
    /// Single-row insert transactions per second at the same concurrency on the same pool.
    pub baseline_commits_per_s: Option<f64>,
    /// `sagas_per_s / (baseline_commits_per_s / commits_per_saga)`.
    pub ratio: Option<f64>,
    /// Peak resident memory of this process during the run, MiB.
    pub peak_rss_mb: Option<f64>,
    /// CPU time of the host per saga, ms (a host this command started, over REST).
    pub host_cpu_ms_per_saga: Option<f64>,
}

/// Both ways in one run (`--rest`): in-process, then over the REST API of a host on the
/// same database.
#[derive(Debug, Clone, Serialize)]
pub struct BothWaysReport {
    /// The engine driven in this process.
    pub in_process: ThroughputReport,
    /// The host driven over its REST API.
    pub rest: ThroughputReport,
    /// REST sagas/s as a fraction of in-process sagas/s.
    pub rest_ratio: f64,
}

/// Figures of an in-flight run.
#[derive(Debug, Clone, Serialize)]
pub struct InFlightReport {
    /// The store.
    pub store: String,
    /// The lock service.
    pub locks: String,
    /// Sagas started.
    pub sagas: usize,
    /// How long each step waited, ms.
    pub sleep_ms: u64,
    /// Most sagas in flight at one moment (sampled).
    pub peak_in_flight: usize,
    /// Sagas that ended `COMPLETED`.
    pub completed: usize,
    /// Wall time from the first start to the last end, seconds.
    pub elapsed_s: f64,
    /// Resident memory with the engine ready and no saga running, MiB.
    pub idle_rss_mb: Option<f64>,
    /// Peak resident memory while the sagas ran, MiB.
    pub peak_rss_mb: Option<f64>,
    /// `(peak - idle) / peak_in_flight`, KiB.
    pub rss_per_saga_kb: Option<f64>,
}

/// Run `rte bench` and print its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.sagas == 0 || args.steps == 0 || args.concurrency == 0 {
        bail!("--sagas, --steps and --concurrency must be at least 1");
    }
    if args.steps > crate::engine::MAX_STEPS {
        bail!("--steps may be at most {}", crate::engine::MAX_STEPS);
    }
    if args.parallel == 1 || (args.parallel > 1 && args.parallel + 1 > args.steps) {
        bail!("--parallel K needs K of at least 2 and --steps of at least K+1");
    }
    if !(0.0..=1.0).contains(&args.fail_ratio) {
        bail!("--fail-ratio must be between 0 and 1");
    }
    if let Some(n) = args.waits {
        if args.url.is_some() || args.rest {
            bail!("--waits measures this process; it cannot be combined with --url or --rest");
        }
        let report = waits::run(&args, n.max(1)).await?;
        match args.json {
            true => println!("{}", serde_json::to_string(&report)?),
            false => waits::print(&report),
        }
        return Ok(());
    }
    if let Some(m) = args.in_flight {
        if args.url.is_some() {
            bail!("--in-flight measures this process's memory; it cannot be combined with --url");
        }
        let report = in_flight(&args, m.max(1)).await?;
        match args.json {
            true => println!("{}", serde_json::to_string(&report)?),
            false => print_in_flight(&report),
        }
        return Ok(());
    }
    if args.rest {
        if args.url.is_some() {
            bail!("--rest starts a host of its own; it cannot be combined with --url");
        }
        let in_process = throughput(&args).await?;
        let host = remote::StartedHost::start(&args).await?;
        let rest = remote::throughput(&args, &host.url, host.pid()).await?;
        drop(host);
        let report = BothWaysReport {
            rest_ratio: rest.sagas_per_s / in_process.sagas_per_s,
            in_process,
            rest,
        };
        match args.json {
            true => println!("{}", serde_json::to_string(&report)?),
            false => {
                print_throughput(&report.in_process);
                print_throughput(&report.rest);
                println!(
                    "REST / in-process sagas/s: {:.2}; host CPU per saga over REST: {} ms",
                    report.rest_ratio,
                    report
                        .rest
                        .host_cpu_ms_per_saga
                        .map_or("n/a".into(), |c| format!("{c:.3}"))
                );
            }
        }
        return Ok(());
    }
    let report = match &args.url {
        Some(url) => remote::throughput(&args, url, None).await?,
        None => throughput(&args).await?,
    };
    match args.json {
        true => println!("{}", serde_json::to_string(&report)?),
        false => print_throughput(&report),
    }
    Ok(())
}

/// Which sagas end in a failing step: spread evenly, `fail_ratio` of them.
fn fails(i: usize, ratio: f64) -> bool {
    ((i + 1) as f64 * ratio).floor() > (i as f64 * ratio).floor()
}

/// The steps of saga `i`: `--steps` of `--step`, the last one failing for a `--fail-ratio`
/// of them, steps 2 to K+1 a group for `--parallel K`.
fn saga_steps(args: &BenchArgs, i: usize) -> Vec<StepEntry> {
    let mut names = vec![args.step.clone(); args.steps];
    if fails(i, args.fail_ratio) {
        names[args.steps - 1] = "test_fail".into();
    }
    if args.parallel < 2 {
        return names.into_iter().map(StepEntry::Step).collect();
    }
    let rest = names.split_off(1 + args.parallel);
    let branches = names.split_off(1);
    let mut steps: Vec<StepEntry> = names.into_iter().map(StepEntry::Step).collect();
    steps.push(StepEntry::Parallel(ParallelGroup {
        parallel: branches,
        max_concurrent: None,
    }));
    steps.extend(rest.into_iter().map(StepEntry::Step));
    steps
}

/// Plugin calls a saga of `k` steps makes: every execute, plus the compensations of the
/// completed steps when it failed at the last.
fn step_calls(k: usize, compensated: bool) -> usize {
    if compensated { 2 * k - 1 } else { k }
}

/// An engine set up here for a run.
struct Bench {
    engine: Engine,
    store: Arc<CountingStore>,
    sql: Arc<SqlStore>,
    pool: AnyPool,
    dialect: Dialect,
    locks: String,
    temp: Option<TempDb>,
}

impl Bench {
    async fn start(
        args: &BenchArgs,
        needs: &[&str],
        max_instances: u32,
        step_timeout: Duration,
    ) -> anyhow::Result<Bench> {
        let runtime = plugins(args, needs, max_instances, step_timeout).await?;
        let temp = args.database_url.is_none().then(TempDb::new);
        let url = match (&args.database_url, &temp) {
            (Some(url), _) => url.clone(),
            (None, Some(t)) => format!("sqlite://{}", t.0.display()),
            (None, None) => unreachable!("a temp database is made when no URL is given"),
        };
        let sql = SqlStore::connect_with(&url, &bench_store_options()).await?;
        sql.migrate().await?;
        let (pool, dialect) = (sql.pool().clone(), sql.dialect());
        let sql = Arc::new(sql);
        let store = Arc::new(CountingStore::new(sql.clone()));
        let prefix = format!("rte-bench:{}:", uuid::Uuid::now_v7().simple());
        let locks = crate::lock::from_url(args.redis_url.as_deref(), &prefix).await?;
        let mut config = EngineConfig::default();
        config.tx_timeout = config.tx_timeout.max(step_timeout * 2);
        let engine = Engine::builder(store.clone(), runtime)
            .locks(locks.clone())
            .config(config)
            .build();
        Ok(Bench {
            engine,
            store,
            sql,
            pool,
            dialect,
            locks: locks.summary(),
            temp,
        })
    }

    async fn stop(self) {
        drop(self.engine);
        self.sql.release_idle();
        drop((self.store, self.sql));
        self.pool.close().await;
        drop(self.temp);
    }
}

/// The plugin runtime with the plugins of `args.plugins_dir`, checked to provide `needs`.
async fn plugins(
    args: &BenchArgs,
    needs: &[&str],
    max_instances: u32,
    step_timeout: Duration,
) -> anyhow::Result<Arc<PluginRuntime>> {
    let dir = &args.plugins_dir;
    if !dir.is_dir() {
        bail!(
            "plugins directory {} does not exist: build the testkit plugin (scripts/bench.sh does) or pass --plugins-dir",
            dir.display()
        );
    }
    let defaults = Config::default();
    let runtime = PluginRuntime::new(RuntimeOptions {
        limits: Limits {
            timeout: step_timeout,
            ..Limits::from_config(&defaults)
        },
        cache_dir: std::path::absolute(dir.join(".rte-cache")).ok(),
        max_instances,
    })?;
    runtime.load_dir(dir).await;
    for step in needs {
        if runtime.plugin_for(step).is_none() {
            bail!(
                "no plugin in {} provides step `{step}`: it comes with the testkit plugin \
                 (build it with scripts/bench.sh, or pass --plugins-dir)",
                dir.display()
            );
        }
    }
    Ok(Arc::new(runtime))
}

/// One saga's outcome and latency.
struct Finished {
    latency_ms: f64,
    status: Option<TxStatus>,
    planned_failure: bool,
    error: Option<String>,
}

async fn throughput(args: &BenchArgs) -> anyhow::Result<ThroughputReport> {
    let mut needs = vec![args.step.as_str()];
    if args.fail_ratio > 0.0 {
        needs.push("test_fail");
    }
    let step_timeout = Config::default().step_timeout;
    let max_instances = (args.concurrency as u32 + 16).max(1000);
    let bench = Bench::start(args, &needs, max_instances, step_timeout).await?;
    // Warm up (first instantiations, pool connections, statement caches), then measure.
    let warmup = args.concurrency.min(args.sagas);
    run_sagas(&bench.engine, args, warmup, args.sagas).await;
    bench.store.counts.reset();
    reset_peak_rss();
    let started = Instant::now();
    let finished = run_sagas(&bench.engine, args, args.sagas, 0).await;
    let elapsed = started.elapsed();
    let commits = bench.store.counts.commits.load(Ordering::Relaxed) as f64;
    let reads = bench.store.counts.reads.load(Ordering::Relaxed) as f64;
    let window = elapsed.clamp(Duration::from_secs(1), Duration::from_secs(10));
    bench.sql.release_idle();
    let baseline = baseline(&bench.pool, bench.dialect, args.concurrency, window).await?;
    let mut report = summarise(args, &finished, elapsed);
    report.engine = "in-process".into();
    report.store = bench.store.summary();
    report.locks = bench.locks.clone();
    report.commits_per_saga = Some(commits / args.sagas as f64);
    report.reads_per_saga = Some(reads / args.sagas as f64);
    report.baseline_commits_per_s = Some(baseline);
    report.ratio = Some(report.sagas_per_s / (baseline / (commits / args.sagas as f64)));
    report.peak_rss_mb = peak_rss_mb();
    bench.stop().await;
    Ok(report)
}

/// Run sagas `offset..offset + n` at `args.concurrency`, each to its end.
async fn run_sagas(engine: &Engine, args: &BenchArgs, n: usize, offset: usize) -> Vec<Finished> {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency.min(n))
        .map(|_| {
            let (engine, args, next) = (engine.clone(), args.clone(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return done;
                    }
                    done.push(one_saga(&engine, &args, offset + i).await);
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await.unwrap_or_default());
    }
    all
}

async fn one_saga(engine: &Engine, args: &BenchArgs, i: usize) -> Finished {
    let started = Instant::now();
    let mut input = Map::new();
    input.insert("n".into(), json!(i));
    input.insert("key".into(), json!(format!("bench-{i}")));
    let tx = engine.transaction_from_request(
        Some("bench".into()),
        Some(saga_steps(args, i)),
        input,
        vec![format!("bench:{i}")],
        None,
        None,
        None,
        None,
    );
    let result = match tx {
        Ok(tx) => engine.execute(tx).await,
        Err(e) => Err(e),
    };
    let (status, error) = match result {
        Ok(r) => (Some(r.status), r.error),
        Err(e) => (None, Some(e.to_string())),
    };
    Finished {
        latency_ms: started.elapsed().as_secs_f64() * 1e3,
        status,
        planned_failure: fails(i, args.fail_ratio),
        error,
    }
}

/// The figures every throughput run has, from its sagas' outcomes.
fn summarise(args: &BenchArgs, finished: &[Finished], elapsed: Duration) -> ThroughputReport {
    let mut latencies: Vec<f64> = finished.iter().map(|f| f.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let as_planned = |f: &&Finished| match f.planned_failure {
        false => f.status == Some(TxStatus::Completed),
        true => f.status == Some(TxStatus::Compensated),
    };
    let completed = finished
        .iter()
        .filter(as_planned)
        .filter(|f| !f.planned_failure)
        .count();
    let compensated = finished.iter().filter(as_planned).count() - completed;
    let unexpected = finished.len() - completed - compensated;
    if let Some(f) = finished.iter().find(|f| !as_planned(f)) {
        eprintln!(
            "warning: {unexpected} sagas ended otherwise than planned; one ended {} ({})",
            f.status.map_or("with an error", |s| s.as_str()),
            f.error.as_deref().unwrap_or("no error")
        );
    }
    let calls =
        completed * step_calls(args.steps, false) + compensated * step_calls(args.steps, true);
    let secs = elapsed.as_secs_f64();
    ThroughputReport {
        engine: String::new(),
        store: String::new(),
        locks: String::new(),
        sagas: finished.len(),
        steps: args.steps,
        parallel: args.parallel,
        concurrency: args.concurrency,
        fail_ratio: args.fail_ratio,
        completed,
        compensated,
        unexpected,
        elapsed_s: secs,
        sagas_per_s: finished.len() as f64 / secs,
        steps_per_s: calls as f64 / secs,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or_default(),
        commits_per_saga: None,
        reads_per_saga: None,
        baseline_commits_per_s: None,
        ratio: None,
        peak_rss_mb: None,
        host_cpu_ms_per_saga: None,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The backend's raw commit rate: `concurrency` writers, each committing one single-row
/// insert per transaction into a scratch table on `pool`, for `window`.
async fn baseline(
    pool: &AnyPool,
    dialect: Dialect,
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<f64> {
    pool.execute("DROP TABLE IF EXISTS rte_bench_scratch")
        .await?;
    pool.execute(
        "CREATE TABLE rte_bench_scratch (id VARCHAR(64) PRIMARY KEY, payload TEXT NOT NULL)",
    )
    .await
    .context("cannot create the baseline's scratch table")?;
    let insert = Arc::new(
        dialect
            .sql("INSERT INTO rte_bench_scratch (id, payload) VALUES (?, ?)")
            .into_owned(),
    );
    // About the size of a saga row's changing columns.
    let payload = Arc::new(format!(
        r#"{{"status":"EXECUTING","outputs":{{"n":1}},"pad":"{}"}}"#,
        "x".repeat(160)
    ));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + window;
    let writers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (pool, insert, payload, count) =
                (pool.clone(), insert.clone(), payload.clone(), count.clone());
            tokio::spawn(async move {
                // Each writer holds one connection, as the engine's store does. Writers
                // beyond the pool's size wait their turn like the engine's would.
                let mut conn = loop {
                    match tokio::time::timeout_at(deadline.into(), pool.acquire()).await {
                        Err(_) => return Ok(()),
                        Ok(Err(sqlx::Error::PoolTimedOut)) => continue,
                        Ok(conn) => break conn?,
                    }
                };
                while Instant::now() < deadline {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    sqlx::query(&insert)
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(payload.as_str())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, sqlx::Error>(())
            })
        })
        .collect();
    for w in writers {
        w.await?.context("baseline insert failed")?;
    }
    let rate = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    pool.execute("DROP TABLE IF EXISTS rte_bench_scratch")
        .await?;
    Ok(rate)
}

/// In-flight saga `i`: one step that waits `sleep_ms`.
fn sleeper(engine: &Engine, i: usize, sleep_ms: u64) -> crate::Result<crate::Transaction> {
    let mut input = Map::new();
    input.insert("sleep_ms".into(), json!(sleep_ms));
    engine.transaction_from_request(
        Some("bench_in_flight".into()),
        Some(vec!["test_sleep".into()]),
        input,
        vec![format!("bench:{i}")],
        None,
        None,
        None,
        None,
    )
}

async fn in_flight(args: &BenchArgs, m: usize) -> anyhow::Result<InFlightReport> {
    // Each waiting step holds a live instance: size the pool for all of them.
    let step_timeout = Duration::from_millis(args.sleep_ms) + Duration::from_secs(60);
    let bench = Bench::start(args, &["test_sleep"], m as u32 + 64, step_timeout).await?;
    let engine = &bench.engine;
    engine.execute(sleeper(engine, usize::MAX, 1)?).await?;
    let idle = current_rss_mb();
    reset_peak_rss();
    bench.store.counts.reset();
    let started = Instant::now();
    let submitted = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (engine, submitted) = (engine.clone(), submitted.clone());
        tokio::spawn(async move {
            let mut peak = 0;
            loop {
                let done = submitted.load(Ordering::Relaxed);
                let now = engine.in_flight();
                peak = peak.max(now);
                if done && now == 0 {
                    return peak;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Submit from a few tasks; hold back while recorded sagas wait to start, so the pool
    // queue stays short (a driver that cannot get a connection pauses its saga).
    let next = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..16)
        .map(|_| {
            let (engine, store, next) = (engine.clone(), bench.store.clone(), next.clone());
            let sleep_ms = args.sleep_ms;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= m {
                        return Ok::<_, crate::Error>(());
                    }
                    while store.counts.backlog() > ADMISSION_BACKLOG {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    let tx = sleeper(&engine, i, sleep_ms)?;
                    engine.submit(tx).await?;
                }
            })
        })
        .collect();
    for s in submitters {
        s.await?.context("cannot start a saga")?;
    }
    submitted.store(true, Ordering::Relaxed);
    let peak_in_flight = sampler.await?;
    let elapsed = started.elapsed();
    let peak = peak_rss_mb();
    let completed: u64 = bench
        .store
        .stats()
        .await?
        .iter()
        .filter(|c| c.status == TxStatus::Completed && c.tx_type == "bench_in_flight")
        .map(|c| c.count)
        .sum::<u64>()
        .saturating_sub(1);
    let report = InFlightReport {
        store: bench.store.summary(),
        locks: bench.locks.clone(),
        sagas: m,
        sleep_ms: args.sleep_ms,
        peak_in_flight,
        completed: completed as usize,
        elapsed_s: elapsed.as_secs_f64(),
        idle_rss_mb: idle,
        peak_rss_mb: peak,
        rss_per_saga_kb: idle
            .zip(peak)
            .map(|(i, p)| (p - i) * 1024.0 / peak_in_flight.max(1) as f64),
    };
    bench.stop().await;
    Ok(report)
}

fn print_throughput(r: &ThroughputReport) {
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("n/a".to_string(), |v| format!("{v:.digits$}"));
    let shape = match r.parallel {
        0 => String::new(),
        k => format!(" (steps 2-{} a parallel group)", k + 1),
    };
    println!(
        "rte bench: {} sagas x {} steps{shape} at concurrency {}, fail ratio {:.2} ({})",
        r.sagas, r.steps, r.concurrency, r.fail_ratio, r.engine
    );
    println!("  store                {}", r.store);
    println!("  locks                {}", r.locks);
    println!(
        "  outcomes             {} completed, {} compensated, {} unexpected",
        r.completed, r.compensated, r.unexpected
    );
    println!("  sagas/s              {:.1}", r.sagas_per_s);
    println!("  step calls/s         {:.1}", r.steps_per_s);
    println!(
        "  latency ms           p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms
    );
    println!(
        "  commits per saga     {}  (reads {})",
        opt(r.commits_per_saga, 2),
        opt(r.reads_per_saga, 2)
    );
    println!(
        "  baseline commits/s   {}  (single-row insert transactions, same pool, concurrency {})",
        opt(r.baseline_commits_per_s, 1),
        r.concurrency
    );
    println!(
        "  ratio                {}  (sagas/s over baseline/commits per saga)",
        opt(r.ratio, 3)
    );
    println!("  peak RSS MiB         {}", opt(r.peak_rss_mb, 1));
}

fn print_in_flight(r: &InFlightReport) {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    println!(
        "rte bench --in-flight: {} sagas whose step waits {} ms",
        r.sagas, r.sleep_ms
    );
    println!("  store                {}", r.store);
    println!("  locks                {}", r.locks);
    println!("  peak in flight       {}", r.peak_in_flight);
    println!("  completed            {}", r.completed);
    println!("  elapsed s            {:.1}", r.elapsed_s);
    println!("  idle RSS MiB         {}", opt(r.idle_rss_mb));
    println!("  peak RSS MiB         {}", opt(r.peak_rss_mb));
    println!("  RSS per saga KiB     {}", opt(r.rss_per_saga_kb));
}

/// A `/proc/self/status` figure in MiB (Linux only).
fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Peak resident memory since start, or since the last [`reset_peak_rss`].
fn peak_rss_mb() -> Option<f64> {
    proc_status_mb("VmHWM:")
}

fn current_rss_mb() -> Option<f64> {
    proc_status_mb("VmRSS:")
}

/// Start the peak over from the current resident size, so startup (compiling plugins)
/// does not count. Linux only; elsewhere a no-op.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A SQLite file in the temp directory, removed with its journal files on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        let name = format!("rte-bench-{}.db", uuid::Uuid::now_v7().simple());
        TempDb(std::env::temp_dir().join(name))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(Path::new(&path));
        }
    }
}

/// The bench's connection pool: larger than a host's default, so the database, not the
/// pool, is what a high concurrency measures.
fn bench_store_options() -> crate::store::StoreOptions {
    crate::store::StoreOptions {
        max_connections: 32,
        ..crate::store::StoreOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_spread_at_the_asked_ratio() {
        let n = (0..1000).filter(|&i| fails(i, 0.1)).count();
        assert_eq!(n, 100);
        assert!((0..1000).all(|i| !fails(i, 0.0)));
        assert!((0..1000).all(|i| fails(i, 1.0)));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
        assert_eq!(percentile(&[], 95.0), 0.0);
    }
}
