/*
 * jinja_json.c — JSON in and out of the interpreter.  In: the messages,
 * tools and extra variables, as Python's json.loads gives them (objects in
 * document order, integers as int, other numbers as float).  Out: the
 * tojson filter as transformers defines it, json.dumps(x,
 * ensure_ascii=False, indent=…, separators=…, sort_keys=…), byte for byte:
 * ", " and ": " between items without indent, "," with it, floats as
 * Python's repr, non-ASCII text unescaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

/* A JSON tree as Python values. */
bool
jx_from_json(jx_ctx *c, const lg_json_node *n, jv *out)
{
	if (++c->depth > LG_JSON_MAX_DEPTH + 8)
		return jx_fail(c, LG_ERR_RANGE, "JSON nested too deeply");
	switch (n->kind)
	{
		case LG_JSON_NULL:
			*out = jv_none();
			break;
		case LG_JSON_BOOL:
			*out = jv_bool(n->boolean);
			break;
		case LG_JSON_NUMBER:
			*out = n->is_int ? jv_int(n->integer) : jv_float(n->number);
			break;
		case LG_JSON_STRING:
			*out = jv_str(n->str, n->str_len);
			break;
		case LG_JSON_ARRAY:
			if (!jv_new_list(c, n->n, false, out))
				return false;
			for (size_t i = 0; i < n->n; i++)
				if (!jx_from_json(c, n->items[i], &out->u.l->items[i]))
					return false;
			break;
		case LG_JSON_OBJECT:
			if (!jv_new_dict(c, JV_DICT, n->n, out))
				return false;
			for (size_t i = 0; i < n->n; i++)
			{
				jv			v;

				if (!jx_from_json(c, n->items[i], &v) ||
					!jx_dict_set(c, out->u.d, jv_str(n->keys[i], n->key_lens[i]), v))
					return false;
			}
			break;
		default:
			return jx_fail(c, LG_ERR_INTERNAL, "unknown JSON kind");
	}
	c->depth--;
	return true;
}

/* A JSON string literal as json.dumps(ensure_ascii=False) writes it. */
static bool
append_json_str(lg_buf *b, const char *s, size_t n)
{
	bool		ok = lg_buf_append(b, "\"", 1);
	size_t		run = 0;

	for (size_t i = 0; i < n && ok; i++)
	{
		unsigned char ch = (unsigned char) s[i];
		const char *esc = NULL;
		char		tmp[8];

		if (ch == '"')
			esc = "\\\"";
		else if (ch == '\\')
			esc = "\\\\";
		else if (ch == '\n')
			esc = "\\n";
		else if (ch == '\r')
			esc = "\\r";
		else if (ch == '\t')
			esc = "\\t";
		else if (ch == '\b')
			esc = "\\b";
		else if (ch == '\f')
			esc = "\\f";
		else if (ch < 0x20)
		{
			snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
			esc = tmp;
		}
		if (esc == NULL)
			continue;
		ok &= lg_buf_append(b, s + run, i - run);
		ok &= lg_buf_append(b, esc, strlen(esc));
		run = i + 1;
	}
	ok &= lg_buf_append(b, s + run, n - run);
	return ok && lg_buf_append(b, "\"", 1);
}

typedef struct dumps
{
	bool		has_indent;
	const char *indent;
	size_t		indent_len;
	const char *item_sep;
	const char *key_sep;
	bool		sort_keys;
} dumps;

/* Newline and indentation for nesting level. */
static bool
newline(jx_ctx *c, lg_buf *b, const dumps *d, int level)
{
	bool		ok = lg_buf_append(b, "\n", 1);

	for (int i = 0; i < level && ok; i++)
		ok &= lg_buf_append(b, d->indent, d->indent_len);
	if (b->len > LG_CHAT_MAX_OUTPUT)
		return jx_fail(c, LG_ERR_RANGE, "tojson output longer than %u MiB", LG_CHAT_MAX_OUTPUT >> 20);
	return ok || jx_nomem(c);
}

/* A dict key as json.dumps converts it. */
static bool
key_text(jx_ctx *c, jv k, lg_buf *b)
{
	char		num[48];

	switch (k.kind)
	{
		case JV_STR:
			return append_json_str(b, k.u.s.p, k.u.s.n);
		case JV_INT:
			return lg_buf_appendf(b, "\"%lld\"", (long long) k.u.i);
		case JV_FLOAT:
			jx_float_repr(k.u.f, num, sizeof(num));
			return lg_buf_appendf(b, "\"%s\"", num);
		case JV_BOOL:
			return lg_buf_appendf(b, "\"%s\"", k.u.b ? "true" : "false");
		case JV_NONE:
			return lg_buf_append(b, "\"null\"", 6);
		default:
			return jx_fail(c, LG_ERR_FORMAT, "keys must be str, int, float, bool or None, not %s",
						   jv_type_name(k));
	}
}

/* Order of member indexes for sort_keys (string keys bytewise). */
static int
cmp_keys(const void *pa, const void *pb, void *arg)
{
	const jx_dict *d = arg;
	jv			a = d->keys[*(const size_t *) pa],
				b = d->keys[*(const size_t *) pb];
	size_t		n;
	int			r;

	if (a.kind != JV_STR || b.kind != JV_STR)
		return (int) a.kind - (int) b.kind;
	n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
	r = n ? memcmp(a.u.s.p, b.u.s.p, n) : 0;
	return r ? r : (a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n);
}

/* One value. */
static bool
dump(jx_ctx *c, lg_buf *b, jv v, const dumps *d, int level)
{
	char		num[48];
	bool		ok = true;

	if (++c->depth > LG_CHAT_MAX_DEPTH)
		return jx_fail(c, LG_ERR_RANGE, "tojson: value nested too deeply (or circular)");
	if (b->len > LG_CHAT_MAX_OUTPUT)
		return jx_fail(c, LG_ERR_RANGE, "tojson output longer than %u MiB", LG_CHAT_MAX_OUTPUT >> 20);
	switch (v.kind)
	{
		case JV_NONE:
			ok = lg_buf_append(b, "null", 4);
			break;
		case JV_BOOL:
			ok = v.u.b ? lg_buf_append(b, "true", 4) : lg_buf_append(b, "false", 5);
			break;
		case JV_INT:
			ok = lg_buf_appendf(b, "%lld", (long long) v.u.i);
			break;
		case JV_FLOAT:
			if (v.u.f != v.u.f)
				ok = lg_buf_append(b, "NaN", 3);
			else if (v.u.f > 1.7976931348623157e308)
				ok = lg_buf_append(b, "Infinity", 8);
			else if (v.u.f < -1.7976931348623157e308)
				ok = lg_buf_append(b, "-Infinity", 9);
			else
			{
				jx_float_repr(v.u.f, num, sizeof(num));
				ok = lg_buf_append(b, num, strlen(num));
			}
			break;
		case JV_STR:
			ok = append_json_str(b, v.u.s.p, v.u.s.n);
			break;
		case JV_LIST:
			if (v.u.l->n == 0)
			{
				ok = lg_buf_append(b, "[]", 2);
				break;
			}
			ok = lg_buf_append(b, "[", 1);
			for (size_t i = 0; ok && i < v.u.l->n; i++)
			{
				if (i)
					ok = lg_buf_append(b, d->item_sep, strlen(d->item_sep));
				if (ok && d->has_indent)
					ok = newline(c, b, d, level + 1);
				ok = ok && dump(c, b, v.u.l->items[i], d, level + 1);
			}
			if (ok && d->has_indent)
				ok = newline(c, b, d, level);
			ok = ok && lg_buf_append(b, "]", 1);
			break;
		case JV_DICT:
			{
				size_t	   *order;

				if (v.u.d->n == 0)
				{
					ok = lg_buf_append(b, "{}", 2);
					break;
				}
				if ((order = jx_alloc(&c->ar, v.u.d->n * sizeof(size_t))) == NULL)
					return jx_nomem(c);
				for (size_t i = 0; i < v.u.d->n; i++)
					order[i] = i;
				if (d->sort_keys)
				{
					for (size_t i = 0; i < v.u.d->n; i++)
						if (v.u.d->keys[i].kind != JV_STR)
							return jx_fail(c, LG_ERR_FORMAT, "tojson: sort_keys needs string keys");
					qsort_r(order, v.u.d->n, sizeof(size_t), cmp_keys, v.u.d);
				}
				ok = lg_buf_append(b, "{", 1);
				for (size_t k = 0; ok && k < v.u.d->n; k++)
				{
					size_t		i = order[k];

					if (k)
						ok = lg_buf_append(b, d->item_sep, strlen(d->item_sep));
					if (ok && d->has_indent)
						ok = newline(c, b, d, level + 1);
					ok = ok && key_text(c, v.u.d->keys[i], b) &&
						lg_buf_append(b, d->key_sep, strlen(d->key_sep)) &&
						dump(c, b, v.u.d->vals[i], d, level + 1);
				}
				if (ok && d->has_indent)
					ok = newline(c, b, d, level);
				ok = ok && lg_buf_append(b, "}", 1);
				break;
			}
		default:
			if (v.kind == JV_ITER)
				return jx_fail(c, LG_ERR_FORMAT, "Object of type %s is not JSON serializable", v.u.l->what);
			return jx_fail(c, LG_ERR_FORMAT, "Object of type %s is not JSON serializable", jv_type_name(v));
	}
	c->depth--;
	if (!ok)
		return c->err->status != LG_OK ? false : jx_nomem(c);
	return true;
}

/* json.dumps as transformers' tojson filter calls it. */
bool
jx_tojson(jx_ctx *c, lg_buf *b, jv v, bool has_indent, const char *indent, size_t indent_len,
		  const char *item_sep, const char *key_sep, bool sort_keys)
{
	dumps		d = {
		.has_indent = has_indent,
		.indent = indent ? indent : "",
		.indent_len = indent_len,
		.item_sep = item_sep ? item_sep : (has_indent ? "," : ", "),
		.key_sep = key_sep ? key_sep : ": ",
		.sort_keys = sort_keys,
	};

	return dump(c, b, v, &d, 0);
}
