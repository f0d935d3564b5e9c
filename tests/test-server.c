/* Tests for src/server building blocks: LRU map, rate limiter. */
#include "test.h"

#include "../src/server/lru.h"
#include "../src/server/ratelimit.h"

void test_lru_get_put_evict(void) {
    sx_lru *c = sx_lru_create(3, 2 * sizeof(float));
    CHECK(c);
    float v[2], out[2];
    char key[16];
    for (int i = 0; i < 3; i++) {
        v[0] = (float)i;
        v[1] = (float)-i;
        snprintf(key, sizeof key, "q%d", i);
        sx_lru_put(c, key, strlen(key), v);
    }
    CHECK_EQ(sx_lru_size(c), 3);
    CHECK(sx_lru_get(c, "q0", 2, out)); /* q0 is now the most recent */
    CHECK_NEAR(out[1], 0.0, 0);
    v[0] = 9;
    sx_lru_put(c, "q3", 2, v); /* evicts q1, the least recent */
    CHECK_EQ(sx_lru_size(c), 3);
    CHECK(!sx_lru_get(c, "q1", 2, out));
    CHECK(sx_lru_get(c, "q0", 2, out));
    CHECK(sx_lru_get(c, "q2", 2, out));
    CHECK_NEAR(out[0], 2.0, 0);
    CHECK(sx_lru_get(c, "q3", 2, out));
    CHECK_NEAR(out[0], 9.0, 0);
    /* Keys are byte strings: a prefix is a different key. */
    CHECK(!sx_lru_get(c, "q", 1, out));
    /* Overwriting keeps the size. */
    v[0] = 7;
    sx_lru_put(c, "q3", 2, v);
    CHECK(sx_lru_get(c, "q3", 2, out));
    CHECK_NEAR(out[0], 7.0, 0);
    CHECK_EQ(sx_lru_size(c), 3);
    sx_lru_free(c);

    /* Capacity 0 stores nothing. */
    c = sx_lru_create(0, sizeof(float));
    sx_lru_put(c, "a", 1, v);
    CHECK(!sx_lru_get(c, "a", 1, out));
    sx_lru_free(c);
}

void test_lru_many_keys(void) {
    sx_lru *c = sx_lru_create(1000, sizeof(int));
    for (int i = 0; i < 5000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        sx_lru_put(c, key, strlen(key), &i);
    }
    CHECK_EQ(sx_lru_size(c), 1000);
    for (int i = 0; i < 5000; i++) {
        char key[16];
        int got = -1;
        snprintf(key, sizeof key, "k%d", i);
        int hit = sx_lru_get(c, key, strlen(key), &got);
        CHECK_EQ(hit, i >= 4000);
        if (hit) CHECK_EQ(got, i);
    }
    sx_lru_free(c);
}

void test_ratelimit_token_bucket(void) {
    sx_ratelimit *rl = sx_ratelimit_create(2.0, 3.0, 100);
    CHECK(rl);
    double t = 1000.0;
    /* A burst of 3 passes, the 4th waits half a second (rate 2/s). */
    for (int i = 0; i < 3; i++) CHECK_NEAR(sx_ratelimit_take(rl, "10.0.0.1", t), 0.0, 0);
    CHECK_NEAR(sx_ratelimit_take(rl, "10.0.0.1", t), 0.5, 1e-9);
    /* Another client has its own bucket. */
    CHECK_NEAR(sx_ratelimit_take(rl, "10.0.0.2", t), 0.0, 0);
    /* After 0.5 s one token is back. */
    CHECK_NEAR(sx_ratelimit_take(rl, "10.0.0.1", t + 0.5), 0.0, 0);
    CHECK(sx_ratelimit_take(rl, "10.0.0.1", t + 0.5) > 0);
    /* A long pause refills up to the burst only. */
    for (int i = 0; i < 3; i++) CHECK_NEAR(sx_ratelimit_take(rl, "10.0.0.1", t + 100), 0.0, 0);
    CHECK(sx_ratelimit_take(rl, "10.0.0.1", t + 100) > 0);
    sx_ratelimit_free(rl);

    /* Rate 0 disables the limiter. */
    rl = sx_ratelimit_create(0, 0, 100);
    for (int i = 0; i < 100; i++) CHECK_NEAR(sx_ratelimit_take(rl, "x", t), 0.0, 0);
    sx_ratelimit_free(rl);
}
