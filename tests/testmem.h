/*
 * testmem.h - an in-memory byte stream for the save/load tests: a writer
 * callback that appends (optionally failing past a size) and a reader
 * callback that hands out exactly the bytes asked for.
 */
#ifndef SX_TESTMEM_H
#define SX_TESTMEM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/common/sx.h"

typedef struct membuf {
    uint8_t *p;
    size_t len, cap, pos;
    size_t fail_at; /* writes fail once len would pass it (0 = never) */
} membuf;

static inline int mem_write(void *ctx, const void *buf, size_t len) {
    membuf *m = ctx;
    if (m->fail_at && m->len + len > m->fail_at) return SX_EIO;
    if (m->len + len > m->cap) {
        size_t nc = m->cap ? m->cap : 4096;
        while (nc < m->len + len) nc *= 2;
        uint8_t *np = realloc(m->p, nc);
        if (!np) return SX_ENOMEM;
        m->p = np;
        m->cap = nc;
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

static inline int mem_read(void *ctx, void *buf, size_t len) {
    membuf *m = ctx;
    if (len > m->len - m->pos) return SX_EIO;
    memcpy(buf, m->p + m->pos, len);
    m->pos += len;
    return 0;
}

#endif
