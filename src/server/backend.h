/*
 * backend.h - where the server's papers live: the one interface between the
 * REST API and the data, with two implementations, a local store in this
 * process (backend_local.c) and shards inside a Redis Cluster
 * (src/cluster/gateway.c). Like SQLite's VFS or ggml's backends, it is a
 * table of functions, so routes never know which one they talk to, and a
 * test can hand them a backend of its own.
 *
 *     sx_backend *b;
 *     if (sx_backend_open_local("data/db", &store_opts, &b, &err) < 0) ...
 *     sx_search_opts o = {.k = 10, .with_docs = 1};
 *     sx_hit hits[10]; int n;
 *     sx_backend_search(b, query_vector, &o, hits, &n, &err);
 *     ... hits[i].doc ...
 *     sx_hits_release(hits, n);
 *     sx_backend_close(b);
 *
 * Every function is thread-safe (request threads call them at once).
 */
#ifndef SX_BACKEND_H
#define SX_BACKEND_H

#include <stdint.h>

#include "../common/sx.h"
#include "../shard/shard.h"
#include "../storage/store.h"
#include "metrics.h"

/* What a backend holds. Fields a backend does not know stay 0. */
typedef struct sx_backend_info {
    const char *kind;         /* "local" or "cluster" */
    uint64_t count;           /* papers */
    uint64_t deleted;         /* deleted, space not yet reclaimed */
    int n_shards;
    int max_level;            /* highest graph level over the shards */
    sx_shard_params params;   /* index parameters (of the first shard) */
    uint64_t bytes_vectors, bytes_graph, bytes_documents, bytes_other; /* memory by part */
    uint64_t bytes_mapped;    /* local: used in place from snapshot files */
    /* local only */
    uint64_t generation, wal_bytes;
    double open_seconds;
    /* cluster only */
    int nodes, masters, nodes_down;
    int shard_keys_unavailable; /* keys that did not answer SEMDEX.INFO */
} sx_backend_info;

/* Most cluster nodes whose fan-out time one search reports. */
#define SX_BACKEND_MAX_NODES 32

/* Where one search spent its time (OUT of search): the stages of
 * semdex_stage_duration_seconds, and in cluster mode each node's part of
 * the fan-out. A backend leaves at 0 what it does not have. */
typedef struct sx_backend_stats {
    double search;  /* index search over every shard (cluster: the fan-out) */
    double fetch;   /* fetching (cluster: decoding) the hits' documents */
    double merge;   /* merging the shards' hits (cluster) */
    int n_nodes;
    struct {
        char addr[64];  /* "host:port" */
        double seconds; /* from sending its commands to its last reply */
    } nodes[SX_BACKEND_MAX_NODES];
} sx_backend_stats;

typedef struct sx_backend_ops {
    const char *name;
    /* Up to o->k hits best first, merged over every shard; documents when
     * o->with_docs. The caller releases them with sx_hits_release. stats
     * (OUT, never NULL) says where the time went. */
    int (*search)(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits, int *n_hits,
                  sx_backend_stats *stats, sx_err *err);
    /* One paper: *doc (may be NULL: not wanted) a malloc'd copy, vec (may be
     * NULL) its dim floats. SX_ENOTFOUND when absent. */
    int (*get)(void *impl, const char *id, sx_doc **doc, float *vec, sx_err *err);
    /* Inserts or replaces n papers (vectors L2-normalised), all or nothing
     * where the backend can promise it, durable (or replicated) on return. */
    int (*upsert)(void *impl, int n, const sx_doc *docs, const float *vecs, sx_err *err);
    /* Deletes a paper: 0 or SX_ENOTFOUND. */
    int (*del)(void *impl, const char *id, sx_err *err);
    /* What it holds (OUT). recent: 1 when figures up to a second old will
     * do (health checks, metrics), 0 for exact ones. On an error, *out still
     * holds what could be learnt (metrics report it). */
    int (*info)(void *impl, sx_backend_info *out, int recent, sx_err *err);
    /* Makes the next start fast (local: a checkpoint); NULL when not needed. */
    int (*flush)(void *impl, sx_err *err);
    /* Frees impl. */
    void (*close)(void *impl);
} sx_backend_ops;

typedef struct sx_backend {
    const sx_backend_ops *ops;
    void *impl;
    int dim;             /* vector dimension */
    sx_metrics *metrics; /* when set, the thin calls below record searches
                            (stages, nodes) and writes in it */
} sx_backend;

/* Wraps ops and impl in a backend (malloc'd; NULL when out of memory, then
 * impl is not freed). */
sx_backend *sx_backend_create(const sx_backend_ops *ops, void *impl, int dim);

/* The local store in dir (see sx_store_open). */
int sx_backend_open_local(const char *dir, const sx_store_opts *o, sx_backend **out, sx_err *err);

/* Thin calls through the table. Searches and writes are recorded in
 * b->metrics when set; stats (OUT) may be NULL. */
int sx_backend_search(sx_backend *b, const float *q, const sx_search_opts *o, sx_hit *hits,
                      int *n_hits, sx_backend_stats *stats, sx_err *err);
int sx_backend_get(sx_backend *b, const char *id, sx_doc **doc, float *vec, sx_err *err);
int sx_backend_upsert(sx_backend *b, int n, const sx_doc *docs, const float *vecs, sx_err *err);
int sx_backend_delete(sx_backend *b, const char *id, sx_err *err);
int sx_backend_get_info(sx_backend *b, sx_backend_info *out, int recent, sx_err *err);
/* 0 when the backend has nothing to flush. */
int sx_backend_flush(sx_backend *b, sx_err *err);
/* Closes and frees; NULL is a no-op. */
void sx_backend_close(sx_backend *b);

#endif
