# The CLI dispatcher: help, version, unknown commands.
. tests/e2e-lib.sh
expect_status 0 "$SEMDEX" --help
expect_grep '^usage: semdex' "$TMP/out"
expect_status 2 "$SEMDEX"
expect_grep '^usage: semdex' "$TMP/err"
expect_status 2 "$SEMDEX" no-such-command
expect_grep "unknown command 'no-such-command'" "$TMP/err"
expect_status 0 "$SEMDEX" version
expect_grep '^semdex ' "$TMP/out"
expect_status 0 "$SEMDEX" info
expect_grep '^cpus: [0-9]+' "$TMP/out"
