import { describe, expect, it } from "vitest";
import type { StepView } from "../types";
import { groupOf, ordinal, positionOf, stepsLine } from "./groups";

function step(i: number, status: StepView["status"], first?: number): StepView {
  return {
    step_index: i,
    step_name: `s${i}`,
    status,
    attempts: 0,
    compensation_attempts: 0,
    output: null,
    error: null,
    idempotency_key: null,
    plugin_digest: null,
    started_at: null,
    finished_at: null,
    failure_kind: null,
    ...(first != null ? { group: { first, max_concurrent: 3 } } : {}),
  };
}

describe("parallel groups", () => {
  it("writes a type's steps with its groups", () => {
    expect(stepsLine(["reserve", { parallel: ["flight", "hotel", "car"] }, "charge"])).toBe("reserve → [flight ∥ hotel ∥ car] → charge");
    expect(stepsLine([{ parallel: ["a", "b", "c"], max_concurrent: 2 }])).toBe("[a ∥ b ∥ c] (2 at a time)");
  });

  it("counts a group as the span of its steps, with the branches running", () => {
    const steps = [step(0, "COMPLETED"), step(1, "COMPLETED", 1), step(2, "EXECUTING", 1), step(3, "EXECUTING", 1), step(4, "PENDING")];
    expect(groupOf(steps, 2).map((s) => s.step_index)).toEqual([1, 2, 3]);
    expect(groupOf(steps, 4)).toEqual([]);
    expect(positionOf(steps, 1)).toEqual({ label: "2–4", running: 2, group: true });
    expect(positionOf(steps, 4)).toEqual({ label: "5", running: 0, group: false });
  });

  it("writes completion order as an ordinal", () => {
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 102].map(ordinal)).toEqual(["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd"]);
  });
});
