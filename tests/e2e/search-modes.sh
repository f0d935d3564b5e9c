# Search modes and filters on a standalone server (docs/search.md): keyword,
# hybrid and authors searches, known-item titles, date, category-pattern and
# author filters, sort by date, min_score, highlights, GET /search equal to
# POST, /similar with filters and paging, bad input; and the keyword index
# surviving a restart and a kill -9 (snapshot + write-ahead log).
. tests/e2e-lib.sh
. tests/cluster-lib.sh # test_records
n=2000
test_records $n "$TMP/recs.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" --embeddings build/testdata/titles-50000.npy --quiet "$TMP/recs.jsonl"
start_server "$TMP/db" --api-key sekret

# search BODY: POST /search, the body in $TMP/body, 200 required.
search() {
  post_json /search "$1"
  [ "$STATUS" = 200 ] || fail "search $1: $STATUS $(head -c 300 "$TMP/body")"
}
check() { # check JQ-EXPR WHAT: the last body satisfies JQ-EXPR
  jq -e "$1" "$TMP/body" >/dev/null || fail "$2: $(jq -c '[.results[] | {paper_id, score, update_date, categories}]' "$TMP/body" | head -c 600)"
}

# Known items: a paper's exact title finds it first by keyword and hybrid.
for i in 10 500 1500; do
  rec=$(sed -n "${i}p" "$TMP/recs.jsonl")
  id=$(jq -r .id <<<"$rec")
  title=$(jq -r '.title | gsub("\\s+"; " ")' <<<"$rec")
  for mode in keyword hybrid; do
    search "$(jq -cn --arg q "$title" --arg m $mode '{query: $q, mode: $m, top_k: 3}')"
    check ".mode == \"$mode\" and .results[0].paper_id == \"$id\"" "$mode search for the title of $id"
  done
done

# Highlights: the ranges cover the query's terms, in code points.
search '{"query": "Quantum GRAVITY", "mode": "keyword", "top_k": 10}'
python3 - "$TMP/body" <<'PY' || fail "highlights do not cover the query terms"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["results"], "no results"
for r in d["results"]:
    hl = r["highlights"]
    for field in ("title", "abstract"):
        for s, e in hl[field]:
            word = r[field][s:e].lower()
            assert word in ("quantum", "gravity"), (r["paper_id"], field, word)
    assert hl["title"] or hl["abstract"], r["paper_id"]
PY

# Authors: an author with several papers; all of them, newest first, no score.
IFS=$'\t' read -r name count < <(jq -r '(.authors // "") | [splits(",| and ")][] | gsub("^\\s+|\\s+$"; "")' "$TMP/recs.jsonl" |
  grep -E '^[A-Z][a-z]+ [A-Z][a-z]+$' | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 " " $3 "\t" $1 }') || true
[ -n "$name" ] && [ "${count:-0}" -ge 2 ] || fail "no author with two papers in the sample"
search "$(jq -cn --arg q "$name" '{query: $q, mode: "authors", top_k: 100}')"
check "(.results | length) >= $count and all(.results[]; has(\"score\") | not) and ([.results[].update_date // \"\"] | . == (sort | reverse))" \
  "authors search for $name ($count papers)"
jq -e --arg n "${name##* }" 'all(.results[]; .authors | test($n))' "$TMP/body" >/dev/null || fail "a paper without $name"
# the same name as a filter of a keyword search: a subset of those papers
first=$(jq -r '.results[0].title | gsub("\\s+"; " ")' "$TMP/body")
search "$(jq -cn --arg q "$first" --arg n "$name" '{query: $q, mode: "keyword", authors: [$n], top_k: 50}')"
jq -e --arg n "${name##* }" '(.results | length) >= 1 and all(.results[]; .authors | test($n))' "$TMP/body" >/dev/null ||
  fail "authors filter on a keyword search"

# Filters: dates, category patterns; sort by date; min_score.
search '{"query": "dark matter halo", "top_k": 20, "date_from": "2010-01-01", "date_to": "2015-12-31"}'
check '(.results | length) > 0 and all(.results[]; .update_date >= "2010-01-01" and .update_date <= "2015-12-31")' "date range"
search '{"query": "graph algorithms", "mode": "hybrid", "top_k": 20, "categories": "math.*"}'
check '(.results | length) > 0 and all(.results[]; any(.categories[]; startswith("math")))' "math.* filter"
search '{"query": "neural network", "mode": "keyword", "top_k": 20, "sort": "date"}'
check '(.results | length) == 20 and ([.results[].update_date // ""] | . == (sort | reverse))' "sort by date"
search '{"query": "neural network", "top_k": 50, "min_score": 0.3}'
check 'all(.results[]; .score >= 0.3)' "min_score"
search '{"query": "neural network", "mode": "keyword", "top_k": 5, "date_from": "2030-01-01"}'
check '.results == []' "a date range with no paper"
search '{"query": "neural network", "mode": "keyword", "top_k": 5, "date_from": "2012-01-01", "date_to": "2011-01-01"}'
check '.results == []' "a reversed date range"

# GET /search answers what POST answers.
search '{"query": "black hole entropy", "mode": "hybrid", "top_k": 7, "offset": 2, "categories": ["hep-th", "gr-qc"]}'
jq -c '[.results[] | {paper_id, score}]' "$TMP/body" > "$TMP/post"
http GET '/search?q=black%20hole%20entropy&mode=hybrid&top_k=7&offset=2&categories=hep-th&categories=gr-qc'
[ "$STATUS" = 200 ] || fail "GET /search: $STATUS $(cat "$TMP/body")"
jq -c '[.results[] | {paper_id, score}]' "$TMP/body" > "$TMP/get"
cmp -s "$TMP/post" "$TMP/get" || fail "GET and POST differ: $(cat "$TMP/post") vs $(cat "$TMP/get")"

# /similar with filters and paging: never the paper itself.
id=$(sed -n 20p "$TMP/recs.jsonl" | jq -r .id)
http GET "/papers/$id/similar?top_k=5&offset=0"; [ "$STATUS" = 200 ] || fail "similar: $(cat "$TMP/body")"
jq -c '[.results[].paper_id]' "$TMP/body" > "$TMP/p0"
http GET "/papers/$id/similar?top_k=3&offset=2"; [ "$STATUS" = 200 ] || fail "similar offset: $(cat "$TMP/body")"
[ "$(jq -c '[.results[].paper_id]' "$TMP/body")" = "$(jq -c '.[2:5]' "$TMP/p0")" ] || fail "similar paging"
http GET "/papers/$id/similar?top_k=10&categories=cs.*&date_from=2000-01-01"
[ "$STATUS" = 200 ] || fail "similar filters: $(cat "$TMP/body")"
jq -e --arg id "$id" 'all(.results[]; .paper_id != $id and any(.categories[]; startswith("cs")) and .update_date >= "2000-01-01")' \
  "$TMP/body" >/dev/null || fail "similar filters not applied: $(head -c 400 "$TMP/body")"

# Bad input: 400 naming the field.
for bad in '{"query": "x", "mode": null}|mode' '{"query": "x", "mode": "fuzzy"}|mode' \
           '{"query": "x", "authors": []}|authors' '{"query": "x", "authors": ["  "]}|author' \
           '{"query": "x", "date_from": "2024-02-30"}|date_from' '{"query": "x", "date_to": null}|date_to' \
           '{"query": "x", "sort": "newest"}|sort' '{"query": "x", "min_score": "high"}|min_score' \
           '{"query": " ; ", "mode": "authors"}|name' '{"query": "x", "categories": ["cs"]}|cs\.\*' \
           '{"query": "x", "categories": ["foo.*"]}|archive'; do
  post_json /search "${bad%|*}"
  [ "$STATUS" = 400 ] || fail "${bad%|*}: $STATUS"
  jq -e --arg w "${bad##*|}" '.error.message | test($w)' "$TMP/body" >/dev/null || fail "${bad%|*}: $(cat "$TMP/body")"
done
for bad in 'q=x&top_k=1&top_k=2|more than once' 'query=x|unknown query parameter' 'q=x&mode=keyword&bogus=1|bogus'; do
  http GET "/search?${bad%|*}"
  [ "$STATUS" = 400 ] || fail "GET /search?${bad%|*}: $STATUS"
  jq -e --arg w "${bad##*|}" '.error.message | test($w)' "$TMP/body" >/dev/null || fail "GET ${bad%|*}: $(cat "$TMP/body")"
done

# The keyword index follows writes and survives a restart and a kill -9.
post_json /papers '{"papers": [{"id": "kw.1", "title": "Zyxwvutonium dynamics", "abstract": "A new particle.", "authors": "Quentin Zarathustra", "update_date": "2025-01-02", "categories": "hep-ph"}]}' -H 'X-API-Key: sekret'
[ "$STATUS" = 200 ] || fail "upsert: $(cat "$TMP/body")"
search '{"query": "zyxwvutonium", "mode": "keyword"}'
check '[.results[].paper_id] == ["kw.1"]' "keyword search for a new paper"
stop_server
start_server "$TMP/db" --api-key sekret
search '{"query": "zyxwvutonium", "mode": "keyword"}'
check '[.results[].paper_id] == ["kw.1"]' "keyword search after a restart"
search '{"query": "Q. Zarathustra", "mode": "authors", "date_from": "2025-01-01"}'
check '[.results[].paper_id] == ["kw.1"]' "authors search after a restart"
post_json /papers '{"papers": [{"id": "kw.1", "title": "Renamed paper", "categories": "hep-ph"}, {"id": "kw.2", "title": "Another zyxwvutonium note", "categories": "hep-ph"}]}' -H 'X-API-Key: sekret'
[ "$STATUS" = 200 ] || fail "upsert: $(cat "$TMP/body")"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
start_server "$TMP/db" --api-key sekret
search '{"query": "zyxwvutonium", "mode": "keyword"}'
check '[.results[].paper_id] == ["kw.2"]' "keyword search after kill -9 (the log replayed)"
search '{"query": "Zarathustra", "mode": "authors"}'
check '.results == []' "the replaced paper's author after kill -9"
echo "search modes: all checks passed (author $name, $count papers)"
