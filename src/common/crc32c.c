/*
 * crc32c.c - CRC-32C (Castagnoli), the checksum of every semdex file format
 * (snapshots, write-ahead log records).
 *
 * Why CRC-32C: it detects all burst errors up to 32 bits and has hardware
 * support on both x86-64 (SSE4.2 crc32) and arm64 (ARMv8 CRC extension), so
 * verifying a snapshot of several hundred megabytes costs a fraction of a
 * second. The portable path is slicing-by-8 over tables built once; the
 * hardware path is selected at run time and tested against it.
 */
#include "sx.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t g_table[8][256];
static pthread_once_t g_table_once = PTHREAD_ONCE_INIT;

static void table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        g_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = g_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = g_table[0][c & 0xff] ^ (c >> 8);
            g_table[t][i] = c;
        }
    }
}

/* Portable slicing-by-8; the reference the hardware path is tested against. */
uint32_t sx_crc32c_portable(uint32_t crc, const void *buf, size_t len) {
    pthread_once(&g_table_once, table_init);
    const unsigned char *p = buf;
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = g_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= crc;
        crc = g_table[7][lo & 0xff] ^ g_table[6][(lo >> 8) & 0xff] ^
              g_table[5][(lo >> 16) & 0xff] ^ g_table[4][lo >> 24] ^
              g_table[3][hi & 0xff] ^ g_table[2][(hi >> 8) & 0xff] ^
              g_table[1][(hi >> 16) & 0xff] ^ g_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = g_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                             size_t len) {
    const unsigned char *p = buf;
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    while (len--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
static int hw_available(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len) {
    const unsigned char *p = buf;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __crc32cd(c, v);
        p += 8;
        len -= 8;
    }
    while (len--) c = __crc32cb(c, *p++);
    return ~c;
}
static int hw_available(void) { return 1; }
#else
static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len) {
    return sx_crc32c_portable(crc, buf, len);
}
static int hw_available(void) { return 0; }
#endif

uint32_t sx_crc32c(uint32_t crc, const void *buf, size_t len) {
    static _Atomic int use_hw = -1; /* -1 unknown, then 0 or 1; races are benign */
    int hw = use_hw;
    if (hw < 0) use_hw = hw = hw_available();
    return hw ? crc32c_hw(crc, buf, len) : sx_crc32c_portable(crc, buf, len);
}
