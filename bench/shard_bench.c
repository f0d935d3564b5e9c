/*
 * shard_bench.c - a whole shard at corpus scale: build from the shared arXiv
 * records and their embeddings, save a snapshot, then start a fresh process
 * that maps the snapshot and serves searches, measuring what the service's
 * targets are about: start-up time and resident memory (target for 510K
 * papers: < 5 s, < 1.5 GB for the whole process).
 *
 * usage: shard_bench --data DIR --vectors B.npy --queries Q.npy --n N
 *                    --snapshot PATH [--threads 2]
 *        shard_bench --serve PATH --queries Q.npy [--lazy 0|1]
 *
 * Prints one JSON object per measurement on stdout.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/corpus/corpus.h"
#include "../src/shard/shard.h"
#include "../src/storage/snapfile.h"

static double now(void) { return sx_now(); }

static const float *map_npy(const char *path, size_t *rows, size_t *cols) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    struct stat st;
    fstat(fd, &st);
    const unsigned char *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED || memcmp(p, "\x93NUMPY", 6) != 0) return NULL;
    size_t hl = p[6] == 1 ? sx_le16_get(p + 8) : sx_le32_get(p + 8);
    size_t ho = p[6] == 1 ? 10 : 12;
    char h[512] = {0};
    memcpy(h, p + ho, hl < 511 ? hl : 511);
    const char *s = strstr(h, "'shape': (");
    if (!strstr(h, "<f4") || !s || sscanf(s, "'shape': (%zu, %zu)", rows, cols) != 2) return NULL;
    return (const float *)(const void *)(p + ho + hl);
}

typedef struct paper {
    char *id, *title, *abstract, *authors, *date, *cats;
} paper;

static char *dup_field(cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}

/* Reads the first n records of the shared sample, in file order. */
static paper *read_papers(const char *dir, size_t n) {
    char pat[4096];
    snprintf(pat, sizeof pat, "%s/*.jsonl.zst", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return NULL;
    paper *ps = calloc(n, sizeof *ps);
    size_t k = 0;
    for (size_t f = 0; f < g.gl_pathc && k < n; f++) {
        sx_lines *in;
        sx_err err = {0};
        if (sx_lines_open(g.gl_pathv[f], &in, &err) < 0) return NULL;
        const char *line;
        size_t len;
        while (k < n && sx_lines_next(in, &line, &len, &err) > 0) {
            cJSON *o = cJSON_ParseWithLength(line, len);
            if (!o) continue;
            ps[k] = (paper){dup_field(o, "id"), dup_field(o, "title"), dup_field(o, "abstract"),
                            dup_field(o, "authors"), dup_field(o, "update_date"), dup_field(o, "categories")};
            k++;
            cJSON_Delete(o);
        }
        sx_lines_close(in);
    }
    globfree(&g);
    return k == n ? ps : NULL;
}

typedef struct job {
    sx_shard *s;
    paper *ps;
    const float *x;
    size_t n, dim;
    _Atomic size_t next;
} job;

static void *worker(void *arg) {
    job *j = arg;
    sx_err err = {0};
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        paper *p = &j->ps[i];
        sx_doc d = {p->id, p->title, p->abstract, p->authors, p->date, p->cats};
        if (sx_shard_upsert(j->s, &d, j->x + i * j->dim, &err) < 0)
            fprintf(stderr, "shard_bench: %s: %s\n", p->id, err.msg);
        if (isatty(2) && i % 20000 == 0) fprintf(stderr, "\r  upsert %zu/%zu", i, j->n);
    }
    return NULL;
}

static int serve(const char *snap, const char *qpath, int lazy) {
    size_t nq, dim;
    const float *q = map_npy(qpath, &nq, &dim);
    size_t rss0 = sx_current_rss();
    double t0 = now();
    sx_shard *s;
    sx_err err = {0};
    if (sx_snapfile_map(snap, lazy ? SX_LOAD_LAZY : 0, &s, &err) < 0) {
        fprintf(stderr, "shard_bench: %s\n", err.msg);
        return 1;
    }
    double load = now() - t0;
    size_t rss1 = sx_current_rss();
    struct sx_shard_stats st;
    sx_shard_stats(s, &st);
    printf("{\"phase\":\"load\",\"lazy\":%d,\"seconds\":%.3f,\"papers\":%zu,\"rss_after_load\":%zu,"
           "\"rss_before\":%zu,\"heap_vectors\":%zu,\"heap_graph\":%zu,\"mapped_fp32\":%zu,"
           "\"mapped_documents\":%zu,\"bitmaps\":%zu,\"idmap\":%zu}\n",
           lazy, load, st.count, rss1, rss0, st.bytes_vectors, st.bytes_graph, st.bytes_fp32_mapped,
           st.bytes_documents_mapped, st.bytes_bitmaps, st.bytes_idmap);
    fflush(stdout);
    /* serve: every query, half of them filtered; read every hit's document */
    const char *cats[] = {"cs.LG", "cs.CL"};
    sx_hit hits[10];
    int n;
    long got = 0;
    t0 = now();
    for (size_t i = 0; i < nq; i++) {
        sx_search_opts o = {.k = 10, .categories = cats + (i % 2), .n_categories = (int)(i % 3 == 0)};
        if (sx_shard_search(s, q + i * dim, &o, hits, &n, NULL, &err) < 0) return 1;
        for (int h = 0; h < n; h++) {
            sx_doc *d;
            if (sx_shard_get(s, hits[h].id, &d, &err) == 0) {
                got += (long)strlen(d->abstract);
                free(d);
            }
        }
    }
    double secs = now() - t0;
    printf("{\"phase\":\"serve\",\"queries\":%zu,\"seconds\":%.3f,\"rss_after_queries\":%zu,\"doc_bytes_read\":%ld}\n",
           nq, secs, sx_current_rss(), got);
    sx_shard_free(s);
    return 0;
}

int main(int argc, char **argv) {
    const char *data = NULL, *vec = NULL, *qpath = NULL, *snap = NULL, *serve_path = NULL;
    size_t n = 0;
    int threads = 2, lazy = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--vectors")) vec = argv[i + 1];
        else if (!strcmp(argv[i], "--queries")) qpath = argv[i + 1];
        else if (!strcmp(argv[i], "--n")) n = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--snapshot")) snap = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--serve")) serve_path = argv[i + 1];
        else if (!strcmp(argv[i], "--lazy")) lazy = atoi(argv[i + 1]);
    }
    if (serve_path && qpath) return serve(serve_path, qpath, lazy);
    size_t rows, dim;
    const float *x = vec ? map_npy(vec, &rows, &dim) : NULL;
    if (!data || !x || !qpath || !snap) {
        fprintf(stderr, "usage: shard_bench --data DIR --vectors B.npy --queries Q.npy --n N --snapshot PATH\n");
        return 2;
    }
    if (!n || n > rows) n = rows;
    double t0 = now();
    paper *ps = read_papers(data, n);
    if (!ps) {
        fprintf(stderr, "shard_bench: cannot read %zu records from %s\n", n, data);
        return 1;
    }
    double read_s = now() - t0;
    sx_shard_params p = sx_shard_params_default();
    sx_shard *s;
    sx_err err = {0};
    if (sx_shard_create(&p, &s, &err) < 0) return 1;
    job j = {s, ps, x, n, dim, 0};
    pthread_t t[8];
    t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, &j);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double build_s = now() - t0;
    struct sx_shard_stats st;
    sx_shard_stats(s, &st);
    printf("{\"phase\":\"build\",\"papers\":%zu,\"threads\":%d,\"read_seconds\":%.1f,\"seconds\":%.1f,"
           "\"rss\":%zu,\"heap_vectors\":%zu,\"heap_graph\":%zu,\"heap_fp32\":%zu,\"heap_documents\":%zu,"
           "\"bitmaps\":%zu,\"idmap\":%zu,\"categories\":%zu}\n",
           st.count, threads, read_s, build_s, sx_current_rss(), st.bytes_vectors, st.bytes_graph,
           st.bytes_fp32, st.bytes_documents, st.bytes_bitmaps, st.bytes_idmap, st.categories);
    t0 = now();
    if (sx_snapfile_save(s, snap, &err) < 0) {
        fprintf(stderr, "shard_bench: %s\n", err.msg);
        return 1;
    }
    struct stat sst;
    stat(snap, &sst);
    printf("{\"phase\":\"save\",\"seconds\":%.1f,\"bytes\":%lld}\n", now() - t0, (long long)sst.st_size);
    fflush(stdout);
    sx_shard_free(s);
    for (size_t i = 0; i < n; i++) {
        free(ps[i].id);
        free(ps[i].title);
        free(ps[i].abstract);
        free(ps[i].authors);
        free(ps[i].date);
        free(ps[i].cats);
    }
    free(ps);
    /* a fresh process loads and serves, so its RSS is the service's */
    for (int lz = 1; lz >= 0; lz--) {
        pid_t pid = fork();
        if (pid == 0) {
            char lzs[4];
            snprintf(lzs, sizeof lzs, "%d", lz);
            execl(argv[0], argv[0], "--serve", snap, "--queries", qpath, "--lazy", lzs, (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    }
    return 0;
}
