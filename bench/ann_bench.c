/*
 * ann_bench.c - semdex's side of bench/ann: builds the HNSW index over a
 * .npy of vectors, measures build time (1 and 2 threads), memory, snapshot
 * load time and the recall@10 / single-thread QPS curve over efSearch, and
 * prints one JSON object per measurement on stdout (bench/ann.py turns them
 * into the table, next to the peers measured in the same run).
 *
 * usage: ann_bench --base B.npy --queries Q.npy --gt GT.npy [--n N] [--nq Q]
 *                  [--storage sq8|fp32] [--rerank R] [--threads 1,2]
 *                  [--efs 16,32,64] [--snapshot PATH] [--label NAME]
 *                  [--load SNAP]   (no build: load the index SNAP, run the sweep;
 *                                   for profiling and bench/ann's rounds;
 *                                   --snapshot PATH with --keep 1 keeps the
 *                                   file written after a build, and PATH.rows
 *                                   with each node's row number)
 *
 * GT.npy holds the exact top-10 row numbers (int32, Q x >=10) of each query
 * among the first N base rows.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/index/index.h"

typedef struct npy {
    void *map;
    size_t map_len;
    const void *data;
    size_t rows, cols;
    char kind; /* 'f' float32, 'i' int32 */
} npy;

/* Maps a little-endian float32 or int32 2-D .npy (version 1 or 2). */
static int npy_open(const char *path, npy *out) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    fstat(fd, &st);
    out->map_len = (size_t)st.st_size;
    out->map = mmap(NULL, out->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (out->map == MAP_FAILED) return -1;
    const unsigned char *p = out->map;
    if (out->map_len < 16 || memcmp(p, "\x93NUMPY", 6) != 0) return -1;
    size_t hl, ho;
    if (p[6] == 1) hl = sx_le16_get(p + 8), ho = 10;
    else hl = sx_le32_get(p + 8), ho = 12;
    char h[1024] = {0};
    memcpy(h, p + ho, hl < sizeof h - 1 ? hl : sizeof h - 1);
    if (strstr(h, "'<f4'")) out->kind = 'f';
    else if (strstr(h, "'<i4'")) out->kind = 'i';
    else return -1;
    if (strstr(h, "'fortran_order': True")) return -1;
    const char *s = strstr(h, "'shape': (");
    if (!s || sscanf(s, "'shape': (%zu, %zu)", &out->rows, &out->cols) != 2) return -1;
    out->data = p + ho + hl;
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: QPS is measured with it, so that time the
 * scheduler gives other processes on a shared machine does not count. */
static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long a = 0, b = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &a, &b) != 2) b = 0;
        fclose(f);
    }
    return (size_t)b * (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct job {
    sx_index *ix;
    const float *x;
    size_t n, dim;
    _Atomic size_t next;
} job;

static void *builder(void *arg) {
    job *j = arg;
    sx_err err = {0};
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        uint32_t node;
        if (sx_index_add(j->ix, j->x + i * j->dim, i, &node, &err) < 0) {
            fprintf(stderr, "ann_bench: %s\n", err.msg);
            exit(1);
        }
        sx_index_publish(j->ix, node);
        if ((i & 1023) == 0) sx_index_maintain(j->ix, NULL);
        if (isatty(2) && i % 20000 == 0) fprintf(stderr, "\r  build %zu/%zu", i, j->n);
    }
    return NULL;
}

static sx_index *build(const sx_index_params *p, const float *x, size_t n, int threads, double *secs) {
    sx_index *ix;
    sx_err err = {0};
    if (sx_index_create(p, &ix, &err) < 0) {
        fprintf(stderr, "ann_bench: %s\n", err.msg);
        exit(1);
    }
    job j = {ix, x, n, (size_t)p->dim, 0};
    pthread_t t[16];
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, builder, &j);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    sx_index_maintain(ix, NULL);
    *secs = now() - t0;
    if (isatty(2)) fprintf(stderr, "\r%40s\r", "");
    return ix;
}

static int file_write(void *ctx, const void *buf, size_t len) {
    return fwrite(buf, 1, len, ctx) == len ? 0 : SX_EIO;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (!s) break;
        s++;
    }
    return n;
}

/* Where a kept snapshot's node -> row numbers go (the index does not
 * persist payloads; the shard keeps its own id map). */
static void rows_path(const char *snap, char *out, size_t cap) { snprintf(out, cap, "%s.rows", snap); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *base = NULL, *queries = NULL, *gtp = NULL, *snap = NULL, *label = NULL, *load = NULL;
    int keep = 0;
    size_t n = 0, nq = 0;
    int storage = SX_STORAGE_SQ8, rerank = 32, threads[8] = {1, 2}, nthreads = 2;
    int efs[32] = {16, 24, 32, 48, 64, 96, 128, 192, 256}, nefs = 9;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--base")) base = v;
        else if (!strcmp(k, "--queries")) queries = v;
        else if (!strcmp(k, "--gt")) gtp = v;
        else if (!strcmp(k, "--n")) n = (size_t)atol(v);
        else if (!strcmp(k, "--nq")) nq = (size_t)atol(v);
        else if (!strcmp(k, "--storage")) storage = !strcmp(v, "fp32") ? SX_STORAGE_FP32 : SX_STORAGE_SQ8;
        else if (!strcmp(k, "--rerank")) rerank = atoi(v);
        else if (!strcmp(k, "--threads")) nthreads = parse_list(v, threads, 8);
        else if (!strcmp(k, "--efs")) nefs = parse_list(v, efs, 32);
        else if (!strcmp(k, "--snapshot")) snap = v;
        else if (!strcmp(k, "--label")) label = v;
        else if (!strcmp(k, "--load")) load = v;
        else if (!strcmp(k, "--keep")) keep = atoi(v);
        else {
            fprintf(stderr, "ann_bench: unknown option %s\n", k);
            return 2;
        }
    }
    npy B, Q, G;
    if (!base || !queries || !gtp || npy_open(base, &B) || npy_open(queries, &Q) || npy_open(gtp, &G) ||
        B.kind != 'f' || Q.kind != 'f' || G.kind != 'i' || Q.cols != B.cols || G.cols < 10) {
        fprintf(stderr, "usage: ann_bench --base B.npy --queries Q.npy --gt GT.npy [options] (bad or missing files)\n");
        return 2;
    }
    if (!n || n > B.rows) n = B.rows;
    if (!nq || nq > Q.rows) nq = Q.rows;
    if (nq > G.rows) nq = G.rows;
    if (!label) label = storage == SX_STORAGE_SQ8 ? "semdex-sq8" : "semdex-fp32";
    const float *x = B.data, *qv = Q.data;
    const int32_t *gt = G.data;
    sx_index_params p = sx_index_params_default((int)B.cols);
    p.storage = storage;
    p.rerank = storage == SX_STORAGE_SQ8 ? rerank : 0;
    fprintf(stderr, "%s: %zu vectors, %zu queries, kernels %s\n", label, n, nq, sx_kernels_best()->name);
    /* touch the input so the first build does not pay its page faults */
    volatile float sink = 0;
    for (size_t i = 0; i < n * B.cols; i += 1024) sink += x[i];
    sx_index *ix = NULL;
    if (load) {
        double t_load = now();
        int fd = open(load, O_RDONLY);
        struct stat lst;
        if (fd < 0 || fstat(fd, &lst) != 0) return 1;
        void *m = mmap(NULL, (size_t)lst.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        sx_source src = {NULL, NULL, m, (uint64_t)lst.st_size, 0, 0, 1};
        sx_err err = {0};
        if (sx_index_load(&src, &ix, &err) < 0) {
            fprintf(stderr, "ann_bench: %s\n", err.msg);
            return 1;
        }
        /* what a restarted server pays: a fresh process, fresh heap */
        printf("{\"system\":\"%s\",\"phase\":\"load\",\"mode\":\"fresh-process\",\"seconds\":%.3f}\n", label,
               now() - t_load);
        nthreads = 0;
        snap = NULL;
        /* each node's row number, written beside the snapshot by the build run */
        char ids_path[4096];
        rows_path(load, ids_path, sizeof ids_path);
        FILE *f = fopen(ids_path, "rb");
        uint64_t row;
        for (uint32_t node = 0; f && fread(&row, sizeof row, 1, f) == 1; node++) sx_index_set_payload(ix, node, row);
        if (!f) {
            fprintf(stderr, "ann_bench: %s: %s (written by a build run with --keep 1)\n", ids_path, strerror(errno));
            return 1;
        }
        fclose(f);
    }
    for (int t = 0; t < nthreads; t++) {
        double secs;
        size_t r0 = rss_bytes();
        sx_index *b = build(&p, x, n, threads[t], &secs);
        size_t r1 = rss_bytes();
        printf("{\"system\":\"%s\",\"phase\":\"build\",\"threads\":%d,\"seconds\":%.3f,\"rss_growth\":%zu}\n",
               label, threads[t], secs, r1 > r0 ? r1 - r0 : 0);
        fflush(stdout);
        if (ix) sx_index_free(ix);
        ix = b;
    }
    sx_index_stats st;
    sx_index_get_stats(ix, &st);
    printf("{\"system\":\"%s\",\"phase\":\"memory\",\"bytes_per_vector\":%.1f,\"vectors\":%zu,\"graph\":%zu,"
           "\"fp32_heap\":%zu,\"levels\":%d}\n",
           label, (double)(st.bytes_vectors + st.bytes_graph) / (double)n, st.bytes_vectors, st.bytes_graph,
           st.bytes_fp32, st.max_level + 1);
    /* efSearch sweep, one thread, queries one at a time */
    sx_index_hit hits[10];
    for (int e = 0; e < nefs; e++) {
        sx_index_query q = {.k = 10, .ef = efs[e], .rerank = -1};
        long found = 0;
        double runs[3], wall[3];
        for (int rep = 0; rep < 3; rep++) {
            double t0 = thread_cpu(), w0 = now();
            for (size_t i = 0; i < nq; i++) {
                int nh;
                sx_index_search(ix, qv + i * B.cols, &q, hits, &nh, NULL, NULL);
                if (rep == 0)
                    for (int a = 0; a < nh; a++)
                        for (int b = 0; b < 10; b++)
                            if ((int32_t)sx_index_payload(ix, hits[a].node) == gt[i * G.cols + (size_t)b]) found++;
            }
            runs[rep] = thread_cpu() - t0;
            wall[rep] = now() - w0;
        }
        qsort(runs, 3, sizeof runs[0], cmp_double);
        qsort(wall, 3, sizeof wall[0], cmp_double);
        printf("{\"system\":\"%s\",\"phase\":\"search\",\"ef\":%d,\"recall\":%.4f,\"qps\":%.1f,\"qps_wall\":%.1f}\n",
               label, efs[e], (double)found / (double)(nq * 10), (double)nq / runs[1], (double)nq / wall[1]);
        fflush(stdout);
    }
    /* snapshot: save, then load in place (lazy) and from a stream */
    if (snap) {
        FILE *f = fopen(snap, "wb");
        sx_sink sink_out = {file_write, f, 0, 0, 0};
        double t0 = now();
        sx_err err = {0};
        if (!f || sx_index_save(ix, &sink_out, &err) < 0 || fclose(f) != 0) {
            fprintf(stderr, "ann_bench: save: %s\n", err.msg);
            return 1;
        }
        double save_s = now() - t0;
        for (int lazy = 1; lazy >= 0; lazy--) {
            t0 = now();
            int fd = open(snap, O_RDONLY);
            struct stat sst;
            fstat(fd, &sst);
            void *m = mmap(NULL, (size_t)sst.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            close(fd);
            sx_source src = {NULL, NULL, m, (uint64_t)sst.st_size, 0, !lazy, 1};
            sx_index *l = NULL;
            if (sx_index_load(&src, &l, &err) < 0) {
                fprintf(stderr, "ann_bench: load: %s\n", err.msg);
                return 1;
            }
            double load_s = now() - t0;
            /* the loaded index answers like the built one */
            sx_index_query q = {.k = 10, .ef = 64, .rerank = -1};
            int same = 1;
            for (size_t i = 0; i < nq && i < 50; i++) {
                sx_index_hit a[10], b2[10];
                int na, nb;
                sx_index_search(ix, qv + i * B.cols, &q, a, &na, NULL, NULL);
                sx_index_search(l, qv + i * B.cols, &q, b2, &nb, NULL, NULL);
                same &= na == nb && memcmp(a, b2, sizeof a[0] * (size_t)na) == 0;
            }
            printf("{\"system\":\"%s\",\"phase\":\"load\",\"mode\":\"%s\",\"seconds\":%.3f,\"save_seconds\":%.3f,"
                   "\"file_bytes\":%lld,\"same_results\":%d}\n",
                   label, lazy ? "mapped-lazy" : "mapped-verified", load_s, save_s, (long long)sst.st_size, same);
            fflush(stdout);
            sx_index_free(l);
            munmap(m, (size_t)sst.st_size);
        }
        if (!keep) {
            unlink(snap);
        } else {
            char ids_path[4096];
            rows_path(snap, ids_path, sizeof ids_path);
            FILE *rf = fopen(ids_path, "wb");
            sx_index_stats ist;
            sx_index_get_stats(ix, &ist);
            size_t slots = ist.live + ist.deleted + ist.free_slots;
            for (uint32_t node = 0; rf && node < slots; node++) {
                uint64_t row = sx_index_payload(ix, node);
                fwrite(&row, sizeof row, 1, rf);
            }
            if (!rf || fclose(rf) != 0) {
                fprintf(stderr, "ann_bench: %s: cannot write\n", ids_path);
                return 1;
            }
        }
    }
    sx_index_free(ix);
    (void)sink;
    return 0;
}
