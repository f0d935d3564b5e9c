# `semdex search`: the text listing, --json (the same results object POST
# /search answers, built by the same code), --offset paging, and its limits.
. tests/e2e-lib.sh
sample_records 60 "$TMP/sample.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" --quiet "$TMP/sample.jsonl"
q="graph neural networks for molecules"
expect_status 0 "$SEMDEX" search --data "$TMP/db" -k 5 --json "$q"
cp "$TMP/out" "$TMP/cli5.json"
jq -e '(.results | length) == 5 and .offset == 0 and .top_k == 5' "$TMP/cli5.json" >/dev/null ||
  fail "--json: $(head -c 400 "$TMP/cli5.json")"
expect_status 0 "$SEMDEX" search --data "$TMP/db" -k 2 --offset 2 --json "$q"
[ "$(jq -c '.results' "$TMP/out")" = "$(jq -c '.results[2:4]' "$TMP/cli5.json")" ] ||
  fail "--offset 2 -k 2 is not results 3-4: $(jq -c '[.results[].paper_id]' "$TMP/out")"
# The text listing ranks the same papers.
expect_status 0 "$SEMDEX" search --data "$TMP/db" -k 5 "$q"
[ "$(awk '{print $3}' "$TMP/out" | paste -sd' ')" = "$(jq -r '[.results[].paper_id] | join(" ")' "$TMP/cli5.json")" ] ||
  fail "text and --json differ: $(cat "$TMP/out")"
expect_status 2 "$SEMDEX" search --data "$TMP/db" --offset 1001 "$q"
expect_grep "[-]-offset must be an integer in \[0, 1000\]" "$TMP/err"
expect_status 2 "$SEMDEX" search --data "$TMP/db" --mode fuzzy "$q"
expect_grep "[-]-mode must be one of 'semantic', 'keyword', 'hybrid', 'authors'" "$TMP/err"
expect_status 2 "$SEMDEX" search --data "$TMP/db" --date-from 2024-13-01 "$q"
expect_grep "[-]-date-from must be a date" "$TMP/err"
expect_status 2 "$SEMDEX" search --data "$TMP/db" --categories cs "$q"
expect_grep "or 'cs.\*' for all of them" "$TMP/err"
# The other modes and filters: the options are the API's fields.
expect_status 0 "$SEMDEX" search --data "$TMP/db" --mode keyword --categories 'cs.*,math.*' -k 4 --json "$q"
cp "$TMP/out" "$TMP/cli-kw.json"
expect_status 0 "$SEMDEX" search --data "$TMP/db" --mode hybrid --date-from 2000-01-01 --sort date -k 4 --json "$q"
cp "$TMP/out" "$TMP/cli-hy.json"
# The server answers the same results for the same query.
start_server "$TMP/db"
post_json /search "{\"query\": \"$q\", \"top_k\": 5}"; expect_http 200
[ "$(jq -cS '.results' "$TMP/body")" = "$(jq -cS '.results' "$TMP/cli5.json")" ] ||
  fail "server and CLI differ: $(jq -c '[.results[].paper_id]' "$TMP/body") vs $(jq -c '[.results[].paper_id]' "$TMP/cli5.json")"
post_json /search "{\"query\": \"$q\", \"mode\": \"keyword\", \"categories\": \"cs.* math.*\", \"top_k\": 4}"; expect_http 200
[ "$(jq -cS '.results' "$TMP/body")" = "$(jq -cS '.results' "$TMP/cli-kw.json")" ] || fail "keyword: server and CLI differ"
jq -e '(.results | length) > 0' "$TMP/body" >/dev/null || fail "keyword search found nothing"
post_json /search "{\"query\": \"$q\", \"mode\": \"hybrid\", \"date_from\": \"2000-01-01\", \"sort\": \"date\", \"top_k\": 4}"; expect_http 200
[ "$(jq -cS '.results' "$TMP/body")" = "$(jq -cS '.results' "$TMP/cli-hy.json")" ] || fail "hybrid: server and CLI differ"
