/*
 * shard.c - a shard: the HNSW index, the documents, an id map and category
 * bitmaps, saved to and loaded from a byte stream or used in place from a
 * mapped snapshot.
 *
 * Documents. Each paper is one record, the same bytes on the heap and in a
 * snapshot:
 *
 *     u32 total length; then six fields (id, title, abstract, authors,
 *     update_date, categories), each u32 length + bytes + NUL
 *
 * so a field is a pointer into the record, usable as a C string in place.
 * The node's index payload is the record's address. A record is immutable:
 * an upsert makes a new node with a new record and deletes the old node,
 * whose record is freed by the index's vacuum once no search can hold it
 * (the release callback). Rejected: an arena with compaction (moves records
 * under readers) and zstd blocks (a search returning 10 hits would
 * decompress 10 blocks; worth revisiting if document RAM dominates, but the
 * mapped snapshot already keeps cold records out of RAM).
 *
 * Ids. An open-addressing table maps hash(id) to nodes; equal hashes are
 * confirmed against the record's id. It lives on the heap (about 24 bytes per
 * paper with the load factor) and is rebuilt at load from the snapshot's
 * compact id section, so loading never touches the document pages.
 *
 * Categories. One bitmap per category code over node slots. A filtered
 * search ORs the bitmaps of the codes asked for into a per-query bitmap
 * (510K papers: 64 KB per code) and hands it to the index with its
 * population count, from which the index picks graph walk or scan.
 *
 * Locks. `map_lock` (rwlock) guards the id table and the bitmaps: searches
 * and gets read, the commit step of an upsert or delete writes for a few
 * microseconds. The expensive part of an upsert, linking the node into the
 * graph, runs before that step without it, concurrently with everything.
 * `save_lock` is shared by upserts, deletes and the index housekeeping and
 * exclusive for save, so a snapshot is consistent while searches go on.
 *
 * Text. A keyword index (keyword/, BM25F over title, abstract, authors)
 * names papers by node, like the bitmaps, and changes with them under
 * map_lock's write side; keyword searches read it under the read side, so
 * a node they see is live and its record stays while they copy it. A date
 * table (update_date as a day number, by node) serves date filters without
 * touching the records. A filtered search builds one bitmap of the nodes
 * that pass every filter (categories, dates, authors) and hands it to the
 * index, or to the keyword index as its filter.
 *
 * Snapshot sections, in order: SHHD (header), the index's sections (see
 * hnsw.c), SHID (ids), SHDO (document offsets + records), SHCT (categories
 * and bitmaps), and since version 2 SHDT (dates by node) and the keyword
 * index's KWHD, KWDC, KWPO. A version-1 snapshot is still read: its
 * keyword index and dates are rebuilt from the records. A mapped load uses
 * the fp32 vectors and the documents in place; SX_LOAD_LAZY skips their
 * checksums so that start-up reads neither.
 */
#include "shard.h"

#include "../keyword/keyword.h"
#include "../text/text.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NF 6 /* fields of a record */
#define EMPTY UINT32_MAX
#define TOMB (UINT32_MAX - 1)
#define FORMAT_VERSION 2 /* 2: + dates and the keyword index; 1 still read */
#define TAG_HEAD SX_TAG('S', 'H', 'H', 'D')
#define TAG_IDS SX_TAG('S', 'H', 'I', 'D')
#define TAG_DOCS SX_TAG('S', 'H', 'D', 'O')
#define TAG_CATS SX_TAG('S', 'H', 'C', 'T')
#define TAG_DATES SX_TAG('S', 'H', 'D', 'T')
#define MAX_CAT 63

typedef struct category {
    char *name;
    uint64_t *bits;
    size_t words;
} category;

struct sx_shard {
    sx_shard_params p;
    sx_index *ix;
    pthread_rwlock_t map_lock, save_lock;
    uint64_t *hashes; /* id table: hash and node per entry */
    uint32_t *nodes;
    size_t cap, used, tombs;
    category *cats;
    size_t n_cats, cap_cats;
    const uint8_t *docs_lo, *docs_hi; /* records not owned one by one */
    const uint8_t *doc_offsets;       /* their offset table (n_doc_offsets + 1) */
    uint32_t n_doc_offsets;
    void *docs_owned;                 /* that block, when loaded from a stream */
    void (*backing_release)(void *ctx); /* what a mapped load reads from (sx_shard_set_backing) */
    void *backing_ctx;
    _Atomic size_t doc_bytes;
    sx_kw_index *kw;   /* title, abstract, authors by node; under map_lock */
    uint32_t *dates;   /* update_date by node (sx_date_parse; 0 unknown); under map_lock */
    size_t dates_cap;
};

/* ---- records ---- */


static const char *field_or_empty(const char *s) { return s ? s : ""; }

static void doc_fields(const sx_doc *d, const char *f[NF]) {
    f[0] = field_or_empty(d->id);
    f[1] = field_or_empty(d->title);
    f[2] = field_or_empty(d->abstract);
    f[3] = field_or_empty(d->authors);
    f[4] = field_or_empty(d->update_date);
    f[5] = field_or_empty(d->categories);
}

/* The length of d's record (0 when it would not fit a u32 length). */
static size_t rec_size(const sx_doc *d) {
    const char *f[NF];
    size_t total = 4;
    doc_fields(d, f);
    for (int i = 0; i < NF; i++) total += 4 + strlen(f[i]) + 1;
    return total > UINT32_MAX ? 0 : total;
}

/* Writes d's record, rec_size(d) bytes, to r. */
static void rec_write(const sx_doc *d, uint8_t *r, size_t total) {
    const char *f[NF];
    doc_fields(d, f);
    sx_le32_put(r, (uint32_t)total);
    size_t pos = 4;
    for (int i = 0; i < NF; i++) {
        size_t len = strlen(f[i]);
        sx_le32_put(r + pos, (uint32_t)len);
        memcpy(r + pos + 4, f[i], len + 1);
        pos += 4 + len + 1;
    }
}

/* Builds the record of d (index allocator); *len_out its length. */
static uint8_t *rec_build(const sx_doc *d, size_t *len_out) {
    size_t total = rec_size(d);
    uint8_t *r = total ? sx_index_malloc(total) : NULL;
    if (!r) return NULL;
    rec_write(d, r, total);
    *len_out = total;
    return r;
}

/* Field i of record r, whose length is known to be bound; bounds-checked.
 * Returns 0 or SX_ECORRUPT. */
static int rec_field(const uint8_t *r, uint64_t bound, int i, const char **out, uint32_t *len) {
    uint32_t total = sx_le32_get(r), pos = 4;
    if (total != bound) return SX_ECORRUPT;
    for (int k = 0;; k++) {
        if (total < 8 || pos > total - 4) return SX_ECORRUPT;
        uint32_t n = sx_le32_get(r + pos);
        if (n > total - pos - 4 - 1 || r[pos + 4 + n] != 0) return SX_ECORRUPT;
        if (k == i) {
            *out = (const char *)r + pos + 4;
            if (len) *len = n;
            return 0;
        }
        pos += 4 + n + 1;
    }
}

static const uint8_t *rec_of(sx_shard *s, uint32_t node) {
    return (const uint8_t *)(uintptr_t)sx_index_payload(s->ix, node);
}

static int rec_owned(const sx_shard *s, const uint8_t *r) {
    return r && !(r >= s->docs_lo && r < s->docs_hi);
}

/* The length record r of node must have: its own header for a heap record;
 * from the snapshot's offset table for a record in the snapshot (so that a
 * lazily loaded, unverified record cannot lead a read out of bounds). */
static uint64_t rec_bound(const sx_shard *s, uint32_t node, const uint8_t *r) {
    if (rec_owned(s, r)) return sx_le32_get(r);
    if (node >= s->n_doc_offsets) return 0;
    const uint8_t *o = s->doc_offsets + 8 * (size_t)node;
    return sx_le64_get(o + 8) - sx_le64_get(o);
}

/* Field i of node's record; 0 or SX_ECORRUPT (also when there is none). */
static int node_field(sx_shard *s, uint32_t node, const uint8_t *r, int i, const char **out,
                      uint32_t *len) {
    if (!r) return SX_ECORRUPT;
    return rec_field(r, rec_bound(s, node, r), i, out, len);
}

static void release_cb(void *ctx, uint32_t node, uint64_t payload) {
    sx_shard *s = ctx;
    const uint8_t *r = (const uint8_t *)(uintptr_t)payload;
    if (rec_owned(s, r)) {
        atomic_fetch_sub(&s->doc_bytes, sx_le32_get(r));
        sx_index_free_mem((void *)r);
    }
}

/* ---- validation ---- */

/* 1 when z is well-formed UTF-8 (the text module's check). */
static int utf8_valid(const char *z) { return sx_utf8_check(z, strlen(z), NULL) == 0; }

static int check_doc(const sx_doc *d, sx_err *err) {
    static const char *names[NF] = {"id", "title", "abstract", "authors", "update_date", "categories"};
    const char *f[NF];
    if (!d) return sx_err_set(err, SX_EINVAL, "no document");
    doc_fields(d, f);
    size_t idlen = strlen(f[0]);
    if (idlen == 0) return sx_err_set(err, SX_EINVAL, "document has no id");
    if (idlen > 63) return sx_err_set(err, SX_EINVAL, "id is %zu bytes, at most 63 allowed", idlen);
    for (int i = 0; i < NF; i++)
        if (!utf8_valid(f[i]))
            return sx_err_set(err, SX_EINVAL, "%s of '%.63s' is not valid UTF-8", names[i],
                              utf8_valid(f[0]) ? f[0] : "?");
    for (const char *c = f[5]; *c;) {
        size_t n = strcspn(c, " \t");
        if (n > MAX_CAT) return sx_err_set(err, SX_EINVAL, "category code of '%s' longer than %d bytes", f[0], MAX_CAT);
        c += n;
        c += strspn(c, " \t");
    }
    return 0;
}

/* 1 for the bytes an id may hold: ASCII letters, digits and . / - _. */
static int is_id_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/' || c == '-' || c == '_';
}

int sx_doc_check_id(const char *id, sx_err *err) {
    size_t len = strlen(id);
    if (len == 0) return sx_err_set(err, SX_EINVAL, "'id' must not be empty");
    if (len > SX_ID_MAX_LEN)
        return sx_err_set(err, SX_EINVAL, "'id' is %zu bytes long; the limit is %d", len, SX_ID_MAX_LEN);
    for (size_t i = 0; i < len; i++)
        if (!is_id_char((unsigned char)id[i]))
            return sx_err_set(err, SX_EINVAL,
                              "'id' may contain only letters, digits and . / - _ (byte %zu)", i);
    return 0;
}

int sx_doc_check(const sx_doc *d, sx_err *err) {
    if (!d) return sx_err_set(err, SX_EINVAL, "no document");
    int rc = d->id ? sx_doc_check_id(d->id, err) : sx_err_set(err, SX_EINVAL, "'id' is missing");
    if (rc == 0 && (!d->title || !d->title[0]))
        rc = sx_err_set(err, SX_EINVAL, "'title' is missing or empty");
    return rc < 0 ? rc : check_doc(d, err);
}

int sx_vector_check(const float *v, int dim, sx_err *err) {
    double norm = 0;
    if (!v) return sx_err_set(err, SX_EINVAL, "no vector");
    for (int i = 0; i < dim; i++) {
        if (!isfinite(v[i])) return sx_err_set(err, SX_EINVAL, "vector has a non-finite value at %d", i);
        norm += (double)v[i] * v[i];
    }
    if (fabs(sqrt(norm) - 1.0) > 1e-3)
        return sx_err_set(err, SX_EINVAL, "vector is not L2-normalised (norm %.4f)", sqrt(norm));
    return 0;
}

int sx_date_parse(const char *z, uint32_t *days) {
    *days = 0;
    if (!z || strlen(z) != 10 || z[4] != '-' || z[7] != '-') return SX_EINVAL;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (z[i] < '0' || z[i] > '9')) return SX_EINVAL;
    int y = (z[0] - '0') * 1000 + (z[1] - '0') * 100 + (z[2] - '0') * 10 + (z[3] - '0');
    int m = (z[5] - '0') * 10 + (z[6] - '0'), d = (z[8] - '0') * 10 + (z[9] - '0');
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap)) return SX_EINVAL;
    /* Days since 0400-03-01 BC (proleptic Gregorian; years start in March
     * so the leap day ends one), + 1: positive for every year 0000-9999 */
    int yy = y + 400 - (m <= 2);
    int era = yy / 400, yoe = yy - era * 400;
    int doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    *days = (uint32_t)(era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy + 1);
    return 0;
}

int sx_doc_encode(const sx_doc *d, void **out, size_t *len, sx_err *err) {
    *out = NULL;
    *len = 0;
    if (!d) return sx_err_set(err, SX_EINVAL, "encode: no document");
    size_t total = rec_size(d);
    if (!total) return sx_err_set(err, SX_EINVAL, "encode: document longer than 4 GiB");
    uint8_t *r = malloc(total);
    if (!r) return sx_err_set(err, SX_ENOMEM, "encode: out of memory");
    rec_write(d, r, total);
    *out = r;
    *len = total;
    return 0;
}

int sx_doc_decode(const void *buf, size_t len, sx_doc *out, sx_err *err) {
    static const char *names[NF] = {"id", "title", "abstract", "authors", "update_date", "categories"};
    const uint8_t *r = buf;
    memset(out, 0, sizeof *out);
    if (!buf || len < 4 + NF * 5)
        return sx_err_set(err, SX_ECORRUPT, "document: %zu bytes, a record has at least %d", len, 4 + NF * 5);
    if (sx_le32_get(r) != len)
        return sx_err_set(err, SX_ECORRUPT, "document: header says %u bytes, got %zu", sx_le32_get(r), len);
    const char *f[NF];
    size_t pos = 4;
    for (int i = 0; i < NF; i++) {
        if (len - pos < 5)
            return sx_err_set(err, SX_ECORRUPT, "document: truncated before field %s (byte %zu)", names[i], pos);
        uint32_t n = sx_le32_get(r + pos);
        if (n > len - pos - 5 || r[pos + 4 + n] != 0)
            return sx_err_set(err, SX_ECORRUPT, "document: field %s (%u bytes at byte %zu) out of bounds",
                              names[i], n, pos);
        f[i] = (const char *)r + pos + 4;
        if (memchr(f[i], 0, n))
            return sx_err_set(err, SX_ECORRUPT, "document: field %s holds a NUL byte", names[i]);
        if (sx_utf8_check(f[i], n, NULL) != 0)
            return sx_err_set(err, SX_ECORRUPT, "document: field %s is not valid UTF-8", names[i]);
        pos += 4 + (size_t)n + 1;
    }
    if (pos != len) return sx_err_set(err, SX_ECORRUPT, "document: %zu bytes after the last field", len - pos);
    *out = (sx_doc){f[0], f[1], f[2], f[3], f[4], f[5]};
    return 0;
}

/* ---- id table ---- */

static uint64_t hash_id(const char *z) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (; *z; z++) h = (h ^ (unsigned char)*z) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static int id_is(sx_shard *s, uint32_t node, const char *id) {
    const char *z;
    return node_field(s, node, rec_of(s, node), 0, &z, NULL) == 0 && strcmp(z, id) == 0;
}

/* The table entry of id, or SIZE_MAX. Caller holds map_lock. */
static size_t map_find(sx_shard *s, const char *id, uint64_t h) {
    if (!s->cap) return SIZE_MAX;
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        uint32_t n = s->nodes[i];
        if (n == EMPTY) return SIZE_MAX;
        if (n != TOMB && s->hashes[i] == h && id_is(s, n, id)) return i;
    }
}

static void map_place(sx_shard *s, uint64_t h, uint32_t node) {
    size_t i = h & (s->cap - 1);
    while (s->nodes[i] != EMPTY && s->nodes[i] != TOMB) i = (i + 1) & (s->cap - 1);
    if (s->nodes[i] == TOMB) s->tombs--;
    s->hashes[i] = h;
    s->nodes[i] = node;
    s->used++;
}

/* Makes room for one more entry (rehashing); 0 or SX_ENOMEM. */
static int map_reserve(sx_shard *s) {
    if ((s->used + s->tombs + 1) * 2 <= s->cap) return 0;
    size_t ncap = s->cap ? s->cap : 64;
    while ((s->used + 1) * 2 > ncap) ncap *= 2;
    if ((s->used + 1) * 4 > ncap) ncap *= 2;
    uint64_t *nh = sx_index_malloc(ncap * sizeof *nh);
    uint32_t *nn = sx_index_malloc(ncap * sizeof *nn);
    if (!nh || !nn) {
        sx_index_free_mem(nh);
        sx_index_free_mem(nn);
        return SX_ENOMEM;
    }
    memset(nn, 0xff, ncap * sizeof *nn);
    uint64_t *oh = s->hashes;
    uint32_t *on = s->nodes;
    size_t ocap = s->cap;
    s->hashes = nh;
    s->nodes = nn;
    s->cap = ncap;
    s->used = s->tombs = 0;
    for (size_t i = 0; i < ocap; i++)
        if (on[i] != EMPTY && on[i] != TOMB) map_place(s, oh[i], on[i]);
    sx_index_free_mem(oh);
    sx_index_free_mem(on);
    return 0;
}

/* ---- categories ---- */

static category *cat_find(sx_shard *s, const char *name, size_t len) {
    for (size_t i = 0; i < s->n_cats; i++)
        if (strlen(s->cats[i].name) == len && memcmp(s->cats[i].name, name, len) == 0) return &s->cats[i];
    return NULL;
}

/* Finds or creates category name[0..len) with room for bit `node`. */
static int cat_prepare(sx_shard *s, const char *name, size_t len, uint32_t node) {
    category *c = cat_find(s, name, len);
    if (!c) {
        if (s->n_cats == s->cap_cats) {
            size_t nc = s->cap_cats ? s->cap_cats * 2 : 32;
            category *a = sx_index_realloc(s->cats, nc * sizeof *a);
            if (!a) return SX_ENOMEM;
            s->cats = a;
            s->cap_cats = nc;
        }
        char *z = sx_index_malloc(len + 1);
        if (!z) return SX_ENOMEM;
        memcpy(z, name, len);
        z[len] = 0;
        c = &s->cats[s->n_cats++];
        *c = (category){z, NULL, 0};
    }
    size_t need = (size_t)node / 64 + 1;
    if (c->words < need) {
        size_t nw = c->words ? c->words : 64;
        while (nw < need) nw *= 2;
        uint64_t *b = sx_index_realloc(c->bits, nw * sizeof *b);
        if (!b) return SX_ENOMEM;
        memset(b + c->words, 0, (nw - c->words) * sizeof *b);
        c->bits = b;
        c->words = nw;
    }
    return 0;
}

/* Calls fn for each category code in the space-separated list z. */
static int each_code(const char *z, int (*fn)(sx_shard *, const char *, size_t, uint32_t, int),
                     sx_shard *s, uint32_t node, int arg) {
    for (z += strspn(z, " \t"); *z;) {
        size_t n = strcspn(z, " \t");
        int rc = fn(s, z, n, node, arg);
        if (rc < 0) return rc;
        z += n;
        z += strspn(z, " \t");
    }
    return 0;
}

static int code_prepare(sx_shard *s, const char *z, size_t n, uint32_t node, int arg) {
    return cat_prepare(s, z, n, node);
}

static int code_mark(sx_shard *s, const char *z, size_t n, uint32_t node, int set) {
    category *c = cat_find(s, z, n);
    if (c && (size_t)node / 64 < c->words) {
        if (set) c->bits[node >> 6] |= 1ull << (node & 63);
        else c->bits[node >> 6] &= ~(1ull << (node & 63));
    }
    return 0;
}

static void mark_node(sx_shard *s, uint32_t node, int set) {
    const char *z;
    if (node_field(s, node, rec_of(s, node), 5, &z, NULL) == 0) each_code(z, code_mark, s, node, set);
}

/* ---- dates ---- */

/* Makes room in the date table for node; 0 or SX_ENOMEM. Caller holds
 * map_lock for writing. */
static int dates_reserve(sx_shard *s, uint32_t node) {
    if (node < s->dates_cap) return 0;
    size_t nc = s->dates_cap ? s->dates_cap : 1024;
    while (nc <= node) nc *= 2;
    uint32_t *d = sx_index_realloc(s->dates, nc * sizeof *d);
    if (!d) return SX_ENOMEM;
    memset(d + s->dates_cap, 0, (nc - s->dates_cap) * sizeof *d);
    s->dates = d;
    s->dates_cap = nc;
    return 0;
}

/* Indexes node's paper for keyword search and date filters (d: its
 * fields). Caller holds map_lock for writing and has reserved the date. */
static int text_add(sx_shard *s, uint32_t node, const char *title, const char *abstract,
                    const char *authors, const char *date) {
    int rc = sx_kw_index_add(s->kw, node, title, abstract, authors, NULL);
    if (rc == 0) sx_date_parse(date, &s->dates[node]);
    return rc;
}

/* Forgets node in the keyword index and the date table. */
static void text_remove(sx_shard *s, uint32_t node) {
    if (sx_kw_index_contains(s->kw, node)) sx_kw_index_remove(s->kw, node, NULL);
    if (node < s->dates_cap) s->dates[node] = 0;
}

/* ---- life cycle ---- */

sx_shard_params sx_shard_params_default(void) {
    return (sx_shard_params){384, 16, 200, 64, SX_STORAGE_SQ8, 32};
}

static int shard_new(const sx_shard_params *p, sx_index *ix, sx_shard **out, sx_err *err) {
    sx_shard *s = sx_index_calloc(1, sizeof *s);
    if (!s) {
        sx_index_free(ix);
        return sx_err_set(err, SX_ENOMEM, "shard: out of memory");
    }
    s->p = *p;
    s->ix = ix;
    pthread_rwlock_init(&s->map_lock, NULL);
    pthread_rwlock_init(&s->save_lock, NULL);
    sx_index_set_release(ix, release_cb, s);
    *out = s;
    return 0;
}

static sx_index_params index_params(const sx_shard_params *p) {
    sx_index_params ip = sx_index_params_default(p->dim);
    ip.M = p->M;
    ip.ef_construction = p->ef_construction;
    ip.ef_search = p->ef_search;
    ip.storage = p->storage;
    ip.rerank = p->rerank;
    return ip;
}

int sx_shard_create(const sx_shard_params *p, sx_shard **out, sx_err *err) {
    *out = NULL;
    if (!p) return sx_err_set(err, SX_EINVAL, "shard: no parameters");
    sx_index_params ip = index_params(p);
    if (p->storage == SX_STORAGE_FP32 && p->rerank) ip.rerank = 0;
    sx_index *ix;
    int rc = sx_index_create(&ip, &ix, err);
    if (rc < 0) return rc;
    rc = shard_new(p, ix, out, err);
    if (rc < 0) return rc;
    sx_kw_params kp = sx_kw_params_default();
    if ((rc = sx_kw_index_create(&kp, &(*out)->kw, err)) < 0) {
        sx_shard_free(*out);
        *out = NULL;
    }
    return rc;
}

void sx_shard_free(sx_shard *s) {
    if (!s) return;
    uint32_t n = sx_index_slots(s->ix);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *r = rec_of(s, i);
        if (rec_owned(s, r)) sx_index_free_mem((void *)r);
    }
    sx_index_free(s->ix);
    sx_index_free_mem(s->hashes);
    sx_index_free_mem(s->nodes);
    for (size_t i = 0; i < s->n_cats; i++) {
        sx_index_free_mem(s->cats[i].name);
        sx_index_free_mem(s->cats[i].bits);
    }
    sx_index_free_mem(s->cats);
    sx_index_free_mem(s->docs_owned);
    sx_kw_index_free(s->kw);
    sx_index_free_mem(s->dates);
    if (s->backing_release) s->backing_release(s->backing_ctx);
    pthread_rwlock_destroy(&s->map_lock);
    pthread_rwlock_destroy(&s->save_lock);
    sx_index_free_mem(s);
}

/* ---- writes ---- */

/* Adds or replaces a paper with its node at *level (-1: drawn; OUT: the
 * level used), then runs the index housekeeping when maintain is set. */
static int upsert(sx_shard *s, const sx_doc *doc, const float *vec, int *level, int maintain,
                  sx_err *err) {
    int rc = check_doc(doc, err);
    if (rc < 0) return rc;
    if (!vec) return sx_err_set(err, SX_EINVAL, "no vector for '%s'", doc->id);
    if (*level < -1 || *level > 15)
        return sx_err_set(err, SX_EINVAL, "level %d of '%s' not in 0..15", *level, doc->id);
    size_t len;
    uint8_t *rec = rec_build(doc, &len);
    if (!rec) return sx_err_set(err, SX_ENOMEM, "shard: out of memory for '%s'", doc->id);
    pthread_rwlock_rdlock(&s->save_lock);
    uint32_t node;
    int lv = *level >= 0 ? *level : sx_index_draw_level(s->ix);
    rc = sx_index_add_level(s->ix, vec, (uint64_t)(uintptr_t)rec, lv, &node, err);
    if (rc < 0) {
        pthread_rwlock_unlock(&s->save_lock);
        sx_index_free_mem(rec);
        return sx_err_prefix(err, "'%s'", doc->id);
    }
    atomic_fetch_add(&s->doc_bytes, len);
    uint64_t h = hash_id(doc->id);
    pthread_rwlock_wrlock(&s->map_lock);
    rc = map_reserve(s);
    if (rc == 0) rc = each_code(field_or_empty(doc->categories), code_prepare, s, node, 0);
    if (rc == 0) rc = dates_reserve(s, node);
    /* last: the one step that changes what searches see */
    if (rc == 0) rc = text_add(s, node, doc->title, doc->abstract, doc->authors, doc->update_date);
    if (rc < 0) {
        /* nothing visible changed: the new node goes away unpublished */
        pthread_rwlock_unlock(&s->map_lock);
        sx_index_delete(s->ix, node, NULL);
        pthread_rwlock_unlock(&s->save_lock);
        return sx_err_set(err, rc == SX_EFULL ? SX_EFULL : SX_ENOMEM,
                          "shard: out of %s for '%s'", rc == SX_EFULL ? "keyword index room" : "memory", doc->id);
    }
    size_t at = map_find(s, doc->id, h);
    if (at != SIZE_MAX) {
        uint32_t old = s->nodes[at];
        mark_node(s, old, 0);
        text_remove(s, old);
        sx_index_delete(s->ix, old, NULL);
        s->nodes[at] = node;
    } else {
        map_place(s, h, node);
    }
    mark_node(s, node, 1);
    sx_index_publish(s->ix, node);
    pthread_rwlock_unlock(&s->map_lock);
    if (maintain) sx_index_maintain(s->ix, NULL);
    pthread_rwlock_unlock(&s->save_lock);
    *level = lv;
    return 0;
}

int sx_shard_upsert(sx_shard *s, const sx_doc *doc, const float *vec, sx_err *err) {
    int level = -1;
    return upsert(s, doc, vec, &level, 1, err);
}

int sx_shard_upsert_ex(sx_shard *s, const sx_doc *doc, const float *vec, int *level, sx_err *err) {
    return upsert(s, doc, vec, level, 0, err);
}

/* Deletes the paper id, then runs the housekeeping when maintain is set. */
static int delete(sx_shard *s, const char *id, int maintain, sx_err *err) {
    if (!id || !*id) return sx_err_set(err, SX_EINVAL, "delete: no id");
    uint64_t h = hash_id(id);
    pthread_rwlock_rdlock(&s->save_lock);
    pthread_rwlock_wrlock(&s->map_lock);
    size_t at = map_find(s, id, h);
    if (at == SIZE_MAX) {
        pthread_rwlock_unlock(&s->map_lock);
        pthread_rwlock_unlock(&s->save_lock);
        return sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id);
    }
    uint32_t node = s->nodes[at];
    s->nodes[at] = TOMB;
    s->used--;
    s->tombs++;
    mark_node(s, node, 0);
    text_remove(s, node);
    sx_index_delete(s->ix, node, NULL);
    pthread_rwlock_unlock(&s->map_lock);
    if (maintain) sx_index_maintain(s->ix, NULL);
    pthread_rwlock_unlock(&s->save_lock);
    return 0;
}

int sx_shard_delete(sx_shard *s, const char *id, sx_err *err) { return delete(s, id, 1, err); }

int sx_shard_delete_ex(sx_shard *s, const char *id, sx_err *err) { return delete(s, id, 0, err); }

int sx_shard_maintenance_due(sx_shard *s) { return sx_index_maintenance_due(s->ix); }

int sx_shard_maintain(sx_shard *s, sx_err *err) {
    pthread_rwlock_rdlock(&s->save_lock);
    int rc = sx_index_maintain(s->ix, err);
    pthread_rwlock_unlock(&s->save_lock);
    return rc;
}

/* ---- reads ---- */

/* A malloc'd copy of node's document (one block, strings inside), or NULL
 * with *rc set (SX_ECORRUPT, SX_ENOMEM). The caller holds the node: the
 * map lock, or a search that still guarantees its payload. */
static sx_doc *copy_doc(sx_shard *s, uint32_t node, const uint8_t *r, int *rc) {
    const char *f[NF];
    uint32_t len[NF];
    size_t total = sizeof(sx_doc);
    *rc = 0;
    for (int i = 0; i < NF; i++) {
        if ((*rc = node_field(s, node, r, i, &f[i], &len[i])) < 0) {
            *rc = SX_ECORRUPT;
            return NULL;
        }
        total += len[i] + 1;
    }
    sx_doc *d = malloc(total);
    if (!d) {
        *rc = SX_ENOMEM;
        return NULL;
    }
    char *p = (char *)(d + 1);
    const char **dst[NF] = {&d->id, &d->title, &d->abstract, &d->authors, &d->update_date, &d->categories};
    for (int i = 0; i < NF; i++) {
        memcpy(p, f[i], len[i] + 1);
        *dst[i] = p;
        p += len[i] + 1;
    }
    return d;
}

int sx_shard_get(sx_shard *s, const char *id, sx_doc **out, sx_err *err) {
    *out = NULL;
    if (!id) return sx_err_set(err, SX_EINVAL, "get: no id");
    uint64_t h = hash_id(id);
    pthread_rwlock_rdlock(&s->map_lock);
    size_t at = map_find(s, id, h);
    if (at == SIZE_MAX) {
        pthread_rwlock_unlock(&s->map_lock);
        return sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id);
    }
    uint32_t node = s->nodes[at];
    int rc;
    sx_doc *d = copy_doc(s, node, rec_of(s, node), &rc);
    pthread_rwlock_unlock(&s->map_lock);
    if (rc == SX_ECORRUPT) return sx_err_set(err, SX_ECORRUPT, "record of '%.63s' is corrupt", id);
    if (!d) return sx_err_set(err, SX_ENOMEM, "get: out of memory");
    *out = d;
    return 0;
}

int sx_shard_get_vector(sx_shard *s, const char *id, float *out, sx_err *err) {
    if (!id) return sx_err_set(err, SX_EINVAL, "get_vector: no id");
    uint64_t h = hash_id(id);
    pthread_rwlock_rdlock(&s->map_lock);
    size_t at = map_find(s, id, h);
    int rc = at == SIZE_MAX ? sx_err_set(err, SX_ENOTFOUND, "no paper '%.63s'", id)
                            : sx_index_get_vector(s->ix, s->nodes[at], out, err);
    pthread_rwlock_unlock(&s->map_lock);
    return rc;
}

typedef struct hit_ctx {
    sx_shard *s;
    sx_hit *hits;
    int with_docs;
    int rc;      /* first failure copying a document */
    int reached; /* 1 + the highest rank on_hit filled */
} hit_ctx;

static void on_hit(void *ctx, int rank, uint32_t node, uint64_t payload) {
    hit_ctx *h = ctx;
    const char *z = "";
    uint32_t len = 0;
    const uint8_t *r = (const uint8_t *)(uintptr_t)payload;
    if (node_field(h->s, node, r, 0, &z, &len) < 0 || len > 63) z = "", len = 0;
    memcpy(h->hits[rank].id, z, len);
    h->hits[rank].id[len] = 0;
    h->hits[rank].doc = NULL;
    if (h->with_docs && h->rc == 0) h->hits[rank].doc = copy_doc(h->s, node, r, &h->rc);
    if (rank >= h->reached) h->reached = rank + 1;
}

/* 1 when category name matches the filter code f: equal, or f is a prefix
 * pattern "X.*" and name is X or starts with "X.". */
static int cat_matches(const char *name, const char *f) {
    size_t n = strlen(f);
    if (n >= 3 && f[n - 2] == '.' && f[n - 1] == '*')
        return strncmp(name, f, n - 2) == 0 && (name[n - 2] == 0 || name[n - 2] == '.');
    return strcmp(name, f) == 0;
}

/* An authors filter being built: the normalised names asked for and the
 * bitmap of the papers that carry one. */
typedef struct author_ctx {
    sx_shard *s;
    const char *const *names;
    int n;
    uint64_t *bits;
    size_t words;
} author_ctx;

static int author_hit(void *ctx, uint32_t node) {
    author_ctx *a = ctx;
    const char *authors;
    if ((size_t)node / 64 >= a->words || !sx_index_is_live(a->s->ix, node)) return 0;
    if (node_field(a->s, node, rec_of(a->s, node), 3, &authors, NULL) == 0 &&
        sx_kw_authors_match(authors, a->names, a->n))
        a->bits[node >> 6] |= 1ull << (node & 63);
    return 0;
}

/* The papers by any of o's authors into bits (words long). Caller holds
 * map_lock for reading. 0 or SX_ENOMEM. */
/* The normalised names of o's authors (sx_kw_author_norm; names without
 * a surname left out), for sx_kw_authors_match. */
typedef struct norm_names {
    char *buf;
    const char **names;
    int n;
} norm_names;

/* Fills *nn (OUT) from o; 0 or SX_ENOMEM. Free with norm_names_free. */
static int norm_names_init(const sx_search_opts *o, norm_names *nn) {
    nn->n = 0;
    nn->buf = sx_index_malloc((size_t)o->n_authors * SX_KW_NAME_MAX);
    nn->names = sx_index_malloc((size_t)o->n_authors * sizeof *nn->names);
    if (!nn->buf || !nn->names) {
        sx_index_free_mem(nn->buf);
        sx_index_free_mem(nn->names);
        return SX_ENOMEM;
    }
    for (int i = 0; i < o->n_authors; i++) {
        char *out = nn->buf + (size_t)nn->n * SX_KW_NAME_MAX;
        const char *z = o->authors[i] ? o->authors[i] : "";
        if (sx_kw_author_norm(z, strlen(z), out, SX_KW_NAME_MAX) > 0) nn->names[nn->n++] = out;
    }
    return 0;
}

static void norm_names_free(norm_names *nn) {
    sx_index_free_mem(nn->buf);
    sx_index_free_mem(nn->names);
}

static int author_filter(sx_shard *s, const sx_search_opts *o, uint64_t *bits, size_t words) {
    norm_names nn;
    if (norm_names_init(o, &nn) < 0) return SX_ENOMEM;
    author_ctx a = {s, nn.names, nn.n, bits, words};
    /* the candidates: papers with the surname (the lists take the name as
     * written), each confirmed against every name asked for */
    for (int i = 0; i < o->n_authors; i++)
        if (o->authors[i]) sx_kw_index_author_docs(s->kw, o->authors[i], author_hit, &a);
    norm_names_free(&nn);
    return 0;
}

/* The filter of o as a bitmap over node slots into *allow (index
 * allocator), with its size in bits and its population; *allow stays NULL
 * when o filters nothing. Every constraint given must hold: one of the
 * categories (codes or "X.*" patterns), the date range, one of the authors.
 * 0, SX_EINVAL (a bad date) or SX_ENOMEM. */
static int build_filter(sx_shard *s, const sx_search_opts *o, uint64_t **allow, size_t *bits,
                        size_t *count) {
    *allow = NULL;
    *bits = *count = 0;
    int dated = (o->date_from && *o->date_from) || (o->date_to && *o->date_to);
    if (o->n_categories == 0 && !dated && o->n_authors == 0) return 0;
    uint32_t lo = 0, hi = UINT32_MAX;
    if (o->date_from && *o->date_from && sx_date_parse(o->date_from, &lo) < 0) return SX_EINVAL;
    if (o->date_to && *o->date_to && sx_date_parse(o->date_to, &hi) < 0) return SX_EINVAL;
    pthread_rwlock_rdlock(&s->map_lock);
    uint32_t slots = sx_index_slots(s->ix);
    size_t words = (size_t)slots / 64 + 1;
    uint64_t *a = sx_index_calloc(words, sizeof *a);
    uint64_t *m = o->n_authors > 0 ? sx_index_calloc(words, sizeof *m) : NULL;
    int rc = a && (m || o->n_authors == 0) ? 0 : SX_ENOMEM;
    if (rc == 0 && o->n_categories > 0) {
        for (size_t c = 0; c < s->n_cats; c++) {
            int hit = 0;
            for (int i = 0; i < o->n_categories && !hit; i++)
                hit = o->categories[i] && cat_matches(s->cats[c].name, o->categories[i]);
            size_t w = s->cats[c].words < words ? s->cats[c].words : words;
            for (size_t j = 0; hit && j < w; j++) a[j] |= s->cats[c].bits[j];
        }
    } else if (rc == 0) {
        for (uint32_t j = 0; j < slots; j++) a[j >> 6] |= 1ull << (j & 63);
    }
    if (rc == 0 && dated) {
        for (size_t w = 0; w < words; w++)
            for (uint64_t b = a[w]; b; b &= b - 1) {
                size_t node = w * 64 + (size_t)__builtin_ctzll(b);
                uint32_t d = node < s->dates_cap ? s->dates[node] : 0;
                if (d == 0 || d < lo || d > hi) a[w] &= ~(1ull << (node & 63));
            }
    }
    if (rc == 0 && m) {
        rc = author_filter(s, o, m, words);
        for (size_t w = 0; w < words; w++) a[w] &= m[w];
    }
    pthread_rwlock_unlock(&s->map_lock);
    sx_index_free_mem(m);
    if (rc < 0) {
        sx_index_free_mem(a);
        return rc;
    }
    size_t n = 0;
    for (size_t j = 0; j < words; j++) n += (size_t)__builtin_popcountll(a[j]);
    *allow = a;
    *bits = words * 64;
    *count = n;
    return 0;
}

/* Fills hit i from node (id, score, the document when asked). Caller holds
 * map_lock for reading. 0 or the copy's failure. */
static int fill_hit(sx_shard *s, const sx_search_opts *o, sx_hit *h, uint32_t node, float score) {
    const char *z = "";
    uint32_t len = 0;
    const uint8_t *r = rec_of(s, node);
    h->doc = NULL;
    if (node_field(s, node, r, 0, &z, &len) < 0 || len > 63) return SX_ECORRUPT;
    memcpy(h->id, z, len);
    h->id[len] = 0;
    h->score = score;
    h->doc = NULL;
    int rc = 0;
    if (o->with_docs) h->doc = copy_doc(s, node, r, &rc);
    return rc;
}

typedef struct allow_ctx {
    const uint64_t *bits;
    size_t n;
} allow_ctx;

static int allowed(void *ctx, uint32_t slot) {
    const allow_ctx *a = ctx;
    return slot < a->n && (a->bits[slot >> 6] >> (slot & 63) & 1);
}

/* SX_MODE_KEYWORD: BM25F over the keyword index. */
static int keyword_search(sx_shard *s, const sx_search_opts *o, const uint64_t *allow, size_t bits,
                          sx_hit *hits, int *n_hits, sx_err *err) {
    sx_kw_hit stack[64];
    sx_kw_hit *kh = o->k <= 64 ? stack : sx_index_malloc((size_t)o->k * sizeof *kh);
    if (!kh) return sx_err_set(err, SX_ENOMEM, "search: out of memory");
    allow_ctx ac = {allow, bits};
    sx_kw_query q = {.k = o->k, .filter = allow ? allowed : NULL, .filter_ctx = &ac};
    int n = 0, rc;
    pthread_rwlock_rdlock(&s->map_lock);
    rc = sx_kw_index_search(s->kw, o->text, &q, kh, &n, err);
    int filled = 0;
    if (rc < 0) n = 0;
    for (int r = 0; r == 0 && filled < n; filled++)
        if ((r = fill_hit(s, o, &hits[filled], kh[filled].slot, kh[filled].score)) < 0)
            rc = sx_err_set(err, r, "search: %s", r == SX_ENOMEM ? "out of memory" : "a hit's record is corrupt");
    pthread_rwlock_unlock(&s->map_lock);
    if (kh != stack) sx_index_free_mem(kh);
    if (rc < 0) {
        sx_hits_release(hits, filled);
        return rc;
    }
    *n_hits = n;
    return 0;
}

typedef struct dated_node {
    uint32_t date, node; /* date: the rank key, higher first */
    const char *id;
} dated_node;

/* Highest key first, then by id. */
static int dated_cmp(const void *a, const void *b) {
    const dated_node *x = a, *y = b;
    if (x->date != y->date) return x->date > y->date ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* An authors search's score: how well the names match (sx_kw_authors_match:
 * 2 written the same, 1 compatible), then the update date's day number
 * (below 4,000,000 for every year to 9999); exact in a float. */
#define AUTHOR_RANK_STEP 4000000u

/* SX_MODE_AUTHORS: the papers of the filter (which holds the authors),
 * papers with a name written as asked first, then newest first; the score
 * is match * AUTHOR_RANK_STEP + the update date (sx_date_parse's days). */
static int authors_search(sx_shard *s, const sx_search_opts *o, const uint64_t *allow, size_t bits,
                          size_t count, sx_hit *hits, int *n_hits, sx_err *err) {
    dated_node *a = sx_index_malloc((count ? count : 1) * sizeof *a);
    norm_names nn;
    if (!a || norm_names_init(o, &nn) < 0) {
        sx_index_free_mem(a);
        return sx_err_set(err, SX_ENOMEM, "search: out of memory");
    }
    int rc = 0;
    size_t n = 0;
    pthread_rwlock_rdlock(&s->map_lock);
    for (size_t w = 0; w < bits / 64 && n < count; w++)
        for (uint64_t b = allow[w]; b && n < count; b &= b - 1) {
            uint32_t node = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(b));
            const char *id, *authors;
            if (!sx_index_is_live(s->ix, node) || !sx_kw_index_contains(s->kw, node)) continue;
            if (node_field(s, node, rec_of(s, node), 0, &id, NULL) < 0 ||
                node_field(s, node, rec_of(s, node), 3, &authors, NULL) < 0)
                continue;
            uint32_t match = (uint32_t)sx_kw_authors_match(authors, nn.names, nn.n);
            a[n++] = (dated_node){match * AUTHOR_RANK_STEP + (node < s->dates_cap ? s->dates[node] : 0), node, id};
        }
    qsort(a, n, sizeof *a, dated_cmp);
    int k = n < (size_t)o->k ? (int)n : o->k, filled = 0;
    for (; rc == 0 && filled < k; filled++) rc = fill_hit(s, o, &hits[filled], a[filled].node, (float)a[filled].date);
    pthread_rwlock_unlock(&s->map_lock);
    sx_index_free_mem(a);
    norm_names_free(&nn);
    if (rc < 0) {
        sx_hits_release(hits, filled);
        return sx_err_set(err, rc, "search: %s", rc == SX_ENOMEM ? "out of memory" : "a hit's record is corrupt");
    }
    *n_hits = k;
    return 0;
}

int sx_shard_search(sx_shard *s, const float *q, const sx_search_opts *o, sx_hit *hits,
                    int *n_hits, sx_search_stats *stats, sx_err *err) {
    *n_hits = 0;
    if (!o) return sx_err_set(err, SX_EINVAL, "search: no options");
    if (o->mode == SX_MODE_VECTOR && !q) return sx_err_set(err, SX_EINVAL, "search: no query vector");
    if (o->mode == SX_MODE_KEYWORD && !o->text) return sx_err_set(err, SX_EINVAL, "search: no query text");
    if (o->mode == SX_MODE_AUTHORS && o->n_authors < 1)
        return sx_err_set(err, SX_EINVAL, "search: an authors search needs at least one name");
    if (o->mode < SX_MODE_VECTOR || o->mode > SX_MODE_AUTHORS)
        return sx_err_set(err, SX_EINVAL, "search: unknown mode %d", o->mode);
    if (o->k < 1 || o->k > 10000) return sx_err_set(err, SX_EINVAL, "search: k %d not in 1..10000", o->k);
    if (o->n_categories < 0 || (o->n_categories > 0 && !o->categories))
        return sx_err_set(err, SX_EINVAL, "search: bad category list");
    if (o->n_authors < 0 || o->n_authors > SX_AUTHOR_NAMES_MAX || (o->n_authors > 0 && !o->authors))
        return sx_err_set(err, SX_EINVAL, "search: bad author list (at most %d names)", SX_AUTHOR_NAMES_MAX);
    uint64_t *allow = NULL;
    size_t bits = 0, count = 0;
    int rc = build_filter(s, o, &allow, &bits, &count);
    if (rc == SX_EINVAL) return sx_err_set(err, rc, "search: a date bound is not a valid YYYY-MM-DD date");
    if (rc < 0) return sx_err_set(err, rc, "search: out of memory");
    if (stats) *stats = (sx_search_stats){.selectivity = 1};
    if (o->mode == SX_MODE_KEYWORD) {
        rc = keyword_search(s, o, allow, bits, hits, n_hits, err);
        sx_index_free_mem(allow);
        return rc;
    }
    if (o->mode == SX_MODE_AUTHORS) {
        rc = authors_search(s, o, allow, bits, count, hits, n_hits, err);
        sx_index_free_mem(allow);
        return rc;
    }
    sx_index_hit stack_hits[64];
    sx_index_hit *ih = o->k <= 64 ? stack_hits : sx_index_malloc((size_t)o->k * sizeof *ih);
    if (!ih) {
        sx_index_free_mem(allow);
        return sx_err_set(err, SX_ENOMEM, "search: out of memory");
    }
    hit_ctx hc = {s, hits, o->with_docs, 0, 0};
    sx_index_query iq = {.k = o->k, .ef = o->ef, .rerank = -1, .on_hit = on_hit, .on_hit_ctx = &hc,
                         .allow = allow, .allow_bits = bits, .allow_count = count};
    int n = 0;
    rc = sx_index_search(s->ix, q, &iq, ih, &n, stats, err);
    if (rc < 0 || hc.rc < 0) sx_hits_release(hits, hc.reached);
    if (rc == 0 && hc.rc < 0) {
        rc = sx_err_set(err, hc.rc, hc.rc == SX_ENOMEM ? "search: out of memory"
                                                     : "search: a hit's record is corrupt");
    }
    for (int i = 0; rc == 0 && i < n; i++) hits[i].score = ih[i].score;
    if (rc == 0) *n_hits = n;
    sx_index_free_mem(allow);
    if (ih != stack_hits) sx_index_free_mem(ih);
    return rc;
}

size_t sx_shard_count(sx_shard *s) {
    pthread_rwlock_rdlock(&s->map_lock);
    size_t n = s->used;
    pthread_rwlock_unlock(&s->map_lock);
    return n;
}

sx_shard_params sx_shard_get_params(sx_shard *s) { return s->p; }

int sx_shard_stats(sx_shard *s, struct sx_shard_stats *out) {
    memset(out, 0, sizeof *out);
    sx_index_stats is;
    sx_index_get_stats(s->ix, &is);
    pthread_rwlock_rdlock(&s->map_lock);
    out->count = s->used;
    out->categories = s->n_cats;
    for (size_t i = 0; i < s->n_cats; i++) out->bytes_bitmaps += s->cats[i].words * 8 + strlen(s->cats[i].name) + 1;
    out->bytes_idmap = s->cap * (sizeof(uint64_t) + sizeof(uint32_t));
    sx_kw_stats ks;
    sx_kw_index_stats(s->kw, &ks);
    out->bytes_keyword = ks.bytes_postings + ks.bytes_dict + ks.bytes_docs + s->dates_cap * sizeof *s->dates;
    pthread_rwlock_unlock(&s->map_lock);
    out->deleted = is.deleted;
    out->bytes_vectors = is.bytes_vectors;
    out->bytes_fp32 = is.bytes_fp32;
    out->bytes_fp32_mapped = is.bytes_fp32_mapped;
    out->bytes_graph = is.bytes_graph;
    out->bytes_documents = atomic_load(&s->doc_bytes);
    size_t blk = (size_t)(s->docs_hi - s->docs_lo);
    if (s->docs_owned) out->bytes_documents += blk;
    else out->bytes_documents_mapped = blk;
    out->levels = is.max_level + 1;
    memcpy(out->nodes_per_level, is.nodes_per_level, sizeof out->nodes_per_level);
    return 0;
}

/* ---- canonical walks ---- */

/* A live paper for the digest: its id and node. */
typedef struct id_node {
    const char *id;
    uint32_t node;
} id_node;

/* qsort order of id_node: by id, bytewise. */
static int id_node_cmp(const void *a, const void *b) {
    return strcmp(((const id_node *)a)->id, ((const id_node *)b)->id);
}

int sx_shard_digest(sx_shard *s, void (*add)(void *ctx, const void *buf, size_t len), void *ctx) {
    pthread_rwlock_rdlock(&s->map_lock);
    size_t n = 0;
    id_node *a = sx_index_malloc((s->used ? s->used : 1) * sizeof *a);
    float *v = sx_index_malloc((size_t)s->p.dim * sizeof *v);
    uint8_t *le = sx_index_malloc((size_t)s->p.dim * 4);
    int rc = a && v && le ? 0 : SX_ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->cap; i++) {
        uint32_t node = s->nodes[i];
        if (node == EMPTY || node == TOMB) continue;
        const char *z;
        if (node_field(s, node, rec_of(s, node), 0, &z, NULL) < 0) rc = SX_ECORRUPT;
        else a[n++] = (id_node){z, node};
    }
    if (rc == 0) qsort(a, n, sizeof *a, id_node_cmp);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint32_t node = a[i].node;
        const uint8_t *r = rec_of(s, node);
        add(ctx, a[i].id, strlen(a[i].id));
        rc = sx_index_get_vector(s->ix, node, v, NULL);
        if (rc == 0) {
            sx_le32_copy(le, v, (size_t)s->p.dim);
            add(ctx, le, (size_t)s->p.dim * 4);
        }
        if (rc == 0) add(ctx, r, rec_bound(s, node, r));
    }
    pthread_rwlock_unlock(&s->map_lock);
    sx_index_free_mem(a);
    sx_index_free_mem(v);
    sx_index_free_mem(le);
    return rc;
}

int sx_shard_each(sx_shard *s, int (*fn)(void *ctx, const sx_doc *d, const float *vec, int level),
                  void *ctx, sx_err *err) {
    float *v = sx_index_malloc((size_t)s->p.dim * sizeof *v);
    if (!v) return sx_err_set(err, SX_ENOMEM, "shard: out of memory");
    pthread_rwlock_rdlock(&s->save_lock);
    pthread_rwlock_rdlock(&s->map_lock);
    uint32_t n = sx_index_slots(s->ix);
    int rc = 0;
    for (uint32_t node = 0; rc == 0 && node < n; node++) {
        const uint8_t *r = rec_of(s, node);
        if (!r || !sx_index_is_live(s->ix, node)) continue;
        const char *f[NF];
        for (int i = 0; i < NF && rc == 0; i++)
            if (node_field(s, node, r, i, &f[i], NULL) < 0)
                rc = sx_err_set(err, SX_ECORRUPT, "shard: record of node %u is corrupt", node);
        /* a live node whose id maps elsewhere is an old version in flight */
        size_t at = rc == 0 ? map_find(s, f[0], hash_id(f[0])) : SIZE_MAX;
        if (rc < 0 || at == SIZE_MAX || s->nodes[at] != node) continue;
        sx_doc d = {f[0], f[1], f[2], f[3], f[4], f[5]};
        rc = sx_index_get_vector(s->ix, node, v, err);
        if (rc == 0) rc = fn(ctx, &d, v, sx_index_node_level(s->ix, node));
    }
    pthread_rwlock_unlock(&s->map_lock);
    pthread_rwlock_unlock(&s->save_lock);
    sx_index_free_mem(v);
    return rc;
}

/* ---- save ---- */

int sx_shard_save(sx_shard *s, sx_write_fn w, void *ctx, sx_err *err) {
    sx_sink out = {w, ctx, 0, 0, 0};
    pthread_rwlock_wrlock(&s->save_lock);
    pthread_rwlock_rdlock(&s->map_lock);
    uint32_t n = sx_index_slots(s->ix);
    sx_sink_begin(&out, TAG_HEAD, 4 * 9);
    uint32_t head[9] = {FORMAT_VERSION, (uint32_t)s->p.dim, (uint32_t)s->p.M,
                        (uint32_t)s->p.ef_construction, (uint32_t)s->p.ef_search,
                        (uint32_t)s->p.storage, (uint32_t)s->p.rerank, n, (uint32_t)s->n_cats};
    for (int i = 0; i < 9; i++) sx_sink_u32(&out, head[i]);
    sx_sink_end(&out);
    int rc = out.error ? 0 : sx_index_save(s->ix, &out, err);
    /* ids: u8 length + bytes per slot (0: no record) */
    uint64_t ids_len = 0, docs_len = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *r = rec_of(s, i);
        uint32_t len = 0;
        const char *z;
        if (node_field(s, i, r, 0, &z, &len) == 0) docs_len += rec_bound(s, i, r);
        else if (r) rc = sx_err_set(err, SX_ECORRUPT, "shard: record of node %u is corrupt", i);
        ids_len += 1 + len;
    }
    if (rc == 0) {
        sx_sink_begin(&out, TAG_IDS, ids_len);
        for (uint32_t i = 0; i < n && !out.error; i++) {
            const uint8_t *r = rec_of(s, i);
            const char *z = "";
            uint32_t len = 0;
            if (node_field(s, i, r, 0, &z, &len) < 0) z = "", len = 0;
            uint8_t b = (uint8_t)len;
            sx_sink_write(&out, &b, 1);
            sx_sink_write(&out, z, len);
        }
        sx_sink_end(&out);
        /* documents: offsets (n + 1) then the records */
        sx_sink_begin(&out, TAG_DOCS, 8 * ((uint64_t)n + 1) + docs_len);
        uint64_t at = 0;
        for (uint32_t i = 0; i <= n && !out.error; i++) {
            sx_sink_u64(&out, at);
            const uint8_t *r = i < n ? rec_of(s, i) : NULL;
            if (r) at += rec_bound(s, i, r);
        }
        for (uint32_t i = 0; i < n && !out.error; i++) {
            const uint8_t *r = rec_of(s, i);
            if (r) sx_sink_write(&out, r, rec_bound(s, i, r));
        }
        sx_sink_end(&out);
        /* categories: name, then the bitmap */
        uint64_t cats_len = 4;
        for (size_t i = 0; i < s->n_cats; i++) cats_len += 4 + strlen(s->cats[i].name) + 8 + 8 * s->cats[i].words;
        sx_sink_begin(&out, TAG_CATS, cats_len);
        sx_sink_u32(&out, (uint32_t)s->n_cats);
        for (size_t i = 0; i < s->n_cats && !out.error; i++) {
            size_t len = strlen(s->cats[i].name);
            sx_sink_u32(&out, (uint32_t)len);
            sx_sink_write(&out, s->cats[i].name, len);
            sx_sink_u64(&out, s->cats[i].words);
            for (size_t j = 0; j < s->cats[i].words; j++) sx_sink_u64(&out, s->cats[i].bits[j]);
        }
        sx_sink_end(&out);
        /* update dates by node, then the keyword index (keyword.h) */
        sx_sink_begin(&out, TAG_DATES, 4 * (uint64_t)n);
        for (uint32_t i = 0; i < n && !out.error; i++) sx_sink_u32(&out, i < s->dates_cap ? s->dates[i] : 0);
        sx_sink_end(&out);
        if (!out.error) rc = sx_kw_index_save(s->kw, &out, err);
    }
    pthread_rwlock_unlock(&s->map_lock);
    pthread_rwlock_unlock(&s->save_lock);
    if (rc < 0) return rc;
    if (out.error)
        return sx_err_set(err, out.error, "shard: write failed at byte %llu (%s)",
                          (unsigned long long)out.offset, sx_strerror(out.error));
    return 0;
}

/* ---- load ---- */

static int bad(sx_err *err, const char *what) {
    return sx_err_set(err, SX_ECORRUPT, "shard snapshot: %s", what);
}

static int load_head(sx_source *src, sx_shard_params *p, uint32_t *n, uint32_t *ncats, uint32_t *version,
                     sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_HEAD, 0, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "shard snapshot");
    uint32_t h[9];
    uint64_t pos = 0;
    for (int i = 0; i < 9 && rc == 0; i++) rc = sx_section_u32(&sec, &pos, &h[i]);
    sx_section_release(&sec);
    if (rc < 0 || pos != sec.len) return bad(err, "header has the wrong size");
    if (h[0] < 1 || h[0] > FORMAT_VERSION)
        return sx_err_set(err, SX_EUNSUPPORTED, "shard snapshot: format version %u, this build reads 1 to %d",
                          h[0], FORMAT_VERSION);
    *version = h[0];
    *p = (sx_shard_params){(int)h[1], (int)h[2], (int)h[3], (int)h[4], (int)h[5], (int)h[6]};
    *n = h[7];
    *ncats = h[8];
    return 0;
}

static int load_ids(sx_source *src, sx_shard *s, uint32_t n, sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_IDS, 0, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "shard snapshot");
    uint64_t pos = 0;
    char id[64];
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (pos >= sec.len) {
            rc = bad(err, "id table too short");
            break;
        }
        uint8_t len = sec.data[pos++];
        if (len > 63 || sec.len - pos < len) {
            rc = bad(err, "bad id length");
            break;
        }
        memcpy(id, sec.data + pos, len);
        id[len] = 0;
        pos += len;
        int live = sx_index_is_live(s->ix, i);
        if (live && (len == 0 || memchr(id, 0, len))) rc = bad(err, "live node without a valid id");
        else if (live && map_find(s, id, hash_id(id)) != SIZE_MAX) rc = bad(err, "duplicate id");
        else if (live && map_reserve(s) < 0) rc = sx_err_set(err, SX_ENOMEM, "shard: out of memory loading");
        else if (live) map_place(s, hash_id(id), i);
    }
    if (rc == 0 && pos != sec.len) rc = bad(err, "id table has extra bytes");
    sx_section_release(&sec);
    return rc;
}

/* Checks record r of length len: header and every field in bounds. */
static int rec_check(const uint8_t *r, uint64_t len) {
    if (len < 4 + NF * 5) return -1;
    const char *z;
    return rec_field(r, len, NF - 1, &z, NULL);
}

static int load_docs(sx_source *src, sx_shard *s, uint32_t n, int lazy, sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_DOCS, 1, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "shard snapshot");
    uint64_t head = 8 * ((uint64_t)n + 1);
    if (sec.len < head) {
        sx_section_release(&sec);
        return bad(err, "document section too short");
    }
    const uint8_t *blob = sec.data + head;
    uint64_t blen = sec.len - head, prev = sx_le64_get(sec.data);
    if (prev != 0) rc = bad(err, "document offsets do not start at 0");
    /* the structure always; each record's fields only when not lazy (so a
     * lazy mapped load does not page the documents in) */
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint64_t next = sx_le64_get(sec.data + 8 * ((uint64_t)i + 1));
        if (next < prev || next > blen) {
            rc = bad(err, "document offsets out of order or out of bounds");
            break;
        }
        int has = next > prev;
        if (has && (next - prev < 8 || (!lazy && rec_check(blob + prev, next - prev) < 0))) {
            rc = bad(err, "corrupt document record");
            break;
        }
        if (has) sx_index_set_payload(s->ix, i, (uint64_t)(uintptr_t)(blob + prev));
        prev = next;
    }
    if (rc == 0 && prev != blen) rc = bad(err, "document section has extra bytes");
    if (rc == 0) {
        s->docs_lo = blob;
        s->docs_hi = blob + blen;
        s->docs_owned = sec.owned;
        s->doc_offsets = sec.data;
        s->n_doc_offsets = n;
        sec.owned = NULL;
    } else {
        for (uint32_t i = 0; i < n; i++) sx_index_set_payload(s->ix, i, 0);
    }
    sx_section_release(&sec);
    return rc;
}

static int load_cats(sx_source *src, sx_shard *s, uint32_t n, uint32_t ncats, sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_CATS, 0, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "shard snapshot");
    uint64_t pos = 0;
    uint32_t cnt;
    if (sx_section_u32(&sec, &pos, &cnt) < 0 || cnt != ncats) rc = bad(err, "category count");
    for (uint32_t i = 0; i < cnt && rc == 0; i++) {
        uint32_t len;
        uint64_t words;
        if (sx_section_u32(&sec, &pos, &len) < 0 || len == 0 || len > MAX_CAT || sec.len - pos < len) {
            rc = bad(err, "bad category name");
            break;
        }
        const char *name = (const char *)sec.data + pos;
        pos += len;
        if (sx_section_u64(&sec, &pos, &words) < 0 || words > (sec.len - pos) / 8 ||
            memchr(name, 0, len) || cat_find(s, name, len)) {
            rc = bad(err, "bad category bitmap");
            break;
        }
        if (cat_prepare(s, name, len, words ? (uint32_t)(words * 64 - 1) : 0) < 0) {
            rc = sx_err_set(err, SX_ENOMEM, "shard: out of memory loading");
            break;
        }
        category *c = &s->cats[s->n_cats - 1];
        for (uint64_t j = 0; j < words; j++) {
            uint64_t v;
            sx_section_u64(&sec, &pos, &v);
            c->bits[j] = v;
        }
        /* only live nodes may carry bits */
        for (uint64_t j = 0; j < words * 64 && rc == 0; j++)
            if ((c->bits[j >> 6] >> (j & 63) & 1) && (j >= n || !sx_index_is_live(s->ix, (uint32_t)j)))
                rc = bad(err, "category bit on a node that is not live");
    }
    if (rc == 0 && pos != sec.len) rc = bad(err, "category section has extra bytes");
    sx_section_release(&sec);
    return rc;
}

/* Version 2: the dates and the keyword index, checked against the nodes. */
static int load_text(sx_source *src, sx_shard *s, uint32_t n, sx_err *err) {
    sx_section sec;
    int rc = sx_source_section(src, TAG_DATES, 0, &sec, err);
    if (rc < 0) return sx_err_prefix(err, "shard snapshot");
    if (sec.len != 4 * (uint64_t)n) rc = bad(err, "date table has the wrong size");
    if (rc == 0 && n > 0 && dates_reserve(s, n - 1) < 0) rc = sx_err_set(err, SX_ENOMEM, "shard: out of memory loading");
    uint64_t pos = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) sx_section_u32(&sec, &pos, &s->dates[i]);
    sx_section_release(&sec);
    if (rc == 0) rc = sx_kw_index_load(src, n, &s->kw, err);
    if (rc < 0) return sx_err_prefix(err, "shard snapshot");
    for (uint32_t i = 0; i < n; i++)
        if (sx_kw_index_contains(s->kw, i) != sx_index_is_live(s->ix, i))
            return bad(err, "keyword index does not hold exactly the live papers");
    return 0;
}

/* Version 1 (no text sections): indexes every live paper's record. */
static int build_text(sx_shard *s, uint32_t n, sx_err *err) {
    sx_kw_params kp = sx_kw_params_default();
    int rc = sx_kw_index_create(&kp, &s->kw, err);
    if (rc == 0 && n > 0 && dates_reserve(s, n - 1) < 0) rc = sx_err_set(err, SX_ENOMEM, "shard: out of memory loading");
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const char *f[NF];
        const uint8_t *r = rec_of(s, i);
        if (!r || !sx_index_is_live(s->ix, i)) continue;
        for (int j = 0; j < NF && rc == 0; j++)
            if (node_field(s, i, r, j, &f[j], NULL) < 0) rc = bad(err, "corrupt document record");
        if (rc == 0 && text_add(s, i, f[1], f[2], f[3], f[4]) < 0)
            rc = sx_err_set(err, SX_ENOMEM, "shard: out of memory indexing keywords");
    }
    return rc;
}

static int load_any(sx_source *src, int lazy, sx_shard **out, sx_err *err) {
    *out = NULL;
    sx_shard_params p;
    uint32_t n = 0, ncats = 0, version = 0;
    int rc = load_head(src, &p, &n, &ncats, &version, err);
    if (rc < 0) return rc;
    sx_index *ix;
    rc = sx_index_load(src, &ix, err);
    if (rc < 0) return sx_err_prefix(err, "shard snapshot");
    sx_index_params ip = sx_index_get_params(ix);
    if (ip.dim != p.dim || ip.M != p.M || ip.storage != p.storage || sx_index_slots(ix) != n) {
        sx_index_free(ix);
        return bad(err, "index does not match the shard header");
    }
    sx_shard *s;
    rc = shard_new(&p, ix, &s, err);
    if (rc < 0) return rc;
    rc = load_ids(src, s, n, err);
    if (rc == 0) rc = load_docs(src, s, n, lazy, err);
    /* every node that is not a free slot must have a record */
    for (uint32_t i = 0; i < n && rc == 0; i++)
        if (sx_index_is_live(s->ix, i) && !rec_of(s, i)) rc = bad(err, "live node without a document");
    if (rc == 0) rc = load_cats(src, s, n, ncats, err);
    if (rc == 0) rc = version >= 2 ? load_text(src, s, n, err) : build_text(s, n, err);
    if (rc < 0) {
        sx_shard_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sx_shard_load(sx_read_fn r, void *ctx, sx_shard **out, sx_err *err) {
    sx_source src = {r, ctx, NULL, 0, 0, 1, 0};
    return load_any(&src, 0, out, err);
}

int sx_shard_load_mapped(const void *base, size_t len, int flags, sx_shard **out, sx_err *err) {
    sx_source src = {NULL, NULL, base, len, 0, !(flags & SX_LOAD_LAZY), !!(flags & SX_LOAD_FILE)};
    return load_any(&src, !!(flags & SX_LOAD_LAZY), out, err);
}

void sx_shard_set_backing(sx_shard *s, const void *base, sx_cold_read_fn read,
                          void (*release)(void *ctx), void *ctx) {
    if (read) sx_index_set_cold_reader(s->ix, read, ctx, base);
    s->backing_release = release;
    s->backing_ctx = ctx;
}
