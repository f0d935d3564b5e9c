/*
 * rcluster.c - the Redis Cluster client: node table, connection pools, slot
 * map, and the batch executor with its retry loop.
 *
 * Why our own. Debian's hiredis (0.14) speaks RESP to one server and knows
 * nothing of slots; hiredis-cluster and friends are not packaged. What the
 * gateway needs is small: route by slot, fan out in parallel, survive
 * resharding and failover. So this file adds exactly that on top of hiredis's
 * synchronous context, using only its public calls (connect with a timeout,
 * append commands, write the output buffer, read into the reader, pull
 * replies).
 *
 * Nodes. Every node ever named (seed, CLUSTER SLOTS, MOVED, ASK) gets one
 * rc_node, found by "host:port" and never freed before the client, so a
 * pointer to a node stays valid without reference counts. A node holds a pool
 * of connections: idle ones on a stack, at most pool_size open in all; a
 * thread takes one under the node's mutex, connects outside it when the pool
 * may grow, and waits on a condition variable (up to its deadline) when all
 * are busy. A call takes the connections of its groups in node-creation
 * order, so threads holding one connection while waiting for the next can
 * never wait in a cycle. A connection that saw any error is closed, never returned, so a
 * pooled connection never holds a half-read reply. An idle connection the
 * server has closed is noticed before use (poll says readable) and dropped.
 * A node that failed a connect or a round trip is "down" for down_ms: routing
 * prefers other copies, but a down node is still tried when it is the only
 * one, so it is a hint, never a verdict.
 *
 * Slot map. For each of the 16384 slots an index into an array of shards
 * (a master and its replicas, one per master), guarded by a read-write lock.
 * Routing copies the chosen node out under the read lock; a full refresh
 * builds the new arrays outside the lock and swaps them in under the write
 * lock; MOVED patches one slot in place (its new master becomes a shard of its
 * own, without replicas, until the next refresh). Read-only commands are
 * spread over the master and its replicas that are not down: each call
 * picks one copy per shard, the next call the next copy.
 * Connections to replicas are sent READONLY once (pipelined in front of the
 * first command, so it costs no round trip); a connection to a master that
 * carries READONLY (the node was a replica) is sent READWRITE.
 *
 * Refresh. CLUSTER SLOTS is asked of the map's nodes (masters first, nodes
 * not down first) and then of the seeds, so the client finds the cluster
 * again when every node it knew has changed. MOVED, READONLY, node failures
 * and uncovered slots set a "refresh wanted" flag, and so does a map older
 * than refresh_every_ms (Redis 7 lists a replica in CLUSTER SLOTS only once
 * it has synced, so a map taken early lacks it); the executor then refreshes
 * at most once per refresh_interval_ms, and only one thread refreshes at a
 * time (the others go on with the map they have instead of queueing).
 *
 * The executor. sx_rc_exec works in rounds until every command has an answer
 * or the deadline passes. A round picks a node for each pending command,
 * groups the commands by node, takes one connection per group, appends the
 * group's commands to it (ASKING in front of a redirected one, WAIT behind
 * the writes when asked for) and writes each group's buffer. Only then does it
 * read: poll() on all the group sockets at once, feed whatever arrives to its
 * reader, hand out replies in order. So the nodes work in parallel and a
 * fan-out over three masters costs the slowest node's round trip, not the sum,
 * without a thread per node. After the round each command is settled or kept
 * for the next one:
 *
 *   - an answer, or an error reply of the caller's (WRONGTYPE): settled;
 *   - MOVED: the slot is patched to the named node, a refresh is wanted, and
 *     the command goes to that node next round (whatever the map says by
 *     then: a refresh racing with the move may still have the old owner);
 *   - ASK: next round goes to the named node behind ASKING, once; the map is
 *     not touched;
 *   - TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN, READONLY: retried after a
 *     backoff that doubles from 10 ms to 200 ms, until the deadline (these
 *     do not count as attempts: a failover's CLUSTERDOWN lasts from the
 *     master's FAIL flag to its replica's promotion, about a second);
 *   - a node failure (refused, reset, timeout): the node is marked down, a
 *     refresh is wanted, and the next round routes around it: a read goes to
 *     another copy at once; a write waits (backoff, refreshes) until the map
 *     names a master that is not the one that just failed, which is how a
 *     failover is ridden out. A write whose bytes had left when the failure
 *     came may have been applied: it is sent again only with
 *     retry_unsure_writes, otherwise it fails with a message that says so.
 *
 * A command gives up after max_attempts redirections or node failures, or at
 * the deadline, with an
 * error naming its slot and the last node's error. Every socket operation is
 * bounded: connects by connect_timeout_ms, writes by a socket timeout, reads
 * by poll() with the round's remaining time (io_timeout_ms, plus the WAIT
 * timeout for groups that end with WAIT), all capped by the deadline.
 *
 * SIGPIPE. hiredis writes with write(), which raises SIGPIPE on a socket the
 * peer has closed. A library must not install signal handlers, so writes run
 * with SIGPIPE blocked in the calling thread, and a SIGPIPE they raised is
 * consumed before it is unblocked.
 *
 * Rejected: a thread per node per call (threads cost more than the round trip
 * they would overlap, and poll() overlaps it for free); hiredis's async API
 * with an event loop (a second threading model inside the gateway for the
 * same result); asking every node for CLUSTER SLOTS and voting (a stale node
 * corrects itself through MOVED at the first use of a wrong slot anyway).
 */
#include "rcluster_int.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SEEDS 64
#define MAX_NODES 4096
#define BACKOFF_MIN_S 0.010
#define BACKOFF_MAX_S 0.200

/* ---- nodes and their connection pools ------------------------------------ */

typedef struct rc_conn {
    redisContext *ctx;
    int readonly; /* READONLY was sent on it */
} rc_conn;

typedef struct rc_node {
    int id;        /* creation order: connections are taken in this order */
    char addr[64]; /* "host:port" */
    sx_rc_addr at;
    pthread_mutex_t mu; /* guards the pool and last_error */
    pthread_cond_t cv;  /* a connection came back or closed */
    rc_conn **idle;
    int n_idle, n_open;
    char last_error[128];
    _Atomic int64_t down_until_us; /* sx_now() in microseconds; 0: up */
    _Atomic int role;              /* 1 master, 0 replica, -1 not in the map */
    _Atomic uint64_t requests, errors;
} rc_node;

typedef struct rc_shard {
    rc_node *master;
    int n_replicas;
    rc_node *replicas[SX_RC_MAX_COPIES - 1];
} rc_shard;

struct sx_rc {
    sx_rc_options opt;
    sx_rc_addr seeds[MAX_SEEDS];
    int n_seeds;

    pthread_mutex_t nodes_mu; /* guards the node table (not the nodes) */
    rc_node **nodes;
    int n_nodes, cap_nodes;

    pthread_rwlock_t map_lock; /* guards shards, n_shards, slot, last_refresh */
    rc_shard *shards;
    int n_shards, cap_shards;
    int16_t slot[SX_RC_SLOTS]; /* shard index, -1 when no master is known */
    double last_refresh;       /* wall clock */

    pthread_mutex_t refresh_mu; /* one refresh at a time */
    _Atomic int64_t last_refresh_try_us;
    _Atomic int refresh_wanted;
    _Atomic uint64_t rr; /* round robin over the copies of a slot */
    _Atomic uint64_t rr_routed; /* the same for sx_rc_route_reads: its own
                                   count, or the calls in between would skew it */

    _Atomic uint64_t n_refresh, n_refresh_err, n_commands, n_moved, n_ask, n_busy, n_node_err,
        n_failed;
};

static int64_t now_us(void) { return (int64_t)(sx_now() * 1e6); }

static int node_is_down(const rc_node *nd) {
    int64_t until = atomic_load(&nd->down_until_us);
    return until != 0 && until > now_us();
}

static void node_set_error(sx_rc *c, rc_node *nd, const char *msg) {
    atomic_store(&nd->down_until_us, now_us() + (int64_t)c->opt.down_ms * 1000);
    atomic_fetch_add(&nd->errors, 1);
    atomic_fetch_add(&c->n_node_err, 1);
    pthread_mutex_lock(&nd->mu);
    snprintf(nd->last_error, sizeof nd->last_error, "%s", msg);
    pthread_mutex_unlock(&nd->mu);
}

static void conn_close(rc_conn *cn) {
    if (!cn) return;
    if (cn->ctx) redisFree(cn->ctx);
    free(cn);
}

static rc_node *node_new(const sx_rc_addr *a, int pool_size) {
    rc_node *nd = calloc(1, sizeof *nd);
    if (!nd) return NULL;
    nd->idle = calloc((size_t)pool_size, sizeof *nd->idle);
    if (!nd->idle) {
        free(nd);
        return NULL;
    }
    nd->at = *a;
    if (strchr(a->host, ':')) snprintf(nd->addr, sizeof nd->addr, "[%.50s]:%d", a->host, a->port);
    else snprintf(nd->addr, sizeof nd->addr, "%.55s:%d", a->host, a->port);
    pthread_mutex_init(&nd->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&nd->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&nd->role, -1);
    return nd;
}

static void node_free(rc_node *nd) {
    for (int i = 0; i < nd->n_idle; i++) conn_close(nd->idle[i]);
    free(nd->idle);
    pthread_mutex_destroy(&nd->mu);
    pthread_cond_destroy(&nd->cv);
    free(nd);
}

/* The node at address a, created on first use. NULL when out of memory or
 * when the table is full. */
static rc_node *node_get(sx_rc *c, const sx_rc_addr *a) {
    pthread_mutex_lock(&c->nodes_mu);
    rc_node *found = NULL;
    for (int i = 0; i < c->n_nodes && !found; i++)
        if (c->nodes[i]->at.port == a->port && strcmp(c->nodes[i]->at.host, a->host) == 0)
            found = c->nodes[i];
    if (!found && c->n_nodes < MAX_NODES) {
        if (c->n_nodes == c->cap_nodes) {
            int cap = c->cap_nodes ? c->cap_nodes * 2 : 16;
            rc_node **p = realloc(c->nodes, (size_t)cap * sizeof *p);
            if (p) {
                c->nodes = p;
                c->cap_nodes = cap;
            }
        }
        if (c->n_nodes < c->cap_nodes && (found = node_new(a, c->opt.pool_size)) != NULL) {
            found->id = c->n_nodes;
            c->nodes[c->n_nodes++] = found;
        }
    }
    pthread_mutex_unlock(&c->nodes_mu);
    return found;
}

/* Is the idle connection's socket readable? A pooled connection owes no
 * reply, so readable means the server closed it (or broke the protocol). */
static int conn_is_stale(const rc_conn *cn) {
    struct pollfd p = {.fd = cn->ctx->fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

/* Sets the socket timeouts of cn to the time left until deadline, at most
 * cap_s seconds (1 ms at least). */
static void conn_set_timeout(rc_conn *cn, double deadline, double cap_s) {
    double left = deadline - sx_now();
    if (left > cap_s) left = cap_s;
    if (left < 0.001) left = 0.001;
    struct timeval tv = {(time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6)};
    redisSetTimeout(cn->ctx, tv);
}

/* Opens a connection to nd, waiting at most until deadline. */
static int conn_open(sx_rc *c, rc_node *nd, double deadline, rc_conn **out, char *why, size_t why_cap) {
    double left = deadline - sx_now();
    double cap = c->opt.connect_timeout_ms / 1000.0;
    if (left > cap) left = cap;
    if (left < 0.001) left = 0.001;
    struct timeval tv = {(time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6)};
    redisContext *ctx = redisConnectWithTimeout(nd->at.host, nd->at.port, tv);
    if (!ctx || ctx->err) {
        snprintf(why, why_cap, "%s", ctx ? ctx->errstr : "out of memory");
        if (ctx) redisFree(ctx);
        return SX_EIO;
    }
    rc_conn *cn = calloc(1, sizeof *cn);
    if (!cn) {
        redisFree(ctx);
        snprintf(why, why_cap, "out of memory");
        return SX_ENOMEM;
    }
    cn->ctx = ctx;
    *out = cn;
    return 0;
}

/* Takes a connection to nd: an idle one, a new one while fewer than
 * pool_size are open, else waits for one until deadline. On failure why
 * holds the reason (without the node's name). */
static int conn_take(sx_rc *c, rc_node *nd, double deadline, rc_conn **out, char *why, size_t why_cap) {
    pthread_mutex_lock(&nd->mu);
    for (;;) {
        while (nd->n_idle > 0) {
            rc_conn *cn = nd->idle[--nd->n_idle];
            if (!conn_is_stale(cn)) {
                pthread_mutex_unlock(&nd->mu);
                *out = cn;
                return 0;
            }
            conn_close(cn);
            nd->n_open--;
        }
        if (nd->n_open < c->opt.pool_size) {
            nd->n_open++;
            pthread_mutex_unlock(&nd->mu);
            int rc = conn_open(c, nd, deadline, out, why, why_cap);
            if (rc < 0) {
                pthread_mutex_lock(&nd->mu);
                nd->n_open--;
                pthread_cond_signal(&nd->cv);
                pthread_mutex_unlock(&nd->mu);
            }
            return rc;
        }
        double left = deadline - sx_now();
        if (left <= 0) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + left;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        if (pthread_cond_timedwait(&nd->cv, &nd->mu, &ts) == ETIMEDOUT && nd->n_idle == 0 &&
            nd->n_open >= c->opt.pool_size)
            break;
    }
    pthread_mutex_unlock(&nd->mu);
    snprintf(why, why_cap, "all %d connections busy", c->opt.pool_size);
    return SX_EBUSY;
}

/* Returns cn to nd's pool, or closes it when broken. */
static void conn_put(rc_node *nd, rc_conn *cn, int broken) {
    pthread_mutex_lock(&nd->mu);
    if (broken) {
        conn_close(cn);
        nd->n_open--;
    } else {
        nd->idle[nd->n_idle++] = cn;
    }
    pthread_cond_signal(&nd->cv);
    pthread_mutex_unlock(&nd->mu);
}

/* Closes the idle connections of nd (it left the map). */
static void node_drop_idle(rc_node *nd) {
    pthread_mutex_lock(&nd->mu);
    for (int i = 0; i < nd->n_idle; i++) conn_close(nd->idle[i]);
    nd->n_open -= nd->n_idle;
    nd->n_idle = 0;
    pthread_mutex_unlock(&nd->mu);
}

/* Writes the output buffer of cn with SIGPIPE blocked in this thread (see the
 * essay). Returns 0 or -1 (cn->ctx->errstr says why). */
static int conn_flush(rc_conn *cn) {
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int done = 0, rc = 0;
    while (!done)
        if (redisBufferWrite(cn->ctx, &done) == REDIS_ERR) {
            rc = -1;
            break;
        }
    if (rc < 0 && errno == EPIPE) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE) {}
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---- the slot map --------------------------------------------------------- */

/* The node for slot: the master, or for a read the copy at (seed + shard)
 * among those not down (the master when all are), so one call sends all
 * reads of a shard to the same copy and successive calls (seeds) rotate over
 * the copies. *role (OUT) is 1 for a master. NULL when the slot has no known
 * master. Takes the read lock. */
static rc_node *route(sx_rc *c, int slot, int read_only, uint64_t seed, int *role) {
    rc_node *nd = NULL;
    pthread_rwlock_rdlock(&c->map_lock);
    int si = c->slot[slot];
    if (si >= 0) {
        const rc_shard *s = &c->shards[si];
        nd = s->master;
        *role = 1;
        if (read_only && c->opt.replica_reads && s->n_replicas > 0) {
            int copies = 1 + s->n_replicas;
            int start = (int)((seed + (uint64_t)si) % (uint64_t)copies);
            for (int k = 0; k < copies; k++) {
                int i = (start + k) % copies;
                rc_node *cand = i == 0 ? s->master : s->replicas[i - 1];
                if (!node_is_down(cand)) {
                    nd = cand;
                    *role = i == 0;
                    break;
                }
            }
        }
    }
    pthread_rwlock_unlock(&c->map_lock);
    return nd;
}

/* Points slot at master nd (after MOVED): nd's shard, or a new one without
 * replicas. Returns 0 or SX_ENOMEM. */
static int map_move_slot(sx_rc *c, int slot, rc_node *nd) {
    int rc = 0;
    pthread_rwlock_wrlock(&c->map_lock);
    int si = -1;
    for (int i = 0; i < c->n_shards && si < 0; i++)
        if (c->shards[i].master == nd) si = i;
    if (si < 0) {
        if (c->n_shards == c->cap_shards) {
            int cap = c->cap_shards ? c->cap_shards * 2 : 8;
            rc_shard *p = cap <= INT16_MAX ? realloc(c->shards, (size_t)cap * sizeof *p) : NULL;
            if (p) {
                c->shards = p;
                c->cap_shards = cap;
            }
        }
        if (c->n_shards < c->cap_shards) {
            si = c->n_shards++;
            c->shards[si] = (rc_shard){.master = nd};
        } else {
            rc = SX_ENOMEM;
        }
    }
    if (si >= 0) {
        c->slot[slot] = (int16_t)si;
        atomic_store(&nd->role, 1);
    }
    pthread_rwlock_unlock(&c->map_lock);
    return rc;
}

/* Replaces the map with the ranges of a CLUSTER SLOTS reply. */
static int map_install(sx_rc *c, const sx_rc_range *ranges, int n, sx_err *err) {
    rc_shard *shards = calloc((size_t)(n ? n : 1), sizeof *shards);
    int16_t *slot = malloc(sizeof c->slot);
    if (!shards || !slot) {
        free(shards);
        free(slot);
        return sx_err_set(err, SX_ENOMEM, "slot map: out of memory");
    }
    for (int s = 0; s < SX_RC_SLOTS; s++) slot[s] = -1;
    int n_shards = 0;
    for (int r = 0; r < n; r++) {
        rc_node *copies[SX_RC_MAX_COPIES] = {0};
        if (ranges[r].n_nodes < 1) continue;
        for (int k = 0; k < ranges[r].n_nodes; k++)
            if (!(copies[k] = node_get(c, &ranges[r].nodes[k]))) {
                free(shards);
                free(slot);
                return sx_err_set(err, SX_ENOMEM, "slot map: too many nodes");
            }
        int si = -1;
        for (int i = 0; i < n_shards && si < 0; i++)
            if (shards[i].master == copies[0]) si = i;
        if (si < 0) {
            si = n_shards++;
            shards[si].master = copies[0];
        }
        rc_shard *sh = &shards[si];
        for (int k = 1; k < ranges[r].n_nodes; k++) {
            int have = 0;
            for (int j = 0; j < sh->n_replicas; j++) have |= sh->replicas[j] == copies[k];
            if (!have && sh->n_replicas < SX_RC_MAX_COPIES - 1) sh->replicas[sh->n_replicas++] = copies[k];
        }
        for (int s = ranges[r].start; s <= ranges[r].end; s++) slot[s] = (int16_t)si;
    }

    pthread_rwlock_wrlock(&c->map_lock);
    rc_shard *old = c->shards;
    c->shards = shards;
    c->cap_shards = n > 0 ? n : 1;
    c->n_shards = n_shards;
    memcpy(c->slot, slot, sizeof c->slot);
    c->last_refresh = sx_wall_time();
    pthread_mutex_lock(&c->nodes_mu);
    for (int i = 0; i < c->n_nodes; i++) atomic_store(&c->nodes[i]->role, -1);
    pthread_mutex_unlock(&c->nodes_mu);
    for (int i = 0; i < n_shards; i++) {
        atomic_store(&shards[i].master->role, 1);
        for (int j = 0; j < shards[i].n_replicas; j++) atomic_store(&shards[i].replicas[j]->role, 0);
    }
    pthread_rwlock_unlock(&c->map_lock);
    free(old);
    free(slot);

    /* Nodes that left the map keep no sockets open. */
    pthread_mutex_lock(&c->nodes_mu);
    for (int i = 0; i < c->n_nodes; i++)
        if (atomic_load(&c->nodes[i]->role) < 0) node_drop_idle(c->nodes[i]);
    pthread_mutex_unlock(&c->nodes_mu);
    return 0;
}

/* ---- one round trip on one node ------------------------------------------- */

/* Sends one command to nd and reads its reply (*out, OUT), within deadline.
 * Used for CLUSTER SLOTS. On failure why holds the reason. */
static int node_call(sx_rc *c, rc_node *nd, int argc, const char **argv, double deadline,
                     redisReply **out, char *why, size_t why_cap) {
    *out = NULL;
    rc_conn *cn;
    int rc = conn_take(c, nd, deadline, &cn, why, why_cap);
    if (rc < 0) return rc;
    conn_set_timeout(cn, deadline, c->opt.io_timeout_ms / 1000.0);
    void *reply = NULL;
    if (redisAppendCommandArgv(cn->ctx, argc, argv, NULL) != REDIS_OK || conn_flush(cn) < 0) {
        snprintf(why, why_cap, "%s", cn->ctx->errstr);
        conn_put(nd, cn, 1);
        return SX_EIO;
    }
    /* Blocking read, bounded by the socket timeout set above. */
    if (redisGetReply(cn->ctx, &reply) != REDIS_OK) {
        snprintf(why, why_cap, "%s", cn->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
                                         ? "timed out" : cn->ctx->errstr);
        conn_put(nd, cn, 1);
        return SX_EIO;
    }
    conn_put(nd, cn, 0);
    *out = reply;
    return 0;
}

/* Asks nd for CLUSTER SLOTS and installs the answer. */
static int refresh_from(sx_rc *c, rc_node *nd, sx_err *err) {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    double deadline = sx_now() + (c->opt.connect_timeout_ms + c->opt.io_timeout_ms) / 1000.0;
    redisReply *r;
    char why[160];
    if (node_call(c, nd, 2, argv, deadline, &r, why, sizeof why) < 0) {
        node_set_error(c, nd, why);
        return sx_err_set(err, SX_EIO, "%s: %s", nd->addr, why);
    }
    sx_rc_range *ranges;
    int n;
    int rc = r->type == REDIS_REPLY_ERROR
                 ? sx_err_set(err, SX_EIO, "%s: %.*s", nd->addr, (int)(r->len > 200 ? 200 : r->len), r->str)
                 : sx_rc_parse_slots(r, nd->at.host, &ranges, &n, err);
    freeReplyObject(r);
    if (rc < 0) return rc;
    if (n == 0) {
        free(ranges);
        return sx_err_set(err, SX_EIO, "%s: CLUSTER SLOTS lists no slot", nd->addr);
    }
    rc = map_install(c, ranges, n, err);
    free(ranges);
    return rc;
}

/* Reloads the map: the map's nodes that are up, masters first, then those
 * down, then the seeds. Caller holds refresh_mu. */
static int refresh_locked(sx_rc *c, sx_err *err) {
    atomic_store(&c->last_refresh_try_us, now_us());
    atomic_store(&c->refresh_wanted, 0);
    int cap = 0, n = 0;
    pthread_rwlock_rdlock(&c->map_lock);
    for (int i = 0; i < c->n_shards; i++) cap += 1 + c->shards[i].n_replicas;
    rc_node **cand = malloc((size_t)(cap + c->n_seeds + 1) * sizeof *cand);
    if (cand) {
        for (int pass = 0; pass < 4; pass++) /* masters up, replicas up, masters down, replicas down */
            for (int i = 0; i < c->n_shards; i++) {
                const rc_shard *s = &c->shards[i];
                for (int k = 0; k <= s->n_replicas; k++) {
                    rc_node *nd = k == 0 ? s->master : s->replicas[k - 1];
                    if ((k == 0) == (pass % 2 == 0) && node_is_down(nd) == (pass >= 2)) cand[n++] = nd;
                }
            }
    }
    pthread_rwlock_unlock(&c->map_lock);
    if (!cand) return sx_err_set(err, SX_ENOMEM, "refresh: out of memory");
    for (int i = 0; i < c->n_seeds; i++) {
        rc_node *nd = node_get(c, &c->seeds[i]);
        int dup = 0;
        for (int j = 0; j < n && nd; j++) dup |= cand[j] == nd;
        if (nd && !dup) cand[n++] = nd;
    }
    sx_buf why = {0};
    int rc = SX_EIO;
    for (int i = 0; i < n; i++) {
        sx_err e = {0};
        if ((rc = refresh_from(c, cand[i], &e)) == 0) break;
        sx_buf_printf(&why, "%s%s", why.len ? "; " : "", e.msg);
    }
    free(cand);
    if (rc == 0) atomic_fetch_add(&c->n_refresh, 1);
    else {
        atomic_fetch_add(&c->n_refresh_err, 1);
        atomic_store(&c->refresh_wanted, 1);
        sx_err_set(err, rc, "no node answered CLUSTER SLOTS (%s)", why.len ? why.data : "no node known");
    }
    sx_buf_free(&why);
    return rc;
}

int sx_rc_refresh(sx_rc *c, sx_err *err) {
    pthread_mutex_lock(&c->refresh_mu);
    int rc = refresh_locked(c, err);
    pthread_mutex_unlock(&c->refresh_mu);
    return rc;
}

/* Refreshes when one is wanted, the last try is older than the interval and
 * no other thread is refreshing. Never waits for another thread. */
static void refresh_soon(sx_rc *c) {
    if (!atomic_load(&c->refresh_wanted)) return;
    if (now_us() - atomic_load(&c->last_refresh_try_us) < (int64_t)c->opt.refresh_interval_ms * 1000)
        return;
    if (pthread_mutex_trylock(&c->refresh_mu) != 0) return;
    if (now_us() - atomic_load(&c->last_refresh_try_us) >= (int64_t)c->opt.refresh_interval_ms * 1000)
        refresh_locked(c, NULL);
    pthread_mutex_unlock(&c->refresh_mu);
}

/* ---- the executor ---------------------------------------------------------- */

enum { E_CMD, E_ASKING, E_READONLY, E_READWRITE, E_WAIT };

typedef struct {
    int kind; /* E_* */
    int cmd;  /* E_CMD, E_ASKING: the command's index */
} rc_entry;

/* What the executor remembers of a command between rounds. */
typedef struct {
    int done;
    int attempts;
    rc_node *pinned;   /* the node named by the command's `at`, or NULL */
    rc_node *redirect; /* MOVED or ASK target for the next try */
    int asking;        /* the redirect was an ASK: send ASKING first */
    rc_node *failed; /* the node whose failure this command saw last */
    rc_node *target; /* this round's node */
    int role;        /* 1 when target is (or acts as) a master */
    int next;        /* next command of the same group, -1 at the end */
    int outcome;     /* this round: O_* */
    int unsure;      /* a node failure came after the command was sent */
    const char *why; /* O_NODE_ERR: the group's reason */
    redisReply *reply; /* this round's reply */
    double seconds;    /* this round's: from sending the group to the reply */
} rc_state;

enum { O_NONE, O_REPLY, O_NODE_ERR, O_WAITING };

typedef struct {
    rc_node *node;
    int role;
    int first, last; /* command list through rc_state.next */
    int has_write;
    rc_conn *conn;
    rc_entry *entries;
    int n_entries, n_read;
    int failed;
    double sent_at, deadline;
    char why[160];
} rc_group;

typedef struct {
    sx_rc *c;
    sx_rc_cmd *cmds;
    rc_state *st;
    int n;
    int wait_replicas, wait_ms; /* wait_replicas < 0: no WAIT */
    double deadline;
    uint64_t seed; /* picks the copy of each shard that serves this call's reads */
} rc_call;

/* Marks group g failed (the node is down) and the commands not answered yet
 * as node errors; sent says whether their bytes may have left. */
static void group_fail(rc_call *k, rc_group *g, const char *why, int sent) {
    g->failed = 1;
    snprintf(g->why, sizeof g->why, "%s", why);
    node_set_error(k->c, g->node, why);
    for (int i = g->first; i >= 0; i = k->st[i].next)
        if (k->st[i].outcome == O_NONE) {
            k->st[i].outcome = O_NODE_ERR;
            k->st[i].unsure = sent;
            k->st[i].why = g->why;
        }
}

/* Takes a connection for g and writes its pipeline. */
static void group_send(rc_call *k, rc_group *g, rc_entry *entries) {
    sx_rc *c = k->c;
    char why[160];
    int rc = conn_take(c, g->node, k->deadline, &g->conn, why, sizeof why);
    if (rc < 0) {
        g->conn = NULL;
        if (rc == SX_EBUSY) { /* not the node's fault: do not mark it down */
            g->failed = 1;
            snprintf(g->why, sizeof g->why, "%s", why);
            for (int i = g->first; i >= 0; i = k->st[i].next) {
                k->st[i].outcome = O_NODE_ERR;
                k->st[i].why = g->why;
            }
        } else {
            group_fail(k, g, why, 0);
        }
        return;
    }
    g->entries = entries;
    if (g->role == 0 && !g->conn->readonly) g->entries[g->n_entries++] = (rc_entry){E_READONLY, -1};
    if (g->role == 1 && g->conn->readonly) g->entries[g->n_entries++] = (rc_entry){E_READWRITE, -1};
    redisContext *ctx = g->conn->ctx;
    static const char *ro[] = {"READONLY"}, *rw[] = {"READWRITE"}, *asking[] = {"ASKING"};
    if (g->n_entries) redisAppendCommandArgv(ctx, 1, g->role == 0 ? ro : rw, NULL);
    int n_cmds = 0;
    for (int i = g->first; i >= 0; i = k->st[i].next) {
        const sx_rc_cmd *cmd = &k->cmds[i];
        if (k->st[i].asking) {
            g->entries[g->n_entries++] = (rc_entry){E_ASKING, i};
            redisAppendCommandArgv(ctx, 1, asking, NULL);
        }
        g->entries[g->n_entries++] = (rc_entry){E_CMD, i};
        if (redisAppendCommandArgv(ctx, cmd->argc, cmd->argv, cmd->argvlen) != REDIS_OK) {
            group_fail(k, g, "out of memory", 0);
            return;
        }
        n_cmds++;
    }
    if (k->wait_replicas >= 0 && g->has_write) {
        char nrep[16], ms[16];
        snprintf(nrep, sizeof nrep, "%d", k->wait_replicas);
        snprintf(ms, sizeof ms, "%d", k->wait_ms);
        const char *argv[] = {"WAIT", nrep, ms};
        g->entries[g->n_entries++] = (rc_entry){E_WAIT, -1};
        redisAppendCommandArgv(ctx, 3, argv, NULL);
    }
    atomic_fetch_add(&g->node->requests, (uint64_t)n_cmds);
    atomic_fetch_add(&c->n_commands, (uint64_t)n_cmds);
    double io = c->opt.io_timeout_ms / 1000.0 + (g->has_write && k->wait_replicas >= 0 ? k->wait_ms / 1000.0 : 0);
    g->sent_at = sx_now();
    g->deadline = g->sent_at + io;
    if (g->deadline > k->deadline) g->deadline = k->deadline;
    conn_set_timeout(g->conn, g->deadline, io);
    if (conn_flush(g->conn) < 0) group_fail(k, g, ctx->errstr, 1);
}

/* Hands reply r to the next entry of g. */
static void group_deliver(rc_call *k, rc_group *g, redisReply *r) {
    rc_entry *e = &g->entries[g->n_read++];
    switch (e->kind) {
    case E_CMD:
        k->st[e->cmd].seconds = sx_now() - g->sent_at;
        k->st[e->cmd].reply = r;
        k->st[e->cmd].outcome = O_REPLY;
        return;
    case E_READONLY:
        g->conn->readonly = r->type != REDIS_REPLY_ERROR;
        break;
    case E_READWRITE:
        g->conn->readonly = r->type == REDIS_REPLY_ERROR;
        break;
    case E_WAIT:
        if (r->type == REDIS_REPLY_INTEGER)
            for (int i = g->first; i >= 0; i = k->st[i].next)
                if (!k->cmds[i].read_only && k->st[i].reply && k->st[i].reply->type != REDIS_REPLY_ERROR)
                    k->cmds[i].acked = (int)r->integer;
        break;
    default: /* ASKING: its +OK carries nothing */
        break;
    }
    freeReplyObject(r);
}

/* Pulls every complete reply already in g's reader. */
static void group_drain(rc_call *k, rc_group *g) {
    while (!g->failed && g->n_read < g->n_entries) {
        void *r = NULL;
        if (redisGetReplyFromReader(g->conn->ctx, &r) != REDIS_OK) {
            group_fail(k, g, g->conn->ctx->errstr, 1);
            return;
        }
        if (!r) return;
        group_deliver(k, g, r);
    }
}

/* Reads the replies of all groups at once, until each group has them all,
 * failed, or passed its deadline. */
static void groups_read(rc_call *k, rc_group *g, int ng) {
    struct pollfd *pfd = malloc((size_t)ng * sizeof *pfd);
    int *idx = malloc((size_t)ng * sizeof *idx);
    if (!pfd || !idx) {
        for (int i = 0; i < ng; i++)
            if (!g[i].failed) group_fail(k, &g[i], "out of memory", 1);
        free(pfd);
        free(idx);
        return;
    }
    for (;;) {
        int np = 0;
        double now = sx_now(), wake = 0;
        for (int i = 0; i < ng; i++) {
            if (g[i].failed || g[i].n_read == g[i].n_entries) continue;
            if (now >= g[i].deadline) {
                char why[64];
                snprintf(why, sizeof why, "no reply within %.0f ms", (now - g[i].sent_at) * 1000.0);
                group_fail(k, &g[i], why, 1);
                continue;
            }
            if (np == 0 || g[i].deadline < wake) wake = g[i].deadline;
            pfd[np] = (struct pollfd){.fd = g[i].conn->ctx->fd, .events = POLLIN};
            idx[np++] = i;
        }
        if (np == 0) break;
        int ms = (int)((wake - now) * 1000.0) + 1;
        int ready = poll(pfd, (nfds_t)np, ms);
        if (ready < 0 && errno != EINTR) {
            for (int j = 0; j < np; j++) group_fail(k, &g[idx[j]], strerror(errno), 1);
            break;
        }
        for (int j = 0; j < np && ready > 0; j++) {
            if (!pfd[j].revents) continue;
            rc_group *gi = &g[idx[j]];
            if (redisBufferRead(gi->conn->ctx) != REDIS_OK) group_fail(k, gi, gi->conn->ctx->errstr, 1);
            else group_drain(k, gi);
        }
    }
    free(pfd);
    free(idx);
}

/* Settles command i after a round, or prepares its next try. Sets *refresh
 * and *backoff when the next round should wait for them. */
static void settle(rc_call *k, int i, int *backoff) {
    sx_rc *c = k->c;
    sx_rc_cmd *cmd = &k->cmds[i];
    rc_state *s = &k->st[i];
    rc_node *nd = s->target;
    snprintf(cmd->node, sizeof cmd->node, "%s", nd->addr);
    s->redirect = NULL;
    s->asking = 0;
    if (s->outcome == O_NODE_ERR) {
        s->attempts++;
        s->failed = nd;
        atomic_store(&c->refresh_wanted, 1);
        const char *why = s->why ? s->why : "failed";
        cmd->node[0] = '\0';
        if (s->unsure && !cmd->read_only && !c->opt.retry_unsure_writes) {
            s->done = 1;
            sx_err_set(&cmd->err, SX_EIO, "slot %d: %s: %s; the write may have been applied", cmd->slot,
                       nd->addr, why);
        } else {
            sx_err_set(&cmd->err, SX_EIO, "slot %d: no reachable node (%s: %s)", cmd->slot, nd->addr, why);
        }
        return;
    }
    redisReply *r = s->reply;
    s->reply = NULL;
    int slot;
    sx_rc_addr to;
    sx_rc_reply_kind kind = sx_rc_classify(r, &slot, &to);
    if (kind == SX_RC_REPLY_OK || kind == SX_RC_REPLY_ERROR) {
        s->done = 1;
        freeReplyObject(cmd->reply);
        cmd->reply = r;
        cmd->seconds = s->seconds;
        if (kind == SX_RC_REPLY_OK) {
            cmd->status = 0;
            cmd->err = (sx_err){0};
        } else {
            sx_err_set(&cmd->err, SX_EINVAL, "slot %d: %s: %.*s", cmd->slot, nd->addr,
                       (int)(r->len > 300 ? 300 : r->len), r->str);
        }
        return;
    }
    sx_err_set(&cmd->err, kind == SX_RC_REPLY_BUSY ? SX_EBUSY : SX_EIO, "slot %d: %s: %.*s", cmd->slot,
               nd->addr, (int)(r->len > 300 ? 300 : r->len), r->str);
    if (to.host[0] == '\0') snprintf(to.host, sizeof to.host, "%s", nd->at.host);
    if (kind == SX_RC_REPLY_MOVED || kind == SX_RC_REPLY_ASK) {
        s->attempts++;
        rc_node *dest = node_get(c, &to);
        if (!dest) {
            s->done = 1;
            sx_err_set(&cmd->err, SX_ENOMEM, "slot %d: too many nodes", cmd->slot);
        } else if (kind == SX_RC_REPLY_MOVED) {
            atomic_fetch_add(&c->n_moved, 1);
            map_move_slot(c, slot, dest);
            atomic_store(&c->refresh_wanted, 1);
            s->redirect = dest; /* even if a refresh undoes the patch meanwhile */
        } else {
            atomic_fetch_add(&c->n_ask, 1);
            s->redirect = dest;
            s->asking = 1;
        }
        freeReplyObject(r);
        return;
    }
    /* BUSY or READONLY: keep the reply, in case it is the last word. Not an
     * attempt: the backoff and the deadline bound these retries. */
    freeReplyObject(cmd->reply);
    cmd->reply = r;
    atomic_fetch_add(&c->n_busy, 1);
    if (kind == SX_RC_REPLY_READONLY) atomic_store(&c->refresh_wanted, 1);
    *backoff = 1;
}

/* Groups the pending commands by node for one round; returns the number of
 * groups. A command whose only node is the one it just failed on, still down,
 * or whose slot has no master, sits this round out (O_WAITING). */
static int round_plan(rc_call *k, rc_group *g) {
    int ng = 0;
    for (int i = 0; i < k->n; i++) {
        rc_state *s = &k->st[i];
        if (s->done) continue;
        s->outcome = O_NONE;
        s->unsure = 0;
        s->next = -1;
        int role = 1;
        rc_node *nd = s->pinned     ? s->pinned
                      : s->redirect ? s->redirect
                                    : route(k->c, k->cmds[i].slot, k->cmds[i].read_only, k->seed, &role);
        if (s->pinned) role = atomic_load(&s->pinned->role) != 0; /* READONLY only for a replica */
        if (!nd || (nd == s->failed && node_is_down(nd))) {
            if (!nd) {
                sx_err_set(&k->cmds[i].err, SX_EIO, "slot %d: no node serves it", k->cmds[i].slot);
                atomic_store(&k->c->refresh_wanted, 1);
            }
            s->outcome = O_WAITING;
            continue;
        }
        s->target = nd;
        s->role = role;
        int gi = 0;
        while (gi < ng && g[gi].node != nd) gi++;
        if (gi == ng) {
            g[ng++] = (rc_group){.node = nd, .role = role, .first = i, .last = i};
        } else {
            k->st[g[gi].last].next = i;
            g[gi].last = i;
            if (role) g[gi].role = 1; /* a redirection or write target: a master */
        }
        if (!k->cmds[i].read_only) g[gi].has_write = 1;
    }
    return ng;
}

static int cmp_group(const void *x, const void *y) {
    const rc_group *a = x, *b = y;
    return (a->node->id > b->node->id) - (a->node->id < b->node->id);
}

/* Validates the commands and sets their OUT fields to "no answer yet". */
static int prepare(sx_rc *c, sx_rc_cmd *cmds, rc_state *st, int n, sx_err *err) {
    for (int i = 0; i < n; i++) {
        sx_rc_cmd *cmd = &cmds[i];
        cmd->reply = NULL;
        cmd->status = SX_EIO;
        cmd->err = (sx_err){0};
        cmd->acked = -1;
        cmd->node[0] = '\0';
        cmd->slot = -1;
        if (cmd->at) {
            sx_rc_addr a;
            if (cmd->argc < 1 || !cmd->argv || sx_rc_parse_addr(cmd->at, strlen(cmd->at), &a) < 0 || !a.host[0])
                return sx_err_set(err, SX_EINVAL, "command %d: needs a name and a node \"host:port\"", i);
            if (!(st[i].pinned = node_get(c, &a))) return sx_err_set(err, SX_ENOMEM, "command %d: too many nodes", i);
            continue;
        }
        if (cmd->argc < 1 || !cmd->argv || (!cmd->key && cmd->argc < 2))
            return sx_err_set(err, SX_EINVAL, "command %d: needs a name and a key", i);
        const char *key = cmd->key ? cmd->key : cmd->argv[1];
        size_t len = cmd->key ? cmd->key_len : cmd->argvlen ? cmd->argvlen[1] : strlen(key);
        cmd->slot = sx_rc_key_slot(key, len);
    }
    return 0;
}

static int exec_impl(sx_rc *c, sx_rc_cmd *cmds, int n, int wait_replicas, int wait_ms, sx_err *err) {
    if (n < 0 || (n > 0 && !cmds)) return sx_err_set(err, SX_EINVAL, "sx_rc_exec: bad arguments");
    if (n == 0) return 0;
    rc_call k = {.c = c, .cmds = cmds, .n = n, .wait_replicas = wait_replicas, .wait_ms = wait_ms,
                 .deadline = sx_now() + c->opt.deadline_ms / 1000.0,
                 .seed = atomic_fetch_add(&c->rr, 1)};
    k.st = calloc((size_t)n, sizeof *k.st);
    rc_group *groups = calloc((size_t)n, sizeof *groups);
    rc_entry *entries = malloc((size_t)(4 * n) * sizeof *entries);
    int rc = !k.st || !groups || !entries ? sx_err_set(err, SX_ENOMEM, "sx_rc_exec: out of memory")
                                          : prepare(c, cmds, k.st, n, err);
    if (rc < 0) {
        free(k.st);
        free(groups);
        free(entries);
        return rc;
    }
    if (c->opt.refresh_every_ms > 0 &&
        now_us() - atomic_load(&c->last_refresh_try_us) > (int64_t)c->opt.refresh_every_ms * 1000)
        atomic_store(&c->refresh_wanted, 1);
    double backoff = BACKOFF_MIN_S;
    int pending = n;
    while (pending > 0 && sx_now() < k.deadline) {
        int ng = round_plan(&k, groups);
        /* Connections are taken in node order: a call holding one node's
         * connection while waiting for another's can then never wait for a
         * call that waits for it (with pools full, any other order can
         * deadlock until the deadline). */
        qsort(groups, (size_t)ng, sizeof *groups, cmp_group);
        int used = 0;
        for (int gi = 0; gi < ng; gi++) {
            int ne = 2; /* READONLY/READWRITE, WAIT */
            for (int i = groups[gi].first; i >= 0; i = k.st[i].next) ne += k.st[i].asking ? 2 : 1;
            group_send(&k, &groups[gi], entries + used);
            used += ne;
        }
        groups_read(&k, groups, ng);
        for (int gi = 0; gi < ng; gi++)
            if (groups[gi].conn) conn_put(groups[gi].node, groups[gi].conn, groups[gi].failed);
        int want_backoff = 0;
        for (int i = 0; i < n; i++) {
            rc_state *s = &k.st[i];
            if (s->done) continue;
            if (s->outcome == O_WAITING) {
                want_backoff = 1;
                continue;
            }
            settle(&k, i, &want_backoff);
            if (!s->done && (s->pinned || s->attempts >= c->opt.max_attempts)) s->done = 1;
            if (s->done) pending--;
        }
        refresh_soon(c);
        if (pending > 0 && want_backoff) {
            double left = k.deadline - sx_now();
            double t = backoff < left ? backoff : left;
            if (t > 0) {
                struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
                nanosleep(&ts, NULL);
            }
            backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
        }
    }
    refresh_soon(c);

    int n_failed = 0, first = -1;
    for (int i = 0; i < n; i++) {
        sx_rc_cmd *cmd = &cmds[i];
        if (!k.st[i].done && !cmd->err.code)
            sx_err_set(&cmd->err, SX_EIO, "slot %d: no reply within %d ms", cmd->slot, c->opt.deadline_ms);
        if (cmd->err.code == 0) continue;
        cmd->status = cmd->err.code;
        if (cmd->status != SX_EBUSY && cmd->status != SX_EINVAL) {
            freeReplyObject(cmd->reply);
            cmd->reply = NULL;
        }
        if (cmd->status != SX_EINVAL) atomic_fetch_add(&c->n_failed, 1);
        if (first < 0) first = i;
        n_failed++;
    }
    free(k.st);
    free(groups);
    free(entries);
    if (n_failed == 0) return 0;
    return sx_err_set(err, cmds[first].status, "%d of %d commands failed; first: %s", n_failed, n,
                      cmds[first].err.msg);
}

int sx_rc_exec(sx_rc *c, sx_rc_cmd *cmds, int n, sx_err *err) {
    return exec_impl(c, cmds, n, -1, 0, err);
}

int sx_rc_exec_wait(sx_rc *c, sx_rc_cmd *cmds, int n, int numreplicas, int timeout_ms, sx_err *err) {
    if (numreplicas < 0 || timeout_ms < 0)
        return sx_err_set(err, SX_EINVAL, "sx_rc_exec_wait: negative replicas or timeout");
    return exec_impl(c, cmds, n, numreplicas, timeout_ms, err);
}

void sx_rc_cmd_reset(sx_rc_cmd *cmds, int n) {
    for (int i = 0; i < n; i++) {
        freeReplyObject(cmds[i].reply);
        cmds[i].reply = NULL;
        cmds[i].status = 0;
        cmds[i].err = (sx_err){0};
        cmds[i].acked = -1;
        cmds[i].slot = -1;
        cmds[i].node[0] = '\0';
        cmds[i].seconds = 0;
    }
}

/* ---- introspection -------------------------------------------------------- */

void sx_rc_stats_get(sx_rc *c, sx_rc_stats *out) {
    *out = (sx_rc_stats){0};
    pthread_rwlock_rdlock(&c->map_lock);
    out->masters = c->n_shards;
    for (int i = 0; i < c->n_shards; i++) {
        out->replicas += c->shards[i].n_replicas;
        out->nodes_down += node_is_down(c->shards[i].master);
        for (int j = 0; j < c->shards[i].n_replicas; j++) out->nodes_down += node_is_down(c->shards[i].replicas[j]);
    }
    for (int s = 0; s < SX_RC_SLOTS; s++) out->slots_covered += c->slot[s] >= 0;
    out->last_refresh = c->last_refresh;
    pthread_rwlock_unlock(&c->map_lock);
    out->refreshes = atomic_load(&c->n_refresh);
    out->refresh_errors = atomic_load(&c->n_refresh_err);
    out->commands = atomic_load(&c->n_commands);
    out->moved = atomic_load(&c->n_moved);
    out->ask = atomic_load(&c->n_ask);
    out->busy_retries = atomic_load(&c->n_busy);
    out->node_errors = atomic_load(&c->n_node_err);
    out->failed = atomic_load(&c->n_failed);
}

static void node_info(rc_node *nd, sx_rc_node_info *o) {
    snprintf(o->addr, sizeof o->addr, "%s", nd->addr);
    o->is_master = atomic_load(&nd->role);
    o->down = node_is_down(nd);
    o->requests = atomic_load(&nd->requests);
    o->errors = atomic_load(&nd->errors);
    pthread_mutex_lock(&nd->mu);
    o->conns = nd->n_open;
    snprintf(o->last_error, sizeof o->last_error, "%s", nd->last_error);
    pthread_mutex_unlock(&nd->mu);
}

int sx_rc_nodes(sx_rc *c, sx_rc_node_info *out, int cap) {
    pthread_mutex_lock(&c->nodes_mu);
    int k = 0;
    for (int want = 1; want >= -1; want--)
        for (int i = 0; i < c->n_nodes; i++) {
            if (atomic_load(&c->nodes[i]->role) != want) continue;
            if (k < cap) node_info(c->nodes[i], &out[k]);
            k++;
        }
    pthread_mutex_unlock(&c->nodes_mu);
    return k;
}

void sx_rc_route_reads(sx_rc *c, const int *slots, int n, char (*addr)[64]) {
    uint64_t seed = atomic_fetch_add(&c->rr_routed, 1);
    for (int i = 0; i < n; i++) {
        int role;
        rc_node *nd = slots[i] >= 0 && slots[i] < SX_RC_SLOTS ? route(c, slots[i], 1, seed, &role) : NULL;
        snprintf(addr[i], 64, "%s", nd ? nd->addr : "");
    }
}

int sx_rc_slot_master(sx_rc *c, int slot, char *addr, size_t cap) {
    if (slot < 0 || slot >= SX_RC_SLOTS) return SX_EINVAL;
    int rc = SX_ENOTFOUND;
    pthread_rwlock_rdlock(&c->map_lock);
    if (c->slot[slot] >= 0) {
        snprintf(addr, cap, "%s", c->shards[c->slot[slot]].master->addr);
        rc = 0;
    }
    pthread_rwlock_unlock(&c->map_lock);
    return rc;
}

/* ---- life cycle ------------------------------------------------------------ */

void sx_rc_options_default(sx_rc_options *o) {
    *o = (sx_rc_options){
        .connect_timeout_ms = 500,
        .io_timeout_ms = 1000,
        .deadline_ms = 2000,
        .max_attempts = 6,
        .pool_size = 8,
        .refresh_interval_ms = 200,
        .down_ms = 1000,
        .refresh_every_ms = 10000,
        .replica_reads = 1,
        .retry_unsure_writes = 0,
    };
}

/* Parses the comma-separated seed list into c->seeds. */
static int parse_seeds(sx_rc *c, const char *seeds, sx_err *err) {
    const char *p = seeds;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',' && *end != ' ') end++;
        if (c->n_seeds == MAX_SEEDS) return sx_err_set(err, SX_EINVAL, "more than %d seeds", MAX_SEEDS);
        sx_rc_addr *a = &c->seeds[c->n_seeds];
        if (sx_rc_parse_addr(p, (size_t)(end - p), a) < 0 || a->host[0] == '\0')
            return sx_err_set(err, SX_EINVAL, "bad seed '%.*s' (want host:port)", (int)(end - p > 100 ? 100 : end - p), p);
        c->n_seeds++;
        p = end;
    }
    if (c->n_seeds == 0) return sx_err_set(err, SX_EINVAL, "no seed node given (want host:port[,host:port...])");
    return 0;
}

int sx_rc_create(const char *seeds, const sx_rc_options *opt, sx_rc **out, sx_err *err) {
    *out = NULL;
    sx_rc_options o;
    if (opt) o = *opt;
    else sx_rc_options_default(&o);
    if (o.connect_timeout_ms < 1 || o.io_timeout_ms < 1 || o.deadline_ms < 1 || o.max_attempts < 1 ||
        o.pool_size < 1 || o.refresh_interval_ms < 0 || o.down_ms < 0 || o.refresh_every_ms < 0)
        return sx_err_set(err, SX_EINVAL, "cluster client: timeouts, attempts and pool size must be positive");
    sx_rc *c = calloc(1, sizeof *c);
    if (!c) return sx_err_set(err, SX_ENOMEM, "cluster client: out of memory");
    c->opt = o;
    pthread_mutex_init(&c->nodes_mu, NULL);
    pthread_mutex_init(&c->refresh_mu, NULL);
    sx_rwlock_init(&c->map_lock);
    for (int s = 0; s < SX_RC_SLOTS; s++) c->slot[s] = -1;
    int rc = parse_seeds(c, seeds ? seeds : "", err);
    if (rc == 0) rc = sx_rc_refresh(c, err);
    if (rc < 0) {
        sx_rc_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void sx_rc_free(sx_rc *c) {
    if (!c) return;
    for (int i = 0; i < c->n_nodes; i++) node_free(c->nodes[i]);
    free(c->nodes);
    free(c->shards);
    pthread_mutex_destroy(&c->nodes_mu);
    pthread_mutex_destroy(&c->refresh_mu);
    pthread_rwlock_destroy(&c->map_lock);
    free(c);
}
