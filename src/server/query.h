/*
 * query.h - a search as the API takes it, apart from HTTP: the request's
 * fields validated (a POST /search body, GET /search's and /similar's query
 * parameters made into the same JSON object, `semdex search`'s options
 * likewise), then run against a backend -- one or two backend searches by
 * mode, fused, filtered, sorted and paged -- into the results' JSON.
 *
 *     sx_query q;
 *     if (sx_query_parse(body, SX_QUERY_BODY, &q, &err) < 0) ... 400 err.msg
 *     cJSON *results = cJSON_CreateArray();
 *     sx_query_run(backend, &q, vec, 0, NULL, embed, ctx, results, &t, &st, &err);
 *
 * The modes, their scores and the constants below are described in
 * docs/search.md; the routes and the CLI share this one implementation.
 */
#ifndef SX_QUERY_H
#define SX_QUERY_H

#include <cjson/cJSON.h>

#include "../corpus/corpus.h"
#include "../shard/shard.h"
#include "backend.h"
#include "server.h"

/* The API's modes ("mode"), in the order of sx_query_modes. */
enum { SX_QMODE_SEMANTIC, SX_QMODE_KEYWORD, SX_QMODE_HYBRID, SX_QMODE_AUTHORS };
extern const char *const sx_query_modes[]; /* "semantic", ..., NULL */

/* Hybrid search fuses the best SX_HYBRID_DEPTH (or offset + top_k, when
 * more) of the semantic and the keyword ranking by reciprocal rank fusion:
 * score = sum over the rankings holding the paper of 1 / (SX_RRF_K + rank),
 * ranks from 1 (Cormack et al. 2009; 60 is their constant and
 * Elasticsearch's, Weaviate's and OpenSearch's default). */
#define SX_HYBRID_DEPTH 50
#define SX_RRF_K 60
/* sort=date orders the best SX_DATE_SORT_DEPTH (or offset + top_k, when
 * more) papers by relevance newest first. */
#define SX_DATE_SORT_DEPTH 100
/* Longest author name in a filter, in characters; most names in the
 * 'authors' list, and in an authors-mode query (the shard takes both). */
#define SX_AUTHOR_NAME_MAX_CHARS 200
#define SX_QUERY_AUTHORS_MAX (SX_AUTHOR_NAMES_MAX / 2)

/* What sx_query_parse reads. */
enum {
    SX_QUERY_BODY,    /* a POST /search body: "query" */
    SX_QUERY_ARGS,    /* GET /search's parameters: "q" */
    SX_QUERY_SIMILAR, /* /papers/{id}/similar's: no query, no mode */
};

/* The field names each kind accepts (NULL-terminated; the OpenAPI
 * document's properties and parameters, kept equal by a test). */
extern const char *const sx_search_fields[];
extern const char *const sx_search_params[];
extern const char *const sx_similar_params[];

typedef struct sx_query_cats {
    const char *categories[SX_CATEGORIES_MAX];
    int n;
    char buf[SX_CATEGORIES_BUF]; /* the codes the pointers point into */
} sx_query_cats;

/* A validated search. Its strings point into the JSON it was parsed from
 * (and into names). */
typedef struct sx_query {
    const char *query; /* NULL for /similar */
    int mode;          /* SX_QMODE_* */
    long top_k, offset, ef;
    sx_query_cats cats;
    const char *authors[SX_AUTHOR_NAMES_MAX]; /* the list's, then the query's */
    int n_authors;
    char names[4 * SX_QUERY_MAX_CHARS + 1];   /* authors mode: the query's names */
    const char *date_from, *date_to;          /* NULL: open */
    int sort_date;
    int has_min_score;
    double min_score;
} sx_query;

/* Validates req (a JSON object) as kind into *q (OUT): unknown fields, nulls,
 * wrong types, out-of-range values and a blank query are refused. 0 or
 * SX_EINVAL with a message for the client. */
int sx_query_parse(const cJSON *req, int kind, sx_query *q, sx_err *err);

/* One backend search: what to look for and what came back. */
typedef struct sx_query_search {
    sx_backend *b;
    sx_search_opts so;
    sx_hit *hits;
    int n, rc, done;
    double seconds;
    sx_backend_stats stats; /* where the search's time went */
    sx_err err;
} sx_query_search;

/* Runs the search ctx (an sx_query_search) with the query vector vec: the
 * callback an embedding batch may run it by (sx_batcher_embed), so that it
 * rides along on the encoder thread. */
void sx_query_search_run(void *ctx, const float *vec);

/* Whether x may ride along with an embedding batch: only searches of small,
 * bounded cost (no filter, which may fall back to a scan; modest k and ef),
 * since every query of the batch waits for the slowest. */
int sx_query_search_rides_along(const sx_query_search *x);

/* Fills vec with text's embedding; may run x (sx_query_search_run) on the
 * way, or leave it to the caller. 0 or a negative code. */
typedef int (*sx_query_embed_fn)(void *ctx, const char *text, float *vec, sx_query_search *x, sx_err *err);

/* Runs q on b and appends its page of results (sx_doc_json, plus a score
 * but in authors mode, and highlights when there is query text) to results.
 * vec: room for the query vector, or (have_vec) a vector to search with
 * (/similar's paper); embed fills it otherwise, for a semantic or hybrid
 * search. exclude: a paper id left out, or NULL. *t_index (OUT) the time
 * in backend searches, *stats (OUT) the last one's stages. 0 or the
 * backend's error. */
int sx_query_run(sx_backend *b, const sx_query *q, float *vec, int have_vec, const char *exclude,
                 sx_query_embed_fn embed, void *embed_ctx, cJSON *results, double *t_index,
                 sx_backend_stats *stats, sx_err *err);

/* SX_EINVAL naming the first member of obj that is not in known (with a
 * "did you mean" for a near miss); noun: what the members are to the client
 * ("field", "query parameter"). 0 when all are known. */
int sx_json_check_fields(const cJSON *obj, const char *const *known, const char *noun, sx_err *err);

#endif /* SX_QUERY_H */
