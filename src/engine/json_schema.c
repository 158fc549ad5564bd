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
#include "json_schema_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JS_MAX_DEPTH 200

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
	if (p == JS_P_VALUE)
		c->prims |= JS_P_OBJECT | JS_P_ARRAY | JS_P_STRING | JS_P_NUMBER | JS_P_BOOLEAN | JS_P_NULL;
	if (p & (JS_P_VALUE | JS_P_OBJECT | JS_P_ARRAY))
		c->prims |= JS_P_STRING | JS_P_VALUE | JS_P_OBJECT | JS_P_ARRAY | JS_P_NUMBER | JS_P_BOOLEAN | JS_P_NULL;
	/* what value/object/array pulled in needs its own helpers too */
	if (c->prims & JS_P_STRING)
		c->prims |= JS_P_CHAR;
	if (c->prims & (JS_P_NUMBER | JS_P_INTEGER))
		c->prims |= JS_P_DIGITS;
	if ((c->prims & (JS_P_OBJECT | JS_P_ARRAY)) && !c->compact)
		c->prims |= JS_P_WS;
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

	snprintf(w, sizeof(w), "%s", c->compact ? "" : js_ws(c));
	u = c->prims;

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
static bool
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

/* Keywords we recognise but cannot enforce: an error unless trivially satisfied. */
static bool
js_check_unsupported(js_ctx *c, const lg_json_node *s, const char *path)
{
	static const char *const never[] = {
		"not", "dependentSchemas", "contains", "propertyNames", "unevaluatedProperties",
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
		if (strcmp(k, "dependentRequired") == 0 && v->kind == LG_JSON_OBJECT && v->n > 0)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"%s\" at %s", k, path);
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
		static const char *const obj[] = {"properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties", "dependencies", NULL};
		static const char *const arr[] = {"items", "prefixItems", "additionalItems", "minItems", "maxItems", NULL};
		static const char *const str[] = {"minLength", "maxLength", "pattern", "format", NULL};
		static const char *const num[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", NULL};

		for (int i = 0; obj[i]; i++)
			if (lg_json_get(s, obj[i]))
				m |= JS_T_OBJ;
		for (int i = 0; arr[i]; i++)
			if (lg_json_get(s, arr[i]))
				m |= JS_T_ARR;
		for (int i = 0; str[i]; i++)
			if (lg_json_get(s, str[i]))
				m |= JS_T_STR;
		for (int i = 0; num[i]; i++)
			if (lg_json_get(s, num[i]))
				m |= JS_T_NUM | JS_T_INT;
		if (m == 0)
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

		for (size_t k = 0; k < s->n; k++)
			if (strcmp(s->keys[k], "$ref") != 0 && !js_is_annotation(s->keys[k]))
				siblings = true;
		if (siblings)
			return s;
		s = js_resolve_ref(c, s, path);
	}
	return s;
}

/* ---- combinators ---- */

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

/* The const/enum values a property is restricted to, as (array, n) or NULL. */
static bool
js_prop_values(js_ctx *c, const lg_json_node *s, const char *name, const lg_json_node **vals, size_t *n)
{
	const lg_json_node *props = lg_json_get(s, "properties");
	const lg_json_node *p = props ? lg_json_get(props, name) : NULL;
	const lg_json_node *e;

	p = p ? js_deref(c, p, "#") : NULL;
	if (p == NULL || p->kind != LG_JSON_OBJECT)
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
	return false;
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

/* Both object schemas require a property whose const/enum sets do not meet. */
static bool
js_discriminated(js_ctx *c, const lg_json_node *a, const lg_json_node *b)
{
	const lg_json_node *ra = js_required(a), *rb = js_required(b);

	for (size_t i = 0; ra && i < ra->n; i++)
	{
		const lg_json_node *va, *vb;
		size_t		na, nb;
		const char *k = ra->items[i]->kind == LG_JSON_STRING ? ra->items[i]->str : NULL;

		if (k && js_req_has(rb, k) && js_prop_values(c, a, k, &va, &na) &&
			js_prop_values(c, b, k, &vb, &nb) && js_vals_disjoint(va, na, vb, nb))
			return true;
	}
	return false;
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
js_oneof_disjoint(js_ctx *c, const lg_json_node **br, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
	{
		for (size_t j = i + 1; j < n; j++)
		{
			const lg_json_node *a = br[i], *b = br[j];
			unsigned	ta = js_types(a), tb = js_types(b);
			unsigned	common = ta & tb;
			const lg_json_node *va, *vb;
			const char *k;

			if (common == 0)
				continue;
			if (a->kind == LG_JSON_OBJECT && b->kind == LG_JSON_OBJECT)
			{
				size_t		na, nb;

				va = lg_json_get(a, "const") ? lg_json_get(a, "const") : lg_json_get(a, "enum");
				vb = lg_json_get(b, "const") ? lg_json_get(b, "const") : lg_json_get(b, "enum");
				if (va && vb)
				{
					na = lg_json_get(a, "const") ? 1 : va->kind == LG_JSON_ARRAY ? va->n : 0;
					nb = lg_json_get(b, "const") ? 1 : vb->kind == LG_JSON_ARRAY ? vb->n : 0;
					if (js_vals_disjoint(va, na, vb, nb))
						continue;
				}
				if (common == JS_T_OBJ && js_discriminated(c, a, b))
					continue;
				if (common == JS_T_OBJ)
				{
					lg_json_node *props = js_node_new(c, LG_JSON_OBJECT, 1);
					lg_json_node *forbid;
					const lg_json_node *parts[2];
					size_t		victim;

					if ((k = js_distinct_required(a, b)) != NULL)
						victim = i;
					else if ((k = js_distinct_required(b, a)) != NULL)
						victim = j;
					else
						goto overlap;
					if (props == NULL || (forbid = js_node_new(c, LG_JSON_OBJECT, 1)) == NULL)
						return false;
					props->keys[0] = (char *) k;
					props->key_lens[0] = strlen(k);
					props->items[0] = (lg_json_node *) &js_false_node;
					forbid->keys[0] = (char *) "properties";
					forbid->key_lens[0] = 10;
					forbid->items[0] = props;
					parts[0] = br[victim];
					parts[1] = forbid;
					if ((br[victim] = js_merge(c, parts, 2, path)) == NULL)
						return false;
					continue;
				}
			}
	overlap:
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
		ok = js_oneof_disjoint(c, br, list->n, path);
	for (size_t i = 0; i < list->n && ok; i++)
	{
		char	   *bp = js_path_i(path, kw, i);
		const char *name;

		/* a branch that accepts nothing (false) is left out, not an error */
		if (br[i]->kind == LG_JSON_BOOL && !br[i]->boolean)
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
	if (!js_check_unsupported(c, s, path))
		return false;
	if (lg_json_get(s, "$ref"))
	{
		const lg_json_node *target = js_resolve_ref(c, s, path);
		const char *name;

		if (target == NULL)
			return false;
		if (js_has_constraints(s, "$ref"))
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
