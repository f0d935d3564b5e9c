/* Tests for src/storage: the write-ahead log. */
#include "test.h"

#include <fcntl.h>
#include <math.h>
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

/* The log the tests write: collection 0x5e3d, generation 1. */
static const sx_wal_id k_tid = {0x5e3d, 1};

static void write_records(const char *path, int n) {
    sx_wal *w;
    sx_err err = {0};
    CHECK_EQ(sx_wal_create(path, &k_tid, &w, &err), 0);
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

/* Appends n bytes of b to the file at path. */
static void append_bytes(const char *path, const void *b, size_t n) {
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    CHECK(write(fd, b, n) == (ssize_t)n);
    close(fd);
}

void test_wal_append_replay(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 10);
    collect_ctx c = {0};
    sx_wal *w;
    sx_wal_replay_stats st;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 10);
    CHECK_EQ(st.records, 10);
    CHECK_EQ(st.version, 2);
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
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, collect, &c, &st, &w, &err), 0);
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
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 4);
    CHECK(st.truncated_bytes > 0);
    CHECK_EQ(file_size(path), (long)st.bytes);
    sx_wal_close(w);
    /* A record header cut short is a torn tail too... */
    append_bytes(path, "\x05\x00\x00\x00gar", 7);
    memset(&c, 0, sizeof c);
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 4);
    CHECK_EQ(st.truncated_bytes, 7);
    sx_wal_close(w);
    /* ...and so are zero bytes (blocks allocated but never written). */
    char zeros[100] = {0};
    append_bytes(path, zeros, sizeof zeros);
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, &st, &w, &err), 0);
    CHECK_EQ(st.truncated_bytes, 100);
    sx_wal_close(w);
}

/* Bytes that were written whole but do not verify are damage, not a torn
 * write: a crash cuts a log short, it does not rewrite bytes. */
void test_wal_garbage_after_last_record_refused(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 5);
    long before = file_size(path);
    append_bytes(path, "\x05\x00\x00\x00garbage!xyz", 15);
    sx_wal *w = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK(w == NULL);
    CHECK_MSG(strstr(err.msg, "wal.log") && strstr(err.msg, "damaged record header"), "message: %s", err.msg);
    CHECK_EQ(file_size(path), before + 15); /* nothing was truncated */
}

void test_wal_midfile_corruption_refused(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 5);
    /* Flip a payload byte of the second record: intact records follow it. */
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    off_t off = 32 + 12 + 8 + 12 + 2; /* header, record 0 (12+8 bytes), into record 1 */
    char b;
    CHECK(pread(fd, &b, 1, off) == 1);
    b ^= 0x40;
    CHECK(pwrite(fd, &b, 1, off) == 1);
    close(fd);
    long before = file_size(path);
    sx_wal *w = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK(w == NULL);
    CHECK_MSG(strstr(err.msg, "refusing") != NULL, "message: %s", err.msg);
    CHECK_EQ(file_size(path), before); /* nothing was truncated */
}

/* The last record complete but failing its checksum: refused, not dropped
 * like a torn tail; the override replays what precedes it. */
void test_wal_damaged_last_record_refused(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 5);
    long before = file_size(path);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    char b;
    CHECK(pread(fd, &b, 1, before - 1) == 1);
    b ^= 0x01;
    CHECK(pwrite(fd, &b, 1, before - 1) == 1);
    close(fd);
    sx_wal *w = NULL;
    sx_err err = {0};
    collect_ctx c = {0};
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, collect, &c, NULL, &w, &err), SX_ECORRUPT);
    CHECK(w == NULL);
    CHECK_MSG(strstr(err.msg, "last record") && strstr(err.msg, "wal.log"), "message: %s", err.msg);
    CHECK_EQ(file_size(path), before);
    memset(&c, 0, sizeof c);
    sx_wal_replay_stats st;
    CHECK_EQ(sx_wal_open(path, &k_tid, SX_WAL_SALVAGE, collect, &c, &st, &w, &err), 0);
    CHECK(w == NULL);
    CHECK_EQ(st.salvaged, 1);
    CHECK_EQ(st.records, 4);
    CHECK_EQ(c.n, 4);
    CHECK_EQ(file_size(path), before); /* left as it is */
}

/* A missing, empty or foreign log is refused, never replaced by an empty one. */
void test_wal_missing_empty_foreign_refused(void) {
    char path[512];
    wal_path(path, sizeof path);
    sx_wal *w = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, NULL, &w, &err), SX_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "missing write-ahead log") && strstr(err.msg, "wal.log"), "message: %s", err.msg);
    CHECK(access(path, F_OK) != 0); /* not created */
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fclose(f);
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "empty write-ahead log"), "message: %s", err.msg);
    CHECK_EQ(file_size(path), 0);
    write_records(path, 3);
    sx_wal_id other = {0x5e3d, 2}, other_coll = {0x77, 1};
    CHECK_EQ(sx_wal_open(path, &other, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "belongs to collection 0000000000005e3d generation 1"), "message: %s", err.msg);
    CHECK_EQ(sx_wal_open(path, &other_coll, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK(w == NULL);
    /* The override opens past each, replaying nothing and leaving the file. */
    sx_wal_replay_stats st;
    CHECK_EQ(sx_wal_open(path, &other, SX_WAL_SALVAGE, NULL, NULL, &st, &w, &err), 0);
    CHECK(w == NULL);
    CHECK_EQ(st.salvaged, 1);
    CHECK_EQ(st.records, 0);
    sx_wal_probe_info pi;
    CHECK_EQ(sx_wal_probe(path, &pi, &err), 0);
    CHECK_EQ(pi.version, 2);
    CHECK_EQ(pi.id.collection, 0x5e3d);
    CHECK_EQ(pi.id.generation, 1);
    CHECK(pi.size > pi.header);
}

/* Recovery reads the log once: a large damaged or torn tail costs no
 * search (it used to run a CRC from every byte offset: 3.2 s for 18 MB). */
void test_wal_recovery_linear(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_records(path, 5);
    size_t big = 18u << 20;
    unsigned char *junk = malloc(big);
    CHECK(junk);
    uint32_t x = 1;
    for (size_t i = 0; i < big; i++) junk[i] = (unsigned char)((x = x * 1664525u + 1013904223u) >> 24);
    /* 1. 18 MB of random bytes after the records: damage, found at once. */
    append_bytes(path, junk, big);
    sx_wal *w = NULL;
    sx_err err = {0};
    sx_wal_replay_stats st;
    CHECK_EQ(sx_wal_open(path, &k_tid, SX_WAL_SALVAGE, NULL, NULL, &st, &w, &err), 0);
    CHECK_EQ(st.salvaged, 1);
    CHECK_EQ(st.records, 5);
    CHECK_MSG(st.crc_bytes < 1000, "checksummed %llu bytes", (unsigned long long)st.crc_bytes);
    /* 2. An 18 MB record cut short by a crash: a torn tail, one pass. */
    write_records(path, 5);
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, NULL, &w, &err), 0);
    uint64_t lsn;
    CHECK_EQ(sx_wal_append(w, junk, big, &lsn, &err), 0);
    sx_wal_close(w);
    CHECK(truncate(path, (off_t)lsn - 1) == 0);
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, &st, &w, &err), 0);
    CHECK_EQ(st.records, 5);
    CHECK_EQ(st.truncated_bytes, big + 12 - 1);
    CHECK_MSG(st.crc_bytes <= (uint64_t)file_size(path) + 32 * 6, "checksummed %llu bytes",
              (unsigned long long)st.crc_bytes);
    /* 3. The same record whole: replayed, checksummed once. */
    CHECK_EQ(sx_wal_append(w, junk, big, &lsn, &err), 0);
    CHECK_EQ(sx_wal_sync(w, lsn, &err), 0);
    sx_wal_close(w);
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, &st, &w, &err), 0);
    CHECK_EQ(st.records, 6);
    CHECK(st.crc_bytes <= (uint64_t)file_size(path) + 32 * 6);
    sx_wal_close(w);
    free(junk);
}

/* A log written by an older build (version 1, no ids) still replays. */
static void write_v1_log(const char *path, int n) {
    unsigned char h[16];
    memcpy(h, "SXWAL\0\0\0", 8);
    sx_le32_put(h + 8, 1);
    sx_le32_put(h + 12, sx_crc32c(0, h, 12));
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fwrite(h, 1, 16, f);
    for (int i = 0; i < n; i++) {
        char rec[32];
        unsigned char rh[8];
        int len = snprintf(rec, sizeof rec, "old-%d", i);
        sx_le32_put(rh, (uint32_t)len);
        sx_le32_put(rh + 4, sx_crc32c(sx_crc32c(0, rh, 4), rec, (size_t)len));
        fwrite(rh, 1, 8, f);
        fwrite(rec, 1, (size_t)len, f);
    }
    fclose(f);
}

void test_wal_version1_still_read(void) {
    char path[512];
    wal_path(path, sizeof path);
    write_v1_log(path, 3);
    sx_wal_id v1 = {0, 7};
    collect_ctx c = {0};
    sx_wal *w = NULL;
    sx_wal_replay_stats st;
    sx_err err = {0};
    CHECK_EQ(sx_wal_open(path, &v1, 0, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(st.version, 1);
    CHECK_EQ(c.n, 3);
    CHECK_STR(c.got[2], "old-2");
    uint64_t lsn;
    CHECK_EQ(sx_wal_append(w, "old-3", 5, &lsn, &err), 0); /* appended in its own format */
    CHECK_EQ(sx_wal_sync(w, lsn, &err), 0);
    sx_wal_close(w);
    memset(&c, 0, sizeof c);
    CHECK_EQ(sx_wal_open(path, &v1, 0, collect, &c, &st, &w, &err), 0);
    CHECK_EQ(c.n, 4);
    sx_wal_close(w);
    /* Where an id is expected, a version-1 log is foreign. */
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    /* The last record complete and damaged: refused in version 1 too. */
    long size = file_size(path);
        int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    char b;
    CHECK(pread(fd, &b, 1, size - 1) == 1);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, size - 1) == 1);
    close(fd);
    CHECK_EQ(sx_wal_open(path, &v1, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
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
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, NULL, NULL, NULL, &w, &err), SX_ECORRUPT);
    CHECK(strstr(err.msg, "not a semdex write-ahead log") != NULL);
    /* A record larger than the limit is refused before anything is written. */
    snprintf(path, sizeof path, "%s/wal2.log", test_tmpdir());
    CHECK_EQ(sx_wal_create(path, &k_tid, &w, &err), 0);
    uint64_t lsn;
    CHECK_EQ(sx_wal_append(w, "", (size_t)SX_WAL_MAX_RECORD + 1, &lsn, &err), SX_EINVAL);
    CHECK_EQ(sx_wal_size(w), 32);
    CHECK_EQ(sx_wal_header_size(w), 32);
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
    CHECK_EQ(sx_wal_open(path, &k_tid, SX_WAL_SALVAGE, stop_at_three, &n, NULL, &w, &err), SX_EINVAL);
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
    CHECK_EQ(sx_wal_create(path, &k_tid, &w, &err), 0);
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
    CHECK_EQ(sx_wal_open(path, &k_tid, 0, count_records, &n, NULL, &w, &err), 0);
    CHECK_EQ(n, 800);
    sx_wal_close(w);
}

/* ---- the store: shards + log + snapshots ------------------------------------ */

#include <dirent.h>

#include "../src/storage/store.h"

#define DIM 16

/* A deterministic unit vector for paper i. */
static void unit_vector(int i, float *v) {
    uint32_t x = 2654435761u * (uint32_t)(i + 1);
    double n = 0;
    for (int k = 0; k < DIM; k++) {
        x = x * 1664525u + 1013904223u;
        v[k] = (float)((double)(x >> 8) / 16777216.0 - 0.5);
        n += (double)v[k] * v[k];
    }
    for (int k = 0; k < DIM; k++) v[k] = (float)(v[k] / sqrt(n));
}

/* One thread: batches are applied in order, so graphs (and the exact
 * self-hits checked below) are the same on every run. */
static sx_store_opts small_opts(void) {
    sx_store_opts o = sx_store_defaults(DIM);
    o.n_shards = 3;
    o.params.M = 8;
    o.params.ef_construction = 64;
    o.n_threads = 1;
    o.create = 1;
    return o;
}

static char g_ids[1000][16], g_titles[1000][32];

static void make_docs(int from, int n, sx_doc *docs, float *vecs) {
    for (int i = 0; i < n; i++) {
        int id = from + i;
        snprintf(g_ids[id], sizeof g_ids[id], "2401.%05d", id);
        snprintf(g_titles[id], sizeof g_titles[id], "Paper number %d", id);
        docs[i] = (sx_doc){.id = g_ids[id], .title = g_titles[id], .abstract = "An abstract.",
                           .authors = "A. Author", .categories = id % 2 ? "cs.LG stat.ML" : "math.AP",
                           .update_date = "2024-01-02"};
        unit_vector(id, vecs + (size_t)i * DIM);
    }
}

static void store_path(char *buf, size_t n) { snprintf(buf, n, "%s/db", test_tmpdir()); }

static sx_store *open_store(const char *dir) {
    sx_store *st = NULL;
    sx_err err = {0};
    sx_store_opts o = small_opts();
    CHECK_MSG(sx_store_open(dir, &o, &st, &err) == 0, "open: %s", err.msg);
    return st;
}

static void insert_range(sx_store *st, int from, int n) {
    sx_doc docs[100];
    float vecs[100 * DIM];
    sx_err err = {0};
    for (int done = 0; done < n; done += 100) {
        int m = n - done < 100 ? n - done : 100;
        make_docs(from + done, m, docs, vecs);
        CHECK_MSG(sx_store_upsert(st, m, docs, vecs, &err) == 0, "upsert: %s", err.msg);
    }
}

/* Checks that paper i is found as its own nearest neighbour. */
static void check_self_hit(sx_store *st, int i) {
    float v[DIM];
    unit_vector(i, v);
    sx_hit hits[3];
    int n = 0;
    sx_err err = {0};
    sx_search_opts o = {.k = 3};
    CHECK_EQ(sx_store_search(st, v, &o, hits, &n, NULL, &err), 0);
    CHECK(n >= 1);
    CHECK_STR(hits[0].id, g_ids[i]);
    CHECK_NEAR(hits[0].score, 1.0, 0.02);
}

void test_store_upsert_search_reopen(void) {
    char dir[512];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    insert_range(st, 0, 500);
    sx_store_info in;
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 500);
    CHECK_EQ(in.n_shards, 3);
    for (int i = 0; i < 500; i += 37) check_self_hit(st, i);
    sx_store_close(st);

    /* Reopen: everything comes back from the log. */
    st = open_store(dir);
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 500);
    CHECK(in.replayed > 0);
    for (int i = 0; i < 500; i += 37) check_self_hit(st, i);
    sx_err err = {0};
    CHECK_EQ(sx_store_checkpoint(st, &err), 0);
    sx_store_close(st);

    /* After a checkpoint: from the snapshots, nothing to replay. */
    st = open_store(dir);
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 500);
    CHECK_EQ(in.replayed, 0);
    sx_doc *d = NULL;
    CHECK_EQ(sx_store_get(st, "2401.00042", &d, &err), 0);
    CHECK_STR(d->title, "Paper number 42");
    CHECK_STR(d->categories, "math.AP");
    free(d);
    for (int i = 0; i < 500; i += 37) check_self_hit(st, i);
    sx_store_close(st);
}

void test_store_filter_and_delete(void) {
    char dir[512];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    insert_range(st, 0, 300);
    float v[DIM];
    unit_vector(10, v); /* an even paper: math.AP */
    const char *cats[] = {"cs.LG"};
    sx_search_opts o = {.k = 10, .categories = cats, .n_categories = 1};
    sx_hit hits[10];
    int n = 0;
    sx_err err = {0};
    CHECK_EQ(sx_store_search(st, v, &o, hits, &n, NULL, &err), 0);
    CHECK_EQ(n, 10);
    for (int i = 0; i < n; i++) CHECK((atoi(hits[i].id + 5) % 2) == 1); /* odd = cs.LG */
    CHECK_EQ(sx_store_delete(st, "2401.00010", &err), 0);
    CHECK_EQ(sx_store_delete(st, "2401.00010", &err), SX_ENOTFOUND);
    CHECK_EQ(sx_store_delete(st, "no-such-paper", &err), SX_ENOTFOUND);
    sx_doc *d = NULL;
    CHECK_EQ(sx_store_get(st, "2401.00010", &d, &err), SX_ENOTFOUND);
    sx_store_close(st);
    st = open_store(dir);
    CHECK_EQ(sx_store_get(st, "2401.00010", &d, &err), SX_ENOTFOUND);
    sx_search_opts all = {.k = 5};
    CHECK_EQ(sx_store_search(st, v, &all, hits, &n, NULL, &err), 0);
    for (int i = 0; i < n; i++) CHECK(strcmp(hits[i].id, "2401.00010") != 0);
    sx_store_info in;
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 299);
    sx_store_close(st);
}

void test_store_invalid_batch_changes_nothing(void) {
    char dir[512];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    insert_range(st, 0, 10);
    sx_doc docs[3];
    float vecs[3 * DIM];
    make_docs(100, 3, docs, vecs);
    vecs[DIM + 3] = 5.0f; /* paper 1 is no longer normalised */
    sx_err err = {0};
    CHECK_EQ(sx_store_upsert(st, 3, docs, vecs, &err), SX_EINVAL);
    CHECK_MSG(strstr(err.msg, "paper 1") != NULL, "message: %s", err.msg);
    make_docs(100, 3, docs, vecs);
    docs[2].id = "bad id with spaces";
    CHECK_EQ(sx_store_upsert(st, 3, docs, vecs, &err), SX_EINVAL);
    sx_store_info in;
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 10);
    sx_store_close(st);
    st = open_store(dir);
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 10);
    sx_store_close(st);
}

/* Flips one byte of the file at offset off from its end (or start when off >= 0). */
static void flip_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    CHECK(f);
    fseek(f, off, off < 0 ? SEEK_END : SEEK_SET);
    long pos = ftell(f);
    int c = fgetc(f);
    CHECK(c != EOF);
    fseek(f, pos, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static int find_file(const char *dir, const char *prefix, char *out, size_t cap) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(out, cap, "%s/%s", dir, e->d_name);
            found = 1;
        }
    if (d) closedir(d);
    return found;
}

void test_store_corruption_refused(void) {
    char dir[512], path[1024];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    insert_range(st, 0, 200);
    sx_err err = {0};
    CHECK_EQ(sx_store_checkpoint(st, &err), 0);
    sx_store_close(st);
    /* A damaged snapshot (a byte in the middle of its data): the open fails
     * and names the file. */
    CHECK(find_file(dir, "shard-", path, sizeof path));
    FILE *sf = fopen(path, "rb");
    CHECK(sf);
    fseek(sf, 0, SEEK_END);
    long mid = ftell(sf) / 2;
    fclose(sf);
    flip_byte(path, mid);
    sx_store_opts o = small_opts();
    st = NULL;
    CHECK_EQ(sx_store_open(dir, &o, &st, &err), SX_ECORRUPT);
    CHECK(st == NULL);
    CHECK_MSG(strstr(err.msg, "shard-") != NULL, "message: %s", err.msg);
    flip_byte(path, mid); /* repair */
    st = open_store(dir);
    sx_store_close(st);
    /* A truncated snapshot too. */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(path, size / 2) == 0);
    CHECK_EQ(sx_store_open(dir, &o, &st, &err), SX_ECORRUPT);
    /* A damaged manifest. */
    char dir2[512];
    snprintf(dir2, sizeof dir2, "%s/db2", test_tmpdir());
    st = open_store(dir2);
    sx_store_close(st);
    snprintf(path, sizeof path, "%s/MANIFEST", dir2);
    flip_byte(path, 20);
    CHECK_EQ(sx_store_open(dir2, &o, &st, &err), SX_ECORRUPT);
    CHECK(strstr(err.msg, "MANIFEST") != NULL);
}

void test_store_torn_log_tail(void) {
    char dir[512], path[1024];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    insert_range(st, 0, 100);
    sx_store_close(st);
    CHECK(find_file(dir, "wal-", path, sizeof path));
    FILE *f = fopen(path, "ab");
    fwrite("\x40\x00\x00\x00torn", 1, 8, f); /* a record cut short */
    fclose(f);
    st = open_store(dir);
    sx_store_info in;
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 100);
    insert_range(st, 100, 10); /* the log is usable again */
    sx_store_close(st);
    st = open_store(dir);
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 110);
    sx_store_close(st);
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* Copies the file at from to to. */
static void copy_file(const char *from, const char *to) {
    char *data;
    size_t len;
    sx_err err = {0};
    CHECK_MSG(sx_read_file(from, &data, &len, &err) == 0, "%s", err.msg);
    FILE *f = fopen(to, "wb");
    CHECK(f);
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
    free(data);
}

/* Opens dir with opts o; returns the code, message in err. */
static int try_open(const char *dir, sx_store_opts o, sx_err *err) {
    sx_store *st = NULL;
    int rc = sx_store_open(dir, &o, &st, err);
    CHECK((rc == 0) == (st != NULL));
    sx_store_close(st);
    return rc;
}

static uint64_t store_count(const char *dir) {
    sx_store *st = open_store(dir);
    sx_store_info in;
    sx_store_get_info(st, &in);
    sx_store_close(st);
    return in.count;
}

/* 20 papers in the generation-2 snapshots, 30 more only in wal-2.log. */
static void store_with_log(const char *dir, char *wal, size_t cap) {
    sx_store *st = open_store(dir);
    insert_range(st, 0, 20);
    sx_err err = {0};
    CHECK_EQ(sx_store_checkpoint(st, &err), 0);
    for (int i = 20; i < 50; i += 10) insert_range(st, i, 10); /* three records */
    sx_store_close(st);
    snprintf(wal, cap, "%s/wal-2.log", dir);
    CHECK(file_exists(wal));
}

/* A missing, empty, foreign or damaged log stops the open with a message
 * naming the file and the override; the override keeps what is intact. */
void test_store_refuses_lost_log(void) {
    char dir[512], wal[1024], saved[1024], other[512], path[1024];
    store_path(dir, sizeof dir);
    store_with_log(dir, wal, sizeof wal);
    snprintf(saved, sizeof saved, "%s/saved.log", test_tmpdir());
    copy_file(wal, saved);
    sx_err err = {0};
    sx_store_opts o = small_opts();
    o.create = 0;
    /* Missing. */
    CHECK(unlink(wal) == 0);
    CHECK_EQ(try_open(dir, o, &err), SX_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "wal-2.log") && strstr(err.msg, "--accept-log-loss"), "message: %s", err.msg);
    o.create = 1; /* create never papers over a lost log either */
    CHECK_EQ(try_open(dir, o, &err), SX_ENOTFOUND);
    o.create = 0;
    /* Empty. */
    FILE *f = fopen(wal, "wb");
    CHECK(f);
    fclose(f);
    CHECK_EQ(try_open(dir, o, &err), SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "wal-2.log: empty") && strstr(err.msg, "--accept-log-loss"), "message: %s", err.msg);
    CHECK_EQ(file_size(wal), 0);
    /* Another collection's log of the same generation. */
    snprintf(other, sizeof other, "%s/other", test_tmpdir());
    char other_wal[1024];
    store_with_log(other, other_wal, sizeof other_wal);
    copy_file(other_wal, wal);
    CHECK_EQ(try_open(dir, o, &err), SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "belongs to collection"), "message: %s", err.msg);
    /* The right log with its last record damaged (complete: not torn). */
    copy_file(saved, wal);
    CHECK_EQ(store_count(dir), 50);
    flip_byte(wal, -3);
    CHECK_EQ(try_open(dir, o, &err), SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "wal-2.log") && strstr(err.msg, "last record"), "message: %s", err.msg);
    /* The override: the intact records are kept (the last batch of 10 is
     * lost), the bad log is kept aside, and the next open needs nothing. */
    o.accept_log_loss = 1;
    sx_store *st = NULL;
    CHECK_MSG(sx_store_open(dir, &o, &st, &err) == 0, "open: %s", err.msg);
    sx_store_info in;
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 40);
    CHECK_EQ(in.generation, 3);
    sx_store_close(st);
    CHECK(find_file(dir, "damaged-wal-2.log.", path, sizeof path));
    CHECK(!file_exists(wal));
    CHECK_EQ(store_count(dir), 40);
    /* The override on a missing log: the snapshots' papers remain. */
    CHECK(find_file(dir, "wal-3.log", path, sizeof path));
    CHECK(unlink(path) == 0);
    CHECK_EQ(try_open(dir, o, &err), 0);
    CHECK_EQ(store_count(dir), 40);
}

/* A MANIFEST older than the log (a partial restore): refused. */
void test_store_refuses_newer_log(void) {
    char dir[512], wal[1024], path[1024], keep[1024];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    insert_range(st, 0, 10);
    sx_err err = {0};
    CHECK_EQ(sx_store_checkpoint(st, &err), 0); /* generation 2 */
    sx_store_close(st);
    const char *files[] = {"MANIFEST", "shard-2-0.snap", "shard-2-1.snap", "shard-2-2.snap"};
    for (int i = 0; i < 4; i++) { /* a backup without the log */
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(keep, sizeof keep, "%s/keep-%s", test_tmpdir(), files[i]);
        copy_file(path, keep);
    }
    st = open_store(dir);
    insert_range(st, 10, 10);
    CHECK_EQ(sx_store_checkpoint(st, &err), 0); /* generation 3 */
    insert_range(st, 20, 10);                  /* only in wal-3.log */
    sx_store_close(st);
    for (int i = 0; i < 4; i++) { /* restored over the directory */
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(keep, sizeof keep, "%s/keep-%s", test_tmpdir(), files[i]);
        copy_file(keep, path);
    }
    sx_store_opts o = small_opts();
    o.create = 0;
    CHECK_EQ(try_open(dir, o, &err), SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "wal-3.log") && strstr(err.msg, "generation 2"), "message: %s", err.msg);
    snprintf(wal, sizeof wal, "%s/wal-3.log", dir);
    CHECK(file_exists(wal)); /* not removed as a leftover */
}

/* Only a creating open makes a collection: a mistyped path is an error. */
void test_store_open_does_not_create(void) {
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s/typo/path", test_tmpdir());
    sx_store_opts o = small_opts();
    o.create = 0;
    sx_err err = {0};
    CHECK_EQ(try_open(dir, o, &err), SX_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "typo/path") && strstr(err.msg, "no such directory"), "message: %s", err.msg);
    CHECK(!file_exists(dir));
    /* An existing directory without a collection: nothing is written in it. */
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    CHECK_EQ(try_open(dir, o, &err), SX_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "holds no semdex collection"), "message: %s", err.msg);
    snprintf(path, sizeof path, "%s/LOCK", dir);
    CHECK(!file_exists(path));
    /* A creation cut short before its MANIFEST is no collection... */
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    sx_store_close(st);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    CHECK(unlink(path) == 0);
    CHECK_EQ(try_open(dir, o, &err), SX_ENOTFOUND);
    CHECK_EQ(store_count(dir), 0); /* and a creating open starts afresh */
    /* ...but collection files without their MANIFEST are refused. */
    st = open_store(dir);
    insert_range(st, 0, 10);
    sx_store_close(st);
    CHECK(unlink(path) == 0);
    CHECK_EQ(try_open(dir, o, &err), SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "MANIFEST is missing"), "message: %s", err.msg);
    o.create = 1;
    CHECK_EQ(try_open(dir, o, &err), SX_ECORRUPT);
}

/* Copies each record it is given into a version-1 log (FILE *ctx). */
static int to_v1(void *ctx, const void *payload, size_t len, sx_err *err) {
    unsigned char rh[8];
    sx_le32_put(rh, (uint32_t)len);
    sx_le32_put(rh + 4, sx_crc32c(sx_crc32c(0, rh, 4), payload, len));
    fwrite(rh, 1, 8, ctx);
    fwrite(payload, 1, len, ctx);
    return 0;
}

/* A collection written by an older build (MANIFEST version 1 without an id,
 * a version-1 log) opens, and is moved to the current format at once. */
void test_store_opens_version1(void) {
    char dir[512], path[1024], v1path[1024];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    insert_range(st, 0, 10);
    sx_store_close(st);
    /* The log, rewritten in version 1. */
    snprintf(path, sizeof path, "%s/wal-1.log", dir);
    snprintf(v1path, sizeof v1path, "%s/v1.log", test_tmpdir());
    write_v1_log(v1path, 0);
    FILE *f = fopen(v1path, "ab");
    CHECK(f);
    sx_wal_probe_info pi;
    sx_err err = {0};
    CHECK_EQ(sx_wal_probe(path, &pi, &err), 0);
    sx_wal *w = NULL;
    CHECK_EQ(sx_wal_open(path, &pi.id, 0, to_v1, f, NULL, &w, &err), 0);
    sx_wal_close(w);
    fclose(f);
    copy_file(v1path, path);
    /* The MANIFEST, rewritten in version 1. */
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    char *data;
    size_t len;
    CHECK_EQ(sx_read_file(path, &data, &len, &err), 0);
    char *id = strstr(data, "id "), *gen = strstr(data, "generation "), *crc = strstr(data, "crc32c ");
    CHECK(id && gen && crc);
    char body[1024];
    int n = snprintf(body, sizeof body, "semdex-manifest 1\n%.*s", (int)(crc - gen), gen);
    f = fopen(path, "wb");
    CHECK(f);
    fprintf(f, "%scrc32c %08x\n", body, sx_crc32c(0, body, (size_t)n));
    fclose(f);
    free(data);
    (void)id;
    st = open_store(dir);
    sx_store_info in;
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 10);
    CHECK_EQ(in.replayed, 1);
    CHECK_EQ(in.generation, 2); /* checkpointed into the current format */
    check_self_hit(st, 3);
    sx_store_close(st);
    CHECK_EQ(sx_read_file(path, &data, &len, &err), 0);
    CHECK(strncmp(data, "semdex-manifest 2\nid ", 21) == 0);
    free(data);
    snprintf(path, sizeof path, "%s/wal-2.log", dir);
    CHECK_EQ(sx_wal_probe(path, &pi, &err), 0);
    CHECK_EQ(pi.version, 2);
    CHECK(pi.id.collection != 0);
    CHECK_EQ(store_count(dir), 10);
}

void test_store_locked_directory(void) {
    char dir[512];
    store_path(dir, sizeof dir);
    sx_store *st = open_store(dir);
    sx_store *other = NULL;
    sx_err err = {0};
    sx_store_opts o = small_opts();
    CHECK_EQ(sx_store_open(dir, &o, &other, &err), SX_EBUSY);
    CHECK(strstr(err.msg, "in use") != NULL);
    sx_store_close(st);
}

typedef struct {
    sx_store *st;
    int from, n, searches_ok;
} stress_arg;

static void *stress_writer(void *p) {
    stress_arg *a = p;
    insert_range(a->st, a->from, a->n);
    return NULL;
}

static void *stress_reader(void *p) {
    stress_arg *a = p;
    a->searches_ok = 1;
    for (int i = 0; i < 300; i++) {
        float v[DIM];
        unit_vector(i, v);
        sx_hit hits[5];
        int n;
        sx_err err = {0};
        sx_search_opts o = {.k = 5};
        if (sx_store_search(a->st, v, &o, hits, &n, NULL, &err) != 0) a->searches_ok = 0;
    }
    return NULL;
}

void test_store_concurrent_writes_checkpoints(void) {
    char dir[512];
    store_path(dir, sizeof dir);
    sx_store_opts o = small_opts();
    o.checkpoint_bytes = 20000; /* checkpoints run in the background meanwhile */
    sx_store *st = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_store_open(dir, &o, &st, &err), 0);
    pthread_t w[3], r;
    stress_arg wa[3], ra = {st, 0, 0, 0};
    for (int i = 0; i < 3; i++) {
        wa[i] = (stress_arg){st, i * 300, 300, 0};
        CHECK(pthread_create(&w[i], NULL, stress_writer, &wa[i]) == 0);
    }
    CHECK(pthread_create(&r, NULL, stress_reader, &ra) == 0);
    for (int i = 0; i < 3; i++) pthread_join(w[i], NULL);
    pthread_join(r, NULL);
    CHECK(ra.searches_ok);
    sx_store_info in;
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 900);
    CHECK(in.generation > 1);
    sx_store_close(st);
    st = open_store(dir);
    sx_store_get_info(st, &in);
    CHECK_EQ(in.count, 900);
    for (int i = 0; i < 900; i += 97) check_self_hit(st, i);
    sx_store_close(st);
}

void test_store_parallel_batches(void) {
    /* Two threads insert each batch's papers concurrently: everything is
     * stored, durable, and found by its own vector (HNSW is approximate, and
     * a concurrent build differs from run to run: 98% self-hits at least). */
    char dir[512];
    store_path(dir, sizeof dir);
    sx_store_opts o = small_opts();
    o.n_threads = 2;
    o.params.M = 16;
    o.params.ef_construction = 100;
    sx_store *st = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_store_open(dir, &o, &st, &err), 0);
    insert_range(st, 0, 1000);
    /* A batch that repeats an id is applied in order: the last copy wins. */
    sx_doc docs[2];
    float vecs[2 * DIM];
    make_docs(5, 1, docs, vecs);
    make_docs(6, 1, docs + 1, vecs + DIM);
    docs[1].id = docs[0].id;
    docs[1].title = "the second copy";
    CHECK_EQ(sx_store_upsert(st, 2, docs, vecs, &err), 0);
    for (int reopen = 0; reopen < 2; reopen++) {
        sx_store_info in;
        sx_store_get_info(st, &in);
        CHECK_EQ(in.count, 1000);
        sx_doc *d = NULL;
        CHECK_EQ(sx_store_get(st, "2401.00005", &d, &err), 0);
        CHECK_STR(d->title, "the second copy");
        free(d);
        int found = 0;
        for (int i = 0; i < 1000; i++) {
            float v[DIM];
            unit_vector(i, v);
            sx_hit hits[3];
            int n = 0;
            sx_search_opts so = {.k = 3};
            CHECK_EQ(sx_store_search(st, v, &so, hits, &n, NULL, &err), 0);
            found += n > 0 && strcmp(hits[0].id, g_ids[i]) == 0;
        }
        CHECK_MSG(found >= 980 - 1, "self-hits %d of 1000", found); /* paper 5 now has 6's vector */
        sx_store_close(st);
        CHECK_EQ(sx_store_open(dir, &o, &st, &err), 0); /* replayed in parallel too */
    }
    sx_store_close(st);
}
