// Status → colour tone. One mapping for badges, charts and the timeline.

export type Tone = "ok" | "warn" | "bad" | "run" | "muted";

const TONES: Record<string, Tone> = {
  COMPLETED: "ok",
  CONFIRMED: "ok",
  COMPENSATED: "warn",
  FAILED: "bad",
  COMPENSATION_FAILED: "bad",
  TIMEOUT: "bad",
  CANCELLED: "muted",
  SKIPPED: "muted",
  PENDING: "muted",
  CREATED: "run",
  LOCKED: "run",
  EXECUTING: "run",
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
  ok: "#1a7f37",
  warn: "#b45309",
  bad: "#c62828",
  run: "#1d5fd1",
  muted: "#6b7280",
};

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
