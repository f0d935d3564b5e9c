/*
 * cmd_search.c - `semdex search`: query a collection from the command line,
 * without a server (the collection directory must not be in use).
 */
#include <stdlib.h>
#include <string.h>

#include "../corpus/corpus.h"
#include "../model/model.h"
#include "../cluster/gateway.h"
#include "../server/backend.h"
#include "../server/query.h"
#include "../server/server.h"
#include "cli.h"

static const char *k_usage =
    "--data DIR [--model DIR] [-k N] [--offset N] [--mode M] [--categories a,b]\n"
    "                     [--authors NAME]... [--date-from D] [--date-to D] [--sort S]\n"
    "                     [--min-score X] [--ef N] [--int8] [--json] QUERY\n"
    "       semdex search --cluster HOST:PORT[,HOST:PORT...] [options] QUERY\n"
    "\n"
    "Prints the papers of the collection in DIR (or in the Redis Cluster reached\n"
    "through the seeds) that best match QUERY, one per line: rank, score, id,\n"
    "title. The options are POST /search's fields, checked by the same rules\n"
    "(docs/search.md). DIR must hold a collection (`semdex ingest` creates one).\n"
    "\n"
    "  --data DIR          collection directory\n"
    "  --cluster SEEDS     Redis Cluster nodes to start from\n"
    "  --model DIR         encoder model folder (models/all-MiniLM-L6-v2)\n"
    "  -k N                hits to print, 1..100 (10)\n"
    "  --offset N          skip the N best first (0): the page [N, N+k)\n"
    "  --mode M            semantic (by meaning; the default), keyword (BM25F over\n"
    "                      title, abstract, authors), hybrid (both, fused by\n"
    "                      reciprocal rank) or authors (QUERY holds names separated\n"
    "                      by ';'; their papers, newest first)\n"
    "  --categories a,b    only papers in one of these categories; cs.* for a whole\n"
    "                      archive\n"
    "  --authors NAME      only papers by NAME (repeat for any of several)\n"
    "  --date-from D       only papers updated on or after D (YYYY-MM-DD)\n"
    "  --date-to D         only papers updated on or before D\n"
    "  --sort S            relevance (default) or date (the best 100, newest first)\n"
    "  --min-score X       drop results scoring below X\n"
    "  --ef N              search breadth (the collection's default)\n"
    "  --int8              use the int8 encoder\n"
    "  --json              print one JSON object as POST /search answers it: results\n"
    "                      (paper_id, title, abstract, authors, categories,\n"
    "                      update_date, score, highlights), mode, offset, top_k\n";

/* The query vector for sx_query_run: the encoder's. */
static int embed_query(void *ctx, const char *text, float *vec, sx_query_search *x, sx_err *err) {
    (void)x; /* runs after the embedding */
    size_t len = strlen(text);
    return sx_encoder_embed(ctx, 1, &text, &len, vec, err);
}

/* Adds the option's value to the request: a number when it reads as one
 * (the parser then checks its range), else a string. */
static void add_value(cJSON *req, const char *name, const char *val, int numeric) {
    char *end;
    double d = numeric ? strtod(val, &end) : 0;
    cJSON_DeleteItemFromObjectCaseSensitive(req, name);
    if (numeric && *val && !*end) cJSON_AddNumberToObject(req, name, d);
    else cJSON_AddStringToObject(req, name, val);
}

/* Names the option where msg first names a request field ("'top_k' must
 * be ..." -> "-k must be ..."; later quotes are values, as in a list of
 * modes). */
static void name_options(char *msg, size_t cap) {
    static const char *const pairs[][2] = {
        {"'top_k'", "-k"}, {"'offset'", "--offset"}, {"'ef'", "--ef"}, {"'mode'", "--mode"},
        {"'date_from'", "--date-from"}, {"'date_to'", "--date-to"}, {"'sort'", "--sort"},
        {"'min_score'", "--min-score"}, {"'categories'", "--categories"}, {"'authors'", "--authors"},
        {"'query'", "QUERY"}};
    char *at = NULL;
    size_t which = 0;
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        char *p = strstr(msg, pairs[i][0]);
        if (p && (!at || p < at)) at = p, which = i;
    }
    if (!at) return;
    size_t ol = strlen(pairs[which][0]), nl = strlen(pairs[which][1]);
    if (strlen(msg) - ol + nl >= cap) return;
    memmove(at + nl, at + ol, strlen(at + ol) + 1);
    memcpy(at, pairs[which][1], nl);
}

int cli_cmd_search(int argc, char **argv) {
    const char *data = NULL, *cluster = NULL, *model = "models/all-MiniLM-L6-v2", *query = NULL;
    int int8 = 0, json = 0;
    if (cli_wants_help(argc, argv)) {
        printf("usage: semdex search %s", k_usage);
        return 0;
    }
    /* The options become a POST /search body, validated by its rules. */
    cJSON *req = cJSON_CreateObject(), *authors = NULL;
    static const struct {
        const char *opt, *field;
        int numeric;
    } fields[] = {{"-k", "top_k", 1},         {"--offset", "offset", 1},     {"--ef", "ef", 1},
                  {"--mode", "mode", 0},      {"--date-from", "date_from", 0}, {"--date-to", "date_to", 0},
                  {"--sort", "sort", 0},      {"--min-score", "min_score", 1}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--int8") == 0) { int8 = 1; continue; }
        if (strcmp(a, "--json") == 0) { json = 1; continue; }
        if (a[0] != '-' || !a[1]) {
            if (query) {
                cJSON_Delete(req);
                cli_fail("search", "one QUERY only (quote it): '%s' and '%s'", query, a);
                return cli_usage("search", k_usage);
            }
            query = a;
            continue;
        }
        if (!val) {
            cJSON_Delete(req);
            return cli_bad_option("search", a, k_usage);
        }
        i++;
        size_t f = 0;
        while (f < sizeof fields / sizeof *fields && strcmp(a, fields[f].opt) != 0) f++;
        if (f < sizeof fields / sizeof *fields) {
            add_value(req, fields[f].field, val, fields[f].numeric);
        } else if (strcmp(a, "--data") == 0) {
            data = val;
        } else if (strcmp(a, "--cluster") == 0) {
            cluster = val;
        } else if (strcmp(a, "--model") == 0) {
            model = val;
        } else if (strcmp(a, "--categories") == 0) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%s", val);
            for (char *c = buf; *c; c++)
                if (*c == ',') *c = ' ';
            add_value(req, "categories", buf, 0);
        } else if (strcmp(a, "--authors") == 0) {
            if (!authors) authors = cJSON_AddArrayToObject(req, "authors");
            cJSON_AddItemToArray(authors, cJSON_CreateString(val));
        } else {
            cJSON_Delete(req);
            return cli_bad_option("search", a, k_usage);
        }
    }
    if (!data == !cluster) {
        cJSON_Delete(req);
        cli_fail("search", data ? "--data and --cluster exclude each other" : "--data DIR or --cluster SEEDS is needed");
        return cli_usage("search", k_usage);
    }
    if (!query) {
        cJSON_Delete(req);
        cli_fail("search", "no QUERY given");
        return cli_usage("search", k_usage);
    }
    cJSON_AddStringToObject(req, "query", query);
    sx_err err = {0};
    sx_query *q = malloc(sizeof *q);
    if (!q || sx_query_parse(req, SX_QUERY_BODY, q, &err) < 0) {
        name_options(err.msg, sizeof err.msg);
        if (q) cli_fail("search", "%s", err.msg);
        else cli_fail("search", "out of memory");
        free(q);
        cJSON_Delete(req);
        return 2;
    }
    sx_encoder *enc = NULL;
    sx_backend *b = NULL;
    sx_encoder_opts eo = {.int8 = int8};
    int rc = sx_encoder_load(model, &eo, &enc, &err);
    sx_store_opts so = sx_store_defaults(rc == 0 ? sx_encoder_dim(enc) : 384);
    so.create = 0; /* a mistyped --data is an error, not a new collection */
    if (rc == 0 && data) rc = sx_backend_open_local(data, &so, &b, &err);
    if (rc == 0 && data && b->dim != sx_encoder_dim(enc))
        rc = sx_err_set(&err, SX_EINVAL, "%s holds %d-dimensional vectors but the model %s makes %d", data,
                        b->dim, model, sx_encoder_dim(enc));
    if (rc == 0 && cluster) {
        sx_gateway_opts go = sx_gateway_defaults();
        go.dim = sx_encoder_dim(enc);
        rc = sx_backend_open_cluster(cluster, &go, &b, &err);
    }
    float *vec = rc == 0 ? malloc((size_t)sx_encoder_dim(enc) * sizeof *vec) : NULL;
    if (rc == 0 && !vec) rc = sx_err_set(&err, SX_ENOMEM, "out of memory");
    cJSON *out = cJSON_CreateObject(), *results = cJSON_AddArrayToObject(out, "results");
    double t_index;
    sx_backend_stats st;
    if (rc == 0) rc = sx_query_run(b, q, vec, 0, NULL, embed_query, enc, results, &t_index, &st, &err);
    if (rc == 0 && json) {
        cJSON_AddStringToObject(out, "mode", sx_query_modes[q->mode]);
        cJSON_AddNumberToObject(out, "offset", (double)q->offset);
        cJSON_AddNumberToObject(out, "top_k", (double)q->top_k);
        char *text = cJSON_PrintUnformatted(out);
        if (text) puts(text);
        else rc = sx_err_set(&err, SX_ENOMEM, "out of memory");
        free(text);
    }
    const cJSON *r;
    long rank = q->offset;
    if (rc == 0 && !json)
        cJSON_ArrayForEach(r, results) {
            const cJSON *score = cJSON_GetObjectItemCaseSensitive(r, "score");
            char sc[16] = "     -";
            if (cJSON_IsNumber(score)) snprintf(sc, sizeof sc, "%.4f", score->valuedouble);
            printf("%2ld  %s  %-16s  %s\n", ++rank, sc, cJSON_GetObjectItemCaseSensitive(r, "paper_id")->valuestring,
                   cJSON_GetObjectItemCaseSensitive(r, "title")->valuestring);
        }
    cJSON_Delete(out);
    cJSON_Delete(req);
    free(q);
    free(vec);
    sx_backend_close(b);
    sx_encoder_free(enc);
    return rc < 0 ? cli_fail("search", "%s", err.msg) : 0;
}
