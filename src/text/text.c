/*
 * text.c - the BERT WordPiece tokenizer, id-for-id equal to Hugging Face's
 * BertTokenizerFast as sentence-transformers loads it.
 *
 * What the reference does, in order, and how we do the same:
 *
 *  1. Added tokens. The special tokens ([PAD], [UNK], [CLS], [SEP], [MASK])
 *     are found verbatim in the raw text, case-sensitively, anywhere (not only
 *     as whole words), and each becomes its own id; the text between them is
 *     tokenised on its own. We scan for '[' and compare the few names.
 *  2. BertNormalizer: drop NUL, U+FFFD and "control" characters (categories
 *     Cc, Cf, Co, but not \t \n \r), turn whitespace into a space, put spaces
 *     around CJK ideographs, then (for uncased models) NFD-decompose and drop
 *     non-spacing marks (Mn), then lowercase each character (char-wise, no
 *     final-sigma rule).
 *  3. BertPreTokenizer: split on whitespace; every punctuation character
 *     (Unicode P* or ASCII !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) is a word alone.
 *  4. WordPiece: greedy longest match from the left, continuation pieces
 *     prefixed "##"; a word of more than 100 characters, or one that cannot be
 *     covered, is a single [UNK].
 *  5. [CLS] + pieces + [SEP], truncated to max_seq_length by cutting the tail
 *     of the pieces (sentence-transformers' truncation="longest_first").
 *
 * Every step but NFD works one character at a time, so we run the whole chain
 * per input character in one pass and never build the normalised string:
 * each character yields zero or more normalised characters, which either
 * extend the current word, end it (whitespace), or stand alone (punctuation,
 * CJK). When a word ends it goes through WordPiece at once, and the pass stops
 * as soon as max_seq_length ids exist, so a 10 MB text costs no more than its
 * first few hundred words. NFD's canonical reordering only moves combining
 * marks, which step 2 drops, so per-character decomposition is exact here.
 *
 * ASCII, the bulk of arXiv text, takes a table lookup per byte; other
 * characters ask utf8proc (categories, canonical decomposition, lowercase).
 * The Unicode tables of utf8proc and of the Rust crates behind the reference
 * are of different Unicode versions; tests/fixtures/text/unicode.txt records
 * the reference's treatment of every code point and the tests compare ours
 * with it, so a divergence shows up as a failing test, not a silent drift.
 *
 * The vocabulary is an open-addressing hash table (FNV-1a) over a string pool;
 * a continuation piece is looked up as "##" + bytes without building the key.
 * The tokenizer is immutable after loading, so threads share it freely.
 *
 * Rejected: running the full-string normaliser then splitting (two copies of
 * every text, and the whole text processed even when only 256 tokens are
 * kept); a trie for WordPiece (faster lookups, but the hash table is already
 * a small part of the cost and is simpler to get right).
 */
#include "text.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text_int.h"

/* A code point on which the reference's Unicode data (older or newer than
 * utf8proc's) disagrees with utf8proc, and what the reference does with it. */
typedef enum { SX_CP_PLAIN, SX_CP_DROP, SX_CP_SPACE, SX_CP_ISO } sx_cp_kind;
typedef struct {
    uint32_t first, last;
    sx_cp_kind kind;
    int n;           /* length of repl; -1: the character itself */
    uint32_t repl[3];
} sx_cp_rule;

#include "unicode_compat.h"

#define WORD_MAX_CHARS 100 /* BERT's max_input_chars_per_word */
#define WORD_BUF (4 * (WORD_MAX_CHARS + 1) + 64)
#define N_SPECIAL 5

enum { C_LETTER = 0, C_DROP, C_SPACE, C_PUNCT };

struct sx_tokenizer {
    char *pool;         /* every token, NUL-terminated, in id order */
    uint32_t *off;      /* off[id]: start of token id in pool */
    uint16_t *len;      /* len[id]: its length in bytes */
    int n_vocab;
    int32_t *slots;     /* hash table of ids, -1 = empty; size mask + 1 */
    uint32_t mask;
    int max_token_len;  /* longest token in bytes (without "##") */
    int max_len;        /* max_seq_length */
    int lowercase, strip_accents, chinese;
    int32_t cls_id, sep_id, unk_id, pad_id;
    char special[N_SPECIAL][32]; /* added tokens matched verbatim in text */
    int32_t special_id[N_SPECIAL];
    int n_special;
    unsigned char ascii_class[128];
    unsigned char ascii_lower[128];
};

/* ---- vocabulary -------------------------------------------------------- */

static uint64_t fnv_bytes(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_SEED 0xcbf29ce484222325ull

/* Id of the token prefix + s[0..n) (prefix is "" or "##"), or -1. */
static int32_t vocab_find(const sx_tokenizer *t, int cont, const char *s, size_t n) {
    uint64_t h = FNV_SEED;
    if (cont) h = fnv_bytes(h, "##", 2);
    h = fnv_bytes(h, s, n);
    size_t total = n + (cont ? 2 : 0);
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->slots[i];
        if (id < 0) return -1;
        if (t->len[id] != total) continue;
        const char *tok = t->pool + t->off[id];
        if (cont && (tok[0] != '#' || tok[1] != '#')) continue;
        if (memcmp(tok + (cont ? 2 : 0), s, n) == 0) return id;
    }
}

static int vocab_load(sx_tokenizer *t, const char *dir, sx_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    char *data;
    size_t size;
    int rc = sx_read_file(path, &data, &size, err);
    if (rc < 0) return rc;
    if (sx_utf8_check(data, size, NULL) != 0) {
        free(data);
        return sx_err_set(err, SX_ECORRUPT, "%s: not valid UTF-8", path);
    }
    int n = 0;
    for (size_t i = 0; i < size; i++) n += data[i] == '\n';
    if (size && data[size - 1] != '\n') n++;
    if (n == 0 || n > 10000000) {
        free(data);
        return sx_err_set(err, SX_ECORRUPT, "%s: %s", path, n ? "too many lines" : "empty");
    }
    t->pool = data; /* tokens are cut in place */
    t->off = malloc(sizeof *t->off * (size_t)n);
    t->len = malloc(sizeof *t->len * (size_t)n);
    uint32_t cap = 1024;
    while (cap < (uint32_t)n * 2) cap <<= 1;
    t->slots = malloc(sizeof *t->slots * cap);
    if (!t->off || !t->len || !t->slots)
        return sx_err_set(err, SX_ENOMEM, "%s: out of memory", path);
    memset(t->slots, 0xff, sizeof *t->slots * cap);
    t->mask = cap - 1;
    t->n_vocab = n;
    size_t pos = 0;
    for (int id = 0; id < n; id++) {
        size_t end = pos;
        while (end < size && data[end] != '\n') end++;
        size_t next = end + 1;
        /* Like the reference (Rust trim_end): trailing whitespace is not part
         * of the token. */
        while (end > pos && (data[end - 1] == '\r' || data[end - 1] == ' ' ||
                             data[end - 1] == '\t'))
            end--;
        data[end] = '\0';
        if (end - pos > 1000)
            return sx_err_set(err, SX_ECORRUPT, "%s:%d: token longer than 1000 bytes", path,
                              id + 1);
        t->off[id] = (uint32_t)pos;
        t->len[id] = (uint16_t)(end - pos);
        const char *tok = data + pos;
        int plain = (int)(end - pos);
        if (plain >= 2 && tok[0] == '#' && tok[1] == '#') plain -= 2;
        if (plain > t->max_token_len) t->max_token_len = plain;
        /* A duplicate line: the later id wins, as in the reference. */
        uint64_t h = fnv_bytes(FNV_SEED, tok, end - pos);
        uint32_t i = (uint32_t)h & t->mask;
        while (t->slots[i] >= 0) {
            int32_t o = t->slots[i];
            if (t->len[o] == end - pos && memcmp(t->pool + t->off[o], tok, end - pos) == 0)
                break;
            i = (i + 1) & t->mask;
        }
        t->slots[i] = id;
        pos = next;
    }
    return 0;
}

/* ---- configuration ----------------------------------------------------- */

/* Reads dir/name as JSON into *out (NULL when the file does not exist). */
static int json_load(const char *dir, const char *name, cJSON **out, sx_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return sx_json_read_object(path, 1, out, err);
}

/* A boolean setting: 1, 0, or def when absent or null. */
static int json_bool(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsTrue(v)) return 1;
    if (cJSON_IsFalse(v)) return 0;
    return def;
}

/* A special token name: a string, or an object {"content": ...}. */
static const char *json_token(const cJSON *o, const char *key, const char *def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) < 32)
        return v->valuestring;
    return def;
}

static int config_load(sx_tokenizer *t, const char *dir, sx_err *err) {
    cJSON *cfg = NULL, *st = NULL;
    int rc = json_load(dir, "tokenizer_config.json", &cfg, err);
    if (rc == 0) rc = json_load(dir, "sentence_bert_config.json", &st, err);
    if (rc < 0) goto done;
    t->lowercase = json_bool(cfg, "do_lower_case", 1);
    t->strip_accents = json_bool(cfg, "strip_accents", t->lowercase);
    t->chinese = json_bool(cfg, "tokenize_chinese_chars", 1);
    /* sentence-transformers lowercases the text itself when its config says. */
    if (json_bool(st, "do_lower_case", 0)) t->lowercase = 1;
    t->max_len = 512;
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 2 && ml->valuedouble <= 65536)
        t->max_len = (int)ml->valuedouble;
    ml = cJSON_GetObjectItemCaseSensitive(st, "max_seq_length");
    if (ml) {
        if (!cJSON_IsNumber(ml) || ml->valuedouble < 2 || ml->valuedouble > 65536) {
            rc = sx_err_set(err, SX_ECORRUPT,
                            "%s/sentence_bert_config.json: max_seq_length must be an "
                            "integer in [2, 65536]", dir);
            goto done;
        }
        t->max_len = (int)ml->valuedouble;
    }
    static const char *keys[N_SPECIAL] = {"pad_token", "unk_token", "cls_token", "sep_token",
                                          "mask_token"};
    static const char *defs[N_SPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    int32_t ids[N_SPECIAL];
    for (int i = 0; i < N_SPECIAL; i++) {
        const char *name = json_token(cfg, keys[i], defs[i]);
        ids[i] = vocab_find(t, 0, name, strlen(name));
        if (ids[i] < 0 && i < 4) {
            rc = sx_err_set(err, SX_ECORRUPT, "%s/vocab.txt: has no '%s' (%s)", dir, name,
                            keys[i]);
            goto done;
        }
        if (ids[i] >= 0) {
            snprintf(t->special[t->n_special], sizeof t->special[0], "%s", name);
            t->special_id[t->n_special++] = ids[i];
        }
    }
    t->pad_id = ids[0], t->unk_id = ids[1], t->cls_id = ids[2], t->sep_id = ids[3];
done:
    cJSON_Delete(cfg);
    cJSON_Delete(st);
    return rc;
}

static void ascii_init(sx_tokenizer *t) {
    for (int c = 0; c < 128; c++) {
        unsigned char k = C_LETTER;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') k = C_SPACE;
        else if (c < 32 || c == 127) k = C_DROP;
        else if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                 (c >= 123 && c <= 126))
            k = C_PUNCT;
        t->ascii_class[c] = k;
        t->ascii_lower[c] = (unsigned char)(t->lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
}

int sx_tokenizer_load(const char *model_dir, sx_tokenizer **out, sx_err *err) {
    *out = NULL;
    sx_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sx_err_set(err, SX_ENOMEM, "out of memory");
    int rc = vocab_load(t, model_dir, err);
    if (rc == 0) rc = config_load(t, model_dir, err);
    if (rc < 0) {
        sx_tokenizer_free(t);
        return rc;
    }
    ascii_init(t);
    *out = t;
    return 0;
}

void sx_tokenizer_free(sx_tokenizer *tok) {
    if (!tok) return;
    free(tok->pool);
    free(tok->off);
    free(tok->len);
    free(tok->slots);
    free(tok);
}

int sx_tokenizer_max_len(const sx_tokenizer *tok) { return tok->max_len; }
int sx_tokenizer_vocab_size(const sx_tokenizer *tok) { return tok->n_vocab; }
int32_t sx_tokenizer_pad_id(const sx_tokenizer *tok) { return tok->pad_id; }

const char *sx_tokenizer_token(const sx_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    return tok->pool + tok->off[id];
}

/* ---- normalisation and pre-tokenisation -------------------------------- */

/* Rust's char::is_whitespace (the Unicode White_Space property). */
static int is_ws(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Dropped by BertNormalizer's clean_text. */
static int is_dropped(uint32_t c) {
    if (c == 0 || c == 0xFFFD) return 1;
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO;
}

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punct(uint32_t c) {
    if (c < 128) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                        (c >= 123 && c <= 126);
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* How the normalised characters of one input character reach the
 * pre-tokenizer: each classified (whitespace, punctuation, other), all
 * appended to the current word, or all as a word of their own. */
enum { MODE_CLASSIFY, MODE_PLAIN, MODE_ISO };

/* The rule for c from the compatibility table, or NULL. */
static const sx_cp_rule *compat_rule(uint32_t c) {
    size_t lo = 0, hi = sizeof sx_cp_rules / sizeof sx_cp_rules[0];
    if (c < sx_cp_rules[0].first) return NULL;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < sx_cp_rules[mid].first) hi = mid;
        else if (c > sx_cp_rules[mid].last) lo = mid + 1;
        else return &sx_cp_rules[mid];
    }
    return NULL;
}

/* The characters that non-ASCII c normalises to (at most 32) into out;
 * returns their count and the way they go on in *mode (OUT). */
static int normalize_cp(const sx_tokenizer *t, uint32_t c, uint32_t *out, int *mode) {
    *mode = t->chinese && is_cjk(c) ? MODE_ISO : MODE_CLASSIFY;
    const sx_cp_rule *r = compat_rule(c);
    if (r) {
        if (r->kind == SX_CP_DROP) return 0;
        if (r->kind == SX_CP_SPACE) {
            out[0] = ' ';
            return 1;
        }
        *mode = r->kind == SX_CP_ISO ? MODE_ISO : MODE_PLAIN;
        if (r->n < 0) {
            out[0] = c;
            return 1;
        }
        memcpy(out, r->repl, sizeof *out * (size_t)r->n);
        return r->n;
    }
    if (is_dropped(c)) return 0;
    if (is_ws(c)) {
        out[0] = ' ';
        return 1;
    }
    int n = 1;
    out[0] = c;
    if (t->strip_accents) {
        utf8proc_int32_t dec[32];
        int last = 0;
        utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)c, dec, 32,
                                                     UTF8PROC_DECOMPOSE, &last);
        if (m > 0 && m <= 32) {
            n = 0;
            for (int i = 0; i < m; i++)
                if (utf8proc_category(dec[i]) != UTF8PROC_CATEGORY_MN) out[n++] = (uint32_t)dec[i];
        }
    }
    if (t->lowercase) {
        for (int i = 0; i < n; i++) {
            if (out[i] == 0x130 && n < 32) { /* the one multi-character lowercase */
                memmove(out + i + 2, out + i + 1, sizeof *out * (size_t)(n - i - 1));
                out[i] = 'i';
                out[i + 1] = 0x307;
                n++;
                i++;
                continue;
            }
            out[i] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)out[i]);
        }
    }
    return n;
}

/* Receives each word: bytes (len, nchars characters; bytes beyond the first
 * WORD_MAX_CHARS + 1 characters are not kept), or special >= 0 for an added
 * token. Returns non-zero to stop the walk. */
typedef int (*word_sink)(void *ctx, const char *w, size_t len, int nchars, int32_t special);

typedef struct {
    char buf[WORD_BUF];
    size_t len;
    int nchars;
    word_sink sink;
    void *ctx;
    int stop;
} walker;

static void word_flush(walker *w) {
    if (w->nchars && !w->stop) w->stop = w->sink(w->ctx, w->buf, w->len, w->nchars, -1);
    w->len = 0;
    w->nchars = 0;
}

static void word_add(walker *w, uint32_t c) {
    if (w->nchars <= WORD_MAX_CHARS) w->len += sx_utf8_encode(c, w->buf + w->len);
    w->nchars++;
}

/* Feeds one normalised character to the pre-tokenizer. */
static void pre_char(walker *w, uint32_t c) {
    if (is_ws(c)) {
        word_flush(w);
    } else if (is_punct(c)) {
        word_flush(w);
        word_add(w, c);
        word_flush(w);
    } else {
        word_add(w, c);
    }
}

/* Id of the added token that starts at p[0..n), with its length in *mlen. */
static int32_t special_at(const sx_tokenizer *t, const unsigned char *p, size_t n,
                          size_t *mlen) {
    int32_t best = -1;
    size_t best_len = 0;
    for (int k = 0; k < t->n_special; k++) {
        size_t l = strlen(t->special[k]);
        if (l <= n && l > best_len && memcmp(p, t->special[k], l) == 0)
            best = t->special_id[k], best_len = l;
    }
    *mlen = best_len;
    return best;
}

/* Normalises and pre-tokenises valid UTF-8 text, handing each word to w. */
static void walk(const sx_tokenizer *t, const char *text, size_t len, walker *w) {
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < len && !w->stop) {
        unsigned c = p[i];
        if (c < 128) {
            if (c == '[' && t->n_special) {
                size_t ml;
                int32_t id = special_at(t, p + i, len - i, &ml);
                if (id >= 0) {
                    word_flush(w);
                    if (!w->stop) w->stop = w->sink(w->ctx, text + i, ml, (int)ml, id);
                    i += ml;
                    continue;
                }
            }
            i++;
            switch (t->ascii_class[c]) {
            case C_LETTER: word_add(w, t->ascii_lower[c]); break;
            case C_SPACE: word_flush(w); break;
            case C_PUNCT:
                word_flush(w);
                word_add(w, c);
                word_flush(w);
                break;
            default: break; /* dropped */
            }
            continue;
        }
        uint32_t cp = sx_utf8_decode(p, &i);
        uint32_t out[32];
        int mode;
        int n = normalize_cp(t, cp, out, &mode);
        if (mode == MODE_CLASSIFY) {
            for (int k = 0; k < n; k++) pre_char(w, out[k]);
        } else {
            if (mode == MODE_ISO) word_flush(w);
            for (int k = 0; k < n; k++) word_add(w, out[k]);
            if (mode == MODE_ISO) word_flush(w);
        }
    }
    word_flush(w);
}

/* ---- WordPiece and encoding -------------------------------------------- */

typedef struct {
    const sx_tokenizer *t;
    int32_t *ids;
    int n, cap; /* cap: room for pieces (the [SEP] slot excluded) */
} id_sink;

/* Appends the WordPiece ids of one word; returns 1 when full. */
static int wordpiece_sink(void *ctx, const char *w, size_t len, int nchars, int32_t special) {
    id_sink *s = ctx;
    const sx_tokenizer *t = s->t;
    if (special >= 0) {
        s->ids[s->n++] = special;
        return s->n >= s->cap;
    }
    if (nchars > WORD_MAX_CHARS) {
        s->ids[s->n++] = t->unk_id;
        return s->n >= s->cap;
    }
    int32_t pieces[WORD_BUF];
    int np = 0;
    size_t start = 0;
    while (start < len) {
        size_t end = len;
        if (end - start > (size_t)t->max_token_len) {
            end = start + (size_t)t->max_token_len;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
        }
        int32_t id = -1;
        while (end > start) {
            id = vocab_find(t, start > 0, w + start, end - start);
            if (id >= 0) break;
            do end--;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            np = 0;
            pieces[np++] = t->unk_id;
            break;
        }
        pieces[np++] = id;
        start = end;
    }
    for (int k = 0; k < np && s->n < s->cap; k++) s->ids[s->n++] = pieces[k];
    return s->n >= s->cap;
}

static int bad_utf8(sx_err *err, const char *text, size_t len) {
    size_t off = 0;
    if (sx_utf8_check(text, len, &off) == 0) return 0;
    return sx_err_set(err, SX_EINVAL, "invalid UTF-8 at byte offset %zu", off);
}

static int encode(const sx_tokenizer *t, const char *text, size_t len, int32_t *ids, int limit,
                  int *n_ids, sx_err *err) {
    if (limit < 2) return sx_err_set(err, SX_EINVAL, "room for %d ids; need at least 2", limit);
    int rc = bad_utf8(err, text, len);
    if (rc < 0) return rc;
    id_sink s = {t, ids, 1, limit - 1};
    ids[0] = t->cls_id;
    if (s.n < s.cap) {
        walker w = {.sink = wordpiece_sink, .ctx = &s};
        walk(t, text, len, &w);
    }
    ids[s.n++] = t->sep_id;
    *n_ids = s.n;
    return 0;
}

int sx_tokenizer_encode(const sx_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                        int max_ids, int *n_ids, sx_err *err) {
    int limit = max_ids < tok->max_len ? max_ids : tok->max_len;
    return encode(tok, text, len, ids, limit, n_ids, err);
}

int sx_tokenizer_encode_all(const sx_tokenizer *tok, const char *text, size_t len,
                            int32_t *ids, int max_ids, int *n_ids, sx_err *err) {
    return encode(tok, text, len, ids, max_ids, n_ids, err);
}

typedef struct {
    sx_word_fn fn;
    void *ctx;
} words_ctx;

static int words_sink(void *ctx, const char *w, size_t len, int nchars, int32_t special) {
    words_ctx *c = ctx;
    c->fn(c->ctx, w, len);
    return 0;
}

int sx_tokenizer_words(const sx_tokenizer *tok, const char *text, size_t len, sx_word_fn fn,
                       void *ctx, sx_err *err) {
    int rc = bad_utf8(err, text, len);
    if (rc < 0) return rc;
    words_ctx c = {fn, ctx};
    walker w = {.sink = words_sink, .ctx = &c};
    walk(tok, text, len, &w);
    return 0;
}
