/*
 * serve_provider.c — requests for a remote model: a model registered with
 * an OpenAI-compatible endpoint (docs/models.md, "Remote providers") is not loaded here; its
 * GENERATE and EMBED are sent over HTTP with libcurl, on the request's
 * worker thread, and the answer comes back as the same frames a local
 * model's would (PIECE frames and one END; one RESULT), so the extension
 * treats both alike.
 *
 * The request carries the endpoint (provider, base_url, remote_model,
 * provider_options) and the API key (api_key), which is sent only in the
 * Authorization header: it never goes into a log line or an error message
 * (a provider's message that echoes it is redacted).
 *
 * This file: the dispatch, the model's options, and a generation's request
 * body and END.  serve_provider_http.c runs the transfer (retries,
 * timeouts, cancellation), serve_provider_answer.c reads the answer (SSE
 * events or one JSON body), serve_provider_embed.c does embeddings.
 */
#include "serve_provider.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_value.h"

/* Whether r names a remote model (field "provider"). */
bool
serve_provider_is_remote(const serve_request *r)
{
	return serve_fields_get(&r->fields, "provider") != NULL;
}

/* ---- options ---- */

/* An integer member of the options object, clamped to [lo, hi], or dflt. */
static int
opt_int(const lg_json_node *o, const char *key, int dflt, int lo, int hi)
{
	const lg_json_node *v = lg_json_get(o, key);

	if (v == NULL || v->kind != LG_JSON_NUMBER)
		return dflt;
	if (v->number < lo)
		return lo;
	if (v->number > hi)
		return hi;
	return (int) v->number;
}

/* A boolean member, or dflt. */
static bool
opt_bool(const lg_json_node *o, const char *key, bool dflt)
{
	const lg_json_node *v = lg_json_get(o, key);

	return v && v->kind == LG_JSON_BOOL ? v->boolean : dflt;
}

/* The provider_options field (the model's options, JSON) into *po. */
static void
parse_options(const char *json, provider_opts *po)
{
	lg_error	err = {0};
	lg_json_node *o = json ? lg_json_parse(json, strlen(json), &err) : NULL;
	const char *api = o ? lg_json_get_str(o, "prompt_api") : NULL;

	po->connect_timeout_ms = opt_int(o, "connect_timeout_ms", 10000, 1, 600000);
	po->timeout_ms = opt_int(o, "timeout_ms", 0, 0, INT32_MAX);
	po->max_retries = opt_int(o, "max_retries", 3, 0, 10);
	po->retry_base_ms = opt_int(o, "retry_base_ms", 500, 1, 600000);
	po->retry_max_ms = opt_int(o, "retry_max_ms", 30000, 1, 3600000);
	po->chat_api = api != NULL && strcmp(api, "chat") == 0;
	po->stream = opt_bool(o, "stream", true);
	po->sampling_extensions = opt_bool(o, "sampling_extensions", false);
	lg_json_node_free(o);
}

/* ---- the call ---- */

/* Reset c for a new attempt (the buffers are kept). */
void
provider_call_reset(provider_call *c)
{
	for (int i = 0; i < c->n_calls; i++)
	{
		lg_buf_free(&c->calls[i].id);
		lg_buf_free(&c->calls[i].name);
		lg_buf_free(&c->calls[i].args);
	}
	c->n_calls = 0;
	c->http_status = 0;
	c->event_stream = false;
	c->retry_after_s = -1;
	c->after_cr = false;
	c->line.len = c->data.len = c->body.len = 0;
	c->finish[0] = '\0';
	c->n_prompt = c->n_completion = -1;
	c->fail_status[0] = c->fail_msg[0] = c->fail_detail[0] = '\0';
	c->done = false;
}

/* Set up a call's buffers and options; the model's own timeout when the request has none. */
void
provider_call_begin(serve_request *r, provider_call *c, provider_opts *po)
{
	const char *key = serve_fields_get(&r->fields, "api_key");

	memset(c, 0, sizeof(*c));
	lg_buf_init(&c->line);
	lg_buf_init(&c->data);
	lg_buf_init(&c->body);
	lg_buf_init(&c->text);
	c->r = r;
	c->api_key = key && key[0] ? key : NULL;
	parse_options(serve_fields_get(&r->fields, "provider_options"), po);
	if (r->deadline_us == 0 && po->timeout_ms > 0)
		r->deadline_us = serve_now_us() + (int64_t) po->timeout_ms * 1000;
}

/* Free a call's buffers. */
void
provider_call_end(provider_call *c)
{
	provider_call_reset(c);
	lg_buf_free(&c->line);
	lg_buf_free(&c->data);
	lg_buf_free(&c->body);
	lg_buf_free(&c->text);
}

/* ---- the request body ---- */

/* Fields a remote model cannot honour, and why (status remote_unsupported). */
static const struct
{
	const char *field;
	const char *why;
	bool		extension;		/* allowed with sampling_extensions */
} unsupported_fields[] = {
	{"grammar", "a grammar (GBNF) cannot be sent to a remote model", false},
	{"logit_bias", "the option logit_bias names token ids of a local vocabulary and cannot be sent to a remote model", false},
	{"chat_template", "a remote model renders messages with its own chat template", false},
	{"json_compact", "the option json_compact cannot be sent to a remote model", false},
	{"min_p", "the option min_p is not part of the OpenAI API", true},
	{"typical_p", "the option typical_p is not part of the OpenAI API", true},
	{"repeat_penalty", "the option repeat_penalty is not part of the OpenAI API", true},
	{"penalty_last_n", "the option penalty_last_n is not part of the OpenAI API", true},
};

/* Whether s is an integer as JSON writes one: -?(0|[1-9][0-9]*). */
static bool
json_integer_text(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		return s[1] == '\0';
	if (*s < '1' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9')
		s++;
	return *s == '\0';
}

/*
 * A numeric field as a JSON member ("key": number); false (error sent) if
 * malformed.  An integer goes out as sent (a seed may not fit a double), so
 * it must already be JSON: strtod alone would let "+5" or "0x10" through.
 */
static bool
add_number(serve_request *r, lg_buf *b, const char *key, const char *json_key, bool integer)
{
	const char *v = serve_fields_get(&r->fields, key);
	char	   *end;
	double		x;

	if (v == NULL)
		return true;
	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !isfinite(x) ||
		(integer && (x != floor(x) || !json_integer_text(v))))
	{
		serve_send_error(r, LG_WIRE_ARG, "invalid value for %s: \"%s\"", key, v);
		return false;
	}
	lg_buf_appendf(b, ",\"%s\":", json_key);
	if (integer)
		lg_buf_append(b, v, strlen(v));
	else
		lg_buf_append_json_number(b, x, 9);
	return true;
}

/* A field that holds JSON text, checked and appended raw; false (error sent) if malformed. */
static bool
add_raw_json(serve_request *r, lg_buf *b, const char *key, const char *json_key)
{
	const char *v = serve_fields_get(&r->fields, key);
	lg_error	err = {0};
	lg_json_node *n;

	if (v == NULL)
		return true;
	n = lg_json_parse(v, strlen(v), &err);
	if (n == NULL)
	{
		serve_send_error(r, LG_WIRE_ARG, "%s is not valid JSON: %s", key, err.msg);
		return false;
	}
	lg_json_node_free(n);
	lg_buf_appendf(b, ",\"%s\":", json_key);
	lg_buf_append(b, v, strlen(v));
	return true;
}

/*
 * The JSON body for r and the endpoint path it goes to (*chat: the chat
 * API); false with the error sent.
 */
static bool
build_body(serve_request *r, const provider_opts *po, lg_buf *b, bool *chat)
{
	const char *model = serve_fields_get(&r->fields, "remote_model");
	const char *prompt = serve_fields_get(&r->fields, "prompt");
	const char *messages = serve_fields_get(&r->fields, "messages");
	const char *schema = serve_fields_get(&r->fields, "json_schema");
	const char *tool_choice = serve_fields_get(&r->fields, "tool_choice");
	const char *strict = serve_fields_get(&r->fields, "json_strict");
	int			n_stops = 0;

	for (size_t i = 0; i < sizeof(unsupported_fields) / sizeof(unsupported_fields[0]); i++)
	{
		if (serve_fields_get(&r->fields, unsupported_fields[i].field) == NULL ||
			(unsupported_fields[i].extension && po->sampling_extensions))
			continue;
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNSUPPORTED, NULL,
								unsupported_fields[i].extension ?
								"Register the model with the option \"sampling_extensions\": true if its server accepts it (llama.cpp, vLLM)." :
								"Use a local model for this, or leave the option out.",
								"%s", unsupported_fields[i].why);
		return false;
	}
	*chat = messages != NULL || po->chat_api;
	APPEND_LIT(b, "{\"model\":");
	lg_buf_append_json_str(b, model, strlen(model));
	if (messages != NULL)
	{
		if (!add_raw_json(r, b, "messages", "messages"))
			return false;
	}
	else if (prompt == NULL || prompt[0] == '\0')
	{
		serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks prompt or messages");
		return false;
	}
	else if (*chat)
	{
		APPEND_LIT(b, ",\"messages\":[{\"role\":\"user\",\"content\":");
		lg_buf_append_json_str(b, prompt, strlen(prompt));
		APPEND_LIT(b, "}]");
	}
	else
	{
		APPEND_LIT(b, ",\"prompt\":");
		lg_buf_append_json_str(b, prompt, strlen(prompt));
	}
	/* the engine's default, so that a remote model stops where a local one would */
	if (serve_fields_get(&r->fields, "max_tokens") == NULL)
		APPEND_LIT(b, ",\"max_tokens\":256");
	if (!add_number(r, b, "max_tokens", "max_tokens", true) ||
		!add_number(r, b, "temperature", "temperature", false) ||
		!add_number(r, b, "top_p", "top_p", false) ||
		!add_number(r, b, "presence_penalty", "presence_penalty", false) ||
		!add_number(r, b, "frequency_penalty", "frequency_penalty", false) ||
		!add_number(r, b, "seed", "seed", true))
		return false;
	if (po->sampling_extensions &&
		(!add_number(r, b, "top_k", "top_k", true) ||
		 !add_number(r, b, "min_p", "min_p", false) ||
		 !add_number(r, b, "typical_p", "typical_p", false) ||
		 !add_number(r, b, "repeat_penalty", "repeat_penalty", false) ||
		 !add_number(r, b, "penalty_last_n", "repeat_last_n", true)))
		return false;
	for (int i = 0; i < r->fields.n; i++)
	{
		if (strcmp(r->fields.keys[i], "stop") != 0)
			continue;
		if (n_stops++ > 0)
			APPEND_LIT(b, ",");
		else
			APPEND_LIT(b, ",\"stop\":[");
		lg_buf_append_json_str(b, r->fields.values[i], strlen(r->fields.values[i]));
	}
	if (n_stops > 0)
		APPEND_LIT(b, "]");
	if (!add_raw_json(r, b, "tools", "tools") || !add_raw_json(r, b, "response_format", "response_format"))
		return false;
	if (tool_choice != NULL)
	{
		if (strcmp(tool_choice, "auto") == 0 || strcmp(tool_choice, "none") == 0 ||
			strcmp(tool_choice, "required") == 0)
		{
			APPEND_LIT(b, ",\"tool_choice\":");
			lg_buf_append_json_str(b, tool_choice, strlen(tool_choice));
		}
		else if (tool_choice[0] == '{')
		{
			if (!add_raw_json(r, b, "tool_choice", "tool_choice"))
				return false;
		}
		else
		{
			APPEND_LIT(b, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
			lg_buf_append_json_str(b, tool_choice, strlen(tool_choice));
			APPEND_LIT(b, "}}");
		}
	}
	if (schema != NULL)
	{
		lg_error	err = {0};
		lg_json_node *n = lg_json_parse(schema, strlen(schema), &err);

		if (n == NULL)
		{
			serve_send_error(r, LG_WIRE_GRAMMAR, "json_schema is not valid JSON: %s", err.msg);
			return false;
		}
		lg_json_node_free(n);
		lg_buf_appendf(b, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
					   "{\"name\":\"output\",\"strict\":%s,\"schema\":",
					   strict && strcmp(strict, "1") == 0 ? "true" : "false");
		lg_buf_append(b, schema, strlen(schema));
		APPEND_LIT(b, "}}");
	}
	if (po->stream)
		APPEND_LIT(b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
	if (!APPEND_LIT(b, "}"))
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		return false;
	}
	return true;
}

/* ---- the END ---- */

/* The END frame of a finished answer. */
static void
send_end(serve_request *r, provider_call *c, bool chat, int attempts)
{
	serve_frame f = {0};
	int64_t		now = serve_now_us();
	int64_t		first = c->t_first_us ? c->t_first_us : now;
	const char *finish = c->finish[0] ? c->finish : "stop";
	int			n_gen = c->n_completion >= 0 ? (int) c->n_completion : c->n_pieces;

	if (strcmp(finish, "function_call") == 0 || (c->n_calls > 0 && strcmp(finish, "stop") == 0))
		finish = "tool_calls";
	if (c->n_prompt >= 0)
		atomic_store(&r->n_prompt, (int) c->n_prompt);
	/* counted (finish reason, prompt tokens, time) before the client hears of it */
	r->outcome = strcmp(finish, "stop") == 0 ? "stop" : strcmp(finish, "length") == 0 ? "length" :
		strcmp(finish, "tool_calls") == 0 ? "tool_calls" : "other";
	serve_metrics_finish(r);
	serve_request_unlist(r);
	serve_frame_begin(&f, LG_FRAME_END, r->id);
	serve_frame_field(&f, "finish", finish);
	if (chat)
	{
		lg_buf		m;

		lg_buf_init(&m);
		provider_answer_message(c, &m);
		serve_frame_field(&f, "message", m.data);
		lg_buf_free(&m);
	}
	serve_frame_fieldf(&f, "n_prompt", "%ld", c->n_prompt >= 0 ? c->n_prompt : 0L);
	serve_frame_fieldf(&f, "n_gen", "%d", n_gen);
	serve_frame_fieldf(&f, "t_prompt_ms", "%.3f", (first - c->t_start_us) / 1000.0);
	serve_frame_fieldf(&f, "t_gen_ms", "%.3f", (now - first) / 1000.0);
	serve_frame_fieldf(&f, "t_queue_ms", "%.3f", 0.0);
	serve_frame_fieldf(&f, "t_first_ms", "%.3f", (first - c->t_start_us) / 1000.0);
	serve_frame_field(&f, "n_cached", "0");
	serve_frame_field(&f, "n_preempted", "0");
	serve_frame_fieldf(&f, "n_attempts", "%d", attempts);
	serve_conn_send(r->conn, &f);
	serve_frame_free(&f);
}

/* GENERATE for a remote model: build, send with retries, stream, end. */
static void
provider_generate(serve_request *r)
{
	provider_opts po;
	provider_call c;
	provider_http h;
	lg_buf		body;
	bool		chat = false;
	int			attempts = 0;

	memset(&h, 0, sizeof(h));
	lg_buf_init(&body);
	/* measured like a local model's generations, under the model's name (llm_stat_models) */
	r->metrics = serve_metrics_get(r->model);
	provider_call_begin(r, &c, &po);
	if (!build_body(r, &po, &body, &chat) ||
		!provider_http_begin(r, &c, &po, chat ? "/chat/completions" : "/completions", &body, &h) ||
		!provider_http_run(r, &c, &po, &h, &attempts))
		goto done;

	provider_answer_end(&c);
	if (c.fail_status[0])
		serve_send_error_detail(r, c.fail_status, c.fail_detail[0] ? c.fail_detail : NULL, NULL,
								"%s", c.fail_msg);
	else if (c.n_pieces == 0 && c.n_calls == 0 && c.finish[0] == '\0')
		serve_send_error(r, LG_WIRE_REMOTE_PROTOCOL, "the provider's answer ended without any output");
	else
		send_end(r, &c, serve_fields_get(&r->fields, "messages") != NULL, attempts);

done:
	provider_http_end(&h);
	provider_call_end(&c);
	lg_buf_free(&body);
}

/*
 * A request for a remote model (on its worker thread): GENERATE and EMBED
 * go to the provider; the frames that need the model's weights or
 * vocabulary cannot.
 */
void
serve_provider_request(serve_request *r)
{
	const char *provider = serve_fields_get(&r->fields, "provider");
	const char *model = serve_fields_get(&r->fields, "model");

	if (strcmp(provider, PROVIDER_OPENAI) != 0)
	{
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNSUPPORTED, NULL,
								"The provider llamagpu speaks to is \"" PROVIDER_OPENAI "\".",
								"unknown provider \"%s\"", provider);
		return;
	}
	if ((r->type == LG_FRAME_GENERATE || r->type == LG_FRAME_EMBED) &&
		(serve_fields_get(&r->fields, "remote_model") == NULL ||
		 serve_fields_get(&r->fields, "base_url") == NULL))
		serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks base_url or remote_model");
	else if (r->type == LG_FRAME_GENERATE)
		provider_generate(r);
	else if (r->type == LG_FRAME_EMBED)
		provider_embed(r);
	else
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNSUPPORTED, NULL,
								"Tokenizing and loading apply to local models only.",
								"model \"%s\" is a remote model: the engine has no %s for it",
								model ? model : "", r->type == LG_FRAME_LOAD ? "weights to load" : "vocabulary");
}
