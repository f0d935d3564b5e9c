/*
 * jsonl.c - libFuzzer target for JSON-lines ingest (src/corpus/lines.c and
 * record.c): the line reader over plain, gzip and zstd files, and the paper
 * record validation every line goes through.
 *
 * The first input byte chooses the framing of the rest: mod 3 = 0, written
 * as it is (the reader sniffs gzip or zstd magic itself, so the seeds of
 * real compressed files reach the decoders' error paths); 1, gzip-compressed
 * here; 2, zstd-compressed here (so that arbitrary decoded bytes reach the
 * line splitting behind each decoder). Every line is then parsed as a paper.
 * Checked: lines carry the length they claim, line numbers count up, and a
 * record the validator accepts is one the stores accept (sx_doc_check), with
 * an embedding of 1..SX_EMBEDDING_MAX_DIM finite floats. Build and run:
 *
 *     make fuzz FUZZ_TARGETS=jsonl FUZZ_SECONDS=300
 */
#include <math.h>
#include <zlib.h>
#include <zstd.h>

#include "../../src/corpus/corpus.h"
#include "fuzz.h"

/* gzip-compresses in into *out (malloc'd); returns its length or 0. */
static size_t gzip_bytes(const uint8_t *in, size_t len, uint8_t **out) {
    z_stream zs = {0};
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    size_t cap = deflateBound(&zs, (uLong)len) + 32;
    *out = malloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = *out;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    size_t n = rc == Z_STREAM_END ? zs.total_out : 0;
    deflateEnd(&zs);
    return n;
}

static size_t zstd_bytes(const uint8_t *in, size_t len, uint8_t **out) {
    size_t cap = ZSTD_compressBound(len);
    *out = malloc(cap);
    size_t n = ZSTD_compress(*out, cap, in, len, 1);
    return ZSTD_isError(n) ? 0 : n;
}

static void check_record(const char *line, size_t len) {
    sx_record r;
    sx_err err = {0};
    if (sx_record_parse(line, len, &r, &err) != 0) {
        FZ_CHECK(err.msg[0] != '\0' && r.buf == NULL && r.embedding == NULL);
        return;
    }
    sx_err e2 = {0};
    if (sx_doc_check(&r.doc, &e2) != 0) {
        fprintf(stderr, "record accepted by ingest, refused by the store: %s\n", e2.msg);
        abort();
    }
    if (r.embedding) {
        FZ_CHECK(r.dim >= 1 && r.dim <= SX_EMBEDDING_MAX_DIM);
        for (int i = 0; i < r.dim; i++) FZ_CHECK(isfinite(r.embedding[i]));
    }
    size_t need = sx_record_text(&r.doc, NULL, 0);
    char *text = malloc(need + 1);
    FZ_CHECK(sx_record_text(&r.doc, text, need + 1) == need && strlen(text) <= need);
    free(text);
    sx_record_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char path[512];
    fz_path(path, sizeof path, "in.jsonl");
    uint8_t *packed = NULL;
    size_t n = size - 1;
    const uint8_t *body = data + 1;
    switch (data[0] % 3) {
    case 1: n = gzip_bytes(data + 1, size - 1, &packed), body = packed; break;
    case 2: n = zstd_bytes(data + 1, size - 1, &packed), body = packed; break;
    }
    fz_write(path, body, n);
    free(packed);
    sx_lines *in;
    sx_err err = {0};
    FZ_CHECK(sx_lines_open(path, &in, &err) == 0);
    const char *line;
    size_t len;
    int rc;
    uint64_t last = 0;
    while ((rc = sx_lines_next(in, &line, &len, &err)) != 0) {
        if (rc < 0 && rc != SX_EFULL) {
            FZ_CHECK(rc == SX_EIO || rc == SX_ECORRUPT);
            FZ_CHECK(err.msg[0] != '\0');
            break;
        }
        FZ_CHECK(sx_lines_number(in) > last);
        last = sx_lines_number(in);
        if (rc == SX_EFULL) continue;
        FZ_CHECK(line[len] == '\0' && len <= SX_LINES_MAX);
        check_record(line, len);
    }
    uint64_t consumed, total;
    sx_lines_progress(in, &consumed, &total);
    FZ_CHECK(consumed <= total || total == 0);
    sx_lines_close(in);
    return 0;
}
