# A gateway's /health and /metrics do not wait for a slow Redis node: while
# one call refreshes the collection's figures (stuck behind a master's
# DEBUG SLEEP), the others answer from the last good figures at once. A
# refresh that fails drops them, so a cluster that stays down still turns
# /health to 503.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
cluster_with_papers 100 --masters 3 --replicas 0 --gateways 1 --shards 8
GW=$(scripts/cluster status --dir "$CLUSTER_DIR" | awk '$1 == "gateway" { print $2; exit }')
[ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/health")" = 200 ] || fail "gateway not healthy"
master=$(node_ports_by_role master | head -1)

# HAProxy's health checks would refresh the figures too: pause it. Then,
# with the cached figures just past their second, a master sleeps 0.9 s (below
# the client's 1 s round-trip timeout: slow, not down); one /health starts the
# refresh and waits for the master; the requests after it must not.
haproxy_pid=$(cat "$CLUSTER_DIR/haproxy.pid")
kill -STOP "$haproxy_pid"
cleanup_hooks+=("kill -CONT $haproxy_pid 2>/dev/null")
sleep 1.1 # figures cached during the ingest expire
curl -sf -o /dev/null "$GW/health" || fail "gateway not healthy"
sleep 1.05
rcli "$master" debug sleep 0.9 >/dev/null &
sleeper=$!
sleep 0.05
curl -s -o /dev/null -m 10 "$GW/health" &
refresher=$!
sleep 0.1
for i in 1 2 3; do
  for path in /health /metrics; do
    out=$(curl -s -m 5 -o "$TMP/body" -w '%{http_code} %{time_total}' "$GW$path" || true)
    set -- $out
    [ "${1:-}" = 200 ] || fail "$path answered '${1:-nothing}' while a node was slow: $(head -c 300 "$TMP/body")"
    awk -v t="${2:-9}" 'BEGIN { exit !(t < 0.1) }' || fail "$path took ${2:-?} s while a node was slow (bound: 0.1 s)"
  done
done
grep -q '^semdex_papers 100$' "$TMP/body" || fail "/metrics while a node was slow: $(grep semdex_papers "$TMP/body")"
wait "$sleeper" "$refresher" || true
kill -CONT "$haproxy_pid"

# A master down for good (no replica): /health turns 503 and stays so.
kill -STOP "$(cat "$CLUSTER_DIR/redis-$master.pid")"
cleanup_hooks+=("kill -CONT $(cat "$CLUSTER_DIR/redis-$master.pid") 2>/dev/null")
# The turn comes when a refresh fails: the last good figures are given out
# while one is under way (up to INFO_STALE_MAX, 5 s), and a refresh that
# meets the stopped node takes its timeouts (slot map, CLUSTER SHARDS, the
# INFO round: a few seconds). So poll for up to 20 s, then it must stay 503.
codes=""
t0=$(date +%s)
while :; do
  code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$GW/health")
  codes="$codes $code"
  [ "$code" = 503 ] && break
  [ $(($(date +%s) - t0)) -lt 20 ] || fail "/health never turned 503 in 20 s with a master stopped: $codes"
  sleep 0.5
done
for i in 1 2 3; do
  code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$GW/health")
  codes="$codes $code"
  [ "$code" = 503 ] || fail "/health went back to $code with the master still stopped: $codes"
  sleep 0.3
done
kill -CONT "$(cat "$CLUSTER_DIR/redis-$master.pid")"
