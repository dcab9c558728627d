//! The `rte serve` process: build the engine from a [`Config`], load and watch plugins,
//! and serve the API until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admin::{self, AppState};
use crate::breaker::Breakers;
use crate::config::Config;
use crate::engine::{Definitions, Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::events::EventBus;
use crate::plugin::{Limits, PluginRuntime, PluginWatcher, RuntimeOptions};
use crate::recovery::{RecoveryConfig, RecoveryWorker};
use crate::retention::RetentionWorker;

/// A running host: the engine and the workers around it. Dropping it stops the workers.
pub struct Host {
    /// The engine.
    pub engine: Engine,
    /// The configuration it was built from.
    pub config: Config,
    /// The recovery worker (its figures; it runs until the host is dropped).
    pub recovery: RecoveryWorker,
    _watcher: Option<PluginWatcher>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Host {
    /// Open the store (running migrations), set up the plugin runtime, load every plugin
    /// in `plugins_dir` and watch it, and build the engine.
    pub async fn start(config: Config) -> Result<Host> {
        let cache_dir = config.compiled_cache_dir();
        Self::start_with_cache(config, cache_dir).await
    }

    /// [`Host::start`] with compiled plugins cached in `cache_dir` (`None`: not cached).
    pub async fn start_with_cache(
        config: Config,
        cache_dir: Option<std::path::PathBuf>,
    ) -> Result<Host> {
        let host = Self::start_loading(config, cache_dir).await?;
        host.engine.plugins().wait_loaded().await;
        Ok(host)
    }

    /// [`Host::start_with_cache`], but return as soon as the store and engine are ready,
    /// with the plugins still compiling in the background: what `rte serve` does, so the
    /// API answers meanwhile. `/readyz` lists the plugins still loading; a saga that needs
    /// one of their steps waits for it (at most `plugin_load_wait`), then gets a `503`.
    /// Recovery starts once every plugin has loaded, so it never fails a saga whose
    /// plugin is still compiling.
    pub async fn start_loading(
        config: Config,
        cache_dir: Option<std::path::PathBuf>,
    ) -> Result<Host> {
        config.validate()?;
        let store = crate::store::open(
            &config.database_url,
            &crate::store::StoreOptions::from(&config),
        )
        .await?;
        tracing::info!(store = %store.summary(), "store ready");
        let locks =
            crate::lock::from_url(config.redis_url.as_deref(), &config.redis_prefix).await?;
        tracing::info!(locks = %locks.summary(), "locks ready");
        let runtime = Arc::new(PluginRuntime::new(RuntimeOptions {
            limits: Limits::from_config(&config),
            cache_dir,
            max_instances: 1000,
        })?);
        if config.plugins_dir.is_dir() {
            runtime.spawn_load_dir(&config.plugins_dir);
        } else {
            tracing::warn!(dir = %config.plugins_dir.display(), "plugins directory does not exist; no steps loaded");
        }
        let watcher = match PluginWatcher::start(runtime.clone(), &config.plugins_dir) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "not watching the plugins directory; reload needs a restart");
                None
            }
        };
        let definitions = Definitions::load(&config.sagas_file)?;
        let engine_config = EngineConfig::from(&config);
        let events = EventBus::new(config.event_log_size);
        let breakers = match &config.redis_url {
            Some(url) => {
                Breakers::redis(
                    engine_config.breaker,
                    events.clone(),
                    url,
                    &config.redis_prefix,
                )
                .await?
            }
            None => Breakers::new(engine_config.breaker, events.clone()),
        };
        tracing::info!(breakers = %breakers.summary(), "circuit breakers ready");
        // Every host shows every host's events: through Redis when there is one, else
        // through the database the hosts share.
        match &config.redis_url {
            Some(url) => {
                events
                    .relay_through_redis(url, &config.redis_prefix)
                    .await?
            }
            None => events.relay_through_store(store.clone()).await?,
        }
        let engine = Engine::builder(store, runtime)
            .locks(locks)
            .config(engine_config)
            .definitions(definitions)
            .events(events)
            .breakers(breakers)
            .build();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let recovery = RecoveryWorker::new(
            engine.clone(),
            RecoveryConfig {
                interval: config.recovery_interval,
                stuck_threshold: config.stuck_threshold,
                max_retries: config.max_retries,
            },
        );
        let (plugins, run) = (
            engine.plugins().clone(),
            recovery.clone().run(until_stopped(stopped.clone())),
        );
        tokio::spawn(async move {
            plugins.wait_loaded().await;
            run.await
        });
        // A host reports itself to the others once its plugins are in (its report lists
        // them, and its recovery worker is running by then).
        let (plugins, reports) = (
            engine.plugins().clone(),
            crate::cluster::run_reports(
                engine.clone(),
                recovery.clone(),
                config.redis_url.is_some(),
                until_stopped(stopped.clone()),
            ),
        );
        tokio::spawn(async move {
            plugins.wait_loaded().await;
            reports.await
        });
        tokio::spawn(crate::broker::sweep_waits(
            engine.clone(),
            config.wait_sweep_interval,
            until_stopped(stopped.clone()),
        ));
        if let Some(url) = config.nats_url.clone() {
            // Steps publish into the outbox from the start; the relay sends once the
            // broker answers (connecting again until it does).
            engine
                .plugins()
                .set_messaging(Some(crate::plugin::MessagingPolicy {
                    subjects: crate::broker::subject_list(&config.nats_subjects),
                    max_messages: 16,
                    max_bytes: 1 << 20,
                }));
            tokio::spawn(crate::broker::connect_and_run(
                engine.clone(),
                url,
                config.nats_subjects.clone(),
                until_stopped(stopped.clone()),
            ));
        }
        let housekeeping = RetentionWorker::new(
            engine.store().clone(),
            config.retention,
            config.recovery_interval.max(Duration::from_secs(1)),
        );
        tokio::spawn(housekeeping.run(until_stopped(stopped)));
        Ok(Host {
            engine,
            config,
            recovery,
            _watcher: watcher,
            _stop: stop,
        })
    }

    /// The API's shared state.
    pub fn app_state(&self) -> AppState {
        AppState {
            engine: self.engine.clone(),
            recovery: self.recovery.clone(),
            admin_token: self.config.admin_token.as_deref().map(Arc::from),
            max_body: (self.config.max_body_kb << 10) as usize,
            request_timeout: self.config.request_timeout,
        }
    }
}

/// Refuse to listen beyond loopback without an admin token.
pub fn check_listen(addr: &SocketAddr, admin_token: Option<&str>) -> Result<()> {
    if !addr.ip().is_loopback() && admin_token.is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "refusing to listen on {addr} without admin_token: set one (RTE_ADMIN_TOKEN) or listen on 127.0.0.1"
        )));
    }
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving plain HTTP beyond loopback: the admin token crosses the network in clear unless a TLS-terminating proxy is in front");
    }
    Ok(())
}

/// Longest a client may take to send a request's headers (slow senders hold a connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve the API on `listener` until `shutdown` resolves, then let running sagas finish
/// their current step for a short while. At most `server_max_connections` connections are
/// served at once, and a connection whose request headers take longer than
/// [`HEADER_READ_TIMEOUT`] is closed.
pub async fn serve(
    listener: TcpListener,
    host: &Host,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let max_connections = host.config.server_max_connections as usize;
    serve_app(
        listener,
        admin::router(host.app_state()),
        max_connections,
        shutdown,
    )
    .await?;
    host.engine.drain(Duration::from_secs(5)).await;
    Ok(())
}

/// Serve `app` on `listener` until `shutdown` resolves, at most `max_connections` at once
/// and with the header-read timeout of [`serve`], then give open requests a short grace
/// period.
pub async fn serve_app(
    listener: TcpListener,
    app: axum::Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(e.to_string()))?;
    tracing::info!(%addr, "serving the admin API and console");
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone().map_request(
            |req: axum::http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        ));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    // Open event streams never finish by themselves: give requests a grace period after
    // the signal, then stop regardless.
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(3)) => {
            tracing::info!("closing the connections still open");
        }
    }
    Ok(())
}
