//! The throughput run over the REST API: workers start sagas with
//! `POST /api/transactions?wait=…`, which answers at the saga's end, through a pooled
//! keep-alive HTTP/1.1 client (hyper's). The host is one already running (`--url`) or one
//! this command starts on the same database (`--rest`), whose CPU time per saga it reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::{BenchArgs, Finished, TempDb, ThroughputReport, fails, saga_steps, summarise};
use crate::engine::TxStatus;
use crate::store::{SqlStore, TxStore};

/// Largest response body read.
const MAX_BODY: usize = 16 << 20;

/// Run the throughput measure against the host at `url`; `host_pid` is its process when
/// this command started it (its CPU time is then reported per saga).
pub(super) async fn throughput(
    args: &BenchArgs,
    url: &str,
    host_pid: Option<u32>,
) -> anyhow::Result<ThroughputReport> {
    let base = url.trim_end_matches('/').to_string();
    if !base.starts_with("http://") {
        bail!("--url `{url}` must start with http://");
    }
    let client = Client::new(&base, args.admin_token.clone(), args.concurrency);
    // One saga first: it checks the host answers and has the steps, and warms it up.
    let first = client.saga(args, 0).await?;
    if first.status.is_none() {
        bail!(
            "the host at {url} did not run a bench saga: {}",
            first.error.unwrap_or_default()
        );
    }
    // Then a round at full concurrency, unmeasured: the host opens its database connections
    // under load, which would otherwise land in the first measured seconds.
    let warmup = (0..args.concurrency).map(|j| client.saga(args, args.sagas + 1 + j));
    for warmed in futures::future::join_all(warmup).await {
        warmed?;
    }
    let cpu_before = host_pid.and_then(cpu_seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.min(args.sagas))
        .map(|_| {
            let (args, next, client) = (args.clone(), next.clone(), client.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.sagas {
                        return anyhow::Ok(done);
                    }
                    done.push(client.saga(&args, i + 1).await?);
                }
            })
        })
        .collect();
    let mut finished = Vec::with_capacity(args.sagas);
    for w in workers {
        finished.extend(w.await??);
    }
    let elapsed = started.elapsed();
    let cpu_after = host_pid.and_then(cpu_seconds);
    let mut report = summarise(args, &finished, elapsed);
    report.engine = url.to_string();
    report.store = "the host's".into();
    report.locks = "the host's".into();
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        report.host_cpu_ms_per_saga = Some((after - before) * 1e3 / args.sagas as f64);
    }
    // The host's commits cannot be counted from here; the raw rate can, given its database.
    if let Some(db) = &args.database_url {
        let sql = SqlStore::connect_with(db, &super::bench_store_options()).await?;
        let window = elapsed.clamp(Duration::from_secs(1), Duration::from_secs(10));
        report.store = sql.summary();
        report.baseline_commits_per_s =
            Some(super::baseline(sql.pool(), sql.dialect(), args.concurrency, window).await?);
        sql.pool().close().await;
    }
    Ok(report)
}

/// A host this command started for `--rest`: `rte serve` of this same executable on a
/// free loopback port, the bench's database and plugins; stopped when dropped.
pub(super) struct StartedHost {
    child: tokio::process::Child,
    /// Its base URL.
    pub url: String,
    _dir: ScratchDir,
    _db: Option<TempDb>,
}

impl StartedHost {
    pub(super) async fn start(args: &BenchArgs) -> anyhow::Result<StartedHost> {
        let dir = ScratchDir::new()?;
        let config = dir.0.join("rte.toml");
        std::fs::write(&config, "")?;
        let sagas = dir.0.join("sagas.toml");
        std::fs::write(&sagas, "")?;
        let db = args.database_url.is_none().then(TempDb::new);
        let database_url = match (&args.database_url, &db) {
            (Some(url), _) => url.clone(),
            (None, Some(t)) => format!("sqlite://{}", t.0.display()),
            (None, None) => unreachable!("a temp database is made when no URL is given"),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let plugins = std::path::absolute(&args.plugins_dir)?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--database-url")
            .arg(&database_url)
            .arg("--plugins-dir")
            .arg(&plugins)
            .arg("--sagas-file")
            .arg(&sagas)
            .env("RUST_LOG", "warn")
            .env(
                "RTE_DATABASE_MAX_CONNECTIONS",
                // The in-process run's pool, so the two ways differ only in the REST path.
                super::bench_store_options().max_connections.to_string(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        if let Some(redis) = &args.redis_url {
            cmd.arg("--redis-url").arg(redis);
        }
        if let Some(token) = &args.admin_token {
            cmd.arg("--admin-token").arg(token);
        }
        let child = cmd.spawn().context("cannot start `rte serve`")?;
        let host = StartedHost {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            _db: db,
        };
        host.ready().await?;
        Ok(host)
    }

    /// The host's process id.
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn ready(&self) -> anyhow::Result<()> {
        let client = Client::new(&self.url, None, 1);
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            if let Ok((200, _)) = client.get("/healthz").await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the host started at {} did not become healthy", self.url)
    }
}

/// A directory of the started host's files, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("rte-bench-host-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CPU time (user and system) process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after its closing `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

/// The kernel's clock ticks per second for `/proc` times (100 on Linux unless told).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A pooled keep-alive HTTP/1.1 client for one host; cheap to clone.
#[derive(Clone)]
struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(base: &str, token: Option<String>, connections: usize) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .build(connector);
        Client {
            http,
            base: base.to_string(),
            token,
        }
    }

    /// Start bench saga `i` and wait for its end.
    async fn saga(&self, args: &BenchArgs, i: usize) -> anyhow::Result<Finished> {
        let body = json!({
            "tx_type": "bench",
            "steps": saga_steps(args, i),
            "input": {"n": i, "key": format!("bench-{i}")},
            "lock_keys": [format!("bench:{}", uuid::Uuid::now_v7().simple())],
        });
        let started = Instant::now();
        let (code, reply) = self.post("/api/transactions?wait=300s", &body).await?;
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        let status = reply
            .get("status")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<TxStatus>().ok());
        let error = match code {
            200 | 201 => reply
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => Some(format!("HTTP {code}: {reply}")),
        };
        Ok(Finished {
            latency_ms,
            status: status.filter(|_| code < 300),
            planned_failure: fails(i, args.fail_ratio),
            error,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let request = self
            .request(http::Method::POST, path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        self.send(request).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let request = self
            .request(http::Method::GET, path)
            .body(Full::default())?;
        self.send(request).await
    }

    fn request(&self, method: http::Method, path: &str) -> http::request::Builder {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
    }

    async fn send(&self, request: http::Request<Full<Bytes>>) -> anyhow::Result<(u16, Value)> {
        let uri = request.uri().clone();
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("cannot reach {uri}"))?;
        let code = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the response from {uri}: {e}"))?
            .to_bytes();
        Ok((code, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}
