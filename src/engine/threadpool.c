/*
 * threadpool.c — persistent worker threads for the CPU backend.
 *
 * A job is published by bumping a generation counter; workers spin on it for
 * a short while (the next job of a decode step usually follows within
 * microseconds) and then sleep on a futex (a condition variable off Linux),
 * so an idle engine burns no CPU.  Completion is a countdown the caller
 * spins on, briefly too (it has just done its own share of the same job),
 * before it sleeps as well.  With more threads than CPUs nobody spins: a
 * spinning thread would only keep a working one off its core.
 *
 * Memory ordering: fn/arg are written before the (seq_cst, so release)
 * increment of the generation, and each worker reads them after an acquire
 * load of it; each worker's results are published by its decrement of
 * `pending`, which the caller reads with acquire.
 */
#include "threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LG_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define LG_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define LG_CPU_RELAX() ((void) 0)
#endif

/*
 * How long an idle worker spins before it sleeps, and how long the caller
 * spins waiting for the workers to finish, in nanoseconds.  The gaps
 * between the jobs of one decode step are a few microseconds; a worker that
 * finds nothing for half a millisecond is between tokens or idle.
 */
#define LG_TP_SPIN_NS		(500 * 1000)
#define LG_TP_DONE_SPIN_NS	(100 * 1000)

#define LG_TP_MAX_THREADS 512

typedef struct lg_tp_worker
{
	struct lg_threadpool *tp;
	int			ith;
	pthread_t	thread;
} lg_tp_worker;

struct lg_threadpool
{
	int			n_threads;
	int			n_started;		/* workers actually created (n_threads - 1 on success) */
	uint64_t	spin_ns;		/* LG_TP_SPIN_NS, or 0 when oversubscribed */
	uint64_t	done_spin_ns;	/* LG_TP_DONE_SPIN_NS, or 0 likewise */

	/* job description, valid while pending > 0 */
	lg_task_fn	fn;
	void	   *arg;

	/* keep the hot atomics on their own cache lines */
	_Alignas(64) atomic_uint generation;
	_Alignas(64) atomic_uint pending;	/* workers still running this job */
	atomic_int	caller_sleeping;	/* the caller waits on `pending` */
	_Alignas(64) atomic_int n_sleeping;	/* workers waiting on `generation` */
	atomic_bool stop;

#ifndef __linux__
	pthread_mutex_t mutex;
	pthread_cond_t cond;
#endif

	lg_tp_worker *workers;
};

/* Monotonic clock in nanoseconds. */
static inline uint64_t
lg_tp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

#ifdef __linux__
/* Sleep while *word == expect (the kernel checks, so no wake-up is lost). */
static void
lg_tp_futex_wait(lg_threadpool *tp, atomic_uint *word, unsigned expect)
{
	(void) tp;
	syscall(SYS_futex, (unsigned *) word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0);
}

/* Wake every thread sleeping on word. */
static void
lg_tp_futex_wake(lg_threadpool *tp, atomic_uint *word)
{
	(void) tp;
	syscall(SYS_futex, (unsigned *) word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}
#else
/* Portable stand-in: a condition variable, checked under its mutex. */
static void
lg_tp_futex_wait(lg_threadpool *tp, atomic_uint *word, unsigned expect)
{
	pthread_mutex_lock(&tp->mutex);
	if (atomic_load(word) == expect)
		pthread_cond_wait(&tp->cond, &tp->mutex);
	pthread_mutex_unlock(&tp->mutex);
}

/* Wake every waiter (of either word: they recheck). */
static void
lg_tp_futex_wake(lg_threadpool *tp, atomic_uint *word)
{
	(void) word;
	pthread_mutex_lock(&tp->mutex);
	pthread_cond_broadcast(&tp->cond);
	pthread_mutex_unlock(&tp->mutex);
}
#endif

/*
 * Wait until the generation differs from `seen` (or the pool stops).  Spins
 * first, then sleeps; the n_sleeping handshake (seq_cst on both sides) makes
 * sure a publisher that bumps the generation either sees the sleeper and
 * wakes it, or the sleeper's futex finds the generation already changed.
 */
static unsigned
lg_tp_wait_job(lg_threadpool *tp, unsigned seen)
{
	unsigned	gen;
	uint64_t	t0 = 0;
	int			i = 0;

	for (;;)
	{
		gen = atomic_load_explicit(&tp->generation, memory_order_acquire);
		if (gen != seen || atomic_load_explicit(&tp->stop, memory_order_relaxed))
			return gen;
		LG_CPU_RELAX();
		/* reading the clock costs ~20ns; do it only now and then */
		if ((++i & 255) == 0)
		{
			uint64_t	now = lg_tp_now_ns();

			if (t0 == 0)
				t0 = now;
			else if (now - t0 > tp->spin_ns)
				break;
		}
	}

	atomic_fetch_add(&tp->n_sleeping, 1);
	for (;;)
	{
		gen = atomic_load(&tp->generation);
		if (gen != seen || atomic_load(&tp->stop))
			break;
		lg_tp_futex_wait(tp, &tp->generation, seen);
	}
	atomic_fetch_sub(&tp->n_sleeping, 1);
	return gen;
}

/* Worker main loop: wait for a job, run our share, count down. */
static void *
lg_tp_worker_main(void *p)
{
	lg_tp_worker *w = (lg_tp_worker *) p;
	lg_threadpool *tp = w->tp;
	/*
	 * Generation 0 is the pool's at creation; no job can have been published
	 * before lg_threadpool_new returned, but this thread may start running
	 * only after the first one was, so it must not read the current value.
	 */
	unsigned	seen = 0;

	for (;;)
	{
		seen = lg_tp_wait_job(tp, seen);
		if (atomic_load_explicit(&tp->stop, memory_order_acquire))
			break;
		tp->fn(tp->arg, w->ith, tp->n_threads);
		/* the last one out wakes the caller if it went to sleep (seq_cst pairs) */
		if (atomic_fetch_sub(&tp->pending, 1) == 1 &&
			atomic_load(&tp->caller_sleeping))
			lg_tp_futex_wake(tp, &tp->pending);
	}
	return NULL;
}

/* Number of CPUs this process may run on. */
static int
lg_tp_online_cpus(void)
{
#ifdef CPU_COUNT
	cpu_set_t	set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
	{
		int			n = CPU_COUNT(&set);

		if (n > 0)
			return n;
	}
#endif
	{
		long		n = sysconf(_SC_NPROCESSORS_ONLN);

		return n > 0 ? (int) n : 1;
	}
}

/* Create the pool and start n_threads - 1 workers. */
lg_threadpool *
lg_threadpool_new(int n_threads, lg_error *err)
{
	lg_threadpool *tp;
	int			rc;

	if (n_threads <= 0)
		n_threads = lg_tp_online_cpus();
	if (n_threads > LG_TP_MAX_THREADS)
		n_threads = LG_TP_MAX_THREADS;

	tp = (lg_threadpool *) aligned_alloc(64, (sizeof(lg_threadpool) + 63) & ~(size_t) 63);
	if (tp == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory creating a thread pool");
		return NULL;
	}
	memset(tp, 0, sizeof(*tp));
	tp->n_threads = n_threads;
	/* more threads than CPUs: a spinning thread only keeps a working one off its core */
	if (n_threads > lg_tp_online_cpus())
	{
		tp->spin_ns = 0;
		tp->done_spin_ns = 0;
	}
	else
	{
		tp->spin_ns = LG_TP_SPIN_NS;
		tp->done_spin_ns = LG_TP_DONE_SPIN_NS;
	}
	atomic_init(&tp->generation, 0);
	atomic_init(&tp->pending, 0);
	atomic_init(&tp->caller_sleeping, 0);
	atomic_init(&tp->n_sleeping, 0);
	atomic_init(&tp->stop, false);
#ifndef __linux__
	pthread_mutex_init(&tp->mutex, NULL);
	pthread_cond_init(&tp->cond, NULL);
#endif

	tp->workers = (lg_tp_worker *) calloc((size_t) n_threads, sizeof(lg_tp_worker));
	if (tp->workers == NULL)
	{
		lg_threadpool_free(tp);
		lg_error_set(err, LG_ERR_NOMEM, "out of memory creating a thread pool");
		return NULL;
	}

	for (int i = 1; i < n_threads; i++)
	{
		lg_tp_worker *w = &tp->workers[i];

		w->tp = tp;
		w->ith = i;
		rc = pthread_create(&w->thread, NULL, lg_tp_worker_main, w);
		if (rc != 0)
		{
			lg_threadpool_free(tp);
			lg_error_set(err, rc == EAGAIN ? LG_ERR_NOMEM : LG_ERR_INTERNAL,
						 "could not start worker thread %d of %d: %s",
						 i, n_threads, strerror(rc));
			return NULL;
		}
		tp->n_started++;
	}
	return tp;
}

/* Stop and join the workers, then free the pool. */
void
lg_threadpool_free(lg_threadpool *tp)
{
	if (tp == NULL)
		return;
	if (tp->workers != NULL)
	{
		atomic_store(&tp->stop, true);
		atomic_fetch_add(&tp->generation, 1);
		lg_tp_futex_wake(tp, &tp->generation);
		for (int i = 1; i <= tp->n_started; i++)
			pthread_join(tp->workers[i].thread, NULL);
		free(tp->workers);
	}
#ifndef __linux__
	pthread_cond_destroy(&tp->cond);
	pthread_mutex_destroy(&tp->mutex);
#endif
	free(tp);
}

/* Number of threads taking part in a run, the caller included. */
int
lg_threadpool_size(const lg_threadpool *tp)
{
	return tp->n_threads;
}

/* Publish fn to the workers, run our own share as thread 0, and wait. */
void
lg_threadpool_run(lg_threadpool *tp, lg_task_fn fn, void *arg)
{
	int			nth = tp->n_threads;
	uint64_t	t0 = 0;
	unsigned	left;
	int			i = 0;

	if (nth == 1)
	{
		fn(arg, 0, 1);
		return;
	}

	tp->fn = fn;
	tp->arg = arg;
	atomic_store_explicit(&tp->pending, (unsigned) (nth - 1), memory_order_relaxed);
	/* seq_cst: pairs with the sleeper's n_sleeping increment */
	atomic_fetch_add(&tp->generation, 1);
	if (atomic_load(&tp->n_sleeping) > 0)
		lg_tp_futex_wake(tp, &tp->generation);

	fn(arg, 0, nth);

	/*
	 * Workers normally finish within microseconds of us.  If they do not,
	 * one was probably descheduled (more threads than free cores): sleep
	 * rather than spin against it for the core.
	 */
	while ((left = atomic_load_explicit(&tp->pending, memory_order_acquire)) != 0)
	{
		LG_CPU_RELAX();
		if ((++i & 255) != 0)
			continue;
		if (t0 == 0)
			t0 = lg_tp_now_ns();
		else if (lg_tp_now_ns() - t0 > tp->done_spin_ns)
		{
			atomic_store(&tp->caller_sleeping, 1);
			while ((left = atomic_load(&tp->pending)) != 0)
				lg_tp_futex_wait(tp, &tp->pending, left);
			atomic_store(&tp->caller_sleeping, 0);
			break;
		}
	}
	/* pairs with the workers' decrements: their results are visible */
	atomic_thread_fence(memory_order_acquire);
}
