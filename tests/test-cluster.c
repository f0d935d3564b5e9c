/* Tests for src/cluster's Redis Cluster client: hash slots, CLUSTER SLOTS
 * parsing, redirection errors, seeds. The client against a real cluster is
 * tested by tests/e2e/redis-cluster-client.sh. */
#include "test.h"

#include "../src/cluster/rcluster_int.h"

/* Parses RESP bytes into a reply tree with hiredis's reader. */
static redisReply *resp(const char *bytes) {
    redisReader *rd = redisReaderCreate();
    CHECK(rd);
    CHECK_EQ(redisReaderFeed(rd, bytes, strlen(bytes)), REDIS_OK);
    void *r = NULL;
    CHECK_EQ(redisReaderGetReply(rd, &r), REDIS_OK);
    CHECK(r != NULL);
    redisReaderFree(rd);
    return r;
}

static int slot_of(const char *key) { return sx_rc_key_slot(key, strlen(key)); }

void test_cluster_key_slot(void) {
    /* The CRC16 check value of the XMODEM variant. */
    CHECK_EQ(sx_rc_crc16("123456789", 9), 0x31C3);
    CHECK_EQ(sx_rc_crc16("", 0), 0);
    /* Expected slots from `redis-cli CLUSTER KEYSLOT` on redis-server 7.0.15. */
    CHECK_EQ(slot_of("123456789"), 12739);
    CHECK_EQ(slot_of("foo"), 12182);
    CHECK_EQ(slot_of("bar"), 5061);
    CHECK_EQ(slot_of("user1000"), 3443);
    CHECK_EQ(slot_of("{user1000}.following"), 3443);
    CHECK_EQ(slot_of("foo{}{bar}"), 8363);    /* empty first tag: whole key */
    CHECK_EQ(slot_of("foo{{bar}}zap"), 4015); /* tag is "{bar" */
    CHECK_EQ(slot_of("{bar"), 4015);
    CHECK_EQ(slot_of("foo{bar}{zap}"), 5061); /* first tag only: "bar" */
    CHECK_EQ(slot_of("semdex:{shard-07}"), 4070);
    CHECK_EQ(slot_of(""), 0);
    CHECK_EQ(slot_of("a{b}c"), 3300);
    CHECK_EQ(slot_of("{}"), 15257);
    CHECK_EQ(slot_of("x{}"), 2608);
    CHECK_EQ(slot_of("}{a}"), 15495);
    /* Binary keys: the length counts, not a NUL. */
    CHECK_EQ(sx_rc_key_slot("foo\0zzz", 3), 12182);
    CHECK(sx_rc_key_slot("foo\0zzz", 7) != 12182);
}

void test_cluster_parse_addr(void) {
    sx_rc_addr a;
    CHECK_EQ(sx_rc_parse_addr("127.0.0.1:6381", 14, &a), 0);
    CHECK_STR(a.host, "127.0.0.1");
    CHECK_EQ(a.port, 6381);
    CHECK_EQ(sx_rc_parse_addr("[::1]:7000", 10, &a), 0);
    CHECK_STR(a.host, "::1");
    CHECK_EQ(a.port, 7000);
    CHECK_EQ(sx_rc_parse_addr("fe80::1:7001", 12, &a), 0);
    CHECK_STR(a.host, "fe80::1");
    CHECK_EQ(a.port, 7001);
    CHECK_EQ(sx_rc_parse_addr(":6379", 5, &a), 0); /* Redis's "same host" */
    CHECK_STR(a.host, "");
    CHECK_EQ(sx_rc_parse_addr("host", 4, &a), SX_EINVAL);
    CHECK_EQ(sx_rc_parse_addr("host:", 5, &a), SX_EINVAL);
    CHECK_EQ(sx_rc_parse_addr("host:0", 6, &a), SX_EINVAL);
    CHECK_EQ(sx_rc_parse_addr("host:65536", 10, &a), SX_EINVAL);
    CHECK_EQ(sx_rc_parse_addr("host:12a", 8, &a), SX_EINVAL);
    /* Only len bytes count. */
    CHECK_EQ(sx_rc_parse_addr("h:80,x:90", 4, &a), 0);
    CHECK_STR(a.host, "h");
    CHECK_EQ(a.port, 80);
}

void test_cluster_classify_replies(void) {
    int slot = -1;
    sx_rc_addr a = {{0}, 0};
    redisReply *r = resp("-MOVED 3999 127.0.0.1:6381\r\n");
    CHECK_EQ(sx_rc_classify(r, &slot, &a), SX_RC_REPLY_MOVED);
    CHECK_EQ(slot, 3999);
    CHECK_STR(a.host, "127.0.0.1");
    CHECK_EQ(a.port, 6381);
    freeReplyObject(r);

    r = resp("-ASK 16383 10.1.2.3:30002\r\n");
    CHECK_EQ(sx_rc_classify(r, &slot, &a), SX_RC_REPLY_ASK);
    CHECK_EQ(slot, 16383);
    CHECK_STR(a.host, "10.1.2.3");
    CHECK_EQ(a.port, 30002);
    freeReplyObject(r);

    r = resp("-MOVED 12 :7002\r\n"); /* endpoint left out: the same host */
    CHECK_EQ(sx_rc_classify(r, &slot, &a), SX_RC_REPLY_MOVED);
    CHECK_STR(a.host, "");
    CHECK_EQ(a.port, 7002);
    freeReplyObject(r);

    static const char *errors[] = {
        "-MOVED 16384 127.0.0.1:6381\r\n", /* slot out of range */
        "-MOVED x 127.0.0.1:6381\r\n",
        "-MOVED 12\r\n",
        "-ASK 12 nohost\r\n",
        "-MOVEDX 12 127.0.0.1:1\r\n",
        "-ERR unknown command 'FOO'\r\n",
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    };
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
        r = resp(errors[i]);
        CHECK_MSG(sx_rc_classify(r, &slot, &a) == SX_RC_REPLY_ERROR, "%s", errors[i]);
        freeReplyObject(r);
    }
    static const char *busy[] = {
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
        "-CLUSTERDOWN The cluster is down\r\n",
        "-CLUSTERDOWN Hash slot not served\r\n",
        "-LOADING Redis is loading the dataset in memory\r\n",
        "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
    };
    for (size_t i = 0; i < sizeof busy / sizeof *busy; i++) {
        r = resp(busy[i]);
        CHECK_MSG(sx_rc_classify(r, NULL, NULL) == SX_RC_REPLY_BUSY, "%s", busy[i]);
        freeReplyObject(r);
    }
    r = resp("-READONLY You can't write against a read only replica.\r\n");
    CHECK_EQ(sx_rc_classify(r, NULL, NULL), SX_RC_REPLY_READONLY);
    freeReplyObject(r);
    r = resp("+OK\r\n");
    CHECK_EQ(sx_rc_classify(r, NULL, NULL), SX_RC_REPLY_OK);
    freeReplyObject(r);
    r = resp("$-1\r\n");
    CHECK_EQ(sx_rc_classify(r, NULL, NULL), SX_RC_REPLY_OK);
    freeReplyObject(r);
}

/* One node entry of CLUSTER SLOTS as Redis 7.0 writes it: host ("h"), port,
 * id, and a (here empty) array of extra endpoints. */
#define NODE(port) "*4\r\n$1\r\nh\r\n:" #port "\r\n$2\r\nid\r\n*0\r\n"

void test_cluster_parse_slots(void) {
    /* Three masters with one replica each, out of order; the second range's
     * master was given with an empty host, its replica with "?" (unknown). */
    const char *bytes =
        "*4\r\n"
        "*4\r\n:10923\r\n:16383\r\n"
        "*4\r\n$9\r\n127.0.0.1\r\n:30003\r\n$2\r\nid\r\n*0\r\n"
        "*4\r\n$9\r\n127.0.0.1\r\n:30006\r\n$2\r\nid\r\n*0\r\n"
        "*4\r\n:0\r\n:5460\r\n"
        "*3\r\n$0\r\n\r\n:30001\r\n$2\r\nid\r\n"
        "*3\r\n$1\r\n?\r\n:30004\r\n$2\r\nid\r\n"
        "*4\r\n:5461\r\n:10921\r\n"
        "*2\r\n$8\r\nnode-two\r\n:30002\r\n"
        "*2\r\n$8\r\nnode-fiv\r\n:30005\r\n"
        "*3\r\n:10922\r\n:10922\r\n"
        "*2\r\n$8\r\nnode-two\r\n:30002\r\n";
    redisReply *r = resp(bytes);
    sx_rc_range *rg;
    int n;
    sx_err err = {0};
    CHECK_EQ(sx_rc_parse_slots(r, "seed.example", &rg, &n, &err), 0);
    freeReplyObject(r);
    CHECK_EQ(n, 4);
    CHECK_EQ(rg[0].start, 0);
    CHECK_EQ(rg[0].end, 5460);
    CHECK_EQ(rg[0].n_nodes, 1); /* the "?" replica was skipped */
    CHECK_STR(rg[0].nodes[0].host, "seed.example");
    CHECK_EQ(rg[0].nodes[0].port, 30001);
    CHECK_EQ(rg[1].start, 5461);
    CHECK_EQ(rg[1].end, 10921);
    CHECK_EQ(rg[1].n_nodes, 2);
    CHECK_STR(rg[1].nodes[0].host, "node-two");
    CHECK_STR(rg[1].nodes[1].host, "node-fiv");
    CHECK_EQ(rg[1].nodes[1].port, 30005);
    CHECK_EQ(rg[2].start, 10922);
    CHECK_EQ(rg[2].end, 10922);
    CHECK_EQ(rg[2].n_nodes, 1);
    CHECK_EQ(rg[3].start, 10923);
    CHECK_EQ(rg[3].end, 16383);
    CHECK_EQ(rg[3].n_nodes, 2);
    CHECK_EQ(rg[3].nodes[0].port, 30003);
    CHECK_EQ(rg[3].nodes[1].port, 30006);
    free(rg);

    /* An empty cluster: no ranges, not an error. */
    r = resp("*0\r\n");
    CHECK_EQ(sx_rc_parse_slots(r, "h", &rg, &n, &err), 0);
    CHECK_EQ(n, 0);
    free(rg);
    freeReplyObject(r);

    /* Malformed replies are refused whole. */
    static const char *bad[] = {
        "+OK\r\n",
        "*1\r\n:0\r\n",
        "*1\r\n*2\r\n:0\r\n:5\r\n",                                  /* no node */
        "*1\r\n*3\r\n:5\r\n:4\r\n" NODE(1),                       /* end < start */
        "*1\r\n*3\r\n:0\r\n:16384\r\n" NODE(1),                   /* slot too big */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:0\r\n",           /* port 0 */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:1\r\n",                /* host not a string */
        "*2\r\n*3\r\n:0\r\n:10\r\n" NODE(1) "*3\r\n:10\r\n:20\r\n" NODE(2), /* overlap */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = resp(bad[i]);
        err = (sx_err){0};
        CHECK_MSG(sx_rc_parse_slots(r, "h", &rg, &n, &err) == SX_ECORRUPT, "case %zu", i);
        CHECK(rg == NULL && n == 0);
        CHECK(strstr(err.msg, "CLUSTER SLOTS") != NULL);
        freeReplyObject(r);
    }
}

void test_cluster_create_errors(void) {
    sx_rc *rc = (sx_rc *)1;
    sx_err err = {0};
    CHECK_EQ(sx_rc_create("", NULL, &rc, &err), SX_EINVAL);
    CHECK(rc == NULL);
    CHECK(strstr(err.msg, "no seed") != NULL);
    CHECK_EQ(sx_rc_create("localhost", NULL, &rc, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "'localhost'") != NULL);
    CHECK_EQ(sx_rc_create("127.0.0.1:6379,:80", NULL, &rc, &err), SX_EINVAL);
    sx_rc_options o;
    sx_rc_options_default(&o);
    o.pool_size = 0;
    CHECK_EQ(sx_rc_create("127.0.0.1:6379", &o, &rc, &err), SX_EINVAL);
    /* Nothing listens on port 1: refused at once, and the message names it. */
    sx_rc_options_default(&o);
    double t0 = sx_now();
    CHECK_EQ(sx_rc_create("127.0.0.1:1, 127.0.0.1:2", &o, &rc, &err), SX_EIO);
    CHECK(sx_now() - t0 < 5.0);
    CHECK(rc == NULL);
    CHECK_MSG(strstr(err.msg, "127.0.0.1:1: ") && strstr(err.msg, "127.0.0.1:2: "), "%s", err.msg);
}
