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
    lin->w = NULL;
    lin->bias = NULL;
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

static void softmax_scalar(float *x, int n) {
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

const sx_model_kernels sx_model_kernels_scalar = {
    .name = "scalar",
    .gemm_rows = gemm_rows_scalar,
    .gemm_mr = 4,
    .layernorm = layernorm_scalar,
    .gelu = gelu_scalar,
    .dot = dot_scalar,
    .axpy = axpy_scalar,
    .softmax = softmax_scalar,
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
               __builtin_cpu_supports("fma");
#elif defined(__aarch64__)
    if (k == &sx_model_kernels_neon) return 1;
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
