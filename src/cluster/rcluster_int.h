/*
 * rcluster_int.h - the pure parts of the Redis Cluster client (rcluster.c):
 * parsing CLUSTER SLOTS, redirections and addresses. No sockets, no state.
 * Not a public API; the unit tests include it to reach the pieces.
 */
#ifndef SX_RCLUSTER_INT_H
#define SX_RCLUSTER_INT_H

#include "rcluster.h"

#define SX_RC_HOST_MAX 256
#define SX_RC_MAX_COPIES 8 /* master + replicas kept per slot range */

/* A node address. host is "" when Redis left it out ("the host you asked"). */
typedef struct sx_rc_addr {
    char host[SX_RC_HOST_MAX];
    int port;
} sx_rc_addr;

/* One range of CLUSTER SLOTS: slots start..end (inclusive), served by
 * nodes[0] (the master) and nodes[1..n_nodes) (its replicas). */
typedef struct sx_rc_range {
    int start, end;
    int n_nodes;
    sx_rc_addr nodes[SX_RC_MAX_COPIES];
} sx_rc_range;

/* What a reply asks the client to do. */
typedef enum {
    SX_RC_REPLY_OK = 0,   /* an answer (not an error) */
    SX_RC_REPLY_ERROR,    /* an error for the caller (WRONGTYPE, ERR ...) */
    SX_RC_REPLY_MOVED,    /* the slot lives elsewhere now: update the map */
    SX_RC_REPLY_ASK,      /* this once, ask the named node (after ASKING) */
    SX_RC_REPLY_BUSY,     /* TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN: retry */
    SX_RC_REPLY_READONLY, /* a write reached a replica: refresh and retry */
} sx_rc_reply_kind;

/* Parses "host:port", "[v6]:port" or "v6:port" (the last colon splits) of
 * length len into *out. An empty host is allowed (Redis's "same host").
 * Returns 0 or SX_EINVAL. */
int sx_rc_parse_addr(const char *s, size_t len, sx_rc_addr *out);

/* Classifies reply r. For MOVED and ASK, *slot and *addr (OUT, may be NULL)
 * get the slot and node named by "MOVED 3999 127.0.0.1:6381"; a malformed
 * redirection counts as SX_RC_REPLY_ERROR. */
sx_rc_reply_kind sx_rc_classify(const redisReply *r, int *slot, sx_rc_addr *addr);

/* Parses a CLUSTER SLOTS reply into a malloc'd array of ranges (*out, *n_out;
 * caller frees *out). A node given with an empty host gets asked_host. Nodes
 * with an unknown endpoint ("?") are skipped, extra replicas beyond
 * SX_RC_MAX_COPIES ignored. Returns 0, SX_ECORRUPT (not the expected shape,
 * slot out of range, overlapping ranges) or SX_ENOMEM. */
int sx_rc_parse_slots(const redisReply *r, const char *asked_host, sx_rc_range **out,
                      int *n_out, sx_err *err);

#endif /* SX_RCLUSTER_INT_H */
