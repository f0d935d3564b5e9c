# A write is acknowledged only once a replica has it: with every replica
# paused (SIGSTOP) POST /papers and DELETE answer 503 naming the replicas
# that did not acknowledge, never a silent 200; resumed, they succeed.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
cluster_with_papers 200 --masters 3 --replicas 1 --gateways 1 --shards 4
paper='{"papers": [{"id": "9999.00002", "title": "Waited for", "abstract": "Replicated.", "categories": "cs.DC"}]}'
replicas=$(node_ports_by_role replica | tr '\n' ' ')
[ -n "${replicas// /}" ] || fail "no replicas: $(scripts/cluster status --dir "$CLUSTER_DIR")"
for p in $replicas; do kill -STOP "$(cat "$CLUSTER_DIR/redis-$p.pid")"; done
cleanup_hooks+=("for p in $replicas; do kill -CONT \$(cat $CLUSTER_DIR/redis-\$p.pid) 2>/dev/null; done")
http GET /collections/info; echo "before: $(jq -c .cluster "$TMP/body") replicas: $replicas"
post_json /papers "$paper"
expect_http 503 '.error.message | test("acknowledged by 0 of the 1 replicas")'
for p in $replicas; do kill -CONT "$(cat "$CLUSTER_DIR/redis-$p.pid")"; done
http GET /collections/info; echo "before: $(jq -c .cluster "$TMP/body") replicas: $replicas"
post_json /papers "$paper"
expect_http 200 '.upserted == 1'
http GET /papers/9999.00002
expect_http 200 '.title == "Waited for"'
# --wait 0 (a deployment that accepts asynchronous replication) does not wait.
for p in $replicas; do kill -STOP "$(cat "$CLUSTER_DIR/redis-$p.pid")"; done
port=$((CLUSTER_BASE + 150))
"$SEMDEX" serve --cluster "$SEEDS" --wait 0 --port $port >"$TMP/gw0.log" 2>&1 &
cleanup_hooks+=("kill -9 $! 2>/dev/null")
BASE=http://127.0.0.1:$port
for i in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && break; sleep 0.2; done
http DELETE /papers/9999.00002
expect_http 200
for p in $replicas; do kill -CONT "$(cat "$CLUSTER_DIR/redis-$p.pid")"; done
