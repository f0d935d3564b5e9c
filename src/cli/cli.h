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
/* index */
/* service */
int cli_cmd_ingest(int argc, char **argv);
int cli_cmd_serve(int argc, char **argv);
int cli_cmd_search(int argc, char **argv);

/* Prints "semdex <cmd>: <message>" to stderr and returns exit status 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a usage error for cmd to stderr and returns exit status 2. */
int cli_usage(const char *cmd, const char *usage);

/* Parses a positive integer option value; returns 0 or -1 (message printed). */
int cli_parse_int(const char *cmd, const char *opt, const char *val, long min, long max,
                  long *out);

#endif
