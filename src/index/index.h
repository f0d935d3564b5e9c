/*
 * index.h - the vector index: distance kernels, scalar quantisation, an HNSW
 * graph with deletes and filters, exact search, and the section framing the
 * shard's snapshot format is built from.
 *
 * A worked example (single thread; every function is thread-safe):
 *
 *     sx_index_params p = sx_index_params_default(384);
 *     p.storage = SX_STORAGE_SQ8;
 *     sx_index *ix;
 *     if (sx_index_create(&p, &ix, &err) < 0) ...
 *     uint32_t node;
 *     sx_index_add(ix, vec, 0, &node, &err);      // inserted, not yet visible
 *     sx_index_publish(ix, node);                 // now returned by searches
 *     sx_index_query q = {.k = 10};
 *     sx_index_hit hits[10]; int n;
 *     sx_index_search(ix, query, &q, hits, &n, NULL, &err);
 *     sx_index_free(ix);
 *
 * Nodes are dense 32-bit ids ("slots"). A deleted node keeps its slot until a
 * vacuum has unlinked it from the graph and no search can still hold it; then
 * the slot is reused by a later insert. See hnsw.c for the design.
 */
#ifndef SX_INDEX_H
#define SX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"

/* ---- allocator ------------------------------------------------------------ */

/* The allocator every index and shard allocation goes through (Redis routes
 * it to RedisModule_Alloc). calloc_fn may be NULL (malloc + memset is used). */
typedef struct sx_allocator {
    void *(*malloc_fn)(size_t size);
    void *(*calloc_fn)(size_t n, size_t size);
    void *(*realloc_fn)(void *p, size_t size);
    void (*free_fn)(void *p);
} sx_allocator;

/* Installs a (process-wide) allocator; NULL restores libc's. Call it before
 * creating or loading any index or shard. */
void sx_index_set_allocator(const sx_allocator *a);

/* Allocation through the installed allocator; NULL on failure. */
void *sx_index_malloc(size_t size);
void *sx_index_calloc(size_t n, size_t size); /* zeroed; NULL on overflow */
void *sx_index_realloc(void *p, size_t size);
void sx_index_free_mem(void *p);

/* ---- distance kernels ----------------------------------------------------- */

/* One set of distance kernels. Every implementation computes the same sums
 * (up to float rounding) as the scalar reference. */
typedef struct sx_kernels {
    const char *name; /* "scalar", "avx2", "avx512", "avx512vnni", "neon" */
    /* sum a[i]*b[i] */
    float (*dot_f32)(const float *a, const float *b, size_t n);
    /* sum (a[i]-b[i])^2 */
    float (*l2sq_f32)(const float *a, const float *b, size_t n);
    /* sum a[i]*b[i] with b bytes 0..255 */
    float (*dot_f32_u8)(const float *a, const uint8_t *b, size_t n);
    /* sum a[i]*b[i], a signed bytes, b unsigned bytes, exact in int32 for
     * n < 2^16 (the SQ8 inner loop: quantised query x codes) */
    int32_t (*dot_s8_u8)(const int8_t *a, const uint8_t *b, size_t n);
    /* SQ8 decoding: x[i] = vmin[i] + vscale[i] * c[i] (within one rounding:
     * a table may fuse the multiply-add) */
    void (*sq8_decode)(const float *vmin, const float *vscale, const uint8_t *c, size_t n, float *x);
    /* SQ8 query preparation (sx_sq8_prepare, then qs quantised to bytes,
     * without a qs buffer): with qs[i] = v[i] * vscale[i], *bias = sum
     * v[i] * vmin[i], *alpha = max |qs[i]| / 127 (1 when that is 0) and
     * q8[i] = qs[i] * (1 / *alpha) rounded to nearest, ties to even.
     * q8 and alpha are bit-exact across tables; bias is a float sum (order
     * differs). v must be finite. */
    void (*sq8_query)(const float *v, const float *vmin, const float *vscale, size_t n, int8_t *q8,
                      float *alpha, float *bias);
} sx_kernels;

/* The fastest kernels this CPU supports, chosen once (thread-safe). The
 * environment variable SEMDEX_KERNELS=scalar|avx2|avx512|avx512vnni|neon
 * forces one. */
const sx_kernels *sx_kernels_best(void);

/* The portable reference kernels. */
const sx_kernels *sx_kernels_scalar(void);

/* Writes up to max kernel sets usable on this CPU (scalar first) into out;
 * returns how many. */
int sx_kernels_available(const sx_kernels **out, int max);

/* ---- scalar quantisation (SQ8) --------------------------------------------- */

/* x[i] ~ vmin[i] + vscale[i] * code[i], code in 0..255, per dimension. A
 * global range is the special case of equal entries. */
typedef struct sx_sq8 {
    int dim;
    float *vmin;   /* dim entries */
    float *vscale; /* dim entries, > 0 */
} sx_sq8;

/* Sets q to the global range [lo, hi] for every dimension (allocates). */
int sx_sq8_init(sx_sq8 *q, int dim, float lo, float hi, sx_err *err);

/* Learns per-dimension ranges from n vectors x (n x dim, row major): the
 * observed min/max widened by 1% of the range on each side. */
int sx_sq8_train(sx_sq8 *q, int dim, const float *x, size_t n, sx_err *err);

/* Releases q's arrays. */
void sx_sq8_release(sx_sq8 *q);

/* Encodes x (dim floats) into codes (dim bytes), clamping to the range. */
void sx_sq8_encode(const sx_sq8 *q, const float *x, uint8_t *codes);

/* Decodes codes into x (dim floats). */
void sx_sq8_decode(const sx_sq8 *q, const uint8_t *codes, float *x);

/* Prepares query v for dot products with codes: writes qs (dim floats) and
 * *bias so that dot(v, decode(c)) == *bias + kernels->dot_f32_u8(qs, c, dim). */
void sx_sq8_prepare(const sx_sq8 *q, const float *v, float *qs, float *bias);

/* ---- HNSW index ------------------------------------------------------------ */

enum { SX_STORAGE_FP32 = 0, SX_STORAGE_SQ8 = 1 };

/* Longest vector an index holds. */
#define SX_INDEX_MAX_DIM 4096
enum { SX_METRIC_IP = 0, SX_METRIC_L2 = 1 };
/* How a search ran (sx_search_stats.strategy). */
enum { SX_STRATEGY_GRAPH = 0, SX_STRATEGY_WIDENED = 1, SX_STRATEGY_BRUTE = 2 };

typedef struct sx_index sx_index;

typedef struct sx_index_params {
    int dim;             /* vector length, 1..SX_INDEX_MAX_DIM */
    int M;               /* links per node on upper levels; level 0 has 2*M */
    int ef_construction; /* candidate list length while inserting */
    int ef_search;       /* default candidate list length of a search */
    int storage;         /* SX_STORAGE_FP32 or SX_STORAGE_SQ8 */
    int metric;          /* SX_METRIC_IP (score = dot) or SX_METRIC_L2 (fp32 only) */
    int rerank;          /* SQ8: re-score this many top candidates from fp32 (0 off) */
    int train_size;      /* SQ8: learn the ranges once this many vectors exist */
    uint64_t seed;       /* level generator seed */
} sx_index_params;

/* Defaults: M 16, ef_construction 200, ef_search 64, fp32, IP, train 1024. */
sx_index_params sx_index_params_default(int dim);

/* Called when a deleted node's slot is finally released (after vacuum), with
 * the payload the node carried; the shard frees its document there. */
typedef void (*sx_release_fn)(void *ctx, uint32_t node, uint64_t payload);

/* Creates an empty index. */
int sx_index_create(const sx_index_params *p, sx_index **out, sx_err *err);

/* Sets the callback for released payloads (call before any delete). */
void sx_index_set_release(sx_index *ix, sx_release_fn fn, void *ctx);

/* Frees the index (payloads are the caller's; the release callback is not
 * called). NULL is a no-op. */
void sx_index_free(sx_index *ix);

/* Inserts vec (dim floats, finite; L2-normalised for IP) carrying payload.
 * The node is linked into the graph but not returned by searches until
 * sx_index_publish. *node_out (OUT) is its slot. SX_EINVAL for a non-finite
 * vector. Call sx_index_maintain afterwards (holding no lock of your own). */
int sx_index_add(sx_index *ix, const float *vec, uint64_t payload, uint32_t *node_out,
                 sx_err *err);

/* sx_index_add with the node's level chosen by the caller: level -1 draws
 * it as sx_index_add does, 0..15 uses it as given (SX_EINVAL otherwise).
 * Two indexes given the same operations with the same levels, one thread
 * writing, build the same graph: a Redis replica applies its master's
 * inserts so. An explicit level leaves the level generator untouched. */
int sx_index_add_level(sx_index *ix, const float *vec, uint64_t payload, int level,
                       uint32_t *node_out, sx_err *err);

/* Draws the level of a future node (0..15, P(level >= l) = M^-l) from the
 * index's seeded generator, advancing it as an sx_index_add would. */
int sx_index_draw_level(sx_index *ix);

/* The level of a node (its top layer), or -1 for a free or unused slot. */
int sx_index_node_level(sx_index *ix, uint32_t node);

/* Reads len bytes at offset of the snapshot an index was loaded from in
 * place into buf. Returns 0, or a negative SX_E* code (the index then reads
 * the bytes through the mapping). */
typedef int (*sx_cold_read_fn)(void *ctx, void *buf, size_t len, uint64_t offset);

/* For an index loaded in place from a mapped snapshot (sx_index_load with
 * a mapped source): read its fp32 vectors with read(ctx, ...) instead of
 * through the mapping, base being the mapping's address of offset 0. The
 * owner of a file mapping passes a pread() on the file, so that re-ranking
 * keeps the vectors in the page cache rather than in this process's
 * resident memory; the index itself never touches a file. ctx stays valid
 * until sx_index_free. No effect when the vectors were copied to the heap. */
void sx_index_set_cold_reader(sx_index *ix, sx_cold_read_fn read, void *ctx, const void *base);

/* Makes an added node visible to searches. */
void sx_index_publish(sx_index *ix, uint32_t node);

/* Marks a node deleted: searches never return it again; its slot is reused
 * after a vacuum. SX_ENOTFOUND when node is not a live node. */
int sx_index_delete(sx_index *ix, uint32_t node, sx_err *err);

/* Unlinks all deleted nodes from the graph (repairing their neighbours'
 * links) and releases their slots for reuse. Concurrent searches continue,
 * except for two short waits for in-flight searches. The release callback
 * runs inside and must take no lock a searching thread may hold. */
int sx_index_vacuum(sx_index *ix, sx_err *err);

/* Housekeeping after inserts and deletes: learns the SQ8 ranges once
 * train_size vectors exist, vacuums when deleted nodes reach 64 and 5% of
 * the nodes, or outnumber the live ones, and ranks the graph afresh when an
 * insert could not keep every node reachable (rare; see hnsw.c). Cheap when
 * there is nothing to do; one thread at a time (others return at once, and
 * the running one catches up with what they left). Call it holding no lock
 * of your own. */
int sx_index_maintain(sx_index *ix, sx_err *err);

/* 1 when sx_index_maintain has something to do now (SQ8 training, a vacuum
 * or a fresh ranking is due), else 0. A few atomic loads: cheap enough to
 * ask after every write. Depends only on the index's counts and ranks, never
 * on timing. */
int sx_index_maintenance_due(sx_index *ix);

/* One search. allow (optional) is a bitmap over node slots: bit i set means
 * node i may be returned; slots at or beyond allow_bits are excluded. */
typedef struct sx_index_query {
    int k;                 /* hits wanted, >= 1 */
    int ef;                /* candidate list length; 0 = the index default */
    const uint64_t *allow; /* NULL = no filter */
    size_t allow_bits;
    size_t allow_count;    /* set bits in allow (estimate ok), for the strategy */
    int rerank;            /* -1 = the index default, 0 = off, n = re-score top n */
    int force_brute;       /* 1 = scan the allowed nodes instead of walking */
    /* Optional: called for each returned hit, best first, while the search
     * still guarantees the node's payload is not released by a vacuum. */
    void (*on_hit)(void *ctx, int rank, uint32_t node, uint64_t payload);
    void *on_hit_ctx;
} sx_index_query;

typedef struct sx_index_hit {
    float score;   /* IP: dot product (cosine); L2: minus the squared distance */
    uint32_t node;
} sx_index_hit;

typedef struct sx_search_stats {
    int strategy;          /* SX_STRATEGY_* */
    long visited;          /* nodes reached */
    long distance_evals;   /* distance computations */
    double selectivity;    /* fraction of live nodes the filter passes (1 without) */
} sx_search_stats;

/* Approximate k-nearest search; hits (OUT, room for q->k) best first,
 * *n_hits (OUT) how many. Deleted and unpublished nodes never appear; every
 * hit passes the filter. stats (OUT) may be NULL. */
int sx_index_search(sx_index *ix, const float *vec, const sx_index_query *q,
                    sx_index_hit *hits, int *n_hits, sx_search_stats *stats, sx_err *err);

/* Exact k-nearest by scanning every eligible node with fp32 vectors (ground
 * truth). Same conventions as sx_index_search. */
int sx_index_search_exact(sx_index *ix, const float *vec, const sx_index_query *q,
                          sx_index_hit *hits, int *n_hits, sx_search_stats *stats,
                          sx_err *err);

/* Copies node's fp32 vector into out (dim floats). SX_ENOTFOUND for a free
 * or never-used slot. */
int sx_index_get_vector(sx_index *ix, uint32_t node, float *out, sx_err *err);

/* The payload of a node (0 for a free slot). */
uint64_t sx_index_payload(sx_index *ix, uint32_t node);

/* Replaces the payload of a node (used after loading). */
void sx_index_set_payload(sx_index *ix, uint32_t node, uint64_t payload);

/* 1 when node is live (published or pending, not deleted), else 0. */
int sx_index_is_live(sx_index *ix, uint32_t node);

/* Number of slots ever allocated (node ids are below it). */
uint32_t sx_index_slots(sx_index *ix);

typedef struct sx_index_stats {
    size_t live;          /* published, not deleted */
    size_t deleted;       /* deleted, slot not yet released */
    size_t free_slots;    /* released slots awaiting reuse */
    int max_level;        /* top level of the graph, -1 when empty */
    size_t nodes_per_level[16];
    size_t bytes_vectors; /* search representation (codes, or fp32 vectors) */
    size_t bytes_fp32;    /* fp32 copies kept besides SQ8 codes (heap only) */
    size_t bytes_fp32_mapped; /* fp32 vectors read in place from a mapping */
    size_t bytes_graph;   /* links and per-node metadata */
} sx_index_stats;

/* Fills *out (OUT) with counts and memory use. */
void sx_index_get_stats(sx_index *ix, sx_index_stats *out);

/* What sx_index_check finds; every count is 0 in a sound index. */
typedef struct sx_index_check_result {
    size_t nodes;       /* nodes checked: live, pending and deleted */
    size_t unreachable; /* live or pending nodes no level-0 walk from the entry point reaches */
    size_t unanchored;  /* nodes other than the entry point with no anchor (see hnsw.c) */
    size_t bad_anchors; /* anchors that do not link to their node or do not rank below it */
    size_t bad_links;   /* level-0 links to a free slot or past the last one */
} sx_index_check_result;

/* Walks the whole graph (O(nodes x M), a few ms per 10,000 nodes) and
 * fills *out (OUT). Inserts, deletes and vacuums wait meanwhile; searches
 * go on. Returns 0, or SX_ENOMEM. */
int sx_index_check(sx_index *ix, sx_index_check_result *out, sx_err *err);

/* The parameters the index was created with. */
sx_index_params sx_index_get_params(sx_index *ix);

/* ---- section framing (snapshot formats) ------------------------------------ */

/* A writer callback: writes len bytes; returns 0 or a negative SX_E* code. */
typedef int (*sx_write_fn)(void *ctx, const void *buf, size_t len);
/* A reader callback: reads exactly len bytes; returns 0 or a negative code. */
typedef int (*sx_read_fn)(void *ctx, void *buf, size_t len);

/* An output stream: every section's payload starts 64-byte aligned relative
 * to the start of the stream, so a loaded file can be used in place. */
typedef struct sx_sink {
    sx_write_fn write;
    void *ctx;
    uint64_t offset;  /* bytes written so far */
    uint32_t crc;     /* running CRC-32C of the current section's payload */
    int error;        /* first error, sticky */
} sx_sink;

/* An input: either a reader callback (stream) or a memory block (mapped). */
typedef struct sx_source {
    sx_read_fn read;      /* NULL for a memory block */
    void *ctx;
    const uint8_t *base;  /* memory block (when read is NULL) */
    uint64_t len;
    uint64_t offset;
    int verify_bulk;      /* mapped: 1 = check the CRC of bulk sections too */
    int file_mapping;     /* base is a read-only mapping of a file: pages of a
                           * bulk section are dropped from the process once
                           * checksummed (they stay in the page cache and fault
                           * back in on use), so verifying a large snapshot
                           * never makes it all resident at once */
} sx_source;

/* A section as read: data points into the mapping, or into owned memory
 * (released with sx_section_release). */
typedef struct sx_section {
    uint32_t tag;
    uint64_t len;
    const uint8_t *data;
    void *owned;
} sx_section;

#define SX_TAG(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* Writes raw bytes to the sink (inside a section: also CRC'd). */
int sx_sink_write(sx_sink *s, const void *buf, size_t len);
/* Little-endian scalars. */
int sx_sink_u32(sx_sink *s, uint32_t v);
int sx_sink_u64(sx_sink *s, uint64_t v);
int sx_sink_f32(sx_sink *s, float v);
/* Arrays of 32-bit values, written little-endian whatever the host. */
int sx_sink_u32_array(sx_sink *s, const void *a, size_t n);
/* Starts a section of exactly len payload bytes; ends it (CRC footer). */
int sx_sink_begin(sx_sink *s, uint32_t tag, uint64_t len);
int sx_sink_end(sx_sink *s);

/* Reads the next section, which must carry tag; checks its framing and CRC
 * (bulk = 1: a mapped source skips the CRC unless verify_bulk). */
int sx_source_section(sx_source *src, uint32_t tag, int bulk, sx_section *out, sx_err *err);
void sx_section_release(sx_section *sec);

/* Little-endian readers over a section with bounds checks: each returns 0, or
 * SX_ECORRUPT when fewer than the needed bytes remain at *pos. */
int sx_section_u32(const sx_section *sec, uint64_t *pos, uint32_t *v);
int sx_section_u64(const sx_section *sec, uint64_t *pos, uint64_t *v);
int sx_section_f32(const sx_section *sec, uint64_t *pos, float *v);

/* Writes the index (parameters, graph, codes, fp32 vectors) as sections.
 * Concurrent inserts/deletes wait; searches go on. */
int sx_index_save(sx_index *ix, sx_sink *out, sx_err *err);

/* Reads an index written by sx_index_save. From a memory source the fp32
 * vectors are used in place (the caller keeps the memory alive until
 * sx_index_free); everything else is copied. The graph is then ranked (two
 * passes over the level-0 links, about 40 ms per 400K nodes), and any node
 * an older build left unreachable is linked again. */
int sx_index_load(sx_source *src, sx_index **out, sx_err *err);

#endif /* SX_INDEX_H */
