/*
 * wal.h - an append-only write-ahead log of opaque records with group commit.
 *
 * A record is acknowledged (sx_wal_sync returned 0 for its LSN) only once it
 * is on stable storage, so it survives kill -9 and power loss. Opening a log
 * replays every intact record through a callback first; a torn tail (a record
 * cut short by a crash) is truncated with a warning, while damage followed by
 * intact records is reported as corruption and nothing is replayed past it.
 *
 *     sx_wal *wal;
 *     if (sx_wal_open("db/wal-1.log", apply, ctx, &stats, &wal, &err) < 0) ...
 *     uint64_t lsn;
 *     sx_wal_append(wal, buf, len, &lsn, &err);
 *     sx_wal_sync(wal, lsn, &err);          // now durable: acknowledge
 *     sx_wal_close(wal);
 */
#ifndef SX_WAL_H
#define SX_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"

/* Largest record payload accepted (bytes). */
#define SX_WAL_MAX_RECORD (64u << 20)

typedef struct sx_wal sx_wal;

/* Called once per intact record, in order, while a log is opened. Returns 0
 * to go on or a negative code (with err set) to stop the open. */
typedef int (*sx_wal_apply_fn)(void *ctx, const void *payload, size_t len, sx_err *err);

/* What opening a log found. */
typedef struct sx_wal_replay_stats {
    uint64_t records;         /* intact records replayed */
    uint64_t bytes;           /* size of the log after any truncation */
    uint64_t truncated_bytes; /* torn tail removed (0 when the log was clean) */
} sx_wal_replay_stats;

/* Opens (creating when absent) the log at path, replays its records through
 * apply (may be NULL), truncates a torn tail and positions for appending.
 * stats (OUT, may be NULL) says what was found. Returns 0, SX_EIO or
 * SX_ECORRUPT (damage before intact records, or a bad header), or apply's
 * error. */
int sx_wal_open(const char *path, sx_wal_apply_fn apply, void *ctx, sx_wal_replay_stats *stats,
                sx_wal **out, sx_err *err);

/* Appends one record (not yet durable) and returns its LSN in *lsn (OUT):
 * the log offset just past it. Thread-safe. Returns 0, SX_EINVAL (too large),
 * or SX_EIO (the log is then unusable: every later call fails). */
int sx_wal_append(sx_wal *wal, const void *payload, size_t len, uint64_t *lsn, sx_err *err);

/* Returns once every record up to lsn is on stable storage. Concurrent
 * callers share one fsync (group commit). Returns 0 or SX_EIO. */
int sx_wal_sync(sx_wal *wal, uint64_t lsn, sx_err *err);

/* Current size of the log in bytes (header included). */
uint64_t sx_wal_size(sx_wal *wal);

/* Closes the log (without syncing: sync what you acknowledge). NULL is a no-op. */
void sx_wal_close(sx_wal *wal);

/* Flushes a file's data and metadata to stable storage (F_FULLFSYNC on macOS).
 * Returns 0 or -1 with errno set. */
int sx_fsync_fd(int fd);

/* Makes a rename or create in dir durable by syncing the directory. Returns 0
 * or SX_EIO. */
int sx_fsync_dir(const char *dir, sx_err *err);

#endif
