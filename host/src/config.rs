//! Configuration: one serde tree whose defaults are the seed's, layered
//! defaults → `rte.toml` → `RTE_*` environment → command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Every setting of the host. Durations are written `250ms`, `30s`, `5m`, `24h`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a saga's locks live unless extended.
    #[serde(with = "humantime_serde")]
    pub lock_ttl: Duration,
    /// How often a running saga extends its locks.
    #[serde(with = "humantime_serde")]
    pub lock_extend_period: Duration,
    /// How long a saga waits to take its locks before it fails.
    #[serde(with = "humantime_serde")]
    pub lock_wait: Duration,
    /// Retries of a step after a retryable error (and of a failed saga by recovery).
    pub max_retries: u32,
    /// First delay between retries; later ones grow exponentially with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    /// Upper bound of the delay between retries.
    #[serde(with = "humantime_serde")]
    pub retry_max_interval: Duration,
    /// Consecutive failures that open a service's circuit breaker.
    pub circuit_threshold: u32,
    /// How long an open breaker stays open before it lets trial calls through.
    #[serde(with = "humantime_serde")]
    pub circuit_timeout: Duration,
    /// Trial calls a half-open breaker admits; that many successes close it.
    pub circuit_half_open_reqs: u32,
    /// How often the recovery worker scans for stuck sagas.
    #[serde(with = "humantime_serde")]
    pub recovery_interval: Duration,
    /// A saga not updated for this long is considered stuck.
    #[serde(with = "humantime_serde")]
    pub stuck_threshold: Duration,
    /// Deadline of one step call, enforced inside the plugin.
    #[serde(with = "humantime_serde")]
    pub step_timeout: Duration,
    /// Deadline of a whole saga; past it the saga ends `TIMEOUT` and is compensated.
    #[serde(with = "humantime_serde")]
    pub tx_timeout: Duration,
    /// How long a completed step's idempotency record is kept.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// How long finished sagas are kept; `0s` keeps them forever.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Store URL: `sqlite://rte.db`, `postgres://…` or `mysql://…`.
    pub database_url: String,
    /// Connections each host may hold to PostgreSQL or MySQL/MariaDB (SQLite: at most 8).
    /// The default lets four hosts share a server's default limit of 100.
    pub database_max_connections: u32,
    /// Longest a database statement, a wait for a row lock, or an idle open transaction
    /// may last before the database ends it, so a stalled writer cannot sit on rows.
    #[serde(with = "humantime_serde")]
    pub database_statement_timeout: Duration,
    /// Redis URL for shared locks and breakers; unset means in-process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key the host writes, so several deployments can share a server.
    pub redis_prefix: String,
    /// NATS server (with JetStream) that carries the messages steps publish and the
    /// replies they wait for; unset means no broker (publishing fails plainly, and replies
    /// come only through the HTTP completion endpoint).
    pub nats_url: Option<String>,
    /// Subjects steps may publish to, comma-separated NATS patterns; the host keeps them
    /// in its JetStream stream `RTE_REQUESTS`.
    pub nats_subjects: String,
    /// How often each host looks for waits whose deadline passed.
    #[serde(with = "humantime_serde")]
    pub wait_sweep_interval: Duration,
    /// Directory of `*.wasm` plugins, watched for changes.
    pub plugins_dir: PathBuf,
    /// Saga definitions file.
    pub sagas_file: PathBuf,
    /// Address the admin API and console listen on.
    pub listen: String,
    /// Bearer token required on every `/api` call when set.
    pub admin_token: Option<String>,
    /// Where compiled plugins are cached (created private to this user); unset: the
    /// user's cache directory (`$XDG_CACHE_HOME/rte/compiled` or `~/.cache/rte/compiled`).
    pub plugin_cache_dir: Option<PathBuf>,
    /// Memory cap of one plugin instance, in MiB.
    pub plugin_memory_mb: u64,
    /// Largest output a step may return, in KiB.
    pub plugin_max_output_kb: u64,
    /// Most plugin key-value data one call may write (keys and values), in KiB.
    pub plugin_max_kv_write_kb: u64,
    /// Most plugin keys one call may write or delete.
    pub plugin_max_kv_keys: u64,
    /// Most log text one call may write (through `log` and stderr), in KiB; the rest is
    /// dropped, counted and warned about once.
    pub plugin_max_log_kb: u64,
    /// Largest plugin file, in MiB.
    pub plugin_max_file_mb: u64,
    /// Deepest nesting of components in a plugin, and of component or instance types in its
    /// types (the plugin itself is depth 1).
    pub plugin_max_nesting: u32,
    /// Largest function body in a plugin, in KiB.
    pub plugin_max_function_kb: u64,
    /// Deepest nesting of blocks (`block`, `loop`, `if`, `try`) in one function of a plugin.
    pub plugin_max_block_depth: u32,
    /// Most blocks (nested or not) in one function of a plugin.
    pub plugin_max_function_blocks: u32,
    /// All function bodies of a plugin together, in MiB.
    pub plugin_max_code_mb: u64,
    /// Longest the compile of one plugin may take before its load fails.
    #[serde(with = "humantime_serde")]
    pub plugin_compile_timeout: Duration,
    /// While plugins are still loading after start (the API is served meanwhile), how
    /// long a request to start a saga waits for a step not served yet before a `503`.
    #[serde(with = "humantime_serde")]
    pub plugin_load_wait: Duration,
    /// Largest total of a saga's outputs (all its steps'), in KiB.
    pub saga_max_outputs_kb: u64,
    /// Largest request body the API accepts, in KiB.
    pub max_body_kb: u64,
    /// Longest an API request may take, body read included, beyond the `?wait=` it asks
    /// for; past it the answer is `408`. The event stream is exempt.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most client connections the API serves at once; further ones wait in the listen
    /// backlog until one closes. Keep it below the process's open-file limit.
    pub server_max_connections: u32,
    /// How many recent events the event log keeps.
    pub event_log_size: usize,
    /// The operator's per-step policy, by step name: `[step_policy.debit]` with
    /// `max_retries`, `retry_interval`, `retry_max_interval`, `timeout`, `idempotent`. Each
    /// setting overrides what the step declares and what the saga definition says. File
    /// only (no `RTE_*` variable).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub step_policy: BTreeMap<String, crate::policy::StepPolicy>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lock_ttl: Duration::from_secs(30),
            lock_extend_period: Duration::from_secs(10),
            lock_wait: Duration::from_secs(10),
            max_retries: 3,
            retry_interval: Duration::from_secs(5),
            retry_max_interval: Duration::from_secs(60),
            circuit_threshold: 5,
            circuit_timeout: Duration::from_secs(30),
            circuit_half_open_reqs: 3,
            recovery_interval: Duration::from_secs(30),
            stuck_threshold: Duration::from_secs(300),
            step_timeout: Duration::from_secs(10),
            tx_timeout: Duration::from_secs(300),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(30 * 24 * 3600),
            database_url: "sqlite://rte.db".into(),
            database_max_connections: 20,
            database_statement_timeout: Duration::from_secs(10),
            redis_url: None,
            redis_prefix: "rte:".into(),
            nats_url: None,
            nats_subjects: "rte.requests.>".into(),
            wait_sweep_interval: Duration::from_secs(1),
            plugins_dir: PathBuf::from("./plugins"),
            sagas_file: PathBuf::from("./sagas.toml"),
            listen: "127.0.0.1:8080".into(),
            admin_token: None,
            plugin_cache_dir: None,
            plugin_memory_mb: 64,
            plugin_max_output_kb: 1024,
            plugin_max_kv_write_kb: 8192,
            plugin_max_kv_keys: 10_000,
            plugin_max_log_kb: 64,
            plugin_max_file_mb: 64,
            plugin_max_nesting: 16,
            plugin_max_function_kb: 2048,
            plugin_max_block_depth: 5000,
            plugin_max_function_blocks: 10_000,
            plugin_max_code_mb: 32,
            plugin_compile_timeout: Duration::from_secs(120),
            plugin_load_wait: Duration::from_secs(10),
            saga_max_outputs_kb: 4096,
            max_body_kb: 1024,
            request_timeout: Duration::from_secs(30),
            server_max_connections: 1024,
            event_log_size: 1000,
            step_policy: BTreeMap::new(),
        }
    }
}

/// The names of all keys, in file order; each has the environment variable `RTE_<KEY>`.
pub const KEYS: &[&str] = &[
    "lock_ttl",
    "lock_extend_period",
    "lock_wait",
    "max_retries",
    "retry_interval",
    "retry_max_interval",
    "circuit_threshold",
    "circuit_timeout",
    "circuit_half_open_reqs",
    "recovery_interval",
    "stuck_threshold",
    "step_timeout",
    "tx_timeout",
    "idempotency_ttl",
    "retention",
    "database_url",
    "database_max_connections",
    "database_statement_timeout",
    "redis_url",
    "redis_prefix",
    "nats_url",
    "nats_subjects",
    "wait_sweep_interval",
    "plugins_dir",
    "sagas_file",
    "listen",
    "admin_token",
    "plugin_cache_dir",
    "plugin_memory_mb",
    "plugin_max_output_kb",
    "plugin_max_kv_write_kb",
    "plugin_max_kv_keys",
    "plugin_max_log_kb",
    "plugin_max_file_mb",
    "plugin_max_nesting",
    "plugin_max_function_kb",
    "plugin_max_block_depth",
    "plugin_max_function_blocks",
    "plugin_max_code_mb",
    "plugin_compile_timeout",
    "plugin_load_wait",
    "saga_max_outputs_kb",
    "max_body_kb",
    "request_timeout",
    "server_max_connections",
    "event_log_size",
];

const NUMERIC_KEYS: &[&str] = &[
    "max_retries",
    "database_max_connections",
    "circuit_threshold",
    "circuit_half_open_reqs",
    "plugin_memory_mb",
    "plugin_max_output_kb",
    "plugin_max_kv_write_kb",
    "plugin_max_kv_keys",
    "plugin_max_log_kb",
    "plugin_max_file_mb",
    "plugin_max_nesting",
    "plugin_max_function_kb",
    "plugin_max_block_depth",
    "plugin_max_function_blocks",
    "plugin_max_code_mb",
    "saga_max_outputs_kb",
    "max_body_kb",
    "server_max_connections",
    "event_log_size",
];

impl Config {
    /// Where compiled plugins are cached: `plugin_cache_dir`, else the user's cache
    /// directory; made absolute (`None` when neither can be found).
    pub fn compiled_cache_dir(&self) -> Option<std::path::PathBuf> {
        self.plugin_cache_dir
            .clone()
            .or_else(crate::plugin::cache::default_dir)
            .and_then(|d| std::path::absolute(d).ok())
    }

    /// Parse a config file's text (unknown keys are rejected).
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Build the layered config: defaults, then `file` (if it exists, or must exist when
    /// `required`), then `RTE_*` variables from `env`, then `overrides` (from flags).
    pub fn load(
        file: Option<&Path>,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    table = text.parse::<toml::Table>().map_err(|e| {
                        Error::Config(format!("{}: {}", path.display(), e.message()))
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
                Err(e) => return Err(Error::Config(format!("{}: {e}", path.display()))),
            }
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("RTE_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if KEYS.contains(&key.as_str()) {
                let value = typed_value(&key, &value)?;
                table.insert(key, value);
            } else if key != "require_services" && key != "log" {
                tracing::warn!(variable = %name, "ignoring unknown RTE_ environment variable");
            }
        }
        for (key, value) in overrides {
            if !KEYS.contains(&key.as_str()) {
                return Err(Error::Config(format!("unknown key `{key}`")));
            }
            table.insert(key.clone(), typed_value(key, value)?);
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Check values that parse but make no sense together.
    pub fn validate(&self) -> Result<()> {
        for (step, policy) in &self.step_policy {
            policy
                .check()
                .map_err(|e| Error::Config(format!("step_policy.{step}: {e}")))?;
        }
        crate::broker::check_subjects(&self.nats_subjects).map_err(Error::Config)?;
        if self.lock_extend_period >= self.lock_ttl {
            return Err(Error::Config(format!(
                "lock_extend_period ({}) must be shorter than lock_ttl ({})",
                humantime::format_duration(self.lock_extend_period),
                humantime::format_duration(self.lock_ttl)
            )));
        }
        if self.step_timeout.is_zero() {
            return Err(Error::Config("step_timeout must be above zero".into()));
        }
        crate::engine::check_tx_timeout(self.tx_timeout)
            .map_err(|e| Error::Config(e.replace("`timeout`", "tx_timeout")))?;
        if self.database_max_connections < 2 {
            return Err(Error::Config(
                "database_max_connections must be at least 2".into(),
            ));
        }
        if self.database_statement_timeout < Duration::from_secs(1) {
            return Err(Error::Config(
                "database_statement_timeout must be at least 1s".into(),
            ));
        }
        if let Some(token) = self.admin_token.as_deref()
            && !token.is_empty()
            && token.chars().count() < MIN_ADMIN_TOKEN_LEN
        {
            return Err(Error::Config(format!(
                "admin_token must be at least {MIN_ADMIN_TOKEN_LEN} characters (a random string, \
                 e.g. `openssl rand -base64 24`)"
            )));
        }
        for (key, value) in [
            ("plugin_max_file_mb", self.plugin_max_file_mb),
            ("plugin_max_nesting", self.plugin_max_nesting.into()),
            ("plugin_max_function_kb", self.plugin_max_function_kb),
            ("plugin_max_block_depth", self.plugin_max_block_depth.into()),
            (
                "plugin_max_function_blocks",
                self.plugin_max_function_blocks.into(),
            ),
            ("plugin_max_code_mb", self.plugin_max_code_mb),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("{key} must be at least 1")));
            }
        }
        if self.plugin_compile_timeout.is_zero() {
            return Err(Error::Config(
                "plugin_compile_timeout must be above zero".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::Config("request_timeout must be above zero".into()));
        }
        if self.server_max_connections == 0 {
            return Err(Error::Config(
                "server_max_connections must be at least 1".into(),
            ));
        }
        if self.circuit_half_open_reqs == 0 {
            return Err(Error::Config(
                "circuit_half_open_reqs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Shortest admin token accepted: a guessable token is no access control.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Turn a string from the environment or a flag into the TOML value its key expects.
fn typed_value(key: &str, value: &str) -> Result<toml::Value> {
    if NUMERIC_KEYS.contains(&key) {
        value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| Error::Config(format!("`{key}` must be a whole number, got `{value}`")))
    } else {
        Ok(toml::Value::String(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_file_parses_to_the_defaults() {
        let text = include_str!("../../rte.toml");
        let parsed = Config::from_toml(text).expect("sample rte.toml parses");
        assert_eq!(parsed, Config::default());
        for key in KEYS {
            assert!(
                text.contains(&format!("{key} =")),
                "sample rte.toml documents `{key}`"
            );
        }
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rte.toml");
        std::fs::write(
            &file,
            "step_timeout = \"2s\"\nmax_retries = 7\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let env = vec![
            ("RTE_STEP_TIMEOUT".to_string(), "3s".to_string()),
            ("RTE_MAX_RETRIES".to_string(), "9".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let mut flags = BTreeMap::new();
        flags.insert("step_timeout".to_string(), "250ms".to_string());
        let config = Config::load(Some(&file), true, env, &flags).unwrap();
        assert_eq!(config.step_timeout, Duration::from_millis(250));
        assert_eq!(config.max_retries, 9);
        assert_eq!(config.listen, "127.0.0.1:1");
        assert_eq!(config.lock_ttl, Duration::from_secs(30));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_clearly() {
        let err = Config::from_toml("lock_tll = \"3s\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lock_tll"), "{err}");
        let err = Config::load(
            None,
            false,
            vec![("RTE_MAX_RETRIES".into(), "many".into())],
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_retries"), "{err}");
        let err = Config::from_toml("step_timeout = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("step_timeout") || err.contains("soon"),
            "{err}"
        );
    }
}
