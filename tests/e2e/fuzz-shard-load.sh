#!/usr/bin/env bash
# The shard snapshot loader under libFuzzer for a short, fixed budget,
# starting from the committed seed snapshot: any crash, sanitizer report,
# leak or time-out fails. (Longer runs: see tests/fuzz/shard_load.c.)
source tests/e2e-lib.sh
command -v clang >/dev/null || fail "clang is needed for the fuzz target (scripts/setup --test)"
make -s build/fuzz/shard_load >"$TMP/build.log" 2>&1 || fail "build failed: $(tail -20 "$TMP/build.log")"
mkdir -p "$TMP/corpus"
expect_status 0 build/fuzz/shard_load -seed=1 -runs=30000 -timeout=10 -rss_limit_mb=2048 \
  "$TMP/corpus" tests/fixtures/shard
expect_grep "Done 30000 runs" "$TMP/err"
