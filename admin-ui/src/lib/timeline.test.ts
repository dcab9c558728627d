import { describe, expect, it } from "vitest";
import type { AttemptView, HistoryEntry, StepView, TxView } from "../types";
import { attemptsByRow, attemptTone, describeAttempt, layoutTimeline, tickStep } from "./timeline";

const T0 = Date.parse("2024-01-01T00:00:00.000Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();
const DIGEST = "ab".repeat(32);

function step(i: number, name: string, status: StepView["status"], started: number | null, finished: number | null, extra: Partial<StepView> = {}): StepView {
  return {
    step_index: i,
    step_name: name,
    status,
    attempts: started == null ? 0 : 1,
    compensation_attempts: 0,
    output: null,
    error: null,
    idempotency_key: null,
    plugin_digest: null,
    started_at: started == null ? null : at(started),
    finished_at: finished == null ? null : at(finished),
    failure_kind: null,
    ...extra,
  };
}

function attempt(i: number, name: string, phase: AttemptView["phase"], n: number, from: number, to: number, outcome: AttemptView["outcome"], extra: Partial<AttemptView> = {}): AttemptView {
  return {
    step_index: i,
    step_name: name,
    phase,
    attempt: n,
    started_at: at(from),
    ended_at: at(to),
    duration_ms: to - from,
    outcome,
    failure_kind: null,
    message: null,
    host: "host-a",
    plugin_digest: DIGEST,
    ...extra,
  };
}

function tx(status: TxView["status"], steps: StepView[], attempts: AttemptView[], completed: number | null, extra: Partial<TxView> = {}): TxView {
  return {
    tx_id: "t1",
    tx_type: "adhoc",
    status,
    input: {},
    output: {},
    lock_keys: [],
    current_step: 0,
    total_steps: steps.length,
    retry_count: 0,
    max_retries: 3,
    timeout_ms: 300000,
    deadline_at: at(300000),
    error: null,
    version: 1,
    created_at: at(0),
    updated_at: at(completed ?? 0),
    completed_at: completed == null ? null : at(completed),
    steps,
    history: [],
    attempts,
    ...extra,
  };
}

const span = (b: { start: number; end: number }) => [b.start - T0, b.end - T0];

// ok, ok, fail → the two oks compensated in reverse order. Step names repeat.
const compensated = tx(
  "COMPENSATED",
  [
    step(0, "test_ok", "COMPENSATED", 10, 100, { compensation_attempts: 1 }),
    step(1, "test_ok", "COMPENSATED", 30, 80, { compensation_attempts: 1 }),
    step(2, "test_fail", "FAILED", 50, 60, { error: "test_fail: boom", failure_kind: "permanent" }),
  ],
  [
    attempt(0, "test_ok", "execute", 1, 10, 30, "completed"),
    attempt(1, "test_ok", "execute", 1, 30, 50, "completed"),
    attempt(2, "test_fail", "execute", 1, 50, 60, "failed", { failure_kind: "permanent", message: "test_fail: boom" }),
    attempt(1, "test_ok", "compensate", 1, 60, 80, "completed"),
    attempt(0, "test_ok", "compensate", 1, 80, 100, "completed"),
  ],
  100,
  { failed_step: 2, current_step: 0 },
);

describe("layoutTimeline", () => {
  it("draws each attempt on its step's row: executions, then compensations in reverse order", () => {
    const l = layoutTimeline(compensated, { width: 1000, labelWidth: 100, now: T0 + 1000 });
    expect(l.t0).toBe(T0);
    expect(l.t1).toBe(T0 + 100);
    const [a, b, c] = l.rows;
    expect(a.bars.map((x) => x.kind)).toEqual(["execute", "compensate"]);
    expect(span(a.bars[0])).toEqual([10, 30]);
    expect(span(a.bars[1])).toEqual([80, 100]);
    expect(span(b.bars[1])).toEqual([60, 80]);
    expect(b.bars[1].tone).toBe("undone");
    expect(c.bars).toHaveLength(1);
    expect(c.bars[0]).toMatchObject({ tone: "bad", outcome: "failed", failureKind: "permanent" });
    expect(c.markers).toEqual([expect.objectContaining({ kind: "error", title: "permanent: test_fail: boom" })]);
    expect(a.markers).toEqual([]);
    expect(a.note).toBe("1 attempt · 1 compensation");
  });

  it("places bars on the plot and keeps short ones visible", () => {
    const l = layoutTimeline(compensated, { width: 1000, labelWidth: 100, now: T0 + 1000 });
    expect(l.plotX).toBe(100);
    for (const r of l.rows)
      for (const b of r.bars) {
        expect(b.x).toBeGreaterThanOrEqual(l.plotX);
        expect(b.x + b.width).toBeLessThanOrEqual(l.plotX + l.plotWidth + 0.001);
        expect(b.width).toBeGreaterThanOrEqual(3);
      }
    expect(l.rows.map((r) => r.y)).toEqual([26, 56, 86]);
    expect(l.ticks[0]).toEqual({ x: 100, label: "0" });
  });

  it("runs a call in progress from the latest settled attempt up to now and leaves pending steps empty", () => {
    const t = tx(
      "EXECUTING",
      [step(0, "a", "COMPLETED", 0, 40), step(1, "b", "EXECUTING", 40, 60, { attempts: 2, error: "try again", failure_kind: "retryable" }), step(2, "c", "PENDING", null, null)],
      [attempt(0, "a", "execute", 1, 0, 40, "completed"), attempt(1, "b", "execute", 1, 40, 60, "failed", { failure_kind: "retryable", message: "try again" })],
      null,
      { current_step: 1, failed_step: 1 },
    );
    const l = layoutTimeline(t, { now: T0 + 200 });
    expect(l.t1).toBe(T0 + 200);
    expect(l.rows[1].bars.map((b) => b.outcome)).toEqual(["failed", "running"]);
    expect(l.rows[1].bars[1]).toMatchObject({ running: true, tone: "run", start: T0 + 60, end: T0 + 200 });
    expect(l.rows[1].bars[1].title).toContain("2 attempts so far");
    // a failed attempt about to be retried is not the saga's failure
    expect(l.rows[1].markers).toEqual([]);
    expect(l.rows[2].bars).toEqual([]);
  });

  it("runs a compensation in progress after the latest attempt", () => {
    const t = tx(
      "COMPENSATING",
      [step(0, "a", "COMPENSATING", 0, 40), step(1, "b", "FAILED", 40, 60, { error: "no", failure_kind: "permanent" })],
      [attempt(0, "a", "execute", 1, 0, 40, "completed"), attempt(1, "b", "execute", 1, 40, 60, "failed", { failure_kind: "permanent", message: "no" })],
      null,
      { failed_step: 1 },
    );
    const l = layoutTimeline(t, { now: T0 + 100 });
    expect(l.rows[0].bars[1]).toMatchObject({ kind: "compensate", running: true, start: T0 + 60, end: T0 + 100 });
    expect(l.rows[1].markers).toHaveLength(1);
  });

  it("puts a repeated step's attempts on the right rows by index, not by name", () => {
    // test_ok, test_flaky, test_ok: the flaky step failed once, then completed.
    const t = tx(
      "COMPLETED",
      [
        step(0, "test_ok", "COMPLETED", 0, 10),
        step(1, "test_flaky", "COMPLETED", 10, 80, { attempts: 2, failure_kind: "retryable", error: "test_flaky: attempt 1 of 1 failing attempts" }),
        step(2, "test_ok", "COMPLETED", 80, 90),
      ],
      [
        attempt(0, "test_ok", "execute", 1, 0, 10, "completed"),
        attempt(1, "test_flaky", "execute", 1, 10, 20, "failed", { failure_kind: "retryable", message: "test_flaky: attempt 1 of 1 failing attempts" }),
        attempt(1, "test_flaky", "execute", 2, 70, 80, "completed", { host: "host-b" }),
        attempt(2, "test_ok", "execute", 1, 80, 90, "completed"),
      ],
      90,
    );
    const l = layoutTimeline(t, { now: T0 + 1000 });
    expect(l.rows.map((r) => r.bars.map((b) => `${b.outcome}@${b.start - T0}`))).toEqual([["completed@0"], ["failed@10", "completed@70"], ["completed@80"]]);
    expect(l.rows[1].bars.map((b) => b.attempt)).toEqual([1, 2]);
    expect(l.rows[1].bars[0].title).toContain("failed (retryable): test_flaky: attempt 1 of 1 failing attempts");
    expect(l.rows[1].bars[1].host).toBe("host-b");
    expect(l.rows[1].note).toBe("2 attempts");
    // completed in the end: nothing is marked as the saga's failure
    expect(l.rows.flatMap((r) => r.markers)).toEqual([]);
    expect(attemptsByRow(t).map((xs) => xs.length)).toEqual([1, 2, 1]);
  });

  it("ignores attempts of steps it does not know", () => {
    const t = tx("COMPLETED", [step(0, "a", "COMPLETED", 0, 10)], [attempt(0, "a", "execute", 1, 0, 10, "completed"), attempt(7, "a", "execute", 1, 0, 10, "completed")], 10);
    expect(layoutTimeline(t).rows[0].bars).toHaveLength(1);
  });

  it("draws confirms and steps with nothing to undo on the lower lane", () => {
    const t = tx(
      "COMPENSATED",
      [step(0, "read", "SKIPPED", 0, 30), step(1, "b", "FAILED", 10, 20, { error: "no", failure_kind: "permanent" })],
      [attempt(0, "read", "execute", 1, 0, 10, "completed"), attempt(1, "b", "execute", 1, 10, 20, "failed", { failure_kind: "permanent", message: "no" }), attempt(0, "read", "compensate", 1, 20, 30, "nothing_to_undo")],
      30,
      { failed_step: 1 },
    );
    const l = layoutTimeline(t);
    expect(l.rows[0].bars[1]).toMatchObject({ kind: "compensate", outcome: "nothing_to_undo", tone: "muted" });
    expect(attemptTone({ phase: "confirm", outcome: "completed" })).toBe("ok");
    expect(attemptTone({ phase: "compensate", outcome: "failed" })).toBe("bad");
  });

  it("draws a step stored without attempts from its own times", () => {
    const old = tx("FAILED", [step(0, "test_fail", "FAILED", 5, 25, { error: "permanent: boom" })], [], 25, { failed_step: 0 });
    delete old.attempts;
    const l = layoutTimeline(old, { now: T0 + 1000 });
    expect(l.rows[0].bars).toHaveLength(1);
    expect(l.rows[0].bars[0]).toMatchObject({ outcome: "unknown", tone: "bad", start: T0 + 5, end: T0 + 25 });
    // the kind of an old row is read from its prefix
    expect(l.rows[0].markers).toEqual([expect.objectContaining({ title: "permanent: boom" })]);
  });

  it("marks the failed step even after it was compensated", () => {
    // A trapped step may have acted, so it is compensated too; failed_step still names it.
    const t = tx(
      "COMPENSATED",
      [step(0, "a", "COMPENSATED", 0, 40), step(1, "test_trap", "COMPENSATED", 10, 30, { error: "wasm trap", failure_kind: "trap" })],
      [
        attempt(0, "a", "execute", 1, 0, 10, "completed"),
        attempt(1, "test_trap", "execute", 1, 10, 20, "failed", { failure_kind: "trap", message: "wasm trap" }),
        attempt(1, "test_trap", "compensate", 1, 20, 30, "completed"),
        attempt(0, "a", "compensate", 1, 30, 40, "completed"),
      ],
      40,
      { failed_step: 1 },
    );
    const l = layoutTimeline(t);
    expect(l.rows[0].markers).toEqual([]);
    expect(l.rows[1].markers).toEqual([expect.objectContaining({ title: "trap: wasm trap" })]);
  });
});

describe("attempt tooltips", () => {
  it("say the outcome, failure kind, host and plugin digest", () => {
    const text = describeAttempt(attempt(1, "pay", "execute", 2, 0, 1500, "failed", { failure_kind: "breaker_open", message: "circuit open" }));
    expect(text).toBe(`pay: execute attempt 2, failed (breaker open): circuit open\ntook 1.5 s\nhost host-a\nplugin ${DIGEST}`);
    expect(describeAttempt(attempt(0, "a", "execute", 1, 0, 0, "replayed", { plugin_digest: null }))).toContain("replayed");
  });
});

describe("history marks", () => {
  const history: HistoryEntry[] = [
    { at: at(150), kind: "retry", actor: { type: "operator", reason: "upstream fixed" }, message: "FAILED → CREATED" },
    { at: at(200), kind: "recovery", actor: { type: "recovery", host: "host-b" }, message: "resumed in EXECUTING by recovery on host host-b" },
    { at: at(250), kind: "retry", actor: { type: "recovery", host: "host-b" }, message: "FAILED → CREATED" },
  ];

  it("marks operator and recovery actions on the axis, each labelled by who acted", () => {
    const l = layoutTimeline({ ...compensated, history }, { width: 1000, labelWidth: 100, now: T0 + 1000 });
    expect(l.t1).toBe(T0 + 250);
    expect(l.marks.map((m) => [m.kind, m.actor, m.title])).toEqual([
      ["retry", "operator", "retry by operator (upstream fixed): FAILED → CREATED"],
      ["recovery", "recovery", "recovery on host-b: resumed in EXECUTING by recovery on host host-b"],
      ["retry", "recovery", "retry by recovery on host-b: FAILED → CREATED"],
    ]);
    expect(l.marks[2].x).toBe(100 + l.plotWidth);
  });
});

it("picks round tick steps", () => {
  expect(tickStep(100)).toBe(20);
  expect(tickStep(1000)).toBe(200);
  expect(tickStep(60_000)).toBe(10_000);
});
