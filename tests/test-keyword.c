/* Tests for src/keyword: the analyser (LaTeX, Unicode, hyphens, case, stop
 * words), author names, BM25F scores against hand-computed values, filters,
 * incremental adds and removes against a fresh build, save/load round trip,
 * corrupt input refused, highlight spans. */
#include "test.h"

#include "../src/keyword/keyword.h"
#include "testmem.h"
#include "testsec.h"
#include "testvec.h"

#include <pthread.h>

/* ---- analyser ---- */

typedef struct terms {
    char buf[4096];
    size_t len;
    int n;
    size_t start[64], end[64];
} terms;

static int add_term(void *ctx, const char *t, size_t len, size_t start, size_t end) {
    terms *c = ctx;
    if (c->len) c->buf[c->len++] = ' ';
    memcpy(c->buf + c->len, t, len);
    c->len += len;
    c->buf[c->len] = 0;
    if (c->n < 64) c->start[c->n] = start, c->end[c->n] = end;
    c->n++;
    return 0;
}

/* The terms of text, space-separated, with flags. */
static terms analyse(const char *text, int flags) {
    terms c;
    memset(&c, 0, sizeof c);
    CHECK(sx_kw_analyze(text, strlen(text), flags, add_term, &c) == 0);
    return c;
}

#define CHECK_TERMS(text, expect) CHECK_STR(analyse(text, 0).buf, expect)

void test_keyword_analyzer(void) {
    /* case, identifiers, hyphenated compounds: parts then the joined term */
    CHECK_TERMS("BERT", "bert");
    CHECK_TERMS("ResNet-50", "resnet 50 resnet50");
    CHECK_TERMS("GPT-4 and gpt4", "gpt 4 gpt4 gpt4");
    CHECK_TERMS("state-of-the-art", "state art stateoftheart");
    CHECK_TERMS("2019-2020", "2019 2020");            /* numbers only: no joined term */
    CHECK_TERMS("a--b", "b");                         /* "a" is a stop word; -- breaks */
    CHECK_TERMS("x \xe2\x80\x90y", "x y");            /* U+2010 hyphen, but a space before */
    CHECK_TERMS("non\xe2\x80\x90linear", "non linear nonlinear");
    CHECK_TERMS("Lindblad master equation", "lindblad master equation");
    /* Unicode: accents stripped, NFKC, case folding, invalid bytes split */
    CHECK_TERMS("Schr\xc3\xb6" "dinger", "schrodinger");
    CHECK_TERMS("Schro\xcc\x88" "dinger", "schrodinger"); /* combining diaeresis */
    CHECK_TERMS("\xef\xbc\xa2\xef\xbc\xa5\xef\xbc\xb2\xef\xbc\xb4", "bert"); /* full width */
    CHECK_TERMS("\xef\xac\x81nite", "finite");         /* fi ligature */
    CHECK_TERMS("Stra\xc3\x9f" "e STRASSE", "strasse strasse");
    CHECK_TERMS("\xce\x91\xce\xbb\xce\xb3\xcf\x8c\xcf\x81\xce\xb9\xce\xb8\xce\xbc\xce\xbf\xcf\x82",
                "\xce\xb1\xce\xbb\xce\xb3\xce\xbf\xcf\x81\xce\xb9\xce\xb8\xce\xbc\xce\xbf\xcf\x83");
    CHECK_TERMS("abc\xff" "def \xc3", "abc def");
    CHECK_TERMS("x\xc2\xad" "y", "xy");               /* soft hyphen joins */
    /* LaTeX */
    CHECK_TERMS("Schr\\\"odinger", "schrodinger");
    CHECK_TERMS("Schr{\\\"o}dinger", "schrodinger");
    CHECK_TERMS("\\v{C}ech cohomology", "cech cohomology");
    CHECK_TERMS("Bj\\o rn", "bjorn");
    CHECK_TERMS("\\textbf{Lindblad} dynamics", "lindblad dynamics");
    CHECK_TERMS("$\\mathcal{O}(n^2)$ time", "o n2 time");
    CHECK_TERMS("$L_1$ norm", "l1 norm");
    CHECK_TERMS("$\\alpha$-particle", "alpha particle alphaparticle");
    CHECK_TERMS("\\Gamma \\varepsilon", "gamma epsilon");
    CHECK_TERMS("as shown in \\cite{smith2020, jones} we", "shown");
    CHECK_TERMS("see \\cite[p.~3]{knuth} and \\ref{eq:1}", "see");
    CHECK_TERMS("\\href{http://x.org/bert}{BERT}", "bert");
    CHECK_TERMS("100\\% of \\\\ cases", "100 cases");
    CHECK_TERMS("hy\\-phen", "hyphen");
    CHECK_TERMS("\\", "");
    CHECK_TERMS("\\cite{unclosed", "unclosed"); /* an unbalanced argument is kept */
    /* stop words, flags */
    CHECK_TERMS("The effect of the", "effect");
    CHECK_STR(analyse("An of the", SX_KW_KEEP_STOP).buf, "an of the");
    CHECK_STR(analyse("J. K. Bhattacharjee", SX_KW_SKIP_SHORT).buf, "bhattacharjee");
    CHECK_STR(analyse("Jean-Pierre Serre", SX_KW_JOIN_ONLY).buf, "jeanpierre serre");
    /* too long: dropped */
    char longw[200];
    memset(longw, 'x', 100);
    strcpy(longw + 100, " ok");
    CHECK_TERMS(longw, "ok");
    CHECK(sx_kw_is_stop("the", 3) && !sx_kw_is_stop("bert", 4));

    /* spans are byte offsets of the original text */
    terms t = analyse("We use ResNet-50.", 0);
    CHECK_STR(t.buf, "use resnet 50 resnet50");
    CHECK_EQ(t.start[1], 7);
    CHECK_EQ(t.end[1], 13);
    CHECK_EQ(t.start[2], 14);
    CHECK_EQ(t.end[2], 16);
    CHECK_EQ(t.start[3], 7);
    CHECK_EQ(t.end[3], 16);
    t = analyse("Schr\\\"odinger \xc3\xa9t\xc3\xa9", 0);
    CHECK_STR(t.buf, "schrodinger ete");
    CHECK_EQ(t.start[0], 0);
    CHECK_EQ(t.end[0], 13);
    CHECK_EQ(t.start[1], 14);
    CHECK_EQ(t.end[1], 19);
}

void test_keyword_author_names(void) {
    char out[SX_KW_NAME_MAX];
#define NORM(in, expect)                                                      \
    do {                                                                      \
        CHECK(sx_kw_author_norm(in, strlen(in), out, sizeof out) > 0);        \
        CHECK_STR(out, expect);                                               \
    } while (0)
    NORM("J. K. Bhattacharjee", "bhattacharjee j k");
    NORM("Bhattacharjee, J.K.", "bhattacharjee j k");
    NORM("Bhattacharjee, J. K.", "bhattacharjee j k");
    NORM("Johannes Diderik van der Waals", "waals johannes diderik");
    NORM("van der Waals, J. D.", "waals j d");
    NORM("Erwin Schr\\\"odinger", "schrodinger erwin");
    NORM("Jos\xc3\xa9 Garc\xc3\xad" "a-P\xc3\xa9rez", "garciaperez jose");
    NORM("Martin Luther King Jr.", "king martin luther");
    NORM("A. Smith (MIT, Cambridge)", "smith a");
    NORM("Quoc V. Le", "le quoc v");
    NORM("Jean-Pierre Serre", "serre jeanpierre");
    CHECK_EQ(sx_kw_author_norm("(MIT)", 5, out, sizeof out), 0);
    CHECK_EQ(sx_kw_author_norm("", 0, out, sizeof out), 0);
    CHECK_EQ(sx_kw_author_norm("Bhattacharjee", 13, out, 5), SX_EFULL);

    CHECK(sx_kw_author_same("smith j", "smith john"));
    CHECK(sx_kw_author_same("smith john", "smith j"));
    CHECK(sx_kw_author_same("smith", "smith john k"));
    CHECK(sx_kw_author_same("smith john k", "smith j"));
    CHECK(!sx_kw_author_same("smith jane", "smith john"));
    CHECK(!sx_kw_author_same("smyth j", "smith j"));
    CHECK(!sx_kw_author_same("smith j k", "smith j m"));

    const char *q1[] = {"bhattacharjee jayanta"};
    CHECK(sx_kw_authors_match("Raka Dasgupta, J. K. Bhattacharjee", q1, 1));
    const char *q2[] = {"dasgupta r", "nobody x"};
    CHECK(sx_kw_authors_match("Raka Dasgupta, J. K. Bhattacharjee", q2, 2));
    const char *q3[] = {"jones b"};
    CHECK(sx_kw_authors_match("A. Smith and B. Jones", q3, 1));
    CHECK(sx_kw_authors_match("A. Smith & Bob Jones", q3, 1));
    CHECK(sx_kw_authors_match("A. Smith (MIT, USA); B. Jones", q3, 1));
    const char *q4[] = {"usa"};
    CHECK(!sx_kw_authors_match("A. Smith (MIT, USA), B. Jones", q4, 1));
    const char *q5[] = {"jones c"};
    CHECK(!sx_kw_authors_match("A. Smith and B. Jones", q5, 1));
    CHECK(!sx_kw_authors_match("", q3, 1));
    /* an unclosed parenthesis ends at the end of the list (found by the fuzzer) */
    CHECK(!sx_kw_authors_match("B. Jones (MIT", q5, 1));
    CHECK(sx_kw_authors_match("B. Jones, C. Other (MIT", q3, 1));
    CHECK(!sx_kw_authors_match(NULL, q3, 1));
}

/* ---- index ---- */

static sx_kw_index *new_index(void) {
    sx_kw_params p = sx_kw_params_default();
    sx_kw_index *ix = NULL;
    sx_err err = {0};
    CHECK_MSG(sx_kw_index_create(&p, &ix, &err) == 0, "%s", err.msg);
    return ix;
}

static int search(const sx_kw_index *ix, const char *q, int k, unsigned fields, sx_kw_hit *hits) {
    sx_kw_query kq = {.k = k, .fields = fields};
    int n = -1;
    sx_err err = {0};
    CHECK_MSG(sx_kw_index_search(ix, q, &kq, hits, &n, &err) == 0, "%s", err.msg);
    return n;
}

void test_keyword_bm25_hand_computed(void) {
    sx_kw_index *ix = new_index();
    sx_err err = {0};
    /* field lengths in terms (stop words left out):
     *   slot 10: title 2 (graph networks), abstract 5 (graph neural networks graph data)
     *   slot 11: title 2, abstract 5 (deep networks predict protein structure)
     *   slot 12: title 2, abstract 3 (open quantum systems)
     * N = 3, avg title 2, avg abstract 13/3, authors empty. */
    CHECK(sx_kw_index_add(ix, 10, "Graph networks", "Graph neural networks for graph data", NULL, &err) == 0);
    CHECK(sx_kw_index_add(ix, 11, "Protein folding", "Deep networks predict protein structure", "", &err) == 0);
    CHECK(sx_kw_index_add(ix, 12, "Lindblad equation", "Open quantum systems", NULL, &err) == 0);
    sx_kw_hit h[5];
    const double k1 = 1.2, na = 0.25 + 0.75 * 5 / (13.0 / 3); /* abstract norm, length 5 */
    /* "graph": df 1; slot 10: title tf 1 (norm 1, weight 2), abstract tf 2 */
    double idf = log(1 + (3 - 1 + 0.5) / (1 + 0.5));
    double tf = 2.0 * 1 / 1.0 + 1.0 * 2 / na;
    CHECK_EQ(search(ix, "graph", 5, 0, h), 1);
    CHECK_EQ(h[0].slot, 10);
    CHECK_NEAR(h[0].score, idf * tf / (k1 + tf), 1e-5);
    /* "networks": df 2; slot 10 title 1 + abstract 1; slot 11 abstract 1 */
    idf = log(1 + (3 - 2 + 0.5) / (2 + 0.5));
    double tf10 = 2.0 + 1.0 / na, tf11 = 1.0 / na;
    CHECK_EQ(search(ix, "Networks", 5, 0, h), 2);
    CHECK_EQ(h[0].slot, 10);
    CHECK_EQ(h[1].slot, 11);
    CHECK_NEAR(h[0].score, idf * tf10 / (k1 + tf10), 1e-5);
    CHECK_NEAR(h[1].score, idf * tf11 / (k1 + tf11), 1e-5);
    /* two terms add up; a repeated query term counts once */
    double g = log(1 + 2.5 / 1.5), tg = 2.0 + 2.0 / na;
    double want = g * tg / (k1 + tg) + idf * tf10 / (k1 + tf10);
    CHECK_EQ(search(ix, "graph networks graph", 5, 0, h), 2);
    CHECK_NEAR(h[0].score, want, 1e-5);
    /* abstract only: the title does not count, nor its weight */
    CHECK_EQ(search(ix, "networks", 5, 1u << SX_KW_ABSTRACT, h), 2);
    CHECK_EQ(h[0].slot, 10); /* equal scores: slot order */
    CHECK_NEAR(h[0].score, idf * (1.0 / na) / (k1 + 1.0 / na), 1e-5);
    CHECK_NEAR(h[1].score, h[0].score, 1e-7);
    /* title only: df counts the papers with the term in the title */
    CHECK_EQ(search(ix, "networks", 5, 1u << SX_KW_TITLE, h), 1);
    idf = log(1 + (3 - 1 + 0.5) / (1 + 0.5));
    CHECK_NEAR(h[0].score, idf * 2.0 / (k1 + 2.0), 1e-5);
    /* no terms: no hits */
    CHECK_EQ(search(ix, "the of", 5, 0, h), 0);
    CHECK_EQ(search(ix, "   ", 5, 0, h), 0);
    CHECK_EQ(search(ix, "absent", 5, 0, h), 0);
    /* a removed paper leaves the statistics: N 2, avg title 2, avg abstract 5 */
    CHECK(sx_kw_index_remove(ix, 12, &err) == 0);
    idf = log(1 + (2 - 1 + 0.5) / (1 + 0.5));
    double na2 = 0.25 + 0.75 * 5 / 5.0;
    tf = 2.0 + 2.0 / na2;
    CHECK_EQ(search(ix, "graph", 5, 0, h), 1);
    CHECK_NEAR(h[0].score, idf * tf / (k1 + tf), 1e-5);
    sx_kw_stats st;
    sx_kw_index_stats(ix, &st);
    CHECK_EQ(st.docs, 2);
    CHECK_EQ(st.removed, 1);
    CHECK_NEAR(st.avg_len[SX_KW_ABSTRACT], 5.0, 1e-9);
    sx_kw_index_free(ix);
}

/* Synthetic paper i, version v: words drawn from a Zipf-like vocabulary. */
static void synth(int i, int v, char *title, char *abstract, char *authors) {
    static const char *syll[] = {"ka", "lo", "mi", "ne", "ru", "ta", "vi", "zo", "pe", "qu"};
    tv_rng r = {(uint64_t)i * 7919 + (uint64_t)v * 104729 + 1};
    char *outs[2] = {title, abstract};
    int lens[2] = {4 + (int)(tv_unif(&r) * 6), 20 + (int)(tv_unif(&r) * 60)};
    for (int f = 0; f < 2; f++) {
        char *o = outs[f];
        o[0] = 0;
        for (int w = 0; w < lens[f]; w++) {
            double u = tv_unif(&r);
            int id = (int)(400 * u * u * u); /* skewed word ids */
            char word[16];
            snprintf(word, sizeof word, "%s%s%s", syll[id % 10], syll[id / 10 % 10], id >= 100 ? syll[id / 100] : "");
            strcat(o, word);
            strcat(o, w % 9 == 8 ? "-x " : " ");
        }
    }
    snprintf(authors, 128, "A. Au%d, B. Bo%d", i % 37, (i + v) % 11);
}

static void check_same_results(const sx_kw_index *a, const sx_kw_index *b) {
    static const char *queries[] = {"kaka", "lomi ne", "kalo mine ruta vizo", "pequ kaka lolo",
                                    "au3", "bo5 kaka", "kaka-x", "zozo", "mimi mimi", "taqu vi"};
    sx_kw_hit ha[50], hb[50];
    for (size_t q = 0; q < sizeof queries / sizeof *queries; q++)
        for (unsigned fields = 0; fields < 8; fields += 3) {
            int na = search(a, queries[q], 50, fields, ha), nb = search(b, queries[q], 50, fields, hb);
            CHECK_EQ(na, nb);
            for (int i = 0; i < na; i++) {
                CHECK_MSG(ha[i].slot == hb[i].slot && ha[i].score == hb[i].score,
                          "query '%s' rank %d: slot %u %.9g vs slot %u %.9g", queries[q], i,
                          ha[i].slot, ha[i].score, hb[i].slot, hb[i].score);
            }
        }
}

void test_keyword_incremental_equals_fresh(void) {
    enum { N = 3000 };
    static int version[N], present[N];
    char title[1024], abstract[4096], authors[128];
    sx_err err = {0};
    sx_kw_index *inc = new_index();
    for (int i = 0; i < N; i++) {
        synth(i, 0, title, abstract, authors);
        CHECK_MSG(sx_kw_index_add(inc, (uint32_t)i, title, abstract, authors, &err) == 0, "%s", err.msg);
        present[i] = 1;
    }
    /* remove 45%, replace 10% in place, re-add some removed ones with new text */
    tv_rng r = {42};
    int compacted = 0;
    for (int i = 0; i < N; i++) {
        double u = tv_unif(&r);
        if (u < 0.45) {
            CHECK(sx_kw_index_remove(inc, (uint32_t)i, &err) == 0);
            present[i] = 0;
            sx_kw_stats st;
            sx_kw_index_stats(inc, &st);
            compacted |= st.removed == 0;
        } else if (u < 0.55) {
            version[i] = 1;
            synth(i, 1, title, abstract, authors);
            CHECK(sx_kw_index_add(inc, (uint32_t)i, title, abstract, authors, &err) == 0);
        }
    }
    CHECK(compacted); /* removes crossed the threshold at least once */
    for (int i = 0; i < N; i += 7)
        if (!present[i]) {
            version[i] = 2;
            synth(i, 2, title, abstract, authors);
            CHECK(sx_kw_index_add(inc, (uint32_t)i, title, abstract, authors, &err) == 0);
            present[i] = 1;
        }
    CHECK_EQ(sx_kw_index_remove(inc, 1u << 20, &err), SX_ENOTFOUND);
    /* a fresh build of what remains, in reverse order */
    sx_kw_index *fresh = new_index();
    size_t live = 0;
    for (int i = N - 1; i >= 0; i--)
        if (present[i]) {
            synth(i, version[i], title, abstract, authors);
            CHECK(sx_kw_index_add(fresh, (uint32_t)i, title, abstract, authors, &err) == 0);
            live++;
        }
    sx_kw_stats sa, sb;
    sx_kw_index_stats(inc, &sa);
    sx_kw_index_stats(fresh, &sb);
    CHECK_EQ(sa.docs, live);
    CHECK_EQ(sb.docs, live);
    for (int f = 0; f < SX_KW_NFIELDS; f++) CHECK(sa.avg_len[f] == sb.avg_len[f]);
    for (int i = 0; i < N; i++) CHECK_EQ(sx_kw_index_contains(inc, (uint32_t)i), present[i]);
    check_same_results(inc, fresh);
    /* compaction changes nothing a search sees, and drops every tombstone */
    CHECK(sx_kw_index_maintain(inc, 1, &err) == 0);
    sx_kw_index_stats(inc, &sa);
    CHECK_EQ(sa.removed, 0);
    CHECK_EQ(sa.postings, sb.postings);
    CHECK_EQ(sa.terms, sb.terms);
    check_same_results(inc, fresh);
    /* and the index goes on working after it */
    synth(5000, 0, title, abstract, authors);
    CHECK(sx_kw_index_add(inc, 5000, title, abstract, authors, &err) == 0);
    CHECK(sx_kw_index_add(fresh, 5000, title, abstract, authors, &err) == 0);
    check_same_results(inc, fresh);
    sx_kw_index_free(inc);
    sx_kw_index_free(fresh);
}

static int odd_only(void *ctx, uint32_t slot) {
    int *calls = ctx;
    (*calls)++;
    return slot & 1;
}

static int collect_slot(void *ctx, uint32_t slot) {
    uint32_t *seen = ctx;
    seen[slot]++;
    return 0;
}

void test_keyword_filter_and_authors(void) {
    sx_kw_index *ix = new_index();
    sx_err err = {0};
    char title[64];
    for (uint32_t s = 0; s < 40; s++) {
        snprintf(title, sizeof title, "Lindblad dynamics part %u%s", s, s % 4 == 0 ? " lindblad" : "");
        const char *authors = s % 5 == 0 ? "J. K. Bhattacharjee, R. Dasgupta" : "A. Other";
        CHECK(sx_kw_index_add(ix, s, title, "Open systems.", authors, &err) == 0);
    }
    sx_kw_hit h[40];
    int calls = 0, n = 0;
    sx_kw_query q = {.k = 5, .filter = odd_only, .filter_ctx = &calls};
    CHECK(sx_kw_index_search(ix, "lindblad", &q, h, &n, &err) == 0);
    CHECK_EQ(n, 5);
    for (int i = 0; i < n; i++) CHECK(h[i].slot & 1);
    for (int i = 1; i < n; i++) CHECK(h[i - 1].score > h[i].score || (h[i - 1].score == h[i].score && h[i - 1].slot < h[i].slot));
    CHECK(calls <= 40);
    /* k larger than the matches; k out of range */
    q = (sx_kw_query){.k = 40};
    CHECK(sx_kw_index_search(ix, "lindblad", &q, h, &n, &err) == 0);
    CHECK_EQ(n, 40);
    CHECK(h[0].slot % 4 == 0); /* twice in the title ranks first */
    q.k = 0;
    CHECK_EQ(sx_kw_index_search(ix, "lindblad", &q, h, &n, &err), SX_EINVAL);
    q.k = 10001;
    CHECK_EQ(sx_kw_index_search(ix, "lindblad", &q, h, &n, &err), SX_EINVAL);
    /* authors: candidates by surname, confirmed by the normalised name */
    uint32_t seen[40] = {0};
    CHECK(sx_kw_index_author_docs(ix, "Bhattacharjee, Jayanta", collect_slot, seen) == 0);
    for (uint32_t s = 0; s < 40; s++) CHECK_EQ(seen[s], s % 5 == 0);
    memset(seen, 0, sizeof seen);
    CHECK(sx_kw_index_author_docs(ix, "Nobody", collect_slot, seen) == 0);
    CHECK(sx_kw_index_author_docs(ix, "", collect_slot, seen) == 0);
    for (uint32_t s = 0; s < 40; s++) CHECK_EQ(seen[s], 0);
    /* "Lindblad" in a title is not an author */
    CHECK(sx_kw_index_author_docs(ix, "G. Lindblad", collect_slot, seen) == 0);
    for (uint32_t s = 0; s < 40; s++) CHECK_EQ(seen[s], 0);
    /* bad input */
    CHECK_EQ(sx_kw_index_add(ix, SX_KW_MAX_SLOTS, "t", NULL, NULL, &err), SX_EINVAL);
    CHECK_EQ(sx_kw_index_remove(ix, 99, &err), SX_ENOTFOUND);
    CHECK(sx_kw_index_add(ix, 99, NULL, NULL, NULL, &err) == 0); /* an empty paper */
    CHECK(sx_kw_index_contains(ix, 99));
    CHECK(sx_kw_index_remove(ix, 99, &err) == 0);
    sx_kw_params p = sx_kw_params_default();
    sx_kw_index *bad = NULL;
    p.k1 = 0;
    CHECK_EQ(sx_kw_index_create(&p, &bad, &err), SX_EINVAL);
    p = sx_kw_params_default();
    p.b[1] = 1.5f;
    CHECK_EQ(sx_kw_index_create(&p, &bad, &err), SX_EINVAL);
    p = sx_kw_params_default();
    p.weight[0] = p.weight[1] = p.weight[2] = 0;
    CHECK_EQ(sx_kw_index_create(&p, &bad, &err), SX_EINVAL);
    p.weight[0] = NAN;
    CHECK_EQ(sx_kw_index_create(&p, &bad, &err), SX_EINVAL);
    CHECK(bad == NULL);
    sx_kw_index_free(ix);
}

/* ---- save / load ---- */

static sx_kw_index *sample_index(int n) {
    sx_kw_index *ix = new_index();
    sx_err err = {0};
    char title[1024], abstract[4096], authors[128];
    for (int i = 0; i < n; i++) {
        synth(i, 0, title, abstract, authors);
        CHECK(sx_kw_index_add(ix, (uint32_t)(i * 2 + 1), title, abstract, authors, &err) == 0);
    }
    for (int i = 0; i < n; i += 3) CHECK(sx_kw_index_remove(ix, (uint32_t)(i * 2 + 1), &err) == 0);
    return ix;
}

void test_keyword_save_load(void) {
    sx_kw_index *ix = sample_index(300);
    sx_err err = {0};
    void *buf;
    size_t len;
    CHECK_MSG(sx_kw_index_save_buf(ix, &buf, &len, &err) == 0, "%s", err.msg);
    CHECK(len % 64 == 0);
    /* from a buffer */
    sx_kw_index *a = NULL;
    CHECK_MSG(sx_kw_index_load_buf(buf, len, 1000, &a, &err) == 0, "%s", err.msg);
    check_same_results(ix, a);
    sx_kw_stats s0, s1;
    sx_kw_index_stats(ix, &s0);
    sx_kw_index_stats(a, &s1);
    CHECK_EQ(s0.docs, s1.docs);
    CHECK_EQ(s0.removed, s1.removed);
    CHECK_EQ(s0.postings, s1.postings);
    /* saving the loaded index gives the same bytes */
    void *buf2;
    size_t len2;
    CHECK(sx_kw_index_save_buf(a, &buf2, &len2, &err) == 0);
    CHECK_EQ(len2, len);
    CHECK(memcmp(buf, buf2, len) == 0);
    sx_index_free_mem(buf2);
    /* from a stream, after other sections (as inside a shard snapshot) */
    membuf m = {0};
    sx_sink sink = {mem_write, &m, 0, 0, 0};
    sx_sink_begin(&sink, SX_TAG('X', 'X', 'X', 'X'), 3);
    sx_sink_write(&sink, "abc", 3);
    sx_sink_end(&sink);
    CHECK(sx_kw_index_save(ix, &sink, &err) == 0);
    sx_source src = {mem_read, &m, NULL, 0, 0, 1, 0};
    sx_section sec;
    CHECK(sx_source_section(&src, SX_TAG('X', 'X', 'X', 'X'), 0, &sec, &err) == 0);
    sx_section_release(&sec);
    sx_kw_index *b = NULL;
    CHECK_MSG(sx_kw_index_load(&src, 1000, &b, &err) == 0, "%s", err.msg);
    check_same_results(ix, b);
    /* a loaded index takes adds, removes and compaction */
    char title[1024], abstract[4096], authors[128];
    for (int i = 0; i < 300; i++) {
        synth(i, 3, title, abstract, authors);
        CHECK(sx_kw_index_add(b, (uint32_t)(i * 2 + 1), title, abstract, authors, &err) == 0);
        CHECK(sx_kw_index_add(ix, (uint32_t)(i * 2 + 1), title, abstract, authors, &err) == 0);
    }
    CHECK(sx_kw_index_maintain(b, 1, &err) == 0);
    check_same_results(ix, b);
    /* writer errors are returned */
    membuf f = {.fail_at = 100};
    sx_sink fs = {mem_write, &f, 0, 0, 0};
    CHECK_EQ(sx_kw_index_save(ix, &fs, &err), SX_EIO);
    /* an empty index round-trips */
    sx_kw_index *e = new_index(), *e2 = NULL;
    void *eb;
    size_t el;
    CHECK(sx_kw_index_save_buf(e, &eb, &el, &err) == 0);
    CHECK(sx_kw_index_load_buf(eb, el, 0, &e2, &err) == 0);
    sx_kw_hit h[1];
    CHECK_EQ(search(e2, "kaka", 1, 0, h), 0);
    sx_index_free_mem(eb);
    sx_kw_index_free(e);
    sx_kw_index_free(e2);
    free(m.p);
    free(f.p);
    sx_index_free_mem(buf);
    sx_kw_index_free(a);
    sx_kw_index_free(b);
    sx_kw_index_free(ix);
}

void test_keyword_load_corrupt(void) {
    sx_kw_index *ix = sample_index(40);
    sx_err err = {0};
    void *buf;
    size_t len;
    CHECK(sx_kw_index_save_buf(ix, &buf, &len, &err) == 0);
    uint8_t *c = malloc(len);
    sx_kw_index *out = NULL;
    /* every truncation is refused */
    for (size_t cut = 0; cut < len; cut += cut < 256 ? 1 : 61) {
        CHECK_EQ(sx_kw_index_load_buf(buf, cut, 1000, &out, &err), SX_ECORRUPT);
        CHECK(out == NULL);
    }
    /* a flipped bit anywhere fails a checksum */
    for (size_t at = 0; at < len; at += 17) {
        memcpy(c, buf, len);
        c[at] ^= 0x10;
        int rc = sx_kw_index_load_buf(c, len, 1000, &out, &err);
        CHECK_MSG(rc == SX_ECORRUPT || (rc == 0 && memcmp(c, buf, len) != 0 && out), "byte %zu", at);
        if (rc == 0) {
            sx_kw_index_free(out); /* a flip in padding: harmless */
            out = NULL;
        }
    }
    /* with checksums fixed up, every change is caught by the structure
     * checks or loads into an index that searches safely */
    int refused = 0;
    for (size_t at = 0; at < len; at++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(c, buf, len);
            c[at] ^= (uint8_t)(1u << bit);
            test_fix_section_crcs(c, len);
            int rc = sx_kw_index_load_buf(c, len, 1000, &out, &err);
            CHECK(rc == 0 || rc == SX_ECORRUPT || rc == SX_EUNSUPPORTED);
            if (rc == 0) {
                sx_kw_hit h[10];
                search(out, "kaka lomi au3 zozo", 10, 0, h);
                sx_kw_index_free(out);
                out = NULL;
            } else {
                refused++;
                CHECK(err.msg[0] != 0);
            }
        }
    }
    CHECK(refused > 0);
    /* named problems */
    memcpy(c, buf, len);
    sx_le32_put(c + 64, 2); /* version */
    test_fix_section_crcs(c, len);
    CHECK_EQ(sx_kw_index_load_buf(c, len, 1000, &out, &err), SX_EUNSUPPORTED);
    CHECK(strstr(err.msg, "version 2") != NULL);
    CHECK_EQ(sx_kw_index_load_buf(buf, len, 50, &out, &err), SX_ECORRUPT); /* slots up to 79 */
    CHECK(strstr(err.msg, "slot out of range") != NULL);
    CHECK_EQ(sx_kw_index_load_buf("garbage", 7, 1000, &out, &err), SX_ECORRUPT);
    free(c);
    sx_index_free_mem(buf);
    sx_kw_index_free(ix);
}

/* ---- highlights ---- */

static void check_spans(const char *q, const char *text, const char *expect) {
    sx_kw_span sp[8];
    int n = -1;
    CHECK(sx_kw_highlight(q, text, strlen(text), sp, 8, &n) == 0);
    char got[512] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s[%.*s]", i ? " " : "", (int)(sp[i].end - sp[i].start),
                 text + sp[i].start);
    }
    CHECK_STR(got, expect);
}

void test_keyword_highlight(void) {
    check_spans("resnet50 bert", "We prune ResNet-50 and BERT.", "[ResNet-50] [BERT]");
    check_spans("resnet", "We prune ResNet-50 and BERT.", "[ResNet]");
    check_spans("ResNet 50", "We prune ResNet-50.", "[ResNet] [50]");
    check_spans("resnet-50", "We prune ResNet-50.", "[ResNet-50]"); /* the joined term spans both */
    check_spans("schrodinger", "Schr\xc3\xb6" "dinger's cat", "[Schr\xc3\xb6" "dinger]");
    check_spans("Schr\xc3\xb6" "dinger", "the Schr\\\"odinger equation", "[Schr\\\"odinger]");
    check_spans("lindblad", "\\textbf{Lindblad} and $\\mathcal{L}$", "[Lindblad]");
    check_spans("alpha decay", "$\\alpha$ decay", "[\\alpha] [decay]");
    check_spans("the", "the model", "");
    check_spans("", "the model", "");
    check_spans("model", "", "");
    /* spans start and end on character boundaries of multi-byte text */
    const char *t = "\xce\x91\xce\xbb\xce\xb3\xcf\x8c\xcf\x81\xce\xb9\xce\xb8\xce\xbc\xce\xbf\xcf\x82 \xe6\xbc\xa2\xe5\xad\x97";
    sx_kw_span sp[4];
    int n;
    CHECK(sx_kw_highlight("\xce\xb1\xce\xbb\xce\xb3\xce\xbf\xcf\x81\xce\xb9\xce\xb8\xce\xbc\xce\xbf\xcf\x82 \xe6\xbc\xa2\xe5\xad\x97", t, strlen(t), sp, 4, &n) == 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(sp[0].start, 0);
    CHECK_EQ(sp[0].end, 20);
    CHECK_EQ(sp[1].start, 21);
    CHECK_EQ(sp[1].end, 27);
    /* more matches than room: the first ones */
    CHECK(sx_kw_highlight("a1 b2", "a1 x b2 x a1 x b2 x a1", 22, sp, 2, &n) == 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(sp[1].start, 5);
}

/* ---- format fixture ---- */

static int count_slot(void *ctx, uint32_t slot) {
    (void)slot;
    ++*(int *)ctx;
    return 0;
}

/* tests/fixtures/keyword/small-v1.kw, written by build/fuzz/make-kw-seed
 * (tests/fuzz/keyword_load.c): format version 1 must keep loading, with the
 * same answers, and save back to the same bytes. */
void test_keyword_fixture_loads(void) {
    char *data;
    size_t len;
    sx_err err = {0};
    CHECK_MSG(sx_read_file("tests/fixtures/keyword/small-v1.kw", &data, &len, &err) == 0, "%s", err.msg);
    sx_kw_index *ix = NULL;
    CHECK_MSG(sx_kw_index_load_buf(data, len, 1u << 16, &ix, &err) == 0, "%s", err.msg);
    sx_kw_hit h[24];
    CHECK_EQ(search(ix, "Lindblad", 24, 0, h), 6);   /* papers 0, 4, ..., 20 */
    for (int i = 0; i < 6; i++) CHECK_EQ(h[i].slot % 12, 0);
    CHECK_EQ(search(ix, "resnet50", 24, 0, h), 6);
    CHECK_EQ(search(ix, "Schr\xc3\xb6" "dinger", 24, 0, h), 5); /* slot 30 removed */
    CHECK_EQ(search(ix, "writer", 24, 1u << SX_KW_TITLE, h), 0);
    int c = 0;
    CHECK(sx_kw_index_author_docs(ix, "Author, A.", count_slot, &c) == 0);
    CHECK_EQ(c, 11); /* odd papers, slot 9 removed */
    void *again;
    size_t alen;
    CHECK(sx_kw_index_save_buf(ix, &again, &alen, &err) == 0);
    CHECK(alen == len && memcmp(again, data, len) == 0);
    sx_index_free_mem(again);
    sx_kw_index_free(ix);
    free(data);
}

/* ---- threads: many readers ---- */

typedef struct reader_arg {
    const sx_kw_index *ix;
    int bad;
} reader_arg;

static const char *const k_conc_queries[] = {"kaka lomi", "au3 bo5", "zozo mine", "pequ-x", "vizo"};

static void *reader(void *p) {
    reader_arg *a = p;
    sx_kw_hit want[20], got[20];
    for (int round = 0; round < 30; round++)
        for (int q = 0; q < 5; q++) {
            sx_kw_query kq = {.k = 20};
            int nw = 0, ng = 0;
            /* two searches in a row agree, whatever the others do */
            sx_kw_index_search(a->ix, k_conc_queries[q], &kq, want, &nw, NULL);
            sx_kw_index_search(a->ix, k_conc_queries[q], &kq, got, &ng, NULL);
            if (nw != ng || memcmp(want, got, (size_t)nw * sizeof *got) != 0) a->bad++;
            sx_kw_span sp[4];
            int ns;
            sx_kw_highlight(k_conc_queries[q], "kaka lomi zozo", 14, sp, 4, &ns);
        }
    return NULL;
}

/* Searches only read: four threads searching one index at once (no lock,
 * as the contract allows readers together) agree with a lone search;
 * ThreadSanitizer (make tsan) checks that nothing shared is written. */
void test_keyword_concurrent_searches(void) {
    sx_kw_index *ix = sample_index(400);
    sx_kw_hit solo[5][20];
    int nsolo[5];
    for (int q = 0; q < 5; q++) nsolo[q] = search(ix, k_conc_queries[q], 20, 0, solo[q]);
    pthread_t th[4];
    reader_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg){ix, 0};
        CHECK(pthread_create(&th[i], NULL, reader, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(args[i].bad, 0);
    }
    for (int q = 0; q < 5; q++) {
        sx_kw_hit h[20];
        CHECK_EQ(search(ix, k_conc_queries[q], 20, 0, h), nsolo[q]);
        CHECK(memcmp(h, solo[q], (size_t)nsolo[q] * sizeof *h) == 0);
    }
    sx_kw_index_free(ix);
}

/* ---- allocation failures ---- */

static long g_fail_in = -1; /* allocations left before one fails; -1 never */
static long g_live;         /* blocks handed out and not freed */

static int fail_now(void) { return g_fail_in >= 0 && g_fail_in-- == 0; }

static void *f_malloc(size_t n) {
    if (fail_now()) return NULL;
    void *p = malloc(n);
    g_live += p != NULL;
    return p;
}

static void *f_calloc(size_t n, size_t s) {
    if (fail_now()) return NULL;
    void *p = calloc(n, s);
    g_live += p != NULL;
    return p;
}

static void *f_realloc(void *p, size_t n) {
    if (fail_now()) return NULL;
    void *q = realloc(p, n);
    g_live += q != NULL && p == NULL;
    return q;
}

static void f_free(void *p) {
    g_live -= p != NULL;
    free(p);
}

/* Every allocation of an add, a compaction, a search, a save and a load
 * fails in turn: each returns SX_ENOMEM, the index answers as before, and
 * nothing leaks; the operation then succeeds when memory is back. All the
 * index's memory goes through the installed allocator (g_live ends at 0). */
void test_keyword_out_of_memory(void) {
    sx_allocator a = {f_malloc, f_calloc, f_realloc, f_free};
    sx_index_set_allocator(&a);
    sx_kw_index *ix = sample_index(200), *ref = sample_index(200);
    sx_err err = {0};
    char title[1024], abstract[4096], authors[128];
    synth(7777, 0, title, abstract, authors);
    strcat(title, " brandnewterm another-fresh-compound");
    int failures = 0;
    for (long k = 0;; k++) {
        g_fail_in = k;
        int rc = sx_kw_index_add(ix, 4000, title, abstract, authors, &err);
        g_fail_in = -1;
        if (rc == 0) break;
        CHECK_EQ(rc, SX_ENOMEM);
        CHECK(!sx_kw_index_contains(ix, 4000));
        check_same_results(ix, ref);
        failures++;
    }
    CHECK(failures > 3); /* a slot map, papers, terms, strings, table, postings */
    CHECK(sx_kw_index_add(ref, 4000, title, abstract, authors, &err) == 0);
    check_same_results(ix, ref);
    /* compaction */
    failures = 0;
    for (long k = 0;; k++) {
        g_fail_in = k;
        int rc = sx_kw_index_maintain(ix, 1, &err);
        g_fail_in = -1;
        if (rc == 0) break;
        CHECK_EQ(rc, SX_ENOMEM);
        check_same_results(ix, ref);
        failures++;
    }
    CHECK(failures > 3);
    check_same_results(ix, ref);
    /* search, save and load */
    sx_kw_hit h[5];
    int n;
    sx_kw_query q = {.k = 5};
    /* a search allocates nothing through the index allocator (its scratch
     * is the thread's, kept between searches): it works when that fails */
    CHECK_EQ(sx_kw_index_search(ix, "kaka", &q, h, &n, &err), 0);
    int n_before = n;
    g_fail_in = 0;
    CHECK_EQ(sx_kw_index_search(ix, "kaka", &q, h, &n, &err), 0);
    CHECK_EQ(n, n_before);
    g_fail_in = -1;
    void *buf = NULL;
    size_t len = 0;
    for (long k = 0;; k++) {
        g_fail_in = k;
        int rc = sx_kw_index_save_buf(ix, &buf, &len, &err);
        g_fail_in = -1;
        if (rc == 0) break;
        CHECK_EQ(rc, SX_ENOMEM);
    }
    for (long k = 0;; k++) {
        sx_kw_index *b = NULL;
        g_fail_in = k;
        int rc = sx_kw_index_load_buf(buf, len, 10000, &b, &err);
        g_fail_in = -1;
        if (rc == 0) {
            check_same_results(b, ref);
            sx_kw_index_free(b);
            break;
        }
        CHECK_EQ(rc, SX_ENOMEM);
        CHECK(b == NULL);
    }
    sx_index_free_mem(buf);
    sx_kw_index_free(ix);
    sx_kw_index_free(ref);
    CHECK_EQ(g_live, 0);
    sx_index_set_allocator(NULL);
}
