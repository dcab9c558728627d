// Status → colour tone. One mapping for badges, cards, charts, the timeline and events.
//
// The palette is chosen to stay apart for people with red-green colour blindness: the
// failure statuses differ in lightness as well as hue (FAILED a light red-orange,
// TIMEOUT a dark olive brown, COMPENSATION_FAILED the darkest, a plum), COMPENSATED is a
// teal blue rather than the amber of warnings, and running is a brighter blue.
// status.test.ts checks every pair in simulated deuteranopia and protanopia. Where a
// chart relies on colour it also has a label or a pattern.

export type Tone = "ok" | "warn" | "bad" | "critical" | "timeout" | "undone" | "run" | "muted";

const TONES: Record<string, Tone> = {
  COMPLETED: "ok",
  CONFIRMED: "ok",
  COMPENSATED: "undone",
  FAILED: "bad",
  COMPENSATION_FAILED: "critical",
  TIMEOUT: "timeout",
  CANCELLED: "muted",
  SKIPPED: "muted",
  PENDING: "muted",
  CREATED: "run",
  LOCKED: "run",
  EXECUTING: "run",
  WAITING: "run",
  CONFIRMING: "run",
  COMPENSATING: "run",
  // circuit breaker states
  closed: "ok",
  half_open: "warn",
  open: "bad",
};

/** The tone of a saga status, step status or breaker state; unknown values are muted. */
export function statusTone(status: string): Tone {
  return TONES[status] ?? "muted";
}

/** CSS colour of a tone (kept in step with the CSS variables of the same name). */
export const TONE_COLOURS: Record<Tone, string> = {
  ok: "#17854d",
  warn: "#b45309",
  bad: "#d12f08",
  critical: "#6d1a4c",
  timeout: "#553f12",
  undone: "#027bb4",
  run: "#0f58ec",
  muted: "#686d76",
};

/** The tones a saga's status can have, which must all tell apart. */
export const STATUS_TONES: Tone[] = ["ok", "bad", "critical", "timeout", "undone", "run", "muted"];

export function statusColour(status: string): string {
  return TONE_COLOURS[statusTone(status)];
}

/** Statuses after which a saga no longer changes by itself. */
export const TERMINAL = new Set([
  "COMPLETED",
  "FAILED",
  "COMPENSATED",
  "COMPENSATION_FAILED",
  "TIMEOUT",
  "CANCELLED",
]);

export function isTerminal(status: string): boolean {
  return TERMINAL.has(status);
}

/** "COMPENSATION_FAILED" → "Compensation failed". */
export function statusLabel(status: string): string {
  const s = status.replace(/_/g, " ").toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Statuses of a saga moving forward: a step failure seen then is being retried, not final. */
const FORWARD = new Set(["CREATED", "LOCKED", "EXECUTING", "CONFIRMING"]);

/**
 * The step whose failure ended the saga or turned it to compensation ("failed at step N of
 * M"), from the host's `failed_step`; null while the saga still moves forward (a failed
 * attempt then is about to be retried) and when no step failed.
 */
export function failedStepOf(tx: { status: string; failed_step?: number | null }): number | null {
  if (FORWARD.has(tx.status)) return null;
  return tx.failed_step ?? null;
}
