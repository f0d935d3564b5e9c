/*
 * http.c - the HTTP side of the server (libmicrohttpd) and its life cycle.
 *
 * Threading. libmicrohttpd runs one thread per connection (HTTP/1.1 keep-
 * alive; 50 benchmark clients are 50 threads). A request thread does its own
 * validation and JSON; embedding leaves the thread, through the micro-batcher
 * (batcher.c), which is what lets concurrent queries share one encoder call,
 * and a search of bounded cost goes along with it and runs on the encoder's
 * threads right after the batch (routes.c, rides_along). Thread-per-
 * connection was chosen over MHD's epoll pool with suspend/resume because
 * every request blocks on the batcher anyway, and a blocked pool thread
 * would stall its other connections.
 *
 * The request life cycle in MHD's callback:
 *   1st call   route, then the checks that need no body: loading (503),
 *              method (405), API key (401), rate limit (429), Content-Length
 *              over the limit (413), Content-Type (415). A failed check is
 *              answered at once, before the body is read.
 *   data calls the body accumulates up to max_body (413 beyond).
 *   last call  the handler runs and the response is queued.
 * The completion callback logs one line per request (logfmt) and updates the
 * metrics.
 *
 * Start-up and shutdown. The server loads the model and opens the collection
 * first and listens last, so a start that cannot serve (a bad model; a
 * missing, locked or damaged collection) fails before it takes the port or
 * logs "listening" (rejected: listening at once and loading behind a /health
 * 503, which announced servers that then failed). The main thread waits for SIGTERM/SIGINT (or a failed load), then: stops
 * accepting (MHD_quiesce_daemon), waits for in-flight requests and, for up
 * to a second, for the open connections to be answered (503) and closed
 * (wait_drained), stops the daemon, checkpoints the collection and frees
 * everything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server_int.h"

typedef struct conn_req {
    double t0;
    unsigned long long id;
    char method[16];
    char *path;
    char client[64];
    sx_buf body;
    int responded;
    sx_request rq;
    sx_response res;
    char id_buf[256];
} conn_req;

sx_server_opts sx_server_defaults(void) {
    sx_server_opts o = {0};
    o.host = "127.0.0.1";
    o.port = 8000;
    o.data_dir = "data/db";
    o.model_dir = "models/all-MiniLM-L6-v2";
    o.store = sx_store_defaults(384);
    o.gateway = sx_gateway_defaults();
    o.embed_batch = 64;
    o.embed_workers = 1;
    o.cache_entries = 10000;
    o.max_body = 32u << 20;
    o.timeout_s = 30;
    o.max_connections = 1024;
    return o;
}

/* ---- helpers ---------------------------------------------------------------- */

static void client_address(struct MHD_Connection *conn, char *out, size_t cap) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "unknown");
    if (!ci || !ci->client_addr) return;
    socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                            : sizeof(struct sockaddr_in);
    if (getnameinfo(ci->client_addr, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, cap, "unknown");
}

/* Compares without leaking, through timing, where the first difference is. */
static int equal_constant_time(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = (unsigned)(la ^ lb);
    for (size_t i = 0; i < lb; i++) diff |= (unsigned char)(i < la ? a[i] : 0) ^ (unsigned char)b[i];
    return diff == 0;
}

static int authorized(sx_srv *s, struct MHD_Connection *conn) {
    if (!s->opts.api_key || !s->opts.api_key[0]) return 1;
    const char *k = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key");
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!k && auth && strncasecmp(auth, "Bearer ", 7) == 0) k = auth + 7;
    return k && equal_constant_time(k, s->opts.api_key);
}

/* Runs the checks that need no body; returns 0 or an HTTP status with
 * res filled. */
static int precheck(sx_srv *s, conn_req *c, struct MHD_Connection *conn) {
    sx_response *res = &c->res;
    int st = sx_route_request(s, &c->rq, c->id_buf, sizeof c->id_buf, res);
    if (st) return st;
    if (atomic_load(&s->stopping)) {
        /* Keep-alive clients would otherwise keep a draining server busy. */
        sx_respond_error(res, 503, "unavailable", "the server is shutting down");
        res->close = 1;
        return 503;
    }
    sx_route r = c->rq.route;
    if (sx_route_needs_ready(r) && !atomic_load(&s->ready)) {
        sx_respond_error(res, 503, "loading", "the collection is still loading; retry shortly");
        res->retry_after = 1;
        return 503;
    }
    if (sx_route_is_write(r) && !authorized(s, conn)) {
        sx_respond_error(res, 401, "unauthorized", "this route needs a valid API key "
                         "(header X-API-Key or Authorization: Bearer)");
        return 401;
    }
    if (r != SX_ROUTE_HEALTH && r != SX_ROUTE_METRICS) {
        double wait = sx_ratelimit_take(s->ratelimit, c->client, sx_now());
        if (wait > 0) {
            sx_metrics_ratelimited(s->metrics);
            sx_respond_error(res, 429, "rate_limited", "too many requests; retry in %.1f s", wait);
            res->retry_after = (int)wait + 1;
            return 429;
        }
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > s->opts.max_body) {
        sx_respond_error(res, 413, "payload_too_large", "the body is larger than %zu bytes", s->opts.max_body);
        return 413;
    }
    if (strcmp(c->method, "POST") == 0) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (ct && strncasecmp(ct, "application/json", 16) != 0) {
            sx_respond_error(res, 415, "unsupported_media_type",
                             "the body must be JSON (Content-Type: application/json), not %.60s", ct);
            return 415;
        }
    }
    return 0;
}

static enum MHD_Result queue(struct MHD_Connection *conn, conn_req *c) {
    sx_response *res = &c->res;
    struct MHD_Response *r;
    if (res->static_body) {
        r = MHD_create_response_from_buffer(res->static_len, (void *)res->static_body,
                                            MHD_RESPMEM_PERSISTENT);
    } else if (res->body.oom) {
        res->status = 500;
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        r = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(res->body.len, res->body.data, MHD_RESPMEM_MUST_COPY);
    }
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", res->content_type ? res->content_type
                                                                 : "application/json; charset=utf-8");
    if (res->cache_control) MHD_add_response_header(r, "Cache-Control", res->cache_control);
    if (res->allow[0]) MHD_add_response_header(r, "Allow", res->allow);
    if (res->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", res->retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (res->close) MHD_add_response_header(r, "Connection", "close");
    char rid[24];
    snprintf(rid, sizeof rid, "%llu", c->id);
    MHD_add_response_header(r, "X-Request-Id", rid);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    c->responded = 1;
    return ok;
}

/* ---- MHD callbacks -------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    sx_srv *s = cls;
    conn_req *c = *req_cls;
    if (!c) { /* first call: headers are in */
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *req_cls = c;
        c->t0 = sx_now();
        c->id = atomic_fetch_add(&s->next_request_id, 1) + 1;
        snprintf(c->method, sizeof c->method, "%s", method);
        c->path = strdup(url);
        client_address(conn, c->client, sizeof c->client);
        atomic_fetch_add(&s->inflight, 1);
        c->rq = (sx_request){.method = c->method, .path = c->path ? c->path : "", .client = c->client,
                             .conn = conn, .route = SX_ROUTE_OTHER};
        if (!c->path) return MHD_NO;
        if (precheck(s, c, conn) != 0) return queue(conn, c);
        return MHD_YES;
    }
    if (*upload_data_size > 0) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->responded) return MHD_YES;
        if (c->body.len + n > s->opts.max_body) {
            sx_respond_error(&c->res, 413, "payload_too_large", "the body is larger than %zu bytes",
                             s->opts.max_body);
            return queue(conn, c);
        }
        sx_buf_append(&c->body, upload_data, n);
        return MHD_YES;
    }
    if (c->responded) return MHD_YES;
    if (c->body.oom) {
        sx_respond_error(&c->res, 500, "internal", "out of memory reading the body");
        return queue(conn, c);
    }
    c->rq.body = c->body.data ? c->body.data : "";
    c->rq.body_len = c->body.len;
    sx_handle(s, &c->rq, &c->res);
    return queue(conn, c);
}

/* Writes s with characters that would break a logfmt value %-escaped. */
static void log_escape(char *out, size_t cap, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; s && *s && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || ch == '%') {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    sx_srv *s = cls;
    conn_req *c = *req_cls;
    if (!c) return;
    double dt = sx_now() - c->t0;
    int status = c->responded ? c->res.status : 499; /* client went away first */
    sx_metrics_request(s->metrics, c->rq.route, status, dt);
    char path[512];
    log_escape(path, sizeof path, c->path);
    /* 503 while loading or stopping is expected; other 5xx are problems. */
    sx_log(status >= 500 && status != 503 ? SX_LOG_WARN : SX_LOG_INFO,
           "request id=%llu method=%s path=%s route=\"%s\" status=%d ms=%.3f embed_ms=%.3f "
           "index_ms=%.3f client=%s in=%zu out=%zu%s",
           c->id, c->method, path, sx_route_name(c->rq.route), status, dt * 1e3, c->rq.t_embed * 1e3,
           c->rq.t_index * 1e3, c->client, c->body.len,
           c->res.static_body ? c->res.static_len : c->res.body.len,
           toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    sx_buf_free(&c->body);
    sx_buf_free(&c->res.body);
    free(c->path);
    free(c);
    *req_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    sx_log(SX_LOG_WARN, "http: %s", msg);
}

/* ---- loading ---------------------------------------------------------------------- */

/* Wakes sx_server_wait: a stop was asked for, or loading failed. */
static void wake(sx_srv *s) {
    pthread_mutex_lock(&s->life_mu);
    s->wake = 1;
    pthread_cond_broadcast(&s->life_cv);
    pthread_mutex_unlock(&s->life_mu);
}

/* Opens the backend the options name: a Redis Cluster or the local store. */
static int open_backend(sx_srv *s) {
    if (s->opts.cluster) {
        sx_gateway_opts go = s->opts.gateway;
        go.dim = s->dim;
        return sx_backend_open_cluster(s->opts.cluster, &go, &s->backend, &s->load_err);
    }
    sx_store_opts so = s->opts.store;
    so.params.dim = s->dim;
    so.progress = 1;
    int rc = sx_backend_open_local(s->opts.data_dir, &so, &s->backend, &s->load_err);
    if (rc == 0 && s->backend->dim != s->dim)
        rc = sx_err_set(&s->load_err, SX_EINVAL, "%s holds %d-dimensional vectors but the model %s makes %d",
                        s->opts.data_dir, s->backend->dim, s->opts.model_dir, s->dim);
    return rc;
}

/* Loads the model and opens the backend; on failure sets s->failed with the
 * message in s->load_err. */
static void load(sx_srv *s) {
    double t0 = sx_now();
    sx_encoder_opts eo = {.n_threads = s->opts.threads, .int8 = s->opts.int8};
    int rc = sx_encoder_load(s->opts.model_dir, &eo, &s->encoder, &s->load_err);
    if (rc == 0) {
        s->dim = sx_encoder_dim(s->encoder);
        rc = sx_batcher_create(s->encoder, s->opts.embed_batch, s->opts.embed_workers, s->metrics, &s->batcher, &s->load_err);
    }
    if (rc == 0) rc = open_backend(s);
    if (rc == 0 && s->opts.cache_entries > 0) {
        s->cache = sx_lru_create(s->opts.cache_entries, (size_t)s->dim * sizeof(float));
        if (!s->cache) rc = sx_err_set(&s->load_err, SX_ENOMEM, "out of memory for the query cache");
    }
    if (rc < 0) {
        atomic_store(&s->failed, 1);
        wake(s);
        return;
    }
    sx_backend_info in = {0};
    sx_backend_get_info(s->backend, &in, 0, NULL);
    atomic_store(&s->ready, 1);
    sx_log(SX_LOG_INFO, "ready backend=%s papers=%llu shards=%d load_seconds=%.2f rss_mb=%.0f",
           s->backend->ops->name, (unsigned long long)in.count, in.n_shards, sx_now() - t0,
           (double)sx_current_rss() / 1048576.0);
}

/* ---- run ------------------------------------------------------------------------------ */

/* Counts open connections (MHD_OPTION_NOTIFY_CONNECTION). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    sx_srv *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) atomic_fetch_add(&s->conns, 1);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED) atomic_fetch_sub(&s->conns, 1);
}

/* Waits (up to max_seconds) for the requests being handled, then (up to
 * grace_seconds more) for the connections still open: one accepted just
 * before the listener closed may not have reached on_request yet, and
 * stopping the daemon then would close it unanswered (curl: "empty reply",
 * seen in the graceful-shutdown test); given a moment it gets its 503 and
 * closes. Idle keep-alive connections are closed when the grace is up. */
static void wait_drained(sx_srv *s, double max_seconds, double grace_seconds) {
    double t0 = sx_now();
    while (atomic_load(&s->inflight) > 0 && sx_now() - t0 < max_seconds) usleep(10000);
    double t1 = sx_now();
    while ((atomic_load(&s->conns) > 0 || atomic_load(&s->inflight) > 0) &&
           sx_now() - t1 < grace_seconds)
        usleep(10000);
}

static void release(sx_srv *s) {
    sx_batcher_free(s->batcher);
    sx_backend_close(s->backend);
    sx_encoder_free(s->encoder);
    sx_lru_free(s->cache);
    sx_ratelimit_free(s->ratelimit);
    sx_metrics_free(s->metrics);
}

static struct MHD_Daemon *start_daemon(sx_srv *s, sx_err *err) {
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->opts.port);
    if (inet_pton(AF_INET, s->opts.host, &addr.sin_addr) != 1) {
        sx_err_set(err, SX_EINVAL, "--host must be an IPv4 address, got '%s'", s->opts.host);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->opts.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opts.timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)s->opts.max_connections, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!d)
        sx_err_set(err, SX_EIO, "cannot listen on %s:%d (%s)", s->opts.host, s->opts.port,
                   errno ? strerror(errno) : "port in use?");
    return d;
}

int sx_server_start(const sx_server_opts *o, sx_server **out, sx_err *err) {
    *out = NULL;
    sx_srv *s = calloc(1, sizeof *s);
    if (!s) return sx_err_set(err, SX_ENOMEM, "out of memory");
    s->opts = *o;
    s->started = sx_now();
    pthread_mutex_init(&s->life_mu, NULL);
    pthread_cond_init(&s->life_cv, NULL);
    double burst = o->rate_burst > 0 ? o->rate_burst : 2 * o->rate_limit;
    s->metrics = sx_metrics_create();
    s->ratelimit = sx_ratelimit_create(o->rate_limit, burst, 100000);
    int rc = 0;
    if (!s->metrics || !s->ratelimit) rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    /* Load the model and open the data before listening: a bad model or a
     * locked, missing or damaged directory fails here, and nothing claims
     * the port or says "listening" for a server that will not serve. */
    if (rc == 0) {
        load(s);
        if (atomic_load(&s->failed))
            rc = sx_err_set(err, s->load_err.code ? s->load_err.code : SX_EIO, "%s", s->load_err.msg);
    }
    if (rc == 0 && !(s->daemon = start_daemon(s, err))) rc = err ? err->code : SX_EIO;
    if (rc < 0) {
        release(s);
        pthread_cond_destroy(&s->life_cv);
        pthread_mutex_destroy(&s->life_mu);
        free(s);
        return rc;
    }
    sx_log(SX_LOG_INFO, "listening on http://%s:%d", o->host, o->port);
    *out = s;
    return 0;
}

void sx_server_stop(sx_server *s) { wake(s); }

int sx_server_wait(sx_server *s, sx_err *err) {
    pthread_mutex_lock(&s->life_mu);
    while (!s->wake) pthread_cond_wait(&s->life_cv, &s->life_mu);
    pthread_mutex_unlock(&s->life_mu);
    int rc = 0;
    if (!atomic_load(&s->failed))
        sx_log(SX_LOG_INFO, "shutting down (in-flight requests: %ld)", atomic_load(&s->inflight));
    if (atomic_load(&s->failed))
        rc = sx_err_set(err, s->load_err.code ? s->load_err.code : SX_EIO, "%s", s->load_err.msg);
    atomic_store(&s->stopping, 1);
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    wait_drained(s, 30.0, 1.0);
    MHD_stop_daemon(s->daemon);
    if (rc == 0 && s->backend) {
        sx_err cerr = {0};
        if (sx_backend_flush(s->backend, &cerr) < 0)
            sx_log(SX_LOG_ERROR, "checkpoint at shutdown failed (the log still has every write): %s",
                   cerr.msg);
    }
    release(s);
    s->metrics = NULL, s->ratelimit = NULL, s->cache = NULL;
    s->backend = NULL, s->encoder = NULL, s->batcher = NULL;
    if (rc == 0) sx_log(SX_LOG_INFO, "stopped");
    return rc;
}

void sx_server_free(sx_server *s) {
    if (!s) return;
    pthread_cond_destroy(&s->life_cv);
    pthread_mutex_destroy(&s->life_mu);
    free(s);
}
