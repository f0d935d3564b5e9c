/*
 * analyze.c - the keyword analyser, highlight spans and author names.
 *
 * One pass over the UTF-8 bytes sorts every character into one of five
 * kinds, and a compound of words is built from them:
 *
 *   word     letters, digits and combining marks (Unicode categories L*,
 *            N*, M*): kept
 *   joiner   deleted without ending the word: $ ^ _ { } (TeX math and
 *            grouping, so "L_1" is "l1" and "Schr{\"o}dinger" one word),
 *            Unicode format characters (soft hyphen, zero-width joiner), the
 *            TeX accents \" \' \` \^ \~ \= \. \u \v \H \c \k \r \d \b \t
 *            and the discretionary hyphen \-
 *   hyphen   - U+2010 U+2011 between two words: the words are parts of one
 *            compound
 *   LaTeX    \name: dropped and ends the word, except the Greek letters
 *            (\alpha gives "alpha") and the letters \o \l \ss \ae \oe \aa
 *            \i \j (Bj\o rn gives "bjorn"); the arguments of \cite \ref
 *            \eqref \cref \label \url \includegraphics \bibitem (and the
 *            first of \href) are dropped with it, those of every other
 *            command (\textbf{BERT}, \mathcal{O}) are kept as text
 *   other    everything else (spaces, punctuation, dashes, invalid UTF-8
 *            bytes): ends the word
 *
 * A word becomes a term through NFKC, Unicode case folding and the removal
 * of accents (utf8proc: COMPAT | CASEFOLD | STRIPMARK | IGNORE, composed),
 * with an ASCII fast path for the common case. Terms longer than
 * SX_KW_TERM_MAX bytes are dropped, then stop words (below).
 *
 * Hyphenated compounds. "ResNet-50" gives the terms "resnet", "50" and the
 * joined "resnet50", so that the queries "resnet-50", "ResNet 50" and
 * "resnet50" all find it (and "GPT-4" is found by "gpt4"). The joined term
 * is left out when every part is a number ("2019-2020"); a chain of more
 * than 8 parts is cut into compounds of 8, and a compound of more than 512
 * bytes is dropped whole. The index counts every term it is given, the
 * joined one included, in the field's length.
 *
 * Scripts without spaces (Chinese, Japanese) are not segmented: a run of
 * ideographs is one term. arXiv metadata is nearly all English; a CJK
 * segmenter is left for when that changes.
 *
 * Stop words: the 30 below (sx_kw_is_stop): the function words among the
 * 60 most frequent words of 50,000 arXiv titles and abstracts (the, of, a,
 * and, in, to, is, we, for, that, with, on, this, are, by, an, as, be,
 * which, from, it, s, at, or, has, have), plus was, were, its and t (of
 * "don't"). Content words that are frequent ("model", "paper") stay: BM25's
 * idf already makes them cheap, and they can matter in a title. A query of
 * stop words only finds nothing. The authors field keeps them ("Le", "An"
 * are surnames) and drops one-letter terms (initials) instead.
 *
 * No stemming: "network" does not find "networks". It has not been
 * measured to help here, and what keyword search adds to the semantic one
 * is exact identifiers ("BERT", "Lindblad"), which a stemmer can only blur;
 * the quality benchmark of the hybrid search is where to try it.
 *
 * Rejected: reusing the encoder's BERT normaliser (text.c) - it splits every
 * punctuation mark into its own token and knows nothing of LaTeX; a regular
 * expression pass to strip LaTeX first - it would lose the byte offsets that
 * highlights need, which this single pass keeps for every term.
 *
 * Author names are normalised by running the same analyser over each word
 * (stop words kept, hyphenated compounds joined) and reordering; see
 * sx_kw_author_norm in keyword.h.
 */
#include "keyword.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define RAW_MAX 512  /* bytes of one compound before normalisation */
#define MAX_PARTS 8
#define NORM_OPTS                                                                            \
    (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |             \
     UTF8PROC_STRIPMARK | UTF8PROC_IGNORE)

static const char *const k_stop[] = {
    "a",    "an",   "and",  "are",  "as",  "at",    "be",   "by",   "for",  "from",
    "has",  "have", "in",   "is",   "it",  "its",   "of",   "on",   "or",   "s",
    "t",    "that", "the",  "this", "to",  "was",   "we",   "were", "which", "with",
};

int sx_kw_is_stop(const char *term, size_t len) {
    if (len > 5) return 0;
    for (size_t i = 0; i < sizeof k_stop / sizeof *k_stop; i++)
        if (strlen(k_stop[i]) == len && memcmp(k_stop[i], term, len) == 0) return 1;
    return 0;
}

/* ---- the scanner ---- */

typedef struct part {
    size_t start, end;     /* span in the text */
    size_t raw_off, raw_len;
    int numeric;           /* ASCII digits only */
} part;

typedef struct scan {
    const uint8_t *p;
    size_t len;
    int flags;
    sx_kw_term_fn fn;
    void *ctx;
    int rc;
    int state; /* IDLE, WORD (a part is open), HYPH (after a hyphen) */
    int overflow;
    part parts[MAX_PARTS];
    int n_parts;
    uint8_t raw[RAW_MAX];
    size_t raw_len;
} scan;

enum { IDLE, WORD, HYPH };

/* Normalises raw[0..n) into out (SX_KW_TERM_MAX bytes); returns the length,
 * 0 when the word normalises to nothing or too long. */
static size_t normalise(const uint8_t *raw, size_t n, char *out) {
    int ascii = 1;
    for (size_t i = 0; i < n; i++)
        if (raw[i] >= 0x80) ascii = 0;
    if (ascii) {
        if (n > SX_KW_TERM_MAX) return 0;
        for (size_t i = 0; i < n; i++) out[i] = (char)(raw[i] >= 'A' && raw[i] <= 'Z' ? raw[i] + 32 : raw[i]);
        return n;
    }
    /* a decomposition is at most a few code points per character; words
     * that need more are far beyond the term limit anyway */
    utf8proc_int32_t buf[4 * SX_KW_TERM_MAX + 1];
    utf8proc_ssize_t m = utf8proc_decompose(raw, (utf8proc_ssize_t)n, buf, 4 * SX_KW_TERM_MAX, NORM_OPTS);
    if (m <= 0 || m > 4 * SX_KW_TERM_MAX) return 0;
    m = utf8proc_reencode(buf, m, NORM_OPTS);
    if (m <= 0 || m > SX_KW_TERM_MAX) return 0;
    memcpy(out, buf, (size_t)m);
    return (size_t)m;
}

static void emit(scan *s, const uint8_t *raw, size_t n, size_t start, size_t end) {
    char term[SX_KW_TERM_MAX];
    if (s->rc) return;
    size_t len = normalise(raw, n, term);
    if (len == 0) return;
    if ((s->flags & SX_KW_SKIP_SHORT) && len == 1) return;
    if (!(s->flags & SX_KW_KEEP_STOP) && sx_kw_is_stop(term, len)) return;
    s->rc = s->fn(s->ctx, term, len, start, end);
}

/* Ends the current compound: its parts, then the joined term. */
static void flush(scan *s) {
    int np = s->n_parts;
    if (np > 0 && !s->overflow) {
        int join_only = (s->flags & SX_KW_JOIN_ONLY) != 0;
        if (!join_only || np == 1)
            for (int i = 0; i < np; i++)
                emit(s, s->raw + s->parts[i].raw_off, s->parts[i].raw_len, s->parts[i].start, s->parts[i].end);
        int numeric = 1;
        for (int i = 0; i < np; i++) numeric &= s->parts[i].numeric;
        if (np > 1 && (!numeric || join_only))
            emit(s, s->raw, s->raw_len, s->parts[0].start, s->parts[np - 1].end);
    }
    s->state = IDLE;
    s->n_parts = 0;
    s->raw_len = 0;
    s->overflow = 0;
}

/* Appends the bytes of one word character (or inserted letters) spanning
 * [start, end) of the text. */
static void word(scan *s, const void *bytes, size_t n, size_t start, size_t end) {
    if (s->state == HYPH && s->n_parts == MAX_PARTS) flush(s);
    if (s->state != WORD) {
        part *pt = &s->parts[s->n_parts++];
        *pt = (part){start, end, s->raw_len, 0, 1};
        s->state = WORD;
    }
    part *pt = &s->parts[s->n_parts - 1];
    if (s->raw_len + n > RAW_MAX) {
        s->overflow = 1;
    } else {
        memcpy(s->raw + s->raw_len, bytes, n);
        s->raw_len += n;
        pt->raw_len += n;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = ((const uint8_t *)bytes)[i];
        if (c < '0' || c > '9') pt->numeric = 0;
    }
    pt->end = end;
}

static void hyphen(scan *s) {
    if (s->state == WORD) s->state = HYPH;
    else if (s->state == HYPH) flush(s);
}

static int is_alpha(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* ---- LaTeX ---- */

static const char *const k_greek[] = {
    "alpha", "beta",  "gamma",   "delta", "epsilon", "zeta", "eta",   "theta",
    "iota",  "kappa", "lambda",  "mu",    "nu",      "xi",   "pi",    "rho",
    "sigma", "tau",   "upsilon", "phi",   "chi",     "psi",  "omega",
};

static const char *const k_drop_arg[] = {
    "cite", "citep", "citet", "citealp", "citeauthor", "citeyear", "ref", "eqref", "cref", "Cref",
    "autoref", "pageref", "label", "url", "includegraphics", "bibitem", "href",
};

/* The letters of a letter command (\o, \ss, ...), or NULL. */
static const char *letter_cmd(const char *name, size_t n) {
    static const char *const map[][2] = {
        {"i", "i"},  {"j", "j"},  {"o", "o"},   {"O", "o"},   {"l", "l"},   {"L", "l"},   {"ss", "ss"},
        {"SS", "ss"}, {"ae", "ae"}, {"AE", "ae"}, {"oe", "oe"}, {"OE", "oe"}, {"aa", "a"}, {"AA", "a"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strlen(map[i][0]) == n && memcmp(map[i][0], name, n) == 0) return map[i][1];
    return NULL;
}

/* The lower-case Greek letter named (\alpha, \Gamma, \varepsilon), or NULL. */
static const char *greek(const char *name, size_t n) {
    if (n > 3 && memcmp(name, "var", 3) == 0) name += 3, n -= 3;
    for (size_t i = 0; i < sizeof k_greek / sizeof *k_greek; i++) {
        const char *g = k_greek[i];
        if (strlen(g) != n) continue;
        if ((name[0] == g[0] || name[0] == g[0] - 32) && memcmp(name + 1, g + 1, n - 1) == 0) return g;
    }
    return NULL;
}

static int in_list(const char *const *list, size_t count, const char *name, size_t n) {
    for (size_t i = 0; i < count; i++)
        if (strlen(list[i]) == n && memcmp(list[i], name, n) == 0) return 1;
    return 0;
}

static size_t skip_spaces(const scan *s, size_t i) {
    while (i < s->len && (s->p[i] == ' ' || s->p[i] == '\t' || s->p[i] == '\n' || s->p[i] == '\r')) i++;
    return i;
}

/* Skips a balanced group opening at i with open (then close), bounded by
 * 4096 bytes; returns the position after it (i when there is none). */
static size_t skip_group(const scan *s, size_t i, uint8_t open, uint8_t close) {
    if (i >= s->len || s->p[i] != open) return i;
    int depth = 0;
    for (size_t j = i; j < s->len && j - i < 4096; j++) {
        if (s->p[j] == '\\' && j + 1 < s->len) {
            j++;
            continue;
        }
        if (s->p[j] == open) depth++;
        else if (s->p[j] == close && --depth == 0) return j + 1;
    }
    return i;
}

/* Handles the backslash at i; returns the position after what it consumed. */
static size_t latex(scan *s, size_t i) {
    const char *z = (const char *)s->p;
    size_t j = i + 1;
    if (j >= s->len || s->p[j] >= 0x80) {
        flush(s);
        return j;
    }
    if (!is_alpha(s->p[j])) {
        if (strchr("\"'`^~=.-", s->p[j])) return j + 1; /* accent, \-: joiners */
        flush(s);
        return j + 1;
    }
    while (j < s->len && is_alpha(s->p[j])) j++;
    const char *name = z + i + 1;
    size_t n = j - i - 1;
    const char *ins;
    if (n == 1 && strchr("uvHckrdbt", name[0])) return skip_spaces(s, j); /* accent */
    if ((ins = letter_cmd(name, n)) != NULL) {
        word(s, ins, strlen(ins), i, j);
        return skip_spaces(s, j);
    }
    if ((ins = greek(name, n)) != NULL) {
        word(s, ins, strlen(ins), i, j);
        return j;
    }
    flush(s);
    if (in_list(k_drop_arg, sizeof k_drop_arg / sizeof *k_drop_arg, name, n)) {
        size_t k = skip_spaces(s, j), before;
        do {
            before = k;
            k = skip_group(s, k, '[', ']');
        } while (k != before);
        k = skip_group(s, k, '{', '}');
        if (k > j) j = k;
    }
    return j;
}

int sx_kw_analyze(const char *text, size_t len, int flags, sx_kw_term_fn fn, void *ctx) {
    scan sc, *s = &sc;
    s->p = (const uint8_t *)text;
    s->len = text ? len : 0;
    s->flags = flags;
    s->fn = fn;
    s->ctx = ctx;
    s->rc = 0;
    s->state = IDLE;
    s->overflow = 0;
    s->n_parts = 0;
    s->raw_len = 0;
    size_t i = 0;
    while (i < s->len && s->rc == 0) {
        uint8_t c = s->p[i];
        if (c < 0x80) {
            if (is_alpha(c) || (c >= '0' && c <= '9')) word(s, &c, 1, i, i + 1);
            else if (c == '$' || c == '^' || c == '_' || c == '{' || c == '}') { /* joiner */ }
            else if (c == '-') hyphen(s);
            else if (c == '\\') {
                i = latex(s, i);
                continue;
            } else flush(s);
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s->p + i, (utf8proc_ssize_t)(s->len - i), &cp);
        if (n <= 0) {
            flush(s);
            i++;
            continue;
        }
        utf8proc_category_t k = utf8proc_category(cp);
        if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_NO) word(s, s->p + i, (size_t)n, i, i + (size_t)n);
        else if (cp == 0x2010 || cp == 0x2011) hyphen(s);
        else if (k == UTF8PROC_CATEGORY_CF) { /* joiner */ }
        else flush(s);
        i += (size_t)n;
    }
    if (s->rc == 0) flush(s);
    return s->rc;
}

/* ---- highlights ---- */

#define HL_TERMS 64

typedef struct hl_query {
    char terms[HL_TERMS][SX_KW_TERM_MAX];
    uint8_t lens[HL_TERMS];
    int n;
} hl_query;

static int hl_query_term(void *ctx, const char *term, size_t len, size_t start, size_t end) {
    (void)start;
    (void)end;
    hl_query *q = ctx;
    for (int i = 0; i < q->n; i++)
        if (q->lens[i] == len && memcmp(q->terms[i], term, len) == 0) return 0;
    if (q->n == HL_TERMS) return 0;
    memcpy(q->terms[q->n], term, len);
    q->lens[q->n++] = (uint8_t)len;
    return 0;
}

typedef struct hl_text {
    const hl_query *q;
    sx_kw_span *a;
    size_t n, cap;
} hl_text;

static int hl_text_term(void *ctx, const char *term, size_t len, size_t start, size_t end) {
    hl_text *t = ctx;
    int hit = 0;
    for (int i = 0; i < t->q->n && !hit; i++)
        hit = t->q->lens[i] == len && memcmp(t->q->terms[i], term, len) == 0;
    if (!hit) return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        sx_kw_span *a = realloc(t->a, cap * sizeof *a);
        if (!a) return SX_ENOMEM;
        t->a = a;
        t->cap = cap;
    }
    t->a[t->n++] = (sx_kw_span){(uint32_t)start, (uint32_t)end};
    return 0;
}

static int span_cmp(const void *a, const void *b) {
    const sx_kw_span *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

int sx_kw_highlight(const char *query, const char *text, size_t len, sx_kw_span *spans, int max,
                    int *n) {
    *n = 0;
    if (len > UINT32_MAX) len = UINT32_MAX;
    hl_query *q = calloc(1, sizeof *q);
    if (!q) return SX_ENOMEM;
    int rc = query ? sx_kw_analyze(query, strlen(query), 0, hl_query_term, q) : 0;
    hl_text t = {q, NULL, 0, 0};
    if (rc == 0 && q->n > 0) rc = sx_kw_analyze(text, len, 0, hl_text_term, &t);
    if (rc == 0 && t.n > 0) {
        qsort(t.a, t.n, sizeof *t.a, span_cmp);
        int out = 0;
        for (size_t i = 0; i < t.n; i++) {
            if (out > 0 && t.a[i].start <= spans[out - 1].end) {
                if (t.a[i].end > spans[out - 1].end) spans[out - 1].end = t.a[i].end;
            } else if (out < max) {
                spans[out++] = t.a[i];
            } else {
                break;
            }
        }
        *n = out;
    }
    free(t.a);
    free(q);
    return rc;
}

/* ---- author names ---- */

#define NAME_WORDS 16
#define NAME_BYTES 1024

typedef struct name_words {
    char w[NAME_WORDS][SX_KW_TERM_MAX + 1];
    int n;
} name_words;

static int name_word(void *ctx, const char *term, size_t len, size_t start, size_t end) {
    (void)start;
    (void)end;
    name_words *nw = ctx;
    if (nw->n == NAME_WORDS) return 0;
    memcpy(nw->w[nw->n], term, len);
    nw->w[nw->n++][len] = 0;
    return 0;
}

static int is_particle(const char *w) {
    static const char *const list[] = {"van", "von", "der", "den", "de", "del", "della", "di", "da", "du",
                                       "dos", "das", "le", "la", "ter", "ten", "zu", "vom", "al", "el",
                                       "bin", "ibn", "dei", "des", "y"};
    return in_list(list, sizeof list / sizeof *list, w, strlen(w));
}

static int is_suffix(const char *w) {
    static const char *const list[] = {"jr", "sr", "ii", "iii", "iv"};
    return in_list(list, sizeof list / sizeof *list, w, strlen(w));
}

/* Words of z[0..n) (stop words kept, compounds joined) into nw. */
static void name_split(const char *z, size_t n, name_words *nw) {
    nw->n = 0;
    sx_kw_analyze(z, n, SX_KW_KEEP_STOP | SX_KW_JOIN_ONLY, name_word, nw);
}

int sx_kw_author_norm(const char *name, size_t len, char *out, size_t cap) {
    char buf[NAME_BYTES];
    size_t m = 0;
    int depth = 0;
    if (cap > 0) out[0] = 0;
    /* drop text in parentheses (affiliations) */
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '(') depth++;
        else if (c == ')') depth -= depth > 0;
        else if (depth == 0) {
            if (m == sizeof buf) return SX_EFULL;
            buf[m++] = c;
        }
    }
    const char *comma = memchr(buf, ',', m);
    name_words sur, giv;
    char surname[SX_KW_TERM_MAX + 1] = "";
    if (comma) {
        name_split(buf, (size_t)(comma - buf), &sur);
        name_split(comma + 1, m - (size_t)(comma - buf) - 1, &giv);
        for (int i = sur.n - 1; i >= 0 && !surname[0]; i--)
            if (!is_suffix(sur.w[i])) strcpy(surname, sur.w[i]);
    } else {
        name_split(buf, m, &giv);
        int at = giv.n - 1;
        while (at >= 0 && is_suffix(giv.w[at])) at--;
        if (at >= 0) {
            strcpy(surname, giv.w[at]);
            giv.n = at; /* the given names precede the surname */
        }
    }
    if (!surname[0]) return 0;
    size_t n = strlen(surname);
    if (n + 1 > cap) return SX_EFULL;
    memcpy(out, surname, n + 1);
    for (int i = 0; i < giv.n; i++) {
        if (is_particle(giv.w[i]) || is_suffix(giv.w[i])) continue;
        size_t k = strlen(giv.w[i]);
        if (n + 1 + k + 1 > cap) return SX_EFULL;
        out[n++] = ' ';
        memcpy(out + n, giv.w[i], k + 1);
        n += k;
    }
    return (int)n;
}

/* The next space-separated word of *z (advanced), its length in *n; NULL
 * at the end. */
static const char *next_word(const char **z, size_t *n) {
    const char *p = *z;
    while (*p == ' ') p++;
    if (!*p) return NULL;
    const char *e = strchr(p, ' ');
    if (!e) e = p + strlen(p);
    *n = (size_t)(e - p);
    *z = e;
    return p;
}

int sx_kw_author_same(const char *a, const char *b) {
    size_t na, nb;
    const char *wa = next_word(&a, &na), *wb = next_word(&b, &nb);
    if (!wa || !wb || na != nb || memcmp(wa, wb, na) != 0) return 0;
    for (;;) {
        wa = next_word(&a, &na);
        wb = next_word(&b, &nb);
        if (!wa || !wb) return 1;
        int same = (na == nb && memcmp(wa, wb, na) == 0) || (na == 1 && wb[0] == wa[0]) ||
                   (nb == 1 && wa[0] == wb[0]);
        if (!same) return 0;
    }
}

/* 1 when z (at a separator candidate) starts " and " or " & ". */
static size_t and_sep(const char *z) {
    if (strncmp(z, " and ", 5) == 0 || strncmp(z, " AND ", 5) == 0) return 5;
    return 0;
}

int sx_kw_authors_match(const char *authors, const char *const *names, int n) {
    if (!authors || n <= 0) return 0;
    const char *p = authors, *start = authors;
    int depth = 0, best = 0;
    for (;; p++) {
        size_t sep = 0;
        if (*p == 0) sep = 1; /* the end, even inside an unclosed '(' */
        else if (*p == '(') depth++;
        else if (*p == ')') depth -= depth > 0;
        else if (depth == 0 && (*p == ',' || *p == ';' || *p == '&')) sep = 1;
        else if (depth == 0 && *p == ' ') sep = and_sep(p);
        if (!sep) continue;
        char norm[SX_KW_NAME_MAX];
        if (sx_kw_author_norm(start, (size_t)(p - start), norm, sizeof norm) > 0)
            for (int i = 0; i < n; i++) {
                if (names[i] && strcmp(norm, names[i]) == 0) return 2;
                if (names[i] && sx_kw_author_same(norm, names[i])) best = 1;
            }
        if (*p == 0) return best;
        p += sep - 1;
        start = p + 1;
    }
}
