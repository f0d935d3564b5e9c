/*
 * metrics.h - the server's Prometheus metrics. Every series is listed, with
 * its labels and what it is for, in docs/metrics.md; that page and
 * sx_metrics_render are the one place series are named.
 *
 *     sx_metrics *m = sx_metrics_create();
 *     sx_metrics_request(m, SX_ROUTE_SEARCH, 200, 0.012);    // request threads
 *     sx_metrics_stage(m, SX_STAGE_SEARCH, 0.004);           // any thread
 *     sx_metrics_gauges g = {.papers = 510000, ...};         // sampled by /metrics
 *     sx_metrics_render(m, &g, &out);
 *     sx_metrics_free(m);
 *
 * Every update is lock-free except the first sighting of a cluster node
 * (sx_metrics_node), and every function is thread-safe.
 */
#ifndef SX_METRICS_H
#define SX_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"

/* The routes, as labelled in metrics and logs. */
typedef enum {
    SX_ROUTE_SEARCH,
    SX_ROUTE_PAPER_GET,
    SX_ROUTE_PAPER_SIMILAR,
    SX_ROUTE_PAPERS_UPSERT,
    SX_ROUTE_PAPER_DELETE,
    SX_ROUTE_INFO,
    SX_ROUTE_HEALTH,
    SX_ROUTE_METRICS,
    SX_ROUTE_PAGE,
    SX_ROUTE_DOCS,
    SX_ROUTE_OPENAPI,
    SX_ROUTE_ASSET,
    SX_ROUTE_OTHER,
    SX_ROUTE_COUNT
} sx_route;

/* The route's label, e.g. "/papers/{id}". */
const char *sx_route_name(sx_route r);

/* The stages of a search, as labelled in semdex_stage_duration_seconds and
 * in the request log. */
typedef enum {
    SX_STAGE_QUEUE,  /* waiting in the micro-batcher for an encoder */
    SX_STAGE_ENCODE, /* tokenise + encode: the encoder call of the query's batch */
    SX_STAGE_SEARCH, /* index search over every shard (cluster: the fan-out) */
    SX_STAGE_FETCH,  /* fetching (cluster: decoding) the hits' documents */
    SX_STAGE_MERGE,  /* merging the shards' hits (cluster mode) */
    SX_STAGE_COUNT
} sx_stage;

/* The stage's label, e.g. "queue". */
const char *sx_stage_name(sx_stage st);

typedef struct sx_metrics sx_metrics;

/* Values sampled at render time. Fields a backend does not know stay 0. */
typedef struct sx_metrics_gauges {
    uint64_t papers;         /* documents stored */
    uint64_t deleted;        /* deleted, space not yet reclaimed */
    uint64_t rss_bytes;      /* resident memory of the process */
    uint64_t index_bytes[4]; /* vectors, graph, documents, other */
    uint64_t mapped_bytes;   /* used in place from snapshot files */
    int ready;               /* 1 once searches succeed */
    uint64_t cache_entries;  /* query vectors cached */
    long inflight;           /* requests being handled */
    long connections;        /* connections open */
    double start_time;       /* process start, Unix seconds */
    const char *backend;     /* "local", "cluster" or NULL (not loaded) */
    /* local */
    uint64_t wal_bytes, generation;
    /* cluster */
    int nodes, masters, nodes_down, shard_keys, shard_keys_unavailable;
} sx_metrics_gauges;

/* Returns a zeroed registry, or NULL when out of memory. */
sx_metrics *sx_metrics_create(void);

/* Counts one finished request and its total latency. */
void sx_metrics_request(sx_metrics *m, sx_route route, int status, double seconds);

/* Records one encoder call of the query micro-batcher: its latency and how
 * many queries it embedded (the batch size). */
void sx_metrics_embed(sx_metrics *m, double seconds, int batch);

/* Records the backend search time of one request (all of search, fetch
 * and merge: semdex_index_duration_seconds). */
void sx_metrics_index(sx_metrics *m, double seconds);

/* Records one stage of one request. */
void sx_metrics_stage(sx_metrics *m, sx_stage st, double seconds);

/* Records how long cluster node "host:port" took to answer its part of one
 * fan-out. The first 64 nodes seen get a series; later ones count as
 * "other". */
void sx_metrics_node(sx_metrics *m, const char *node, double seconds);

/* Counts a query-vector cache hit (hit = 1) or miss (0). */
void sx_metrics_cache(sx_metrics *m, int hit);

/* Counts a request refused by the rate limiter. */
void sx_metrics_ratelimited(sx_metrics *m);

/* Records one write to the backend: papers upserted, papers deleted, its
 * latency and whether it succeeded (failed writes count no papers). */
void sx_metrics_write(sx_metrics *m, int upserted, int deleted, double seconds, int ok);

/* Records a write's wait for its log record to be on disk (local store). */
void sx_metrics_wal_sync(sx_metrics *m, double seconds);

/* Records a checkpoint (local store): ok or failed, and its duration. */
void sx_metrics_checkpoint(sx_metrics *m, int ok, double seconds);

/* An observer for the local store's events (sx_store_opts.observe, with
 * observe_ctx the registry): log syncs and checkpoints. */
void sx_metrics_store_observer(void *metrics, int event, double seconds);

/* Appends the Prometheus text exposition (format 0.0.4) to out. */
void sx_metrics_render(sx_metrics *m, const sx_metrics_gauges *g, sx_buf *out);

/* Frees the registry. NULL is a no-op. */
void sx_metrics_free(sx_metrics *m);

#endif
