/*
 * chat_template.c — the public face of the Jinja interpreter: parse a chat
 * template once, render it for a conversation with the variables
 * transformers' apply_chat_template passes (messages, tools, documents,
 * add_generation_prompt, bos_token, eos_token, and any extra ones).
 */
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "jinja.h"
#include "unicode.h"

struct lg_chat_template
{
	jx_arena	ar;				/* tokens, tree and source text */
	jx_node    *root;
};

/* Offset of the first byte that is not well-formed UTF-8, or len. */
static size_t
utf8_invalid_at(const char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = (unsigned char) s[i];
		size_t		n;
		uint32_t	cp;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
		if (n == 0 || c > 0xF4 || i + n > len)
			return i;
		cp = c & (0x3F >> (n - 1));
		for (size_t k = 1; k < n; k++)
		{
			unsigned char cc = (unsigned char) s[i + k];

			if ((cc & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (cc & 0x3F);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n;
	}
	return len;
}

/* Parse a template. */
lg_chat_template *
lg_chat_template_parse(const char *src, size_t len, lg_error *err)
{
	lg_chat_template *t;
	char	   *text;
	size_t		n = 0,
				bad;
	jx_token   *toks;
	size_t		ntoks;

	if (src == NULL && len > 0)
	{
		lg_error_set(err, LG_ERR_ARG, "no template text");
		return NULL;
	}
	if ((bad = utf8_invalid_at(src, len)) < len)
	{
		lg_error_set(err, LG_ERR_FORMAT, "template is not valid UTF-8 (byte %zu)", bad);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	jx_arena_init(&t->ar, 0);
	if ((text = jx_alloc(&t->ar, len + 1)) == NULL)
		goto nomem;
	/* jinja2 reads \r\n and \r as \n, and drops one newline at the very end */
	for (size_t i = 0; i < len; i++)
	{
		if (src[i] == '\r')
		{
			text[n++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		}
		else
			text[n++] = src[i];
	}
	if (n > 0 && text[n - 1] == '\n')
		n--;
	text[n] = '\0';
	if (jx_lex(&t->ar, text, n, &toks, &ntoks, err) != LG_OK ||
		jx_parse(&t->ar, toks, ntoks, &t->root, err) != LG_OK)
	{
		lg_chat_template_free(t);
		return NULL;
	}
	return t;
nomem:
	lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	lg_chat_template_free(t);
	return NULL;
}

/* Free a template. */
void
lg_chat_template_free(lg_chat_template *t)
{
	if (t == NULL)
		return;
	jx_arena_free(&t->ar);
	free(t);
}

/* Parse JSON input and bind it as a variable (what names it in messages). */
static bool
bind_json(jx_ctx *c, jx_scope *s, const char *name, const char *json, size_t len,
		  lg_json_node **keep, jv *out)
{
	lg_error	jerr;
	jv			v;

	lg_error_clear(&jerr);
	*keep = lg_json_parse(json, len, &jerr);
	if (*keep == NULL)
		return jx_fail(c, LG_ERR_ARG, "%s: %s", name, jerr.msg);
	if (!jx_from_json(c, *keep, &v))
		return false;
	if (out)
		*out = v;
	return s == NULL || jx_scope_set(c, s, name, v);
}

/* Render. */
lg_status
lg_chat_template_render(const lg_chat_template *t, const lg_chat_render_params *p,
						lg_buf *out, lg_error *err)
{
	jx_ctx		c;
	lg_error	local;
	jx_scope   *root;
	lg_json_node *msgs = NULL,
			   *tools = NULL,
			   *extra = NULL;
	lg_buf		text;
	bool		ok;
	jv			v;

	if (t == NULL || p == NULL || out == NULL)
		return lg_error_set(err, LG_ERR_ARG, "no template or parameters");
	memset(&c, 0, sizeof(c));
	lg_error_clear(&local);
	jx_arena_init(&c.ar, LG_CHAT_MAX_MEMORY);
	lg_buf_init(&text);
	c.err = &local;
	c.out = &text;
	c.now_unix = p->now_unix;

	ok = (root = jx_scope_new(&c, NULL)) != NULL;
	if (ok)
	{
		if (p->messages_json == NULL)
			ok = jx_fail(&c, LG_ERR_ARG, "messages: no JSON given");
		else
			ok = bind_json(&c, root, "messages", p->messages_json, p->messages_len, &msgs, &v) &&
				(v.kind == JV_LIST || jx_fail(&c, LG_ERR_ARG, "messages: must be a JSON array"));
	}
	/* transformers passes tools=None and documents=None when there are none */
	if (ok && p->tools_json)
		ok = bind_json(&c, root, "tools", p->tools_json, p->tools_len, &tools, NULL);
	else if (ok)
		ok = jx_scope_set(&c, root, "tools", jv_none());
	ok = ok && jx_scope_set(&c, root, "documents", jv_none());
	ok = ok && jx_scope_set(&c, root, "add_generation_prompt", jv_bool(p->add_generation_prompt));
	ok = ok && jx_scope_set(&c, root, "bos_token", jv_str(p->bos_token ? p->bos_token : "",
														   p->bos_token ? strlen(p->bos_token) : 0));
	ok = ok && jx_scope_set(&c, root, "eos_token", jv_str(p->eos_token ? p->eos_token : "",
														   p->eos_token ? strlen(p->eos_token) : 0));
	if (ok && p->extra_json)
	{
		ok = bind_json(&c, NULL, "extra", p->extra_json, p->extra_len, &extra, &v);
		if (ok && v.kind != JV_DICT)
			ok = jx_fail(&c, LG_ERR_ARG, "extra: must be a JSON object");
		for (size_t i = 0; ok && i < v.u.d->n; i++)
		{
			char	   *name;

			if ((name = jx_strdup(&c.ar, v.u.d->keys[i].u.s.p, v.u.d->keys[i].u.s.n)) == NULL)
				ok = jx_nomem(&c);
			else
				ok = jx_scope_set(&c, root, name, v.u.d->vals[i]);
		}
	}
	c.depth = 0;
	c.line = 0;
	ok = ok && jx_exec(&c, root, t->root);
	if (ok && c.too_deep)
		ok = jx_fail(&c, LG_ERR_RANGE, "values nested more than %d levels", LG_CHAT_MAX_DEPTH);
	if (ok && !lg_buf_append(out, text.data ? text.data : "", text.len))
		ok = lg_error_set(&local, LG_ERR_NOMEM, "out of memory") == LG_OK;
	if (!ok && local.status == LG_OK)
		lg_error_set(&local, LG_ERR_INTERNAL, "template render failed");
	lg_buf_free(&text);
	lg_json_node_free(msgs);
	lg_json_node_free(tools);
	lg_json_node_free(extra);
	jx_arena_free(&c.ar);
	if (!ok)
	{
		if (err)
			*err = local;
		return local.status;
	}
	return LG_OK;
}
