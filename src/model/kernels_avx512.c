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
#include <string.h>

#define MR 12

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

static inline __m512 gelu16(__m512 v) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
    __m512 az = _mm512_andnot_ps(sign, z);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f),
                             _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 poly = _mm512_set1_ps(1.061405429f);
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
    poly = _mm512_mul_ps(poly, t);
    __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az));
    __m512 erf_abs = _mm512_fnmadd_ps(poly, e, _mm512_set1_ps(1.0f));
    __m512 erf = _mm512_or_ps(erf_abs, _mm512_and_ps(z, sign));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
}

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
    if (lin->gelu) { /* in registers: as a pass over the stored rows it stalled on them */
        #pragma GCC unroll 16
        for (int i = 0; i < M; i++) {
            acc0[i] = gelu16(acc0[i]);
            if (two) acc1[i] = gelu16(acc1[i]);
        }
    }
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

/* The row (x + r) is kept in a local array of whole vectors between the
 * passes: reading it back from x, right behind the masked stores that wrote
 * it, stalled each load until the stores retired (LayerNorm was 4% of an
 * fp32 embedding's time, ~1.5 cycles an element). Rows wider than the
 * array take the same passes through x. */
#define LN_MAX_VEC 64

static void layernorm_avx512(float *x, const float *r, const float *gamma, const float *beta,
                             int n, float eps) {
    __m512 row[LN_MAX_VEC];
    int local = n <= 16 * LN_MAX_VEC;
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + i));
        if (local) row[i / 16] = v;
        else if (r) _mm512_mask_storeu_ps(x + i, m, v);
        s = _mm512_add_ps(s, v);
    }
    float mean = hsum(s) / (float)n;
    __m512 vm = _mm512_set1_ps(mean);
    __m512 q = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = local ? row[i / 16] : _mm512_maskz_loadu_ps(m, x + i);
        __m512 d = _mm512_maskz_sub_ps(m, v, vm);
        q = _mm512_fmadd_ps(d, d, q);
    }
    float var = hsum(q) / (float)n;
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(var + eps));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = local ? row[i / 16] : _mm512_maskz_loadu_ps(m, x + i);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(v, vm), inv);
        __m512 y = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, gamma + i),
                                   _mm512_maskz_loadu_ps(m, beta + i));
        _mm512_mask_storeu_ps(x + i, m, y);
    }
}

static void gelu_avx512(float *x, int n) {
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
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

static void softmax_row_avx512(float *x, int n) {
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

/* Int8 micro-kernel (AVX-512 VNNI): 12 rows x 32 outputs in 24 int32
 * accumulators; each group of 4 k is one 64-byte load per panel and one
 * vpdpbusd (unsigned activation bytes times signed weight bytes, four
 * products summed into each int32 lane) per row and panel. Exact. The
 * group-major activations put a group's rows side by side, so the 12
 * broadcasts use one pointer and constant offsets. */
/* acc += dot4(a, x). GCC 12 keeps a copy of each accumulator around the
 * intrinsic (twice the instructions in the inner loop); the asm form makes
 * the accumulation in place. */
static inline __attribute__((always_inline)) __m512i dpbusd(__m512i acc, __m512i a, __m512i x) {
#if defined(__GNUC__) && !defined(__clang__)
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(x));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, a, x);
#endif
}

static inline __attribute__((always_inline)) void gemm_i8_tile(const sx_linear8 *lin, int p,
                                                               int two, const int M,
                                                               const uint8_t *A, int lda,
                                                               int32_t *C, int ldc) {
    const int groups = lin->k4 / 4;
    const int8_t *w0 = lin->w + (size_t)p * (size_t)lin->k4 * SX_NR;
    const int8_t *w1 = w0 + (size_t)lin->k4 * SX_NR;
    const size_t step = 4 * (size_t)lda;
    __m512i acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < M; i++) acc0[i] = acc1[i] = _mm512_setzero_si512();
    if (two) {
        for (int g = 0; g < groups; g++, A += step) {
            __m512i x0 = _mm512_load_si512((const void *)(w0 + (size_t)g * 64));
            __m512i x1 = _mm512_load_si512((const void *)(w1 + (size_t)g * 64));
#pragma GCC unroll 16
            for (int i = 0; i < M; i++) {
                int32_t a4;
                memcpy(&a4, A + 4 * i, 4);
                __m512i a = _mm512_set1_epi32(a4);
                acc0[i] = dpbusd(acc0[i], a, x0);
                acc1[i] = dpbusd(acc1[i], a, x1);
            }
        }
    } else {
        for (int g = 0; g < groups; g++, A += step) {
            __m512i x0 = _mm512_load_si512((const void *)(w0 + (size_t)g * 64));
#pragma GCC unroll 16
            for (int i = 0; i < M; i++) {
                int32_t a4;
                memcpy(&a4, A + 4 * i, 4);
                acc0[i] = dpbusd(acc0[i], _mm512_set1_epi32(a4), x0);
            }
        }
    }
    int left0 = lin->n - p * SX_NR;
    __mmask16 m0 = left0 >= 16 ? 0xffff : (__mmask16)((1u << left0) - 1);
    int left1 = left0 - SX_NR;
    __mmask16 m1 = left1 >= 16 ? 0xffff : left1 <= 0 ? 0 : (__mmask16)((1u << left1) - 1);
#pragma GCC unroll 16
    for (int i = 0; i < M; i++) {
        int32_t *c = C + (size_t)i * (size_t)ldc;
        _mm512_mask_storeu_epi32(c, m0, acc0[i]);
        if (two) _mm512_mask_storeu_epi32(c + SX_NR, m1, acc1[i]);
    }
}

#define TILE8_CASE(M)                                                           \
    case M:                                                                     \
        gemm_i8_tile(lin, p, two, M, A, lda, C + (p - p0) * SX_NR, ldc);        \
        break;

static void gemm_i8_rows_avx512(const sx_linear8 *lin, int p0, int p1, int m, const uint8_t *A,
                                int lda, int32_t *C, int ldc) {
    while (m > 0) {
        int mm = m < MR ? m : MR;
        for (int p = p0; p < p1; p += 2) {
            int two = p + 1 < p1;
            switch (mm) {
                TILE8_CASE(1) TILE8_CASE(2) TILE8_CASE(3) TILE8_CASE(4) TILE8_CASE(5)
                TILE8_CASE(6) TILE8_CASE(7) TILE8_CASE(8) TILE8_CASE(9) TILE8_CASE(10)
                TILE8_CASE(11) TILE8_CASE(12)
            }
        }
        m -= mm;
        A += 4 * (size_t)mm; /* the next rows of every group */
        C += (size_t)mm * (size_t)ldc;
    }
}

/* sx_quantize_row, 16 inputs at a time; vcvtps2dq rounds half to even like
 * the reference, and no step is fused, so the bytes are the same. */
static float quantize_u8_avx512(const float *x, const float *mul, int k, int k4, uint8_t *q,
                                size_t group_stride, int32_t *zero) {
    __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
    for (int i = 0; i < k; i += 16) {
        __mmask16 m = tail_mask(k - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (mul) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, mul + i));
        vlo = _mm512_min_ps(vlo, v); /* masked-off lanes are 0: harmless */
        vhi = _mm512_max_ps(vhi, v);
    }
    float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi);
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    float inv = 1.0f / s;
    __m128 zr = _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(-lo * inv),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    float z = _mm_cvtss_f32(zr);
    __m512 vinv = _mm512_set1_ps(inv);
    __m512i vz = _mm512_set1_epi32((int32_t)z);
    int i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        if (mul) v = _mm512_mul_ps(v, _mm512_loadu_ps(mul + i));
        __m512i qi = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, vinv)), vz);
        qi = _mm512_max_epi32(_mm512_min_epi32(qi, _mm512_set1_epi32(255)), _mm512_setzero_si512());
        __m128i b = _mm512_cvtepi32_epi8(qi);
        uint8_t *dst = q + (size_t)(i / 4) * group_stride;
        uint32_t w[4];
        _mm_storeu_si128((__m128i *)w, b);
        for (int t = 0; t < 4; t++) memcpy(dst + (size_t)t * group_stride, &w[t], 4);
    }
    for (; i < k; i++) {
        float v = mul ? x[i] * mul[i] : x[i];
        __m128 r = _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(v * inv),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        float f = _mm_cvtss_f32(r) + z;
        q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = (uint8_t)(f > 255 ? 255 : f < 0 ? 0 : f);
    }
    for (; i < k4; i++) q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = 0;
    *zero = (int32_t)z;
    return s;
}

static void dequant_avx512(const int32_t *acc, int n, int32_t zero, const int32_t *colsum,
                           float row_scale, const float *scale, const float *bias, float *out,
                           int gelu) {
    __m512i vz = _mm512_set1_epi32(zero);
    __m512 rs = _mm512_set1_ps(row_scale);
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = tail_mask(n - j);
        __m512i a = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, acc + j),
                                     _mm512_mullo_epi32(vz, _mm512_maskz_loadu_epi32(m, colsum + j)));
        __m512 sc = _mm512_mul_ps(rs, _mm512_maskz_loadu_ps(m, scale + j));
        __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), sc, _mm512_maskz_loadu_ps(m, bias + j));
        _mm512_mask_storeu_ps(out + j, m, gelu ? gelu16(y) : y);
    }
}

/* Transposes the 16 x 16 block r in registers (r[j] = row j in, column j
 * out): unpack pairs of rows, shuffle 4 x 4 within 128-bit lanes, then
 * transpose the 4 x 4 grid of lanes. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + c], lane L: column 4L + c of rows 4i .. 4i + 3 */
    __m512 u[16];
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
        __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/* Rows of up to 64 (a query's attention scores: one row per token) go 16
 * at a time through transposes, so that each register holds one column of
 * 16 rows and the max, exponentials and sums are vertical operations on
 * independent registers. Row by row, each row's horizontal max and sum and
 * its exponentials formed one dependency chain: ~125 cycles a row, 6% of an
 * int8 embedding's time (perf). */
static void softmax_avx512(float *x, int rows, int n, size_t ld) {
    if (n > 64) {
        for (int r = 0; r < rows; r++) softmax_row_avx512(x + (size_t)r * ld, n);
        return;
    }
    for (int r0 = 0; r0 < rows; r0 += 16) {
        int nr = rows - r0 < 16 ? rows - r0 : 16;
        float *base = x + (size_t)r0 * ld;
        __m512 t[64]; /* t[c]: column c of the 16 rows */
        /* Rows past the last are zeros (finite; never stored). Lanes past n
         * are zeros too, but the columns they become are not used. */
        for (int c0 = 0; c0 < n; c0 += 16) {
            __mmask16 m = tail_mask(n - c0);
            __m512 *r = t + c0;
            for (int j = 0; j < 16; j++)
                r[j] = j < nr ? _mm512_maskz_loadu_ps(m, base + (size_t)j * ld + c0) : _mm512_setzero_ps();
            transpose16(r);
        }
        __m512 mx = t[0];
        for (int c = 1; c < n; c++) mx = _mm512_max_ps(mx, t[c]);
        __m512 s = _mm512_setzero_ps();
        for (int c = 0; c < n; c++) {
            t[c] = exp512(_mm512_sub_ps(t[c], mx));
            s = _mm512_add_ps(s, t[c]);
        }
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
        for (int c = 0; c < n; c++) t[c] = _mm512_mul_ps(t[c], inv);
        for (int c0 = 0; c0 < n; c0 += 16) {
            __mmask16 m = tail_mask(n - c0);
            __m512 *r = t + c0;
            transpose16(r);
            for (int j = 0; j < nr; j++) _mm512_mask_storeu_ps(base + (size_t)j * ld + c0, m, r[j]);
        }
    }
}

static void pack_kt_avx512(const float *src, size_t ld, int rows, int n, float scale, float *dst) {
    __m512 vs = _mm512_set1_ps(scale);
    for (int d0 = 0; d0 < n; d0 += 16) {
        __mmask16 m = tail_mask(n - d0);
        __m512 r[16];
        for (int j = 0; j < 16; j++)
            r[j] = j < rows ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + (size_t)j * ld + d0), vs)
                            : _mm512_setzero_ps();
        transpose16(r);
        int nd = n - d0 < 16 ? n - d0 : 16;
        for (int d = 0; d < nd; d++) _mm512_storeu_ps(dst + (size_t)(d0 + d) * SX_NR, r[d]);
    }
}

const sx_model_kernels sx_model_kernels_avx512 = {
    .gemm_i8_rows = gemm_i8_rows_avx512,
    .quantize_u8 = quantize_u8_avx512,
    .dequant = dequant_avx512,
    .name = "avx512",
    .gemm_rows = gemm_rows_avx512,
    .gemm_mr = MR,
    .layernorm = layernorm_avx512,
    .gelu = gelu_avx512,
    .dot = dot_avx512,
    .axpy = axpy_avx512,
    .softmax = softmax_avx512,
    .pack_kt = pack_kt_avx512,
};

#else
const sx_model_kernels sx_model_kernels_avx512 = {0};
#endif
