# tests/e2e/redis-module.sh again with the module built with AddressSanitizer
# and UBSan (make module-asan): any memory error or undefined behaviour in a
# command, the threaded search, RDB or AOF aborts the server, which fails the
# checks.
set -euo pipefail
[ -f build/asan/semdex.so ] || { echo "FAIL: build/asan/semdex.so is missing (make module-asan)" >&2; exit 1; }
SEMDEX_MODULE=build/asan/semdex.so exec bash tests/e2e/redis-module.sh
