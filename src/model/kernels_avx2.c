/*
 * kernels_avx2.c - AVX2 + FMA variants of the encoder kernels (see kernels.c
 * for the scalar reference and the packed weight layout).
 *
 * GEMM micro-kernel: up to 6 rows x 16 columns (one packed panel, two ymm
 * registers per row) stay in 12 registers for the whole k loop, leaving room
 * for the two panel loads and the broadcast among AVX2's 16 registers. exp()
 * and erf() follow the same formulas as the AVX-512 file; 2^n is built by
 * adding n to the exponent bits. Tails (n not a multiple of 8) go through a
 * small stack buffer so no load or store leaves the caller's arrays.
 */
#include "model_int.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define MR 6

static inline __attribute__((always_inline)) void gemm_tile(const sx_linear *lin, int p,
                                                            const int M, const float *A, int lda,
                                                            float *C, int ldc) {
    const int k = lin->k;
    const float *w = lin->w + (size_t)p * (size_t)k * SX_NR;
    __m256 lo[MR], hi[MR];
    __m256 blo = _mm256_loadu_ps(lin->bias + p * SX_NR);
    __m256 bhi = _mm256_loadu_ps(lin->bias + p * SX_NR + 8);
    #pragma GCC unroll 16
    for (int i = 0; i < M; i++) lo[i] = blo, hi[i] = bhi;
    for (int kk = 0; kk < k; kk++) {
        __m256 x0 = _mm256_load_ps(w + (size_t)kk * SX_NR);
        __m256 x1 = _mm256_load_ps(w + (size_t)kk * SX_NR + 8);
        #pragma GCC unroll 16
        for (int i = 0; i < M; i++) {
            __m256 a = _mm256_broadcast_ss(A + (size_t)i * (size_t)lda + kk);
            lo[i] = _mm256_fmadd_ps(a, x0, lo[i]);
            hi[i] = _mm256_fmadd_ps(a, x1, hi[i]);
        }
    }
    int left = lin->n - p * SX_NR;
    #pragma GCC unroll 16
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * (size_t)ldc + p * SX_NR;
        if (left >= SX_NR) {
            _mm256_storeu_ps(c, lo[i]);
            _mm256_storeu_ps(c + 8, hi[i]);
        } else {
            float tmp[SX_NR];
            _mm256_storeu_ps(tmp, lo[i]);
            _mm256_storeu_ps(tmp + 8, hi[i]);
            memcpy(c, tmp, sizeof(float) * (size_t)left);
        }
    }
}

#define TILE_CASE(M)                               \
    case M:                                        \
        gemm_tile(lin, p, M, A, lda, C, ldc);      \
        break;

static void gemm_rows_avx2(const sx_linear *lin, int p0, int p1, int m, const float *A,
                           int lda, float *C, int ldc) {
    while (m > 0) {
        int mm = m < MR ? m : MR;
        for (int p = p0; p < p1; p++) {
            switch (mm) { TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) }
        }
        m -= mm;
        A += (size_t)mm * (size_t)lda;
        C += (size_t)mm * (size_t)ldc;
    }
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Loads n < 8 floats, zero-filling the rest. */
static inline __m256 load_tail(const float *p, int n) {
    float tmp[8] = {0};
    memcpy(tmp, p, sizeof(float) * (size_t)n);
    return _mm256_loadu_ps(tmp);
}

static inline void store_tail(float *p, __m256 v, int n) {
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    memcpy(p, tmp, sizeof(float) * (size_t)n);
}

static void layernorm_avx2(float *x, const float *r, const float *gamma, const float *beta,
                           int n, float eps) {
    int n8 = n & ~7;
    if (r)
        for (int i = 0; i < n; i++) x[i] += r[i];
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < n8; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
    float sum = hsum(s);
    for (int i = n8; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    __m256 vm = _mm256_set1_ps(mean);
    __m256 q = _mm256_setzero_ps();
    for (int i = 0; i < n8; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        q = _mm256_fmadd_ps(d, d, q);
    }
    float var = hsum(q);
    for (int i = n8; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)n;
    float inv = 1.0f / sqrtf(var + eps);
    __m256 vi = _mm256_set1_ps(inv);
    for (int i = 0; i < n8; i += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vi);
        _mm256_storeu_ps(x + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + i),
                                                _mm256_loadu_ps(beta + i)));
    }
    for (int i = n8; i < n; i++) x[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

static inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)),
                      _mm256_set1_ps(-87.3365447504f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n for n in [-126, 127]: (n + 127) << 23; n = -127 would give 0,
     * harmless since p * 2^-127 underflows anyway. */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                                  23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 gelu8(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
    __m256 az = _mm256_andnot_ps(sign, z);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f),
                             _mm256_fmadd_ps(az, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
    __m256 poly = _mm256_set1_ps(1.061405429f);
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
    poly = _mm256_mul_ps(poly, t);
    __m256 e = exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), az), az));
    __m256 erf_abs = _mm256_fnmadd_ps(poly, e, _mm256_set1_ps(1.0f));
    __m256 erf = _mm256_or_ps(erf_abs, _mm256_and_ps(z, sign));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                         _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

static void gelu_avx2(float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
    if (i < n) store_tail(x + i, gelu8(load_tail(x + i, n - i)), n - i);
}

static float dot_avx2(const float *a, const float *b, int n) {
    __m256 s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s);
    float r = hsum(s);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void axpy_avx2(float *y, float a, const float *x, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void softmax_avx2(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    __m256 vmax = _mm256_set1_ps(mx);
    __m256 s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    float sum = hsum(s);
    if (i < n) {
        int t = n - i;
        __m256 e = exp256(_mm256_sub_ps(load_tail(x + i, t), vmax));
        float tmp[8];
        _mm256_storeu_ps(tmp, e);
        for (int j = 0; j < t; j++) x[i + j] = tmp[j], sum += tmp[j];
    }
    float inv = 1.0f / sum;
    __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    for (; i < n; i++) x[i] *= inv;
}

const sx_model_kernels sx_model_kernels_avx2 = {
    .name = "avx2",
    .gemm_rows = gemm_rows_avx2,
    .gemm_mr = MR,
    .layernorm = layernorm_avx2,
    .gelu = gelu_avx2,
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .softmax = softmax_avx2,
};

#else
const sx_model_kernels sx_model_kernels_avx2 = {0};
#endif
