import { describe, expect, it } from "vitest";
import type { Breaker, BreakerState, HostBreakers } from "../types";
import { breakerCounts, breakersByService, showPerHost } from "./breakers";

const breaker = (service: string, state: BreakerState = "closed", over: Partial<Breaker> = {}): Breaker => ({
  service,
  state,
  consecutive_failures: 0,
  total_failures: 0,
  total_successes: 0,
  ...over,
});
const host = (host_id: string, circuit_breakers: Breaker[], this_host = false): HostBreakers => ({ host_id, this_host, circuit_breakers });

describe("showPerHost", () => {
  const two = [host("h1", [], true), host("h2", [])];

  it("shows each host's breakers only when they are not shared and there are several hosts", () => {
    expect(showPerHost(false, two)).toBe(true);
    expect(showPerHost(true, two)).toBe(false);
    expect(showPerHost(false, [host("h1", [], true)])).toBe(false);
    expect(showPerHost(false, [])).toBe(false);
  });

  it("shows nothing for a host older than the cluster views", () => {
    expect(showPerHost(undefined, undefined)).toBe(false);
    expect(showPerHost(undefined, two)).toBe(false);
    expect(showPerHost(false, undefined)).toBe(false);
  });
});

describe("breakersByService", () => {
  it("lists every service by name with its breaker on each host, in host order", () => {
    const here = breaker("payments");
    const there = breaker("payments", "open", { consecutive_failures: 5 });
    const ship = breaker("shipping");
    const rows = breakersByService([host("h1", [here], true), host("h2", [ship, there])]);
    expect(rows).toEqual([
      { service: "payments", breakers: [here, there], differs: true },
      { service: "shipping", breakers: [null, ship], differs: false },
    ]);
  });

  it("finds no difference when every host has the same state", () => {
    const rows = breakersByService([host("h1", [breaker("a", "half_open")], true), host("h2", [breaker("a", "half_open")])]);
    expect(rows.map((r) => r.differs)).toEqual([false]);
    expect(breakersByService([host("h1", [], true), host("h2", [])])).toEqual([]);
  });

  it("counts a missing breaker as closed when comparing", () => {
    expect(breakersByService([host("h1", [], true), host("h2", [breaker("a", "open")])])[0].differs).toBe(true);
  });
});

it("describes a breaker's counts", () => {
  expect(breakerCounts(breaker("a", "open", { consecutive_failures: 3, total_failures: 7, total_successes: 12 }))).toBe(
    "3 consecutive failures; 7 failed, 12 succeeded in all",
  );
});
