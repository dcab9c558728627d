// Which operator actions a saga's status allows (the host enforces the same rules and
// answers 409 otherwise; the console disables what would be refused).

import type { StepView } from "../types";

const COMPLETABLE = new Set(["CREATED", "LOCKED", "EXECUTING", "CONFIRMING", "FAILED", "TIMEOUT", "COMPENSATION_FAILED"]);
// Confirms are never followed by compensation, so a confirming saga cannot be cancelled.
const CANCELLABLE = new Set(["CREATED", "LOCKED", "EXECUTING", "FAILED", "TIMEOUT", "COMPENSATION_FAILED"]);
const RETRYABLE = new Set(["FAILED", "TIMEOUT", "COMPENSATION_FAILED"]);

export function canForceComplete(status: string): boolean {
  return COMPLETABLE.has(status);
}

export function canForceCancel(status: string): boolean {
  return CANCELLABLE.has(status);
}

export function canRetry(status: string): boolean {
  return RETRYABLE.has(status);
}

/**
 * Steps a retry may start from: any up to the first step that did not complete, as long
 * as no step from there on was compensated (a compensated step never runs again).
 * A COMPENSATION_FAILED saga resumes its compensation instead: no choice.
 */
export function retryStartSteps(status: string, steps: StepView[]): StepView[] {
  if (status !== "FAILED" && status !== "TIMEOUT") return [];
  const sorted = [...steps].sort((a, b) => a.step_index - b.step_index);
  const firstOpen = sorted.findIndex((s) => s.status !== "COMPLETED");
  const last = firstOpen === -1 ? sorted.length - 1 : firstOpen;
  const undone = (s: StepView) => ["COMPENSATED", "COMPENSATING", "COMPENSATION_FAILED"].includes(s.status);
  return sorted.filter((_, i) => i <= last && !sorted.slice(i).some(undone));
}
