/*
 * cmd_embed.c - `semdex embed`: texts in, embeddings out.
 *
 *   semdex embed [--model DIR] [--threads N] [--int8] TEXT...
 *   semdex embed [--model DIR] [--threads N] [--int8] --jsonl FILE [--npy OUT]
 *
 * Prints one JSON array of floats per text, in input order. With --npy the
 * embeddings go to OUT as a float32 .npy array of shape (n, dim) instead
 * (how the benchmarks embed the whole corpus), with a progress line on stderr
 * (rewritten in place on a terminal, a plain line every 10 s otherwise).
 * FILE holds one JSON string per line; "-" reads stdin. Texts are read and
 * embedded in batches, so memory stays flat whatever the file size.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/sx.h"
#include "../model/model.h"
#include "cli.h"

#define BATCH 256

/* ---- JSON lines --------------------------------------------------------- */

int cli_jsonl_open(cli_jsonl *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!r->f) {
        cli_fail("jsonl", "%s: cannot open", path);
        return -1;
    }
    return 0;
}

int cli_jsonl_next(cli_jsonl *r, char **text, size_t *len) {
    cJSON_Delete(r->json);
    r->json = NULL;
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0) {
        if (ferror(r->f)) {
            cli_fail("jsonl", "%s: read error", r->path);
            return -1;
        }
        return 0;
    }
    r->line++;
    while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) n--;
    sx_err err = {0};
    cJSON *json = NULL;
    if (sx_json_parse(r->buf, (size_t)n, &json, &err) == SX_EINVAL) { /* U+0000: never cut silently */
        cli_fail("jsonl", "%s:%ld: %s", r->path, r->line, err.msg);
        return -1;
    }
    r->json = json;
    if (!cJSON_IsString(r->json)) {
        cli_fail("jsonl", "%s:%ld: expected one JSON string per line", r->path, r->line);
        return -1;
    }
    *text = ((cJSON *)r->json)->valuestring;
    *len = strlen(*text);
    return 1;
}

void cli_jsonl_close(cli_jsonl *r) {
    cJSON_Delete(r->json);
    free(r->buf);
    if (r->f && r->f != stdin) fclose(r->f);
    memset(r, 0, sizeof *r);
}

/* ---- output ------------------------------------------------------------- */

#define NPY_HEADER 128

/* Writes (or rewrites) the .npy header for an (n, dim) float32 array. */
static int npy_header(FILE *f, long n, int dim) {
    char h[NPY_HEADER];
    memset(h, ' ', sizeof h);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (char)(NPY_HEADER - 10);
    h[9] = 0;
    int k = snprintf(h + 10, sizeof h - 10,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %d), }", n, dim);
    h[10 + k] = ' ';
    h[NPY_HEADER - 1] = '\n';
    return fseek(f, 0, SEEK_SET) == 0 && fwrite(h, 1, sizeof h, f) == sizeof h ? 0 : -1;
}

static void print_json(const float *v, int dim) {
    putchar('[');
    for (int j = 0; j < dim; j++) printf(j ? ", %.9g" : "%.9g", (double)v[j]);
    fputs("]\n", stdout);
}

typedef struct {
    long done, total; /* total: -1 when unknown */
    double start, last;
    int tty;
} progress;

static void progress_show(progress *p, int final) {
    double now = sx_now();
    if (!final && now - p->last < (p->tty ? 0.5 : 10.0)) return;
    p->last = now;
    double rate = p->done / (now - p->start > 1e-9 ? now - p->start : 1e-9);
    char eta[64] = "";
    if (p->total > 0 && rate > 0) {
        long s = (long)((double)(p->total - p->done) / rate);
        snprintf(eta, sizeof eta, ", ETA %ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
    }
    char tot[32] = "";
    if (p->total > 0) snprintf(tot, sizeof tot, "/%ld", p->total);
    fprintf(stderr, "%sembed: %ld%s texts, %.1f texts/s%s%s", p->tty ? "\r" : "", p->done, tot,
            rate, eta, p->tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* Lines in a regular file (for the ETA), or -1. */
static long count_lines(const char *path) {
    if (strcmp(path, "-") == 0) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char buf[1 << 16];
    long n = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < got; i++) n += buf[i] == '\n';
    fclose(f);
    return n;
}

/* ---- the command -------------------------------------------------------- */

static const char *USAGE =
    "[--model DIR] [--threads N] [--int8] TEXT... | [options] --jsonl FILE [--npy OUT]";

static int embed_jsonl(sx_encoder *enc, const char *path, const char *npy) {
    int dim = sx_encoder_dim(enc);
    cli_jsonl r;
    if (cli_jsonl_open(&r, path) < 0) return 1;
    FILE *out = NULL;
    if (npy && (!(out = fopen(npy, "wb")) || npy_header(out, 0, dim) < 0)) {
        if (out) fclose(out);
        cli_jsonl_close(&r);
        return cli_fail("embed", "%s: cannot write", npy);
    }
    char **texts = calloc(BATCH, sizeof *texts);
    size_t *lens = calloc(BATCH, sizeof *lens);
    long *lines = calloc(BATCH, sizeof *lines);
    float *vec = malloc(sizeof(float) * BATCH * (size_t)dim);
    int status = texts && lens && lines && vec ? 0 : cli_fail("embed", "out of memory");
    progress pg = {.total = npy ? count_lines(path) : -1, .start = sx_now(), .tty = isatty(2)};
    pg.last = pg.start;
    int eof = 0;
    while (status == 0 && !eof) {
        int n = 0;
        while (n < BATCH) {
            char *t;
            size_t len;
            int rc = cli_jsonl_next(&r, &t, &len);
            if (rc < 0) status = 1;
            if (rc <= 0) {
                eof = 1;
                break;
            }
            texts[n] = malloc(len + 1);
            if (!texts[n]) {
                status = cli_fail("embed", "out of memory");
                break;
            }
            memcpy(texts[n], t, len + 1);
            lens[n] = len;
            lines[n++] = r.line;
        }
        sx_err err = {0};
        if (status == 0 && n > 0 &&
            sx_encoder_embed(enc, n, (const char *const *)texts, lens, vec, &err) < 0) {
            int idx = 0;
            if (sscanf(err.msg, "text %d:", &idx) == 1 && idx >= 0 && idx < n)
                status = cli_fail("embed", "%s:%ld: %s", path, lines[idx], strchr(err.msg, ':') + 2);
            else status = cli_fail("embed", "%s: %s", path, err.msg);
        }
        if (status == 0 && n > 0) {
            if (out) {
                if (fwrite(vec, sizeof(float) * (size_t)dim, (size_t)n, out) != (size_t)n)
                    status = cli_fail("embed", "%s: write failed", npy);
                pg.done += n;
                progress_show(&pg, 0);
            } else {
                for (int i = 0; i < n; i++) print_json(vec + (size_t)i * dim, dim);
            }
        }
        for (int i = 0; i < n; i++) free(texts[i]);
    }
    if (out) {
        if (status == 0) {
            progress_show(&pg, 1);
            if (npy_header(out, pg.done, dim) < 0) status = cli_fail("embed", "%s: write failed", npy);
        }
        if (fclose(out) != 0 && status == 0) status = cli_fail("embed", "%s: write failed", npy);
        if (status != 0) remove(npy);
    }
    free(texts);
    free(lens);
    free(lines);
    free(vec);
    cli_jsonl_close(&r);
    return status;
}

int cli_cmd_embed(int argc, char **argv) {
    const char *model = CLI_DEFAULT_MODEL, *jsonl = NULL, *npy = NULL;
    sx_encoder_opts opts = {0};
    int first = argc;
    for (int i = 1; i < argc; i++) {
        long v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: semdex embed %s\n\nPrints one L2-normalised embedding per text as a "
                   "JSON array of floats, one per line.\n"
                   "  --model DIR   model folder (default %s)\n"
                   "  --threads N   threads (default: all cores)\n"
                   "  --int8        int8 weights and activations (faster, slightly less exact)\n"
                   "  --jsonl FILE  read texts from FILE, one JSON string per line (- = stdin)\n"
                   "  --npy OUT     with --jsonl: write a float32 .npy (n, dim) to OUT instead\n",
                   USAGE, CLI_DEFAULT_MODEL);
            return 0;
        }
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model = argv[++i];
        else if (strcmp(argv[i], "--jsonl") == 0 && i + 1 < argc) jsonl = argv[++i];
        else if (strcmp(argv[i], "--npy") == 0 && i + 1 < argc) npy = argv[++i];
        else if (strcmp(argv[i], "--int8") == 0) opts.int8 = 1;
        else if (strcmp(argv[i], "--threads") == 0) {
            if (cli_parse_int("embed", "--threads", i + 1 < argc ? argv[++i] : NULL, 1, 1024, &v) < 0)
                return 2;
            opts.n_threads = (int)v;
        } else if (strcmp(argv[i], "--") == 0) {
            first = i + 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1]) return cli_bad_option("embed", argv[i], USAGE);
        else {
            first = i;
            break;
        }
    }
    if ((jsonl != NULL) == (first < argc) || (npy && !jsonl)) return cli_usage("embed", USAGE);
    sx_err err = {0};
    sx_encoder *enc;
    if (sx_encoder_load(model, &opts, &enc, &err) < 0) return cli_fail("embed", "%s", err.msg);
    int status = 0;
    if (jsonl) {
        status = embed_jsonl(enc, jsonl, npy);
    } else {
        int n = argc - first, dim = sx_encoder_dim(enc);
        size_t *lens = malloc(sizeof(size_t) * (size_t)n);
        float *vec = malloc(sizeof(float) * (size_t)n * (size_t)dim);
        if (!lens || !vec) status = cli_fail("embed", "out of memory");
        for (int i = 0; status == 0 && i < n; i++) lens[i] = strlen(argv[first + i]);
        if (status == 0 &&
            sx_encoder_embed(enc, n, (const char *const *)(argv + first), lens, vec, &err) < 0) {
            int idx;
            if (sscanf(err.msg, "text %d:", &idx) == 1)
                status = cli_fail("embed", "argument %d: %s", idx + 1, strchr(err.msg, ':') + 2);
            else status = cli_fail("embed", "%s", err.msg);
        }
        for (int i = 0; status == 0 && i < n; i++) print_json(vec + (size_t)i * dim, dim);
        free(lens);
        free(vec);
    }
    if (fflush(stdout) != 0 && status == 0) status = cli_fail("embed", "cannot write output");
    sx_encoder_free(enc);
    return status;
}
