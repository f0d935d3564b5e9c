/* Tests for src/storage: the write-ahead log. */
#include "test.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/storage/wal.h"

typedef struct {
    int n;
    char got[64][64];
} collect_ctx;

static int collect(void *ctx, const void *payload, size_t len, sx_err *err) {
    collect_ctx *c = ctx;
    if (c->n >= 64 || len >= 64) return sx_err_set(err, SX_EINVAL, "unexpected record");
    memcpy(c->got[c->n], payload, len);
    c->got[c->n][len] = '\0';
    c->n++;
    return 0;
}

static void wal_path(char *buf, size_t n) { snprintf(buf, n, "%s/wal.log", test_tmpdir()); }

static void write_records(const char *path, int n) {
    sx_wal *w;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, NULL, NULL, NULL, &w, &err), 0);
    uint64_t lsn = 0;
    for (int i = 0; i < n; i++) {
        char rec[32];
        int len = snprintf(rec, sizeof rec, "record-%d", i);
        CHECK_EQ(sx_wal_append(w, rec, (size_t)len, &lsn, &err), 0);
    }
    CHECK_EQ(sx_wal_sync(w, lsn, &err), 0);
    sx_wal_close(w);
}

static long file_size(const char *path) {
    struct stat st;
    CHECK(stat(path, &st) == 0);
    return (long)st.st_size;
}

void test_wal_append_replay(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 10);
    collect_ctx c = {0};
    sx_wal *w;
    sx_wal_replay_stats st;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 10);
    CHECK_EQ(st.records, 10);
    CHECK_EQ(st.truncated_bytes, 0);
    CHECK_STR(c.got[0], "record-0");
    CHECK_STR(c.got[9], "record-9");
    /* Appending after a replay continues the log. */
    uint64_t lsn;
    CHECK_EQ(sx_wal_append(w, "more", 4, &lsn, &err), 0);
    CHECK_EQ(sx_wal_sync(w, lsn, &err), 0);
    CHECK_EQ(lsn, (uint64_t)file_size(path));
    sx_wal_close(w);
    memset(&c, 0, sizeof c);
    CHECK_EQ(sx_wal_open(path, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 11);
    CHECK_STR(c.got[10], "more");
    sx_wal_close(w);
}

void test_wal_torn_tail_truncated(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 5);
    long full = file_size(path);
    /* Cut the last record in half, as a crash mid-append would. */
    CHECK(truncate(path, full - 4) == 0);
    collect_ctx c = {0};
    sx_wal *w;
    sx_wal_replay_stats st;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 4);
    CHECK(st.truncated_bytes > 0);
    CHECK_EQ(file_size(path), (long)st.bytes);
    sx_wal_close(w);
    /* Garbage after the last record is a torn tail too. */
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    CHECK(write(fd, "\x05\x00\x00\x00garbage!", 12) == 12);
    close(fd);
    memset(&c, 0, sizeof c);
    CHECK_EQ(sx_wal_open(path, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 4);
    CHECK_EQ(st.truncated_bytes, 12);
    sx_wal_close(w);
}

void test_wal_midfile_corruption_refused(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 5);
    /* Flip a payload byte of the second record: intact records follow it. */
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    off_t off = 16 + 8 + 8 + 8 + 2; /* header, record 0 (8+8 bytes), into record 1 */
    char b;
    CHECK(pread(fd, &b, 1, off) == 1);
    b ^= 0x40;
    CHECK(pwrite(fd, &b, 1, off) == 1);
    close(fd);
    long before = file_size(path);
    sx_wal *w = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK(w == NULL);
    CHECK_MSG(strstr(err.msg, "refusing") != NULL, "message: %s", err.msg);
    CHECK_EQ(file_size(path), before); /* nothing was truncated */
}

void test_wal_bad_header(void) {
    char path[512];
    wal_path(path, sizeof path);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputs("this is not a log file at all", f);
    fclose(f);
    sx_wal *w = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK(strstr(err.msg, "not a semdex write-ahead log") != NULL);
    /* A record larger than the limit is refused before anything is written. */
    snprintf(path, sizeof path, "%s/wal2.log", test_tmpdir());
    CHECK_EQ(sx_wal_open(path, NULL, NULL, NULL, &w, &err), 0);
    uint64_t lsn;
    CHECK_EQ(sx_wal_append(w, "", (size_t)SX_WAL_MAX_RECORD + 1, &lsn, &err), SX_EINVAL);
    CHECK_EQ(sx_wal_size(w), 16);
    sx_wal_close(w);
}

static int stop_at_three(void *ctx, const void *payload, size_t len, sx_err *err) {
    int *n = ctx;
    if (++*n == 3) return sx_err_set(err, SX_EINVAL, "apply refused");
    return 0;
}

void test_wal_apply_error_stops_open(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 5);
    int n = 0;
    sx_wal *w = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, stop_at_three, &n, NULL, &w, &err), SX_EINVAL);
    CHECK(w == NULL);
    CHECK(strstr(err.msg, "apply refused") != NULL);
}

typedef struct {
    sx_wal *w;
    int id;
} writer_arg;

static void *writer(void *p) {
    writer_arg *a = p;
    sx_err err = {0};
    for (int i = 0; i < 200; i++) {
        char rec[32];
        int len = snprintf(rec, sizeof rec, "t%d-%d", a->id, i);
        uint64_t lsn;
        if (sx_wal_append(a->w, rec, (size_t)len, &lsn, &err) != 0) return (void *)1;
        if (sx_wal_sync(a->w, lsn, &err) != 0) return (void *)1;
    }
    return NULL;
}

static int count_records(void *ctx, const void *payload, size_t len, sx_err *err) {
    ++*(int *)ctx;
    return 0;
}

void test_wal_concurrent_group_commit(void) {
    char path[512];
    wal_path(path, sizeof path);
    sx_wal *w;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, NULL, NULL, NULL, &w, &err), 0);
    pthread_t th[4];
    writer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (writer_arg){w, i};
        CHECK(pthread_create(&th[i], NULL, writer, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }
    sx_wal_close(w);
    int n = 0;
    CHECK_EQ(sx_wal_open(path, count_records, &n, NULL, &w, &err), 0);
    CHECK_EQ(n, 800);
    sx_wal_close(w);
}
