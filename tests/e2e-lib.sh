# Helpers for the end-to-end tests (sourced, not run). Each test is a bash
# script run from the repository root; it passes when it exits 0.
set -euo pipefail
SEMDEX=${SEMDEX:-build/semdex}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/semdex-e2e.XXXXXX")
cleanup_hooks=()
# The hooks run last-registered first (a test's own hook, such as resuming a
# stopped node, runs before the cluster it registered earlier is stopped).
on_exit() {
  local i
  for ((i = ${#cleanup_hooks[@]} - 1; i >= 0; i--)); do eval "${cleanup_hooks[i]}" || true; done
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

# sample_records N FILE: the first N records of the smallest shared arXiv part.
sample_records() {
  { zstd -dc ../shared/datasets/arxiv/arxiv-metadata-part-06.jsonl.zst 2>/dev/null || true; } | head -n "$1" > "$2"
  [ "$(wc -l < "$2")" = "$1" ] || fail "cannot read $1 records from ../shared/datasets/arxiv"
}

# start_server DATA_DIR [ARGS...]: starts `semdex serve --create` on a free
# port and waits until /health answers 200. Sets SERVER_PID, PORT, BASE; the
# log is $TMP/server.log. The server is killed when the test exits.
start_server() {
  local dir=$1; shift
  local try
  for try in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 20000))
    "$SEMDEX" serve --data "$dir" --create --port "$PORT" "$@" >>"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    cleanup_hooks+=("kill -9 $SERVER_PID 2>/dev/null")
    BASE="http://127.0.0.1:$PORT"
    if wait_healthy 120; then return 0; fi
    kill -9 "$SERVER_PID" 2>/dev/null || true
    grep -q "cannot listen" "$TMP/server.log" || break
  done
  fail "server did not become healthy: $(tail -20 "$TMP/server.log")"
}

# wait_healthy SECONDS: polls /health until 200; fails if the server exits.
wait_healthy() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}

# stop_server: SIGTERM and wait for a clean exit.
stop_server() {
  kill -TERM "$SERVER_PID"
  local rc=0
  wait "$SERVER_PID" || rc=$?
  [ $rc = 0 ] || fail "server exited $rc after SIGTERM: $(tail -20 "$TMP/server.log")"
}

# http METHOD PATH [CURL-ARGS...]: request; sets STATUS, body in $TMP/body.
http() {
  local method=$1 path=$2; shift 2
  STATUS=$(curl -s -o "$TMP/body" -w "%{http_code}" -X "$method" "$BASE$path" "$@" || true)
}

# post_json PATH JSON [CURL-ARGS...]: POST with Content-Type: application/json.
post_json() {
  local path=$1 body=$2; shift 2
  http POST "$path" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# expect_http STATUS [JQ-FILTER]: checks the last response's status, and that
# the JQ filter (when given) is true on its body.
expect_http() {
  [ "$STATUS" = "$1" ] || fail "expected HTTP $1, got $STATUS: $(head -c 1000 "$TMP/body")"
  if [ $# -ge 2 ]; then
    jq -e "$2" "$TMP/body" >/dev/null || fail "expected $2 on: $(head -c 1500 "$TMP/body")"
  fi
}
