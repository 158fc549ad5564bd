/*
 * jinja_eval.c — walking the syntax tree: expressions to values, statements
 * to output, with jinja2's scoping: a for loop's body starts afresh from the
 * enclosing scope on every iteration (a `set` inside it is gone on the
 * next), a macro sees the scope it was defined in as it is when called, an
 * `if` opens no scope.  Attribute and item access follow the sandbox:
 * `x.name` tries the attribute (a method) before the item, `x['name']` the
 * item before the attribute, and a missing one is undefined.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"
#include "unicode.h"

/* ---- scopes ---- */

/* A new empty scope. */
jx_scope *
jx_scope_new(jx_ctx *c, jx_scope *parent)
{
	jx_scope   *s = jx_alloc(&c->ar, sizeof(jx_scope));

	if (s == NULL)
	{
		jx_nomem(c);
		return NULL;
	}
	s->parent = parent;
	return s;
}

/* Bind name in this scope. */
bool
jx_scope_set(jx_ctx *c, jx_scope *s, const char *name, jv v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
		{
			s->vals[i] = v;
			return true;
		}
	if (s->n == s->cap)
	{
		size_t		cap = s->cap ? s->cap * 2 : 8;
		const char **names = jx_alloc(&c->ar, cap * sizeof(char *));
		jv		   *vals = jx_alloc(&c->ar, cap * sizeof(jv));

		if (names == NULL || vals == NULL)
			return jx_nomem(c);
		if (s->n)
		{
			memcpy(names, s->names, s->n * sizeof(char *));
			memcpy(vals, s->vals, s->n * sizeof(jv));
		}
		s->names = names;
		s->vals = vals;
		s->cap = cap;
	}
	s->names[s->n] = name;
	s->vals[s->n] = v;
	s->n++;
	return true;
}

/* The binding of name in s or an enclosing scope, or NULL. */
jv *
jx_scope_lookup(jx_scope *s, const char *name)
{
	for (; s; s = s->parent)
		for (size_t i = s->n; i-- > 0;)
			if (strcmp(s->names[i], name) == 0)
				return &s->vals[i];
	return NULL;
}

/* Global functions by name. */
static const struct
{
	const char *name;
	int			fn;
} globals[] = {
	{"range", JG_RANGE}, {"namespace", JG_NAMESPACE}, {"dict", JG_DICT},
	{"raise_exception", JG_RAISE_EXCEPTION}, {"strftime_now", JG_STRFTIME_NOW},
};

/* ---- output ---- */

/* Append to the current output, within the size limit. */
static bool
emit(jx_ctx *c, const char *s, size_t n)
{
	if (c->out->len > LG_CHAT_MAX_OUTPUT || n > LG_CHAT_MAX_OUTPUT - c->out->len)
		return jx_fail(c, LG_ERR_RANGE, "rendered text longer than %u MiB", LG_CHAT_MAX_OUTPUT >> 20);
	if (!lg_buf_append(c->out, s, n))
		return jx_nomem(c);
	return true;
}

/* Run body with output going to a new buffer; the text as a string value. */
static bool
capture(jx_ctx *c, jx_scope *s, const jx_node *body, jv *out)
{
	lg_buf	   *saved = c->out;
	lg_buf		b;
	bool		ok;

	lg_buf_init(&b);
	c->out = &b;
	ok = jx_exec(c, s, body);
	c->out = saved;
	ok = ok && jv_strdup(c, b.data ? b.data : "", b.len, out);
	lg_buf_free(&b);
	return ok;
}

/* An undefined value whose use fails with this message (jinja2's hint). */
static jv
undef_msg(jx_ctx *c, const char *fmt, const char *a, const char *b)
{
	char		buf[256];
	jv			v = jv_undef(NULL);

	snprintf(buf, sizeof(buf), fmt, a, b);
	v.u.s.p = jx_strdup(&c->ar, buf, strlen(buf));
	v.u.s.n = v.u.s.p != NULL;
	return v;
}

/* The error for using an undefined value. */
static bool
undefined_error(jx_ctx *c, jv v)
{
	return jx_undefined_error(c, v);
}

/* ---- attribute and item access ---- */

/* loop.<name>. */
static bool
loop_attr(jx_ctx *c, jx_loop *l, const char *name, jv *out)
{
	size_t		n = l->items->n,
				i = l->index0;

	if (!strcmp(name, "index"))
		*out = jv_int((int64_t) i + 1);
	else if (!strcmp(name, "index0"))
		*out = jv_int((int64_t) i);
	else if (!strcmp(name, "revindex"))
		*out = jv_int((int64_t) (n - i));
	else if (!strcmp(name, "revindex0"))
		*out = jv_int((int64_t) (n - i - 1));
	else if (!strcmp(name, "first"))
		*out = jv_bool(i == 0);
	else if (!strcmp(name, "last"))
		*out = jv_bool(i + 1 == n);
	else if (!strcmp(name, "length"))
		*out = jv_int((int64_t) n);
	else if (!strcmp(name, "depth"))
		*out = jv_int(l->depth);
	else if (!strcmp(name, "depth0"))
		*out = jv_int(l->depth - 1);
	else if (!strcmp(name, "previtem"))
		*out = i > 0 ? l->items->items[i - 1] : jv_undef("previtem");
	else if (!strcmp(name, "nextitem"))
		*out = i + 1 < n ? l->items->items[i + 1] : jv_undef("nextitem");
	else if (!strcmp(name, "cycle"))
	{
		jx_method  *m = jx_alloc(&c->ar, sizeof(jx_method));

		if (m == NULL)
			return jx_nomem(c);
		m->self.kind = JV_LOOP;
		m->self.u.loop = l;
		m->name = "cycle";
		out->kind = JV_METHOD;
		out->u.bm = m;
	}
	else
		*out = jv_undef(name);
	return true;
}

/* A bound method value. */
static bool
bind_method(jx_ctx *c, jv self, const char *name, jv *out)
{
	jx_method  *m = jx_alloc(&c->ar, sizeof(jx_method));

	if (m == NULL)
		return jx_nomem(c);
	m->self = self;
	m->name = name;
	out->kind = JV_METHOD;
	out->u.bm = m;
	return true;
}

/* obj.name: the attribute (a method, a namespace member, a loop field), else the item. */
bool
jx_getattr(jx_ctx *c, jv obj, const char *name, jv *out)
{
	switch (obj.kind)
	{
		case JV_UNDEF:
			return undefined_error(c, obj);
		case JV_NS:
			{
				jv		   *v = jx_dict_get_str(obj.u.d, name);

				*out = v ? *v : jv_undef(name);
				return true;
			}
		case JV_LOOP:
			return loop_attr(c, obj.u.loop, name, out);
		case JV_DICT:
			if (jx_has_method(obj, name))
				return bind_method(c, obj, name, out);
			{
				jv		   *v = jx_dict_get_str(obj.u.d, name);

				*out = v ? *v : undef_msg(c, "'dict object' has no attribute '%s'%s", name, "");
				return true;
			}
		default:
			if (jx_has_method(obj, name))
				return bind_method(c, obj, name, out);
			*out = undef_msg(c, "'%s' object has no attribute '%s'", jv_type_name(obj), name);
			return true;
	}
}

/* Python index normalisation: false when out of range. */
static bool
norm_index(int64_t i, size_t n, size_t *out)
{
	if (i < 0)
		i += (int64_t) n;
	if (i < 0 || (uint64_t) i >= n)
		return false;
	*out = (size_t) i;
	return true;
}

/* obj[key]: the item, else (for a string key) the attribute; missing → undefined. */
bool
jx_getitem(jx_ctx *c, jv obj, jv key, jv *out)
{
	size_t		i;

	if (obj.kind == JV_UNDEF)
		return undefined_error(c, obj);
	switch (obj.kind)
	{
		case JV_DICT:
			if (key.kind != JV_LIST && key.kind != JV_DICT)
			{
				jv		   *v = jx_dict_get(obj.u.d, key);

				if (v)
				{
					*out = *v;
					return true;
				}
			}
			break;
		case JV_LIST:
			if (key.kind == JV_INT || key.kind == JV_BOOL)
			{
				if (norm_index(key.kind == JV_INT ? key.u.i : key.u.b, obj.u.l->n, &i))
				{
					*out = obj.u.l->items[i];
					return true;
				}
				{
					char		num[32];

					snprintf(num, sizeof(num), "%lld", (long long) (key.kind == JV_INT ? key.u.i : key.u.b));
					*out = undef_msg(c, "%s object has no element %s", jv_type_name(obj), num);
				}
				return true;
			}
			break;
		case JV_STR:
			if (key.kind == JV_INT || key.kind == JV_BOOL)
			{
				size_t		n = jx_utf8_count(obj.u.s.p, obj.u.s.n);

				if (norm_index(key.kind == JV_INT ? key.u.i : key.u.b, n, &i))
				{
					size_t		a = jx_utf8_offset(obj.u.s.p, obj.u.s.n, i);
					size_t		b = jx_utf8_offset(obj.u.s.p, obj.u.s.n, i + 1);

					*out = jv_str(obj.u.s.p + a, b - a);
					return true;
				}
				*out = jv_undef(NULL);
				return true;
			}
			break;
		default:
			break;
	}
	if (key.kind == JV_STR)
	{
		char	   *name = jx_strdup(&c->ar, key.u.s.p, key.u.s.n);

		if (name == NULL)
			return jx_nomem(c);
		if (strlen(name) == key.u.s.n)
			return jx_getattr(c, obj, name, out);
		*out = jv_undef(NULL);
		return true;
	}
	*out = jv_undef(NULL);
	return true;
}

/* Python slice bounds for length n (step != 0); the indexes in *idx, their count in *cnt. */
static bool
slice_indexes(jx_ctx *c, size_t n, jv vstart, jv vstop, jv vstep, size_t **idx, size_t *cnt)
{
	int64_t		step = vstep.kind == JV_NONE ? 1 : vstep.u.i;
	int64_t		len = (int64_t) n,
				start,
				stop;
	size_t		k = 0;

	if (step == 0)
		return jx_fail(c, LG_ERR_FORMAT, "slice step cannot be zero");
	if (vstart.kind == JV_NONE)
		start = step < 0 ? len - 1 : 0;
	else
	{
		start = vstart.u.i;
		if (start < 0)
			start += len;
		if (start < 0)
			start = step < 0 ? -1 : 0;
		if (start >= len)
			start = step < 0 ? len - 1 : len;
	}
	if (vstop.kind == JV_NONE)
		stop = step < 0 ? -1 : len;
	else
	{
		stop = vstop.u.i;
		if (stop < 0)
			stop += len;
		if (stop < 0)
			stop = step < 0 ? -1 : 0;
		if (stop >= len)
			stop = step < 0 ? len - 1 : len;
	}
	*idx = jx_alloc(&c->ar, (n ? n : 1) * sizeof(size_t));
	if (*idx == NULL)
		return jx_nomem(c);
	if (step > 0)
		for (int64_t i = start; i < stop; i += step)
			(*idx)[k++] = (size_t) i;
	else
		for (int64_t i = start; i > stop; i += step)
			(*idx)[k++] = (size_t) i;
	*cnt = k;
	return true;
}

/* obj[a:b:c]. */
static bool
eval_slice(jx_ctx *c, jx_scope *s, jv obj, const jx_node *sl, jv *out)
{
	jv			parts[3] = {jv_none(), jv_none(), jv_none()};
	const jx_node *nodes[3] = {sl->a, sl->b, sl->c};
	size_t	   *idx,
				cnt;

	for (int k = 0; k < 3; k++)
	{
		if (nodes[k] && !jx_eval(c, s, nodes[k], &parts[k]))
			return false;
		if (parts[k].kind == JV_BOOL)
			parts[k] = jv_int(parts[k].u.b);
		if (parts[k].kind != JV_NONE && parts[k].kind != JV_INT)
		{
			if (obj.kind == JV_UNDEF)
				return undefined_error(c, obj);
			*out = jv_undef(NULL);	/* a TypeError, which jinja2 turns into undefined */
			return true;
		}
	}
	if (obj.kind == JV_UNDEF)
		return undefined_error(c, obj);
	if (obj.kind == JV_LIST)
	{
		jv			r;

		if (!slice_indexes(c, obj.u.l->n, parts[0], parts[1], parts[2], &idx, &cnt) ||
			!jv_new_list(c, cnt, obj.u.l->tuple, &r))
			return false;
		for (size_t i = 0; i < cnt; i++)
			r.u.l->items[i] = obj.u.l->items[idx[i]];
		*out = r;
		return true;
	}
	if (obj.kind == JV_STR)
	{
		size_t		n = jx_utf8_count(obj.u.s.p, obj.u.s.n);
		size_t	   *offs;
		char	   *buf;
		size_t		o = 0,
					off = 0;

		if (!jx_step(c, obj.u.s.n / 64) ||
			!slice_indexes(c, n, parts[0], parts[1], parts[2], &idx, &cnt))
			return false;
		offs = jx_alloc(&c->ar, (n + 1) * sizeof(size_t));
		buf = jx_alloc(&c->ar, obj.u.s.n + 1);
		if (offs == NULL || buf == NULL)
			return jx_nomem(c);
		for (size_t i = 0; i < n; i++)
		{
			offs[i] = off;
			lg_utf8_decode(obj.u.s.p, obj.u.s.n, &off);
		}
		offs[n] = obj.u.s.n;
		for (size_t i = 0; i < cnt; i++)
		{
			size_t		a = offs[idx[i]],
						b = offs[idx[i] + 1];

			memcpy(buf + o, obj.u.s.p + a, b - a);
			o += b - a;
		}
		*out = jv_str(buf, o);
		return true;
	}
	*out = jv_undef(NULL);
	return true;
}

/* ---- operators ---- */

/* Python's message for a binary operator on the wrong types. */
static bool
type_error(jx_ctx *c, const char *op, jv a, jv b)
{
	if (a.kind == JV_UNDEF)
		return undefined_error(c, a);
	if (b.kind == JV_UNDEF)
		return undefined_error(c, b);
	if (!strcmp(op, "+") && a.kind == JV_STR)
		return jx_fail(c, LG_ERR_FORMAT, "can only concatenate str (not \"%s\") to str", jv_type_name(b));
	if (!strcmp(op, "+") && a.kind == JV_LIST && b.kind == JV_LIST)
		return jx_fail(c, LG_ERR_FORMAT, "can only concatenate %s (not \"%s\") to %s",
					   jv_type_name(a), jv_type_name(b), jv_type_name(a));
	return jx_fail(c, LG_ERR_FORMAT, "unsupported operand type(s) for %s: '%s' and '%s'",
				   op, jv_type_name(a), jv_type_name(b));
}

/* The integer of a bool/int. */
static int64_t
as_int(jv v)
{
	return v.kind == JV_INT ? v.u.i : v.u.b;
}

/* s repeated k times (k <= 0: empty). */
static bool
repeat_str(jx_ctx *c, jv s, int64_t k, jv *out)
{
	char	   *buf;

	if (k <= 0 || s.u.s.n == 0)
	{
		*out = jv_str("", 0);
		return true;
	}
	if ((uint64_t) k > LG_CHAT_MAX_MEMORY / s.u.s.n)
		return jx_nomem(c);
	if ((buf = jx_alloc(&c->ar, s.u.s.n * (size_t) k + 1)) == NULL)
		return jx_nomem(c);
	for (int64_t i = 0; i < k; i++)
		memcpy(buf + (size_t) i * s.u.s.n, s.u.s.p, s.u.s.n);
	*out = jv_str(buf, s.u.s.n * (size_t) k);
	return true;
}

/* Concatenate two strings into a new one. */
static bool
concat2(jx_ctx *c, const char *a, size_t an, const char *b, size_t bn, jv *out)
{
	char	   *buf;

	if (an + bn > LG_CHAT_MAX_MEMORY || (buf = jx_alloc(&c->ar, an + bn + 1)) == NULL)
		return jx_nomem(c);
	if (an)
		memcpy(buf, a, an);
	if (bn)
		memcpy(buf + an, b, bn);
	*out = jv_str(buf, an + bn);
	return true;
}

/* a op b for + - * / // % **. */
bool
jx_binop(jx_ctx *c, int op, jv a, jv b, jv *out)
{
	bool		ints = (a.kind == JV_INT || a.kind == JV_BOOL) && (b.kind == JV_INT || b.kind == JV_BOOL);
	bool		nums = jv_is_num(a) && jv_is_num(b);

	switch (op)
	{
		case JT_ADD:
			if (ints)
			{
				int64_t		r;

				if (__builtin_add_overflow(as_int(a), as_int(b), &r))
					return jx_fail(c, LG_ERR_RANGE, "integer overflow");
				*out = jv_int(r);
				return true;
			}
			if (nums)
			{
				*out = jv_float(jv_num(a) + jv_num(b));
				return true;
			}
			if (a.kind == JV_STR && b.kind == JV_STR && a.safe != b.safe)
			{
				/* Markup + str escapes the str, and the result is Markup (markupsafe) */
				if (!a.safe && !jx_html_escape(c, a, &a))
					return false;
				if (!b.safe && !jx_html_escape(c, b, &b))
					return false;
			}
			if (a.kind == JV_STR && b.kind == JV_STR)
			{
				bool		safe = a.safe || b.safe;

				if (!concat2(c, a.u.s.p, a.u.s.n, b.u.s.p, b.u.s.n, out))
					return false;
				out->safe = safe;
				return true;
			}
			if (a.kind == JV_LIST && b.kind == JV_LIST && a.u.l->tuple == b.u.l->tuple)
			{
				jv			r;

				if (!jv_new_list(c, a.u.l->n + b.u.l->n, a.u.l->tuple, &r))
					return false;
				if (a.u.l->n)
					memcpy(r.u.l->items, a.u.l->items, a.u.l->n * sizeof(jv));
				if (b.u.l->n)
					memcpy(r.u.l->items + a.u.l->n, b.u.l->items, b.u.l->n * sizeof(jv));
				*out = r;
				return true;
			}
			return type_error(c, "+", a, b);
		case JT_SUB:
			if (ints)
			{
				int64_t		r;

				if (__builtin_sub_overflow(as_int(a), as_int(b), &r))
					return jx_fail(c, LG_ERR_RANGE, "integer overflow");
				*out = jv_int(r);
				return true;
			}
			if (nums)
			{
				*out = jv_float(jv_num(a) - jv_num(b));
				return true;
			}
			return type_error(c, "-", a, b);
		case JT_MUL:
			if (ints)
			{
				int64_t		r;

				if (__builtin_mul_overflow(as_int(a), as_int(b), &r))
					return jx_fail(c, LG_ERR_RANGE, "integer overflow");
				*out = jv_int(r);
				return true;
			}
			if (nums)
			{
				*out = jv_float(jv_num(a) * jv_num(b));
				return true;
			}
			if (a.kind == JV_STR && (b.kind == JV_INT || b.kind == JV_BOOL))
				return repeat_str(c, a, as_int(b), out);
			if (b.kind == JV_STR && (a.kind == JV_INT || a.kind == JV_BOOL))
				return repeat_str(c, b, as_int(a), out);
			if ((a.kind == JV_LIST && (b.kind == JV_INT || b.kind == JV_BOOL)) ||
				(b.kind == JV_LIST && (a.kind == JV_INT || a.kind == JV_BOOL)))
			{
				jv			l = a.kind == JV_LIST ? a : b,
							r;
				int64_t		k = as_int(a.kind == JV_LIST ? b : a);
				size_t		n = l.u.l->n;

				if (k < 0)
					k = 0;
				if (n && (uint64_t) k > LG_CHAT_MAX_MEMORY / (n * sizeof(jv)))
					return jx_nomem(c);
				if (!jv_new_list(c, n * (size_t) k, l.u.l->tuple, &r))
					return false;
				for (int64_t i = 0; i < k; i++)
					if (n)
						memcpy(r.u.l->items + (size_t) i * n, l.u.l->items, n * sizeof(jv));
				*out = r;
				return true;
			}
			return type_error(c, "*", a, b);
		case JT_DIV:
			if (!nums)
				return type_error(c, "/", a, b);
			if (jv_num(b) == 0)
				return jx_fail(c, LG_ERR_FORMAT, "division by zero");
			*out = jv_float(jv_num(a) / jv_num(b));
			return true;
		case JT_FLOORDIV:
		case JT_MOD:
			if (a.kind == JV_STR && op == JT_MOD)
				return jx_percent_format(c, a, b, out);
			if (!nums)
				return type_error(c, op == JT_MOD ? "%" : "//", a, b);
			if (jv_num(b) == 0)
				return jx_fail(c, LG_ERR_FORMAT, op == JT_MOD ? "modulo by zero" : "division by zero");
			if (ints)
			{
				int64_t		x = as_int(a),
							y = as_int(b),
							q,
							r;

				if (x == INT64_MIN && y == -1)
					return jx_fail(c, LG_ERR_RANGE, "integer overflow");
				q = x / y;
				r = x % y;
				if (r != 0 && ((r < 0) != (y < 0)))
				{
					q--;
					r += y;
				}
				*out = jv_int(op == JT_MOD ? r : q);
				return true;
			}
			{
				double		x = jv_num(a),
							y = jv_num(b),
							r = fmod(x, y);

				if (r != 0 && ((r < 0) != (y < 0)))
					r += y;
				*out = jv_float(op == JT_MOD ? r : floor(x / y));
				return true;
			}
		case JT_POW:
			if (!nums)
				return type_error(c, "**", a, b);
			if (ints && as_int(b) >= 0)
			{
				int64_t		base = as_int(a),
							e = as_int(b),
							r = 1;

				while (e-- > 0)
				{
					if (__builtin_mul_overflow(r, base, &r))
						return jx_fail(c, LG_ERR_RANGE, "integer overflow");
					if (r == 0 || r == 1)
						break;
				}
				*out = jv_int(r);
				return true;
			}
			if (jv_num(a) == 0 && jv_num(b) < 0)
				return jx_fail(c, LG_ERR_FORMAT, "0.0 cannot be raised to a negative power");
			*out = jv_float(pow(jv_num(a), jv_num(b)));
			return true;
	}
	return jx_fail(c, LG_ERR_INTERNAL, "unknown operator");
}

/* `a in b`. */
static bool
contains(jx_ctx *c, jv needle, jv hay, bool *out)
{
	switch (hay.kind)
	{
		case JV_UNDEF:
			*out = false;
			return true;
		case JV_STR:
			if (needle.kind != JV_STR)
			{
				if (needle.kind == JV_UNDEF)
					return undefined_error(c, needle);
				return jx_fail(c, LG_ERR_FORMAT, "'in <string>' requires string as left operand, not %s",
							   jv_type_name(needle));
			}
			if (!jx_step(c, hay.u.s.n / 64))
				return false;
			*out = needle.u.s.n == 0 || memmem(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
			return true;
		case JV_LIST:
		case JV_ITER:
			if (!jx_step(c, hay.u.l->n / 16))
				return false;
			*out = false;
			for (size_t i = 0; i < hay.u.l->n && !*out; i++)
				*out = jv_equal(c, hay.u.l->items[i], needle);
			if (hay.kind == JV_ITER)
				hay.u.l->consumed = true;
			return true;
		case JV_DICT:
			*out = jx_dict_get(hay.u.d, needle) != NULL;
			return true;
		default:
			return jx_fail(c, LG_ERR_FORMAT, "argument of type '%s' is not iterable", jv_type_name(hay));
	}
}

/* One comparison of a chain. */
static bool
compare_op(jx_ctx *c, int op, jv a, jv b, bool *out)
{
	int			r;

	switch (op)
	{
		case JT_EQ:
			*out = jv_equal(c, a, b);
			return true;
		case JT_NE:
			*out = !jv_equal(c, a, b);
			return true;
		case JX_OP_IN:
			return contains(c, a, b, out);
		case JX_OP_NOTIN:
			if (!contains(c, a, b, out))
				return false;
			*out = !*out;
			return true;
		default:
			if (!jv_compare(c, a, b, &r))
				return false;
			*out = op == JT_LT ? r < 0 : op == JT_LE ? r <= 0 : op == JT_GT ? r > 0 : r >= 0;
			return true;
	}
}

/* ---- calls ---- */

/* Evaluate call arguments. */
static bool
eval_args(jx_ctx *c, jx_scope *s, const jx_node *n, jv **args, jv **kwvals, size_t extra_kw)
{
	*args = jx_alloc(&c->ar, (n->nkids + 1) * sizeof(jv));
	*kwvals = jx_alloc(&c->ar, (n->nnames + extra_kw + 1) * sizeof(jv));
	if (*args == NULL || *kwvals == NULL)
		return jx_nomem(c);
	for (size_t i = 0; i < n->nkids; i++)
		if (!jx_eval(c, s, n->kids[i], &(*args)[i]))
			return false;
	for (size_t i = 0; i < n->nnames; i++)
		if (!jx_eval(c, s, n->vals[i], &(*kwvals)[i]))
			return false;
	return true;
}

/* Call a macro: bind parameters in a scope over its closure, capture its output. */
static bool
call_macro(jx_ctx *c, jx_macro *m, jv *args, size_t nargs, const char **kwnames, jv *kwvals,
		   size_t nkw, jv *out)
{
	const jx_node *def = m->def;
	const char *mname = def->kind == JN_MACRO ? def->name : "caller";
	jx_scope   *s;

	if (!jx_step(c, 1))
		return false;
	if (nargs > def->nnames)
		return jx_fail(c, LG_ERR_FORMAT, "macro '%s' takes not more than %zu argument(s)", mname, def->nnames);
	if ((s = jx_scope_new(c, m->closure)) == NULL)
		return false;
	for (size_t k = 0; k < nkw; k++)
	{
		bool		known = !strcmp(kwnames[k], "caller");

		for (size_t i = 0; i < def->nnames && !known; i++)
			known = !strcmp(def->names[i], kwnames[k]);
		if (!known)
			return jx_fail(c, LG_ERR_FORMAT, "macro '%s' takes no keyword argument '%s'", mname, kwnames[k]);
		if (!strcmp(kwnames[k], "caller") && !jx_scope_set(c, s, "caller", kwvals[k]))
			return false;
	}
	for (size_t i = 0; i < def->nnames; i++)
	{
		jv			v = jv_undef(def->names[i]);
		bool		given = false;

		if (i < nargs)
		{
			v = args[i];
			given = true;
		}
		for (size_t k = 0; k < nkw; k++)
			if (!strcmp(kwnames[k], def->names[i]))
			{
				if (given)
					return jx_fail(c, LG_ERR_FORMAT, "macro '%s' got multiple values for argument '%s'",
								   mname, def->names[i]);
				v = kwvals[k];
				given = true;
			}
		if (!given && def->vals && def->vals[i] && !jx_eval(c, s, def->vals[i], &v))
			return false;
		if (!jx_scope_set(c, s, def->names[i], v))
			return false;
	}
	if (m->caller.kind == JV_MACRO && !jx_scope_set(c, s, "caller", m->caller))
		return false;
	return capture(c, s, def->b, out);
}

/* Call any callable value. */
bool
jx_call_value(jx_ctx *c, jv fn, jv *args, size_t nargs, const char **kwnames, jv *kwvals,
			  size_t nkw, jv *out)
{
	switch (fn.kind)
	{
		case JV_MACRO:
			return call_macro(c, fn.u.m, args, nargs, kwnames, kwvals, nkw, out);
		case JV_FUNC:
			return jx_call_global(c, fn.u.fn, args, nargs, kwnames, kwvals, nkw, out);
		case JV_METHOD:
			return jx_call_method(c, fn.u.bm->self, fn.u.bm->name, args, nargs, kwnames, kwvals, nkw, out);
		case JV_UNDEF:
			return undefined_error(c, fn);
		default:
			return jx_fail(c, LG_ERR_FORMAT, "'%s' object is not callable", jv_type_name(fn));
	}
}

/* ---- expressions ---- */

/* Apply a filter node (and the chain under it) to input. */
static bool
apply_filter_node(jx_ctx *c, jx_scope *s, const jx_node *n, jv *input, jv *out)
{
	jv			in,
			   *args,
			   *kwvals;

	if (n->a == NULL)
	{
		if (input == NULL)
			return jx_fail(c, LG_ERR_INTERNAL, "filter without input");
		in = *input;
	}
	else if (n->a->kind == JN_FILTER)
	{
		if (!apply_filter_node(c, s, n->a, input, &in))
			return false;
	}
	else if (!jx_eval(c, s, n->a, &in))
		return false;
	if (!eval_args(c, s, n, &args, &kwvals, 0))
		return false;
	c->line = n->line;
	return jx_apply_filter(c, n->name, in, args, n->nkids, n->names, kwvals, n->nnames, out);
}

/* Evaluate an expression. */
bool
jx_eval(jx_ctx *c, jx_scope *s, const jx_node *n, jv *out)
{
	jv			a,
				b;
	bool		ok = true;

	if (c->too_deep)
		return jx_fail(c, LG_ERR_RANGE, "values nested more than %d levels", LG_CHAT_MAX_DEPTH);
	if (++c->depth > LG_CHAT_MAX_DEPTH)
		return jx_fail(c, LG_ERR_RANGE, "template nests or recurses more than %d levels", LG_CHAT_MAX_DEPTH);
	c->line = n->line;
	switch (n->kind)
	{
		case JN_CONST:
			*out = n->value;
			break;
		case JN_NAME:
			{
				jv		   *v = jx_scope_lookup(s, n->name);

				if (v)
					*out = *v;
				else
				{
					*out = jv_undef(n->name);
					for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
						if (!strcmp(globals[i].name, n->name))
						{
							out->kind = JV_FUNC;
							out->u.fn = globals[i].fn;
						}
				}
				break;
			}
		case JN_LIST:
		case JN_TUPLE:
			ok = jv_new_list(c, n->nkids, n->kind == JN_TUPLE, out);
			for (size_t i = 0; ok && i < n->nkids; i++)
				ok = jx_eval(c, s, n->kids[i], &out->u.l->items[i]);
			break;
		case JN_DICT:
			ok = jv_new_dict(c, JV_DICT, n->nkids, out);
			for (size_t i = 0; ok && i < n->nkids; i++)
			{
				ok = jx_eval(c, s, n->kids[i], &a) && jx_eval(c, s, n->vals[i], &b);
				if (ok && (a.kind == JV_LIST && !a.u.l->tuple))
					ok = jx_fail(c, LG_ERR_FORMAT, "unhashable type: 'list'");
				else if (ok && (a.kind == JV_DICT || a.kind == JV_NS))
					ok = jx_fail(c, LG_ERR_FORMAT, "unhashable type: 'dict'");
				ok = ok && jx_dict_set(c, out->u.d, a, b);
			}
			break;
		case JN_GETATTR:
			ok = jx_eval(c, s, n->a, &a) && (c->line = n->line, jx_getattr(c, a, n->name, out));
			break;
		case JN_GETITEM:
			if (!jx_eval(c, s, n->a, &a))
				ok = false;
			else if (n->b->kind == JN_SLICE)
				ok = eval_slice(c, s, a, n->b, out);
			else
				ok = jx_eval(c, s, n->b, &b) && (c->line = n->line, jx_getitem(c, a, b, out));
			break;
		case JN_CALL:
			{
				jv		   *args,
						   *kwvals;

				ok = jx_eval(c, s, n->a, &a) && eval_args(c, s, n, &args, &kwvals, 0);
				if (ok)
				{
					c->line = n->line;
					ok = jx_call_value(c, a, args, n->nkids, n->names, kwvals, n->nnames, out);
				}
				break;
			}
		case JN_FILTER:
			ok = apply_filter_node(c, s, n, NULL, out);
			break;
		case JN_TEST:
			{
				jv		   *args,
						   *kwvals;
				bool		r;

				ok = jx_eval(c, s, n->a, &a) && eval_args(c, s, n, &args, &kwvals, 0);
				if (ok)
				{
					c->line = n->line;
					ok = jx_apply_test(c, n->name, a, args, n->nkids, &r);
					*out = jv_bool(r);
				}
				break;
			}
		case JN_NEG:
		case JN_POS:
			if (!jx_eval(c, s, n->a, &a))
				ok = false;
			else if (a.kind == JV_UNDEF)
				ok = undefined_error(c, a);
			else if (a.kind == JV_INT || a.kind == JV_BOOL)
			{
				if (n->kind == JN_NEG && as_int(a) == INT64_MIN)
					ok = jx_fail(c, LG_ERR_RANGE, "integer overflow");
				else
					*out = jv_int(n->kind == JN_NEG ? -as_int(a) : as_int(a));
			}
			else if (a.kind == JV_FLOAT)
				*out = jv_float(n->kind == JN_NEG ? -a.u.f : a.u.f);
			else
				ok = jx_fail(c, LG_ERR_FORMAT, "bad operand type for unary %s: '%s'",
							 n->kind == JN_NEG ? "-" : "+", jv_type_name(a));
			break;
		case JN_NOT:
			ok = jx_eval(c, s, n->a, &a);
			*out = jv_bool(!jv_truthy(a));
			break;
		case JN_AND:
			ok = jx_eval(c, s, n->a, &a);
			if (ok && !jv_truthy(a))
				*out = a;
			else if (ok)
				ok = jx_eval(c, s, n->b, out);
			break;
		case JN_OR:
			ok = jx_eval(c, s, n->a, &a);
			if (ok && jv_truthy(a))
				*out = a;
			else if (ok)
				ok = jx_eval(c, s, n->b, out);
			break;
		case JN_BINOP:
			ok = jx_eval(c, s, n->a, &a) && jx_eval(c, s, n->b, &b) &&
				(c->line = n->line, jx_binop(c, n->op, a, b, out));
			break;
		case JN_CONCAT:
			{
				jv			sa,
							sb;

				ok = jx_eval(c, s, n->a, &a) && jx_eval(c, s, n->b, &b) &&
					jv_to_str(c, a, &sa) && jv_to_str(c, b, &sb) &&
					concat2(c, sa.u.s.p, sa.u.s.n, sb.u.s.p, sb.u.s.n, out);
				break;
			}
		case JN_COMPARE:
			{
				bool		r = true;

				ok = jx_eval(c, s, n->a, &a);
				for (size_t i = 0; ok && r && i < n->nkids; i++)
				{
					ok = jx_eval(c, s, n->kids[i], &b) && (c->line = n->line, compare_op(c, n->ops[i], a, b, &r));
					a = b;
				}
				*out = jv_bool(r);
				break;
			}
		case JN_COND:
			ok = jx_eval(c, s, n->b, &a);
			if (ok && jv_truthy(a))
				ok = jx_eval(c, s, n->a, out);
			else if (ok && n->c)
				ok = jx_eval(c, s, n->c, out);
			else if (ok)
				*out = jv_undef(NULL);
			break;
		default:
			ok = jx_fail(c, LG_ERR_INTERNAL, "not an expression");
	}
	c->depth--;
	return ok;
}

/* ---- statements ---- */

/* Bind for/set targets: one name, or a tuple of names unpacking v. */
static bool
assign_targets(jx_ctx *c, jx_scope *s, const jx_node *n, jv v)
{
	jx_list    *items;

	if (!n->tuple_target)
		return jx_scope_set(c, s, n->names[0], v);
	if (v.kind == JV_UNDEF)
		return undefined_error(c, v);
	if (!jv_iterate(c, v, &items))
		return false;
	if (items->n != n->nnames)
		return jx_fail(c, LG_ERR_FORMAT, items->n > n->nnames ?
					   "too many values to unpack (expected %zu)" :
					   "not enough values to unpack (expected %zu)", n->nnames);
	for (size_t i = 0; i < n->nnames; i++)
		if (!jx_scope_set(c, s, n->names[i], items->items[i]))
			return false;
	return true;
}

/* {% for %}. */
static bool
exec_for(jx_ctx *c, jx_scope *s, const jx_node *n)
{
	jv			seq;
	jx_list    *items;
	jx_scope   *body;
	jx_loop    *loop;
	jv			lv;

	if (!jx_eval(c, s, n->a, &seq) || !jv_iterate(c, seq, &items))
		return false;
	if ((body = jx_scope_new(c, s)) == NULL)
		return false;
	if (n->d)
	{
		/* `for x in xs if cond`: the loop sees only the items that pass */
		jv			kept;
		size_t		k = 0;

		if (!jv_new_list(c, items->n, false, &kept))
			return false;
		for (size_t i = 0; i < items->n; i++)
		{
			jv			r;

			body->n = 0;
			if (!jx_step(c, 1) || !assign_targets(c, body, n, items->items[i]) || !jx_eval(c, body, n->d, &r))
				return false;
			if (jv_truthy(r))
				kept.u.l->items[k++] = items->items[i];
		}
		kept.u.l->n = k;
		items = kept.u.l;
	}
	if ((loop = jx_alloc(&c->ar, sizeof(jx_loop))) == NULL)
		return jx_nomem(c);
	loop->items = items;
	loop->depth = 1;			/* depth counts recursive loop() calls, which we do not have */
	lv.kind = JV_LOOP;
	lv.u.loop = loop;
	for (size_t i = 0; i < items->n; i++)
	{
		loop->index0 = i;
		body->n = 0;
		if (!jx_step(c, 1) || !assign_targets(c, body, n, items->items[i]) ||
			!jx_scope_set(c, body, "loop", lv) || !jx_exec(c, body, n->b))
			return false;
		if (c->ctrl == JX_CTRL_BREAK)
		{
			c->ctrl = JX_CTRL_NONE;
			break;
		}
		c->ctrl = JX_CTRL_NONE;
	}
	if (items->n == 0 && n->c)
	{
		body->n = 0;
		return jx_exec(c, body, n->c);
	}
	return true;
}

/* Execute a statement (or a body). */
bool
jx_exec(jx_ctx *c, jx_scope *s, const jx_node *n)
{
	jv			v;
	bool		ok = true;

	if (c->too_deep)
		return jx_fail(c, LG_ERR_RANGE, "values nested more than %d levels", LG_CHAT_MAX_DEPTH);
	if (++c->depth > LG_CHAT_MAX_DEPTH)
		return jx_fail(c, LG_ERR_RANGE, "template nests or recurses more than %d levels", LG_CHAT_MAX_DEPTH);
	c->line = n->line;
	switch (n->kind)
	{
		case JN_BODY:
			for (size_t i = 0; ok && i < n->nkids && c->ctrl == JX_CTRL_NONE; i++)
				ok = jx_exec(c, s, n->kids[i]);
			break;
		case JN_DATA:
			ok = emit(c, n->text, n->text_len);
			break;
		case JN_OUTPUT:
			ok = jx_eval(c, s, n->a, &v) && jx_append_str(c, c->out, v) &&
				emit(c, "", 0);
			break;
		case JN_IF:
			if ((ok = jx_eval(c, s, n->a, &v)))
			{
				if (jv_truthy(v))
					ok = jx_exec(c, s, n->b);
				else if (n->c)
					ok = jx_exec(c, s, n->c);
			}
			break;
		case JN_FOR:
			ok = exec_for(c, s, n);
			break;
		case JN_SET:
			ok = jx_eval(c, s, n->a, &v) && assign_targets(c, s, n, v);
			break;
		case JN_SET_NS:
			{
				jv		   *ns = jx_scope_lookup(s, n->name);

				if (!jx_eval(c, s, n->a, &v))
					ok = false;
				else if (ns == NULL || ns->kind != JV_NS)
					ok = jx_fail(c, LG_ERR_FORMAT, "cannot assign attribute on non-namespace object");
				else
				{
					jv			key;

					ok = jv_strdup(c, n->text, strlen(n->text), &key) && jx_dict_set(c, ns->u.d, key, v);
				}
				break;
			}
		case JN_SET_BLOCK:
			ok = capture(c, s, n->b, &v);
			if (ok && n->a)
				ok = apply_filter_node(c, s, n->a, &v, &v);
			ok = ok && jx_scope_set(c, s, n->names[0], v);
			break;
		case JN_MACRO:
			{
				jx_macro   *m = jx_alloc(&c->ar, sizeof(jx_macro));

				if (m == NULL)
					ok = jx_nomem(c);
				else
				{
					m->def = n;
					m->closure = s;
					m->caller = jv_undef(NULL);
					v.kind = JV_MACRO;
					v.u.m = m;
					ok = jx_scope_set(c, s, n->name, v);
				}
				break;
			}
		case JN_CALL_BLOCK:
			{
				/* the body becomes `caller`, passed to the called macro */
				jx_macro   *cm = jx_alloc(&c->ar, sizeof(jx_macro));
				jv			fn,
						   *args,
						   *kwvals;
				const char **kwn;
				const jx_node *call = n->a;

				if (cm == NULL)
				{
					ok = jx_nomem(c);
					break;
				}
				cm->def = n;
				cm->closure = s;
				cm->caller = jv_undef(NULL);
				ok = jx_eval(c, s, call->a, &fn) && eval_args(c, s, call, &args, &kwvals, 1);
				if (!ok)
					break;
				kwn = jx_alloc(&c->ar, (call->nnames + 1) * sizeof(char *));
				if (kwn == NULL)
				{
					ok = jx_nomem(c);
					break;
				}
				if (call->nnames)
					memcpy(kwn, call->names, call->nnames * sizeof(char *));
				kwn[call->nnames] = "caller";
				kwvals[call->nnames].kind = JV_MACRO;
				kwvals[call->nnames].u.m = cm;
				ok = jx_call_value(c, fn, args, call->nkids, kwn, kwvals, call->nnames + 1, &v) &&
					jx_append_str(c, c->out, v);
				break;
			}
		case JN_FILTER_BLOCK:
			ok = capture(c, s, n->b, &v) && apply_filter_node(c, s, n->a, &v, &v) &&
				jx_append_str(c, c->out, v);
			break;
		case JN_WITH:
			{
				jx_scope   *w = jx_scope_new(c, s);

				ok = w != NULL;
				for (size_t i = 0; ok && i < n->nnames; i++)
					ok = jx_eval(c, s, n->vals[i], &v) && jx_scope_set(c, w, n->names[i], v);
				ok = ok && jx_exec(c, w, n->b);
				break;
			}
		case JN_BREAK:
			c->ctrl = JX_CTRL_BREAK;
			break;
		case JN_CONTINUE:
			c->ctrl = JX_CTRL_CONTINUE;
			break;
		default:
			ok = jx_fail(c, LG_ERR_INTERNAL, "not a statement");
	}
	c->depth--;
	return ok;
}
