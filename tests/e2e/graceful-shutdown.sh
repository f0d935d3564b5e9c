# SIGTERM under load: requests in flight are answered, new ones get 503 (never
# a dropped connection), the server checkpoints and exits 0.
. tests/e2e-lib.sh
sample_records 100 "$TMP/sample.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" --quiet "$TMP/sample.jsonl"
start_server "$TMP/db"
client() { # client N: searches until the server is gone, logging each status
  local i=0 code rc
  while :; do
    i=$((i + 1))
    rc=0
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/search" -H 'Content-Type: application/json' \
           --data-binary "{\"query\": \"client $1 query $i about neural networks\"}") || rc=$?
    echo "$code curl=$rc" >> "$TMP/codes-$1"
    [ "$code" = 000 ] && break
  done
}
for n in 1 2 3 4 5 6 7 8; do client $n & done
sleep 3
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
wait
[ $rc = 0 ] || fail "server exited $rc after SIGTERM: $(tail -5 "$TMP/server.log")"
grep -q "stopped" "$TMP/server.log" || fail "no clean stop in the log"
# Every request got 200 or 503, until the listener was gone: then the
# connection was refused (curl exit 7), never reset or left unanswered.
for n in 1 2 3 4 5 6 7 8; do
  grep -qvE '^(200|503) curl=0$|^000 curl=7$' "$TMP/codes-$n" && fail "client $n saw: $(sort "$TMP/codes-$n" | uniq -c)"
  grep -q '^200 ' "$TMP/codes-$n" || fail "client $n got no answer at all"
done
true
