/*
 * lru.h - a thread-safe LRU map from strings to fixed-size values. The server
 * uses it for the query-vector cache (query text -> embedding) and for the
 * per-client rate-limit buckets (client address -> token bucket).
 */
#ifndef SX_LRU_H
#define SX_LRU_H

#include <stddef.h>
#include <stdint.h>

typedef struct sx_lru sx_lru;

/* Creates a map of up to capacity entries of value_size bytes each;
 * capacity 0 makes one that stores nothing. Returns NULL when out of memory. */
sx_lru *sx_lru_create(size_t capacity, size_t value_size);

/* Copies the value stored for key[0..len) into out (value_size bytes) and
 * marks it most recently used. Returns 1 on a hit, 0 on a miss. */
int sx_lru_get(sx_lru *c, const char *key, size_t len, void *out);

/* Stores a copy of value under key[0..len), evicting the least recently used
 * entry when full. Silently does nothing when out of memory. */
void sx_lru_put(sx_lru *c, const char *key, size_t len, const void *value);

/* Called by sx_lru_update with the entry's value, under the map's lock;
 * is_new says the value was just created zero-filled. Returns what
 * sx_lru_update returns. */
typedef double (*sx_lru_update_fn)(void *ctx, void *value, int is_new);

/* Finds or creates (zero-filled, evicting when full) the entry for key and
 * runs fn on its value atomically; returns fn's result. When the map stores
 * nothing (capacity 0 or out of memory) fn runs on a zeroed scratch value. */
double sx_lru_update(sx_lru *c, const char *key, size_t len, sx_lru_update_fn fn, void *ctx);

/* Number of entries cached now. */
size_t sx_lru_size(sx_lru *c);

/* Frees the cache. NULL is a no-op. */
void sx_lru_free(sx_lru *c);

#endif
