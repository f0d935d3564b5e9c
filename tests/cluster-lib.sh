# Helpers for the cluster end-to-end tests (sourced after e2e-lib.sh): a
# Redis Cluster with the semdex module, gateways and HAProxy on loopback,
# started by scripts/cluster in $TMP/cluster and stopped when the test exits.

# cluster_up [scripts/cluster up options...]: starts the cluster on a free
# port range; sets CLUSTER_BASE, SEEDS and BASE (the HAProxy URL).
# cluster_again starts what is not running (after a kill or a down) with the
# same options.
export SEMDEX_REDIS_ARGS="--enable-debug-command local ${SEMDEX_REDIS_ARGS:-}"
CLUSTER_OPTS=()
cluster_again() {
  BASE=$(scripts/cluster up --dir "$CLUSTER_DIR" --port-base "$CLUSTER_BASE" --node-timeout 2000 "${CLUSTER_OPTS[@]}" \
         2>"$TMP/cluster-again.log" | tail -1) || fail "scripts/cluster up (again): $(tail "$TMP/cluster-again.log")"
}
cluster_up() {
  CLUSTER_OPTS=("$@")
  local try
  for try in 1 2 3; do
    # Below the kernel's ephemeral ports (32768 and up), cluster bus ports
    # (+10000) included: an outgoing connection holding one makes bind fail.
    CLUSTER_BASE=$((12000 + (RANDOM % 100) * 100))
    CLUSTER_DIR=$TMP/cluster
    cleanup_hooks+=("scripts/cluster down --dir $CLUSTER_DIR >/dev/null 2>&1")
    if BASE=$(scripts/cluster up --dir "$CLUSTER_DIR" --port-base "$CLUSTER_BASE" --node-timeout 2000 "$@" \
              2>"$TMP/cluster-up.log" | tail -1); then
      [ -n "$BASE" ] || fail "scripts/cluster up printed no URL"
      SEEDS=127.0.0.1:$CLUSTER_BASE,127.0.0.1:$((CLUSTER_BASE + 1)),127.0.0.1:$((CLUSTER_BASE + 2))
      return 0
    fi
    grep -qi "address already in use" "$CLUSTER_DIR"/*/redis.log "$CLUSTER_DIR"/*.log 2>/dev/null || break
    scripts/cluster down --dir "$CLUSTER_DIR" --purge >/dev/null 2>&1 || true
  done
  fail "scripts/cluster up failed: $(tail -20 "$TMP/cluster-up.log")"
}

# rcli PORT ARGS...: redis-cli against one node.
rcli() { local p=$1; shift; redis-cli -p "$p" "$@"; }

# master_ports / replica_ports: the nodes by their current role.
node_ports_by_role() {
  scripts/cluster status --dir "$CLUSTER_DIR" | awk -v r="$1" '$1 == "redis" && $3 == r { split($2, a, ":"); print a[2] }'
}

# test_records N FILE: the first N records of the corpus stream that
# scripts/test-data embedded (their titles' vectors are the first N rows of
# build/testdata/titles-50000.npy).
test_records() {
  local src=../shared/datasets/arxiv
  (set +o pipefail; for f in "$src"/*.jsonl.zst; do zstd -dc "$f" 2>/dev/null || break; done | head -n "$1" > "$2")
  [ "$(wc -l < "$2")" = "$1" ] || fail "cannot read $1 records from $src"
  [ -s build/testdata/titles-50000.npy ] || fail "build/testdata/titles-50000.npy is missing: run scripts/test-data"
}

# top_ids URL QUERY K [EF]: the ids of the top K papers for QUERY, one per line.
top_ids() {
  local body
  body=$(jq -cn --arg q "$2" --argjson k "$3" --argjson ef "${4:-0}" \
         '{query: $q, top_k: $k} + (if $ef > 0 then {ef: $ef} else {} end)')
  curl -sf -X POST "$1/search" -H 'Content-Type: application/json' --data-binary "$body" | jq -r '.results[].paper_id'
}

# search_loop URL OUT SECONDS: searches in a loop for SECONDS, one line per
# request to OUT: "<unix-ms> <http-status> <number of results>". Every other
# query is new (encoded: stage timings keep growing), the rest repeat one of
# ten (query cache hits).
search_loop() {
  local url=$1 out=$2 end=$((SECONDS + $3)) i=0 code n
  while [ $SECONDS -lt $end ]; do
    i=$((i + 1))
    code=$(curl -s -m 5 -o "$out.body" -w '%{http_code}' -X POST "$url/search" -H 'Content-Type: application/json' \
           --data-binary "{\"query\": \"search $((i % 2 ? i : i % 10)) neural networks and quantum fields\", \"top_k\": 10}" || true)
    n=$(jq -r '.results | length' "$out.body" 2>/dev/null || echo 0)
    echo "$(date +%s%3N) $code $n" >> "$out"
    if [ "$code" != 200 ]; then { cat "$out.body"; echo; } >> "$out.errors"; fi
  done
}

# write_loop URL PREFIX OUT SECONDS: upserts papers PREFIX-1, PREFIX-2, ...
# one per request for SECONDS; appends the acknowledged (200) ids to OUT.
write_loop() {
  local url=$1 prefix=$2 out=$3 end=$((SECONDS + $4)) i=0 code
  while [ $SECONDS -lt $end ]; do
    i=$((i + 1))
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST "$url/papers" -H 'Content-Type: application/json' \
           ${SEMDEX_API_KEY:+-H "X-API-Key: $SEMDEX_API_KEY"} \
           --data-binary "{\"papers\": [{\"id\": \"$prefix.$i\", \"title\": \"Written paper $i\", \"abstract\": \"Acknowledged writes survive.\", \"categories\": \"cs.DC\", \"embedding\": [$(seq -s, 1 384 | sed "s/[0-9]*/0.$((i % 9 + 1))/g")]}]}" || true)
    if [ "$code" = 200 ]; then echo "$prefix.$i" >> "$out"; fi
  done
  return 0
}

# expect_papers URL FILE: every id in FILE is served by GET /papers/{id}.
expect_papers() {
  local id missing=0
  while read -r id; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/papers/$id")" = 200 ] || { echo "missing: $id" >&2; missing=$((missing + 1)); }
  done < "$2"
  [ $missing = 0 ] || fail "$missing of $(wc -l < "$2") acknowledged papers are missing"
}

# key_owner KEY [ASK-PORT]: the port of the master that holds KEY's slot,
# from the MOVED redirection of a node that is not it.
key_owner() {
  local ask=${2:-$CLUSTER_BASE} r
  r=$(rcli "$ask" type "$1" 2>&1)
  case $r in
    *MOVED*) r=${r##*:}; echo "${r//[^0-9]/}" ;;
    *) echo "$ask" ;;
  esac
}

# node_id PORT: the cluster node id of the node on PORT.
node_id() { rcli "$1" cluster myid; }

# shard_key I: the name of shard key I (as the gateway names it), found on
# the masters.
shard_key() {
  local p k
  for p in $(node_ports_by_role master); do
    k=$(rcli "$p" keys "semdex:{shard-$(printf %02d "$1")*" | head -1)
    [ -n "$k" ] && { echo "$k"; return 0; }
  done
  fail "no shard key $1 on any master"
}

# cluster_with_papers N [cluster_up options...]: a cluster holding the first
# N test records (ingested through --cluster with their precomputed vectors).
cluster_with_papers() {
  local n=$1; shift
  test_records "$n" "$TMP/recs.jsonl"
  cluster_up "$@"
  expect_status 0 "$SEMDEX" ingest --cluster "$SEEDS" --embeddings build/testdata/titles-50000.npy --quiet "$TMP/recs.jsonl"
}

# search_all QUERIES: the top-10 ids of each query (a line of QUERIES) through
# $BASE, "FAILED" for a query that failed.
search_all() { local q; while IFS= read -r q; do top_ids "$BASE" "$q" 10 || echo FAILED; done < "$1"; }
