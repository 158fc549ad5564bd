/*
 * test_backend_cpu.c — the CPU backend's kernels against the scalar
 * reference backend and against plain double-precision formulas.
 *
 * Every SIMD level the machine has (avx512, avx2, scalar) is checked, not
 * only the best one.  Errors are normalised: max|got - want| / (max|want| +
 * eps), with the bound stated at each check and the reason for it.
 *
 * LLAMAGPU_BENCH=1 also prints matvec throughput (GB/s of weights read).
 */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "backend_cpu_impl.h"
#include "threadpool.h"

static const char *const levels[] = {"avx512", "avx2", "scalar"};
#define N_LEVELS 3

/* max|a-b| / (max|b| + 1e-20) over n values */
static double
norm_err(const float *a, const float *b, int64_t n)
{
	double		num = 0.0,
				den = 0.0;

	for (int64_t i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - (double) b[i]);

		if (!(d <= num))		/* NaN counts as failure */
			num = isnan(d) ? INFINITY : d;
		if (fabs((double) b[i]) > den)
			den = fabs((double) b[i]);
	}
	return num / (den + 1e-20);
}

/* n random floats in [-scale, scale) */
static void
fill(float *x, int64_t n, uint64_t *seed, float scale)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = lg_test_randf(seed) * scale;
}

/* ---------------- thread pool ---------------- */

typedef struct tp_probe
{
	atomic_int	calls[8];
	atomic_int	bad_nth;
	int			expect_nth;
	int			spin;
} tp_probe;

/* Record which thread ran; optionally burn a little time. */
static void
tp_probe_task(void *arg, int ith, int nth)
{
	tp_probe   *p = (tp_probe *) arg;
	volatile int sink = 0;

	if (nth != p->expect_nth || ith < 0 || ith >= nth)
		atomic_fetch_add(&p->bad_nth, 1);
	else
		atomic_fetch_add(&p->calls[ith], 1);
	for (int i = 0; i < p->spin * (ith + 1); i++)
		sink += i;
}

/* Every (ith, nth) runs exactly once per run, over many runs and sleeps. */
static void
test_threadpool(void **state)
{
	for (int nt = 1; nt <= 3; nt++)
	{
		lg_error	err;
		lg_threadpool *tp = lg_threadpool_new(nt, &err);
		tp_probe	p;

		assert_non_null(tp);
		assert_int_equal(lg_threadpool_size(tp), nt);
		memset(&p, 0, sizeof(p));
		p.expect_nth = nt;
		for (int run = 0; run < 4000; run++)
		{
			p.spin = run % 7 == 0 ? 2000 : 0;
			lg_threadpool_run(tp, tp_probe_task, &p);
			for (int i = 0; i < nt; i++)
				if (atomic_load(&p.calls[i]) != run + 1)
					fail_msg("threads %d run %d: thread %d ran %d times", nt, run, i,
							 atomic_load(&p.calls[i]));
			/* let the workers fall asleep now and then: the wake-up path */
			if (run % 1000 == 999)
				usleep(5000);
		}
		assert_int_equal(atomic_load(&p.bad_nth), 0);
		lg_threadpool_free(tp);
	}
}

/* ---------------- matmul ---------------- */

typedef struct mm_case
{
	lg_type		type;
	double		bound_ref;		/* fast vs reference backend */
	double		bound_exact;	/* vs double dot of dequantized operands */
} mm_case;

/*
 * Bounds.  Fast vs reference: the integer block sums are exact in both, so
 * they differ only by float summation order and FMA: ~1e-6 seen, 2e-5
 * allowed.  Against a double dot of the dequantized operands (see
 * matmul_exact) the same float rounding is all there is.
 */
static const mm_case mm_cases[] = {
	{LG_TYPE_F32, 1e-5, 1e-5},
	{LG_TYPE_F16, 1e-5, 1e-5},
	{LG_TYPE_BF16, 1e-5, 1e-5},
	{LG_TYPE_Q4_0, 2e-5, 2e-5},
	{LG_TYPE_Q4_1, 2e-5, 2e-5},
	{LG_TYPE_Q5_0, 2e-5, 2e-5},
	{LG_TYPE_Q5_1, 2e-5, 2e-5},
	{LG_TYPE_Q8_0, 2e-5, 2e-5},
	{LG_TYPE_Q2_K, 2e-5, 2e-5},
	{LG_TYPE_Q3_K, 2e-5, 2e-5},
	{LG_TYPE_Q4_K, 2e-5, 2e-5},
	{LG_TYPE_Q5_K, 2e-5, 2e-5},
	{LG_TYPE_Q6_K, 2e-5, 2e-5},
};

/* A rows×cols weight matrix of type t from random floats (rows scaled apart). */
static void *
make_weights(lg_type t, int64_t rows, int64_t cols, uint64_t *seed, lg_tensor *w)
{
	size_t		rb = lg_row_size(t, cols);
	char	   *data = malloc(rb * (size_t) rows);
	float	   *f = malloc((size_t) cols * sizeof(float));

	assert_non_null(data);
	assert_non_null(f);
	for (int64_t r = 0; r < rows; r++)
	{
		fill(f, cols, seed, 0.05f + (float) (r % 5));
		assert_true(lg_quantize_row(t, f, data + (size_t) r * rb, cols));
	}
	free(f);
	memset(w, 0, sizeof(*w));
	w->name = "w";
	w->type = t;
	w->ne[0] = cols;
	w->ne[1] = rows;
	w->ne[2] = w->ne[3] = 1;
	w->row_bytes = rb;
	w->data = data;
	return data;
}

/*
 * y = x·Wᵀ in double from the dequantized weights and the activations as
 * the kernels see them (quantized to vec_dot_type, then dequantized).
 *
 * One wrinkle is part of the format, not of any kernel: with q8_1
 * activations (q4_1, q5_1 weights) ggml takes the min term m·Σy from the
 * block's s = d·Σq, stored as f16, rather than from the dequantized values.
 * We add that rounding, m·(s - d·Σq) per block, so the bound stays tight.
 */
static void
matmul_exact(float *y, const lg_tensor *w, const float *x, int64_t n)
{
	const int64_t cols = w->ne[0];
	const int64_t rows = w->ne[1];
	const int64_t nb = cols / LG_QK;
	lg_type		vt = lg_type_get(w->type)->vec_dot_type;
	size_t		vrow = lg_row_size(vt, cols);
	float	   *wf = malloc((size_t) (rows * cols) * sizeof(float));
	float	   *xf = malloc((size_t) (n * cols) * sizeof(float));
	char	   *xq = malloc(vrow * (size_t) n + 64);

	for (int64_t r = 0; r < rows; r++)
		assert_true(lg_dequantize_row(w->type, (const char *) w->data + (size_t) r * w->row_bytes,
									  wf + r * cols, cols));
	for (int64_t t = 0; t < n; t++)
	{
		assert_true(lg_quantize_row(vt, x + t * cols, xq + t * vrow, cols));
		assert_true(lg_dequantize_row(vt, xq + t * vrow, xf + t * cols, cols));
	}
	for (int64_t t = 0; t < n; t++)
		for (int64_t r = 0; r < rows; r++)
		{
			double		s = 0.0;

			for (int64_t c = 0; c < cols; c++)
				s += (double) wf[r * cols + c] * (double) xf[t * cols + c];
			if (vt == LG_TYPE_Q8_1)
			{
				/* q4_1 and q5_1 blocks both start with f16 d, m */
				const char *wr = (const char *) w->data + (size_t) r * w->row_bytes;
				const lg_block_q8_1 *yb = (const lg_block_q8_1 *) (xq + t * vrow);
				size_t		wbs = lg_type_get(w->type)->type_size;

				for (int64_t b = 0; b < nb; b++)
				{
					lg_f16		m;
					int			sq = 0;

					memcpy(&m, wr + b * wbs + sizeof(lg_f16), sizeof(m));
					for (int j = 0; j < LG_QK; j++)
						sq += yb[b].qs[j];
					s += (double) lg_f16_to_f32(m) *
						((double) lg_f16_to_f32(yb[b].s) - (double) lg_f16_to_f32(yb[b].d) * sq);
				}
			}
			y[t * rows + r] = (float) s;
		}
	free(wf);
	free(xf);
	free(xq);
}

/* Every type, several shapes, every SIMD level, vs reference and exact. */
static void
test_matmul(void **state)
{
	static const int64_t rows_set[] = {1, 7, 33, 130};
	static const int64_t n_set[] = {1, 3, 17};
	static const int64_t cols_32[] = {32, 96, 1024, 4096};
	static const int64_t cols_256[] = {256, 768, 4096};
	static const int64_t cols_f[] = {7, 33, 1000, 4096};
	lg_error	err;
	lg_backend *ref = lg_backend_cpu_new(3, 1, &err);
	lg_backend *fast[N_LEVELS];
	uint64_t	seed = 42;

	assert_non_null(ref);
	for (int l = 0; l < N_LEVELS; l++)
	{
		/* 1, 2 and 3 threads across the levels: rows not a multiple of them */
		fast[l] = lg_backend_cpu_new_level(l + 1, levels[l], &err);
		if (fast[l] == NULL)
			printf("SKIP: SIMD level %s not on this CPU\n", levels[l]);
	}

	for (size_t ci = 0; ci < sizeof(mm_cases) / sizeof(mm_cases[0]); ci++)
	{
		const mm_case *mc = &mm_cases[ci];
		const lg_type_info *ti = lg_type_get(mc->type);
		double		worst_ref[N_LEVELS] = {0},
					worst_ex = 0;
		const int64_t *cols_set = ti->block_size == 256 ? cols_256 : ti->block_size == 32 ? cols_32 : cols_f;
		int			n_cols = ti->block_size == 256 ? 3 : 4;

		for (int ic = 0; ic < n_cols; ic++)
			for (int ir = 0; ir < 4; ir++)
				for (int in = 0; in < 3; in++)
				{
					const int64_t cols = cols_set[ic];
					const int64_t rows = rows_set[ir];
					const int64_t n = n_set[in];
					lg_tensor	w;
					void	   *wdata;
					float	   *x = malloc((size_t) (n * cols) * sizeof(float));
					float	   *y_ref = malloc((size_t) (n * rows) * sizeof(float));
					float	   *y_ex = malloc((size_t) (n * rows) * sizeof(float));
					float	   *y = malloc((size_t) (n * rows) * sizeof(float));
					double		e;

					/* the big-shape, many-token cases of slow types are costly: thin them */
					if (cols == 4096 && rows == 130 && n == 17 && ci % 2 == 1)
					{
						free(x);
						free(y_ref);
						free(y_ex);
						free(y);
						continue;
					}
					wdata = make_weights(mc->type, rows, cols, &seed, &w);
					fill(x, n * cols, &seed, 1.0f);
					assert_int_equal(ref->matmul(ref, y_ref, &w, x, n), LG_OK);
					matmul_exact(y_ex, &w, x, n);
					e = norm_err(y_ref, y_ex, n * rows);
					worst_ex = e > worst_ex ? e : worst_ex;
					if (e > mc->bound_exact)
						fail_msg("%s reference vs exact: rows %lld cols %lld n %lld: err %.3g > %.3g",
								 ti->name, (long long) rows, (long long) cols, (long long) n,
								 e, mc->bound_exact);
					for (int l = 0; l < N_LEVELS; l++)
					{
						if (fast[l] == NULL)
							continue;
						for (int64_t i = 0; i < n * rows; i++)
							y[i] = NAN;
						assert_int_equal(fast[l]->matmul(fast[l], y, &w, x, n), LG_OK);
						e = norm_err(y, y_ref, n * rows);
						worst_ref[l] = e > worst_ref[l] ? e : worst_ref[l];
						if (e > mc->bound_ref)
							fail_msg("%s %s vs reference: rows %lld cols %lld n %lld: err %.3g > %.3g",
									 ti->name, levels[l], (long long) rows, (long long) cols,
									 (long long) n, e, mc->bound_ref);
						e = norm_err(y, y_ex, n * rows);
						if (e > mc->bound_exact)
							fail_msg("%s %s vs exact: rows %lld cols %lld n %lld: err %.3g > %.3g",
									 ti->name, levels[l], (long long) rows, (long long) cols,
									 (long long) n, e, mc->bound_exact);
					}
					free(wdata);
					free(x);
					free(y_ref);
					free(y_ex);
					free(y);
				}
		printf("matmul %-5s worst err: reference vs exact %.2g; vs reference: avx512 %.2g avx2 %.2g scalar %.2g\n",
			   ti->name, worst_ex, worst_ref[0], worst_ref[1], worst_ref[2]);
	}
	ref->free(ref);
	for (int l = 0; l < N_LEVELS; l++)
		if (fast[l] != NULL)
			fast[l]->free(fast[l]);
}

/*
 * The multi-row kernels (rows × one token for generation, rows × tokens
 * for prompts) at the best level with 2 and 3 threads: row blocks that end
 * mid-group, token counts 1, 2, 3, 5, 11, 17 (partial token groups; from
 * 8 tokens a tile unpacks its q4_0 rows first), 130 at cols 2048 (more
 * than one block of tokens, each unpacking the rows again) and the odd
 * block counts of cols 32 and 96 (a lone block in the pair loops).
 * Same bound as test_matmul: only float summation order differs.
 */
static void
test_matmul_tiles(void **state)
{
	static const lg_type types[] = {LG_TYPE_Q4_0, LG_TYPE_Q8_0, LG_TYPE_F16, LG_TYPE_Q4_K, LG_TYPE_Q6_K};
	static const int64_t rows_set[] = {1, 5, 7, 33, 130};
	static const int64_t n_set[] = {1, 2, 3, 5, 11, 17, 130};
	static const int64_t cols_set[] = {32, 96, 256, 2048};
	lg_error	err;
	lg_backend *ref = lg_backend_cpu_new(1, 1, &err);
	uint64_t	seed = 7;

	assert_non_null(ref);
	for (int nth = 2; nth <= 3; nth++)
	{
		lg_backend *be = lg_backend_cpu_new(nth, 0, &err);

		assert_non_null(be);
		for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
			for (int ic = 0; ic < 4; ic++)
				for (int ir = 0; ir < 5; ir++)
					for (int in = 0; in < 7; in++)
					{
						const int64_t cols = cols_set[ic];
						const int64_t rows = rows_set[ir];
						const int64_t n = n_set[in];
						lg_tensor	w;
						void	   *wdata;
						float	   *x,
								   *y_ref,
								   *y;
						double		e;

						if (cols % lg_type_get(types[ti])->block_size != 0)
							continue;
						/* 130 tokens only where they split into token blocks */
						if (n == 130 && (cols != 2048 || rows != 33))
							continue;
						x = malloc((size_t) (n * cols) * sizeof(float));
						y_ref = malloc((size_t) (n * rows) * sizeof(float));
						y = malloc((size_t) (n * rows) * sizeof(float));
						wdata = make_weights(types[ti], rows, cols, &seed, &w);
						fill(x, n * cols, &seed, 1.0f);
						assert_int_equal(ref->matmul(ref, y_ref, &w, x, n), LG_OK);
						for (int64_t i = 0; i < n * rows; i++)
							y[i] = NAN;
						assert_int_equal(be->matmul(be, y, &w, x, n), LG_OK);
						e = norm_err(y, y_ref, n * rows);
						if (!(e <= 2e-5))
							fail_msg("%s %d threads: rows %lld cols %lld n %lld: err %.3g > 2e-5",
									 lg_type_get(types[ti])->name, nth, (long long) rows,
									 (long long) cols, (long long) n, e);
						free(wdata);
						free(x);
						free(y_ref);
						free(y);
					}
		be->free(be);
	}
	ref->free(ref);
}

/*
 * The large-M GEMM (kernels_gemm_avx512.c, from LG_GEMM_MIN_N tokens) at
 * shapes that are no multiple of its tiles: rows around LG_GEMM_ROWS and
 * its 16-row vectors (several row blocks, so a thread reuses the rows it
 * packed across token blocks), token counts around LG_GEMM_TOKS, widths
 * with a partial 16-lane step (7, 33, 1000) and more than one k chunk
 * (2100).
 * Each output must be within test_matmul_tiles' bound of the reference
 * and bit for bit the token's own matmul alone (the dotr kernel), with 1
 * and 3 threads.
 */
static void
test_matmul_gemm(void **state)
{
	static const int64_t rows_set[] = {1, 47, 65, 161};
	static const int64_t n_set[] = {48, 49, 95, 130};
	static const int64_t cols_set[] = {7, 33, 1000, 2100};
	lg_error	err;
	lg_backend *ref = lg_backend_cpu_new(1, 1, &err);
	uint64_t	seed = 11;
	int			ran = 0;

	assert_non_null(ref);
	for (int nth = 1; nth <= 3; nth += 2)
	{
		lg_backend *be = lg_backend_cpu_new(nth, 0, &err);

		assert_non_null(be);
		if (lg_cpu_ctx_of(be)->k.gemm_tile[LG_TYPE_F16] == NULL)
		{
			printf("SKIP: no large-M GEMM at this SIMD level\n");
			be->free(be);
			break;
		}
		for (int ic = 0; ic < 4; ic++)
			for (int ir = 0; ir < 4; ir++)
				for (int in = 0; in < 4; in++)
				{
					const int64_t cols = cols_set[ic];
					const int64_t rows = rows_set[ir];
					const int64_t n = n_set[in];
					lg_tensor	w;
					void	   *wdata = make_weights(LG_TYPE_F16, rows, cols, &seed, &w);
					float	   *x = malloc((size_t) (n * cols) * sizeof(float));
					float	   *y_ref = malloc((size_t) (n * rows) * sizeof(float));
					float	   *y = malloc((size_t) (n * rows) * sizeof(float));
					float	   *alone = malloc((size_t) rows * sizeof(float));
					double		e;

					fill(x, n * cols, &seed, 1.0f);
					assert_int_equal(ref->matmul(ref, y_ref, &w, x, n), LG_OK);
					for (int64_t i = 0; i < n * rows; i++)
						y[i] = NAN;
					assert_int_equal(be->matmul(be, y, &w, x, n), LG_OK);
					e = norm_err(y, y_ref, n * rows);
					if (!(e <= 2e-5))
						fail_msg("gemm f16 %d threads: rows %lld cols %lld n %lld: err %.3g > 2e-5",
								 nth, (long long) rows, (long long) cols, (long long) n, e);
					for (int64_t t = 0; t < n; t++)
					{
						assert_int_equal(be->matmul(be, alone, &w, x + t * cols, 1), LG_OK);
						if (memcmp(alone, y + t * rows, (size_t) rows * sizeof(float)) != 0)
							fail_msg("gemm f16 %d threads: rows %lld cols %lld n %lld: token %lld differs from alone",
									 nth, (long long) rows, (long long) cols, (long long) n, (long long) t);
					}
					ran++;
					free(wdata);
					free(x);
					free(y_ref);
					free(y);
					free(alone);
				}
		be->free(be);
	}
	printf("gemm f16: %d shapes\n", ran);
	ref->free(ref);
}

/*
 * Encoder (bidirectional) attention four queries at a time
 * (kernels_attn_avx512.c) against one at a time, the same backend with
 * the four-query loops taken out: bit for bit, for query counts that
 * leave 1-3 queries over, key counts with a partial 16- and 32-key pass,
 * head sizes 32, 40 (a masked tail) and 64, f32 and f16 caches.
 */
static void attn_fill_table(int32_t *table, int64_t nb, int s, int n_seq);

static void
test_attention_bidir4(void **state)
{
	static const int64_t n_set[] = {5, 37, 130};
	static const int32_t d_set[] = {32, 40, 64};
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(2, 0, &err);
	lg_cpu_kernels *k;
	uint64_t	seed = 23;

	assert_non_null(be);
	k = &lg_cpu_ctx_of(be)->k;
	if (k->attn_scores_t4 == NULL)
	{
		printf("SKIP: no four-query attention at this SIMD level\n");
		be->free(be);
		skip();
	}
	for (int kv = 0; kv < 2; kv++)
		for (int in = 0; in < 3; in++)
			for (int id = 0; id < 3; id++)
			{
				const int64_t n = n_set[in];
				const int32_t D = d_set[id];
				const int32_t nh = 3;
				const int32_t bs = 16;
				const int64_t nb = (n + bs - 1) / bs;
				const int64_t row = (int64_t) nh * D;
				const size_t esz = kv ? sizeof(lg_f16) : sizeof(float);
				void	   *kc = malloc((size_t) (nb * bs * row) * esz);
				void	   *vc = malloc((size_t) (nb * bs * row) * esz);
				float	   *q = malloc((size_t) (n * row) * sizeof(float));
				float	   *o4 = malloc((size_t) (n * row) * sizeof(float));
				float	   *o1 = malloc((size_t) (n * row) * sizeof(float));
				int32_t    *table = malloc((size_t) nb * sizeof(int32_t));
				float	   *tmp = malloc((size_t) (nb * bs * row) * sizeof(float));
				lg_attn_args a = {
					.q = q, .k_cache = kc, .v_cache = vc, .block_table = table, .block_size = bs,
					.kv_type = kv ? LG_KV_F16 : LG_KV_F32, .n_tok = n, .pos0 = 0, .kv_len = n,
					.n_heads = nh, .n_kv_heads = nh, .head_dim = D, .scale = 1.0f / sqrtf((float) D),
					.scratch = NULL, .bidirectional = true,
				};
				void		(*s4) (int64_t, int32_t, const float *, const float *const[4], float, float *const[4]);

				attn_fill_table(table, nb, 0, 1);
				fill(q, n * row, &seed, 2.0f);
				for (int c = 0; c < 2; c++)
				{
					fill(tmp, nb * bs * row, &seed, 2.0f);
					for (int64_t i = 0; i < nb * bs * row; i++)
						if (kv)
							((lg_f16 *) (c ? vc : kc))[i] = lg_f32_to_f16(tmp[i]);
						else
							((float *) (c ? vc : kc))[i] = tmp[i];
				}
				a.out = o4;
				be->attention(be, &a, 1);
				s4 = k->attn_scores_t4;
				k->attn_scores_t4 = NULL;
				a.out = o1;
				be->attention(be, &a, 1);
				k->attn_scores_t4 = s4;
				if (memcmp(o4, o1, (size_t) (n * row) * sizeof(float)) != 0)
					fail_msg("bidirectional attention, 4 queries vs 1: %s n %lld D %d differ",
							 kv ? "f16" : "f32", (long long) n, D);
				free(kc);
				free(vc);
				free(q);
				free(o4);
				free(o1);
				free(table);
				free(tmp);
			}
	be->free(be);
}

/*
 * The q8p activation form the fast q4_0/q8_0 kernels take must hold
 * exactly lg_quantize_row's q8_0 quants and scales: compare the SIMD prep
 * with the scalar one bit for bit, ties (x*id = k + 0.5) and all-zero,
 * tiny and huge blocks included.
 */
static void
test_q8p_prep(void **state)
{
	const int64_t cols = 32 * 12;
	float	   *x = malloc(cols * sizeof(float));
	size_t		sz = lg_q8p_row_size(cols);
	char	   *a = malloc(sz);
	char	   *b = malloc(sz);
	uint64_t	seed = 77;

	for (int round = 0; round < 200; round++)
	{
		fill(x, cols, &seed, round % 2 ? 1.0f : 300.0f);
		/* block 0: amax 127 so id = 1 and halves are exact ties */
		x[0] = 127.0f;
		for (int j = 1; j < 32; j++)
			x[j] = (float) (j - 16) + 0.5f;
		for (int j = 32; j < 64; j++)
			x[j] = 0.0f;		/* block 1: all zero */
		for (int j = 64; j < 96; j++)
			x[j] *= 1e-30f;		/* block 2: scale far below f16's range */
		for (int j = 96; j < 128; j++)
			x[j] *= 1e30f;		/* block 3: scale above it */
		for (int bias = -16; bias <= 0; bias += 8)
		{
			lg_q8p_prep(x, a, cols, bias);
#ifndef LG_NO_X86_SIMD
			if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"))
			{
				lg_q8p_prep_avx2(x, b, cols, bias);
				assert_memory_equal(a, b, sz);
			}
#endif
		}
		/* and the quants are lg_quantize_row's */
		for (int64_t i = 0; i < cols / 32; i++)
		{
			lg_block_q8_0 blk;

			assert_true(lg_quantize_row(LG_TYPE_Q8_0, x + i * 32, &blk, 32));
			assert_memory_equal(a + i * 32, blk.qs, 32);
			assert_true(((float *) (a + cols))[i] == lg_f16_to_f32(blk.d) ||
						(isnan(((float *) (a + cols))[i]) && isnan(lg_f16_to_f32(blk.d))));
		}
	}
	free(x);
	free(a);
	free(b);
}

/* Bad shapes and types are refused, not computed. */
/*
 * The AVX-512 q8_K activation prep of the K-quant types must give exactly
 * lg_quantize_row's q8_K blocks: ties of iscale·x (round half to even),
 * an all-zero block, tiny and huge blocks, and +m / -m both present (the
 * first of them sets the sign of the scale).
 */
static void
test_q8K_prep(void **state)
{
	const int64_t cols = 256 * 6;
	const size_t sz = lg_row_size(LG_TYPE_Q8_K, cols);
	float	   *x = malloc(cols * sizeof(float));
	char	   *a = malloc(sz);
	char	   *b = malloc(sz);
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new_level(1, "avx512", &err);
	uint64_t	seed = 78;

	if (be == NULL)
	{
		printf("SKIP: q8_K prep needs AVX-512\n");
		free(x);
		free(a);
		free(b);
		return;
	}
	be->free(be);
	for (int round = 0; round < 200; round++)
	{
		fill(x, cols, &seed, round % 2 ? 1.0f : 300.0f);
		/* block 0: max -127 so iscale = 1 and the halves are exact ties */
		x[0] = -127.0f;
		for (int j = 1; j < 256; j++)
			x[j] = (float) (j % 200 - 100) + 0.5f;
		for (int j = 256; j < 512; j++)
			x[j] = 0.0f;		/* block 1: all zero */
		for (int j = 512; j < 768; j++)
			x[j] *= 1e-30f;		/* block 2: tiny */
		for (int j = 768; j < 1024; j++)
			x[j] *= 1e30f;		/* block 3: huge */
		/* block 4: +m first, then -m: the first one wins */
		x[1024 + round % 200] = 500.0f;
		x[1024 + 200 + round % 50] = -500.0f;
		assert_true(lg_quantize_row(LG_TYPE_Q8_K, x, a, cols));
#ifndef LG_NO_X86_SIMD
		lg_q8K_prep_avx512(x, b, cols);
#endif
		assert_memory_equal(a, b, sz);
	}
	free(x);
	free(a);
	free(b);
}

static void
test_matmul_errors(void **state)
{
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(2, 0, &err);
	uint64_t	seed = 7;
	lg_tensor	w;
	void	   *data = make_weights(LG_TYPE_Q4_0, 4, 64, &seed, &w);
	float		x[128] = {0};
	float		y[8];

	w.type = LG_TYPE_I32;
	assert_int_equal(be->matmul(be, y, &w, x, 1), LG_ERR_UNSUPPORTED);
	w.type = LG_TYPE_Q4_0;
	w.ne[0] = 48;				/* not a multiple of 32 */
	assert_int_equal(be->matmul(be, y, &w, x, 1), LG_ERR_ARG);
	w.ne[0] = 64;
	assert_int_equal(be->matmul(be, y, &w, x, 0), LG_OK);
	assert_int_equal(be->matmul(be, y, &w, x, 1), LG_OK);
	free(data);
	be->free(be);
}

/* ---------------- get_rows ---------------- */

/* Rows come back exactly as lg_dequantize_row gives them; bad ids refused. */
static void
test_get_rows(void **state)
{
	static const lg_type types[] = {
		LG_TYPE_F32, LG_TYPE_F16, LG_TYPE_BF16, LG_TYPE_Q4_0, LG_TYPE_Q4_1, LG_TYPE_Q5_0,
		LG_TYPE_Q5_1, LG_TYPE_Q8_0, LG_TYPE_Q2_K, LG_TYPE_Q3_K, LG_TYPE_Q4_K, LG_TYPE_Q5_K,
		LG_TYPE_Q6_K,
	};
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(2, 0, &err);
	uint64_t	seed = 3;
	const int64_t d = 512;
	const int64_t vocab = 50;
	int32_t		ids[40];

	for (int i = 0; i < 40; i++)
		ids[i] = (i * 17 + 3) % vocab;
	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
	{
		lg_tensor	emb;
		void	   *data = make_weights(types[ti], vocab, d, &seed, &emb);
		float	   *y = malloc(40 * d * sizeof(float));
		float	   *want = malloc(d * sizeof(float));
		int32_t		bad[2] = {1, (int32_t) vocab};

		/* 40 rows: threaded; 3 rows: on the caller */
		for (int pass = 0; pass < 2; pass++)
		{
			int64_t		n = pass == 0 ? 40 : 3;

			assert_int_equal(be->get_rows(be, y, &emb, ids, n), LG_OK);
			for (int64_t i = 0; i < n; i++)
			{
				assert_true(lg_dequantize_row(types[ti], (const char *) data + (size_t) ids[i] * emb.row_bytes,
											  want, d));
				assert_memory_equal(y + i * d, want, d * sizeof(float));
			}
		}
		assert_int_equal(be->get_rows(be, y, &emb, bad, 2), LG_ERR_RANGE);
		bad[1] = -1;
		assert_int_equal(be->get_rows(be, y, &emb, bad, 2), LG_ERR_RANGE);
		free(data);
		free(y);
		free(want);
	}
	be->free(be);
}

/* ---------------- rmsnorm, swiglu, add ---------------- */

/* rmsnorm vs double formula; bound 1e-6 (float rounding of x*scale*w). */
static void
test_rmsnorm(void **state)
{
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(2, 0, &err);
	uint64_t	seed = 11;
	const int64_t n = 5,
				d = 2051;
	float	   *x = malloc(n * d * sizeof(float));
	float	   *w = malloc(d * sizeof(float));
	float	   *y = malloc(n * d * sizeof(float));
	float	   *want = malloc(n * d * sizeof(float));
	const float eps = 1e-5f;

	fill(x, n * d, &seed, 3.0f);
	fill(w, d, &seed, 2.0f);
	for (int64_t r = 0; r < n; r++)
	{
		double		ss = 0.0;

		for (int64_t i = 0; i < d; i++)
			ss += (double) x[r * d + i] * x[r * d + i];
		for (int64_t i = 0; i < d; i++)
			want[r * d + i] = (float) (x[r * d + i] / sqrt(ss / d + eps) * w[i]);
	}
	be->rmsnorm(be, y, x, w, n, d, eps);
	assert_true(norm_err(y, want, n * d) < 1e-6);
	/* in place */
	be->rmsnorm(be, x, x, w, n, d, eps);
	assert_memory_equal(x, y, n * d * sizeof(float));
	free(x);
	free(w);
	free(y);
	free(want);
	be->free(be);
}

/*
 * swiglu vs double silu(g)*u: the SIMD exp is within ~2 ulp, so 1e-6
 * relative per element (checked relative to each value, not the max).
 * Then batch invariance: 9 rows of 172 (stories260K's n_ff, not a whole
 * number of vectors) in one call, each bitwise the row alone.
 */
static void
test_swiglu(void **state)
{
	for (int l = 0; l < N_LEVELS; l++)
	{
		lg_error	err;
		lg_backend *be = lg_backend_cpu_new_level(1, levels[l], &err);
		uint64_t	seed = 5;
		const int64_t n = 5637;
		float	   *g = malloc(n * sizeof(float));
		float	   *u = malloc(n * sizeof(float));
		float	   *g0 = malloc(n * sizeof(float));

		if (be == NULL)
			continue;
		fill(g, n, &seed, 20.0f);
		fill(u, n, &seed, 1.0f);
		g[0] = -100.0f;			/* exp overflow path */
		g[1] = 95.0f;
		memcpy(g0, g, n * sizeof(float));
		be->swiglu(be, g, u, 1, n);
		for (int64_t i = 0; i < n; i++)
		{
			double		x = g0[i];
			double		want = x / (1.0 + exp(-x)) * u[i];

			if (fabs(g[i] - want) > 1e-6 * fabs(want) + 1e-30)
				fail_msg("swiglu %s [%lld]: x %g got %.9g want %.9g", levels[l], (long long) i,
						 x, g[i], want);
		}
		memcpy(g, g0, 9 * 172 * sizeof(float));
		be->swiglu(be, g, u, 9, 172);
		for (int64_t r = 0; r < 9; r++)
		{
			float		one[172];

			memcpy(one, g0 + r * 172, sizeof(one));
			be->swiglu(be, one, u + r * 172, 1, 172);
			if (memcmp(one, g + r * 172, sizeof(one)) != 0)
				fail_msg("swiglu %s not batch-invariant: row %lld", levels[l], (long long) r);
		}
		free(g);
		free(u);
		free(g0);
		be->free(be);
	}
}

/* add and add_bias are exact. */
static void
test_add(void **state)
{
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(2, 0, &err);
	float		y[12],
				x[12],
				b[4];

	for (int i = 0; i < 12; i++)
	{
		y[i] = (float) i;
		x[i] = 0.5f * (float) i;
	}
	for (int i = 0; i < 4; i++)
		b[i] = (float) (10 * i);
	be->add(be, y, x, 12);
	for (int i = 0; i < 12; i++)
		assert_true(y[i] == 1.5f * (float) i);
	be->add_bias(be, y, b, 3, 4);
	for (int i = 0; i < 12; i++)
		assert_true(y[i] == 1.5f * (float) i + (float) (10 * (i % 4)));
	be->free(be);
}

/*
 * kv_store: F16 is round-to-nearest-even (bit-equal to lg_f32_to_f16), F32
 * a copy; rows land where the block table says, including across a block
 * boundary and a gap (blocks 2 | 0 | 1 of 2 positions: 1 and 0 are not
 * consecutive, 0 and 1 are).
 */
static void
test_kv_store(void **state)
{
	static const int32_t flat[] = {0, 1, 2, 3, 4};
	static const int32_t paged[] = {2, 0, 1, 4, 3};

	for (int l = 0; l < N_LEVELS; l++)
	{
		lg_error	err;
		lg_backend *be = lg_backend_cpu_new_level(1, levels[l], &err);
		uint64_t	seed = 9;
		const int64_t n = 3,
					d = 37;
		float		x[3 * 37];
		lg_f16		c16[10 * 37];
		float		c32[10 * 37];

		if (be == NULL)
			continue;
		fill(x, n * d, &seed, 100.0f);
		x[0] = 1e-7f;			/* f16 subnormal */
		x[1] = 70000.0f;		/* f16 overflow → inf */
		be->kv_store(be, c16, LG_KV_F16, flat, 2, 4, x, n, d);
		be->kv_store(be, c32, LG_KV_F32, flat, 2, 4, x, n, d);
		for (int64_t i = 0; i < n * d; i++)
		{
			assert_int_equal(c16[4 * d + i], lg_f32_to_f16(x[i]));
			assert_true(c32[4 * d + i] == x[i]);
		}
		/* positions 1, 2, 3: block 2 row 1, then block 0 rows 0-1 */
		memset(c16, 0, sizeof(c16));
		memset(c32, 0, sizeof(c32));
		be->kv_store(be, c16, LG_KV_F16, paged, 2, 1, x, n, d);
		be->kv_store(be, c32, LG_KV_F32, paged, 2, 1, x, n, d);
		for (int64_t r = 0; r < n; r++)
		{
			const int64_t p = 1 + r;
			const int64_t row = paged[p / 2] * 2 + p % 2;

			for (int64_t i = 0; i < d; i++)
			{
				assert_int_equal(c16[row * d + i], lg_f32_to_f16(x[r * d + i]));
				assert_true(c32[row * d + i] == x[r * d + i]);
			}
		}
		for (int64_t i = 0; i < 3 * d; i++)		/* rows 2-4 (block 1, block 2 row 0) untouched */
			assert_true(c32[2 * d + i] == 0.0f);
		be->free(be);
	}
}

/* ---------------- rope ---------------- */

/*
 * RoPE in double straight from the formula: pair i (of n_rot/2) turns by
 * pos * base^(-2i/n_rot) / ff[i], YaRN-mixed, times the magnitude factor.
 */
static void
rope_formula(float *x, int64_t n, int32_t n_heads, int32_t hd, const int32_t *pos,
			 const lg_rope_params *rp)
{
	float		corr[2];

	lg_rope_yarn_corr_dims(rp->n_rot, rp->n_ctx_orig, rp->freq_base, rp->beta_fast, rp->beta_slow, corr);
	for (int64_t r = 0; r < n; r++)
		for (int32_t h = 0; h < n_heads; h++)
		{
			float	   *v = x + (r * n_heads + h) * hd;

			for (int32_t i = 0; i < rp->n_rot / 2; i++)
			{
				double		ff = rp->freq_factors ? rp->freq_factors[i] : 1.0;
				double		extrap = pos[r] * pow(rp->freq_base, -2.0 * i / rp->n_rot) / ff;
				double		interp = rp->freq_scale * extrap;
				double		theta = interp;
				double		mscale = rp->attn_factor;
				int			a = rp->style == LG_ROPE_NEOX ? i : 2 * i;
				int			b = rp->style == LG_ROPE_NEOX ? i + rp->n_rot / 2 : 2 * i + 1;
				double		x0 = v[a],
							x1 = v[b];

				if (rp->ext_factor != 0.0f)
				{
					double		y = (i - corr[0]) / fmax(0.001, corr[1] - corr[0]);
					double		ramp = (1 - fmin(1, fmax(0, y))) * rp->ext_factor;

					theta = interp * (1 - ramp) + extrap * ramp;
					mscale *= 1.0 + 0.1 * log(1.0 / rp->freq_scale);
				}
				v[a] = (float) ((x0 * cos(theta) - x1 * sin(theta)) * mscale);
				v[b] = (float) ((x0 * sin(theta) + x1 * cos(theta)) * mscale);
			}
		}
}

/*
 * Both styles, partial rotation, freq_factors, YaRN.  ggml builds the angle
 * by repeated float multiplication, so its error grows with position and
 * pair index: about pos * n_rot/2 * 6e-8 rad.  Positions stay below 80
 * here and the bound is 1e-4 of max|x|.
 */
static void
test_rope(void **state)
{
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(2, 0, &err);
	const int32_t n_heads = 3,
				hd = 64;
	const int64_t n = 4;
	int32_t		pos[4] = {0, 1, 17, 77};
	float		ff[32];
	uint64_t	seed = 13;

	for (int i = 0; i < 32; i++)
		ff[i] = 1.0f + (float) i / 8.0f;
	for (int cfg = 0; cfg < 8; cfg++)
	{
		lg_rope_params rp;
		float	   *x = malloc(n * n_heads * hd * sizeof(float));
		float	   *want = malloc(n * n_heads * hd * sizeof(float));

		memset(&rp, 0, sizeof(rp));
		rp.style = (cfg & 1) ? LG_ROPE_NEOX : LG_ROPE_NORM;
		rp.n_rot = (cfg & 2) ? 32 : hd;		/* partial rotation */
		rp.freq_base = 10000.0f;
		rp.freq_scale = 1.0f;
		rp.attn_factor = 1.0f;
		rp.n_ctx_orig = 4096;
		rp.beta_fast = 32.0f;
		rp.beta_slow = 1.0f;
		if (cfg & 4)
		{
			/* YaRN with 4x linear scaling, and llama3-style freq factors */
			rp.freq_scale = 0.25f;
			rp.ext_factor = 1.0f;
			rp.attn_factor = 1.1f;
			rp.freq_base = 500000.0f;
			rp.freq_factors = ff;
		}
		fill(x, n * n_heads * hd, &seed, 1.0f);
		memcpy(want, x, n * n_heads * hd * sizeof(float));
		rope_formula(want, n, n_heads, hd, pos, &rp);
		be->rope(be, x, n, n_heads, hd, pos, &rp);
		if (norm_err(x, want, n * n_heads * hd) > 1e-4)
			fail_msg("rope cfg %d: err %.3g", cfg, norm_err(x, want, n * n_heads * hd));
		/* the unrotated tail is untouched */
		if (rp.n_rot < hd)
			for (int64_t r = 0; r < n * n_heads; r++)
				assert_memory_equal(x + r * hd + rp.n_rot, want + r * hd + rp.n_rot,
									(hd - rp.n_rot) * sizeof(float));
		free(x);
		free(want);
	}
	be->free(be);
}

/* ---------------- attention ---------------- */

/*
 * Causal GQA attention in double from the cache contents (so an F16
 * cache's rounding is included), with q rounded to f16 when the cache is
 * F16, as the kernel (and ggml) do.
 */
static void
attention_naive(float *out, const lg_attn_args *a)
{
	const int32_t D = a->head_dim;
	const int32_t bs = a->block_size;
	const int64_t row = (int64_t) a->n_kv_heads * D;
	double	   *p = malloc((size_t) a->kv_len * sizeof(double));

	for (int64_t t = 0; t < a->n_tok; t++)
		for (int32_t h = 0; h < a->n_heads; h++)
		{
			const int32_t g = h / (a->n_heads / a->n_kv_heads);
			const float *q = a->q + (t * a->n_heads + h) * D;
			const int64_t nv = a->pos0 + t + 1;
			double		mx = -INFINITY,
						sum = 0.0;

			for (int64_t c = 0; c < nv; c++)
			{
				const int64_t r = (int64_t) a->block_table[c / bs] * bs + c % bs;
				double		s = 0.0;

				for (int32_t i = 0; i < D; i++)
				{
					double		kv,
								qv;

					if (a->kv_type == LG_KV_F16)
					{
						kv = lg_f16_to_f32(((const lg_f16 *) a->k_cache)[r * row + g * D + i]);
						qv = lg_f16_to_f32(lg_f32_to_f16(q[i]));
					}
					else
					{
						kv = ((const float *) a->k_cache)[r * row + g * D + i];
						qv = q[i];
					}
					s += kv * qv;
				}
				p[c] = s * a->scale;
				mx = p[c] > mx ? p[c] : mx;
			}
			for (int64_t c = 0; c < nv; c++)
			{
				p[c] = exp(p[c] - mx);
				sum += p[c];
			}
			for (int32_t i = 0; i < D; i++)
			{
				double		o = 0.0;

				for (int64_t c = 0; c < nv; c++)
				{
					const int64_t r = (int64_t) a->block_table[c / bs] * bs + c % bs;
					double		v = a->kv_type == LG_KV_F16
						? lg_f16_to_f32(((const lg_f16 *) a->v_cache)[r * row + g * D + i])
						: ((const float *) a->v_cache)[r * row + g * D + i];

					o += p[c] * v;
				}
				out[(t * a->n_heads + h) * D + i] = (float) (o / sum);
			}
		}
	free(p);
}

/*
 * F32 and F16 caches, GQA 8/4 and 4/1 (and 32/4 at head_dim 128), 1, 3 and
 * 17 tokens, pos0 0 and > 0 with kv_len past several 64-position tiles
 * (and, for 1 and 3 tokens, split between threads), and peaky scores (q
 * scaled up) so the running max is rescaled; the cache flat (blocks 0, 1,
 * 2, ... of 16) and paged (blocks of 16 or 5 in reverse order with a gap
 * between each).  Bound:
 * 1e-5 of max|out| (float accumulation in the kernel; the cache and q
 * rounding are in the naive version too).
 */
static void
test_attention(void **state)
{
	static const struct
	{
		int32_t		nh,
					nkv,
					hd;
	}			shapes[] = {{8, 4, 64}, {4, 1, 64}, {32, 4, 128}};
	static const int64_t ntok_set[] = {1, 3, 17};
	/* 127 with 3 tokens: the last split chunk is empty for the first token */
	static const int64_t pos0_set[] = {0, 5, 127, 200};
	uint64_t	seed = 21;

	for (int be_i = 0; be_i <= N_LEVELS; be_i++)
	{
		lg_error	err;
		/* several threads everywhere: decode splits the positions between them */
		lg_backend *be = be_i == N_LEVELS ? lg_backend_cpu_new(2, 1, &err)
			: lg_backend_cpu_new_level(be_i == 1 ? 3 : 2, levels[be_i], &err);

		if (be == NULL)
			continue;
		assert_int_equal(be->attn_scratch_floats(be, 17, 217, 32), 0);
		for (int si = 0; si < 3; si++)
			for (int kt = 0; kt < 2; kt++)
				for (int it = 0; it < 3; it++)
					for (int ip = 0; ip < 4; ip++)
						for (int lay = 0; lay < 3; lay++)
						{
							const int32_t nh = shapes[si].nh,
										nkv = shapes[si].nkv,
										D = shapes[si].hd;
							const int64_t n_tok = ntok_set[it],
										pos0 = pos0_set[ip],
										kv_len = pos0 + n_tok;
							const lg_kv_type kv = kt == 0 ? LG_KV_F32 : LG_KV_F16;
							const int32_t bs = lay == 2 ? 4 : 16;
							const int64_t nb = (kv_len + bs - 1) / bs;
							/* paged: 2 pool blocks per table entry, the table reversed */
							const int64_t pool_rows = (lay == 0 ? nb : 2 * nb) * bs;
							int32_t    *table = malloc(nb * sizeof(int32_t));
							float	   *kf = malloc(kv_len * nkv * D * sizeof(float));
							float	   *vf = malloc(kv_len * nkv * D * sizeof(float));
							float	   *q = malloc(n_tok * nh * D * sizeof(float));
							float	   *out = malloc(n_tok * nh * D * sizeof(float));
							float	   *want = malloc(n_tok * nh * D * sizeof(float));
							void	   *kc = calloc(pool_rows * nkv * D, sizeof(float));
							void	   *vc = calloc(pool_rows * nkv * D, sizeof(float));
							lg_attn_args a;
							double		e;

							for (int64_t b = 0; b < nb; b++)
								table[b] = lay == 0 ? (int32_t) b : (int32_t) (2 * (nb - 1 - b) + 1);
							fill(kf, kv_len * nkv * D, &seed, 1.0f);
							fill(vf, kv_len * nkv * D, &seed, 1.0f);
							fill(q, n_tok * nh * D, &seed, ip == 3 ? 4.0f : 1.0f);
							be->kv_store(be, kc, kv, table, bs, 0, kf, kv_len, nkv * D);
							be->kv_store(be, vc, kv, table, bs, 0, vf, kv_len, nkv * D);
							memset(&a, 0, sizeof(a));
							a.out = out;
							a.q = q;
							a.k_cache = kc;
							a.v_cache = vc;
							a.block_table = table;
							a.block_size = bs;
							a.kv_type = kv;
							a.n_tok = n_tok;
							a.pos0 = pos0;
							a.kv_len = kv_len;
							a.n_heads = nh;
							a.n_kv_heads = nkv;
							a.head_dim = D;
							a.scale = 1.0f / sqrtf((float) D);
							be->attention(be, &a, 1);
							attention_naive(want, &a);
							e = norm_err(out, want, n_tok * nh * D);
							if (e > 1e-5)
								fail_msg("attention %s: heads %d/%d dim %d %s n_tok %lld pos0 %lld block %d %s: err %.3g",
										 lg_backend_cpu_kernels(be), nh, nkv, D, kv == LG_KV_F16 ? "f16" : "f32",
										 (long long) n_tok, (long long) pos0, bs, lay == 0 ? "flat" : "paged", e);
							free(table);
							free(kf);
							free(vf);
							free(q);
							free(out);
							free(want);
							free(kc);
							free(vc);
						}
		be->free(be);
	}
}

/*
 * Batch invariance (docs/batching.md): for every weight type and SIMD
 * level, the output of (row, token) is bitwise the same whatever the
 * number of tokens n in the call (1: the matvec kernels; more: the tile
 * kernels, from 8 the unpacked rows) and over 1 or 2 threads, compared
 * with memcmp against that token alone on one thread.  37 rows end
 * mid-group.  Every failing case is printed before the test fails.
 */
static void
test_matmul_invariant(void **state)
{
	static const int64_t n_set[] = {1, 2, 3, 4, 5, 8, 13, 17, 64};
	/* float weights also at the odd widths of stories260K (64, 172): tails */
	static const int64_t cols_set[] = {512, 64, 172};
	const int64_t rows = 37;
	const int64_t n_max = 64;
	int			bad = 0;

	for (int lv = 0; lv < N_LEVELS; lv++)
	{
		lg_error	err;
		lg_backend *one = lg_backend_cpu_new_level(1, levels[lv], &err);
		lg_backend *two = lg_backend_cpu_new_level(2, levels[lv], &err);

		if (one == NULL || two == NULL)
		{
			if (one)
				one->free(one);
			if (two)
				two->free(two);
			continue;
		}
		/* every weight type at every width */
		for (size_t ci = 0; ci < 3 * sizeof(mm_cases) / sizeof(mm_cases[0]); ci++)
		{
			const size_t ti = ci / 3;
			const int64_t cols = cols_set[ci % 3];
			uint64_t	seed = 91 + ti;
			lg_tensor	w;
			void	   *wdata;
			float	   *x,
					   *alone,
					   *y;

			if (cols % lg_type_get(mm_cases[ti].type)->block_size != 0)
				continue;
			wdata = make_weights(mm_cases[ti].type, rows, cols, &seed, &w);
			x = malloc((size_t) (n_max * cols) * sizeof(float));
			alone = malloc((size_t) (n_max * rows) * sizeof(float));
			y = malloc((size_t) (n_max * rows) * sizeof(float));

			fill(x, n_max * cols, &seed, 1.0f);
			for (int64_t t = 0; t < n_max; t++)
				assert_int_equal(one->matmul(one, alone + t * rows, &w, x + t * cols, 1), LG_OK);
			for (int nt = 0; nt < 2; nt++)
				for (size_t ni = 0; ni < sizeof(n_set) / sizeof(n_set[0]); ni++)
				{
					const int64_t n = n_set[ni];
					lg_backend *be = nt == 0 ? one : two;

					assert_int_equal(be->matmul(be, y, &w, x, n), LG_OK);
					for (int64_t t = 0; t < n; t++)
						if (memcmp(y + t * rows, alone + t * rows, (size_t) rows * sizeof(float)) != 0)
						{
							printf("matmul not batch-invariant: %s %s cols %lld, %d threads, n %lld, token %lld\n",
								   levels[lv], lg_type_get(mm_cases[ti].type)->name, (long long) cols,
								   nt + 1, (long long) n, (long long) t);
							bad++;
							break;
						}
				}
			free(wdata);
			free(x);
			free(alone);
			free(y);
		}
		one->free(one);
		two->free(two);
	}
	if (bad > 0)
		fail_msg("%d matmul cases differ from the token alone", bad);
}

/*
 * Several sequences in one attention call, their blocks interleaved in one
 * pool (sequence s holds pool blocks s, s + n, s + 2n, ...): a set of two
 * decodes with long caches (few tokens in all: both split between
 * threads) and a mixed set of decodes and prompt chunks.  Each must equal
 * its naive attention, as alone.
 */
static void
test_attention_batch(void **state)
{
	static const struct
	{
		int			n;
		int64_t		n_tok[4];
		int64_t		pos0[4];
	}			sets[] = {
		{2, {1, 1}, {200, 130}},
		{4, {1, 17, 3, 1}, {200, 5, 127, 0}},
	};
	const int32_t nh = 8,
				nkv = 2,
				D = 64;
	uint64_t	seed = 33;

	for (int be_i = 0; be_i < N_LEVELS; be_i++)
	{
		lg_error	err;
		lg_backend *be = lg_backend_cpu_new_level(be_i == 1 ? 3 : 2, levels[be_i], &err);

		if (be == NULL)
			continue;
		for (int si = 0; si < 2; si++)
			for (int kt = 0; kt < 2; kt++)
				for (int bsi = 0; bsi < 2; bsi++)
				{
					const int	n = sets[si].n;
					const lg_kv_type kv = kt == 0 ? LG_KV_F32 : LG_KV_F16;
					const int32_t bs = bsi == 0 ? 16 : 5;
					const int64_t nb_max = (217 + bs - 1) / bs;
					const int64_t pool_rows = (int64_t) n * nb_max * bs;
					void	   *kc = calloc(pool_rows * nkv * D, sizeof(float));
					void	   *vc = calloc(pool_rows * nkv * D, sizeof(float));
					lg_attn_args a[4];
					int32_t    *table[4];
					float	   *q[4],
							   *out[4],
							   *want[4];

					memset(a, 0, sizeof(a));
					for (int s = 0; s < n; s++)
					{
						const int64_t n_tok = sets[si].n_tok[s],
									kv_len = sets[si].pos0[s] + n_tok;
						float	   *kf = malloc(kv_len * nkv * D * sizeof(float));
						float	   *vf = malloc(kv_len * nkv * D * sizeof(float));

						table[s] = malloc(nb_max * sizeof(int32_t));
						for (int64_t b = 0; b < nb_max; b++)
							table[s][b] = (int32_t) (s + n * b);
						q[s] = malloc(n_tok * nh * D * sizeof(float));
						out[s] = malloc(n_tok * nh * D * sizeof(float));
						want[s] = malloc(n_tok * nh * D * sizeof(float));
						fill(kf, kv_len * nkv * D, &seed, 1.0f);
						fill(vf, kv_len * nkv * D, &seed, 1.0f);
						fill(q[s], n_tok * nh * D, &seed, 2.0f);
						be->kv_store(be, kc, kv, table[s], bs, 0, kf, kv_len, nkv * D);
						be->kv_store(be, vc, kv, table[s], bs, 0, vf, kv_len, nkv * D);
						free(kf);
						free(vf);
						a[s] = (lg_attn_args) {
							.out = out[s], .q = q[s], .k_cache = kc, .v_cache = vc,
							.block_table = table[s], .block_size = bs, .kv_type = kv,
							.n_tok = n_tok, .pos0 = sets[si].pos0[s], .kv_len = kv_len,
							.n_heads = nh, .n_kv_heads = nkv, .head_dim = D,
							.scale = 1.0f / sqrtf((float) D),
						};
					}
					be->attention(be, a, n);
					for (int s = 0; s < n; s++)
					{
						double		e;

						attention_naive(want[s], &a[s]);
						e = norm_err(out[s], want[s], a[s].n_tok * nh * D);
						if (e > 1e-5)
							fail_msg("batched attention %s: set %d seq %d %s block %d: err %.3g",
									 lg_backend_cpu_kernels(be), si, s, kv == LG_KV_F16 ? "f16" : "f32", bs, e);
						free(table[s]);
						free(q[s]);
						free(out[s]);
						free(want[s]);
					}
					free(kc);
					free(vc);
				}
		be->free(be);
	}
}

/*
 * Block table of sequence s of n_seq sharing a pool: blocks s, s + n_seq,
 * s + 2 n_seq, ... (flat when n_seq is 1), so the same logical cache lies
 * in different pool rows.
 */
static void
attn_fill_table(int32_t *table, int64_t nb, int s, int n_seq)
{
	for (int64_t b = 0; b < nb; b++)
		table[b] = (int32_t) (s + (int64_t) n_seq * b);
}

/*
 * Batch invariance (docs/batching.md): every token's attention output is
 * bitwise the same whether it is computed alone (one token, one thread,
 * its own flat cache of 16-position blocks) or as part of a call with
 * several sequences, prompt chunks and decodes mixed, 1 or 2 threads, the
 * cache in blocks of 5 interleaved with the other sequences' in one pool.
 * Depths cross the 256-position chunk (several chunks, split between
 * threads when few tokens are in the call) and the last tile is partial.
 */
static void
test_attention_invariant(void **state)
{
	static const struct
	{
		int			n;
		int64_t		n_tok[3];
		int64_t		pos0[3];
	}			sets[] = {
		{1, {1}, {700}},		/* one decode: split between threads */
		{2, {1, 1}, {255, 520}},	/* two decodes, one at a chunk's end */
		{3, {1, 9, 3}, {300, 250, 0}},	/* mixed, a prompt across a chunk boundary */
		{1, {20}, {500}},		/* a prompt chunk: one item per token */
	};
	/* 8 heads of 64 (GQA 4), and stories260K's 8 heads of 8 (GQA 2) */
	static const int32_t shapes[2][3] = {{8, 2, 64}, {8, 4, 8}};

	/* every level with each shape */
	for (int ls = 0; ls < 2 * N_LEVELS; ls++)
	{
		const int	be_i = ls / 2,
					sh = ls % 2;
		const int32_t nh = shapes[sh][0],
					nkv = shapes[sh][1],
					D = shapes[sh][2];
		const int64_t row = (int64_t) nkv * D;
		lg_error	err;
		lg_backend *one = lg_backend_cpu_new_level(1, levels[be_i], &err);
		lg_backend *two = lg_backend_cpu_new_level(2, levels[be_i], &err);

		if (one == NULL || two == NULL)
		{
			if (one)
				one->free(one);
			if (two)
				two->free(two);
			continue;
		}
		for (int si = 0; si < 4; si++)
			for (int kt = 0; kt < 2; kt++)
				for (int nt = 0; nt < 2; nt++)
				{
					const int	n = sets[si].n;
					const lg_kv_type kv = kt == 0 ? LG_KV_F32 : LG_KV_F16;
					lg_backend *be = nt == 0 ? one : two;
					const int32_t bs = 5;
					int64_t		kv_max = 0;
					uint64_t	seed = 77 + si;
					lg_attn_args a[3];
					int32_t    *table[3];
					float	   *kf[3],
							   *vf[3],
							   *q[3],
							   *out[3];
					void	   *kc,
							   *vc;

					for (int s = 0; s < n; s++)
						if (sets[si].pos0[s] + sets[si].n_tok[s] > kv_max)
							kv_max = sets[si].pos0[s] + sets[si].n_tok[s];
					{
						const int64_t nb_max = (kv_max + bs - 1) / bs;

						kc = calloc((size_t) (n * nb_max * bs * row), sizeof(float));
						vc = calloc((size_t) (n * nb_max * bs * row), sizeof(float));
						memset(a, 0, sizeof(a));
						for (int s = 0; s < n; s++)
						{
							const int64_t n_tok = sets[si].n_tok[s],
										kv_len = sets[si].pos0[s] + n_tok;

							table[s] = malloc(nb_max * sizeof(int32_t));
							attn_fill_table(table[s], nb_max, s, n);
							kf[s] = malloc(kv_len * row * sizeof(float));
							vf[s] = malloc(kv_len * row * sizeof(float));
							q[s] = malloc(n_tok * nh * D * sizeof(float));
							out[s] = malloc(n_tok * nh * D * sizeof(float));
							fill(kf[s], kv_len * row, &seed, 1.0f);
							fill(vf[s], kv_len * row, &seed, 1.0f);
							/* peaky, so later tiles and chunks raise the max */
							fill(q[s], n_tok * nh * D, &seed, 3.0f);
							be->kv_store(be, kc, kv, table[s], bs, 0, kf[s], kv_len, row);
							be->kv_store(be, vc, kv, table[s], bs, 0, vf[s], kv_len, row);
							a[s] = (lg_attn_args) {
								.out = out[s], .q = q[s], .k_cache = kc, .v_cache = vc,
								.block_table = table[s], .block_size = bs, .kv_type = kv,
								.n_tok = n_tok, .pos0 = sets[si].pos0[s], .kv_len = kv_len,
								.n_heads = nh, .n_kv_heads = nkv, .head_dim = D,
								.scale = 1.0f / sqrtf((float) D),
							};
						}
					}
					be->attention(be, a, n);

					/* each token alone: one token, one thread, a flat cache of its own */
					for (int s = 0; s < n; s++)
					{
						const int64_t kv_len = a[s].kv_len;
						const int64_t nb = (kv_len + 15) / 16;
						int32_t    *ft = malloc(nb * sizeof(int32_t));
						void	   *fk = calloc((size_t) (nb * 16 * row), sizeof(float));
						void	   *fv = calloc((size_t) (nb * 16 * row), sizeof(float));
						float	   *o1 = malloc(nh * D * sizeof(float));

						attn_fill_table(ft, nb, 0, 1);
						one->kv_store(one, fk, kv, ft, 16, 0, kf[s], kv_len, row);
						one->kv_store(one, fv, kv, ft, 16, 0, vf[s], kv_len, row);
						for (int64_t t = 0; t < a[s].n_tok; t++)
						{
							lg_attn_args b = a[s];

							b.out = o1;
							b.q = q[s] + t * nh * D;
							b.k_cache = fk;
							b.v_cache = fv;
							b.block_table = ft;
							b.block_size = 16;
							b.n_tok = 1;
							b.pos0 = a[s].pos0 + t;
							b.kv_len = b.pos0 + 1;
							one->attention(one, &b, 1);
							if (memcmp(o1, out[s] + t * nh * D, nh * D * sizeof(float)) != 0)
								fail_msg("attention not batch-invariant %s: set %d seq %d token %lld (pos %lld) %s %d threads",
										 lg_backend_cpu_kernels(be), si, s, (long long) t,
										 (long long) b.pos0, kv == LG_KV_F16 ? "f16" : "f32", nt + 1);
						}
						free(ft);
						free(fk);
						free(fv);
						free(o1);
						free(table[s]);
						free(kf[s]);
						free(vf[s]);
						free(q[s]);
						free(out[s]);
					}
					free(kc);
					free(vc);
				}
		one->free(one);
		two->free(two);
	}
}

/* ---------------- benchmark (LLAMAGPU_BENCH=1) ---------------- */

/* Seconds on the monotonic clock. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * Time of one call: the best of many, since this machine is shared and a
 * mean mostly measures the neighbours.
 */
static double
bench_best(lg_backend *be, float *y, const lg_tensor *w, const float *x, int64_t n)
{
	double		best = 1e30,
				t0 = now_s();
	int			iters = 0;

	do
	{
		double		t = now_s();

		be->matmul(be, y, w, x, n);
		t = now_s() - t;
		best = t < best ? t : best;
		iters++;
	} while (iters < 5 || (now_s() - t0 < 1.0 && iters < 2000));
	return best;
}

/* Matvec GB/s of weights for a few types and shapes, 1 and 2 threads. */
static void
test_bench(void **state)
{
	static const lg_type types[] = {LG_TYPE_Q4_0, LG_TYPE_Q8_0, LG_TYPE_Q4_K, LG_TYPE_Q5_K, LG_TYPE_Q6_K,
	LG_TYPE_F16};
	static const int64_t shapes[][2] = {{2048, 5632}, {5632, 2048}, {4096, 14336}};
	const char *env = getenv("LLAMAGPU_BENCH");
	uint64_t	seed = 1;

	if (env == NULL || *env == '\0' || *env == '0')
	{
		printf("SKIP: benchmark (set LLAMAGPU_BENCH=1)\n");
		return;
	}
	for (int l = 0; l < N_LEVELS; l++)
	{
		lg_error	err;
		lg_backend *be1 = lg_backend_cpu_new_level(1, levels[l], &err);
		lg_backend *be2 = lg_backend_cpu_new_level(2, levels[l], &err);

		if (be1 == NULL || be2 == NULL)
			continue;
		for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
			for (int s = 0; s < 3; s++)
			{
				const int64_t cols = shapes[s][0],
							rows = shapes[s][1];
				lg_tensor	w;
				void	   *data = make_weights(types[ti], rows, cols, &seed, &w);
				float	   *x = malloc(cols * 64 * sizeof(float));
				float	   *y = malloc(rows * 64 * sizeof(float));
				double		bytes = (double) w.row_bytes * rows;
				double		t1,
							t2;

				fill(x, cols * 64, &seed, 1.0f);
				t1 = bench_best(be1, y, &w, x, 1);
				t2 = bench_best(be2, y, &w, x, 1);
				printf("BENCH %-6s %-5s %5lldx%-5lld n=1 : 1 thr %7.1f us %5.1f GB/s | 2 thr %7.1f us %5.1f GB/s\n",
					   levels[l], lg_type_get(types[ti])->name, (long long) cols, (long long) rows,
					   t1 * 1e6, bytes / t1 / 1e9, t2 * 1e6, bytes / t2 / 1e9);
				if (s == 0)
				{
					t2 = bench_best(be2, y, &w, x, 64);
					printf("BENCH %-6s %-5s %5lldx%-5lld n=64: 2 thr %7.1f us %5.1f GFLOP/s\n",
						   levels[l], lg_type_get(types[ti])->name, (long long) cols, (long long) rows,
						   t2 * 1e6, 2.0 * cols * rows * 64 / t2 / 1e9);
				}
				free(data);
				free(x);
				free(y);
			}
		be1->free(be1);
		be2->free(be2);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threadpool),
		cmocka_unit_test(test_matmul),
		cmocka_unit_test(test_matmul_tiles),
		cmocka_unit_test(test_matmul_gemm),
		cmocka_unit_test(test_attention_bidir4),
		cmocka_unit_test(test_matmul_errors),
		cmocka_unit_test(test_q8p_prep),
		cmocka_unit_test(test_q8K_prep),
		cmocka_unit_test(test_get_rows),
		cmocka_unit_test(test_rmsnorm),
		cmocka_unit_test(test_swiglu),
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_kv_store),
		cmocka_unit_test(test_attention_batch),
		cmocka_unit_test(test_rope),
		cmocka_unit_test(test_attention),
		cmocka_unit_test(test_attention_invariant),
		cmocka_unit_test(test_matmul_invariant),
		cmocka_unit_test(test_bench),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("CPU SIMD level: %s\n", lg_cpu_simd_level());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
