/*
 * jinja_filters.c — jinja2's built-in filters (those chat templates use)
 * with their Python behaviour: map/select/reject/selectattr/rejectattr/
 * unique/items give one-shot iterators (so `|length` on them is an error
 * and a second loop over them sees nothing, as in jinja2), sort is stable
 * and case-insensitive by default, and tojson is transformers' version.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"
#include "unicode.h"

typedef struct fargs
{
	jv		   *args;
	size_t		nargs;
	const char **kwn;
	jv		   *kwv;
	size_t		nkw;
} fargs;

/* Argument number pos (after the input) or keyword name; false if not given. */
static bool
arg(const fargs *a, size_t pos, const char *name, jv *out)
{
	for (size_t i = 0; i < a->nkw; i++)
		if (name && !strcmp(a->kwn[i], name))
		{
			*out = a->kwv[i];
			return true;
		}
	if (pos < a->nargs)
	{
		*out = a->args[pos];
		return true;
	}
	return false;
}

/* A boolean argument with a default. */
static bool
arg_bool(const fargs *a, size_t pos, const char *name, bool def)
{
	jv			v;

	return arg(a, pos, name, &v) ? jv_truthy(v) : def;
}

/* The error for a filter given an undefined value it cannot use. */
static bool
undef_error(jx_ctx *c, jv v)
{
	return jx_undefined_error(c, v);
}

/* str(v) with Markup kept. */
static bool
to_str(jx_ctx *c, jv v, jv *out)
{
	bool		safe = v.kind == JV_STR && v.safe;

	if (!jv_to_str(c, v, out))
		return false;
	out->safe = safe;
	return true;
}

/* HTML escaping as markupsafe does it. */
bool		jx_html_escape(jx_ctx *c, jv s, jv *out);

bool
jx_html_escape(jx_ctx *c, jv s, jv *out)
{
	lg_buf		b;
	bool		ok = true;
	size_t		run = 0;

	lg_buf_init(&b);
	for (size_t i = 0; i < s.u.s.n && ok; i++)
	{
		const char *e = NULL;

		switch (s.u.s.p[i])
		{
			case '&':
				e = "&amp;";
				break;
			case '<':
				e = "&lt;";
				break;
			case '>':
				e = "&gt;";
				break;
			case '\'':
				e = "&#39;";
				break;
			case '"':
				e = "&#34;";
				break;
		}
		if (e == NULL)
			continue;
		ok &= lg_buf_append(&b, s.u.s.p + run, i - run);
		ok &= lg_buf_append(&b, e, strlen(e));
		run = i + 1;
	}
	ok &= lg_buf_append(&b, s.u.s.p + run, s.u.s.n - run);
	ok = ok ? jv_strdup(c, b.data, b.len, out) : jx_nomem(c);
	lg_buf_free(&b);
	out->safe = true;
	return ok;
}

/* A list value from a jx_list's first n items. */
static bool
list_from(jx_ctx *c, jv *items, size_t n, jv *out)
{
	if (!jv_new_list(c, n, false, out))
		return false;
	if (n)
		memcpy(out->u.l->items, items, n * sizeof(jv));
	return true;
}

/* make_attrgetter: item.a.b (dotted, digits as indexes), by getitem. */
static bool
get_attribute(jx_ctx *c, jv item, jv attribute, jv *out)
{
	const char *p,
			   *end;

	if (attribute.kind != JV_STR)
		return jx_getitem(c, item, attribute, out);
	p = attribute.u.s.p;
	end = p + attribute.u.s.n;
	*out = item;
	while (p <= end)
	{
		const char *dot = memchr(p, '.', (size_t) (end - p));
		size_t		n = dot ? (size_t) (dot - p) : (size_t) (end - p);
		bool		digits = n > 0;
		jv			key;

		for (size_t i = 0; i < n; i++)
			digits &= p[i] >= '0' && p[i] <= '9';
		if (digits && n < 18)
			key = jv_int(strtoll(p, NULL, 10));
		else
			key = jv_str(p, n);
		if (!jx_getitem(c, *out, key, out))
			return false;
		if (!dot)
			break;
		p = dot + 1;
	}
	return true;
}

/* ---- sorting ---- */

typedef struct sort_key
{
	jv			key;
	jv			item;
} sort_key;

/* a < b for sorting; false with error when incomparable. */
static bool
key_less(jx_ctx *c, jv a, jv b, bool *less)
{
	int			r;

	if (!jv_compare(c, a, b, &r))
		return false;
	*less = r < 0;
	return true;
}

/* Stable merge sort of keys with a comparison that may fail. */
static bool
merge_sort(jx_ctx *c, sort_key *v, size_t n, sort_key *tmp, bool reverse)
{
	size_t		mid,
				i,
				j,
				k;

	if (n < 2)
		return true;
	mid = n / 2;
	if (!merge_sort(c, v, mid, tmp, reverse) || !merge_sort(c, v + mid, n - mid, tmp, reverse))
		return false;
	if (!jx_step(c, n / 16))
		return false;
	i = 0, j = mid, k = 0;
	while (i < mid && j < n)
	{
		bool		take_right;

		/* Python's reverse sort keeps equal items in order: compare the other way round */
		if (!key_less(c, reverse ? v[i].key : v[j].key, reverse ? v[j].key : v[i].key, &take_right))
			return false;
		tmp[k++] = take_right ? v[j++] : v[i++];
	}
	while (i < mid)
		tmp[k++] = v[i++];
	while (j < n)
		tmp[k++] = v[j++];
	memcpy(v, tmp, n * sizeof(sort_key));
	return true;
}

/* Lower-case a string key unless case-sensitive (ignore_case). */
static bool
fold_key(jx_ctx *c, jv v, bool case_sensitive, jv *out)
{
	if (case_sensitive || v.kind != JV_STR)
	{
		*out = v;
		return true;
	}
	return jx_call_method(c, v, "lower", NULL, 0, NULL, NULL, 0, out);
}

/* Sort items by key (computed with attribute and case folding). */
static bool
sort_items(jx_ctx *c, jx_list *items, bool reverse, bool case_sensitive, jv *attribute,
		   bool by_value_pair, jv *out)
{
	size_t		n = items->n;
	sort_key   *keys = jx_alloc(&c->ar, (n + 1) * sizeof(sort_key));
	sort_key   *tmp = jx_alloc(&c->ar, (n + 1) * sizeof(sort_key));

	if (keys == NULL || tmp == NULL)
		return jx_nomem(c);
	for (size_t i = 0; i < n; i++)
	{
		jv			k = items->items[i];

		if (by_value_pair)
			k = k.u.l->items[1];
		else if (attribute && !get_attribute(c, k, *attribute, &k))
			return false;
		if (!fold_key(c, k, case_sensitive, &keys[i].key))
			return false;
		keys[i].item = items->items[i];
	}
	if (!merge_sort(c, keys, n, tmp, reverse))
		return false;
	if (!jv_new_list(c, n, false, out))
		return false;
	for (size_t i = 0; i < n; i++)
		out->u.l->items[i] = keys[i].item;
	return true;
}

/* ---- string helpers ---- */

/* Python str.strip(chars) (chars NULL: whitespace); which: 1 left, 2 right, 3 both. */
bool		jx_strip(jx_ctx *c, jv s, const jv *chars, int which, jv *out);

bool
jx_strip(jx_ctx *c, jv s, const jv *chars, int which, jv *out)
{
	const char *p = s.u.s.p;
	size_t		n = s.u.s.n,
				start = 0,
				end = n;
	uint32_t   *set = NULL;
	size_t		nset = 0;

	if (chars && chars->kind == JV_STR)
	{
		set = lg_utf8_to_cpts(chars->u.s.p, chars->u.s.n, &nset);
		if (set == NULL)
			return jx_nomem(c);
	}
	if (which & 1)
	{
		while (start < n)
		{
			size_t		o = start;
			uint32_t	cp = lg_utf8_decode(p, n, &o);
			bool		hit = false;

			if (set)
				for (size_t k = 0; k < nset && !hit; k++)
					hit = set[k] == cp;
			else
				hit = jx_is_space(cp);
			if (!hit)
				break;
			start = o;
		}
	}
	if (which & 2)
	{
		while (end > start)
		{
			size_t		b = end - 1,
						o;
			uint32_t	cp;
			bool		hit = false;

			while (b > start && ((unsigned char) p[b] & 0xC0) == 0x80)
				b--;
			o = b;
			cp = lg_utf8_decode(p, n, &o);
			if (set)
				for (size_t k = 0; k < nset && !hit; k++)
					hit = set[k] == cp;
			else
				hit = jx_is_space(cp);
			if (!hit)
				break;
			end = b;
		}
	}
	free(set);
	*out = jv_str(p + start, end - start);
	out->safe = s.safe;
	return true;
}

/* Python str.replace(old, new[, count]). */
bool		jx_replace(jx_ctx *c, jv s, jv old, jv new, int64_t count, jv *out);

bool
jx_replace(jx_ctx *c, jv s, jv old, jv new, int64_t count, jv *out)
{
	lg_buf		b;
	bool		ok = true;
	size_t		i = 0;
	int64_t		done = 0;

	lg_buf_init(&b);
	if (!jx_step(c, s.u.s.n / 64))
		return false;
	if (old.u.s.n == 0)
	{
		/* inserted before every code point and at the end */
		while (ok && (count < 0 || done < count))
		{
			ok &= lg_buf_append(&b, new.u.s.p, new.u.s.n);
			done++;
			if (i >= s.u.s.n)
				break;
			{
				size_t		o = i;

				lg_utf8_decode(s.u.s.p, s.u.s.n, &o);
				ok &= lg_buf_append(&b, s.u.s.p + i, o - i);
				i = o;
			}
			if (b.len > LG_CHAT_MAX_MEMORY)
				break;
		}
		ok &= lg_buf_append(&b, s.u.s.p + i, s.u.s.n - i);
	}
	else
	{
		while (ok && i <= s.u.s.n && (count < 0 || done < count))
		{
			const char *hit = memmem(s.u.s.p + i, s.u.s.n - i, old.u.s.p, old.u.s.n);

			if (hit == NULL)
				break;
			ok &= lg_buf_append(&b, s.u.s.p + i, (size_t) (hit - (s.u.s.p + i)));
			ok &= lg_buf_append(&b, new.u.s.p, new.u.s.n);
			i = (size_t) (hit - s.u.s.p) + old.u.s.n;
			done++;
			if (b.len > LG_CHAT_MAX_MEMORY)
				break;
		}
		ok &= lg_buf_append(&b, s.u.s.p + i, s.u.s.n - i);
	}
	if (b.len > LG_CHAT_MAX_MEMORY)
		ok = false;
	ok = ok ? jv_strdup(c, b.data ? b.data : "", b.len, out) : jx_nomem(c);
	lg_buf_free(&b);
	out->safe = s.safe;
	return ok;
}

/* Python str.splitlines() boundaries. */
static bool
is_line_break(uint32_t cp)
{
	return cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
		cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

/* jinja2's do_indent(s, width, first, blank). */
static bool
do_indent(jx_ctx *c, jv s, jv width, bool first, bool blank, jv *out)
{
	char		spaces[256];
	const char *ind;
	size_t		ind_n;
	lg_buf		b;
	bool		ok = true;
	size_t		i = 0,
				line = 0;
	/* s += "\n"; lines = s.splitlines() */
	const char *p = s.u.s.p;
	size_t		n = s.u.s.n;

	if (width.kind == JV_STR)
	{
		ind = width.u.s.p;
		ind_n = width.u.s.n;
	}
	else
	{
		int64_t		w = width.kind == JV_INT ? width.u.i : width.kind == JV_BOOL ? width.u.b : 4;

		if (width.kind == JV_FLOAT)
			return jx_fail(c, LG_ERR_FORMAT, "can't multiply sequence by non-int of type 'float'");
		if (w < 0)
			w = 0;
		if (w > 255)
			return jx_fail(c, LG_ERR_RANGE, "indent width %lld too large", (long long) w);
		memset(spaces, ' ', (size_t) w);
		ind = spaces;
		ind_n = (size_t) w;
	}
	lg_buf_init(&b);
	if (first)
		ok &= lg_buf_append(&b, ind, ind_n);
	/*
	 * (s + "\n").splitlines(): the segments of s between line breaks, the
	 * last one included even when empty (unless s ends in "\r", which the
	 * added "\n" joins into one "\r\n" break).
	 */
	while (ok)
	{
		size_t		start = i,
					end = i,
					o = i;
		uint32_t	cp = 0;
		bool		broke = false;

		while (end < n)
		{
			o = end;
			cp = lg_utf8_decode(p, n, &o);
			if (is_line_break(cp))
			{
				broke = true;
				break;
			}
			end = o;
		}
		if (line > 0)
		{
			ok &= lg_buf_append(&b, "\n", 1);
			if (blank || end > start)
				ok &= lg_buf_append(&b, ind, ind_n);
		}
		ok &= lg_buf_append(&b, p + start, end - start);
		line++;
		if (!broke)
			break;
		i = o;
		if (cp == '\r' && i < n && p[i] == '\n')
			i++;
		if (i == n && cp == '\r' && p[n - 1] == '\r')
			break;
	}
	ok = ok ? jv_strdup(c, b.data ? b.data : "", b.len, out) : jx_nomem(c);
	lg_buf_free(&b);
	out->safe = s.safe;
	return ok;
}

/* ---- filters ---- */

/* map / select / reject / selectattr / rejectattr over the input. */
static bool
filter_seq(jx_ctx *c, const char *name, jv in, const fargs *a, jv *out)
{
	jx_list    *items;
	jv			res;
	size_t		k = 0;
	bool		is_map = !strcmp(name, "map");
	bool		by_attr = !strcmp(name, "selectattr") || !strcmp(name, "rejectattr");
	bool		reject = !strcmp(name, "reject") || !strcmp(name, "rejectattr");
	jv			attribute = jv_undef(NULL),
				test_name = jv_undef(NULL),
				dflt = jv_undef(NULL);
	size_t		first_extra;
	bool		have_default = false;

	/* jinja2 loops only `if value:`, so None (or any falsy input) gives nothing */
	if (!jv_truthy(in))
		in = jv_undef(NULL);
	if (!jv_iterate(c, in, &items) || !jv_new_list(c, items->n, false, &res))
		return false;
	if (is_map)
	{
		if (arg(a, SIZE_MAX, "attribute", &attribute))
			have_default = arg(a, SIZE_MAX, "default", &dflt);
		else if (a->nargs == 0)
			return jx_fail(c, LG_ERR_FORMAT, "map requires a filter argument");
		else if (a->args[0].kind != JV_STR)
			return jx_fail(c, LG_ERR_FORMAT, "map: the filter name must be a string");
		first_extra = 1;
	}
	else if (by_attr)
	{
		if (a->nargs == 0)
			return jx_fail(c, LG_ERR_FORMAT, "%s: missing attribute argument", name);
		attribute = a->args[0];
		if (a->nargs > 1)
			test_name = a->args[1];
		first_extra = 2;
	}
	else
	{
		if (a->nargs > 0)
			test_name = a->args[0];
		first_extra = 1;
	}
	if (test_name.kind != JV_UNDEF && test_name.kind != JV_STR)
		return jx_fail(c, LG_ERR_FORMAT, "%s: the test name must be a string", name);
	for (size_t i = 0; i < items->n; i++)
	{
		jv			item = items->items[i],
					v = item;

		if (!jx_step(c, 1))
			return false;
		if (attribute.kind != JV_UNDEF && !get_attribute(c, item, attribute, &v))
			return false;
		if (is_map)
		{
			if (attribute.kind != JV_UNDEF)
			{
				if (v.kind == JV_UNDEF && have_default)
					v = dflt;
			}
			else
			{
				char	   *fname = jx_strdup(&c->ar, a->args[0].u.s.p, a->args[0].u.s.n);
				size_t		ne = a->nargs > first_extra ? a->nargs - first_extra : 0;

				if (fname == NULL)
					return jx_nomem(c);
				if (!jx_filter_exists(fname))
					return jx_fail(c, LG_ERR_FORMAT, "no filter named '%s'", fname);
				if (!jx_apply_filter(c, fname, item, a->args + first_extra, ne, a->kwn, a->kwv, a->nkw, &v))
					return false;
			}
			res.u.l->items[k++] = v;
			continue;
		}
		{
			bool		keep;

			if (test_name.kind == JV_UNDEF)
				keep = jv_truthy(v);
			else
			{
				char	   *tname = jx_strdup(&c->ar, test_name.u.s.p, test_name.u.s.n);
				size_t		ne = a->nargs > first_extra ? a->nargs - first_extra : 0;

				if (tname == NULL)
					return jx_nomem(c);
				if (!jx_test_exists(tname))
					return jx_fail(c, LG_ERR_FORMAT, "no test named '%s'", tname);
				if (!jx_apply_test(c, tname, v, a->args + first_extra, ne, &keep))
					return false;
			}
			if (keep != reject)
				res.u.l->items[k++] = item;
		}
	}
	res.u.l->n = k;
	return jv_new_iter(c, res.u.l, "generator", out);
}

/* Python int(str) / float(str) for the int and float filters; false when not a number. */
static bool
parse_number_text(const char *p, size_t n, bool want_int, int base, jv *out)
{
	char		buf[128];
	size_t		o = 0;
	char	   *end;
	size_t		i = 0;

	while (i < n && jx_is_space((unsigned char) p[i]))
		i++;
	while (n > i && jx_is_space((unsigned char) p[n - 1]))
		n--;
	if (n - i == 0 || n - i >= sizeof(buf))
		return false;
	for (; i < n; i++)
	{
		if (p[i] == '_')
		{
			if (o == 0 || i + 1 >= n || p[i + 1] == '_' || !((p[i - 1] >= '0' && p[i - 1] <= '9') || (p[i - 1] >= 'a' && p[i - 1] <= 'f') || (p[i - 1] >= 'A' && p[i - 1] <= 'F')))
				return false;
			continue;
		}
		buf[o++] = p[i];
	}
	buf[o] = '\0';
	if (want_int)
	{
		long long	v;

		if (buf[0] == '+' && (buf[1] == '-' || buf[1] == '+'))
			return false;
		v = strtoll(buf, &end, base);
		if (*end != '\0' || end == buf || (buf[0] == '0' && base == 10 && strspn(buf, "0") != strlen(buf)))
			return false;
		*out = jv_int(v);
		return true;
	}
	{
		double		d;

		if (!strcasecmp(buf, "nan") || !strcasecmp(buf, "+nan") || !strcasecmp(buf, "-nan"))
		{
			*out = jv_float(buf[0] == '-' ? -NAN : NAN);
			return true;
		}
		if (strpbrk(buf, "xXpP"))
			return false;		/* strtod reads hex floats; Python does not */
		d = strtod(buf, &end);
		if (*end != '\0' || end == buf)
			return false;
		*out = jv_float(d);
		return true;
	}
}

/* Python round(x, ndigits) for floats (correctly rounded via the decimal text). */
static double
py_round(double x, int64_t nd)
{
	char		buf[512];

	if (!isfinite(x))
		return x;
	if (nd > 300)
		return x;
	if (nd < -300)
		return 0.0 * x;
	if (nd >= 0)
	{
		snprintf(buf, sizeof(buf), "%.*f", (int) nd, x);
		return strtod(buf, NULL);
	}
	else
	{
		double		p = pow(10.0, (double) -nd);
		double		y = x / p;

		return nearbyint(y) * p;
	}
}

/* Apply filter name to in. */
bool
jx_apply_filter(jx_ctx *c, const char *name, jv in, jv *args, size_t nargs, const char **kwnames,
				jv *kwvals, size_t nkw, jv *out)
{
	fargs		a = {args, nargs, kwnames, kwvals, nkw};
	jv			v,
				s;
	jx_list    *items;

	if (!jx_step(c, 1))
		return false;

	if (!strcmp(name, "tojson"))
	{
		jv			indent = jv_none(),
					seps = jv_none();
		lg_buf		b;
		bool		ok;
		char		spaces[256];
		const char *ind = NULL;
		size_t		ind_n = 0;
		const char *item_sep = NULL,
				   *key_sep = NULL;

		arg(&a, 0, "indent", &indent);
		arg(&a, 2, "separators", &seps);
		if (indent.kind == JV_INT || indent.kind == JV_BOOL)
		{
			int64_t		w = indent.kind == JV_INT ? indent.u.i : indent.u.b;

			if (w > 255)
				return jx_fail(c, LG_ERR_RANGE, "tojson indent %lld too large", (long long) w);
			w = w < 0 ? 0 : w;
			memset(spaces, ' ', (size_t) w);
			ind = spaces;
			ind_n = (size_t) w;
		}
		else if (indent.kind == JV_STR)
		{
			ind = indent.u.s.p;
			ind_n = indent.u.s.n;
		}
		else if (indent.kind != JV_NONE)
			return jx_fail(c, LG_ERR_FORMAT, "tojson: indent must be an int or a string");
		if (seps.kind == JV_LIST && seps.u.l->n == 2 && seps.u.l->items[0].kind == JV_STR &&
			seps.u.l->items[1].kind == JV_STR)
		{
			item_sep = jx_strdup(&c->ar, seps.u.l->items[0].u.s.p, seps.u.l->items[0].u.s.n);
			key_sep = jx_strdup(&c->ar, seps.u.l->items[1].u.s.p, seps.u.l->items[1].u.s.n);
			if (item_sep == NULL || key_sep == NULL)
				return jx_nomem(c);
		}
		else if (seps.kind != JV_NONE)
			return jx_fail(c, LG_ERR_FORMAT, "tojson: separators must be a pair of strings");
		lg_buf_init(&b);
		ok = jx_tojson(c, &b, in, ind != NULL, ind, ind_n, item_sep, key_sep, arg_bool(&a, 4, "sort_keys", false)) &&
			jv_strdup(c, b.data ? b.data : "", b.len, out);
		lg_buf_free(&b);
		return ok;
	}
	if (!strcmp(name, "trim"))
	{
		jv			chars;
		bool		has = arg(&a, 0, "chars", &chars) && chars.kind != JV_NONE;

		return to_str(c, in, &s) && jx_strip(c, s, has ? &chars : NULL, 3, out);
	}
	if (!strcmp(name, "length") || !strcmp(name, "count"))
	{
		int64_t		n;

		if (!jv_length(c, in, &n))
			return false;
		*out = jv_int(n);
		return true;
	}
	if (!strcmp(name, "string"))
		return to_str(c, in, out);
	if (!strcmp(name, "safe"))
	{
		if (!to_str(c, in, out))
			return false;
		out->safe = true;
		return true;
	}
	if (!strcmp(name, "e") || !strcmp(name, "escape") || !strcmp(name, "forceescape"))
	{
		if (in.kind == JV_STR && in.safe && strcmp(name, "forceescape") != 0)
		{
			*out = in;
			return true;
		}
		return to_str(c, in, &s) && jx_html_escape(c, s, out);
	}
	if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize") ||
		!strcmp(name, "title"))
	{
		if (!to_str(c, in, &s) || !jx_call_method(c, s, name, NULL, 0, NULL, NULL, 0, out))
			return false;
		out->safe = s.safe;
		return true;
	}
	if (!strcmp(name, "replace"))
	{
		jv			old,
					new,
					count = jv_none();

		if (!arg(&a, 0, "old", &old) || !arg(&a, 1, "new", &new))
			return jx_fail(c, LG_ERR_FORMAT, "replace needs old and new");
		arg(&a, 2, "count", &count);
		if (!to_str(c, in, &s) || !jv_to_str(c, old, &old) || !jv_to_str(c, new, &new))
			return false;
		if (s.safe && !new.safe && !jx_html_escape(c, new, &new))
			return false;
		return jx_replace(c, s, old, new, count.kind == JV_INT ? count.u.i : -1, out);
	}
	if (!strcmp(name, "indent"))
	{
		jv			width = jv_int(4);

		arg(&a, 0, "width", &width);
		return to_str(c, in, &s) &&
			do_indent(c, s, width, arg_bool(&a, 1, "first", false), arg_bool(&a, 2, "blank", false), out);
	}
	if (!strcmp(name, "default") || !strcmp(name, "d"))
	{
		jv			dv = jv_str("", 0);

		arg(&a, 0, "default_value", &dv);
		if (in.kind == JV_UNDEF || (arg_bool(&a, 1, "boolean", false) && !jv_truthy(in)))
			*out = dv;
		else
			*out = in;
		return true;
	}
	if (!strcmp(name, "join"))
	{
		jv			sep = jv_str("", 0),
					attribute;
		bool		has_attr = arg(&a, 1, "attribute", &attribute);
		lg_buf		b;
		bool		ok = true;

		arg(&a, 0, "d", &sep);
		if (!jv_to_str(c, sep, &sep) || !jv_iterate(c, in, &items))
			return false;
		lg_buf_init(&b);
		for (size_t i = 0; ok && i < items->n; i++)
		{
			jv			item = items->items[i];

			if (i)
				ok = lg_buf_append(&b, sep.u.s.p, sep.u.s.n) || jx_nomem(c);
			if (ok && has_attr)
				ok = get_attribute(c, item, attribute, &item);
			ok = ok && jx_append_str(c, &b, item);
			if (ok && b.len > LG_CHAT_MAX_OUTPUT)
				ok = jx_fail(c, LG_ERR_RANGE, "joined string longer than %u MiB", LG_CHAT_MAX_OUTPUT >> 20);
		}
		ok = ok && jv_strdup(c, b.data ? b.data : "", b.len, out);
		lg_buf_free(&b);
		return ok;
	}
	if (!strcmp(name, "map") || !strcmp(name, "select") || !strcmp(name, "reject") ||
		!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
		return filter_seq(c, name, in, &a, out);
	if (!strcmp(name, "list"))
	{
		if (!jv_iterate(c, in, &items))
			return false;
		return list_from(c, items->items, items->n, out);
	}
	if (!strcmp(name, "items"))
	{
		jv			r;

		if (in.kind == JV_UNDEF)
		{
			if (!jv_new_list(c, 0, false, &r))
				return false;
			return jv_new_iter(c, r.u.l, "generator", out);
		}
		if (in.kind != JV_DICT)
			return jx_fail(c, LG_ERR_FORMAT, "can only get item pairs from a mapping");
		if (!jx_call_method(c, in, "items", NULL, 0, NULL, NULL, 0, &r))
			return false;
		return jv_new_iter(c, r.u.l, "generator", out);
	}
	if (!strcmp(name, "first"))
	{
		if (!jv_iterate(c, in, &items))
			return false;
		*out = items->n ? items->items[0] : jv_undef("first");
		return true;
	}
	if (!strcmp(name, "last"))
	{
		if (in.kind == JV_ITER)
			return jx_fail(c, LG_ERR_FORMAT, "'%s' object is not reversible", in.u.l->what);
		if (!jv_iterate(c, in, &items))
			return false;
		*out = items->n ? items->items[items->n - 1] : jv_undef("last");
		return true;
	}
	if (!strcmp(name, "reverse"))
	{
		jv			r;

		if (in.kind == JV_STR)
		{
			char	   *buf = jx_alloc(&c->ar, in.u.s.n + 1);
			size_t		o = in.u.s.n,
						off = 0;

			if (buf == NULL)
				return jx_nomem(c);
			while (off < in.u.s.n)
			{
				size_t		start = off;

				lg_utf8_decode(in.u.s.p, in.u.s.n, &off);
				o -= off - start;
				memcpy(buf + o, in.u.s.p + start, off - start);
			}
			*out = jv_str(buf, in.u.s.n);
			return true;
		}
		if (!jv_iterate(c, in, &items) || !jv_new_list(c, items->n, false, &r))
			return false;
		for (size_t i = 0; i < items->n; i++)
			r.u.l->items[i] = items->items[items->n - 1 - i];
		if (in.kind == JV_LIST || in.kind == JV_DICT)
			return jv_new_iter(c, r.u.l, in.kind == JV_LIST ? "list_reverseiterator" : "dict_reversekeyiterator", out);
		*out = r;
		return true;
	}
	if (!strcmp(name, "sort"))
	{
		jv			attribute;
		bool		has_attr = arg(&a, 2, "attribute", &attribute) && attribute.kind != JV_NONE;

		if (!jv_iterate(c, in, &items))
			return false;
		return sort_items(c, items, arg_bool(&a, 0, "reverse", false), arg_bool(&a, 1, "case_sensitive", false),
						  has_attr ? &attribute : NULL, false, out);
	}
	if (!strcmp(name, "dictsort"))
	{
		jv			by = jv_str("key", 3),
					pairs;

		arg(&a, 1, "by", &by);
		if (in.kind != JV_DICT)
			return in.kind == JV_UNDEF ? undef_error(c, in) :
				jx_fail(c, LG_ERR_FORMAT, "'%s' object has no attribute 'items'", jv_type_name(in));
		if (!jx_call_method(c, in, "items", NULL, 0, NULL, NULL, 0, &pairs))
			return false;
		if (by.kind != JV_STR || (strcmp(by.u.s.p, "key") && strcmp(by.u.s.p, "value")))
			return jx_fail(c, LG_ERR_FORMAT, "You can only sort by either \"key\" or \"value\"");
		{
			jv			zero = jv_int(0);
			bool		by_value = !strcmp(by.u.s.p, "value");

			return sort_items(c, pairs.u.l, arg_bool(&a, 2, "reverse", false),
							  arg_bool(&a, 0, "case_sensitive", false), by_value ? NULL : &zero, by_value, out);
		}
	}
	if (!strcmp(name, "unique"))
	{
		jv			attribute,
					r;
		bool		has_attr = arg(&a, 1, "attribute", &attribute) && attribute.kind != JV_NONE;
		bool		cs = arg_bool(&a, 0, "case_sensitive", false);
		jv		   *seen;
		size_t		k = 0;

		if (!jv_iterate(c, in, &items) || !jv_new_list(c, items->n, false, &r))
			return false;
		if ((seen = jx_alloc(&c->ar, (items->n + 1) * sizeof(jv))) == NULL)
			return jx_nomem(c);
		for (size_t i = 0; i < items->n; i++)
		{
			jv			key = items->items[i];
			bool		dup = false;

			if (has_attr && !get_attribute(c, key, attribute, &key))
				return false;
			if (!fold_key(c, key, cs, &key) || !jx_step(c, k / 16))
				return false;
			for (size_t j = 0; j < k && !dup; j++)
				dup = jv_equal(c, seen[j], key);
			if (dup)
				continue;
			seen[k] = key;
			r.u.l->items[k++] = items->items[i];
		}
		r.u.l->n = k;
		return jv_new_iter(c, r.u.l, "generator", out);
	}
	if (!strcmp(name, "min") || !strcmp(name, "max"))
	{
		jv			attribute;
		bool		has_attr = arg(&a, 1, "attribute", &attribute) && attribute.kind != JV_NONE;
		jv			sorted;

		if (!jv_iterate(c, in, &items))
			return false;
		if (items->n == 0)
		{
			*out = jv_undef(name);
			return true;
		}
		if (!sort_items(c, items, false, arg_bool(&a, 0, "case_sensitive", false),
						has_attr ? &attribute : NULL, false, &sorted))
			return false;
		/* max: the first of the largest, as Python's max() */
		if (!strcmp(name, "min"))
			*out = sorted.u.l->items[0];
		else
		{
			size_t		i = sorted.u.l->n - 1;

			*out = sorted.u.l->items[i];
			/* sort is stable, so equal maxima keep input order: take the earliest of them */
			while (i > 0)
			{
				jv			x = sorted.u.l->items[i - 1],
							y = *out,
							kx,
							ky;
				int			r;

				if (has_attr && (!get_attribute(c, x, attribute, &x) || !get_attribute(c, y, attribute, &y)))
					return false;
				if (!fold_key(c, x, arg_bool(&a, 0, "case_sensitive", false), &kx) ||
					!fold_key(c, y, arg_bool(&a, 0, "case_sensitive", false), &ky) ||
					!jv_compare(c, kx, ky, &r))
					return false;
				if (r != 0)
					break;
				*out = sorted.u.l->items[--i];
			}
		}
		return true;
	}
	if (!strcmp(name, "sum"))
	{
		jv			attribute,
					total = jv_int(0);
		bool		has_attr = arg(&a, 0, "attribute", &attribute) && attribute.kind != JV_NONE;

		arg(&a, 1, "start", &total);
		if (!jv_iterate(c, in, &items))
			return false;
		for (size_t i = 0; i < items->n; i++)
		{
			jv			x = items->items[i];
			jv			args2[1];

			if (has_attr && !get_attribute(c, x, attribute, &x))
				return false;
			args2[0] = x;
			if (!jx_binop(c, JT_ADD, total, args2[0], &total))
				return false;
		}
		*out = total;
		return true;
	}
	if (!strcmp(name, "abs"))
	{
		if (in.kind == JV_INT || in.kind == JV_BOOL)
		{
			int64_t		i = in.kind == JV_INT ? in.u.i : in.u.b;

			if (i == INT64_MIN)
				return jx_fail(c, LG_ERR_RANGE, "integer overflow");
			*out = jv_int(i < 0 ? -i : i);
			return true;
		}
		if (in.kind == JV_FLOAT)
		{
			*out = jv_float(fabs(in.u.f));
			return true;
		}
		if (in.kind == JV_UNDEF)
			return undef_error(c, in);
		return jx_fail(c, LG_ERR_FORMAT, "bad operand type for abs(): '%s'", jv_type_name(in));
	}
	if (!strcmp(name, "int"))
	{
		jv			dv = jv_int(0),
					base = jv_int(10);

		arg(&a, 0, "default", &dv);
		arg(&a, 1, "base", &base);
		if (in.kind == JV_INT)
			*out = in;
		else if (in.kind == JV_BOOL)
			*out = jv_int(in.u.b);
		else if (in.kind == JV_FLOAT)
		{
			if (!isfinite(in.u.f) || fabs(in.u.f) >= 9.2e18)
				*out = dv;
			else
				*out = jv_int((int64_t) in.u.f);
		}
		else if (in.kind == JV_STR)
		{
			if (!parse_number_text(in.u.s.p, in.u.s.n, true, base.kind == JV_INT ? (int) base.u.i : 10, out))
			{
				jv			f;

				if (parse_number_text(in.u.s.p, in.u.s.n, false, 10, &f) && isfinite(f.u.f) &&
					fabs(f.u.f) < 9.2e18)
					*out = jv_int((int64_t) f.u.f);
				else
					*out = dv;
			}
		}
		else
			*out = dv;
		return true;
	}
	if (!strcmp(name, "float"))
	{
		jv			dv = jv_float(0.0);

		arg(&a, 0, "default", &dv);
		if (in.kind == JV_FLOAT)
			*out = in;
		else if (in.kind == JV_INT || in.kind == JV_BOOL)
			*out = jv_float(jv_num(in));
		else if (in.kind == JV_STR)
		{
			if (!parse_number_text(in.u.s.p, in.u.s.n, false, 10, out))
				*out = dv;
		}
		else
			*out = dv;
		return true;
	}
	if (!strcmp(name, "round"))
	{
		jv			prec = jv_int(0),
					method = jv_str("common", 6);
		int64_t		p;

		arg(&a, 0, "precision", &prec);
		arg(&a, 1, "method", &method);
		if (method.kind != JV_STR ||
			(strcmp(method.u.s.p, "common") && strcmp(method.u.s.p, "ceil") && strcmp(method.u.s.p, "floor")))
			return jx_fail(c, LG_ERR_FORMAT, "method must be common, ceil or floor");
		if (!jv_is_num(in))
			return in.kind == JV_UNDEF ? undef_error(c, in) :
				jx_fail(c, LG_ERR_FORMAT, "type %s doesn't define __round__ method", jv_type_name(in));
		p = prec.kind == JV_INT ? prec.u.i : 0;
		if (!strcmp(method.u.s.p, "common"))
		{
			if (in.kind != JV_FLOAT)
			{
				*out = jv_int(in.kind == JV_INT ? in.u.i : in.u.b);	/* int rounding to >= 0 digits */
				if (p < 0)
				{
					double		r = py_round((double) out->u.i, p);

					*out = jv_int((int64_t) r);
				}
				return true;
			}
			*out = jv_float(py_round(in.u.f, p));
			return true;
		}
		{
			double		scale = pow(10.0, (double) p),
						x = jv_num(in) * scale;

			*out = jv_float((!strcmp(method.u.s.p, "ceil") ? ceil(x) : floor(x)) / scale);
			return true;
		}
	}
	if (!strcmp(name, "attr"))
	{
		jv			an;

		if (!arg(&a, 0, "name", &an) || an.kind != JV_STR)
			return jx_fail(c, LG_ERR_FORMAT, "attr needs a name");
		if (in.kind == JV_DICT || in.kind == JV_LIST || in.kind == JV_STR)
		{
			char	   *n = jx_strdup(&c->ar, an.u.s.p, an.u.s.n);

			if (n == NULL)
				return jx_nomem(c);
			if (jx_has_method(in, n))
				return jx_getattr(c, in, n, out);
			*out = jv_undef(n);
			return true;
		}
		{
			char	   *n = jx_strdup(&c->ar, an.u.s.p, an.u.s.n);

			return n ? jx_getattr(c, in, n, out) : jx_nomem(c);
		}
	}
	if (!strcmp(name, "format"))
	{
		jv			tuple;

		if (!to_str(c, in, &s))
			return false;
		if (nkw)
			return jx_fail(c, LG_ERR_FORMAT, "format: keyword arguments are not supported");
		if (!list_from(c, args, nargs, &tuple))
			return false;
		tuple.u.l->tuple = true;
		return jx_percent_format(c, s, tuple, out);
	}
	if (!strcmp(name, "wordcount"))
	{
		size_t		n = 0,
					off = 0;
		bool		in_word = false;

		if (!to_str(c, in, &s))
			return false;
		/* \w+ runs */
		while (off < s.u.s.n)
		{
			uint32_t	cp = lg_utf8_decode(s.u.s.p, s.u.s.n, &off);
			bool		w = cp == '_' || (lg_unicode_flags(cp) & (LG_UFLAG_LETTER | LG_UFLAG_NUMBER));

			if (w && !in_word)
				n++;
			in_word = w;
		}
		*out = jv_int((int64_t) n);
		return true;
	}
	if (!strcmp(name, "center"))
	{
		jv			width = jv_int(80),
					args2[1];

		arg(&a, 0, "width", &width);
		args2[0] = width;
		return to_str(c, in, &s) && jx_call_method(c, s, "center", args2, 1, NULL, NULL, 0, out);
	}
	(void) v;
	return jx_fail(c, LG_ERR_FORMAT, "no filter named '%s'", name);
}

static const char *const filter_names[] = {
	"abs", "attr", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
	"first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length",
	"list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round",
	"safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique",
	"upper", "wordcount", NULL
};

/* Is there a filter of this name? */
bool
jx_filter_exists(const char *name)
{
	for (int i = 0; filter_names[i]; i++)
		if (!strcmp(filter_names[i], name))
			return true;
	return false;
}
