/*
 * jinja_parse.c — tokens to a syntax tree, a recursive-descent parser that
 * follows jinja2's parser.py rule for rule (precedence, `is` tests after
 * postfix expressions, filters binding tighter than arithmetic, tuples
 * without parentheses, `for … if …`, namespaces in `set`), so that
 * templates mean here what they mean in jinja2.
 *
 * Statements: if/elif/else, for (with else, filter, break, continue), set
 * (plain, tuple, namespace attribute, block), macro, call blocks, filter
 * blocks, with, block, raw (in the lexer), print, and transformers'
 * generation tag.  include/import/extends are unsupported: a chat template
 * is one file.
 */
#include <stdio.h>
#include <string.h>

#include "jinja.h"

#define MAX_NESTING 150

typedef struct parser
{
	jx_arena   *ar;
	const jx_token *t;
	size_t		n;
	size_t		pos;
	lg_error   *err;
	int			depth;
	int			loops;			/* enclosing for loops, for break/continue */
	bool		failed;
} parser;

/* The current token. */
static const jx_token *
cur(parser *p)
{
	return &p->t[p->pos < p->n ? p->pos : p->n - 1];
}

/* The token after the current one. */
static const jx_token *
peek(parser *p)
{
	return &p->t[p->pos + 1 < p->n ? p->pos + 1 : p->n - 1];
}

/* Move on (never past EOF). */
static const jx_token *
next(parser *p)
{
	const jx_token *t = cur(p);

	if (p->pos + 1 < p->n)
		p->pos++;
	return t;
}

/* Record a syntax error at token t (the first error wins); returns NULL. */
static void *
fail_at(parser *p, const jx_token *t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void *
fail_at(parser *p, const jx_token *t, const char *fmt, ...)
{
	char		msg[384];
	va_list		ap;

	if (p->failed)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lg_error_set(p->err, LG_ERR_FORMAT, "line %d, column %d: %s", t->line, t->col, msg);
	p->failed = true;
	return NULL;
}

/* The token as text for messages. */
static const char *
describe(const jx_token *t, char *buf, size_t size)
{
	if (t->kind == JT_NAME)
		snprintf(buf, size, "%s", t->s);
	else if (t->kind == JT_STRING)
		snprintf(buf, size, "string");
	else
		snprintf(buf, size, "%s", jx_tok_name(t->kind));
	return buf;
}

/* Expect a token kind and move past it. */
static const jx_token *
expect(parser *p, jx_tok k)
{
	char		b1[64];

	if (cur(p)->kind != k)
	{
		if (cur(p)->kind == JT_EOF)
			return fail_at(p, cur(p), "unexpected end of template, expected '%s'", jx_tok_name(k));
		return fail_at(p, cur(p), "expected token '%s', got '%s'", jx_tok_name(k),
					   describe(cur(p), b1, sizeof(b1)));
	}
	return next(p);
}

/* Is the current token the name w? */
static bool
is_name(parser *p, const char *w)
{
	return cur(p)->kind == JT_NAME && strcmp(cur(p)->s, w) == 0;
}

/* Skip the name w if it is current. */
static bool
skip_name(parser *p, const char *w)
{
	if (!is_name(p, w))
		return false;
	next(p);
	return true;
}

/* A new node of kind k at token t. */
static jx_node *
node(parser *p, jx_nkind k, const jx_token *t)
{
	jx_node    *n = jx_alloc(p->ar, sizeof(jx_node));

	if (n == NULL)
	{
		if (!p->failed)
			lg_error_set(p->err, LG_ERR_NOMEM, "out of memory");
		p->failed = true;
		return NULL;
	}
	n->kind = k;
	n->line = t->line;
	n->col = t->col;
	return n;
}

/* A growable array of node pointers / names, built in the arena. */
typedef struct vec
{
	void	  **items;
	size_t		n;
	size_t		cap;
} vec;

/* Append x; false when out of memory. */
static bool
vec_push(parser *p, vec *v, void *x)
{
	if (v->n == v->cap)
	{
		size_t		cap = v->cap ? v->cap * 2 : 4;
		void	  **items = jx_alloc(p->ar, cap * sizeof(void *));

		if (items == NULL)
		{
			if (!p->failed)
				lg_error_set(p->err, LG_ERR_NOMEM, "out of memory");
			p->failed = true;
			return false;
		}
		if (v->n)
			memcpy(items, v->items, v->n * sizeof(void *));
		v->items = items;
		v->cap = cap;
	}
	v->items[v->n++] = x;
	return true;
}

static jx_node *parse_expression(parser *p, bool with_condexpr);
static jx_node *parse_tuple(parser *p, bool simplified, bool with_condexpr,
							const char *extra_end, bool explicit_parens);
static jx_node *parse_unary(parser *p, bool with_filter);
static jx_node *parse_primary(parser *p);
static jx_node *parse_postfix(parser *p, jx_node *n);
static jx_node *parse_filter_expr(parser *p, jx_node *n);
static jx_node *parse_filter(parser *p, jx_node *n, bool start_inline);
static jx_node *subparse(parser *p, const char *const *end_names);

/* Guard against input nested deep enough to exhaust the stack. */
static bool
enter(parser *p)
{
	if (++p->depth > MAX_NESTING)
	{
		fail_at(p, cur(p), "template nested too deeply");
		return false;
	}
	return true;
}

/* ---- expressions ---- */

/* Call arguments `(a, b, k=v)` into n->kids and n->names/vals. */
static bool
parse_call_args(parser *p, jx_node *n)
{
	vec			args = {0},
				kwn = {0},
				kwv = {0};
	bool		require_comma = false;

	if (!expect(p, JT_LPAREN))
		return false;
	while (cur(p)->kind != JT_RPAREN)
	{
		if (require_comma)
		{
			if (!expect(p, JT_COMMA))
				return false;
			if (cur(p)->kind == JT_RPAREN)
				break;
		}
		if (cur(p)->kind == JT_MUL || cur(p)->kind == JT_POW)
		{
			fail_at(p, cur(p), "*args and **kwargs in calls are not supported");
			return false;
		}
		if (cur(p)->kind == JT_NAME && peek(p)->kind == JT_ASSIGN)
		{
			const char *key = cur(p)->s;
			jx_node    *v;

			next(p);
			next(p);
			v = parse_expression(p, true);
			if (v == NULL || !vec_push(p, &kwn, (void *) key) || !vec_push(p, &kwv, v))
				return false;
		}
		else
		{
			jx_node    *v;

			if (kwn.n)
			{
				fail_at(p, cur(p), "invalid argument syntax: positional argument after keyword argument");
				return false;
			}
			v = parse_expression(p, true);
			if (v == NULL || !vec_push(p, &args, v))
				return false;
		}
		require_comma = true;
	}
	if (!expect(p, JT_RPAREN))
		return false;
	n->kids = (jx_node **) args.items;
	n->nkids = args.n;
	n->names = (const char **) kwn.items;
	n->vals = (jx_node **) kwv.items;
	n->nnames = kwn.n;
	return true;
}

/* A dotted name after `|` or `is` (filter.sub). */
static const char *
parse_dotted_name(parser *p)
{
	const jx_token *t = expect(p, JT_NAME);
	char		buf[256];
	size_t		len;

	if (t == NULL)
		return NULL;
	if (cur(p)->kind != JT_DOT)
		return t->s;
	snprintf(buf, sizeof(buf), "%s", t->s);
	while (cur(p)->kind == JT_DOT)
	{
		next(p);
		if ((t = expect(p, JT_NAME)) == NULL)
			return NULL;
		len = strlen(buf);
		snprintf(buf + len, sizeof(buf) - len, ".%s", t->s);
	}
	return jx_strdup(p->ar, buf, strlen(buf));
}

/* jinja2's built-in filters we do not implement: using one is unsupported, not a typo. */
static bool
jinja2_has_filter(const char *name)
{
	static const char *const names[] = {
		"batch", "filesizeformat", "groupby", "pprint", "random", "slice", "striptags", "truncate",
		"urlencode", "urlize", "wordwrap", "xmlattr", NULL
	};

	for (int i = 0; names[i]; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

/* `x | f(args) | g`; with start_inline the first `|` was already taken. */
static jx_node *
parse_filter(parser *p, jx_node *n, bool start_inline)
{
	while (cur(p)->kind == JT_PIPE || start_inline)
	{
		const jx_token *t;
		jx_node    *f;
		const char *name;

		if (!start_inline)
			next(p);
		start_inline = false;
		t = cur(p);
		if ((name = parse_dotted_name(p)) == NULL)
			return NULL;
		if (!jx_filter_exists(name))
		{
			if (jinja2_has_filter(name) && !p->failed)
			{
				lg_error_set(p->err, LG_ERR_UNSUPPORTED, "line %d, column %d: the filter '%s' is not supported",
							 t->line, t->col, name);
				p->failed = true;
				return NULL;
			}
			return fail_at(p, t, "no filter named '%s'", name);
		}
		if ((f = node(p, JN_FILTER, t)) == NULL)
			return NULL;
		f->a = n;
		f->name = name;
		if (cur(p)->kind == JT_LPAREN && !parse_call_args(p, f))
			return NULL;
		n = f;
	}
	return n;
}

/* `x is [not] test [arg | (args)]`. */
static jx_node *
parse_test(parser *p, jx_node *n)
{
	const jx_token *t = next(p);	/* is */
	bool		negated = skip_name(p, "not");
	const jx_token *nt = cur(p);
	const char *name = parse_dotted_name(p);
	jx_node    *tn;

	if (name == NULL)
		return NULL;
	if (!jx_test_exists(name))
		return fail_at(p, nt, "no test named '%s'", name);
	if ((tn = node(p, JN_TEST, t)) == NULL)
		return NULL;
	tn->a = n;
	tn->name = name;
	if (cur(p)->kind == JT_LPAREN)
	{
		if (!parse_call_args(p, tn))
			return NULL;
	}
	else if ((cur(p)->kind == JT_NAME || cur(p)->kind == JT_STRING || cur(p)->kind == JT_INT ||
			  cur(p)->kind == JT_FLOAT || cur(p)->kind == JT_LPAREN || cur(p)->kind == JT_LBRACKET ||
			  cur(p)->kind == JT_LBRACE) &&
			 !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and"))
	{
		jx_node    *arg;

		if (is_name(p, "is"))
			return fail_at(p, cur(p), "you cannot chain multiple tests with is");
		arg = parse_primary(p);
		if (arg == NULL || (arg = parse_postfix(p, arg)) == NULL)
			return NULL;
		tn->kids = jx_alloc(p->ar, sizeof(jx_node *));
		if (tn->kids == NULL)
			return node(p, JN_CONST, t) ? NULL : NULL;
		tn->kids[0] = arg;
		tn->nkids = 1;
	}
	if (negated)
	{
		jx_node    *nn = node(p, JN_NOT, t);

		if (nn == NULL)
			return NULL;
		nn->a = tn;
		return nn;
	}
	return tn;
}

/* Filters, tests and calls after a unary expression. */
static jx_node *
parse_filter_expr(parser *p, jx_node *n)
{
	while (n)
	{
		if (cur(p)->kind == JT_PIPE)
			n = parse_filter(p, n, false);
		else if (is_name(p, "is"))
			n = parse_test(p, n);
		else if (cur(p)->kind == JT_LPAREN)
		{
			jx_node    *c = node(p, JN_CALL, cur(p));

			if (c == NULL)
				return NULL;
			c->a = n;
			if (!parse_call_args(p, c))
				return NULL;
			n = c;
		}
		else
			break;
	}
	return n;
}

/* One subscript: an expression or a slice a:b:c. */
static jx_node *
parse_subscribed(parser *p)
{
	const jx_token *t = cur(p);
	jx_node    *parts[3] = {NULL, NULL, NULL};
	jx_node    *s;

	if (cur(p)->kind == JT_COLON)
		next(p);
	else
	{
		jx_node    *e = parse_expression(p, true);

		if (e == NULL)
			return NULL;
		if (cur(p)->kind != JT_COLON)
			return e;
		next(p);
		parts[0] = e;
	}
	if (cur(p)->kind != JT_COLON && cur(p)->kind != JT_RBRACKET && cur(p)->kind != JT_COMMA)
	{
		if ((parts[1] = parse_expression(p, true)) == NULL)
			return NULL;
	}
	if (cur(p)->kind == JT_COLON)
	{
		next(p);
		if (cur(p)->kind != JT_RBRACKET && cur(p)->kind != JT_COMMA)
		{
			if ((parts[2] = parse_expression(p, true)) == NULL)
				return NULL;
		}
	}
	if ((s = node(p, JN_SLICE, t)) == NULL)
		return NULL;
	s->a = parts[0];
	s->b = parts[1];
	s->c = parts[2];
	return s;
}

/* `.name`, `.0`, `[subscript]`. */
static jx_node *
parse_subscript(parser *p, jx_node *n)
{
	const jx_token *t = next(p);
	jx_node    *r;

	if (t->kind == JT_DOT)
	{
		const jx_token *a = next(p);

		if (a->kind == JT_NAME)
		{
			if ((r = node(p, JN_GETATTR, a)) == NULL)
				return NULL;
			r->a = n;
			r->name = a->s;
			return r;
		}
		if (a->kind != JT_INT)
			return fail_at(p, a, "expected name or number");
		if ((r = node(p, JN_GETITEM, a)) == NULL || (r->b = node(p, JN_CONST, a)) == NULL)
			return NULL;
		r->a = n;
		r->b->value = jv_int(a->ival);
		return r;
	}
	else
	{
		vec			args = {0};

		while (cur(p)->kind != JT_RBRACKET)
		{
			jx_node    *s;

			if (args.n && !expect(p, JT_COMMA))
				return NULL;
			if ((s = parse_subscribed(p)) == NULL || !vec_push(p, &args, s))
				return NULL;
		}
		if (!expect(p, JT_RBRACKET))
			return NULL;
		if (args.n == 0)
			return fail_at(p, t, "expected an expression in subscript");
		if ((r = node(p, JN_GETITEM, t)) == NULL)
			return NULL;
		r->a = n;
		if (args.n == 1)
			r->b = args.items[0];
		else
		{
			if ((r->b = node(p, JN_TUPLE, t)) == NULL)
				return NULL;
			r->b->kids = (jx_node **) args.items;
			r->b->nkids = args.n;
		}
		return r;
	}
}

/* Attribute, item and call suffixes. */
static jx_node *
parse_postfix(parser *p, jx_node *n)
{
	while (n)
	{
		if (cur(p)->kind == JT_DOT || cur(p)->kind == JT_LBRACKET)
			n = parse_subscript(p, n);
		else if (cur(p)->kind == JT_LPAREN)
		{
			jx_node    *c = node(p, JN_CALL, cur(p));

			if (c == NULL)
				return NULL;
			c->a = n;
			if (!parse_call_args(p, c))
				return NULL;
			n = c;
		}
		else
			break;
	}
	return n;
}

/* [a, b, ...] */
static jx_node *
parse_list(parser *p)
{
	const jx_token *t = expect(p, JT_LBRACKET);
	vec			items = {0};
	jx_node    *n;

	while (t && cur(p)->kind != JT_RBRACKET)
	{
		jx_node    *e;

		if (items.n && !expect(p, JT_COMMA))
			return NULL;
		if (cur(p)->kind == JT_RBRACKET)
			break;
		if ((e = parse_expression(p, true)) == NULL || !vec_push(p, &items, e))
			return NULL;
	}
	if (t == NULL || !expect(p, JT_RBRACKET) || (n = node(p, JN_LIST, t)) == NULL)
		return NULL;
	n->kids = (jx_node **) items.items;
	n->nkids = items.n;
	return n;
}

/* {k: v, ...}: keys in kids, values in vals. */
static jx_node *
parse_dict(parser *p)
{
	const jx_token *t = expect(p, JT_LBRACE);
	vec			keys = {0},
				vals = {0};
	jx_node    *n;

	while (t && cur(p)->kind != JT_RBRACE)
	{
		jx_node    *k,
				   *v;

		if (keys.n && !expect(p, JT_COMMA))
			return NULL;
		if (cur(p)->kind == JT_RBRACE)
			break;
		if ((k = parse_expression(p, true)) == NULL || !expect(p, JT_COLON) ||
			(v = parse_expression(p, true)) == NULL ||
			!vec_push(p, &keys, k) || !vec_push(p, &vals, v))
			return NULL;
	}
	if (t == NULL || !expect(p, JT_RBRACE) || (n = node(p, JN_DICT, t)) == NULL)
		return NULL;
	n->kids = (jx_node **) keys.items;
	n->vals = (jx_node **) vals.items;
	n->nkids = keys.n;
	return n;
}

/* Names, literals, parentheses, lists, dicts. */
static jx_node *
parse_primary(parser *p)
{
	const jx_token *t = cur(p);
	jx_node    *n;
	char		buf[64];

	switch (t->kind)
	{
		case JT_NAME:
			next(p);
			if ((n = node(p, JN_CONST, t)) == NULL)
				return NULL;
			if (!strcmp(t->s, "true") || !strcmp(t->s, "True"))
				n->value = jv_bool(true);
			else if (!strcmp(t->s, "false") || !strcmp(t->s, "False"))
				n->value = jv_bool(false);
			else if (!strcmp(t->s, "none") || !strcmp(t->s, "None"))
				n->value = jv_none();
			else
			{
				n->kind = JN_NAME;
				n->name = t->s;
			}
			return n;
		case JT_STRING:
			{
				size_t		total = 0,
							k = p->pos,
							o = 0;
				char	   *s;

				while (k < p->n && p->t[k].kind == JT_STRING)
					total += p->t[k++].n;
				if ((s = jx_alloc(p->ar, total + 1)) == NULL || (n = node(p, JN_CONST, t)) == NULL)
					return node(p, JN_CONST, t) ? NULL : NULL;
				while (cur(p)->kind == JT_STRING)
				{
					memcpy(s + o, cur(p)->s, cur(p)->n);
					o += cur(p)->n;
					next(p);
				}
				n->value = jv_str(s, o);
				return n;
			}
		case JT_INT:
		case JT_FLOAT:
			next(p);
			if ((n = node(p, JN_CONST, t)) == NULL)
				return NULL;
			n->value = t->kind == JT_INT ? jv_int(t->ival) : jv_float(t->fval);
			return n;
		case JT_LPAREN:
			next(p);
			n = parse_tuple(p, false, true, NULL, true);
			if (n == NULL || !expect(p, JT_RPAREN))
				return NULL;
			return n;
		case JT_LBRACKET:
			return parse_list(p);
		case JT_LBRACE:
			return parse_dict(p);
		case JT_EOF:
			return fail_at(p, t, "unexpected end of template");
		default:
			return fail_at(p, t, "unexpected '%s'", describe(t, buf, sizeof(buf)));
	}
}

/* Unary minus/plus, then postfix, then (when asked) filters and tests. */
static jx_node *
parse_unary(parser *p, bool with_filter)
{
	const jx_token *t = cur(p);
	jx_node    *n;

	if (!enter(p))
		return NULL;
	if (t->kind == JT_SUB || t->kind == JT_ADD)
	{
		next(p);
		if ((n = node(p, t->kind == JT_SUB ? JN_NEG : JN_POS, t)) == NULL ||
			(n->a = parse_unary(p, false)) == NULL)
			return NULL;
	}
	else
		n = parse_primary(p);
	n = parse_postfix(p, n);
	if (with_filter)
		n = parse_filter_expr(p, n);
	p->depth--;
	return n;
}

/* A binary node. */
static jx_node *
binop(parser *p, const jx_token *t, jx_nkind k, int op, jx_node *l, jx_node *r)
{
	jx_node    *n;

	if (l == NULL || r == NULL || (n = node(p, k, t)) == NULL)
		return NULL;
	n->a = l;
	n->b = r;
	n->op = op;
	return n;
}

/* a ** b (left-associative, as jinja2 parses it). */
static jx_node *
parse_pow(parser *p)
{
	jx_node    *l = parse_unary(p, true);

	while (l && cur(p)->kind == JT_POW)
	{
		const jx_token *t = next(p);

		l = binop(p, t, JN_BINOP, JT_POW, l, parse_unary(p, true));
	}
	return l;
}

/* * / // % */
static jx_node *
parse_math2(parser *p)
{
	jx_node    *l = parse_pow(p);

	while (l && (cur(p)->kind == JT_MUL || cur(p)->kind == JT_DIV ||
				 cur(p)->kind == JT_FLOORDIV || cur(p)->kind == JT_MOD))
	{
		const jx_token *t = next(p);

		l = binop(p, t, JN_BINOP, t->kind, l, parse_pow(p));
	}
	return l;
}

/* a ~ b ~ c */
static jx_node *
parse_concat(parser *p)
{
	jx_node    *l = parse_math2(p);

	while (l && cur(p)->kind == JT_TILDE)
	{
		const jx_token *t = next(p);

		l = binop(p, t, JN_CONCAT, JT_TILDE, l, parse_math2(p));
	}
	return l;
}

/* + - */
static jx_node *
parse_math1(parser *p)
{
	jx_node    *l = parse_concat(p);

	while (l && (cur(p)->kind == JT_ADD || cur(p)->kind == JT_SUB))
	{
		const jx_token *t = next(p);

		l = binop(p, t, JN_BINOP, t->kind, l, parse_concat(p));
	}
	return l;
}

/* Chained comparisons, `in`, `not in`. */
static jx_node *
parse_compare(parser *p)
{
	const jx_token *t = cur(p);
	jx_node    *first = parse_math1(p);
	vec			operands = {0};
	int			ops[64];
	jx_node    *n;

	while (first)
	{
		jx_tok		k = cur(p)->kind;
		int			op;
		jx_node    *r;

		if (k == JT_EQ || k == JT_NE || k == JT_LT || k == JT_LE || k == JT_GT || k == JT_GE)
		{
			next(p);
			op = k;
		}
		else if (is_name(p, "in"))
		{
			next(p);
			op = JX_OP_IN;
		}
		else if (is_name(p, "not") && peek(p)->kind == JT_NAME && strcmp(peek(p)->s, "in") == 0)
		{
			next(p);
			next(p);
			op = JX_OP_NOTIN;
		}
		else
			break;
		if (operands.n == 64)
			return fail_at(p, cur(p), "too many chained comparisons");
		if ((r = parse_math1(p)) == NULL || !vec_push(p, &operands, r))
			return NULL;
		ops[operands.n - 1] = op;
	}
	if (first == NULL || operands.n == 0)
		return first;
	if ((n = node(p, JN_COMPARE, t)) == NULL || (n->ops = jx_alloc(p->ar, operands.n * sizeof(int))) == NULL)
		return NULL;
	memcpy(n->ops, ops, operands.n * sizeof(int));
	n->a = first;
	n->kids = (jx_node **) operands.items;
	n->nkids = operands.n;
	return n;
}

/* not x */
static jx_node *
parse_not(parser *p)
{
	if (is_name(p, "not"))
	{
		const jx_token *t = next(p);
		jx_node    *n;

		if (!enter(p))
			return NULL;
		if ((n = node(p, JN_NOT, t)) == NULL || (n->a = parse_not(p)) == NULL)
			return NULL;
		p->depth--;
		return n;
	}
	return parse_compare(p);
}

/* a and b */
static jx_node *
parse_and(parser *p)
{
	jx_node    *l = parse_not(p);

	while (l && is_name(p, "and"))
	{
		const jx_token *t = next(p);

		l = binop(p, t, JN_AND, 0, l, parse_not(p));
	}
	return l;
}

/* a or b */
static jx_node *
parse_or(parser *p)
{
	jx_node    *l = parse_and(p);

	while (l && is_name(p, "or"))
	{
		const jx_token *t = next(p);

		l = binop(p, t, JN_OR, 0, l, parse_and(p));
	}
	return l;
}

/* a if cond [else b] */
static jx_node *
parse_condexpr(parser *p)
{
	jx_node    *e1 = parse_or(p);

	while (e1 && is_name(p, "if"))
	{
		const jx_token *t = next(p);
		jx_node    *n = node(p, JN_COND, t);

		if (n == NULL || (n->b = parse_or(p)) == NULL)
			return NULL;
		n->a = e1;
		if (skip_name(p, "else"))
		{
			if (!enter(p) || (n->c = parse_condexpr(p)) == NULL)
				return NULL;
			p->depth--;
		}
		e1 = n;
	}
	return e1;
}

/* An expression (with or without the conditional form). */
static jx_node *
parse_expression(parser *p, bool with_condexpr)
{
	jx_node    *n;

	if (!enter(p))
		return NULL;
	n = with_condexpr ? parse_condexpr(p) : parse_or(p);
	p->depth--;
	return n;
}

/* Does the current token end a tuple? */
static bool
tuple_end(parser *p, const char *extra_end)
{
	jx_tok		k = cur(p)->kind;

	if (k == JT_VAR_END || k == JT_BLOCK_END || k == JT_RPAREN || k == JT_EOF)
		return true;
	return extra_end && is_name(p, extra_end);
}

/* a, b, c (a tuple) or a single expression. */
static jx_node *
parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end, bool explicit_parens)
{
	const jx_token *t = cur(p);
	vec			args = {0};
	bool		is_tuple = false;
	jx_node    *n;
	char		buf[64];

	for (;;)
	{
		jx_node    *e;

		if (args.n && !expect(p, JT_COMMA))
			return NULL;
		if (tuple_end(p, extra_end))
			break;
		if (simplified)
			e = parse_primary(p);
		else
			e = parse_expression(p, with_condexpr);
		if (e == NULL || !vec_push(p, &args, e))
			return NULL;
		if (cur(p)->kind == JT_COMMA)
			is_tuple = true;
		else
			break;
	}
	if (!is_tuple)
	{
		if (args.n)
			return args.items[0];
		if (!explicit_parens)
			return fail_at(p, cur(p), "expected an expression, got '%s'", describe(cur(p), buf, sizeof(buf)));
	}
	if ((n = node(p, JN_TUPLE, t)) == NULL)
		return NULL;
	n->kids = (jx_node **) args.items;
	n->nkids = args.n;
	return n;
}

/* ---- statements ---- */

/* An assignment target: a name or a tuple of names (for/set). */
static bool
parse_assign_target(parser *p, jx_node *st, const char *extra_end)
{
	const jx_token *t = cur(p);
	jx_node    *target = parse_tuple(p, true, false, extra_end, false);

	if (target == NULL)
		return false;
	if (target->kind == JN_NAME)
	{
		if ((st->names = jx_alloc(p->ar, sizeof(char *))) == NULL)
			return false;
		st->names[0] = target->name;
		st->nnames = 1;
		return true;
	}
	if (target->kind == JN_TUPLE)
	{
		if ((st->names = jx_alloc(p->ar, (target->nkids + 1) * sizeof(char *))) == NULL)
			return false;
		for (size_t i = 0; i < target->nkids; i++)
		{
			if (target->kids[i]->kind != JN_NAME)
			{
				fail_at(p, t, "can't assign to this target (only names and tuples of names)");
				return false;
			}
			st->names[i] = target->kids[i]->name;
		}
		st->nnames = target->nkids;
		st->tuple_target = true;
		return true;
	}
	fail_at(p, t, "can't assign to this target (only names and tuples of names)");
	return false;
}

/* Parse statements up to one of end_names and consume that name; returns the body. */
static jx_node *
parse_statements(parser *p, const char *const *end_names, bool drop_needle)
{
	jx_node    *body;

	if (!expect(p, JT_BLOCK_END))
		return NULL;
	body = subparse(p, end_names);
	if (body == NULL)
		return NULL;
	if (cur(p)->kind == JT_EOF)
	{
		char		want[128] = "";

		for (int i = 0; end_names[i]; i++)
		{
			size_t		l = strlen(want);

			snprintf(want + l, sizeof(want) - l, "%s'%s'", i ? " or " : "", end_names[i]);
		}
		return fail_at(p, cur(p), "unexpected end of template, expected %s", want);
	}
	if (drop_needle)
		next(p);
	return body;
}

static jx_node *parse_statement(parser *p);

/* {% if %} … {% elif %} … {% else %} … {% endif %} */
static jx_node *
parse_if(parser *p, const jx_token *t)
{
	static const char *const ends[] = {"elif", "else", "endif", NULL};
	jx_node    *n = node(p, JN_IF, t),
			   *result = n;

	for (;;)
	{
		if (n == NULL || (n->a = parse_tuple(p, false, false, NULL, false)) == NULL ||
			(n->b = parse_statements(p, ends, false)) == NULL)
			return NULL;
		t = next(p);
		if (strcmp(t->s, "elif") == 0)
		{
			jx_node    *e = node(p, JN_IF, t);

			n->c = e;
			n = e;
			continue;
		}
		if (strcmp(t->s, "else") == 0)
		{
			static const char *const endif[] = {"endif", NULL};

			if ((n->c = parse_statements(p, endif, true)) == NULL)
				return NULL;
		}
		break;
	}
	return result;
}

/* {% for a[, b] in xs [if cond] [recursive] %} … {% else %} … {% endfor %} */
static jx_node *
parse_for(parser *p, const jx_token *t)
{
	static const char *const ends[] = {"endfor", "else", NULL};
	static const char *const endfor[] = {"endfor", NULL};
	jx_node    *n = node(p, JN_FOR, t);
	const jx_token *e;

	if (n == NULL || !parse_assign_target(p, n, "in"))
		return NULL;
	if (!skip_name(p, "in"))
		return fail_at(p, cur(p), "expected 'in' in for loop");
	if ((n->a = parse_tuple(p, false, false, "recursive", false)) == NULL)
		return NULL;
	if (skip_name(p, "if") && (n->d = parse_expression(p, true)) == NULL)
		return NULL;
	if (is_name(p, "recursive"))
		return fail_at(p, cur(p), "recursive for loops are not supported");
	p->loops++;
	n->b = parse_statements(p, ends, false);
	p->loops--;
	if (n->b == NULL)
		return NULL;
	e = next(p);
	if (strcmp(e->s, "else") == 0)
	{
		if ((n->c = parse_statements(p, endfor, true)) == NULL)
			return NULL;
	}
	return n;
}

/* The filters of {% filter f|g %}: a JN_FILTER chain whose innermost input is NULL (the body). */
static jx_node *
parse_filter_chain(parser *p)
{
	return parse_filter(p, NULL, true);
}

/* {% set x = v %}, {% set a, b = v %}, {% set ns.attr = v %}, {% set x %}…{% endset %} */
static jx_node *
parse_set(parser *p, const jx_token *t)
{
	jx_node    *n;

	if (cur(p)->kind == JT_NAME && peek(p)->kind == JT_DOT)
	{
		const jx_token *ns = next(p);
		const jx_token *attr;

		next(p);
		if ((attr = expect(p, JT_NAME)) == NULL)
			return NULL;
		if (!expect(p, JT_ASSIGN) || (n = node(p, JN_SET_NS, t)) == NULL)
			return NULL;
		n->name = ns->s;
		n->text = attr->s;
		n->a = parse_tuple(p, false, true, NULL, false);
		return n->a ? n : NULL;
	}
	if ((n = node(p, JN_SET, t)) == NULL || !parse_assign_target(p, n, NULL))
		return NULL;
	if (cur(p)->kind == JT_ASSIGN)
	{
		next(p);
		n->a = parse_tuple(p, false, true, NULL, false);
		return n->a ? n : NULL;
	}
	{
		static const char *const endset[] = {"endset", NULL};

		if (n->tuple_target)
			return fail_at(p, t, "a block set needs a single name");
		n->kind = JN_SET_BLOCK;
		if (cur(p)->kind == JT_PIPE && (n->a = parse_filter(p, NULL, false)) == NULL)
			return NULL;
		if ((n->b = parse_statements(p, endset, true)) == NULL)
			return NULL;
	}
	return n;
}

/* (a, b=default, ...) of a macro or call block into names/vals. */
static bool
parse_signature(parser *p, jx_node *n)
{
	vec			names = {0},
				defs = {0};

	if (!expect(p, JT_LPAREN))
		return false;
	while (cur(p)->kind != JT_RPAREN)
	{
		const jx_token *a;
		jx_node    *d = NULL;

		if (names.n && !expect(p, JT_COMMA))
			return false;
		if ((a = expect(p, JT_NAME)) == NULL)
			return false;
		if (cur(p)->kind == JT_ASSIGN)
		{
			next(p);
			if ((d = parse_expression(p, true)) == NULL)
				return false;
		}
		else if (defs.n && defs.items[defs.n - 1] != NULL)
		{
			fail_at(p, a, "non-default argument follows default argument");
			return false;
		}
		if (!vec_push(p, &names, (void *) a->s) || !vec_push(p, &defs, d))
			return false;
	}
	if (!expect(p, JT_RPAREN))
		return false;
	n->names = (const char **) names.items;
	n->vals = (jx_node **) defs.items;
	n->nnames = names.n;
	return true;
}

/* {% macro name(args) %} … {% endmacro %} */
static jx_node *
parse_macro(parser *p, const jx_token *t)
{
	static const char *const ends[] = {"endmacro", NULL};
	jx_node    *n = node(p, JN_MACRO, t);
	const jx_token *name;
	int			loops = p->loops;

	if (n == NULL || (name = expect(p, JT_NAME)) == NULL)
		return NULL;
	n->name = name->s;
	if (!parse_signature(p, n))
		return NULL;
	p->loops = 0;
	n->b = parse_statements(p, ends, true);
	p->loops = loops;
	return n->b ? n : NULL;
}

/* {% call[(args)] macro(...) %} … {% endcall %} */
static jx_node *
parse_call_block(parser *p, const jx_token *t)
{
	static const char *const ends[] = {"endcall", NULL};
	jx_node    *n = node(p, JN_CALL_BLOCK, t);

	if (n == NULL)
		return NULL;
	if (cur(p)->kind == JT_LPAREN && !parse_signature(p, n))
		return NULL;
	if ((n->a = parse_expression(p, true)) == NULL)
		return NULL;
	if (n->a->kind != JN_CALL)
		return fail_at(p, t, "expected call");
	{
		int			loops = p->loops;

		p->loops = 0;			/* the body runs as a macro: break/continue cannot leave it */
		n->b = parse_statements(p, ends, true);
		p->loops = loops;
	}
	return n->b ? n : NULL;
}

/* {% with a = 1, b = 2 %} … {% endwith %} */
static jx_node *
parse_with(parser *p, const jx_token *t)
{
	static const char *const ends[] = {"endwith", NULL};
	jx_node    *n = node(p, JN_WITH, t);
	vec			names = {0},
				vals = {0};

	if (n == NULL)
		return NULL;
	while (cur(p)->kind != JT_BLOCK_END)
	{
		const jx_token *a;
		jx_node    *v;

		if (names.n && !expect(p, JT_COMMA))
			return NULL;
		if ((a = expect(p, JT_NAME)) == NULL || !expect(p, JT_ASSIGN) ||
			(v = parse_expression(p, true)) == NULL ||
			!vec_push(p, &names, (void *) a->s) || !vec_push(p, &vals, v))
			return NULL;
	}
	n->names = (const char **) names.items;
	n->vals = (jx_node **) vals.items;
	n->nnames = names.n;
	n->b = parse_statements(p, ends, true);
	return n->b ? n : NULL;
}

/* One {% ... %} statement (the current token is its tag name). */
static jx_node *
parse_statement(parser *p)
{
	const jx_token *t = cur(p);
	jx_node    *n;
	char		buf[64];

	if (t->kind != JT_NAME)
	{
		if (t->kind == JT_EOF)
			return fail_at(p, t, "unexpected end of template");
		return fail_at(p, t, "tag name expected, got '%s'", describe(t, buf, sizeof(buf)));
	}
	if (!enter(p))
		return NULL;
	next(p);
	if (!strcmp(t->s, "if"))
		n = parse_if(p, t);
	else if (!strcmp(t->s, "for"))
		n = parse_for(p, t);
	else if (!strcmp(t->s, "set"))
		n = parse_set(p, t);
	else if (!strcmp(t->s, "macro"))
		n = parse_macro(p, t);
	else if (!strcmp(t->s, "call"))
		n = parse_call_block(p, t);
	else if (!strcmp(t->s, "with"))
		n = parse_with(p, t);
	else if (!strcmp(t->s, "filter"))
	{
		static const char *const ends[] = {"endfilter", NULL};

		if ((n = node(p, JN_FILTER_BLOCK, t)) != NULL &&
			((n->a = parse_filter_chain(p)) == NULL || (n->b = parse_statements(p, ends, true)) == NULL))
			n = NULL;
	}
	else if (!strcmp(t->s, "block") || !strcmp(t->s, "generation"))
	{
		/* a block outside inheritance renders in place; generation is transformers' marker */
		static const char *const endblock[] = {"endblock", NULL};
		static const char *const endgen[] = {"endgeneration", NULL};
		bool		is_block = t->s[0] == 'b';

		if (is_block && expect(p, JT_NAME) == NULL)
			return NULL;
		if (is_block)
			skip_name(p, "scoped"), skip_name(p, "required");
		n = parse_statements(p, is_block ? endblock : endgen, true);
		if (n && is_block && cur(p)->kind == JT_NAME)
			next(p);
	}
	else if (!strcmp(t->s, "print"))
	{
		if ((n = node(p, JN_OUTPUT, t)) != NULL && (n->a = parse_tuple(p, false, true, NULL, false)) == NULL)
			n = NULL;
	}
	else if (!strcmp(t->s, "break") || !strcmp(t->s, "continue"))
	{
		if (p->loops == 0)
			return fail_at(p, t, "'%s' outside of a loop", t->s);
		n = node(p, t->s[0] == 'b' ? JN_BREAK : JN_CONTINUE, t);
	}
	else if (!strcmp(t->s, "include") || !strcmp(t->s, "import") || !strcmp(t->s, "from") ||
			 !strcmp(t->s, "extends"))
	{
		if (!p->failed)
			lg_error_set(p->err, LG_ERR_UNSUPPORTED, "line %d, column %d: the '%s' tag is not supported (a chat template is a single file)",
						 t->line, t->col, t->s);
		p->failed = true;
		return NULL;
	}
	else
		return fail_at(p, t, "encountered unknown tag '%s'", t->s);
	if (n == NULL)
		return NULL;
	p->depth--;
	return n;
}

/* Is the current token (after {%) one of the end names? */
static bool
at_end_name(parser *p, const char *const *end_names)
{
	if (end_names == NULL || cur(p)->kind != JT_NAME)
		return false;
	for (int i = 0; end_names[i]; i++)
		if (strcmp(cur(p)->s, end_names[i]) == 0)
			return true;
	return false;
}

/* Template data, output and statements up to an end name (or EOF at top level). */
static jx_node *
subparse(parser *p, const char *const *end_names)
{
	jx_node    *body = node(p, JN_BODY, cur(p));
	vec			kids = {0};

	if (body == NULL)
		return NULL;
	while (!p->failed)
	{
		const jx_token *t = cur(p);
		jx_node    *n;

		if (t->kind == JT_EOF)
			break;
		if (t->kind == JT_DATA)
		{
			next(p);
			if ((n = node(p, JN_DATA, t)) == NULL)
				return NULL;
			n->text = t->s;
			n->text_len = t->n;
		}
		else if (t->kind == JT_VAR_BEGIN)
		{
			next(p);
			if ((n = node(p, JN_OUTPUT, t)) == NULL ||
				(n->a = parse_tuple(p, false, true, NULL, false)) == NULL || !expect(p, JT_VAR_END))
				return NULL;
		}
		else if (t->kind == JT_BLOCK_BEGIN)
		{
			next(p);
			if (at_end_name(p, end_names))
				break;
			if ((n = parse_statement(p)) == NULL || !expect(p, JT_BLOCK_END))
				return NULL;
		}
		else
			return fail_at(p, t, "internal error: unexpected %s", jx_tok_name(t->kind));
		if (!vec_push(p, &kids, n))
			return NULL;
	}
	if (p->failed)
		return NULL;
	body->kids = (jx_node **) kids.items;
	body->nkids = kids.n;
	return body;
}

/* Parse a whole template. */
lg_status
jx_parse(jx_arena *a, const jx_token *toks, size_t ntoks, jx_node **root, lg_error *err)
{
	parser		p = {.ar = a, .t = toks, .n = ntoks, .err = err};
	jx_node    *body = subparse(&p, NULL);

	if (body == NULL || p.failed)
	{
		if (err && err->status == LG_OK)
			lg_error_set(err, LG_ERR_FORMAT, "template syntax error");
		return err ? err->status : LG_ERR_FORMAT;
	}
	if (cur(&p)->kind != JT_EOF)
	{
		char		buf[64];

		fail_at(&p, cur(&p), "unexpected '%s'", describe(cur(&p), buf, sizeof(buf)));
		return LG_ERR_FORMAT;
	}
	*root = body;
	return LG_OK;
}
