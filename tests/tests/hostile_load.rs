//! Hostile components at load: files built here whose compile would take gigabytes or
//! minutes, or crash the host (components nested thousands deep, types nested deeper than a
//! thread's stack, huge functions of nested blocks, instantiation fanned out level by level,
//! extra memories). Each is refused before compile with the bound it crosses, or fails
//! clearly at its first instantiation, while the host keeps its memory under a stated bound
//! and its other plugins keep serving. The example plugins pass every bound with room.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rte_tests::process::HostProcess;
use rte_tests::rte_host::plugin::bounds::{LoadBounds, scan};
use rte_tests::rte_host::plugin::{Limits, PluginError, PluginRuntime, RuntimeOptions};
use serde_json::{Value, json};
use wasm_encoder::{
    CodeSection, Component, ComponentInstanceSection, Encode, Function, FunctionSection,
    InstanceSection, MemorySection, MemoryType, Module, ModuleArg, ModuleSection,
    NestedComponentSection, TypeSection,
};
use wasmparser::BinaryReader;

/// The most resident memory the host may reach while it refuses every hostile file below (it
/// peaks near 65 MiB). Without the bounds, the nested components alone take 4.3 GiB, the
/// blocks one after another 350 MiB and four and a half minutes, and the nested types abort
/// the host.
const HOST_MEMORY_BOUND_MIB: u64 = 256;

const COMPONENT_HEADER: [u8; 8] = *b"\0asm\x0d\0\x01\0";
/// Section ids: a core module in a component; the memories of a core module.
const MODULE_SECTION: u8 = 1;
const MEMORY_SECTION: u8 = 5;

/// Components nested `depth` deep (the outermost is depth 1), written outside in. At 15,000
/// levels the file is 179 KB, and compiling it would take 4.3 GiB.
fn nested_components(depth: usize) -> Vec<u8> {
    let mut sizes = vec![COMPONENT_HEADER.len()];
    for k in 1..depth {
        let mut size = Vec::new();
        sizes[k - 1].encode(&mut size);
        sizes.push(COMPONENT_HEADER.len() + 1 + size.len() + sizes[k - 1]);
    }
    let mut out = Vec::with_capacity(sizes[depth - 1]);
    for k in (0..depth).rev() {
        out.extend(COMPONENT_HEADER);
        if k > 0 {
            out.push(4);
            sizes[k - 1].encode(&mut out);
        }
    }
    out
}

/// One component type holding component types nested `depth` deep. A few thousand levels
/// overflow the stack of the parser's recursive reader: without the bound, a 6 KB file would
/// abort the host at every start.
fn nested_types(depth: usize) -> Vec<u8> {
    let mut section = vec![1];
    for _ in 1..depth {
        section.extend([0x41, 1, 0x01]);
    }
    section.extend([0x41, 0]);
    let mut out = COMPONENT_HEADER.to_vec();
    out.push(7);
    section.len().encode(&mut out);
    out.extend(section);
    out
}

/// A component instantiating a module of `functions` copies of `body` (`[] -> []`, no
/// locals; `body` ends in `end`).
fn component_of_functions(functions: usize, body: &[u8]) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    let mut code = CodeSection::new();
    for _ in 0..functions {
        funcs.function(0);
        let mut f = Function::new([]);
        f.raw(body.iter().copied());
        code.function(&f);
    }
    m.section(&funcs);
    m.section(&code);
    instantiating(&m).finish()
}

fn instantiating(module: &Module) -> Component {
    let mut c = Component::new();
    c.section(&ModuleSection(module));
    let mut instances = InstanceSection::new();
    instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
    c.section(&instances);
    c
}

/// A function body of `groups` runs of `depth` nested blocks.
fn blocks(groups: usize, depth: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(groups * depth * 3 + 1);
    for _ in 0..groups {
        body.extend([0x02, 0x40].repeat(depth));
        body.extend(vec![0x0b; depth]);
    }
    body.push(0x0b);
    body
}

/// `depth` levels of components, each instantiating the one inside it `fanout` times: a file
/// of a few hundred bytes that asks the compiler to inline `fanout^(depth-1)` instances.
fn fan_out(depth: u32, fanout: u32) -> Vec<u8> {
    let mut c = instantiating(&Module::new());
    for _ in 1..depth {
        let mut outer = Component::new();
        outer.section(&NestedComponentSection(&c));
        let mut instances = ComponentInstanceSection::new();
        for _ in 0..fanout {
            instances.instantiate(0, Vec::<(&str, _, u32)>::new());
        }
        outer.section(&instances);
        c = outer;
    }
    c.finish()
}

/// The sections of a module or component: id and contents.
fn sections(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>> {
    let mut reader = BinaryReader::new(&bytes[8..], 8);
    let mut out = Vec::new();
    while !reader.eof() {
        let id = reader.read_u8()?;
        let len = reader.read_var_u32()? as usize;
        out.push((id, reader.read_bytes(len)?));
    }
    Ok(out)
}

fn rebuild(header: &[u8], sections: Vec<(u8, Vec<u8>)>) -> Vec<u8> {
    let mut out = header[..8].to_vec();
    for (id, content) in sections {
        out.push(id);
        content.len().encode(&mut out);
        out.extend(content);
    }
    out
}

/// `component` (a real plugin) with `count` more memories of `min_mib` MiB each in the core
/// module that defines its memory.
fn with_extra_memories(component: &[u8], count: u32, min_mib: u32) -> Result<Vec<u8>> {
    let mut grown = false;
    let mut out = Vec::new();
    for (id, content) in sections(component)? {
        let module = match id {
            MODULE_SECTION if !grown => sections(content)?,
            _ => {
                out.push((id, content.to_vec()));
                continue;
            }
        };
        if !module.iter().any(|(id, _)| *id == MEMORY_SECTION) {
            out.push((id, content.to_vec()));
            continue;
        }
        let mut grown_module = Vec::new();
        for (inner, memories) in module {
            if inner != MEMORY_SECTION {
                grown_module.push((inner, memories.to_vec()));
                continue;
            }
            let mut reader = BinaryReader::new(memories, 0);
            let declared = reader.read_var_u32()?;
            let mut section = Vec::new();
            (declared + count).encode(&mut section);
            section.extend(&memories[reader.current_position()..]);
            for _ in 0..count {
                // No maximum; the minimum in 64 KiB pages.
                section.push(0x00);
                (min_mib * 16).encode(&mut section);
            }
            grown_module.push((inner, section));
        }
        out.push((id, rebuild(content, grown_module)));
        grown = true;
    }
    anyhow::ensure!(grown, "no core module of the component defines a memory");
    Ok(rebuild(component, out))
}

/// `component` (a real plugin) with `count` more core modules, each defining one memory of
/// `min_mib` MiB, instantiated once each.
fn with_memory_modules(component: &[u8], count: u32, min_mib: u32) -> Result<Vec<u8>> {
    let modules = sections(component)?
        .iter()
        .filter(|(id, _)| *id == MODULE_SECTION)
        .count() as u32;
    let mut memory = Module::new();
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: u64::from(min_mib) * 16,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    memory.section(&memories);
    let mut extra = Component::new();
    let mut instances = InstanceSection::new();
    for i in 0..count {
        extra.section(&ModuleSection(&memory));
        instances.instantiate(modules + i, Vec::<(&str, ModuleArg)>::new());
    }
    extra.section(&instances);
    let extra = extra.finish();
    Ok([component, &extra[COMPONENT_HEADER.len()..]].concat())
}

/// Every bound at half its default still admits each example plugin: the defaults leave the
/// real plugins room to grow.
#[test]
fn example_plugins_pass_half_of_every_load_bound() -> Result<()> {
    let d = LoadBounds::default();
    let half = LoadBounds {
        max_file_bytes: d.max_file_bytes / 2,
        max_nesting: d.max_nesting / 2,
        max_modules: d.max_modules / 2,
        max_components: d.max_components / 2,
        max_core_instances: d.max_core_instances / 2,
        max_component_instances: d.max_component_instances / 2,
        max_memories: d.max_memories / 2,
        max_functions: d.max_functions / 2,
        max_function_bytes: d.max_function_bytes / 2,
        max_block_depth: d.max_block_depth / 2,
        max_function_blocks: d.max_function_blocks / 2,
        max_code_bytes: d.max_code_bytes / 2,
        compile_timeout: d.compile_timeout / 2,
    };
    let rust = ["bank", "travel", "testkit", "http", "legacy"].map(rte_tests::plugin);
    let polyglot =
        ["python", "js"].map(|p| rte_tests::polyglot::polyglot_dir().join(format!("{p}.wasm")));
    for path in rust.iter().chain(&polyglot) {
        let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
        let shape = scan(&bytes, &half).with_context(|| path.display().to_string())?;
        // The biggest, the Python interpreter, is the one that sets the margins.
        if path.ends_with("python.wasm") {
            assert!(
                shape.functions > 10_000 && shape.core_instances > 10,
                "{shape:?}"
            );
        }
    }
    Ok(())
}

/// The host's peak resident memory so far, from the kernel.
fn peak_rss_mib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    Ok(kb >> 10)
}

/// The `rte` process this test started over `plugins_dir` (its own child).
fn host_pid(plugins_dir: &Path) -> Result<u32> {
    let me = std::process::id().to_string();
    let wanted = plugins_dir.display().to_string();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let (Ok(stat), Ok(cmdline)) = (
            std::fs::read_to_string(entry.path().join("stat")),
            std::fs::read(entry.path().join("cmdline")),
        ) else {
            continue;
        };
        // `pid (comm) state ppid …`: the parent is the fourth field after the comm.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1));
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if ppid == Some(me.as_str()) && args.contains(&wanted) {
            return Ok(pid);
        }
    }
    anyhow::bail!("no rte process serving {wanted}")
}

/// Run one `test_ok` saga on the host and check it completes.
async fn assert_serves(host: &HostProcess) -> Result<()> {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/api/transactions?wait=60s", host.url))
        .json(&json!({"steps": ["test_ok"], "input": {"after": true}}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    Ok(())
}

fn plugin_error<'a>(plugins: &'a Value, file: &str) -> &'a str {
    plugins["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["file"] == file))
        .and_then(|p| p["error"].as_str())
        .unwrap_or_default()
}

/// A real `rte` process starts over a plugins directory of hostile files beside `testkit`:
/// each is refused with the bound it crosses (or the memory cap, at its first instantiation),
/// `testkit` serves, a hostile file added later is refused by the watcher, and the host's peak
/// resident memory stays under [`HOST_MEMORY_BOUND_MIB`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_components_are_refused_at_load_within_bounded_memory() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    let testkit = std::fs::read(rte_tests::plugin("testkit"))?;
    // File, contents, and what its load error must say.
    let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "deep_components.wasm",
            nested_components(15_000),
            "nests components 17 deep; the limit is 16 (plugin_max_nesting)",
        ),
        (
            "deep_types.wasm",
            nested_types(100_000),
            "nests component types 17 deep; the limit is 16 (plugin_max_nesting)",
        ),
        (
            "huge_function.wasm",
            component_of_functions(1, &blocks(1, 2_000_000)),
            "has a function body of 6000002 bytes; the limit is 2097152 (plugin_max_function_kb)",
        ),
        (
            "deep_blocks.wasm",
            component_of_functions(1, &blocks(1, 100_000)),
            "nests blocks 100000 deep in one function; the limit is 5000 (plugin_max_block_depth)",
        ),
        (
            // A megabyte of blocks one after another: several minutes of compile.
            "many_blocks.wasm",
            component_of_functions(1, &blocks(350_000, 1)),
            "has 350000 blocks in one function; the limit is 10000 (plugin_max_function_blocks)",
        ),
        (
            "fan_out.wasm",
            fan_out(11, 4),
            "would create 255 component instances; the limit is 200",
        ),
        (
            "many_memories.wasm",
            with_extra_memories(&testkit, 31, 63)?,
            "would create 32 linear memories; the limit is 16",
        ),
        (
            // Within the bounds: its memories together pass the memory cap at the first
            // instantiation, the steps() call at load.
            "memory_hog.wasm",
            with_memory_modules(&testkit, 3, 24)?,
            "plugin exceeded its memory limit of 32 MiB",
        ),
    ];
    for (file, bytes, _) in &hostile {
        std::fs::write(plugins.join(file), bytes)?;
    }
    let cache = dir.path().join("cache");
    let host = HostProcess::start(
        dir.path(),
        &["testkit"],
        &[
            "plugin_memory_mb=32",
            &format!("plugin_cache_dir={}", cache.display()),
        ],
    )?;
    let listed = host
        .poll("/api/plugins", |v| {
            v["plugins"]
                .as_array()
                .is_some_and(|ps| ps.len() == hostile.len() + 1)
        })
        .await?;
    for (file, _, needle) in &hostile {
        let err = plugin_error(&listed, file);
        assert!(err.contains(needle), "{file}: `{needle}` not in: {err}");
    }
    assert_eq!(plugin_error(&listed, "testkit.wasm"), "", "{listed}");
    assert_serves(&host).await?;

    // One more while it runs: the watcher refuses it the same way.
    std::fs::write(plugins.join("late.wasm"), nested_types(100_000))?;
    let listed = host
        .poll("/api/plugins", |v| !plugin_error(v, "late.wasm").is_empty())
        .await?;
    assert!(
        plugin_error(&listed, "late.wasm").contains("(plugin_max_nesting)"),
        "{listed}"
    );
    assert_serves(&host).await?;

    let peak = peak_rss_mib(host_pid(&plugins)?)?;
    assert!(
        peak < HOST_MEMORY_BOUND_MIB,
        "the host peaked at {peak} MiB, over {HOST_MEMORY_BOUND_MIB} MiB"
    );
    host.kill();
    Ok(())
}

/// A component within every bound whose compile takes seconds fails its load at a 1ms
/// `plugin_compile_timeout`, with the setting named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_past_its_timeout_fails_the_load() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Within every bound, yet seconds of compile: 40 functions of 9,000 blocks each.
    let slow = dir.path().join("slow.wasm");
    let bytes = component_of_functions(40, &blocks(9_000, 1));
    scan(&bytes, &LoadBounds::default())?;
    std::fs::write(&slow, bytes)?;
    let runtime = PluginRuntime::new(RuntimeOptions {
        limits: Limits {
            load: LoadBounds {
                compile_timeout: Duration::from_millis(1),
                ..LoadBounds::default()
            },
            ..Limits::default()
        },
        cache_dir: None,
        max_instances: 16,
    })?;
    match runtime.inspect(&slow).await {
        Err(PluginError::Load { file, message, .. }) => {
            assert_eq!(file, "slow.wasm");
            assert!(
                message.contains("compiling took longer than 1ms (plugin_compile_timeout)"),
                "{message}"
            );
        }
        Err(other) => panic!("not a load error: {other}"),
        Ok(_) => panic!("a compile of seconds beat a 1ms timeout"),
    }
    // A refused file keeps the error beneath its reason, for callers to inspect. A runtime of
    // default limits checks it: at 1ms even a tiny file's compile may time out first.
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x0d\0\x01\0\xff\xff")?;
    let runtime = PluginRuntime::new(RuntimeOptions {
        limits: Limits::default(),
        cache_dir: None,
        max_instances: 16,
    })?;
    match runtime.inspect(&broken).await {
        Err(e @ PluginError::Load { .. }) => {
            assert!(std::error::Error::source(&e).is_some(), "{e}");
        }
        Err(other) => panic!("not a load error: {other}"),
        Ok(_) => panic!("a broken file loaded"),
    }
    Ok(())
}
