/*
 * server_int.h - what the server's files share: the server state, a request
 * and a response, the micro-batcher. Not part of the public API.
 */
#ifndef SX_SERVER_INT_H
#define SX_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "../model/model.h"
#include "backend.h"
#include "lru.h"
#include "metrics.h"
#include "ratelimit.h"
#include "server.h"

#define SX_BATCH_MAX_PAPERS 1000

/* ---- micro-batcher -------------------------------------------------------- */

typedef struct sx_batcher sx_batcher;

/* Starts `workers` threads that embed queued queries in batches of up to
 * max_batch with enc. Returns 0 or a negative code. */
int sx_batcher_create(sx_encoder *enc, int max_batch, int workers, sx_metrics *metrics,
                      sx_batcher **out, sx_err *err);

/* What to do with a vector once embedded: called on an encoder thread with
 * the then_ctx given to sx_batcher_embed and the vector (see batcher.c). */
typedef void (*sx_batcher_then)(void *ctx, const float *vec);

/* Where one text's embedding spent its time (seconds). */
typedef struct sx_embed_times {
    double queue;  /* waiting for an encoder */
    double encode; /* the encoder call of its batch */
} sx_embed_times;

/* Embeds one text (blocking): queued with concurrent callers' texts and
 * embedded together. Writes dim floats to out and, when then is not NULL,
 * calls then(then_ctx, out) before returning. times (OUT, may be NULL) says
 * where the time went. Returns 0 or the encoder's error for this text (then
 * is not called). */
int sx_batcher_embed(sx_batcher *b, const char *text, size_t len, float *out,
                     sx_batcher_then then, void *then_ctx, sx_embed_times *times, sx_err *err);

/* Stops the workers (queued requests are still served) and frees. */
void sx_batcher_free(sx_batcher *b);

/* ---- server state ---------------------------------------------------------- */

struct sx_server {
    sx_server_opts opts;
    struct MHD_Daemon *daemon;
    sx_metrics *metrics;
    sx_ratelimit *ratelimit;
    sx_lru *cache;

    /* Set by load() before the server listens; read by requests. */
    sx_encoder *encoder;
    sx_batcher *batcher;
    sx_backend *backend;
    int dim;
    _Atomic int failed;  /* loading failed: the server is shutting down */
    _Atomic int stopping; /* shutting down: new requests are refused */
    sx_err load_err;

    struct sx_http *http;        /* http.c's own state: workers, connection deadlines */
    _Atomic long inflight;       /* requests queued for or running on a worker */
    _Atomic long conns;          /* connections open */
    _Atomic unsigned long long next_request_id;
    double started;      /* sx_now() at start */
    double started_wall; /* Unix time at start */
    unsigned rid_tag;    /* starts generated request ids */

    /* Life cycle: what wakes sx_server_wait. */
    pthread_mutex_t life_mu;
    pthread_cond_t life_cv;
    int wake; /* under life_mu */
};
typedef struct sx_server sx_srv;

/* A response under construction. */
typedef struct sx_response {
    int status;
    sx_buf body;
    const char *content_type;   /* default application/json */
    const char *cache_control;  /* NULL: no header */
    char allow[64];             /* Allow header for 405 */
    int retry_after;            /* seconds, for 429/503; 0 = no header */
    int close;                  /* ask the client to close the connection */
    const void *static_body;    /* a body that outlives the response */
    size_t static_len;
} sx_response;

/* A request as the handlers see it. */
typedef struct sx_request {
    const char *method;
    const char *path;       /* decoded path, without the query string */
    const char *client;     /* client address */
    const char *body;       /* NUL-terminated */
    size_t body_len;
    struct MHD_Connection *conn;
    sx_route route;
    const char *paper_id;   /* for /papers/{id} routes; the name for /assets/{name} */
    double t_embed, t_index; /* seconds spent, for the log line */
    sx_embed_times embed;    /* the query's queue wait and encoder call */
    sx_backend_stats search; /* the backend search's stages */
    char query[201];         /* search: the query's start, for the slow-request log */
} sx_request;

/* Sets an error response {"error": {"code", "message"}}. */
void sx_respond_error(sx_response *res, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Resolves method + path to a route (OUT paper_id points into a scratch
 * buffer of the request). Returns 0, or 404 / 405 with res filled. */
int sx_route_request(sx_srv *s, sx_request *rq, char *id_buf, size_t id_cap, sx_response *res);

/* A number web/openapi.json states and the code enforces: the value at the
 * JSON pointer must equal value (tests/test-routes.c checks every one). */
typedef struct {
    const char *pointer;
    double value;
} sx_schema_fact;

/* The limits the routes enforce, NULL-terminated (routes.c). */
extern const sx_schema_fact sx_schema_facts[];

/* The fields of an upsert request (NULL-terminated); a search's are in
 * query.h. */
extern const char *const sx_upsert_fields[];

/* Runs the handler of rq->route. */
void sx_handle(sx_srv *s, sx_request *rq, sx_response *res);

/* Whether a route changes data (needs the API key when one is set). */
int sx_route_is_write(sx_route r);

/* Whether a route needs the model and collection loaded. */

/* http.c's request policy, for its tests. Whether a Content-Type names JSON
 * (application/json, optionally ; charset=utf-8). */
int sx_http_is_json(const char *content_type);

/* Whether a Host header (name, optional :port) is localhost, 127.0.0.1,
 * [::1], the bound address or one of the comma-separated allowed names
 * ("*" among them: any host). */
int sx_http_host_ok(const char *host, const char *bound, const char *allowed);

/* The embedded web page, docs page and OpenAPI document (web/, compiled in). */
extern const char sx_asset_index_html[];
extern const size_t sx_asset_index_html_len;
extern const char sx_asset_docs_html[];
extern const size_t sx_asset_docs_html_len;
extern const char sx_asset_openapi_json[];
extern const size_t sx_asset_openapi_json_len;
/* The page's static files (KaTeX), served as /assets/{name}; the table ends
 * with a NULL name (scripts/bin2c.c). */
typedef struct {
    const char *name;
    const char *data;
    size_t len;
} sx_asset_file;
extern const sx_asset_file sx_asset_files[];
extern const size_t sx_asset_files_count;

#endif
