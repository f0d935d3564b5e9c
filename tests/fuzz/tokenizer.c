/*
 * tokenizer.c - libFuzzer target for UTF-8 validation and the WordPiece
 * tokenizer (src/text/).
 *
 * Each input is a text. Checked on every input: encoding succeeds exactly
 * when sx_utf8_check accepts the bytes; ids are in the vocabulary, [CLS]
 * first and [SEP] last, at most max_seq_length of them; the truncated ids
 * are the untruncated ones cut; normalisation + pre-tokenisation runs too.
 * The vocabulary is all-MiniLM-L6-v2's (models/, fetched by scripts/get-model)
 * or, without it, the small test fixture's. Build and run:
 *
 *     make fuzz
 *     build/fuzz/tokenizer -max_total_time=300 tests/fuzz/corpus/tokenizer
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/text/text.h"

static sx_tokenizer *g_tok;

static void ignore_word(void *ctx, const char *w, size_t len) {
    size_t *total = ctx;
    *total += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sx_err err = {0};
    if (!g_tok && sx_tokenizer_load("models/all-MiniLM-L6-v2", &g_tok, &err) != 0 &&
        sx_tokenizer_load("tests/fixtures/model/bert-tiny-f32", &g_tok, &err) != 0)
        abort(); /* run from the repository root */
    const char *text = (const char *)data;
    int max = sx_tokenizer_max_len(g_tok), vocab = sx_tokenizer_vocab_size(g_tok);
    static int32_t ids[512], all[4096];
    int n = -1, na = -1;
    int valid = sx_utf8_check(text, size, NULL) == 0;
    int rc = sx_tokenizer_encode(g_tok, text, size, ids, 512, &n, &err);
    if ((rc == 0) != valid) abort();
    if (!valid) return 0;
    if (n < 2 || n > max || strcmp(sx_tokenizer_token(g_tok, ids[0]), "[CLS]") != 0 ||
        strcmp(sx_tokenizer_token(g_tok, ids[n - 1]), "[SEP]") != 0)
        abort();
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) abort();
    if (sx_tokenizer_encode_all(g_tok, text, size, all, 4096, &na, &err) != 0) abort();
    if (na < n || all[0] != ids[0] || all[na - 1] != ids[n - 1]) abort();
    for (int i = 0; i < n - 1; i++)
        if (all[i] != ids[i]) abort();
    size_t total = 0;
    if (sx_tokenizer_words(g_tok, text, size, ignore_word, &total, &err) != 0) abort();
    return 0;
}
