import { describe, expect, it } from "vitest";
import { between, breakPieces, failureOf, formatAgo, formatClock, formatBytes, formatDuration, formatEventData, formatShortTime, isoToLocalInput, kindLabel, localInputToIso, shortDigest, splitErrorKind } from "./format";

describe("formatDuration", () => {
  it.each([
    [0, "0 ms"],
    [850, "850 ms"],
    [1000, "1 s"],
    [1234, "1.23 s"],
    [12_340, "12.3 s"],
    [65_000, "1m 05s"],
    [7_380_000, "2h 03m"],
    [2 * 86_400_000 + 3_600_000, "2d 1h"],
  ])("%d ms → %s", (ms, text) => expect(formatDuration(ms)).toBe(text));

  it("shows a dash for missing values and clamps negatives", () => {
    expect(formatDuration(null)).toBe("—");
    expect(formatDuration(undefined)).toBe("—");
    expect(formatDuration(-5)).toBe("0 ms");
  });
});

describe("times", () => {
  it("measures between two times, an open end being now", () => {
    expect(between("2024-01-01T00:00:00Z", "2024-01-01T00:00:01.5Z")).toBe(1500);
    expect(between("2024-01-01T00:00:00Z", null, Date.parse("2024-01-01T00:01:00Z"))).toBe(60_000);
    expect(between(null, null)).toBeNull();
  });

  it("says how long ago", () => {
    const now = Date.parse("2024-01-01T12:00:00Z");
    expect(formatAgo("2024-01-01T12:00:00Z", now)).toBe("just now");
    expect(formatAgo("2024-01-01T11:59:30Z", now)).toBe("30 s ago");
    expect(formatAgo("2024-01-01T11:00:00Z", now)).toBe("1 h ago");
  });

  it("shortens table times by distance", () => {
    const now = new Date(2024, 5, 15, 18, 0, 0).getTime();
    expect(formatShortTime(new Date(2024, 5, 15, 9, 5, 7).toISOString(), now)).toBe("09:05:07");
    expect(formatShortTime(new Date(2024, 1, 3, 14, 30).toISOString(), now)).toBe("Feb 3 14:30");
    expect(formatShortTime(new Date(2023, 11, 31, 23, 0).toISOString(), now)).toBe("2023-12-31");
  });

  it("shows clock times for today", () => {
    const now = new Date(2024, 5, 15, 18, 0, 0).getTime();
    expect(formatClock(new Date(2024, 5, 15, 9, 5, 7, 42).toISOString(), now)).toBe("09:05:07.042");
    expect(formatClock(new Date(2024, 5, 14, 9, 5, 7, 42).toISOString(), now)).toBe("2024-06-14 09:05:07.042");
  });

  it("round-trips datetime-local values through RFC 3339", () => {
    const iso = localInputToIso("2024-03-05T14:30");
    expect(iso).toMatch(/Z$/);
    expect(isoToLocalInput(iso)).toBe("2024-03-05T14:30");
    expect(localInputToIso("")).toBe("");
  });
});

it("formats byte sizes", () => {
  expect(formatBytes(512)).toBe("512 B");
  expect(formatBytes(1536)).toBe("1.5 KiB");
  expect(formatBytes(64 * 1024 * 1024)).toBe("64 MiB");
});

it("takes a failure's kind from its field, the message as given", () => {
  expect(failureOf("no funds", "permanent")).toEqual({ kind: "permanent", message: "no funds" });
  // a message that merely looks like a prefix is left alone when the kind differs
  expect(failureOf("trap: in the message", "retryable")).toEqual({ kind: "retryable", message: "trap: in the message" });
  // rows stored by older hosts: kind backfilled, prefix still in the text
  expect(failureOf("trap: wasm `unreachable`", "trap")).toEqual({ kind: "trap", message: "wasm `unreachable`" });
  expect(failureOf(null, "lost")).toEqual({ kind: "lost", message: "" });
  expect(failureOf(null, null)).toBeNull();
  // no kind at all: the old prefix is the fallback
  expect(failureOf("permanent: no funds", null)).toEqual({ kind: "permanent", message: "no funds" });
  expect(failureOf("plain", null)).toEqual({ kind: null, message: "plain" });
});

it("names failure kinds and shortens digests", () => {
  expect(kindLabel("store_unavailable")).toBe("store unavailable");
  expect(shortDigest("0123456789abcdef0123")).toBe("0123456789ab…");
  expect(shortDigest(null)).toBe("—");
});

it("splits an old-style step error into kind and message", () => {
  expect(splitErrorKind("permanent: no funds")).toEqual({ kind: "permanent", message: "no funds" });
  expect(splitErrorKind("trap: wasm `unreachable`")).toEqual({ kind: "trap", message: "wasm `unreachable`" });
  expect(splitErrorKind("something else")).toEqual({ kind: null, message: "something else" });
});

describe("breakPieces", () => {
  it("leaves short words whole and cuts long runs", () => {
    expect(breakPieces("a short message")).toEqual(["a short message"]);
    expect(breakPieces("x".repeat(70), 32)).toEqual(["x".repeat(32), "x".repeat(32), "x".repeat(6)]);
    expect(breakPieces(`ab ${"y".repeat(33)}`, 32)).toEqual([`ab ${"y".repeat(32)}`, "y"]);
  });
});

describe("formatEventData", () => {
  it("writes key=value pairs that wrap between pairs", () => {
    expect(formatEventData({ service: "testkit", n: 3, o: { a: 1, b: [1, 2] } })).toBe('service=testkit  n=3  o={ "a": 1, "b": [ 1, 2 ] }');
    expect(formatEventData(null)).toBe("");
  });
});
