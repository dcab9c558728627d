/* Write RTE saga steps in C with the shape of the Rust SDK.
 *
 * A step is an `rte_step` (a name and an execute; optionally compensate and an idempotency
 * key); `RTE_EXPORT_STEPS(...)` exports the steps. Inside a step:
 *
 * - `rte_input_string / rte_input_int(ctx, key, ...)`: a value of the saga's input, or a
 *   permanent error naming the missing key; `rte_input_int_or` with a default.
 * - `rte_set_output_int / rte_set_output_string(ctx, key, value)`.
 * - `rte_kv_get / rte_kv_get_int / rte_kv_set / rte_kv_set_int / rte_kv_delete`: the
 *   plugin's durable store; a store failure is a retryable error.
 * - `rte_log_info(...)` and friends (printf-style).
 * - return `rte_ok()`, `rte_retryable(fmt, ...)` or `rte_permanent(fmt, ...)`.
 *
 * Built with `-DRTE_STEP_NATIVE` (the unit test), kv and log are an in-memory stand-in of
 * the host, and `rte_test_execute / rte_test_compensate` call steps as the host does. */
#ifndef RTE_STEP_H
#define RTE_STEP_H

#include <stdbool.h>
#include <stddef.h>

/* How a call ended: ok, or a failure with its message. */
typedef enum { RTE_OK = 0, RTE_RETRYABLE, RTE_PERMANENT } rte_status;

typedef struct {
  rte_status status;
  char message[256];
} rte_result;

rte_result rte_ok(void);
rte_result rte_retryable(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
rte_result rte_permanent(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Return from the calling step if `expr` (an rte_result) failed. */
#define RTE_TRY(expr)                                                                      \
  do {                                                                                     \
    rte_result rte_try_ = (expr);                                                          \
    if (rte_try_.status != RTE_OK) return rte_try_;                                        \
  } while (0)

/* One call of a step. */
typedef struct rte_ctx rte_ctx;

const char *rte_tx_id(const rte_ctx *ctx);
const char *rte_step_name(const rte_ctx *ctx);
unsigned rte_attempt(const rte_ctx *ctx);
/* For compensate: whether execute is known to have completed. */
bool rte_execute_completed(const rte_ctx *ctx);

/* Input `key` (a JSON string) into `out` (at most `cap` bytes with its NUL). */
rte_result rte_input_string(const rte_ctx *ctx, const char *key, char *out, size_t cap);
/* Input `key` (a JSON integer). */
rte_result rte_input_int(const rte_ctx *ctx, const char *key, long long *out);
/* Input `key`, or `fallback` when it is missing. */
long long rte_input_int_or(const rte_ctx *ctx, const char *key, long long fallback);
/* Set an output, passed on to later steps. */
void rte_set_output_int(rte_ctx *ctx, const char *key, long long value);
void rte_set_output_string(rte_ctx *ctx, const char *key, const char *value);

/* The plugin's durable key-value store; writes commit with the call's result. */
rte_result rte_kv_get(const char *key, char *out, size_t cap, bool *found);
rte_result rte_kv_get_int(const char *key, long long *out, bool *found);
rte_result rte_kv_set(const char *key, const char *value);
rte_result rte_kv_set_int(const char *key, long long value);
rte_result rte_kv_delete(const char *key);

/* Lines into the host's log, tagged with the saga and step. */
void rte_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rte_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rte_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A policy value that is either given or left to the host: `RTE_SOME(5)`, or nothing. */
typedef struct {
  bool set;
  unsigned long long value;
} rte_opt;
#define RTE_SOME(v) {true, (unsigned long long)(v)}

/* How the host runs a step, as its code declares it. A field left out is the host's
 * default; the saga definition, then the operator's configuration, may override each one:
 *   .policy = &(rte_policy){.max_retries = RTE_SOME(5), .timeout_ms = RTE_SOME(2000)} */
typedef struct {
  /* Retries after a retryable failure. */
  rte_opt max_retries;
  /* Delay before the first retry, ms; later ones double, with jitter. */
  rte_opt retry_interval_ms;
  /* Longest delay between retries, ms. */
  rte_opt retry_max_interval_ms;
  /* Deadline of one call, ms. */
  rte_opt timeout_ms;
  /* RTE_SOME(true) or RTE_SOME(false): whether running execute twice has the effect of
   * running it once (a step that says false is not retried after a failure whose effect is
   * unknown). */
  rte_opt idempotent;
} rte_policy;

/* One saga step. */
typedef struct {
  /* Name used in saga definitions; unique across the plugins a host loads. */
  const char *name;
  /* One line for operators. */
  const char *description;
  /* Do the work: outputs set on `ctx` pass on, kv writes commit only if it returns ok. */
  rte_result (*execute)(rte_ctx *ctx);
  /* Undo what execute did (NULL: none); must succeed when there is nothing to undo. */
  rte_result (*compensate)(rte_ctx *ctx);
  /* Write a key naming this execution's effect into `out` and return true (NULL: none). */
  bool (*idempotency_key)(const rte_ctx *ctx, char *out, size_t cap);
  /* How the host should run it (NULL: the host's defaults). */
  const rte_policy *policy;
} rte_step;

/* The steps the component exports: `RTE_EXPORT_STEPS(&reserve)`. */
extern const rte_step *const rte_steps[];
extern const size_t rte_steps_len;
#define RTE_EXPORT_STEPS(...)                                                              \
  const rte_step *const rte_steps[] = {__VA_ARGS__};                                       \
  const size_t rte_steps_len = sizeof(rte_steps) / sizeof(rte_steps[0])

#ifdef RTE_STEP_NATIVE
/* Start a test: an empty in-memory kv. */
void rte_test_reset(void);
/* Call execute with `input_json`; its outputs (a JSON object) go into `outputs`. A failed
 * call's kv writes are discarded, as the host discards them. */
rte_result rte_test_execute(const rte_step *step, const char *input_json, char *outputs,
                            size_t cap);
rte_result rte_test_compensate(const rte_step *step, const char *input_json);
/* The in-memory kv's value of `key`, or NULL. */
const char *rte_test_kv(const char *key);
/* Make kv calls fail (retryable) with `message`; NULL heals it. */
void rte_test_kv_fail(const char *message);
#endif

#endif
