/*
 * hnsw.c - the HNSW graph's core: creation, insert, search (graph walk,
 * filters, exact scan), delete, accessors.
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
 * Files. The index is one subsystem in four files around one internal
 * header, hnsw_int.h (the struct bodies, the per-node accessors and the
 * functions one file calls in another, prefixed hnsw_):
 *
 *     hnsw.c         this file: the walk, insert, search, delete
 *     hnsw_reach.c   reachability: ranks, anchors, adoption, sx_index_check
 *     hnsw_vacuum.c  housekeeping: SQ8 training, vacuum and repair,
 *                    sx_index_maintain
 *     hnsw_io.c      the file format: sx_index_save, sx_index_load
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
 * only to put a node between two others, see hnsw_reach.c, and takes them
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
 * a vacuum and (c) a fresh ranking (see hnsw_reach.c). `wlock` is held
 * shared by inserts, deletes and vacuums and exclusively by save and
 * sx_index_check, so a snapshot is consistent while searches go on. glibc's
 * writer-preferring rwlock kind is used so a stream of searches cannot
 * starve a vacuum.
 *
 * Deletes. Deleting only sets a flag: the node is never returned again but
 * stays in the graph for navigation (as in hnswlib's markDelete); a vacuum
 * (hnsw_vacuum.c) later unlinks it and hands its slot to a later insert.
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
#include "hnsw_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef PREFETCH
#define PREFETCH 4 /* codes prefetched ahead in a walk (measured: bench/ann) */
#endif

/* ---- small helpers ---- */

/* The fp32 vector of id, read into buf (dim floats) by the owner's reader
 * when it lies in a mapped snapshot (sx_index_set_cold_reader), else used in
 * place. Reading cold vectors through the file keeps them in the page cache
 * only: touched through the mapping, every re-ranked vector would stay in
 * this process's resident memory. */
const float *hnsw_f32_get(const sx_index *ix, uint32_t id, float *buf) {
    const float *v = f32_of(ix, id);
    const uint8_t *b = (const uint8_t *)v;
    if (ix->cold_read && v && b >= ix->f32_lo && b < ix->f32_hi) {
        size_t len = (size_t)ix->p.dim * sizeof(float);
        if (ix->cold_read(ix->cold_ctx, buf, len, (uint64_t)(b - ix->cold_base)) == 0) return buf;
    }
    return v;
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

int hnsw_pair_cmp(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int hnsw_grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *p = sx_index_realloc(*arr, nc * elem);
    if (!p) return SX_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

/* ---- query preparation ---- */

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

/* Prepares stored node id as a query (SQ8: decoded from its code, so an
 * insert never touches mapped fp32 pages). */
void hnsw_qv_node(const sx_index *ix, sctx *c, qv *q, uint32_t id) {
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

sctx *hnsw_sctx_get(sx_index *ix) {
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

void hnsw_sctx_put(sx_index *ix, sctx *c) {
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
void hnsw_greedy(const sx_index *ix, sctx *c, const qv *q, uint32_t *cur, float *cur_d,
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
int hnsw_search_level(const sx_index *ix, sctx *c, const qv *q, uint32_t ep, float ep_d,
                        int ef, int level, const filt *f, long *evals, long *visited) {
    c->n_cand = c->n_res = 0;
    if (hnsw_grow((void **)&c->res, &c->res_cap, (size_t)ef + 2, sizeof(pair)) < 0 ||
        hnsw_grow((void **)&c->cand, &c->cand_cap, 256, sizeof(pair)) < 0)
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
                if (hnsw_grow((void **)&c->cand, &c->cand_cap, c->n_cand + 1, sizeof(pair)) < 0)
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
int hnsw_take_sorted(sctx *c) {
    if (hnsw_grow((void **)&c->work, &c->work_cap, c->n_res + 1, sizeof(pair)) < 0) return SX_ENOMEM;
    int n = (int)c->n_res;
    for (int i = n - 1; i >= 0; i--) c->work[i] = heap_pop(c->res, &c->n_res);
    return n;
}

/* The neighbour-selection heuristic: from cand (sorted by distance to the
 * base node, n entries) keeps up to m, writing ids to out. */
int hnsw_select_heuristic(const sx_index *ix, sctx *c, const pair *cand, int n, int m,
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
            hnsw_qv_node(ix, c, &qc, cand[i].id);
            for (int s = 0; s < sel && good; s++)
                if (qdist(ix, &qc, out[s]) < cand[i].d) good = 0;
        }
        if (good) out[sel++] = cand[i].id;
    }
    return sel;
}

/* Replaces node id's list at level with ids[0..n) (caller holds its stripe). */
void hnsw_write_links(sx_index *ix, uint32_t id, int level, const uint32_t *ids, int n) {
    _Atomic uint32_t *l = links_at(ix, id, level);
    uint32_t old = atomic_load_explicit(&l[0], memory_order_relaxed);
    /* Grow: entries first, then the count. Shrink: the count first. */
    if ((uint32_t)n < old) atomic_store_explicit(&l[0], (uint32_t)n, memory_order_release);
    for (int j = 0; j < n; j++) atomic_store_explicit(&l[1 + j], ids[j], memory_order_release);
    atomic_store_explicit(&l[0], (uint32_t)n, memory_order_release);
}

/* ---- insert ---- */

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
        if (level == 0) hnsw_take_anchor(ix, e, node, NULL);
        pthread_mutex_unlock(mu);
        return 0;
    }
    if (hnsw_grow((void **)&c->work, &c->work_cap, (size_t)cap + 1, sizeof(pair)) < 0 ||
        hnsw_grow((void **)&c->ids, &c->ids_cap, (size_t)cap + 1, sizeof(uint32_t)) < 0) {
        pthread_mutex_unlock(mu);
        return SX_ENOMEM;
    }
    qv qe;
    hnsw_qv_node(ix, c, &qe, e);
    for (uint32_t j = 0; j < n; j++) {
        uint32_t id = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        c->work[j] = (pair){qdist(ix, &qe, id), id};
    }
    c->work[n] = (pair){qdist(ix, &qe, node), node};
    qsort(c->work, n + 1, sizeof(pair), hnsw_pair_cmp);
    uint32_t sel[2 * 256 + 1];
    int k = hnsw_select_heuristic(ix, c, c->work, (int)n + 1, cap, sel);
    if (level == 0) hnsw_write_links0(ix, c, e, sel, k, NULL);
    else hnsw_write_links(ix, e, level, sel, k);
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
    int rc = hnsw_grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t));
    if (rc == 0 && held) rc = hnsw_grow((void **)&c->work, &c->work_cap, (size_t)ix->M0, sizeof(pair));
    for (int l = top; l > level && rc == 0; l--) hnsw_greedy(ix, c, &q, &cur, &cur_d, l, &evals);
    filt none = {0, NULL, 0};
    for (int l = level < top ? level : top; l >= 0 && rc == 0; l--) {
        rc = hnsw_search_level(ix, c, &q, cur, cur_d, ix->p.ef_construction, l, &none, &evals, &visited);
        if (rc < 0) break;
        int n = hnsw_take_sorted(c);
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
        int k = hnsw_select_heuristic(ix, c, c->work, m, ix->p.M, sel);
        pthread_mutex_lock(stripe(ix, node));
        if (l == 0) {
            /* A new entry point ranks lowest: it anchors the old one. The
             * list may have had to keep anchors that concurrent inserts
             * made in place of the link to it: then it is linked in place
             * of one that anchors nothing, or failing that adopted. */
            int k0 = k;
            if (held && !in_ids(sel, k, (uint32_t)e)) sel[k0++] = (uint32_t)e;
            hnsw_write_links0(ix, c, node, sel, k0, NULL);
            if (held && !hnsw_link_into(ix, c, node, (uint32_t)e)) hnsw_note_orphan(ix, c, (uint32_t)e);
        } else {
            hnsw_write_links(ix, node, l, sel, k);
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
        failed += (rc = hnsw_adopt(ix, c, node)) == 0;
    while (rc >= 0 && c->n_orphans > 0) {
        uint32_t x = c->orphans[--c->n_orphans];
        if (atomic_load_explicit(anchor_of(ix, x), memory_order_relaxed) == NONE)
            failed += (rc = hnsw_adopt(ix, c, x)) == 0;
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

int hnsw_owns_f32(const sx_index *ix, const float *v) {
    const uint8_t *b = (const uint8_t *)v;
    return v && !(b >= ix->f32_lo && b < ix->f32_hi);
}

static void chunk_free(sx_index *ix, chunk *c) {
    if (!c) return;
    for (uint32_t i = 0; i < CHUNK; i++) {
        if (c->upper) sx_index_free_mem(c->upper[i]);
        if (c->f32 && hnsw_owns_f32(ix, c->f32[i])) sx_index_free_mem((void *)c->f32[i]);
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

chunk *hnsw_chunk_new(const sx_index *ix) {
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
        chunk *c = hnsw_chunk_new(ix);
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

void hnsw_slot_unalloc(sx_index *ix, uint32_t id) {
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
    int rc = hnsw_grow((void **)&ix->free_ids, &ix->cap_free, ix->n_free + 1, sizeof(uint32_t));
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
    sctx *sc = hnsw_sctx_get(ix);
    rc = sc ? connect_node(ix, sc, node, level, vec, e, held) : SX_ENOMEM;
    if (sc) hnsw_sctx_put(ix, sc);
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

/* ---- search ---- */

/* Sorts the best n (by d) of work[0..m) into hits, re-ranking with fp32 when
 * asked; returns the hit count. */
static int finish_hits(sx_index *ix, sctx *c, const float *vec, int m, int k, int rerank,
                       sx_index_hit *hits, long *evals) {
    if (m <= 0) return 0;
    qsort(c->work, (size_t)m, sizeof(pair), hnsw_pair_cmp);
    if (ix->sq8 && rerank > 0) {
        int r = rerank > k ? rerank : k;
        if (r > m) r = m;
        float buf[SX_INDEX_MAX_DIM];
        for (int i = 0; i < r; i++) {
            const float *v = hnsw_f32_get(ix, c->work[i].id, buf);
            c->work[i].d = -ix->k->dot_f32(vec, v, (size_t)ix->p.dim);
            (*evals)++;
        }
        qsort(c->work, (size_t)r, sizeof(pair), hnsw_pair_cmp);
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
    if (hnsw_grow((void **)&c->res, &c->res_cap, (size_t)keep + 2, sizeof(pair)) < 0) return SX_ENOMEM;
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
                const float *v = hnsw_f32_get(ix, id, buf);
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
    sctx *c = hnsw_sctx_get(ix);
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
        if (rc == 0) m = hnsw_take_sorted(c);
        rerank = keep;
    } else if (brute) {
        /* A scan is exact (fp32): it runs on few nodes, and the quantised
         * scores of a small set are too close to rank it reliably. */
        st.strategy = SX_STRATEGY_BRUTE;
        rc = scan(ix, c, &qq, &f, q->k, 1, &st.distance_evals);
        st.visited = st.distance_evals;
        if (rc == 0) m = hnsw_take_sorted(c);
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
        rc = hnsw_grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t));
        for (int l = (int)(e >> 32); l > 0 && rc == 0; l--)
            hnsw_greedy(ix, c, &qq, &cur, &cur_d, l, &st.distance_evals);
        if (rc == 0)
            rc = hnsw_search_level(ix, c, &qq, cur, cur_d, ef, 0, &f, &st.distance_evals, &st.visited);
        if (rc == 0) m = hnsw_take_sorted(c);
    }
    if (rc == 0 && m < 0) rc = m;
    if (rc == 0) *n_hits = finish_hits(ix, c, vec, m, q->k, rerank, hits, &st.distance_evals);
    if (rc == 0 && q->on_hit)
        for (int i = 0; i < *n_hits; i++)
            q->on_hit(q->on_hit_ctx, i, hits[i].node, ch(ix, hits[i].node)->payload[off(hits[i].node)]);
    hnsw_sctx_put(ix, c);
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
    const float *v = hnsw_f32_get(ix, node, out);
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
