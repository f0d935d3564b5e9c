# Two gateways behind HAProxy; kill -9 one under search load: fewer than
# 0.5% of the requests fail, and the survivor serves the rest.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
cluster_with_papers 500 --masters 3 --replicas 1 --gateways 2 --shards 8
for c in 1 2 3 4; do search_loop "$BASE" "$TMP/searches-$c" 12 & done
sleep 4
gw=$(ls "$CLUSTER_DIR"/gateway-*.pid | head -1)
kill -9 "$(cat "$gw")"
wait
cat "$TMP"/searches-? > "$TMP/all"
total=$(wc -l < "$TMP/all")
bad=$(awk '$2 != 200 || $3 != 10' "$TMP/all" | wc -l)
echo "requests: $total, failed: $bad"
[ "$total" -ge 200 ] || fail "only $total requests ran"
[ $((bad * 1000)) -lt $((total * 5)) ] || fail "$bad of $total requests failed (>= 0.5%)"
scripts/cluster status --dir "$CLUSTER_DIR" > "$TMP/status"
grep -q "^gateway .* down$" "$TMP/status" || fail "status does not show the dead gateway: $(cat "$TMP/status")"
