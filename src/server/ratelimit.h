/*
 * ratelimit.h - per-client token buckets.
 *
 * Each client (keyed by address, or API key) owns a bucket of `burst` tokens
 * refilled at `rate` tokens per second; a request takes one token. A client
 * with an empty bucket is told how long to wait (HTTP 429 + Retry-After).
 */
#ifndef SX_RATELIMIT_H
#define SX_RATELIMIT_H

#include <stddef.h>

typedef struct sx_ratelimit sx_ratelimit;

/* Creates a limiter: rate tokens/s, burst tokens, remembering up to
 * max_clients clients (least recently seen forgotten first; a forgotten
 * client starts again with a full bucket). rate <= 0 disables limiting.
 * Returns NULL when out of memory. */
sx_ratelimit *sx_ratelimit_create(double rate, double burst, size_t max_clients);

/* Takes one token for client at time now (seconds, monotonic). Returns 0 when
 * the request may proceed, else the seconds until a token is available. */
double sx_ratelimit_take(sx_ratelimit *rl, const char *client, double now);

/* Like sx_ratelimit_take but takes nothing: 0 when a token is there, else
 * the seconds until one is. Used to refuse a client before it tries (the
 * failed API-key attempts in http.c). */
double sx_ratelimit_peek(sx_ratelimit *rl, const char *client, double now);

/* Frees the limiter. NULL is a no-op. */
void sx_ratelimit_free(sx_ratelimit *rl);

#endif
