/*
 * context.h — the inside of an lg_context, shared by context.c and the
 * forward passes (forward_*.c).  Not part of the public API.
 */
#ifndef LG_CONTEXT_H
#define LG_CONTEXT_H

#include "kv_cache.h"
#include "model.h"

/* One sequence's rows of a forward batch (its rows are contiguous). */
typedef struct lg_fwd_seq
{
	lg_kv_seq  *kv;				/* block table; the rows go to positions kv->n_pos.. */
	int32_t		row0;			/* first row in the batch */
	int32_t		n;				/* rows */
} lg_fwd_seq;

/* What one forward call computes: n tokens of n_seqs sequences. */
typedef struct lg_fwd_batch
{
	const lg_token *tokens;		/* [n] */
	int32_t		n;				/* <= n_batch */
	const lg_fwd_seq *seqs;		/* [n_seqs], rows in order */
	int32_t		n_seqs;
	const int32_t *out_rows;	/* [n_out] rows whose logits are wanted, increasing */
	int32_t		n_out;
	/*
	 * embeddings: the out rows' last hidden states (after the final norm,
	 * n_out rows of n_embd) instead of their logits; encoders attend both
	 * ways (embed.c)
	 */
	bool		hidden;
} lg_fwd_batch;

struct lg_context
{
	const lg_model *model;
	lg_backend *be;
	bool		own_be;
	int32_t		n_ctx;			/* positions one sequence may hold */
	int32_t		n_batch;		/* rows of the scratch buffers */
	lg_kv_type	kv_type;
	lg_kv_cache *kv;			/* paged K/V of every layer */
	bool		own_kv;			/* a private cache: seq is its only sequence */
	lg_kv_seq	seq;			/* lg_context_eval's sequence (own_kv only) */
	/* scratch, n_batch rows each */
	float	   *x;				/* [n_batch][n_embd] residual stream */
	float	   *xb;				/* [n_batch][n_embd] normed input / block output */
	float	   *q;				/* [n_batch][n_head*head_dim] */
	float	   *k;				/* [n_batch][n_head_kv*head_dim] */
	float	   *v;				/* [n_batch][n_head_kv*head_dim] */
	float	   *att;			/* [n_batch][n_head*head_dim] attention output */
	float	   *hb;				/* [n_batch][n_ff] gate */
	float	   *hb2;			/* [n_batch][n_ff] up */
	float	   *attn_scratch;
	float	   *logits_buf;		/* backend memory for logits (device backends) */
	size_t		logits_cap;		/* floats logits_buf holds */
	const void *mapped_weights;	/* the region map_weights was given, or NULL */
	int32_t    *slots;			/* [n_batch] each row's KV pool row */
	int32_t    *positions;		/* [n_batch] each row's position in its sequence */
	int32_t    *positions_out;	/* [n_batch] positions of an encoder's pruned rows (forward_bert.c) */
	lg_token   *btokens;		/* [n_batch] a batch's tokens, gathered */
	lg_fwd_seq *bseqs;			/* [n_batch] a batch's sequences */
	int32_t    *out_rows;		/* [n_batch] rows whose logits are wanted */
	lg_attn_args *attn_args;	/* [n_batch] one layer's attention, per sequence */
	/* embeddings' scratch (embed.c), made on first use */
	lg_kv_cache *emb_kv;		/* F32, one position per block: rows laid out at will */
	int32_t		emb_rows;		/* positions emb_kv holds */
	int32_t    *emb_blocks;		/* [emb_rows] 0, 1, 2, ...: block tables are slices */
	float	   *emb_out;		/* [n_batch][n_embd] host: a step's hidden states */
	lg_kv_seq  *emb_seqs;		/* [n_batch] a step's block tables */
	lg_abort_fn abort_fn;		/* polled between layers; may be NULL */
	void	   *abort_arg;
};

/* True when the caller asked to stop (checked between layers and chunks). */
static inline bool
lg_context_aborted(const lg_context *c)
{
	return c->abort_fn != NULL && c->abort_fn(c->abort_arg);
}

/*
 * Run a batch through the model: each sequence's rows at positions
 * kv->n_pos.., writing their K/V to its blocks (reserved by the caller).
 * logits: NULL or n_out rows of n_vocab, for b->out_rows in order.  Does
 * not advance any n_pos.
 */
typedef lg_status (*lg_forward_fn) (lg_context *c, const lg_fwd_batch *b,
									float *logits, lg_error *err);

/*
 * Run forward over b on c's backend: step_begin, forward, step_end, then
 * the logits (b->n_out rows) copied to the host array logits when given.
 */
lg_status	lg_context_run(lg_context *c, const lg_fwd_batch *b, float *logits, lg_error *err);
/* The same, with params given: ids[k] = a token drawn on the device from output row k. */
lg_status	lg_context_run_sample(lg_context *c, const lg_fwd_batch *b, float *logits,
								  const lg_device_sample *params, lg_token *ids, lg_error *err);

/* Free the embedding scratch (embed.c). */
void		lg_embed_free_scratch(lg_context *c);

lg_status	lg_forward_llama(lg_context *c, const lg_fwd_batch *b, float *logits, lg_error *err);
lg_status	lg_forward_bert(lg_context *c, const lg_fwd_batch *b, float *out, lg_error *err);

#endif							/* LG_CONTEXT_H */
