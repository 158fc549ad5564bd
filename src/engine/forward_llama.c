/*
 * forward_llama.c — the forward pass of the llama family (Llama 2/3,
 * TinyLlama, Mistral, SmolLM) and of qwen2.
 *
 * Qwen2 is llama with biases on Q, K and V and NeoX-style RoPE; both
 * differences are data (the bias tensors exist, hp.rope.style says NEOX), so
 * one straight-line function serves both.  An architecture whose layer has
 * a different structure gets its own forward_<arch>.c.
 *
 * A call evaluates a batch: the rows of several sequences go through the
 * norms, matrix products and feed-forward together; only RoPE (each row's
 * own position), the KV store and attention (each sequence's own blocks)
 * see the sequences apart.
 */
#include "context.h"

#include <math.h>

lg_status
lg_forward_llama(lg_context *c, const lg_fwd_batch *b, float *logits, lg_error *err)
{
	const lg_model *m = c->model;
	const lg_hparams *hp = &m->hp;
	lg_backend *be = c->be;
	const int32_t n = b->n;
	const int32_t bs = lg_kv_cache_block_size(c->kv);
	int64_t		d = hp->n_embd;
	int64_t		q_dim = (int64_t) hp->n_head * hp->head_dim;
	int64_t		kv_dim = (int64_t) hp->n_head_kv * hp->head_dim;
	lg_status	st;
	const lg_attn_args a0 = {
		.kv_type = c->kv_type, .block_size = bs,
		.n_heads = hp->n_head, .n_kv_heads = hp->n_head_kv, .head_dim = hp->head_dim,
		.scale = 1.0f / sqrtf((float) hp->head_dim), .scratch = c->attn_scratch,
	};

	/*
	 * each row's position in its own sequence (RoPE) and its pool row
	 * (the KV store of every layer)
	 */
	for (int32_t s = 0; s < b->n_seqs; s++)
	{
		const lg_kv_seq *kv = b->seqs[s].kv;

		for (int32_t i = 0; i < b->seqs[s].n; i++)
		{
			int32_t		p = kv->n_pos + i;

			c->positions[b->seqs[s].row0 + i] = p;
			c->slots[b->seqs[s].row0 + i] = kv->blocks[p / bs] * bs + p % bs;
		}
	}

	/* x[n][d] = token embeddings */
	if ((st = be->get_rows(be, c->x, &m->tok_embd, b->tokens, n)) != LG_OK)
		return lg_error_set(err, st, "embedding lookup failed");

	for (int il = 0; il < hp->n_layer; il++)
	{
		const lg_layer *l = &m->layers[il];
		void	   *k_pool = lg_kv_cache_k(c->kv, il);
		void	   *v_pool = lg_kv_cache_v(c->kv, il);

		if (lg_context_aborted(c))
			return lg_error_set(err, LG_ERR_CANCELLED, "evaluation cancelled");

		/* attention: xb = rmsnorm(x); q, k, v = xb·W (+ b); RoPE, all rows at once */
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

		/*
		 * every row's k, v to its slot; per sequence, its rows' att =
		 * softmax(q·kᵀ·scale, causal)·v over its positions 0..n_pos+n-1
		 * (all sequences in one attention call)
		 */
		be->kv_store_slots(be, k_pool, c->kv_type, c->slots, c->k, n, kv_dim);
		be->kv_store_slots(be, v_pool, c->kv_type, c->slots, c->v, n, kv_dim);
		for (int32_t s = 0; s < b->n_seqs; s++)
		{
			const lg_fwd_seq *fs = &b->seqs[s];
			lg_attn_args *a = &c->attn_args[s];

			*a = a0;
			a->out = c->att + fs->row0 * q_dim;
			a->q = c->q + fs->row0 * q_dim;
			a->k_cache = k_pool;
			a->v_cache = v_pool;
			a->block_table = fs->kv->blocks;
			a->n_tok = fs->n;
			a->pos0 = fs->kv->n_pos;
			a->kv_len = fs->kv->n_pos + fs->n;
		}
		be->attention(be, c->attn_args, b->n_seqs);

		/* x += att·Wo */
		if ((st = be->matmul(be, c->xb, &l->wo, c->att, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention output failed", il);
		be->add(be, c->x, c->xb, n * d);

		/* feed-forward: x += (silu(xb·Wgate) * (xb·Wup))·Wdown, xb = rmsnorm(x) */
		be->rmsnorm(be, c->xb, c->x, l->ffn_norm.data, n, d, hp->rms_eps);
		if ((st = be->matmul(be, c->hb, &l->ffn_gate, c->xb, n)) != LG_OK ||
			(st = be->matmul(be, c->hb2, &l->ffn_up, c->xb, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: feed-forward failed", il);
		be->swiglu(be, c->hb, c->hb2, n, hp->n_ff);
		if ((st = be->matmul(be, c->xb, &l->ffn_down, c->hb, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: feed-forward output failed", il);
		be->add(be, c->x, c->xb, n * d);
	}

	if (logits == NULL || b->n_out == 0)
		return LG_OK;
	/*
	 * logits = rmsnorm(x)·Woutput for the rows asked: gathered, one
	 * product; a run of consecutive rows (every row of a decode step) is
	 * one rmsnorm call.  Embeddings want rmsnorm(x) itself.
	 */
	for (int32_t i = 0; i < b->n_out;)
	{
		int32_t		run = 1;

		while (i + run < b->n_out && b->out_rows[i + run] == b->out_rows[i] + run)
			run++;
		be->rmsnorm(be, (b->hidden ? logits : c->xb) + i * d, c->x + b->out_rows[i] * d,
					m->output_norm.data, run, d, hp->rms_eps);
		i += run;
	}
	if (b->hidden)
		return LG_OK;
	if ((st = be->matmul(be, logits, &m->output, c->xb, b->n_out)) != LG_OK)
		return lg_error_set(err, st, "output projection failed");
	return LG_OK;
}
