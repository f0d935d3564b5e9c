#!/usr/bin/env bash
# The kernel, tokenizer and encoder unit tests cross-compiled for arm64
# (aarch64-linux-gnu-gcc) and run under QEMU user-mode emulation, so the
# NEON kernels are executed on every change: `make cross-arm64-test` checks
# that dispatch picks NEON (-cpu max) and scalar without the dot product
# (-cpu cortex-a72), and that every kernel matches the scalar reference.
# scripts/setup --test installs the cross compiler, QEMU and the arm64
# libraries.
source tests/e2e-lib.sh
for t in aarch64-linux-gnu-gcc; do
  command -v $t >/dev/null || fail "$t is missing (scripts/setup --test)"
done
command -v qemu-aarch64-static >/dev/null || command -v qemu-aarch64 >/dev/null ||
  fail "qemu-aarch64 is missing (scripts/setup --test)"
expect_status 0 make -s cross-arm64-test
# every run passed, with the expected tables
expect_grep "kernels chosen: model=neon index=neon" "$TMP/out"
expect_grep "kernels chosen: model=scalar index=neon" "$TMP/out"
expect_grep "^ok +model_embed_matches_reference" "$TMP/out"
expect_grep "^ok +text_tokenizer_matches_reference" "$TMP/out"
expect_grep "^ok +index_kernels_match_scalar" "$TMP/out"
[ "$(grep -cE '^[0-9]+ passed, 0 failed$' "$TMP/out")" = 2 ] ||
  fail "not every arm64 run passed: $(tail -30 "$TMP/out")"
