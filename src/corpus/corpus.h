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

#include <cjson/cJSON.h>

#include "../common/sx.h"
#include "../shard/shard.h"

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

/* Limits of one record, enforced before anything is stored. */
#define SX_TITLE_MAX 4096
#define SX_ABSTRACT_MAX 65536
#define SX_AUTHORS_MAX 262144
#define SX_CATEGORY_MAX_LEN 32
#define SX_CATEGORIES_MAX 32
#define SX_EMBEDDING_MAX_DIM 4096
#define SX_EMBEDDING_MAX_ABS 1e30 /* largest magnitude of a given embedding's number */

/* Room for a space-separated list of categories, NUL included. */
#define SX_CATEGORIES_BUF (SX_CATEGORIES_MAX * (SX_CATEGORY_MAX_LEN + 1) + 1)

/* Checks one arXiv category code (len bytes): 1..SX_CATEGORY_MAX_LEN ASCII
 * letters, digits, . - _; not an archive name ("cs"), not a known code in
 * another case ("CS.LG"), the message then saying what to use (see
 * category.c). Returns 0 or SX_EINVAL. The one place of the rule. */
int sx_category_check(const char *code, size_t len, sx_err *err);

/* The archive names that are not categories ("cs", "math", ...): *n (OUT)
 * of them. What the OpenAPI schema lists under the code's "not". */
const char *const *sx_category_archives(int *n);

/* Flags of sx_categories_parse. */
enum {
    SX_CATEGORIES_PATTERNS = 1, /* a search filter: "X.*" (an archive or a code
                                   with sub-categories, e.g. cs.*, astro-ph.*)
                                   stands for X and all its categories */
};

/* Reads a list of category codes -- a string of codes separated by spaces
 * or tabs, or an array of one code per element -- checking each with
 * sx_category_check (or, with SX_CATEGORIES_PATTERNS, as a pattern), into
 * out (SX_CATEGORIES_BUF bytes; codes separated by one space) and their
 * number into *n_out (OUT). Returns 0 or SX_EINVAL (wrong type, a bad
 * code, more than SX_CATEGORIES_MAX). */
int sx_categories_parse(const cJSON *v, int flags, char *out, int *n_out, sx_err *err);

/* A validated paper: doc's strings live in buf (owned). */
typedef struct sx_record {
    sx_doc doc;       /* id, title, abstract, authors, categories (space-
                         separated), update_date; absent fields are "" */
    float *embedding; /* precomputed vector when the input had one, else NULL */
    int dim;          /* its length */
    char *buf;
} sx_record;

/* How strictly sx_record_from_cjson reads a paper. */
typedef enum {
    SX_RECORD_KAGGLE = 0, /* a Kaggle snapshot line: other fields ignored, null = absent */
    SX_RECORD_STRICT = 1, /* the API's PaperInput: an unknown field or a null is an error
                             (update_date alone may be null) */
} sx_record_mode;

/* Validates one paper object (Kaggle arXiv fields; "paper_id" is accepted
 * for "id"; "categories" a string or an array; optional "embedding") into r
 * (OUT). Returns 0 or SX_EINVAL / SX_ENOMEM with a message naming the field;
 * on error r holds nothing to free. */
int sx_record_from_cjson(const cJSON *obj, sx_record_mode mode, sx_record *r, sx_err *err);

/* The fields a strict record may have (NULL-terminated): what web/openapi.json
 * lists for PaperInput. */
extern const char *const sx_record_fields[];

/* Parses one JSON line (len bytes; see sx_json_parse: trailing data and
 * U+0000 are refused) and validates it as a Kaggle record. */
int sx_record_parse(const char *json, size_t len, sx_record *r, sx_err *err);

/* Checks a paper id: 1..SX_ID_MAX_LEN bytes of letters, digits, . / - _
 * (sx_doc_check_id of shard.h, the one place of the rule). Returns 0 or
 * SX_EINVAL. */
int sx_record_check_id(const char *id, sx_err *err);

/* Frees what r owns and zeroes it. */
void sx_record_clear(sx_record *r);

/* A float32 matrix in a NumPy .npy file (memory-mapped, read-only). */
typedef struct sx_npy sx_npy;

/* Opens and validates an .npy file of shape (rows, dim), dtype '<f4', C
 * order. Returns 0, SX_ENOTFOUND, SX_EIO, SX_ECORRUPT or SX_EUNSUPPORTED. */
int sx_npy_open(const char *path, sx_npy **out, sx_err *err);

/* Number of rows and columns. */
uint64_t sx_npy_rows(const sx_npy *n);
int sx_npy_cols(const sx_npy *n);

/* Copies row `row` (< rows) into out (cols floats). */
void sx_npy_row(const sx_npy *n, uint64_t row, float *out);

/* Unmaps the file. NULL is a no-op. */
void sx_npy_close(sx_npy *n);

/* Writes the text that gets embedded, "title\nabstract", into out when it
 * fits in cap bytes (NUL included) and returns its length. */
size_t sx_record_text(const sx_doc *doc, char *out, size_t cap);

/* A paper as the API shows it (the Paper / SearchResult schema of
 * web/openapi.json): paper_id, title, abstract, authors, categories (an
 * array), update_date (null when absent) and, when score is not NULL, the
 * score rounded to 6 decimals. The HTTP routes and `semdex search --json`
 * both use it. NULL when out of memory. */
cJSON *sx_doc_json(const sx_doc *d, const float *score);

#endif
