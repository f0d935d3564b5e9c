/*
 * keyword_io.c - the byte format of the keyword index.
 *
 * Three sections in the framing of index/section.c (64-byte aligned,
 * CRC-32C per section), so the index can travel inside a shard snapshot or
 * a Redis RDB value next to the shard's own sections, or alone in a buffer:
 *
 *     KWHD  u32 format version (1), f32 k1, f32 b[3], f32 weight[3],
 *           u32 paper numbers, u32 live papers, u32 terms,
 *           u64 sum of field lengths over live papers [3]
 *     KWDC  per paper number: u32 slot (0xFFFFFFFF: removed), u32 len[3]
 *     KWPO  per term: u8 length, the term's bytes, u32 entries,
 *           u32 postings bytes, the postings (keyword_int.h)
 *
 * all little-endian. The postings are the in-memory lists byte for byte,
 * so saving is a copy; terms without entries are left out.
 *
 * Loading trusts nothing: besides the framing's checks it decodes every
 * posting list, so that a search over a loaded index can never read out of
 * bounds, and it checks the invariants a search relies on (see
 * sx_kw_index_load in keyword.h). Allocations grow only with bytes that
 * are actually present: counts in the header are compared with section
 * lengths before anything is sized from them, and the slot map is sized by
 * the largest slot seen, which the caller bounds.
 */
#include "keyword_int.h"

#include "../text/text.h"

#include <math.h>
#include <string.h>

#define FORMAT_VERSION 1
#define TAG_HEAD SX_TAG('K', 'W', 'H', 'D')
#define TAG_DOCS SX_TAG('K', 'W', 'D', 'C')
#define TAG_POST SX_TAG('K', 'W', 'P', 'O')
#define HEAD_LEN (4 + 4 + 12 + 12 + 4 + 4 + 4 + 24)

/* The entries of t's list (the index does not keep the count). */
static uint32_t count_entries(const kw_term *t) {
    size_t pos = 0;
    uint32_t n = 0, prev = KW_NONE;
    kw_entry e;
    while (pos < t->plen && kw_entry_next(kw_post_c(t), t->plen, &pos, prev, &e) == 0) {
        prev = e.num;
        n++;
    }
    return n;
}

int sx_kw_index_save(const sx_kw_index *ix, sx_sink *out, sx_err *err) {
    uint32_t n_terms = 0;
    uint64_t post_len = 0;
    for (uint32_t i = 0; i < ix->n_terms; i++) {
        const kw_term *t = &ix->terms[i];
        if (t->last == KW_NONE) continue;
        n_terms++;
        post_len += 1 + t->len + 8 + (uint64_t)t->plen;
    }
    sx_sink_begin(out, TAG_HEAD, HEAD_LEN);
    sx_sink_u32(out, FORMAT_VERSION);
    sx_sink_f32(out, ix->p.k1);
    for (int f = 0; f < SX_KW_NFIELDS; f++) sx_sink_f32(out, ix->p.b[f]);
    for (int f = 0; f < SX_KW_NFIELDS; f++) sx_sink_f32(out, ix->p.weight[f]);
    sx_sink_u32(out, ix->n_docs);
    sx_sink_u32(out, (uint32_t)ix->live);
    sx_sink_u32(out, n_terms);
    for (int f = 0; f < SX_KW_NFIELDS; f++) sx_sink_u64(out, ix->sum_len[f]);
    sx_sink_end(out);
    sx_sink_begin(out, TAG_DOCS, (uint64_t)ix->n_docs * 16);
    for (uint32_t i = 0; i < ix->n_docs && !out->error; i++) {
        uint8_t b[16];
        sx_le32_put(b, ix->docs[i].slot);
        for (int f = 0; f < SX_KW_NFIELDS; f++) sx_le32_put(b + 4 + 4 * f, ix->docs[i].len[f]);
        sx_sink_write(out, b, 16);
    }
    sx_sink_end(out);
    sx_sink_begin(out, TAG_POST, post_len);
    for (uint32_t i = 0; i < ix->n_terms && !out->error; i++) {
        const kw_term *t = &ix->terms[i];
        if (t->last == KW_NONE) continue;
        sx_sink_write(out, &t->len, 1);
        sx_sink_write(out, ix->strs + t->str, t->len);
        sx_sink_u32(out, count_entries(t));
        sx_sink_u32(out, t->plen);
        sx_sink_write(out, kw_post_c(t), t->plen);
    }
    sx_sink_end(out);
    if (out->error)
        return sx_err_set(err, out->error, "keyword index: write failed at byte %llu (%s)",
                          (unsigned long long)out->offset, sx_strerror(out->error));
    return 0;
}

/* ---- load ---- */

static int bad(sx_err *err, const char *sec, uint64_t at, const char *what) {
    return sx_err_set(err, SX_ECORRUPT, "keyword index: section '%s' byte %llu: %s", sec,
                      (unsigned long long)at, what);
}

typedef struct head {
    sx_kw_params p;
    uint32_t n_docs, live, n_terms;
    uint64_t sum[SX_KW_NFIELDS];
} head;

static int load_head(sx_source *src, head *h, sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_HEAD, 0, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "keyword index");
    uint64_t pos = 0;
    uint32_t version = 0;
    if (sec.len != HEAD_LEN) rc = bad(err, "KWHD", 0, "wrong size");
    if (rc == 0) {
        sx_section_u32(&sec, &pos, &version);
        sx_section_f32(&sec, &pos, &h->p.k1);
        for (int f = 0; f < SX_KW_NFIELDS; f++) sx_section_f32(&sec, &pos, &h->p.b[f]);
        for (int f = 0; f < SX_KW_NFIELDS; f++) sx_section_f32(&sec, &pos, &h->p.weight[f]);
        sx_section_u32(&sec, &pos, &h->n_docs);
        sx_section_u32(&sec, &pos, &h->live);
        sx_section_u32(&sec, &pos, &h->n_terms);
        for (int f = 0; f < SX_KW_NFIELDS; f++) sx_section_u64(&sec, &pos, &h->sum[f]);
    }
    sx_section_release(&sec);
    if (rc < 0) return rc;
    if (version != FORMAT_VERSION)
        return sx_err_set(err, SX_EUNSUPPORTED, "keyword index: format version %u, this build reads %d",
                          version, FORMAT_VERSION);
    if (kw_params_check(&h->p, NULL) < 0) return bad(err, "KWHD", 4, "parameters out of range");
    if (h->live > h->n_docs || h->n_docs >= KW_NONE) return bad(err, "KWHD", 36, "paper counts");
    return 0;
}

static int load_docs(sx_source *src, const head *h, uint32_t max_slots, sx_kw_index *ix, sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_DOCS, 0, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "keyword index");
    if (sec.len != (uint64_t)h->n_docs * 16) {
        sx_section_release(&sec);
        return bad(err, "KWDC", 0, "length does not match the paper count");
    }
    ix->docs = sx_index_malloc((h->n_docs ? h->n_docs : 1) * sizeof *ix->docs);
    if (!ix->docs) rc = sx_err_set(err, SX_ENOMEM, "keyword index: out of memory loading");
    ix->cap_docs = ix->docs ? (h->n_docs ? h->n_docs : 1) : 0;
    uint64_t sum[SX_KW_NFIELDS] = {0};
    for (uint32_t i = 0; i < h->n_docs && rc == 0; i++) {
        const uint8_t *b = sec.data + 16 * (size_t)i;
        kw_doc *d = &ix->docs[i];
        d->slot = sx_le32_get(b);
        for (int f = 0; f < SX_KW_NFIELDS; f++) d->len[f] = sx_le32_get(b + 4 + 4 * f);
        ix->n_docs = i + 1;
        if (d->slot == KW_NONE) {
            ix->removed++;
            continue;
        }
        if (d->slot >= max_slots || d->slot >= SX_KW_MAX_SLOTS) {
            rc = bad(err, "KWDC", 16 * (uint64_t)i, "slot out of range");
        } else if ((rc = kw_slot_reserve(ix, d->slot)) < 0) {
            rc = sx_err_set(err, SX_ENOMEM, "keyword index: out of memory loading");
        } else if (ix->slot_map[d->slot]) {
            rc = bad(err, "KWDC", 16 * (uint64_t)i, "slot used twice");
        } else {
            ix->slot_map[d->slot] = i + 1;
            ix->live++;
            for (int f = 0; f < SX_KW_NFIELDS; f++) sum[f] += d->len[f];
        }
    }
    sx_section_release(&sec);
    if (rc < 0) return rc;
    if (ix->live != h->live) return bad(err, "KWDC", 0, "live papers do not match the header");
    for (int f = 0; f < SX_KW_NFIELDS; f++) {
        if (sum[f] != h->sum[f]) return bad(err, "KWDC", 0, "field lengths do not sum to the header's");
        ix->sum_len[f] = sum[f];
    }
    return 0;
}

/* Checks the postings of one term: every entry decodes, numbers increase
 * and name papers, frequencies fit the papers' field lengths. Returns the
 * last number through *last (OUT), or -1. */
static int check_postings(const sx_kw_index *ix, const uint8_t *p, uint32_t len, uint32_t n,
                          uint32_t *last) {
    size_t pos = 0;
    uint32_t prev = KW_NONE;
    kw_entry e;
    for (uint32_t i = 0; i < n; i++) {
        if (pos >= len || kw_entry_next(p, len, &pos, prev, &e) < 0) return -1;
        if (e.num >= ix->n_docs) return -1;
        for (int f = 0; f < SX_KW_NFIELDS; f++)
            if (e.tf[f] > ix->docs[e.num].len[f]) return -1;
        prev = e.num;
    }
    if (pos != len) return -1;
    *last = prev;
    return 0;
}

static int load_terms(sx_source *src, const head *h, sx_kw_index *ix, sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_POST, 0, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "keyword index");
    uint64_t pos = 0;
    for (uint32_t i = 0; i < h->n_terms && rc == 0; i++) {
        uint64_t at = pos;
        uint32_t n, plen, last;
        if (pos >= sec.len) {
            rc = bad(err, "KWPO", at, "fewer terms than the header says");
            break;
        }
        uint8_t len = sec.data[pos++];
        const char *z = (const char *)sec.data + pos;
        if (len == 0 || len > SX_KW_TERM_MAX || sec.len - pos < len) {
            rc = bad(err, "KWPO", at, "bad term length");
            break;
        }
        pos += len;
        if (memchr(z, 0, len) || sx_utf8_check(z, len, NULL) < 0) {
            rc = bad(err, "KWPO", at, "term is not UTF-8 text");
            break;
        }
        if (sx_section_u32(&sec, &pos, &n) < 0 || sx_section_u32(&sec, &pos, &plen) < 0 ||
            n == 0 || plen > sec.len - pos || n > plen) {
            rc = bad(err, "KWPO", at, "bad postings length");
            break;
        }
        const uint8_t *p = sec.data + pos;
        pos += plen;
        if (check_postings(ix, p, plen, n, &last) < 0) {
            rc = bad(err, "KWPO", at, "corrupt posting list");
            break;
        }
        uint32_t hh = kw_hash(z, len);
        if (kw_find(ix, z, len, hh) != KW_NONE) {
            rc = bad(err, "KWPO", at, "term listed twice");
            break;
        }
        uint32_t t = kw_term_new(ix, z, len, hh);
        if (t == KW_NONE || kw_post_set(&ix->terms[t], p, plen) < 0) {
            rc = sx_err_set(err, SX_ENOMEM, "keyword index: out of memory loading");
            break;
        }
        ix->terms[t].last = last;
        ix->postings += n;
        ix->bytes_postings += plen > KW_INLINE ? plen : 0;
    }
    if (rc == 0 && pos != sec.len) rc = bad(err, "KWPO", pos, "extra bytes after the last term");
    sx_section_release(&sec);
    return rc;
}

int sx_kw_index_load(sx_source *src, uint32_t max_slots, sx_kw_index **out, sx_err *err) {
    *out = NULL;
    head h;
    memset(&h, 0, sizeof h);
    int rc = load_head(src, &h, err);
    if (rc < 0) return rc;
    sx_kw_index *ix;
    if (kw_index_new(&h.p, &ix) < 0) return sx_err_set(err, SX_ENOMEM, "keyword index: out of memory loading");
    rc = load_docs(src, &h, max_slots, ix, err);
    if (rc == 0) rc = load_terms(src, &h, ix, err);
    if (rc < 0) {
        sx_kw_index_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

/* ---- buffers ---- */

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static int mem_write(void *ctx, const void *buf, size_t len) {
    membuf *m = ctx;
    if (len > m->cap - m->len) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap - m->len < len) {
            if (cap > SIZE_MAX / 2) return SX_ENOMEM;
            cap *= 2;
        }
        uint8_t *p = sx_index_realloc(m->p, cap);
        if (!p) return SX_ENOMEM;
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

int sx_kw_index_save_buf(const sx_kw_index *ix, void **out, size_t *len, sx_err *err) {
    membuf m = {0};
    sx_sink sink = {mem_write, &m, 0, 0, 0};
    *out = NULL;
    *len = 0;
    int rc = sx_kw_index_save(ix, &sink, err);
    if (rc < 0) {
        sx_index_free_mem(m.p);
        return rc;
    }
    *out = m.p;
    *len = m.len;
    return 0;
}

int sx_kw_index_load_buf(const void *buf, size_t len, uint32_t max_slots, sx_kw_index **out,
                         sx_err *err) {
    sx_source src = {NULL, NULL, buf, len, 0, 1, 0};
    return sx_kw_index_load(&src, max_slots, out, err);
}
