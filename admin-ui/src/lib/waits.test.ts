import { describe, expect, it } from "vitest";
import { replyBody, replyPath } from "./waits";

describe("answering a wait", () => {
  it("sends a JSON payload, or an error, with the reason", () => {
    expect(replyBody("payload", ' {"ledger_ref": "L-1"} ', "by phone")).toEqual({ body: { payload: { ledger_ref: "L-1" }, reason: "by phone" } });
    expect(replyBody("payload", "", "empty")).toEqual({ body: { payload: null, reason: "empty" } });
    expect(replyBody("error", " refused ", "r")).toEqual({ body: { error: "refused", reason: "r" } });
  });

  it("refuses a payload that is not JSON and an empty error", () => {
    expect("error" in replyBody("payload", "{nope", "r")).toBe(true);
    expect(replyBody("error", "  ", "r")).toEqual({ error: "Say what the error is." });
  });

  it("escapes the correlation id into one path segment", () => {
    expect(replyPath("tx:step/1")).toBe("/api/waits/tx%3Astep%2F1/reply");
  });
});
