/* Tests for src/server/routes.c: routing from many threads, strict request
 * validation, error bodies (valid UTF-8, no internal paths) and the limits
 * the C code enforces against the ones web/openapi.json publishes. */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>

#include "../src/corpus/corpus.h"
#include "../src/server/server_int.h"
#include "../src/text/text.h"

/* ---- a backend of one paper, safe to call from many threads ---- */

static int ob_search(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits, int *n,
                     sx_search_stats *st, sx_err *err) {
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
    atomic_store(&s->ready, 1);
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
        st = request(j->s, "GET", "/search", NULL, &res);
        if (st != 405 || strcmp(res.allow, "POST") != 0) atomic_fetch_add(j->wrong, 1);
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
    CHECK_EQ(request(&s, "GET", "/collections/info", NULL, &res), 200);
    CHECK(strstr(res.body.data, "/opt/private") == NULL);
    CHECK(strstr(res.body.data, "\"name\":\"all-MiniLM-L6-v2\"") != NULL);
    sx_buf_free(&res.body);
    srv_clear(&s);
}
