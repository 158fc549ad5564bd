/*
 * fail.c — a test engine plugin whose hooks report errors: request_begin
 * refuses options {"refuse": ...}, and the logits hook fails the request at
 * the third generated token.  The engine must answer ERROR status=plugin and
 * go on serving.
 */
#include "lg_plugin.h"

#include <stdio.h>
#include <string.h>

/* request_begin: refuse when the options say so. */
static int
fail_begin(const lg_plugin_request *req, void **state, char *err, size_t err_size)
{
	if (strstr(req->options, "\"refuse\"") != NULL)
	{
		snprintf(err, err_size, "options refused as asked");
		return 1;
	}
	*state = NULL;
	return 0;
}

/* logits: fail at the third generated token. */
static int
fail_logits(void *state, float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n_tokens,
			int32_t n_prompt, char *err, size_t err_size)
{
	if (n_tokens - n_prompt >= 2)
	{
		snprintf(err, err_size, "failed after %d tokens as designed", (int) (n_tokens - n_prompt));
		return 1;
	}
	return 0;
}

static const lg_plugin_v1 fail = {
	.abi_version = LG_PLUGIN_ABI_VERSION,
	.size = sizeof(lg_plugin_v1),
	.name = "fail",
	.version = "0.1",
	.request_begin = fail_begin,
	.logits = fail_logits,
};

/* The plugin's one export. */
const lg_plugin_v1 *
lg_plugin_init(void)
{
	return &fail;
}
