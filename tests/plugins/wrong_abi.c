/*
 * wrong_abi.c — a test engine plugin built for an ABI version this engine
 * does not implement: installing and loading it must be refused.
 */
#include "lg_plugin.h"

/* logits: never called. */
static int
wrong_abi_logits(void *state, float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n_tokens,
				 int32_t n_prompt, char *err, size_t err_size)
{
	return 0;
}

static const lg_plugin_v1 wrong_abi = {
	.abi_version = LG_PLUGIN_ABI_VERSION + 98,
	.size = sizeof(lg_plugin_v1),
	.name = "wrong_abi",
	.version = "9.9",
	.logits = wrong_abi_logits,
};

/* The plugin's one export. */
const lg_plugin_v1 *
lg_plugin_init(void)
{
	return &wrong_abi;
}
