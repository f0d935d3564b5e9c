/*
 * pool.c - a small fork-join thread pool for the encoder's parallel loops.
 *
 * One forward pass runs a few dozen parallel loops (each GEMM, the attention
 * heads, ...), each a few microseconds to milliseconds long, so the cost that
 * matters is the hand-off: waking workers and learning that all tasks are
 * done. The caller publishes a job (function, context) and a 64-bit ticket
 * holding the job's generation (32 bits), the next task index and the task
 * count (16 bits each); every thread, the caller included, claims a task by
 * compare-and-swap on the ticket, which fails once the job is finished or
 * replaced. The claimer reads the function and context only after its claim
 * succeeded: the job cannot be replaced while one of its tasks is unfinished,
 * so a worker that wakes late can never run a task of the wrong job, or the
 * right task with the wrong context. (The count lives in the ticket for the
 * same reason: read separately, a late worker could compare an old ticket
 * with the next job's count. Found by the pool test.) The caller waits until
 * the count of finished tasks reaches the total; jobs over 65,535 tasks run
 * in rounds.
 *
 * Idle workers spin (with a pause instruction) before they sleep on a
 * condition variable, so back-to-back loops of one forward pass find them
 * awake, and an idle server costs no CPU. How long they spin depends on
 * whether the owner has said a pass is running (sx_model_pool_hold): inside
 * a pass the next loop comes within microseconds, so a worker spins up to
 * ~0.5 ms (a shorter spin let workers fall asleep behind an uneven loop, and
 * this VM's wake-ups are slow and erratic: int8 bulk on 2 threads varied
 * from 100 to 190 abstracts/s); between passes it spins only a few
 * microseconds and sleeps. In
 * the server, the time between two embedding batches is when the request
 * threads search the index and write their answers: a worker spinning
 * through it took ~10% of the CPU (perf) and lowered throughput by 10-20% on
 * 2 cores (bench/load). Past the first ~1,000 rounds a spinning thread
 * (a worker, or the caller waiting for the last task) yields the core at
 * each round instead of pausing: on an idle machine sched_yield returns at
 * once, so hand-offs stay as fast (query latency and bulk throughput
 * unchanged), but in the server the request threads searching and writing
 * answers get the core: under load int8 served 14% more requests with a
 * p99 of 39 instead of 50 ms, fp32 3% more (bench/load A/B). Dynamic
 * claiming keeps the threads busy when the machine is shared and one core
 * is slower, and a worker that yielded too long only leaves its tasks to
 * the others.
 *
 * Rejected: OpenMP (a second runtime with its own spinning policy, and not in
 * every compiler we build with), one thread per sequence for the whole pass
 * (no help for single-query latency, which is what the service feels).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "model_int.h"

#define SPIN_ROUNDS 20000 /* inside a pass: ~0.5 ms of pause instructions */
#define IDLE_SPIN_ROUNDS 200 /* between passes: a few microseconds */
#define YIELD_AFTER 1000     /* then each round yields the core to runnable threads */

struct sx_model_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t ticket; /* generation << 32 | next task << 16 | tasks */
    _Atomic int done;        /* tasks finished in this generation */
    _Atomic int sleepers;
    _Atomic int stop;
    _Atomic int held;        /* a pass is running: spin longer */
    /* The job, read only after a successful claim (atomic, relaxed: the
     * claim's compare-and-swap orders them). */
    _Atomic(sx_model_pool_fn) fn;
    _Atomic(void *) ctx;
};

#define MAX_TASKS 65535

typedef struct {
    sx_model_pool *p;
    int tid;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claims and runs tasks of generation gen until none is left. */
static void run_tasks(sx_model_pool *p, uint32_t gen, int tid) {
    for (;;) {
        uint64_t t = atomic_load(&p->ticket);
        int next = (int)((t >> 16) & 0xffff), n = (int)(t & 0xffff);
        if ((uint32_t)(t >> 32) != gen || next >= n) return;
        if (!atomic_compare_exchange_weak(&p->ticket, &t, t + (1u << 16))) continue;
        sx_model_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
        fn(ctx, next, next + 1, tid);
        atomic_fetch_add(&p->done, 1);
    }
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    sx_model_pool *p = wa->p;
    int tid = wa->tid;
    free(wa);
    uint32_t seen = (uint32_t)(atomic_load(&p->ticket) >> 32);
    for (;;) {
        uint32_t gen = seen;
        for (int i = 0;; i++) {
            int held = atomic_load_explicit(&p->held, memory_order_relaxed);
            if (i >= (held ? SPIN_ROUNDS : IDLE_SPIN_ROUNDS)) break;
            gen = (uint32_t)(atomic_load(&p->ticket) >> 32);
            if (gen != seen || atomic_load(&p->stop)) break;
            if (i < YIELD_AFTER) cpu_relax();
            else sched_yield();
        }
        if (gen == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((gen = (uint32_t)(atomic_load(&p->ticket) >> 32)) == seen &&
                   !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = gen;
        run_tasks(p, gen, tid);
    }
}

int sx_model_pool_create(int n_threads, sx_model_pool **out, sx_err *err) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    sx_model_pool *p = calloc(1, sizeof *p);
    if (!p) return sx_err_set(err, SX_ENOMEM, "out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        sx_model_pool_free(p);
        return sx_err_set(err, SX_ENOMEM, "out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) wa->p = p, wa->tid = i;
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = i; /* join the ones started */
            sx_model_pool_free(p);
            return sx_err_set(err, SX_ENOMEM, "cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return 0;
}

void sx_model_pool_free(sx_model_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        if (p->threads) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int sx_model_pool_threads(const sx_model_pool *p) { return p ? p->n_threads : 1; }

void sx_model_pool_hold(sx_model_pool *p, int on) {
    if (p) atomic_store_explicit(&p->held, on, memory_order_relaxed);
}

/* Tasks [first, first + n) as one job; n <= MAX_TASKS. */
typedef struct {
    sx_model_pool_fn fn;
    void *ctx;
    int first;
} offset_job;

static void offset_fn(void *ctx, int begin, int end, int tid) {
    offset_job *j = ctx;
    j->fn(j->ctx, j->first + begin, j->first + end, tid);
}

void sx_model_pool_run(sx_model_pool *p, int n, sx_model_pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->n_threads == 1 || n == 1) {
        for (int i = 0; i < n; i++) fn(ctx, i, i + 1, 0);
        return;
    }
    if (n > MAX_TASKS) {
        for (int first = 0; first < n; first += MAX_TASKS) {
            offset_job j = {fn, ctx, first};
            sx_model_pool_run(p, n - first < MAX_TASKS ? n - first : MAX_TASKS, offset_fn, &j);
        }
        return;
    }
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    atomic_store(&p->done, 0);
    uint32_t gen = (uint32_t)(atomic_load(&p->ticket) >> 32) + 1;
    atomic_store(&p->ticket, (uint64_t)gen << 32 | (uint64_t)n);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, gen, 0);
    /* A worker may hold the last task; on a busy machine it may even be
     * descheduled, so after a short spin give the core away. */
    for (int spins = 0; atomic_load(&p->done) < n; spins++) {
        if (spins < YIELD_AFTER) cpu_relax();
        else sched_yield();
    }
}
