/*
 * json_schema_merge.c — allOf: the branches (and $ref targets with
 * sibling keywords) merged into one synthetic schema, keyword by keyword,
 * so the result compiles like any other schema.  Intersections that a
 * grammar cannot express (two different patterns or formats) are refused.
 *
 * Synthetic nodes are owned by the context; their keys and leaves point
 * into the parsed schema, which outlives them.
 */
#include "json_schema_impl.h"

#include <stdlib.h>
#include <string.h>

const lg_json_node js_true_node = {.kind = LG_JSON_BOOL, .boolean = true};
const lg_json_node js_false_node = {.kind = LG_JSON_BOOL, .boolean = false};

static const lg_json_node js_type_nodes[7] = {
	{.kind = LG_JSON_STRING, .str = (char *) "null", .str_len = 4},
	{.kind = LG_JSON_STRING, .str = (char *) "boolean", .str_len = 7},
	{.kind = LG_JSON_STRING, .str = (char *) "integer", .str_len = 7},
	{.kind = LG_JSON_STRING, .str = (char *) "number", .str_len = 6},
	{.kind = LG_JSON_STRING, .str = (char *) "string", .str_len = 6},
	{.kind = LG_JSON_STRING, .str = (char *) "array", .str_len = 5},
	{.kind = LG_JSON_STRING, .str = (char *) "object", .str_len = 6},
};

/* A synthetic node with n (zeroed) members or elements, owned by c. */
lg_json_node *
js_node_new(js_ctx *c, lg_json_kind kind, size_t n)
{
	lg_json_node *nd = calloc(1, sizeof(*nd));

	if (nd == NULL)
		return js_oom(c), NULL;
	nd->kind = kind;
	nd->n = n;
	nd->items = calloc(n ? n : 1, sizeof(*nd->items));
	if (kind == LG_JSON_OBJECT)
	{
		nd->keys = calloc(n ? n : 1, sizeof(*nd->keys));
		nd->key_lens = calloc(n ? n : 1, sizeof(*nd->key_lens));
	}
	if (c->n_owned == c->cap_owned)
	{
		size_t		cap = c->cap_owned ? 2 * c->cap_owned : 64;
		lg_json_node **o = realloc(c->owned, cap * sizeof(*o));

		if (o == NULL)
			goto oom;
		c->owned = o;
		c->cap_owned = cap;
	}
	if (nd->items == NULL || (kind == LG_JSON_OBJECT && (nd->keys == NULL || nd->key_lens == NULL)))
		goto oom;
	c->owned[c->n_owned++] = nd;
	return nd;
oom:
	free(nd->items);
	free(nd->keys);
	free(nd->key_lens);
	free(nd);
	return js_oom(c), NULL;
}

/* A growing list of members for a synthetic object. */
typedef struct js_members
{
	const char **keys;
	const lg_json_node **vals;
	size_t		n, cap;
} js_members;

/* Append (or, with replace, overwrite) member key. */
static bool
js_members_put(js_ctx *c, js_members *m, const char *key, const lg_json_node *v)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->keys[i], key) == 0)
		{
			m->vals[i] = v;
			return true;
		}
	if (m->n == m->cap)
	{
		size_t		cap = m->cap ? 2 * m->cap : 16;
		const char **k = realloc(m->keys, cap * sizeof(*k));
		const lg_json_node **v2;

		if (k == NULL)
			return js_oom(c);
		m->keys = k;
		v2 = realloc(m->vals, cap * sizeof(*v2));
		if (v2 == NULL)
			return js_oom(c);
		m->vals = v2;
		m->cap = cap;
	}
	m->keys[m->n] = key;
	m->vals[m->n] = v;
	m->n++;
	return true;
}

/* The value of member key, or NULL. */
static const lg_json_node *
js_members_get(const js_members *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
	return NULL;
}

/* The synthetic object made of m's members (m is freed). */
static lg_json_node *
js_members_node(js_ctx *c, js_members *m)
{
	lg_json_node *nd = c->st == LG_OK ? js_node_new(c, LG_JSON_OBJECT, m->n) : NULL;

	for (size_t i = 0; nd && i < m->n; i++)
	{
		nd->keys[i] = (char *) m->keys[i];
		nd->key_lens[i] = strlen(m->keys[i]);
		nd->items[i] = (lg_json_node *) m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
	return nd;
}

/* A synthetic array of the given elements. */
static lg_json_node *
js_array_of(js_ctx *c, const lg_json_node *const *v, size_t n)
{
	lg_json_node *a = js_node_new(c, LG_JSON_ARRAY, n);

	for (size_t i = 0; a && i < n; i++)
		a->items[i] = (lg_json_node *) v[i];
	return a;
}

/* {"allOf": [a, b]}, or the other one when either accepts everything. */
static const lg_json_node *
js_all_of2(js_ctx *c, const lg_json_node *a, const lg_json_node *b)
{
	const lg_json_node *v[2] = {a, b};
	lg_json_node *arr, *o;

	if (a == NULL || b == NULL)
		return a ? a : b;
	a = js_norm(a);
	b = js_norm(b);
	if ((a->kind == LG_JSON_BOOL && !a->boolean) || (b->kind == LG_JSON_BOOL && !b->boolean))
		return &js_false_node;
	if (a->kind == LG_JSON_BOOL || (a->kind == LG_JSON_OBJECT && a->n == 0))
		return b;
	if (b->kind == LG_JSON_BOOL || (b->kind == LG_JSON_OBJECT && b->n == 0))
		return a;
	if ((arr = js_array_of(c, v, 2)) == NULL || (o = js_node_new(c, LG_JSON_OBJECT, 1)) == NULL)
		return NULL;
	o->keys[0] = (char *) "allOf";
	o->key_lens[0] = 5;
	o->items[0] = arr;
	return o;
}

/* s without the given keys. */
const lg_json_node *
js_without(js_ctx *c, const lg_json_node *s, const char *const *drop, size_t n_drop)
{
	js_members	m = {0};

	for (size_t i = 0; i < s->n; i++)
	{
		bool		skip = false;

		for (size_t j = 0; j < n_drop && !skip; j++)
			skip = strcmp(s->keys[i], drop[j]) == 0;
		if (!skip && !js_members_put(c, &m, s->keys[i], s->items[i]))
			break;
	}
	return js_members_node(c, &m);
}

/* s with member key set to v. */
lg_json_node *
js_with(js_ctx *c, const lg_json_node *s, const char *key, const lg_json_node *v)
{
	js_members	m = {0};

	for (size_t i = 0; s && i < s->n; i++)
		js_members_put(c, &m, s->keys[i], s->items[i]);
	js_members_put(c, &m, key, v);
	return js_members_node(c, &m);
}

/* A flat list of the object schemas to intersect. */
typedef struct js_flat
{
	const lg_json_node **v;
	size_t		n, cap;
	bool		nothing;		/* a false schema: the intersection is empty */
} js_flat;

/* Add s, expanding $ref and nested allOf. */
static bool
js_flatten(js_ctx *c, js_flat *f, const lg_json_node *s, const char *path, int depth)
{
	const lg_json_node *all;

	if (c->st != LG_OK)
		return false;
	if (depth > 32)
		return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported recursion at %s: allOf/$ref nested too deeply", path);
	s = js_norm(s);
	if (s->kind == LG_JSON_BOOL)
	{
		if (!s->boolean)
			f->nothing = true;
		return true;
	}
	if (s->kind != LG_JSON_OBJECT)
		return js_fail(c, LG_ERR_FORMAT, "schema at %s is not an object or boolean", path);
	if (lg_json_get(s, "$ref"))
	{
		const lg_json_node *t = js_resolve_ref(c, s, path);
		const char *drop[1] = {"$ref"};

		if (t == NULL || !js_flatten(c, f, t, path, depth + 1))
			return false;
		/* before 2019-09 the keywords next to "$ref" are ignored */
		if (!c->ref_siblings)
			return true;
		s = js_without(c, s, drop, 1);
		if (s == NULL)
			return false;
	}
	if ((all = lg_json_get(s, "allOf")) != NULL)
	{
		const char *drop[1] = {"allOf"};

		if (all->kind != LG_JSON_ARRAY)
			return js_fail(c, LG_ERR_FORMAT, "\"allOf\" at %s is not an array", path);
		for (size_t i = 0; i < all->n; i++)
		{
			char	   *p = js_path_i(path, "allOf", i);
			bool		ok = p && js_flatten(c, f, all->items[i], p, depth + 1);

			free(p);
			if (!ok)
				return c->st == LG_OK ? js_oom(c) : false;
		}
		s = js_without(c, s, drop, 1);
		if (s == NULL)
			return false;
	}
	if (f->n == f->cap)
	{
		size_t		cap = f->cap ? 2 * f->cap : 8;
		const lg_json_node **v = realloc(f->v, cap * sizeof(*v));

		if (v == NULL)
			return js_oom(c);
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = s;
	return true;
}

/* Compare two number nodes. */
static int
js_numcmp(const lg_json_node *a, const lg_json_node *b)
{
	if (a->is_int && b->is_int)
		return a->integer < b->integer ? -1 : a->integer > b->integer;
	return a->number < b->number ? -1 : a->number > b->number;
}

/* A schema's effective lower (upper when upper) bound: node and exclusivity. */
static const lg_json_node *
js_bound(const lg_json_node *s, bool upper, bool *excl)
{
	const lg_json_node *inc = lg_json_get(s, upper ? "maximum" : "minimum");
	const lg_json_node *ex = lg_json_get(s, upper ? "exclusiveMaximum" : "exclusiveMinimum");

	*excl = false;
	if (inc && inc->kind != LG_JSON_NUMBER)
		inc = NULL;
	if (ex && ex->kind == LG_JSON_BOOL)
	{
		*excl = ex->boolean && inc != NULL;
		return inc;
	}
	if (ex && ex->kind == LG_JSON_NUMBER)
	{
		int			d = inc ? js_numcmp(ex, inc) : 0;

		if (inc == NULL || (upper ? d <= 0 : d >= 0))
		{
			*excl = true;
			return ex;
		}
	}
	return inc;
}

/* Keywords merged by taking the largest (min*) or smallest (max*) value. */
static const char *const js_min_keys[] = {"minLength", "minItems", "minProperties", NULL};
static const char *const js_max_keys[] = {"maxLength", "maxItems", "maxProperties", NULL};
/* Keywords that must agree across branches. */
static const char *const js_same_keys[] = {"pattern", "format", "multipleOf", NULL};

/* Intersect the enum/const sets: NULL when no branch restricts values. */
static bool
js_merge_enum(js_ctx *c, js_flat *f, js_members *m)
{
	const lg_json_node **vals = NULL;
	size_t		nv = 0;
	bool		have = false;

	for (size_t b = 0; b < f->n; b++)
	{
		const lg_json_node *cn = lg_json_get(f->v[b], "const");
		const lg_json_node *en = lg_json_get(f->v[b], "enum");
		const lg_json_node *const *src;
		size_t		ns;

		for (int pass = 0; pass < 2; pass++)
		{
			const lg_json_node *e = pass == 0 ? cn : en;

			if (e == NULL)
				continue;
			if (pass == 1 && e->kind != LG_JSON_ARRAY)
			{
				free(vals);
				return js_fail(c, LG_ERR_FORMAT, "\"enum\" is not an array");
			}
			src = pass == 0 ? &cn : (const lg_json_node *const *) e->items;
			ns = pass == 0 ? 1 : e->n;
			if (!have)
			{
				vals = malloc((ns ? ns : 1) * sizeof(*vals));
				if (vals == NULL)
					return js_oom(c);
				for (size_t i = 0; i < ns; i++)
					vals[i] = src[i];
				nv = ns;
				have = true;
				continue;
			}
			{
				size_t		k = 0;

				for (size_t i = 0; i < nv; i++)
				{
					bool		in = false;

					for (size_t j = 0; j < ns && !in; j++)
						in = lg_json_equal(vals[i], src[j]);
					if (in)
						vals[k++] = vals[i];
				}
				nv = k;
			}
		}
	}
	if (have)
	{
		lg_json_node *a = js_array_of(c, vals, nv);

		free(vals);
		if (a == NULL)
			return false;
		if (nv == 0)
			f->nothing = true;
		return js_members_put(c, m, "enum", a);
	}
	return true;
}

/* Cross product of several anyOf (or oneOf) lists: each combination an allOf. */
static bool
js_merge_alts(js_ctx *c, js_flat *f, js_members *m, const char *kw, const char *path)
{
	const lg_json_node *acc = NULL;

	for (size_t b = 0; b < f->n; b++)
	{
		const lg_json_node *l = lg_json_get(f->v[b], kw);

		if (l == NULL)
			continue;
		if (l->kind != LG_JSON_ARRAY)
			return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not an array", kw, path);
		if (acc == NULL)
		{
			acc = l;
			continue;
		}
		if (acc->n * l->n > 64)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"%s\" at %s: allOf of %s lists with %zu combinations",
							kw, path, kw, acc->n * l->n);
		{
			lg_json_node *x = js_node_new(c, LG_JSON_ARRAY, acc->n * l->n);

			if (x == NULL)
				return false;
			for (size_t i = 0; i < acc->n; i++)
				for (size_t j = 0; j < l->n; j++)
					if ((x->items[i * l->n + j] = (lg_json_node *) js_all_of2(c, acc->items[i], l->items[j])) == NULL)
						return false;
			acc = x;
		}
	}
	return acc == NULL || js_members_put(c, m, kw, acc);
}

/* Merge the object-valued map keyword kw ("properties", "patternProperties"). */
static bool
js_merge_map(js_ctx *c, js_flat *f, js_members *m, const char *kw, js_members *out)
{
	for (size_t b = 0; b < f->n; b++)
	{
		const lg_json_node *p = lg_json_get(f->v[b], kw);

		if (p == NULL)
			continue;
		if (p->kind != LG_JSON_OBJECT)
			return js_fail(c, LG_ERR_FORMAT, "\"%s\" is not an object", kw);
		for (size_t i = 0; i < p->n; i++)
		{
			const lg_json_node *old = js_members_get(out, p->keys[i]);
			const lg_json_node *v = old ? js_all_of2(c, old, p->items[i]) : p->items[i];

			if (v == NULL || !js_members_put(c, out, p->keys[i], v))
				return false;
		}
	}
	(void) m;
	return true;
}

/*
 * The intersection of parts (each flattened through $ref and allOf) as one
 * schema.  Returns the false schema when the intersection is empty.
 */
lg_json_node *
js_merge(js_ctx *c, const lg_json_node *const *parts, size_t n, const char *path)
{
	js_flat		f = {0};
	js_members	m = {0};
	js_members	props = {0};
	js_members	pats = {0};
	unsigned	types = JS_T_ALL;
	bool		typed = false;
	lg_json_node *res = NULL;

	for (size_t i = 0; i < n; i++)
		if (!js_flatten(c, &f, parts[i], path, 0))
			goto done;
	/* type: intersection */
	for (size_t b = 0; b < f.n; b++)
	{
		if (lg_json_get(f.v[b], "type"))
		{
			const lg_json_node *t = lg_json_get(f.v[b], "type");
			lg_json_node tmp = {.kind = LG_JSON_OBJECT, .n = 1, .keys = (char *[]) {(char *) "type"},
			.key_lens = (size_t[]) {4}, .items = (lg_json_node *[]) {(lg_json_node *) t}};

			types &= js_types(&tmp);
			typed = true;
		}
	}
	if (typed)
	{
		const lg_json_node *tv[7];
		size_t		nt = 0;

		if (types & JS_T_NUM)
			types &= ~JS_T_INT;
		for (int i = 0; i < 7; i++)
			if (types & (1u << i))
				tv[nt++] = &js_type_nodes[i];
		if (nt == 0)
			f.nothing = true;
		else if (!js_members_put(c, &m, "type", js_array_of(c, tv, nt)))
			goto done;
	}
	/* properties, patternProperties: union, shared names intersected */
	if (!js_merge_map(c, &f, &m, "properties", &props) || !js_merge_map(c, &f, &m, "patternProperties", &pats))
		goto done;
	/* additionalProperties of a branch applies to the other branches' extra names */
	{
		const lg_json_node *ap_all = NULL;

		for (size_t b = 0; b < f.n; b++)
		{
			const lg_json_node *ap = lg_json_get(f.v[b], "additionalProperties");
			const lg_json_node *own = lg_json_get(f.v[b], "properties");

			if (ap == NULL || (ap->kind == LG_JSON_BOOL && ap->boolean))
				continue;
			for (size_t i = 0; i < props.n; i++)
				if (own == NULL || lg_json_get(own, props.keys[i]) == NULL)
					props.vals[i] = js_all_of2(c, props.vals[i], ap);
			ap_all = ap_all ? js_all_of2(c, ap_all, ap) : ap;
		}
		if (ap_all)
			js_members_put(c, &m, "additionalProperties", ap_all);
		else
			for (size_t b = 0; b < f.n; b++)
				if (lg_json_get(f.v[b], "additionalProperties"))
					js_members_put(c, &m, "additionalProperties", lg_json_get(f.v[b], "additionalProperties"));
	}
	if (props.n && !js_members_put(c, &m, "properties", js_members_node(c, &props)))
		goto done;
	if (pats.n && !js_members_put(c, &m, "patternProperties", js_members_node(c, &pats)))
		goto done;
	/* required: union */
	{
		const lg_json_node **req = NULL;
		size_t		nr = 0, cap = 0;

		for (size_t b = 0; b < f.n; b++)
		{
			const lg_json_node *r = lg_json_get(f.v[b], "required");

			for (size_t i = 0; r && r->kind == LG_JSON_ARRAY && i < r->n; i++)
			{
				bool		dup = false;

				for (size_t j = 0; j < nr && !dup; j++)
					dup = lg_json_equal(req[j], r->items[i]);
				if (dup)
					continue;
				if (nr == cap)
				{
					const lg_json_node **q;

					cap = cap ? 2 * cap : 16;
					q = realloc(req, cap * sizeof(*q));
					if (q == NULL)
					{
						free(req);
						js_oom(c);
						goto done;
					}
					req = q;
				}
				req[nr++] = r->items[i];
			}
		}
		if (nr && !js_members_put(c, &m, "required", js_array_of(c, req, nr)))
		{
			free(req);
			goto done;
		}
		free(req);
	}
	/* numeric bounds: the tighter of each */
	for (int upper = 0; upper < 2; upper++)
	{
		const lg_json_node *best = NULL;
		bool		best_ex = false;

		for (size_t b = 0; b < f.n; b++)
		{
			bool		ex;
			const lg_json_node *v = js_bound(f.v[b], upper, &ex);
			int			d;

			if (v == NULL)
				continue;
			d = best ? js_numcmp(v, best) : 0;
			if (best == NULL || (upper ? d < 0 : d > 0) || (d == 0 && ex))
			{
				best = v;
				best_ex = ex;
			}
		}
		if (best && !js_members_put(c, &m, upper ? (best_ex ? "exclusiveMaximum" : "maximum")
									: (best_ex ? "exclusiveMinimum" : "minimum"), best))
			goto done;
	}
	for (int mx = 0; mx < 2; mx++)
	{
		const char *const *keys = mx ? js_max_keys : js_min_keys;

		for (int k = 0; keys[k]; k++)
		{
			const lg_json_node *best = NULL;

			for (size_t b = 0; b < f.n; b++)
			{
				const lg_json_node *v = lg_json_get(f.v[b], keys[k]);

				if (v && v->kind == LG_JSON_NUMBER &&
					(best == NULL || (mx ? js_numcmp(v, best) < 0 : js_numcmp(v, best) > 0)))
					best = v;
			}
			if (best && !js_members_put(c, &m, keys[k], best))
				goto done;
		}
	}
	for (int k = 0; js_same_keys[k]; k++)
	{
		const lg_json_node *first = NULL;

		for (size_t b = 0; b < f.n; b++)
		{
			const lg_json_node *v = lg_json_get(f.v[b], js_same_keys[k]);

			if (v == NULL)
				continue;
			if (first && !lg_json_equal(first, v))
			{
				js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"allOf\" at %s: two different \"%s\"", path, js_same_keys[k]);
				goto done;
			}
			first = v;
		}
		if (first && !js_members_put(c, &m, js_same_keys[k], first))
			goto done;
	}
	if (!js_merge_enum(c, &f, &m) || !js_merge_alts(c, &f, &m, "anyOf", path) ||
		!js_merge_alts(c, &f, &m, "oneOf", path))
		goto done;
	/* items, additionalItems: intersected; a tuple form only from one branch */
	{
		static const char *const ik[] = {"items", "additionalItems", "prefixItems", "uniqueItems", NULL};

		for (int k = 0; ik[k]; k++)
		{
			const lg_json_node *acc = NULL;

			for (size_t b = 0; b < f.n; b++)
			{
				const lg_json_node *v = lg_json_get(f.v[b], ik[k]);

				if (v == NULL)
					continue;
				if (acc && (v->kind == LG_JSON_ARRAY || acc->kind == LG_JSON_ARRAY))
				{
					if (lg_json_equal(acc, v))
						continue;
					js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"allOf\" at %s: two tuple \"%s\"", path, ik[k]);
					goto done;
				}
				if (strcmp(ik[k], "uniqueItems") == 0)
					acc = (acc && acc->boolean) ? acc : v;
				else
					acc = acc ? js_all_of2(c, acc, v) : v;
			}
			if (acc && !js_members_put(c, &m, ik[k], acc))
				goto done;
		}
	}
	/* everything else (unsupported keywords included, so they are reported): first wins */
	for (size_t b = 0; b < f.n; b++)
	{
		const lg_json_node *s = f.v[b];

		for (size_t i = 0; i < s->n; i++)
		{
			const char *k = s->keys[i];

			if (js_is_annotation(k) || js_members_get(&m, k) || strcmp(k, "type") == 0 ||
				strcmp(k, "properties") == 0 || strcmp(k, "patternProperties") == 0 ||
				strcmp(k, "required") == 0 || strcmp(k, "const") == 0 || strcmp(k, "enum") == 0 ||
				strcmp(k, "minimum") == 0 || strcmp(k, "maximum") == 0 ||
				strcmp(k, "exclusiveMinimum") == 0 || strcmp(k, "exclusiveMaximum") == 0)
				continue;
			if (!js_members_put(c, &m, k, s->items[i]))
				goto done;
		}
	}
	res = c->st == LG_OK ? js_members_node(c, &m) : NULL;
	if (res && f.nothing)
		res = (lg_json_node *) &js_false_node;
done:
	free(f.v);
	free(m.keys);
	free(m.vals);
	free(props.keys);
	free(props.vals);
	free(pats.keys);
	free(pats.vals);
	return res;
}
