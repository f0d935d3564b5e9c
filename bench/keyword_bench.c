/*
 * keyword_bench.c - the keyword index on real papers: memory per paper,
 * add and search speed, save/load, and known-item quality, with the same
 * papers and queries written out for a peer (bench/keyword_fts5.py runs
 * SQLite FTS5 on them).
 *
 * usage: keyword_bench --data FILE.jsonl[.zst] [--n 50000] [--nq 1000]
 *                      [--dump DIR]
 *
 * The first n valid records of FILE are indexed (title, abstract, authors;
 * slot = record number). Query sets, from nq papers picked at random
 * (fixed seed) among those indexed:
 *
 *   title   the paper's exact title                   (known item: MRR@10)
 *   noisy   a third of the title's words dropped, the rest reversed
 *   two     the first two words of the title, not stop words
 *   author  the first author's name (sx_kw_index_author_docs + match)
 *
 * Times are single-threaded wall clock (sx_now) on whatever else the machine
 * runs; the table says so. --dump DIR writes DIR/docs.jsonl (one object per
 * paper: slot, title, abstract, authors) and DIR/queries.tsv (set, slot of
 * the known item, query) for the peer.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../src/corpus/corpus.h"
#include "../src/keyword/keyword.h"

typedef struct paper {
    char *title, *abstract, *authors;
} paper;

typedef struct query {
    int set;       /* 0 title, 1 noisy, 2 two, 3 author */
    uint32_t want; /* the known item's slot */
    char *text;
} query;

static const char *const k_sets[] = {"title", "noisy", "two", "author"};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Words of s split on spaces (copies), at most max. */
static int split_words(const char *s, char **w, int max) {
    int n = 0;
    const char *p = s;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\n') p++;
        const char *e = p;
        while (*e && *e != ' ' && *e != '\n') e++;
        if (e > p) w[n++] = strndup(p, (size_t)(e - p));
        p = e;
    }
    return n;
}

/* The text of the query sets for paper pp. */
static void make_queries(const paper *pp, uint32_t slot, query *out, int *nq) {
    char *w[64];
    int n = split_words(pp->title, w, 64);
    char buf[4096];
    out[(*nq)++] = (query){0, slot, strdup(pp->title)};
    buf[0] = 0;
    for (int i = n - 1; i >= 0; i--)
        if (i % 3 != 1 || n < 3) strcat(strcat(buf, w[i]), " ");
    out[(*nq)++] = (query){1, slot, strdup(buf)};
    buf[0] = 0;
    int got = 0;
    for (int i = 0; i < n && got < 2; i++) {
        size_t l = strlen(w[i]);
        char low[256];
        size_t k;
        for (k = 0; k < l && k < 255; k++) low[k] = (char)(w[i][k] >= 'A' && w[i][k] <= 'Z' ? w[i][k] + 32 : w[i][k]);
        if (sx_kw_is_stop(low, k) || k < 3) continue;
        strcat(strcat(buf, w[i]), " ");
        got++;
    }
    out[(*nq)++] = (query){2, slot, strdup(buf)};
    const char *comma = strchr(pp->authors, ',');
    size_t al = comma ? (size_t)(comma - pp->authors) : strlen(pp->authors);
    out[(*nq)++] = (query){3, slot, strndup(pp->authors, al < 200 ? al : 200)};
    for (int i = 0; i < n; i++) free(w[i]);
}

typedef struct author_ctx {
    const paper *papers;
    char norm[SX_KW_NAME_MAX];
    int hits;
    uint32_t want;
    int found;
} author_ctx;

static int author_hit(void *ctx, uint32_t slot) {
    author_ctx *a = ctx;
    const char *names[1] = {a->norm};
    if (sx_kw_authors_match(a->papers[slot].authors, names, 1)) {
        a->hits++;
        a->found |= slot == a->want;
    }
    return 0;
}

static void dump(const char *dir, const paper *p, size_t n, const query *q, int nq) {
    char path[4096];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/docs.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (size_t i = 0; f && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "slot", (double)i);
        cJSON_AddStringToObject(o, "title", p[i].title);
        cJSON_AddStringToObject(o, "abstract", p[i].abstract);
        cJSON_AddStringToObject(o, "authors", p[i].authors);
        char *s = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(o);
    }
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/queries.tsv", dir);
    f = fopen(path, "w");
    for (int i = 0; f && i < nq; i++) {
        char *t = q[i].text;
        for (char *c = t; *c; c++)
            if (*c == '\t' || *c == '\n') *c = ' ';
        fprintf(f, "%s\t%u\t%s\n", k_sets[q[i].set], q[i].want, t);
    }
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    const char *data = NULL, *dumpdir = NULL;
    size_t want = 50000;
    int nq_papers = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) data = argv[i + 1];
        else if (!strcmp(argv[i], "--n")) want = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--nq")) nq_papers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dump")) dumpdir = argv[i + 1];
    }
    if (!data) {
        fprintf(stderr, "usage: keyword_bench --data FILE.jsonl[.zst] [--n N] [--nq Q] [--dump DIR]\n");
        return 2;
    }
    sx_err err = {0};
    sx_lines *in;
    if (sx_lines_open(data, &in, &err) < 0) {
        fprintf(stderr, "keyword_bench: %s\n", err.msg);
        return 1;
    }
    paper *papers = calloc(want, sizeof *papers);
    size_t n = 0, text_bytes = 0;
    const char *line;
    size_t len;
    while (n < want && sx_lines_next(in, &line, &len, &err) == 1) {
        sx_record r;
        if (sx_record_parse(line, len, &r, NULL) < 0) continue;
        papers[n] = (paper){strdup(r.doc.title), strdup(r.doc.abstract), strdup(r.doc.authors)};
        text_bytes += strlen(r.doc.title) + strlen(r.doc.abstract) + strlen(r.doc.authors);
        sx_record_clear(&r);
        n++;
    }
    sx_lines_close(in);
    fprintf(stderr, "keyword_bench: %zu papers read\n", n);

    /* build */
    sx_kw_params kp = sx_kw_params_default();
    sx_kw_index *ix;
    sx_kw_index_create(&kp, &ix, &err);
    size_t rss0 = sx_current_rss();
    double t0 = sx_now();
    for (size_t i = 0; i < n; i++)
        if (sx_kw_index_add(ix, (uint32_t)i, papers[i].title, papers[i].abstract, papers[i].authors, &err) < 0) {
            fprintf(stderr, "keyword_bench: %s\n", err.msg);
            return 1;
        }
    double t_add = sx_now() - t0;
    size_t rss1 = sx_current_rss();
    sx_kw_stats st;
    sx_kw_index_stats(ix, &st);
    size_t bytes = st.bytes_postings + st.bytes_dict + st.bytes_docs;

    /* save / load */
    void *buf;
    size_t blen;
    t0 = sx_now();
    sx_kw_index_save_buf(ix, &buf, &blen, &err);
    double t_save = sx_now() - t0;
    sx_kw_index *ix2;
    t0 = sx_now();
    if (sx_kw_index_load_buf(buf, blen, (uint32_t)n, &ix2, &err) < 0) {
        fprintf(stderr, "keyword_bench: load: %s\n", err.msg);
        return 1;
    }
    double t_load = sx_now() - t0;
    sx_index_free_mem(buf);
    sx_kw_index_free(ix2);

    /* queries */
    query *qs = calloc((size_t)nq_papers * 4, sizeof *qs);
    int nq = 0;
    for (int i = 0; i < nq_papers && n > 0; i++) {
        uint32_t slot = (uint32_t)(rnd() % n);
        make_queries(&papers[slot], slot, qs, &nq);
    }
    if (dumpdir) dump(dumpdir, papers, n, qs, nq);
    double *lat[4];
    int cnt[4] = {0};
    double rr[4] = {0}, found[4] = {0};
    for (int s = 0; s < 4; s++) lat[s] = calloc((size_t)nq_papers, sizeof(double));
    sx_kw_hit hits[10];
    for (int i = 0; i < nq; i++) {
        query *q = &qs[i];
        double t = sx_now();
        if (q->set < 3) {
            sx_kw_query kq = {.k = 10};
            int nh = 0;
            sx_kw_index_search(ix, q->text, &kq, hits, &nh, &err);
            lat[q->set][cnt[q->set]] = sx_now() - t;
            for (int r = 0; r < nh; r++)
                if (hits[r].slot == q->want) {
                    rr[q->set] += 1.0 / (r + 1);
                    found[q->set]++;
                    break;
                }
        } else {
            author_ctx a = {.papers = papers, .want = q->want};
            if (sx_kw_author_norm(q->text, strlen(q->text), a.norm, sizeof a.norm) > 0)
                sx_kw_index_author_docs(ix, q->text, author_hit, &a);
            lat[3][cnt[3]] = sx_now() - t;
            found[3] += a.found;
        }
        cnt[q->set]++;
    }

    printf("\n### bench/keyword_bench (`build/bench/keyword_bench --data %s --n %zu --nq %d`)\n\n",
           strrchr(data, '/') ? strrchr(data, '/') + 1 : data, n, nq_papers);
    printf("%zu papers, %.1f MB of title+abstract+authors text; single thread, shared 2-core VM.\n\n", n,
           text_bytes / 1e6);
    printf("| measure | value |\n|---|---|\n");
    printf("| add | %.0f papers/s (%.2f s) |\n", n / t_add, t_add);
    printf("| index memory (postings + dictionary + papers) | %.1f MB, **%.0f bytes/paper** |\n", bytes / 1e6,
           (double)bytes / n);
    printf("| of which postings / dictionary / papers | %.0f / %.0f / %.0f bytes/paper |\n",
           (double)st.bytes_postings / n, (double)st.bytes_dict / n, (double)st.bytes_docs / n);
    printf("| RSS growth while adding | %.1f MB |\n", (double)(rss1 - rss0) / 1e6);
    printf("| terms, postings | %zu, %zu (%.2f bytes/posting) |\n", st.terms, st.postings,
           (double)st.bytes_postings / (double)st.postings);
    printf("| avg field length title / abstract / authors | %.1f / %.1f / %.1f terms |\n", st.avg_len[0],
           st.avg_len[1], st.avg_len[2]);
    printf("| save / load (buffer, %.1f MB) | %.0f ms / %.0f ms |\n", blen / 1e6, t_save * 1e3, t_load * 1e3);
    printf("\n| query set | queries | mean ms | p50 ms | p99 ms | MRR@10 | found@10 |\n|---|---|---|---|---|---|---|\n");
    for (int s = 0; s < 4; s++) {
        double sum = 0;
        for (int i = 0; i < cnt[s]; i++) sum += lat[s][i];
        qsort(lat[s], (size_t)cnt[s], sizeof(double), cmp_double);
        int c = cnt[s] ? cnt[s] : 1;
        if (s < 3)
            printf("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f |\n", k_sets[s], cnt[s], sum / c * 1e3,
                   lat[s][cnt[s] / 2] * 1e3, lat[s][(cnt[s] * 99) / 100] * 1e3, rr[s] / c, found[s] / c);
        else
            printf("| %s (author_docs + match; found = the paper is among them) | %d | %.3f | %.3f | %.3f | - | %.3f |\n",
                   k_sets[s], cnt[s], sum / c * 1e3, lat[s][cnt[s] / 2] * 1e3, lat[s][(cnt[s] * 99) / 100] * 1e3,
                   found[s] / c);
    }
    /* removes (a third of the papers), then one compaction */
    t0 = sx_now();
    size_t removed = 0;
    for (size_t i = 0; i < n; i += 3, removed++) sx_kw_index_remove(ix, (uint32_t)i, NULL);
    double t_rm = sx_now() - t0;
    sx_kw_index_stats(ix, &st);
    size_t pending = st.removed;
    t0 = sx_now();
    sx_kw_index_maintain(ix, 1, &err);
    double t_compact = sx_now() - t0;
    sx_kw_index_stats(ix, &st);
    printf("\n| writes | value |\n|---|---|\n");
    printf("| remove | %.2f us/paper (%zu removes, compactions inside included) |\n", t_rm / removed * 1e6, removed);
    printf("| forced compaction of what remained pending | %.0f ms (%zu removed papers, %zu left) |\n",
           t_compact * 1e3, pending, st.docs);
    for (int i = 0; i < nq; i++) free(qs[i].text);
    free(qs);
    for (int s = 0; s < 4; s++) free(lat[s]);
    for (size_t i = 0; i < n; i++) {
        free(papers[i].title);
        free(papers[i].abstract);
        free(papers[i].authors);
    }
    free(papers);
    sx_kw_index_free(ix);
    return 0;
}
