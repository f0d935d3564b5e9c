/*
 * section.c - the framing of semdex snapshot streams.
 *
 * A snapshot is a sequence of sections. Each one is
 *
 *     header  64 bytes: "SXSC", tag (4 ASCII bytes), payload length (u64),
 *             CRC-32C of these 16 bytes, zero padding
 *     payload length bytes, then zero padding to a multiple of 64
 *     footer  64 bytes: "SXSE", CRC-32C of the payload, zero padding
 *
 * All integers are little-endian. Because headers, padded payloads and
 * footers are multiples of 64 bytes, every payload starts 64-byte aligned
 * relative to the start of the stream: a snapshot file mapped into memory
 * (page aligned) can have its arrays used in place. The CRC trails the
 * payload so that a writer streams once without knowing the checksum ahead
 * (a Redis RDB or a pipe cannot seek back).
 *
 * Reading checks the header's own CRC before trusting the length, so a
 * flipped length bit is reported as corruption rather than an attempt to
 * allocate petabytes; from a stream the payload buffer grows only as bytes
 * actually arrive, so a truncated stream with a large claimed length fails
 * without a large allocation.
 */
#include "index.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SEC_MAGIC SX_TAG('S', 'X', 'S', 'C')
#define END_MAGIC SX_TAG('S', 'X', 'S', 'E')
#define ALIGN 64
#define MAX_SECTION ((uint64_t)1 << 40)

static void tag_name(uint32_t tag, char out[5]) {
    for (int i = 0; i < 4; i++) {
        char c = (char)(tag >> (8 * i));
        out[i] = c >= 32 && c < 127 ? c : '?';
    }
    out[4] = 0;
}

/* Writes without touching the CRC. */
static int raw_write(sx_sink *s, const void *buf, size_t len) {
    if (s->error) return s->error;
    if (len == 0) return 0;
    int rc = s->write(s->ctx, buf, len);
    if (rc < 0) {
        s->error = rc;
        return rc;
    }
    s->offset += len;
    return 0;
}

int sx_sink_write(sx_sink *s, const void *buf, size_t len) {
    s->crc = sx_crc32c(s->crc, buf, len);
    return raw_write(s, buf, len);
}

int sx_sink_u32(sx_sink *s, uint32_t v) {
    uint8_t b[4];
    sx_le32_put(b, v);
    return sx_sink_write(s, b, 4);
}

int sx_sink_u64(sx_sink *s, uint64_t v) {
    uint8_t b[8];
    sx_le64_put(b, v);
    return sx_sink_write(s, b, 8);
}

int sx_sink_f32(sx_sink *s, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return sx_sink_u32(s, u);
}

int sx_sink_u32_array(sx_sink *s, const void *a, size_t n) {
    if (sx_host_little_endian()) return sx_sink_write(s, a, n * 4);
    const uint8_t *p = a;
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, p + 4 * i, 4);
        int rc = sx_sink_u32(s, v);
        if (rc < 0) return rc;
    }
    return 0;
}

static int pad(sx_sink *s) {
    static const uint8_t zeros[ALIGN];
    size_t r = (size_t)(s->offset % ALIGN);
    return r ? raw_write(s, zeros, ALIGN - r) : 0;
}

int sx_sink_begin(sx_sink *s, uint32_t tag, uint64_t len) {
    uint8_t h[ALIGN] = {0};
    int rc = pad(s);
    if (rc < 0) return rc;
    sx_le32_put(h, SEC_MAGIC);
    sx_le32_put(h + 4, tag);
    sx_le64_put(h + 8, len);
    sx_le32_put(h + 16, sx_crc32c(0, h, 16));
    s->crc = 0;
    return raw_write(s, h, sizeof h);
}

int sx_sink_end(sx_sink *s) {
    uint8_t f[ALIGN] = {0};
    int rc = pad(s);
    if (rc < 0) return rc;
    sx_le32_put(f, END_MAGIC);
    sx_le32_put(f + 4, s->crc);
    return raw_write(s, f, sizeof f);
}

/* Reads len bytes at the source's offset into buf (stream) or returns a
 * pointer to them (memory). */
static int src_bytes(sx_source *src, void *buf, uint64_t len, const uint8_t **view,
                     const char *what, sx_err *err) {
    if (src->read) {
        int rc = len ? src->read(src->ctx, buf, (size_t)len) : 0;
        if (rc < 0)
            return sx_err_set(err, SX_ECORRUPT, "truncated or unreadable at byte %llu (%s)",
                              (unsigned long long)src->offset, what);
        if (view) *view = buf;
    } else {
        if (src->offset > src->len || len > src->len - src->offset)
            return sx_err_set(err, SX_ECORRUPT,
                              "truncated at byte %llu: %s needs %llu bytes, %llu left",
                              (unsigned long long)src->offset, what, (unsigned long long)len,
                              (unsigned long long)(src->len - src->offset));
        if (view) *view = src->base + src->offset;
        else memcpy(buf, src->base + src->offset, (size_t)len);
    }
    src->offset += len;
    return 0;
}

static int src_skip_pad(sx_source *src, const char *what, sx_err *err) {
    uint8_t tmp[ALIGN];
    size_t r = (size_t)(src->offset % ALIGN);
    if (!r) return 0;
    return src_bytes(src, tmp, ALIGN - r, NULL, what, err);
}

/* Stream payload: grows the buffer as data arrives (see the essay). */
static int stream_payload(sx_source *src, uint64_t len, void **owned, sx_err *err) {
    size_t cap = len < (1u << 20) ? (size_t)len : (1u << 20);
    uint8_t *buf = sx_index_malloc(cap ? cap : 1);
    if (!buf) return sx_err_set(err, SX_ENOMEM, "out of memory reading a section");
    uint64_t got = 0;
    while (got < len) {
        if (got == cap) {
            size_t ncap = cap * 2 > len ? (size_t)len : cap * 2;
            uint8_t *nb = sx_index_realloc(buf, ncap);
            if (!nb) {
                sx_index_free_mem(buf);
                return sx_err_set(err, SX_ENOMEM, "out of memory reading a section");
            }
            buf = nb;
            cap = ncap;
        }
        size_t step = cap - (size_t)got;
        int rc = src_bytes(src, buf + got, step, NULL, "section payload", err);
        if (rc < 0) {
            sx_index_free_mem(buf);
            return rc;
        }
        got += step;
    }
    *owned = buf;
    return 0;
}

/* CRC-32C of a bulk section inside a file mapping, 32 MB at a time, each
 * step's whole pages dropped from the process once read (see file_mapping). */
static uint32_t crc_dropping(const uint8_t *p, uint64_t len) {
    const uint64_t step = (uint64_t)32 << 20;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t mask = pg > 0 ? (uintptr_t)pg - 1 : 4095;
    uint32_t crc = 0;
    for (uint64_t at = 0; at < len; at += step) {
        size_t n = (size_t)(len - at < step ? len - at : step);
        crc = sx_crc32c(crc, p + at, n);
#ifdef MADV_DONTNEED
        uintptr_t lo = ((uintptr_t)(p + at) + mask) & ~mask, hi = (uintptr_t)(p + at + n) & ~mask;
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
#endif
    }
    return crc;
}

int sx_source_section(sx_source *src, uint32_t tag, int bulk, sx_section *out, sx_err *err) {
    char want[5], got[5];
    uint8_t hb[ALIGN];
    const uint8_t *h;
    memset(out, 0, sizeof *out);
    tag_name(tag, want);
    int rc = src_skip_pad(src, want, err);
    if (rc == 0) rc = src_bytes(src, hb, ALIGN, &h, want, err);
    if (rc < 0) return sx_err_prefix(err, "section '%s' header", want);
    uint64_t at = src->offset - ALIGN;
    if (sx_le32_get(h) != SEC_MAGIC || sx_le32_get(h + 16) != sx_crc32c(0, h, 16))
        return sx_err_set(err, SX_ECORRUPT, "bad section header at byte %llu (expected '%s')",
                          (unsigned long long)at, want);
    tag_name(sx_le32_get(h + 4), got);
    if (sx_le32_get(h + 4) != tag)
        return sx_err_set(err, SX_ECORRUPT, "section '%s' at byte %llu where '%s' was expected",
                          got, (unsigned long long)at, want);
    uint64_t len = sx_le64_get(h + 8);
    if (len > MAX_SECTION)
        return sx_err_set(err, SX_ECORRUPT, "section '%s' claims %llu bytes", want,
                          (unsigned long long)len);
    if (src->read) {
        rc = stream_payload(src, len, &out->owned, err);
        out->data = out->owned;
    } else {
        rc = src_bytes(src, NULL, len, &out->data, want, err);
    }
    if (rc == 0) rc = src_skip_pad(src, want, err);
    uint8_t fb[ALIGN];
    const uint8_t *f = NULL;
    if (rc == 0) rc = src_bytes(src, fb, ALIGN, &f, want, err);
    if (rc < 0) {
        sx_section_release(out);
        return sx_err_prefix(err, "section '%s'", want);
    }
    int check = src->read || !bulk || src->verify_bulk;
    int drop = !src->read && bulk && src->file_mapping;
    if (sx_le32_get(f) != END_MAGIC ||
        (check && sx_le32_get(f + 4) != (drop ? crc_dropping(out->data, len) : sx_crc32c(0, out->data, (size_t)len)))) {
        sx_section_release(out);
        return sx_err_set(err, SX_ECORRUPT, "section '%s' at byte %llu: checksum mismatch", want,
                          (unsigned long long)at);
    }
    out->tag = tag;
    out->len = len;
    return 0;
}

void sx_section_release(sx_section *sec) {
    sx_index_free_mem(sec->owned);
    sec->owned = NULL;
    sec->data = NULL;
}

int sx_section_u32(const sx_section *sec, uint64_t *pos, uint32_t *v) {
    if (*pos > sec->len || sec->len - *pos < 4) return SX_ECORRUPT;
    *v = sx_le32_get(sec->data + *pos);
    *pos += 4;
    return 0;
}

int sx_section_u64(const sx_section *sec, uint64_t *pos, uint64_t *v) {
    if (*pos > sec->len || sec->len - *pos < 8) return SX_ECORRUPT;
    *v = sx_le64_get(sec->data + *pos);
    *pos += 8;
    return 0;
}

int sx_section_f32(const sx_section *sec, uint64_t *pos, float *v) {
    uint32_t u;
    if (sx_section_u32(sec, pos, &u) < 0) return SX_ECORRUPT;
    memcpy(v, &u, 4);
    return 0;
}
