/*
 * rc-tool.c - drives the Redis Cluster client (src/cluster/rcluster.h) from
 * tests/e2e/redis-cluster-client.sh. Not installed; built as build/tests/rc-tool.
 *
 *   rc-tool [OPTIONS] SEEDS set KEY VALUE        one SET (prints the reply)
 *   rc-tool [OPTIONS] SEEDS get KEY              one GET
 *   rc-tool [OPTIONS] SEEDS cmd NAME KEY ARG...  any command, routed by KEY
 *   rc-tool [OPTIONS] SEEDS wait-set KEY VALUE N SET, then WAIT N replicas
 *   rc-tool [OPTIONS] SEEDS fill N PREFIX        SET PREFIX:i = v:PREFIX:i, batches of 100
 *   rc-tool [OPTIONS] SEEDS check N PREFIX       GET them back in batches of 100
 *   rc-tool [OPTIONS] SEEDS loop SECONDS N PREFIX
 *         T threads (--threads) run batches of 8 GETs (with --write: SETs of
 *         the same values) of random keys among the N, for SECONDS, counting
 *         answers, wrong values and failed commands
 *   rc-tool [OPTIONS] SEEDS bench N ROUNDS       one batch of N GETs vs N
 *                                                GETs one by one (median us)
 *   rc-tool [OPTIONS] SEEDS stats                slot map and nodes
 *
 * OPTIONS: --primary (reads go to masters only), --deadline MS,
 * --threads T, --write, --retry-writes. Every mode ends with a line of
 * key=value figures, then the client's counters (stats: ...). Exit status 0
 * when every command succeeded (check: and every value was right), else 1.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/cluster/rcluster.h"

static sx_rc *g_rc;
static int g_read_only = 1, g_write = 0, g_threads = 4;

static void print_reply(const redisReply *r, int depth) {
    switch (r->type) {
    case REDIS_REPLY_STRING: printf("%*s%.*s\n", depth * 2, "", (int)r->len, r->str); break;
    case REDIS_REPLY_STATUS: printf("%*s%s\n", depth * 2, "", r->str); break;
    case REDIS_REPLY_ERROR: printf("%*s(error) %s\n", depth * 2, "", r->str); break;
    case REDIS_REPLY_INTEGER: printf("%*s%lld\n", depth * 2, "", r->integer); break;
    case REDIS_REPLY_NIL: printf("%*s(nil)\n", depth * 2, ""); break;
    default:
        for (size_t i = 0; i < r->elements; i++) print_reply(r->element[i], depth + 1);
    }
}

static void print_stats(void) {
    sx_rc_stats s;
    sx_rc_stats_get(g_rc, &s);
    printf("stats: masters=%d replicas=%d down=%d covered=%d refreshes=%llu refresh_errors=%llu "
           "commands=%llu moved=%llu ask=%llu busy=%llu node_errors=%llu failed=%llu\n",
           s.masters, s.replicas, s.nodes_down, s.slots_covered, (unsigned long long)s.refreshes,
           (unsigned long long)s.refresh_errors, (unsigned long long)s.commands, (unsigned long long)s.moved,
           (unsigned long long)s.ask, (unsigned long long)s.busy_retries, (unsigned long long)s.node_errors,
           (unsigned long long)s.failed);
}

/* Runs one command given as strings; prints its reply. */
static int run_one(int argc, const char **argv, int read_only, int wait_n) {
    sx_rc_cmd cmd = {.argc = argc, .argv = argv, .read_only = read_only};
    sx_err err = {0};
    int rc = wait_n >= 0 ? sx_rc_exec_wait(g_rc, &cmd, 1, wait_n, 1000, &err) : sx_rc_exec(g_rc, &cmd, 1, &err);
    if (cmd.reply) print_reply(cmd.reply, 0);
    if (rc < 0) fprintf(stderr, "rc-tool: %s\n", err.msg);
    if (wait_n >= 0) printf("acked=%d\n", cmd.acked);
    sx_rc_cmd_reset(&cmd, 1);
    return rc < 0;
}

typedef struct {
    char key[64], val[80];
    const char *argv[3];
} kv;

static void make_kv(kv *x, const char *prefix, long i, int set) {
    snprintf(x->key, sizeof x->key, "%s:%ld", prefix, i);
    snprintf(x->val, sizeof x->val, "v:%s:%ld", prefix, i);
    x->argv[0] = set ? "SET" : "GET";
    x->argv[1] = x->key;
    x->argv[2] = x->val;
}

/* fill / check: n keys in batches of 100 (one sx_rc_exec each). */
static int fill_or_check(long n, const char *prefix, int set) {
    enum { B = 100 };
    kv x[B];
    sx_rc_cmd cmds[B];
    long failed = 0, wrong = 0, missing = 0;
    for (long from = 0; from < n; from += B) {
        int m = (int)(n - from < B ? n - from : B);
        for (int j = 0; j < m; j++) {
            make_kv(&x[j], prefix, from + j, set);
            cmds[j] = (sx_rc_cmd){.argc = set ? 3 : 2, .argv = x[j].argv, .read_only = !set && g_read_only};
        }
        sx_err err = {0};
        if (sx_rc_exec(g_rc, cmds, m, &err) < 0) fprintf(stderr, "rc-tool: %s\n", err.msg);
        for (int j = 0; j < m; j++) {
            const redisReply *r = cmds[j].reply;
            if (cmds[j].status < 0) failed++;
            else if (set) wrong += !(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0);
            else if (r->type == REDIS_REPLY_NIL) missing++;
            else wrong += !(r->type == REDIS_REPLY_STRING && strcmp(r->str, x[j].val) == 0);
        }
        sx_rc_cmd_reset(cmds, m);
    }
    printf("n=%ld failed=%ld wrong=%ld missing=%ld\n", n, failed, wrong, missing);
    return failed || wrong || missing;
}

/* ---- loop ------------------------------------------------------------------ */

typedef struct {
    long n;
    const char *prefix;
    double until;
    unsigned seed;
    long ok, wrong, missing, failed;
    double first_fail, last_fail; /* wall clock, 0 none */
    char first_err[SX_ERR_MSG_MAX];
} loop_arg;

static void *loop_thread(void *p) {
    loop_arg *a = p;
    enum { B = 8 };
    kv x[B];
    sx_rc_cmd cmds[B];
    while (sx_now() < a->until) {
        for (int j = 0; j < B; j++) {
            make_kv(&x[j], a->prefix, (long)(rand_r(&a->seed) % (unsigned)a->n), g_write);
            cmds[j] = (sx_rc_cmd){.argc = g_write ? 3 : 2, .argv = x[j].argv, .read_only = !g_write && g_read_only};
        }
        sx_err err = {0};
        sx_rc_exec(g_rc, cmds, B, &err);
        for (int j = 0; j < B; j++) {
            const redisReply *r = cmds[j].reply;
            if (cmds[j].status < 0) {
                a->failed++;
                double t = sx_wall_time();
                if (!a->first_fail) {
                    a->first_fail = t;
                    snprintf(a->first_err, sizeof a->first_err, "%s", cmds[j].err.msg);
                }
                a->last_fail = t;
            } else if (g_write) {
                a->ok++;
            } else if (r->type == REDIS_REPLY_NIL) {
                a->missing++;
            } else if (r->type == REDIS_REPLY_STRING && strcmp(r->str, x[j].val) == 0) {
                a->ok++;
            } else {
                a->wrong++;
                fprintf(stderr, "rc-tool: %s gave '%.*s' from %s\n", x[j].key,
                        r->str ? (int)r->len : 0, r->str ? r->str : "", cmds[j].node);
            }
        }
        sx_rc_cmd_reset(cmds, B);
    }
    return NULL;
}

static int loop(double seconds, long n, const char *prefix) {
    loop_arg *a = calloc((size_t)g_threads, sizeof *a);
    pthread_t *t = calloc((size_t)g_threads, sizeof *t);
    if (!a || !t) return 1;
    double until = sx_now() + seconds;
    for (int i = 0; i < g_threads; i++) {
        a[i] = (loop_arg){.n = n, .prefix = prefix, .until = until, .seed = (unsigned)(i * 7919 + 1)};
        pthread_create(&t[i], NULL, loop_thread, &a[i]);
    }
    loop_arg s = {0};
    for (int i = 0; i < g_threads; i++) {
        pthread_join(t[i], NULL);
        s.ok += a[i].ok;
        s.wrong += a[i].wrong;
        s.missing += a[i].missing;
        s.failed += a[i].failed;
        if (a[i].first_fail && (!s.first_fail || a[i].first_fail < s.first_fail)) {
            s.first_fail = a[i].first_fail;
            snprintf(s.first_err, sizeof s.first_err, "%s", a[i].first_err);
        }
        if (a[i].last_fail > s.last_fail) s.last_fail = a[i].last_fail;
    }
    printf("ok=%ld wrong=%ld missing=%ld failed=%ld first_fail_ms=%.0f last_fail_ms=%.0f\n", s.ok, s.wrong,
           s.missing, s.failed, s.first_fail * 1000, s.last_fail * 1000);
    if (s.failed) printf("first_error: %s\n", s.first_err);
    free(a);
    free(t);
    return s.wrong || s.missing || s.failed;
}

/* ---- bench ----------------------------------------------------------------- */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static int bench(int n, int rounds) {
    kv *x = calloc((size_t)n, sizeof *x);
    sx_rc_cmd *cmds = calloc((size_t)n, sizeof *cmds);
    double *fan = calloc((size_t)rounds, sizeof *fan), *seq = calloc((size_t)rounds, sizeof *seq);
    if (!x || !cmds || !fan || !seq) return 1;
    int bad = 0;
    for (int i = 0; i < n; i++) make_kv(&x[i], "bench", i, 1);
    for (int i = 0; i < n; i++) cmds[i] = (sx_rc_cmd){.argc = 3, .argv = x[i].argv};
    sx_err err = {0};
    bad |= sx_rc_exec(g_rc, cmds, n, &err) < 0;
    sx_rc_cmd_reset(cmds, n);
    for (int i = 0; i < n; i++) x[i].argv[0] = "GET";
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < n; i++) cmds[i] = (sx_rc_cmd){.argc = 2, .argv = x[i].argv, .read_only = g_read_only};
        double t0 = sx_now();
        bad |= sx_rc_exec(g_rc, cmds, n, &err) < 0;
        fan[r] = (sx_now() - t0) * 1e6;
        sx_rc_cmd_reset(cmds, n);
        t0 = sx_now();
        for (int i = 0; i < n; i++) {
            bad |= sx_rc_exec(g_rc, &cmds[i], 1, &err) < 0;
            sx_rc_cmd_reset(&cmds[i], 1);
        }
        seq[r] = (sx_now() - t0) * 1e6;
    }
    qsort(fan, (size_t)rounds, sizeof *fan, cmp_double);
    qsort(seq, (size_t)rounds, sizeof *seq, cmp_double);
    printf("keys=%d rounds=%d fanout_median_us=%.0f sequential_median_us=%.0f ratio=%.1f\n", n, rounds,
           fan[rounds / 2], seq[rounds / 2], seq[rounds / 2] / fan[rounds / 2]);
    free(x);
    free(cmds);
    free(fan);
    free(seq);
    return bad;
}

static int show_nodes(void) {
    sx_rc_node_info info[64];
    int n = sx_rc_nodes(g_rc, info, 64);
    for (int i = 0; i < n && i < 64; i++)
        printf("node %s role=%s down=%d conns=%d requests=%llu errors=%llu%s%s\n", info[i].addr,
               info[i].is_master == 1 ? "master" : info[i].is_master == 0 ? "replica" : "gone", info[i].down,
               info[i].conns, (unsigned long long)info[i].requests, (unsigned long long)info[i].errors,
               info[i].last_error[0] ? " last_error=" : "", info[i].last_error);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: rc-tool [--primary] [--deadline MS] [--threads T] [--write] [--retry-writes] SEEDS "
                    "set|get|cmd|wait-set|fill|check|loop|bench|stats ...\n");
    return 2;
}

int main(int argc, char **argv) {
    sx_rc_options opt;
    sx_rc_options_default(&opt);
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--primary") == 0) g_read_only = 0;
        else if (strcmp(argv[i], "--write") == 0) g_write = 1;
        else if (strcmp(argv[i], "--retry-writes") == 0) opt.retry_unsure_writes = 1;
        else if (strcmp(argv[i], "--deadline") == 0 && i + 1 < argc) opt.deadline_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) g_threads = atoi(argv[++i]);
        else return usage();
    }
    if (argc - i < 2 || g_threads < 1) return usage();
    const char *seeds = argv[i++], *mode = argv[i++];
    int rest = argc - i;
    const char **av = (const char **)argv + i;
    sx_err err = {0};
    if (sx_rc_create(seeds, &opt, &g_rc, &err) < 0) {
        fprintf(stderr, "rc-tool: %s\n", err.msg);
        return 1;
    }
    int rc;
    if (strcmp(mode, "set") == 0 && rest == 2) {
        const char *a[] = {"SET", av[0], av[1]};
        rc = run_one(3, a, 0, -1);
    } else if (strcmp(mode, "get") == 0 && rest == 1) {
        const char *a[] = {"GET", av[0]};
        rc = run_one(2, a, g_read_only, -1);
    } else if (strcmp(mode, "cmd") == 0 && rest >= 2) {
        rc = run_one(rest, av, 0, -1);
    } else if (strcmp(mode, "wait-set") == 0 && rest == 3) {
        const char *a[] = {"SET", av[0], av[1]};
        rc = run_one(3, a, 0, atoi(av[2]));
    } else if ((strcmp(mode, "fill") == 0 || strcmp(mode, "check") == 0) && rest == 2) {
        rc = fill_or_check(atol(av[0]), av[1], mode[0] == 'f');
    } else if (strcmp(mode, "loop") == 0 && rest == 3) {
        rc = loop(atof(av[0]), atol(av[1]), av[2]);
    } else if (strcmp(mode, "bench") == 0 && rest == 2) {
        rc = bench(atoi(av[0]), atoi(av[1]));
    } else if (strcmp(mode, "stats") == 0 && rest == 0) {
        rc = show_nodes();
    } else {
        sx_rc_free(g_rc);
        return usage();
    }
    print_stats();
    sx_rc_free(g_rc);
    return rc;
}
