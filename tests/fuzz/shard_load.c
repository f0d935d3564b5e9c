/*
 * shard_load.c - libFuzzer target for the shard snapshot loader.
 *
 * Every input is loaded three ways: from a stream, in place (checksums
 * verified) and in place lazily (bulk sections unverified, the mode where
 * structure checks alone must keep reads in bounds); then again with every
 * section's checksums recomputed, so that mutations reach the structure
 * checks behind the CRCs. When a load succeeds,
 * the shard is searched, filtered, read back and saved, so whatever the
 * loader accepted is exercised. Build and run:
 *
 *     make fuzz                        # build/fuzz/shard_load (clang)
 *     build/fuzz/shard_load -max_total_time=60 build/fuzz/corpus tests/fixtures/shard
 *
 * Built with -DSX_FUZZ_MAKE_SEED instead, it is a program that writes the
 * small seed snapshot tests/fixtures/shard/small-v1.sx (also a format
 * fixture: test_shard_fixture_loads reads it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/shard/shard.h"
#include "../testsec.h"

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd;

static int rd_read(void *ctx, void *buf, size_t len) {
    rd *r = ctx;
    if (len > r->len - r->pos) return SX_EIO;
    memcpy(buf, r->p + r->pos, len);
    r->pos += len;
    return 0;
}

static int null_write(void *ctx, const void *buf, size_t len) {
    (void)ctx;
    (void)buf;
    (void)len;
    return 0;
}

static void exercise(sx_shard *s) {
    sx_shard_params p = sx_shard_get_params(s);
    float *q = calloc((size_t)p.dim, sizeof(float));
    q[0] = 1;
    sx_hit h[5];
    int n;
    const char *cats[] = {"cs.LG", "math.AP"};
    for (int f = 0; f < 2; f++) {
        sx_search_opts o = {.k = 5, .categories = cats, .n_categories = f ? 2 : 0};
        if (sx_shard_search(s, q, &o, h, &n, NULL, NULL) == 0)
            for (int i = 0; i < n; i++) {
                sx_doc *d = NULL;
                if (sx_shard_get(s, h[i].id, &d, NULL) == 0) free(d);
                sx_shard_get_vector(s, h[i].id, q, NULL);
                q[0] = 1;
            }
    }
    struct sx_shard_stats st;
    sx_shard_stats(s, &st);
    sx_shard_save(s, null_write, NULL, NULL);
    free(q);
}

#ifndef SX_FUZZ_MAKE_SEED

static void load_all_ways(uint8_t *copy, size_t size) {
    sx_shard *s = NULL;
    rd r = {copy, size, 0};
    if (sx_shard_load(rd_read, &r, &s, NULL) == 0) {
        exercise(s);
        sx_shard_free(s);
    }
    for (int lazy = 0; lazy < 2; lazy++) {
        if (sx_shard_load_mapped(copy, size, lazy ? SX_LOAD_LAZY : 0, &s, NULL) == 0) {
            exercise(s);
            sx_shard_free(s);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* in place needs 64-byte alignment, as from mmap */
    uint8_t *copy = aligned_alloc(64, (size + 63) / 64 * 64 + 64);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    load_all_ways(copy, size);
    test_fix_section_crcs(copy, size);
    load_all_ways(copy, size);
    free(copy);
    return 0;
}

#else

static int file_write(void *ctx, const void *buf, size_t len) {
    return fwrite(buf, 1, len, ctx) == len ? 0 : SX_EIO;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make-seed OUT.sx\n");
        return 2;
    }
    sx_shard_params p = sx_shard_params_default();
    p.dim = 8;
    p.M = 4;
    p.ef_construction = 16;
    sx_shard *s;
    sx_err err = {0};
    if (sx_shard_create(&p, &s, &err) < 0) return 1;
    static const char *cats[] = {"cs.LG stat.ML", "math.AP", "cs.CL cs.LG", "hep-th"};
    for (int i = 0; i < 40; i++) {
        float v[8];
        double norm = 0;
        for (int j = 0; j < 8; j++) {
            v[j] = (float)(((i * 7 + j * 13) % 17) - 8);
            norm += v[j] * v[j];
        }
        for (int j = 0; j < 8; j++) v[j] /= (float)(norm > 0 ? __builtin_sqrt(norm) : 1);
        char id[32], title[64];
        snprintf(id, sizeof id, "2101.%05d", i);
        snprintf(title, sizeof title, "Seed paper %d", i);
        sx_doc d = {id, title, "Abstract.", "A. Author", "2021-01-01", cats[i % 4]};
        if (sx_shard_upsert(s, &d, v, &err) < 0) return 1;
    }
    sx_shard_delete(s, "2101.00005", NULL);
    FILE *f = fopen(argv[1], "wb");
    if (!f || sx_shard_save(s, file_write, f, &err) < 0 || fclose(f) != 0) {
        fprintf(stderr, "make-seed: %s\n", err.msg);
        return 1;
    }
    sx_shard_free(s);
    /* read it back through the same path the fuzzer takes */
    f = fopen(argv[1], "rb");
    static uint8_t buf[1 << 20];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    rd r = {buf, len, 0};
    if (sx_shard_load(rd_read, &r, &s, &err) < 0) {
        fprintf(stderr, "make-seed: reading back: %s\n", err.msg);
        return 1;
    }
    exercise(s);
    sx_shard_free(s);
    return 0;
}

#endif
