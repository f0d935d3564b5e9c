/*
 * kernels_avx512.c - AVX-512 (F + BW + VL, and VNNI for the byte dot
 * product) distance kernels (x86-64).
 * Compiled with -mavx512f...; called only when the CPU has them (kernels.c).
 * Tails use masked loads, so there is no scalar remainder loop.
 */
#include "kernels_int.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>

static inline __mmask16 tail_mask(size_t r) { return (__mmask16)((1u << r) - 1u); }

static float dot_f32_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static float l2sq_f32_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* 16 bytes -> 16 floats. */
static inline __m512 u8x16_to_ps(const uint8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

static float dot_f32_u8_avx512(const float *a, const uint8_t *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), u8x16_to_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), u8x16_to_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), u8x16_to_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), u8x16_to_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), u8x16_to_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, b + i)));
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), c, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* AVX-512BW without VNNI: widened to 16 bits and multiply-added. */
static int32_t dot_s8_u8_avx512(const int8_t *a, const uint8_t *b, size_t n) {
    __m512i s = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i a0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512i b0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(b + i)));
        s = _mm512_add_epi32(s, _mm512_madd_epi16(a0, b0));
    }
    if (i < n) {
        __mmask32 m = (__mmask32)((1ull << (n - i)) - 1);
        __m512i a0 = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, a + i));
        __m512i b0 = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, b + i));
        s = _mm512_add_epi32(s, _mm512_madd_epi16(a0, b0));
    }
    return _mm512_reduce_add_epi32(s);
}

/* VNNI: vpdpbusd multiplies unsigned by signed bytes and adds groups of four
 * into 32-bit lanes: 64 dimensions per instruction. */
static int32_t dot_s8_u8_vnni(const int8_t *a, const uint8_t *b, size_t n) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(b + i), _mm512_loadu_si512(a + i));
        s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(b + i + 64), _mm512_loadu_si512(a + i + 64));
    }
    for (; i + 64 <= n; i += 64)
        s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(b + i), _mm512_loadu_si512(a + i));
    if (i < n) {
        __mmask64 m = n - i >= 64 ? ~0ull : (1ull << (n - i)) - 1;
        s1 = _mm512_dpbusd_epi32(s1, _mm512_maskz_loadu_epi8(m, b + i), _mm512_maskz_loadu_epi8(m, a + i));
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

static void sq8_decode_avx512(const float *vmin, const float *vscale, const uint8_t *c, size_t n,
                              float *x) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_fmadd_ps(_mm512_loadu_ps(vscale + i), u8x16_to_ps(c + i),
                                                _mm512_loadu_ps(vmin + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 cf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, c + i)));
        _mm512_mask_storeu_ps(x + i, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, vscale + i), cf,
                                                        _mm512_maskz_loadu_ps(m, vmin + i)));
    }
}

/* Two passes over v: the largest |v * vscale| and the bias, then the
 * rounding (vcvtps2dq rounds to nearest even, as lrintf does) and a
 * saturating narrow to bytes. */
static void sq8_query_avx512(const float *v, const float *vmin, const float *vscale, size_t n,
                             int8_t *q8, float *alpha, float *bias) {
    __m512 mx = _mm512_setzero_ps(), b0 = mx, b1 = mx;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 x0 = _mm512_loadu_ps(v + i), x1 = _mm512_loadu_ps(v + i + 16);
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_mul_ps(x0, _mm512_loadu_ps(vscale + i))));
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_mul_ps(x1, _mm512_loadu_ps(vscale + i + 16))));
        b0 = _mm512_fmadd_ps(x0, _mm512_loadu_ps(vmin + i), b0);
        b1 = _mm512_fmadd_ps(x1, _mm512_loadu_ps(vmin + i + 16), b1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(m, v + i);
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_mul_ps(x, _mm512_maskz_loadu_ps(m, vscale + i))));
        b0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, vmin + i), b0);
    }
    float a = sq8_alpha(_mm512_reduce_max_ps(mx));
    __m512 inv = _mm512_set1_ps(1.0f / a);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 s = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, v + i), _mm512_maskz_loadu_ps(m, vscale + i));
        _mm512_mask_cvtsepi32_storeu_epi8(q8 + i, m, _mm512_cvtps_epi32(_mm512_mul_ps(s, inv)));
    }
    *alpha = a;
    *bias = _mm512_reduce_add_ps(_mm512_add_ps(b0, b1));
}

static const sx_kernels g_avx512 = {"avx512",          dot_f32_avx512,   l2sq_f32_avx512,
                                    dot_f32_u8_avx512, dot_s8_u8_avx512, sq8_decode_avx512,
                                    sq8_query_avx512};
static const sx_kernels g_avx512vnni = {"avx512vnni",      dot_f32_avx512, l2sq_f32_avx512,
                                        dot_f32_u8_avx512, dot_s8_u8_vnni, sq8_decode_avx512,
                                        sq8_query_avx512};

const sx_kernels *sx_kernels_avx512_table(void) { return &g_avx512; }
const sx_kernels *sx_kernels_avx512vnni_table(void) { return &g_avx512vnni; }

#else

const sx_kernels *sx_kernels_avx512_table(void) { return NULL; }
const sx_kernels *sx_kernels_avx512vnni_table(void) { return NULL; }

#endif
