/*
 * kernels.c - the scalar reference kernels of the encoder, weight packing, and
 * the run-time choice among instruction-set variants.
 *
 * Every hot loop of the forward pass goes through a table of function
 * pointers (sx_model_kernels). This file holds the plain-C table, which is both the
 * portable fallback and the reference that tests/test-model.c compares each
 * SIMD table against (kernels_avx2.c, kernels_avx512.c, kernels_neon.c). The
 * best table the CPU supports is chosen once, on first use.
 *
 * GEMM layout. A linear layer's weight W [n, k] is packed once at load time
 * into column panels of SX_NR (16) outputs: panel p holds W[16p .. 16p+15][*]
 * transposed to [k][16], zero-padded past n. A micro-kernel then streams one
 * panel row (16 consecutive floats: one AVX-512 register, two AVX2 or four
 * NEON registers) per step of k while broadcasting one activation per row,
 * so activations need no packing at all, which matters when m is 1..30 rows
 * (a query) and packing would cost as much as the multiply.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "model_int.h"

float sx_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    int exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                mant <<= 1;
                e++;
            } while (!(mant & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((uint32_t)(exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float sx_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int sx_linear_init(sx_linear *lin, const float *W, const float *bias, int n, int k) {
    memset(lin, 0, sizeof *lin);
    lin->n = n;
    lin->k = k;
    lin->n_panels = (n + SX_NR - 1) / SX_NR;
    size_t wsize = (size_t)lin->n_panels * (size_t)k * SX_NR * sizeof(float);
    lin->w = aligned_alloc(64, (wsize + 63) & ~(size_t)63);
    lin->bias = calloc((size_t)lin->n_panels * SX_NR, sizeof(float));
    if (!lin->w || !lin->bias) {
        sx_linear_free(lin);
        return SX_ENOMEM;
    }
    for (int p = 0; p < lin->n_panels; p++) {
        float *dst = lin->w + (size_t)p * (size_t)k * SX_NR;
        for (int kk = 0; kk < k; kk++) {
            for (int j = 0; j < SX_NR; j++) {
                int row = p * SX_NR + j;
                dst[(size_t)kk * SX_NR + j] = row < n ? W[(size_t)row * (size_t)k + kk] : 0.0f;
            }
        }
    }
    if (bias) memcpy(lin->bias, bias, sizeof(float) * (size_t)n);
    return 0;
}

void sx_linear_free(sx_linear *lin) {
    free(lin->w);
    free(lin->bias);
    free(lin->amax);
    lin->w = NULL;
    lin->bias = NULL;
    lin->amax = NULL;
}

int sx_linear8_init(sx_linear8 *lin, const float *W, const float *bias, int n, int k,
                    const float *amax) {
    memset(lin, 0, sizeof *lin);
    lin->n = n;
    lin->k = k;
    lin->k4 = (k + 3) & ~3;
    lin->n_panels = (n + SX_NR - 1) / SX_NR;
    size_t np = (size_t)lin->n_panels * SX_NR;
    size_t wsize = np * (size_t)lin->k4;
    lin->w = aligned_alloc(64, (wsize + 63) & ~(size_t)63);
    lin->scale = calloc(np, sizeof(float));
    lin->colsum = calloc(np, sizeof(int32_t));
    lin->bias = calloc(np, sizeof(float));
    float *smooth = calloc((size_t)k, sizeof(float)); /* weight multiplier per input */
    if (amax) lin->in_mul = calloc((size_t)k, sizeof(float));
    if (!lin->w || !lin->scale || !lin->colsum || !lin->bias || !smooth || (amax && !lin->in_mul)) {
        free(smooth);
        sx_linear8_free(lin);
        return SX_ENOMEM;
    }
    memset(lin->w, 0, wsize);
    for (int c = 0; c < k; c++) {
        float s = 1.0f;
        if (amax) {
            float wmax = 0;
            for (int j = 0; j < n; j++) {
                float v = fabsf(W[(size_t)j * (size_t)k + c]);
                wmax = v > wmax ? v : wmax;
            }
            /* SmoothQuant, alpha = 0.5: s = sqrt(amax / wmax), kept sane. */
            if (amax[c] > 0 && wmax > 0) s = sqrtf(amax[c] / wmax);
            s = s < 1e-2f ? 1e-2f : s > 1e2f ? 1e2f : s;
            lin->in_mul[c] = 1.0f / s;
        }
        smooth[c] = s;
    }
    for (int j = 0; j < n; j++) {
        const float *row = W + (size_t)j * (size_t)k;
        float amx = 0;
        for (int c = 0; c < k; c++) amx = fabsf(row[c] * smooth[c]) > amx ? fabsf(row[c] * smooth[c]) : amx;
        float s = amx > 0 ? amx / 127.0f : 1.0f;
        lin->scale[j] = s;
        int p = j / SX_NR, jj = j % SX_NR;
        int8_t *panel = lin->w + (size_t)p * (size_t)lin->k4 * SX_NR;
        int32_t sum = 0;
        for (int c = 0; c < k; c++) {
            float q = nearbyintf(row[c] * smooth[c] / s);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            int8_t v = (int8_t)q;
            panel[(size_t)(c / 4) * 64 + (size_t)jj * 4 + (size_t)(c % 4)] = v;
            sum += v;
        }
        lin->colsum[j] = sum;
    }
    free(smooth);
    if (bias) memcpy(lin->bias, bias, sizeof(float) * (size_t)n);
    return 0;
}

void sx_linear8_free(sx_linear8 *lin) {
    free(lin->w);
    free(lin->scale);
    free(lin->colsum);
    free(lin->bias);
    free(lin->in_mul);
    memset(lin, 0, sizeof *lin);
}

/* Round half to even for |v| < 2^22 without libm: adding 1.5 * 2^23 leaves
 * no fraction bits, so the FPU's own rounding does it. */
static inline float round_even(float v) {
    const float big = 12582912.0f;
    return (v + big) - big;
}

float sx_quantize_row(const float *x, const float *mul, int k, int k4, uint8_t *q,
                      size_t group_stride, int32_t *zero) {
    float lo = 0, hi = 0;
    for (int i = 0; i < k; i++) {
        float v = mul ? x[i] * mul[i] : x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    float inv = 1.0f / s;
    float z = round_even(-lo * inv);
    for (int i = 0; i < k; i++) {
        float v = round_even((mul ? x[i] * mul[i] : x[i]) * inv) + z;
        q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v);
    }
    for (int i = k; i < k4; i++) q[(size_t)(i / 4) * group_stride + (size_t)(i % 4)] = 0;
    *zero = (int32_t)z;
    return s;
}

static void dequant_scalar(const int32_t *acc, int n, int32_t zero, const int32_t *colsum,
                           float row_scale, const float *scale, const float *bias, float *out,
                           int gelu) {
    for (int j = 0; j < n; j++) {
        float y = (float)(acc[j] - zero * colsum[j]) * (row_scale * scale[j]) + bias[j];
        out[j] = gelu ? sx_gelu_ref(y) : y;
    }
}

float sx_gelu_ref(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

/* ---- the scalar reference table ---------------------------------------- */

static void gemm_rows_scalar(const sx_linear *lin, int p0, int p1, int m, const float *A,
                             int lda, float *C, int ldc) {
    int k = lin->k;
    for (int i = 0; i < m; i++) {
        const float *a = A + (size_t)i * (size_t)lda;
        for (int p = p0; p < p1; p++) {
            const float *w = lin->w + (size_t)p * (size_t)k * SX_NR;
            float acc[SX_NR];
            for (int j = 0; j < SX_NR; j++) acc[j] = lin->bias[p * SX_NR + j];
            for (int kk = 0; kk < k; kk++) {
                float av = a[kk];
                for (int j = 0; j < SX_NR; j++) acc[j] += av * w[(size_t)kk * SX_NR + j];
            }
            int nj = lin->n - p * SX_NR < SX_NR ? lin->n - p * SX_NR : SX_NR;
            if (lin->gelu)
                for (int j = 0; j < nj; j++) acc[j] = sx_gelu_ref(acc[j]);
            memcpy(C + (size_t)i * (size_t)ldc + p * SX_NR, acc, sizeof(float) * (size_t)nj);
        }
    }
}

static void layernorm_scalar(float *x, const float *r, const float *gamma, const float *beta,
                             int n, float eps) {
    if (r)
        for (int i = 0; i < n; i++) x[i] += r[i];
    float mean = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    float var = 0;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)n;
    float inv = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++) x[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

static void gelu_scalar(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = sx_gelu_ref(x[i]);
}

static float dot_scalar(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_scalar(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void softmax_row(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void softmax_scalar(float *x, int rows, int n, size_t ld) {
    for (int r = 0; r < rows; r++) softmax_row(x + (size_t)r * ld, n);
}

void sx_pack_kt_ref(const float *src, size_t ld, int rows, int n, float scale, float *dst) {
    for (int j = 0; j < SX_NR; j++)
        for (int d = 0; d < n; d++) dst[(size_t)d * SX_NR + j] = j < rows ? src[(size_t)j * ld + d] * scale : 0;
}

static void gemm_i8_rows_scalar(const sx_linear8 *lin, int p0, int p1, int m, const uint8_t *A,
                                int lda, int32_t *C, int ldc) {
    int groups = lin->k4 / 4;
    for (int i = 0; i < m; i++) {
        for (int p = p0; p < p1; p++) {
            const int8_t *w = lin->w + (size_t)p * (size_t)lin->k4 * SX_NR;
            int32_t acc[SX_NR] = {0};
            for (int g = 0; g < groups; g++) {
                const uint8_t *a = A + 4 * ((size_t)g * (size_t)lda + (size_t)i);
                for (int j = 0; j < SX_NR; j++)
                    for (int r = 0; r < 4; r++)
                        acc[j] += (int32_t)a[r] * w[(size_t)g * 64 + (size_t)j * 4 + r];
            }
            int nj = lin->n - p * SX_NR < SX_NR ? lin->n - p * SX_NR : SX_NR;
            memcpy(C + (size_t)i * (size_t)ldc + (p - p0) * SX_NR, acc, sizeof(int32_t) * (size_t)nj);
        }
    }
}

const sx_model_kernels sx_model_kernels_scalar = {
    .gemm_i8_rows = gemm_i8_rows_scalar,
    .quantize_u8 = sx_quantize_row,
    .dequant = dequant_scalar,
    .name = "scalar",
    .gemm_rows = gemm_rows_scalar,
    .gemm_mr = 4,
    .layernorm = layernorm_scalar,
    .gelu = gelu_scalar,
    .dot = dot_scalar,
    .axpy = axpy_scalar,
    .softmax = softmax_scalar,
    .pack_kt = sx_pack_kt_ref,
};

/* ---- dispatch ----------------------------------------------------------- */

int sx_model_kernels_supported(const sx_model_kernels *k) {
    if (!k || !k->name) return 0;
    if (k == &sx_model_kernels_scalar) return 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (k == &sx_model_kernels_avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == &sx_model_kernels_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma");
#elif defined(__aarch64__) && defined(__APPLE__)
    if (k == &sx_model_kernels_neon) return 1; /* every Apple arm64 CPU has dotprod */
#elif defined(__aarch64__) && defined(__linux__)
    if (k == &sx_model_kernels_neon) return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
    return 0;
}

static const sx_model_kernels *g_best;

const sx_model_kernels *sx_model_kernels_best(void) {
    const sx_model_kernels *best = __atomic_load_n(&g_best, __ATOMIC_ACQUIRE);
    if (best) return best;
    const sx_model_kernels *order[] = {&sx_model_kernels_avx512, &sx_model_kernels_avx2, &sx_model_kernels_neon,
                                 &sx_model_kernels_scalar};
    const char *force = getenv("SEMDEX_KERNELS");
    best = &sx_model_kernels_scalar;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!sx_model_kernels_supported(order[i])) continue;
        if (force && strcmp(force, order[i]->name) != 0) continue;
        best = order[i];
        break;
    }
    __atomic_store_n(&g_best, best, __ATOMIC_RELEASE);
    return best;
}
