/* Tests for src/server/routes.c: routing from many threads, strict request
 * validation, error bodies (valid UTF-8, no internal paths) and the limits
 * the C code enforces against the ones web/openapi.json publishes. */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>

#include "../src/corpus/corpus.h"
#include "../src/server/query.h"
#include "../src/server/server_int.h"
#include "../src/text/text.h"

/* ---- a backend of one paper, safe to call from many threads ---- */

static int ob_search(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits, int *n,
                     sx_backend_stats *st, sx_err *err) {
    *n = 0;
    return 0;
}

static int ob_get(void *impl, const char *id, sx_doc **doc, float *vec, sx_err *err) {
    if (strcmp(id, "2401.00001") != 0) return sx_err_set(err, SX_ENOTFOUND, "no paper");
    if (doc) {
        *doc = calloc(1, sizeof **doc);
        (*doc)->id = "2401.00001";
        (*doc)->title = "A title";
        (*doc)->categories = "cs.LG";
    }
    return 0;
}

static int ob_upsert(void *impl, int n, const sx_doc *d, const float *v, sx_err *err) {
    return sx_err_set(err, SX_EIO, "/var/lib/semdex/secret/wal.log: write failed: No space left");
}

static int ob_del(void *impl, const char *id, sx_err *err) {
    if (strcmp(id, "busy") == 0) /* as the gateway says a cluster node failed */
        return sx_err_set(err, SX_EBUSY, "delete: slot 12: 10.1.2.3:7001: connection refused");
    if (strcmp(id, "unacked") == 0) /* as the gateway says WAIT fell short */
        return sx_err_set(err, SX_ENOTDURABLE, "semdex:{shard-00-1}: written on its master but "
                                               "acknowledged by 0 of the 1 replicas asked for");
    return strcmp(id, "2401.00001") == 0 ? 0 : sx_err_set(err, SX_ENOTFOUND, "no paper");
}

static int ob_info(void *impl, sx_backend_info *out, int recent, sx_err *err) {
    *out = (sx_backend_info){.kind = "local", .count = 1, .n_shards = 1};
    return 0;
}

static void ob_close(void *impl) {}

static const sx_backend_ops ob_ops = {"one", ob_search, ob_get, ob_upsert, ob_del, ob_info, NULL,
                                      ob_close};

static void srv_init(sx_srv *s) {
    memset(s, 0, sizeof *s);
    s->metrics = sx_metrics_create();
    s->backend = sx_backend_create(&ob_ops, NULL, 384);
    s->dim = 384;
    s->opts = sx_server_defaults();
}

static void srv_clear(sx_srv *s) {
    sx_backend_close(s->backend);
    sx_metrics_free(s->metrics);
}

/* Runs one request (body may be NULL) through the router and its handler;
 * the body of the answer is NUL-terminated in res->body. */
static int request(sx_srv *s, const char *method, const char *path, const char *body,
                   sx_response *res) {
    char id_buf[256];
    sx_request rq = {.method = method, .path = path, .client = "test", .body = body ? body : "",
                     .body_len = body ? strlen(body) : 0};
    memset(res, 0, sizeof *res);
    if (sx_route_request(s, &rq, id_buf, sizeof id_buf, res) == 0) sx_handle(s, &rq, res);
    sx_buf_append(&res->body, "", 1);
    res->body.len--;
    return res->status;
}

/* ---- routing from many threads (the router once used strtok) ---- */

typedef struct {
    sx_srv *s;
    int seed;
    _Atomic long *wrong;
} route_job;

static void *route_worker(void *arg) {
    route_job *j = arg;
    sx_response res;
    char path[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(path, sizeof path, "/papers/%d.%05d", j->seed, i);
        int del = (i + j->seed) % 2;
        int st = request(j->s, del ? "DELETE" : "GET", path, NULL, &res);
        if (st != 404) atomic_fetch_add(j->wrong, 1);
        sx_buf_free(&res.body);
        st = request(j->s, "PUT", path, NULL, &res);
        if (st != 405 || strcmp(res.allow, "GET, DELETE") != 0) atomic_fetch_add(j->wrong, 1);
        sx_buf_free(&res.body);
        st = request(j->s, "PUT", "/search", NULL, &res);
        if (st != 405 || strcmp(res.allow, "GET, POST") != 0) atomic_fetch_add(j->wrong, 1);
        sx_buf_free(&res.body);
    }
    return NULL;
}

/* 8 threads of mixed DELETE / GET / PUT of unknown ids: every DELETE and GET
 * is a 404 and every PUT a 405, as it is with one thread. */
void test_routes_concurrent_methods(void) {
    sx_srv s;
    srv_init(&s);
    _Atomic long wrong = 0;
    pthread_t th[8];
    route_job jobs[8];
    for (int t = 0; t < 8; t++) {
        jobs[t] = (route_job){.s = &s, .seed = 1000 + t, .wrong = &wrong};
        CHECK(pthread_create(&th[t], NULL, route_worker, &jobs[t]) == 0);
    }
    for (int t = 0; t < 8; t++) pthread_join(th[t], NULL);
    CHECK_EQ(atomic_load(&wrong), 0);
    srv_clear(&s);
}

/* ---- error bodies: valid UTF-8 JSON, no internal paths ---- */

/* Checks that the body is valid UTF-8 and parses as a JSON error object. */
static void check_error_body(const sx_response *res) {
    size_t bad = 0;
    CHECK_MSG(sx_utf8_check(res->body.data, res->body.len, &bad) == 0, "byte %zu of %s", bad,
              res->body.data);
    cJSON *j = cJSON_ParseWithLength(res->body.data, res->body.len);
    CHECK(j);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "code")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    cJSON_Delete(j);
}

void test_routes_error_bodies_are_utf8(void) {
    sx_srv s;
    srv_init(&s);
    sx_response res;
    /* GET /papers/%FF: the decoded byte is written as the text \xFF. */
    CHECK_EQ(request(&s, "GET", "/papers/\xFF", NULL, &res), 404);
    check_error_body(&res);
    CHECK(strstr(res.body.data, "\\\\xFF") != NULL);
    sx_buf_free(&res.body);
    CHECK_EQ(request(&s, "DELETE", "/papers/a\xC3(b", NULL, &res), 404);
    check_error_body(&res);
    sx_buf_free(&res.body);
    CHECK_EQ(request(&s, "GET", "/nope/\xE2\x82", NULL, &res), 404);
    check_error_body(&res);
    sx_buf_free(&res.body);
    CHECK_EQ(request(&s, "PATCH\xF0", "/search", NULL, &res), 405);
    check_error_body(&res);
    sx_buf_free(&res.body);
    /* An id cut at 80 bytes inside a two-byte character. */
    char path[256] = "/papers/";
    for (int i = 0; i < 79; i++) strcat(path, "a");
    strcat(path, "\xC3\xA9\xC3\xA9");
    CHECK_EQ(request(&s, "GET", path, NULL, &res), 404);
    check_error_body(&res);
    sx_buf_free(&res.body);
    /* A valid multi-byte character stays as it is. */
    CHECK_EQ(request(&s, "GET", "/papers/caf\xC3\xA9", NULL, &res), 404);
    check_error_body(&res);
    CHECK(strstr(res.body.data, "caf\xC3\xA9") != NULL);
    sx_buf_free(&res.body);
    srv_clear(&s);
}

void test_routes_no_internal_paths(void) {
    sx_srv s;
    srv_init(&s);
    s.opts.model_dir = "/opt/private/models/all-MiniLM-L6-v2";
    sx_response res;
    /* A write the backend fails with a message naming its files: 500, and
     * the path stays in the log. */
    sx_buf b = {0};
    sx_buf_printf(&b, "{\"papers\": [{\"id\": \"2401.00002\", \"title\": \"T\", \"embedding\": [1");
    for (int i = 1; i < 384; i++) sx_buf_printf(&b, ", 0");
    sx_buf_printf(&b, "]}]}");
    sx_buf_append(&b, "", 1);
    CHECK_EQ(request(&s, "POST", "/papers", b.data, &res), 500);
    check_error_body(&res);
    CHECK(strstr(res.body.data, "/var/lib") == NULL);
    CHECK(strstr(res.body.data, "wal") == NULL);
    sx_buf_free(&res.body);
    sx_buf_free(&b);
    /* A cluster node's address stays in the log too (gateway mode). */
    CHECK_EQ(request(&s, "DELETE", "/papers/busy", NULL, &res), 503);
    check_error_body(&res);
    CHECK(strstr(res.body.data, "10.1.2.3") == NULL);
    CHECK(strstr(res.body.data, "\"unavailable\"") != NULL);
    sx_buf_free(&res.body);
    /* A write the replicas did not acknowledge says so: the client retries. */
    CHECK_EQ(request(&s, "DELETE", "/papers/unacked", NULL, &res), 503);
    check_error_body(&res);
    CHECK(strstr(res.body.data, "acknowledged by 0 of the 1 replicas") != NULL);
    sx_buf_free(&res.body);
    CHECK_EQ(request(&s, "GET", "/collections/info", NULL, &res), 200);
    CHECK(strstr(res.body.data, "/opt/private") == NULL);
    CHECK(strstr(res.body.data, "\"name\":\"all-MiniLM-L6-v2\"") != NULL);
    sx_buf_free(&res.body);
    srv_clear(&s);
}

/* ---- the limits the code enforces are the ones the schema publishes ---- */

/* The value at JSON pointer ptr (RFC 6901: ~1 is '/', ~0 is '~') in root. */
static const cJSON *json_at(const cJSON *root, const char *ptr) {
    const cJSON *v = root;
    char tok[128];
    while (v && *ptr == '/') {
        ptr++;
        size_t n = 0;
        while (*ptr && *ptr != '/' && n + 1 < sizeof tok) {
            if (ptr[0] == '~' && (ptr[1] == '1' || ptr[1] == '0')) {
                tok[n++] = ptr[1] == '1' ? '/' : '~';
                ptr += 2;
            } else {
                tok[n++] = *ptr++;
            }
        }
        tok[n] = '\0';
        v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(tok)) : cJSON_GetObjectItemCaseSensitive(v, tok);
    }
    return v;
}

static cJSON *load_openapi(void) {
    char *text;
    size_t len;
    sx_err err = {0};
    CHECK_MSG(sx_read_file("web/openapi.json", &text, &len, &err) == 0, "%s", err.msg);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    CHECK(root);
    return root;
}

/* The schema's properties of name are exactly fields, and no other is allowed. */
static void check_properties(const cJSON *api, const char *name, const char *const *fields) {
    char ptr[128];
    snprintf(ptr, sizeof ptr, "/components/schemas/%s", name);
    const cJSON *schema = json_at(api, ptr);
    CHECK_MSG(schema, "no schema %s", name);
    CHECK_MSG(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties")),
              "%s allows other properties", name);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties"), *p;
    int n = 0;
    cJSON_ArrayForEach(p, props) {
        int found = 0;
        for (int i = 0; fields[i]; i++) found |= strcmp(fields[i], p->string) == 0;
        CHECK_MSG(found, "%s.%s is not a field the code accepts", name, p->string);
        n++;
    }
    for (int i = 0; fields[i]; i++)
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(props, fields[i]), "%s lacks %s", name, fields[i]);
    CHECK(n > 0);
}

/* The query parameters at pointer (an operation's "parameters") are exactly
 * names (path parameters aside). */
static void check_params(const cJSON *api, const char *pointer, const char *const *names) {
    const cJSON *params = json_at(api, pointer), *p;
    CHECK_MSG(cJSON_IsArray(params), "no parameters at %s", pointer);
    int n = 0, want = 0;
    cJSON_ArrayForEach(p, params) {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(p, "in"), *name = cJSON_GetObjectItemCaseSensitive(p, "name");
        if (!cJSON_IsString(in) || strcmp(in->valuestring, "query") != 0) continue;
        int found = 0;
        for (int i = 0; names[i]; i++) found |= strcmp(names[i], name->valuestring) == 0;
        CHECK_MSG(found, "%s: parameter %s is not one the code accepts", pointer, name->valuestring);
        n++;
    }
    while (names[want]) want++;
    CHECK_MSG(n == want, "%s lists %d query parameters, the code accepts %d", pointer, n, want);
}

void test_routes_limits_match_openapi(void) {
    cJSON *api = load_openapi();
    int n = 0;
    for (const sx_schema_fact *f = sx_schema_facts; f->pointer; f++, n++) {
        const cJSON *v = json_at(api, f->pointer);
        CHECK_MSG(cJSON_IsNumber(v), "web/openapi.json has no number at %s", f->pointer);
        CHECK_MSG(v->valuedouble == (double)f->value, "%s: the schema says %g, the code enforces %g",
                  f->pointer, v->valuedouble, f->value);
    }
    CHECK(n >= 20);
    check_properties(api, "SearchRequest", sx_search_fields);
    check_params(api, "/paths/~1search/get/parameters", sx_search_params);
    check_params(api, "/paths/~1papers~1{paper_id}~1similar/get/parameters", sx_similar_params);
    check_properties(api, "UpsertRequest", sx_upsert_fields);
    check_properties(api, "PaperInput", sx_record_fields);
    /* No nullable field in a request but update_date; the archives the code
     * refuses are the ones the schema excludes. */
    CHECK(!cJSON_GetObjectItemCaseSensitive(json_at(api, "/components/schemas/SearchRequest/properties/top_k"),
                                            "nullable"));
    CHECK(cJSON_IsTrue(json_at(api, "/components/schemas/PaperInput/properties/update_date/nullable")));
    int na;
    const char *const *arch = sx_category_archives(&na);
    const cJSON *not_enum = json_at(api, "/components/schemas/CategoryCode/not/enum");
    CHECK_EQ(cJSON_GetArraySize(not_enum), na);
    for (int i = 0; i < na; i++) CHECK_STR(cJSON_GetArrayItem(not_enum, i)->valuestring, arch[i]);
    /* every archive pattern the schema lists is one the filter accepts */
    const cJSON *pats = json_at(api, "/components/schemas/CategoryPattern/oneOf/1/enum"), *pt;
    CHECK(cJSON_GetArraySize(pats) >= na);
    cJSON_ArrayForEach(pt, pats) {
        char buf[SX_CATEGORIES_BUF];
        int count;
        sx_err err = {0};
        CHECK_MSG(sx_categories_parse(pt, SX_CATEGORIES_PATTERNS, buf, &count, &err) == 0, "%s: %s", pt->valuestring, err.msg);
        CHECK_EQ(count, 1);
    }
    cJSON_Delete(api);
}

/* ---- strict request validation ---- */

/* Sends body to route and checks the status and that the message holds want. */
static void expect(sx_srv *s, const char *path, const char *body, int status, const char *want) {
    sx_response res;
    int st = request(s, "POST", path, body, &res);
    CHECK_MSG(st == status, "%s %s: %d, expected %d: %s", path, body, st, status, res.body.data);
    if (want)
        CHECK_MSG(strstr(res.body.data, want) != NULL, "%s %s: '%s' lacks '%s'", path, body,
                  res.body.data, want);
    if (st >= 400) check_error_body(&res);
    sx_buf_free(&res.body);
}

void test_routes_strict_search(void) {
    sx_srv s;
    srv_init(&s);
    /* Bodies refused before any work: no encoder is needed. */
    expect(&s, "/search", "{\"query\":\"x\"} xyz", 400, "after the JSON value at byte 14");
    expect(&s, "/search", "{\"query\":\"x\"}{}", 400, "invalid_json");
    expect(&s, "/search", "{\"query\":\"x\",\"top_k\":null}", 400, "'top_k' must be an integer in [1, 100], not null");
    expect(&s, "/search", "{\"query\":\"x\",\"offset\":null}", 400, "'offset'");
    expect(&s, "/search", "{\"query\":\"x\",\"ef\":null}", 400, "'ef'");
    expect(&s, "/search", "{\"query\":\"x\",\"categories\":null}", 400, "'categories'");
    expect(&s, "/search", "{\"query\":\"   \"}", 400, "blank");
    expect(&s, "/search", "{\"query\":\"\\t\\u3000\\u00a0\"}", 400, "blank");
    expect(&s, "/search", "{\"query\":\"x\",\"topk\":3}", 400, "unknown field 'topk'; did you mean 'top_k'?");
    expect(&s, "/search", "{\"query\":\"x\",\"colour\":3}", 400, "unknown field 'colour'");
    expect(&s, "/search", "{\"query\":\"a\\u0000b\"}", 400, "'query' holds the character U+0000");
    expect(&s, "/search", "{\"query\":\"x\",\"categories\":[\"CS.LG\"]}", 400, "did you mean 'cs.LG'?");
    expect(&s, "/search", "{\"query\":\"x\",\"categories\":\"cs\"}", 400, "archive");
    expect(&s, "/search", "{\"query\":\"x\",\"categories\":[\"math\"]}", 400, "math.AC");
    expect(&s, "/search", "{\"query\":\"x\",\"categories\":[\"a b\"]}", 400, "one non-empty code");
    /* 32 characters per code, counted in characters: a non-ASCII code is
     * refused for its characters, whatever its length. */
    expect(&s, "/search", "{\"query\":\"x\",\"categories\":[\"caf\\u00e9\"]}", 400, "ASCII");
    /* The query's limit counts characters, not bytes. */
    sx_buf b = {0};
    sx_buf_printf(&b, "{\"query\":\"");
    for (int i = 0; i < 2001; i++) sx_buf_printf(&b, "\xC3\xA9");
    sx_buf_printf(&b, "\"}");
    sx_buf_append(&b, "", 1);
    expect(&s, "/search", b.data, 400, "1 to 2000 characters");
    sx_buf_free(&b);
    srv_clear(&s);
}

void test_routes_strict_papers(void) {
    sx_srv s;
    srv_init(&s);
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\"}]} x", 400, "invalid_json");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\"}],\"paper\":1}", 400,
           "unknown field 'paper'");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\",\"abstact\":\"a\"}]}", 400,
           "papers[0]: unknown field 'abstact'");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\",\"abstract\":null}]}", 400,
           "'abstract' must be a string, not null");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\" \\n\"}]}", 400, "blank");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"paper_id\":\"1\",\"title\":\"t\"}]}", 400, "not both");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\",\"abstract\":\"cut\\u0000here\"}]}", 400,
           "'papers[0].abstract' holds the character U+0000");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\",\"categories\":\"hep-th CS.LG\"}]}", 400,
           "did you mean 'cs.LG'?");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\",\"update_date\":\"0000-00-00\"}]}", 400,
           "update_date");
    expect(&s, "/papers", "{\"papers\":[{\"id\":\"1\",\"title\":\"t\",\"update_date\":\"2023-02-29\"}]}", 400,
           "update_date");
    srv_clear(&s);
}

/* One rule for a list of categories on both routes: "hep-th gr-qc" is two codes. */
void test_routes_categories_one_rule(void) {
    cJSON *v = cJSON_CreateString("hep-th  gr-qc\tcs.LG");
    char buf[SX_CATEGORIES_BUF];
    int n;
    sx_err err = {0};
    CHECK_EQ(sx_categories_parse(v, 0, buf, &n, &err), 0);
    CHECK_EQ(n, 3);
    CHECK_STR(buf, "hep-th gr-qc cs.LG");
    cJSON_Delete(v);
    /* Legacy archive-level codes and unknown well-formed codes pass. */
    CHECK_EQ(sx_category_check("astro-ph", 8, &err), 0);
    CHECK_EQ(sx_category_check("cond-mat", 8, &err), 0);
    CHECK_EQ(sx_category_check("alg-geom", 8, &err), 0);
    CHECK_EQ(sx_category_check("cs.ZZ", 5, &err), 0);
    CHECK_EQ(sx_category_check("CS.LG", 5, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "'cs.LG'"));
    CHECK_EQ(sx_category_check("q-fin", 5, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "q-fin.CP"));
    /* Patterns: only in a search filter, only for archives with categories. */
    const char *pats[][2] = {{"cs.* astro-ph.* math.AP", ""}, {"cs.*", NULL}, {"hep-th.*", "no arXiv archive"},
                             {"CS.*", "did you mean 'cs.*'"}, {"cs", "or 'cs.*' for all of them"},
                             {"*", "character other than"}, {"x.*.*", "no arXiv archive"}};
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        v = cJSON_CreateString(pats[i][0]);
        int rc = sx_categories_parse(v, SX_CATEGORIES_PATTERNS, buf, &n, &err);
        if (!pats[i][1]) {
            CHECK_EQ(sx_categories_parse(v, 0, buf, &n, &err), SX_EINVAL); /* not for papers */
        } else if (!*pats[i][1]) {
            CHECK_MSG(rc == 0, "%s: %s", pats[i][0], err.msg);
            CHECK_STR(buf, pats[i][0]);
        } else {
            CHECK_EQ(rc, SX_EINVAL);
            CHECK_MSG(strstr(err.msg, pats[i][1]), "%s: %s", pats[i][0], err.msg);
        }
        cJSON_Delete(v);
    }
    /* Dates: real calendar dates only, as "format": "date" says. */
    sx_record r;
    const char *ok = "{\"id\":\"1\",\"title\":\"t\",\"update_date\":\"2024-02-29\"}";
    CHECK_MSG(sx_record_parse(ok, strlen(ok), &r, &err) == 0, "%s", err.msg);
    sx_record_clear(&r);
    const char *zero = "{\"id\":\"1\",\"title\":\"t\",\"update_date\":\"0000-01-01\"}";
    CHECK_MSG(sx_record_parse(zero, strlen(zero), &r, &err) == 0, "%s", err.msg);
    sx_record_clear(&r);
}

/* JSON text: trailing data and U+0000 are refused, naming where. */
void test_json_parse_strict(void) {
    cJSON *j;
    sx_err err = {0};
    CHECK_EQ(sx_json_parse("{\"a\": 1} \n", 10, &j, &err), 0);
    cJSON_Delete(j);
    CHECK_EQ(sx_json_parse("{\"a\": 1} x", 10, &j, &err), SX_ECORRUPT);
    CHECK(j == NULL);
    const char *t = "{\"a\": [{\"b\": \"ok\"}, {\"b\": \"x\\\\u0000\", \"c\": [1, \"y\\u0000\"]}]}";
    CHECK_EQ(sx_json_parse(t, strlen(t), &j, &err), SX_EINVAL);
    CHECK_MSG(strstr(err.msg, "'a[1].c[1]' holds the character U+0000"), "%s", err.msg);
    const char raw[] = "{\"k\": \"a\0b\"}";
    CHECK_EQ(sx_json_parse(raw, sizeof raw - 1, &j, &err), SX_EINVAL);
    CHECK_MSG(strstr(err.msg, "'k'"), "%s", err.msg);
    const char *str = "\"control\\u0000chars\\u0007here\"";
    CHECK_EQ(sx_json_parse(str, strlen(str), &j, &err), SX_EINVAL);
    CHECK_MSG(strstr(err.msg, "the string holds"), "%s", err.msg);
    /* An escaped backslash before u0000 is text, not a NUL. */
    const char *esc = "{\"k\": \"\\\\u0000\"}";
    CHECK_EQ(sx_json_parse(esc, strlen(esc), &j, &err), 0);
    CHECK_STR(cJSON_GetObjectItem(j, "k")->valuestring, "\\u0000");
    cJSON_Delete(j);
    CHECK(sx_json_blank(" \t\xE3\x80\x80"));
    CHECK(!sx_json_blank(" x "));
    CHECK_EQ(sx_json_chars("caf\xC3\xA9"), 4);
}
