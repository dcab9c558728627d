import { expect, it } from "vitest";
import { TX_STATUSES, STEP_STATUSES } from "../types";
import { failedStepOf, isTerminal, statusColour, statusLabel, statusTone, TONE_COLOURS } from "./status";

it("maps saga statuses to the agreed colours", () => {
  expect(statusTone("COMPLETED")).toBe("ok");
  expect(statusTone("COMPENSATED")).toBe("undone");
  expect(statusTone("FAILED")).toBe("bad");
  expect(statusTone("COMPENSATION_FAILED")).toBe("critical");
  expect(statusTone("TIMEOUT")).toBe("timeout");
  for (const s of ["CREATED", "LOCKED", "EXECUTING", "CONFIRMING", "COMPENSATING"]) expect(statusTone(s)).toBe("run");
  expect(statusTone("CANCELLED")).toBe("muted");
  expect(statusColour("COMPLETED")).toBe(TONE_COLOURS.ok);
});

it("gives every known status a tone and unknown ones a neutral one", () => {
  for (const s of [...TX_STATUSES, ...STEP_STATUSES]) expect(TONE_COLOURS[statusTone(s)]).toBeTruthy();
  expect(statusTone("SOMETHING_NEW")).toBe("muted");
  expect(statusTone("open")).toBe("bad");
  expect(statusTone("half_open")).toBe("warn");
});

it("knows terminal statuses and labels them", () => {
  expect(isTerminal("COMPENSATED")).toBe(true);
  expect(isTerminal("COMPENSATING")).toBe(false);
  expect(statusLabel("COMPENSATION_FAILED")).toBe("Compensation failed");
  expect(statusLabel("half_open")).toBe("Half open");
});

it("names the step that failed the saga, not the one compensation has walked back to", () => {
  expect(failedStepOf({ status: "COMPENSATED", failed_step: 2 })).toBe(2);
  expect(failedStepOf({ status: "COMPENSATING", failed_step: 2 })).toBe(2);
  expect(failedStepOf({ status: "FAILED", failed_step: 0 })).toBe(0);
  expect(failedStepOf({ status: "COMPLETED" })).toBeNull();
  // moving forward, a failed attempt is about to be retried
  for (const status of ["CREATED", "LOCKED", "EXECUTING", "CONFIRMING"]) expect(failedStepOf({ status, failed_step: 1 })).toBeNull();
});

it("keeps every pair of status colours apart, also with red-green colour blindness", async () => {
  const { contrastOnWhite, deltaE } = await import("./colour");
  const { STATUS_TONES } = await import("./status");
  for (const vision of ["normal", "deuteranopia", "protanopia"] as const) {
    for (const [i, a] of STATUS_TONES.entries()) {
      for (const b of STATUS_TONES.slice(i + 1)) {
        // 15 is far beyond noticeable: two swatches side by side read as different colours.
        expect(deltaE(TONE_COLOURS[a], TONE_COLOURS[b], vision), `${a} / ${b} (${vision})`).toBeGreaterThan(vision === "normal" ? 30 : 15);
      }
    }
  }
  // Each colour also works as text on white (badges, error text).
  for (const t of STATUS_TONES) expect(contrastOnWhite(TONE_COLOURS[t]), t).toBeGreaterThanOrEqual(4.5);
});
