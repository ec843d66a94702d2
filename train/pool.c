/* SPDX-License-Identifier: MIT */
/*
 * pool.c — the GPT's worker threads: a fixed team that runs the tasks of
 * one loop at a time, each task handed to whichever thread asks next.
 *
 * Why not OpenMP's team: libgomp's idle threads spin for milliseconds
 * before they sleep, and on a machine shared with other processes (this
 * bench's usual home) a spinning thread holds the core that a preempted
 * team mate needs to reach the join, so each of the step's ~50 loops could
 * cost a scheduler time slice: measured 1.7k instead of 15k tokens/s with
 * one busy process beside a 2-thread run. These workers spin only briefly
 * (AGT_POOL_SPIN polls), then sleep on a condition variable.
 *
 * Results never depend on the team size: every loop run here writes each
 * output element from one task, whichever thread runs it.
 */
#include "train.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define AGT_POOL_SPIN 4000

struct agt_pool {
    int nthreads;                 /* the caller included */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    int sleepers;                 /* workers waiting on wake (under mu) */
    int waiting;                  /* the caller waits on done (under mu) */
    /* the job of generation gen */
    void (*fn)(void *, int);
    void *ctx;
    int ntasks;
    atomic_int next;              /* next task to hand out */
    atomic_int pending;           /* workers not yet through the job */
    atomic_uint gen;
    atomic_int stop;
};

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void work(agt_pool *p)
{
    for (;;) {
        const int t = atomic_fetch_add_explicit(&p->next, 1,
                                                memory_order_relaxed);
        if (t >= p->ntasks)
            return;
        p->fn(p->ctx, t);
    }
}

static void *worker(void *arg)
{
    agt_pool *p = arg;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; i < AGT_POOL_SPIN && g == seen; i++) {
            relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) ==
                       seen &&
                   !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        work(p);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) ==
            1) {
            pthread_mutex_lock(&p->mu);
            if (p->waiting)
                pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int agt_pool_create(agt_pool **out, int threads, agt_err *err)
{
    *out = NULL;
    const int n = threads > 0 ? threads : omp_get_max_threads();
    if (n < 1 || n > 1024)
        return agt_fail(err, "thread count %d out of range 1..1024", n);
    agt_pool *p = calloc(1, sizeof *p);
    if (!p || (n > 1 && !(p->tid = calloc((size_t)n - 1, sizeof *p->tid)))) {
        free(p);
        return agt_fail(err, "out of memory (thread pool)");
    }
    p->nthreads = n;
    atomic_init(&p->next, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->gen, 0u);
    atomic_init(&p->stop, 0);
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p->tid);
        free(p);
        return agt_fail(err, "cannot create the thread pool's lock");
    }
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < n - 1; i++)
        if (pthread_create(&p->tid[i], NULL, worker, p)) {
            p->nthreads = i + 1; /* the workers started so far */
            agt_pool_free(p);
            return agt_fail(err, "cannot start worker thread %d of %d", i + 1,
                            n - 1);
        }
    *out = p;
    return 0;
}

void agt_pool_free(agt_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads - 1; i++)
        pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->tid);
    free(p);
}

int agt_pool_threads(const agt_pool *p)
{
    return p ? p->nthreads : 1;
}

void agt_pool_run(agt_pool *p, int ntasks, void (*fn)(void *, int),
                  void *ctx)
{
    if (!p || p->nthreads == 1 || ntasks <= 1) {
        for (int t = 0; t < ntasks; t++)
            fn(ctx, t);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1u, memory_order_release);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    work(p);
    for (int i = 0; i < AGT_POOL_SPIN; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        relax();
    }
    pthread_mutex_lock(&p->mu);
    p->waiting = 1;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    p->waiting = 0;
    pthread_mutex_unlock(&p->mu);
}
