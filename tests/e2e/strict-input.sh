# Strict input end to end (issue 13): trailing data, null, blank and unknown
# fields, category hints, U+0000 in the CLI, ingest and the API, error bodies
# that are valid UTF-8, no internal paths in responses.
. tests/e2e-lib.sh
MODEL=models/all-MiniLM-L6-v2

# tokenize --jsonl and embed refuse a string holding U+0000 (never cut it).
printf '"fine"\n"control\\u0000chars\\u0007here"\n' > "$TMP/texts.jsonl"
expect_status 1 "$SEMDEX" tokenize --model "$MODEL" --jsonl "$TMP/texts.jsonl"
expect_grep 'texts.jsonl:2: the string holds the character U\+0000' "$TMP/err"
[ "$(wc -l < "$TMP/out")" = 1 ] || fail "tokenize printed $(wc -l < "$TMP/out") lines, expected 1"

# ingest skips (and counts) a record holding U+0000, naming its line and field.
sample_records 20 "$TMP/sample.jsonl"
{ head -n 10 "$TMP/sample.jsonl"
  echo '{"id": "nul.1", "title": "Cut", "abstract": "before\u0000after"}'
  echo '{"id": "nul.2", "title": "Trailing"} garbage'
  tail -n 10 "$TMP/sample.jsonl"; } > "$TMP/input.jsonl"
expect_status 0 "$SEMDEX" ingest --model "$MODEL" --data "$TMP/db" "$TMP/input.jsonl"
expect_grep '20 papers upserted' "$TMP/err"
expect_grep '2 malformed lines skipped' "$TMP/err"
expect_grep "input.jsonl:11: 'abstract' holds the character U\+0000" "$TMP/err"
expect_grep 'input.jsonl:12: malformed JSON: unexpected data after the JSON value' "$TMP/err"

start_server "$TMP/db" --model "$MODEL" --api-key sekret
key=(-H 'X-API-Key: sekret')
post_json /search '{"query":"x"} xyz'; expect_http 400 '.error.code == "invalid_json"'
for f in top_k offset ef categories; do
  post_json /search "{\"query\":\"x\",\"$f\":null}"
  expect_http 400 ".error.code == \"invalid_request\" and (.error.message | test(\"'$f'\"))"
done
post_json /search '{"query":"   "}'; expect_http 400 '.error.message | test("blank")'
post_json /search '{"query":"x","topk":3}'; expect_http 400 '.error.message | test("topk.*top_k")'
post_json /search '{"query":"a\u0000b"}'; expect_http 400 '.error.message | test("U\\+0000")'
post_json /search '{"query":"x","categories":["CS.LG"]}'; expect_http 400 '.error.message | test("cs.LG")'
post_json /search '{"query":"x","categories":"cs"}'; expect_http 400 '.error.message | test("archive.*cs.AI")'
# "hep-th gr-qc" is two codes on /search as on POST /papers.
post_json /search '{"query":"string theory","categories":"hep-th gr-qc","top_k":3}'; expect_http 200
post_json /search '{"query":"x","categories":"hep-th CS.LG"}'; expect_http 400 '.error.message | test("cs.LG")'
post_json /papers '{"papers":[{"id":"p.1","title":"T","categories":"hep-th gr-qc"}]}' "${key[@]}"
expect_http 200
http GET /papers/p.1; expect_http 200 '.categories == ["hep-th", "gr-qc"]'
post_json /papers '{"papers":[{"id":"p.2","title":"T","update_date":"0000-00-00"}]}' "${key[@]}"
expect_http 400 '.error.message | test("update_date")'
post_json /papers '{"papers":[{"id":"p.2","title":"T","abstract":"a\u0000b"}]}' "${key[@]}"
expect_http 400 '.error.message | test("papers\\[0\\]\\.abstract")'
post_json /papers '{"papers":[{"id":"p.2","title":"T","submitter":"x"}]}' "${key[@]}"
expect_http 400 '.error.message | test("unknown field .submitter")'
# Error bodies are valid UTF-8 JSON whatever the path holds.
for p in /papers/%FF /papers/%C3%28/similar /nope/%FE%FF; do
  curl -s -o "$TMP/body" "$BASE$p"
  iconv -f UTF-8 -t UTF-8 "$TMP/body" >/dev/null 2>&1 || fail "$p: the error body is not UTF-8: $(od -c "$TMP/body" | head -3)"
  jq -e '.error.code == "not_found"' "$TMP/body" >/dev/null || fail "$p: $(cat "$TMP/body")"
done
http DELETE /papers/%FF "${key[@]}"; expect_http 404
# /similar takes one query parameter, spelt right.
http GET '/papers/p.1/similar?topk=3'; expect_http 400 '.error.message | test("topk.*top_k")'
http GET '/papers/p.1/similar?top_k=2'; expect_http 200 '.top_k == 2'

# No internal path in /collections/info.
http GET /collections/info; expect_http 200 '.model.name == "all-MiniLM-L6-v2" and (.model | has("path") | not)'
grep -q "$TMP" "$TMP/body" && fail "/collections/info shows a server path"
stop_server

# The CLI's --categories follows the same rule.
expect_status 2 "$SEMDEX" search --model "$MODEL" --data "$TMP/db" --categories cs,hep-th "strings"
expect_grep "archive, not a category" "$TMP/err"
expect_status 0 "$SEMDEX" search --model "$MODEL" --data "$TMP/db" --categories hep-th,gr-qc "strings"
