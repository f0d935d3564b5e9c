/*
 * utf8.c - UTF-8 validation and decoding for the tokenizer.
 *
 * Every text that enters the encoder is validated first, so the tokenizer can
 * decode without checks and a bad byte is reported once, with its offset. The
 * rules are those of RFC 3629: no overlong forms, no UTF-16 surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence. ASCII runs,
 * the bulk of scientific text, are skipped eight bytes at a time.
 */
#include <string.h>

#include "text.h"
#include "text_int.h"

int sx_utf8_check(const char *s, size_t len, size_t *bad_offset) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (len - i - 1 < need) goto bad;
        for (size_t k = 1; k <= need; k++) {
            unsigned cc = p[i + k];
            if ((cc & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        i += need + 1;
    }
    return 0;
bad:
    if (bad_offset) *bad_offset = i;
    return SX_EINVAL;
}

uint32_t sx_utf8_decode(const unsigned char *p, size_t *i) {
    unsigned c = p[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c < 0xE0) {
        uint32_t cp = ((uint32_t)(c & 0x1F) << 6) | (p[*i + 1] & 0x3Fu);
        *i += 2;
        return cp;
    }
    if (c < 0xF0) {
        uint32_t cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[*i + 1] & 0x3F) << 6) |
                      (p[*i + 2] & 0x3Fu);
        *i += 3;
        return cp;
    }
    uint32_t cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[*i + 1] & 0x3F) << 12) |
                  ((uint32_t)(p[*i + 2] & 0x3F) << 6) | (p[*i + 3] & 0x3Fu);
    *i += 4;
    return cp;
}

size_t sx_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
