/*
 * pool.c - a fixed set of worker threads running parallel loops (and the
 * project's writer-preferring reader-writer lock initialiser).
 *
 * sx_pool_run(pool, n, fn, ctx) runs fn(ctx, 0..n-1) and returns when all
 * calls are done. The calling thread works on its own loop too, so a pool of
 * W workers gives W+1-way parallelism and a loop never waits for a worker
 * that is busy elsewhere: in the worst case the caller runs every iteration
 * itself. Several threads may call sx_pool_run at once (the server fans each
 * search out over the shards from many request threads); their loops queue
 * and the workers take iterations from the oldest loop with work left.
 *
 * Iterations are handed out one at a time under the pool's mutex. That is
 * fine for what it runs (shard searches, encoder batches: tens of
 * microseconds and up); a loop of tiny iterations should chunk them itself.
 */
#include "sx.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    struct job *next;
    void (*fn)(void *ctx, int i);
    void *ctx;
    int n, next_i, done;
    pthread_cond_t finished;
} job;

struct sx_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;
    job *head, *tail;
    int stopping;
    int n_threads;
    pthread_t *threads;
};

/* Takes the next iteration of the oldest job with work left, unlinking jobs
 * whose iterations are all handed out. Called with the mutex held. */
static job *take(sx_pool *p, int *i) {
    while (p->head && p->head->next_i >= p->head->n) {
        p->head = p->head->next;
        if (!p->head) p->tail = NULL;
    }
    if (!p->head) return NULL;
    job *j = p->head;
    *i = j->next_i++;
    return j;
}

/* Runs iteration i of j outside the lock and records its completion. */
static void run_one(sx_pool *p, job *j, int i) {
    pthread_mutex_unlock(&p->mu);
    j->fn(j->ctx, i);
    pthread_mutex_lock(&p->mu);
    if (++j->done == j->n) pthread_cond_signal(&j->finished);
}

static void *worker(void *arg) {
    sx_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int i;
        job *j = take(p, &i);
        if (j) {
            run_one(p, j, i);
            continue;
        }
        if (p->stopping) break;
        pthread_cond_wait(&p->work, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int sx_pool_create(int n_threads, sx_pool **out, sx_err *err) {
    *out = NULL;
    sx_pool *p = calloc(1, sizeof *p);
    if (!p) return sx_err_set(err, SX_ENOMEM, "thread pool: out of memory");
    if (n_threads < 0) n_threads = 0;
    p->threads = calloc((size_t)n_threads + 1, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return sx_err_set(err, SX_ENOMEM, "thread pool: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            p->n_threads = i;
            sx_pool_free(p);
            return sx_err_set(err, SX_EIO, "thread pool: cannot start thread %d", i);
        }
    }
    p->n_threads = n_threads;
    *out = p;
    return 0;
}

int sx_pool_threads(const sx_pool *p) { return p ? p->n_threads + 1 : 1; }

void sx_pool_run(sx_pool *p, int n, void (*fn)(void *ctx, int i), void *ctx) {
    if (n <= 0) return;
    if (!p || p->n_threads == 0 || n == 1) {
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    job j = {.fn = fn, .ctx = ctx, .n = n};
    pthread_cond_init(&j.finished, NULL);
    pthread_mutex_lock(&p->mu);
    if (p->tail) p->tail->next = &j;
    else p->head = &j;
    p->tail = &j;
    pthread_cond_broadcast(&p->work);
    /* Work on our own loop until its iterations are all handed out. */
    while (j.next_i < j.n) run_one(p, &j, j.next_i++);
    while (j.done < j.n) pthread_cond_wait(&j.finished, &p->mu);
    /* Make sure the finished job is no longer linked. */
    job **pp = &p->head;
    job *prev = NULL;
    while (*pp && *pp != &j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = j.next;
        if (p->tail == &j) p->tail = prev;
    }
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&j.finished);
}

void sx_pool_free(sx_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    free(p->threads);
    free(p);
}

void sx_rwlock_init(pthread_rwlock_t *lock) {
#if defined(__GLIBC__)
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(lock, &a);
    pthread_rwlockattr_destroy(&a);
#else
    pthread_rwlock_init(lock, NULL);
#endif
}
