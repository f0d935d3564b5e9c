# kill -9 a master under search and write load (cluster-node-timeout 2000):
# searches succeed again with full results within 10 s, every write
# acknowledged (WAIT 1) before the kill is present afterwards, and the
# restarted node rejoins as a replica whose data digest equals its master's.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
cluster_with_papers 1000 --masters 3 --replicas 1 --gateways 1 --shards 8
# The victim: the master of shard key 0.
victim=$(key_owner "$(shard_key 0)")
[ -n "$victim" ] || fail "no owner for shard 0"
search_loop "$BASE" "$TMP/searches" 25 &
sp=$!
write_loop "$BASE" before "$TMP/acked-before" 4
kill_ms=$(date +%s%3N)
kill -9 "$(cat "$CLUSTER_DIR/redis-$victim.pid")"
write_loop "$BASE" after "$TMP/acked-after" 15
wait $sp
# Searches: after the kill, find when the last failed or short answer was.
awk -v k="$kill_ms" '$1 >= k && ($2 != 200 || $3 != 10) { last = $1 } END { print (last ? last - k : 0) }' \
  "$TMP/searches" > "$TMP/recovery_ms"
rec=$(cat "$TMP/recovery_ms")
total=$(wc -l < "$TMP/searches")
bad=$(awk '$2 != 200 || $3 != 10' "$TMP/searches" | wc -l)
echo "searches: $total, failed or short: $bad, full results again $rec ms after the kill"
[ "$rec" -le 10000 ] || fail "searches recovered only $rec ms after the kill"
tail -5 "$TMP/searches" | awk '$2 != 200 || $3 != 10 { exit 1 }' || fail "searches still failing at the end"
[ -s "$TMP/acked-before" ] || fail "no write was acknowledged before the kill"
expect_papers "$BASE" "$TMP/acked-before"
[ -s "$TMP/acked-after" ] && expect_papers "$BASE" "$TMP/acked-after"
echo "acknowledged writes present: $(cat "$TMP/acked-before" "$TMP/acked-after" 2>/dev/null | wc -l)"
# Restart the node: it rejoins as a replica of the promoted master.
cluster_again
deadline=$((SECONDS + 30))
until [ "$(rcli "$victim" role | head -1)" = slave ] && rcli "$victim" info replication | grep -q 'master_link_status:up' &&
      ! rcli "$victim" info replication | grep -q 'master_sync_in_progress:1'; do
  [ $SECONDS -lt $deadline ] || fail "the restarted node did not rejoin as a synced replica: $(rcli "$victim" info replication)"
  sleep 0.5
done
mport=$(rcli "$victim" info replication | sed -n 's/^master_port:\([0-9]*\).*/\1/p')
# The master has no more writes coming: once the replica's offset matches,
# the whole-dataset digests (module type digests included) must be equal.
deadline=$((SECONDS + 20))
until [ "$(rcli "$victim" debug digest)" = "$(rcli "$mport" debug digest)" ]; do
  [ $SECONDS -lt $deadline ] || fail "digest of replica $victim differs from its master $mport"
  sleep 0.5
done
[ "$(rcli "$victim" debug digest)" != 0000000000000000000000000000000000000000 ] || fail "empty digest"
echo "replica $victim digest equals master $mport's"
