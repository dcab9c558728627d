//! `rte step run`: one call of one step of a `.wasm` file, in the host's sandbox, with its
//! outputs, kv writes, logs and error printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use rte_host::Config;
use rte_host::plugin::{
    Limits, LocalPhase, LocalResult, MemoryKv, PluginRuntime, RuntimeOptions, StepCall,
};

/// The arguments of `rte step run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The component (its `NAME.toml` manifest beside it applies too).
    file: PathBuf,
    /// The step to call.
    step: String,
    /// The saga input: a JSON object, or `@FILE` to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Outputs of earlier steps (for compensate: this step's too), a JSON object or `@FILE`.
    #[arg(long, default_value = "{}")]
    outputs: String,
    /// The plugin's kv as a JSON file of string values: read before the call, and written
    /// back with the call's writes when it succeeds (created if missing).
    #[arg(long)]
    kv: Option<PathBuf>,
    /// Call compensate instead of execute (for an execute that completed).
    #[arg(long, conflicts_with = "confirm")]
    compensate: bool,
    /// With `--compensate`: tell the step execute's outcome is unknown.
    #[arg(long, requires = "compensate")]
    unknown_outcome: bool,
    /// Call confirm instead of execute.
    #[arg(long)]
    confirm: bool,
    /// The saga id the step sees.
    #[arg(long, default_value = "tx-local")]
    tx_id: String,
    /// The saga type the step sees.
    #[arg(long, default_value = "local")]
    tx_type: String,
    /// The one-based attempt number the step sees.
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// One line the plugin logged (or wrote to stdout or stderr).
#[derive(Debug, Clone, Serialize)]
struct LogLine {
    level: String,
    message: String,
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    result: LocalResult,
    logs: Vec<LogLine>,
}

/// Run the command; `Ok(false)` when the step call failed (reported already).
pub async fn run(config: &Config, args: RunArgs) -> anyhow::Result<bool> {
    let logs = install_capture();
    let input = json_object("--input", &args.input)?;
    let outputs = json_object("--outputs", &args.outputs)?;
    let kv = Arc::new(MemoryKv::new(match &args.kv {
        Some(path) => read_kv(path)?,
        None => BTreeMap::new(),
    }));
    let runtime = PluginRuntime::new(RuntimeOptions {
        limits: Limits::from_config(config),
        // The host's compiled-plugin cache: a second run of a large component starts at once.
        cache_dir: config.compiled_cache_dir(),
        max_instances: 4,
    })?;
    let plugin = runtime.inspect(&args.file).await?;
    if plugin.step(&args.step).is_none() {
        let names: Vec<&str> = plugin.steps.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "{} has no step `{}`; its steps: {}",
            plugin.file,
            args.step,
            names.join(", ")
        );
    }
    let phase = match (args.compensate, args.unknown_outcome, args.confirm) {
        (true, false, _) => LocalPhase::Compensate,
        (true, true, _) => LocalPhase::CompensateUnknown,
        (false, _, true) => LocalPhase::Confirm,
        _ => LocalPhase::Execute,
    };
    // The step's own timeout, as a host without overrides would give it.
    let timeout = plugin
        .step(&args.step)
        .and_then(|d| d.policy)
        .and_then(|p| p.timeout);
    let call = StepCall {
        tx_id: args.tx_id,
        tx_type: args.tx_type,
        step_name: args.step,
        step_index: 0,
        attempt: args.attempt.max(1),
        input: Value::Object(input).to_string(),
        outputs: Value::Object(outputs).to_string(),
        execute_completed: None,
        traceparent: None,
        timeout,
    };
    let result = runtime.run_local(&plugin, phase, &call, kv.clone()).await;
    if result.ok
        && let Some(path) = &args.kv
    {
        let text = serde_json::to_string_pretty(&kv.snapshot())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let ok = result.ok;
    let report = Report {
        result,
        logs: logs.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ok)
}

fn print_text(report: &Report) {
    let r = &report.result;
    let phase = match r.phase {
        LocalPhase::Execute => "execute",
        LocalPhase::Compensate => "compensate",
        LocalPhase::CompensateUnknown => "compensate (execute outcome unknown)",
        LocalPhase::Confirm => "confirm",
    };
    let verdict = if r.ok { "ok" } else { "failed" };
    println!("{phase} {} ({}): {verdict}", r.step, r.plugin);
    if let Some(key) = &r.idempotency_key {
        println!("idempotency key: {key}");
    }
    if let Some(outputs) = &r.outputs {
        let text = serde_json::to_string_pretty(outputs).unwrap_or_default();
        println!("outputs: {text}");
    }
    if !r.kv_writes.is_empty() {
        println!("kv writes:");
        for w in &r.kv_writes {
            match &w.value {
                Some(value) => println!("  set {} = {value}", w.key),
                None => println!("  delete {}", w.key),
            }
        }
    }
    if !report.logs.is_empty() {
        println!("logs:");
        for line in &report.logs {
            println!("  {:5} {}", line.level, line.message);
        }
    }
    if let Some(e) = &r.error {
        let retry = if e.retryable {
            "retryable"
        } else {
            "not retryable"
        };
        println!("error ({}, {retry}): {}", e.kind.as_str(), e.message);
    }
}

/// A JSON object given as text or as `@FILE`.
fn json_object(flag: &str, text: &str) -> anyhow::Result<Map<String, Value>> {
    let text = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {path}"))?
        }
        None => text.to_string(),
    };
    match serde_json::from_str(&text).with_context(|| format!("{flag} is not valid JSON"))? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => bail!("{flag} must be a JSON object"),
    }
}

fn read_kv(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "--kv {} must hold a JSON object of string values",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Collect what plugins log (target `rte::plugin`) for the report, and show the host's
/// own warnings on stderr.
fn install_capture() -> Arc<Mutex<Vec<LogLine>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let capture = Capture {
        lines: lines.clone(),
    };
    let env = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,cranelift=warn,wasmtime=warn"));
    let host_logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            !meta.target().starts_with("rte::plugin")
        }))
        .with_filter(env);
    let _ = tracing_subscriber::registry()
        .with(capture)
        .with(host_logs)
        .try_init();
    lines
}

struct Capture {
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if !meta.target().starts_with("rte::plugin") {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let level = match meta.target().strip_prefix("rte::plugin::") {
            // Guest stdout and stderr carry their stream as the level.
            Some(stream) => stream.to_string(),
            None => meta.level().as_str().to_ascii_lowercase(),
        };
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(LogLine {
                level,
                message: message.0,
            });
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
