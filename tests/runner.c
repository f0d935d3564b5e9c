/*
 * runner.c - runs the unit tests listed in tests/list.h.
 *
 * Usage: run [-k] [--no-fork] [NAME-SUBSTRING...]
 *
 * Built with -DSX_TEST_LIST='"path"', it runs the tests of another list
 * file of the same form (the arm64 cross build links only some modules'
 * tests; see the Makefile's cross-arm64-test).
 *
 * Each test runs in a forked child with a time limit, so a crash, an abort
 * from a sanitizer or a leak report (LeakSanitizer exits non-zero) fails that
 * test only. --no-fork runs tests in-process, for a debugger. The last line is
 * always `N passed, N failed`; the exit status is non-zero when a test failed
 * or when no test ran.
 */
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SX_TEST_LIST
#define SX_TEST_LIST "list.h"
#endif

#define TEST(name) void test_##name(void);
#include SX_TEST_LIST
#undef TEST

typedef struct {
    const char *name;
    void (*fn)(void);
} test_entry;

static const test_entry g_tests[] = {
#define TEST(name) {#name, test_##name},
#include SX_TEST_LIST
#undef TEST
};

#define TEST_TIMEOUT_S 900

static char g_tmpdir[256];

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

const char *test_tmpdir(void) {
    if (mkdir(g_tmpdir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s\n", g_tmpdir);
        _exit(1);
    }
    return g_tmpdir;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int matches(const char *name, int argc, char **argv) {
    int any_filter = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        any_filter = 1;
        if (strstr(name, argv[i])) return 1;
    }
    return !any_filter;
}

/* Runs one test; returns 0 when it passed, 1 when it failed. */
static int run_one(const test_entry *t, int fork_each) {
    snprintf(g_tmpdir, sizeof g_tmpdir, "build/tmp/test-%s-%d", t->name, (int)getpid());
    if (!fork_each) {
        t->fn();
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(TEST_TIMEOUT_S);
        t->fn();
        exit(0); /* exit, not _exit: LeakSanitizer checks at exit */
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "    could not remove %s\n", g_tmpdir);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "    killed by signal %d%s\n", WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (time limit)" : "");
    else
        fprintf(stderr, "    exit status %d\n", WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv) {
    int fork_each = 1, keep_going = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-fork") == 0) fork_each = 0;
        if (strcmp(argv[i], "-x") == 0) keep_going = 0;
    }
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);
    int passed = 0, failed = 0;
    size_t n = sizeof g_tests / sizeof g_tests[0];
    for (size_t i = 0; i < n; i++) {
        if (!matches(g_tests[i].name, argc, argv)) continue;
        double t0 = now();
        int r = run_one(&g_tests[i], fork_each);
        double dt = now() - t0;
        printf("%s %s (%.2fs)\n", r == 0 ? "ok  " : "FAIL", g_tests[i].name, dt);
        fflush(stdout);
        if (r == 0) passed++;
        else failed++;
        if (r == 1 && !keep_going) break;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed || passed == 0 ? 1 : 0;
}
