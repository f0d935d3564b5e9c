/*
 * kernels_neon.c - NEON distance kernels (arm64). NEON is part of every
 * arm64 CPU, so no run-time check beyond the architecture is needed.
 */
#include "kernels_int.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

static float dot_f32_neon(const float *a, const float *b, size_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float l2sq_f32_neon(const float *a, const float *b, size_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t d0 = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        float32x4_t d1 = vsubq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s0 = vfmaq_f32(s0, d0, d0);
        s1 = vfmaq_f32(s1, d1, d1);
    }
    for (; i + 4 <= n; i += 4) {
        float32x4_t d = vsubq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
        s0 = vfmaq_f32(s0, d, d);
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

static float dot_f32_u8_neon(const float *a, const uint8_t *b, size_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint8x16_t c = vld1q_u8(b + i);
        uint16x8_t lo = vmovl_u8(vget_low_u8(c)), hi = vmovl_u8(vget_high_u8(c));
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo))));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi))));
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += a[i] * (float)b[i];
    return s;
}

static int32_t dot_s8_u8_neon(const int8_t *a, const uint8_t *b, size_t n) {
    int32x4_t s0 = vdupq_n_s32(0), s1 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        int8x16_t x = vld1q_s8(a + i);
        int16x8_t b0 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(b + i)));
        int16x8_t b1 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(b + i + 8)));
        int16x8_t a0 = vmovl_s8(vget_low_s8(x)), a1 = vmovl_s8(vget_high_s8(x));
        s0 = vmlal_s16(s0, vget_low_s16(a0), vget_low_s16(b0));
        s1 = vmlal_s16(s1, vget_high_s16(a0), vget_high_s16(b0));
        s0 = vmlal_s16(s0, vget_low_s16(a1), vget_low_s16(b1));
        s1 = vmlal_s16(s1, vget_high_s16(a1), vget_high_s16(b1));
    }
    int32_t r = vaddvq_s32(vaddq_s32(s0, s1));
    for (; i < n; i++) r += (int32_t)a[i] * (int32_t)b[i];
    return r;
}

static void sq8_decode_neon(const float *vmin, const float *vscale, const uint8_t *c, size_t n,
                            float *x) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t w = vmovl_u8(vld1_u8(c + i));
        float32x4_t c0 = vcvtq_f32_u32(vmovl_u16(vget_low_u16(w)));
        float32x4_t c1 = vcvtq_f32_u32(vmovl_u16(vget_high_u16(w)));
        vst1q_f32(x + i, vfmaq_f32(vld1q_f32(vmin + i), vld1q_f32(vscale + i), c0));
        vst1q_f32(x + i + 4, vfmaq_f32(vld1q_f32(vmin + i + 4), vld1q_f32(vscale + i + 4), c1));
    }
    sq8_decode_tail(vmin, vscale, c, i, n, x);
}

/* As the AVX-512 version; fcvtns rounds to nearest even like lrintf, and two
 * saturating narrows take 8 int32 to 8 bytes. */
static void sq8_query_neon(const float *v, const float *vmin, const float *vscale, size_t n,
                           int8_t *q8, float *alpha, float *bias) {
    float32x4_t mx = vdupq_n_f32(0), b0 = mx;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t x = vld1q_f32(v + i);
        mx = vmaxq_f32(mx, vabsq_f32(vmulq_f32(x, vld1q_f32(vscale + i))));
        b0 = vfmaq_f32(b0, x, vld1q_f32(vmin + i));
    }
    float mm = vmaxvq_f32(mx), b = vaddvq_f32(b0);
    sq8_stats_tail(v, vmin, vscale, i, n, &mm, &b);
    float a = sq8_alpha(mm), invs = 1.0f / a;
    float32x4_t inv = vdupq_n_f32(invs);
    for (i = 0; i + 8 <= n; i += 8) {
        int32x4_t r0 = vcvtnq_s32_f32(vmulq_f32(vmulq_f32(vld1q_f32(v + i), vld1q_f32(vscale + i)), inv));
        int32x4_t r1 =
            vcvtnq_s32_f32(vmulq_f32(vmulq_f32(vld1q_f32(v + i + 4), vld1q_f32(vscale + i + 4)), inv));
        vst1_s8(q8 + i, vqmovn_s16(vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1))));
    }
    sq8_round_tail(v, vscale, invs, i, n, q8);
    *alpha = a;
    *bias = b;
}

static const sx_kernels g_neon = {"neon",          dot_f32_neon,   l2sq_f32_neon,
                                  dot_f32_u8_neon, dot_s8_u8_neon, sq8_decode_neon,
                                  sq8_query_neon};

const sx_kernels *sx_kernels_neon_table(void) { return &g_neon; }

#else

const sx_kernels *sx_kernels_neon_table(void) { return NULL; }

#endif
