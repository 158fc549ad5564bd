/*
 * json_schema_object.c — objects and arrays.
 *
 * An object is a sequence over its "properties" in schema order, each
 * present (required) or optional, then any additional or pattern-named
 * members.  The grammar tracks how many members were written, so commas
 * come out right and min/maxProperties can be enforced: state (i, k) is
 * "property i next, k members so far".  Additional names exclude the
 * declared ones (a duplicate key would let a later value override a
 * checked one).
 */
#include "json_schema_impl.h"
#include "regex_gbnf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JS_MAX_COUNT 64
#define JS_NAME_DEPTH_PER_RULE 48	/* code points of a name's exclusion one rule nests */
#define JS_NAME_MAX 1024		/* longer declared names: no additional members (a subset) */
#define JS_ESC_SYM 0x200000		/* a name's \" or \\ escape, as one trie symbol */			/* min/maxProperties and counted states beyond this: refused */

/* One member the sequence may write. */
typedef struct js_item
{
	const char *name;
	const lg_json_node *schema;
	bool		required;
	bool		forbidden;
	const char *kv;				/* rule: "name" : value */
} js_item;

typedef struct js_seq
{
	js_ctx	   *c;
	js_item    *items;
	size_t		n;
	const char *extra;			/* expression for one additional member, or NULL */
	long		lo, hi;			/* member count bounds; hi -1 = none */
	long		sat;			/* counts saturate here */
	char	  **memo;			/* (i, k) → expression (a rule name or inline text), "" = impossible marker NULL */
	bool	   *done;
	const char *hint;
} js_seq;

/* Decode one UTF-8 code point (input is valid UTF-8: it came through the JSON parser). */
static uint32_t
js_utf8(const char *s, size_t *i)
{
	const unsigned char *u = (const unsigned char *) s + *i;
	uint32_t	cp;
	int			n;

	if (u[0] < 0x80)
		cp = u[0], n = 1;
	else if ((u[0] & 0xE0) == 0xC0)
		cp = u[0] & 0x1F, n = 2;
	else if ((u[0] & 0xF0) == 0xE0)
		cp = u[0] & 0x0F, n = 3;
	else
		cp = u[0] & 0x07, n = 4;
	for (int k = 1; k < n; k++)
		cp = (cp << 6) | (u[k] & 0x3F);
	*i += n;
	return cp;
}

/* A code point inside a GBNF character class. */
static void
js_class_cp(lg_buf *b, uint32_t cp)
{
	if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9'))
		lg_buf_appendf(b, "%c", (char) cp);
	else if (cp < 0x80)
		lg_buf_appendf(b, "\\x%02X", cp);
	else if (cp < 0x10000)
		lg_buf_appendf(b, "\\u%04X", cp);
	else
		lg_buf_appendf(b, "\\U%08X", cp);
}

typedef struct js_name
{
	uint32_t   *cp;
	size_t		n;
	bool		prefix;			/* every string starting with it is excluded */
} js_name;

/* Alternatives for a key that differs from every name in names[0..n) sharing the first d code points. */
static void
js_not_names(js_ctx *c, js_name *names, size_t n, size_t d, const char *kchar, lg_buf *b)
{
	uint32_t   *firsts = malloc((n + 1) * sizeof(uint32_t));
	size_t		nf = 0;
	int			alts = 0;

	if (firsts == NULL)
	{
		js_oom(c);
		return;
	}
	lg_buf_append(b, "( ", 2);
	for (size_t i = 0; i < n; i++)
	{
		bool		seen = false;
		uint32_t	ch;

		if (names[i].n <= d)
			continue;
		ch = names[i].cp[d];
		for (size_t j = 0; j < nf && !seen; j++)
			seen = firsts[j] == ch;
		if (seen)
			continue;
		firsts[nf++] = ch;
		{
			/* the names continuing with ch */
			js_name    *sub = malloc(n * sizeof(js_name));
			size_t		ns = 0;
			bool		ends = false, longer = false, cut = false;

			if (sub == NULL)
			{
				js_oom(c);
				break;
			}
			for (size_t j = 0; j < n; j++)
				if (names[j].n > d && names[j].cp[d] == ch)
				{
					sub[ns++] = names[j];
					if (names[j].n == d + 1)
						ends = true;
					else
						longer = true;
				}
			/* a prefix ends here: nothing continuing with ch is allowed */
			for (size_t j = 0; j < ns; j++)
				if (sub[j].prefix && sub[j].n == d + 1)
					cut = true;
			if (!cut)
			{
				if (alts++)
					lg_buf_append(b, " | ", 3);
				if (ch >= JS_ESC_SYM)
					lg_buf_append(b, ch == JS_ESC_SYM + '"' ? "\"\\\\\\\"\" " : "\"\\\\\\\\\" ", 7);
				else
				{
					lg_buf_append(b, "[", 1);
					js_class_cp(b, ch);
					lg_buf_append(b, "] ", 2);
				}
				if (longer && (d + 1) % JS_NAME_DEPTH_PER_RULE == 0)
				{
					/*
					 * a long name: continue in a rule of its own, so no
					 * rule nests deeper than the GBNF parser allows
					 */
					lg_buf		sb;
					const char *r = NULL;

					lg_buf_init(&sb);
					js_not_names(c, sub, ns, d + 1, kchar, &sb);
					if (sb.data)
						r = js_rule_add(c, "key-tail", sb.data);
					else
						js_oom(c);
					lg_buf_free(&sb);
					if (r)
						lg_buf_appendf(b, "%s%s", r, ends ? "" : "?");
				}
				else if (longer)
				{
					js_not_names(c, sub, ns, d + 1, kchar, b);
					if (!ends)
						lg_buf_append(b, "?", 1);
				}
				else
					lg_buf_appendf(b, "%s+", kchar);
			}
			free(sub);
		}
	}
	if (alts > 0)
		lg_buf_append(b, " | ", 3);
	lg_buf_append(b, "[^", 2);
	for (size_t j = 0; j < nf; j++)
		if (firsts[j] < JS_ESC_SYM)
			js_class_cp(b, firsts[j]);
	/* an escape other than those the names continue with */
	{
		bool		q = false, bs = false;

		for (size_t j = 0; j < nf; j++)
		{
			q |= firsts[j] == JS_ESC_SYM + '"';
			bs |= firsts[j] == JS_ESC_SYM + '\\';
		}
		lg_buf_appendf(b, "\\x22\\x5C\\x00-\\x1F] %s* | \"\\\\\" ( [%s%sbfnrt] | \"u00\" [01] [0-9a-fA-F] ) %s* )",
					   kchar, q ? "" : "\"", bs ? "" : "\\\\", kchar);
	}
	free(firsts);
}

/*
 * The rule for an additional member's name: any string but the declared
 * names.  NULL (no additional members) when a name holds characters JSON
 * escapes, since another escape could spell the same name.
 */
static const char *
js_other_key(js_ctx *c, js_item *items, size_t n, const char *prefix, const char *hint)
{
	js_name    *names = calloc(n + 2, sizeof(js_name));
	lg_buf		b;
	const char *kchar, *rule = NULL;
	bool		empty = false, plain = true;
	char		h[80];

	if (names == NULL)
		return js_oom(c), NULL;
	for (size_t i = 0; i < n && plain; i++)
	{
		size_t		len = strlen(items[i].name), k = 0;

		names[i].cp = malloc((len + 1) * sizeof(uint32_t));
		if (names[i].cp == NULL)
		{
			plain = false;
			js_oom(c);
			break;
		}
		for (size_t p = 0; p < len;)
		{
			uint32_t	cp = js_utf8(items[i].name, &p);

			/* " and \ have one escape each (kchar writes no \u0022): a symbol of their own */
			if (cp < 0x20)
				plain = false;
			names[i].cp[k++] = cp == '"' || cp == '\\' ? JS_ESC_SYM + cp : cp;
		}
		names[i].n = k;
		if (k == 0)
			empty = true;
		/* excluding a very long name would recurse once per code point */
		if (k > JS_NAME_MAX)
			plain = false;
	}
	if (prefix && plain)
	{
		/* names starting with the prefix (a pattern's) are excluded too */
		size_t		len = strlen(prefix), k = 0;

		names[n].cp = malloc((len + 1) * sizeof(uint32_t));
		if (names[n].cp == NULL)
			plain = false;
		for (size_t p = 0; plain && p < len;)
		{
			uint32_t	cp = js_utf8(prefix, &p);

			if (cp < 0x20)
				plain = false;
			names[n].cp[k++] = cp == '"' || cp == '\\' ? JS_ESC_SYM + cp : cp;
		}
		names[n].n = k;
		names[n].prefix = true;
		if (k == 0)
			plain = false;		/* everything excluded */
		n++;
	}
	kchar = js_rule_add(c, "kchar", "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\bfnrt] | \"u00\" [01] [0-9a-fA-F] )");
	lg_buf_init(&b);
	if (plain && kchar)
	{
		lg_buf_append(&b, "\"\\\"\" ", 5);
		if (n == 0)
			lg_buf_appendf(&b, "%s*", kchar);
		else
		{
			js_not_names(c, names, n, 0, kchar, &b);
			if (!empty)
				lg_buf_append(&b, "?", 1);
		}
		lg_buf_append(&b, " \"\\\"\"", 5);
		snprintf(h, sizeof(h), "%s-key", hint);
		if (b.data)
			rule = js_rule_add(c, h, b.data);
		else
			js_oom(c);
	}
	lg_buf_free(&b);
	for (size_t i = 0; i < n; i++)
		free(names[i].cp);
	free(names);
	return rule;
}

/* The rule for `"name" : value`. */
static const char *
js_kv(js_ctx *c, const char *key_lit, const char *value_rule, const char *hint)
{
	lg_buf		b;
	const char *r;
	char		h[80];

	lg_buf_init(&b);
	lg_buf_appendf(&b, "%s %s\":\" %s%s %s", key_lit, js_ws(c), js_ws(c), value_rule, js_ws(c));
	snprintf(h, sizeof(h), "%s-kv", hint);
	r = b.data ? js_rule_add(c, h, b.data) : NULL;
	if (b.data == NULL)
		js_oom(c);
	lg_buf_free(&b);
	return r;
}

/*
 * Separator before a member/element: "" for the first.  Every member and
 * element carries its trailing whitespace, so "{" ws members "}" has one
 * parse whether or not there are members.
 */
static void
js_sep(js_ctx *c, lg_buf *b, bool first)
{
	if (!first)
		lg_buf_appendf(b, "\",\" %s", js_ws(c));
}

/* "{lo,hi}" as GBNF, with the short forms. */
static void
js_rep(lg_buf *b, long lo, long hi)
{
	if (hi < 0)
	{
		if (lo == 0)
			lg_buf_append(b, "*", 1);
		else if (lo == 1)
			lg_buf_append(b, "+", 1);
		else
			lg_buf_appendf(b, "{%ld,}", lo);
	}
	else if (lo == 0 && hi == 1)
		lg_buf_append(b, "?", 1);
	else if (lo == hi)
		lg_buf_appendf(b, "{%ld}", lo);
	else
		lg_buf_appendf(b, "{%ld,%ld}", lo, hi);
}

static const char *js_seq_state(js_seq *q, size_t i, long k);

/* The additional members after the declared ones, k written so far; NULL when impossible. */
static char *
js_seq_tail(js_seq *q, long k)
{
	js_ctx	   *c = q->c;
	lg_buf		b;
	long		lo = q->lo > k ? q->lo - k : 0;
	long		hi = q->hi < 0 ? -1 : q->hi - k;

	lg_buf_init(&b);
	lg_buf_append(&b, "", 0);
	if (q->extra == NULL || hi == 0)
	{
		if (lo > 0)
		{
			lg_buf_free(&b);
			return NULL;
		}
		return b.data;
	}
	if (k == 0)
	{
		/* first member has no comma: X (sep X){lo-1, hi-1}, optional when lo == 0 */
		long		l1 = lo > 0 ? lo - 1 : 0;

		if (lo == 0)
			lg_buf_append(&b, "( ", 2);
		lg_buf_appendf(&b, "%s", q->extra);
		if (hi != 1)
		{
			lg_buf_append(&b, " ( ", 3);
			js_sep(c, &b, false);
			lg_buf_appendf(&b, "%s )", q->extra);
			js_rep(&b, l1, hi < 0 ? -1 : hi - 1);
		}
		if (lo == 0)
			lg_buf_append(&b, " )?", 3);
	}
	else
	{
		lg_buf_append(&b, "( ", 2);
		js_sep(c, &b, false);
		lg_buf_appendf(&b, "%s )", q->extra);
		js_rep(&b, lo, hi);
	}
	return b.data;
}

/*
 * State (i, k): members i.. still to come, k written (saturated at sat).
 * Returns an expression (inline when there is one way on, else a rule
 * name), "" for nothing more, or NULL when no valid continuation exists.
 */
static const char *
js_seq_state(js_seq *q, size_t i, long k)
{
	js_ctx	   *c = q->c;
	size_t		slot = i * (size_t) (q->sat + 1) + (size_t) k;
	lg_buf		b;
	char	   *res;

	if (c->st != LG_OK)
		return NULL;
	if (q->done[slot])
		return q->memo[slot];
	q->done[slot] = true;
	if (i == q->n)
	{
		q->memo[slot] = js_seq_tail(q, k);
		return q->memo[slot];
	}
	{
		char	   *emit = NULL;
		const char *skip = NULL;

		if (q->hi < 0 || k < q->hi)
		{
			long		k2 = k + 1 > q->sat ? q->sat : k + 1;
			const char *next = js_seq_state(q, i + 1, k2);

			if (next)
			{
				lg_buf_init(&b);
				js_sep(c, &b, k == 0);
				lg_buf_appendf(&b, "%s%s%s", q->items[i].kv, *next ? " " : "", next);
				if (b.data == NULL)
					return js_oom(c), NULL;
				emit = b.data;
			}
		}
		if (!q->items[i].required)
			skip = js_seq_state(q, i + 1, k);
		if (c->st != LG_OK)
		{
			free(emit);
			return NULL;
		}
		if (emit == NULL || skip == NULL)
		{
			/* one way on: inline it */
			res = emit ? emit : skip ? strdup(skip) : NULL;
			q->memo[slot] = res;
			return res;
		}
		lg_buf_init(&b);
		if (*skip == '\0')
			lg_buf_appendf(&b, "( %s )?", emit);
		else
		{
			char		h[80];
			const char *r;

			lg_buf_appendf(&b, "%s | %s", emit, skip);
			snprintf(h, sizeof(h), "%s-%zu-%ld", q->hint, i, k);
			r = b.data ? js_rule_add(c, h, b.data) : NULL;
			lg_buf_free(&b);
			if (r)
				lg_buf_append(&b, r, strlen(r));
		}
		free(emit);
		if (b.data == NULL)
			return js_oom(c), NULL;
		q->memo[slot] = b.data;
		return b.data;
	}
}

/* True when pattern (ECMA) matches name; unknown (bad pattern) counts as a match. */
static bool
js_pattern_matches(const char *pattern, const char *name)
{
	bool		unknown = false;
	bool		m = lg_regex_search(pattern, name, &unknown);

	return m || unknown;
}

/* True when a and b have the same validation keywords with equal values. */
static bool
js_same_constraints(const lg_json_node *a, const lg_json_node *b)
{
	if (a->kind != LG_JSON_OBJECT || b->kind != LG_JSON_OBJECT)
		return lg_json_equal(a, b);
	for (int pass = 0; pass < 2; pass++)
	{
		const lg_json_node *x = pass ? b : a, *y = pass ? a : b;

		for (size_t i = 0; i < x->n; i++)
		{
			const lg_json_node *w;

			if (js_is_annotation(x->keys[i]))
				continue;
			w = lg_json_get(y, x->keys[i]);
			if (w == NULL || !lg_json_equal(w, x->items[i]))
				return false;
		}
	}
	return true;
}

/* Add item unless present; returns its index. */
static long
js_items_add(js_ctx *c, js_item **items, size_t *n, size_t *cap, const char *name, const lg_json_node *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*items)[i].name, name) == 0)
			return (long) i;
	if (*n == *cap)
	{
		size_t		nc = *cap ? 2 * *cap : 16;
		js_item    *p = realloc(*items, nc * sizeof(*p));

		if (p == NULL)
			return js_oom(c), -1;
		*items = p;
		*cap = nc;
	}
	memset(&(*items)[*n], 0, sizeof(js_item));
	(*items)[*n].name = name;
	(*items)[*n].schema = s;
	return (long) (*n)++;
}

bool
js_object_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	const lg_json_node *props = lg_json_get(s, "properties");
	const lg_json_node *req = lg_json_get(s, "required");
	const lg_json_node *ap = js_norm(lg_json_get(s, "additionalProperties"));
	const lg_json_node *pp = lg_json_get(s, "patternProperties");
	const lg_json_node *deps = lg_json_get(s, "dependencies");
	js_item    *items = NULL;
	size_t		n = 0, cap = 0;
	js_seq		q = {0};
	bool		ok = false;
	bool		extra_any;
	const lg_json_node *extra_schema = NULL;
	lg_buf		extra;
	lg_buf		other_key;
	const char *other_prefix = NULL;
	char	   *other_prefix_buf = NULL;
	char		hint[64];
	const char *last = strrchr(path, '/');

	snprintf(hint, sizeof(hint), "%s", last && last[1] ? last + 1 : "root");
	lg_buf_init(&extra);
	lg_buf_init(&other_key);
	if (props && props->kind != LG_JSON_OBJECT)
		return js_fail(c, LG_ERR_FORMAT, "\"properties\" at %s is not an object", path);
	if (req && req->kind != LG_JSON_ARRAY)
		return js_fail(c, LG_ERR_FORMAT, "\"required\" at %s is not an array", path);
	if (pp && pp->kind != LG_JSON_OBJECT)
		return js_fail(c, LG_ERR_FORMAT, "\"patternProperties\" at %s is not an object", path);
	if (ap && ap->kind != LG_JSON_BOOL && ap->kind != LG_JSON_OBJECT)
		return js_fail(c, LG_ERR_FORMAT, "\"additionalProperties\" at %s is not a schema", path);
	for (size_t i = 0; props && i < props->n; i++)
		if (js_items_add(c, &items, &n, &cap, props->keys[i], props->items[i]) < 0)
			goto done;
	/* a required name not declared gets the schema extra names would get */
	for (size_t i = 0; req && i < req->n; i++)
	{
		long		k;

		if (req->items[i]->kind != LG_JSON_STRING)
		{
			js_fail(c, LG_ERR_FORMAT, "\"required\" at %s holds a non-string", path);
			goto done;
		}
		k = js_items_add(c, &items, &n, &cap, req->items[i]->str, NULL);
		if (k < 0)
			goto done;
		items[k].required = true;
	}
	/* dependencies: a present name needs others (or a schema) */
	if (deps && deps->kind == LG_JSON_OBJECT)
	{
		for (size_t i = 0; i < deps->n; i++)
		{
			long		k = js_items_add(c, &items, &n, &cap, deps->keys[i], NULL);
			const lg_json_node *d = deps->items[i];

			if (k < 0)
				goto done;
			if (d->kind == LG_JSON_ARRAY && d->n == 0)
				continue;
			if (!items[k].required)
			{
				/* write the trigger never: a subset, always valid */
				items[k].forbidden = true;
				continue;
			}
			if (d->kind != LG_JSON_ARRAY)
			{
				js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"dependencies\" at %s: schema dependency of required \"%s\"", path, deps->keys[i]);
				goto done;
			}
			for (size_t j = 0; j < d->n; j++)
			{
				long		r;

				if (d->items[j]->kind != LG_JSON_STRING)
				{
					js_fail(c, LG_ERR_FORMAT, "\"dependencies\" at %s holds a non-string", path);
					goto done;
				}
				r = js_items_add(c, &items, &n, &cap, d->items[j]->str, NULL);
				if (r < 0)
					goto done;
				items[r].required = true;
			}
		}
	}
	else if (deps && deps->kind != LG_JSON_OBJECT)
	{
		js_fail(c, LG_ERR_FORMAT, "\"dependencies\" at %s is not an object", path);
		goto done;
	}
	/* extra members: additionalProperties (absent: allowed unless strict), patternProperties */
	extra_any = ap == NULL ? !c->strict_additional : !(ap->kind == LG_JSON_BOOL && !ap->boolean);
	if (ap && ap->kind == LG_JSON_OBJECT)
		extra_schema = ap;
	/*
	 * Names that patternProperties match must satisfy the pattern's schema, and
	 * any other name the additionalProperties schema.  A grammar cannot say
	 * "not matching this pattern", so with patterns only pattern-named extras
	 * are written (a subset).
	 */
	if (pp && pp->n > 0 && extra_any)
	{
		/*
		 * One pattern of a simple form has a complement we can write: other
		 * names are those it does not match (the declared names must all
		 * match it, so none is written twice).
		 */
		bool		all_match = pp->n == 1;

		for (size_t i = 0; i < n && all_match; i++)
			all_match = js_pattern_matches(pp->keys[0], items[i].name);
		lg_buf_init(&other_key);
		if (all_match)
		{
			lg_error	cerr;

			lg_buf_append(&other_key, "\"\\\"\" ", 5);
			if (lg_regex_complement_gbnf(pp->keys[0], strlen(pp->keys[0]), js_prim(c, JS_P_CHARL), &other_key, &cerr) == LG_OK)
				lg_buf_append(&other_key, " \"\\\"\"", 5);
			else
				lg_buf_free(&other_key);
		}
		if (other_key.data == NULL && pp->n == 1 && !all_match)
		{
			/* ^literal: not a declared name and not starting with it */
			lg_buf		lit;

			lg_buf_init(&lit);
			if (lg_regex_literal_prefix(pp->keys[0], strlen(pp->keys[0]), &lit) && lit.data && lit.len > 0)
				other_prefix = other_prefix_buf = lit.data;
			else
				lg_buf_free(&lit);
		}
		if (other_key.data == NULL && other_prefix == NULL)
		{
			/*
			 * No complement to write.  Other names may still be written when
			 * their value meets every pattern's schema and the
			 * additionalProperties one: whatever patterns such a name
			 * happens to match, the value is valid (a subset, never an
			 * invalid value).  Where the schemas do not merge, no other names.
			 */
			const lg_json_node **parts = calloc(pp->n + 1, sizeof(*parts));
			size_t		np = 0;
			lg_json_node *merged = NULL;

			if (parts == NULL)
			{
				js_oom(c);
				goto done;
			}
			for (size_t p = 0; p < pp->n; p++)
				parts[np++] = pp->items[p];
			if (extra_schema)
				parts[np++] = extra_schema;
			merged = js_merge(c, parts, np, path);
			free(parts);
			if (c->st == LG_ERR_NOMEM)
				goto done;
			if (c->st != LG_OK)
			{
				/* cannot merge (two patterns, say): the subset without other names */
				c->st = LG_OK;
				lg_error_clear(c->err);
				merged = NULL;
			}
			if (merged == NULL || js_obviously_empty(merged))
				extra_any = false;
			else
				extra_schema = merged;
		}
	}
	/* each declared name: its schema, with patternProperties and the extra schema applied */
	for (size_t i = 0; i < n; i++)
	{
		js_item    *it = &items[i];
		const lg_json_node *sch = it->schema;
		bool		matched = false;

		for (size_t p = 0; pp && p < pp->n; p++)
		{
			if (js_pattern_matches(pp->keys[p], it->name))
			{
				const lg_json_node *parts[2] = {sch ? sch : &js_true_node, pp->items[p]};

				matched = true;
				sch = js_merge(c, parts, 2, path);
				if (sch == NULL)
					goto done;
			}
		}
		if (it->schema == NULL && !matched)
		{
			/* not declared: the additionalProperties schema applies */
			if (ap && ap->kind == LG_JSON_BOOL && !ap->boolean)
				sch = &js_false_node;
			else
				sch = ap ? ap : &js_true_node;
		}
		sch = js_norm(sch);
		it->schema = sch;
		/* a property whose schema accepts nothing can only be absent */
		{
			char	   *p1 = js_path(path, "properties");
			char	   *p2 = p1 ? js_path(p1, it->name) : NULL;

			if (p2 == NULL || js_obviously_empty(js_deref(c, sch, p2)))
				it->forbidden = true;
			free(p1);
			free(p2);
			if (c->st != LG_OK)
				goto done;
		}
		if (it->forbidden && it->required)
		{
			js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value: required property \"%s\" is not allowed", path, it->name);
			goto done;
		}
	}
	/* the member rules, for the names that may be written */
	c->nest++;
	for (size_t i = 0; i < n; i++)
	{
		js_item    *it = &items[i];
		char	   *pp2;
		const char *vr;
		lg_buf		key;

		if (it->forbidden)
			continue;
		{
			char	   *pp3 = js_path(path, "properties");

			pp2 = pp3 ? js_path(pp3, it->name) : NULL;
			free(pp3);
		}
		if (pp2 == NULL)
		{
			js_oom(c);
			c->nest--;
			goto done;
		}
		vr = js_visit(c, it->schema, pp2);
		free(pp2);
		if (vr == NULL)
		{
			c->nest--;
			goto done;
		}
		lg_buf_init(&key);
		lg_buf_append(&key, "\"", 1);
		js_json_encode(&key, it->name, strlen(it->name));
		lg_buf_append(&key, "\"", 1);
		{
			lg_buf		lit;

			lg_buf_init(&lit);
			js_gbnf_lit(&lit, key.data, key.len);
			it->kv = lit.data ? js_kv(c, lit.data, vr, it->name) : NULL;
			lg_buf_free(&lit);
		}
		lg_buf_free(&key);
		if (it->kv == NULL)
		{
			c->nest--;
			goto done;
		}
	}
	/* one extra member: other-name : additional schema | pattern-name : pattern schema */
	if (extra_any)
	{
		const char *kr = other_key.data ? js_rule_add(c, "other-key", other_key.data) : js_other_key(c, items, n, other_prefix, hint);
		const char *vr;
		char	   *ap_path = js_path(path, "additionalProperties");

		vr = extra_schema && ap_path ? js_visit(c, extra_schema, ap_path) : js_prim(c, JS_P_VALUE);
		free(ap_path);
		if (c->st != LG_OK)
		{
			c->nest--;
			goto done;
		}
		if (kr && vr)
			lg_buf_appendf(&extra, "%s %s\":\" %s%s %s", kr, js_ws(c), js_ws(c), vr, js_ws(c));
	}
	for (size_t p = 0; pp && p < pp->n; p++)
	{
		char	   *pp2 = js_path(path, "patternProperties");
		char	   *pp3 = pp2 ? js_path(pp2, pp->keys[p]) : NULL;
		const char *vr;
		lg_buf		kre;
		lg_error	rerr;
		lg_status	st;
		const char *kchar;

		free(pp2);
		if (pp3 == NULL)
		{
			js_oom(c);
			c->nest--;
			goto done;
		}
		if (js_norm(pp->items[p])->kind == LG_JSON_BOOL && !js_norm(pp->items[p])->boolean)
		{
			free(pp3);
			continue;
		}
		vr = js_visit(c, pp->items[p], pp3);
		lg_buf_init(&kre);
		kchar = js_prim(c, JS_P_CHARL);
		/*
		 * A declared name the pattern matches must not be written again as a
		 * pattern-named member (JSON readers keep the last duplicate, whose
		 * value only met the pattern's schema): the pattern minus those names
		 * where the pattern's form allows it, else no pattern-named members.
		 */
		{
			const char **hit = calloc(n + 1, sizeof(char *));
			size_t		nh = 0;

			if (hit == NULL)
			{
				js_oom(c);
				free(pp3);
				c->nest--;
				goto done;
			}
			js_item    *hit_items = calloc(n + 1, sizeof(js_item));

			for (size_t i = 0; hit_items && i < n; i++)
			{
				const lg_json_node *decl = props ? lg_json_get(props, items[i].name) : NULL;

				if (!js_pattern_matches(pp->keys[p], items[i].name))
					continue;
				/* a duplicate that meets the same schema as the declared member is harmless */
				if (!items[i].forbidden && (decl == NULL || js_trivial(decl) || js_same_constraints(decl, pp->items[p])))
					continue;
				hit_items[nh] = items[i];
				hit[nh++] = items[i].name;
			}
			if (vr == NULL || hit_items == NULL)
				st = hit_items ? LG_ERR_INTERNAL : LG_ERR_NOMEM;
			else if (lg_regex_matches_all(pp->keys[p], strlen(pp->keys[p])))
			{
				/* every name: the names not declared differently, as for additionalProperties */
				const char *kr = js_other_key(c, hit_items, nh, NULL, "pattern");

				st = kr ? LG_OK : LG_ERR_UNSUPPORTED;
				if (kr)
					lg_buf_appendf(&kre, "%s", kr);
			}
			else if (nh == 0)
			{
				lg_buf_append(&kre, "\"\\\"\" ", 5);
				st = lg_regex_to_gbnf(pp->keys[p], strlen(pp->keys[p]), -1, -1, kchar, &kre, &rerr);
				lg_buf_append(&kre, " \"\\\"\"", 5);
			}
			else
			{
				lg_buf_append(&kre, "\"\\\"\" ", 5);
				st = lg_regex_minus_names(pp->keys[p], strlen(pp->keys[p]), hit, nh, kchar, &kre, &rerr);
				lg_buf_append(&kre, " \"\\\"\"", 5);
			}
			free(hit_items);
			if (st == LG_ERR_UNSUPPORTED && c->st == LG_OK)
			{
				/* the declared names cannot be left out of this pattern: no pattern-named members */
				free(hit);
				free(pp3);
				lg_buf_free(&kre);
				continue;
			}
			free(hit);
		}
		if (vr && st != LG_OK)
			js_fail(c, st, "%s in patternProperties at %s", rerr.msg, pp3);
		free(pp3);
		if (c->st != LG_OK)
		{
			lg_buf_free(&kre);
			c->nest--;
			goto done;
		}
		if (extra.len)
			lg_buf_append(&extra, " | ", 3);
		lg_buf_appendf(&extra, "%s %s\":\" %s%s %s", kre.data, js_ws(c), js_ws(c), vr, js_ws(c));
		lg_buf_free(&kre);
	}
	c->nest--;
	/* the sequence */
	{
		size_t		w = 0;
		long		n_req = 0, n_all = 0;
		const char *start;

		for (size_t i = 0; i < n; i++)
			if (!items[i].forbidden)
			{
				items[w++] = items[i];
				n_req += items[i].required;
				n_all++;
			}
		n = w;
		q.c = c;
		q.items = items;
		q.n = n;
		q.lo = js_bound_kw(c, s, "minProperties", 0, path);
		q.hi = js_bound_kw(c, s, "maxProperties", -1, path);
		if (c->st != LG_OK)
			goto done;
		if (extra.len)
		{
			const char *er;
			char		h[80];

			snprintf(h, sizeof(h), "%s-extra", hint);
			er = js_rule_add(c, h, extra.data);
			if (er == NULL)
				goto done;
			q.extra = er;
		}
		/* bounds that the declared members satisfy anyway are dropped */
		if (q.lo <= n_req)
			q.lo = 0;
		if (q.hi >= 0 && q.extra == NULL && q.hi >= n_all)
			q.hi = -1;
		if (q.hi >= 0 && q.hi < n_req)
		{
			js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value: maxProperties below the required count", path);
			goto done;
		}
		q.sat = q.hi >= 0 ? q.hi : (q.lo > 1 ? q.lo : 1);
		if (q.sat > JS_MAX_COUNT)
		{
			js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"%s\" at %s: counts above %d",
					q.hi >= 0 ? "maxProperties" : "minProperties", path, JS_MAX_COUNT);
			goto done;
		}
		q.hint = hint;
		q.memo = calloc((n + 1) * (size_t) (q.sat + 1), sizeof(char *));
		q.done = calloc((n + 1) * (size_t) (q.sat + 1), sizeof(bool));
		if (q.memo == NULL || q.done == NULL)
		{
			js_oom(c);
			goto done;
		}
		start = js_seq_state(&q, 0, 0);
		if (c->st != LG_OK)
			goto done;
		if (start == NULL)
		{
			js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value: the property counts cannot be met", path);
			goto done;
		}
		lg_buf_appendf(out, "\"{\" %s%s%s\"}\"", js_ws(c), start, *start ? " " : "");
		ok = true;
	}
done:
	if (q.memo)
		for (size_t i = 0; i < (q.n + 1) * (size_t) (q.sat + 1); i++)
			if (q.done && q.done[i])
				free(q.memo[i]);
	free(q.memo);
	free(q.done);
	free(items);
	lg_buf_free(&extra);
	lg_buf_free(&other_key);
	free(other_prefix_buf);
	return ok && c->st == LG_OK;
}

/* The schema for array element i: prefix (tuple) items, then the rest. */
bool
js_array_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	const lg_json_node *items = lg_json_get(s, "items");
	const lg_json_node *prefix = lg_json_get(s, "prefixItems");
	const lg_json_node *tuple = NULL, *rest = NULL;
	const char *rest_kw = "items";
	long		lo = js_bound_kw(c, s, "minItems", 0, path);
	long		hi = js_bound_kw(c, s, "maxItems", -1, path);
	size_t		k = 0;
	const char **tr = NULL;
	const char *rr = NULL;
	lg_buf		body;
	bool		ok = false;

	if (c->st != LG_OK)
		return false;
	if (prefix)
	{
		if (prefix->kind != LG_JSON_ARRAY)
			return js_fail(c, LG_ERR_FORMAT, "\"prefixItems\" at %s is not an array", path);
		tuple = prefix;
		rest = items;
	}
	else if (items && items->kind == LG_JSON_ARRAY)
	{
		tuple = items;
		rest = lg_json_get(s, "additionalItems");
		rest_kw = "additionalItems";
	}
	else
		rest = items;
	if (rest == NULL)
		rest = &js_true_node;
	rest = js_norm(rest);
	if (rest->kind != LG_JSON_BOOL && rest->kind != LG_JSON_OBJECT)
		return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not a schema", rest_kw, path);
	k = tuple ? tuple->n : 0;
	if (rest->kind == LG_JSON_BOOL && !rest->boolean && (hi < 0 || (size_t) hi > k))
		hi = (long) k;
	if (hi >= 0 && lo > hi)
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value: minItems above maxItems", path);
	tr = calloc(k + 1, sizeof(*tr));
	if (tr == NULL)
		return js_oom(c);
	c->nest++;
	for (size_t i = 0; i < k && (hi < 0 || (long) i < hi); i++)
	{
		char	   *p = js_path_i(path, prefix ? "prefixItems" : "items", i);

		if (js_norm(tuple->items[i])->kind == LG_JSON_BOOL && !js_norm(tuple->items[i])->boolean)
		{
			/* element i can never be written: the array stops before it */
			free(p);
			if ((long) i < lo)
			{
				c->nest--;
				free(tr);
				return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no value: item %zu is false", path, i);
			}
			hi = (long) i;
			break;
		}
		tr[i] = p ? js_visit(c, tuple->items[i], p) : NULL;
		free(p);
		if (tr[i] == NULL)
		{
			c->nest--;
			free(tr);
			return c->st == LG_OK ? js_oom(c) : false;
		}
	}
	if (hi < 0 || (size_t) hi > k)
	{
		char	   *p = js_path(path, rest_kw);

		rr = p ? js_visit(c, rest, p) : NULL;
		free(p);
		if (rr == NULL)
		{
			c->nest--;
			free(tr);
			return c->st == LG_OK ? js_oom(c) : false;
		}
	}
	c->nest--;
	/*
	 * Elements 0..: a tuple part element by element, each optional once
	 * minItems is reached, then the rest as a counted repetition.  Built
	 * inside out: after element i come elements i+1...
	 */
	lg_buf_init(&body);
	lg_buf_append(&body, "", 0);
	{
		long		n_tuple = (long) k;
		long		closes = 0;

		if (hi >= 0 && n_tuple > hi)
			n_tuple = hi;
		for (long i = 0; i < n_tuple; i++)
		{
			if (i >= lo && i > 0)
			{
				lg_buf_append(&body, "( ", 2);
				closes++;
			}
			js_sep(c, &body, i == 0);
			lg_buf_appendf(&body, "%s %s", tr[i], js_ws(c));
		}
		if (rr && (hi < 0 || hi > n_tuple))
		{
			long		rlo = lo > n_tuple ? lo - n_tuple : 0;
			long		rhi = hi < 0 ? -1 : hi - n_tuple;

			if (n_tuple == 0)
			{
				/* first element has no comma; emptiness is handled below */
				long		l1 = rlo > 0 ? rlo - 1 : 0;

				lg_buf_appendf(&body, "%s %s", rr, js_ws(c));
				if (rhi != 1)
				{
					lg_buf_append(&body, "( ", 2);
					js_sep(c, &body, false);
					lg_buf_appendf(&body, "%s %s)", rr, js_ws(c));
					js_rep(&body, l1, rhi < 0 ? -1 : rhi - 1);
					lg_buf_append(&body, " ", 1);
				}
			}
			else
			{
				lg_buf_append(&body, "( ", 2);
				js_sep(c, &body, false);
				lg_buf_appendf(&body, "%s %s)", rr, js_ws(c));
				js_rep(&body, rlo, rhi);
				lg_buf_append(&body, " ", 1);
			}
		}
		for (long i = 0; i < closes; i++)
			lg_buf_append(&body, ")? ", 3);
	}
	if (body.data == NULL)
	{
		free(tr);
		return js_oom(c);
	}
	if (body.len == 0 || hi == 0)
		lg_buf_appendf(out, "\"[\" %s\"]\"", js_ws(c));
	else if (lo == 0)
		lg_buf_appendf(out, "\"[\" %s( %s)? \"]\"", js_ws(c), body.data);
	else
		lg_buf_appendf(out, "\"[\" %s%s\"]\"", js_ws(c), body.data);
	ok = true;
	lg_buf_free(&body);
	free(tr);
	return ok;
}
