//! The operator's grants to one plugin: `NAME.toml` beside `NAME.wasm`.
//!
//! ```toml
//! name = "bank"      # the plugin's identity (its kv data, its breakers); default: the file stem
//! shared_services = ["accounts"]   # breakers shared with other plugins declaring them
//! [http]
//! allow = ["api.example.com", "127.0.0.1:9000"]
//! [config]
//! region = "eu-west-1"
//! [secrets]          # values read from the host's environment by name
//! api_key = "PAYMENTS_API_KEY"
//! [limits]
//! memory_mb = 128
//! timeout = "20s"
//! max_output_kb = 2048
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A plugin's manifest; every part is optional and denies by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's identity: its key-value data and circuit breakers belong to this name,
    /// so renaming the file keeps them. Default: the file stem.
    pub name: Option<String>,
    /// Services whose circuit breaker this plugin shares with every other plugin that
    /// declares the same; any other service's breaker is the plugin's own.
    pub shared_services: Vec<String>,
    /// Outbound HTTP grants.
    pub http: HttpGrant,
    /// Plain configuration values.
    pub config: HashMap<String, String>,
    /// Configuration values taken from the host's environment: key → variable name.
    pub secrets: HashMap<String, String>,
    /// Limits that override the host's defaults.
    pub limits: Limits,
}

/// Hosts a plugin may call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpGrant {
    /// `host`, `host:port`, or `*` for any.
    pub allow: Vec<String>,
}

/// Per-plugin limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory cap in MiB.
    pub memory_mb: Option<u64>,
    /// Call deadline.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Largest output in KiB.
    pub max_output_kb: Option<u64>,
}

/// Whether `name` may identify a plugin: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Manifest {
    /// Read the manifest beside `wasm` (`x.wasm` → `x.toml`); none means no grants.
    pub fn for_plugin(wasm: &Path) -> Result<Self, String> {
        let path = wasm.with_extension("toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The configuration the plugin sees: plain values plus secrets resolved from the environment.
    pub fn resolved_config(&self) -> Result<HashMap<String, String>, String> {
        let mut out = self.config.clone();
        for (key, var) in &self.secrets {
            let value = std::env::var(var).map_err(|_| {
                format!("secret `{key}` needs environment variable {var}, which is not set")
            })?;
            out.insert(key.clone(), value);
        }
        Ok(out)
    }
}
