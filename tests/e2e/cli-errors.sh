# The CLI refuses what it cannot do, clearly and before it claims anything:
# options are named, every subcommand answers --help, a mistyped --data is
# not turned into a new collection, `serve` fails before "listening" on a
# locked directory or a bad model, and a lost write-ahead log stops the start
# until the operator overrides it.
. tests/e2e-lib.sh

# Every subcommand: --help and -h print its usage and exit 0.
for cmd in tokenize embed ingest serve search info version; do
  for h in --help -h; do
    expect_status 0 "$SEMDEX" "$cmd" "$h"
    expect_grep "^usage: semdex $cmd" "$TMP/out"
  done
done
expect_status 0 "$SEMDEX" info --help
grep -q '^cpus:' "$TMP/out" && fail "info --help ran info"

# An unknown option is named (exit 2), a missing value too.
for cmd in tokenize embed ingest serve search info version; do
  expect_status 2 "$SEMDEX" "$cmd" --bogus
  expect_grep "unknown option '--bogus'" "$TMP/err"
done
expect_status 2 "$SEMDEX" serve --data
expect_grep "--data needs a value" "$TMP/err"
expect_status 2 "$SEMDEX" search --data "$TMP/x" -k
expect_grep "-k needs a value" "$TMP/err"

# A missing collection is an error, and nothing is created.
expect_status 1 "$SEMDEX" search --data "$TMP/typo/path" "some query"
expect_grep "typo/path: no such directory" "$TMP/err"
[ -e "$TMP/typo" ] && fail "search created $TMP/typo"
expect_status 1 timeout 60 "$SEMDEX" serve --data "$TMP/typo/path" --port 1
expect_grep "no such directory" "$TMP/err"
grep -q listening "$TMP/err" && fail "serve said listening: $(cat "$TMP/err")"
[ -e "$TMP/typo" ] && fail "serve created $TMP/typo"
mkdir "$TMP/empty"
expect_status 1 "$SEMDEX" search --data "$TMP/empty" "some query"
expect_grep "holds no semdex collection" "$TMP/err"
[ -z "$(ls -A "$TMP/empty")" ] || fail "search wrote into an empty directory: $(ls "$TMP/empty")"

# serve --create makes one (start_server passes it); ingest creates one too.
start_server "$TMP/db"
post_json /papers '{"papers": [{"id": "2401.00001", "title": "A paper about crash safety"}]}'
expect_http 200

# A second server on the locked directory fails before listening.
port2=$((PORT + 1))
expect_status 1 timeout 60 "$SEMDEX" serve --data "$TMP/db" --port "$port2"
expect_grep "in use by another semdex process" "$TMP/err"
grep -q listening "$TMP/err" && fail "serve said listening on a locked directory: $(cat "$TMP/err")"
# A bad model: the same.
stop_server
expect_status 1 timeout 60 "$SEMDEX" serve --data "$TMP/db" --port "$port2" --model "$TMP/no-model"
expect_grep "no-model" "$TMP/err"
grep -q listening "$TMP/err" && fail "serve said listening with a bad model: $(cat "$TMP/err")"

# The write-ahead log lost: refused, naming the file and the override.
start_server "$TMP/db"
post_json /papers '{"papers": [{"id": "2401.00002", "title": "Only in the log"}]}'
expect_http 200
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
wal=$(ls "$TMP"/db/wal-*.log)
: > "$wal"
expect_status 1 timeout 60 "$SEMDEX" serve --data "$TMP/db" --port "$port2"
expect_grep "$(basename "$wal"): empty write-ahead log" "$TMP/err"
expect_grep "--accept-log-loss" "$TMP/err"
grep -q listening "$TMP/err" && fail "serve said listening over a lost log"
rm "$wal"
expect_status 1 timeout 60 "$SEMDEX" search --data "$TMP/db" "crash safety"
expect_grep "missing write-ahead log" "$TMP/err"
# The override opens what the snapshots hold and keeps going from there.
start_server "$TMP/db" --accept-log-loss
expect_grep "accepting the loss as asked" "$TMP/server.log"
http GET /papers/2401.00001
expect_http 200
http GET /papers/2401.00002
expect_http 404
stop_server
start_server "$TMP/db"
http GET /papers/2401.00001
expect_http 200
stop_server
