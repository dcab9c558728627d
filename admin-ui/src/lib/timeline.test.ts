import { describe, expect, it } from "vitest";
import type { RteEvent, StepView, TxView } from "../types";
import { assignEvents, layoutTimeline, tickStep } from "./timeline";

const T0 = Date.parse("2024-01-01T00:00:00.000Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();

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
    ...extra,
  };
}

function tx(status: TxView["status"], steps: StepView[], completed: number | null): TxView {
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
  };
}

function ev(type: string, step: string, ms: number, data: Record<string, unknown> = {}, error: string | null = null): RteEvent {
  return { type, tx_id: "t1", tx_type: "adhoc", step_name: step, error, data, timestamp: at(ms) };
}

// ok, ok, fail → the two oks compensated in reverse order.
const compensated = tx(
  "COMPENSATED",
  [
    step(0, "test_ok", "COMPENSATED", 10, 100, { compensation_attempts: 1 }),
    step(1, "test_ok", "COMPENSATED", 30, 80, { compensation_attempts: 1 }),
    step(2, "test_fail", "FAILED", 50, 60, { error: "permanent: boom" }),
  ],
  100,
);

describe("layoutTimeline", () => {
  it("draws executions, then compensations in reverse order", () => {
    const l = layoutTimeline(compensated, [], { width: 1000, labelWidth: 100, now: T0 + 1000 });
    expect(l.t0).toBe(T0);
    expect(l.t1).toBe(T0 + 100);
    const [a, b, c] = l.rows;
    expect(a.bars.map((x) => x.kind)).toEqual(["execute", "compensate"]);
    // step 1 ran 10→30 (until step 2 started), was compensated after step 2's compensation
    expect([a.bars[0].start - T0, a.bars[0].end - T0]).toEqual([10, 30]);
    expect([a.bars[1].start - T0, a.bars[1].end - T0]).toEqual([80, 100]);
    expect([b.bars[1].start - T0, b.bars[1].end - T0]).toEqual([60, 80]);
    expect(b.bars[1].tone).toBe("warn");
    expect(c.bars).toHaveLength(1);
    expect(c.bars[0].tone).toBe("bad");
    expect(c.markers).toEqual([expect.objectContaining({ kind: "error", title: "boom" })]);
    expect(a.note).toBe("1 attempt · 1 compensation");
  });

  it("places bars on the plot and keeps short ones visible", () => {
    const l = layoutTimeline(compensated, [], { width: 1000, labelWidth: 100, now: T0 + 1000 });
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

  it("runs an executing step up to now and leaves pending ones empty", () => {
    const t = tx("EXECUTING", [step(0, "a", "COMPLETED", 0, 40), step(1, "b", "EXECUTING", 40, null), step(2, "c", "PENDING", null, null)], null);
    const l = layoutTimeline(t, [], { now: T0 + 200 });
    expect(l.t1).toBe(T0 + 200);
    expect(l.rows[1].bars[0]).toMatchObject({ running: true, tone: "run", end: T0 + 200 });
    expect(l.rows[2].bars).toEqual([]);
  });

  it("marks retried attempts from events", () => {
    const t = tx("COMPLETED", [step(0, "flaky", "COMPLETED", 0, 500, { attempts: 2 })], 500);
    const events = [
      ev("step.completed", "flaky", 500, { attempt: 2 }),
      ev("step.started", "flaky", 400, { attempt: 2 }),
      ev("step.failed", "flaky", 5, { will_retry: true }, "try again"),
      ev("step.started", "flaky", 0, { attempt: 1 }),
    ];
    const l = layoutTimeline(t, events, { now: T0 + 1000 });
    expect(l.rows[0].markers).toEqual([expect.objectContaining({ kind: "retry" })]);
    expect(l.rows[0].bars[0].title).toContain("2 attempts");
  });
});

it("marks history entries on the axis", () => {
  const t = { ...compensated, history: [{ at: at(150), kind: "retry", message: "by operator" }] };
  const l = layoutTimeline(t, [], { width: 1000, labelWidth: 100, now: T0 + 1000 });
  expect(l.t1).toBe(T0 + 150);
  expect(l.marks).toEqual([{ x: 100 + l.plotWidth, kind: "retry", title: "retry: by operator" }]);
});

it("matches events of a repeated step to its positions", () => {
  const events = [
    ev("step.compensated", "test_ok", 100),
    ev("step.compensated", "test_ok", 80),
    ev("step.failed", "test_fail", 60),
    ev("step.started", "test_fail", 50, { attempt: 1 }),
    ev("step.completed", "test_ok", 50),
    ev("step.started", "test_ok", 30, { attempt: 1 }),
    ev("step.completed", "test_ok", 30),
    ev("step.started", "test_ok", 10, { attempt: 1 }),
  ];
  const [a, b, c] = assignEvents(compensated, events).map((xs) => xs.map((x) => `${x.e.type}@${x.t - T0}`));
  expect(a).toEqual(["step.started@10", "step.completed@30", "step.compensated@100"]);
  expect(b).toEqual(["step.started@30", "step.completed@50", "step.compensated@80"]);
  expect(c).toEqual(["step.started@50", "step.failed@60"]);
});

it("picks round tick steps", () => {
  expect(tickStep(100)).toBe(20);
  expect(tickStep(1000)).toBe(200);
  expect(tickStep(60_000)).toBe(10_000);
});
