/*
 * forward_bert.c — the forward pass of the encoders: bert (BERT, MiniLM,
 * bge, e5) and nomic-bert, as llama.cpp's build_bert runs them.
 *
 *   x = LayerNorm(tok_embd[t] + token_types[0] + position_embd[p])   (bert)
 *   x = LayerNorm(tok_embd[t] + token_types[0])                     (nomic-bert)
 *   per layer (post-norm):
 *     a = attention(x·Wq + bq, x·Wk + bk, x·Wv + bv), both ways; nomic-bert
 *         rotates q and k (NeoX RoPE) and has no biases
 *     x = LayerNorm(a·Wo + bo + x)
 *     f = GELU(x·Wup + bup)·Wdown + bdown        (bert)
 *     f = (silu(x·Wgate) * x·Wup)·Wdown          (nomic-bert)
 *     x = LayerNorm(f + x)
 *
 * The last x is the hidden state embeddings pool (there is no final norm
 * and no output head).  Token types are all 0 ("sentence A"), as in
 * llama.cpp.  Sequences of a batch are packed one after another; each
 * attends over its own rows only (its own block table), which is what
 * a padded batch with an attention mask computes.
 */
#include "context.h"

#include <math.h>
#include <string.h>

lg_status
lg_forward_bert(lg_context *c, const lg_fwd_batch *b, float *out, lg_error *err)
{
	const lg_model *m = c->model;
	const lg_hparams *hp = &m->hp;
	lg_backend *be = c->be;
	const int32_t n = b->n;
	const int32_t bs = lg_kv_cache_block_size(c->kv);
	const int64_t d = hp->n_embd;
	const bool	bert = hp->arch == LG_ARCH_BERT;
	static const lg_token type0 = 0;
	lg_status	st;
	const lg_attn_args a0 = {
		.kv_type = c->kv_type, .block_size = bs,
		.n_heads = hp->n_head, .n_kv_heads = hp->n_head_kv, .head_dim = hp->head_dim,
		.scale = 1.0f / sqrtf((float) hp->head_dim), .scratch = c->attn_scratch,
		.bidirectional = !hp->causal,
	};

	if (!b->hidden)
		return lg_error_set(err, LG_ERR_UNSUPPORTED,
							"%s is an encoder: it makes embeddings (lg_context_embed), not logits", hp->arch_name);
	if (be->layernorm == NULL || be->gelu == NULL || !lg_backend_is_host(be))
		return lg_error_set(err, LG_ERR_UNSUPPORTED, "backend %s cannot run encoder models (%s)",
							be->name, hp->arch_name);

	for (int32_t s = 0; s < b->n_seqs; s++)
	{
		const lg_kv_seq *kv = b->seqs[s].kv;

		for (int32_t i = 0; i < b->seqs[s].n; i++)
		{
			int32_t		p = kv->n_pos + i;

			if (bert && p >= m->pos_embd.ne[1])
				return lg_error_set(err, LG_ERR_RANGE, "position %d is past the model's %lld position embeddings",
									p, (long long) m->pos_embd.ne[1]);
			c->positions[b->seqs[s].row0 + i] = p;
			c->slots[b->seqs[s].row0 + i] = kv->blocks[p / bs] * bs + p % bs;
		}
	}

	/* x = token + token type 0 (+ position) embeddings, LayerNorm */
	if ((st = be->get_rows(be, c->x, &m->tok_embd, b->tokens, n)) != LG_OK)
		return lg_error_set(err, st, "embedding lookup failed");
	if (m->type_embd.data)
	{
		if ((st = be->get_rows(be, c->xb, &m->type_embd, &type0, 1)) != LG_OK)
			return lg_error_set(err, st, "token type embedding lookup failed");
		be->add_bias(be, c->x, c->xb, n, d);
	}
	if (bert)
	{
		if ((st = be->get_rows(be, c->xb, &m->pos_embd, c->positions, n)) != LG_OK)
			return lg_error_set(err, st, "position embedding lookup failed");
		be->add(be, c->x, c->xb, n * d);
	}
	be->layernorm(be, c->x, c->x, m->tok_norm.data, m->tok_norm_b.data, n, d, hp->norm_eps);

	for (int il = 0; il < hp->n_layer; il++)
	{
		const lg_layer *l = &m->layers[il];
		void	   *k_pool = lg_kv_cache_k(c->kv, il);
		void	   *v_pool = lg_kv_cache_v(c->kv, il);

		if (lg_context_aborted(c))
			return lg_error_set(err, LG_ERR_CANCELLED, "evaluation cancelled");

		/* q, k, v = x·W (+ b); nomic-bert: RoPE */
		if ((st = be->matmul(be, c->q, &l->wq, c->x, n)) != LG_OK ||
			(st = be->matmul(be, c->k, &l->wk, c->x, n)) != LG_OK ||
			(st = be->matmul(be, c->v, &l->wv, c->x, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention projection failed", il);
		if (l->bq.data)
			be->add_bias(be, c->q, l->bq.data, n, d);
		if (l->bk.data)
			be->add_bias(be, c->k, l->bk.data, n, d);
		if (l->bv.data)
			be->add_bias(be, c->v, l->bv.data, n, d);
		if (!bert)
		{
			be->rope(be, c->q, n, hp->n_head, hp->head_dim, c->positions, &hp->rope);
			be->rope(be, c->k, n, hp->n_head_kv, hp->head_dim, c->positions, &hp->rope);
		}

		/* each sequence attends over all of its own rows */
		be->kv_store_slots(be, k_pool, c->kv_type, c->slots, c->k, n, d);
		be->kv_store_slots(be, v_pool, c->kv_type, c->slots, c->v, n, d);
		for (int32_t s = 0; s < b->n_seqs; s++)
		{
			const lg_fwd_seq *fs = &b->seqs[s];
			lg_attn_args *a = &c->attn_args[s];

			*a = a0;
			a->out = c->att + fs->row0 * d;
			a->q = c->q + fs->row0 * d;
			a->k_cache = k_pool;
			a->v_cache = v_pool;
			a->block_table = fs->kv->blocks;
			a->n_tok = fs->n;
			a->pos0 = fs->kv->n_pos;
			a->kv_len = fs->kv->n_pos + fs->n;
		}
		be->attention(be, c->attn_args, b->n_seqs);

		/* x = LayerNorm(att·Wo + bo + x) */
		if ((st = be->matmul(be, c->xb, &l->wo, c->att, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention output failed", il);
		if (l->bo.data)
			be->add_bias(be, c->xb, l->bo.data, n, d);
		be->add(be, c->xb, c->x, n * d);
		be->layernorm(be, c->x, c->xb, l->attn_out_norm.data, l->attn_out_norm_b.data, n, d, hp->norm_eps);

		/* feed-forward, then x = LayerNorm(f + x) */
		if (bert)
		{
			if ((st = be->matmul(be, c->hb, &l->ffn_up, c->x, n)) != LG_OK)
				return lg_error_set(err, st, "layer %d: feed-forward failed", il);
			be->add_bias(be, c->hb, l->ffn_up_b.data, n, hp->n_ff);
			be->gelu(be, c->hb, n, hp->n_ff);
		}
		else
		{
			if ((st = be->matmul(be, c->hb, &l->ffn_gate, c->x, n)) != LG_OK ||
				(st = be->matmul(be, c->hb2, &l->ffn_up, c->x, n)) != LG_OK)
				return lg_error_set(err, st, "layer %d: feed-forward failed", il);
			be->swiglu(be, c->hb, c->hb2, n, hp->n_ff);
		}
		if ((st = be->matmul(be, c->xb, &l->ffn_down, c->hb, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: feed-forward output failed", il);
		if (l->ffn_down_b.data)
			be->add_bias(be, c->xb, l->ffn_down_b.data, n, d);
		be->add(be, c->xb, c->x, n * d);
		be->layernorm(be, c->x, c->xb, l->layer_out_norm.data, l->layer_out_norm_b.data, n, d, hp->norm_eps);
	}

	/* the hidden states asked for (host memory: checked above) */
	if (out != NULL)
		for (int32_t i = 0; i < b->n_out; i++)
			memcpy(out + i * d, c->x + b->out_rows[i] * d, (size_t) d * sizeof(float));
	return LG_OK;
}
