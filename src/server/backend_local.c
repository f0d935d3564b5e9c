/*
 * backend_local.c - the backend of the embedded deployment: the papers live
 * in a local store (src/storage) in this process. Every call goes straight
 * to the store; this file only adapts its names to the backend table.
 */
#include "backend.h"

#include <stdlib.h>

sx_backend *sx_backend_create(const sx_backend_ops *ops, void *impl, int dim) {
    sx_backend *b = malloc(sizeof *b);
    if (b) *b = (sx_backend){ops, impl, dim};
    return b;
}

static int local_search(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits,
                        int *n_hits, sx_search_stats *stats, sx_err *err) {
    return sx_store_search(impl, q, o, hits, n_hits, stats, err);
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

int sx_backend_search(sx_backend *b, const float *q, const sx_search_opts *o, sx_hit *hits,
                      int *n_hits, sx_search_stats *stats, sx_err *err) {
    return b->ops->search(b->impl, q, o, hits, n_hits, stats, err);
}

int sx_backend_get(sx_backend *b, const char *id, sx_doc **doc, float *vec, sx_err *err) {
    return b->ops->get(b->impl, id, doc, vec, err);
}

int sx_backend_upsert(sx_backend *b, int n, const sx_doc *docs, const float *vecs, sx_err *err) {
    return b->ops->upsert(b->impl, n, docs, vecs, err);
}

int sx_backend_delete(sx_backend *b, const char *id, sx_err *err) { return b->ops->del(b->impl, id, err); }

int sx_backend_get_info(sx_backend *b, sx_backend_info *out, int recent, sx_err *err) {
    return b->ops->info(b->impl, out, recent, err);
}

int sx_backend_flush(sx_backend *b, sx_err *err) { return b->ops->flush ? b->ops->flush(b->impl, err) : 0; }

void sx_backend_close(sx_backend *b) {
    if (!b) return;
    b->ops->close(b->impl);
    free(b);
}
