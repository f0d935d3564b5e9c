/*
 * kernels_int.h - the per-instruction-set kernel tables (internal to
 * src/index). Each is NULL when its file was compiled for another
 * architecture; sx_kernels_best() also checks the CPU at run time.
 */
#ifndef SX_KERNELS_INT_H
#define SX_KERNELS_INT_H

#include "index.h"

#include <math.h>

/* Each returns its table, or NULL when the file was built without it. */
const sx_kernels *sx_kernels_avx2_table(void);
const sx_kernels *sx_kernels_avx512_table(void);
const sx_kernels *sx_kernels_avx512vnni_table(void);
const sx_kernels *sx_kernels_neon_table(void);

/* The per-element steps of the sq8_decode and sq8_query kernels: the scalar
 * reference is made of them, and the SIMD tables run them on the elements
 * [i, n) their vectors leave over, so every table rounds the same way. */
static inline void sq8_decode_tail(const float *vmin, const float *vscale, const uint8_t *c, size_t i,
                                   size_t n, float *x) {
    for (; i < n; i++) x[i] = vmin[i] + vscale[i] * (float)c[i];
}

/* Folds elements [i, n) into *m (max |v * vscale|) and *b (sum v * vmin). */
static inline void sq8_stats_tail(const float *v, const float *vmin, const float *vscale, size_t i,
                                  size_t n, float *m, float *b) {
    for (; i < n; i++) {
        float s = fabsf(v[i] * vscale[i]);
        *m = s > *m ? s : *m;
        *b += v[i] * vmin[i];
    }
}

/* The query's scale from the largest |v * vscale|. */
static inline float sq8_alpha(float m) { return m > 0 ? m / 127.0f : 1.0f; }

static inline void sq8_round_tail(const float *v, const float *vscale, float inv, size_t i, size_t n,
                                  int8_t *q8) {
    for (; i < n; i++) q8[i] = (int8_t)lrintf(v[i] * vscale[i] * inv);
}

#endif
