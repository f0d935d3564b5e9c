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
#include "../keyword/keyword.h"
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
#define SEARCH_GET_PATH "/paths/~1search/get/parameters"
/* Longest author name in a filter, in characters; most names in the
 * 'authors' list, and in an authors-mode query (the shard takes both). */
#define AUTHOR_NAME_MAX_CHARS 200
#define AUTHORS_MAX (SX_AUTHOR_NAMES_MAX / 2)

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
    {SCHEMAS "SearchRequest/properties/authors/maxItems", AUTHORS_MAX},
    {SCHEMAS "SearchRequest/properties/authors/items/maxLength", AUTHOR_NAME_MAX_CHARS},
    {SEARCH_GET_PATH "/2/schema/maximum", SX_TOP_K_MAX},
    {SEARCH_GET_PATH "/3/schema/maximum", SX_OFFSET_MAX},
    {SEARCH_GET_PATH "/4/schema/maximum", SX_EF_MAX},
    {SEARCH_GET_PATH "/5/schema/maxItems", SX_CATEGORIES_MAX},
    {SEARCH_GET_PATH "/6/schema/maxItems", AUTHORS_MAX},
    {SEARCH_GET_PATH "/6/schema/items/maxLength", AUTHOR_NAME_MAX_CHARS},
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

/* Answers 400 naming the first member of obj that is not in known; noun:
 * what the members are to the client ("field", "query parameter"). */
static int check_fields(const cJSON *obj, const char *const *known, const char *noun, sx_response *res) {
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
            sx_respond_error(res, 400, "invalid_request", "unknown %s '%.64s'; did you mean '%s'?", noun,
                             f->string, known[i]);
        else
            sx_respond_error(res, 400, "invalid_request", "unknown %s '%.64s'; the %ss are %s", noun,
                             f->string, noun, fields);
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

/* The search modes of the API (the request's "mode"). */
enum { MODE_SEMANTIC, MODE_KEYWORD, MODE_HYBRID, MODE_AUTHORS };
static const char *const k_modes[] = {"semantic", "keyword", "hybrid", "authors", NULL};

/* Hybrid search fuses the best HYBRID_DEPTH (or offset + top_k, when more)
 * of the semantic and the keyword ranking by reciprocal rank fusion:
 * score = sum over the rankings holding the paper of 1 / (RRF_K + rank),
 * ranks from 1 (Cormack et al. 2009; 60 is their constant and
 * Elasticsearch's, Weaviate's and OpenSearch's default). */
#define HYBRID_DEPTH 50
#define RRF_K 60
/* sort=date orders the best DATE_SORT_DEPTH (or offset + top_k, when more)
 * papers by relevance newest first. */
#define DATE_SORT_DEPTH 100
typedef struct {
    const char *categories[SX_CATEGORIES_MAX];
    int n;
    char buf[SX_CATEGORIES_BUF]; /* the codes the pointers point into */
} cat_filter;

/* A validated search (POST or GET /search, or /papers/{id}/similar). */
typedef struct search_req {
    const char *query; /* NULL for /similar */
    int mode;          /* MODE_* */
    long top_k, offset, ef;
    cat_filter cats;
    const char *authors[SX_AUTHOR_NAMES_MAX]; /* the list's, then the query's */
    int n_authors;
    char names[4 * SX_QUERY_MAX_CHARS + 1]; /* authors mode: the query's names */
    const char *date_from, *date_to;        /* NULL: open */
    int sort_date;
    int has_min_score;
    double min_score;
} search_req;

/* The fields of each request body (the schema's properties; it has
 * additionalProperties false), and the query parameters of /similar. */
const char *const sx_search_fields[] = {"query", "mode", "top_k", "offset", "ef", "categories", "authors",
                                        "date_from", "date_to", "sort", "min_score", NULL};
const char *const sx_search_params[] = {"q", "mode", "top_k", "offset", "ef", "categories", "authors",
                                        "date_from", "date_to", "sort", "min_score", NULL};
const char *const sx_similar_params[] = {"top_k", "offset", "ef", "categories", "authors", "date_from",
                                         "date_to", "sort", "min_score", NULL};
const char *const sx_upsert_fields[] = {"papers", NULL};

/* Reads the search's category filter (absent: none) with the rule POST
 * /papers uses (sx_categories_parse: a string of space-separated codes or an
 * array; every code checked, with a hint for "cs" or "CS.LG"), patterns
 * such as cs.* allowed. */
static int parse_category_filter(const cJSON *v, cat_filter *f, sx_response *res) {
    f->n = 0;
    if (!v) return 0;
    sx_err err = {0};
    if (cJSON_IsNull(v)) {
        sx_respond_error(res, 400, "invalid_request", "'categories' must be a list of category codes, "
                         "not null (leave it out to search every category)");
        return -1;
    }
    if (sx_categories_parse(v, SX_CATEGORIES_PATTERNS, f->buf, &f->n, &err) < 0) {
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

/* Checks one author name (from the 'authors' list or an authors-mode
 * query): UTF-8, 1..AUTHOR_NAME_MAX_CHARS characters, not blank. (A name
 * that holds no surname, such as "!!", matches no paper.) 0 or answers
 * 400. */
static int check_author(const char *what, const char *z, sx_response *res) {
    size_t bad;
    if (sx_utf8_check(z, strlen(z), &bad) != 0) {
        sx_respond_error(res, 400, "invalid_request", "%s is not valid UTF-8 (byte %zu)", what, bad);
        return -1;
    }
    if (sx_json_chars(z) < 1 || sx_json_chars(z) > AUTHOR_NAME_MAX_CHARS || sx_json_blank(z)) {
        sx_respond_error(res, 400, "invalid_request", "%s must be a name of 1 to %d characters, not only "
                         "white space", what, AUTHOR_NAME_MAX_CHARS);
        return -1;
    }
    return 0;
}

/* Reads an optional string field that must be one of words (def when
 * absent); 0 or answers 400. */
static int enum_field(const cJSON *obj, const char *name, const char *const *words, int def, int *out,
                      sx_response *res) {
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
    sx_respond_error(res, 400, "invalid_request", "'%s' must be one of %s%s", name, list,
                     cJSON_IsNull(v) ? ", not null (leave it out for the default)" : "");
    return -1;
}

/* Reads an optional date field "YYYY-MM-DD" (NULL when absent); 0 or
 * answers 400. */
static int date_field(const cJSON *obj, const char *name, const char **out, uint32_t *days,
                      sx_response *res) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!v) return 0;
    if (!cJSON_IsString(v) || sx_date_parse(v->valuestring, days) < 0) {
        sx_respond_error(res, 400, "invalid_request", "'%s' must be a date YYYY-MM-DD (a real day, e.g. "
                         "2024-02-29)%s", name, cJSON_IsNull(v) ? ", not null (leave it out for no bound)" : "");
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

/* Validates a search request (a JSON body, or query parameters made into
 * one) into r; similar: /papers/{id}/similar's parameters (no query, no
 * mode). 0, or -1 having answered 400. r points into req. */
static int parse_search(const cJSON *req, int similar, int from_args, search_req *r, sx_response *res) {
    memset(r, 0, sizeof *r);
    const char *const *known = similar ? sx_similar_params : from_args ? sx_search_params : sx_search_fields;
    if (check_fields(req, known, from_args ? "query parameter" : "field", res) < 0) return -1;
    const char *qname = from_args ? "q" : "query";
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(req, qname);
    size_t bad;
    if (!similar) {
        if (!cJSON_IsString(q)) {
            sx_respond_error(res, 400, "invalid_request", "'%s' is required and must be a string", qname);
            return -1;
        }
        if (sx_utf8_check(q->valuestring, strlen(q->valuestring), &bad) != 0) {
            sx_respond_error(res, 400, "invalid_request", "'%s' is not valid UTF-8 (byte %zu)", qname, bad);
            return -1;
        }
        if (sx_json_chars(q->valuestring) < 1 || sx_json_chars(q->valuestring) > SX_QUERY_MAX_CHARS) {
            sx_respond_error(res, 400, "invalid_request", "'%s' must have 1 to %d characters", qname,
                             SX_QUERY_MAX_CHARS);
            return -1;
        }
        if (sx_json_blank(q->valuestring)) {
            sx_respond_error(res, 400, "invalid_request", "'%s' is blank: it has only white space", qname);
            return -1;
        }
        r->query = q->valuestring;
    }
    static const char *const sorts[] = {"relevance", "date", NULL};
    uint32_t d_from = 0, d_to = 0;
    if ((!similar && enum_field(req, "mode", k_modes, MODE_SEMANTIC, &r->mode, res) < 0) ||
        int_field(req, "top_k", 1, SX_TOP_K_MAX, 10, &r->top_k, res) < 0 ||
        int_field(req, "offset", 0, SX_OFFSET_MAX, 0, &r->offset, res) < 0 ||
        int_field(req, "ef", 1, SX_EF_MAX, 0, &r->ef, res) < 0 ||
        parse_category_filter(cJSON_GetObjectItemCaseSensitive(req, "categories"), &r->cats, res) < 0 ||
        date_field(req, "date_from", &r->date_from, &d_from, res) < 0 ||
        date_field(req, "date_to", &r->date_to, &d_to, res) < 0 ||
        enum_field(req, "sort", sorts, 0, &r->sort_date, res) < 0)
        return -1;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(req, "min_score");
    if (ms && (!cJSON_IsNumber(ms) || !isfinite(ms->valuedouble))) {
        sx_respond_error(res, 400, "invalid_request", "'min_score' must be a number%s",
                         cJSON_IsNull(ms) ? ", not null (leave it out for no bound)" : "");
        return -1;
    }
    r->has_min_score = ms != NULL;
    r->min_score = ms ? ms->valuedouble : 0;
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(req, "authors");
    if (au) {
        if (!cJSON_IsArray(au) || cJSON_GetArraySize(au) < 1 || cJSON_GetArraySize(au) > AUTHORS_MAX) {
            sx_respond_error(res, 400, "invalid_request", "'authors' must be an array of 1 to %d names%s",
                             AUTHORS_MAX, cJSON_IsNull(au) ? ", not null (leave it out for no filter)" : "");
            return -1;
        }
        const cJSON *a;
        cJSON_ArrayForEach(a, au) {
            if (!cJSON_IsString(a)) {
                sx_respond_error(res, 400, "invalid_request", "'authors' must hold only strings");
                return -1;
            }
            if (check_author("an author in 'authors'", a->valuestring, res) < 0) return -1;
            r->authors[r->n_authors++] = a->valuestring;
        }
    }
    if (r->mode == MODE_AUTHORS) {
        /* the query is the names, separated by ';' */
        /* the query's names join the 'authors' list: papers by any of them */
        snprintf(r->names, sizeof r->names, "%s", r->query);
        for (char *p = r->names, *e; p; p = e) {
            e = strchr(p, ';');
            if (e) *e++ = '\0';
            while (*p == ' ' || *p == '\t') p++;
            if (!*p || sx_json_blank(p)) continue;
            if (r->n_authors == SX_AUTHOR_NAMES_MAX) { /* (AUTHORS_MAX of each) */
                sx_respond_error(res, 400, "invalid_request", "more than %d names in the query",
                                 AUTHORS_MAX);
                return -1;
            }
            if (check_author("a name of the query", p, res) < 0) return -1;
            r->authors[r->n_authors++] = p;
        }
        if (r->n_authors == 0) {
            sx_respond_error(res, 400, "invalid_request", "mode 'authors' needs at least one name in the query");
            return -1;
        }
    }
    return 0;
}

/* One backend search: what to look for and what came back. A semantic one
 * runs on the request thread, or rides along with the query's embedding
 * batch and runs on an encoder thread (see batcher.c). */
typedef struct {
    sx_srv *s;
    sx_search_opts so;
    sx_hit *hits;        /* the caller frees them */
    int n, rc, done;
    double seconds;
    sx_backend_stats stats; /* where the search's time went */
    sx_err err;
} index_search;

/* Sets x up for a search of o (k hits). */
static int search_init(index_search *x, sx_srv *s, const sx_search_opts *o, sx_err *err) {
    *x = (index_search){.s = s, .so = *o};
    x->so.with_docs = 1;
    x->hits = malloc((size_t)o->k * sizeof *x->hits);
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
 * bounded cost (no filter, which may fall back to a scan; modest k and ef),
 * since every query of the batch waits for the slowest. */
static int rides_along(const index_search *x) {
    return x->so.mode == SX_MODE_VECTOR && x->so.n_categories == 0 && x->so.n_authors == 0 &&
           !x->so.date_from && !x->so.date_to && x->so.k <= SX_TOP_K_MAX && x->so.ef <= 256;
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

/* Runs x unless it ran already; adds its time to the request's; returns
 * its result code (its error in *err). */
static int search_finish(sx_request *rq, const float *vec, index_search *x, sx_err *err) {
    if (!x->done) search_run(x, vec);
    rq->t_index += x->seconds;
    rq->search = x->stats;
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
        out[*n].score = 1.0f / (RRF_K + i + 1);
        id_at key = {a[i].id, 0};
        id_at *m = nb ? bsearch(&key, ib, (size_t)nb, sizeof *ib, id_at_cmp) : NULL;
        if (m) {
            out[*n].score += 1.0f / (RRF_K + m->at + 1);
            taken[m->at] = 1;
            sx_hits_release(&b[m->at], 1);
        }
        (*n)++;
    }
    for (int i = 0; i < nb; i++)
        if (!taken[i]) {
            out[*n] = b[i];
            out[*n].score = 1.0f / (RRF_K + i + 1);
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

/* Runs the search r asks for (vec: the query vector for a semantic or
 * hybrid one, or /similar's paper vector; exclude: a paper left out, or
 * NULL) and appends its page to results. */
static int run_search(sx_srv *s, sx_request *rq, const search_req *r, float *vec, int have_vec,
                      const char *exclude, cJSON *results, int *cached, sx_err *err) {
    int depth = (int)(r->offset + r->top_k + (exclude ? 1 : 0));
    if (r->sort_date && depth < DATE_SORT_DEPTH) depth = DATE_SORT_DEPTH;
    int fused = r->mode == MODE_HYBRID;
    if (fused && depth < HYBRID_DEPTH) depth = HYBRID_DEPTH;
    sx_search_opts o = {.k = depth, .categories = r->cats.categories, .n_categories = r->cats.n,
                        .authors = r->authors, .n_authors = r->n_authors, .date_from = r->date_from,
                        .date_to = r->date_to};
    index_search x = {0}, y = {0}; /* semantic, keyword or authors */
    int use_x = r->mode == MODE_SEMANTIC || r->mode == MODE_HYBRID, use_y = r->mode != MODE_SEMANTIC;
    int rc = 0;
    if (use_x) {
        o.ef = r->ef > 0 ? (int)(r->ef < depth ? depth : r->ef) : 0;
        rc = search_init(&x, s, &o, err);
    }
    if (rc == 0 && use_y) {
        sx_search_opts oy = o;
        oy.ef = 0;
        oy.mode = r->mode == MODE_AUTHORS ? SX_MODE_AUTHORS : SX_MODE_KEYWORD;
        oy.text = oy.mode == SX_MODE_KEYWORD ? r->query : NULL;
        rc = search_init(&y, s, &oy, err);
    }
    if (rc == 0 && use_x && !have_vec)
        rc = query_vector(s, rq, r->query, strlen(r->query), vec, &x, cached, err);
    if (rc == 0 && use_x) rc = search_finish(rq, vec, &x, err);
    if (rc == 0 && use_y) rc = search_finish(rq, NULL, &y, err);
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
            if (r->has_min_score && r->mode != MODE_AUTHORS && hits[i].score < r->min_score) continue;
            if (!hits[i].doc) continue; /* a backend that could not fetch it */
            order[m] = (ranked){&hits[i], m};
            m++;
        }
        if (r->sort_date && r->mode != MODE_AUTHORS) qsort(order, (size_t)m, sizeof *order, by_date);
        for (long i = r->offset; i < m && i < r->offset + r->top_k; i++) {
            const sx_hit *h = order[i].h;
            cJSON *item = sx_doc_json(h->doc, r->mode == MODE_AUTHORS ? NULL : &h->score);
            if (r->query && r->mode != MODE_AUTHORS) cJSON_AddItemToObject(item, "highlights", highlights_json(r->query, h->doc));
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
    search_req *r = malloc(sizeof *r);
    if (!r) {
        cJSON_Delete(req);
        sx_respond_error(res, 500, "internal", "out of memory");
        return;
    }
    if (parse_search(req, 0, !method_is(rq, "POST"), r, res) == 0) {
        snprintf(rq->query, sizeof rq->query, "%s", r->query);
        float *vec = malloc((size_t)s->dim * sizeof *vec);
        sx_err err = {0};
        int cached = 0;
        cJSON *out = cJSON_CreateObject();
        cJSON *results = cJSON_AddArrayToObject(out, "results");
        int rc = vec ? run_search(s, rq, r, vec, 0, NULL, results, &cached, &err)
                     : sx_err_set(&err, SX_ENOMEM, "out of memory");
        free(vec);
        if (rc < 0) {
            cJSON_Delete(out);
            respond_sx_error(rq, res, &err);
        } else {
            cJSON_AddNumberToObject(out, "took_ms", round((sx_now() - t0) * 1e6) / 1e3);
            cJSON_AddNumberToObject(out, "embedding_ms", round(rq->t_embed * 1e6) / 1e3);
            cJSON_AddNumberToObject(out, "index_ms", round(rq->t_index * 1e6) / 1e3);
            cJSON_AddBoolToObject(out, "cached", cached);
            cJSON_AddStringToObject(out, "mode", k_modes[r->mode]);
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
    search_req *r = malloc(sizeof *r);
    if (!r || parse_search(req, 1, 1, r, res) < 0) {
        if (!r) sx_respond_error(res, 500, "internal", "out of memory");
        free(r);
        cJSON_Delete(req);
        return;
    }
    float *vec = malloc((size_t)s->dim * sizeof *vec);
    sx_err err = {0};
    int rc = vec ? sx_backend_get(s->backend, rq->paper_id, NULL, vec, &err)
                 : sx_err_set(&err, SX_ENOMEM, "out of memory");
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "paper_id", rq->paper_id);
    cJSON *results = cJSON_AddArrayToObject(out, "results");
    int cached = 0;
    if (rc == 0) rc = run_search(s, rq, r, vec, 1, rq->paper_id, results, &cached, &err);
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
    if (check_fields(req, sx_upsert_fields, "field", res) < 0) {
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
