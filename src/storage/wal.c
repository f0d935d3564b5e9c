/*
 * wal.c - the write-ahead log.
 *
 * Format (all integers little-endian), version 2:
 *
 *     header   "SXWAL\0\0\0" | u32 version (2) | u32 crc32c(header, this field 0)
 *              | u64 collection id | u64 generation                 (32 bytes)
 *     record   u32 length | u32 crc32c(payload) | u32 header crc | payload
 *
 * The header crc of a record covers its length, its payload crc, its own
 * offset in the file and the log's collection id and generation. So the
 * length of a record whose header verifies can be trusted, and a record
 * copied from another place or another log does not verify.
 *
 * Whose log is this. The store's MANIFEST names the collection id and the
 * generation its snapshots were taken at, and the log of that generation
 * carries the same pair in its header. Opening checks the pair: a missing
 * or empty file, or the log of another collection or generation (a backup
 * restored without its log, a file copied from elsewhere), is refused with
 * SX_ENOTFOUND / SX_ECORRUPT instead of being replaced by an empty log,
 * which would silently drop every write acknowledged since the checkpoint.
 * Only a caller that says so (SX_WAL_SALVAGE, the operator's override)
 * opens past such a log, and then the file is left as it was for forensics.
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
 * Recovery. Opening replays intact records in order. The first record that
 * does not verify ends the replay, and what it looks like decides:
 *   - a torn tail: the record is cut short (its header, or the payload its
 *     verified header announces, runs past the end of the file), or nothing
 *     but zero bytes follow (blocks allocated but never written). That is
 *     what a crash during an append leaves, and that append was never
 *     acknowledged: the file is truncated there with a warning.
 *   - anything else is damage to bytes that were written whole: a record
 *     header that fails its crc, or a complete record whose payload fails
 *     its crc, even the last one. The open fails with SX_ECORRUPT naming the
 *     file and byte: an acknowledged write may be in there.
 * Because a record's header carries its own crc, telling the two apart needs
 * no search for intact records after the damage: recovery reads the file
 * once (linear time).
 *
 * Version 1 logs (16-byte header without ids; records u32 length | u32
 * crc32c(length, payload) | payload) are still read, so a collection written
 * by an older build opens; the store then checkpoints at once into a
 * version-2 log. With no header crc, a version-1 record that runs past the
 * end of the file may hide a damaged length, so only there the old search
 * for an intact record after the damage remains.
 *
 * Rejected alternatives: O_DSYNC on every write (one flush per record, no
 * batching); mmap'ed appends (msync semantics differ across systems and a
 * SIGBUS on a full disk is worse than an error code); treating every bad
 * last record as torn (a flipped bit in the last acknowledged write would
 * drop it with only a warning).
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_MAGIC "SXWAL\0\0\0"
#define V1_HEADER 16u
#define V1_REC 8u
#define V2_HEADER 32u
#define V2_REC 12u

struct sx_wal {
    int fd;
    char *path;
    int version;      /* 1 or 2: the record format appends use */
    sx_wal_id id;
    uint64_t header;  /* header size */
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

static int all_zero(const unsigned char *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* ---- version 2 ---------------------------------------------------------- */

/* The crc of a version-2 record header at offset off of log id. */
static uint32_t v2_header_crc(uint32_t len, uint32_t pcrc, uint64_t off, const sx_wal_id *id) {
    unsigned char b[32];
    sx_le32_put(b, len);
    sx_le32_put(b + 4, pcrc);
    sx_le64_put(b + 8, off);
    sx_le64_put(b + 16, id->collection);
    sx_le64_put(b + 24, id->generation);
    return sx_crc32c(0, b, sizeof b);
}

static void v2_header(unsigned char h[V2_HEADER], const sx_wal_id *id) {
    memset(h, 0, V2_HEADER);
    memcpy(h, WAL_MAGIC, 8);
    sx_le32_put(h + 8, 2);
    sx_le64_put(h + 16, id->collection);
    sx_le64_put(h + 24, id->generation);
    sx_le32_put(h + 12, sx_crc32c(0, h, V2_HEADER));
}

/* ---- version 1 (read, and appended to until the store's first checkpoint) */

/* CRC of a version-1 record: its length field, then its payload. */
static uint32_t v1_record_crc(uint32_t len, const void *payload) {
    unsigned char lb[4];
    sx_le32_put(lb, len);
    return sx_crc32c(sx_crc32c(0, lb, 4), payload, len);
}

/* Returns 1 when an intact version-1 record starts at off in map[0..size). */
static int v1_record_ok(const unsigned char *map, uint64_t size, uint64_t off) {
    if (off + V1_REC > size) return 0;
    uint32_t len = sx_le32_get(map + off);
    if (len > SX_WAL_MAX_RECORD || off + V1_REC + len > size) return 0;
    return v1_record_crc(len, map + off + V1_REC) == sx_le32_get(map + off + 4);
}

/* Returns 1 when an intact version-1 record starts anywhere in (from, size). */
static int v1_intact_record_after(const unsigned char *map, uint64_t size, uint64_t from) {
    for (uint64_t off = from + 1; off + V1_REC <= size; off++)
        if (v1_record_ok(map, size, off)) return 1;
    return 0;
}

/* ---- opening -------------------------------------------------------------- */

/* A log being opened: its mapping and what the caller expects. */
typedef struct {
    const unsigned char *map;
    uint64_t size;
    const char *path;
    const sx_wal_id *id;
    int version;
    int damage; /* set when the failure is the log's own (not apply's) */
} wal_scan;

static int damaged(wal_scan *s, sx_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records a failure of the log itself: "path: <message>". */
static int damaged(wal_scan *s, sx_err *err, int code, const char *fmt, ...) {
    char msg[SX_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->damage = 1;
    return sx_err_set(err, code, "%s: %s", s->path, msg);
}

static const char *k_foreign =
    "belongs to collection %016llx generation %llu, but MANIFEST expects collection %016llx "
    "generation %llu (a log from another collection or another checkpoint)";

/* Checks the header and that it names s->id; sets s->version. */
static int check_header(wal_scan *s, sx_err *err) {
    const unsigned char *m = s->map;
    if (s->size == 0)
        return damaged(s, err, SX_ECORRUPT, "empty write-ahead log (0 bytes): its header and every "
                       "write acknowledged since the last checkpoint are gone");
    if (s->size < V1_HEADER || memcmp(m, WAL_MAGIC, 8) != 0)
        return damaged(s, err, SX_ECORRUPT, "not a semdex write-ahead log (bad header)");
    uint32_t version = sx_le32_get(m + 8);
    if (version == 1) {
        if (sx_le32_get(m + 12) != sx_crc32c(0, m, 12))
            return damaged(s, err, SX_ECORRUPT, "not a semdex write-ahead log (bad header)");
        if (s->id->collection != 0)
            return damaged(s, err, SX_ECORRUPT, "a version-1 log without a collection id, but MANIFEST "
                           "expects collection %016llx generation %llu",
                           (unsigned long long)s->id->collection, (unsigned long long)s->id->generation);
        s->version = 1;
        return 0;
    }
    if (version != 2)
        return damaged(s, err, SX_EUNSUPPORTED, "write-ahead log version %u is not supported", version);
    unsigned char h[V2_HEADER];
    if (s->size < V2_HEADER) return damaged(s, err, SX_ECORRUPT, "header cut short");
    memcpy(h, m, V2_HEADER);
    sx_le32_put(h + 12, 0);
    if (sx_le32_get(m + 12) != sx_crc32c(0, h, V2_HEADER))
        return damaged(s, err, SX_ECORRUPT, "not a semdex write-ahead log (bad header)");
    sx_wal_id got = {sx_le64_get(m + 16), sx_le64_get(m + 24)};
    if (got.collection != s->id->collection || got.generation != s->id->generation)
        return damaged(s, err, SX_ECORRUPT, k_foreign, (unsigned long long)got.collection,
                       (unsigned long long)got.generation, (unsigned long long)s->id->collection,
                       (unsigned long long)s->id->generation);
    s->version = 2;
    return 0;
}

/* Hands one intact record to apply. */
static int apply_one(wal_scan *s, sx_wal_apply_fn apply, void *ctx, const unsigned char *p,
                     uint32_t len, uint64_t off, sx_err *err) {
    if (!apply) return 0;
    int rc = apply(ctx, p, len, err);
    if (rc < 0) sx_err_prefix(err, "%s: record at byte %llu", s->path, (unsigned long long)off);
    return rc;
}

/* Replays version-2 records; *good_end (OUT) is the offset just past the
 * last intact one. See the essay for torn tail versus damage. */
static int replay_v2(wal_scan *s, sx_wal_apply_fn apply, void *ctx, sx_wal_replay_stats *st,
                     uint64_t *good_end, sx_err *err) {
    uint64_t off = V2_HEADER, size = s->size;
    while (off < size) {
        const unsigned char *r = s->map + off;
        uint64_t rem = size - off;
        if (rem < V2_REC) break; /* header cut short */
        uint32_t len = sx_le32_get(r), pcrc = sx_le32_get(r + 4);
        st->crc_bytes += 32;
        if (sx_le32_get(r + 8) != v2_header_crc(len, pcrc, off, s->id)) {
            if (all_zero(r, rem)) break; /* never written */
            return damaged(s, err, SX_ECORRUPT,
                           "damaged record header at byte %llu (%llu bytes from there to the end); "
                           "refusing to drop acknowledged writes",
                           (unsigned long long)off, (unsigned long long)rem);
        }
        if (len > SX_WAL_MAX_RECORD)
            return damaged(s, err, SX_ECORRUPT, "impossible record length %u at byte %llu", len,
                           (unsigned long long)off);
        if (rem - V2_REC < len) break; /* payload cut short */
        st->crc_bytes += len;
        if (sx_crc32c(0, r + V2_REC, len) != pcrc)
            return damaged(s, err, SX_ECORRUPT,
                           "damaged record at byte %llu: all %u bytes are present but fail their "
                           "checksum%s; refusing to drop an acknowledged write",
                           (unsigned long long)off, len,
                           off + V2_REC + len == size ? " (it is the last record)" : "");
        int rc = apply_one(s, apply, ctx, r + V2_REC, len, off, err);
        if (rc < 0) return rc;
        st->records++;
        off += V2_REC + len;
    }
    *good_end = off;
    return 0;
}

/* Replays version-1 records (see the essay). */
static int replay_v1(wal_scan *s, sx_wal_apply_fn apply, void *ctx, sx_wal_replay_stats *st,
                     uint64_t *good_end, sx_err *err) {
    uint64_t off = V1_HEADER, size = s->size;
    while (off < size) {
        if (!v1_record_ok(s->map, size, off)) {
            uint64_t rem = size - off;
            if (rem < V1_REC || all_zero(s->map + off, rem)) break;
            uint32_t len = sx_le32_get(s->map + off);
            if (len <= SX_WAL_MAX_RECORD && off + V1_REC + len <= size)
                return damaged(s, err, SX_ECORRUPT,
                               "damaged record at byte %llu: all %u bytes are present but fail their "
                               "checksum; refusing to drop an acknowledged write",
                               (unsigned long long)off, len);
            if (v1_intact_record_after(s->map, size, off))
                return damaged(s, err, SX_ECORRUPT,
                               "damaged record at byte %llu is followed by intact records; "
                               "refusing to drop acknowledged writes",
                               (unsigned long long)off);
            break;
        }
        uint32_t len = sx_le32_get(s->map + off);
        int rc = apply_one(s, apply, ctx, s->map + off + V1_REC, len, off, err);
        if (rc < 0) return rc;
        st->records++;
        off += V1_REC + len;
    }
    *good_end = off;
    return 0;
}

/* Opens the existing file, checks and replays it; returns the fd and the
 * end of the intact records. s->damage says whether a failure is the log's. */
static int open_and_replay(wal_scan *s, sx_wal_apply_fn apply, void *ctx, sx_wal_replay_stats *st,
                           int *fd_out, uint64_t *end_out, sx_err *err) {
    const char *path = s->path;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return damaged(s, err, SX_ENOTFOUND, "missing write-ahead log: every write acknowledged "
                           "since the last checkpoint would be lost");
        return sx_err_set(err, SX_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return sx_err_set(err, SX_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    s->size = (uint64_t)sb.st_size;
    void *map = NULL;
    if (s->size) {
        map = mmap(NULL, (size_t)s->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return sx_err_set(err, SX_EIO, "%s: cannot map: %s", path, strerror(errno));
        }
    }
    s->map = map;
    uint64_t end = 0;
    int rc = check_header(s, err);
    if (rc == 0)
        rc = s->version == 1 ? replay_v1(s, apply, ctx, st, &end, err) : replay_v2(s, apply, ctx, st, &end, err);
    if (map) munmap(map, (size_t)s->size);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (end < s->size) {
        st->truncated_bytes = s->size - end;
        sx_log(SX_LOG_WARN, "%s: truncating a torn tail of %llu bytes at byte %llu (an append cut "
               "short by a crash, never acknowledged)", path, (unsigned long long)(s->size - end),
               (unsigned long long)end);
        if (ftruncate(fd, (off_t)end) != 0 || sx_fsync_fd(fd) != 0) {
            close(fd);
            return sx_err_set(err, SX_EIO, "%s: cannot truncate torn tail: %s", path, strerror(errno));
        }
    }
    *fd_out = fd;
    *end_out = end;
    return 0;
}

static int wal_new(const char *path, int fd, int version, const sx_wal_id *id, uint64_t end,
                   sx_wal **out, sx_err *err) {
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
    w->version = version;
    w->id = *id;
    w->header = version == 1 ? V1_HEADER : V2_HEADER;
    w->written = w->synced = end;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    *out = w;
    return 0;
}

int sx_wal_create(const char *path, const sx_wal_id *id, sx_wal **out, sx_err *err) {
    *out = NULL;
    if (id->collection == 0) return sx_err_set(err, SX_EINVAL, "%s: a new log needs a collection id", path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sx_err_set(err, SX_EIO, "%s: cannot create: %s", path, strerror(errno));
    unsigned char h[V2_HEADER];
    v2_header(h, id);
    if (pwrite_all(fd, h, sizeof h, 0) != 0 || sx_fsync_fd(fd) != 0) {
        int e = errno;
        close(fd);
        return sx_err_set(err, SX_EIO, "%s: cannot write header: %s", path, strerror(e));
    }
    return wal_new(path, fd, 2, id, V2_HEADER, out, err);
}

int sx_wal_open(const char *path, const sx_wal_id *id, int flags, sx_wal_apply_fn apply, void *ctx,
                sx_wal_replay_stats *stats, sx_wal **out, sx_err *err) {
    sx_wal_replay_stats st = {0};
    int fd = -1;
    uint64_t end = 0;
    *out = NULL;
    wal_scan s = {.path = path, .id = id};
    int rc = open_and_replay(&s, apply, ctx, &st, &fd, &end, err);
    st.version = s.version;
    if (rc < 0 && s.damage && (flags & SX_WAL_SALVAGE)) {
        sx_log(SX_LOG_WARN, "%s; accepting the loss as asked: %llu intact records before it were "
               "replayed, the file is left as it is", err ? err->msg : path, (unsigned long long)st.records);
        st.salvaged = 1;
        if (stats) *stats = st;
        return 0;
    }
    if (rc < 0) return rc;
    st.bytes = end;
    rc = wal_new(path, fd, s.version, id, end, out, err);
    if (rc == 0 && stats) *stats = st;
    return rc;
}

int sx_wal_probe(const char *path, sx_wal_probe_info *out, sx_err *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_set(err, errno == ENOENT ? SX_ENOTFOUND : SX_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
    unsigned char h[V2_HEADER];
    struct stat sb;
    ssize_t n = fstat(fd, &sb) == 0 ? pread(fd, h, sizeof h, 0) : -1;
    close(fd);
    if (n < 0) return sx_err_set(err, SX_EIO, "%s: cannot read: %s", path, strerror(errno));
    out->size = (uint64_t)sb.st_size;
    if (n < (ssize_t)V1_HEADER || memcmp(h, WAL_MAGIC, 8) != 0)
        return sx_err_set(err, SX_ECORRUPT, "%s: not a semdex write-ahead log", path);
    out->version = (int)sx_le32_get(h + 8);
    if (out->version == 1) {
        out->header = V1_HEADER;
        return 0;
    }
    if (out->version != 2 || n < (ssize_t)V2_HEADER)
        return sx_err_set(err, SX_ECORRUPT, "%s: not a semdex write-ahead log", path);
    out->header = V2_HEADER;
    out->id = (sx_wal_id){sx_le64_get(h + 16), sx_le64_get(h + 24)};
    return 0;
}

int sx_wal_append(sx_wal *w, const void *payload, size_t len, uint64_t *lsn, sx_err *err) {
    if (len > SX_WAL_MAX_RECORD)
        return sx_err_set(err, SX_EINVAL, "write-ahead log record of %zu bytes exceeds %u", len,
                          SX_WAL_MAX_RECORD);
    unsigned char h[V2_REC];
    size_t hlen = w->version == 1 ? V1_REC : V2_REC;
    uint32_t pcrc = w->version == 1 ? v1_record_crc((uint32_t)len, payload) : sx_crc32c(0, payload, len);
    sx_le32_put(h, (uint32_t)len);
    sx_le32_put(h + 4, pcrc);
    pthread_mutex_lock(&w->mu);
    if (w->failed) {
        pthread_mutex_unlock(&w->mu);
        return sx_err_set(err, SX_EIO, "%s: log unusable after an earlier I/O error", w->path);
    }
    uint64_t off = w->written;
    if (w->version == 2) sx_le32_put(h + 8, v2_header_crc((uint32_t)len, pcrc, off, &w->id));
    if (pwrite_all(w->fd, h, hlen, off) != 0 || pwrite_all(w->fd, payload, len, off + hlen) != 0) {
        int e = errno;
        /* Roll back the partial record; if even that fails, stop using the log. */
        if (ftruncate(w->fd, (off_t)off) != 0) w->failed = 1;
        pthread_mutex_unlock(&w->mu);
        return sx_err_set(err, SX_EIO, "%s: append failed: %s", w->path, strerror(e));
    }
    w->written = off + hlen + len;
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

uint64_t sx_wal_header_size(sx_wal *w) { return w->header; }

void sx_wal_close(sx_wal *w) {
    if (!w) return;
    close(w->fd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->path);
    free(w);
}
