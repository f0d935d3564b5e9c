/*
 * record.c - one paper record from JSON, validated.
 *
 * The same rules serve `semdex ingest` (Kaggle arXiv JSON lines) and the
 * POST /papers API, so that a record accepted by one is accepted by the other
 * and nothing the index stores can fail on replay. The record owns a copy of
 * its strings in one buffer: the parsed cJSON tree can be freed at once.
 *
 * Fields kept: id, title, abstract, authors, categories, update_date (and an
 * optional precomputed embedding). Everything else in a Kaggle record
 * (submitter, versions, authors_parsed, ...) is ignored. The text is kept as
 * the source has it: whitespace and LaTeX are the tokenizer's business.
 * `categories` may be the Kaggle space-separated string or a JSON array of
 * codes; it is stored space-separated.
 */
#include "corpus.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../text/text.h"

/* Checks that s is valid UTF-8 within max bytes; field names the field. */
static int check_text(const char *field, const char *s, size_t max, sx_err *err) {
    size_t len = strlen(s), bad = 0;
    if (len > max)
        return sx_err_set(err, SX_EINVAL, "'%s' is %zu bytes long; the limit is %zu", field, len, max);
    if (sx_utf8_check(s, len, &bad) != 0)
        return sx_err_set(err, SX_EINVAL, "'%s' is not valid UTF-8 (byte %zu)", field, bad);
    return 0;
}

static int is_cat_char(int c) { return isalnum(c) || c == '.' || c == '-' || c == '_'; }

int sx_record_check_id(const char *id, sx_err *err) { return sx_doc_check_id(id, err); }

static int check_date(const char *s, sx_err *err) {
    int ok = strlen(s) == 10 && s[4] == '-' && s[7] == '-';
    for (int i = 0; ok && i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) ok = 0;
    if (ok) {
        int m = atoi(s + 5), d = atoi(s + 8);
        ok = m >= 1 && m <= 12 && d >= 1 && d <= 31;
    }
    return ok ? 0 : sx_err_set(err, SX_EINVAL, "'update_date' must be YYYY-MM-DD, got '%.20s'", s);
}

/* Appends category code c (len bytes) to out (space-separated), checking it. */
static int add_category(char *out, size_t *used, int *count, const char *c, size_t len, sx_err *err) {
    if (len == 0) return 0;
    if (len > SX_CATEGORY_MAX_LEN)
        return sx_err_set(err, SX_EINVAL, "category '%.*s...' is longer than %d bytes", 16, c,
                          SX_CATEGORY_MAX_LEN);
    for (size_t i = 0; i < len; i++)
        if (!is_cat_char((unsigned char)c[i]))
            return sx_err_set(err, SX_EINVAL, "category '%.*s' has a character other than "
                              "letters, digits and . - _", (int)len, c);
    if (++*count > SX_CATEGORIES_MAX)
        return sx_err_set(err, SX_EINVAL, "more than %d categories", SX_CATEGORIES_MAX);
    if (*used) out[(*used)++] = ' ';
    memcpy(out + *used, c, len);
    *used += len;
    out[*used] = '\0';
    return 0;
}

/* Normalises 'categories' (string or array) into out, which has room for
 * SX_CATEGORIES_MAX * (SX_CATEGORY_MAX_LEN + 1) + 1 bytes. */
static int parse_categories(const cJSON *v, char *out, sx_err *err) {
    size_t used = 0;
    int count = 0, rc;
    out[0] = '\0';
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        while (*s) {
            while (*s == ' ' || *s == '\t') s++;
            const char *e = s;
            while (*e && *e != ' ' && *e != '\t') e++;
            if ((rc = add_category(out, &used, &count, s, (size_t)(e - s), err)) < 0) return rc;
            s = e;
        }
        return 0;
    }
    if (!cJSON_IsArray(v))
        return sx_err_set(err, SX_EINVAL, "'categories' must be a string or an array of strings");
    const cJSON *c;
    cJSON_ArrayForEach(c, v) {
        if (!cJSON_IsString(c))
            return sx_err_set(err, SX_EINVAL, "'categories' must hold only strings");
        size_t len = strlen(c->valuestring);
        if (len == 0 || strchr(c->valuestring, ' '))
            return sx_err_set(err, SX_EINVAL, "category '%.32s' must be one non-empty code",
                              c->valuestring);
        if ((rc = add_category(out, &used, &count, c->valuestring, len, err)) < 0) return rc;
    }
    return 0;
}

/* Reads an optional string field: *out is "" when absent or null. */
static int opt_string(const cJSON *obj, const char *name, size_t max, const char **out, sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = "";
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) return sx_err_set(err, SX_EINVAL, "'%s' must be a string", name);
    *out = v->valuestring;
    return check_text(name, *out, max, err);
}

static int parse_embedding(const cJSON *v, sx_record *r, sx_err *err) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsArray(v)) return sx_err_set(err, SX_EINVAL, "'embedding' must be an array of numbers");
    int n = cJSON_GetArraySize(v);
    if (n < 1 || n > SX_EMBEDDING_MAX_DIM)
        return sx_err_set(err, SX_EINVAL, "'embedding' must have 1 to %d numbers, got %d",
                          SX_EMBEDDING_MAX_DIM, n);
    r->embedding = malloc((size_t)n * sizeof(float));
    if (!r->embedding) return sx_err_set(err, SX_ENOMEM, "out of memory");
    r->dim = n;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 1e30)
            return sx_err_set(err, SX_EINVAL, "'embedding'[%d] is not a finite number", i);
        r->embedding[i++] = (float)x->valuedouble;
    }
    return 0;
}

/* Copies the validated fields into one owned buffer. */
static int own_fields(sx_record *r, const char *f[6], sx_err *err) {
    size_t total = 0;
    for (int i = 0; i < 6; i++) total += strlen(f[i]) + 1;
    r->buf = malloc(total);
    if (!r->buf) return sx_err_set(err, SX_ENOMEM, "out of memory");
    char *p = r->buf;
    const char **dst[6] = {&r->doc.id, &r->doc.title, &r->doc.abstract, &r->doc.authors,
                           &r->doc.categories, &r->doc.update_date};
    for (int i = 0; i < 6; i++) {
        size_t len = strlen(f[i]) + 1;
        memcpy(p, f[i], len);
        *dst[i] = p;
        p += len;
    }
    return 0;
}

static int from_cjson(const cJSON *obj, sx_record *r, sx_err *err) {
    if (!cJSON_IsObject(obj)) return sx_err_set(err, SX_EINVAL, "a paper must be a JSON object");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    if (!id) id = cJSON_GetObjectItemCaseSensitive(obj, "paper_id");
    if (!cJSON_IsString(id)) return sx_err_set(err, SX_EINVAL, "'id' is missing or not a string");
    int rc = sx_record_check_id(id->valuestring, err);
    if (rc < 0) return rc;
    const char *f[6] = {id->valuestring, "", "", "", "", ""};
    if ((rc = opt_string(obj, "title", SX_TITLE_MAX, &f[1], err)) < 0) return rc;
    const char *t = f[1];
    while (*t && isspace((unsigned char)*t)) t++;
    if (!*t) return sx_err_set(err, SX_EINVAL, "'title' is missing or empty");
    if ((rc = opt_string(obj, "abstract", SX_ABSTRACT_MAX, &f[2], err)) < 0) return rc;
    if ((rc = opt_string(obj, "authors", SX_AUTHORS_MAX, &f[3], err)) < 0) return rc;
    char cats[SX_CATEGORIES_MAX * (SX_CATEGORY_MAX_LEN + 1) + 1];
    rc = parse_categories(cJSON_GetObjectItemCaseSensitive(obj, "categories"), cats, err);
    if (rc < 0) return rc;
    f[4] = cats;
    if ((rc = opt_string(obj, "update_date", 10, &f[5], err)) < 0) return rc;
    if (*f[5] && (rc = check_date(f[5], err)) < 0) return rc;
    if ((rc = parse_embedding(cJSON_GetObjectItemCaseSensitive(obj, "embedding"), r, err)) < 0)
        return rc;
    return own_fields(r, f, err);
}

int sx_record_from_cjson(const cJSON *obj, sx_record *r, sx_err *err) {
    memset(r, 0, sizeof *r);
    int rc = from_cjson(obj, r, err);
    if (rc < 0) sx_record_clear(r);
    return rc;
}

int sx_record_parse(const char *json, size_t len, sx_record *r, sx_err *err) {
    memset(r, 0, sizeof *r);
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!obj) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return sx_err_set(err, SX_EINVAL, "malformed JSON near byte %zu", at);
    }
    int rc = sx_record_from_cjson(obj, r, err);
    cJSON_Delete(obj);
    return rc;
}

void sx_record_clear(sx_record *r) {
    free(r->buf);
    free(r->embedding);
    memset(r, 0, sizeof *r);
}

size_t sx_record_text(const sx_doc *doc, char *out, size_t cap) {
    size_t t = strlen(doc->title), a = doc->abstract ? strlen(doc->abstract) : 0;
    size_t need = t + 1 + a;
    if (out && cap > need) {
        memcpy(out, doc->title, t);
        out[t] = '\n';
        if (a) memcpy(out + t + 1, doc->abstract, a);
        out[need] = '\0';
    }
    return need;
}
