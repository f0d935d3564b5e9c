/*
 * query.c - a search as the API takes it: validation of its fields and its
 * execution by mode (query.h). Shared by the routes (POST and GET /search,
 * /papers/{id}/similar) and `semdex search`.
 *
 * Execution. A semantic search is one backend search of k = offset + top_k
 * (+1 when a paper is excluded); keyword and authors searches likewise, in
 * the shards' keyword index; a hybrid one runs both with at least
 * SX_HYBRID_DEPTH and fuses them by reciprocal rank. sort=date reorders the
 * best SX_DATE_SORT_DEPTH newest first; min_score drops results before
 * paging. Filters (categories and patterns, dates, authors) go down to the
 * shards, which apply them inside the search (shard.c's one bitmap), so a
 * filtered page is as full as an unfiltered one.
 */
#include "query.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../keyword/keyword.h"
#include "../text/text.h"

const char *const sx_query_modes[] = {"semantic", "keyword", "hybrid", "authors", NULL};

/* ---- JSON helpers ------------------------------------------------------------ */

/* Reads an optional integer field in [lo, hi] (def when absent; null is not
 * a value: the schema has no nullable field). 0 or SX_EINVAL. */
static int int_field(const cJSON *obj, const char *name, long lo, long hi, long def, long *out,
                     sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = def;
    if (!v) return 0;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < (double)lo || d > (double)hi) {
        sx_err_set(err, SX_EINVAL, "'%s' must be an integer in [%ld, %ld]%s", name,
                   lo, hi, cJSON_IsNull(v) ? ", not null (leave it out for the default)" : "");
        return SX_EINVAL;
    }
    *out = (long)d;
    return 0;
}


/* Whether a and b are equal ignoring case and '_' / '-' ("topK", "top-k"
 * for "top_k"). */
static int loosely_equal(const char *a, const char *b) {
    for (;;) {
        while (*a == '_' || *a == '-') a++;
        while (*b == '_' || *b == '-') b++;
        if (!*a || !*b) return !*a && !*b;
        if (tolower((unsigned char)*a++) != tolower((unsigned char)*b++)) return 0;
    }
}

int sx_json_check_fields(const cJSON *obj, const char *const *known, const char *noun, sx_err *err) {
    const cJSON *f;
    cJSON_ArrayForEach(f, obj) {
        int i;
        for (i = 0; known[i] && strcmp(f->string, known[i]) != 0; i++) {}
        if (known[i]) continue;
        for (i = 0; known[i] && !loosely_equal(f->string, known[i]); i++) {}
        char fields[200] = "";
        for (int k = 0; known[k]; k++)
            snprintf(fields + strlen(fields), sizeof fields - strlen(fields), "%s%s", k ? ", " : "", known[k]);
        if (known[i])
            sx_err_set(err, SX_EINVAL, "unknown %s '%.64s'; did you mean '%s'?", noun,
                       f->string, known[i]);
        else
            sx_err_set(err, SX_EINVAL, "unknown %s '%.64s'; the %ss are %s", noun,
                       f->string, noun, fields);
        return SX_EINVAL;
    }
    return 0;
}

/* ---- search ----------------------------------------------------------------- */

/* The fields of each request body (the schema's properties; it has
 * additionalProperties false), and the query parameters of /similar. */
const char *const sx_search_fields[] = {"query", "mode", "top_k", "offset", "ef", "categories", "authors",
                                        "date_from", "date_to", "sort", "min_score", NULL};
const char *const sx_search_params[] = {"q", "mode", "top_k", "offset", "ef", "categories", "authors",
                                        "date_from", "date_to", "sort", "min_score", NULL};
const char *const sx_similar_params[] = {"top_k", "offset", "ef", "categories", "authors", "date_from",
                                         "date_to", "sort", "min_score", NULL};

/* Reads the search's category filter (absent: none) with the rule POST
 * /papers uses (sx_categories_parse: a string of space-separated codes or an
 * array; every code checked, with a hint for "cs" or "CS.LG"), patterns
 * such as cs.* allowed. */
static int parse_category_filter(const cJSON *v, sx_query_cats *f, sx_err *err) {
    f->n = 0;
    if (!v) return 0;
    if (cJSON_IsNull(v))
        return sx_err_set(err, SX_EINVAL, "'categories' must be a list of category codes, "
                          "not null (leave it out to search every category)");
    int rc = sx_categories_parse(v, SX_CATEGORIES_PATTERNS, f->buf, &f->n, err);
    if (rc < 0) return rc;
    char *p = f->buf;
    for (int i = 0; i < f->n; i++) {
        f->categories[i] = p;
        p += strcspn(p, " ");
        if (*p) *p++ = '\0';
    }
    return 0;
}

/* Checks one author name (from the 'authors' list or an authors-mode
 * query): UTF-8, 1..SX_AUTHOR_NAME_MAX_CHARS characters, not blank. (A name
 * that holds no surname, such as "!!", matches no paper.) 0 or answers
 * 400. */
static int check_author(const char *what, const char *z, sx_err *err) {
    size_t bad;
    if (sx_utf8_check(z, strlen(z), &bad) != 0) {
        sx_err_set(err, SX_EINVAL, "%s is not valid UTF-8 (byte %zu)", what, bad);
        return SX_EINVAL;
    }
    if (sx_json_chars(z) < 1 || sx_json_chars(z) > SX_AUTHOR_NAME_MAX_CHARS || sx_json_blank(z)) {
        sx_err_set(err, SX_EINVAL, "%s must be a name of 1 to %d characters, not only "
                   "white space", what, SX_AUTHOR_NAME_MAX_CHARS);
        return SX_EINVAL;
    }
    return 0;
}

/* Reads an optional string field that must be one of words (def when
 * absent); 0 or answers 400. */
static int enum_field(const cJSON *obj, const char *name, const char *const *words, int def, int *out,
                      sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = def;
    if (!v) return 0;
    for (int i = 0; words[i] && cJSON_IsString(v); i++)
        if (strcmp(v->valuestring, words[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[128] = "";
    for (int i = 0; words[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", i ? ", " : "", words[i]);
    sx_err_set(err, SX_EINVAL, "'%s' must be one of %s%s", name, list,
               cJSON_IsNull(v) ? ", not null (leave it out for the default)" : "");
    return SX_EINVAL;
}

/* Reads an optional date field "YYYY-MM-DD" (NULL when absent); 0 or
 * answers 400. */
static int date_field(const cJSON *obj, const char *name, const char **out, uint32_t *days,
                      sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!v) return 0;
    if (!cJSON_IsString(v) || sx_date_parse(v->valuestring, days) < 0) {
        sx_err_set(err, SX_EINVAL, "'%s' must be a date YYYY-MM-DD (a real day, e.g. "
                   "2024-02-29)%s", name, cJSON_IsNull(v) ? ", not null (leave it out for no bound)" : "");
        return SX_EINVAL;
    }
    *out = v->valuestring;
    return 0;
}

int sx_query_parse(const cJSON *req, int kind, sx_query *r, sx_err *err) {
    int similar = kind == SX_QUERY_SIMILAR, from_args = kind != SX_QUERY_BODY;
    memset(r, 0, sizeof *r);
    const char *const *known = similar ? sx_similar_params : from_args ? sx_search_params : sx_search_fields;
    if (sx_json_check_fields(req, known, from_args ? "query parameter" : "field", err) < 0) return SX_EINVAL;
    const char *qname = from_args ? "q" : "query";
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(req, qname);
    size_t bad;
    if (!similar) {
        if (!cJSON_IsString(q)) {
            sx_err_set(err, SX_EINVAL, "'%s' is required and must be a string", qname);
            return SX_EINVAL;
        }
        if (sx_utf8_check(q->valuestring, strlen(q->valuestring), &bad) != 0) {
            sx_err_set(err, SX_EINVAL, "'%s' is not valid UTF-8 (byte %zu)", qname, bad);
            return SX_EINVAL;
        }
        if (sx_json_chars(q->valuestring) < 1 || sx_json_chars(q->valuestring) > SX_QUERY_MAX_CHARS) {
            sx_err_set(err, SX_EINVAL, "'%s' must have 1 to %d characters", qname,
                       SX_QUERY_MAX_CHARS);
            return SX_EINVAL;
        }
        if (sx_json_blank(q->valuestring)) {
            sx_err_set(err, SX_EINVAL, "'%s' is blank: it has only white space", qname);
            return SX_EINVAL;
        }
        r->query = q->valuestring;
    }
    static const char *const sorts[] = {"relevance", "date", NULL};
    uint32_t d_from = 0, d_to = 0;
    if ((!similar && enum_field(req, "mode", sx_query_modes, SX_QMODE_SEMANTIC, &r->mode, err) < 0) ||
        int_field(req, "top_k", 1, SX_TOP_K_MAX, 10, &r->top_k, err) < 0 ||
        int_field(req, "offset", 0, SX_OFFSET_MAX, 0, &r->offset, err) < 0 ||
        int_field(req, "ef", 1, SX_EF_MAX, 0, &r->ef, err) < 0 ||
        parse_category_filter(cJSON_GetObjectItemCaseSensitive(req, "categories"), &r->cats, err) < 0 ||
        date_field(req, "date_from", &r->date_from, &d_from, err) < 0 ||
        date_field(req, "date_to", &r->date_to, &d_to, err) < 0 ||
        enum_field(req, "sort", sorts, 0, &r->sort_date, err) < 0)
        return SX_EINVAL;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(req, "min_score");
    if (ms && (!cJSON_IsNumber(ms) || !isfinite(ms->valuedouble))) {
        sx_err_set(err, SX_EINVAL, "'min_score' must be a number%s",
                   cJSON_IsNull(ms) ? ", not null (leave it out for no bound)" : "");
        return SX_EINVAL;
    }
    r->has_min_score = ms != NULL;
    r->min_score = ms ? ms->valuedouble : 0;
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(req, "authors");
    if (au) {
        if (!cJSON_IsArray(au) || cJSON_GetArraySize(au) < 1 || cJSON_GetArraySize(au) > SX_QUERY_AUTHORS_MAX) {
            sx_err_set(err, SX_EINVAL, "'authors' must be an array of 1 to %d names%s",
                       SX_QUERY_AUTHORS_MAX, cJSON_IsNull(au) ? ", not null (leave it out for no filter)" : "");
            return SX_EINVAL;
        }
        const cJSON *a;
        cJSON_ArrayForEach(a, au) {
            if (!cJSON_IsString(a)) {
                sx_err_set(err, SX_EINVAL, "'authors' must hold only strings");
                return SX_EINVAL;
            }
            if (check_author("an author in 'authors'", a->valuestring, err) < 0) return SX_EINVAL;
            r->authors[r->n_authors++] = a->valuestring;
        }
    }
    if (r->mode == SX_QMODE_AUTHORS) {
        /* the query is the names, separated by ';' */
        /* the query's names join the 'authors' list: papers by any of them */
        snprintf(r->names, sizeof r->names, "%s", r->query);
        for (char *p = r->names, *e; p; p = e) {
            e = strchr(p, ';');
            if (e) *e++ = '\0';
            while (*p == ' ' || *p == '\t') p++;
            if (!*p || sx_json_blank(p)) continue;
            if (r->n_authors == SX_AUTHOR_NAMES_MAX) { /* (SX_QUERY_AUTHORS_MAX of each) */
                sx_err_set(err, SX_EINVAL, "more than %d names in the query",
                           SX_QUERY_AUTHORS_MAX);
                return SX_EINVAL;
            }
            if (check_author("a name of the query", p, err) < 0) return SX_EINVAL;
            r->authors[r->n_authors++] = p;
        }
        if (r->n_authors == 0) {
            sx_err_set(err, SX_EINVAL, "mode 'authors' needs at least one name in the query");
            return SX_EINVAL;
        }
    }
    return 0;
}

/* Sets x up for a search of o (k hits). */
static int search_init(sx_query_search *x, sx_backend *b, const sx_search_opts *o, sx_err *err) {
    *x = (sx_query_search){.b = b, .so = *o};
    x->so.with_docs = 1;
    x->hits = malloc((size_t)o->k * sizeof *x->hits);
    return x->hits ? 0 : sx_err_set(err, SX_ENOMEM, "out of memory");
}

void sx_query_search_run(void *ctx, const float *vec) {
    sx_query_search *x = ctx;
    double t0 = sx_now();
    x->rc = sx_backend_search(x->b, vec, &x->so, x->hits, &x->n, &x->stats, &x->err);
    x->seconds = sx_now() - t0;
    x->done = 1;
}

int sx_query_search_rides_along(const sx_query_search *x) {
    return x->so.mode == SX_MODE_VECTOR && x->so.n_categories == 0 && x->so.n_authors == 0 &&
           !x->so.date_from && !x->so.date_to && x->so.k <= SX_TOP_K_MAX && x->so.ef <= 256;
}

/* Runs x unless it ran already; adds its time to *t_index and notes its
 * stages in *stats; returns its result code (its error in *err). */
static int search_finish(const float *vec, sx_query_search *x, double *t_index, sx_backend_stats *stats,
                         sx_err *err) {
    if (!x->done) sx_query_search_run(x, vec);
    *t_index += x->seconds;
    *stats = x->stats;
    if (x->rc < 0) *err = x->err;
    return x->rc;
}

/* An index into a hit array, with its id, for fusion by id. */
typedef struct {
    const char *id;
    int at;
} id_at;

static int id_at_cmp(const void *a, const void *b) { return strcmp(((const id_at *)a)->id, ((const id_at *)b)->id); }

/* Reciprocal rank fusion of two rankings (each best first, distinct ids)
 * into out (room for na + nb), which takes over their documents; *n (OUT)
 * how many, ordered best first (ties by id). 0 or SX_ENOMEM (then a and b
 * are released). */
static int fuse_rrf(sx_hit *a, int na, sx_hit *b, int nb, sx_hit *out, int *n) {
    id_at *ib = malloc((size_t)(nb ? nb : 1) * sizeof *ib);
    char *taken = calloc((size_t)(nb ? nb : 1), 1);
    *n = 0;
    if (!ib || !taken) {
        free(ib);
        free(taken);
        sx_hits_release(a, na);
        sx_hits_release(b, nb);
        return SX_ENOMEM;
    }
    for (int i = 0; i < nb; i++) ib[i] = (id_at){b[i].id, i};
    qsort(ib, (size_t)nb, sizeof *ib, id_at_cmp);
    for (int i = 0; i < na; i++) {
        out[*n] = a[i];
        out[*n].score = 1.0f / (SX_RRF_K + i + 1);
        id_at key = {a[i].id, 0};
        id_at *m = nb ? bsearch(&key, ib, (size_t)nb, sizeof *ib, id_at_cmp) : NULL;
        if (m) {
            out[*n].score += 1.0f / (SX_RRF_K + m->at + 1);
            taken[m->at] = 1;
            sx_hits_release(&b[m->at], 1);
        }
        (*n)++;
    }
    for (int i = 0; i < nb; i++)
        if (!taken[i]) {
            out[*n] = b[i];
            out[*n].score = 1.0f / (SX_RRF_K + i + 1);
            (*n)++;
        }
    free(ib);
    free(taken);
    *n = sx_hits_merge(out, *n, *n); /* order only */
    return 0;
}

/* Newest first by update_date (a date sorts before none), then by rank. */
typedef struct {
    const sx_hit *h;
    int rank;
} ranked;

static int by_date(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    const char *dx = x->h->doc ? x->h->doc->update_date : "", *dy = y->h->doc ? y->h->doc->update_date : "";
    uint32_t nx = 0, ny = 0;
    sx_date_parse(dx, &nx);
    sx_date_parse(dy, &ny);
    if (nx != ny) return nx > ny ? -1 : 1;
    return x->rank - y->rank;
}

/* Code point offsets of the byte spans sp (of text) as [[start, end], ...]. */
static cJSON *spans_json(const char *text, const sx_kw_span *sp, int n) {
    cJSON *arr = cJSON_CreateArray();
    size_t pos = 0, chars = 0;
    for (int i = 0; i < n; i++) {
        long se[2];
        uint32_t at[2] = {sp[i].start, sp[i].end};
        for (int k = 0; k < 2; k++) {
            for (; pos < at[k]; pos++)
                if (((unsigned char)text[pos] & 0xC0) != 0x80) chars++;
            se[k] = (long)chars;
        }
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)se[0]));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)se[1]));
        cJSON_AddItemToArray(arr, pair);
    }
    return arr;
}

/* The "highlights" of a result: where the query's terms occur in its title
 * and abstract (analysed as the keyword index does), as code point ranges. */
static cJSON *highlights_json(const char *query, const sx_doc *d) {
    cJSON *h = cJSON_CreateObject();
    const char *fields[2] = {d->title ? d->title : "", d->abstract ? d->abstract : ""};
    const char *names[2] = {"title", "abstract"};
    for (int f = 0; f < 2; f++) {
        sx_kw_span sp[64];
        int n = 0;
        if (sx_kw_highlight(query, fields[f], strlen(fields[f]), sp, 64, &n) < 0) n = 0;
        cJSON_AddItemToObject(h, names[f], spans_json(fields[f], sp, n));
    }
    return h;
}

int sx_query_run(sx_backend *b, const sx_query *r, float *vec, int have_vec, const char *exclude,
                 sx_query_embed_fn embed, void *embed_ctx, cJSON *results, double *t_index,
                 sx_backend_stats *stats, sx_err *err) {
    *t_index = 0;
    int depth = (int)(r->offset + r->top_k + (exclude ? 1 : 0));
    if (r->sort_date && depth < SX_DATE_SORT_DEPTH) depth = SX_DATE_SORT_DEPTH;
    int fused = r->mode == SX_QMODE_HYBRID;
    if (fused && depth < SX_HYBRID_DEPTH) depth = SX_HYBRID_DEPTH;
    sx_search_opts o = {.k = depth, .categories = r->cats.categories, .n_categories = r->cats.n,
                        .authors = r->authors, .n_authors = r->n_authors, .date_from = r->date_from,
                        .date_to = r->date_to};
    sx_query_search x = {0}, y = {0}; /* semantic, keyword or authors */
    int use_x = r->mode == SX_QMODE_SEMANTIC || r->mode == SX_QMODE_HYBRID, use_y = r->mode != SX_QMODE_SEMANTIC;
    int rc = 0;
    if (use_x) {
        o.ef = r->ef > 0 ? (int)(r->ef < depth ? depth : r->ef) : 0;
        rc = search_init(&x, b, &o, err);
    }
    if (rc == 0 && use_y) {
        sx_search_opts oy = o;
        oy.ef = 0;
        oy.mode = r->mode == SX_QMODE_AUTHORS ? SX_MODE_AUTHORS : SX_MODE_KEYWORD;
        oy.text = oy.mode == SX_MODE_KEYWORD ? r->query : NULL;
        rc = search_init(&y, b, &oy, err);
    }
    if (rc == 0 && use_x && !have_vec)
        rc = embed(embed_ctx, r->query, vec, &x, err);
    if (rc == 0 && use_x) rc = search_finish(vec, &x, t_index, stats, err);
    if (rc == 0 && use_y) rc = search_finish(NULL, &y, t_index, stats, err);
    if (rc < 0) {
        if (x.done && x.rc == 0) sx_hits_release(x.hits, x.n);
        if (y.done && y.rc == 0) sx_hits_release(y.hits, y.n);
        free(x.hits);
        free(y.hits);
        return rc;
    }
    sx_hit *hits = use_x ? x.hits : y.hits;
    int n = use_x ? x.n : y.n;
    sx_hit *fusedhits = NULL;
    if (fused) {
        fusedhits = malloc((size_t)(x.n + y.n + 1) * sizeof *fusedhits);
        if (!fusedhits) {
            sx_hits_release(x.hits, x.n);
            sx_hits_release(y.hits, y.n);
            rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        } else {
            rc = fuse_rrf(x.hits, x.n, y.hits, y.n, fusedhits, &n) < 0 ? sx_err_set(err, SX_ENOMEM, "out of memory") : 0;
            hits = fusedhits;
        }
    }
    ranked *order = rc == 0 ? malloc((size_t)(n ? n : 1) * sizeof *order) : NULL;
    if (rc == 0 && !order) {
        sx_hits_release(hits, n);
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (exclude && strcmp(hits[i].id, exclude) == 0) continue;
            if (r->has_min_score && r->mode != SX_QMODE_AUTHORS && hits[i].score < r->min_score) continue;
            if (!hits[i].doc) continue; /* a backend that could not fetch it */
            order[m] = (ranked){&hits[i], m};
            m++;
        }
        if (r->sort_date && r->mode != SX_QMODE_AUTHORS) qsort(order, (size_t)m, sizeof *order, by_date);
        for (long i = r->offset; i < m && i < r->offset + r->top_k; i++) {
            const sx_hit *h = order[i].h;
            cJSON *item = sx_doc_json(h->doc, r->mode == SX_QMODE_AUTHORS ? NULL : &h->score);
            if (r->query && r->mode != SX_QMODE_AUTHORS) cJSON_AddItemToObject(item, "highlights", highlights_json(r->query, h->doc));
            cJSON_AddItemToArray(results, item);
        }
        sx_hits_release(hits, n);
    }
    free(order);
    free(fusedhits);
    free(x.hits);
    free(y.hits);
    return rc;
}
