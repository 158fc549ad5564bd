/*
 * fuzz_jinja.c — libFuzzer target for the chat-template interpreter.
 *
 * The input is a template.  It is parsed, and when it parses it is rendered
 * for a fixed conversation with a tool call, with tools or without (the
 * input's length picks, so both paths are fuzzed at the cost of one): the
 * limits must stop every loop, recursion and blow-up with an error (no
 * crash, no hang, no sanitizer report), and rendering twice must give the
 * same result (no state leaks between renders).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static const char messages[] =
	"[{\"role\":\"system\",\"content\":\"You are helpful.\"},"
	"{\"role\":\"user\",\"content\":\"Weather in Paris? \\u00e9\\ud83d\\ude00\"},"
	"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call12345\",\"type\":\"function\","
	"\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"days\":2}}}]},"
	"{\"role\":\"tool\",\"tool_call_id\":\"call12345\",\"content\":\"sunny, 21.5\"},"
	"{\"role\":\"assistant\",\"content\":\"It is sunny.\"}]";
static const char tools[] =
	"[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","
	"\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
	"\"days\":{\"type\":\"integer\"}},\"required\":[\"city\"]}}}]";

/* Render once; the status and (when OK) the text in out. */
static lg_status
render(const lg_chat_template *t, bool with_tools, lg_buf *out, lg_error *err)
{
	lg_chat_render_params p;

	memset(&p, 0, sizeof(p));
	p.messages_json = messages;
	p.messages_len = sizeof(messages) - 1;
	p.tools_json = with_tools ? tools : NULL;
	p.tools_len = with_tools ? sizeof(tools) - 1 : 0;
	p.add_generation_prompt = true;
	p.bos_token = "<s>";
	p.eos_token = "</s>";
	p.now_unix = 1721995200;
	return lg_chat_template_render(t, &p, out, err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lg_error	err;
	lg_chat_template *t = lg_chat_template_parse((const char *) data, size, &err);

	if (t == NULL)
	{
		CHECK(err.status != LG_OK && err.msg[0] != '\0');
		return 0;
	}
	{
		int			k = (int) (size & 1);

		lg_buf		a,
					b;
		lg_status	sa,
					sb;

		lg_buf_init(&a);
		lg_buf_init(&b);
		sa = render(t, k == 1, &a, &err);
		CHECK(sa == LG_OK || err.msg[0] != '\0');
		CHECK(a.len <= LG_CHAT_MAX_OUTPUT);
		sb = render(t, k == 1, &b, &err);
		CHECK(sa == sb);
		CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
		lg_buf_free(&a);
		lg_buf_free(&b);
	}
	lg_chat_template_free(t);
	return 0;
}
