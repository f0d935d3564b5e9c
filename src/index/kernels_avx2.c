/*
 * kernels_avx2.c - AVX2 + FMA distance kernels (x86-64). Compiled with
 * -mavx2 -mfma; called only when the CPU has both (kernels.c). Four
 * accumulators of 8 lanes hide the FMA latency; tails run scalar.
 */
#include "kernels_int.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_f32_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float l2sq_f32_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

/* 8 bytes -> 8 floats. */
static inline __m256 u8x8_to_ps(const uint8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

static float dot_f32_u8_avx2(const float *a, const uint8_t *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), u8x8_to_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), u8x8_to_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), u8x8_to_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), u8x8_to_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), u8x8_to_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * (float)b[i];
    return s;
}

/* Widened to 16 bits (maddubs would saturate 255 * 127 * 2). */
static int32_t dot_s8_u8_avx2(const int8_t *a, const uint8_t *b, size_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256i b0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
        __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i + 16)));
        __m256i b1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b + i + 16)));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a1, b1));
    }
    __m256i s = _mm256_add_epi32(s0, s1);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    int32_t r = _mm_cvtsi128_si32(h);
    for (; i < n; i++) r += (int32_t)a[i] * (int32_t)b[i];
    return r;
}

static void sq8_decode_avx2(const float *vmin, const float *vscale, const uint8_t *c, size_t n,
                            float *x) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_fmadd_ps(_mm256_loadu_ps(vscale + i), u8x8_to_ps(c + i),
                                                _mm256_loadu_ps(vmin + i)));
    sq8_decode_tail(vmin, vscale, c, i, n, x);
}

/* As the AVX-512 version; vcvtps2dq rounds to nearest even like lrintf, and
 * two saturating packs narrow 8 int32 to 8 bytes. */
static void sq8_query_avx2(const float *v, const float *vmin, const float *vscale, size_t n,
                           int8_t *q8, float *alpha, float *bias) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 mx = _mm256_setzero_ps(), b0 = mx;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(v + i);
        mx = _mm256_max_ps(mx, _mm256_and_ps(absm, _mm256_mul_ps(x, _mm256_loadu_ps(vscale + i))));
        b0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vmin + i), b0);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float mm = _mm_cvtss_f32(m4), b = hsum256(b0);
    sq8_stats_tail(v, vmin, vscale, i, n, &mm, &b);
    float a = sq8_alpha(mm), invs = 1.0f / a;
    __m256 inv = _mm256_set1_ps(invs);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(vscale + i));
        __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(s, inv));
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storel_epi64((__m128i *)(void *)(q8 + i), _mm_packs_epi16(w, w));
    }
    sq8_round_tail(v, vscale, invs, i, n, q8);
    *alpha = a;
    *bias = b;
}

static const sx_kernels g_avx2 = {"avx2",          dot_f32_avx2,   l2sq_f32_avx2,
                                  dot_f32_u8_avx2, dot_s8_u8_avx2, sq8_decode_avx2,
                                  sq8_query_avx2};

const sx_kernels *sx_kernels_avx2_table(void) { return &g_avx2; }

#else

const sx_kernels *sx_kernels_avx2_table(void) { return NULL; }

#endif
