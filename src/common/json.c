/*
 * json.c - reading JSON: a whole object from a file (model folders are
 * described by several small JSON files; the tokenizer and the encoder read
 * them), and one JSON value from outside bytes (request bodies, JSON lines).
 *
 * cJSON parses well, but two things it allows are wrong for input we store:
 *
 * - Trailing data. cJSON_ParseWithLength stops after the first value, so
 *   `{"query": "x"} xyz` parses as {"query": "x"}. sx_json_parse requires
 *   the rest of the text to be whitespace.
 *
 * - U+0000 in a string. cJSON decodes `\u0000` (and copies a raw NUL byte)
 *   into a NUL-terminated valuestring, so "control\u0000chars" reads as
 *   "control" and an abstract would be stored cut, with nobody told. We
 *   refuse such a string with an error that names it by its path in the
 *   document ('papers[0].abstract'), so that the API answers 400 naming the
 *   field, `semdex ingest` skips the record and reports its line, and
 *   `semdex tokenize --jsonl` / `embed` stop at the line.
 *
 *   Rejected: carrying lengths. That needs a JSON library whose strings have
 *   a length (cJSON's have none) and every consumer of a string -- the
 *   document codec, the store, the Redis module, the tokenizer's callers --
 *   to take a length, for a character that no arXiv record holds and that
 *   the tokenizer would drop anyway (BERT's clean-up removes U+0000). Also
 *   rejected: dropping the NUL before parsing, which changes what the user
 *   sent without telling them.
 *
 * The NUL check costs nothing on ordinary input: the path-tracking scan runs
 * only when the text holds a NUL byte or the six bytes `\u0000`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sx.h"

int sx_json_read_object(const char *path, int optional, cJSON **out, sx_err *err) {
    char *data;
    size_t size;
    *out = NULL;
    int rc = sx_read_file(path, &data, &size, err);
    if (rc == SX_ENOTFOUND && optional) return 0;
    if (rc < 0) return rc;
    *out = cJSON_ParseWithLength(data, size);
    free(data);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return sx_err_set(err, SX_ECORRUPT, "%s: not a JSON object", path);
    }
    return 0;
}

/* One open container of the scan: an object (with the key last read) or an
 * array (with the index of the current element). */
typedef struct {
    int is_object;
    long index;
    const char *key; /* raw bytes between the quotes, escapes as written */
    size_t key_len;
} json_frame;

#define JSON_PATH_DEPTH 16

/* Writes the path of the current value ("papers[0].abstract") into out. */
static void json_path(const json_frame *st, int depth, char *out, size_t cap) {
    size_t o = 0;
    out[0] = '\0';
    for (int d = 0; d < depth && d < JSON_PATH_DEPTH && o + 1 < cap; d++) {
        int k;
        if (st[d].is_object)
            k = snprintf(out + o, cap - o, "%s%.*s", o ? "." : "", (int)(st[d].key_len > 64 ? 64 : st[d].key_len),
                         st[d].key ? st[d].key : "");
        else
            k = snprintf(out + o, cap - o, "[%ld]", st[d].index);
        if (k < 0) break;
        o += (size_t)k < cap - o ? (size_t)k : cap - o - 1;
    }
    if (depth > JSON_PATH_DEPTH && o + 5 < cap) snprintf(out + o, cap - o, "...");
}

/* Scans the string starting after the quote at text[*i]; leaves *i on the
 * closing quote. Returns the offset of the first U+0000 in it, or -1. */
static long scan_string(const char *text, size_t len, size_t *i) {
    long nul = -1;
    size_t j = *i + 1;
    while (j < len && text[j] != '"') {
        if (text[j] == '\0' && nul < 0) nul = (long)j;
        if (text[j] == '\\' && j + 1 < len) {
            if (text[j + 1] == 'u' && j + 6 <= len && memcmp(text + j + 2, "0000", 4) == 0 && nul < 0)
                nul = (long)j;
            j++;
        }
        j++;
    }
    *i = j;
    return nul;
}

/* Finds a string holding U+0000 in the valid JSON text; returns 0 when there
 * is none, else SX_EINVAL naming it. */
static int find_nul(const char *text, size_t len, sx_err *err) {
    json_frame st[JSON_PATH_DEPTH];
    int depth = 0, want_key = 0;
    for (size_t i = 0; i < len; i++) {
        json_frame *top = depth > 0 && depth <= JSON_PATH_DEPTH ? &st[depth - 1] : NULL;
        switch (text[i]) {
        case '{':
        case '[':
            if (depth < JSON_PATH_DEPTH)
                st[depth] = (json_frame){.is_object = text[i] == '{', .index = 0};
            depth++;
            want_key = text[i] == '{';
            break;
        case '}':
        case ']': depth--; break;
        case ',':
            if (top && !top->is_object) top->index++;
            want_key = top && top->is_object;
            break;
        case '"': {
            size_t start = i + 1;
            long nul = scan_string(text, len, &i);
            int is_key = want_key && top && top->is_object;
            if (is_key) {
                top->key = text + start;
                top->key_len = i - start;
                want_key = 0;
            }
            if (nul >= 0) {
                char path[256];
                json_path(st, depth, path, sizeof path);
                return sx_err_set(err, SX_EINVAL,
                                  "%s%s%s%s holds the character U+0000 (byte %ld), which semdex refuses rather than "
                                  "cut the text there; remove it", is_key ? "a key in " : "",
                                  path[0] ? "'" : "the string", path, path[0] ? "'" : "", nul);
            }
            break;
        }
        default: break;
        }
    }
    return 0;
}

int sx_json_parse(const char *text, size_t len, cJSON **out, sx_err *err) {
    const char *end = NULL;
    *out = NULL;
    if (!text) text = "", len = 0;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return sx_err_set(err, SX_ECORRUPT, "not valid JSON (near byte %zu)", at);
    }
    size_t at = end && end >= text ? (size_t)(end - text) : len;
    while (at < len && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) at++;
    if (at < len) {
        cJSON_Delete(root);
        return sx_err_set(err, SX_ECORRUPT, "unexpected data after the JSON value at byte %zu", at);
    }
    if (memchr(text, '\0', len) || memmem(text, len, "\\u0000", 6)) {
        int rc = find_nul(text, len, err);
        if (rc < 0) {
            cJSON_Delete(root);
            return rc;
        }
    }
    *out = root;
    return 0;
}

/* Decodes the code point at s (valid UTF-8) into *cp; returns its length. */
static size_t utf8_next(const unsigned char *s, unsigned *cp) {
    if (s[0] < 0x80) return *cp = s[0], 1;
    if (s[0] < 0xE0) return *cp = (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu), 2;
    if (s[0] < 0xF0) return *cp = (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu), 3;
    return *cp = (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu), 4;
}

/* ECMA-262 WhiteSpace and LineTerminator: what \s matches. */
static int ecma_space(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

int sx_json_blank(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned cp;
        size_t n = utf8_next(p, &cp);
        if (!ecma_space(cp)) return 0;
        for (size_t k = 0; k < n && *p; k++) p++;
    }
    return 1;
}

size_t sx_json_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}
