/*
 * test-model.c - the safetensors reader, the kernels, the thread pool and the
 * BERT encoder.
 *
 * References: sentence-transformers' embeddings of 510 texts for
 * all-MiniLM-L6-v2 and transformers' outputs for small random BERTs of other
 * shapes and dtypes, written by scripts/gen-model-fixtures.py into
 * tests/fixtures/model/; every SIMD kernel table against the scalar one.
 */
#include "test.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../src/model/model.h"
#include "../src/index/index.h"
#include "../src/model/model_int.h"

#define MODEL "models/all-MiniLM-L6-v2"
#define FIX "tests/fixtures/model/"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

__attribute__((noinline)) static char *slurp(const char *path, size_t *len) {
    char *data;
    sx_err err = {0};
    CHECK_MSG(sx_read_file(path, &data, len, &err) == 0, "%s", err.msg);
    return data;
}

static float *read_f32(const char *path, size_t *n) {
    size_t len;
    char *data = slurp(path, &len);
    CHECK(len % 4 == 0);
    *n = len / 4;
    return (float *)(void *)data;
}

/* The lines of a JSON-lines file, parsed. */
static cJSON **read_jsonl(const char *path, int *n) {
    size_t len;
    char *data = slurp(path, &len);
    int cap = 16, cnt = 0;
    cJSON **out = malloc(sizeof *out * (size_t)cap);
    for (char *line = data, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        CHECK(nl);
        *nl = '\0';
        if (cnt == cap) out = realloc(out, sizeof *out * (size_t)(cap *= 2));
        out[cnt] = cJSON_Parse(line);
        CHECK_MSG(out[cnt], "%s: line %d is not JSON", path, cnt + 1);
        cnt++;
    }
    free(data);
    *n = cnt;
    return out;
}

static void free_jsonl(cJSON **v, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

static sx_encoder *load_enc(const char *dir, int threads) {
    sx_encoder *enc = NULL;
    sx_err err = {0};
    sx_encoder_opts o = {.n_threads = threads};
    CHECK_MSG(sx_encoder_load(dir, &o, &enc, &err) == 0, "%s", err.msg);
    return enc;
}

/* Cosine and max |difference| of two vectors. */
static void compare(const float *a, const float *b, int n, double *cos, double *maxdiff) {
    double ab = 0, aa = 0, bb = 0, md = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
        double d = fabs((double)a[i] - b[i]);
        if (d > md) md = d;
    }
    *cos = ab / (sqrt(aa * bb) + 1e-30);
    *maxdiff = md;
}

/* ---- kernels ------------------------------------------------------------ */

static uint64_t g_rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

static void check_close(const float *want, const float *got, int n, double rel, double abs_tol,
                        const char *what, const char *kname) {
    for (int i = 0; i < n; i++) {
        double tol = abs_tol + rel * fabs((double)want[i]);
        CHECK_MSG(fabs((double)want[i] - got[i]) <= tol, "%s (%s) [%d]: %.9g vs scalar %.9g", what,
                  kname, i, (double)got[i], (double)want[i]);
    }
}

/* Every SIMD kernel table this CPU runs against the scalar reference, on
 * random inputs of awkward sizes and on edge values. Float tolerance: 1e-5
 * relative for GEMM/LayerNorm/softmax sums (different summation order), 2e-7
 * absolute + 1e-6 relative for GELU and exp (polynomial approximations). */
void test_model_kernels_match_scalar(void) {
    const sx_model_kernels *tables[] = {&sx_model_kernels_avx2, &sx_model_kernels_avx512, &sx_model_kernels_neon};
    const sx_model_kernels *ref = &sx_model_kernels_scalar;
    int tested = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        const sx_model_kernels *k = tables[t];
        if (!sx_model_kernels_supported(k)) continue;
        tested++;
        /* GEMM over shapes with partial panels and odd k, m up to 16. */
        int shapes[][2] = {{1, 1}, {16, 16}, {17, 5}, {33, 31}, {40, 384}, {384, 32}, {100, 7}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int n = shapes[s][0], kk = shapes[s][1];
            float *W = malloc(sizeof(float) * (size_t)n * kk), *b = malloc(sizeof(float) * n);
            for (int i = 0; i < n * kk; i++) W[i] = frand();
            for (int i = 0; i < n; i++) b[i] = frand();
            sx_linear lin;
            CHECK(sx_linear_init(&lin, W, b, n, kk) == 0);
            /* m runs 1..16 plain, then 1..16 with the GELU epilogue. */
            for (int mg = 1; mg <= 32; mg++) {
                int m = (mg - 1) % 16 + 1;
                lin.gelu = mg > 16;
                int lda = kk + 3, ldc = n + 5;
                float *A = malloc(sizeof(float) * (size_t)m * lda);
                float *C0 = malloc(sizeof(float) * (size_t)m * ldc);
                float *C1 = malloc(sizeof(float) * (size_t)m * ldc);
                for (int i = 0; i < m * lda; i++) A[i] = frand();
                for (int i = 0; i < m * ldc; i++) C0[i] = C1[i] = 12345.0f; /* untouched gaps */
                for (int p0 = 0; p0 < lin.n_panels; p0 += 3) {
                    int p1 = p0 + 3 < lin.n_panels ? p0 + 3 : lin.n_panels;
                    ref->gemm_rows(&lin, p0, p1, m, A, lda, C0, ldc);
                    k->gemm_rows(&lin, p0, p1, m, A, lda, C1, ldc);
                }
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < ldc; j++) {
                        double w = C0[i * ldc + j], g = C1[i * ldc + j];
                        CHECK_MSG(fabs(w - g) <= 1e-5 * (1 + fabs(w)) + 1e-5 * sqrt(kk),
                                  "gemm (%s%s) n=%d k=%d m=%d [%d][%d]: %g vs %g", k->name,
                                  lin.gelu ? ", gelu" : "", n, kk, m, i, j, g, w);
                        if (j >= n) CHECK(C1[i * ldc + j] == 12345.0f);
                    }
                }
                free(A), free(C0), free(C1);
            }
            sx_linear_free(&lin);
            free(W), free(b);
        }
        /* Int8 GEMM: bit-exact, including extreme values (+-127 everywhere). */
        int shapes8[][2] = {{1, 1}, {16, 4}, {17, 5}, {33, 31}, {40, 384}, {384, 66}, {100, 7}};
        for (size_t s = 0; s < sizeof shapes8 / sizeof shapes8[0]; s++) {
            for (int extreme = 0; extreme < 2; extreme++) {
                int n = shapes8[s][0], kk = shapes8[s][1];
                float *W = malloc(sizeof(float) * (size_t)n * kk);
                for (int i = 0; i < n * kk; i++) W[i] = extreme ? (i % 3 ? -1.0f : 1.0f) : frand();
                sx_linear8 lin;
                float amax[400];
                for (int i = 0; i < kk; i++) amax[i] = 1 + (float)(i % 7);
                CHECK(sx_linear8_init(&lin, W, NULL, n, kk, s % 2 ? amax : NULL) == 0);
                for (int m = 1; m <= 16; m += (m < 4 ? 1 : 5)) {
                    int lda = m + 3, ldc = lin.n_panels * SX_NR + 3;
                    size_t asz = (size_t)lin.k4 * (size_t)lda;
                    uint8_t *A = malloc(asz), *A1 = malloc(asz);
                    int32_t *C0 = malloc(sizeof(int32_t) * (size_t)m * ldc);
                    int32_t *C1 = malloc(sizeof(int32_t) * (size_t)m * ldc);
                    memset(A, 0x5a, asz);
                    memcpy(A1, A, asz);
                    for (int i = 0; i < m; i++) {
                        float row[400];
                        for (int j = 0; j < kk; j++) row[j] = extreme ? (j % 2 ? 5.0f : -5.0f) : 3 * frand();
                        if (!extreme && i == 1) row[kk / 2] = 40; /* an outlier */
                        int32_t z0, z1;
                        float s0 = ref->quantize_u8(row, lin.in_mul, kk, lin.k4, A + 4 * i, 4 * (size_t)lda, &z0);
                        float s1 = k->quantize_u8(row, lin.in_mul, kk, lin.k4, A1 + 4 * i, 4 * (size_t)lda, &z1);
                        CHECK_MSG(s0 == s1 && z0 == z1, "quantize (%s) k=%d: scale %g/%g zero %d/%d",
                                  k->name, kk, s1, s0, z1, z0);
                        if (extreme)
                            for (int g = 0; g < lin.k4 / 4; g++)
                                for (int r = 0; r < 4 && 4 * g + r < kk; r++)
                                    A[4 * ((size_t)g * lda + i) + r] = A1[4 * ((size_t)g * lda + i) + r] = 255;
                    }
                    CHECK_MSG(memcmp(A, A1, asz) == 0, "quantize (%s) k=%d: bytes differ", k->name, kk);
                    for (int i = 0; i < m * ldc; i++) C0[i] = C1[i] = 777;
                    int p0 = lin.n_panels > 1 ? 1 : 0;
                    ref->gemm_i8_rows(&lin, p0, lin.n_panels, m, A, lda, C0, ldc);
                    k->gemm_i8_rows(&lin, p0, lin.n_panels, m, A, lda, C1, ldc);
                    for (int i = 0; i < m * ldc; i++)
                        CHECK_MSG(C0[i] == C1[i], "gemm_i8 (%s) n=%d k=%d m=%d [%d]: %d vs %d", k->name,
                                  n, kk, m, i, C1[i], C0[i]);
                    /* The epilogue, float tolerance. */
                    float d0[400], d1[400];
                    int nd = n < 400 ? n : 400;
                    for (int gelu = 0; gelu < 2; gelu++) {
                        ref->dequant(C0, nd, 17, lin.colsum, 0.01f, lin.scale, lin.bias, d0, gelu);
                        k->dequant(C0, nd, 17, lin.colsum, 0.01f, lin.scale, lin.bias, d1, gelu);
                        check_close(d0, d1, nd, 1e-6, 1e-6, gelu ? "dequant+gelu" : "dequant", k->name);
                    }
                    free(A), free(A1), free(C0), free(C1);
                }
                sx_linear8_free(&lin);
                free(W);
            }
        }
        /* Element-wise kernels over sizes 1..70 and 384. */
        for (int n = 1; n <= 385; n = n < 70 ? n + 1 : n == 70 ? 384 : n + 1) {
            float x[400], y0[400], y1[400], r[400], g[400], bb[400];
            for (int i = 0; i < n; i++) x[i] = 4 * frand(), r[i] = frand(), g[i] = frand(), bb[i] = frand();
            memcpy(y0, x, sizeof x), memcpy(y1, x, sizeof x);
            ref->layernorm(y0, r, g, bb, n, 1e-12f);
            k->layernorm(y1, r, g, bb, n, 1e-12f);
            check_close(y0, y1, n, 1e-5, 1e-5, "layernorm", k->name);
            memcpy(y0, x, sizeof x), memcpy(y1, x, sizeof x);
            ref->layernorm(y0, NULL, g, bb, n, 1e-5f);
            k->layernorm(y1, NULL, g, bb, n, 1e-5f);
            check_close(y0, y1, n, 1e-5, 1e-5, "layernorm", k->name);
            memcpy(y0, x, sizeof x), memcpy(y1, x, sizeof x);
            ref->gelu(y0, n);
            k->gelu(y1, n);
            check_close(y0, y1, n, 1e-6, 4e-7, "gelu", k->name);
            memcpy(y0, x, sizeof x), memcpy(y1, x, sizeof x);
            for (int i = 0; i < n; i++) y0[i] *= 10, y1[i] *= 10;
            ref->softmax(y0, 1, n, (size_t)n);
            k->softmax(y1, 1, n, (size_t)n);
            check_close(y0, y1, n, 1e-5, 1e-8, "softmax", k->name);
            float d0 = ref->dot(x, r, n), d1 = k->dot(x, r, n);
            CHECK_MSG(fabs(d0 - d1) <= 1e-5 * (1 + n), "dot (%s) n=%d: %g vs %g", k->name, n, d1, d0);
            memcpy(y0, g, sizeof g), memcpy(y1, g, sizeof g);
            ref->axpy(y0, 0.37f, x, n);
            k->axpy(y1, 0.37f, x, n);
            check_close(y0, y1, n, 1e-6, 1e-6, "axpy", k->name);
        }
        /* Attention key packing (a scaled transpose): bit-exact. */
        int pk_n[] = {1, 7, 16, 20, 32, 33, 64};
        for (size_t a = 0; a < sizeof pk_n / sizeof pk_n[0]; a++)
            for (int rows = 1; rows <= SX_NR; rows++) {
                int n = pk_n[a];
                size_t ld = (size_t)n + 5;
                float *src = malloc(sizeof(float) * ld * SX_NR);
                float *d0 = malloc(sizeof(float) * (size_t)n * SX_NR);
                float *d1 = malloc(sizeof(float) * (size_t)n * SX_NR);
                for (size_t i = 0; i < ld * SX_NR; i++) src[i] = frand();
                for (int i = 0; i < n * SX_NR; i++) d0[i] = d1[i] = 12345.0f;
                ref->pack_kt(src, ld, rows, n, 0.17677669f, d0);
                k->pack_kt(src, ld, rows, n, 0.17677669f, d1);
                CHECK_MSG(memcmp(d0, d1, sizeof(float) * (size_t)n * SX_NR) == 0,
                          "pack_kt (%s) rows %d n %d differs from scalar", k->name, rows, n);
                free(src), free(d0), free(d1);
            }
        /* Edge values. */
        float e[] = {0, -0.0f, 1e-30f, -1e-30f, 5.9f, -5.9f, 10, -10, 30, -30, 1e4f, -1e4f,
                     3e38f, -3e38f, 0.5f, -0.5f, 2.5f};
        int ne = (int)(sizeof e / sizeof e[0]);
        float y0[32], y1[32];
        memcpy(y0, e, sizeof e), memcpy(y1, e, sizeof e);
        ref->gelu(y0, ne);
        k->gelu(y1, ne);
        check_close(y0, y1, ne, 1e-6, 4e-7, "gelu edge", k->name);
        float s0[20] = {-1e30f, 0, 88, -88, 50, -INFINITY, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        float s1[20];
        memcpy(s1, s0, sizeof s0);
        ref->softmax(s0, 1, 17, 17);
        k->softmax(s1, 1, 17, 17);
        check_close(s0, s1, 17, 1e-5, 1e-8, "softmax edge", k->name);
        /* LayerNorm of rows wider than a kernel's local copy (AVX-512: 1,024). */
        for (int n = 1023; n <= 1100; n += 77) {
            float *x = malloc(sizeof(float) * 5 * (size_t)n), *w0 = x + n, *w1 = x + 2 * n;
            float *r = x + 3 * n, *g = x + 4 * n;
            for (int i = 0; i < n; i++) x[i] = 4 * frand(), r[i] = frand(), g[i] = frand();
            for (int with_r = 0; with_r < 2; with_r++) {
                memcpy(w0, x, sizeof(float) * (size_t)n), memcpy(w1, x, sizeof(float) * (size_t)n);
                ref->layernorm(w0, with_r ? r : NULL, g, r, n, 1e-5f);
                k->layernorm(w1, with_r ? r : NULL, g, r, n, 1e-5f);
                check_close(w0, w1, n, 1e-5, 1e-5, "layernorm wide", k->name);
            }
            free(x);
        }
        /* Whole blocks of rows (attention scores: rows x n, ld apart). */
        for (int rows = 1; rows <= 34; rows += rows < 18 ? 1 : 16)
            for (int n = 1; n <= 70; n += n < 34 ? 1 : n < 64 ? 15 : 1) {
                size_t ld = (size_t)n + 3, sz = (size_t)rows * ld;
                float *m0 = malloc(sz * sizeof *m0), *m1 = malloc(sz * sizeof *m1);
                for (size_t i = 0; i < sz; i++) m0[i] = m1[i] = 10 * frand();
                ref->softmax(m0, rows, n, ld);
                k->softmax(m1, rows, n, ld);
                check_close(m0, m1, (int)sz, 1e-5, 1e-8, "softmax rows", k->name);
                free(m0), free(m1);
            }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) CHECK_MSG(tested >= 2, "AVX-512 CPU but %d tables", tested);
#endif
    CHECK(sx_model_kernels_best() != NULL);
}

/* SEMDEX_TEST_EMBED_STEP=N (over 1; make cross-arm64-test sets it under
 * QEMU): the encoder tests keep every Nth reference text; else dflt. */
static int embed_step(int dflt) {
    const char *every = getenv("SEMDEX_TEST_EMBED_STEP");
    return every && atoi(every) > 1 ? atoi(every) : dflt;
}

/* The int8 path against the fp32 reference: every text's cosine >= 0.995,
 * and the top-10 papers of each query (60 queries over the fixture's 450
 * other texts) overlap those of fp32 by >= 0.95 on average. */
void test_model_int8_close_to_fp32(void) {
    int n_lines;
    cJSON **lines = read_jsonl(FIX "embed.jsonl", &n_lines);
    int n = n_lines;
    size_t nf;
    float *want = read_f32(FIX "embed.f32", &nf);
    sx_encoder *enc = NULL;
    sx_err err = {0};
    sx_encoder_opts o = {.n_threads = 0, .int8 = 1};
    CHECK_MSG(sx_encoder_load(MODEL, &o, &enc, &err) == 0, "%s", err.msg);
    CHECK(strstr(sx_encoder_describe(enc), "int8") != NULL);
    /* Under ASan (3x slower) the first 100 texts: 60 queries, the edge cases
     * and some titles; the retrieval check below then runs on that. Under
     * QEMU (SEMDEX_TEST_EMBED_STEP=N, make cross-arm64-test) the 60 queries
     * and every Nth other text. */
    if (UNDER_ASAN && n > 100) n = 100;
    int step = embed_step(1);
    const char **texts = malloc(sizeof *texts * (size_t)n);
    size_t *lens = malloc(sizeof *lens * (size_t)n);
    int *idx = malloc(sizeof *idx * (size_t)n);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (i >= 60 && (i - 60) % step) continue;
        texts[m] = lines[i]->valuestring, lens[m] = strlen(texts[m]), idx[m++] = i;
    }
    n = m;
    /* want in the order of texts (idx[i] >= i, so in place) */
    for (int i = 0; i < n; i++) memmove(want + (size_t)i * 384, want + (size_t)idx[i] * 384, 384 * sizeof(float));
    float *got = malloc(sizeof(float) * 384 * (size_t)n);
    CHECK_MSG(sx_encoder_embed(enc, n, texts, lens, got, &err) == 0, "%s", err.msg);
    double worst = 1, sum = 0;
    for (int i = 0; i < n; i++) {
        double cos, md;
        compare(got + (size_t)i * 384, want + (size_t)i * 384, 384, &cos, &md);
        CHECK_MSG(cos >= 0.995, "text %d (\"%.50s\"): int8 cosine %.5f", idx[i], texts[i], cos);
        if (cos < worst) worst = cos;
        sum += cos;
    }
    /* The first 60 texts are the queries (see scripts/gen-model-fixtures.py). */
    int nq = 60, overlap = 0;
    for (int q = 0; q < nq; q++) {
        int top[2][10];
        for (int which = 0; which < 2; which++) {
            const float *E = which ? got : want;
            double best[10];
            for (int r = 0; r < 10; r++) best[r] = -2, top[which][r] = -1;
            for (int d = nq; d < n; d++) {
                double dot = 0;
                for (int j = 0; j < 384; j++) dot += (double)E[(size_t)q * 384 + j] * E[(size_t)d * 384 + j];
                for (int r = 0; r < 10; r++) {
                    if (dot > best[r]) {
                        for (int u = 9; u > r; u--) best[u] = best[u - 1], top[which][u] = top[which][u - 1];
                        best[r] = dot, top[which][r] = d;
                        break;
                    }
                }
            }
        }
        for (int a = 0; a < 10; a++)
            for (int b = 0; b < 10; b++) overlap += top[0][a] == top[1][b];
    }
    double ov = overlap / (10.0 * nq);
    printf("    int8 vs fp32: worst cosine %.5f, mean %.5f, top-10 overlap %.3f\n", worst, sum / n, ov);
    CHECK_MSG(ov >= 0.95, "top-10 overlap %.3f", ov);
    free(got), free(texts), free(lens), free(idx), free(want);
    free_jsonl(lines, n_lines);
    sx_encoder_free(enc);
}

void test_model_half_conversions(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        int exp = (h >> 10) & 0x1f, mant = h & 0x3ff, neg = h >> 15;
        double want;
        if (exp == 31) want = mant ? NAN : INFINITY;
        else if (exp == 0) want = ldexp(mant, -24);
        else want = ldexp(1024 + mant, exp - 25);
        if (neg) want = -want;
        float got = sx_f16_to_f32((uint16_t)h);
        if (isnan(want)) CHECK_MSG(isnan(got), "f16 %04x", h);
        else CHECK_MSG((double)got == want && !!signbit(got) == neg, "f16 %04x: %g vs %g", h,
                       (double)got, want);
    }
    CHECK(sx_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(sx_bf16_to_f32(0xc040) == -3.0f);
    CHECK(isinf(sx_bf16_to_f32(0x7f80)));
}

/* The kernel tables chosen at start-up. With SEMDEX_EXPECT_KERNELS set
 * ("model=neon index=neon", as `make cross-arm64-test` sets it under QEMU)
 * they must be those: the cross-checks above prove nothing about NEON when
 * dispatch quietly picked scalar. */
void test_model_kernels_dispatch(void) {
    char got[64];
    snprintf(got, sizeof got, "model=%s index=%s", sx_model_kernels_best()->name, sx_kernels_best()->name);
    printf("    kernels chosen: %s\n", got);
    const char *want = getenv("SEMDEX_EXPECT_KERNELS");
    if (want && *want) CHECK_MSG(strcmp(got, want) == 0, "kernels chosen: %s, expected %s", got, want);
}

typedef struct {
    int *hits;
    int threads_seen[64];
} pool_ctx;

static void pool_fn(void *ctx, int begin, int end, int tid) {
    pool_ctx *c = ctx;
    for (int i = begin; i < end; i++) __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
    c->threads_seen[tid] = 1;
}

/* Many short jobs back to back with different task counts and contexts
 * (a late worker must never run a task twice or with the wrong context),
 * and a job larger than one ticket holds. */
void test_model_pool_concurrent_runs_every_task_once(void) {
    for (int threads = 1; threads <= 4; threads++) {
        sx_model_pool *p;
        sx_err err = {0};
        CHECK(sx_model_pool_create(threads, &p, &err) == 0);
        CHECK_EQ(sx_model_pool_threads(p), threads);
        for (int round = 0; round < 3000; round++) {
            int n = (round * 7) % 37;
            int hits[40] = {0};
            pool_ctx c = {.hits = hits};
            sx_model_pool_run(p, n, pool_fn, &c);
            for (int i = 0; i < 40; i++)
                CHECK_MSG(hits[i] == (i < n), "round %d: task %d of %d ran %d times", round, i, n,
                          hits[i]);
        }
        int big = 70000;
        int *hits = calloc((size_t)big, sizeof(int));
        pool_ctx c = {.hits = hits};
        sx_model_pool_run(p, big, pool_fn, &c);
        for (int i = 0; i < big; i++) CHECK_MSG(hits[i] == 1, "big job: task %d ran %d times", i, hits[i]);
        free(hits);
        sx_model_pool_free(p);
    }
    int hits[3] = {0};
    pool_ctx c = {.hits = hits};
    sx_model_pool_run(NULL, 3, pool_fn, &c);
    CHECK(hits[0] == 1 && hits[1] == 1 && hits[2] == 1);
}

/* ---- safetensors -------------------------------------------------------- */

/* Builds a safetensors image: header JSON + data bytes. */
static unsigned char *st_image(const char *header, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    unsigned char *img = calloc(1, *size + 1);
    sx_le64_put(img, hl);
    memcpy(img + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) img[8 + hl + i] = (unsigned char)(i * 7);
    return img;
}

static void expect_st_error(const char *header, size_t data_len, const char *what) {
    size_t size;
    unsigned char *img = st_image(header, data_len, &size);
    sx_st_file *f = (sx_st_file *)1;
    sx_err err = {0};
    int rc = sx_st_parse(img, size, "x.safetensors", &f, &err);
    CHECK_MSG(rc == SX_ECORRUPT, "header %s: rc %d", header, rc);
    CHECK(f == NULL);
    CHECK_MSG(strstr(err.msg, what) && strstr(err.msg, "x.safetensors"),
              "header %s: message \"%s\" lacks \"%s\"", header, err.msg, what);
    free(img);
}

void test_model_safetensors_parse(void) {
    size_t size;
    unsigned char *img = st_image(
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[28,30]},"
        "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[30,38]}}   ",
        38, &size);
    /* data: a = 0..5 as floats, h = {1.0, -2.0}, b = 1.0 */
    float a[6] = {0, 1, 2, 3, 4, 5};
    size_t hl = size - 8 - 38;
    memcpy(img + 8 + hl, a, 24);
    unsigned char h[4] = {0x00, 0x3c, 0x00, 0xc0}, b[2] = {0x80, 0x3f};
    memcpy(img + 8 + hl + 24, h, 4);
    memcpy(img + 8 + hl + 28, b, 2);
    sx_st_file *f;
    sx_err err = {0};
    CHECK_MSG(sx_st_parse(img, size, "mem", &f, &err) == 0, "%s", err.msg);
    CHECK_EQ(sx_st_count(f), 4);
    const sx_st_tensor *t = sx_st_find(f, "a");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->dtype == SX_DT_F32);
    CHECK(sx_st_find(f, "__metadata__") == NULL && sx_st_find(f, "zz") == NULL);
    float out[6];
    int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d2[1] = {2}, d1[1] = {1};
    CHECK(sx_st_read_f32(f, "a", 2, d23, out, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK(out[i] == (float)i);
    CHECK(sx_st_read_f32(f, "h", 1, d2, out, &err) == 0);
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
    CHECK(sx_st_read_f32(f, "b", 0, NULL, out, &err) == 0);
    CHECK(out[0] == 1.0f);
    CHECK(sx_st_read_f32(f, "a", 2, d32, out, &err) == SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "tensor 'a' has shape [2, 3], expected [3, 2]"), "%s", err.msg);
    CHECK(sx_st_read_f32(f, "i", 1, d1, out, &err) == SX_EUNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "dtype I64; expected F32, F16 or BF16"), "%s", err.msg);
    CHECK(sx_st_read_f32(f, "nope", 1, d1, out, &err) == SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "mem: no tensor 'nope'"), "%s", err.msg);
    sx_st_close(f);
    free(img);

    expect_st_error("{", 0, "not a JSON object");
    expect_st_error("[1,2]", 0, "not a JSON object");
    expect_st_error("{} x", 0, "bytes after the JSON header");
    expect_st_error("{\"a\":1}", 0, "is not an object");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks dtype");
    expect_st_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'Q4'");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "bad shape");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "bad shape");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                    "9 dimensions");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                    "\"data_offsets\":[0,4]}}", 4, "too large");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", 8, "bad data_offsets");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "bad data_offsets");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "truncated file");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12");
    expect_st_error("{\"__metadata__\":3}", 0, "__metadata__ is not an object");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'a' appears twice");
    /* Header length larger than the file, and files too short to hold one. */
    unsigned char small[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
    CHECK(sx_st_parse(small, 8, "s", &f, &err) == SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "header length 65535 does not fit"), "%s", err.msg);
    CHECK(sx_st_parse(small, 5, "s", &f, &err) == SX_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "too short"), "%s", err.msg);
}

/* ---- the encoder --------------------------------------------------------- */

/* all-MiniLM-L6-v2 against sentence-transformers on 510 texts (queries, edge
 * cases, titles, abstracts of which 76 exceed 256 tokens), embedded in one
 * batch, then some again one by one. */
void test_model_embed_matches_reference(void) {
    int n;
    cJSON **lines = read_jsonl(FIX "embed.jsonl", &n);
    size_t nf;
    float *want = read_f32(FIX "embed.f32", &nf);
    CHECK(n >= 500);
    CHECK_EQ(nf, (size_t)n * 384);
    sx_encoder *enc = load_enc(MODEL, 0);
    CHECK_EQ(sx_encoder_dim(enc), 384);
    CHECK_EQ(sx_encoder_max_len(enc), 256);
    /* Under ASan (3x slower) a third of the texts keeps the suite short;
     * under QEMU (make cross-arm64-test) SEMDEX_TEST_EMBED_STEP=N keeps
     * every Nth. */
    int step = embed_step(UNDER_ASAN ? 3 : 1);
    int m = 0;
    const char **texts = malloc(sizeof *texts * (size_t)n);
    size_t *lens = malloc(sizeof *lens * (size_t)n);
    int *idx = malloc(sizeof *idx * (size_t)n);
    for (int i = 0; i < n; i += step) {
        CHECK(cJSON_IsString(lines[i]));
        texts[m] = lines[i]->valuestring;
        lens[m] = strlen(texts[m]);
        idx[m++] = i;
    }
    float *got = malloc(sizeof(float) * 384 * (size_t)m);
    sx_err err = {0};
    CHECK_MSG(sx_encoder_embed(enc, m, texts, lens, got, &err) == 0, "%s", err.msg);
    double worst_cos = 1, worst_diff = 0;
    for (int i = 0; i < m; i++) {
        double cos, md;
        compare(got + (size_t)i * 384, want + (size_t)idx[i] * 384, 384, &cos, &md);
        CHECK_MSG(cos >= 0.99999 && md <= 1e-4, "text %d (\"%.50s\"): cosine %.7f, max diff %.2g",
                  idx[i], texts[i], cos, md);
        if (cos < worst_cos) worst_cos = cos;
        if (md > worst_diff) worst_diff = md;
    }
    /* One at a time gives the same vectors as the batch. */
    for (int i = 0; i < m; i += 37) {
        float one[384];
        CHECK(sx_encoder_embed(enc, 1, &texts[i], &lens[i], one, &err) == 0);
        for (int j = 0; j < 384; j++) CHECK_NEAR(one[j], got[(size_t)i * 384 + j], 1e-5);
    }
    printf("    %d texts: worst cosine %.8f, worst max |diff| %.2g\n", m, worst_cos, worst_diff);
    free(got), free(texts), free(lens), free(idx), free(want);
    free_jsonl(lines, n);
    sx_encoder_free(enc);
}

/* Small random BERTs of other shapes, dtypes, prefixes and poolings against
 * transformers: the hidden states and the pooled embeddings, 1e-4. */
void test_model_random_berts_match_transformers(void) {
    const char *names[] = {"bert-tiny-f32", "bert-odd-f16", "bert-head12-bf16", "bert-wide-f32"};
    for (size_t mi = 0; mi < sizeof names / sizeof names[0]; mi++) {
        char dir[256], path[300];
        snprintf(dir, sizeof dir, FIX "%s", names[mi]);
        for (int threads = 1; threads <= 3; threads += 2) {
            sx_encoder *enc = load_enc(dir, threads);
            int H = sx_encoder_dim(enc);
            int n;
            snprintf(path, sizeof path, "%s/cases.jsonl", dir);
            cJSON **cases = read_jsonl(path, &n);
            size_t nh, np;
            snprintf(path, sizeof path, "%s/hidden.f32", dir);
            float *hidden = read_f32(path, &nh);
            snprintf(path, sizeof path, "%s/pooled.f32", dir);
            float *pooled = read_f32(path, &np);
            CHECK_EQ(np, (size_t)n * H);
            size_t hpos = 0;
            sx_err err = {0};
            for (int c = 0; c < n; c++) {
                const char *text = cJSON_GetObjectItem(cases[c], "text")->valuestring;
                const cJSON *jids = cJSON_GetObjectItem(cases[c], "ids");
                int len = cJSON_GetArraySize(jids);
                int32_t ids[512];
                for (int i = 0; i < len; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
                /* Our tokenizer gives the same ids. */
                int32_t mine[512];
                int nm;
                CHECK(sx_tokenizer_encode(sx_encoder_tokenizer(enc), text, strlen(text), mine, 512,
                                          &nm, &err) == 0);
                CHECK_EQ(nm, len);
                for (int i = 0; i < len; i++) CHECK_EQ(mine[i], ids[i]);
                float *h = malloc(sizeof(float) * (size_t)len * H);
                CHECK_MSG(sx_encoder_hidden(enc, ids, len, h, &err) == 0, "%s", err.msg);
                CHECK(hpos + (size_t)len * H <= nh);
                for (int i = 0; i < len * H; i++)
                    CHECK_MSG(fabs(h[i] - hidden[hpos + i]) <= 1e-4, "%s case %d hidden[%d]: %g vs %g",
                              names[mi], c, i, (double)h[i], (double)hidden[hpos + i]);
                hpos += (size_t)len * H;
                float v[256];
                size_t tl = strlen(text);
                CHECK(sx_encoder_embed(enc, 1, &text, &tl, v, &err) == 0);
                for (int j = 0; j < H; j++)
                    CHECK_MSG(fabs(v[j] - pooled[(size_t)c * H + j]) <= 1e-4, "%s case %d pooled[%d]",
                              names[mi], c, j);
                free(h);
            }
            CHECK_EQ(hpos, nh);
            free(hidden), free(pooled);
            free_jsonl(cases, n);
            sx_encoder_free(enc);
        }
    }
}

void test_model_embed_edges(void) {
    sx_encoder *enc = load_enc(MODEL, 2);
    sx_err err = {0};
    float out[3 * 384];
    const char *texts[] = {"", "fine", "bad \xc3( utf8"};
    size_t lens[] = {0, 4, 12};
    CHECK(sx_encoder_embed(enc, 2, texts, lens, out, &err) == 0);
    double norm = 0;
    for (int j = 0; j < 384; j++) {
        CHECK(isfinite(out[j]));
        norm += (double)out[j] * out[j];
    }
    CHECK_NEAR(norm, 1.0, 1e-5);
    for (int j = 0; j < 3 * 384; j++) out[j] = 7.0f;
    CHECK(sx_encoder_embed(enc, 3, texts, lens, out, &err) == SX_EINVAL);
    CHECK_MSG(strstr(err.msg, "text 2: invalid UTF-8 at byte offset 4"), "%s", err.msg);
    for (int j = 0; j < 3 * 384; j++) CHECK(out[j] == 7.0f);
    CHECK(sx_encoder_embed(enc, 0, texts, lens, out, &err) == 0);
    /* Ids: out of range, too long. */
    int32_t ids[3] = {101, 30522, 102};
    const int32_t *pid = ids;
    int nid = 3;
    CHECK(sx_encoder_embed_ids(enc, 1, &pid, &nid, out, &err) == SX_EINVAL);
    CHECK_MSG(strstr(err.msg, "token id 30522 out of range"), "%s", err.msg);
    nid = 257;
    CHECK(sx_encoder_embed_ids(enc, 1, &pid, &nid, out, &err) == SX_EINVAL);
    CHECK(sx_encoder_hidden(enc, ids, 0, out, &err) == SX_EINVAL);
    CHECK(strstr(sx_encoder_describe(enc), "6 layers") != NULL);
    sx_encoder_free(enc);
}

typedef struct {
    sx_encoder *enc;
    const char **texts;
    size_t *lens;
    int n;
    float *out;
    int rc;
} embed_job;

static void *embed_thread(void *arg) {
    embed_job *j = arg;
    sx_err err = {0};
    for (int r = 0; r < 3 && j->rc == 0; r++)
        j->rc = sx_encoder_embed(j->enc, j->n, j->texts, j->lens, j->out, &err);
    return NULL;
}

/* Several threads embedding at once (one owns the pool, the others run on
 * their own) get the same vectors as one thread alone. */
void test_model_concurrent_embed(void) {
    sx_encoder *enc = load_enc(MODEL, 2);
    const char *texts[] = {"graph neural networks for molecules", "dark matter detection",
                           "quantum error correction with surface codes", "",
                           ("a longer text about transformers, attention, and sentence embeddings "
                            "for semantic search over scientific papers")};
    size_t lens[5];
    for (int i = 0; i < 5; i++) lens[i] = strlen(texts[i]);
    float want[5 * 384];
    sx_err err = {0};
    CHECK(sx_encoder_embed(enc, 5, texts, lens, want, &err) == 0);
    enum { NT = 4 };
    pthread_t th[NT];
    embed_job jobs[NT];
    float outs[NT][5 * 384];
    for (int t = 0; t < NT; t++) {
        jobs[t] = (embed_job){enc, texts + (t % 2), lens + (t % 2), 5 - (t % 2), outs[t], 0};
        CHECK(pthread_create(&th[t], NULL, embed_thread, &jobs[t]) == 0);
    }
    for (int t = 0; t < NT; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ(jobs[t].rc, 0);
        for (int i = 0; i < jobs[t].n * 384; i++)
            CHECK_NEAR(outs[t][i], want[(t % 2) * 384 + i], 1e-5);
    }
    sx_encoder_free(enc);
}

static void copy_file(const char *from, const char *to, size_t max_len) {
    size_t len;
    char *data = slurp(from, &len);
    FILE *f = fopen(to, "wb");
    CHECK(f);
    fwrite(data, 1, len < max_len ? len : max_len, f);
    fclose(f);
    free(data);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

static void expect_load_fail(const char *dir, const char *what) {
    sx_encoder *enc = (sx_encoder *)1;
    sx_err err = {0};
    int rc = sx_encoder_load(dir, NULL, &enc, &err);
    CHECK_MSG(rc < 0, "loading %s should fail (%s)", dir, what);
    CHECK(enc == NULL);
    CHECK_MSG(strstr(err.msg, what), "message \"%s\" lacks \"%s\"", err.msg, what);
}

/* Broken model folders: one clear error naming the file and the problem. */
void test_model_bad_model_files(void) {
    const char *src = FIX "bert-tiny-f32";
    char dir[256], p[400], s[400];
    snprintf(dir, sizeof dir, "%s/m", test_tmpdir());
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(p, sizeof p, "%s/1_Pooling", dir);
    CHECK(mkdir(p, 0700) == 0);
    const char *files[] = {"config.json", "vocab.txt", "tokenizer_config.json", "modules.json",
                           "1_Pooling/config.json", "model.safetensors"};
    expect_load_fail(dir, "config.json: cannot open");
    for (int i = 0; i < 6; i++) {
        snprintf(s, sizeof s, "%s/%s", src, files[i]);
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        copy_file(s, p, SIZE_MAX);
    }
    sx_encoder *enc = load_enc(dir, 1); /* the copy loads */
    sx_encoder_free(enc);
    char cfgp[400], stp[400], stsrc[400];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    snprintf(stp, sizeof stp, "%s/model.safetensors", dir);
    snprintf(stsrc, sizeof stsrc, "%s/model.safetensors", src);
    /* Truncated weights. */
    copy_file(stsrc, stp, 50000);
    expect_load_fail(dir, "model.safetensors: tensor");
    expect_load_fail(dir, "truncated file");
    copy_file(stsrc, stp, 6);
    expect_load_fail(dir, "too short");
    write_text(stp, "this is not a safetensors file at all");
    expect_load_fail(dir, "does not fit");
    remove(stp);
    expect_load_fail(dir, "model.safetensors: cannot open");
    copy_file(stsrc, stp, SIZE_MAX);
    /* Config disagreeing with the tensors, or unsupported. */
    size_t len;
    char *cfg = slurp(cfgp, &len);
    char *bad = malloc(len + 100);
    char *at = strstr(cfg, "\"hidden_size\": 32");
    CHECK(at);
    snprintf(bad, len + 100, "%.*s\"hidden_size\": 64%s", (int)(at - cfg), cfg, at + 17);
    write_text(cfgp, bad);
    expect_load_fail(dir, "has shape [");
    expect_load_fail(dir, "expected [");
    at = strstr(cfg, "\"hidden_act\": \"gelu\"");
    CHECK(at);
    snprintf(bad, len + 100, "%.*s\"hidden_act\": \"swish\"%s", (int)(at - cfg), cfg, at + 20);
    write_text(cfgp, bad);
    expect_load_fail(dir, "hidden_act \"swish\" is not supported");
    write_text(cfgp, "{\"hidden_size\": 32}");
    expect_load_fail(dir, "config.json: missing \"num_hidden_layers\"");
    write_text(cfgp, "{\"hidden_size\": 30, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                     "\"intermediate_size\": 64, \"vocab_size\": 100}");
    expect_load_fail(dir, "not a multiple of num_attention_heads");
    write_text(cfgp, "not json");
    expect_load_fail(dir, "config.json: not a JSON object");
    write_text(cfgp, cfg);
    /* A tensor with a wrong dtype. */
    size_t slen;
    char *st = slurp(stsrc, &slen);
    char *dt = memmem(st, slen, "\"F32\"", 5);
    CHECK(dt);
    memcpy(dt, "\"I32\"", 5);
    FILE *f = fopen(stp, "wb");
    CHECK(f);
    fwrite(st, 1, slen, f);
    fclose(f);
    expect_load_fail(dir, "dtype I32; expected F32, F16 or BF16");
    free(st);
    /* Unknown pooling. */
    copy_file(stsrc, stp, SIZE_MAX);
    snprintf(p, sizeof p, "%s/1_Pooling/config.json", dir);
    write_text(p, "{\"pooling_mode_max_tokens\": true}");
    expect_load_fail(dir, "only mean or CLS pooling");
    free(cfg);
    free(bad);
}
