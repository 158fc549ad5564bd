/*
 * test_attention_emu.cc — lg_gpu_attention (kernels/attention*.cu, run by
 * the host emulator in emu.cc) against the CPU backend's attention, on
 * random inputs: decode batches (split-K, with bounds above and below the
 * true lengths) and prompt batches mixed with decode steps, GQA and not,
 * head_dim 64/80/128/256, block size 16/32, F16 and F32 pools, block tables
 * in scrambled order with poisoned entries past each sequence.  Also the
 * entry's argument errors.  Exit status 1 on any failure.
 *
 * It checks the kernels' index math, barriers and shuffles without a GPU;
 * the device check runs the same comparison (tests/gpu) on the card.
 */
extern "C"
{
#include "backend.h"
}
#include "attention.cuh"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

static int	failures;

/* the message runtime.cu recorded for the last failure */
#define last_msg lg_gpu_last_error()

static uint64_t rng = 88172645463325252ull;

/* xorshift64: uniform in [-1, 1). */
static float
frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float) ((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int
irand(int n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (int) ((rng >> 11) % (uint64_t) n);
}

static uint16_t
f2h(float x)
{
	_Float16	f = (_Float16) x;
	uint16_t	u;

	memcpy(&u, &f, 2);
	return u;
}

typedef struct seq_spec
{
	int			n_tok;
	int			pos0;
	int			kv_len;			/* 0: pos0 + n_tok; more: an encoder's pruned rows (bidirectional) */
} seq_spec;

/* run_case's calls are bidirectional (encoders: no causal mask) while set */
static bool bidir;

/*
 * One call: build pools, tables, q; run the emulated GPU entry and the CPU
 * backend; compare.  bound_kv/bound_tok: the host bounds passed (0: the
 * true maxima).  Returns the normalised max abs error.
 */
static double
run_case(const char *name, int n_heads, int n_kv_heads, int D, int bs, int kv_type,
		 const std::vector<seq_spec> &specs, int bound_tok, int bound_kv, double tol)
{
	const int	n_seqs = (int) specs.size();
	const int64_t qrow = (int64_t) n_heads * D;
	const int64_t krow = (int64_t) n_kv_heads * D;
	std::vector<lg_gpu_attn_seq> seqs(n_seqs);
	std::vector<int32_t> tables;
	int			rows = 0;
	int			max_tok = 0;
	int			max_kv = 0;
	int			n_blocks = 0;

	for (int s = 0; s < n_seqs; s++)
	{
		const int	kv = specs[s].kv_len > 0 ? specs[s].kv_len : specs[s].pos0 + specs[s].n_tok;

		seqs[s].q_row0 = rows;
		seqs[s].n_tok = specs[s].n_tok;
		seqs[s].pos0 = specs[s].pos0;
		seqs[s].kv_len = kv;
		seqs[s].pad_ = 0;
		rows += specs[s].n_tok;
		max_tok = specs[s].n_tok > max_tok ? specs[s].n_tok : max_tok;
		max_kv = kv > max_kv ? kv : max_kv;
		n_blocks += (kv + bs - 1) / bs;
	}
	n_blocks += 3;				/* a few never used */

	/* blocks handed out in scrambled order; 2 poisoned entries after each table */
	std::vector<int32_t> perm(n_blocks);
	for (int i = 0; i < n_blocks; i++)
		perm[i] = i;
	for (int i = n_blocks - 1; i > 0; i--)
	{
		int			j = irand(i + 1);
		int32_t		t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	int			next = 0;

	for (int s = 0; s < n_seqs; s++)
	{
		const int	nb = (seqs[s].kv_len + bs - 1) / bs;

		seqs[s].bt_off = (int32_t) tables.size();
		for (int b = 0; b < nb; b++)
			tables.push_back(perm[next++]);
		tables.push_back(0x3fffffff);
		tables.push_back(-0x3fffffff);
	}

	const size_t pool_vals = (size_t) n_blocks * bs * krow;
	const size_t esz = kv_type == LG_GPU_KV_F16 ? 2 : 4;
	void	   *kp = aligned_alloc(64, (pool_vals * esz + 63) / 64 * 64);
	void	   *vp = aligned_alloc(64, (pool_vals * esz + 63) / 64 * 64);

	for (size_t i = 0; i < pool_vals; i++)
	{
		const float k = frand() * 2.0f;
		const float v = frand();

		if (kv_type == LG_GPU_KV_F16)
		{
			((uint16_t *) kp)[i] = f2h(k);
			((uint16_t *) vp)[i] = f2h(v);
		}
		else
		{
			((float *) kp)[i] = k;
			((float *) vp)[i] = v;
		}
	}
	std::vector<float> q((size_t) rows * qrow);
	for (float &x : q)
		x = frand() * 2.0f;

	const float sentinel = 12345.0f;
	std::vector<float> out_gpu((size_t) (rows + 1) * qrow, sentinel);	/* one guard row */
	std::vector<float> out_cpu((size_t) rows * qrow, 0.0f);
	const int	btok = bound_tok > 0 ? bound_tok : max_tok;
	const int	bkv = bound_kv > 0 ? bound_kv : max_kv;
	const size_t sf = lg_gpu_attention_scratch_floats(n_seqs, btok, bkv, n_heads, D);
	std::vector<float> scratch(sf + 64, NAN);

	for (size_t i = sf; i < sf + 64; i++)
		scratch[i] = sentinel;

	lg_gpu_attn_args a;

	memset(&a, 0, sizeof(a));
	a.out = out_gpu.data();
	a.q = q.data();
	a.k_pool = kp;
	a.v_pool = vp;
	a.kv_type = kv_type;
	a.seqs = seqs.data();
	a.n_seqs = n_seqs;
	a.block_tables = tables.data();
	a.block_size = bs;
	a.n_heads = n_heads;
	a.n_kv_heads = n_kv_heads;
	a.head_dim = D;
	a.scale = 1.0f / sqrtf((float) D);
	a.max_n_tok = btok;
	a.max_kv_len = bkv;
	a.scratch = sf > 0 ? scratch.data() : NULL;
	a.bidirectional = bidir;

	lg_gpu_status st = lg_gpu_attention(NULL, &a);

	if (st != LG_GPU_OK)
	{
		printf("FAIL %s: status %d: %s\n", name, (int) st, last_msg);
		failures++;
		free(kp);
		free(vp);
		return INFINITY;
	}

	/* the CPU backend, one lg_attn_args per sequence */
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(2, 0, &err);

	if (be == NULL)
	{
		printf("FAIL %s: no CPU backend: %s\n", name, err.msg);
		exit(1);
	}
	std::vector<lg_attn_args> ca(n_seqs);

	for (int s = 0; s < n_seqs; s++)
	{
		memset(&ca[s], 0, sizeof(ca[s]));
		ca[s].out = out_cpu.data() + (size_t) seqs[s].q_row0 * qrow;
		ca[s].q = q.data() + (size_t) seqs[s].q_row0 * qrow;
		ca[s].k_cache = kp;
		ca[s].v_cache = vp;
		ca[s].block_table = tables.data() + seqs[s].bt_off;
		ca[s].block_size = bs;
		ca[s].kv_type = kv_type == LG_GPU_KV_F16 ? LG_KV_F16 : LG_KV_F32;
		ca[s].n_tok = seqs[s].n_tok;
		ca[s].pos0 = seqs[s].pos0;
		ca[s].kv_len = seqs[s].kv_len;
		ca[s].n_heads = n_heads;
		ca[s].n_kv_heads = n_kv_heads;
		ca[s].head_dim = D;
		ca[s].scale = a.scale;
		ca[s].bidirectional = bidir;
	}
	be->attention(be, ca.data(), n_seqs);
	be->free(be);

	double		maxabs = 0.0;
	double		maxref = 0.0;
	double		se = 0.0;
	double		sr = 0.0;
	bool		bad = false;

	for (size_t i = 0; i < out_cpu.size(); i++)
	{
		const double d = fabs((double) out_gpu[i] - out_cpu[i]);

		if (!(d == d) || isinf(out_gpu[i]))
			bad = true;
		maxabs = d > maxabs ? d : maxabs;
		maxref = fabs(out_cpu[i]) > maxref ? fabs(out_cpu[i]) : maxref;
		se += d * d;
		sr += (double) out_cpu[i] * out_cpu[i];
	}
	for (size_t i = out_cpu.size(); i < out_gpu.size(); i++)
		if (out_gpu[i] != sentinel)
			bad = true;
	for (size_t i = sf; i < sf + 64; i++)
		if (scratch[i] != sentinel)
			bad = true;

	const double nerr = maxabs / (maxref > 0 ? maxref : 1.0);
	const bool	ok = !bad && nerr <= tol;

	printf("%s %s%s: heads %d/%d D %d bs %d %s seqs %d bounds (%d, %d) scratch %zu: "
		   "max abs err %.3g, normalised %.3g, nmse %.3g\n",
		   ok ? "ok  " : "FAIL", name, bidir ? " (bidirectional)" : "", n_heads, n_kv_heads, D, bs, kv_type ? "f32" : "f16", n_seqs,
		   btok, bkv, sf, maxabs, nerr, se / (sr > 0 ? sr : 1.0));
	if (!ok)
		failures++;
	free(kp);
	free(vp);
	return nerr;
}

/* An argument error: the status and a message naming the problem. */
static void
expect_arg(const char *what, const lg_gpu_attn_args *a, const char *needle)
{
	lg_gpu_set_error(LG_GPU_OK, "%s", "");
	lg_gpu_status st = lg_gpu_attention(NULL, a);

	if (st != LG_GPU_ERR_ARG || strstr(last_msg, needle) == NULL)
	{
		printf("FAIL args %s: status %d, message \"%s\"\n", what, (int) st, last_msg);
		failures++;
	}
	else
		printf("ok   args %s: %s\n", what, last_msg);
}

static void
test_args(void)
{
	static float buf[64];
	static int32_t tb[4];
	static lg_gpu_attn_seq sq[1] = {{0, 1, 4000, 4001, 0, 0}};
	alignas(16) static uint16_t pool[64];
	lg_gpu_attn_args a;
	lg_gpu_attn_args b;

	memset(&a, 0, sizeof(a));
	a.out = buf;
	a.q = buf;
	a.k_pool = pool;
	a.v_pool = pool;
	a.kv_type = LG_GPU_KV_F16;
	a.seqs = sq;
	a.n_seqs = 1;
	a.block_tables = tb;
	a.block_size = 16;
	a.n_heads = 4;
	a.n_kv_heads = 2;
	a.head_dim = 64;
	a.scale = 0.125f;
	a.max_n_tok = 1;
	a.max_kv_len = 4001;
	a.scratch = NULL;

	if (lg_gpu_attention(NULL, NULL) != LG_GPU_ERR_ARG)
	{
		printf("FAIL args: NULL arguments accepted\n");
		failures++;
	}
	b = a; b.head_dim = 300; expect_arg("head_dim 300", &b, "head_dim 300");
	b = a; b.head_dim = 0; expect_arg("head_dim 0", &b, "head_dim 0");
	b = a; b.n_kv_heads = 3; expect_arg("n_heads % n_kv_heads", &b, "not a multiple");
	b = a; b.n_kv_heads = 0; expect_arg("n_kv_heads 0", &b, "must be positive");
	b = a; b.kv_type = 2; expect_arg("kv_type 2", &b, "kv_type 2");
	b = a; b.block_size = 0; expect_arg("block_size 0", &b, "block_size 0");
	b = a; b.q = NULL; expect_arg("q NULL", &b, "NULL");
	b = a; b.v_pool = NULL; expect_arg("v_pool NULL", &b, "NULL");
	b = a; b.seqs = NULL; expect_arg("seqs NULL", &b, "NULL");
	b = a; b.block_tables = NULL; expect_arg("block_tables NULL", &b, "NULL");
	b = a; b.max_kv_len = 0; expect_arg("max_kv_len 0", &b, "bounds");
	b = a; b.n_seqs = -1; expect_arg("n_seqs -1", &b, "negative");
	b = a; b.k_pool = pool + 1; expect_arg("unaligned pool", &b, "aligned");
	b = a; expect_arg("scratch NULL", &b, "scratch is NULL");
	b = a; b.n_seqs = 0; b.out = NULL;
	if (lg_gpu_attention(NULL, &b) != LG_GPU_OK)
	{
		printf("FAIL args: n_seqs 0 is not a no-op\n");
		failures++;
	}
	/* the bound: 0 when nothing splits, monotone in n_seqs and max_kv_len */
	if (lg_gpu_attention_scratch_floats(1, 1, 4001, 4, 64) == 0 ||
		lg_gpu_attention_scratch_floats(1, 1, 128, 4, 64) != 0 ||
		lg_gpu_attention_scratch_floats(0, 1, 4001, 4, 64) != 0)
	{
		printf("FAIL scratch floats\n");
		failures++;
	}
	for (int n = 1; n < 300; n += 7)
		for (int kv = 100; kv < 5000; kv += 97)
			if (lg_gpu_attention_scratch_floats(n, 1, kv, 32, 128) > lg_gpu_attention_scratch_floats(n + 7, 1, kv, 32, 128) ||
				lg_gpu_attention_scratch_floats(n, 1, kv, 32, 128) > lg_gpu_attention_scratch_floats(n, 1, kv + 97, 32, 128))
			{
				printf("FAIL scratch floats not monotone at n_seqs %d, max_kv_len %d\n", n, kv);
				failures++;
				return;
			}
	/* every plan the entry can make fits the bound, whatever n_kv_heads */
	for (int n = 1; n < 300; n += 3)
		for (int kvh = 1; kvh <= 32; kvh *= 2)
			for (int kv = 1; kv < 9000; kv += 61)
			{
				const int32_t group = 32 / kvh;
				const int64_t hb = (int64_t) kvh * lg_ceil_div(group, lg_attn_dec_heads(group));
				const lg_attn_split_plan plan = lg_attn_plan_splits(n * hb, kv);
				const size_t need = plan.n_splits > 1 ? (size_t) n * plan.n_splits * 32 * 130 : 0;

				if (plan.n_splits < 1 || plan.n_splits > LG_ATTN_TARGET_BLOCKS ||
					(int64_t) plan.n_splits * plan.split_len < kv ||
					need > lg_gpu_attention_scratch_floats(n, 1, kv, 32, 128))
				{
					printf("FAIL split plan n_seqs %d n_kv_heads %d max_kv_len %d: %d x %d, needs %zu\n",
						   n, kvh, kv, plan.n_splits, plan.split_len, need);
					failures++;
					return;
				}
			}
}

int
main(int argc, char **argv)
{
	const bool	quick = argc > 1 && strcmp(argv[1], "quick") == 0;
	/* the emulator's float math is the CPU's up to summation order: ~1e-6 */
	const double tol16 = 2e-5;
	const double tol32 = 2e-5;
	double		worst16 = 0.0;
	double		worst32 = 0.0;

	test_args();

	for (int kv = 0; kv < 2; kv++)
	{
		const double tol = kv == LG_GPU_KV_F16 ? tol16 : tol32;
		double		e[32];
		int			n = 0;

		/* decode: lengths across tiles, splits and blocks; GQA 4:1 */
		e[n++] = run_case("decode", 8, 2, 64, 16, kv,
						  {{1, 0}, {1, 36}, {1, 300}, {1, 1100}, {1, 2999}}, 0, 0, tol);
		/* decode, bound far above the truth (a graph captured at the context size) */
		e[n++] = run_case("decode-bound-high", 4, 4, 128, 32, kv,
						  {{1, 5}, {1, 700}, {1, 130}}, 0, 8192, tol);
		/* decode, bound below the truth: the last split takes the rest */
		e[n++] = run_case("decode-bound-low", 12, 1, 80, 16, kv, {{1, 900}, {1, 40}}, 0, 300, tol);
		/* prompts mixed with decode steps and a cached prefix */
		e[n++] = run_case("prompt-mixed", 4, 2, 64, 16, kv,
						  {{70, 0}, {1, 500}, {33, 200}, {5, 0}}, 0, 0, tol);
		if (!quick)
		{
			e[n++] = run_case("prompt-d128", 4, 1, 128, 32, kv, {{130, 0}, {17, 90}}, 0, 0, tol);
			e[n++] = run_case("prompt-d256", 2, 2, 256, 16, kv, {{40, 3}, {1, 77}}, 0, 0, tol);
			/* the bound on n_tok below the truth: blocks loop over the tiles */
			e[n++] = run_case("prompt-d96-bound-low", 3, 3, 96, 16, kv, {{100, 0}, {2, 9}}, 2, 0, tol);
			e[n++] = run_case("decode-d256-f", 16, 2, 256, 32, kv, {{1, 600}, {1, 20}}, 0, 0, tol);
			/* one split (output written directly), head_dim 32: 8 passes share a tile */
			e[n++] = run_case("decode-one-split", 6, 2, 32, 16, kv, {{1, 0}, {1, 150}, {1, 199}}, 0, 0, tol);
			/* odd head_dim: the scalar paths of both kernels */
			e[n++] = run_case("decode-d33", 6, 3, 33, 16, kv, {{1, 700}, {1, 3}}, 0, 0, tol);
			e[n++] = run_case("prompt-d33", 6, 3, 33, 32, kv, {{65, 0}, {1, 64}, {3, 40}}, 0, 0, tol);
		}
		if (!quick)
		{
			/* random shapes: odd block sizes, groups of 3 and 12, any head_dim */
			static const int dims[] = {16, 48, 64, 80, 96, 112, 128, 7, 200};
			static const int bss[] = {1, 7, 16, 32};
			static const int groups[] = {1, 2, 3, 8, 12};

			for (int r = 0; r < 6; r++)
			{
				const int	D = dims[irand(9)];
				const int	bs = bss[irand(4)];
				const int	n_kv = 1 + irand(2);
				const int	n_heads = n_kv * groups[irand(5)];
				const bool	decode = irand(2) == 0;
				std::vector<seq_spec> sp;
				char		nm[32];

				for (int k = 1 + irand(4); k > 0; k--)
					sp.push_back({decode ? 1 : 1 + irand(80), irand(decode ? 1500 : 300)});
				snprintf(nm, sizeof(nm), "random-%d", r);
				e[n++] = run_case(nm, n_heads, n_kv, D, bs, kv, sp, 0, 0, tol);
			}
		}
		/*
		 * encoders: whole sequences (pos0 0, every query sees all), padded
		 * batches of different lengths, the prompt kernels' tiles and the
		 * pruned last layer (one query per sequence — cls or last pooling —
		 * over all its positions: the decode kernel, which must not stop at
		 * the query's position)
		 */
		bidir = true;
		{
			/*
			 * With an F16 pool the CPU's bidirectional kernel dots the f32
			 * query with the keys, where the GPU rounds the query to f16
			 * as ggml's flash path and both causal kernels do: ~2^-11 of
			 * each score.  Encoder steps use an F32 pool (embed.c), kept
			 * at the tight bound; these F16 errors are not in the worst.
			 */
			const double tb = kv == LG_GPU_KV_F16 ? 1e-3 : tol;
			double		eb[5];
			int			nb = 0;

			eb[nb++] = run_case("encoder", 4, 4, 64, 1, kv, {{7, 0}, {1, 0}, {70, 0}, {33, 0}}, 0, 0, tb);
			eb[nb++] = run_case("encoder-d32", 12, 12, 32, 1, kv, {{130, 0}, {5, 0}}, 0, 0, tb);
			eb[nb++] = run_case("encoder-pruned", 4, 4, 64, 1, kv,
								{{1, 0, 7}, {1, 0, 1}, {1, 0, 300}, {1, 0, 33}}, 0, 0, tb);
			eb[nb++] = run_case("encoder-pruned-last", 6, 6, 64, 16, kv, {{1, 69, 70}, {1, 0, 200}}, 0, 0, tb);
			if (!quick)
				eb[nb++] = run_case("encoder-d128", 2, 2, 128, 32, kv, {{90, 0}, {17, 0}}, 0, 0, tb);
			for (int i = 0; i < nb && kv == LG_GPU_KV_F32; i++)
				e[n++] = eb[i];
		}
		bidir = false;
		for (int i = 0; i < n; i++)
		{
			double	   *w = kv == LG_GPU_KV_F16 ? &worst16 : &worst32;

			*w = e[i] > *w ? e[i] : *w;
		}
	}
	printf("worst normalised max abs error: f16 pool %.3g (bound %.g), f32 pool %.3g (bound %.g)\n",
		   worst16, tol16, worst32, tol32);
	if (failures > 0)
	{
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("all passed\n");
	return 0;
}
