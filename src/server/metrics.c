/*
 * metrics.c - counters and histograms for Prometheus.
 *
 * Every request updates a few counters, so updates are lock-free: relaxed
 * atomic increments on fixed arrays (route x status for requests, fixed
 * buckets for histograms). Sums are kept in integer nanoseconds so they can
 * be atomic too. Rendering reads the counters without stopping writers; a
 * scrape may see a request counted in one series and not yet in another, which
 * Prometheus tolerates by design.
 *
 * Bucket sets. Request and stage latencies share one set (0.5 ms to 2.5 s:
 * a search is a few ms, a slow one hundreds); checkpoints take seconds to
 * minutes and have their own; batch sizes count queries, in powers of two.
 * One set per kind keeps histogram_quantile comparable across stages.
 *
 * Cluster nodes are labels that appear at run time. They get slots in a
 * fixed table (64, more than the reference topology's 12), claimed under a
 * mutex the first time a node is seen and read without it afterwards: a
 * slot's name is written before the count that publishes it.
 *
 * Gauges (papers, memory, log size) are not kept here: the caller samples
 * them when /metrics is asked (sx_metrics_gauges), from figures that never
 * wait behind a write or a checkpoint.
 *
 * Rejected: a general registry of named series (a hash of names, dynamic
 * label sets). The catalogue is fixed and documented in docs/metrics.md; a
 * fixed struct makes every update a single atomic add.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../storage/store.h"

#define N_STATUS 600
#define MAX_BUCKETS 20
#define MAX_NODES 64

/* Latency bucket upper bounds in seconds (plus +Inf). */
static const double k_latency[] = {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015,
                                   0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5};
/* Checkpoints: seconds to minutes. */
static const double k_slow[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
/* Batch sizes (queries per encoder call). */
static const double k_batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    const double *bounds;
    int n; /* bounds; bucket[n] is +Inf */
    _Atomic uint64_t bucket[MAX_BUCKETS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns; /* sum x 1e9 (for batch sizes: the plain sum x 1e9) */
} histogram;

typedef struct {
    char name[64];
    histogram h;
} node_series;

struct sx_metrics {
    _Atomic uint64_t requests[SX_ROUTE_COUNT][N_STATUS];
    histogram latency[SX_ROUTE_COUNT];
    histogram stage[SX_STAGE_COUNT];
    histogram embed, batch, index, write, wal_sync, checkpoint;
    _Atomic uint64_t embed_queries;
    _Atomic uint64_t cache_hits, cache_misses, ratelimited;
    _Atomic uint64_t upserted, deleted, writes_failed;
    _Atomic uint64_t checkpoints_ok, checkpoints_failed;
    _Atomic uint64_t last_checkpoint_ms; /* Unix time of the last good one, ms; 0 none */
    pthread_mutex_t nodes_mu;            /* claims node slots */
    _Atomic int n_nodes;
    node_series nodes[MAX_NODES + 1];    /* the last is "other" */
};

static const char *k_route_names[SX_ROUTE_COUNT] = {
    "/search", "/papers/{id}", "/papers/{id}/similar", "/papers", "/papers/{id} DELETE",
    "/collections/info", "/health", "/metrics", "/", "/docs", "/openapi.json", "/assets/{name}", "other"};

static const char *k_stage_names[SX_STAGE_COUNT] = {"queue", "encode", "search", "fetch", "merge"};

const char *sx_route_name(sx_route r) {
    return r >= 0 && r < SX_ROUTE_COUNT ? k_route_names[r] : "other";
}

const char *sx_stage_name(sx_stage st) {
    return st >= 0 && st < SX_STAGE_COUNT ? k_stage_names[st] : "other";
}

static void hist_init(histogram *h, const double *bounds, int n) {
    h->bounds = bounds;
    h->n = n;
}

sx_metrics *sx_metrics_create(void) {
    sx_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    for (int r = 0; r < SX_ROUTE_COUNT; r++) hist_init(&m->latency[r], k_latency, N_OF(k_latency));
    for (int s = 0; s < SX_STAGE_COUNT; s++) hist_init(&m->stage[s], k_latency, N_OF(k_latency));
    for (int i = 0; i <= MAX_NODES; i++) hist_init(&m->nodes[i].h, k_latency, N_OF(k_latency));
    snprintf(m->nodes[MAX_NODES].name, sizeof m->nodes[MAX_NODES].name, "other");
    hist_init(&m->embed, k_latency, N_OF(k_latency));
    hist_init(&m->index, k_latency, N_OF(k_latency));
    hist_init(&m->write, k_latency, N_OF(k_latency));
    hist_init(&m->wal_sync, k_latency, N_OF(k_latency));
    hist_init(&m->checkpoint, k_slow, N_OF(k_slow));
    hist_init(&m->batch, k_batch, N_OF(k_batch));
    pthread_mutex_init(&m->nodes_mu, NULL);
    return m;
}

void sx_metrics_free(sx_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->nodes_mu);
    free(m);
}

static void add(_Atomic uint64_t *v, uint64_t n) { atomic_fetch_add_explicit(v, n, memory_order_relaxed); }

static uint64_t load(_Atomic uint64_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }

static void observe(histogram *h, double x) {
    if (!(x >= 0)) x = 0; /* negative or NaN */
    int i = 0;
    while (i < h->n && x > h->bounds[i]) i++;
    add(&h->bucket[i], 1);
    add(&h->count, 1);
    add(&h->sum_ns, (uint64_t)(x * 1e9));
}

void sx_metrics_request(sx_metrics *m, sx_route route, int status, double seconds) {
    if (route < 0 || route >= SX_ROUTE_COUNT) route = SX_ROUTE_OTHER;
    if (status < 0 || status >= N_STATUS) status = 0;
    add(&m->requests[route][status], 1);
    observe(&m->latency[route], seconds);
}

void sx_metrics_embed(sx_metrics *m, double seconds, int batch) {
    observe(&m->embed, seconds);
    observe(&m->batch, (double)batch);
    add(&m->embed_queries, (uint64_t)batch);
}

void sx_metrics_index(sx_metrics *m, double seconds) { observe(&m->index, seconds); }

void sx_metrics_stage(sx_metrics *m, sx_stage st, double seconds) {
    if (st >= 0 && st < SX_STAGE_COUNT) observe(&m->stage[st], seconds);
}

/* The slot of node, claimed when new; the "other" slot when the table is full. */
static node_series *node_slot(sx_metrics *m, const char *node) {
    int n = atomic_load_explicit(&m->n_nodes, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(m->nodes[i].name, node) == 0) return &m->nodes[i];
    pthread_mutex_lock(&m->nodes_mu);
    n = atomic_load_explicit(&m->n_nodes, memory_order_relaxed);
    node_series *slot = &m->nodes[MAX_NODES];
    for (int i = 0; i < n; i++)
        if (strcmp(m->nodes[i].name, node) == 0) slot = &m->nodes[i];
    if (slot == &m->nodes[MAX_NODES] && n < MAX_NODES) {
        snprintf(m->nodes[n].name, sizeof m->nodes[n].name, "%s", node);
        slot = &m->nodes[n];
        atomic_store_explicit(&m->n_nodes, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->nodes_mu);
    return slot;
}

void sx_metrics_node(sx_metrics *m, const char *node, double seconds) {
    if (!node || !*node) return;
    observe(&node_slot(m, node)->h, seconds);
}

void sx_metrics_cache(sx_metrics *m, int hit) { add(hit ? &m->cache_hits : &m->cache_misses, 1); }

void sx_metrics_ratelimited(sx_metrics *m) { add(&m->ratelimited, 1); }

void sx_metrics_write(sx_metrics *m, int upserted, int deleted, double seconds, int ok) {
    observe(&m->write, seconds);
    if (!ok) {
        add(&m->writes_failed, 1);
        return;
    }
    add(&m->upserted, (uint64_t)(upserted > 0 ? upserted : 0));
    add(&m->deleted, (uint64_t)(deleted > 0 ? deleted : 0));
}

void sx_metrics_wal_sync(sx_metrics *m, double seconds) { observe(&m->wal_sync, seconds); }

void sx_metrics_checkpoint(sx_metrics *m, int ok, double seconds) {
    if (!ok) {
        add(&m->checkpoints_failed, 1);
        return;
    }
    observe(&m->checkpoint, seconds);
    add(&m->checkpoints_ok, 1);
    atomic_store_explicit(&m->last_checkpoint_ms, (uint64_t)(sx_wall_time() * 1e3), memory_order_relaxed);
}

void sx_metrics_store_observer(void *metrics, int event, double seconds) {
    sx_metrics *m = metrics;
    if (!m) return;
    if (event == SX_STORE_EVENT_SYNC) sx_metrics_wal_sync(m, seconds);
    else if (event == SX_STORE_EVENT_CHECKPOINT) sx_metrics_checkpoint(m, 1, seconds);
    else if (event == SX_STORE_EVENT_CHECKPOINT_FAILED) sx_metrics_checkpoint(m, 0, seconds);
}

/* ---- rendering ---- */

static void header(sx_buf *out, const char *name, const char *type, const char *help) {
    sx_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Renders one histogram series; labels is "" or `route="..."`. scale 1e-9
 * turns the nanosecond sum into seconds (1e-9 too for counts: see sum_ns). */
static void render_histogram(sx_buf *out, const char *name, const char *labels, histogram *h) {
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (int i = 0; i <= h->n; i++) {
        cum += load(&h->bucket[i]);
        if (i < h->n)
            sx_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
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

static void histogram_series(sx_buf *out, const char *name, const char *help, histogram *h) {
    header(out, name, "histogram", help);
    render_histogram(out, name, "", h);
}

static void counter(sx_buf *out, const char *name, const char *help, uint64_t v) {
    header(out, name, "counter", help);
    sx_buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(sx_buf *out, const char *name, const char *help, double v) {
    header(out, name, "gauge", help);
    sx_buf_printf(out, "%s %.17g\n", name, v);
}

/* Writes s as a label value (backslash, quote and newline escaped). */
static void label_value(char *dst, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') dst[o++] = '\\', dst[o++] = *s;
        else if (*s == '\n') dst[o++] = '\\', dst[o++] = 'n';
        else dst[o++] = *s;
    }
    dst[o] = '\0';
}

static void render_requests(sx_metrics *m, sx_buf *out) {
    header(out, "semdex_requests_total", "counter", "HTTP requests by route and status.");
    for (int r = 0; r < SX_ROUTE_COUNT; r++)
        for (int s = 0; s < N_STATUS; s++) {
            uint64_t v = load(&m->requests[r][s]);
            if (v)
                sx_buf_printf(out, "semdex_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                              k_route_names[r], s, (unsigned long long)v);
        }
    header(out, "semdex_request_duration_seconds", "histogram", "Time from request to response.");
    for (int r = 0; r < SX_ROUTE_COUNT; r++) {
        if (!load(&m->latency[r].count)) continue;
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", k_route_names[r]);
        render_histogram(out, "semdex_request_duration_seconds", labels, &m->latency[r]);
    }
    header(out, "semdex_stage_duration_seconds", "histogram",
           "Time one request spent in each stage of a search.");
    for (int s = 0; s < SX_STAGE_COUNT; s++) {
        char labels[32];
        snprintf(labels, sizeof labels, "stage=\"%s\"", k_stage_names[s]);
        render_histogram(out, "semdex_stage_duration_seconds", labels, &m->stage[s]);
    }
    int n = atomic_load_explicit(&m->n_nodes, memory_order_acquire);
    if (n > 0) {
        header(out, "semdex_fanout_node_duration_seconds", "histogram",
               "Time a cluster node took to answer its part of a search fan-out.");
        for (int i = 0; i <= MAX_NODES; i++) {
            if (i >= n && i < MAX_NODES) continue;
            if (i == MAX_NODES && !load(&m->nodes[i].h.count)) continue;
            char v[140], labels[160];
            label_value(v, sizeof v, m->nodes[i].name);
            snprintf(labels, sizeof labels, "node=\"%s\"", v);
            render_histogram(out, "semdex_fanout_node_duration_seconds", labels, &m->nodes[i].h);
        }
    }
}

static void render_counters(sx_metrics *m, sx_buf *out) {
    histogram_series(out, "semdex_embedding_duration_seconds",
                     "Time of one encoder call (a micro-batch of queries).", &m->embed);
    histogram_series(out, "semdex_embedding_batch_size", "Queries embedded by one encoder call.", &m->batch);
    counter(out, "semdex_embedded_queries_total", "Queries embedded by the encoder.", load(&m->embed_queries));
    histogram_series(out, "semdex_index_duration_seconds",
                     "Backend search time of one request (search, fetch and merge).", &m->index);
    counter(out, "semdex_query_cache_hits_total", "Query vectors served from the cache.", load(&m->cache_hits));
    counter(out, "semdex_query_cache_misses_total", "Query vectors that had to be embedded.",
            load(&m->cache_misses));
    counter(out, "semdex_rate_limited_total", "Requests refused by the rate limiter.", load(&m->ratelimited));
    histogram_series(out, "semdex_write_duration_seconds", "Time of one write (upsert batch or delete) "
                     "in the backend, durable or replicated on return.", &m->write);
    counter(out, "semdex_papers_upserted_total", "Papers written (inserted or replaced).", load(&m->upserted));
    counter(out, "semdex_papers_deleted_total", "Papers deleted.", load(&m->deleted));
    counter(out, "semdex_write_errors_total", "Writes the backend refused or failed.", load(&m->writes_failed));
    histogram_series(out, "semdex_wal_sync_duration_seconds",
                     "Time a write waited for its log record to be fsync'd (local store).", &m->wal_sync);
    histogram_series(out, "semdex_checkpoint_duration_seconds",
                     "Duration of a successful checkpoint (local store).", &m->checkpoint);
    header(out, "semdex_checkpoints_total", "counter", "Checkpoints by result (local store).");
    sx_buf_printf(out, "semdex_checkpoints_total{result=\"ok\"} %llu\n",
                  (unsigned long long)load(&m->checkpoints_ok));
    sx_buf_printf(out, "semdex_checkpoints_total{result=\"failed\"} %llu\n",
                  (unsigned long long)load(&m->checkpoints_failed));
    uint64_t last = load(&m->last_checkpoint_ms);
    if (last) gauge(out, "semdex_last_checkpoint_timestamp_seconds", "Unix time of the last good checkpoint.",
                    (double)last / 1e3);
}

/* The memory the process may use: the cgroup's limit (v2 memory.max) when
 * set, else the machine's RAM. */
static double memory_limit(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double ram = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (!f) return ram;
    double lim = 0;
    if (fscanf(f, "%lf", &lim) != 1) lim = 0; /* "max": no limit */
    fclose(f);
    return lim > 0 && (ram == 0 || lim < ram) ? lim : ram;
}

static void render_gauges(const sx_metrics_gauges *g, sx_buf *out) {
    gauge(out, "semdex_ready", "1 when the server answers searches.", g->ready);
    gauge(out, "semdex_start_time_seconds", "Unix time the server started.", g->start_time);
    gauge(out, "semdex_inflight_requests", "Requests being handled.", (double)g->inflight);
    gauge(out, "semdex_open_connections", "HTTP connections open.", (double)g->connections);
    gauge(out, "semdex_query_cache_entries", "Query vectors in the cache.", (double)g->cache_entries);
    gauge(out, "semdex_resident_memory_bytes", "Resident memory of the process.", (double)g->rss_bytes);
    gauge(out, "semdex_memory_limit_bytes", "Memory the process may use: its cgroup's limit, else the RAM.",
          memory_limit());
    if (!g->backend) return; /* loading: no collection figures yet */
    gauge(out, "semdex_papers", "Papers stored.", (double)g->papers);
    gauge(out, "semdex_deleted_papers", "Deleted papers whose space is not reclaimed yet.", (double)g->deleted);
    static const char *parts[4] = {"vectors", "graph", "documents", "other"};
    header(out, "semdex_index_memory_bytes", "gauge", "Memory of the stored collection by part.");
    for (int i = 0; i < 4; i++)
        sx_buf_printf(out, "semdex_index_memory_bytes{part=\"%s\"} %llu\n", parts[i],
                      (unsigned long long)g->index_bytes[i]);
    if (strcmp(g->backend, "local") == 0) {
        gauge(out, "semdex_index_mapped_bytes", "Vectors and documents used in place from snapshot files.",
              (double)g->mapped_bytes);
        gauge(out, "semdex_wal_bytes", "Size of the write-ahead log (local store).", (double)g->wal_bytes);
        gauge(out, "semdex_snapshot_generation", "Generation of the snapshots (local store).",
              (double)g->generation);
    } else {
        gauge(out, "semdex_cluster_nodes", "Redis nodes the gateway knows.", g->nodes);
        gauge(out, "semdex_cluster_masters", "Redis masters in the slot map.", g->masters);
        gauge(out, "semdex_cluster_nodes_down", "Redis nodes that failed within the last second.", g->nodes_down);
        gauge(out, "semdex_cluster_shard_keys", "Shard keys of the collection.", g->shard_keys);
        gauge(out, "semdex_cluster_shard_keys_unavailable",
              "Shard keys that did not answer the last SEMDEX.INFO round.", g->shard_keys_unavailable);
    }
}

void sx_metrics_render(sx_metrics *m, const sx_metrics_gauges *g, sx_buf *out) {
    header(out, "semdex_build_info", "gauge", "Build of the running server.");
    sx_buf_printf(out, "semdex_build_info{version=\"%s\"} 1\n", SX_VERSION);
    render_requests(m, out);
    render_counters(m, out);
    render_gauges(g, out);
}
