/*
 * store.c - the durable local collection: log, snapshots, manifest,
 * recovery, checkpoints.
 *
 * What it guarantees. A write (a batch upsert or a delete) is acknowledged
 * only after its log record is fsync'd, so an acknowledged write survives
 * kill -9 and power loss. Opening always yields exactly the acknowledged
 * state (plus, possibly, writes whose acknowledgement was lost in the crash):
 * snapshots of generation G, then every intact record of wal-G.log. Damaged
 * snapshots or a damaged manifest stop the open with a message naming the
 * file: the store never serves partial data.
 *
 * Write path. Writers take the store's write mutex, validate, append one log
 * record for the whole batch, apply it to the shards, release the mutex and
 * only then wait for the fsync (sx_wal_sync). Holding the mutex across append
 * and apply makes the in-memory order equal to the log order, so replay
 * rebuilds the same state; syncing outside it lets concurrent writers share
 * one fsync (group commit). Readers never take the write mutex: the shards
 * are thread-safe, so searches run while writes are applied. (A search may
 * see a write a moment before it is acknowledged; it cannot see one that
 * will not survive, except when the fsync itself fails, after which the store
 * refuses every further write.)
 *
 * Checkpoints. A checkpoint writes every shard to shard-(G+1)-I.snap
 * (temporary name, fsync, rename), creates an empty wal-(G+1).log, and then
 * switches generations by atomically replacing MANIFEST (write temp, fsync,
 * rename, fsync directory). A crash before the rename leaves generation G
 * intact (the stray G+1 files are removed at the next open); after it, G+1
 * is complete. Writers wait during a checkpoint; searches do not. It runs at
 * graceful shutdown, at the end of an ingest, and in a background thread when
 * the log grows past checkpoint_bytes, which bounds replay time at start-up.
 *
 * Which log goes with which snapshots. The MANIFEST holds a collection id
 * (random, chosen at creation) and the generation G; wal-G.log carries the
 * same pair in its header (wal.c). Opening refuses a missing, empty or
 * foreign log, a damaged one (other than a torn tail), and a log of a newer
 * generation that holds records (a MANIFEST older than the log, as after a
 * partial restore): each would silently drop acknowledged writes. The
 * operator's override (opts->accept_log_loss, `--accept-log-loss`) opens
 * anyway: what is intact is replayed, the bad log is kept aside as
 * damaged-wal-G.log.<time>, and a checkpoint starts a new generation at
 * once. A collection written by an older build (MANIFEST version 1, a log
 * without ids) opens too and is checkpointed into the current format.
 *
 * Creating. Only an open with opts->create creates a collection (ingest,
 * serve --create); any other open of a directory without a MANIFEST fails,
 * so a mistyped path is an error, not a new empty collection. A creation
 * writes generation 1 and then the MANIFEST; a directory holding only the
 * generation-1 files of a creation cut short (an empty log) is no
 * collection and is created afresh, while collection files without a
 * MANIFEST beside them are refused.
 *
 * Sharding. The shards in memory are a collection (collection.c): a paper
 * lives in shard crc32c(id) mod S, batches are applied in parallel, and
 * searches fan out to every shard and merge. This file makes the collection
 * durable; the collection knows nothing of files or the log.
 *
 * Log record format (little-endian): u8 op, then for op 1 (upsert batch)
 * u32 count, u32 dim, and per paper six strings (u32 length + bytes: id,
 * title, abstract, authors, categories, update_date) and dim float32; for op
 * 2 (delete) one string, the id.
 *
 * Rejected: one snapshot file for all shards (shards load in parallel from
 * separate files, and a future cluster moves shards one at a time); applying
 * writes after the fsync (a second writer could then apply out of log order).
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../corpus/corpus.h"
#include "collection.h"
#include "snapfile.h"
#include "wal.h"

#define MANIFEST_VERSION 2 /* 1: before collection ids (still read) */
#define OP_UPSERT 1
#define OP_DELETE 2

struct sx_store {
    char *dir;
    int lock_fd;
    sx_shard_params params;
    sx_collection coll;  /* the shards in memory (collection.c) */
    sx_pool *pool;
    uint64_t generation;
    uint64_t collection_id; /* 0 while a version-1 MANIFEST is open */
    uint64_t checkpoint_bytes;
    uint64_t replayed;
    double open_seconds;

    pthread_rwlock_t ckpt; /* shared by writers, exclusive for checkpoints */
    pthread_mutex_t wmu; /* writers, checkpoints; protects wal, failed */
    sx_wal *wal;
    int failed;          /* a write could not be made durable: refuse writes */
    /* What sx_store_get_info reports, published without wmu so that health
     * checks and metrics never wait behind a write or a checkpoint. */
    _Atomic uint64_t info_generation, info_wal_bytes;
    void (*observe)(void *ctx, int event, double seconds);
    void *observe_ctx;

    pthread_t bg;        /* background checkpoints */
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;
    int bg_started, bg_stop, bg_wanted;
};

sx_store_opts sx_store_defaults(int dim) {
    sx_store_opts o = {0};
    /* One shard: on one machine a single graph does the least work per
     * query. S shards each walk their own graph for the same top k, so
     * under load S = 2 served 7% (fp32) to 11% (int8) fewer searches per
     * second at 510K papers (bench/load, 2 cores); a second shard only
     * helps the latency of a lone query on an idle many-core machine. */
    o.n_shards = 1;
    o.params.dim = dim;
    o.params.M = 16;
    o.params.ef_construction = 200;
    o.params.ef_search = 64;
    o.params.storage = SX_STORAGE_SQ8;
    /* The shard's default: on 100K title vectors at ef 64, recall@10 is
     * 0.9687 with 32 or 64 re-ranked (0.9685 with 20), and each re-ranked
     * vector is a 1.5 KB pread from the snapshot: 64 took 4-13% more of
     * the server's CPU under load (bench/load A/B, 510K papers). */
    o.params.rerank = 32;
    o.checkpoint_bytes = 512ull << 20;
    return o;
}

int sx_store_dim(const sx_store *st) { return st->params.dim; }

/* ---- paths and files ---------------------------------------------------- */

static void path_of(char *out, size_t cap, const sx_store *st, const char *name) {
    snprintf(out, cap, "%s/%s", st->dir, name);
}

static void snap_name(char *out, size_t cap, uint64_t gen, int shard) {
    snprintf(out, cap, "shard-%llu-%d.snap", (unsigned long long)gen, shard);
}

static void wal_name(char *out, size_t cap, uint64_t gen) {
    snprintf(out, cap, "wal-%llu.log", (unsigned long long)gen);
}

/* ---- manifest ----------------------------------------------------------- */

static const char *storage_name(int storage) { return storage == SX_STORAGE_SQ8 ? "sq8" : "fp32"; }

static int write_manifest_body(void *ctx, FILE *f, sx_err *err) {
    const sx_store *st = ctx;
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "semdex-manifest %d\nid %016llx\ngeneration %llu\nshards %d\ndim %d\nM %d\n"
                     "ef_construction %d\nef_search %d\nstorage %s\nrerank %d\n",
                     MANIFEST_VERSION, (unsigned long long)st->collection_id,
                     (unsigned long long)st->generation, st->coll.n_shards, st->params.dim,
                     st->params.M, st->params.ef_construction, st->params.ef_search,
                     storage_name(st->params.storage), st->params.rerank);
    fprintf(f, "%scrc32c %08x\n", body, sx_crc32c(0, body, (size_t)n));
    return ferror(f) ? sx_err_set(err, SX_EIO, "MANIFEST: write failed") : 0;
}

static int write_manifest(sx_store *st, sx_err *err) {
    char path[4096];
    path_of(path, sizeof path, st, "MANIFEST");
    int rc = sx_snapfile_replace(path, write_manifest_body, st, err);
    return rc < 0 ? rc : sx_fsync_dir(st->dir, err);
}

/* Parses MANIFEST into st. Returns 0, SX_ENOTFOUND or SX_ECORRUPT. */
static int read_manifest(sx_store *st, sx_err *err) {
    char path[4096];
    path_of(path, sizeof path, st, "MANIFEST");
    char *data;
    size_t len;
    int rc = sx_read_file(path, &data, &len, err);
    if (rc < 0) return rc;
    char *crc_line = strstr(data, "crc32c ");
    unsigned crc = 0;
    int version = 0;
    unsigned long long gen = 0, id = 0;
    char storage[16] = "";
    int ok = crc_line && sscanf(crc_line, "crc32c %x", &crc) == 1 &&
             crc == sx_crc32c(0, data, (size_t)(crc_line - data)) &&
             sscanf(data, "semdex-manifest %d\n", &version) == 1;
    /* Version 1 has no id line; the rest is the same. (A "\n" in a scanf
     * format matches any white space, or none: a line break is looked for.) */
    const char *rest = ok ? strchr(data, '\n') : NULL;
    ok = rest != NULL;
    if (ok && version >= 2) {
        ok = sscanf(rest + 1, "id %llx\n", &id) == 1 && id != 0;
        rest = ok ? strchr(rest + 1, '\n') : NULL;
        ok = rest != NULL;
    }
    if (ok) rest++;
    ok = ok && sscanf(rest,
                      "generation %llu\nshards %d\ndim %d\nM %d\n"
                      "ef_construction %d\nef_search %d\nstorage %15s\nrerank %d\n",
                      &gen, &st->coll.n_shards, &st->params.dim, &st->params.M,
                      &st->params.ef_construction, &st->params.ef_search, storage,
                      &st->params.rerank) == 8;
    free(data);
    if (!ok)
        return sx_err_set(err, SX_ECORRUPT, "%s: damaged (checksum or syntax); refusing to open "
                          "(restore the directory from a backup)", path);
    if (version < 1 || version > MANIFEST_VERSION)
        return sx_err_set(err, SX_EUNSUPPORTED, "%s: format version %d is not supported", path, version);
    if (st->coll.n_shards < 1 || st->coll.n_shards > 256 || st->params.dim < 1 || gen < 1)
        return sx_err_set(err, SX_ECORRUPT, "%s: impossible values", path);
    st->params.storage = strcmp(storage, "sq8") == 0 ? SX_STORAGE_SQ8 : SX_STORAGE_FP32;
    st->generation = gen;
    st->collection_id = id;
    return 0;
}

/* A random, non-zero collection id. */
static uint64_t new_collection_id(void) {
    uint64_t x = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &x, sizeof x) != (ssize_t)sizeof x) x = 0;
        close(fd);
    }
    if (!x) x = ((uint64_t)getpid() << 40) ^ (uint64_t)(sx_wall_time() * 1e6);
    return x ? x : 1;
}

/* ---- log records -------------------------------------------------------- */

static void put_u32(sx_buf *b, uint32_t v) {
    unsigned char h[4];
    sx_le32_put(h, v);
    sx_buf_append(b, h, 4);
}

static void put_str(sx_buf *b, const char *s) {
    uint32_t len = s ? (uint32_t)strlen(s) : 0;
    put_u32(b, len);
    if (len) sx_buf_append(b, s, len);
}

static void put_floats(sx_buf *b, const float *v, int n) {
    if (sx_host_little_endian()) {
        sx_buf_append(b, v, (size_t)n * sizeof(float));
        return;
    }
    for (int i = 0; i < n; i++) {
        unsigned char h[4];
        sx_le_float_put(h, v[i]);
        sx_buf_append(b, h, 4);
    }
}

/* A cursor over a log record. */
typedef struct {
    const unsigned char *p, *end;
} cursor;

static int get_u32(cursor *c, uint32_t *v) {
    if (c->end - c->p < 4) return -1;
    *v = sx_le32_get(c->p);
    c->p += 4;
    return 0;
}

/* Copies a string out of the record into a NUL-terminated heap string. */
static int get_str(cursor *c, char **out) {
    uint32_t len;
    if (get_u32(c, &len) < 0 || (size_t)(c->end - c->p) < len) return -1;
    *out = malloc(len + 1);
    if (!*out) return -1;
    memcpy(*out, c->p, len);
    (*out)[len] = '\0';
    c->p += len;
    return 0;
}

static int get_floats(cursor *c, float *v, uint32_t n) {
    if ((size_t)(c->end - c->p) < (size_t)n * 4) return -1;
    sx_le32_copy(v, c->p, n);
    c->p += (size_t)n * 4;
    return 0;
}

/* ---- applying changes to the shards ------------------------------------- */

typedef struct {
    int n;
    const sx_doc *docs;
    const float *vecs;
} upsert_args;

static int apply_upsert_batch(sx_store *st, void *ctx, sx_err *err) {
    const upsert_args *a = ctx;
    return sx_collection_upsert(&st->coll, a->n, a->docs, a->vecs, err);
}

static int apply_delete_one(sx_store *st, void *ctx, sx_err *err) {
    /* A concurrent delete of the same paper won the race: the paper is gone
     * either way, and replay ignores deletes of absent papers too. */
    int rc = sx_collection_delete(&st->coll, ctx, err);
    return rc == SX_ENOTFOUND ? 0 : rc;
}

/* Applies one log record (at open, replaying the log): a delete, or a batch
 * parsed whole and applied like the write that logged it. */
static int replay_record(void *ctx, const void *payload, size_t len, sx_err *err) {
    sx_store *st = ctx;
    cursor c = {payload, (const unsigned char *)payload + len};
    if (len < 1) return sx_err_set(err, SX_ECORRUPT, "empty log record");
    int op = *c.p++;
    st->replayed++;
    if (op == OP_DELETE) {
        char *id = NULL;
        if (get_str(&c, &id) < 0) return sx_err_set(err, SX_ECORRUPT, "malformed delete record");
        int rc = apply_delete_one(st, id, err);
        free(id);
        return rc;
    }
    uint32_t count, dim;
    if (op != OP_UPSERT || get_u32(&c, &count) < 0 || get_u32(&c, &dim) < 0 ||
        dim != (uint32_t)st->params.dim || count > len / 24)
        return sx_err_set(err, SX_ECORRUPT, "malformed log record (op %d)", op);
    sx_doc *docs = calloc(count ? count : 1, sizeof *docs);
    char **fields = calloc((size_t)count * 6 + 1, sizeof *fields);
    float *vecs = malloc(((size_t)count * dim + 1) * sizeof *vecs);
    int rc = docs && fields && vecs ? 0 : sx_err_set(err, SX_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        char **f = fields + (size_t)i * 6;
        int bad = 0;
        for (int k = 0; k < 6; k++) bad |= get_str(&c, &f[k]);
        bad |= get_floats(&c, vecs + (size_t)i * dim, dim);
        if (bad) rc = sx_err_set(err, SX_ECORRUPT, "malformed upsert record (paper %u)", i);
        docs[i] = (sx_doc){.id = f[0], .title = f[1], .abstract = f[2], .authors = f[3],
                           .categories = f[4], .update_date = f[5]};
    }
    upsert_args a = {(int)count, docs, vecs};
    if (rc == 0) rc = apply_upsert_batch(st, &a, err);
    for (size_t k = 0; fields && k < (size_t)count * 6; k++) free(fields[k]);
    free(fields);
    free(docs);
    free(vecs);
    return rc;
}

/* ---- validation ---------------------------------------------------------- */

/* The rules are the shard's (sx_doc_check, sx_vector_check), so that a
 * shard hosted in Redis refuses exactly what this store refuses. */
static int check_batch(const sx_store *st, int n, const sx_doc *docs, const float *vecs, sx_err *err) {
    for (int i = 0; i < n; i++) {
        int rc = sx_doc_check(&docs[i], err);
        if (rc == 0) rc = sx_vector_check(vecs + (size_t)i * (size_t)st->params.dim, st->params.dim, err);
        if (rc < 0) return sx_err_prefix(err, "paper %d (%s)", i, docs[i].id ? docs[i].id : "no id");
    }
    return 0;
}

/* ---- writes -------------------------------------------------------------- */

static void wake_checkpointer(sx_store *st);

/* Appends a record and applies it with the write mutex held, then waits for
 * durability outside it (group commit). apply(ctx) makes the in-memory
 * change. The checkpoint lock, held shared, keeps the log from being swapped
 * by a checkpoint between append and sync. */
static int durable_write(sx_store *st, const sx_buf *rec, int (*apply)(sx_store *, void *, sx_err *),
                         void *ctx, sx_err *err) {
    if (rec->oom) return sx_err_set(err, SX_ENOMEM, "out of memory encoding the log record");
    pthread_rwlock_rdlock(&st->ckpt);
    pthread_mutex_lock(&st->wmu);
    if (st->failed) {
        pthread_mutex_unlock(&st->wmu);
        pthread_rwlock_unlock(&st->ckpt);
        return sx_err_set(err, SX_EIO, "the store refuses writes after an earlier I/O error");
    }
    uint64_t lsn;
    int rc = sx_wal_append(st->wal, rec->data, rec->len, &lsn, err);
    if (rc == 0) atomic_store(&st->info_wal_bytes, lsn);
    if (rc == 0 && (rc = apply(st, ctx, err)) < 0) {
        /* Logged but not applied: memory no longer matches the log. */
        st->failed = 1;
        sx_log(SX_LOG_ERROR, "store: a logged write could not be applied (%s); refusing writes "
               "until restart", err ? err->msg : "");
    }
    pthread_mutex_unlock(&st->wmu);
    if (rc == 0) {
        double t0 = sx_now();
        rc = sx_wal_sync(st->wal, lsn, err);
        if (rc == 0 && st->observe) st->observe(st->observe_ctx, SX_STORE_EVENT_SYNC, sx_now() - t0);
        if (rc < 0) {
            pthread_mutex_lock(&st->wmu);
            st->failed = 1;
            pthread_mutex_unlock(&st->wmu);
        }
    }
    int big = rc == 0 && sx_wal_size(st->wal) > st->checkpoint_bytes;
    pthread_rwlock_unlock(&st->ckpt);
    if (big) wake_checkpointer(st);
    return rc;
}

int sx_store_upsert(sx_store *st, int n, const sx_doc *docs, const float *vecs, sx_err *err) {
    if (n <= 0) return 0;
    int rc = check_batch(st, n, docs, vecs, err);
    if (rc < 0) return rc;
    sx_buf rec = {0};
    unsigned char op = OP_UPSERT;
    sx_buf_append(&rec, &op, 1);
    put_u32(&rec, (uint32_t)n);
    put_u32(&rec, (uint32_t)st->params.dim);
    for (int i = 0; i < n; i++) {
        const char *f[6] = {docs[i].id, docs[i].title, docs[i].abstract, docs[i].authors,
                            docs[i].categories, docs[i].update_date};
        for (int k = 0; k < 6; k++) put_str(&rec, f[k]);
        put_floats(&rec, vecs + (size_t)i * (size_t)st->params.dim, st->params.dim);
    }
    if (rec.len > SX_WAL_MAX_RECORD) {
        sx_buf_free(&rec);
        return sx_err_set(err, SX_EINVAL, "batch of %d papers is too large for one write; split it", n);
    }
    upsert_args a = {n, docs, vecs};
    rc = durable_write(st, &rec, apply_upsert_batch, &a, err);
    sx_buf_free(&rec);
    return rc;
}

int sx_store_delete(sx_store *st, const char *id, sx_err *err) {
    /* Only log deletes of papers that exist, so an unknown id changes nothing. */
    sx_doc *d = NULL;
    int rc = sx_store_get(st, id, &d, err);
    if (rc < 0) return rc;
    free(d);
    sx_buf rec = {0};
    unsigned char op = OP_DELETE;
    sx_buf_append(&rec, &op, 1);
    put_str(&rec, id);
    rc = durable_write(st, &rec, apply_delete_one, (void *)id, err);
    sx_buf_free(&rec);
    return rc;
}

/* ---- reads --------------------------------------------------------------- */

int sx_store_get(sx_store *st, const char *id, sx_doc **out, sx_err *err) {
    return sx_collection_get(&st->coll, id, out, err);
}

int sx_store_get_vector(sx_store *st, const char *id, float *out, sx_err *err) {
    return sx_collection_get_vector(&st->coll, id, out, err);
}

int sx_store_search(sx_store *st, const float *q, const sx_search_opts *o, sx_hit *hits, int *n_hits,
                    sx_search_stats *stats, sx_err *err) {
    return sx_collection_search(&st->coll, q, o, hits, n_hits, stats, err);
}

/* ---- snapshots and checkpoints ------------------------------------------ */

/* Parses a store file name: a snapshot "shard-G-I.snap" (returns 1) or a
 * log "wal-G.log" (returns 2), the whole name; 0 for anything else. */
static int store_file(const char *name, unsigned long long *gen) {
    int i, n = 0;
    if (sscanf(name, "shard-%llu-%d.snap%n", gen, &i, &n) == 2 && n > 0 && name[n] == '\0') return 1;
    n = 0;
    if (sscanf(name, "wal-%llu.log%n", gen, &n) == 1 && n > 0 && name[n] == '\0') return 2;
    return 0;
}

/* 1 when the file at path ends in ".tmp" and is a store file's temporary. */
static int store_tmp_file(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".tmp") == 0 &&
           (strncmp(name, "shard-", 6) == 0 || strncmp(name, "MANIFEST", 8) == 0);
}

/* Removes the files of generations other than keep and temporary files
 * (leftovers of a checkpoint a crash interrupted, or of one completed:
 * open_contents has checked that a newer log holds no record). */
static void remove_other_generations(sx_store *st, uint64_t keep) {
    DIR *d = opendir(st->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long g;
        int kind = store_file(e->d_name, &g);
        if ((kind && g != keep) || store_tmp_file(e->d_name)) {
            char path[4096];
            path_of(path, sizeof path, st, e->d_name);
            if (unlink(path) == 0) sx_log(SX_LOG_DEBUG, "store: removed %s", path);
        }
    }
    closedir(d);
}

/* Keeps a log that cannot be used aside as damaged-<name>.<time>, out of
 * the way of every store file name. Returns 0 or SX_EIO. */
static int set_log_aside(sx_store *st, const char *name, sx_err *err) {
    char from[4096], to[4096], aside[256];
    path_of(from, sizeof from, st, name);
    snprintf(aside, sizeof aside, "damaged-%s.%lld", name, (long long)sx_wall_time());
    path_of(to, sizeof to, st, aside);
    if (rename(from, to) != 0) {
        if (errno == ENOENT) return 0;
        return sx_err_set(err, SX_EIO, "%s: cannot rename to %s: %s", from, to, strerror(errno));
    }
    sx_log(SX_LOG_WARN, "store: kept %s aside as %s", from, to);
    return 0;
}

/* Writes generation gen's snapshots and empty log. Called with wmu held (or
 * before the store is shared). */
static int write_generation(sx_store *st, uint64_t gen, sx_wal **wal_out, sx_err *err) {
    char name[64], path[4096];
    for (int i = 0; i < st->coll.n_shards; i++) {
        snap_name(name, sizeof name, gen, i);
        path_of(path, sizeof path, st, name);
        int rc = sx_snapfile_save(st->coll.shards[i], path, err);
        if (rc < 0) return rc;
    }
    wal_name(name, sizeof name, gen);
    path_of(path, sizeof path, st, name);
    sx_wal_id id = {st->collection_id, gen};
    return sx_wal_create(path, &id, wal_out, err);
}

static int checkpoint_locked(sx_store *st, sx_err *err) {
    double t0 = sx_now();
    uint64_t gen = st->generation + 1;
    sx_wal *wal = NULL;
    int rc = write_generation(st, gen, &wal, err);
    if (rc == 0) {
        uint64_t old = st->generation;
        st->generation = gen;
        rc = write_manifest(st, err);
        if (rc < 0) {
            st->generation = old;
            sx_wal_close(wal);
        } else {
            sx_wal_close(st->wal);
            st->wal = wal;
            atomic_store(&st->info_generation, gen);
            atomic_store(&st->info_wal_bytes, sx_wal_size(wal));
            remove_other_generations(st, gen);
            sx_log(SX_LOG_INFO, "store: checkpoint generation=%llu seconds=%.2f",
                   (unsigned long long)gen, sx_now() - t0);
        }
    }
    if (rc < 0) remove_other_generations(st, st->generation);
    return rc;
}

/* Checkpoints when the log holds more than min_bytes (0: any record). */
static int checkpoint_if_larger(sx_store *st, uint64_t min_bytes, sx_err *err) {
    double t0 = sx_now();
    pthread_rwlock_wrlock(&st->ckpt);
    pthread_mutex_lock(&st->wmu);
    int rc = 0, ran = 0;
    if (st->failed)
        rc = sx_err_set(err, SX_EIO, "the store refuses writes after an earlier I/O error");
    else if (sx_wal_size(st->wal) > (min_bytes ? min_bytes : sx_wal_header_size(st->wal)))
        ran = 1, rc = checkpoint_locked(st, err);
    pthread_mutex_unlock(&st->wmu);
    pthread_rwlock_unlock(&st->ckpt);
    if (ran && st->observe)
        st->observe(st->observe_ctx, rc == 0 ? SX_STORE_EVENT_CHECKPOINT : SX_STORE_EVENT_CHECKPOINT_FAILED,
                    sx_now() - t0);
    return rc;
}

int sx_store_checkpoint(sx_store *st, sx_err *err) {
    /* A log holding just its header means the snapshots are current. */
    return checkpoint_if_larger(st, 0, err);
}

static void *checkpointer(void *arg) {
    sx_store *st = arg;
    pthread_mutex_lock(&st->bg_mu);
    for (;;) {
        while (!st->bg_wanted && !st->bg_stop) pthread_cond_wait(&st->bg_cv, &st->bg_mu);
        if (st->bg_stop) break;
        st->bg_wanted = 0;
        pthread_mutex_unlock(&st->bg_mu);
        sx_err err = {0};
        if (checkpoint_if_larger(st, st->checkpoint_bytes, &err) < 0)
            sx_log(SX_LOG_ERROR, "store: background checkpoint failed: %s", err.msg);
        pthread_mutex_lock(&st->bg_mu);
    }
    pthread_mutex_unlock(&st->bg_mu);
    return NULL;
}

static void wake_checkpointer(sx_store *st) {
    pthread_mutex_lock(&st->bg_mu);
    st->bg_wanted = 1;
    pthread_cond_signal(&st->bg_cv);
    pthread_mutex_unlock(&st->bg_mu);
}

/* ---- open / close -------------------------------------------------------- */

static int lock_dir(sx_store *st, sx_err *err) {
    char path[4096];
    path_of(path, sizeof path, st, "LOCK");
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0) return sx_err_set(err, SX_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return sx_err_set(err, SX_EBUSY, "%s is in use by another semdex process", st->dir);
    return 0;
}

typedef struct {
    sx_store *st;
    int *rc;
    sx_err *errs;
} load_job;

/* Maps shard i's snapshot and uses it in place (fp32 vectors and documents
 * are paged in on demand), verifying every section's checksum. */
static void load_one(void *ctx, int i) {
    load_job *j = ctx;
    char name[64], path[4096];
    snap_name(name, sizeof name, j->st->generation, i);
    path_of(path, sizeof path, j->st, name);
    j->rc[i] = sx_snapfile_map(path, 0, &j->st->coll.shards[i], &j->errs[i]);
    if (j->rc[i] == SX_ENOTFOUND || j->rc[i] == SX_EIO)
        j->rc[i] = sx_err_set(&j->errs[i], SX_ECORRUPT, "%s: missing or unreadable snapshot: %s", path,
                              j->errs[i].msg);
    else if (j->rc[i] < 0 && !strstr(j->errs[i].msg, name))
        sx_err_prefix(&j->errs[i], "%s", path);
}

static int load_snapshots(sx_store *st, sx_err *err) {
    int *rcs = calloc((size_t)st->coll.n_shards, sizeof *rcs);
    sx_err *errs = calloc((size_t)st->coll.n_shards, sizeof *errs);
    if (!rcs || !errs) {
        free(rcs);
        free(errs);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    load_job j = {st, rcs, errs};
    sx_pool_run(st->pool, st->coll.n_shards, load_one, &j);
    int rc = 0;
    for (int i = 0; i < st->coll.n_shards && rc == 0; i++)
        if (rcs[i] < 0) rc = sx_err_set(err, rcs[i], "%s", errs[i].msg);
    free(rcs);
    free(errs);
    return rc;
}

static int create_shards(sx_store *st, sx_err *err) {
    for (int i = 0; i < st->coll.n_shards; i++) {
        int rc = sx_shard_create(&st->params, &st->coll.shards[i], err);
        if (rc < 0) return rc;
    }
    return 0;
}

/* How to override a refused log, appended to the messages. */
static const char *k_override =
    "; if that loss is accepted, start once with --accept-log-loss (docs/operations.md, Recovery)";

/* What the directory holds besides MANIFEST. */
typedef struct {
    int files;        /* snapshots and logs */
    int creation;     /* 1: only generation 1 and no log record (a creation cut short) */
} dir_scan;

static int scan_dir(const char *dir, dir_scan *out, sx_err *err) {
    *out = (dir_scan){0, 1};
    DIR *d = opendir(dir);
    if (!d) return sx_err_set(err, SX_EIO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long g;
        int kind = store_file(e->d_name, &g);
        if (!kind) continue;
        out->files++;
        if (g != 1) out->creation = 0;
        if (kind == 2) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            sx_wal_probe_info pi;
            if (sx_wal_probe(path, &pi, NULL) < 0 ? pi.size > 0 : pi.size > pi.header) out->creation = 0;
        }
    }
    closedir(d);
    return 0;
}

/* Refuses logs of generations newer than the MANIFEST's that hold records:
 * writes acknowledged after a checkpoint the MANIFEST does not know of (a
 * checkpoint leaves the next log empty until its MANIFEST is in place). */
static int check_newer_logs(sx_store *st, int accept_loss, sx_err *err) {
    DIR *d = opendir(st->dir);
    if (!d) return sx_err_set(err, SX_EIO, "%s: cannot list: %s", st->dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        unsigned long long g;
        if (store_file(e->d_name, &g) != 2 || g <= st->generation) continue;
        char path[4096];
        path_of(path, sizeof path, st, e->d_name);
        sx_wal_probe_info pi;
        int prc = sx_wal_probe(path, &pi, NULL);
        if (prc == SX_ENOTFOUND || (prc == 0 && pi.size <= pi.header)) continue;
        if (accept_loss) {
            rc = set_log_aside(st, e->d_name, err);
            continue;
        }
        rc = sx_err_set(err, SX_ECORRUPT,
                        "%s holds %llu bytes of writes of generation %llu, but %s/MANIFEST names "
                        "generation %llu (a MANIFEST older than the log, as after a partial restore); "
                        "refusing to drop them%s",
                        path, (unsigned long long)pi.size, g, st->dir,
                        (unsigned long long)st->generation, k_override);
    }
    closedir(d);
    return rc;
}

static int create_contents(sx_store *st, const sx_store_opts *o, sx_err *err) {
    int rc;
    sx_wal *wal = NULL;
    st->coll.n_shards = o->n_shards;
    st->params = o->params;
    st->coll.dim = st->params.dim;
    st->coll.shards = calloc((size_t)st->coll.n_shards, sizeof *st->coll.shards);
    if (!st->coll.shards) return sx_err_set(err, SX_ENOMEM, "out of memory");
    if ((rc = create_shards(st, err)) < 0) return rc;
    st->collection_id = new_collection_id();
    st->generation = 1;
    remove_other_generations(st, 0); /* leftovers of a creation cut short */
    if ((rc = write_generation(st, 1, &wal, err)) < 0) return rc;
    st->wal = wal;
    return write_manifest(st, err);
}

/* Replays wal-G.log over the loaded snapshots (see the essay for what is
 * refused and what the override does). */
static int replay_log(sx_store *st, const sx_store_opts *o, sx_err *err) {
    char name[64], path[4096];
    wal_name(name, sizeof name, st->generation);
    path_of(path, sizeof path, st, name);
    sx_wal_replay_stats rs = {0};
    sx_wal_id id = {st->collection_id, st->generation};
    int rc = sx_wal_open(path, &id, o->accept_log_loss ? SX_WAL_SALVAGE : 0, replay_record, st, &rs,
                         &st->wal, err);
    if (rc < 0) {
        if (rc == SX_ENOTFOUND || rc == SX_ECORRUPT) {
            char msg[SX_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            sx_err_set(err, rc, "%.300s%s", msg, k_override);
        }
        return rc;
    }
    if (rs.records)
        sx_log(SX_LOG_INFO, "store: replayed %llu log records from %s", (unsigned long long)rs.records, path);
    if (rs.salvaged && (rc = set_log_aside(st, name, err)) < 0) return rc;
    if (rs.salvaged || st->collection_id == 0) {
        /* A new generation with a log of the current format: after the
         * override, so that the next start does not meet the bad log again;
         * for a version-1 collection, so that its log gets an id. */
        if (st->collection_id == 0) st->collection_id = new_collection_id();
        if ((rc = checkpoint_locked(st, err)) < 0) return rc;
        sx_log(SX_LOG_INFO, "store: %s now at generation %llu", st->dir, (unsigned long long)st->generation);
    }
    return 0;
}

/* Creates or recovers the store's contents; called from sx_store_open. */
static int open_contents(sx_store *st, const sx_store_opts *o, sx_err *err) {
    st->coll.pool = st->pool;
    int rc = read_manifest(st, err);
    if (rc == SX_ENOTFOUND) {
        dir_scan ds;
        if ((rc = scan_dir(st->dir, &ds, err)) < 0) return rc;
        if (ds.files && !ds.creation)
            return sx_err_set(err, SX_ECORRUPT, "%s/MANIFEST is missing, but the directory holds "
                              "collection files (snapshots or a log with records); refusing to "
                              "guess: restore the MANIFEST or the whole directory from a backup",
                              st->dir);
        if (!o->create)
            return sx_err_set(err, SX_ENOTFOUND, "%s holds no semdex collection (no MANIFEST); "
                              "`semdex ingest --data DIR` creates one", st->dir);
        return create_contents(st, o, err);
    }
    if (rc < 0) return rc;
    st->coll.dim = st->params.dim;
    st->coll.shards = calloc((size_t)st->coll.n_shards, sizeof *st->coll.shards);
    if (!st->coll.shards) return sx_err_set(err, SX_ENOMEM, "out of memory");
    if ((rc = check_newer_logs(st, o->accept_log_loss, err)) < 0) return rc;
    remove_other_generations(st, st->generation);
    if ((rc = load_snapshots(st, err)) < 0) return rc;
    return replay_log(st, o, err);
}

/* Checks dir before anything is written there: it must exist (or be
 * creatable, with opts->create) and, without opts->create, hold a MANIFEST
 * or the files of a collection. */
static int check_dir(const char *dir, const sx_store_opts *opts, sx_err *err) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT) return sx_err_set(err, SX_EIO, "%s: %s", dir, strerror(errno));
        if (!opts->create)
            return sx_err_set(err, SX_ENOTFOUND, "%s: no such directory, so no collection to open; "
                              "`semdex ingest --data DIR` creates one", dir);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return sx_err_set(err, SX_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(sb.st_mode)) return sx_err_set(err, SX_EINVAL, "%s: not a directory", dir);
    if (opts->create) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    if (access(path, F_OK) == 0) return 0;
    dir_scan ds;
    int rc = scan_dir(dir, &ds, err);
    if (rc < 0) return rc;
    if (ds.files && !ds.creation) return 0; /* open_contents says what is wrong */
    return sx_err_set(err, SX_ENOTFOUND, "%s holds no semdex collection (no MANIFEST); "
                      "`semdex ingest --data DIR` creates one", dir);
}

int sx_store_open(const char *dir, const sx_store_opts *opts, sx_store **out, sx_err *err) {
    double t0 = sx_now();
    *out = NULL;
    if (opts->n_shards < 1 || opts->n_shards > 256)
        return sx_err_set(err, SX_EINVAL, "shards must be in [1, 256], got %d", opts->n_shards);
    int rc = check_dir(dir, opts, err);
    if (rc < 0) return rc;
    sx_store *st = calloc(1, sizeof *st);
    if (!st || !(st->dir = strdup(dir))) {
        free(st);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    st->lock_fd = -1;
    st->checkpoint_bytes = opts->checkpoint_bytes ? opts->checkpoint_bytes : 512ull << 20;
    st->observe = opts->observe;
    st->observe_ctx = opts->observe_ctx;
    pthread_mutex_init(&st->wmu, NULL);
    sx_rwlock_init(&st->ckpt); /* writer-preferring: checkpoints are not starved */
    pthread_mutex_init(&st->bg_mu, NULL);
    pthread_cond_init(&st->bg_cv, NULL);
    int threads = opts->n_threads > 0 ? opts->n_threads : sx_cpu_count();
    rc = lock_dir(st, err);
    if (rc == 0) rc = sx_pool_create(threads - 1, &st->pool, err);
    if (rc == 0) rc = open_contents(st, opts, err);
    if (rc == 0) {
        if (pthread_create(&st->bg, NULL, checkpointer, st) != 0)
            rc = sx_err_set(err, SX_EIO, "cannot start the checkpoint thread");
        else
            st->bg_started = 1;
    }
    if (rc < 0) {
        sx_store_close(st);
        return rc;
    }
    st->open_seconds = sx_now() - t0;
    atomic_store(&st->info_generation, st->generation);
    atomic_store(&st->info_wal_bytes, sx_wal_size(st->wal));
    *out = st;
    return 0;
}

void sx_store_get_info(sx_store *st, sx_store_info *out) {
    memset(out, 0, sizeof *out);
    out->n_shards = st->coll.n_shards;
    out->params = st->params;
    out->replayed = st->replayed;
    out->open_seconds = st->open_seconds;
    out->generation = atomic_load(&st->info_generation);
    out->wal_bytes = atomic_load(&st->info_wal_bytes);
    sx_collection_add_info(&st->coll, out);
}

void sx_store_close(sx_store *st) {
    if (!st) return;
    if (st->bg_started) {
        pthread_mutex_lock(&st->bg_mu);
        st->bg_stop = 1;
        pthread_cond_signal(&st->bg_cv);
        pthread_mutex_unlock(&st->bg_mu);
        pthread_join(st->bg, NULL);
    }
    sx_wal_close(st->wal);
    sx_collection_release(&st->coll);
    sx_pool_free(st->pool);
    if (st->lock_fd >= 0) close(st->lock_fd);
    pthread_mutex_destroy(&st->wmu);
    pthread_rwlock_destroy(&st->ckpt);
    pthread_mutex_destroy(&st->bg_mu);
    pthread_cond_destroy(&st->bg_cv);
    free(st->dir);
    free(st);
}
