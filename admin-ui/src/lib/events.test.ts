import { describe, expect, it } from "vitest";
import { eventFiltersToQuery, eventMatches, NO_EVENT_FILTERS, parseEventFilters } from "./events";
import type { RteEvent } from "../types";

const ev = (over: Partial<RteEvent>): RteEvent => ({ type: "tx.completed", tx_id: "0193-abcd", tx_type: "t", step_name: null, error: null, data: {}, timestamp: "2025-03-01T12:00:00.000Z", ...over });

describe("event filters", () => {
  it("round-trip through the query string, defaults left out", () => {
    const f = { ...NO_EVENT_FILTERS, type: "tx.failed", tx: "abcd", page: 3 };
    expect(eventFiltersToQuery(f)).toBe("type=tx.failed&tx=abcd&page=3");
    expect(parseEventFilters(eventFiltersToQuery(f))).toEqual(f);
    expect(eventFiltersToQuery(NO_EVENT_FILTERS)).toBe("");
    expect(eventFiltersToQuery(NO_EVENT_FILTERS, true)).toBe("page=1&limit=100");
    expect(parseEventFilters("page=-2").page).toBe(1);
  });

  it("match live events as the host does", () => {
    const f = { ...NO_EVENT_FILTERS, type: "tx.completed,tx.failed", tx: "abc", since: "2025-03-01T11:00:00Z", until: "2025-03-01T12:00:00.001Z" };
    expect(eventMatches(ev({}), f)).toBe(true);
    expect(eventMatches(ev({ type: "step.started" }), f)).toBe(false);
    expect(eventMatches(ev({ tx_id: "zzz" }), f)).toBe(false);
    expect(eventMatches(ev({ timestamp: "2025-03-01T12:00:00.001Z" }), f)).toBe(false);
    expect(eventMatches(ev({ step_name: "a" }), { ...NO_EVENT_FILTERS, step: "b" })).toBe(false);
  });
});
