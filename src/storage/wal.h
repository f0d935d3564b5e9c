/*
 * wal.h - an append-only write-ahead log of opaque records with group commit.
 *
 * A record is acknowledged (sx_wal_sync returned 0 for its LSN) only once it
 * is on stable storage, so it survives kill -9 and power loss. A log names
 * what it belongs to (a collection id and a checkpoint generation, in its
 * header), and opening one checks that name: a missing, empty or foreign log
 * is refused, never silently replaced by an empty one. Opening replays every
 * intact record through a callback first; a torn tail (the last record cut
 * short by a crash) is truncated with a warning, while any other damage is
 * reported as corruption and nothing is replayed past it.
 *
 *     sx_wal_id id = {collection, generation};
 *     sx_wal *wal;
 *     sx_wal_create("db/wal-1.log", &id, &wal, &err);              // a new log
 *     ...
 *     if (sx_wal_open("db/wal-1.log", &id, 0, apply, ctx, &stats, &wal, &err) < 0) ...
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

/* What a log belongs to; written in its header and checked at every open. */
typedef struct sx_wal_id {
    uint64_t collection; /* random id of the collection; 0 = a version-1 log
                            (written before logs had ids) */
    uint64_t generation; /* the checkpoint generation whose changes it holds */
} sx_wal_id;

/* Called once per intact record, in order, while a log is opened. Returns 0
 * to go on or a negative code (with err set) to stop the open. */
typedef int (*sx_wal_apply_fn)(void *ctx, const void *payload, size_t len, sx_err *err);

/* What opening a log found. */
typedef struct sx_wal_replay_stats {
    uint64_t records;         /* intact records replayed */
    uint64_t bytes;           /* size of the log after any truncation */
    uint64_t truncated_bytes; /* torn tail removed (0 when the log was clean) */
    uint64_t crc_bytes;       /* bytes checksummed by the replay (recovery reads
                                 the file once: at most its size plus 32 per record) */
    int version;              /* format version of the log (1 or 2) */
    int salvaged;             /* SX_WAL_SALVAGE only: 1 when the log was missing,
                                 empty, foreign or damaged (what was intact
                                 before the damage was replayed; *out is NULL) */
} sx_wal_replay_stats;

/* sx_wal_open flags. */
enum {
    /* Instead of failing on a missing, empty, foreign or damaged log: log a
     * warning, replay the intact records before the damage, leave the file
     * as it is, and return 0 with *out = NULL and stats->salvaged = 1. The
     * caller then starts a new log (the deliberate override of an operator
     * who accepts losing what the log held). */
    SX_WAL_SALVAGE = 1,
};

/* Creates a new, empty log at path for id (an existing file there is
 * replaced) and syncs it. Returns 0 or SX_EIO. */
int sx_wal_create(const char *path, const sx_wal_id *id, sx_wal **out, sx_err *err);

/* Opens the existing log at path, checks that its header names id, replays
 * its records through apply (may be NULL), truncates a torn tail and
 * positions for appending. stats (OUT, may be NULL) says what was found.
 * Returns 0; SX_ENOTFOUND (no file); SX_ECORRUPT (empty, not a log, another
 * collection's or generation's log, or damage other than a torn tail);
 * SX_EUNSUPPORTED (unknown version); SX_EIO; or apply's error. With
 * SX_WAL_SALVAGE, see above. The messages name the file. */
int sx_wal_open(const char *path, const sx_wal_id *id, int flags, sx_wal_apply_fn apply, void *ctx,
                sx_wal_replay_stats *stats, sx_wal **out, sx_err *err);

/* What the header of the log at path says, without replaying it. */
typedef struct sx_wal_probe_info {
    int version;       /* 1 or 2 */
    sx_wal_id id;      /* collection 0 for version 1 */
    uint64_t size;     /* file size */
    uint64_t header;   /* header size: size > header means it holds records */
} sx_wal_probe_info;

/* Reads the header of the log at path into *out (OUT). Returns 0,
 * SX_ENOTFOUND, SX_ECORRUPT (empty or not a log) or SX_EIO. */
int sx_wal_probe(const char *path, sx_wal_probe_info *out, sx_err *err);

/* Appends one record (not yet durable) and returns its LSN in *lsn (OUT):
 * the log offset just past it. Thread-safe. Returns 0, SX_EINVAL (too large),
 * or SX_EIO (the log is then unusable: every later call fails). */
int sx_wal_append(sx_wal *wal, const void *payload, size_t len, uint64_t *lsn, sx_err *err);

/* Returns once every record up to lsn is on stable storage. Concurrent
 * callers share one fsync (group commit). Returns 0 or SX_EIO. */
int sx_wal_sync(sx_wal *wal, uint64_t lsn, sx_err *err);

/* Current size of the log in bytes (header included). */
uint64_t sx_wal_size(sx_wal *wal);

/* Size of the log's header: a log no larger holds no record. */
uint64_t sx_wal_header_size(sx_wal *wal);

/* Closes the log (without syncing: sync what you acknowledge). NULL is a no-op. */
void sx_wal_close(sx_wal *wal);

/* Flushes a file's data and metadata to stable storage (F_FULLFSYNC on macOS).
 * Returns 0 or -1 with errno set. */
int sx_fsync_fd(int fd);

/* Makes a rename or create in dir durable by syncing the directory. Returns 0
 * or SX_EIO. */
int sx_fsync_dir(const char *dir, sx_err *err);

#endif
