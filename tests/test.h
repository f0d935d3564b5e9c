/*
 * test.h - the semdex unit-test harness.
 *
 * A test is a `void test_<name>(void)` function in a tests/test-<module>.c file,
 * registered once in tests/list.h. The runner (tests/runner.c) runs each test
 * in its own child process, so a crash, a sanitizer report or a leak fails that
 * test alone, and prints `N passed, N failed` at the end.
 *
 * Assertions are never compiled out. A failing CHECK prints the file, line and
 * expression and ends the test. Tests run with the repository root as the
 * working directory, so fixtures are "tests/fixtures/...".
 */
#ifndef SX_TEST_H
#define SX_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ends the current test as failed after printing where and why. */
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
    } while (0)

#define CHECK_MSG(cond, ...)                                   \
    do {                                                       \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);                             \
        if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, a_, b_); \
    } while (0)

#define CHECK_STR(a, b)                                                              \
    do {                                                                             \
        const char *a_ = (a), *b_ = (b);                                             \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                       \
            test_fail(__FILE__, __LINE__, "%s == %s (\"%s\" != \"%s\")", #a, #b,      \
                      a_ ? a_ : "(null)", b_ ? b_ : "(null)");                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                 \
        double a_ = (double)(a), b_ = (double)(b);                                       \
        if (!(fabs(a_ - b_) <= (tol)))                                                   \
            test_fail(__FILE__, __LINE__, "%s ~= %s (%.9g vs %.9g, tol %g)", #a, #b, a_, b_, \
                      (double)(tol));                                                    \
    } while (0)

/* Path of a scratch directory unique to this test run (created on demand,
 * removed by the runner afterwards). */
const char *test_tmpdir(void);

#endif
