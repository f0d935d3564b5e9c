/*
 * metrics.c - counters and histograms for Prometheus.
 *
 * Every request updates a few counters, so updates are lock-free: relaxed
 * atomic increments on fixed arrays (route x status for requests, fixed
 * buckets for histograms). Sums are kept in integer nanoseconds so they can
 * be atomic too. Rendering reads the counters without stopping writers; a
 * scrape may see a request counted in one series and not yet in another, which
 * Prometheus tolerates by design.
 */
#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define N_STATUS 600
#define N_BUCKETS 16

/* Latency bucket upper bounds in seconds (plus +Inf). */
static const double k_bounds[N_BUCKETS] = {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015,
                                           0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5};

typedef struct {
    _Atomic uint64_t bucket[N_BUCKETS + 1]; /* last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
} histogram;

struct sx_metrics {
    _Atomic uint64_t requests[SX_ROUTE_COUNT][N_STATUS];
    histogram latency[SX_ROUTE_COUNT];
    histogram embed, index;
    _Atomic uint64_t embed_queries;
    _Atomic uint64_t cache_hits, cache_misses, ratelimited;
};

static const char *k_route_names[SX_ROUTE_COUNT] = {
    "/search", "/papers/{id}", "/papers/{id}/similar", "/papers", "/papers/{id} DELETE",
    "/collections/info", "/health", "/metrics", "/", "/docs", "/openapi.json", "other"};

const char *sx_route_name(sx_route r) {
    return r >= 0 && r < SX_ROUTE_COUNT ? k_route_names[r] : "other";
}

sx_metrics *sx_metrics_create(void) { return calloc(1, sizeof(sx_metrics)); }

void sx_metrics_free(sx_metrics *m) { free(m); }

static void observe(histogram *h, double seconds) {
    if (seconds < 0) seconds = 0;
    int i = 0;
    while (i < N_BUCKETS && seconds > k_bounds[i]) i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

void sx_metrics_request(sx_metrics *m, sx_route route, int status, double seconds) {
    if (route < 0 || route >= SX_ROUTE_COUNT) route = SX_ROUTE_OTHER;
    if (status < 0 || status >= N_STATUS) status = 0;
    atomic_fetch_add_explicit(&m->requests[route][status], 1, memory_order_relaxed);
    observe(&m->latency[route], seconds);
}

void sx_metrics_embed(sx_metrics *m, double seconds, int batch) {
    observe(&m->embed, seconds);
    atomic_fetch_add_explicit(&m->embed_queries, (uint64_t)batch, memory_order_relaxed);
}

void sx_metrics_index(sx_metrics *m, double seconds) { observe(&m->index, seconds); }

void sx_metrics_cache(sx_metrics *m, int hit) {
    atomic_fetch_add_explicit(hit ? &m->cache_hits : &m->cache_misses, 1, memory_order_relaxed);
}

void sx_metrics_ratelimited(sx_metrics *m) {
    atomic_fetch_add_explicit(&m->ratelimited, 1, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }

/* Renders one histogram series; labels is "" or `route="..."`. */
static void render_histogram(sx_buf *out, const char *name, const char *labels, histogram *h) {
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (int i = 0; i <= N_BUCKETS; i++) {
        cum += load(&h->bucket[i]);
        if (i < N_BUCKETS)
            sx_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, k_bounds[i],
                          (unsigned long long)cum);
        else
            sx_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                          (unsigned long long)cum);
    }
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    sx_buf_printf(out, "%s_sum%s%s%s %.9f\n", name, open, labels, close, (double)load(&h->sum_ns) * 1e-9);
    sx_buf_printf(out, "%s_count%s%s%s %llu\n", name, open, labels, close,
                  (unsigned long long)load(&h->count));
}

static void render_counter(sx_buf *out, const char *name, const char *help, uint64_t v) {
    sx_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                  (unsigned long long)v);
}

static void render_gauge(sx_buf *out, const char *name, const char *help, uint64_t v) {
    sx_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
                  (unsigned long long)v);
}

void sx_metrics_render(sx_metrics *m, const sx_metrics_gauges *g, sx_buf *out) {
    sx_buf_printf(out, "# HELP semdex_build_info Build of the running server.\n"
                       "# TYPE semdex_build_info gauge\nsemdex_build_info{version=\"%s\"} 1\n",
                  SX_VERSION);
    sx_buf_printf(out, "# HELP semdex_requests_total HTTP requests by route and status.\n"
                       "# TYPE semdex_requests_total counter\n");
    for (int r = 0; r < SX_ROUTE_COUNT; r++)
        for (int s = 0; s < N_STATUS; s++) {
            uint64_t v = load(&m->requests[r][s]);
            if (v)
                sx_buf_printf(out, "semdex_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                              k_route_names[r], s, (unsigned long long)v);
        }
    sx_buf_printf(out, "# HELP semdex_request_duration_seconds Time from request to response.\n"
                       "# TYPE semdex_request_duration_seconds histogram\n");
    for (int r = 0; r < SX_ROUTE_COUNT; r++) {
        if (!load(&m->latency[r].count)) continue;
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", k_route_names[r]);
        render_histogram(out, "semdex_request_duration_seconds", labels, &m->latency[r]);
    }
    sx_buf_printf(out, "# HELP semdex_embedding_duration_seconds Time of one encoder call "
                       "(a micro-batch of queries).\n"
                       "# TYPE semdex_embedding_duration_seconds histogram\n");
    render_histogram(out, "semdex_embedding_duration_seconds", "", &m->embed);
    render_counter(out, "semdex_embedded_queries_total", "Queries embedded by the encoder.",
                   load(&m->embed_queries));
    sx_buf_printf(out, "# HELP semdex_index_duration_seconds Index search time of one request.\n"
                       "# TYPE semdex_index_duration_seconds histogram\n");
    render_histogram(out, "semdex_index_duration_seconds", "", &m->index);
    render_counter(out, "semdex_query_cache_hits_total", "Query vectors served from the cache.",
                   load(&m->cache_hits));
    render_counter(out, "semdex_query_cache_misses_total", "Query vectors that had to be embedded.",
                   load(&m->cache_misses));
    render_counter(out, "semdex_rate_limited_total", "Requests refused by the rate limiter.",
                   load(&m->ratelimited));
    render_gauge(out, "semdex_query_cache_entries", "Query vectors in the cache.", g->cache_entries);
    render_gauge(out, "semdex_papers", "Papers stored.", g->papers);
    render_gauge(out, "semdex_ready", "1 when the server answers searches.", (uint64_t)g->ready);
    render_gauge(out, "semdex_resident_memory_bytes", "Resident memory of the process.", g->rss_bytes);
    static const char *parts[4] = {"vectors", "graph", "documents", "other"};
    sx_buf_printf(out, "# HELP semdex_index_memory_bytes Memory of the stored collection by part.\n"
                       "# TYPE semdex_index_memory_bytes gauge\n");
    for (int i = 0; i < 4; i++)
        sx_buf_printf(out, "semdex_index_memory_bytes{part=\"%s\"} %llu\n", parts[i],
                      (unsigned long long)g->index_bytes[i]);
}
