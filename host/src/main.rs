//! The `rte` command: `serve`, `migrate`, `bench`, `plugins check`, `step run`.

mod cli;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use rte_host::Config;
use rte_host::server::{self, Host};
use rte_host::telemetry::LogFormat;

#[derive(Parser)]
#[command(
    name = "rte",
    version,
    about = "RTE: reliable saga transactions with WebAssembly steps"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "rte.toml")]
    config: PathBuf,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: API, console, sagas, workers.
    Serve(Overrides),
    /// Apply the store's schema migrations and exit.
    Migrate(Overrides),
    /// Measure sagas/s, latency and memory against the database's raw commit rate.
    Bench(rte_host::bench::BenchArgs),
    /// Work with plugin components.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Create a project for a saga step: its code with a unit test, build and README.
    New {
        /// The language.
        #[arg(value_enum)]
        lang: rte_host::scaffold::Lang,
        /// The project's name (its directory, and the base of its step's name).
        name: String,
        /// Create it here instead of in `./NAME`.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rust: depend on the plugin SDK at this path instead of its crates.io release.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build the step project in DIR into `.wasm` and check it as the host would load it.
    Build {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run steps of a component outside any saga.
    Step {
        #[command(subcommand)]
        command: StepCommand,
    },
}

#[derive(Subcommand)]
enum StepCommand {
    /// Call one step's execute (or compensate, or confirm) once, in the host's sandbox,
    /// and print its outputs, kv writes, logs and error. Exits 1 when the call fails.
    Run(cli::step::RunArgs),
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Load a component as the host would, without serving it, and list its steps.
    Check {
        /// The `.wasm` file (its `NAME.toml` manifest beside it applies too).
        file: PathBuf,
    },
}

/// Flags that override `rte.toml` and `RTE_*` (each is a config key).
#[derive(clap::Args, Default)]
struct Overrides {
    /// Address to listen on.
    #[arg(long)]
    listen: Option<String>,
    /// Store URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Redis URL.
    #[arg(long)]
    redis_url: Option<String>,
    /// Plugins directory.
    #[arg(long)]
    plugins_dir: Option<String>,
    /// Saga definitions file.
    #[arg(long)]
    sagas_file: Option<String>,
    /// Admin bearer token.
    #[arg(long)]
    admin_token: Option<String>,
    /// Step call deadline.
    #[arg(long)]
    step_timeout: Option<String>,
    /// Saga deadline.
    #[arg(long)]
    tx_timeout: Option<String>,
    /// Step retries.
    #[arg(long)]
    max_retries: Option<String>,
    /// First retry delay.
    #[arg(long)]
    retry_interval: Option<String>,
    /// Any other key, as KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl Overrides {
    fn into_map(self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut map = BTreeMap::new();
        let named = [
            ("listen", self.listen),
            ("database_url", self.database_url),
            ("redis_url", self.redis_url),
            ("plugins_dir", self.plugins_dir),
            ("sagas_file", self.sagas_file),
            ("admin_token", self.admin_token),
            ("step_timeout", self.step_timeout),
            ("tx_timeout", self.tx_timeout),
            ("max_retries", self.max_retries),
            ("retry_interval", self.retry_interval),
        ];
        for (key, value) in named {
            if let Some(v) = value {
                map.insert(key.to_string(), v);
            }
        }
        for pair in self.set {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("--set `{pair}` must be KEY=VALUE"))?;
            map.insert(k.trim().to_string(), v.to_string());
        }
        Ok(map)
    }
}

fn load_config(
    path: &std::path::Path,
    overrides: Overrides,
    explicit: bool,
) -> anyhow::Result<Config> {
    let config = Config::load(
        Some(path),
        explicit,
        std::env::vars(),
        &overrides.into_map()?,
    )?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let explicit =
        std::env::args().any(|a| a == "--config" || a == "-c" || a.starts_with("--config="));
    // `step run` collects the plugin's logs for its report instead.
    if let Command::Step {
        command: StepCommand::Run(args),
    } = cli.command
    {
        let config = load_config(&cli.config, Overrides::default(), explicit)?;
        if !cli::step::run(&config, args).await? {
            std::process::exit(1);
        }
        return Ok(());
    }
    // Logs, and traces when OTLP is configured; dropping the guard flushes the spans.
    let _telemetry = rte_host::telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve(overrides) => {
            let config = load_config(&cli.config, overrides, explicit)?;
            let addr: std::net::SocketAddr = config
                .listen
                .parse()
                .with_context(|| format!("listen address `{}` is not host:port", config.listen))?;
            server::check_listen(&addr, config.admin_token.as_deref())?;
            // Serve while plugins compile: /readyz says which are still loading.
            let cache_dir = config.compiled_cache_dir();
            let host = Host::start_loading(config, cache_dir)
                .await
                .context("cannot start the host")?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            server::serve(listener, &host, shutdown_signal()).await?;
        }
        Command::Migrate(overrides) => {
            let config = load_config(&cli.config, overrides, explicit)?;
            let store = rte_host::store::open(
                &config.database_url,
                &rte_host::store::StoreOptions::from(&config),
            )
            .await
            .context("migration failed")?;
            println!("{}: schema up to date", store.summary());
        }
        Command::Bench(args) => rte_host::bench::run(args).await?,
        Command::Plugins {
            command: PluginsCommand::Check { file },
        } => {
            let config = load_config(&cli.config, Overrides::default(), explicit)?;
            check_plugin(&config, &file).await?;
        }
        Command::New {
            lang,
            name,
            dir,
            sdk_path,
        } => {
            let project = rte_host::scaffold::NewProject {
                lang,
                name,
                dir,
                sdk_path,
            };
            let dir = rte_host::scaffold::create(&project)?;
            println!(
                "created {} with step `{}`; see its README.md, then: cd {} && rte build",
                dir.display(),
                rte_host::scaffold::step_name(&project.name),
                dir.display()
            );
        }
        Command::Build { dir } => {
            let config = load_config(&cli.config, Overrides::default(), explicit)?;
            for file in cli::build::build(&dir)? {
                check_plugin(&config, &file).await?;
                println!("built {}", file.display());
            }
        }
        Command::Step { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// `rte plugins check`: the load error, or the steps as a table.
async fn check_plugin(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    use rte_host::plugin::{Limits, PluginRuntime, RuntimeOptions};
    let runtime = PluginRuntime::new(RuntimeOptions {
        limits: Limits::from_config(config),
        // The host's compiled-plugin cache: a second run of a large component starts at once.
        cache_dir: config.compiled_cache_dir(),
        max_instances: 16,
    })?;
    let plugin = runtime.inspect(file).await?;
    println!(
        "{}: a valid rte:saga@{} component, sha256 {}, {} steps",
        plugin.file,
        plugin.wit.as_str(),
        plugin.digest,
        plugin.steps.len()
    );
    let supports = |s: &rte_host::plugin::StepDescriptor| {
        let named = [
            (s.supports_compensation, "compensate"),
            (s.supports_idempotency, "idempotent"),
            (s.supports_confirm, "confirm"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect::<Vec<_>>();
        if named.is_empty() {
            "-".to_string()
        } else {
            named.join(",")
        }
    };
    let w = plugin.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    println!(
        "{:w$}  {:8}  {:12}  {:29}  DESCRIPTION",
        "STEP", "VERSION", "SERVICE", "SUPPORTS"
    );
    for s in &plugin.steps {
        println!(
            "{:w$}  {:8}  {:12}  {:29}  {}",
            s.name,
            s.version,
            s.service,
            supports(s),
            s.description
        );
    }
    // What each step declares of its policy (the saga definition and operator may override).
    for s in &plugin.steps {
        if let Some(policy) = &s.policy {
            println!("{} policy: {}", s.name, serde_json::to_string(policy)?);
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
