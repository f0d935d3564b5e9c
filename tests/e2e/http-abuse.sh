# Abusive clients: 10,000 idle or trickling connections do not starve normal
# searches; connections past the per-address and total caps are refused, not
# queued; slowloris headers and trickled bodies are closed at their
# deadlines; header floods get 431, oversized chunked bodies 413; pipelined
# requests are all answered; SIGTERM does not wait for trickling clients.
# Clients are tests/e2e-http.py (connections from 127.0.0.2 and up, so a
# per-address cap can be tested apart from the searches from 127.0.0.1).
. tests/e2e-lib.sh
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 12000 ] || fail "needs 12000 open files (ulimit -Hn is $(ulimit -Hn))"
H=(python3 tests/e2e-http.py)

# --- 1. 10,000 idle connections from 50 addresses (200 each: under the
# default cap of 256 per address): 40 searches all succeed, on a bounded
# number of threads.
start_server "$TMP/db"
"${H[@]}" hold --port "$PORT" --count 10000 --sources 50 --mode idle --searches 40 > "$TMP/idle.json" &
hp=$!
sleep 2
threads=$(ps -o nlwp= -p "$SERVER_PID" | tr -d ' ')
wait $hp
jq -e '.opened == 10000 and .refused == 0 and .searches_ok == 40' "$TMP/idle.json" >/dev/null ||
  fail "idle connections starved searches: $(jq -c 'del(.closed_after)' "$TMP/idle.json")"
[ "$threads" -lt 200 ] || fail "the server ran $threads threads under 10,000 connections"

# --- 2. 10,000 bodies trickled at a byte a second: searches succeed; then
# SIGTERM while they trickle: the server exits 0, promptly (the default body
# deadline is 60 s; the old server waited 30 s for them).
"${H[@]}" hold --port "$PORT" --count 10000 --sources 50 --mode body --searches 40 \
  --ready "$TMP/ready" --hold 60 > "$TMP/body.json" &
hp=$!
for _ in $(seq 600); do [ -s "$TMP/ready" ] && break; sleep 0.1; done
[ -s "$TMP/ready" ] || fail "the trickling clients did not get going"
t0=$SECONDS
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
[ $rc = 0 ] || fail "server exited $rc after SIGTERM: $(tail -5 "$TMP/server.log")"
[ $((SECONDS - t0)) -le 10 ] || fail "shutdown took $((SECONDS - t0)) s with trickling clients"
wait $hp
jq -e '.refused == 0 and .searches_ok == 40 and .still_open == 0' "$TMP/body.json" >/dev/null ||
  fail "trickling bodies: $(jq -c 'del(.closed_after)' "$TMP/body.json")"

# --- 3. Caps and deadlines, made small.
start_server "$TMP/db" --max-conns-per-ip 20 --max-connections 64 --header-timeout 2 --body-timeout 2
# Per address: 30 from one address, 10 refused at once; searches from
# another address still succeed; the 20 held are closed at the header
# deadline (2 s), not before.
"${H[@]}" hold --port "$PORT" --count 30 --sources 1 --mode idle --searches 5 --watch 6 > "$TMP/cap.json"
jq -e '.refused == 10 and .searches_ok == 5 and .closed == 30 and ([.closed_after[10:][] | select(. < 1.5)] | length) == 0' \
  "$TMP/cap.json" >/dev/null || fail "per-address cap: $(cat "$TMP/cap.json")"
# Slowloris (a header byte a second) and trickled bodies: closed at 2 s.
for mode in headers body; do
  "${H[@]}" hold --port "$PORT" --count 15 --sources 1 --mode $mode --watch 6 > "$TMP/$mode.json"
  jq -e '.refused == 0 and .closed == 15 and .closed_after[0] >= 1.5 and .closed_after[-1] < 5' \
    "$TMP/$mode.json" >/dev/null || fail "$mode deadline: $(cat "$TMP/$mode.json")"
done
# Total: 100 connections from 10 addresses (10 each, under the per-address
# cap); no more than 64 are held (65: the two I/O threads may each accept
# one at the limit), the rest refused at once.
"${H[@]}" hold --port "$PORT" --count 100 --sources 10 --mode idle > "$TMP/total.json"
jq -e '.refused >= 35 and .refused < 100 and .opened - .refused <= 65' "$TMP/total.json" >/dev/null ||
  fail "total cap: $(cat "$TMP/total.json")"
sleep 3 # the held ones reach their header deadline
http GET /health; expect_http 200
stop_server

# --- 4. Floods, oversized chunked bodies, pipelining (default limits).
start_server "$TMP/db"
# One huge header, and many small ones: 431, and the server carries on.
http GET /health -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' a)"
[ "$STATUS" = 431 ] || fail "a 100 KB header got $STATUS"
{ printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n'
  for i in $(seq 3000); do printf 'X-H%d: v\r\n' "$i"; done
  printf '\r\n'; } > "$TMP/many-headers"
"${H[@]}" raw --port "$PORT" --file "$TMP/many-headers" > "$TMP/many.out"
[ "$(cat "$TMP/many.out")" = 431 ] || fail "3000 headers got: $(cat "$TMP/many.out")"
http GET /health; expect_http 200
# Chunked bodies over the 32 MiB limit: a 413 JSON answer, not a reset.
for mb in 40 100; do
  rc=0
  code=$(head -c $((mb * 1000 * 1000)) /dev/zero | curl -s -o "$TMP/body" -w '%{http_code}' -X POST "$BASE/papers" \
         -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @-) || rc=$?
  [ "$code" = 413 ] && [ $rc = 0 ] || fail "$mb MB chunked: HTTP $code, curl exit $rc"
  jq -e '.error.code == "payload_too_large"' "$TMP/body" >/dev/null || fail "$mb MB chunked: $(head -c 300 "$TMP/body")"
done
# 50 pipelined requests in one write: 50 answers, in order.
{ for i in $(seq 49); do printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'; done
  printf 'POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{"query": "pipe"}'
} > "$TMP/pipelined"
"${H[@]}" raw --port "$PORT" --file "$TMP/pipelined" > "$TMP/pipe.out"
[ "$(grep -c '^200$' "$TMP/pipe.out")" = 50 ] || fail "pipelining: $(sort "$TMP/pipe.out" | uniq -c)"
stop_server
