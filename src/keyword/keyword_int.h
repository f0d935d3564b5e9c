/*
 * keyword_int.h - the structures of the keyword index, shared by keyword.c
 * (building, searching, compaction) and keyword_io.c (the byte format).
 */
#ifndef SX_KEYWORD_INT_H
#define SX_KEYWORD_INT_H

#include "keyword.h"

#define KW_NONE UINT32_MAX /* no term, no paper; the slot of a removed paper */

/* A paper, by its number (its position in docs). */
typedef struct kw_doc {
    uint32_t slot;                 /* KW_NONE once removed */
    uint32_t len[SX_KW_NFIELDS];   /* terms per field */
} kw_doc;

/* A term and its postings: one entry per paper holding it, papers in
 * increasing number, each entry
 *
 *     varint((gap << 4) | flags), then when flags & 8 one varint tf per
 *     field present
 *
 * gap = number - previous number - 1 (the first: the number), flags bits
 * 0..2 the fields the term occurs in, bit 3 set when some frequency is
 * above 1 (else every present field has tf 1). Varints: 7 bits per byte,
 * least significant first, high bit = more. */
typedef struct kw_term {
    uint32_t str;    /* offset of the term's bytes in strs */
    uint32_t hash;
    uint32_t last;   /* number of the last entry, KW_NONE when none */
    uint32_t plen, pcap;
    uint8_t len;
    union {
        uint8_t *ptr;              /* pcap > KW_INLINE: on the heap */
        uint8_t inl[sizeof(uint8_t *)]; /* else here (most terms are rare) */
    } p;
} kw_term; /* 32 bytes on 64-bit hosts */

/* Posting bytes kept inside the term (a pointer's worth). */
#define KW_INLINE ((uint32_t)sizeof(uint8_t *))

/* The postings of t. */
static inline uint8_t *kw_post(kw_term *t) { return t->pcap > KW_INLINE ? t->p.ptr : t->p.inl; }
static inline const uint8_t *kw_post_c(const kw_term *t) {
    return t->pcap > KW_INLINE ? t->p.ptr : t->p.inl;
}

/* Sets t's postings to a copy of len bytes at p (t's own are not freed).
 * 0 or SX_ENOMEM. */
int kw_post_set(kw_term *t, const uint8_t *p, uint32_t len);

struct sx_kw_index {
    sx_kw_params p;
    kw_doc *docs;
    uint32_t n_docs, cap_docs; /* numbers used (removed included), room */
    uint32_t *slot_map;        /* slot -> number + 1, 0 = none */
    uint32_t slot_cap;
    size_t live, removed;
    uint64_t sum_len[SX_KW_NFIELDS]; /* over live papers */
    kw_term *terms;
    uint32_t n_terms, cap_terms;
    uint32_t *table;           /* open addressing: term index or KW_NONE */
    uint32_t table_cap;        /* a power of two */
    char *strs;
    size_t strs_len, strs_cap;
    size_t postings;           /* entries over all terms */
    size_t bytes_postings;     /* allocated postings bytes */
};

/* FNV-1a of a term. */
uint32_t kw_hash(const char *z, size_t n);

/* The term's index, or KW_NONE. */
uint32_t kw_find(const sx_kw_index *ix, const char *z, size_t n, uint32_t h);

/* Adds a term without postings (it must be absent); returns its index, or
 * KW_NONE when out of memory. */
uint32_t kw_term_new(sx_kw_index *ix, const char *z, size_t n, uint32_t h);

/* A decoded entry. */
typedef struct kw_entry {
    uint32_t num;
    uint32_t tf[SX_KW_NFIELDS];
} kw_entry;

/* Decodes the entry at *pos of post[0..len) after number prev (KW_NONE
 * before the first) into e (OUT). Returns 0, or -1 for bytes that are not a
 * valid entry (a truncated or overlong varint, no field, a zero frequency,
 * a number beyond 32 bits). */
int kw_entry_next(const uint8_t *post, size_t len, size_t *pos, uint32_t prev, kw_entry *e);

/* Encodes e after number prev into out (room for KW_ENTRY_MAX); returns the
 * length. */
#define KW_ENTRY_MAX 32
size_t kw_entry_put(uint8_t *out, uint32_t prev, const kw_entry *e);

/* Creates an empty index without checking p. */
int kw_index_new(const sx_kw_params *p, sx_kw_index **out);

/* Checks parameters; 0 or SX_EINVAL with a message. */
int kw_params_check(const sx_kw_params *p, sx_err *err);

/* Grows the slot map to hold slot. 0 or SX_ENOMEM. */
int kw_slot_reserve(sx_kw_index *ix, uint32_t slot);

#endif /* SX_KEYWORD_INT_H */
