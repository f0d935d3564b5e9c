/*
 * server.h - the semdex search service: REST API, web page, metrics.
 *
 *     sx_server_opts o = sx_server_defaults();
 *     o.port = 8000;
 *     o.data_dir = "data/db";
 *     o.model_dir = "models/all-MiniLM-L6-v2";
 *     sx_server *srv;
 *     if (sx_server_start(&o, &srv, &err) < 0) ...
 *     ... another thread (the CLI's signal thread) calls sx_server_stop(srv)
 *     int rc = sx_server_wait(srv, &err);
 *     sx_server_free(srv);
 *
 * The server installs no signal handlers: the program that embeds it owns
 * the process (the CLI turns SIGTERM/SIGINT into sx_server_stop and ignores
 * SIGPIPE).
 *
 * The server loads the model and opens the collection first and listens
 * last, so a start that cannot serve fails before it takes the port.
 * Routes, limits and errors are documented in docs/api.md and served as
 * OpenAPI 3 at GET /openapi.json.
 */
#ifndef SX_SERVER_H
#define SX_SERVER_H

#include <stddef.h>

#include "../common/sx.h"

/* Limits of the search API (documented in docs/api.md and openapi.json;
 * `semdex search` keeps the same). */
#define SX_QUERY_MAX_CHARS 2000
#define SX_TOP_K_MAX 100
#define SX_OFFSET_MAX 1000
#define SX_EF_MAX 4096
#include "../cluster/gateway.h"
#include "../storage/store.h"

typedef struct sx_server_opts {
    const char *host;          /* address to bind ("127.0.0.1"; "0.0.0.0" for all) */
    int port;                  /* TCP port (8000) */
    const char *data_dir;      /* collection directory (snapshots + log) */
    const char *cluster;       /* when set: serve the Redis Cluster reached through
                                  these seeds "host:port,..." instead of data_dir */
    sx_gateway_opts gateway;   /* cluster mode: shard keys, WAIT, timeouts */
    const char *model_dir;     /* encoder model folder */
    sx_store_opts store;       /* shards and index parameters for a new collection */
    int threads;               /* encoder threads (0 = all cores) */
    int int8;                  /* 1: int8 encoder */
    int embed_batch;           /* most queries embedded in one encoder call (64) */
    int embed_workers;         /* encoder calls running at once (1) */
    size_t cache_entries;      /* query-vector cache size; 0 disables it (10000) */
    size_t max_body;           /* largest request body in bytes (32 MiB) */
    int timeout_s;             /* idle connection timeout in seconds (30) */
    int max_connections;       /* open connections, all clients (16384) */
    int max_conns_per_ip;      /* open connections per client address; 0 = no cap (256) */
    size_t max_header_bytes;   /* memory per connection for the request line and
                                  headers (32 KiB); larger requests get 431 */
    int header_timeout_s;      /* seconds for a request's line and headers to arrive (10) */
    int body_timeout_s;        /* seconds for a request's body to arrive (60) */
    int io_threads;            /* threads running the connections' event loops (2) */
    int workers;               /* threads running handlers; requests beyond wait (64) */
    double rate_limit;         /* requests/s per client; 0 disables (0) */
    const char *trusted_proxies; /* comma-separated addresses of proxies (HAProxy)
                                  whose last X-Forwarded-For address is the
                                  client, for rate limits, failed-key limits
                                  and logs; NULL: the peer is the client */
    double rate_burst;         /* bucket size (2 x rate, at least 1) */
    const char *api_key;       /* required by write routes when set; when not set,
                                  writes are open on a loopback address and
                                  refused (403) on any other */
    double auth_fail_rate;     /* failed API-key attempts per second per client,
                                  bucket of 10; 0 disables (1) */
    const char *cors_origin;   /* the one origin (or "*") allowed cross-origin
                                  requests; NULL: no CORS headers (NULL) */
    const char *allowed_hosts; /* bound to loopback: Host names accepted besides
                                  localhost, 127.0.0.1 and [::1], comma-separated;
                                  "*": any (a proxy in front checks Host) */
    int slow_ms;               /* requests slower than this are logged at warn
                                  level as slow_request; 0 disables (500) */
} sx_server_opts;

/* The defaults listed above. */
sx_server_opts sx_server_defaults(void);

typedef struct sx_server sx_server;

/* Loads the model, opens the backend, then listens. Returns a negative code
 * (message in err) when any of them fails: nothing is then listening.
 * *out (OUT) is freed by sx_server_free. */
int sx_server_start(const sx_server_opts *o, sx_server **out, sx_err *err);

/* Asks a started server to shut down (thread-safe; not async-signal-safe:
 * call it from a thread, not a signal handler). */
void sx_server_stop(sx_server *s);

/* Waits until sx_server_stop is called or loading fails, then stops
 * accepting, lets in-flight requests finish, flushes the backend (the local
 * store checkpoints) and releases what it holds. Returns 0, or the loading
 * error. sx_server_stop may still be called until sx_server_free. */
int sx_server_wait(sx_server *s, sx_err *err);

/* Frees a server sx_server_wait returned from. NULL is a no-op. */
void sx_server_free(sx_server *s);

#endif
