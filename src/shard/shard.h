/*
 * shard.h - one shard: the vector index, the documents and the category
 * bitmaps of a set of papers, with serialisation to a byte stream.
 *
 *     sx_shard_params p = sx_shard_params_default();
 *     sx_shard *s;
 *     sx_shard_create(&p, &s, &err);
 *     sx_doc d = {.id = "2101.00001", .title = "...", .categories = "cs.LG stat.ML"};
 *     sx_shard_upsert(s, &d, vec, &err);           // vec: 384 floats, unit length
 *     const char *cats[] = {"cs.LG"};
 *     sx_search_opts o = {.k = 10, .categories = cats, .n_categories = 1};
 *     sx_hit hits[10]; int n;
 *     sx_shard_search(s, query, &o, hits, &n, NULL, &err);
 *     sx_shard_save(s, write_cb, file, &err);      // files: storage/snapfile.h
 *     sx_shard_free(s);
 *
 * Every function is thread-safe: searches run in parallel with each other
 * and with upserts and deletes. A shard does not know where it lives: it
 * saves to and loads from callbacks (a file, Redis RDB), or is used in place
 * from a memory-mapped snapshot. All memory goes through the allocator of
 * sx_index_set_allocator (index.h), except what sx_shard_get returns.
 */
#ifndef SX_SHARD_H
#define SX_SHARD_H

#include <stddef.h>

#include "../common/sx.h"
#include "../index/index.h"

typedef struct sx_shard sx_shard;

typedef struct sx_shard_params {
    int dim;             /* 384 */
    int M;               /* 16 */
    int ef_construction; /* 200 */
    int ef_search;       /* default per-query ef, 64 */
    int storage;         /* SX_STORAGE_FP32 or SX_STORAGE_SQ8 */
    int rerank;          /* SQ8 only: re-rank this many top candidates from fp32 (0 off) */
} sx_shard_params;

/* dim 384, M 16, ef_construction 200, ef_search 64, SQ8, rerank 32. */
sx_shard_params sx_shard_params_default(void);

/* A paper. All strings UTF-8 and NUL-terminated; NULL or "" when absent. */
typedef struct sx_doc {
    const char *id; /* arXiv id, 1..SX_ID_MAX_LEN bytes (longer: SX_EINVAL) */
    const char *title, *abstract, *authors, *update_date;
    const char *categories; /* space-separated codes, e.g. "cs.LG stat.ML" */
} sx_doc;

/* Longest paper id, in bytes. */
#define SX_ID_MAX_LEN 63

/* ---- the document codec ----
 * The one byte form of a paper, used by the shard's memory and snapshots
 * and on the wire between the gateway and the Redis module:
 *
 *     u32 total length (the record's, these 4 bytes included); then six
 *     fields, id, title, abstract, authors, update_date, categories, each
 *     u32 length + the bytes + one NUL
 *
 * all integers little-endian. */

/* Encodes d (NULL fields as "") into *out (OUT, malloc'd, freed with
 * free()), *len (OUT) bytes. SX_EINVAL beyond 4 GiB, SX_ENOMEM. */
int sx_doc_encode(const sx_doc *d, void **out, size_t *len, sx_err *err);

/* Decodes a record of exactly len bytes into *out (OUT), whose fields point
 * into buf (valid while buf is). Checks everything, as buf may come from the
 * network: the length header, every field in bounds and NUL-terminated, no
 * NUL inside a field, UTF-8, nothing after the last field. SX_ECORRUPT with
 * a message naming the field otherwise. */
int sx_doc_decode(const void *buf, size_t len, sx_doc *out, sx_err *err);

/* ---- validation: what a store or a Redis-hosted shard accepts ---- */

/* A paper id: 1..SX_ID_MAX_LEN bytes of ASCII letters, digits, . / - _.
 * Returns 0 or SX_EINVAL. */
int sx_doc_check_id(const char *id, sx_err *err);

/* A paper as the stores accept it: a valid id, a non-empty title, every
 * field UTF-8, category codes of at most 63 bytes. 0 or SX_EINVAL. */
int sx_doc_check(const sx_doc *d, sx_err *err);

/* A vector as the stores accept it: dim finite floats of L2 norm 1 within
 * 1e-3. 0 or SX_EINVAL. */
int sx_vector_check(const float *v, int dim, sx_err *err);

/* A date "YYYY-MM-DD" (a real day of the proleptic Gregorian calendar,
 * years 0000-9999) into *days (OUT): a day number, increasing with the date,
 * always > 0. 0 or SX_EINVAL (then *days = 0, "unknown"). A paper whose
 * update_date does not parse ("", "0000-00-00") has no date: a date filter
 * never passes it. */
int sx_date_parse(const char *z, uint32_t *days);

/* ---- the wire form of one upsert item (the Redis module's arguments) ----
 * SEMDEX.UPSERT carries each paper as three byte strings: its id, its vector
 * (dim little-endian float32) and its document (sx_doc_encode). These two
 * functions are the whole check the module makes of them, without Redis, so
 * that a fuzzer and a unit test reach it. */

/* Checks the length of a vector argument of len bytes against the key's
 * dimension dim (0: a new key, any dimension). Returns the number of floats,
 * or SX_EINVAL with a message naming the sizes. */
int sx_wire_vector_len(size_t len, int dim, sx_err *err);

/* Decodes and checks one item: vec (vlen bytes, already sized by
 * sx_wire_vector_len) into v_out (OUT, vlen / 4 floats), doc (dlen bytes)
 * into *d_out (OUT, whose strings point into doc), and checks that the
 * document's id equals the id argument (idlen bytes), then the store's rules
 * (sx_doc_check, sx_vector_check). Returns 0 or SX_ECORRUPT / SX_EINVAL with
 * a message ("bad doc: ..." for a document that does not decode). */
int sx_wire_item(const char *id, size_t idlen, const void *vec, size_t vlen, const void *doc,
                 size_t dlen, float *v_out, sx_doc *d_out, sx_err *err);

typedef struct sx_hit {
    float score; /* cosine, higher is better */
    char id[64];
    sx_doc *doc; /* with_docs: a malloc'd copy of the paper (one block, as
                    sx_shard_get returns), else NULL; see sx_hits_release */
} sx_hit;

/* What a search ranks by (sx_search_opts.mode). */
enum {
    SX_MODE_VECTOR = 0,  /* cosine to the query vector (HNSW) */
    SX_MODE_KEYWORD = 1, /* BM25F of text over title, abstract, authors (keyword.h);
                            scores are the shard's own: idf, N and average
                            lengths are per shard, as in Elasticsearch's default */
    SX_MODE_AUTHORS = 2, /* the papers of authors: those with a name written
                            as asked first, then those with a compatible one
                            ("J. Smith" for "John Smith"), each newest first
                            (score: 4,000,000 x (2 or 1) + the update date as
                            sx_date_parse's day number) */
};

/* Most names in an authors filter. */
#define SX_AUTHOR_NAMES_MAX 32

typedef struct sx_search_opts {
    int k;  /* hits wanted, 1..10000 */
    int ef; /* 0 = the shard's default */
    const char *const *categories; /* any-of; NULL or 0 = no filter. A code
                                      "X.*" stands for X and every X.y */
    int n_categories;
    int with_docs; /* 1: every hit carries its document (hit.doc), copied
                      while the search still holds the node, so a paper
                      deleted meanwhile never leaves a hole in a page */
    int mode;      /* SX_MODE_VECTOR (0, the default), _KEYWORD, _AUTHORS */
    const char *text; /* SX_MODE_KEYWORD: the query text */
    const char *const *authors; /* any-of: names as people write them,
                                   matched as sx_kw_authors_match does;
                                   1..SX_AUTHOR_NAMES_MAX for SX_MODE_AUTHORS */
    int n_authors;
    const char *date_from, *date_to; /* inclusive "YYYY-MM-DD" bounds on
                                        update_date; NULL or "" = open */
} sx_search_opts;

/* ---- the wire form of a search (SEMDEX.SEARCH / MSEARCH's arguments) ----
 * After the key(s): vector k ef [FILTER n cat ...] [WITHDOCS] [MODE
 * VECTOR|KEYWORD|AUTHORS] [TEXT t] [AUTHORS n name ...] [DATES from to]
 * (docs/redis-module.md). Parsed here, without Redis, so that the fuzz target
 * tests/fuzz/search_args.c reaches exactly what the module runs. */

/* One argument: bytes and their length (not NUL-terminated). */
typedef struct sx_wire_arg {
    const char *p;
    size_t len;
} sx_wire_arg;

#define SX_WIRE_MAX_K 10000
#define SX_WIRE_MAX_EF 100000
#define SX_WIRE_MAX_FILTER 1024

/* A parsed search: the options (pointing into strs), the query vector and
 * WITHDOCS. Free with sx_wire_search_free. */
typedef struct sx_wire_search {
    sx_search_opts o;
    float *q;     /* malloc'd dim floats for MODE VECTOR, else NULL */
    int dim;      /* q's floats */
    int withdocs;
    char **strs;  /* NUL-terminated copies of the text arguments */
    int n_strs;
} sx_wire_search;

/* Parses argv[0..argc) (the vector first) for shards of dimension dim (0:
 * any length, as for a missing key) into *out (OUT, zeroed first). Returns 0,
 * or SX_EINVAL with the message the module replies with ("k must be ...",
 * "syntax error at argument i" counting from first_index, ...), or
 * SX_ENOMEM; *out holds nothing to free then. */
int sx_wire_search_parse(const sx_wire_arg *argv, int argc, int first_index, int dim, sx_wire_search *out,
                         sx_err *err);

/* Reads a decimal integer argument in [lo, hi] by the rules of Redis's
 * RedisModule_StringToLongLong (optional '-', digits, no spaces, leading
 * zeros or '+'); 0, or -1 when it is not one. */
int sx_wire_arg_int(const sx_wire_arg *a, long long lo, long long hi, long long *out);

/* 1 when the argument equals word, ignoring ASCII case. */
int sx_wire_arg_is(const sx_wire_arg *a, const char *word);

/* Frees what sx_wire_search_parse allocated (NULL-safe, idempotent). */
void sx_wire_search_free(sx_wire_search *s);

/* Frees the documents the n hits carry (NULL-safe) and clears them. */
void sx_hits_release(sx_hit *hits, int n);

/* Orders n hits best first (score descending, then id ascending, so equal
 * scores from different shards merge the same way everywhere), keeps the
 * first k and releases the documents of the rest. Returns how many remain:
 * min(n, k). The one merge of the local store and the cluster gateway. */
int sx_hits_merge(sx_hit *hits, int n, int k);

/* The ef each of n_shards shards is searched with when the whole
 * collection is searched with ef for k hits: ef / cbrt(n_shards), rounded
 * up, and never below k (ef itself for one shard). A query walks every
 * shard's graph, and a shard of N/S papers holds about k/S of the top k, so
 * the full ef in each would multiply the work by about S for no recall:
 * on 50,000 title vectors (docs/performance.md) one shard at ef 64 has
 * recall@10 0.990; 4 shards at ef 41 and 16 at ef 26 match or pass it
 * (0.987 at 32 and 0.996 at 48; 0.992 at 24), where 16 shards at ef 64
 * reach 1.000 at 2.5 times the cost. The local store and the cluster
 * gateway both use it. */
int sx_shard_ef(int ef, int k, int n_shards);

/* The shard a paper lives in among n_shards: crc32c(id bytes, seed 0) mod
 * n_shards (CRC-32C of the NUL-free id, Castagnoli polynomial, reflected,
 * as sx_crc32c computes it). A fixed contract: a local data directory's
 * snapshots and a cluster's shard keys are laid out by it, so changing it
 * moves every paper. */
int sx_shard_route(const char *id, int n_shards);

/* sx_search_stats (index.h): strategy (SX_STRATEGY_GRAPH, _WIDENED,
 * _BRUTE), visited, distance_evals, selectivity. */

/* Counts and memory of a shard. A struct tag without a typedef: the
 * function that fills it is named sx_shard_stats (the service's contract),
 * and C gives a typedef and a function one namespace. */
struct sx_shard_stats {
    size_t count;              /* live papers */
    size_t deleted;            /* deleted, slot not yet reused */
    size_t categories;         /* distinct category codes */
    size_t bytes_vectors;      /* search codes (SQ8) or fp32 vectors */
    size_t bytes_fp32;         /* fp32 copies on the heap (SQ8 re-ranking) */
    size_t bytes_fp32_mapped;  /* fp32 vectors used in place from a snapshot */
    size_t bytes_graph;        /* links and per-node metadata */
    size_t bytes_documents;    /* document records on the heap */
    size_t bytes_documents_mapped; /* document records used in place */
    size_t bytes_bitmaps;      /* category bitmaps */
    size_t bytes_idmap;        /* id -> node hash table */
    size_t bytes_keyword;      /* keyword index and date table */
    int levels;                /* graph levels (top level + 1) */
    size_t nodes_per_level[16];
};

/* Creates an empty shard. SX_EINVAL for bad parameters. */
int sx_shard_create(const sx_shard_params *p, sx_shard **out, sx_err *err);

/* Frees the shard (and unmaps a snapshot it mapped itself). NULL: no-op. */
void sx_shard_free(sx_shard *s);

/* Adds a paper, or replaces the paper with the same id (document and
 * vector). vec: dim floats, L2-normalised by the caller. SX_EINVAL for a
 * missing or too long id, invalid UTF-8, a non-finite vector. */
int sx_shard_upsert(sx_shard *s, const sx_doc *doc, const float *vec, sx_err *err);

/* Deletes a paper. SX_ENOTFOUND when the id is unknown. */
int sx_shard_delete(sx_shard *s, const char *id, sx_err *err);

/* sx_shard_upsert for replication: *level (IN/OUT) is the HNSW level of the
 * paper's node, -1 to draw it (then OUT: the level drawn), 0..15 to use it.
 * No housekeeping runs inside (see sx_shard_maintain): a master and a
 * replica that apply the same upserts and deletes with the same levels, and
 * maintain at the same points, build the same graph. */
int sx_shard_upsert_ex(sx_shard *s, const sx_doc *doc, const float *vec, int *level, sx_err *err);

/* sx_shard_delete without the housekeeping. */
int sx_shard_delete_ex(sx_shard *s, const char *id, sx_err *err);

/* 1 when sx_shard_maintain has work to do (SQ8 training, vacuum, ranking),
 * else 0. Cheap; depends on the shard's contents only, never on timing. */
int sx_shard_maintenance_due(sx_shard *s);

/* The housekeeping sx_shard_upsert and sx_shard_delete run after each
 * change: learns the SQ8 ranges once enough vectors exist, vacuums deleted
 * nodes, ranks the graph afresh when needed (sx_index_maintain). Returns 0
 * or a negative code. */
int sx_shard_maintain(sx_shard *s, sx_err *err);

/* A malloc'd copy of a paper (one block, strings inside it), freed with
 * free(). SX_ENOTFOUND when absent. */
int sx_shard_get(sx_shard *s, const char *id, sx_doc **out, sx_err *err);

/* Copies a paper's vector into out (dim floats). SX_ENOTFOUND when absent. */
int sx_shard_get_vector(sx_shard *s, const char *id, float *out, sx_err *err);

/* Up to o->k hits (OUT, room for o->k), best first by o->mode; *n_hits
 * (OUT) how many. q: the query vector (SX_MODE_VECTOR only; may be NULL
 * otherwise). Deleted papers are never returned; every hit passes every
 * filter given (categories, dates, authors). SX_EINVAL for bad options or a
 * date that does not parse. stats (OUT) may be NULL. */
int sx_shard_search(sx_shard *s, const float *q, const sx_search_opts *o, sx_hit *hits,
                    int *n_hits, sx_search_stats *stats, sx_err *err);

/* Number of live papers. */
size_t sx_shard_count(sx_shard *s);

/* Counts and memory by part (OUT). Returns 0. */
int sx_shard_stats(sx_shard *s, struct sx_shard_stats *out);

/* The parameters of the shard. */
sx_shard_params sx_shard_get_params(sx_shard *s);

/* Feeds add(ctx, ...) the shard's contents in a canonical order: for each
 * live paper, sorted by id, its id, its fp32 vector (dim little-endian
 * floats) and its document record. Links, levels and slots are left out, so
 * equal contents give equal digests however the graph was built. Upserts
 * wait meanwhile. 0, SX_ENOMEM or SX_ECORRUPT. */
int sx_shard_digest(sx_shard *s, void (*add)(void *ctx, const void *buf, size_t len), void *ctx);

/* Calls fn(ctx, doc, vec, level) for each live paper in node order, with its
 * document, fp32 vector (dim floats) and node level; stops at the first
 * negative return of fn and returns it. Upserts and deletes wait meanwhile. */
int sx_shard_each(sx_shard *s, int (*fn)(void *ctx, const sx_doc *d, const float *vec, int level),
                  void *ctx, sx_err *err);

/* Writes a snapshot: versioned, CRC-32C checksummed sections, explicit
 * little-endian, arrays 64-byte aligned (see section.c). Upserts and
 * deletes wait meanwhile; searches go on. Writer errors are returned. */
int sx_shard_save(sx_shard *s, sx_write_fn w, void *ctx, sx_err *err);

/* Reads a snapshot from a stream. Truncated or corrupt input: SX_ECORRUPT
 * with a message naming the section and byte offset; nothing is leaked. */
int sx_shard_load(sx_read_fn r, void *ctx, sx_shard **out, sx_err *err);

/* Flags of the mapped loads. */
enum {
    SX_LOAD_LAZY = 1, /* skip the CRC of the bulk sections (fp32 vectors,
                         documents), so they are paged in only when used;
                         their structure is still checked */
    SX_LOAD_FILE = 2, /* base is a read-only mapping of a file: the pages of
                         a bulk section are dropped from the process once
                         checksummed (they stay in the page cache), so
                         verifying a large snapshot never makes it all
                         resident at once */
};

/* Uses a snapshot in memory (e.g. mmap'd, page aligned) in place: the fp32
 * vectors and the documents are read from it on demand, the graph and codes
 * are copied. The caller keeps [base, base+len) alive and unchanged until
 * sx_shard_free; later changes go to the heap. */
int sx_shard_load_mapped(const void *base, size_t len, int flags, sx_shard **out, sx_err *err);

/* Hands a shard loaded in place (sx_shard_load_mapped at base) what backs
 * it, so that the shard owns it from now on: read (may be NULL) serves the
 * fp32 vectors (sx_index_set_cold_reader), release(ctx) (may be NULL) runs
 * in sx_shard_free once nothing reads base any more. A shard never opens a
 * file itself: storage/snapfile.c maps snapshot files and passes a pread()
 * and an munmap() here. */
void sx_shard_set_backing(sx_shard *s, const void *base, sx_cold_read_fn read,
                          void (*release)(void *ctx), void *ctx);

#endif /* SX_SHARD_H */
