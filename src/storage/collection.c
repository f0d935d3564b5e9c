/*
 * collection.c - S shards in memory used as one (see collection.h).
 *
 * Routing. A paper lives in shard sx_shard_route(id, S) (shard/route.c: a
 * fixed contract, since the snapshot files are laid out by it).
 *
 * Writes. The papers of a batch are independent unless an id repeats, so
 * they are inserted in parallel on the pool (the shards take concurrent
 * upserts; linking a node into the graph is what an ingest spends its time
 * on); a batch with a repeated id is applied in order, so the last copy
 * wins as it does in the log.
 *
 * Searches. Every shard is searched on the pool for the full k, and the
 * per-shard answers are merged by sx_hits_merge. One shard is searched on
 * the calling thread.
 */
#include "collection.h"

#include <stdlib.h>
#include <string.h>

#include "../corpus/corpus.h"

static sx_shard *shard_of(sx_collection *c, const char *id) {
    return c->shards[sx_shard_route(id, c->n_shards)];
}

static int upsert_one(sx_collection *c, const sx_doc *doc, const float *vec, sx_err *err) {
    return sx_shard_upsert(shard_of(c, doc->id), doc, vec, err);
}

typedef struct {
    sx_collection *c;
    const sx_doc *docs;
    const float *vecs;
    int *rc;
    sx_err *errs;
} apply_job;

static void apply_one(void *ctx, int i) {
    apply_job *j = ctx;
    j->rc[i] = upsert_one(j->c, &j->docs[i], j->vecs + (size_t)i * (size_t)j->c->dim, &j->errs[i]);
}

/* 1 when two papers of the batch have the same id (their order matters). */
static int has_duplicate_ids(int n, const sx_doc *docs) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    const char **slots = calloc(cap, sizeof *slots);
    if (!slots) return 1; /* be safe: apply in order */
    int dup = 0;
    for (int i = 0; i < n && !dup; i++) {
        const char *id = docs[i].id;
        size_t h = sx_crc32c(0, id, strlen(id)) & (cap - 1);
        while (slots[h] && !(dup = strcmp(slots[h], id) == 0)) h = (h + 1) & (cap - 1);
        slots[h] = id;
    }
    free(slots);
    return dup;
}

int sx_collection_upsert(sx_collection *c, int n, const sx_doc *docs, const float *vecs, sx_err *err) {
    if (n == 1 || sx_pool_threads(c->pool) == 1 || has_duplicate_ids(n, docs)) {
        for (int i = 0; i < n; i++) {
            int rc = upsert_one(c, &docs[i], vecs + (size_t)i * (size_t)c->dim, err);
            if (rc < 0) return rc;
        }
        return 0;
    }
    int *rcs = calloc((size_t)n, sizeof *rcs);
    sx_err *errs = calloc((size_t)n, sizeof *errs);
    if (!rcs || !errs) {
        free(rcs);
        free(errs);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    apply_job j = {c, docs, vecs, rcs, errs};
    sx_pool_run(c->pool, n, apply_one, &j);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        if (rcs[i] < 0) rc = sx_err_set(err, rcs[i], "%s", errs[i].msg);
    free(rcs);
    free(errs);
    return rc;
}

int sx_collection_delete(sx_collection *c, const char *id, sx_err *err) {
    return sx_shard_delete(shard_of(c, id), id, err);
}

int sx_collection_get(sx_collection *c, const char *id, sx_doc **out, sx_err *err) {
    if (sx_record_check_id(id, NULL) < 0) return sx_err_set(err, SX_ENOTFOUND, "no paper with id '%.80s'", id);
    return sx_shard_get(shard_of(c, id), id, out, err);
}

int sx_collection_get_vector(sx_collection *c, const char *id, float *out, sx_err *err) {
    if (sx_record_check_id(id, NULL) < 0) return sx_err_set(err, SX_ENOTFOUND, "no paper with id '%.80s'", id);
    return sx_shard_get_vector(shard_of(c, id), id, out, err);
}

typedef struct {
    sx_collection *c;
    const float *q;
    const sx_search_opts *o;
    sx_hit *hits;        /* n_shards * k */
    int *n_hits;
    sx_search_stats *stats;
    int *rc;
    sx_err *errs;
} search_job;

static void search_one(void *ctx, int i) {
    search_job *j = ctx;
    j->rc[i] = sx_shard_search(j->c->shards[i], j->q, j->o, j->hits + (size_t)i * (size_t)j->o->k,
                               &j->n_hits[i], &j->stats[i], &j->errs[i]);
}

int sx_collection_search(sx_collection *c, const float *q, const sx_search_opts *o, sx_hit *hits,
                         int *n_hits, sx_search_stats *stats, sx_err *err) {
    *n_hits = 0;
    if (o->k <= 0) return 0;
    int S = c->n_shards;
    if (S == 1) return sx_shard_search(c->shards[0], q, o, hits, n_hits, stats, err);
    sx_search_opts per = *o; /* each shard's share of the effort */
    per.ef = sx_shard_ef(o->ef ? o->ef : sx_shard_get_params(c->shards[0]).ef_search, o->k, S);
    o = &per;
    sx_hit *all = malloc((size_t)S * (size_t)o->k * sizeof *all);
    int *counts = calloc((size_t)S, sizeof *counts);
    int *rcs = calloc((size_t)S, sizeof *rcs);
    sx_search_stats *sts = calloc((size_t)S, sizeof *sts);
    sx_err *errs = calloc((size_t)S, sizeof *errs);
    int rc = 0;
    if (!all || !counts || !rcs || !sts || !errs) {
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    search_job j = {c, q, o, all, counts, sts, rcs, errs};
    sx_pool_run(c->pool, S, search_one, &j);
    int total = 0;
    for (int i = 0; i < S; i++) {
        if (rcs[i] < 0 && rc == 0) rc = sx_err_set(err, rcs[i], "%s", errs[i].msg);
        memmove(all + total, all + (size_t)i * (size_t)o->k, (size_t)counts[i] * sizeof *all);
        total += counts[i];
    }
    if (rc < 0) {
        sx_hits_release(all, total);
        goto done;
    }
    *n_hits = sx_hits_merge(all, total, o->k);
    memcpy(hits, all, (size_t)*n_hits * sizeof *hits);
    if (stats) {
        memset(stats, 0, sizeof *stats);
        for (int i = 0; i < S; i++) {
            stats->visited += sts[i].visited;
            stats->distance_evals += sts[i].distance_evals;
            if (sts[i].strategy > stats->strategy) stats->strategy = sts[i].strategy;
            stats->selectivity += sts[i].selectivity / S;
        }
    }
done:
    free(all);
    free(counts);
    free(rcs);
    free(sts);
    free(errs);
    return rc;
}

void sx_collection_add_info(sx_collection *c, sx_store_info *out) {
    for (int i = 0; i < c->n_shards; i++) {
        struct sx_shard_stats s;
        if (sx_shard_stats(c->shards[i], &s) < 0) continue;
        out->count += s.count;
        out->deleted += s.deleted;
        out->bytes_vectors += s.bytes_vectors + s.bytes_fp32;
        out->bytes_mapped += s.bytes_fp32_mapped + s.bytes_documents_mapped;
        out->bytes_graph += s.bytes_graph;
        out->bytes_documents += s.bytes_documents;
        out->bytes_other += s.bytes_bitmaps + s.bytes_idmap;
        if (s.levels - 1 > out->max_level) out->max_level = s.levels - 1;
    }
}

void sx_collection_release(sx_collection *c) {
    if (c->shards)
        for (int i = 0; i < c->n_shards; i++) sx_shard_free(c->shards[i]);
    free(c->shards);
    c->shards = NULL;
}
