/*
 * chat_tools.c — tools shown to a model whose chat template does not show
 * them (Gemma, Phi, plain ChatML: the generic format): described, with the
 * generic call form, in the first message (see chat.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_impl.h"
#include "json_value.h"

/* Every tool's name appears in the prompt. */
bool
lg_chat_prompt_shows_tools(const char *prompt, size_t len, const char *tools, size_t tools_len)
{
	lg_error	err;
	lg_json_node *tl = lg_json_parse(tools, tools_len, &err);
	bool		all = true;

	if (tl == NULL || tl->kind != LG_JSON_ARRAY)
	{
		lg_json_node_free(tl);
		return true;			/* nothing we could add */
	}
	for (size_t i = 0; all && i < tl->n; i++)
	{
		const char *name = lg_json_get_str(lg_json_get(tl->items[i], "function"), "name");

		all = name == NULL || memmem(prompt, len, name, strlen(name)) != NULL;
	}
	lg_json_node_free(tl);
	return all;
}

/* The messages with the tools described in the first one (see chat.h). */
lg_status
lg_chat_messages_with_tools(const char *messages, size_t len, const char *tools, size_t tools_len,
							lg_buf *out, lg_error *err)
{
	lg_json_node *msgs = lg_json_parse(messages, len, err);
	lg_json_node *tl = NULL;
	const lg_json_node *first;
	const lg_json_node *content;
	const char *role;
	lg_buf		note;
	bool		as_system;
	bool		ok = true;
	lg_status	st = LG_OK;

	lg_buf_init(&note);
	if (msgs == NULL || msgs->kind != LG_JSON_ARRAY || msgs->n == 0)
	{
		st = lg_error_set(err, LG_ERR_ARG, "messages must be a non-empty JSON array");
		goto done;
	}
	if ((tl = lg_json_parse(tools, tools_len, err)) == NULL || tl->kind != LG_JSON_ARRAY)
	{
		st = lg_error_set(err, LG_ERR_ARG, "tools must be a JSON array");
		goto done;
	}
	first = msgs->items[0];
	content = lg_json_get(first, "content");
	role = lg_json_get_str(first, "role");
	if (content == NULL || content->kind != LG_JSON_STRING || role == NULL)
	{
		st = lg_error_set(err, LG_ERR_ARG, "the first message needs a role and a text content");
		goto done;
	}
	as_system = strcmp(role, "system") == 0;

	/* the instruction, in the generic format's words */
	ok = lg_buf_appendf(&note, "You can call these tools:\n");
	for (size_t i = 0; ok && i < tl->n; i++)
	{
		const lg_json_node *fn = lg_json_get(tl->items[i], "function");
		const char *name = lg_json_get_str(fn, "name");
		const char *desc = lg_json_get_str(fn, "description");
		const lg_json_node *params = lg_json_get(fn, "parameters");

		if (name == NULL)
			continue;
		ok = lg_buf_appendf(&note, "- %s", name) &&
			(desc == NULL || lg_buf_appendf(&note, ": %s", desc)) &&
			append_lit(&note, "\n  arguments (JSON Schema): ") &&
			(params ? lg_json_write(&note, params, 0) : append_lit(&note, "{}")) &&
			append_lit(&note, "\n");
	}
	ok = ok && lg_buf_appendf(&note, "To call a tool, answer with only this JSON and nothing else: "
							  "{\"tool_call\": {\"name\": <tool name>, \"arguments\": <arguments object>}}. "
							  "Otherwise answer in plain text.");

	/* the array again, the first message's content replaced */
	ok = ok && append_lit(out, "[{");
	for (size_t m = 0; ok && m < first->n; m++)
	{
		ok = (m == 0 || append_lit(out, ",")) &&
			lg_buf_append_json_str(out, first->keys[m], first->key_lens[m]) && append_lit(out, ":");
		if (ok && strcmp(first->keys[m], "content") == 0)
		{
			lg_buf		text;

			lg_buf_init(&text);
			if (as_system)
				ok = lg_buf_append(&text, content->str, content->str_len) &&
					append_lit(&text, "\n\n") && lg_buf_append(&text, note.data, note.len);
			else
				ok = lg_buf_append(&text, note.data, note.len) && append_lit(&text, "\n\n") &&
					lg_buf_append(&text, content->str, content->str_len);
			ok = ok && lg_buf_append_json_str(out, text.data, text.len);
			lg_buf_free(&text);
		}
		else if (ok)
			ok = lg_json_write(out, first->items[m], 0);
	}
	ok = ok && append_lit(out, "}");
	for (size_t i = 1; ok && i < msgs->n; i++)
		ok = append_lit(out, ",") && lg_json_write(out, msgs->items[i], 0);
	ok = ok && append_lit(out, "]");
	if (!ok)
		st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");

done:
	lg_buf_free(&note);
	lg_json_node_free(msgs);
	lg_json_node_free(tl);
	return st;
}
