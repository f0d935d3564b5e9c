# kill -9 in the middle of a write loop: after a restart every acknowledged
# paper is there.
. tests/e2e-lib.sh
start_server "$TMP/db"

writer() { # writer N: posts papers w<N>-<i> until the server dies
  local n=$1 i=0
  while :; do
    i=$((i + 1))
    local vec
    vec=$(jq -nc --argjson a $((n * 1000 + i)) '[range(384)] | map(if . == ($a % 384) then 1 else 0.01 end)')
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/papers" -H 'Content-Type: application/json' \
      --data-binary "{\"papers\": [{\"id\": \"w$n-$i\", \"title\": \"crash test paper $n $i\", \"embedding\": $vec}]}" || true)
    [ "$code" = 200 ] || break
    echo "w$n-$i" >> "$TMP/acked-$n"
  done
}
for n in 1 2 3; do writer $n & done
# Let writes flow, then kill the server without warning.
deadline=$((SECONDS + 60))
while [ "$(cat "$TMP"/acked-* 2>/dev/null | wc -l)" -lt 150 ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
kill -9 "$SERVER_PID"
wait
acked=$(cat "$TMP"/acked-* | wc -l)
[ "$acked" -ge 150 ] || fail "only $acked writes were acknowledged before the kill"

start_server "$TMP/db"
missing=0
while read -r id; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/papers/$id")
  [ "$code" = 200 ] || { echo "missing after restart: $id ($code)"; missing=$((missing + 1)); }
done < <(cat "$TMP"/acked-*)
[ $missing = 0 ] || fail "$missing of $acked acknowledged papers lost"
http GET /collections/info
expect_http 200 ".count >= $acked"
stop_server
