/*
 * odd_abi.c — a test engine plugin whose ABI version does not fit a signed
 * int (0xffffffff): inspecting it must report status abi, not fail on the
 * number.
 */
#include "lg_plugin.h"

/* logits: never called. */
static int
odd_abi_logits(void *state, float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n_tokens,
			   int32_t n_prompt, char *err, size_t err_size)
{
	return 0;
}

static const lg_plugin_v1 odd_abi = {
	.abi_version = 0xffffffffu,
	.size = sizeof(lg_plugin_v1),
	.name = "odd_abi",
	.version = "1.0",
	.logits = odd_abi_logits,
};

/* The plugin's one export. */
const lg_plugin_v1 *
lg_plugin_init(void)
{
	return &odd_abi;
}
