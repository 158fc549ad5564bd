/*
 * jinja_methods.c — the Python methods templates call on values
 * (str.strip/split/startswith/format…, dict.items/get…, list.index…,
 * loop.cycle), the globals (range, namespace, dict, raise_exception,
 * strftime_now) and printf-style `str % args`.  Methods that would change a
 * value (list.append, dict.update) do not exist here, as in the immutable
 * sandbox Hugging Face renders with.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja.h"
#include "unicode.h"

bool		jx_strip(jx_ctx *c, jv s, const jv *chars, int which, jv *out);
bool		jx_replace(jx_ctx *c, jv s, jv old, jv new, int64_t count, jv *out);

static const char *const str_methods[] = {
	"upper", "lower", "capitalize", "title", "strip", "lstrip", "rstrip", "split", "rsplit",
	"startswith", "endswith", "replace", "find", "rfind", "count", "join", "format", "center",
	"isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower", "splitlines",
	"removeprefix", "removesuffix", "index", NULL
};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const list_methods[] = {"index", "count", "copy", NULL};

/* Is name in the NULL-terminated list? */
static bool
in_list(const char *const *list, const char *name)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(list[i], name))
			return true;
	return false;
}

/* Does v's type have a method of this name? */
bool
jx_has_method(jv v, const char *name)
{
	switch (v.kind)
	{
		case JV_STR:
			return in_list(str_methods, name);
		case JV_DICT:
			return in_list(dict_methods, name);
		case JV_LIST:
			return in_list(list_methods, name);
		default:
			return false;
	}
}

/* Map every code point of s through f (case conversion); title/capitalize modes. */
static bool
map_case(jx_ctx *c, jv s, int mode, jv *out)
{
	/* mode 0 upper, 1 lower, 2 capitalize, 3 str.title */
	char	   *buf = jx_alloc(&c->ar, s.u.s.n * 2 + 4);
	size_t		off = 0,
				o = 0,
				i = 0;
	bool		prev_cased = false;

	if (buf == NULL)
		return jx_nomem(c);
	while (off < s.u.s.n)
	{
		uint32_t	cp = lg_utf8_decode(s.u.s.p, s.u.s.n, &off),
					r;
		bool		cased = jx_tolower(cp) != jx_toupper(cp);

		switch (mode)
		{
			case 0:
				r = jx_toupper(cp);
				break;
			case 1:
				r = jx_tolower(cp);
				break;
			case 2:
				r = i == 0 ? jx_toupper(cp) : jx_tolower(cp);
				break;
			default:
				r = cased ? (prev_cased ? jx_tolower(cp) : jx_toupper(cp)) : cp;
				prev_cased = cased;
				break;
		}
		o += lg_utf8_encode(r, buf + o);
		i++;
	}
	*out = jv_str(buf, o);
	return true;
}

/* The string argument i (or an error naming the method). */
static bool
str_arg(jx_ctx *c, const char *method, jv *args, size_t nargs, size_t i, jv *out)
{
	if (i >= nargs || args[i].kind != JV_STR)
		return jx_fail(c, LG_ERR_FORMAT, "str.%s: argument %zu must be a string", method, i + 1);
	*out = args[i];
	return true;
}

/* str.split / rsplit. */
static bool
str_split(jx_ctx *c, jv s, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw,
		  bool right, jv *out)
{
	jv			sep = jv_none(),
				maxv = jv_int(-1);
	int64_t		maxsplit;
	jv		   *parts;
	size_t		np = 0;
	const char *p = s.u.s.p;
	size_t		n = s.u.s.n;

	if (nargs > 0)
		sep = args[0];
	if (nargs > 1)
		maxv = args[1];
	for (size_t k = 0; k < nkw; k++)
	{
		if (!strcmp(kwn[k], "sep"))
			sep = kwv[k];
		else if (!strcmp(kwn[k], "maxsplit"))
			maxv = kwv[k];
	}
	maxsplit = maxv.kind == JV_INT ? maxv.u.i : -1;
	if (sep.kind != JV_NONE && sep.kind != JV_STR)
		return jx_fail(c, LG_ERR_FORMAT, "must be str or None, not %s", jv_type_name(sep));
	if (sep.kind == JV_STR && sep.u.s.n == 0)
		return jx_fail(c, LG_ERR_FORMAT, "empty separator");
	if (!jx_step(c, n / 64))
		return false;
	parts = jx_alloc(&c->ar, (n + 2) * sizeof(jv));
	if (parts == NULL)
		return jx_nomem(c);
	if (sep.kind == JV_STR)
	{
		if (!right)
		{
			size_t		i = 0;

			while (maxsplit < 0 || (int64_t) np < maxsplit)
			{
				const char *hit = memmem(p + i, n - i, sep.u.s.p, sep.u.s.n);

				if (hit == NULL)
					break;
				parts[np++] = jv_str(p + i, (size_t) (hit - (p + i)));
				i = (size_t) (hit - p) + sep.u.s.n;
			}
			parts[np++] = jv_str(p + i, n - i);
		}
		else
		{
			size_t		end = n;
			jv		   *rev = jx_alloc(&c->ar, (n + 2) * sizeof(jv));

			if (rev == NULL)
				return jx_nomem(c);
			while ((maxsplit < 0 || (int64_t) np < maxsplit) && end >= sep.u.s.n)
			{
				size_t		k = end - sep.u.s.n;
				bool		found = false;

				for (;; k--)
				{
					if (memcmp(p + k, sep.u.s.p, sep.u.s.n) == 0)
					{
						found = true;
						break;
					}
					if (k == 0)
						break;
				}
				if (!found)
					break;
				rev[np++] = jv_str(p + k + sep.u.s.n, end - k - sep.u.s.n);
				end = k;
			}
			rev[np++] = jv_str(p, end);
			for (size_t i = 0; i < np; i++)
				parts[i] = rev[np - 1 - i];
		}
	}
	else
	{
		/* runs of whitespace; no empty strings */
		size_t		i = 0;

		if (right)
		{
			/* rsplit(None, k): split from the right */
			size_t		end = n;
			jv		   *rev = jx_alloc(&c->ar, (n + 2) * sizeof(jv));

			if (rev == NULL)
				return jx_nomem(c);
			for (;;)
			{
				size_t		b,
							o;

				while (end > 0)
				{
					b = end - 1;
					while (b > 0 && ((unsigned char) p[b] & 0xC0) == 0x80)
						b--;
					o = b;
					if (!jx_is_space(lg_utf8_decode(p, n, &o)))
						break;
					end = b;
				}
				if (end == 0)
					break;
				if (maxsplit >= 0 && (int64_t) np == maxsplit)
				{
					rev[np++] = jv_str(p, end);
					break;
				}
				{
					size_t		start = end;

					while (start > 0)
					{
						b = start - 1;
						while (b > 0 && ((unsigned char) p[b] & 0xC0) == 0x80)
							b--;
						o = b;
						if (jx_is_space(lg_utf8_decode(p, n, &o)))
							break;
						start = b;
					}
					rev[np++] = jv_str(p + start, end - start);
					end = start;
				}
			}
			for (size_t k = 0; k < np; k++)
				parts[k] = rev[np - 1 - k];
		}
		else
		{
			for (;;)
			{
				size_t		o = i,
							start;

				while (i < n)
				{
					o = i;
					if (!jx_is_space(lg_utf8_decode(p, n, &o)))
						break;
					i = o;
				}
				if (i >= n)
					break;
				if (maxsplit >= 0 && (int64_t) np == maxsplit)
				{
					size_t		e = n;

					parts[np++] = jv_str(p + i, e - i);
					/* Python keeps trailing whitespace of the remainder but strips none here */
					break;
				}
				start = i;
				while (i < n)
				{
					o = i;
					if (jx_is_space(lg_utf8_decode(p, n, &o)))
						break;
					i = o;
				}
				parts[np++] = jv_str(p + start, i - start);
			}
		}
	}
	if (!jv_new_list(c, np, false, out))
		return false;
	memcpy(out->u.l->items, parts, np * sizeof(jv));
	return true;
}

/* str.startswith / endswith with a string or a tuple of strings. */
static bool
str_affix(jx_ctx *c, jv s, jv *args, size_t nargs, bool end, jv *out)
{
	jv			one[1];
	jv		   *cands;
	size_t		nc;

	if (nargs < 1)
		return jx_fail(c, LG_ERR_FORMAT, "%s takes at least 1 argument", end ? "endswith" : "startswith");
	if (args[0].kind == JV_STR)
	{
		one[0] = args[0];
		cands = one;
		nc = 1;
	}
	else if (args[0].kind == JV_LIST && args[0].u.l->tuple)
	{
		cands = args[0].u.l->items;
		nc = args[0].u.l->n;
	}
	else
		return jx_fail(c, LG_ERR_FORMAT, "%s first arg must be str or a tuple of str, not %s",
					   end ? "endswith" : "startswith", jv_type_name(args[0]));
	*out = jv_bool(false);
	for (size_t i = 0; i < nc; i++)
	{
		jv			x = cands[i];

		if (x.kind != JV_STR)
			return jx_fail(c, LG_ERR_FORMAT, "tuple for %s must only contain str", end ? "endswith" : "startswith");
		if (x.u.s.n <= s.u.s.n &&
			memcmp(end ? s.u.s.p + s.u.s.n - x.u.s.n : s.u.s.p, x.u.s.p, x.u.s.n) == 0)
			*out = jv_bool(true);
	}
	return true;
}

/* Code point index of byte offset off. */
static int64_t
cp_index(jv s, size_t off)
{
	return (int64_t) jx_utf8_count(s.u.s.p, off);
}

/* str.format with {}, {0}, {name} and {{ }} (no format specs). */
static bool
str_format(jx_ctx *c, jv s, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, jv *out)
{
	lg_buf		b;
	bool		ok = true;
	size_t		auto_i = 0;
	const char *p = s.u.s.p;
	size_t		n = s.u.s.n;

	lg_buf_init(&b);
	for (size_t i = 0; ok && i < n; i++)
	{
		if (p[i] == '{' && i + 1 < n && p[i + 1] == '{')
		{
			ok = lg_buf_append(&b, "{", 1);
			i++;
		}
		else if (p[i] == '}' && i + 1 < n && p[i + 1] == '}')
		{
			ok = lg_buf_append(&b, "}", 1);
			i++;
		}
		else if (p[i] == '{')
		{
			const char *close = memchr(p + i, '}', n - i);
			size_t		fl;
			jv			v = jv_undef(NULL);
			bool		repr = false;

			if (close == NULL)
			{
				ok = jx_fail(c, LG_ERR_FORMAT, "Single '{' encountered in format string");
				break;
			}
			fl = (size_t) (close - (p + i + 1));
			if (fl >= 2 && p[i + fl - 1] == '!' && (p[i + fl] == 'r' || p[i + fl] == 's'))
			{
				repr = p[i + fl] == 'r';
				fl -= 2;
			}
			if (memchr(p + i + 1, ':', fl) || memchr(p + i + 1, '.', fl) || memchr(p + i + 1, '[', fl))
			{
				ok = jx_fail(c, LG_ERR_UNSUPPORTED, "str.format: format specs and field lookups are not supported");
				break;
			}
			if (fl == 0)
			{
				if (auto_i >= nargs)
				{
					ok = jx_fail(c, LG_ERR_FORMAT, "Replacement index %zu out of range for positional args tuple", auto_i);
					break;
				}
				v = args[auto_i++];
			}
			else if (p[i + 1] >= '0' && p[i + 1] <= '9')
			{
				size_t		k = (size_t) strtoul(p + i + 1, NULL, 10);

				if (k >= nargs)
				{
					ok = jx_fail(c, LG_ERR_FORMAT, "Replacement index %zu out of range for positional args tuple", k);
					break;
				}
				v = args[k];
			}
			else
			{
				bool		found = false;

				for (size_t k = 0; k < nkw && !found; k++)
					if (strlen(kwn[k]) == fl && !memcmp(kwn[k], p + i + 1, fl))
					{
						v = kwv[k];
						found = true;
					}
				if (!found)
				{
					ok = jx_fail(c, LG_ERR_FORMAT, "str.format: no argument named '%.*s'", (int) fl, p + i + 1);
					break;
				}
			}
			ok = repr ? jx_append_repr(c, &b, v) : jx_append_str(c, &b, v);
			i = (size_t) (close - p);
		}
		else if (p[i] == '}')
		{
			ok = jx_fail(c, LG_ERR_FORMAT, "Single '}' encountered in format string");
			break;
		}
		else
			ok = lg_buf_append(&b, p + i, 1);
	}
	ok = ok && jv_strdup(c, b.data ? b.data : "", b.len, out);
	lg_buf_free(&b);
	return ok;
}

/* Character class predicates of str.isdigit/isalpha/isalnum/isspace. */
static bool
str_all(jv s, int what)
{
	size_t		off = 0;

	if (s.u.s.n == 0)
		return false;
	while (off < s.u.s.n)
	{
		uint32_t	cp = lg_utf8_decode(s.u.s.p, s.u.s.n, &off);
		uint16_t	f = lg_unicode_flags(cp);
		bool		ok;

		switch (what)
		{
			case 0:
				ok = (f & LG_UFLAG_NUMBER) != 0;
				break;
			case 1:
				ok = (f & LG_UFLAG_LETTER) != 0;
				break;
			case 2:
				ok = (f & (LG_UFLAG_LETTER | LG_UFLAG_NUMBER)) != 0;
				break;
			default:
				ok = jx_is_space(cp);
		}
		if (!ok)
			return false;
	}
	return true;
}

/* The methods of str. */
static bool
call_str_method(jx_ctx *c, jv s, const char *name, jv *args, size_t nargs, const char **kwn,
				jv *kwv, size_t nkw, jv *out)
{
	jv			x,
				y;

	if (!strcmp(name, "upper"))
		return map_case(c, s, 0, out);
	if (!strcmp(name, "lower"))
		return map_case(c, s, 1, out);
	if (!strcmp(name, "capitalize"))
		return map_case(c, s, 2, out);
	if (!strcmp(name, "title"))
		return map_case(c, s, 3, out);
	if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip"))
	{
		int			which = name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3;

		if (nargs > 0 && args[0].kind != JV_NONE && args[0].kind != JV_STR)
			return jx_fail(c, LG_ERR_FORMAT, "%s arg must be None or str", name);
		return jx_strip(c, s, nargs > 0 && args[0].kind == JV_STR ? &args[0] : NULL, which, out);
	}
	if (!strcmp(name, "split") || !strcmp(name, "rsplit"))
		return str_split(c, s, args, nargs, kwn, kwv, nkw, name[0] == 'r', out);
	if (!strcmp(name, "startswith") || !strcmp(name, "endswith"))
		return str_affix(c, s, args, nargs, name[0] == 'e', out);
	if (!strcmp(name, "replace"))
	{
		if (!str_arg(c, name, args, nargs, 0, &x) || !str_arg(c, name, args, nargs, 1, &y))
			return false;
		return jx_replace(c, s, x, y, nargs > 2 && args[2].kind == JV_INT ? args[2].u.i : -1, out);
	}
	if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index"))
	{
		const char *hit = NULL;

		if (!str_arg(c, name, args, nargs, 0, &x))
			return false;
		if (name[0] != 'r')
			hit = x.u.s.n == 0 ? s.u.s.p : memmem(s.u.s.p, s.u.s.n, x.u.s.p, x.u.s.n);
		else if (x.u.s.n <= s.u.s.n)
			for (size_t k = s.u.s.n - x.u.s.n + 1; k-- > 0 && hit == NULL;)
				if (memcmp(s.u.s.p + k, x.u.s.p, x.u.s.n) == 0)
					hit = s.u.s.p + k;
		if (hit == NULL && name[0] == 'i')
			return jx_fail(c, LG_ERR_FORMAT, "substring not found");
		*out = jv_int(hit ? cp_index(s, (size_t) (hit - s.u.s.p)) : -1);
		return true;
	}
	if (!strcmp(name, "count"))
	{
		int64_t		k = 0;

		if (!str_arg(c, name, args, nargs, 0, &x))
			return false;
		if (x.u.s.n == 0)
			k = (int64_t) jx_utf8_count(s.u.s.p, s.u.s.n) + 1;
		else
			for (const char *p = s.u.s.p; (p = memmem(p, s.u.s.n - (size_t) (p - s.u.s.p), x.u.s.p, x.u.s.n)) != NULL; p += x.u.s.n)
				k++;
		*out = jv_int(k);
		return true;
	}
	if (!strcmp(name, "join"))
	{
		jx_list    *items;
		lg_buf		b;
		bool		ok = true;

		if (nargs < 1 || !jv_iterate(c, args[0], &items))
			return nargs < 1 ? jx_fail(c, LG_ERR_FORMAT, "join takes exactly one argument") : false;
		lg_buf_init(&b);
		for (size_t i = 0; ok && i < items->n; i++)
		{
			if (items->items[i].kind != JV_STR)
			{
				ok = jx_fail(c, LG_ERR_FORMAT, "sequence item %zu: expected str instance, %s found", i,
							 jv_type_name(items->items[i]));
				break;
			}
			if (i)
				ok &= lg_buf_append(&b, s.u.s.p, s.u.s.n);
			ok &= lg_buf_append(&b, items->items[i].u.s.p, items->items[i].u.s.n);
			if (b.len > LG_CHAT_MAX_OUTPUT)
				ok = jx_fail(c, LG_ERR_RANGE, "joined string too long");
		}
		ok = ok && jv_strdup(c, b.data ? b.data : "", b.len, out);
		lg_buf_free(&b);
		return ok;
	}
	if (!strcmp(name, "format"))
		return str_format(c, s, args, nargs, kwn, kwv, nkw, out);
	if (!strcmp(name, "center"))
	{
		int64_t		w = nargs > 0 && args[0].kind == JV_INT ? args[0].u.i : 0;
		int64_t		len = (int64_t) jx_utf8_count(s.u.s.p, s.u.s.n);
		int64_t		pad,
					left;
		char	   *buf;

		if (w <= len)
		{
			*out = s;
			return true;
		}
		if (w > 1 << 20)
			return jx_fail(c, LG_ERR_RANGE, "center width too large");
		pad = w - len;
		left = pad / 2 + (pad & w & 1);
		if ((buf = jx_alloc(&c->ar, s.u.s.n + (size_t) pad + 1)) == NULL)
			return jx_nomem(c);
		memset(buf, ' ', (size_t) left);
		memcpy(buf + left, s.u.s.p, s.u.s.n);
		memset(buf + left + s.u.s.n, ' ', (size_t) (pad - left));
		*out = jv_str(buf, s.u.s.n + (size_t) pad);
		return true;
	}
	if (!strcmp(name, "isdigit") || !strcmp(name, "isalpha") || !strcmp(name, "isalnum") ||
		!strcmp(name, "isspace"))
	{
		*out = jv_bool(str_all(s, !strcmp(name, "isdigit") ? 0 : !strcmp(name, "isalpha") ? 1 :
							   !strcmp(name, "isalnum") ? 2 : 3));
		return true;
	}
	if (!strcmp(name, "isupper") || !strcmp(name, "islower"))
	{
		bool		r;

		if (!jx_apply_test(c, name + 2, s, NULL, 0, &r))
			return false;
		*out = jv_bool(r);
		return true;
	}
	if (!strcmp(name, "splitlines"))
	{
		jv			parts;
		size_t		np = 0,
					i = 0;

		if (!jv_new_list(c, s.u.s.n + 1, false, &parts))
			return false;
		while (i < s.u.s.n)
		{
			size_t		start = i,
						o = i;
			uint32_t	cp = 0;

			while (i < s.u.s.n)
			{
				o = i;
				cp = lg_utf8_decode(s.u.s.p, s.u.s.n, &o);
				if (cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
					cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029)
					break;
				i = o;
			}
			parts.u.l->items[np++] = jv_str(s.u.s.p + start, i - start);
			if (i < s.u.s.n)
			{
				i = o;
				if (cp == '\r' && i < s.u.s.n && s.u.s.p[i] == '\n')
					i++;
			}
		}
		parts.u.l->n = np;
		*out = parts;
		return true;
	}
	if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix"))
	{
		bool		pre = name[6] == 'p';

		if (!str_arg(c, name, args, nargs, 0, &x))
			return false;
		*out = s;
		if (x.u.s.n <= s.u.s.n && memcmp(pre ? s.u.s.p : s.u.s.p + s.u.s.n - x.u.s.n, x.u.s.p, x.u.s.n) == 0)
			*out = jv_str(pre ? s.u.s.p + x.u.s.n : s.u.s.p, s.u.s.n - x.u.s.n);
		return true;
	}
	return jx_fail(c, LG_ERR_FORMAT, "'str' object has no attribute '%s'", name);
}

/* Call self.name(args). */
bool
jx_call_method(jx_ctx *c, jv self, const char *name, jv *args, size_t nargs, const char **kwn,
			   jv *kwv, size_t nkw, jv *out)
{
	if (!jx_step(c, 1))
		return false;
	if (self.kind == JV_STR)
		return call_str_method(c, self, name, args, nargs, kwn, kwv, nkw, out);
	if (self.kind == JV_DICT)
	{
		jx_dict    *d = self.u.d;

		if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values"))
		{
			if (!jv_new_list(c, d->n, false, out))
				return false;
			for (size_t i = 0; i < d->n; i++)
			{
				if (name[0] == 'k')
					out->u.l->items[i] = d->keys[i];
				else if (name[0] == 'v')
					out->u.l->items[i] = d->vals[i];
				else
				{
					jv			pair;

					if (!jv_new_list(c, 2, true, &pair))
						return false;
					pair.u.l->items[0] = d->keys[i];
					pair.u.l->items[1] = d->vals[i];
					out->u.l->items[i] = pair;
				}
			}
			return true;
		}
		if (!strcmp(name, "get"))
		{
			jv		   *v;

			if (nargs < 1)
				return jx_fail(c, LG_ERR_FORMAT, "get expected at least 1 argument, got 0");
			v = jx_dict_get(d, args[0]);
			*out = v ? *v : nargs > 1 ? args[1] : jv_none();
			return true;
		}
		if (!strcmp(name, "copy"))
		{
			if (!jv_new_dict(c, JV_DICT, d->n, out))
				return false;
			for (size_t i = 0; i < d->n; i++)
				if (!jx_dict_set(c, out->u.d, d->keys[i], d->vals[i]))
					return false;
			return true;
		}
	}
	if (self.kind == JV_LIST)
	{
		jx_list    *l = self.u.l;

		if (!strcmp(name, "index") || !strcmp(name, "count"))
		{
			int64_t		k = 0;

			if (nargs < 1)
				return jx_fail(c, LG_ERR_FORMAT, "%s takes exactly one argument", name);
			for (size_t i = 0; i < l->n; i++)
				if (jv_equal(c, l->items[i], args[0]))
				{
					if (name[0] == 'i')
					{
						*out = jv_int((int64_t) i);
						return true;
					}
					k++;
				}
			if (name[0] == 'i')
				return jx_fail(c, LG_ERR_FORMAT, "value is not in list");
			*out = jv_int(k);
			return true;
		}
		if (!strcmp(name, "copy"))
		{
			if (!jv_new_list(c, l->n, false, out))
				return false;
			if (l->n)
				memcpy(out->u.l->items, l->items, l->n * sizeof(jv));
			return true;
		}
	}
	if (self.kind == JV_LOOP && !strcmp(name, "cycle"))
	{
		if (nargs == 0)
			return jx_fail(c, LG_ERR_FORMAT, "no items for cycling given");
		*out = args[self.u.loop->index0 % nargs];
		return true;
	}
	return jx_fail(c, LG_ERR_FORMAT, "'%s' object has no method '%s'", jv_type_name(self), name);
}

/* ---- globals ---- */

/* range() as the sandbox allows it (at most 100000 items). */
static bool
g_range(jx_ctx *c, jv *args, size_t nargs, jv *out)
{
	int64_t		start = 0,
				stop,
				step = 1,
				n;

	for (size_t i = 0; i < nargs; i++)
		if (args[i].kind != JV_INT && args[i].kind != JV_BOOL)
			return jx_fail(c, LG_ERR_FORMAT, "'%s' object cannot be interpreted as an integer",
						   jv_type_name(args[i]));
#define IV(v) ((v).kind == JV_INT ? (v).u.i : (v).u.b)
	if (nargs == 1)
		stop = IV(args[0]);
	else if (nargs == 2 || nargs == 3)
	{
		start = IV(args[0]);
		stop = IV(args[1]);
		if (nargs == 3)
			step = IV(args[2]);
	}
	else
		return jx_fail(c, LG_ERR_FORMAT, "range expected 1 to 3 arguments, got %zu", nargs);
#undef IV
	if (step == 0)
		return jx_fail(c, LG_ERR_FORMAT, "range() arg 3 must not be zero");
	if (step > 0)
		n = start < stop ? (int64_t) (((__int128) stop - start + step - 1) / step) : 0;
	else
		n = start > stop ? (int64_t) (((__int128) start - stop - step - 1) / -step) : 0;
	if (n > 100000)
		return jx_fail(c, LG_ERR_RANGE, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
	if (!jv_new_list(c, (size_t) n, false, out))
		return false;
	for (int64_t i = 0; i < n; i++)
		out->u.l->items[i] = jv_int(start + i * step);
	return true;
}

/* namespace(...) / dict(...): from a mapping argument and keywords. */
static bool
g_mapping(jx_ctx *c, jx_vkind kind, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, jv *out)
{
	if (!jv_new_dict(c, kind, nargs + nkw, out))
		return false;
	if (nargs > 1)
		return jx_fail(c, LG_ERR_FORMAT, "%s expected at most 1 argument, got %zu",
					   kind == JV_NS ? "namespace" : "dict", nargs);
	if (nargs == 1)
	{
		if (args[0].kind == JV_DICT)
		{
			for (size_t i = 0; i < args[0].u.d->n; i++)
				if (!jx_dict_set(c, out->u.d, args[0].u.d->keys[i], args[0].u.d->vals[i]))
					return false;
		}
		else
		{
			jx_list    *items;

			if (!jv_iterate(c, args[0], &items))
				return false;
			for (size_t i = 0; i < items->n; i++)
			{
				jv			p = items->items[i];

				if (p.kind != JV_LIST || p.u.l->n != 2)
					return jx_fail(c, LG_ERR_FORMAT, "dictionary update sequence element #%zu has the wrong length", i);
				if (!jx_dict_set(c, out->u.d, p.u.l->items[0], p.u.l->items[1]))
					return false;
			}
		}
	}
	for (size_t i = 0; i < nkw; i++)
		if (!jx_dict_set(c, out->u.d, jv_str(kwn[i], strlen(kwn[i])), kwv[i]))
			return false;
	return true;
}

/* Call a global function. */
bool
jx_call_global(jx_ctx *c, int fn, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, jv *out)
{
	if (!jx_step(c, 1))
		return false;
	switch (fn)
	{
		case JG_RANGE:
			return g_range(c, args, nargs, out);
		case JG_NAMESPACE:
			return g_mapping(c, JV_NS, args, nargs, kwn, kwv, nkw, out);
		case JG_DICT:
			return g_mapping(c, JV_DICT, args, nargs, kwn, kwv, nkw, out);
		case JG_RAISE_EXCEPTION:
			{
				lg_buf		b;

				lg_buf_init(&b);
				if (nargs > 0 && !jx_append_str(c, &b, args[0]))
				{
					lg_buf_free(&b);
					return false;
				}
				lg_error_set(c->err, LG_ERR_ARG, "%s", b.data ? b.data : "");
				lg_buf_free(&b);
				return false;
			}
		case JG_STRFTIME_NOW:
			{
				char		buf[512];
				char		fmt[256];
				time_t		t = c->now_unix ? (time_t) c->now_unix : time(NULL);
				struct tm	tm;
				size_t		n;

				if (nargs < 1 || args[0].kind != JV_STR)
					return jx_fail(c, LG_ERR_FORMAT, "strftime_now needs a format string");
				if (args[0].u.s.n >= sizeof(fmt))
					return jx_fail(c, LG_ERR_RANGE, "strftime_now format too long");
				memcpy(fmt, args[0].u.s.p, args[0].u.s.n);
				fmt[args[0].u.s.n] = '\0';
				localtime_r(&t, &tm);
				n = strftime(buf, sizeof(buf), fmt, &tm);
				return jv_strdup(c, buf, n, out);
			}
	}
	return jx_fail(c, LG_ERR_INTERNAL, "unknown global");
}

/* ---- printf-style formatting ---- */

/* Python's str % args for the conversions templates use (s r d i f F e E g G x X o c %). */
bool
jx_percent_format(jx_ctx *c, jv fmt, jv args, jv *out)
{
	const char *p = fmt.u.s.p;
	size_t		n = fmt.u.s.n,
				ai = 0;
	jv		   *av;
	size_t		an;
	jv			single[1];
	lg_buf		b;
	bool		ok = true;
	bool		mapping = args.kind == JV_DICT;

	if (args.kind == JV_LIST && args.u.l->tuple)
	{
		av = args.u.l->items;
		an = args.u.l->n;
	}
	else
	{
		single[0] = args;
		av = single;
		an = 1;
	}
	lg_buf_init(&b);
	for (size_t i = 0; ok && i < n; i++)
	{
		char		spec[64];
		size_t		sl = 0;
		char		conv;
		jv			v;
		char		tmp[512];

		if (p[i] != '%')
		{
			ok = lg_buf_append(&b, p + i, 1);
			continue;
		}
		if (++i >= n)
		{
			ok = jx_fail(c, LG_ERR_FORMAT, "incomplete format");
			break;
		}
		if (p[i] == '%')
		{
			ok = lg_buf_append(&b, "%", 1);
			continue;
		}
		v = jv_undef(NULL);
		if (p[i] == '(')
		{
			const char *close = memchr(p + i, ')', n - i);
			jv		   *mv;

			if (close == NULL || !mapping)
			{
				ok = jx_fail(c, LG_ERR_FORMAT, close ? "format requires a mapping" : "incomplete format key");
				break;
			}
			mv = jx_dict_get(args.u.d, jv_str(p + i + 1, (size_t) (close - p - i - 1)));
			if (mv == NULL)
			{
				ok = jx_fail(c, LG_ERR_FORMAT, "format key '%.*s' not found", (int) (close - p - i - 1), p + i + 1);
				break;
			}
			v = *mv;
			i = (size_t) (close - p) + 1;
		}
		spec[sl++] = '%';
		while (i < n && strchr("-+ #0", p[i]) && sl < 20)
			spec[sl++] = p[i++];
		while (i < n && p[i] >= '0' && p[i] <= '9' && sl < 30)
			spec[sl++] = p[i++];
		if (i < n && p[i] == '.')
		{
			spec[sl++] = p[i++];
			while (i < n && p[i] >= '0' && p[i] <= '9' && sl < 40)
				spec[sl++] = p[i++];
		}
		while (i < n && (p[i] == 'l' || p[i] == 'h' || p[i] == 'L'))
			i++;
		if (i >= n)
		{
			ok = jx_fail(c, LG_ERR_FORMAT, "incomplete format");
			break;
		}
		conv = p[i];
		if (v.kind == JV_UNDEF && !mapping)
		{
			if (ai >= an)
			{
				ok = jx_fail(c, LG_ERR_FORMAT, "not enough arguments for format string");
				break;
			}
			v = av[ai++];
		}
		else if (v.kind == JV_UNDEF && mapping)
			v = args;
		switch (conv)
		{
			case 's':
			case 'r':
				{
					lg_buf		sb;
					int			w;

					lg_buf_init(&sb);
					ok = conv == 's' ? jx_append_str(c, &sb, v) : jx_append_repr(c, &sb, v);
					if (ok && sl > 1)
					{
						/* width/precision on code points are rare: apply on bytes for ASCII */
						spec[sl++] = 's';
						spec[sl] = '\0';
						w = snprintf(tmp, sizeof(tmp), spec, sb.data ? sb.data : "");
						ok = lg_buf_append(&b, tmp, w < (int) sizeof(tmp) ? (size_t) w : sizeof(tmp) - 1);
					}
					else if (ok)
						ok = lg_buf_append(&b, sb.data ? sb.data : "", sb.len);
					lg_buf_free(&sb);
					break;
				}
			case 'd':
			case 'i':
			case 'x':
			case 'X':
			case 'o':
			case 'c':
				{
					long long	iv;

					if (v.kind == JV_INT || v.kind == JV_BOOL)
						iv = v.kind == JV_INT ? v.u.i : v.u.b;
					else if (v.kind == JV_FLOAT && (conv == 'd' || conv == 'i') && isfinite(v.u.f))
						iv = (long long) v.u.f;
					else
					{
						ok = jx_fail(c, LG_ERR_FORMAT, "%%%c format: a real number is required, not %s", conv,
									 jv_type_name(v));
						break;
					}
					if (conv == 'c')
					{
						char		u8[4];

						if (iv < 0 || iv > 0x10FFFF)
						{
							ok = jx_fail(c, LG_ERR_FORMAT, "%%c arg not in range(0x110000)");
							break;
						}
						ok = lg_buf_append(&b, u8, lg_utf8_encode((uint32_t) iv, u8));
						break;
					}
					spec[sl++] = 'l';
					spec[sl++] = 'l';
					spec[sl++] = conv == 'i' ? 'd' : conv;
					spec[sl] = '\0';
					snprintf(tmp, sizeof(tmp), spec, iv);
					ok = lg_buf_append(&b, tmp, strlen(tmp));
					break;
				}
			case 'f':
			case 'F':
			case 'e':
			case 'E':
			case 'g':
			case 'G':
				if (!jv_is_num(v))
				{
					ok = jx_fail(c, LG_ERR_FORMAT, "must be real number, not %s", jv_type_name(v));
					break;
				}
				spec[sl++] = conv;
				spec[sl] = '\0';
				snprintf(tmp, sizeof(tmp), spec, jv_num(v));
				ok = lg_buf_append(&b, tmp, strlen(tmp));
				break;
			default:
				ok = jx_fail(c, LG_ERR_FORMAT, "unsupported format character '%c'", conv);
		}
	}
	if (ok && !mapping && ai < an && !(an == 1 && args.kind != JV_LIST && ai == 0 && 0))
	{
		if (!(args.kind == JV_LIST && args.u.l->tuple) && ai == 0 && an == 1)
			ok = jx_fail(c, LG_ERR_FORMAT, "not all arguments converted during string formatting");
		else if (ai < an)
			ok = jx_fail(c, LG_ERR_FORMAT, "not all arguments converted during string formatting");
	}
	ok = ok && jv_strdup(c, b.data ? b.data : "", b.len, out);
	lg_buf_free(&b);
	return ok;
}
