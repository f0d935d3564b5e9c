/*
 * lru.c - an LRU map from strings to fixed-size values.
 *
 * Embedding a query is the most expensive step of a search, and real traffic
 * repeats queries, so the server keeps recent query vectors here; the rate
 * limiter keeps one token bucket per client address, and evicting the least
 * recently seen client bounds its memory under address churn. Structure: an
 * open hash table (chaining) over nodes that also sit on a doubly linked
 * recency list; get moves a node to the front, put evicts from the back. One
 * mutex guards it all: every operation is a few pointer moves and one memcpy
 * of 1.5 KB, far cheaper than the embedding it saves, so finer locking would
 * buy nothing measurable.
 */
#include "lru.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
    struct node *hnext;            /* hash chain */
    struct node *prev, *next;      /* recency list, most recent first */
    uint64_t hash;
    size_t len;
    unsigned char *value;
    char key[];
} node;

struct sx_lru {
    pthread_mutex_t mu;
    size_t capacity, size, nbuckets;
    size_t value_size;
    node **buckets;
    node *head, *tail;
};

static uint64_t hash_key(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

sx_lru *sx_lru_create(size_t capacity, size_t value_size) {
    sx_lru *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->capacity = capacity;
    c->value_size = value_size;
    c->nbuckets = 16;
    while (c->nbuckets < capacity * 2) c->nbuckets *= 2;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void list_unlink(sx_lru *c, node *n) {
    if (n->prev) n->prev->next = n->next;
    else c->head = n->next;
    if (n->next) n->next->prev = n->prev;
    else c->tail = n->prev;
    n->prev = n->next = NULL;
}

static void list_push_front(sx_lru *c, node *n) {
    n->next = c->head;
    n->prev = NULL;
    if (c->head) c->head->prev = n;
    c->head = n;
    if (!c->tail) c->tail = n;
}

static node **find_slot(sx_lru *c, const char *key, size_t len, uint64_t h) {
    node **p = &c->buckets[h & (c->nbuckets - 1)];
    while (*p && !((*p)->hash == h && (*p)->len == len && memcmp((*p)->key, key, len) == 0))
        p = &(*p)->hnext;
    return p;
}

int sx_lru_get(sx_lru *c, const char *key, size_t len, void *out) {
    uint64_t h = hash_key(key, len);
    pthread_mutex_lock(&c->mu);
    node *n = *find_slot(c, key, len, h);
    if (n) {
        list_unlink(c, n);
        list_push_front(c, n);
        memcpy(out, n->value, c->value_size);
    }
    pthread_mutex_unlock(&c->mu);
    return n != NULL;
}

static void evict_lru(sx_lru *c) {
    node *victim = c->tail;
    list_unlink(c, victim);
    node **p = find_slot(c, victim->key, victim->len, victim->hash);
    *p = victim->hnext;
    free(victim->value);
    free(victim);
    c->size--;
}

/* Returns the node for key, creating it (zero-filled value) when absent;
 * *is_new says which. NULL when out of memory. Called with the lock held. */
static node *find_or_insert(sx_lru *c, const char *key, size_t len, int *is_new) {
    uint64_t h = hash_key(key, len);
    node **slot = find_slot(c, key, len, h);
    *is_new = 0;
    if (*slot) {
        list_unlink(c, *slot);
        list_push_front(c, *slot);
        return *slot;
    }
    node *n = malloc(sizeof *n + len + 1);
    unsigned char *v = calloc(1, c->value_size ? c->value_size : 1);
    if (!n || !v) {
        free(n);
        free(v);
        return NULL;
    }
    n->hash = h;
    n->len = len;
    n->value = v;
    memcpy(n->key, key, len);
    n->key[len] = '\0';
    if (c->size == c->capacity) {
        evict_lru(c);
        slot = find_slot(c, key, len, h); /* eviction may have changed the chain */
    }
    n->hnext = NULL;
    *slot = n;
    list_push_front(c, n);
    c->size++;
    *is_new = 1;
    return n;
}

void sx_lru_put(sx_lru *c, const char *key, size_t len, const void *value) {
    if (c->capacity == 0) return;
    int is_new;
    pthread_mutex_lock(&c->mu);
    node *n = find_or_insert(c, key, len, &is_new);
    if (n) memcpy(n->value, value, c->value_size);
    pthread_mutex_unlock(&c->mu);
}

double sx_lru_update(sx_lru *c, const char *key, size_t len, sx_lru_update_fn fn, void *ctx) {
    int is_new = 1;
    node *n = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->capacity > 0) n = find_or_insert(c, key, len, &is_new);
    double r;
    if (n) {
        r = fn(ctx, n->value, is_new);
    } else {
        unsigned char scratch[256] = {0};
        r = c->value_size <= sizeof scratch ? fn(ctx, scratch, 1) : 0.0;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

size_t sx_lru_size(sx_lru *c) {
    pthread_mutex_lock(&c->mu);
    size_t n = c->size;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void sx_lru_free(sx_lru *c) {
    if (!c) return;
    node *n = c->head;
    while (n) {
        node *next = n->next;
        free(n->value);
        free(n);
        n = next;
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
