/*
 * test-text.c - UTF-8 validation and the WordPiece tokenizer.
 *
 * The reference is BertTokenizerFast as sentence-transformers loads it for
 * all-MiniLM-L6-v2; scripts/gen-text-fixtures.py wrote what it produced into
 * tests/fixtures/text/ (ids for >3,000 real arXiv titles and abstracts plus a
 * hand-made edge set, and its treatment of every Unicode code point).
 */
#include "test.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <zstd.h>

#include "../src/text/text.h"
#include "../src/text/text_int.h"

#define MODEL "models/all-MiniLM-L6-v2"

/* Reads a zstd-compressed fixture into a NUL-terminated buffer. */
static char *read_zst(const char *path, size_t *len_out) {
    char *raw;
    size_t n;
    sx_err err = {0};
    CHECK_MSG(sx_read_file(path, &raw, &n, &err) == 0, "%s", err.msg);
    unsigned long long size = ZSTD_getFrameContentSize(raw, n);
    CHECK_MSG(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN,
              "%s: no content size", path);
    char *out = malloc(size + 1);
    CHECK(out);
    size_t got = ZSTD_decompress(out, size, raw, n);
    CHECK_MSG(!ZSTD_isError(got) && got == size, "%s: cannot decompress", path);
    out[size] = '\0';
    free(raw);
    *len_out = size;
    return out;
}

static sx_tokenizer *load_tok(void) {
    sx_tokenizer *tok = NULL;
    sx_err err = {0};
    CHECK_MSG(sx_tokenizer_load(MODEL, &tok, &err) == 0, "%s", err.msg);
    return tok;
}

void test_text_utf8_check(void) {
    static const struct {
        const char *s;
        size_t len;
        long bad; /* -1 = valid */
    } cases[] = {
        {"", 0, -1},
        {"plain ascii text, long enough for the 8-byte path", 49, -1},
        {"caf\xc3\xa9", 5, -1},
        {"\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", 13, -1},
        {"\xed\x9f\xbf", 3, -1},                      /* U+D7FF */
        {"\xee\x80\x80", 3, -1},                      /* U+E000 */
        {"a\0b", 3, -1},                              /* NUL is valid UTF-8 */
        {"abc\x80", 4, 3},                            /* stray continuation */
        {"abcdefghij\xc3", 11, 10},                   /* truncated at end */
        {"ab\xc3(", 4, 2},                            /* bad continuation */
        {"\xc0\xaf", 2, 0},                           /* overlong '/' */
        {"\xc1\xbf", 2, 0},                           /* overlong */
        {"\xe0\x80\xaf", 3, 0},                       /* overlong 3-byte */
        {"\xf0\x80\x80\xaf", 4, 0},                   /* overlong 4-byte */
        {"x\xed\xa0\x80", 4, 1},                      /* surrogate U+D800 */
        {"\xed\xbf\xbf", 3, 0},                       /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0},                   /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},                   /* invalid lead byte */
        {"\xff", 1, 0},
        {"0123456789abcdef\xe2\x82", 18, 16},         /* truncated 3-byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t off = 999;
        int rc = sx_utf8_check(cases[i].s, cases[i].len, &off);
        if (cases[i].bad < 0) {
            CHECK_MSG(rc == 0, "case %zu should be valid", i);
        } else {
            CHECK_MSG(rc == SX_EINVAL, "case %zu should be invalid", i);
            CHECK_MSG((long)off == cases[i].bad, "case %zu: offset %zu, want %ld", i, off,
                      cases[i].bad);
        }
    }
}

/* Every id of every fixture text, untruncated and as sentence-transformers
 * truncates it. */
void test_text_tokenizer_matches_reference(void) {
    sx_tokenizer *tok = load_tok();
    CHECK_EQ(sx_tokenizer_max_len(tok), 256);
    CHECK_EQ(sx_tokenizer_vocab_size(tok), 30522);
    size_t len;
    char *data = read_zst("tests/fixtures/text/tokens.jsonl.zst", &len);
    int n_texts = 0, n_truncated = 0;
    int32_t ids[4096];
    for (char *line = data, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        CHECK(nl);
        *nl = '\0';
        cJSON *rec = cJSON_Parse(line);
        CHECK(rec);
        const cJSON *text = cJSON_GetObjectItem(rec, "text");
        const cJSON *want = cJSON_GetObjectItem(rec, "ids");
        const cJSON *st = cJSON_GetObjectItem(rec, "st");
        CHECK(cJSON_IsString(text) && cJSON_IsArray(want));
        const char *s = text->valuestring;
        size_t slen = strlen(s);
        const cJSON *hex = cJSON_GetObjectItem(rec, "hex");
        char bytes[1024];
        if (hex) { /* a text with NUL bytes */
            slen = strlen(hex->valuestring) / 2;
            CHECK(slen < sizeof bytes);
            for (size_t i = 0; i < slen; i++) {
                unsigned v;
                CHECK(sscanf(hex->valuestring + 2 * i, "%2x", &v) == 1);
                bytes[i] = (char)v;
            }
            s = bytes;
        }
        int n = 0;
        sx_err err = {0};
        CHECK_MSG(sx_tokenizer_encode_all(tok, s, slen, ids, 4096, &n, &err) == 0, "%s",
                  err.msg);
        int nw = cJSON_GetArraySize(want);
        for (int i = 0; i < n && i < nw; i++) {
            int w = cJSON_GetArrayItem(want, i)->valueint;
            CHECK_MSG(ids[i] == w, "text %d (\"%.60s\"): id %d is %d (%s), want %d (%s)",
                      n_texts, s, i, ids[i], sx_tokenizer_token(tok, ids[i]), w,
                      sx_tokenizer_token(tok, w));
        }
        CHECK_MSG(n == nw, "text %d (\"%.60s\"): %d ids, want %d", n_texts, s, n, nw);
        /* What the model sees. */
        const cJSON *want_st = st ? st : want;
        CHECK_MSG(sx_tokenizer_encode(tok, s, slen, ids, 4096, &n, &err) == 0, "%s",
                  err.msg);
        CHECK_EQ(n, cJSON_GetArraySize(want_st));
        for (int i = 0; i < n; i++) CHECK_EQ(ids[i], cJSON_GetArrayItem(want_st, i)->valueint);
        n_truncated += st != NULL;
        n_texts++;
        cJSON_Delete(rec);
    }
    CHECK_MSG(n_texts >= 3000, "only %d texts in the fixture", n_texts);
    CHECK_MSG(n_truncated >= 10, "only %d texts over max_seq_length", n_truncated);
    free(data);
    sx_tokenizer_free(tok);
}

typedef struct {
    char out[512];
    size_t len;
} words_buf;

static void collect_word(void *ctx, const char *w, size_t len) {
    words_buf *b = ctx;
    if (b->len) b->out[b->len++] = '|';
    for (size_t i = 0; i < len && b->len + 1 < sizeof b->out; i++) b->out[b->len++] = w[i];
    b->out[b->len] = '\0';
}

/* Normalisation + pre-tokenisation of "a" + c + "a" for every code point c,
 * against the reference's table (runs of code points treated alike, and
 * explicit words for the rest). */
void test_text_tokenizer_every_code_point(void) {
    sx_tokenizer *tok = load_tok();
    char *data;
    size_t len;
    sx_err err = {0};
    CHECK_MSG(sx_read_file("tests/fixtures/text/unicode.txt", &data, &len, &err) == 0, "%s",
              err.msg);
    long n_cp = 0;
    for (char *line = data, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        CHECK(nl);
        *nl = '\0';
        if (line[0] == '#') continue;
        unsigned first, last;
        char kind[16];
        int used = 0;
        CHECK_MSG(sscanf(line, "%x %x %15s %n", &first, &last, kind, &used) == 3, "bad line %s",
                  line);
        for (uint32_t cp = first; cp <= last; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            char c[5], text[16], want[512];
            size_t cl = sx_utf8_encode(cp, c);
            c[cl] = '\0';
            snprintf(text, sizeof text, "a%sa", c);
            if (strcmp(kind, "same") == 0) snprintf(want, sizeof want, "a%sa", c);
            else if (strcmp(kind, "rm") == 0) snprintf(want, sizeof want, "aa");
            else if (strcmp(kind, "sp") == 0) snprintf(want, sizeof want, "a|a");
            else if (strcmp(kind, "iso") == 0) snprintf(want, sizeof want, "a|%s|a", c);
            else {
                CHECK_MSG(strcmp(kind, "=") == 0, "bad kind in %s", line);
                /* words of hex code points: "61 62|63" */
                size_t wl = 0;
                for (const char *p = line + used; *p;) {
                    if (*p == '|') {
                        want[wl++] = '|';
                        p++;
                    } else if (*p == ' ') {
                        p++;
                    } else {
                        char *end;
                        unsigned long v = strtoul(p, &end, 16);
                        CHECK(end != p);
                        wl += sx_utf8_encode((uint32_t)v, want + wl);
                        p = end;
                    }
                }
                want[wl] = '\0';
            }
            words_buf got = {.len = 0};
            got.out[0] = '\0';
            CHECK(sx_tokenizer_words(tok, text, strlen(text), collect_word, &got, &err) == 0);
            CHECK_MSG(strcmp(got.out, want) == 0, "U+%04X: got \"%s\", want \"%s\"", cp, got.out,
                      want);
            n_cp++;
        }
    }
    CHECK_EQ(n_cp, 0x110000 - 0x800);
    free(data);
    sx_tokenizer_free(tok);
}

void test_text_tokenizer_edges(void) {
    sx_tokenizer *tok = load_tok();
    sx_err err = {0};
    int32_t ids[300];
    int n = -1;
    /* Empty text: [CLS] [SEP]. */
    CHECK(sx_tokenizer_encode(tok, "", 0, ids, 300, &n, &err) == 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(ids[0], 101);
    CHECK_EQ(ids[1], 102);
    /* max_ids below max_seq_length truncates, keeping [SEP]. */
    const char *s = "graph neural networks for molecules";
    CHECK(sx_tokenizer_encode(tok, s, strlen(s), ids, 4, &n, &err) == 0);
    CHECK_EQ(n, 4);
    CHECK_EQ(ids[0], 101);
    CHECK_EQ(ids[3], 102);
    CHECK_STR(sx_tokenizer_token(tok, ids[1]), "graph");
    CHECK_STR(sx_tokenizer_token(tok, ids[2]), "neural");
    CHECK(sx_tokenizer_encode(tok, s, strlen(s), ids, 2, &n, &err) == 0);
    CHECK_EQ(n, 2);
    CHECK(sx_tokenizer_encode(tok, s, strlen(s), ids, 1, &n, &err) == SX_EINVAL);
    /* A long text stops at max_seq_length whatever max_ids says. */
    size_t big = 1 << 20;
    char *long_text = malloc(big);
    CHECK(long_text);
    for (size_t i = 0; i < big; i++) long_text[i] = i % 4 == 3 ? ' ' : 'a' + (char)(i % 4);
    CHECK(sx_tokenizer_encode(tok, long_text, big, ids, 300, &n, &err) == 0);
    CHECK_EQ(n, 256);
    CHECK_EQ(ids[255], 102);
    /* Invalid UTF-8 anywhere, even past the truncation point, is rejected
     * with its offset, and ids are left alone. */
    long_text[big - 2] = (char)0xC3;
    ids[0] = -7;
    n = -7;
    CHECK(sx_tokenizer_encode(tok, long_text, big, ids, 300, &n, &err) == SX_EINVAL);
    CHECK_EQ(err.code, SX_EINVAL);
    CHECK_MSG(strstr(err.msg, "byte offset 1048574") != NULL, "message: %s", err.msg);
    CHECK_EQ(ids[0], -7);
    CHECK_EQ(n, -7);
    free(long_text);
    /* Text given by length may hold NUL bytes, which are dropped. */
    CHECK(sx_tokenizer_encode(tok, "ab\0cd", 5, ids, 300, &n, &err) == 0);
    int32_t ids2[8];
    int n2;
    CHECK(sx_tokenizer_encode(tok, "abcd", 4, ids2, 8, &n2, &err) == 0);
    CHECK_EQ(n, n2);
    for (int i = 0; i < n; i++) CHECK_EQ(ids[i], ids2[i]);
    CHECK(sx_tokenizer_token(tok, -1) == NULL);
    CHECK(sx_tokenizer_token(tok, 30522) == NULL);
    CHECK_EQ(sx_tokenizer_pad_id(tok), 0);
    sx_tokenizer_free(tok);
}

static void write_file(const char *dir, const char *name, const char *data) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputs(data, f);
    fclose(f);
}

/* Loads dir and expects failure with code and a message containing what. */
static void expect_load_error(const char *dir, int code, const char *what) {
    sx_tokenizer *tok = (sx_tokenizer *)1;
    sx_err err = {0};
    int rc = sx_tokenizer_load(dir, &tok, &err);
    CHECK_MSG(rc == code, "load %s: rc %d, want %d (%s)", dir, rc, code, err.msg);
    CHECK(tok == NULL);
    CHECK_MSG(strstr(err.msg, what) != NULL, "message \"%s\" lacks \"%s\"", err.msg, what);
}

void test_text_tokenizer_bad_model(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/tok", test_tmpdir());
    CHECK(mkdir(dir, 0700) == 0);
    expect_load_error(dir, SX_ENOTFOUND, "vocab.txt");
    write_file(dir, "vocab.txt", "");
    expect_load_error(dir, SX_ECORRUPT, "vocab.txt: empty");
    write_file(dir, "vocab.txt", "a\n\xff\xfe\n");
    expect_load_error(dir, SX_ECORRUPT, "not valid UTF-8");
    write_file(dir, "vocab.txt", "[PAD]\n[UNK]\n[SEP]\nhello\n");
    expect_load_error(dir, SX_ECORRUPT, "has no '[CLS]'");
    write_file(dir, "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##s\n");
    write_file(dir, "tokenizer_config.json", "{\"do_lower_case\": tru");
    expect_load_error(dir, SX_ECORRUPT, "tokenizer_config.json: not a JSON object");
    write_file(dir, "tokenizer_config.json", "{\"do_lower_case\": false}");
    write_file(dir, "sentence_bert_config.json", "{\"max_seq_length\": \"big\"}");
    expect_load_error(dir, SX_ECORRUPT, "max_seq_length");
    write_file(dir, "sentence_bert_config.json", "{\"max_seq_length\": 3}");
    /* A tiny valid model: cased (do_lower_case false), max 3 ids. */
    sx_tokenizer *tok = NULL;
    sx_err err = {0};
    CHECK_MSG(sx_tokenizer_load(dir, &tok, &err) == 0, "%s", err.msg);
    int32_t ids[8];
    int n;
    CHECK(sx_tokenizer_encode(tok, "hellos x", 8, ids, 8, &n, &err) == 0);
    CHECK_EQ(n, 3); /* [CLS] hello [SEP]: truncated to 3 */
    CHECK_EQ(ids[1], 4);
    CHECK(sx_tokenizer_encode_all(tok, "hellos Hello [SEP]", 18, ids, 8, &n, &err) == 0);
    CHECK_EQ(n, 6);
    int32_t want[] = {2, 4, 5, 1, 3, 3}; /* cased: "Hello" is unknown */
    for (int i = 0; i < 6; i++) CHECK_EQ(ids[i], want[i]);
    sx_tokenizer_free(tok);
}
