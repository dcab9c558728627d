//! Fault tools for tests that break real services: a TCP proxy that cuts connections, and a
//! `redis-server` of the test's own that can be killed and restarted on its port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::services_required;

/// A TCP proxy on 127.0.0.1 in front of one upstream address, which can cut every connection
/// it carries, and refuse new ones until restored.
pub struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    /// Listen on a free loopback port and forward each connection to `upstream`.
    pub async fn start(upstream: impl Into<String>) -> anyhow::Result<Self> {
        let upstream: Arc<str> = upstream.into().into();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let gate = open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let mut cuts = cuts.clone();
                // Only cuts from now on end this connection.
                cuts.borrow_and_update();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&*upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Ok(Self { addr, open, cut })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// End every connection carried now; new ones are still accepted.
    pub fn cut_connections(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// End every connection and refuse new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut_connections();
    }

    /// Accept new connections again after [`Proxy::cut`].
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// A `redis-server` owned by one test on its own port, with no persistence, killed when
/// dropped.
pub struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Tests that kill and restart their own Redis on a port take turns through this lock:
/// another such test could otherwise be handed that port while it is free between the two.
pub static OWN_REDIS_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl OwnRedis {
    /// Start one on `port` and wait until it answers; `None` (after saying why) when
    /// `redis-server` is not installed and services are not required.
    pub async fn start(port: u16) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, &dir)?;
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        server.wait_listening().await;
        Some(server)
    }

    fn spawn(port: u16, dir: &tempfile::TempDir) -> Option<Child> {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => Some(child),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !services_required() => {
                eprintln!("skipping: redis-server is not on PATH");
                None
            }
            Err(e) => panic!("starting redis-server: {e}"),
        }
    }

    /// Wait until this server answers on its port (panics after 10 s, or if it exited).
    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("redis-server exited early: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            sleep(Duration::from_millis(20)).await;
        }
        // The port answering must be this server, not another that took the port first.
        sleep(Duration::from_millis(50)).await;
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "redis-server exited at start (port {} taken?): {status}",
                self.port
            );
        }
    }

    /// Start one on a free port and wait until it answers.
    pub async fn start_on_free_port() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        Self::start(port).await
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it with SIGKILL (its data is gone with it) and reap it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Start it again, empty, on the same port, and wait until it answers.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.child = Self::spawn(self.port, &self._dir).expect("redis-server was there before");
        self.wait_listening().await;
    }
}
