/*
 * http.c - the HTTP side of the server (libmicrohttpd): connections, request
 * policy, and the server's life cycle.
 *
 * Connections. libmicrohttpd runs an epoll event loop on a few I/O threads
 * (--io-threads, 2) that read requests and write responses for every open
 * connection; an idle or slow connection costs a file descriptor and up to
 * --max-header-bytes of buffer, never a thread. A complete request is handed
 * to a pool of worker threads (--workers, 64): the I/O thread suspends the
 * connection (MHD_suspend_connection), a worker runs the handler, which may
 * block on the micro-batcher (batcher.c), the store's fsync or the cluster,
 * and resumes it (MHD_resume_connection); the I/O thread then sends the
 * response. Requests beyond the workers wait in a FIFO queue, so concurrent
 * searches still meet in one encoder batch (64 workers cover the 50-client
 * benchmark).
 *
 * Rejected: thread-per-connection (MHD_USE_THREAD_PER_CONNECTION). Each
 * open connection holds a thread, so 10,000 idle connections fill 1,024
 * thread slots and every normal search is refused until the idle timeout
 * (0 of 40 answered, against 40 of 40 here), and SIGTERM waits 31 s for
 * clients trickling a body (1 s here); the worker pool serves the 50-client
 * benchmark at the same rate (docs/performance.md, "Connections under
 * abuse"; tests/e2e/http-abuse.sh keeps the figures). Also rejected: handling requests on the I/O threads themselves,
 * because a search blocked on the batcher would stall every connection of
 * that thread.
 *
 * Bounds (docs/security.md has the table of defaults):
 *   connections   --max-connections in all and --max-conns-per-ip per
 *                 client address; a connection past either is accepted and
 *                 closed at once, not left waiting in the listen queue (the
 *                 total may be passed by io_threads - 1, see on_accept).
 *   headers       the request line and headers must fit --max-header-bytes
 *                 (MHD answers 431) and arrive within --header-timeout of the
 *                 connection opening (or of the previous response plus the
 *                 idle --timeout, on a kept-alive connection).
 *   body          at most --max-body bytes (413, also for chunked bodies:
 *                 the rest is read and dropped, up to 4 x --max-body, so the
 *                 client gets its answer), within --body-timeout.
 *   idle          --timeout with nothing sent or received.
 *   pipelining    one request at a time per connection; what a client sends
 *                 ahead waits in the connection's buffer and the socket.
 * The deadlines are kept by a reaper thread: MHD's own timeout is an idle
 * timeout, which a client sending a byte every few seconds never meets. The
 * reaper shuts down (shutdown(2)) the socket of a connection past its
 * deadline, and MHD then closes it as if the client had left; it knows the
 * connections from MHD's connection notifications, and MHD reports a
 * connection closed before it closes the descriptor, so the reaper never
 * touches a reused one.
 *
 * The request life cycle in MHD's callback:
 *   1st call   Host (421), OPTIONS (204), route (404/405), stopping
 *              (503), rate limit (429), API key: failed attempts
 *              throttled (429), missing key (401), keyless writes off
 *              loopback (403); Content-Length over the limit (413),
 *              Content-Type (415). A failed check is answered at once,
 *              before the body is read.
 *   data calls the body accumulates up to max_body.
 *   last call  413 if the body was too large; else the request goes to a
 *              worker, and the call after the resume queues its response.
 * The completion callback logs one line per request (logfmt: method, route,
 * status, duration, stage times, client, request id; at warn level and
 * named slow_request above --slow-ms) and updates the metrics. The request
 * id is the client's X-Request-Id when it is sane (1-64 characters of
 * [A-Za-z0-9._:-]), else generated (a per-process tag and a counter); it is
 * echoed in the response's X-Request-Id.
 *
 * Start-up and shutdown. The server loads the model and opens the collection
 * first and listens last, so a start that cannot serve (a bad model; a
 * missing, locked or damaged collection) fails before it takes the port or
 * logs "listening" (rejected: listening at once and loading behind a /health
 * 503, which announced servers that then failed). It opens its listening
 * socket itself (without SO_REUSEPORT, so a second server on the same port
 * fails with a clear error instead of sharing the port). The main thread
 * waits for SIGTERM/SIGINT, then: stops accepting (MHD_quiesce_daemon),
 * waits for the requests queued or on a worker and, for up to a second, for
 * the open connections to be answered (503) and closed (wait_drained), stops
 * the workers and the daemon (which closes whatever is still open, a
 * trickling upload included), checkpoints the collection and frees
 * everything.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server_int.h"

enum { PHASE_READING, PHASE_QUEUED, PHASE_DONE };

typedef struct conn_req {
    double t0;
    char rid[72]; /* request id */
    char method[16];
    char *path;
    char client[64];
    sx_buf body;
    size_t discarded;      /* body bytes dropped past max_body */
    int too_big;           /* the body went over max_body: answer 413 */
    int responded;
    int phase;             /* PHASE_*: written by a worker before the resume */
    int cors;              /* the request's Origin is the allowed one */
    int preflight;         /* an OPTIONS answer: add the CORS preflight headers */
    struct MHD_Connection *conn;
    struct conn_req *next; /* in the work queue */
    sx_request rq;
    sx_response res;
    char id_buf[256];
} conn_req;

/* An open connection, as the reaper sees it. */
typedef struct conn_entry {
    int fd;
    double deadline; /* sx_now() seconds; 0: none (under reg_mu) */
    struct conn_entry *prev, *next;
} conn_entry;

/* http.c's part of the server state. */
typedef struct sx_http {
    int loopback;              /* bound to 127.0.0.0/8 */
    sx_ratelimit *auth_fail;   /* failed API-key attempts per client */

    pthread_mutex_t work_mu;   /* the queue and stop_work */
    pthread_cond_t work_cv;
    conn_req *head, *tail;
    int stop_work;
    pthread_t *workers;
    int n_workers;

    pthread_mutex_t reg_mu;    /* the connection registry */
    conn_entry *conns;
    _Atomic int stop_reap;
    pthread_t reaper;
    int reaper_started;

    _Atomic long log_window, log_shown, log_dropped; /* mhd_log's throttle */
} sx_http;

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
    o.max_connections = 16384;
    o.max_conns_per_ip = 256;
    o.max_header_bytes = 32u << 10;
    o.header_timeout_s = 10;
    o.body_timeout_s = 60;
    o.io_threads = 2;
    o.workers = 64;
    o.auth_fail_rate = 1;
    o.slow_ms = 500;
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

/* MHD_KeyValueIterator: keeps the value of the last X-Forwarded-For header
 * (a proxy adds its own line after any the client sent). */
static enum MHD_Result last_forwarded(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    if (value && strcasecmp(key, "X-Forwarded-For") == 0) snprintf(cls, 256, "%s", value);
    return MHD_YES;
}

/* 1 when addr is one of the comma-separated addresses of list. */
static int listed(const char *list, const char *addr) {
    size_t n = strlen(addr);
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, addr, n) == 0) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Behind a trusted proxy the client is the address the proxy appended to
 * X-Forwarded-For: the last entry of the last such header. Everything before
 * it came from the client and may be forged. A missing or malformed entry
 * leaves the proxy's own address. */
static void forwarded_client(const sx_srv *s, struct MHD_Connection *conn, char *client, size_t cap) {
    if (!s->opts.trusted_proxies || !listed(s->opts.trusted_proxies, client)) return;
    char v[256] = "";
    MHD_get_connection_values(conn, MHD_HEADER_KIND, last_forwarded, v);
    const char *p = strrchr(v, ',');
    p = p ? p + 1 : v;
    while (*p == ' ' || *p == '\t') p++;
    char addr[64];
    size_t len = strcspn(p, " \t");
    if (len == 0 || len >= sizeof addr || p[len + strspn(p + len, " \t")] != '\0') return;
    memcpy(addr, p, len);
    addr[len] = '\0';
    unsigned char bin[16];
    if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1) return;
    snprintf(client, cap, "%s", addr);
}

/* Compares without leaking, through timing, where the first difference is. */
static int equal_constant_time(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = (unsigned)(la ^ lb);
    for (size_t i = 0; i < lb; i++) diff |= (unsigned char)(i < la ? a[i] : 0) ^ (unsigned char)b[i];
    return diff == 0;
}

static int has_api_key(const sx_srv *s) { return s->opts.api_key && s->opts.api_key[0]; }

static int authorized(sx_srv *s, struct MHD_Connection *conn) {
    const char *k = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Key");
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!k && auth && strncasecmp(auth, "Bearer ", 7) == 0) k = auth + 7;
    return k && equal_constant_time(k, s->opts.api_key);
}

/* Copies a header value for an error message: printable ASCII only, so the
 * JSON body stays valid UTF-8 whatever the client sent. */
static void printable(char *out, size_t cap, const char *v) {
    size_t o = 0;
    for (; v && *v && o + 1 < cap; v++) out[o++] = (*v >= 0x20 && *v < 0x7f) ? *v : '?';
    out[o] = '\0';
}

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Whether a Content-Type names JSON: application/json, optionally with
 * charset=utf-8 (quoted or not), any case. */
int sx_http_is_json(const char *ct) {
    if (!ct) return 0;
    const char *p = skip_ws(ct);
    if (strncasecmp(p, "application/json", 16) != 0) return 0;
    p = skip_ws(p + 16);
    if (!*p) return 1;
    if (*p != ';') return 0;
    p = skip_ws(p + 1);
    if (strncasecmp(p, "charset", 7) != 0) return 0;
    p = skip_ws(p + 7);
    if (*p != '=') return 0;
    p = skip_ws(p + 1);
    int quoted = *p == '"';
    p += quoted;
    if (strncasecmp(p, "utf-8", 5) != 0) return 0;
    p += 5;
    if (quoted && *p++ != '"') return 0;
    return *skip_ws(p) == '\0';
}

/* Whether name (n bytes) is one of the comma-separated names in list. */
static int in_list(const char *list, const char *name, size_t n) {
    for (const char *p = list; p && *p;) {
        p = skip_ws(p);
        size_t len = strcspn(p, ",");
        size_t l = len;
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t')) l--;
        if (l == n && strncasecmp(p, name, n) == 0) return 1;
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

int sx_http_host_ok(const char *host, const char *bound, const char *allowed) {
    size_t n;
    if (host[0] == '[') {
        const char *e = strchr(host, ']');
        if (!e) return 0;
        n = (size_t)(e - host) + 1;
    } else {
        n = strcspn(host, ":");
    }
    const char *port = host + n;
    if (*port) {
        if (*port != ':' || !port[1]) return 0;
        for (const char *d = port + 1; *d; d++)
            if (*d < '0' || *d > '9') return 0;
    }
    return n > 0 && (in_list("localhost,127.0.0.1,[::1]", host, n) || in_list(bound, host, n) ||
                     in_list(allowed, host, n) || in_list(allowed, "*", 1));
}

/* The DNS-rebinding defence: a page from another site that made its own
 * name resolve to 127.0.0.1 still sends that name as Host. Checked when
 * bound to loopback, or anywhere when --allowed-host names the accepted
 * hosts; a request without Host (HTTP/1.0 tools, never a browser) passes. */
static int host_allowed(const sx_srv *s, const char *host) {
    if (!host || (!s->http->loopback && !s->opts.allowed_hosts)) return 1;
    return sx_http_host_ok(host, s->opts.host, s->opts.allowed_hosts);
}

/* Whether a request needs a body reader: it declares a length or a
 * transfer coding. */
static int has_body(struct MHD_Connection *conn) {
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding") ||
           (cl && strtoull(cl, NULL, 10) > 0);
}

/* ---- connection deadlines (the reaper) ---------------------------------------- */

/* Sets the deadline of conn's connection to seconds from now (0: none). */
static void set_deadline(sx_srv *s, struct MHD_Connection *conn, int seconds) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_entry *e = ci ? ci->socket_context : NULL;
    if (!e) return;
    pthread_mutex_lock(&s->http->reg_mu);
    e->deadline = seconds > 0 ? sx_now() + seconds : 0;
    pthread_mutex_unlock(&s->http->reg_mu);
}

/* Registers and forgets connections (MHD_OPTION_NOTIFY_CONNECTION). MHD
 * calls CLOSED before it closes the socket. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    sx_srv *s = cls;
    sx_http *h = s->http;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->conns, 1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_entry *e = ci ? calloc(1, sizeof *e) : NULL;
        if (!e) return; /* no deadline for this one; MHD's idle timeout still applies */
        e->fd = ci->connect_fd;
        e->deadline = s->opts.header_timeout_s > 0 ? sx_now() + s->opts.header_timeout_s : 0;
        pthread_mutex_lock(&h->reg_mu);
        e->next = h->conns;
        if (h->conns) h->conns->prev = e;
        h->conns = e;
        pthread_mutex_unlock(&h->reg_mu);
        *socket_context = e;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->conns, 1);
        conn_entry *e = *socket_context;
        if (!e) return;
        pthread_mutex_lock(&h->reg_mu);
        if (e->prev) e->prev->next = e->next;
        else h->conns = e->next;
        if (e->next) e->next->prev = e->prev;
        pthread_mutex_unlock(&h->reg_mu);
        free(e);
        *socket_context = NULL;
    }
}

/* Refuses a connection past --max-connections (MHD's accept policy
 * callback): MHD's own limit stops accepting instead, which leaves the
 * connections waiting in the listen queue. Concurrent accepts on the I/O
 * threads may let through up to io_threads - 1 more. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr, (void)addrlen;
    sx_srv *s = cls;
    return atomic_load(&s->conns) < s->opts.max_connections ? MHD_YES : MHD_NO;
}

/* Every 100 ms: shuts down the connections past their deadline. */
static void *reaper_main(void *arg) {
    sx_srv *s = arg;
    sx_http *h = s->http;
    while (!atomic_load(&h->stop_reap)) {
        usleep(100000);
        long n = 0;
        double now = sx_now();
        pthread_mutex_lock(&h->reg_mu);
        for (conn_entry *e = h->conns; e; e = e->next)
            if (e->deadline > 0 && now > e->deadline) {
                shutdown(e->fd, SHUT_RDWR);
                e->deadline = 0;
                n++;
            }
        pthread_mutex_unlock(&h->reg_mu);
        if (n) sx_log(SX_LOG_INFO, "closed %ld connection%s past the header or body deadline", n, n == 1 ? "" : "s");
    }
    return NULL;
}

/* ---- workers ------------------------------------------------------------------ */

/* Runs queued requests' handlers, then resumes their connections. */
static void *worker_main(void *arg) {
    sx_srv *s = arg;
    sx_http *h = s->http;
    for (;;) {
        pthread_mutex_lock(&h->work_mu);
        while (!h->head && !h->stop_work) pthread_cond_wait(&h->work_cv, &h->work_mu);
        conn_req *c = h->head;
        if (c) {
            h->head = c->next;
            if (!h->head) h->tail = NULL;
        }
        pthread_mutex_unlock(&h->work_mu);
        if (!c) return NULL; /* stopping, and the queue is empty */
        sx_handle(s, &c->rq, &c->res);
        struct MHD_Connection *conn = c->conn;
        c->phase = PHASE_DONE;
        atomic_fetch_sub(&s->inflight, 1);
        MHD_resume_connection(conn); /* c may be freed from here on */
    }
}

/* Suspends c's connection and queues c for a worker. Returns 0, or -1 when
 * the workers are stopping (then nothing is done). Called from MHD's
 * callback (suspending is only allowed there). */
static int enqueue(sx_srv *s, conn_req *c) {
    sx_http *h = s->http;
    pthread_mutex_lock(&h->work_mu);
    if (h->stop_work) {
        pthread_mutex_unlock(&h->work_mu);
        return -1;
    }
    atomic_fetch_add(&s->inflight, 1);
    c->phase = PHASE_QUEUED;
    MHD_suspend_connection(c->conn);
    c->next = NULL;
    if (h->tail) h->tail->next = c;
    else h->head = c;
    h->tail = c;
    pthread_cond_signal(&h->work_cv);
    pthread_mutex_unlock(&h->work_mu);
    return 0;
}

/* Stops the workers once the queue is empty and joins them. */
static void stop_workers(sx_http *h) {
    pthread_mutex_lock(&h->work_mu);
    h->stop_work = 1;
    pthread_cond_broadcast(&h->work_cv);
    pthread_mutex_unlock(&h->work_mu);
    for (int i = 0; i < h->n_workers; i++) pthread_join(h->workers[i], NULL);
    h->n_workers = 0;
}

static void stop_reaper(sx_http *h) {
    if (!h->reaper_started) return;
    atomic_store(&h->stop_reap, 1);
    pthread_join(h->reaper, NULL);
    h->reaper_started = 0;
}

/* Frees http.c's state, stopping its threads first. NULL is a no-op. */
static void http_free(sx_http *h) {
    if (!h) return;
    stop_reaper(h);
    stop_workers(h);
    free(h->workers);
    sx_ratelimit_free(h->auth_fail);
    pthread_mutex_destroy(&h->work_mu);
    pthread_cond_destroy(&h->work_cv);
    pthread_mutex_destroy(&h->reg_mu);
    free(h);
}

/* Creates http.c's state and starts the workers and the reaper. */
static int http_create(sx_srv *s, sx_err *err) {
    sx_http *h = calloc(1, sizeof *h);
    if (!h) return sx_err_set(err, SX_ENOMEM, "out of memory");
    pthread_mutex_init(&h->work_mu, NULL);
    pthread_cond_init(&h->work_cv, NULL);
    pthread_mutex_init(&h->reg_mu, NULL);
    s->http = h;
    struct in_addr a;
    h->loopback = inet_pton(AF_INET, s->opts.host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
    h->auth_fail = sx_ratelimit_create(s->opts.auth_fail_rate, 10, 100000);
    int n = s->opts.workers > 0 ? s->opts.workers : 1;
    h->workers = calloc((size_t)n, sizeof *h->workers);
    if (!h->auth_fail || !h->workers) return sx_err_set(err, SX_ENOMEM, "out of memory");
    for (; h->n_workers < n; h->n_workers++)
        if (pthread_create(&h->workers[h->n_workers], NULL, worker_main, s) != 0)
            return sx_err_set(err, SX_EIO, "cannot start the worker threads");
    if (pthread_create(&h->reaper, NULL, reaper_main, s) != 0)
        return sx_err_set(err, SX_EIO, "cannot start the connection reaper thread");
    h->reaper_started = 1;
    return 0;
}

/* ---- request policy -------------------------------------------------------------- */

/* Answers OPTIONS: 204 with the route's methods in Allow (404 for no
 * route); the CORS preflight headers are added in queue(). */
static int answer_options(sx_srv *s, conn_req *c) {
    sx_response *res = &c->res;
    int st = sx_route_request(s, &c->rq, c->id_buf, sizeof c->id_buf, res);
    if (st == 404) return st;
    char methods[sizeof res->allow];
    snprintf(methods, sizeof methods, "%s", res->allow[0] ? res->allow : c->method);
    snprintf(res->allow, sizeof res->allow, "%.50s, OPTIONS", methods);
    res->status = 204;
    res->body.len = 0;
    c->preflight = 1;
    return 204;
}

/* The API key check of a write route; returns 0 or an HTTP status with res
 * filled. Failed attempts are counted per client, and a client over the
 * limit is refused before its key is looked at, so guessing is throttled. */
static int check_key(sx_srv *s, conn_req *c, struct MHD_Connection *conn) {
    sx_response *res = &c->res;
    if (!has_api_key(s)) {
        if (s->http->loopback) return 0;
        sx_respond_error(res, 403, "forbidden", "writes are disabled: the server listens on %s "
                         "without an API key; start it with SEMDEX_API_KEY=<key> (or --api-key) "
                         "to enable them", s->opts.host);
        return 403;
    }
    double now = sx_now();
    double wait = sx_ratelimit_peek(s->http->auth_fail, c->client, now);
    if (wait > 0) {
        sx_metrics_ratelimited(s->metrics);
        sx_respond_error(res, 429, "rate_limited", "too many failed API-key attempts; retry in %.1f s", wait);
        res->retry_after = (int)wait + 1;
        return 429;
    }
    if (!authorized(s, conn)) {
        sx_ratelimit_take(s->http->auth_fail, c->client, now);
        sx_respond_error(res, 401, "unauthorized", "this route needs a valid API key "
                         "(header X-API-Key or Authorization: Bearer)");
        return 401;
    }
    return 0;
}

/* Runs the checks that need no body; returns 0 or an HTTP status with
 * res filled. */
static int precheck(sx_srv *s, conn_req *c, struct MHD_Connection *conn) {
    sx_response *res = &c->res;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!host_allowed(s, host)) {
        char h[80];
        printable(h, sizeof h, host);
        sx_respond_error(res, 421, "misdirected_request", "this server does not answer for host '%s'; "
                         "start it with --allowed-host NAME to accept it", h);
        res->close = 1;
        return 421;
    }
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    c->cors = s->opts.cors_origin && origin &&
              (strcmp(s->opts.cors_origin, "*") == 0 || strcmp(origin, s->opts.cors_origin) == 0);
    if (strcmp(c->method, "OPTIONS") == 0) return answer_options(s, c);
    int st = sx_route_request(s, &c->rq, c->id_buf, sizeof c->id_buf, res);
    if (st) return st;
    if (atomic_load(&s->stopping)) {
        /* Keep-alive clients would otherwise keep a draining server busy. */
        sx_respond_error(res, 503, "unavailable", "the server is shutting down");
        res->close = 1;
        return 503;
    }
    sx_route r = c->rq.route;
    if (r != SX_ROUTE_HEALTH && r != SX_ROUTE_METRICS) {
        double wait = sx_ratelimit_take(s->ratelimit, c->client, sx_now());
        if (wait > 0) {
            sx_metrics_ratelimited(s->metrics);
            sx_respond_error(res, 429, "rate_limited", "too many requests; retry in %.1f s", wait);
            res->retry_after = (int)wait + 1;
            return 429;
        }
    }
    if (sx_route_is_write(r) && (st = check_key(s, c, conn)) != 0) return st;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > s->opts.max_body) {
        sx_respond_error(res, 413, "payload_too_large", "the body is larger than %zu bytes", s->opts.max_body);
        return 413;
    }
    if (strcmp(c->method, "POST") == 0) {
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        if (!sx_http_is_json(ct)) {
            char v[80];
            printable(v, sizeof v, ct);
            if (ct)
                sx_respond_error(res, 415, "unsupported_media_type", "the body must be JSON "
                                 "(Content-Type: application/json, optionally ; charset=utf-8), not %s", v);
            else
                sx_respond_error(res, 415, "unsupported_media_type", "the body must be JSON and say so "
                                 "(Content-Type: application/json); the request has no Content-Type");
            return 415;
        }
    }
    return 0;
}

static enum MHD_Result queue(sx_srv *s, struct MHD_Connection *conn, conn_req *c) {
    sx_response *res = &c->res;
    struct MHD_Response *r;
    if (res->status == 204) {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (res->static_body) {
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
    if (res->status != 204)
        MHD_add_response_header(r, "Content-Type", res->content_type ? res->content_type
                                                                     : "application/json; charset=utf-8");
    if (res->cache_control) MHD_add_response_header(r, "Cache-Control", res->cache_control);
    if (res->allow[0]) MHD_add_response_header(r, "Allow", res->allow);
    if (res->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", res->retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (s->opts.cors_origin) MHD_add_response_header(r, "Vary", "Origin");
    if (c->cors) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", s->opts.cors_origin);
        if (c->preflight) {
            MHD_add_response_header(r, "Access-Control-Allow-Methods", res->allow);
            MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type, X-API-Key, Authorization");
            MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        } else {
            MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
        }
    }
    if (res->close) MHD_add_response_header(r, "Connection", "close");
    MHD_add_response_header(r, "X-Request-Id", c->rid);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    c->responded = 1;
    return ok;
}

/* ---- MHD callbacks -------------------------------------------------------------- */

/* The request id: the client's X-Request-Id when sane, else generated. */
static void request_id(sx_srv *s, struct MHD_Connection *conn, char *out, size_t cap) {
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = v ? strlen(v) : 0;
    int ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) ok = isalnum((unsigned char)v[i]) || strchr("._:-", v[i]);
    if (ok) snprintf(out, cap, "%s", v);
    else snprintf(out, cap, "%08x-%llu", s->rid_tag, atomic_fetch_add(&s->next_request_id, 1) + 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    (void)version;
    sx_srv *s = cls;
    conn_req *c = *req_cls;
    if (!c) { /* first call: headers are in */
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *req_cls = c;
        c->t0 = sx_now();
        request_id(s, conn, c->rid, sizeof c->rid);
        c->conn = conn;
        snprintf(c->method, sizeof c->method, "%s", method);
        c->path = strdup(url);
        client_address(conn, c->client, sizeof c->client);
        forwarded_client(s, conn, c->client, sizeof c->client);
        c->rq = (sx_request){.method = c->method, .path = c->path ? c->path : "", .client = c->client,
                             .conn = conn, .route = SX_ROUTE_OTHER};
        if (!c->path) return MHD_NO;
        set_deadline(s, conn, has_body(conn) ? s->opts.body_timeout_s : 0);
        if (precheck(s, c, conn) != 0) return queue(s, conn, c);
        return MHD_YES;
    }
    if (*upload_data_size > 0) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->responded) return MHD_YES;
        if (c->too_big || c->body.len + n > s->opts.max_body) {
            /* MHD cannot answer in the middle of a body: drop the rest (up
             * to a bound) and answer 413 once it is in. */
            if (!c->too_big) c->discarded = c->body.len, sx_buf_free(&c->body);
            c->too_big = 1;
            c->discarded += n;
            return c->discarded / 4 > s->opts.max_body ? MHD_NO : MHD_YES;
        }
        sx_buf_append(&c->body, upload_data, n);
        return MHD_YES;
    }
    if (c->responded) return MHD_YES;
    if (c->phase == PHASE_DONE) return queue(s, conn, c); /* resumed by its worker */
    set_deadline(s, conn, 0);
    if (c->too_big) {
        sx_respond_error(&c->res, 413, "payload_too_large", "the body is larger than %zu bytes",
                         s->opts.max_body);
        c->res.close = 1;
        return queue(s, conn, c);
    }
    if (c->body.oom) {
        sx_respond_error(&c->res, 500, "internal", "out of memory reading the body");
        return queue(s, conn, c);
    }
    c->rq.body = c->body.data ? c->body.data : "";
    c->rq.body_len = c->body.len;
    if (enqueue(s, c) == 0) return MHD_YES;
    sx_respond_error(&c->res, 503, "unavailable", "the server is shutting down");
    c->res.close = 1;
    return queue(s, conn, c);
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
    char path[512], query[256] = "";
    log_escape(path, sizeof path, c->path);
    /* 503 while stopping (or a cluster is unavailable) is expected; other 5xx are problems. */
    int slow = s->opts.slow_ms > 0 && dt * 1e3 >= s->opts.slow_ms;
    if (slow && c->rq.query[0]) {
        char q[240];
        log_escape(q, sizeof q, c->rq.query);
        snprintf(query, sizeof query, " query=%s", q);
    }
    const sx_request *rq = &c->rq;
    sx_log(slow || (status >= 500 && status != 503) ? SX_LOG_WARN : SX_LOG_INFO,
           "%s id=%s method=%s path=%s route=\"%s\" status=%d ms=%.3f queue_ms=%.3f encode_ms=%.3f "
           "search_ms=%.3f fetch_ms=%.3f merge_ms=%.3f embed_ms=%.3f index_ms=%.3f client=%s in=%zu "
           "out=%zu%s%s",
           slow ? "slow_request" : "request", c->rid, c->method, path, sx_route_name(rq->route), status,
           dt * 1e3, rq->embed.queue * 1e3, rq->embed.encode * 1e3, rq->search.search * 1e3,
           rq->search.fetch * 1e3, rq->search.merge * 1e3, rq->t_embed * 1e3, rq->t_index * 1e3,
           c->client, c->too_big ? c->discarded : c->body.len, c->res.static_body ? c->res.static_len : c->res.body.len,
           toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1", query);
    sx_buf_free(&c->body);
    sx_buf_free(&c->res.body);
    free(c->path);
    free(c);
    *req_cls = NULL;
    /* The next request on a kept-alive connection: idle time, then headers. */
    if (s->opts.header_timeout_s > 0) set_deadline(s, conn, s->opts.timeout_s + s->opts.header_timeout_s);
}

/* MHD's messages, at most 10 a second: under abuse (thousands of clients
 * leaving mid-request, a connection cap reached) it would write one line per
 * connection. The rest are counted and the count logged. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    sx_http *h = ((sx_srv *)cls)->http;
    long now = (long)sx_now();
    if (atomic_exchange(&h->log_window, now) != now) {
        atomic_store(&h->log_shown, 0);
        long n = atomic_exchange(&h->log_dropped, 0);
        if (n) sx_log(SX_LOG_WARN, "http: %ld more messages like the above were not logged", n);
    }
    if (atomic_fetch_add(&h->log_shown, 1) >= 10) {
        atomic_fetch_add(&h->log_dropped, 1);
        return;
    }
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
    so.observe = sx_metrics_store_observer;
    so.observe_ctx = s->metrics;
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
    if (rc == 0) s->backend->metrics = s->metrics;
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
    sx_log(SX_LOG_INFO, "ready backend=%s papers=%llu shards=%d load_seconds=%.2f rss_mb=%.0f",
           s->backend->ops->name, (unsigned long long)in.count, in.n_shards, sx_now() - t0,
           (double)sx_current_rss() / 1048576.0);
}

/* ---- run ------------------------------------------------------------------------------ */

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

/* Connections the kernel had completed but the daemon had not accepted when
 * it stopped listening would be reset when the socket closes (curl: "failed
 * sending data", seen in the graceful-shutdown test): they are accepted
 * here and handed to the daemon, which answers each 503 like any request
 * that arrives while stopping. */
static void drain_backlog(sx_srv *s, MHD_socket fd) {
    for (int n = 0;; n++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int c = accept(fd, (struct sockaddr *)&sa, &len); /* not accept4: macOS */
        if (c < 0 && errno == EINTR) continue;
        if (c < 0) { /* EAGAIN (the socket is non-blocking): the backlog is empty */
            if (n > 0) sx_log(SX_LOG_INFO, "shutdown: %d connection(s) waiting in the listen backlog will get 503", n);
            return;
        }
        fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
        fcntl(c, F_SETFD, FD_CLOEXEC);
        /* MHD closes the socket itself when it cannot take it */
        (void)MHD_add_connection(s->daemon, c, (struct sockaddr *)&sa, len);
    }
}

static void release(sx_srv *s) {
    http_free(s->http);
    s->http = NULL;
    sx_batcher_free(s->batcher);
    sx_backend_close(s->backend);
    sx_encoder_free(s->encoder);
    sx_lru_free(s->cache);
    sx_ratelimit_free(s->ratelimit);
    sx_metrics_free(s->metrics);
}

/* Opens the listening socket. SO_REUSEADDR lets a restarted server bind
 * over its predecessor's TIME_WAIT connections; SO_REUSEPORT is not set, so
 * a port another process listens on is refused, here, with its reason. */
static int open_listener(const sx_srv *s, int *out, sx_err *err) {
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->opts.port);
    if (inet_pton(AF_INET, s->opts.host, &addr.sin_addr) != 1)
        return sx_err_set(err, SX_EINVAL, "--host must be an IPv4 address, got '%s'", s->opts.host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return sx_err_set(err, SX_EIO, "cannot create a socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return sx_err_set(err, SX_EBUSY, "cannot listen on %s:%d: port %d is in use by another "
                              "process", s->opts.host, s->opts.port, s->opts.port);
        if (e == EADDRNOTAVAIL)
            return sx_err_set(err, SX_EINVAL, "cannot listen on %s:%d: %s is not an address of this "
                              "machine", s->opts.host, s->opts.port, s->opts.host);
        return sx_err_set(err, SX_EIO, "cannot listen on %s:%d: %s", s->opts.host, s->opts.port, strerror(e));
    }
    *out = fd;
    return 0;
}

static struct MHD_Daemon *start_daemon(sx_srv *s, sx_err *err) {
    int fd = -1;
    if (open_listener(s, &fd, err) < 0) return NULL;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    unsigned pool = s->opts.io_threads > 1 ? (unsigned)s->opts.io_threads : 1u;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, pool,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opts.timeout_s,
        /* MHD splits its limit over the I/O threads and stops accepting at
         * it; on_accept keeps the real one. */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->opts.max_connections * pool + 16,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(s->opts.max_conns_per_ip > 0 ? s->opts.max_conns_per_ip : 0),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->opts.max_header_bytes, MHD_OPTION_END);
    if (!d) {
        close(fd);
        sx_err_set(err, SX_EIO, "cannot start the HTTP server on %s:%d (see the log line above)",
                   s->opts.host, s->opts.port);
    }
    return d;
}

/* Start-up warnings about the configuration. */
static void warn_config(const sx_srv *s) {
    const sx_server_opts *o = &s->opts;
    if (!has_api_key(s) && s->http->loopback)
        sx_log(SX_LOG_WARN, "no API key: write routes (POST /papers, DELETE /papers/{id}) are open to "
               "every local process and user of %s:%d; set SEMDEX_API_KEY to require one", o->host, o->port);
    else if (!has_api_key(s))
        sx_log(SX_LOG_WARN, "no API key and listening on %s, not loopback: write routes answer 403; "
               "set SEMDEX_API_KEY (or --api-key) to enable them", o->host);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)o->max_connections + 64)
        sx_log(SX_LOG_WARN, "the open-file limit (%llu) is below --max-connections (%d): connections "
               "past it are refused; raise it (ulimit -n, LimitNOFILE=) or lower --max-connections",
               (unsigned long long)rl.rlim_cur, o->max_connections);
}

int sx_server_start(const sx_server_opts *o, sx_server **out, sx_err *err) {
    *out = NULL;
    sx_srv *s = calloc(1, sizeof *s);
    if (!s) return sx_err_set(err, SX_ENOMEM, "out of memory");
    s->opts = *o;
    s->started = sx_now();
    s->started_wall = sx_wall_time();
    s->rid_tag = (unsigned)((unsigned long long)(s->started_wall * 1e6) ^ ((unsigned)getpid() * 2654435761u));
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
    if (rc == 0) rc = http_create(s, err);
    if (rc == 0 && !(s->daemon = start_daemon(s, err))) rc = err ? err->code : SX_EIO;
    if (rc < 0) {
        release(s);
        pthread_cond_destroy(&s->life_cv);
        pthread_mutex_destroy(&s->life_mu);
        free(s);
        return rc;
    }
    sx_log(SX_LOG_INFO, "listening on http://%s:%d", o->host, o->port);
    warn_config(s);
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
    if (fd != MHD_INVALID_SOCKET) {
        drain_backlog(s, fd);
        close(fd);
    }
    wait_drained(s, 30.0, 1.0);
    /* No connection may stay suspended when the daemon stops: the workers
     * finish what is queued first. A request that completes its body from
     * here on is answered 503 by on_request. */
    stop_reaper(s->http);
    stop_workers(s->http);
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
