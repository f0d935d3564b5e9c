/*
 * category.c - arXiv category codes: the one check every path applies to a
 * code a user gives (POST /papers, `semdex ingest`, the /search filter).
 *
 * A code is 1 to SX_CATEGORY_MAX_LEN ASCII letters, digits, '.', '-' or '_'
 * (so its length in bytes is its length in characters, which is what the
 * OpenAPI schema's maxLength counts). Beyond the syntax, the check knows the
 * arXiv taxonomy -- today's codes and the pre-2009 archive-level ones that
 * old papers carry (hep-th, astro-ph, cond-mat, alg-geom, ...) -- for one
 * purpose: to turn a silent "no results" into a hint.
 *
 *  - "cs", "math", "physics", ... name an archive, never a paper's category:
 *    refused, listing the archive's categories ("use cs.AI, cs.AR, ...").
 *  - "CS.LG", "math.ag": a known code in another case: refused with
 *    "did you mean 'cs.LG'?" (codes are matched exactly, case included).
 *  - A well-formed code the table does not know is accepted: arXiv adds
 *    categories, and a collection may hold codes newer than this table.
 *
 * A list of codes is either a string of codes separated by spaces or tabs
 * (the Kaggle snapshot's form) or a JSON array with one code per element;
 * both the API and ingest read it with sx_categories_parse, so "hep-th gr-qc"
 * is two codes everywhere.
 *
 * Rejected: refusing unknown codes (breaks on arXiv's next new category);
 * folding case silently (a filter would then match what the user did not
 * write, and stored codes would differ from arXiv's).
 */
#include "corpus.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Every category code arXiv uses or used (sorted). */
static const char *const k_codes[] = {
    "acc-phys", "adap-org", "alg-geom", "ao-sci", "astro-ph", "astro-ph.CO", "astro-ph.EP",
    "astro-ph.GA", "astro-ph.HE", "astro-ph.IM", "astro-ph.SR", "atom-ph", "bayes-an",
    "chao-dyn", "chem-ph", "cmp-lg", "comp-gas", "cond-mat", "cond-mat.dis-nn",
    "cond-mat.mes-hall", "cond-mat.mtrl-sci", "cond-mat.other", "cond-mat.quant-gas",
    "cond-mat.soft", "cond-mat.stat-mech", "cond-mat.str-el", "cond-mat.supr-con", "cs.AI",
    "cs.AR", "cs.CC", "cs.CE", "cs.CG", "cs.CL", "cs.CR", "cs.CV", "cs.CY", "cs.DB", "cs.DC",
    "cs.DL", "cs.DM", "cs.DS", "cs.ET", "cs.FL", "cs.GL", "cs.GR", "cs.GT", "cs.HC", "cs.IR",
    "cs.IT", "cs.LG", "cs.LO", "cs.MA", "cs.MM", "cs.MS", "cs.NA", "cs.NE", "cs.NI", "cs.OH",
    "cs.OS", "cs.PF", "cs.PL", "cs.RO", "cs.SC", "cs.SD", "cs.SE", "cs.SI", "cs.SY", "dg-ga",
    "econ.EM", "econ.GN", "econ.TH", "eess.AS", "eess.IV", "eess.SP", "eess.SY", "funct-an",
    "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph", "math.AC", "math.AG",
    "math.AP", "math.AT", "math.CA", "math.CO", "math.CT", "math.CV", "math.DG", "math.DS",
    "math.FA", "math.GM", "math.GN", "math.GR", "math.GT", "math.HO", "math.IT", "math.KT",
    "math.LO", "math.MG", "math.MP", "math.NA", "math.NT", "math.OA", "math.OC", "math.PR",
    "math.QA", "math.RA", "math.RT", "math.SG", "math.SP", "math.ST", "mtrl-th", "nlin.AO",
    "nlin.CD", "nlin.CG", "nlin.PS", "nlin.SI", "nucl-ex", "nucl-th", "patt-sol",
    "physics.acc-ph", "physics.ao-ph", "physics.app-ph", "physics.atm-clus", "physics.atom-ph",
    "physics.bio-ph", "physics.chem-ph", "physics.class-ph", "physics.comp-ph",
    "physics.data-an", "physics.ed-ph", "physics.flu-dyn", "physics.gen-ph", "physics.geo-ph",
    "physics.hist-ph", "physics.ins-det", "physics.med-ph", "physics.optics",
    "physics.plasm-ph", "physics.pop-ph", "physics.soc-ph", "physics.space-ph", "plasm-ph",
    "q-alg", "q-bio.BM", "q-bio.CB", "q-bio.GN", "q-bio.MN", "q-bio.NC", "q-bio.OT", "q-bio.PE",
    "q-bio.QM", "q-bio.SC", "q-bio.TO", "q-fin.CP", "q-fin.EC", "q-fin.GN", "q-fin.MF",
    "q-fin.PM", "q-fin.PR", "q-fin.RM", "q-fin.ST", "q-fin.TR", "quant-ph", "solv-int",
    "stat.AP", "stat.CO", "stat.ME", "stat.ML", "stat.OT", "stat.TH", "supr-con",
};

/* Archives that are not categories themselves (astro-ph and cond-mat are,
 * for papers before their split, so they are in k_codes). */
static const char *const k_archives[] = {"cs", "econ", "eess", "math", "nlin", "physics", "q-bio", "q-fin", "stat"};

#define N_CODES (sizeof k_codes / sizeof k_codes[0])
#define N_ARCHIVES (sizeof k_archives / sizeof k_archives[0])

static int is_code_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* Whether code (len bytes) equals s, in case (exact) or ignoring it. */
static int same(const char *code, size_t len, const char *s, int fold) {
    return strlen(s) == len && (fold ? strncasecmp(code, s, len) : strncmp(code, s, len)) == 0;
}

int sx_category_check(const char *code, size_t len, sx_err *err) {
    if (len == 0) return sx_err_set(err, SX_EINVAL, "a category code must not be empty");
    if (len > SX_CATEGORY_MAX_LEN)
        return sx_err_set(err, SX_EINVAL, "category '%.*s...' is longer than %d characters", 16, code,
                          SX_CATEGORY_MAX_LEN);
    for (size_t i = 0; i < len; i++)
        if (!is_code_char((unsigned char)code[i]))
            return sx_err_set(err, SX_EINVAL, "category '%.*s' has a character other than "
                              "ASCII letters, digits and . - _", (int)len, code);
    for (size_t i = 0; i < N_CODES; i++)
        if (same(code, len, k_codes[i], 0)) return 0;
    for (size_t a = 0; a < N_ARCHIVES; a++) {
        if (!same(code, len, k_archives[a], 1)) continue;
        char list[160] = "";
        size_t alen = strlen(k_archives[a]), used = 0;
        int shown = 0;
        for (size_t i = 0; i < N_CODES && shown < 6; i++)
            if (strncmp(k_codes[i], k_archives[a], alen) == 0 && k_codes[i][alen] == '.') {
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", shown ? ", " : "", k_codes[i]);
                shown++;
            }
        return sx_err_set(err, SX_EINVAL, "'%.*s' is an arXiv archive, not a category; use one of "
                          "its categories: %s, ...", (int)len, code, list);
    }
    for (size_t i = 0; i < N_CODES; i++)
        if (same(code, len, k_codes[i], 1))
            return sx_err_set(err, SX_EINVAL, "unknown category '%.*s'; did you mean '%s'? (codes "
                              "are case-sensitive)", (int)len, code, k_codes[i]);
    return 0;
}

const char *const *sx_category_archives(int *n) {
    *n = (int)N_ARCHIVES;
    return k_archives;
}

/* Checks a pattern "X.*" (len bytes): X an archive or a code that has
 * categories below it (astro-ph, cond-mat), in its exact case. */
static int pattern_check(const char *code, size_t len, sx_err *err) {
    size_t xl = len - 2;
    for (size_t i = 0; i < N_CODES; i++)
        if (strncmp(k_codes[i], code, xl) == 0 && k_codes[i][xl] == '.') return 0;
    for (size_t i = 0; i < N_CODES; i++)
        if (strncasecmp(k_codes[i], code, xl) == 0 && k_codes[i][xl] == '.')
            return sx_err_set(err, SX_EINVAL, "unknown archive in '%.*s'; did you mean '%.*s.*'? (codes are "
                              "case-sensitive)", (int)len, code, (int)xl, k_codes[i]);
    return sx_err_set(err, SX_EINVAL, "'%.*s' names no arXiv archive with categories (cs.*, math.*, "
                      "astro-ph.*, ...)", (int)len, code);
}

/* Appends code c (len bytes) to out (space-separated), checking it. */
static int add_code(char *out, size_t *used, int *count, const char *c, size_t len, int flags,
                    sx_err *err) {
    int pattern = (flags & SX_CATEGORIES_PATTERNS) && len > 2 && c[len - 2] == '.' && c[len - 1] == '*';
    int rc = pattern && len <= SX_CATEGORY_MAX_LEN ? pattern_check(c, len, err) : sx_category_check(c, len, err);
    if (rc < 0 && err && (flags & SX_CATEGORIES_PATTERNS) && !pattern) {
        /* an archive name: say that the pattern exists */
        for (size_t a = 0; a < N_ARCHIVES; a++)
            if (same(c, len, k_archives[a], 1)) {
                size_t n = strlen(err->msg);
                snprintf(err->msg + n, sizeof err->msg - n, ", or '%s.*' for all of them", k_archives[a]);
            }
    }
    if (rc < 0) return rc;
    if (++*count > SX_CATEGORIES_MAX)
        return sx_err_set(err, SX_EINVAL, "more than %d categories", SX_CATEGORIES_MAX);
    if (*used) out[(*used)++] = ' ';
    memcpy(out + *used, c, len);
    *used += len;
    out[*used] = '\0';
    return 0;
}

int sx_categories_parse(const cJSON *v, int flags, char *out, int *n_out, sx_err *err) {
    size_t used = 0;
    int count = 0, rc;
    out[0] = '\0';
    *n_out = 0;
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        while (*s) {
            while (*s == ' ' || *s == '\t') s++;
            const char *e = s;
            while (*e && *e != ' ' && *e != '\t') e++;
            if (e > s && (rc = add_code(out, &used, &count, s, (size_t)(e - s), flags, err)) < 0) return rc;
            s = e;
        }
    } else if (cJSON_IsArray(v)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, v) {
            if (!cJSON_IsString(c))
                return sx_err_set(err, SX_EINVAL, "'categories' must hold only strings");
            size_t len = strlen(c->valuestring);
            if (len == 0 || strpbrk(c->valuestring, " \t"))
                return sx_err_set(err, SX_EINVAL, "category '%.32s' must be one non-empty code "
                                  "(a list in one string is for the string form)", c->valuestring);
            if ((rc = add_code(out, &used, &count, c->valuestring, len, flags, err)) < 0) return rc;
        }
    } else {
        return sx_err_set(err, SX_EINVAL, "'categories' must be a string of space-separated codes "
                          "or an array of codes");
    }
    *n_out = count;
    return 0;
}
