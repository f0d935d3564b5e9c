/*
 * cli.h - the `semdex` command: one function per subcommand.
 *
 * Each subcommand lives in src/cli/cmd_<name>.c, takes the arguments after its
 * name (argv[0] is the subcommand name) and returns the process exit status:
 * 0 success, 1 failure (message already printed to stderr), 2 usage error.
 * Subcommands are registered in the table in main.c.
 */
#ifndef SX_CLI_H
#define SX_CLI_H

#include <stdio.h>

typedef int (*cli_cmd_fn)(int argc, char **argv);

int cli_cmd_version(int argc, char **argv);
int cli_cmd_info(int argc, char **argv);
/* encoder */
#define CLI_DEFAULT_MODEL "models/all-MiniLM-L6-v2"
int cli_cmd_tokenize(int argc, char **argv);
int cli_cmd_embed(int argc, char **argv);

/* Reads a file of one JSON string per line (cmd_embed.c). */
typedef struct {
    const char *path;
    FILE *f;
    char *buf;
    size_t cap;
    long line;   /* number of the line last read, from 1 */
    void *json;  /* the parsed line (cJSON), owned */
} cli_jsonl;

/* Opens path ("-" = stdin); returns 0, or -1 after printing why. */
int cli_jsonl_open(cli_jsonl *r, const char *path);

/* Reads the next line into *text / *len (valid until the next call); returns
 * 1, 0 at the end, or -1 after printing the file, line and problem. */
int cli_jsonl_next(cli_jsonl *r, char **text, size_t *len);

/* Closes the file (unless stdin) and frees the buffers. */
void cli_jsonl_close(cli_jsonl *r);
/* index */
/* service */
int cli_cmd_ingest(int argc, char **argv);
int cli_cmd_serve(int argc, char **argv);
int cli_cmd_search(int argc, char **argv);

/* Prints "semdex <cmd>: <message>" to stderr and returns exit status 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a usage error for cmd to stderr and returns exit status 2. */
int cli_usage(const char *cmd, const char *usage);

/* Reports an option cmd cannot use and returns exit status 2: "opt needs a
 * value" when usage lists opt (it was last on the line), else "unknown
 * option 'opt'"; then the usage. */
int cli_bad_option(const char *cmd, const char *opt, const char *usage);

/* 1 when argv[1..argc) asks for help (--help or -h anywhere before "--"). */
int cli_wants_help(int argc, char **argv);

/* Parses a positive integer option value; returns 0 or -1 (message printed). */
int cli_parse_int(const char *cmd, const char *opt, const char *val, long min, long max,
                  long *out);

#endif
