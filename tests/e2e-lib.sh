# Helpers for the end-to-end tests (sourced, not run). Each test is a bash
# script run from the repository root; it passes when it exits 0.
set -euo pipefail
SEMDEX=${SEMDEX:-build/semdex}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/semdex-e2e.XXXXXX")
cleanup_hooks=()
on_exit() {
  local h
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$TMP"
}
trap on_exit EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_status WANT COMMAND...: runs COMMAND, fails unless it exits WANT.
# Its stdout and stderr are kept in $TMP/out and $TMP/err.
expect_status() {
  local want=$1; shift
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want; stderr: $(head -c 2000 "$TMP/err")"
}

# expect_grep PATTERN FILE: fails unless FILE has a line matching PATTERN.
expect_grep() {
  grep -qE -- "$1" "$2" || fail "expected /$1/ in $2: $(head -c 2000 "$2")"
}
