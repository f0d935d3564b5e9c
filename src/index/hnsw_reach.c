/*
 * hnsw_reach.c - every node of the HNSW graph stays reachable: ranks and
 * anchors, the level-0 list rewrites that keep anchors, adoption of nodes
 * left without one, ranking the whole graph afresh, and sx_index_check,
 * which verifies all of it. The rest of the design is in hnsw.c.
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
 * gets links from them too, never to them (see hnsw_vacuum.c), or its
 * only links would come from far away (1 run in 100 missed a paper so).
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
 */
#include "hnsw_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- anchors ---- */

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
void hnsw_take_anchor(sx_index *ix, uint32_t u, uint32_t x, const dset *D) {
    _Atomic uint32_t *a = anchor_of(ix, x);
    uint32_t cur = atomic_load_explicit(a, memory_order_relaxed);
    if (cur == u || !ranks_below(ix, u, x)) return;
    if (cur != NONE &&
        (!links_to(ix, x, u) || (!(D && in_set(D, cur)) && links_to(ix, x, cur))))
        return;
    atomic_compare_exchange_strong_explicit(a, &cur, u, memory_order_relaxed, memory_order_relaxed);
}

enum { E_NEW, E_OLD, E_PINNED }; /* an entry of a list being rewritten */

/* Notes x, left without an anchor, for adoption once the caller's stripes
 * are released (or, when the list is full, for a fresh ranking). */
void hnsw_note_orphan(sx_index *ix, sctx *c, uint32_t x) {
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
 * (hnsw_take_anchor). Caller holds u's stripe. */
void hnsw_write_links0(sx_index *ix, sctx *c, uint32_t u, const uint32_t *sel, int k,
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
            hnsw_note_orphan(ix, c, x);
        }
    }
    hnsw_write_links(ix, u, 0, out, n);
    for (int j = 0; j < n; j++)
        if (st[j] == E_NEW || (D && st[j] == E_OLD)) hnsw_take_anchor(ix, u, out[j], D);
}

/* The entry of u's full level-0 list that can give way to a new link: the
 * farthest from u that anchors nothing. Returns its index, or -1 when every
 * entry is an anchor. Caller holds u's stripe; c->work has room for M0
 * pairs. */
static int give_way(sx_index *ix, sctx *c, uint32_t u) {
    _Atomic uint32_t *l = links_at(ix, u, 0);
    int m = (int)atomic_load_explicit(&l[0], memory_order_relaxed);
    qv qu;
    hnsw_qv_node(ix, c, &qu, u);
    for (int j = 0; j < m; j++) {
        uint32_t y = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        c->work[j] = (pair){qdist(ix, &qu, y), (uint32_t)j};
    }
    qsort(c->work, (size_t)m, sizeof(pair), hnsw_pair_cmp);
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
int hnsw_link_into(sx_index *ix, sctx *c, uint32_t u, uint32_t x) {
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
    hnsw_take_anchor(ix, u, x, NULL);
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
        if (!ranks_below(ix, x, y) || !hnsw_link_into(ix, c, x, y)) continue;
        uint32_t was = u;
        atomic_compare_exchange_strong(anchor_of(ix, y), &was, x);
        atomic_store_explicit(&l[1 + j], x, memory_order_release);
        hnsw_take_anchor(ix, u, x, NULL);
        return 1;
    }
    return 0;
}

/* Anchors x from u, a node of lower rank: hnsw_link_into, else (between = 1)
 * put_between, holding the two stripes in address order. Returns 1 when
 * done, else 0. */
static int anchor_from(sx_index *ix, sctx *c, uint32_t u, uint32_t x, int between) {
    pthread_mutex_t *a = stripe(ix, u), *b = stripe(ix, x);
    /* a vacuum under way must drop this link before it frees x */
    if (flags_of(ix, x) & F_DELETED) atomic_store(&ix->linked_deleted, 1);
    pthread_mutex_lock(a);
    int ok = hnsw_link_into(ix, c, u, x);
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
        ok = hnsw_link_into(ix, c, u, x) || put_between(ix, c, u, x);
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
int hnsw_adopt(sx_index *ix, sctx *c, uint32_t x) {
    uint64_t e = atomic_load_explicit(&ix->ep, memory_order_acquire);
    /* nothing to reach x from (every other node deleted), or x is the entry
     * point, or about to be */
    if ((uint32_t)e == NONE || !ranks_below(ix, (uint32_t)e, x)) return 1;
    if (hnsw_grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t)) < 0)
        return SX_ENOMEM;
    for (int pass = 0; pass < 2; pass++) {
        /* First the usual descent; then, should the upper levels lead into
         * a part of level 0 that the entry point does not reach (after a
         * vacuum, before adoptions), a walk from the entry point itself. */
        qv q;
        hnsw_qv_node(ix, c, &q, x);
        uint32_t cur = (uint32_t)e, cand[64];
        float cur_d = qdist(ix, &q, cur);
        long evals = 0, visited = 0;
        for (int l = pass ? 0 : (int)(e >> 32); l > 0; l--)
            hnsw_greedy(ix, c, &q, &cur, &cur_d, l, &evals);
        filt none = {0, NULL, 0};
        int rc = hnsw_search_level(ix, c, &q, cur, cur_d, ix->p.ef_construction, 0, &none, &evals,
                              &visited);
        if (rc < 0) return rc;
        int n = hnsw_take_sorted(c);
        if (n < 0 || hnsw_grow((void **)&c->work, &c->work_cap, (size_t)ix->M0, sizeof(pair)) < 0)
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

/* ---- ranks ---- */

/* Anchors every node in [0, n) that has no anchor (adopt). Returns how
 * many could not be, or SX_ENOMEM. Called holding rw shared. */
int hnsw_adopt_orphans(sx_index *ix, sctx *c, uint32_t n) {
    int failed = 0, rc = 0;
    for (uint32_t x = 0; x < n && rc >= 0; x++)
        if (!(flags_of(ix, x) & F_FREE) &&
            atomic_load_explicit(anchor_of(ix, x), memory_order_relaxed) == NONE &&
            (rc = hnsw_adopt(ix, c, x)) == 0)
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
int hnsw_rank_all(sx_index *ix) {
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

/* Ranks the graph afresh (hnsw_rank_all, while searches wait) and anchors the
 * nodes that no walk reached (hnsw_adopt_orphans, concurrently with searches and
 * inserts): after an adoption failed, when the rank counters run low, and
 * after loading (old snapshots may hold unreachable nodes). Every node
 * reachable then ranks below them, so they find anchors nearby. Caller
 * holds wlock shared. Returns 0 or SX_ENOMEM. */
int hnsw_rerank(sx_index *ix, sctx *c) {
    pthread_rwlock_wrlock(&ix->rw);
    atomic_store(&ix->adopt_failed, 0);
    int rc = hnsw_rank_all(ix);
    pthread_rwlock_unlock(&ix->rw);
    if (rc == 0) {
        pthread_rwlock_rdlock(&ix->rw);
        rc = hnsw_adopt_orphans(ix, c, atomic_load(&ix->n_slots));
        pthread_rwlock_unlock(&ix->rw);
    }
    return rc < 0 ? rc : 0;
}

/* ---- checking ---- */

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
