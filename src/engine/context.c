/*
 * context.c — an inference context: the scratch buffers of the forward
 * pass, the backend that computes it, and the KV cache it writes: a
 * private paged cache holding one sequence (lg_context_eval), or a shared
 * one whose sequences the caller manages (lg_context_eval_batch).
 */
#include "context.h"

#include <stdlib.h>
#include <string.h>

/* Forward function of each architecture (see forward_llama.c for qwen2). */
static const lg_forward_fn forward_fns[LG_ARCH_COUNT] = {
	[LG_ARCH_LLAMA] = lg_forward_llama,
	[LG_ARCH_QWEN2] = lg_forward_llama,
	[LG_ARCH_BERT] = lg_forward_bert,
	[LG_ARCH_NOMIC_BERT] = lg_forward_bert,
};

void
lg_context_params_default(lg_context_params *p)
{
	memset(p, 0, sizeof(*p));
	p->kv_type = LG_KV_F16;
}

/* n zeroed floats of backend memory; failure reported through *ok. */
static float *
buf_zero(lg_backend *be, size_t n, bool *ok)
{
	float	   *p;

	if (!*ok)
		return NULL;
	p = lg_backend_alloc(be, n * sizeof(float), NULL);
	if (p == NULL)
		*ok = false;
	return p;
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
	if (p->kv && !lg_kv_cache_fits(p->kv, m))
	{
		lg_error_set(err, LG_ERR_ARG, "the KV cache was made for a model of another shape");
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
	/* a private cache's one sequence cannot take more rows than it holds */
	if (p->kv == NULL && c->n_batch > c->n_ctx)
		c->n_batch = c->n_ctx;
	/* an encoder sees a whole sequence in one step: any sequence that fits must fit a step */
	if (hp->encoder && c->n_batch < c->n_ctx)
		c->n_batch = c->n_ctx;
	if (p->backend)
		c->be = p->backend;
	else
	{
		if (p->reference)
			c->be = lg_backend_cpu_new(p->n_threads, 1, err);
		else
			c->be = lg_backend_open(p->device ? p->device : "cpu", p->n_threads, err);
		if (c->be == NULL)
			goto fail;
		c->own_be = true;
	}
	if (c->be->map_weights && m->gguf)
	{
		/* the tensors point into the file's data section: make it usable once */
		const lg_gguf *g = m->gguf;

		if (c->be->map_weights(c->be, g->base + g->data_offset, g->size - g->data_offset, err) != LG_OK)
			goto fail;
		c->mapped_weights = g->base + g->data_offset;
	}

	if (p->kv)
	{
		c->kv = p->kv;
		c->kv_type = lg_kv_cache_type(p->kv);
	}
	else
	{
		/* blocks 0, 1, 2, ... in order: one contiguous run, as a flat cache */
		lg_kv_cache_params kp = {
			.block_size = LG_KV_BLOCK_SIZE_DEFAULT,
			.n_blocks = (c->n_ctx + LG_KV_BLOCK_SIZE_DEFAULT - 1) / LG_KV_BLOCK_SIZE_DEFAULT,
			.type = p->kv_type,
			.backend = lg_backend_is_host(c->be) ? NULL : c->be,
		};

		c->kv_type = p->kv_type;
		c->kv = lg_kv_cache_new(m, &kp, err);
		if (c->kv == NULL)
			goto fail;
		c->own_kv = true;
		lg_kv_seq_init(&c->seq);
		if (lg_kv_seq_reserve(c->kv, &c->seq, c->n_ctx, err) != LG_OK)
			goto fail;
	}
	c->x = buf_zero(c->be, (size_t) c->n_batch * hp->n_embd, &ok);
	c->xb = buf_zero(c->be, (size_t) c->n_batch * hp->n_embd, &ok);
	c->q = buf_zero(c->be, (size_t) c->n_batch * q_dim, &ok);
	c->att = buf_zero(c->be, (size_t) c->n_batch * q_dim, &ok);
	c->k = buf_zero(c->be, (size_t) c->n_batch * kv_dim, &ok);
	c->v = buf_zero(c->be, (size_t) c->n_batch * kv_dim, &ok);
	c->hb = buf_zero(c->be, (size_t) c->n_batch * hp->n_ff, &ok);
	c->hb2 = buf_zero(c->be, (size_t) c->n_batch * hp->n_ff, &ok);
	c->positions = alloc_zero(c->n_batch, sizeof(int32_t), &ok);
	c->positions_out = alloc_zero(c->n_batch, sizeof(int32_t), &ok);
	c->slots = alloc_zero(c->n_batch, sizeof(int32_t), &ok);
	c->btokens = alloc_zero(c->n_batch, sizeof(lg_token), &ok);
	c->bseqs = alloc_zero(c->n_batch, sizeof(lg_fwd_seq), &ok);
	c->out_rows = alloc_zero(c->n_batch, sizeof(int32_t), &ok);
	c->attn_args = alloc_zero(c->n_batch, sizeof(lg_attn_args), &ok);
	if (ok && c->be->attn_scratch_floats)
	{
		/* the whole batch's queries against a sequence as long as n_ctx */
		size_t		n = c->be->attn_scratch_floats(c->be, c->n_batch, c->n_ctx, hp->n_head);

		if (n > 0)
			c->attn_scratch = buf_zero(c->be, n, &ok);
	}
	if (!ok)
	{
		size_t		bytes = sizeof(float) * (size_t) c->n_batch *
			(2 * (size_t) hp->n_embd + 2 * (size_t) q_dim + 2 * (size_t) kv_dim + 2 * (size_t) hp->n_ff);

		lg_error_set(err, LG_ERR_NOMEM, "out of %s memory for the scratch buffers of a context of %d rows (%.1f MiB)",
					 lg_backend_is_host(c->be) ? "host" : c->be->name, c->n_batch, bytes / (1024.0 * 1024.0));
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
	lg_embed_free_scratch(c);
	if (c->own_kv && c->kv)
	{
		lg_kv_seq_release(c->kv, &c->seq);
		lg_kv_cache_free(c->kv);
	}
	if (c->be)
	{
		lg_backend_buf_free(c->be, c->x);
		lg_backend_buf_free(c->be, c->xb);
		lg_backend_buf_free(c->be, c->q);
		lg_backend_buf_free(c->be, c->att);
		lg_backend_buf_free(c->be, c->k);
		lg_backend_buf_free(c->be, c->v);
		lg_backend_buf_free(c->be, c->hb);
		lg_backend_buf_free(c->be, c->hb2);
		lg_backend_buf_free(c->be, c->attn_scratch);
		lg_backend_buf_free(c->be, c->logits_buf);
		if (c->mapped_weights && c->be->unmap_weights)
			c->be->unmap_weights(c->be, c->mapped_weights);
	}
	free(c->positions);
	free(c->positions_out);
	free(c->slots);
	free(c->btokens);
	free(c->bseqs);
	free(c->out_rows);
	free(c->attn_args);
	if (c->own_be && c->be)
		c->be->free(c->be);
	free(c);
}

void
lg_context_reset(lg_context *c)
{
	c->seq.n_pos = 0;
}

lg_status
lg_context_truncate(lg_context *c, int32_t pos, lg_error *err)
{
	if (pos < 0 || pos > c->seq.n_pos)
		return lg_error_set(err, LG_ERR_RANGE, "cannot truncate a sequence of %d tokens to %d",
							c->seq.n_pos, pos);
	/* the private cache shares no block, so later positions are simply rewritten */
	c->seq.n_pos = pos;
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
	return c->seq.n_pos;
}

int32_t
lg_context_n_ctx(const lg_context *c)
{
	return c->n_ctx;
}

const char *
lg_context_device(const lg_context *c)
{
	return c->be->name;
}

int32_t
lg_context_n_batch(const lg_context *c)
{
	return c->n_batch;
}

const lg_model *
lg_context_model(const lg_context *c)
{
	return c->model;
}

/* LG_ERR_RANGE naming the first of n tokens outside the vocabulary. */
static lg_status
check_tokens(const lg_hparams *hp, const lg_token *tokens, int32_t n, lg_error *err)
{
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
			return lg_error_set(err, LG_ERR_RANGE, "token id %d is out of range (vocabulary has %d tokens)",
								tokens[i], hp->n_vocab);
	return LG_OK;
}

lg_status
lg_context_eval(lg_context *c, const lg_token *tokens, int32_t n,
				float *logits, bool all_logits, lg_error *err)
{
	const lg_hparams *hp = &c->model->hp;
	lg_status	st;

	if (!c->own_kv)
		return lg_error_set(err, LG_ERR_ARG,
							"a context on a shared KV cache evaluates with lg_context_eval_batch");
	if (n <= 0)
		return lg_error_set(err, LG_ERR_ARG, "no tokens to evaluate");
	if (n > c->n_ctx - c->seq.n_pos)
		return lg_error_set(err, LG_ERR_RANGE,
							"%d tokens do not fit in the context (%d of %d positions used)",
							n, c->seq.n_pos, c->n_ctx);
	if ((st = check_tokens(hp, tokens, n, err)) != LG_OK)
		return st;

	for (int32_t done = 0; done < n;)
	{
		int32_t		chunk = n - done < c->n_batch ? n - done : c->n_batch;
		bool		last = done + chunk == n;
		float	   *out = NULL;
		lg_fwd_seq	fs = {.kv = &c->seq, .row0 = 0, .n = chunk};
		lg_fwd_batch b = {.tokens = tokens + done, .n = chunk, .seqs = &fs, .n_seqs = 1,
		.out_rows = c->out_rows};

		/* logits of every row go to their place; the last row's only at the end */
		if (logits && all_logits)
		{
			out = logits + (size_t) done * hp->n_vocab;
			for (int32_t i = 0; i < chunk; i++)
				c->out_rows[i] = i;
			b.n_out = chunk;
		}
		else if (logits && last)
		{
			out = logits;
			c->out_rows[0] = chunk - 1;
			b.n_out = 1;
		}
		st = lg_context_run(c, &b, out, err);
		if (st != LG_OK)
			return st;
		c->seq.n_pos += chunk;
		done += chunk;
	}
	return LG_OK;
}

/* lg_context_eval_batch and its device-sampling form (params and ids given). */
static lg_status
eval_batch(lg_context *c, lg_batch_seq *seqs, int32_t n_seqs, float *logits,
		   const lg_device_sample *params, lg_token *ids, lg_error *err)
{
	const lg_hparams *hp = &c->model->hp;
	const int32_t bs = lg_kv_cache_block_size(c->kv);
	lg_fwd_batch b = {.tokens = c->btokens, .seqs = c->bseqs, .n_seqs = n_seqs,
	.out_rows = c->out_rows};
	lg_status	st;

	if (c->own_kv)
		return lg_error_set(err, LG_ERR_ARG,
							"lg_context_eval_batch needs a context made with a shared KV cache");
	if (seqs == NULL || n_seqs <= 0)
		return lg_error_set(err, LG_ERR_ARG, "no sequences to evaluate");

	/* check everything before computing anything: on error nothing moves */
	for (int32_t s = 0; s < n_seqs; s++)
	{
		const lg_batch_seq *bq = &seqs[s];

		if (bq->kv == NULL || bq->tokens == NULL || bq->n_tokens <= 0)
			return lg_error_set(err, LG_ERR_ARG, "batch sequence %d has no tokens or no KV sequence", s);
		if (bq->n_tokens > c->n_batch - b.n)
			return lg_error_set(err, LG_ERR_RANGE, "a batch of more than %d tokens (the context's n_batch)",
								c->n_batch);
		if (bq->n_tokens > c->n_ctx - bq->kv->n_pos)
			return lg_error_set(err, LG_ERR_RANGE,
								"batch sequence %d: %d tokens do not fit (%d of %d positions used)",
								s, bq->n_tokens, bq->kv->n_pos, c->n_ctx);
		if ((int64_t) bq->kv->n_blocks * bs < (int64_t) bq->kv->n_pos + bq->n_tokens)
			return lg_error_set(err, LG_ERR_ARG,
								"batch sequence %d: blocks for %d positions are not reserved",
								s, bq->kv->n_pos + bq->n_tokens);
		for (int32_t t = 0; t < s; t++)
			if (seqs[t].kv == bq->kv)
				return lg_error_set(err, LG_ERR_ARG, "batch sequences %d and %d share a KV sequence", t, s);
		if ((st = check_tokens(hp, bq->tokens, bq->n_tokens, err)) != LG_OK)
			return st;

		memcpy(c->btokens + b.n, bq->tokens, (size_t) bq->n_tokens * sizeof(lg_token));
		c->bseqs[s] = (lg_fwd_seq) {.kv = bq->kv, .row0 = b.n, .n = bq->n_tokens};
		b.n += bq->n_tokens;
		if (bq->want_logits)
			c->out_rows[b.n_out++] = b.n - 1;
	}

	st = lg_context_run_sample(c, &b, logits, params, ids, err);
	if (st != LG_OK)
		return st;
	for (int32_t s = 0; s < n_seqs; s++)
		seqs[s].kv->n_pos += seqs[s].n_tokens;
	return LG_OK;
}

lg_status
lg_context_eval_batch(lg_context *c, lg_batch_seq *seqs, int32_t n_seqs,
					  float *logits, lg_error *err)
{
	return eval_batch(c, seqs, n_seqs, logits, NULL, NULL, err);
}

bool
lg_context_can_sample(const lg_context *c)
{
	return c->be->sample != NULL;
}

lg_status
lg_context_eval_batch_sample(lg_context *c, lg_batch_seq *seqs, int32_t n_seqs,
							 const lg_device_sample *params, lg_token *ids, lg_error *err)
{
	if (c->be->sample == NULL)
		return lg_error_set(err, LG_ERR_UNSUPPORTED, "backend %s does not sample on the device", c->be->name);
	if (params == NULL || ids == NULL)
		return lg_error_set(err, LG_ERR_ARG, "device sampling needs parameters and room for the tokens");
	return eval_batch(c, seqs, n_seqs, NULL, params, ids, err);
}

lg_status
lg_context_run(lg_context *c, const lg_fwd_batch *b, float *logits, lg_error *err)
{
	return lg_context_run_sample(c, b, logits, NULL, NULL, err);
}

lg_status
lg_context_run_sample(lg_context *c, const lg_fwd_batch *b, float *logits,
					  const lg_device_sample *params, lg_token *ids, lg_error *err)
{
	lg_backend *be = c->be;
	const int32_t n_vocab = c->model->hp.n_vocab;
	lg_step_info info = {.n_rows = b->n, .n_seqs = b->n_seqs, .decode = b->n == b->n_seqs && !b->hidden};
	float	   *out = NULL;
	size_t		out_floats = (size_t) b->n_out * (b->hidden ? c->model->hp.n_embd : n_vocab);
	lg_status	st;

	if ((logits != NULL || params != NULL) && b->n_out > 0)
	{
		if (params == NULL && lg_backend_is_host(be))
			out = logits;
		else
		{
			/* logits land in backend memory first; grown before the step, never during it */
			if (c->logits_cap < out_floats)
			{
				lg_backend_buf_free(be, c->logits_buf);
				c->logits_cap = 0;
				c->logits_buf = lg_backend_alloc(be, out_floats * sizeof(float), err);
				if (c->logits_buf == NULL)
					return err ? err->status : LG_ERR_NOMEM;
				c->logits_cap = out_floats;
			}
			out = c->logits_buf;
		}
	}
	if (be->step_begin && (st = be->step_begin(be, &info, err)) != LG_OK)
		return st;
	st = forward_fns[c->model->hp.arch] (c, b, out, err);
	if (be->step_end)
	{
		lg_error	end_err;
		lg_status	st_end;

		lg_error_clear(&end_err);
		st_end = be->step_end(be, st != LG_OK, &end_err);
		/*
		 * the device's own message is more specific than the forward
		 * pass's "layer 3: … failed" that the same failure produced
		 */
		if (st_end != LG_OK && st != LG_ERR_CANCELLED)
		{
			st = st_end;
			if (err)
				*err = end_err;
		}
	}
	if (st == LG_OK && out != NULL && params != NULL)
		st = be->sample(be, ids, out, b->n_out, n_vocab, params, err);
	else if (st == LG_OK && out != NULL && out != logits)
		st = lg_backend_read(be, logits, out, out_floats * sizeof(float), err);
	return st;
}
