import { expect, it } from "vitest";
import { readToken } from "./api";

it("reads a stored token until it expires", () => {
  const now = 1_000_000;
  expect(readToken(JSON.stringify({ token: "t", expires: now + 1 }), now)).toBe("t");
  expect(readToken(JSON.stringify({ token: "t", expires: now }), now)).toBeNull();
  expect(readToken("plain-text", now)).toBeNull();
  expect(readToken(null, now)).toBeNull();
});
