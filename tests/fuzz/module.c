/*
 * module.c - libFuzzer target for what the Redis module (src/cluster/
 * module.c) decodes from outside bytes without Redis: the items of
 * SEMDEX.UPSERT (sx_wire_vector_len and sx_wire_item, the very functions
 * the module calls: the document codec, the id check, the store's rules)
 * and the RDB value, which the module reads as string chunks into
 * sx_shard_load.
 *
 * An input is a list of arguments, each a little-endian u16 length and
 * that many bytes (the last one takes what is left). Arguments are taken
 * three at a time as upsert items (id, vector, document), the first valid
 * vector fixing the dimension as for a new key; accepted items go into a
 * shard. Every argument is also decoded as a document on its own. What is
 * left (fewer than three) are category filters for a search. Checked: a
 * document that decodes encodes back to exactly its bytes; an accepted item
 * is one the shard takes; hits read back; the shard saved and streamed back
 * through sx_shard_load (the bytes the module writes as RDB chunks and
 * reads back) holds the same papers, with no byte left over. Seeds: SX_FUZZ_WRITE_SEEDS=DIR writes them. Build and run:
 *
 *     make fuzz FUZZ_TARGETS=module FUZZ_SECONDS=300
 */
#include "../../src/shard/shard.h"
#include "fuzz.h"

#define MAX_ARGS 96

typedef fz_arg arg;

/* The RDB value as the module writes it: chunks, then an empty one. */
typedef struct chunks {
    uint8_t *buf;
    size_t len, cap;
    size_t pos;   /* read position */
} chunks;

static int chunks_write(void *ctx, const void *p, size_t len) {
    chunks *c = ctx;
    if (c->len + len > c->cap) {
        size_t ncap = (c->len + len) * 2;
        uint8_t *nb = realloc(c->buf, ncap);
        if (!nb) return SX_ENOMEM;
        c->buf = nb;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, p, len);
    c->len += len;
    return 0;
}

/* Reads like the module's rdb_read: SX_ECORRUPT when the bytes run out. */
static int chunks_read(void *ctx, void *out, size_t len) {
    chunks *c = ctx;
    if (len > c->len - c->pos) return SX_ECORRUPT;
    memcpy(out, c->buf + c->pos, len);
    c->pos += len;
    return 0;
}

static void check_decode(const arg *a) {
    sx_doc d;
    sx_err err = {0};
    if (sx_doc_decode(a->p, a->len, &d, &err) != 0) {
        FZ_CHECK(err.msg[0] != '\0');
        return;
    }
    void *enc = NULL;
    size_t len = 0;
    FZ_CHECK(sx_doc_encode(&d, &enc, &len, &err) == 0);
    FZ_CHECK(len == a->len && memcmp(enc, a->p, len) == 0);
    free(enc);
}

static void search_and_reload(sx_shard *s, const float *q, const arg *cats, int n_cats) {
    char *names[2];
    for (int i = 0; i < n_cats; i++) {
        names[i] = malloc(cats[i].len + 1);
        memcpy(names[i], cats[i].p, cats[i].len);
        names[i][cats[i].len] = '\0';
    }
    sx_search_opts o = {.k = 10, .categories = (const char *const *)names, .n_categories = n_cats,
                        .with_docs = 1};
    sx_hit hits[10];
    int n = 0;
    sx_err err = {0};
    if (sx_shard_search(s, q, &o, hits, &n, NULL, &err) == 0) {
        for (int i = 0; i < n; i++) {
            FZ_CHECK(hits[i].doc != NULL && strcmp(hits[i].doc->id, hits[i].id) == 0);
            void *enc = NULL;
            size_t len;
            FZ_CHECK(sx_doc_encode(hits[i].doc, &enc, &len, &err) == 0);
            free(enc);
        }
        sx_hits_release(hits, n);
    }
    for (int i = 0; i < n_cats; i++) free(names[i]);
    chunks c = {0};
    FZ_CHECK(sx_shard_save(s, chunks_write, &c, &err) == 0);
    sx_shard *back = NULL;
    FZ_CHECK(sx_shard_load(chunks_read, &c, &back, &err) == 0);
    FZ_CHECK(c.pos == c.len); /* the module refuses extra bytes */
    FZ_CHECK(sx_shard_count(back) == sx_shard_count(s));
    sx_shard_free(back);
    free(c.buf);
}

static void write_seeds(const char *dir);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int seeded;
    if (!seeded++ && getenv("SX_FUZZ_WRITE_SEEDS")) write_seeds(getenv("SX_FUZZ_WRITE_SEEDS"));
    arg args[MAX_ARGS];
    int n = fz_split(data, size, args, MAX_ARGS);
    for (int i = 0; i < n; i++) check_decode(&args[i]);
    sx_shard *s = NULL;
    int dim = 0, items = n / 3;
    float *q = NULL;
    for (int i = 0; i < items; i++) {
        const arg *a = &args[3 * i];
        sx_err err = {0};
        int vn = sx_wire_vector_len(a[1].len, dim, &err);
        if (vn < 0) continue;
        float *v = malloc(a[1].len);
        sx_doc d;
        if (sx_wire_item((const char *)a[0].p, a[0].len, a[1].p, a[1].len, a[2].p, a[2].len, v, &d,
                         &err) != 0) {
            FZ_CHECK(err.msg[0] != '\0');
            free(v);
            continue;
        }
        if (!s) {
            sx_shard_params p = sx_shard_params_default();
            p.dim = dim = vn;
            p.M = 4;
            p.ef_construction = 16;
            FZ_CHECK(sx_shard_create(&p, &s, &err) == 0);
        }
        if (sx_shard_upsert(s, &d, v, &err) != 0) {
            fprintf(stderr, "module fuzz: an item the module accepts, the shard refuses: %s\n", err.msg);
            abort();
        }
        free(q);
        q = v;
    }
    if (s) {
        int left = n - 3 * items;
        search_and_reload(s, q, &args[3 * items], left);
        sx_shard_free(s);
    }
    free(q);
    return 0;
}

/* ---- seeds ---- */

static void put_arg(chunks *c, const void *p, size_t len) {
    uint8_t h[2];
    sx_le16_put(h, (uint16_t)len);
    chunks_write(c, h, 2);
    chunks_write(c, p, len);
}

static void write_seeds(const char *dir) {
    static const char *cats[] = {"cs.LG stat.ML", "math.AP", "hep-th"};
    for (int seed = 0; seed < 3; seed++) {
        chunks c = {0};
        for (int i = 0; i < 2 + seed; i++) {
            char id[32], title[32];
            snprintf(id, sizeof id, "2101.%05d", i);
            snprintf(title, sizeof title, "Paper %d", i);
            sx_doc d = {id, title, "An abstract.", "A. Author", "2021-01-01", cats[(i + seed) % 3]};
            float v[4] = {(float)(i + 1), (float)seed, 1, 0};
            sx_l2_normalize(v, 4);
            uint8_t vb[16];
            for (int k = 0; k < 4; k++) sx_le_float_put(vb + 4 * k, v[k]);
            void *enc;
            size_t len;
            sx_doc_encode(&d, &enc, &len, NULL);
            put_arg(&c, id, strlen(id));
            put_arg(&c, vb, sizeof vb);
            put_arg(&c, enc, len);
            free(enc);
        }
        put_arg(&c, "math.AP", 7);
        char path[512];
        snprintf(path, sizeof path, "%s/upsert-%d", dir, seed);
        fz_write(path, c.buf, c.len);
        free(c.buf);
    }
}
