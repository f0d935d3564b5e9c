# The setup scripts can be re-run and then change nothing.
. tests/e2e-lib.sh
expect_status 0 scripts/setup --test
expect_status 0 scripts/get-model
[ ! -s "$TMP/out" ] || fail "get-model re-downloaded a verified model: $(cat "$TMP/out")"
expect_status 0 scripts/get-data
expect_status 0 scripts/get-redismodule-h
[ ! -s "$TMP/out" ] || fail "get-redismodule-h fetched the header again: $(cat "$TMP/out")"
[ -s build/include/redismodule.h ] || fail "no build/include/redismodule.h"
( cd models/all-MiniLM-L6-v2 && sha256sum -c --quiet SHA256SUMS ) || fail "model checksums"
# A tampered model is detected and replaced.
if [ -w models/all-MiniLM-L6-v2/vocab.txt ]; then
  cp models/all-MiniLM-L6-v2/vocab.txt "$TMP/vocab.bak"
  cleanup_hooks+=("cp '$TMP/vocab.bak' models/all-MiniLM-L6-v2/vocab.txt")
  echo tampered >> models/all-MiniLM-L6-v2/vocab.txt
  expect_status 0 scripts/get-model
  expect_grep 'ready \(SHA-256 verified\)' "$TMP/out"
fi
