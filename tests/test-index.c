/* Tests for src/index: kernels against the scalar reference, SQ8, HNSW
 * recall against exact search, every node reachable (sx_index_check),
 * deletes with slot reuse, filters, save/load, corrupt input and
 * concurrent writers. */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../src/index/index.h"
#include "testmem.h"
#include "testvec.h"

#define DIM 384

/* ---- kernels ---- */

void test_index_kernels_match_scalar(void) {
    const sx_kernels *ks[8];
    int nk = sx_kernels_available(ks, 8);
    CHECK(nk >= 1);
    CHECK_STR(ks[0]->name, "scalar");
    CHECK(sx_kernels_best() == ks[nk - 1] || getenv("SEMDEX_KERNELS"));
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni")) CHECK_STR(ks[nk - 1]->name, "avx512vnni");
    else if (__builtin_cpu_supports("avx512bw")) CHECK_STR(ks[nk - 1]->name, "avx512");
#endif
    tv_rng r = {1};
    enum { MAXN = 1100 };
    static float a[MAXN + 16], b[MAXN + 16];
    static uint8_t c[MAXN + 16];
    static int8_t q8[MAXN + 16];
    for (int i = 0; i < MAXN + 16; i++) {
        a[i] = tv_gauss(&r);
        b[i] = tv_gauss(&r);
        c[i] = (uint8_t)(tv_next(&r) & 255);
        q8[i] = (int8_t)(tv_next(&r) & 255); /* -128..127, extremes included */
    }
    c[0] = 255;
    q8[0] = -128;
    const sx_kernels *s = sx_kernels_scalar();
    for (int k = 1; k < nk; k++) {
        for (size_t n = 0; n <= MAXN; n += (n < 80 ? 1 : 37)) {
            /* every misalignment of the inputs too */
            for (size_t o = 0; o < 3; o++) {
                double mag = 0, magu = 0;
                for (size_t i = 0; i < n; i++) {
                    mag += fabs(a[o + i] * b[o + i]);
                    magu += fabs(a[o + i] * c[o + i]);
                }
                double tol = 1e-5 * mag + 1e-6, tolu = 1e-5 * magu + 1e-6;
                CHECK_NEAR(ks[k]->dot_f32(a + o, b + o, n), s->dot_f32(a + o, b + o, n), tol);
                CHECK_NEAR(ks[k]->l2sq_f32(a + o, b + o, n), s->l2sq_f32(a + o, b + o, n), 4 * tol + 1e-5 * n);
                CHECK_NEAR(ks[k]->dot_f32_u8(a + o, c + o, n), s->dot_f32_u8(a + o, c + o, n), tolu);
                CHECK_EQ(ks[k]->dot_s8_u8(q8 + o, c + o, n), s->dot_s8_u8(q8 + o, c + o, n));
                /* SQ8: a as the vector, b as vmin, |b| as vscale */
                static float vs[MAXN + 16], x1[MAXN], x2[MAXN];
                static int8_t r1[MAXN + 1], r2[MAXN + 1];
                for (size_t i = 0; i < n; i++) vs[o + i] = fabsf(b[o + i]) * 0.01f + 1e-4f;
                ks[k]->sq8_decode(b + o, vs + o, c + o, n, x1);
                s->sq8_decode(b + o, vs + o, c + o, n, x2);
                int dec_ok = 1;
                for (size_t i = 0; i < n; i++)
                    dec_ok &= fabsf(x1[i] - x2[i]) <= 1e-6f * (fabsf(x2[i]) + fabsf(b[o + i]));
                CHECK(dec_ok);
                float al1, al2, bi1, bi2;
                r1[n] = r2[n] = 99; /* nothing written past n */
                ks[k]->sq8_query(a + o, b + o, vs + o, n, r1, &al1, &bi1);
                s->sq8_query(a + o, b + o, vs + o, n, r2, &al2, &bi2);
                CHECK(memcmp(r1, r2, n + 1) == 0);
                CHECK(al1 == al2);
                CHECK_NEAR(bi1, bi2, tol);
            }
        }
    }
    /* the scalar query preparation: its bytes span -127..127, ties go to
     * even, and an all-zero vector gets alpha 1 */
    {
        float v[4] = {127.0f, -2.5f, 3.5f, 0.0f}, vm[4] = {0}, one[4] = {1, 1, 1, 1};
        int8_t q4[4];
        float al, bi;
        s->sq8_query(v, vm, one, 4, q4, &al, &bi);
        CHECK(q4[0] == 127 && q4[1] == -2 && q4[2] == 4 && q4[3] == 0);
        CHECK(al == 1.0f && bi == 0.0f);
        float z[4] = {0};
        s->sq8_query(z, vm, one, 4, q4, &al, &bi);
        CHECK(al == 1.0f && q4[0] == 0 && q4[3] == 0);
    }
    /* the scalar reference itself against a double-precision sum */
    double d = 0;
    for (int i = 0; i < 384; i++) d += (double)a[i] * b[i];
    CHECK_NEAR(s->dot_f32(a, b, 384), d, 1e-4);
}

void test_index_sq8_roundtrip(void) {
    float *x = tv_clustered(2000, DIM, 5, 0);
    sx_sq8 q = {0};
    sx_err err = {0};
    CHECK_EQ(sx_sq8_train(&q, DIM, x, 2000, &err), 0);
    uint8_t codes[DIM];
    float back[DIM], qs[DIM], bias;
    const sx_kernels *k = sx_kernels_best();
    for (int i = 0; i < 50; i++) {
        const float *v = x + (size_t)i * DIM;
        sx_sq8_encode(&q, v, codes);
        sx_sq8_decode(&q, codes, back);
        for (int j = 0; j < DIM; j++) CHECK(fabsf(back[j] - v[j]) <= 0.5f * q.vscale[j] + 1e-6f);
        /* prepared dot == dot with the decoded vector */
        const float *w = x + (size_t)(i + 100) * DIM;
        sx_sq8_prepare(&q, w, qs, &bias);
        CHECK_NEAR(bias + k->dot_f32_u8(qs, codes, DIM), k->dot_f32(w, back, DIM), 1e-4);
        /* and the quantised query stays close: error well under the gap
         * between neighbours' scores */
        int8_t q8[DIM];
        float alpha, bias2;
        k->sq8_query(w, q.vmin, q.vscale, DIM, q8, &alpha, &bias2);
        CHECK_NEAR(bias2, bias, 1e-5);
        CHECK_NEAR(bias + alpha * (float)k->dot_s8_u8(q8, codes, DIM), k->dot_f32(w, back, DIM), 3e-3);
    }
    /* out-of-range values clamp */
    float big[DIM];
    for (int j = 0; j < DIM; j++) big[j] = (j & 1) ? 100.0f : -100.0f;
    sx_sq8_encode(&q, big, codes);
    CHECK_EQ(codes[0], 0);
    CHECK_EQ(codes[1], 255);
    sx_sq8_release(&q);
    CHECK_EQ(sx_sq8_init(&q, DIM, 1.0f, -1.0f, &err), SX_EINVAL);
    CHECK_EQ(sx_sq8_train(&q, DIM, x, 0, &err), SX_EINVAL);
    free(x);
}

/* ---- building and measuring ---- */

typedef struct build_job {
    sx_index *ix;
    const float *x;
    size_t from, to, step;
    uint32_t *nodes;
} build_job;

static void *build_thread(void *arg) {
    build_job *j = arg;
    sx_err err = {0};
    for (size_t i = j->from; i < j->to; i += j->step) {
        uint32_t node;
        if (sx_index_add(j->ix, j->x + i * DIM, i + 1, &node, &err) < 0) {
            fprintf(stderr, "add: %s\n", err.msg);
            abort();
        }
        sx_index_publish(j->ix, node);
        if (j->nodes) j->nodes[i] = node;
        if (i % 512 == 0) sx_index_maintain(j->ix, NULL);
    }
    return NULL;
}

/* Builds an index over n vectors with `threads` concurrent inserters;
 * nodes[i] (optional OUT) is vector i's node. */
static sx_index *build(const sx_index_params *p, const float *x, size_t n, int threads,
                       uint32_t *nodes) {
    sx_index *ix = NULL;
    sx_err err = {0};
    CHECK_MSG(sx_index_create(p, &ix, &err) == 0, "%s", err.msg);
    pthread_t t[8];
    build_job j[8];
    for (int i = 0; i < threads; i++) {
        j[i] = (build_job){ix, x, (size_t)i, n, (size_t)threads, nodes};
        CHECK(pthread_create(&t[i], NULL, build_thread, &j[i]) == 0);
    }
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    CHECK_EQ(sx_index_maintain(ix, &err), 0);
    return ix;
}

/* The graph is sound (sx_index_check): every live node is reachable from
 * the entry point at level 0, every node but the entry point is anchored by
 * a lower-ranked node that links to it, and no link points at a free slot. */
static void check_sound(sx_index *ix, const char *when) {
    sx_index_check_result r;
    sx_err err = {0};
    CHECK_MSG(sx_index_check(ix, &r, &err) == 0, "%s", err.msg);
    CHECK_MSG(r.unreachable == 0 && r.unanchored == 0 && r.bad_anchors == 0 && r.bad_links == 0,
              "%s: of %zu nodes %zu unreachable, %zu unanchored, %zu bad anchors, %zu bad links",
              when, r.nodes, r.unreachable, r.unanchored, r.bad_anchors, r.bad_links);
}

/* Mean recall@k of approximate search against exact search over nq queries. */
static double recall_at(sx_index *ix, const float *qv, int nq, const sx_index_query *q,
                        sx_search_stats *last) {
    sx_index_hit got[100], want[100];
    int ng, nw;
    sx_err err = {0};
    long found = 0, total = 0;
    for (int i = 0; i < nq; i++) {
        const float *v = qv + (size_t)i * DIM;
        CHECK_MSG(sx_index_search(ix, v, q, got, &ng, last, &err) == 0, "%s", err.msg);
        CHECK_MSG(sx_index_search_exact(ix, v, q, want, &nw, NULL, &err) == 0, "%s", err.msg);
        for (int a = 1; a < ng; a++) CHECK(got[a - 1].score >= got[a].score);
        for (int a = 0; a < nw; a++)
            for (int b = 0; b < ng; b++)
                if (want[a].node == got[b].node) {
                    found++;
                    break;
                }
        total += nw;
    }
    return total ? (double)found / (double)total : 1.0;
}

static size_t n_base(void) { return TV_ASAN ? 12000 : 50000; }

void test_index_recall_fp32(void) {
    size_t n = n_base();
    float *x = tv_real_corpus(n), *qv = tv_real_queries(200);
    sx_index_params p = sx_index_params_default(DIM);
    sx_index *ix = build(&p, x, n, 2, NULL);
    check_sound(ix, "fp32, built by 2 threads");
    sx_index_query q = {.k = 10, .ef = 64, .rerank = -1};
    double r = recall_at(ix, qv, 200, &q, NULL);
    fprintf(stderr, "    fp32 recall@10 ef=64 n=%zu: %.4f\n", n, r);
    CHECK(r >= 0.95);
    sx_index_stats st;
    sx_index_get_stats(ix, &st);
    CHECK_EQ(st.live, n);
    CHECK_EQ(st.deleted, 0);
    CHECK(st.max_level >= 1);
    CHECK_EQ(st.nodes_per_level[0], n);
    /* the exact search is exact: the best hit of a stored vector is itself */
    sx_index_hit h[10];
    int nh;
    CHECK_EQ(sx_index_search_exact(ix, x + 123 * DIM, &q, h, &nh, NULL, NULL), 0);
    CHECK_EQ(sx_index_payload(ix, h[0].node), 124);
    CHECK_NEAR(h[0].score, 1.0, 1e-4);
    sx_index_free(ix);
    free(x);
    free(qv);
}

void test_index_recall_sq8(void) {
    size_t n = n_base();
    float *x = tv_real_corpus(n), *qv = tv_real_queries(200);
    sx_index_params p = sx_index_params_default(DIM);
    p.storage = SX_STORAGE_SQ8;
    sx_index *ix = build(&p, x, n, 2, NULL);
    check_sound(ix, "SQ8, built by 2 threads");
    sx_index_query q = {.k = 10, .ef = 64, .rerank = 0};
    double r0 = recall_at(ix, qv, 200, &q, NULL);
    q.rerank = 32;
    double r1 = recall_at(ix, qv, 200, &q, NULL);
    fprintf(stderr, "    sq8 recall@10 ef=64 n=%zu: %.4f, re-ranked: %.4f\n", n, r0, r1);
    CHECK(r0 >= 0.93);
    CHECK(r1 >= 0.95);
    CHECK(r1 >= r0 - 0.005);
    /* get_vector returns the exact fp32 input */
    float v[DIM];
    CHECK_EQ(sx_index_get_vector(ix, 7, v, NULL), 0);
    int same = 0;
    for (size_t i = 0; i < n && !same; i++) same = memcmp(v, x + i * DIM, sizeof v) == 0;
    CHECK(same);
    sx_index_stats st;
    sx_index_get_stats(ix, &st);
    double bpv = (double)(st.bytes_vectors + st.bytes_graph) / (double)n;
    fprintf(stderr, "    sq8 bytes/vector (codes + graph): %.0f\n", bpv);
    CHECK(bpv < 600);
    sx_index_free(ix);
    free(x);
    free(qv);
}

void test_index_delete_and_reuse(void) {
    size_t n = TV_ASAN ? 8000 : 30000;
    float *x = tv_real_corpus(n + n / 5), *qv = tv_real_queries(200);
    uint32_t *nodes = malloc((n + n / 5) * sizeof *nodes);
    sx_index_params p = sx_index_params_default(DIM);
    p.storage = SX_STORAGE_SQ8;
    p.rerank = 32;
    sx_index *ix = build(&p, x, n, 2, nodes);
    sx_err err = {0};
    /* delete every fifth vector (20%) */
    for (size_t i = 0; i < n; i += 5) {
        CHECK_EQ(sx_index_delete(ix, nodes[i], &err), 0);
        if (i % 1000 == 0) sx_index_maintain(ix, NULL);
    }
    CHECK_EQ(sx_index_delete(ix, nodes[0], &err), SX_ENOTFOUND);
    check_sound(ix, "20% deleted, partly vacuumed");
    sx_index_query q = {.k = 10, .ef = 64, .rerank = -1};
    sx_index_hit h[10];
    int nh;
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(sx_index_search(ix, qv + (size_t)i * DIM, &q, h, &nh, NULL, NULL), 0);
        CHECK_EQ(nh, 10);
        for (int j = 0; j < nh; j++) CHECK((sx_index_payload(ix, h[j].node) - 1) % 5 != 0);
    }
    double r = recall_at(ix, qv, 200, &q, NULL);
    fprintf(stderr, "    recall@10 after deleting 20%% (before vacuum): %.4f\n", r);
    CHECK(r >= 0.95);
    CHECK_EQ(sx_index_vacuum(ix, &err), 0);
    sx_index_stats st;
    sx_index_get_stats(ix, &st);
    CHECK_EQ(st.deleted, 0);
    CHECK_EQ(st.free_slots, n / 5);
    CHECK_EQ(st.live, n - n / 5);
    check_sound(ix, "20% deleted and vacuumed");
    r = recall_at(ix, qv, 200, &q, NULL);
    fprintf(stderr, "    recall@10 after vacuum: %.4f\n", r);
    CHECK(r >= 0.95);
    /* new vectors reuse the released slots */
    uint32_t slots = sx_index_slots(ix);
    for (size_t i = n; i < n + n / 5; i++) {
        uint32_t node;
        CHECK_EQ(sx_index_add(ix, x + i * DIM, i + 1, &node, &err), 0);
        sx_index_publish(ix, node);
        CHECK(node < slots);
    }
    CHECK_EQ(sx_index_slots(ix), slots);
    check_sound(ix, "released slots refilled");
    r = recall_at(ix, qv, 200, &q, NULL);
    fprintf(stderr, "    recall@10 after refilling the slots: %.4f\n", r);
    CHECK(r >= 0.95);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(sx_index_search(ix, qv + (size_t)i * DIM, &q, h, &nh, NULL, NULL), 0);
        for (int j = 0; j < nh; j++) {
            uint64_t pl = sx_index_payload(ix, h[j].node);
            CHECK(pl > n || (pl - 1) % 5 != 0);
        }
    }
    /* delete everything: searches return nothing, then the index works again */
    for (uint32_t i = 0; i < sx_index_slots(ix); i++) sx_index_delete(ix, i, NULL);
    CHECK_EQ(sx_index_search(ix, qv, &q, h, &nh, NULL, NULL), 0);
    CHECK_EQ(nh, 0);
    CHECK_EQ(sx_index_vacuum(ix, &err), 0);
    CHECK_EQ(sx_index_search(ix, qv, &q, h, &nh, NULL, NULL), 0);
    CHECK_EQ(nh, 0);
    uint32_t node;
    CHECK_EQ(sx_index_add(ix, x, 1, &node, &err), 0);
    sx_index_publish(ix, node);
    CHECK_EQ(sx_index_search(ix, x, &q, h, &nh, NULL, NULL), 0);
    CHECK_EQ(nh, 1);
    CHECK_EQ(h[0].node, node);
    check_sound(ix, "emptied and one node added");
    sx_index_free(ix);
    free(nodes);
    free(x);
    free(qv);
}

/* A bitmap passing about `frac` of the n slots (pseudo-random). */
static uint64_t *make_filter(uint32_t n, double frac, uint64_t seed, size_t *count) {
    uint64_t *b = calloc(n / 64 + 1, sizeof *b);
    tv_rng r = {seed};
    *count = 0;
    for (uint32_t i = 0; i < n; i++)
        if (tv_unif(&r) < frac) {
            b[i >> 6] |= 1ull << (i & 63);
            (*count)++;
        }
    return b;
}

void test_index_filters(void) {
    size_t n = n_base();
    float *x = tv_real_corpus(n), *qv = tv_real_queries(100);
    sx_index_params p = sx_index_params_default(DIM);
    p.storage = SX_STORAGE_SQ8;
    p.rerank = 32;
    sx_index *ix = build(&p, x, n, 2, NULL);
    const double fracs[] = {0.001, 0.01, 0.1, 0.5};
    for (int f = 0; f < 4; f++) {
        for (int force_graph = 0; force_graph < 2; force_graph++) {
            size_t cnt;
            uint64_t *allow = make_filter(sx_index_slots(ix), fracs[f], 100 + f, &cnt);
            sx_index_query q = {.k = 10, .ef = 64, .rerank = -1, .allow = allow,
                                .allow_bits = sx_index_slots(ix), .allow_count = cnt};
            /* force_graph: claim a large passing count so the graph walk runs */
            if (force_graph) {
                if (fracs[f] < 0.01) {
                    free(allow);
                    continue;
                }
                q.allow_count = n;
            }
            sx_search_stats st;
            sx_index_hit h[10];
            int nh;
            for (int i = 0; i < 100; i++) {
                CHECK_EQ(sx_index_search(ix, qv + (size_t)i * DIM, &q, h, &nh, &st, NULL), 0);
                CHECK_EQ(nh, cnt < 10 ? (int)cnt : 10);
                for (int j = 0; j < nh; j++) CHECK(allow[h[j].node >> 6] >> (h[j].node & 63) & 1);
            }
            q.allow_count = cnt;
            double r = recall_at(ix, qv, 100, &q, &st);
            if (force_graph) {
                q.allow_count = n;
                r = recall_at(ix, qv, 100, &q, &st);
            }
            fprintf(stderr, "    filter %.1f%% (%zu pass)%s: recall@10 %.4f strategy %d evals %ld\n",
                   100 * fracs[f], cnt, force_graph ? " forced graph" : "", r, st.strategy,
                   st.distance_evals);
            CHECK(r >= 0.95);
            if (!force_graph && fracs[f] <= 0.01) CHECK_EQ(st.strategy, SX_STRATEGY_BRUTE);
            if (!force_graph && fracs[f] >= 0.5) CHECK(st.strategy != SX_STRATEGY_BRUTE);
            free(allow);
        }
    }
    sx_index_free(ix);
    free(x);
    free(qv);
}

/* ---- every node reachable ---- */

/* Tiny lists (M = 2 and 3: 4 and 6 links on level 0) make prunings drop
 * links all the time, and every vector is stored twice: a pair of equal
 * vectors links to each other, and a pruning that only counted in-links
 * would let the last link from outside go. Through inserts by two threads,
 * deletes, vacuums, slot reuse and a reload, every node stays reachable. */
void test_index_small_lists(void) {
    size_t n = TV_ASAN ? 1600 : 4000, half = n / 2;
    float *x = tv_clustered(n, DIM, 3, 0);
    memcpy(x + half * DIM, x, half * DIM * sizeof(float));
    uint32_t *nodes = malloc(n * sizeof *nodes);
    for (int M = 2; M <= 3; M++) {
        sx_index_params p = sx_index_params_default(DIM);
        p.M = M;
        p.ef_construction = 40;
        p.storage = M == 3 ? SX_STORAGE_SQ8 : SX_STORAGE_FP32;
        p.train_size = 500;
        sx_index *ix = build(&p, x, n, 2, nodes);
        check_sound(ix, "built");
        sx_err err = {0};
        for (size_t i = 0; i < n; i += 3) CHECK_EQ(sx_index_delete(ix, nodes[i], &err), 0);
        check_sound(ix, "a third deleted");
        CHECK_EQ(sx_index_vacuum(ix, &err), 0);
        check_sound(ix, "a third deleted and vacuumed");
        for (size_t i = 0; i < n; i += 3) {
            CHECK_EQ(sx_index_add(ix, x + i * DIM, i + 1, &nodes[i], &err), 0);
            sx_index_publish(ix, nodes[i]);
        }
        check_sound(ix, "refilled");
        for (size_t i = 0; i < n; i++)
            if (i % 10) CHECK_EQ(sx_index_delete(ix, nodes[i], &err), 0);
        CHECK_EQ(sx_index_vacuum(ix, &err), 0);
        check_sound(ix, "90% deleted and vacuumed");
        membuf m = {0};
        sx_sink sink = {mem_write, &m, 0, 0, 0};
        CHECK_EQ(sx_index_save(ix, &sink, &err), 0);
        sx_source src = {mem_read, &m, NULL, 0, 0, 1, 0};
        sx_index *b = NULL;
        CHECK_MSG(sx_index_load(&src, &b, &err) == 0, "%s", err.msg);
        check_sound(b, "loaded");
        for (size_t i = 0; i < half; i++) {
            uint32_t node;
            CHECK_EQ(sx_index_add(b, x + i * DIM, 0, &node, &err), 0);
        }
        check_sound(b, "loaded and added to");
        sx_index_free(b);
        sx_index_free(ix);
        free(m.p);
    }
    free(nodes);
    free(x);
}

typedef struct churn {
    sx_index *ix;
    const float *x;
    size_t n;
    uint32_t *nodes;
    _Atomic int next_writer, stop;
    _Atomic long checks, searches;
} churn;

/* Writer w adds vectors w, w + 2, ... and deletes some of its own earlier
 * ones; the housekeeping vacuums as deletes accumulate. */
static void *churn_writer(void *arg) {
    churn *t = arg;
    size_t w = (size_t)atomic_fetch_add(&t->next_writer, 1);
    sx_err err = {0};
    for (size_t i = w; i < t->n; i += 2) {
        if (sx_index_add(t->ix, t->x + i * DIM, i + 1, &t->nodes[i], &err) < 0) abort();
        sx_index_publish(t->ix, t->nodes[i]);
        if (i >= 8 && (i / 2) % 3 == 0 && sx_index_delete(t->ix, t->nodes[i - 8], &err) < 0)
            abort();
        if (sx_index_maintain(t->ix, &err) < 0) abort();
    }
    return NULL;
}

/* Whenever no write is in progress the graph is sound. */
static void *churn_checker(void *arg) {
    churn *t = arg;
    while (!atomic_load(&t->stop)) {
        check_sound(t->ix, "between concurrent writes");
        atomic_fetch_add(&t->checks, 1);
        usleep(1000);
    }
    return NULL;
}

static void *churn_searcher(void *arg) {
    churn *t = arg;
    sx_index_query q = {.k = 10, .rerank = -1};
    sx_index_hit h[10];
    int nh;
    for (size_t i = 0; !atomic_load(&t->stop); i++) {
        if (sx_index_search(t->ix, t->x + (i % t->n) * DIM, &q, h, &nh, NULL, NULL) < 0) abort();
        atomic_fetch_add(&t->searches, 1);
    }
    return NULL;
}

/* Two writers adding and deleting, vacuums, a searcher and a checker, on
 * small lists (M = 4); run under ThreadSanitizer by `make tsan`. */
void test_index_concurrent_writes(void) {
    churn t = {0};
    t.n = TV_TSAN ? 1500 : TV_ASAN ? 3000 : 8000;
    t.x = tv_clustered(t.n, DIM, 7, 0);
    t.nodes = malloc(t.n * sizeof *t.nodes);
    sx_index_params p = sx_index_params_default(DIM);
    p.M = 4;
    p.ef_construction = 64;
    p.storage = SX_STORAGE_SQ8;
    p.train_size = 500;
    sx_err err = {0};
    CHECK_EQ(sx_index_create(&p, &t.ix, &err), 0);
    pthread_t w[2], ck, se;
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&w[i], NULL, churn_writer, &t) == 0);
    CHECK(pthread_create(&ck, NULL, churn_checker, &t) == 0);
    CHECK(pthread_create(&se, NULL, churn_searcher, &t) == 0);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    atomic_store(&t.stop, 1);
    pthread_join(ck, NULL);
    pthread_join(se, NULL);
    fprintf(stderr, "    %ld checks and %ld searches during the writes\n",
            (long)atomic_load(&t.checks), (long)atomic_load(&t.searches));
    CHECK(atomic_load(&t.checks) > 0);
    check_sound(t.ix, "after the writes");
    sx_index_stats st;
    sx_index_get_stats(t.ix, &st);
    CHECK(st.free_slots + st.deleted > 0);
    CHECK_EQ(sx_index_vacuum(t.ix, &err), 0);
    check_sound(t.ix, "vacuumed");
    sx_index_free(t.ix);
    free(t.nodes);
    free((void *)t.x);
}

/* ---- persistence ---- */

static void same_results(sx_index *a, sx_index *b, const float *qv, int nq) {
    sx_index_query q = {.k = 10, .ef = 64, .rerank = -1};
    for (int i = 0; i < nq; i++) {
        sx_index_hit ha[10], hb[10];
        int na, nb;
        CHECK_EQ(sx_index_search(a, qv + (size_t)i * DIM, &q, ha, &na, NULL, NULL), 0);
        CHECK_EQ(sx_index_search(b, qv + (size_t)i * DIM, &q, hb, &nb, NULL, NULL), 0);
        CHECK_EQ(na, nb);
        for (int j = 0; j < na; j++) {
            CHECK_EQ(ha[j].node, hb[j].node);
            CHECK(ha[j].score == hb[j].score);
        }
    }
}

void test_index_save_load(void) {
    size_t n = 3000;
    float *x = tv_clustered(n, DIM, 15, 0), *qv = tv_clustered(50, DIM, 15, 1);
    for (int storage = 0; storage < 2; storage++) {
        sx_index_params p = sx_index_params_default(DIM);
        p.storage = storage;
        p.rerank = storage ? 20 : 0;
        uint32_t *nodes = malloc(n * sizeof *nodes);
        sx_index *ix = build(&p, x, n, 1, nodes);
        for (size_t i = 0; i < n; i += 7) sx_index_delete(ix, nodes[i], NULL);
        sx_index_vacuum(ix, NULL);
        for (size_t i = 0; i < n; i += 11) sx_index_delete(ix, nodes[i], NULL); /* not vacuumed */
        membuf m = {0};
        sx_sink sink = {mem_write, &m, 0, 0, 0};
        sx_err err = {0};
        CHECK_MSG(sx_index_save(ix, &sink, &err) == 0, "%s", err.msg);
        /* stream load */
        sx_source src = {mem_read, &m, NULL, 0, 0, 1, 0};
        sx_index *b = NULL;
        CHECK_MSG(sx_index_load(&src, &b, &err) == 0, "%s", err.msg);
        CHECK_EQ(src.offset, m.len);
        same_results(ix, b, qv, 50);
        check_sound(ix, "saved");
        check_sound(b, "loaded");
        /* memory (mapped) load: fp32 vectors used in place */
        uint8_t *copy = aligned_alloc(64, (m.len + 63) / 64 * 64);
        memcpy(copy, m.p, m.len);
        sx_source msrc = {NULL, NULL, copy, m.len, 0, 1, 0};
        sx_index *c = NULL;
        CHECK_MSG(sx_index_load(&msrc, &c, &err) == 0, "%s", err.msg);
        same_results(ix, c, qv, 50);
        sx_index_stats sa, sc;
        sx_index_get_stats(ix, &sa);
        sx_index_get_stats(c, &sc);
        CHECK_EQ(sa.live, sc.live);
        CHECK_EQ(sa.deleted, sc.deleted);
        CHECK_EQ(sa.free_slots, sc.free_slots);
        CHECK_EQ(sa.max_level, sc.max_level);
        if (storage) CHECK(sc.bytes_fp32_mapped > 0);
        /* the loaded index keeps working: inserts reuse free slots, vacuum */
        for (size_t i = 0; i < 50; i++) {
            uint32_t node;
            CHECK_EQ(sx_index_add(c, x + i * DIM, 0, &node, &err), 0);
            sx_index_publish(c, node);
        }
        CHECK_EQ(sx_index_vacuum(c, &err), 0);
        check_sound(c, "loaded in place, added to, vacuumed");
        sx_index_query q = {.k = 5, .rerank = -1};
        sx_index_hit h[5];
        int nh;
        CHECK_EQ(sx_index_search(c, x + 3 * DIM, &q, h, &nh, NULL, NULL), 0);
        CHECK_NEAR(h[0].score, 1.0, 0.02);
        sx_index_free(c);
        free(copy);
        sx_index_free(b);
        sx_index_free(ix);
        /* a failing writer reports the error */
        membuf f = {.fail_at = 5000};
        sx_sink fs = {mem_write, &f, 0, 0, 0};
        sx_index *d = build(&p, x, 200, 1, NULL);
        CHECK_EQ(sx_index_save(d, &fs, &err), SX_EIO);
        sx_index_free(d);
        free(f.p);
        free(m.p);
        free(nodes);
    }
    free(x);
    free(qv);
}

void test_index_load_corrupt(void) {
    size_t n = 400;
    float *x = tv_clustered(n, 16, 16, 0);
    sx_index_params p = sx_index_params_default(16);
    p.storage = SX_STORAGE_SQ8;
    p.M = 4;
    p.train_size = 100;
    sx_index *ix = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_index_create(&p, &ix, &err), 0);
    for (size_t i = 0; i < n; i++) {
        uint32_t node;
        CHECK_EQ(sx_index_add(ix, x + i * 16, 0, &node, &err), 0);
        sx_index_publish(ix, node);
        if (i % 3 == 0) sx_index_delete(ix, node, NULL);
        sx_index_maintain(ix, NULL);
    }
    membuf m = {0};
    sx_sink sink = {mem_write, &m, 0, 0, 0};
    CHECK_EQ(sx_index_save(ix, &sink, &err), 0);
    sx_index_free(ix);
    /* every truncation fails cleanly, from a stream and from memory */
    for (size_t cut = 0; cut < m.len; cut += 1 + cut / 16) {
        membuf t = {m.p, cut, cut, 0, 0};
        sx_source src = {mem_read, &t, NULL, 0, 0, 1, 0};
        sx_index *b = NULL;
        int rc = sx_index_load(&src, &b, &err);
        CHECK_MSG(rc == SX_ECORRUPT, "cut %zu: rc %d", cut, rc);
        CHECK(b == NULL);
        CHECK(strlen(err.msg) > 0);
        sx_source msrc = {NULL, NULL, m.p, cut, 0, 1, 0};
        CHECK_EQ(sx_index_load(&msrc, &b, &err), SX_ECORRUPT);
    }
    sx_source ok = {NULL, NULL, m.p, m.len, 0, 1, 0};
    sx_index *ref = NULL;
    CHECK_EQ(sx_index_load(&ok, &ref, &err), 0);
    /* every flipped byte fails cleanly (the CRCs catch it), except in the
     * zero padding, which no reader looks at: then the index is unchanged */
    int undetected = 0;
    for (size_t i = 0; i < m.len; i += 1 + i / 64) {
        m.p[i] ^= 0x5a;
        sx_source msrc = {NULL, NULL, m.p, m.len, 0, 1, 0};
        sx_index *b = NULL;
        int rc = sx_index_load(&msrc, &b, &err);
        if (rc == 0) {
            undetected++;
            for (int qi = 0; qi < 5; qi++) {
                sx_index_query q = {.k = 5, .rerank = -1};
                sx_index_hit ha[5], hb[5];
                int na, nb;
                CHECK_EQ(sx_index_search(ref, x + qi * 16, &q, ha, &na, NULL, NULL), 0);
                CHECK_EQ(sx_index_search(b, x + qi * 16, &q, hb, &nb, NULL, NULL), 0);
                CHECK_EQ(na, nb);
                for (int j = 0; j < na; j++) CHECK(ha[j].node == hb[j].node && ha[j].score == hb[j].score);
            }
            sx_index_free(b);
        } else {
            CHECK_MSG(rc == SX_ECORRUPT || rc == SX_EUNSUPPORTED, "byte %zu: rc %d", i, rc);
        }
        m.p[i] ^= 0x5a;
    }
    fprintf(stderr, "    %d of the flipped bytes were padding\n", undetected);
    CHECK(undetected < 120); /* padding is a small part of the bytes tried */
    sx_index_free(ref);
    free(m.p);
    free(x);
}

void test_index_bad_input(void) {
    sx_err err = {0};
    sx_index *ix = NULL;
    sx_index_params p = sx_index_params_default(8);
    p.M = 1;
    CHECK_EQ(sx_index_create(&p, &ix, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "M") != NULL);
    p = sx_index_params_default(0);
    CHECK_EQ(sx_index_create(&p, &ix, &err), SX_EINVAL);
    p = sx_index_params_default(8);
    p.storage = SX_STORAGE_SQ8;
    p.metric = SX_METRIC_L2;
    CHECK_EQ(sx_index_create(&p, &ix, &err), SX_EUNSUPPORTED);
    p = sx_index_params_default(8);
    CHECK_EQ(sx_index_create(&p, &ix, &err), 0);
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    sx_index_query q = {.k = 3};
    sx_index_hit h[3];
    int nh = -1;
    CHECK_EQ(sx_index_search(ix, v, &q, h, &nh, NULL, &err), 0); /* empty index */
    CHECK_EQ(nh, 0);
    uint32_t node;
    v[3] = NAN;
    CHECK_EQ(sx_index_add(ix, v, 0, &node, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "NaN") != NULL);
    v[3] = 0;
    CHECK_EQ(sx_index_add(ix, v, 0, &node, &err), 0);
    sx_index_publish(ix, node);
    q.k = 0;
    CHECK_EQ(sx_index_search(ix, v, &q, h, &nh, NULL, &err), SX_EINVAL);
    q.k = 3;
    v[0] = INFINITY;
    CHECK_EQ(sx_index_search(ix, v, &q, h, &nh, NULL, &err), SX_EINVAL);
    CHECK_EQ(sx_index_delete(ix, 99, &err), SX_ENOTFOUND);
    CHECK_EQ(sx_index_get_vector(ix, 99, v, &err), SX_ENOTFOUND);
    sx_index_free(ix);
    /* L2 metric on fp32 works */
    p.metric = SX_METRIC_L2;
    CHECK_EQ(sx_index_create(&p, &ix, &err), 0);
    for (int i = 0; i < 20; i++) {
        float w[8] = {(float)i, 0, 0, 0, 0, 0, 0, 0};
        CHECK_EQ(sx_index_add(ix, w, (uint64_t)i, &node, &err), 0);
        sx_index_publish(ix, node);
    }
    float t[8] = {7.2f, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(sx_index_search(ix, t, &q, h, &nh, NULL, &err), 0);
    CHECK_EQ(nh, 3);
    CHECK_EQ(sx_index_payload(ix, h[0].node), 7);
    CHECK_NEAR(h[0].score, -0.04, 1e-4);
    CHECK_EQ(sx_index_payload(ix, h[1].node), 8);
    sx_index_free(ix);
}

/* sx_index_add_level: the level given is the level the node gets; drawn
 * levels follow P(level >= l) = M^-l; two indexes fed the same vectors with
 * the same levels answer alike, though one drew and the other was told. */
void test_index_add_level(void) {
    sx_err err = {0};
    sx_index_params p = sx_index_params_default(32);
    sx_index *a = NULL, *b = NULL;
    CHECK_EQ(sx_index_create(&p, &a, &err), 0);
    p.seed = 7; /* b's own generator would draw other levels */
    CHECK_EQ(sx_index_create(&p, &b, &err), 0);
    float *x = tv_random(2100, 32, 3);
    uint32_t na, nb;
    CHECK_EQ(sx_index_add_level(a, x, 0, 16, &na, &err), SX_EINVAL);
    CHECK_EQ(sx_index_add_level(a, x, 0, -2, &na, &err), SX_EINVAL);
    int up = 0;
    for (int i = 0; i < 2000; i++) {
        int level = i == 10 ? 5 : sx_index_draw_level(a);
        CHECK(level >= 0 && level <= 15);
        up += level > 0;
        CHECK_EQ(sx_index_add_level(a, x + (size_t)i * 32, (uint64_t)i, level, &na, &err), 0);
        CHECK_EQ(sx_index_add_level(b, x + (size_t)i * 32, (uint64_t)i, level, &nb, &err), 0);
        CHECK_EQ(na, nb);
        CHECK_EQ(sx_index_node_level(a, na), level);
        sx_index_publish(a, na);
        sx_index_publish(b, nb);
    }
    CHECK(up > 2000 / 16 / 2 && up < 2000 / 16 * 2); /* about 1/M above level 0 */
    CHECK_EQ(sx_index_node_level(a, 99999), -1);
    sx_index_stats sa, sb;
    sx_index_get_stats(a, &sa);
    sx_index_get_stats(b, &sb);
    CHECK_EQ(sa.max_level, 5);
    CHECK_EQ(sb.max_level, 5);
    CHECK_EQ(sa.bytes_graph, sb.bytes_graph);
    for (int i = 2000; i < 2100; i++) {
        sx_index_query q = {.k = 10, .ef = 16};
        sx_index_hit ha[10], hb[10];
        int ka, kb;
        CHECK_EQ(sx_index_search(a, x + (size_t)i * 32, &q, ha, &ka, NULL, &err), 0);
        CHECK_EQ(sx_index_search(b, x + (size_t)i * 32, &q, hb, &kb, NULL, &err), 0);
        CHECK_EQ(ka, kb);
        for (int j = 0; j < ka; j++) {
            CHECK_EQ(ha[j].node, hb[j].node);
            CHECK(ha[j].score == hb[j].score);
        }
    }
    sx_index_free(a);
    sx_index_free(b);
    free(x);
}
