/*
 * safetensors.c - reader for the safetensors format (Hugging Face), the file
 * that holds a model's weights.
 *
 * Layout: an unsigned 64-bit little-endian header length N, N bytes of JSON
 * (an object mapping tensor names to {"dtype", "shape", "data_offsets"} plus an
 * optional "__metadata__" object of strings), then the data section; each
 * tensor's offsets are relative to the start of the data section.
 *
 * The file is mapped read-only and the header is parsed with cJSON. Everything
 * in the header is untrusted: we check the length against the file, that the
 * JSON is one object followed only by spaces, that every entry has a known
 * dtype, a shape of at most 8 non-negative integer dimensions, and offsets
 * that are integers, ordered, inside the data section, and exactly
 * numel * dtype size apart (with overflow-checked multiplication), and that
 * no name appears twice. Only then
 * does a caller see a tensor. Conversions to float32 check the dtype and
 * shape the caller expects, so a shape mismatch is reported with the tensor's
 * name rather than read out of bounds. The header parser is fuzzed
 * (tests/fuzz/fuzz-safetensors.c).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_int.h"

#define HEADER_MAX (100u << 20) /* the format's own limit on the header */

struct sx_st_file {
    char label[256];
    const unsigned char *base; /* whole image */
    size_t size;
    const unsigned char *data; /* data section */
    size_t data_size;
    int mapped;
    int n;
    sx_st_tensor *t;
};

static int dtype_size(const char *name, sx_dtype *dt) {
    static const struct {
        const char *name;
        int size;
        sx_dtype dt;
    } known[] = {
        {"F32", 4, SX_DT_F32},    {"F16", 2, SX_DT_F16},    {"BF16", 2, SX_DT_BF16},
        {"F64", 8, SX_DT_OTHER},  {"I64", 8, SX_DT_OTHER},  {"I32", 4, SX_DT_OTHER},
        {"I16", 2, SX_DT_OTHER},  {"I8", 1, SX_DT_OTHER},   {"U8", 1, SX_DT_OTHER},
        {"U16", 2, SX_DT_OTHER},  {"U32", 4, SX_DT_OTHER},  {"U64", 8, SX_DT_OTHER},
        {"BOOL", 1, SX_DT_OTHER}, {"F8_E4M3", 1, SX_DT_OTHER}, {"F8_E5M2", 1, SX_DT_OTHER},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(name, known[i].name) == 0) {
            *dt = known[i].dt;
            return known[i].size;
        }
    }
    return -1;
}

/* A JSON number that is an integer in [0, 2^53]: 0 and the value, or -1. */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_tensor(sx_st_file *f, const cJSON *e, sx_st_tensor *t, sx_err *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return sx_err_set(err, SX_ECORRUPT, "%s: tensor '%.80s' is not an object", f->label, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return sx_err_set(err, SX_ECORRUPT,
                          "%s: tensor '%.80s' lacks dtype, shape or data_offsets", f->label, name);
    int size = dtype_size(dt->valuestring, &t->dtype);
    if (size < 0)
        return sx_err_set(err, SX_ECORRUPT, "%s: tensor '%.80s' has unknown dtype '%.20s'",
                          f->label, name, dt->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd > SX_ST_MAX_DIMS)
        return sx_err_set(err, SX_ECORRUPT, "%s: tensor '%.80s' has %d dimensions (max %d)",
                          f->label, name, nd, SX_ST_MAX_DIMS);
    uint64_t numel = 1;
    t->ndim = nd;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(cJSON_GetArrayItem(shape, i), &d) < 0)
            return sx_err_set(err, SX_ECORRUPT, "%s: tensor '%.80s' has a bad shape", f->label,
                              name);
        t->shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d)
            return sx_err_set(err, SX_ECORRUPT, "%s: tensor '%.80s' is too large", f->label, name);
        numel *= d;
    }
    uint64_t b, en;
    if (cJSON_GetArraySize(offs) != 2 || json_u64(cJSON_GetArrayItem(offs, 0), &b) < 0 ||
        json_u64(cJSON_GetArrayItem(offs, 1), &en) < 0 || b > en)
        return sx_err_set(err, SX_ECORRUPT, "%s: tensor '%.80s' has bad data_offsets", f->label,
                          name);
    if (en > f->data_size)
        return sx_err_set(err, SX_ECORRUPT,
                          "%s: tensor '%.80s' ends at byte %llu of a %zu-byte data section "
                          "(truncated file?)",
                          f->label, name, (unsigned long long)en, f->data_size);
    if (numel > UINT64_MAX / (uint64_t)size || en - b != numel * (uint64_t)size)
        return sx_err_set(err, SX_ECORRUPT,
                          "%s: tensor '%.80s' holds %llu bytes; its shape and dtype need %llu",
                          f->label, name, (unsigned long long)(en - b),
                          (unsigned long long)(numel * (uint64_t)size));
    t->begin = b;
    t->end = en;
    t->name = strdup(name);
    if (!t->name) return sx_err_set(err, SX_ENOMEM, "out of memory");
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* JSON allows a key twice; safetensors does not (which one would a reader
 * get?), so a repeated tensor name is an error. Sorted: O(n log n). */
static int check_unique(sx_st_file *f, sx_err *err) {
    if (f->n < 2) return 0;
    char **names = malloc(sizeof *names * (size_t)f->n);
    if (!names) return sx_err_set(err, SX_ENOMEM, "out of memory");
    for (int i = 0; i < f->n; i++) names[i] = f->t[i].name;
    qsort(names, (size_t)f->n, sizeof *names, cmp_name);
    int rc = 0;
    for (int i = 1; i < f->n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = sx_err_set(err, SX_ECORRUPT, "%s: tensor '%.80s' appears twice", f->label, names[i]);
    free(names);
    return rc;
}

static int parse_header(sx_st_file *f, sx_err *err) {
    if (f->size < 8)
        return sx_err_set(err, SX_ECORRUPT, "%s: %zu bytes, too short for a safetensors file",
                          f->label, f->size);
    uint64_t n = sx_le64_get(f->base);
    if (n > f->size - 8 || n > HEADER_MAX)
        return sx_err_set(err, SX_ECORRUPT,
                          "%s: header length %llu does not fit in a %zu-byte file (truncated "
                          "or not safetensors)",
                          f->label, (unsigned long long)n, f->size);
    const char *hdr = (const char *)f->base + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    int rc = 0;
    if (!root || !cJSON_IsObject(root)) {
        rc = sx_err_set(err, SX_ECORRUPT, "%s: header is not a JSON object", f->label);
        goto done;
    }
    for (const char *p = end; p < hdr + n; p++) {
        if (*p != ' ' && *p != '\0' && *p != '\n' && *p != '\t' && *p != '\r') {
            rc = sx_err_set(err, SX_ECORRUPT, "%s: bytes after the JSON header", f->label);
            goto done;
        }
    }
    f->data = f->base + 8 + n;
    f->data_size = f->size - 8 - (size_t)n;
    int count = cJSON_GetArraySize(root);
    f->t = calloc((size_t)count + 1, sizeof *f->t);
    if (!f->t) {
        rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) continue;
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                rc = sx_err_set(err, SX_ECORRUPT, "%s: __metadata__ is not an object", f->label);
                goto done;
            }
            continue;
        }
        rc = parse_tensor(f, e, &f->t[f->n], err);
        if (rc < 0) goto done;
        f->n++;
    }
    rc = check_unique(f, err);
done:
    cJSON_Delete(root);
    return rc;
}

int sx_st_parse(const void *data, size_t size, const char *label, sx_st_file **out,
                sx_err *err) {
    *out = NULL;
    sx_st_file *f = calloc(1, sizeof *f);
    if (!f) return sx_err_set(err, SX_ENOMEM, "out of memory");
    snprintf(f->label, sizeof f->label, "%s", label);
    f->base = data;
    f->size = size;
    int rc = parse_header(f, err);
    if (rc < 0) {
        sx_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int sx_st_open(const char *path, sx_st_file **out, sx_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sx_err_set(err, errno == ENOENT ? SX_ENOTFOUND : SX_EIO, "%s: cannot open: %s",
                          path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sx_err_set(err, SX_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sx_err_set(err, SX_EIO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    static const unsigned char empty[1];
    int rc = sx_st_parse(map ? map : empty, size, path, out, err);
    if (rc < 0) {
        if (map) munmap(map, size);
        return rc;
    }
    (*out)->mapped = map != NULL;
    return 0;
}

void sx_st_close(sx_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f);
}

const sx_st_tensor *sx_st_find(const sx_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

int sx_st_count(const sx_st_file *f) { return f->n; }

const sx_st_tensor *sx_st_get(const sx_st_file *f, int i) {
    return i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const void *sx_st_data(const sx_st_file *f, const sx_st_tensor *t) { return f->data + t->begin; }

int sx_st_read_f32(const sx_st_file *f, const char *name, int ndim, const int64_t *dims,
                   float *out, sx_err *err) {
    const sx_st_tensor *t = sx_st_find(f, name);
    if (!t) return sx_err_set(err, SX_ECORRUPT, "%s: no tensor '%s'", f->label, name);
    char want[128] = "", have[128] = "";
    size_t wl = 0, hl = 0;
    for (int i = 0; i < ndim; i++)
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%lld", i ? ", " : "",
                               (long long)dims[i]);
    for (int i = 0; i < t->ndim && hl < sizeof have - 24; i++)
        hl += (size_t)snprintf(have + hl, sizeof have - hl, "%s%lld", i ? ", " : "",
                               (long long)t->shape[i]);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == dims[i];
    if (!same)
        return sx_err_set(err, SX_ECORRUPT, "%s: tensor '%s' has shape [%s], expected [%s]",
                          f->label, name, have, want);
    if (t->dtype == SX_DT_OTHER)
        return sx_err_set(err, SX_EUNSUPPORTED,
                          "%s: tensor '%s' has dtype %s; expected F32, F16 or BF16", f->label,
                          name, t->dtype_name);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    const unsigned char *src = f->data + t->begin;
    if (t->dtype == SX_DT_F32) {
        memcpy(out, src, n * 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = sx_le16_get(src + 2 * i);
            out[i] = t->dtype == SX_DT_F16 ? sx_f16_to_f32(h) : sx_bf16_to_f32(h);
        }
    }
    return 0;
}

void sx_st_drop_pages(sx_st_file *f) {
    if (f && f->mapped) madvise((void *)f->base, f->size, MADV_DONTNEED);
}
