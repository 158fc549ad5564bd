/*
 * context.h — the inside of an lg_context, shared by context.c and the
 * forward passes (forward_*.c).  Not part of the public API.
 */
#ifndef LG_CONTEXT_H
#define LG_CONTEXT_H

#include "model.h"

struct lg_context
{
	const lg_model *model;
	lg_backend *be;
	bool		own_be;
	int32_t		n_ctx;			/* positions the KV cache holds */
	int32_t		n_batch;		/* rows of the scratch buffers */
	int32_t		pos;			/* tokens already in the cache */
	lg_kv_type	kv_type;
	void	  **k_cache;		/* [n_layer] -> [n_ctx][n_head_kv*head_dim] */
	void	  **v_cache;
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
	int32_t    *positions;		/* [n_batch] */
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
 * Run n (<= n_batch) tokens at positions pos..pos+n-1 through the model,
 * writing their K/V to the cache.  logits: NULL, the last row's n_vocab
 * logits (all false) or n rows (all true).  Does not advance pos.
 */
typedef lg_status (*lg_forward_fn) (lg_context *c, const lg_token *tokens, int32_t n,
									float *logits, bool all, lg_error *err);

lg_status	lg_forward_llama(lg_context *c, const lg_token *tokens, int32_t n,
							 float *logits, bool all, lg_error *err);

#endif							/* LG_CONTEXT_H */
