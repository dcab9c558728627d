//! `rte serve` as a separate process, for tests that kill a host and start another.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{plugin, repo_root};

/// An `rte serve` process on a SQLite file, killed when dropped.
pub struct HostProcess {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl HostProcess {
    /// Start `rte serve` in `dir` (its database, plugins and log live there) with the
    /// example `plugins` and `--set` `settings`.
    pub fn start(dir: &Path, plugin_names: &[&str], settings: &[&str]) -> Result<Self> {
        let url = format!("sqlite://{}", dir.join("rte.db").display());
        Self::start_on(dir, &url, plugin_names, settings)
    }

    /// [`HostProcess::start`] on the database at `database_url`.
    pub fn start_on(
        dir: &Path,
        database_url: &str,
        plugin_names: &[&str],
        settings: &[&str],
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let plugins_dir = dir.join("plugins");
        std::fs::create_dir_all(&plugins_dir)?;
        for name in plugin_names {
            std::fs::copy(plugin(name), plugins_dir.join(format!("{name}.wasm")))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("rte.log"))?;
        let child = Command::new(crate::rte_binary()?)
            .current_dir(dir)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url])
            .args(["--plugins-dir", &plugins_dir.display().to_string()])
            .args([
                "--sagas-file",
                &repo_root().join("sagas.toml").display().to_string(),
            ])
            .args(settings.iter().flat_map(|s| ["--set", s]))
            .env("RUST_LOG", "warn,rte_host=info,rte::plugin=info")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// GET `path` as JSON, waiting for the host to answer.
    pub async fn get(&self, path: &str) -> Result<Value> {
        for _ in 0..200 {
            if let Ok(resp) = reqwest::get(format!("{}{path}", self.url)).await {
                return Ok(resp.json().await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the host at {} did not answer", self.url)
    }

    /// GET `path` until `done` holds of the answer.
    pub async fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        for _ in 0..600 {
            let v = self.get(path).await?;
            if done(&v) {
                return Ok(v);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{path} did not get there")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A memory figure of the process from `/proc/<pid>/status`, in bytes: `VmRSS`
    /// (resident now) or `VmHWM` (resident at its peak).
    pub fn memory(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .with_context(|| format!("no {field} in {path}"))?;
        Ok(kb << 10)
    }

    /// SIGKILL the host.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
