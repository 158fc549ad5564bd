/*
 * embed.c — embeddings (embed.h).
 *
 * Placeholder until the encoder forward pass lands: every entry reports
 * LG_ERR_UNSUPPORTED, so callers can be written against the interface.
 */
#include "embed.h"

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
	(void) m;
	return LG_POOL_LAST;
}

bool
lg_model_is_encoder(const lg_model *m)
{
	(void) m;
	return false;
}

int32_t
lg_model_n_embd(const lg_model *m)
{
	return (int32_t) m->hp.n_embd;
}

lg_status
lg_context_embed(lg_context *c, const lg_token *const *tokens, const int32_t *n_tokens,
				 int32_t n_seqs, lg_pooling pool, bool normalize, float *out, lg_error *err)
{
	(void) c, (void) tokens, (void) n_tokens, (void) n_seqs, (void) pool, (void) normalize, (void) out;
	return lg_error_set(err, LG_ERR_UNSUPPORTED, "embeddings are not implemented yet");
}
