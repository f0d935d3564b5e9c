/*
 * hnsw_io.c - the index's file format: sx_index_save and sx_index_load.
 *
 * Format (version 1): six sections in the framing of section.c, every
 * integer little-endian.
 *
 *     IXHD  format version, dim, M, ef_construction, ef_search, storage,
 *           metric, rerank, train_size, slots n, entry point node and
 *           level (u32 each); the level seed and the level counter, its
 *           top bit set once SQ8 is trained (u64 each); with SQ8 the
 *           per-dimension ranges, vmin then vscale (dim floats each)
 *     IXND  per slot: flags (published, deleted, free) and level, a byte each
 *     IXL0  per slot: the level-0 list, count then 2M ids
 *     IXLU  per non-free slot of level l > 0: l lists, count then M ids
 *     IXCD  per slot: the search code (SQ8: dim bytes; fp32: dim floats)
 *     IXVF  SQ8 only, per slot: the fp32 vector (zeros for a free slot)
 *
 * Saving holds wlock exclusively, so inserts, deletes and vacuums wait and
 * the sections describe one graph, while searches go on. Loading checks
 * everything before the graph is used: flags and levels, every list (ids
 * below n, not free, within capacity), the entry point. From a memory
 * source the fp32 block is used in place when it is aligned and the host
 * little-endian, so a mapped snapshot pages in only the vectors that
 * re-ranking touches; everything else is copied. Ranks and anchors are not
 * stored: loading ranks the graph afresh (hnsw_reach.c), which also adopts
 * any node an older build left unreachable.
 */
#include "hnsw_int.h"

#include <math.h>
#include <string.h>

#define FORMAT_VERSION 1
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
            const float *v = hnsw_f32_get(ix, i, buf);
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

/* Checks one stored list of level `level`: count within cap, ids below n,
 * not free, and of nodes that reach that level themselves (a search follows
 * the link and reads the target's list of the same level). */
static int check_list(const _Atomic uint32_t *l, int cap, int level, uint32_t n, const uint8_t *nodes) {
    uint32_t cnt = atomic_load_explicit(&l[0], memory_order_relaxed);
    if (cnt > (uint32_t)cap) return -1;
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t v = atomic_load_explicit(&l[1 + j], memory_order_relaxed);
        if (v >= n || (nodes[2 * v] & F_FREE) || nodes[2 * v + 1] < level) return -1;
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
        if (!ix->dir[i >> CHUNK_SHIFT] && !(ix->dir[i >> CHUNK_SHIFT] = hnsw_chunk_new(ix))) {
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
            if (hnsw_grow((void **)&ix->free_ids, &ix->cap_free, ix->n_free + 1, 4) < 0) {
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
            if (check_list(links_at(ix, i, l), level_cap(ix, l), l, n, nodes.data) < 0)
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
    sctx *c = rc == 0 ? hnsw_sctx_get(ix) : NULL;
    if (rc == 0 && (!c || hnsw_rank_all(ix) < 0 || hnsw_adopt_orphans(ix, c, n) < 0))
        rc = sx_err_set(err, SX_ENOMEM, "index: out of memory loading");
    if (c) hnsw_sctx_put(ix, c);
    if (rc < 0) {
        sx_index_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}
