/*
 * kernels_int.h - the per-instruction-set kernel tables (internal to
 * src/index). Each is NULL when its file was compiled for another
 * architecture; sx_kernels_best() also checks the CPU at run time.
 */
#ifndef SX_KERNELS_INT_H
#define SX_KERNELS_INT_H

#include "index.h"

/* Each returns its table, or NULL when the file was built without it. */
const sx_kernels *sx_kernels_avx2_table(void);
const sx_kernels *sx_kernels_avx512_table(void);
const sx_kernels *sx_kernels_avx512vnni_table(void);
const sx_kernels *sx_kernels_neon_table(void);

#endif
