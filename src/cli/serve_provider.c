/*
 * serve_provider.c — requests for a remote model: a model registered with
 * an OpenAI-compatible endpoint (docs/providers.md) is not loaded here; its
 * GENERATE is sent over HTTP with libcurl, on the request's worker thread,
 * and the answer is streamed back as PIECE frames and one END, exactly as a
 * local generation's, so the extension treats both alike.
 *
 * The request carries the endpoint (provider, base_url, remote_model,
 * provider_options) and the API key (api_key), which is sent only in the
 * Authorization header: it never goes into a log line or an error message
 * (a provider's message that echoes it is redacted).
 *
 * One call: POST {base_url}/chat/completions (a messages request, or any
 * prompt when prompt_api is "chat") or {base_url}/completions, with
 * "stream": true; the answer is Server-Sent Events (or one JSON body when
 * the provider does not stream).  429, 408 and 5xx answers and failed
 * connections are retried, with exponential back-off and jitter or the
 * provider's Retry-After, while nothing has been streamed yet.  The transfer
 * runs in a curl multi loop that wakes every 50 ms, so a CANCEL frame, a
 * closed connection or timeout_ms stops it at once.
 */
#include "serve.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json_value.h"

#define PROVIDER_OPENAI		"openai-compatible"
#define BODY_MAX			((size_t) 16 * 1024 * 1024)	/* a non-streamed answer or an error body */
#define EVENT_MAX			((size_t) 4 * 1024 * 1024)	/* one Server-Sent Event */
#define MAX_TOOL_CALLS		64
#define POLL_MS				50

/* Append a string literal. */
#define APPEND_LIT(b, s)	lg_buf_append((b), (s), sizeof(s) - 1)

/* What the model's options say about its endpoint (llm_register_remote_model). */
typedef struct provider_opts
{
	int			connect_timeout_ms; /* TCP and TLS handshake */
	int			timeout_ms;		/* whole call, when the request sets none */
	int			max_retries;	/* attempts after the first */
	int			retry_base_ms;	/* first back-off; doubles each time */
	int			retry_max_ms;	/* longest single wait, Retry-After included */
	bool		chat_api;		/* prompts go to /chat/completions as one user message */
	bool		stream;
	bool		sampling_extensions;	/* send top_k, min_p, ... (llama.cpp, vLLM) */
} provider_opts;

/* One tool call being assembled from streamed deltas. */
typedef struct tool_call
{
	lg_buf		id;
	lg_buf		name;
	lg_buf		args;
} tool_call;

/* One attempt's state, reset before each attempt. */
typedef struct provider_call
{
	serve_request *r;
	const char *api_key;		/* to redact from messages; NULL: none */
	long		http_status;
	bool		event_stream;	/* Content-Type: text/event-stream */
	double		retry_after_s;	/* Retry-After, or -1 */
	lg_buf		line;			/* SSE: the line being read */
	lg_buf		data;			/* SSE: the event's data lines */
	lg_buf		body;			/* an error body, or a non-streamed answer */
	lg_buf		text;			/* everything streamed */
	tool_call	calls[MAX_TOOL_CALLS];
	int			n_calls;
	char		finish[32];
	long		n_prompt;		/* usage.prompt_tokens, or -1 */
	long		n_completion;	/* usage.completion_tokens, or -1 */
	int			n_pieces;
	bool		streamed;		/* a PIECE was sent: no retry from here on */
	bool		done;			/* data: [DONE] */
	char		fail_status[32];	/* set when the answer is unusable: abort */
	char		fail_msg[512];
	char		fail_detail[1024];
	int64_t		t_start_us;
	int64_t		t_first_us;
} provider_call;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

/* curl_global_init is not thread-safe: once, before the first transfer. */
static void
curl_init_once(void)
{
	curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

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

/* ---- the request body ---- */

/* Fields a remote model cannot honour, and why (status remote_unsupported). */
static const struct
{
	const char *field;
	const char *why;
	bool		extension;		/* allowed with sampling_extensions */
} unsupported_fields[] = {
	{"grammar", "a grammar (GBNF) cannot be sent to a remote model", false},
	{"logit_bias", "logit_bias names token ids of a local vocabulary and cannot be sent to a remote model", false},
	{"chat_template", "a remote model renders messages with its own chat template", false},
	{"json_compact", "json_compact cannot be sent to a remote model", false},
	{"min_p", "min_p is not part of the OpenAI API", true},
	{"typical_p", "typical_p is not part of the OpenAI API", true},
	{"repeat_penalty", "repeat_penalty is not part of the OpenAI API", true},
	{"penalty_last_n", "penalty_last_n is not part of the OpenAI API", true},
};

/* A numeric field as a JSON member ("key": number); false (error sent) if malformed. */
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
	if (errno != 0 || end == v || *end != '\0' || !isfinite(x) || (integer && x != floor(x)))
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

/* ---- the answer ---- */

/* Copy src into dst (one line, at most size - 1 bytes), with the API key replaced by "***". */
static void
copy_redacted(char *dst, size_t size, const char *src, size_t len, const char *key)
{
	size_t		klen = key ? strlen(key) : 0;
	size_t		o = 0;

	for (size_t i = 0; i < len && o + 1 < size; i++)
	{
		if (klen >= 4 && i + klen <= len && memcmp(src + i, key, klen) == 0)
		{
			for (const char *s = "***"; *s && o + 1 < size; s++)
				dst[o++] = *s;
			i += klen - 1;
			continue;
		}
		dst[o++] = (src[i] == '\n' || src[i] == '\r' || src[i] == '\0') ? ' ' : src[i];
	}
	dst[o] = '\0';
}

/* Mark the attempt failed (the transfer is aborted; no retry). */
static void
call_fail(provider_call *c, const char *status, const char *detail, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
call_fail(provider_call *c, const char *status, const char *detail, const char *fmt, ...)
{
	va_list		ap;

	if (c->fail_status[0])
		return;
	snprintf(c->fail_status, sizeof(c->fail_status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
	va_end(ap);
	if (detail)
		copy_redacted(c->fail_detail, sizeof(c->fail_detail), detail, strlen(detail), c->api_key);
}

/* Stream text as a PIECE. */
static void
emit_text(provider_call *c, const char *s, size_t len)
{
	serve_request *r = c->r;
	serve_frame f = {0};

	if (len == 0)
		return;
	if (!c->streamed)
	{
		c->t_first_us = serve_now_us();
		r->gen_start_us = c->t_first_us;
		atomic_store(&r->state, SERVE_STATE_GENERATING);
	}
	c->streamed = true;
	c->n_pieces++;
	atomic_fetch_add(&r->n_gen, 1);
	lg_buf_append(&c->text, s, len);
	if (r->peer_gone)
		return;
	serve_frame_begin(&f, LG_FRAME_PIECE, r->id);
	serve_frame_append(&f, s, len);
	if (!serve_conn_send(r->conn, &f))
		r->peer_gone = true;
	serve_frame_free(&f);
}

/* Add a (delta of a) tool call: index, id, function.name, function.arguments. */
static void
take_tool_call(provider_call *c, const lg_json_node *tc, size_t pos)
{
	const lg_json_node *ix = lg_json_get(tc, "index");
	const lg_json_node *fn = lg_json_get(tc, "function");
	const char *id = lg_json_get_str(tc, "id");
	const char *name = fn ? lg_json_get_str(fn, "name") : NULL;
	const char *args = fn ? lg_json_get_str(fn, "arguments") : NULL;
	long		i = ix && ix->kind == LG_JSON_NUMBER ? (long) ix->number : (long) pos;
	tool_call  *t;

	if (i < 0 || i >= MAX_TOOL_CALLS)
	{
		call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "the provider sent tool call index %ld (at most %d calls)",
				  i, MAX_TOOL_CALLS);
		return;
	}
	while (c->n_calls <= i)
	{
		t = &c->calls[c->n_calls++];
		lg_buf_init(&t->id);
		lg_buf_init(&t->name);
		lg_buf_init(&t->args);
	}
	t = &c->calls[i];
	if (id && t->id.len == 0)
		lg_buf_append(&t->id, id, strlen(id));
	if (name)
		lg_buf_append(&t->name, name, strlen(name));
	if (args)
		lg_buf_append(&t->args, args, strlen(args));
	if (!c->streamed)
	{
		c->t_first_us = serve_now_us();
		atomic_store(&c->r->state, SERVE_STATE_GENERATING);
	}
	/* a call is output too: a retry now would repeat it */
	c->streamed = true;
}

/* The usage object: token counts for END. */
static void
take_usage(provider_call *c, const lg_json_node *u)
{
	const lg_json_node *p = lg_json_get(u, "prompt_tokens");
	const lg_json_node *g = lg_json_get(u, "completion_tokens");

	if (p && p->kind == LG_JSON_NUMBER)
		c->n_prompt = (long) p->number;
	if (g && g->kind == LG_JSON_NUMBER)
		c->n_completion = (long) g->number;
}

/* The provider's error object ({"error": {"message": ..}} or {"error": ".."}) as text, or NULL. */
static const char *
error_message(const lg_json_node *o)
{
	const lg_json_node *e = lg_json_get(o, "error");

	if (e == NULL)
		return NULL;
	if (e->kind == LG_JSON_STRING)
		return e->str;
	if (lg_json_get_str(e, "message"))
		return lg_json_get_str(e, "message");
	return "the provider reported an error without a message";
}

/*
 * One answer object: a streamed chunk (delta) or a whole response
 * (message); its text, tool calls, finish reason and usage.
 */
static void
take_object(provider_call *c, const lg_json_node *o)
{
	const lg_json_node *choices = lg_json_get(o, "choices");
	const lg_json_node *ch = choices ? lg_json_at(choices, 0) : NULL;
	const lg_json_node *usage = lg_json_get(o, "usage");
	const char *err = error_message(o);

	if (err)
	{
		char		said[1024];

		snprintf(said, sizeof(said), "The provider said: %s", err);
		call_fail(c, LG_WIRE_REMOTE_UNAVAILABLE, said, "the provider reported an error in its answer");
		return;
	}
	if (usage && usage->kind == LG_JSON_OBJECT)
		take_usage(c, usage);
	if (ch != NULL && ch->kind == LG_JSON_OBJECT)
	{
		const lg_json_node *msg = lg_json_get(ch, "delta");
		const char *finish = lg_json_get_str(ch, "finish_reason");
		const lg_json_node *calls;
		const char *text;

		if (msg == NULL)
			msg = lg_json_get(ch, "message");
		text = msg ? lg_json_get_str(msg, "content") : lg_json_get_str(ch, "text");
		if (text == NULL)
			text = lg_json_get_str(ch, "text");
		if (text)
			emit_text(c, text, strlen(text));
		calls = msg ? lg_json_get(msg, "tool_calls") : NULL;
		if (calls && calls->kind == LG_JSON_ARRAY)
			for (size_t i = 0; i < calls->n; i++)
				take_tool_call(c, calls->items[i], i);
		if (finish)
			snprintf(c->finish, sizeof(c->finish), "%s", finish);
	}
	else if (choices == NULL && usage == NULL)
		call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "the provider's answer has no \"choices\"");
}

/* Parse one JSON text (an SSE event's data or a whole body) and take it. */
static void
take_json(provider_call *c, const char *s, size_t len)
{
	lg_error	err = {0};
	lg_json_node *o = lg_json_parse(s, len, &err);

	if (o == NULL || o->kind != LG_JSON_OBJECT)
	{
		char		head[120];

		copy_redacted(head, sizeof(head), s, len, c->api_key);
		call_fail(c, LG_WIRE_REMOTE_PROTOCOL, o ? "The data is not a JSON object." : err.msg,
				  "malformed answer from the provider: \"%s\"", head);
	}
	else
		take_object(c, o);
	lg_json_node_free(o);
}

/* One complete SSE line (without its end of line). */
static void
sse_line(provider_call *c, const char *s, size_t len)
{
	if (len == 0)
	{
		/* a blank line dispatches the event */
		if (c->data.len == 0)
			return;
		if (c->done)
			;					/* anything after [DONE] is ignored */
		else if (c->data.len == 6 && memcmp(c->data.data, "[DONE]", 6) == 0)
			c->done = true;
		else
			take_json(c, c->data.data, c->data.len);
		c->data.len = 0;
		c->data.data[0] = '\0';
		return;
	}
	if (len >= 5 && memcmp(s, "data:", 5) == 0)
	{
		s += 5;
		len -= 5;
		if (len > 0 && *s == ' ')
		{
			s++;
			len--;
		}
		if (c->data.len > 0)
			APPEND_LIT(&c->data, "\n");
		if (c->data.len + len > EVENT_MAX)
		{
			call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "an event from the provider is longer than %zu bytes",
					  EVENT_MAX);
			return;
		}
		lg_buf_append(&c->data, s, len);
	}
	/* comments (":") and the fields event, id and retry mean nothing here */
}

/* libcurl's header callback: status line, Content-Type, Retry-After. */
static size_t
on_header(char *buf, size_t size, size_t n, void *arg)
{
	provider_call *c = arg;
	size_t		len = size * n;

	if (len > 5 && strncmp(buf, "HTTP/", 5) == 0)
	{
		/* a new response (after 100 Continue, say): forget the last one's headers */
		const char *sp = memchr(buf, ' ', len);

		c->http_status = sp ? strtol(sp + 1, NULL, 10) : 0;
		c->event_stream = false;
		c->retry_after_s = -1;
	}
	else if (len > 13 && strncasecmp(buf, "content-type:", 13) == 0)
		c->event_stream = strstr(buf, "text/event-stream") != NULL;
	else if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0)
	{
		char		v[128];
		char	   *end;
		double		s;

		snprintf(v, sizeof(v), "%.*s", (int) (len - 12 < 127 ? len - 12 : 127), buf + 12);
		s = strtod(v, &end);
		if (end != v && s >= 0 && isfinite(s))
			c->retry_after_s = s;
		else
		{
			/* an HTTP date */
			time_t		t = curl_getdate(v, NULL);

			if (t > 0)
				c->retry_after_s = t > time(NULL) ? (double) (t - time(NULL)) : 0;
		}
	}
	return len;
}

/* libcurl's write callback: an SSE stream, a JSON body, or an error body. */
static size_t
on_body(char *buf, size_t size, size_t n, void *arg)
{
	provider_call *c = arg;
	size_t		len = size * n;
	if (c->fail_status[0])
		return 0;
	if (c->http_status < 200 || c->http_status >= 300 || !c->event_stream)
	{
		if (c->body.len + len > BODY_MAX)
		{
			if (c->http_status >= 200 && c->http_status < 300)
			{
				call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "the provider's answer is longer than %zu bytes",
						  BODY_MAX);
				return 0;
			}
			return len;			/* an error body: its beginning says enough */
		}
		lg_buf_append(&c->body, buf, len);
		return len;
	}
	for (size_t i = 0; i < len; i++)
	{
		if (buf[i] == '\n')
		{
			size_t		l = c->line.len;

			if (l > 0 && c->line.data[l - 1] == '\r')
				l--;
			sse_line(c, c->line.data ? c->line.data : "", l);
			c->line.len = 0;
			if (c->line.data)
				c->line.data[0] = '\0';
			if (c->fail_status[0])
				return 0;
			continue;
		}
		if (c->line.len >= EVENT_MAX)
		{
			call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "a line from the provider is longer than %zu bytes",
					  EVENT_MAX);
			return 0;
		}
		lg_buf_append(&c->line, buf + i, 1);
	}
	return len;
}

/* ---- the call ---- */

/* Whether r should stop now: cancelled, timed out, or its client gone. */
static bool
must_stop(serve_request *r)
{
	if (r->deadline_us && serve_now_us() >= r->deadline_us)
		atomic_store(&r->timed_out, true);
	return atomic_load(&r->cancel) || atomic_load(&r->timed_out) || r->peer_gone ||
		atomic_load(&r->conn->closed);
}

/* Sleep ms milliseconds in short naps; false when r must stop. */
static bool
nap(serve_request *r, int64_t ms)
{
	int64_t		until = serve_now_us() + ms * 1000;

	while (serve_now_us() < until)
	{
		int64_t		left = (until - serve_now_us()) / 1000;
		struct timespec ts = {0, (long) (left < POLL_MS ? left : POLL_MS) * 1000000L};

		if (must_stop(r))
			return false;
		nanosleep(&ts, NULL);
	}
	return !must_stop(r);
}

/* Reset c for a new attempt (the buffers are kept). */
static void
call_reset(provider_call *c)
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
	c->line.len = c->data.len = c->body.len = 0;
	c->finish[0] = '\0';
	c->n_prompt = c->n_completion = -1;
	c->fail_status[0] = c->fail_msg[0] = c->fail_detail[0] = '\0';
	c->done = false;
}

/* Run one transfer in a multi loop that checks for cancellation every POLL_MS; its result. */
static CURLcode
perform(serve_request *r, CURL *easy, bool *stopped)
{
	CURLM	   *multi = curl_multi_init();
	CURLcode	res = CURLE_OK;
	int			running = 1;
	CURLMsg    *msg;
	int			left;

	*stopped = false;
	if (multi == NULL)
		return CURLE_OUT_OF_MEMORY;
	curl_multi_add_handle(multi, easy);
	while (running)
	{
		if (curl_multi_perform(multi, &running) != CURLM_OK)
		{
			res = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		if (must_stop(r))
		{
			*stopped = true;
			break;
		}
		curl_multi_poll(multi, NULL, 0, POLL_MS, NULL);
	}
	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			res = msg->data.result;
	curl_multi_remove_handle(multi, easy);
	curl_multi_cleanup(multi);
	return res;
}

/* Whether an HTTP status is worth another attempt. */
static bool
http_retryable(long status)
{
	return status == 408 || status == 429 || status == 500 || status == 502 ||
		status == 503 || status == 504;
}

/* Whether a transfer error is worth another attempt (the connection, not the answer, failed). */
static bool
curl_retryable(CURLcode res)
{
	return res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
		res == CURLE_OPERATION_TIMEDOUT || res == CURLE_SEND_ERROR || res == CURLE_RECV_ERROR ||
		res == CURLE_GOT_NOTHING || res == CURLE_PARTIAL_FILE;
}

/* The error body's message (the provider's error.message, else the body's start), redacted. */
static void
body_message(provider_call *c, char *out, size_t size)
{
	lg_error	err = {0};
	lg_json_node *o = c->body.len ? lg_json_parse(c->body.data, c->body.len, &err) : NULL;
	const char *m = o ? error_message(o) : NULL;

	if (m == NULL && o != NULL)
		m = lg_json_get_str(o, "message");
	/* quoted after a prefix: the extension makes the detail a sentence, the message stays as sent */
	snprintf(out, size, "The provider said: ");
	if (m)
		copy_redacted(out + strlen(out), size - strlen(out), m, strlen(m), c->api_key);
	else if (c->body.len)
		copy_redacted(out + strlen(out), size - strlen(out), c->body.data,
					  c->body.len < 300 ? c->body.len : 300, c->api_key);
	else
		snprintf(out, size, "The provider sent no message.");
	lg_json_node_free(o);
}

/* Send the ERROR for an HTTP status the provider answered with (after the retries). */
static void
send_http_error(serve_request *r, provider_call *c, const char *url, int attempts)
{
	char		detail[1024];
	char		hint[160];
	long		st = c->http_status;

	body_message(c, detail, sizeof(detail));
	if (st == 401 || st == 403)
		serve_send_error_detail(r, LG_WIRE_REMOTE_AUTH, detail,
								c->api_key ? "Check the secret named by the model's api_key_secret in llamagpu.llm_secrets." :
								"The model has no api_key_secret: store the key with llamagpu.llm_set_secret() and register the model with it.",
								"the provider refused the request (HTTP %ld)", st);
	else if (st == 429)
	{
		if (c->retry_after_s >= 0)
			snprintf(hint, sizeof(hint), "The provider asks to retry after %.0f seconds.", c->retry_after_s);
		else
			snprintf(hint, sizeof(hint), "Retry later, or raise the model's option \"max_retries\".");
		serve_send_error_detail(r, LG_WIRE_REMOTE_RATE_LIMIT, detail, hint,
								"the provider rate-limited the request (HTTP 429, %d attempt%s)",
								attempts, attempts == 1 ? "" : "s");
	}
	else if (st >= 500 || st == 408)
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNAVAILABLE, detail, NULL,
								"the provider failed with HTTP %ld (%d attempt%s)",
								st, attempts, attempts == 1 ? "" : "s");
	else if (st == 404)
		serve_send_error_detail(r, LG_WIRE_REMOTE_NOT_FOUND, detail,
								"Check the model's base_url and remote_model.",
								"the provider answered HTTP 404 for %s", url);
	else
		serve_send_error_detail(r, LG_WIRE_REMOTE_REJECTED, detail, NULL,
								"the provider rejected the request (HTTP %ld)", st);
}

/* The assistant message of a chat answer: content and the assembled tool calls. */
static void
build_message(provider_call *c, lg_buf *m)
{
	APPEND_LIT(m, "{\"role\":\"assistant\",\"content\":");
	if (c->text.len == 0 && c->n_calls > 0)
		APPEND_LIT(m, "null");
	else
		lg_buf_append_json_str(m, c->text.data ? c->text.data : "", c->text.len);
	if (c->n_calls > 0)
	{
		APPEND_LIT(m, ",\"tool_calls\":[");
		for (int i = 0; i < c->n_calls; i++)
		{
			tool_call  *t = &c->calls[i];

			if (i)
				APPEND_LIT(m, ",");
			APPEND_LIT(m, "{\"id\":");
			if (t->id.len)
				lg_buf_append_json_str(m, t->id.data, t->id.len);
			else
				lg_buf_appendf(m, "\"call_%llu_%d\"", (unsigned long long) c->r->seq, i);
			APPEND_LIT(m, ",\"type\":\"function\",\"function\":{\"name\":");
			lg_buf_append_json_str(m, t->name.data ? t->name.data : "", t->name.len);
			APPEND_LIT(m, ",\"arguments\":");
			lg_buf_append_json_str(m, t->args.data ? t->args.data : "{}", t->args.len ? t->args.len : 2);
			APPEND_LIT(m, "}}");
		}
		APPEND_LIT(m, "]");
	}
	APPEND_LIT(m, "}");
}

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
	serve_request_unlist(r);
	serve_frame_begin(&f, LG_FRAME_END, r->id);
	serve_frame_field(&f, "finish", finish);
	if (chat)
	{
		lg_buf		m;

		lg_buf_init(&m);
		build_message(c, &m);
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

/* The ERROR for a request stopped by cancel, timeout or its client going away. */
static void
send_stopped(serve_request *r, provider_call *c)
{
	if (atomic_load(&r->timed_out))
		serve_send_error(r, LG_WIRE_TIMEOUT, "the remote model did not finish in time (%d pieces received)",
						 c->n_pieces);
	else if (r->peer_gone || atomic_load(&r->conn->closed))
	{
		serve_request_unlist(r);
		serve_log(SERVE_LOG_DEBUG, "request %llu: client went away", (unsigned long long) r->seq);
	}
	else
		serve_send_error(r, LG_WIRE_CANCELLED, "the request was cancelled");
}

/* The back-off before attempt `attempt` (1 = the first retry), in ms: exponential, half jitter. */
static int64_t
backoff_ms(const provider_opts *po, int attempt, unsigned *seed)
{
	double		d = po->retry_base_ms * pow(2, attempt - 1);

	if (d > po->retry_max_ms)
		d = po->retry_max_ms;
	return (int64_t) (d / 2 + d / 2 * (rand_r(seed) / (double) RAND_MAX));
}

/* GENERATE for a remote model: build, send with retries, stream, end. */
static void
provider_generate(serve_request *r)
{
	const char *base = serve_fields_get(&r->fields, "base_url");
	const char *key = serve_fields_get(&r->fields, "api_key");
	provider_opts po;
	provider_call c;
	lg_buf		body;
	lg_buf		url;
	lg_buf		auth;
	bool		chat = false;
	CURL	   *easy = NULL;
	struct curl_slist *headers = NULL;
	char		errbuf[CURL_ERROR_SIZE];
	unsigned	seed = (unsigned) (serve_now_us() ^ r->seq);
	int64_t		deadline;
	int			attempt;
	CURLcode	res = CURLE_OK;

	memset(&c, 0, sizeof(c));
	lg_buf_init(&body);
	lg_buf_init(&url);
	lg_buf_init(&auth);
	lg_buf_init(&c.line);
	lg_buf_init(&c.data);
	lg_buf_init(&c.body);
	lg_buf_init(&c.text);
	c.r = r;
	c.api_key = key && key[0] ? key : NULL;
	parse_options(serve_fields_get(&r->fields, "provider_options"), &po);
	if (serve_fields_get(&r->fields, "remote_model") == NULL || base == NULL)
	{
		serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks base_url or remote_model");
		goto done;
	}
	if (!build_body(r, &po, &body, &chat))
		goto done;
	/* the model's own timeout when the request has none */
	if (r->deadline_us == 0 && po.timeout_ms > 0)
		r->deadline_us = serve_now_us() + (int64_t) po.timeout_ms * 1000;
	deadline = r->deadline_us;

	lg_buf_append(&url, base, strlen(base));
	while (url.len > 0 && url.data[url.len - 1] == '/')
		url.data[--url.len] = '\0';
	if (chat)
		APPEND_LIT(&url, "/chat/completions");
	else
		APPEND_LIT(&url, "/completions");

	pthread_once(&curl_once, curl_init_once);
	if (!curl_ready || (easy = curl_easy_init()) == NULL)
	{
		serve_send_error(r, LG_WIRE_INTERNAL, "could not initialize libcurl");
		goto done;
	}
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, po.stream ? "Accept: text/event-stream" : "Accept: application/json");
	if (c.api_key)
	{
		lg_buf_appendf(&auth, "Authorization: Bearer %s", c.api_key);
		headers = curl_slist_append(headers, auth.data);
	}
	curl_easy_setopt(easy, CURLOPT_URL, url.data);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body.len);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "llamagpu");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, &c);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	/* a stalled stream is caught by the deadline; a dead peer by TCP keepalive */
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);

	for (attempt = 1;; attempt++)
	{
		bool		stopped;
		int64_t		wait_ms;
		long		connect_ms = po.connect_timeout_ms;

		if (deadline && (deadline - serve_now_us()) / 1000 < connect_ms)
			connect_ms = (long) ((deadline - serve_now_us()) / 1000) + 1;
		if (connect_ms < 1)
			connect_ms = 1;
		curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
		call_reset(&c);
		errbuf[0] = '\0';
		c.t_start_us = serve_now_us();
		atomic_store(&r->state, SERVE_STATE_PROMPT);
		res = perform(r, easy, &stopped);
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &c.http_status);
		if (stopped)
		{
			send_stopped(r, &c);
			goto done;
		}
		if (c.fail_status[0])
		{
			serve_send_error_detail(r, c.fail_status, c.fail_detail[0] ? c.fail_detail : NULL, NULL,
									"%s", c.fail_msg);
			goto done;
		}
		if (res == CURLE_OK && c.http_status >= 200 && c.http_status < 300)
		{
			if (!c.event_stream && c.body.len > 0)
				take_json(&c, c.body.data, c.body.len);
			else if (c.event_stream && c.line.len > 0)
				sse_line(&c, c.line.data, c.line.len);
			if (c.event_stream)
				sse_line(&c, "", 0);	/* an event not closed by a blank line */
			if (c.fail_status[0])
				serve_send_error_detail(r, c.fail_status, c.fail_detail[0] ? c.fail_detail : NULL, NULL,
										"%s", c.fail_msg);
			else if (c.event_stream && !c.done && c.n_pieces == 0 && c.n_calls == 0 && c.finish[0] == '\0')
				serve_send_error(r, LG_WIRE_REMOTE_PROTOCOL, "the provider's event stream ended without an answer");
			else
				send_end(r, &c, serve_fields_get(&r->fields, "messages") != NULL, attempt);
			goto done;
		}
		/* failed: another attempt only while nothing was streamed */
		if (c.streamed || attempt > po.max_retries ||
			(res == CURLE_OK ? !http_retryable(c.http_status) : !curl_retryable(res)))
			break;
		wait_ms = backoff_ms(&po, attempt, &seed);
		if (res == CURLE_OK && c.retry_after_s >= 0)
		{
			if (c.retry_after_s * 1000 > po.retry_max_ms)
				break;			/* longer than we may wait: report it */
			wait_ms = (int64_t) (c.retry_after_s * 1000);
		}
		if (deadline && serve_now_us() + wait_ms * 1000 >= deadline)
			break;				/* no time left for another attempt: report this one */
		serve_log(SERVE_LOG_INFO, "request %llu: provider answered %ld%s%s, retrying in %lld ms",
				  (unsigned long long) r->seq, c.http_status, res == CURLE_OK ? "" : ": ",
				  res == CURLE_OK ? "" : curl_easy_strerror(res), (long long) wait_ms);
		if (!nap(r, wait_ms))
		{
			send_stopped(r, &c);
			goto done;
		}
	}
	if (res == CURLE_OK)
		send_http_error(r, &c, url.data, attempt);
	else if (c.streamed)
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNAVAILABLE, errbuf[0] ? errbuf : NULL, NULL,
								"the connection to the provider failed after %d pieces", c.n_pieces);
	else
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNAVAILABLE, errbuf[0] ? errbuf : NULL,
								"Check the model's base_url and that the provider is running.",
								"could not reach the provider at %s (%d attempt%s)", url.data, attempt,
								attempt == 1 ? "" : "s");

done:
	if (easy)
		curl_easy_cleanup(easy);
	curl_slist_free_all(headers);
	if (auth.data)
		explicit_bzero(auth.data, auth.len);
	call_reset(&c);
	lg_buf_free(&auth);
	lg_buf_free(&body);
	lg_buf_free(&url);
	lg_buf_free(&c.line);
	lg_buf_free(&c.data);
	lg_buf_free(&c.body);
	lg_buf_free(&c.text);
}

/*
 * A request for a remote model (on its worker thread): GENERATE goes to the
 * provider; the frames that need the model's weights or vocabulary cannot.
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
	if (r->type == LG_FRAME_GENERATE)
		provider_generate(r);
	else
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNSUPPORTED, NULL,
								"Tokenizing, loading and unloading apply to local models only.",
								"model \"%s\" is a remote model: the engine has no %s for it",
								model ? model : "", r->type == LG_FRAME_LOAD ? "weights to load" : "vocabulary");
}
