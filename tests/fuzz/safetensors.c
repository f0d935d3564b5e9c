/*
 * safetensors.c - libFuzzer target for the safetensors header parser
 * (src/model/safetensors.c).
 *
 * Each input is parsed as a whole safetensors image; when it parses, every
 * tensor of a modest size is converted to float32 with its own shape (the
 * F32/F16/BF16 paths and the dtype check) and with a wrong one (the shape
 * check), so all that the parser accepted is read. Any crash, sanitizer
 * report or leak is a bug. Build and run:
 *
 *     make fuzz
 *     build/fuzz/safetensors -max_total_time=300 tests/fuzz/corpus/safetensors
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/model/model_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sx_st_file *f = NULL;
    sx_err err = {0};
    if (sx_st_parse(data, size, "fuzz", &f, &err) != 0) {
        if (f != NULL || err.msg[0] == '\0') abort(); /* failures say why, return nothing */
        return 0;
    }
    for (int i = 0; i < sx_st_count(f); i++) {
        const sx_st_tensor *t = sx_st_get(f, i);
        if (!t || t->end > size || t->begin > t->end) abort();
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
        if (numel > (1u << 16)) continue;
        float *buf = malloc(sizeof(float) * (numel ? numel : 1));
        if (!buf) continue;
        if (sx_st_find(f, t->name) == NULL) abort();
        sx_st_read_f32(f, t->name, t->ndim, t->shape, buf, &err);
        int64_t wrong[SX_ST_MAX_DIMS + 1] = {0};
        wrong[0] = (int64_t)numel + 1;
        if (sx_st_read_f32(f, t->name, 1, wrong, buf, &err) == 0) abort();
        free(buf);
    }
    sx_st_close(f);
    return 0;
}
