/*
 * module.c - semdex.so, the Redis module whose data type holds one shard.
 *
 * What it is. A key of type `semdex-sh` (encoding version 1) holds one
 * sx_shard: papers, their vectors, the HNSW graph and the category bitmaps.
 * The gateway hashes a paper id to one of S shard keys (hash tags spread
 * them over the cluster's masters) and fans each query out to all of them.
 * This file is the glue: commands, the type's callbacks, a worker pool. The
 * shard itself knows nothing of Redis; its allocator is routed to
 * RedisModule_Alloc at load, so Redis's memory accounting sees it.
 *
 * Commands (docs/redis-module.md has the exact protocol):
 *
 *     SEMDEX.UPSERT key id vector doc [id vector doc ...]  write
 *     SEMDEX.DEL key id                                    write
 *     SEMDEX.SEARCH key vector k ef [FILTER n c..] [WITHDOCS]  read, threaded
 *         [MODE VECTOR|KEYWORD|AUTHORS] [TEXT t] [AUTHORS n a..] [DATES from to]
 *     SEMDEX.GET key id / SEMDEX.INFO key                  read
 *     SEMDEX.CREATE key dim [options]                      write
 *     SEMDEX.UPSERTL key id level vector doc [...]         replication only
 *     SEMDEX.MAINTAIN key                                  write (housekeeping)
 *
 * Vectors travel as raw little-endian float32 bytes, documents in the one
 * record format of sx_doc_encode. An UPSERT checks every item with the
 * store's own rules (sx_doc_check, sx_vector_check) before applying any, so
 * a batch is all or nothing and a Redis-hosted shard refuses exactly what
 * the local store refuses.
 *
 * Threading. A search never runs on the event loop. The command parses and
 * checks its arguments, takes a reference on the key's value (an atomic
 * count, taken on the main thread, where keys are freed or replaced) and
 * blocks the client (RedisModule_BlockClient); a fixed pool of worker
 * threads (module argument `threads N`, default: the CPU count) takes jobs
 * from one FIFO queue, searches and unblocks the client with the hits; the
 * reply is written by the unblock callback on the main thread, and the
 * reference is dropped in the free callback. The value's free callback
 * drops the keyspace's own reference, so a DEL, FLUSHALL, SWAPDB, MIGRATE or
 * DEBUG RELOAD during a search frees the shard only when the last search on
 * it ends, on whichever thread that is. The shard is thread-safe for
 * searches in parallel with each other and with an upsert (see shard.c), so
 * no lock of the module's own is needed around it. Inside MULTI or a script,
 * where a client cannot block, the search runs inline.
 *
 * Rejected: a thread per search (unbounded threads under load); running
 * searches on Redis's main thread (a 5 ms graph walk stalls every client of
 * the node); a module-wide read-write lock in the style of vector-sets
 * (needed there because its HNSW is not safe against concurrent inserts;
 * ours is, and writes do not have to wait for searches); and threaded
 * writes (the replication stream must carry writes in the order they were
 * applied, which the main thread gives for free).
 *
 * Writes run on the main thread. An insert costs a search with
 * ef_construction plus the linking, about 0.3 ms in a 20K-paper shard on
 * the 2-core test machine, so a 500-paper UPSERT stalls the event loop for
 * about 140 ms (measured: 30 ms into an empty shard, 137 ms median and
 * 194 ms at most up to 20K), a 100-paper one for 30 ms: the gateway should
 * send batches of about 100
 * papers per key, and INFO semdex reports the longest write
 * (write_usec_max). Cutting a batch into slices across event-loop
 * iterations was rejected: the batch would no longer be one unit for
 * replication, the AOF and readers.
 *
 * Replication is deterministic. A replica that replayed the master's
 * commands would draw its own HNSW levels and build another graph, so the
 * same query could rank differently on master and replica. Instead the
 * master draws each paper's level, applies it with sx_shard_upsert_ex and
 * replicates SEMDEX.UPSERTL with the levels (never the UPSERT verbatim);
 * a replica inserts at those levels, in the same order, on one thread, and
 * builds the same graph, so a search answers with the same ids and scores.
 * Housekeeping (SQ8 training once 1024 vectors exist, vacuum of deleted
 * nodes, a fresh ranking) changes the graph too, so it must happen at the
 * same point of the stream: writes never maintain by themselves (the _ex
 * calls); after each write command the master asks the shard whether
 * housekeeping is due (sx_shard_maintenance_due, a few atomic loads), runs
 * it inline, and replicates a SEMDEX.MAINTAIN marker right after the write
 * in the same transaction; a replica, or a node loading its AOF, runs
 * housekeeping only at those markers. Training costs one pass over 1024
 * vectors (3 ms measured); a vacuum, due when 5% of the nodes are deleted,
 * repairs every list that points at them, on the event loop of master and
 * replica alike: 255 ms for 1,000 deleted nodes in a 20K shard (about
 * 0.25 ms per deleted node), the longest stall the module causes, and the
 * reason shard keys should stay small (tens of thousands of papers).
 * Rejected: a vacuum on a background thread (inserts running meanwhile
 * would link differently depending on timing, so replicas would diverge),
 * a timer-driven vacuum (its position in the stream would differ between
 * nodes) and a vacuum only on explicit command (deleted nodes would pile
 * up by default). One limit: a replica that synchronises from an RDB
 * file loads the graph's links exactly but ranks its nodes afresh (the
 * snapshot format has no ranks), and the rank order decides which links a
 * later pruning keeps, so after a full resynchronisation new inserts may
 * link slightly differently than on the master; the contents (and DEBUG
 * DIGEST-VALUE) stay equal, and searches agree except on near ties.
 *
 * Persistence. rdb_save streams sx_shard_save through a 1 MiB buffer into
 * RDB string chunks, ended by an empty chunk; rdb_load reads them back with
 * sx_shard_load, which copies the links and never rebuilds the graph. A
 * corrupt or truncated value fails the load (REDISMODULE_OPTIONS_
 * HANDLE_IO_ERRORS). aof_rewrite emits SEMDEX.CREATE and then one
 * SEMDEX.UPSERTL per paper with its level, with MAINTAIN markers every
 * 1024 papers (training happens where a standalone build does it). The
 * digest (DEBUG DIGEST-VALUE) covers ids, vectors and documents in id order
 * and not the links, so equal contents digest equally.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "redismodule.h"

#include "../shard/shard.h"

#define TYPE_NAME "semdex-sh"
#define ENCVER 1
#define CHUNK (1u << 20)   /* RDB chunk size */
#define MAX_THREADS 256
#define MAX_MSEARCH_KEYS 1024 /* keys of one SEMDEX.MSEARCH (the gateway's most shard keys) */
#define AOF_MAINTAIN_EVERY 1024

/* ---- the value of a key ---- */

/* A key's value: the shard and a reference count (the keyspace holds one,
 * each search in flight one more). */
typedef struct sx_key {
    sx_shard *shard;
    _Atomic long refs;
    _Atomic unsigned long long searches, search_usec;
    struct sx_key *prev, *next; /* every live value, for INFO semdex (g_list) */
    char name[64];              /* the key's name once known ("" before) */
} sx_key;

static RedisModuleType *g_type;

/* Module-wide counters for INFO semdex. */
static _Atomic long long g_keys, g_papers, g_mem;
static _Atomic unsigned long long g_searches, g_search_usec, g_write_usec_max, g_maint_usec_max;
static _Atomic unsigned long long g_maintenance_runs;
/* Every live value, for the per-shard lines of INFO semdex. */
static pthread_mutex_t g_list_mu = PTHREAD_MUTEX_INITIALIZER;
static sx_key *g_list;

/* Wraps a new shard in a key value (refs 1); NULL when out of memory. */
static sx_key *key_new(sx_shard *s) {
    sx_key *k = RedisModule_Calloc(1, sizeof *k);
    k->shard = s;
    atomic_store(&k->refs, 1);
    atomic_fetch_add(&g_keys, 1);
    atomic_fetch_add(&g_papers, (long long)sx_shard_count(s));
    pthread_mutex_lock(&g_list_mu);
    k->next = g_list;
    if (g_list) g_list->prev = k;
    g_list = k;
    pthread_mutex_unlock(&g_list_mu);
    return k;
}

/* Remembers the name of k's key (for INFO); the first name sticks. */
static void key_name(sx_key *k, const RedisModuleString *name) {
    if (!k || !name || k->name[0]) return;
    size_t len;
    const char *p = RedisModule_StringPtrLen(name, &len);
    if (len >= sizeof k->name) len = sizeof k->name - 1;
    memcpy(k->name, p, len);
    k->name[len] = '\0';
}

/* Drops one reference; the last frees the shard (on any thread). */
static void key_unref(sx_key *k) {
    if (atomic_fetch_sub(&k->refs, 1) != 1) return;
    pthread_mutex_lock(&g_list_mu);
    if (k->prev) k->prev->next = k->next;
    else g_list = k->next;
    if (k->next) k->next->prev = k->prev;
    pthread_mutex_unlock(&g_list_mu);
    atomic_fetch_sub(&g_keys, 1);
    atomic_fetch_sub(&g_papers, (long long)sx_shard_count(k->shard));
    sx_shard_free(k->shard);
    RedisModule_Free(k);
}

/* ---- the allocator: RedisModule_Alloc, with a byte count for INFO ---- */

/* malloc through Redis, counted in semdex_memory. */
static void *mod_malloc(size_t n) {
    void *p = RedisModule_Alloc(n ? n : 1);
    if (p) atomic_fetch_add(&g_mem, (long long)RedisModule_MallocSize(p));
    return p;
}

/* calloc through Redis, counted. */
static void *mod_calloc(size_t n, size_t m) {
    void *p = RedisModule_Calloc(n ? n : 1, m ? m : 1);
    if (p) atomic_fetch_add(&g_mem, (long long)RedisModule_MallocSize(p));
    return p;
}

/* realloc through Redis, counting the change. */
static void *mod_realloc(void *p, size_t n) {
    long long old = p ? (long long)RedisModule_MallocSize(p) : 0;
    void *q = RedisModule_Realloc(p, n ? n : 1);
    if (q) atomic_fetch_add(&g_mem, (long long)RedisModule_MallocSize(q) - old);
    return q;
}

/* free through Redis, uncounted. */
static void mod_free(void *p) {
    if (!p) return;
    atomic_fetch_sub(&g_mem, (long long)RedisModule_MallocSize(p));
    RedisModule_Free(p);
}

/* ---- small helpers ---- */

/* Microseconds of a monotonic clock. */
static unsigned long long now_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

/* Raises *max to v when v is larger. */
static void note_max(_Atomic unsigned long long *max, unsigned long long v) {
    unsigned long long m = atomic_load(max);
    while (v > m && !atomic_compare_exchange_weak(max, &m, v)) {
    }
}

/* Replies with "ERR <formatted message>"; returns REDISMODULE_OK. */
__attribute__((format(printf, 2, 3))) static int reply_err(RedisModuleCtx *ctx, const char *fmt, ...) {
    char msg[640] = "ERR ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + 4, sizeof msg - 4, fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++)
        if (*c == '\r' || *c == '\n') *c = ' ';
    RedisModule_ReplyWithError(ctx, msg);
    return REDISMODULE_OK;
}

/* 1 when the command came over the replication link or from the AOF: then
 * it is applied as it stands and housekeeping waits for the stream's
 * SEMDEX.MAINTAIN markers. */
static int is_follower(RedisModuleCtx *ctx) {
    int f = RedisModule_GetContextFlags(ctx);
    return (f & (REDISMODULE_CTX_FLAGS_REPLICATED | REDISMODULE_CTX_FLAGS_LOADING)) != 0;
}

/* The argument as sx_wire's functions take it. */
static sx_wire_arg wire_arg(RedisModuleString *s) {
    sx_wire_arg a;
    a.p = RedisModule_StringPtrLen(s, &a.len);
    return a;
}

/* Reads an integer argument in [lo, hi]; 0 or -1 (the rules of a search's
 * arguments, sx_wire_arg_int). */
static int arg_int(RedisModuleString *s, long long lo, long long hi, long long *out) {
    sx_wire_arg a = wire_arg(s);
    return sx_wire_arg_int(&a, lo, hi, out);
}

/* 1 when the string argument equals word (case-insensitive). */
static int arg_is(RedisModuleString *s, const char *word) {
    sx_wire_arg a = wire_arg(s);
    return sx_wire_arg_is(&a, word);
}

/* Opens key for mode; *out the value or NULL when empty. Replies WRONGTYPE
 * and returns -1 for a key of another type. */
static int open_key(RedisModuleCtx *ctx, RedisModuleString *name, int mode, RedisModuleKey **key,
                    sx_key **out) {
    *key = RedisModule_OpenKey(ctx, name, mode);
    *out = NULL;
    int t = RedisModule_KeyType(*key);
    if (t == REDISMODULE_KEYTYPE_EMPTY) return 0;
    if (t != REDISMODULE_KEYTYPE_MODULE || RedisModule_ModuleTypeGetType(*key) != g_type) {
        RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
        return -1;
    }
    *out = RedisModule_ModuleTypeGetValue(*key);
    key_name(*out, name);
    return 0;
}

/* Runs the housekeeping of k when due (master only) and replicates the
 * marker so replicas run it at the same point of the stream. */
static void maintain_if_due(RedisModuleCtx *ctx, RedisModuleString *name, sx_key *k) {
    if (is_follower(ctx) || !sx_shard_maintenance_due(k->shard)) return;
    unsigned long long t0 = now_usec();
    sx_err err = {0};
    if (sx_shard_maintain(k->shard, &err) < 0)
        RedisModule_Log(ctx, "warning", "semdex: housekeeping failed: %s", err.msg);
    note_max(&g_maint_usec_max, now_usec() - t0);
    atomic_fetch_add(&g_maintenance_runs, 1);
    RedisModule_Replicate(ctx, "SEMDEX.MAINTAIN", "s", name);
}

/* ---- SEMDEX.UPSERT / SEMDEX.UPSERTL ---- */

typedef struct item {
    float *vec;
    sx_doc doc;
    int level;
} item;

/* Parses and checks every item of an upsert (stride 3, or 4 with levels).
 * Returns the item array (RedisModule_Alloc) or NULL after replying. */
static item *parse_items(RedisModuleCtx *ctx, RedisModuleString **argv, int n, int stride, int *dim) {
    item *it = RedisModule_Calloc((size_t)n, sizeof *it);
    int i;
    for (i = 0; i < n; i++) {
        RedisModuleString **a = argv + 2 + (size_t)i * (size_t)stride;
        size_t idlen, dlen;
        const char *id = RedisModule_StringPtrLen(a[0], &idlen);
        const void *db = RedisModule_StringPtrLen(a[stride - 1], &dlen);
        sx_err err = {0};
        long long level = -1;
        if (stride == 4 && arg_int(a[1], 0, 15, &level) < 0) {
            reply_err(ctx, "item %d: level must be an integer in 0..15", i);
            break;
        }
        it[i].level = (int)level;
        size_t vlen;
        const void *vb = RedisModule_StringPtrLen(a[stride - 2], &vlen);
        int vn = sx_wire_vector_len(vlen, *dim, &err);
        if (vn < 0) {
            reply_err(ctx, "item %d: %s", i, err.msg);
            break;
        }
        it[i].vec = RedisModule_Alloc(vlen);
        if (!*dim) *dim = vn;
        if (sx_wire_item(id, idlen, vb, vlen, db, dlen, it[i].vec, &it[i].doc, &err) < 0) {
            reply_err(ctx, "item %d: %s", i, err.msg);
            break;
        }
    }
    if (i == n) return it;
    for (int j = 0; j < n; j++) RedisModule_Free(it[j].vec);
    RedisModule_Free(it);
    return NULL;
}

/* Upserts n items into the key (created with default parameters when
 * empty); with_levels: the items carry levels (UPSERTL). */
static int upsert_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int with_levels) {
    int stride = with_levels ? 4 : 3;
    if (argc < 2 + stride || (argc - 2) % stride != 0) return RedisModule_WrongArity(ctx);
    if (with_levels && !is_follower(ctx))
        return reply_err(ctx, "SEMDEX.UPSERTL is internal: it is accepted from the master and the AOF only");
    unsigned long long t0 = now_usec();
    RedisModuleKey *key;
    sx_key *k;
    if (open_key(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &k) < 0) {
        RedisModule_CloseKey(key);
        return REDISMODULE_OK;
    }
    int n = (argc - 2) / stride;
    int dim = k ? sx_shard_get_params(k->shard).dim : 0;
    item *it = parse_items(ctx, argv, n, stride, &dim);
    if (!it) {
        RedisModule_CloseKey(key);
        return REDISMODULE_OK;
    }
    sx_err err = {0};
    int created = !k;
    if (!k) {
        sx_shard_params p = sx_shard_params_default();
        p.dim = dim;
        sx_shard *s;
        if (sx_shard_create(&p, &s, &err) < 0) {
            reply_err(ctx, "%s", err.msg);
            goto out;
        }
        k = key_new(s);
        key_name(k, argv[1]);
        RedisModule_ModuleTypeSetValue(key, g_type, k);
    }
    /* the replicated form: key, then id level vector doc per applied item */
    RedisModuleString **rv = RedisModule_Alloc(sizeof *rv * (1 + 4 * (size_t)n));
    rv[0] = argv[1];
    int done = 0, rc = 0;
    size_t before = sx_shard_count(k->shard);
    for (; done < n; done++) {
        RedisModuleString **a = argv + 2 + (size_t)done * (size_t)stride;
        int level = it[done].level;
        rc = sx_shard_upsert_ex(k->shard, &it[done].doc, it[done].vec, &level, &err);
        if (rc < 0) break;
        rv[1 + 4 * done] = a[0];
        rv[2 + 4 * done] = RedisModule_CreateStringFromLongLong(ctx, level);
        rv[3 + 4 * done] = a[stride - 2];
        rv[4 + 4 * done] = a[stride - 1];
    }
    atomic_fetch_add(&g_papers, (long long)sx_shard_count(k->shard) - (long long)before);
    if (done > 0 && !with_levels) RedisModule_Replicate(ctx, "SEMDEX.UPSERTL", "v", rv, (size_t)(1 + 4 * done));
    for (int i = 0; i < done; i++) RedisModule_FreeString(ctx, rv[2 + 4 * i]);
    RedisModule_Free(rv);
    if (done > 0) {
        RedisModule_SignalModifiedKey(ctx, argv[1]);
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_MODULE, "semdex.upsert", argv[1]);
        maintain_if_due(ctx, argv[1], k);
    }
    if (created && done == 0) RedisModule_DeleteKey(key); /* nothing to replicate: no key */
    if (rc < 0) reply_err(ctx, "item %d: %s (%d applied before it)", done, err.msg, done);
    else RedisModule_ReplyWithLongLong(ctx, done);
    note_max(&g_write_usec_max, now_usec() - t0);
out:
    for (int j = 0; j < n; j++) RedisModule_Free(it[j].vec);
    RedisModule_Free(it);
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* SEMDEX.UPSERT key id vector doc [id vector doc ...] -> papers upserted */
static int cmd_upsert(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    return upsert_command(ctx, argv, argc, 0);
}

/* SEMDEX.UPSERTL key id level vector doc [...] -> papers upserted (from the
 * master or the AOF only) */
static int cmd_upsertl(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    return upsert_command(ctx, argv, argc, 1);
}

/* ---- SEMDEX.DEL, SEMDEX.MAINTAIN, SEMDEX.CREATE ---- */

/* SEMDEX.DEL key id -> 1 deleted, 0 unknown id or no key */
static int cmd_del(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key;
    sx_key *k;
    if (open_key(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &k) < 0) goto out;
    if (!k) {
        RedisModule_ReplyWithLongLong(ctx, 0);
        goto out;
    }
    unsigned long long t0 = now_usec();
    const char *id = RedisModule_StringPtrLen(argv[2], NULL);
    int rc = sx_shard_delete_ex(k->shard, id, NULL);
    if (rc == 0) {
        atomic_fetch_sub(&g_papers, 1);
        RedisModule_ReplicateVerbatim(ctx);
        RedisModule_SignalModifiedKey(ctx, argv[1]);
        RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_MODULE, "semdex.del", argv[1]);
        maintain_if_due(ctx, argv[1], k);
    }
    RedisModule_ReplyWithLongLong(ctx, rc == 0);
    note_max(&g_write_usec_max, now_usec() - t0);
out:
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* SEMDEX.MAINTAIN key -> OK: runs the shard's housekeeping now (the marker
 * the master replicates; harmless from a client, and replicated then) */
static int cmd_maintain(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key;
    sx_key *k;
    if (open_key(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &k) < 0) goto out;
    if (k) {
        unsigned long long t0 = now_usec();
        sx_err err = {0};
        if (sx_shard_maintain(k->shard, &err) < 0)
            RedisModule_Log(ctx, "warning", "semdex: housekeeping failed: %s", err.msg);
        note_max(&g_maint_usec_max, now_usec() - t0);
        atomic_fetch_add(&g_maintenance_runs, 1);
        RedisModule_ReplicateVerbatim(ctx);
    }
    RedisModule_ReplyWithSimpleString(ctx, "OK");
out:
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* SEMDEX.CREATE key dim [M m] [EF_CONSTRUCTION n] [EF_SEARCH n]
 * [STORAGE fp32|sq8] [RERANK n] -> OK; an error when the key exists with
 * other parameters */
static int cmd_create(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3 || argc % 2 != 1) return RedisModule_WrongArity(ctx);
    sx_shard_params p = sx_shard_params_default();
    long long v;
    if (arg_int(argv[2], 1, SX_INDEX_MAX_DIM, &v) < 0) return reply_err(ctx, "dim must be an integer in 1..%d", SX_INDEX_MAX_DIM);
    p.dim = (int)v;
    for (int i = 3; i < argc; i += 2) {
        if (arg_is(argv[i], "STORAGE")) {
            if (arg_is(argv[i + 1], "fp32")) p.storage = SX_STORAGE_FP32;
            else if (arg_is(argv[i + 1], "sq8")) p.storage = SX_STORAGE_SQ8;
            else return reply_err(ctx, "STORAGE must be fp32 or sq8");
            continue;
        }
        int *dst = arg_is(argv[i], "M") ? &p.M
                 : arg_is(argv[i], "EF_CONSTRUCTION") ? &p.ef_construction
                 : arg_is(argv[i], "EF_SEARCH") ? &p.ef_search
                 : arg_is(argv[i], "RERANK") ? &p.rerank : NULL;
        if (!dst) return reply_err(ctx, "unknown option '%s'", RedisModule_StringPtrLen(argv[i], NULL));
        if (arg_int(argv[i + 1], 0, 100000, &v) < 0)
            return reply_err(ctx, "%s must be an integer in 0..100000", RedisModule_StringPtrLen(argv[i], NULL));
        *dst = (int)v;
    }
    if (p.storage == SX_STORAGE_FP32) p.rerank = 0;
    RedisModuleKey *key;
    sx_key *k;
    if (open_key(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, &key, &k) < 0) goto out;
    if (k) {
        sx_shard_params q = sx_shard_get_params(k->shard);
        if (memcmp(&p, &q, sizeof p) != 0)
            reply_err(ctx, "key exists with other parameters (dim %d M %d EF_CONSTRUCTION %d EF_SEARCH %d STORAGE %s RERANK %d)",
                      q.dim, q.M, q.ef_construction, q.ef_search, q.storage == SX_STORAGE_SQ8 ? "sq8" : "fp32", q.rerank);
        else RedisModule_ReplyWithSimpleString(ctx, "OK");
        goto out;
    }
    sx_shard *s;
    sx_err err = {0};
    if (sx_shard_create(&p, &s, &err) < 0) {
        reply_err(ctx, "%s", err.msg);
        goto out;
    }
    k = key_new(s);
    key_name(k, argv[1]);
    RedisModule_ModuleTypeSetValue(key, g_type, k);
    RedisModule_ReplicateVerbatim(ctx);
    RedisModule_ReplyWithSimpleString(ctx, "OK");
out:
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* ---- SEMDEX.GET, SEMDEX.INFO ---- */

/* SEMDEX.GET key id -> nil, or [doc, vector] */
static int cmd_get(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key;
    sx_key *k;
    if (open_key(ctx, argv[1], REDISMODULE_READ, &key, &k) < 0) goto out;
    const char *id = RedisModule_StringPtrLen(argv[2], NULL);
    sx_doc *d = NULL;
    if (!k) {
        reply_err(ctx, "no such key");
        goto out;
    }
    if (sx_shard_get(k->shard, id, &d, NULL) < 0) {
        RedisModule_ReplyWithNull(ctx);
        goto out;
    }
    int dim = sx_shard_get_params(k->shard).dim;
    float *v = RedisModule_Alloc((size_t)dim * 4);
    uint8_t *b = RedisModule_Alloc((size_t)dim * 4);
    void *enc = NULL;
    size_t len = 0;
    sx_err err = {0};
    if (sx_shard_get_vector(k->shard, id, v, &err) < 0 || sx_doc_encode(d, &enc, &len, &err) < 0) {
        reply_err(ctx, "%s", err.msg);
    } else {
        sx_le32_copy(b, v, (size_t)dim); /* little-endian on the wire */
        RedisModule_ReplyWithArray(ctx, 2);
        RedisModule_ReplyWithStringBuffer(ctx, enc, len);
        RedisModule_ReplyWithStringBuffer(ctx, (const char *)b, (size_t)dim * 4);
    }
    free(enc);
    free(d);
    RedisModule_Free(v);
    RedisModule_Free(b);
out:
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* All memory of a shard, in bytes. */
static size_t shard_bytes(const struct sx_shard_stats *st) {
    return st->bytes_vectors + st->bytes_fp32 + st->bytes_graph + st->bytes_documents + st->bytes_bitmaps +
           st->bytes_idmap;
}

/* SEMDEX.INFO key -> flat array of field/value pairs */
static int cmd_info(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key;
    sx_key *k;
    if (open_key(ctx, argv[1], REDISMODULE_READ, &key, &k) < 0) goto out;
    if (!k) {
        reply_err(ctx, "no such key");
        goto out;
    }
    struct sx_shard_stats st;
    sx_shard_stats(k->shard, &st);
    sx_shard_params p = sx_shard_get_params(k->shard);
    const char *names[] = {"papers", "deleted", "dim", "m", "ef_construction", "ef_search", "storage",
                           "bytes_vectors", "bytes_graph", "bytes_documents", "bytes_total", "searches",
                           "search_usec_total", "levels"};
    long long vals[] = {(long long)st.count, (long long)st.deleted, p.dim, p.M, p.ef_construction, p.ef_search, 0,
                        (long long)(st.bytes_vectors + st.bytes_fp32), (long long)st.bytes_graph,
                        (long long)st.bytes_documents, (long long)shard_bytes(&st),
                        (long long)atomic_load(&k->searches), (long long)atomic_load(&k->search_usec), st.levels};
    int n = (int)(sizeof names / sizeof *names);
    RedisModule_ReplyWithArray(ctx, 2 * n);
    for (int i = 0; i < n; i++) {
        RedisModule_ReplyWithSimpleString(ctx, names[i]);
        if (i == 6) RedisModule_ReplyWithSimpleString(ctx, p.storage == SX_STORAGE_SQ8 ? "sq8" : "fp32");
        else RedisModule_ReplyWithLongLong(ctx, vals[i]);
    }
out:
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* ---- SEMDEX.SEARCH and the worker pool ---- */

/* One search: arguments in, hits (and documents) out. A SEMDEX.SEARCH
 * has one key; a SEMDEX.MSEARCH the keys of its list that this node holds,
 * whose hits are merged here, and the names of those it does not. */
typedef struct job {
    struct job *next;
    RedisModuleBlockedClient *bc;
    sx_key **keys;      /* references taken on the main thread */
    int n_keys;
    int multi;          /* MSEARCH: the reply is [hits, missing keys] */
    char **missing;     /* MSEARCH: the listed keys not held here */
    size_t *missing_lens;
    int n_missing;
    sx_wire_search w;   /* the parsed arguments: options, vector, WITHDOCS */
    sx_hit *hits;       /* room for k hits per key */
    int n_hits;
    void **docs;        /* WITHDOCS: encoded records (malloc'd) */
    size_t *doc_lens;
    int rc;
    sx_err err;
} job;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    int n_threads;
    _Atomic long depth, busy;
} g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0};

/* Frees a job and drops its key references. */
static void job_free(job *j) {
    if (!j) return;
    for (int i = 0; i < j->n_keys; i++) key_unref(j->keys[i]);
    for (int i = 0; i < j->n_missing; i++) RedisModule_Free(j->missing[i]);
    for (int i = 0; j->docs && i < j->n_hits; i++) free(j->docs[i]);
    sx_wire_search_free(&j->w);
    RedisModule_Free(j->keys);
    RedisModule_Free(j->missing);
    RedisModule_Free(j->missing_lens);
    RedisModule_Free(j->docs);
    RedisModule_Free(j->doc_lens);
    RedisModule_Free(j->hits);
    RedisModule_Free(j);
}

/* Runs a search job (any thread): each key in turn, the hits merged best
 * first (sx_hits_merge, as the gateway and the local store merge). The
 * hits carry their documents (copied by the shard while the search holds
 * the nodes); only the merged top k are encoded for the reply. */
static void job_run(job *j) {
    j->w.o.with_docs = j->w.withdocs;
    int total = 0;
    j->rc = 0;
    for (int i = 0; i < j->n_keys && j->rc == 0; i++) {
        unsigned long long t0 = now_usec();
        int n = 0;
        j->rc = sx_shard_search(j->keys[i]->shard, j->w.q, &j->w.o, j->hits + total, &n, NULL, &j->err);
        if (j->rc == 0) total += n;
        unsigned long long us = now_usec() - t0;
        atomic_fetch_add(&j->keys[i]->searches, 1);
        atomic_fetch_add(&j->keys[i]->search_usec, us);
        atomic_fetch_add(&g_searches, 1);
        atomic_fetch_add(&g_search_usec, us);
    }
    if (j->rc < 0) {
        sx_hits_release(j->hits, total);
        return;
    }
    j->n_hits = j->n_keys > 1 ? sx_hits_merge(j->hits, total, j->w.o.k) : total;
    if (j->w.withdocs) {
        j->docs = RedisModule_Calloc((size_t)j->n_hits + 1, sizeof *j->docs);
        j->doc_lens = RedisModule_Calloc((size_t)j->n_hits + 1, sizeof *j->doc_lens);
        for (int i = 0; i < j->n_hits && j->rc == 0; i++)
            j->rc = sx_doc_encode(j->hits[i].doc, &j->docs[i], &j->doc_lens[i], &j->err);
        if (j->rc < 0) {
            for (int i = 0; i < j->n_hits; i++) free(j->docs[i]);
            memset(j->docs, 0, (size_t)j->n_hits * sizeof *j->docs);
        }
    }
    sx_hits_release(j->hits, j->n_hits);
}

/* Writes a finished job's reply. */
static void job_reply(RedisModuleCtx *ctx, job *j) {
    if (j->rc < 0) {
        reply_err(ctx, "%s", j->err.msg);
        return;
    }
    if (j->multi) RedisModule_ReplyWithArray(ctx, 2);
    RedisModule_ReplyWithArray(ctx, j->n_hits);
    for (int i = 0; i < j->n_hits; i++) {
        RedisModule_ReplyWithArray(ctx, j->w.withdocs ? 3 : 2);
        RedisModule_ReplyWithStringBuffer(ctx, j->hits[i].id, strlen(j->hits[i].id));
        RedisModule_ReplyWithDouble(ctx, (double)j->hits[i].score);
        if (j->w.withdocs) RedisModule_ReplyWithStringBuffer(ctx, j->docs[i], j->doc_lens[i]);
    }
    if (!j->multi) return;
    RedisModule_ReplyWithArray(ctx, j->n_missing);
    for (int i = 0; i < j->n_missing; i++) RedisModule_ReplyWithStringBuffer(ctx, j->missing[i], j->missing_lens[i]);
}

/* A worker: takes jobs first in, first out, forever. */
static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_pool.mu);
        while (!g_pool.head) pthread_cond_wait(&g_pool.cv, &g_pool.mu);
        job *j = g_pool.head;
        g_pool.head = j->next;
        if (!g_pool.head) g_pool.tail = NULL;
        pthread_mutex_unlock(&g_pool.mu);
        atomic_fetch_sub(&g_pool.depth, 1);
        atomic_fetch_add(&g_pool.busy, 1);
        job_run(j);
        atomic_fetch_sub(&g_pool.busy, 1);
        RedisModule_UnblockClient(j->bc, j);
    }
    return NULL;
}

/* Queues a job for the workers (main thread). */
static void pool_push(job *j) {
    j->next = NULL;
    atomic_fetch_add(&g_pool.depth, 1);
    pthread_mutex_lock(&g_pool.mu);
    if (g_pool.tail) g_pool.tail->next = j;
    else g_pool.head = j;
    g_pool.tail = j;
    pthread_cond_signal(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
}

/* Starts n detached workers; 0 or -1. */
static int pool_start(int n) {
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &a, worker, NULL);
        pthread_attr_destroy(&a);
        if (rc != 0) return -1;
        g_pool.n_threads++;
    }
    return 0;
}

/* The unblock callback: writes the search reply on the main thread. */
static int search_reply_cb(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    job_reply(ctx, RedisModule_GetBlockedClientPrivateData(ctx));
    return REDISMODULE_OK;
}

/* Frees a finished job, dropping its key reference (also when the client
 * went away before the reply). */
static void search_free_cb(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    job_free(privdata);
}

/* Parses a search's arguments, argv[at..] = vector k ef [options]
 * (sx_wire_search_parse: the same code the fuzz target runs), into a new
 * job with room for k hits for each of n_keys keys; vectors must have dim
 * floats (0: any length). NULL after replying with the error. */
static job *parse_search(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, int at, int dim,
                         int n_keys) {
    int n = argc - at;
    sx_wire_arg *a = RedisModule_Calloc((size_t)(n > 0 ? n : 1), sizeof *a);
    for (int i = 0; i < n; i++) a[i] = wire_arg(argv[at + i]);
    job *j = RedisModule_Calloc(1, sizeof *j);
    sx_err err = {0};
    int rc = sx_wire_search_parse(a, n, at, dim, &j->w, &err);
    RedisModule_Free(a);
    if (rc < 0) {
        reply_err(ctx, "%s", err.msg);
        RedisModule_Free(j);
        return NULL;
    }
    j->hits = RedisModule_Calloc((size_t)j->w.o.k * (size_t)(n_keys > 0 ? n_keys : 1), sizeof *j->hits);
    j->keys = RedisModule_Calloc((size_t)(n_keys > 0 ? n_keys : 1), sizeof *j->keys);
    return j;
}

/* Adds a reference on k to the job (main thread). */
static void job_add_key(job *j, sx_key *k) {
    atomic_fetch_add(&k->refs, 1);
    j->keys[j->n_keys++] = k;
}

/* Runs a parsed job: on a worker, the client blocked until it ends; inline
 * inside MULTI or a script, where a client cannot block. */
static void job_start(RedisModuleCtx *ctx, job *j) {
    if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_DENY_BLOCKING) {
        job_run(j);
        job_reply(ctx, j);
        job_free(j);
        return;
    }
    j->bc = RedisModule_BlockClient(ctx, search_reply_cb, NULL, search_free_cb, 0);
    pool_push(j);
}

/* SEMDEX.SEARCH key vector k ef [FILTER n cat ...] [WITHDOCS] [MODE m]
 * [TEXT t] [AUTHORS n name ...] [DATES from to] -> [[id, score, doc?] ...]
 * best first (sx_shard_search); the vector is empty unless MODE is VECTOR
 * (the default); an error for a missing key */
static int cmd_search(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 5) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key;
    sx_key *k;
    if (open_key(ctx, argv[1], REDISMODULE_READ, &key, &k) == 0) {
        job *j = parse_search(ctx, argv, argc, 2, k ? sx_shard_get_params(k->shard).dim : 0, 1);
        if (j && !k) { /* an error, not an empty result: see the gateway's exec_reads */
            reply_err(ctx, "no such key");
            job_free(j);
        } else if (j) {
            job_add_key(j, k);
            job_start(ctx, j);
        }
    }
    RedisModule_CloseKey(key);
    return REDISMODULE_OK;
}

/* 1 when this node is in a cluster it believes down (CLUSTER INFO's
 * cluster_state). Redis refuses keyed commands then; MSEARCH, whose keys
 * Redis does not see, must do the same itself, so that a master cut off
 * from the majority stops answering as SEARCH does. CLUSTER INFO formats
 * a page of figures (tens of microseconds), so its answer is kept for
 * CLUSTER_STATE_TTL_US, far below cluster-node-timeout (main thread only). */
#define CLUSTER_STATE_TTL_US 100000ull
static int cluster_down(RedisModuleCtx *ctx) {
    static unsigned long long checked_at;
    static int down;
    if (!(RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_CLUSTER)) return 0;
    unsigned long long now = now_usec();
    if (checked_at && now - checked_at < CLUSTER_STATE_TTL_US) return down;
    RedisModuleCallReply *r = RedisModule_Call(ctx, "CLUSTER", "c", "INFO");
    size_t len = 0;
    const char *p = r && RedisModule_CallReplyType(r) == REDISMODULE_REPLY_STRING
                        ? RedisModule_CallReplyStringPtr(r, &len)
                        : NULL;
    static const char ok[] = "cluster_state:ok";
    down = !p || len < sizeof ok - 1 || memcmp(p, ok, sizeof ok - 1) != 0;
    if (r) RedisModule_FreeCallReply(r);
    checked_at = now;
    return down;
}

/* SEMDEX.MSEARCH numkeys key [key ...] vector k ef [options as SEARCH]
 * -> [[[id, score, doc?] ...], [missing key ...]]: one search over the
 * listed keys this node holds, merged best first to k, and the names of
 * the listed keys it does not hold. The keys are not declared to Redis
 * (the command has no key spec): a node answers for the keys it holds,
 * whichever slots it serves, so a gateway can ask each node once for all
 * its shard keys instead of once per key; the gateway lists each key to
 * the node its slot map names and searches the missing ones with
 * SEMDEX.SEARCH, which Redis Cluster routes (docs/redis-module.md). */
static int cmd_msearch(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long long nk;
    if (argc < 6) return RedisModule_WrongArity(ctx);
    if (cluster_down(ctx)) return RedisModule_ReplyWithError(ctx, "CLUSTERDOWN The cluster is down");
    if (arg_int(argv[1], 1, MAX_MSEARCH_KEYS, &nk) < 0 || 2 + nk + 3 > argc) {
        reply_err(ctx, "numkeys must be in 1..%d and be followed by that many keys, a vector, k and ef",
                  MAX_MSEARCH_KEYS);
        return REDISMODULE_OK;
    }
    int n = (int)nk, dim = 0;
    sx_key **held = RedisModule_Calloc((size_t)n, sizeof *held);
    for (int i = 0; i < n; i++) {
        RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[2 + i], REDISMODULE_READ);
        int t = RedisModule_KeyType(key);
        if (t != REDISMODULE_KEYTYPE_EMPTY &&
            (t != REDISMODULE_KEYTYPE_MODULE || RedisModule_ModuleTypeGetType(key) != g_type)) {
            RedisModule_CloseKey(key);
            RedisModule_Free(held);
            RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
            return REDISMODULE_OK;
        }
        if (t != REDISMODULE_KEYTYPE_EMPTY) {
            held[i] = RedisModule_ModuleTypeGetValue(key);
            key_name(held[i], argv[2 + i]);
            for (int e = 0; e < i; e++)
                if (held[e] == held[i]) {
                    RedisModule_CloseKey(key);
                    RedisModule_Free(held);
                    reply_err(ctx, "key %d is listed twice", i + 1);
                    return REDISMODULE_OK;
                }
            int d = sx_shard_get_params(held[i]->shard).dim;
            if (dim && d != dim) {
                RedisModule_CloseKey(key);
                RedisModule_Free(held);
                reply_err(ctx, "the keys hold vectors of different dimensions (%d and %d)", dim, d);
                return REDISMODULE_OK;
            }
            dim = d;
        }
        RedisModule_CloseKey(key);
    }
    job *j = parse_search(ctx, argv, argc, 2 + n, dim, n);
    if (j) {
        j->multi = 1;
        j->missing = RedisModule_Calloc((size_t)n, sizeof *j->missing);
        j->missing_lens = RedisModule_Calloc((size_t)n, sizeof *j->missing_lens);
        for (int i = 0; i < n; i++) {
            if (held[i]) {
                job_add_key(j, held[i]);
                continue;
            }
            size_t len;
            const char *z = RedisModule_StringPtrLen(argv[2 + i], &len);
            j->missing[j->n_missing] = RedisModule_Alloc(len + 1);
            memcpy(j->missing[j->n_missing], z, len);
            j->missing_lens[j->n_missing++] = len;
        }
        job_start(ctx, j);
    }
    RedisModule_Free(held);
    return REDISMODULE_OK;
}

/* ---- the data type ---- */

/* RDB writer: a 1 MiB buffer flushed as string chunks. */
typedef struct rdb_out {
    RedisModuleIO *io;
    char *buf;
    size_t used;
} rdb_out;

/* sx_write_fn: appends to the buffer, saving each full 1 MiB as a chunk. */
static int rdb_write(void *ctx, const void *buf, size_t len) {
    rdb_out *o = ctx;
    const char *p = buf;
    while (len) {
        size_t n = CHUNK - o->used < len ? CHUNK - o->used : len;
        memcpy(o->buf + o->used, p, n);
        o->used += n;
        p += n;
        len -= n;
        if (o->used == CHUNK) {
            RedisModule_SaveStringBuffer(o->io, o->buf, o->used);
            o->used = 0;
        }
    }
    return 0;
}

/* Saves the shard as string chunks of up to 1 MiB, then an empty chunk. */
static void type_rdb_save(RedisModuleIO *io, void *value) {
    sx_key *k = value;
    rdb_out o = {io, RedisModule_Alloc(CHUNK), 0};
    sx_err err = {0};
    if (sx_shard_save(k->shard, rdb_write, &o, &err) < 0)
        RedisModule_LogIOError(io, "warning", "semdex: saving a shard failed: %s", err.msg);
    if (o.used) RedisModule_SaveStringBuffer(io, o.buf, o.used);
    RedisModule_SaveStringBuffer(io, "", 0);
    RedisModule_Free(o.buf);
}

/* RDB reader over the chunks. */
typedef struct rdb_in {
    RedisModuleIO *io;
    char *buf;
    size_t len, pos;
    int end;
} rdb_in;

/* sx_read_fn: exactly len bytes across chunks; SX_EIO on an RDB error,
 * SX_ECORRUPT when the chunks end first. */
static int rdb_read(void *ctx, void *buf, size_t len) {
    rdb_in *in = ctx;
    char *p = buf;
    while (len) {
        if (in->pos == in->len) {
            if (in->end) return SX_ECORRUPT;
            if (in->buf) RedisModule_Free(in->buf);
            in->buf = RedisModule_LoadStringBuffer(in->io, &in->len);
            in->pos = 0;
            if (RedisModule_IsIOError(in->io)) {
                in->buf = NULL;
                in->len = 0;
                return SX_EIO;
            }
            if (in->len == 0) {
                in->end = 1;
                return SX_ECORRUPT;
            }
        }
        size_t n = in->len - in->pos < len ? in->len - in->pos : len;
        memcpy(p, in->buf + in->pos, n);
        in->pos += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* Loads a shard saved by type_rdb_save; NULL on corrupt input. */
static void *type_rdb_load(RedisModuleIO *io, int encver) {
    if (encver != ENCVER) {
        RedisModule_LogIOError(io, "warning", "semdex: shard encoding version %d, this module reads %d", encver, ENCVER);
        return NULL;
    }
    rdb_in in = {io, NULL, 0, 0, 0};
    sx_shard *s = NULL;
    sx_err err = {0};
    int rc = sx_shard_load(rdb_read, &in, &s, &err);
    /* the snapshot must end exactly at the end of a chunk, then the empty one */
    if (rc == 0 && (in.pos != in.len || in.end)) rc = sx_err_set(&err, SX_ECORRUPT, "extra bytes after the shard");
    if (rc == 0) {
        if (in.buf) RedisModule_Free(in.buf);
        in.buf = RedisModule_LoadStringBuffer(io, &in.len);
        if (RedisModule_IsIOError(io)) in.buf = NULL, rc = sx_err_set(&err, SX_EIO, "truncated");
        else if (in.len != 0) rc = sx_err_set(&err, SX_ECORRUPT, "extra chunk after the shard");
    }
    if (in.buf) RedisModule_Free(in.buf);
    if (rc < 0) {
        RedisModule_LogIOError(io, "warning", "semdex: loading a shard failed: %s", err.msg);
        sx_shard_free(s);
        return NULL;
    }
    sx_key *k = key_new(s);
    key_name(k, RedisModule_GetKeyNameFromIO(io));
    return k;
}

typedef struct aof_ctx {
    RedisModuleIO *io;
    RedisModuleString *key;
    int dim;
    uint8_t *buf;
    void *enc;
    size_t n;
} aof_ctx;

/* sx_shard_each callback: one SEMDEX.UPSERTL per paper, a MAINTAIN marker
 * every AOF_MAINTAIN_EVERY papers. 0 or SX_ENOMEM. */
static int aof_one(void *ctx, const sx_doc *d, const float *vec, int level) {
    aof_ctx *a = ctx;
    size_t len;
    if (sx_doc_encode(d, &a->enc, &len, NULL) < 0) return SX_ENOMEM;
    sx_le32_copy(a->buf, vec, (size_t)a->dim);
    RedisModule_EmitAOF(a->io, "SEMDEX.UPSERTL", "sclbb", a->key, d->id, (long long)level, (const char *)a->buf,
                        (size_t)a->dim * 4, (const char *)a->enc, len);
    free(a->enc);
    a->enc = NULL;
    if (++a->n % AOF_MAINTAIN_EVERY == 0) RedisModule_EmitAOF(a->io, "SEMDEX.MAINTAIN", "s", a->key);
    return 0;
}

/* Rewrites the key as SEMDEX.CREATE, SEMDEX.UPSERTL per paper (with its
 * level) and SEMDEX.MAINTAIN markers. */
static void type_aof_rewrite(RedisModuleIO *io, RedisModuleString *key, void *value) {
    sx_key *k = value;
    sx_shard_params p = sx_shard_get_params(k->shard);
    RedisModule_EmitAOF(io, "SEMDEX.CREATE", "slclclclcccl", key, (long long)p.dim, "M", (long long)p.M,
                        "EF_CONSTRUCTION", (long long)p.ef_construction, "EF_SEARCH", (long long)p.ef_search,
                        "STORAGE", p.storage == SX_STORAGE_SQ8 ? "sq8" : "fp32", "RERANK", (long long)p.rerank);
    aof_ctx a = {io, key, p.dim, RedisModule_Alloc((size_t)p.dim * 4), NULL, 0};
    sx_err err = {0};
    if (sx_shard_each(k->shard, aof_one, &a, &err) < 0)
        RedisModule_LogIOError(io, "warning", "semdex: AOF rewrite of a shard failed: %s", err.msg);
    RedisModule_EmitAOF(io, "SEMDEX.MAINTAIN", "s", key);
    RedisModule_Free(a.buf);
}

/* MEMORY USAGE: every byte of the shard (SEMDEX.INFO bytes_total). */
static size_t type_mem_usage(const void *value) {
    struct sx_shard_stats st;
    sx_shard_stats(((const sx_key *)value)->shard, &st);
    return sizeof(sx_key) + shard_bytes(&st);
}

/* sx_shard_digest callback: one buffer into the Redis digest. */
static void digest_add(void *ctx, const void *buf, size_t len) {
    RedisModuleDigest *md = ctx;
    RedisModule_DigestAddStringBuffer(md, (const char *)buf, len);
}

/* DEBUG DIGEST-VALUE: parameters, then ids, vectors and documents in id
 * order (sx_shard_digest), not the links. */
static void type_digest(RedisModuleDigest *md, void *value) {
    sx_key *k = value;
    sx_shard_params p = sx_shard_get_params(k->shard);
    RedisModule_DigestAddLongLong(md, p.dim);
    RedisModule_DigestAddLongLong(md, p.M);
    RedisModule_DigestAddLongLong(md, p.storage);
    RedisModule_DigestEndSequence(md);
    sx_shard_digest(k->shard, digest_add, md);
    RedisModule_DigestEndSequence(md);
}

/* The work of freeing: one unit per paper, so a big shard goes to the lazy
 * free thread. */
static size_t type_free_effort(RedisModuleString *key, const void *value) {
    (void)key;
    return sx_shard_count(((const sx_key *)value)->shard) + 1;
}

static void type_free(void *value) { key_unref(value); }

/* ---- INFO semdex ---- */

static void info_func(RedisModuleInfoCtx *ctx, int for_crash_report) {
    (void)for_crash_report;
    RedisModule_InfoAddSection(ctx, "");
    RedisModule_InfoAddFieldLongLong(ctx, "keys", atomic_load(&g_keys));
    RedisModule_InfoAddFieldLongLong(ctx, "papers", atomic_load(&g_papers));
    RedisModule_InfoAddFieldLongLong(ctx, "memory", atomic_load(&g_mem));
    RedisModule_InfoAddFieldULongLong(ctx, "searches", atomic_load(&g_searches));
    RedisModule_InfoAddFieldULongLong(ctx, "search_usec_total", atomic_load(&g_search_usec));
    unsigned long long n = atomic_load(&g_searches);
    RedisModule_InfoAddFieldULongLong(ctx, "search_usec_avg", n ? atomic_load(&g_search_usec) / n : 0);
    RedisModule_InfoAddFieldLongLong(ctx, "worker_threads", g_pool.n_threads);
    RedisModule_InfoAddFieldLongLong(ctx, "queue_depth", atomic_load(&g_pool.depth));
    RedisModule_InfoAddFieldLongLong(ctx, "searches_running", atomic_load(&g_pool.busy));
    RedisModule_InfoAddFieldULongLong(ctx, "write_usec_max", atomic_load(&g_write_usec_max));
    RedisModule_InfoAddFieldULongLong(ctx, "maintenance_runs", atomic_load(&g_maintenance_runs));
    RedisModule_InfoAddFieldULongLong(ctx, "maintenance_usec_max", atomic_load(&g_maint_usec_max));
    if (for_crash_report) return;
    /* One line per shard key: semdex_shard_<tag>:papers=N,searches=N,search_usec=N,
     * the tag being the key's hash tag with '-' as '_' (semdex:{shard-07}
     * -> shard_07), so that the line stays parseable. */
    RedisModule_InfoAddSection(ctx, "shards");
    pthread_mutex_lock(&g_list_mu);
    int listed = 0;
    for (sx_key *k = g_list; k && listed < 4096; k = k->next) {
        if (!k->name[0]) continue;
        char tag[64];
        const char *open = strchr(k->name, '{'), *close = open ? strchr(open, '}') : NULL;
        const char *from = open && close > open + 1 ? open + 1 : k->name;
        size_t len = open && close > open + 1 ? (size_t)(close - from) : strlen(k->name);
        size_t t = 0;
        for (size_t i = 0; i < len && t + 1 < sizeof tag; i++)
            tag[t++] = isalnum((unsigned char)from[i]) ? from[i] : '_';
        tag[t] = '\0';
        RedisModule_InfoBeginDictField(ctx, tag);
        RedisModule_InfoAddFieldLongLong(ctx, "papers", (long long)sx_shard_count(k->shard));
        RedisModule_InfoAddFieldULongLong(ctx, "searches", atomic_load(&k->searches));
        RedisModule_InfoAddFieldULongLong(ctx, "search_usec", atomic_load(&k->search_usec));
        RedisModule_InfoEndDictField(ctx);
        listed++;
    }
    pthread_mutex_unlock(&g_list_mu);
}

/* ---- loading the module ---- */

/* Parses the module arguments (`threads N`); the thread count or -1. */
static int parse_args(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    long long v;
    if (n < 1) n = 1;
    for (int i = 0; i < argc; i += 2) {
        if (i + 1 < argc && arg_is(argv[i], "threads") && arg_int(argv[i + 1], 1, MAX_THREADS, &v) == 0) {
            n = (long)v;
        } else {
            RedisModule_Log(ctx, "warning", "semdex: module arguments are `threads N` (N in 1..%d)", MAX_THREADS);
            return -1;
        }
    }
    return (int)(n > MAX_THREADS ? MAX_THREADS : n);
}

/* The module's entry point: parses `threads N`, routes the shard allocator
 * to Redis, registers the type, the commands and INFO semdex, and starts
 * the workers. */
__attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv,
                                                              int argc);
int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_Init(ctx, "semdex", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    int threads = parse_args(ctx, argv, argc);
    if (threads < 0) return REDISMODULE_ERR;
    static const sx_allocator alloc = {mod_malloc, mod_calloc, mod_realloc, mod_free};
    sx_index_set_allocator(&alloc);
    RedisModule_SetModuleOptions(ctx, REDISMODULE_OPTIONS_HANDLE_IO_ERRORS);
    RedisModuleTypeMethods tm = {
        .version = REDISMODULE_TYPE_METHOD_VERSION,
        .rdb_load = type_rdb_load,
        .rdb_save = type_rdb_save,
        .aof_rewrite = type_aof_rewrite,
        .mem_usage = type_mem_usage,
        .digest = type_digest,
        .free = type_free,
        .free_effort = type_free_effort,
    };
    g_type = RedisModule_CreateDataType(ctx, TYPE_NAME, ENCVER, &tm);
    if (!g_type) return REDISMODULE_ERR;
    /* Each command has one key, argument 1 (first, last, step 1, 1, 1), and
     * a key spec saying how it uses it, for clients and cluster routing;
     * except SEMDEX.MSEARCH, which declares none (see cmd_msearch). */
    enum { RD = 0, WR = 1, NOKEYS = 2 };
    struct {
        const char *name;
        RedisModuleCmdFunc fn;
        const char *flags;
        int arity, mode;
        const char *summary;
    } cmds[] = {
        {"semdex.upsert", cmd_upsert, "write deny-oom", -5, WR, "Adds or replaces papers (id, float32 vector, document)"},
        {"semdex.upsertl", cmd_upsertl, "write deny-oom", -6, WR, "Internal: an upsert with the master's HNSW levels"},
        {"semdex.del", cmd_del, "write", 3, WR, "Deletes a paper"},
        {"semdex.maintain", cmd_maintain, "write", 2, WR, "Runs the shard's housekeeping (replication marker)"},
        {"semdex.create", cmd_create, "write deny-oom", -3, WR, "Creates an empty shard with parameters"},
        {"semdex.search", cmd_search, "readonly", -5, RD, "k nearest papers to a float32 vector"},
        {"semdex.msearch", cmd_msearch, "readonly", -6, NOKEYS,
         "One search over the listed shard keys this node holds, merged"},
        {"semdex.get", cmd_get, "readonly", 3, RD, "A paper's document and vector"},
        {"semdex.info", cmd_info, "readonly", 2, RD, "Counts and memory of a shard"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        int key1 = cmds[i].mode == NOKEYS ? 0 : 1;
        if (RedisModule_CreateCommand(ctx, cmds[i].name, cmds[i].fn, cmds[i].flags, key1, key1, key1) ==
            REDISMODULE_ERR)
            return REDISMODULE_ERR;
        RedisModuleCommandKeySpec ks[2] = {{
            .flags = cmds[i].mode == WR ? REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_UPDATE
                                         : REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS,
            .begin_search_type = REDISMODULE_KSPEC_BS_INDEX,
            .bs.index.pos = 1,
            .find_keys_type = REDISMODULE_KSPEC_FK_RANGE,
            .fk.range = {0, 1, 0},
        }};
        RedisModuleCommandInfo info = {
            .version = REDISMODULE_COMMAND_INFO_VERSION,
            .summary = cmds[i].summary,
            .since = "1.0.0",
            .arity = cmds[i].arity,
            .key_specs = cmds[i].mode == NOKEYS ? NULL : ks,
        };
        if (RedisModule_SetCommandInfo(RedisModule_GetCommand(ctx, cmds[i].name), &info) == REDISMODULE_ERR)
            return REDISMODULE_ERR;
    }
    if (RedisModule_RegisterInfoFunc(ctx, info_func) == REDISMODULE_ERR) return REDISMODULE_ERR;
    if (pool_start(threads) < 0) {
        RedisModule_Log(ctx, "warning", "semdex: cannot start %d worker threads", threads);
        return REDISMODULE_ERR;
    }
    RedisModule_Log(ctx, "notice", "semdex: %d search threads, kernels %s", threads, sx_kernels_best()->name);
    return REDISMODULE_OK;
}
