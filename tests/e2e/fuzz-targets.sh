#!/usr/bin/env bash
# Every libFuzzer target (tests/fuzz/*.c: the shard snapshot, safetensors,
# tokenizer, HTTP routes, JSON-lines ingest, .npy, the store's log, manifest
# and snapshot files, the Redis module's item and RDB decoding) runs a few
# seconds from its committed seeds, after replaying the inputs that once
# crashed it (tests/fuzz/crashes/): any crash, sanitizer report, leak,
# broken invariant or time-out fails. Longer runs: make fuzz (docs/testing.md).
source tests/e2e-lib.sh
command -v clang >/dev/null || fail "clang is needed for the fuzz targets (scripts/setup --test)"
make -s fuzz-build >"$TMP/build.log" 2>&1 || fail "build failed: $(tail -20 "$TMP/build.log")"
targets=$(sed -n 's/^FUZZ_ALL *:= *//p' Makefile)
[ -n "$targets" ] || fail "no FUZZ_ALL in the Makefile"
for t in $targets; do
  n=$(tests/fuzz/run --seeds "$t" | while read -r d; do ls "$d"; done | wc -l)
  [ "$n" -gt 0 ] || fail "target $t has no committed seeds (tests/fuzz/corpus/$t)"
done
# A scratch corpus, so the test starts from the committed seeds every time.
export FUZZ_ARGS="-seed=1"
expect_status 0 env FUZZ_CORPUS_ROOT="$TMP/corpus" tests/fuzz/run "${FUZZ_E2E_SECONDS:-4}" $targets
cat "$TMP/out"
for t in $targets; do
  expect_grep "^$t +[0-9]+ +[0-9]+ +[0-9]+  ok$" "$TMP/out"
done
