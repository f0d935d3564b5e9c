/*
 * testvec.h - deterministic synthetic vectors for the index and shard tests.
 *
 * Random unit vectors in 384 dimensions are nearly orthogonal to each other,
 * which no real embedding set is; sentence embeddings live near a
 * low-dimensional, clustered manifold. tv_clustered() imitates that: points
 * of a mixture of clusters in a 24-dimensional latent space, mapped to dim
 * dimensions by a fixed random matrix, plus a little ambient noise, then
 * L2-normalised. tv_random() gives plain random unit vectors.
 */
#ifndef SX_TESTVEC_H
#define SX_TESTVEC_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct tv_rng {
    uint64_t s;
} tv_rng;

static inline uint64_t tv_next(tv_rng *r) {
    uint64_t x = (r->s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Uniform in [0, 1). */
static inline double tv_unif(tv_rng *r) { return (double)(tv_next(r) >> 11) * 0x1p-53; }

/* Standard normal (Box-Muller). */
static inline float tv_gauss(tv_rng *r) {
    double u = tv_unif(r), v = tv_unif(r);
    if (u < 1e-300) u = 1e-300;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static inline void tv_normalize(float *x, int dim) {
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)x[i] * x[i];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0;
    for (int i = 0; i < dim; i++) x[i] *= inv;
}

/* n random unit vectors (malloc'd, n x dim). */
static inline float *tv_random(size_t n, int dim, uint64_t seed) {
    tv_rng r = {seed};
    float *x = malloc(n * (size_t)dim * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < dim; j++) x[i * dim + j] = tv_gauss(&r);
        tv_normalize(x + i * dim, dim);
    }
    return x;
}

#define TV_LATENT 48
#define TV_CLUSTERS 64

/* n clustered unit vectors (malloc'd, n x dim); the same seed gives the same
 * manifold, so a different `stream` value draws more points (e.g. queries)
 * from the same distribution. */
static inline float *tv_clustered(size_t n, int dim, uint64_t seed, uint64_t stream) {
    tv_rng r = {seed};
    float *A = malloc((size_t)dim * TV_LATENT * sizeof(float));
    float *C = malloc((size_t)TV_CLUSTERS * TV_LATENT * sizeof(float));
    for (int i = 0; i < dim * TV_LATENT; i++) A[i] = tv_gauss(&r);
    for (int i = 0; i < TV_CLUSTERS * TV_LATENT; i++) C[i] = 2.0f * tv_gauss(&r);
    tv_rng p = {seed * 7919 + stream * 104729 + 1};
    float *x = malloc(n * (size_t)dim * sizeof(float));
    float z[TV_LATENT];
    for (size_t i = 0; i < n; i++) {
        int c = (int)(tv_next(&p) % TV_CLUSTERS);
        for (int j = 0; j < TV_LATENT; j++) z[j] = C[c * TV_LATENT + j] + tv_gauss(&p);
        float *v = x + i * dim;
        for (int d = 0; d < dim; d++) {
            float s = 0;
            for (int j = 0; j < TV_LATENT; j++) s += A[d * TV_LATENT + j] * z[j];
            v[d] = s + 8.0f * tv_gauss(&p);
        }
        tv_normalize(v, dim);
    }
    free(A);
    free(C);
    return x;
}

/* Real all-MiniLM-L6-v2 embeddings made by scripts/test-data (`make
 * testdata`, run by `make test`): tv_real_corpus(n) gives the titles of the
 * first n (<= 50,000) arXiv records, tv_real_queries(n) n (<= 200) held-out
 * queries (hand-written ones first, then later titles). malloc'd, n x 384. */
#define TV_REAL_DIM 384
#include "../src/corpus/corpus.h"

static inline float *tv_real_load(const char *path, size_t n) {
    sx_npy *f = NULL;
    sx_err err = {0};
    if (sx_npy_open(path, &f, &err) < 0)
        test_fail(__FILE__, __LINE__, "%s (make it with `make testdata`)", err.msg);
    if (sx_npy_rows(f) < n || sx_npy_cols(f) != TV_REAL_DIM)
        test_fail(__FILE__, __LINE__, "%s has %llu x %d vectors, need %zu x %d", path,
                  (unsigned long long)sx_npy_rows(f), sx_npy_cols(f), n, TV_REAL_DIM);
    float *x = malloc(n * TV_REAL_DIM * sizeof(float));
    for (size_t i = 0; i < n; i++) sx_npy_row(f, i, x + i * TV_REAL_DIM);
    sx_npy_close(f);
    return x;
}

static inline float *tv_real_corpus(size_t n) { return tv_real_load("build/testdata/titles-50000.npy", n); }

static inline float *tv_real_queries(size_t n) { return tv_real_load("build/testdata/queries-200.npy", n); }

/* 1 under AddressSanitizer (tests shrink their sizes there). */
#if defined(__SANITIZE_ADDRESS__)
#define TV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TV_ASAN 1
#endif
#endif
#ifndef TV_ASAN
#define TV_ASAN 0
#endif
/* 1 under ThreadSanitizer (about 10x slower still). */
#if defined(__SANITIZE_THREAD__)
#define TV_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TV_TSAN 1
#endif
#endif
#ifndef TV_TSAN
#define TV_TSAN 0
#endif

#endif
