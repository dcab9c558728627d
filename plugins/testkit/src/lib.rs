//! Steps any saga can use to show how the host behaves: success, delays, retryable and
//! permanent errors, traps, runaway loops, memory spikes and exhaustion, stack exhaustion,
//! huge outputs, failing compensations, counted effects, and a booking (`test_reserve`,
//! `test_charge`) whose steps share one client-chosen idempotency key.
//!
//! Every step supports compensation (a no-op unless its docs say otherwise), so a saga can put
//! any of them before a failing step to watch compensation run.

use std::hint::black_box;
use std::thread;
use std::time::Duration;

use rte_plugin_sdk::{
    Step, StepContext, StepError, StepInfo, StepPolicy, config, export_steps, kv, log, messaging,
};

export_steps!(
    TestOk,
    TestPrint,
    TestSleep,
    TestFlaky,
    TestPolicy,
    TestFail,
    TestTrap,
    TestSpin,
    TestOom,
    TestRecurse,
    TestBigOutput,
    TestBadCompensation,
    TestKvCounter,
    TestKvPut,
    TestReserve,
    TestCharge,
    TestLog,
    TestConfirm,
    TestKvRead,
    TestFlood,
    TestBranch,
    TestAlloc,
    TestPublish,
    TestWait,
);

/// Info shared by every testkit step.
fn info(name: &str, description: &str) -> StepInfo {
    StepInfo::new(name)
        .service("testkit")
        .compensation(true)
        .description(description)
}

/// `test_ok`: copies every input key into its outputs.
#[derive(Default)]
pub struct TestOk;

impl Step for TestOk {
    fn info() -> StepInfo {
        info("test_ok", "succeed, echoing the input as outputs")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        for (key, value) in ctx.input_map().clone() {
            ctx.set_output(key, value)?;
        }
        Ok(())
    }
}

/// `test_sleep`: sleeps `sleep_ms` (default 100) milliseconds; output `slept_ms`.
#[derive(Default)]
pub struct TestSleep;

impl Step for TestSleep {
    fn info() -> StepInfo {
        info("test_sleep", "sleep sleep_ms milliseconds (default 100)")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let ms: u64 = ctx.input_as::<Option<u64>>("sleep_ms")?.unwrap_or(100);
        // A WASI clock wait: the host's deadline can still interrupt it.
        thread::sleep(Duration::from_millis(ms));
        ctx.set_output("slept_ms", ms)
    }
}

/// `test_flaky`: a retryable error on attempts up to `flaky_times` (default 1), then success
/// with output `attempts`.
#[derive(Default)]
pub struct TestFlaky;

impl Step for TestFlaky {
    fn info() -> StepInfo {
        info(
            "test_flaky",
            "fail retryably on the first flaky_times attempts (default 1)",
        )
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let flaky_times: u32 = ctx.input_as::<Option<u32>>("flaky_times")?.unwrap_or(1);
        let attempt = ctx.attempt();
        if attempt <= flaky_times {
            return Err(StepError::retryable(format!(
                "test_flaky: attempt {attempt} of {flaky_times} failing attempts"
            )));
        }
        ctx.set_output("attempts", attempt)
    }
}

/// `test_policy`: declares its own policy (1 retry, 10 ms apart; 500 ms per call; not
/// idempotent). Sleeps `sleep_ms` (default 0), then fails retryably on attempts up to
/// `flaky_times` (default 0); else outputs `attempts`.
#[derive(Default)]
pub struct TestPolicy;

impl Step for TestPolicy {
    fn info() -> StepInfo {
        info(
            "test_policy",
            "a step with its own retries, backoff and timeout, not idempotent",
        )
        .policy(
            StepPolicy::new()
                .retries(1)
                .backoff(Duration::from_millis(10), Duration::from_millis(10))
                .timeout(Duration::from_millis(500))
                .idempotent(false),
        )
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let ms: u64 = ctx.input_as::<Option<u64>>("sleep_ms")?.unwrap_or(0);
        thread::sleep(Duration::from_millis(ms));
        let flaky_times: u32 = ctx.input_as::<Option<u32>>("flaky_times")?.unwrap_or(0);
        let attempt = ctx.attempt();
        if attempt <= flaky_times {
            return Err(StepError::retryable(format!(
                "test_policy: attempt {attempt} of {flaky_times} failing attempts"
            )));
        }
        ctx.set_output("attempts", attempt)
    }
}

/// `test_fail`: always a permanent error, padded to `error_bytes` more bytes if given.
#[derive(Default)]
pub struct TestFail;

impl Step for TestFail {
    fn info() -> StepInfo {
        info("test_fail", "always fail permanently")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        // `error_bytes`: pad the message to this length, as a hostile plugin might.
        let pad = ctx.input_as::<Option<usize>>("error_bytes")?.unwrap_or(0);
        Err(StepError::permanent(format!(
            "test_fail: permanent failure{}",
            "x".repeat(pad)
        )))
    }
}

/// `test_trap`: panics, which traps the component.
#[derive(Default)]
pub struct TestTrap;

impl Step for TestTrap {
    fn info() -> StepInfo {
        info("test_trap", "panic")
    }

    fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        panic!("test_trap: deliberate panic")
    }
}

/// `test_spin`: loops forever, until the host's deadline stops it.
#[derive(Default)]
pub struct TestSpin;

impl Step for TestSpin {
    fn info() -> StepInfo {
        info("test_spin", "loop forever")
    }

    fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        let mut n = 0u64;
        loop {
            // Opaque to the optimiser, so the loop is not removed as side-effect free.
            n = black_box(n.wrapping_add(1));
        }
    }
}

/// `test_oom`: allocates without bound, until the host's memory cap stops it.
#[derive(Default)]
pub struct TestOom;

impl Step for TestOom {
    fn info() -> StepInfo {
        info("test_oom", "allocate memory without bound")
    }

    fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        let mut hoard = Vec::new();
        loop {
            // Non-zero bytes touch every page; black_box keeps each chunk alive in practice.
            hoard.push(black_box(vec![0xA5u8; 1 << 20]));
            black_box(&hoard);
        }
    }
}

/// `test_recurse`: recurses without bound, until the stack overflows.
#[derive(Default)]
pub struct TestRecurse;

impl Step for TestRecurse {
    fn info() -> StepInfo {
        info("test_recurse", "recurse without bound")
    }

    fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        let depth = recurse(0);
        Err(StepError::permanent(format!(
            "test_recurse: returned at depth {depth}"
        )))
    }
}

/// Work after the call keeps it from being a tail call or a loop. Frames stay small so the
/// engine's call stack overflows (a clean stack-overflow trap) before the shadow stack in
/// linear memory does (an out-of-bounds access).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // Never true, but opaque: the compiler cannot prove the recursion endless.
    if black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1).wrapping_add(black_box(depth))
}

/// `test_big_output`: output `data`, a string of `bytes` bytes (default 16 MiB).
#[derive(Default)]
pub struct TestBigOutput;

impl Step for TestBigOutput {
    fn info() -> StepInfo {
        info(
            "test_big_output",
            "output a string of `bytes` bytes (default 16 MiB)",
        )
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let bytes: usize = ctx.input_as::<Option<usize>>("bytes")?.unwrap_or(16 << 20);
        ctx.set_output("data", "x".repeat(bytes))
    }
}

/// `test_bad_compensation`: execute succeeds; compensation always fails retryably.
#[derive(Default)]
pub struct TestBadCompensation;

impl Step for TestBadCompensation {
    fn info() -> StepInfo {
        info(
            "test_bad_compensation",
            "succeed, but fail every compensation",
        )
    }

    fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        Ok(())
    }

    fn compensate(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        Err(StepError::retryable(
            "test_bad_compensation: compensation always fails",
        ))
    }
}

/// `test_kv_counter`: increments `counter/{key}` (input `key`, default `default`) and outputs
/// the new `count`; compensation decrements it.
///
/// Execute deliberately counts every call, so a count above one per saga exposes a duplicate
/// execution. Compensation undoes one increment only if this saga step made one.
#[derive(Default)]
pub struct TestKvCounter;

impl TestKvCounter {
    fn counter_key(ctx: &StepContext) -> Result<String, StepError> {
        let key = ctx.input_as::<Option<String>>("key")?;
        Ok(format!("counter/{}", key.as_deref().unwrap_or("default")))
    }

    fn marker_key(ctx: &StepContext) -> String {
        format!("counted/{}/{}", ctx.tx_id(), ctx.step_index())
    }
}

impl Step for TestKvCounter {
    fn info() -> StepInfo {
        info("test_kv_counter", "increment counter/{key} in kv").idempotency(true)
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let key = Self::counter_key(ctx)?;
        let count = kv::get_json::<i64>(&key)?.unwrap_or(0) + 1;
        kv::set_json(&key, &count)?;
        kv::set(&Self::marker_key(ctx), "1")?;
        ctx.set_output("count", count)
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let marker = Self::marker_key(ctx);
        if kv::get(&marker)?.is_none() {
            return Ok(());
        }
        let key = Self::counter_key(ctx)?;
        let count = kv::get_json::<i64>(&key)?.unwrap_or(0) - 1;
        kv::set_json(&key, &count)?;
        kv::delete(&marker)
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        Some(format!("counter:{}:{}", ctx.tx_id(), ctx.step_index()))
    }
}

/// `test_kv_put`: `test_kv_counter`'s writes without its read: sets `counter/{key}` to the
/// step's index and marks the call, with the same idempotency key. The baseline that shows
/// what checking a read key's version costs.
#[derive(Default)]
pub struct TestKvPut;

impl Step for TestKvPut {
    fn info() -> StepInfo {
        info("test_kv_put", "set counter/{key} in kv without reading it").idempotency(true)
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let key = TestKvCounter::counter_key(ctx)?;
        let value = i64::from(ctx.step_index());
        kv::set_json(&key, &value)?;
        kv::set(&TestKvCounter::marker_key(ctx), "1")?;
        ctx.set_output("count", value)
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        Some(format!("put:{}:{}", ctx.tx_id(), ctx.step_index()))
    }
}

/// Add `delta` to the integer under `key`, and record under `marker` that this saga step
/// did, so its compensation undoes exactly one addition.
fn add_marked(key: &str, delta: i64, marker: &str) -> Result<i64, StepError> {
    let total = kv::get_json::<i64>(key)?.unwrap_or(0) + delta;
    kv::set_json(key, &total)?;
    kv::set_json(marker, &delta)?;
    Ok(total)
}

/// Undo what [`add_marked`] recorded under `marker`, if anything.
fn undo_marked(key: &str, marker: &str) -> Result<(), StepError> {
    let Some(delta) = kv::get_json::<i64>(marker)? else {
        return Ok(());
    };
    let total = kv::get_json::<i64>(key)?.unwrap_or(0) - delta;
    kv::set_json(key, &total)?;
    kv::delete(marker)
}

/// The client's booking reference (input `booking`), which both booking steps use as their
/// idempotency key, as a client retrying a booking would.
fn booking(ctx: &StepContext) -> Result<String, StepError> {
    ctx.input_as::<Option<String>>("booking")?
        .ok_or_else(|| StepError::permanent("input `booking` is required"))
}

fn step_marker(what: &str, ctx: &StepContext) -> String {
    format!("{what}/{}/{}", ctx.tx_id(), ctx.step_index())
}

/// `test_reserve`: holds a seat on `flight` (default `F1`): adds one to `seats/{flight}`
/// and outputs the new `seats_held`; compensation gives the seat back. Its idempotency key
/// is the input `booking`.
#[derive(Default)]
pub struct TestReserve;

impl TestReserve {
    fn seats_key(ctx: &StepContext) -> Result<String, StepError> {
        let flight = ctx.input_as::<Option<String>>("flight")?;
        Ok(format!("seats/{}", flight.as_deref().unwrap_or("F1")))
    }
}

impl Step for TestReserve {
    fn info() -> StepInfo {
        info("test_reserve", "hold a seat on flight (key: booking)").idempotency(true)
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let held = add_marked(&Self::seats_key(ctx)?, 1, &step_marker("reserved", ctx))?;
        ctx.set_output("seats_held", held)
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        undo_marked(&Self::seats_key(ctx)?, &step_marker("reserved", ctx))
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        booking(ctx).ok()
    }
}

/// `test_charge`: charges `amount_cents` (default 100) to the booking: adds it to
/// `charged/{booking}` and outputs the new `charged_cents`; compensation refunds it. Its
/// idempotency key is the input `booking`, the same text as `test_reserve`'s.
#[derive(Default)]
pub struct TestCharge;

impl Step for TestCharge {
    fn info() -> StepInfo {
        info(
            "test_charge",
            "charge amount_cents to booking (key: booking)",
        )
        .idempotency(true)
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let amount = ctx.input_as::<Option<i64>>("amount_cents")?.unwrap_or(100);
        let key = format!("charged/{}", booking(ctx)?);
        let charged = add_marked(&key, amount, &step_marker("charge", ctx))?;
        ctx.set_output("charged_cents", charged)
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let key = format!("charged/{}", booking(ctx)?);
        undo_marked(&key, &step_marker("charge", ctx))
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        booking(ctx).ok()
    }
}

/// `test_print`: writes input `message` (default `test_print`) and a line number to stdout
/// `lines` times (default 1), then the message once to stderr; outputs `printed`.
#[derive(Default)]
pub struct TestPrint;

impl Step for TestPrint {
    fn info() -> StepInfo {
        info(
            "test_print",
            "print message to stdout lines times, then once to stderr",
        )
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let message = ctx.input_as::<Option<String>>("message")?;
        let message = message.as_deref().unwrap_or("test_print");
        let lines = ctx.input_as::<Option<u32>>("lines")?.unwrap_or(1);
        for i in 0..lines {
            println!("{message} {i}");
        }
        eprintln!("{message} on stderr");
        ctx.set_output("printed", lines)
    }
}

/// `test_publish`: publishes `count` (default 1) messages to `subject` (default
/// `rte.requests.test`), each its index as JSON, then fails permanently when the input
/// `fail` is true; outputs `published`.
#[derive(Default)]
pub struct TestPublish;

impl Step for TestPublish {
    fn info() -> StepInfo {
        info(
            "test_publish",
            "publish count messages to subject, then fail if fail is set",
        )
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let subject = ctx.input_as::<Option<String>>("subject")?;
        let subject = subject.as_deref().unwrap_or("rte.requests.test");
        let count = ctx.input_as::<Option<u32>>("count")?.unwrap_or(1);
        for i in 0..count {
            messaging::publish_json(subject, &i, &[("Test-Index", &i.to_string())])?;
        }
        if ctx.input_as::<Option<bool>>("fail")?.unwrap_or(false) {
            return Err(StepError::permanent("failing after publishing, as asked"));
        }
        ctx.set_output("published", count)
    }
}

/// `test_wait`: waits for the reply `{tx_id}:test_wait:{step_index}:{attempt}` for
/// `wait_ms` (default one minute), publishing nothing (answer it through the API). Its
/// on-reply outputs the reply's payload as `reply` (JSON, or text); an error answer fails
/// it permanently, a timeout retryably.
#[derive(Default)]
pub struct TestWait;

impl Step for TestWait {
    fn info() -> StepInfo {
        info(
            "test_wait",
            "wait for a reply (answer it through the API), output its payload as reply",
        )
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let wait_ms = ctx.input_as::<Option<u64>>("wait_ms")?.unwrap_or(60_000);
        let id = format!(
            "{}:test_wait:{}:{}",
            ctx.tx_id(),
            ctx.step_index(),
            ctx.attempt()
        );
        ctx.wait_for_reply(id, std::time::Duration::from_millis(wait_ms));
        Ok(())
    }

    fn on_reply(
        &self,
        ctx: &mut StepContext,
        reply: &rte_plugin_sdk::Reply,
    ) -> Result<(), StepError> {
        match &reply.body {
            rte_plugin_sdk::ReplyBody::Message { payload, .. } => {
                let value = serde_json::from_slice::<serde_json::Value>(payload).unwrap_or_else(
                    |_| serde_json::Value::String(String::from_utf8_lossy(payload).into_owned()),
                );
                ctx.set_output("reply", value)
            }
            rte_plugin_sdk::ReplyBody::Error(message) => {
                Err(StepError::permanent(format!("answered with an error: {message}")))
            }
            rte_plugin_sdk::ReplyBody::TimedOut => Err(StepError::retryable("no answer in time")),
        }
    }
}

/// `test_log`: logs the input `message` at info, and outputs the granted config value
/// `greeting` (`null` if not granted).
#[derive(Default)]
pub struct TestLog;

impl Step for TestLog {
    fn info() -> StepInfo {
        info(
            "test_log",
            "log message, and output the greeting config value",
        )
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let message = ctx.input_as::<Option<String>>("message")?;
        log::info(message.as_deref().unwrap_or("test_log"));
        ctx.set_output("greeting", config::get("greeting"))
    }
}

/// `test_confirm`: a step with a confirm. Confirm fails retryably on its first
/// `confirm_fail_times` attempts (default 0), sleeps `confirm_sleep_ms` (default 0), then
/// counts itself in `confirmed/{tx_id}/{step_index}`: a count above one exposes a confirm
/// whose effect happened twice.
#[derive(Default)]
pub struct TestConfirm;

impl Step for TestConfirm {
    fn info() -> StepInfo {
        info(
            "test_confirm",
            "confirm counted in kv, optionally slow or failing",
        )
        .confirm(true)
    }

    fn execute(&self, _ctx: &mut StepContext) -> Result<(), StepError> {
        Ok(())
    }

    fn confirm(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let fail_times: u32 = ctx
            .input_as::<Option<u32>>("confirm_fail_times")?
            .unwrap_or(0);
        if ctx.attempt() <= fail_times {
            return Err(StepError::retryable(format!(
                "test_confirm: attempt {} of {fail_times} failing attempts",
                ctx.attempt()
            )));
        }
        let ms: u64 = ctx
            .input_as::<Option<u64>>("confirm_sleep_ms")?
            .unwrap_or(0);
        thread::sleep(Duration::from_millis(ms));
        let key = format!("confirmed/{}/{}", ctx.tx_id(), ctx.step_index());
        let count = kv::get_json::<i64>(&key)?.unwrap_or(0) + 1;
        kv::set_json(&key, &count)
    }
}

/// `test_kv_read`: outputs `value`, the text stored under the input `read_key` (null if
/// none), so a test can see what other testkit steps wrote.
#[derive(Default)]
pub struct TestKvRead;

impl Step for TestKvRead {
    fn info() -> StepInfo {
        info("test_kv_read", "output the kv value under read_key")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let key: String = ctx.input_as("read_key")?;
        let value = kv::get(&key)?;
        ctx.set_output("value", value)
    }
}

/// `test_flood`: abuses what a call may write: `kv_keys` keys (default 0) of `kv_bytes`
/// bytes each (default 1 KiB), ignoring the host's refusals, then `log_lines` log lines
/// (default 0) of `log_bytes` bytes each (default 1 KiB). Outputs what it managed.
#[derive(Default)]
pub struct TestFlood;

impl Step for TestFlood {
    fn info() -> StepInfo {
        info("test_flood", "write many kv keys and log lines")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let keys: usize = ctx.input_as::<Option<usize>>("kv_keys")?.unwrap_or(0);
        let value = "v".repeat(ctx.input_as::<Option<usize>>("kv_bytes")?.unwrap_or(1024));
        let mut written = 0;
        for i in 0..keys {
            if kv::set(&format!("flood/{i}"), &value).is_ok() {
                written += 1;
            }
        }
        let lines: usize = ctx.input_as::<Option<usize>>("log_lines")?.unwrap_or(0);
        let line = "l".repeat(ctx.input_as::<Option<usize>>("log_bytes")?.unwrap_or(1024));
        for _ in 0..lines {
            log::info(&line);
        }
        ctx.set_output("kv_written", written)?;
        ctx.set_output("log_lines", lines)
    }
}

/// `test_branch`: a branch of a parallel group, told apart by its step index `i`. Sleeps
/// `sleep_ms_{i}` milliseconds (default `sleep_ms`, else none), then fails permanently if
/// `fail_index` is `i`, or retryably on its first `flaky_{i}` attempts; else counts its
/// execute in `branch/{tx}/{i}` and outputs `branch_{i}` (or `shared` when `same_output`
/// is true). Compensation marks `undone/{tx}/{i}`. Its idempotency key is per saga and
/// step, so a count above one exposes a branch executed twice for effect.
#[derive(Default)]
pub struct TestBranch;

impl Step for TestBranch {
    fn info() -> StepInfo {
        info("test_branch", "a branch of a parallel group, counted").idempotency(true)
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let i = ctx.step_index();
        let ms = match ctx.input_as::<Option<u64>>(&format!("sleep_ms_{i}"))? {
            Some(ms) => ms,
            None => ctx.input_as::<Option<u64>>("sleep_ms")?.unwrap_or(0),
        };
        thread::sleep(Duration::from_millis(ms));
        if ctx.input_as::<Option<u32>>("fail_index")? == Some(i) {
            return Err(StepError::permanent(format!("test_branch: branch {i} fails")));
        }
        let flaky = ctx
            .input_as::<Option<u32>>(&format!("flaky_{i}"))?
            .unwrap_or(0);
        if ctx.attempt() <= flaky {
            return Err(StepError::retryable(format!(
                "test_branch: branch {i}, attempt {}",
                ctx.attempt()
            )));
        }
        let key = format!("branch/{}/{i}", ctx.tx_id());
        let count = kv::get_json::<i64>(&key)?.unwrap_or(0) + 1;
        kv::set_json(&key, &count)?;
        if ctx.input_as::<Option<bool>>("same_output")? == Some(true) {
            ctx.set_output("shared", i)
        } else {
            ctx.set_output(&format!("branch_{i}"), i)
        }
    }

    fn compensate(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        kv::set(&format!("undone/{}/{}", ctx.tx_id(), ctx.step_index()), "1")
    }

    fn idempotency_key(&self, ctx: &StepContext) -> Option<String> {
        Some(format!("branch:{}:{}", ctx.tx_id(), ctx.step_index()))
    }
}

/// `test_alloc`: touches `alloc_mb` MiB (default 32) of linear memory, frees it and
/// succeeds; outputs `touched_mb`. A burst of these is a memory spike that ends.
#[derive(Default)]
pub struct TestAlloc;

impl Step for TestAlloc {
    fn info() -> StepInfo {
        info("test_alloc", "touch `alloc_mb` MiB of memory, then succeed")
    }

    fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let mb: usize = ctx.input_as::<Option<usize>>("alloc_mb")?.unwrap_or(32);
        // Non-zero bytes touch every page.
        let block = black_box(vec![0x5Au8; mb << 20]);
        let touched = block.iter().step_by(4096).filter(|b| **b == 0x5A).count() >> 8;
        drop(block);
        ctx.set_output("touched_mb", touched)
    }
}
