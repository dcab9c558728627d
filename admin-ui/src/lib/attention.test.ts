import { describe, expect, it } from "vitest";
import { attentionItems, recoveryHealth, stuckSagas } from "./attention";
import type { RecoveryFigures, TxView } from "../types";

const NOW = Date.parse("2025-03-01T12:00:00Z");
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const tx = (id: string, status: string, updatedAgo: number) => ({ tx_id: id, status, updated_at: ago(updatedAgo) }) as unknown as TxView;
const recovery = (over: Partial<RecoveryFigures> = {}): RecoveryFigures => ({
  running: true,
  interval_ms: 30_000,
  stuck_threshold_ms: 300_000,
  scanned: 0,
  processed: 0,
  failed: 0,
  last_run_at: ago(10_000),
  last_run_duration_ms: 3,
  ...over,
});

describe("attentionItems", () => {
  it("says all is well with only a healthy recovery worker", () => {
    const items = attentionItems({ now: NOW, breakers: [], compensationFailed: { items: [], total: 0 }, oldRunning: { items: [], total: 0 }, alerts: [], recovery: recovery() });
    expect(items.map((i) => [i.key, i.level])).toEqual([["recovery", "ok"]]);
  });

  it("lists open breakers, failed compensations, stuck sagas and recent critical alerts, most urgent first", () => {
    const items = attentionItems({
      now: NOW,
      breakers: [
        { service: "bank", state: "open", consecutive_failures: 5, total_failures: 5, total_successes: 0 },
        { service: "mail", state: "closed", consecutive_failures: 0, total_failures: 0, total_successes: 3 },
      ],
      compensationFailed: { items: [tx("c1", "COMPENSATION_FAILED", 1000)], total: 4 },
      oldRunning: { items: [tx("s1", "EXECUTING", 600_000), tx("s2", "EXECUTING", 1000)], total: 2 },
      alerts: [
        { type: "alert.critical", tx_id: "c1", tx_type: "t", step_name: null, error: "compensation failed", data: {}, timestamp: ago(60_000) },
        { type: "alert.critical", tx_id: "old", tx_type: "t", step_name: null, error: "long ago", data: {}, timestamp: ago(2 * 86_400_000) },
      ],
      recovery: recovery(),
    });
    expect(items.map((i) => [i.key, i.level, i.title])).toEqual([
      ["breakers", "critical", "1 circuit breaker open"],
      ["compensation-failed", "critical", "4 sagas with failed compensation"],
      ["stuck", "warning", "1 saga stuck"],
      ["alerts", "critical", "1 critical alert in the last 24 h"],
      ["recovery", "ok", "Recovery healthy"],
    ]);
    expect(items[1].links).toEqual([{ label: "c1", href: "/transactions/c1" }]);
    expect(items[2].links?.map((l) => l.label)).toEqual(["s1"]);
  });
});

describe("stuckSagas", () => {
  it("keeps running sagas idle past the threshold", () => {
    expect(stuckSagas([tx("a", "EXECUTING", 400_000), tx("b", "COMPLETED", 900_000), tx("c", "COMPENSATING", 10)], 300_000, NOW).map((t) => t.tx_id)).toEqual(["a"]);
  });
});

describe("recoveryHealth", () => {
  it("flags a stopped worker, a stalled one and failures", () => {
    expect(recoveryHealth(recovery({ running: false }), NOW).level).toBe("critical");
    expect(recoveryHealth(recovery({ last_run_at: ago(200_000) }), NOW).level).toBe("warning");
    expect(recoveryHealth(recovery({ failed: 2 }), NOW).level).toBe("warning");
    expect(recoveryHealth(recovery(), NOW).level).toBe("ok");
  });
});
