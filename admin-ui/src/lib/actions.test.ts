import { expect, it } from "vitest";
import type { StepView } from "../types";
import { canForceCancel, canForceComplete, canRetry, retryStartSteps } from "./actions";

const step = (i: number, status: StepView["status"]) => ({ step_index: i, step_name: `s${i}`, status }) as StepView;

it("allows forcing only sagas that are not settled", () => {
  for (const s of ["CREATED", "LOCKED", "EXECUTING", "FAILED", "TIMEOUT", "COMPENSATION_FAILED"]) {
    expect(canForceComplete(s)).toBe(true);
    expect(canForceCancel(s)).toBe(true);
  }
  for (const s of ["COMPLETED", "COMPENSATED", "CANCELLED", "COMPENSATING"]) {
    expect(canForceComplete(s)).toBe(false);
    expect(canForceCancel(s)).toBe(false);
  }
});

it("completes but never cancels a confirming saga", () => {
  expect(canForceComplete("CONFIRMING")).toBe(true);
  expect(canForceCancel("CONFIRMING")).toBe(false);
});

it("allows retrying failed, timed-out and compensation-failed sagas", () => {
  expect(canRetry("FAILED")).toBe(true);
  expect(canRetry("COMPENSATION_FAILED")).toBe(true);
  expect(canRetry("COMPENSATED")).toBe(false);
  expect(canRetry("EXECUTING")).toBe(false);
});

it("offers retry start steps up to the first unfinished one", () => {
  const steps = [step(0, "COMPLETED"), step(1, "COMPLETED"), step(2, "FAILED"), step(3, "SKIPPED")];
  expect(retryStartSteps("FAILED", steps).map((s) => s.step_index)).toEqual([0, 1, 2]);
  expect(retryStartSteps("COMPENSATION_FAILED", steps)).toEqual([]);
  // nothing before a compensated step may run again
  const undone = [step(0, "COMPLETED"), step(1, "COMPENSATED"), step(2, "FAILED")];
  expect(retryStartSteps("TIMEOUT", undone)).toEqual([]);
});
