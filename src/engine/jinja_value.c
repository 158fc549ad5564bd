/*
 * jinja_value.c — the interpreter's values and their Python behaviour:
 * the arena they live in, truthiness, ==, ordering, str() and repr(), len()
 * and iteration, and the UTF-8 and case helpers strings need.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"
#include "unicode.h"

struct jx_chunk
{
	jx_chunk   *next;
	size_t		size;
	size_t		used;
	max_align_t data[];
};

#define JX_CHUNK_MIN (64u << 10)

/* Start an empty arena. */
void
jx_arena_init(jx_arena *a, size_t limit)
{
	a->head = NULL;
	a->used = 0;
	a->limit = limit;
}

/* Free every chunk. */
void
jx_arena_free(jx_arena *a)
{
	jx_chunk   *c = a->head;

	while (c)
	{
		jx_chunk   *next = c->next;

		free(c);
		c = next;
	}
	a->head = NULL;
	a->used = 0;
}

/* n zeroed bytes from the arena; NULL past the limit. */
void *
jx_alloc(jx_arena *a, size_t n)
{
	jx_chunk   *c = a->head;
	void	   *p;

	n = (n + 15) & ~(size_t) 15;
	if (n == 0)
		n = 16;
	if (a->limit && (n > a->limit || a->used > a->limit - n))
		return NULL;
	if (c == NULL || c->size - c->used < n)
	{
		size_t		size = n > JX_CHUNK_MIN ? n : JX_CHUNK_MIN;

		c = malloc(sizeof(jx_chunk) + size);
		if (c == NULL)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	p = (char *) c->data + c->used;
	c->used += n;
	a->used += n;
	memset(p, 0, n);
	return p;
}

/* A NUL-terminated copy. */
char *
jx_strdup(jx_arena *a, const char *s, size_t n)
{
	char	   *p = n + 1 > n ? jx_alloc(a, n + 1) : NULL;

	if (p && n)
		memcpy(p, s, n);
	return p;
}

/* Record a runtime error, naming the template line. */
bool
jx_fail(jx_ctx *c, lg_status st, const char *fmt, ...)
{
	char		msg[LG_ERROR_MSG_LEN];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->line > 0 && st != LG_ERR_ARG)
		lg_error_set(c->err, st, "line %d: %s", c->line, msg);
	else
		lg_error_set(c->err, st, "%s", msg);
	return false;
}

/* The render ran out of its memory budget. */
bool
jx_nomem(jx_ctx *c)
{
	return jx_fail(c, LG_ERR_RANGE, "template needs more than %u MiB of memory",
				   LG_CHAT_MAX_MEMORY >> 20);
}

/* The error for using an undefined value: its hint, or "'name' is undefined". */
bool
jx_undefined_error(jx_ctx *c, jv v)
{
	if (v.u.s.p && v.u.s.n == 1)
		return jx_fail(c, LG_ERR_FORMAT, "%s", v.u.s.p);
	if (v.u.s.p)
		return jx_fail(c, LG_ERR_FORMAT, "'%s' is undefined", v.u.s.p);
	return jx_fail(c, LG_ERR_FORMAT, "a value is undefined");
}

/* Count work so a template cannot run for ever. */
bool
jx_step(jx_ctx *c, size_t n)
{
	if (c->too_deep)
		return jx_fail(c, LG_ERR_RANGE, "values nested more than %d levels", LG_CHAT_MAX_DEPTH);
	c->steps += n;
	if (c->steps > LG_CHAT_MAX_STEPS)
		return jx_fail(c, LG_ERR_RANGE, "template ran more than %u steps (loop iterations and calls)",
					   LG_CHAT_MAX_STEPS);
	return true;
}

/* ---- constructors ---- */

/* An undefined value standing for name. */
jv
jv_undef(const char *name)
{
	jv			v = {.kind = JV_UNDEF};

	v.u.s.p = name;
	return v;
}

/* None. */
jv
jv_none(void)
{
	return (jv) {.kind = JV_NONE};
}

/* True or False. */
jv
jv_bool(bool b)
{
	jv			v = {.kind = JV_BOOL};

	v.u.b = b;
	return v;
}

/* An int. */
jv
jv_int(int64_t i)
{
	jv			v = {.kind = JV_INT};

	v.u.i = i;
	return v;
}

/* A float. */
jv
jv_float(double f)
{
	jv			v = {.kind = JV_FLOAT};

	v.u.f = f;
	return v;
}

/* A string over existing memory. */
jv
jv_str(const char *p, size_t n)
{
	jv			v = {.kind = JV_STR};

	v.u.s.p = p ? p : "";
	v.u.s.n = n;
	return v;
}

/* A string copied into the render's arena. */
bool
jv_strdup(jx_ctx *c, const char *p, size_t n, jv *out)
{
	char	   *s = jx_strdup(&c->ar, p, n);

	if (s == NULL)
		return jx_nomem(c);
	*out = jv_str(s, n);
	return true;
}

/* A list (or tuple) of n undefined items to fill in. */
bool
jv_new_list(jx_ctx *c, size_t n, bool tuple, jv *out)
{
	jx_list    *l = jx_alloc(&c->ar, sizeof(jx_list));

	if (l == NULL || (n && n > SIZE_MAX / sizeof(jv)))
		return jx_nomem(c);
	l->items = jx_alloc(&c->ar, (n ? n : 1) * sizeof(jv));
	if (l->items == NULL)
		return jx_nomem(c);
	l->n = n;
	l->tuple = tuple;
	out->kind = JV_LIST;
	out->u.l = l;
	return true;
}

/* A one-shot iterator over items. */
bool
jv_new_iter(jx_ctx *c, jx_list *items, const char *what, jv *out)
{
	jx_list    *l = jx_alloc(&c->ar, sizeof(jx_list));

	if (l == NULL)
		return jx_nomem(c);
	*l = *items;
	l->tuple = false;
	l->consumed = false;
	l->what = what;
	out->kind = JV_ITER;
	out->u.l = l;
	return true;
}

/* An empty dict or namespace. */
bool
jv_new_dict(jx_ctx *c, jx_vkind kind, size_t cap, jv *out)
{
	jx_dict    *d = jx_alloc(&c->ar, sizeof(jx_dict));

	if (d == NULL)
		return jx_nomem(c);
	out->kind = kind;
	out->u.d = d;
	return true;
}

/* Keys are compared as Python's dict does (1 == 1.0 == True); tuples nested absurdly deep never match. */
static bool
key_equal_at(jv a, jv b, int depth)
{
	if (a.kind == JV_STR && b.kind == JV_STR)
		return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
	if (jv_is_num(a) && jv_is_num(b))
		return jv_num(a) == jv_num(b);
	if (a.kind != b.kind)
		return false;
	if (a.kind == JV_NONE)
		return true;
	if (a.kind == JV_LIST)
	{
		if (a.u.l->n != b.u.l->n || depth > LG_CHAT_MAX_DEPTH)
			return false;
		for (size_t i = 0; i < a.u.l->n; i++)
			if (!key_equal_at(a.u.l->items[i], b.u.l->items[i], depth + 1))
				return false;
		return true;
	}
	return false;
}

/* Dict key equality. */
static bool
key_equal(jv a, jv b)
{
	return key_equal_at(a, b, 0);
}

/* Set d[key] = val, keeping the place of an existing key. */
bool
jx_dict_set(jx_ctx *c, jx_dict *d, jv key, jv val)
{
	jv		   *old = jx_dict_get(d, key);

	if (old)
	{
		*old = val;
		return true;
	}
	if (d->n == d->cap)
	{
		size_t		cap = d->cap ? d->cap * 2 : 8;
		jv		   *k = jx_alloc(&c->ar, cap * sizeof(jv));
		jv		   *v = jx_alloc(&c->ar, cap * sizeof(jv));

		if (k == NULL || v == NULL)
			return jx_nomem(c);
		if (d->n)
		{
			memcpy(k, d->keys, d->n * sizeof(jv));
			memcpy(v, d->vals, d->n * sizeof(jv));
		}
		d->keys = k;
		d->vals = v;
		d->cap = cap;
	}
	d->keys[d->n] = key;
	d->vals[d->n] = val;
	d->n++;
	return true;
}

/* The value under key, or NULL. */
jv *
jx_dict_get(const jx_dict *d, jv key)
{
	for (size_t i = 0; i < d->n; i++)
		if (key_equal(d->keys[i], key))
			return &d->vals[i];
	return NULL;
}

/* The value under a string key, or NULL. */
jv *
jx_dict_get_str(const jx_dict *d, const char *key)
{
	return jx_dict_get(d, jv_str(key, strlen(key)));
}

/* ---- Python semantics ---- */

/* bool(v). */
bool
jv_truthy(jv v)
{
	switch (v.kind)
	{
		case JV_UNDEF:
		case JV_NONE:
			return false;
		case JV_BOOL:
			return v.u.b;
		case JV_INT:
			return v.u.i != 0;
		case JV_FLOAT:
			return v.u.f != 0.0;
		case JV_STR:
			return v.u.s.n != 0;
		case JV_LIST:
			return v.u.l->n != 0;
		case JV_DICT:
			return v.u.d->n != 0;
		default:
			return true;		/* namespaces, iterators, callables */
	}
}

/* Is v a number (bool counts, as in Python)? */
bool
jv_is_num(jv v)
{
	return v.kind == JV_BOOL || v.kind == JV_INT || v.kind == JV_FLOAT;
}

/* A number's value as a double. */
double
jv_num(jv v)
{
	switch (v.kind)
	{
		case JV_BOOL:
			return v.u.b;
		case JV_INT:
			return (double) v.u.i;
		case JV_FLOAT:
			return v.u.f;
		default:
			return 0;
	}
}

/* type(v).__name__ for messages. */
const char *
jv_type_name(jv v)
{
	switch (v.kind)
	{
		case JV_UNDEF:
			return "Undefined";
		case JV_NONE:
			return "NoneType";
		case JV_BOOL:
			return "bool";
		case JV_INT:
			return "int";
		case JV_FLOAT:
			return "float";
		case JV_STR:
			return "str";
		case JV_LIST:
			return v.u.l->tuple ? "tuple" : "list";
		case JV_DICT:
			return "dict";
		case JV_NS:
			return "Namespace";
		case JV_ITER:
			return v.u.l->what;
		case JV_MACRO:
			return "Macro";
		case JV_FUNC:
		case JV_METHOD:
			return "builtin_function_or_method";
		case JV_LOOP:
			return "LoopContext";
	}
	return "object";
}

static bool equal_inner(jx_ctx *c, jv a, jv b);

/* Python ==, deep for containers (nesting past the limit fails the render). */
bool
jv_equal(jx_ctx *c, jv a, jv b)
{
	bool		r;

	if (c->depth > LG_CHAT_MAX_DEPTH)
	{
		c->too_deep = true;
		return false;
	}
	c->depth++;
	r = equal_inner(c, a, b);
	c->depth--;
	return r;
}

/* == without the depth guard. */
static bool
equal_inner(jx_ctx *c, jv a, jv b)
{
	if (jv_is_num(a) && jv_is_num(b))
	{
		if (a.kind != JV_FLOAT && b.kind != JV_FLOAT)
			return (a.kind == JV_INT ? a.u.i : a.u.b) == (b.kind == JV_INT ? b.u.i : b.u.b);
		return jv_num(a) == jv_num(b);
	}
	if (a.kind != b.kind)
		return false;
	switch (a.kind)
	{
		case JV_UNDEF:
		case JV_NONE:
			return true;
		case JV_STR:
			c->steps += a.u.s.n / 256;	/* checked at the next jx_step */
			return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
		case JV_LIST:
			c->steps += a.u.l->n / 16;
			if (a.u.l == b.u.l)
				return true;
			if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n)
				return false;
			for (size_t i = 0; i < a.u.l->n; i++)
				if (!jv_equal(c, a.u.l->items[i], b.u.l->items[i]))
					return false;
			return true;
		case JV_DICT:
			if (a.u.d == b.u.d)
				return true;
			if (a.u.d->n != b.u.d->n)
				return false;
			for (size_t i = 0; i < a.u.d->n; i++)
			{
				jv		   *o = jx_dict_get(b.u.d, a.u.d->keys[i]);

				if (o == NULL || !jv_equal(c, a.u.d->vals[i], *o))
					return false;
			}
			return true;
		case JV_NS:
			return a.u.d == b.u.d;
		case JV_ITER:
			return a.u.l == b.u.l;
		case JV_MACRO:
			return a.u.m == b.u.m;
		case JV_FUNC:
			return a.u.fn == b.u.fn;
		case JV_METHOD:
			return a.u.bm == b.u.bm;
		case JV_LOOP:
			return a.u.loop == b.u.loop;
		default:
			return false;
	}
}

static bool compare_inner(jx_ctx *c, jv a, jv b, int *r);

/* Python ordering; a TypeError when the types do not order. */
bool
jv_compare(jx_ctx *c, jv a, jv b, int *r)
{
	bool		ok;

	if (c->depth > LG_CHAT_MAX_DEPTH)
	{
		c->too_deep = true;
		return jx_fail(c, LG_ERR_RANGE, "values nested more than %d levels", LG_CHAT_MAX_DEPTH);
	}
	c->depth++;
	ok = compare_inner(c, a, b, r);
	c->depth--;
	return ok;
}

/* Ordering without the depth guard. */
static bool
compare_inner(jx_ctx *c, jv a, jv b, int *r)
{
	if (a.kind == JV_UNDEF || b.kind == JV_UNDEF)
		return jx_undefined_error(c, a.kind == JV_UNDEF ? a : b);
	if (jv_is_num(a) && jv_is_num(b))
	{
		if (a.kind != JV_FLOAT && b.kind != JV_FLOAT)
		{
			int64_t		x = a.kind == JV_INT ? a.u.i : a.u.b;
			int64_t		y = b.kind == JV_INT ? b.u.i : b.u.b;

			*r = x < y ? -1 : x > y;
		}
		else
		{
			double		x = jv_num(a),
						y = jv_num(b);

			*r = x < y ? -1 : x > y;
		}
		return true;
	}
	if (a.kind == JV_STR && b.kind == JV_STR)
	{
		size_t		n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
		int			m = n ? memcmp(a.u.s.p, b.u.s.p, n) : 0;

		c->steps += n / 256;

		*r = m < 0 ? -1 : m > 0 ? 1 : (a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n);
		return true;
	}
	if (a.kind == JV_LIST && b.kind == JV_LIST && a.u.l->tuple == b.u.l->tuple)
	{
		for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++)
		{
			if (jv_equal(c, a.u.l->items[i], b.u.l->items[i]))
				continue;
			return jv_compare(c, a.u.l->items[i], b.u.l->items[i], r);
		}
		*r = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
		return true;
	}
	return jx_fail(c, LG_ERR_FORMAT, "'<' not supported between instances of '%s' and '%s'",
				   jv_type_name(a), jv_type_name(b));
}

/* ---- str() and repr() ---- */

/* Python's repr of a double: the shortest digits that round-trip. */
void
jx_float_repr(double f, char *buf, size_t size)
{
	char		tmp[40];
	char		digits[24];
	int			nd = 0,
				exp10,
				decpt;
	size_t		o = 0;
	bool		neg;

	if (isnan(f))
	{
		snprintf(buf, size, "nan");
		return;
	}
	if (isinf(f))
	{
		snprintf(buf, size, f < 0 ? "-inf" : "inf");
		return;
	}
	neg = signbit(f);
	if (f == 0)
	{
		snprintf(buf, size, neg ? "-0.0" : "0.0");
		return;
	}
	for (int p = 1; p <= 17; p++)
	{
		snprintf(tmp, sizeof(tmp), "%.*e", p - 1, fabs(f));
		if (strtod(tmp, NULL) == fabs(f) || p == 17)
			break;
	}
	/* tmp is d[.ddd]e±XX */
	for (const char *s = tmp; *s && *s != 'e'; s++)
		if (*s >= '0' && *s <= '9')
			digits[nd++] = *s;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	exp10 = atoi(strchr(tmp, 'e') + 1);
	decpt = exp10 + 1;			/* value = 0.digits × 10^decpt */
	if (neg)
		tmp[o++] = '-';
	if (decpt > -4 && decpt <= 16)
	{
		if (decpt <= 0)
		{
			tmp[o++] = '0';
			tmp[o++] = '.';
			for (int i = 0; i < -decpt; i++)
				tmp[o++] = '0';
			for (int i = 0; i < nd; i++)
				tmp[o++] = digits[i];
		}
		else
		{
			for (int i = 0; i < decpt; i++)
				tmp[o++] = i < nd ? digits[i] : '0';
			tmp[o++] = '.';
			if (nd > decpt)
				for (int i = decpt; i < nd; i++)
					tmp[o++] = digits[i];
			else
				tmp[o++] = '0';
		}
		tmp[o] = '\0';
	}
	else
	{
		tmp[o++] = digits[0];
		if (nd > 1)
		{
			tmp[o++] = '.';
			for (int i = 1; i < nd; i++)
				tmp[o++] = digits[i];
		}
		snprintf(tmp + o, sizeof(tmp) - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
	}
	snprintf(buf, size, "%s", tmp);
}

/* Code points Python's str.isprintable() rejects (besides ASCII controls). */
static bool
cp_printable(uint32_t cp)
{
	if (cp < 0x20 || cp == 0x7f)
		return false;
	if (cp < 0x7f)
		return true;
	if (cp == 0x20)
		return true;
	return (lg_unicode_flags(cp) & (LG_UFLAG_CONTROL | LG_UFLAG_UNDEFINED | LG_UFLAG_SEPARATOR)) == 0;
}

/* repr() of a string: quotes chosen as Python does, escapes for what is not printable. */
static bool
append_str_repr(lg_buf *b, const char *s, size_t n)
{
	char		q = '\'';
	size_t		off = 0;
	bool		ok = true;
	char		stage[4096];	/* escapes are staged here, so the buffer grows in big steps */
	size_t		k = 0;

	if (memchr(s, '\'', n) && !memchr(s, '"', n))
		q = '"';
	stage[k++] = q;
	while (off < n && ok)
	{
		size_t		start = off;
		uint32_t	cp;

		if (k > sizeof(stage) - 16)
		{
			ok &= lg_buf_append(b, stage, k);
			k = 0;
		}
		/* runs of plain printable ASCII go in one piece */
		while (off < n && (unsigned char) s[off] >= 0x20 && (unsigned char) s[off] < 0x7f &&
			   s[off] != q && s[off] != '\\')
			off++;
		if (off > start)
		{
			if (off - start < sizeof(stage) - 16 - k)
			{
				memcpy(stage + k, s + start, off - start);
				k += off - start;
			}
			else
			{
				ok &= lg_buf_append(b, stage, k);
				k = 0;
				ok &= lg_buf_append(b, s + start, off - start);
			}
			continue;
		}
		cp = lg_utf8_decode(s, n, &off);
		if (cp == (uint32_t) q || cp == '\\')
		{
			stage[k++] = '\\';
			stage[k++] = (char) cp;
		}
		else if (cp == '\t' || cp == '\n' || cp == '\r')
		{
			stage[k++] = '\\';
			stage[k++] = cp == '\t' ? 't' : cp == '\n' ? 'n' : 'r';
		}
		else if (cp_printable(cp))
		{
			memcpy(stage + k, s + start, off - start);
			k += off - start;
		}
		else if (cp <= 0xff)
			k += (size_t) snprintf(stage + k, 16, "\\x%02x", cp);
		else if (cp <= 0xffff)
			k += (size_t) snprintf(stage + k, 16, "\\u%04x", cp);
		else
			k += (size_t) snprintf(stage + k, 16, "\\U%08x", cp);
	}
	stage[k++] = q;
	ok &= lg_buf_append(b, stage, k);
	return ok;
}

static bool append_value(jx_ctx *c, lg_buf *b, jv v, bool repr);

/* The items of a list or tuple, or the members of a dict, as repr. */
static bool
append_container(jx_ctx *c, lg_buf *b, jv v)
{
	bool		ok = true;

	if (++c->depth > LG_CHAT_MAX_DEPTH)
		return jx_fail(c, LG_ERR_RANGE, "value nested too deeply");
	if (v.kind == JV_LIST)
	{
		jx_list    *l = v.u.l;

		ok &= lg_buf_append(b, l->tuple ? "(" : "[", 1);
		for (size_t i = 0; i < l->n && ok; i++)
		{
			if (i)
				ok &= lg_buf_append(b, ", ", 2);
			ok = ok && append_value(c, b, l->items[i], true);
		}
		if (l->tuple && l->n == 1)
			ok &= lg_buf_append(b, ",", 1);
		ok &= lg_buf_append(b, l->tuple ? ")" : "]", 1);
	}
	else
	{
		jx_dict    *d = v.u.d;

		ok &= lg_buf_append(b, "{", 1);
		for (size_t i = 0; i < d->n && ok; i++)
		{
			if (i)
				ok &= lg_buf_append(b, ", ", 2);
			ok = ok && append_value(c, b, d->keys[i], true);
			ok &= lg_buf_append(b, ": ", 2);
			ok = ok && append_value(c, b, d->vals[i], true);
		}
		ok &= lg_buf_append(b, "}", 1);
	}
	c->depth--;
	return ok;
}

/* str(v) or repr(v). */
static bool
append_value(jx_ctx *c, lg_buf *b, jv v, bool repr)
{
	char		num[48];

	if (b->len > LG_CHAT_MAX_OUTPUT)
		return jx_fail(c, LG_ERR_RANGE, "string longer than %u MiB", LG_CHAT_MAX_OUTPUT >> 20);
	switch (v.kind)
	{
		case JV_UNDEF:
			return repr ? lg_buf_append(b, "Undefined", 9) : lg_buf_append(b, "", 0);
		case JV_NONE:
			return lg_buf_append(b, "None", 4);
		case JV_BOOL:
			return v.u.b ? lg_buf_append(b, "True", 4) : lg_buf_append(b, "False", 5);
		case JV_INT:
			return lg_buf_appendf(b, "%lld", (long long) v.u.i);
		case JV_FLOAT:
			jx_float_repr(v.u.f, num, sizeof(num));
			return lg_buf_append(b, num, strlen(num));
		case JV_STR:
			if (!jx_step(c, v.u.s.n / (repr ? 16 : 64)))
				return false;
			if (b->len + v.u.s.n > LG_CHAT_MAX_OUTPUT)
				return jx_fail(c, LG_ERR_RANGE, "string longer than %u MiB", LG_CHAT_MAX_OUTPUT >> 20);
			return repr ? append_str_repr(b, v.u.s.p, v.u.s.n) : lg_buf_append(b, v.u.s.p, v.u.s.n);
		case JV_LIST:
		case JV_DICT:
			return append_container(c, b, v);
		case JV_NS:
			{
				jv			d = v;

				d.kind = JV_DICT;
				return lg_buf_append(b, "<Namespace ", 11) && append_container(c, b, d) &&
					lg_buf_append(b, ">", 1);
			}
		case JV_ITER:
			return lg_buf_appendf(b, "<%s object>", v.u.l->what);
		case JV_MACRO:
			return lg_buf_appendf(b, "<Macro '%s'>", v.u.m->def->name ? v.u.m->def->name : "caller");
		case JV_FUNC:
		case JV_METHOD:
			return lg_buf_append(b, "<built-in function>", 19);
		case JV_LOOP:
			return lg_buf_appendf(b, "<LoopContext %zu/%zu>", v.u.loop->index0 + 1, v.u.loop->items->n);
	}
	return true;
}

/* Append str(v). */
bool
jx_append_str(jx_ctx *c, lg_buf *b, jv v)
{
	if (!append_value(c, b, v, false))
		return c->err && c->err->status != LG_OK ? false : jx_nomem(c);
	return true;
}

/* Append repr(v). */
bool
jx_append_repr(jx_ctx *c, lg_buf *b, jv v)
{
	if (!append_value(c, b, v, true))
		return c->err && c->err->status != LG_OK ? false : jx_nomem(c);
	return true;
}

/* str(v) as a new string value (strings pass through). */
bool
jv_to_str(jx_ctx *c, jv v, jv *out)
{
	lg_buf		b;
	bool		ok;

	if (v.kind == JV_STR)
	{
		*out = v;
		return true;
	}
	if (v.kind == JV_UNDEF)
	{
		*out = jv_str("", 0);
		return true;
	}
	lg_buf_init(&b);
	ok = jx_append_str(c, &b, v) && jv_strdup(c, b.data ? b.data : "", b.len, out);
	lg_buf_free(&b);
	return ok;
}

/* ---- iteration and length ---- */

/* What `for x in v` iterates over, as a list. */
bool
jv_iterate(jx_ctx *c, jv v, jx_list **out)
{
	jv			l;

	switch (v.kind)
	{
		case JV_UNDEF:
			if (!jv_new_list(c, 0, false, &l))
				return false;
			*out = l.u.l;
			return true;
		case JV_LIST:
			*out = v.u.l;
			return true;
		case JV_ITER:
			if (v.u.l->consumed)
			{
				if (!jv_new_list(c, 0, false, &l))
					return false;
				*out = l.u.l;
				return true;
			}
			v.u.l->consumed = true;
			*out = v.u.l;
			return true;
		case JV_DICT:
			if (!jv_new_list(c, v.u.d->n, false, &l))
				return false;
			for (size_t i = 0; i < v.u.d->n; i++)
				l.u.l->items[i] = v.u.d->keys[i];
			*out = l.u.l;
			return true;
		case JV_STR:
			{
				size_t		n = jx_utf8_count(v.u.s.p, v.u.s.n);
				size_t		off = 0;

				if (!jx_step(c, n / 16) || !jv_new_list(c, n, false, &l))
					return false;
				for (size_t i = 0; i < n; i++)
				{
					size_t		start = off;

					lg_utf8_decode(v.u.s.p, v.u.s.n, &off);
					l.u.l->items[i] = jv_str(v.u.s.p + start, off - start);
				}
				*out = l.u.l;
				return true;
			}
		default:
			return jx_fail(c, LG_ERR_FORMAT, "'%s' object is not iterable", jv_type_name(v));
	}
}

/* len(v). */
bool
jv_length(jx_ctx *c, jv v, int64_t *n)
{
	switch (v.kind)
	{
		case JV_UNDEF:
			*n = 0;
			return true;
		case JV_STR:
			*n = (int64_t) jx_utf8_count(v.u.s.p, v.u.s.n);
			return jx_step(c, v.u.s.n / 64);
		case JV_LIST:
			*n = (int64_t) v.u.l->n;
			return true;
		case JV_DICT:
			*n = (int64_t) v.u.d->n;
			return true;
		default:
			return jx_fail(c, LG_ERR_FORMAT, "object of type '%s' has no len()", jv_type_name(v));
	}
}

/* ---- UTF-8 and Unicode ---- */

/* Number of code points (the text is valid UTF-8). */
size_t
jx_utf8_count(const char *s, size_t n)
{
	size_t		k = 0;

	for (size_t i = 0; i < n; i++)
		k += ((unsigned char) s[i] & 0xC0) != 0x80;
	return k;
}

/* Byte offset of code point number cpt (n when past the end). */
size_t
jx_utf8_offset(const char *s, size_t n, size_t cpt)
{
	size_t		i = 0;

	while (i < n && cpt > 0)
	{
		i++;
		while (i < n && ((unsigned char) s[i] & 0xC0) == 0x80)
			i++;
		cpt--;
	}
	return i;
}

/* Python's str.isspace() for one code point. */
bool
jx_is_space(uint32_t cp)
{
	if (cp <= 0x20)
		return cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x1f);
	return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
		cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Lower case of a code point (the simple mapping). */
uint32_t
jx_tolower(uint32_t cp)
{
	return lg_unicode_tolower(cp);
}

/* The lowercase table inverted (lower → upper), sorted by lower case; built once. */
static lg_unicode_pair *upper_table;
static size_t upper_len;
static pthread_once_t upper_once = PTHREAD_ONCE_INIT;

/* Order pairs by their lower-case side. */
static int
cmp_pair_to(const void *a, const void *b)
{
	uint32_t	x = ((const lg_unicode_pair *) a)->from,
				y = ((const lg_unicode_pair *) b)->from;

	return x < y ? -1 : x > y;
}

/* Is this upper-case code point a second choice for its lower case (title-case digraphs, signs)? */
static bool
upper_secondary(uint32_t from)
{
	return from == 0x1c5 || from == 0x1c8 || from == 0x1cb || from == 0x1f2 ||
		from == 0x212a || from == 0x2126 || from == 0x212b || from == 0x130 || from == 0x3f4 ||
		from == 0x1e9e;
}

/* Build upper_table: for each lower case, the first upper-case letter that maps to it. */
static void
build_upper_table(void)
{
	size_t		n = 0;
	lg_unicode_pair *t = malloc((lg_unicode_lowercase_len + 1) * sizeof(*t));

	if (t == NULL)
		return;
	for (size_t i = 0; i < lg_unicode_lowercase_len; i++)
	{
		if (lg_unicode_lowercase[i].from == lg_unicode_lowercase[i].to ||
			upper_secondary(lg_unicode_lowercase[i].from))
			continue;
		t[n].from = lg_unicode_lowercase[i].to;		/* lower */
		t[n].to = lg_unicode_lowercase[i].from;		/* upper */
		n++;
	}
	qsort(t, n, sizeof(*t), cmp_pair_to);
	upper_table = t;
	upper_len = n;
}

/* Upper case: the inverse of the lowercase table (ASCII fast). */
uint32_t
jx_toupper(uint32_t cp)
{
	size_t		lo = 0,
				hi;

	if (cp < 0x80)
		return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
	if (cp == 0xb5)
		return 0x39c;			/* micro sign: no upper-case letter maps down to it */
	if (cp == 0xff)
		return 0x178;
	pthread_once(&upper_once, build_upper_table);
	hi = upper_len;
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (upper_table[mid].from < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < upper_len && upper_table[lo].from == cp)
		return upper_table[lo].to;
	return cp;
}
