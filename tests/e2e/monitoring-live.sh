# Debian's Prometheus (through scripts/monitor, with deploy/prometheus's
# configuration and rules) scrapes a live standalone semdex and a live
# cluster (Redis nodes through prometheus-redis-exporter, gateways, HAProxy)
# while searches and writes run; then non-zero series are read back through
# Prometheus's HTTP API, and every query of the Grafana dashboard
# (deploy/grafana/dashboards/semdex.json) must parse and return data.
. tests/e2e-lib.sh
. tests/cluster-lib.sh
command -v prometheus >/dev/null && command -v prometheus-redis-exporter >/dev/null ||
  fail "prometheus and prometheus-redis-exporter are needed: scripts/setup --test"
[ -f build/semdex.so ] || fail "build/semdex.so is missing: make module"

# A standalone server with papers and a checkpoint behind it.
vec() { seq -s, 1 384 | sed "s/[0-9]*/0.0$1/g"; }
mkdir -p "$TMP/db"
start_server "$TMP/db" --checkpoint-bytes 4096
SBASE=$BASE SPORT=$PORT
for i in 1 2 3 4; do
  post_json /papers "{\"papers\": [{\"id\": \"2501.0000$i\", \"title\": \"Paper $i\", \"abstract\": \"A.\", \"embedding\": [$(vec "$i")]}]}"
  expect_http 200
done
http DELETE /papers/2501.00004; expect_http 200
post_json /search '{"query": "graph neural networks"}'; expect_http 200
post_json /search '{"query": "graph neural networks"}'; expect_http 200 '.cached == true'

# A cluster (3 masters, 1 replica each, 2 gateways, HAProxy) with papers.
cluster_with_papers 300
CBASE=$BASE

mport=$((20000 + RANDOM % 10000))
cleanup_hooks+=("scripts/monitor down --dir $TMP/mon >/dev/null 2>&1")
PROM=$(scripts/monitor up --dir "$TMP/mon" --port "$mport" --semdex "127.0.0.1:$SPORT" \
       --cluster-dir "$CLUSTER_DIR" --interval 1s 2>"$TMP/monitor.log" | tail -1) ||
  fail "scripts/monitor up: $(cat "$TMP/monitor.log")"

# Traffic on both for a while: searches (some repeated: cache hits) and writes.
loops=()
search_loop "$SBASE" "$TMP/s-searches" 8 & loops+=($!)
search_loop "$CBASE" "$TMP/c-searches" 8 & loops+=($!)
write_loop "$CBASE" 2601 "$TMP/c-writes" 8 & loops+=($!)
write_loop "$SBASE" 2602 "$TMP/s-writes" 8 & loops+=($!)
wait "${loops[@]}" # not the servers, which are children too
[ -s "$TMP/c-writes" ] && [ -s "$TMP/s-writes" ] || fail "no write was acknowledged"
sleep 3 # the last scrapes and rule evaluations

# q EXPR: the query's result (a JSON array) through the HTTP API; fails
# unless Prometheus accepts it.
q() {
  curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1" > "$TMP/q.json" ||
    fail "Prometheus refused '$1': $(curl -s --get "$PROM/api/v1/query" --data-urlencode "query=$1")"
  jq -e '.status == "success"' "$TMP/q.json" >/dev/null || fail "query '$1': $(cat "$TMP/q.json")"
  jq -c '.data.result' "$TMP/q.json"
}
# nonzero EXPR: at least one series of EXPR is above 0.
nonzero() {
  q "$1" | jq -e 'length > 0 and any(.[]; (.value[1] | tonumber) > 0)' >/dev/null ||
    fail "expected a non-zero '$1', got $(cat "$TMP/q.json")"
}
nonzero 'up{job="semdex"}'
nonzero 'min(up{job="semdex-gateway"})'
nonzero 'min(up{job="haproxy"})'
nonzero 'min(redis_up)'
nonzero 'semdex_papers{job="semdex"}'
nonzero 'sum(semdex_papers{job="semdex-gateway"})'
nonzero 'sum by (job) (rate(semdex_requests_total{route="/search",status="200"}[1m]))'
nonzero 'sum by (job) (rate(semdex_requests_total{route="/papers",status="200"}[1m]))'
for st in queue encode search fetch; do
  nonzero "semdex_stage_duration_seconds_count{job=\"semdex\",stage=\"$st\"}"
done
for st in search fetch merge; do
  nonzero "sum(semdex_stage_duration_seconds_count{job=\"semdex-gateway\",stage=\"$st\"})"
done
nonzero 'sum(semdex_fanout_node_duration_seconds_count)'
nonzero 'semdex_embedding_batch_size_count{job="semdex"}'
nonzero 'semdex_query_cache_hits_total{job="semdex"}'
nonzero 'semdex_papers_upserted_total{job="semdex"}'
nonzero 'semdex_papers_deleted_total{job="semdex"}'
nonzero 'semdex_wal_bytes'
nonzero 'semdex_wal_sync_duration_seconds_count'
nonzero 'semdex_checkpoints_total{result="ok"}'
nonzero 'semdex_last_checkpoint_timestamp_seconds'
nonzero 'sum(semdex_index_memory_bytes{part="graph"}) by (job)'
nonzero 'semdex_build_info'
nonzero 'semdex:requests:rate1m'
nonzero 'semdex:stage_duration_seconds:p99_rate5m{job="semdex",stage="encode"}'
# The module's per-shard figures, through the exporter and its script.
nonzero 'sum(redis_script_values{key="semdex_papers"})'
nonzero 'sum(semdex_shard:papers)'
[ "$(q 'count(semdex_shard:papers)' | jq -r '.[0].value[1]')" -ge 16 ] || fail "per-shard series: $(cat "$TMP/q.json")"
# No alert fires on a healthy system (SemdexShardKeyWithoutReplica needs 5 min).
q 'ALERTS{alertstate="firing"}' | jq -e 'length == 0' >/dev/null || fail "alerts firing: $(cat "$TMP/q.json")"

# Every query of every dashboard panel parses and returns data.
jq -r '.panels[] | select(.type != "row") | .title as $t | .targets[] | [$t, .expr] | @tsv' \
   deploy/grafana/dashboards/semdex.json > "$TMP/panels.tsv"
[ "$(wc -l < "$TMP/panels.tsv")" -ge 30 ] || fail "the dashboard has too few queries"
empty=""
while IFS=$'\t' read -r title expr; do
  q "$expr" | jq -e 'length > 0' >/dev/null || empty="$empty
  panel '$title': $expr"
done < "$TMP/panels.tsv"
[ -z "$empty" ] || fail "dashboard queries returning no data:$empty"
