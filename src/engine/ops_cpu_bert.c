/*
 * ops_cpu_bert.c — the CPU backend's operations for encoders (bert,
 * nomic-bert): LayerNorm, GELU, bidirectional attention and the row
 * gather of the pooled rows.
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
#include <stdlib.h>
#include <string.h>

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

/* lg_backend.gather_rows: row copies (a pooling's few rows: no threads). */
void
lg_cpu_gather_rows(lg_backend *be, float *y, const float *x, const int32_t *rows, int64_t n, int64_t d)
{
	(void) be;
	for (int64_t i = 0; i < n; i++)
		memcpy(y + i * d, x + (int64_t) rows[i] * d, (size_t) d * sizeof(float));
}

/*
 * Bidirectional attention (encoders), by blocks of queries.  The causal
 * kernel (ops_cpu_attn.c) scores one query against a tile of keys with a
 * dot per key, whose horizontal sum dominates at the short heads encoders
 * have (32, 64).  Here an item is (sequence, head, block of BIDIR_QB
 * queries): the head's keys are gathered transposed (Kt[d][j]) and its
 * values packed (V[j][d]) once per item, a query's scores come from Kt
 * with the keys across the vector lanes (attn_scores_t: no horizontal
 * sums), then an exact softmax over the whole row and the weighted sum of
 * V (attn_accum).  A query's result depends only on
 * its sequence, never on the batch or the thread that computes it.
 */
#define BIDIR_QB	128

typedef struct bidir_job
{
	const lg_cpu_kernels *k;
	const lg_attn_args *a;
	int32_t		n_seqs;
	const int64_t *item0;		/* [n_seqs + 1] first item of each sequence */
	float	   *ws;				/* n_threads workspaces of ws_floats */
	size_t		ws_floats;
	_Alignas(64) atomic_int_fast64_t next;
} bidir_job;

/* The pool row of position p of a's sequence. */
static inline int64_t
bidir_row(const lg_attn_args *a, int64_t p)
{
	return (int64_t) a->block_table[p / a->block_size] * a->block_size + p % a->block_size;
}

/* One item: queries [i0, i1) of head h of sequence a. */
static void
bidir_item(const lg_cpu_kernels *k, const lg_attn_args *a, int32_t h, int64_t i0, int64_t i1, float *ws)
{
	const int32_t D = a->head_dim;
	const int64_t n = a->kv_len;
	const int64_t row = (int64_t) a->n_kv_heads * D;
	const int64_t q_row = (int64_t) a->n_heads * D;
	const int32_t kvh = h / (a->n_heads / a->n_kv_heads);
	float	   *kt = ws;			/* [D][n] */
	float	   *v = kt + (size_t) D * n;	/* [n][D] */
	float	   *s = v + (size_t) n * D;	/* [4][n] */
	int64_t		i;
	const bool	f16 = a->kv_type == LG_KV_F16;

	for (int64_t j = 0; j < n; j++)
	{
		const int64_t r = bidir_row(a, j) * row + (int64_t) kvh * D;

		if (f16)
		{
			k->f16_to_f32((const lg_f16 *) a->v_cache + r, v + j * D, D);
			k->f16_to_f32((const lg_f16 *) a->k_cache + r, s, D);
			for (int32_t d = 0; d < D; d++)
				kt[(int64_t) d * n + j] = s[d];
		}
		else
		{
			const float *kr = (const float *) a->k_cache + r;

			memcpy(v + j * D, (const float *) a->v_cache + r, (size_t) D * sizeof(float));
			for (int32_t d = 0; d < D; d++)
				kt[(int64_t) d * n + j] = kr[d];
		}
	}
	i = i0;
	if (k->attn_scores_t4 != NULL && k->attn_accum4 != NULL)
		/* four queries at a time share each load of Kt and V (same sums) */
		for (; i + 4 <= i1; i += 4)
		{
			const float *q4[4];
			float	   *s4[4];
			float	   *o4[4];
			float		inv[4];

			for (int c = 0; c < 4; c++)
			{
				q4[c] = a->q + (i + c) * q_row + (int64_t) h * D;
				o4[c] = a->out + (i + c) * q_row + (int64_t) h * D;
				s4[c] = s + (size_t) c * n;
			}
			k->attn_scores_t4(n, D, kt, q4, a->scale, s4);
			for (int c = 0; c < 4; c++)
			{
				float		m = s4[c][0];

				for (int64_t j = 1; j < n; j++)
					m = s4[c][j] > m ? s4[c][j] : m;
				inv[c] = 1.0f / k->exp_sum(n, s4[c], m);
				memset(o4[c], 0, (size_t) D * sizeof(float));
			}
			k->attn_accum4(n, D, v, D, (const float *const *) s4, o4);
			for (int c = 0; c < 4; c++)
				for (int32_t d = 0; d < D; d++)
					o4[c][d] *= inv[c];
		}
	for (; i < i1; i++)
	{
		const float *q = a->q + i * q_row + (int64_t) h * D;
		float	   *o = a->out + i * q_row + (int64_t) h * D;
		float		m,
					inv;

		k->attn_scores_t(n, D, kt, q, a->scale, s);
		m = s[0];
		for (int64_t j = 1; j < n; j++)
			m = s[j] > m ? s[j] : m;
		inv = 1.0f / k->exp_sum(n, s, m);
		memset(o, 0, (size_t) D * sizeof(float));
		k->attn_accum(n, D, v, D, s, o);
		for (int32_t d = 0; d < D; d++)
			o[d] *= inv;
	}
}

/* Thread body: items in turn. */
static void
bidir_task(void *arg, int ith, int nth)
{
	bidir_job  *job = arg;
	float	   *ws = job->ws + (size_t) ith * job->ws_floats;
	int32_t		s = 0;

	for (int64_t item = ith; item < job->item0[job->n_seqs];
		 item = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed))
	{
		const lg_attn_args *a;
		int64_t		local, nqb;

		while (item >= job->item0[s + 1])
			s++;
		a = &job->a[s];
		local = item - job->item0[s];
		nqb = (a->n_tok + BIDIR_QB - 1) / BIDIR_QB;
		{
			const int32_t h = (int32_t) (local / nqb);
			const int64_t i0 = (local % nqb) * BIDIR_QB;
			const int64_t i1 = i0 + BIDIR_QB < a->n_tok ? i0 + BIDIR_QB : a->n_tok;

			bidir_item(job->k, a, h, i0, i1, ws);
		}
	}
}

/*
 * Bidirectional attention of n_seqs sequences.  Returns false (nothing
 * done) when memory for the plan or the workspaces is short: the caller
 * then uses the general kernel, which gives the same softmax.
 */
bool
lg_cpu_attention_bidir(lg_backend *be, const lg_attn_args *args, int32_t n_seqs)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);
	bidir_job	job = {.k = &ctx->k, .a = args, .n_seqs = n_seqs};
	int64_t    *item0 = malloc(sizeof(int64_t) * (n_seqs + 1));
	int64_t		max_n = 1;
	int32_t		max_d = 1;

	if (item0 == NULL)
		return false;
	item0[0] = 0;
	for (int32_t s = 0; s < n_seqs; s++)
	{
		const lg_attn_args *a = &args[s];
		bool		ok = a->n_tok > 0 && a->kv_len > 0 && a->n_heads > 0 && a->n_kv_heads > 0 &&
			a->n_heads % a->n_kv_heads == 0 && a->head_dim > 0 && a->block_size > 0;

		item0[s + 1] = item0[s] + (ok ? (int64_t) a->n_heads * ((a->n_tok + BIDIR_QB - 1) / BIDIR_QB) : 0);
		max_n = a->kv_len > max_n ? a->kv_len : max_n;
		max_d = a->head_dim > max_d ? a->head_dim : max_d;
	}
	job.item0 = item0;
	/* Kt, V and four score rows, which also hold a converted f16 key (max_d) */
	job.ws_floats = ((size_t) 2 * max_d * max_n + (size_t) (4 * max_n > max_d ? 4 * max_n : max_d) + 15) &
		~(size_t) 15;
	job.ws = aligned_alloc(64, job.ws_floats * sizeof(float) * ctx->n_threads);
	if (job.ws == NULL)
	{
		free(item0);
		return false;
	}
	atomic_init(&job.next, ctx->n_threads);
	if (item0[n_seqs] > 0)
		lg_threadpool_run(ctx->tp, bidir_task, &job);
	free(job.ws);
	free(item0);
	return true;
}
