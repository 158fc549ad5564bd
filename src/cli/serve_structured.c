/*
 * serve_structured.c — the GENERATE fields of structured output and chat
 * (docs/protocol.md): `grammar`, `json_schema` (`json_compact`,
 * `json_strict`), and `messages` with `tools`, `tool_choice`,
 * `response_format` and `chat_template`.
 *
 * A chat request's prompt is its messages rendered with the model's chat
 * template (or the request's), special tokens parsed.  Its constraint is
 * built from the tools and the tool-call format the template teaches
 * (chat.h).  Every constraint is compiled once and kept in the grammar
 * cache (serve_grammar.c) under its kind, options and text; the model's
 * grammar vocabulary is built by the first request that needs it.
 */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_template.h"
#include "grammar.h"
#include "json_schema.h"
#include "json_value.h"

/*
 * The location in an error message from the compilers, for the detail
 * field: "line L, column C" of a GBNF error, or the JSON Pointer "#/…"
 * of a schema error.
 */
static void
error_location(const char *msg, char *out, size_t size)
{
	const char *p;

	out[0] = '\0';
	if (strncmp(msg, "line ", 5) == 0 && (p = strchr(msg, ':')) != NULL)
		snprintf(out, size, "%.*s", (int) (p - msg), msg);
	else if ((p = strstr(msg, " at #")) != NULL)
	{
		size_t		n = strcspn(p + 4, " ,;:");

		snprintf(out, size, "%.*s", (int) n, p + 4);
	}
}

/* Send the error of compiling what (a grammar, a schema, the tools) with its location. */
static void
send_compile_error(serve_request *r, const lg_error *err, const char *what)
{
	char		detail[256];
	const char *status;
	const char *hint = NULL;

	error_location(err->msg, detail, sizeof(detail));
	switch (err->status)
	{
		case LG_ERR_FORMAT:
			status = LG_WIRE_GRAMMAR;
			hint = strcmp(what, "grammar") == 0 ?
				"Grammars use llama.cpp's GBNF syntax, with the start rule \"root\"." :
				"Check the schema against JSON Schema (draft 2020-12).";
			break;
		case LG_ERR_UNSUPPORTED:
			status = LG_WIRE_UNSUPPORTED;
			hint = "The engine cannot enforce this keyword; remove it from the schema or check it after generation.";
			break;
		case LG_ERR_ARG:
			status = LG_WIRE_ARG;
			break;
		case LG_ERR_NOMEM:
			status = LG_WIRE_NOMEM;
			break;
		default:
			status = LG_WIRE_INTERNAL;
			break;
	}
	serve_send_error_detail(r, status, detail[0] ? detail : NULL, hint, "invalid %s: %s", what,
							err->msg[0] ? err->msg : lg_status_name(err->status));
}

/* A 0/1 field; false (error sent) when it is something else. */
static bool
field_flag(serve_request *r, const char *key, bool *out)
{
	const char *v = serve_fields_get(&r->fields, key);

	*out = false;
	if (v == NULL || strcmp(v, "0") == 0)
		return true;
	if (strcmp(v, "1") == 0)
	{
		*out = true;
		return true;
	}
	serve_send_error(r, LG_WIRE_ARG, "invalid value for %s: \"%s\" (0 or 1)", key, v);
	return false;
}

/* The template a chat request renders: the request's chat_template, else the model's. */
static const char *
template_source(serve_request *r, serve_model *sm)
{
	const char *t = serve_fields_get(&r->fields, "chat_template");

	return t != NULL ? t : sm->model->chat_template;
}

/* A token's text as a NUL-terminated string in buf ("" when the model has none). */
static const char *
token_text(const lg_vocab *v, lg_token t, char *buf, size_t size)
{
	size_t		len = 0;
	const char *s = t == LG_TOKEN_NULL ? NULL : lg_vocab_token_text(v, t, &len);

	snprintf(buf, size, "%.*s", s ? (int) len : 0, s ? s : "");
	return buf;
}

/*
 * Whether r is a chat (it has messages), and the tool-call format of the
 * template it will be rendered with, so its tools can be checked and
 * compiled before the template runs.
 */
void
serve_chat_detect(serve_request *r, serve_model *sm)
{
	const char *t = template_source(r, sm);

	r->chat = serve_fields_get(&r->fields, "messages") != NULL;
	r->chat_format = (int) lg_chat_detect_format(t, t ? strlen(t) : 0);
}

/*
 * The text to tokenize for a GENERATE: its prompt, or its messages rendered
 * with the chat template into buf (*chat true: special tokens are parsed,
 * and BOS is added only when the template did not write it).  NULL with the
 * error sent.
 */
const char *
serve_generate_prompt(serve_request *r, serve_model *sm, lg_buf *buf, bool *chat, bool *add_bos)
{
	const char *prompt = serve_fields_get(&r->fields, "prompt");
	const char *messages = serve_fields_get(&r->fields, "messages");
	const char *tools = serve_fields_get(&r->fields, "tools");
	const char *override = serve_fields_get(&r->fields, "chat_template");
	const lg_vocab *v = sm->model->vocab;
	lg_chat_template *own = NULL;
	const lg_chat_template *t;
	lg_chat_render_params rp;
	lg_error	err = {0};
	char		bos[256];
	char		eos[256];
	lg_status	st;

	*chat = false;
	*add_bos = true;
	if (messages == NULL)
	{
		static const char *const chat_only[] = {"tools", "tool_choice", "response_format", "chat_template"};

		for (size_t i = 0; i < sizeof(chat_only) / sizeof(chat_only[0]); i++)
		{
			if (serve_fields_get(&r->fields, chat_only[i]) != NULL)
			{
				serve_send_error(r, LG_WIRE_ARG, "%s needs messages", chat_only[i]);
				return NULL;
			}
		}
		if (prompt == NULL)
			serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks a prompt");
		return prompt;
	}
	if (prompt != NULL && prompt[0] != '\0')
	{
		serve_send_error(r, LG_WIRE_ARG, "give either prompt or messages, not both");
		return NULL;
	}

	if (override != NULL)
	{
		own = lg_chat_template_parse(override, strlen(override), &err);
		t = own;
	}
	else
		t = serve_model_chat_template(sm, &err);
	if (t == NULL)
	{
		bool		missing = override == NULL && (sm->model->chat_template == NULL ||
												   sm->model->chat_template[0] == '\0');

		char		detail[256];

		error_location(err.msg, detail, sizeof(detail));
		serve_send_error_detail(r, LG_WIRE_TEMPLATE, detail[0] ? detail : NULL,
								missing ? "Pass a template in chat_template, or use a model whose GGUF file has tokenizer.chat_template." : NULL,
								"%s%s", missing ? "" : "cannot parse the chat template: ", err.msg);
		return NULL;
	}
	memset(&rp, 0, sizeof(rp));
	rp.messages_json = messages;
	rp.messages_len = strlen(messages);
	rp.tools_json = tools;
	rp.tools_len = tools ? strlen(tools) : 0;
	rp.add_generation_prompt = true;
	rp.bos_token = token_text(v, lg_vocab_bos(v), bos, sizeof(bos));
	rp.eos_token = token_text(v, lg_vocab_eos(v), eos, sizeof(eos));
	st = lg_chat_template_render(t, &rp, buf, &err);
	/*
	 * A template that ignores the tools (Gemma, Phi): tell the model about
	 * them and the generic call format in the first message, and render again.
	 */
	if (st == LG_OK && tools != NULL && r->chat_format == LG_CHAT_GENERIC &&
		!lg_chat_prompt_shows_tools(buf->data, buf->len, tools, strlen(tools)))
	{
		lg_buf		with;

		lg_buf_init(&with);
		st = lg_chat_messages_with_tools(messages, strlen(messages), tools, strlen(tools), &with, &err);
		if (st == LG_OK)
		{
			buf->len = 0;
			rp.messages_json = with.data;
			rp.messages_len = with.len;
			st = lg_chat_template_render(t, &rp, buf, &err);
		}
		lg_buf_free(&with);
	}
	lg_chat_template_free(own);
	if (st != LG_OK)
	{
		char		detail[256];

		error_location(err.msg, detail, sizeof(detail));
		serve_send_error_detail(r, st == LG_ERR_NOMEM ? LG_WIRE_NOMEM : LG_WIRE_TEMPLATE,
								detail[0] ? detail : NULL, NULL,
								"cannot render the chat template: %s", err.msg);
		return NULL;
	}
	if (buf->data == NULL && !lg_buf_append(buf, "", 0))
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		return NULL;
	}
	*chat = true;
	/* templates like Llama 3's write BOS themselves: a second one would hurt */
	*add_bos = !(bos[0] != '\0' && strncmp(buf->data, bos, strlen(bos)) == 0);
	return buf->data;
}

/*
 * Append a key part: its length, then its bytes, so parts cannot run into
 * each other ("-" for an absent field, which differs from an empty one).
 */
static bool
key_part(lg_buf *key, const char *s)
{
	if (s == NULL)
		return lg_buf_append(key, "-", 1);
	return lg_buf_appendf(key, "%zu:", strlen(s)) && lg_buf_append(key, s, strlen(s));
}

/*
 * r's constraint: grammar, json_schema, or (for a chat) the tools and
 * response format.  Found in or compiled into the grammar cache; r holds a
 * reference until it ends and sr points at the grammar and the model's
 * grammar vocabulary.  True with nothing to do when the request has none;
 * false with the error sent.
 */
bool
serve_generate_constraint(serve_request *r, serve_model *sm, lg_sched_request *sr)
{
	const char *gbnf = serve_fields_get(&r->fields, "grammar");
	const char *schema = serve_fields_get(&r->fields, "json_schema");
	const char *tools = serve_fields_get(&r->fields, "tools");
	const char *choice = serve_fields_get(&r->fields, "tool_choice");
	const char *rformat = serve_fields_get(&r->fields, "response_format");
	const char *what;
	bool		compact;
	bool		strict;
	lg_buf		key;
	lg_buf		text;
	lg_error	err = {0};
	const lg_grammar_vocab *gv;
	bool		ok = false;

	if (!field_flag(r, "json_compact", &compact) || !field_flag(r, "json_strict", &strict))
		return false;
	if (gbnf != NULL && schema != NULL)
	{
		serve_send_error(r, LG_WIRE_ARG, "give either grammar or json_schema, not both");
		return false;
	}
	if ((gbnf != NULL || schema != NULL) && (tools != NULL || rformat != NULL))
	{
		serve_send_error(r, LG_WIRE_ARG, "grammar and json_schema cannot be combined with tools or response_format");
		return false;
	}
	if (gbnf == NULL && schema == NULL && !r->chat)
		return true;

	lg_buf_init(&key);
	lg_buf_init(&text);
	if (gbnf != NULL)
	{
		what = "grammar";
		ok = lg_buf_append(&key, "g", 1) && key_part(&key, gbnf);
	}
	else if (schema != NULL)
	{
		what = "json_schema";
		ok = lg_buf_appendf(&key, "s%d%d", compact, strict) && key_part(&key, schema);
	}
	else
	{
		what = "tools";
		ok = lg_buf_appendf(&key, "c%d%d%d", r->chat_format, compact, strict) &&
			key_part(&key, tools) && key_part(&key, choice) && key_part(&key, rformat);
	}
	if (!ok)
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		goto done;
	}
	ok = false;

	r->grammar = serve_grammar_lookup(key.data, key.len);
	if (r->grammar == NULL)
	{
		lg_status	st = LG_OK;
		lg_grammar *g;
		bool		constrained = true;

		if (gbnf != NULL)
			st = lg_buf_append(&text, gbnf, strlen(gbnf)) ? LG_OK :
				lg_error_set(&err, LG_ERR_NOMEM, "out of memory");
		else if (schema != NULL)
		{
			lg_json_schema_opts o = {.compact = compact, .strict_additional = strict, .rule_prefix = NULL};

			st = lg_json_schema_to_gbnf(schema, strlen(schema), &o, &text, &err);
		}
		else
		{
			lg_chat_grammar_params cp = {
				.format = (lg_chat_format) r->chat_format,
				.tools_json = tools, .tools_len = tools ? strlen(tools) : 0,
				.tool_choice = choice,
				.response_format_json = rformat, .response_format_len = rformat ? strlen(rformat) : 0,
				.compact = compact, .strict = strict,
			};

			st = lg_chat_build_grammar(&cp, &text, &constrained, &err);
		}
		if (st != LG_OK)
		{
			send_compile_error(r, &err, what);
			goto done;
		}
		if (!constrained)
		{
			ok = true;			/* a chat with nothing to enforce */
			goto done;
		}
		g = lg_grammar_parse(text.data, text.len, &err);
		if (g == NULL)
		{
			/* a schema or tool list compiles to GBNF we wrote: its failure is ours */
			if (gbnf == NULL && err.status == LG_ERR_FORMAT)
				err.status = LG_ERR_INTERNAL;
			send_compile_error(r, &err, what);
			goto done;
		}
		r->grammar = serve_grammar_insert(key.data, key.len, g);
		if (r->grammar == NULL)
		{
			serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
			goto done;
		}
	}
	gv = serve_model_grammar_vocab(sm, &err);
	if (gv == NULL)
	{
		serve_send_error(r, err.status == LG_ERR_NOMEM ? LG_WIRE_NOMEM : LG_WIRE_INTERNAL,
						 "cannot build the grammar vocabulary: %s", err.msg);
		goto done;
	}
	sr->grammar = serve_grammar_get(r->grammar);
	sr->grammar_vocab = gv;
	ok = true;

done:
	lg_buf_free(&key);
	lg_buf_free(&text);
	return ok;
}

/*
 * A chat's answer as the OpenAI assistant message (appended to msg);
 * *n_calls tool calls were found in it.  cut: the answer was cut short by
 * max_tokens (the calls closed before the cut are kept, the rest dropped).
 * False when out of memory.
 */
bool
serve_chat_message(serve_request *r, const char *text, size_t len, lg_buf *msg, int *n_calls,
				   bool cut)
{
	const char *tools = serve_fields_get(&r->fields, "tools");
	const char *choice = serve_fields_get(&r->fields, "tool_choice");
	lg_error	err = {0};

	*n_calls = 0;
	/* calls are read only where the grammar checked them */
	if (tools == NULL || (choice != NULL && strcmp(choice, "none") == 0))
		return lg_chat_content_message(text, len, msg, &err) == LG_OK;
	if (cut)
	{
		/* cut short by max_tokens: keep the calls that were closed before the cut */
		size_t		keep = lg_chat_complete_prefix((lg_chat_format) r->chat_format, text, len);
		size_t		mark = msg->len;

		if (keep > 0 && keep < len)
		{
			if (lg_chat_parse_output((lg_chat_format) r->chat_format, text, keep, msg, n_calls, &err) != LG_OK)
				return false;
			if (*n_calls > 0)
				return true;
			msg->len = mark;	/* no call after all: the whole text is the content */
			msg->data[mark] = '\0';
		}
	}
	return lg_chat_parse_output((lg_chat_format) r->chat_format, text, len, msg, n_calls, &err) == LG_OK;
}
