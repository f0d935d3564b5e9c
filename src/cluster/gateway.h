/*
 * gateway.h - the cluster backend: the papers live in S shard keys of a Redis
 * Cluster running the semdex module (src/cluster/module.c). A gateway is
 * stateless; any number of them serve one cluster.
 *
 *     sx_gateway_opts o = sx_gateway_defaults();
 *     o.dim = 384;
 *     sx_backend *b;
 *     if (sx_backend_open_cluster("127.0.0.1:7000,127.0.0.1:7001", &o, &b, &err) < 0) ...
 *     ... the sx_backend_* calls of backend.h ...
 *     sx_backend_close(b);
 *
 * The layout of a collection in a cluster is fixed by two facts: the shard
 * count S, kept in the plain string key `semdex:meta` (written once, by the
 * first gateway or ingest that finds it absent), and the routing contract
 * sx_shard_route (shard.h): paper id -> shard i -> key sx_gateway_shard_key(i, S).
 */
#ifndef SX_GATEWAY_H
#define SX_GATEWAY_H

#include "../server/backend.h"

/* Shard keys of a new collection when nothing says otherwise (see
 * docs/cluster.md for the measurement behind it). */
#define SX_GATEWAY_DEFAULT_SHARDS 16
#define SX_GATEWAY_MAX_SHARDS 1024

typedef struct sx_gateway_opts {
    int dim;             /* vector dimension the model makes */
    int n_shards;        /* 0: the cluster's (or SX_GATEWAY_DEFAULT_SHARDS for
                            a new collection); else must match the cluster's */
    int wait_replicas;   /* replicas a write must reach before it is
                            acknowledged; -1: 1 when the cluster has replicas */
    int wait_timeout_ms; /* how long WAIT may block (1000) */
    int deadline_ms;     /* one call to the cluster, retries included (2000) */
    int replica_reads;   /* 1: searches and gets are spread over replicas (1) */
    int per_key_search;  /* 1: one SEMDEX.SEARCH per shard key instead of one
                            SEMDEX.MSEARCH per node (0; for comparison, and
                            for modules older than MSEARCH) */
} sx_gateway_opts;

/* The defaults listed above. */
sx_gateway_opts sx_gateway_defaults(void);

/* Connects to the cluster through seeds "host:port[,host:port...]", reads
 * (or, for a new collection, writes) semdex:meta, and returns the backend.
 * SX_EIO when no seed answers, SX_EINVAL when the cluster's shard count or
 * dimension disagrees with the options. */
int sx_backend_open_cluster(const char *seeds, const sx_gateway_opts *o, sx_backend **out,
                            sx_err *err);

/* Writes the name of shard key i of n_shards into buf: "semdex:{shard-07}",
 * or "semdex:{shard-07-12}" with the smallest suffix that puts its hash slot
 * in the i-th of n_shards equal ranges of the 16,384 slots. A fixed
 * contract, like the routing: the names of a collection's keys. */
void sx_gateway_shard_key(int i, int n_shards, char *buf, size_t cap);

#endif
