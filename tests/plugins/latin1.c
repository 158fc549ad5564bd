/*
 * latin1.c — a test engine plugin whose version and description are not
 * UTF-8 (Latin-1 bytes): what the extension stores of them must still be
 * valid text.
 */
#include "lg_plugin.h"

/* logits: leaves them as they are. */
static int
latin1_logits(void *state, float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n_tokens,
			  int32_t n_prompt, char *err, size_t err_size)
{
	return 0;
}

static const lg_plugin_v1 latin1 = {
	.abi_version = LG_PLUGIN_ABI_VERSION,
	.size = sizeof(lg_plugin_v1),
	.name = "latin1",
	.version = "1.0\xe9",
	.description = "caf\xe9 cr\xe8me \xff",
	.logits = latin1_logits,
};

/* The plugin's one export. */
const lg_plugin_v1 *
lg_plugin_init(void)
{
	return &latin1;
}
