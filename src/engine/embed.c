/*
 * embed.c — embeddings (embed.h): batches of sequences through the
 * forward pass, their last hidden states pooled and normalised.
 *
 * Sequences are packed, not padded: a step holds the tokens of as many
 * whole sequences as fit in n_batch rows, one after another, and
 * attention sees each sequence apart (its own block table), which is what
 * an attention mask over a padded batch computes, without the padding's
 * work.  A decoder sequence longer than n_batch goes alone, in chunks,
 * like a prompt; an encoder sequence must fit one step (its attention
 * looks both ways), so encoder contexts have n_batch >= n_ctx.
 *
 * The K/V of an embedding go to the context's own scratch cache (F32,
 * one position per block, so a sequence's rows are any contiguous slice
 * of it), never to the cache generation uses: embedding leaves the
 * context's sequence as it was.
 */
#include "embed.h"
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const pooling_names[] = {"none", "mean", "cls", "last"};

const char *
lg_pooling_name(lg_pooling p)
{
	return p >= LG_POOL_NONE && p <= LG_POOL_LAST ? pooling_names[p] : NULL;
}

lg_status
lg_pooling_parse(const char *name, lg_pooling *out, lg_error *err)
{
	for (int i = LG_POOL_NONE; i <= LG_POOL_LAST; i++)
		if (strcmp(name, pooling_names[i]) == 0)
		{
			*out = (lg_pooling) i;
			return LG_OK;
		}
	return lg_error_set(err, LG_ERR_ARG, "unknown pooling \"%s\" (none, mean, cls or last)", name);
}

lg_pooling
lg_model_pooling(const lg_model *m)
{
	if (m->hp.pooling >= LG_POOL_NONE && m->hp.pooling <= LG_POOL_LAST)
		return (lg_pooling) m->hp.pooling;
	/* llama.cpp's default for encoders without the key is mean; decoders: last */
	return m->hp.encoder ? LG_POOL_MEAN : LG_POOL_LAST;
}

bool
lg_model_is_encoder(const lg_model *m)
{
	return m->hp.encoder;
}

int32_t
lg_model_n_embd(const lg_model *m)
{
	return (int32_t) m->hp.n_embd;
}

void
lg_embed_free_scratch(lg_context *c)
{
	if (c->emb_kv)
		lg_kv_cache_free(c->emb_kv);
	c->emb_kv = NULL;
	c->emb_rows = 0;
	free(c->emb_blocks);
	c->emb_blocks = NULL;
	free(c->emb_out);
	c->emb_out = NULL;
	free(c->emb_seqs);
	c->emb_seqs = NULL;
}

/* Make the scratch cache hold at least rows positions (and the output rows). */
static lg_status
embed_reserve(lg_context *c, int32_t rows, lg_error *err)
{
	lg_kv_cache_params kp = {
		.block_size = 1,
		.n_blocks = rows,
		.type = LG_KV_F32,
		.backend = lg_backend_is_host(c->be) ? NULL : c->be,
	};

	if (c->emb_out == NULL)
	{
		c->emb_out = malloc((size_t) c->n_batch * c->model->hp.n_embd * sizeof(float));
		c->emb_seqs = malloc((size_t) c->n_batch * sizeof(lg_kv_seq));
		if (c->emb_out == NULL || c->emb_seqs == NULL)
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory for embedding output");
	}
	if (rows <= c->emb_rows)
		return LG_OK;
	if (c->emb_kv)
		lg_kv_cache_free(c->emb_kv);
	free(c->emb_blocks);
	c->emb_rows = 0;
	c->emb_blocks = malloc((size_t) rows * sizeof(int32_t));
	c->emb_kv = c->emb_blocks ? lg_kv_cache_new(c->model, &kp, err) : NULL;
	if (c->emb_kv == NULL)
	{
		free(c->emb_blocks);
		c->emb_blocks = NULL;
		if (err && err->status == LG_OK)
			lg_error_set(err, LG_ERR_NOMEM, "out of memory for embedding scratch");
		return err ? err->status : LG_ERR_NOMEM;
	}
	for (int32_t i = 0; i < rows; i++)
		c->emb_blocks[i] = i;
	c->emb_rows = rows;
	return LG_OK;
}

/* Scale v[d] to unit L2 length (a zero vector stays zero). */
static void
l2_normalize(float *v, int64_t d)
{
	double		ss = 0.0;

	for (int64_t i = 0; i < d; i++)
		ss += (double) v[i] * v[i];
	if (ss > 0.0)
	{
		const float inv = (float) (1.0 / sqrt(ss));

		for (int64_t i = 0; i < d; i++)
			v[i] *= inv;
	}
}

/* Check every sequence before computing anything. */
static lg_status
embed_check(const lg_context *c, const lg_token *const *tokens, const int32_t *n_tokens,
			int32_t n_seqs, lg_error *err)
{
	const lg_hparams *hp = &c->model->hp;

	if (tokens == NULL || n_tokens == NULL || n_seqs <= 0)
		return lg_error_set(err, LG_ERR_ARG, "no sequences to embed");
	for (int32_t s = 0; s < n_seqs; s++)
	{
		if (n_tokens[s] <= 0 || tokens[s] == NULL)
			return lg_error_set(err, LG_ERR_ARG, "sequence %d is empty", s);
		if (n_tokens[s] > c->n_ctx)
			return lg_error_set(err, LG_ERR_RANGE, "sequence %d has %d tokens, more than the context's %d",
								s, n_tokens[s], c->n_ctx);
		if (hp->encoder && n_tokens[s] > c->n_batch)
			return lg_error_set(err, LG_ERR_RANGE,
								"sequence %d has %d tokens, more than an encoder step's %d (n_batch)",
								s, n_tokens[s], c->n_batch);
		for (int32_t i = 0; i < n_tokens[s]; i++)
			if (tokens[s][i] < 0 || tokens[s][i] >= hp->n_vocab)
				return lg_error_set(err, LG_ERR_RANGE,
									"sequence %d: token id %d is out of range (vocabulary has %d tokens)",
									s, tokens[s][i], hp->n_vocab);
	}
	return LG_OK;
}

/*
 * One step's sequences: seqs [s0, s1) whole, or (s1 == s0 + 1 and done >
 * 0 or chunk < length) a chunk of one decoder sequence from position done.
 */
typedef struct embed_step
{
	int32_t		s0, s1;
	int32_t		done;			/* positions of s0 already evaluated (chunked) */
	int32_t		chunk;			/* rows of s0 in this step (chunked) */
} embed_step;

/* Run one step and pool its hidden states into out. */
static lg_status
embed_step_run(lg_context *c, const embed_step *es, const lg_token *const *tokens,
			   const int32_t *n_tokens, const int64_t *tok_off, lg_pooling pool,
			   float *out, lg_error *err)
{
	const int64_t d = c->model->hp.n_embd;
	const bool	chunked = es->s1 == es->s0 + 1 && (es->done > 0 || es->chunk < n_tokens[es->s0]);
	lg_fwd_batch b = {.tokens = c->btokens, .seqs = c->bseqs, .out_rows = c->out_rows, .hidden = true};
	lg_kv_cache *kv_save = c->kv;
	lg_kv_type	type_save = c->kv_type;
	lg_status	st;
	int32_t		k;

	b.n_seqs = es->s1 - es->s0;
	for (int32_t s = es->s0; s < es->s1; s++)
	{
		const int32_t from = chunked ? es->done : 0;
		const int32_t n = chunked ? es->chunk : n_tokens[s];
		lg_fwd_seq *fs = &c->bseqs[s - es->s0];

		memcpy(c->btokens + b.n, tokens[s] + from, (size_t) n * sizeof(lg_token));
		fs->row0 = b.n;
		fs->n = n;
		fs->kv = NULL;
		/* the rows wanted: all (mean, none), the first (cls) or the last (last) */
		if (pool == LG_POOL_MEAN || pool == LG_POOL_NONE)
			for (int32_t i = 0; i < n; i++)
				c->out_rows[b.n_out++] = b.n + i;
		else if (pool == LG_POOL_CLS && from == 0)
			c->out_rows[b.n_out++] = b.n;
		else if (pool == LG_POOL_LAST && from + n == n_tokens[s])
			c->out_rows[b.n_out++] = b.n + n - 1;
		b.n += n;
	}
	/* block tables: slices of 0, 1, 2, ...; a chunked sequence's positions are its rows */
	for (int32_t i = 0; i < b.n_seqs; i++)
	{
		lg_fwd_seq *fs = &c->bseqs[i];
		lg_kv_seq  *kv = &c->emb_seqs[i];

		memset(kv, 0, sizeof(lg_kv_seq));
		kv->blocks = c->emb_blocks + (chunked ? 0 : fs->row0);
		kv->n_blocks = chunked ? n_tokens[es->s0] : fs->n;
		kv->cap = kv->n_blocks;
		kv->n_pos = chunked ? es->done : 0;
		fs->kv = kv;
	}
	c->kv = c->emb_kv;
	c->kv_type = LG_KV_F32;
	st = lg_context_run(c, &b, b.n_out > 0 ? c->emb_out : NULL, err);
	c->kv = kv_save;
	c->kv_type = type_save;
	if (st != LG_OK)
		return st;

	/* pool: rows come back in out_rows order, sequence by sequence */
	k = 0;
	for (int32_t s = es->s0; s < es->s1; s++)
	{
		const int32_t from = chunked ? es->done : 0;
		const int32_t n = chunked ? es->chunk : n_tokens[s];
		float	   *o = out + (pool == LG_POOL_NONE ? tok_off[s] + from : s) * d;

		if (pool == LG_POOL_NONE)
		{
			memcpy(o, c->emb_out + (int64_t) k * d, (size_t) (n * d) * sizeof(float));
			k += n;
		}
		else if (pool == LG_POOL_MEAN)
		{
			for (int32_t i = 0; i < n; i++, k++)
				for (int64_t j = 0; j < d; j++)
					o[j] += c->emb_out[(int64_t) k * d + j];
			if (from + n == n_tokens[s])
				for (int64_t j = 0; j < d; j++)
					o[j] /= (float) n_tokens[s];
		}
		else if ((pool == LG_POOL_CLS && from == 0) || (pool == LG_POOL_LAST && from + n == n_tokens[s]))
		{
			memcpy(o, c->emb_out + (int64_t) k * d, (size_t) d * sizeof(float));
			k++;
		}
	}
	return LG_OK;
}

lg_status
lg_context_embed(lg_context *c, const lg_token *const *tokens, const int32_t *n_tokens,
				 int32_t n_seqs, lg_pooling pool, bool normalize, float *out, lg_error *err)
{
	const lg_model *m = c->model;
	const int64_t d = m->hp.n_embd;
	int64_t    *tok_off;
	int64_t		total = 0;
	int32_t		rows = 0;
	lg_status	st;

	if (out == NULL)
		return lg_error_set(err, LG_ERR_ARG, "no room for the embeddings");
	if ((st = embed_check(c, tokens, n_tokens, n_seqs, err)) != LG_OK)
		return st;
	if (pool == LG_POOL_DEFAULT)
		pool = lg_model_pooling(m);
	if (lg_pooling_name(pool) == NULL)
		return lg_error_set(err, LG_ERR_ARG, "unknown pooling %d", (int) pool);

	tok_off = malloc((size_t) n_seqs * sizeof(int64_t));
	if (tok_off == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	for (int32_t s = 0; s < n_seqs; s++)
	{
		tok_off[s] = total;
		total += n_tokens[s];
		if (n_tokens[s] > rows)
			rows = n_tokens[s];
	}
	if (rows < c->n_batch)
		rows = total < c->n_batch ? (int32_t) total : c->n_batch;
	if ((st = embed_reserve(c, rows, err)) != LG_OK)
		goto done;
	memset(out, 0, (size_t) ((pool == LG_POOL_NONE ? total : n_seqs) * d) * sizeof(float));

	for (int32_t s = 0; s < n_seqs;)
	{
		embed_step	es = {.s0 = s, .s1 = s};

		if (n_tokens[s] > c->n_batch)
		{
			/* a long decoder sequence: alone, chunk after chunk, like a prompt */
			for (es.done = 0; es.done < n_tokens[s]; es.done += es.chunk)
			{
				es.s1 = s + 1;
				es.chunk = n_tokens[s] - es.done < c->n_batch ? n_tokens[s] - es.done : c->n_batch;
				if ((st = embed_step_run(c, &es, tokens, n_tokens, tok_off, pool, out, err)) != LG_OK)
					goto done;
			}
			s++;
			continue;
		}
		/* whole sequences while they fit */
		for (int32_t used = 0; es.s1 < n_seqs && used + n_tokens[es.s1] <= c->n_batch; es.s1++)
			used += n_tokens[es.s1];
		es.chunk = n_tokens[s];
		if ((st = embed_step_run(c, &es, tokens, n_tokens, tok_off, pool, out, err)) != LG_OK)
			goto done;
		s = es.s1;
	}
	if (normalize)
		for (int64_t i = 0; i < (pool == LG_POOL_NONE ? total : n_seqs); i++)
			l2_normalize(out + i * d, d);
	st = LG_OK;

done:
	free(tok_off);
	return st;
}
