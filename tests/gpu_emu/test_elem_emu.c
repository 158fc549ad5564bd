/*
 * test_elem_emu.c — the small GPU kernels (rmsnorm, rope, swiglu, add,
 * add_bias, kv_store, sample; the encoders' layernorm, gelu and row
 * gather) run on the CPU through tests/gpu_emu and are
 * compared with the CPU backend and the CPU sampler.  This checks their
 * index math, barriers, reductions and selection logic on any machine;
 * the device's own math library (expf, cosf) is checked by tests/gpu on a
 * GPU.  The entries' argument checks are tested here too.
 *
 * Built and run by tests/gpu_emu/run.sh [quick].  Exit status 0 = all passed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>

#include "lg_kernels.h"
#include "backend.h"
#include "backend_cpu_impl.h"
#include "sampler.h"

/* rope.cu's host half, exposed for this check (not in lg_kernels.h). */
void		lg_gpu_rope_host_consts(const lg_gpu_rope_params *rp, float *theta_scale, float corr[2],
									float *mscale);

/* emu.cc: the blocks along x that run (these kernels are grid-stride loops) */
extern unsigned lg_emu_grid_cap;

static int n_fail;
static int quick;				/* argv[1] "quick": a ninth of the large-vocabulary sampler cases */
static int n_check;
/* the entries' last message */
#define last_msg lg_gpu_last_error()

#define CHECK(cond, ...) do { \
	n_check++; \
	if (!(cond)) { n_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

/* xorshift64*: reproducible inputs. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd_u64(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* Uniform in [-1, 1). */
static float
rnd_f(void)
{
	return (float) ((double) (rnd_u64() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static uint32_t
f32_bits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	return u;
}

/* Bitwise equal, or both NaN. */
static int
same_float(float a, float b)
{
	return f32_bits(a) == f32_bits(b) || (isnan(a) && isnan(b));
}

static lg_backend *cpu;

/* ---- rmsnorm ------------------------------------------------------------ */

static void
test_rmsnorm(void)
{
	static const int64_t ds[] = {1, 3, 31, 256, 1000, 4097};
	int64_t		n = 5;

	for (size_t di = 0; di < sizeof(ds) / sizeof(ds[0]); di++)
	{
		int64_t		d = ds[di];
		float	   *x = malloc(sizeof(float) * n * d);
		float	   *w = malloc(sizeof(float) * d);
		float	   *ref = malloc(sizeof(float) * n * d);
		float	   *ref_nw = malloc(sizeof(float) * n * d);
		float	   *y = malloc(sizeof(float) * n * d);
		uint16_t   *yh = malloc(sizeof(uint16_t) * n * d);
		int			bad = 0;
		int			bad_nw = 0;
		int			bad_f16 = 0;
		int			bad_bf16 = 0;
		int			bad_inplace = 0;

		for (int64_t i = 0; i < n * d; i++)
			x[i] = rnd_f() * (i % 7 == 0 ? 100.0f : 1.0f);
		for (int64_t i = 0; i < d; i++)
			w[i] = rnd_f() * 2.0f;
		cpu->rmsnorm(cpu, ref, x, w, n, d, 1e-5f);
		cpu->rmsnorm(cpu, ref_nw, x, NULL, n, d, 1e-5f);

		CHECK(lg_gpu_rmsnorm(NULL, y, x, w, n, d, 1e-5f) == LG_GPU_OK, "rmsnorm d=%lld", (long long) d);
		for (int64_t i = 0; i < n * d; i++)
			bad += !same_float(y[i], ref[i]);
		CHECK(lg_gpu_rmsnorm(NULL, y, x, NULL, n, d, 1e-5f) == LG_GPU_OK, "rmsnorm w=NULL");
		for (int64_t i = 0; i < n * d; i++)
			bad_nw += !same_float(y[i], ref_nw[i]);
		CHECK(lg_gpu_rmsnorm_half(NULL, yh, LG_TYPE_F16, x, w, n, d, 1e-5f) == LG_GPU_OK, "f16");
		for (int64_t i = 0; i < n * d; i++)
			bad_f16 += yh[i] != lg_f32_to_f16(ref[i]);
		CHECK(lg_gpu_rmsnorm_half(NULL, yh, LG_TYPE_BF16, x, w, n, d, 1e-5f) == LG_GPU_OK, "bf16");
		for (int64_t i = 0; i < n * d; i++)
			bad_bf16 += yh[i] != lg_f32_to_bf16(ref[i]);
		memcpy(y, x, sizeof(float) * n * d);
		CHECK(lg_gpu_rmsnorm(NULL, y, y, w, n, d, 1e-5f) == LG_GPU_OK, "in place");
		for (int64_t i = 0; i < n * d; i++)
			bad_inplace += !same_float(y[i], ref[i]);
		/* the double sums differ only in order: bitwise equal in practice */
		CHECK(bad == 0 && bad_nw == 0 && bad_inplace == 0,
			  "rmsnorm d=%lld: %d/%d/%d values differ from the CPU", (long long) d, bad, bad_nw,
			  bad_inplace);
		CHECK(bad_f16 == 0 && bad_bf16 == 0, "rmsnorm_half d=%lld: f16 %d bf16 %d differ",
			  (long long) d, bad_f16, bad_bf16);
		free(x);
		free(w);
		free(ref);
		free(ref_nw);
		free(y);
		free(yh);
	}
	CHECK(lg_gpu_rmsnorm(NULL, NULL, NULL, NULL, 0, 16, 1e-5f) == LG_GPU_OK, "n=0 is a no-op");
	CHECK(lg_gpu_rmsnorm(NULL, NULL, NULL, NULL, -1, 16, 1e-5f) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "negative") != NULL, "negative n: %s", last_msg);
	CHECK(lg_gpu_rmsnorm(NULL, NULL, (float *) 8, NULL, 2, 16, 1e-5f) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "y is NULL") != NULL, "NULL y: %s", last_msg);
	CHECK(lg_gpu_rmsnorm(NULL, (float *) 8, (float *) 8, NULL, 2, 0, 1e-5f) == LG_GPU_ERR_ARG,
		  "d=0 with rows");
	CHECK(lg_gpu_rmsnorm_half(NULL, (void *) 8, LG_TYPE_Q8_0, (float *) 8, NULL, 2, 16, 1e-5f) ==
		  LG_GPU_ERR_ARG && strstr(last_msg, "neither F16 nor BF16") != NULL, "Q8_0 out: %s", last_msg);
	CHECK(lg_gpu_rmsnorm_half(NULL, (void *) 8, LG_TYPE_F32, (float *) 8, NULL, 2, 16, 1e-5f) ==
		  LG_GPU_ERR_ARG, "F32 is not a half type");
}

/* ---- rope --------------------------------------------------------------- */

static void
rope_case(int style, int32_t n_heads, int32_t head_dim, int32_t n_rot, int ff, int yarn,
		  float freq_scale)
{
	int64_t		n = 4;
	int64_t		len = n * n_heads * head_dim;
	float	   *x = malloc(sizeof(float) * len);
	float	   *ref = malloc(sizeof(float) * len);
	float	   *factors = malloc(sizeof(float) * (n_rot / 2));
	int32_t		pos[4] = {0, 1, 517, 100000};
	lg_rope_params cp;
	lg_gpu_rope_params gp;
	int			bad = 0;

	for (int64_t i = 0; i < len; i++)
		x[i] = ref[i] = rnd_f() * 3.0f;
	for (int i = 0; i < n_rot / 2; i++)
		factors[i] = 1.0f + (float) i * 0.37f;
	memset(&cp, 0, sizeof(cp));
	cp.style = style == 2 ? LG_ROPE_NEOX : LG_ROPE_NORM;
	cp.n_rot = n_rot;
	cp.freq_base = 10000.0f;
	cp.freq_scale = freq_scale;
	cp.freq_factors = ff ? factors : NULL;
	cp.ext_factor = yarn ? 1.0f : 0.0f;
	cp.attn_factor = yarn ? 1.1f : 1.0f;
	cp.beta_fast = 32.0f;
	cp.beta_slow = 1.0f;
	cp.n_ctx_orig = 4096;
	gp.style = style;
	gp.n_rot = cp.n_rot;
	gp.freq_base = cp.freq_base;
	gp.freq_scale = cp.freq_scale;
	gp.freq_factors = cp.freq_factors;
	gp.ext_factor = cp.ext_factor;
	gp.attn_factor = cp.attn_factor;
	gp.beta_fast = cp.beta_fast;
	gp.beta_slow = cp.beta_slow;
	gp.n_ctx_orig = cp.n_ctx_orig;

	cpu->rope(cpu, ref, n, n_heads, head_dim, pos, &cp);
	CHECK(lg_gpu_rope(NULL, x, n, n_heads, head_dim, pos, &gp) == LG_GPU_OK, "rope: %s", last_msg);
	for (int64_t i = 0; i < len; i++)
		bad += !same_float(x[i], ref[i]);
	CHECK(bad == 0, "rope style %d heads %d dim %d n_rot %d ff %d yarn %d: %d values differ",
		  style, n_heads, head_dim, n_rot, ff, yarn, bad);
	free(x);
	free(ref);
	free(factors);
}

static void
test_rope(void)
{
	lg_gpu_rope_params gp;
	float		ts;
	float		corr[2];
	float		ref[2];
	float		ms;
	float		x[8];
	int32_t		pos[1] = {0};

	for (int style = 0; style <= 2; style += 2)
	{
		rope_case(style, 3, 64, 64, 0, 0, 1.0f);
		rope_case(style, 2, 80, 32, 0, 0, 1.0f);	/* partial rotation: dims 32..79 pass */
		rope_case(style, 4, 128, 128, 1, 0, 1.0f);	/* llama3 freq factors */
		rope_case(style, 2, 64, 64, 0, 1, 0.25f);	/* YaRN */
		rope_case(style, 1, 1000, 998, 0, 0, 0.5f); /* more pairs than threads */
	}

	/* the host half against the engine's */
	memset(&gp, 0, sizeof(gp));
	gp.n_rot = 128;
	gp.freq_base = 1e6f;
	gp.freq_scale = 0.125f;
	gp.ext_factor = 1.0f;
	gp.attn_factor = 1.0f;
	gp.beta_fast = 32.0f;
	gp.beta_slow = 1.0f;
	gp.n_ctx_orig = 8192;
	lg_gpu_rope_host_consts(&gp, &ts, corr, &ms);
	lg_rope_yarn_corr_dims(128, 8192, 1e6f, 32.0f, 1.0f, ref);
	CHECK(same_float(corr[0], ref[0]) && same_float(corr[1], ref[1]),
		  "corr dims %g %g, engine %g %g", corr[0], corr[1], ref[0], ref[1]);
	CHECK(same_float(ts, powf(1e6f, -2.0f / 128)), "theta_scale");
	CHECK(same_float(ms, 1.0f * (1.0f + 0.1f * logf(1.0f / 0.125f))), "mscale");

	gp.style = 1;
	CHECK(lg_gpu_rope(NULL, x, 1, 1, 8, pos, &gp) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "style 1") != NULL, "style 1: %s", last_msg);
	gp.style = 0;
	gp.n_rot = 10;
	CHECK(lg_gpu_rope(NULL, x, 1, 1, 8, pos, &gp) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "n_rot 10") != NULL, "n_rot > head_dim: %s", last_msg);
	gp.n_rot = 3;
	CHECK(lg_gpu_rope(NULL, x, 1, 1, 8, pos, &gp) == LG_GPU_ERR_ARG, "odd n_rot");
	gp.n_rot = 8;
	CHECK(lg_gpu_rope(NULL, x, 1, 1, 8, NULL, &gp) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "pos is NULL") != NULL, "NULL pos: %s", last_msg);
	CHECK(lg_gpu_rope(NULL, x, 1, 1, 8, pos, NULL) == LG_GPU_ERR_ARG, "NULL params");
	CHECK(lg_gpu_rope(NULL, NULL, 0, 1, 8, NULL, &gp) == LG_GPU_OK, "n=0 is a no-op");
	CHECK(lg_gpu_rope(NULL, x, 1, 0, 8, pos, &gp) == LG_GPU_ERR_ARG, "0 heads");
}

/* ---- swiglu, add, add_bias ---------------------------------------------- */

static void
test_elementwise(void)
{
	enum { N = 1000 };
	float		g[N], u[N], ref[N], y[N], x[N], b[7];
	int			bad = 0;

	for (int i = 0; i < N; i++)
	{
		g[i] = rnd_f() * 20.0f;
		u[i] = rnd_f() * 3.0f;
		/* the scalar CPU expression (the reference backend's swiglu) */
		ref[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
	}
	g[0] = -100.0f;				/* expf(100) overflows: silu = -0 */
	ref[0] = g[0] / (1.0f + expf(-g[0])) * u[0];
	CHECK(lg_gpu_swiglu(NULL, g, u, N) == LG_GPU_OK, "swiglu");
	for (int i = 0; i < N; i++)
		bad += !same_float(g[i], ref[i]);
	CHECK(bad == 0, "swiglu: %d values differ", bad);
	CHECK(lg_gpu_swiglu(NULL, NULL, u, 3) == LG_GPU_ERR_ARG && strstr(last_msg, "g is NULL"),
		  "swiglu NULL: %s", last_msg);
	CHECK(lg_gpu_swiglu(NULL, NULL, NULL, 0) == LG_GPU_OK, "swiglu n=0");
	CHECK(lg_gpu_swiglu(NULL, g, u, -2) == LG_GPU_ERR_ARG, "swiglu n<0");

	for (int i = 0; i < N; i++)
	{
		y[i] = ref[i] = rnd_f();
		x[i] = rnd_f();
		ref[i] += x[i];
	}
	bad = 0;
	CHECK(lg_gpu_add(NULL, y, x, N) == LG_GPU_OK, "add");
	for (int i = 0; i < N; i++)
		bad += !same_float(y[i], ref[i]);
	CHECK(bad == 0, "add: %d values differ", bad);
	CHECK(lg_gpu_add(NULL, y, NULL, 1) == LG_GPU_ERR_ARG, "add NULL");

	for (int i = 0; i < 7; i++)
		b[i] = rnd_f();
	for (int i = 0; i < 7 * 140; i++)
		ref[i] = y[i];
	cpu->add_bias(cpu, ref, b, 140, 7);
	bad = 0;
	CHECK(lg_gpu_add_bias(NULL, y, b, 140, 7) == LG_GPU_OK, "add_bias");
	for (int i = 0; i < 7 * 140; i++)
		bad += !same_float(y[i], ref[i]);
	CHECK(bad == 0, "add_bias: %d values differ", bad);
	CHECK(lg_gpu_add_bias(NULL, y, b, 3, -1) == LG_GPU_ERR_ARG, "add_bias d<0");
	CHECK(lg_gpu_add_bias(NULL, NULL, NULL, 0, 7) == LG_GPU_OK, "add_bias n=0");
}

/* ---- encoders: layernorm, gelu, row gather ------------------------------ */

static void
test_encoder_ops(void)
{
	static const int64_t ds[] = {1, 3, 31, 64, 384, 1000, 4097};
	const int64_t n = 5;

	for (size_t di = 0; di < sizeof(ds) / sizeof(ds[0]); di++)
	{
		const int64_t d = ds[di];
		float	   *x = malloc(sizeof(float) * n * d);
		float	   *w = malloc(sizeof(float) * d);
		float	   *b = malloc(sizeof(float) * d);
		float	   *ones = malloc(sizeof(float) * d);
		float	   *zeros = malloc(sizeof(float) * d);
		float	   *ref = malloc(sizeof(float) * n * d);
		float	   *ref_nwb = malloc(sizeof(float) * n * d);
		float	   *y = malloc(sizeof(float) * n * d);
		int			bad = 0,
					bad_nwb = 0,
					bad_inplace = 0;

		/* a large offset: the mean's subtraction is what a one-pass variance gets wrong */
		for (int64_t i = 0; i < n * d; i++)
			x[i] = rnd_f() * (i % 7 == 0 ? 30.0f : 1.0f) + 50.0f;
		for (int64_t i = 0; i < d; i++)
		{
			w[i] = rnd_f() * 2.0f;
			b[i] = rnd_f();
			ones[i] = 1.0f;
			zeros[i] = 0.0f;
		}
		cpu->layernorm(cpu, ref, x, w, b, n, d, 1e-12f);
		cpu->layernorm(cpu, ref_nwb, x, ones, zeros, n, d, 1e-12f);
		CHECK(lg_gpu_layernorm(NULL, y, x, w, b, n, d, 1e-12f) == LG_GPU_OK, "layernorm d=%lld", (long long) d);
		for (int64_t i = 0; i < n * d; i++)
			bad += !same_float(y[i], ref[i]);
		CHECK(lg_gpu_layernorm(NULL, y, x, NULL, NULL, n, d, 1e-12f) == LG_GPU_OK, "layernorm w=b=NULL");
		for (int64_t i = 0; i < n * d; i++)
			bad_nwb += !same_float(y[i], ref_nwb[i]);
		memcpy(y, x, sizeof(float) * n * d);
		CHECK(lg_gpu_layernorm(NULL, y, y, w, b, n, d, 1e-12f) == LG_GPU_OK, "layernorm in place");
		for (int64_t i = 0; i < n * d; i++)
			bad_inplace += !same_float(y[i], ref[i]);
		/* the double sums differ only in order, every float operation is the CPU's: bitwise */
		CHECK(bad == 0 && bad_nwb == 0 && bad_inplace == 0,
			  "layernorm d=%lld: %d/%d/%d values differ from the CPU", (long long) d, bad, bad_nwb,
			  bad_inplace);

		/* gelu over the same shape, with tails and huge values */
		for (int64_t i = 0; i < n * d; i++)
			ref[i] = y[i] = rnd_f() * (i % 5 == 0 ? 12.0f : 3.0f);
		y[0] = ref[0] = -100.0f;
		if (n * d > 1)
			y[1] = ref[1] = 100.0f;
		cpu->gelu(cpu, ref, n, d);
		CHECK(lg_gpu_gelu(NULL, y, n * d) == LG_GPU_OK, "gelu d=%lld", (long long) d);
		bad = 0;
		for (int64_t i = 0; i < n * d; i++)
			bad += !same_float(y[i], ref[i]);
		/* the scalar CPU expression, expf from the same libm: bitwise */
		CHECK(bad == 0, "gelu d=%lld: %d values differ from the CPU", (long long) d, bad);
		free(x);
		free(w);
		free(b);
		free(ones);
		free(zeros);
		free(ref);
		free(ref_nwb);
		free(y);
	}
	CHECK(lg_gpu_layernorm(NULL, NULL, NULL, NULL, NULL, 0, 16, 1e-5f) == LG_GPU_OK, "layernorm n=0");
	CHECK(lg_gpu_layernorm(NULL, NULL, NULL, NULL, NULL, -1, 16, 1e-5f) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "negative") != NULL, "layernorm negative n: %s", last_msg);
	CHECK(lg_gpu_layernorm(NULL, NULL, (float *) 8, NULL, NULL, 2, 16, 1e-5f) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "y is NULL") != NULL, "layernorm NULL y: %s", last_msg);
	CHECK(lg_gpu_layernorm(NULL, (float *) 8, (float *) 8, NULL, NULL, 2, 0, 1e-5f) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "no mean") != NULL, "layernorm d=0: %s", last_msg);
	CHECK(lg_gpu_gelu(NULL, NULL, 0) == LG_GPU_OK, "gelu n=0");
	CHECK(lg_gpu_gelu(NULL, NULL, 3) == LG_GPU_ERR_ARG && strstr(last_msg, "x is NULL"), "gelu NULL: %s",
		  last_msg);
	CHECK(lg_gpu_gelu(NULL, (float *) 8, -1) == LG_GPU_ERR_ARG, "gelu n<0");

	/* the row gather, through the GPU backend's table as forward_bert calls it */
	{
		enum { R = 9, D = 37 };
		static const int32_t rows[] = {8, 0, 3, 3, 7};
		const int64_t m = sizeof(rows) / sizeof(rows[0]);
		float		src[R * D], want[R * D], got[R * D];
		lg_error	err;
		lg_backend *gpu = lg_backend_open("cuda:0", 1, &err);
		int			bad;

		CHECK(gpu != NULL && gpu->gather_rows != NULL && gpu->layernorm != NULL && gpu->gelu != NULL,
			  "GPU backend with the encoder entries: %s", gpu ? "" : err.msg);
		for (int i = 0; i < R * D; i++)
			src[i] = rnd_f();
		for (int i = 0; i < R * D; i++)
			want[i] = got[i] = 777.0f;
		cpu->gather_rows(cpu, want, src, rows, m, D);
		bad = 0;
		for (int64_t i = 0; i < m; i++)
			for (int c = 0; c < D; c++)
				bad += !same_float(want[i * D + c], src[rows[i] * D + c]);
		CHECK(bad == 0 && want[m * D] == 777.0f, "CPU gather_rows: %d values wrong", bad);
		if (gpu != NULL)
		{
			float	   *dsrc = lg_backend_alloc(gpu, sizeof(src), &err);
			float	   *dy = lg_backend_alloc(gpu, sizeof(got), &err);

			CHECK(dsrc != NULL && dy != NULL, "device buffers: %s", err.msg);
			if (dsrc != NULL && dy != NULL &&
				lg_backend_write(gpu, dsrc, src, sizeof(src), &err) == LG_OK &&
				lg_backend_write(gpu, dy, got, sizeof(got), &err) == LG_OK)
			{
				/* get_rows launches one block per row, not a grid-stride loop */
				lg_emu_grid_cap = 0;
				gpu->gather_rows(gpu, dy, dsrc, rows, m, D);
				lg_emu_grid_cap = 3;
				CHECK(lg_backend_read(gpu, got, dy, sizeof(got), &err) == LG_OK, "read back: %s", err.msg);
				bad = 0;
				for (int i = 0; i < R * D; i++)
					bad += !same_float(got[i], want[i]);
				CHECK(bad == 0, "GPU gather_rows: %d values differ from the CPU's", bad);
			}
			lg_backend_buf_free(gpu, dsrc);
			lg_backend_buf_free(gpu, dy);
			gpu->free(gpu);
		}
	}
}

/* ---- kv_store ----------------------------------------------------------- */

static void
test_kv_store(void)
{
	enum { D = 19, ROWS = 6, POOL = 16 };
	float		x[ROWS * D];
	int32_t		slots[ROWS] = {5, 0, 15, 7, -1, 8};
	uint16_t	pool16[POOL * D];
	float		pool32[POOL * D];
	int			bad16 = 0;
	int			bad32 = 0;
	int			touched = 0;

	for (int i = 0; i < ROWS * D; i++)
		x[i] = rnd_f() * 70000.0f;
	/* the rounding edges: overflow, ties, subnormals, NaN of either sign */
	x[0] = 65519.0f;
	x[1] = 65520.0f;
	x[2] = -INFINITY;
	x[3] = NAN;
	x[4] = -NAN;
	x[5] = 1.0f + 0x1p-11f;		/* exactly halfway: to even */
	x[6] = 0x1p-25f;			/* half of the smallest subnormal: to even (0) */
	x[7] = 0x1.8p-24f;
	x[8] = -0.0f;
	memset(pool16, 0xab, sizeof(pool16));
	memset(pool32, 0xab, sizeof(pool32));
	CHECK(lg_gpu_kv_store(NULL, pool16, LG_GPU_KV_F16, slots, x, ROWS, D) == LG_GPU_OK, "kv f16");
	CHECK(lg_gpu_kv_store(NULL, pool32, LG_GPU_KV_F32, slots, x, ROWS, D) == LG_GPU_OK, "kv f32");
	for (int i = 0; i < ROWS; i++)
	{
		if (slots[i] < 0)
			continue;
		for (int c = 0; c < D; c++)
		{
			bad16 += pool16[slots[i] * D + c] != lg_f32_to_f16(x[i * D + c]);
			bad32 += !same_float(pool32[slots[i] * D + c], x[i * D + c]);
		}
	}
	for (int r = 0; r < POOL; r++)
	{
		int			stored = 0;

		for (int i = 0; i < ROWS; i++)
			stored |= slots[i] == r;
		if (!stored)
			for (int c = 0; c < D; c++)
				touched += pool16[r * D + c] != 0xabab;
	}
	CHECK(bad16 == 0 && bad32 == 0, "kv_store: f16 %d f32 %d values differ", bad16, bad32);
	CHECK(touched == 0, "kv_store wrote %d values outside its slots", touched);
	CHECK(lg_gpu_kv_store(NULL, pool16, 2, slots, x, ROWS, D) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "KV type 2") != NULL, "kv type 2: %s", last_msg);
	CHECK(lg_gpu_kv_store(NULL, pool16, LG_GPU_KV_F16, NULL, x, ROWS, D) == LG_GPU_ERR_ARG &&
		  strstr(last_msg, "slots is NULL") != NULL, "NULL slots: %s", last_msg);
	CHECK(lg_gpu_kv_store(NULL, NULL, LG_GPU_KV_F16, NULL, NULL, 0, D) == LG_GPU_OK, "kv n=0");
}

/* ---- sample ------------------------------------------------------------- */

/* The sampler's RNG (sampler.c): the first uniform a seed gives. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double
first_uniform(uint64_t seed)
{
	uint64_t	x = seed;
	uint64_t	s[4];
	uint64_t	r;

	for (int i = 0; i < 4; i++)
		s[i] = splitmix64(&x);
	r = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9;
	return (double) (r >> 11) * 0x1.0p-53;
}

/* Logit patterns. */
enum
{
	PAT_SPREAD,					/* uniform over [-scale, scale] */
	PAT_TIES,					/* few distinct values: long runs of ties */
	PAT_BANS,					/* some -inf, NaN and +inf */
	PAT_FLAT					/* all equal */
};

static void
fill_logits(float *l, int32_t nv, int pat, float scale)
{
	for (int32_t i = 0; i < nv; i++)
	{
		float		v = rnd_f() * scale;

		if (pat == PAT_TIES)
			v = roundf(v * 2.0f) / 2.0f;
		else if (pat == PAT_FLAT)
			v = 0.25f;
		else if (pat == PAT_BANS)
		{
			uint64_t	k = rnd_u64() % 16;

			if (k < 4)
				v = -INFINITY;
			else if (k == 4)
				v = NAN;
			else if (k == 5 && rnd_u64() % 8 == 0)
				v = INFINITY;
			else if (k == 6)
				v = -0.0f;
			else if (k == 7)
				v = 0.0f;
		}
		l[i] = v;
	}
}

/*
 * Rows of one vocabulary size and pattern, one parameter set per row, the
 * same set on the CPU sampler with a seed whose first draw is the row's u.
 */
static void
sample_case(int32_t nv, int pat, float scale, const lg_gpu_sample_params *ps, int n)
{
	float	   *logits = malloc(sizeof(float) * nv * n);
	lg_gpu_sample_params *gp = malloc(sizeof(*gp) * n);
	int32_t    *ids = malloc(sizeof(int32_t) * n);
	int32_t    *want = malloc(sizeof(int32_t) * n);

	for (int r = 0; r < n; r++)
	{
		uint64_t	seed = rnd_u64();
		lg_sampler_params sp;
		lg_sampler *s;
		lg_error	err;

		fill_logits(logits + (int64_t) r * nv, nv, pat, scale);
		gp[r] = ps[r];
		gp[r].u = (float) first_uniform(seed);
		ids[r] = -7;
		want[r] = -8;
		lg_sampler_params_default(&sp);
		sp.temperature = ps[r].temperature;
		sp.top_k = ps[r].top_k;
		sp.top_p = ps[r].top_p;
		sp.min_p = ps[r].min_p;
		sp.typical_p = 1.0f;
		sp.penalty_last_n = 0;
		sp.has_seed = true;
		sp.seed = seed;
		s = lg_sampler_new(&sp, nv, &err);
		CHECK(s != NULL, "lg_sampler_new: %s", err.msg);
		if (s == NULL)
			continue;
		want[r] = lg_sampler_sample(s, logits + (int64_t) r * nv, NULL);
		lg_sampler_free(s);
	}
	CHECK(lg_gpu_sample(NULL, ids, logits, n, nv, gp, NULL, lg_gpu_sample_scratch_bytes(n, nv)) ==
		  LG_GPU_OK, "sample: %s", last_msg);
	for (int r = 0; r < n; r++)
		CHECK(ids[r] == want[r],
			  "sample nv %d pattern %d scale %g row %d (T %g k %d p %g min_p %g u %.9g): gpu %d cpu %d",
			  nv, pat, scale, r, ps[r].temperature, ps[r].top_k, ps[r].top_p, ps[r].min_p,
			  gp[r].u, ids[r], want[r]);
	free(want);
	free(logits);
	free(gp);
	free(ids);
}

static void
test_sample(void)
{
	static const float temps[] = {0.0f, 0.7f, 1.0f, 1.6f};
	static const float top_ps[] = {1.0f, 0.9f, 0.5f, 0.0f};
	static const float min_ps[] = {0.0f, 0.05f, 0.3f};
	static const int32_t nvs[] = {1, 7, 100, 3000};
	lg_gpu_sample_params ps[64];

	for (size_t vi = 0; vi < sizeof(nvs) / sizeof(nvs[0]); vi++)
	{
		int32_t		nv = nvs[vi];
		int32_t		ks[] = {0, 1, 5, 40, 600, 1500, nv - 1, nv, nv + 5};

		for (int pat = PAT_SPREAD; pat <= PAT_FLAT; pat++)
		{
			for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++)
			{
				int			n = 0;

				if (ks[ki] < 0 || (ks[ki] > nv + 5))
					continue;
				/* quick: at the large vocabulary one (k, pattern) pair in 9 (a 1024-fiber block is slow) */
				if (quick && nv >= 1000 && (ki + (size_t) pat) % 9 != 0)
					continue;
				for (size_t ti = 0; ti < 4; ti++)
					for (size_t pi = 0; pi < 4; pi++)
						for (size_t mi = 0; mi < 3; mi++)
						{
							lg_gpu_sample_params *p = &ps[n];

							/* greedy ignores the rest: one row of it is enough */
							if (ti == 0 && (pi > 0 || mi > 0))
								continue;
							memset(p, 0, sizeof(*p));
							p->temperature = temps[ti];
							p->top_k = ks[ki];
							p->top_p = top_ps[pi];
							p->min_p = min_ps[mi];
							n++;
						}
				/*
				 * top-k off, top-p on, >= 1024 candidates: the CPU may draw
				 * from its nucleus in quickselect order (documented in
				 * sample.cu); a steep spread keeps its nucleus under 256
				 */
				sample_case(nv, pat, (ks[ki] == 0 || ks[ki] >= nv) && nv >= 1024 && pat != PAT_FLAT
							? 40.0f : 8.0f, ps, n);
			}
		}
	}

	/* top-p just below 1: the float probabilities may never add up to it (keep all) */
	{
		int			n = 0;

		for (int k = 0; k < 2; k++)
			for (int t = 1; t < 4; t++)
			{
				memset(&ps[n], 0, sizeof(ps[n]));
				ps[n].temperature = temps[t];
				ps[n].top_k = k == 0 ? 0 : 50;
				ps[n].top_p = 0.99999994f;
				n++;
			}
		sample_case(100, PAT_SPREAD, 8.0f, ps, n);
		sample_case(100, PAT_TIES, 3.0f, ps, n);
		/* with top-k off this nucleus is the whole list: the quickselect-order case */
		sample_case(3000, PAT_TIES, 3.0f, ps + 3, 3);
	}

	/*
	 * u = 1 (a float u the host rounded up): no running sum passes u*total,
	 * so the draw takes the last entry with mass, as the CPU's fallback.
	 * Logit i is i/64 (distinct, all with mass at T = 1), so list orders
	 * are known.
	 */
	{
		enum { NV = 3000 };
		float	   *l = malloc(sizeof(float) * NV);
		int32_t		id = -7;
		lg_gpu_sample_params p = {1.0f, 5, 1.0f, 0.0f, 1.0f, 0};

		for (int i = 0; i < NV; i++)
			l[i] = (float) i / 64.0f;
		/* sorted, in shared memory: the 5th best */
		CHECK(lg_gpu_sample(NULL, &id, l, 1, NV, &p, NULL, 0) == LG_GPU_OK && id == NV - 5,
			  "fallback top-5: %d", id);
		/* sorted, over the row (top_k above the prefix): the 1500th best */
		p.top_k = 1500;
		CHECK(lg_gpu_sample(NULL, &id, l, 1, NV, &p, NULL, 0) == LG_GPU_OK && id == NV - 1500,
			  "fallback top-1500: %d", id);
		/* id order: the highest id with mass */
		p.top_k = 0;
		CHECK(lg_gpu_sample(NULL, &id, l, 1, NV, &p, NULL, 0) == LG_GPU_OK && id == NV - 1,
			  "fallback id order: %d", id);
		l[NV - 1] = -200.0f;	/* exp((-200 - max)/T) is 0: no mass */
		CHECK(lg_gpu_sample(NULL, &id, l, 1, NV, &p, NULL, 0) == LG_GPU_OK && id == NV - 2,
			  "fallback id order skips a zero mass: %d", id);
		/* a tiny temperature leaves mass on the best only: the CPU's loop stops at entry 0 */
		p.top_k = 5;
		p.temperature = 1e-4f;
		CHECK(lg_gpu_sample(NULL, &id, l, 1, NV, &p, NULL, 0) == LG_GPU_OK && id == NV - 2,
			  "fallback, all mass on the best: %d", id);
		p.top_k = 1500;
		CHECK(lg_gpu_sample(NULL, &id, l, 1, NV, &p, NULL, 0) == LG_GPU_OK && id == NV - 2,
			  "fallback over the row, all mass on the best: %d", id);
		free(l);
	}

	/* every logit banned: -1, as LG_TOKEN_NULL */
	{
		float		l[5] = {-INFINITY, NAN, -INFINITY, NAN, -INFINITY};
		int32_t		id = 3;
		lg_gpu_sample_params p = {0.8f, 40, 0.9f, 0.05f, 0.5f, 0};

		CHECK(lg_gpu_sample(NULL, &id, l, 1, 5, &p, NULL, 0) == LG_GPU_OK && id == -1,
			  "all banned: %d", id);
		p.temperature = 0.0f;
		CHECK(lg_gpu_sample(NULL, &id, l, 1, 5, &p, NULL, 0) == LG_GPU_OK && id == -1,
			  "all banned, greedy: %d", id);
	}
	CHECK(lg_gpu_sample_scratch_bytes(128, 152064) == 0, "no scratch");
	CHECK(lg_gpu_sample(NULL, NULL, NULL, 0, 100, NULL, NULL, 0) == LG_GPU_OK, "n=0");
	CHECK(lg_gpu_sample(NULL, (int32_t *) 8, (float *) 8, 1, 0, (lg_gpu_sample_params *) 8, NULL, 0) ==
		  LG_GPU_ERR_ARG && strstr(last_msg, "vocabulary size 0"), "nv 0: %s", last_msg);
	CHECK(lg_gpu_sample(NULL, (int32_t *) 8, (float *) 8, 1, 100, NULL, NULL, 0) ==
		  LG_GPU_ERR_ARG && strstr(last_msg, "params is NULL"), "NULL params: %s", last_msg);
	CHECK(lg_gpu_sample(NULL, NULL, NULL, -1, 100, NULL, NULL, 0) == LG_GPU_ERR_ARG, "n<0");
}

int
main(int argc, char **argv)
{
	lg_error	err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	quick = argc > 1 && strcmp(argv[1], "quick") == 0;
	lg_emu_grid_cap = 3;		/* fewer blocks than launched: the strides run */
	cpu = lg_backend_cpu_new(1, 1, &err);	/* the reference (scalar) kernels */
	if (cpu == NULL)
	{
		printf("cpu backend: %s\n", err.msg);
		return 1;
	}
	test_rmsnorm();
	test_rope();
	test_elementwise();
	test_encoder_ops();
	test_kv_store();
	printf("elementwise done: %d checks, %d failed\n", n_check, n_fail);
	test_sample();
	cpu->free(cpu);
	printf("%d checks, %d failed\n", n_check, n_fail);
	return n_fail != 0;
}
