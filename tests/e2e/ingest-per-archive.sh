# `semdex ingest --per-archive N` (what `make run`'s stratified sample uses):
# at most N papers of each arXiv archive, in input order, the rest passed
# over and counted; with --limit the total is capped too. Checked against
# the archives jq finds in the same records.
. tests/e2e-lib.sh
sample_records 2000 "$TMP/sample.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" --quiet --per-archive 2 "$TMP/sample.jsonl"
taken=$(sed -n 's/^ingest: at most 2 per archive, \([0-9]*\) papers passed over; taken: //p' "$TMP/err")
[ -n "$taken" ] || fail "no per-archive summary: $(cat "$TMP/err")"
# What the records hold: each archive's count, capped at 2, in first-seen order.
want=$(jq -r '(.categories // "" | split(" ")[0] | split(".")[0]) | if . == "" then "(none)" else . end' \
         "$TMP/sample.jsonl" | awk '!($0 in n) { order[++k] = $0 } { n[$0]++ }
         END { for (i = 1; i <= k; i++) printf "%s%s=%d", (i > 1 ? " " : ""), order[i], (n[order[i]] > 2 ? 2 : n[order[i]]) }')
[ "$taken" = "$want" ] || fail "taken: $taken; expected: $want"
total=0; for kv in $taken; do total=$((total + ${kv#*=})); done
[ "$total" -ge 10 ] || fail "only $total papers: the sample spans too few archives"
expect_grep "ingest: $total papers upserted .* the collection holds $total\$" "$TMP/err"
expect_grep "at most 2 per archive, $((2000 - total)) papers passed over" "$TMP/err"
# --limit caps the total; a bad value is refused.
expect_status 0 "$SEMDEX" ingest --data "$TMP/db2" --quiet --per-archive 5 --limit 7 "$TMP/sample.jsonl"
expect_grep "ingest: 7 papers upserted" "$TMP/err"
expect_status 2 "$SEMDEX" ingest --data "$TMP/db3" --per-archive 0 "$TMP/sample.jsonl"
expect_grep "per-archive" "$TMP/err"
