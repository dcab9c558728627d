// Unit tests of the step, in plain Node (no component build): `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { StepError, StepTest } from "./rte_step.js";
import { reserve } from "./step.js";

test("reserves and gives back", () => {
  const t = new StepTest();
  const outputs = t.execute(reserve, { item: "apple", qty: 3 });
  assert.equal(outputs.remaining, 7);
  assert.equal(t.kv.get("stock/apple"), "7");
  t.compensate(reserve, { item: "apple" });
  assert.equal(t.kv.get("stock/apple"), "10");
  t.compensate(reserve, { item: "apple" }); // nothing left to undo
  assert.equal(t.kv.get("stock/apple"), "10");
});

test("too few left is permanent and writes nothing", () => {
  const t = new StepTest();
  t.kv.set("stock/apple", "2");
  assert.throws(
    () => t.execute(reserve, { item: "apple", qty: 3 }),
    (err) => err instanceof StepError && !err.isRetryable && /only 2 apple left/.test(err.message),
  );
  assert.deepEqual([...t.kv], [["stock/apple", "2"]]);
});

test("a kv failure is retryable", () => {
  const t = new StepTest();
  t.kvFail("store down");
  assert.throws(
    () => t.execute(reserve, { item: "apple" }),
    (err) => err instanceof StepError && err.isRetryable,
  );
});
