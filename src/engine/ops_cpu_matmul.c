/*
 * ops_cpu_matmul.c — y = x·Wᵀ for every weight type, and embedding lookup.
 *
 * As in ggml, the n activation rows are first converted once to the weight
 * type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32 itself) into a
 * buffer the backend keeps; that conversion is what makes our numbers agree
 * with llama.cpp's.  The output is then cut into tiles of (weight rows ×
 * tokens) handed out to the threads through an atomic counter, so a slow
 * core never holds the others up.  A tile covers enough tokens that its
 * weight rows, once read from memory, are reused from cache for all of them.
 */
#include "backend_cpu_impl.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of activations a tile aims to keep in L2 while its weights stream. */
#define LG_MM_X_TILE_BYTES	(256 * 1024)
/* Weight rows of a tile when there are several tokens. */
#define LG_MM_ROWS_MULTI	16
/* Tokens a tile needs before its rows are unpacked once (lg_unpack_fn). */
#define LG_MM_UNPACK_MIN	8

typedef struct lg_mm_job
{
	const lg_cpu_kernels *k;
	lg_type		type;
	lg_type		vt;				/* vec_dot_type */
	lg_dot_fn	dot;			/* NULL: lg_vec_dot_ref */
	lg_dotn_fn	dotn;			/* NULL: one token at a time */
	lg_dotr_fn	dotr;			/* NULL: one row at a time */
	lg_dotrn_fn dotrn;			/* NULL: one row at a time with dotn */
	lg_prep_fn	prep;			/* non-NULL: activations in the table's form */
	lg_unpack_fn unpack;		/* non-NULL: tiles unpack their rows for dotrn_u */
	lg_dotrn_fn dotrn_u;
	lg_gemm_xpack_fn gemm_xpack;	/* non-NULL: the large-M GEMM runs */
	lg_gemm_tile_fn gemm_tile;
	char	   *gbuf;			/* packed token blocks, gbuf_stride bytes each */
	size_t		gbuf_stride;
	size_t		gscratch_stride;	/* per thread, in ubuf */
	char	   *ubuf;			/* unpack_stride * rb bytes per thread */
	size_t		unpack_stride;

	const char *w;				/* rows of w_stride bytes */
	size_t		w_stride;
	const float *xf;			/* the float activations */
	char	   *xq;				/* converted activations, x_stride bytes a row */
	size_t		x_stride;
	float	   *y;

	int64_t		rows;
	int64_t		cols;
	int64_t		n;

	int64_t		rb;				/* weight rows per tile */
	int64_t		tb;				/* tokens per tile */
	int64_t		n_tb;			/* token blocks */
	int64_t		n_tiles;
	_Alignas(64) atomic_int_fast64_t next;
} lg_mm_job;

/* Whether matmul handles weights of this type. */
static bool
lg_mm_type_supported(lg_type t)
{
	switch (t)
	{
		case LG_TYPE_F32:
		case LG_TYPE_F16:
		case LG_TYPE_BF16:
		case LG_TYPE_Q4_0:
		case LG_TYPE_Q4_1:
		case LG_TYPE_Q5_0:
		case LG_TYPE_Q5_1:
		case LG_TYPE_Q8_0:
		case LG_TYPE_Q2_K:
		case LG_TYPE_Q3_K:
		case LG_TYPE_Q4_K:
		case LG_TYPE_Q5_K:
		case LG_TYPE_Q6_K:
			return true;
		default:
			return false;
	}
}

/* Convert one activation row to the vec_dot_type. */
static void
lg_mm_convert_row(const lg_cpu_kernels *k, lg_type vt, const float *x, void *dst, int64_t cols)
{
	switch (vt)
	{
		case LG_TYPE_F16:
			k->f32_to_f16(x, (lg_f16 *) dst, cols);
			break;
		case LG_TYPE_BF16:
			{
				lg_bf16    *d = (lg_bf16 *) dst;

				for (int64_t i = 0; i < cols; i++)
					d[i] = lg_f32_to_bf16(x[i]);
			}
			break;
		default:
			/* Q8_0, Q8_1, Q8_K: validated by the caller */
			(void) lg_quantize_row(vt, x, dst, cols);
			break;
	}
}

/* Thread body: convert a contiguous share of the activation rows. */
static void
lg_mm_convert_task(void *arg, int ith, int nth)
{
	lg_mm_job  *job = (lg_mm_job *) arg;
	int64_t		per = (job->n + nth - 1) / nth;
	int64_t		r0 = per * ith;
	int64_t		r1 = r0 + per < job->n ? r0 + per : job->n;

	for (int64_t r = r0; r < r1; r++)
	{
		if (job->prep != NULL)
			job->prep(job->xf + r * job->cols, job->xq + r * job->x_stride, job->cols);
		else
			lg_mm_convert_row(job->k, job->vt, job->xf + r * job->cols,
							  job->xq + r * job->x_stride, job->cols);
	}
}

/* Compute one tile, on thread ith: weight rows [r0, r1) against tokens [t0, t1). */
static void
lg_mm_tile(const lg_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1)
{
	const int64_t rows = job->rows;
	const int64_t cols = job->cols;
	const size_t xs = job->x_stride;
	float		s[LG_DOTN_MAX > LG_DOTR_MAX ? LG_DOTN_MAX : LG_DOTR_MAX];

	if (job->dotrn != NULL && t1 - t0 >= 2)
	{
		/* several tokens: blocks of rows × tokens accumulated in registers */
		float		st[LG_DOTR_MAX * LG_DOTN_MAX];
		lg_dotrn_fn dotrn = job->dotrn;
		const char *w = job->w + (size_t) r0 * job->w_stride;
		size_t		ws = job->w_stride;

		if (job->unpack != NULL && t1 - t0 >= LG_MM_UNPACK_MIN)
		{
			/* decode the rows once for all the tile's token groups */
			char	   *u = job->ubuf + (size_t) ith * (size_t) job->rb * job->unpack_stride;

			job->unpack(cols, (int) (r1 - r0), w, ws, u);
			dotrn = job->dotrn_u;
			w = u;
			ws = job->unpack_stride;
		}
		for (int64_t r = r0; r < r1; r += LG_DOTR_MAX)
		{
			int			nr = r1 - r < LG_DOTR_MAX ? (int) (r1 - r) : LG_DOTR_MAX;

			for (int64_t t = t0; t < t1; t += LG_DOTN_MAX)
			{
				int			nc = t1 - t < LG_DOTN_MAX ? (int) (t1 - t) : LG_DOTN_MAX;

				dotrn(cols, nr, nc, st, w + (size_t) (r - r0) * ws, ws, job->xq + (size_t) t * xs, xs);
				for (int i = 0; i < nr; i++)
					for (int c = 0; c < nc; c++)
						job->y[(t + c) * rows + r + i] = st[i * LG_DOTN_MAX + c];
			}
		}
		return;
	}
	if (job->dotr != NULL && t1 - t0 == 1)
	{
		/* one token: several rows at a time, sharing its activation */
		for (int64_t r = r0; r < r1; r += LG_DOTR_MAX)
		{
			int			nr = r1 - r < LG_DOTR_MAX ? (int) (r1 - r) : LG_DOTR_MAX;

			job->dotr(cols, nr, s, job->w + (size_t) r * job->w_stride, job->w_stride,
					  job->xq + (size_t) t0 * xs);
			for (int c = 0; c < nr; c++)
				job->y[t0 * rows + r + c] = s[c];
		}
		return;
	}
	for (int64_t r = r0; r < r1; r++)
	{
		const char *wr = job->w + (size_t) r * job->w_stride;
		int64_t		t = t0;

		if (job->dotn != NULL)
		{
			while (t1 - t >= 2)
			{
				int			nc = t1 - t < LG_DOTN_MAX ? (int) (t1 - t) : LG_DOTN_MAX;

				job->dotn(cols, nc, s, wr, job->xq + (size_t) t * xs, xs);
				for (int c = 0; c < nc; c++)
					job->y[(t + c) * rows + r] = s[c];
				t += nc;
			}
		}
		for (; t < t1; t++)
		{
			const char *xr = job->xq + (size_t) t * xs;

			if (job->dot != NULL)
				job->dot(cols, &s[0], wr, xr);
			else
				lg_vec_dot_ref(job->type, cols, wr, xr, &s[0]);
			job->y[t * rows + r] = s[0];
		}
	}
}

/* Thread body: take tiles until none are left. */
static void
lg_mm_compute_task(void *arg, int ith, int nth)
{
	lg_mm_job  *job = (lg_mm_job *) arg;
	int64_t		tile = ith;

	while (tile < job->n_tiles)
	{
		int64_t		ib = tile / job->n_tb;
		int64_t		it = tile % job->n_tb;
		int64_t		r0 = ib * job->rb;
		int64_t		r1 = r0 + job->rb < job->rows ? r0 + job->rb : job->rows;
		int64_t		t0 = it * job->tb;
		int64_t		t1 = t0 + job->tb < job->n ? t0 + job->tb : job->n;

		lg_mm_tile(job, ith, r0, r1, t0, t1);
		tile = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
	}
}

/* Make sure the scratch buffer *buf (of *cur bytes) holds size bytes. */
static bool
lg_cpu_reserve_buf(void **buf, size_t *cur, size_t size)
{
	void	   *p;

	if (size <= *cur)
		return true;
	/* grow geometrically so prompts of rising length don't realloc each time */
	if (size < *cur * 3 / 2)
		size = *cur * 3 / 2;
	size = (size + 4095) & ~(size_t) 4095;
	p = aligned_alloc(64, size);
	if (p == NULL)
		return false;
	free(*buf);
	*buf = p;
	*cur = size;
	return true;
}

/* Thread body: pack the token blocks ith, ith + nth, ... for the GEMM. */
static void
lg_mm_gemm_pack_task(void *arg, int ith, int nth)
{
	lg_mm_job  *job = (lg_mm_job *) arg;

	for (int64_t b = ith; b < job->n_tb; b += nth)
	{
		int64_t		t0 = b * LG_GEMM_TOKS;
		int			nt = (int) (job->n - t0 < LG_GEMM_TOKS ? job->n - t0 : LG_GEMM_TOKS);

		job->gemm_xpack(job->cols, nt, job->xq + (size_t) t0 * job->x_stride, job->x_stride,
						job->gbuf + (size_t) b * job->gbuf_stride);
	}
}

/*
 * Thread body: GEMM tiles (LG_GEMM_ROWS rows × one token block) until none
 * are left.  Row-block-major: a thread's next tile is usually the same
 * rows with the next token block, so it keeps the rows it converted
 * (converting them is the tile's biggest cost after the products) and
 * streams the packed tokens instead.
 */
static void
lg_mm_gemm_task(void *arg, int ith, int nth)
{
	lg_mm_job  *job = (lg_mm_job *) arg;
	int64_t		tile = ith;
	int64_t		packed_r0 = -1;
	char	   *scratch = job->ubuf + (size_t) ith * job->gscratch_stride;

	while (tile < job->n_tiles)
	{
		int64_t		r0 = tile / job->n_tb * LG_GEMM_ROWS;
		int64_t		b = tile % job->n_tb;
		int64_t		t0 = b * LG_GEMM_TOKS;
		int			nr = (int) (job->rows - r0 < LG_GEMM_ROWS ? job->rows - r0 : LG_GEMM_ROWS);
		int			nt = (int) (job->n - t0 < LG_GEMM_TOKS ? job->n - t0 : LG_GEMM_TOKS);

		job->gemm_tile(job->cols, nr, nt, job->w + (size_t) r0 * job->w_stride, job->w_stride,
					   r0 == packed_r0, job->gbuf + (size_t) b * job->gbuf_stride,
					   job->y + t0 * job->rows + r0, job->rows, scratch);
		packed_r0 = r0;
		tile = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
	}
}

/*
 * The large-M path: pack the converted activations by token blocks, then
 * tiles of rows × one block (see lg_gemm_tile_fn).  False when its
 * buffers cannot be had (the caller falls back to the tiles of dots).
 */
static bool
lg_mm_gemm(lg_cpu_ctx *ctx, lg_mm_job *job)
{
	const lg_cpu_kernels *k = &ctx->k;

	job->n_tb = (job->n + LG_GEMM_TOKS - 1) / LG_GEMM_TOKS;
	job->n_tiles = (job->rows + LG_GEMM_ROWS - 1) / LG_GEMM_ROWS * job->n_tb;
	job->gbuf_stride = (k->gemm_xpack_size[job->type] (job->cols) + 63) & ~(size_t) 63;
	job->gscratch_stride = (k->gemm_scratch_size[job->type] (job->cols) + 63) & ~(size_t) 63;
	if (!lg_cpu_reserve_buf(&ctx->gbuf, &ctx->gbuf_size, job->gbuf_stride * (size_t) job->n_tb) ||
		!lg_cpu_reserve_buf(&ctx->ubuf, &ctx->ubuf_size, job->gscratch_stride * (size_t) ctx->n_threads))
		return false;
	job->gbuf = (char *) ctx->gbuf;
	job->ubuf = (char *) ctx->ubuf;
	job->gemm_xpack = k->gemm_xpack[job->type];
	job->gemm_tile = k->gemm_tile[job->type];
	lg_threadpool_run(ctx->tp, lg_mm_gemm_pack_task, job);
	atomic_init(&job->next, ctx->n_threads);
	lg_threadpool_run(ctx->tp, lg_mm_gemm_task, job);
	return true;
}

/* Pick tile sizes: enough tiles for every thread, weights reused across tokens. */
static void
lg_mm_plan(lg_mm_job *job, int nth)
{
	int64_t		rows = job->rows;

	if (job->n == 1)
	{
		/* matvec: chunks of rows, ~8 per thread so the dynamic split balances */
		int64_t		rb = rows / ((int64_t) nth * 8);

		rb = (rb + 7) & ~(int64_t) 7;
		if (rb < 8)
			rb = 8;
		if (rb > 256)
			rb = 256;
		job->rb = rb;
		job->tb = 1;
	}
	else
	{
		int64_t		tb = LG_MM_X_TILE_BYTES / (int64_t) job->x_stride;

		if (tb < 1)
			tb = 1;
		if (tb > job->n)
			tb = job->n;
		/* whole groups of LG_DOTN_MAX so the multi-token kernel stays busy */
		if (tb > LG_DOTN_MAX)
			tb -= tb % LG_DOTN_MAX;
		job->tb = tb;
		job->rb = LG_MM_ROWS_MULTI;
		/* few rows and few token blocks: smaller row blocks so all threads work */
		while (job->rb > 1 &&
			   ((rows + job->rb - 1) / job->rb) * ((job->n + tb - 1) / tb) < (int64_t) nth * 4)
			job->rb /= 2;
	}
	job->n_tb = (job->n + job->tb - 1) / job->tb;
	job->n_tiles = ((rows + job->rb - 1) / job->rb) * job->n_tb;
}

/* lg_backend.matmul: y[n][rows] = x[n][cols] · Wᵀ */
lg_status
lg_cpu_matmul(lg_backend *be, float *y, const lg_tensor *w, const float *x, int64_t n)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);
	const lg_type_info *ti;
	lg_mm_job	job;
	int64_t		cols;
	int64_t		rows;
	size_t		row_bytes;

	if (w == NULL || y == NULL || x == NULL || n < 0)
		return LG_ERR_ARG;
	if (!lg_type_valid((uint32_t) w->type) || !lg_mm_type_supported(w->type))
		return LG_ERR_UNSUPPORTED;
	ti = lg_type_get((uint32_t) w->type);
	cols = w->ne[0];
	rows = w->ne[1];
	if (cols <= 0 || rows < 0 || cols % ti->block_size != 0 || w->data == NULL)
		return LG_ERR_ARG;
	row_bytes = lg_row_size(w->type, cols);
	if (row_bytes == 0 || (w->row_bytes != 0 && w->row_bytes != row_bytes))
		return LG_ERR_ARG;
	if (n == 0 || rows == 0)
		return LG_OK;

	memset(&job, 0, sizeof(job));
	job.k = &ctx->k;
	job.type = w->type;
	job.vt = ti->vec_dot_type;
	job.dot = ctx->k.reference ? NULL : ctx->k.dot[w->type];
	job.dotn = ctx->k.reference ? NULL : ctx->k.dotn[w->type];
	job.dotr = ctx->k.reference ? NULL : ctx->k.dotr[w->type];
	job.dotrn = ctx->k.reference ? NULL : ctx->k.dotrn[w->type];
	job.prep = ctx->k.reference ? NULL : ctx->k.prep[w->type];
	job.unpack = ctx->k.reference || job.dotrn == NULL ? NULL : ctx->k.unpack[w->type];
	job.dotrn_u = ctx->k.dotrn_u[w->type];
	job.w = (const char *) w->data;
	job.w_stride = row_bytes;
	job.xf = x;
	job.y = y;
	job.rows = rows;
	job.cols = cols;
	job.n = n;

	if (job.vt == LG_TYPE_F32)
	{
		job.xq = (char *) x;
		job.x_stride = (size_t) cols * sizeof(float);
	}
	else
	{
		const lg_type_info *vi = lg_type_get((uint32_t) job.vt);

		if (vi->block_size == 0 || cols % vi->block_size != 0)
			return LG_ERR_UNSUPPORTED;
		job.x_stride = job.prep != NULL ? ctx->k.prep_size[w->type] (cols) : lg_row_size(job.vt, cols);
		/* keep rows 64-byte aligned for the SIMD loads */
		job.x_stride = (job.x_stride + 63) & ~(size_t) 63;
		if ((size_t) n > SIZE_MAX / job.x_stride)
			return LG_ERR_NOMEM;
		if (!lg_cpu_reserve_buf(&ctx->wbuf, &ctx->wbuf_size, job.x_stride * (size_t) n))
			return LG_ERR_NOMEM;
		job.xq = (char *) ctx->wbuf;
		if (n >= 2 * (int64_t) ctx->n_threads && n * cols >= 32768)
			lg_threadpool_run(ctx->tp, lg_mm_convert_task, &job);
		else
			lg_mm_convert_task(&job, 0, 1);
	}

	/* many rows: the GEMM, its outputs the same to the bit */
	if (!ctx->k.reference && ctx->k.gemm_tile[w->type] != NULL && n >= LG_GEMM_MIN_N &&
		lg_mm_gemm(ctx, &job))
		return LG_OK;
	lg_mm_plan(&job, ctx->n_threads);
	atomic_init(&job.next, ctx->n_threads);
	if (job.unpack != NULL && job.tb >= LG_MM_UNPACK_MIN)
	{
		size_t		need;

		job.unpack_stride = ctx->k.unpack_size[w->type] (cols);
		need = job.unpack_stride * (size_t) job.rb * (size_t) ctx->n_threads;
		if (!lg_cpu_reserve_buf(&ctx->ubuf, &ctx->ubuf_size, need))
			return LG_ERR_NOMEM;
		job.ubuf = (char *) ctx->ubuf;
	}
	else
		job.unpack = NULL;
	if (job.n_tiles == 1)
		lg_mm_tile(&job, 0, 0, rows, 0, n);
	else
		lg_threadpool_run(ctx->tp, lg_mm_compute_task, &job);
	return LG_OK;
}

typedef struct lg_rows_job
{
	const lg_cpu_kernels *k;
	float	   *y;
	const lg_tensor *emb;
	const int32_t *ids;
	int64_t		n;
	int64_t		d;
	size_t		row_bytes;
} lg_rows_job;

/* Thread body: dequantize a contiguous share of the requested rows. */
static void
lg_rows_task(void *arg, int ith, int nth)
{
	lg_rows_job *job = (lg_rows_job *) arg;
	int64_t		per = (job->n + nth - 1) / nth;
	int64_t		i0 = per * ith;
	int64_t		i1 = i0 + per < job->n ? i0 + per : job->n;
	const int64_t d = job->d;

	for (int64_t i = i0; i < i1; i++)
	{
		const char *src = (const char *) job->emb->data + (size_t) job->ids[i] * job->row_bytes;
		float	   *dst = job->y + i * d;

		switch (job->emb->type)
		{
			case LG_TYPE_F32:
				memcpy(dst, src, (size_t) d * sizeof(float));
				break;
			case LG_TYPE_F16:
				job->k->f16_to_f32((const lg_f16 *) src, dst, d);
				break;
			case LG_TYPE_BF16:
				for (int64_t j = 0; j < d; j++)
					dst[j] = lg_bf16_to_f32(((const lg_bf16 *) src)[j]);
				break;
			default:
				(void) lg_dequantize_row(job->emb->type, src, dst, d);
				break;
		}
	}
}

/* lg_backend.get_rows: y[i] = row ids[i] of emb, as floats. */
lg_status
lg_cpu_get_rows(lg_backend *be, float *y, const lg_tensor *emb, const int32_t *ids, int64_t n)
{
	lg_cpu_ctx *ctx = lg_cpu_ctx_of(be);
	const lg_type_info *ti;
	lg_rows_job job;

	if (emb == NULL || y == NULL || (ids == NULL && n > 0) || n < 0)
		return LG_ERR_ARG;
	if (!lg_type_valid((uint32_t) emb->type))
		return LG_ERR_UNSUPPORTED;
	ti = lg_type_get((uint32_t) emb->type);
	if (emb->type != LG_TYPE_F32 && emb->type != LG_TYPE_F16 &&
		emb->type != LG_TYPE_BF16 && !ti->quantized)
		return LG_ERR_UNSUPPORTED;
	if (emb->ne[0] <= 0 || emb->ne[0] % ti->block_size != 0 || emb->data == NULL)
		return LG_ERR_ARG;
	for (int64_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= emb->ne[1])
			return LG_ERR_RANGE;
	if (n == 0)
		return LG_OK;

	job.k = &ctx->k;
	job.y = y;
	job.emb = emb;
	job.ids = ids;
	job.n = n;
	job.d = emb->ne[0];
	job.row_bytes = lg_row_size(emb->type, emb->ne[0]);
	if (job.row_bytes == 0)
		return LG_ERR_ARG;
	if (ti->quantized)
	{
		/* a type the dequantizer does not know: fail before touching y */
		float		probe[LG_QK_K];
		int64_t		bs = ti->block_size;

		if (bs > LG_QK_K || !lg_dequantize_row(emb->type, emb->data, probe, bs))
			return LG_ERR_UNSUPPORTED;
	}
	if (n >= 16 && ctx->n_threads > 1)
		lg_threadpool_run(ctx->tp, lg_rows_task, &job);
	else
		lg_rows_task(&job, 0, 1);
	return LG_OK;
}
