/* Unit tests of the step, natively (no component build): `sh test.sh`. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "rte_step.h"

extern const rte_step reserve;

static void reserves_and_gives_back(void) {
  char outputs[256];
  rte_test_reset();
  rte_result r = rte_test_execute(&reserve, "{\"item\": \"apple\", \"qty\": 3}", outputs, sizeof outputs);
  assert(r.status == RTE_OK);
  assert(strcmp(outputs, "{\"reserved\":3,\"remaining\":7}") == 0);
  assert(strcmp(rte_test_kv("stock/apple"), "7") == 0);
  assert(rte_test_compensate(&reserve, "{\"item\": \"apple\"}").status == RTE_OK);
  assert(strcmp(rte_test_kv("stock/apple"), "10") == 0);
  /* Nothing left to undo. */
  assert(rte_test_compensate(&reserve, "{\"item\": \"apple\"}").status == RTE_OK);
  assert(strcmp(rte_test_kv("stock/apple"), "10") == 0);
}

static void too_few_left_is_permanent_and_writes_nothing(void) {
  rte_test_reset();
  assert(rte_test_execute(&reserve, "{\"item\": \"apple\", \"qty\": 8}", NULL, 0).status == RTE_OK);
  rte_result r = rte_test_execute(&reserve, "{\"item\": \"apple\", \"qty\": 3}", NULL, 0);
  assert(r.status == RTE_PERMANENT);
  assert(strcmp(r.message, "only 2 apple left") == 0);
  assert(strcmp(rte_test_kv("stock/apple"), "2") == 0);
}

static void a_kv_failure_is_retryable_and_a_missing_input_permanent(void) {
  rte_test_reset();
  rte_test_kv_fail("store down");
  assert(rte_test_execute(&reserve, "{\"item\": \"apple\"}", NULL, 0).status == RTE_RETRYABLE);
  rte_test_kv_fail(NULL);
  rte_result r = rte_test_execute(&reserve, "{\"qty\": 1}", NULL, 0);
  assert(r.status == RTE_PERMANENT && strcmp(r.message, "missing input `item`") == 0);
}

int main(void) {
  reserves_and_gives_back();
  too_few_left_is_permanent_and_writes_nothing();
  a_kv_failure_is_retryable_and_a_missing_input_permanent();
  printf("3 passed, 0 failed\n");
  return 0;
}
