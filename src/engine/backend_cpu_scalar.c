/*
 * backend_cpu_scalar.c — the plain-C kernel tables: "scalar" for CPUs
 * without AVX2, and "reference", which tests compare the fast kernels with.
 *
 * Neither has dot products of its own: a NULL entry sends the matmul to
 * lg_vec_dot_ref, ggml's scalar vec_dot for each type.
 */
#include "backend_cpu_impl.h"

#include <math.h>

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
	}
	k->f32_to_f16 = scalar_f32_to_f16;
	k->f16_to_f32 = scalar_f16_to_f32;
	k->axpy_f32 = scalar_axpy_f32;
	k->axpy_f16 = scalar_axpy_f16;
	k->scale_f32 = scalar_scale_f32;
	k->exp_sum = scalar_exp_sum;
	k->swiglu = scalar_swiglu;
}

/* The reference table: the scalar one, marked so nothing overrides it. */
void
lg_cpu_kernels_reference(lg_cpu_kernels *k)
{
	lg_cpu_kernels_scalar(k);
	k->name = "reference";
	k->reference = true;
}
