/*
 * store.h - a durable local collection: S shards in memory, a write-ahead
 * log and snapshots in a data directory. This is the backend of the embedded
 * (one-process) deployment.
 *
 *     sx_store *st;
 *     sx_store_opts o = sx_store_defaults(384);
 *     o.create = 1;                                          // may create it
 *     if (sx_store_open("data/db", &o, &st, &err) < 0) ...   // creates or recovers
 *     sx_store_upsert(st, n, docs, vectors, &err);           // durable on return
 *     sx_store_search(st, query_vector, &search, hits, &n_hits, NULL, &err);
 *     sx_store_checkpoint(st, &err);                         // snapshot, empty log
 *     sx_store_close(st);
 *
 * Layout of the directory:
 *     MANIFEST               format version, collection id, generation G, shard
 *                            count, index parameters (text, CRC-protected,
 *                            replaced atomically)
 *     shard-G-I.snap         snapshot of shard I at generation G
 *     wal-G.log              changes since those snapshots (its header names the
 *                            collection id and G)
 *     LOCK                   held (flock) by the process using the directory
 */
#ifndef SX_STORE_H
#define SX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"
#include "../shard/shard.h"

typedef struct sx_store sx_store;

/* Events an observer (sx_store_opts.observe) is told of, with a duration. */
enum {
    SX_STORE_EVENT_SYNC = 1,          /* a write waited this long for its fsync */
    SX_STORE_EVENT_CHECKPOINT,        /* a checkpoint succeeded, taking this long */
    SX_STORE_EVENT_CHECKPOINT_FAILED  /* a checkpoint failed after this long */
};

typedef struct sx_store_opts {
    int n_shards;              /* shards, used when creating (1..256) */
    sx_shard_params params;    /* index parameters, used when creating */
    uint64_t checkpoint_bytes; /* log size that triggers a background checkpoint */
    int n_threads;             /* threads searching shards in parallel (0 = cores) */
    int progress;              /* 1: log progress while loading and replaying */
    /* Called (from the thread concerned, never under a lock) for each
     * SX_STORE_EVENT_*; NULL: nobody is told. Metrics use it. */
    void (*observe)(void *ctx, int event, double seconds);
    void *observe_ctx;
    int create;                /* 1: create an empty collection when dir holds none
                                  (creating dir too); 0: fail with SX_ENOTFOUND */
    int accept_log_loss;       /* 1: open even when the write-ahead log is missing,
                                  empty, foreign or damaged, keeping what is intact
                                  (the operator's deliberate override; see
                                  docs/operations.md). 0: refuse such a log */
} sx_store_opts;

/* What sx_store_open found and what the store holds. */
typedef struct sx_store_info {
    uint64_t count;            /* papers */
    uint64_t deleted;          /* deleted points not yet reclaimed */
    uint64_t generation;       /* snapshot generation */
    uint64_t wal_bytes;        /* size of the current log */
    uint64_t replayed;         /* log records replayed at open */
    uint64_t bytes_vectors;    /* search codes and fp32 copies on the heap */
    uint64_t bytes_graph, bytes_documents, bytes_other; /* on the heap */
    uint64_t bytes_mapped;     /* fp32 vectors and documents used in place from
                                  the snapshot files (paged in on demand) */
    int n_shards;
    int max_level;             /* highest graph level over the shards */
    sx_shard_params params;
    double open_seconds;       /* time sx_store_open took */
} sx_store_info;

/* Default options for vectors of dim dimensions: 1 shard, M=16,
 * efConstruction=200, efSearch=64, SQ8 re-ranking the top 64 from fp32, checkpoint at
 * 512 MiB of log. */
sx_store_opts sx_store_defaults(int dim);

/* Opens the store in dir. When dir holds no collection, creates an empty
 * one if opts->create (then opts->n_shards and opts->params apply; otherwise
 * the manifest's values do) and fails with SX_ENOTFOUND if not. Loads the
 * snapshots and replays the log (a torn tail is truncated with a warning).
 * Fails with SX_EBUSY when another process holds the directory, SX_ECORRUPT
 * (message names the file) when a snapshot or the manifest is damaged, and
 * SX_ENOTFOUND / SX_ECORRUPT when the log is missing, empty, another
 * collection's or generation's, or damaged other than a torn tail (unless
 * opts->accept_log_loss): a store never opens with partial data unasked. */
int sx_store_open(const char *dir, const sx_store_opts *opts, sx_store **out, sx_err *err);

/* Inserts or replaces n papers (docs[i] with vector vecs[i*dim..], L2-
 * normalised) as one atomic batch. Returns only once the batch is durable
 * (fsync'd log). Every document is validated first: on any error nothing is
 * stored (SX_EINVAL names the paper's index and the problem). */
int sx_store_upsert(sx_store *st, int n, const sx_doc *docs, const float *vecs, sx_err *err);

/* Deletes a paper durably. Returns 0 or SX_ENOTFOUND. */
int sx_store_delete(sx_store *st, const char *id, sx_err *err);

/* A copy of one paper (free() it). Returns 0 or SX_ENOTFOUND. */
int sx_store_get(sx_store *st, const char *id, sx_doc **out, sx_err *err);

/* The stored vector of one paper into out (dim floats). */
int sx_store_get_vector(sx_store *st, const char *id, float *out, sx_err *err);

/* Searches every shard in parallel and merges: up to o->k hits, best first.
 * stats (may be NULL) sums the shards' statistics. */
int sx_store_search(sx_store *st, const float *q, const sx_search_opts *o, sx_hit *hits, int *n_hits,
                    sx_search_stats *stats, sx_err *err);

/* Writes new snapshots of every shard and starts an empty log, so the next
 * open loads quickly. Writes wait meanwhile; searches go on. */
int sx_store_checkpoint(sx_store *st, sx_err *err);

/* Fills *out (OUT) with what the store holds. Never waits for a write or a
 * checkpoint (health checks and metrics call it). */
void sx_store_get_info(sx_store *st, sx_store_info *out);

/* Vector dimension of the store. */
int sx_store_dim(const sx_store *st);

/* Closes the store (no checkpoint: call sx_store_checkpoint first for a fast
 * next start). NULL is a no-op. */
void sx_store_close(sx_store *st);

#endif
