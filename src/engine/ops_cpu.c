/*
 * ops_cpu.c — the CPU backend's small operations: RMSNorm, RoPE, KV-cache
 * stores, SwiGLU and the additions.
 *
 * Each follows ggml's CPU code for its rounding-relevant details (where it
 * sums in double, how RoPE's angles are built), so our activations track
 * llama.cpp's.  They are cheap next to the matmuls and run on the calling
 * thread.
 */
#include "backend_cpu_impl.h"

#include <math.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/*
 * lg_backend.rmsnorm.  ggml sums the float squares in double (ggml_float),
 * then works in float: scale = 1/sqrtf(mean + eps), y = (x*scale)*w.
 */
void
lg_cpu_rmsnorm(lg_backend *be, float *y, const float *x, const float *w,
			   int64_t n, int64_t d, float eps)
{
	for (int64_t r = 0; r < n; r++)
	{
		const float *xr = x + r * d;
		float	   *yr = y + r * d;
		/* four partial sums break the add latency chain; in double the order is moot */
		double		s0 = 0.0,
					s1 = 0.0,
					s2 = 0.0,
					s3 = 0.0;
		int64_t		i = 0;
		float		mean;
		float		scale;

		for (; i + 4 <= d; i += 4)
		{
			s0 += (double) (xr[i + 0] * xr[i + 0]);
			s1 += (double) (xr[i + 1] * xr[i + 1]);
			s2 += (double) (xr[i + 2] * xr[i + 2]);
			s3 += (double) (xr[i + 3] * xr[i + 3]);
		}
		for (; i < d; i++)
			s0 += (double) (xr[i] * xr[i]);
		mean = (float) ((s0 + s1 + s2 + s3) / (double) d);
		scale = 1.0f / sqrtf(mean + eps);
		if (w != NULL)
			for (i = 0; i < d; i++)
				yr[i] = xr[i] * scale * w[i];
		else
			for (i = 0; i < d; i++)
				yr[i] = xr[i] * scale;
	}
}

/* ggml_rope_yarn_corr_dim: the dimension whose wavelength fits n_rot turns. */
static float
lg_rope_yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base)
{
	return n_dims * logf(n_ctx_orig / (n_rot * 2 * (float) M_PI)) / (2 * logf(base));
}

/* ggml_rope_yarn_corr_dims: the dims between which YaRN ramps. */
void
lg_rope_yarn_corr_dims(int n_dims, int n_ctx_orig, float freq_base,
					   float beta_fast, float beta_slow, float dims[2])
{
	float		start = floorf(lg_rope_yarn_corr_dim(n_dims, n_ctx_orig, beta_fast, freq_base));
	float		end = ceilf(lg_rope_yarn_corr_dim(n_dims, n_ctx_orig, beta_slow, freq_base));

	dims[0] = start > 0 ? start : 0;
	dims[1] = end < n_dims - 1 ? end : (float) (n_dims - 1);
}

/* ggml's rope_yarn_ramp; i0/2 is integer division there too. */
static float
lg_rope_yarn_ramp(float low, float high, int i0)
{
	float		y = (i0 / 2 - low) / fmaxf(0.001f, high - low);

	return 1 - fminf(1, fmaxf(0, y));
}

/*
 * cos/sin of every rotated pair for one position, as ggml_rope_cache_init
 * and rope_yarn build them: theta starts at the position and is multiplied
 * by theta_scale pair after pair (in float, as ggml does).
 */
static void
lg_rope_cache(float *cache, int32_t n_rot, float p, const lg_rope_params *rp,
			  float theta_scale, const float corr[2])
{
	float		theta_base = p;

	for (int i0 = 0; i0 < n_rot; i0 += 2)
	{
		float		ff = rp->freq_factors ? rp->freq_factors[i0 / 2] : 1.0f;
		float		theta_extrap = theta_base / ff;
		float		theta_interp = rp->freq_scale * theta_extrap;
		float		theta = theta_interp;
		float		mscale = rp->attn_factor;

		if (rp->ext_factor != 0.0f)
		{
			float		ramp_mix = lg_rope_yarn_ramp(corr[0], corr[1], i0) * rp->ext_factor;

			theta = theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix;
			mscale *= 1.0f + 0.1f * logf(1.0f / rp->freq_scale);
		}
		cache[i0 + 0] = cosf(theta) * mscale;
		cache[i0 + 1] = sinf(theta) * mscale;
		theta_base *= theta_scale;
	}
}

/* lg_backend.rope: rotate each head of each row in place. */
void
lg_cpu_rope(lg_backend *be, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
			const int32_t *pos, const lg_rope_params *rp)
{
	const int32_t n_rot = rp->n_rot;
	const float theta_scale = powf(rp->freq_base, -2.0f / n_rot);
	float		corr[2];
	/* (cos, sin) per rotated pair: thread 0's attention workspace is free now */
	float	   *cache = lg_cpu_ctx_of(be)->attn_ws;

	/* a malformed n_rot was refused when the model was loaded; do nothing */
	if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 != 0 || n_rot > LG_ATTN_WS_FLOATS)
		return;
	lg_rope_yarn_corr_dims(n_rot, rp->n_ctx_orig, rp->freq_base,
						   rp->beta_fast, rp->beta_slow, corr);

	for (int64_t r = 0; r < n; r++)
	{
		float	   *xr = x + r * (int64_t) n_heads * head_dim;

		lg_rope_cache(cache, n_rot, (float) pos[r], rp, theta_scale, corr);
		for (int32_t h = 0; h < n_heads; h++)
		{
			float	   *v = xr + (int64_t) h * head_dim;

			if (rp->style == LG_ROPE_NEOX)
			{
				const int32_t half = n_rot / 2;

				for (int32_t i0 = 0; i0 < n_rot; i0 += 2)
				{
					const float c = cache[i0];
					const float s = cache[i0 + 1];
					const float x0 = v[i0 / 2];
					const float x1 = v[i0 / 2 + half];

					v[i0 / 2] = x0 * c - x1 * s;
					v[i0 / 2 + half] = x0 * s + x1 * c;
				}
			}
			else
			{
				for (int32_t i0 = 0; i0 < n_rot; i0 += 2)
				{
					const float c = cache[i0];
					const float s = cache[i0 + 1];
					const float x0 = v[i0];
					const float x1 = v[i0 + 1];

					v[i0] = x0 * c - x1 * s;
					v[i0 + 1] = x0 * s + x1 * c;
				}
			}
			/* dims past n_rot pass through unchanged (in place: nothing to do) */
		}
	}
}

/*
 * lg_backend.kv_store: positions pos0.. of the sequence = x (f16: round to
 * nearest even), one run of rows per block (or per stretch of consecutive
 * blocks).
 */
void
lg_cpu_kv_store(lg_backend *be, void *cache, lg_kv_type kv_type,
				const int32_t *block_table, int32_t block_size, int64_t pos0,
				const float *x, int64_t n, int64_t d)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);

	for (int64_t i = 0; i < n;)
	{
		const int64_t p = pos0 + i;
		const int64_t bi = p / block_size;
		const int64_t row = (int64_t) block_table[bi] * block_size + p % block_size;
		int64_t		nr = block_size - p % block_size;

		/* consecutive blocks are one run: a private cache is a single copy */
		for (int64_t b = bi; nr < n - i && block_table[b + 1] == block_table[b] + 1; b++)
			nr += block_size;
		if (nr > n - i)
			nr = n - i;
		if (kv_type == LG_KV_F32)
			memcpy((float *) cache + row * d, x + i * d, (size_t) (nr * d) * sizeof(float));
		else
			ctx->k.f32_to_f16(x + i * d, (lg_f16 *) cache + row * d, nr * d);
		i += nr;
	}
}

/* lg_backend.kv_store_slots: pool row slots[i] = row i of x. */
void
lg_cpu_kv_store_slots(lg_backend *be, void *cache, lg_kv_type kv_type,
					  const int32_t *slots, const float *x, int64_t n, int64_t d)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);

	for (int64_t i = 0; i < n;)
	{
		int64_t		nr = 1;
		const int64_t row = slots[i];

		/* rows going to consecutive slots are one copy */
		while (i + nr < n && slots[i + nr] == row + nr)
			nr++;
		if (kv_type == LG_KV_F32)
			memcpy((float *) cache + row * d, x + i * d, (size_t) (nr * d) * sizeof(float));
		else
			ctx->k.f32_to_f16(x + i * d, (lg_f16 *) cache + row * d, nr * d);
		i += nr;
	}
}

/*
 * lg_backend.swiglu: g = silu(g) * u, a row at a time so that a value's
 * result (vector loop or scalar tail) never depends on the batch.
 */
void
lg_cpu_swiglu(lg_backend *be, float *g, const float *u, int64_t n, int64_t d)
{
	const lg_cpu_kernels *k = &lg_cpu_ctx_of(be)->k;

	for (int64_t r = 0; r < n; r++)
		k->swiglu(d, g + r * d, u + r * d);
}

/*
 * y += x, or each row of y += b: n rows of d floats (add: one row of n).
 * Split among the threads by whole rows (or 16-float pieces of one row),
 * so each sum is the same whatever the thread count; vectorised by the
 * compiler (restrict, and -O3's cost model for this loop) because at
 * batch sizes these passes were 6-8% of an encoder's time on one thread.
 */
typedef struct add_job
{
	float	   *y;
	const float *x;				/* add: n*d values; add_bias: d values */
	int64_t		n, d;
	bool		bias;
} add_job;

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
static void
add_span(float *restrict y, const float *restrict x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += x[i];
}

/* Thread body: rows (or pieces) ith, ith + nth, ... of an add_job. */
static void
add_rows(void *arg, int ith, int nth)
{
	const add_job *j = arg;
	/* pieces of at least 4096 floats: one row when add_bias */
	const int64_t piece = j->bias ? j->d : 4096;
	const int64_t total = j->n * j->d;

	for (int64_t p = (int64_t) ith * piece; p < total; p += (int64_t) nth * piece)
		add_span(j->y + p, j->bias ? j->x : j->x + p, total - p < piece ? total - p : piece);
}

/* Run an add_job, on the threads when it is big enough to pay for them. */
static void
add_run(lg_backend *be, add_job *j)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);

	if (j->n * j->d < 65536 || ctx->n_threads == 1)
		add_rows(j, 0, 1);
	else
		lg_threadpool_run(ctx->tp, add_rows, j);
}

/* lg_backend.add: y += x. */
void
lg_cpu_add(lg_backend *be, float *y, const float *x, int64_t n)
{
	add_job		j = {.y = y, .x = x, .n = 1, .d = n, .bias = false};

	add_run(be, &j);
}

/* lg_backend.add_bias: each of n rows of y += b. */
void
lg_cpu_add_bias(lg_backend *be, float *y, const float *b, int64_t n, int64_t d)
{
	add_job		j = {.y = y, .x = b, .n = n, .d = d, .bias = true};

	add_run(be, &j);
}
