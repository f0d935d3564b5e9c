/*
 * sx.h - what every semdex module shares: error reporting, logging, small
 * helpers for memory and time.
 *
 * Errors. A function that can fail returns an int: 0 on success, a negative
 * SX_E* code on failure. When the caller passes a non-NULL sx_err, the failing
 * function also writes a one-line, human-readable message into it, naming the
 * file, the id or the byte offset at fault, so the CLI or the server can show
 * it as is. Results come back through OUT pointers. Nothing below the CLI ever
 * calls exit().
 *
 *     sx_err err = {0};
 *     if (sx_model_load(dir, &model, &err) < 0) {
 *         fprintf(stderr, "semdex: %s\n", err.msg);
 *         return 1;
 *     }
 *
 * Logging. sx_log() writes one line to stderr: a timestamp, the level and a
 * message. The server uses it for one structured line per request.
 */
#ifndef SX_H
#define SX_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Result codes: 0 is success, everything else is negative. */
enum {
    SX_OK = 0,
    SX_ENOMEM = -1,    /* allocation failed */
    SX_EIO = -2,       /* read/write/open failed (errno in the message) */
    SX_EINVAL = -3,    /* bad argument or bad input from a user */
    SX_ECORRUPT = -4,  /* a file or byte stream fails validation */
    SX_ENOTFOUND = -5, /* unknown id, missing file */
    SX_EFULL = -6,     /* a limit was reached */
    SX_EBUSY = -7,     /* resource temporarily unavailable */
    SX_EUNSUPPORTED = -8, /* valid but not supported (dtype, version) */
    SX_ENOTDURABLE = -9,  /* written, but fewer copies acknowledged it than asked */
};

#define SX_ERR_MSG_MAX 512

/* An error: the code and a message the caller can show to a user. */
typedef struct sx_err {
    int code;                 /* one of SX_E*, 0 when no error */
    char msg[SX_ERR_MSG_MAX]; /* NUL-terminated, one line */
} sx_err;

/* Records code and a printf-style message in err (when err is not NULL) and
 * returns code, so a failing function can end with `return sx_err_set(...)`. */
int sx_err_set(sx_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the message already in err (no-op when err is NULL),
 * used to add context ("model/config.json: ") as an error travels up. Returns
 * err->code, or SX_EINVAL when err is NULL. */
int sx_err_prefix(sx_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns a static, generic description of a result code. */
const char *sx_strerror(int code);

/* Log levels, in increasing severity. */
typedef enum { SX_LOG_DEBUG = 0, SX_LOG_INFO, SX_LOG_WARN, SX_LOG_ERROR } sx_log_level;

/* Sets the lowest level that sx_log writes (default SX_LOG_INFO). */
void sx_log_set_level(sx_log_level level);

/* Parses "debug", "info", "warn" or "error" into *level (OUT). Returns 0 or
 * SX_EINVAL. */
int sx_log_parse_level(const char *name, sx_log_level *level);

/* Writes one line "<ISO-8601 time> <level> <message>" to stderr when level is
 * at or above the configured level. Thread-safe (one write per line). */
void sx_log(sx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic clock in seconds. */
double sx_now(void);

/* Wall clock in seconds since the epoch. */
double sx_wall_time(void);

/* Number of online CPUs (at least 1). */
int sx_cpu_count(void);

/* Reads a whole file into a malloc'd buffer with a terminating NUL byte
 * (not counted in *len_out). Returns 0, SX_ENOTFOUND, SX_EIO or SX_ENOMEM;
 * the caller frees *data_out. */
int sx_read_file(const char *path, char **data_out, size_t *len_out, sx_err *err);

struct cJSON;

/* Reads the JSON object in the file at path into *out (OUT; free with
 * cJSON_Delete). When the file is absent: *out = NULL and 0 if optional,
 * else SX_ENOTFOUND. SX_ECORRUPT when it is not a JSON object. */
int sx_json_read_object(const char *path, int optional, struct cJSON **out, sx_err *err);

/* Parses text[0..len) as exactly one JSON value into *out (OUT; free with
 * cJSON_Delete): only whitespace may follow it. A string (value or key)
 * holding U+0000 is refused, since cJSON's strings end at the first NUL and
 * would be cut silently (see json.c). Returns 0; SX_ECORRUPT when the text
 * is not one JSON value ("... near byte N"); SX_EINVAL when a string holds
 * U+0000, the message naming it by its path ("'papers[0].abstract' holds
 * ..."); SX_ENOMEM. *out is NULL on error. */
int sx_json_parse(const char *text, size_t len, struct cJSON **out, sx_err *err);

/* Whether the UTF-8 string s has no character but white space as JSON
 * Schema patterns (ECMA-262 \s) define it: what the schema's "\\S" pattern
 * refuses (a blank query or title). */
int sx_json_blank(const char *s);

/* The number of code points of the valid UTF-8 string s: what JSON Schema's
 * minLength / maxLength count. */
size_t sx_json_chars(const char *s);

/* Peak resident set size of this process in bytes (0 when unknown). */
size_t sx_peak_rss(void);

/* Current resident set size of this process in bytes (0 when unknown). */
size_t sx_current_rss(void);

/* CRC-32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t sx_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable CRC-32C that sx_crc32c's hardware path is tested against. */
uint32_t sx_crc32c_portable(uint32_t crc, const void *buf, size_t len);

/* ---- little-endian bytes ----
 *
 * Every byte format semdex writes (snapshots, the write-ahead log, Redis
 * values, vectors on the wire) is little-endian whatever the host; these are
 * the only functions that turn values into such bytes and back. p need not
 * be aligned. */

static inline void sx_le16_put(void *p, uint16_t v) {
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static inline uint16_t sx_le16_get(const void *p) {
    const uint8_t *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}

static inline void sx_le32_put(void *p, uint32_t v) {
    uint8_t *b = p;
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t sx_le32_get(const void *p) {
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline void sx_le64_put(void *p, uint64_t v) {
    sx_le32_put(p, (uint32_t)v);
    sx_le32_put((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t sx_le64_get(const void *p) {
    return sx_le32_get(p) | (uint64_t)sx_le32_get((const uint8_t *)p + 4) << 32;
}

/* A float as the 4 little-endian bytes of its IEEE-754 binary32 pattern. */
static inline void sx_le_float_put(void *p, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    sx_le32_put(p, u);
}

static inline float sx_le_float_get(const void *p) {
    uint32_t u = sx_le32_get(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* 1 when this host stores 32-bit values little-endian (arrays of them can
 * be read and written in place), else 0. */
int sx_host_little_endian(void);

/* Converts n 32-bit values (integers or floats) between little-endian bytes
 * and host order: the same operation both ways. dst may equal src. */
void sx_le32_copy(void *dst, const void *src, size_t n);

/* ---- vectors ---- */

/* Scales v (dim floats) to unit L2 norm and returns the norm it had. The
 * zero-vector rule, the same everywhere: a vector whose norm is not > 0 (all
 * zeros, or NaN in it) is left unchanged, so it stays invalid and the
 * shard's sx_vector_check refuses it; callers that answer a user check the
 * returned norm first. */
double sx_l2_normalize(float *v, int dim);

/* A growable byte buffer. Zero-initialise it ({0}); every append keeps a
 * terminating NUL after the data (not counted in len). After an allocation
 * failure the buffer stays failed (oom = 1) and appends do nothing, so a
 * caller checks once at the end. */
typedef struct sx_buf {
    char *data;
    size_t len, cap;
    int oom;
} sx_buf;

/* Appends len bytes. */
void sx_buf_append(sx_buf *b, const void *data, size_t len);

/* Appends a printf-formatted string. */
void sx_buf_printf(sx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the buffer's memory and zeroes it. */
void sx_buf_free(sx_buf *b);

/* Initialises a reader-writer lock that prefers writers where the C library
 * allows it (glibc), so that a steady stream of readers cannot starve a
 * writer; elsewhere the platform default. */
void sx_rwlock_init(pthread_rwlock_t *lock);

/* A pool of worker threads for parallel loops (see pool.c). */
typedef struct sx_pool sx_pool;

/* Starts n_threads workers (0 is valid: loops then run on the caller).
 * Returns 0, SX_ENOMEM or SX_EIO; *out (OUT) owns the pool. */
int sx_pool_create(int n_threads, sx_pool **out, sx_err *err);

/* Runs fn(ctx, i) for i in [0, n) on the workers and the calling thread;
 * returns when every call has returned. Thread-safe. pool may be NULL
 * (runs serially). */
void sx_pool_run(sx_pool *pool, int n, void (*fn)(void *ctx, int i), void *ctx);

/* Threads a loop can use: workers + the caller. */
int sx_pool_threads(const sx_pool *pool);

/* Stops and joins the workers. NULL is a no-op. */
void sx_pool_free(sx_pool *pool);

#endif /* SX_H */
