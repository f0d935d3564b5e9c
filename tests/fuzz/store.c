/*
 * store.c - libFuzzer target for what the local store reads at start-up
 * (src/storage): the write-ahead log and its records, the MANIFEST, and a
 * shard snapshot mapped from a file (the pread() path for fp32 vectors).
 *
 * At start a small store is built in the scratch directory: papers in a
 * snapshot (generation 2), then more upserts and a delete in wal-2.log. Its
 * three files are the template. The first input byte chooses which file the
 * rest of the input replaces (mod 3: 0 the log, 1 the MANIFEST, 2 the
 * snapshot); the store is opened from that directory twice, as it stands and
 * with the file's checksums recomputed (log records, the manifest's crc32c
 * line, snapshot sections), so that mutations reach the record decoder and
 * the structure checks behind the CRCs.
 *
 * When an open succeeds the store is searched and read back, a paper is
 * upserted and the store closed and opened again: that second open must
 * succeed and hold the new paper (recovery never loses an acknowledged
 * write, even after truncating a torn tail). A failed open must say why.
 * Seeds (tests/fuzz/corpus/store) are the template files with their selector
 * byte; SX_FUZZ_WRITE_SEEDS=DIR writes them. Build and run:
 *
 *     make fuzz FUZZ_TARGETS=store FUZZ_SECONDS=300
 */
#include "../../src/shard/shard.h"
#include "../../src/storage/store.h"
#include "fuzz.h"
#include "../testsec.h"

#define DIM 8
#define GEN_SNAP "shard-2-0.snap"
#define GEN_WAL "wal-2.log"

static const char *const kFiles[3] = {GEN_WAL, "MANIFEST", GEN_SNAP};
static uint8_t *g_tmpl[3];
static size_t g_tmpl_len[3];

static sx_store_opts store_opts(void) {
    sx_store_opts o = sx_store_defaults(DIM);
    o.params.M = 4;
    o.params.ef_construction = 16;
    o.n_threads = 1;
    return o;
}

static void unit_vector(float *v, int seed) {
    double norm = 0;
    for (int j = 0; j < DIM; j++) {
        v[j] = (float)(((seed * 7 + j * 13) % 17) - 8);
        norm += (double)v[j] * v[j];
    }
    if (norm == 0) v[0] = 1, norm = 1;
    sx_l2_normalize(v, DIM);
}

static void upsert(sx_store *st, int i) {
    char id[32], title[48];
    snprintf(id, sizeof id, "2101.%05d", i);
    snprintf(title, sizeof title, "Seed paper %d", i);
    static const char *cats[] = {"cs.LG stat.ML", "math.AP", "hep-th"};
    sx_doc d = {id, title, "An abstract.", "A. Author", "2021-01-01", cats[i % 3]};
    float v[DIM];
    unit_vector(v, i);
    sx_err err = {0};
    if (sx_store_upsert(st, 1, &d, v, &err) != 0) {
        fprintf(stderr, "store fuzz: template upsert: %s\n", err.msg);
        abort();
    }
}

/* Builds the template store and reads its files into g_tmpl. */
static void make_template(void) {
    char dir[512], path[600];
    fz_path(dir, sizeof dir, "tmpl");
    sx_store_opts o = store_opts();
    o.create = 1;
    sx_store *st;
    sx_err err = {0};
    if (sx_store_open(dir, &o, &st, &err) != 0) {
        fprintf(stderr, "store fuzz: creating the template: %s\n", err.msg);
        abort();
    }
    for (int i = 0; i < 6; i++) upsert(st, i);
    FZ_CHECK(sx_store_checkpoint(st, &err) == 0); /* generation 2 */
    for (int i = 6; i < 9; i++) upsert(st, i);
    FZ_CHECK(sx_store_delete(st, "2101.00002", &err) == 0);
    sx_store_close(st);
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, kFiles[k]);
        char *data;
        if (sx_read_file(path, &data, &g_tmpl_len[k], &err) != 0) {
            fprintf(stderr, "store fuzz: %s\n", err.msg);
            abort();
        }
        g_tmpl[k] = (uint8_t *)data;
    }
    const char *seeds = getenv("SX_FUZZ_WRITE_SEEDS");
    for (int k = 0; seeds && k < 3; k++) {
        snprintf(path, sizeof path, "%s/template-%s", seeds, kFiles[k]);
        uint8_t *b = malloc(g_tmpl_len[k] + 1);
        b[0] = (uint8_t)k;
        memcpy(b + 1, g_tmpl[k], g_tmpl_len[k]);
        fz_write(path, b, g_tmpl_len[k] + 1);
        free(b);
    }
}

/* ---- checksum fix-ups (the formats of wal.c, store.c and section.c) ---- */

/* wal.c: version 2 (32-byte header with the collection id and generation;
 * records u32 length | u32 payload crc | u32 header crc, the header crc over
 * length, payload crc, offset, id and generation) or version 1 (16-byte
 * header; records u32 length | u32 crc of length and payload). */
static void fix_wal(uint8_t *p, size_t size) {
    if (size < 16) return;
    if (sx_le32_get(p + 8) != 2 || size < 32) {
        sx_le32_put(p + 12, sx_crc32c(0, p, 12));
        for (size_t o = 16; o + 8 <= size;) {
            uint32_t len = sx_le32_get(p + o);
            if (len > size - o - 8) return;
            sx_le32_put(p + o + 4, sx_crc32c(sx_crc32c(0, p + o, 4), p + o + 8, len));
            o += 8 + (size_t)len;
        }
        return;
    }
    sx_le32_put(p + 12, 0);
    sx_le32_put(p + 12, sx_crc32c(0, p, 32));
    uint64_t coll = sx_le64_get(p + 16), gen = sx_le64_get(p + 24);
    for (size_t o = 32; o + 12 <= size;) {
        uint32_t len = sx_le32_get(p + o);
        if (len > size - o - 12) return;
        uint32_t pcrc = sx_crc32c(0, p + o + 12, len);
        uint8_t b[32];
        sx_le32_put(b, len);
        sx_le32_put(b + 4, pcrc);
        sx_le64_put(b + 8, o);
        sx_le64_put(b + 16, coll);
        sx_le64_put(b + 24, gen);
        sx_le32_put(p + o + 4, pcrc);
        sx_le32_put(p + o + 8, sx_crc32c(0, b, sizeof b));
        o += 12 + (size_t)len;
    }
}

static void fix_manifest(uint8_t *p, size_t size) {
    const char *line = memmem(p, size, "crc32c ", 7);
    if (!line || (size_t)((const uint8_t *)line - p) + 15 > size) return;
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", sx_crc32c(0, p, (size_t)((const uint8_t *)line - p)));
    memcpy((uint8_t *)line + 7, hex, 8);
}

/* ---- one run ---- */

static void write_dir(const char *dir, int which, const uint8_t *data, size_t size) {
    char path[600];
    fz_clear_dir(dir); /* no files of other generations left over */
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, kFiles[k]);
        if (k == which) fz_write(path, data, size);
        else fz_write(path, g_tmpl[k], g_tmpl_len[k]);
    }
}

static void exercise(const char *dir, sx_store *st) {
    sx_store_info in;
    sx_store_get_info(st, &in);
    float q[DIM];
    unit_vector(q, 3);
    sx_hit hits[8];
    int n = 0;
    sx_err err = {0};
    const char *cats[] = {"math.AP"};
    for (int f = 0; f < 2; f++) {
        sx_search_opts o = {.k = 8, .with_docs = 1, .categories = cats, .n_categories = f};
        if (sx_store_search(st, q, &o, hits, &n, NULL, &err) != 0) continue;
        for (int i = 0; i < n; i++) {
            sx_doc *d = NULL;
            if (sx_store_get(st, hits[i].id, &d, &err) == 0) free(d);
            sx_store_get_vector(st, hits[i].id, q, &err);
        }
        sx_hits_release(hits, n);
        unit_vector(q, 3);
    }
    /* an acknowledged write must survive a close and a reopen */
    sx_doc d = {"fuzz.00001", "A new paper", "", "", "", "cs.CL"};
    unit_vector(q, 99);
    int up = sx_store_upsert(st, 1, &d, q, &err);
    sx_store_close(st);
    if (up != 0) return; /* e.g. a store whose dim differs */
    sx_store_opts o = store_opts();
    sx_err e2 = {0};
    if (sx_store_open(dir, &o, &st, &e2) != 0) {
        fprintf(stderr, "store fuzz: reopening after an acknowledged write failed: %s\n", e2.msg);
        abort();
    }
    sx_doc *got = NULL;
    if (sx_store_get(st, "fuzz.00001", &got, &e2) != 0) {
        fprintf(stderr, "store fuzz: an acknowledged write is lost after reopening: %s\n", e2.msg);
        abort();
    }
    free(got);
    sx_store_close(st);
}

static void run_once(int which, const uint8_t *data, size_t size) {
    char dir[512];
    fz_path(dir, sizeof dir, "db");
    write_dir(dir, which, data, size);
    sx_store_opts o = store_opts();
    sx_store *st = NULL;
    sx_err err = {0};
    int rc = sx_store_open(dir, &o, &st, &err);
    if (rc != 0) {
        FZ_CHECK(st == NULL && err.msg[0] != '\0');
        return;
    }
    exercise(dir, st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tmpl[0]) make_template();
    if (size < 1) return 0;
    int which = data[0] % 3;
    size_t n = size - 1;
    uint8_t *copy = malloc(n + 1);
    if (n) memcpy(copy, data + 1, n);
    run_once(which, copy, n);
    if (which == 0) fix_wal(copy, n);
    else if (which == 1) fix_manifest(copy, n);
    else test_fix_section_crcs(copy, n);
    run_once(which, copy, n);
    free(copy);
    return 0;
}
