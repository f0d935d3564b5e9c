/*
 * fuzz.h - what the libFuzzer targets of tests/fuzz/ share: a private
 * scratch directory for the parsers that read files (the line reader, .npy,
 * the store), and writing one input there.
 *
 * The directory is made once per process under $TMPDIR (or /dev/shm when it
 * exists, so that the store's fsyncs cost nothing) and removed at exit. A
 * target runs single-threaded, so one fixed file name per target is enough.
 */
#ifndef SX_FUZZ_H
#define SX_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/common/sx.h"

static char fz_dir_path[256];

static inline void fz_cleanup(void) {
    if (!fz_dir_path[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir_path);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fz_dir_path);
}

/* The scratch directory (created on first use; aborts when it cannot be). */
static inline const char *fz_dir(void) {
    if (fz_dir_path[0]) return fz_dir_path;
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir_path, sizeof fz_dir_path, "%s/semdex-fuzz-XXXXXX", base);
    if (!mkdtemp(fz_dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fz_cleanup);
    sx_log_set_level(SX_LOG_ERROR); /* torn tails and the like are expected */
    return fz_dir_path;
}

/* out (OUT, cap bytes) = the scratch directory / name. */
static inline void fz_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", fz_dir(), name);
}

/* Writes size bytes to path, replacing it; aborts on failure. */
static inline void fz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Empties directory path (files only), creating it when absent. */
static inline void fz_clear_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        if (mkdir(path, 0755) != 0) {
            perror(path);
            abort();
        }
        return;
    }
    struct dirent *e;
    char name[1024];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        snprintf(name, sizeof name, "%s/%s", path, e->d_name);
        unlink(name);
    }
    closedir(d);
}

/* One argument of a command-shaped input (the Redis module's targets). */
typedef struct fz_arg {
    const uint8_t *p;
    size_t len;
} fz_arg;

/* Splits an input into at most max arguments, each a little-endian u16
 * length and that many bytes (the last one takes what is left); returns
 * how many. */
static inline int fz_split(const uint8_t *data, size_t size, fz_arg *args, int max) {
    int n = 0;
    size_t o = 0;
    while (o < size && n < max) {
        size_t len = o + 2 <= size ? (size_t)(data[o] | data[o + 1] << 8) : 0;
        o += o + 2 <= size ? 2 : size - o;
        if (len > size - o) len = size - o;
        args[n++] = (fz_arg){data + o, len};
        o += len;
    }
    return n;
}

/* Fails the run: a broken invariant is a bug like a crash. */
#define FZ_CHECK(cond)                                                                    \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
