/*
 * rcproto.c - libFuzzer target for the cluster client's reply handling
 * (src/cluster/rcproto.c): what a Redis node -- or anything listening where
 * a node should be -- sends back.
 *
 * The input is a stream of RESP bytes; hiredis's reader (the one the client
 * uses) turns it into replies, and every reply goes through the client's
 * own code: sx_rc_classify (MOVED/ASK/TRYAGAIN... redirections, with the
 * slot and address they name) and sx_rc_parse_slots (CLUSTER SLOTS), and
 * every bulk or status string through sx_rc_parse_addr. Checked beyond "no
 * crash, no leak": a redirection names a slot in 0..16383 and a port in
 * 0..65535; accepted slot ranges are within 0..16383, ordered start <= end,
 * do not overlap, and have 1..SX_RC_MAX_COPIES nodes with NUL-terminated
 * hosts. Build and run:
 *
 *     make fuzz FUZZ_TARGETS=rcproto FUZZ_SECONDS=300
 */
#include <hiredis/hiredis.h>

#include "../../src/cluster/rcluster_int.h"
#include "fuzz.h"

static void check_addr(const sx_rc_addr *a) {
    FZ_CHECK(memchr(a->host, '\0', sizeof a->host) != NULL);
    FZ_CHECK(a->port >= 0 && a->port <= 65535);
}

static void exercise(const redisReply *r) {
    int slot = -1;
    sx_rc_addr addr;
    sx_rc_reply_kind k = sx_rc_classify(r, &slot, &addr);
    if (k == SX_RC_REPLY_MOVED || k == SX_RC_REPLY_ASK) {
        FZ_CHECK(slot >= 0 && slot < 16384);
        check_addr(&addr);
    }
    if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) &&
        sx_rc_parse_addr(r->str, r->len, &addr) == 0)
        check_addr(&addr);
    sx_rc_range *ranges = NULL;
    int n = 0;
    sx_err err = {0};
    if (sx_rc_parse_slots(r, "10.0.0.1", &ranges, &n, &err) == 0) {
        char seen[16384] = {0};
        for (int i = 0; i < n; i++) {
            FZ_CHECK(ranges[i].start >= 0 && ranges[i].start <= ranges[i].end && ranges[i].end < 16384);
            FZ_CHECK(ranges[i].n_nodes >= 1 && ranges[i].n_nodes <= SX_RC_MAX_COPIES);
            for (int j = 0; j < ranges[i].n_nodes; j++) {
                check_addr(&ranges[i].nodes[j]);
                FZ_CHECK(ranges[i].nodes[j].host[0] != '\0'); /* "" became the asked host */
            }
            for (int s = ranges[i].start; s <= ranges[i].end; s++) {
                FZ_CHECK(!seen[s]);
                seen[s] = 1;
            }
        }
    } else {
        FZ_CHECK(err.msg[0] != '\0');
    }
    free(ranges);
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements && i < 64; i++) exercise(r->element[i]);
}

/* Whether the input announces an array of over 65536 elements: hiredis
 * 0.14's reader callocs the whole element table up front (8 bytes each, so
 * "*400000000" asks for 3 GB), which is hiredis's limit to live with, not
 * the code under test (docs/testing.md). */
static int huge_array(const uint8_t *d, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '*') continue;
        unsigned long long v = 0;
        size_t j = i + 1;
        while (j < n && d[j] >= '0' && d[j] <= '9' && v <= 65536) v = v * 10 + (d[j++] - '0');
        if (v > 65536) return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (huge_array(data, size)) return 0;
    redisReader *rd = redisReaderCreate();
    if (!rd) return 0;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        void *reply = NULL;
        for (int i = 0; i < 64 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply; i++) {
            exercise(reply);
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    redisReaderFree(rd);
    return 0;
}
