#!/usr/bin/env bash
# Crash-safety loop: kills -9 the server (or an ingest) at random moments,
# restarts it, and checks that what was acknowledged survived and nothing
# was half-applied. Each iteration runs one scenario, in turn:
#
#   http     3 workers upsert batches of 1-3 papers (each paper's title and
#            vector name its version) and delete papers, over HTTP, on one
#            collection kept across iterations; kill -9 after a random delay.
#            Then: every acknowledged upsert is there at its version (or at
#            the version of the one batch its worker had in flight), every
#            acknowledged delete stays deleted, an in-flight batch is all
#            there or not at all, GET and /similar (the index) agree for every
#            id, /similar never returns an absent paper, and the count in
#            /collections/info equals the papers found.
#   ingest   `semdex ingest` of N records in batches of 16 into a new
#            collection, killed after a random delay: the papers present are
#            exactly the first k records, k a multiple of 16 (or N), each
#            whole (document and vector); a re-run completes it.
#   torn     one more acknowledged batch, kill -9, then the log cut at a
#            random byte inside that last record: the server starts (a torn
#            tail, dropped with a warning) without that batch, with the rest.
#   snapshot a graceful stop (checkpoint), one random byte of a random
#            snapshot flipped: the start is refused with a message naming
#            the file; with the byte restored it starts.
#
#   tests/crashloop.sh [ITERATIONS]     (CRASHLOOP_ITERATIONS, default 8)
#
# `make crashloop` (and `make fuzz`) runs 200; tests/e2e/crash-loop.sh a few.
# SEMDEX=build/asan/semdex runs it against the sanitizer build. Exits 0 when
# every check passed; the first failure stops it and names the iteration.
cd "$(dirname "$0")/.."
. tests/e2e-lib.sh
ITER=${1:-${CRASHLOOP_ITERATIONS:-8}}
DB=$TMP/db
W=3          # HTTP workers
K=12         # ids per worker
say() { echo "crashloop: $*" >&2; }

vector() { # vector ID_NUM VER: 384 numbers, a peak where (id, version) says
  jq -nc --argjson p $((($2 * 7 + $1) % 384)) '[range(384)] | map(if . == $p then 1 else 0.01 end)'
}

# model/state-W: "id ver" of every paper the worker believes present.
http_worker() { # http_worker W ITER: writes until the server dies
  local w=$1 it=$2 n=0 log="$TMP/ops-$w"
  : > "$log"
  while :; do
    n=$((n + 1))
    local ver=$((it * 10000 + n)) code
    if [ $((RANDOM % 4)) = 0 ] && [ -s "$TMP/state-$w" ]; then
      local id
      id=$(shuf -n1 "$TMP/state-$w" | cut -d' ' -f1)
      echo "P D $id" >> "$log"
      code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$BASE/papers/$id" || true)
      [ "$code" = 200 ] || break
      echo "A D $id" >> "$log"
      grep -v "^$id " "$TMP/state-$w" > "$TMP/state-$w.tmp" || true
      mv "$TMP/state-$w.tmp" "$TMP/state-$w"
    else
      local m=$((1 + RANDOM % 3)) ids="" papers="" k
      for k in $(shuf -i 0-$((K - 1)) -n $m); do
        local id="h$w-$k"
        ids="$ids $id"
        papers="$papers${papers:+,}{\"id\":\"$id\",\"title\":\"crash paper $id v$ver\",\"embedding\":$(vector $((w * K + k)) $ver)}"
      done
      echo "P U $ver$ids" >> "$log"
      code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/papers" -H 'Content-Type: application/json' \
        --data-binary "{\"papers\":[$papers]}" || true)
      [ "$code" = 200 ] || break
      echo "A U $ver$ids" >> "$log"
      for id in $ids; do
        { grep -v "^$id " "$TMP/state-$w" || true; echo "$id $ver"; } > "$TMP/state-$w.tmp"
        mv "$TMP/state-$w.tmp" "$TMP/state-$w"
      done
    fi
  done
}

# paper_version ID: prints the version the server holds (title), or "absent";
# also checks that the index has the paper exactly when the document is there.
paper_version() {
  local id=$1 code scode
  code=$(curl -s -o "$TMP/p.json" -w '%{http_code}' "$BASE/papers/$id")
  scode=$(curl -s -o "$TMP/s.json" -w '%{http_code}' "$BASE/papers/$id/similar?top_k=3")
  if [ "$code" = 404 ]; then
    [ "$scode" = 404 ] || fail "iteration $it: $id has no document but /similar answers $scode"
    echo absent
  elif [ "$code" = 200 ]; then
    [ "$scode" = 200 ] || fail "iteration $it: $id has a document but /similar answers $scode: $(cat "$TMP/s.json")"
    jq -r '.title' "$TMP/p.json" | sed -n 's/^crash paper [^ ]* v\([0-9]*\)$/\1/p'
  else
    fail "iteration $it: GET /papers/$id answered $code"
  fi
}

check_http() {
  local w k id found=0
  for w in $(seq 1 $W); do
    # The worker's belief (acknowledged ops) and the op it had in flight.
    local pending
    pending=$(tail -n1 "$TMP/ops-$w" 2>/dev/null | grep '^P ' || true)
    local pver="" pids="" pkind=""
    if [ -n "$pending" ]; then
      pkind=$(echo "$pending" | cut -d' ' -f2)
      if [ "$pkind" = U ]; then pver=$(echo "$pending" | cut -d' ' -f3); pids=$(echo "$pending" | cut -d' ' -f4-)
      else pids=$(echo "$pending" | cut -d' ' -f3); fi
    fi
    local applied="" notapplied=""
    : > "$TMP/truth-$w"
    for k in $(seq 0 $((K - 1))); do
      id="h$w-$k"
      local want got
      want=$(grep "^$id " "$TMP/state-$w" | cut -d' ' -f2 || true)
      got=$(paper_version "$id")
      [ "$got" = absent ] || { found=$((found + 1)); echo "$id $got" >> "$TMP/truth-$w"; }
      [ "$got" = absent ] && got=""
      if [[ " $pids " == *" $id "* ]]; then
        local newv=$pver; [ "$pkind" = D ] && newv=""
        if [ "$got" = "$newv" ] && [ "$got" != "$want" ]; then applied="$applied $id"
        elif [ "$got" = "$want" ] && [ "$got" != "$newv" ]; then notapplied="$notapplied $id"
        elif [ "$got" != "$want" ]; then
          fail "iteration $it: $id holds version '${got:-absent}', acknowledged '${want:-absent}', in flight '${newv:-absent}'"
        fi
      elif [ "$got" != "$want" ]; then
        fail "iteration $it: $id holds version '${got:-absent}' but '${want:-absent}' was acknowledged (worker $w)"
      fi
    done
    [ -n "$applied" ] && [ -n "$notapplied" ] &&
      fail "iteration $it: the batch in flight was half applied: applied$applied, not$notapplied"
    mv "$TMP/truth-$w" "$TMP/state-$w" # what is there now is the new belief
  done
  # The index agrees with the documents: counts, and no hit is an absent paper.
  http GET /collections/info
  expect_http 200 ".count == $found"
  cat "$TMP"/state-* | cut -d' ' -f1 | sort > "$TMP/present"
  local hit
  for id in $(shuf -n 5 "$TMP/present" 2>/dev/null); do
    curl -s "$BASE/papers/$id/similar?top_k=10" | jq -r '.results[].paper_id' > "$TMP/hits"
    while read -r hit; do
      grep -qx "$hit" "$TMP/present" || fail "iteration $it: /similar returned $hit, which is not stored"
    done < "$TMP/hits"
  done
  LAST_FOUND=$found
}

scenario_http() {
  start_server "$DB"
  local w
  for w in $(seq 1 $W); do http_worker "$w" "$it" & done
  sleep "$((RANDOM % 2)).$((2 + RANDOM % 8))"
  kill -9 "$SERVER_PID"
  wait
  start_server "$DB"
  check_http
  stop_server
}

scenario_torn() {
  start_server "$DB"
  # Settle the workers' beliefs first (nothing in flight).
  for w in $(seq 1 $W); do : > "$TMP/ops-$w"; done
  local wal s0 s1 cut
  wal=$(ls "$DB"/wal-*.log)
  s0=$(stat -c %s "$wal")
  post_json /papers "{\"papers\":[{\"id\":\"torn-$it\",\"title\":\"crash paper torn-$it v1\",\"embedding\":$(vector 7 "$it")}]}"
  expect_http 200
  s1=$(stat -c %s "$wal")
  kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  [ "$s1" -gt "$s0" ] || fail "iteration $it: the log did not grow ($s0 -> $s1)"
  cut=$((s0 + RANDOM % (s1 - s0)))
  truncate -s "$cut" "$wal"
  start_server "$DB"
  if [ "$cut" -gt "$s0" ]; then
    grep -q "truncating a torn tail of $((cut - s0)) bytes" "$TMP/server.log" ||
      fail "iteration $it: no torn-tail warning for a cut at $cut (record $s0..$s1)"
  fi
  http GET "/papers/torn-$it"
  expect_http 404
  check_http
  stop_server
}

scenario_snapshot() {
  start_server "$DB"
  stop_server # checkpoints: the snapshots hold everything
  local snap size off orig
  snap=$(ls "$DB"/shard-*.snap | shuf -n1)
  size=$(stat -c %s "$snap")
  off=$(( (RANDOM * 32768 + RANDOM) % size ))
  orig=$(od -An -tu1 -j "$off" -N1 "$snap" | tr -d ' ')
  printf "$(printf '\\%03o' $(( (orig ^ (1 << (RANDOM % 8))) )))" |
    dd of="$snap" bs=1 seek="$off" count=1 conv=notrunc status=none
  local rc=0
  timeout 120 "$SEMDEX" serve --data "$DB" --port 1 > "$TMP/snap.out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || fail "iteration $it: a flipped bit at byte $off of $snap: serve exited $rc: $(tail -3 "$TMP/snap.out")"
  grep -q "$(basename "$snap")" "$TMP/snap.out" ||
    fail "iteration $it: the refusal does not name $(basename "$snap"): $(tail -3 "$TMP/snap.out")"
  grep -q listening "$TMP/snap.out" && fail "iteration $it: said listening over a damaged snapshot"
  printf "$(printf '\\%03o' "$orig")" | dd of="$snap" bs=1 seek="$off" count=1 conv=notrunc status=none
  start_server "$DB"
  check_http
  stop_server
}

scenario_ingest() {
  local d="$TMP/ingest-$it" rc=0 n
  n=$(wc -l < "$TMP/records.jsonl")
  "$SEMDEX" ingest --data "$d" --batch 16 --quiet "$TMP/records.jsonl" > "$TMP/ingest.log" 2>&1 &
  local pid=$!
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  if [ ! -e "$d/MANIFEST" ]; then
    [ "$rc" != 0 ] || fail "iteration $it: ingest finished without a MANIFEST"
    rm -rf "$d"; return 0 # killed before the collection existed
  fi
  start_server "$d"
  http GET /collections/info
  local count
  count=$(jq .count "$TMP/body")
  [ "$rc" = 0 ] && [ "$count" != "$n" ] && fail "iteration $it: ingest exited 0 with $count of $n papers"
  [ $((count % 16)) = 0 ] || [ "$count" = "$n" ] ||
    fail "iteration $it: $count papers after a killed ingest: not whole batches of 16"
  local i=0 id code
  while read -r id; do
    i=$((i + 1))
    code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/papers/$id")
    if [ $i -le "$count" ]; then
      [ "$code" = 200 ] || fail "iteration $it: record $i ($id) of the first $count is missing ($code)"
      code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/papers/$id/similar?top_k=1")
      [ "$code" = 200 ] || fail "iteration $it: record $i ($id) has a document but no vector ($code)"
    else
      [ "$code" = 404 ] || fail "iteration $it: record $i ($id) is there but only $count papers are"
      [ $i -gt $((count + 20)) ] && break
    fi
  done < "$TMP/ids"
  stop_server
  if [ $((it % 4)) = 1 ]; then # a re-run upserts the rest
    "$SEMDEX" ingest --data "$d" --batch 64 --quiet "$TMP/records.jsonl" > "$TMP/ingest.log" 2>&1 ||
      fail "iteration $it: ingest re-run failed: $(tail -3 "$TMP/ingest.log")"
    grep -q "the collection holds $n\$" "$TMP/ingest.log" || fail "iteration $it: re-run: $(tail -2 "$TMP/ingest.log")"
  fi
  rm -rf "$d"
}

sample_records 200 "$TMP/records.jsonl"
jq -r .id "$TMP/records.jsonl" > "$TMP/ids"
for w in $(seq 1 $W); do : > "$TMP/state-$w"; : > "$TMP/ops-$w"; done
scenarios=(http ingest http torn http snapshot)
for it in $(seq 1 "$ITER"); do
  s=${scenarios[$(( (it - 1) % ${#scenarios[@]} ))]}
  : > "$TMP/server.log"
  "scenario_$s"
  say "iteration $it/$ITER ($s) ok${LAST_FOUND:+, $LAST_FOUND papers}"
done
say "$ITER iterations passed"
