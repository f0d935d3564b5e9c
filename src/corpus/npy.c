/*
 * npy.c - reading float32 matrices from NumPy .npy files.
 *
 * The reference deployment kept its 510K embeddings as an .npy file, and our
 * benchmarks cache theirs the same way, so ingest can take vectors from one
 * instead of running the encoder. The file is memory-mapped and validated:
 * magic, version 1-3 header, dtype '<f4', C order, a 2-D shape, and a size
 * that matches the shape exactly.
 */
#include "corpus.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct sx_npy {
    void *map;
    size_t map_len;
    const float *data;
    uint64_t rows;
    int cols;
};

/* Finds 'key': in the header dict and returns a pointer just past the colon. */
static const char *dict_value(const char *h, const char *key) {
    const char *p = strstr(h, key);
    if (!p) return NULL;
    p = strchr(p + strlen(key), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int parse_header(const char *h, const char *path, uint64_t *rows, int *cols, sx_err *err) {
    const char *d = dict_value(h, "'descr'");
    const char *f = dict_value(h, "'fortran_order'");
    const char *s = dict_value(h, "'shape'");
    if (!d || !f || !s) return sx_err_set(err, SX_ECORRUPT, "%s: malformed .npy header", path);
    if (strncmp(d, "'<f4'", 5) != 0)
        return sx_err_set(err, SX_EUNSUPPORTED, "%s: dtype must be little-endian float32 ('<f4'), got %.8s",
                          path, d);
    if (strncmp(f, "False", 5) != 0)
        return sx_err_set(err, SX_EUNSUPPORTED, "%s: Fortran-order arrays are not supported", path);
    unsigned long long r = 0, c = 0;
    if (sscanf(s, "(%llu, %llu)", &r, &c) != 2 || c == 0 || c > 65536)
        return sx_err_set(err, SX_EUNSUPPORTED, "%s: expected a 2-D shape (rows, dim), got %.30s", path, s);
    *rows = r;
    *cols = (int)c;
    return 0;
}

int sx_npy_open(const char *path, sx_npy **out, sx_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_set(err, errno == ENOENT ? SX_ENOTFOUND : SX_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 16) {
        close(fd);
        return sx_err_set(err, SX_ECORRUPT, "%s: too small to be an .npy file", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return sx_err_set(err, SX_EIO, "%s: cannot map: %s", path, strerror(errno));
    const unsigned char *p = map;
    int rc = 0;
    size_t hlen = 0, hoff = 0;
    if (memcmp(p, "\x93NUMPY", 6) != 0) {
        rc = sx_err_set(err, SX_ECORRUPT, "%s: not an .npy file (bad magic)", path);
    } else if (p[6] == 1) {
        hlen = sx_le16_get(p + 8);
        hoff = 10;
    } else if (p[6] == 2 || p[6] == 3) {
        hlen = sx_le32_get(p + 8);
        hoff = 12;
    } else {
        rc = sx_err_set(err, SX_EUNSUPPORTED, "%s: .npy version %d is not supported", path, p[6]);
    }
    uint64_t rows = 0;
    int cols = 0;
    if (rc == 0 && hoff + hlen > len) rc = sx_err_set(err, SX_ECORRUPT, "%s: truncated header", path);
    if (rc == 0) {
        char *h = malloc(hlen + 1);
        if (!h) rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        else {
            memcpy(h, p + hoff, hlen);
            h[hlen] = '\0';
            rc = parse_header(h, path, &rows, &cols, err);
            free(h);
        }
    }
    size_t data_off = hoff + hlen;
    if (rc == 0 && (len - data_off) != rows * (uint64_t)cols * 4)
        rc = sx_err_set(err, SX_ECORRUPT, "%s: holds %zu data bytes, shape (%llu, %d) needs %llu", path,
                        len - data_off, (unsigned long long)rows, cols,
                        (unsigned long long)(rows * (uint64_t)cols * 4));
    sx_npy *n = rc == 0 ? calloc(1, sizeof *n) : NULL;
    if (rc == 0 && !n) rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    if (rc < 0) {
        munmap(map, len);
        return rc;
    }
    n->map = map;
    n->map_len = len;
    n->data = (const float *)(p + data_off); /* header length keeps it 16-aligned */
    n->rows = rows;
    n->cols = cols;
    *out = n;
    return 0;
}

uint64_t sx_npy_rows(const sx_npy *n) { return n->rows; }

int sx_npy_cols(const sx_npy *n) { return n->cols; }

void sx_npy_row(const sx_npy *n, uint64_t row, float *out) {
    memcpy(out, n->data + row * (uint64_t)n->cols, (size_t)n->cols * sizeof(float));
}

void sx_npy_close(sx_npy *n) {
    if (!n) return;
    munmap(n->map, n->map_len);
    free(n);
}
