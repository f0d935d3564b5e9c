# Stop every node with SHUTDOWN SAVE (scripts/cluster down) and start again:
# the same papers and the same search results.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
cluster_with_papers 1000 --masters 3 --replicas 1 --gateways 1 --shards 8
grep -v '^$' ../shared/datasets/queries/queries.txt | head -n 20 > "$TMP/queries"
search_all "$TMP/queries" > "$TMP/before"
grep -q FAILED "$TMP/before" && fail "searches failed before the restart"
scripts/cluster down --dir "$CLUSTER_DIR" || fail "down failed"
scripts/cluster status --dir "$CLUSTER_DIR" > "$TMP/status" 2>&1 || true
grep -q '^redis .* [0-9][0-9]*$' "$TMP/status" && grep -v ' down ' "$TMP/status" | grep -q '^redis' && fail "nodes still up: $(cat "$TMP/status")"
for f in "$CLUSTER_DIR"/redis-*/dump.rdb; do [ -s "$f" ] || fail "no RDB at $f"; done
cluster_again
http GET /collections/info
expect_http 200 '.count == 1000'
search_all "$TMP/queries" > "$TMP/after"
cmp -s "$TMP/before" "$TMP/after" || fail "results differ after the restart: $(diff "$TMP/before" "$TMP/after" | head)"
