# Move the slot of a shard key to another master (CLUSTER SETSLOT IMPORTING /
# MIGRATING, MIGRATE, SETSLOT NODE: what redis-cli --cluster reshard does)
# while searching and writing through the gateway: no failed, wrong or short
# answer during or after, and no acknowledged write lost.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
cluster_with_papers 1000 --masters 3 --replicas 1 --gateways 1 --shards 8
grep -v '^$' ../shared/datasets/queries/queries.txt | head -n 10 > "$TMP/queries"
search_all "$TMP/queries" > "$TMP/before"
key=$(shard_key 3)
slot=$(rcli "$CLUSTER_BASE" cluster keyslot "$key")
src=$(key_owner "$key")
dst=
for p in $(node_ports_by_role master); do [ "$p" != "$src" ] && { dst=$p; break; }; done
[ -n "$src" ] && [ -n "$dst" ] || fail "no source/target master"
search_loop "$BASE" "$TMP/searches" 12 &
sp=$!
write_loop "$BASE" during "$TMP/acked" 12 &
wp=$!
sleep 3
src_id=$(node_id "$src")
dst_id=$(node_id "$dst")
rcli "$dst" cluster setslot "$slot" importing "$src_id" | grep -q OK || fail "importing"
rcli "$src" cluster setslot "$slot" migrating "$dst_id" | grep -q OK || fail "migrating"
out=$(rcli "$src" migrate 127.0.0.1 "$dst" "" 0 10000 keys "$key")
[ "$out" = OK ] || fail "MIGRATE: $out"
# The key is on dst while src still owns the slot: the gateway's
# SEMDEX.MSEARCH to src (or its replica) names the key missing, and the
# gateway searches it with SEMDEX.SEARCH, which src redirects (ASK) to dst.
# Held for 2 s so that searches take that path.
sleep 2
for p in $(node_ports_by_role master); do rcli "$p" cluster setslot "$slot" node "$dst_id" >/dev/null; done
echo "moved slot $slot ($key) from $src to $dst"
wait $sp $wp
[ "$(key_owner "$key" "$dst")" = "$dst" ] || fail "$key is not on $dst"
total=$(wc -l < "$TMP/searches")
bad=$(awk '$2 != 200 || $3 != 10' "$TMP/searches" | wc -l)
echo "searches during the move: $total, failed or short: $bad; writes acknowledged: $(wc -l < "$TMP/acked")"
[ "$bad" = 0 ] || fail "$bad searches failed or were short: $(awk '$2 != 200 || $3 != 10' "$TMP/searches" | head -3) $(head -c 600 "$TMP/searches.errors" 2>/dev/null)"
expect_papers "$BASE" "$TMP/acked"
calls() { rcli "$1" info commandstats | tr -d '\r' | sed -n "s/^cmdstat_semdex\.$2:calls=\([0-9]*\),.*/\1/p"; }
[ "$(calls "$dst" search)" -gt 0 ] 2>/dev/null ||
  fail "no SEMDEX.SEARCH reached $dst: the missing-key fallback was not taken ($(rcli "$dst" info commandstats | grep semdex))"
[ "$(calls "$dst" msearch)" -gt 0 ] 2>/dev/null || fail "no SEMDEX.MSEARCH reached $dst"
# The written papers are all at one point of the space (same vector); the
# queries' results must be what they were before.
search_all "$TMP/queries" > "$TMP/after"
cmp -s "$TMP/before" "$TMP/after" || fail "results changed: $(diff "$TMP/before" "$TMP/after" | head)"
