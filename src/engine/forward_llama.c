/*
 * forward_llama.c — the forward pass of the llama family (Llama 2/3,
 * TinyLlama, Mistral, SmolLM) and of qwen2.
 *
 * Qwen2 is llama with biases on Q, K and V and NeoX-style RoPE; both
 * differences are data (the bias tensors exist, hp.rope.style says NEOX), so
 * one straight-line function serves both.  An architecture whose layer has
 * a different structure gets its own forward_<arch>.c.
 */
#include "context.h"

#include <math.h>

lg_status
lg_forward_llama(lg_context *c, const lg_token *tokens, int32_t n,
				 float *logits, bool all, lg_error *err)
{
	const lg_model *m = c->model;
	const lg_hparams *hp = &m->hp;
	lg_backend *be = c->be;
	int64_t		d = hp->n_embd;
	int64_t		q_dim = (int64_t) hp->n_head * hp->head_dim;
	int64_t		kv_dim = (int64_t) hp->n_head_kv * hp->head_dim;
	lg_status	st;
	lg_attn_args a = {
		.out = c->att, .q = c->q, .kv_type = c->kv_type,
		.n_tok = n, .pos0 = c->pos, .kv_len = c->pos + n,
		.n_heads = hp->n_head, .n_kv_heads = hp->n_head_kv, .head_dim = hp->head_dim,
		.scale = 1.0f / sqrtf((float) hp->head_dim), .scratch = c->attn_scratch,
	};

	for (int32_t i = 0; i < n; i++)
		c->positions[i] = c->pos + i;

	/* x[n][d] = token embeddings */
	if ((st = be->get_rows(be, c->x, &m->tok_embd, tokens, n)) != LG_OK)
		return lg_error_set(err, st, "embedding lookup failed");

	for (int il = 0; il < hp->n_layer; il++)
	{
		const lg_layer *l = &m->layers[il];

		if (lg_context_aborted(c))
			return lg_error_set(err, LG_ERR_CANCELLED, "evaluation cancelled");

		/* attention: xb = rmsnorm(x); q, k, v = xb·W (+ b); RoPE; cache k, v */
		be->rmsnorm(be, c->xb, c->x, l->attn_norm.data, n, d, hp->rms_eps);
		if ((st = be->matmul(be, c->q, &l->wq, c->xb, n)) != LG_OK ||
			(st = be->matmul(be, c->k, &l->wk, c->xb, n)) != LG_OK ||
			(st = be->matmul(be, c->v, &l->wv, c->xb, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention projection failed", il);
		if (l->bq.data)
			be->add_bias(be, c->q, l->bq.data, n, q_dim);
		if (l->bk.data)
			be->add_bias(be, c->k, l->bk.data, n, kv_dim);
		if (l->bv.data)
			be->add_bias(be, c->v, l->bv.data, n, kv_dim);
		be->rope(be, c->q, n, hp->n_head, hp->head_dim, c->positions, &hp->rope);
		be->rope(be, c->k, n, hp->n_head_kv, hp->head_dim, c->positions, &hp->rope);
		be->kv_store(be, c->k_cache[il], c->kv_type, c->pos, c->k, n, kv_dim);
		be->kv_store(be, c->v_cache[il], c->kv_type, c->pos, c->v, n, kv_dim);

		/* att = softmax(q·kᵀ·scale, causal)·v over positions 0..pos+n-1; x += att·Wo */
		a.k_cache = c->k_cache[il];
		a.v_cache = c->v_cache[il];
		be->attention(be, &a);
		if ((st = be->matmul(be, c->xb, &l->wo, c->att, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention output failed", il);
		be->add(be, c->x, c->xb, n * d);

		/* feed-forward: x += (silu(xb·Wgate) * (xb·Wup))·Wdown, xb = rmsnorm(x) */
		be->rmsnorm(be, c->xb, c->x, l->ffn_norm.data, n, d, hp->rms_eps);
		if ((st = be->matmul(be, c->hb, &l->ffn_gate, c->xb, n)) != LG_OK ||
			(st = be->matmul(be, c->hb2, &l->ffn_up, c->xb, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: feed-forward failed", il);
		be->swiglu(be, c->hb, c->hb2, n * hp->n_ff);
		if ((st = be->matmul(be, c->xb, &l->ffn_down, c->hb, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: feed-forward output failed", il);
		be->add(be, c->x, c->xb, n * d);
	}

	if (logits == NULL)
		return LG_OK;
	/* logits = rmsnorm(x)·Woutput, for every row or only the last */
	{
		const float *rows = all ? c->x : c->x + (n - 1) * d;
		int64_t		n_out = all ? n : 1;

		be->rmsnorm(be, c->xb, rows, m->output_norm.data, n_out, d, hp->rms_eps);
		if ((st = be->matmul(be, logits, &m->output, c->xb, n_out)) != LG_OK)
			return lg_error_set(err, st, "output projection failed");
	}
	return LG_OK;
}
