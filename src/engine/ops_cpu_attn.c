/*
 * ops_cpu_attn.c — causal grouped-query attention over a paged KV cache
 * (or bidirectional, for encoders: every query sees the whole sequence).
 *
 * A token's positions are cut into chunks of a fixed number of positions
 * (LG_ATTN_CHUNK, whole tiles), and each chunk is walked in tiles of a
 * fixed number of positions (the last ones cut short by the token's own
 * position): the tile's K rows (all KV heads: contiguous memory, so the
 * hardware prefetchers stream it) are converted to f32 once, every query
 * head scores them against its KV head's slice, a running max and sum per
 * head is kept (the "online" softmax of flash attention), and the tile's
 * V rows are weighted in.  Each chunk leaves a partial (max, sum, weighted
 * V) per head, and the partials are folded in chunk order into the output
 * (ggml's split-KV combine, done as a running fold).
 *
 * The chunk and tile boundaries depend on positions only, never on how
 * many tokens or sequences share the call, on the thread count or on
 * where the blocks lie in the pool, so a token's output is bitwise the
 * same alone or batched (docs/batching.md).  Only who computes a chunk
 * varies: with many tokens in the call an item is one token, all its
 * chunks folded by one thread; with few (decoding) an item is one
 * (token, chunk), so the threads share a long cache, and its partials go
 * to a buffer that a final step folds in the same order with the same
 * code.
 *
 * Positions go through the sequence's block table.  A tile whose rows lie
 * in consecutive pool rows is read in place (F32) or converted in one go
 * (F16); otherwise its rows are gathered from as many blocks as it spans
 * into the workspace first, so tiles are those of a flat cache whatever
 * the block layout.  Memory is a fixed per-thread workspace allocated
 * with the backend plus the small partials buffer, whatever kv_len is, so
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
#define LG_ATTN_CHUNK		256		/* KV positions per chunk, rounded down to whole tiles */

/* One sequence's share of an attention call. */
typedef struct lg_attn_seq
{
	const lg_attn_args *a;
	float	   *part;			/* split: [n_tok][n_chunks][n_heads][2 + head_dim] */
	size_t		part_off;		/* where part goes in the partials buffer */
	int32_t		group;			/* query heads per KV head */
	int32_t		tile;			/* KV positions per tile */
	int64_t		chunk;			/* KV positions per chunk, a multiple of tile */
	int64_t		n_chunks;		/* chunks of kv_len */
	bool		split;			/* one item per (token, chunk), not per token */
	int64_t		item0;			/* its first item in the call */
	int64_t		n_items;		/* n_tok, or n_tok * n_chunks when split; 0 when unusable */
} lg_attn_seq;

/* An attention call: the items of every sequence, taken by the threads in turn. */
typedef struct lg_attn_job
{
	const lg_cpu_kernels *k;
	float	   *ws;				/* n_threads workspaces of LG_ATTN_WS_FLOATS */
	const lg_attn_seq *seqs;
	int32_t		n_seqs;
	int64_t		n_items;
	_Alignas(64) atomic_int_fast64_t next;
} lg_attn_job;

/*
 * The pool row of position p and, in *nc, how many positions from p on
 * (at most max) lie in consecutive pool rows: to the end of p's block, or
 * further while the next blocks follow it in the pool.
 */
static inline int64_t
lg_attn_run(const lg_attn_args *a, int64_t p, int64_t max, int64_t *nc)
{
	const int32_t bs = a->block_size;
	int64_t		bi = p / bs;
	int64_t		n = bs - p % bs;

	while (n < max && a->block_table[bi + 1] == a->block_table[bi] + 1)
	{
		n += bs;
		bi++;
	}
	*nc = n < max ? n : max;
	return (int64_t) a->block_table[p / bs] * bs + p % bs;
}

/*
 * Positions c0..c0+nc-1 of an F16 pool converted to packed f32 rows in
 * dst, one run of consecutive pool rows at a time: the copy gathers
 * across blocks, so F16 tiles are full-size whatever the block layout.
 */
static void
lg_attn_gather_f16(const lg_cpu_kernels *k, const lg_attn_args *a, const void *pool,
				   int64_t c0, int64_t nc, int64_t row, float *dst)
{
	for (int64_t j = 0, n; j < nc; j += n)
	{
		const int64_t r = lg_attn_run(a, c0 + j, nc - j, &n);

		k->attn_tile_f16(n, (int32_t) row, (const lg_f16 *) pool + r * row, row, dst + j * row);
	}
}

/*
 * Positions c0..c0+nc-1 of an F32 pool: in place when they lie in
 * consecutive pool rows, else copied run by run into dst, so a tile never
 * stops at a gap in the block table (its rows, hence its sums, are those
 * of a flat cache).
 */
static const float *
lg_attn_rows_f32(const lg_attn_args *a, const void *pool, int64_t c0, int64_t nc,
				 int64_t row, float *dst)
{
	int64_t		n;
	int64_t		r = lg_attn_run(a, c0, nc, &n);

	if (n == nc)
		return (const float *) pool + r * row;
	for (int64_t j = 0; j < nc; j += n)
	{
		r = lg_attn_run(a, c0 + j, nc - j, &n);
		memcpy(dst + j * row, (const float *) pool + r * row, (size_t) (n * row) * sizeof(float));
	}
	return dst;
}

/*
 * Token t of a sequence against the positions of chunk ch of its cache,
 * all heads, leaving its partial [n_heads][max, sum, weighted V] in p.
 * Tiles start at whole multiples of the tile from the chunk's start.
 */
static void
lg_attn_chunk(const lg_cpu_kernels *k, const lg_attn_seq *job, int64_t t, int64_t ch,
			  float *ws, float *p)
{
	const lg_attn_args *a = job->a;
	const int32_t D = a->head_dim;
	const int32_t nh = a->n_heads;
	const int64_t row = (int64_t) a->n_kv_heads * D;	/* values per cache row */
	const int64_t q_row = (int64_t) nh * D;
	const int64_t n_valid = a->bidirectional || a->pos0 + t + 1 >= a->kv_len ? a->kv_len : a->pos0 + t + 1;
	const int64_t cs = ch * job->chunk;
	const int64_t ce = cs + job->chunk < n_valid ? cs + job->chunk : n_valid;
	const bool	f16 = a->kv_type == LG_KV_F16;
	const int32_t T = job->tile;
	float	   *q32 = ws;
	float	   *acc = q32 + q_row;
	float	   *M = acc + q_row;
	float	   *S = M + nh;
	float	   *sc = S + nh;
	float	   *kt = sc + (size_t) nh * T;
	float	   *vt = kt + (size_t) T * row;

	if (cs >= ce)
	{
		/* past the token's own position: an empty partial */
		for (int32_t h = 0; h < nh; h++)
		{
			p[(int64_t) h * (D + 2)] = -INFINITY;
			p[(int64_t) h * (D + 2) + 1] = 0.0f;
		}
		return;
	}
	for (int32_t h = 0; h < nh; h++)
	{
		const float *q = a->q + t * q_row + (int64_t) h * D;

		if (f16)
		{
			/* round q to f16 as ggml does before its f16 dot (kt is free yet) */
			k->f32_to_f16(q, (lg_f16 *) kt, D);
			k->f16_to_f32((const lg_f16 *) kt, q32 + (size_t) h * D, D);
		}
		else
			memcpy(q32 + (size_t) h * D, q, (size_t) D * sizeof(float));
		M[h] = -INFINITY;
		S[h] = 0.0f;
	}
	memset(acc, 0, (size_t) q_row * sizeof(float));

	for (int64_t c0 = cs; c0 < ce; c0 += T)
	{
		const int64_t nc = ce - c0 < T ? ce - c0 : T;
		const float *K;
		const float *V;

		if (f16)
		{
			lg_attn_gather_f16(k, a, a->k_cache, c0, nc, row, kt);
			K = kt;
		}
		else
			K = lg_attn_rows_f32(a, a->k_cache, c0, nc, row, kt);
		for (int32_t h = 0; h < nh; h++)
			k->attn_scores(nc, D, K + (int64_t) (h / job->group) * D, row,
						   q32 + (size_t) h * D, a->scale, sc + (size_t) h * T);

		/* running max and sum; rescale what was accumulated under an older max */
		for (int32_t h = 0; h < nh; h++)
		{
			float	   *sh = sc + (size_t) h * T;
			float		m = sh[0];

			for (int64_t c = 1; c < nc; c++)
				m = sh[c] > m ? sh[c] : m;
			if (m > M[h])
			{
				if (M[h] != -INFINITY)
				{
					const float f = expf(M[h] - m);

					k->scale_f32(D, acc + (size_t) h * D, f);
					S[h] *= f;
				}
				M[h] = m;
			}
			S[h] += k->exp_sum(nc, sh, M[h]);
		}

		if (f16)
		{
			lg_attn_gather_f16(k, a, a->v_cache, c0, nc, row, vt);
			V = vt;
		}
		else
			V = lg_attn_rows_f32(a, a->v_cache, c0, nc, row, vt);
		for (int32_t h = 0; h < nh; h++)
			k->attn_accum(nc, D, V + (int64_t) (h / job->group) * D, row,
						  sc + (size_t) h * T, acc + (size_t) h * D);
	}

	for (int32_t h = 0; h < nh; h++)
	{
		float	   *ph = p + (int64_t) h * (D + 2);

		ph[0] = M[h];
		ph[1] = S[h];
		memcpy(ph + 2, acc + (size_t) h * D, (size_t) D * sizeof(float));
	}
}

/*
 * Fold one head's chunk partial p into the running r (both [max, sum,
 * weighted V of D]; r starts with sum 0).  Every output goes through this
 * one function, chunk by chunk in order, whoever computed the chunks.
 */
static void
lg_attn_fold(const lg_cpu_kernels *k, int32_t D, float *r, const float *p)
{
	float		f;

	if (p[1] == 0.0f)
		return;					/* an empty chunk */
	if (r[1] == 0.0f)
	{
		memcpy(r, p, (size_t) (D + 2) * sizeof(float));
		return;
	}
	if (p[0] > r[0])
	{
		f = expf(r[0] - p[0]);
		k->scale_f32(D, r + 2, f);
		k->axpy_f32(D, r + 2, p + 2, 1.0f);
		r[1] = r[1] * f + p[1];
		r[0] = p[0];
	}
	else
	{
		f = expf(p[0] - r[0]);
		k->axpy_f32(D, r + 2, p + 2, f);
		r[1] = r[1] + p[1] * f;
	}
}

/* One head's output from its folded r: the weighted V over the sum. */
static void
lg_attn_finish(int32_t D, const float *r, float *out)
{
	const float inv = r[1] == 0.0f ? 0.0f : 1.0f / r[1];

	for (int32_t i = 0; i < D; i++)
		out[i] = r[2 + i] * inv;
}

/*
 * Token t of an unsplit sequence: its chunks one after another, each
 * folded in as it is done (the chunk's partial and the running fold live
 * in the workspace after the tile buffers).
 */
static void
lg_attn_token(const lg_cpu_kernels *k, const lg_attn_seq *job, int64_t t, float *ws)
{
	const lg_attn_args *a = job->a;
	const int32_t D = a->head_dim;
	const int32_t nh = a->n_heads;
	const int64_t n_valid = a->bidirectional || a->pos0 + t + 1 >= a->kv_len ? a->kv_len : a->pos0 + t + 1;
	float	   *p = ws + LG_ATTN_WS_FLOATS - 2 * (size_t) nh * (D + 2);
	float	   *r = p + (size_t) nh * (D + 2);

	for (int32_t h = 0; h < nh; h++)
		r[(int64_t) h * (D + 2) + 1] = 0.0f;
	for (int64_t ch = 0; ch * job->chunk < n_valid; ch++)
	{
		lg_attn_chunk(k, job, t, ch, ws, p);
		for (int32_t h = 0; h < nh; h++)
			lg_attn_fold(k, D, r + (int64_t) h * (D + 2), p + (int64_t) h * (D + 2));
	}
	for (int32_t h = 0; h < nh; h++)
		lg_attn_finish(D, r + (int64_t) h * (D + 2), a->out + (t * nh + h) * (int64_t) D);
}

/*
 * Thread body: take items in order; within a sequence, latest tokens (the
 * longest rows) first.  Items only grow, so a thread's sequence cursor
 * only moves forward.
 */
static void
lg_attn_task(void *arg, int ith, int nth)
{
	lg_attn_job *job = (lg_attn_job *) arg;
	float	   *ws = job->ws + (size_t) ith * LG_ATTN_WS_FLOATS;
	int64_t		item = ith;
	int32_t		s = 0;

	while (item < job->n_items)
	{
		const lg_attn_seq *sj;
		int64_t		local;

		while (item >= job->seqs[s].item0 + job->seqs[s].n_items)
			s++;
		sj = &job->seqs[s];
		local = item - sj->item0;
		if (sj->split)
		{
			const int64_t t = sj->a->n_tok - 1 - local / sj->n_chunks;
			const int64_t ch = local % sj->n_chunks;

			lg_attn_chunk(job->k, sj, t, ch, ws,
						  sj->part + (t * sj->n_chunks + ch) * sj->a->n_heads * (int64_t) (sj->a->head_dim + 2));
		}
		else
			lg_attn_token(job->k, sj, sj->a->n_tok - 1 - local, ws);
		item = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
	}
}

/*
 * Fold the chunks' partials of each (token, head) of a split sequence
 * into its output, in chunk order, as lg_attn_token does (r: D + 2 floats
 * of scratch).
 */
static void
lg_attn_reduce(const lg_cpu_kernels *k, const lg_attn_seq *job, float *r)
{
	const lg_attn_args *a = job->a;
	const int32_t D = a->head_dim;

	for (int64_t t = 0; t < a->n_tok; t++)
		for (int32_t h = 0; h < a->n_heads; h++)
		{
			r[1] = 0.0f;
			for (int64_t ch = 0; ch < job->n_chunks; ch++)
				lg_attn_fold(k, D, r,
							 job->part + ((t * job->n_chunks + ch) * a->n_heads + h) * (int64_t) (D + 2));
			lg_attn_finish(D, r, a->out + (t * a->n_heads + h) * (int64_t) D);
		}
}

/* Make sure the partials buffer holds n floats. */
static bool
lg_attn_reserve(lg_cpu_ctx *ctx, size_t n)
{
	float	   *p;

	if (n <= ctx->attn_part_floats)
		return true;
	p = (float *) malloc(n * sizeof(float));
	if (p == NULL)
		return false;
	free(ctx->attn_part);
	ctx->attn_part = p;
	ctx->attn_part_floats = n;
	return true;
}

/* Make sure the per-sequence job table holds n entries. */
static bool
lg_attn_reserve_seqs(lg_cpu_ctx *ctx, int32_t n)
{
	void	   *p;

	if (n <= ctx->attn_seqs_cap)
		return true;
	p = malloc((size_t) n * sizeof(lg_attn_seq));
	if (p == NULL)
		return false;
	free(ctx->attn_seqs);
	ctx->attn_seqs = p;
	ctx->attn_seqs_cap = n;
	return true;
}

/*
 * Plan one sequence: its tile and chunk (functions of the model's shapes
 * only), and its item count (0 when its shapes are unusable).  Returns
 * false when the heads do not fit the workspace: the output is set to NaN
 * then, loud rather than wrong.
 */
static bool
lg_attn_plan(const lg_attn_args *a, lg_attn_seq *sj)
{
	const int64_t q_row = (int64_t) a->n_heads * a->head_dim;
	const int64_t row = (int64_t) a->n_kv_heads * a->head_dim;
	const int64_t fold = 2 * (int64_t) a->n_heads * (a->head_dim + 2);
	int64_t		tile;

	memset(sj, 0, sizeof(*sj));
	sj->a = a;
	if (a->n_tok <= 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 || a->head_dim <= 0 ||
		a->n_heads % a->n_kv_heads != 0 || a->kv_len <= 0 || a->block_size <= 0 ||
		a->block_table == NULL)
		return true;

	/* tile: what fits the workspace next to q, acc, M, S and the fold of every head */
	tile = (LG_ATTN_WS_FLOATS - 2 * q_row - 2 * (int64_t) a->n_heads - fold) /
		((int64_t) a->n_heads + 2 * row);
	if (tile > LG_ATTN_TILE)
		tile = LG_ATTN_TILE;
	if (tile >= 8)
		tile &= ~(int64_t) 3;
	if (tile < 1)
	{
		/* beyond any model we know of */
		for (int64_t i = 0; i < a->n_tok * q_row; i++)
			a->out[i] = NAN;
		return false;
	}
	sj->group = a->n_heads / a->n_kv_heads;
	sj->tile = (int32_t) tile;
	sj->chunk = LG_ATTN_CHUNK / tile * tile;
	sj->n_chunks = (a->kv_len + sj->chunk - 1) / sj->chunk;
	sj->n_items = a->n_tok;
	return true;
}

/*
 * Few tokens in the whole call: one item per (token, chunk) of sj, so
 * decoding a long cache uses every core.  The partials go at *part_used
 * floats into the partials buffer (sized afterwards, see
 * lg_cpu_attention).  Only who computes changes, not what.
 */
static void
lg_attn_split(lg_attn_seq *sj, size_t *part_used)
{
	const lg_attn_args *a = sj->a;

	sj->split = true;
	sj->n_items = a->n_tok * sj->n_chunks;
	/* an offset for now: the buffer is sized once every sequence is planned */
	sj->part_off = *part_used;
	*part_used += (size_t) (a->n_tok * sj->n_chunks * a->n_heads * (a->head_dim + 2));
}

/*
 * lg_backend.attention: every sequence's items in one parallel run, so a
 * batch of short decodes keeps all threads busy.
 */
void
lg_cpu_attention(lg_backend *be, const lg_attn_args *args, int32_t n_seqs)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);
	lg_attn_seq one;
	lg_attn_seq *seqs = &one;
	lg_attn_job job;
	int64_t		total_tok = 0;
	size_t		part_used = 0;

	if (n_seqs <= 0)
		return;
	if (n_seqs > 1 && !lg_attn_reserve_seqs(ctx, n_seqs))
	{
		/* no table: one sequence at a time gives the same answer */
		for (int32_t s = 0; s < n_seqs; s++)
			lg_cpu_attention(be, &args[s], 1);
		return;
	}
	if (n_seqs > 1)
		seqs = (lg_attn_seq *) ctx->attn_seqs;

	for (int32_t s = 0; s < n_seqs; s++)
	{
		lg_attn_plan(&args[s], &seqs[s]);
		total_tok += seqs[s].n_items;
	}
	if (total_tok < 2 * (int64_t) ctx->n_threads && ctx->n_threads > 1)
		for (int32_t s = 0; s < n_seqs; s++)
			if (seqs[s].n_items > 0 && seqs[s].n_chunks > 1)
				lg_attn_split(&seqs[s], &part_used);
	if (part_used > 0)
	{
		bool		ok = lg_attn_reserve(ctx, part_used);

		for (int32_t s = 0; s < n_seqs; s++)
		{
			if (!seqs[s].split)
				continue;
			if (ok)
				seqs[s].part = ctx->attn_part + seqs[s].part_off;
			else
			{
				/* no room for partials: one item per token, slower, same result */
				seqs[s].split = false;
				seqs[s].n_items = args[s].n_tok;
			}
		}
	}

	memset(&job, 0, sizeof(job));
	job.k = &ctx->k;
	job.ws = ctx->attn_ws;
	job.seqs = seqs;
	job.n_seqs = n_seqs;
	for (int32_t s = 0; s < n_seqs; s++)
	{
		seqs[s].item0 = job.n_items;
		job.n_items += seqs[s].n_items;
	}
	if (job.n_items == 0)
		return;
	atomic_init(&job.next, ctx->n_threads);

	if (job.n_items == 1)
		lg_attn_task(&job, 0, 1);
	else
		lg_threadpool_run(ctx->tp, lg_attn_task, &job);
	for (int32_t s = 0; s < n_seqs; s++)
		if (seqs[s].split)
			lg_attn_reduce(&ctx->k, &seqs[s], ctx->attn_ws);
}

/* lg_backend.attn_scratch_floats: none; attention has its own workspace. */
size_t
lg_cpu_attn_scratch_floats(lg_backend *be, int64_t n_tok, int64_t kv_len, int32_t n_heads)
{
	return 0;
}
