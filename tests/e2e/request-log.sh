# One structured log line per request (method, route, status, duration,
# stage times, client, request id), X-Request-Id echoed (the client's when
# sane, else generated), the slow-request log above --slow-ms, and the
# per-stage, write and log series of /metrics after real searches and writes.
. tests/e2e-lib.sh
mkdir -p "$TMP/db"
# 1 ms: every search (it runs the encoder) is slow; /health is not looked at.
start_server "$TMP/db" --slow-ms 1
post_json /papers "{\"papers\": [
  {\"id\": \"2501.00001\", \"title\": \"Graph neural networks\", \"abstract\": \"A.\"},
  {\"id\": \"2501.00002\", \"title\": \"Quantum error correction\", \"abstract\": \"B.\"},
  {\"id\": \"2501.00003\", \"title\": \"Protein folding\", \"abstract\": \"C.\"}]}"
expect_http 200 '.upserted == 3'
http DELETE /papers/2501.00003; expect_http 200

# A sane client id is echoed and logged.
curl -s -D "$TMP/headers" -o "$TMP/body" -X POST "$BASE/search" -H 'Content-Type: application/json' \
     -H 'X-Request-Id: trace-42.a:b' --data-binary '{"query": "message passing on graphs", "top_k": 2}'
grep -qi '^X-Request-Id: trace-42.a:b' "$TMP/headers" || fail "client request id not echoed: $(cat "$TMP/headers")"
jq -e '.results[0].paper_id == "2501.00001"' "$TMP/body" >/dev/null || fail "search: $(cat "$TMP/body")"
# An insane one (spaces, too long) is replaced by a generated one.
curl -s -D "$TMP/headers2" -o /dev/null "$BASE/health" -H 'X-Request-Id: no spaces allowed'
gen=$(tr -d '\r' < "$TMP/headers2" | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')
[[ $gen =~ ^[0-9a-f]{8}-[0-9]+$ ]] || fail "generated request id '$gen'"
curl -s -D "$TMP/headers3" -o /dev/null "$BASE/health" -H "X-Request-Id: $(head -c 65 /dev/zero | tr '\0' a)"
grep -qi "^X-Request-Id: $(head -c 65 /dev/zero | tr '\0' a)" "$TMP/headers3" && fail "a 65-character id was accepted"
gen2=$(tr -d '\r' < "$TMP/headers3" | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')
[ "$gen2" != "$gen" ] || fail "two requests got the same generated id $gen"

sleep 0.2 # the completion callback logs after the response is sent
line=$(grep 'id=trace-42.a:b ' "$TMP/server.log" || true)
[ -n "$line" ] || fail "no log line for the request: $(tail -5 "$TMP/server.log")"
for f in 'method=POST' 'path=/search' 'route="/search"' 'status=200' 'ms=[0-9.]+' 'queue_ms=[0-9.]+' \
         'encode_ms=[0-9.]+' 'search_ms=[0-9.]+' 'fetch_ms=[0-9.]+' 'merge_ms=[0-9.]+' 'client=127.0.0.1' \
         'query=message%20passing%20on%20graphs'; do
  [[ $line =~ $f ]] || fail "log line lacks $f: $line"
done
[[ $line =~ ' warn slow_request ' ]] || fail "a 1 ms threshold did not log the search as slow: $line"
# (info, or warn slow_request when a loaded machine took over 1 ms)
grep -Eq "(info request|warn slow_request) id=$gen method=GET path=/health route=\"/health\" status=200" "$TMP/server.log" ||
  fail "no info line for /health with the generated id: $(grep "id=$gen" "$TMP/server.log")"

# The series the requests above must have moved.
http GET /metrics; expect_http 200
m() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/body"; }
for k in 'semdex_stage_duration_seconds_count{stage="queue"}' 'semdex_stage_duration_seconds_count{stage="encode"}' \
         'semdex_stage_duration_seconds_count{stage="search"}' 'semdex_stage_duration_seconds_count{stage="fetch"}' \
         semdex_embedding_batch_size_count semdex_wal_sync_duration_seconds_count semdex_wal_bytes \
         semdex_write_duration_seconds_count; do
  v=$(m "$k"); awk -v v="${v:-0}" 'BEGIN { exit !(v > 0) }' || fail "$k is '${v:-absent}'"
done
[ "$(m semdex_papers_upserted_total)" = 3 ] || fail "semdex_papers_upserted_total $(m semdex_papers_upserted_total)"
[ "$(m semdex_papers_deleted_total)" = 1 ] || fail "semdex_papers_deleted_total $(m semdex_papers_deleted_total)"
[ "$(m semdex_papers)" = 2 ] || fail "semdex_papers $(m semdex_papers)"
[ "$(m 'semdex_requests_total{route="/search",status="200"}')" = 1 ] || fail "requests_total for /search"
# Prometheus's own parser accepts the exposition.
if command -v promtool >/dev/null; then
  promtool check metrics < "$TMP/body" > "$TMP/lint" 2>&1 || fail "promtool check metrics: $(cat "$TMP/lint")"
fi
stop_server
