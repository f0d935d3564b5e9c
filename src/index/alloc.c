/*
 * alloc.c - the pluggable allocator of the index and shard.
 *
 * One process-wide table of function pointers, like Redis vector-sets'
 * hnsw_set_allocator: the Redis module installs RedisModule_Alloc & co. so
 * that every byte a shard holds is accounted to Redis. It must be installed
 * before the first index exists (memory must be freed by the allocator that
 * made it), so a plain global without synchronisation is enough.
 */
#include "index.h"

#include <stdlib.h>
#include <string.h>

static sx_allocator g_alloc = {malloc, calloc, realloc, free};

void sx_index_set_allocator(const sx_allocator *a) {
    if (!a) {
        g_alloc = (sx_allocator){malloc, calloc, realloc, free};
        return;
    }
    g_alloc = *a;
}

void *sx_index_malloc(size_t size) { return g_alloc.malloc_fn(size ? size : 1); }

void *sx_index_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    if (g_alloc.calloc_fn) return g_alloc.calloc_fn(n ? n : 1, size ? size : 1);
    size_t bytes = n * size;
    void *p = g_alloc.malloc_fn(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
}

void *sx_index_realloc(void *p, size_t size) { return g_alloc.realloc_fn(p, size ? size : 1); }

void sx_index_free_mem(void *p) {
    if (p) g_alloc.free_fn(p);
}
