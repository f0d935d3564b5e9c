/*
 * cmd_ingest.c - `semdex ingest`: load arXiv JSON lines into a collection.
 *
 * Records are read, validated (corpus/record.c), embedded in batches (title,
 * newline, abstract) or taken from a precomputed .npy, and upserted batch by
 * batch: every batch is durable when the next one starts, so an interrupted
 * ingest keeps what it acknowledged and a re-run upserts the rest. Malformed
 * lines are counted and reported, never fatal. At the end the collection is
 * checkpointed so the server starts without replaying the log.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../corpus/corpus.h"
#include "../model/model.h"
#include "../server/backend.h"
#include "../cluster/gateway.h"
#include "cli.h"
#include "progress.h"

static const char *k_usage =
    "--data DIR [options] FILE...\n"
    "       semdex ingest --cluster HOST:PORT[,HOST:PORT...] [options] FILE...\n"
    "\n"
    "Reads Kaggle arXiv metadata JSON lines (plain, .gz or .zst; '-' is stdin) into the\n"
    "collection in DIR (created when it holds none), or into a Redis Cluster running the semdex\n"
    "module. Existing ids are replaced.\n"
    "\n"
    "  --data DIR          collection directory\n"
    "  --cluster SEEDS     Redis Cluster nodes to start from (papers are embedded here and\n"
    "                      sent to their shard keys' masters, batched and pipelined)\n"
    "  --wait N            cluster: replicas each batch must reach (1 when there are any)\n"
    "  --model DIR         encoder model folder (models/all-MiniLM-L6-v2)\n"
    "  --embeddings F.npy  take vectors from this float32 (rows, dim) .npy instead of\n"
    "                      the encoder: row i belongs to the i-th non-empty input line\n"
    "  --limit N           stop after N papers\n"
    "  --per-archive N     take at most N papers of each arXiv archive (the primary\n"
    "                      category's part before the dot: cs, math, hep-th, q-bio...),\n"
    "                      in input order, skipping the rest: a sample spread over the\n"
    "                      fields (with --limit, the total is capped too)\n"
    "  --batch N           papers per batch (256)\n"
    "  --threads N         encoder threads (all cores)\n"
    "  --int8              use the int8 encoder\n"
    "  --shards S          shards of a new collection (1; cluster: shard keys, 16)\n"
    "  --storage sq8|fp32  vector storage of a new collection (sq8)\n"
    "  --quiet             no progress output\n"
    "  --accept-log-loss   open DIR even though its write-ahead log is missing,\n"
    "                      empty, foreign or damaged, losing the writes it held\n"
    "                      (see docs/operations.md, Recovery)\n";

#define MAX_REPORTED 10
#define MAX_ARCHIVES 96 /* arXiv has about 40; more share the last slot */

typedef struct {
    const char *data_dir, *cluster, *model_dir, *npy_path;
    long limit, batch, per_archive;
    int threads, int8, quiet;
    sx_store_opts store;
    sx_gateway_opts gateway;
} ingest_opts;

typedef struct {
    ingest_opts o;
    sx_encoder *enc;
    sx_npy *npy;
    sx_backend *backend;
    int dim;
    sx_record *recs;
    uint64_t *rows;   /* .npy row of each batched record */
    int n;            /* records in the batch */
    float *vecs;
    uint64_t row;     /* non-empty input lines seen */
    uint64_t ingested, malformed;
    char reported[MAX_REPORTED][300];
    int fatal;
    /* --per-archive: papers taken per archive so far */
    struct { char name[24]; long taken; } archives[MAX_ARCHIVES];
    int n_archives;
    uint64_t skipped;
} ingest;

static int parse_args(int argc, char **argv, ingest_opts *o, int *first_file) {
    long v;
    *o = (ingest_opts){.model_dir = "models/all-MiniLM-L6-v2", .batch = 256, .limit = -1};
    o->store = sx_store_defaults(384);
    o->gateway = sx_gateway_defaults();
    o->store.create = 1; /* ingest is what creates a collection */
    if (cli_wants_help(argc, argv)) {
        printf("usage: semdex ingest %s", k_usage);
        return -1;
    }
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--int8") == 0) { o->int8 = 1; continue; }
        if (strcmp(a, "--quiet") == 0) { o->quiet = 1; continue; }
        if (strcmp(a, "--accept-log-loss") == 0) { o->store.accept_log_loss = 1; continue; }
        if (!val) return cli_bad_option("ingest", a, k_usage);
        i++;
        if (strcmp(a, "--data") == 0) o->data_dir = val;
        else if (strcmp(a, "--cluster") == 0) o->cluster = val;
        else if (strcmp(a, "--wait") == 0) {
            if (cli_parse_int("ingest", a, val, 0, 16, &v) < 0) return 2;
            o->gateway.wait_replicas = (int)v;
        }
        else if (strcmp(a, "--model") == 0) o->model_dir = val;
        else if (strcmp(a, "--embeddings") == 0) o->npy_path = val;
        else if (strcmp(a, "--limit") == 0) {
            if (cli_parse_int("ingest", a, val, 0, 1L << 40, &o->limit) < 0) return 2;
        } else if (strcmp(a, "--per-archive") == 0) {
            if (cli_parse_int("ingest", a, val, 1, 1L << 40, &o->per_archive) < 0) return 2;
        } else if (strcmp(a, "--batch") == 0) {
            if (cli_parse_int("ingest", a, val, 1, 4096, &o->batch) < 0) return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (cli_parse_int("ingest", a, val, 0, 1024, &v) < 0) return 2;
            o->threads = (int)v;
        } else if (strcmp(a, "--shards") == 0) {
            if (cli_parse_int("ingest", a, val, 1, SX_GATEWAY_MAX_SHARDS, &v) < 0) return 2;
            o->store.n_shards = (int)v;
            o->gateway.n_shards = (int)v;
        } else if (strcmp(a, "--storage") == 0) {
            if (strcmp(val, "sq8") == 0) o->store.params.storage = SX_STORAGE_SQ8;
            else if (strcmp(val, "fp32") == 0) o->store.params.storage = SX_STORAGE_FP32;
            else return cli_fail("ingest", "--storage must be sq8 or fp32"), 2;
        } else {
            return cli_bad_option("ingest", a, k_usage);
        }
    }
    if (!o->data_dir == !o->cluster) {
        cli_fail("ingest", o->data_dir ? "--data and --cluster exclude each other"
                                       : "--data DIR or --cluster SEEDS is needed");
        return cli_usage("ingest", k_usage);
    }
    if (i >= argc) {
        cli_fail("ingest", "no input FILE given");
        return cli_usage("ingest", k_usage);
    }
    if (o->data_dir && o->store.n_shards > 256) return cli_fail("ingest", "--shards must be 1..256 for --data"), 2;
    *first_file = i;
    return 0;
}

static void report_malformed(ingest *g, const char *file, uint64_t line, const char *why) {
    if (g->malformed < MAX_REPORTED)
        snprintf(g->reported[g->malformed], sizeof g->reported[0], "%.100s:%llu: %.160s", file,
                 (unsigned long long)line, why);
    g->malformed++;
}

/* Embeds (or looks up) and upserts the batched records. */
static int flush(ingest *g, sx_err *err) {
    if (g->n == 0) return 0;
    int rc = 0;
    sx_doc *docs = calloc((size_t)g->n, sizeof *docs);
    char **texts = calloc((size_t)g->n, sizeof *texts);
    size_t *lens = calloc((size_t)g->n, sizeof *lens);
    if (!docs || !texts || !lens) rc = sx_err_set(err, SX_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < g->n; i++) {
        docs[i] = g->recs[i].doc;
        if (g->npy) {
            float *v = g->vecs + (size_t)i * (size_t)g->dim;
            sx_npy_row(g->npy, g->rows[i], v);
            sx_l2_normalize(v, g->dim);
            continue;
        }
        lens[i] = sx_record_text(&docs[i], NULL, 0);
        if (!(texts[i] = malloc(lens[i] + 1))) rc = sx_err_set(err, SX_ENOMEM, "out of memory");
        else sx_record_text(&docs[i], texts[i], lens[i] + 1);
    }
    if (rc == 0 && !g->npy) rc = sx_encoder_embed(g->enc, g->n, (const char *const *)texts, lens, g->vecs, err);
    if (rc == 0) rc = sx_backend_upsert(g->backend, g->n, docs, g->vecs, err);
    if (rc == 0) g->ingested += (uint64_t)g->n;
    for (int i = 0; i < g->n; i++) {
        if (texts) free(texts[i]);
        sx_record_clear(&g->recs[i]);
    }
    free(docs);
    free(texts);
    free(lens);
    g->n = 0;
    return rc;
}

/* --per-archive: whether the record's archive (its first category up to
 * the dot; "" without categories) still has room, counting it if so. */
static int archive_has_room(ingest *g, const sx_record *r) {
    const char *c = r->doc.categories ? r->doc.categories : "";
    size_t n = strcspn(c, ". ");
    char name[24];
    snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), c);
    int i = 0;
    while (i < g->n_archives && strcmp(g->archives[i].name, name) != 0) i++;
    if (i == g->n_archives) {
        if (i == MAX_ARCHIVES) i = MAX_ARCHIVES - 1;
        else snprintf(g->archives[g->n_archives++].name, sizeof name, "%s", name);
    }
    if (g->archives[i].taken >= g->o.per_archive) return 0;
    g->archives[i].taken++;
    return 1;
}

static int done(const ingest *g) { return g->o.limit >= 0 && g->ingested + (uint64_t)g->n >= (uint64_t)g->o.limit; }

/* Reads one file; returns 0, or a negative code for a fatal error (the
 * message is printed). A damaged file stops that file only. */
static int ingest_file(ingest *g, const char *path, cli_progress *pr, uint64_t *bytes_before,
                       uint64_t bytes_total) {
    sx_lines *in;
    sx_err err = {0};
    if (sx_lines_open(path, &in, &err) < 0) {
        cli_fail("ingest", "%s", err.msg);
        g->fatal = 1;
        return 0;
    }
    const char *line;
    size_t len;
    int rc;
    while (!done(g) && (rc = sx_lines_next(in, &line, &len, &err)) != 0) {
        if (rc == SX_EFULL) {
            g->row++;
            report_malformed(g, path, sx_lines_number(in), "line too long");
            continue;
        }
        if (rc < 0) { /* unreadable from here on */
            cli_fail("ingest", "%s (stopped reading this file)", err.msg);
            g->fatal = 1;
            break;
        }
        if (len == 0 || strspn(line, " \t") == len) continue;
        uint64_t row = g->row++;
        if (g->npy && row >= sx_npy_rows(g->npy)) {
            cli_fail("ingest", "%s has %llu rows but the input has more lines", g->o.npy_path,
                     (unsigned long long)sx_npy_rows(g->npy));
            sx_lines_close(in);
            return SX_EINVAL;
        }
        if (sx_record_parse(line, len, &g->recs[g->n], &err) < 0) {
            report_malformed(g, path, sx_lines_number(in), err.msg);
            continue;
        }
        if (g->o.per_archive > 0 && !archive_has_room(g, &g->recs[g->n])) {
            sx_record_clear(&g->recs[g->n]);
            g->skipped++;
            continue;
        }
        g->rows[g->n++] = row;
        if (g->n == (int)g->o.batch && (rc = flush(g, &err)) < 0) {
            cli_fail("ingest", "%s", err.msg);
            sx_lines_close(in);
            return rc;
        }
        uint64_t used, total;
        sx_lines_progress(in, &used, &total);
        if (!g->o.quiet) {
            /* With --limit the job ends at the limit, usually long before the input does. */
            double f = bytes_total ? (double)(*bytes_before + used) / (double)bytes_total : -1;
            if (g->o.limit > 0) {
                double fl = (double)(g->ingested + (uint64_t)g->n) / (double)g->o.limit;
                if (fl > f) f = fl;
            }
            cli_progress_update(pr, g->ingested, f);
        }
    }
    uint64_t used, total;
    sx_lines_progress(in, &used, &total);
    *bytes_before += total ? total : used;
    sx_lines_close(in);
    return 0;
}

static int setup(ingest *g, sx_err *err) {
    int rc;
    if (g->o.npy_path) {
        if ((rc = sx_npy_open(g->o.npy_path, &g->npy, err)) < 0) return rc;
        g->dim = sx_npy_cols(g->npy);
    } else {
        sx_encoder_opts eo = {.n_threads = g->o.threads, .int8 = g->o.int8};
        if ((rc = sx_encoder_load(g->o.model_dir, &eo, &g->enc, err)) < 0) return rc;
        g->dim = sx_encoder_dim(g->enc);
    }
    if (g->o.cluster) {
        sx_gateway_opts go = g->o.gateway;
        go.dim = g->dim;
        go.replica_reads = 0;
        if ((rc = sx_backend_open_cluster(g->o.cluster, &go, &g->backend, err)) < 0) return rc;
    } else {
        sx_store_opts so = g->o.store;
        so.params.dim = g->dim;
        so.n_threads = g->o.threads;
        if ((rc = sx_backend_open_local(g->o.data_dir, &so, &g->backend, err)) < 0) return rc;
        if (g->backend->dim != g->dim)
            return sx_err_set(err, SX_EINVAL, "%s holds %d-dimensional vectors, the input gives %d",
                              g->o.data_dir, g->backend->dim, g->dim);
    }
    g->recs = calloc((size_t)g->o.batch, sizeof *g->recs);
    g->rows = calloc((size_t)g->o.batch, sizeof *g->rows);
    g->vecs = malloc((size_t)g->o.batch * (size_t)g->dim * sizeof *g->vecs);
    if (!g->recs || !g->rows || !g->vecs) return sx_err_set(err, SX_ENOMEM, "out of memory");
    return 0;
}

static void teardown(ingest *g) {
    for (int i = 0; g->recs && i < g->n; i++) sx_record_clear(&g->recs[i]);
    free(g->recs);
    free(g->rows);
    free(g->vecs);
    sx_backend_close(g->backend);
    sx_encoder_free(g->enc);
    sx_npy_close(g->npy);
}

static uint64_t total_bytes(int argc, char **argv, int first) {
    uint64_t total = 0;
    for (int i = first; i < argc; i++) {
        FILE *f = strcmp(argv[i], "-") == 0 ? NULL : fopen(argv[i], "rb");
        if (!f) return 0; /* unknown: no ETA */
        fseek(f, 0, SEEK_END);
        total += (uint64_t)ftell(f);
        fclose(f);
    }
    return total;
}

int cli_cmd_ingest(int argc, char **argv) {
    ingest g = {0};
    int first = 0;
    int st = parse_args(argc, argv, &g.o, &first);
    if (st) return st < 0 ? 0 : st; /* -1: --help was printed */
    sx_err err = {0};
    double t0 = sx_now();
    int rc = setup(&g, &err);
    if (rc < 0) {
        teardown(&g);
        return cli_fail("ingest", "%s", err.msg);
    }
    cli_progress pr;
    cli_progress_start(&pr, stderr, "papers");
    uint64_t bytes_done = 0, bytes_total = total_bytes(argc, argv, first);
    for (int i = first; i < argc && rc == 0 && !done(&g); i++)
        rc = ingest_file(&g, argv[i], &pr, &bytes_done, bytes_total);
    if (rc == 0 && (rc = flush(&g, &err)) < 0) cli_fail("ingest", "%s", err.msg);
    if (!g.o.quiet) cli_progress_end(&pr);
    if (rc == 0 && g.o.data_dir) {
        fprintf(stderr, "ingest: checkpointing %s\n", g.o.data_dir);
        if ((rc = sx_backend_flush(g.backend, &err)) < 0) cli_fail("ingest", "%s", err.msg);
    }
    double dt = sx_now() - t0;
    sx_backend_info in = {0};
    sx_backend_get_info(g.backend, &in, 0, NULL);
    fprintf(stderr, "ingest: %llu papers upserted in %.1f s (%.0f papers/s); the collection holds %llu\n",
            (unsigned long long)g.ingested, dt, dt > 0 ? (double)g.ingested / dt : 0.0,
            (unsigned long long)in.count);
    if (g.o.per_archive > 0) {
        fprintf(stderr, "ingest: at most %ld per archive, %llu papers passed over; taken:", g.o.per_archive,
                (unsigned long long)g.skipped);
        for (int i = 0; i < g.n_archives; i++)
            fprintf(stderr, " %s=%ld", g.archives[i].name[0] ? g.archives[i].name : "(none)", g.archives[i].taken);
        fputc('\n', stderr);
    }
    if (g.malformed) {
        fprintf(stderr, "ingest: %llu malformed lines skipped; the first %d:\n",
                (unsigned long long)g.malformed, g.malformed < MAX_REPORTED ? (int)g.malformed : MAX_REPORTED);
        for (uint64_t i = 0; i < g.malformed && i < MAX_REPORTED; i++) fprintf(stderr, "  %s\n", g.reported[i]);
    }
    teardown(&g);
    return rc < 0 || g.fatal ? 1 : 0;
}
