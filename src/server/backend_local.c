/*
 * backend_local.c - the backend of the embedded deployment: the papers live
 * in a local store (src/storage) in this process. Every call goes straight
 * to the store; this file only adapts its names to the backend table.
 *
 * A search is timed as one stage, "search": the shards' hits carry their
 * documents (copied under the shard's read lock, so a paper deleted
 * meanwhile can never shorten a page) and the collection merges them on its
 * pool, so the local backend's "fetch" and "merge" stages stay 0. Rejected:
 * searching without documents and fetching the merged hits by id afterwards
 * (times each step apart, but a delete in between loses a hit).
 *
 * The table's thin calls at the end of the file are shared by every
 * backend; they record searches and writes in the backend's metrics.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

sx_backend *sx_backend_create(const sx_backend_ops *ops, void *impl, int dim) {
    sx_backend *b = malloc(sizeof *b);
    if (b) *b = (sx_backend){ops, impl, dim, NULL};
    return b;
}

static int local_search(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits,
                        int *n_hits, sx_backend_stats *stats, sx_err *err) {
    double t0 = sx_now();
    int rc = sx_store_search(impl, q, o, hits, n_hits, NULL, err);
    stats->search = sx_now() - t0;
    return rc;
}

static int local_get(void *impl, const char *id, sx_doc **doc, float *vec, sx_err *err) {
    int rc = 0;
    if (doc) *doc = NULL;
    if (vec) rc = sx_store_get_vector(impl, id, vec, err);
    if (rc == 0 && doc) rc = sx_store_get(impl, id, doc, err);
    return rc;
}

static int local_upsert(void *impl, int n, const sx_doc *docs, const float *vecs, sx_err *err) {
    return sx_store_upsert(impl, n, docs, vecs, err);
}

static int local_del(void *impl, const char *id, sx_err *err) { return sx_store_delete(impl, id, err); }

static int local_info(void *impl, sx_backend_info *out, int recent, sx_err *err) {
    sx_store_info in;
    sx_store_get_info(impl, &in);
    *out = (sx_backend_info){
        .kind = "local",
        .count = in.count,
        .deleted = in.deleted,
        .n_shards = in.n_shards,
        .max_level = in.max_level,
        .params = in.params,
        .bytes_vectors = in.bytes_vectors,
        .bytes_graph = in.bytes_graph,
        .bytes_documents = in.bytes_documents,
        .bytes_other = in.bytes_other,
        .bytes_mapped = in.bytes_mapped,
        .generation = in.generation,
        .wal_bytes = in.wal_bytes,
        .open_seconds = in.open_seconds,
    };
    return 0;
}

static int local_flush(void *impl, sx_err *err) { return sx_store_checkpoint(impl, err); }

static void local_close(void *impl) { sx_store_close(impl); }

static const sx_backend_ops local_ops = {
    .name = "local",
    .search = local_search,
    .get = local_get,
    .upsert = local_upsert,
    .del = local_del,
    .info = local_info,
    .flush = local_flush,
    .close = local_close,
};

int sx_backend_open_local(const char *dir, const sx_store_opts *o, sx_backend **out, sx_err *err) {
    sx_store *st;
    *out = NULL;
    int rc = sx_store_open(dir, o, &st, err);
    if (rc < 0) return rc;
    sx_backend *b = sx_backend_create(&local_ops, st, sx_store_dim(st));
    if (!b) {
        sx_store_close(st);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    *out = b;
    return 0;
}

/* ---- the table's thin calls ---- */

/* Records one search's stages and nodes in m. */
static void record_search(sx_metrics *m, const sx_backend_stats *st, double seconds) {
    sx_metrics_index(m, seconds);
    sx_metrics_stage(m, SX_STAGE_SEARCH, st->search);
    sx_metrics_stage(m, SX_STAGE_FETCH, st->fetch);
    sx_metrics_stage(m, SX_STAGE_MERGE, st->merge);
    for (int i = 0; i < st->n_nodes && i < SX_BACKEND_MAX_NODES; i++)
        sx_metrics_node(m, st->nodes[i].addr, st->nodes[i].seconds);
}

int sx_backend_search(sx_backend *b, const float *q, const sx_search_opts *o, sx_hit *hits,
                      int *n_hits, sx_backend_stats *stats, sx_err *err) {
    sx_backend_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    double t0 = sx_now();
    int rc = b->ops->search(b->impl, q, o, hits, n_hits, stats, err);
    if (rc == 0 && b->metrics) record_search(b->metrics, stats, sx_now() - t0);
    return rc;
}

int sx_backend_get(sx_backend *b, const char *id, sx_doc **doc, float *vec, sx_err *err) {
    return b->ops->get(b->impl, id, doc, vec, err);
}

int sx_backend_upsert(sx_backend *b, int n, const sx_doc *docs, const float *vecs, sx_err *err) {
    double t0 = sx_now();
    int rc = b->ops->upsert(b->impl, n, docs, vecs, err);
    if (b->metrics) sx_metrics_write(b->metrics, n, 0, sx_now() - t0, rc == 0);
    return rc;
}

int sx_backend_delete(sx_backend *b, const char *id, sx_err *err) {
    double t0 = sx_now();
    int rc = b->ops->del(b->impl, id, err);
    /* An unknown id changes nothing: neither a deletion nor a failure. */
    if (b->metrics && rc != SX_ENOTFOUND) sx_metrics_write(b->metrics, 0, 1, sx_now() - t0, rc == 0);
    return rc;
}

int sx_backend_get_info(sx_backend *b, sx_backend_info *out, int recent, sx_err *err) {
    return b->ops->info(b->impl, out, recent, err);
}

int sx_backend_flush(sx_backend *b, sx_err *err) { return b->ops->flush ? b->ops->flush(b->impl, err) : 0; }

void sx_backend_close(sx_backend *b) {
    if (!b) return;
    b->ops->close(b->impl);
    free(b);
}
