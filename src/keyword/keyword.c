/*
 * keyword.c - the inverted index of a shard, ranked by BM25F.
 *
 * What it holds. For every term (see analyze.c for how text becomes terms)
 * a posting list: the papers holding it and how often in each of the three
 * fields, title, abstract and authors. For every paper its three field
 * lengths in terms and the caller's slot. Nothing else: the text stays in
 * the shard's records, and a hit is a slot the shard maps to its record.
 *
 * Paper numbers. Postings name papers by an internal number, not by slot:
 * numbers are handed out in increasing order, so that a posting list is an
 * append-only, sorted list compressed as gaps in varints (keyword_int.h has
 * the entry layout; a typical entry is one or two bytes, against 16 for an
 * uncompressed (number, 3 x tf) record). The shard reuses slots; the index
 * does not reuse numbers, so a slot that comes back gets a new number and
 * the postings of its previous paper cannot be mistaken for its own. A
 * slot map (4 bytes per slot) leads from slot to number.
 *
 * Removing. A remove only marks the paper's number dead and takes its
 * lengths out of the collection statistics; its entries stay in the lists
 * and every reader skips them. Nothing per term has to change, so the index
 * keeps no forward list of each paper's terms (which would double its
 * size). Document frequencies are not stored at all: a search decodes each
 * query term's list once to count its live entries (the exact df) and once
 * to score. The statistics a score uses - N, the average field lengths,
 * each df - are therefore always those of the live papers only, and a score
 * does not depend on the history: an index built by adds and removes ranks
 * exactly as one built afresh from the papers that remain (a unit test
 * checks it). Once dead numbers reach a quarter of all numbers (and 1024),
 * the next remove compacts: every list is rewritten without them, papers
 * are renumbered densely in the same order, unused terms are dropped.
 * sx_kw_index_maintain does the same on demand.
 *
 * Scoring: BM25F (Robertson, Zaragoza & Taylor 2004) with per-field length
 * normalisation. For a paper d and query term t,
 *
 *     tf'  = sum_f  w_f * tf(t, d, f) / (1 - b_f + b_f * len(d, f) / avglen_f)
 *     idf  = ln(1 + (N - df + 0.5) / (df + 0.5))
 *     score(d) = sum over distinct query terms t of idf * tf' / (k1 + tf')
 *
 * with k1 = 1.2, b = 0.75 in every field, and weights title 2, abstract 1,
 * authors 1 (sx_kw_params_default), the usual values of Lucene's BM25 and
 * of BM25F's title boost. The idf is Lucene's, never negative, so a term
 * in most papers still counts a little. A query term repeated counts once.
 * Scores are computed term at a time into a float per paper number (4
 * bytes x numbers, calloc'd per search, so pages no query touches stay
 * untouched); the top k come from a heap, and the caller's filter is asked
 * only about papers that would enter it.
 *
 * Threads. No lock inside: the shard already serialises its writers and
 * lets its readers run together, and the index follows that contract (one
 * writer, or any number of readers, keyword.h). A search allocates its own
 * scratch memory and writes nothing shared.
 *
 * Rejected: document-at-a-time scoring with skip lists or WAND (worth it at
 * millions of papers per shard; a shard holds a few hundred thousand, where
 * scanning two or three lists is a few milliseconds); storing the df per
 * term (a remove would then need the paper's terms, that is a forward index
 * or the caller handing the text back and trusting it to be the same);
 * block-based bit packing (PForDelta): varints are within a few tens of
 * percent of it here and need no block bookkeeping for appends.
 */
#include "keyword_int.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_K 10000
#define COMPACT_MIN 1024

sx_kw_params sx_kw_params_default(void) {
    return (sx_kw_params){1.2f, {0.75f, 0.75f, 0.75f}, {2.0f, 1.0f, 1.0f}};
}

int kw_params_check(const sx_kw_params *p, sx_err *err) {
    if (!p) return sx_err_set(err, SX_EINVAL, "keyword index: no parameters");
    if (!(p->k1 > 0 && p->k1 <= 10)) return sx_err_set(err, SX_EINVAL, "keyword index: k1 must be in (0, 10]");
    float wsum = 0;
    for (int f = 0; f < SX_KW_NFIELDS; f++) {
        if (!(p->b[f] >= 0 && p->b[f] <= 1))
            return sx_err_set(err, SX_EINVAL, "keyword index: b of field %d must be in [0, 1]", f);
        if (!(p->weight[f] >= 0 && p->weight[f] <= 100))
            return sx_err_set(err, SX_EINVAL, "keyword index: weight of field %d must be in [0, 100]", f);
        wsum += p->weight[f];
    }
    if (!(wsum > 0)) return sx_err_set(err, SX_EINVAL, "keyword index: every field weight is 0");
    return 0;
}

int kw_index_new(const sx_kw_params *p, sx_kw_index **out) {
    sx_kw_index *ix = sx_index_calloc(1, sizeof *ix);
    if (!ix) return SX_ENOMEM;
    ix->p = *p;
    ix->table_cap = 1024;
    ix->table = sx_index_malloc(ix->table_cap * sizeof *ix->table);
    if (!ix->table) {
        sx_index_free_mem(ix);
        return SX_ENOMEM;
    }
    memset(ix->table, 0xff, ix->table_cap * sizeof *ix->table);
    *out = ix;
    return 0;
}

int sx_kw_index_create(const sx_kw_params *p, sx_kw_index **out, sx_err *err) {
    *out = NULL;
    int rc = kw_params_check(p, err);
    if (rc < 0) return rc;
    rc = kw_index_new(p, out);
    return rc < 0 ? sx_err_set(err, rc, "keyword index: out of memory") : 0;
}

/* Frees n terms' postings and the array. */
static void free_terms(kw_term *terms, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (terms[i].pcap > KW_INLINE) sx_index_free_mem(terms[i].p.ptr);
    sx_index_free_mem(terms);
}

int kw_post_set(kw_term *t, const uint8_t *p, uint32_t len) {
    if (len <= KW_INLINE) {
        memcpy(t->p.inl, p, len);
        t->pcap = KW_INLINE;
    } else {
        uint8_t *copy = sx_index_malloc(len);
        if (!copy) return SX_ENOMEM;
        memcpy(copy, p, len);
        t->p.ptr = copy;
        t->pcap = len;
    }
    t->plen = len;
    return 0;
}

void sx_kw_index_free(sx_kw_index *ix) {
    if (!ix) return;
    free_terms(ix->terms, ix->n_terms);
    sx_index_free_mem(ix->table);
    sx_index_free_mem(ix->strs);
    sx_index_free_mem(ix->docs);
    sx_index_free_mem(ix->slot_map);
    sx_index_free_mem(ix);
}

sx_kw_params sx_kw_index_params(const sx_kw_index *ix) { return ix->p; }

/* ---- the term dictionary ---- */

uint32_t kw_hash(const char *z, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)z[i]) * 16777619u;
    return h;
}

uint32_t kw_find(const sx_kw_index *ix, const char *z, size_t n, uint32_t h) {
    uint32_t mask = ix->table_cap - 1;
    for (uint32_t at = h & mask;; at = (at + 1) & mask) {
        uint32_t t = ix->table[at];
        if (t == KW_NONE) return KW_NONE;
        const kw_term *e = &ix->terms[t];
        if (e->hash == h && e->len == n && memcmp(ix->strs + e->str, z, n) == 0) return t;
    }
}

static void table_place(uint32_t *table, uint32_t cap, uint32_t h, uint32_t t) {
    uint32_t at = h & (cap - 1);
    while (table[at] != KW_NONE) at = (at + 1) & (cap - 1);
    table[at] = t;
}

/* Keeps the table at most half full for one more term. */
static int table_reserve(sx_kw_index *ix) {
    if ((size_t)(ix->n_terms + 1) * 2 <= ix->table_cap) return 0;
    if (ix->table_cap >= (1u << 31)) return SX_ENOMEM;
    uint32_t cap = ix->table_cap * 2;
    uint32_t *t = sx_index_malloc((size_t)cap * sizeof *t);
    if (!t) return SX_ENOMEM;
    memset(t, 0xff, (size_t)cap * sizeof *t);
    for (uint32_t i = 0; i < ix->n_terms; i++) table_place(t, cap, ix->terms[i].hash, i);
    sx_index_free_mem(ix->table);
    ix->table = t;
    ix->table_cap = cap;
    return 0;
}

uint32_t kw_term_new(sx_kw_index *ix, const char *z, size_t n, uint32_t h) {
    if (ix->n_terms >= KW_NONE - 1 || table_reserve(ix) < 0) return KW_NONE;
    if (ix->n_terms == ix->cap_terms) {
        uint32_t cap = ix->cap_terms ? ix->cap_terms + ix->cap_terms / 2 : 1024;
        kw_term *t = sx_index_realloc(ix->terms, (size_t)cap * sizeof *t);
        if (!t) return KW_NONE;
        ix->terms = t;
        ix->cap_terms = cap;
    }
    if (ix->strs_len + n > ix->strs_cap) {
        size_t cap = ix->strs_cap ? ix->strs_cap * 2 : 16384;
        while (cap < ix->strs_len + n) cap *= 2;
        if (cap > UINT32_MAX) return KW_NONE;
        char *s = sx_index_realloc(ix->strs, cap);
        if (!s) return KW_NONE;
        ix->strs = s;
        ix->strs_cap = cap;
    }
    memcpy(ix->strs + ix->strs_len, z, n);
    uint32_t t = ix->n_terms++;
    ix->terms[t] = (kw_term){.str = (uint32_t)ix->strs_len, .hash = h, .last = KW_NONE,
                             .pcap = KW_INLINE, .len = (uint8_t)n};
    ix->strs_len += n;
    table_place(ix->table, ix->table_cap, h, t);
    return t;
}

/* ---- entries ---- */

static size_t put_varint(uint8_t *out, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint of at most max_bits at *pos; -1 when truncated or longer. */
static int get_varint(const uint8_t *p, size_t len, size_t *pos, int max_bits, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < max_bits; shift += 7) {
        if (*pos >= len) return -1;
        uint8_t b = p[(*pos)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (max_bits < 64 && x >> max_bits) return -1;
            *v = x;
            return 0;
        }
    }
    return -1;
}

size_t kw_entry_put(uint8_t *out, uint32_t prev, const kw_entry *e) {
    uint64_t gap = prev == KW_NONE ? e->num : (uint64_t)e->num - prev - 1;
    unsigned flags = 0;
    for (int f = 0; f < SX_KW_NFIELDS; f++) {
        if (e->tf[f]) flags |= 1u << f;
        if (e->tf[f] > 1) flags |= 8;
    }
    size_t n = put_varint(out, gap << 4 | flags);
    if (flags & 8)
        for (int f = 0; f < SX_KW_NFIELDS; f++)
            if (e->tf[f]) n += put_varint(out + n, e->tf[f]);
    return n;
}

int kw_entry_next(const uint8_t *post, size_t len, size_t *pos, uint32_t prev, kw_entry *e) {
    uint64_t h, num;
    if (get_varint(post, len, pos, 36, &h) < 0) return -1;
    unsigned flags = (unsigned)(h & 15);
    num = (h >> 4) + (prev == KW_NONE ? 0 : (uint64_t)prev + 1);
    if (num >= KW_NONE || !(flags & 7)) return -1;
    e->num = (uint32_t)num;
    for (int f = 0; f < SX_KW_NFIELDS; f++) {
        uint64_t tf = (flags >> f) & 1;
        if (tf && (flags & 8) && (get_varint(post, len, pos, 32, &tf) < 0 || tf == 0)) return -1;
        e->tf[f] = (uint32_t)tf;
    }
    return 0;
}

/* Makes room for need more bytes in t's list: exactly, while the list is
 * short, then by half again, so long lists cost amortised O(1) per entry
 * and at most a third of slack. */
static int post_reserve(sx_kw_index *ix, kw_term *t, size_t need) {
    if (t->pcap - t->plen >= need) return 0;
    size_t cap = (size_t)t->plen + need;
    if (cap < (size_t)t->pcap + t->pcap / 2) cap = (size_t)t->pcap + t->pcap / 2;
    if (cap > UINT32_MAX) return SX_EFULL;
    int heap = t->pcap > KW_INLINE;
    uint8_t *p = heap ? sx_index_realloc(t->p.ptr, cap) : sx_index_malloc(cap);
    if (!p) return SX_ENOMEM;
    if (!heap) memcpy(p, t->p.inl, t->plen);
    ix->bytes_postings += cap - (heap ? t->pcap : 0);
    t->p.ptr = p;
    t->pcap = (uint32_t)cap;
    return 0;
}

/* ---- papers ---- */

int kw_slot_reserve(sx_kw_index *ix, uint32_t slot) {
    if (slot < ix->slot_cap) return 0;
    size_t cap = ix->slot_cap ? ix->slot_cap : 1024;
    while (cap <= slot) cap *= 2;
    if (cap > SX_KW_MAX_SLOTS) cap = SX_KW_MAX_SLOTS;
    uint32_t *m = sx_index_realloc(ix->slot_map, cap * sizeof *m);
    if (!m) return SX_ENOMEM;
    memset(m + ix->slot_cap, 0, (cap - ix->slot_cap) * sizeof *m);
    ix->slot_map = m;
    ix->slot_cap = (uint32_t)cap;
    return 0;
}

static int docs_reserve(sx_kw_index *ix) {
    if (ix->n_docs < ix->cap_docs) return 0;
    if (ix->n_docs >= KW_NONE - 1) return SX_EFULL;
    size_t cap = ix->cap_docs ? (size_t)ix->cap_docs * 2 : 1024;
    if (cap >= KW_NONE) cap = KW_NONE - 1;
    kw_doc *d = sx_index_realloc(ix->docs, cap * sizeof *d);
    if (!d) return SX_ENOMEM;
    ix->docs = d;
    ix->cap_docs = (uint32_t)cap;
    return 0;
}

int sx_kw_index_contains(const sx_kw_index *ix, uint32_t slot) {
    return slot < ix->slot_cap && ix->slot_map[slot] != 0;
}

/* Marks slot's paper removed (it must be present). */
static void unlink_slot(sx_kw_index *ix, uint32_t slot) {
    kw_doc *d = &ix->docs[ix->slot_map[slot] - 1];
    for (int f = 0; f < SX_KW_NFIELDS; f++) ix->sum_len[f] -= d->len[f];
    d->slot = KW_NONE;
    ix->slot_map[slot] = 0;
    ix->live--;
    ix->removed++;
}

/* ---- add ---- */

/* One term occurrence while a paper is analysed. */
typedef struct occ {
    uint32_t off; /* of the term in the scratch bytes */
    uint8_t len, field;
} occ;

typedef struct collect {
    sx_buf bytes;
    occ *a;
    size_t n, cap;
    int field;
    uint32_t len[SX_KW_NFIELDS];
    int oom;
} collect;

static int collect_term(void *ctx, const char *term, size_t len, size_t start, size_t end) {
    (void)start;
    (void)end;
    collect *c = ctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        occ *a = realloc(c->a, cap * sizeof *a);
        if (!a) return c->oom = SX_ENOMEM;
        c->a = a;
        c->cap = cap;
    }
    if (c->bytes.len > UINT32_MAX - 64) return c->oom = SX_EFULL;
    c->a[c->n++] = (occ){(uint32_t)c->bytes.len, (uint8_t)len, (uint8_t)c->field};
    sx_buf_append(&c->bytes, term, len);
    if (c->bytes.oom) return c->oom = SX_ENOMEM;
    if (c->len[c->field] < UINT32_MAX) c->len[c->field]++;
    return 0;
}

static int occ_cmp_base(const char *base, const occ *x, const occ *y) {
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(base + x->off, base + y->off, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (int)x->field - (int)y->field;
}

/* A merge sort of the occurrences by (term, field): qsort would need the
 * bytes through a global, which two threads adding to two shards at once
 * would share. */
static void occ_sort(const char *base, occ *a, occ *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    occ_sort(base, a, tmp, h);
    occ_sort(base, a + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = occ_cmp_base(base, &a[j], &a[i]) < 0 ? a[j++] : a[i++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

int sx_kw_index_add(sx_kw_index *ix, uint32_t slot, const char *title, const char *abstract,
                    const char *authors, sx_err *err) {
    if (slot >= SX_KW_MAX_SLOTS) return sx_err_set(err, SX_EINVAL, "keyword index: slot %u out of range", slot);
    const char *fields[SX_KW_NFIELDS] = {title, abstract, authors};
    static const int flags[SX_KW_NFIELDS] = {0, 0, SX_KW_KEEP_STOP | SX_KW_SKIP_SHORT};
    collect c = {0};
    int rc = 0;
    for (int f = 0; f < SX_KW_NFIELDS && rc == 0; f++) {
        c.field = f;
        if (fields[f]) rc = sx_kw_analyze(fields[f], strlen(fields[f]), flags[f], collect_term, &c);
    }
    occ *tmp = rc == 0 ? malloc((c.n ? c.n : 1) * sizeof *tmp) : NULL;
    if (rc == 0 && !tmp) rc = SX_ENOMEM;
    if (rc == 0) occ_sort(c.bytes.data, c.a, tmp, c.n);
    /* group into distinct terms; find or create each, and make room for its
     * entry, so that nothing below can fail */
    size_t n_distinct = 0;
    uint32_t *tid = rc == 0 ? malloc((c.n ? c.n : 1) * sizeof *tid) : NULL;
    kw_entry *ent = rc == 0 ? malloc((c.n ? c.n : 1) * sizeof *ent) : NULL;
    if (rc == 0 && (!ent || !tid)) rc = SX_ENOMEM;
    if (rc == 0) rc = kw_slot_reserve(ix, slot);
    if (rc == 0) rc = docs_reserve(ix);
    for (size_t i = 0; i < c.n && rc == 0;) {
        const char *z = c.bytes.data + c.a[i].off;
        size_t len = c.a[i].len;
        kw_entry e = {0};
        size_t j = i;
        while (j < c.n && c.a[j].len == len && memcmp(c.bytes.data + c.a[j].off, z, len) == 0) {
            if (e.tf[c.a[j].field] < UINT32_MAX) e.tf[c.a[j].field]++;
            j++;
        }
        uint32_t h = kw_hash(z, len), t = kw_find(ix, z, len, h);
        if (t == KW_NONE) t = kw_term_new(ix, z, len, h);
        if (t == KW_NONE) rc = SX_ENOMEM;
        e.num = ix->n_docs; /* the number the paper will get */
        uint8_t enc[KW_ENTRY_MAX];
        if (rc == 0) rc = post_reserve(ix, &ix->terms[t], kw_entry_put(enc, ix->terms[t].last, &e));
        tid[n_distinct] = t;
        ent[n_distinct++] = e;
        i = j;
    }
    if (rc == 0) {
        if (sx_kw_index_contains(ix, slot)) unlink_slot(ix, slot);
        uint32_t num = ix->n_docs++;
        kw_doc *d = &ix->docs[num];
        d->slot = slot;
        for (int f = 0; f < SX_KW_NFIELDS; f++) {
            d->len[f] = c.len[f];
            ix->sum_len[f] += c.len[f];
        }
        ix->slot_map[slot] = num + 1;
        ix->live++;
        for (size_t i = 0; i < n_distinct; i++) {
            kw_term *t = &ix->terms[tid[i]];
            ent[i].num = num;
            t->plen += (uint32_t)kw_entry_put(kw_post(t) + t->plen, t->last, &ent[i]);
            t->last = num;
        }
        ix->postings += n_distinct;
    }
    free(ent);
    free(tid);
    free(tmp);
    free(c.a);
    sx_buf_free(&c.bytes);
    if (rc == SX_EFULL) return sx_err_set(err, rc, "keyword index: full");
    if (rc < 0) return sx_err_set(err, rc, "keyword index: out of memory adding slot %u", slot);
    return 0;
}

/* ---- remove and compaction ---- */

int sx_kw_index_remove(sx_kw_index *ix, uint32_t slot, sx_err *err) {
    if (!sx_kw_index_contains(ix, slot))
        return sx_err_set(err, SX_ENOTFOUND, "keyword index: slot %u holds no paper", slot);
    unlink_slot(ix, slot);
    /* compaction failing (out of memory) leaves a valid index: retried later */
    if (sx_kw_index_maintenance_due(ix)) sx_kw_index_maintain(ix, 0, NULL);
    return 0;
}

int sx_kw_index_maintenance_due(const sx_kw_index *ix) {
    return ix->removed >= COMPACT_MIN && ix->removed * 4 >= ix->n_docs;
}

int sx_kw_index_maintain(sx_kw_index *ix, int force, sx_err *err) {
    if (!force && !sx_kw_index_maintenance_due(ix)) return 0;
    uint32_t *renum = sx_index_malloc(((size_t)ix->n_docs + 1) * sizeof *renum);
    kw_doc *docs = sx_index_malloc((ix->live ? ix->live : 1) * sizeof *docs);
    kw_term *terms = sx_index_malloc((ix->n_terms ? ix->n_terms : 1) * sizeof *terms);
    char *strs = sx_index_malloc(ix->strs_len ? ix->strs_len : 1);
    uint32_t tcap = 1024;
    while ((size_t)tcap < (size_t)ix->n_terms * 2) tcap *= 2;
    uint32_t *table = sx_index_malloc((size_t)tcap * sizeof *table);
    uint32_t nt = 0, nd = 0;
    size_t strs_len = 0, postings = 0, bytes = 0;
    int rc = renum && docs && terms && strs && table ? 0 : SX_ENOMEM;
    if (rc == 0) {
        memset(table, 0xff, (size_t)tcap * sizeof *table);
        for (uint32_t i = 0; i < ix->n_docs; i++) {
            renum[i] = ix->docs[i].slot == KW_NONE ? KW_NONE : nd;
            if (ix->docs[i].slot != KW_NONE) docs[nd++] = ix->docs[i];
        }
    }
    uint8_t buf[KW_ENTRY_MAX];
    for (uint32_t i = 0; i < ix->n_terms && rc == 0; i++) {
        const kw_term *t = &ix->terms[i];
        /* the rewritten list is never longer than the old one */
        uint8_t *post = t->plen ? sx_index_malloc(t->plen) : NULL;
        if (t->plen && !post) {
            rc = SX_ENOMEM;
            break;
        }
        kw_term nt_ = {.str = (uint32_t)strs_len, .hash = t->hash, .last = KW_NONE, .len = t->len};
        size_t pos = 0, plen = 0, n = 0;
        uint32_t prev = KW_NONE;
        const uint8_t *old = kw_post_c(t);
        kw_entry e;
        while (pos < t->plen && kw_entry_next(old, t->plen, &pos, prev, &e) == 0) {
            prev = e.num;
            if (renum[e.num] == KW_NONE) continue;
            e.num = renum[e.num];
            size_t m = kw_entry_put(buf, nt_.last, &e);
            memcpy(post + plen, buf, m);
            plen += m;
            nt_.last = e.num;
            n++;
        }
        if (n > 0 && kw_post_set(&nt_, post, (uint32_t)plen) < 0) rc = SX_ENOMEM;
        sx_index_free_mem(post);
        if (n == 0 || rc < 0) continue;
        memcpy(strs + strs_len, ix->strs + t->str, t->len);
        strs_len += t->len;
        postings += n;
        bytes += nt_.pcap > KW_INLINE ? nt_.pcap : 0;
        table_place(table, tcap, t->hash, nt);
        terms[nt++] = nt_;
    }
    if (rc < 0) {
        free_terms(terms, nt);
        sx_index_free_mem(renum);
        sx_index_free_mem(docs);
        sx_index_free_mem(strs);
        sx_index_free_mem(table);
        return sx_err_set(err, rc, "keyword index: out of memory compacting");
    }
    for (uint32_t s = 0; s < ix->slot_cap; s++)
        if (ix->slot_map[s]) ix->slot_map[s] = renum[ix->slot_map[s] - 1] + 1;
    free_terms(ix->terms, ix->n_terms);
    sx_index_free_mem(ix->docs);
    sx_index_free_mem(ix->strs);
    sx_index_free_mem(ix->table);
    sx_index_free_mem(renum);
    ix->terms = terms;
    ix->n_terms = ix->cap_terms = nt;
    ix->docs = docs;
    ix->n_docs = ix->cap_docs = nd;
    ix->strs = strs;
    ix->strs_len = ix->strs_cap = strs_len;
    ix->table = table;
    ix->table_cap = tcap;
    ix->removed = 0;
    ix->postings = postings;
    ix->bytes_postings = bytes;
    return 0;
}

/* ---- search ---- */

#define QUERY_TERMS 256

typedef struct qterms {
    const sx_kw_index *ix;
    uint32_t t[QUERY_TERMS];
    int n;
} qterms;

static int query_term(void *ctx, const char *term, size_t len, size_t start, size_t end) {
    (void)start;
    (void)end;
    qterms *q = ctx;
    uint32_t t = kw_find(q->ix, term, len, kw_hash(term, len));
    if (t == KW_NONE || q->n == QUERY_TERMS) return 0;
    for (int i = 0; i < q->n; i++)
        if (q->t[i] == t) return 0;
    q->t[q->n++] = t;
    return 0;
}

/* 1 when hit a ranks before hit b: higher score, then lower slot. */
static int before(const sx_kw_hit *a, const sx_kw_hit *b) {
    return a->score > b->score || (a->score == b->score && a->slot < b->slot);
}

/* Sifts heap[i] down a heap of n whose root ranks last. */
static void sift_down(sx_kw_hit *heap, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&heap[m], &heap[l])) m = l;
        if (r < n && before(&heap[m], &heap[r])) m = r;
        if (m == i) return;
        sx_kw_hit t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

static void sift_up(sx_kw_hit *heap, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!before(&heap[p], &heap[i])) return;
        sx_kw_hit t = heap[i];
        heap[i] = heap[p];
        heap[p] = t;
        i = p;
    }
}

/* A search's scratch, one per thread and kept between searches (plain
 * malloc, not the index allocator: it belongs to the thread, not to an
 * index): a dense accumulator of scores by paper number, all zero between
 * searches (the final scan clears what it reads), and one term's decoded
 * entries. Freed when the thread exits. Measured at 200,000 papers:
 * allocating and zeroing the accumulator per search (calloc of 800 KB:
 * fresh pages each time) and decoding every list twice (once for the
 * document frequency) took most of a keyword search's time. */
typedef struct {
    uint32_t num;
    float tf; /* the saturated pseudo-frequency tf' / (k1 + tf'), before idf */
} scored;

typedef struct {
    float *acc;
    size_t acc_cap;
    scored *ent;
    size_t ent_cap;
} scratch;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch *sc = p;
    if (!sc) return;
    free(sc->acc);
    free(sc->ent);
    free(sc);
}

static void scratch_key_init(void) { pthread_key_create(&g_scratch_key, scratch_free); }

/* This thread's scratch with room for n papers, or NULL (out of memory). */
static scratch *scratch_get(size_t n) {
    pthread_once(&g_scratch_once, scratch_key_init);
    scratch *sc = pthread_getspecific(g_scratch_key);
    if (!sc) {
        if (!(sc = calloc(1, sizeof *sc))) return NULL;
        pthread_setspecific(g_scratch_key, sc);
    }
    if (sc->acc_cap < n) {
        size_t cap = n + n / 4 + 1024;
        float *a = calloc(cap, sizeof *a);
        scored *e = malloc(cap * sizeof *e);
        if (!a || !e) {
            free(a);
            free(e);
            return NULL;
        }
        free(sc->acc);
        free(sc->ent);
        sc->acc = a;
        sc->ent = e;
        sc->acc_cap = sc->ent_cap = cap;
    }
    return sc;
}

/* The term's contribution to each live paper, added into acc (one decode of
 * its list into ent, then idf from the count); widens [*lo, *hi] to the
 * numbers touched. */
static void score_term(const sx_kw_index *ix, const kw_term *t, unsigned fields, float *acc, scored *ent,
                       const double *avg, uint32_t *lo, uint32_t *hi) {
    kw_entry e;
    size_t pos = 0;
    uint32_t prev = KW_NONE, df = 0;
    const sx_kw_params *p = &ix->p;
    while (pos < t->plen && kw_entry_next(kw_post_c(t), t->plen, &pos, prev, &e) == 0) {
        prev = e.num;
        const kw_doc *d = &ix->docs[e.num];
        if (d->slot == KW_NONE) continue;
        double tf = 0;
        for (int f = 0; f < SX_KW_NFIELDS; f++) {
            if (!(fields >> f & 1) || !e.tf[f]) continue;
            double norm = 1.0 - p->b[f] + (avg[f] > 0 ? p->b[f] * d->len[f] / avg[f] : 0);
            tf += p->weight[f] * e.tf[f] / norm;
        }
        if (tf <= 0) continue;
        ent[df++] = (scored){e.num, (float)(tf / (p->k1 + tf))};
    }
    if (df == 0) return;
    double N = (double)ix->live;
    float idf = (float)log(1.0 + (N - df + 0.5) / (df + 0.5));
    for (uint32_t i = 0; i < df; i++) acc[ent[i].num] += idf * ent[i].tf;
    if (ent[0].num < *lo) *lo = ent[0].num;
    if (ent[df - 1].num > *hi) *hi = ent[df - 1].num;
}

int sx_kw_index_search(const sx_kw_index *ix, const char *query, const sx_kw_query *q,
                       sx_kw_hit *hits, int *n_hits, sx_err *err) {
    *n_hits = 0;
    if (!q || q->k < 1 || q->k > MAX_K)
        return sx_err_set(err, SX_EINVAL, "keyword search: k must be in 1..%d", MAX_K);
    unsigned fields = q->fields & 7u ? q->fields & 7u : 7u;
    qterms qt = {.ix = ix};
    if (query) sx_kw_analyze(query, strlen(query), 0, query_term, &qt);
    if (qt.n == 0 || ix->live == 0) return 0;
    scratch *sc = scratch_get(ix->n_docs);
    if (!sc) return sx_err_set(err, SX_ENOMEM, "keyword search: out of memory");
    float *acc = sc->acc;
    double avg[SX_KW_NFIELDS];
    for (int f = 0; f < SX_KW_NFIELDS; f++) avg[f] = (double)ix->sum_len[f] / (double)ix->live;
    uint32_t lo = KW_NONE, hi = 0;
    for (int i = 0; i < qt.n; i++) score_term(ix, &ix->terms[qt.t[i]], fields, acc, sc->ent, avg, &lo, &hi);
    int n = 0;
    for (uint32_t i = lo; lo != KW_NONE && i <= hi; i++) {
        if (!(acc[i] > 0)) continue;
        sx_kw_hit h = {acc[i], ix->docs[i].slot};
        acc[i] = 0; /* the scratch is all zero again after the scan */
        if (n == q->k && !before(&h, &hits[0])) continue;
        if (q->filter && !q->filter(q->filter_ctx, h.slot)) continue;
        if (n < q->k) {
            hits[n] = h;
            sift_up(hits, n++);
        } else {
            hits[0] = h;
            sift_down(hits, n, 0);
        }
    }
    /* heap to best-first order: pop the worst to the end repeatedly */
    for (int m = n; m > 1; m--) {
        sx_kw_hit t = hits[0];
        hits[0] = hits[m - 1];
        hits[m - 1] = t;
        sift_down(hits, m - 1, 0);
    }
    *n_hits = n;
    return 0;
}

int sx_kw_index_author_docs(const sx_kw_index *ix, const char *name,
                            int (*fn)(void *ctx, uint32_t slot), void *ctx) {
    char norm[SX_KW_NAME_MAX];
    if (!name || sx_kw_author_norm(name, strlen(name), norm, sizeof norm) <= 0) return 0;
    size_t len = strcspn(norm, " ");
    uint32_t t = kw_find(ix, norm, len, kw_hash(norm, len));
    if (t == KW_NONE) return 0;
    const kw_term *tm = &ix->terms[t];
    kw_entry e;
    size_t pos = 0;
    uint32_t prev = KW_NONE;
    while (pos < tm->plen && kw_entry_next(kw_post_c(tm), tm->plen, &pos, prev, &e) == 0) {
        prev = e.num;
        uint32_t slot = ix->docs[e.num].slot;
        if (slot == KW_NONE || !e.tf[SX_KW_AUTHORS]) continue;
        int rc = fn(ctx, slot);
        if (rc) return rc;
    }
    return 0;
}

void sx_kw_index_stats(const sx_kw_index *ix, sx_kw_stats *out) {
    memset(out, 0, sizeof *out);
    out->docs = ix->live;
    out->removed = ix->removed;
    out->terms = ix->n_terms;
    out->postings = ix->postings;
    out->bytes_postings = ix->bytes_postings;
    out->bytes_dict = (size_t)ix->cap_terms * sizeof(kw_term) + ix->strs_cap + (size_t)ix->table_cap * 4;
    out->bytes_docs = (size_t)ix->cap_docs * sizeof(kw_doc) + (size_t)ix->slot_cap * 4;
    for (int f = 0; f < SX_KW_NFIELDS; f++)
        out->avg_len[f] = ix->live ? (double)ix->sum_len[f] / (double)ix->live : 0;
}
