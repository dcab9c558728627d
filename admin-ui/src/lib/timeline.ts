// The timeline picture of a saga: one row per step, one bar per attempt (execute on the upper
// lane; compensate and confirm on the lower one), laid out on a shared time axis, with the
// saga's history (operator and recovery actions) as marks. Pure geometry; the component only
// draws.
//
// Everything comes from the saga as stored: its `attempts` (every call of every step, kept
// with the saga, so the picture is the same after the host restarts or on another host) and
// its `history`. Attempts are placed by `step_index`, so a saga that runs one step twice gets
// each call on its own row. A call still running has no attempt yet: it is drawn from the end
// of the saga's latest attempt (or the step's start) up to now. Steps stored by older hosts,
// which kept no attempts, get one bar from the step's own times.

import type { AttemptView, StepView, TxView } from "../types";
import { failureOf, formatDuration, kindLabel, parseTime } from "./format";
import { actorOf, describeHistory, type ActorType } from "./history";
import { isTerminal, type Tone } from "./status";

export type BarKind = "execute" | "compensate" | "confirm";

export interface TimelineBar {
  kind: BarKind;
  x: number;
  width: number;
  start: number;
  end: number;
  tone: Tone;
  running: boolean;
  /** How the attempt ended; "running" for a call in progress, "unknown" for a bar drawn from step times. */
  outcome: AttemptView["outcome"] | "running" | "unknown";
  /** The attempt's number within its phase (null when not from an attempt). */
  attempt: number | null;
  failureKind: string | null;
  host: string | null;
  digest: string | null;
  title: string;
}

export interface TimelineMarker {
  x: number;
  kind: "error";
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

export interface TimelineMark {
  x: number;
  kind: string;
  /** Who acted: an operator, recovery, or (rarely) the host; null when not recorded. */
  actor: ActorType | null;
  title: string;
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
  /** Operator and recovery actions, as vertical lines. */
  marks: TimelineMark[];
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

/** Green for work done, teal for an undo (as COMPENSATED), red for a failure, grey for "nothing to undo". */
export function attemptTone(a: Pick<AttemptView, "phase" | "outcome">): Tone {
  if (a.outcome === "failed") return "bad";
  if (a.outcome === "nothing_to_undo") return "muted";
  return a.phase === "compensate" ? "undone" : "ok";
}

/** What an attempt's tooltip says: what, how it ended, how long, where and with which plugin. */
export function describeAttempt(a: AttemptView): string {
  let how: string;
  switch (a.outcome) {
    case "failed": {
      const f = failureOf(a.message, a.failure_kind);
      how = `failed${f?.kind ? ` (${kindLabel(f.kind)})` : ""}${f?.message ? `: ${f.message}` : ""}`;
      break;
    }
    case "replayed":
      how = "replayed (the stored output of its idempotency key was reused)";
      break;
    case "nothing_to_undo":
      how = "nothing to undo (the step has no compensation)";
      break;
    default:
      how = a.outcome;
  }
  const lines = [`${a.step_name}: ${a.phase} attempt ${a.attempt}, ${how}`, `took ${formatDuration(a.duration_ms)}`, `host ${a.host}`];
  if (a.plugin_digest) lines.push(`plugin ${a.plugin_digest}`);
  return lines.join("\n");
}

type Span = Omit<TimelineBar, "x" | "width">;

/** The attempts of each row (rows are the steps in order), placed by step index. */
export function attemptsByRow(tx: TxView): AttemptView[][] {
  const steps = sortedSteps(tx);
  const row = new Map(steps.map((s, i) => [s.step_index, i]));
  const out: AttemptView[][] = steps.map(() => []);
  for (const a of tx.attempts ?? []) {
    const i = row.get(a.step_index);
    if (i != null) out[i].push(a);
  }
  return out;
}

function sortedSteps(tx: TxView): StepView[] {
  return [...(tx.steps ?? [])].sort((a, b) => a.step_index - b.step_index);
}

export function layoutTimeline(tx: TxView, opts: TimelineOptions = {}): TimelineLayout {
  const width = opts.width ?? 960;
  const labelWidth = opts.labelWidth ?? 170;
  const rowHeight = opts.rowHeight ?? 30;
  const axisHeight = opts.axisHeight ?? 26;
  const now = opts.now ?? Date.now();
  const steps = sortedSteps(tx);
  const live = !isTerminal(tx.status);
  const byRow = attemptsByRow(tx);

  // Pass 1: spans in time.
  let latestEnd = -Infinity;
  const spans: Span[][] = byRow.map((attempts) =>
    attempts.flatMap((a) => {
      const start = parseTime(a.started_at);
      if (start == null) return [];
      const end = Math.max(start, parseTime(a.ended_at) ?? start + Math.max(0, a.duration_ms));
      latestEnd = Math.max(latestEnd, end);
      return [
        {
          kind: a.phase,
          start,
          end,
          tone: attemptTone(a),
          running: false,
          outcome: a.outcome,
          attempt: a.attempt,
          failureKind: a.failure_kind,
          host: a.host,
          digest: a.plugin_digest,
          title: describeAttempt(a),
        } satisfies Span,
      ];
    }),
  );

  steps.forEach((s, i) => {
    const started = parseTime(s.started_at);
    // A call in progress: it began after the saga's latest settled attempt.
    if (live && (s.status === "EXECUTING" || s.status === "COMPENSATING")) {
      const kind: BarKind = s.status === "EXECUTING" ? "execute" : "compensate";
      const from = Math.max(kind === "execute" ? started ?? -Infinity : -Infinity, latestEnd);
      const start = Number.isFinite(from) ? Math.min(from, now) : (started ?? now);
      const n = kind === "execute" ? s.attempts : s.compensation_attempts;
      spans[i].push({
        kind,
        start,
        end: now,
        tone: "run",
        running: true,
        outcome: "running",
        attempt: null,
        failureKind: null,
        host: null,
        digest: null,
        title: `${s.step_name}: ${kind} running for ${formatDuration(now - start)}${n > 0 ? ` (${n} attempt${n === 1 ? "" : "s"} so far)` : ""}`,
      });
      return;
    }
    // A step stored before attempts were kept: one bar from its own times.
    if (!spans[i].length && started != null && s.status !== "PENDING") {
      const next = parseTime(steps[i + 1]?.started_at);
      const end = parseTime(s.finished_at) ?? next ?? (live ? now : started);
      const tone: Tone = s.status === "FAILED" || s.status === "COMPENSATION_FAILED" ? "bad" : s.status.startsWith("COMPENSAT") ? "undone" : "ok";
      spans[i].push({
        kind: "execute",
        start: started,
        end: Math.max(started, end),
        tone,
        running: false,
        outcome: "unknown",
        attempt: null,
        failureKind: s.failure_kind,
        host: null,
        digest: s.plugin_digest,
        title: `${s.step_name}: ${s.status.toLowerCase().replace(/_/g, " ")} (from the step's times; no attempts were recorded)`,
      });
    }
  });

  // Axis domain.
  const times: number[] = [];
  const created = parseTime(tx.created_at);
  if (created != null) times.push(created);
  for (const row of spans) for (const sp of row) times.push(sp.start, sp.end);
  const history = (tx.history ?? []).flatMap((h) => {
    const t = parseTime(h.at);
    return t == null ? [] : [{ h, t }];
  });
  for (const { t } of history) times.push(t);
  const done = parseTime(tx.completed_at);
  if (done != null) times.push(done);
  if (live) times.push(now);
  const t0 = times.length ? Math.min(...times) : now;
  let t1 = times.length ? Math.max(...times) : now;
  if (t1 - t0 < 1) t1 = t0 + 1;

  const plotX = labelWidth;
  const plotWidth = Math.max(50, width - labelWidth - 16);
  const x = (t: number) => plotX + ((t - t0) / (t1 - t0)) * plotWidth;
  const place = (sp: Span): TimelineBar => {
    const bx = x(sp.start);
    const w = Math.max(MIN_BAR, x(sp.end) - bx);
    return { ...sp, x: Math.min(bx, plotX + plotWidth - w), width: w };
  };

  const rows: TimelineRow[] = steps.map((s, i) => {
    const bars = spans[i].map(place);
    const markers: TimelineMarker[] = [];
    // The failure that ended the saga (or its compensation) is marked at the end of its bar.
    const failedHere = s.step_index === tx.failed_step || s.status === "FAILED" || s.status === "COMPENSATION_FAILED";
    if (failedHere && !(live && s.status === "EXECUTING")) {
      const phase: BarKind = s.status === "COMPENSATION_FAILED" ? "compensate" : "execute";
      const last = bars.findLast((b) => b.kind === phase && (b.outcome === "failed" || b.outcome === "unknown"));
      const lastAttempt = byRow[i].findLast((a) => a.phase === phase && a.outcome === "failed");
      const f = failureOf(s.error ?? lastAttempt?.message, s.failure_kind ?? lastAttempt?.failure_kind);
      if (last && f) markers.push({ x: last.x + last.width, kind: "error", title: f.kind ? `${kindLabel(f.kind)}: ${f.message}` : f.message });
    }
    const parts: string[] = [];
    if (s.attempts > 0) parts.push(`${s.attempts} attempt${s.attempts === 1 ? "" : "s"}`);
    if (s.compensation_attempts > 0) parts.push(`${s.compensation_attempts} compensation${s.compensation_attempts === 1 ? "" : "s"}`);
    return { index: s.step_index, name: s.step_name, status: s.status, y: axisHeight + i * rowHeight, bars, markers, note: parts.join(" · ") };
  });

  const step = tickStep(t1 - t0);
  const ticks: { x: number; label: string }[] = [];
  for (let off = 0; off <= t1 - t0 + 1e-9; off += step) ticks.push({ x: x(t0 + off), label: off === 0 ? "0" : `+${formatDuration(off)}` });

  const marks = history.map(({ h, t }) => ({ x: x(t), kind: h.kind, actor: actorOf(h)?.type ?? null, title: describeHistory(h) }));
  return { width, height: axisHeight + steps.length * rowHeight + 6, plotX, plotWidth, rowHeight, axisHeight, t0, t1, rows, ticks, marks };
}
