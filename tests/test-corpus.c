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
