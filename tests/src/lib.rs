//! Test support for RTE's end-to-end tests: builds the real plugins from `plugins/` for
//! `wasm32-wasip2`, and starts real hosts on loopback ports over a chosen database.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub mod faults;
pub mod nats;
pub mod polyglot;
pub mod process;

pub use rte_host;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where plugin builds go (outside the host's target dir lock).
fn plugin_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("plugins"),
        None => repo_root().join("target").join("plugins"),
    }
}

/// Build every plugin crate under `plugins/` (once per test process) and return the
/// directory holding `bank.wasm`, `testkit.wasm`, ….
pub fn plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_plugins().expect("building the example plugins"))
}

fn build_plugins() -> Result<PathBuf> {
    let target_dir = plugin_target_dir();
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(repo_root())
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
                "plugins/Cargo.toml",
                "--target-dir",
            ])
            .arg(&target_dir)
            .status()
            .context("running cargo to build plugins")?;
    if !status.success() {
        bail!("plugin build failed ({status})");
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}

/// The `rte` binary next to the running test's executable, built first if out of date
/// (tests that run hosts as separate processes use it).
pub fn rte_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary has no target dir")?;
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(repo_root())
            .args(["build", "--locked", "-p", "rte-host", "--bin", "rte"])
            .status()?;
    anyhow::ensure!(status.success(), "building rte failed");
    Ok(dir.join("rte"))
}

/// A one-step `adhoc` saga in `status`, written at `now_ms` with a one-minute deadline:
/// for tests that plant a saga in the store as some host left it.
pub fn tx_record(
    tx_id: &str,
    status: rte_host::TxStatus,
    now_ms: i64,
) -> rte_host::store::TxRecord {
    rte_host::store::TxRecord {
        tx_id: tx_id.into(),
        tx_type: "adhoc".into(),
        status,
        input: serde_json::json!({}),
        outputs: serde_json::Map::new(),
        lock_keys: vec![],
        current_step: 0,
        total_steps: 1,
        retry_count: 0,
        max_retries: 1,
        timeout_ms: 60_000,
        deadline_at: now_ms + 60_000,
        last_error: None,
        version: 0,
        request_key: None,
        created_at: now_ms,
        updated_at: now_ms,
        completed_at: None,
        undo: None,
    }
}

/// The path of a built plugin, e.g. `plugin("bank")`.
pub fn plugin(name: &str) -> PathBuf {
    plugin_dir().join(format!("{name}.wasm"))
}

/// A shared compiled-artifact cache, so each test does not recompile the same plugins.
pub fn artifact_cache() -> PathBuf {
    plugin_target_dir().join("artifact-cache")
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database on the loopback PostgreSQL.
    Postgres,
    /// A fresh database on the loopback MariaDB/MySQL.
    MySql,
}

/// Whether missing services must fail tests instead of skipping them (`RTE_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var("RTE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The backends to run database suites on: SQLite always, PostgreSQL and MySQL when reachable.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    for (backend, addr) in [
        (Backend::Postgres, "127.0.0.1:5432"),
        (Backend::MySql, "127.0.0.1:3306"),
    ] {
        if std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500))
            .is_ok()
        {
            out.push(backend);
        } else if services_required() {
            panic!("{backend:?} at {addr} is required (RTE_REQUIRE_SERVICES=1) but unreachable");
        } else {
            eprintln!("skipping {backend:?}: nothing listens on {addr}");
        }
    }
    out
}

/// A fresh, empty database of `backend`; returns its URL. Dropping the guard keeps it
/// (databases are cheap; names are unique).
pub async fn fresh_database(backend: Backend, dir: &Path) -> Result<String> {
    let name = format!("rte_t_{}", uuid_like());
    match backend {
        Backend::Sqlite => Ok(format!(
            "sqlite://{}",
            dir.join(format!("{name}.db")).display()
        )),
        Backend::Postgres => {
            admin_exec(
                "postgres://postgres@127.0.0.1:5432/postgres",
                &format!("CREATE DATABASE {name}"),
            )
            .await?;
            Ok(format!("postgres://postgres@127.0.0.1:5432/{name}"))
        }
        Backend::MySql => {
            admin_exec(
                "mysql://root@127.0.0.1:3306/test",
                &format!("CREATE DATABASE {name}"),
            )
            .await?;
            Ok(format!("mysql://root@127.0.0.1:3306/{name}"))
        }
    }
}

async fn admin_exec(url: &str, sql: &str) -> Result<()> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    conn.execute(sql)
        .await
        .with_context(|| format!("running `{sql}`"))?;
    Ok(())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:x}{:x}{}",
        nanos,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for [`TestHost::start`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The database.
    pub backend: Backend,
    /// Plugins to copy into the host's plugins directory (names without `.wasm`).
    pub plugins: Vec<&'static str>,
    /// Extra files to put in the plugins directory: (file name, bytes).
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// Config changes applied after the test defaults.
    pub configure: fn(&mut rte_host::Config),
    /// Use this database instead of a fresh one of `backend`.
    pub database_url: Option<String>,
    /// Share locks and breakers through the loopback Redis, under this key prefix.
    pub redis_prefix: Option<String>,
    /// Use this Redis instead of the loopback one (under `redis_prefix`, or `rte-test:`).
    pub redis_url: Option<String>,
    /// Use this NATS server as the message broker.
    pub nats_url: Option<String>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            plugins: vec!["bank", "testkit"],
            extra_files: Vec::new(),
            configure: |_| {},
            database_url: None,
            redis_prefix: None,
            redis_url: None,
            nats_url: None,
        }
    }
}

/// Host logs go to the test's output (shown for failing tests); `RUST_LOG` filters them.
fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rte_host=info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A real host serving on a loopback port, with a client.
pub struct TestHost {
    /// The host (engine and config).
    pub host: rte_host::server::Host,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The host's working directory (plugins, database file).
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestHost {
    /// Start a host with `options`.
    pub async fn start(options: HostOptions) -> Result<Self> {
        init_logs();
        let dir = tempfile::tempdir()?;
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir)?;
        for name in &options.plugins {
            std::fs::copy(plugin(name), plugins_dir.join(format!("{name}.wasm")))?;
        }
        for (file, bytes) in &options.extra_files {
            std::fs::write(plugins_dir.join(file), bytes)?;
        }
        let mut config = rte_host::Config {
            database_url: match options.database_url.clone() {
                Some(url) => url,
                None => fresh_database(options.backend, dir.path()).await?,
            },
            plugins_dir: plugins_dir.clone(),
            sagas_file: repo_root().join("sagas.toml"),
            listen: "127.0.0.1:0".into(),
            retry_interval: Duration::from_millis(20),
            retry_max_interval: Duration::from_millis(200),
            step_timeout: Duration::from_secs(2),
            ..rte_host::Config::default()
        };
        if let Some(prefix) = &options.redis_prefix {
            config.redis_url = Some("redis://127.0.0.1:6379".into());
            config.redis_prefix = prefix.clone();
        }
        if let Some(url) = &options.redis_url {
            config.redis_url = Some(url.clone());
            if options.redis_prefix.is_none() {
                config.redis_prefix = "rte-test:".into();
            }
        }
        if let Some(url) = &options.nats_url {
            config.nats_url = Some(url.clone());
        }
        (options.configure)(&mut config);
        let host = rte_host::server::Host::start_with_cache(config, Some(artifact_cache())).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = rte_host::admin::router(host.app_state());
        let max_connections = host.config.server_max_connections as usize;
        let server = tokio::spawn(async move {
            let _ = axum_serve(listener, app, max_connections, rx).await;
        });
        Ok(Self {
            host,
            url,
            http: reqwest::Client::new(),
            dir,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &rte_host::Engine {
        &self.host.engine
    }

    /// POST JSON to `path`; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// GET `path`; returns status and body.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let resp = self.http.get(format!("{}{path}", self.url)).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Start a saga and wait for its end; returns the transaction view.
    pub async fn run_saga(&self, body: Value) -> Result<Value> {
        let (status, view) = self.post("/api/transactions?wait=60s", body).await?;
        if status != 201 && status != 200 {
            bail!("starting a saga returned {status}: {view}");
        }
        Ok(view)
    }

    /// Open an account through the `open_account` saga.
    pub async fn open_account(&self, id: &str, balance: f64) -> Result<()> {
        let v = self
            .run_saga(serde_json::json!({"tx_type": "open_account", "input": {"account_id": id, "balance": balance}}))
            .await?;
        anyhow::ensure!(v["status"] == "COMPLETED", "open_account {id}: {v}");
        Ok(())
    }

    /// Read an account's balance through the `get_balance` saga.
    pub async fn balance(&self, id: &str) -> Result<f64> {
        let v = self
            .run_saga(serde_json::json!({"tx_type": "get_balance", "input": {"account_id": id}}))
            .await?;
        v["output"]["balance"]
            .as_f64()
            .with_context(|| format!("balance of {id}: {v}"))
    }

    /// Stop serving and let running sagas settle.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut server) = self.server.take() {
            // Long-lived streams (server-sent events) would hold a graceful shutdown open.
            if tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        self.host.engine.drain(Duration::from_secs(5)).await;
    }
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    max_connections: usize,
    rx: tokio::sync::oneshot::Receiver<()>,
) -> rte_host::Result<()> {
    rte_host::server::serve_app(listener, app, max_connections, async move {
        let _ = rx.await;
    })
    .await
}
