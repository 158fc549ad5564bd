/*
 * ops_cpu_attn.c — causal grouped-query attention over the KV cache.
 *
 * The work is cut into items of (token, KV head, a few of the query heads
 * sharing that KV head), so each K and V row read from memory serves every
 * query head of its group.  An item walks the positions it may see in
 * tiles: the tile's K rows converted to f32 once, scores for every head of
 * the item, a running max and sum per head (the "online" softmax of flash
 * attention), then the tile's V rows weighted in.  Memory is a fixed
 * per-thread workspace allocated with the backend, whatever kv_len is, so
 * attn_scratch_floats is 0.
 *
 * With an F16 cache we follow ggml's CPU flash-attention path: q is
 * rounded to f16 and dotted with the f16 K rows (products and sums in
 * float); V is accumulated in float.
 */
#include "backend_cpu_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LG_ATTN_TILE		64		/* KV positions per tile, at most */
#define LG_ATTN_MAX_GROUP	8		/* query heads per item */

typedef struct lg_attn_job
{
	const lg_cpu_kernels *k;
	const lg_attn_args *a;
	float	   *ws;				/* n_threads workspaces of LG_ATTN_WS_BYTES */
	int32_t		group;			/* query heads per KV head */
	int32_t		gsub;			/* query heads per item */
	int32_t		n_sub;			/* items per (token, KV head) */
	int32_t		tile;			/* KV positions per tile */
	int64_t		n_items;
	_Alignas(64) atomic_int_fast64_t next;
} lg_attn_job;

/* One item: token t, KV head g, query heads h0..h0+nh-1, into out. */
static void
lg_attn_item(const lg_attn_job *job, int64_t t, int32_t g, int32_t h0, int32_t nh, float *ws)
{
	const lg_cpu_kernels *k = job->k;
	const lg_attn_args *a = job->a;
	const int32_t D = a->head_dim;
	const int64_t row = (int64_t) a->n_kv_heads * D;	/* values per cache row */
	const int64_t q_row = (int64_t) a->n_heads * D;
	const int64_t n_valid = a->pos0 + t + 1 < a->kv_len ? a->pos0 + t + 1 : a->kv_len;
	const bool	f16 = a->kv_type == LG_KV_F16;
	const int32_t T = job->tile;
	float	   *q32 = ws;
	float	   *acc = ws + LG_ATTN_WS_FLOATS;
	float	   *kt = ws + 2 * LG_ATTN_WS_FLOATS;
	float	   *vt = ws + 3 * LG_ATTN_WS_FLOATS;
	float		M[LG_ATTN_MAX_GROUP];
	float		S[LG_ATTN_MAX_GROUP];
	float		sc[LG_ATTN_MAX_GROUP][LG_ATTN_TILE];

	for (int32_t j = 0; j < nh; j++)
	{
		const float *q = a->q + t * q_row + (int64_t) (h0 + j) * D;

		if (f16)
		{
			/* round q to f16 as ggml does before its f16 dot (kt is free yet) */
			k->f32_to_f16(q, (lg_f16 *) kt, D);
			k->f16_to_f32((const lg_f16 *) kt, q32 + (size_t) j * D, D);
		}
		else
			memcpy(q32 + (size_t) j * D, q, (size_t) D * sizeof(float));
		M[j] = -INFINITY;
		S[j] = 0.0f;
	}
	memset(acc, 0, (size_t) nh * D * sizeof(float));

	for (int64_t c0 = 0; c0 < n_valid; c0 += T)
	{
		const int64_t nc = n_valid - c0 < T ? n_valid - c0 : T;
		const float *K;
		const float *V;
		int64_t		ks;

		if (f16)
		{
			k->attn_tile_f16(nc, D, (const lg_f16 *) a->k_cache + c0 * row + (int64_t) g * D,
							 row, kt);
			K = kt;
			ks = D;
		}
		else
		{
			K = (const float *) a->k_cache + c0 * row + (int64_t) g * D;
			ks = row;
		}
		for (int32_t j = 0; j < nh; j++)
			k->attn_scores(nc, D, K, ks, q32 + (size_t) j * D, a->scale, sc[j]);

		/* running max and sum; rescale what was accumulated under an older max */
		for (int32_t j = 0; j < nh; j++)
		{
			float		m = sc[j][0];

			for (int64_t c = 1; c < nc; c++)
				m = sc[j][c] > m ? sc[j][c] : m;
			if (m > M[j])
			{
				if (M[j] != -INFINITY)
				{
					const float f = expf(M[j] - m);

					k->scale_f32(D, acc + (size_t) j * D, f);
					S[j] *= f;
				}
				M[j] = m;
			}
			S[j] += k->exp_sum(nc, sc[j], M[j]);
		}

		if (f16)
		{
			k->attn_tile_f16(nc, D, (const lg_f16 *) a->v_cache + c0 * row + (int64_t) g * D,
							 row, vt);
			V = vt;
			ks = D;
		}
		else
		{
			V = (const float *) a->v_cache + c0 * row + (int64_t) g * D;
			ks = row;
		}
		for (int32_t j = 0; j < nh; j++)
			k->attn_accum(nc, D, V, ks, sc[j], acc + (size_t) j * D);
	}

	for (int32_t j = 0; j < nh; j++)
	{
		float	   *out = a->out + t * q_row + (int64_t) (h0 + j) * D;
		const float inv = S[j] == 0.0f ? 0.0f : 1.0f / S[j];

		for (int32_t i = 0; i < D; i++)
			out[i] = acc[(size_t) j * D + i] * inv;
	}
}

/* Thread body: take items, latest tokens (the longest rows) first. */
static void
lg_attn_task(void *arg, int ith, int nth)
{
	lg_attn_job *job = (lg_attn_job *) arg;
	const lg_attn_args *a = job->a;
	float	   *ws = job->ws + (size_t) ith * (LG_ATTN_WS_BYTES / sizeof(float));
	int64_t		item = ith;

	while (item < job->n_items)
	{
		const int64_t per_tok = (int64_t) a->n_kv_heads * job->n_sub;
		const int64_t t = a->n_tok - 1 - item / per_tok;
		const int64_t rest = item % per_tok;
		const int32_t g = (int32_t) (rest / job->n_sub);
		const int32_t sub = (int32_t) (rest % job->n_sub);
		const int32_t h0 = g * job->group + sub * job->gsub;
		int32_t		nh = job->group - sub * job->gsub;

		if (nh > job->gsub)
			nh = job->gsub;
		lg_attn_item(job, t, g, h0, nh, ws);
		item = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
	}
}

/* lg_backend.attention */
void
lg_cpu_attention(lg_backend *be, const lg_attn_args *a)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);
	lg_attn_job job;
	int64_t		want;
	int64_t		n_sub;

	if (a->n_tok <= 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->head_dim <= 0 ||
		a->n_heads % a->n_kv_heads != 0)
		return;
	if (a->head_dim > LG_ATTN_WS_FLOATS)
	{
		/* beyond any model we know of; loud rather than wrong */
		for (int64_t i = 0; i < a->n_tok * a->n_heads * (int64_t) a->head_dim; i++)
			a->out[i] = NAN;
		return;
	}

	memset(&job, 0, sizeof(job));
	job.k = &ctx->k;
	job.a = a;
	job.ws = ctx->attn_ws;
	job.group = a->n_heads / a->n_kv_heads;
	job.tile = LG_ATTN_WS_FLOATS / a->head_dim < LG_ATTN_TILE
		? LG_ATTN_WS_FLOATS / a->head_dim : LG_ATTN_TILE;

	/*
	 * Split each group of query heads only as far as needed to give every
	 * thread a couple of items (decode has one token and few KV heads).
	 */
	want = 2 * (int64_t) ctx->n_threads;
	n_sub = (want + a->n_tok * a->n_kv_heads - 1) / (a->n_tok * a->n_kv_heads);
	if (n_sub < 1)
		n_sub = 1;
	if (n_sub > job.group)
		n_sub = job.group;
	job.gsub = (int32_t) ((job.group + n_sub - 1) / n_sub);
	if (job.gsub > LG_ATTN_MAX_GROUP)
		job.gsub = LG_ATTN_MAX_GROUP;
	while (job.gsub > 1 && (int64_t) job.gsub * a->head_dim > LG_ATTN_WS_FLOATS)
		job.gsub--;
	job.n_sub = (job.group + job.gsub - 1) / job.gsub;
	job.n_items = a->n_tok * a->n_kv_heads * job.n_sub;
	atomic_init(&job.next, ctx->n_threads);

	if (job.n_items == 1)
		lg_attn_task(&job, 0, 1);
	else
		lg_threadpool_run(ctx->tp, lg_attn_task, &job);
}

/* lg_backend.attn_scratch_floats: none; attention uses bounded stack space. */
size_t
lg_cpu_attn_scratch_floats(lg_backend *be, int64_t n_tok, int64_t kv_len, int32_t n_heads)
{
	return 0;
}
