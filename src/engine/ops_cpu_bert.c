/*
 * ops_cpu_bert.c — the CPU backend's operations for encoders (bert,
 * nomic-bert): LayerNorm and GELU.
 *
 * LayerNorm follows ggml_norm's rounding (mean and variance summed in
 * double, the scale in float) followed by the weight and bias, as
 * llama.cpp's build_norm does.  GELU is the tanh approximation that
 * ggml_gelu computes; ggml's CPU code looks it up in an f16 table, we
 * compute it in float (closer to the formula, within f16 rounding of
 * ggml).  Both split their rows among the threads: a row's result never
 * depends on the thread count or the batch.
 */
#include "backend_cpu_impl.h"

#include <math.h>

typedef struct bert_job
{
	const lg_cpu_kernels *k;
	float	   *y;
	const float *x;
	const float *w;
	const float *b;
	int64_t		n, d;
	float		eps;
} bert_job;

/* Rows ith, ith + nth, ... of a LayerNorm. */
static void
layernorm_rows(void *arg, int ith, int nth)
{
	const bert_job *j = arg;

	for (int64_t r = ith; r < j->n; r += nth)
	{
		const float *x = j->x + r * j->d;
		float	   *y = j->y + r * j->d;
		double		sum = 0.0;
		double		sq = 0.0;
		float		mean, scale;

		for (int64_t i = 0; i < j->d; i++)
			sum += (double) x[i];
		mean = (float) (sum / (double) j->d);
		for (int64_t i = 0; i < j->d; i++)
		{
			const float v = x[i] - mean;

			y[i] = v;
			sq += (double) (v * v);
		}
		scale = 1.0f / sqrtf((float) (sq / (double) j->d) + j->eps);
		for (int64_t i = 0; i < j->d; i++)
			y[i] = y[i] * scale * j->w[i] + j->b[i];
	}
}

/* lg_backend.layernorm. */
void
lg_cpu_layernorm(lg_backend *be, float *y, const float *x, const float *w, const float *b,
				 int64_t n, int64_t d, float eps)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);
	bert_job	j = {.y = y, .x = x, .w = w, .b = b, .n = n, .d = d, .eps = eps};

	if (n * d < 65536 || ctx->n_threads == 1)
		layernorm_rows(&j, 0, 1);
	else
		lg_threadpool_run(ctx->tp, layernorm_rows, &j);
}

/* Rows ith, ith + nth, ... of a GELU. */
static void
gelu_rows(void *arg, int ith, int nth)
{
	const bert_job *j = arg;

	for (int64_t r = ith; r < j->n; r += nth)
		j->k->gelu(j->d, j->y + r * j->d);
}

/* lg_backend.gelu. */
void
lg_cpu_gelu(lg_backend *be, float *x, int64_t n, int64_t d)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);
	bert_job	j = {.k = &ctx->k, .y = x, .n = n, .d = d};

	if (n * d < 65536 || ctx->n_threads == 1)
		gelu_rows(&j, 0, 1);
	else
		lg_threadpool_run(ctx->tp, gelu_rows, &j);
}
