# The Redis Cluster client (src/cluster/rcluster.c) against a real cluster of
# 3 masters + 3 replicas on 127.0.0.1, driven by build/tests/rc-tool:
#   1. 1,000 SET/GET routed to the right masters (no MOVED on a fresh map),
#      and reads spread to the replicas (their INFO commandstats count GETs);
#   2. WAIT: a write acknowledged by one replica;
#   3. a slot migrated by hand (SETSLOT IMPORTING/MIGRATING + MIGRATE) and
#      100 slots resharded with redis-cli while readers run: ASK and MOVED
#      followed, no wrong or failed answer;
#   4. kill -9 of a master while readers and writers run: reads never fail
#      or go wrong, writes are back within 10 s of the kill.
# Every server is killed when the script exits, whatever happened.
. tests/e2e-lib.sh
TOOL=${RC_TOOL:-build/tests/rc-tool}
[ -x "$TOOL" ] || fail "$TOOL missing (make unit-tests builds it)"
command -v redis-server >/dev/null || fail "redis-server missing (scripts/setup --test installs it)"

# Six ports and their cluster bus ports (+10000), free in every socket state
# and below the ephemeral range (32768-) so that no outgoing connection can
# take one between the check and the bind; a range that still loses the race
# is abandoned for another.
port_free() { ! ss -Htan "( sport = :$1 or dport = :$1 )" 2>/dev/null | grep -q .; }
pick_ports() {
  local try b i ok
  for try in 1 2 3 4 5 6 7 8 9 10; do
    b=$((10000 + ($$ % 1000) * 10))
    [ $try = 1 ] || b=$((10000 + RANDOM % 1270 * 10))
    ok=1
    for i in 0 1 2 3 4 5; do
      port_free $((b + i)) && port_free $((b + i + 10000)) || { ok=0; break; }
    done
    [ $ok = 1 ] && { BASE=$b; return 0; }
  done
  return 1
}

start_node() { # start_node PORT: starts (or restarts) one cluster node; 1 when it did not come up
  local p=$1
  mkdir -p "$TMP/n$p"
  redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$TMP/n$p/nodes.conf" --cluster-node-timeout 2000 \
    --dir "$TMP/n$p" --save '' --appendonly no --logfile "$TMP/n$p/log" &
  local pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  eval "PID_$p=$pid"
  local t
  for t in $(seq 50); do
    [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  return 1
}
rcli() { timeout 10 redis-cli "$@"; }
started=0
for attempt in 1 2 3; do
  pick_ports || fail "no free port range"
  PORTS=()
  for i in 0 1 2 3 4 5; do PORTS+=($((BASE + i))); done
  started=1
  for p in "${PORTS[@]}"; do start_node "$p" || { started=0; break; }; done
  [ $started = 1 ] && break
  echo "ports $BASE..: $(tail -2 "$TMP/n$p/log"); trying another range"
  for p in "${PORTS[@]}"; do kill -9 "$(eval echo "\${PID_$p:-}")" 2>/dev/null || true; done
  rm -rf "$TMP"/n*
done
[ $started = 1 ] || fail "could not start 6 redis-server nodes"
SEEDS="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]}"

addrs=()
for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
  >"$TMP/create.log" 2>&1 || fail "cluster create: $(tail -5 "$TMP/create.log")"

# wait_cluster_ok SECONDS: every live node says cluster_state:ok and every
# replica's link to its master is up.
wait_cluster_ok() {
  local deadline=$((SECONDS + $1)) p good
  while [ $SECONDS -lt $deadline ]; do
    good=1
    for p in "${PORTS[@]}"; do
      kill -0 "$(eval echo \$PID_$p)" 2>/dev/null || continue
      rcli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || { good=0; break; }
      if rcli -p "$p" info replication 2>/dev/null | grep -q '^role:slave'; then
        rcli -p "$p" info replication | grep -q '^master_link_status:up' || { good=0; break; }
      fi
    done
    [ $good = 1 ] && return 0
    sleep 0.2
  done
  return 1
}
wait_cluster_ok 60 || fail "cluster did not reach cluster_state:ok"
# Every node's CLUSTER SLOTS must list all 6 nodes (Redis 7 leaves a replica
# out until it has synced) before the client takes its first look.
port_re="^($(IFS='|'; echo "${PORTS[*]}"))\$"
for p in "${PORTS[@]}"; do
  for t in $(seq 200); do
    [ "$(rcli -p "$p" cluster slots 2>/dev/null | grep -E "$port_re" | sort -u | wc -l)" = 6 ] && break
    sleep 0.1
  done
  [ $t -lt 200 ] || fail "CLUSTER SLOTS on $p does not list 6 nodes: $(rcli -p "$p" cluster slots)"
done

masters() { rcli -p "${PORTS[0]}" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "@"); split(a[1], b, ":"); print b[2]}'; }
replicas() { rcli -p "${PORTS[0]}" cluster nodes | awk '$3 ~ /slave/ && $3 !~ /fail/ {split($2, a, "@"); split(a[1], b, ":"); print b[2]}'; }
node_id() { rcli -p "$1" cluster myid; }
# port_of_slot SLOT: the port of the master that owns SLOT.
port_of_slot() {
  local m
  for m in $(masters); do
    rcli -p "$m" cluster countkeysinslot "$1" >/dev/null 2>&1 || continue
    rcli -p "$m" cluster nodes | awk -v s="$1" '$3 ~ /myself/ {for (i = 9; i <= NF; i++) {n = split($i, r, "-"); if (n == 1) r[2] = r[1]; if (s >= r[1] && s <= r[2]) print "yes"}}' | grep -q yes && { echo "$m"; return; }
  done
}
# figure KEY FILE: the value of KEY=... in the last line of FILE that has it.
figure() { grep -oE "(^| )$1=[0-9]+" "$2" | tail -1 | cut -d= -f2; }
# wait_replicas_synced: each replica holds as many keys as its master.
wait_replicas_synced() {
  local deadline=$((SECONDS + 20)) r m good
  while [ $SECONDS -lt $deadline ]; do
    good=1
    for r in $(replicas); do
      m=$(rcli -p "$r" info replication | awk -F: '/^master_port/ {print $2}' | tr -d '\r')
      [ "$(rcli -p "$r" dbsize)" = "$(rcli -p "$m" dbsize)" ] || { good=0; break; }
    done
    [ $good = 1 ] && return 0
    sleep 0.2
  done
  fail "replicas did not catch up"
}

# ---- 1. routing and replica reads ------------------------------------------
expect_status 0 "$TOOL" --primary "$SEEDS" fill 1000 k
expect_grep '^n=1000 failed=0 wrong=0 missing=0$' "$TMP/out"
expect_grep 'moved=0 ask=0' "$TMP/out"
expect_status 0 "$TOOL" --primary "$SEEDS" check 1000 k
expect_grep '^n=1000 failed=0 wrong=0 missing=0$' "$TMP/out"
expect_grep 'moved=0 ask=0' "$TMP/out"
total=0
for m in $(masters); do
  n=$(rcli -p "$m" dbsize)
  [ "$n" -gt 200 ] || fail "master $m holds only $n of the 1000 keys"
  total=$((total + n))
done
[ $total = 1000 ] || fail "masters hold $total keys, expected 1000"
wait_replicas_synced
for r in $(replicas); do rcli -p "$r" config resetstat >/dev/null; done
expect_status 0 "$TOOL" --threads 2 "$SEEDS" loop 1 1000 k
expect_grep ' wrong=0 missing=0 failed=0 ' "$TMP/out"
for r in $(replicas); do
  calls=$(rcli -p "$r" info commandstats | awk -F'[:=,]' '/^cmdstat_get:/ {print $3}')
  [ "${calls:-0}" -gt 0 ] || fail "replica $r served no GET: $(rcli -p "$r" info commandstats)"
done

# ---- 2. WAIT ----------------------------------------------------------------
expect_status 0 "$TOOL" "$SEEDS" wait-set w:1 one 1
expect_grep '^acked=1$' "$TMP/out"
# Two replicas asked for, one exists: the caller learns that only one has it.
expect_status 0 "$TOOL" "$SEEDS" wait-set w:1 two 2
expect_grep '^acked=1$' "$TMP/out"
expect_status 0 "$TOOL" --primary "$SEEDS" get w:1
expect_grep '^two$' "$TMP/out"

# ---- 3. a slot migrated by hand, then 100 slots resharded, under readers -----
expect_status 0 "$TOOL" --primary "$SEEDS" fill 200 '{mig}'
slot=$(rcli -p "${PORTS[0]}" cluster keyslot mig)
src=$(port_of_slot "$slot")
[ -n "$src" ] || fail "no master owns slot $slot"
dst=$(masters | grep -vx "$src" | head -1)
src_id=$(node_id "$src") dst_id=$(node_id "$dst")
"$TOOL" --primary --threads 4 "$SEEDS" loop 6 200 '{mig}' >"$TMP/mig.out" 2>&1 &
loop_pid=$!
cleanup_hooks+=("kill $loop_pid 2>/dev/null")
sleep 1
rcli -p "$dst" cluster setslot "$slot" importing "$src_id" | grep -q OK || fail "setslot importing"
rcli -p "$src" cluster setslot "$slot" migrating "$dst_id" | grep -q OK || fail "setslot migrating"
for t in $(seq 100); do
  keys=$(rcli -p "$src" cluster getkeysinslot "$slot" 20 | tr '\n' ' ')
  [ -z "${keys// }" ] && break
  # shellcheck disable=SC2086
  rcli -p "$src" migrate 127.0.0.1 "$dst" "" 0 5000 KEYS $keys | grep -q OK || fail "migrate $keys"
  sleep 0.25
done
for m in "$dst" "$src" $(masters | grep -vxE "$src|$dst"); do
  rcli -p "$m" cluster setslot "$slot" node "$dst_id" | grep -q OK || fail "setslot node on $m"
done
wait $loop_pid || fail "reader during the migration: $(cat "$TMP/mig.out")"
expect_grep ' wrong=0 missing=0 failed=0 ' "$TMP/mig.out"
[ "$(figure ask "$TMP/mig.out")" -gt 0 ] || fail "no ASK followed: $(cat "$TMP/mig.out")"
[ "$(figure moved "$TMP/mig.out")" -gt 0 ] || fail "no MOVED followed: $(cat "$TMP/mig.out")"
[ "$(rcli -p "$dst" cluster countkeysinslot "$slot")" = 200 ] || fail "slot $slot did not move whole"

"$TOOL" --primary --threads 4 "$SEEDS" loop 8 1000 k >"$TMP/reshard.out" 2>&1 &
loop_pid=$!
cleanup_hooks+=("kill $loop_pid 2>/dev/null")
sleep 1
timeout 60 redis-cli --cluster reshard "127.0.0.1:${PORTS[0]}" --cluster-from "$src_id" \
  --cluster-to "$dst_id" --cluster-slots 100 --cluster-yes >"$TMP/reshard.log" 2>&1 ||
  fail "reshard: $(tail -5 "$TMP/reshard.log")"
wait $loop_pid || fail "reader during the reshard: $(cat "$TMP/reshard.out")"
expect_grep ' wrong=0 missing=0 failed=0 ' "$TMP/reshard.out"
[ "$(figure moved "$TMP/reshard.out")" -gt 0 ] || fail "no MOVED during the reshard: $(cat "$TMP/reshard.out")"
wait_cluster_ok 30 || fail "cluster not ok after the reshard"
expect_status 0 "$TOOL" "$SEEDS" check 1000 k
expect_grep '^n=1000 failed=0 wrong=0 missing=0$' "$TMP/out"

# ---- 4. failover: kill -9 a master under readers and writers -----------------
victim=$(masters | head -1)
wait_replicas_synced
"$TOOL" --threads 4 "$SEEDS" loop 14 1000 k >"$TMP/fo-read.out" 2>&1 &
reader=$!
"$TOOL" --write --retry-writes --threads 2 "$SEEDS" loop 14 1000 k >"$TMP/fo-write.out" 2>&1 &
writer=$!
cleanup_hooks+=("kill $reader $writer 2>/dev/null")
sleep 2
kill_ms=$(date +%s%3N)
kill -9 "$(eval echo \$PID_$victim)"
rc_r=0 rc_w=0
wait $reader || rc_r=$?
wait $writer || rc_w=$?
echo "failover: reads: $(grep -E "^(ok=|first_error)" "$TMP/fo-read.out")"
echo "failover: writes: $(grep -E "^(ok=|first_error)" "$TMP/fo-write.out")"
grep -q ' wrong=0 missing=0 ' "$TMP/fo-read.out" || fail "wrong reads during the failover: $(cat "$TMP/fo-read.out")"
for f in fo-read fo-write; do
  last=$(figure last_fail_ms "$TMP/$f.out")
  [ -n "$last" ] || fail "$f: no figures: $(cat "$TMP/$f.out")"
  [ "$(figure ok "$TMP/$f.out")" -gt 1000 ] || fail "$f: too few answers: $(cat "$TMP/$f.out")"
  if [ "$last" != 0 ]; then
    rec=$((last - kill_ms))
    echo "failover: $f: last failure $rec ms after the kill"
    [ $rec -le 10000 ] || fail "$f still failing $rec ms after the kill: $(cat "$TMP/$f.out")"
  fi
done
[ $rc_w = 0 ] || grep -q 'first_error: ' "$TMP/fo-write.out" || fail "writer exited $rc_w: $(cat "$TMP/fo-write.out")"
[ $rc_r = 0 ] || grep -q 'first_error: ' "$TMP/fo-read.out" || fail "reader exited $rc_r: $(cat "$TMP/fo-read.out")"
# The replica took over; the old master comes back as its replica.
wait_cluster_ok 30 || fail "cluster not ok after the failover"
start_node "$victim" || fail "old master did not restart: $(tail -5 "$TMP/n$victim/log")"
wait_cluster_ok 30 || fail "cluster not ok after the old master came back"
expect_status 0 "$TOOL" "$SEEDS" check 1000 k
expect_grep '^n=1000 failed=0 wrong=0 missing=0$' "$TMP/out"
expect_status 0 "$TOOL" "$SEEDS" stats
expect_grep 'masters=3 replicas=[23] ' "$TMP/out"
echo "redis-cluster-client: ok"
