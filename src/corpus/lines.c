/*
 * lines.c - a line reader over plain, gzip and zstd files.
 *
 * The corpus arrives as JSON lines in whatever compression its source used
 * (Kaggle ships plain JSON, our sample is zstd, people gzip things), so the
 * reader sniffs the magic bytes and streams through the right decoder:
 * nothing is ever decompressed to disk or held whole in memory. Decoded bytes
 * go into one growing buffer from which complete lines are handed out in
 * place; the buffer is compacted when a line is consumed, and a line longer
 * than SX_LINES_MAX is skipped (and reported) rather than grown without bound.
 *
 * gzip is read with zlib's inflate (with automatic header detection, and
 * multi-member files as `cat a.gz b.gz` produces); zstd with the streaming
 * ZSTD_decompressStream, which also handles concatenated frames.
 */
#include "corpus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

enum { FMT_PLAIN, FMT_GZIP, FMT_ZSTD };

#define IN_CHUNK (1u << 17)

struct sx_lines {
    FILE *f;
    int own_file;
    char *path;
    int fmt;
    unsigned char *in;  /* compressed input chunk */
    size_t in_len, in_pos;
    int in_eof;
    char *buf;          /* decoded bytes: [start, end) not yet consumed */
    size_t cap, start, end;
    int out_eof;        /* decoder has produced everything */
    uint64_t line_no;
    uint64_t consumed, total;
    z_stream zs;
    ZSTD_DStream *zd;
    size_t zstd_hint; /* last ZSTD_decompressStream result: 0 = frame complete */
};

static int fill_input(sx_lines *r, sx_err *err) {
    if (r->in_pos < r->in_len || r->in_eof) return 0;
    r->in_len = fread(r->in, 1, IN_CHUNK, r->f);
    r->in_pos = 0;
    r->consumed += r->in_len;
    if (r->in_len == 0) {
        if (ferror(r->f)) return sx_err_set(err, SX_EIO, "%s: read error: %s", r->path, strerror(errno));
        r->in_eof = 1;
    }
    return 0;
}

/* Makes room for at least `want` more decoded bytes at the end of buf. */
static int reserve(sx_lines *r, size_t want, sx_err *err) {
    if (r->start > 0 && r->start == r->end) r->start = r->end = 0;
    if (r->cap - r->end >= want) return 0;
    if (r->start > 0) { /* compact first */
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
        if (r->cap - r->end >= want) return 0;
    }
    size_t ncap = r->cap * 2;
    while (ncap - r->end < want) ncap *= 2;
    char *nb = realloc(r->buf, ncap + 1);
    if (!nb) return sx_err_set(err, SX_ENOMEM, "%s: out of memory", r->path);
    r->buf = nb;
    r->cap = ncap;
    return 0;
}

/* Decodes more bytes into buf. Sets out_eof at the end of the stream. */
static int decode_more(sx_lines *r, sx_err *err) {
    int rc = reserve(r, IN_CHUNK, err);
    if (rc < 0) return rc;
    if (r->fmt == FMT_PLAIN) {
        size_t n = fread(r->buf + r->end, 1, r->cap - r->end, r->f);
        r->consumed += n;
        r->end += n;
        if (n == 0) {
            if (ferror(r->f)) return sx_err_set(err, SX_EIO, "%s: read error: %s", r->path, strerror(errno));
            r->out_eof = 1;
        }
        return 0;
    }
    if ((rc = fill_input(r, err)) < 0) return rc;
    int input_done = r->in_eof && r->in_pos == r->in_len;
    size_t produced;
    if (r->fmt == FMT_ZSTD) {
        ZSTD_inBuffer zin = {r->in, r->in_len, r->in_pos};
        ZSTD_outBuffer zout = {r->buf + r->end, r->cap - r->end, 0};
        size_t z = ZSTD_decompressStream(r->zd, &zout, &zin);
        if (ZSTD_isError(z))
            return sx_err_set(err, SX_ECORRUPT, "%s: zstd: %s", r->path, ZSTD_getErrorName(z));
        if (zout.pos > 0 || zin.pos > r->in_pos) r->zstd_hint = z;
        r->in_pos = zin.pos;
        r->end += zout.pos;
        produced = zout.pos;
        if (input_done && produced == 0) {
            /* The hint is 0 exactly when the last frame was complete. */
            if (r->zstd_hint != 0) return sx_err_set(err, SX_ECORRUPT, "%s: zstd: truncated input", r->path);
            r->out_eof = 1;
        }
        return 0;
    }
    /* gzip */
    r->zs.next_in = r->in + r->in_pos;
    r->zs.avail_in = (uInt)(r->in_len - r->in_pos);
    r->zs.next_out = (unsigned char *)r->buf + r->end;
    r->zs.avail_out = (uInt)(r->cap - r->end);
    int z = inflate(&r->zs, Z_NO_FLUSH);
    r->in_pos = r->in_len - r->zs.avail_in;
    produced = r->cap - r->zs.avail_out - r->end;
    r->end += produced;
    if (z == Z_STREAM_END) {
        /* Another member may follow (cat a.gz b.gz); reset zeroes total_in. */
        if (inflateReset(&r->zs) != Z_OK)
            return sx_err_set(err, SX_ECORRUPT, "%s: gzip: reset failed", r->path);
    } else if (z != Z_OK && z != Z_BUF_ERROR) {
        return sx_err_set(err, SX_ECORRUPT, "%s: gzip: %s", r->path,
                          r->zs.msg ? r->zs.msg : "corrupt data");
    } else if (input_done && produced == 0) {
        if (r->zs.total_in != 0) return sx_err_set(err, SX_ECORRUPT, "%s: gzip: truncated input", r->path);
        r->out_eof = 1;
    }
    return 0;
}

static int detect_format(sx_lines *r, sx_err *err) {
    int rc = fill_input(r, err);
    if (rc < 0) return rc;
    const unsigned char *p = r->in;
    if (r->in_len >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        r->fmt = FMT_GZIP;
        if (inflateInit2(&r->zs, 15 + 32) != Z_OK)
            return sx_err_set(err, SX_ENOMEM, "%s: cannot start gzip decoder", r->path);
    } else if (r->in_len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) {
        r->fmt = FMT_ZSTD;
        r->zd = ZSTD_createDStream();
        if (!r->zd || ZSTD_isError(ZSTD_initDStream(r->zd)))
            return sx_err_set(err, SX_ENOMEM, "%s: cannot start zstd decoder", r->path);
    } else {
        /* Plain: hand the sniffed bytes to the line buffer. */
        r->fmt = FMT_PLAIN;
        if ((rc = reserve(r, r->in_len, err)) < 0) return rc;
        memcpy(r->buf + r->end, r->in, r->in_len);
        r->end += r->in_len;
        r->in_pos = r->in_len;
    }
    return 0;
}

int sx_lines_open(const char *path, sx_lines **out, sx_err *err) {
    *out = NULL;
    sx_lines *r = calloc(1, sizeof *r);
    if (!r) return sx_err_set(err, SX_ENOMEM, "%s: out of memory", path);
    r->path = strdup(path);
    r->in = malloc(IN_CHUNK);
    r->cap = 1u << 18;
    r->buf = malloc(r->cap + 1);
    if (!r->path || !r->in || !r->buf) {
        sx_lines_close(r);
        return sx_err_set(err, SX_ENOMEM, "%s: out of memory", path);
    }
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
    } else {
        r->f = fopen(path, "rb");
        if (!r->f) {
            int code = errno == ENOENT ? SX_ENOTFOUND : SX_EIO;
            sx_err_set(err, code, "%s: cannot open: %s", path, strerror(errno));
            sx_lines_close(r);
            return code;
        }
        r->own_file = 1;
        struct stat st;
        if (fstat(fileno(r->f), &st) == 0 && S_ISREG(st.st_mode)) r->total = (uint64_t)st.st_size;
    }
    int rc = detect_format(r, err);
    if (rc < 0) {
        sx_lines_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int sx_lines_next(sx_lines *r, const char **line, size_t *len, sx_err *err) {
    size_t scanned = r->start;
    int skipping = 0;
    for (;;) {
        char *nl = r->end > scanned ? memchr(r->buf + scanned, '\n', r->end - scanned) : NULL;
        if (nl || (r->out_eof && r->end > r->start)) {
            size_t stop = nl ? (size_t)(nl - r->buf) : r->end;
            size_t begin = r->start;
            r->start = nl ? stop + 1 : stop;
            r->line_no++;
            if (skipping || stop - begin > SX_LINES_MAX)
                return sx_err_set(err, SX_EFULL, "%s: line %llu is longer than %u bytes; skipped",
                                  r->path, (unsigned long long)r->line_no, SX_LINES_MAX);
            if (stop > begin && r->buf[stop - 1] == '\r') stop--;
            r->buf[stop] = '\0';
            *line = r->buf + begin;
            *len = stop - begin;
            return 1;
        }
        if (r->out_eof) return 0;
        if (r->end - r->start > SX_LINES_MAX) { /* drop the overlong line's bytes */
            skipping = 1;
            r->start = r->end;
        }
        scanned = r->end - r->start; /* offset survives compaction */
        int rc = decode_more(r, err);
        if (rc < 0) return rc;
        scanned += r->start;
    }
}

uint64_t sx_lines_number(const sx_lines *r) { return r->line_no; }

void sx_lines_progress(const sx_lines *r, uint64_t *consumed, uint64_t *total) {
    *consumed = r->consumed;
    *total = r->total;
}

void sx_lines_close(sx_lines *r) {
    if (!r) return;
    if (r->own_file && r->f) fclose(r->f);
    if (r->fmt == FMT_GZIP) inflateEnd(&r->zs);
    if (r->zd) ZSTD_freeDStream(r->zd);
    free(r->in);
    free(r->buf);
    free(r->path);
    free(r);
}
