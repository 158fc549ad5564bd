/*
 * fuzz_chat.c — libFuzzer target for the parse of a model's answer into an
 * OpenAI message (chat.c): whatever the model wrote.
 *
 * Input: one byte choosing the tool-call format, then the answer.  The
 * message must always be valid JSON with role "assistant"; every call's
 * arguments must be a JSON string that itself holds a JSON object; with no
 * calls, the content is the whole answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "json_value.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lg_chat_format f;
	const char *text;
	size_t		len;
	lg_buf		out;
	lg_error	err;
	lg_json_node *msg;
	int			n_calls = -1;

	if (size < 1)
		return 0;
	f = (lg_chat_format) (data[0] % LG_CHAT_N_FORMATS);
	text = (const char *) data + 1;
	len = size - 1;
	lg_buf_init(&out);
	if (lg_chat_parse_output(f, text, len, &out, &n_calls, &err) != LG_OK)
	{
		lg_buf_free(&out);
		return 0;				/* out of memory only */
	}
	msg = lg_json_parse(out.data, out.len, &err);
	CHECK(msg != NULL);
	CHECK(strcmp(lg_json_get_str(msg, "role"), "assistant") == 0);
	if (n_calls == 0)
		CHECK(lg_json_get(msg, "tool_calls") == NULL);
	for (int i = 0; i < n_calls; i++)
	{
		const lg_json_node *call = lg_json_at(lg_json_get(msg, "tool_calls"), (size_t) i);
		const char *args = lg_json_get_str(lg_json_get(call, "function"), "arguments");
		lg_json_node *a;

		CHECK(args != NULL);
		a = lg_json_parse(args, strlen(args), &err);
		CHECK(a != NULL && a->kind == LG_JSON_OBJECT);
		lg_json_node_free(a);
	}
	lg_json_node_free(msg);
	lg_buf_free(&out);
	return 0;
}
