/*
 * rcluster.h - a Redis Cluster client over hiredis's synchronous API.
 *
 * The gateway (`semdex serve --cluster`) and `semdex ingest --cluster` talk to
 * Redis Cluster through this one header. The client keeps the slot map, a
 * small pool of connections per node, and routes each command to the node
 * that owns its key. sx_rc_exec() runs a batch: commands are grouped by node,
 * each group is pipelined on one connection, and all groups are in flight at
 * once, so a fan-out to 16 shard keys on 3 masters costs about one round trip.
 * Redirections (MOVED, ASK), busy states (TRYAGAIN, CLUSTERDOWN, LOADING) and
 * dead nodes (failover) are handled inside the call, within a deadline.
 * Every function is thread-safe; one sx_rc serves all request threads.
 *
 * Worked example: search two shard keys (reads may go to replicas), then
 * write one and make sure one replica has it.
 *
 *     sx_rc_options opt;
 *     sx_rc_options_default(&opt);
 *     opt.deadline_ms = 2000;
 *     sx_rc *rc;
 *     sx_err err = {0};
 *     if (sx_rc_create("10.0.0.1:7000,10.0.0.2:7000", &opt, &rc, &err) < 0)
 *         return fprintf(stderr, "semdex: %s\n", err.msg), 1;
 *
 *     const char *a0[] = {"SEMDEX.SEARCH", "semdex:{shard-00}", blob};
 *     const char *a1[] = {"SEMDEX.SEARCH", "semdex:{shard-01}", blob};
 *     size_t l0[] = {13, 17, blob_len}, l1[] = {13, 17, blob_len};
 *     sx_rc_cmd cmds[2] = {
 *         {.argc = 3, .argv = a0, .argvlen = l0, .read_only = 1},
 *         {.argc = 3, .argv = a1, .argvlen = l1, .read_only = 1},
 *     };                                  // key: NULL -> argv[1] routes
 *     int rc_status = sx_rc_exec(rc, cmds, 2, &err);
 *     for (int i = 0; i < 2; i++) {
 *         if (cmds[i].status == 0) use(cmds[i].reply);
 *         else sx_log(SX_LOG_WARN, "%s", cmds[i].err.msg);
 *     }
 *     sx_rc_cmd_reset(cmds, 2);           // frees the replies
 *
 *     const char *w[] = {"SEMDEX.UPSERT", "semdex:{shard-07}", rec};
 *     size_t wl[] = {13, 17, rec_len};
 *     sx_rc_cmd up = {.argc = 3, .argv = w, .argvlen = wl};
 *     if (sx_rc_exec_wait(rc, &up, 1, 1, 500, &err) < 0 || up.acked < 1)
 *         ...;                            // not durable on a replica: 503
 *     sx_rc_cmd_reset(&up, 1);
 *     sx_rc_free(rc);
 *
 * Replies are hiredis's redisReply trees, owned by the caller
 * (sx_rc_cmd_reset or freeReplyObject). See docs/cluster-client.md for how
 * routing, retries and failover work.
 */
#ifndef SX_RCLUSTER_H
#define SX_RCLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"

#define SX_RC_SLOTS 16384

/* A client: slot map, node table, connection pools. Opaque. */
typedef struct sx_rc sx_rc;

/* Tunables. Start from sx_rc_options_default(); every time is in ms. */
typedef struct sx_rc_options {
    int connect_timeout_ms;  /* one TCP connect (default 500) */
    int io_timeout_ms;       /* one round trip on one node before it counts as
                                failed and the command moves on (default 1000) */
    int deadline_ms;         /* whole sx_rc_exec call, retries included (2000) */
    int max_attempts;        /* redirections + node failures per command (6);
                                busy retries are bounded by the deadline */
    int pool_size;           /* connections per node, at most (8) */
    int refresh_interval_ms; /* at most one slot-map refresh per interval,
                                except sx_rc_refresh (default 200) */
    int down_ms;             /* a node that failed is avoided this long (1000) */
    int refresh_every_ms;    /* reload a map older than this on the next call,
                                to see new replicas; 0: only on errors (10000) */
    int replica_reads;       /* 1: read_only commands are spread over master and
                                replicas; 0: everything goes to masters (1) */
    int retry_unsure_writes; /* 1: a write whose reply was lost (timeout, reset
                                after sending) is sent again; set it when all
                                writes are idempotent (upserts). 0: it fails
                                with SX_EIO "may have been applied" (default 0) */
} sx_rc_options;

/* One command of a batch. Fill the IN fields (zero the rest, e.g. with a
 * designated initializer); sx_rc_exec fills the OUT fields. */
typedef struct sx_rc_cmd {
    /* IN */
    int argc;
    const char **argv;
    const size_t *argvlen; /* NULL: every argv[i] is a C string */
    const char *key;       /* the key that routes the command; NULL: argv[1] */
    size_t key_len;        /* used when key is not NULL */
    const char *at;        /* "host:port": run on exactly this node instead
                              (a command that names no key, or keys the
                              caller has routed itself, sx_rc_route_reads);
                              key is then unused and slot is -1. No
                              redirection is followed and no other node
                              tried: a failure, a busy node or a refused
                              connection is the command's status at once,
                              for the caller to fall back on routed ones */
    int read_only;         /* 1: may be served by a replica (possibly a little
                              behind its master, see docs/cluster-client.md).
                              0: treated as a write: master only, followed by
                              WAIT in sx_rc_exec_wait, not resent after a lost
                              reply unless retry_unsure_writes */
    /* OUT */
    redisReply *reply;     /* the answer, also for a Redis error reply such as
                              WRONGTYPE; NULL when no node answered. Caller
                              frees (freeReplyObject or sx_rc_cmd_reset) */
    int status;            /* 0: a non-error reply. SX_EINVAL: Redis answered
                              with an error (reply->str has it). SX_EIO: no
                              node answered in time. SX_EBUSY: the cluster
                              stayed busy (TRYAGAIN, CLUSTERDOWN, LOADING) */
    sx_err err;            /* when status < 0: why, naming slot and node, e.g.
                              "slot 1234: no reachable node (127.0.0.1:7001:
                              Connection refused)" */
    int acked;             /* sx_rc_exec_wait only: replicas that acknowledged
                              WAIT on the master that ran this write; -1 when
                              unknown or not a write */
    int slot;              /* the key's hash slot */
    char node[64];         /* "host:port" that gave the reply, "" if none */
    double seconds;        /* from sending node's pipeline to this reply, on
                              the try that gave it (metrics) */
} sx_rc_cmd;

/* Health and metrics figures (a consistent snapshot). */
typedef struct sx_rc_stats {
    int masters;            /* masters in the slot map */
    int replicas;           /* replicas in the slot map */
    int nodes_down;         /* map nodes that failed within down_ms */
    int slots_covered;      /* slots with a known master (16384 when healthy) */
    double last_refresh;    /* sx_wall_time() of the last good refresh, 0 never */
    uint64_t refreshes;     /* slot-map refreshes that succeeded */
    uint64_t refresh_errors;/* refreshes that reached no node */
    uint64_t commands;      /* commands sent (each try counts) */
    uint64_t moved, ask;    /* redirections followed */
    uint64_t busy_retries;  /* TRYAGAIN / CLUSTERDOWN / LOADING retries */
    uint64_t node_errors;   /* connects or round trips that failed */
    uint64_t failed;        /* commands that ended with status < 0, other than
                               Redis error replies */
} sx_rc_stats;

/* One node, for /health and per-node metrics. */
typedef struct sx_rc_node_info {
    char addr[64];          /* "host:port" */
    int is_master;          /* 1 master, 0 replica, -1 no longer in the map */
    int down;               /* failed within down_ms */
    int conns;              /* open connections (idle + in use) */
    uint64_t requests;      /* commands sent to it */
    uint64_t errors;        /* failed connects / round trips */
    char last_error[128];   /* "" when none yet */
} sx_rc_node_info;

/* Fills o with the defaults listed in sx_rc_options. */
void sx_rc_options_default(sx_rc_options *o);

/* Creates a client from seeds "host:port[,host:port...]" (opt NULL: the
 * defaults) and loads the slot map from the first seed that answers
 * CLUSTER SLOTS. The seeds are kept: when every known node has changed, the
 * map is reloaded from them. Returns 0, SX_EINVAL (bad seed list or options),
 * SX_EIO (no seed answered; err names each seed's error) or SX_ENOMEM.
 * *out (OUT) is freed with sx_rc_free. */
int sx_rc_create(const char *seeds, const sx_rc_options *opt, sx_rc **out, sx_err *err);

/* Closes every connection and frees the client. NULL is a no-op. No call may
 * be running on it. */
void sx_rc_free(sx_rc *c);

/* Reloads the slot map now (CLUSTER SLOTS from a known node that answers,
 * else from a seed), ignoring the rate limit. Returns 0 or SX_EIO. */
int sx_rc_refresh(sx_rc *c, sx_err *err);

/* Runs n commands, each on the node owning its key (a replica when read_only
 * and replica_reads), grouped and pipelined per node, all nodes at once.
 * Follows MOVED and ASK, retries busy errors with a short backoff and moves
 * commands off failed nodes (refreshing the slot map), until each command has
 * a reply, max_attempts or deadline_ms is reached. Commands on one node run
 * in the order given; commands on different nodes have no order.
 * Every command gets its OUT fields set. Returns 0 when every status is 0,
 * else the first failing command's status with err saying how many failed
 * and why the first did; SX_EINVAL or SX_ENOMEM before anything is sent. */
int sx_rc_exec(sx_rc *c, sx_rc_cmd *cmds, int n, sx_err *err);

/* sx_rc_exec, and after the writes (read_only == 0) of each master, on the
 * same connection, WAIT numreplicas timeout_ms: each write's acked says how
 * many replicas had it when WAIT returned. The server blocks up to timeout_ms,
 * so keep it below deadline_ms. The return value does not look at acked: the
 * caller decides what too few replicas means. */
int sx_rc_exec_wait(sx_rc *c, sx_rc_cmd *cmds, int n, int numreplicas, int timeout_ms,
                    sx_err *err);

/* Frees the replies of n commands and clears their OUT fields, so the array
 * can be run again. */
void sx_rc_cmd_reset(sx_rc_cmd *cmds, int n);

/* The hash slot (0..16383) of a key: CRC16 (XMODEM) of the key, or of the
 * part between the first '{' and the next '}' when that part is not empty. */
int sx_rc_key_slot(const char *key, size_t len);

/* CRC16-XMODEM (polynomial 0x1021, initial value 0), as Redis Cluster uses. */
uint16_t sx_rc_crc16(const void *buf, size_t len);

/* Fills *out with current figures. */
void sx_rc_stats_get(sx_rc *c, sx_rc_stats *out);

/* Writes up to cap nodes (masters first) into out; returns how many the
 * client knows (may exceed cap). */
int sx_rc_nodes(sx_rc *c, sx_rc_node_info *out, int cap);

/* Where one sx_rc_exec call would send read_only commands for each of n
 * slots: addr[i] (OUT) is the copy's "host:port", "" when no node serves
 * slots[i]. As in sx_rc_exec, one call reads all the slots of a master's
 * range from the same copy, successive calls rotate over the copies, and
 * nodes that failed lately are avoided. For commands pinned with `at`. */
void sx_rc_route_reads(sx_rc *c, const int *slots, int n, char (*addr)[64]);

/* The master "host:port" of slot into addr (size cap). Returns 0, or
 * SX_ENOTFOUND when the map has no master for it. */
int sx_rc_slot_master(sx_rc *c, int slot, char *addr, size_t cap);

#endif /* SX_RCLUSTER_H */
