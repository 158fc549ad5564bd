/*
 * backend_gpu.c — the GPU backend: the engine's backend table filled with
 * the kernels of kernels/ (CUDA, or HIP through the same sources).
 *
 * Built only with LG_HAVE_GPU (make GPU=cuda or GPU=hip); the file is
 * empty otherwise.  Plain C: every device call goes through
 * kernels/lg_kernels.h.
 *
 * Memory.  The model's weights are uploaded once (map_weights) and an op
 * given a weight pointer — a host address inside the mmapped file —
 * translates it to the device copy by its offset in the region.  The
 * context's activations and the KV pools are device buffers (buf_alloc).
 * The small host arrays the ops take (ids, positions, slots, block tables)
 * are copied through a page-locked staging area once per step: the first
 * op that passes a host array uploads it, the next ones passing the same
 * array reuse the copy (backend.h: they do not change during a step).
 *
 * Steps.  Everything runs in order on one stream; step_end waits for it.
 * A decode step (one row per sequence) is captured into a CUDA graph and
 * launched as one: the capture records the same kernels and copies, and
 * the executable graph cached for that batch size is updated in place, so
 * the CPU-side launch cost of some 10 kernels per layer is paid once per
 * step instead of per kernel.  LLAMAGPU_CUDA_GRAPHS=0 turns this off.
 *
 * Errors.  The void ops of the table cannot return a status: the first
 * failure of a step is kept and step_end returns it, with the op and the
 * device's message; later ops of that step are skipped.
 */
#ifdef LG_HAVE_GPU

#include "backend.h"
#include "lg_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPU_MAX_REGIONS 8
#define GPU_MAX_UPLOADS 32
#define GPU_MAX_DEFERRED 32
#define GPU_MAX_GRAPHS 16
#define GPU_MAX_STAGE_CHUNKS 16
#define GPU_STAGE_MIN (1 << 20)

/* Model weights on the device: host [host, host + bytes) lives at dev. */
typedef struct gpu_region
{
	const char *host;
	size_t		bytes;
	char	   *dev;
	int			refs;
} gpu_region;

/* One host array already uploaded this step. */
typedef struct gpu_upload
{
	const void *host;
	size_t		bytes;
	void	   *dev;
} gpu_upload;

/* A pair of staging buffers: page-locked host and device, same size. */
typedef struct gpu_stage
{
	char	   *host;
	char	   *dev;
	size_t		cap;
} gpu_stage;

/* A graph kept for decode steps of n_rows rows. */
typedef struct gpu_graph_slot
{
	int32_t		n_rows;
	lg_gpu_graph graph;
	uint64_t	last_used;
} gpu_graph_slot;

/* A scratch buffer that only grows; the old one is freed after the step. */
typedef struct gpu_scratch
{
	void	   *p;
	size_t		bytes;
} gpu_scratch;

typedef struct gpu_ctx
{
	int			device;
	char		name[32];		/* "cuda:0" */
	lg_gpu_device_info info;
	lg_gpu_stream stream;
	lg_gpu_blas blas;

	gpu_region	regions[GPU_MAX_REGIONS];
	int			n_regions;

	/* staging: chunks used this step; at step end merged into one */
	gpu_stage	stage[GPU_MAX_STAGE_CHUNKS];
	int			n_stage;
	size_t		stage_used;		/* in the last chunk */
	gpu_upload	uploads[GPU_MAX_UPLOADS];
	int			n_uploads;

	/* attention's packed sequences, shared by every layer of a step */
	const lg_attn_args *attn_key;
	int32_t		attn_key_n;
	const int32_t *attn_key_bt;
	int64_t		attn_key_tok;	/* the sequences' queries: an encoder's last layer has fewer */
	lg_gpu_attn_seq *attn_seqs_dev;	/* decode sequences first, then prompt ones */
	int32_t    *attn_bt_dev;
	int32_t		attn_n_decode;	/* sequences with one query */
	int32_t		attn_decode_kv_len;	/* their bound, rounded up to a power of two */
	int32_t		attn_prompt_n_tok;	/* the others' bounds */
	int32_t		attn_prompt_kv_len;
	lg_gpu_attn_seq *attn_host;	/* host build area */
	int32_t		attn_host_cap;
	int32_t    *bt_host;
	int64_t		bt_host_cap;
	int32_t    *slots_host;		/* for the block-table kv_store */
	int64_t		slots_host_cap;

	gpu_scratch mm_scratch;
	gpu_scratch attn_scratch;
	gpu_scratch sample_scratch;
	gpu_scratch sample_io;		/* ids and params of device sampling */
	void	   *deferred[GPU_MAX_DEFERRED];
	int			n_deferred;

	bool		in_step;
	bool		capturing;
	int32_t		step_rows;
	bool		use_graphs;
	gpu_graph_slot graphs[GPU_MAX_GRAPHS];
	uint64_t	n_steps;
	uint64_t	n_graph_launches;
	uint64_t	n_graph_updates;

	lg_status	sticky;			/* the step's first failure */
	char		sticky_msg[LG_ERROR_MSG_LEN];
} gpu_ctx;

static gpu_ctx *
ctx_of(lg_backend *be)
{
	return (gpu_ctx *) be->ctx;
}

/* The engine status for a kernel status. */
static lg_status
status_of(lg_gpu_status st)
{
	switch (st)
	{
		case LG_GPU_OK:
			return LG_OK;
		case LG_GPU_ERR_ARG:
			return LG_ERR_ARG;
		case LG_GPU_ERR_UNSUPPORTED:
			return LG_ERR_UNSUPPORTED;
		case LG_GPU_ERR_NOMEM:
			return LG_ERR_NOMEM;
		case LG_GPU_ERR_NODEVICE:
			return LG_ERR_UNSUPPORTED;
		case LG_GPU_ERR_DEVICE:
		default:
			return LG_ERR_INTERNAL;
	}
}

/* err = "<device>: <what>: <kernel message>"; returns the status. */
static lg_status
fail(gpu_ctx *g, lg_error *err, lg_gpu_status st, const char *what)
{
	return lg_error_set(err, status_of(st), "%s: %s: %s", g->name, what, lg_gpu_last_error());
}

/* Keep the first failure of a step for step_end. */
static void
note(gpu_ctx *g, lg_gpu_status st, const char *what)
{
	if (st == LG_GPU_OK || g->sticky != LG_OK)
		return;
	g->sticky = status_of(st);
	snprintf(g->sticky_msg, sizeof(g->sticky_msg), "%s: %s: %s", g->name, what, lg_gpu_last_error());
}

/* Free p now, or after the step when work queued in it may still use it. */
static void
free_later(gpu_ctx *g, void *p)
{
	if (p == NULL)
		return;
	if (g->in_step && g->n_deferred < GPU_MAX_DEFERRED)
		g->deferred[g->n_deferred++] = p;
	else
	{
		if (g->in_step)
			lg_gpu_stream_sync(g->stream);
		lg_gpu_free(p);
	}
}

/* Make sc hold at least bytes (growing by half again); false on failure. */
static bool
scratch_ensure(gpu_ctx *g, gpu_scratch *sc, size_t bytes, const char *what)
{
	void	   *p;
	size_t		want;
	lg_gpu_status st;

	if (bytes <= sc->bytes)
		return true;
	want = bytes + bytes / 2;
	st = lg_gpu_malloc(&p, want);
	if (st != LG_GPU_OK)
	{
		note(g, st, what);
		return false;
	}
	free_later(g, sc->p);
	sc->p = p;
	sc->bytes = want;
	return true;
}

/* Device address of a weight pointer (host, inside a mapped region); other pointers pass. */
static const void *
dev_ptr(gpu_ctx *g, const void *p)
{
	const char *c = (const char *) p;

	for (int i = 0; i < g->n_regions; i++)
	{
		const gpu_region *r = &g->regions[i];

		if (c >= r->host && c < r->host + r->bytes)
			return r->dev + (c - r->host);
	}
	return p;
}

/* Room for bytes (16-aligned) in the staging area; NULL with the failure noted. */
static bool
stage_take(gpu_ctx *g, size_t bytes, char **host, char **dev)
{
	gpu_stage  *s = g->n_stage > 0 ? &g->stage[g->n_stage - 1] : NULL;
	size_t		off = (g->stage_used + 15) & ~(size_t) 15;

	if (s == NULL || off + bytes > s->cap)
	{
		/* a new chunk: the ones in use stay valid until the step ends */
		gpu_stage	n;
		size_t		cap = bytes > GPU_STAGE_MIN ? bytes : GPU_STAGE_MIN;
		lg_gpu_status st;

		if (s != NULL && s->cap * 2 > cap)
			cap = s->cap * 2;
		if (g->n_stage == GPU_MAX_STAGE_CHUNKS)
		{
			note(g, LG_GPU_ERR_NOMEM, "staging area");
			return false;
		}
		if ((st = lg_gpu_host_alloc((void **) &n.host, cap)) != LG_GPU_OK)
		{
			note(g, st, "page-locked staging memory");
			return false;
		}
		if ((st = lg_gpu_malloc((void **) &n.dev, cap)) != LG_GPU_OK)
		{
			lg_gpu_host_free(n.host);
			note(g, st, "device staging memory");
			return false;
		}
		n.cap = cap;
		g->stage[g->n_stage++] = n;
		s = &g->stage[g->n_stage - 1];
		off = 0;
	}
	*host = s->host + off;
	*dev = s->dev + off;
	g->stage_used = off + bytes;
	return true;
}

/* Copy a host array to the device (once per step per array); NULL on failure. */
static void *
upload(gpu_ctx *g, const void *host, size_t bytes, bool cache)
{
	char	   *h,
			   *d;
	lg_gpu_status st;

	if (cache)
		for (int i = 0; i < g->n_uploads; i++)
			if (g->uploads[i].host == host && g->uploads[i].bytes >= bytes)
				return g->uploads[i].dev;
	if (!stage_take(g, bytes, &h, &d))
		return NULL;
	memcpy(h, host, bytes);
	if ((st = lg_gpu_copy_h2d(d, h, bytes, g->stream)) != LG_GPU_OK)
	{
		note(g, st, "metadata upload");
		return NULL;
	}
	if (cache && g->n_uploads < GPU_MAX_UPLOADS)
		g->uploads[g->n_uploads++] = (gpu_upload) {.host = host, .bytes = bytes, .dev = d};
	return d;
}

/* After a step: one staging chunk as big as the step needed, the cache emptied. */
static void
stage_reset(gpu_ctx *g)
{
	if (g->n_stage > 1)
	{
		size_t		total = 0;

		for (int i = 0; i < g->n_stage; i++)
		{
			total += g->stage[i].cap;
			lg_gpu_host_free(g->stage[i].host);
			lg_gpu_free(g->stage[i].dev);
		}
		g->n_stage = 0;
		if (lg_gpu_host_alloc((void **) &g->stage[0].host, total) == LG_GPU_OK)
		{
			if (lg_gpu_malloc((void **) &g->stage[0].dev, total) == LG_GPU_OK)
			{
				g->stage[0].cap = total;
				g->n_stage = 1;
			}
			else
				lg_gpu_host_free(g->stage[0].host);
		}
	}
	g->stage_used = 0;
	g->n_uploads = 0;
	g->attn_key = NULL;
}

/* Whether the op should run: in a step with an error already, nothing does. */
static bool
live(gpu_ctx *g)
{
	return g->sticky == LG_OK;
}

/*
 * An op called outside step_begin/step_end (tests, the kernel checker) is
 * a step of its own: op_enter opens one, op_leave waits for it and returns
 * its status.
 */
static bool
op_enter(gpu_ctx *g)
{
	if (g->in_step)
		return false;
	lg_gpu_set_device(g->device);
	g->in_step = true;
	g->sticky = LG_OK;
	return true;
}

static lg_status
op_leave(gpu_ctx *g, bool own, lg_status st)
{
	if (!own)
		return st;
	if (lg_gpu_stream_sync(g->stream) != LG_GPU_OK)
		note(g, LG_GPU_ERR_DEVICE, "operation");
	g->in_step = false;
	for (int i = 0; i < g->n_deferred; i++)
		lg_gpu_free(g->deferred[i]);
	g->n_deferred = 0;
	stage_reset(g);
	if (st == LG_OK)
		st = g->sticky;
	g->sticky = LG_OK;
	return st;
}

/* ---- the table ---------------------------------------------------------- */

static lg_status
gpu_matmul(lg_backend *be, float *y, const lg_tensor *w, const float *x, int64_t n)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);
	int64_t		k = w->ne[0],
				m = w->ne[1];
	size_t		need;
	lg_gpu_status st;

	if (!live(g))
		return op_leave(g, own, g->sticky);
	need = lg_gpu_matmul_scratch_bytes(w->type, k, m, n);
	if (need > 0 && !scratch_ensure(g, &g->mm_scratch, need, "matmul scratch"))
		return op_leave(g, own, g->sticky);
	st = lg_gpu_matmul(g->stream, g->blas, y, dev_ptr(g, w->data), w->type, k, m, x, n,
					   g->mm_scratch.p, g->mm_scratch.bytes);
	note(g, st, w->name ? w->name : "matmul");
	return op_leave(g, own, status_of(st));
}

static lg_status
gpu_get_rows(lg_backend *be, float *y, const lg_tensor *emb, const int32_t *ids, int64_t n)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);
	const int32_t *ids_dev;
	lg_gpu_status st;

	if (!live(g))
		return op_leave(g, own, g->sticky);
	if ((ids_dev = upload(g, ids, (size_t) n * sizeof(int32_t), true)) == NULL)
		return op_leave(g, own, g->sticky);
	st = lg_gpu_get_rows(g->stream, y, dev_ptr(g, emb->data), emb->type, emb->ne[0], emb->ne[1], ids_dev, n);
	note(g, st, "embedding lookup");
	return op_leave(g, own, status_of(st));
}

static void
gpu_rmsnorm_run(lg_backend *be, float *y, const float *x, const float *w, int64_t n, int64_t d, float eps)
{
	gpu_ctx    *g = ctx_of(be);

	if (live(g))
		note(g, lg_gpu_rmsnorm(g->stream, y, x, dev_ptr(g, w), n, d, eps), "rmsnorm");
}

/* gpu_rmsnorm_run as a step of its own when called outside one */
static void
gpu_rmsnorm(lg_backend *be, float *y, const float *x, const float *w, int64_t n, int64_t d, float eps)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_rmsnorm_run(be, y, x, w, n, d, eps);
	op_leave(g, own, LG_OK);
}

static void
gpu_rope_run(lg_backend *be, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
		 const int32_t *pos, const lg_rope_params *rp)
{
	gpu_ctx    *g = ctx_of(be);
	const int32_t *pos_dev;
	lg_gpu_rope_params p = {
		.style = (int) rp->style, .n_rot = rp->n_rot, .freq_base = rp->freq_base,
		.freq_scale = rp->freq_scale,
		.freq_factors = rp->freq_factors ? dev_ptr(g, rp->freq_factors) : NULL,
		.ext_factor = rp->ext_factor, .attn_factor = rp->attn_factor,
		.beta_fast = rp->beta_fast, .beta_slow = rp->beta_slow, .n_ctx_orig = rp->n_ctx_orig,
	};

	if (!live(g))
		return;
	if ((pos_dev = upload(g, pos, (size_t) n * sizeof(int32_t), true)) == NULL)
		return;
	note(g, lg_gpu_rope(g->stream, x, n, n_heads, head_dim, pos_dev, &p), "rope");
}

/* gpu_rope_run as a step of its own when called outside one */
static void
gpu_rope(lg_backend *be, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
		 const int32_t *pos, const lg_rope_params *rp)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_rope_run(be, x, n, n_heads, head_dim, pos, rp);
	op_leave(g, own, LG_OK);
}

static void
gpu_kv_store_slots_run(lg_backend *be, void *cache, lg_kv_type kv_type,
				   const int32_t *slots, const float *x, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	const int32_t *slots_dev;

	if (!live(g))
		return;
	if ((slots_dev = upload(g, slots, (size_t) n * sizeof(int32_t), true)) == NULL)
		return;
	note(g, lg_gpu_kv_store(g->stream, cache, kv_type == LG_KV_F32 ? LG_GPU_KV_F32 : LG_GPU_KV_F16,
							slots_dev, x, n, d), "KV store");
}

/* gpu_kv_store_slots_run as a step of its own when called outside one */
static void
gpu_kv_store_slots(lg_backend *be, void *cache, lg_kv_type kv_type,
				   const int32_t *slots, const float *x, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_kv_store_slots_run(be, cache, kv_type, slots, x, n, d);
	op_leave(g, own, LG_OK);
}

/* The block-table form: slots computed here, then as above. */
static void
gpu_kv_store_run(lg_backend *be, void *cache, lg_kv_type kv_type,
			 const int32_t *block_table, int32_t block_size, int64_t pos0,
			 const float *x, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	const int32_t *slots_dev;

	if (!live(g))
		return;
	if (g->slots_host_cap < n)
	{
		int32_t    *p = realloc(g->slots_host, sizeof(int32_t) * (size_t) n);

		if (p == NULL)
		{
			note(g, LG_GPU_ERR_NOMEM, "KV store slots");
			return;
		}
		g->slots_host = p;
		g->slots_host_cap = n;
	}
	for (int64_t i = 0; i < n; i++)
	{
		int64_t		p = pos0 + i;

		g->slots_host[i] = block_table[p / block_size] * block_size + (int32_t) (p % block_size);
	}
	/* not cached: slots_host is rewritten by the next call */
	if ((slots_dev = upload(g, g->slots_host, (size_t) n * sizeof(int32_t), false)) == NULL)
		return;
	note(g, lg_gpu_kv_store(g->stream, cache, kv_type == LG_KV_F32 ? LG_GPU_KV_F32 : LG_GPU_KV_F16,
							slots_dev, x, n, d), "KV store");
}

/* gpu_kv_store_run as a step of its own when called outside one */
static void
gpu_kv_store(lg_backend *be, void *cache, lg_kv_type kv_type,
			 const int32_t *block_table, int32_t block_size, int64_t pos0,
			 const float *x, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_kv_store_run(be, cache, kv_type, block_table, block_size, pos0, x, n, d);
	op_leave(g, own, LG_OK);
}

/*
 * Pack the sequences of an attention call (rows relative to a[0], block
 * tables concatenated) and upload them; every layer of a step passes the
 * same sequences, so this runs once per step.  Decode sequences (one
 * query) come first: they go to the split-K kernel in a call of their own,
 * the others to the prompt kernel.  The decode call's length bound is
 * rounded up to a power of two so that a captured graph keeps its shape
 * (the split plan) while the sequences grow.
 */
static bool
attn_prepare(gpu_ctx *g, const lg_attn_args *a, int32_t n_seqs)
{
	const int64_t row = (int64_t) a[0].n_heads * a[0].head_dim;
	int64_t		n_bt = 0;
	int64_t		n_tok = 0;
	int32_t		k = 0;

	for (int32_t s = 0; s < n_seqs; s++)
		n_tok += a[s].n_tok;
	if (g->attn_key == a && g->attn_key_n == n_seqs && g->attn_key_bt == a[0].block_table &&
		g->attn_key_tok == n_tok)
		return true;
	for (int32_t s = 0; s < n_seqs; s++)
		n_bt += (a[s].kv_len + a[s].block_size - 1) / a[s].block_size;
	if (g->attn_host_cap < n_seqs)
	{
		lg_gpu_attn_seq *p = realloc(g->attn_host, sizeof(*p) * (size_t) n_seqs);

		if (p == NULL)
			return note(g, LG_GPU_ERR_NOMEM, "attention metadata"), false;
		g->attn_host = p;
		g->attn_host_cap = n_seqs;
	}
	if (g->bt_host_cap < n_bt + 1)
	{
		int32_t    *p = realloc(g->bt_host, sizeof(int32_t) * (size_t) (n_bt + 1));

		if (p == NULL)
			return note(g, LG_GPU_ERR_NOMEM, "attention block tables"), false;
		g->bt_host = p;
		g->bt_host_cap = n_bt + 1;
	}
	g->attn_n_decode = 0;
	g->attn_decode_kv_len = 0;
	g->attn_prompt_n_tok = 0;
	g->attn_prompt_kv_len = 0;
	for (int32_t s = 0; s < n_seqs; s++)
		g->attn_n_decode += a[s].n_tok == 1;
	n_bt = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int32_t s = 0; s < n_seqs; s++)
		{
			int32_t		nb = (int32_t) ((a[s].kv_len + a[s].block_size - 1) / a[s].block_size);

			if ((a[s].n_tok == 1) != (pass == 0))
				continue;
			g->attn_host[k++] = (lg_gpu_attn_seq) {
				.q_row0 = (int32_t) ((a[s].q - a[0].q) / row),
				.n_tok = (int32_t) a[s].n_tok,
				.pos0 = (int32_t) a[s].pos0,
				.kv_len = (int32_t) a[s].kv_len,
				.bt_off = (int32_t) n_bt,
			};
			memcpy(g->bt_host + n_bt, a[s].block_table, sizeof(int32_t) * (size_t) nb);
			n_bt += nb;
			if (pass == 0 && a[s].kv_len > g->attn_decode_kv_len)
				g->attn_decode_kv_len = (int32_t) a[s].kv_len;
			if (pass == 1 && a[s].n_tok > g->attn_prompt_n_tok)
				g->attn_prompt_n_tok = (int32_t) a[s].n_tok;
			if (pass == 1 && a[s].kv_len > g->attn_prompt_kv_len)
				g->attn_prompt_kv_len = (int32_t) a[s].kv_len;
		}
	if (g->attn_decode_kv_len > 0)
	{
		int32_t		p2 = 256;

		while (p2 < g->attn_decode_kv_len && p2 < (1 << 30))
			p2 <<= 1;
		g->attn_decode_kv_len = p2;
	}
	g->attn_seqs_dev = upload(g, g->attn_host, sizeof(lg_gpu_attn_seq) * (size_t) n_seqs, false);
	g->attn_bt_dev = g->attn_seqs_dev ? upload(g, g->bt_host, sizeof(int32_t) * (size_t) (n_bt + 1), false) : NULL;
	if (g->attn_bt_dev == NULL)
		return false;
	g->attn_key = a;
	g->attn_key_n = n_seqs;
	g->attn_key_bt = a[0].block_table;
	g->attn_key_tok = n_tok;
	return true;
}

/* One kernel call over n of the packed sequences, from first, with these bounds. */
static void
attn_call(gpu_ctx *g, const lg_attn_args *a, int32_t first, int32_t n, int32_t max_n_tok, int32_t max_kv_len)
{
	lg_gpu_attn_args ga;
	size_t		need;

	if (n <= 0)
		return;
	need = lg_gpu_attention_scratch_floats(n, max_n_tok, max_kv_len, a[0].n_heads, a[0].head_dim);
	if (need > 0 && !scratch_ensure(g, &g->attn_scratch, need * sizeof(float), "attention scratch"))
		return;
	ga = (lg_gpu_attn_args) {
		.out = a[0].out, .q = a[0].q, .k_pool = a[0].k_cache, .v_pool = a[0].v_cache,
		.kv_type = a[0].kv_type == LG_KV_F32 ? LG_GPU_KV_F32 : LG_GPU_KV_F16,
		.seqs = g->attn_seqs_dev + first, .n_seqs = n, .block_tables = g->attn_bt_dev,
		.block_size = a[0].block_size, .n_heads = a[0].n_heads, .n_kv_heads = a[0].n_kv_heads,
		.head_dim = a[0].head_dim, .scale = a[0].scale,
		.max_n_tok = max_n_tok, .max_kv_len = max_kv_len,
		.scratch = need > 0 ? (float *) g->attn_scratch.p : NULL,
		.bidirectional = a[0].bidirectional,
	};
	note(g, lg_gpu_attention(g->stream, &ga), "attention");
}

static void
gpu_attention_run(lg_backend *be, const lg_attn_args *a, int32_t n_seqs)
{
	gpu_ctx    *g = ctx_of(be);

	if (!live(g) || n_seqs <= 0)
		return;
	/* one call covers every sequence only if q and out have the same row layout */
	for (int32_t s = 1; s < n_seqs; s++)
		if (a[s].out - a[0].out != a[s].q - a[0].q || a[s].q < a[0].q)
		{
			for (int32_t t = 0; t < n_seqs; t++)
				gpu_attention_run(be, &a[t], 1);
			return;
		}
	if (!attn_prepare(g, a, n_seqs))
		return;
	/* the two calls use the scratch one after the other on the stream */
	attn_call(g, a, 0, g->attn_n_decode, 1, g->attn_decode_kv_len);
	attn_call(g, a, g->attn_n_decode, n_seqs - g->attn_n_decode, g->attn_prompt_n_tok, g->attn_prompt_kv_len);
}

/* gpu_attention_run as a step of its own when called outside one */
static void
gpu_attention(lg_backend *be, const lg_attn_args *a, int32_t n_seqs)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_attention_run(be, a, n_seqs);
	op_leave(g, own, LG_OK);
}

static void
gpu_swiglu_run(lg_backend *be, float *gt, const float *u, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);

	if (live(g))
		note(g, lg_gpu_swiglu(g->stream, gt, u, n * d), "swiglu");
}

/* gpu_swiglu_run as a step of its own when called outside one */
static void
gpu_swiglu(lg_backend *be, float *gt, const float *u, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_swiglu_run(be, gt, u, n, d);
	op_leave(g, own, LG_OK);
}

static void
gpu_add_run(lg_backend *be, float *y, const float *x, int64_t n)
{
	gpu_ctx    *g = ctx_of(be);

	if (live(g))
		note(g, lg_gpu_add(g->stream, y, x, n), "add");
}

/* gpu_add_run as a step of its own when called outside one */
static void
gpu_add(lg_backend *be, float *y, const float *x, int64_t n)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_add_run(be, y, x, n);
	op_leave(g, own, LG_OK);
}

static void
gpu_add_bias_run(lg_backend *be, float *y, const float *b, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);

	if (live(g))
		note(g, lg_gpu_add_bias(g->stream, y, dev_ptr(g, b), n, d), "bias");
}

/* gpu_add_bias_run as a step of its own when called outside one */
static void
gpu_add_bias(lg_backend *be, float *y, const float *b, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_add_bias_run(be, y, b, n, d);
	op_leave(g, own, LG_OK);
}

static void
gpu_layernorm_run(lg_backend *be, float *y, const float *x, const float *w, const float *b,
				  int64_t n, int64_t d, float eps)
{
	gpu_ctx    *g = ctx_of(be);

	if (live(g))
		note(g, lg_gpu_layernorm(g->stream, y, x, w ? dev_ptr(g, w) : NULL, b ? dev_ptr(g, b) : NULL,
								 n, d, eps), "layernorm");
}

/* gpu_layernorm_run as a step of its own when called outside one */
static void
gpu_layernorm(lg_backend *be, float *y, const float *x, const float *w, const float *b,
			  int64_t n, int64_t d, float eps)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_layernorm_run(be, y, x, w, b, n, d, eps);
	op_leave(g, own, LG_OK);
}

static void
gpu_gelu_run(lg_backend *be, float *x, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);

	if (live(g))
		note(g, lg_gpu_gelu(g->stream, x, n * d), "gelu");
}

/* gpu_gelu_run as a step of its own when called outside one */
static void
gpu_gelu(lg_backend *be, float *x, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_gelu_run(be, x, n, d);
	op_leave(g, own, LG_OK);
}

/* The row gather is get_rows over an F32 "table" (x) that lives on the device. */
static void
gpu_gather_rows_run(lg_backend *be, float *y, const float *x, const int32_t *rows, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	const int32_t *rows_dev;
	int64_t		n_src = 1;

	if (!live(g) || n <= 0)
		return;
	/* the kernel writes zeros for a row past the table rather than read outside x */
	for (int64_t i = 0; i < n; i++)
		if (rows[i] >= n_src)
			n_src = (int64_t) rows[i] + 1;
	if ((rows_dev = upload(g, rows, (size_t) n * sizeof(int32_t), true)) == NULL)
		return;
	note(g, lg_gpu_get_rows(g->stream, y, x, LG_TYPE_F32, d, n_src, rows_dev, n), "row gather");
}

/* gpu_gather_rows_run as a step of its own when called outside one */
static void
gpu_gather_rows(lg_backend *be, float *y, const float *x, const int32_t *rows, int64_t n, int64_t d)
{
	gpu_ctx    *g = ctx_of(be);
	bool		own = op_enter(g);

	gpu_gather_rows_run(be, y, x, rows, n, d);
	op_leave(g, own, LG_OK);
}

/* ---- memory ------------------------------------------------------------- */

static void *
gpu_buf_alloc(lg_backend *be, size_t bytes, lg_error *err)
{
	gpu_ctx    *g = ctx_of(be);
	void	   *p = NULL;
	lg_gpu_status st;

	lg_gpu_set_device(g->device);
	if ((st = lg_gpu_malloc(&p, bytes ? bytes : 16)) != LG_GPU_OK)
	{
		fail(g, err, st, "allocating a buffer");
		return NULL;
	}
	if ((st = lg_gpu_memset_async(p, 0, bytes, g->stream)) != LG_GPU_OK ||
		(st = lg_gpu_stream_sync(g->stream)) != LG_GPU_OK)
	{
		lg_gpu_free(p);
		fail(g, err, st, "clearing a buffer");
		return NULL;
	}
	return p;
}

static void
gpu_buf_free(lg_backend *be, void *p)
{
	free_later(ctx_of(be), p);
}

static lg_status
gpu_buf_read(lg_backend *be, void *host_dst, const void *src, size_t bytes, lg_error *err)
{
	gpu_ctx    *g = ctx_of(be);
	lg_gpu_status st;

	if ((st = lg_gpu_copy_d2h(host_dst, src, bytes, g->stream)) != LG_GPU_OK ||
		(st = lg_gpu_stream_sync(g->stream)) != LG_GPU_OK)
		return fail(g, err, st, "reading results");
	return LG_OK;
}

static lg_status
gpu_buf_write(lg_backend *be, void *dst, const void *host_src, size_t bytes, lg_error *err)
{
	gpu_ctx    *g = ctx_of(be);
	lg_gpu_status st;

	if ((st = lg_gpu_copy_h2d(dst, host_src, bytes, g->stream)) != LG_GPU_OK ||
		(st = lg_gpu_stream_sync(g->stream)) != LG_GPU_OK)
		return fail(g, err, st, "writing a buffer");
	return LG_OK;
}

static lg_status
gpu_map_weights(lg_backend *be, const void *base, size_t bytes, lg_error *err)
{
	gpu_ctx    *g = ctx_of(be);
	gpu_region *r;
	lg_gpu_status st;

	for (int i = 0; i < g->n_regions; i++)
		if (g->regions[i].host == base)
		{
			g->regions[i].refs++;
			return LG_OK;
		}
	if (g->n_regions == GPU_MAX_REGIONS)
		return lg_error_set(err, LG_ERR_RANGE, "%s: more than %d models on one backend", g->name,
							GPU_MAX_REGIONS);
	lg_gpu_set_device(g->device);
	r = &g->regions[g->n_regions];
	if ((st = lg_gpu_malloc((void **) &r->dev, bytes ? bytes : 16)) != LG_GPU_OK)
		return lg_error_set(err, status_of(st), "the model's weights (%.1f MiB) do not fit on %s (%s): %s",
							bytes / (1024.0 * 1024.0), g->name, g->info.name, lg_gpu_last_error());
	if ((st = lg_gpu_copy_h2d(r->dev, base, bytes, g->stream)) != LG_GPU_OK ||
		(st = lg_gpu_stream_sync(g->stream)) != LG_GPU_OK)
	{
		lg_gpu_free(r->dev);
		return fail(g, err, st, "uploading the model's weights");
	}
	r->host = base;
	r->bytes = bytes;
	r->refs = 1;
	g->n_regions++;
	return LG_OK;
}

static void
gpu_unmap_weights(lg_backend *be, const void *base)
{
	gpu_ctx    *g = ctx_of(be);

	for (int i = 0; i < g->n_regions; i++)
		if (g->regions[i].host == base && --g->regions[i].refs == 0)
		{
			lg_gpu_stream_sync(g->stream);
			lg_gpu_free(g->regions[i].dev);
			g->regions[i] = g->regions[--g->n_regions];
			return;
		}
}

/* ---- steps -------------------------------------------------------------- */

/* The graph slot for decode steps of n rows (the least recently used one is reused). */
static gpu_graph_slot *
graph_slot(gpu_ctx *g, int32_t n)
{
	gpu_graph_slot *lru = &g->graphs[0];

	for (int i = 0; i < GPU_MAX_GRAPHS; i++)
	{
		if (g->graphs[i].graph != NULL && g->graphs[i].n_rows == n)
			return &g->graphs[i];
		if (g->graphs[i].last_used < lru->last_used)
			lru = &g->graphs[i];
	}
	if (lru->graph != NULL)
	{
		lg_gpu_graph_destroy(lru->graph);
		lru->graph = NULL;
	}
	lru->n_rows = n;
	return lru;
}

static lg_status
gpu_step_begin(lg_backend *be, const lg_step_info *info, lg_error *err)
{
	gpu_ctx    *g = ctx_of(be);
	lg_gpu_status st;

	if ((st = lg_gpu_set_device(g->device)) != LG_GPU_OK)
		return fail(g, err, st, "selecting the device");
	g->in_step = true;
	g->sticky = LG_OK;
	g->sticky_msg[0] = '\0';
	g->step_rows = info->n_rows;
	g->capturing = false;
	if (g->use_graphs && info->decode)
		g->capturing = lg_gpu_graph_begin(g->stream) == LG_GPU_OK;
	return LG_OK;
}

static lg_status
gpu_step_end(lg_backend *be, bool discard, lg_error *err)
{
	gpu_ctx    *g = ctx_of(be);
	lg_gpu_status st = LG_GPU_OK;
	lg_status	ret;

	if (g->capturing)
	{
		gpu_graph_slot *slot = graph_slot(g, g->step_rows);
		bool		updated = false;

		/*
		 * A discarded step's capture is launched too: it only rewrites KV
		 * rows of positions that were never committed.
		 */
		st = lg_gpu_graph_end_launch(&slot->graph, g->stream, &updated);
		slot->last_used = ++g->n_steps;
		g->n_graph_launches++;
		g->n_graph_updates += updated;
		if (st != LG_GPU_OK)
		{
			/* a graph that cannot be captured or updated: run eagerly from now on */
			if (slot->graph)
				lg_gpu_graph_destroy(slot->graph);
			slot->graph = NULL;
			g->use_graphs = false;
			note(g, st, "CUDA graph launch");
		}
		g->capturing = false;
	}
	if (lg_gpu_stream_sync(g->stream) != LG_GPU_OK)
		note(g, LG_GPU_ERR_DEVICE, "step");
	for (int i = 0; i < g->n_deferred; i++)
		lg_gpu_free(g->deferred[i]);
	g->n_deferred = 0;
	g->in_step = false;
	stage_reset(g);
	/* a failure is reported even when discarding: it is why the step stopped */
	ret = g->sticky;
	if (ret != LG_OK)
		lg_error_set(err, ret, "%s", g->sticky_msg);
	g->sticky = LG_OK;
	return ret;
}

static lg_status
gpu_sample(lg_backend *be, int32_t *ids, const float *logits, int64_t n, int64_t n_vocab,
		   const lg_device_sample *p, lg_error *err)
{
	gpu_ctx    *g = ctx_of(be);
	size_t		need = lg_gpu_sample_scratch_bytes(n, n_vocab);
	size_t		io = ((size_t) n * sizeof(int32_t) + 15) / 16 * 16 + (size_t) n * sizeof(lg_gpu_sample_params);
	lg_gpu_sample_params *hp;
	int32_t    *ids_dev;
	lg_gpu_sample_params *p_dev;
	lg_gpu_status st;

	g->sticky = LG_OK;
	if ((need > 0 && !scratch_ensure(g, &g->sample_scratch, need, "sampling scratch")) ||
		!scratch_ensure(g, &g->sample_io, io, "sampling buffers"))
		return lg_error_set(err, g->sticky, "%s", g->sticky_msg);
	hp = malloc(sizeof(*hp) * (size_t) n);
	if (hp == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	for (int64_t i = 0; i < n; i++)
		hp[i] = (lg_gpu_sample_params) {.temperature = p[i].temperature, .top_k = p[i].top_k,
		.top_p = p[i].top_p, .min_p = p[i].min_p, .u = p[i].u};
	ids_dev = (int32_t *) g->sample_io.p;
	p_dev = (lg_gpu_sample_params *) ((char *) g->sample_io.p + ((size_t) n * sizeof(int32_t) + 15) / 16 * 16);
	st = lg_gpu_copy_h2d(p_dev, hp, sizeof(*hp) * (size_t) n, g->stream);
	if (st == LG_GPU_OK)
		st = lg_gpu_sample(g->stream, ids_dev, logits, n, n_vocab, p_dev, g->sample_scratch.p,
						   g->sample_scratch.bytes);
	if (st == LG_GPU_OK)
		st = lg_gpu_copy_d2h(ids, ids_dev, sizeof(int32_t) * (size_t) n, g->stream);
	if (st == LG_GPU_OK)
		st = lg_gpu_stream_sync(g->stream);
	free(hp);
	if (st != LG_GPU_OK)
		return fail(g, err, st, "sampling");
	return LG_OK;
}

static void
gpu_free(lg_backend *be)
{
	gpu_ctx    *g = ctx_of(be);

	if (g != NULL)
	{
		lg_gpu_set_device(g->device);
		if (g->stream)
			lg_gpu_stream_sync(g->stream);
		for (int i = 0; i < GPU_MAX_GRAPHS; i++)
			if (g->graphs[i].graph)
				lg_gpu_graph_destroy(g->graphs[i].graph);
		for (int i = 0; i < g->n_regions; i++)
			lg_gpu_free(g->regions[i].dev);
		for (int i = 0; i < g->n_stage; i++)
		{
			lg_gpu_host_free(g->stage[i].host);
			lg_gpu_free(g->stage[i].dev);
		}
		for (int i = 0; i < g->n_deferred; i++)
			lg_gpu_free(g->deferred[i]);
		lg_gpu_free(g->mm_scratch.p);
		lg_gpu_free(g->attn_scratch.p);
		lg_gpu_free(g->sample_scratch.p);
		lg_gpu_free(g->sample_io.p);
		if (g->blas)
			lg_gpu_blas_destroy(g->blas);
		if (g->stream)
			lg_gpu_stream_destroy(g->stream);
		free(g->attn_host);
		free(g->bt_host);
		free(g->slots_host);
		free(g);
	}
	free(be);
}

int
lg_backend_gpu_count(void)
{
	int			n = 0;

	if (lg_gpu_device_count(&n) != LG_GPU_OK)
		return 0;
	return n;
}

lg_backend *
lg_backend_gpu_new(int device, lg_error *err)
{
	lg_backend *be = calloc(1, sizeof(lg_backend));
	gpu_ctx    *g = calloc(1, sizeof(gpu_ctx));
	const char *graphs = getenv("LLAMAGPU_CUDA_GRAPHS");
	lg_gpu_status st;

	if (be == NULL || g == NULL)
	{
		free(be);
		free(g);
		lg_error_set(err, LG_ERR_NOMEM, "out of memory creating the GPU backend");
		return NULL;
	}
	be->ctx = g;
	be->version = LG_BACKEND_VERSION;
	be->free = gpu_free;
	g->device = device;
	snprintf(g->name, sizeof(g->name), "%s:%d", lg_gpu_platform(), device);
	be->name = g->name;
	if ((st = lg_gpu_set_device(device)) != LG_GPU_OK ||
		(st = lg_gpu_device_info_get(device, &g->info)) != LG_GPU_OK ||
		(st = lg_gpu_stream_create(&g->stream)) != LG_GPU_OK ||
		(st = lg_gpu_blas_create(&g->blas, g->stream)) != LG_GPU_OK)
	{
		fail(g, err, st, "opening the device");
		gpu_free(be);
		return NULL;
	}
	g->use_graphs = !(graphs != NULL && strcmp(graphs, "0") == 0);

	be->matmul = gpu_matmul;
	be->get_rows = gpu_get_rows;
	be->rmsnorm = gpu_rmsnorm;
	be->rope = gpu_rope;
	be->kv_store = gpu_kv_store;
	be->kv_store_slots = gpu_kv_store_slots;
	be->attention = gpu_attention;
	be->attn_scratch_floats = NULL;		/* the backend keeps its own */
	be->swiglu = gpu_swiglu;
	be->add = gpu_add;
	be->add_bias = gpu_add_bias;
	be->layernorm = gpu_layernorm;
	be->gelu = gpu_gelu;
	be->gather_rows = gpu_gather_rows;
	be->buf_alloc = gpu_buf_alloc;
	be->buf_free = gpu_buf_free;
	be->buf_read = gpu_buf_read;
	be->buf_write = gpu_buf_write;
	be->map_weights = gpu_map_weights;
	be->unmap_weights = gpu_unmap_weights;
	be->step_begin = gpu_step_begin;
	be->step_end = gpu_step_end;
	be->sample = gpu_sample;
	return be;
}

#endif							/* LG_HAVE_GPU */
