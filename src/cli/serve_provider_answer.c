/*
 * serve_provider_answer.c — reading a remote model's answer as it arrives
 * (libcurl's callbacks): Server-Sent Events, each a JSON chunk whose text is
 * streamed at once as a PIECE and whose tool-call deltas, finish reason and
 * usage are kept for the END; or one JSON body (a provider that does not
 * stream, an error).  An answer that is not the OpenAI format fails the
 * call with remote_protocol; an error event with remote_unavailable.
 */
#include "serve_provider.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_value.h"
#include "serve_vectors.h"

/* Copy src into dst (one line, at most size - 1 bytes), with the API key replaced by "***". */
void
provider_copy_redacted(char *dst, size_t size, const char *src, size_t len, const char *key)
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
void
provider_call_fail(provider_call *c, const char *status, const char *detail, const char *fmt, ...)
{
	va_list		ap;

	if (c->fail_status[0])
		return;
	snprintf(c->fail_status, sizeof(c->fail_status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
	va_end(ap);
	if (detail)
		provider_copy_redacted(c->fail_detail, sizeof(c->fail_detail), detail, strlen(detail), c->api_key);
}

/* Stream text as a PIECE. */
static void
emit_text(provider_call *c, const char *s, size_t len)
{
	serve_request *r = c->r;
	serve_frame f = {0};
	int64_t		now = serve_now_us();
	bool		first = c->n_pieces == 0;

	if (len == 0)
		return;
	if (!c->streamed)
	{
		c->t_first_us = now;
		r->gen_start_us = now;
		atomic_store(&r->state, SERVE_STATE_GENERATING);
	}
	c->streamed = true;
	c->n_pieces++;
	atomic_fetch_add(&r->n_gen, 1);
	/* a delta stands for a token in the metrics: providers stream about one token per delta */
	serve_metrics_token(r->metrics, first, now - (first ? r->arrive_us : r->last_token_us));
	r->last_token_us = now;
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
	long		i = (long) pos;
	tool_call  *t;

	if (ix != NULL && !serve_json_count(ix, MAX_TOOL_CALLS - 1, &i))
	{
		provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL,
						   "the provider sent tool call index %.40s%s (a whole number below %d is expected)",
						   ix->kind == LG_JSON_NUMBER && ix->str ? ix->str : "a ",
						   ix->kind == LG_JSON_NUMBER && ix->str ? "" : lg_json_kind_name(ix->kind),
						   MAX_TOOL_CALLS);
		return;
	}
	if (i >= MAX_TOOL_CALLS)
	{
		provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "the provider sent more than %d tool calls",
						   MAX_TOOL_CALLS);
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

	/* a count that is not one (negative, fractional, past int) is left out: the END counts pieces */
	(void) serve_json_count(p, INT32_MAX, &c->n_prompt);
	(void) serve_json_count(g, INT32_MAX, &c->n_completion);
}

/* The provider's error object ({"error": {"message": ..}} or {"error": ".."}) as text, or NULL. */
const char *
provider_error_message(const lg_json_node *o)
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
	const char *err = provider_error_message(o);

	if (err)
	{
		char		said[1024];

		snprintf(said, sizeof(said), "The provider said: %s", err);
		provider_call_fail(c, LG_WIRE_REMOTE_UNAVAILABLE, said, "the provider reported an error in its answer");
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
		provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "the provider's answer has no \"choices\"");
}

/* Parse one JSON text (an SSE event's data or a whole body) and take it. */
void
provider_take_json(provider_call *c, const char *s, size_t len)
{
	lg_error	err = {0};
	lg_json_node *o = lg_json_parse(s, len, &err);

	if (o == NULL || o->kind != LG_JSON_OBJECT)
	{
		char		head[120];

		provider_copy_redacted(head, sizeof(head), s, len, c->api_key);
		provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, o ? "The data is not a JSON object." : err.msg,
				  "malformed answer from the provider: \"%s\"", head);
	}
	else
		take_object(c, o);
	lg_json_node_free(o);
}

/* One complete SSE line (without its end of line). */
void
provider_sse_line(provider_call *c, const char *s, size_t len)
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
			provider_take_json(c, c->data.data, c->data.len);
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
			provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "an event from the provider is longer than %zu bytes",
					  EVENT_MAX);
			return;
		}
		lg_buf_append(&c->data, s, len);
	}
	/* comments (":") and the fields event, id and retry mean nothing here */
}

/* The assistant message of a chat answer: content and the assembled tool calls. */
void
provider_answer_message(provider_call *c, lg_buf *m)
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

/*
 * A Retry-After value (RFC 9110 10.2.3): delay-seconds, or an HTTP date
 * (now is the time to count from).  Seconds to wait, or -1 when it is
 * neither.  strtod alone would also take "0x1p3", "1e2" or "5 apples":
 * delay-seconds are digits (a fraction is tolerated) and blanks only;
 * anything else is read as a date, and is -1 unless it is one.
 */
double
provider_parse_retry_after(const char *v, time_t now)
{
	const char *p = v;
	bool		digits = false;
	time_t		t;

	while (*p == ' ' || *p == '\t')
		p++;
	while (*p >= '0' && *p <= '9')
		p++, digits = true;
	if (digits && *p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (digits)
	{
		const char *end = p;

		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (*end == '\0')
			return strtod(v, NULL); /* digits only: finite, at worst huge */
	}
	t = curl_getdate(v, &now);
	if (t <= 0)
		return -1;
	return t > now ? (double) (t - now) : 0;
}

/*
 * libcurl's header callback: status line, Content-Type, Retry-After.  The
 * header is not NUL-terminated: it is copied (at most 255 bytes, enough
 * for these three) before it is read as a string.
 */
size_t
provider_on_header(char *buf, size_t size, size_t n, void *arg)
{
	provider_call *c = arg;
	size_t		len = size * n;
	char		h[256];

	snprintf(h, sizeof(h), "%.*s", (int) (len < sizeof(h) - 1 ? len : sizeof(h) - 1), buf);
	if (len > 5 && strncmp(h, "HTTP/", 5) == 0)
	{
		/* a new response (after 100 Continue, say): forget the last one's headers */
		const char *sp = strchr(h, ' ');
		long		st = sp ? strtol(sp + 1, NULL, 10) : 0;

		c->http_status = st >= 100 && st <= 999 ? st : 0;
		c->event_stream = false;
		c->retry_after_s = -1;
	}
	else if (len > 13 && strncasecmp(h, "content-type:", 13) == 0)
		c->event_stream = strcasestr(h + 13, "text/event-stream") != NULL;
	else if (len > 12 && strncasecmp(h, "retry-after:", 12) == 0)
		c->retry_after_s = provider_parse_retry_after(h + 12, time(NULL));
	return len;
}

/* The transfer ended: take a JSON body, or the stream's last line and event if unterminated. */
void
provider_answer_end(provider_call *c)
{
	if (c->fail_status[0])
		return;
	if (!c->event_stream && c->body.len > 0)
		provider_take_json(c, c->body.data, c->body.len);
	else if (c->event_stream && c->line.len > 0)
		provider_sse_line(c, c->line.data, c->line.len);
	if (c->event_stream)
		provider_sse_line(c, "", 0);	/* an event not closed by a blank line */
}

/* libcurl's write callback: an SSE stream, a JSON body, or an error body. */
size_t
provider_on_body(char *buf, size_t size, size_t n, void *arg)
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
				provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "the provider's answer is longer than %zu bytes",
						  BODY_MAX);
				return 0;
			}
			return len;			/* an error body: its beginning says enough */
		}
		lg_buf_append(&c->body, buf, len);
		return len;
	}
	/* a line ends at CRLF, LF or CR (the SSE grammar); a CRLF split across calls is one end */
	for (size_t i = 0; i < len;)
	{
		size_t		run = i;

		if (c->after_cr && buf[i] == '\n')
		{
			c->after_cr = false;
			i++;
			continue;
		}
		c->after_cr = false;
		while (run < len && buf[run] != '\n' && buf[run] != '\r')
			run++;
		if (c->line.len + (run - i) > EVENT_MAX)
		{
			provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "a line from the provider is longer than %zu bytes",
							   EVENT_MAX);
			return 0;
		}
		lg_buf_append(&c->line, buf + i, run - i);
		if (run == len)
			break;
		c->after_cr = buf[run] == '\r';
		provider_sse_line(c, c->line.data ? c->line.data : "", c->line.len);
		c->line.len = 0;
		if (c->line.data)
			c->line.data[0] = '\0';
		if (c->fail_status[0])
			return 0;
		i = run + 1;
	}
	return len;
}
