// {{name}}: one saga step, `{{step}}`, that reserves `qty` units of `item` from a stock kept
// in the plugin's kv. Compensation puts them back.
// @ts-check

import { StepError, defineStep, kv, log } from "./rte_step.js";

export const reserve = defineStep({
  name: "{{step}}",
  description: "reserve qty units of item",
  // Retried at most 5 times, 200 ms apart at first; a call may take 2 s.
  policy: { maxRetries: 5, retryIntervalMs: 200, timeoutMs: 2000 },

  execute(ctx) {
    const item = ctx.inputAs("item");
    const qty = Number(ctx.inputAs("qty", 1));
    const stockKey = `stock/${item}`;
    // A new item starts with the input's `stock` (default 10).
    const stock = Number(kv.getJson(stockKey) ?? ctx.inputAs("stock", 10));
    if (qty > stock) throw StepError.permanent(`only ${stock} ${item} left`);
    kv.setJson(stockKey, stock - qty);
    // What compensation must undo, written atomically with the step's result.
    kv.setJson(`reserved/${ctx.txId}`, qty);
    log.info(`reserved ${qty} ${item}, ${stock - qty} left`);
    ctx.setOutput("reserved", qty);
    ctx.setOutput("remaining", stock - qty);
  },

  compensate(ctx) {
    const marker = `reserved/${ctx.txId}`;
    const qty = kv.getJson(marker);
    if (qty === null) return; // execute never took effect, or this already ran
    const stockKey = `stock/${ctx.inputAs("item")}`;
    kv.setJson(stockKey, Number(kv.getJson(stockKey) ?? 0) + Number(qty));
    kv.delete(marker);
  },

  idempotencyKey: (ctx) => `{{step}}:${ctx.txId}`,
});
