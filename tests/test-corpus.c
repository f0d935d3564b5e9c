/* Tests for src/corpus: the line reader over plain, gzip and zstd files. */
#include "test.h"

#include <zlib.h>
#include <zstd.h>

#include "../src/corpus/corpus.h"

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void write_gzip(const char *path, const char *text, int members) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    for (int m = 0; m < members; m++) {
        unsigned char out[4096];
        z_stream zs = {0};
        CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
        zs.next_in = (unsigned char *)text;
        zs.avail_in = (uInt)strlen(text);
        zs.next_out = out;
        zs.avail_out = sizeof out;
        CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
        fwrite(out, 1, sizeof out - zs.avail_out, f);
        deflateEnd(&zs);
    }
    fclose(f);
}

static size_t zstd_of(const char *text, void *out, size_t cap) {
    size_t n = ZSTD_compress(out, cap, text, strlen(text), 3);
    CHECK(!ZSTD_isError(n));
    return n;
}

/* Reads every line of path into one string joined by '|'. Returns the count. */
static int read_all(const char *path, char *joined, size_t cap, int *rc_out) {
    sx_lines *in;
    sx_err err = {0};
    CHECK_EQ(sx_lines_open(path, &in, &err), 0);
    const char *line;
    size_t len;
    int n = 0, rc;
    joined[0] = '\0';
    while ((rc = sx_lines_next(in, &line, &len, &err)) > 0) {
        CHECK(strlen(line) == len);
        if (n) strncat(joined, "|", cap - strlen(joined) - 1);
        strncat(joined, line, cap - strlen(joined) - 1);
        n++;
    }
    *rc_out = rc;
    sx_lines_close(in);
    return n;
}

static const char *k_text = "{\"id\": \"1\"}\r\nsecond line\n\nlast without newline";
static const char *k_joined = "{\"id\": \"1\"}|second line||last without newline";

void test_corpus_lines_plain_gzip_zstd(void) {
    char path[512], joined[256];
    int rc;
    snprintf(path, sizeof path, "%s/a.jsonl", test_tmpdir());
    write_file(path, k_text, strlen(k_text));
    CHECK_EQ(read_all(path, joined, sizeof joined, &rc), 4);
    CHECK_EQ(rc, 0);
    CHECK_STR(joined, k_joined);

    snprintf(path, sizeof path, "%s/a.gz", test_tmpdir());
    write_gzip(path, k_text, 1);
    CHECK_EQ(read_all(path, joined, sizeof joined, &rc), 4);
    CHECK_EQ(rc, 0);
    CHECK_STR(joined, k_joined);

    /* Two concatenated gzip members read as one stream. */
    snprintf(path, sizeof path, "%s/b.gz", test_tmpdir());
    write_gzip(path, "x\n", 2);
    CHECK_EQ(read_all(path, joined, sizeof joined, &rc), 2);
    CHECK_STR(joined, "x|x");

    /* The name does not matter: zstd content in a .json file. */
    unsigned char z[512];
    size_t zn = zstd_of(k_text, z, sizeof z);
    snprintf(path, sizeof path, "%s/c.json", test_tmpdir());
    write_file(path, z, zn);
    CHECK_EQ(read_all(path, joined, sizeof joined, &rc), 4);
    CHECK_EQ(rc, 0);
    CHECK_STR(joined, k_joined);

    /* An empty file has no lines. */
    snprintf(path, sizeof path, "%s/empty", test_tmpdir());
    write_file(path, "", 0);
    CHECK_EQ(read_all(path, joined, sizeof joined, &rc), 0);
    CHECK_EQ(rc, 0);
}

void test_corpus_lines_truncated_compressed(void) {
    char path[512], joined[256];
    int rc;
    unsigned char z[512];
    size_t zn = zstd_of(k_text, z, sizeof z);
    snprintf(path, sizeof path, "%s/t.zst", test_tmpdir());
    write_file(path, z, zn - 5);
    read_all(path, joined, sizeof joined, &rc);
    CHECK_EQ(rc, SX_ECORRUPT);

    snprintf(path, sizeof path, "%s/t.gz", test_tmpdir());
    write_gzip(path, k_text, 1);
    FILE *f = fopen(path, "rb");
    unsigned char g[512];
    size_t gn = fread(g, 1, sizeof g, f);
    fclose(f);
    write_file(path, g, gn - 10);
    read_all(path, joined, sizeof joined, &rc);
    CHECK_EQ(rc, SX_ECORRUPT);

    sx_lines *in;
    sx_err err = {0};
    snprintf(path, sizeof path, "%s/nope.jsonl", test_tmpdir());
    CHECK_EQ(sx_lines_open(path, &in, &err), SX_ENOTFOUND);
    CHECK(strstr(err.msg, "nope.jsonl") != NULL);
}

void test_corpus_lines_overlong_skipped(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/long.jsonl", test_tmpdir());
    size_t big = SX_LINES_MAX + 1000;
    char *data = malloc(big + 20);
    CHECK(data);
    strcpy(data, "first\n");
    memset(data + 6, 'x', big);
    strcpy(data + 6 + big, "\nthird\n");
    write_file(path, data, strlen(data));
    free(data);
    sx_lines *in;
    sx_err err = {0};
    const char *line;
    size_t len;
    CHECK_EQ(sx_lines_open(path, &in, &err), 0);
    CHECK_EQ(sx_lines_next(in, &line, &len, &err), 1);
    CHECK_STR(line, "first");
    CHECK_EQ(sx_lines_next(in, &line, &len, &err), SX_EFULL);
    CHECK_EQ(sx_lines_number(in), 2);
    CHECK(strstr(err.msg, "line 2") != NULL);
    CHECK_EQ(sx_lines_next(in, &line, &len, &err), 1);
    CHECK_STR(line, "third");
    CHECK_EQ(sx_lines_number(in), 3);
    CHECK_EQ(sx_lines_next(in, &line, &len, &err), 0);
    sx_lines_close(in);
}

void test_corpus_lines_shared_sample(void) {
    /* The smallest shared part: every record is one line. */
    const char *path = "../shared/datasets/arxiv/arxiv-metadata-part-06.jsonl.zst";
    sx_lines *in;
    sx_err err = {0};
    CHECK_MSG(sx_lines_open(path, &in, &err) == 0, "%s", err.msg);
    const char *line;
    size_t len;
    int rc;
    uint64_t n = 0;
    while ((rc = sx_lines_next(in, &line, &len, &err)) > 0) {
        CHECK(len > 0 && line[0] == '{' && line[len - 1] == '}');
        n++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(n, 26164);
    uint64_t used, total;
    sx_lines_progress(in, &used, &total);
    CHECK_EQ(used, total);
    sx_lines_close(in);
}

/* ---- records ------------------------------------------------------------- */

void test_corpus_record_kaggle_line(void) {
    const char *line =
        "{\"id\": \"1110.4092\", \"submitter\": \"X\", \"title\": \"Dynamics as a probe\\n  for systems\", "
        "\"abstract\": \"  We investigate caf\\u00e9 \\\"quotes\\\". \", \"categories\": \"cond-mat.quant-gas hep-th\", "
        "\"authors\": \"Raka Dasgupta, J. K. Bhattacharjee\", \"update_date\": \"2011-10-18\", "
        "\"versions\": [{\"version\": \"v1\"}]}";
    sx_record r;
    sx_err err = {0};
    CHECK_MSG(sx_record_parse(line, strlen(line), &r, &err) == 0, "%s", err.msg);
    CHECK_STR(r.doc.id, "1110.4092");
    CHECK_STR(r.doc.title, "Dynamics as a probe\n  for systems"); /* kept as the source has it */
    CHECK_STR(r.doc.abstract, "  We investigate caf\xc3\xa9 \"quotes\". ");
    CHECK_STR(r.doc.categories, "cond-mat.quant-gas hep-th");
    CHECK_STR(r.doc.authors, "Raka Dasgupta, J. K. Bhattacharjee");
    CHECK_STR(r.doc.update_date, "2011-10-18");
    CHECK(r.embedding == NULL);
    char text[256];
    size_t n = sx_record_text(&r.doc, text, sizeof text);
    CHECK_EQ(n, strlen(r.doc.title) + 1 + strlen(r.doc.abstract));
    CHECK(strncmp(text, "Dynamics as a probe\n  for systems\n  We", 38) == 0);
    sx_record_clear(&r);

    /* Optional fields may be missing or null; categories may be an array. */
    const char *api = "{\"paper_id\": \"hep-th/9901001\", \"title\": \"T\", \"abstract\": null, "
                      "\"categories\": [\"hep-th\", \"gr-qc\"], \"embedding\": [0.5, -1, 2e-3]}";
    CHECK_MSG(sx_record_parse(api, strlen(api), &r, &err) == 0, "%s", err.msg);
    CHECK_STR(r.doc.id, "hep-th/9901001");
    CHECK_STR(r.doc.abstract, "");
    CHECK_STR(r.doc.authors, "");
    CHECK_STR(r.doc.update_date, "");
    CHECK_STR(r.doc.categories, "hep-th gr-qc");
    CHECK_EQ(r.dim, 3);
    CHECK_NEAR(r.embedding[1], -1.0, 0);
    sx_record_clear(&r);
}

void test_corpus_record_errors(void) {
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {"{\"id\": \"1\", \"title\": ", "malformed JSON"},
        {"[1, 2]", "JSON object"},
        {"{\"title\": \"no id\"}", "'id' is missing"},
        {"{\"id\": 5, \"title\": \"x\"}", "'id' is missing or not a string"},
        {"{\"id\": \"\", \"title\": \"x\"}", "'id' must not be empty"},
        {"{\"id\": \"has space\", \"title\": \"x\"}", "may contain only"},
        {"{\"id\": \"0123456789012345678901234567890123456789012345678901234567890123\", \"title\": \"x\"}", "limit is 63"},
        {"{\"id\": \"1\"}", "'title' is missing or empty"},
        {"{\"id\": \"1\", \"title\": \"  \\n \"}", "'title' is missing or empty"},
        {"{\"id\": \"1\", \"title\": 7}", "'title' must be a string"},
        {"{\"id\": \"1\", \"title\": \"t\", \"abstract\": [\"a\"]}", "'abstract' must be a string"},
        {"{\"id\": \"1\", \"title\": \"t\", \"categories\": 3}", "'categories' must be a string"},
        {"{\"id\": \"1\", \"title\": \"t\", \"categories\": [\"a b\"]}", "must be one non-empty code"},
        {"{\"id\": \"1\", \"title\": \"t\", \"categories\": \"cs.LG c$s\"}", "has a character"},
        {"{\"id\": \"1\", \"title\": \"t\", \"update_date\": \"2011-13-01\"}", "YYYY-MM-DD"},
        {"{\"id\": \"1\", \"title\": \"t\", \"update_date\": \"yesterday\"}", "YYYY-MM-DD"},
        {"{\"id\": \"1\", \"title\": \"t\", \"embedding\": [1, \"x\"]}", "'embedding'[1] is not a finite number"},
        {"{\"id\": \"1\", \"title\": \"t\", \"embedding\": []}", "'embedding' must have 1 to"},
        {"{\"id\": \"1\", \"title\": \"caf\xe9\"}", "'title' is not valid UTF-8 (byte 3)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sx_record r;
        sx_err err = {0};
        int rc = sx_record_parse(cases[i].json, strlen(cases[i].json), &r, &err);
        CHECK_MSG(rc == SX_EINVAL, "case %zu: rc %d", i, rc);
        CHECK_MSG(strstr(err.msg, cases[i].expect) != NULL, "case %zu: '%s' lacks '%s'", i, err.msg,
                  cases[i].expect);
        CHECK(r.buf == NULL && r.embedding == NULL);
    }
    /* 32 categories pass, 33 do not. */
    char json[2048] = "{\"id\": \"1\", \"title\": \"t\", \"categories\": \"";
    for (int i = 0; i < 33; i++) snprintf(json + strlen(json), 16, "c%d ", i);
    strcat(json, "\"}");
    sx_record r;
    sx_err err = {0};
    CHECK_EQ(sx_record_parse(json, strlen(json), &r, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "more than 32 categories"));
}

void test_corpus_record_shared_sample(void) {
    /* Every record of the smallest shared part passes validation. */
    sx_lines *in;
    sx_err err = {0};
    CHECK_EQ(sx_lines_open("../shared/datasets/arxiv/arxiv-metadata-part-06.jsonl.zst", &in, &err), 0);
    const char *line;
    size_t len;
    int n = 0, bad = 0;
    while (sx_lines_next(in, &line, &len, &err) > 0) {
        sx_record r;
        if (sx_record_parse(line, len, &r, &err) != 0) {
            if (bad++ < 3) fprintf(stderr, "    line %d: %s\n", n + 1, err.msg);
        } else {
            sx_record_clear(&r);
        }
        n++;
    }
    sx_lines_close(in);
    CHECK_EQ(n, 26164);
    CHECK_EQ(bad, 0);
}

static void write_npy(const char *path, const char *header, const float *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    size_t hl = strlen(header);
    size_t pad = 64 - (10 + hl + 1) % 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((hl + pad + 1) & 0xff),
                             (unsigned char)((hl + pad + 1) >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, hl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, sizeof(float), n, f);
    fclose(f);
}

void test_corpus_npy(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/v.npy", test_tmpdir());
    float data[6] = {1, 2, 3, 4, 5, 6};
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data, 6);
    sx_npy *n;
    sx_err err = {0};
    CHECK_MSG(sx_npy_open(path, &n, &err) == 0, "%s", err.msg);
    CHECK_EQ(sx_npy_rows(n), 2);
    CHECK_EQ(sx_npy_cols(n), 3);
    float row[3];
    sx_npy_row(n, 1, row);
    CHECK_NEAR(row[0], 4, 0);
    CHECK_NEAR(row[2], 6, 0);
    sx_npy_close(n);
    /* Wrong dtype, wrong size, not an .npy. */
    write_npy(path, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), }", data, 6);
    CHECK_EQ(sx_npy_open(path, &n, &err), SX_EUNSUPPORTED);
    CHECK(strstr(err.msg, "float32"));
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }", data, 6);
    CHECK_EQ(sx_npy_open(path, &n, &err), SX_ECORRUPT);
    CHECK(strstr(err.msg, "needs"));
    write_npy(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data, 6);
    CHECK_EQ(sx_npy_open(path, &n, &err), SX_EUNSUPPORTED);
    write_file(path, "not numpy at all, really", 24);
    CHECK_EQ(sx_npy_open(path, &n, &err), SX_ECORRUPT);
}
