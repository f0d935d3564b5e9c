/*
 * model_int.h - the parts of src/model/ that its files share: the safetensors
 * reader, the thread pool and the compute kernels with their dispatch table.
 * Not a public API; tests and fuzz targets include it to reach the pieces.
 */
#ifndef SX_MODEL_INT_H
#define SX_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"

/* ---- safetensors (safetensors.c) --------------------------------------- */

typedef enum { SX_DT_F32, SX_DT_F16, SX_DT_BF16, SX_DT_OTHER } sx_dtype;

#define SX_ST_MAX_DIMS 8

typedef struct {
    char *name;
    char dtype_name[16]; /* as written in the header ("F32", "I64", ...) */
    sx_dtype dtype;
    int ndim;
    int64_t shape[SX_ST_MAX_DIMS];
    uint64_t begin, end; /* byte range inside the data section */
} sx_st_tensor;

typedef struct sx_st_file sx_st_file;

/* Parses a safetensors image held in memory (data[0..size), which must stay
 * valid while the result is used). label names the file in error messages.
 * Checks the header length, the JSON, every dtype/shape/offset and that each
 * tensor lies inside the data section with the size its shape implies. */
int sx_st_parse(const void *data, size_t size, const char *label, sx_st_file **out,
                sx_err *err);

/* Maps the file at path read-only and parses it as sx_st_parse does. */
int sx_st_open(const char *path, sx_st_file **out, sx_err *err);

/* Unmaps (when opened from a file) and frees. NULL is fine. */
void sx_st_close(sx_st_file *f);

/* Tells the kernel that the mapped pages may be dropped from memory (they
 * are read back from the file if touched again). No-op for memory images. */
void sx_st_drop_pages(sx_st_file *f);

/* The tensor called name, or NULL. */
const sx_st_tensor *sx_st_find(const sx_st_file *f, const char *name);

/* Number of tensors, and the i-th one (in header order). */
int sx_st_count(const sx_st_file *f);
const sx_st_tensor *sx_st_get(const sx_st_file *f, int i);

/* Start of tensor t's bytes. */
const void *sx_st_data(const sx_st_file *f, const sx_st_tensor *t);

/* Converts tensor name to float32 into out (n floats), after checking that it
 * exists, is F32/F16/BF16 and has exactly the ndim dimensions in dims.
 * Errors name the file, the tensor and the mismatch. */
int sx_st_read_f32(const sx_st_file *f, const char *name, int ndim, const int64_t *dims,
                   float *out, sx_err *err);

/* ---- half-precision conversions (kernels.c) ----------------------------- */

float sx_f16_to_f32(uint16_t h);
float sx_bf16_to_f32(uint16_t h);

/* ---- thread pool (pool.c) ---------------------------------------------- */

typedef struct sx_model_pool sx_model_pool;

/* Called for task indices [begin, end) by one worker; tid is the worker's
 * number (0 = the calling thread) so it can use per-thread scratch. */
typedef void (*sx_model_pool_fn)(void *ctx, int begin, int end, int tid);

/* Starts n_threads - 1 workers (the caller is the n-th). */
int sx_model_pool_create(int n_threads, sx_model_pool **out, sx_err *err);

/* Stops and joins the workers. NULL is fine. */
void sx_model_pool_free(sx_model_pool *p);

/* Number of threads including the caller. */
int sx_model_pool_threads(const sx_model_pool *p);

/* Says whether a series of runs is under way (on) or over (off): idle
 * workers spin longer between runs while it is, and sleep sooner when not. */
void sx_model_pool_hold(sx_model_pool *p, int on);

/* Runs fn over tasks [0, n) split across the threads and returns when all
 * are done. One caller at a time (the encoder holds a lock around it). A
 * NULL pool runs everything on the calling thread. */
void sx_model_pool_run(sx_model_pool *p, int n, sx_model_pool_fn fn, void *ctx);

/* ---- kernels (kernels.c + kernels_<isa>.c) ------------------------------ */

/* Weights of a linear layer y = x W^T + b, W of shape [n, k], packed for the
 * GEMM kernels: column panels of SX_NR outputs, each [k][SX_NR] floats,
 * zero-padded to a whole panel. */
#define SX_NR 16

typedef struct {
    int n, k;       /* output and input features */
    int n_panels;   /* ceil(n / SX_NR) */
    float *w;       /* n_panels * k * SX_NR floats, 64-byte aligned */
    float *bias;    /* n floats (zeros when the layer has none) */
    float *amax;    /* calibration only: largest |input| seen per input channel */
    int gelu;       /* GELU on the outputs, in the kernel's epilogue (FFN's first layer) */
} sx_linear;

/* An int8 linear layer: weights quantised per output channel (symmetric,
 * [-127, 127]), packed in panels of SX_NR outputs with k rounded up to k4 (a
 * multiple of 4) and grouped by 4: panel p, group g holds 64 bytes, Wq[16p +
 * j][4g + r] at byte 4j + r (zero-padded). Activations are quantised per row
 * to unsigned bytes with a zero point (asymmetric), after multiplying input
 * channel c by in_mul[c] (SmoothQuant: the weights were multiplied by
 * 1 / in_mul[c], moving activation outliers into the weights). Output:
 * y[j] = (sum_k qa[k] Wq[j][k] - zero * colsum[j]) * row_scale * scale[j]
 *        + bias[j]. */
typedef struct {
    int n, k, k4, n_panels;
    int8_t *w;       /* n_panels * k4 * SX_NR bytes, 64-byte aligned */
    float *scale;    /* n_panels * SX_NR */
    int32_t *colsum; /* n_panels * SX_NR: sum over k of Wq[j][k] */
    float *bias;     /* n_panels * SX_NR (zeros past n) */
    float *in_mul;   /* k floats, or NULL (all ones) */
    int gelu;        /* GELU on the outputs (dequant's gelu flag) */
} sx_linear8;

/* The kernel table: one implementation per instruction set, all computing
 * the same thing as the scalar reference (kernels.c) within float rounding. */
typedef struct {
    const char *name;
    /* Rows of C (m <= 16, row stride ldc) for panels [p0, p1) of lin:
     * C[i][j] = bias[j] + sum_k A[i][k] * W[j][k], A with row stride lda. */
    void (*gemm_rows)(const sx_linear *lin, int p0, int p1, int m, const float *A, int lda,
                      float *C, int ldc);
    int gemm_mr; /* rows per gemm_rows call that the kernel handles best */
    /* x[i] = gamma * (x - mean) / sqrt(var + eps) + beta over n floats,
     * after x += r when r is not NULL. */
    void (*layernorm)(float *x, const float *r, const float *gamma, const float *beta, int n,
                      float eps);
    /* x = gelu(x) (exact, erf-based) over n floats. */
    void (*gelu)(float *x, int n);
    /* Sum of a[i] * b[i]. */
    float (*dot)(const float *a, const float *b, int n);
    /* y += a * x over n floats. */
    void (*axpy)(float *y, float a, const float *x, int n);
    /* Softmax in place over each of rows rows of n floats, ld apart. */
    void (*softmax)(float *x, int rows, int n, size_t ld);
    /* Int8 GEMM, exact: C[i][j] = sum_k A[i][k] * Wq[j][k] as int32 for rows
     * i < m (m <= 16) and panels [p0, p1); C columns are relative to panel p0
     * (C[i][0] is output 16 p0). A holds unsigned bytes "group-major": the 4
     * bytes of row i, k = 4g .. 4g + 3 are at A + 4 (g * lda + i), so a
     * micro-kernel reads every row of a group from one pointer. */
    void (*gemm_i8_rows)(const sx_linear8 *lin, int p0, int p1, int m, const uint8_t *A,
                         int lda, int32_t *C, int ldc);
    /* sx_quantize_row's contract (see there), bit-exact with it. */
    float (*quantize_u8)(const float *x, const float *mul, int k, int k4, uint8_t *q,
                         size_t group_stride, int32_t *zero);
    /* out[j] = (acc[j] - zero * colsum[j]) * (row_scale * scale[j]) + bias[j]
     * over n outputs, then gelu(out[j]) when gelu is set: the int8 GEMM's
     * epilogue (GELU while the values are in registers, not a second pass). */
    void (*dequant)(const int32_t *acc, int n, int32_t zero, const int32_t *colsum,
                    float row_scale, const float *scale, const float *bias, float *out, int gelu);
    /* sx_pack_kt_ref's contract (see there), bit-exact with it. */
    void (*pack_kt)(const float *src, size_t ld, int rows, int n, float scale, float *dst);
} sx_model_kernels;

/* The reference kernels, plain C. */
extern const sx_model_kernels sx_model_kernels_scalar;
/* The instruction-set variants; a NULL name means "not built here". */
extern const sx_model_kernels sx_model_kernels_avx2;
extern const sx_model_kernels sx_model_kernels_avx512;
extern const sx_model_kernels sx_model_kernels_neon;

/* The best kernels this CPU runs (chosen once). SEMDEX_KERNELS=scalar|avx2|
 * avx512|neon in the environment forces one (ignored if the CPU lacks it). */
const sx_model_kernels *sx_model_kernels_best(void);

/* Whether this CPU can run the kernel set k. */
int sx_model_kernels_supported(const sx_model_kernels *k);

/* Packs W [n, k] (row-major) and bias (n floats or NULL) into lin. */
int sx_linear_init(sx_linear *lin, const float *W, const float *bias, int n, int k);

/* Frees what sx_linear_init allocated. */
void sx_linear_free(sx_linear *lin);

/* Quantises W [n, k] per output channel and packs it (bias may be NULL).
 * With amax (the largest |activation| seen on each of the k input channels,
 * or NULL), applies SmoothQuant with alpha 0.5 first. */
int sx_linear8_init(sx_linear8 *lin, const float *W, const float *bias, int n, int k,
                    const float *amax);

/* Frees what sx_linear8_init allocated. */
void sx_linear8_free(sx_linear8 *lin);

/* Quantises one row of k floats (times mul[c] when mul is not NULL) to
 * unsigned bytes: x ~ scale * (q - zero), with min(x, 0) .. max(x, 0) mapped
 * onto 0 .. 255, rounding half to even. The byte of input c goes to
 * q[(c / 4) * group_stride + c % 4] (group_stride 4: a plain row), zeros up to
 * k4. Returns the scale and writes the zero point to *zero. The reference
 * for the kernels' quantize_u8. */
float sx_quantize_row(const float *x, const float *mul, int k, int k4, uint8_t *q,
                      size_t group_stride, int32_t *zero);

/* Packs up to SX_NR rows of attention keys as one panel of the scores GEMM:
 * dst[d * SX_NR + j] = src[j * ld + d] * scale for d < n and j < rows, and 0
 * for rows <= j < SX_NR (a transpose of a rows x n block, scaled). The
 * reference for the kernels' pack_kt (vector kernels transpose 16 x 16
 * blocks in registers; the scalar loop is most of attention's non-GEMM time
 * at 256 tokens). */
void sx_pack_kt_ref(const float *src, size_t ld, int rows, int n, float scale, float *dst);

/* Erf-based GELU of one value, the reference the vector kernels follow. */
float sx_gelu_ref(float x);

#endif
