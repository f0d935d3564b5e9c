/*
 * corpus.h - reading paper records: Kaggle arXiv metadata JSON lines, plain,
 * gzip- or zstd-compressed, and validating one record from JSON (the same
 * rules serve `semdex ingest` and POST /papers).
 *
 *     sx_lines *in;
 *     if (sx_lines_open("part-02.jsonl.zst", &in, &err) < 0) ...
 *     const char *line; size_t len;
 *     while ((rc = sx_lines_next(in, &line, &len, &err)) > 0) { ... }
 *     sx_lines_close(in);
 */
#ifndef SX_CORPUS_H
#define SX_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"

/* Longest line accepted; longer lines are skipped and reported. */
#define SX_LINES_MAX (8u << 20)

typedef struct sx_lines sx_lines;

/* Opens path for reading lines; "-" is standard input. The compression (none,
 * gzip, zstd) is detected from the first bytes, not the file name. Returns 0,
 * SX_ENOTFOUND, SX_EIO or SX_ENOMEM. */
int sx_lines_open(const char *path, sx_lines **out, sx_err *err);

/* Reads the next line into *line (OUT; valid until the next call, NUL-
 * terminated, without the newline or a trailing '\r') and its length into
 * *len (OUT). Returns 1 for a line, 0 at the end, SX_EFULL for a line longer
 * than SX_LINES_MAX (already skipped: calling again continues after it), or
 * SX_EIO / SX_ECORRUPT for a read or decompression error (final). */
int sx_lines_next(sx_lines *in, const char **line, size_t *len, sx_err *err);

/* 1-based number of the line last returned (or skipped). */
uint64_t sx_lines_number(const sx_lines *in);

/* Compressed bytes consumed so far and the file's size (0 when unknown, e.g.
 * a pipe): what a progress bar needs. */
void sx_lines_progress(const sx_lines *in, uint64_t *consumed, uint64_t *total);

/* Closes the reader. NULL is a no-op. */
void sx_lines_close(sx_lines *in);

#endif
