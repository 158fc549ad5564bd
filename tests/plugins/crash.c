/*
 * crash.c — a test engine plugin that crashes the engine (SIGSEGV) in its
 * logits hook, so tests can check that only the engine dies and that the
 * supervisor disables the plugin after repeated crashes (tests/tap).
 */
#include "lg_plugin.h"

#include <signal.h>

/* logits: die the way a buggy plugin would. */
static int
crash_logits(void *state, float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n_tokens,
			 int32_t n_prompt, char *err, size_t err_size)
{
	raise(SIGSEGV);
	return 0;
}

static const lg_plugin_v1 crash = {
	.abi_version = LG_PLUGIN_ABI_VERSION,
	.size = sizeof(lg_plugin_v1),
	.name = "crash",
	.version = "0.0",
	.description = "crashes the engine at the first token (tests only)",
	.logits = crash_logits,
};

/* The plugin's one export. */
const lg_plugin_v1 *
lg_plugin_init(void)
{
	return &crash;
}
