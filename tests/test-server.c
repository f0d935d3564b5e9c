/* Tests for src/server building blocks: LRU map, rate limiter, metrics,
 * micro-batcher. */
#include "test.h"

#include "../src/server/lru.h"
#include "../src/server/ratelimit.h"
#include "../src/server/server_int.h"

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

/* Peeking takes nothing: a client is refused by peek once take emptied its
 * bucket (the failed API-key throttle in http.c). */
void test_ratelimit_peek(void) {
    sx_ratelimit *rl = sx_ratelimit_create(1.0, 3.0, 100);
    CHECK(rl);
    double t = 50.0;
    for (int i = 0; i < 10; i++) CHECK_NEAR(sx_ratelimit_peek(rl, "a", t), 0.0, 0);
    for (int i = 0; i < 3; i++) CHECK_NEAR(sx_ratelimit_take(rl, "a", t), 0.0, 0);
    CHECK_NEAR(sx_ratelimit_peek(rl, "a", t), 1.0, 1e-9);
    CHECK_NEAR(sx_ratelimit_peek(rl, "a", t + 0.25), 0.75, 1e-9);
    CHECK_NEAR(sx_ratelimit_peek(rl, "b", t), 0.0, 0);
    CHECK_NEAR(sx_ratelimit_peek(rl, "a", t + 1), 0.0, 0);
    CHECK_NEAR(sx_ratelimit_take(rl, "a", t + 1), 0.0, 0);
    CHECK(sx_ratelimit_peek(rl, "a", t + 1) > 0);
    sx_ratelimit_free(rl);
}

void test_http_policy_content_type(void) {
    CHECK(sx_http_is_json("application/json"));
    CHECK(sx_http_is_json("APPLICATION/Json"));
    CHECK(sx_http_is_json("application/json; charset=utf-8"));
    CHECK(sx_http_is_json("application/json;charset=UTF-8"));
    CHECK(sx_http_is_json(" application/json ; charset = \"utf-8\" "));
    CHECK(!sx_http_is_json(NULL));
    CHECK(!sx_http_is_json(""));
    CHECK(!sx_http_is_json("application/jsonp"));
    CHECK(!sx_http_is_json("application/json-seq"));
    CHECK(!sx_http_is_json("application/json; charset=latin1"));
    CHECK(!sx_http_is_json("application/json; boundary=x"));
    CHECK(!sx_http_is_json("application/json; charset=\"utf-8"));
    CHECK(!sx_http_is_json("text/plain"));
    CHECK(!sx_http_is_json("application/x-www-form-urlencoded"));
}

void test_http_policy_host(void) {
    const char *b = "127.0.0.1";
    CHECK(sx_http_host_ok("localhost", b, NULL));
    CHECK(sx_http_host_ok("LocalHost:8000", b, NULL));
    CHECK(sx_http_host_ok("127.0.0.1:1", b, NULL));
    CHECK(sx_http_host_ok("[::1]", b, NULL));
    CHECK(sx_http_host_ok("[::1]:8000", b, NULL));
    CHECK(sx_http_host_ok("127.0.0.2:80", "127.0.0.2", NULL));
    CHECK(sx_http_host_ok("search.internal:80", b, "a.example, search.internal"));
    CHECK(!sx_http_host_ok("search.internal.evil:80", b, "search.internal"));
    CHECK(!sx_http_host_ok("evil.example", b, NULL));
    CHECK(!sx_http_host_ok("localhost.evil.example", b, NULL));
    CHECK(!sx_http_host_ok("localhost:", b, NULL));
    CHECK(!sx_http_host_ok("localhost:80a", b, NULL));
    CHECK(!sx_http_host_ok("[::1", b, NULL));
    CHECK(!sx_http_host_ok("", b, NULL));
    CHECK(!sx_http_host_ok(":80", b, NULL));
    CHECK(sx_http_host_ok("anything.example:443", b, "a.example,*"));
}

#include "../src/server/metrics.h"

void test_metrics_render(void) {
    sx_metrics *m = sx_metrics_create();
    CHECK(m);
    sx_metrics_request(m, SX_ROUTE_SEARCH, 200, 0.004);
    sx_metrics_request(m, SX_ROUTE_SEARCH, 200, 0.020);
    sx_metrics_request(m, SX_ROUTE_SEARCH, 400, 0.0001);
    sx_metrics_request(m, SX_ROUTE_PAPER_GET, 404, 0.0002);
    sx_metrics_embed(m, 0.003, 5);
    sx_metrics_index(m, 0.0004);
    sx_metrics_cache(m, 1);
    sx_metrics_cache(m, 0);
    sx_metrics_cache(m, 0);
    sx_metrics_ratelimited(m);
    sx_metrics_gauges g = {.papers = 1234, .rss_bytes = 5678, .ready = 1, .backend = "local"};
    sx_buf out = {0};
    sx_metrics_render(m, &g, &out);
    CHECK(!out.oom);
    const char *s = out.data;
    CHECK(strstr(s, "semdex_requests_total{route=\"/search\",status=\"200\"} 2\n"));
    CHECK(strstr(s, "semdex_requests_total{route=\"/search\",status=\"400\"} 1\n"));
    CHECK(strstr(s, "semdex_requests_total{route=\"/papers/{id}\",status=\"404\"} 1\n"));
    /* Cumulative buckets: 0.0001 and 0.004 fall at or below 0.005, 0.020 above. */
    CHECK(strstr(s, "semdex_request_duration_seconds_bucket{route=\"/search\",le=\"0.005\"} 2\n"));
    CHECK(strstr(s, "semdex_request_duration_seconds_bucket{route=\"/search\",le=\"+Inf\"} 3\n"));
    CHECK(strstr(s, "semdex_request_duration_seconds_count{route=\"/search\"} 3\n"));
    CHECK(strstr(s, "semdex_embedding_duration_seconds_count 1\n"));
    CHECK(strstr(s, "semdex_embedded_queries_total 5\n"));
    CHECK(strstr(s, "semdex_query_cache_hits_total 1\n"));
    CHECK(strstr(s, "semdex_query_cache_misses_total 2\n"));
    CHECK(strstr(s, "semdex_rate_limited_total 1\n"));
    CHECK(strstr(s, "semdex_papers 1234\n"));
    CHECK(strstr(s, "# TYPE semdex_request_duration_seconds histogram\n"));
    /* Every line is a comment or "name{labels} value". */
    for (const char *line = s; *line; line = strchr(line, '\n') + 1) {
        if (*line != '#') CHECK(strncmp(line, "semdex_", 7) == 0);
        CHECK(strchr(line, '\n'));
    }
    sx_buf_free(&out);
    sx_metrics_free(m);
}

/* The series added for stages, nodes, writes, the store and the cluster. */
void test_metrics_stages_and_gauges(void) {
    sx_metrics *m = sx_metrics_create();
    CHECK(m);
    sx_metrics_stage(m, SX_STAGE_QUEUE, 0.0004);
    sx_metrics_stage(m, SX_STAGE_SEARCH, 0.003);
    sx_metrics_stage(m, SX_STAGE_SEARCH, 0.2);
    sx_metrics_embed(m, 0.01, 3);
    sx_metrics_embed(m, 0.01, 64);
    sx_metrics_node(m, "10.0.0.1:7000", 0.002);
    sx_metrics_node(m, "10.0.0.2:7000", 0.004);
    sx_metrics_node(m, "10.0.0.1:7000", 0.001);
    sx_metrics_write(m, 5, 0, 0.002, 1);
    sx_metrics_write(m, 0, 1, 0.001, 1);
    sx_metrics_write(m, 7, 0, 0.001, 0);
    sx_metrics_store_observer(m, SX_STORE_EVENT_SYNC, 0.0015);
    sx_metrics_store_observer(m, SX_STORE_EVENT_CHECKPOINT, 12.0);
    sx_metrics_store_observer(m, SX_STORE_EVENT_CHECKPOINT_FAILED, 1.0);
    sx_metrics_gauges g = {.ready = 1, .backend = "local", .papers = 10, .deleted = 2, .wal_bytes = 4096,
                           .generation = 3, .start_time = 1.5e9};
    sx_buf out = {0};
    sx_metrics_render(m, &g, &out);
    CHECK(!out.oom);
    const char *s = out.data;
    CHECK(strstr(s, "semdex_stage_duration_seconds_bucket{stage=\"queue\",le=\"0.0005\"} 1\n"));
    CHECK(strstr(s, "semdex_stage_duration_seconds_bucket{stage=\"search\",le=\"0.005\"} 1\n"));
    CHECK(strstr(s, "semdex_stage_duration_seconds_count{stage=\"search\"} 2\n"));
    CHECK(strstr(s, "semdex_stage_duration_seconds_count{stage=\"merge\"} 0\n"));
    CHECK(strstr(s, "semdex_embedding_batch_size_bucket{le=\"4\"} 1\n"));
    CHECK(strstr(s, "semdex_embedding_batch_size_bucket{le=\"64\"} 2\n"));
    CHECK(strstr(s, "semdex_embedding_batch_size_sum 67.000000000\n"));
    CHECK(strstr(s, "semdex_fanout_node_duration_seconds_count{node=\"10.0.0.1:7000\"} 2\n"));
    CHECK(strstr(s, "semdex_fanout_node_duration_seconds_count{node=\"10.0.0.2:7000\"} 1\n"));
    CHECK(strstr(s, "semdex_papers_upserted_total 5\n"));
    CHECK(strstr(s, "semdex_papers_deleted_total 1\n"));
    CHECK(strstr(s, "semdex_write_errors_total 1\n"));
    CHECK(strstr(s, "semdex_write_duration_seconds_count 3\n"));
    CHECK(strstr(s, "semdex_wal_sync_duration_seconds_bucket{le=\"0.002\"} 1\n"));
    CHECK(strstr(s, "semdex_checkpoint_duration_seconds_bucket{le=\"10\"} 0\n"));
    CHECK(strstr(s, "semdex_checkpoint_duration_seconds_bucket{le=\"30\"} 1\n"));
    CHECK(strstr(s, "semdex_checkpoints_total{result=\"ok\"} 1\n"));
    CHECK(strstr(s, "semdex_checkpoints_total{result=\"failed\"} 1\n"));
    CHECK(strstr(s, "semdex_last_checkpoint_timestamp_seconds "));
    CHECK(strstr(s, "semdex_deleted_papers 2\n"));
    CHECK(strstr(s, "semdex_wal_bytes 4096\n"));
    CHECK(strstr(s, "semdex_snapshot_generation 3\n"));
    CHECK(strstr(s, "semdex_start_time_seconds 1500000000\n"));
    CHECK(!strstr(s, "semdex_cluster_nodes"));
    sx_buf_free(&out);

    /* Cluster gauges; no local ones. Before loading, no collection figures. */
    g = (sx_metrics_gauges){.ready = 1, .backend = "cluster", .nodes = 6, .masters = 3, .nodes_down = 1,
                            .shard_keys = 16, .shard_keys_unavailable = 2};
    sx_metrics_render(m, &g, &out);
    CHECK(strstr(out.data, "semdex_cluster_nodes 6\n"));
    CHECK(strstr(out.data, "semdex_cluster_shard_keys_unavailable 2\n"));
    CHECK(!strstr(out.data, "semdex_wal_bytes"));
    sx_buf_free(&out);
    g = (sx_metrics_gauges){0};
    sx_metrics_render(m, &g, &out);
    CHECK(!strstr(out.data, "semdex_papers "));
    CHECK(strstr(out.data, "semdex_ready 0\n"));
    sx_buf_free(&out);

    /* Past 64 nodes, the rest share "other". */
    for (int i = 0; i < 70; i++) {
        char node[32];
        snprintf(node, sizeof node, "10.1.0.%d:7000", i);
        sx_metrics_node(m, node, 0.001);
    }
    sx_metrics_render(m, &g, &out);
    CHECK(strstr(out.data, "semdex_fanout_node_duration_seconds_count{node=\"other\"} 8\n"));
    CHECK(strstr(out.data, "semdex_fanout_node_duration_seconds_count{node=\"10.1.0.61:7000\"} 1\n"));
    CHECK(!strstr(out.data, "10.1.0.62:7000"));
    sx_buf_free(&out);
    sx_metrics_free(m);
}

#include <pthread.h>

/* Threads claiming node slots and observing at once: every observation is
 * counted once, each node gets one series (a ThreadSanitizer test too). */
static void *nodes_worker(void *arg) {
    sx_metrics *m = arg;
    for (int r = 0; r < 200; r++)
        for (int i = 0; i < 20; i++) {
            char node[32];
            snprintf(node, sizeof node, "10.2.0.%d:7000", i);
            sx_metrics_node(m, node, 0.001);
            sx_metrics_stage(m, SX_STAGE_SEARCH, 0.001);
        }
    return NULL;
}

void test_metrics_concurrent_nodes(void) {
    sx_metrics *m = sx_metrics_create();
    CHECK(m);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, nodes_worker, m) == 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    sx_metrics_gauges g = {0};
    sx_buf out = {0};
    sx_metrics_render(m, &g, &out);
    CHECK(!out.oom);
    for (int i = 0; i < 20; i++) {
        char want[128];
        snprintf(want, sizeof want, "semdex_fanout_node_duration_seconds_count{node=\"10.2.0.%d:7000\"} 800\n", i);
        CHECK(strstr(out.data, want));
        snprintf(want, sizeof want, "node=\"10.2.0.%d:7000\",le=\"+Inf\"", i);
        const char *first = strstr(out.data, want);
        CHECK(first && !strstr(first + 1, want)); /* one series per node */
    }
    CHECK(strstr(out.data, "semdex_stage_duration_seconds_count{stage=\"search\"} 16000\n"));
    CHECK(!strstr(out.data, "node=\"other\""));
    sx_buf_free(&out);
    sx_metrics_free(m);
}

#include "../src/server/server_int.h"

/* ---- the micro-batcher and its `then` callbacks --------------------------- */

#define BT_MODEL "models/all-MiniLM-L6-v2"
#define BT_CALLERS 12

typedef struct {
    sx_batcher *b;
    const char *text;
    size_t len;
    float out[384], seen[384];
    int rc, then_calls;
    sx_err err;
} bt_call;

/* The real model on 2 threads (NULL, with a failed check, if it cannot load). */
static sx_encoder *bt_encoder(void) {
    sx_encoder *enc = NULL;
    sx_err err = {0};
    sx_encoder_opts o = {.n_threads = 2};
    CHECK_MSG(sx_encoder_load(BT_MODEL, &o, &enc, &err) == 0, "%s", err.msg);
    return enc;
}

static void bt_then(void *ctx, const float *vec) {
    bt_call *c = ctx;
    c->then_calls++; /* one item, one callback: no other thread touches c */
    memcpy(c->seen, vec, sizeof c->seen);
}

static void *bt_caller(void *arg) {
    bt_call *c = arg;
    c->rc = sx_batcher_embed(c->b, c->text, c->len, c->out, bt_then, c, NULL, &c->err);
    return NULL;
}

/* Concurrent callers share batches; each gets its own text's embedding (the
 * same as embedding it alone) and its callback exactly once, after the
 * vector is written; a text the encoder rejects fails alone, without its
 * callback, and does not fail the others of its batch. */
void test_batcher_concurrent_then_callbacks(void) {
    sx_encoder *enc = bt_encoder();
    sx_err err = {0};
    if (!enc) return;
    sx_batcher *b = NULL;
    CHECK_MSG(sx_batcher_create(enc, 4, 1, NULL, &b, &err) == 0, "%s", err.msg);
    if (!b) {
        sx_encoder_free(enc);
        return;
    }
    static bt_call calls[BT_CALLERS];
    char texts[BT_CALLERS][64];
    pthread_t th[BT_CALLERS];
    for (int i = 0; i < BT_CALLERS; i++) {
        memset(&calls[i], 0, sizeof calls[i]);
        if (i == 5) snprintf(texts[i], sizeof texts[i], "bad \xff utf-8");
        else snprintf(texts[i], sizeof texts[i], "query %d: graph neural networks for molecules", i);
        calls[i] = (bt_call){.b = b, .text = texts[i], .len = strlen(texts[i])};
    }
    for (int i = 0; i < BT_CALLERS; i++) CHECK(pthread_create(&th[i], NULL, bt_caller, &calls[i]) == 0);
    for (int i = 0; i < BT_CALLERS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < BT_CALLERS; i++) {
        bt_call *c = &calls[i];
        if (i == 5) {
            CHECK_EQ(c->rc, SX_EINVAL);
            CHECK_EQ(c->then_calls, 0);
            CHECK(strstr(c->err.msg, "UTF-8") != NULL);
            continue;
        }
        CHECK_MSG(c->rc == 0, "caller %d: %s", i, c->err.msg);
        CHECK_EQ(c->then_calls, 1);
        CHECK(memcmp(c->seen, c->out, sizeof c->out) == 0);
        float alone[384];
        const char *t = c->text;
        CHECK(sx_encoder_embed(enc, 1, &t, &c->len, alone, &err) == 0);
        double worst = 0;
        for (int j = 0; j < 384; j++) {
            double d = fabs((double)alone[j] - c->out[j]);
            if (d > worst) worst = d;
        }
        CHECK_MSG(worst < 1e-5, "caller %d: batched embedding differs from alone by %g", i, worst);
    }
    /* Without a callback the batcher only embeds. */
    bt_call plain = {.b = b, .text = texts[0], .len = strlen(texts[0])};
    CHECK(sx_batcher_embed(b, plain.text, plain.len, plain.out, NULL, NULL, NULL, &err) == 0);
    CHECK(memcmp(plain.out, calls[0].out, sizeof plain.out) == 0);
    sx_batcher_free(b);
    sx_encoder_free(enc);
}

typedef struct {
    sx_encoder *enc;
    _Atomic int hits[1000];
} par_job;

static void par_task(void *ctx, int i) { atomic_fetch_add(&((par_job *)ctx)->hits[i], 1); }

static void *par_caller(void *arg) {
    sx_encoder_parallel(((par_job *)arg)->enc, 1000, par_task, arg);
    return NULL;
}

/* sx_encoder_parallel runs every index once, also from two threads at once
 * (one gets the pool, the other runs on its own thread). */
void test_encoder_parallel_concurrent_calls(void) {
    sx_encoder *enc = bt_encoder();
    if (!enc) return;
    static par_job jobs[2];
    pthread_t th[2];
    for (int r = 0; r < 20; r++) {
        for (int k = 0; k < 2; k++) {
            jobs[k].enc = enc;
            for (int i = 0; i < 1000; i++) atomic_store(&jobs[k].hits[i], 0);
        }
        for (int k = 0; k < 2; k++) CHECK(pthread_create(&th[k], NULL, par_caller, &jobs[k]) == 0);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < 1000; i++) CHECK_EQ(atomic_load(&jobs[k].hits[i]), 1);
    }
    sx_encoder_free(enc);
}

/* ---- routes over a test backend ---- */

/* A backend of one paper that counts its calls and can be made to fail. */
typedef struct {
    int gets, dels, infos;
    int fail; /* a code every call returns, or 0 */
} test_backend;

static int tb_search(void *impl, const float *q, const sx_search_opts *o, sx_hit *hits, int *n,
                     sx_backend_stats *st, sx_err *err) {
    *n = 0;
    return sx_err_set(err, SX_EUNSUPPORTED, "no search here");
}

static int tb_get(void *impl, const char *id, sx_doc **doc, float *vec, sx_err *err) {
    test_backend *t = impl;
    t->gets++;
    if (t->fail) return sx_err_set(err, t->fail, "the backend is down");
    if (strcmp(id, "2401.00001") != 0) return sx_err_set(err, SX_ENOTFOUND, "no paper");
    if (doc) {
        static const char *cats = "cs.LG stat.ML";
        *doc = calloc(1, sizeof **doc);
        (*doc)->id = "2401.00001";
        (*doc)->title = "A title";
        (*doc)->categories = cats;
    }
    return 0;
}

static int tb_upsert(void *impl, int n, const sx_doc *d, const float *v, sx_err *err) {
    return sx_err_set(err, SX_EUNSUPPORTED, "read-only");
}

static int tb_del(void *impl, const char *id, sx_err *err) {
    test_backend *t = impl;
    t->dels++;
    if (t->fail) return sx_err_set(err, t->fail, "the backend is down");
    return strcmp(id, "2401.00001") == 0 ? 0 : sx_err_set(err, SX_ENOTFOUND, "no paper");
}

static int tb_info(void *impl, sx_backend_info *out, int recent, sx_err *err) {
    test_backend *t = impl;
    t->infos++;
    *out = (sx_backend_info){.kind = "cluster", .count = 1, .n_shards = 4, .masters = 3, .nodes = 6};
    return 0;
}

static void tb_close(void *impl) {}

static const sx_backend_ops tb_ops = {"test", tb_search, tb_get, tb_upsert, tb_del, tb_info, NULL, tb_close};

/* Runs one request through the router and its handler. */
static int route_once(sx_srv *s, const char *method, const char *path, sx_response *res) {
    char id_buf[256];
    sx_request rq = {.method = method, .path = path, .client = "test"};
    memset(res, 0, sizeof *res);
    if (sx_route_request(s, &rq, id_buf, sizeof id_buf, res) != 0) return res->status;
    sx_handle(s, &rq, res);
    return res->status;
}

void test_routes_over_backend(void) {
    test_backend tb = {0};
    sx_srv s = {0};
    s.metrics = sx_metrics_create();
    s.backend = sx_backend_create(&tb_ops, &tb, 384);
    s.dim = 384;
    s.opts = sx_server_defaults();
    sx_response res;
    CHECK_EQ(route_once(&s, "GET", "/papers/2401.00001", &res), 200);
    sx_buf_append(&res.body, "", 1);
    CHECK(strstr(res.body.data, "\"title\":\"A title\"") != NULL);
    CHECK(strstr(res.body.data, "[\"cs.LG\",\"stat.ML\"]") != NULL);
    sx_buf_free(&res.body);
    CHECK_EQ(route_once(&s, "GET", "/papers/nope", &res), 404);
    sx_buf_free(&res.body);
    CHECK_EQ(route_once(&s, "DELETE", "/papers/2401.00001", &res), 200);
    sx_buf_free(&res.body);
    CHECK_EQ(tb.gets, 2);
    CHECK_EQ(tb.dels, 1);
    CHECK_EQ(route_once(&s, "GET", "/collections/info", &res), 200);
    sx_buf_append(&res.body, "", 1);
    CHECK(strstr(res.body.data, "\"backend\":\"cluster\"") != NULL);
    CHECK(strstr(res.body.data, "\"masters\":3") != NULL);
    sx_buf_free(&res.body);
    /* A backend that is down is a 503 the client can retry, not a 500. */
    tb.fail = SX_EBUSY;
    CHECK_EQ(route_once(&s, "GET", "/papers/2401.00001", &res), 503);
    sx_buf_free(&res.body);
    CHECK_EQ(route_once(&s, "DELETE", "/papers/2401.00001", &res), 503);
    sx_buf_free(&res.body);
    sx_backend_close(s.backend);
    sx_metrics_free(s.metrics);
}
