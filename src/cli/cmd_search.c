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
#include "../server/server.h"
#include "cli.h"

static const char *k_usage =
    "--data DIR [--model DIR] [-k N] [--offset N] [--categories a,b] [--ef N]\n"
    "                     [--int8] [--json] QUERY\n"
    "       semdex search --cluster HOST:PORT[,HOST:PORT...] [options] QUERY\n"
    "\n"
    "Prints the papers of the collection in DIR (or in the Redis Cluster reached\n"
    "through the seeds) closest in meaning to QUERY, one per line: rank, score,\n"
    "id, title. DIR must hold a collection (`semdex ingest` creates one).\n"
    "\n"
    "  --data DIR          collection directory\n"
    "  --cluster SEEDS     Redis Cluster nodes to start from\n"
    "  --model DIR         encoder model folder (models/all-MiniLM-L6-v2)\n"
    "  -k N                hits to print (10)\n"
    "  --offset N          skip the N best first (0): the page [N, N+k)\n"
    "  --categories a,b    only papers in one of these categories\n"
    "  --ef N              search breadth (the collection's default)\n"
    "  --int8              use the int8 encoder\n"
    "  --json              print one JSON object as POST /search answers it: results\n"
    "                      (paper_id, title, abstract, authors, categories,\n"
    "                      update_date, score), offset, top_k\n";

int cli_cmd_search(int argc, char **argv) {
    const char *data = NULL, *cluster = NULL, *model = "models/all-MiniLM-L6-v2", *query = NULL;
    char cats_buf[1024] = "";
    const char *cats[SX_CATEGORIES_MAX];
    int n_cats = 0, int8 = 0, json = 0;
    long k = 10, ef = 0, offset = 0;
    if (cli_wants_help(argc, argv)) {
        printf("usage: semdex search %s", k_usage);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--int8") == 0) { int8 = 1; continue; }
        if (strcmp(a, "--json") == 0) { json = 1; continue; }
        if (a[0] != '-' || !a[1]) {
            if (query) {
                cli_fail("search", "one QUERY only (quote it): '%s' and '%s'", query, a);
                return cli_usage("search", k_usage);
            }
            query = a;
            continue;
        }
        if (!val) return cli_bad_option("search", a, k_usage);
        i++;
        if (strcmp(a, "--data") == 0) data = val;
        else if (strcmp(a, "--cluster") == 0) cluster = val;
        else if (strcmp(a, "--model") == 0) model = val;
        else if (strcmp(a, "-k") == 0) {
            if (cli_parse_int("search", a, val, 1, 1000, &k) < 0) return 2;
        } else if (strcmp(a, "--offset") == 0) {
            if (cli_parse_int("search", a, val, 0, SX_OFFSET_MAX, &offset) < 0) return 2;
        } else if (strcmp(a, "--ef") == 0) {
            if (cli_parse_int("search", a, val, 1, SX_EF_MAX, &ef) < 0) return 2;
        } else if (strcmp(a, "--categories") == 0) {
            snprintf(cats_buf, sizeof cats_buf, "%s", val);
            char *save = NULL;
            for (char *c = strtok_r(cats_buf, ", ", &save); c; c = strtok_r(NULL, ", ", &save)) {
                sx_err cerr = {0};
                if (n_cats == SX_CATEGORIES_MAX) sx_err_set(&cerr, SX_EINVAL, "more than %d categories", SX_CATEGORIES_MAX);
                else sx_category_check(c, strlen(c), &cerr); /* the API's rule: "cs" and "CS.LG" get a hint */
                if (cerr.code) {
                    cli_fail("search", "--categories: %s", cerr.msg);
                    return 2;
                }
                cats[n_cats++] = c;
            }
        } else {
            return cli_bad_option("search", a, k_usage);
        }
    }
    if (!data == !cluster) {
        cli_fail("search", data ? "--data and --cluster exclude each other" : "--data DIR or --cluster SEEDS is needed");
        return cli_usage("search", k_usage);
    }
    if (!query) {
        cli_fail("search", "no QUERY given");
        return cli_usage("search", k_usage);
    }
    sx_err err = {0};
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
    int dim = rc == 0 ? sx_encoder_dim(enc) : 0;
    float *vec = rc == 0 ? malloc((size_t)dim * sizeof *vec) : NULL;
    sx_hit *hits = rc == 0 ? malloc((size_t)(offset + k) * sizeof *hits) : NULL;
    if (rc == 0 && (!vec || !hits)) rc = sx_err_set(&err, SX_ENOMEM, "out of memory");
    size_t len = strlen(query);
    if (rc == 0) rc = sx_encoder_embed(enc, 1, &query, &len, vec, &err);
    int n = 0;
    sx_search_opts o = {.k = (int)(offset + k), .ef = (int)ef, .categories = cats, .n_categories = n_cats,
                        .with_docs = 1};
    if (rc == 0) rc = sx_backend_search(b, vec, &o, hits, &n, NULL, &err);
    if (rc == 0 && json) {
        cJSON *out = cJSON_CreateObject(), *results = cJSON_AddArrayToObject(out, "results");
        for (int i = (int)offset; i < n; i++) cJSON_AddItemToArray(results, sx_doc_json(hits[i].doc, &hits[i].score));
        cJSON_AddNumberToObject(out, "offset", (double)offset);
        cJSON_AddNumberToObject(out, "top_k", (double)k);
        char *text = cJSON_PrintUnformatted(out);
        if (text) puts(text);
        else rc = sx_err_set(&err, SX_ENOMEM, "out of memory");
        free(text);
        cJSON_Delete(out);
    }
    for (int i = (int)offset; rc == 0 && !json && i < n; i++)
        printf("%2d  %.4f  %-16s  %s\n", i + 1, hits[i].score, hits[i].id, hits[i].doc->title);
    sx_hits_release(hits, n);
    free(vec);
    free(hits);
    sx_backend_close(b);
    sx_encoder_free(enc);
    return rc < 0 ? cli_fail("search", "%s", err.msg) : 0;
}
