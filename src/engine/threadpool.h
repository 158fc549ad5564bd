/*
 * threadpool.h — a persistent pool of worker threads for the CPU backend.
 *
 * Workers are created once and spin briefly, then sleep, between jobs, so a
 * decode step pays no thread creation.  The calling thread takes part as
 * thread 0; lg_threadpool_run returns when every thread has finished.
 */
#ifndef LG_THREADPOOL_H
#define LG_THREADPOOL_H

#include "lg_error.h"

typedef struct lg_threadpool lg_threadpool;

typedef void (*lg_task_fn) (void *arg, int ith, int nth);

/* n_threads <= 0 means the number of online CPUs. */
lg_threadpool *lg_threadpool_new(int n_threads, lg_error *err);
void		lg_threadpool_free(lg_threadpool *tp);
int			lg_threadpool_size(const lg_threadpool *tp);
/* Run fn(arg, ith, nth) for ith = 0..nth-1 in parallel and wait. */
void		lg_threadpool_run(lg_threadpool *tp, lg_task_fn fn, void *arg);

#endif							/* LG_THREADPOOL_H */
