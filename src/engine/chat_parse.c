/*
 * chat_parse.c — a model's answer to an OpenAI assistant message: the text
 * before the format's marker is the content, the calls after it become
 * tool_calls with fresh ids; anything that does not parse as calls of the
 * format is returned whole as content (see chat.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "chat_impl.h"
#include "json_value.h"

/* One call found in the answer. */
typedef struct chat_call
{
	char	   *name;
	lg_json_node *args;
} chat_call;

/* A cursor over the answer. */
typedef struct chat_scan
{
	const char *s;
	size_t		len;
	size_t		pos;
} chat_scan;

/* Skip JSON whitespace. */
static void
scan_ws(chat_scan *c)
{
	while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\n' ||
							   c->s[c->pos] == '\t' || c->s[c->pos] == '\r'))
		c->pos++;
}

/* Consume lit (after whitespace when ws); false, cursor unchanged, if it is not next. */
static bool
scan_lit(chat_scan *c, const char *lit_s, bool ws)
{
	size_t		save = c->pos;
	size_t		n = strlen(lit_s);

	if (ws)
		scan_ws(c);
	if (c->len - c->pos >= n && memcmp(c->s + c->pos, lit_s, n) == 0)
	{
		c->pos += n;
		return true;
	}
	c->pos = save;
	return false;
}

/* Parse the JSON value at the cursor into a tree; NULL if there is none. */
static lg_json_node *
scan_json(chat_scan *c)
{
	lg_json_value v;
	lg_error	e;
	size_t		pos = c->pos;
	lg_json_node *n = NULL;

	lg_json_value_init(&v);
	if (lg_json_parse_value(c->s, c->len, &pos, &v, &e) == LG_OK)
	{
		n = lg_json_parse(c->s + v.start, v.end - v.start, &e);
		if (n != NULL)
			c->pos = pos;
	}
	lg_json_value_free(&v);
	return n;
}

/* Take a {"name": …, "<args_key>": {…}} object (name_key may be tool_name) as a call. */
static bool
call_from_object(const lg_json_node *o, const char *name_key, const char *args_key, chat_call *call)
{
	const char *name = lg_json_get_str(o, name_key);
	const lg_json_node *args = lg_json_get(o, args_key);

	/* Llama writes "parameters" where others write "arguments": accept either */
	if (args == NULL)
		args = lg_json_get(o, strcmp(args_key, "arguments") == 0 ? "parameters" : "arguments");
	if (name == NULL || args == NULL || args->kind != LG_JSON_OBJECT)
		return false;
	call->name = strdup(name);
	call->args = NULL;
	if (call->name == NULL)
		return false;
	/* detach a copy of the arguments by re-parsing their text */
	{
		lg_buf		t;
		lg_error	e;

		lg_buf_init(&t);
		if (lg_json_write(&t, args, 0))
			call->args = lg_json_parse(t.data, t.len, &e);
		lg_buf_free(&t);
	}
	if (call->args == NULL)
	{
		free(call->name);
		return false;
	}
	return true;
}

/* Free the n calls found so far: the answer did not parse after all (returns -1). */
static int
calls_fail(chat_call *calls, int n)
{
	for (int i = 0; i < n; i++)
	{
		free(calls[i].name);
		lg_json_node_free(calls[i].args);
	}
	return -1;
}

/* Calls after the marker (the cursor is just past it); the count, or -1 if they do not parse. */
static int
scan_calls(lg_chat_format f, chat_scan *c, chat_call *calls, int max)
{
	int			n = 0;

	for (;;)
	{
		lg_json_node *o = NULL;
		bool		ok = false;

		if (n == max)
			return calls_fail(calls, n);
		switch (f)
		{
			case LG_CHAT_HERMES:
				scan_ws(c);
				o = scan_json(c);
				ok = o && call_from_object(o, "name", "arguments", &calls[n]);
				lg_json_node_free(o);
				if (!ok)
					return calls_fail(calls, n);
				n++;
				if (!scan_lit(c, "</tool_call>", true))
					return calls_fail(calls, n);
				if (!scan_lit(c, "<tool_call>", true))
					return n;
				continue;
			case LG_CHAT_FUNCTIONARY:
				{
					size_t		start = c->pos;
					const char *gt = memchr(c->s + start, '>', c->len - start);

					if (gt == NULL || gt == c->s + start)
						return calls_fail(calls, n);
					c->pos = (size_t) (gt - c->s) + 1;
					scan_ws(c);
					o = scan_json(c);
					if (o == NULL || o->kind != LG_JSON_OBJECT || !scan_lit(c, "</function>", true))
					{
						lg_json_node_free(o);
						return calls_fail(calls, n);
					}
					calls[n].name = strndup(c->s + start, (size_t) (gt - (c->s + start)));
					calls[n].args = o;
					if (calls[n].name == NULL)
					{
						lg_json_node_free(o);
						return calls_fail(calls, n);
					}
					n++;
					if (!scan_lit(c, "<function=", true))
						return n;
					continue;
				}
			case LG_CHAT_DEEPSEEK_R1:
				{
					const char *nl;
					size_t		start;

					if (!scan_lit(c, DS_CALL_BEGIN, true) || !scan_lit(c, "function", false) ||
						!scan_lit(c, DS_SEP, false))
						return n > 0 && scan_lit(c, DS_CALLS_END, true) ? n : calls_fail(calls, n);
					start = c->pos;
					nl = memchr(c->s + start, '\n', c->len - start);
					if (nl == NULL || nl == c->s + start)
						return calls_fail(calls, n);
					c->pos = (size_t) (nl - c->s);
					if (!scan_lit(c, "```json", true))
						return calls_fail(calls, n);
					scan_ws(c);
					o = scan_json(c);
					if (o == NULL || o->kind != LG_JSON_OBJECT || !scan_lit(c, "```", true) ||
						!scan_lit(c, DS_CALL_END, true))
					{
						lg_json_node_free(o);
						return calls_fail(calls, n);
					}
					calls[n].name = strndup(c->s + start, (size_t) (nl - (c->s + start)));
					calls[n].args = o;
					if (calls[n].name == NULL)
					{
						lg_json_node_free(o);
						return calls_fail(calls, n);
					}
					n++;
					continue;
				}
			case LG_CHAT_MISTRAL:
			case LG_CHAT_COMMAND_R:
				{
					const char *name_key = f == LG_CHAT_MISTRAL ? "name" : "tool_name";
					const char *args_key = f == LG_CHAT_MISTRAL ? "arguments" : "parameters";

					if (f == LG_CHAT_COMMAND_R && !scan_lit(c, "```json", true))
						return calls_fail(calls, n);
					scan_ws(c);
					o = scan_json(c);
					if (o == NULL || o->kind != LG_JSON_ARRAY || o->n == 0 || o->n > (size_t) max)
					{
						lg_json_node_free(o);
						return calls_fail(calls, n);
					}
					for (size_t i = 0; i < o->n; i++)
					{
						if (!call_from_object(o->items[i], name_key, args_key, &calls[n]))
						{
							lg_json_node_free(o);
							return calls_fail(calls, n);
						}
						n++;
					}
					lg_json_node_free(o);
					if (f == LG_CHAT_COMMAND_R && !scan_lit(c, "```", true))
						return calls_fail(calls, n);
					return n;
				}
			case LG_CHAT_LLAMA3:
				/* the marker "{" was the object's own brace: read from it */
				c->pos--;
				o = scan_json(c);
				ok = o && call_from_object(o, "name", "parameters", &calls[n]);
				lg_json_node_free(o);
				return ok ? 1 : calls_fail(calls, n);
			case LG_CHAT_GENERIC:
			default:
				{
					size_t		m = strlen(lg_chat_formats[LG_CHAT_GENERIC].marker);
					const lg_json_node *tc;

					c->pos -= m;
					o = scan_json(c);
					tc = lg_json_get(o, "tool_call");
					ok = tc && call_from_object(tc, "name", "arguments", &calls[n]);
					lg_json_node_free(o);
					return ok ? 1 : calls_fail(calls, n);
				}
		}
	}
}

/* A fresh call id, "call_" and 24 letters and digits. */
static void
call_id(char *out)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[24];

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t) sizeof(r))
	{
		uint64_t	x = (uint64_t) time(NULL) ^ (uint64_t) (uintptr_t) out;

		for (size_t i = 0; i < sizeof(r); i++)
		{
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			r[i] = (unsigned char) (x >> 56);
		}
	}
	memcpy(out, "call_", 5);
	for (int i = 0; i < 24; i++)
		out[5 + i] = alnum[r[i] % 62];
	out[29] = '\0';
}

/* Trailing whitespace of s[0..n) removed: the new length. */
static size_t
rtrim(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	return n;
}

/* The prefix of a cut answer up to the end of its last closed call (see chat.h). */
size_t
lg_chat_complete_prefix(lg_chat_format f, const char *text, size_t len)
{
	const char *close = f == LG_CHAT_HERMES ? "</tool_call>" : f == LG_CHAT_FUNCTIONARY ? "</function>" : NULL;
	size_t		clen;
	size_t		end = 0;
	const char *p = text;

	if (close == NULL)
		return 0;
	clen = strlen(close);
	while ((size_t) (p - text) < len)
	{
		const char *m = memmem(p, len - (size_t) (p - text), close, clen);

		if (m == NULL)
			break;
		end = (size_t) (m - text) + clen;
		p = m + clen;
	}
	return end;
}

/* The message for an answer that may not hold calls (no tools, or tool_choice "none"). */
lg_status
lg_chat_content_message(const char *text, size_t len, lg_buf *out, lg_error *err)
{
	if (!append_lit(out, "{\"role\":\"assistant\",\"content\":") ||
		!lg_buf_append_json_str(out, text, len) || !append_lit(out, "}"))
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	return LG_OK;
}

/* Content before the marker, the calls after it; anything that does not parse is content. */
lg_status
lg_chat_parse_output(lg_chat_format f, const char *text, size_t len, lg_buf *out, int *n_calls,
					 lg_error *err)
{
	const chat_format_def *fd = &lg_chat_formats[(int) f >= 0 && f < LG_CHAT_N_FORMATS ? f : LG_CHAT_GENERIC];
	chat_call	calls[CHAT_MAX_TOOLS];
	chat_scan	c = {.s = text, .len = len, .pos = 0};
	size_t		mlen = strlen(fd->marker);
	size_t		content_len = len;
	int			n = -1;
	bool		ok;

	if (n_calls)
		*n_calls = 0;
	if (fd->anywhere)
	{
		const char *m = memmem(text, len, fd->marker, mlen);

		if (m != NULL)
		{
			content_len = rtrim(text, (size_t) (m - text));
			c.pos = (size_t) (m - text) + mlen;
			n = scan_calls(f, &c, calls, CHAT_MAX_TOOLS);
		}
	}
	else
	{
		/*
		 * At the very start, as the grammar has it: " {..." was free text
		 * there, never constrained, so it must not become a call here.
		 */
		if (len >= mlen && memcmp(text, fd->marker, mlen) == 0)
		{
			c.pos += mlen;
			content_len = 0;
			n = scan_calls(f, &c, calls, CHAT_MAX_TOOLS);
		}
	}
	/* trailing text after the calls (other than whitespace) means they were not clean calls */
	if (n > 0)
	{
		scan_ws(&c);
		if (c.pos != len)
		{
			for (int i = 0; i < n; i++)
			{
				free(calls[i].name);
				lg_json_node_free(calls[i].args);
			}
			n = -1;
		}
	}
	if (n <= 0)
	{
		n = 0;
		content_len = len;
	}

	ok = append_lit(out, "{\"role\":\"assistant\",\"content\":");
	if (ok && content_len == 0 && n > 0)
		ok = append_lit(out, "null");
	else if (ok)
		ok = lg_buf_append_json_str(out, text, content_len);
	if (ok && n > 0)
	{
		ok = append_lit(out, ",\"tool_calls\":[");
		for (int i = 0; ok && i < n; i++)
		{
			char		id[32];
			lg_buf		args;

			call_id(id);
			lg_buf_init(&args);
			ok = lg_json_write(&args, calls[i].args, 0) &&
				lg_buf_appendf(out, "%s{\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":", i ? "," : "", id) &&
				lg_buf_append_json_str(out, calls[i].name, strlen(calls[i].name)) &&
				append_lit(out, ",\"arguments\":") &&
				lg_buf_append_json_str(out, args.data, args.len) && append_lit(out, "}}");
			lg_buf_free(&args);
		}
		ok = ok && append_lit(out, "]");
	}
	ok = ok && append_lit(out, "}");
	for (int i = 0; i < n; i++)
	{
		free(calls[i].name);
		lg_json_node_free(calls[i].args);
	}
	if (n_calls)
		*n_calls = n;
	if (!ok)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	return LG_OK;
}
