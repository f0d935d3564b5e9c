/*
 * kernels.c - distance kernels: the scalar reference, run-time dispatch, and
 * scalar quantisation (SQ8).
 *
 * Every distance the index computes is one of three sums over a vector:
 * dot(a, b), |a - b|^2, and dot(a, codes) with codes bytes. The last one is
 * the whole trick of SQ8: a stored vector is x[i] ~ vmin[i] + vscale[i]*c[i],
 * so for a query v
 *
 *     dot(v, x) = sum v[i]*vmin[i] + sum (v[i]*vscale[i]) * c[i]
 *               = bias             + dot(qs, c)
 *
 * where bias and qs are computed once per query (sx_sq8_prepare). The inner
 * loop then reads one byte per dimension instead of four floats' worth of
 * memory, which is what an HNSW walk is bound by, and never decodes. The
 * query stays fp32 (asymmetric distance), so the only error is the data's
 * quantisation step, about range/255 per dimension.
 *
 * Per-dimension ranges (learnt from data) beat one global range for MiniLM
 * vectors, whose dimensions have spreads differing by several times.
 *
 * The walk goes one step further: qs itself is quantised to signed bytes with
 * one scale per query (the sq8_query kernel), so the inner loop is a byte
 * dot product, one VNNI instruction (vpdpbusd) per 64 dimensions on AVX-512.
 * The query's rounding error adds to the data's; most of it is the same for
 * every candidate (it multiplies the mean code) and cancels in the ranking.
 * The final top candidates are re-scored in fp32 (rerank).
 *
 * Dispatch: sx_kernels_best() picks a table once (pthread_once) from CPU
 * features: AVX-512 (F+BW+VL), else AVX2+FMA, else NEON on arm64, else
 * scalar. SEMDEX_KERNELS forces one for testing and benchmarking. Tests
 * compare every available table with the scalar one on many lengths.
 */
#include "index.h"
#include "kernels_int.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar reference ---- */

/* Four partial sums, so the compiler may vectorise and rounding behaves like
 * the SIMD versions' split accumulators. */
static float dot_f32_scalar(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static float l2sq_f32_scalar(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
        float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

static float dot_f32_u8_scalar(const float *a, const uint8_t *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * (float)b[i];
        s1 += a[i + 1] * (float)b[i + 1];
        s2 += a[i + 2] * (float)b[i + 2];
        s3 += a[i + 3] * (float)b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * (float)b[i];
    return (s0 + s1) + (s2 + s3);
}

static int32_t dot_s8_u8_scalar(const int8_t *a, const uint8_t *b, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (int32_t)a[i] * (int32_t)b[i];
    return s;
}

static void sq8_decode_scalar(const float *vmin, const float *vscale, const uint8_t *c, size_t n,
                              float *x) {
    sq8_decode_tail(vmin, vscale, c, 0, n, x);
}

static void sq8_query_scalar(const float *v, const float *vmin, const float *vscale, size_t n,
                             int8_t *q8, float *alpha, float *bias) {
    float m = 0, b = 0;
    sq8_stats_tail(v, vmin, vscale, 0, n, &m, &b);
    float a = sq8_alpha(m);
    sq8_round_tail(v, vscale, 1.0f / a, 0, n, q8);
    *alpha = a;
    *bias = b;
}

static const sx_kernels g_scalar = {"scalar",          dot_f32_scalar,   l2sq_f32_scalar,
                                    dot_f32_u8_scalar, dot_s8_u8_scalar, sq8_decode_scalar,
                                    sq8_query_scalar};

const sx_kernels *sx_kernels_scalar(void) { return &g_scalar; }

/* ---- dispatch ---- */

/* Whether the CPU can run the table named name. */
static int cpu_has(const char *name) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    if (strcmp(name, "avx512vnni") == 0)
        return cpu_has("avx512") && __builtin_cpu_supports("avx512vnni");
    return 0;
#elif defined(__aarch64__)
    return strcmp(name, "neon") == 0;
#else
    (void)name;
    return 0;
#endif
}

int sx_kernels_available(const sx_kernels **out, int max) {
    const sx_kernels *all[] = {&g_scalar, sx_kernels_avx2_table(), sx_kernels_avx512_table(),
                               sx_kernels_avx512vnni_table(), sx_kernels_neon_table()};
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && n < max; i++)
        if (all[i] && (i == 0 || cpu_has(all[i]->name))) out[n++] = all[i];
    return n;
}

static const sx_kernels *g_best = &g_scalar;
static pthread_once_t g_best_once = PTHREAD_ONCE_INIT;

static void pick_best(void) {
    const sx_kernels *avail[8];
    int n = sx_kernels_available(avail, 8);
    const char *force = getenv("SEMDEX_KERNELS");
    g_best = avail[n - 1]; /* listed in increasing preference */
    if (force && *force) {
        for (int i = 0; i < n; i++)
            if (strcmp(avail[i]->name, force) == 0) g_best = avail[i];
    }
}

const sx_kernels *sx_kernels_best(void) {
    pthread_once(&g_best_once, pick_best);
    return g_best;
}

/* ---- SQ8 ---- */

static int sq8_alloc(sx_sq8 *q, int dim, sx_err *err) {
    if (dim < 1 || dim > 65536) return sx_err_set(err, SX_EINVAL, "sq8: bad dimension %d", dim);
    q->dim = dim;
    q->vmin = sx_index_malloc((size_t)dim * sizeof(float));
    q->vscale = sx_index_malloc((size_t)dim * sizeof(float));
    if (!q->vmin || !q->vscale) {
        sx_sq8_release(q);
        return sx_err_set(err, SX_ENOMEM, "sq8: out of memory");
    }
    return 0;
}

int sx_sq8_init(sx_sq8 *q, int dim, float lo, float hi, sx_err *err) {
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi))
        return sx_err_set(err, SX_EINVAL, "sq8: bad range [%g, %g]", lo, hi);
    int rc = sq8_alloc(q, dim, err);
    if (rc < 0) return rc;
    for (int i = 0; i < dim; i++) {
        q->vmin[i] = lo;
        q->vscale[i] = (hi - lo) / 255.0f;
    }
    return 0;
}

int sx_sq8_train(sx_sq8 *q, int dim, const float *x, size_t n, sx_err *err) {
    if (n == 0) return sx_err_set(err, SX_EINVAL, "sq8: no training vectors");
    int rc = sq8_alloc(q, dim, err);
    if (rc < 0) return rc;
    for (int i = 0; i < dim; i++) {
        float lo = x[i], hi = x[i];
        for (size_t j = 1; j < n; j++) {
            float v = x[j * (size_t)dim + (size_t)i];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        float w = hi - lo;
        if (!(w > 1e-6f)) w = 1e-6f;
        lo -= 0.01f * w;
        w *= 1.02f;
        q->vmin[i] = lo;
        q->vscale[i] = w / 255.0f;
    }
    return 0;
}

void sx_sq8_release(sx_sq8 *q) {
    sx_index_free_mem(q->vmin);
    sx_index_free_mem(q->vscale);
    q->vmin = q->vscale = NULL;
}

void sx_sq8_encode(const sx_sq8 *q, const float *x, uint8_t *codes) {
    for (int i = 0; i < q->dim; i++) {
        float c = (x[i] - q->vmin[i]) / q->vscale[i];
        c = c >= 0 ? (c <= 255 ? c : 255) : 0; /* NaN -> 0 */
        codes[i] = (uint8_t)(c + 0.5f);
    }
}

void sx_sq8_decode(const sx_sq8 *q, const uint8_t *codes, float *x) {
    sq8_decode_scalar(q->vmin, q->vscale, codes, (size_t)q->dim, x);
}

void sx_sq8_prepare(const sx_sq8 *q, const float *v, float *qs, float *bias) {
    float b = 0;
    for (int i = 0; i < q->dim; i++) {
        qs[i] = v[i] * q->vscale[i];
        b += v[i] * q->vmin[i];
    }
    *bias = b;
}
