/*
 * backend_cpu_scalar.c — the plain-C kernel tables: "scalar" for CPUs
 * without AVX2, and "reference", which tests compare the fast kernels with.
 *
 * Neither has dot products of its own: a NULL entry sends the matmul to
 * lg_vec_dot_ref, ggml's scalar vec_dot for each type.
 */
#include "backend_cpu_impl.h"

#include <math.h>
#include <string.h>

float		lg_f16_table[1 << 16];

/* Fill lg_f16_table; backend_cpu.c calls it once. */
void
lg_f16_table_init(void)
{
	for (uint32_t i = 0; i < (1u << 16); i++)
		lg_f16_table[i] = lg_f16_to_f32((lg_f16) i);
}

/*
 * A q8p row: quantize each block with the reference q8_0 routine (so the
 * quants are exactly lg_quantize_row's), then spread it out.
 */
void
lg_q8p_prep(const float *x, void *dst, int64_t cols, int bias)
{
	const int64_t nb = cols / LG_QK;
	int8_t	   *qs = (int8_t *) dst;
	float	   *d = (float *) (qs + cols);
	int32_t    *c = (int32_t *) (d + nb);

	for (int64_t i = 0; i < nb; i++)
	{
		lg_block_q8_0 b;
		int32_t		sum = 0;

		(void) lg_quantize_row(LG_TYPE_Q8_0, x + i * LG_QK, &b, LG_QK);
		memcpy(qs + i * LG_QK, b.qs, LG_QK);
		for (int j = 0; j < LG_QK; j++)
			sum += b.qs[j];
		d[i] = lg_f16_to_f32(b.d);
		c[i] = bias * sum;
	}
}

/* f32 → f16, round to nearest even. */
static void
scalar_f32_to_f16(const float *x, lg_f16 *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = lg_f32_to_f16(x[i]);
}

/* f16 → f32. */
static void
scalar_f16_to_f32(const lg_f16 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = lg_f16_to_f32(x[i]);
}

/* y += a*x */
static void
scalar_axpy_f32(int64_t n, float *y, const float *x, float a)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

/* y += a*x with x in f16 */
static void
scalar_axpy_f16(int64_t n, float *y, const lg_f16 *x, float a)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += a * lg_f16_to_f32(x[i]);
}

/* y *= a */
static void
scalar_scale_f32(int64_t n, float *y, float a)
{
	for (int64_t i = 0; i < n; i++)
		y[i] *= a;
}

/* x = exp(x - max), returning the sum (in double, as ggml's soft_max does). */
static float
scalar_exp_sum(int64_t n, float *x, float max)
{
	double		sum = 0.0;

	for (int64_t i = 0; i < n; i++)
	{
		float		e = expf(x[i] - max);

		x[i] = e;
		sum += (double) e;
	}
	return (float) sum;
}

/* g = silu(g) * u with ggml's silu, x / (1 + exp(-x)). */
static void
scalar_swiglu(int64_t n, float *g, const float *u)
{
	for (int64_t i = 0; i < n; i++)
	{
		float		x = g[i];

		g[i] = x / (1.0f + expf(-x)) * u[i];
	}
}

/* x = gelu(x), tanh form written as x * sigmoid(2z) (the same function) */
static void
scalar_gelu(int64_t n, float *x)
{
	for (int64_t i = 0; i < n; i++)
	{
		const float v = x[i];
		const float z2 = 1.5957691216057308f * (v + 0.044715f * v * v * v);

		x[i] = v / (1.0f + expf(-z2));
	}
}

/*
 * s[c] = (q · K[c]) * scale, the dot in double like ggml's scalar F16/F32
 * vec_dot (sum of float products), then rounded and scaled in float.
 */
static void
scalar_attn_scores(int64_t nc, int32_t d, const float *K, int64_t ks,
				   const float *q, float scale, float *s)
{
	for (int64_t c = 0; c < nc; c++)
	{
		const float *kr = K + c * ks;
		double		sum = 0.0;

		for (int32_t i = 0; i < d; i++)
			sum += (double) (q[i] * kr[i]);
		s[c] = (float) sum * scale;
	}
}

/* acc += Σ_c p[c] * V[c] */
static void
scalar_attn_accum(int64_t nc, int32_t d, const float *V, int64_t vs,
				  const float *p, float *acc)
{
	for (int64_t c = 0; c < nc; c++)
	{
		const float *vr = V + c * vs;

		for (int32_t i = 0; i < d; i++)
			acc[i] += p[c] * vr[i];
	}
}

/* A tile of nc f16 cache rows, ss halves apart, to packed f32. */
static void
scalar_attn_tile_f16(int64_t nc, int32_t d, const lg_f16 *src, int64_t ss, float *dst)
{
	for (int64_t c = 0; c < nc; c++)
		for (int32_t i = 0; i < d; i++)
			dst[c * d + i] = lg_f16_to_f32(src[c * ss + i]);
}

/* The plain-C table: reference dots, simple float loops. */
void
lg_cpu_kernels_scalar(lg_cpu_kernels *k)
{
	k->name = "scalar";
	k->reference = false;
	for (int t = 0; t < LG_TYPE_COUNT; t++)
	{
		k->dot[t] = NULL;
		k->dotn[t] = NULL;
		k->prep[t] = NULL;
	}
	k->f32_to_f16 = scalar_f32_to_f16;
	k->f16_to_f32 = scalar_f16_to_f32;
	k->axpy_f32 = scalar_axpy_f32;
	k->axpy_f16 = scalar_axpy_f16;
	k->scale_f32 = scalar_scale_f32;
	k->exp_sum = scalar_exp_sum;
	k->swiglu = scalar_swiglu;
	k->gelu = scalar_gelu;
	k->attn_scores = scalar_attn_scores;
	k->attn_accum = scalar_attn_accum;
	k->attn_tile_f16 = scalar_attn_tile_f16;
}

/* The reference table: the scalar one, marked so nothing overrides it. */
void
lg_cpu_kernels_reference(lg_cpu_kernels *k)
{
	lg_cpu_kernels_scalar(k);
	k->name = "reference";
	k->reference = true;
}
