/*
 * json_schema.c — JSON Schema → GBNF: the walker, rule table, $ref
 * resolution and the anyOf/oneOf combinators.  Types are compiled in
 * json_schema_{object,string,number}.c, allOf in json_schema_merge.c.
 *
 * Each schema node becomes one rule, memoised by node pointer before its
 * body is built, so a $ref back to a node being compiled is just its name:
 * recursion costs nothing, and only a recursion that consumes no input
 * (left recursion) is refused.
 */
#include "grammar.h"
#include "json_schema_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JS_MAX_DEPTH 200

long
js_bound_kw(js_ctx *c, const lg_json_node *s, const char *kw, long dflt, const char *path)
{
	const lg_json_node *v = lg_json_get(s, kw);

	if (v == NULL)
		return dflt;
	/* floor, not a cast to long: 6.7e74 must not be converted out of range */
	if (v->kind != LG_JSON_NUMBER || v->number < 0 || v->number != floor(v->number))
		return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not a non-negative integer", kw, path), dflt;
	if (v->number > LG_GRAMMAR_MAX_REPEAT)
		return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported \"%s\" at %s: %.0f is above the largest bound the grammar engine enforces (%d)",
					   kw, path, v->number, LG_GRAMMAR_MAX_REPEAT), dflt;
	return (long) v->number;
}

/* Record the first error; returns false so callers can `return js_fail(...)`. */
bool
js_fail(js_ctx *c, lg_status st, const char *fmt, ...)
{
	va_list		ap;
	char		msg[LG_ERROR_MSG_LEN];

	if (c->st != LG_OK)
		return false;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->st = st;
	lg_error_set(c->err, st, "%s", msg);
	return false;
}

/* Out of memory: the one error every allocation site reports. */
bool
js_oom(js_ctx *c)
{
	return js_fail(c, LG_ERR_NOMEM, "out of memory compiling JSON schema");
}

/* parent + "/" + seg with JSON Pointer escapes (~0, ~1); NULL on OOM. */
char *
js_path(const char *parent, const char *seg)
{
	size_t		pl = strlen(parent), sl = strlen(seg), k = pl + 1;
	char	   *p = malloc(pl + 2 * sl + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, parent, pl);
	p[pl] = '/';
	for (size_t i = 0; i < sl; i++)
	{
		if (seg[i] == '~' || seg[i] == '/')
		{
			p[k++] = '~';
			p[k++] = seg[i] == '~' ? '0' : '1';
		}
		else
			p[k++] = seg[i];
	}
	p[k] = '\0';
	return p;
}

/* parent/seg/i, for array members such as anyOf/2. */
char *
js_path_i(const char *parent, const char *seg, size_t i)
{
	char	   *a = js_path(parent, seg);
	char		num[24];
	char	   *b;

	if (a == NULL)
		return NULL;
	snprintf(num, sizeof(num), "%zu", i);
	b = js_path(a, num);
	free(a);
	return b;
}

/* ---- rule table ---- */

/* A name not yet taken, from a hint: [A-Za-z0-9-] only, prefixed. */
static const char *
js_rule_reserve(js_ctx *c, const char *hint, bool node)
{
	char		base[64];
	char	   *name;
	size_t		k = 0;
	size_t		plen = strlen(c->prefix);
	int			suffix = 0;

	for (const char *h = hint; *h && k < 40; h++)
	{
		char		ch = *h;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
			base[k++] = ch;
		else if (k > 0 && base[k - 1] != '-')
			base[k++] = '-';
	}
	while (k > 0 && base[k - 1] == '-')
		k--;
	if (k == 0)
	{
		memcpy(base, "r", 1);
		k = 1;
	}
	base[k] = '\0';
	name = malloc(plen + k + 16);
	if (name == NULL)
		return js_oom(c), NULL;
	for (;;)
	{
		bool		taken = false;

		if (suffix == 0)
			snprintf(name, plen + k + 16, "%s%s", c->prefix, base);
		else
			snprintf(name, plen + k + 16, "%s%s-%d", c->prefix, base, suffix);
		for (size_t i = 0; i < c->n_rules && !taken; i++)
			taken = strcmp(c->rules[i].name, name) == 0;
		if (!taken)
			break;
		suffix++;
	}
	if (c->n_rules == c->cap_rules)
	{
		size_t		cap = c->cap_rules ? 2 * c->cap_rules : 64;
		js_rule    *r = realloc(c->rules, cap * sizeof(*r));

		if (r == NULL)
		{
			free(name);
			return js_oom(c), NULL;
		}
		c->rules = r;
		c->cap_rules = cap;
	}
	c->rules[c->n_rules].name = name;
	c->rules[c->n_rules].body = NULL;
	c->rules[c->n_rules].node = node;
	c->n_rules++;
	return name;
}

/* Give a reserved rule its body. */
static bool
js_rule_define(js_ctx *c, const char *name, const char *body)
{
	for (size_t i = c->n_rules; i-- > 0;)
	{
		if (c->rules[i].name == name)
		{
			c->rules[i].body = strdup(body);
			return c->rules[i].body != NULL || js_oom(c);
		}
	}
	return js_fail(c, LG_ERR_INTERNAL, "rule %s was not reserved", name);
}

/* A helper rule with this body: an existing one with the same body, or a new one. */
const char *
js_rule_add(js_ctx *c, const char *hint, const char *body)
{
	const char *name;

	if (c->st != LG_OK)
		return NULL;
	for (size_t i = 0; i < c->n_rules; i++)
		if (!c->rules[i].node && c->rules[i].body && strcmp(c->rules[i].body, body) == 0)
			return c->rules[i].name;
	name = js_rule_reserve(c, hint, false);
	if (name == NULL || !js_rule_define(c, name, body))
		return NULL;
	return name;
}

/* ---- primitives ---- */

static const char *const js_prim_names[] = {
	"ws", "value", "object", "array", "string", "char", "number", "integer",
	"boolean", "null", "char-l", "digits"
};

/* The (prefixed) name of primitive p, marking it used. */
const char *
js_prim(js_ctx *c, unsigned p)
{
	static __thread char buf[12][128];
	int			i = __builtin_ctz(p);

	c->prims |= p;
	snprintf(buf[i], sizeof(buf[i]), "%s%s", c->prefix, js_prim_names[i]);
	return buf[i];
}

/* "ws " (the optional-whitespace rule and a space) or "" when compact. */
const char *
js_ws(js_ctx *c)
{
	static __thread char buf[160];

	if (c->compact)
		return "";
	snprintf(buf, sizeof(buf), "%s ", js_prim(c, JS_P_WS));
	return buf;
}

/* Append the used primitive rules' definitions. */
static bool
js_emit_prims(js_ctx *c, lg_buf *out)
{
	const char *p = c->prefix;
	char		w[160];
	unsigned	u = c->prims;
	bool		ok = true;

	/* the primitives the used ones refer to */
	if (u & (JS_P_VALUE | JS_P_OBJECT | JS_P_ARRAY))
		u |= JS_P_VALUE | JS_P_OBJECT | JS_P_ARRAY | JS_P_STRING | JS_P_NUMBER | JS_P_BOOLEAN | JS_P_NULL;
	if (u & JS_P_STRING)
		u |= JS_P_CHAR;
	if (u & JS_P_NUMBER)
		u |= JS_P_DIGITS;
	if (c->compact)
		u &= ~JS_P_WS;
	else if (u & (JS_P_OBJECT | JS_P_ARRAY))
		u |= JS_P_WS;
	snprintf(w, sizeof(w), "%s", c->compact ? "" : js_ws(c));

	/*
	 * Whitespace: none, one space, or one newline and up to 40 spaces or
	 * tabs (an indentation up to 20 levels of two) — bounded, so a model
	 * cannot spend its whole budget on blanks.
	 */
	if (u & JS_P_WS)
		ok &= lg_buf_appendf(out, "%sws ::= ( \" \" | \"\\n\" [ \\t]{0,40} )?\n", p);
	if (u & JS_P_VALUE)
		ok &= lg_buf_appendf(out, "%svalue ::= %sobject | %sarray | %sstring | %snumber | %sboolean | %snull\n",
							 p, p, p, p, p, p, p);
	if (u & JS_P_OBJECT)
		ok &= lg_buf_appendf(out, "%sobject ::= \"{\" %s( %sstring %s\":\" %s%svalue %s( \",\" %s%sstring %s\":\" %s%svalue %s)* )? \"}\"\n",
							 p, w, p, w, w, p, w, w, p, w, w, p, w);
	if (u & JS_P_ARRAY)
		ok &= lg_buf_appendf(out, "%sarray ::= \"[\" %s( %svalue %s( \",\" %s%svalue %s)* )? \"]\"\n",
							 p, w, p, w, w, p, w);
	if (u & JS_P_STRING)
		ok &= lg_buf_appendf(out, "%sstring ::= \"\\\"\" %schar* \"\\\"\"\n", p, p);
	if (u & JS_P_CHAR)
		ok &= lg_buf_appendf(out, "%schar ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n", p);
	/*
	 * A character of a string whose length is bounded: a \u escape of a
	 * surrogate would count one code point as two, so pairs are left out.
	 */
	if (u & JS_P_CHARL)
		ok &= lg_buf_appendf(out, "%schar-l ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) )\n", p);
	if (u & JS_P_DIGITS)
		ok &= lg_buf_appendf(out, "%sdigits ::= [0-9]{1,20}\n", p);
	if (u & JS_P_NUMBER)
		ok &= lg_buf_appendf(out, "%snumber ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,19} ) ( \".\" %sdigits )? ( [eE] [-+]? [0-9]{1,3} )?\n", p, p);
	if (u & JS_P_INTEGER)
		ok &= lg_buf_appendf(out, "%sinteger ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,19} )\n", p);
	if (u & JS_P_BOOLEAN)
		ok &= lg_buf_appendf(out, "%sboolean ::= \"true\" | \"false\"\n", p);
	if (u & JS_P_NULL)
		ok &= lg_buf_appendf(out, "%snull ::= \"null\"\n", p);
	return ok || js_oom(c);
}

/* ---- memo ---- */

/* The memo slot of node s (empty slot when absent). */
static js_memo *
js_memo_slot(js_ctx *c, const lg_json_node *s)
{
	size_t		h = ((uintptr_t) s >> 4) * 0x9E3779B97F4A7C15ull;

	for (size_t i = h & (c->cap_memo - 1);; i = (i + 1) & (c->cap_memo - 1))
		if (c->memo[i].node == s || c->memo[i].node == NULL)
			return &c->memo[i];
}

/* Insert s → name, growing the table at half load. */
static js_memo *
js_memo_put(js_ctx *c, const lg_json_node *s, const char *name)
{
	js_memo    *m;

	if (2 * (c->n_memo + 1) > c->cap_memo)
	{
		size_t		cap = c->cap_memo ? 2 * c->cap_memo : 256;
		js_memo    *old = c->memo;
		size_t		ocap = c->cap_memo;

		c->memo = calloc(cap, sizeof(*c->memo));
		if (c->memo == NULL)
		{
			c->memo = old;
			return js_oom(c), NULL;
		}
		c->cap_memo = cap;
		for (size_t i = 0; i < ocap; i++)
			if (old[i].node)
				*js_memo_slot(c, old[i].node) = old[i];
		free(old);
	}
	m = js_memo_slot(c, s);
	m->node = s;
	m->name = name;
	m->busy = false;
	c->n_memo++;
	return m;
}

/* ---- keywords ---- */

static const char *const js_validation_keys[] = {
	"type", "enum", "const", "properties", "required", "additionalProperties",
	"patternProperties", "items", "prefixItems", "additionalItems", "minItems", "maxItems",
	"minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
	"exclusiveMaximum", "multipleOf", "minProperties", "maxProperties", "anyOf", "oneOf",
	"allOf", "$ref", "uniqueItems", "dependencies", "not", "if", "then", "else",
	"dependentRequired", "dependentSchemas", "contains", "minContains", "maxContains",
	"propertyNames", "unevaluatedProperties", "unevaluatedItems", "$recursiveRef",
	"$dynamicRef", NULL
};

/* True for a key that constrains nothing: annotations and unknown keywords. */
bool
js_is_annotation(const char *key)
{
	for (int i = 0; js_validation_keys[i]; i++)
		if (strcmp(key, js_validation_keys[i]) == 0)
			return false;
	return true;
}

/* True when schema v accepts every value (true or {} modulo annotations). */
bool
js_trivial(const lg_json_node *v)
{
	if (v->kind == LG_JSON_BOOL)
		return v->boolean;
	if (v->kind != LG_JSON_OBJECT)
		return false;
	for (size_t i = 0; i < v->n; i++)
		if (!js_is_annotation(v->keys[i]))
			return false;
	return true;
}

/* A schema that accepts nothing: false, or the common spelling {"not": {}}. */
const lg_json_node *
js_norm(const lg_json_node *s)
{
	const lg_json_node *n;

	if (s && s->kind == LG_JSON_OBJECT && (n = lg_json_get(s, "not")) != NULL && js_trivial(n))
		return &js_false_node;
	return s;
}

/* Keywords we recognise but cannot enforce: an error unless trivially satisfied. */
static bool
js_check_unsupported(js_ctx *c, const lg_json_node *s, const char *path)
{
	static const char *const never[] = {
		"contains", "propertyNames", "unevaluatedProperties",
		"unevaluatedItems", "$recursiveRef", "$dynamicRef", NULL
	};

	for (size_t i = 0; i < s->n; i++)
	{
		const char *k = s->keys[i];
		const lg_json_node *v = s->items[i];

		for (int j = 0; never[j]; j++)
		{
			if (strcmp(k, never[j]) != 0)
				continue;
			/* contains/propertyNames/unevaluated*: true or {} constrain nothing */
			if (strcmp(k, "not") != 0 && strcmp(k, "contains") != 0 && js_trivial(v))
				continue;
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"%s\" at %s", k, path);
		}
		if (strcmp(k, "if") == 0 && (lg_json_get(s, "then") || lg_json_get(s, "else")) && !js_trivial(v))
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"if\" at %s", path);
		if (strcmp(k, "uniqueItems") == 0 && v->kind == LG_JSON_BOOL && v->boolean)
		{
			const lg_json_node *mx = lg_json_get(s, "maxItems");

			if (!(mx && mx->kind == LG_JSON_NUMBER && mx->number <= 1) && (js_types(s) & JS_T_ARR))
				return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"uniqueItems\" at %s", path);
		}
	}
	return true;
}

/* Bit for a type name, 0 when unknown. */
static unsigned
js_type_bit(const char *t)
{
	static const char *const names[] = {"null", "boolean", "integer", "number", "string", "array", "object"};

	for (int i = 0; i < 7; i++)
		if (strcmp(t, names[i]) == 0)
			return 1u << i;
	return 0;
}

/* The type bit of a JSON value. */
static unsigned
js_value_type(const lg_json_node *v)
{
	switch (v->kind)
	{
		case LG_JSON_NULL:
			return JS_T_NULL;
		case LG_JSON_BOOL:
			return JS_T_BOOL;
		case LG_JSON_NUMBER:
			return v->is_int || (v->number == (double) (int64_t) v->number) ? JS_T_INT : JS_T_NUM;
		case LG_JSON_STRING:
			return JS_T_STR;
		case LG_JSON_ARRAY:
			return JS_T_ARR;
		default:
			return JS_T_OBJ;
	}
}

/*
 * The types a schema's values can have: its "type", else its const/enum
 * values, else inferred from the keywords present (a schema with only
 * "properties" is compiled as an object: a subset of what it accepts).
 */
unsigned
js_types(const lg_json_node *s)
{
	const lg_json_node *t, *e;
	unsigned	m = 0;

	if (s->kind == LG_JSON_BOOL)
		return s->boolean ? JS_T_ALL : 0;
	if (s->kind != LG_JSON_OBJECT)
		return 0;
	t = lg_json_get(s, "type");
	if (t && t->kind == LG_JSON_STRING)
		m = js_type_bit(t->str);
	else if (t && t->kind == LG_JSON_ARRAY)
	{
		for (size_t i = 0; i < t->n; i++)
			if (t->items[i]->kind == LG_JSON_STRING)
				m |= js_type_bit(t->items[i]->str);
	}
	if (t)
	{
		if (m & JS_T_NUM)
			m |= JS_T_INT;
	}
	else
	{
		/*
		 * No "type": every type, each with the keywords that apply to it
		 * ("properties" constrains objects and lets any string through).
		 */
		m = JS_T_ALL;
	}
	if ((e = lg_json_get(s, "const")) != NULL)
		m &= js_value_type(e) == JS_T_INT ? (JS_T_INT | JS_T_NUM) : js_value_type(e);
	else if ((e = lg_json_get(s, "enum")) != NULL && e->kind == LG_JSON_ARRAY)
	{
		unsigned	em = 0;

		for (size_t i = 0; i < e->n; i++)
			em |= js_value_type(e->items[i]) == JS_T_INT ? (JS_T_INT | JS_T_NUM) : js_value_type(e->items[i]);
		m &= em;
	}
	return m;
}

/*
 * The types a schema as written accepts, for proofs about what a validator
 * says: its "type" or const/enum values, else every type (a schema with
 * only "properties" accepts a string too).
 */
unsigned
js_accept_types(const lg_json_node *s)
{
	if (s->kind == LG_JSON_BOOL)
		return s->boolean ? JS_T_ALL : 0;
	if (s->kind != LG_JSON_OBJECT)
		return JS_T_ALL;
	if (lg_json_get(s, "type") || lg_json_get(s, "const") || lg_json_get(s, "enum"))
		return js_types(s);
	return JS_T_ALL;
}

/* ---- $ref ---- */

/* Percent-decode a URI fragment in place. */
static void
js_pct_decode(char *s)
{
	char	   *w = s;

	for (char *r = s; *r; r++)
	{
		int			hi, lo;

		if (*r == '%' && r[1] && r[2] &&
			(hi = (r[1] >= '0' && r[1] <= '9') ? r[1] - '0' : ((r[1] | 32) >= 'a' && (r[1] | 32) <= 'f') ? (r[1] | 32) - 'a' + 10 : -1) >= 0 &&
			(lo = (r[2] >= '0' && r[2] <= '9') ? r[2] - '0' : ((r[2] | 32) >= 'a' && (r[2] | 32) <= 'f') ? (r[2] | 32) - 'a' + 10 : -1) >= 0)
		{
			*w++ = (char) (hi * 16 + lo);
			r += 2;
		}
		else
			*w++ = *r;
	}
	*w = '\0';
}

/* The node with "$anchor": name or "$id"/"id": "#name", searched depth-first. */
static const lg_json_node *
js_find_anchor(const lg_json_node *n, const char *name, int depth)
{
	if (depth > LG_JSON_MAX_DEPTH + 2)
		return NULL;
	if (n->kind == LG_JSON_OBJECT)
	{
		const char *a = lg_json_get_str(n, "$anchor");
		const char *id = lg_json_get_str(n, "$id");
		const char *id4 = lg_json_get_str(n, "id");

		if ((a && strcmp(a, name) == 0) || (id && id[0] == '#' && strcmp(id + 1, name) == 0) ||
			(id4 && id4[0] == '#' && strcmp(id4 + 1, name) == 0))
			return n;
	}
	if (n->kind == LG_JSON_OBJECT || n->kind == LG_JSON_ARRAY)
	{
		for (size_t i = 0; i < n->n; i++)
		{
			const lg_json_node *f;

			if (n->kind == LG_JSON_OBJECT && (strcmp(n->keys[i], "enum") == 0 || strcmp(n->keys[i], "const") == 0))
				continue;
			if ((f = js_find_anchor(n->items[i], name, depth + 1)) != NULL)
				return f;
		}
	}
	return NULL;
}

/* Strip a trailing '#' and, for comparison, the rest is the base URI. */
static size_t
js_base_len(const char *id)
{
	size_t		n = strlen(id);

	while (n > 0 && id[n - 1] == '#')
		n--;
	return n;
}

/*
 * The node a "$ref" names: local JSON Pointers ("#", "#/definitions/a~1b",
 * percent-escaped), anchors ("#name"), and refs that repeat the root's
 * $id.  Anything else is a remote reference: unsupported.
 */
const lg_json_node *
js_resolve_ref(js_ctx *c, const lg_json_node *s, const char *path)
{
	const char *ref = lg_json_get_str(s, "$ref");
	const char *hash;
	const char *rid;
	char	   *frag;
	const lg_json_node *n = c->root;

	if (ref == NULL)
		return js_fail(c, LG_ERR_FORMAT, "\"$ref\" at %s is not a string", path), NULL;
	hash = strchr(ref, '#');
	if (ref[0] != '#')
	{
		size_t		pre = hash ? (size_t) (hash - ref) : strlen(ref);
		bool		same = false;

		rid = lg_json_get_str(c->root, "$id");
		if (rid == NULL)
			rid = lg_json_get_str(c->root, "id");
		if (rid && js_base_len(rid) == pre && strncmp(rid, ref, pre) == 0)
			same = true;
		if (!same)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"$ref\" at %s: remote reference \"%s\"", path, ref), NULL;
		if (hash == NULL)
			return c->root;
	}
	frag = strdup(hash + 1);
	if (frag == NULL)
		return js_oom(c), NULL;
	js_pct_decode(frag);
	if (frag[0] != '\0' && frag[0] != '/')
	{
		n = js_find_anchor(c->root, frag, 0);
		if (n == NULL)
			js_fail(c, LG_ERR_FORMAT, "\"$ref\" at %s: no anchor \"%s\"", path, frag);
		free(frag);
		return n;
	}
	for (char *p = frag; *p == '/' && n;)
	{
		char	   *seg = p + 1;
		char	   *end = strchr(seg, '/');
		char	   *w = seg;

		if (end)
			*end = '\0';
		for (char *r = seg; *r; r++)
		{
			if (r[0] == '~' && r[1] == '1')
				*w++ = '/', r++;
			else if (r[0] == '~' && r[1] == '0')
				*w++ = '~', r++;
			else
				*w++ = *r;
		}
		*w = '\0';
		if (n->kind == LG_JSON_OBJECT)
			n = lg_json_get(n, seg);
		else if (n->kind == LG_JSON_ARRAY)
		{
			char	   *e;
			unsigned long i = strtoul(seg, &e, 10);

			n = (*seg && *e == '\0') ? lg_json_at(n, i) : NULL;
		}
		else
			n = NULL;
		if (end == NULL)
			break;
		*end = '/';
		p = end;
	}
	if (n == NULL)
		js_fail(c, LG_ERR_FORMAT, "\"$ref\" at %s: no such location \"%s\"", path, ref);
	free(frag);
	return n;
}

/* s with a bare $ref replaced by its target, repeatedly (siblings are merged by js_visit). */
const lg_json_node *
js_deref(js_ctx *c, const lg_json_node *s, const char *path)
{
	for (int i = 0; i < 64 && s && s->kind == LG_JSON_OBJECT && lg_json_get(s, "$ref"); i++)
	{
		bool		siblings = false;

		for (size_t k = 0; k < s->n && c->ref_siblings; k++)
			if (strcmp(s->keys[k], "$ref") != 0 && !js_is_annotation(s->keys[k]))
				siblings = true;
		if (siblings)
			return s;
		s = js_resolve_ref(c, s, path);
	}
	return s;
}

/* ---- combinators ---- */

bool		js_obviously_empty(const lg_json_node *s);

/* True when the schema has validation keywords other than those in skip. */
static bool
js_has_constraints(const lg_json_node *s, const char *skip)
{
	for (size_t i = 0; i < s->n; i++)
		if (!js_is_annotation(s->keys[i]) && strcmp(s->keys[i], skip) != 0)
			return true;
	return false;
}

/* The required names of an object schema (NULL-free view; n_out entries). */
static const lg_json_node *
js_required(const lg_json_node *s)
{
	const lg_json_node *r = s->kind == LG_JSON_OBJECT ? lg_json_get(s, "required") : NULL;

	return r && r->kind == LG_JSON_ARRAY ? r : NULL;
}

/* True when required list r holds name. */
static bool
js_req_has(const lg_json_node *r, const char *name)
{
	for (size_t i = 0; r && i < r->n; i++)
		if (r->items[i]->kind == LG_JSON_STRING && strcmp(r->items[i]->str, name) == 0)
			return true;
	return false;
}

static const lg_json_node *js_val_at(const lg_json_node *vals, size_t n, size_t i);

/* The const/enum values schema p (or one of its allOf parts) restricts values to. */
static bool
js_schema_values(js_ctx *c, const lg_json_node *p, const lg_json_node **vals, size_t *n, int depth)
{
	const lg_json_node *e;

	p = p ? js_deref(c, p, "#") : NULL;
	if (p == NULL || p->kind != LG_JSON_OBJECT || depth > 8)
		return false;
	if ((e = lg_json_get(p, "const")) != NULL)
	{
		*vals = e;
		*n = 1;
		return true;
	}
	if ((e = lg_json_get(p, "enum")) != NULL && e->kind == LG_JSON_ARRAY)
	{
		*vals = e;
		*n = e->n;
		return true;
	}
	/* allOf: the values every restricting part allows */
	e = lg_json_get(p, "allOf");
	{
		const lg_json_node *acc = NULL;
		size_t		nacc = 0;

		for (size_t i = 0; e && e->kind == LG_JSON_ARRAY && i < e->n; i++)
		{
			const lg_json_node *v;
			size_t		nv;
			lg_json_node *x;
			size_t		k = 0;

			if (!js_schema_values(c, e->items[i], &v, &nv, depth + 1))
				continue;
			if (acc == NULL)
			{
				acc = v;
				nacc = nv;
				continue;
			}
			if ((x = js_node_new(c, LG_JSON_ARRAY, nacc)) == NULL)
				return false;
			for (size_t a = 0; a < nacc; a++)
				for (size_t b = 0; b < nv; b++)
					if (lg_json_equal(js_val_at(acc, nacc, a), js_val_at(v, nv, b)))
					{
						x->items[k++] = (lg_json_node *) js_val_at(acc, nacc, a);
						break;
					}
			x->n = k;
			acc = x;
			nacc = k;
		}
		if (acc == NULL)
			return false;
		*vals = acc;
		*n = nacc;
		return true;
	}
}

/* The const/enum values property name of object schema s is restricted to. */
static bool
js_prop_values(js_ctx *c, const lg_json_node *s, const char *name, const lg_json_node **vals, size_t *n)
{
	const lg_json_node *props = lg_json_get(s, "properties");

	return props && js_schema_values(c, lg_json_get(props, name), vals, n, 0);
}

/* Value i of a const (n == 1, the node itself) or enum array. */
static const lg_json_node *
js_val_at(const lg_json_node *vals, size_t n, size_t i)
{
	return (vals->kind == LG_JSON_ARRAY && !(n == 1 && vals->n != 1)) ? vals->items[i] : vals;
}

/* True when no value of a is in b. */
static bool
js_vals_disjoint(const lg_json_node *a, size_t na, const lg_json_node *b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (lg_json_equal(js_val_at(a, na, i), js_val_at(b, nb, j)))
				return false;
	return true;
}

/*
 * A property both object schemas declare with const/enum sets that do not
 * meet; *both_required when each requires it (else requiring it in both
 * makes them disjoint, a subset of what they accept).
 */
static const char *
js_discriminator(js_ctx *c, const lg_json_node *a, const lg_json_node *b, bool *both_required)
{
	const lg_json_node *pa = lg_json_get(a, "properties");
	const lg_json_node *ra = js_required(a), *rb = js_required(b);
	const char *loose = NULL;

	for (size_t i = 0; pa && pa->kind == LG_JSON_OBJECT && i < pa->n; i++)
	{
		const lg_json_node *va, *vb;
		size_t		na, nb;
		const char *k = pa->keys[i];

		if (js_prop_values(c, a, k, &va, &na) && js_prop_values(c, b, k, &vb, &nb) &&
			js_vals_disjoint(va, na, vb, nb))
		{
			if (js_req_has(ra, k) && js_req_has(rb, k))
			{
				*both_required = true;
				return k;
			}
			if (loose == NULL)
				loose = k;
		}
	}
	*both_required = false;
	return loose;
}

/* A name required by b that a neither requires nor (preferably) declares. */
static const char *
js_distinct_required(const lg_json_node *a, const lg_json_node *b)
{
	const lg_json_node *ra = js_required(a), *rb = js_required(b);
	const lg_json_node *pa = lg_json_get(a, "properties");
	const char *any = NULL;

	for (size_t i = 0; rb && i < rb->n; i++)
	{
		const char *k = rb->items[i]->kind == LG_JSON_STRING ? rb->items[i]->str : NULL;

		if (k == NULL || js_req_has(ra, k))
			continue;
		if (pa == NULL || lg_json_get(pa, k) == NULL)
			return k;
		if (any == NULL)
			any = k;
	}
	return any;
}

/* br[i] merged with {"required": [name]}. */
static bool
js_require_name(js_ctx *c, const lg_json_node **br, size_t i, const char *name, const char *path)
{
	lg_json_node *rl = js_node_new(c, LG_JSON_ARRAY, 1);
	lg_json_node *sk = js_node_new(c, LG_JSON_STRING, 0);
	lg_json_node *req = rl && sk ? js_node_new(c, LG_JSON_OBJECT, 1) : NULL;
	const lg_json_node *parts[2];

	if (req == NULL)
		return false;
	sk->str = (char *) name;
	sk->str_len = strlen(name);
	rl->items[0] = sk;
	req->keys[0] = (char *) "required";
	req->key_lens[0] = 8;
	req->items[0] = rl;
	parts[0] = br[i];
	parts[1] = req;
	return (br[i] = js_merge(c, parts, 2, path)) != NULL;
}

/* br[i] merged with {"properties": {name: false}}. */
static bool
js_forbid_name(js_ctx *c, const lg_json_node **br, size_t i, const char *name, const char *path)
{
	lg_json_node *props = js_node_new(c, LG_JSON_OBJECT, 1);
	lg_json_node *forbid = props ? js_node_new(c, LG_JSON_OBJECT, 1) : NULL;
	const lg_json_node *parts[2];

	if (forbid == NULL)
		return false;
	props->keys[0] = (char *) name;
	props->key_lens[0] = strlen(name);
	props->items[0] = (lg_json_node *) &js_false_node;
	forbid->keys[0] = (char *) "properties";
	forbid->key_lens[0] = 10;
	forbid->items[0] = props;
	parts[0] = br[i];
	parts[1] = forbid;
	return (br[i] = js_merge(c, parts, 2, path)) != NULL;
}

/* br[i] restricted to the values of its const/enum not among other[0..n). */
static bool
js_enum_minus(js_ctx *c, const lg_json_node **br, size_t i, const lg_json_node *other, size_t n, const char *path)
{
	const lg_json_node *a = br[i];
	const lg_json_node *va = lg_json_get(a, "const") ? lg_json_get(a, "const") : lg_json_get(a, "enum");
	size_t		na;

	if (va == NULL)
		return true;			/* br[i] no longer restricts values (merged away): nothing to drop */
	na = lg_json_get(a, "const") ? 1 : va->n;
	lg_json_node *keep = js_node_new(c, LG_JSON_ARRAY, na);
	lg_json_node *en = keep ? js_node_new(c, LG_JSON_OBJECT, 1) : NULL;
	const lg_json_node *parts[2];
	size_t		k = 0;

	if (en == NULL)
		return false;
	for (size_t x = 0; x < na; x++)
	{
		const lg_json_node *v = js_val_at(va, na, x);
		bool		shared = false;

		for (size_t y = 0; y < n && !shared; y++)
			shared = lg_json_equal(v, js_val_at(other, n, y));
		if (!shared)
			keep->items[k++] = (lg_json_node *) v;
	}
	keep->n = k;
	en->keys[0] = (char *) "enum";
	en->key_lens[0] = 4;
	en->items[0] = keep;
	parts[0] = a;
	parts[1] = en;
	return (br[i] = js_merge(c, parts, 2, path)) != NULL;
}

/* True when object schema b admits no other members than its properties. */
static bool
js_closed(const lg_json_node *b)
{
	const lg_json_node *ap = js_norm(lg_json_get(b, "additionalProperties"));

	return ap && ap->kind == LG_JSON_BOOL && !ap->boolean && lg_json_get(b, "patternProperties") == NULL;
}

/* True when name is declared in b with a schema that accepts something. */
static bool
js_declares(const lg_json_node *b, const char *name)
{
	const lg_json_node *pb = lg_json_get(b, "properties");
	const lg_json_node *v = pb && pb->kind == LG_JSON_OBJECT ? lg_json_get(pb, name) : NULL;

	return v && !js_obviously_empty(js_norm(v));
}

/*
 * Make every output of object branch br[i] fail object schema b (a subset
 * of br[i]): it already requires a name b refuses; or it is made to lack a
 * name b requires; or, b being closed, to hold one of its own names b does
 * not declare.  False when none applies.
 */
static bool
js_fail_other(js_ctx *c, const lg_json_node **br, size_t i, const lg_json_node *b, const char *path)
{
	const lg_json_node *a = br[i];
	const lg_json_node *ra = js_required(a);
	const lg_json_node *pa = lg_json_get(a, "properties");
	const char *k;
	bool		closed = js_closed(b);

	for (size_t x = 0; ra && x < ra->n; x++)
	{
		const char *name = ra->items[x]->kind == LG_JSON_STRING ? ra->items[x]->str : NULL;
		const lg_json_node *pb = lg_json_get(b, "properties");
		const lg_json_node *v = name && pb && pb->kind == LG_JSON_OBJECT ? lg_json_get(pb, name) : NULL;

		if (name && ((closed && !js_declares(b, name)) || (v && js_obviously_empty(js_norm(v)))))
			return true;
	}
	if ((k = js_distinct_required(a, b)) != NULL)
		return js_forbid_name(c, br, i, k, path);
	if (closed && pa && pa->kind == LG_JSON_OBJECT)
	{
		/* anyOf [{"required": [k]} for the names of a that b does not declare] */
		lg_json_node *list = js_node_new(c, LG_JSON_ARRAY, pa->n);
		lg_json_node *any;
		const lg_json_node *parts[2];
		size_t		nl = 0;

		if (list == NULL)
			return false;
		for (size_t x = 0; x < pa->n; x++)
		{
			lg_json_node *rl, *sk, *req;

			if (js_declares(b, pa->keys[x]) || js_obviously_empty(js_norm(pa->items[x])))
				continue;
			rl = js_node_new(c, LG_JSON_ARRAY, 1);
			sk = js_node_new(c, LG_JSON_STRING, 0);
			req = rl && sk ? js_node_new(c, LG_JSON_OBJECT, 1) : NULL;
			if (req == NULL)
				return false;
			sk->str = pa->keys[x];
			sk->str_len = strlen(pa->keys[x]);
			rl->items[0] = sk;
			req->keys[0] = (char *) "required";
			req->key_lens[0] = 8;
			req->items[0] = rl;
			list->items[nl++] = req;
		}
		list->n = nl;
		if (nl == 0 || (any = js_node_new(c, LG_JSON_OBJECT, 1)) == NULL)
			return false;
		any->keys[0] = (char *) "anyOf";
		any->key_lens[0] = 5;
		any->items[0] = list;
		parts[0] = a;
		parts[1] = any;
		return (br[i] = js_merge(c, parts, 2, path)) != NULL;
	}
	return false;
}

/*
 * For two raw oneOf branches whose only keyword is "required": 1 when a's
 * names are a proper subset of b's, 2 the other way, 3 equal, else 0.
 */
static int
js_required_only_subset(const lg_json_node *a, const lg_json_node *b)
{
	const lg_json_node *ra = js_required(a), *rb = js_required(b);
	bool		a_in_b = true, b_in_a = true;

	if (a->kind != LG_JSON_OBJECT || b->kind != LG_JSON_OBJECT || ra == NULL || rb == NULL ||
		js_has_constraints(a, "required") || js_has_constraints(b, "required"))
		return 0;
	for (size_t i = 0; i < ra->n; i++)
		if (ra->items[i]->kind != LG_JSON_STRING || !js_req_has(rb, ra->items[i]->str))
			a_in_b = false;
	for (size_t i = 0; i < rb->n; i++)
		if (rb->items[i]->kind != LG_JSON_STRING || !js_req_has(ra, rb->items[i]->str))
			b_in_a = false;
	return a_in_b && b_in_a ? 3 : a_in_b ? 1 : b_in_a ? 2 : 0;
}

/*
 * oneOf compiled as anyOf is only sound when no value can match two
 * branches.  Proven disjoint: different types, disjoint const/enum sets,
 * or objects told apart by a required property with disjoint const/enum
 * values.  Objects that differ in their required names are made disjoint:
 * a branch that does not require a name another branch requires is
 * compiled with that name forbidden (a subset of what it accepts).
 * Anything else is refused rather than risk an output matching two.
 */
static bool
js_oneof_disjoint(js_ctx *c, const lg_json_node **br, const lg_json_node *const *orig,
				  lg_json_node *const *raw, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
	{
		for (size_t j = i + 1; j < n; j++)
		{
			/*
			 * What branch i writes (js_types: the grammar writes only the
			 * inferred types) against what the other branch as written
			 * accepts (js_accept_types: without "type" it accepts any type),
			 * both ways; the proofs below compare with the original branches.
			 */
			const lg_json_node *a = orig[i], *b = orig[j];
			unsigned	common = (js_types(br[i]) & js_accept_types(b)) | (js_types(br[j]) & js_accept_types(a));
			const lg_json_node *va, *vb;

			if (common == 0)
				continue;
			if (a->kind == LG_JSON_OBJECT && b->kind == LG_JSON_OBJECT)
			{
				size_t		na, nb;

				va = lg_json_get(a, "const") ? lg_json_get(a, "const") : lg_json_get(a, "enum");
				vb = lg_json_get(b, "const") ? lg_json_get(b, "const") : lg_json_get(b, "enum");
				if (va && vb && (lg_json_get(a, "const") || va->kind == LG_JSON_ARRAY) &&
					(lg_json_get(b, "const") || vb->kind == LG_JSON_ARRAY))
				{
					na = lg_json_get(a, "const") ? 1 : va->kind == LG_JSON_ARRAY ? va->n : 0;
					nb = lg_json_get(b, "const") ? 1 : vb->kind == LG_JSON_ARRAY ? vb->n : 0;
					if (js_vals_disjoint(va, na, vb, nb))
						continue;
					/* a value in both sets matches both branches: invalid, so dropped from each */
					if (!js_enum_minus(c, br, i, vb, nb, path) || !js_enum_minus(c, br, j, va, na, path))
						return false;
					continue;
				}
				if (common == JS_T_OBJ)
				{
					bool		both;
					const char *dk = js_discriminator(c, a, b, &both);

					if (dk && both)
						continue;
					if (dk)
					{
						/* require the discriminating property on both sides */
						if (!js_require_name(c, br, i, dk, path) || !js_require_name(c, br, j, dk, path))
							return false;
						continue;
					}
					/* each side's outputs made to fail the other */
					if (js_fail_other(c, br, i, b, path) && js_fail_other(c, br, j, a, path))
						continue;
					if (c->st != LG_OK)
						return false;
					/*
					 * Branches that differ only in "required", one set inside the
					 * other: every value of the larger matches the smaller too, so
					 * the larger never matches alone (dropped) and the smaller must
					 * lack one of the extra names.
					 */
					{
						int			sub = js_required_only_subset(raw[i], raw[j]);

						if (sub == 3)
						{
							br[i] = br[j] = &js_false_node;
							continue;
						}
						if (sub == 1 || sub == 2)
						{
							size_t		keep = sub == 1 ? i : j, drop = sub == 1 ? j : i;
							const char *k = js_distinct_required(raw[keep], raw[drop]);

							br[drop] = &js_false_node;
							if (k && !js_forbid_name(c, br, keep, k, path))
								return false;
							continue;
						}
					}
				}
			}
			return js_fail(c, LG_ERR_UNSUPPORTED,
						   "unsupported keyword \"oneOf\" at %s: branches %zu and %zu may both match", path, i, j);
		}
	}
	return true;
}

/* anyOf/oneOf: alternatives, each merged with the schema's other keywords. */
static bool
js_alternatives(js_ctx *c, const lg_json_node *s, const char *kw, const char *path, lg_buf *out)
{
	const lg_json_node *list = lg_json_get(s, kw);
	const lg_json_node *base = NULL;
	const lg_json_node **br;
	char	   *kpath = js_path(path, kw);
	bool		ok = true;

	if (list == NULL || list->kind != LG_JSON_ARRAY || list->n == 0)
	{
		free(kpath);
		return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not a non-empty array", kw, path);
	}
	if (kpath == NULL)
		return js_oom(c);
	if (js_has_constraints(s, kw))
	{
		const char *drop[1] = {kw};

		base = js_without(c, s, drop, 1);
	}
	br = calloc(list->n, sizeof(*br));
	if (br == NULL)
	{
		free(kpath);
		return js_oom(c);
	}
	for (size_t i = 0; i < list->n && ok; i++)
	{
		const lg_json_node *b = list->items[i];

		if (base)
		{
			const lg_json_node *parts[2] = {base, b};
			char	   *bp = js_path_i(path, kw, i);

			b = bp ? js_merge(c, parts, 2, bp) : NULL;
			free(bp);
			ok = b != NULL;
		}
		else
		{
			char	   *bp = js_path_i(path, kw, i);

			b = bp ? js_deref(c, b, bp) : NULL;
			free(bp);
			ok = b != NULL;
		}
		br[i] = b;
	}
	if (ok && strcmp(kw, "oneOf") == 0)
	{
		const lg_json_node **orig = malloc(list->n * sizeof(*orig));

		if (orig == NULL)
			ok = js_oom(c);
		else
		{
			memcpy(orig, br, list->n * sizeof(*orig));
			ok = js_oneof_disjoint(c, br, orig, list->items, list->n, path);
			free(orig);
		}
	}
	for (size_t i = 0; i < list->n && ok; i++)
	{
		char	   *bp = js_path_i(path, kw, i);
		const char *name;

		/* a branch that accepts nothing is left out, not an error */
		if (js_obviously_empty(br[i]))
		{
			free(bp);
			continue;
		}
		name = bp ? js_visit(c, br[i], bp) : NULL;
		free(bp);
		if (name == NULL)
		{
			ok = false;
			break;
		}
		if (out->len > 0)
			lg_buf_append(out, " | ", 3);
		lg_buf_append(out, name, strlen(name));
	}
	if (ok && out->len == 0)
		ok = js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value", kpath);
	free(br);
	free(kpath);
	return ok && c->st == LG_OK;
}

/* const and enum: the literal alternatives (filtered by "type" if given). */
static bool
js_enum_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	const lg_json_node *cn = lg_json_get(s, "const");
	const lg_json_node *e = lg_json_get(s, "enum");
	const lg_json_node *t = lg_json_get(s, "type");
	unsigned	types = t ? js_types(s) : JS_T_ALL;

	if (e && e->kind != LG_JSON_ARRAY)
		return js_fail(c, LG_ERR_FORMAT, "\"enum\" at %s is not an array", path);
	for (size_t i = 0; cn ? i < 1 : i < e->n; i++)
	{
		const lg_json_node *v = cn ? cn : e->items[i];
		unsigned	vt = js_value_type(v);

		if (cn && e)
		{
			bool		in = false;

			for (size_t j = 0; j < e->n && !in; j++)
				in = lg_json_equal(v, e->items[j]);
			if (!in)
				continue;
		}
		if (!(vt & types) && !(vt == JS_T_INT && (types & JS_T_NUM)))
			continue;
		if (out->len > 0)
			lg_buf_append(out, " | ", 3);
		if (!js_literal_expr(c, v, out))
			return false;
	}
	if (out->len == 0)
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value (\"%s\" and \"type\" do not meet)", path, cn ? "const" : "enum");
	return true;
}

/* The alternatives for each type the schema allows. */
static bool
js_typed_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	const lg_json_node *t = lg_json_get(s, "type");
	unsigned	m;
	bool		ok = true;

	if (t && t->kind != LG_JSON_STRING && t->kind != LG_JSON_ARRAY)
		return js_fail(c, LG_ERR_FORMAT, "\"type\" at %s is not a string or array", path);
	if (t && t->kind == LG_JSON_STRING && js_type_bit(t->str) == 0)
		return js_fail(c, LG_ERR_FORMAT, "unknown type \"%s\" at %s", t->str, path);
	for (size_t i = 0; t && t->kind == LG_JSON_ARRAY && i < t->n; i++)
		if (t->items[i]->kind != LG_JSON_STRING || js_type_bit(t->items[i]->str) == 0)
			return js_fail(c, LG_ERR_FORMAT, "unknown type in \"type\" at %s", path);
	m = js_types(s);
	if (m == JS_T_ALL && !js_has_constraints(s, ""))
	{
		lg_buf_append(out, js_prim(c, JS_P_VALUE), strlen(js_prim(c, JS_P_VALUE)));
		return true;
	}
	if (m & JS_T_NUM)
		m &= ~JS_T_INT;
#define ALT() do { if (out->len > 0) lg_buf_append(out, " | ", 3); } while (0)
	if (m & JS_T_NULL)
	{
		ALT();
		lg_buf_append(out, js_prim(c, JS_P_NULL), strlen(js_prim(c, JS_P_NULL)));
	}
	if (m & JS_T_BOOL)
	{
		ALT();
		lg_buf_append(out, js_prim(c, JS_P_BOOLEAN), strlen(js_prim(c, JS_P_BOOLEAN)));
	}
	if (ok && (m & JS_T_INT))
	{
		ALT();
		ok = js_integer_expr(c, s, path, out);
	}
	if (ok && (m & JS_T_NUM))
	{
		ALT();
		ok = js_number_expr(c, s, path, out);
	}
	if (ok && (m & JS_T_STR))
	{
		ALT();
		ok = js_string_expr(c, s, path, out);
	}
	if (ok && (m & JS_T_ARR))
	{
		ALT();
		ok = js_array_expr(c, s, path, out);
	}
	if (ok && (m & JS_T_OBJ))
	{
		ALT();
		ok = js_object_expr(c, s, path, out);
	}
#undef ALT
	if (ok && out->len == 0)
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value (empty \"type\")", path);
	return ok;
}

/* True when a schema plainly accepts nothing: false, no type left, a required name whose schema is false. */
/* True unless t (a "type" value, or NULL) names a type JSON Schema does not have. */
static bool
js_type_names_known(const lg_json_node *t)
{
	static const char *const known[] = {"null", "boolean", "object", "array", "number", "string", "integer"};

	if (t == NULL)
		return true;
	for (size_t i = 0; i < (t->kind == LG_JSON_ARRAY ? t->n : 1); i++)
	{
		const lg_json_node *n = t->kind == LG_JSON_ARRAY ? t->items[i] : t;
		bool		found = false;

		if (n->kind != LG_JSON_STRING)
			return false;
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]) && !found; k++)
			found = strcmp(n->str, known[k]) == 0;
		if (!found)
			return false;
	}
	return true;
}

bool
js_obviously_empty(const lg_json_node *s)
{
	const lg_json_node *props, *req;

	if (s == NULL)
		return false;
	if (s->kind == LG_JSON_BOOL)
		return !s->boolean;
	if (s->kind != LG_JSON_OBJECT)
		return false;
	/* an unknown type name is an invalid schema, to be reported where it is, not skipped */
	if (!js_type_names_known(lg_json_get(s, "type")))
		return false;
	props = lg_json_get(s, "properties");
	req = js_required(s);
	if (js_norm(s) != s || js_types(s) == 0)
		return true;
	for (size_t i = 0; props && props->kind == LG_JSON_OBJECT && i < props->n; i++)
		if (js_norm(props->items[i])->kind == LG_JSON_BOOL && !js_norm(props->items[i])->boolean && js_req_has(req, props->keys[i]))
			return true;
	return false;
}

#define JS_MAX_DEPS 6			/* dependencies turned into alternatives; more stay in js_object_expr */

/*
 * dependencies / dependentRequired / dependentSchemas: "if a is present,
 * then B" is anyOf [a absent, B holds (with a present)].  A required
 * trigger makes B unconditional; B already required is no constraint.
 * The alternatives of several dependencies multiply (allOf of anyOfs);
 * beyond JS_MAX_DEPS js_object_expr's cruder rule (never write the
 * trigger) applies.  Returns s itself when there is nothing to rewrite.
 */
static const lg_json_node *
js_rewrite_deps(js_ctx *c, const lg_json_node *s, const char *path)
{
	static const char *const kws[] = {"dependencies", "dependentRequired", "dependentSchemas"};
	const lg_json_node *req = js_required(s);
	const lg_json_node *alts[JS_MAX_DEPS];
	const lg_json_node *uncond[3 * JS_MAX_DEPS + 1];
	size_t		na = 0, nu = 0, total = 0;

	for (int k = 0; k < 3; k++)
	{
		const lg_json_node *d = lg_json_get(s, kws[k]);

		for (size_t i = 0; d && d->kind == LG_JSON_OBJECT && i < d->n; i++)
			total++;
	}
	if (total > JS_MAX_DEPS && (lg_json_get(s, "dependentRequired") || lg_json_get(s, "dependentSchemas")))
		return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"dependentRequired\" at %s: more than %d dependencies", path, JS_MAX_DEPS), NULL;
	if (total == 0 || total > JS_MAX_DEPS)
		return s;
	for (int k = 0; k < 3; k++)
	{
		const lg_json_node *d = lg_json_get(s, kws[k]);

		if (d && d->kind != LG_JSON_OBJECT)
			return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not an object", kws[k], path), NULL;
		for (size_t i = 0; d && i < d->n; i++)
		{
			const lg_json_node *dv = d->items[i];
			const char *a = d->keys[i];
			lg_json_node *then;

			if (dv->kind == LG_JSON_ARRAY)
			{
				bool		all = true;

				for (size_t j = 0; j < dv->n; j++)
				{
					if (dv->items[j]->kind != LG_JSON_STRING)
						return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s holds a non-string", kws[k], path), NULL;
					all &= js_req_has(req, dv->items[j]->str);
				}
				if (all)
					continue;
				if ((then = js_node_new(c, LG_JSON_OBJECT, 1)) == NULL)
					return NULL;
				then->keys[0] = (char *) "required";
				then->key_lens[0] = 8;
				then->items[0] = (lg_json_node *) dv;
			}
			else if (dv->kind == LG_JSON_OBJECT || dv->kind == LG_JSON_BOOL)
			{
				if (js_trivial(dv))
					continue;
				then = (lg_json_node *) dv;
			}
			else
				return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s: \"%s\" is not an array or schema", kws[k], path, a), NULL;
			if (js_req_has(req, a))
			{
				uncond[nu++] = then;
				continue;
			}
			{
				/* {"anyOf": [{"properties": {a: false}}, then]} */
				lg_json_node *props = js_node_new(c, LG_JSON_OBJECT, 1);
				lg_json_node *absent = js_node_new(c, LG_JSON_OBJECT, 1);
				lg_json_node *list = js_node_new(c, LG_JSON_ARRAY, 2);
				lg_json_node *any = js_node_new(c, LG_JSON_OBJECT, 1);

				if (any == NULL || list == NULL || absent == NULL || props == NULL)
					return NULL;
				props->keys[0] = (char *) a;
				props->key_lens[0] = strlen(a);
				props->items[0] = (lg_json_node *) &js_false_node;
				absent->keys[0] = (char *) "properties";
				absent->key_lens[0] = 10;
				absent->items[0] = props;
				list->items[0] = absent;
				list->items[1] = then;
				any->keys[0] = (char *) "anyOf";
				any->key_lens[0] = 5;
				any->items[0] = list;
				alts[na++] = any;
			}
		}
	}
	{
		const char *drop[3] = {kws[0], kws[1], kws[2]};
		const lg_json_node *parts[1 + 4 * JS_MAX_DEPS];
		size_t		np = 0;

		parts[np++] = js_without(c, s, drop, 3);
		if (parts[0] == NULL)
			return NULL;
		for (size_t i = 0; i < nu; i++)
			parts[np++] = uncond[i];
		for (size_t i = 0; i < na; i++)
			parts[np++] = alts[i];
		return js_merge(c, parts, np, path);
	}
}

/* A one-member object {key: v}. */
static lg_json_node *
js_obj1(js_ctx *c, const char *key, const lg_json_node *v)
{
	lg_json_node *o = js_node_new(c, LG_JSON_OBJECT, 1);

	if (o)
	{
		o->keys[0] = (char *) key;
		o->key_lens[0] = strlen(key);
		o->items[0] = (lg_json_node *) v;
	}
	return o;
}

/*
 * "not" as a positive schema, for the forms that have one: not a type
 * (the other types), not required (one of the names absent), not anyOf
 * (none of them), not allOf (one of them fails).  Others: unsupported.
 */
static const lg_json_node *
js_not(js_ctx *c, const lg_json_node *n, const char *path, int depth)
{
	const char *only = NULL;
	size_t		nv = 0;

	n = n ? js_deref(c, n, path) : NULL;
	if (n == NULL || depth > 8)
		return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"not\" at %s", path), NULL;
	if (n->kind == LG_JSON_BOOL)
		return n->boolean ? &js_false_node : &js_true_node;
	if (n->kind != LG_JSON_OBJECT)
		return js_fail(c, LG_ERR_FORMAT, "\"not\" at %s is not a schema", path), NULL;
	for (size_t i = 0; i < n->n; i++)
		if (!js_is_annotation(n->keys[i]))
		{
			only = n->keys[i];
			nv++;
		}
	if (nv == 0)
		return &js_false_node;
	if (nv == 1 && strcmp(only, "type") == 0)
	{
		unsigned	m = js_types(n);
		unsigned	rest = JS_T_ALL & ~m;
		static const char *const names[] = {"null", "boolean", "integer", "number", "string", "array", "object"};
		lg_json_node *arr;
		size_t		k = 0;

		if ((m & JS_T_INT) && !(m & JS_T_NUM))
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"not\" at %s: not integer", path), NULL;
		if (rest & JS_T_NUM)
			rest &= ~JS_T_INT;
		if ((arr = js_node_new(c, LG_JSON_ARRAY, 7)) == NULL)
			return NULL;
		for (int i = 0; i < 7; i++)
			if (rest & (1u << i))
			{
				lg_json_node *t = js_node_new(c, LG_JSON_STRING, 0);

				if (t == NULL)
					return NULL;
				t->str = (char *) names[i];
				t->str_len = strlen(names[i]);
				arr->items[k++] = t;
			}
		arr->n = k;
		if (k == 0)
			return &js_false_node;
		return js_obj1(c, "type", arr);
	}
	if (nv == 1 && strcmp(only, "required") == 0)
	{
		const lg_json_node *r = lg_json_get(n, "required");
		lg_json_node *list;

		if (r->kind != LG_JSON_ARRAY)
			return js_fail(c, LG_ERR_FORMAT, "\"required\" at %s is not an array", path), NULL;
		if (r->n == 0)
			return &js_false_node;
		if ((list = js_node_new(c, LG_JSON_ARRAY, r->n)) == NULL)
			return NULL;
		for (size_t i = 0; i < r->n; i++)
		{
			lg_json_node *props;

			if (r->items[i]->kind != LG_JSON_STRING)
				return js_fail(c, LG_ERR_FORMAT, "\"required\" at %s holds a non-string", path), NULL;
			props = js_obj1(c, r->items[i]->str, &js_false_node);
			if (props == NULL || (list->items[i] = js_obj1(c, "properties", props)) == NULL)
				return NULL;
		}
		return js_obj1(c, "anyOf", list);
	}
	if (nv == 1 && (strcmp(only, "anyOf") == 0 || strcmp(only, "allOf") == 0))
	{
		const lg_json_node *l = lg_json_get(n, only);
		lg_json_node *list;

		if (l->kind != LG_JSON_ARRAY || l->n == 0)
			return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not a non-empty array", only, path), NULL;
		if ((list = js_node_new(c, LG_JSON_ARRAY, l->n)) == NULL)
			return NULL;
		for (size_t i = 0; i < l->n; i++)
			if ((list->items[i] = (lg_json_node *) js_not(c, l->items[i], path, depth + 1)) == NULL)
				return NULL;
		return js_obj1(c, strcmp(only, "anyOf") == 0 ? "allOf" : "anyOf", list);
	}
	return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"not\" at %s", path), NULL;
}

/* The body of a schema node's rule. */
static bool
js_schema_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	if (s->kind == LG_JSON_BOOL)
	{
		if (!s->boolean)
			return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value (false)", path);
		lg_buf_append(out, js_prim(c, JS_P_VALUE), strlen(js_prim(c, JS_P_VALUE)));
		return true;
	}
	if (s->kind != LG_JSON_OBJECT)
		return js_fail(c, LG_ERR_FORMAT, "schema at %s is not an object or boolean", path);
	if (js_norm(s) != s)
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value (not {})", path);
	if (!js_check_unsupported(c, s, path))
		return false;
	if (lg_json_get(s, "$ref"))
	{
		const lg_json_node *target = js_resolve_ref(c, s, path);
		const char *name;

		if (target == NULL)
			return false;
		if (js_has_constraints(s, "$ref") && c->ref_siblings)
		{
			const char *drop[1] = {"$ref"};
			const lg_json_node *parts[2] = {target, js_without(c, s, drop, 1)};
			const lg_json_node *m = parts[1] ? js_merge(c, parts, 2, path) : NULL;

			name = m ? js_visit(c, m, path) : NULL;
		}
		else
		{
			const char *ref = lg_json_get_str(s, "$ref");
			char	   *rp = strdup(ref[0] == '#' ? ref : path);

			if (rp == NULL)
				return js_oom(c);
			js_pct_decode(rp);
			name = js_visit(c, target, rp);
			free(rp);
		}
		if (name == NULL)
			return false;
		return lg_buf_append(out, name, strlen(name)) || js_oom(c);
	}
	if (lg_json_get(s, "allOf"))
	{
		const lg_json_node *parts[1] = {s};
		const lg_json_node *m = js_merge(c, parts, 1, path);
		const char *name = m ? js_visit(c, m, path) : NULL;

		if (name == NULL)
			return false;
		return lg_buf_append(out, name, strlen(name)) || js_oom(c);
	}
	if (lg_json_get(s, "not"))
	{
		const char *drop[1] = {"not"};
		const lg_json_node *parts[2];
		const lg_json_node *m;
		const char *name;
		char	   *np = js_path(path, "not");

		if (np == NULL)
			return js_oom(c);
		parts[0] = js_without(c, s, drop, 1);
		parts[1] = parts[0] ? js_not(c, lg_json_get(s, "not"), np, 0) : NULL;
		free(np);
		if (parts[1] == NULL)
			return false;
		m = js_merge(c, parts, 2, path);
		name = m ? js_visit(c, m, path) : NULL;
		return name && (lg_buf_append(out, name, strlen(name)) || js_oom(c));
	}
	if (lg_json_get(s, "dependencies") || lg_json_get(s, "dependentRequired") || lg_json_get(s, "dependentSchemas"))
	{
		const lg_json_node *r = js_rewrite_deps(c, s, path);

		if (r == NULL)
			return false;
		if (r != s)
		{
			const char *name = js_visit(c, r, path);

			return name && (lg_buf_append(out, name, strlen(name)) || js_oom(c));
		}
	}
	if (lg_json_get(s, "anyOf"))
		return js_alternatives(c, s, "anyOf", path, out);
	if (lg_json_get(s, "oneOf"))
		return js_alternatives(c, s, "oneOf", path, out);
	if (lg_json_get(s, "const") || lg_json_get(s, "enum"))
		return js_enum_expr(c, s, path, out);
	return js_typed_expr(c, s, path, out);
}

/* A hint for a node's rule name: the last meaningful segment of its path. */
static void
js_hint(const char *path, char *hint, size_t cap)
{
	const char *last = strrchr(path, '/');
	const char *seg = last ? last + 1 : "root";

	if (last && last > path)
	{
		/* for .../anyOf/2 or .../items, prefer the owner's name too */
		const char *prev = last - 1;

		while (prev > path && *prev != '/')
			prev--;
		if (*prev == '/')
			prev++;
		if ((*seg >= '0' && *seg <= '9') || strcmp(seg, "items") == 0 || strcmp(seg, "additionalProperties") == 0)
		{
			snprintf(hint, cap, "%.*s-%s", (int) (last - prev), prev, seg);
			return;
		}
	}
	snprintf(hint, cap, "%s", *seg ? seg : "root");
}

/*
 * The rule for schema node s: memoised by node, reserved before its body
 * is built so that recursion finds the name.  A $ref back to a node under
 * construction with no object or array opened in between would be left
 * recursion (a grammar that never consumes input): refused.
 */
const char *
js_visit(js_ctx *c, const lg_json_node *s, const char *path)
{
	js_memo    *m;
	const char *name;
	char		hint[64];
	lg_buf		body;
	bool		ok;

	if (c->st != LG_OK || s == NULL)
		return NULL;
	if (c->cap_memo)
	{
		m = js_memo_slot(c, s);
		if (m->node == s)
		{
			if (m->busy && m->nest == c->nest)
				return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported recursion at %s: a $ref that consumes no input", path), NULL;
			return m->name;
		}
	}
	if (c->depth >= JS_MAX_DEPTH)
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s is nested too deeply", path), NULL;
	js_hint(path, hint, sizeof(hint));
	name = js_rule_reserve(c, hint, true);
	if (name == NULL || (m = js_memo_put(c, s, name)) == NULL)
		return NULL;
	m->busy = true;
	m->nest = c->nest;
	c->depth++;
	lg_buf_init(&body);
	ok = js_schema_expr(c, s, path, &body) && body.data != NULL;
	c->depth--;
	/* the table may have grown while compiling the body */
	m = js_memo_slot(c, s);
	m->busy = false;
	if (ok)
		ok = js_rule_define(c, name, body.data);
	else if (c->st == LG_OK)
		js_oom(c);
	lg_buf_free(&body);
	return ok ? name : NULL;
}

/* Free everything the context owns. */
static void
js_ctx_free(js_ctx *c)
{
	for (size_t i = 0; i < c->n_rules; i++)
	{
		free(c->rules[i].name);
		free(c->rules[i].body);
	}
	free(c->rules);
	free(c->memo);
	for (size_t i = 0; i < c->n_owned; i++)
	{
		free(c->owned[i]->items);
		free(c->owned[i]->keys);
		free(c->owned[i]->key_lens);
		free(c->owned[i]);
	}
	free(c->owned);
}

lg_status
lg_json_schema_to_gbnf(const char *schema, size_t len, const lg_json_schema_opts *o,
					   lg_buf *out, lg_error *err)
{
	js_ctx		c;
	lg_json_node *root;
	const char *rootname, *name;
	lg_status	st;

	if (schema == NULL || out == NULL)
		return lg_error_set(err, LG_ERR_ARG, "lg_json_schema_to_gbnf: NULL argument");
	root = lg_json_parse(schema, len, err);
	if (root == NULL)
	{
		if (err && err->status == LG_ERR_FORMAT)
		{
			char		msg[LG_ERROR_MSG_LEN];

			snprintf(msg, sizeof(msg), "%s", err->msg);
			lg_error_set(err, LG_ERR_FORMAT, "JSON schema is not valid JSON: %s", msg);
		}
		return err ? err->status : LG_ERR_FORMAT;
	}
	memset(&c, 0, sizeof(c));
	c.root = root;
	c.err = err;
	c.compact = o && o->compact;
	c.strict_additional = o && o->strict_additional;
	c.prefix = o && o->rule_prefix ? o->rule_prefix : "";
	/* before 2019-09 the siblings of "$ref" are ignored (draft 7 §8.3); no $schema reads as draft 7 */
	{
		const char *sv = lg_json_get_str(root, "$schema");

		c.ref_siblings = sv && (strstr(sv, "2019-09") || strstr(sv, "2020-12"));
	}
	for (const char *p = c.prefix; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'))
		{
			lg_json_node_free(root);
			return lg_error_set(err, LG_ERR_ARG, "rule prefix \"%s\" has characters other than letters, digits and '-'", c.prefix);
		}
	/* primitive names and "root" are taken before any schema rule is named */
	for (int i = 0; i < 12; i++)
		js_rule_reserve(&c, js_prim_names[i], false);
	name = js_visit(&c, root, "#");
	rootname = name;
	if (c.st == LG_OK)
	{
		size_t		mark = out->len;
		bool		ok = true;

		/* root first, then the rules in the order they were named */
		for (int pass = 0; pass < 2; pass++)
			for (size_t i = 12; i < c.n_rules; i++)
			{
				if ((pass == 0) != (c.rules[i].name == rootname) || c.rules[i].body == NULL)
					continue;
				ok &= lg_buf_appendf(out, "%s ::= %s\n", c.rules[i].name, c.rules[i].body);
			}
		ok &= js_emit_prims(&c, out);
		if (!ok)
		{
			out->len = mark;
			if (out->data)
				out->data[mark] = '\0';
			js_oom(&c);
		}
	}
	st = c.st;
	js_ctx_free(&c);
	lg_json_node_free(root);
	if (st == LG_OK)
		lg_error_clear(err);
	return st;
}
