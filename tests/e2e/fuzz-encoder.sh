# The safetensors parser and the tokenizer under libFuzzer for a short, fixed
# budget, starting from the committed corpora: any crash, sanitizer report,
# leak or time-out fails. (Longer runs: see tests/fuzz/safetensors.c.)
source tests/e2e-lib.sh
command -v clang >/dev/null || fail "clang is needed for the fuzz targets (scripts/setup --test)"
make -s build/fuzz/safetensors build/fuzz/tokenizer >"$TMP/build.log" 2>&1 ||
  fail "build failed: $(tail -20 "$TMP/build.log")"
for t in safetensors tokenizer; do
  mkdir -p "$TMP/$t"
  expect_status 0 "build/fuzz/$t" -seed=1 -runs=20000 -timeout=10 -rss_limit_mb=2048 \
    "$TMP/$t" "tests/fuzz/corpus/$t"
  expect_grep "Done 20000 runs" "$TMP/err"
done
