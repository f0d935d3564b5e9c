/*
 * keyword_load.c - libFuzzer target for the keyword index loader.
 *
 * Every input is loaded from a buffer and from a stream, then again with
 * every section's checksums recomputed, so that mutations reach the
 * structure checks behind the CRCs. When a load succeeds, the index is
 * searched (all fields and one), asked for an author's papers, changed
 * (an add, a remove, a forced compaction) and saved, so whatever the loader
 * accepted is exercised. The same bytes, as text, also go through the
 * analyser, the highlighter and the author-name functions, which take user
 * queries. Build and run:
 *
 *     make build/fuzz/keyword_load     # clang
 *     build/fuzz/keyword_load -max_total_time=60 build/fuzz/kwcorpus tests/fixtures/keyword
 *
 * Built with -DSX_FUZZ_MAKE_SEED instead, it is a program that writes the
 * small seed index tests/fixtures/keyword/small-v1.kw (also a format
 * fixture: test_keyword_fixture_loads reads it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/keyword/keyword.h"
#include "../testsec.h"

#define MAX_SLOTS (1u << 16)

static int count_slot(void *ctx, uint32_t slot) {
    (void)slot;
    ++*(int *)ctx;
    return 0;
}

static void exercise(sx_kw_index *ix) {
    sx_kw_hit h[8];
    int n, c = 0;
    sx_kw_query q = {.k = 8};
    sx_kw_index_search(ix, "seed paper lindblad resnet-50 author", &q, h, &n, NULL);
    q.fields = 1u << SX_KW_AUTHORS;
    sx_kw_index_search(ix, "author", &q, h, &n, NULL);
    sx_kw_index_author_docs(ix, "A. Author", count_slot, &c);
    sx_kw_index_add(ix, 7, "A new title", "Abstract", "B. Writer", NULL);
    sx_kw_index_remove(ix, 3, NULL);
    sx_kw_index_maintain(ix, 1, NULL);
    sx_kw_stats st;
    sx_kw_index_stats(ix, &st);
    void *buf;
    size_t len;
    if (sx_kw_index_save_buf(ix, &buf, &len, NULL) == 0) sx_index_free_mem(buf);
}

#ifndef SX_FUZZ_MAKE_SEED

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

static void load_both_ways(const uint8_t *p, size_t size) {
    sx_kw_index *ix = NULL;
    if (sx_kw_index_load_buf(p, size, MAX_SLOTS, &ix, NULL) == 0) {
        exercise(ix);
        sx_kw_index_free(ix);
    }
    rd r = {p, size, 0};
    sx_source src = {rd_read, &r, NULL, 0, 0, 1, 0};
    if (sx_kw_index_load(&src, MAX_SLOTS, &ix, NULL) == 0) {
        exercise(ix);
        sx_kw_index_free(ix);
    }
}

static int ignore_term(void *ctx, const char *term, size_t len, size_t start, size_t end) {
    size_t *n = ctx;
    if (len == 0 || len > SX_KW_TERM_MAX || start >= end || end > n[1]) __builtin_trap();
    n[0] += term[0] != 0;
    return 0;
}

/* The input as text: analysed with every flag, as a query highlighting
 * itself, as an author name and an author list. */
static void text_paths(const uint8_t *data, size_t size) {
    char *z = malloc(size + 1);
    if (!z) return;
    memcpy(z, data, size);
    z[size] = 0;
    size_t n[2] = {0, size};
    for (int flags = 0; flags < 8; flags++) sx_kw_analyze(z, size, flags, ignore_term, n);
    sx_kw_span sp[16];
    int ns;
    if (sx_kw_highlight(z, z, size, sp, 16, &ns) == 0)
        for (int i = 0; i < ns; i++)
            if (sp[i].start >= sp[i].end || sp[i].end > size || (i && sp[i].start <= sp[i - 1].end))
                __builtin_trap();
    char norm[SX_KW_NAME_MAX];
    if (sx_kw_author_norm(z, size, norm, sizeof norm) > 0) {
        const char *names[1] = {norm};
        if (!sx_kw_author_same(norm, norm)) __builtin_trap();
        sx_kw_authors_match(z, names, 1);
    }
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    text_paths(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    load_both_ways(copy, size);
    test_fix_section_crcs(copy, size);
    load_both_ways(copy, size);
    free(copy);
    return 0;
}

#else

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make-kw-seed OUT.kw\n");
        return 2;
    }
    sx_kw_params p = sx_kw_params_default();
    sx_kw_index *ix;
    sx_err err = {0};
    if (sx_kw_index_create(&p, &ix, &err) < 0) return 1;
    static const char *titles[] = {"Seed paper on the Lindblad equation", "Pruning ResNet-50",
                                   "Schr\\\"odinger cats and $\\alpha$-particles",
                                   "BERT for \\textbf{physics}"};
    for (uint32_t i = 0; i < 24; i++) {
        char abstract[96];
        snprintf(abstract, sizeof abstract, "Seed abstract %u about open quantum systems.", i);
        if (sx_kw_index_add(ix, i * 3, titles[i % 4], abstract, i % 2 ? "A. Author, B. Writer" : "C. Third", &err) < 0)
            return 1;
    }
    sx_kw_index_remove(ix, 9, NULL);
    sx_kw_index_remove(ix, 30, NULL);
    void *buf;
    size_t len;
    FILE *f = fopen(argv[1], "wb");
    if (!f || sx_kw_index_save_buf(ix, &buf, &len, &err) < 0 || fwrite(buf, 1, len, f) != len ||
        fclose(f) != 0) {
        fprintf(stderr, "make-kw-seed: %s\n", err.msg);
        return 1;
    }
    sx_kw_index_free(ix);
    if (sx_kw_index_load_buf(buf, len, MAX_SLOTS, &ix, &err) < 0) {
        fprintf(stderr, "make-kw-seed: reading back: %s\n", err.msg);
        return 1;
    }
    exercise(ix);
    sx_kw_index_free(ix);
    sx_index_free_mem(buf);
    return 0;
}

#endif
