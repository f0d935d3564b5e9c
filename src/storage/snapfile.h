/*
 * snapfile.h - the store's files: written whole or not at all, and shard
 * snapshots used in place from a read-only mapping.
 *
 *     sx_snapfile_save(shard, "db/shard-2-0.snap", &err);   // temp, fsync, rename
 *     sx_shard *s;
 *     sx_snapfile_map("db/shard-2-0.snap", 0, &s, &err);    // in place, paged on demand
 *     ...
 *     sx_shard_free(s);                                      // unmaps, closes
 *
 * The shard itself knows no files (it saves to a writer callback and loads
 * from memory); this is where the descriptors, the mapping and pread() live.
 */
#ifndef SX_SNAPFILE_H
#define SX_SNAPFILE_H

#include <stdio.h>

#include "../common/sx.h"
#include "../shard/shard.h"

/* Writes the file at path through fn(ctx, f, err) under the temporary name
 * path.tmp, flushes and fsyncs it, then renames it over path, so a reader
 * sees the old file or the new one, never a part. The caller fsyncs the
 * directory when the rename itself must be durable. Returns 0, fn's error
 * or SX_EIO; on failure the temporary file is removed. */
int sx_snapfile_replace(const char *path, int (*fn)(void *ctx, FILE *f, sx_err *err), void *ctx,
                        sx_err *err);

/* Saves a shard snapshot (sx_shard_save) to path atomically
 * (sx_snapfile_replace). */
int sx_snapfile_save(sx_shard *s, const char *path, sx_err *err);

/* Maps the snapshot file at path read-only and loads it in place
 * (sx_shard_load_mapped with SX_LOAD_FILE; flags may add SX_LOAD_LAZY). The
 * shard owns the mapping and the file: fp32 vectors are re-read with pread()
 * (page cache, not this process's memory), and sx_shard_free unmaps and
 * closes. SX_ENOTFOUND when path is absent, SX_ECORRUPT when it is empty or
 * not a snapshot. */
int sx_snapfile_map(const char *path, int flags, sx_shard **out, sx_err *err);

#endif /* SX_SNAPFILE_H */
