/*
 * text_int.h - helpers shared by the files of src/text/ (not a public API).
 */
#ifndef SX_TEXT_INT_H
#define SX_TEXT_INT_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at p[*i] of text already validated by sx_utf8_check
 * and advances *i past it. */
uint32_t sx_utf8_decode(const unsigned char *p, size_t *i);

/* Writes cp (a valid code point) as UTF-8 to out (room for 4 bytes); returns
 * the number of bytes written. */
size_t sx_utf8_encode(uint32_t cp, char *out);

#endif
