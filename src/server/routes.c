/*
 * routes.c - the REST API: routing, validation, handlers, JSON.
 *
 * Every handler validates its whole input before doing any work (limits on
 * query length, k, offset and body size are checked before embedding or
 * searching), answers errors as {"error": {"code", "message"}} with the
 * status codes listed in docs/api.md, and builds its JSON with cJSON.
 *
 * Validation is strict and follows web/openapi.json, the schema the server
 * publishes: a body is exactly one JSON value (sx_json_parse: no trailing
 * data, no U+0000 that cJSON would cut a string at), a field the schema
 * does not list is an error naming it ("topk": did you mean 'top_k'?), null
 * is never a value (no field is nullable but a paper's update_date), and a
 * query or title of white space only is refused (the schema's "\S"
 * pattern). Lengths count characters, as maxLength does. Categories are
 * read and checked by sx_categories_parse (corpus/category.c) on /search
 * and POST /papers alike.
 *
 * One source of truth, kept by a test rather than generated: the limits
 * are C constants (server_int.h, corpus.h, shard.h) that the code reads
 * directly, and sx_schema_facts below lists, for each, where the schema
 * states it; tests/test-routes.c reads web/openapi.json and fails when any
 * differs, and when a request schema's properties differ from the fields
 * the code accepts (sx_search_fields, sx_upsert_fields, sx_record_fields).
 * Rejected: validating at run time against the embedded schema (a JSON
 * Schema engine in C for five objects, and messages worse than the
 * handlers' own), and generating C from the schema at build time (a code
 * generator to maintain for a dozen numbers). The test also keeps
 * schemathesis (tests/e2e/api-conformance.sh) honest: what it generates
 * from the schema is what the code accepts.
 *
 * 5xx answers carry a fixed sentence; their details (file names, cluster
 * nodes) go to the log. Every error body is valid UTF-8 (utf8_sanitize).
 *
 * Search: query -> vector (cache, else the micro-batcher) -> all shards
 * (k = offset + top_k, category filter) -> documents of the requested page.
 * Writes (POST /papers, DELETE) return only once durable (see store.c).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "../corpus/corpus.h"
#include "../text/text.h"
#include "server_int.h"

/* Copies in to out (cap bytes, NUL included) as valid UTF-8: every byte that
 * does not start a well-formed sequence is written as the text "\xFF", so
 * that an error echoing a path or an id the client sent stays valid JSON
 * text whatever bytes it holds (a message cut inside a sequence too). */
static void utf8_sanitize(const char *in, char *out, size_t cap) {
    size_t len = strlen(in), o = 0, bad;
    while (len > 0) {
        size_t good = sx_utf8_check(in, len, &bad) == 0 ? len : bad;
        if (o + good + 1 > cap) { /* no room: cut at a character boundary */
            good = cap - 1 - o;
            while (good > 0 && ((unsigned char)in[good] & 0xC0) == 0x80) good--;
            memcpy(out + o, in, good);
            o += good;
            break;
        }
        memcpy(out + o, in, good);
        o += good;
        in += good;
        len -= good;
        if (len == 0 || o + 5 > cap) break;
        o += (size_t)snprintf(out + o, cap - o, "\\x%02X", (unsigned char)*in);
        in++;
        len--;
    }
    out[o] = '\0';
}

void sx_respond_error(sx_response *res, int status, const char *code, const char *fmt, ...) {
    char raw[1024], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    utf8_sanitize(raw, msg, sizeof msg);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    res->status = status;
    res->body.len = 0;
    if (json) {
        sx_buf_append(&res->body, json, strlen(json));
        free(json);
    }
}

/* Replaces the response body with the printed JSON of root (then freed). */
static void respond_json(sx_response *res, int status, cJSON *root) {
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) {
        sx_respond_error(res, 500, "internal", "out of memory building the response");
        return;
    }
    res->status = status;
    res->body.len = 0;
    sx_buf_append(&res->body, json, strlen(json));
    free(json);
}

/* Maps a store/encoder/backend error to an HTTP error response. A 4xx
 * carries the message (it is about the request); a 5xx message names files,
 * directories and cluster nodes, so it goes to the log and the client gets a
 * fixed sentence; except a write that replicas did not acknowledge, whose
 * message (shard key and counts) tells the client to retry. */
static void respond_sx_error(const sx_request *rq, sx_response *res, const sx_err *err) {
    switch (err->code) {
    case SX_EINVAL: sx_respond_error(res, 400, "invalid_request", "%s", err->msg); break;
    case SX_ENOTFOUND: sx_respond_error(res, 404, "not_found", "%s", err->msg); break;
    case SX_EBUSY:
        sx_log(SX_LOG_WARN, "%s %s: unavailable: %s", rq->method, sx_route_name(rq->route), err->msg);
        sx_respond_error(res, 503, "unavailable", "the backend cannot complete the request now "
                         "(the server log has the details); retry it");
        break;
    case SX_ENOTDURABLE: /* the client must know its write is not confirmed */
        sx_log(SX_LOG_WARN, "%s %s: not durable: %s", rq->method, sx_route_name(rq->route), err->msg);
        sx_respond_error(res, 503, "unavailable", "%s", err->msg);
        break;
    default:
        sx_log(SX_LOG_ERROR, "%s %s: internal error: %s", rq->method, sx_route_name(rq->route), err->msg);
        sx_respond_error(res, 500, "internal", "internal error (the server log has the details)");
        break;
    }
}

/* ---- what the schema states --------------------------------------------------- */

#define SCHEMAS "/components/schemas/"
#define SIMILAR_PATH "/paths/~1papers~1{paper_id}~1similar/get/parameters"

/* Every limit the code enforces, with the JSON pointer (RFC 6901) of where
 * web/openapi.json states it; NULL-terminated. */
const sx_schema_fact sx_schema_facts[] = {
    {SCHEMAS "SearchRequest/properties/query/minLength", 1},
    {SCHEMAS "SearchRequest/properties/query/maxLength", SX_QUERY_MAX_CHARS},
    {SCHEMAS "SearchRequest/properties/top_k/minimum", 1},
    {SCHEMAS "SearchRequest/properties/top_k/maximum", SX_TOP_K_MAX},
    {SCHEMAS "SearchRequest/properties/top_k/default", 10},
    {SCHEMAS "SearchRequest/properties/offset/minimum", 0},
    {SCHEMAS "SearchRequest/properties/offset/maximum", SX_OFFSET_MAX},
    {SCHEMAS "SearchRequest/properties/offset/default", 0},
    {SCHEMAS "SearchRequest/properties/ef/minimum", 1},
    {SCHEMAS "SearchRequest/properties/ef/maximum", SX_EF_MAX},
    {SCHEMAS "CategoryList/oneOf/1/maxItems", SX_CATEGORIES_MAX},
    {SCHEMAS "CategoryCode/minLength", 1},
    {SCHEMAS "CategoryCode/maxLength", SX_CATEGORY_MAX_LEN},
    {SCHEMAS "UpsertRequest/properties/papers/minItems", 1},
    {SCHEMAS "UpsertRequest/properties/papers/maxItems", SX_BATCH_MAX_PAPERS},
    {SCHEMAS "PaperId/minLength", 1},
    {SCHEMAS "PaperId/maxLength", SX_ID_MAX_LEN},
    {SCHEMAS "PaperInput/properties/title/minLength", 1},
    {SCHEMAS "PaperInput/properties/title/maxLength", SX_TITLE_MAX},
    {SCHEMAS "PaperInput/properties/abstract/maxLength", SX_ABSTRACT_MAX},
    {SCHEMAS "PaperInput/properties/authors/maxLength", SX_AUTHORS_MAX},
    {SCHEMAS "PaperInput/properties/update_date/maxLength", 10},
    {SCHEMAS "PaperInput/properties/embedding/items/maximum", SX_EMBEDDING_MAX_ABS},
    {SCHEMAS "PaperInput/properties/embedding/items/minimum", -SX_EMBEDDING_MAX_ABS},
    {SIMILAR_PATH "/1/schema/minimum", 1},
    {SIMILAR_PATH "/1/schema/maximum", SX_TOP_K_MAX},
    {SIMILAR_PATH "/1/schema/default", 10},
    {NULL, 0},
};

/* ---- routing --------------------------------------------------------------- */

int sx_route_is_write(sx_route r) { return r == SX_ROUTE_PAPERS_UPSERT || r == SX_ROUTE_PAPER_DELETE; }

static int method_is(const sx_request *rq, const char *m) { return strcmp(rq->method, m) == 0; }

/* Whether the method of rq is one of allowed ("GET, DELETE"; GET allows
 * HEAD). Reads the list in place: request threads share nothing here (no
 * strtok, whose hidden state other threads would overwrite). */
static int method_allowed(const sx_request *rq, const char *allowed) {
    for (const char *m = allowed; *m;) {
        size_t n = strcspn(m, ", ");
        if ((strlen(rq->method) == n && strncmp(rq->method, m, n) == 0) ||
            (n == 3 && strncmp(m, "GET", 3) == 0 && method_is(rq, "HEAD")))
            return 1;
        m += n;
        m += strspn(m, ", ");
    }
    return 0;
}

/* Accepts the method for a route or answers 405 listing the allowed ones. */
static int allow(sx_request *rq, sx_route route, const char *allowed, sx_response *res) {
    if (method_allowed(rq, allowed)) {
        rq->route = route;
        return 0;
    }
    rq->route = route;
    snprintf(res->allow, sizeof res->allow, "%s", allowed);
    sx_respond_error(res, 405, "method_not_allowed", "%s %s is not supported; allowed: %s",
                     rq->method, rq->path, allowed);
    return 405;
}

int sx_route_request(sx_srv *s, sx_request *rq, char *id_buf, size_t id_cap, sx_response *res) {
    static const struct {
        const char *path;
        sx_route route;
        const char *methods;
    } fixed[] = {
        {"/", SX_ROUTE_PAGE, "GET"},
        {"/docs", SX_ROUTE_DOCS, "GET"},
        {"/openapi.json", SX_ROUTE_OPENAPI, "GET"},
        {"/health", SX_ROUTE_HEALTH, "GET"},
        {"/metrics", SX_ROUTE_METRICS, "GET"},
        {"/collections/info", SX_ROUTE_INFO, "GET"},
        {"/search", SX_ROUTE_SEARCH, "POST"},
        {"/papers", SX_ROUTE_PAPERS_UPSERT, "POST"},
    };
    const char *p = rq->path;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(p, fixed[i].path) == 0) return allow(rq, fixed[i].route, fixed[i].methods, res);
    if (strncmp(p, "/papers/", 8) == 0 && p[8]) {
        const char *id = p + 8;
        size_t len = strlen(id);
        const char *suffix = "/similar";
        size_t sl = strlen(suffix);
        sx_route route = SX_ROUTE_PAPER_GET;
        const char *methods = "GET, DELETE";
        if (len > sl && strcmp(id + len - sl, suffix) == 0) {
            len -= sl;
            route = SX_ROUTE_PAPER_SIMILAR;
            methods = "GET";
        }
        if (len >= id_cap) len = id_cap - 1; /* too long to exist: fails the id check later */
        memcpy(id_buf, id, len);
        id_buf[len] = '\0';
        rq->paper_id = id_buf;
        if (route == SX_ROUTE_PAPER_GET && method_is(rq, "DELETE")) route = SX_ROUTE_PAPER_DELETE;
        return allow(rq, route, methods, res);
    }
    rq->route = SX_ROUTE_OTHER;
    sx_respond_error(res, 404, "not_found", "no route %s %s; see /docs", rq->method, rq->path);
    return 404;
}

/* ---- JSON helpers ------------------------------------------------------------ */

/* Reads an optional integer field in [lo, hi] (def when absent; null is not
 * a value: the schema has no nullable field). Returns 0 or answers 400. */
static int int_field(const cJSON *obj, const char *name, long lo, long hi, long def, long *out,
                     sx_response *res) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = def;
    if (!v) return 0;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < (double)lo || d > (double)hi) {
        sx_respond_error(res, 400, "invalid_request", "'%s' must be an integer in [%ld, %ld]%s", name,
                         lo, hi, cJSON_IsNull(v) ? ", not null (leave it out for the default)" : "");
        return -1;
    }
    *out = (long)d;
    return 0;
}

/* The fields of each request body (the schema's properties; it has
 * additionalProperties false). */
const char *const sx_search_fields[] = {"query", "top_k", "offset", "ef", "categories", NULL};
const char *const sx_upsert_fields[] = {"papers", NULL};

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

/* Answers 400 naming the first member of obj that is not in known. */
static int check_fields(const cJSON *obj, const char *const *known, sx_response *res) {
    const cJSON *f;
    cJSON_ArrayForEach(f, obj) {
        int i;
        for (i = 0; known[i] && strcmp(f->string, known[i]) != 0; i++) {}
        if (known[i]) continue;
        for (i = 0; known[i] && !loosely_equal(f->string, known[i]); i++) {}
        char fields[160] = "";
        for (int k = 0; known[k]; k++)
            snprintf(fields + strlen(fields), sizeof fields - strlen(fields), "%s%s", k ? ", " : "", known[k]);
        if (known[i])
            sx_respond_error(res, 400, "invalid_request", "unknown field '%.64s'; did you mean '%s'?",
                             f->string, known[i]);
        else
            sx_respond_error(res, 400, "invalid_request", "unknown field '%.64s'; the fields are %s",
                             f->string, fields);
        return -1;
    }
    return 0;
}

/* Parses the request body as exactly one JSON object (sx_json_parse:
 * nothing but white space after it, no U+0000 in a string), or answers 400. */
static cJSON *parse_body(const sx_request *rq, sx_response *res) {
    cJSON *root;
    sx_err err = {0};
    int rc = sx_json_parse(rq->body, rq->body_len, &root, &err);
    if (rc == SX_ECORRUPT) {
        sx_respond_error(res, 400, "invalid_json", "the body is %s", err.msg);
        return NULL;
    }
    if (rc < 0) {
        respond_sx_error(rq, res, &err);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        sx_respond_error(res, 400, "invalid_request", "the body must be a JSON object");
        return NULL;
    }
    return root;
}

/* ---- search ----------------------------------------------------------------- */

typedef struct {
    const char *categories[SX_CATEGORIES_MAX];
    int n;
    char buf[SX_CATEGORIES_BUF]; /* the codes the pointers point into */
} cat_filter;

/* Reads the search's category filter (absent: none) with the rule POST
 * /papers uses (sx_categories_parse: a string of space-separated codes or an
 * array; every code checked, with a hint for "cs" or "CS.LG"). */
static int parse_category_filter(const cJSON *v, cat_filter *f, sx_response *res) {
    f->n = 0;
    if (!v) return 0;
    sx_err err = {0};
    if (cJSON_IsNull(v)) {
        sx_respond_error(res, 400, "invalid_request", "'categories' must be a list of category codes, "
                         "not null (leave it out to search every category)");
        return -1;
    }
    if (sx_categories_parse(v, f->buf, &f->n, &err) < 0) {
        sx_respond_error(res, 400, "invalid_request", "%s", err.msg);
        return -1;
    }
    char *p = f->buf;
    for (int i = 0; i < f->n; i++) {
        f->categories[i] = p;
        p += strcspn(p, " ");
        if (*p) *p++ = '\0';
    }
    return 0;
}

/* One index search: what to look for and what came back. It runs on the
 * request thread, or rides along with the query's embedding batch and runs
 * on an encoder thread (see batcher.c). */
typedef struct {
    sx_srv *s;
    long top_k, offset;  /* the page: hits [offset, offset + top_k) */
    const char *exclude; /* a paper id left out (for /similar), or NULL */
    sx_search_opts so;
    sx_hit *hits;        /* the caller frees them */
    int n, rc, done;
    double seconds;
    sx_backend_stats stats; /* where the search's time went */
    sx_err err;
} index_search;

/* Sets x up for the hits [offset, offset + top_k), exclude (may be NULL) left
 * out. */
static int search_init(index_search *x, sx_srv *s, long top_k, long offset, long ef,
                       const cat_filter *f, const char *exclude, sx_err *err) {
    int k = (int)(offset + top_k + (exclude ? 1 : 0));
    *x = (index_search){.s = s, .top_k = top_k, .offset = offset, .exclude = exclude};
    x->so = (sx_search_opts){.k = k, .ef = ef > 0 ? (int)(ef < k ? k : ef) : 0,
                             .categories = f ? f->categories : NULL, .n_categories = f ? f->n : 0,
                             .with_docs = 1};
    x->hits = malloc((size_t)k * sizeof *x->hits);
    return x->hits ? 0 : sx_err_set(err, SX_ENOMEM, "out of memory");
}

static void search_run(void *ctx, const float *vec) {
    index_search *x = ctx;
    double t0 = sx_now();
    x->rc = sx_backend_search(x->s->backend, vec, &x->so, x->hits, &x->n, &x->stats, &x->err);
    x->seconds = sx_now() - t0;
    x->done = 1;
}

/* Whether x may ride along with an embedding batch: only searches of small,
 * bounded cost (no category filter, which may fall back to a scan; modest k
 * and ef), since every query of the batch waits for the slowest. */
static int rides_along(const index_search *x) {
    return x->so.n_categories == 0 && x->so.k <= SX_TOP_K_MAX && x->so.ef <= 256;
}

/* The query vector: from the cache, or embedded (and cached), with the search
 * x riding along when it may. */
static int query_vector(sx_srv *s, sx_request *rq, const char *q, size_t len, float *vec,
                        index_search *x, int *cached, sx_err *err) {
    *cached = s->cache && sx_lru_get(s->cache, q, len, vec);
    if (s->cache) sx_metrics_cache(s->metrics, *cached);
    if (*cached) return 0;
    double t0 = sx_now();
    int rc = sx_batcher_embed(s->batcher, q, len, vec, rides_along(x) ? search_run : NULL, x, &rq->embed, err);
    rq->t_embed = sx_now() - t0 - x->seconds;
    if (rc == 0 && s->cache) sx_lru_put(s->cache, q, len, vec);
    return rc;
}

/* Runs the search x (unless it ran already), appends the hits of its page
 * with the documents they carry to results and releases the hits. */
static int search_page(sx_request *rq, const float *vec, index_search *x, cJSON *results,
                       sx_err *err) {
    if (!x->done) search_run(x, vec);
    rq->t_index = x->seconds;
    rq->search = x->stats;
    int rc = x->rc;
    if (rc < 0) *err = x->err;
    long skipped = 0, added = 0;
    for (int i = 0; rc == 0 && i < x->n && added < x->top_k; i++) {
        const sx_hit *h = &x->hits[i];
        if (x->exclude && strcmp(h->id, x->exclude) == 0) continue;
        if (skipped < x->offset) {
            skipped++;
            continue;
        }
        if (!h->doc) continue; /* a backend that could not fetch it */
        cJSON_AddItemToArray(results, sx_doc_json(h->doc, &h->score));
        added++;
    }
    sx_hits_release(x->hits, x->n);
    return rc;
}

static void handle_search(sx_srv *s, sx_request *rq, sx_response *res) {
    double t0 = sx_now();
    cJSON *req = parse_body(rq, res);
    if (!req) return;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(req, "query");
    long top_k, offset, ef;
    cat_filter f;
    size_t bad;
    if (check_fields(req, sx_search_fields, res) < 0) {
        /* answered */
    } else if (!cJSON_IsString(q)) {
        sx_respond_error(res, 400, "invalid_request", "'query' is required and must be a string");
    } else if (sx_utf8_check(q->valuestring, strlen(q->valuestring), &bad) != 0) {
        sx_respond_error(res, 400, "invalid_request", "'query' is not valid UTF-8 (byte %zu)", bad);
    } else if (sx_json_chars(q->valuestring) < 1 || sx_json_chars(q->valuestring) > SX_QUERY_MAX_CHARS) {
        sx_respond_error(res, 400, "invalid_request", "'query' must have 1 to %d characters",
                         SX_QUERY_MAX_CHARS);
    } else if (sx_json_blank(q->valuestring)) {
        sx_respond_error(res, 400, "invalid_request", "'query' is blank: it has only white space");
    } else if (int_field(req, "top_k", 1, SX_TOP_K_MAX, 10, &top_k, res) == 0 &&
               int_field(req, "offset", 0, SX_OFFSET_MAX, 0, &offset, res) == 0 &&
               int_field(req, "ef", 1, SX_EF_MAX, 0, &ef, res) == 0 &&
               parse_category_filter(cJSON_GetObjectItemCaseSensitive(req, "categories"), &f, res) == 0) {
        snprintf(rq->query, sizeof rq->query, "%s", q->valuestring);
        float *vec = malloc((size_t)s->dim * sizeof *vec);
        sx_err err = {0};
        int cached = 0;
        index_search x;
        cJSON *out = cJSON_CreateObject();
        cJSON *results = cJSON_AddArrayToObject(out, "results");
        int rc = vec ? search_init(&x, s, top_k, offset, ef, &f, NULL, &err)
                     : sx_err_set(&err, SX_ENOMEM, "out of memory");
        if (rc == 0) {
            rc = query_vector(s, rq, q->valuestring, strlen(q->valuestring), vec, &x, &cached, &err);
            if (rc == 0) rc = search_page(rq, vec, &x, results, &err);
            free(x.hits);
        }
        free(vec);
        if (rc < 0) {
            cJSON_Delete(out);
            respond_sx_error(rq, res, &err);
        } else {
            cJSON_AddNumberToObject(out, "took_ms", round((sx_now() - t0) * 1e6) / 1e3);
            cJSON_AddNumberToObject(out, "embedding_ms", round(rq->t_embed * 1e6) / 1e3);
            cJSON_AddNumberToObject(out, "index_ms", round(rq->t_index * 1e6) / 1e3);
            cJSON_AddBoolToObject(out, "cached", cached);
            cJSON_AddNumberToObject(out, "offset", (double)offset);
            cJSON_AddNumberToObject(out, "top_k", (double)top_k);
            respond_json(res, 200, out);
        }
    }
    cJSON_Delete(req);
}

/* ---- papers ----------------------------------------------------------------- */

static void handle_paper_get(sx_srv *s, sx_request *rq, sx_response *res) {
    sx_doc *d = NULL;
    sx_err err = {0};
    if (sx_backend_get(s->backend, rq->paper_id, &d, NULL, &err) != 0) {
        if (err.code == SX_ENOTFOUND)
            sx_respond_error(res, 404, "not_found", "no paper with id '%.80s'", rq->paper_id);
        else
            respond_sx_error(rq, res, &err);
        return;
    }
    respond_json(res, 200, sx_doc_json(d, NULL));
    free(d);
}

/* The first query parameter that is not top_k (the one /similar takes). */
static enum MHD_Result first_unknown_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value) {
    const char **unknown = cls;
    if (strcmp(key, "top_k") == 0) return MHD_YES;
    *unknown = key;
    return MHD_NO;
}

static void handle_similar(sx_srv *s, sx_request *rq, sx_response *res) {
    double t0 = sx_now();
    const char *v = rq->conn ? MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "top_k") : NULL;
    const char *unknown = NULL;
    if (rq->conn) MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, first_unknown_arg, &unknown);
    if (unknown) {
        sx_respond_error(res, 400, "invalid_request", "unknown query parameter '%.64s'%s", unknown,
                         loosely_equal(unknown, "top_k") ? "; did you mean 'top_k'?" : "; the one parameter is top_k");
        return;
    }
    long top_k = 10;
    if (v) {
        char *end;
        top_k = strtol(v, &end, 10);
        if (!*v || *v == ' ' || *v == '+' || *end || top_k < 1 || top_k > SX_TOP_K_MAX) {
            sx_respond_error(res, 400, "invalid_request", "'top_k' must be an integer in [1, %d]",
                             SX_TOP_K_MAX);
            return;
        }
    }
    float *vec = malloc((size_t)s->dim * sizeof *vec);
    sx_err err = {0};
    int rc = vec ? sx_backend_get(s->backend, rq->paper_id, NULL, vec, &err)
                 : sx_err_set(&err, SX_ENOMEM, "out of memory");
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "paper_id", rq->paper_id);
    cJSON *results = cJSON_AddArrayToObject(out, "results");
    index_search x;
    if (rc == 0 && (rc = search_init(&x, s, top_k, 0, 0, NULL, rq->paper_id, &err)) == 0) {
        rc = search_page(rq, vec, &x, results, &err);
        free(x.hits);
    }
    free(vec);
    if (rc < 0) {
        cJSON_Delete(out);
        if (err.code == SX_ENOTFOUND)
            sx_respond_error(res, 404, "not_found", "no paper with id '%.80s'", rq->paper_id);
        else
            respond_sx_error(rq, res, &err);
        return;
    }
    cJSON_AddNumberToObject(out, "took_ms", round((sx_now() - t0) * 1e6) / 1e3);
    cJSON_AddNumberToObject(out, "top_k", (double)top_k);
    respond_json(res, 200, out);
}

/* Validates every paper of the batch into recs; answers 400 on the first bad one. */
static int parse_papers(sx_srv *s, const cJSON *arr, sx_record *recs, int n, sx_response *res) {
    for (int i = 0; i < n; i++) {
        sx_err err = {0};
        if (sx_record_from_cjson(cJSON_GetArrayItem(arr, i), SX_RECORD_STRICT, &recs[i], &err) != 0) {
            sx_respond_error(res, 400, "invalid_request", "papers[%d]: %s", i, err.msg);
            return -1;
        }
        if (recs[i].embedding) {
            double norm = 0;
            for (int k = 0; k < recs[i].dim; k++) norm += (double)recs[i].embedding[k] * recs[i].embedding[k];
            if (recs[i].dim != s->dim || norm == 0) {
                sx_respond_error(res, 400, "invalid_request",
                                 "papers[%d]: 'embedding' must be %d numbers, not all zero", i, s->dim);
                return -1;
            }
        }
    }
    return 0;
}

/* Fills vecs: given embeddings normalised, the others embedded in one
 * encoder call (which batches and sorts them by length itself). */
static int embed_papers(sx_srv *s, sx_record *recs, int n, float *vecs, sx_err *err) {
    char **texts = calloc((size_t)n, sizeof *texts);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    int *which = calloc((size_t)n, sizeof *which);
    float *out = malloc((size_t)n * (size_t)s->dim * sizeof *out);
    int m = 0, rc = 0;
    if (!texts || !lens || !which || !out) rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < n; i++) {
        float *v = vecs + (size_t)i * (size_t)s->dim;
        if (recs[i].embedding) {
            memcpy(v, recs[i].embedding, (size_t)s->dim * sizeof *v);
            sx_l2_normalize(v, s->dim);
            continue;
        }
        lens[m] = sx_record_text(&recs[i].doc, NULL, 0);
        texts[m] = malloc(lens[m] + 1);
        if (!texts[m]) {
            rc = sx_err_set(err, SX_ENOMEM, "out of memory");
            break;
        }
        sx_record_text(&recs[i].doc, texts[m], lens[m] + 1);
        which[m++] = i;
    }
    if (rc == 0 && m > 0) rc = sx_encoder_embed(s->encoder, m, (const char *const *)texts, lens, out, err);
    for (int j = 0; rc == 0 && j < m; j++)
        memcpy(vecs + (size_t)which[j] * (size_t)s->dim, out + (size_t)j * (size_t)s->dim,
               (size_t)s->dim * sizeof *out);
    for (int j = 0; texts && j < m; j++) free(texts[j]);
    free(texts);
    free(lens);
    free(which);
    free(out);
    return rc;
}

static void handle_papers_upsert(sx_srv *s, sx_request *rq, sx_response *res) {
    cJSON *req = parse_body(rq, res);
    if (!req) return;
    if (check_fields(req, sx_upsert_fields, res) < 0) {
        cJSON_Delete(req);
        return;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(req, "papers");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (n < 1 || n > SX_BATCH_MAX_PAPERS) {
        sx_respond_error(res, 400, "invalid_request", "'papers' must be an array of 1 to %d papers",
                         SX_BATCH_MAX_PAPERS);
        cJSON_Delete(req);
        return;
    }
    sx_record *recs = calloc((size_t)n, sizeof *recs);
    sx_doc *docs = calloc((size_t)n, sizeof *docs);
    float *vecs = malloc((size_t)n * (size_t)s->dim * sizeof *vecs);
    sx_err err = {0};
    if (!recs || !docs || !vecs) {
        sx_respond_error(res, 500, "internal", "out of memory");
    } else if (parse_papers(s, arr, recs, n, res) == 0) {
        double t0 = sx_now();
        int rc = embed_papers(s, recs, n, vecs, &err);
        rq->t_embed = sx_now() - t0;
        for (int i = 0; i < n; i++) docs[i] = recs[i].doc;
        if (rc == 0) rc = sx_backend_upsert(s->backend, n, docs, vecs, &err);
        if (rc < 0) {
            respond_sx_error(rq, res, &err);
        } else {
            cJSON *out = cJSON_CreateObject();
            cJSON_AddNumberToObject(out, "upserted", n);
            cJSON *ids = cJSON_AddArrayToObject(out, "ids");
            for (int i = 0; i < n; i++) cJSON_AddItemToArray(ids, cJSON_CreateString(docs[i].id));
            respond_json(res, 200, out);
        }
    }
    if (recs)
        for (int i = 0; i < n; i++) sx_record_clear(&recs[i]);
    free(recs);
    free(docs);
    free(vecs);
    cJSON_Delete(req);
}

static void handle_paper_delete(sx_srv *s, sx_request *rq, sx_response *res) {
    sx_err err = {0};
    if (sx_backend_delete(s->backend, rq->paper_id, &err) != 0) {
        if (err.code == SX_ENOTFOUND)
            sx_respond_error(res, 404, "not_found", "no paper with id '%.80s'", rq->paper_id);
        else
            respond_sx_error(rq, res, &err);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "deleted", rq->paper_id);
    respond_json(res, 200, out);
}

/* ---- collection, health, metrics, static ------------------------------------- */

static void handle_info(sx_srv *s, sx_request *rq, sx_response *res) {
    sx_backend_info in;
    sx_err err = {0};
    if (sx_backend_get_info(s->backend, &in, 0, &err) < 0) {
        respond_sx_error(rq, res, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "arxiv");
    cJSON_AddStringToObject(o, "backend", in.kind);
    cJSON_AddNumberToObject(o, "count", (double)in.count);
    cJSON_AddNumberToObject(o, "dimension", s->dim);
    cJSON_AddStringToObject(o, "metric", "cosine");
    cJSON *idx = cJSON_AddObjectToObject(o, "index");
    cJSON_AddStringToObject(idx, "type", "HNSW");
    cJSON_AddNumberToObject(idx, "M", in.params.M);
    cJSON_AddNumberToObject(idx, "ef_construction", in.params.ef_construction);
    cJSON_AddNumberToObject(idx, "ef_search", in.params.ef_search);
    cJSON_AddStringToObject(idx, "storage", in.params.storage == SX_STORAGE_SQ8 ? "sq8" : "fp32");
    cJSON_AddNumberToObject(idx, "rerank", in.params.rerank);
    cJSON_AddNumberToObject(idx, "shards", in.n_shards);
    cJSON_AddNumberToObject(idx, "max_level", in.max_level);
    cJSON_AddNumberToObject(idx, "deleted", (double)in.deleted);
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddNumberToObject(mem, "resident_bytes", (double)sx_current_rss());
    cJSON_AddNumberToObject(mem, "vectors_bytes", (double)in.bytes_vectors);
    cJSON_AddNumberToObject(mem, "graph_bytes", (double)in.bytes_graph);
    cJSON_AddNumberToObject(mem, "documents_bytes", (double)in.bytes_documents);
    cJSON_AddNumberToObject(mem, "other_bytes", (double)in.bytes_other);
    cJSON_AddNumberToObject(mem, "mapped_bytes", (double)in.bytes_mapped);
    if (strcmp(in.kind, "local") == 0) {
        cJSON *st = cJSON_AddObjectToObject(o, "storage");
        cJSON_AddNumberToObject(st, "generation", (double)in.generation);
        cJSON_AddNumberToObject(st, "wal_bytes", (double)in.wal_bytes);
        cJSON_AddNumberToObject(st, "load_seconds", round(in.open_seconds * 1000) / 1000);
    } else {
        cJSON *cl = cJSON_AddObjectToObject(o, "cluster");
        cJSON_AddNumberToObject(cl, "nodes", in.nodes);
        cJSON_AddNumberToObject(cl, "masters", in.masters);
        cJSON_AddNumberToObject(cl, "nodes_down", in.nodes_down);
    }
    cJSON *model = cJSON_AddObjectToObject(o, "model");
    const char *slash = strrchr(s->opts.model_dir, '/');
    cJSON_AddStringToObject(model, "name", slash && slash[1] ? slash + 1 : s->opts.model_dir);
    cJSON_AddBoolToObject(model, "int8", s->opts.int8);
    if (s->encoder) cJSON_AddNumberToObject(model, "max_seq_length", sx_encoder_max_len(s->encoder));
    cJSON_AddStringToObject(o, "version", SX_VERSION);
    respond_json(res, 200, o);
}

/* 200 while searches can succeed; 503 (cluster) while the backend cannot
 * answer, so a load balancer takes this gateway out. The server loads
 * before it listens, so there is no "loading" state to report. */
static void handle_health(sx_srv *s, sx_request *rq, sx_response *res) {
    cJSON *o = cJSON_CreateObject();
    sx_backend_info in;
    sx_err err = {0};
    int ok = sx_backend_get_info(s->backend, &in, 1, &err) == 0;
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "unavailable");
    cJSON_AddNumberToObject(o, "uptime_s", round((sx_now() - s->started) * 10) / 10);
    if (ok) {
        cJSON_AddStringToObject(o, "backend", in.kind);
        cJSON_AddNumberToObject(o, "papers", (double)in.count);
    } else { /* the details (node addresses) stay in the server's log */
        cJSON_AddStringToObject(o, "error", "the backend cannot answer searches now");
    }
    respond_json(res, ok ? 200 : 503, o);
    if (!ok) res->retry_after = 1;
}

static void handle_metrics(sx_srv *s, sx_request *rq, sx_response *res) {
    sx_metrics_gauges g = {0};
    g.rss_bytes = sx_current_rss();
    g.cache_entries = s->cache ? sx_lru_size(s->cache) : 0;
    g.inflight = atomic_load(&s->inflight);
    g.connections = atomic_load(&s->conns);
    g.start_time = s->started_wall;
    sx_backend_info in = {0};
    /* On an error (cluster: a shard key did not answer) the figures that
     * could be learnt are still reported. */
    int info_rc = sx_backend_get_info(s->backend, &in, 1, NULL);
    g.ready = info_rc == 0;
    if (info_rc == 0 || in.kind) {
        g.backend = in.kind;
        g.papers = in.count;
        g.deleted = in.deleted;
        g.index_bytes[0] = in.bytes_vectors;
        g.index_bytes[1] = in.bytes_graph;
        g.index_bytes[2] = in.bytes_documents;
        g.index_bytes[3] = in.bytes_other;
        g.mapped_bytes = in.bytes_mapped;
        g.wal_bytes = in.wal_bytes;
        g.generation = in.generation;
        g.nodes = in.nodes;
        g.masters = in.masters;
        g.nodes_down = in.nodes_down;
        g.shard_keys = in.n_shards;
        g.shard_keys_unavailable = in.shard_keys_unavailable;
    }
    res->status = 200;
    sx_metrics_render(s->metrics, &g, &res->body);
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void static_asset(sx_response *res, const char *data, size_t len, const char *type) {
    res->status = 200;
    res->static_body = data;
    res->static_len = len;
    res->content_type = type;
    res->cache_control = "no-cache";
}

void sx_handle(sx_srv *s, sx_request *rq, sx_response *res) {
    switch (rq->route) {
    case SX_ROUTE_SEARCH: handle_search(s, rq, res); break;
    case SX_ROUTE_PAPER_GET: handle_paper_get(s, rq, res); break;
    case SX_ROUTE_PAPER_SIMILAR: handle_similar(s, rq, res); break;
    case SX_ROUTE_PAPERS_UPSERT: handle_papers_upsert(s, rq, res); break;
    case SX_ROUTE_PAPER_DELETE: handle_paper_delete(s, rq, res); break;
    case SX_ROUTE_INFO: handle_info(s, rq, res); break;
    case SX_ROUTE_HEALTH: handle_health(s, rq, res); break;
    case SX_ROUTE_METRICS: handle_metrics(s, rq, res); break;
    case SX_ROUTE_PAGE:
        static_asset(res, sx_asset_index_html, sx_asset_index_html_len, "text/html; charset=utf-8");
        break;
    case SX_ROUTE_DOCS:
        static_asset(res, sx_asset_docs_html, sx_asset_docs_html_len, "text/html; charset=utf-8");
        break;
    case SX_ROUTE_OPENAPI:
        static_asset(res, sx_asset_openapi_json, sx_asset_openapi_json_len, "application/json");
        break;
    default: sx_respond_error(res, 404, "not_found", "no route %s %s", rq->method, rq->path); break;
    }
}
