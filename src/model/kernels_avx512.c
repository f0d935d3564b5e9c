/*
 * kernels_avx512.c - AVX-512 variants of the encoder kernels (see kernels.c for
 * the scalar reference and the packed weight layout).
 *
 * GEMM micro-kernel: up to 12 rows x 32 columns (two packed panels) of C live
 * in 24 zmm registers for the whole k loop; each step loads two panel rows
 * and issues 24 FMAs with the activation broadcast from memory. The row count
 * is a compile-time constant in each instance (a switch picks one), so the
 * accumulators stay in registers. exp() is a degree-6 polynomial after the
 * usual 2^n range reduction (relative error < 2e-7) and erf() the
 * Abramowitz-Stegun 7.1.26 form built on it (absolute error < 2e-7), which is
 * the float tolerance the tests allow against the libm-based reference.
 */
#include "model_int.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>
#include <math.h>

#define MR 12

static inline __attribute__((always_inline)) void gemm_tile(const sx_linear *lin, int p, int two,
                                                            const int M, const float *A, int lda,
                                                            float *C, int ldc) {
    const int k = lin->k;
    const float *w0 = lin->w + (size_t)p * (size_t)k * SX_NR;
    const float *w1 = w0 + (size_t)k * SX_NR;
    __m512 acc0[MR], acc1[MR];
    __m512 b0 = _mm512_loadu_ps(lin->bias + p * SX_NR);
    __m512 b1 = two ? _mm512_loadu_ps(lin->bias + (p + 1) * SX_NR) : _mm512_setzero_ps();
    #pragma GCC unroll 16
    for (int i = 0; i < M; i++) acc0[i] = b0, acc1[i] = b1;
    if (two) {
        for (int kk = 0; kk < k; kk++) {
            __m512 x0 = _mm512_load_ps(w0 + (size_t)kk * SX_NR);
            __m512 x1 = _mm512_load_ps(w1 + (size_t)kk * SX_NR);
            #pragma GCC unroll 16
            for (int i = 0; i < M; i++) {
                __m512 a = _mm512_set1_ps(A[(size_t)i * (size_t)lda + kk]);
                acc0[i] = _mm512_fmadd_ps(a, x0, acc0[i]);
                acc1[i] = _mm512_fmadd_ps(a, x1, acc1[i]);
            }
        }
    } else {
        for (int kk = 0; kk < k; kk++) {
            __m512 x0 = _mm512_load_ps(w0 + (size_t)kk * SX_NR);
            #pragma GCC unroll 16
            for (int i = 0; i < M; i++) {
                __m512 a = _mm512_set1_ps(A[(size_t)i * (size_t)lda + kk]);
                acc0[i] = _mm512_fmadd_ps(a, x0, acc0[i]);
            }
        }
    }
    int left0 = lin->n - p * SX_NR;
    __mmask16 m0 = left0 >= 16 ? 0xffff : (__mmask16)((1u << left0) - 1);
    int left1 = left0 - SX_NR;
    __mmask16 m1 = left1 >= 16 ? 0xffff : left1 <= 0 ? 0 : (__mmask16)((1u << left1) - 1);
    #pragma GCC unroll 16
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * (size_t)ldc + p * SX_NR;
        _mm512_mask_storeu_ps(c, m0, acc0[i]);
        if (two) _mm512_mask_storeu_ps(c + SX_NR, m1, acc1[i]);
    }
}

#define TILE_CASE(M)                                    \
    case M:                                             \
        gemm_tile(lin, p, two, M, A, lda, C, ldc);      \
        break;

static void gemm_rows_avx512(const sx_linear *lin, int p0, int p1, int m, const float *A,
                             int lda, float *C, int ldc) {
    while (m > 0) {
        int mm = m < MR ? m : MR;
        for (int p = p0; p < p1; p += 2) {
            int two = p + 1 < p1;
            switch (mm) {
                TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
                TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
            }
        }
        m -= mm;
        A += (size_t)mm * (size_t)lda;
        C += (size_t)mm * (size_t)ldc;
    }
}

static inline __mmask16 tail_mask(int n) { return n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1); }

static inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

static void layernorm_avx512(float *x, const float *r, const float *gamma, const float *beta,
                             int n, float eps) {
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (r) {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + i));
            _mm512_mask_storeu_ps(x + i, m, v);
        }
        s = _mm512_add_ps(s, v);
    }
    float mean = hsum(s) / (float)n;
    __m512 vm = _mm512_set1_ps(mean);
    __m512 q = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vm);
        q = _mm512_fmadd_ps(d, d, q);
    }
    float var = hsum(q) / (float)n;
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(var + eps));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), inv);
        __m512 y = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, gamma + i),
                                   _mm512_maskz_loadu_ps(m, beta + i));
        _mm512_mask_storeu_ps(x + i, m, y);
    }
}

/* e^x for x in [-87, 88] (clamped outside). */
static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)),
                      _mm512_set1_ps(-87.3365447504f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static void gelu_avx512(float *x, int n) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
        __m512 az = _mm512_andnot_ps(sign, z);
        __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f),
                                 _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f),
                                                 _mm512_set1_ps(1.0f)));
        __m512 poly = _mm512_set1_ps(1.061405429f);
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
        poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
        poly = _mm512_mul_ps(poly, t);
        __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az));
        __m512 erf_abs = _mm512_fnmadd_ps(poly, e, _mm512_set1_ps(1.0f));
        __m512 erf = _mm512_or_ps(erf_abs, _mm512_and_ps(z, sign));
        __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                                 _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
        _mm512_mask_storeu_ps(x + i, m, y);
    }
}

static float dot_avx512(const float *a, const float *b, int n) {
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s);
    }
    return hsum(s);
}

static void axpy_avx512(float *y, float a, const float *x, int n) {
    __m512 va = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
                                   _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void softmax_avx512(float *x, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
    }
    __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(x + i, m, e);
        s = _mm512_add_ps(s, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / hsum(s));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

const sx_model_kernels sx_model_kernels_avx512 = {
    .name = "avx512",
    .gemm_rows = gemm_rows_avx512,
    .gemm_mr = MR,
    .layernorm = layernorm_avx512,
    .gelu = gelu_avx512,
    .dot = dot_avx512,
    .axpy = axpy_avx512,
    .softmax = softmax_avx512,
};

#else
const sx_model_kernels sx_model_kernels_avx512 = {0};
#endif
