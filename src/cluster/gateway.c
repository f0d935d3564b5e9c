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
 * bytes travel: one SEMDEX.SEARCH ... WITHDOCS per shard key, all sent
 * through sx_rc_exec, which groups them per node and pipelines each group,
 * every node at once (one round trip per search, whatever S). Reads may be
 * answered by replicas (READONLY), which build the same graph as their
 * master (the module replicates each paper's HNSW level), so the answer
 * does not depend on which copy served it. The shards' hits are merged by
 * sx_hits_merge, the local store's own merge. A shard key that cannot be
 * reached fails the search (503): a partial answer would silently miss
 * papers.
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

/* Arguments of one SEMDEX.SEARCH. */
#define SEARCH_ARGC_MAX (16 + SX_CATEGORIES_MAX + SX_AUTHOR_NAMES_MAX)
typedef struct {
    const char *argv[SEARCH_ARGC_MAX];
    size_t len[SEARCH_ARGC_MAX];
    char k[16], ef[16], nf[16], na[16];
} search_args;

/* Notes each node's slowest reply among the S commands in stats. */
static void note_nodes(const sx_rc_cmd *cmds, int S, sx_backend_stats *stats) {
    for (int s = 0; s < S; s++) {
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

static int gw_search(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits, int *n_hits,
                     sx_backend_stats *stats, sx_err *err) {
    gateway *g = impl;
    int S = g->n_shards;
    *n_hits = 0;
    double t_decode = 0;
    if (o->n_categories > SX_CATEGORIES_MAX) return sx_err_set(err, SX_EINVAL, "too many categories");
    if (o->n_authors < 0 || o->n_authors > SX_AUTHOR_NAMES_MAX) return sx_err_set(err, SX_EINVAL, "too many authors");
    static const char *const modes[] = {"VECTOR", "KEYWORD", "AUTHORS"};
    if (o->mode < SX_MODE_VECTOR || o->mode > SX_MODE_AUTHORS) return sx_err_set(err, SX_EINVAL, "unknown search mode");
    unsigned char *vec = malloc((size_t)g->o.dim * 4);
    sx_rc_cmd *cmds = calloc((size_t)S, sizeof *cmds);
    search_args *a = malloc(sizeof *a);
    sx_hit *all = malloc((size_t)S * (size_t)o->k * sizeof *all);
    int rc = 0, total = 0;
    if (!vec || !cmds || !a || !all) {
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    if (o->mode == SX_MODE_VECTOR) vector_bytes(q, g->o.dim, vec);
    snprintf(a->k, sizeof a->k, "%d", o->k);
    snprintf(a->ef, sizeof a->ef, "%d", o->ef);
    int argc = 0;
    a->argv[argc++] = "SEMDEX.SEARCH";
    a->argv[argc++] = NULL; /* the key, per command */
    /* the vector only for a vector search: empty otherwise */
    a->argv[argc] = (const char *)vec, a->len[argc++] = o->mode == SX_MODE_VECTOR ? (size_t)g->o.dim * 4 : 0;
    a->argv[argc++] = a->k;
    a->argv[argc++] = a->ef;
    if (o->n_categories > 0) {
        snprintf(a->nf, sizeof a->nf, "%d", o->n_categories);
        a->argv[argc++] = "FILTER";
        a->argv[argc++] = a->nf;
        for (int i = 0; i < o->n_categories; i++) a->argv[argc++] = o->categories[i];
    }
    if (o->with_docs) a->argv[argc++] = "WITHDOCS";
    if (o->mode != SX_MODE_VECTOR) {
        a->argv[argc++] = "MODE";
        a->argv[argc++] = modes[o->mode];
    }
    if (o->text) {
        a->argv[argc++] = "TEXT";
        a->argv[argc++] = o->text;
    }
    if (o->n_authors > 0) {
        snprintf(a->na, sizeof a->na, "%d", o->n_authors);
        a->argv[argc++] = "AUTHORS";
        a->argv[argc++] = a->na;
        for (int i = 0; i < o->n_authors; i++) a->argv[argc++] = o->authors[i];
    }
    if ((o->date_from && *o->date_from) || (o->date_to && *o->date_to)) {
        a->argv[argc++] = "DATES";
        a->argv[argc++] = o->date_from ? o->date_from : "";
        a->argv[argc++] = o->date_to ? o->date_to : "";
    }
    for (int i = 0; i < argc; i++)
        if (i != 2 && a->argv[i]) a->len[i] = strlen(a->argv[i]);
    /* Each command needs its own argv (the key differs). */
    const char **argvs = malloc((size_t)S * (size_t)argc * sizeof *argvs);
    size_t *lens = malloc((size_t)S * (size_t)argc * sizeof *lens);
    if (!argvs || !lens) {
        free(argvs);
        free(lens);
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    for (int s = 0; s < S; s++) {
        const char **av = argvs + (size_t)s * (size_t)argc;
        size_t *lv = lens + (size_t)s * (size_t)argc;
        memcpy(av, a->argv, (size_t)argc * sizeof *av);
        memcpy(lv, a->len, (size_t)argc * sizeof *lv);
        av[1] = g->keys[s];
        lv[1] = strlen(g->keys[s]);
        cmds[s] = (sx_rc_cmd){.argc = argc, .argv = av, .argvlen = lv, .read_only = 1};
    }
    double t0 = sx_now();
    exec_reads(g, cmds, S);
    double t1 = sx_now();
    stats->search = t1 - t0;
    note_nodes(cmds, S, stats);
    for (int s = 0; s < S && rc == 0; s++) {
        const sx_rc_cmd *c = &cmds[s];
        if (c->status < 0 && is_no_key(c)) continue; /* a shard never written: empty */
        if (c->status < 0) {
            rc = cmd_error(c, g->keys[s], err);
            break;
        }
        const redisReply *r = c->reply;
        if (r->type != REDIS_REPLY_ARRAY || r->elements > (size_t)o->k) {
            rc = sx_err_set(err, SX_ECORRUPT, "%s: unexpected SEMDEX.SEARCH reply", g->keys[s]);
            break;
        }
        for (size_t j = 0; j < r->elements; j++) {
            const redisReply *h = r->element[j];
            size_t want = o->with_docs ? 3 : 2;
            if (h->type != REDIS_REPLY_ARRAY || h->elements != want ||
                h->element[0]->type != REDIS_REPLY_STRING || h->element[0]->len >= sizeof all->id ||
                h->element[1]->type != REDIS_REPLY_STRING) {
                rc = sx_err_set(err, SX_ECORRUPT, "%s: malformed hit %zu", g->keys[s], j);
                break;
            }
            sx_hit *x = &all[total];
            memcpy(x->id, h->element[0]->str, h->element[0]->len);
            x->id[h->element[0]->len] = 0;
            x->score = (float)strtod(h->element[1]->str, NULL);
            x->doc = NULL;
            if (o->with_docs) {
                const redisReply *d = h->element[2];
                double td = sx_now();
                if (d->type != REDIS_REPLY_STRING ||
                    !(x->doc = doc_from_record(d->str, d->len, err))) {
                    rc = rc ? rc : sx_err_set(err, SX_ECORRUPT, "%s: a hit's document does not decode", g->keys[s]);
                    break;
                }
                t_decode += sx_now() - td;
            }
            total++;
        }
    }
    sx_rc_cmd_reset(cmds, S);
    free(argvs);
    free(lens);
    if (rc < 0) {
        sx_hits_release(all, total);
        goto done;
    }
    *n_hits = sx_hits_merge(all, total, o->k);
    memcpy(hits, all, (size_t)*n_hits * sizeof *hits);
    stats->fetch = t_decode;
    stats->merge = sx_now() - t1 - t_decode; /* parsing the replies and merging */
done:
    free(vec);
    free(cmds);
    free(a);
    free(all);
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
    for (int i = 0; rc == 0 && i < g->n_shards; i++)
        sx_gateway_shard_key(i, g->n_shards, g->keys[i], sizeof g->keys[i]);
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
