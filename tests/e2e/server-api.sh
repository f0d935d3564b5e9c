# Every route of the REST API and every error path, against a real server
# over a small real sample (ingested with the real encoder).
. tests/e2e-lib.sh
sample_records 200 "$TMP/sample.jsonl"
# One malformed line and one invalid record among real ones: skipped, reported.
{ head -n 100 "$TMP/sample.jsonl"; echo '{"id": "broken",'; echo '{"id": "x1", "title": ""}';
  tail -n 100 "$TMP/sample.jsonl"; } > "$TMP/input.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" "$TMP/input.jsonl"
expect_grep '200 papers upserted' "$TMP/err"
expect_grep '2 malformed lines skipped' "$TMP/err"
expect_grep 'input.jsonl:101: malformed JSON' "$TMP/err"
expect_grep "input.jsonl:102: 'title' is missing or empty" "$TMP/err"

start_server "$TMP/db" --api-key sekret --rate-limit 1000
first_id=$(head -n 1 "$TMP/sample.jsonl" | jq -r .id)
first_title=$(head -n 1 "$TMP/sample.jsonl" | jq -r .title)

# --- health, info, metrics, static pages
http GET /health; expect_http 200 '.status == "ok" and .papers == 200'
http GET /collections/info
expect_http 200 '.count == 200 and .dimension == 384 and .metric == "cosine" and .index.M == 16 and .index.ef_construction == 200 and .memory.resident_bytes > 0'
http GET /metrics; expect_http 200
grep -q '^semdex_papers 200$' "$TMP/body" || fail "metrics lack semdex_papers"
http GET /; expect_http 200
grep -q '<title>semdex' "$TMP/body" || fail "no search page"
http GET /docs; expect_http 200
http GET /openapi.json; expect_http 200 '.openapi == "3.0.3" and (.paths | has("/search"))'

# --- search: the paper's own title finds it first
q=$(jq -n --arg q "$first_title" '{query: $q, top_k: 5}')
post_json /search "$q"
expect_http 200 ".results[0].paper_id == \"$first_id\" and (.results | length) == 5 and .top_k == 5 and .offset == 0 and .took_ms >= 0"
jq -e '.results[0] | has("title") and has("abstract") and has("authors") and (.categories | type == "array") and has("update_date") and .score > 0.5' "$TMP/body" >/dev/null || fail "result fields"
# Same query again: the vector comes from the cache.
post_json /search "$q"; expect_http 200 '.cached == true'
# Paging: offset 2 starts where the first page's third result was.
post_json /search "$(jq -n --arg q "$first_title" '{query: $q, top_k: 5}')"
third=$(jq -r '.results[2].paper_id' "$TMP/body")
post_json /search "$(jq -n --arg q "$first_title" '{query: $q, top_k: 2, offset: 2}')"
expect_http 200 ".results[0].paper_id == \"$third\" and .offset == 2"
# Category filter: every result has the category.
post_json /search '{"query": "large language models", "top_k": 10, "categories": ["cs.CL"]}'
expect_http 200 '(.results | length) == 10 and all(.results[]; .categories | index("cs.CL") != null)'
# A selective filter (10 of the 200 papers are math.AP) still fills the page.
post_json /search '{"query": "large language models", "top_k": 10, "categories": ["math.AP", "no.such"]}'
expect_http 200 '(.results | length) == 10 and all(.results[]; .categories | index("math.AP") != null)'
post_json /search '{"query": "speech", "categories": ["no.such-cat"]}'; expect_http 200 '(.results | length) == 0'

# --- search errors
post_json /search '{"query": '; expect_http 400 '.error.code == "invalid_json"'
post_json /search '[1,2]'; expect_http 400 '.error.code == "invalid_request"'
post_json /search '{}'; expect_http 400 '.error.message | test("query")'
post_json /search '{"query": ""}'; expect_http 400
post_json /search "{\"query\": \"$(head -c 2001 /dev/zero | tr '\0' a)\"}"; expect_http 400 '.error.message | test("2000")'
post_json /search "{\"query\": \"$(head -c 2000 /dev/zero | tr '\0' a)\"}"; expect_http 200
post_json /search '{"query": "x", "top_k": 0}'; expect_http 400 '.error.message | test("top_k")'
post_json /search '{"query": "x", "top_k": 101}'; expect_http 400
post_json /search '{"query": "x", "top_k": 2.5}'; expect_http 400
post_json /search '{"query": "x", "top_k": "5"}'; expect_http 400
post_json /search '{"query": "x", "offset": 1001}'; expect_http 400 '.error.message | test("offset")'
post_json /search '{"query": "x", "categories": "cs.LG"}'; expect_http 200
post_json /search '{"query": "x", "categories": [1]}'; expect_http 400
printf '{"query": "caf\xe9"}' > "$TMP/bad-utf8.json"
http POST /search -H 'Content-Type: application/json' --data-binary @"$TMP/bad-utf8.json"
expect_http 400 '.error.message | test("UTF-8")'
http POST /search -H 'Content-Type: text/plain' --data-binary '{"query": "x"}'
expect_http 415 '.error.code == "unsupported_media_type"'
head -c $((33 * 1024 * 1024)) /dev/zero > "$TMP/huge"
http POST /search -H 'Content-Type: application/json' --data-binary @"$TMP/huge"
expect_http 413 '.error.code == "payload_too_large"'
http GET /search; expect_http 400 '.error.message | test("q. is required")'
http PUT /search; expect_http 405 '.error.code == "method_not_allowed"'
curl -s -D "$TMP/headers" -o /dev/null -X PUT "$BASE/search"
grep -qi '^Allow: GET, POST' "$TMP/headers" || fail "405 without Allow header"
http GET /nope; expect_http 404 '.error.code == "not_found"'

# --- papers
http GET "/papers/$first_id"; expect_http 200 ".paper_id == \"$first_id\""
http GET /papers/0000.00000; expect_http 404 '.error.code == "not_found"'
http GET "/papers/$first_id/similar?top_k=3"
expect_http 200 "(.results | length) == 3 and all(.results[]; .paper_id != \"$first_id\")"
http GET "/papers/$first_id/similar?top_k=0"; expect_http 400
http GET /papers/0000.00000/similar; expect_http 404

# Writes need the key.
new='{"papers": [{"id": "hep-th/9901001", "title": "Old-style id paper on string dualities", "abstract": "We study dualities.", "categories": "hep-th", "authors": "A. Physicist", "update_date": "1999-01-05"}]}'
post_json /papers "$new"; expect_http 401 '.error.code == "unauthorized"'
post_json /papers "$new" -H 'X-API-Key: wrong'; expect_http 401
http POST /papers -H 'Content-Type: application/json' -H 'X-API-Key: sekret' --data-binary "$new"
expect_http 200 '.upserted == 1 and .ids[0] == "hep-th/9901001"'
# Both the raw and the %2F-encoded old-style id work.
http GET /papers/hep-th/9901001; expect_http 200 '.title | test("string dualities")'
http GET /papers/hep-th%2F9901001; expect_http 200 '.categories == ["hep-th"] and .update_date == "1999-01-05"'
http GET /papers/hep-th%2F9901001/similar; expect_http 200
# A batch with one invalid paper stores nothing.
bad='{"papers": [{"id": "ok.1", "title": "Fine"}, {"id": "bad id", "title": "Bad"}]}'
http POST /papers -H 'Content-Type: application/json' -H 'Authorization: Bearer sekret' --data-binary "$bad"
expect_http 400 '.error.message | test("papers\\[1\\]")'
http GET /papers/ok.1; expect_http 404
# A given embedding is used as is (normalised); a wrong dimension is refused.
emb=$(jq -nc '[range(384)] | map(if . == 7 then 2 else 0 end)')
http POST /papers -H 'Content-Type: application/json' -H 'X-API-Key: sekret' \
  --data-binary "{\"papers\": [{\"id\": \"emb.1\", \"title\": \"Given vector\", \"embedding\": $emb}]}"
expect_http 200
http POST /papers -H 'Content-Type: application/json' -H 'X-API-Key: sekret' \
  --data-binary '{"papers": [{"id": "emb.2", "title": "Short vector", "embedding": [1, 2]}]}'
expect_http 400 '.error.message | test("384")'
post_json /papers '{"papers": []}' -H 'X-API-Key: sekret'; expect_http 400
# Delete.
http DELETE /papers/hep-th/9901001; expect_http 401
http DELETE /papers/hep-th/9901001 -H 'X-API-Key: sekret'; expect_http 200 '.deleted == "hep-th/9901001"'
http GET /papers/hep-th/9901001; expect_http 404
http DELETE /papers/hep-th/9901001 -H 'X-API-Key: sekret'; expect_http 404
http PUT /papers/x; expect_http 405
http GET /collections/info; expect_http 200 '.count == 201'

# --- one structured log line per request
grep -q 'request id=[^ ]* method=POST path=/search route="/search" status=200 ms=' "$TMP/server.log" ||
  fail "no request log line: $(tail -5 "$TMP/server.log")"

# --- rate limit: a small bucket refuses a burst with 429 + Retry-After
stop_server
start_server "$TMP/db" --rate-limit 1 --burst 3
for i in 1 2 3; do http GET /collections/info; expect_http 200; done
curl -s -D "$TMP/headers" -o "$TMP/body" "$BASE/collections/info" >/dev/null
grep -q '^HTTP/1.1 429' "$TMP/headers" || fail "no 429 after the burst"
grep -qi '^Retry-After: [0-9]' "$TMP/headers" || fail "429 without Retry-After"
jq -e '.error.code == "rate_limited"' "$TMP/body" >/dev/null || fail "429 body"
http GET /health; expect_http 200   # health is never rate limited
stop_server
# Behind a trusted proxy (--trusted-proxy) the client is the last entry of
# the last X-Forwarded-For header, the one the proxy appended: each forwarded
# client has its own bucket, and entries a client wrote itself do not count.
start_server "$TMP/db" --rate-limit 1 --burst 2 --trusted-proxy 127.0.0.1
xff() { curl -s -o /dev/null -w '%{http_code}' "$@" "$BASE/collections/info"; }
codes="$(xff -H 'X-Forwarded-For: 10.0.0.1') $(xff -H 'X-Forwarded-For: 10.0.0.1') $(xff -H 'X-Forwarded-For: 10.0.0.1')"
[ "$codes" = "200 200 429" ] || fail "forwarded client 10.0.0.1: $codes"
[ "$(xff -H 'X-Forwarded-For: 10.0.0.2')" = 200 ] || fail "a second forwarded client shared the first one's bucket"
[ "$(xff -H 'X-Forwarded-For: 10.0.0.7, 10.0.0.1')" = 429 ] || fail "a forged first entry escaped the limit"
[ "$(xff -H 'X-Forwarded-For: 10.0.0.8' -H 'X-Forwarded-For: 10.0.0.1')" = 429 ] ||
  fail "a forged earlier header escaped the limit"
[ "$(xff -H 'X-Forwarded-For: not-an-address')" = 200 ] || fail "a malformed entry (the proxy's own bucket)"
grep -q 'client=10.0.0.2 ' "$TMP/server.log" || fail "the request log does not name the forwarded client"
stop_server
# Without --trusted-proxy the header is ignored: one bucket for the peer.
start_server "$TMP/db" --rate-limit 1 --burst 2
codes="$(xff -H 'X-Forwarded-For: 10.0.0.1') $(xff -H 'X-Forwarded-For: 10.0.0.2') $(xff -H 'X-Forwarded-For: 10.0.0.3')"
[ "$codes" = "200 200 429" ] || fail "X-Forwarded-For from an untrusted peer was believed: $codes"
stop_server
expect_status 2 "$SEMDEX" serve --data "$TMP/db" --trusted-proxy 127.0.0.1,proxy.example
expect_grep "trusted-proxy: 'proxy.example' is not a numeric" "$TMP/err"
# Data written through the API survived the restart.
start_server "$TMP/db"
http GET /papers/emb.1; expect_http 200
http GET /collections/info; expect_http 200 '.count == 201'
stop_server
