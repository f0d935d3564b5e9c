# API conformance: schemathesis (PyPI, in the ignored .venv) generates
# requests for every route of the /openapi.json a running server publishes,
# valid and invalid ones, and checks that no answer is a 5xx, that every
# answer matches its documented status and schema, that schema-valid bodies
# are accepted and invalid ones refused. Then every error status the
# document lists for a route is produced once, so none is documented but
# unreachable. Bounded: SEMDEX_ST_EXAMPLES (default 30) cases per route and
# phase, one worker; about a minute here. SEMDEX_ST_SEED picks the seed.
. tests/e2e-lib.sh
MODEL=models/all-MiniLM-L6-v2
ST=.venv/bin/schemathesis
if [ ! -x "$ST" ]; then
  { [ -x .venv/bin/pip ] || python3 -m venv .venv; } && .venv/bin/pip install -q -r scripts/requirements-test.txt ||
    fail "cannot install schemathesis into .venv (scripts/requirements-test.txt)"
fi

sample_records 40 "$TMP/sample.jsonl"
expect_status 0 "$SEMDEX" ingest --model "$MODEL" --data "$TMP/db" "$TMP/sample.jsonl"
start_server "$TMP/db" --model "$MODEL" --api-key sekret --rate-limit 100000 --burst 100000

# --- schemathesis over every route
st_rc=0
timeout 600 "$ST" run "$BASE/openapi.json" --checks all -n "${SEMDEX_ST_EXAMPLES:-30}" \
  --seed "${SEMDEX_ST_SEED:-13}" -w 1 --no-shrink --generation-database none \
  --generation-allow-x00 false -H 'X-API-Key: sekret' --request-timeout 30 --exclude-method OPTIONS \
  > "$TMP/st.log" 2>&1 || st_rc=$?
if [ $st_rc != 0 ]; then
  sed -n '/FAILURES/,$p' "$TMP/st.log" | cut -c1-600 | head -80 >&2
  fail "schemathesis exited $st_rc"
fi
# OPTIONS (CORS preflight) is left out of this pass: it answers 204 for any
# path under a route, by design (a preflight does not depend on the
# resource), which schemathesis's data checks read as "invalid id accepted"
# and "deleted paper still there". It gets its own pass below.
selected=$(sed -n 's/^ *Selected: \([0-9]*\)\/.*/\1/p' "$TMP/st.log")
grep -q "Tested: $selected\$" "$TMP/st.log" && [ "${selected:-0}" -ge 10 ] ||
  fail "schemathesis did not test every route: $(tail -20 "$TMP/st.log")"
echo "schemathesis: $(grep -A1 'Test cases:' "$TMP/st.log" | tail -1 | sed 's/^ *//')"
# OPTIONS separately, with the checks that hold for a preflight: no 5xx, a
# documented status, content type, headers and body for every route.
st_rc=0
timeout 300 "$ST" run "$BASE/openapi.json" --include-method OPTIONS \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  -n "${SEMDEX_ST_EXAMPLES:-30}" --seed "${SEMDEX_ST_SEED:-13}" -w 1 --no-shrink --generation-database none \
  --generation-allow-x00 false -H 'X-API-Key: sekret' --request-timeout 30 > "$TMP/st-options.log" 2>&1 || st_rc=$?
if [ $st_rc != 0 ]; then
  { grep -q FAILURES "$TMP/st-options.log" && sed -n '/FAILURES/,$p' "$TMP/st-options.log" ||
      tail -30 "$TMP/st-options.log"; } | cut -c1-600 | head -80 >&2
  fail "schemathesis (OPTIONS) exited $st_rc"
fi
selected=$(sed -n 's/^ *Selected: \([0-9]*\)\/.*/\1/p' "$TMP/st-options.log")
grep -q "Tested: $selected\$" "$TMP/st-options.log" && [ "${selected:-0}" -ge 11 ] ||
  fail "schemathesis did not test OPTIONS of every route: $(tail -20 "$TMP/st-options.log")"
echo "schemathesis, OPTIONS: $(grep -A1 'Test cases:' "$TMP/st-options.log" | tail -1 | sed 's/^ *//')"

# --- every documented error status is reachable
# reach METHOD PATH STATUS: marks a documented (path, method, status) as produced.
declare -A reached=()
reach() {
  [ "$STATUS" = "$3" ] || fail "$1 $2: expected $3, got $STATUS: $(head -c 500 "$TMP/body")"
  jq -e '.error.code | type == "string"' "$TMP/body" >/dev/null || jq -e '.status' "$TMP/body" >/dev/null ||
    fail "$1 $2 $3: not an error body: $(head -c 500 "$TMP/body")"
  reached["$2 $1 $3"]=1
}
key=(-H 'X-API-Key: sekret')
id=$(head -n 1 "$TMP/sample.jsonl" | jq -r .id)
head -c $((33 * 1024 * 1024)) /dev/zero > "$TMP/huge"

post_json /search '{"query":'; reach post /search 400
http GET '/search?q=x&mode=fuzzy'; reach get /search 400
http POST /search -H 'Content-Type: text/plain' --data-binary '{"query":"x"}'; reach post /search 415
http POST /search -H 'Content-Type: application/json' --data-binary @"$TMP/huge"; reach post /search 413
post_json /papers '{"papers":[]}' "${key[@]}"; reach post /papers 400
post_json /papers '{"papers":[{"id":"a.1","title":"T"}]}'; reach post /papers 401
http POST /papers -H 'Content-Type: text/plain' "${key[@]}" --data-binary '{}'; reach post /papers 415
http POST /papers -H 'Content-Type: application/json' "${key[@]}" --data-binary @"$TMP/huge"; reach post /papers 413
http GET /papers/no.such; reach get '/papers/{paper_id}' 404
http DELETE /papers/no.such "${key[@]}"; reach delete '/papers/{paper_id}' 404
http DELETE "/papers/$id"; reach delete '/papers/{paper_id}' 401
http GET "/papers/$id/similar?top_k=0"; reach get '/papers/{paper_id}/similar' 400
http GET /papers/no.such/similar; reach get '/papers/{paper_id}/similar' 404
http GET /assets/no.such; reach get '/assets/{name}' 404
# 421: a Host that is not this server's (DNS rebinding), on every operation.
while read -r path method; do
  p=${path//\{paper_id\}/no.such}
  http "${method^^}" "$p" -H 'Host: evil.example' -H 'Content-Type: application/json' --data-binary '{}'
  reach "$method" "$path" 421
done < <(jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[] |
  select(.value.responses["421"]) | "\($p) \(.key)"' web/openapi.json)
stop_server

# 403: no key and not bound to loopback, writes are refused.
start_server "$TMP/db" --model "$MODEL" --host 0.0.0.0
post_json /papers '{"papers":[{"id":"a.1","title":"T"}]}'; reach post /papers 403
http DELETE /papers/no.such; reach delete '/papers/{paper_id}' 403
stop_server

# 429: a bucket of one request.
start_server "$TMP/db" --model "$MODEL" --api-key sekret --rate-limit 1 --burst 1
ops=("post /search" "get /search" "post /papers" "get /papers/{paper_id}" "delete /papers/{paper_id}"
     "get /papers/{paper_id}/similar" "get /collections/info")
for op in "${ops[@]}"; do
  m=${op%% *}; p=${op#* }; p=${p//\{paper_id\}/no.such}
  for try in 1 2 3 4 5; do # the bucket refills one request a second
    http "${m^^}" "$p" -H 'Content-Type: application/json' "${key[@]}" --data-binary '{}'
    [ "$STATUS" = 429 ] && break
  done
  reach "$m" "${op#* }" 429
done
stop_server

# 500: writes that the disk refuses (a file size limit of 2 KiB on the
# server -- bash counts ulimit -f in KiB -- so its write-ahead log cannot
# grow past that); the answer names no file. One upsert (its vector is
# 1.5 KiB) fits, a second does not; deletes are small, so they fail once the
# log is full.
start_500() {
  PORT=$((20000 + RANDOM % 10000)); BASE="http://127.0.0.1:$PORT"
  ( ulimit -f 2; trap '' XFSZ; exec "$SEMDEX" serve --model "$MODEL" --data "$TMP/db" --port "$PORT" \
      --api-key sekret ) >>"$TMP/server.log" 2>&1 &
  SERVER_PID=$!; cleanup_hooks+=("kill -9 $SERVER_PID 2>/dev/null")
  wait_healthy 120 || fail "server did not start: $(tail -5 "$TMP/server.log")"
}
start_500
post_json /papers '{"papers":[{"id":"fits.1","title":"One fits"}]}' "${key[@]}"; expect_http 200
post_json /papers '{"papers":[{"id":"big.1","title":"Too big for the log"}]}' "${key[@]}"
reach post /papers 500
grep -q "$TMP" "$TMP/body" && fail "a 500 names a server path: $(cat "$TMP/body")"
post_json /search '{"query":"physics","top_k":30}'; expect_http 200 '(.results | length) == 30'
for live in $(jq -r '.results[].paper_id' "$TMP/body"); do
  http DELETE "/papers/$live" "${key[@]}"
  [ "$STATUS" = 200 ] || break
done
reach delete '/papers/{paper_id}' 500
grep -q "$TMP" "$TMP/body" && fail "a 500 names a server path: $(cat "$TMP/body")"
kill -9 "$SERVER_PID"

# 503 while shutting down: one kept-alive connection per operation (each
# has answered a request), then SIGTERM; the server answers what arrives on
# an open connection during its drain with 503 and closes it. (The server
# loads before it listens, so there is no "loading" 503.)
start_server "$TMP/db" --model "$MODEL" --api-key sekret
python3 - "$PORT" "$SERVER_PID" "$TMP/st503" <<'PY'
import http.client, json, os, signal, sys, time
port, pid, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ops = [("GET", "/health"), ("POST", "/search"), ("GET", "/search?q=x"), ("POST", "/papers"), ("GET", "/papers/no.such"),
       ("DELETE", "/papers/no.such"), ("GET", "/papers/no.such/similar"), ("GET", "/collections/info")]
conns = []
for _ in ops:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/health"); c.getresponse().read()
    conns.append(c)
os.kill(pid, signal.SIGTERM)
time.sleep(0.2)  # the listener is closed; the open connections wait up to 1 s
with open(out, "w") as f:
    for (m, p), c in zip(ops, conns):
        try:
            c.request(m, p, body=b"{}", headers={"Content-Type": "application/json", "X-API-Key": "sekret"})
            r = c.getresponse()
            f.write(json.dumps({"method": m.lower(), "path": p, "status": r.status,
                                "body": r.read().decode()}) + "\n")
        except OSError as e:
            f.write(json.dumps({"method": m.lower(), "path": p, "status": 0, "body": str(e)}) + "\n")
PY
wait "$SERVER_PID" 2>/dev/null || true
while read -r line; do
  m=$(jq -r .method <<<"$line"); p=$(jq -r .path <<<"$line"); STATUS=$(jq -r .status <<<"$line")
  jq -r .body <<<"$line" > "$TMP/body"
  p=${p//no.such/\{paper_id\}}; p=${p%%\?*}
  reach "$m" "$p" 503
  jq -e '.error.code == "unavailable"' "$TMP/body" >/dev/null || fail "$m $p 503: $(cat "$TMP/body")"
done < "$TMP/st503"

# Every error status the document lists was produced, but one: a search
# answers 500 only on a fault of the backend (out of memory; in gateway mode
# a cluster read that fails other than by a timeout), which no test here
# provokes without also breaking the server.
reached["/search post 500"]=1
reached["/search get 500"]=1
missing=0
while read -r path method status; do
  [ -n "${reached["$path $method $status"]:-}" ] || { echo "not reached: $method $path $status" >&2; missing=1; }
done < <(jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[] | .key as $m |
  .value.responses | keys[] | select(tonumber >= 400) | "\($p) \($m) \(.)"' web/openapi.json)
[ $missing = 0 ] || fail "documented errors not reached"
