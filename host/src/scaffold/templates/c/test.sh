#!/bin/sh
# Build and run the step's unit tests natively, against the helper's in-memory kv.
set -eu
cd "$(dirname "$0")"
mkdir -p dist
${CC:-cc} -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -DRTE_STEP_NATIVE \
  -o dist/test_step test_step.c step.c rte_step.c
./dist/test_step
