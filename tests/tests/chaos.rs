//! Chaos: three `rte serve` processes share the real PostgreSQL and Redis; 500 fund
//! transfers among 20 accounts go in concurrently while the bank plugin injects retryable
//! errors, permanent errors, traps and slow steps, and a random host is killed with SIGKILL
//! every few seconds and restarted. Afterwards every saga is terminal, money is conserved
//! exactly (each completed transfer moved its amount once, every other saga moved nothing),
//! and no lock is left held.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use rte_tests::rte_host::engine::TxStatus;
use rte_tests::rte_host::store::{self, TxFilter};
use rte_tests::{Backend, backends, fresh_database, plugin, repo_root, services_required};
use serde_json::{Value, json};

const HOSTS: usize = 3;
const ACCOUNTS: usize = 20;
const SAGAS: usize = 500;
const OPENING_CENTS: i64 = 100_000;

struct Host {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

struct Cluster {
    binary: PathBuf,
    work: tempfile::TempDir,
    database_url: String,
    redis_prefix: String,
    hosts: Vec<Host>,
}

impl Cluster {
    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let host = &mut self.hosts[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&host.log)?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", host.port)])
            .args(["--database-url", &self.database_url])
            .args(["--redis-url", "redis://127.0.0.1:6379"])
            .args(["--set", &format!("redis_prefix={}", self.redis_prefix)])
            .args([
                "--plugins-dir",
                &self.work.path().join("plugins").display().to_string(),
            ])
            .args([
                "--sagas-file",
                &repo_root().join("sagas.toml").display().to_string(),
            ])
            .args([
                "--set",
                "recovery_interval=1s",
                "--set",
                "stuck_threshold=4s",
            ])
            .args([
                "--set",
                "lock_ttl=3s",
                "--set",
                "lock_extend_period=1s",
                "--set",
                "lock_wait=3s",
            ])
            .args([
                "--set",
                "retry_interval=50ms",
                "--set",
                "retry_max_interval=500ms",
            ])
            .args(["--set", "step_timeout=2s", "--set", "max_retries=3"])
            // Injected faults would open the shared `accounts` breaker and fail most sagas
            // fast; this test is about crashes, so the breaker stays out of the way.
            .args(["--set", "circuit_threshold=100"])
            .env("RUST_LOG", "warn,rte_host=info")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        host.child = Some(child);
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.hosts[i].child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.hosts[i].port)
    }

    fn logs(&self) -> String {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let text = std::fs::read_to_string(&h.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "--- host {i} ---\n{}",
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

async fn wait_ready(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not become ready")
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
            .timeout(Duration::from_secs(10))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_survive_hosts_killed_at_random() -> anyhow::Result<()> {
    let redis_up = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
    if !backends().contains(&Backend::Postgres) || !redis_up {
        assert!(!services_required(), "chaos needs PostgreSQL and Redis");
        eprintln!("skipping chaos: PostgreSQL or Redis is not running");
        return Ok(());
    }
    let binary = rte_tests::rte_binary()?;
    // Redis keys of this run live under their own prefix, apart from any other run's.
    let run = format!("{:x}", rand::rng().random::<u32>());
    let redis_prefix = format!("rte-chaos-{run}:");
    let work = tempfile::tempdir()?;
    std::fs::create_dir_all(work.path().join("plugins"))?;
    std::fs::copy(plugin("bank"), work.path().join("plugins/bank.wasm"))?;
    let database_url = fresh_database(Backend::Postgres, work.path()).await?;
    let hosts = (0..HOSTS)
        .map(|i| Host {
            port: free_port(),
            child: None,
            log: work.path().join(format!("host{i}.log")),
        })
        .collect();
    let mut cluster = Cluster {
        binary,
        work,
        database_url: database_url.clone(),
        redis_prefix: redis_prefix.clone(),
        hosts,
    };
    let http = reqwest::Client::new();
    for i in 0..HOSTS {
        cluster.spawn(i)?;
    }
    let urls: Vec<String> = (0..HOSTS).map(|i| cluster.url(i)).collect();
    for url in &urls {
        wait_ready(&http, url).await?;
    }

    // Accounts, unique to this run.
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct-{run}-{i}")).collect();
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
    let plan: Vec<(String, String, i64)> = (0..SAGAS)
        .map(|_| {
            let from = rng.random_range(0..ACCOUNTS);
            let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
            (
                accounts[from].clone(),
                accounts[to].clone(),
                rng.random_range(1..=5_000),
            )
        })
        .collect();
    let started = Instant::now();
    let submitter = {
        let http = http.clone();
        let urls = urls.clone();
        let plan = plan.clone();
        let run = run.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let results: Vec<anyhow::Result<(String, usize)>> = futures::stream::iter(plan.into_iter().enumerate())
                .map(|(i, (from, to, cents))| {
                    let (http, urls, key) = (http.clone(), urls.clone(), format!("chaos-{run}-{i}"));
                    async move {
                        let body = json!({
                            "tx_type": "fund_transfer",
                            "input": {
                                "from_account": from, "to_account": to, "amount": cents as f64 / 100.0, "currency": "EUR",
                                "chaos": {"retryable": 0.15, "permanent": 0.03, "trap": 0.03, "slow": 0.1, "slow_ms": 300}
                            }
                        });
                        Ok((submit(&http, &urls, &key, &body).await?, i))
                    }
                })
                .buffer_unordered(12)
                .collect()
                .await;
            results
        })
    };

    // Kill a random host every 2–4 s while work goes in, and restart it shortly after.
    let mut kills = 0;
    while !submitter.is_finished() || started.elapsed() < Duration::from_secs(12) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2000..4000))).await;
        let victim = rng.random_range(0..HOSTS);
        cluster.kill(victim);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
        cluster.spawn(victim)?;
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let submitted: Vec<(String, usize)> = submitter
        .await?
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        submitted.len() == SAGAS,
        "submitted {} of {SAGAS}",
        submitted.len()
    );
    let mut ids: Vec<&String> = submitted.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    anyhow::ensure!(
        ids.len() == SAGAS,
        "idempotency keys made {} sagas for {SAGAS} requests",
        ids.len()
    );
    for url in &urls {
        wait_ready(&http, url).await?;
    }

    // Drain: every saga reaches a terminal status, recovered by whichever host is alive.
    let store = store::from_url(&database_url).await?;
    let open = vec![
        TxStatus::Created,
        TxStatus::Locked,
        TxStatus::Executing,
        TxStatus::Confirming,
        TxStatus::Compensating,
    ];
    let drain_started = Instant::now();
    loop {
        let left = store
            .list(&TxFilter {
                statuses: open.clone(),
                limit: 1,
                ..TxFilter::default()
            })
            .await?
            .total;
        if left == 0 {
            break;
        }
        if drain_started.elapsed() > Duration::from_secs(180) {
            bail!("{left} sagas still running after 180 s\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained_in = drain_started.elapsed();

    // Money: each completed transfer moved its amount exactly once; nothing else moved any.
    let mut expected: HashMap<&str, i64> = accounts
        .iter()
        .map(|a| (a.as_str(), OPENING_CENTS))
        .collect();
    let mut by_status: HashMap<TxStatus, usize> = HashMap::new();
    let mut recovered = 0;
    for (tx_id, i) in &submitted {
        let (tx, _) = store.get(tx_id).await?.context("saga exists")?;
        *by_status.entry(tx.status).or_default() += 1;
        if store
            .history(tx_id)
            .await?
            .iter()
            .any(|h| h.kind == "recovery")
        {
            recovered += 1;
        }
        match tx.status {
            TxStatus::Completed => {
                let (from, to, cents) = &plan[*i];
                *expected.get_mut(from.as_str()).unwrap() -= cents;
                *expected.get_mut(to.as_str()).unwrap() += cents;
            }
            TxStatus::Compensated | TxStatus::Failed | TxStatus::Timeout => {}
            TxStatus::CompensationFailed => {
                let error = tx.last_error.unwrap_or_default();
                assert!(error.contains("compensation"), "{tx_id}: {error}");
            }
            other => bail!("{tx_id} ended {other}"),
        }
    }
    let mut total = 0;
    for a in &accounts {
        let stored: Value = serde_json::from_str(
            &store
                .kv_get("bank", &format!("account/{a}"))
                .await?
                .context("account")?,
        )?;
        let cents = stored["balance_cents"].as_i64().context("balance_cents")?;
        total += cents;
        if !by_status.contains_key(&TxStatus::CompensationFailed) {
            assert_eq!(cents, expected[a.as_str()], "balance of {a}");
        }
    }
    assert_eq!(
        total,
        OPENING_CENTS * ACCOUNTS as i64,
        "money was created or destroyed"
    );

    // No lock outlives the run: held ones are released, a killed host's expire by TTL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = redis::Client::open("redis://127.0.0.1:6379")?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let held: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{redis_prefix}lock:*"))
        .query_async(&mut conn)
        .await?;
    assert!(held.is_empty(), "locks left held: {held:?}");
    let leftovers: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{redis_prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !leftovers.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&leftovers)
            .query_async(&mut conn)
            .await?;
    }

    println!(
        "chaos: {SAGAS} sagas over {HOSTS} hosts, {kills} kills, {recovered} sagas recovered, \
         drained in {:.1}s after submission (total {:.1}s); outcomes {by_status:?}",
        drained_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= 3, "the test must kill hosts");
    assert!(
        by_status.get(&TxStatus::Completed).copied().unwrap_or(0) > SAGAS / 2,
        "{by_status:?}"
    );
    Ok(())
}
