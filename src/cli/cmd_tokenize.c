/*
 * cmd_tokenize.c - `semdex tokenize`: the token ids the model sees.
 *
 *   semdex tokenize [--model DIR] TEXT...      one JSON array of ids per TEXT
 *   semdex tokenize [--model DIR] --jsonl FILE one per line of FILE (each line
 *                                              a JSON string; FILE "-" = stdin)
 *
 * Ids are exactly what the encoder feeds the model: [CLS] first, [SEP] last,
 * truncated to max_seq_length. Reading JSON lines is shared with `embed`
 * (cli_jsonl_next in cmd_embed.c).
 */
#include <stdlib.h>
#include <string.h>

#include "../common/sx.h"
#include "../text/text.h"
#include "cli.h"

static const char *USAGE = "[--model DIR] TEXT... | [--model DIR] --jsonl FILE";

static void print_ids(const int32_t *ids, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    fputs("]\n", stdout);
}

int cli_cmd_tokenize(int argc, char **argv) {
    const char *model = CLI_DEFAULT_MODEL, *jsonl = NULL;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: semdex tokenize %s\n\nPrints the token ids of each text as a JSON "
                   "array, one per line.\n  --model DIR   model folder (default %s)\n"
                   "  --jsonl FILE  read texts from FILE, one JSON string per line (- = stdin)\n",
                   USAGE, CLI_DEFAULT_MODEL);
            return 0;
        }
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model = argv[++i];
        else if (strcmp(argv[i], "--jsonl") == 0 && i + 1 < argc) jsonl = argv[++i];
        else if (strcmp(argv[i], "--") == 0) {
            first = i + 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1]) return cli_bad_option("tokenize", argv[i], USAGE);
        else {
            first = i;
            break;
        }
    }
    if ((jsonl != NULL) == (first < argc)) return cli_usage("tokenize", USAGE);
    sx_err err = {0};
    sx_tokenizer *tok;
    if (sx_tokenizer_load(model, &tok, &err) < 0) return cli_fail("tokenize", "%s", err.msg);
    int max = sx_tokenizer_max_len(tok);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max);
    int status = ids ? 0 : cli_fail("tokenize", "out of memory");
    if (status == 0 && jsonl) {
        cli_jsonl r;
        if (cli_jsonl_open(&r, jsonl) < 0) status = 1;
        char *text;
        size_t len;
        int rc;
        while (status == 0 && (rc = cli_jsonl_next(&r, &text, &len)) > 0) {
            int n;
            if (sx_tokenizer_encode(tok, text, len, ids, max, &n, &err) < 0)
                status = cli_fail("tokenize", "%s:%ld: %s", jsonl, r.line, err.msg);
            else print_ids(ids, n);
        }
        if (status == 0 && rc < 0) status = 1;
        cli_jsonl_close(&r);
    }
    for (int i = first; status == 0 && i < argc; i++) {
        int n;
        if (sx_tokenizer_encode(tok, argv[i], strlen(argv[i]), ids, max, &n, &err) < 0)
            status = cli_fail("tokenize", "argument %d: %s", i - first + 1, err.msg);
        else print_ids(ids, n);
    }
    if (fflush(stdout) != 0 && status == 0) status = cli_fail("tokenize", "cannot write output");
    free(ids);
    sx_tokenizer_free(tok);
    return status;
}
