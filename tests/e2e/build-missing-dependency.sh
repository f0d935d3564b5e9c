# A missing library stops the build with one line naming the package.
. tests/e2e-lib.sh
expect_status 1 env PKG_CONFIG_LIBDIR="$TMP/empty" PKG_CONFIG_PATH= scripts/configure
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "expected one line, got: $(cat "$TMP/err")"
expect_grep '^semdex: missing dependency: libmicrohttpd \(install: apt-get install libmicrohttpd-dev' "$TMP/err"
# The same through make, from a fresh build directory.
expect_status 2 env PKG_CONFIG_LIBDIR="$TMP/empty" PKG_CONFIG_PATH= make --no-print-directory BUILD="$TMP/build"
expect_grep 'missing dependency: libmicrohttpd' "$TMP/err"
