/*
 * collection.h - S shards in memory used as one: which shard a paper lives
 * in, batches applied in parallel, searches fanned out to every shard and
 * merged, counts summed. Internal to storage/: the store (store.c) makes a
 * collection durable, fills its shards from snapshots and saves them; this
 * part knows no files and no log.
 */
#ifndef SX_COLLECTION_H
#define SX_COLLECTION_H

#include "../common/sx.h"
#include "../shard/shard.h"
#include "store.h"

typedef struct sx_collection {
    int n_shards;
    int dim;           /* vector length of every shard */
    sx_shard **shards; /* n_shards, owned (sx_collection_release) */
    sx_pool *pool;     /* runs the parallel parts; the caller's, not owned */
} sx_collection;

/* Applies n papers (docs[i], vecs[i*dim..], validated by the caller) to
 * their shards: in parallel on the pool unless an id repeats in the batch
 * (then in order). Stops at the first error, which it returns. */
int sx_collection_upsert(sx_collection *c, int n, const sx_doc *docs, const float *vecs, sx_err *err);

/* Deletes a paper from its shard. 0 or SX_ENOTFOUND. */
int sx_collection_delete(sx_collection *c, const char *id, sx_err *err);

/* A copy of one paper (free() it). 0 or SX_ENOTFOUND (also for an id no
 * paper could have). */
int sx_collection_get(sx_collection *c, const char *id, sx_doc **out, sx_err *err);

/* The stored vector of one paper into out (dim floats). */
int sx_collection_get_vector(sx_collection *c, const char *id, float *out, sx_err *err);

/* Searches every shard in parallel and merges: up to o->k hits, best first.
 * stats (may be NULL) sums the shards' statistics. */
int sx_collection_search(sx_collection *c, const float *q, const sx_search_opts *o, sx_hit *hits,
                         int *n_hits, sx_search_stats *stats, sx_err *err);

/* Sums the shards' counts and memory into out: count, deleted, bytes_*,
 * max_level (the other fields are left as they are). */
void sx_collection_add_info(sx_collection *c, sx_store_info *out);

/* Frees the shards (the pool is the caller's). */
void sx_collection_release(sx_collection *c);

#endif /* SX_COLLECTION_H */
