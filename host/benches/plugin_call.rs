//! The plugin call on the hot path: a trivial step (`test_ok`) through
//! `PluginRuntime::execute`, against the floor wasmtime sets for the same work: the same
//! component on the same engine (so the same configuration: pooling allocator, epoch
//! interruption), pre-linked once, then per call a fresh store and instance and a typed call
//! of the `execute` export, with no sandbox policy, key-value overlay or output parsing.

mod support;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentType, InstancePre, Lift, Linker, Lower, ResourceTable,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use rte_host::plugin::{Limits, PluginRuntime, RuntimeOptions, StepCall};
use rte_host::store::TxStore;

const INPUT: &str = r#"{"n":1}"#;

/// `rte:saga/types.step-context`, lowered by hand instead of through `bindgen!`.
#[derive(ComponentType, Lower)]
#[component(record)]
struct Context {
    #[component(name = "tx-id")]
    tx_id: String,
    #[component(name = "tx-type")]
    tx_type: String,
    #[component(name = "step-name")]
    step_name: String,
    #[component(name = "step-index")]
    step_index: u32,
    attempt: u32,
    input: String,
    outputs: String,
    #[component(name = "execute-outcome")]
    execute_outcome: Outcome,
}

/// `rte:saga/types.execute-outcome`.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(enum)]
#[repr(u8)]
#[allow(dead_code)]
enum Outcome {
    #[component(name = "completed")]
    Completed,
    #[component(name = "unknown")]
    Unknown,
    #[component(name = "not-applicable")]
    NotApplicable,
}

/// `rte:saga/types.step-error`.
#[derive(ComponentType, Lift, Debug)]
#[component(variant)]
#[allow(dead_code)]
enum StepError {
    #[component(name = "retryable")]
    Retryable(String),
    #[component(name = "permanent")]
    Permanent(String),
}

/// What the bare path's store holds: WASI with nothing granted.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The bare floor: the component pre-linked against WASI only (other imports trap; the
/// trivial step calls none), and the `execute` export looked up once.
struct BarePath {
    pre: InstancePre<Bare>,
    execute: ComponentExportIndex,
}

impl BarePath {
    fn new(engine: &wasmtime::Engine, file: &std::path::Path) -> wasmtime::Result<Self> {
        let component = Component::from_file(engine, file)?;
        let mut linker = Linker::<Bare>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        linker.define_unknown_imports_as_traps(&component)?;
        let pre = linker.instantiate_pre(&component)?;
        let (_, step) = component
            .get_export(None, "rte:saga/step@0.1.0")
            .expect("the component exports rte:saga/step");
        let (_, execute) = component
            .get_export(Some(&step), "execute")
            .expect("rte:saga/step has execute");
        Ok(Self { pre, execute })
    }

    async fn call(&self, engine: &wasmtime::Engine) -> wasmtime::Result<String> {
        let mut store = Store::new(
            engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        // The engine interrupts on epochs; yield at each tick as the runtime does.
        store.epoch_deadline_async_yield_and_update(1);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let execute = instance.get_typed_func::<(&str, &Context), (Result<String, StepError>,)>(
            &mut store,
            &self.execute,
        )?;
        let ctx = Context {
            tx_id: "bench".into(),
            tx_type: "bench".into(),
            step_name: "test_ok".into(),
            step_index: 0,
            attempt: 1,
            input: INPUT.into(),
            outputs: "{}".into(),
            execute_outcome: Outcome::NotApplicable,
        };
        let (out,) = execute.call_async(&mut store, ("test_ok", &ctx)).await?;
        out.map_err(|e| wasmtime::format_err!("test_ok failed: {e:?}"))
    }
}

fn plugin_call(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let file = support::plugin("testkit");
    let db = tempfile::tempdir().expect("temp dir");
    let (runtime, store) = rt.block_on(async {
        let runtime = PluginRuntime::new(RuntimeOptions {
            limits: Limits {
                memory_bytes: 64 << 20,
                timeout: std::time::Duration::from_secs(10),
                max_output_bytes: 1 << 20,
                ..Limits::default()
            },
            cache_dir: None,
            max_instances: 1000,
        })
        .expect("plugin runtime");
        runtime.load_file(&file).await.expect("testkit loads");
        let url = format!("sqlite://{}", db.path().join("bench.db").display());
        let store: Arc<dyn TxStore> = rte_host::store::from_url(&url).await.expect("store");
        (runtime, store)
    });
    let plugin = runtime.plugin_for("test_ok").expect("test_ok is loaded");
    let call = StepCall {
        tx_id: "bench".into(),
        tx_type: "bench".into(),
        step_name: "test_ok".into(),
        step_index: 0,
        attempt: 1,
        input: INPUT.into(),
        outputs: "{}".into(),
        execute_completed: None,
        traceparent: None,
        timeout: None,
    };
    let engine = runtime.engine().clone();
    let bare = BarePath::new(&engine, &file).expect("bare path links");
    let out = rt.block_on(bare.call(&engine)).expect("bare call");
    assert!(out.contains("\"n\""), "test_ok echoes its input: {out}");

    let mut group = c.benchmark_group("plugin_call");
    group.bench_function("runtime_execute", |b| {
        b.to_async(&rt).iter(|| async {
            runtime
                .execute(&plugin, &call, store.clone())
                .await
                .expect("test_ok succeeds")
        })
    });
    group.bench_function("bare_wasmtime", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.call(&engine).await.expect("test_ok succeeds") })
    });
    group.finish();

    // Percentiles and throughput, which criterion's estimates do not give: per-call latency
    // p50/p99 and calls per second at concurrency 1, 2 and 4, host path against bare cycle.
    let runtime = Arc::new(runtime);
    let (plugin, call, bare) = (Arc::new(plugin), Arc::new(call), Arc::new(bare));
    for concurrency in [1usize, 2, 4] {
        let host = rt.block_on(measure(concurrency, {
            let (runtime, plugin, call, store) =
                (runtime.clone(), plugin.clone(), call.clone(), store.clone());
            move || {
                let (runtime, plugin, call, store) =
                    (runtime.clone(), plugin.clone(), call.clone(), store.clone());
                async move {
                    runtime
                        .execute(&plugin, &call, store)
                        .await
                        .expect("test_ok succeeds");
                }
            }
        }));
        let floor = rt.block_on(measure(concurrency, {
            let (bare, engine) = (bare.clone(), engine.clone());
            move || {
                let (bare, engine) = (bare.clone(), engine.clone());
                async move {
                    bare.call(&engine).await.expect("test_ok succeeds");
                }
            }
        }));
        println!(
            "plugin_call c={concurrency}: host p50 {:.1} µs p99 {:.1} µs {:.0} calls/s | bare p50 {:.1} µs p99 {:.1} µs {:.0} calls/s | host/bare p50 {:.2}x",
            host.0,
            host.1,
            host.2,
            floor.0,
            floor.1,
            floor.2,
            host.0 / floor.0
        );
    }
}

/// Run `call` from `concurrency` tasks for about two seconds; returns p50 and p99 in µs and
/// calls per second.
async fn measure<F, Fut>(concurrency: usize, call: F) -> (f64, f64, f64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let window = std::time::Duration::from_secs(2);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while started.elapsed() < window {
                    let t = std::time::Instant::now();
                    call().await;
                    samples.push(t.elapsed().as_secs_f64() * 1e6);
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("bench task"));
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize];
    (pick(0.5), pick(0.99), all.len() as f64 / secs)
}

criterion_group!(benches, plugin_call);
criterion_main!(benches);
