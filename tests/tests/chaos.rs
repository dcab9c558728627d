//! Chaos, on PostgreSQL and on MariaDB: four `rte serve` processes share one database (each
//! through its own TCP proxy) and a Redis this test owns. Fund transfers (a third of them
//! with debit and credit in a parallel group) go in concurrently
//! while the bank plugin injects retryable errors, permanent errors, traps and slow steps,
//! and at random moments a host is killed (SIGKILL) and restarted, a host is paused
//! (SIGSTOP) longer than `lock_ttl` then resumed, all of one host's database connections are
//! cut, or Redis is killed and restarted. Afterwards every saga is terminal, one saga exists
//! per Idempotency-Key, every account holds to the cent its opening balance plus the effect
//! of each money step whose effect persists, and no lock is left in Redis.
//!
//! Sized for CI by default; `RTE_CHAOS_SAGAS`, `RTE_CHAOS_ACCOUNTS`, `RTE_CHAOS_CONCURRENCY` and
//! `RTE_CHAOS_SECONDS` (how long submission is spread over) change that. `scripts/chaos.sh`
//! runs it repeatedly at a larger size.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use rte_tests::faults::{OWN_REDIS_TESTS, OwnRedis, Proxy};
use rte_tests::rte_host::engine::{StepStatus, TxStatus};
use rte_tests::rte_host::store::{self, TxFilter, TxStore};
use rte_tests::{Backend, backends, fresh_database, plugin, repo_root, services_required};
use serde_json::{Value, json};

const HOSTS: usize = 4;
const OPENING_CENTS: i64 = 100_000;
/// Longest time faults are injected, however far submission got.
const FAULT_PHASE_MAX: Duration = Duration::from_secs(150);
/// Longest time one run may take, all phases included.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// `--set` values of every host: short lock and recovery times, so stalls outlast locks.
const SETTINGS: &[&str] = &[
    "redis_prefix=rte-chaos:",
    "recovery_interval=1s",
    "stuck_threshold=4s",
    "lock_ttl=3s",
    "lock_extend_period=1s",
    "lock_wait=3s",
    "retry_interval=50ms",
    "retry_max_interval=500ms",
    "step_timeout=2s",
    "max_retries=3",
    // Injected faults would open the shared `accounts` breaker and fail most
    // sagas fast; this test is about crashes, so the breaker stays out of the way.
    "circuit_threshold=100",
    // A small pool, so cuts and stalls leave hosts short of connections.
    "database_max_connections=8",
];

/// How big a run is, from the environment.
#[derive(Debug, Clone, Copy)]
struct Plan {
    sagas: usize,
    accounts: usize,
    concurrency: usize,
    /// Submissions are spread evenly over this long, so faults always meet sagas in flight.
    spread: Duration,
}

impl Plan {
    fn from_env() -> Self {
        let var = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            sagas: var("RTE_CHAOS_SAGAS", 300),
            accounts: var("RTE_CHAOS_ACCOUNTS", 30).max(2),
            concurrency: var("RTE_CHAOS_CONCURRENCY", 12).max(1),
            spread: Duration::from_secs(var("RTE_CHAOS_SECONDS", 40) as u64),
        }
    }
}

/// Faults injected so far, for the summary.
#[derive(Debug, Default)]
struct Faults {
    kills: usize,
    stops: usize,
    cuts: usize,
    redis_kills: usize,
    /// Hosts that exited on their own (a start while Redis was down) and were started again.
    respawns: usize,
}

/// One `rte serve` process and the proxy it reaches the database through.
struct Host {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    proxy: Proxy,
    /// Paused with SIGSTOP until then.
    stopped_until: Option<Instant>,
}

impl Host {
    fn pid(&self) -> Option<String> {
        self.child.as_ref().map(|c| c.id().to_string())
    }

    /// Send `signal` (`STOP`, `CONT`) to the process.
    fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid)
                .status();
        }
    }

    fn resume(&mut self) {
        if self.stopped_until.take().is_some() {
            self.signal("CONT");
        }
    }
}

struct Cluster {
    binary: PathBuf,
    work: tempfile::TempDir,
    /// The database URL for one host, with `{addr}` in place of its proxy's address.
    database_url: String,
    redis: OwnRedis,
    redis_back_at: Option<Instant>,
    hosts: Vec<Host>,
    faults: Faults,
}

impl Cluster {
    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let host = &mut self.hosts[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&host.log)?;
        let database_url = self
            .database_url
            .replace("{addr}", &host.proxy.addr().to_string());
        let child = Command::new(&self.binary)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", host.port)])
            .args(["--database-url", &database_url])
            .args(["--redis-url", &self.redis.url()])
            .args([
                "--plugins-dir",
                &self.work.path().join("plugins").display().to_string(),
            ])
            .args([
                "--sagas-file",
                &repo_root().join("sagas.toml").display().to_string(),
            ])
            .args(SETTINGS.iter().flat_map(|s| ["--set", s]))
            .env("RUST_LOG", "warn,rte_host=info")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        host.child = Some(child);
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        host.stopped_until = None;
        if let Some(mut child) = host.child.take() {
            let _ = child.kill(); // SIGKILL, which also ends a stopped process
            let _ = child.wait();
        }
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.hosts[i].port)
    }

    /// Inject one fault, chosen at random, into a random host or Redis.
    async fn inject(&mut self, rng: &mut impl Rng) -> anyhow::Result<()> {
        let victim = rng.random_range(0..HOSTS);
        match rng.random_range(0..4) {
            0 => {
                self.kill(victim);
                self.faults.kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
                self.spawn(victim)?;
            }
            1 if self.hosts[victim].stopped_until.is_none() => {
                // Longer than lock_ttl (3 s): its locks expire while it holds them.
                let pause = Duration::from_millis(rng.random_range(3000..8000));
                let host = &mut self.hosts[victim];
                host.signal("STOP");
                host.stopped_until = Some(Instant::now() + pause);
                self.faults.stops += 1;
            }
            2 => {
                self.hosts[victim].proxy.cut_connections();
                self.faults.cuts += 1;
            }
            3 if self.redis_back_at.is_none() => {
                self.redis.kill().await;
                self.redis_back_at =
                    Some(Instant::now() + Duration::from_millis(rng.random_range(1000..3000)));
                self.faults.redis_kills += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// Start again, as a service manager would, every host that exited on its own (a host
    /// refuses to start while Redis is unreachable).
    fn supervise(&mut self) -> anyhow::Result<()> {
        for i in 0..HOSTS {
            let exited = self.hosts[i]
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.hosts[i].child = None;
                self.faults.respawns += 1;
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Every host ready, restarting those that exited meanwhile.
    async fn wait_all_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        for i in 0..HOSTS {
            let url = self.url(i);
            loop {
                self.supervise()?;
                let ready = http
                    .get(format!("{url}/readyz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!("{url} did not become ready\n{}", self.logs());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Undo the faults whose time is up (all of them with `all`).
    async fn heal(&mut self, all: bool) {
        let now = Instant::now();
        for host in &mut self.hosts {
            if all || host.stopped_until.is_some_and(|t| t <= now) {
                host.resume();
            }
        }
        if self.redis_back_at.is_some_and(|t| all || t <= now) {
            self.redis.restart().await;
            self.redis_back_at = None;
        }
    }

    /// The last lines of every host's log that mention `needle`.
    fn lines_about(&self, needle: &str) -> String {
        let mut out = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let text = std::fs::read_to_string(&h.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
            for line in &lines[lines.len().saturating_sub(15)..] {
                out.push(format!("  host {i}: {line}"));
            }
        }
        out.join("\n")
    }

    fn logs(&self) -> String {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let text = std::fs::read_to_string(&h.log).unwrap_or_default();
                let errors: Vec<&str> = text
                    .lines()
                    .filter(|l| l.starts_with("Error") || l.contains(" ERROR "))
                    .take(10)
                    .collect();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "--- host {i}: first errors ---\n{}\n--- host {i}: last lines ---\n{}",
                    errors.join("\n"),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.hosts.len() {
            self.hosts[i].resume();
            self.kill(i);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// POST a saga to any live host, with an idempotency key so a retry after a host died
/// mid-request never creates a second saga.
async fn submit(
    http: &reqwest::Client,
    urls: &[String],
    key: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let mut last = String::new();
    for attempt in 0..200 {
        let url = &urls[(attempt + key.len()) % urls.len()];
        match http
            .post(format!("{url}/api/transactions"))
            .header("Idempotency-Key", key)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await?;
                return Ok(v["tx_id"].as_str().context("tx_id")?.to_string());
            }
            Ok(r) => last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("could not submit {key}: {last}")
}

/// One transfer of the run: from, to, cents.
type Transfer = (String, String, i64);

/// Submit every transfer, `concurrency` at a time; returns each saga's id and index.
fn submit_all(
    http: &reqwest::Client,
    urls: &[String],
    transfers: &[Transfer],
    run: &str,
    plan: Plan,
) -> tokio::task::JoinHandle<anyhow::Result<Vec<(String, usize)>>> {
    use futures::StreamExt;
    let (http, urls, transfers, run) = (
        http.clone(),
        urls.to_vec(),
        transfers.to_vec(),
        run.to_string(),
    );
    let start = tokio::time::Instant::now();
    tokio::spawn(async move {
        futures::stream::iter(transfers.into_iter().enumerate())
            .map(|(i, (from, to, cents))| {
                let (http, urls, key) = (&http, &urls, format!("chaos-{run}-{i}"));
                let due = start + plan.spread.mul_f64(i as f64 / plan.sagas as f64);
                async move {
                    tokio::time::sleep_until(due).await;
                    // Every third transfer debits and credits at once (a parallel group).
                    let tx_type = if i % 3 == 2 { "fund_transfer_parallel" } else { "fund_transfer" };
                    let body = json!({
                        "tx_type": tx_type,
                        "input": {
                            "from_account": from, "to_account": to, "amount": cents as f64 / 100.0, "currency": "EUR",
                            "chaos": {"retryable": 0.15, "permanent": 0.03, "trap": 0.03, "slow": 0.1, "slow_ms": 300}
                        }
                    });
                    Ok((submit(http, urls, &key, &body).await?, i))
                }
            })
            .buffer_unordered(plan.concurrency)
            .collect::<Vec<anyhow::Result<_>>>()
            .await
            .into_iter()
            .collect()
    })
}

/// Wait until no saga is open; fails after 180 s.
async fn drain(store: &dyn TxStore, cluster: &Cluster) -> anyhow::Result<Duration> {
    let open = vec![
        TxStatus::Created,
        TxStatus::Locked,
        TxStatus::Executing,
        TxStatus::Confirming,
        TxStatus::Compensating,
    ];
    let started = Instant::now();
    loop {
        let page = store
            .list(&TxFilter {
                statuses: open.clone(),
                limit: 5,
                ..TxFilter::default()
            })
            .await?;
        if page.total == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(180) {
            let mut stuck = String::new();
            for tx in &page.items {
                let steps = store
                    .get(&tx.tx_id)
                    .await?
                    .map(|(_, s)| s)
                    .unwrap_or_default();
                stuck += &format!(
                    "{} {} step {} version {} updated {} ms ago, error {:?}, steps {:?}\n{}\n",
                    tx.tx_id,
                    tx.status,
                    tx.current_step,
                    tx.version,
                    store::now_ms() - tx.updated_at,
                    tx.last_error,
                    steps
                        .iter()
                        .map(|s| (s.status, s.attempts, s.error.clone()))
                        .collect::<Vec<_>>(),
                    cluster.lines_about(&tx.tx_id),
                );
            }
            bail!(
                "{} sagas still running after 180 s\n{stuck}{}",
                page.total,
                cluster.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn units(cents: i64) -> String {
    format!("{:.2}", cents as f64 / 100.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sagas_survive_kills_stalls_cuts_and_redis_loss() -> anyhow::Result<()> {
    run(Backend::Postgres, Plan::from_env()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_sagas_survive_kills_stalls_cuts_and_redis_loss() -> anyhow::Result<()> {
    run(Backend::MySql, Plan::from_env()).await
}

/// Run the chaos on `backend` at the size of `plan`, within [`RUN_LIMIT`] (dropping the
/// cluster on timeout stops its processes).
async fn run(backend: Backend, plan: Plan) -> anyhow::Result<()> {
    tokio::time::timeout(RUN_LIMIT, run_unbounded(backend, plan))
        .await
        .with_context(|| format!("{backend:?}: chaos run took over {RUN_LIMIT:?}"))?
}

async fn run_unbounded(backend: Backend, plan: Plan) -> anyhow::Result<()> {
    if !backends().contains(&backend) {
        assert!(!services_required(), "chaos needs {backend:?}");
        eprintln!("skipping chaos: {backend:?} is not running");
        return Ok(());
    }
    // The runs take turns: each loads the two cores fully, and each kills its own Redis.
    let _one_at_a_time = OWN_REDIS_TESTS.lock().await;
    let Some(redis) = OwnRedis::start_on_free_port().await else {
        return Ok(());
    };
    let binary = rte_tests::rte_binary()?;
    let run = format!("{:x}", rand::rng().random::<u32>());
    let work = tempfile::tempdir()?;
    std::fs::create_dir_all(work.path().join("plugins"))?;
    std::fs::copy(plugin("bank"), work.path().join("plugins/bank.wasm"))?;
    let database_url = fresh_database(backend, work.path()).await?;
    let upstream = match backend {
        Backend::Postgres => "127.0.0.1:5432",
        Backend::MySql => "127.0.0.1:3306",
        Backend::Sqlite => bail!("chaos needs a shared database"),
    };
    let mut hosts = Vec::new();
    for i in 0..HOSTS {
        hosts.push(Host {
            port: free_port(),
            child: None,
            log: work.path().join(format!("host{i}.log")),
            proxy: Proxy::start(upstream).await?,
            stopped_until: None,
        });
    }
    let mut cluster = Cluster {
        binary,
        work,
        database_url: database_url.replace(upstream, "{addr}"),
        redis,
        redis_back_at: None,
        hosts,
        faults: Faults::default(),
    };
    let http = reqwest::Client::new();
    let urls: Vec<String> = (0..HOSTS).map(|i| cluster.url(i)).collect();
    // All hosts start at once on the fresh database: they take turns migrating it.
    for i in 0..HOSTS {
        cluster.spawn(i)?;
    }
    cluster.wait_all_ready(&http).await?;

    let accounts: Vec<String> = (0..plan.accounts).map(|i| format!("acct-{i}")).collect();
    for a in &accounts {
        let r = http
            .post(format!("{}/api/transactions?wait=30s", urls[0]))
            .json(&json!({"tx_type": "open_account", "input": {"account_id": a, "balance": OPENING_CENTS as f64 / 100.0}}))
            .send()
            .await?;
        let v: Value = r.json().await?;
        anyhow::ensure!(v["status"] == "COMPLETED", "opening {a}: {v}");
    }

    // The transfers: random pairs and amounts, with faults injected by the plugin.
    let mut rng = rand::rng();
    let transfers: Vec<Transfer> = (0..plan.sagas)
        .map(|_| {
            let from = rng.random_range(0..plan.accounts);
            let to = (from + rng.random_range(1..plan.accounts)) % plan.accounts;
            (
                accounts[from].clone(),
                accounts[to].clone(),
                rng.random_range(1..=5_000),
            )
        })
        .collect();
    let started = Instant::now();
    let submitter = submit_all(&http, &urls, &transfers, &run, plan);

    // Faults at random moments while sagas are in flight, healed when their time is up.
    let mut next_fault = Instant::now() + Duration::from_millis(rng.random_range(500..1500));
    while !submitter.is_finished() || started.elapsed() < Duration::from_secs(12) {
        if started.elapsed() > FAULT_PHASE_MAX {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        cluster.heal(false).await;
        cluster.supervise()?;
        if Instant::now() >= next_fault {
            cluster.inject(&mut rng).await?;
            next_fault = Instant::now() + Duration::from_millis(rng.random_range(500..2000));
        }
    }
    cluster.heal(true).await;
    let submitted = submitter.await??;
    anyhow::ensure!(
        submitted.len() == plan.sagas,
        "submitted {} of {}",
        submitted.len(),
        plan.sagas
    );
    let mut ids: Vec<&String> = submitted.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    anyhow::ensure!(
        ids.len() == plan.sagas,
        "idempotency keys made {} sagas for {} requests",
        ids.len(),
        plan.sagas
    );
    cluster.wait_all_ready(&http).await?;

    // Drain: every saga reaches a terminal status, recovered by whichever host is alive.
    let store = store::from_url(&database_url).await?;
    let drained_in = drain(store.as_ref(), &cluster).await?;

    // Money: each debit or credit whose execute committed and whose compensation did not
    // (COMPLETED or COMPENSATION_FAILED) moved its amount once; no other step moved any.
    let mut expected: HashMap<&str, i64> = accounts
        .iter()
        .map(|a| (a.as_str(), OPENING_CENTS))
        .collect();
    let mut by_status: HashMap<TxStatus, usize> = HashMap::new();
    for (tx_id, i) in &submitted {
        let (tx, steps) = store.get(tx_id).await?.context("saga exists")?;
        anyhow::ensure!(tx.status.is_terminal(), "{tx_id} ended {}", tx.status);
        *by_status.entry(tx.status).or_default() += 1;
        let (from, to, cents) = &transfers[*i];
        for step in &steps {
            let persists = matches!(
                step.status,
                StepStatus::Completed | StepStatus::CompensationFailed
            );
            match step.step_name.as_str() {
                "debit" if persists => *expected.get_mut(from.as_str()).unwrap() -= cents,
                "credit" if persists => *expected.get_mut(to.as_str()).unwrap() += cents,
                _ => {}
            }
        }
        if tx.status == TxStatus::Completed {
            anyhow::ensure!(
                steps.iter().all(|s| s.status == StepStatus::Completed),
                "{tx_id} COMPLETED with steps {:?}",
                steps.iter().map(|s| s.status).collect::<Vec<_>>()
            );
        }
    }
    let mut total = 0;
    let mut wrong = Vec::new();
    for a in &accounts {
        let stored: Value = serde_json::from_str(
            &store
                .kv_get("bank", &format!("account/{a}"))
                .await?
                .context("account")?,
        )?;
        let cents = stored["balance_cents"].as_i64().context("balance_cents")?;
        total += cents;
        let want = expected[a.as_str()];
        if cents != want {
            wrong.push(format!(
                "{a}: {} (expected {}, off by {})",
                units(cents),
                units(want),
                units(cents - want)
            ));
        }
    }
    let expected_total: i64 = expected.values().sum();
    let mut outcomes: Vec<_> = by_status.iter().map(|(s, n)| format!("{s}={n}")).collect();
    outcomes.sort();
    let faults = &cluster.faults;
    println!(
        "chaos {backend:?}: {} sagas, {} accounts, {} kills, {} stops, {} cuts, {} redis kills, {} respawns; \
         {}; total {} (expected {}), {} accounts off; drained in {:.1}s, took {:.1}s",
        plan.sagas,
        plan.accounts,
        faults.kills,
        faults.stops,
        faults.cuts,
        faults.redis_kills,
        faults.respawns,
        outcomes.join(" "),
        units(total),
        units(expected_total),
        wrong.len(),
        drained_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        wrong.is_empty() && total == expected_total,
        "{backend:?}: money is off: total {} (expected {}); {}",
        units(total),
        units(expected_total),
        wrong.join("; ")
    );

    // No lock outlives the run: held ones are released, a killed host's expire by TTL. A
    // driver whose last commit landed but whose answer was lost with a cut connection holds
    // its locks until the bounded store call gives up (three statement timeouts, 30 s) and
    // it settles that commit; past that, a lock still held is a driver that never ends.
    let client = redis::Client::open(cluster.redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    let held = loop {
        let held: Vec<String> = redis::cmd("KEYS")
            .arg("rte-chaos:lock:*")
            .query_async(&mut conn)
            .await?;
        if held.is_empty() || tokio::time::Instant::now() >= until {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(held.is_empty(), "{backend:?}: locks left held: {held:?}");

    assert!(
        faults.kills >= 1 && faults.stops >= 1 && faults.cuts >= 1 && faults.redis_kills >= 1,
        "{backend:?}: every kind of fault must happen: {faults:?}"
    );
    assert!(
        by_status.get(&TxStatus::Completed).copied().unwrap_or(0) > plan.sagas / 2,
        "{backend:?}: {by_status:?}"
    );
    Ok(())
}
