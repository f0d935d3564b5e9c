/*
 * keyword.h - the keyword index of a shard: an analyser for paper text
 * (Unicode, LaTeX, hyphenated identifiers), an author-name normaliser, and
 * an inverted index over title, abstract and authors ranked by BM25F, with
 * highlight spans and serialisation to the snapshot's section framing.
 *
 *     sx_kw_params p = sx_kw_params_default();
 *     sx_kw_index *kw;
 *     sx_kw_index_create(&p, &kw, &err);
 *     sx_kw_index_add(kw, node, d->title, d->abstract, d->authors, &err);
 *     sx_kw_index_remove(kw, old_node, &err);        // an upsert's old version
 *     sx_kw_query q = {.k = 10, .filter = in_category, .filter_ctx = bitmap};
 *     sx_kw_hit hits[10]; int n;
 *     sx_kw_index_search(kw, "ResNet-50 pruning", &q, hits, &n, &err);
 *     sx_kw_span sp[16]; int ns;                     // highlights for a hit
 *     sx_kw_highlight("ResNet-50 pruning", title, strlen(title), sp, 16, &ns);
 *     sx_kw_index_save(kw, &sink, &err);             // sections, as shard.c
 *     sx_kw_index_free(kw);
 *
 * Documents are named by the caller's 32-bit slot (the shard's node id), so
 * a hit maps straight to the shard's record and the shard's bitmaps can
 * serve as the filter. The index never stores the text.
 *
 * Threads: one writer or many readers. sx_kw_index_search, _highlight,
 * _stats, _save and _author_docs only read and may run in parallel with each
 * other; _add, _remove and _maintain change the index and need it to
 * themselves. The caller holds the lock (the shard's rwlock): the index has
 * none. Memory goes through the allocator of sx_index_set_allocator.
 *
 * The analyser and BM25F parameters are described in keyword.c and
 * docs/search.md.
 */
#ifndef SX_KEYWORD_H
#define SX_KEYWORD_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sx.h"
#include "../index/index.h"

/* ---- the analyser (analyze.c) ---- */

/* Longest term, in bytes after normalisation; longer words are dropped. */
#define SX_KW_TERM_MAX 64

/* Flags of sx_kw_analyze. */
enum {
    SX_KW_KEEP_STOP = 1,  /* keep stop words (the authors field, names) */
    SX_KW_SKIP_SHORT = 2, /* drop one-byte terms (initials in author lists) */
    SX_KW_JOIN_ONLY = 4,  /* a hyphenated compound gives its joined term only,
                             not its parts ("jean-pierre" -> "jeanpierre") */
};

/* Called once per term, in text order: the normalised term (len bytes, not
 * NUL-terminated, at most SX_KW_TERM_MAX) and the byte span [start, end) of
 * the original text it came from. A hyphenated compound gives its parts
 * first, then the joined term spanning the whole compound. A non-zero
 * return stops the analysis and is returned by sx_kw_analyze. */
typedef int (*sx_kw_term_fn)(void *ctx, const char *term, size_t len, size_t start, size_t end);

/* Splits text[0..len) into terms (see keyword.c: NFKC, case fold, accents
 * stripped, LaTeX markup dropped, split on non-letters/non-digits, stop
 * words dropped unless SX_KW_KEEP_STOP). Invalid UTF-8 bytes separate
 * words. Returns 0 or the first non-zero return of fn. */
int sx_kw_analyze(const char *text, size_t len, int flags, sx_kw_term_fn fn, void *ctx);

/* 1 when the normalised term (len bytes) is on the stop list, else 0. */
int sx_kw_is_stop(const char *term, size_t len);

/* A byte range [start, end) of a text. */
typedef struct sx_kw_span {
    uint32_t start, end;
} sx_kw_span;

/* The spans of text[0..len) whose terms are among the query's terms
 * (analysed the same way as the index does), in order, overlapping spans
 * merged. Every span starts and ends on a UTF-8 character boundary of the
 * original text and covers whole words (a LaTeX accent inside a word, as in
 * Schr\"odinger, stays inside its span). Writes up to max spans to spans
 * (OUT) and their count to *n (OUT); extra matches are left out. Returns 0,
 * or SX_ENOMEM. */
int sx_kw_highlight(const char *query, const char *text, size_t len, sx_kw_span *spans, int max,
                    int *n);

/* ---- author names (analyze.c) ---- */

/* Longest normalised name, in bytes (with its NUL). */
#define SX_KW_NAME_MAX 256

/* Normalises one author name into out (OUT, cap bytes, NUL-terminated):
 * "surname given1 given2 ...", every word analysed as a term (accents
 * stripped, case-folded, hyphens joined), "Last, First" reordered, text in
 * parentheses, particles (van, von, de, der, ...) and suffixes (Jr., III)
 * dropped. "J. K. Bhattacharjee" and "Bhattacharjee, J.K." both give
 * "bhattacharjee j k". Returns the length, 0 for a name without a surname,
 * or SX_EFULL when it does not fit. */
int sx_kw_author_norm(const char *name, size_t len, char *out, size_t cap);

/* 1 when two normalised names denote the same person as far as names tell:
 * equal surnames, and given names compatible pairwise as far as both go
 * (equal, or one is the initial of the other). "smith j" matches "smith
 * john" and "smith", not "smith jane k" versus "smith john". */
int sx_kw_author_same(const char *a, const char *b);

/* How well the author list (a paper's authors field: names separated by
 * commas, semicolons, "and" or "&") matches the n normalised names: 2 when
 * it holds one of them exactly (same surname and given names as written,
 * after normalisation), 1 when it only holds a name sx_kw_author_same as
 * one ("J. Smith" for "john smith"), 0 when neither. */
int sx_kw_authors_match(const char *authors, const char *const *names, int n);

/* ---- the index (keyword.c, keyword_io.c) ---- */

typedef struct sx_kw_index sx_kw_index;

/* The fields of a paper the index knows. */
enum { SX_KW_TITLE = 0, SX_KW_ABSTRACT = 1, SX_KW_AUTHORS = 2, SX_KW_NFIELDS = 3 };

/* BM25F: a document's pseudo term frequency is the sum over fields of
 * weight[f] * tf_f / (1 - b[f] + b[f] * len_f / avglen_f); its score is
 * sum over query terms of idf * tf / (k1 + tf), with
 * idf = ln(1 + (N - df + 0.5) / (df + 0.5)). */
typedef struct sx_kw_params {
    float k1;                   /* 1.2 */
    float b[SX_KW_NFIELDS];     /* 0.75, 0.75, 0.75 */
    float weight[SX_KW_NFIELDS]; /* title 2, abstract 1, authors 1 */
} sx_kw_params;

sx_kw_params sx_kw_params_default(void);

/* Largest slot + 1 the index takes. */
#define SX_KW_MAX_SLOTS (1u << 30)

/* Creates an empty index. SX_EINVAL for parameters out of range (k1 in
 * (0, 10], b in [0, 1], weights in [0, 100] and not all 0). */
int sx_kw_index_create(const sx_kw_params *p, sx_kw_index **out, sx_err *err);

/* Frees the index. NULL: no-op. */
void sx_kw_index_free(sx_kw_index *ix);

/* Indexes a paper under slot (< SX_KW_MAX_SLOTS). Fields may be NULL. A
 * slot already present is replaced. SX_EINVAL for a bad slot, SX_ENOMEM,
 * SX_EFULL after 2^32 - 2 adds without a compaction. On error the index
 * answers as before (a unit test fails each allocation in turn). */
int sx_kw_index_add(sx_kw_index *ix, uint32_t slot, const char *title, const char *abstract,
                    const char *authors, sx_err *err);

/* Removes the paper of slot: it is never returned again and the collection
 * statistics (N, average lengths, document frequencies) no longer count it.
 * Its postings stay, skipped, until a compaction (sx_kw_index_maintain),
 * which a remove runs itself when due. SX_ENOTFOUND when the slot holds no
 * paper. */
int sx_kw_index_remove(sx_kw_index *ix, uint32_t slot, sx_err *err);

/* 1 when slot holds a paper. */
int sx_kw_index_contains(const sx_kw_index *ix, uint32_t slot);

/* 1 when removed papers' postings make up enough of the index (a quarter
 * of the papers, at least 1024) that sx_kw_index_maintain would compact. */
int sx_kw_index_maintenance_due(const sx_kw_index *ix);

/* Compacts now if due (force = 1: always): rewrites the postings without
 * removed papers and drops terms nobody uses. Search results are the same
 * before and after. 0 or SX_ENOMEM (the index is then unchanged). */
int sx_kw_index_maintain(sx_kw_index *ix, int force, sx_err *err);

/* Return 1 to accept slot, 0 to skip it. Called only for papers that would
 * enter the top k, at most once each, from the searching thread. */
typedef int (*sx_kw_filter_fn)(void *ctx, uint32_t slot);

typedef struct sx_kw_query {
    int k;                    /* hits wanted, 1..10000 */
    unsigned fields;          /* bit f set: match field f; 0 = all fields */
    sx_kw_filter_fn filter;   /* NULL = every paper */
    void *filter_ctx;
} sx_kw_query;

typedef struct sx_kw_hit {
    float score;   /* BM25F, > 0, higher is better */
    uint32_t slot;
} sx_kw_hit;

/* The top q->k papers for the query text by BM25F, best first (ties by
 * slot ascending), into hits (OUT, room for q->k); *n_hits (OUT) how many.
 * A paper matches when it holds any query term in a field asked for. A
 * query with no terms (blank, or only stop words) gives 0 hits. SX_EINVAL
 * for a bad k, SX_ENOMEM. */
int sx_kw_index_search(const sx_kw_index *ix, const char *query, const sx_kw_query *q,
                       sx_kw_hit *hits, int *n_hits, sx_err *err);

/* Calls fn(ctx, slot) for every paper whose authors field holds the surname
 * of name (normalised as sx_kw_author_norm does): the candidates of an
 * authors filter, to be confirmed with sx_kw_authors_match on the paper's
 * authors. Stops at a non-zero return of fn and returns it; 0 otherwise
 * (also when the name has no surname). */
int sx_kw_index_author_docs(const sx_kw_index *ix, const char *name,
                            int (*fn)(void *ctx, uint32_t slot), void *ctx);

/* Counts and memory. */
typedef struct sx_kw_stats {
    size_t docs;           /* papers */
    size_t removed;        /* removed papers whose postings await compaction */
    size_t terms;          /* distinct terms in the dictionary */
    size_t postings;       /* (term, paper) entries, removed papers' included */
    size_t bytes_postings; /* encoded postings (allocated) */
    size_t bytes_dict;     /* term table, term strings, hash table */
    size_t bytes_docs;     /* per-paper lengths and the slot map */
    double avg_len[SX_KW_NFIELDS]; /* average field length in terms */
} sx_kw_stats;

/* Fills *out (OUT). */
void sx_kw_index_stats(const sx_kw_index *ix, sx_kw_stats *out);

/* The parameters the index was created with. */
sx_kw_params sx_kw_index_params(const sx_kw_index *ix);

/* ---- serialisation (keyword_io.c) ---- */

/* Writes the index as three sections (KWHD header, KWDC papers, KWPO
 * terms and postings; see keyword_io.c) into out, which may be the sink of
 * a shard snapshot. Writer errors are returned. */
int sx_kw_index_save(const sx_kw_index *ix, sx_sink *out, sx_err *err);

/* Reads an index written by sx_kw_index_save from src. Every slot must be
 * below max_slots (the shard's sx_index_slots; at most SX_KW_MAX_SLOTS).
 * Everything is checked, as the bytes may be hostile: framing and CRCs,
 * the version, the parameters, every posting list decoded in full (paper
 * numbers increasing and in range, frequencies within the paper's field
 * lengths, varints in bounds), terms unique and well-formed, statistics
 * equal to the sum of the papers'. SX_ECORRUPT with a message naming the
 * section and what is wrong; SX_EUNSUPPORTED for another format version.
 * Nothing is leaked on error. */
int sx_kw_index_load(sx_source *src, uint32_t max_slots, sx_kw_index **out, sx_err *err);

/* sx_kw_index_save into a byte buffer: *out (OUT) allocated with
 * sx_index_malloc (free with sx_index_free_mem), *len (OUT) bytes. */
int sx_kw_index_save_buf(const sx_kw_index *ix, void **out, size_t *len, sx_err *err);

/* sx_kw_index_load from len bytes at buf (which need not stay alive). */
int sx_kw_index_load_buf(const void *buf, size_t len, uint32_t max_slots, sx_kw_index **out,
                         sx_err *err);

#endif /* SX_KEYWORD_H */
