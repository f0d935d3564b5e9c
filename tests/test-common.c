/* Tests for src/common: CRC-32C, error messages, file reading. */
#include "test.h"

#include "../src/common/sx.h"

void test_common_crc32c_known_values(void) {
    /* The check value of CRC-32C (RFC 3720 appendix B.4). */
    CHECK_EQ(sx_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(sx_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    unsigned char zeros[32] = {0};
    CHECK_EQ(sx_crc32c(0, zeros, 32), 0x8A9136AAu);
    CHECK_EQ(sx_crc32c(0, "", 0), 0);
    /* Chaining gives the same value as one call. */
    uint32_t c = sx_crc32c(0, "1234", 4);
    CHECK_EQ(sx_crc32c(c, "56789", 5), 0xE3069283u);
}

void test_common_crc32c_hw_matches_portable(void) {
    unsigned char buf[4099];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    /* Every alignment and many lengths, including the unaligned head/tail. */
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 1 + len / 3)
            CHECK_EQ(sx_crc32c(7, buf + off, len), sx_crc32c_portable(7, buf + off, len));
}

void test_common_err_messages(void) {
    sx_err err = {0};
    CHECK_EQ(sx_err_set(&err, SX_ECORRUPT, "bad byte at %d", 42), SX_ECORRUPT);
    CHECK_EQ(err.code, SX_ECORRUPT);
    CHECK_STR(err.msg, "bad byte at 42");
    CHECK_EQ(sx_err_prefix(&err, "file %s", "x.bin"), SX_ECORRUPT);
    CHECK_STR(err.msg, "file x.bin: bad byte at 42");
    CHECK_EQ(sx_err_set(NULL, SX_EIO, "ignored"), SX_EIO);
    CHECK_STR(sx_strerror(SX_ENOTFOUND), "not found");
    sx_log_level lvl;
    CHECK_EQ(sx_log_parse_level("warn", &lvl), 0);
    CHECK_EQ(lvl, SX_LOG_WARN);
    CHECK_EQ(sx_log_parse_level("loud", &lvl), SX_EINVAL);
}

/* A message built from the message already in err (store.c does this when
 * it adds the snapshot's path): it used to be formatted into the buffer it
 * was read from, giving "...snapshot: ectory". */
void test_common_err_reuses_own_message(void) {
    sx_err err = {0};
    sx_err_set(&err, SX_ENOTFOUND, "db/shard-1-0.snap: cannot open: No such file or directory");
    sx_err_set(&err, SX_ECORRUPT, "%s: missing or unreadable snapshot: %s", "db/shard-1-0.snap", err.msg);
    CHECK_EQ(err.code, SX_ECORRUPT);
    CHECK_STR(err.msg, "db/shard-1-0.snap: missing or unreadable snapshot: "
                       "db/shard-1-0.snap: cannot open: No such file or directory");
    sx_err_set(&err, SX_EIO, "wrapped (%s)", err.msg);
    CHECK(strncmp(err.msg, "wrapped (db/shard-1-0.snap: missing", 35) == 0);
    sx_err_set(&err, SX_EIO, "inner");
    sx_err_prefix(&err, "outer [%s]", err.msg);
    CHECK_STR(err.msg, "outer [inner]: inner");
    /* A message longer than the buffer is cut, never overrun. */
    char big[2 * SX_ERR_MSG_MAX];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sx_err_set(&err, SX_EIO, "%s", big);
    CHECK_EQ(strlen(err.msg), SX_ERR_MSG_MAX - 1);
    sx_err_prefix(&err, "p");
    CHECK_EQ(strlen(err.msg), SX_ERR_MSG_MAX - 1);
    CHECK(strncmp(err.msg, "p: xxx", 6) == 0);
}

void test_common_read_file(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/f.txt", test_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputs("hello", f);
    fclose(f);
    char *data;
    size_t len;
    sx_err err = {0};
    CHECK_EQ(sx_read_file(path, &data, &len, &err), 0);
    CHECK_EQ(len, 5);
    CHECK_STR(data, "hello");
    free(data);
    snprintf(path, sizeof path, "%s/missing", test_tmpdir());
    CHECK_EQ(sx_read_file(path, &data, &len, &err), SX_ENOTFOUND);
    CHECK(strstr(err.msg, "missing") != NULL);
    CHECK(data == NULL);
}

void test_common_buf(void) {
    sx_buf b = {0};
    sx_buf_append(&b, "ab", 2);
    sx_buf_printf(&b, "-%d-", 42);
    for (int i = 0; i < 1000; i++) sx_buf_append(&b, "x", 1);
    CHECK(!b.oom);
    CHECK_EQ(b.len, 1006);
    CHECK(strncmp(b.data, "ab-42-xxx", 9) == 0);
    CHECK_EQ(b.data[b.len], '\0');
    sx_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}

#include <pthread.h>
#include <stdatomic.h>

typedef struct {
    _Atomic int hits[1000];
    _Atomic int calls;
} pool_ctx;

static void pool_body(void *ctx, int i) {
    pool_ctx *c = ctx;
    atomic_fetch_add(&c->hits[i], 1);
    atomic_fetch_add(&c->calls, 1);
}

typedef struct {
    sx_pool *pool;
    int ok;
} pool_caller;

static void *pool_caller_main(void *arg) {
    pool_caller *pc = arg;
    pc->ok = 1;
    for (int round = 0; round < 50; round++) {
        pool_ctx *c = calloc(1, sizeof *c);
        int n = 1 + round * 7 % 300;
        sx_pool_run(pc->pool, n, pool_body, c);
        for (int i = 0; i < n; i++)
            if (c->hits[i] != 1) pc->ok = 0;
        if (c->calls != n) pc->ok = 0;
        free(c);
    }
    return NULL;
}

void test_common_pool(void) {
    sx_pool *p;
    sx_err err = {0};
    CHECK_EQ(sx_pool_create(3, &p, &err), 0);
    CHECK_EQ(sx_pool_threads(p), 4);
    /* Several threads run loops on the same pool at once; every iteration runs once. */
    pthread_t th[4];
    pool_caller pc[4];
    for (int i = 0; i < 4; i++) {
        pc[i].pool = p;
        CHECK(pthread_create(&th[i], NULL, pool_caller_main, &pc[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(pc[i].ok);
    }
    sx_pool_free(p);
    /* No workers, or no pool: the caller runs the loop. */
    CHECK_EQ(sx_pool_create(0, &p, &err), 0);
    pool_ctx *c = calloc(1, sizeof *c);
    sx_pool_run(p, 10, pool_body, c);
    sx_pool_run(NULL, 10, pool_body, c);
    CHECK_EQ(c->calls, 20);
    free(c);
    sx_pool_free(p);
}
