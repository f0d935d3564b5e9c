/*
 * snapfile.c - writing files atomically, and mapping shard snapshots.
 *
 * Writing. Every file the store replaces (a shard snapshot, the MANIFEST) is
 * written under a temporary name, fsync'd and renamed over the old one, so a
 * crash leaves either file whole. Rejected: writing in place (a crash leaves
 * half a snapshot) and a copy-then-truncate (two full writes).
 *
 * Mapping. A snapshot is used in place: its sections are 64-byte aligned
 * (index/section.c), so the fp32 vectors and the documents stay in the file
 * and are paged in on demand; only the graph, the codes and the id table are
 * copied to the heap. Once the checksums are verified every page has been
 * read; they are then dropped from this process (MADV_DONTNEED: they stay in
 * the page cache, and the mapping is read-only, so nothing is lost), and the
 * mapping is marked MADV_RANDOM (no read-ahead around a document). The fp32
 * vectors that re-ranking touches are read with pread() rather than through
 * the mapping, so they too stay in the page cache instead of this process's
 * resident memory. The shard owns the mapping through sx_shard_set_backing:
 * whoever frees the shard releases the file.
 */
#include "snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal.h"

int sx_snapfile_replace(const char *path, int (*fn)(void *ctx, FILE *f, sx_err *err), void *ctx,
                        sx_err *err) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sx_err_set(err, SX_EINVAL, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return sx_err_set(err, SX_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = fn(ctx, f, err);
    if (rc == 0 && fflush(f) != 0) rc = sx_err_set(err, SX_EIO, "%s: write failed: %s", tmp, strerror(errno));
    if (rc == 0 && sx_fsync_fd(fileno(f)) != 0)
        rc = sx_err_set(err, SX_EIO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && rc == 0) rc = sx_err_set(err, SX_EIO, "%s: close failed: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = sx_err_set(err, SX_EIO, "%s: rename failed: %s", path, strerror(errno));
    if (rc < 0) unlink(tmp);
    return rc;
}

static int file_write(void *ctx, const void *buf, size_t len) {
    return fwrite(buf, 1, len, ctx) == len ? 0 : SX_EIO;
}

static int save_body(void *ctx, FILE *f, sx_err *err) { return sx_shard_save(ctx, file_write, f, err); }

int sx_snapfile_save(sx_shard *s, const char *path, sx_err *err) {
    return sx_snapfile_replace(path, save_body, s, err);
}

/* A mapped snapshot, owned by the shard loaded from it. */
typedef struct mapped {
    void *base;
    size_t len;
    int fd;
} mapped;

static int mapped_read(void *ctx, void *buf, size_t len, uint64_t offset) {
    const mapped *m = ctx;
    return pread(m->fd, buf, len, (off_t)offset) == (ssize_t)len ? 0 : SX_EIO;
}

static void mapped_release(void *ctx) {
    mapped *m = ctx;
    munmap(m->base, m->len);
    close(m->fd);
    free(m);
}

int sx_snapfile_map(const char *path, int flags, sx_shard **out, sx_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_set(err, errno == ENOENT ? SX_ENOTFOUND : SX_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return sx_err_set(err, SX_ECORRUPT, "%s: not a snapshot (empty or not a file)", path);
    }
    size_t len = (size_t)st.st_size;
    void *base = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
        close(fd);
        return sx_err_set(err, SX_EIO, "%s: mmap failed: %s", path, strerror(errno));
    }
    mapped *m = malloc(sizeof *m);
    int rc = m ? sx_shard_load_mapped(base, len, flags | SX_LOAD_FILE, out, err)
               : sx_err_set(err, SX_ENOMEM, "out of memory");
    if (rc < 0) {
        free(m);
        munmap(base, len);
        close(fd);
        return sx_err_prefix(err, "%s", path);
    }
    *m = (mapped){base, len, fd};
    sx_shard_set_backing(*out, base, mapped_read, mapped_release, m);
#ifdef MADV_DONTNEED
    madvise(base, len, MADV_DONTNEED); /* see the essay */
#endif
#ifdef MADV_RANDOM
    madvise(base, len, MADV_RANDOM);
#endif
    return 0;
}
