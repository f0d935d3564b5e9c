/*
 * testsec.h - re-sealing sectioned files (the shard snapshot, the keyword
 * index; format in src/index/section.c) after a test or a fuzz target has
 * changed their bytes, so that the change gets past the checksums and
 * reaches the structure checks behind them.
 */
#ifndef SX_TESTSEC_H
#define SX_TESTSEC_H

#include <stddef.h>
#include <stdint.h>

#include "../src/common/sx.h"
#include "../src/index/index.h"

/* Recomputes the header and payload CRC of every section of p (size
 * bytes), from the start, as long as section headers follow one another;
 * stops at the first that does not fit. */
static inline void test_fix_section_crcs(uint8_t *p, size_t size) {
    size_t o = 0;
    while (o + 64 <= size && sx_le32_get(p + o) == SX_TAG('S', 'X', 'S', 'C')) {
        uint64_t len = sx_le64_get(p + o + 8);
        sx_le32_put(p + o + 16, sx_crc32c(0, p + o, 16));
        if (len > size - o - 64) return;
        size_t f = o + 64 + (size_t)(len + 63) / 64 * 64;
        if (f + 64 > size) return;
        sx_le32_put(p + f + 4, sx_crc32c(0, p + o + 64, (size_t)len));
        o = f + 64;
    }
}

#endif
