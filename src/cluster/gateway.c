/*
 * gateway.c - the cluster backend: the backend table of backend.h over shard
 * keys in a Redis Cluster that runs the semdex module.
 *
 * Layout. A collection is S shard keys `semdex:{shard-ii-j}`, i in 0..S-1;
 * the braces make each key its own hash tag, so Redis Cluster places (and
 * during resharding moves) each shard whole. The suffix j is the smallest
 * that puts key i's hash slot in the i-th of S equal slot ranges (no suffix
 * when j is 0), so the keys are spread evenly over masters that own equal
 * slot ranges, as `redis-cli --cluster create` assigns them; plain names
 * fell 4/4/8 over three masters at S = 16. A paper lives in the key
 * sx_shard_route(id, S) names, the same contract the local store lays its
 * files out by. S is written once into the string key `semdex:meta`
 * ("shards=16 dim=384 route=crc32c"), by the first gateway or ingest that
 * finds the collection new, and every later one reads it: two gateways can
 * never disagree about where a paper lives. Rejected: discovering S by
 * scanning keys (a shard key that was never written does not exist, and a
 * SCAN over every master on each start is slow and racy).
 *
 * Searches. The query is embedded once, by the server, and only its 1,536
 * bytes travel. The slot map names, for each shard key, the copy a read
 * goes to (sx_rc_route_reads: master or replica, the same copy for all the
 * keys of one master, rotating between searches); each such node gets one
 * SEMDEX.MSEARCH listing its keys, which it searches on one worker and
 * merges to the best k, so a search costs each node one command, one
 * blocked client and k documents on the wire, not one of each per key
 * (docs/redis-module.md). All nodes are asked at once (sx_rc_exec pipelines
 * per node). MSEARCH declares no keys, so Redis does not route it: the
 * keys a node does not hold (a slot moving, a replica behind its master),
 * and all the keys of a node that failed, is loading or has no MSEARCH,
 * are searched again with one SEMDEX.SEARCH each, which Redis Cluster
 * routes with MOVED and ASK. Every key is searched exactly once. Each is
 * searched with sx_shard_ef's share of the ef, as a local collection
 * searches its shards. Replicas build the same graph as their master (the
 * module replicates each paper's HNSW level), so the answer does not
 * depend on which copy served it. The hits are merged by sx_hits_merge,
 * the local store's own merge. A shard key that cannot be reached fails
 * the search (503): a partial answer would silently miss papers.
 * `--per-key-search` (per_key_search) skips MSEARCH, for comparison.
 *
 * Writes. Papers are grouped by shard key, at most UPSERT_MAX to a
 * SEMDEX.UPSERT (vectors as raw little-endian float32, documents
 * in the shard's record codec, sx_doc_encode), pipelined per master and
 * followed, on the same connection, by WAIT n: a write is acknowledged only
 * when n replicas have it. Each command is atomic (the module checks every
 * paper before applying any), a batch as a whole is not: when one command
 * fails the others may have been applied, and the error says so (re-sending
 * the batch is safe: upserts are idempotent). Every paper is validated here
 * first (sx_doc_encode), so a bad paper fails the batch before anything is
 * sent.
 *
 * Info. /health and /metrics ask for the collection's figures often (HAProxy
 * checks every second); the sum over SEMDEX.INFO of every key is cached for
 * a second for them (/collections/info asks afresh), so that a check costs
 * one fan-out per second per gateway at most, and while one call asks the
 * cluster, the others that will take recent figures get the cached ones (up
 * to INFO_STALE_MAX old, and only when the last round succeeded) instead of
 * waiting for it: a slow node must not fail health checks.
 *
 * Metrics. A search reports its fan-out (sending every SEMDEX.SEARCH to
 * the last reply), each node's part of it (a node's slowest reply), the
 * decoding of the hits' documents (fetch) and the merge; the backend's
 * thin call records them (backend.h, sx_backend_stats).
 * The same beat reloads the slot map, so replicas added or nodes restarted
 * without any error on the way are known within a second or so, and counts
 * the replicas with CLUSTER SHARDS for the write path's WAIT target (1 when
 * replicas exist; see count_replicas for why not from the slot map).
 */
#include "gateway.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../corpus/corpus.h"
#include "rcluster.h"

#define META_KEY "semdex:meta"
#define INFO_TTL 1.0
/* Cached figures older than INFO_TTL are still given out while another call
 * refreshes them, up to this age; a failed refresh drops them. */
#define INFO_STALE_MAX 5.0
/* Papers in one SEMDEX.UPSERT. A write runs on the node's event loop, about
 * 0.3 ms per paper: 8 keep a command near 2-3 ms (measured: 2.3 ms average
 * over 7,600 commands while ingesting 50,000 papers into 3 masters), and
 * pipelining keeps the throughput of bigger commands (4,500 papers/s at 8,
 * 4,570 at 100, whose commands stalled their node for 20-25 ms). */
#define UPSERT_MAX 8

typedef struct gateway {
    sx_rc *rc;
    sx_gateway_opts o;
    int n_shards;
    char (*keys)[32];       /* the shard keys' names */
    int *slots;             /* and their hash slots */
    _Atomic int replicas;   /* replica nodes in the cluster (CLUSTER SHARDS) */
    pthread_mutex_t info_mu; /* guards the cached info */
    sx_backend_info info;
    double info_at;          /* sx_now() of the cached info, 0: none */
    _Atomic int refreshing;  /* a call is asking the cluster for the info */
} gateway;

sx_gateway_opts sx_gateway_defaults(void) {
    return (sx_gateway_opts){.dim = 384, .n_shards = 0, .wait_replicas = -1, .wait_timeout_ms = 1000,
                             .deadline_ms = 2000, .replica_reads = 1};
}

void sx_gateway_shard_key(int i, int n_shards, char *buf, size_t cap) {
    int lo = (int)((long)i * SX_RC_SLOTS / n_shards), hi = (int)((long)(i + 1) * SX_RC_SLOTS / n_shards);
    for (int j = 0;; j++) {
        if (j == 0) snprintf(buf, cap, "semdex:{shard-%02d}", i);
        else snprintf(buf, cap, "semdex:{shard-%02d-%d}", i, j);
        int slot = sx_rc_key_slot(buf, strlen(buf));
        if ((slot >= lo && slot < hi) || j == 1000000) return;
    }
}

/* ---- little helpers ---- */

/* Maps a failed command to the error the client sees: a Redis error reply
 * is the request's fault (400) unless it says the cluster is busy; no reply
 * at all is the cluster's (503). */
static int cmd_error(const sx_rc_cmd *c, const char *what, sx_err *err) {
    if (c->status == SX_EINVAL && c->reply && c->reply->type == REDIS_REPLY_ERROR)
        return sx_err_set(err, SX_EINVAL, "%s: %s", what, c->reply->str);
    return sx_err_set(err, SX_EBUSY, "%s: %s", what, c->err.msg[0] ? c->err.msg : "cluster unavailable");
}

/* The vector as the module reads it: dim little-endian float32. */
static void vector_bytes(const float *v, int dim, unsigned char *out) { sx_le32_copy(out, v, (size_t)dim); }

static void vector_from_bytes(const unsigned char *b, int dim, float *out) { sx_le32_copy(out, b, (size_t)dim); }

/* A malloc'd sx_doc (one block, as sx_shard_get returns) from a record the
 * module sent; NULL with err set when it does not decode. */
static sx_doc *doc_from_record(const char *buf, size_t len, sx_err *err) {
    sx_doc *d = malloc(sizeof *d + len);
    if (!d) {
        sx_err_set(err, SX_ENOMEM, "out of memory");
        return NULL;
    }
    char *copy = (char *)(d + 1);
    memcpy(copy, buf, len);
    if (sx_doc_decode(copy, len, d, err) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

/* Whether a command failed because its shard key does not exist (the
 * module answers "ERR no such key" rather than an empty result, so that a
 * key missing by accident is never taken for an empty shard). */
static int is_no_key(const sx_rc_cmd *c) {
    return c->status == SX_EINVAL && c->reply && c->reply->type == REDIS_REPLY_ERROR &&
           strstr(c->reply->str, "no such key") != NULL;
}

/* Runs read commands (on replicas where allowed); those a replica answers
 * with "no such key" run again on their master. A replica can lag behind a
 * slot's move: once MIGRATE has deleted the key on the old master, that
 * master's replica no longer holds it but may still think it owns the slot,
 * while the master itself redirects (ASK, MOVED) to where the key went. */
static void exec_reads(gateway *g, sx_rc_cmd *cmds, int n) {
    sx_rc_exec(g->rc, cmds, n, NULL);
    int again = 0;
    for (int i = 0; i < n; i++) again += cmds[i].read_only && is_no_key(&cmds[i]);
    if (!again) return;
    sx_rc_cmd *retry = calloc((size_t)again, sizeof *retry);
    int *which = calloc((size_t)again, sizeof *which);
    if (!retry || !which) {
        free(retry);
        free(which);
        return;
    }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (cmds[i].read_only && is_no_key(&cmds[i])) {
            which[m] = i;
            retry[m++] = (sx_rc_cmd){.argc = cmds[i].argc, .argv = cmds[i].argv, .argvlen = cmds[i].argvlen,
                                     .key = cmds[i].key, .key_len = cmds[i].key_len};
        }
    sx_rc_exec(g->rc, retry, m, NULL);
    for (int j = 0; j < m; j++) {
        sx_rc_cmd_reset(&cmds[which[j]], 1);
        cmds[which[j]] = retry[j];
    }
    free(retry);
    free(which);
}

/* ---- meta: the shard count ---- */

/* Runs one command on key; the reply (OUT) is the caller's. */
static int run1(gateway *g, int argc, const char **argv, const size_t *lens, int read_only,
                redisReply **reply, sx_err *err) {
    sx_rc_cmd c = {.argc = argc, .argv = argv, .argvlen = lens, .read_only = read_only};
    sx_rc_exec(g->rc, &c, 1, err);
    *reply = NULL;
    if (c.status < 0) {
        int rc = cmd_error(&c, argv[0], err);
        sx_rc_cmd_reset(&c, 1);
        return rc;
    }
    *reply = c.reply;
    c.reply = NULL;
    return 0;
}

/* Parses "shards=S dim=D ..." into *shards and *dim. */
static int parse_meta(const char *s, int *shards, int *dim) {
    const char *p = strstr(s, "shards="), *q = strstr(s, "dim=");
    if (!p || !q) return -1;
    *shards = atoi(p + 7);
    *dim = atoi(q + 4);
    return *shards >= 1 && *shards <= SX_GATEWAY_MAX_SHARDS && *dim >= 1 ? 0 : -1;
}

/* Reads semdex:meta, writing it first (SET NX) when the collection is new. */
static int load_meta(gateway *g, sx_err *err) {
    for (int attempt = 0; attempt < 2; attempt++) {
        redisReply *r;
        const char *get[] = {"GET", META_KEY};
        int rc = run1(g, 2, get, NULL, 0, &r, err);
        if (rc < 0) return sx_err_prefix(err, "reading %s", META_KEY);
        if (r->type == REDIS_REPLY_STRING) {
            int shards, dim;
            int ok = parse_meta(r->str, &shards, &dim) == 0;
            freeReplyObject(r);
            if (!ok) return sx_err_set(err, SX_ECORRUPT, "%s does not say shards=S dim=D", META_KEY);
            if (g->o.n_shards && g->o.n_shards != shards)
                return sx_err_set(err, SX_EINVAL,
                                  "the cluster's collection has %d shard keys, not %d (--shards); "
                                  "leave --shards out to use the cluster's",
                                  shards, g->o.n_shards);
            if (dim != g->o.dim)
                return sx_err_set(err, SX_EINVAL,
                                  "the cluster's collection holds %d-dimensional vectors but the model makes %d",
                                  dim, g->o.dim);
            g->n_shards = shards;
            return 0;
        }
        freeReplyObject(r);
        char meta[96];
        snprintf(meta, sizeof meta, "shards=%d dim=%d route=crc32c",
                 g->o.n_shards ? g->o.n_shards : SX_GATEWAY_DEFAULT_SHARDS, g->o.dim);
        const char *set[] = {"SET", META_KEY, meta, "NX"};
        if (run1(g, 4, set, NULL, 0, &r, err) < 0) return sx_err_prefix(err, "writing %s", META_KEY);
        freeReplyObject(r); /* nil when another gateway won the race: read theirs */
    }
    return sx_err_set(err, SX_EIO, "%s could not be read back", META_KEY);
}

/* ---- the backend table ---- */

/* A search's arguments after the key(s): vector k ef [options]. */
#define TAIL_MAX (16 + SX_CATEGORIES_MAX + SX_AUTHOR_NAMES_MAX)
typedef struct {
    const char *argv[TAIL_MAX];
    size_t len[TAIL_MAX];
    int argc;
    char k[16], ef[16], nf[16], na[16];
} search_tail;

/* Notes each node's slowest reply among n commands in stats. */
static void note_nodes(const sx_rc_cmd *cmds, int n, sx_backend_stats *stats) {
    for (int s = 0; s < n; s++) {
        if (!cmds[s].node[0]) continue;
        int i = 0;
        while (i < stats->n_nodes && strcmp(stats->nodes[i].addr, cmds[s].node) != 0) i++;
        if (i == stats->n_nodes) {
            if (i == SX_BACKEND_MAX_NODES) continue;
            snprintf(stats->nodes[i].addr, sizeof stats->nodes[i].addr, "%s", cmds[s].node);
            stats->nodes[i].seconds = 0;
            stats->n_nodes++;
        }
        if (cmds[s].seconds > stats->nodes[i].seconds) stats->nodes[i].seconds = cmds[s].seconds;
    }
}

/* Builds the arguments every shard's search shares (vec: the query's
 * bytes, used only by a vector search). */
static int search_tail_build(const gateway *g, const sx_search_opts *o, const unsigned char *vec, search_tail *t,
                             sx_err *err) {
    static const char *const modes[] = {"VECTOR", "KEYWORD", "AUTHORS"};
    if (o->n_categories > SX_CATEGORIES_MAX) return sx_err_set(err, SX_EINVAL, "too many categories");
    if (o->n_authors < 0 || o->n_authors > SX_AUTHOR_NAMES_MAX) return sx_err_set(err, SX_EINVAL, "too many authors");
    if (o->mode < SX_MODE_VECTOR || o->mode > SX_MODE_AUTHORS) return sx_err_set(err, SX_EINVAL, "unknown search mode");
    snprintf(t->k, sizeof t->k, "%d", o->k);
    /* each key's share of the effort, as the local store gives its shards */
    snprintf(t->ef, sizeof t->ef, "%d",
             sx_shard_ef(o->ef ? o->ef : sx_shard_params_default().ef_search, o->k, g->n_shards));
    int argc = 0;
    /* the vector only for a vector search: empty otherwise */
    t->argv[argc] = (const char *)vec, t->len[argc++] = o->mode == SX_MODE_VECTOR ? (size_t)g->o.dim * 4 : 0;
    t->argv[argc++] = t->k;
    t->argv[argc++] = t->ef;
    if (o->n_categories > 0) {
        snprintf(t->nf, sizeof t->nf, "%d", o->n_categories);
        t->argv[argc++] = "FILTER";
        t->argv[argc++] = t->nf;
        for (int i = 0; i < o->n_categories; i++) t->argv[argc++] = o->categories[i];
    }
    if (o->with_docs) t->argv[argc++] = "WITHDOCS";
    if (o->mode != SX_MODE_VECTOR) {
        t->argv[argc++] = "MODE";
        t->argv[argc++] = modes[o->mode];
    }
    if (o->text) {
        t->argv[argc++] = "TEXT";
        t->argv[argc++] = o->text;
    }
    if (o->n_authors > 0) {
        snprintf(t->na, sizeof t->na, "%d", o->n_authors);
        t->argv[argc++] = "AUTHORS";
        t->argv[argc++] = t->na;
        for (int i = 0; i < o->n_authors; i++) t->argv[argc++] = o->authors[i];
    }
    if ((o->date_from && *o->date_from) || (o->date_to && *o->date_to)) {
        t->argv[argc++] = "DATES";
        t->argv[argc++] = o->date_from ? o->date_from : "";
        t->argv[argc++] = o->date_to ? o->date_to : "";
    }
    for (int i = 1; i < argc; i++) t->len[i] = strlen(t->argv[i]);
    t->argc = argc;
    return 0;
}

/* Appends the hits of one reply r (SEMDEX.SEARCH's, or MSEARCH's first
 * element: at most k hits) to all[*total]; what names the key(s) in
 * errors. */
static int take_hits(const redisReply *r, const char *what, const sx_search_opts *o, sx_hit *all, int *total,
                     double *t_decode, sx_err *err) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements > (size_t)o->k)
        return sx_err_set(err, SX_ECORRUPT, "%s: unexpected search reply", what);
    for (size_t j = 0; j < r->elements; j++) {
        const redisReply *h = r->element[j];
        size_t want = o->with_docs ? 3 : 2;
        if (h->type != REDIS_REPLY_ARRAY || h->elements != want || h->element[0]->type != REDIS_REPLY_STRING ||
            h->element[0]->len >= sizeof all->id || h->element[1]->type != REDIS_REPLY_STRING)
            return sx_err_set(err, SX_ECORRUPT, "%s: malformed hit %zu", what, j);
        sx_hit *x = &all[*total];
        memcpy(x->id, h->element[0]->str, h->element[0]->len);
        x->id[h->element[0]->len] = 0;
        x->score = (float)strtod(h->element[1]->str, NULL);
        x->doc = NULL;
        if (o->with_docs) {
            const redisReply *d = h->element[2];
            double td = sx_now();
            if (d->type != REDIS_REPLY_STRING || !(x->doc = doc_from_record(d->str, d->len, err)))
                return sx_err_set(err, SX_ECORRUPT, "%s: a hit's document does not decode", what);
            *t_decode += sx_now() - td;
        }
        (*total)++;
    }
    return 0;
}

/* Phase one of a search: one SEMDEX.MSEARCH per node, listing the shard
 * keys the slot map places there (the copy a read would use). Hits go to
 * all[*total]; left[s] is set for each key still to search with
 * SEMDEX.SEARCH: one the node did not hold (a slot moving, a replica
 * behind), or whose node failed or refused (a module without MSEARCH, a
 * node loading): the routed per-key path follows redirections and tries
 * other copies. Returns 0 or an error that no fallback can mend. */
static int search_nodes(gateway *g, const search_tail *t, const sx_search_opts *o, sx_hit *all, int *total,
                        char *left, double *t_decode, sx_backend_stats *stats, sx_err *err) {
    int S = g->n_shards, rc = 0;
    char (*addr)[64] = malloc((size_t)S * sizeof *addr);
    int *node_of = malloc((size_t)S * sizeof *node_of);  /* key -> group */
    int *first = malloc((size_t)S * sizeof *first);       /* group -> its first key */
    sx_rc_cmd *cmds = calloc((size_t)S, sizeof *cmds);
    const char **argv = malloc((size_t)S * (size_t)(2 + t->argc + 1) * sizeof *argv);
    size_t *lens = malloc((size_t)S * (size_t)(2 + t->argc + 1) * sizeof *lens);
    char (*nk)[16] = malloc((size_t)S * sizeof *nk);
    if (!addr || !node_of || !first || !cmds || !argv || !lens || !nk) {
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    sx_rc_route_reads(g->rc, g->slots, S, addr);
    int G = 0;
    for (int s = 0; s < S; s++) {
        node_of[s] = -1;
        if (!addr[s][0]) {
            left[s] = 1;
            continue;
        }
        int gi = 0;
        while (gi < G && strcmp(addr[first[gi]], addr[s]) != 0) gi++;
        if (gi == G) first[G++] = s;
        node_of[s] = gi;
    }
    /* Each group's argv: SEMDEX.MSEARCH n key... tail..., laid out one after
     * the other. */
    size_t at = 0;
    for (int gi = 0; gi < G; gi++) {
        const char **av = argv + at;
        size_t *lv = lens + at;
        int n = 0, c = 2;
        for (int s = 0; s < S; s++)
            if (node_of[s] == gi) {
                av[c] = g->keys[s];
                lv[c++] = strlen(g->keys[s]);
                n++;
            }
        snprintf(nk[gi], sizeof nk[gi], "%d", n);
        av[0] = "SEMDEX.MSEARCH", lv[0] = 14;
        av[1] = nk[gi], lv[1] = strlen(nk[gi]);
        memcpy(av + c, t->argv, (size_t)t->argc * sizeof *av);
        memcpy(lv + c, t->len, (size_t)t->argc * sizeof *lv);
        cmds[gi] = (sx_rc_cmd){.argc = c + t->argc, .argv = av, .argvlen = lv, .at = addr[first[gi]],
                               .read_only = 1};
        at += (size_t)(c + t->argc);
    }
    sx_rc_exec(g->rc, cmds, G, NULL);
    note_nodes(cmds, G, stats);
    for (int gi = 0; gi < G && rc == 0; gi++) {
        const redisReply *r = cmds[gi].reply;
        if (cmds[gi].status < 0 || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            for (int s = 0; s < S; s++) left[s] |= node_of[s] == gi;
            continue;
        }
        rc = take_hits(r->element[0], cmds[gi].at, o, all, total, t_decode, err);
        const redisReply *miss = r->element[1];
        for (size_t m = 0; m < miss->elements && rc == 0; m++) {
            int s = 0;
            while (s < S && (node_of[s] != gi || miss->element[m]->type != REDIS_REPLY_STRING ||
                             strcmp(miss->element[m]->str, g->keys[s]) != 0))
                s++;
            if (s == S) rc = sx_err_set(err, SX_ECORRUPT, "%s: SEMDEX.MSEARCH names a key it was not asked for", cmds[gi].at);
            else left[s] = 1;
        }
    }
    sx_rc_cmd_reset(cmds, G);
done:
    free(addr);
    free(node_of);
    free(first);
    free(cmds);
    free(argv);
    free(lens);
    free(nk);
    return rc;
}

/* Phase two: SEMDEX.SEARCH on each key with left[s] set, routed by Redis
 * Cluster (MOVED, ASK, failover). A key that does not exist was never
 * written: an empty shard. */
static int search_keys(gateway *g, const search_tail *t, const sx_search_opts *o, sx_hit *all, int *total,
                       const char *left, double *t_decode, sx_backend_stats *stats, sx_err *err) {
    int S = g->n_shards, n = 0, rc = 0;
    for (int s = 0; s < S; s++) n += left[s] != 0;
    if (n == 0) return 0;
    int argc = 2 + t->argc;
    sx_rc_cmd *cmds = calloc((size_t)n, sizeof *cmds);
    int *which = malloc((size_t)n * sizeof *which);
    const char **argvs = malloc((size_t)n * (size_t)argc * sizeof *argvs);
    size_t *lens = malloc((size_t)n * (size_t)argc * sizeof *lens);
    if (!cmds || !which || !argvs || !lens) {
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    for (int s = 0, i = 0; s < S; s++) {
        if (!left[s]) continue;
        const char **av = argvs + (size_t)i * (size_t)argc;
        size_t *lv = lens + (size_t)i * (size_t)argc;
        av[0] = "SEMDEX.SEARCH", lv[0] = 13;
        av[1] = g->keys[s], lv[1] = strlen(g->keys[s]);
        memcpy(av + 2, t->argv, (size_t)t->argc * sizeof *av);
        memcpy(lv + 2, t->len, (size_t)t->argc * sizeof *lv);
        which[i] = s;
        cmds[i++] = (sx_rc_cmd){.argc = argc, .argv = av, .argvlen = lv, .read_only = 1};
    }
    exec_reads(g, cmds, n);
    note_nodes(cmds, n, stats);
    for (int i = 0; i < n && rc == 0; i++) {
        const sx_rc_cmd *c = &cmds[i];
        if (c->status < 0 && is_no_key(c)) continue; /* a shard never written: empty */
        if (c->status < 0) rc = cmd_error(c, g->keys[which[i]], err);
        else rc = take_hits(c->reply, g->keys[which[i]], o, all, total, t_decode, err);
    }
    sx_rc_cmd_reset(cmds, n);
done:
    free(cmds);
    free(which);
    free(argvs);
    free(lens);
    return rc;
}

/* A search: every shard key searched once, by node (search_nodes) and
 * then by key for what that left (search_keys), merged to the best k. */
static int gw_search(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits, int *n_hits,
                     sx_backend_stats *stats, sx_err *err) {
    gateway *g = impl;
    int S = g->n_shards;
    *n_hits = 0;
    double t_decode = 0;
    unsigned char *vec = malloc((size_t)g->o.dim * 4);
    search_tail *t = malloc(sizeof *t);
    sx_hit *all = malloc((size_t)S * (size_t)o->k * sizeof *all);
    char *left = calloc((size_t)S, 1);
    int rc = 0, total = 0;
    if (!vec || !t || !all || !left) {
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    if (o->mode == SX_MODE_VECTOR) vector_bytes(q, g->o.dim, vec);
    if ((rc = search_tail_build(g, o, vec, t, err)) < 0) goto done;
    double t0 = sx_now();
    if (g->o.per_key_search) memset(left, 1, (size_t)S);
    else rc = search_nodes(g, t, o, all, &total, left, &t_decode, stats, err);
    if (rc == 0) rc = search_keys(g, t, o, all, &total, left, &t_decode, stats, err);
    double t1 = sx_now();
    stats->search = t1 - t0 - t_decode;
    if (rc < 0) {
        sx_hits_release(all, total);
        goto done;
    }
    *n_hits = sx_hits_merge(all, total, o->k);
    memcpy(hits, all, (size_t)*n_hits * sizeof *hits);
    stats->fetch = t_decode;
    stats->merge = sx_now() - t1;
done:
    free(vec);
    free(t);
    free(all);
    free(left);
    return rc;
}

static int gw_get(void *impl, const char *id, sx_doc **doc, float *vec, sx_err *err) {
    gateway *g = impl;
    if (doc) *doc = NULL;
    if (sx_doc_check_id(id, NULL) < 0) return sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id);
    const char *key = g->keys[sx_shard_route(id, g->n_shards)];
    const char *argv[] = {"SEMDEX.GET", key, id};
    sx_rc_cmd c = {.argc = 3, .argv = argv, .read_only = 1};
    exec_reads(g, &c, 1);
    if (c.status < 0 && is_no_key(&c)) {
        sx_rc_cmd_reset(&c, 1);
        return sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id);
    }
    if (c.status < 0) {
        int rc = cmd_error(&c, key, err);
        sx_rc_cmd_reset(&c, 1);
        return rc;
    }
    redisReply *r = c.reply;
    int rc = 0;
    if (r->type == REDIS_REPLY_NIL) {
        rc = sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
               r->element[1]->len != (size_t)g->o.dim * 4) {
        rc = sx_err_set(err, SX_ECORRUPT, "%s: unexpected SEMDEX.GET reply", key);
    } else {
        if (vec) vector_from_bytes((const unsigned char *)r->element[1]->str, g->o.dim, vec);
        if (doc && !(*doc = doc_from_record(r->element[0]->str, r->element[0]->len, err)))
            rc = err ? err->code : SX_ECORRUPT;
    }
    sx_rc_cmd_reset(&c, 1);
    return rc;
}

/* Counts the replica nodes of the cluster with CLUSTER SHARDS, into
 * g->replicas (left as it was when no node answers). Not from the slot map:
 * CLUSTER SLOTS leaves out a replica whose replication offset is still 0
 * (its master has had no write since it synchronised), and a gateway that
 * believed there were no replicas would acknowledge writes without WAIT. */
static void count_replicas(gateway *g) {
    redisReply *r;
    const char *argv[] = {"CLUSTER", "SHARDS"};
    if (run1(g, 2, argv, NULL, 0, &r, NULL) < 0) return;
    int n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *shard = r->element[i];
        for (size_t j = 0; shard->type == REDIS_REPLY_ARRAY && j + 1 < shard->elements; j += 2) {
            const redisReply *f = shard->element[j], *nodes = shard->element[j + 1];
            if (f->type != REDIS_REPLY_STRING || strcmp(f->str, "nodes") != 0 || nodes->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t k = 0; k < nodes->elements; k++) {
                const redisReply *nd = nodes->element[k];
                for (size_t m = 0; nd->type == REDIS_REPLY_ARRAY && m + 1 < nd->elements; m += 2)
                    if (nd->element[m]->type == REDIS_REPLY_STRING && strcmp(nd->element[m]->str, "role") == 0 &&
                        nd->element[m + 1]->type == REDIS_REPLY_STRING && strcmp(nd->element[m + 1]->str, "replica") == 0)
                        n++;
            }
        }
    }
    freeReplyObject(r);
    atomic_store(&g->replicas, n);
}

/* The number of replicas a write must reach. */
static int wait_target(gateway *g) {
    if (g->o.wait_replicas >= 0) return g->o.wait_replicas;
    return atomic_load(&g->replicas) > 0 ? 1 : 0;
}

/* Runs write commands with WAIT, and turns failures and too few replicas
 * into one error. */
static int run_writes(gateway *g, sx_rc_cmd *cmds, int n, sx_err *err) {
    int want = wait_target(g);
    if (want > 0) sx_rc_exec_wait(g->rc, cmds, n, want, g->o.wait_timeout_ms, NULL);
    else sx_rc_exec(g->rc, cmds, n, NULL);
    int failed = 0, first = -1, short_of = -1;
    for (int i = 0; i < n; i++) {
        if (cmds[i].status < 0) {
            failed++;
            if (first < 0) first = i;
        } else if (want > 0 && cmds[i].acked < want && short_of < 0) {
            short_of = i;
        }
    }
    if (first >= 0) {
        int rc = cmd_error(&cmds[first], cmds[first].argv[1], err);
        if (n > 1 && failed < n)
            sx_err_prefix(err, "%d of %d write commands failed (the others were applied; the batch may be sent again)", failed, n);
        return rc;
    }
    if (short_of >= 0)
        return sx_err_set(err, SX_ENOTDURABLE,
                          "%s: written on its master but acknowledged by %d of the %d replicas asked "
                          "for within %d ms; not confirmed durable, retry the request",
                          cmds[short_of].argv[1], cmds[short_of].acked < 0 ? 0 : cmds[short_of].acked, want,
                          g->o.wait_timeout_ms);
    return 0;
}

static int gw_upsert(void *impl, int n, const sx_doc *docs, const float *vecs, sx_err *err) {
    gateway *g = impl;
    int S = g->n_shards, dim = g->o.dim, rc = 0;
    int *shard = malloc((size_t)n * sizeof *shard);
    void **recs = calloc((size_t)n, sizeof *recs);
    size_t *rec_len = calloc((size_t)n, sizeof *rec_len);
    unsigned char *vb = malloc((size_t)n * (size_t)dim * 4);
    size_t max_cmds = (size_t)S + (size_t)n / UPSERT_MAX + 1;
    sx_rc_cmd *cmds = calloc(max_cmds, sizeof *cmds);
    const char **argv = malloc(((size_t)n * 3 + 2 * max_cmds) * sizeof *argv);
    size_t *lens = malloc(((size_t)n * 3 + 2 * max_cmds) * sizeof *lens);
    if (!shard || !recs || !rec_len || !vb || !cmds || !argv || !lens) {
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    /* Everything is encoded (and so validated) before anything is sent. */
    for (int i = 0; i < n && rc == 0; i++) {
        if ((rc = sx_doc_encode(&docs[i], &recs[i], &rec_len[i], err)) < 0) {
            sx_err_prefix(err, "papers[%d]", i);
            break;
        }
        shard[i] = sx_shard_route(docs[i].id, S);
        vector_bytes(vecs + (size_t)i * (size_t)dim, dim, vb + (size_t)i * (size_t)dim * 4);
    }
    if (rc < 0) goto done;
    /* One command per key, or several of at most UPSERT_MAX papers: an
     * UPSERT runs on the node's event loop (see module.c). */
    int nc = 0;
    size_t at = 0;
    for (int s = 0; s < S; s++) {
        for (int i = 0, in_cmd = 0; i < n; i++) {
            if (shard[i] != s) continue;
            if (in_cmd == 0) {
                cmds[nc] = (sx_rc_cmd){.argv = argv + at, .argvlen = lens + at};
                argv[at] = "SEMDEX.UPSERT", lens[at++] = 13;
                argv[at] = g->keys[s], lens[at++] = strlen(g->keys[s]);
                cmds[nc++].argc = 2;
            }
            sx_rc_cmd *c = &cmds[nc - 1];
            argv[at] = docs[i].id, lens[at++] = strlen(docs[i].id);
            argv[at] = (const char *)vb + (size_t)i * (size_t)dim * 4, lens[at++] = (size_t)dim * 4;
            argv[at] = recs[i], lens[at++] = rec_len[i];
            c->argc += 3;
            if (++in_cmd == UPSERT_MAX) in_cmd = 0;
        }
    }
    rc = run_writes(g, cmds, nc, err);
    sx_rc_cmd_reset(cmds, nc);
    if (rc == 0) {
        pthread_mutex_lock(&g->info_mu);
        g->info_at = 0; /* counts changed */
        pthread_mutex_unlock(&g->info_mu);
    }
done:
    for (int i = 0; recs && i < n; i++) free(recs[i]);
    free(shard);
    free(recs);
    free(rec_len);
    free(vb);
    free(cmds);
    free(argv);
    free(lens);
    return rc;
}

static int gw_del(void *impl, const char *id, sx_err *err) {
    gateway *g = impl;
    if (sx_doc_check_id(id, NULL) < 0) return sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id);
    const char *argv[] = {"SEMDEX.DEL", g->keys[sx_shard_route(id, g->n_shards)], id};
    sx_rc_cmd c = {.argc = 3, .argv = argv};
    int rc = run_writes(g, &c, 1, err);
    if (rc == 0 && (!c.reply || c.reply->type != REDIS_REPLY_INTEGER))
        rc = sx_err_set(err, SX_ECORRUPT, "%s: unexpected SEMDEX.DEL reply", argv[1]);
    else if (rc == 0 && c.reply->integer == 0)
        rc = sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id);
    sx_rc_cmd_reset(&c, 1);
    if (rc == 0) {
        pthread_mutex_lock(&g->info_mu);
        g->info_at = 0;
        pthread_mutex_unlock(&g->info_mu);
    }
    return rc;
}

/* Adds one SEMDEX.INFO reply (field, value pairs) into *in. */
static void add_info(sx_backend_info *in, const redisReply *r, int first) {
    if (r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING && f->type != REDIS_REPLY_STATUS) continue;
        long long x = v->type == REDIS_REPLY_INTEGER ? v->integer
                      : v->type == REDIS_REPLY_STRING ? strtoll(v->str, NULL, 10)
                                                      : 0;
        const char *name = f->str;
        if (strcmp(name, "papers") == 0) in->count += (uint64_t)x;
        else if (strcmp(name, "deleted") == 0) in->deleted += (uint64_t)x;
        else if (strcmp(name, "bytes_vectors") == 0) in->bytes_vectors += (uint64_t)x;
        else if (strcmp(name, "bytes_graph") == 0) in->bytes_graph += (uint64_t)x;
        else if (strcmp(name, "bytes_documents") == 0) in->bytes_documents += (uint64_t)x;
        else if (strcmp(name, "levels") == 0 && x - 1 > in->max_level) in->max_level = (int)x - 1;
        else if (first && strcmp(name, "m") == 0) in->params.M = (int)x;
        else if (first && strcmp(name, "ef_construction") == 0) in->params.ef_construction = (int)x;
        else if (first && strcmp(name, "ef_search") == 0) in->params.ef_search = (int)x;
        else if (first && strcmp(name, "storage") == 0 && v->type == REDIS_REPLY_STRING)
            in->params.storage = strcmp(v->str, "sq8") == 0 ? SX_STORAGE_SQ8 : SX_STORAGE_FP32;
    }
}

static int gw_info_fetch(gateway *g, sx_backend_info *out, sx_err *err);

static int gw_info(void *impl, sx_backend_info *out, int recent, sx_err *err) {
    gateway *g = impl;
    pthread_mutex_lock(&g->info_mu);
    double age = sx_now() - g->info_at;
    if (recent && g->info_at > 0 &&
        (age < INFO_TTL || (age < INFO_STALE_MAX && atomic_exchange(&g->refreshing, 1) == 1))) {
        *out = g->info;
        pthread_mutex_unlock(&g->info_mu);
        return 0;
    }
    pthread_mutex_unlock(&g->info_mu);
    atomic_store(&g->refreshing, 1);
    int rc = gw_info_fetch(g, out, err);
    atomic_store(&g->refreshing, 0);
    return rc;
}

/* Asks every shard key for its figures (and refreshes the topology); caches
 * them when all answered. */
static int gw_info_fetch(gateway *g, sx_backend_info *out, sx_err *err) {
    /* Topology changes that caused no error yet (a replica added, a node
     * back) become known here, at most once a second. */
    sx_rc_refresh(g->rc, NULL);
    count_replicas(g);
    int S = g->n_shards, rc = 0;
    sx_rc_cmd *cmds = calloc((size_t)S, sizeof *cmds);
    const char **argv = malloc((size_t)S * 2 * sizeof *argv);
    if (!cmds || !argv) {
        free(cmds);
        free(argv);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    for (int s = 0; s < S; s++) {
        argv[2 * s] = "SEMDEX.INFO";
        argv[2 * s + 1] = g->keys[s];
        cmds[s] = (sx_rc_cmd){.argc = 2, .argv = argv + 2 * s};
    }
    sx_rc_exec(g->rc, cmds, S, NULL);
    sx_backend_info in = {.kind = "cluster", .n_shards = S, .max_level = -1};
    in.params = sx_shard_params_default();
    in.params.dim = g->o.dim;
    int first = 1;
    for (int s = 0; s < S; s++) {
        if (cmds[s].status < 0) {
            if (is_no_key(&cmds[s])) continue; /* never written: an empty shard */
            if (rc == 0) rc = cmd_error(&cmds[s], g->keys[s], err);
            in.shard_keys_unavailable++;
            continue;
        }
        add_info(&in, cmds[s].reply, first);
        if (cmds[s].reply->type == REDIS_REPLY_ARRAY) first = 0;
    }
    sx_rc_cmd_reset(cmds, S);
    free(cmds);
    free(argv);
    sx_rc_stats st;
    sx_rc_stats_get(g->rc, &st);
    in.masters = st.masters;
    in.nodes = st.masters + (st.replicas > atomic_load(&g->replicas) ? st.replicas : atomic_load(&g->replicas));
    in.nodes_down = st.nodes_down;
    if (rc < 0) {
        pthread_mutex_lock(&g->info_mu);
        g->info_at = 0; /* nobody is told all is well meanwhile */
        pthread_mutex_unlock(&g->info_mu);
        *out = in;
        return rc;
    }
    pthread_mutex_lock(&g->info_mu);
    g->info = in;
    g->info_at = sx_now();
    pthread_mutex_unlock(&g->info_mu);
    *out = in;
    return 0;
}

static void gw_close(void *impl) {
    gateway *g = impl;
    if (!g) return;
    sx_rc_free(g->rc);
    pthread_mutex_destroy(&g->info_mu);
    free(g->keys);
    free(g->slots);
    free(g);
}

static const sx_backend_ops cluster_ops = {
    .name = "cluster",
    .search = gw_search,
    .get = gw_get,
    .upsert = gw_upsert,
    .del = gw_del,
    .info = gw_info,
    .flush = NULL, /* Redis persists by itself (RDB/AOF) */
    .close = gw_close,
};

int sx_backend_open_cluster(const char *seeds, const sx_gateway_opts *o, sx_backend **out,
                            sx_err *err) {
    *out = NULL;
    if (o->n_shards < 0 || o->n_shards > SX_GATEWAY_MAX_SHARDS)
        return sx_err_set(err, SX_EINVAL, "shard keys must be 1..%d", SX_GATEWAY_MAX_SHARDS);
    gateway *g = calloc(1, sizeof *g);
    if (!g) return sx_err_set(err, SX_ENOMEM, "out of memory");
    g->o = *o;
    pthread_mutex_init(&g->info_mu, NULL);
    sx_rc_options ro;
    sx_rc_options_default(&ro);
    ro.deadline_ms = o->deadline_ms > 0 ? o->deadline_ms : ro.deadline_ms;
    if (o->wait_timeout_ms + 500 > ro.deadline_ms) ro.deadline_ms = o->wait_timeout_ms + 500;
    ro.replica_reads = o->replica_reads;
    ro.retry_unsure_writes = 1; /* upserts and deletes are idempotent */
    int rc = sx_rc_create(seeds, &ro, &g->rc, err);
    if (rc == 0) rc = load_meta(g, err);
    if (rc == 0) count_replicas(g);
    if (rc == 0 && !(g->keys = calloc((size_t)g->n_shards, sizeof *g->keys)))
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    if (rc == 0 && !(g->slots = calloc((size_t)g->n_shards, sizeof *g->slots)))
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < g->n_shards; i++) {
        sx_gateway_shard_key(i, g->n_shards, g->keys[i], sizeof g->keys[i]);
        g->slots[i] = sx_rc_key_slot(g->keys[i], strlen(g->keys[i]));
    }
    sx_backend *b = rc == 0 ? sx_backend_create(&cluster_ops, g, o->dim) : NULL;
    if (rc == 0 && !b) rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    if (rc < 0) {
        gw_close(g);
        return rc;
    }
    sx_log(SX_LOG_INFO, "cluster: %d shard keys over the cluster at %s", g->n_shards, seeds);
    *out = b;
    return 0;
}
