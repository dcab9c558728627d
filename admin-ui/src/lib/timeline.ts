// The timeline picture of a saga: one row per step, an execute bar and, after a failure, a
// compensation bar, laid out on a shared time axis. Pure geometry; the component only draws.
//
// Steps keep `started_at` and one `finished_at` (overwritten when a compensation settles), so
// an execution's end is recovered from the next step's start, and a compensation's start from
// the failure or the compensation of the step after it. Events of the saga, while the host
// still holds them, add retry markers and stand in for a missing stored time.

import type { RteEvent, TxView } from "../types";
import { formatDuration, parseTime, splitErrorKind } from "./format";
import { isTerminal, type Tone } from "./status";

export interface TimelineBar {
  kind: "execute" | "compensate";
  x: number;
  width: number;
  start: number;
  end: number;
  tone: Tone;
  running: boolean;
  title: string;
}

export interface TimelineMarker {
  x: number;
  kind: "retry" | "error";
  title: string;
}

export interface TimelineRow {
  index: number;
  name: string;
  status: string;
  y: number;
  bars: TimelineBar[];
  markers: TimelineMarker[];
  note: string;
}

export interface TimelineLayout {
  width: number;
  height: number;
  plotX: number;
  plotWidth: number;
  rowHeight: number;
  axisHeight: number;
  t0: number;
  t1: number;
  rows: TimelineRow[];
  ticks: { x: number; label: string }[];
  /** Operator actions and other history entries, as vertical lines. */
  marks: { x: number; kind: string; title: string }[];
}

export interface TimelineOptions {
  width?: number;
  labelWidth?: number;
  rowHeight?: number;
  axisHeight?: number;
  now?: number;
}

const MIN_BAR = 3;

/** A "nice" tick step (1, 2 or 5 × 10^k ms) giving about `target` ticks over `span`. */
export function tickStep(span: number, target = 6): number {
  const raw = Math.max(span, 1) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

type Timed = { e: RteEvent; t: number };

const COMPENSATING = ["COMPENSATING", "COMPENSATED", "COMPENSATION_FAILED"];

function isCompensationEvent(e: RteEvent): boolean {
  return e.type === "step.compensated" || (e.type === "step.failed" && e.data?.compensation === true);
}

/**
 * Events name a step, not its position, and one saga may run the same step twice. So events
 * are matched to positions in the order they happened: a first attempt's `step.started` moves
 * to the step's next position, and compensations walk the positions backwards.
 * `events` are newest first, as the API returns them.
 */
export function assignEvents(tx: TxView, events: RteEvent[]): Timed[][] {
  const steps = [...(tx.steps ?? [])].sort((a, b) => a.step_index - b.step_index);
  const out: Timed[][] = steps.map(() => []);
  const positions = new Map<string, number[]>();
  steps.forEach((s, i) => positions.set(s.step_name, [...(positions.get(s.step_name) ?? []), i]));
  const execAt = new Map<string, number>();
  const compAt = new Map<string, number>();
  const chronological = events
    .filter((e) => e.tx_id === tx.tx_id && e.step_name && positions.has(e.step_name))
    .reverse()
    .map((e) => ({ e, t: parseTime(e.timestamp) ?? 0 }))
    .sort((a, b) => a.t - b.t);
  for (const ev of chronological) {
    const name = ev.e.step_name!;
    const all = positions.get(name)!;
    if (isCompensationEvent(ev.e)) {
      const undo = all.filter((i) => COMPENSATING.includes(steps[i].status));
      if (!undo.length) continue;
      const k = Math.min(compAt.get(name) ?? 0, undo.length - 1);
      out[undo[undo.length - 1 - k]].push(ev);
      if (ev.e.type === "step.compensated") compAt.set(name, k + 1);
    } else {
      let k = execAt.get(name) ?? -1;
      if (ev.e.type === "step.started" && (ev.e.data?.attempt ?? 1) === 1) k++;
      k = Math.max(0, Math.min(k, all.length - 1));
      execAt.set(name, k);
      out[all[k]].push(ev);
    }
  }
  return out;
}

export function layoutTimeline(tx: TxView, events: RteEvent[] = [], opts: TimelineOptions = {}): TimelineLayout {
  const width = opts.width ?? 960;
  const labelWidth = opts.labelWidth ?? 170;
  const rowHeight = opts.rowHeight ?? 30;
  const axisHeight = opts.axisHeight ?? 26;
  const now = opts.now ?? Date.now();
  const steps = [...(tx.steps ?? [])].sort((a, b) => a.step_index - b.step_index);
  const running = !isTerminal(tx.status);

  // Pass 1: times.
  type Span = { start: number; end: number; running: boolean };
  const exec: (Span | null)[] = [];
  const comp: (Span | null)[] = [];
  const evs = assignEvents(tx, events);
  const failureAt = Math.max(
    -Infinity,
    ...steps.filter((s) => s.status === "FAILED").map((s) => parseTime(s.finished_at) ?? -Infinity),
  );

  steps.forEach((s, i) => {
    const started = parseTime(s.started_at) ?? evs[i].find((x) => x.e.type === "step.started")?.t ?? null;
    if (started == null) {
      exec.push(null);
      return;
    }
    const finished = parseTime(s.finished_at);
    // The next step is marked started at the instant this one completed.
    const nextStart = parseTime(steps[i + 1]?.started_at);
    let end: number | null;
    let live = false;
    switch (s.status) {
      case "EXECUTING":
        end = now;
        live = true;
        break;
      case "COMPLETED":
      case "FAILED":
        end = finished ?? now;
        break;
      default: // compensating or compensated: the execute ended before the next step began
        end = nextStart ?? evs[i].findLast((x) => x.e.type === "step.completed")?.t ?? null;
    }
    exec.push({ start: started, end: end ?? started, running: live });
  });

  // Compensation runs in reverse order: walk from the last step back.
  let laterCompEnd = -Infinity;
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i];
    if (!["COMPENSATING", "COMPENSATED", "COMPENSATION_FAILED"].includes(s.status)) {
      comp[i] = null;
      continue;
    }
    const live = s.status === "COMPENSATING";
    const end = live ? now : parseTime(s.finished_at) ?? now;
    const begin = Math.max(exec[i]?.end ?? -Infinity, failureAt, laterCompEnd);
    const start = Number.isFinite(begin) ? Math.min(begin, end) : end;
    comp[i] = { start, end, running: live };
    laterCompEnd = Math.max(laterCompEnd, end);
  }

  // Axis domain.
  const times: number[] = [];
  const created = parseTime(tx.created_at);
  if (created != null) times.push(created);
  for (const sp of [...exec, ...comp]) if (sp) times.push(sp.start, sp.end);
  const history = (tx.history ?? []).map((h) => ({ h, t: parseTime(h.at) })).filter((x) => x.t != null) as { h: { kind: string; message: string }; t: number }[];
  for (const { t } of history) times.push(t);
  const done = parseTime(tx.completed_at);
  if (done != null) times.push(done);
  if (running) times.push(now);
  const t0 = times.length ? Math.min(...times) : now;
  let t1 = times.length ? Math.max(...times) : now;
  if (t1 - t0 < 1) t1 = t0 + 1;

  const plotX = labelWidth;
  const plotWidth = Math.max(50, width - labelWidth - 16);
  const x = (t: number) => plotX + ((t - t0) / (t1 - t0)) * plotWidth;
  const clampX = (t: number) => Math.min(plotX + plotWidth, Math.max(plotX, x(t)));
  const bar = (kind: TimelineBar["kind"], sp: Span, tone: Tone, title: string): TimelineBar => {
    const bx = x(sp.start);
    const w = Math.max(MIN_BAR, x(sp.end) - bx);
    return { kind, x: Math.min(bx, plotX + plotWidth - w), width: w, start: sp.start, end: sp.end, tone, running: sp.running, title };
  };

  const rows: TimelineRow[] = steps.map((s, i) => {
    const bars: TimelineBar[] = [];
    const markers: TimelineMarker[] = [];
    const e = exec[i];
    const c = comp[i];
    if (e) {
      const tone: Tone = s.status === "FAILED" ? "bad" : e.running ? "run" : "ok";
      const attempts = s.attempts > 1 ? `, ${s.attempts} attempts` : "";
      bars.push(bar("execute", e, tone, `${s.step_name}: execute ${formatDuration(e.end - e.start)}${e.running ? " (running)" : ""}${attempts}`));
    }
    if (c) {
      const tone: Tone = s.status === "COMPENSATION_FAILED" ? "bad" : c.running ? "run" : "warn";
      const n = s.compensation_attempts;
      bars.push(bar("compensate", c, tone, `${s.step_name}: compensate ${formatDuration(c.end - c.start)}${c.running ? " (running)" : ""}${n > 1 ? `, ${n} attempts` : ""}`));
    }
    // Stored times draw the bars; events, while the host still holds them, add the retries.
    for (const { e: ev, t } of evs[i]) {
      if (ev.type !== "step.failed" || ev.data?.will_retry !== true) continue;
      const what = ev.data?.compensation ? "compensation attempt failed, retried" : "attempt failed, retried";
      markers.push({ x: clampX(t), kind: "retry", title: `${what}: ${ev.error ?? ""}` });
    }
    if (s.error && (s.status === "FAILED" || s.status === "COMPENSATION_FAILED")) {
      const last = bars[bars.length - 1];
      if (last) markers.push({ x: last.x + last.width, kind: "error", title: splitErrorKind(s.error).message });
    }
    const parts: string[] = [];
    if (s.attempts > 0) parts.push(`${s.attempts} attempt${s.attempts === 1 ? "" : "s"}`);
    if (s.compensation_attempts > 0) parts.push(`${s.compensation_attempts} compensation${s.compensation_attempts === 1 ? "" : "s"}`);
    return { index: s.step_index, name: s.step_name, status: s.status, y: axisHeight + i * rowHeight, bars, markers, note: parts.join(" · ") };
  });

  const step = tickStep(t1 - t0);
  const ticks: { x: number; label: string }[] = [];
  for (let off = 0; off <= t1 - t0 + 1e-9; off += step) ticks.push({ x: x(t0 + off), label: off === 0 ? "0" : `+${formatDuration(off)}` });

  const marks = history.map(({ h, t }) => ({ x: x(t), kind: h.kind, title: `${h.kind}: ${h.message}` }));
  return { width, height: axisHeight + steps.length * rowHeight + 6, plotX, plotWidth, rowHeight, axisHeight, t0, t1, rows, ticks, marks };
}
