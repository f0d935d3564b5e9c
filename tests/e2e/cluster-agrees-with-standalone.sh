# A 3-master, 3-replica Redis Cluster behind two gateways and HAProxy answers
# as standalone does on the same papers and vectors: for 100 queries the
# top-10 overlap is >= 0.95, and recall@10 against exact search is no lower
# than standalone's. Also checks `scripts/cluster status` and the paper
# routes through HAProxy.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
n=3000
test_records $n "$TMP/recs.jsonl"
npy=build/testdata/titles-50000.npy
# Standalone (SQ8, the default) and an exact reference (fp32, ef >= n).
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" --embeddings $npy --quiet "$TMP/recs.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/exact" --storage fp32 --embeddings $npy --quiet "$TMP/recs.jsonl"
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
