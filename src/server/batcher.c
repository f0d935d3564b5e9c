/*
 * batcher.c - micro-batching of query embeddings.
 *
 * Under load, many request threads need a query embedded at the same moment.
 * Embedding them one by one runs the encoder's matrix products with one row
 * block each, which wastes most of the CPU's width; embedding them together
 * turns many small products into a few large ones. So request threads put
 * their query on a queue and sleep; a worker takes everything queued (up to
 * max_batch), embeds it in one encoder call, and wakes the requesters.
 *
 * There is no timer: a worker never waits for a batch to fill. When the
 * server is idle a query is embedded alone at once (no added latency); when
 * it is busy, queries pile up while the previous batch runs and the next
 * batch is naturally larger. That is the whole adaptive policy.
 *
 * What a requester does next with its vector (the server: search the index)
 * can ride along as a `then` callback: the worker runs the batch's callbacks
 * on the encoder's threads, spread over the cores, before it wakes the
 * requesters. Searching on the request threads instead left 50 of them
 * competing with the encoder's threads for 2 cores: each batch's parallel
 * loops stalled behind preempted threads, and the kernel's scheduling took
 * 5-9% of the CPU (perf, bench/load). With the callbacks, an embedding batch
 * and its searches run one after the other at full width, and request
 * threads are left with only parsing and writing.
 *
 * If a batch fails (it should not: the server validates queries first), each
 * of its texts is retried alone so one bad text cannot fail the others.
 *
 * Timing. Each query's wait in the queue (from sx_batcher_embed to a worker
 * taking it) and the encoder call of its batch (tokenise + encode) are
 * recorded as the stages "queue" and "encode", once per query, and the
 * batch's size once per call; the requester gets both times back for its
 * log line.
 */
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

typedef struct item {
    struct item *next;
    const char *text;
    size_t len;
    float *out;
    sx_batcher_then then;
    void *then_ctx;
    int rc;
    sx_err err;
    int done;
    double queued_at;          /* sx_now() when queued */
    sx_embed_times times;      /* OUT */
} item;

struct sx_batcher {
    sx_encoder *enc;
    sx_metrics *metrics;
    int max_batch, dim;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* workers wait for items */
    pthread_cond_t done;  /* requesters wait for results */
    item *head, *tail;
    int stop;
    int n_workers;
    pthread_t *workers;
};

/* Embeds a batch; on failure embeds each text alone to isolate the bad one. */
static void embed_batch(sx_batcher *b, item **batch, int n, const char **texts, size_t *lens,
                        float *out) {
    for (int i = 0; i < n; i++) {
        texts[i] = batch[i]->text;
        lens[i] = batch[i]->len;
    }
    double t0 = sx_now();
    sx_err err = {0};
    int rc = sx_encoder_embed(b->enc, n, texts, lens, out, &err);
    double dt = sx_now() - t0;
    for (int i = 0; i < n; i++) {
        batch[i]->times.queue = t0 - batch[i]->queued_at;
        batch[i]->times.encode = dt;
        if (b->metrics) {
            sx_metrics_stage(b->metrics, SX_STAGE_QUEUE, batch[i]->times.queue);
            sx_metrics_stage(b->metrics, SX_STAGE_ENCODE, dt);
        }
    }
    if (b->metrics) sx_metrics_embed(b->metrics, dt, n);
    if (rc == 0) {
        for (int i = 0; i < n; i++)
            memcpy(batch[i]->out, out + (size_t)i * (size_t)b->dim, (size_t)b->dim * sizeof(float));
        return;
    }
    for (int i = 0; i < n; i++)
        batch[i]->rc = n == 1 ? (batch[i]->err = err, rc)
                              : sx_encoder_embed(b->enc, 1, &texts[i], &lens[i], batch[i]->out,
                                                 &batch[i]->err);
}

static void then_one(void *ctx, int i) {
    item *it = ((item **)ctx)[i];
    if (it->rc == 0 && it->then) it->then(it->then_ctx, it->out);
}

static void *worker_main(void *arg) {
    sx_batcher *b = arg;
    item **batch = malloc((size_t)b->max_batch * sizeof *batch);
    const char **texts = malloc((size_t)b->max_batch * sizeof *texts);
    size_t *lens = malloc((size_t)b->max_batch * sizeof *lens);
    float *out = malloc((size_t)b->max_batch * (size_t)b->dim * sizeof *out);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stop) pthread_cond_wait(&b->work, &b->mu);
        if (!b->head) break; /* stopping and nothing queued */
        int n = 0;
        while (b->head && n < b->max_batch) {
            batch[n++] = b->head;
            b->head = b->head->next;
        }
        if (!b->head) b->tail = NULL;
        pthread_mutex_unlock(&b->mu);
        if (!batch || !texts || !lens || !out) {
            for (int i = 0; i < n; i++)
                batch[i]->rc = sx_err_set(&batch[i]->err, SX_ENOMEM, "out of memory");
        } else {
            embed_batch(b, batch, n, texts, lens, out);
            sx_encoder_parallel(b->enc, n, then_one, batch);
        }
        pthread_mutex_lock(&b->mu);
        for (int i = 0; i < n; i++) batch[i]->done = 1;
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    free(batch);
    free(texts);
    free(lens);
    free(out);
    return NULL;
}

int sx_batcher_create(sx_encoder *enc, int max_batch, int workers, sx_metrics *metrics,
                      sx_batcher **out, sx_err *err) {
    *out = NULL;
    sx_batcher *b = calloc(1, sizeof *b);
    if (!b) return sx_err_set(err, SX_ENOMEM, "out of memory");
    b->enc = enc;
    b->metrics = metrics;
    b->max_batch = max_batch < 1 ? 1 : max_batch;
    b->dim = sx_encoder_dim(enc);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done, NULL);
    if (workers < 1) workers = 1;
    b->workers = calloc((size_t)workers, sizeof *b->workers);
    if (!b->workers) {
        sx_batcher_free(b);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&b->workers[i], NULL, worker_main, b) != 0) {
            sx_batcher_free(b);
            return sx_err_set(err, SX_EIO, "cannot start an embedding thread");
        }
        b->n_workers++;
    }
    *out = b;
    return 0;
}

int sx_batcher_embed(sx_batcher *b, const char *text, size_t len, float *out,
                     sx_batcher_then then, void *then_ctx, sx_embed_times *times, sx_err *err) {
    item it = {.text = text, .len = len, .out = out, .then = then, .then_ctx = then_ctx,
               .queued_at = sx_now()};
    pthread_mutex_lock(&b->mu);
    if (b->tail) b->tail->next = &it;
    else b->head = &it;
    b->tail = &it;
    pthread_cond_signal(&b->work);
    while (!it.done) pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    if (times) *times = it.times;
    if (it.rc < 0 && err) *err = it.err;
    return it.rc;
}

void sx_batcher_free(sx_batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_workers; i++) pthread_join(b->workers[i], NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
    free(b->workers);
    free(b);
}
