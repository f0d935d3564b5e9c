/*
 * hnsw.c - the HNSW graph: insert, search, delete with slot reuse, filters,
 * exact search, persistence.
 *
 * What it is. A Hierarchical Navigable Small World graph (Malkov & Yashunin):
 * every node sits on level 0 and, with probability M^-l, on levels 1..l too.
 * A search walks greedily down the sparse upper levels to a good entry point,
 * then runs a best-first search with a candidate list of length ef on level
 * 0. Inserting runs the same search with ef_construction and links the new
 * node to neighbours chosen by the "heuristic" (keep a candidate only if it
 * is closer to the new node than to every neighbour already kept), which
 * keeps long edges and makes the graph navigable.
 *
 * Storage. Nodes are dense 32-bit ids. Per-node data lives in chunks of 4096
 * nodes (links of level 0, the search codes, flags, level, upper links,
 * payload, rank and anchor), found through a fixed directory of chunk pointers. The directory
 * never moves, so a growing index never copies or pauses anything, and a
 * search pays one extra, always cached load. The search representation is
 * either the fp32 vector or its SQ8 code (dim bytes, see kernels.c); with
 * SQ8 the fp32 vector is kept as well, out of the chunk (one heap block per
 * node, or in place in a mapped snapshot), and is touched only to re-rank
 * the top candidates, to answer get_vector and to learn the SQ8 ranges. A
 * mapped snapshot thus pages in the fp32 vectors it actually re-ranks.
 *
 * Concurrency. Searches and inserts run in parallel with no lock on the
 * read path: link lists are arrays of _Atomic uint32_t (count first, then
 * ids), read with acquire loads and written with release stores under a
 * striped mutex of the node being changed (1024 stripes; a thread holds two
 * only to put a node between two others, see Reachability, and takes them
 * in address order). A node's vector and metadata are written before any
 * link to it is published, so whoever reads an id through an acquire load
 * sees the node complete. A concurrent reader may see a list half rewritten; every entry is
 * still a valid node, which is all a search needs. The entry point is one
 * 64-bit atomic (level, node), changed under a mutex only by an insert that
 * raises the top level (held from before the node is visible, as the node's
 * rank depends on it) and by a vacuum.
 *
 * Two reader-writer locks order the rare global events. `rw` is held shared
 * by every search and insert and exclusively, for a moment, by (a) the SQ8
 * training, which re-encodes every code once, (b) the two grace periods of
 * a vacuum and (c) a fresh ranking (see Reachability). `wlock` is held
 * shared by inserts, deletes and vacuums and exclusively by save and
 * sx_index_check, so a snapshot is consistent while searches go on. glibc's
 * writer-preferring rwlock kind is used so a stream of searches cannot
 * starve a vacuum.
 *
 * Deletes. Deleting only sets a flag: the node is never returned again but
 * stays in the graph for navigation (as in hnswlib's markDelete). A vacuum
 * reclaims deleted nodes in four steps: (1) exclusively, for a moment, take
 * the set D of deleted nodes (inserts started later never add a link to a
 * deleted node, only, when deleted nodes are nearer to the new one than any
 * live node, links from them to it, which the repair hands on to live
 * nodes) and move the entry point off D; (2) shared, concurrently with
 * searches and inserts, rewrite every list that points into D, replacing
 * each deleted neighbour by its own live neighbours and re-selecting with
 * the heuristic (the repair FAISS and hnswlib use for updates); (3)
 * exclusively again, which waits for every search that may still hold an id
 * of D, release the slots: payload callback, fp32 block, upper links, onto
 * the free list; (4) shared again, anchor the nodes whose anchor was in D
 * (see Reachability). Later inserts reuse the slots. Rejected: hnswlib's
 * in-place replacement of a deleted node's vector, which races with readers
 * of that vector; and a per-node seqlock, which would tax every distance.
 *
 * Reachability. Pruning a full list with the heuristic, a new node's write
 * of its own list (which dropped backlinks concurrent inserts had just
 * added to it) and the vacuum's repair can take away the last link to a
 * node, and a node no walk reaches is never found again, not even by its
 * own vector: 6 to 16 of 50,000 real title embeddings after a build by two
 * threads, before this section was written. Counting in-links is not
 * enough: a few outliers that link only to each other keep their in-links
 * but lose every path from the entry point (seen on the same data).
 *
 * So each node has a rank and an anchor: one node of lower rank whose
 * level-0 list links to it, and which keeps that link (4 + 4 bytes per
 * node). Following anchors from any node lowers the rank at each step, so
 * it ends, and only at the entry point, the one node without an anchor:
 * every node is reachable from it. A new node ranks above all others; its
 * anchor is the nearest of its neighbours that kept the backlink to it. A
 * new entry point ranks below all, and anchors the old one.
 *
 * The anchor must also be near, not merely exist, or a search for the
 * node's own vector, which never expands nodes far from it, misses the
 * node. A first version counted each node's links from lower ranks and
 * let a pruning drop any but the last, which was sometimes a long link
 * (2 runs in 100 of the shard stress test missed a paper so). So a node's
 * anchor is preferably one of its own neighbours (a node in its own list):
 * a link from such a node takes the anchor over from one that is not. And
 * a new node whose nearest nodes are all deleted (a region being replaced)
 * gets links from them too, never to them (see Deletes), or its only links
 * would come from far away (1 run in 100 missed a paper so).
 *
 * Rules, all under the stripe of the list's owner u: the anchor of x is
 * set to u only while u's list links to x, and a rewrite of u's list keeps
 * every entry that u anchors (appended when the heuristic left room, else
 * in place of the farthest entry that anchors nothing), so x's anchor
 * always links to it. When every entry of a full list is an anchor, the
 * pruned one loses its anchor and is adopted: a search for its vector lists
 * nearby nodes of lower rank, and the first with room, or with an entry
 * that anchors nothing, links to it and anchors it; failing that,
 * u -> x -> y replaces u -> y for a y that u anchors and that ranks above x
 * (x anchors y then). The same adoption serves a new node whose backlinks
 * were all pruned again and, after a vacuum, every node anchored by a
 * deleted one (unless a repair linked to it from one of its neighbours,
 * which takes the anchor over). An old node whose older neighbours were
 * all deleted may find no candidate; then sx_index_maintain (or the vacuum
 * itself) ranks the whole graph afresh, breadth first from the entry
 * point, exclusively like the SQ8 training (about 40 ms per 400K nodes),
 * so every reachable node ranks below the rest, which are adopted. Loading
 * a snapshot ranks the same way (the format has no ranks; an older
 * snapshot's unreachable nodes are adopted); there a node's anchor is the
 * first node of its own list, which is nearest first, that ranks below it
 * and links back, rather than the one the walk reached it from, often over
 * a long link. sx_index_check verifies all of it. Rejected: a periodic
 * reachability scan, which leaves nodes lost until the next one.
 *
 * Filters. A search may carry a bitmap over slots. Filtered-out nodes are
 * still traversed but never enter the result list; as the result list then
 * fills more slowly the walk naturally explores further (hnswlib's approach).
 * When few nodes pass, a graph walk would visit most of the graph to find k
 * of them, so the search estimates both costs (about 24*ef/selectivity
 * distances for the walk, one per passing node for a scan) and scans the
 * passing nodes when that is cheaper; under 50% selectivity ef is raised as
 * well (ef/sqrt(selectivity), capped). The stats say which path ran.
 *
 * The visited set is an epoch-stamped array per search context (4 bytes per
 * node, reused from a pool, no clearing between searches); rejected: Redis
 * vector-sets' per-node visited bytes, which cost memory on every node.
 */
#include "index.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SHIFT 12
#define CHUNK (1u << CHUNK_SHIFT)
#define CHUNK_MASK (CHUNK - 1)
#define DIR_SIZE 65536u
#define MAX_SLOTS ((uint64_t)DIR_SIZE * CHUNK - 1)
#define NSTRIPES 1024
#define NONE UINT32_MAX
#define MAX_LEVEL 15
#define FORMAT_VERSION 1
#define RANK_MID 0x80000000u /* entry points rank down from here, other nodes up */
#define RANK_LOW_LIMIT 0x10000000u  /* sx_index_maintain ranks afresh past these */
#define RANK_HIGH_LIMIT 0xf0000000u
#ifndef PREFETCH
#define PREFETCH 4 /* codes prefetched ahead in a walk (measured: bench/ann) */
#endif

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

/* ---- small helpers ---- */

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

/* The fp32 vector of id, read into buf (dim floats) by the owner's reader
 * when it lies in a mapped snapshot (sx_index_set_cold_reader), else used in
 * place. Reading cold vectors through the file keeps them in the page cache
 * only: touched through the mapping, every re-ranked vector would stay in
 * this process's resident memory. */
static const float *f32_get(const sx_index *ix, uint32_t id, float *buf) {
    const float *v = f32_of(ix, id);
    const uint8_t *b = (const uint8_t *)v;
    if (ix->cold_read && v && b >= ix->f32_lo && b < ix->f32_hi) {
        size_t len = (size_t)ix->p.dim * sizeof(float);
        if (ix->cold_read(ix->cold_ctx, buf, len, (uint64_t)(b - ix->cold_base)) == 0) return buf;
    }
    return v;
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

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int random_level(sx_index *ix) {
    uint64_t n = atomic_fetch_add(&ix->level_ctr, 1);
    double u = (double)(splitmix64(ix->p.seed ^ (n * 0xD1B54A32D192ED03ull)) >> 11) * 0x1p-53;
    if (u <= 0) u = 0x1p-53;
    int l = (int)(-log(u) * ix->mult);
    return l > MAX_LEVEL ? MAX_LEVEL : l;
}

/* ---- heaps of (distance, id): max-heap on d ---- */

static void heap_push(pair *h, size_t *n, pair v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].d >= v.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static pair heap_pop(pair *h, size_t *n) {
    pair top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, b = i;
        float bd = last.d;
        if (l < m && h[l].d > bd) b = l, bd = h[l].d;
        if (r < m && h[r].d > bd) b = r;
        if (b == i) break;
        h[i] = h[b];
        i = b;
    }
    if (m) h[i] = last;
    return top;
}

static int pair_cmp(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *p = sx_index_realloc(*arr, nc * elem);
    if (!p) return SX_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

/* ---- query preparation and distances (smaller is closer) ---- */

typedef struct qv {
    const float *v;   /* fp32 query */
    const int8_t *q8; /* SQ8: the prepared query, quantised */
    float alpha, bias;
} qv;

/* Prepares v for distances to stored nodes; SQ8 writes the quantised query
 * to b8 (dim bytes). */
static void qv_prepare(const sx_index *ix, qv *q, const float *v, int8_t *b8) {
    q->v = v;
    q->q8 = NULL;
    q->alpha = q->bias = 0;
    if (ix->sq8) {
        ix->k->sq8_query(v, ix->q.vmin, ix->q.vscale, (size_t)ix->p.dim, b8, &q->alpha, &q->bias);
        q->q8 = b8;
    }
}

static inline float qdist(const sx_index *ix, const qv *q, uint32_t id) {
    const uint8_t *c = code_of(ix, id);
    size_t d = (size_t)ix->p.dim;
    if (ix->sq8) return -(q->bias + q->alpha * (float)ix->k->dot_s8_u8(q->q8, c, d));
    if (ix->p.metric == SX_METRIC_L2) return ix->k->l2sq_f32(q->v, (const float *)(const void *)c, d);
    return -ix->k->dot_f32(q->v, (const float *)(const void *)c, d);
}

/* Prepares stored node id as a query (SQ8: decoded from its code, so an
 * insert never touches mapped fp32 pages). */
static void qv_node(const sx_index *ix, sctx *c, qv *q, uint32_t id) {
    if (ix->sq8) {
        ix->k->sq8_decode(ix->q.vmin, ix->q.vscale, code_of(ix, id), (size_t)ix->p.dim, c->tmp);
        qv_prepare(ix, q, c->tmp, c->b2);
    } else {
        qv_prepare(ix, q, (const float *)(const void *)code_of(ix, id), NULL);
    }
}

static inline void prefetch_code(const sx_index *ix, uint32_t id) {
    const char *p = (const char *)code_of(ix, id);
    for (int o = 0; o < ix->code_size && o < 512; o += 64) __builtin_prefetch(p + o);
}

/* ---- search contexts ---- */

static void sctx_free(sctx *c) {
    if (!c) return;
    sx_index_free_mem(c->mark);
    sx_index_free_mem(c->cand);
    sx_index_free_mem(c->res);
    sx_index_free_mem(c->tmp);
    sx_index_free_mem(c->b1);
    sx_index_free_mem(c->b2);
    sx_index_free_mem(c->work);
    sx_index_free_mem(c->ids);
    sx_index_free_mem(c);
}

static sctx *sctx_get(sx_index *ix) {
    sctx *c = NULL;
    pthread_mutex_lock(&ix->pool_lock);
    if (ix->n_pool) c = ix->pool[--ix->n_pool];
    pthread_mutex_unlock(&ix->pool_lock);
    if (!c) {
        c = sx_index_calloc(1, sizeof *c);
        if (!c) return NULL;
        size_t d = (size_t)ix->p.dim;
        c->tmp = sx_index_malloc(d * sizeof(float));
        c->b1 = sx_index_malloc(d);
        c->b2 = sx_index_malloc(d);
        if (!c->tmp || !c->b1 || !c->b2) {
            sctx_free(c);
            return NULL;
        }
    }
    /* Room for every slot that exists now plus a chunk of concurrent growth;
     * ids beyond it (inserted during this search) are skipped. */
    size_t need = ((size_t)atomic_load(&ix->n_slots) + CHUNK) & ~(size_t)CHUNK_MASK;
    if (c->mark_cap < need) {
        uint32_t *m = sx_index_realloc(c->mark, need * sizeof *m);
        if (!m) {
            sctx_free(c);
            return NULL;
        }
        memset(m + c->mark_cap, 0, (need - c->mark_cap) * sizeof *m);
        c->mark = m;
        c->mark_cap = need;
    }
    return c;
}

static void sctx_put(sx_index *ix, sctx *c) {
    pthread_mutex_lock(&ix->pool_lock);
    if (ix->n_pool == ix->cap_pool) {
        int nc = ix->cap_pool ? ix->cap_pool * 2 : 8;
        sctx **np = sx_index_realloc(ix->pool, (size_t)nc * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&ix->pool_lock);
            sctx_free(c);
            return;
        }
        ix->pool = np;
        ix->cap_pool = nc;
    }
    ix->pool[ix->n_pool++] = c;
    pthread_mutex_unlock(&ix->pool_lock);
}

static void new_epoch(sctx *c) {
    if (++c->epoch == 0) {
        memset(c->mark, 0, c->mark_cap * sizeof *c->mark);
        c->epoch = 1;
    }
}

/* Marks id visited; returns 1 when it was already visited (or is too new). */
static inline int visit(sctx *c, uint32_t id) {
    if (id >= c->mark_cap || c->mark[id] == c->epoch) return 1;
    c->mark[id] = c->epoch;
    return 0;
}

/* ---- the walk ---- */

typedef struct filt {
    int on;                /* 0: every node is a result (construction) */
    const uint64_t *allow; /* optional bitmap */
    size_t allow_bits;
} filt;

static inline int eligible(const sx_index *ix, const filt *f, uint32_t id) {
    if (!f->on) return 1;
    if ((flags_of(ix, id) & (F_PUBLISHED | F_DELETED)) != F_PUBLISHED) return 0;
    if (!f->allow) return 1;
    return id < f->allow_bits && (f->allow[id >> 6] >> (id & 63) & 1);
}

/* Copies node id's list at level into c->ids; returns its length. */
static int read_links(const sx_index *ix, sctx *c, uint32_t id, int level) {
    _Atomic uint32_t *l = links_at(ix, id, level);
    uint32_t n = atomic_load_explicit(&l[0], memory_order_acquire);
    uint32_t cap = (uint32_t)level_cap(ix, level);
    if (n > cap) n = cap;
    for (uint32_t j = 0; j < n; j++) c->ids[j] = atomic_load_explicit(&l[1 + j], memory_order_acquire);
    return (int)n;
}

/* Greedy descent on one upper level from *cur. */
static void greedy(const sx_index *ix, sctx *c, const qv *q, uint32_t *cur, float *cur_d,
                   int level, long *evals) {
    for (int changed = 1; changed;) {
        changed = 0;
        int n = read_links(ix, c, *cur, level);
        for (int j = 0; j < n; j++) {
            uint32_t id = c->ids[j];
            if (id >= atomic_load_explicit(&((sx_index *)ix)->n_slots, memory_order_relaxed))
                continue;
            float d = qdist(ix, q, id);
            (*evals)++;
            if (d < *cur_d) {
                *cur_d = d;
                *cur = id;
                changed = 1;
            }
        }
    }
}

/* Best-first search on one level from ep; leaves up to ef results in the
 * max-heap c->res. Returns 0 or SX_ENOMEM. */
static int search_level(const sx_index *ix, sctx *c, const qv *q, uint32_t ep, float ep_d,
                        int ef, int level, const filt *f, long *evals, long *visited) {
    c->n_cand = c->n_res = 0;
    if (grow((void **)&c->res, &c->res_cap, (size_t)ef + 2, sizeof(pair)) < 0 ||
        grow((void **)&c->cand, &c->cand_cap, 256, sizeof(pair)) < 0)
        return SX_ENOMEM;
    new_epoch(c);
    visit(c, ep);
    (*visited)++;
    heap_push(c->cand, &c->n_cand, (pair){-ep_d, ep});
    float lb = INFINITY;
    if (eligible(ix, f, ep)) {
        heap_push(c->res, &c->n_res, (pair){ep_d, ep});
        lb = ep_d;
    }
    while (c->n_cand) {
        pair cur = c->cand[0];
        if (-cur.d > lb && c->n_res >= (size_t)ef) break;
        heap_pop(c->cand, &c->n_cand);
        int n = read_links(ix, c, cur.id, level);
        int m = 0;
        for (int j = 0; j < n; j++)
            if (!visit(c, c->ids[j])) c->ids[m++] = c->ids[j];
        /* A code is several cache lines from DRAM; computing one distance
         * takes a fraction of that latency, so keep PREFETCH codes in
         * flight ahead of the one being scored. */
        for (int j = 0; j < m && j < PREFETCH; j++) prefetch_code(ix, c->ids[j]);
        for (int j = 0; j < m; j++) {
            uint32_t id = c->ids[j];
            if (j + PREFETCH < m) prefetch_code(ix, c->ids[j + PREFETCH]);
            float d = qdist(ix, q, id);
            (*evals)++;
            (*visited)++;
            if (c->n_res < (size_t)ef || d < lb) {
                if (grow((void **)&c->cand, &c->cand_cap, c->n_cand + 1, sizeof(pair)) < 0)
                    return SX_ENOMEM;
                heap_push(c->cand, &c->n_cand, (pair){-d, id});
                if (eligible(ix, f, id)) {
                    heap_push(c->res, &c->n_res, (pair){d, id});
                    if (c->n_res > (size_t)ef) heap_pop(c->res, &c->n_res);
                    lb = c->res[0].d;
                }
            }
        }
    }
    return 0;
}

/* Moves c->res into c->work sorted by increasing distance; returns count. */
static int take_sorted(sctx *c) {
    if (grow((void **)&c->work, &c->work_cap, c->n_res + 1, sizeof(pair)) < 0) return SX_ENOMEM;
    int n = (int)c->n_res;
    for (int i = n - 1; i >= 0; i--) c->work[i] = heap_pop(c->res, &c->n_res);
    return n;
}

/* The neighbour-selection heuristic: from cand (sorted by distance to the
 * base node, n entries) keeps up to m, writing ids to out. */
static int select_heuristic(const sx_index *ix, sctx *c, const pair *cand, int n, int m,
                            uint32_t *out) {
    if (n <= m) {
        for (int i = 0; i < n; i++) out[i] = cand[i].id;
        return n;
    }
    int sel = 0;
    for (int i = 0; i < n && sel < m; i++) {
        int good = 1;
        if (sel) {
            qv qc;
            qv_node(ix, c, &qc, cand[i].id);
            for (int s = 0; s < sel && good; s++)
                if (qdist(ix, &qc, out[s]) < cand[i].d) good = 0;
        }
        if (good) out[sel++] = cand[i].id;
    }
    return sel;
}

/* Replaces node id's list at level with ids[0..n) (caller holds its stripe). */
static void write_links(sx_index *ix, uint32_t id, int level, const uint32_t *ids, int n) {
    _Atomic uint32_t *l = links_at(ix, id, level);
    uint32_t old = atomic_load_explicit(&l[0], memory_order_relaxed);
    /* Grow: entries first, then the count. Shrink: the count first. */
    if ((uint32_t)n < old) atomic_store_explicit(&l[0], (uint32_t)n, memory_order_release);
    for (int j = 0; j < n; j++) atomic_store_explicit(&l[1 + j], ids[j], memory_order_release);
    atomic_store_explicit(&l[0], (uint32_t)n, memory_order_release);
}

/* Membership in the vacuum's set D, a bitmap over the first n slots (nodes
 * inserted since are never in it). */
typedef struct dset {
    uint64_t *bits;
    uint32_t n;
} dset;

static inline int in_set(const dset *D, uint32_t id) {
    return id < D->n && (D->bits[id >> 6] >> (id & 63) & 1);
}

/* ---- anchors: every node stays reachable (see the essay) ---- */

/* 1 when u's level-0 link to x is x's anchor, which no pruning drops. */
static inline int is_anchor(const sx_index *ix, uint32_t u, uint32_t x) {
    return atomic_load_explicit(anchor_of(ix, x), memory_order_relaxed) == u;
}

/* 1 when u's level-0 list links to x. */
static int links_to(const sx_index *ix, uint32_t u, uint32_t x) {
    const _Atomic uint32_t *l = links_at(ix, u, 0);
    uint32_t m = atomic_load_explicit(&l[0], memory_order_relaxed);
    for (uint32_t j = 0; j < m; j++)
        if (atomic_load_explicit(&l[1 + j], memory_order_relaxed) == x) return 1;
    return 0;
}

/* Makes u, which ranks below x and whose list links to x, x's anchor when
 * x has none; or when x's list links to u (u is one of x's own neighbours,
 * so a search for x's vector passes it) but not to x's anchor, or that
 * anchor is in the vacuum's set D (given). Caller holds u's stripe. */
static void take_anchor(sx_index *ix, uint32_t u, uint32_t x, const dset *D) {
    _Atomic uint32_t *a = anchor_of(ix, x);
    uint32_t cur = atomic_load_explicit(a, memory_order_relaxed);
    if (cur == u || !ranks_below(ix, u, x)) return;
    if (cur != NONE &&
        (!links_to(ix, x, u) || (!(D && in_set(D, cur)) && links_to(ix, x, cur))))
        return;
    atomic_compare_exchange_strong_explicit(a, &cur, u, memory_order_relaxed, memory_order_relaxed);
}

static int in_ids(const uint32_t *a, int n, uint32_t id) {
    for (int i = 0; i < n; i++)
        if (a[i] == id) return 1;
    return 0;
}

enum { E_NEW, E_OLD, E_PINNED }; /* an entry of a list being rewritten */

/* Notes x, left without an anchor, for adoption once the caller's stripes
 * are released (or, when the list is full, for a fresh ranking). */
static void note_orphan(sx_index *ix, sctx *c, uint32_t x) {
    if (c->n_orphans < (int)(sizeof c->orphans / sizeof c->orphans[0]))
        c->orphans[c->n_orphans++] = x;
    else
        atomic_fetch_add(&ix->adopt_failed, 1);
}

/* Replaces u's level-0 list with sel[0..k) (nearest first), keeping the
 * links that anchor their targets (except those into the vacuum's set D,
 * when given): appended when the selection left room, else in place of the
 * farthest entry that anchors nothing. When none is left, the anchor goes
 * and its target is noted in c->orphans (or, when that is full, left for a
 * fresh ranking: ix->adopt_failed). Every new link (in a repair, every
 * link) takes the anchor of a target that has none, or one in D
 * (take_anchor). Caller holds u's stripe. */
static void write_links0(sx_index *ix, sctx *c, uint32_t u, const uint32_t *sel, int k,
                         const dset *D) {
    _Atomic uint32_t *l = links_at(ix, u, 0);
    int cap = ix->M0, no = (int)atomic_load_explicit(&l[0], memory_order_relaxed), n = 0;
    if (no > cap) no = cap;
    uint32_t old[256], out[256];
    uint8_t st[256];
    out[0] = NONE; /* (n may stay 0; quiets gcc's maybe-uninitialized) */
    for (int j = 0; j < no; j++) old[j] = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
    for (int j = 0; j < k && n < cap; j++, n++) {
        out[n] = sel[j];
        st[n] = in_ids(old, no, sel[j]) ? E_OLD : E_NEW;
    }
    for (int i = 0; i < no; i++) {
        uint32_t x = old[i];
        if (!is_anchor(ix, u, x) || (D && in_set(D, x)) || in_ids(sel, k, x)) continue;
        if (n < cap) {
            out[n] = x;
            st[n++] = E_PINNED;
            continue;
        }
        int j = n;
        while (j-- > 0)
            if (st[j] == E_NEW || (st[j] == E_OLD && !is_anchor(ix, u, out[j]))) break;
        if (j >= 0) {
            out[j] = x;
            st[j] = E_PINNED;
        } else {
            uint32_t was = u;
            atomic_compare_exchange_strong(anchor_of(ix, x), &was, NONE);
            note_orphan(ix, c, x);
        }
    }
    write_links(ix, u, 0, out, n);
    for (int j = 0; j < n; j++)
        if (st[j] == E_NEW || (D && st[j] == E_OLD)) take_anchor(ix, u, out[j], D);
}

/* The entry of u's full level-0 list that can give way to a new link: the
 * farthest from u that anchors nothing. Returns its index, or -1 when every
 * entry is an anchor. Caller holds u's stripe; c->work has room for M0
 * pairs. */
static int give_way(sx_index *ix, sctx *c, uint32_t u) {
    _Atomic uint32_t *l = links_at(ix, u, 0);
    int m = (int)atomic_load_explicit(&l[0], memory_order_relaxed);
    qv qu;
    qv_node(ix, c, &qu, u);
    for (int j = 0; j < m; j++) {
        uint32_t y = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        c->work[j] = (pair){qdist(ix, &qu, y), (uint32_t)j};
    }
    qsort(c->work, (size_t)m, sizeof(pair), pair_cmp);
    for (int j = m - 1; j >= 0; j--) {
        uint32_t y = atomic_load_explicit(&l[1 + c->work[j].id], memory_order_relaxed);
        if (!is_anchor(ix, u, y)) return (int)c->work[j].id;
    }
    return -1;
}

/* Adds the link u -> x to u's level-0 list, appended when there is room,
 * else in place of the entry that gives way (give_way), and makes it x's
 * anchor if x has none. Returns 1 when u links to x, 0 when nothing gives
 * way. Caller holds u's stripe. */
static int link_into(sx_index *ix, sctx *c, uint32_t u, uint32_t x) {
    _Atomic uint32_t *l = links_at(ix, u, 0);
    int m = (int)atomic_load_explicit(&l[0], memory_order_relaxed);
    if (links_to(ix, u, x)) {
        /* linked already */
    } else if (m < ix->M0) {
        atomic_store_explicit(&l[1 + m], x, memory_order_release);
        atomic_store_explicit(&l[0], (uint32_t)m + 1, memory_order_release);
    } else {
        int j = give_way(ix, c, u);
        if (j < 0) return 0;
        atomic_store_explicit(&l[1 + j], x, memory_order_release);
    }
    take_anchor(ix, u, x, NULL);
    return 1;
}

/* When every entry of u's list anchors its target: puts x between u and one
 * of them, y, that ranks above x (u -> x -> y replaces u -> y, and x
 * becomes y's anchor). Returns 1 when u links to x, else 0. Caller holds
 * the stripes of u and x. */
static int put_between(sx_index *ix, sctx *c, uint32_t u, uint32_t x) {
    _Atomic uint32_t *l = links_at(ix, u, 0);
    int m = (int)atomic_load_explicit(&l[0], memory_order_relaxed);
    for (int j = 0; j < m; j++) {
        uint32_t y = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        if (y == x) return 1;
        if (!ranks_below(ix, x, y) || !link_into(ix, c, x, y)) continue;
        uint32_t was = u;
        atomic_compare_exchange_strong(anchor_of(ix, y), &was, x);
        atomic_store_explicit(&l[1 + j], x, memory_order_release);
        take_anchor(ix, u, x, NULL);
        return 1;
    }
    return 0;
}

/* Anchors x from u, a node of lower rank: link_into, else (between = 1)
 * put_between, holding the two stripes in address order. Returns 1 when
 * done, else 0. */
static int anchor_from(sx_index *ix, sctx *c, uint32_t u, uint32_t x, int between) {
    pthread_mutex_t *a = stripe(ix, u), *b = stripe(ix, x);
    /* a vacuum under way must drop this link before it frees x */
    if (flags_of(ix, x) & F_DELETED) atomic_store(&ix->linked_deleted, 1);
    pthread_mutex_lock(a);
    int ok = link_into(ix, c, u, x);
    if (!ok && between) {
        if (a != b) {
            if (b < a) {
                pthread_mutex_unlock(a);
                pthread_mutex_lock(b);
                pthread_mutex_lock(a);
            } else {
                pthread_mutex_lock(b);
            }
        }
        ok = link_into(ix, c, u, x) || put_between(ix, c, u, x);
        if (a != b) pthread_mutex_unlock(b);
    }
    pthread_mutex_unlock(a);
    return ok;
}

/* Anchors node x, which has no anchor, from a nearby node of lower rank:
 * a search for x's vector (its code: no fp32 page is touched) lists
 * candidates nearest first, live ones before deleted ones, then the entry
 * point, which ranks lowest; the first that can take x (anchor_from) does,
 * trying them all once without and once with put_between. Returns 1 when x
 * is anchored (or needs no anchor), 0 when nothing could take it, or
 * SX_ENOMEM. Called holding rw shared and no stripe. */
static int adopt(sx_index *ix, sctx *c, uint32_t x) {
    uint64_t e = atomic_load_explicit(&ix->ep, memory_order_acquire);
    /* nothing to reach x from (every other node deleted), or x is the entry
     * point, or about to be */
    if ((uint32_t)e == NONE || !ranks_below(ix, (uint32_t)e, x)) return 1;
    if (grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t)) < 0)
        return SX_ENOMEM;
    for (int pass = 0; pass < 2; pass++) {
        /* First the usual descent; then, should the upper levels lead into
         * a part of level 0 that the entry point does not reach (after a
         * vacuum, before adoptions), a walk from the entry point itself. */
        qv q;
        qv_node(ix, c, &q, x);
        uint32_t cur = (uint32_t)e, cand[64];
        float cur_d = qdist(ix, &q, cur);
        long evals = 0, visited = 0;
        for (int l = pass ? 0 : (int)(e >> 32); l > 0; l--)
            greedy(ix, c, &q, &cur, &cur_d, l, &evals);
        filt none = {0, NULL, 0};
        int rc = search_level(ix, c, &q, cur, cur_d, ix->p.ef_construction, 0, &none, &evals,
                              &visited);
        if (rc < 0) return rc;
        int n = take_sorted(c);
        if (n < 0 || grow((void **)&c->work, &c->work_cap, (size_t)ix->M0, sizeof(pair)) < 0)
            return SX_ENOMEM;
        int nc = 0;
        for (int dead = 0; dead < 2; dead++)
            for (int i = 0; i < n && nc < 63; i++) {
                uint32_t u = c->work[i].id;
                if (ranks_below(ix, u, x) && !!(flags_of(ix, u) & F_DELETED) == dead)
                    cand[nc++] = u;
            }
        cand[nc++] = (uint32_t)e;
        for (int between = 0; between < 2; between++)
            for (int i = 0; i < nc; i++)
                if (anchor_from(ix, c, cand[i], x, between) &&
                    atomic_load_explicit(anchor_of(ix, x), memory_order_relaxed) != NONE)
                    return 1;
    }
    return 0;
}

/* Adds a link e -> node at level, pruning e's list with the heuristic when
 * it is full. */
static int add_backlink(sx_index *ix, sctx *c, uint32_t e, uint32_t node, int level) {
    int cap = level_cap(ix, level);
    pthread_mutex_t *mu = stripe(ix, e);
    pthread_mutex_lock(mu);
    _Atomic uint32_t *l = links_at(ix, e, level);
    uint32_t n = atomic_load_explicit(&l[0], memory_order_relaxed);
    for (uint32_t j = 0; j < n; j++)
        if (atomic_load_explicit(&l[1 + j], memory_order_relaxed) == node) {
            pthread_mutex_unlock(mu);
            return 0;
        }
    if ((int)n < cap) {
        atomic_store_explicit(&l[1 + n], node, memory_order_release);
        atomic_store_explicit(&l[0], n + 1, memory_order_release);
        if (level == 0) take_anchor(ix, e, node, NULL);
        pthread_mutex_unlock(mu);
        return 0;
    }
    if (grow((void **)&c->work, &c->work_cap, (size_t)cap + 1, sizeof(pair)) < 0 ||
        grow((void **)&c->ids, &c->ids_cap, (size_t)cap + 1, sizeof(uint32_t)) < 0) {
        pthread_mutex_unlock(mu);
        return SX_ENOMEM;
    }
    qv qe;
    qv_node(ix, c, &qe, e);
    for (uint32_t j = 0; j < n; j++) {
        uint32_t id = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        c->work[j] = (pair){qdist(ix, &qe, id), id};
    }
    c->work[n] = (pair){qdist(ix, &qe, node), node};
    qsort(c->work, n + 1, sizeof(pair), pair_cmp);
    uint32_t sel[2 * 256 + 1];
    int k = select_heuristic(ix, c, c->work, (int)n + 1, cap, sel);
    if (level == 0) write_links0(ix, c, e, sel, k, NULL);
    else write_links(ix, e, level, sel, k);
    pthread_mutex_unlock(mu);
    return 0;
}

/* The rank of a node about to be inserted at `level`: the lowest yet when
 * it will be the entry point (the graph is empty, or it reaches above the
 * top level; then ep_lock is taken, *held = 1, until connect_node is
 * done), else the highest. *e (OUT) is the entry point to start from. */
static uint32_t new_rank(sx_index *ix, int level, uint64_t *e, int *held) {
    *e = atomic_load_explicit(&ix->ep, memory_order_acquire);
    *held = 0;
    if ((uint32_t)*e == NONE || level > (int)(*e >> 32)) {
        pthread_mutex_lock(&ix->ep_lock);
        *e = atomic_load_explicit(&ix->ep, memory_order_acquire);
        if ((uint32_t)*e == NONE || level > (int)(*e >> 32)) {
            *held = 1;
            return atomic_fetch_sub(&ix->rank_low, 1);
        }
        pthread_mutex_unlock(&ix->ep_lock);
    }
    return atomic_fetch_add(&ix->rank_high, 1);
}

/* Links node (already initialised, at `level`, ranked by new_rank, which
 * gave e and held) into the graph. */
static int connect_node(sx_index *ix, sctx *c, uint32_t node, int level, const float *vec,
                        uint64_t e, int held) {
    if ((uint32_t)e == NONE) {
        atomic_store_explicit(&ix->ep, ep_pack(node, level), memory_order_release);
        pthread_mutex_unlock(&ix->ep_lock);
        return 0;
    }
    qv q;
    qv_prepare(ix, &q, vec, c->b1);
    uint32_t cur = (uint32_t)e;
    int top = (int)(e >> 32);
    float cur_d = qdist(ix, &q, cur);
    long evals = 0, visited = 0;
    int rc = grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t));
    if (rc == 0 && held) rc = grow((void **)&c->work, &c->work_cap, (size_t)ix->M0, sizeof(pair));
    for (int l = top; l > level && rc == 0; l--) greedy(ix, c, &q, &cur, &cur_d, l, &evals);
    filt none = {0, NULL, 0};
    for (int l = level < top ? level : top; l >= 0 && rc == 0; l--) {
        rc = search_level(ix, c, &q, cur, cur_d, ix->p.ef_construction, l, &none, &evals, &visited);
        if (rc < 0) break;
        int n = take_sorted(c);
        if (n < 0) {
            rc = n;
            break;
        }
        if (n > 0) {
            cur = c->work[0].id;
            cur_d = c->work[0].d;
        }
        int m = 0, nd = 0; /* drop deleted nodes and the node itself */
        uint32_t dead[4];
        for (int i = 0; i < n; i++) {
            uint32_t id = c->work[i].id;
            if (id == node) continue;
            if (!(flags_of(ix, id) & F_DELETED)) c->work[m++] = c->work[i];
            else if (m == 0 && nd < 4) dead[nd++] = id;
        }
        uint32_t sel[256];
        int k = select_heuristic(ix, c, c->work, m, ix->p.M, sel);
        pthread_mutex_lock(stripe(ix, node));
        if (l == 0) {
            /* A new entry point ranks lowest: it anchors the old one. The
             * list may have had to keep anchors that concurrent inserts
             * made in place of the link to it: then it is linked in place
             * of one that anchors nothing, or failing that adopted. */
            int k0 = k;
            if (held && !in_ids(sel, k, (uint32_t)e)) sel[k0++] = (uint32_t)e;
            write_links0(ix, c, node, sel, k0, NULL);
            if (held && !link_into(ix, c, node, (uint32_t)e)) note_orphan(ix, c, (uint32_t)e);
        } else {
            write_links(ix, node, l, sel, k);
        }
        pthread_mutex_unlock(stripe(ix, node));
        for (int i = 0; i < k && rc == 0; i++) rc = add_backlink(ix, c, sel[i], node, l);
        /* Deleted nodes nearer than every live one (a region whose nodes
         * were deleted and are being replaced): link them to the node,
         * never the reverse, so that walks through them (deleted nodes are
         * traversed) find it, and the vacuum's repair hands the links on to
         * live nodes. Otherwise the node's only links would come from far
         * away, and a search for its own vector would miss it. */
        for (int i = 0; i < nd && l == 0 && rc == 0; i++)
            rc = add_backlink(ix, c, dead[i], node, 0);
    }
    if (held) {
        if (rc == 0 && level > top)
            atomic_store_explicit(&ix->ep, ep_pack(node, level), memory_order_release);
        pthread_mutex_unlock(&ix->ep_lock);
    }
    /* Every anchor of the node may have been pruned away again (each list
     * preferred closer or more diverse neighbours), and a pruning may have
     * had to drop another node's last anchor: anchor them now. Should that
     * fail, the next sx_index_maintain ranks the graph afresh. */
    int failed = 0;
    if (rc == 0 && atomic_load_explicit(anchor_of(ix, node), memory_order_relaxed) == NONE)
        failed += (rc = adopt(ix, c, node)) == 0;
    while (rc >= 0 && c->n_orphans > 0) {
        uint32_t x = c->orphans[--c->n_orphans];
        if (atomic_load_explicit(anchor_of(ix, x), memory_order_relaxed) == NONE)
            failed += (rc = adopt(ix, c, x)) == 0;
    }
    if (failed || c->n_orphans) atomic_fetch_add(&ix->adopt_failed, 1);
    c->n_orphans = 0;
    return rc < 0 ? rc : 0;
}

/* ---- creation ---- */

sx_index_params sx_index_params_default(int dim) {
    sx_index_params p = {0};
    p.dim = dim;
    p.M = 16;
    p.ef_construction = 200;
    p.ef_search = 64;
    p.storage = SX_STORAGE_FP32;
    p.metric = SX_METRIC_IP;
    p.rerank = 0;
    p.train_size = 1024;
    p.seed = 42;
    return p;
}

static int check_params(const sx_index_params *p, sx_err *err) {
    if (p->dim < 1 || p->dim > SX_INDEX_MAX_DIM)
        return sx_err_set(err, SX_EINVAL, "index: dim %d not in 1..%d", p->dim, SX_INDEX_MAX_DIM);
    if (p->M < 2 || p->M > 128) return sx_err_set(err, SX_EINVAL, "index: M %d not in 2..128", p->M);
    if (p->ef_construction < 1 || p->ef_construction > 100000)
        return sx_err_set(err, SX_EINVAL, "index: ef_construction %d not in 1..100000", p->ef_construction);
    if (p->ef_search < 1 || p->ef_search > 100000)
        return sx_err_set(err, SX_EINVAL, "index: ef_search %d not in 1..100000", p->ef_search);
    if (p->storage != SX_STORAGE_FP32 && p->storage != SX_STORAGE_SQ8)
        return sx_err_set(err, SX_EINVAL, "index: unknown storage %d", p->storage);
    if (p->metric != SX_METRIC_IP && p->metric != SX_METRIC_L2)
        return sx_err_set(err, SX_EINVAL, "index: unknown metric %d", p->metric);
    if (p->metric == SX_METRIC_L2 && p->storage == SX_STORAGE_SQ8)
        return sx_err_set(err, SX_EUNSUPPORTED, "index: SQ8 storage supports the IP metric only");
    if (p->rerank < 0 || p->rerank > 100000)
        return sx_err_set(err, SX_EINVAL, "index: rerank %d not in 0..100000", p->rerank);
    if (p->train_size < 1) return sx_err_set(err, SX_EINVAL, "index: train_size must be >= 1");
    return 0;
}

int sx_index_create(const sx_index_params *p, sx_index **out, sx_err *err) {
    *out = NULL;
    int rc = check_params(p, err);
    if (rc < 0) return rc;
    sx_index *ix = sx_index_calloc(1, sizeof *ix);
    if (!ix) return sx_err_set(err, SX_ENOMEM, "index: out of memory");
    ix->p = *p;
    ix->M0 = 2 * p->M;
    ix->sq8 = p->storage == SX_STORAGE_SQ8;
    ix->code_size = ix->sq8 ? p->dim : p->dim * (int)sizeof(float);
    ix->mult = 1.0 / log((double)p->M);
    ix->k = sx_kernels_best();
    ix->dir = sx_index_calloc(DIR_SIZE, sizeof(chunk *));
    atomic_init(&ix->ep, ep_pack(NONE, 0));
    atomic_init(&ix->rank_low, RANK_MID - 1);
    atomic_init(&ix->rank_high, RANK_MID);
    pthread_mutex_init(&ix->alloc_lock, NULL);
    pthread_mutex_init(&ix->ep_lock, NULL);
    pthread_mutex_init(&ix->pool_lock, NULL);
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_init(&ix->stripes[i], NULL);
    sx_rwlock_init(&ix->rw);
    sx_rwlock_init(&ix->wlock);
    if (!ix->dir || (ix->sq8 && sx_sq8_init(&ix->q, p->dim, -1.0f, 1.0f, err) < 0)) {
        sx_index_free(ix);
        return sx_err_set(err, SX_ENOMEM, "index: out of memory");
    }
    *out = ix;
    return 0;
}

void sx_index_set_release(sx_index *ix, sx_release_fn fn, void *ctx) {
    ix->release = fn;
    ix->release_ctx = ctx;
}

static int owns_f32(const sx_index *ix, const float *v) {
    const uint8_t *b = (const uint8_t *)v;
    return v && !(b >= ix->f32_lo && b < ix->f32_hi);
}

static void chunk_free(sx_index *ix, chunk *c) {
    if (!c) return;
    for (uint32_t i = 0; i < CHUNK; i++) {
        if (c->upper) sx_index_free_mem(c->upper[i]);
        if (c->f32 && owns_f32(ix, c->f32[i])) sx_index_free_mem((void *)c->f32[i]);
    }
    sx_index_free_mem(c->links0);
    sx_index_free_mem(c->rank);
    sx_index_free_mem(c->anchor);
    sx_index_free_mem(c->codes);
    sx_index_free_mem(c->flags);
    sx_index_free_mem(c->level);
    sx_index_free_mem(c->upper);
    sx_index_free_mem((void *)c->f32);
    sx_index_free_mem(c->payload);
    sx_index_free_mem(c);
}

void sx_index_free(sx_index *ix) {
    if (!ix) return;
    if (ix->dir)
        for (uint32_t i = 0; i < DIR_SIZE && ix->dir[i]; i++) chunk_free(ix, ix->dir[i]);
    sx_index_free_mem(ix->dir);
    for (int i = 0; i < ix->n_pool; i++) sctx_free(ix->pool[i]);
    sx_index_free_mem(ix->pool);
    sx_index_free_mem(ix->free_ids);
    sx_index_free_mem(ix->f32_owned);
    sx_sq8_release(&ix->q);
    pthread_mutex_destroy(&ix->alloc_lock);
    pthread_mutex_destroy(&ix->ep_lock);
    pthread_mutex_destroy(&ix->pool_lock);
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_destroy(&ix->stripes[i]);
    pthread_rwlock_destroy(&ix->rw);
    pthread_rwlock_destroy(&ix->wlock);
    sx_index_free_mem(ix);
}

static chunk *chunk_new(const sx_index *ix) {
    chunk *c = sx_index_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->links0 = sx_index_calloc((size_t)CHUNK * (size_t)(1 + ix->M0), sizeof(uint32_t));
    c->rank = sx_index_calloc(CHUNK, sizeof *c->rank);
    c->anchor = sx_index_malloc(CHUNK * sizeof *c->anchor);
    c->codes = sx_index_calloc(CHUNK, (size_t)ix->code_size);
    c->flags = sx_index_calloc(CHUNK, 1);
    c->level = sx_index_calloc(CHUNK, 1);
    c->upper = sx_index_calloc(CHUNK, sizeof *c->upper);
    c->payload = sx_index_calloc(CHUNK, sizeof *c->payload);
    if (ix->sq8) c->f32 = sx_index_calloc(CHUNK, sizeof *c->f32);
    if (c->anchor) memset((void *)c->anchor, 0xff, CHUNK * sizeof *c->anchor); /* NONE */
    if (!c->links0 || !c->rank || !c->anchor || !c->codes || !c->flags || !c->level ||
        !c->upper || !c->payload || (ix->sq8 && !c->f32)) {
        sx_index_free_mem(c->links0);
        sx_index_free_mem(c->rank);
        sx_index_free_mem((void *)c->anchor);
        sx_index_free_mem(c->codes);
        sx_index_free_mem(c->flags);
        sx_index_free_mem(c->level);
        sx_index_free_mem(c->upper);
        sx_index_free_mem(c->payload);
        sx_index_free_mem((void *)c->f32);
        sx_index_free_mem(c);
        return NULL;
    }
    return c;
}

/* Hands out a slot: a released one, or a new one (allocating its chunk). */
static int slot_alloc(sx_index *ix, uint32_t *out, sx_err *err) {
    pthread_mutex_lock(&ix->alloc_lock);
    if (ix->n_free) {
        *out = ix->free_ids[--ix->n_free];
        pthread_mutex_unlock(&ix->alloc_lock);
        return 0;
    }
    uint32_t id = atomic_load_explicit(&ix->n_slots, memory_order_relaxed);
    if (id >= MAX_SLOTS) {
        pthread_mutex_unlock(&ix->alloc_lock);
        return sx_err_set(err, SX_EFULL, "index: %llu nodes is the limit",
                          (unsigned long long)MAX_SLOTS);
    }
    if (!ix->dir[id >> CHUNK_SHIFT]) {
        chunk *c = chunk_new(ix);
        if (!c) {
            pthread_mutex_unlock(&ix->alloc_lock);
            return sx_err_set(err, SX_ENOMEM, "index: out of memory growing to %u nodes", id + 1);
        }
        ix->dir[id >> CHUNK_SHIFT] = c;
    }
    atomic_store_explicit(&ix->n_slots, id + 1, memory_order_release);
    pthread_mutex_unlock(&ix->alloc_lock);
    *out = id;
    return 0;
}

static void slot_unalloc(sx_index *ix, uint32_t id) {
    pthread_mutex_lock(&ix->alloc_lock);
    atomic_store(&ch(ix, id)->flags[off(id)], F_FREE);
    ix->free_ids[ix->n_free++] = id; /* room reserved by the caller's grow */
    pthread_mutex_unlock(&ix->alloc_lock);
}

static int vec_finite(const float *v, int dim) {
    for (int i = 0; i < dim; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

int sx_index_draw_level(sx_index *ix) { return random_level(ix); }

int sx_index_add(sx_index *ix, const float *vec, uint64_t payload, uint32_t *node_out, sx_err *err) {
    return sx_index_add_level(ix, vec, payload, -1, node_out, err);
}

int sx_index_add_level(sx_index *ix, const float *vec, uint64_t payload, int level,
                       uint32_t *node_out, sx_err *err) {
    if (level < -1 || level > MAX_LEVEL)
        return sx_err_set(err, SX_EINVAL, "index: level %d not in 0..%d", level, MAX_LEVEL);
    if (!vec_finite(vec, ix->p.dim))
        return sx_err_set(err, SX_EINVAL, "index: vector has a NaN or infinite component");
    pthread_rwlock_rdlock(&ix->wlock);
    /* Room on the free list for the slot, so that giving it back cannot fail. */
    pthread_mutex_lock(&ix->alloc_lock);
    int rc = grow((void **)&ix->free_ids, &ix->cap_free, ix->n_free + 1, sizeof(uint32_t));
    pthread_mutex_unlock(&ix->alloc_lock);
    uint32_t node = NONE;
    float *f = NULL;
    if (level < 0) level = random_level(ix);
    _Atomic uint32_t *up = NULL;
    if (rc == 0 && ix->sq8) f = sx_index_malloc((size_t)ix->p.dim * sizeof(float));
    if (rc == 0 && level) up = sx_index_calloc((size_t)level * (size_t)(1 + ix->p.M), sizeof(uint32_t));
    if (rc < 0 || (ix->sq8 && !f) || (level && !up)) {
        sx_index_free_mem(f);
        sx_index_free_mem((void *)up);
        pthread_rwlock_unlock(&ix->wlock);
        return sx_err_set(err, SX_ENOMEM, "index: out of memory adding a vector");
    }
    pthread_rwlock_rdlock(&ix->rw);
    rc = slot_alloc(ix, &node, err);
    if (rc < 0) {
        pthread_rwlock_unlock(&ix->rw);
        pthread_rwlock_unlock(&ix->wlock);
        sx_index_free_mem(f);
        sx_index_free_mem((void *)up);
        return rc;
    }
    chunk *c = ch(ix, node);
    uint32_t o = off(node);
    uint64_t e;
    int held;
    uint32_t rank = new_rank(ix, level, &e, &held);
    pthread_mutex_lock(stripe(ix, node));
    c->rank[o] = rank;
    atomic_store_explicit(&c->anchor[o], NONE, memory_order_relaxed);
    c->level[o] = (uint8_t)level;
    c->upper[o] = up;
    c->payload[o] = payload;
    atomic_store_explicit(&c->links0[(size_t)o * (size_t)(1 + ix->M0)], 0, memory_order_relaxed);
    if (ix->sq8) {
        memcpy(f, vec, (size_t)ix->p.dim * sizeof(float));
        c->f32[o] = f;
        sx_sq8_encode(&ix->q, vec, c->codes + (size_t)o * (size_t)ix->code_size);
        atomic_fetch_add(&ix->f32_heap_bytes, (size_t)ix->p.dim * sizeof(float));
    } else {
        memcpy(c->codes + (size_t)o * (size_t)ix->code_size, vec, (size_t)ix->code_size);
    }
    atomic_fetch_add(&ix->upper_bytes, (size_t)level * (size_t)(1 + ix->p.M) * 4);
    atomic_store_explicit(&c->flags[o], 0, memory_order_release);
    pthread_mutex_unlock(stripe(ix, node));
    atomic_fetch_add(&ix->n_pending, 1);
    sctx *sc = sctx_get(ix);
    rc = sc ? connect_node(ix, sc, node, level, vec, e, held) : SX_ENOMEM;
    if (sc) sctx_put(ix, sc);
    else if (held) pthread_mutex_unlock(&ix->ep_lock);
    pthread_rwlock_unlock(&ix->rw);
    pthread_rwlock_unlock(&ix->wlock);
    if (rc < 0) {
        /* Linked partially: keep the slot as a deleted node for the vacuum. */
        atomic_fetch_or(&c->flags[o], F_DELETED);
        atomic_fetch_sub(&ix->n_pending, 1);
        atomic_fetch_add(&ix->n_deleted, 1);
        return sx_err_set(err, rc, "index: out of memory linking a vector");
    }
    *node_out = node;
    return 0;
}

void sx_index_publish(sx_index *ix, uint32_t node) {
    if (node >= atomic_load(&ix->n_slots)) return;
    uint8_t old = atomic_fetch_or(&ch(ix, node)->flags[off(node)], F_PUBLISHED);
    if (!(old & (F_PUBLISHED | F_DELETED | F_FREE))) {
        atomic_fetch_sub(&ix->n_pending, 1);
        atomic_fetch_add(&ix->n_live, 1);
    }
}

int sx_index_delete(sx_index *ix, uint32_t node, sx_err *err) {
    if (node >= atomic_load(&ix->n_slots))
        return sx_err_set(err, SX_ENOTFOUND, "index: no node %u", node);
    pthread_rwlock_rdlock(&ix->wlock);
    _Atomic uint8_t *fl = &ch(ix, node)->flags[off(node)];
    uint8_t old = atomic_load(fl);
    do {
        if (old & (F_DELETED | F_FREE)) {
            pthread_rwlock_unlock(&ix->wlock);
            return sx_err_set(err, SX_ENOTFOUND, "index: node %u is not live", node);
        }
    } while (!atomic_compare_exchange_weak(fl, &old, (uint8_t)(old | F_DELETED)));
    if (old & F_PUBLISHED) atomic_fetch_sub(&ix->n_live, 1);
    else atomic_fetch_sub(&ix->n_pending, 1);
    atomic_fetch_add(&ix->n_deleted, 1);
    pthread_rwlock_unlock(&ix->wlock);
    return 0;
}

/* ---- SQ8 training ---- */

/* Learns the SQ8 ranges from every node's fp32 vector and re-encodes all
 * codes, once, while searches wait (see the essay). */
static int train_now(sx_index *ix, sx_err *err) {
    pthread_rwlock_rdlock(&ix->wlock);
    pthread_rwlock_wrlock(&ix->rw);
    int rc = 0;
    if (!ix->trained) {
        uint32_t n = atomic_load(&ix->n_slots);
        size_t d = (size_t)ix->p.dim, m = 0;
        float *x = sx_index_malloc((size_t)n * d * sizeof(float));
        if (!x) rc = sx_err_set(err, SX_ENOMEM, "index: out of memory training SQ8");
        for (uint32_t i = 0; x && i < n; i++)
            if (!(flags_of(ix, i) & F_FREE) && f32_of(ix, i))
                memcpy(x + m++ * d, f32_of(ix, i), d * sizeof(float));
        sx_sq8 q = {0};
        if (x && m && (rc = sx_sq8_train(&q, ix->p.dim, x, m, err)) == 0) {
            sx_sq8_release(&ix->q);
            ix->q = q;
            for (uint32_t i = 0; i < n; i++)
                if (!(flags_of(ix, i) & F_FREE) && f32_of(ix, i))
                    sx_sq8_encode(&ix->q, f32_of(ix, i), (uint8_t *)code_of(ix, i));
            ix->trained = 1;
        }
        sx_index_free_mem(x);
    }
    pthread_rwlock_unlock(&ix->rw);
    pthread_rwlock_unlock(&ix->wlock);
    return rc;
}

/* ---- ranks ---- */

/* Anchors every node in [0, n) that has no anchor (adopt). Returns how
 * many could not be, or SX_ENOMEM. Called holding rw shared. */
static int adopt_orphans(sx_index *ix, sctx *c, uint32_t n) {
    int failed = 0, rc = 0;
    for (uint32_t x = 0; x < n && rc >= 0; x++)
        if (!(flags_of(ix, x) & F_FREE) &&
            atomic_load_explicit(anchor_of(ix, x), memory_order_relaxed) == NONE &&
            (rc = adopt(ix, c, x)) == 0)
            failed++;
    c->n_orphans = 0;
    return rc < 0 ? rc : failed;
}

/* Ranks every node afresh, breadth first from the entry point over level 0,
 * then the nodes no walk reaches (left without an anchor). A node's anchor
 * is then the first node of its own list, which is nearest first, that
 * ranks below it and links back to it, else the node it was reached from
 * (often over a long link: a poor anchor, which a search for the node's own
 * vector may never pass). Caller holds rw exclusively, or is loading.
 * Returns 0 or SX_ENOMEM. */
static int rank_all(sx_index *ix) {
    uint32_t n = atomic_load(&ix->n_slots), head = 0, tail = 0, next = 0, r = RANK_MID;
    uint32_t *queue = sx_index_malloc((size_t)n * sizeof *queue + 1);
    if (!queue) return SX_ENOMEM;
    for (uint32_t i = 0; i < n; i += CHUNK) {
        size_t cnt = n - i < CHUNK ? n - i : CHUNK;
        memset(ch(ix, i)->rank, 0xff, cnt * sizeof(uint32_t)); /* NONE */
        memset((void *)ch(ix, i)->anchor, 0xff, cnt * sizeof(uint32_t));
    }
    uint32_t e = (uint32_t)atomic_load(&ix->ep);
    if (e != NONE) {
        ch(ix, e)->rank[off(e)] = r++;
        queue[tail++] = e;
    }
    for (;;) {
        while (head < tail) {
            uint32_t u = queue[head++];
            const _Atomic uint32_t *l = links_at(ix, u, 0);
            uint32_t m = atomic_load_explicit(&l[0], memory_order_relaxed);
            for (uint32_t j = 0; j < m; j++) {
                uint32_t y = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
                if (rank_of(ix, y) != NONE) continue;
                ch(ix, y)->rank[off(y)] = r++;
                atomic_store_explicit(anchor_of(ix, y), u, memory_order_relaxed);
                queue[tail++] = y;
            }
        }
        while (next < n && (rank_of(ix, next) != NONE || (flags_of(ix, next) & F_FREE))) next++;
        if (next == n) break;
        ch(ix, next)->rank[off(next)] = r++;
        queue[tail++] = next;
    }
    sx_index_free_mem(queue);
    for (uint32_t y = 0; y < n; y++) {
        if (atomic_load_explicit(anchor_of(ix, y), memory_order_relaxed) == NONE) continue;
        const _Atomic uint32_t *l = links_at(ix, y, 0);
        uint32_t m = atomic_load_explicit(&l[0], memory_order_relaxed);
        for (uint32_t j = 0; j < m; j++) {
            uint32_t v = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
            if (ranks_below(ix, v, y) && links_to(ix, v, y)) {
                atomic_store_explicit(anchor_of(ix, y), v, memory_order_relaxed);
                break;
            }
        }
    }
    atomic_store(&ix->rank_low, RANK_MID - 1);
    atomic_store(&ix->rank_high, r);
    return 0;
}

/* Ranks the graph afresh (rank_all, while searches wait) and anchors the
 * nodes that no walk reached (adopt_orphans, concurrently with searches and
 * inserts): after an adoption failed, when the rank counters run low, and
 * after loading (old snapshots may hold unreachable nodes). Every node
 * reachable then ranks below them, so they find anchors nearby. Caller
 * holds wlock shared. Returns 0 or SX_ENOMEM. */
static int rerank(sx_index *ix, sctx *c) {
    pthread_rwlock_wrlock(&ix->rw);
    atomic_store(&ix->adopt_failed, 0);
    int rc = rank_all(ix);
    pthread_rwlock_unlock(&ix->rw);
    if (rc == 0) {
        pthread_rwlock_rdlock(&ix->rw);
        rc = adopt_orphans(ix, c, atomic_load(&ix->n_slots));
        pthread_rwlock_unlock(&ix->rw);
    }
    return rc < 0 ? rc : 0;
}

/* ---- vacuum ---- */

/* Rewrites u's list at level without the members of D (caller holds u's
 * stripe). */
static int repair(sx_index *ix, sctx *c, uint32_t u, int level, const dset *D) {
    _Atomic uint32_t *l = links_at(ix, u, level);
    uint32_t n = atomic_load_explicit(&l[0], memory_order_relaxed);
    int hit = 0;
    for (uint32_t j = 0; j < n && !hit; j++) hit = in_set(D, atomic_load_explicit(&l[1 + j], memory_order_relaxed));
    if (!hit) return 0;
    size_t cap = (size_t)level_cap(ix, level);
    if (grow((void **)&c->work, &c->work_cap, (cap + 1) * (cap + 1), sizeof(pair)) < 0 ||
        grow((void **)&c->ids, &c->ids_cap, cap + 1, sizeof(uint32_t)) < 0)
        return SX_ENOMEM;
    size_t m = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t v = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        if (!in_set(D, v)) {
            c->work[m++].id = v;
            continue;
        }
        if (ch(ix, v)->level[off(v)] < level) continue;
        _Atomic uint32_t *dl = links_at(ix, v, level);
        uint32_t dn = atomic_load_explicit(&dl[0], memory_order_acquire);
        for (uint32_t t = 0; t < dn && t < cap; t++) {
            uint32_t w = atomic_load_explicit(&dl[1 + t], memory_order_acquire);
            if (w != u && !in_set(D, w) && !(flags_of(ix, w) & (F_DELETED | F_FREE)))
                c->work[m++].id = w;
        }
    }
    qv qu;
    qv_node(ix, c, &qu, u);
    for (size_t j = 0; j < m; j++) c->work[j].d = qdist(ix, &qu, c->work[j].id);
    qsort(c->work, m, sizeof(pair), pair_cmp);
    size_t w = 0; /* unique ids (equal ids have equal distances: adjacent) */
    for (size_t j = 0; j < m; j++) {
        int dup = 0;
        for (size_t t = w; t-- > 0 && c->work[t].d == c->work[j].d;)
            if (c->work[t].id == c->work[j].id) dup = 1;
        if (!dup) c->work[w++] = c->work[j];
    }
    uint32_t sel[2 * 256 + 1];
    int k = select_heuristic(ix, c, c->work, (int)w, (int)cap, sel);
    if (level == 0) write_links0(ix, c, u, sel, k, D);
    else write_links(ix, u, level, sel, k);
    return 0;
}

/* Removes the members of D from u's level-0 list (caller holds rw
 * exclusively). */
static void drop_links0(sx_index *ix, uint32_t u, const dset *D) {
    _Atomic uint32_t *l = links_at(ix, u, 0);
    uint32_t m = atomic_load_explicit(&l[0], memory_order_relaxed), k = 0;
    for (uint32_t j = 0; j < m && j < (uint32_t)ix->M0; j++) {
        uint32_t y = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        if (!in_set(D, y)) atomic_store_explicit(&l[1 + k++], y, memory_order_relaxed);
    }
    atomic_store_explicit(&l[0], k, memory_order_relaxed);
}

/* Gives x, the new entry point, the lowest rank (it needs no anchor).
 * Called holding rw exclusively. */
static void make_root(sx_index *ix, uint32_t x) {
    ch(ix, x)->rank[off(x)] = atomic_fetch_sub(&ix->rank_low, 1);
    atomic_store(anchor_of(ix, x), NONE);
}

int sx_index_vacuum(sx_index *ix, sx_err *err) {
    pthread_rwlock_rdlock(&ix->wlock);
    /* (1) The set D and a live entry point. */
    pthread_rwlock_wrlock(&ix->rw);
    uint32_t n = atomic_load(&ix->n_slots);
    dset Ds = {sx_index_calloc((size_t)n / 64 + 1, sizeof(uint64_t)), n}, *D = &Ds;
    sctx *c = Ds.bits ? sctx_get(ix) : NULL;
    if (!c) {
        pthread_rwlock_unlock(&ix->rw);
        pthread_rwlock_unlock(&ix->wlock);
        sx_index_free_mem(Ds.bits);
        return sx_err_set(err, SX_ENOMEM, "index: out of memory in vacuum");
    }
    size_t nd = 0;
    for (uint32_t i = 0; i < n; i++)
        if ((flags_of(ix, i) & (F_DELETED | F_FREE)) == F_DELETED) {
            Ds.bits[i >> 6] |= 1ull << (i & 63);
            nd++;
        }
    atomic_store(&ix->linked_deleted, 0);
    uint64_t e = atomic_load(&ix->ep);
    if (nd && (uint32_t)e != NONE && in_set(D, (uint32_t)e)) {
        uint32_t best = NONE;
        int bl = -1;
        for (uint32_t i = 0; i < n; i++)
            if (!(flags_of(ix, i) & (F_DELETED | F_FREE)) && ch(ix, i)->level[off(i)] > bl) {
                best = i;
                bl = ch(ix, i)->level[off(i)];
            }
        if (best != NONE) make_root(ix, best);
        atomic_store(&ix->ep, ep_pack(best, bl < 0 ? 0 : bl));
    }
    pthread_rwlock_unlock(&ix->rw);
    int rc = 0;
    if (nd) {
        /* (2) Repair every list that points into D. */
        pthread_rwlock_rdlock(&ix->rw);
        rc = grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t));
        for (uint32_t u = 0; u < n && rc == 0; u++) {
            if (in_set(D, u)) continue;
            pthread_mutex_lock(stripe(ix, u));
            if (!(flags_of(ix, u) & F_FREE))
                for (int l = 0; l <= ch(ix, u)->level[off(u)] && rc == 0; l++)
                    rc = repair(ix, c, u, l, D);
            pthread_mutex_unlock(stripe(ix, u));
        }
        pthread_rwlock_unlock(&ix->rw);
        if (rc < 0) atomic_fetch_add(&ix->adopt_failed, 1); /* an anchor may be gone */
    }
    if (nd && rc == 0) {
        /* (3) Grace period, then release the slots. */
        pthread_rwlock_wrlock(&ix->rw);
        pthread_mutex_lock(&ix->alloc_lock);
        rc = grow((void **)&ix->free_ids, &ix->cap_free, ix->n_free + nd, sizeof(uint32_t));
        pthread_mutex_unlock(&ix->alloc_lock);
        for (uint32_t i = 0; i < n && rc == 0; i++) {
            if (!in_set(D, i)) continue;
            chunk *ck = ch(ix, i);
            uint32_t o = off(i);
            if (ix->release) ix->release(ix->release_ctx, i, ck->payload[o]);
            ck->payload[o] = 0;
            atomic_fetch_sub(&ix->upper_bytes, (size_t)ck->level[o] * (size_t)(1 + ix->p.M) * 4);
            sx_index_free_mem((void *)ck->upper[o]);
            ck->upper[o] = NULL;
            ck->level[o] = 0;
            atomic_store(&ck->links0[(size_t)o * (size_t)(1 + ix->M0)], 0);
            if (ix->sq8) {
                if (owns_f32(ix, ck->f32[o])) {
                    sx_index_free_mem((void *)ck->f32[o]);
                    atomic_fetch_sub(&ix->f32_heap_bytes, (size_t)ix->p.dim * sizeof(float));
                }
                ck->f32[o] = NULL;
            }
            slot_unalloc(ix, i);
            atomic_fetch_sub(&ix->n_deleted, 1);
        }
        /* Anchors in D are gone, also those of nodes added since (1): a
         * deleted node links to a new node that it is nearest to. Links
         * into D made since the repair pass (adoptions) go too. */
        uint32_t now = atomic_load(&ix->n_slots);
        int scrub = atomic_load(&ix->linked_deleted);
        for (uint32_t i = 0; i < now && rc == 0; i++) {
            if (in_set(D, atomic_load_explicit(anchor_of(ix, i), memory_order_relaxed)))
                atomic_store_explicit(anchor_of(ix, i), NONE, memory_order_relaxed);
            if (scrub && !(flags_of(ix, i) & F_FREE)) drop_links0(ix, i, D);
        }
        pthread_rwlock_unlock(&ix->rw);
        /* (4) Nodes whose anchor was in D, or whose anchor a repair could
         * not keep, are anchored again. */
        if (rc == 0) {
            pthread_rwlock_rdlock(&ix->rw);
            rc = adopt_orphans(ix, c, atomic_load(&ix->n_slots));
            pthread_rwlock_unlock(&ix->rw);
        }
        if (rc > 0 || (rc == 0 && atomic_load(&ix->adopt_failed))) rc = rerank(ix, c);
        if (rc < 0) rc = sx_err_set(err, rc, "index: out of memory in vacuum");
    } else if (rc < 0) {
        rc = sx_err_set(err, rc, "index: out of memory in vacuum");
    }
    sctx_put(ix, c);
    sx_index_free_mem(Ds.bits);
    pthread_rwlock_unlock(&ix->wlock);
    return rc;
}

static int needs_rerank(sx_index *ix) {
    return atomic_load(&ix->adopt_failed) || atomic_load(&ix->rank_high) > RANK_HIGH_LIMIT ||
           atomic_load(&ix->rank_low) < RANK_LOW_LIMIT;
}

/* 1 when the SQ8 ranges should be learnt now. */
static int train_due(sx_index *ix) {
    long live = atomic_load(&ix->n_live) + atomic_load(&ix->n_pending);
    return ix->sq8 && !ix->trained && live >= ix->p.train_size;
}

/* 1 when deleted nodes should be vacuumed now: 5% deleted (at least 64), or
 * half of a small index (a small index whose nodes are mostly deleted would
 * otherwise link new nodes to almost nothing). */
static int vacuum_due(sx_index *ix) {
    long live = atomic_load(&ix->n_live) + atomic_load(&ix->n_pending);
    long del = atomic_load(&ix->n_deleted);
    return del > 0 && ((del >= 64 && del * 20 >= live + del) || del >= live);
}

int sx_index_maintenance_due(sx_index *ix) {
    return train_due(ix) || vacuum_due(ix) || needs_rerank(ix);
}

int sx_index_maintain(sx_index *ix, sx_err *err) {
    int rc = 0, expected = 0;
    while (rc == 0 && atomic_compare_exchange_strong(&ix->maintaining, &expected, 1)) {
        if (train_due(ix)) rc = train_now(ix, err);
        if (rc == 0 && vacuum_due(ix)) rc = sx_index_vacuum(ix, err);
        if (rc == 0 && needs_rerank(ix)) {
            pthread_rwlock_rdlock(&ix->wlock);
            sctx *c = sctx_get(ix);
            rc = c ? rerank(ix, c) : SX_ENOMEM;
            if (c) sctx_put(ix, c);
            pthread_rwlock_unlock(&ix->wlock);
            if (rc < 0) rc = sx_err_set(err, rc, "index: out of memory ranking");
        }
        atomic_store(&ix->maintaining, 0);
        /* An adoption may have failed meanwhile in a thread whose own call
         * found this one busy: then this one goes round again. */
        if (!needs_rerank(ix)) break;
        expected = 0;
    }
    return rc;
}

/* ---- search ---- */

/* Sorts the best n (by d) of work[0..m) into hits, re-ranking with fp32 when
 * asked; returns the hit count. */
static int finish_hits(sx_index *ix, sctx *c, const float *vec, int m, int k, int rerank,
                       sx_index_hit *hits, long *evals) {
    if (m <= 0) return 0;
    qsort(c->work, (size_t)m, sizeof(pair), pair_cmp);
    if (ix->sq8 && rerank > 0) {
        int r = rerank > k ? rerank : k;
        if (r > m) r = m;
        float buf[SX_INDEX_MAX_DIM];
        for (int i = 0; i < r; i++) {
            const float *v = f32_get(ix, c->work[i].id, buf);
            c->work[i].d = -ix->k->dot_f32(vec, v, (size_t)ix->p.dim);
            (*evals)++;
        }
        qsort(c->work, (size_t)r, sizeof(pair), pair_cmp);
    }
    int n = m < k ? m : k;
    for (int i = 0; i < n; i++) hits[i] = (sx_index_hit){-c->work[i].d, c->work[i].id};
    return n;
}

static int check_query(const sx_index *ix, const float *vec, const sx_index_query *q, sx_err *err) {
    if (!q || q->k < 1 || q->k > 100000) return sx_err_set(err, SX_EINVAL, "search: k must be in 1..100000");
    if (q->ef < 0 || q->ef > 100000) return sx_err_set(err, SX_EINVAL, "search: ef must be in 0..100000");
    if (!vec_finite(vec, ix->p.dim)) return sx_err_set(err, SX_EINVAL, "search: query vector has a NaN or infinite component");
    return 0;
}

/* Scans allowed eligible nodes keeping the best `keep`; exact = 1 uses the
 * fp32 vectors, 0 the search codes. */
static int scan(sx_index *ix, sctx *c, const qv *q, const filt *f, int keep, int exact,
                long *evals) {
    uint32_t n = atomic_load_explicit(&ix->n_slots, memory_order_acquire);
    c->n_res = 0;
    if (grow((void **)&c->res, &c->res_cap, (size_t)keep + 2, sizeof(pair)) < 0) return SX_ENOMEM;
    float buf[SX_INDEX_MAX_DIM];
    for (uint32_t base = 0; base < n; base += 64) {
        uint64_t word = ~0ull;
        if (f->allow) word = base < f->allow_bits ? f->allow[base >> 6] : 0;
        while (word) {
            uint32_t id = base + (uint32_t)__builtin_ctzll(word);
            word &= word - 1;
            if (id >= n) break;
            if (f->allow && id >= f->allow_bits) break;
            if ((flags_of(ix, id) & (F_PUBLISHED | F_DELETED)) != F_PUBLISHED) continue;
            float d;
            if (exact) {
                const float *v = f32_get(ix, id, buf);
                d = ix->p.metric == SX_METRIC_L2 ? ix->k->l2sq_f32(q->v, v, (size_t)ix->p.dim)
                                                 : -ix->k->dot_f32(q->v, v, (size_t)ix->p.dim);
            } else {
                d = qdist(ix, q, id);
            }
            (*evals)++;
            if (c->n_res < (size_t)keep || d < c->res[0].d) {
                heap_push(c->res, &c->n_res, (pair){d, id});
                if (c->n_res > (size_t)keep) heap_pop(c->res, &c->n_res);
            }
        }
    }
    return 0;
}

static int search_impl(sx_index *ix, const float *vec, const sx_index_query *q, int exact,
                       sx_index_hit *hits, int *n_hits, sx_search_stats *stats, sx_err *err) {
    *n_hits = 0;
    int rc = check_query(ix, vec, q, err);
    if (rc < 0) return rc;
    sx_search_stats st = {SX_STRATEGY_GRAPH, 0, 0, 1.0};
    int ef = q->ef ? q->ef : ix->p.ef_search;
    if (ef < q->k) ef = q->k;
    int rerank = q->rerank < 0 ? ix->p.rerank : q->rerank;
    long live = atomic_load(&ix->n_live);
    filt f = {1, q->allow, q->allow ? q->allow_bits : 0};
    if (q->allow) st.selectivity = live > 0 ? (double)q->allow_count / (double)live : 0;
    if (st.selectivity > 1) st.selectivity = 1;
    pthread_rwlock_rdlock(&ix->rw);
    sctx *c = sctx_get(ix);
    if (!c) {
        pthread_rwlock_unlock(&ix->rw);
        return sx_err_set(err, SX_ENOMEM, "search: out of memory");
    }
    qv qq;
    qv_prepare(ix, &qq, vec, c->b1);
    uint64_t e = atomic_load_explicit(&ix->ep, memory_order_acquire);
    double graph_cost = 24.0 * ef / (st.selectivity > 1e-9 ? st.selectivity : 1e-9);
    int brute = exact || q->force_brute || (q->allow && (double)q->allow_count <= graph_cost);
    int m = 0;
    if ((uint32_t)e == NONE) {
        m = 0;
    } else if (brute && !exact && ix->sq8 && ix->cold_read) {
        /* The fp32 vectors are read from the file: scan the codes, then
         * re-rank a generous top from fp32 (a file read each, not thousands). */
        st.strategy = SX_STRATEGY_BRUTE;
        int keep = 4 * q->k > 64 ? 4 * q->k : 64;
        if (rerank > keep) keep = rerank;
        rc = scan(ix, c, &qq, &f, keep, 0, &st.distance_evals);
        st.visited = st.distance_evals;
        if (rc == 0) m = take_sorted(c);
        rerank = keep;
    } else if (brute) {
        /* A scan is exact (fp32): it runs on few nodes, and the quantised
         * scores of a small set are too close to rank it reliably. */
        st.strategy = SX_STRATEGY_BRUTE;
        rc = scan(ix, c, &qq, &f, q->k, 1, &st.distance_evals);
        st.visited = st.distance_evals;
        if (rc == 0) m = take_sorted(c);
        rerank = 0;
    } else {
        if (q->allow && st.selectivity < 0.5) {
            st.strategy = SX_STRATEGY_WIDENED;
            double w = ef / sqrt(st.selectivity);
            ef = w > 8.0 * ef ? 8 * ef : (int)w;
        }
        uint32_t cur = (uint32_t)e;
        float cur_d = qdist(ix, &qq, cur);
        st.distance_evals++;
        rc = grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t));
        for (int l = (int)(e >> 32); l > 0 && rc == 0; l--)
            greedy(ix, c, &qq, &cur, &cur_d, l, &st.distance_evals);
        if (rc == 0)
            rc = search_level(ix, c, &qq, cur, cur_d, ef, 0, &f, &st.distance_evals, &st.visited);
        if (rc == 0) m = take_sorted(c);
    }
    if (rc == 0 && m < 0) rc = m;
    if (rc == 0) *n_hits = finish_hits(ix, c, vec, m, q->k, rerank, hits, &st.distance_evals);
    if (rc == 0 && q->on_hit)
        for (int i = 0; i < *n_hits; i++)
            q->on_hit(q->on_hit_ctx, i, hits[i].node, ch(ix, hits[i].node)->payload[off(hits[i].node)]);
    sctx_put(ix, c);
    pthread_rwlock_unlock(&ix->rw);
    if (rc < 0) return sx_err_set(err, rc, "search: out of memory");
    if (stats) *stats = st;
    return 0;
}

int sx_index_search(sx_index *ix, const float *vec, const sx_index_query *q, sx_index_hit *hits,
                    int *n_hits, sx_search_stats *stats, sx_err *err) {
    return search_impl(ix, vec, q, 0, hits, n_hits, stats, err);
}

int sx_index_search_exact(sx_index *ix, const float *vec, const sx_index_query *q,
                          sx_index_hit *hits, int *n_hits, sx_search_stats *stats, sx_err *err) {
    return search_impl(ix, vec, q, 1, hits, n_hits, stats, err);
}

/* ---- accessors ---- */

void sx_index_set_cold_reader(sx_index *ix, sx_cold_read_fn read, void *ctx, const void *base) {
    if (!ix->f32_in_place) return;
    ix->cold_base = base;
    ix->cold_ctx = ctx;
    ix->cold_read = read;
}

int sx_index_get_vector(sx_index *ix, uint32_t node, float *out, sx_err *err) {
    if (node >= atomic_load(&ix->n_slots) || (flags_of(ix, node) & F_FREE) || !f32_of(ix, node))
        return sx_err_set(err, SX_ENOTFOUND, "index: no node %u", node);
    const float *v = f32_get(ix, node, out);
    if (v != out) memcpy(out, v, (size_t)ix->p.dim * sizeof(float));
    return 0;
}

uint64_t sx_index_payload(sx_index *ix, uint32_t node) {
    if (node >= atomic_load(&ix->n_slots)) return 0;
    return ch(ix, node)->payload[off(node)];
}

int sx_index_node_level(sx_index *ix, uint32_t node) {
    if (node >= atomic_load(&ix->n_slots) || (flags_of(ix, node) & F_FREE)) return -1;
    return ch(ix, node)->level[off(node)];
}

void sx_index_set_payload(sx_index *ix, uint32_t node, uint64_t payload) {
    if (node < atomic_load(&ix->n_slots)) ch(ix, node)->payload[off(node)] = payload;
}

int sx_index_is_live(sx_index *ix, uint32_t node) {
    return node < atomic_load(&ix->n_slots) && !(flags_of(ix, node) & (F_DELETED | F_FREE));
}

uint32_t sx_index_slots(sx_index *ix) { return atomic_load(&ix->n_slots); }

sx_index_params sx_index_get_params(sx_index *ix) { return ix->p; }

void sx_index_get_stats(sx_index *ix, sx_index_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&ix->rw);
    uint32_t n = atomic_load(&ix->n_slots);
    out->live = (size_t)atomic_load(&ix->n_live);
    out->deleted = (size_t)atomic_load(&ix->n_deleted);
    pthread_mutex_lock(&ix->alloc_lock);
    out->free_slots = ix->n_free;
    pthread_mutex_unlock(&ix->alloc_lock);
    uint64_t e = atomic_load(&ix->ep);
    out->max_level = (uint32_t)e == NONE ? -1 : (int)(e >> 32);
    for (uint32_t i = 0; i < n; i++)
        if (!(flags_of(ix, i) & F_FREE)) out->nodes_per_level[ch(ix, i)->level[off(i)]]++;
    for (int l = MAX_LEVEL - 1; l >= 0; l--) out->nodes_per_level[l] += out->nodes_per_level[l + 1];
    size_t chunks = ((size_t)n + CHUNK - 1) / CHUNK;
    out->bytes_vectors = chunks * CHUNK * (size_t)ix->code_size;
    size_t meta = 2 + 8 + sizeof(void *) + sizeof(uint64_t) + (ix->sq8 ? sizeof(void *) : 0);
    out->bytes_graph = chunks * CHUNK * ((size_t)(1 + ix->M0) * 4 + meta) +
                       atomic_load(&ix->upper_bytes) + chunks * sizeof(chunk *);
    out->bytes_fp32 = atomic_load(&ix->f32_heap_bytes);
    if (ix->sq8 && ix->f32_hi > ix->f32_lo) {
        size_t owned = ix->f32_owned ? (size_t)(ix->f32_hi - ix->f32_lo) : 0;
        out->bytes_fp32 += owned;
        out->bytes_fp32_mapped = (size_t)(ix->f32_hi - ix->f32_lo) - owned;
    }
    pthread_rwlock_unlock(&ix->rw);
}

int sx_index_check(sx_index *ix, sx_index_check_result *out, sx_err *err) {
    memset(out, 0, sizeof *out);
    pthread_rwlock_wrlock(&ix->wlock);
    pthread_rwlock_rdlock(&ix->rw);
    uint32_t n = atomic_load(&ix->n_slots), head = 0, tail = 0;
    uint32_t *queue = sx_index_malloc((size_t)n * sizeof *queue + 1);
    uint8_t *seen = sx_index_calloc((size_t)n + 1, 1);
    int rc = queue && seen ? 0 : sx_err_set(err, SX_ENOMEM, "index: out of memory checking");
    uint32_t e = (uint32_t)atomic_load(&ix->ep);
    for (uint32_t x = 0; x < n && rc == 0; x++) {
        if (flags_of(ix, x) & F_FREE) continue;
        out->nodes++;
        const _Atomic uint32_t *l = links_at(ix, x, 0);
        uint32_t m = atomic_load(&l[0]), a = atomic_load(anchor_of(ix, x));
        for (uint32_t j = 0; j < m && j < (uint32_t)ix->M0; j++) {
            uint32_t y = atomic_load(&l[1 + j]);
            if (y >= n || (flags_of(ix, y) & F_FREE)) out->bad_links++;
        }
        if (a == NONE)
            out->unanchored += x != e;
        else if (a >= n || (flags_of(ix, a) & F_FREE) || !ranks_below(ix, a, x) ||
                 !links_to(ix, a, x))
            out->bad_anchors++;
    }
    if (rc == 0 && e != NONE) {
        seen[e] = 1;
        queue[tail++] = e;
    }
    while (rc == 0 && head < tail) {
        const _Atomic uint32_t *l = links_at(ix, queue[head++], 0);
        uint32_t m = atomic_load(&l[0]);
        for (uint32_t j = 0; j < m && j < (uint32_t)ix->M0; j++) {
            uint32_t y = atomic_load(&l[1 + j]);
            if (y < n && !seen[y] && !(flags_of(ix, y) & F_FREE)) {
                seen[y] = 1;
                queue[tail++] = y;
            }
        }
    }
    for (uint32_t x = 0; x < n && rc == 0; x++)
        if (!(flags_of(ix, x) & (F_FREE | F_DELETED)) && !seen[x]) out->unreachable++;
    pthread_rwlock_unlock(&ix->rw);
    pthread_rwlock_unlock(&ix->wlock);
    sx_index_free_mem(queue);
    sx_index_free_mem(seen);
    return rc;
}

/* ---- persistence ---- */

#define TAG_HEAD SX_TAG('I', 'X', 'H', 'D')
#define TAG_NODE SX_TAG('I', 'X', 'N', 'D')
#define TAG_LNK0 SX_TAG('I', 'X', 'L', '0')
#define TAG_LNKU SX_TAG('I', 'X', 'L', 'U')
#define TAG_CODE SX_TAG('I', 'X', 'C', 'D')
#define TAG_VF32 SX_TAG('I', 'X', 'V', 'F')

int sx_index_save(sx_index *ix, sx_sink *out, sx_err *err) {
    pthread_rwlock_wrlock(&ix->wlock);
    pthread_rwlock_rdlock(&ix->rw);
    uint32_t n = atomic_load(&ix->n_slots);
    const sx_index_params *p = &ix->p;
    uint64_t e = atomic_load(&ix->ep);
    size_t d = (size_t)p->dim;
    int rc = sx_sink_begin(out, TAG_HEAD, 4 * 12 + 8 * 2 + (ix->sq8 ? 8 * d : 0));
    uint32_t head[12] = {FORMAT_VERSION, (uint32_t)p->dim, (uint32_t)p->M,
                         (uint32_t)p->ef_construction, (uint32_t)p->ef_search,
                         (uint32_t)p->storage, (uint32_t)p->metric, (uint32_t)p->rerank,
                         (uint32_t)p->train_size, n, (uint32_t)e, (uint32_t)(e >> 32)};
    for (int i = 0; i < 12; i++) sx_sink_u32(out, head[i]);
    sx_sink_u64(out, p->seed);
    sx_sink_u64(out, atomic_load(&ix->level_ctr) | (uint64_t)ix->trained << 63);
    if (ix->sq8) {
        sx_sink_u32_array(out, ix->q.vmin, d);
        sx_sink_u32_array(out, ix->q.vscale, d);
    }
    sx_sink_end(out);
    /* Nodes: flags (pending is saved as pending) and level. */
    sx_sink_begin(out, TAG_NODE, (uint64_t)n * 2);
    size_t n_upper = 0;
    for (uint32_t i = 0; i < n && !out->error; i++) {
        uint8_t b[2] = {(uint8_t)(flags_of(ix, i) & (F_PUBLISHED | F_DELETED | F_FREE)),
                        ch(ix, i)->level[off(i)]};
        if (!(b[0] & F_FREE)) n_upper += b[1];
        sx_sink_write(out, b, 2);
    }
    sx_sink_end(out);
    sx_sink_begin(out, TAG_LNK0, (uint64_t)n * (size_t)(1 + ix->M0) * 4);
    for (uint32_t i = 0; i < n && !out->error; i += CHUNK) {
        uint32_t cnt = n - i < CHUNK ? n - i : CHUNK;
        sx_sink_u32_array(out, (const void *)ch(ix, i)->links0, (size_t)cnt * (size_t)(1 + ix->M0));
    }
    sx_sink_end(out);
    sx_sink_begin(out, TAG_LNKU, (uint64_t)n_upper * (size_t)(1 + p->M) * 4);
    for (uint32_t i = 0; i < n && !out->error; i++) {
        int lv = ch(ix, i)->level[off(i)];
        if (lv && !(flags_of(ix, i) & F_FREE))
            sx_sink_u32_array(out, (const void *)ch(ix, i)->upper[off(i)], (size_t)lv * (size_t)(1 + p->M));
    }
    sx_sink_end(out);
    sx_sink_begin(out, TAG_CODE, (uint64_t)n * (size_t)ix->code_size);
    for (uint32_t i = 0; i < n && !out->error; i += CHUNK) {
        size_t cnt = n - i < CHUNK ? n - i : CHUNK;
        if (ix->sq8) sx_sink_write(out, ch(ix, i)->codes, cnt * d);
        else sx_sink_u32_array(out, ch(ix, i)->codes, cnt * d);
    }
    sx_sink_end(out);
    if (ix->sq8) {
        float *zero = sx_index_calloc(d, sizeof(float));
        if (!zero) out->error = SX_ENOMEM;
        sx_sink_begin(out, TAG_VF32, (uint64_t)n * d * 4);
        float buf[SX_INDEX_MAX_DIM];
        for (uint32_t i = 0; i < n && !out->error; i++) {
            const float *v = f32_get(ix, i, buf);
            sx_sink_u32_array(out, v ? v : zero, d);
        }
        sx_sink_end(out);
        sx_index_free_mem(zero);
    }
    pthread_rwlock_unlock(&ix->rw);
    pthread_rwlock_unlock(&ix->wlock);
    if (out->error || rc < 0)
        return sx_err_set(err, out->error ? out->error : rc, "index: write failed (%s)",
                          sx_strerror(out->error ? out->error : rc));
    return 0;
}

static int corrupt(sx_err *err, const char *what, uint32_t node) {
    return sx_err_set(err, SX_ECORRUPT, "index: %s (node %u)", what, node);
}

/* Checks one stored list: count within cap, ids below n and not free. */
static int check_list(const _Atomic uint32_t *l, int cap, uint32_t n, const uint8_t *nodes) {
    uint32_t cnt = atomic_load_explicit(&l[0], memory_order_relaxed);
    if (cnt > (uint32_t)cap) return -1;
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t v = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        if (v >= n || (nodes[2 * v] & F_FREE)) return -1;
    }
    return 0;
}

static int load_head(sx_source *src, sx_index **out, uint32_t *n_out, uint64_t *ep_out,
                     sx_err *err) {
    sx_section s;
    int rc = sx_source_section(src, TAG_HEAD, 0, &s, err);
    if (rc < 0) return rc;
    uint32_t h[12];
    uint64_t pos = 0, seed = 0, ctr = 0;
    for (int i = 0; i < 12 && rc == 0; i++) rc = sx_section_u32(&s, &pos, &h[i]);
    if (rc == 0) rc = sx_section_u64(&s, &pos, &seed);
    if (rc == 0) rc = sx_section_u64(&s, &pos, &ctr);
    if (rc < 0) {
        sx_section_release(&s);
        return sx_err_set(err, SX_ECORRUPT, "index: header too short");
    }
    if (h[0] != FORMAT_VERSION) {
        sx_section_release(&s);
        return sx_err_set(err, SX_EUNSUPPORTED, "index: format version %u, this build reads %d", h[0], FORMAT_VERSION);
    }
    sx_index_params p = {(int)h[1], (int)h[2], (int)h[3], (int)h[4], (int)h[5], (int)h[6],
                         (int)h[7], (int)h[8], seed};
    sx_index *ix = NULL;
    rc = sx_index_create(&p, &ix, err);
    if (rc < 0) {
        sx_section_release(&s);
        sx_err_prefix(err, "index header");
        if (err) err->code = SX_ECORRUPT;
        return SX_ECORRUPT;
    }
    if (h[9] > MAX_SLOTS || (h[10] != NONE && (h[10] >= h[9] || h[11] > MAX_LEVEL))) rc = SX_ECORRUPT;
    atomic_store(&ix->level_ctr, ctr & ~(1ull << 63));
    ix->trained = (int)(ctr >> 63);
    if (rc == 0 && ix->sq8) {
        size_t d = (size_t)p.dim;
        if (s.len - pos != 8 * d) rc = SX_ECORRUPT;
        for (size_t i = 0; i < d && rc == 0; i++) {
            float lo, sc;
            if (sx_section_f32(&s, &(uint64_t){pos + 4 * i}, &lo) < 0 ||
                sx_section_f32(&s, &(uint64_t){pos + 4 * (d + i)}, &sc) < 0 || !isfinite(lo) ||
                !isfinite(sc) || !(sc > 0))
                rc = SX_ECORRUPT;
            else {
                ix->q.vmin[i] = lo;
                ix->q.vscale[i] = sc;
            }
        }
    } else if (rc == 0 && s.len != pos) {
        rc = SX_ECORRUPT;
    }
    sx_section_release(&s);
    if (rc < 0) {
        sx_index_free(ix);
        return sx_err_set(err, SX_ECORRUPT, "index: inconsistent header");
    }
    *out = ix;
    *n_out = h[9];
    *ep_out = (uint64_t)h[11] << 32 | h[10];
    return 0;
}

static int load_body(sx_source *src, sx_index *ix, uint32_t n, uint64_t e, sx_err *err) {
    sx_section nodes = {0}, l0 = {0}, lu = {0}, cd = {0}, vf = {0};
    size_t d = (size_t)ix->p.dim, s0 = (size_t)(1 + ix->M0), su = (size_t)(1 + ix->p.M);
    int rc = sx_source_section(src, TAG_NODE, 0, &nodes, err);
    if (rc == 0 && nodes.len != (uint64_t)n * 2) rc = corrupt(err, "node table has the wrong size", n);
    if (rc == 0) rc = sx_source_section(src, TAG_LNK0, 0, &l0, err);
    if (rc == 0 && l0.len != (uint64_t)n * s0 * 4) rc = corrupt(err, "level-0 links have the wrong size", n);
    if (rc == 0) rc = sx_source_section(src, TAG_LNKU, 0, &lu, err);
    if (rc == 0) rc = sx_source_section(src, TAG_CODE, 0, &cd, err);
    if (rc == 0 && cd.len != (uint64_t)n * (size_t)ix->code_size) rc = corrupt(err, "codes have the wrong size", n);
    if (rc == 0 && ix->sq8) rc = sx_source_section(src, TAG_VF32, 1, &vf, err);
    if (rc == 0 && ix->sq8 && vf.len != (uint64_t)n * d * 4) rc = corrupt(err, "fp32 vectors have the wrong size", n);
    /* fp32 block: in place when mapped, aligned and little-endian. */
    const float *f32base = NULL;
    if (rc == 0 && ix->sq8) {
        if (vf.owned) {
            ix->f32_owned = vf.owned;
            vf.owned = NULL;
            sx_le32_copy(ix->f32_owned, ix->f32_owned, vf.len / 4);
            f32base = ix->f32_owned;
        } else if (sx_host_little_endian() && ((uintptr_t)vf.data & 3) == 0) {
            f32base = (const float *)(const void *)vf.data;
            ix->f32_in_place = 1;
        } else if ((ix->f32_owned = sx_index_malloc(vf.len ? vf.len : 1)) != NULL) {
            sx_le32_copy(ix->f32_owned, vf.data, vf.len / 4);
            f32base = ix->f32_owned;
        } else {
            rc = sx_err_set(err, SX_ENOMEM, "index: out of memory");
        }
        ix->f32_lo = (const uint8_t *)f32base;
        ix->f32_hi = ix->f32_lo + (f32base ? vf.len : 0);
    }
    uint64_t upos = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint8_t fl = nodes.data[2 * i], lv = nodes.data[2 * i + 1];
        if (fl & ~(F_PUBLISHED | F_DELETED | F_FREE) || lv > MAX_LEVEL ||
            ((fl & F_FREE) && fl != F_FREE)) {
            rc = corrupt(err, "bad node flags or level", i);
            break;
        }
        if (!ix->dir[i >> CHUNK_SHIFT] && !(ix->dir[i >> CHUNK_SHIFT] = chunk_new(ix))) {
            rc = sx_err_set(err, SX_ENOMEM, "index: out of memory loading");
            break;
        }
        chunk *c = ch(ix, i);
        uint32_t o = off(i);
        c->level[o] = (fl & F_FREE) ? 0 : lv;
        atomic_init(&c->flags[o], fl);
        sx_le32_copy((void *)(c->links0 + (size_t)o * s0), l0.data + (size_t)i * s0 * 4, s0);
        if (ix->sq8) memcpy(c->codes + (size_t)o * d, cd.data + (size_t)i * d, d);
        else sx_le32_copy(c->codes + (size_t)o * d * 4, cd.data + (size_t)i * d * 4, d);
        if (ix->sq8 && !(fl & F_FREE)) c->f32[o] = f32base + (size_t)i * d;
        if (!(fl & F_FREE) && lv) {
            size_t words = (size_t)lv * su;
            if (lu.len - upos < words * 4) {
                rc = corrupt(err, "upper links section too short", i);
                break;
            }
            c->upper[o] = sx_index_malloc(words * 4);
            if (!c->upper[o]) {
                rc = sx_err_set(err, SX_ENOMEM, "index: out of memory loading");
                break;
            }
            sx_le32_copy((void *)c->upper[o], lu.data + upos, words);
            upos += words * 4;
            atomic_fetch_add(&ix->upper_bytes, words * 4);
        }
        if (fl == F_FREE) {
            if (grow((void **)&ix->free_ids, &ix->cap_free, ix->n_free + 1, 4) < 0) {
                rc = sx_err_set(err, SX_ENOMEM, "index: out of memory loading");
                break;
            }
            ix->free_ids[ix->n_free++] = i;
            atomic_store(&c->links0[(size_t)o * s0], 0);
        } else if (fl & F_DELETED) {
            atomic_fetch_add(&ix->n_deleted, 1);
        } else if (fl & F_PUBLISHED) {
            atomic_fetch_add(&ix->n_live, 1);
        } else {
            atomic_fetch_add(&ix->n_pending, 1);
        }
    }
    if (rc == 0 && upos != lu.len) rc = corrupt(err, "upper links section has extra bytes", n);
    atomic_store(&ix->n_slots, n);
    /* Every list must point at existing nodes within its capacity. */
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (nodes.data[2 * i] & F_FREE) continue;
        for (int l = 0; l <= ch(ix, i)->level[off(i)] && rc == 0; l++)
            if (check_list(links_at(ix, i, l), level_cap(ix, l), n, nodes.data) < 0)
                rc = corrupt(err, "bad link list", i);
    }
    if (rc == 0 && (uint32_t)e != NONE) {
        uint32_t en = (uint32_t)e;
        if ((nodes.data[2 * en] & F_FREE) || ch(ix, en)->level[off(en)] != (int)(e >> 32))
            rc = corrupt(err, "bad entry point", en);
    }
    if (rc == 0 && (uint32_t)e == NONE && n > 0 && (size_t)ix->n_free < n)
        rc = corrupt(err, "no entry point in a non-empty graph", n);
    if (rc == 0) atomic_store(&ix->ep, e);
    sx_section_release(&nodes);
    sx_section_release(&l0);
    sx_section_release(&lu);
    sx_section_release(&cd);
    sx_section_release(&vf);
    return rc;
}

int sx_index_load(sx_source *src, sx_index **out, sx_err *err) {
    *out = NULL;
    sx_index *ix = NULL;
    uint32_t n = 0;
    uint64_t e = 0;
    int rc = load_head(src, &ix, &n, &e, err);
    if (rc < 0) return rc;
    rc = load_body(src, ix, n, e, err);
    sctx *c = rc == 0 ? sctx_get(ix) : NULL;
    if (rc == 0 && (!c || rank_all(ix) < 0 || adopt_orphans(ix, c, n) < 0))
        rc = sx_err_set(err, SX_ENOMEM, "index: out of memory loading");
    if (c) sctx_put(ix, c);
    if (rc < 0) {
        sx_index_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}
