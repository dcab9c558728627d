import { expect, it } from "vitest";
import type { HistoryEntry } from "../types";
import { actorOf, describeHistory, historyKindLabel } from "./history";

const line = (kind: string, actor: HistoryEntry["actor"], message = "m"): HistoryEntry => ({ at: "2024-01-01T00:00:00.000Z", kind, actor, message });

it("labels an operator's action with their reason", () => {
  const h = line("force_cancel", { type: "operator", reason: "customer gave up" }, "FAILED → CANCELLED");
  expect(actorOf(h)).toEqual({ type: "operator", label: "operator", reason: "customer gave up", host: null });
  expect(describeHistory(h)).toBe("force cancel by operator (customer gave up): FAILED → CANCELLED");
});

it("labels recovery's actions as recovery, with its host, never as an operator's", () => {
  const resumed = line("recovery", { type: "recovery", host: "host-b" }, "resumed in EXECUTING");
  expect(actorOf(resumed)).toEqual({ type: "recovery", label: "recovery on host-b", reason: null, host: "host-b" });
  expect(describeHistory(resumed)).toBe("recovery on host-b: resumed in EXECUTING");
  // recovery's retry policy retries too: the same kind as an operator's retry, another actor
  const retried = line("retry", { type: "recovery", host: "host-b" }, "FAILED → CREATED");
  expect(actorOf(retried)?.type).toBe("recovery");
  expect(describeHistory(retried)).toBe("retry by recovery on host-b: FAILED → CREATED");
  expect(describeHistory(retried)).not.toContain("operator");
  expect(describeHistory(line("recovery_given_up", { type: "recovery", host: "h" }))).toBe("recovery gave up on h: m");
});

it("guesses only what is certain for lines stored without an actor", () => {
  expect(actorOf(line("recovery", null))?.type).toBe("recovery");
  expect(actorOf(line("recovery_given_up", null))?.type).toBe("recovery");
  expect(actorOf(line("force_complete", null))?.type).toBe("operator");
  expect(actorOf(line("retry", null))).toBeNull();
  expect(describeHistory(line("retry", null, "FAILED → CREATED"))).toBe("retry: FAILED → CREATED");
});

it("names history kinds for people", () => {
  expect(historyKindLabel("force_complete")).toBe("force complete");
  expect(historyKindLabel("something_new")).toBe("something new");
});
