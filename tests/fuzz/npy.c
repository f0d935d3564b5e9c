/*
 * npy.c - libFuzzer target for the .npy reader (src/corpus/npy.c).
 *
 * Each input is written as a file and opened; when it is accepted, its
 * shape must fit in the file (rows x cols float32 after the header) and
 * every row is read (at most 4096 rows), so an out-of-bounds read shows up
 * under ASan. Build and run:
 *
 *     make fuzz FUZZ_TARGETS=npy FUZZ_SECONDS=300
 */
#include "../../src/corpus/corpus.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    fz_path(path, sizeof path, "in.npy");
    fz_write(path, data, size);
    sx_npy *n;
    sx_err err = {0};
    int rc = sx_npy_open(path, &n, &err);
    if (rc != 0) {
        FZ_CHECK(n == NULL && err.msg[0] != '\0');
        FZ_CHECK(rc == SX_ECORRUPT || rc == SX_EUNSUPPORTED || rc == SX_EIO);
        return 0;
    }
    uint64_t rows = sx_npy_rows(n);
    int cols = sx_npy_cols(n);
    FZ_CHECK(cols >= 1);
    FZ_CHECK(rows <= size / 4 / (uint64_t)cols);
    float *row = malloc((size_t)cols * sizeof *row);
    for (uint64_t r = 0; r < rows && r < 4096; r++) sx_npy_row(n, r, row);
    if (rows) sx_npy_row(n, rows - 1, row);
    free(row);
    sx_npy_close(n);
    return 0;
}
