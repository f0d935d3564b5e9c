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

static void gelu_avx2(float *x, int n);

/* Row blocks of MR; a layer marked gelu gets GELU as a pass over each block
 * right after it (AVX-512 applies it in registers instead). */
static void gemm_rows_avx2(const sx_linear *lin, int p0, int p1, int m, const float *A,
                           int lda, float *C, int ldc) {
    while (m > 0) {
        int mm = m < MR ? m : MR;
        for (int p = p0; p < p1; p++) {
            switch (mm) { TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) }
        }
        if (lin->gelu) {
            int c0 = p0 * SX_NR, c1 = p1 * SX_NR < lin->n ? p1 * SX_NR : lin->n;
            for (int i = 0; i < mm; i++) gelu_avx2(C + (size_t)i * (size_t)ldc + c0, c1 - c0);
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

static void softmax_row_avx2(float *x, int n) {
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

static void softmax_avx2(float *x, int rows, int n, size_t ld) {
    for (int r = 0; r < rows; r++) softmax_row_avx2(x + (size_t)r * ld, n);
}

/* Int8 micro-kernel (AVX2): 4 rows x 16 outputs. vpmaddubsw would saturate
 * on 255 * 127 * 2, so both sides are widened to 16 bits (weights once per
 * group, shared by the rows) and multiplied with vpmaddwd, whose int32 pair
 * sums are exact. A 16-byte lane of a weight group holds 4 outputs x 4 k;
 * widened it is 16 int16, and vpmaddwd against (a0 a1 a2 a3) repeated gives
 * two partial sums per output, added together at the end. */
#define MR8 4

static inline __attribute__((always_inline)) void gemm_i8_tile(const sx_linear8 *lin, int p,
                                                               const int M, const uint8_t *A,
                                                               int lda, int32_t *C, int ldc) {
    const int groups = lin->k4 / 4;
    const int8_t *w = lin->w + (size_t)p * (size_t)lin->k4 * SX_NR;
    const size_t step = 4 * (size_t)lda;
    __m256i acc[MR8][4];
#pragma GCC unroll 8
    for (int i = 0; i < M; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm256_setzero_si256();
    for (int g = 0; g < groups; g++, A += step) {
        const __m128i *src = (const __m128i *)(w + (size_t)g * 64);
        __m256i x0 = _mm256_cvtepi8_epi16(_mm_load_si128(src));     /* outputs 0-3 */
        __m256i x1 = _mm256_cvtepi8_epi16(_mm_load_si128(src + 1)); /* outputs 4-7 */
        __m256i x2 = _mm256_cvtepi8_epi16(_mm_load_si128(src + 2)); /* outputs 8-11 */
        __m256i x3 = _mm256_cvtepi8_epi16(_mm_load_si128(src + 3)); /* outputs 12-15 */
#pragma GCC unroll 8
        for (int i = 0; i < M; i++) {
            int32_t a4;
            memcpy(&a4, A + 4 * i, 4);
            __m256i a = _mm256_cvtepu8_epi16(_mm_set1_epi32(a4)); /* (a0 a1 a2 a3) x 4 */
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(a, x0));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(a, x1));
            acc[i][2] = _mm256_add_epi32(acc[i][2], _mm256_madd_epi16(a, x2));
            acc[i][3] = _mm256_add_epi32(acc[i][3], _mm256_madd_epi16(a, x3));
        }
    }
    int left = lin->n - p * SX_NR;
#pragma GCC unroll 8
    for (int i = 0; i < M; i++) {
        /* acc[i][q] holds (out 4q: two halves, out 4q+1: two halves, ...) */
        __m256i s01 = _mm256_hadd_epi32(acc[i][0], acc[i][1]); /* 0 1 4 5 | 2 3 6 7 */
        __m256i s23 = _mm256_hadd_epi32(acc[i][2], acc[i][3]); /* 8 9 12 13 | 10 11 14 15 */
        int32_t t01[8], t23[8], out[SX_NR];
        _mm256_storeu_si256((__m256i *)t01, s01);
        _mm256_storeu_si256((__m256i *)t23, s23);
        static const int order[8] = {0, 1, 4, 5, 2, 3, 6, 7};
        for (int u = 0; u < 8; u++) out[order[u]] = t01[u], out[8 + order[u]] = t23[u];
        memcpy(C + (size_t)i * (size_t)ldc, out, sizeof(int32_t) * (size_t)(left < SX_NR ? left : SX_NR));
    }
}

#define TILE8_CASE(M)                                                    \
    case M:                                                              \
        gemm_i8_tile(lin, p, M, A, lda, C + (p - p0) * SX_NR, ldc);      \
        break;

static void gemm_i8_rows_avx2(const sx_linear8 *lin, int p0, int p1, int m, const uint8_t *A,
                              int lda, int32_t *C, int ldc) {
    while (m > 0) {
        int mm = m < MR8 ? m : MR8;
        for (int p = p0; p < p1; p++) {
            switch (mm) { TILE8_CASE(1) TILE8_CASE(2) TILE8_CASE(3) TILE8_CASE(4) }
        }
        m -= mm;
        A += 4 * (size_t)mm;
        C += (size_t)mm * (size_t)ldc;
    }
}

/* sx_quantize_row, 8 inputs at a time (bit-exact: same rounding, no fusing). */
static float quantize_u8_avx2(const float *x, const float *mul, int k, int k4, uint8_t *q,
                              size_t group_stride, int32_t *zero) {
    __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + i));
        vlo = _mm256_min_ps(vlo, v);
        vhi = _mm256_max_ps(vhi, v);
    }
    float l8[8], h8[8], lo = 0, hi = 0;
    _mm256_storeu_ps(l8, vlo);
    _mm256_storeu_ps(h8, vhi);
    for (int t = 0; t < 8; t++) lo = l8[t] < lo ? l8[t] : lo, hi = h8[t] > hi ? h8[t] : hi;
    for (; i < k; i++) {
        float v = mul ? x[i] * mul[i] : x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    float inv = 1.0f / s;
    float z = _mm_cvtss_f32(_mm_round_ss(_mm_setzero_ps(), _mm_set_ss(-lo * inv),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m256 vinv = _mm256_set1_ps(inv);
    __m256i vz = _mm256_set1_epi32((int32_t)z);
    for (i = 0; i + 8 <= k; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + i));
        __m256i qi = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v, vinv)), vz);
        qi = _mm256_max_epi32(_mm256_min_epi32(qi, _mm256_set1_epi32(255)), _mm256_setzero_si256());
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)t, qi);
        uint8_t *dst = q + (size_t)(i / 4) * group_stride;
        for (int u = 0; u < 4; u++) dst[u] = (uint8_t)t[u], dst[group_stride + u] = (uint8_t)t[4 + u];
    }
    for (; i < k; i++) {
        float v = mul ? x[i] * mul[i] : x[i];
        float f = _mm_cvtss_f32(_mm_round_ss(_mm_setzero_ps(), _mm_set_ss(v * inv),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)) + z;
        q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = (uint8_t)(f > 255 ? 255 : f < 0 ? 0 : f);
    }
    for (; i < k4; i++) q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = 0;
    *zero = (int32_t)z;
    return s;
}

static void dequant_avx2(const int32_t *acc, int n, int32_t zero, const int32_t *colsum,
                         float row_scale, const float *scale, const float *bias, float *out,
                         int gelu) {
    __m256i vz = _mm256_set1_epi32(zero);
    __m256 rs = _mm256_set1_ps(row_scale);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i a = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(acc + j)),
                                     _mm256_mullo_epi32(vz, _mm256_loadu_si256((const __m256i *)(colsum + j))));
        __m256 sc = _mm256_mul_ps(rs, _mm256_loadu_ps(scale + j));
        __m256 y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), sc, _mm256_loadu_ps(bias + j));
        _mm256_storeu_ps(out + j, gelu ? gelu8(y) : y);
    }
    if (j < n) {
        int r = n - j;
        float y[8];
        for (int i = 0; i < r; i++)
            y[i] = (float)(acc[j + i] - zero * colsum[j + i]) * (row_scale * scale[j + i]) + bias[j + i];
        if (gelu) store_tail(y, gelu8(load_tail(y, r)), r);
        memcpy(out + j, y, sizeof(float) * (size_t)r);
    }
}

const sx_model_kernels sx_model_kernels_avx2 = {
    .gemm_i8_rows = gemm_i8_rows_avx2,
    .quantize_u8 = quantize_u8_avx2,
    .dequant = dequant_avx2,
    .name = "avx2",
    .gemm_rows = gemm_rows_avx2,
    .gemm_mr = MR,
    .layernorm = layernorm_avx2,
    .gelu = gelu_avx2,
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .softmax = softmax_avx2,
    .pack_kt = sx_pack_kt_ref, /* attention packing: only the AVX-512 table has a transpose */
};

#else
const sx_model_kernels sx_model_kernels_avx2 = {0};
#endif
