# /health and /metrics never wait behind a checkpoint: a load balancer must
# not take a busy node out. The checkpoint is held for as long as the test
# wants by a named pipe where the checkpoint writes its snapshot: opening a
# pipe for writing blocks until someone reads it. While it is held, writes
# wait (the checkpoint has the writers' lock) and both endpoints must answer
# within 100 ms (a "must not block" bound: blocked, they would not answer at
# all). Then the pipe is drained, the checkpoint fails on its fsync (a pipe
# cannot be synced) and the metrics count it.
. tests/e2e-lib.sh
vec=$(seq -s, 1 384 | sed 's/[0-9]*/0.05/g')
paper() { echo "{\"papers\": [{\"id\": \"$1\", \"title\": \"Paper $1\", \"abstract\": \"An abstract.\", \"categories\": \"cs.DB\", \"embedding\": [$vec]}]}"; }

mkdir -p "$TMP/db"
start_server "$TMP/db" --checkpoint-bytes 4096
gen=$(curl -sf "$BASE/collections/info" | jq -r .storage.generation)
[ -n "$gen" ] && [ "$gen" != null ] || fail "no storage.generation in /collections/info"
fifo="$TMP/db/shard-$((gen + 1))-0.snap.tmp"
mkfifo "$fifo"

# Three papers take the log past 4096 bytes: the third starts a checkpoint,
# which blocks opening the pipe with the writers' lock held.
for i in 1 2 3; do post_json /papers "$(paper "2501.0000$i")"; expect_http 200; done
sleep 1
code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' -X POST "$BASE/papers" -H 'Content-Type: application/json' \
       --data-binary "$(paper 2501.00009)" || true)
[ "$code" = 000 ] || fail "a write during the held checkpoint answered $code: the checkpoint is not holding writers"

for i in 1 2 3 4 5; do
  for path in /health /metrics; do
    out=$(curl -s -m 5 -o "$TMP/body" -w '%{http_code} %{time_total}' "$BASE$path" || true)
    set -- $out
    [ "${1:-}" = 200 ] || fail "$path answered '${1:-nothing}' during a checkpoint: $(head -c 300 "$TMP/body")"
    awk -v t="${2:-9}" 'BEGIN { exit !(t < 0.1) }' || fail "$path took ${2:-?} s during a checkpoint (bound: 0.1 s)"
  done
done
grep -q '^semdex_papers 3$' "$TMP/body" || fail "/metrics during the checkpoint: $(grep semdex_papers "$TMP/body")"

# Release the checkpoint; it fails on fsync, is counted, and writes go on.
cat "$fifo" > /dev/null &
cleanup_hooks+=("kill $! 2>/dev/null")
for i in $(seq 100); do
  http GET /metrics
  grep -q '^semdex_checkpoints_total{result="failed"} 1$' "$TMP/body" && break
  sleep 0.1
done
grep -q '^semdex_checkpoints_total{result="failed"} 1$' "$TMP/body" || fail "the failed checkpoint is not counted: $(grep checkpoints "$TMP/body")"
post_json /papers "$(paper 2501.00010)"; expect_http 200
stop_server
