/*
 * metrics.h - the server's Prometheus metrics: requests by route and status,
 * latency histograms (total, embedding, index), cache hits, rate-limited
 * requests; gauges (papers, memory) are passed in when rendering.
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
    SX_ROUTE_OTHER,
    SX_ROUTE_COUNT
} sx_route;

/* The route's label, e.g. "/papers/{id}". */
const char *sx_route_name(sx_route r);

typedef struct sx_metrics sx_metrics;

/* Values sampled at render time. */
typedef struct sx_metrics_gauges {
    uint64_t papers;         /* documents stored */
    uint64_t rss_bytes;      /* resident memory of the process */
    uint64_t index_bytes[4]; /* vectors, graph, documents, other */
    int ready;               /* 1 once searches succeed */
    uint64_t cache_entries;  /* query vectors cached */
} sx_metrics_gauges;

/* Returns a zeroed registry, or NULL when out of memory. */
sx_metrics *sx_metrics_create(void);

/* Counts one finished request and its total latency. Lock-free. */
void sx_metrics_request(sx_metrics *m, sx_route route, int status, double seconds);

/* Records one encoder call: its latency and how many queries it embedded. */
void sx_metrics_embed(sx_metrics *m, double seconds, int batch);

/* Records the index (search) time of one request. */
void sx_metrics_index(sx_metrics *m, double seconds);

/* Counts a query-vector cache hit (hit = 1) or miss (0). */
void sx_metrics_cache(sx_metrics *m, int hit);

/* Counts a request refused by the rate limiter. */
void sx_metrics_ratelimited(sx_metrics *m);

/* Appends the Prometheus text exposition (format 0.0.4) to out. */
void sx_metrics_render(sx_metrics *m, const sx_metrics_gauges *g, sx_buf *out);

/* Frees the registry. NULL is a no-op. */
void sx_metrics_free(sx_metrics *m);

#endif
