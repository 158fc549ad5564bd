/*
 * triad.c — STREAM-style triad, a[i] = b[i] + s * c[i] on doubles, for
 * scripts/bench-cpu.sh: the memory bandwidth that bounds generation speed.
 *
 * usage: triad [THREADS=2] [MiB per array=256] [iterations=10]
 * Each thread first-touches and then works on its own contiguous slice; a
 * barrier separates iterations.  Bytes per iteration are counted the STREAM
 * way (3 arrays x 8 bytes x N: two reads and one write, write-allocate not
 * counted).  Prints the best iteration's GB/s (10^9 bytes/s), as STREAM does,
 * and the median, on one line of JSON.
 *
 * build: cc -O2 -march=native -pthread triad.c -o triad
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct
{
	double	   *a, *b, *c;
	size_t		lo, hi;
	int			iters;
	pthread_barrier_t *bar;
	double	   *times;			/* filled by thread 0 */
} job;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
worker(void *arg)
{
	job		   *j = arg;
	const double s = 3.0;

	for (size_t i = j->lo; i < j->hi; i++)
	{
		j->a[i] = 0.0;
		j->b[i] = 1.0;
		j->c[i] = 2.0;
	}
	for (int it = 0; it < j->iters; it++)
	{
		double		t0 = 0;

		pthread_barrier_wait(j->bar);
		if (j->times)
			t0 = now_s();
		for (size_t i = j->lo; i < j->hi; i++)
			j->a[i] = j->b[i] + s * j->c[i];
		pthread_barrier_wait(j->bar);
		if (j->times)
			j->times[it] = now_s() - t0;
	}
	return NULL;
}

static int
cmp_double(const void *x, const void *y)
{
	double		a = *(const double *) x, b = *(const double *) y;

	return (a > b) - (a < b);
}

int
main(int argc, char **argv)
{
	int			nt = argc > 1 ? atoi(argv[1]) : 2;
	size_t		mib = argc > 2 ? (size_t) atol(argv[2]) : 256;
	int			iters = argc > 3 ? atoi(argv[3]) : 10;
	size_t		n = mib * 1024 * 1024 / sizeof(double);
	double	   *a = aligned_alloc(64, n * sizeof(double));
	double	   *b = aligned_alloc(64, n * sizeof(double));
	double	   *c = aligned_alloc(64, n * sizeof(double));
	double	   *times = calloc(iters, sizeof(double));
	pthread_t  *th = calloc(nt, sizeof(pthread_t));
	job		   *jobs = calloc(nt, sizeof(job));
	pthread_barrier_t bar;
	double		check = 0;

	if (nt < 1 || iters < 1 || !a || !b || !c || !times || !th || !jobs)
	{
		fprintf(stderr, "triad: bad arguments or out of memory\n");
		return 1;
	}
	pthread_barrier_init(&bar, NULL, nt);
	for (int t = 0; t < nt; t++)
	{
		jobs[t] = (job) {a, b, c, n * t / nt, n * (t + 1) / nt, iters, &bar, t == 0 ? times : NULL};
		pthread_create(&th[t], NULL, worker, &jobs[t]);
	}
	for (int t = 0; t < nt; t++)
		pthread_join(th[t], NULL);
	for (size_t i = 0; i < n; i += 4096)
		check += a[i];
	if (check != 7.0 * ((n + 4095) / 4096))
	{
		fprintf(stderr, "triad: wrong result\n");
		return 1;
	}
	/* the first iteration is a warm-up */
	qsort(times + 1, iters - 1, sizeof(double), cmp_double);
	{
		double		bytes = 3.0 * sizeof(double) * n;
		double		best = iters > 1 ? times[1] : times[0];
		double		med = iters > 1 ? times[1 + (iters - 1) / 2] : times[0];

		printf("{\"threads\":%d,\"array_mib\":%zu,\"iterations\":%d,\"best_gbs\":%.2f,\"median_gbs\":%.2f}\n",
			   nt, mib, iters, bytes / best / 1e9, bytes / med / 1e9);
	}
	return 0;
}
