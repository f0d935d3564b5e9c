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
 * the code accepts (sx_search_fields in query.c, sx_upsert_fields,
 * sx_record_fields).
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
#include "../keyword/keyword.h"
#include "../text/text.h"
#include "query.h"
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
#define SEARCH_GET_PATH "/paths/~1search/get/parameters"

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
    {SCHEMAS "SearchRequest/properties/authors/maxItems", SX_QUERY_AUTHORS_MAX},
    {SCHEMAS "SearchRequest/properties/authors/items/maxLength", SX_AUTHOR_NAME_MAX_CHARS},
    {SEARCH_GET_PATH "/2/schema/maximum", SX_TOP_K_MAX},
    {SEARCH_GET_PATH "/3/schema/maximum", SX_OFFSET_MAX},
    {SEARCH_GET_PATH "/4/schema/maximum", SX_EF_MAX},
    {SEARCH_GET_PATH "/5/schema/maxItems", SX_CATEGORIES_MAX},
    {SEARCH_GET_PATH "/6/schema/maxItems", SX_QUERY_AUTHORS_MAX},
    {SEARCH_GET_PATH "/6/schema/items/maxLength", SX_AUTHOR_NAME_MAX_CHARS},
    {SIMILAR_PATH "/2/schema/maximum", SX_OFFSET_MAX},
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
        {"/search", SX_ROUTE_SEARCH, "GET, POST"},
        {"/papers", SX_ROUTE_PAPERS_UPSERT, "POST"},
    };
    const char *p = rq->path;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(p, fixed[i].path) == 0) return allow(rq, fixed[i].route, fixed[i].methods, res);
    if (strncmp(p, "/assets/", 8) == 0 && p[8]) {
        snprintf(id_buf, id_cap, "%s", p + 8);
        rq->paper_id = id_buf;
        return allow(rq, SX_ROUTE_ASSET, "GET", res);
    }
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

const char *const sx_upsert_fields[] = {"papers", NULL};

/* What the query-vector callback needs from the request. */
typedef struct {
    sx_srv *s;
    sx_request *rq;
    int cached;
} embed_ctx;

/* The query vector (sx_query_embed_fn): from the cache, or embedded (and
 * cached) by the micro-batcher, with the search x riding along when it may. */
static int query_vector(void *ctx, const char *q, float *vec, sx_query_search *x, sx_err *err) {
    embed_ctx *e = ctx;
    sx_srv *s = e->s;
    size_t len = strlen(q);
    e->cached = s->cache && sx_lru_get(s->cache, q, len, vec);
    if (s->cache) sx_metrics_cache(s->metrics, e->cached);
    if (e->cached) return 0;
    double t0 = sx_now();
    int rc = sx_batcher_embed(s->batcher, q, len, vec, sx_query_search_rides_along(x) ? sx_query_search_run : NULL,
                              x, &e->rq->embed, err);
    e->rq->t_embed = sx_now() - t0 - x->seconds;
    if (rc == 0 && s->cache) sx_lru_put(s->cache, q, len, vec);
    return rc;
}

/* Adds query parameter key=value to the object being built (see
 * args_object): a list parameter (categories, authors) may repeat, the
 * others not; numbers are read as JSON numbers when they are one. */
typedef struct {
    cJSON *obj;
    const char *bad; /* the first repeated parameter */
} args_ctx;

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    args_ctx *a = cls;
    if (!value) value = "";
    const char *name = key;
    cJSON *have = cJSON_GetObjectItemCaseSensitive(a->obj, name);
    if (strcmp(name, "authors") == 0) {
        if (!have) have = cJSON_AddArrayToObject(a->obj, "authors");
        cJSON_AddItemToArray(have, cJSON_CreateString(value));
        return MHD_YES;
    }
    if (strcmp(name, "categories") == 0 && have) { /* repeated: one more code (or codes) */
        size_t n = strlen(have->valuestring) + strlen(value) + 2;
        char *j = malloc(n);
        if (!j) return MHD_NO;
        snprintf(j, n, "%s %s", have->valuestring, value);
        cJSON_SetValuestring(have, j);
        free(j);
        return MHD_YES;
    }
    if (have) {
        a->bad = key;
        return MHD_NO;
    }
    static const char *const numeric[] = {"top_k", "offset", "ef", "min_score"};
    for (size_t i = 0; i < sizeof numeric / sizeof *numeric; i++)
        if (strcmp(name, numeric[i]) == 0) {
            char *end;
            double d = strtod(value, &end);
            if (*value && !isspace((unsigned char)*value) && !*end && isfinite(d)) {
                cJSON_AddNumberToObject(a->obj, name, d);
                return MHD_YES;
            }
        }
    cJSON_AddStringToObject(a->obj, name, value);
    return MHD_YES;
}

/* The query parameters of rq as a JSON object, to be validated as a body
 * is; NULL having answered 400 (a repeated parameter). */
static cJSON *args_object(sx_request *rq, sx_response *res) {
    args_ctx a = {cJSON_CreateObject(), NULL};
    if (rq->conn) MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, add_arg, &a);
    if (a.bad) {
        sx_respond_error(res, 400, "invalid_request", "query parameter '%.64s' given more than once", a.bad);
        cJSON_Delete(a.obj);
        return NULL;
    }
    return a.obj;
}

static void handle_search(sx_srv *s, sx_request *rq, sx_response *res) {
    double t0 = sx_now();
    cJSON *req = method_is(rq, "POST") ? parse_body(rq, res) : args_object(rq, res);
    if (!req) return;
    sx_query *r = malloc(sizeof *r);
    sx_err err = {0};
    if (!r) {
        cJSON_Delete(req);
        sx_respond_error(res, 500, "internal", "out of memory");
        return;
    }
    if (sx_query_parse(req, method_is(rq, "POST") ? SX_QUERY_BODY : SX_QUERY_ARGS, r, &err) < 0) {
        sx_respond_error(res, 400, "invalid_request", "%s", err.msg);
    } else {
        snprintf(rq->query, sizeof rq->query, "%s", r->query);
        float *vec = malloc((size_t)s->dim * sizeof *vec);
        embed_ctx ec = {s, rq, 0};
        cJSON *out = cJSON_CreateObject();
        cJSON *results = cJSON_AddArrayToObject(out, "results");
        int rc = vec ? sx_query_run(s->backend, r, vec, 0, NULL, query_vector, &ec, results, &rq->t_index,
                                    &rq->search, &err)
                     : sx_err_set(&err, SX_ENOMEM, "out of memory");
        int cached = ec.cached;
        free(vec);
        if (rc < 0) {
            cJSON_Delete(out);
            respond_sx_error(rq, res, &err);
        } else {
            cJSON_AddNumberToObject(out, "took_ms", round((sx_now() - t0) * 1e6) / 1e3);
            cJSON_AddNumberToObject(out, "embedding_ms", round(rq->t_embed * 1e6) / 1e3);
            cJSON_AddNumberToObject(out, "index_ms", round(rq->t_index * 1e6) / 1e3);
            cJSON_AddBoolToObject(out, "cached", cached);
            cJSON_AddStringToObject(out, "mode", sx_query_modes[r->mode]);
            cJSON_AddNumberToObject(out, "offset", (double)r->offset);
            cJSON_AddNumberToObject(out, "top_k", (double)r->top_k);
            respond_json(res, 200, out);
        }
    }
    free(r);
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

static void handle_similar(sx_srv *s, sx_request *rq, sx_response *res) {
    double t0 = sx_now();
    cJSON *req = args_object(rq, res);
    if (!req) return;
    sx_query *r = malloc(sizeof *r);
    sx_err err = {0};
    if (!r || sx_query_parse(req, SX_QUERY_SIMILAR, r, &err) < 0) {
        if (!r) sx_respond_error(res, 500, "internal", "out of memory");
        else sx_respond_error(res, 400, "invalid_request", "%s", err.msg);
        free(r);
        cJSON_Delete(req);
        return;
    }
    float *vec = malloc((size_t)s->dim * sizeof *vec);
    int rc = vec ? sx_backend_get(s->backend, rq->paper_id, NULL, vec, &err)
                 : sx_err_set(&err, SX_ENOMEM, "out of memory");
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "paper_id", rq->paper_id);
    cJSON *results = cJSON_AddArrayToObject(out, "results");
    if (rc == 0)
        rc = sx_query_run(s->backend, r, vec, 1, rq->paper_id, NULL, NULL, results, &rq->t_index, &rq->search, &err);
    free(vec);
    if (rc < 0) {
        cJSON_Delete(out);
        if (err.code == SX_ENOTFOUND)
            sx_respond_error(res, 404, "not_found", "no paper with id '%.80s'", rq->paper_id);
        else
            respond_sx_error(rq, res, &err);
    } else {
        cJSON_AddNumberToObject(out, "took_ms", round((sx_now() - t0) * 1e6) / 1e3);
        cJSON_AddNumberToObject(out, "offset", (double)r->offset);
        cJSON_AddNumberToObject(out, "top_k", (double)r->top_k);
        respond_json(res, 200, out);
    }
    free(r);
    cJSON_Delete(req);
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
    sx_err ferr = {0};
    if (sx_json_check_fields(req, sx_upsert_fields, "field", &ferr) < 0) {
        sx_respond_error(res, 400, "invalid_request", "%s", ferr.msg);
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

/* GET /assets/{name}: a static file of the page (KaTeX), cacheable for a
 * day (the files change only with the binary). */
static void handle_asset(const sx_request *rq, sx_response *res) {
    static const char *const types[][2] = {{".js", "text/javascript; charset=utf-8"},
                                           {".css", "text/css; charset=utf-8"},
                                           {".woff2", "font/woff2"}};
    for (size_t i = 0; i < sx_asset_files_count; i++) {
        const sx_asset_file *f = &sx_asset_files[i];
        if (strcmp(f->name, rq->paper_id) != 0) continue;
        const char *type = "application/octet-stream";
        size_t n = strlen(f->name);
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            size_t e = strlen(types[t][0]);
            if (n > e && strcmp(f->name + n - e, types[t][0]) == 0) type = types[t][1];
        }
        static_asset(res, f->data, f->len, type);
        res->cache_control = "public, max-age=86400";
        return;
    }
    sx_respond_error(res, 404, "not_found", "no asset '%.80s'", rq->paper_id);
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
    case SX_ROUTE_ASSET: handle_asset(rq, res); break;
    default: sx_respond_error(res, 404, "not_found", "no route %s %s", rq->method, rq->path); break;
    }
}
