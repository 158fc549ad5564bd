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
	long		i = ix && ix->kind == LG_JSON_NUMBER ? (long) ix->number : (long) pos;
	tool_call  *t;

	if (i < 0 || i >= MAX_TOOL_CALLS)
	{
		provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "the provider sent tool call index %ld (at most %d calls)",
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

/* libcurl's header callback: status line, Content-Type, Retry-After. */
size_t
provider_on_header(char *buf, size_t size, size_t n, void *arg)
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
	for (size_t i = 0; i < len; i++)
	{
		if (buf[i] == '\n')
		{
			size_t		l = c->line.len;

			if (l > 0 && c->line.data[l - 1] == '\r')
				l--;
			provider_sse_line(c, c->line.data ? c->line.data : "", l);
			c->line.len = 0;
			if (c->line.data)
				c->line.data[0] = '\0';
			if (c->fail_status[0])
				return 0;
			continue;
		}
		if (c->line.len >= EVENT_MAX)
		{
			provider_call_fail(c, LG_WIRE_REMOTE_PROTOCOL, NULL, "a line from the provider is longer than %zu bytes",
					  EVENT_MAX);
			return 0;
		}
		lg_buf_append(&c->line, buf + i, 1);
	}
	return len;
}
