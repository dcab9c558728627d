import { describe, expect, it } from "vitest";
import { inputSkeleton, startOutcome } from "./start";

describe("start form", () => {
  it("reads a start's result by how the saga ended", () => {
    expect(startOutcome("COMPLETED").tone).toBe("ok");
    for (const s of ["FAILED", "COMPENSATED", "COMPENSATION_FAILED", "TIMEOUT", "CANCELLED"]) {
      expect(startOutcome(s).tone, s).toBe("bad");
    }
    for (const s of ["CREATED", "LOCKED", "EXECUTING", "CONFIRMING", "COMPENSATING"]) {
      expect(startOutcome(s).tone, s).toBe("warn");
    }
  });

  it("builds an input skeleton from lock-key templates", () => {
    const def = { steps: ["debit"], lock_keys: ["account:{from_account}", "account:{to_account}"] };
    expect(JSON.parse(inputSkeleton(def as never))).toEqual({ from_account: "", to_account: "" });
  });
});
