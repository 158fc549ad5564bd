/*
 * context.c — an inference context: one sequence's KV cache, the scratch
 * buffers of the forward pass, and the backend that computes it.
 */
#include "context.h"

#include <stdlib.h>
#include <string.h>

/* Forward function of each architecture (see forward_llama.c for qwen2). */
static const lg_forward_fn forward_fns[LG_ARCH_COUNT] = {
	[LG_ARCH_LLAMA] = lg_forward_llama,
	[LG_ARCH_QWEN2] = lg_forward_llama,
};

void
lg_context_params_default(lg_context_params *p)
{
	memset(p, 0, sizeof(*p));
	p->kv_type = LG_KV_F16;
}

/* calloc that tolerates n == 0 and reports failure through *ok. */
static void *
alloc_zero(size_t n, size_t size, bool *ok)
{
	void	   *p = calloc(n ? n : 1, size);

	if (p == NULL)
		*ok = false;
	return p;
}

lg_context *
lg_context_new(const lg_model *m, const lg_context_params *p, lg_error *err)
{
	const lg_hparams *hp = &m->hp;
	lg_context *c;
	lg_context_params dp;
	int64_t		kv_dim = (int64_t) hp->n_head_kv * hp->head_dim;
	int64_t		q_dim = (int64_t) hp->n_head * hp->head_dim;
	size_t		kv_elt;
	bool		ok = true;

	if (p == NULL)
	{
		lg_context_params_default(&dp);
		p = &dp;
	}
	if (p->n_ctx < 0 || p->n_batch < 0 || (p->kv_type != LG_KV_F16 && p->kv_type != LG_KV_F32))
	{
		lg_error_set(err, LG_ERR_ARG, "invalid context parameters");
		return NULL;
	}
	c = calloc(1, sizeof(lg_context));
	if (c == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	c->model = m;
	c->n_ctx = p->n_ctx > 0 ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
	c->n_batch = p->n_batch > 0 ? p->n_batch : 512;
	if (c->n_batch > c->n_ctx)
		c->n_batch = c->n_ctx;
	c->kv_type = p->kv_type;
	if (p->backend)
		c->be = p->backend;
	else
	{
		c->be = lg_backend_cpu_new(p->n_threads, p->reference, err);
		if (c->be == NULL)
			goto fail;
		c->own_be = true;
	}

	kv_elt = c->kv_type == LG_KV_F16 ? sizeof(lg_f16) : sizeof(float);
	c->k_cache = alloc_zero(hp->n_layer, sizeof(void *), &ok);
	c->v_cache = alloc_zero(hp->n_layer, sizeof(void *), &ok);
	for (int il = 0; ok && il < hp->n_layer; il++)
	{
		c->k_cache[il] = alloc_zero((size_t) c->n_ctx * kv_dim, kv_elt, &ok);
		c->v_cache[il] = alloc_zero((size_t) c->n_ctx * kv_dim, kv_elt, &ok);
	}
	c->x = alloc_zero((size_t) c->n_batch * hp->n_embd, sizeof(float), &ok);
	c->xb = alloc_zero((size_t) c->n_batch * hp->n_embd, sizeof(float), &ok);
	c->q = alloc_zero((size_t) c->n_batch * q_dim, sizeof(float), &ok);
	c->att = alloc_zero((size_t) c->n_batch * q_dim, sizeof(float), &ok);
	c->k = alloc_zero((size_t) c->n_batch * kv_dim, sizeof(float), &ok);
	c->v = alloc_zero((size_t) c->n_batch * kv_dim, sizeof(float), &ok);
	c->hb = alloc_zero((size_t) c->n_batch * hp->n_ff, sizeof(float), &ok);
	c->hb2 = alloc_zero((size_t) c->n_batch * hp->n_ff, sizeof(float), &ok);
	c->positions = alloc_zero(c->n_batch, sizeof(int32_t), &ok);
	if (ok && c->be->attn_scratch_floats)
	{
		size_t		n = c->be->attn_scratch_floats(c->be, c->n_batch, c->n_ctx, hp->n_head);

		if (n > 0)
			c->attn_scratch = alloc_zero(n, sizeof(float), &ok);
	}
	if (!ok)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory for a context of %d positions (%.1f MiB of KV cache)",
					 c->n_ctx, 2.0 * hp->n_layer * c->n_ctx * kv_dim * kv_elt / (1024.0 * 1024.0));
		goto fail;
	}
	return c;

fail:
	lg_context_free(c);
	return NULL;
}

void
lg_context_free(lg_context *c)
{
	if (c == NULL)
		return;
	if (c->k_cache)
		for (int il = 0; il < c->model->hp.n_layer; il++)
			free(c->k_cache[il]);
	if (c->v_cache)
		for (int il = 0; il < c->model->hp.n_layer; il++)
			free(c->v_cache[il]);
	free(c->k_cache);
	free(c->v_cache);
	free(c->x);
	free(c->xb);
	free(c->q);
	free(c->att);
	free(c->k);
	free(c->v);
	free(c->hb);
	free(c->hb2);
	free(c->positions);
	free(c->attn_scratch);
	if (c->own_be && c->be)
		c->be->free(c->be);
	free(c);
}

void
lg_context_reset(lg_context *c)
{
	c->pos = 0;
}

lg_status
lg_context_truncate(lg_context *c, int32_t pos, lg_error *err)
{
	if (pos < 0 || pos > c->pos)
		return lg_error_set(err, LG_ERR_RANGE, "cannot truncate a sequence of %d tokens to %d", c->pos, pos);
	c->pos = pos;
	return LG_OK;
}

void
lg_context_set_abort(lg_context *c, lg_abort_fn fn, void *arg)
{
	c->abort_fn = fn;
	c->abort_arg = arg;
}

int32_t
lg_context_pos(const lg_context *c)
{
	return c->pos;
}

int32_t
lg_context_n_ctx(const lg_context *c)
{
	return c->n_ctx;
}

const lg_model *
lg_context_model(const lg_context *c)
{
	return c->model;
}

lg_status
lg_context_eval(lg_context *c, const lg_token *tokens, int32_t n,
				float *logits, bool all_logits, lg_error *err)
{
	const lg_hparams *hp = &c->model->hp;
	lg_forward_fn forward = forward_fns[hp->arch];
	lg_status	st;

	if (n <= 0)
		return lg_error_set(err, LG_ERR_ARG, "no tokens to evaluate");
	if (n > c->n_ctx - c->pos)
		return lg_error_set(err, LG_ERR_RANGE,
							"%d tokens do not fit in the context (%d of %d positions used)",
							n, c->pos, c->n_ctx);
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
			return lg_error_set(err, LG_ERR_RANGE, "token id %d is out of range (vocabulary has %d tokens)",
								tokens[i], hp->n_vocab);

	for (int32_t done = 0; done < n;)
	{
		int32_t		chunk = n - done < c->n_batch ? n - done : c->n_batch;
		bool		last = done + chunk == n;
		float	   *out = NULL;

		/* logits of every row go to their place; the last row's only at the end */
		if (logits && all_logits)
			out = logits + (size_t) done * hp->n_vocab;
		else if (logits && last)
			out = logits;
		st = forward(c, tokens + done, chunk, out, all_logits, err);
		if (st != LG_OK)
			return st;
		c->pos += chunk;
		done += chunk;
	}
	return LG_OK;
}
