/*
 * test_backend_device.c — the engine's device-backend plumbing, checked on
 * the CPU with a "shadow device": a backend that keeps its memory apart from
 * the engine's host memory as a GPU does, and computes with the CPU kernels.
 *
 * The shadow device
 *   - copies the weights at map_weights and serves every op from the copy,
 *     failing the step when an op is given a weight pointer outside a mapped
 *     region (the forward pass must use only the model file's tensors);
 *   - allocates its buffers itself and fails the step when an op reads or
 *     writes an activation or KV pool that is not one of them (the context
 *     and the KV cache must put everything on the device);
 *   - refuses ops outside step_begin/step_end, as graph capture would;
 *   - fails the step when a host array an op took (ids, positions, slots,
 *     rows, block tables) has changed before step_end: a GPU uploads each
 *     once per step, at its first use;
 *   - samples greedily (argmax, lowest id on a tie) in lg_backend.sample.
 * Logits must come out bit-identical to the plain CPU backend's, and a
 * scheduler on it must draw the same tokens, on the device when it can.
 *
 * Encoders (bert, nomic-bert) give bit-identical embeddings on it, for a
 * padded batch and every pooling.  Also: choosing a backend by name, the
 * slot-based KV store, and the out-of-memory messages of the context and
 * the KV cache.
 */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "backend.h"
#include "embed.h"
#include "grammar.h"
#include "kv_cache.h"
#include "model.h"
#include "sampler.h"
#include "scheduler.h"

#define MAX_BUFS 256
#define MAX_HOST_ARRAYS 64

typedef struct shadow
{
	lg_backend	be;
	lg_backend *cpu;
	struct
	{
		const char *host;
		size_t		bytes;
		char	   *copy;
		int			refs;
	}			regions[4];
	int			n_regions;
	struct
	{
		char	   *p;
		size_t		bytes;
	}			bufs[MAX_BUFS];
	int			n_bufs;
	struct
	{
		const void *p;
		size_t		bytes;
		void	   *copy;			/* its contents when an op first took it this step */
		const char *what;
	}			arrays[MAX_HOST_ARRAYS];
	int			n_arrays;
	int			fail_alloc_after;	/* >= 0: that many more allocations succeed */
	bool		in_step;
	int			n_steps;
	int			n_decode_steps;
	int			n_samples;		/* rows sampled on the "device" */
	bool		fault;			/* the next matmul faults, as a device would */
	bool		faulted;		/* this step had a fault, for step_end */
	char		problem[256];	/* first rule broken, "" if none */
} shadow;

static shadow *
sh_of(lg_backend *be)
{
	return (shadow *) be;
}

/* Remember the first broken rule. */
static void
problem(shadow *s, const char *what, const void *p)
{
	if (s->problem[0] == '\0')
		snprintf(s->problem, sizeof(s->problem), "%s (%p)", what, p);
}

/* The copy of a weight pointer; records a problem if it is not in a mapped region. */
static const void *
weight(shadow *s, const void *p, const char *what)
{
	const char *c = p;

	for (int i = 0; i < s->n_regions; i++)
		if (c >= s->regions[i].host && c < s->regions[i].host + s->regions[i].bytes)
			return s->regions[i].copy + (c - s->regions[i].host);
	problem(s, what, p);
	return p;
}

/* Whether [p, p + bytes) lies in one of our buffers. */
static bool
is_device(const shadow *s, const void *p, size_t bytes)
{
	const char *c = p;

	for (int i = 0; i < s->n_bufs; i++)
		if (c >= s->bufs[i].p && c + bytes <= s->bufs[i].p + s->bufs[i].bytes)
			return true;
	return false;
}

/* Records a problem unless [p, p + bytes) lies in one of our buffers. */
static void
device(shadow *s, const void *p, size_t bytes, const char *what)
{
	if (!is_device(s, p, bytes))
		problem(s, what, p);
}

/*
 * An op takes the host array [p, p + bytes): the first time in a step its
 * contents are kept (as a GPU uploads it), later uses and step_end check
 * that they did not change.
 */
static void
host_array(shadow *s, const void *p, size_t bytes, const char *what)
{
	for (int i = 0; i < s->n_arrays; i++)
		if (s->arrays[i].p == p)
		{
			size_t		n = bytes < s->arrays[i].bytes ? bytes : s->arrays[i].bytes;

			if (memcmp(s->arrays[i].copy, p, n) != 0)
				problem(s, s->arrays[i].what, p);
			if (bytes > s->arrays[i].bytes)
			{
				s->arrays[i].copy = realloc(s->arrays[i].copy, bytes);
				assert_non_null(s->arrays[i].copy);
				memcpy(s->arrays[i].copy, p, bytes);
				s->arrays[i].bytes = bytes;
			}
			return;
		}
	assert_true(s->n_arrays < MAX_HOST_ARRAYS);
	s->arrays[s->n_arrays].p = p;
	s->arrays[s->n_arrays].bytes = bytes;
	s->arrays[s->n_arrays].copy = malloc(bytes ? bytes : 1);
	assert_non_null(s->arrays[s->n_arrays].copy);
	memcpy(s->arrays[s->n_arrays].copy, p, bytes);
	s->arrays[s->n_arrays].what = what;
	s->n_arrays++;
}

/* At step_end: every host array as its first use saw it; then forget them. */
static void
host_arrays_end(shadow *s)
{
	for (int i = 0; i < s->n_arrays; i++)
	{
		if (memcmp(s->arrays[i].copy, s->arrays[i].p, s->arrays[i].bytes) != 0)
			problem(s, s->arrays[i].what, s->arrays[i].p);
		free(s->arrays[i].copy);
	}
	s->n_arrays = 0;
}

static void
in_step(shadow *s, const char *op)
{
	if (!s->in_step)
		problem(s, op, NULL);
}

static lg_status
sh_matmul(lg_backend *be, float *y, const lg_tensor *w, const float *x, int64_t n)
{
	shadow	   *s = sh_of(be);
	lg_tensor	t = *w;

	in_step(s, "matmul outside a step");
	if (s->fault)
	{
		/* a GPU backend keeps the fault for step_end and answers with its status */
		s->fault = false;
		s->faulted = true;
		return LG_ERR_INTERNAL;
	}
	t.data = weight(s, w->data, "matmul weight not mapped");
	device(s, x, sizeof(float) * n * w->ne[0], "matmul input on the host");
	device(s, y, sizeof(float) * n * w->ne[1], "matmul output on the host");
	return s->cpu->matmul(s->cpu, y, &t, x, n);
}

static lg_status
sh_get_rows(lg_backend *be, float *y, const lg_tensor *emb, const int32_t *ids, int64_t n)
{
	shadow	   *s = sh_of(be);
	lg_tensor	t = *emb;

	in_step(s, "get_rows outside a step");
	t.data = weight(s, emb->data, "embedding not mapped");
	device(s, y, sizeof(float) * n * emb->ne[0], "embedding output on the host");
	host_array(s, ids, sizeof(int32_t) * n, "get_rows ids changed during the step");
	return s->cpu->get_rows(s->cpu, y, &t, ids, n);
}

static void
sh_rmsnorm(lg_backend *be, float *y, const float *x, const float *w, int64_t n, int64_t d, float eps)
{
	shadow	   *s = sh_of(be);

	in_step(s, "rmsnorm outside a step");
	device(s, x, sizeof(float) * n * d, "rmsnorm input on the host");
	device(s, y, sizeof(float) * n * d, "rmsnorm output on the host");
	s->cpu->rmsnorm(s->cpu, y, x, weight(s, w, "norm weight not mapped"), n, d, eps);
}

static void
sh_rope(lg_backend *be, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
		const int32_t *pos, const lg_rope_params *rp)
{
	shadow	   *s = sh_of(be);
	lg_rope_params p = *rp;

	in_step(s, "rope outside a step");
	device(s, x, sizeof(float) * n * n_heads * head_dim, "rope data on the host");
	if (p.freq_factors)
		p.freq_factors = weight(s, p.freq_factors, "rope factors not mapped");
	host_array(s, pos, sizeof(int32_t) * n, "rope positions changed during the step");
	s->cpu->rope(s->cpu, x, n, n_heads, head_dim, pos, &p);
}

static void
sh_kv_store_slots(lg_backend *be, void *cache, lg_kv_type kv_type,
				  const int32_t *slots, const float *x, int64_t n, int64_t d)
{
	shadow	   *s = sh_of(be);

	in_step(s, "kv store outside a step");
	device(s, cache, 1, "KV pool on the host");
	device(s, x, sizeof(float) * n * d, "KV store input on the host");
	host_array(s, slots, sizeof(int32_t) * n, "KV slots changed during the step");
	s->cpu->kv_store_slots(s->cpu, cache, kv_type, slots, x, n, d);
}

static void
sh_attention(lg_backend *be, const lg_attn_args *a, int32_t n_seqs)
{
	shadow	   *s = sh_of(be);

	in_step(s, "attention outside a step");
	for (int32_t i = 0; i < n_seqs; i++)
	{
		device(s, a[i].k_cache, 1, "K pool on the host");
		device(s, a[i].v_cache, 1, "V pool on the host");
		device(s, a[i].q, sizeof(float) * a[i].n_tok * a[i].n_heads * a[i].head_dim, "queries on the host");
		device(s, a[i].out, sizeof(float) * a[i].n_tok * a[i].n_heads * a[i].head_dim, "attention output on the host");
		host_array(s, a[i].block_table, sizeof(int32_t) * ((a[i].kv_len + a[i].block_size - 1) / a[i].block_size),
				   "a block table changed during the step");
	}
	s->cpu->attention(s->cpu, a, n_seqs);
}

static void
sh_swiglu(lg_backend *be, float *g, const float *u, int64_t n, int64_t d)
{
	shadow	   *s = sh_of(be);

	in_step(s, "swiglu outside a step");
	device(s, g, sizeof(float) * n * d, "swiglu gate on the host");
	device(s, u, sizeof(float) * n * d, "swiglu up on the host");
	s->cpu->swiglu(s->cpu, g, u, n, d);
}

static void
sh_add(lg_backend *be, float *y, const float *x, int64_t n)
{
	shadow	   *s = sh_of(be);

	in_step(s, "add outside a step");
	device(s, y, sizeof(float) * n, "add output on the host");
	device(s, x, sizeof(float) * n, "add input on the host");
	s->cpu->add(s->cpu, y, x, n);
}

static void
sh_add_bias(lg_backend *be, float *y, const float *b, int64_t n, int64_t d)
{
	shadow	   *s = sh_of(be);

	in_step(s, "bias outside a step");
	device(s, y, sizeof(float) * n * d, "bias output on the host");
	/* a weight, or a row computed on the device (bert's token type embedding) */
	if (!is_device(s, b, sizeof(float) * d))
		b = weight(s, b, "bias not mapped");
	s->cpu->add_bias(s->cpu, y, b, n, d);
}

static void
sh_layernorm(lg_backend *be, float *y, const float *x, const float *w, const float *b,
			 int64_t n, int64_t d, float eps)
{
	shadow	   *s = sh_of(be);

	in_step(s, "layernorm outside a step");
	device(s, x, sizeof(float) * n * d, "layernorm input on the host");
	device(s, y, sizeof(float) * n * d, "layernorm output on the host");
	s->cpu->layernorm(s->cpu, y, x, weight(s, w, "layernorm weight not mapped"),
					  weight(s, b, "layernorm bias not mapped"), n, d, eps);
}

static void
sh_gelu(lg_backend *be, float *x, int64_t n, int64_t d)
{
	shadow	   *s = sh_of(be);

	in_step(s, "gelu outside a step");
	device(s, x, sizeof(float) * n * d, "gelu data on the host");
	s->cpu->gelu(s->cpu, x, n, d);
}

static void
sh_gather_rows(lg_backend *be, float *y, const float *x, const int32_t *rows, int64_t n, int64_t d)
{
	shadow	   *s = sh_of(be);
	int32_t		max = 0;

	in_step(s, "gather_rows outside a step");
	for (int64_t i = 0; i < n; i++)
		max = rows[i] > max ? rows[i] : max;
	device(s, x, sizeof(float) * (max + 1) * d, "gathered rows on the host");
	device(s, y, sizeof(float) * n * d, "gather output on the host");
	host_array(s, rows, sizeof(int32_t) * n, "gathered row numbers changed during the step");
	if (y < x + (max + 1) * d && x < y + n * d)
		problem(s, "gather_rows output overlaps its input", y);
	s->cpu->gather_rows(s->cpu, y, x, rows, n, d);
}

static void *
sh_buf_alloc(lg_backend *be, size_t bytes, lg_error *err)
{
	shadow	   *s = sh_of(be);
	char	   *p;

	if (s->fail_alloc_after == 0 || s->n_bufs == MAX_BUFS)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of shadow memory: asked for %zu bytes", bytes);
		return NULL;
	}
	if (s->fail_alloc_after > 0)
		s->fail_alloc_after--;
	p = calloc(bytes ? bytes : 1, 1);
	assert_non_null(p);
	s->bufs[s->n_bufs].p = p;
	s->bufs[s->n_bufs].bytes = bytes;
	s->n_bufs++;
	return p;
}

static void
sh_buf_free(lg_backend *be, void *p)
{
	shadow	   *s = sh_of(be);

	for (int i = 0; i < s->n_bufs; i++)
		if (s->bufs[i].p == p)
		{
			free(p);
			s->bufs[i] = s->bufs[--s->n_bufs];
			return;
		}
	problem(s, "freeing a buffer that is not ours", p);
}

static lg_status
sh_buf_read(lg_backend *be, void *dst, const void *src, size_t bytes, lg_error *err)
{
	shadow	   *s = sh_of(be);

	if (s->in_step)
		problem(s, "reading results inside a step", src);
	device(s, src, bytes, "reading from the host");
	memcpy(dst, src, bytes);
	return LG_OK;
}

static lg_status
sh_buf_write(lg_backend *be, void *dst, const void *src, size_t bytes, lg_error *err)
{
	device(sh_of(be), dst, bytes, "writing to the host");
	memcpy(dst, src, bytes);
	return LG_OK;
}

static lg_status
sh_map_weights(lg_backend *be, const void *base, size_t bytes, lg_error *err)
{
	shadow	   *s = sh_of(be);

	for (int i = 0; i < s->n_regions; i++)
		if (s->regions[i].host == base)
		{
			s->regions[i].refs++;
			return LG_OK;
		}
	assert_true(s->n_regions < 4);
	s->regions[s->n_regions].host = base;
	s->regions[s->n_regions].bytes = bytes;
	s->regions[s->n_regions].copy = malloc(bytes ? bytes : 1);
	assert_non_null(s->regions[s->n_regions].copy);
	memcpy(s->regions[s->n_regions].copy, base, bytes);
	s->regions[s->n_regions].refs = 1;
	s->n_regions++;
	return LG_OK;
}

static void
sh_unmap_weights(lg_backend *be, const void *base)
{
	shadow	   *s = sh_of(be);

	for (int i = 0; i < s->n_regions; i++)
		if (s->regions[i].host == base && --s->regions[i].refs == 0)
		{
			free(s->regions[i].copy);
			s->regions[i] = s->regions[--s->n_regions];
			return;
		}
}

static lg_status
sh_step_begin(lg_backend *be, const lg_step_info *info, lg_error *err)
{
	shadow	   *s = sh_of(be);

	if (s->in_step)
		problem(s, "a step inside a step", NULL);
	s->in_step = true;
	s->n_steps++;
	s->n_decode_steps += info->decode;
	if (info->decode != (info->n_rows == info->n_seqs))
		problem(s, "decode flag wrong", NULL);
	return LG_OK;
}

static lg_status
sh_step_end(lg_backend *be, bool discard, lg_error *err)
{
	shadow	   *s = sh_of(be);

	if (!s->in_step)
		problem(s, "step_end without step_begin", NULL);
	s->in_step = false;
	host_arrays_end(s);
	if (s->faulted)
	{
		s->faulted = false;
		if (!discard)
			problem(s, "a failed step not discarded", NULL);
		return lg_error_set(err, LG_ERR_INTERNAL, "shadow:0: blk.0.attn_q.weight: an illegal memory access");
	}
	return LG_OK;
}

static lg_status
sh_sample(lg_backend *be, int32_t *ids, const float *logits, int64_t n, int64_t n_vocab,
		  const lg_device_sample *p, lg_error *err)
{
	shadow	   *s = sh_of(be);

	device(s, logits, sizeof(float) * n * n_vocab, "sampling logits on the host");
	for (int64_t r = 0; r < n; r++)
	{
		const float *l = logits + r * n_vocab;
		int32_t		best = 0;

		if (p[r].temperature != 0.0f)
			return lg_error_set(err, LG_ERR_UNSUPPORTED, "the shadow device samples greedily only");
		for (int32_t i = 1; i < n_vocab; i++)
			if (l[i] > l[best])
				best = i;
		ids[r] = best;
	}
	s->n_samples += (int) n;
	return LG_OK;
}

static void
sh_free(lg_backend *be)
{
	shadow	   *s = sh_of(be);

	s->cpu->free(s->cpu);
	while (s->n_regions > 0)
		free(s->regions[--s->n_regions].copy);
	free(s);
}

static shadow *
shadow_new(void)
{
	shadow	   *s = calloc(1, sizeof(shadow));
	lg_error	err;

	assert_non_null(s);
	s->cpu = lg_backend_cpu_new(1, 0, &err);
	assert_non_null(s->cpu);
	s->fail_alloc_after = -1;
	s->be.version = LG_BACKEND_VERSION;
	s->be.name = "shadow:0";
	s->be.ctx = s;
	s->be.free = sh_free;
	s->be.matmul = sh_matmul;
	s->be.get_rows = sh_get_rows;
	s->be.rmsnorm = sh_rmsnorm;
	s->be.rope = sh_rope;
	s->be.kv_store = NULL;		/* the forward pass must use the slot form */
	s->be.kv_store_slots = sh_kv_store_slots;
	s->be.attention = sh_attention;
	s->be.swiglu = sh_swiglu;
	s->be.add = sh_add;
	s->be.add_bias = sh_add_bias;
	s->be.layernorm = sh_layernorm;
	s->be.gelu = sh_gelu;
	s->be.gather_rows = sh_gather_rows;
	s->be.buf_alloc = sh_buf_alloc;
	s->be.buf_free = sh_buf_free;
	s->be.buf_read = sh_buf_read;
	s->be.buf_write = sh_buf_write;
	s->be.map_weights = sh_map_weights;
	s->be.unmap_weights = sh_unmap_weights;
	s->be.step_begin = sh_step_begin;
	s->be.step_end = sh_step_end;
	s->be.sample = sh_sample;
	return s;
}

static lg_model *model;

/* stories260K, or skip visibly. */
static bool
need_model(void)
{
	char		buf[4096];
	const char *path;
	lg_error	err;

	if (model != NULL)
		return true;
	path = lg_test_fixture(buf, "fixtures/models/stories260K.gguf");
	if (path == NULL)
		return false;
	model = lg_model_load(path, &err);
	if (model == NULL)
		fail_msg("load %s: %s", path, err.msg);
	return true;
}

/* Token ids of text with BOS. */
static int32_t
tokenize(const char *text, lg_token *ids, int32_t cap)
{
	lg_error	err;
	int32_t		n = lg_tokenize(model->vocab, text, strlen(text), true, false, ids, cap, &err);

	assert_true(n > 0);
	return n;
}

/*
 * Every position's logits of a prompt, in chunks of 5 so several steps run,
 * on the shadow device and on the CPU: bit-identical, and no rule broken.
 */
static void
test_context_logits_match_cpu(void **state)
{
	lg_token	ids[128];
	int32_t		n;
	float	   *a,
			   *b;
	lg_context_params cp;
	lg_context *c_cpu,
			   *c_dev;
	shadow	   *sh;
	lg_error	err;

	if (!need_model())
		skip();
	n = tokenize("Once upon a time, there was a little girl named Lily who loved to play", ids, 128);
	a = malloc(sizeof(float) * n * model->hp.n_vocab);
	b = malloc(sizeof(float) * n * model->hp.n_vocab);
	assert_non_null(a);
	assert_non_null(b);

	lg_context_params_default(&cp);
	cp.n_ctx = 128;
	cp.n_batch = 5;
	cp.n_threads = 1;
	c_cpu = lg_context_new(model, &cp, &err);
	assert_non_null(c_cpu);
	assert_string_equal(lg_context_device(c_cpu), "cpu");

	sh = shadow_new();
	cp.backend = &sh->be;
	c_dev = lg_context_new(model, &cp, &err);
	assert_non_null(c_dev);
	assert_string_equal(lg_context_device(c_dev), "shadow:0");
	assert_int_equal(sh->n_regions, 1);

	assert_int_equal(lg_context_eval(c_cpu, ids, n, a, true, &err), LG_OK);
	assert_int_equal(lg_context_eval(c_dev, ids, n, b, true, &err), LG_OK);
	assert_string_equal(sh->problem, "");
	assert_int_equal(sh->n_steps, (n + 4) / 5);
	assert_memory_equal(a, b, sizeof(float) * n * model->hp.n_vocab);

	/* one more token at a time: decode steps, last logits only */
	for (int i = 0; i < 4; i++)
	{
		lg_token	t = (lg_token) (100 + i);

		assert_int_equal(lg_context_eval(c_cpu, &t, 1, a, false, &err), LG_OK);
		assert_int_equal(lg_context_eval(c_dev, &t, 1, b, false, &err), LG_OK);
		assert_memory_equal(a, b, sizeof(float) * model->hp.n_vocab);
	}
	assert_true(sh->n_decode_steps >= 4);
	assert_string_equal(sh->problem, "");

	/* a device fault midway: the step is discarded and the device's message is the error */
	{
		lg_token	t = 7;

		sh->fault = true;
		assert_int_equal(lg_context_eval(c_dev, &t, 1, b, false, &err), LG_ERR_INTERNAL);
		assert_string_equal(err.msg, "shadow:0: blk.0.attn_q.weight: an illegal memory access");
		assert_false(sh->in_step);
		/* and the context goes on */
		assert_int_equal(lg_context_eval(c_cpu, &t, 1, a, false, &err), LG_OK);
		assert_int_equal(lg_context_eval(c_dev, &t, 1, b, false, &err), LG_OK);
		assert_memory_equal(a, b, sizeof(float) * model->hp.n_vocab);
		assert_string_equal(sh->problem, "");
	}

	lg_context_free(c_dev);
	/* the context gave back every buffer and its weights mapping */
	assert_int_equal(sh->n_bufs, 0);
	assert_int_equal(sh->n_regions, 0);
	sh->be.free(&sh->be);
	lg_context_free(c_cpu);
	free(a);
	free(b);
}

typedef struct gen_out
{
	char		text[2048];
	lg_status	status;
	int			done;
} gen_out;

static bool
on_piece(void *arg, const char *piece, size_t len)
{
	gen_out    *o = arg;
	size_t		have = strlen(o->text);

	if (have + len < sizeof(o->text))
	{
		memcpy(o->text + have, piece, len);
		o->text[have + len] = '\0';
	}
	return true;
}

static void
on_done(void *arg, const lg_sched_result *res)
{
	gen_out    *o = arg;

	o->status = res->status;
	o->done++;
}

/* Greedy generations of prompts (and, with g, one constrained by a grammar) on a scheduler. */
static void
generate(lg_backend *be, const char *const *prompts, int n, gen_out *out, const lg_grammar *g,
		 const lg_grammar_vocab *gv)
{
	lg_sched_params p;
	lg_sched   *s;
	lg_error	err;
	lg_sampler_params sp;

	lg_sched_params_default(&p);
	p.n_ctx = 128;
	p.n_threads = 1;
	p.kv.n_blocks = 64;
	p.kv.block_size = 16;
	p.backend = be;
	s = lg_sched_new(model, &p, &err);
	if (s == NULL)
		fail_msg("lg_sched_new: %s", err.msg);
	lg_sampler_params_default(&sp);
	sp.temperature = 0.0f;
	sp.has_seed = true;
	sp.seed = 1;
	for (int i = 0; i < n; i++)
	{
		lg_sched_request r;
		lg_token	ids[128];

		memset(&r, 0, sizeof(r));
		memset(&out[i], 0, sizeof(out[i]));
		r.n_prompt = tokenize(prompts[i], ids, 128);
		r.prompt = ids;
		r.sampling = &sp;
		r.gen.max_tokens = 24;
		r.on_piece = on_piece;
		r.on_done = on_done;
		r.arg = &out[i];
		if (g != NULL && i == n - 1)
		{
			r.grammar = g;
			r.grammar_vocab = gv;
		}
		assert_int_equal(lg_sched_submit(s, &r, NULL, &err), LG_OK);
	}
	for (int steps = 0;; steps++)
	{
		bool		busy = false;

		assert_true(steps < 10000);
		assert_int_equal(lg_sched_step(s, &busy, &err), LG_OK);
		if (!busy)
			break;
	}
	for (int i = 0; i < n; i++)
	{
		assert_int_equal(out[i].done, 1);
		assert_int_equal(out[i].status, LG_OK);
	}
	lg_sched_free(s);
}

/*
 * A scheduler on the shadow device: the same greedy text as on the CPU,
 * the tokens drawn on the device; a grammar request keeps the whole batch
 * on host sampling (its mask needs the logits) and still matches.
 */
static void
test_scheduler_device_sampling(void **state)
{
	static const char *const prompts[] = {
		"Once upon a time", "The cat sat", "Lily and Ben went to the park", "One day",
	};
	gen_out		cpu_out[4],
				dev_out[4];
	shadow	   *sh;
	lg_error	err;
	lg_grammar *g;
	lg_grammar_vocab *gv;
	const char *gbnf = "root ::= \" the\" [ a-z]*";
	lg_backend *cpu;

	if (!need_model())
		skip();
	cpu = lg_backend_cpu_new(1, 0, &err);
	assert_non_null(cpu);
	generate(cpu, prompts, 4, cpu_out, NULL, NULL);
	sh = shadow_new();
	generate(&sh->be, prompts, 4, dev_out, NULL, NULL);
	assert_string_equal(sh->problem, "");
	for (int i = 0; i < 4; i++)
		assert_string_equal(cpu_out[i].text, dev_out[i].text);
	/* every generated token of every request came from the device */
	assert_true(sh->n_samples >= 4 * 20);
	assert_int_equal(sh->n_bufs, 0);

	g = lg_grammar_parse(gbnf, strlen(gbnf), &err);
	assert_non_null(g);
	gv = lg_grammar_vocab_new(model->vocab, &err);
	assert_non_null(gv);
	sh->n_samples = 0;
	generate(cpu, prompts, 4, cpu_out, g, gv);
	generate(&sh->be, prompts, 4, dev_out, g, gv);
	assert_string_equal(sh->problem, "");
	for (int i = 0; i < 4; i++)
		assert_string_equal(cpu_out[i].text, dev_out[i].text);
	assert_true(strncmp(dev_out[3].text, " the", 4) == 0);
	/* while the grammar request ran, nobody sampled on the device */
	assert_true(sh->n_samples < 4 * 20);
	lg_grammar_vocab_free(gv);
	lg_grammar_free(g);
	sh->be.free(&sh->be);
	cpu->free(cpu);
}

/* A device out of memory: the context's and the KV cache's errors say what did not fit. */
static void
test_device_out_of_memory(void **state)
{
	lg_context_params cp;
	lg_kv_cache_params kp = {.block_size = 16, .n_blocks = 8};
	lg_kv_cache *kv;
	lg_context *c;
	shadow	   *sh;
	lg_error	err;

	if (!need_model())
		skip();
	sh = shadow_new();
	lg_context_params_default(&cp);
	cp.n_ctx = 64;
	cp.backend = &sh->be;
	sh->fail_alloc_after = 3;
	c = lg_context_new(model, &cp, &err);
	assert_null(c);
	assert_int_equal(err.status, LG_ERR_NOMEM);
	assert_non_null(strstr(err.msg, "shadow:0"));
	assert_int_equal(sh->n_bufs, 0);
	assert_int_equal(sh->n_regions, 0);

	sh->fail_alloc_after = 0;
	kp.backend = &sh->be;
	kv = lg_kv_cache_new(model, &kp, &err);
	assert_null(kv);
	assert_int_equal(err.status, LG_ERR_NOMEM);
	assert_non_null(strstr(err.msg, "does not fit on shadow:0"));
	assert_non_null(strstr(err.msg, "out of shadow memory"));
	sh->be.free(&sh->be);
}

/* Backends by name. */
static void
test_backend_open(void **state)
{
	static const char *const cpu_names[] = {"cpu", "CPU", "auto", "", NULL};
	lg_error	err;
	lg_backend *be;

	for (int i = 0; i < 5; i++)
	{
		be = lg_backend_open(cpu_names[i], 1, &err);
		assert_non_null(be);
		if (lg_backend_gpu_platform() == NULL || i < 2)
			assert_string_equal(be->name, "cpu");
		be->free(be);
	}
	assert_null(lg_backend_open("tpu:0", 1, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "unknown device \"tpu:0\""));
	assert_null(lg_backend_open("cuda:x", 1, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	assert_null(lg_backend_open("cuda:", 1, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	assert_null(lg_backend_open("cuda:123456", 1, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	if (lg_backend_gpu_platform() == NULL)
	{
		assert_null(lg_backend_open("cuda:0", 1, &err));
		assert_int_equal(err.status, LG_ERR_UNSUPPORTED);
		assert_non_null(strstr(err.msg, "without GPU support"));
		assert_null(lg_backend_open("gpu", 1, &err));
		assert_int_equal(err.status, LG_ERR_UNSUPPORTED);
	}
	else
	{
		/* a device number past the last one is an error naming how many there are */
		be = lg_backend_open("gpu:999", 1, &err);
		assert_null(be);
	}
}

/* kv_store_slots writes what kv_store writes, for a paged layout. */
static void
test_kv_store_slots(void **state)
{
	enum
	{
		BS = 4, N = 11, D = 6, BLOCKS = 5
	};
	const int32_t table[BLOCKS] = {3, 0, 4, 1, 2};
	int32_t		slots[N];
	float		x[N * D];
	uint64_t	rng = 7;
	lg_error	err;
	lg_backend *be = lg_backend_cpu_new(1, 0, &err);

	assert_non_null(be);
	for (int i = 0; i < N * D; i++)
		x[i] = lg_test_randf(&rng);
	for (int kt = 0; kt < 2; kt++)
	{
		lg_kv_type	t = kt ? LG_KV_F32 : LG_KV_F16;
		size_t		el = kt ? 4 : 2;
		char	   *a = calloc(BLOCKS * BS * D, el);
		char	   *b = calloc(BLOCKS * BS * D, el);

		/* positions 3..13 of a sequence: a partial first block, then whole ones */
		for (int i = 0; i < N; i++)
			slots[i] = table[(3 + i) / BS] * BS + (3 + i) % BS;
		be->kv_store(be, a, t, table, BS, 3, x, N, D);
		be->kv_store_slots(be, b, t, slots, x, N, D);
		assert_memory_equal(a, b, (size_t) BLOCKS * BS * D * el);
		free(a);
		free(b);
	}
	be->free(be);
}

static int
teardown(void **state)
{
	lg_model_free(model);
	model = NULL;
	return 0;
}

/* A `llamagpu synth` encoder in a temporary file (path[64]), or skip visibly. */
static void
synth_encoder(const char *arch, char *path)
{
	const char *bin = getenv("LLAMAGPU_BIN");
	char		cmd[1024];
	int			fd;

	if (bin == NULL || access(bin, X_OK) != 0)
	{
		printf("SKIP: set LLAMAGPU_BIN to the llamagpu binary to test a synth encoder\n");
		skip();
	}
	snprintf(path, 64, "/tmp/lg_test_dev_enc_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd),
			 "'%s' synth --arch %s --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 48 --vocab-wpm "
			 "--pooling mean --type f32 --seed 9 -o '%s' >/dev/null 2>&1", bin, arch, path);
	if (system(cmd) != 0)
	{
		unlink(path);
		fail_msg("synth failed: %s", cmd);
	}
}

/*
 * Encoders on the shadow device: a padded batch of three texts of
 * different lengths, pooled mean (every row), cls (the pruned last layer:
 * gathered rows, their own positions) and none, equal bit for bit to the
 * CPU backend's, with no host array changed mid-step and nothing computed
 * on host memory.
 */
static void
test_encoder_matches_cpu(void **state)
{
	static const char *const archs[] = {"bert", "nomic-bert"};
	static const lg_pooling pools[] = {LG_POOL_MEAN, LG_POOL_CLS, LG_POOL_LAST, LG_POOL_NONE};
	lg_token	t0[7] = {2, 50, 60, 61, 62, 63, 3},
				t1[3] = {2, 70, 3},
				t2[5] = {2, 80, 81, 82, 3};
	const lg_token *seqs[3] = {t0, t1, t2};
	int32_t		n[3] = {7, 3, 5};

	for (size_t ai = 0; ai < sizeof(archs) / sizeof(archs[0]); ai++)
	{
		char		path[64];
		lg_model   *m;
		lg_context_params cp;
		lg_context *c_cpu,
				   *c_dev;
		shadow	   *sh;
		lg_error	err;
		float		a[15 * 32],
					b[15 * 32];

		synth_encoder(archs[ai], path);
		m = lg_model_load(path, &err);
		unlink(path);
		if (m == NULL)
			fail_msg("%s: %s", archs[ai], err.msg);
		assert_int_equal(m->hp.n_embd, 32);
		lg_context_params_default(&cp);
		cp.n_threads = 1;
		c_cpu = lg_context_new(m, &cp, &err);
		assert_non_null(c_cpu);
		sh = shadow_new();
		cp.backend = &sh->be;
		c_dev = lg_context_new(m, &cp, &err);
		assert_non_null(c_dev);
		for (size_t pi = 0; pi < sizeof(pools) / sizeof(pools[0]); pi++)
		{
			const size_t bytes = sizeof(float) * 32 * (pools[pi] == LG_POOL_NONE ? 15 : 3);

			memset(a, 0, sizeof(a));
			memset(b, 0xff, sizeof(b));
			assert_int_equal(lg_context_embed(c_cpu, seqs, n, 3, pools[pi], false, a, &err), LG_OK);
			if (lg_context_embed(c_dev, seqs, n, 3, pools[pi], false, b, &err) != LG_OK)
				fail_msg("%s %s on the shadow device: %s", archs[ai], lg_pooling_name(pools[pi]), err.msg);
			if (sh->problem[0] != '\0')
				fail_msg("%s %s: %s", archs[ai], lg_pooling_name(pools[pi]), sh->problem);
			assert_memory_equal(a, b, bytes);
			/* and not a zero vector that both got */
			assert_true(fabsf(a[0]) + fabsf(a[1]) + fabsf(a[31]) > 0.0f);
		}
		lg_context_free(c_dev);
		assert_int_equal(sh->n_bufs, 0);
		sh->be.free(&sh->be);
		lg_context_free(c_cpu);
		lg_model_free(m);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_open),
		cmocka_unit_test(test_kv_store_slots),
		cmocka_unit_test(test_context_logits_match_cpu),
		cmocka_unit_test(test_encoder_matches_cpu),
		cmocka_unit_test(test_scheduler_device_sampling),
		cmocka_unit_test(test_device_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
