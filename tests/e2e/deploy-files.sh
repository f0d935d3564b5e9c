# Every file of deploy/ that runs on a Debian machine without Docker is
# checked here: HAProxy accepts haproxy.cfg, systemd accepts the units (with
# the binaries pointed at this build), and redis-server starts a cluster node
# from redis-cluster.conf with the module and the settings docs/cluster.md
# relies on.
. tests/e2e-lib.sh
haproxy -c -q -f deploy/haproxy.cfg || fail "haproxy rejects deploy/haproxy.cfg"
# The docker-compose topology's HAProxy: the same file through compose.sed.
sed -f deploy/docker/compose.sed deploy/haproxy.cfg > "$TMP/compose-haproxy.cfg"
[ "$(grep -c '^    server gw[123] gw[123]:8000 check$' "$TMP/compose-haproxy.cfg")" = 3 ] || fail "compose.sed no longer matches haproxy.cfg"
haproxy -c -q -f "$TMP/compose-haproxy.cfg" >/dev/null 2>&1 || fail "haproxy rejects the compose variant"
# The compose file itself (Docker is not on CI machines: its structure only).
if python3 -c 'import yaml' 2>/dev/null; then
  python3 - deploy/docker/docker-compose.cluster.yml <<'PY' || fail "docker-compose.cluster.yml"
import sys, yaml
s = yaml.safe_load(open(sys.argv[1]))["services"]
redis = [k for k in s if k.startswith("redis-")]
assert len(redis) == 12, redis
assert all(s[k]["command"][0] == "redis-server" and "/usr/local/lib/semdex.so" in s[k]["command"] for k in redis)
assert "--cluster-replicas 2" in s["cluster-init"]["command"][0]
assert [k for k in s if k.startswith("gw")] == ["gw1", "gw2", "gw3"]
assert s["gw1"]["command"][:3] == ["semdex", "serve", "--cluster"]
PY
fi
mkdir -p "$TMP/units"
root=$(pwd)
for f in deploy/systemd/*.service; do
  sed -e "s#/usr/local/bin/semdex#$root/build/semdex#g" -e "s#/usr/local/lib/semdex.so#$root/build/semdex.so#g" \
      "$f" > "$TMP/units/$(basename "$f")"
done
cp "$TMP/units/semdex-gateway@.service" "$TMP/units/semdex-gateway@8001.service"
cp "$TMP/units/semdex-redis@.service" "$TMP/units/semdex-redis@7000.service"
if command -v systemd-analyze >/dev/null; then
  (cd "$TMP/units" && systemd-analyze verify ./semdex.service ./semdex-gateway@8001.service ./semdex-redis@7000.service) \
    >"$TMP/verify" 2>&1 || fail "systemd-analyze: $(cat "$TMP/verify")"
  # verify exits 0 on some warnings; a unit problem names the unit.
  grep -E '\.service: ' "$TMP/verify" && fail "systemd-analyze: $(cat "$TMP/verify")"
fi
port=$((20000 + RANDOM % 20000))
mkdir -p "$TMP/node"
redis-server deploy/redis-cluster.conf --port "$port" --dir "$TMP/node" --daemonize yes \
  --pidfile "$TMP/node/pid" --logfile "$TMP/node/log" --loadmodule "$root/build/semdex.so" ||
  fail "redis-server rejects deploy/redis-cluster.conf: $(tail "$TMP/node/log")"
cleanup_hooks+=("kill -9 \$(cat $TMP/node/pid) 2>/dev/null")
for i in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(redis-cli -p "$port" config get cluster-enabled | tail -1)" = yes ] || fail "cluster not enabled"
[ "$(redis-cli -p "$port" config get proto-max-bulk-len | tail -1)" = 1073741824 ] || fail "proto-max-bulk-len"
[ "$(redis-cli -p "$port" config get appendonly | tail -1)" = yes ] || fail "appendonly"
redis-cli -p "$port" module list | grep -q semdex || fail "module not loaded"
