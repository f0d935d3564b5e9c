/*
 * wal.c - the write-ahead log.
 *
 * Format (all integers little-endian):
 *
 *     header   "SXWAL\0\0\0" | u32 version (1) | u32 crc32c(first 12 bytes)
 *     record   u32 length | u32 crc32c(length bytes + payload) | payload
 *
 * The CRC covers the length too, so a record whose length field was damaged
 * fails its check instead of swallowing the records after it.
 *
 * Durability and group commit. Appends go to the file with pwrite() under a
 * mutex; they are not durable yet. A writer that needs its record durable
 * calls sx_wal_sync(lsn). If another thread is already syncing, it waits;
 * otherwise it becomes the syncer: it notes how far the file has been
 * written, runs one fsync for everything up to there and wakes the waiters.
 * Under load many writers share one fsync, which is what makes acknowledged
 * writes affordable (an fsync costs a millisecond or more).
 *
 * A failed write is rolled back with ftruncate so no garbage sits between
 * records; a failed fsync poisons the log (every later call fails), because
 * after a failed fsync the kernel may have dropped the dirty pages and a retry
 * could falsely report success (PostgreSQL's "fsyncgate").
 *
 * Recovery. Opening replays intact records in order. The first bad record
 * ends the replay. If no intact record can be found anywhere after it, it is
 * a torn tail (a crash cut the last append short): the file is truncated
 * there and a warning logged. If an intact record does follow it, the damage
 * is in the middle of acknowledged data and the open fails with SX_ECORRUPT:
 * silently dropping acknowledged writes is never acceptable.
 *
 * Rejected alternatives: O_DSYNC on every write (one flush per record, no
 * batching); mmap'ed appends (msync semantics differ across systems and a
 * SIGBUS on a full disk is worse than an error code).
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_MAGIC "SXWAL\0\0\0"
#define WAL_VERSION 1u
#define WAL_HEADER_SIZE 16u
#define REC_HEADER_SIZE 8u

struct sx_wal {
    int fd;
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t written; /* bytes written (appends are contiguous) */
    uint64_t synced;  /* bytes known to be on stable storage */
    int syncing;      /* a thread is inside fsync */
    int failed;       /* an I/O error poisoned the log */
};

int sx_fsync_fd(int fd) {
#ifdef __APPLE__
    if (fcntl(fd, F_FULLFSYNC) == 0) return 0;
#endif
    return fsync(fd);
}

int sx_fsync_dir(const char *dir, sx_err *err) {
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return sx_err_set(err, SX_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = sx_fsync_fd(fd);
    int e = errno;
    close(fd);
    if (rc != 0) return sx_err_set(err, SX_EIO, "%s: fsync failed: %s", dir, strerror(e));
    return 0;
}

/* Writes all of buf at offset off. Returns 0 or -1 with errno set. */
static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
    const unsigned char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* CRC of a record: its length field, then its payload. */
static uint32_t record_crc(uint32_t len, const void *payload) {
    unsigned char lb[4];
    sx_le32_put(lb, len);
    return sx_crc32c(sx_crc32c(0, lb, 4), payload, len);
}

/* Returns 1 when an intact record starts at off in map[0..size). */
static int record_ok(const unsigned char *map, uint64_t size, uint64_t off) {
    if (off + REC_HEADER_SIZE > size) return 0;
    uint32_t len = sx_le32_get(map + off);
    if (len > SX_WAL_MAX_RECORD || off + REC_HEADER_SIZE + len > size) return 0;
    return record_crc(len, map + off + REC_HEADER_SIZE) == sx_le32_get(map + off + 4);
}

/* Returns 1 when an intact record starts anywhere in (from, size). */
static int intact_record_after(const unsigned char *map, uint64_t size, uint64_t from) {
    for (uint64_t off = from + 1; off + REC_HEADER_SIZE <= size; off++)
        if (record_ok(map, size, off)) return 1;
    return 0;
}

static int write_header(int fd, const char *path, sx_err *err) {
    unsigned char h[WAL_HEADER_SIZE];
    memcpy(h, WAL_MAGIC, 8);
    sx_le32_put(h + 8, WAL_VERSION);
    sx_le32_put(h + 12, sx_crc32c(0, h, 12));
    if (pwrite_all(fd, h, sizeof h, 0) != 0 || sx_fsync_fd(fd) != 0)
        return sx_err_set(err, SX_EIO, "%s: cannot write header: %s", path, strerror(errno));
    return 0;
}

static int check_header(const unsigned char *map, uint64_t size, const char *path, sx_err *err) {
    if (size < WAL_HEADER_SIZE || memcmp(map, WAL_MAGIC, 8) != 0 ||
        sx_le32_get(map + 12) != sx_crc32c(0, map, 12))
        return sx_err_set(err, SX_ECORRUPT, "%s: not a semdex write-ahead log (bad header)", path);
    if (sx_le32_get(map + 8) != WAL_VERSION)
        return sx_err_set(err, SX_EUNSUPPORTED, "%s: write-ahead log version %u is not supported",
                          path, sx_le32_get(map + 8));
    return 0;
}

/* Replays the records of the mapped log; *good_end (OUT) is the offset just
 * past the last intact record. */
static int replay(const unsigned char *map, uint64_t size, const char *path,
                  sx_wal_apply_fn apply, void *ctx, sx_wal_replay_stats *st, uint64_t *good_end,
                  sx_err *err) {
    uint64_t off = WAL_HEADER_SIZE;
    while (off < size) {
        if (!record_ok(map, size, off)) {
            if (intact_record_after(map, size, off))
                return sx_err_set(err, SX_ECORRUPT,
                                  "%s: damaged record at byte %llu is followed by intact records; "
                                  "refusing to drop acknowledged writes",
                                  path, (unsigned long long)off);
            break;
        }
        uint32_t len = sx_le32_get(map + off);
        if (apply) {
            int rc = apply(ctx, map + off + REC_HEADER_SIZE, len, err);
            if (rc < 0) {
                sx_err_prefix(err, "%s: record at byte %llu", path, (unsigned long long)off);
                return rc;
            }
        }
        st->records++;
        off += REC_HEADER_SIZE + len;
    }
    *good_end = off;
    return 0;
}

/* Opens or creates the file and replays it; returns the fd and the end of the
 * intact records. */
static int open_and_replay(const char *path, sx_wal_apply_fn apply, void *ctx,
                           sx_wal_replay_stats *st, int *fd_out, uint64_t *end_out, sx_err *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return sx_err_set(err, SX_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return sx_err_set(err, SX_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size == 0) {
        int rc = write_header(fd, path, err);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        *fd_out = fd;
        *end_out = WAL_HEADER_SIZE;
        return 0;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        close(fd);
        return sx_err_set(err, SX_EIO, "%s: cannot map: %s", path, strerror(errno));
    }
    uint64_t end = 0;
    int rc = check_header(map, size, path, err);
    if (rc == 0) rc = replay(map, size, path, apply, ctx, st, &end, err);
    munmap(map, (size_t)size);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (end < size) {
        st->truncated_bytes = size - end;
        sx_log(SX_LOG_WARN, "%s: truncating a torn tail of %llu bytes at byte %llu", path,
               (unsigned long long)(size - end), (unsigned long long)end);
        if (ftruncate(fd, (off_t)end) != 0 || sx_fsync_fd(fd) != 0) {
            close(fd);
            return sx_err_set(err, SX_EIO, "%s: cannot truncate torn tail: %s", path, strerror(errno));
        }
    }
    *fd_out = fd;
    *end_out = end;
    return 0;
}

int sx_wal_open(const char *path, sx_wal_apply_fn apply, void *ctx, sx_wal_replay_stats *stats,
                sx_wal **out, sx_err *err) {
    sx_wal_replay_stats st = {0};
    int fd = -1;
    uint64_t end = 0;
    *out = NULL;
    int rc = open_and_replay(path, apply, ctx, &st, &fd, &end, err);
    if (rc < 0) return rc;
    st.bytes = end;
    sx_wal *w = calloc(1, sizeof *w);
    char *p = strdup(path);
    if (!w || !p) {
        free(w);
        free(p);
        close(fd);
        return sx_err_set(err, SX_ENOMEM, "%s: out of memory", path);
    }
    w->fd = fd;
    w->path = p;
    w->written = w->synced = end;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (stats) *stats = st;
    *out = w;
    return 0;
}

int sx_wal_append(sx_wal *w, const void *payload, size_t len, uint64_t *lsn, sx_err *err) {
    if (len > SX_WAL_MAX_RECORD)
        return sx_err_set(err, SX_EINVAL, "write-ahead log record of %zu bytes exceeds %u", len,
                          SX_WAL_MAX_RECORD);
    unsigned char h[REC_HEADER_SIZE];
    sx_le32_put(h, (uint32_t)len);
    sx_le32_put(h + 4, record_crc((uint32_t)len, payload));
    pthread_mutex_lock(&w->mu);
    if (w->failed) {
        pthread_mutex_unlock(&w->mu);
        return sx_err_set(err, SX_EIO, "%s: log unusable after an earlier I/O error", w->path);
    }
    uint64_t off = w->written;
    if (pwrite_all(w->fd, h, sizeof h, off) != 0 ||
        pwrite_all(w->fd, payload, len, off + REC_HEADER_SIZE) != 0) {
        int e = errno;
        /* Roll back the partial record; if even that fails, stop using the log. */
        if (ftruncate(w->fd, (off_t)off) != 0) w->failed = 1;
        pthread_mutex_unlock(&w->mu);
        return sx_err_set(err, SX_EIO, "%s: append failed: %s", w->path, strerror(e));
    }
    w->written = off + REC_HEADER_SIZE + len;
    *lsn = w->written;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int sx_wal_sync(sx_wal *w, uint64_t lsn, sx_err *err) {
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->failed) {
            pthread_mutex_unlock(&w->mu);
            return sx_err_set(err, SX_EIO, "%s: log unusable after an earlier I/O error", w->path);
        }
        if (w->synced >= lsn) {
            pthread_mutex_unlock(&w->mu);
            return 0;
        }
        if (!w->syncing) break;
        pthread_cond_wait(&w->cv, &w->mu);
    }
    /* Become the syncer for everything written so far. */
    w->syncing = 1;
    uint64_t target = w->written;
    pthread_mutex_unlock(&w->mu);
    int rc = sx_fsync_fd(w->fd);
    int e = errno;
    pthread_mutex_lock(&w->mu);
    w->syncing = 0;
    if (rc != 0) w->failed = 1;
    else if (target > w->synced) w->synced = target;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (rc != 0) return sx_err_set(err, SX_EIO, "%s: fsync failed: %s", w->path, strerror(e));
    return 0;
}

uint64_t sx_wal_size(sx_wal *w) {
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->written;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void sx_wal_close(sx_wal *w) {
    if (!w) return;
    close(w->fd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->path);
    free(w);
}
