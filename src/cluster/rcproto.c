/*
 * rcproto.c - the Redis Cluster protocol without the sockets: hash slots,
 * CLUSTER SLOTS replies and redirection errors.
 *
 * Hash slots. A key belongs to slot CRC16(key) mod 16384, where CRC16 is the
 * XMODEM variant (polynomial 0x1021, initial value 0, no reflection, no final
 * xor) named by the Redis Cluster specification. When the key holds a '{'
 * followed later by a '}' with at least one byte between them, only those
 * bytes are hashed (a "hash tag"): semdex names its shard keys
 * "semdex:{shard-07}" so that the tag, not the prefix, places them. The CRC is
 * computed bit by bit: keys are short and this is not a hot loop next to a
 * network round trip, so a 512-byte table would buy nothing measurable.
 *
 * CLUSTER SLOTS returns one array per slot range: start, end, then one array
 * per node serving it (master first), each host, port, node id and, since
 * Redis 7, a map of extra endpoints. An empty host means "the host you asked"
 * and "?" an endpoint the node does not know; the parser fills the first in
 * and skips the second. Ranges that overlap or leave 0..16383 are refused as
 * corrupt rather than half-installed.
 *
 * Redirections. "-MOVED <slot> <host:port>" says the slot has a new owner for
 * good, "-ASK <slot> <host:port>" that this one key is being imported by
 * another node. TRYAGAIN (multi-key command during a migration), CLUSTERDOWN
 * (the cluster lost a slot's master), LOADING (a node reading its dataset)
 * and MASTERDOWN (a replica cut off from its master) are worth a retry after
 * a pause; READONLY (a write that reached a replica) means the map is stale.
 * Everything else is the caller's error reply.
 */
#include "rcluster_int.h"

#include <stdlib.h>
#include <string.h>

uint16_t sx_rc_crc16(const void *buf, size_t len) {
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int sx_rc_key_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from) {
            key += from;
            len = (size_t)(close - key);
        }
    }
    return sx_rc_crc16(key, len) & (SX_RC_SLOTS - 1);
}

int sx_rc_parse_addr(const char *s, size_t len, sx_rc_addr *out) {
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon) return SX_EINVAL;
    const char *host = s;
    size_t host_len = (size_t)(colon - s);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    size_t port_len = len - (size_t)(colon + 1 - s);
    if (host_len >= sizeof out->host || port_len == 0 || port_len > 5) return SX_EINVAL;
    long port = 0;
    for (size_t i = 0; i < port_len; i++) {
        char ch = colon[1 + i];
        if (ch < '0' || ch > '9') return SX_EINVAL;
        port = port * 10 + (ch - '0');
    }
    if (port < 1 || port > 65535) return SX_EINVAL;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (int)port;
    return 0;
}

/* Does the error text s (length len) start with the word w? */
static int starts_with_word(const char *s, size_t len, const char *w) {
    size_t n = strlen(w);
    return len >= n && memcmp(s, w, n) == 0 && (len == n || s[n] == ' ');
}

/* Parses "<slot> <host:port>" after a MOVED or ASK. Returns 0 or -1. */
static int parse_redirect(const char *s, size_t len, int *slot, sx_rc_addr *addr) {
    size_t i = 0;
    long v = 0;
    if (i >= len || s[i] < '0' || s[i] > '9') return -1;
    while (i < len && s[i] >= '0' && s[i] <= '9' && v < SX_RC_SLOTS) v = v * 10 + (s[i++] - '0');
    if (v >= SX_RC_SLOTS || i >= len || s[i] != ' ') return -1;
    i++;
    sx_rc_addr a;
    if (sx_rc_parse_addr(s + i, len - i, &a) < 0) return -1;
    if (slot) *slot = (int)v;
    if (addr) *addr = a;
    return 0;
}

sx_rc_reply_kind sx_rc_classify(const redisReply *r, int *slot, sx_rc_addr *addr) {
    if (!r || r->type != REDIS_REPLY_ERROR) return SX_RC_REPLY_OK;
    const char *s = r->str ? r->str : "";
    size_t len = r->str ? r->len : 0;
    if (starts_with_word(s, len, "MOVED"))
        return parse_redirect(s + 6, len - (len > 6 ? 6 : len), slot, addr) == 0
                   ? SX_RC_REPLY_MOVED : SX_RC_REPLY_ERROR;
    if (starts_with_word(s, len, "ASK"))
        return parse_redirect(s + 4, len - (len > 4 ? 4 : len), slot, addr) == 0
                   ? SX_RC_REPLY_ASK : SX_RC_REPLY_ERROR;
    if (starts_with_word(s, len, "TRYAGAIN") || starts_with_word(s, len, "CLUSTERDOWN") ||
        starts_with_word(s, len, "LOADING") || starts_with_word(s, len, "MASTERDOWN"))
        return SX_RC_REPLY_BUSY;
    if (starts_with_word(s, len, "READONLY")) return SX_RC_REPLY_READONLY;
    return SX_RC_REPLY_ERROR;
}

/* Reads one node entry [host, port, ...] of CLUSTER SLOTS into *a. Returns 1
 * when usable, 0 when its endpoint is unknown, -1 when malformed. */
static int parse_node(const redisReply *n, const char *asked_host, sx_rc_addr *a) {
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2) return -1;
    const redisReply *h = n->element[0], *p = n->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_INTEGER) return -1;
    if (p->integer < 1 || p->integer > 65535 || h->len >= sizeof a->host) return -1;
    /* A host name or address is printable ASCII without spaces: a NUL would
     * cut it short (found by tests/fuzz/rcproto.c), a space or control byte
     * is no host. */
    for (size_t i = 0; i < h->len; i++)
        if ((unsigned char)h->str[i] <= ' ' || (unsigned char)h->str[i] >= 0x7f) return -1;
    if (h->len == 1 && h->str[0] == '?') return 0;
    if (h->len == 0) {
        if (!asked_host || strlen(asked_host) >= sizeof a->host) return -1;
        strcpy(a->host, asked_host);
    } else {
        memcpy(a->host, h->str, h->len);
        a->host[h->len] = '\0';
    }
    a->port = (int)p->integer;
    return 1;
}

static int cmp_range(const void *a, const void *b) {
    const sx_rc_range *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

int sx_rc_parse_slots(const redisReply *r, const char *asked_host, sx_rc_range **out,
                      int *n_out, sx_err *err) {
    *out = NULL;
    *n_out = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return sx_err_set(err, SX_ECORRUPT, "CLUSTER SLOTS: not an array");
    sx_rc_range *ranges = calloc(r->elements ? r->elements : 1, sizeof *ranges);
    if (!ranges) return sx_err_set(err, SX_ENOMEM, "CLUSTER SLOTS: out of memory");
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER)
            goto corrupt;
        long long start = e->element[0]->integer, end = e->element[1]->integer;
        if (start < 0 || end < start || end >= SX_RC_SLOTS) goto corrupt;
        sx_rc_range *rg = &ranges[n];
        rg->start = (int)start;
        rg->end = (int)end;
        for (size_t j = 2; j < e->elements; j++) {
            sx_rc_addr a;
            int ok = parse_node(e->element[j], asked_host, &a);
            if (ok < 0) goto corrupt;
            if (ok == 0) {
                if (j == 2) break; /* no usable master: the range is skipped */
                continue;
            }
            if (rg->n_nodes < SX_RC_MAX_COPIES) rg->nodes[rg->n_nodes++] = a;
        }
        if (rg->n_nodes > 0) n++;
        else memset(rg, 0, sizeof *rg);
    }
    qsort(ranges, (size_t)n, sizeof *ranges, cmp_range);
    for (int i = 1; i < n; i++)
        if (ranges[i].start <= ranges[i - 1].end) {
            sx_err_set(err, SX_ECORRUPT, "CLUSTER SLOTS: ranges %d-%d and %d-%d overlap",
                       ranges[i - 1].start, ranges[i - 1].end, ranges[i].start, ranges[i].end);
            free(ranges);
            return SX_ECORRUPT;
        }
    *out = ranges;
    *n_out = n;
    return 0;
corrupt:
    free(ranges);
    return sx_err_set(err, SX_ECORRUPT, "CLUSTER SLOTS: unexpected reply shape");
}
