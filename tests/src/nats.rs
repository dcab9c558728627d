//! A private NATS server (with JetStream) per test, and the `remote-ledger` responder
//! service, for the tests of steps that publish and wait for replies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The `nats-server` binary: on `PATH`, or where Debian installs it.
fn nats_server_binary() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// A `nats-server -js` of the test's own on a free loopback port, its store in a
/// temporary directory; killed when dropped.
pub struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Start one and wait until it accepts connections.
    pub async fn start() -> Result<Self> {
        let store = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = spawn_server(port, store.path())?;
        let server = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store,
        };
        server.wait_up().await?;
        Ok(server)
    }

    async fn wait_up(&self) -> Result<()> {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nats-server on port {} did not come up", self.port)
    }

    /// SIGKILL the server, as a crashed broker.
    pub fn kill(&mut self) {
        let _ = signal(self.child.id(), "-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same port and store (what JetStream had on disk is back).
    pub async fn restart(&mut self) -> Result<()> {
        self.child = spawn_server(self.port, self.store.path())?;
        self.wait_up().await
    }

    /// Stop it answering (SIGSTOP), as a stalled broker does.
    pub fn pause(&self) -> Result<()> {
        signal(self.child.id(), "-STOP")
    }

    /// Let it answer again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        signal(self.child.id(), "-CONT")
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A JetStream client of it.
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        let client = async_nats::connect(&self.url).await?;
        Ok(async_nats::jetstream::new(client))
    }

    /// How many messages stream `name` holds.
    pub async fn stream_messages(&self, name: &str) -> Result<u64> {
        let js = self.jetstream().await?;
        let mut stream = js.get_stream(name).await?;
        Ok(stream.info().await?.state.messages)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_server(port: u16, store: &Path) -> Result<Child> {
    Command::new(nats_server_binary())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server (Debian package nats-server)")
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {sig} {pid} failed");
    Ok(())
}

/// The `remote-ledger` responder service on a NATS server; killed when dropped.
pub struct RemoteLedger {
    child: Child,
    state: PathBuf,
}

impl RemoteLedger {
    /// Start it against `nats` (late answers after `late_ms`), writing its state into `dir`.
    pub async fn start(nats: &NatsServer, dir: &Path, late_ms: u64) -> Result<Self> {
        let state = dir.join("ledger.json");
        // Cargo builds a package's binaries for its integration tests, next to `deps/`.
        let exe = std::env::current_exe()?;
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .context("test binary has no target dir")?
            .join("remote-ledger");
        let child = Command::new(bin)
            .args(["--nats", &nats.url, "--state"])
            .arg(&state)
            .args(["--late-ms", &late_ms.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting remote-ledger")?;
        let ledger = Self { child, state };
        for _ in 0..200 {
            if ledger.state.is_file() {
                return Ok(ledger);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("remote-ledger did not start")
    }

    /// Its state: `ledger` (net cents per saga), `requests` (deliveries per message id),
    /// `replies`.
    pub fn state(&self) -> Result<Value> {
        Ok(serde_json::from_slice(&std::fs::read(&self.state)?)?)
    }

    /// Net cents recorded for saga `tx_id`.
    pub fn net(&self, tx_id: &str) -> Result<i64> {
        Ok(self.state()?["ledger"][tx_id].as_i64().unwrap_or(0))
    }
}

impl Drop for RemoteLedger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
