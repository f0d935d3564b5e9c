/*
 * hnsw_vacuum.c - the index's housekeeping: learning the SQ8 ranges,
 * reclaiming deleted nodes (vacuum and repair), and deciding when each is
 * due (sx_index_maintain). The rest of the design is in hnsw.c.
 *
 * Vacuum. Deleting only sets a flag (hnsw.c): the node is never returned
 * again but stays in the graph for navigation. A vacuum reclaims deleted
 * nodes in four steps: (1) exclusively, for a moment, take
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
 * (see hnsw_reach.c). Later inserts reuse the slots. Rejected: hnswlib's
 * in-place replacement of a deleted node's vector, which races with readers
 * of that vector; and a per-node seqlock, which would tax every distance.
 *
 * SQ8 training. Codes start with a global [-1, 1] range; once train_size
 * vectors exist the ranges are learnt from every node's fp32 vector and
 * every code is re-encoded, once, holding rw exclusively (searches wait for
 * that moment; see Concurrency in hnsw.c).
 *
 * When. sx_index_maintain runs each task when it is due: the training once
 * train_size vectors exist; a vacuum when deleted nodes reach 64 and 5% of
 * the nodes, or outnumber the live ones; a fresh ranking (hnsw_reach.c)
 * when an adoption failed or the rank counters run low. It depends on
 * counts only, never on timing, and runs in one thread at a time.
 */
#include "hnsw_int.h"

#include <stdlib.h>
#include <string.h>

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
    if (hnsw_grow((void **)&c->work, &c->work_cap, (cap + 1) * (cap + 1), sizeof(pair)) < 0 ||
        hnsw_grow((void **)&c->ids, &c->ids_cap, cap + 1, sizeof(uint32_t)) < 0)
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
    hnsw_qv_node(ix, c, &qu, u);
    for (size_t j = 0; j < m; j++) c->work[j].d = qdist(ix, &qu, c->work[j].id);
    qsort(c->work, m, sizeof(pair), hnsw_pair_cmp);
    size_t w = 0; /* unique ids (equal ids have equal distances: adjacent) */
    for (size_t j = 0; j < m; j++) {
        int dup = 0;
        for (size_t t = w; t-- > 0 && c->work[t].d == c->work[j].d;)
            if (c->work[t].id == c->work[j].id) dup = 1;
        if (!dup) c->work[w++] = c->work[j];
    }
    uint32_t sel[2 * 256 + 1];
    int k = hnsw_select_heuristic(ix, c, c->work, (int)w, (int)cap, sel);
    if (level == 0) hnsw_write_links0(ix, c, u, sel, k, D);
    else hnsw_write_links(ix, u, level, sel, k);
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
    sctx *c = Ds.bits ? hnsw_sctx_get(ix) : NULL;
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
        rc = hnsw_grow((void **)&c->ids, &c->ids_cap, (size_t)ix->M0 + 1, sizeof(uint32_t));
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
        rc = hnsw_grow((void **)&ix->free_ids, &ix->cap_free, ix->n_free + nd, sizeof(uint32_t));
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
                if (hnsw_owns_f32(ix, ck->f32[o])) {
                    sx_index_free_mem((void *)ck->f32[o]);
                    atomic_fetch_sub(&ix->f32_heap_bytes, (size_t)ix->p.dim * sizeof(float));
                }
                ck->f32[o] = NULL;
            }
            hnsw_slot_unalloc(ix, i);
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
            rc = hnsw_adopt_orphans(ix, c, atomic_load(&ix->n_slots));
            pthread_rwlock_unlock(&ix->rw);
        }
        if (rc > 0 || (rc == 0 && atomic_load(&ix->adopt_failed))) rc = hnsw_rerank(ix, c);
        if (rc < 0) rc = sx_err_set(err, rc, "index: out of memory in vacuum");
    } else if (rc < 0) {
        rc = sx_err_set(err, rc, "index: out of memory in vacuum");
    }
    hnsw_sctx_put(ix, c);
    sx_index_free_mem(Ds.bits);
    pthread_rwlock_unlock(&ix->wlock);
    return rc;
}

/* ---- when ---- */

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
            sctx *c = hnsw_sctx_get(ix);
            rc = c ? hnsw_rerank(ix, c) : SX_ENOMEM;
            if (c) hnsw_sctx_put(ix, c);
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
