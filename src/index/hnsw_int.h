/*
 * hnsw_int.h - the HNSW index's internals, shared by hnsw.c, hnsw_reach.c,
 * hnsw_vacuum.c and hnsw_io.c and by nothing else: the struct bodies, the
 * per-node accessors and the functions one file calls in another (prefixed
 * hnsw_). index.h is the API; the design is in the essays of those files.
 */
#ifndef SX_HNSW_INT_H
#define SX_HNSW_INT_H

#include "index.h"

#include <pthread.h>
#include <stdatomic.h>

#define CHUNK_SHIFT 12
#define CHUNK (1u << CHUNK_SHIFT)
#define CHUNK_MASK (CHUNK - 1)
#define DIR_SIZE 65536u
#define MAX_SLOTS ((uint64_t)DIR_SIZE * CHUNK - 1)
#define NSTRIPES 1024
#define NONE UINT32_MAX
#define MAX_LEVEL 15
#define RANK_MID 0x80000000u /* entry points rank down from here, other nodes up */
#define RANK_LOW_LIMIT 0x10000000u  /* sx_index_maintain ranks afresh past these */
#define RANK_HIGH_LIMIT 0xf0000000u

enum { F_PUBLISHED = 1, F_DELETED = 2, F_FREE = 4 };

typedef struct chunk {
    _Atomic uint32_t *links0; /* CHUNK x (1 + M0): count, ids */
    uint32_t *rank;           /* the node's place in the anchor order */
    _Atomic uint32_t *anchor; /* the node whose level-0 link anchors it, or NONE */
    uint8_t *codes;           /* CHUNK x code_size */
    _Atomic uint8_t *flags;   /* F_* */
    uint8_t *level;
    _Atomic uint32_t **upper; /* level x (1 + M) per node; NULL on level 0 */
    const float **f32;        /* SQ8: the fp32 vector (heap block or in place) */
    uint64_t *payload;
} chunk;

typedef struct pair {
    float d;
    uint32_t id;
} pair;

/* Per-search scratch, pooled. */
typedef struct sctx {
    uint32_t *mark;
    size_t mark_cap;
    uint32_t epoch;
    pair *cand, *res;
    size_t cand_cap, res_cap, n_cand, n_res;
    float *tmp;      /* dim floats: a node decoded */
    int8_t *b1, *b2; /* dim bytes each: the query and a node, quantised */
    pair *work;           /* selection scratch */
    size_t work_cap;
    uint32_t *ids;
    size_t ids_cap;
    uint32_t orphans[8]; /* nodes a pruning had to leave without an anchor */
    int n_orphans;
} sctx;

struct sx_index {
    sx_index_params p;
    int M0, code_size, sq8;
    double mult;
    const sx_kernels *k;
    chunk **dir;
    _Atomic uint32_t n_slots;
    pthread_mutex_t alloc_lock;
    uint32_t *free_ids;
    size_t n_free, cap_free;
    pthread_mutex_t stripes[NSTRIPES];
    pthread_mutex_t ep_lock;
    _Atomic uint64_t ep; /* level << 32 | node; node NONE when empty */
    pthread_rwlock_t rw, wlock;
    sx_sq8 q;
    int trained;
    _Atomic uint64_t level_ctr;
    _Atomic uint32_t rank_low, rank_high; /* next rank of an entry point, of other nodes */
    _Atomic int adopt_failed;             /* nodes left without an anchor: rerank */
    _Atomic int linked_deleted;           /* an adoption linked to a deleted node */
    _Atomic long n_live, n_deleted, n_pending;
    _Atomic int maintaining;
    sx_release_fn release;
    void *release_ctx;
    pthread_mutex_t pool_lock;
    sctx **pool;
    int n_pool, cap_pool;
    const uint8_t *f32_lo, *f32_hi; /* fp32 block not owned per node */
    void *f32_owned;                /* that block when loaded from a stream */
    int f32_in_place;               /* the block is used in place from a mapping */
    sx_cold_read_fn cold_read;      /* non-NULL: read the in-place block through it */
    void *cold_ctx;
    const uint8_t *cold_base;       /* address of offset 0 in the mapping */
    _Atomic size_t upper_bytes, f32_heap_bytes;
};

/* ---- per-node accessors ---- */

static inline chunk *ch(const sx_index *ix, uint32_t id) { return ix->dir[id >> CHUNK_SHIFT]; }

static inline uint32_t off(uint32_t id) { return id & CHUNK_MASK; }

static inline _Atomic uint32_t *links_at(const sx_index *ix, uint32_t id, int level) {
    chunk *c = ch(ix, id);
    if (level == 0) return c->links0 + (size_t)off(id) * (size_t)(1 + ix->M0);
    return c->upper[off(id)] + (size_t)(level - 1) * (size_t)(1 + ix->p.M);
}

static inline const uint8_t *code_of(const sx_index *ix, uint32_t id) {
    return ch(ix, id)->codes + (size_t)off(id) * (size_t)ix->code_size;
}

static inline uint8_t flags_of(const sx_index *ix, uint32_t id) {
    return atomic_load_explicit(&ch(ix, id)->flags[off(id)], memory_order_acquire);
}

static inline const float *f32_of(const sx_index *ix, uint32_t id) {
    return ix->sq8 ? ch(ix, id)->f32[off(id)] : (const float *)(const void *)code_of(ix, id);
}

static inline int level_cap(const sx_index *ix, int level) { return level ? ix->p.M : ix->M0; }

static inline uint32_t rank_of(const sx_index *ix, uint32_t id) {
    return ch(ix, id)->rank[off(id)];
}

static inline _Atomic uint32_t *anchor_of(const sx_index *ix, uint32_t id) {
    return &ch(ix, id)->anchor[off(id)];
}

/* 1 when u ranks below x (a link u -> x may anchor x). */
static inline int ranks_below(const sx_index *ix, uint32_t u, uint32_t x) {
    return rank_of(ix, u) < rank_of(ix, x);
}

static inline pthread_mutex_t *stripe(sx_index *ix, uint32_t id) {
    return &ix->stripes[id % NSTRIPES];
}

static inline uint64_t ep_pack(uint32_t node, int level) {
    return (uint64_t)(uint32_t)level << 32 | node;
}

/* ---- distances (smaller is closer) ---- */

typedef struct qv {
    const float *v;   /* fp32 query */
    const int8_t *q8; /* SQ8: the prepared query, quantised */
    float alpha, bias;
} qv;

static inline float qdist(const sx_index *ix, const qv *q, uint32_t id) {
    const uint8_t *c = code_of(ix, id);
    size_t d = (size_t)ix->p.dim;
    if (ix->sq8) return -(q->bias + q->alpha * (float)ix->k->dot_s8_u8(q->q8, c, d));
    if (ix->p.metric == SX_METRIC_L2) return ix->k->l2sq_f32(q->v, (const float *)(const void *)c, d);
    return -ix->k->dot_f32(q->v, (const float *)(const void *)c, d);
}

typedef struct filt {
    int on;                /* 0: every node is a result (construction) */
    const uint64_t *allow; /* optional bitmap */
    size_t allow_bits;
} filt;

/* Membership in the vacuum's set D, a bitmap over the first n slots (nodes
 * inserted since are never in it). */
typedef struct dset {
    uint64_t *bits;
    uint32_t n;
} dset;

static inline int in_set(const dset *D, uint32_t id) {
    return id < D->n && (D->bits[id >> 6] >> (id & 63) & 1);
}

/* 1 when id is among a[0..n). */
static inline int in_ids(const uint32_t *a, int n, uint32_t id) {
    for (int i = 0; i < n; i++)
        if (a[i] == id) return 1;
    return 0;
}

/* ---- hnsw.c: the core ---- */

/* Grows *arr (elements of elem bytes) to hold need; returns 0 or SX_ENOMEM. */
int hnsw_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* Orders pairs by distance, then id (for qsort). */
int hnsw_pair_cmp(const void *a, const void *b);

/* Prepares stored node id as a query (SQ8: decoded from its code). */
void hnsw_qv_node(const sx_index *ix, sctx *c, qv *q, uint32_t id);

/* A search context from the pool (NULL when out of memory); and back. */
sctx *hnsw_sctx_get(sx_index *ix);
void hnsw_sctx_put(sx_index *ix, sctx *c);

/* Greedy descent on one upper level from *cur. */
void hnsw_greedy(const sx_index *ix, sctx *c, const qv *q, uint32_t *cur, float *cur_d, int level,
                 long *evals);

/* Best-first search on one level from ep; leaves up to ef results in the
 * max-heap c->res. Returns 0 or SX_ENOMEM. */
int hnsw_search_level(const sx_index *ix, sctx *c, const qv *q, uint32_t ep, float ep_d, int ef,
                      int level, const filt *f, long *evals, long *visited);

/* Moves c->res into c->work sorted by increasing distance; returns count. */
int hnsw_take_sorted(sctx *c);

/* The neighbour-selection heuristic: keeps up to m of cand[0..n) in out. */
int hnsw_select_heuristic(const sx_index *ix, sctx *c, const pair *cand, int n, int m,
                          uint32_t *out);

/* Replaces node id's list at level with ids[0..n) (caller holds its stripe). */
void hnsw_write_links(sx_index *ix, uint32_t id, int level, const uint32_t *ids, int n);

/* The fp32 vector of id, in place or read into buf (dim floats). */
const float *hnsw_f32_get(const sx_index *ix, uint32_t id, float *buf);

/* 1 when the index owns v's heap block (not in a loaded fp32 block). */
int hnsw_owns_f32(const sx_index *ix, const float *v);

/* A new, empty chunk (NULL when out of memory). */
chunk *hnsw_chunk_new(const sx_index *ix);

/* Puts slot id on the free list (room reserved by the caller). */
void hnsw_slot_unalloc(sx_index *ix, uint32_t id);

/* ---- hnsw_reach.c: ranks and anchors ---- */

/* Makes u, whose list links to x, x's anchor when the rules allow (D: the
 * vacuum's set, or NULL). Caller holds u's stripe. */
void hnsw_take_anchor(sx_index *ix, uint32_t u, uint32_t x, const dset *D);

/* Notes x, left without an anchor, for adoption. */
void hnsw_note_orphan(sx_index *ix, sctx *c, uint32_t x);

/* Replaces u's level-0 list with sel[0..k), keeping the links that anchor
 * their targets. Caller holds u's stripe. */
void hnsw_write_links0(sx_index *ix, sctx *c, uint32_t u, const uint32_t *sel, int k, const dset *D);

/* Adds the link u -> x to u's level-0 list; 1 when u links to x, 0 when
 * nothing gives way. Caller holds u's stripe. */
int hnsw_link_into(sx_index *ix, sctx *c, uint32_t u, uint32_t x);

/* Anchors x from a nearby node of lower rank: 1 when anchored, 0 when
 * nothing could take it, or SX_ENOMEM. Holding rw shared, no stripe. */
int hnsw_adopt(sx_index *ix, sctx *c, uint32_t x);

/* Adopts every unanchored node in [0, n): how many failed, or SX_ENOMEM. */
int hnsw_adopt_orphans(sx_index *ix, sctx *c, uint32_t n);

/* Ranks every node afresh (caller holds rw exclusively, or is loading). */
int hnsw_rank_all(sx_index *ix);

/* Ranks afresh and adopts the unreached nodes (caller holds wlock shared). */
int hnsw_rerank(sx_index *ix, sctx *c);

#endif /* SX_HNSW_INT_H */
