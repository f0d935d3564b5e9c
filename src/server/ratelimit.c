/*
 * ratelimit.c - token buckets kept in an LRU map.
 *
 * A bucket is two doubles: the tokens it holds and when it was last
 * refilled. Refilling is lazy (tokens += elapsed * rate, capped at burst) when
 * the client next asks, so idle clients cost nothing, and the LRU bound keeps
 * memory fixed however many addresses show up.
 */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "lru.h"

typedef struct {
    double tokens;
    double last;
} bucket;

struct sx_ratelimit {
    double rate, burst;
    sx_lru *clients;
};

typedef struct {
    const sx_ratelimit *rl;
    double now;
    int keep; /* 1: only look, take nothing */
} take_ctx;

sx_ratelimit *sx_ratelimit_create(double rate, double burst, size_t max_clients) {
    sx_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->rate = rate;
    rl->burst = burst < 1 ? 1 : burst;
    rl->clients = sx_lru_create(rate > 0 ? max_clients : 0, sizeof(bucket));
    if (!rl->clients) {
        free(rl);
        return NULL;
    }
    return rl;
}

/* Refills the bucket and takes a token; returns the wait when empty. */
static double take(void *ctx, void *value, int is_new) {
    const take_ctx *t = ctx;
    bucket *b = value;
    if (is_new) {
        b->tokens = t->rl->burst;
        b->last = t->now;
    }
    double elapsed = t->now - b->last;
    if (elapsed > 0) {
        b->tokens += elapsed * t->rl->rate;
        if (b->tokens > t->rl->burst) b->tokens = t->rl->burst;
        b->last = t->now;
    }
    if (b->tokens >= 1.0) {
        if (!t->keep) b->tokens -= 1.0;
        return 0.0;
    }
    return (1.0 - b->tokens) / t->rl->rate;
}

double sx_ratelimit_take(sx_ratelimit *rl, const char *client, double now) {
    if (rl->rate <= 0) return 0.0;
    take_ctx t = {rl, now, 0};
    return sx_lru_update(rl->clients, client, strlen(client), take, &t);
}

double sx_ratelimit_peek(sx_ratelimit *rl, const char *client, double now) {
    if (rl->rate <= 0) return 0.0;
    take_ctx t = {rl, now, 1};
    return sx_lru_update(rl->clients, client, strlen(client), take, &t);
}

void sx_ratelimit_free(sx_ratelimit *rl) {
    if (!rl) return;
    sx_lru_free(rl->clients);
    free(rl);
}
