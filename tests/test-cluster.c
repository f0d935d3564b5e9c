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

/* ---- a fake cluster in a thread --------------------------------------------
 * Node A is master of slots 0-8191, B of 8192-16383, R a replica of B, and
 * H ("hole") accepts connections and never answers. GET answers
 * "<node>:<key>", so a reply shows which node served it. A key tagged
 * {mv...} in A's range gets MOVED to B (as if the slot had moved: B serves
 * it); one tagged {ak...} gets ASK to B, and B serves it only right after
 * ASKING. R serves a connection only after READONLY, else MOVED to B. The
 * slot map (CLUSTER SLOTS) is the static one above, with B's range given to
 * fake.b_range_master (B, a dead port, or H). */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

enum { NODE_A, NODE_B, NODE_R, NODE_H, N_FAKE };
static const char FAKE_NAME[N_FAKE] = {'A', 'B', 'R', 'H'};

typedef struct {
    int fd, node, asking, readonly;
    redisReader *rd;
} fake_conn;

typedef struct {
    int lfd[N_FAKE], port[N_FAKE];
    int b_range_port; /* the port CLUSTER SLOTS names as master of 8192-16383 */
    atomic_int stop;
    pthread_t thr;
    fake_conn conns[256];
    int n_conns;
} fake_cluster;

static int listen_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 128) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += (int)w;
    }
}

/* The tag between braces of key starts with prefix? */
static int tagged(const char *key, const char *prefix) {
    const char *o = strchr(key, '{');
    return o && strncmp(o + 1, prefix, strlen(prefix)) == 0;
}

static void fake_answer(fake_cluster *f, fake_conn *c, const redisReply *req) {
    char *argv[4] = {0};
    for (size_t i = 0; i < req->elements && i < 4; i++) argv[i] = req->element[i]->str;
    const char *cmd = argv[0] ? argv[0] : "";
    int asking = c->asking;
    c->asking = 0;
    if (strcasecmp(cmd, "CLUSTER") == 0) {
        say(c->fd,
            "*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n"
            "*4\r\n:8192\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
            f->port[NODE_A], f->b_range_port, f->port[NODE_R]);
    } else if (strcasecmp(cmd, "READONLY") == 0) {
        c->readonly = 1;
        say(c->fd, "+OK\r\n");
    } else if (strcasecmp(cmd, "READWRITE") == 0) {
        c->readonly = 0;
        say(c->fd, "+OK\r\n");
    } else if (strcasecmp(cmd, "ASKING") == 0) {
        c->asking = 1;
        say(c->fd, "+OK\r\n");
    } else if (strcasecmp(cmd, "WAIT") == 0) {
        say(c->fd, ":1\r\n");
    } else if ((strcasecmp(cmd, "GET") == 0 || strcasecmp(cmd, "SET") == 0) && argv[1]) {
        const char *key = argv[1];
        int slot = sx_rc_key_slot(key, strlen(key));
        int owner = slot < 8192 ? NODE_A : NODE_B;
        int node = c->node;
        if (tagged(key, "mv")) owner = NODE_B;
        if (node == NODE_A && tagged(key, "ak")) {
            say(c->fd, "-ASK %d 127.0.0.1:%d\r\n", slot, f->port[NODE_B]);
            return;
        }
        if (node == NODE_B && tagged(key, "ak") && asking) owner = NODE_B;
        int serves = node == owner || (node == NODE_R && owner == NODE_B && c->readonly &&
                                       strcasecmp(cmd, "GET") == 0);
        if (!serves) say(c->fd, "-MOVED %d 127.0.0.1:%d\r\n", slot, f->port[owner]);
        else if (strcasecmp(cmd, "SET") == 0) say(c->fd, "+OK\r\n");
        else say(c->fd, "$%zu\r\n%c:%s\r\n", strlen(key) + 2, FAKE_NAME[node], key);
    } else {
        say(c->fd, "-ERR unknown command '%s'\r\n", cmd);
    }
}

static void *fake_run(void *p) {
    fake_cluster *f = p;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd[N_FAKE + 256];
        int n = 0;
        for (int i = 0; i < N_FAKE; i++) pfd[n++] = (struct pollfd){.fd = f->lfd[i], .events = POLLIN};
        for (int i = 0; i < f->n_conns; i++) pfd[n++] = (struct pollfd){.fd = f->conns[i].fd, .events = POLLIN};
        if (poll(pfd, (nfds_t)n, 20) <= 0) continue;
        for (int i = 0; i < N_FAKE; i++) {
            if (!pfd[i].revents) continue;
            int fd = accept(f->lfd[i], NULL, NULL);
            if (fd < 0) continue;
            /* Replies go out one send() each: without this, Nagle's algorithm
             * and delayed ACKs stall a pipeline 40 ms (Redis sets it too). */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (f->n_conns == 256) {
                close(fd);
                continue;
            }
            f->conns[f->n_conns++] = (fake_conn){.fd = fd, .node = i, .rd = redisReaderCreate()};
        }
        for (int j = N_FAKE; j < n; j++) {
            if (!pfd[j].revents) continue;
            fake_conn *c = NULL;
            for (int i = 0; i < f->n_conns && !c; i++)
                if (f->conns[i].fd == pfd[j].fd) c = &f->conns[i];
            char buf[4096];
            ssize_t r = c ? read(c->fd, buf, sizeof buf) : -1;
            if (r <= 0) {
                if (!c) continue;
                close(c->fd);
                redisReaderFree(c->rd);
                *c = f->conns[--f->n_conns];
                continue;
            }
            if (c->node == NODE_H) continue; /* the hole swallows everything */
            redisReaderFeed(c->rd, buf, (size_t)r);
            void *req;
            while (redisReaderGetReply(c->rd, &req) == REDIS_OK && req) {
                fake_answer(f, c, req);
                freeReplyObject(req);
            }
        }
    }
    for (int i = 0; i < f->n_conns; i++) {
        close(f->conns[i].fd);
        redisReaderFree(f->conns[i].rd);
    }
    return NULL;
}

/* Starts the fake; B's range is served by node b_master (NODE_B or NODE_H),
 * or by a dead port when b_master < 0. */
static fake_cluster *fake_start(int b_master) {
    fake_cluster *f = calloc(1, sizeof *f);
    CHECK(f);
    for (int i = 0; i < N_FAKE; i++) f->lfd[i] = listen_any(&f->port[i]);
    if (b_master >= 0) {
        f->b_range_port = f->port[b_master];
    } else {
        close(listen_any(&f->b_range_port)); /* a port nothing listens on */
    }
    CHECK(pthread_create(&f->thr, NULL, fake_run, f) == 0);
    return f;
}

static void fake_stop(fake_cluster *f) {
    atomic_store(&f->stop, 1);
    pthread_join(f->thr, NULL);
    for (int i = 0; i < N_FAKE; i++) close(f->lfd[i]);
    free(f);
}

static sx_rc *fake_client(fake_cluster *f, sx_rc_options *o) {
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", f->port[NODE_A]);
    sx_rc *rc = NULL;
    sx_err err = {0};
    CHECK_MSG(sx_rc_create(seeds, o, &rc, &err) == 0, "%s", err.msg);
    return rc;
}

/* A key in A's range (want_a) or B's, with tag prefix tag ("" for none). */
static void key_in(char *out, size_t cap, const char *tag, int want_a, int start) {
    for (int i = start;; i++) {
        if (*tag) snprintf(out, cap, "{%s%d}", tag, i);
        else snprintf(out, cap, "key%d", i);
        if ((sx_rc_key_slot(out, strlen(out)) < 8192) == want_a) return;
    }
}

typedef struct {
    sx_rc *rc;
    int thread;
    int bad;
    char why[1024];
} concurrent_arg;

static void *concurrent_worker(void *p) {
    concurrent_arg *a = p;
    enum { B = 16 };
    char keys[B][32], want[B][40];
    const char *argv[B][2];
    sx_rc_cmd cmds[B];
    for (int round = 0; round < 150 && !a->bad; round++) {
        for (int j = 0; j < B; j++) {
            int kind = (j + round + a->thread) % 4; /* 0: A, 1: B or R, 2: MOVED, 3: ASK */
            static const char *tags[] = {"", "", "mv", "ak"};
            key_in(keys[j], sizeof keys[j], tags[kind], kind != 1, round * 7 + j * 3 + a->thread * 1000);
            argv[j][0] = "GET";
            argv[j][1] = keys[j];
            cmds[j] = (sx_rc_cmd){.argc = 2, .argv = argv[j], .read_only = j % 2};
            snprintf(want[j], sizeof want[j], "%c:%s", kind == 0 ? 'A' : 'B', keys[j]);
        }
        sx_err err = {0};
        if (sx_rc_exec(a->rc, cmds, B, &err) < 0) {
            a->bad = 1;
            snprintf(a->why, sizeof a->why, "exec: %s", err.msg);
        }
        for (int j = 0; j < B && !a->bad; j++) {
            const redisReply *r = cmds[j].reply;
            int ok = cmds[j].status == 0 && r && r->type == REDIS_REPLY_STRING;
            /* A read in B's range may come from B or from its replica R. */
            if (ok && cmds[j].read_only && want[j][0] == 'B' && r->str[0] == 'R') ok = strcmp(r->str + 1, want[j] + 1) == 0;
            else if (ok) ok = strcmp(r->str, want[j]) == 0;
            if (!ok) {
                a->bad = 1;
                snprintf(a->why, sizeof a->why, "%.31s: got '%.60s' (status %d: %.200s), want '%.39s'", keys[j],
                         r && r->str ? r->str : "-", cmds[j].status, cmds[j].err.msg, want[j]);
            }
        }
        sx_rc_cmd_reset(cmds, B);
    }
    return NULL;
}

void test_cluster_fake_concurrent_exec(void) {
    fake_cluster *f = fake_start(NODE_B);
    sx_rc_options o;
    sx_rc_options_default(&o);
    o.pool_size = 2;            /* 8 threads share 2 connections per node */
    o.refresh_interval_ms = 0;  /* refreshes race with MOVED patches */
    o.deadline_ms = 10000;
    sx_rc *rc = fake_client(f, &o);
    enum { T = 8 };
    pthread_t thr[T];
    concurrent_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (concurrent_arg){.rc = rc, .thread = i};
        CHECK(pthread_create(&thr[i], NULL, concurrent_worker, &args[i]) == 0);
    }
    for (int i = 0; i < T; i++) pthread_join(thr[i], NULL);
    for (int i = 0; i < T; i++) CHECK_MSG(!args[i].bad, "thread %d: %s", i, args[i].why);
    sx_rc_stats s;
    sx_rc_stats_get(rc, &s);
    CHECK_EQ(s.masters, 2);
    CHECK_EQ(s.replicas, 1);
    CHECK_EQ(s.slots_covered, SX_RC_SLOTS);
    CHECK(s.moved > 0 && s.ask > 0);
    CHECK_EQ(s.failed, 0);
    sx_rc_node_info info[8];
    int n = sx_rc_nodes(rc, info, 8);
    CHECK(n >= 3);
    for (int i = 0; i < 3; i++) CHECK(info[i].requests > 0 && info[i].conns <= 2);
    /* WAIT after writes: the fake says one replica has them; reads get none. */
    char ka[32], kb[32];
    key_in(ka, sizeof ka, "", 1, 0);
    key_in(kb, sizeof kb, "", 0, 0);
    const char *wa[] = {"SET", ka, "1"}, *wb[] = {"SET", kb, "1"}, *rb[] = {"GET", kb};
    sx_rc_cmd w[3] = {{.argc = 3, .argv = wa}, {.argc = 3, .argv = wb}, {.argc = 2, .argv = rb, .read_only = 1}};
    sx_err err = {0};
    CHECK_MSG(sx_rc_exec_wait(rc, w, 3, 1, 100, &err) == 0, "%s", err.msg);
    CHECK_EQ(w[0].acked, 1);
    CHECK_EQ(w[1].acked, 1);
    CHECK_EQ(w[2].acked, -1);
    sx_rc_cmd_reset(w, 3);
    /* An error reply is the caller's: status SX_EINVAL, reply kept. */
    const char *bad[] = {"NOSUCH", ka};
    sx_rc_cmd b = {.argc = 2, .argv = bad};
    CHECK_EQ(sx_rc_exec(rc, &b, 1, &err), SX_EINVAL);
    CHECK(b.reply && b.reply->type == REDIS_REPLY_ERROR);
    CHECK_MSG(strstr(b.err.msg, "ERR unknown command 'NOSUCH'") != NULL, "%s", b.err.msg);
    sx_rc_cmd_reset(&b, 1);
    sx_rc_free(rc);
    fake_stop(f);
}

void test_cluster_fake_dead_and_silent_nodes(void) {
    /* B's range names a port nothing listens on: writes fail with the slot
     * and the node's error; reads go to the replica R. */
    fake_cluster *f = fake_start(-1);
    sx_rc_options o;
    sx_rc_options_default(&o);
    o.deadline_ms = 300;
    sx_rc *rc = fake_client(f, &o);
    char kb[32], want[80];
    key_in(kb, sizeof kb, "", 0, 0);
    const char *set[] = {"SET", kb, "x"}, *get[] = {"GET", kb};
    sx_rc_cmd c[2] = {{.argc = 3, .argv = set}, {.argc = 2, .argv = get, .read_only = 1}};
    sx_err err = {0};
    CHECK_EQ(sx_rc_exec(rc, c, 2, &err), SX_EIO);
    snprintf(want, sizeof want, "slot %d: no reachable node (127.0.0.1:%d: Connection refused)",
             sx_rc_key_slot(kb, strlen(kb)), f->b_range_port);
    CHECK_STR(c[0].err.msg, want);
    CHECK(c[0].reply == NULL);
    CHECK_MSG(strstr(err.msg, "1 of 2 commands failed; first: slot") == err.msg, "%s", err.msg);
    CHECK_EQ(c[1].status, 0);
    CHECK(c[1].reply && c[1].reply->str[0] == 'R');
    sx_rc_cmd_reset(c, 2);
    sx_rc_stats s;
    sx_rc_stats_get(rc, &s);
    CHECK(s.nodes_down >= 1 && s.node_errors >= 1);
    sx_rc_free(rc);
    fake_stop(f);

    /* B's range is served by a node that never answers: the call ends at
     * its deadline with "no reply within" instead of hanging. */
    f = fake_start(NODE_H);
    o.io_timeout_ms = 100;
    o.replica_reads = 0;
    rc = fake_client(f, &o);
    sx_rc_cmd g = {.argc = 2, .argv = get, .read_only = 1};
    double t0 = sx_now();
    CHECK_EQ(sx_rc_exec(rc, &g, 1, &err), SX_EIO);
    CHECK(sx_now() - t0 < 5.0);
    CHECK_MSG(strstr(g.err.msg, "no reply within") != NULL, "%s", g.err.msg);
    sx_rc_cmd_reset(&g, 1);
    sx_rc_free(rc);
    fake_stop(f);
}
