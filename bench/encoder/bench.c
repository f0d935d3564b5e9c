/*
 * bench.c - semdex's side of bench/encoder (run by bench/encoder/run, which
 * also runs the Python peers and prints the table).
 *
 *   encoder-bench query  MODEL THREADS INT8 REPS TEXT     single-query latency
 *   encoder-bench bulk   MODEL THREADS INT8 BATCH FILE    throughput on JSON lines
 *   encoder-bench gemm   M N K REPS                       own GEMM vs OpenBLAS, 1 thread
 *
 * query and bulk print one line of key=value pairs (p50_ms, p99_ms, texts_per_s,
 * peak_rss_mb, ...) that the driver parses. Timings are wall-clock medians over
 * repetitions; the first repetitions warm caches and are dropped.
 */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/common/sx.h"
#include "../../src/model/model.h"
#include "../../src/model/model_int.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static sx_encoder *load(const char *model, int threads, int int8) {
    sx_encoder_opts o = {.n_threads = threads, .int8 = int8};
    sx_encoder *enc;
    sx_err err = {0};
    if (sx_encoder_load(model, &o, &enc, &err) < 0) {
        fprintf(stderr, "encoder-bench: %s\n", err.msg);
        exit(1);
    }
    return enc;
}

static int bench_query(const char *model, int threads, int int8, int reps, const char *text) {
    size_t rss0 = sx_current_rss();
    sx_encoder *enc = load(model, threads, int8);
    float v[4096];
    size_t len = strlen(text);
    sx_err err = {0};
    int32_t ids[512];
    int n_ids = 0;
    sx_tokenizer_encode(sx_encoder_tokenizer(enc), text, len, ids, 512, &n_ids, &err);
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < 20; i++) sx_encoder_embed(enc, 1, &text, &len, v, &err);
    for (int i = 0; i < reps; i++) {
        double t0 = sx_now();
        if (sx_encoder_embed(enc, 1, &text, &len, v, &err) < 0) {
            fprintf(stderr, "encoder-bench: %s\n", err.msg);
            return 1;
        }
        t[i] = (sx_now() - t0) * 1e3;
    }
    printf("tokens=%d p50_ms=%.3f p99_ms=%.3f peak_rss_mb=%.1f model_rss_mb=%.1f desc=\"%s\"\n",
           n_ids, pct(t, reps, 0.5), pct(t, reps, 0.99), sx_peak_rss() / 1048576.0,
           (sx_current_rss() - rss0) / 1048576.0, sx_encoder_describe(enc));
    free(t);
    sx_encoder_free(enc);
    return 0;
}

static int bench_bulk(const char *model, int threads, int int8, int batch, const char *path) {
    char *data;
    size_t size;
    sx_err err = {0};
    if (sx_read_file(path, &data, &size, &err) < 0) {
        fprintf(stderr, "encoder-bench: %s\n", err.msg);
        return 1;
    }
    int cap = 1024, n = 0;
    char **texts = malloc(sizeof *texts * (size_t)cap);
    size_t *lens = malloc(sizeof *lens * (size_t)cap);
    for (char *line = data, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break;
        *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsString(j)) {
            fprintf(stderr, "encoder-bench: %s: line %d is not a JSON string\n", path, n + 1);
            return 1;
        }
        if (n == cap) {
            cap *= 2;
            texts = realloc(texts, sizeof *texts * (size_t)cap);
            lens = realloc(lens, sizeof *lens * (size_t)cap);
        }
        texts[n] = strdup(j->valuestring);
        lens[n] = strlen(texts[n]);
        n++;
        cJSON_Delete(j);
    }
    free(data);
    size_t rss0 = sx_current_rss();
    sx_encoder *enc = load(model, threads, int8);
    float *v = malloc(sizeof(float) * (size_t)batch * 4096);
    /* warm-up: one batch */
    sx_encoder_embed(enc, batch < n ? batch : n, (const char *const *)texts, lens, v, &err);
    double t0 = sx_now();
    long tokens = 0;
    for (int i = 0; i < n; i += batch) {
        int m = n - i < batch ? n - i : batch;
        if (sx_encoder_embed(enc, m, (const char *const *)texts + i, lens + i, v, &err) < 0) {
            fprintf(stderr, "encoder-bench: %s\n", err.msg);
            return 1;
        }
    }
    double dt = sx_now() - t0;
    for (int i = 0; i < n; i++) {
        int32_t ids[512];
        int k = 0;
        sx_tokenizer_encode(sx_encoder_tokenizer(enc), texts[i], lens[i], ids, 512, &k, &err);
        tokens += k;
    }
    printf("texts=%d tokens=%ld seconds=%.3f texts_per_s=%.2f tokens_per_s=%.0f peak_rss_mb=%.1f "
           "model_rss_mb=%.1f desc=\"%s\"\n",
           n, tokens, dt, n / dt, tokens / dt, sx_peak_rss() / 1048576.0,
           (sx_current_rss() - rss0) / 1048576.0, sx_encoder_describe(enc));
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts), free(lens), free(v);
    sx_encoder_free(enc);
    return 0;
}

static int bench_gemm(int M, int N, int K, int reps) {
    float *A = malloc(sizeof(float) * (size_t)M * K), *W = malloc(sizeof(float) * (size_t)N * K);
    float *b = calloc((size_t)N, sizeof(float)), *C = malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (float)(i % 13) * 0.01f;
    sx_linear lin;
    sx_linear_init(&lin, W, b, N, K);
    const sx_model_kernels *k = sx_model_kernels_best();
    double flop = 2.0 * M * N * K;
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double t0 = sx_now();
        for (int i = 0; i < M; i += k->gemm_mr) {
            int mm = M - i < k->gemm_mr ? M - i : k->gemm_mr;
            k->gemm_rows(&lin, 0, lin.n_panels, mm, A + (size_t)i * K, K, C + (size_t)i * N, N);
        }
        t[r] = sx_now() - t0;
    }
    double own = flop / pct(t, reps, 0.5) / 1e9;
    openblas_set_num_threads(1);
    for (int r = 0; r < reps; r++) {
        double t0 = sx_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, C,
                    N);
        t[r] = sx_now() - t0;
    }
    double blas = flop / pct(t, reps, 0.5) / 1e9;
    printf("gemm M=%d N=%d K=%d own(%s)=%.1f GFLOP/s openblas=%.1f GFLOP/s\n", M, N, K, k->name,
           own, blas);
    sx_linear_free(&lin);
    free(A), free(W), free(b), free(C), free(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 7 && strcmp(argv[1], "query") == 0)
        return bench_query(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6]);
    if (argc >= 7 && strcmp(argv[1], "bulk") == 0)
        return bench_bulk(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6]);
    if (argc >= 6 && strcmp(argv[1], "gemm") == 0)
        return bench_gemm(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: encoder-bench query MODEL THREADS INT8 REPS TEXT\n"
                    "       encoder-bench bulk MODEL THREADS INT8 BATCH FILE\n"
                    "       encoder-bench gemm M N K REPS\n");
    return 2;
}
