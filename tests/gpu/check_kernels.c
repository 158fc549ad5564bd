/*
 * check_kernels.c — every GPU kernel against the CPU backend.
 *
 * For each entry of kernels/lg_kernels.h: random inputs (fixed seed), the
 * GPU entry, the CPU backend's operation (the scalar reference kernels,
 * lg_backend_cpu_new(1, 1)) or the CPU sampler on the same inputs, and the
 * normalised error
 *
 *     err = max |gpu - cpu| / max |cpu|
 *
 * against a bound stated per case (table `bound_*` below).  One line per
 * case:
 *
 *     PASS matmul q4_0 k=512,m=97,n=7,mmv err=1.2e-03 bound=3.0e-02
 *
 * and a summary; the exit status is 1 if any case failed.  Without a GPU
 * (no driver, no device) it prints "SKIP: no GPU (reason)" and exits 0, so
 * CI machines stay green.
 *
 *   check_kernels            all checks
 *   check_kernels --bench    D2D bandwidth, matmul GB/s at decode shapes,
 *                            F16 GEMM TFLOP/s (lines starting "BENCH")
 *   check_kernels --device N use device N (default 0)
 *   check_kernels --quick    fewer attention and sampling shapes (the host
 *                            emulator, tests/gpu_emu, runs a block per core)
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "lg_types.h"
#include "sampler.h"
#include "lg_kernels.h"

/*
 * Bounds on the normalised error.  Matmul: F32 weights are exact products
 * summed in another order; F16/BF16 weights differ by the CPU rounding the
 * activations to the weight type; quantized ones by the CPU quantizing the
 * activations to Q8 (the GPU may not).  Attention with F16 KV: the CPU
 * rounds q to F16.  Elementwise ops compute the same float expression.
 *
 * What the CPU's own rounding costs, measured on the host against the exact
 * product of its dequantized weights and unrounded activations (the error a
 * GPU kernel that keeps activations in float32 shows), at these shapes:
 * F32 6e-8, F16 2.3e-4, BF16 1.7e-3, quantized types 2e-3 .. 5.7e-3;
 * attention 1.5e-4 (F16 KV), 4e-7 (F32 KV).  Each bound leaves 2x or more.
 */
static const double bound_f32 = 1e-5;

/* --quick: half the attention cases, 8 sampled rows per set instead of 32 */
static bool quick;
static const double bound_f16 = 1e-3;
static const double bound_bf16 = 4e-3;	/* the CPU's bf16 activations keep 8 bits */
static const double bound_quant = 3e-2;
static const double bound_attn_f16 = 1e-3;
static const double bound_attn_f32 = 1e-5;
static const double bound_elem = 1e-6;
static const double bound_rope = 1e-5;	/* sin/cos of angles up to ~2000 rad: ulps of those */
static const double bound_out_f16 = 1e-3;	/* F16 output: half an ulp is 2^-11 of the value */
static const double bound_out_bf16 = 8e-3;	/* BF16 output: 2^-8 */

static int	n_pass;
static int	n_fail;
static lg_backend *cpu;
static lg_gpu_stream stream;
static lg_gpu_blas blas;

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x1234abcd5678ef01ULL;

/* splitmix64: the inputs' random stream (fixed seed, same on every run). */
static uint64_t
rnd_u64(void)
{
	uint64_t	z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static float
rnd_f(float lo, float hi)
{
	return lo + (hi - lo) * (float) ((rnd_u64() >> 40) * 0x1.0p-24);
}

/* x[0..n) uniform in [lo, hi). */
static void
fill(float *x, int64_t n, float lo, float hi)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = rnd_f(lo, hi);
}

/* malloc that ends the run on failure (a test harness, not the engine). */
static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "FATAL: out of host memory (%zu bytes)\n", n);
		exit(2);
	}
	return p;
}

/* One result line. */
static bool
report(const char *op, const char *type, const char *shape, double err, double bound)
{
	bool		ok = err <= bound;	/* NaN fails */

	printf("%s %s %s %s err=%.3e bound=%.1e\n", ok ? "PASS" : "FAIL", op, type, shape, err, bound);
	fflush(stdout);
	if (ok)
		n_pass++;
	else
		n_fail++;
	return ok;
}

/* A GPU call failed: the case fails with the entry's message. */
static void
report_gpu_error(const char *op, const char *type, const char *shape, lg_gpu_status st)
{
	printf("FAIL %s %s %s error %d: %s\n", op, type, shape, (int) st, lg_gpu_last_error());
	fflush(stdout);
	n_fail++;
}

/* max|a-b| / max|b|; NaN anywhere gives NaN (a failure). */
static double
norm_err(const float *a, const float *b, int64_t n)
{
	double		md = 0.0,
				mb = 0.0;

	for (int64_t i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - (double) b[i]);

		if (isnan(a[i]) || isnan(b[i]))
			return NAN;
		if (d > md)
			md = d;
		if (fabs((double) b[i]) > mb)
			mb = fabs((double) b[i]);
	}
	return mb > 0.0 ? md / mb : md;
}

/* Device copy of host data (synchronous); NULL after reporting on failure. */
static void *
upload(const void *host, size_t bytes, lg_gpu_status *st)
{
	void	   *d = NULL;

	if ((*st = lg_gpu_malloc(&d, bytes)) != LG_GPU_OK)
		return NULL;
	if ((*st = lg_gpu_copy_h2d(d, host, bytes, stream)) != LG_GPU_OK ||
		(*st = lg_gpu_stream_sync(stream)) != LG_GPU_OK)
	{
		lg_gpu_free(d);
		return NULL;
	}
	return d;
}

/* Device memory filled with a NaN pattern (0xff bytes), so an unwritten output fails. */
static void *
alloc_poisoned(size_t bytes, lg_gpu_status *st)
{
	void	   *d = NULL;

	if ((*st = lg_gpu_malloc(&d, bytes)) != LG_GPU_OK)
		return NULL;
	if ((*st = lg_gpu_memset_async(d, 0xff, bytes, stream)) != LG_GPU_OK)
	{
		lg_gpu_free(d);
		return NULL;
	}
	return d;
}

/* Copy back after the stream finished its work (the kernel's errors surface here). */
static lg_gpu_status
download(void *host, const void *dev, size_t bytes)
{
	lg_gpu_status st = lg_gpu_stream_sync(stream);

	if (st == LG_GPU_OK)
		st = lg_gpu_copy_d2h(host, dev, bytes, stream);
	if (st == LG_GPU_OK)
		st = lg_gpu_stream_sync(stream);
	return st;
}

/* A weight matrix of m rows of k values, as random floats quantized to type. */
static void *
make_weights(lg_type type, int64_t k, int64_t m, size_t *bytes)
{
	size_t		rb = lg_row_size(type, k);
	char	   *w = xmalloc(rb * (size_t) m);
	float	   *row = xmalloc((size_t) k * sizeof(float));

	for (int64_t r = 0; r < m; r++)
	{
		fill(row, k, -1.0f, 1.0f);
		if (!lg_quantize_row(type, row, w + rb * (size_t) r, k))
		{
			fprintf(stderr, "FATAL: cannot quantize to %s\n", lg_type_get(type)->name);
			exit(2);
		}
	}
	free(row);
	*bytes = rb * (size_t) m;
	return w;
}

/* The matmul bound of a weight type (see the bounds above). */
static double
matmul_bound(lg_type t)
{
	if (t == LG_TYPE_F32)
		return bound_f32;
	if (t == LG_TYPE_F16)
		return bound_f16;
	if (t == LG_TYPE_BF16)
		return bound_bf16;
	return bound_quant;
}

static const lg_type all_types[] = {
	LG_TYPE_F32, LG_TYPE_F16, LG_TYPE_BF16, LG_TYPE_Q4_0, LG_TYPE_Q4_1, LG_TYPE_Q5_0,
	LG_TYPE_Q5_1, LG_TYPE_Q8_0, LG_TYPE_Q2_K, LG_TYPE_Q3_K, LG_TYPE_Q4_K, LG_TYPE_Q5_K,
	LG_TYPE_Q6_K,
};
#define N_TYPES ((int) (sizeof(all_types) / sizeof(all_types[0])))

/* ---- runtime and graphs -------------------------------------------------- */

/* The OOM message names sizes; an absurd allocation must fail with it. */
static void
check_runtime(void)
{
	void	   *p = NULL;
	lg_gpu_status st = lg_gpu_malloc(&p, (size_t) 1 << 52);
	bool		ok = st == LG_GPU_ERR_NOMEM && p == NULL &&
		strstr(lg_gpu_last_error(), "out of device memory: asked for") != NULL &&
		strstr(lg_gpu_last_error(), "MiB free of") != NULL;

	printf("%s runtime oom - malloc(4 PiB) -> status %d \"%s\"\n", ok ? "PASS" : "FAIL", (int) st,
		   lg_gpu_last_error());
	ok ? n_pass++ : n_fail++;
	lg_gpu_free(p);
}

/*
 * Capture y += x, launch it as a graph twice (instantiate, then update in
 * place), then a different topology (two adds: re-instantiated); y must
 * have every add applied.
 */
static void
check_graph(void)
{
	const int64_t n = 1000;
	float	   *x = xmalloc(n * sizeof(float)),
			   *y = xmalloc(n * sizeof(float)),
			   *ref = xmalloc(n * sizeof(float)),
			   *out = xmalloc(n * sizeof(float));
	lg_gpu_status st = LG_GPU_OK;
	float	   *dx = NULL,
			   *dy = NULL;
	lg_gpu_graph g = NULL;
	bool		upd[3] = {true, false, true};
	int			adds = 0;

	fill(x, n, -1, 1);
	fill(y, n, -1, 1);
	if ((dx = upload(x, n * sizeof(float), &st)) == NULL || (dy = upload(y, n * sizeof(float), &st)) == NULL)
		goto fail;
	for (int round = 0; round < 3; round++)
	{
		if ((st = lg_gpu_graph_begin(stream)) != LG_GPU_OK)
			goto fail;
		for (int j = 0; j < (round == 2 ? 2 : 1); j++, adds++)
			if ((st = lg_gpu_add(stream, dy, dx, n)) != LG_GPU_OK)
			{
				bool		dummy;

				(void) lg_gpu_graph_end_launch(&g, stream, &dummy);
				goto fail;
			}
		if ((st = lg_gpu_graph_end_launch(&g, stream, &upd[round])) != LG_GPU_OK)
			goto fail;
	}
	if ((st = download(out, dy, n * sizeof(float))) != LG_GPU_OK)
		goto fail;
	for (int64_t i = 0; i < n; i++)
	{
		ref[i] = y[i];
		for (int j = 0; j < adds; j++)
			ref[i] += x[i];
	}
	report("graph", "f32", upd[0] || !upd[1] || upd[2] ? "update-flags-WRONG" : "instantiate,update,reinstantiate",
		   (upd[0] || !upd[1] || upd[2]) ? INFINITY : norm_err(out, ref, n), bound_elem);
	goto done;
fail:
	report_gpu_error("graph", "f32", "-", st);
done:
	lg_gpu_graph_destroy(g);
	lg_gpu_free(dx);
	lg_gpu_free(dy);
	free(x);
	free(y);
	free(ref);
	free(out);
}

/* ---- matmul, get_rows, dequantize -------------------------------------- */

/*
 * y = x · wᵀ with w dequantized as the CPU does and the sums in double: the
 * truth the GPU's own kernels must hold to 1e-5 (they keep x in float).
 * The CPU backend's result (ref) differs from it by the CPU's rounding of
 * x, which the looser per-type bounds allow; this second comparison catches
 * what those would let through, such as one wrong scale in one sub-block.
 */
static void
exact_matmul(lg_type type, const void *w, int64_t k, int64_t m, const float *x, int64_t n, float *y)
{
	float	   *row = xmalloc((size_t) k * sizeof(float));
	size_t		rb = lg_row_size(type, k);

	for (int64_t j = 0; j < m; j++)
	{
		lg_dequantize_row(type, (const char *) w + j * rb, row, k);
		for (int64_t i = 0; i < n; i++)
		{
			double		sum = 0;

			for (int64_t c = 0; c < k; c++)
				sum += (double) row[c] * x[i * k + c];
			y[i * m + j] = (float) sum;
		}
	}
	free(row);
}

/*
 * The bound against exact_matmul: the own kernels 1e-5; cuBLAS multiplies
 * x rounded to F16 (BF16 for BF16 weights) and quantized weights
 * dequantized to F16, so 2e-3 (1e-2 for BF16), F32 1e-5.
 */
static double
exact_bound(lg_type type, bool blas_path)
{
	if (!blas_path || type == LG_TYPE_F32)
		return 1e-5;
	return type == LG_TYPE_BF16 ? 1e-2 : 2e-3;
}

/* One matmul case; use_blas false forces the own kernels for large n. */
static void
check_matmul_case(lg_type type, int64_t k, int64_t m, int64_t n, bool use_blas)
{
	char		shape[96];
	size_t		wbytes;
	void	   *w = make_weights(type, k, m, &wbytes);
	float	   *x = xmalloc((size_t) (n * k) * sizeof(float));
	float	   *y = xmalloc((size_t) (n * m) * sizeof(float));
	float	   *ref = xmalloc((size_t) (n * m) * sizeof(float));
	lg_tensor	t = {.name = "w", .type = type, .ne = {k, m, 1, 1}, .row_bytes = lg_row_size(type, k), .data = w};
	size_t		sbytes = lg_gpu_matmul_scratch_bytes(type, k, m, n);
	lg_gpu_status st = LG_GPU_OK;
	void	   *dw = NULL,
			   *dscr = NULL;
	float	   *dx = NULL,
			   *dy = NULL;
	const char *path = n <= 8 ? "mmv" : (use_blas && n >= 32 ? "blas" : "gemm");
	lg_status	cst;

	snprintf(shape, sizeof(shape), "k=%lld,m=%lld,n=%lld,%s", (long long) k, (long long) m, (long long) n, path);
	fill(x, n * k, -1, 1);
	cst = cpu->matmul(cpu, ref, &t, x, n);
	if (cst != LG_OK)
	{
		printf("FAIL matmul %s %s cpu backend status %d\n", lg_type_get(type)->name, shape, (int) cst);
		n_fail++;
		goto done;
	}
	if ((dw = upload(w, wbytes, &st)) == NULL ||
		(dx = upload(x, (size_t) (n * k) * sizeof(float), &st)) == NULL ||
		(dy = alloc_poisoned((size_t) (n * m) * sizeof(float), &st)) == NULL ||
		(sbytes > 0 && (st = lg_gpu_malloc(&dscr, sbytes)) != LG_GPU_OK) ||
		(st = lg_gpu_matmul(stream, use_blas ? blas : NULL, dy, dw, type, k, m, dx, n, dscr, sbytes)) != LG_GPU_OK ||
		(st = download(y, dy, (size_t) (n * m) * sizeof(float))) != LG_GPU_OK)
	{
		report_gpu_error("matmul", lg_type_get(type)->name, shape, st);
		goto done;
	}
	report("matmul", lg_type_get(type)->name, shape, norm_err(y, ref, n * m), matmul_bound(type));
	exact_matmul(type, w, k, m, x, n, ref);
	report("matmul-exact", lg_type_get(type)->name, shape, norm_err(y, ref, n * m),
		   exact_bound(type, strcmp(path, "blas") == 0));
done:
	lg_gpu_free(dw);
	lg_gpu_free(dx);
	lg_gpu_free(dy);
	lg_gpu_free(dscr);
	free(w);
	free(x);
	free(y);
	free(ref);
}

/* Every type the GPU takes, at every n that picks another kernel; odd m. */
static void
check_matmul(void)
{
	static const int64_t ns[] = {1, 2, 7, 8, 9, 33, 128, 512};

	for (int ti = 0; ti < N_TYPES; ti++)
	{
		lg_type		type = all_types[ti];

		if (!lg_gpu_type_supported(type))
		{
			printf("SKIP matmul %s: lg_gpu_type_supported says no\n", lg_type_get(type)->name);
			continue;
		}
		for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
		{
			check_matmul_case(type, 512, 97, ns[i], true);
			if (ns[i] >= 32)
				check_matmul_case(type, 512, 97, ns[i], false);
		}
		/* long rows: a decode product with a 4096-wide (and a 11008-wide) input */
		check_matmul_case(type, 4096, 33, 1, true);
		check_matmul_case(type, 11008, 17, 3, true);
	}
}

/* Embedding lookup: dequantization is exact on both sides. */
static void
check_get_rows(void)
{
	for (int ti = 0; ti < N_TYPES; ti++)
	{
		lg_type		type = all_types[ti];
		const int64_t d = 512,
					n_rows = 61,
					n = 9;
		size_t		wbytes;
		void	   *emb;
		int32_t		ids[9];
		float	   *y = xmalloc(n * d * sizeof(float)),
				   *ref = xmalloc(n * d * sizeof(float));
		lg_tensor	t;
		void	   *demb = NULL;
		int32_t    *dids = NULL;
		float	   *dy = NULL;
		lg_gpu_status st = LG_GPU_OK;
		char		shape[64];

		if (!lg_gpu_type_supported(type))
		{
			free(y);
			free(ref);
			continue;
		}
		emb = make_weights(type, d, n_rows, &wbytes);
		for (int i = 0; i < n; i++)
			ids[i] = (int32_t) (rnd_u64() % n_rows);
		ids[0] = 0;
		ids[1] = (int32_t) n_rows - 1;
		t = (lg_tensor) {.name = "emb", .type = type, .ne = {d, n_rows, 1, 1}, .row_bytes = lg_row_size(type, d), .data = emb};
		snprintf(shape, sizeof(shape), "d=%lld,rows=%lld,n=%lld", (long long) d, (long long) n_rows, (long long) n);
		if (cpu->get_rows(cpu, ref, &t, ids, n) != LG_OK)
		{
			printf("FAIL get_rows %s cpu backend failed\n", lg_type_get(type)->name);
			n_fail++;
		}
		else if ((demb = upload(emb, wbytes, &st)) == NULL ||
				 (dids = upload(ids, sizeof(ids), &st)) == NULL ||
				 (dy = alloc_poisoned(n * d * sizeof(float), &st)) == NULL ||
				 (st = lg_gpu_get_rows(stream, dy, demb, type, d, n_rows, dids, n)) != LG_GPU_OK ||
				 (st = download(y, dy, n * d * sizeof(float))) != LG_GPU_OK)
			report_gpu_error("get_rows", lg_type_get(type)->name, shape, st);
		else
			report("get_rows", lg_type_get(type)->name, shape, norm_err(y, ref, n * d), bound_elem);
		lg_gpu_free(demb);
		lg_gpu_free(dids);
		lg_gpu_free(dy);
		free(emb);
		free(y);
		free(ref);
	}
}

/* Dequantization to F16: the CPU's dequantized value, rounded to half. */
static void
check_dequantize(void)
{
	for (int ti = 0; ti < N_TYPES; ti++)
	{
		lg_type		type = all_types[ti];
		const int64_t k = 512,
					rows = 7;
		size_t		wbytes;
		void	   *w;
		float	   *ref = xmalloc(k * rows * sizeof(float)),
				   *got = xmalloc(k * rows * sizeof(float));
		uint16_t   *h = xmalloc(k * rows * sizeof(uint16_t));
		void	   *dw = NULL,
				   *dh = NULL;
		lg_gpu_status st = LG_GPU_OK;

		if (!lg_gpu_type_supported(type))
		{
			free(ref);
			free(got);
			free(h);
			continue;
		}
		w = make_weights(type, k, rows, &wbytes);
		for (int64_t r = 0; r < rows; r++)
			lg_dequantize_row(type, (char *) w + r * lg_row_size(type, k), ref + r * k, k);
		if ((dw = upload(w, wbytes, &st)) == NULL ||
			(dh = alloc_poisoned(k * rows * sizeof(uint16_t), &st)) == NULL ||
			(st = lg_gpu_dequantize_f16(stream, dh, dw, type, k, rows)) != LG_GPU_OK ||
			(st = download(h, dh, k * rows * sizeof(uint16_t))) != LG_GPU_OK)
			report_gpu_error("dequantize_f16", lg_type_get(type)->name, "k=512,rows=7", st);
		else
		{
			for (int64_t i = 0; i < k * rows; i++)
				got[i] = lg_f16_to_f32(h[i]);
			report("dequantize_f16", lg_type_get(type)->name, "k=512,rows=7", norm_err(got, ref, k * rows), bound_out_f16);
		}
		lg_gpu_free(dw);
		lg_gpu_free(dh);
		free(w);
		free(ref);
		free(got);
		free(h);
	}
}

/* ---- elementwise ------------------------------------------------------- */

/* RMSNorm in float32 (also in place), and its F16/BF16 outputs, at several widths. */
static void
check_rmsnorm(void)
{
	static const int64_t ds[] = {64, 100, 4096, 5120};

	for (size_t di = 0; di < sizeof(ds) / sizeof(ds[0]); di++)
	{
		const int64_t n = 5,
					d = ds[di];
		float	   *x = xmalloc(n * d * sizeof(float)),
				   *w = xmalloc(d * sizeof(float)),
				   *ref = xmalloc(n * d * sizeof(float)),
				   *y = xmalloc(n * d * sizeof(float));
		uint16_t   *h = xmalloc(n * d * sizeof(uint16_t));
		float	   *dx = NULL,
				   *dw = NULL,
				   *dy = NULL;
		void	   *dh = NULL;
		lg_gpu_status st = LG_GPU_OK;
		char		shape[64];

		fill(x, n * d, -3, 3);
		fill(w, d, -1, 1);
		cpu->rmsnorm(cpu, ref, x, w, n, d, 1e-5f);
		snprintf(shape, sizeof(shape), "n=%lld,d=%lld", (long long) n, (long long) d);
		if ((dx = upload(x, n * d * sizeof(float), &st)) == NULL ||
			(dw = upload(w, d * sizeof(float), &st)) == NULL ||
			(dy = alloc_poisoned(n * d * sizeof(float), &st)) == NULL ||
			(st = lg_gpu_rmsnorm(stream, dy, dx, dw, n, d, 1e-5f)) != LG_GPU_OK ||
			(st = download(y, dy, n * d * sizeof(float))) != LG_GPU_OK)
			report_gpu_error("rmsnorm", "f32", shape, st);
		else
			report("rmsnorm", "f32", shape, norm_err(y, ref, n * d), bound_elem);

		/* in place (y == x) */
		if (dx != NULL &&
			(st = lg_gpu_rmsnorm(stream, dx, dx, dw, n, d, 1e-5f)) == LG_GPU_OK &&
			(st = download(y, dx, n * d * sizeof(float))) == LG_GPU_OK)
			report("rmsnorm", "f32", "in-place", norm_err(y, ref, n * d), bound_elem);
		else
			report_gpu_error("rmsnorm", "f32", "in-place", st);

		/* the half outputs, from the original x */
		for (int hi = 0; hi < 2; hi++)
		{
			lg_type		ht = hi == 0 ? LG_TYPE_F16 : LG_TYPE_BF16;

			lg_gpu_free(dx);
			dx = NULL;
			if ((dx = upload(x, n * d * sizeof(float), &st)) == NULL ||
				(dh == NULL && (dh = alloc_poisoned(n * d * sizeof(uint16_t), &st)) == NULL) ||
				(st = lg_gpu_rmsnorm_half(stream, dh, ht, dx, dw, n, d, 1e-5f)) != LG_GPU_OK ||
				(st = download(h, dh, n * d * sizeof(uint16_t))) != LG_GPU_OK)
			{
				report_gpu_error("rmsnorm_half", lg_type_get(ht)->name, shape, st);
				continue;
			}
			for (int64_t i = 0; i < n * d; i++)
				y[i] = ht == LG_TYPE_F16 ? lg_f16_to_f32(h[i]) : lg_bf16_to_f32(h[i]);
			report("rmsnorm_half", lg_type_get(ht)->name, shape, norm_err(y, ref, n * d),
				   ht == LG_TYPE_F16 ? bound_out_f16 : bound_out_bf16);
		}
		lg_gpu_free(dx);
		lg_gpu_free(dw);
		lg_gpu_free(dy);
		lg_gpu_free(dh);
		free(x);
		free(w);
		free(ref);
		free(y);
		free(h);
	}
}

/* RoPE, both styles, plain, with YaRN, with freq_factors, partial rotation. */
static void
check_rope(void)
{
	for (int c = 0; c < 8; c++)
	{
		const int64_t n = 7;
		const int32_t n_heads = 4,
					head_dim = (c & 4) ? 64 : 128;
		int			style = (c & 1) ? LG_ROPE_NEOX : LG_ROPE_NORM;
		bool		yarn = (c & 2) != 0;
		bool		partial = c == 5 || c == 6;
		int32_t		n_rot = partial ? head_dim / 2 : head_dim;
		int64_t		len = n * n_heads * head_dim;
		float	   *x = xmalloc(len * sizeof(float)),
				   *ref = xmalloc(len * sizeof(float)),
				   *y = xmalloc(len * sizeof(float));
		float	   *ff = xmalloc((n_rot / 2) * sizeof(float));
		int32_t		pos[7];
		bool		use_ff = c == 3 || c == 4;
		lg_rope_params rp = {.style = style, .n_rot = n_rot, .freq_base = yarn ? 1000000.0f : 10000.0f,
			.freq_scale = yarn ? 0.25f : 1.0f, .freq_factors = use_ff ? ff : NULL,
			.ext_factor = yarn ? 1.0f : 0.0f, .attn_factor = 1.0f, .beta_fast = 32.0f,
		.beta_slow = 1.0f, .n_ctx_orig = 4096};
		lg_gpu_rope_params gp = {.style = style, .n_rot = n_rot, .freq_base = rp.freq_base,
			.freq_scale = rp.freq_scale, .freq_factors = NULL, .ext_factor = rp.ext_factor,
			.attn_factor = rp.attn_factor, .beta_fast = rp.beta_fast, .beta_slow = rp.beta_slow,
		.n_ctx_orig = rp.n_ctx_orig};
		float	   *dx = NULL,
				   *dff = NULL;
		int32_t    *dpos = NULL;
		lg_gpu_status st = LG_GPU_OK;
		char		shape[128];

		fill(x, len, -2, 2);
		for (int i = 0; i < n_rot / 2; i++)
			ff[i] = 1.0f + (float) i / 8.0f;
		for (int i = 0; i < n; i++)
			pos[i] = (int32_t) (rnd_u64() % 2048);
		pos[0] = 0;
		pos[1] = 1;
		memcpy(ref, x, len * sizeof(float));
		cpu->rope(cpu, ref, n, n_heads, head_dim, pos, &rp);
		snprintf(shape, sizeof(shape), "%s%s%s,heads=%d,head_dim=%d,n_rot=%d",
				 style == LG_ROPE_NEOX ? "neox" : "norm", yarn ? ",yarn" : "",
				 use_ff ? ",freq_factors" : "", n_heads, head_dim, n_rot);
		if ((dx = upload(x, len * sizeof(float), &st)) == NULL ||
			(dpos = upload(pos, sizeof(pos), &st)) == NULL ||
			(use_ff && (dff = upload(ff, (n_rot / 2) * sizeof(float), &st)) == NULL))
			goto gpu_fail;
		gp.freq_factors = dff;
		if ((st = lg_gpu_rope(stream, dx, n, n_heads, head_dim, dpos, &gp)) != LG_GPU_OK ||
			(st = download(y, dx, len * sizeof(float))) != LG_GPU_OK)
			goto gpu_fail;
		report("rope", "f32", shape, norm_err(y, ref, len), bound_rope);
		goto done;
gpu_fail:
		report_gpu_error("rope", "f32", shape, st);
done:
		lg_gpu_free(dx);
		lg_gpu_free(dpos);
		lg_gpu_free(dff);
		free(x);
		free(ref);
		free(y);
		free(ff);
	}
}

/* swiglu, add, add_bias on one buffer shape. */
static void
check_elementwise(void)
{
	const int64_t n = 3,
				d = 5632 + 5;	/* a tail past any vector width */
	int64_t		len = n * d;
	float	   *g = xmalloc(len * sizeof(float)),
			   *u = xmalloc(len * sizeof(float)),
			   *b = xmalloc(d * sizeof(float)),
			   *ref = xmalloc(len * sizeof(float)),
			   *y = xmalloc(len * sizeof(float));
	float	   *dg = NULL,
			   *du = NULL,
			   *db = NULL;
	lg_gpu_status st = LG_GPU_OK;
	char		shape[64];

	snprintf(shape, sizeof(shape), "n=%lld,d=%lld", (long long) n, (long long) d);
	fill(g, len, -8, 8);
	fill(u, len, -2, 2);
	fill(b, d, -1, 1);

	memcpy(ref, g, len * sizeof(float));
	cpu->swiglu(cpu, ref, u, n, d);
	if ((dg = upload(g, len * sizeof(float), &st)) == NULL ||
		(du = upload(u, len * sizeof(float), &st)) == NULL ||
		(db = upload(b, d * sizeof(float), &st)) == NULL ||
		(st = lg_gpu_swiglu(stream, dg, du, len)) != LG_GPU_OK ||
		(st = download(y, dg, len * sizeof(float))) != LG_GPU_OK)
		report_gpu_error("swiglu", "f32", shape, st);
	else
		report("swiglu", "f32", shape, norm_err(y, ref, len), bound_elem);

	/* add: y = g + u, from a fresh copy of g */
	memcpy(ref, g, len * sizeof(float));
	cpu->add(cpu, ref, u, len);
	lg_gpu_free(dg);
	if ((dg = upload(g, len * sizeof(float), &st)) == NULL ||
		(st = lg_gpu_add(stream, dg, du, len)) != LG_GPU_OK ||
		(st = download(y, dg, len * sizeof(float))) != LG_GPU_OK)
		report_gpu_error("add", "f32", shape, st);
	else
		report("add", "f32", shape, norm_err(y, ref, len), bound_elem);

	memcpy(ref, g, len * sizeof(float));
	cpu->add_bias(cpu, ref, b, n, d);
	lg_gpu_free(dg);
	if ((dg = upload(g, len * sizeof(float), &st)) == NULL ||
		(st = lg_gpu_add_bias(stream, dg, db, n, d)) != LG_GPU_OK ||
		(st = download(y, dg, len * sizeof(float))) != LG_GPU_OK)
		report_gpu_error("add_bias", "f32", shape, st);
	else
		report("add_bias", "f32", shape, norm_err(y, ref, len), bound_elem);

	lg_gpu_free(dg);
	lg_gpu_free(du);
	lg_gpu_free(db);
	free(g);
	free(u);
	free(b);
	free(ref);
	free(y);
}

/* The encoders' LayerNorm (with and without weight and bias, in place) and GELU. */
static void
check_encoder_ops(void)
{
	static const int64_t ds[] = {384, 768, 1000};

	for (size_t di = 0; di < sizeof(ds) / sizeof(ds[0]); di++)
	{
		const int64_t n = 5,
					d = ds[di];
		float	   *x = xmalloc(n * d * sizeof(float)),
				   *w = xmalloc(d * sizeof(float)),
				   *b = xmalloc(d * sizeof(float)),
				   *ref = xmalloc(n * d * sizeof(float)),
				   *y = xmalloc(n * d * sizeof(float));
		float	   *dx = NULL,
				   *dw = NULL,
				   *db = NULL,
				   *dy = NULL;
		lg_gpu_status st = LG_GPU_OK;
		char		shape[64];

		/* an offset, so the mean's subtraction matters */
		fill(x, n * d, -3, 5);
		fill(w, d, -1, 1);
		fill(b, d, -1, 1);
		cpu->layernorm(cpu, ref, x, w, b, n, d, 1e-12f);
		snprintf(shape, sizeof(shape), "n=%lld,d=%lld", (long long) n, (long long) d);
		if ((dx = upload(x, n * d * sizeof(float), &st)) == NULL ||
			(dw = upload(w, d * sizeof(float), &st)) == NULL ||
			(db = upload(b, d * sizeof(float), &st)) == NULL ||
			(dy = alloc_poisoned(n * d * sizeof(float), &st)) == NULL ||
			(st = lg_gpu_layernorm(stream, dy, dx, dw, db, n, d, 1e-12f)) != LG_GPU_OK ||
			(st = download(y, dy, n * d * sizeof(float))) != LG_GPU_OK)
			report_gpu_error("layernorm", "f32", shape, st);
		else
			report("layernorm", "f32", shape, norm_err(y, ref, n * d), bound_elem);
		if (dx != NULL &&
			(st = lg_gpu_layernorm(stream, dx, dx, dw, db, n, d, 1e-12f)) == LG_GPU_OK &&
			(st = download(y, dx, n * d * sizeof(float))) == LG_GPU_OK)
			report("layernorm", "f32", "in-place", norm_err(y, ref, n * d), bound_elem);
		else
			report_gpu_error("layernorm", "f32", "in-place", st);

		/* gelu over the same shape, tails included */
		fill(x, n * d, -6, 6);
		x[0] = -100.0f;
		x[1] = 100.0f;
		memcpy(ref, x, n * d * sizeof(float));
		cpu->gelu(cpu, ref, n, d);
		lg_gpu_free(dx);
		if ((dx = upload(x, n * d * sizeof(float), &st)) == NULL ||
			(st = lg_gpu_gelu(stream, dx, n * d)) != LG_GPU_OK ||
			(st = download(y, dx, n * d * sizeof(float))) != LG_GPU_OK)
			report_gpu_error("gelu", "f32", shape, st);
		else
			report("gelu", "f32", shape, norm_err(y, ref, n * d), bound_elem);
		lg_gpu_free(dx);
		lg_gpu_free(dw);
		lg_gpu_free(db);
		lg_gpu_free(dy);
		free(x);
		free(w);
		free(b);
		free(ref);
		free(y);
	}
}

/* ---- KV cache and attention -------------------------------------------- */

/* Pool element count to float, for comparing pools of either type. */
static void
pool_to_f32(const void *pool, int kv_type, float *out, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		out[i] = kv_type == LG_GPU_KV_F32 ? ((const float *) pool)[i] : lg_f16_to_f32(((const lg_f16 *) pool)[i]);
}

/* A random permutation of the pool's blocks: tables never share a block. */
static void
shuffle_blocks(int32_t *perm, int32_t n)
{
	for (int32_t i = 0; i < n; i++)
		perm[i] = i;
	for (int32_t i = n - 1; i > 0; i--)
	{
		int32_t		j = (int32_t) (rnd_u64() % (uint64_t) (i + 1));
		int32_t		t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
}

/* Store rows through a block table: the CPU's positions, the GPU's slots; the pools must be equal. */
static void
check_kv_store(void)
{
	for (int kt = 0; kt < 2; kt++)
	{
		const int32_t bs = 16,
					n_blocks = 12;
		const int64_t d = 2 * 128,
					n = 40,
					pos0 = 5;
		size_t		esz = kt == LG_GPU_KV_F32 ? sizeof(float) : sizeof(lg_f16);
		int64_t		pool_n = (int64_t) n_blocks * bs * d;
		char	   *pool_cpu = xmalloc(pool_n * esz),
				   *pool_gpu = xmalloc(pool_n * esz);
		float	   *x = xmalloc(n * d * sizeof(float)),
				   *a = xmalloc(pool_n * sizeof(float)),
				   *b = xmalloc(pool_n * sizeof(float));
		int32_t		bt[12],
					slots[40];
		void	   *dpool = NULL;
		int32_t    *dslots = NULL;
		float	   *dx = NULL;
		lg_gpu_status st = LG_GPU_OK;
		const char *tn = kt == LG_GPU_KV_F32 ? "f32" : "f16";

		shuffle_blocks(bt, n_blocks);
		fill(x, n * d, -4, 4);
		/* the pool starts as the same finite junk on both sides */
		for (int64_t i = 0; i < pool_n; i++)
		{
			float		v = rnd_f(-1, 1);

			if (kt == LG_GPU_KV_F32)
				((float *) pool_cpu)[i] = v;
			else
				((lg_f16 *) pool_cpu)[i] = lg_f32_to_f16(v);
		}
		memcpy(pool_gpu, pool_cpu, pool_n * esz);
		for (int64_t i = 0; i < n; i++)
		{
			int64_t		p = pos0 + i;

			slots[i] = bt[p / bs] * bs + (int32_t) (p % bs);
		}
		cpu->kv_store(cpu, pool_cpu, (lg_kv_type) kt, bt, bs, pos0, x, n, d);
		if ((dpool = upload(pool_gpu, pool_n * esz, &st)) == NULL ||
			(dslots = upload(slots, sizeof(slots), &st)) == NULL ||
			(dx = upload(x, n * d * sizeof(float), &st)) == NULL ||
			(st = lg_gpu_kv_store(stream, dpool, kt, dslots, dx, n, d)) != LG_GPU_OK ||
			(st = download(pool_gpu, dpool, pool_n * esz)) != LG_GPU_OK)
			report_gpu_error("kv_store", tn, "bs=16,n=40,d=256", st);
		else
		{
			pool_to_f32(pool_gpu, kt, a, pool_n);
			pool_to_f32(pool_cpu, kt, b, pool_n);
			/* the same conversion (round to nearest even): bit for bit */
			report("kv_store", tn, "bs=16,pos0=5,n=40,d=256",
				   memcmp(pool_gpu, pool_cpu, pool_n * esz) == 0 ? 0.0 : fmax(norm_err(a, b, pool_n), 1e-30), 0.0);
		}
		lg_gpu_free(dpool);
		lg_gpu_free(dslots);
		lg_gpu_free(dx);
		free(pool_cpu);
		free(pool_gpu);
		free(x);
		free(a);
		free(b);
	}
}

/*
 * One attention call of several sequences (n_tok[i] queries after pos0[i]
 * cached positions); bidir: encoders' attention, every query over all of
 * its sequence's kv_lens[i] positions (NULL: pos0 + n_tok; more: a pruned
 * last layer's few queries).
 */
static void
check_attention_case(int kv_type, int32_t head_dim, int32_t block_size, int n_seqs,
					 const int32_t *n_tok, const int32_t *pos0, const char *what,
					 bool bidir, const int32_t *kv_lens)
{
	const int32_t n_heads = 8,
				n_kv_heads = 2;		/* GQA: 4 query heads per KV head */
	const int64_t qd = (int64_t) n_heads * head_dim,
				kvd = (int64_t) n_kv_heads * head_dim;
	lg_gpu_attn_seq seqs[8];
	lg_attn_args args[8];
	int32_t		rows = 0,
				n_bt = 0,
				max_n_tok = 0,
				max_kv = 0;
	int32_t    *bt;
	int32_t    *perm;
	int32_t		n_blocks;
	size_t		esz = kv_type == LG_GPU_KV_F32 ? sizeof(float) : sizeof(lg_f16);
	void	   *kpool,
			   *vpool;
	float	   *q,
			   *ref,
			   *out;
	void	   *dk = NULL,
			   *dv = NULL;
	float	   *dq = NULL,
			   *dout = NULL,
			   *dscr = NULL;
	int32_t    *dbt = NULL;
	lg_gpu_attn_seq *dseqs = NULL;
	lg_gpu_status st = LG_GPU_OK;
	char		shape[160];
	size_t		scr_floats;

	for (int s = 0; s < n_seqs; s++)
	{
		int32_t		kv_len = kv_lens ? kv_lens[s] : pos0[s] + n_tok[s];

		seqs[s] = (lg_gpu_attn_seq) {.q_row0 = rows, .n_tok = n_tok[s], .pos0 = pos0[s], .kv_len = kv_len, .bt_off = n_bt};
		rows += n_tok[s];
		n_bt += (kv_len + block_size - 1) / block_size;
		if (n_tok[s] > max_n_tok)
			max_n_tok = n_tok[s];
		if (kv_len > max_kv)
			max_kv = kv_len;
	}
	n_blocks = n_bt + 3;		/* a few blocks no table uses */
	perm = xmalloc(n_blocks * sizeof(int32_t));
	shuffle_blocks(perm, n_blocks);
	bt = perm;					/* the first n_bt of the permutation are the packed tables */
	kpool = xmalloc((size_t) n_blocks * block_size * kvd * esz);
	vpool = xmalloc((size_t) n_blocks * block_size * kvd * esz);
	for (int64_t i = 0; i < (int64_t) n_blocks * block_size * kvd; i++)
	{
		float		kv = rnd_f(-2, 2),
					vv = rnd_f(-1, 1);

		if (kv_type == LG_GPU_KV_F32)
		{
			((float *) kpool)[i] = kv;
			((float *) vpool)[i] = vv;
		}
		else
		{
			((lg_f16 *) kpool)[i] = lg_f32_to_f16(kv);
			((lg_f16 *) vpool)[i] = lg_f32_to_f16(vv);
		}
	}
	q = xmalloc(rows * qd * sizeof(float));
	ref = xmalloc(rows * qd * sizeof(float));
	out = xmalloc(rows * qd * sizeof(float));
	fill(q, rows * qd, -1, 1);

	for (int s = 0; s < n_seqs; s++)
		args[s] = (lg_attn_args) {
		.out = ref + seqs[s].q_row0 * qd,.q = q + seqs[s].q_row0 * qd,
			.k_cache = kpool,.v_cache = vpool,.block_table = bt + seqs[s].bt_off,
			.block_size = block_size,.kv_type = (lg_kv_type) kv_type,.n_tok = seqs[s].n_tok,
			.pos0 = seqs[s].pos0,.kv_len = seqs[s].kv_len,.n_heads = n_heads,
			.n_kv_heads = n_kv_heads,.head_dim = head_dim,.scale = 1.0f / sqrtf((float) head_dim),
		.scratch = NULL,.bidirectional = bidir};
	cpu->attention(cpu, args, n_seqs);

	snprintf(shape, sizeof(shape), "%s,head_dim=%d,bs=%d,seqs=%d,rows=%d,max_kv=%d,heads=%d/%d",
			 what, head_dim, block_size, n_seqs, rows, max_kv, n_heads, n_kv_heads);
	scr_floats = lg_gpu_attention_scratch_floats(n_seqs, max_n_tok, max_kv, n_heads, head_dim);
	if ((dk = upload(kpool, (size_t) n_blocks * block_size * kvd * esz, &st)) == NULL ||
		(dv = upload(vpool, (size_t) n_blocks * block_size * kvd * esz, &st)) == NULL ||
		(dq = upload(q, rows * qd * sizeof(float), &st)) == NULL ||
		(dbt = upload(bt, n_bt * sizeof(int32_t), &st)) == NULL ||
		(dseqs = upload(seqs, n_seqs * sizeof(lg_gpu_attn_seq), &st)) == NULL ||
		(dout = alloc_poisoned(rows * qd * sizeof(float), &st)) == NULL ||
		(scr_floats > 0 && (dscr = alloc_poisoned(scr_floats * sizeof(float), &st)) == NULL))
		goto gpu_fail;
	{
		lg_gpu_attn_args ga = {.out = dout, .q = dq, .k_pool = dk, .v_pool = dv, .kv_type = kv_type,
			.seqs = dseqs, .n_seqs = n_seqs, .block_tables = dbt, .block_size = block_size,
			.n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim,
			.scale = 1.0f / sqrtf((float) head_dim), .max_n_tok = max_n_tok, .max_kv_len = max_kv,
		.scratch = dscr, .bidirectional = bidir};

		if ((st = lg_gpu_attention(stream, &ga)) != LG_GPU_OK ||
			(st = download(out, dout, rows * qd * sizeof(float))) != LG_GPU_OK)
			goto gpu_fail;
	}
	report("attention", kv_type == LG_GPU_KV_F32 ? "f32" : "f16", shape, norm_err(out, ref, rows * qd),
		   kv_type == LG_GPU_KV_F32 ? bound_attn_f32 : bound_attn_f16);
	goto done;
gpu_fail:
	report_gpu_error("attention", kv_type == LG_GPU_KV_F32 ? "f32" : "f16", shape, st);
done:
	lg_gpu_free(dk);
	lg_gpu_free(dv);
	lg_gpu_free(dq);
	lg_gpu_free(dbt);
	lg_gpu_free(dseqs);
	lg_gpu_free(dout);
	lg_gpu_free(dscr);
	free(perm);
	free(kpool);
	free(vpool);
	free(q);
	free(ref);
	free(out);
}

/* Decode-only batches, prompt batches and mixed ones, for both KV types, head dims and block sizes. */
static void
check_attention(void)
{
	static const int32_t dec_tok[] = {1, 1, 1, 1, 1};
	static const int32_t dec_pos[] = {0, 16, 99, 511, 1999};	/* kv_len 1 .. 2000: split-K */
	static const int32_t pr_tok[] = {37, 5, 130};
	static const int32_t pr_pos[] = {0, 0, 0};
	static const int32_t mix_tok[] = {1, 23, 1, 64};
	static const int32_t mix_pos[] = {300, 41, 0, 200};
	/* encoders: whole sequences of a padded batch, and one query each over all (cls pooling) */
	static const int32_t enc_tok[] = {7, 1, 70, 130};
	static const int32_t enc_pos[] = {0, 0, 0, 0};
	static const int32_t cls_tok[] = {1, 1, 1, 1};
	static const int32_t cls_kv[] = {7, 1, 300, 512};

	for (int kt = 0; kt < 2; kt++)
		for (int hd = 0; hd < 2; hd++)
			for (int b = 0; b < 2; b++)
			{
				int32_t		head_dim = hd ? 128 : 64;
				int32_t		bs = b ? 32 : 16;

				if (quick && (hd + b) % 2 != kt)	/* each head_dim and block size once per KV type */
					continue;

				check_attention_case(kt, head_dim, bs, 5, dec_tok, dec_pos, "decode", false, NULL);
				check_attention_case(kt, head_dim, bs, 3, pr_tok, pr_pos, "prompt", false, NULL);
				check_attention_case(kt, head_dim, bs, 4, mix_tok, mix_pos, "mixed", false, NULL);
				check_attention_case(kt, head_dim, bs, 4, enc_tok, enc_pos, "encoder", true, NULL);
				check_attention_case(kt, head_dim, bs, 4, cls_tok, enc_pos, "encoder-pruned", true, cls_kv);
			}
}

/* ---- sampling ---------------------------------------------------------- */

/*
 * The CPU sampler's token for one row, seeded (penalties and bias off);
 * with u_out, instead the u the engine hands the device for that sampler
 * (lg_sampler_device_params: the same draw from the same RNG).
 */
static int32_t
cpu_sample(const float *logits, int32_t n_vocab, const lg_gpu_sample_params *gp, uint64_t seed, float *u_out)
{
	lg_sampler_params p;
	lg_sampler *s;
	lg_error	err;
	int32_t		tok = -1;

	lg_sampler_params_default(&p);
	p.temperature = gp->temperature;
	p.top_k = gp->top_k;
	p.top_p = gp->top_p;
	p.min_p = gp->min_p;
	p.typical_p = 1.0f;
	p.repeat_penalty = 1.0f;
	p.penalty_last_n = 0;
	p.seed = seed;
	p.has_seed = true;
	s = lg_sampler_new(&p, n_vocab, &err);
	if (s == NULL)
	{
		fprintf(stderr, "FATAL: lg_sampler_new: %s\n", err.msg);
		exit(2);
	}
	if (u_out != NULL)
	{
		lg_device_sample ds;

		lg_sampler_device_params(s, &ds);
		*u_out = ds.u;
	}
	else
		tok = lg_sampler_sample(s, logits, NULL);
	lg_sampler_free(s);
	return tok;
}

/* n rows through the GPU sampler; ids[n] on the host. */
static lg_gpu_status
gpu_sample(const float *logits, int64_t n, int64_t n_vocab, const lg_gpu_sample_params *p, int32_t *ids)
{
	lg_gpu_status st = LG_GPU_OK;
	size_t		sbytes = lg_gpu_sample_scratch_bytes(n, n_vocab);
	float	   *dl = NULL;
	void	   *dp = NULL,
			   *dscr = NULL;
	int32_t    *dids = NULL;

	if ((dl = upload(logits, n * n_vocab * sizeof(float), &st)) != NULL &&
		(dp = upload(p, n * sizeof(*p), &st)) != NULL &&
		(dids = alloc_poisoned(n * sizeof(int32_t), &st)) != NULL &&
		(sbytes == 0 || (st = lg_gpu_malloc(&dscr, sbytes)) == LG_GPU_OK) &&
		(st = lg_gpu_sample(stream, dids, dl, n, n_vocab, dp, dscr, sbytes)) == LG_GPU_OK)
		st = download(ids, dids, n * sizeof(int32_t));
	lg_gpu_free(dl);
	lg_gpu_free(dp);
	lg_gpu_free(dids);
	lg_gpu_free(dscr);
	return st;
}

/*
 * Greedy: argmax, lowest id on a tie.  With a draw: each row its own seed;
 * the GPU gets the u the engine would give it for a sampler of that seed
 * (lg_sampler_device_params), and must choose the token the CPU sampler
 * with that seed chooses.  Then a sanity check of the distribution itself: many
 * rows of the same small logits with u on a grid must pick each token with
 * its softmax probability.
 */
static void
check_sample(void)
{
	static const lg_gpu_sample_params sets[] = {
		{.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f},
		{.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f},	/* the defaults */
		{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f},
		{.temperature = 0.7f, .top_k = 0, .top_p = 0.9f, .min_p = 0.0f},
		{.temperature = 1.5f, .top_k = 0, .top_p = 1.0f, .min_p = 0.1f},
		{.temperature = 1.0f, .top_k = 5, .top_p = 1.0f, .min_p = 0.0f},
		{.temperature = 0.5f, .top_k = 100, .top_p = 0.8f, .min_p = 0.02f},
	};
	const int64_t n = quick ? 8 : 32;

	for (size_t si = 0; si < sizeof(sets) / sizeof(sets[0]); si++)
	{
		int64_t		n_vocab = si == 0 ? 32000 : 1000;
		float	   *logits = xmalloc(n * n_vocab * sizeof(float));
		lg_gpu_sample_params p[32];
		int32_t		ids[32];
		int32_t		want[32];
		int			bad = 0;
		lg_gpu_status st;
		char		shape[160];

		fill(logits, n * n_vocab, -6, 6);
		if (si == 0)
		{
			/* ties: the lowest id must win */
			logits[0 * n_vocab + 100] = 50.0f;
			logits[0 * n_vocab + 7] = 50.0f;
			logits[1 * n_vocab + n_vocab - 1] = 50.0f;
		}
		for (int64_t r = 0; r < n; r++)
		{
			uint64_t	seed = 1000 + (uint64_t) (si * 100 + r);

			p[r] = sets[si];
			(void) cpu_sample(logits + r * n_vocab, (int32_t) n_vocab, &p[r], seed, &p[r].u);
			want[r] = cpu_sample(logits + r * n_vocab, (int32_t) n_vocab, &p[r], seed, NULL);
		}
		snprintf(shape, sizeof(shape), "temp=%g,top_k=%d,top_p=%g,min_p=%g,rows=%lld,vocab=%lld",
				 sets[si].temperature, sets[si].top_k, sets[si].top_p, sets[si].min_p,
				 (long long) n, (long long) n_vocab);
		st = gpu_sample(logits, n, n_vocab, p, ids);
		if (st != LG_GPU_OK)
			report_gpu_error("sample", "f32", shape, st);
		else
		{
			for (int64_t r = 0; r < n; r++)
				if (ids[r] != want[r])
				{
					if (bad < 3)
						printf("  row %lld: gpu %d, cpu %d (u=%.9f)\n", (long long) r, ids[r], want[r], p[r].u);
					bad++;
				}
			/* the error is the share of rows whose token differs; it must be 0 */
			report("sample", si == 0 ? "greedy" : "draw", shape, (double) bad / n, 0.0);
		}
		free(logits);
	}

	/* distribution: 16 tokens, 4096 rows with u = (i + 0.5) / 4096 */
	{
		const int64_t nv = 16,
					nr = 4096;
		float	   *logits = xmalloc(nr * nv * sizeof(float));
		lg_gpu_sample_params *p = xmalloc(nr * sizeof(*p));
		int32_t    *ids = xmalloc(nr * sizeof(int32_t));
		float		row[16];
		double		prob[16],
					sum = 0.0,
					worst = 0.0;
		int64_t		count[16] = {0};
		lg_gpu_status st;

		fill(row, nv, -2, 2);
		for (int64_t i = 0; i < nv; i++)
			sum += prob[i] = exp((double) row[i]);
		for (int64_t r = 0; r < nr; r++)
		{
			memcpy(logits + r * nv, row, sizeof(row));
			p[r] = (lg_gpu_sample_params) {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
			.u = (float) ((r + 0.5) / nr)};
		}
		st = gpu_sample(logits, nr, nv, p, ids);
		if (st != LG_GPU_OK)
			report_gpu_error("sample", "distribution", "vocab=16,rows=4096", st);
		else
		{
			for (int64_t r = 0; r < nr; r++)
				if (ids[r] >= 0 && ids[r] < nv)
					count[ids[r]]++;
				else
					worst = INFINITY;
			for (int64_t i = 0; i < nv; i++)
				worst = fmax(worst, fabs((double) count[i] / nr - prob[i] / sum));
			/* a grid of u gives each token its mass to within a grid step (or two) */
			report("sample", "distribution", "vocab=16,rows=4096,u-grid", worst, 2.0 / nr + 1e-4);
		}
		free(logits);
		free(p);
		free(ids);
	}
}

/* ---- bench --------------------------------------------------------------- */

/*
 * Random bytes for timing (quantizing 100M values on one core would take
 * longer than the timing): bit 14 of every 16-bit word cleared, so every
 * half (values, block scales) is finite.
 */
static char *
make_bench_weights(size_t bytes)
{
	char	   *w = xmalloc(bytes + 8);

	for (size_t i = 0; i < bytes; i += 8)
	{
		uint64_t	r = rnd_u64() & ~0x4000400040004000ULL;

		memcpy(w + i, &r, 8);
	}
	return w;
}

/* Milliseconds per call of a matmul, median of 5 runs of iters calls (events). */
static double
time_matmul(lg_type type, int64_t k, int64_t m, int64_t n, int iters, bool use_blas, lg_gpu_status *st)
{
	size_t		wbytes = lg_row_size(type, k) * (size_t) m;
	size_t		sbytes = lg_gpu_matmul_scratch_bytes(type, k, m, n);
	void	   *dw = NULL,
			   *dscr = NULL;
	float	   *dx = NULL,
			   *dy = NULL;
	lg_gpu_event e0 = NULL,
				e1 = NULL;
	double		runs[5],
				res = -1.0;
	char	   *w;
	float	   *x;

	w = make_bench_weights(wbytes);
	x = xmalloc((size_t) (n * k) * sizeof(float));
	fill(x, n * k, -1, 1);
	if ((dw = upload(w, wbytes, st)) == NULL ||
		(dx = upload(x, (size_t) (n * k) * sizeof(float), st)) == NULL ||
		(*st = lg_gpu_malloc((void **) &dy, (size_t) (n * m) * sizeof(float))) != LG_GPU_OK ||
		(sbytes > 0 && (*st = lg_gpu_malloc(&dscr, sbytes)) != LG_GPU_OK) ||
		(*st = lg_gpu_event_create(&e0)) != LG_GPU_OK ||
		(*st = lg_gpu_event_create(&e1)) != LG_GPU_OK)
		goto done;
	for (int rep = -1; rep < 5; rep++)
	{
		float		ms;

		if ((*st = lg_gpu_event_record(e0, stream)) != LG_GPU_OK)
			goto done;
		for (int i = 0; i < iters; i++)
			if ((*st = lg_gpu_matmul(stream, use_blas ? blas : NULL, dy, dw, type, k, m, dx, n, dscr, sbytes)) != LG_GPU_OK)
				goto done;
		if ((*st = lg_gpu_event_record(e1, stream)) != LG_GPU_OK ||
			(*st = lg_gpu_event_elapsed_ms(e0, e1, &ms)) != LG_GPU_OK)
			goto done;
		if (rep >= 0)			/* rep -1 is the warm-up */
			runs[rep] = ms / iters;
	}
	for (int i = 0; i < 5; i++)
		for (int j = i + 1; j < 5; j++)
			if (runs[j] < runs[i])
			{
				double		t = runs[i];

				runs[i] = runs[j];
				runs[j] = t;
			}
	res = runs[2];
done:
	lg_gpu_event_destroy(e0);
	lg_gpu_event_destroy(e1);
	lg_gpu_free(dw);
	lg_gpu_free(dx);
	lg_gpu_free(dy);
	lg_gpu_free(dscr);
	free(w);
	free(x);
	return res;
}

/*
 * D2D bandwidth, then matrix-vector products of the TinyLlama shapes in
 * each type (GB/s of weights read, and that over the D2D rate), then the
 * F16 GEMM rate.  Lines start "BENCH" for scripts/device-check.sh.
 */
static int
bench(void)
{
	static const int64_t shapes[][2] = {{2048, 2048}, {2048, 256}, {2048, 5632}, {5632, 2048}, {2048, 32000}};
	static const lg_type types[] = {LG_TYPE_F16, LG_TYPE_BF16, LG_TYPE_Q8_0, LG_TYPE_Q4_0, LG_TYPE_Q4_K, LG_TYPE_Q6_K};
	double		bw = 0.0;
	lg_gpu_status st;
	int			rc = 0;

	if ((st = lg_gpu_measure_d2d_bandwidth((size_t) 512 << 20, 20, &bw)) != LG_GPU_OK)
	{
		printf("BENCH d2d error: %s\n", lg_gpu_last_error());
		return 1;
	}
	printf("BENCH d2d_GBps=%.1f\n", bw / 1e9);
	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
	{
		if (!lg_gpu_type_supported(types[ti]))
			continue;
		for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
		{
			int64_t		k = shapes[si][0],
						m = shapes[si][1];
			double		ms = time_matmul(types[ti], k, m, 1, 50, true, &st);
			double		bytes = (double) lg_row_size(types[ti], k) * m + (double) k * 4 + (double) m * 4;

			if (ms <= 0.0)
			{
				printf("BENCH matmul %s k=%lld m=%lld error: %s\n", lg_type_get(types[ti])->name,
					   (long long) k, (long long) m, lg_gpu_last_error());
				rc = 1;
				continue;
			}
			printf("BENCH matmul type=%s k=%lld m=%lld n=1 us=%.2f GBps=%.1f of_d2d=%.2f\n",
				   lg_type_get(types[ti])->name, (long long) k, (long long) m, ms * 1e3,
				   bytes / (ms / 1e3) / 1e9, bytes / (ms / 1e3) / bw);
		}
	}
	/* the prompt-processing ceiling: an F16 GEMM through lg_gpu_matmul (cuBLAS where built) */
	{
		const int64_t s = 4096;
		double		ms = time_matmul(LG_TYPE_F16, s, s, s, 5, true, &st);

		if (ms <= 0.0)
		{
			printf("BENCH gemm f16 error: %s\n", lg_gpu_last_error());
			rc = 1;
		}
		else
			printf("BENCH gemm_f16 m=n=k=%lld ms=%.3f TFLOPs=%.1f\n", (long long) s, ms,
				   2.0 * s * s * s / (ms / 1e3) / 1e12);
	}
	return rc;
}

/* ---- main ---------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	int			n_dev = 0;
	int			device = 0;
	bool		do_bench = false;
	lg_gpu_device_info info;
	lg_error	err;
	lg_gpu_status st;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--bench") == 0)
			do_bench = true;
		else if (strcmp(argv[i], "--quick") == 0)
			quick = true;
		else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
			device = atoi(argv[++i]);
		else
		{
			fprintf(stderr, "usage: %s [--bench] [--quick] [--device N]\n", argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (lg_gpu_device_count(&n_dev) != LG_GPU_OK || n_dev == 0)
	{
		printf("SKIP: no GPU (%s)\n", lg_gpu_last_error()[0] ? lg_gpu_last_error() : "no device");
		return 0;
	}
	if ((st = lg_gpu_set_device(device)) != LG_GPU_OK ||
		(st = lg_gpu_device_info_get(device, &info)) != LG_GPU_OK ||
		(st = lg_gpu_stream_create(&stream)) != LG_GPU_OK)
	{
		printf("FAIL setup: %s\n", lg_gpu_last_error());
		return 1;
	}
	printf("device %d: %s (%s), %d SMs, %.1f GiB (%.1f free), driver %d, runtime %d, platform %s\n",
		   device, info.name, info.arch, info.n_sm, info.total_mem / 1073741824.0,
		   info.free_mem / 1073741824.0, info.driver_version, info.runtime_version, lg_gpu_platform());
	if ((st = lg_gpu_blas_create(&blas, stream)) != LG_GPU_OK)
	{
		printf("FAIL blas_create: %s\n", lg_gpu_last_error());
		return 1;
	}
	if (do_bench)
	{
		int			rc = bench();

		lg_gpu_blas_destroy(blas);
		lg_gpu_stream_destroy(stream);
		return rc;
	}

	cpu = lg_backend_cpu_new(1, 1, &err);
	if (cpu == NULL)
	{
		printf("FAIL cpu backend: %s\n", err.msg);
		return 1;
	}
	check_runtime();
	check_graph();
	check_get_rows();
	check_dequantize();
	check_rmsnorm();
	check_rope();
	check_elementwise();
	check_encoder_ops();
	check_kv_store();
	check_attention();
	check_sample();
	check_matmul();

	printf("%d passed, %d failed\n", n_pass, n_fail);
	cpu->free(cpu);
	lg_gpu_blas_destroy(blas);
	lg_gpu_stream_destroy(stream);
	return n_fail > 0 ? 1 : 0;
}
