/*
 * kernels_neon.c - NEON variants of the encoder kernels for arm64 (ARMv8.2
 * with the dot-product extension, chosen only when the CPU reports it); see
 * kernels.c for the scalar reference and the packed layouts.
 *
 * GEMM: up to 6 rows x 16 outputs (four q registers per row, 24 in all) stay
 * in registers over the k loop. Int8: sdot multiplies signed by signed bytes,
 * so the unsigned activations are shifted to a - 128 (an XOR with 0x80) and
 * 128 * colsum is added back, which is exact. exp/erf follow the formulas of
 * the x86 files. Written without libc headers (builtins only) so that the
 * file can be syntax-checked for arm64 on an x86 machine:
 *
 *     clang --target=aarch64-linux-gnu -march=armv8.2-a+dotprod+fp16 \
 *           -ffreestanding -fsyntax-only -Wall -Wextra src/model/kernels_neon.c
 *
 * On other architectures the file compiles to an empty table whose NULL name
 * tells the dispatcher it is absent.
 */
#include "model_int.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#include <string.h>

#define MR 6

static inline __attribute__((always_inline)) void gemm_tile(const sx_linear *lin, int p,
                                                            const int M, const float *A, int lda,
                                                            float *C, int ldc) {
    const int k = lin->k;
    const float *w = lin->w + (size_t)p * (size_t)k * SX_NR;
    float32x4_t acc[MR][4];
    const float *b = lin->bias + p * SX_NR;
#pragma GCC unroll 8
    for (int i = 0; i < M; i++)
        for (int q = 0; q < 4; q++) acc[i][q] = vld1q_f32(b + 4 * q);
    for (int kk = 0; kk < k; kk++) {
        const float *wr = w + (size_t)kk * SX_NR;
        float32x4_t x0 = vld1q_f32(wr), x1 = vld1q_f32(wr + 4);
        float32x4_t x2 = vld1q_f32(wr + 8), x3 = vld1q_f32(wr + 12);
#pragma GCC unroll 8
        for (int i = 0; i < M; i++) {
            float a = A[(size_t)i * (size_t)lda + kk];
            acc[i][0] = vfmaq_n_f32(acc[i][0], x0, a);
            acc[i][1] = vfmaq_n_f32(acc[i][1], x1, a);
            acc[i][2] = vfmaq_n_f32(acc[i][2], x2, a);
            acc[i][3] = vfmaq_n_f32(acc[i][3], x3, a);
        }
    }
    int left = lin->n - p * SX_NR;
#pragma GCC unroll 8
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * (size_t)ldc + p * SX_NR;
        if (left >= SX_NR) {
            for (int q = 0; q < 4; q++) vst1q_f32(c + 4 * q, acc[i][q]);
        } else {
            float tmp[SX_NR];
            for (int q = 0; q < 4; q++) vst1q_f32(tmp + 4 * q, acc[i][q]);
            __builtin_memcpy(c, tmp, sizeof(float) * (size_t)left);
        }
    }
}

#define TILE_CASE(M)                           \
    case M:                                    \
        gemm_tile(lin, p, M, A, lda, C, ldc);  \
        break;

static void gelu_neon(float *x, int n);

/* Row blocks of MR; a layer marked gelu gets GELU as a pass over each block
 * right after it (AVX-512 applies it in registers instead). */
static void gemm_rows_neon(const sx_linear *lin, int p0, int p1, int m, const float *A, int lda,
                           float *C, int ldc) {
    while (m > 0) {
        int mm = m < MR ? m : MR;
        for (int p = p0; p < p1; p++) {
            switch (mm) { TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) }
        }
        if (lin->gelu) {
            int c0 = p0 * SX_NR, c1 = p1 * SX_NR < lin->n ? p1 * SX_NR : lin->n;
            for (int i = 0; i < mm; i++) gelu_neon(C + (size_t)i * (size_t)ldc + c0, c1 - c0);
        }
        m -= mm;
        A += (size_t)mm * (size_t)lda;
        C += (size_t)mm * (size_t)ldc;
    }
}

static void layernorm_neon(float *x, const float *r, const float *gamma, const float *beta,
                           int n, float eps) {
    int n4 = n & ~3;
    if (r)
        for (int i = 0; i < n; i++) x[i] += r[i];
    float32x4_t s = vdupq_n_f32(0);
    for (int i = 0; i < n4; i += 4) s = vaddq_f32(s, vld1q_f32(x + i));
    float sum = vaddvq_f32(s);
    for (int i = n4; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    float32x4_t vm = vdupq_n_f32(mean), q = vdupq_n_f32(0);
    for (int i = 0; i < n4; i += 4) {
        float32x4_t d = vsubq_f32(vld1q_f32(x + i), vm);
        q = vfmaq_f32(q, d, d);
    }
    float var = vaddvq_f32(q);
    for (int i = n4; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)n;
    float inv = 1.0f / __builtin_sqrtf(var + eps);
    float32x4_t vi = vdupq_n_f32(inv);
    for (int i = 0; i < n4; i += 4) {
        float32x4_t d = vmulq_f32(vsubq_f32(vld1q_f32(x + i), vm), vi);
        vst1q_f32(x + i, vfmaq_f32(vld1q_f32(beta + i), d, vld1q_f32(gamma + i)));
    }
    for (int i = n4; i < n; i++) x[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

static inline float32x4_t exp4(float32x4_t x) {
    x = vmaxq_f32(vminq_f32(x, vdupq_n_f32(88.3762626647949f)), vdupq_n_f32(-87.3365447504f));
    float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.0f / 720);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

static inline float32x4_t gelu4(float32x4_t v) {
    float32x4_t z = vmulq_f32(v, vdupq_n_f32(0.70710678118654752f));
    float32x4_t az = vabsq_f32(z);
    float32x4_t t = vdivq_f32(vdupq_n_f32(1.0f), vfmaq_f32(vdupq_n_f32(1.0f), az, vdupq_n_f32(0.3275911f)));
    float32x4_t poly = vdupq_n_f32(1.061405429f);
    poly = vfmaq_f32(vdupq_n_f32(-1.453152027f), poly, t);
    poly = vfmaq_f32(vdupq_n_f32(1.421413741f), poly, t);
    poly = vfmaq_f32(vdupq_n_f32(-0.284496736f), poly, t);
    poly = vfmaq_f32(vdupq_n_f32(0.254829592f), poly, t);
    poly = vmulq_f32(poly, t);
    float32x4_t e = exp4(vnegq_f32(vmulq_f32(az, az)));
    float32x4_t erf_abs = vfmsq_f32(vdupq_n_f32(1.0f), poly, e);
    uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(z), vdupq_n_u32(0x80000000u));
    float32x4_t erf = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(erf_abs), sign));
    return vmulq_f32(vmulq_f32(vdupq_n_f32(0.5f), v), vaddq_f32(vdupq_n_f32(1.0f), erf));
}

static void gelu_neon(float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, gelu4(vld1q_f32(x + i)));
    if (i < n) {
        float tmp[4] = {0, 0, 0, 0};
        __builtin_memcpy(tmp, x + i, sizeof(float) * (size_t)(n - i));
        vst1q_f32(tmp, gelu4(vld1q_f32(tmp)));
        __builtin_memcpy(x + i, tmp, sizeof(float) * (size_t)(n - i));
    }
}

static float dot_neon(const float *a, const float *b, int n) {
    float32x4_t s = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) s = vfmaq_f32(s, vld1q_f32(a + i), vld1q_f32(b + i));
    float r = vaddvq_f32(s);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void axpy_neon(float *y, float a, const float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}

static void softmax_row_neon(float *x, int n) {
    float mx = -__builtin_inff();
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float32x4_t vmax = vdupq_n_f32(mx), s = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vmax));
        vst1q_f32(x + i, e);
        s = vaddq_f32(s, e);
    }
    float sum = vaddvq_f32(s);
    for (; i < n; i++) {
        float tmp[4] = {x[i] - mx, 0, 0, 0};
        x[i] = vgetq_lane_f32(exp4(vld1q_f32(tmp)), 0);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (i = 0; i < n; i++) x[i] *= inv;
}

static void softmax_neon(float *x, int rows, int n, size_t ld) {
    for (int r = 0; r < rows; r++) softmax_row_neon(x + (size_t)r * ld, n);
}

/* Int8: 6 rows x 16 outputs; each group of 4 k is four 16-byte weight
 * loads (4 outputs x 4 k each) and four sdot per row. */
static inline __attribute__((always_inline)) void gemm_i8_tile(const sx_linear8 *lin, int p,
                                                               const int M, const uint8_t *A,
                                                               int lda, int32_t *C, int ldc) {
    const int groups = lin->k4 / 4;
    const int8_t *w = lin->w + (size_t)p * (size_t)lin->k4 * SX_NR;
    const size_t step = 4 * (size_t)lda;
    int32x4_t acc[MR][4];
#pragma GCC unroll 8
    for (int i = 0; i < M; i++)
        for (int q = 0; q < 4; q++) acc[i][q] = vdupq_n_s32(0);
    for (int g = 0; g < groups; g++, A += step) {
        const int8_t *wg = w + (size_t)g * 64;
        int8x16_t x0 = vld1q_s8(wg), x1 = vld1q_s8(wg + 16), x2 = vld1q_s8(wg + 32), x3 = vld1q_s8(wg + 48);
#pragma GCC unroll 8
        for (int i = 0; i < M; i++) {
            uint32_t a4;
            __builtin_memcpy(&a4, A + 4 * i, 4);
            int8x16_t a = vreinterpretq_s8_u32(vdupq_n_u32(a4 ^ 0x80808080u)); /* a - 128 */
            acc[i][0] = vdotq_s32(acc[i][0], x0, a);
            acc[i][1] = vdotq_s32(acc[i][1], x1, a);
            acc[i][2] = vdotq_s32(acc[i][2], x2, a);
            acc[i][3] = vdotq_s32(acc[i][3], x3, a);
        }
    }
    const int32_t *cs = lin->colsum + p * SX_NR;
    int32x4_t c128[4];
    for (int q = 0; q < 4; q++) c128[q] = vshlq_n_s32(vld1q_s32(cs + 4 * q), 7);
    int left = lin->n - p * SX_NR;
#pragma GCC unroll 8
    for (int i = 0; i < M; i++) {
        int32_t out[SX_NR];
        for (int q = 0; q < 4; q++) vst1q_s32(out + 4 * q, vaddq_s32(acc[i][q], c128[q]));
        __builtin_memcpy(C + (size_t)i * (size_t)ldc, out,
                         sizeof(int32_t) * (size_t)(left < SX_NR ? left : SX_NR));
    }
}

#define TILE8_CASE(M)                                                    \
    case M:                                                              \
        gemm_i8_tile(lin, p, M, A, lda, C + (p - p0) * SX_NR, ldc);      \
        break;

static void gemm_i8_rows_neon(const sx_linear8 *lin, int p0, int p1, int m, const uint8_t *A,
                              int lda, int32_t *C, int ldc) {
    while (m > 0) {
        int mm = m < MR ? m : MR;
        for (int p = p0; p < p1; p++) {
            switch (mm) {
                TILE8_CASE(1) TILE8_CASE(2) TILE8_CASE(3) TILE8_CASE(4) TILE8_CASE(5) TILE8_CASE(6)
            }
        }
        m -= mm;
        A += 4 * (size_t)mm;
        C += (size_t)mm * (size_t)ldc;
    }
}

/* Round half to even, as the reference. */
static inline float round_even1(float v) { return vgetq_lane_f32(vrndnq_f32(vdupq_n_f32(v)), 0); }

static float quantize_u8_neon(const float *x, const float *mul, int k, int k4, uint8_t *q,
                              size_t group_stride, int32_t *zero) {
    float32x4_t vlo = vdupq_n_f32(0), vhi = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= k; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        if (mul) v = vmulq_f32(v, vld1q_f32(mul + i));
        vlo = vminq_f32(vlo, v);
        vhi = vmaxq_f32(vhi, v);
    }
    float lo = vminvq_f32(vlo), hi = vmaxvq_f32(vhi);
    for (; i < k; i++) {
        float v = mul ? x[i] * mul[i] : x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    float inv = 1.0f / s;
    float z = round_even1(-lo * inv);
    float32x4_t vinv = vdupq_n_f32(inv);
    int32x4_t vz = vdupq_n_s32((int32_t)z);
    for (i = 0; i + 4 <= k; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        if (mul) v = vmulq_f32(v, vld1q_f32(mul + i));
        int32x4_t qi = vaddq_s32(vcvtnq_s32_f32(vmulq_f32(v, vinv)), vz);
        qi = vmaxq_s32(vminq_s32(qi, vdupq_n_s32(255)), vdupq_n_s32(0));
        uint8_t *dst = q + (size_t)(i / 4) * group_stride;
        for (int u = 0; u < 4; u++) dst[u] = (uint8_t)vgetq_lane_s32(qi, 0), qi = vextq_s32(qi, qi, 1);
    }
    for (; i < k; i++) {
        float f = round_even1((mul ? x[i] * mul[i] : x[i]) * inv) + z;
        q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = (uint8_t)(f > 255 ? 255 : f < 0 ? 0 : f);
    }
    for (; i < k4; i++) q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = 0;
    *zero = (int32_t)z;
    return s;
}

static void dequant_neon(const int32_t *acc, int n, int32_t zero, const int32_t *colsum,
                         float row_scale, const float *scale, const float *bias, float *out,
                         int gelu) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        int32x4_t a = vmlsq_n_s32(vld1q_s32(acc + j), vld1q_s32(colsum + j), zero);
        float32x4_t sc = vmulq_n_f32(vld1q_f32(scale + j), row_scale);
        float32x4_t y = vfmaq_f32(vld1q_f32(bias + j), vcvtq_f32_s32(a), sc);
        vst1q_f32(out + j, gelu ? gelu4(y) : y);
    }
    if (j < n) {
        float y[4] = {0};
        for (int i = 0; i < n - j; i++)
            y[i] = (float)(acc[j + i] - zero * colsum[j + i]) * (row_scale * scale[j + i]) + bias[j + i];
        if (gelu) vst1q_f32(y, gelu4(vld1q_f32(y)));
        memcpy(out + j, y, sizeof(float) * (size_t)(n - j));
    }
}

const sx_model_kernels sx_model_kernels_neon = {
    .name = "neon",
    .gemm_rows = gemm_rows_neon,
    .gemm_mr = MR,
    .layernorm = layernorm_neon,
    .gelu = gelu_neon,
    .dot = dot_neon,
    .axpy = axpy_neon,
    .softmax = softmax_neon,
    .gemm_i8_rows = gemm_i8_rows_neon,
    .quantize_u8 = quantize_u8_neon,
    .dequant = dequant_neon,
    .pack_kt = sx_pack_kt_ref, /* attention packing: only the AVX-512 table has a transpose */
};

#else
const sx_model_kernels sx_model_kernels_neon = {0};
#endif
