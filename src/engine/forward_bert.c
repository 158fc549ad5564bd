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
 * and no output head).  When pooling wants some rows only (cls, last), the
 * last layer computes every row's k and v but carries on with those rows
 * alone, as llama.cpp does with its output ids.  Token types are all 0 ("sentence A"), as in
 * llama.cpp.  Sequences of a batch are packed one after another; each
 * attends over its own rows only (its own block table), which is what
 * a padded batch with an attention mask computes.
 *
 * Any backend with the encoder entries runs this (the CPU, the GPU): the
 * host arrays the ops take (positions, slots, out_rows) are all written
 * before the first op and never changed during the step, since a device
 * uploads each once; the pruned rows move with gather_rows into the other
 * activation buffer and their positions are a second array.
 */
#include "context.h"

#include <math.h>

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
	float	   *x = c->x;			/* the hidden state; swaps with xb at the prune */
	float	   *xb = c->xb;
	const int32_t *pos = c->positions;
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
	if (be->layernorm == NULL || be->gelu == NULL || be->gather_rows == NULL)
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
	/* the pruned rows' positions, for nomic-bert's RoPE of their queries */
	for (int32_t i = 0; i < b->n_out; i++)
		c->positions_out[i] = c->positions[b->out_rows[i]];

	/* x = token + token type 0 (+ position) embeddings, LayerNorm */
	if ((st = be->get_rows(be, x, &m->tok_embd, b->tokens, n)) != LG_OK)
		return lg_error_set(err, st, "embedding lookup failed");
	if (m->type_embd.data)
	{
		if ((st = be->get_rows(be, xb, &m->type_embd, &type0, 1)) != LG_OK)
			return lg_error_set(err, st, "token type embedding lookup failed");
		be->add_bias(be, x, xb, n, d);
	}
	if (bert)
	{
		if ((st = be->get_rows(be, xb, &m->pos_embd, c->positions, n)) != LG_OK)
			return lg_error_set(err, st, "position embedding lookup failed");
		be->add(be, x, xb, n * d);
	}
	be->layernorm(be, x, x, m->tok_norm.data, m->tok_norm_b.data, n, d, hp->norm_eps);

	for (int il = 0; il < hp->n_layer; il++)
	{
		const lg_layer *l = &m->layers[il];
		void	   *k_pool = lg_kv_cache_k(c->kv, il);
		void	   *v_pool = lg_kv_cache_v(c->kv, il);
		/*
		 * the last layer carries on with the rows asked for only (cls and
		 * last pooling: one per text), as llama.cpp's inp_out_ids: every
		 * row's k and v, then just those rows' queries, output and FFN
		 */
		const bool	prune = il == hp->n_layer - 1 && b->n_out > 0 && b->n_out < n;
		int32_t		nq = prune ? b->n_out : n;
		int32_t		n_att = 0;

		if (lg_context_aborted(c))
			return lg_error_set(err, LG_ERR_CANCELLED, "evaluation cancelled");

		/* k, v = x·W (+ b); nomic-bert: RoPE */
		if ((st = be->matmul(be, c->k, &l->wk, x, n)) != LG_OK ||
			(st = be->matmul(be, c->v, &l->wv, x, n)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention projection failed", il);
		if (l->bk.data)
			be->add_bias(be, c->k, l->bk.data, n, d);
		if (l->bv.data)
			be->add_bias(be, c->v, l->bv.data, n, d);
		if (!bert)
			be->rope(be, c->k, n, hp->n_head_kv, hp->head_dim, c->positions, &hp->rope);
		be->kv_store_slots(be, k_pool, c->kv_type, c->slots, c->k, n, d);
		be->kv_store_slots(be, v_pool, c->kv_type, c->slots, c->v, n, d);
		if (prune)
		{
			/* rows out_rows[i] go on as rows i (into the other buffer), with their positions */
			float	   *t = x;

			be->gather_rows(be, xb, x, b->out_rows, nq, d);
			x = xb;
			xb = t;
			pos = c->positions_out;
		}
		/* q = x·Wq (+ b) for the rows that go on */
		if ((st = be->matmul(be, c->q, &l->wq, x, nq)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention projection failed", il);
		if (l->bq.data)
			be->add_bias(be, c->q, l->bq.data, nq, d);
		if (!bert)
			be->rope(be, c->q, nq, hp->n_head, hp->head_dim, pos, &hp->rope);

		/* each sequence's queries attend over all of its own rows */
		for (int32_t s = 0, k = 0; s < b->n_seqs; s++)
		{
			const lg_fwd_seq *fs = &b->seqs[s];
			lg_attn_args *a = &c->attn_args[n_att];
			int32_t		q0 = prune ? k : fs->row0;
			int32_t		n_tok = fs->n;

			if (prune)
			{
				while (k < nq && b->out_rows[k] < fs->row0 + fs->n)
					k++;
				n_tok = k - q0;
				if (n_tok == 0)
					continue;
			}
			*a = a0;
			a->out = c->att + q0 * d;
			a->q = c->q + q0 * d;
			a->k_cache = k_pool;
			a->v_cache = v_pool;
			a->block_table = fs->kv->blocks;
			a->n_tok = n_tok;
			a->pos0 = fs->kv->n_pos;
			a->kv_len = fs->kv->n_pos + fs->n;
			n_att++;
		}
		be->attention(be, c->attn_args, n_att);

		/* x = LayerNorm(att·Wo + bo + x) */
		if ((st = be->matmul(be, xb, &l->wo, c->att, nq)) != LG_OK)
			return lg_error_set(err, st, "layer %d: attention output failed", il);
		if (l->bo.data)
			be->add_bias(be, xb, l->bo.data, nq, d);
		be->add(be, xb, x, nq * d);
		be->layernorm(be, x, xb, l->attn_out_norm.data, l->attn_out_norm_b.data, nq, d, hp->norm_eps);

		/* feed-forward, then x = LayerNorm(f + x) */
		if (bert)
		{
			if ((st = be->matmul(be, c->hb, &l->ffn_up, x, nq)) != LG_OK)
				return lg_error_set(err, st, "layer %d: feed-forward failed", il);
			be->add_bias(be, c->hb, l->ffn_up_b.data, nq, hp->n_ff);
			be->gelu(be, c->hb, nq, hp->n_ff);
		}
		else
		{
			if ((st = be->matmul(be, c->hb, &l->ffn_gate, x, nq)) != LG_OK ||
				(st = be->matmul(be, c->hb2, &l->ffn_up, x, nq)) != LG_OK)
				return lg_error_set(err, st, "layer %d: feed-forward failed", il);
			be->swiglu(be, c->hb, c->hb2, nq, hp->n_ff);
		}
		if ((st = be->matmul(be, xb, &l->ffn_down, c->hb, nq)) != LG_OK)
			return lg_error_set(err, st, "layer %d: feed-forward output failed", il);
		if (l->ffn_down_b.data)
			be->add_bias(be, xb, l->ffn_down_b.data, nq, d);
		be->add(be, xb, x, nq * d);
		/* the pruned last layer's rows are the output, in order: normed straight into it */
		be->layernorm(be, prune && out != NULL ? out : x, xb, l->layer_out_norm.data,
					  l->layer_out_norm_b.data, nq, d, hp->norm_eps);
		if (prune)
			return LG_OK;
	}

	/* the hidden states asked for, into out (backend memory, as x) */
	if (out != NULL && b->n_out > 0)
		be->gather_rows(be, out, x, b->out_rows, b->n_out, d);
	return LG_OK;
}
