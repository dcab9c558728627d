/* {{name}}: one saga step, `{{step}}`, that reserves `qty` units of `item` from a stock kept
 * in the plugin's kv. Compensation puts them back. */
#include <stdio.h>

#include "rte_step.h"

static rte_result execute(rte_ctx *ctx) {
  char item[64], key[128];
  RTE_TRY(rte_input_string(ctx, "item", item, sizeof item));
  long long qty = rte_input_int_or(ctx, "qty", 1), stock;
  bool found;
  snprintf(key, sizeof key, "stock/%s", item);
  /* A new item starts with the input's `stock` (default 10). */
  RTE_TRY(rte_kv_get_int(key, &stock, &found));
  if (!found) stock = rte_input_int_or(ctx, "stock", 10);
  if (qty > stock) return rte_permanent("only %lld %s left", stock, item);
  RTE_TRY(rte_kv_set_int(key, stock - qty));
  /* What compensation must undo, written atomically with the step's result. */
  snprintf(key, sizeof key, "reserved/%s", rte_tx_id(ctx));
  RTE_TRY(rte_kv_set_int(key, qty));
  rte_log_info("reserved %lld %s, %lld left", qty, item, stock - qty);
  rte_set_output_int(ctx, "reserved", qty);
  rte_set_output_int(ctx, "remaining", stock - qty);
  return rte_ok();
}

static rte_result compensate(rte_ctx *ctx) {
  char item[64], marker[128], key[128];
  long long qty, stock;
  bool found;
  snprintf(marker, sizeof marker, "reserved/%s", rte_tx_id(ctx));
  RTE_TRY(rte_kv_get_int(marker, &qty, &found));
  if (!found) return rte_ok(); /* execute never took effect, or this already ran */
  RTE_TRY(rte_input_string(ctx, "item", item, sizeof item));
  snprintf(key, sizeof key, "stock/%s", item);
  RTE_TRY(rte_kv_get_int(key, &stock, &found));
  RTE_TRY(rte_kv_set_int(key, (found ? stock : 0) + qty));
  return rte_kv_delete(marker);
}

static bool idempotency_key(const rte_ctx *ctx, char *out, size_t cap) {
  snprintf(out, cap, "{{step}}:%s", rte_tx_id(ctx));
  return true;
}

const rte_step reserve = {
    .name = "{{step}}",
    .description = "reserve qty units of item",
    .execute = execute,
    .compensate = compensate,
    .idempotency_key = idempotency_key,
    /* Retried up to 5 times, each call given 2 s (the saga definition and the operator may
     * override either). */
    .policy = &(rte_policy){.max_retries = RTE_SOME(5), .timeout_ms = RTE_SOME(2000)},
};

RTE_EXPORT_STEPS(&reserve);
