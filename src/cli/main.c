/*
 * main.c - entry point of the `semdex` command.
 *
 * A thin dispatcher: it finds the subcommand in a table and hands it the rest
 * of the arguments. Every subcommand answers --help / -h with its usage (exit
 * 0) and names an option it does not know (exit 2). This is the only layer
 * that turns error codes into exit statuses.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sx.h"

typedef struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} cli_cmd;

static const cli_cmd g_cmds[] = {
    /* encoder */
    {"tokenize", cli_cmd_tokenize, "print the token ids the model sees for texts"},
    {"embed", cli_cmd_embed, "embed texts with the sentence encoder"},
    /* index */
    /* service */
    {"ingest", cli_cmd_ingest, "load arXiv JSON lines into a collection"},
    {"serve", cli_cmd_serve, "run the search service (REST API + web page)"},
    {"search", cli_cmd_search, "search a collection from the command line"},
    {"info", cli_cmd_info, "print build and CPU information"},
    {"version", cli_cmd_version, "print the version"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: semdex <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof g_cmds / sizeof g_cmds[0]; i++)
        fprintf(out, "  %-10s %s\n", g_cmds[i].name, g_cmds[i].summary);
    fprintf(out, "\n`semdex <command> --help` describes one command.\n");
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "semdex %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_usage(const char *cmd, const char *text) {
    fprintf(stderr, "usage: semdex %s %s\n", cmd, text);
    return 2;
}

/* 1 when usage lists opt as an option (not as a part of a longer one). */
static int usage_lists(const char *usage, const char *opt) {
    size_t n = strlen(opt);
    for (const char *p = strstr(usage, opt); p; p = strstr(p + 1, opt)) {
        char before = p == usage ? ' ' : p[-1], after = p[n];
        if (strchr(" [|\n", before) && strchr(" ]\n", after)) return 1;
    }
    return 0;
}

int cli_bad_option(const char *cmd, const char *opt, const char *usage) {
    if (strncmp(opt, "-", 1) == 0 && usage_lists(usage, opt)) cli_fail(cmd, "%s needs a value", opt);
    else cli_fail(cmd, "unknown option '%s'", opt);
    return cli_usage(cmd, usage);
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

int cli_parse_int(const char *cmd, const char *opt, const char *val, long min, long max,
                  long *out) {
    char *end = NULL;
    if (!val) {
        cli_fail(cmd, "%s needs a value", opt);
        return -1;
    }
    long v = strtol(val, &end, 10);
    if (!*val || *end || v < min || v > max) {
        cli_fail(cmd, "%s: expected an integer in [%ld, %ld], got '%s'", opt, min, max, val);
        return -1;
    }
    *out = v;
    return 0;
}

/* The options of a command that takes none: --help, or an error. */
static int no_options(const char *cmd, const char *text, int argc, char **argv) {
    if (argc < 2) return -1;
    if (cli_wants_help(argc, argv)) {
        printf("usage: semdex %s\n\n%s\n", cmd, text);
        return 0;
    }
    return cli_bad_option(cmd, argv[1], "");
}

int cli_cmd_version(int argc, char **argv) {
    int st = no_options("version", "Prints the version.", argc, argv);
    if (st >= 0) return st;
    printf("semdex %s\n", SX_VERSION);
    return 0;
}

int cli_cmd_info(int argc, char **argv) {
    int st = no_options("info", "Prints the version, the CPU count and the CPU features the kernels use.",
                        argc, argv);
    if (st >= 0) return st;
    printf("semdex %s\n", SX_VERSION);
    printf("cpus: %d\n", sx_cpu_count());
#if defined(__x86_64__)
    __builtin_cpu_init();
    printf("cpu features: avx2=%d fma=%d avx512f=%d avx512vnni=%d\n",
           !!__builtin_cpu_supports("avx2"), !!__builtin_cpu_supports("fma"),
           !!__builtin_cpu_supports("avx512f"), !!__builtin_cpu_supports("avx512vnni"));
#elif defined(__aarch64__)
    printf("cpu features: neon=1\n");
#endif
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) return cli_cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof g_cmds / sizeof g_cmds[0]; i++)
        if (strcmp(argv[1], g_cmds[i].name) == 0) return g_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "semdex: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
