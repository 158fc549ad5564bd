/*
 * jinja_tests.c — jinja2's tests (`x is defined`, `x is string`, ...) with
 * Python's type rules: a bool is a number but not an integer, a string and
 * an undefined value are iterable, a dict is a sequence (it has len and
 * __getitem__), a namespace is neither.
 */
#include <math.h>
#include <string.h>

#include "jinja.h"
#include "unicode.h"

/* Is every cased character of s lower (or upper) case, with at least one? */
static bool
str_case_is(jv s, bool upper)
{
	size_t		off = 0;
	bool		cased = false;

	while (off < s.u.s.n)
	{
		uint32_t	cp = lg_utf8_decode(s.u.s.p, s.u.s.n, &off);
		uint32_t	lo = jx_tolower(cp),
					up = jx_toupper(cp);

		if (lo == up)
			continue;			/* uncased */
		if (upper ? cp != up : cp != lo)
			return false;
		cased = true;
	}
	return cased;
}

/* The one argument a test needs. */
static bool
need_arg(jx_ctx *c, const char *name, size_t nargs)
{
	if (nargs < 1)
		return jx_fail(c, LG_ERR_FORMAT, "test '%s' needs an argument", name);
	return true;
}

/* Apply test name to in. */
bool
jx_apply_test(jx_ctx *c, const char *name, jv in, jv *args, size_t nargs, bool *out)
{
	int			r;

	*out = false;
	if (!strcmp(name, "defined"))
		*out = in.kind != JV_UNDEF;
	else if (!strcmp(name, "undefined"))
		*out = in.kind == JV_UNDEF;
	else if (!strcmp(name, "none"))
		*out = in.kind == JV_NONE;
	else if (!strcmp(name, "string"))
		*out = in.kind == JV_STR;
	else if (!strcmp(name, "number"))
		*out = jv_is_num(in);
	else if (!strcmp(name, "integer"))
		*out = in.kind == JV_INT;
	else if (!strcmp(name, "float"))
		*out = in.kind == JV_FLOAT;
	else if (!strcmp(name, "boolean"))
		*out = in.kind == JV_BOOL;
	else if (!strcmp(name, "true"))
		*out = in.kind == JV_BOOL && in.u.b;
	else if (!strcmp(name, "false"))
		*out = in.kind == JV_BOOL && !in.u.b;
	else if (!strcmp(name, "mapping"))
		*out = in.kind == JV_DICT;
	else if (!strcmp(name, "iterable"))
		*out = in.kind == JV_UNDEF || in.kind == JV_STR || in.kind == JV_LIST || in.kind == JV_DICT ||
			in.kind == JV_ITER || in.kind == JV_LOOP;
	else if (!strcmp(name, "sequence"))
		*out = in.kind == JV_UNDEF || in.kind == JV_STR || in.kind == JV_LIST || in.kind == JV_DICT;
	else if (!strcmp(name, "callable"))
		*out = in.kind == JV_MACRO || in.kind == JV_FUNC || in.kind == JV_METHOD;
	else if (!strcmp(name, "lower") || !strcmp(name, "upper"))
		*out = in.kind == JV_STR && str_case_is(in, name[0] == 'u');
	else if (!strcmp(name, "escaped"))
		*out = in.kind == JV_STR && in.safe;
	else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby"))
	{
		jv			m;
		jv			d = !strcmp(name, "divisibleby") ? (nargs ? args[0] : jv_undef(NULL)) : jv_int(2);

		if (!strcmp(name, "divisibleby") && !need_arg(c, name, nargs))
			return false;
		if (!jv_is_num(in) || !jv_is_num(d))
			return jx_fail(c, LG_ERR_FORMAT, "test '%s' needs numbers", name);
		if (jv_num(d) == 0)
			return jx_fail(c, LG_ERR_FORMAT, "integer modulo by zero");
		if (in.kind != JV_FLOAT && d.kind != JV_FLOAT)
		{
			int64_t		x = in.kind == JV_INT ? in.u.i : in.u.b,
						y = d.kind == JV_INT ? d.u.i : d.u.b;

			m = jv_int(y == -1 ? 0 : x % y);
			*out = !strcmp(name, "odd") ? m.u.i != 0 : m.u.i == 0;
		}
		else
		{
			double		rem = fmod(jv_num(in), jv_num(d));

			*out = !strcmp(name, "odd") ? rem != 0 : rem == 0;
		}
	}
	else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "=="))
	{
		if (!need_arg(c, name, nargs))
			return false;
		*out = jv_equal(c, in, args[0]);
	}
	else if (!strcmp(name, "ne") || !strcmp(name, "!="))
	{
		if (!need_arg(c, name, nargs))
			return false;
		*out = !jv_equal(c, in, args[0]);
	}
	else if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<") ||
			 !strcmp(name, "le") || !strcmp(name, "<=") ||
			 !strcmp(name, "gt") || !strcmp(name, "greaterthan") || !strcmp(name, ">") ||
			 !strcmp(name, "ge") || !strcmp(name, ">="))
	{
		if (!need_arg(c, name, nargs) || !jv_compare(c, in, args[0], &r))
			return false;
		if (name[0] == 'l' || name[0] == '<')
			*out = (name[1] == 'e' || name[1] == '=') ? r <= 0 : r < 0;
		else
			*out = (name[1] == 'e' || name[1] == '=') ? r >= 0 : r > 0;
	}
	else if (!strcmp(name, "in"))
	{
		jx_list    *items;

		if (!need_arg(c, name, nargs))
			return false;
		if (args[0].kind == JV_STR)
		{
			if (in.kind != JV_STR)
				return jx_fail(c, LG_ERR_FORMAT, "'in <string>' requires string as left operand, not %s",
							   jv_type_name(in));
			*out = in.u.s.n == 0 || memmem(args[0].u.s.p, args[0].u.s.n, in.u.s.p, in.u.s.n) != NULL;
		}
		else if (args[0].kind == JV_DICT)
			*out = jx_dict_get(args[0].u.d, in) != NULL;
		else
		{
			if (!jv_iterate(c, args[0], &items))
				return false;
			for (size_t i = 0; i < items->n && !*out; i++)
				*out = jv_equal(c, items->items[i], in);
		}
	}
	else if (!strcmp(name, "sameas"))
	{
		if (!need_arg(c, name, nargs))
			return false;
		if (in.kind != args[0].kind)
			*out = false;
		else if (in.kind == JV_LIST || in.kind == JV_ITER)
			*out = in.u.l == args[0].u.l;
		else if (in.kind == JV_DICT || in.kind == JV_NS)
			*out = in.u.d == args[0].u.d;
		else
			*out = jv_equal(c, in, args[0]);
	}
	else if (!strcmp(name, "filter") || !strcmp(name, "test"))
	{
		char	   *n;

		if (!need_arg(c, name, nargs))
			return false;
		if (args[0].kind != JV_STR)
			*out = false;
		else if ((n = jx_strdup(&c->ar, args[0].u.s.p, args[0].u.s.n)) == NULL)
			return jx_nomem(c);
		else
			*out = name[0] == 'f' ? jx_filter_exists(n) : jx_test_exists(n);
	}
	else
		return jx_fail(c, LG_ERR_FORMAT, "no test named '%s'", name);
	return true;
}

static const char *const test_names[] = {
	"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even",
	"false", "filter", "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable",
	"le", "<=", "lower", "lt", "lessthan", "<", "mapping", "ne", "!=", "none", "number", "odd",
	"sameas", "sequence", "string", "test", "true", "undefined", "upper", NULL
};

/* Is there a test of this name? */
bool
jx_test_exists(const char *name)
{
	for (int i = 0; test_names[i]; i++)
		if (!strcmp(test_names[i], name))
			return true;
	return false;
}
