/*
 * routes.c - libFuzzer target for the HTTP API behind libmicrohttpd: the
 * router and every route's handler (src/server/routes.c) over a real local
 * store and a real encoder (the tiny BERT of tests/fixtures/model, so that
 * a search costs microseconds), as the server wires them.
 *
 * An input is a request in HTTP's own shape:
 *
 *     METHOD SP TARGET LF      TARGET = path [ "?" query ]
 *     (Name: value LF)*        headers
 *     LF
 *     body                     the rest, any bytes
 *
 * The path is passed as libmicrohttpd hands it over (already decoded, so
 * any byte may appear, up to a NUL); query arguments are decoded here as
 * libmicrohttpd does ('+' and %XX) and served, with the headers, by this
 * file's MHD_lookup_connection_value, which the linker picks over the
 * library's (nothing here opens a real connection).
 *
 * Checked on every response: a status in 200..599 and never 500 (outside
 * bytes must never reach an internal error); a JSON body (the default
 * content type) parses, is valid UTF-8, and errors carry {"error": {"code",
 * "message"}}. Writes land in the store, which is emptied when it grows past
 * 2000 papers. Build and run:
 *
 *     make fuzz FUZZ_TARGETS=routes FUZZ_SECONDS=300
 */
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <strings.h>

#include "../../src/server/server_int.h"
#include "../../src/text/text.h"
#include "fuzz.h"

#define MODEL "tests/fixtures/model/bert-tiny-f32"
#define MAX_ARGS 64

typedef struct kv {
    char *key, *value;
} kv;

/* The request being run: its decoded query arguments and headers. */
static kv g_args[MAX_ARGS], g_headers[MAX_ARGS];
static int g_n_args, g_n_headers;

const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                                        const char *key) {
    (void)connection;
    if (!key) return NULL;
    if (kind & MHD_GET_ARGUMENT_KIND)
        for (int i = 0; i < g_n_args; i++)
            if (strcmp(g_args[i].key, key) == 0) return g_args[i].value;
    if (kind & MHD_HEADER_KIND)
        for (int i = 0; i < g_n_headers; i++)
            if (strcasecmp(g_headers[i].key, key) == 0) return g_headers[i].value;
    return NULL;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes '+' and %XX in place (as libmicrohttpd does for arguments). */
static void unescape(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '+') *w++ = ' ';
        else if (*r == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
            *w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
            r += 2;
        } else *w++ = *r;
    }
    *w = '\0';
}

/* Splits query (modified in place) into g_args. */
static void parse_query(char *query) {
    for (char *p = query; p && *p && g_n_args < MAX_ARGS;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = '\0';
        char *eq = strchr(p, '=');
        if (eq) *eq = '\0';
        unescape(p);
        if (eq) unescape(eq + 1);
        if (*p) g_args[g_n_args++] = (kv){p, eq ? eq + 1 : NULL};
        p = amp ? amp + 1 : NULL;
    }
}

/* ---- the server under test ---- */

static sx_srv g_srv;

static void open_backend(void) {
    char dir[512];
    fz_path(dir, sizeof dir, "routes-db");
    fz_clear_dir(dir);
    sx_store_opts o = sx_store_defaults(g_srv.dim);
    o.params.M = 8;
    o.params.ef_construction = 32;
    o.n_threads = 1;
    o.create = 1;
    sx_err err = {0};
    if (sx_backend_open_local(dir, &o, &g_srv.backend, &err) != 0) {
        fprintf(stderr, "routes fuzz: %s\n", err.msg);
        abort();
    }
}

static void setup(void) {
    sx_err err = {0};
    sx_encoder_opts eo = {.n_threads = 1};
    g_srv.opts = sx_server_defaults();
    if (sx_encoder_load(MODEL, &eo, &g_srv.encoder, &err) != 0) {
        fprintf(stderr, "routes fuzz: run from the repository root: %s\n", err.msg);
        abort();
    }
    g_srv.dim = sx_encoder_dim(g_srv.encoder);
    g_srv.metrics = sx_metrics_create();
    g_srv.cache = sx_lru_create(64, (size_t)g_srv.dim * sizeof(float));
    if (sx_batcher_create(g_srv.encoder, 4, 1, g_srv.metrics, &g_srv.batcher, &err) != 0) abort();
    g_srv.started = sx_now();
    open_backend();
}

/* Checks what the handler answered. */
static void check_response(const sx_response *res) {
    FZ_CHECK(res->status >= 200 && res->status <= 599);
    if (res->status == 500) {
        fprintf(stderr, "routes fuzz: 500 %.*s\n", (int)res->body.len, res->body.data ? res->body.data : "");
        abort();
    }
    if (res->content_type || res->static_body) return; /* pages, metrics */
    FZ_CHECK(!res->body.oom);
    FZ_CHECK(sx_utf8_check(res->body.data ? res->body.data : "", res->body.len, NULL) == 0);
    cJSON *j = cJSON_ParseWithLength(res->body.data ? res->body.data : "", res->body.len);
    FZ_CHECK(j != NULL);
    if (res->status >= 400) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        FZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "code")));
        FZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    }
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_srv.encoder) setup();
    /* one NUL-terminated copy, cut into its parts in place */
    char *req = malloc(size + 1);
    if (size) memcpy(req, data, size);
    req[size] = '\0';
    char *body = req + size;
    char *line_end = memchr(req, '\n', size);
    if (line_end) {
        *line_end = '\0';
        char *h = line_end + 1;
        g_n_headers = 0;
        while (h < req + size) {
            char *e = memchr(h, '\n', (size_t)(req + size - h));
            if (e) *e = '\0';
            if (!*h) { /* the empty line: the body follows */
                body = e ? e + 1 : req + size;
                break;
            }
            char *colon = strchr(h, ':');
            if (colon && g_n_headers < MAX_ARGS) {
                *colon = '\0';
                char *v = colon + 1;
                while (*v == ' ') v++;
                g_headers[g_n_headers++] = (kv){h, v};
            }
            if (!e) break;
            h = e + 1;
        }
    }
    char *method = req, *target = strchr(req, ' ');
    if (target) *target++ = '\0';
    else target = "/";
    char *query = strchr(target, '?');
    if (query) *query++ = '\0';
    g_n_args = 0;
    parse_query(query);

    sx_request rq = {.method = method, .path = target, .client = "127.0.0.1", .body = body,
                     .body_len = (size_t)(req + size - body)};
    sx_response res = {0};
    char id_buf[256];
    if (sx_route_request(&g_srv, &rq, id_buf, sizeof id_buf, &res) == 0) {
        sx_handle(&g_srv, &rq, &res);
    }
    check_response(&res);
    sx_buf_free(&res.body);
    g_n_args = g_n_headers = 0;
    free(req);

    sx_backend_info in;
    if (sx_backend_get_info(g_srv.backend, &in, 0, NULL) == 0 && in.count > 2000) {
        sx_backend_close(g_srv.backend);
        open_backend();
    }
    return 0;
}
