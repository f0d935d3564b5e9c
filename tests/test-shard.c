/* Tests for src/shard: documents, upsert/delete/get, filtered search with
 * recall against brute force, save/load (stream, mapped, lazy), corrupt
 * snapshots, bad input, and concurrent writers and readers. */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../src/shard/shard.h"
#include "../src/storage/snapfile.h"
#include "testmem.h"
#include "testvec.h"

#define DIM 384

static sx_shard *new_shard(int storage) {
    sx_shard_params p = sx_shard_params_default();
    p.storage = storage;
    sx_shard *s = NULL;
    sx_err err = {0};
    CHECK_MSG(sx_shard_create(&p, &s, &err) == 0, "%s", err.msg);
    return s;
}

/* Paper i: id "2101.<i>", categories chosen so that "sel.<f>" passes the
 * fraction f of papers (pseudo-random but deterministic). */
static void make_doc(size_t i, char *id, char *cats, char *title, sx_doc *d) {
    snprintf(id, 64, "2101.%05zu", i);
    tv_rng r = {i * 31 + 7};
    double u = tv_unif(&r);
    snprintf(cats, 128, "cs.%s%s%s%s%s", (i % 3) ? "LG" : "CL", u < 0.5 ? " sel.50" : "",
             u < 0.1 ? " sel.10" : "", u < 0.01 ? " sel.1" : "", u < 0.001 ? " sel.01" : "");
    snprintf(title, 128, "Paper number %zu about caf\xc3\xa9s", i);
    *d = (sx_doc){id, title, "An abstract.", "A. Author, B. Author", "2021-01-05", cats};
}

/* 1 when the space-separated list cats contains code exactly. */
static int has_code(const char *cats, const char *code) {
    size_t n = strlen(code);
    for (const char *p = cats; (p = strstr(p, code)) != NULL; p += n)
        if ((p == cats || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
    return 0;
}

static void fill(sx_shard *s, const float *x, size_t from, size_t to) {
    sx_err err = {0};
    for (size_t i = from; i < to; i++) {
        char id[64], cats[128], title[128];
        sx_doc d;
        make_doc(i, id, cats, title, &d);
        CHECK_MSG(sx_shard_upsert(s, &d, x + i * DIM, &err) == 0, "%s", err.msg);
    }
}

void test_shard_crud(void) {
    sx_shard *s = new_shard(SX_STORAGE_SQ8);
    float *x = tv_clustered(3000, DIM, 21, 0);
    fill(s, x, 0, 2000);
    CHECK_EQ(sx_shard_count(s), 2000);
    sx_err err = {0};
    sx_doc *d = NULL;
    CHECK_EQ(sx_shard_get(s, "2101.00042", &d, &err), 0);
    CHECK_STR(d->id, "2101.00042");
    CHECK_STR(d->title, "Paper number 42 about caf\xc3\xa9s");
    CHECK_STR(d->authors, "A. Author, B. Author");
    CHECK_STR(d->update_date, "2021-01-05");
    CHECK(strncmp(d->categories, "cs.CL", 5) == 0);
    free(d);
    float v[DIM];
    CHECK_EQ(sx_shard_get_vector(s, "2101.00042", v, &err), 0);
    CHECK(memcmp(v, x + 42 * DIM, sizeof v) == 0);
    /* search for a stored vector finds it first */
    sx_search_opts o = {.k = 5};
    sx_hit h[5];
    int n;
    sx_search_stats st;
    CHECK_EQ(sx_shard_search(s, x + 77 * DIM, &o, h, &n, &st, &err), 0);
    CHECK_EQ(n, 5);
    CHECK_STR(h[0].id, "2101.00077");
    CHECK_NEAR(h[0].score, 1.0, 0.01);
    CHECK_EQ(st.strategy, SX_STRATEGY_GRAPH);
    /* upsert replaces document and vector */
    sx_doc nd = {"2101.00077", "New title", NULL, NULL, NULL, "math.AP"};
    CHECK_EQ(sx_shard_upsert(s, &nd, x + 2500 * DIM, &err), 0);
    CHECK_EQ(sx_shard_count(s), 2000);
    CHECK_EQ(sx_shard_get(s, "2101.00077", &d, &err), 0);
    CHECK_STR(d->title, "New title");
    CHECK_STR(d->abstract, "");
    CHECK_STR(d->categories, "math.AP");
    free(d);
    CHECK_EQ(sx_shard_search(s, x + 2500 * DIM, &o, h, &n, NULL, &err), 0);
    CHECK_STR(h[0].id, "2101.00077");
    CHECK_EQ(sx_shard_search(s, x + 77 * DIM, &o, h, &n, NULL, &err), 0);
    for (int i = 0; i < n; i++) CHECK(strcmp(h[i].id, "2101.00077") != 0);
    /* the old categories no longer match it, the new one does */
    const char *math[] = {"math.AP"};
    sx_search_opts om = {.k = 5, .categories = math, .n_categories = 1};
    CHECK_EQ(sx_shard_search(s, x, &om, h, &n, &st, &err), 0);
    CHECK_EQ(n, 1);
    CHECK_STR(h[0].id, "2101.00077");
    CHECK_EQ(st.strategy, SX_STRATEGY_BRUTE);
    /* delete */
    CHECK_EQ(sx_shard_delete(s, "2101.00077", &err), 0);
    CHECK_EQ(sx_shard_delete(s, "2101.00077", &err), SX_ENOTFOUND);
    CHECK(strstr(err.msg, "2101.00077") != NULL);
    CHECK_EQ(sx_shard_get(s, "2101.00077", &d, &err), SX_ENOTFOUND);
    CHECK_EQ(sx_shard_get_vector(s, "2101.00077", v, &err), SX_ENOTFOUND);
    CHECK_EQ(sx_shard_count(s), 1999);
    CHECK_EQ(sx_shard_search(s, x, &om, h, &n, &st, &err), 0);
    CHECK_EQ(n, 0);
    const char *none[] = {"no.such"};
    om.categories = none;
    CHECK_EQ(sx_shard_search(s, x, &om, h, &n, &st, &err), 0);
    CHECK_EQ(n, 0);
    CHECK_NEAR(st.selectivity, 0, 1e-12);
    /* stats */
    struct sx_shard_stats ss;
    CHECK_EQ(sx_shard_stats(s, &ss), 0);
    CHECK_EQ(ss.count, 1999);
    CHECK(ss.deleted <= 2);
    CHECK(ss.categories >= 7);
    CHECK(ss.bytes_vectors >= 2000 * DIM);
    CHECK(ss.bytes_graph > 0 && ss.bytes_documents > 2000 * 80 && ss.bytes_bitmaps > 0);
    CHECK(ss.bytes_fp32 >= 1999 * DIM * 4);
    CHECK(ss.levels >= 2);
    CHECK(ss.nodes_per_level[0] >= 1999);
    sx_shard_free(s);
    free(x);
}

/* A small shard emptied and refilled: new papers are found (the graph is
 * not left pointing at deleted nodes only). */
void test_shard_refill_small(void) {
    sx_shard *s = new_shard(SX_STORAGE_FP32);
    float *x = tv_clustered(40, DIM, 26, 0);
    fill(s, x, 0, 20);
    sx_err err = {0};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 20; i++) {
            char id[64];
            snprintf(id, sizeof id, "2101.%05zu", i);
            CHECK_EQ(sx_shard_delete(s, id, &err), 0);
        }
        CHECK_EQ(sx_shard_count(s), 0);
        fill(s, x, 0, 20);
        for (size_t i = 0; i < 20; i++) {
            sx_search_opts o = {.k = 1};
            sx_hit h[1];
            int n;
            CHECK_EQ(sx_shard_search(s, x + i * DIM, &o, h, &n, NULL, &err), 0);
            char want[64];
            snprintf(want, sizeof want, "2101.%05zu", i);
            CHECK_EQ(n, 1);
            CHECK_STR(h[0].id, want);
        }
    }
    struct sx_shard_stats st;
    sx_shard_stats(s, &st);
    CHECK(st.deleted < 20);
    sx_shard_free(s);
    free(x);
}

void test_shard_bad_input(void) {
    sx_shard *s = new_shard(SX_STORAGE_FP32);
    float v[DIM] = {0};
    v[0] = 1;
    sx_err err = {0};
    char longid[80];
    memset(longid, 'a', 64);
    longid[64] = 0;
    sx_doc d = {longid, "t", NULL, NULL, NULL, NULL};
    CHECK_EQ(sx_shard_upsert(s, &d, v, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "63") != NULL);
    longid[63] = 0; /* 63 bytes is fine */
    CHECK_EQ(sx_shard_upsert(s, &d, v, &err), 0);
    d.id = "";
    CHECK_EQ(sx_shard_upsert(s, &d, v, &err), SX_EINVAL);
    d.id = NULL;
    CHECK_EQ(sx_shard_upsert(s, &d, v, &err), SX_EINVAL);
    const char *bad_utf8[] = {"\xff", "caf\xc3", "\xc0\xaf" /* overlong */, "\xed\xa0\x80" /* surrogate */,
                              "\xf4\x90\x80\x80" /* > U+10FFFF */};
    for (int i = 0; i < 5; i++) {
        sx_doc b = {"x.1", bad_utf8[i], NULL, NULL, NULL, NULL};
        CHECK_EQ(sx_shard_upsert(s, &b, v, &err), SX_EINVAL);
        CHECK(strstr(err.msg, "UTF-8") != NULL);
        sx_doc b2 = {"x.1", "ok", NULL, bad_utf8[i], NULL, NULL};
        CHECK_EQ(sx_shard_upsert(s, &b2, v, &err), SX_EINVAL);
    }
    sx_doc good = {"x.1", "\xf0\x9f\x98\x80 \xe4\xb8\xad", NULL, NULL, NULL, "a.B"};
    char longcat[100];
    memset(longcat, 'c', 70);
    longcat[70] = 0;
    sx_doc bc = {"x.1", "ok", NULL, NULL, NULL, longcat};
    CHECK_EQ(sx_shard_upsert(s, &bc, v, &err), SX_EINVAL);
    v[5] = NAN;
    CHECK_EQ(sx_shard_upsert(s, &good, v, &err), SX_EINVAL);
    CHECK_EQ(sx_shard_upsert(s, &good, NULL, &err), SX_EINVAL);
    /* nothing changed */
    CHECK_EQ(sx_shard_count(s), 1);
    sx_doc *out;
    CHECK_EQ(sx_shard_get(s, "x.1", &out, &err), SX_ENOTFOUND);
    v[5] = 0;
    CHECK_EQ(sx_shard_upsert(s, &good, v, &err), 0);
    CHECK_EQ(sx_shard_get(s, "x.1", &out, &err), 0);
    CHECK_STR(out->title, good.title);
    free(out);
    sx_hit h[3];
    int n;
    sx_search_opts o = {.k = 0};
    CHECK_EQ(sx_shard_search(s, v, &o, h, &n, NULL, &err), SX_EINVAL);
    o = (sx_search_opts){.k = 3, .n_categories = 2, .categories = NULL};
    CHECK_EQ(sx_shard_search(s, v, &o, h, &n, NULL, &err), SX_EINVAL);
    o = (sx_search_opts){.k = 3, .ef = -1};
    CHECK_EQ(sx_shard_search(s, v, &o, h, &n, NULL, &err), SX_EINVAL);
    v[1] = INFINITY;
    o.ef = 0;
    CHECK_EQ(sx_shard_search(s, v, &o, h, &n, NULL, &err), SX_EINVAL);
    CHECK_EQ(sx_shard_delete(s, NULL, &err), SX_EINVAL);
    sx_shard_params p = sx_shard_params_default();
    p.dim = 0;
    sx_shard *t;
    CHECK_EQ(sx_shard_create(&p, &t, &err), SX_EINVAL);
    sx_shard_free(s);
}

/* Recall of filtered shard search against brute force over the passing
 * papers, and every hit passes the filter. */
void test_shard_filtered_recall(void) {
    size_t n = TV_ASAN ? 6000 : 20000;
    float *x = tv_real_corpus(n), *qv = tv_real_queries(100);
    sx_shard *s = new_shard(SX_STORAGE_SQ8);
    fill(s, x, 0, n);
    const char *codes[] = {"sel.01", "sel.1", "sel.10", "sel.50"};
    for (int c = 0; c < 4; c++) {
        const char *cats[] = {codes[c]};
        sx_search_opts o = {.k = 10, .categories = cats, .n_categories = 1};
        long found = 0, total = 0;
        sx_search_stats st;
        for (int qi = 0; qi < 100; qi++) {
            const float *q = qv + (size_t)qi * DIM;
            /* brute force */
            float best[10];
            size_t bid[10];
            int nb = 0;
            for (size_t i = 0; i < n; i++) {
                char id[64], cs[128], title[128];
                sx_doc d;
                make_doc(i, id, cs, title, &d);
                if (!has_code(cs, codes[c])) continue;
                float sc = sx_kernels_best()->dot_f32(q, x + i * DIM, DIM);
                if (nb == 10 && sc <= best[9]) continue;
                int at = nb < 10 ? nb++ : 9;
                while (at > 0 && best[at - 1] < sc) {
                    best[at] = best[at - 1];
                    bid[at] = bid[at - 1];
                    at--;
                }
                best[at] = sc;
                bid[at] = i;
            }
            sx_hit h[10];
            int nh;
            sx_err err = {0};
            CHECK_MSG(sx_shard_search(s, q, &o, h, &nh, &st, &err) == 0, "%s", err.msg);
            CHECK_EQ(nh, nb);
            for (int j = 0; j < nh; j++) {
                sx_doc *d;
                CHECK_EQ(sx_shard_get(s, h[j].id, &d, &err), 0);
                CHECK(has_code(d->categories, codes[c]));
                free(d);
                char want[64];
                for (int b = 0; b < nb; b++) {
                    snprintf(want, sizeof want, "2101.%05zu", bid[b]);
                    if (strcmp(want, h[j].id) == 0) found++;
                }
            }
            total += nb;
        }
        double r = total ? (double)found / (double)total : 1;
        fprintf(stderr, "    %s: recall@10 %.4f strategy %d selectivity %.4f\n", codes[c], r, st.strategy,
               st.selectivity);
        CHECK(r >= 0.95);
    }
    sx_shard_free(s);
    free(x);
    free(qv);
}

/* ---- persistence ---- */

/* Same hits (ids and scores) for nq queries, unfiltered and filtered. */
static void same_results(sx_shard *a, sx_shard *b, const float *qv, int nq) {
    const char *cats[] = {"sel.10", "cs.CL"};
    for (int f = 0; f < 3; f++) {
        sx_search_opts o = {.k = 10, .categories = cats + (f == 2), .n_categories = f ? 1 : 0};
        for (int i = 0; i < nq; i++) {
            sx_hit ha[10], hb[10];
            int na, nb;
            CHECK_EQ(sx_shard_search(a, qv + (size_t)i * DIM, &o, ha, &na, NULL, NULL), 0);
            CHECK_EQ(sx_shard_search(b, qv + (size_t)i * DIM, &o, hb, &nb, NULL, NULL), 0);
            CHECK_EQ(na, nb);
            for (int j = 0; j < na; j++) {
                CHECK_STR(ha[j].id, hb[j].id);
                CHECK(ha[j].score == hb[j].score);
            }
        }
    }
}

static void same_docs(sx_shard *a, sx_shard *b, size_t n) {
    CHECK_EQ(sx_shard_count(a), sx_shard_count(b));
    for (size_t i = 0; i < n; i += 13) {
        char id[64];
        snprintf(id, sizeof id, "2101.%05zu", i);
        sx_doc *da = NULL, *db = NULL;
        int ra = sx_shard_get(a, id, &da, NULL), rb = sx_shard_get(b, id, &db, NULL);
        CHECK_EQ(ra, rb);
        if (ra == 0) {
            CHECK_STR(da->title, db->title);
            CHECK_STR(da->categories, db->categories);
            CHECK_STR(da->abstract, db->abstract);
            float va[DIM], vb[DIM];
            CHECK_EQ(sx_shard_get_vector(a, id, va, NULL), 0);
            CHECK_EQ(sx_shard_get_vector(b, id, vb, NULL), 0);
            CHECK(memcmp(va, vb, sizeof va) == 0);
        }
        free(da);
        free(db);
    }
}

void test_shard_save_load(void) {
    size_t n = 4000;
    float *x = tv_clustered(n + 500, DIM, 23, 0), *qv = tv_clustered(40, DIM, 23, 1);
    for (int storage = 0; storage < 2; storage++) {
        sx_shard *s = new_shard(storage);
        fill(s, x, 0, n);
        sx_err err = {0};
        for (size_t i = 0; i < n; i += 9) {
            char id[64];
            snprintf(id, sizeof id, "2101.%05zu", i);
            CHECK_EQ(sx_shard_delete(s, id, &err), 0);
        }
        membuf m = {0};
        CHECK_MSG(sx_shard_save(s, mem_write, &m, &err) == 0, "%s", err.msg);
        /* stream */
        sx_shard *b = NULL;
        CHECK_MSG(sx_shard_load(mem_read, &m, &b, &err) == 0, "%s", err.msg);
        same_results(s, b, qv, 40);
        same_docs(s, b, n);
        /* file, mapped: verified and lazy */
        char path[512];
        snprintf(path, sizeof path, "%s/shard.sx", test_tmpdir());
        CHECK_MSG(sx_snapfile_save(s, path, &err) == 0, "%s", err.msg);
        for (int lazy = 0; lazy < 2; lazy++) {
            sx_shard *c = NULL;
            CHECK_MSG(sx_snapfile_map(path, lazy ? SX_LOAD_LAZY : 0, &c, &err) == 0, "%s", err.msg);
            same_results(s, c, qv, 40);
            same_docs(s, c, n);
            struct sx_shard_stats ss;
            sx_shard_stats(c, &ss);
            CHECK(ss.bytes_documents_mapped > 0);
            CHECK_EQ(ss.bytes_documents, 0);
            if (storage == SX_STORAGE_SQ8) CHECK(ss.bytes_fp32_mapped > 0);
            /* changes after a mapped load go to the heap */
            fill(c, x, n, n + 500);
            for (size_t i = 1; i < n; i += 5) {
                char id[64];
                snprintf(id, sizeof id, "2101.%05zu", i);
                sx_shard_delete(c, id, NULL);
            }
            fill(c, x, 2, 30); /* re-add some deleted, replace others */
            sx_search_opts o = {.k = 3};
            sx_hit h[3];
            int nh;
            CHECK_EQ(sx_shard_search(c, x + (n + 10) * DIM, &o, h, &nh, NULL, &err), 0);
            char want[64];
            snprintf(want, sizeof want, "2101.%05zu", n + 10);
            CHECK_STR(h[0].id, want);
            /* and save again from the mapped shard */
            membuf m2 = {0};
            CHECK_MSG(sx_shard_save(c, mem_write, &m2, &err) == 0, "%s", err.msg);
            sx_shard *d = NULL;
            CHECK_MSG(sx_shard_load(mem_read, &m2, &d, &err) == 0, "%s", err.msg);
            same_results(c, d, qv, 20);
            same_docs(c, d, n + 500);
            sx_shard_free(d);
            sx_shard_free(c);
            free(m2.p);
        }
        sx_shard_free(b);
        sx_shard_free(s);
        free(m.p);
    }
    /* a missing file and an empty file */
    sx_shard *z = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_snapfile_map("tests/fixtures/no-such-file", 0, &z, &err), SX_ENOTFOUND);
    char path[512];
    snprintf(path, sizeof path, "%s/empty.sx", test_tmpdir());
    fclose(fopen(path, "wb"));
    CHECK_EQ(sx_snapfile_map(path, 0, &z, &err), SX_ECORRUPT);
    free(x);
    free(qv);
}

void test_shard_load_corrupt(void) {
    sx_shard_params p = sx_shard_params_default();
    p.dim = 8;
    p.M = 4;
    sx_shard *s = NULL;
    sx_err err = {0};
    CHECK_EQ(sx_shard_create(&p, &s, &err), 0);
    float *x = tv_clustered(60, 8, 24, 0);
    for (size_t i = 0; i < 60; i++) {
        char id[64], cats[128], title[128];
        sx_doc d;
        make_doc(i, id, cats, title, &d);
        CHECK_EQ(sx_shard_upsert(s, &d, x + i * 8, &err), 0);
    }
    sx_shard_delete(s, "2101.00003", NULL);
    membuf m = {0};
    CHECK_EQ(sx_shard_save(s, mem_write, &m, &err), 0);
    sx_shard_free(s);
    /* truncation anywhere: a clear error from a stream and from memory */
    for (size_t cut = 0; cut < m.len; cut += 1 + cut / 32) {
        membuf t = {m.p, cut, cut, 0, 0};
        sx_shard *b = NULL;
        int rc = sx_shard_load(mem_read, &t, &b, &err);
        CHECK_MSG(rc == SX_ECORRUPT, "cut %zu: %d", cut, rc);
        CHECK(b == NULL && strlen(err.msg) > 0);
        CHECK_EQ(sx_shard_load_mapped(m.p, cut, 0, &b, &err), SX_ECORRUPT);
        CHECK_EQ(sx_shard_load_mapped(m.p, cut, SX_LOAD_LAZY, &b, &err), SX_ECORRUPT);
    }
    /* a flipped byte anywhere: an error, or (padding; lazy: document bytes)
     * a shard that works without crashing */
    int detected = 0, tried = 0;
    for (size_t i = 0; i < m.len; i++) {
        m.p[i] ^= 0x21;
        for (int lazy = 0; lazy < 2; lazy++) {
            sx_shard *b = NULL;
            int rc = sx_shard_load_mapped(m.p, m.len, lazy ? SX_LOAD_LAZY : 0, &b, &err);
            tried++;
            if (rc < 0) {
                CHECK_MSG(rc == SX_ECORRUPT || rc == SX_EUNSUPPORTED, "byte %zu: %d", i, rc);
                detected++;
                continue;
            }
            sx_search_opts o = {.k = 5};
            sx_hit h[5];
            int nh;
            CHECK_EQ(sx_shard_search(b, x, &o, h, &nh, NULL, NULL), 0);
            for (int j = 0; j < nh; j++) {
                sx_doc *d = NULL;
                int g = sx_shard_get(b, h[j].id, &d, NULL);
                CHECK(g == 0 || g == SX_ECORRUPT || g == SX_ENOTFOUND);
                free(d);
            }
            sx_shard_free(b);
        }
        m.p[i] ^= 0x21;
    }
    fprintf(stderr, "    %d of %d corrupted loads refused\n", detected, tried);
    CHECK(detected > tried / 2);
    free(m.p);
    free(x);
}

/* ---- concurrency ---- */

typedef struct stress {
    sx_shard *s;
    const float *x;
    size_t n;
    _Atomic size_t inserted[2]; /* writer w has upserted papers [0, inserted[w]) */
    _Atomic int next_writer;
    _Atomic size_t deleted;  /* papers 0, 2, 4, ... < 2*deleted are gone for good */
    _Atomic int stop;
    _Atomic long searches;
} stress;

static void *stress_writer(void *arg) {
    stress *t = arg;
    sx_err err = {0};
    int w = atomic_fetch_add(&t->next_writer, 1);
    for (size_t i = 0; i < t->n; i++) {
        char id[64], cats[128], title[128];
        sx_doc d;
        make_doc(i, id, cats, title, &d);
        if (sx_shard_upsert(t->s, &d, t->x + i * DIM, &err) < 0) abort();
        atomic_store(&t->inserted[w], i + 1);
    }
    return NULL;
}

static void *stress_deleter(void *arg) {
    stress *t = arg;
    for (size_t k = 0; k * 2 < t->n; k++) {
        while ((atomic_load(&t->inserted[0]) <= 2 * k + 1 || atomic_load(&t->inserted[1]) <= 2 * k + 1) &&
               !atomic_load(&t->stop))
            usleep(100);
        char id[64];
        snprintf(id, sizeof id, "2101.%05zu", 2 * k);
        if (sx_shard_delete(t->s, id, NULL) < 0) abort();
        atomic_store(&t->deleted, k + 1);
        /* some replacements of odd papers too (upsert of an existing id) */
        if (k % 7 == 0) {
            char cats[128], title[128];
            sx_doc d;
            make_doc(2 * k + 1, id, cats, title, &d);
            if (sx_shard_upsert(t->s, &d, t->x + (2 * k + 1) * DIM, NULL) < 0) abort();
        }
    }
    return NULL;
}

static void *stress_searcher(void *arg) {
    stress *t = arg;
    const char *cats[] = {"sel.50"};
    for (int i = 0; !atomic_load(&t->stop); i++) {
        size_t gone = atomic_load(&t->deleted);
        sx_search_opts o = {.k = 10, .categories = cats, .n_categories = i & 1};
        sx_hit h[10];
        int nh;
        if (sx_shard_search(t->s, t->x + (size_t)(i % 500) * DIM, &o, h, &nh, NULL, NULL) < 0) abort();
        for (int j = 0; j < nh; j++) {
            size_t id = (size_t)atol(h[j].id + 5);
            if (id % 2 == 0 && id / 2 < gone) {
                fprintf(stderr, "deleted paper %s returned\n", h[j].id);
                abort();
            }
        }
        sx_doc *d;
        char id[64];
        snprintf(id, sizeof id, "2101.%05d", i % 500);
        if (sx_shard_get(t->s, id, &d, NULL) == 0) free(d);
        atomic_fetch_add(&t->searches, 1);
    }
    return NULL;
}

static void *stress_saver(void *arg) {
    stress *t = arg;
    while (!atomic_load(&t->stop)) {
        membuf m = {0};
        if (sx_shard_save(t->s, mem_write, &m, NULL) < 0) abort();
        sx_shard *b = NULL;
        if (sx_shard_load(mem_read, &m, &b, NULL) < 0) abort();
        sx_shard_free(b);
        free(m.p);
        usleep(20000);
    }
    return NULL;
}

/* Concurrent upserts, deletes, replacements, searches, gets and saves; no
 * deleted paper is ever returned; the end state is exact. Run under
 * ThreadSanitizer by `make tsan`. */
void test_shard_concurrent(void) {
    stress t = {0};
    t.n = TV_TSAN ? 800 : TV_ASAN ? 2000 : 6000;
    t.x = tv_clustered(t.n, DIM, 25, 0);
    t.s = new_shard(SX_STORAGE_SQ8);
    pthread_t w[2], del, se[2], sv;
    /* two writers insert the same papers (upserts race on the same ids) */
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&w[i], NULL, stress_writer, &t) == 0);
    CHECK(pthread_create(&del, NULL, stress_deleter, &t) == 0);
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&se[i], NULL, stress_searcher, &t) == 0);
    CHECK(pthread_create(&sv, NULL, stress_saver, &t) == 0);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    pthread_join(del, NULL);
    atomic_store(&t.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(se[i], NULL);
    pthread_join(sv, NULL);
    fprintf(stderr, "    %ld searches during the writes\n", (long)atomic_load(&t.searches));
    CHECK(atomic_load(&t.searches) > 0);
    CHECK_EQ(sx_shard_count(t.s), t.n / 2);
    for (size_t i = 0; i < t.n; i++) {
        char id[64];
        snprintf(id, sizeof id, "2101.%05zu", i);
        sx_doc *d = NULL;
        CHECK_EQ(sx_shard_get(t.s, id, &d, NULL), i % 2 ? 0 : SX_ENOTFOUND);
        free(d);
    }
    /* Every surviving paper keeps its own vector and is still reachable
     * in the graph: a wide search for its vector returns it. (A k=1 search
     * at the default ef may, rarely, stop in a neighbouring local optimum
     * of this clustered data: that is approximation, not a lost node.) */
    sx_search_opts o = {.k = 10, .ef = 256};
    sx_hit h[10];
    int nh;
    float v[DIM];
    for (size_t i = 1; i < t.n; i += 194) {
        char want[64];
        snprintf(want, sizeof want, "2101.%05zu", i);
        CHECK_EQ(sx_shard_get_vector(t.s, want, v, NULL), 0);
        CHECK(memcmp(v, t.x + i * DIM, sizeof v) == 0);
        CHECK_EQ(sx_shard_search(t.s, t.x + i * DIM, &o, h, &nh, NULL, NULL), 0);
        int found = 0;
        for (int j = 0; j < nh; j++) found |= strcmp(h[j].id, want) == 0;
        CHECK_MSG(found, "%s not among the 10 hits of a search for its own vector", want);
    }
    sx_shard_free(t.s);
    free((void *)t.x);
}

/* The committed snapshot (written by tests/fuzz/shard_load.c built as
 * make-seed, format version 1) still loads and answers: the format is
 * stable, or this fails and the version must change. */
void test_shard_fixture_loads(void) {
    sx_err err = {0};
    for (int lazy = 0; lazy < 2; lazy++) {
        sx_shard *s = NULL;
        CHECK_MSG(sx_snapfile_map("tests/fixtures/shard/small-v1.sx", lazy ? SX_LOAD_LAZY : 0, &s, &err) == 0,
                  "%s", err.msg);
        CHECK_EQ(sx_shard_count(s), 39);
        sx_shard_params p = sx_shard_get_params(s);
        CHECK_EQ(p.dim, 8);
        CHECK_EQ(p.M, 4);
        sx_doc *d = NULL;
        CHECK_EQ(sx_shard_get(s, "2101.00007", &d, &err), 0);
        CHECK_STR(d->title, "Seed paper 7");
        CHECK_STR(d->categories, "hep-th");
        free(d);
        CHECK_EQ(sx_shard_get(s, "2101.00005", &d, &err), SX_ENOTFOUND);
        float v[8];
        CHECK_EQ(sx_shard_get_vector(s, "2101.00011", v, &err), 0);
        sx_search_opts o = {.k = 1};
        sx_hit h[1];
        int n;
        CHECK_EQ(sx_shard_search(s, v, &o, h, &n, NULL, &err), 0);
        CHECK_EQ(n, 1);
        CHECK_NEAR(h[0].score, 1.0, 1e-3);
        const char *cats[] = {"math.AP"};
        sx_search_opts of = {.k = 20, .categories = cats, .n_categories = 1};
        sx_hit hf[20];
        CHECK_EQ(sx_shard_search(s, v, &of, hf, &n, NULL, &err), 0);
        CHECK_EQ(n, 9); /* papers 1, 5, 9, ..., 37 (i % 4 == 1) less the deleted 5 */
        sx_shard_free(s);
    }
}

/* ---- pluggable allocator ---- */

static _Atomic long g_live_blocks, g_calls;

static void *count_malloc(size_t n) {
    void *p = malloc(n);
    if (p) atomic_fetch_add(&g_live_blocks, 1), atomic_fetch_add(&g_calls, 1);
    return p;
}
static void *count_calloc(size_t n, size_t m) {
    void *p = calloc(n, m);
    if (p) atomic_fetch_add(&g_live_blocks, 1), atomic_fetch_add(&g_calls, 1);
    return p;
}
static void *count_realloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (q && !p) atomic_fetch_add(&g_live_blocks, 1);
    atomic_fetch_add(&g_calls, 1);
    return q;
}
static void count_free(void *p) {
    if (p) atomic_fetch_sub(&g_live_blocks, 1);
    free(p);
}

/* Every allocation of a shard's life (build, search, vacuum, save, load)
 * goes through the installed allocator and is given back to it. */
void test_shard_allocator(void) {
    sx_allocator a = {count_malloc, count_calloc, count_realloc, count_free};
    sx_index_set_allocator(&a);
    float *x = tv_clustered(1500, DIM, 27, 0);
    sx_shard *s = new_shard(SX_STORAGE_SQ8);
    fill(s, x, 0, 1500);
    for (size_t i = 0; i < 1500; i += 3) {
        char id[64];
        snprintf(id, sizeof id, "2101.%05zu", i);
        CHECK_EQ(sx_shard_delete(s, id, NULL), 0);
    }
    const char *cats[] = {"sel.50"};
    sx_search_opts o = {.k = 10, .categories = cats, .n_categories = 1};
    sx_hit h[10];
    int n;
    CHECK_EQ(sx_shard_search(s, x, &o, h, &n, NULL, NULL), 0);
    membuf m = {0};
    CHECK_EQ(sx_shard_save(s, mem_write, &m, NULL), 0);
    sx_shard *b = NULL;
    CHECK_EQ(sx_shard_load(mem_read, &m, &b, NULL), 0);
    CHECK_EQ(sx_shard_count(b), 1000);
    CHECK(atomic_load(&g_calls) > 3000);
    CHECK(atomic_load(&g_live_blocks) > 0);
    sx_shard_free(s);
    sx_shard_free(b);
    CHECK_EQ(atomic_load(&g_live_blocks), 0);
    sx_index_set_allocator(NULL);
    free(m.p);
    free(x);
}

/* The routing formula is an on-disk and on-cluster contract: these values
 * (CRC-32C check value 0xE3069283 of "123456789", and ids computed by an
 * independent implementation) must never change. */
void test_shard_route_contract(void) {
    CHECK_EQ(sx_shard_route("123456789", 16), 3);
    CHECK_EQ(sx_shard_route("123456789", 7), 2);
    CHECK_EQ(sx_shard_route("123456789", 256), 131);
    CHECK_EQ(sx_shard_route("2401.01234", 16), 2);
    CHECK_EQ(sx_shard_route("2401.01234", 64), 34);
    CHECK_EQ(sx_shard_route("hep-th/9901001", 16), 4);
    CHECK_EQ(sx_shard_route("hep-th/9901001", 64), 36);
    CHECK_EQ(sx_shard_route("0704.0001", 64), 3);
    CHECK_EQ(sx_shard_route("anything", 1), 0);
}

/* Each shard's share of the effort: ef / cbrt(S) rounded up, at least k,
 * all of it for one shard. */
void test_shard_ef_share(void) {
    CHECK_EQ(sx_shard_ef(64, 10, 1), 64);
    CHECK_EQ(sx_shard_ef(64, 10, 0), 64);
    CHECK_EQ(sx_shard_ef(64, 10, 8), 32);
    CHECK_EQ(sx_shard_ef(64, 10, 4), 41);
    CHECK_EQ(sx_shard_ef(64, 10, 16), 26);
    CHECK_EQ(sx_shard_ef(64, 10, 64), 16);
    CHECK_EQ(sx_shard_ef(64, 10, 1000), 10); /* never below k */
    CHECK_EQ(sx_shard_ef(64, 50, 16), 50);
    CHECK_EQ(sx_shard_ef(27, 1, 27), 9);     /* exact cube: no rounding up */
}

/* Merging: best score first, ties by id, the tail's documents released
 * (ASan's leak check fails the test otherwise). */
void test_shard_hits_merge(void) {
    sx_hit h[5] = {{0.5f, "b", NULL}, {0.9f, "z", NULL}, {0.5f, "a", NULL}, {0.1f, "c", NULL},
                   {0.7f, "d", NULL}};
    for (int i = 0; i < 5; i++) {
        h[i].doc = malloc(sizeof(sx_doc));
        CHECK(h[i].doc);
    }
    int n = sx_hits_merge(h, 5, 3);
    CHECK_EQ(n, 3);
    CHECK_STR(h[0].id, "z");
    CHECK_STR(h[1].id, "d");
    CHECK_STR(h[2].id, "a");
    CHECK(h[3].doc == NULL && h[4].doc == NULL);
    sx_hits_release(h, n);
    CHECK(h[0].doc == NULL);
    CHECK_EQ(sx_hits_merge(h, 0, 3), 0);
}

/* A search with documents hands out copies taken while the search held the
 * nodes: deleting and replacing the papers afterwards changes none of them. */
void test_shard_search_with_docs(void) {
    sx_shard *s = new_shard(SX_STORAGE_SQ8);
    float *x = tv_clustered(1500, DIM, 23, 0);
    fill(s, x, 0, 1500);
    sx_err err = {0};
    sx_hit hits[20];
    int n = 0;
    sx_search_opts o = {.k = 20, .with_docs = 1};
    CHECK_MSG(sx_shard_search(s, x + 7 * DIM, &o, hits, &n, NULL, &err) == 0, "%s", err.msg);
    CHECK_EQ(n, 20);
    for (int i = 0; i < n; i++) {
        CHECK(hits[i].doc != NULL);
        CHECK_STR(hits[i].doc->id, hits[i].id);
        sx_doc *d = NULL;
        CHECK(sx_shard_get(s, hits[i].id, &d, &err) == 0);
        CHECK_STR(hits[i].doc->title, d->title);
        CHECK_STR(hits[i].doc->categories, d->categories);
        free(d);
    }
    for (int i = 0; i < n; i++) CHECK(sx_shard_delete(s, hits[i].id, &err) == 0);
    fill(s, x, 1000, 1500); /* reuses slots once the vacuum has run */
    for (int i = 0; i < n; i++) {
        char id[64], cats[128], title[128];
        sx_doc d;
        make_doc((size_t)atoi(hits[i].id + 5), id, cats, title, &d);
        CHECK_STR(hits[i].doc->title, title);
    }
    sx_hits_release(hits, n);
    /* Without with_docs no copies are made. */
    o.with_docs = 0;
    CHECK(sx_shard_search(s, x, &o, hits, &n, NULL, &err) == 0);
    for (int i = 0; i < n; i++) CHECK(hits[i].doc == NULL);
    free(x);
    sx_shard_free(s);
}

/* sx_doc_encode / sx_doc_decode: a round trip, and every truncation, every
 * single-byte change of the length fields and assorted garbage refused or
 * decoded into fields that lie inside the buffer. */
void test_shard_doc_codec(void) {
    sx_doc d = {"2101.00001", "A title caf\xc3\xa9", "An abstract.", NULL, "2021-01-05", "cs.LG stat.ML"};
    void *buf = NULL;
    size_t len = 0;
    sx_err err = {0};
    CHECK_MSG(sx_doc_encode(&d, &buf, &len, &err) == 0, "%s", err.msg);
    CHECK_EQ(len, 4 + 6 * 5 + strlen(d.id) + strlen(d.title) + strlen(d.abstract) +
                      strlen(d.update_date) + strlen(d.categories));
    sx_doc o;
    CHECK_MSG(sx_doc_decode(buf, len, &o, &err) == 0, "%s", err.msg);
    CHECK_STR(o.id, d.id);
    CHECK_STR(o.title, d.title);
    CHECK_STR(o.abstract, d.abstract);
    CHECK_STR(o.authors, "");
    CHECK_STR(o.update_date, d.update_date);
    CHECK_STR(o.categories, d.categories);
    CHECK((const char *)o.id > (const char *)buf && (const char *)o.categories < (const char *)buf + len);
    /* every truncation (the length header then disagrees, or is fixed up) */
    uint8_t *c = malloc(len);
    for (size_t n = 0; n < len; n++) {
        memcpy(c, buf, n);
        CHECK(sx_doc_decode(c, n, &o, &err) == SX_ECORRUPT);
        if (n >= 4) {
            sx_le32_put(c, (uint32_t)n);
            CHECK(sx_doc_decode(c, n, &o, &err) == SX_ECORRUPT);
        }
    }
    /* one trailing byte too many */
    uint8_t *big = malloc(len + 1);
    memcpy(big, buf, len);
    big[len] = 0;
    big[0] = (uint8_t)(len + 1);
    CHECK(sx_doc_decode(big, len + 1, &o, &err) == SX_ECORRUPT);
    /* each byte of the buffer changed: refused, or still well-formed */
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 256; v += 51) {
            memcpy(c, buf, len);
            c[i] = (uint8_t)(c[i] ^ (v | 1));
            int rc = sx_doc_decode(c, len, &o, &err);
            CHECK(rc == 0 || rc == SX_ECORRUPT);
            if (rc == 0) {
                const char *f[6] = {o.id, o.title, o.abstract, o.authors, o.update_date, o.categories};
                for (int k = 0; k < 6; k++)
                    CHECK((const char *)f[k] >= (const char *)c && f[k] + strlen(f[k]) < (const char *)c + len);
            }
        }
    }
    /* a NUL inside a field, invalid UTF-8, random garbage */
    memcpy(c, buf, len);
    c[4 + 4 + 2] = 0; /* inside the id */
    CHECK(sx_doc_decode(c, len, &o, &err) == SX_ECORRUPT);
    memcpy(c, buf, len);
    c[4 + 4] = 0xff;
    CHECK(sx_doc_decode(c, len, &o, &err) == SX_ECORRUPT);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    tv_rng r = {5};
    for (int t = 0; t < 2000; t++) {
        size_t n = (size_t)(tv_next(&r) % (len + 8));
        uint8_t *g = malloc(n + 1);
        for (size_t i = 0; i < n; i++) g[i] = (uint8_t)tv_next(&r);
        if (n >= 4 && t % 2) sx_le32_put(g, (uint32_t)n);
        int rc = sx_doc_decode(g, n, &o, &err);
        CHECK(rc == 0 || rc == SX_ECORRUPT);
        free(g);
    }
    CHECK(sx_doc_decode(NULL, 0, &o, &err) == SX_ECORRUPT);
    free(big);
    free(c);
    free(buf);
}

/* The stores' validation rules (sx_doc_check, sx_vector_check). */
void test_shard_check_rules(void) {
    sx_err err = {0};
    sx_doc ok = {"2101.00001", "T", "", "", "", "cs.LG"};
    CHECK_EQ(sx_doc_check(&ok, &err), 0);
    sx_doc d = ok;
    d.id = NULL;
    CHECK_EQ(sx_doc_check(&d, &err), SX_EINVAL);
    d.id = "";
    CHECK_EQ(sx_doc_check(&d, &err), SX_EINVAL);
    d.id = "a b";
    CHECK_EQ(sx_doc_check(&d, &err), SX_EINVAL);
    d.id = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 */
    CHECK_EQ(sx_doc_check(&d, &err), SX_EINVAL);
    d.id = "math/0101001";
    CHECK_EQ(sx_doc_check(&d, &err), 0);
    d.title = "";
    CHECK_EQ(sx_doc_check(&d, &err), SX_EINVAL);
    d.title = "bad \xc3";
    CHECK_EQ(sx_doc_check(&d, &err), SX_EINVAL);
    d = ok;
    d.categories = "cs.LG aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    CHECK_EQ(sx_doc_check(&d, &err), SX_EINVAL);
    float v[DIM] = {0};
    CHECK_EQ(sx_vector_check(v, DIM, &err), SX_EINVAL); /* zero */
    v[3] = 1;
    CHECK_EQ(sx_vector_check(v, DIM, &err), 0);
    v[3] = 1.01f;
    CHECK_EQ(sx_vector_check(v, DIM, &err), SX_EINVAL);
    v[3] = NAN;
    CHECK_EQ(sx_vector_check(v, DIM, &err), SX_EINVAL);
    v[3] = INFINITY;
    CHECK_EQ(sx_vector_check(v, DIM, &err), SX_EINVAL);
}

typedef struct digest_acc {
    uint64_t h;
    size_t calls;
} digest_acc;

static void digest_add(void *ctx, const void *buf, size_t len) {
    digest_acc *a = ctx;
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) a->h = (a->h ^ p[i]) * 1099511628211ull;
    a->h = (a->h ^ len) * 1099511628211ull;
    a->calls++;
}

static uint64_t digest_of(sx_shard *s, size_t *calls) {
    digest_acc a = {1469598103934665603ull, 0};
    CHECK_EQ(sx_shard_digest(s, digest_add, &a), 0);
    if (calls) *calls = a.calls;
    return a.h;
}

static int each_count(void *ctx, const sx_doc *d, const float *vec, int level) {
    size_t *n = ctx;
    if (!d->id[0] || level < 0 || level > 15 || fabsf(vec[0]) > 1) return -1;
    (*n)++;
    return 0;
}

/* Replication: a "replica" given the master's operations with the levels
 * the master drew, and housekeeping at the points the master ran it, answers
 * every search with the same ids and scores; the digest ignores the graph
 * but sees any change of content. */
void test_shard_replay_levels(void) {
    sx_shard *m = new_shard(SX_STORAGE_SQ8), *r = new_shard(SX_STORAGE_SQ8);
    size_t n = TV_ASAN ? 1500 : 3000;
    float *x = tv_clustered(n + 50, DIM, 33, 0);
    sx_err err = {0};
    int maint = 0, hist[16] = {0};
    for (size_t i = 0; i < n; i++) {
        char id[64], cats[128], title[128];
        sx_doc d;
        make_doc(i, id, cats, title, &d);
        int level = -1;
        CHECK_MSG(sx_shard_upsert_ex(m, &d, x + i * DIM, &level, &err) == 0, "%s", err.msg);
        CHECK(level >= 0 && level <= 15);
        hist[level]++;
        CHECK_EQ(sx_shard_upsert_ex(r, &d, x + i * DIM, &level, &err), 0);
        if (i % 7 == 3) { /* delete an earlier paper */
            char old[64];
            snprintf(old, sizeof old, "2101.%05zu", i / 2);
            int a = sx_shard_delete_ex(m, old, NULL), b = sx_shard_delete_ex(r, old, NULL);
            CHECK_EQ(a, b);
        }
        CHECK_EQ(sx_shard_maintenance_due(m), sx_shard_maintenance_due(r));
        if (sx_shard_maintenance_due(m)) {
            CHECK_EQ(sx_shard_maintain(m, &err), 0);
            CHECK_EQ(sx_shard_maintain(r, &err), 0);
            CHECK_EQ(sx_shard_maintenance_due(m), 0);
            maint++;
        }
    }
    CHECK(maint >= 2); /* the SQ8 training and at least one vacuum */
    CHECK(hist[0] > (int)n * 8 / 10 && hist[1] > 0);
    struct sx_shard_stats sm, sr;
    sx_shard_stats(m, &sm);
    sx_shard_stats(r, &sr);
    CHECK_EQ(sm.count, sr.count);
    CHECK_EQ(sm.deleted, sr.deleted);
    CHECK_EQ(sm.bytes_graph, sr.bytes_graph);
    const char *cats[] = {"sel.10"};
    for (size_t q = 0; q < 50; q++) {
        sx_search_opts o = {.k = 10, .ef = 32};
        if (q % 2) o.categories = cats, o.n_categories = 1;
        sx_hit a[10], b[10];
        int na, nb;
        CHECK_EQ(sx_shard_search(m, x + (n + q) * DIM, &o, a, &na, NULL, &err), 0);
        CHECK_EQ(sx_shard_search(r, x + (n + q) * DIM, &o, b, &nb, NULL, &err), 0);
        CHECK_EQ(na, nb);
        for (int i = 0; i < na; i++) {
            CHECK_STR(a[i].id, b[i].id);
            CHECK(a[i].score == b[i].score);
        }
    }
    size_t calls = 0;
    uint64_t dm = digest_of(m, &calls);
    CHECK_EQ(calls, 3 * sm.count);
    CHECK(dm == digest_of(r, NULL));
    /* the same contents inserted in another order, through sx_shard_upsert:
     * another graph, the same digest */
    sx_shard *o = new_shard(SX_STORAGE_SQ8);
    int seen = 0;
    for (size_t i = n; i-- > 0;) {
        char id[64], cats2[128], title[128];
        sx_doc d;
        make_doc(i, id, cats2, title, &d);
        sx_doc *got = NULL;
        if (sx_shard_get(m, id, &got, NULL) == 0) {
            CHECK_EQ(sx_shard_upsert(o, &d, x + i * DIM, &err), 0);
            seen++;
            free(got);
        }
    }
    CHECK_EQ(seen, sm.count);
    CHECK(dm == digest_of(o, NULL));
    /* a changed document or vector changes it */
    char id[64], cats3[128], title[128];
    sx_doc d;
    make_doc(5, id, cats3, title, &d);
    snprintf(id, sizeof id, "2101.%05zu", n - 1);
    d.title = "another title";
    CHECK_EQ(sx_shard_upsert(o, &d, x + (n - 1) * DIM, &err), 0);
    CHECK(dm != digest_of(o, NULL));
    /* sx_shard_each: every live paper once, with its level */
    size_t total = 0;
    CHECK_EQ(sx_shard_each(r, each_count, &total, &err), 0);
    CHECK_EQ(total, sr.count);
    /* explicit levels out of range are refused */
    int bad = 16;
    CHECK_EQ(sx_shard_upsert_ex(r, &d, x, &bad, &err), SX_EINVAL);
    bad = -2;
    CHECK_EQ(sx_shard_upsert_ex(r, &d, x, &bad, &err), SX_EINVAL);
    sx_shard_free(o);
    sx_shard_free(m);
    sx_shard_free(r);
    free(x);
}

/* ---- keyword search, dates, authors ---- */

/* Ids of the hits, joined by spaces. */
static const char *hit_ids(const sx_hit *h, int n, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? " " : "", h[i].id);
    return buf;
}

/* Runs a search and returns its hit ids (static buffer). */
static const char *ids_of(sx_shard *s, const float *q, sx_search_opts o) {
    static char buf[1024];
    sx_hit h[32];
    int n = -1;
    sx_err err = {0};
    o.with_docs = 1;
    CHECK_MSG(sx_shard_search(s, q, &o, h, &n, NULL, &err) == 0, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        CHECK(h[i].doc != NULL);
        if (h[i].doc) CHECK_STR(h[i].doc->id, h[i].id);
    }
    hit_ids(h, n, buf, sizeof buf);
    sx_hits_release(h, n);
    return buf;
}

static const sx_doc k_text_docs[] = {
    {"a1", "Lindblad dynamics of open quantum systems", "Master equations.", "Erwin Schr\\\"odinger, J. K. Bhattacharjee", "2019-05-01", "quant-ph"},
    {"a2", "ResNet-50 pruning for edge devices", "We prune ResNet-50.", "Kaiming He, Xiangyu Zhang", "2021-03-10", "cs.CV cs.LG"},
    {"a3", "BERT for scientific text", "Pretrained BERT on papers.", "Iz Beltagy, Kyle Lo", "2019-09-15", "cs.CL"},
    {"a4", "Graph neural networks for molecules", "Message passing on molecular graphs.", "J.K. Bhattacharjee and M. Curie", "2024-01-20", "cs.LG q-bio.BM"},
    {"a5", "A survey of BERT variants", "Distilled and robust BERT models.", "Kyle Lo", "2023-07-07", "cs.CL cs.AI"},
    {"a6", "No date here", "Undated Lindblad paper.", "Anon Ymous", "0000-00-00", "math.NT"},
};
#define N_TEXT_DOCS (sizeof k_text_docs / sizeof k_text_docs[0])

static sx_shard *text_shard(float *x) {
    sx_shard *s = new_shard(SX_STORAGE_FP32);
    tv_rng r = {99};
    sx_err err = {0};
    for (size_t i = 0; i < N_TEXT_DOCS; i++) {
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = tv_gauss(&r);
        tv_normalize(x + i * DIM, DIM);
        CHECK_MSG(sx_shard_upsert(s, &k_text_docs[i], x + i * DIM, &err) == 0, "%s", err.msg);
    }
    return s;
}

void test_shard_keyword_search(void) {
    float x[N_TEXT_DOCS * DIM];
    sx_shard *s = text_shard(x);
    sx_search_opts kw = {.k = 10, .mode = SX_MODE_KEYWORD};
    kw.text = "resnet50";
    CHECK_STR(ids_of(s, NULL, kw), "a2");
    kw.text = "BERT";
    CHECK_STR(ids_of(s, NULL, kw), "a3 a5"); /* equal counts, a3 the shorter abstract */
    kw.text = "lindblad";
    CHECK_STR(ids_of(s, NULL, kw), "a1 a6");
    kw.text = "the of";
    CHECK_STR(ids_of(s, NULL, kw), "");
    /* an upsert replaces the text, a delete removes it */
    sx_doc d = k_text_docs[1];
    d.title = "MobileNet pruning";
    d.abstract = "";
    sx_err err = {0};
    CHECK_EQ(sx_shard_upsert(s, &d, x + DIM, &err), 0);
    kw.text = "resnet";
    CHECK_STR(ids_of(s, NULL, kw), "");
    kw.text = "mobilenet";
    CHECK_STR(ids_of(s, NULL, kw), "a2");
    CHECK_EQ(sx_shard_delete(s, "a2", &err), 0);
    CHECK_STR(ids_of(s, NULL, kw), "");
    /* filters: categories with a prefix pattern, dates */
    const char *cs[] = {"cs.*"};
    kw.text = "bert lindblad";
    kw.categories = cs, kw.n_categories = 1;
    CHECK_STR(ids_of(s, NULL, kw), "a3 a5");
    kw.categories = NULL, kw.n_categories = 0;
    kw.date_from = "2019-06-01";
    CHECK_STR(ids_of(s, NULL, kw), "a3 a5"); /* a1 too old, a6 undated */
    kw.date_to = "2020-12-31";
    CHECK_STR(ids_of(s, NULL, kw), "a3");
    kw.date_from = "2019-05-01", kw.date_to = "2019-05-01";
    CHECK_STR(ids_of(s, NULL, kw), "a1");
    kw.date_to = "2019-02-30";
    sx_hit h[4];
    int n;
    CHECK_EQ(sx_shard_search(s, NULL, &kw, h, &n, NULL, &err), SX_EINVAL);
    /* a vector search needs a vector, a keyword search its text */
    sx_search_opts v = {.k = 3};
    CHECK_EQ(sx_shard_search(s, NULL, &v, h, &n, NULL, &err), SX_EINVAL);
    sx_search_opts nt = {.k = 3, .mode = SX_MODE_KEYWORD};
    CHECK_EQ(sx_shard_search(s, NULL, &nt, h, &n, NULL, &err), SX_EINVAL);
    sx_shard_free(s);
}

void test_shard_author_and_date_filters(void) {
    float x[N_TEXT_DOCS * DIM];
    sx_shard *s = text_shard(x);
    /* authors mode: any of the names, newest first */
    const char *bh[] = {"Bhattacharjee, J. K."};
    sx_search_opts a = {.k = 10, .mode = SX_MODE_AUTHORS, .authors = bh, .n_authors = 1};
    CHECK_STR(ids_of(s, NULL, a), "a4 a1");
    const char *two[] = {"K. Lo", "Jane Q. Bhattacharjee", "Xiangyu Zhang"};
    a.authors = two, a.n_authors = 3;
    /* a2 has "Xiangyu Zhang" as written: first; then the compatible "Kyle
     * Lo" for "K. Lo", newest first; Jane Q. is not J. K. */
    CHECK_STR(ids_of(s, NULL, a), "a2 a5 a3");
    a.k = 2;
    CHECK_STR(ids_of(s, NULL, a), "a2 a5");
    a.k = 10;
    a.date_to = "2022-01-01";
    CHECK_STR(ids_of(s, NULL, a), "a2 a3");
    sx_hit h[4];
    int n;
    sx_err err = {0};
    sx_search_opts none = {.k = 3, .mode = SX_MODE_AUTHORS};
    CHECK_EQ(sx_shard_search(s, NULL, &none, h, &n, NULL, &err), SX_EINVAL);
    /* the same filters on a vector search: every hit passes them */
    sx_search_opts v = {.k = 10, .authors = bh, .n_authors = 1};
    CHECK_STR(ids_of(s, x, v), "a1 a4"); /* x is a1's vector */
    v.date_from = "2020-01-01";
    CHECK_STR(ids_of(s, x, v), "a4");
    v.n_authors = 0, v.authors = NULL;
    const char *math[] = {"math.*", "quant-ph"};
    v.date_from = NULL;
    v.categories = math, v.n_categories = 2;
    CHECK_STR(ids_of(s, x, v), "a1 a6");
    const char *astro[] = {"astro-ph.*"}; /* matches nothing here */
    v.categories = astro, v.n_categories = 1;
    CHECK_STR(ids_of(s, x, v), "");
    /* dates */
    uint32_t d1, d2, d3;
    CHECK_EQ(sx_date_parse("2024-02-29", &d1), 0);
    CHECK_EQ(sx_date_parse("2024-03-01", &d2), 0);
    CHECK_EQ(d2, d1 + 1);
    CHECK_EQ(sx_date_parse("0000-01-01", &d3), 0);
    CHECK(d3 > 0);
    CHECK_EQ(sx_date_parse("1999-12-31", &d1), 0);
    CHECK_EQ(sx_date_parse("2000-01-01", &d2), 0);
    CHECK_EQ(d2, d1 + 1);
    CHECK_EQ(sx_date_parse("2023-02-29", &d1), SX_EINVAL);
    CHECK_EQ(d1, 0);
    CHECK_EQ(sx_date_parse("1900-02-29", &d1), SX_EINVAL);
    CHECK_EQ(sx_date_parse("2000-02-29", &d1), 0);
    CHECK_EQ(sx_date_parse("0000-00-00", &d1), SX_EINVAL);
    CHECK_EQ(sx_date_parse("2024-1-01", &d1), SX_EINVAL);
    CHECK_EQ(sx_date_parse("2024-01-01x", &d1), SX_EINVAL);
    CHECK_EQ(sx_date_parse("", &d1), SX_EINVAL);
    sx_shard_free(s);
}

/* The keyword index and the dates persist in a snapshot (stream, mapped)
 * and answer the same after a load; a version-1 snapshot (no text
 * sections) gets them rebuilt from its records. */
void test_shard_text_persists(void) {
    float x[N_TEXT_DOCS * DIM];
    sx_shard *s = text_shard(x);
    sx_err err = {0};
    CHECK_EQ(sx_shard_delete(s, "a3", &err), 0);
    membuf m = {0};
    CHECK_MSG(sx_shard_save(s, mem_write, &m, &err) == 0, "%s", err.msg);
    sx_shard *b = NULL;
    CHECK_MSG(sx_shard_load(mem_read, &m, &b, &err) == 0, "%s", err.msg);
    char path[512];
    snprintf(path, sizeof path, "%s/text.sx", test_tmpdir());
    CHECK_MSG(sx_snapfile_save(s, path, &err) == 0, "%s", err.msg);
    sx_shard *c = NULL;
    CHECK_MSG(sx_snapfile_map(path, SX_LOAD_LAZY, &c, &err) == 0, "%s", err.msg);
    const char *bh[] = {"J. K. Bhattacharjee"};
    sx_shard *all[] = {s, b, c};
    for (int i = 0; i < 3; i++) {
        sx_search_opts kw = {.k = 10, .mode = SX_MODE_KEYWORD, .text = "BERT lindblad"};
        CHECK_STR(ids_of(all[i], NULL, kw), "a5 a1 a6");
        kw.date_from = "2020-01-01";
        CHECK_STR(ids_of(all[i], NULL, kw), "a5");
        sx_search_opts a = {.k = 10, .mode = SX_MODE_AUTHORS, .authors = bh, .n_authors = 1};
        CHECK_STR(ids_of(all[i], NULL, a), "a4 a1");
        struct sx_shard_stats st;
        sx_shard_stats(all[i], &st);
        CHECK(st.bytes_keyword > 0);
    }
    /* changes after a load keep the text in step */
    CHECK_EQ(sx_shard_delete(c, "a5", &err), 0);
    sx_search_opts kw = {.k = 10, .mode = SX_MODE_KEYWORD, .text = "bert"};
    CHECK_STR(ids_of(c, NULL, kw), "");
    CHECK_EQ(sx_shard_upsert(c, &k_text_docs[2], x + 2 * DIM, &err), 0);
    CHECK_STR(ids_of(c, NULL, kw), "a3");
    sx_shard_free(c);
    sx_shard_free(b);
    sx_shard_free(s);
    free(m.p);
    /* version 1: the committed fixture's papers are titled "Seed paper i" */
    sx_shard *f = NULL;
    CHECK_MSG(sx_snapfile_map("tests/fixtures/shard/small-v1.sx", 0, &f, &err) == 0, "%s", err.msg);
    sx_search_opts q = {.k = 1, .mode = SX_MODE_KEYWORD, .text = "seed 7"};
    CHECK_STR(ids_of(f, NULL, q), "2101.00007");
    sx_shard_free(f);
}

/* A search's arguments as the module receives them (sx_wire_search_parse):
 * what each refusal says, and what an accepted list holds. */
static int wire_parse(const char *const *words, int n, const void *vec, size_t vlen, sx_wire_search *w,
                      sx_err *err) {
    sx_wire_arg a[32];
    a[0] = (sx_wire_arg){vec, vlen};
    for (int i = 1; i < n; i++) a[i] = (sx_wire_arg){words[i], strlen(words[i])};
    *err = (sx_err){0};
    return sx_wire_search_parse(a, n, 2, 4, w, err);
}

void test_shard_wire_search_args(void) {
    float v[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    unsigned char vb[16];
    for (int i = 0; i < 4; i++) sx_le_float_put(vb + 4 * i, v[i]);
    sx_wire_search w;
    sx_err err;
    const char *ok[] = {"", "10", "0", "FILTER", "2", "cs.*", "hep-th", "withdocs", "DATES", "2020-01-01", ""};
    CHECK_EQ(wire_parse(ok, 11, vb, 16, &w, &err), 0);
    CHECK(w.o.k == 10 && w.o.ef == 0 && w.o.mode == SX_MODE_VECTOR && w.withdocs == 1 && w.dim == 4);
    CHECK(w.q && w.q[3] == 0.5f && w.o.n_categories == 2);
    CHECK_STR(w.o.categories[0], "cs.*");
    CHECK_STR(w.o.date_from, "2020-01-01");
    CHECK_STR(w.o.date_to, "");
    sx_wire_search_free(&w);
    sx_wire_search_free(&w);
    const char *kw[] = {"", "5", "7", "MODE", "keyword", "TEXT", "dark matter", "AUTHORS", "1", "Noether"};
    CHECK_EQ(wire_parse(kw, 10, "", 0, &w, &err), 0);
    CHECK(w.q == NULL && w.o.mode == SX_MODE_KEYWORD && w.o.ef == 7 && w.o.n_authors == 1);
    CHECK_STR(w.o.text, "dark matter");
    sx_wire_search_free(&w);
    struct {
        const char *words[8];
        int n;
        int vlen;
        const char *msg;
    } bad[] = {
        {{"", "0", "0"}, 3, 16, "k must be an integer in 1..10000"},
        {{"", "10001", "0"}, 3, 16, "k must be"},
        {{"", "010", "0"}, 3, 16, "k must be"},
        {{"", "-0", "0"}, 3, 16, "k must be"},
        {{"", "5", "-1"}, 3, 16, "ef must be"},
        {{"", "5", "0", "BOGUS"}, 4, 16, "syntax error at argument 5"},
        {{"", "5", "0", "FILTER", "3", "a"}, 6, 16, "FILTER needs a count"},
        {{"", "5", "0", "WITHDOCS", "WITHDOCS"}, 5, 16, "syntax error at argument 6"},
        {{"", "5", "0", "MODE", "KEYWORD"}, 5, 0, "MODE KEYWORD needs TEXT"},
        {{"", "5", "0", "MODE", "AUTHORS"}, 5, 0, "MODE AUTHORS needs AUTHORS"},
        {{"", "5", "0", "MODE", "FUZZY"}, 5, 0, "MODE must be"},
        {{"", "5", "0", "MODE", "KEYWORD", "TEXT", "x"}, 7, 16, "the vector must be empty"},
        {{"", "5", "0"}, 3, 12, "vector is 12 bytes, the shard's dim 4 needs 16"},
        {{"", "5", "0"}, 3, 0, "not a multiple of 4"},
        {{"", "5", "0", "DATES", "2020-13-01", ""}, 6, 16, "DATES must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(wire_parse(bad[i].words, bad[i].n, vb, (size_t)bad[i].vlen, &w, &err) == SX_EINVAL, "case %zu", i);
        CHECK_MSG(strstr(err.msg, bad[i].msg) != NULL, "case %zu: %s", i, err.msg);
        CHECK(w.q == NULL && w.strs == NULL);
    }
    /* a NaN component, and text holding a NUL byte */
    unsigned char nan[16];
    memcpy(nan, vb, 16);
    sx_le_float_put(nan + 8, NAN);
    const char *k5[] = {"", "5", "0"};
    CHECK_EQ(wire_parse(k5, 3, nan, 16, &w, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "non-finite value at 2") != NULL);
    sx_wire_arg a[5] = {{"", 0}, {"5", 1}, {"0", 1}, {"FILTER", 6}, {"1", 1}};
    sx_wire_arg b[6];
    memcpy(b, a, sizeof a);
    b[0] = (sx_wire_arg){(const char *)vb, 16};
    b[5] = (sx_wire_arg){"cs\0LG", 5};
    CHECK_EQ(sx_wire_search_parse(b, 6, 2, 4, &w, &err), SX_EINVAL);
    CHECK(strstr(err.msg, "NUL byte") != NULL && w.strs == NULL);
}
