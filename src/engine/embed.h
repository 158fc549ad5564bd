/*
 * embed.h — embeddings: one vector per input sequence (or per token),
 * from encoder models (bert, nomic-bert) and from decoder models (llama,
 * qwen2) alike.
 *
 * An embedding is the model's last hidden state (after the final norm),
 * pooled over each sequence's tokens and, by default, scaled to unit L2
 * length.  A batch of sequences is evaluated together; every sequence sees
 * only its own tokens (encoders: all of them, decoders: the ones before).
 */
#ifndef LG_EMBED_H
#define LG_EMBED_H

#include "model.h"

/* How token states become one vector; the numbers are llama.cpp's. */
typedef enum lg_pooling
{
	LG_POOL_DEFAULT = -1,		/* the model's <arch>.pooling_type (decoders: last) */
	LG_POOL_NONE = 0,			/* no pooling: one vector per token */
	LG_POOL_MEAN = 1,
	LG_POOL_CLS = 2,			/* the first token's state */
	LG_POOL_LAST = 3,			/* the last token's state */
} lg_pooling;

/* "none", "mean", "cls", "last"; NULL for anything else. */
const char *lg_pooling_name(lg_pooling p);
/* Parse a name; LG_ERR_ARG (naming the choices) for anything else. */
lg_status	lg_pooling_parse(const char *name, lg_pooling *out, lg_error *err);

/* The pooling a model asks for (its metadata; LG_POOL_LAST for decoders without it). */
lg_pooling	lg_model_pooling(const lg_model *m);
/* True for models that only embed (bidirectional attention, no output head). */
bool		lg_model_is_encoder(const lg_model *m);
/* Floats per embedding. */
int32_t		lg_model_n_embd(const lg_model *m);

/*
 * Embed n_seqs token sequences (tokens[i] has n_tokens[i] > 0 tokens, each
 * at most lg_context_n_ctx(c)); LG_POOL_DEFAULT means lg_model_pooling.
 * out holds n_seqs * n_embd floats, or with LG_POOL_NONE sum(n_tokens) *
 * n_embd (the sequences' tokens in order).  normalize: scale every vector
 * to unit L2 length (a zero vector stays zero).  Leaves the context's KV
 * cache as it was.  LG_ERR_RANGE when a sequence is too long.
 */
lg_status	lg_context_embed(lg_context *c, const lg_token *const *tokens,
							 const int32_t *n_tokens, int32_t n_seqs, lg_pooling pool,
							 bool normalize, float *out, lg_error *err);

#endif							/* LG_EMBED_H */
