/*
 * sx.c - shared helpers: errors, logging, clocks, files, process memory.
 *
 * Kept deliberately small: anything that belongs to one module lives in that
 * module. What is here is used by every module and has no dependencies beyond
 * libc and POSIX.
 */
#include "sx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef __APPLE__
#include <mach/mach.h>
#endif

int sx_err_set(sx_err *err, int code, const char *fmt, ...) {
    if (err) {
        /* Format into a local buffer first: callers may pass err->msg itself
         * as an argument ("%s: ...", err->msg), and vsnprintf into the buffer
         * it is reading from garbles the message. */
        char msg[SX_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        err->code = code;
        memcpy(err->msg, msg, sizeof msg);
    }
    return code;
}

int sx_err_prefix(sx_err *err, const char *fmt, ...) {
    if (!err) return SX_EINVAL;
    /* Both parts are built apart from err->msg, which an argument may be. */
    char old[SX_ERR_MSG_MAX], prefix[SX_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0) return err->code;
    size_t a = strlen(prefix), b = strlen(old), cap = sizeof err->msg - 1;
    if (a > cap) a = cap;
    memcpy(err->msg, prefix, a);
    size_t used = a;
    for (const char *sep = ": "; *sep && used < cap; sep++) err->msg[used++] = *sep;
    if (b > cap - used) b = cap - used;
    memcpy(err->msg + used, old, b);
    err->msg[used + b] = '\0';
    return err->code;
}

const char *sx_strerror(int code) {
    switch (code) {
    case SX_OK: return "ok";
    case SX_ENOMEM: return "out of memory";
    case SX_EIO: return "input/output error";
    case SX_EINVAL: return "invalid argument";
    case SX_ECORRUPT: return "corrupt data";
    case SX_ENOTFOUND: return "not found";
    case SX_EFULL: return "limit reached";
    case SX_EBUSY: return "busy";
    case SX_ENOTDURABLE: return "not durable";
    case SX_EUNSUPPORTED: return "unsupported";
    default: return "unknown error";
    }
}

static sx_log_level g_log_level = SX_LOG_INFO;

void sx_log_set_level(sx_log_level level) { g_log_level = level; }

int sx_log_parse_level(const char *name, sx_log_level *level) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *level = (sx_log_level)i;
            return 0;
        }
    }
    return SX_EINVAL;
}

void sx_log(sx_log_level level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < g_log_level) return;
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    /* One write() per line keeps lines from concurrent threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

double sx_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double sx_wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int sx_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int sx_read_file(const char *path, char **data_out, size_t *len_out, sx_err *err) {
    *data_out = NULL;
    if (len_out) *len_out = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int code = errno == ENOENT ? SX_ENOTFOUND : SX_EIO;
        return sx_err_set(err, code, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sx_err_set(err, SX_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        fclose(f);
        return sx_err_set(err, SX_ENOMEM, "%s: cannot allocate %zu bytes", path, len + 1);
    }
    if (len && fread(buf, 1, len, f) != len) {
        free(buf);
        fclose(f);
        return sx_err_set(err, SX_EIO, "%s: short read", path);
    }
    fclose(f);
    buf[len] = '\0';
    *data_out = buf;
    if (len_out) *len_out = len;
    return 0;
}

size_t sx_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#ifdef __APPLE__
    return (size_t)ru.ru_maxrss; /* bytes on macOS */
#else
    return (size_t)ru.ru_maxrss * 1024; /* kilobytes on Linux */
#endif
}

size_t sx_current_rss(void) {
#ifdef __APPLE__
    struct mach_task_basic_info info;
    mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
    if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t)&info, &count) !=
        KERN_SUCCESS)
        return 0;
    return (size_t)info.resident_size;
#else
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long pages_total = 0, pages_rss = 0;
    int n = fscanf(f, "%lu %lu", &pages_total, &pages_rss);
    fclose(f);
    if (n != 2) return 0;
    return (size_t)pages_rss * (size_t)sysconf(_SC_PAGESIZE);
#endif
}

/* Grows b to hold at least need more bytes plus the NUL. Returns 0 or -1. */
static int buf_reserve(sx_buf *b, size_t need) {
    if (b->oom) return -1;
    if (b->len + need + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void sx_buf_append(sx_buf *b, const void *data, size_t len) {
    if (buf_reserve(b, len) < 0) return;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void sx_buf_printf(sx_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) < 0) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sx_buf_free(sx_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

int sx_host_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

void sx_le32_copy(void *dst, const void *src, size_t n) {
    if (sx_host_little_endian()) {
        if (dst != src) memmove(dst, src, n * 4);
        return;
    }
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = sx_le32_get(s + 4 * i); /* read whole before writing: dst may be src */
        memcpy(d + 4 * i, &v, 4);
    }
}

double sx_l2_normalize(float *v, int dim) {
    double n = 0;
    for (int i = 0; i < dim; i++) n += (double)v[i] * v[i];
    n = sqrt(n);
    if (n > 0)
        for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / n);
    return n;
}
