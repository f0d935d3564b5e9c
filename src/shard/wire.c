/*
 * wire.c - the checks of one upsert item as the Redis module receives it
 * (see shard.h): a vector argument's size, the document codec, the id
 * argument against the document's id, and the store's rules.
 *
 * They lived inside the module's command handler, entangled with the Redis
 * API (RedisModuleString, replies), where only a running redis-server could
 * reach them. Here they are plain functions over bytes, so the fuzz target
 * tests/fuzz/module.c and the unit tests call exactly what the module calls,
 * and the module keeps only the Redis glue (allocation, replies). The same
 * holds for a search's arguments (sx_wire_search_parse).
 */
#include "shard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../index/index.h"

int sx_wire_vector_len(size_t len, int dim, sx_err *err) {
    if (len == 0 || len % 4 != 0 || len / 4 > SX_INDEX_MAX_DIM)
        return sx_err_set(err, SX_EINVAL, "vector is %zu bytes, not a multiple of 4 in 4..%d", len,
                          4 * SX_INDEX_MAX_DIM);
    if (dim && len != (size_t)dim * 4)
        return sx_err_set(err, SX_EINVAL, "vector is %zu bytes, the shard's dim %d needs %d", len, dim,
                          dim * 4);
    return (int)(len / 4);
}

int sx_wire_item(const char *id, size_t idlen, const void *vec, size_t vlen, const void *doc,
                 size_t dlen, float *v_out, sx_doc *d_out, sx_err *err) {
    int dim = (int)(vlen / 4);
    sx_le32_copy(v_out, vec, (size_t)dim);
    int rc = sx_doc_decode(doc, dlen, d_out, err);
    if (rc < 0) return sx_err_prefix(err, "bad doc");
    if (strlen(d_out->id) != idlen || memcmp(d_out->id, id, idlen) != 0)
        return sx_err_set(err, SX_EINVAL, "the doc's id '%.63s' differs from the id argument", d_out->id);
    if ((rc = sx_doc_check(d_out, err)) < 0) return rc;
    return sx_vector_check(v_out, dim, err);
}

/* ---- a search's arguments ---- */

/* Parses a decimal integer argument in [lo, hi] as Redis's
 * RedisModule_StringToLongLong does (an optional '-', digits, no spaces,
 * no leading zeros or '+'); 0 or -1. */
int sx_wire_arg_int(const sx_wire_arg *a, long long lo, long long hi, long long *out) {
    size_t i = 0;
    int neg = 0;
    if (a->len == 0 || a->len > 20) return -1;
    if (a->p[0] == '-') neg = 1, i = 1;
    if (i == a->len || (a->p[i] == '0' && a->len > i + 1) || (neg && a->p[i] == '0')) return -1;
    unsigned long long v = 0;
    for (; i < a->len; i++) {
        if (a->p[i] < '0' || a->p[i] > '9') return -1;
        unsigned long long d = (unsigned long long)(a->p[i] - '0');
        if (v > (9223372036854775807ull - d) / 10) return -1;
        v = v * 10 + d;
    }
    long long x = neg ? -(long long)v : (long long)v;
    if (x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

/* 1 when the argument equals word (case-insensitive). */
int sx_wire_arg_is(const sx_wire_arg *a, const char *word) {
    size_t n = strlen(word);
    if (a->len != n) return 0;
    return strncasecmp(a->p, word, n) == 0;
}

/* A NUL-terminated copy of argument a kept in s; NULL when it holds a NUL
 * byte or memory runs out (*oom set). */
static const char *keep_str(sx_wire_search *s, const sx_wire_arg *a, int *oom) {
    if (memchr(a->p, 0, a->len)) return NULL;
    char *c = malloc(a->len + 1);
    if (!c) {
        *oom = 1;
        return NULL;
    }
    memcpy(c, a->p, a->len);
    c[a->len] = 0;
    s->strs[s->n_strs++] = c;
    return c;
}

/* Copies n arguments; NULL when one cannot be kept. */
static const char *const *keep_strs(sx_wire_search *s, const sx_wire_arg *a, int n, int *oom) {
    const char **first = (const char **)s->strs + s->n_strs;
    for (int i = 0; i < n; i++)
        if (!keep_str(s, &a[i], oom)) return NULL;
    return first;
}

void sx_wire_search_free(sx_wire_search *s) {
    if (!s) return;
    for (int i = 0; i < s->n_strs; i++) free(s->strs[i]);
    free(s->strs);
    free(s->q);
    memset(s, 0, sizeof *s);
}

int sx_wire_search_parse(const sx_wire_arg *argv, int argc, int first_index, int dim, sx_wire_search *out,
                         sx_err *err) {
    memset(out, 0, sizeof *out);
    if (argc < 3) return sx_err_set(err, SX_EINVAL, "a search needs a vector, k and ef");
    long long k, ef, nc = 0, na = 0;
    int withdocs = 0, cat_at = 0, auth_at = 0, text_at = 0, dates_at = 0, mode = SX_MODE_VECTOR, moded = 0;
    if (sx_wire_arg_int(&argv[1], 1, SX_WIRE_MAX_K, &k) < 0)
        return sx_err_set(err, SX_EINVAL, "k must be an integer in 1..%d", SX_WIRE_MAX_K);
    if (sx_wire_arg_int(&argv[2], 0, SX_WIRE_MAX_EF, &ef) < 0)
        return sx_err_set(err, SX_EINVAL, "ef must be an integer in 0..%d (0: the shard's default)", SX_WIRE_MAX_EF);
    for (int i = 3; i < argc; i++) {
        if (sx_wire_arg_is(&argv[i], "WITHDOCS") && !withdocs) {
            withdocs = 1;
        } else if (sx_wire_arg_is(&argv[i], "FILTER") && !cat_at && i + 1 < argc) {
            if (sx_wire_arg_int(&argv[i + 1], 1, SX_WIRE_MAX_FILTER, &nc) < 0 || i + 1 + nc >= argc)
                return sx_err_set(err, SX_EINVAL, "FILTER needs a count in 1..%d and that many categories",
                                  SX_WIRE_MAX_FILTER);
            cat_at = i + 2;
            i += 1 + (int)nc;
        } else if (sx_wire_arg_is(&argv[i], "AUTHORS") && !auth_at && i + 1 < argc) {
            if (sx_wire_arg_int(&argv[i + 1], 1, SX_AUTHOR_NAMES_MAX, &na) < 0 || i + 1 + na >= argc)
                return sx_err_set(err, SX_EINVAL, "AUTHORS needs a count in 1..%d and that many names",
                                  SX_AUTHOR_NAMES_MAX);
            auth_at = i + 2;
            i += 1 + (int)na;
        } else if (sx_wire_arg_is(&argv[i], "MODE") && !moded && i + 1 < argc) {
            moded = 1;
            i++;
            if (sx_wire_arg_is(&argv[i], "VECTOR")) mode = SX_MODE_VECTOR;
            else if (sx_wire_arg_is(&argv[i], "KEYWORD")) mode = SX_MODE_KEYWORD;
            else if (sx_wire_arg_is(&argv[i], "AUTHORS")) mode = SX_MODE_AUTHORS;
            else return sx_err_set(err, SX_EINVAL, "MODE must be VECTOR, KEYWORD or AUTHORS");
        } else if (sx_wire_arg_is(&argv[i], "TEXT") && !text_at && i + 1 < argc) {
            text_at = ++i;
        } else if (sx_wire_arg_is(&argv[i], "DATES") && !dates_at && i + 2 < argc) {
            dates_at = i + 1;
            i += 2;
        } else {
            return sx_err_set(err, SX_EINVAL, "syntax error at argument %d", first_index + i);
        }
    }
    if (mode == SX_MODE_KEYWORD && !text_at) return sx_err_set(err, SX_EINVAL, "MODE KEYWORD needs TEXT");
    if (mode == SX_MODE_AUTHORS && !auth_at) return sx_err_set(err, SX_EINVAL, "MODE AUTHORS needs AUTHORS");
    if (mode != SX_MODE_VECTOR && argv[0].len != 0)
        return sx_err_set(err, SX_EINVAL, "the vector must be empty unless MODE is VECTOR");
    if (mode == SX_MODE_VECTOR) {
        int n = sx_wire_vector_len(argv[0].len, dim, err);
        if (n < 0) return n;
        if (!(out->q = malloc((size_t)n * sizeof *out->q))) return sx_err_set(err, SX_ENOMEM, "out of memory");
        sx_le32_copy(out->q, argv[0].p, (size_t)n);
        out->dim = n;
        for (int i = 0; i < n; i++)
            if (!isfinite(out->q[i])) {
                sx_wire_search_free(out);
                return sx_err_set(err, SX_EINVAL, "vector has a non-finite value at %d", i);
            }
    }
    out->o.k = (int)k;
    out->o.ef = (int)ef;
    out->o.mode = mode;
    out->withdocs = withdocs;
    int ok = 1, oom = 0;
    if (!(out->strs = calloc((size_t)(nc + na + 3), sizeof *out->strs))) {
        sx_wire_search_free(out);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    if (nc > 0) ok = ok && (out->o.categories = keep_strs(out, argv + cat_at, (int)nc, &oom)) != NULL;
    out->o.n_categories = (int)nc;
    if (na > 0) ok = ok && (out->o.authors = keep_strs(out, argv + auth_at, (int)na, &oom)) != NULL;
    out->o.n_authors = (int)na;
    if (text_at) ok = ok && (out->o.text = keep_str(out, &argv[text_at], &oom)) != NULL;
    if (dates_at) {
        ok = ok && (out->o.date_from = keep_str(out, &argv[dates_at], &oom)) != NULL &&
             (out->o.date_to = keep_str(out, &argv[dates_at + 1], &oom)) != NULL;
        uint32_t d;
        if (ok && ((*out->o.date_from && sx_date_parse(out->o.date_from, &d) < 0) ||
                   (*out->o.date_to && sx_date_parse(out->o.date_to, &d) < 0))) {
            sx_wire_search_free(out);
            return sx_err_set(err, SX_EINVAL, "DATES must be two YYYY-MM-DD dates (\"\" for an open end)");
        }
    }
    if (!ok) {
        sx_wire_search_free(out);
        return oom ? sx_err_set(err, SX_ENOMEM, "out of memory")
                   : sx_err_set(err, SX_EINVAL, "an argument holds a NUL byte");
    }
    return 0;
}
