/*
 * kernels_neon.c - NEON variants of the encoder kernels for arm64 (placeholder
 * until written; on other architectures this file compiles to an empty table
 * whose NULL name tells the dispatcher it is absent).
 */
#include "model_int.h"

const sx_model_kernels sx_model_kernels_neon = {0};
