# A 3-master, 3-replica Redis Cluster behind two gateways and HAProxy answers
# as standalone does on the same papers and vectors: for 100 queries the
# top-10 overlap is >= 0.95, and recall@10 against exact search is no lower
# than standalone's. Keyword and authors searches (issue 15) give the same
# papers and scores as a standalone collection with as many shards (BM25
# statistics are per shard), hybrid ones mostly the same papers. Also checks
# `scripts/cluster status` and the paper routes through HAProxy.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
n=3000
test_records $n "$TMP/recs.jsonl"
npy=build/testdata/titles-50000.npy
# Standalone (SQ8, the default) and an exact reference (fp32, ef >= n).
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" --embeddings $npy --quiet "$TMP/recs.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/exact" --storage fp32 --embeddings $npy --quiet "$TMP/recs.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/db8" --shards 8 --embeddings $npy --quiet "$TMP/recs.jsonl"
cluster_up --masters 3 --replicas 1 --gateways 2 --shards 8
scripts/cluster status --dir "$CLUSTER_DIR" > "$TMP/status"
[ "$(grep -c '^redis 127.0.0.1:[0-9]* master [0-9]*$' "$TMP/status")" = 3 ] || fail "status: $(cat "$TMP/status")"
[ "$(grep -c '^redis 127.0.0.1:[0-9]* replica [0-9]*$' "$TMP/status")" = 3 ] || fail "status: $(cat "$TMP/status")"
[ "$(grep -c '^gateway http://127.0.0.1:[0-9]* [0-9]*$' "$TMP/status")" = 2 ] || fail "status: $(cat "$TMP/status")"
grep -q "^haproxy $BASE [0-9]*$" "$TMP/status" || fail "status: $(cat "$TMP/status")"
CBASE=$BASE
expect_status 0 "$SEMDEX" ingest --cluster "$SEEDS" --embeddings $npy --quiet "$TMP/recs.jsonl"
grep -q "the collection holds $n" "$TMP/err" || fail "cluster ingest: $(cat "$TMP/err")"
BASE=$CBASE
http GET /collections/info
expect_http 200 ".count == $n and .backend == \"cluster\" and .index.shards == 8"
start_server "$TMP/db"
SBASE=$BASE
start_server "$TMP/exact" --storage fp32
EBASE=$BASE
start_server "$TMP/db8"
S8BASE=$BASE
# 60 hand-written queries and 40 titles from after the ingested records.
{ grep -v '^$' ../shared/datasets/queries/queries.txt | head -n 60
  (set +o pipefail; for f in ../shared/datasets/arxiv/*.jsonl.zst; do zstd -dc "$f" 2>/dev/null || break; done |
    head -n $((n + 40)) | tail -n 40 | jq -r '.title | gsub("\\s+"; " ")')
} > "$TMP/queries"
[ "$(wc -l < "$TMP/queries")" = 100 ] || fail "expected 100 queries, got $(wc -l < "$TMP/queries")"
overlap=0 rec_c=0 rec_s=0
while IFS= read -r q; do
  top_ids "$CBASE" "$q" 10 > "$TMP/c" || fail "cluster search failed for: $q"
  top_ids "$SBASE" "$q" 10 > "$TMP/s" || fail "standalone search failed for: $q"
  top_ids "$EBASE" "$q" 10 4096 > "$TMP/e" || fail "exact search failed for: $q"
  [ "$(wc -l < "$TMP/c")" = 10 ] || fail "cluster gave $(wc -l < "$TMP/c") hits for: $q"
  overlap=$((overlap + $(sort "$TMP/c" "$TMP/s" | uniq -d | wc -l)))
  rec_c=$((rec_c + $(sort "$TMP/c" "$TMP/e" | uniq -d | wc -l)))
  rec_s=$((rec_s + $(sort "$TMP/s" "$TMP/e" | uniq -d | wc -l)))
done < "$TMP/queries"
echo "top-10 overlap cluster/standalone: $overlap/1000; recall@10 cluster $rec_c/1000, standalone $rec_s/1000"
[ $overlap -ge 950 ] || fail "overlap $overlap/1000 < 0.95"
[ $rec_c -ge $rec_s ] || fail "cluster recall $rec_c/1000 below standalone's $rec_s/1000"
# Keyword, authors (first authors of the first records) and filtered
# searches: the same ids and scores; hybrid: overlap >= 0.9.
ranked() { # ranked URL BODY: "id score" per result
  curl -sf -X POST "$1/search" -H 'Content-Type: application/json' --data-binary "$2" |
    jq -r '.results[] | "\(.paper_id) \(.score // "-")"'
}
head -n 30 "$TMP/queries" > "$TMP/q30"
jq -r '(.authors // "") | [splits(",| and ")][0] | gsub("^\\s+|\\s+$"; "") | select(test("[A-Za-z]{2}"))' \
  "$TMP/recs.jsonl" > "$TMP/all-names"
head -n 20 "$TMP/all-names" > "$TMP/names"
hyb=0
while IFS= read -r q; do
  for body in "$(jq -cn --arg q "$q" '{query: $q, mode: "keyword", top_k: 10}')" \
              "$(jq -cn --arg q "$q" '{query: $q, mode: "keyword", top_k: 5, offset: 3, categories: ["cs.*", "hep-th"], date_from: "2008-01-01"}')"; do
    ranked "$CBASE" "$body" > "$TMP/rc" || fail "cluster: $body"
    ranked "$S8BASE" "$body" > "$TMP/rs" || fail "standalone: $body"
    cmp -s "$TMP/rc" "$TMP/rs" || fail "keyword search differs for $body: $(paste "$TMP/rc" "$TMP/rs" | head -5)"
  done
  ranked "$CBASE" "$(jq -cn --arg q "$q" '{query: $q, mode: "hybrid", top_k: 10}')" | cut -d' ' -f1 > "$TMP/rc"
  ranked "$S8BASE" "$(jq -cn --arg q "$q" '{query: $q, mode: "hybrid", top_k: 10}')" | cut -d' ' -f1 > "$TMP/rs"
  [ -s "$TMP/rc" ] || fail "cluster: no hybrid results for $q"
  hyb=$((hyb + $(sort "$TMP/rc" "$TMP/rs" | uniq -d | wc -l)))
done < "$TMP/q30"
[ $hyb -ge 270 ] || fail "hybrid overlap cluster/standalone $hyb/300 < 0.9"
found=0
while IFS= read -r name; do
  body=$(jq -cn --arg q "$name" '{query: $q, mode: "authors", top_k: 20}')
  ranked "$CBASE" "$body" > "$TMP/rc" || fail "cluster: $body"
  ranked "$S8BASE" "$body" > "$TMP/rs" || fail "standalone: $body"
  cmp -s "$TMP/rc" "$TMP/rs" || fail "authors search differs for $name: $(paste "$TMP/rc" "$TMP/rs" | head -5)"
  [ -s "$TMP/rc" ] && found=$((found + 1))
done < "$TMP/names"
[ $found = 20 ] || fail "authors search found papers for $found of 20 first authors"
echo "keyword and authors searches: identical; hybrid overlap $hyb/300"
# Paper routes through HAProxy: get, similar, upsert (acknowledged by a
# replica), delete.
BASE=$CBASE
id=$(head -1 "$TMP/c")
http GET "/papers/$id"
expect_http 200 ".paper_id == \"$id\""
http GET "/papers/$id/similar?top_k=5"
expect_http 200 '(.results | length) == 5'
post_json /papers '{"papers": [{"id": "9999.00001", "title": "A cluster paper", "abstract": "About shards.", "categories": "cs.DC"}]}'
expect_http 200 '.upserted == 1'
http GET /papers/9999.00001
expect_http 200 '.title == "A cluster paper" and .categories == ["cs.DC"]'
post_json /search '{"query": "A cluster paper", "top_k": 3, "categories": ["cs.DC"]}'
expect_http 200 '.results[0].paper_id == "9999.00001"'
http DELETE /papers/9999.00001
expect_http 200
http GET /papers/9999.00001
expect_http 404
http DELETE /papers/9999.00001
expect_http 404
http GET /health
expect_http 200 '.status == "ok" and .backend == "cluster"'
# HAProxy adds its own X-Forwarded-For line after any the client sent, and
# the gateways (--trusted-proxy 127.0.0.1) take that last one as the client:
# a client connecting from 127.0.0.3 is logged as 127.0.0.3 (not as HAProxy's
# 127.0.0.1), and its forged header never becomes the client.
curl -s -o /dev/null --interface 127.0.0.3 -H 'X-Request-Id: forged-xff-1' -H 'X-Forwarded-For: 10.9.9.9' \
  "$BASE/health"
for i in $(seq 20); do grep -qh 'id=forged-xff-1 ' "$CLUSTER_DIR"/gateway-*.log && break; sleep 0.1; done
line=$(grep -h 'id=forged-xff-1 ' "$CLUSTER_DIR"/gateway-*.log) || fail "no gateway logged request forged-xff-1"
case "$line" in *" client=127.0.0.3 "*) ;; *) fail "gateway's client for a forged X-Forwarded-For: $line" ;; esac
