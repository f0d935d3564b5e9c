# The Redis module (build/semdex.so) in a real redis-server: every command
# and its error cases, searches on keys deleted mid-flight, a replica that
# answers exactly like its master (ids, scores, DEBUG DIGEST-VALUE), the RDB
# round trip (DEBUG RELOAD) and restarts from the AOF, with and without the
# RDB preamble. The checks themselves are in tests/e2e-redis.py.
# SEMDEX_MODULE=build/asan/semdex.so runs the ASan build of the module.
. tests/e2e-lib.sh
MODULE=${SEMDEX_MODULE:-build/semdex.so}
PY="python3 tests/e2e-redis.py"
command -v redis-server >/dev/null || fail "redis-server is not installed (scripts/setup --test)"
[ -f "$MODULE" ] || fail "$MODULE is missing (make module)"
MODULE=$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")

# The ASan build needs its runtime loaded first into the server.
preload=
case "$MODULE" in
  */asan/*) preload=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
            export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 ;;
esac

# start_redis NAME PORT [ARGS...]: a server in $TMP/NAME on 127.0.0.1:PORT,
# killed when the test exits; waits until it answers PING.
start_redis() {
  local name=$1 port=$2; shift 2
  mkdir -p "$TMP/$name"
  LD_PRELOAD=$preload redis-server --bind 127.0.0.1 --port "$port" --dir "$TMP/$name" --save '' \
    --appendonly no --enable-debug-command yes --logfile "$TMP/$name/log" \
    --loadmodule "$MODULE" threads 2 "$@" &
  local pid=$!
  eval "PID_$name=$pid"
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  local i
  for i in $(seq 100); do
    [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "redis-server $name did not start: $(tail -20 "$TMP/$name/log" 2>/dev/null)"
}

# stop_redis NAME PORT: SHUTDOWN (which writes the AOF out) and wait.
stop_redis() {
  local pid
  eval "pid=\$PID_$1"
  redis-cli -p "$2" SHUTDOWN >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
}

# wait_rewrite PORT: until no AOF rewrite is running or scheduled.
wait_rewrite() {
  local i
  for i in $(seq 300); do
    redis-cli -p "$1" INFO persistence | tr -d '\r' | grep -qE '^aof_rewrite_(in_progress|scheduled):1' || return 0
    sleep 0.1
  done
  fail "AOF rewrite did not finish"
}

M=$((20000 + $$ % 10000 * 2))
R=$((M + 1))
start_redis master "$M"
start_redis replica "$R" --replicaof 127.0.0.1 "$M"
for i in $(seq 100); do
  redis-cli -p "$R" INFO replication | tr -d '\r' | grep -q '^master_link_status:up' && break
  sleep 0.1
done

# 1. every command, every error
$PY msearch "$M"
$PY basic "$M"

# 2. replication: the replica's graph is the master's
$PY ingest "$M" shard 2000 7
[ "$(redis-cli -p "$M" WAIT 1 20000)" = 1 ] || fail "the replica did not acknowledge the writes"
$PY results "$M" shard > "$TMP/master.txt"
$PY results "$R" shard > "$TMP/replica.txt"
grep -q '^q39 2101' "$TMP/master.txt" || fail "no search results: $(head -5 "$TMP/master.txt")"
diff "$TMP/master.txt" "$TMP/replica.txt" > "$TMP/diff" || fail "replica answers differ: $(head -20 "$TMP/diff")"
redis-cli -p "$R" SEMDEX.DEL shard 2101.00003 | grep -q READONLY || fail "a replica accepted a write"
[ "$(redis-cli -p "$R" INFO semdex | tr -d '\r' | grep '^semdex_keys:')" = "semdex_keys:3" ] ||
  fail "replica INFO semdex: $(redis-cli -p "$R" INFO semdex)"

# 3. RDB round trip: same answers, same digest
redis-cli -p "$M" DEBUG RELOAD | grep -q OK || fail "DEBUG RELOAD failed: $(tail -5 "$TMP/master/log")"
$PY results "$M" shard > "$TMP/reload.txt"
diff "$TMP/master.txt" "$TMP/reload.txt" > "$TMP/diff" || fail "answers differ after DEBUG RELOAD: $(head -20 "$TMP/diff")"

# 4. AOF with an RDB preamble, then more writes in the AOF tail, restart
redis-cli -p "$M" CONFIG SET appendonly yes >/dev/null
wait_rewrite "$M"
$PY ingest "$M" shard 300 8 >/dev/null
$PY results "$M" shard > "$TMP/aof-before.txt"
stop_redis master "$M"
start_redis master "$M" --appendonly yes
$PY results "$M" shard > "$TMP/aof-after.txt"
diff "$TMP/aof-before.txt" "$TMP/aof-after.txt" > "$TMP/diff" || fail "answers differ after an AOF restart: $(head -20 "$TMP/diff")"

# 5. AOF rewritten as commands (no preamble): SEMDEX.CREATE + UPSERTL with
# levels; the same contents, every paper found by its own vector
redis-cli -p "$M" CONFIG SET aof-use-rdb-preamble no >/dev/null
redis-cli -p "$M" BGREWRITEAOF >/dev/null
wait_rewrite "$M"
grep -aq 'SEMDEX.UPSERTL' "$TMP/master/appendonlydir/"*.base.aof || fail "the rewritten AOF has no SEMDEX.UPSERTL"
$PY results "$M" shard self > "$TMP/cmd-before.txt"
stop_redis master "$M"
start_redis master "$M" --appendonly yes --aof-use-rdb-preamble no
$PY results "$M" shard self > "$TMP/cmd-after.txt"
diff <(grep -E '^(digest|papers)' "$TMP/cmd-before.txt") <(grep -E '^(digest|papers)' "$TMP/cmd-after.txt") \
  > "$TMP/diff" || fail "contents differ after a restart from a command AOF: $(head -20 "$TMP/diff")"
[ "$(grep -c "^self" "$TMP/cmd-after.txt")" -ge 40 ] &&
  awk '$1 == "self" && $2 != $3 {bad++} END {exit bad > 0}' "$TMP/cmd-after.txt" ||
  fail "papers not found by their own vector after the AOF restart"

# 6. keys deleted and flushed under running searches
$PY inflight "$M"
redis-cli -p "$M" PING | grep -q PONG || fail "master died"
! grep -qE 'ERROR: AddressSanitizer|runtime error|crashed by signal' "$TMP"/*/log ||
  fail "sanitizer or crash report: $(grep -hE -A20 'AddressSanitizer|runtime error|crashed' "$TMP"/*/log | head -40)"
echo "redis-module: ok"
