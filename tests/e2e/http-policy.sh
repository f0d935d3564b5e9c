# Request policy and safe defaults: a port in use is a clear start-up error;
# bodies must say they are JSON (415); OPTIONS answers 204 with Allow and no
# CORS allowance unless --cors-origin; Host is checked on loopback (421);
# failed API-key attempts are throttled (429) before the key is looked at;
# keyless writes are open on loopback (with a warning) and refused (403, with
# a warning) on any other address.
. tests/e2e-lib.sh
start_server "$TMP/db"
expect_grep 'warn .*no API key: write routes .* are open' "$TMP/server.log"

# --- a second server on the same port fails, naming the port
expect_status 1 timeout 60 "$SEMDEX" serve --data "$TMP/db2" --create --port "$PORT"
expect_grep "cannot listen on 127.0.0.1:$PORT: port $PORT is in use by another process" "$TMP/err"
http GET /health; expect_http 200

# --- Content-Type
http POST /search --data-binary '{"query": "x"}' -H 'Content-Type:'
expect_http 415 '.error.code == "unsupported_media_type" and (.error.message | test("no Content-Type"))'
http POST /papers --data-binary '[]' -H 'Content-Type:'; expect_http 415
for ct in 'application/jsonp' 'text/plain' 'application/json; charset=latin1' 'application/json-seq'; do
  http POST /search --data-binary '{"query": "x"}' -H "Content-Type: $ct"
  expect_http 415 '.error.code == "unsupported_media_type"'
done
for ct in 'application/json' 'Application/JSON; charset=UTF-8' 'application/json;charset="utf-8"'; do
  http POST /search --data-binary '{"query": "x"}' -H "Content-Type: $ct"; expect_http 200
done

# --- OPTIONS: 204 with Allow, no CORS allowance by default
curl -s -D "$TMP/h" -o "$TMP/body" -w '%{http_code}' -X OPTIONS "$BASE/search" -H 'Origin: https://evil.example' \
  -H 'Access-Control-Request-Method: POST' > "$TMP/code"
[ "$(cat "$TMP/code")" = 204 ] || fail "OPTIONS /search: $(cat "$TMP/code")"
grep -qi '^Allow: GET, POST, OPTIONS' "$TMP/h" || fail "OPTIONS without Allow: $(cat "$TMP/h")"
grep -qi '^Access-Control-Allow' "$TMP/h" && fail "CORS allowed by default: $(cat "$TMP/h")"
http OPTIONS /papers/2401.00001; expect_http 204
http OPTIONS /nope; expect_http 404
curl -s -D "$TMP/h" -o /dev/null "$BASE/health" -H 'Origin: https://evil.example'
grep -qi '^Access-Control-Allow' "$TMP/h" && fail "CORS header by default on GET"

# --- Host (DNS rebinding): loopback names with any port pass, others 421
for h in localhost "localhost:$PORT" 127.0.0.1 '[::1]:8000' LOCALHOST; do
  http GET /health -H "Host: $h"; expect_http 200
done
for h in evil.example "evil.example:$PORT" 'localhost.evil.example' 'localhost:80x'; do
  http GET /health -H "Host: $h"; expect_http 421 '.error.code == "misdirected_request"'
done
post_json /papers '[]' -H 'Host: attacker.example'; expect_http 421
stop_server

# --- with a key, a CORS origin and an extra host name
start_server "$TMP/db" --api-key sekret --cors-origin https://app.example --allowed-host search.internal,other.internal
http GET /health -H 'Host: search.internal:8000'; expect_http 200
http GET /health -H 'Host: other.internal'; expect_http 200
http GET /health -H 'Host: evil.example'; expect_http 421
curl -s -D "$TMP/h" -o /dev/null -X OPTIONS "$BASE/papers" -H 'Origin: https://app.example' \
  -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type, x-api-key'
grep -qi '^Access-Control-Allow-Origin: https://app.example' "$TMP/h" || fail "no CORS preflight answer: $(cat "$TMP/h")"
grep -qi '^Access-Control-Allow-Methods: .*POST' "$TMP/h" || fail "preflight without methods"
grep -qi '^Access-Control-Allow-Headers: .*X-API-Key' "$TMP/h" || fail "preflight without X-API-Key"
curl -s -D "$TMP/h" -o /dev/null -X POST "$BASE/search" -H 'Origin: https://app.example' \
  -H 'Content-Type: application/json' --data-binary '{"query": "x"}'
grep -qi '^Access-Control-Allow-Origin: https://app.example' "$TMP/h" || fail "no CORS header on POST"
curl -s -D "$TMP/h" -o /dev/null -X OPTIONS "$BASE/papers" -H 'Origin: https://evil.example'
grep -qi '^Access-Control-Allow-Origin' "$TMP/h" && fail "CORS allowed for another origin"

# Key guessing: 10 failures, then 429 even for the right key (the throttle
# comes before the key check); a second later one more attempt is allowed.
codes=""
for i in $(seq 20); do
  http DELETE /papers/2401.00001 -H "X-API-Key: guess$i"; codes="$codes $STATUS"
done
n401=$(tr ' ' '\n' <<< "$codes" | grep -c '^401$' || true)
n429=$(tr ' ' '\n' <<< "$codes" | grep -c '^429$' || true)
[ "$n401" -ge 10 ] && [ "$n401" -le 12 ] && [ $((n401 + n429)) = 20 ] || fail "key guessing got:$codes"
http DELETE /papers/2401.00001 -H 'X-API-Key: sekret'; expect_http 429 '.error.message | test("API-key")'
sleep 1.2
http DELETE /papers/2401.00001 -H 'X-API-Key: sekret'; expect_http 404
# Reads need no key and are not throttled by failed writes.
post_json /search '{"query": "x"}'; expect_http 200
stop_server

# --- not loopback, no key: writes answer 403 and say how to enable them
start_server "$TMP/db" --host 0.0.0.0
expect_grep 'warn .*no API key and listening on 0.0.0.0.*403.*SEMDEX_API_KEY' "$TMP/server.log"
post_json /papers '[]'; expect_http 403 '.error.code == "forbidden" and (.error.message | test("SEMDEX_API_KEY"))'
http DELETE /papers/2401.00001; expect_http 403
post_json /search '{"query": "x"}'; expect_http 200
stop_server
