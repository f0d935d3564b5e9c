# semdex tokenize / semdex embed: output formats, options and errors.
. tests/e2e-lib.sh

# tokenize: exact ids, one JSON array per text.
expect_status 0 "$SEMDEX" tokenize "graph neural networks for molecules" "Café"
[ "$(sed -n 1p "$TMP/out")" = "[101, 10629, 15756, 6125, 2005, 10737, 102]" ] || fail "ids: $(cat "$TMP/out")"
[ "$(sed -n 2p "$TMP/out")" = "[101, 7668, 102]" ] || fail "ids: $(cat "$TMP/out")"
printf '%s\n' '"graph neural networks for molecules"' '""' '"\u00e9t\u00e9 \ud83d\ude00"' > "$TMP/in.jsonl"
expect_status 0 "$SEMDEX" tokenize --jsonl "$TMP/in.jsonl"
[ "$(wc -l < "$TMP/out")" = 3 ] || fail "expected 3 lines"
[ "$(sed -n 2p "$TMP/out")" = "[101, 102]" ] || fail "empty text: $(sed -n 2p "$TMP/out")"
[ "$(sed -n 3p "$TMP/out")" = "[101, 3802, 2063, 100, 102]" ] || fail "unicode: $(sed -n 3p "$TMP/out")"
expect_status 0 "$SEMDEX" tokenize --jsonl - < "$TMP/in.jsonl"
[ "$(wc -l < "$TMP/out")" = 3 ] || fail "stdin: expected 3 lines"
# Truncation to max_seq_length (256), [SEP] last.
long=$(printf 'word %.0s' $(seq 400))
expect_status 0 "$SEMDEX" tokenize "$long"
[ "$(tr ',' '\n' < "$TMP/out" | wc -l)" = 256 ] || fail "not truncated to 256"
expect_grep ', 102\]$' "$TMP/out"
# Invalid UTF-8 is rejected with the offset.
expect_status 1 "$SEMDEX" tokenize "$(printf 'ab\xffcd')"
expect_grep 'invalid UTF-8 at byte offset 2' "$TMP/err"
expect_status 2 "$SEMDEX" tokenize
expect_status 0 "$SEMDEX" tokenize --help
expect_grep 'usage: semdex tokenize' "$TMP/out"

# embed: one array of 384 floats per text, L2-normalised, equal to the
# sentence-transformers fixture (first text of tests/fixtures/model/embed.jsonl).
first=$(head -1 tests/fixtures/model/embed.jsonl)
text=$(printf '%s' "$first" | sed 's/^"//; s/"$//')
expect_status 0 "$SEMDEX" embed "$text"
[ "$(wc -l < "$TMP/out")" = 1 ] || fail "expected one line"
tr -d '[] ' < "$TMP/out" | tr ',' '\n' > "$TMP/got"
[ "$(wc -l < "$TMP/got")" = 384 ] || fail "expected 384 floats"
od -An -v -t f4 -N 1536 tests/fixtures/model/embed.f32 | tr -s ' ' '\n' | sed '/^$/d' > "$TMP/want"
paste "$TMP/got" "$TMP/want" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n += $1 * $1 }
  END { if (m > 1e-4 || n < 0.9999 || n > 1.0001) { print "max diff " m ", norm^2 " n; exit 1 } }' ||
  fail "embedding differs from the reference"
# --jsonl gives the same vectors, in order; --threads changes nothing.
head -3 tests/fixtures/model/embed.jsonl > "$TMP/three.jsonl"
expect_status 0 "$SEMDEX" embed --threads 1 --jsonl "$TMP/three.jsonl"
[ "$(wc -l < "$TMP/out")" = 3 ] || fail "expected 3 lines"
head -1 "$TMP/out" | tr -d '[] ' | tr ',' '\n' > "$TMP/got1"
paste "$TMP/got" "$TMP/got1" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5) exit 1 }' ||
  fail "--jsonl and TEXT differ"
# --npy: a float32 .npy of shape (3, 384).
expect_status 0 "$SEMDEX" embed --jsonl "$TMP/three.jsonl" --npy "$TMP/e.npy"
[ "$(stat -c %s "$TMP/e.npy")" = $((128 + 3 * 384 * 4)) ] || fail "npy size"
head -c 128 "$TMP/e.npy" | grep -q "'descr': '<f4', 'fortran_order': False, 'shape': (3, 384)" || fail "npy header"
expect_grep 'embed: 3/3 texts' "$TMP/err"
od -An -v -t f4 -j 128 -N 1536 "$TMP/e.npy" | tr -s ' ' '\n' | sed '/^$/d' > "$TMP/npy1"
paste "$TMP/got" "$TMP/npy1" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5) exit 1 }' ||
  fail "--npy and TEXT differ"
# Empty text: a valid embedding.
expect_status 0 "$SEMDEX" embed ""
[ "$(tr ',' '\n' < "$TMP/out" | wc -l)" = 384 ] || fail "empty text"

# Errors: bad lines, invalid UTF-8, bad options, missing or broken models.
printf '%s\n' '"ok"' '{"not": "a string"}' > "$TMP/bad.jsonl"
expect_status 1 "$SEMDEX" embed --jsonl "$TMP/bad.jsonl"
expect_grep "bad.jsonl:2: expected one JSON string per line" "$TMP/err"
printf '"ok"\n"b\xc3("\n' > "$TMP/utf.jsonl"
expect_status 1 "$SEMDEX" embed --jsonl "$TMP/utf.jsonl" --npy "$TMP/x.npy"
expect_grep "utf.jsonl:2: invalid UTF-8 at byte offset 1" "$TMP/err"
[ ! -e "$TMP/x.npy" ] || fail "partial .npy left behind"
expect_status 1 "$SEMDEX" embed "ok" "$(printf 'x\xe2\x82')"
expect_grep "argument 2: invalid UTF-8 at byte offset 1" "$TMP/err"
expect_status 2 "$SEMDEX" embed --threads 0 x
expect_status 2 "$SEMDEX" embed --npy "$TMP/y.npy" x
expect_status 1 "$SEMDEX" embed --model "$TMP/nope" x
expect_grep "nope/config.json: cannot open" "$TMP/err"
cp -r tests/fixtures/model/bert-tiny-f32 "$TMP/m"
expect_status 0 "$SEMDEX" embed --model "$TMP/m" "graph data"
head -c 30000 tests/fixtures/model/bert-tiny-f32/model.safetensors > "$TMP/m/model.safetensors"
expect_status 1 "$SEMDEX" embed --model "$TMP/m" x
expect_grep "model.safetensors: tensor '.*' ends at byte [0-9]+ of a [0-9]+-byte data section \(truncated file\?\)" "$TMP/err"
echo '{' > "$TMP/m/config.json"
expect_status 1 "$SEMDEX" embed --model "$TMP/m" x
expect_grep "m/config.json: not a JSON object" "$TMP/err"

# --int8: same format, close to fp32 (cosine > 0.99 on this text).
expect_status 0 "$SEMDEX" embed --int8 "$text"
tr -d '[] ' < "$TMP/out" | tr ',' '\n' > "$TMP/got8"
[ "$(wc -l < "$TMP/got8")" = 384 ] || fail "int8: expected 384 floats"
paste "$TMP/got" "$TMP/got8" | awk '{ d += $1 * $2 } END { if (d < 0.99) { print "cosine " d; exit 1 } }' ||
  fail "int8 embedding far from fp32"
