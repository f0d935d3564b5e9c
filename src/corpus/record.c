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
 * codes (either form read by sx_categories_parse, category.c); it is stored
 * space-separated.
 *
 * Two modes, one set of rules for every field both read. A Kaggle line
 * (ingest) may carry the snapshot's other fields and nulls for absent
 * values. The API (POST /papers, SX_RECORD_STRICT) validates against the
 * PaperInput schema of web/openapi.json: a field not in sx_record_fields is
 * an error naming it (a typo such as "abstact" would otherwise be dropped),
 * and so is a null, except update_date's (GET /papers/{id} answers null for
 * an unknown date, so a paper read back can be written back). Lengths are
 * counted in characters, as the schema's maxLength counts them; a blank
 * title is what the schema's "\S" pattern refuses (sx_json_blank); a date
 * is a real calendar date (the schema's "format": "date").
 */
#include "corpus.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../text/text.h"

const char *const sx_record_fields[] = {"id", "paper_id", "title", "abstract", "authors",
                                        "categories", "update_date", "embedding", NULL};

/* Checks that s is valid UTF-8 of at most max characters (code points, as
 * the schema's maxLength counts them); field names the field. */
static int check_text(const char *field, const char *s, size_t max, sx_err *err) {
    size_t len = strlen(s), bad = 0;
    if (sx_utf8_check(s, len, &bad) != 0)
        return sx_err_set(err, SX_EINVAL, "'%s' is not valid UTF-8 (byte %zu)", field, bad);
    size_t chars = len <= max ? len : sx_json_chars(s);
    if (chars > max)
        return sx_err_set(err, SX_EINVAL, "'%s' has %zu characters; the limit is %zu", field, chars, max);
    return 0;
}

int sx_record_check_id(const char *id, sx_err *err) { return sx_doc_check_id(id, err); }

/* A calendar date YYYY-MM-DD (year 0000 to 9999, the month's real number of
 * days): the schema's pattern plus its "format": "date" (RFC 3339). */
static int check_date(const char *s, sx_err *err) {
    int ok = strlen(s) == 10 && s[4] == '-' && s[7] == '-';
    for (int i = 0; ok && i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) ok = 0;
    if (ok) {
        int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
        static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        ok = m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] && !(m == 2 && d == 29 && !leap);
    }
    return ok ? 0 : sx_err_set(err, SX_EINVAL, "'update_date' must be a date YYYY-MM-DD, got '%.20s'", s);
}

/* Reads an optional string field: *out is "" when absent (or null, where
 * the mode or the field allows it). */
static int opt_string(const cJSON *obj, const char *name, size_t max, int null_ok, const char **out,
                      sx_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = "";
    if (!v || (cJSON_IsNull(v) && null_ok)) return 0;
    if (!cJSON_IsString(v))
        return sx_err_set(err, SX_EINVAL, "'%s' must be a string%s", name,
                          cJSON_IsNull(v) ? ", not null (leave it out instead)" : "");
    *out = v->valuestring;
    return check_text(name, *out, max, err);
}

static int parse_embedding(const cJSON *v, int null_ok, sx_record *r, sx_err *err) {
    if (!v || (cJSON_IsNull(v) && null_ok)) return 0;
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
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > SX_EMBEDDING_MAX_ABS)
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

/* Strict mode: every field must be one of sx_record_fields. */
static int check_known_fields(const cJSON *obj, sx_err *err) {
    const cJSON *f;
    cJSON_ArrayForEach(f, obj) {
        int known = 0;
        for (int i = 0; sx_record_fields[i] && !known; i++) known = strcmp(f->string, sx_record_fields[i]) == 0;
        if (!known)
            return sx_err_set(err, SX_EINVAL, "unknown field '%.64s'; a paper has id, title, abstract, "
                              "authors, categories, update_date, embedding", f->string);
    }
    return 0;
}

static int from_cjson(const cJSON *obj, sx_record_mode mode, sx_record *r, sx_err *err) {
    int strict = mode == SX_RECORD_STRICT, rc;
    if (!cJSON_IsObject(obj)) return sx_err_set(err, SX_EINVAL, "a paper must be a JSON object");
    if (strict && (rc = check_known_fields(obj, err)) < 0) return rc;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(obj, "paper_id");
    if (strict && id && pid) return sx_err_set(err, SX_EINVAL, "give 'id' or 'paper_id', not both");
    if (!id) id = pid;
    if (!cJSON_IsString(id)) return sx_err_set(err, SX_EINVAL, "'id' is missing or not a string");
    if ((rc = sx_record_check_id(id->valuestring, err)) < 0) return rc;
    const char *f[6] = {id->valuestring, "", "", "", "", ""};
    if ((rc = opt_string(obj, "title", SX_TITLE_MAX, !strict, &f[1], err)) < 0) return rc;
    if (sx_json_blank(f[1])) return sx_err_set(err, SX_EINVAL, "'title' is missing or empty (or blank: only white space)");
    if ((rc = opt_string(obj, "abstract", SX_ABSTRACT_MAX, !strict, &f[2], err)) < 0) return rc;
    if ((rc = opt_string(obj, "authors", SX_AUTHORS_MAX, !strict, &f[3], err)) < 0) return rc;
    char cats[SX_CATEGORIES_BUF] = "";
    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(obj, "categories");
    int n_cats;
    if (cv && !(cJSON_IsNull(cv) && !strict) && (rc = sx_categories_parse(cv, 0, cats, &n_cats, err)) < 0)
        return rc;
    f[4] = cats;
    if ((rc = opt_string(obj, "update_date", 10, 1, &f[5], err)) < 0) return rc;
    if (*f[5] && (rc = check_date(f[5], err)) < 0) return rc;
    if ((rc = parse_embedding(cJSON_GetObjectItemCaseSensitive(obj, "embedding"), !strict, r, err)) < 0)
        return rc;
    return own_fields(r, f, err);
}

int sx_record_from_cjson(const cJSON *obj, sx_record_mode mode, sx_record *r, sx_err *err) {
    memset(r, 0, sizeof *r);
    int rc = from_cjson(obj, mode, r, err);
    if (rc < 0) sx_record_clear(r);
    return rc;
}

int sx_record_parse(const char *json, size_t len, sx_record *r, sx_err *err) {
    memset(r, 0, sizeof *r);
    cJSON *obj;
    int rc = sx_json_parse(json, len, &obj, err);
    if (rc == SX_ECORRUPT) { /* a copy: sx_err_set must not read the buffer it writes */
        char why[SX_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        return sx_err_set(err, SX_EINVAL, "malformed JSON: %s", why);
    }
    if (rc < 0) return rc;
    rc = sx_record_from_cjson(obj, SX_RECORD_KAGGLE, r, err);
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

/* ---- a paper as the API shows it ---------------------------------------- */

/* Adds categories "a b c" as a JSON array. */
static void add_categories(cJSON *obj, const char *cats) {
    cJSON *arr = cJSON_AddArrayToObject(obj, "categories");
    const char *p = cats ? cats : "";
    while (*p) {
        while (*p == ' ') p++;
        const char *e = p;
        while (*e && *e != ' ') e++;
        if (e > p) {
            char code[SX_CATEGORY_MAX_LEN + 1];
            size_t len = (size_t)(e - p) < sizeof code - 1 ? (size_t)(e - p) : sizeof code - 1;
            memcpy(code, p, len);
            code[len] = '\0';
            cJSON_AddItemToArray(arr, cJSON_CreateString(code));
        }
        p = e;
    }
}

cJSON *sx_doc_json(const sx_doc *d, const float *score) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "paper_id", d->id);
    cJSON_AddStringToObject(o, "title", d->title ? d->title : "");
    cJSON_AddStringToObject(o, "abstract", d->abstract ? d->abstract : "");
    cJSON_AddStringToObject(o, "authors", d->authors ? d->authors : "");
    add_categories(o, d->categories);
    if (d->update_date && d->update_date[0]) cJSON_AddStringToObject(o, "update_date", d->update_date);
    else cJSON_AddNullToObject(o, "update_date");
    if (score) cJSON_AddNumberToObject(o, "score", round((double)*score * 1e6) / 1e6);
    return o;
}
