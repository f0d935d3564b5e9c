/*
 * search_args.c - libFuzzer target for a search's arguments as the Redis
 * module receives them (SEMDEX.SEARCH and SEMDEX.MSEARCH after the keys:
 * vector k ef [FILTER n cat ...] [WITHDOCS] [MODE m] [TEXT t] [AUTHORS n
 * name ...] [DATES from to]), through sx_wire_search_parse, the very
 * function the module calls, and then the search itself on a small shard.
 *
 * An input is a list of arguments, each a little-endian u16 length and
 * that many bytes (the last one takes what is left), parsed for a shard of
 * 4-dimensional vectors. Checked: a refused list gives a message and leaves
 * nothing allocated; an accepted one has k, ef and the counts in range and
 * NUL-free strings, and its search on a fixed 48-paper shard (categories,
 * authors, dates and text for the keyword index) either fails with a
 * message or returns at most k hits, each of a paper the shard holds, best
 * first for the ranked modes, carrying its document when WITHDOCS was
 * given. Seeds: SX_FUZZ_WRITE_SEEDS=DIR writes them. Build and run:
 *
 *     make fuzz FUZZ_TARGETS=search_args FUZZ_SECONDS=300
 */
#include "../../src/shard/shard.h"
#include "fuzz.h"

#define MAX_ARGS 128
#define DIM 4
#define PAPERS 48

static sx_shard *g_shard;

/* The fixed shard: 48 papers over three categories, four authors, dates
 * over two years and titles with a few words. */
static sx_shard *shard(void) {
    if (g_shard) return g_shard;
    static const char *cats[] = {"cs.LG stat.ML", "math.AP", "hep-th", "cs.CL"};
    static const char *authors[] = {"Ada Lovelace", "A. Turing, J. von Neumann", "Emmy Noether",
                                    "Grace Hopper and Ada Lovelace"};
    static const char *words[] = {"graph neural networks", "dark matter halos", "Lindblad equation",
                                  "ResNet-50 training"};
    sx_shard_params p = sx_shard_params_default();
    p.dim = DIM;
    p.M = 4;
    p.ef_construction = 16;
    sx_err err = {0};
    if (sx_shard_create(&p, &g_shard, &err) != 0) abort();
    for (int i = 0; i < PAPERS; i++) {
        char id[32], title[96], date[16];
        snprintf(id, sizeof id, "2101.%05d", i);
        snprintf(title, sizeof title, "On %s, part %d", words[i % 4], i);
        snprintf(date, sizeof date, "%04d-%02d-%02d", 2020 + i % 2, 1 + i % 12, 1 + i % 28);
        sx_doc d = {id, title, "An abstract about the method.", authors[i % 4], date, cats[i % 4]};
        float v[DIM] = {(float)(i % 7) + 1, (float)(i % 5), (float)(i % 3) - 1, 0.5f};
        sx_l2_normalize(v, DIM);
        if (sx_shard_upsert(g_shard, &d, v, &err) != 0) abort();
    }
    return g_shard;
}

static void write_seeds(const char *dir);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int seeded;
    if (!seeded++ && getenv("SX_FUZZ_WRITE_SEEDS")) write_seeds(getenv("SX_FUZZ_WRITE_SEEDS"));
    fz_arg raw[MAX_ARGS];
    sx_wire_arg args[MAX_ARGS];
    int n = fz_split(data, size, raw, MAX_ARGS);
    for (int i = 0; i < n; i++) args[i] = (sx_wire_arg){(const char *)raw[i].p, raw[i].len};
    sx_wire_search w;
    sx_err err = {0};
    if (sx_wire_search_parse(args, n, 2, DIM, &w, &err) != 0) {
        FZ_CHECK(err.msg[0] != '\0');
        FZ_CHECK(w.q == NULL && w.strs == NULL && w.n_strs == 0);
        sx_wire_search_free(&w);
        return 0;
    }
    FZ_CHECK(w.o.k >= 1 && w.o.k <= SX_WIRE_MAX_K && w.o.ef >= 0 && w.o.ef <= SX_WIRE_MAX_EF);
    FZ_CHECK(w.o.n_categories >= 0 && w.o.n_categories <= SX_WIRE_MAX_FILTER);
    FZ_CHECK(w.o.n_authors >= 0 && w.o.n_authors <= SX_AUTHOR_NAMES_MAX);
    FZ_CHECK((w.o.mode == SX_MODE_VECTOR) == (w.q != NULL) && (!w.q || w.dim == DIM));
    FZ_CHECK(w.o.mode != SX_MODE_KEYWORD || w.o.text != NULL);
    FZ_CHECK(w.o.mode != SX_MODE_AUTHORS || w.o.n_authors > 0);
    for (int i = 0; i < w.n_strs; i++) FZ_CHECK(w.strs[i] != NULL);
    w.o.with_docs = w.withdocs;
    sx_hit *hits = calloc((size_t)w.o.k, sizeof *hits);
    FZ_CHECK(hits != NULL);
    int nh = 0;
    if (sx_shard_search(shard(), w.q, &w.o, hits, &nh, NULL, &err) != 0) {
        FZ_CHECK(err.msg[0] != '\0' && nh == 0);
    } else {
        FZ_CHECK(nh >= 0 && nh <= w.o.k && nh <= PAPERS);
        for (int i = 0; i < nh; i++) {
            FZ_CHECK(strncmp(hits[i].id, "2101.", 5) == 0);
            FZ_CHECK(!w.withdocs || (hits[i].doc && strcmp(hits[i].doc->id, hits[i].id) == 0));
            if (i > 0 && w.o.mode != SX_MODE_AUTHORS) FZ_CHECK(hits[i - 1].score >= hits[i].score);
        }
        sx_hits_release(hits, nh);
    }
    free(hits);
    sx_wire_search_free(&w);
    sx_wire_search_free(&w); /* idempotent */
    return 0;
}

/* ---- seeds ---- */

typedef struct buf {
    uint8_t b[4096];
    size_t len;
} buf;

static void put(buf *c, const void *p, size_t len) {
    sx_le16_put(c->b + c->len, (uint16_t)len);
    memcpy(c->b + c->len + 2, p, len);
    c->len += 2 + len;
}

static void puts_all(buf *c, const char *const *s) {
    for (; *s; s++) put(c, *s, strlen(*s));
}

static void write_seeds(const char *dir) {
    float v[DIM] = {1, 0.5f, -0.25f, 0.5f};
    sx_l2_normalize(v, DIM);
    uint8_t vb[4 * DIM];
    for (int k = 0; k < DIM; k++) sx_le_float_put(vb + 4 * k, v[k]);
    static const char *const vec_tail[] = {"10", "0", "FILTER", "2", "cs.*", "hep-th", "WITHDOCS",
                                           "DATES", "2020-06-01", "", NULL};
    static const char *const kw[] = {"", "5", "0", "MODE", "KEYWORD", "TEXT", "graph \\emph{neural}",
                                     "AUTHORS", "1", "Lovelace", NULL};
    static const char *const au[] = {"", "20", "0", "MODE", "AUTHORS", "AUTHORS", "2", "A. Lovelace",
                                     "Noether, E.", "DATES", "", "2021-12-31", "WITHDOCS", NULL};
    buf c = {.len = 0};
    put(&c, vb, sizeof vb);
    puts_all(&c, vec_tail);
    char path[512];
    snprintf(path, sizeof path, "%s/vector", dir);
    fz_write(path, c.b, c.len);
    c.len = 0;
    puts_all(&c, kw);
    snprintf(path, sizeof path, "%s/keyword", dir);
    fz_write(path, c.b, c.len);
    c.len = 0;
    puts_all(&c, au);
    snprintf(path, sizeof path, "%s/authors", dir);
    fz_write(path, c.b, c.len);
}
