/*
 * jinja.h — the Jinja2 subset interpreter behind chat_template.h: tokens,
 * syntax tree, values and the render context, shared by jinja_lex.c,
 * jinja_parse.c, jinja_value.c, jinja_eval.c, jinja_filters.c,
 * jinja_methods.c and jinja_json.c.
 *
 * Memory: a parsed template lives in one arena; each render has its own
 * arena, capped at LG_CHAT_MAX_MEMORY, freed in one go at the end.  Values
 * are small structs passed by copy; strings, lists and dicts they point to
 * are arena memory, never freed separately and (but for namespaces and the
 * one-shot iterators) never changed after creation, as the immutable
 * sandbox of Hugging Face wants.
 *
 * Strings are UTF-8 (the template is checked at parse time, JSON input by
 * its reader); lengths, indexes and slices count code points as Python does.
 */
#ifndef LG_JINJA_H
#define LG_JINJA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "json.h"
#include "json_value.h"
#include "lg_error.h"

/* ---- arena ---- */

typedef struct jx_chunk jx_chunk;
typedef struct jx_arena
{
	jx_chunk   *head;
	size_t		used;			/* bytes handed out, all chunks */
	size_t		limit;			/* 0 = none */
} jx_arena;

void		jx_arena_init(jx_arena *a, size_t limit);
void		jx_arena_free(jx_arena *a);
/* n bytes, 16-aligned, zeroed; NULL past the limit or out of memory. */
void	   *jx_alloc(jx_arena *a, size_t n);
/* A NUL-terminated copy of s[0..n). */
char	   *jx_strdup(jx_arena *a, const char *s, size_t n);

/* ---- tokens ---- */

typedef enum jx_tok
{
	JT_EOF,
	JT_DATA,					/* template text, whitespace control applied */
	JT_VAR_BEGIN, JT_VAR_END, JT_BLOCK_BEGIN, JT_BLOCK_END,
	JT_NAME, JT_STRING, JT_INT, JT_FLOAT,
	/* operators */
	JT_ADD, JT_SUB, JT_MUL, JT_DIV, JT_FLOORDIV, JT_MOD, JT_POW, JT_TILDE,
	JT_LBRACKET, JT_RBRACKET, JT_LPAREN, JT_RPAREN, JT_LBRACE, JT_RBRACE,
	JT_EQ, JT_NE, JT_GT, JT_GE, JT_LT, JT_LE, JT_ASSIGN, JT_DOT, JT_COLON,
	JT_PIPE, JT_COMMA, JT_SEMICOLON
} jx_tok;

typedef struct jx_token
{
	jx_tok		kind;
	int			line;
	int			col;
	const char *s;				/* NAME, DATA, STRING (decoded), operator text */
	size_t		n;
	int64_t		ival;			/* INT */
	double		fval;			/* FLOAT */
} jx_token;

/*
 * Tokenize src (newlines already normalized by the caller) into an arena
 * array ending with JT_EOF.  Errors: LG_ERR_FORMAT "line L, column C: ...".
 */
lg_status	jx_lex(jx_arena *a, const char *src, size_t len, jx_token **toks, size_t *ntoks,
				   lg_error *err);
/* The printable name of a token kind, for messages ("end of print statement"). */
const char *jx_tok_name(jx_tok k);

/* ---- syntax tree ---- */

typedef enum jx_nkind
{
	/* expressions */
	JN_CONST, JN_NAME, JN_LIST, JN_TUPLE, JN_DICT, JN_GETATTR, JN_GETITEM, JN_SLICE,
	JN_CALL, JN_FILTER, JN_TEST, JN_NEG, JN_POS, JN_NOT, JN_AND, JN_OR, JN_BINOP,
	JN_CONCAT, JN_COMPARE, JN_COND,
	/* statements */
	JN_BODY, JN_DATA, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SET_NS, JN_SET_BLOCK,
	JN_MACRO, JN_CALL_BLOCK, JN_FILTER_BLOCK, JN_WITH, JN_BREAK, JN_CONTINUE
} jx_nkind;

typedef struct jx_node jx_node;

/* ---- values ---- */

typedef enum jx_vkind
{
	JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR,
	JV_LIST,					/* list or tuple (l->tuple) */
	JV_DICT,
	JV_NS,						/* namespace(): a dict whose attributes may be set */
	JV_ITER,					/* a one-shot iterator (generator, dict_items, reversed) */
	JV_MACRO, JV_FUNC, JV_METHOD, JV_LOOP
} jx_vkind;

typedef struct jx_list jx_list;
typedef struct jx_dict jx_dict;
typedef struct jx_macro jx_macro;
typedef struct jx_method jx_method;
typedef struct jx_loop jx_loop;

typedef struct jv
{
	jx_vkind	kind;
	bool		safe;			/* STR: a Markup (from |safe or |escape): `+` escapes plain strings joined to it */
	union
	{
		bool		b;
		int64_t		i;
		double		f;
		struct
		{
			const char *p;		/* STR: the text; UNDEF: the name it stands for, or NULL */
			size_t		n;		/* STR: bytes; UNDEF: 1 when p is a whole message (jinja2's hint) */
		}			s;
		jx_list    *l;			/* LIST, ITER */
		jx_dict    *d;			/* DICT, NS */
		jx_macro   *m;
		jx_method  *bm;
		jx_loop    *loop;
		int			fn;			/* FUNC: a jx_global */
	}			u;
} jv;

struct jx_list
{
	jv		   *items;
	size_t		n;
	bool		tuple;
	bool		consumed;		/* ITER: iterated once already */
	const char *what;			/* ITER: "generator", "dict_itemiterator", ... */
};

struct jx_dict
{
	jv		   *keys;
	jv		   *vals;
	size_t		n;
	size_t		cap;
};

typedef struct jx_scope jx_scope;

struct jx_macro
{
	const jx_node *def;
	jx_scope   *closure;		/* where it was defined: names resolve there at call time */
	jv			caller;			/* the body of a {% call %} block, or undefined */
};

struct jx_method
{
	jv			self;
	const char *name;
};

struct jx_loop
{
	jx_list    *items;
	size_t		index0;
	int			depth;
};

/* Built-in global functions. */
typedef enum jx_global
{
	JG_RANGE, JG_NAMESPACE, JG_DICT, JG_RAISE_EXCEPTION, JG_STRFTIME_NOW
} jx_global;

/* ---- syntax tree nodes ---- */

struct jx_node
{
	jx_nkind	kind;
	int			line;
	int			col;
	jx_node    *a;				/* operand, condition, iterable, value, target */
	jx_node    *b;				/* right operand, key, body */
	jx_node    *c;				/* else (cond expr, if, for), slice step */
	jx_node    *d;				/* for-loop filter (`for x in xs if d`) */
	jx_node   **kids;			/* elements, arguments, statements, compare operands */
	size_t		nkids;
	const char **names;			/* keyword argument names, macro parameters, for/set targets */
	jx_node   **vals;			/* keyword argument values, macro defaults (NULL: none) */
	size_t		nnames;
	const char *name;			/* NAME, attribute, filter/test, macro, namespace variable */
	const char *text;			/* DATA */
	size_t		text_len;
	jv			value;			/* CONST */
	int			op;				/* BINOP: jx_tok; COMPARE: ops in ops[] */
	int		   *ops;			/* COMPARE: one jx_tok per operand (JT_NAME = in, JT_NOT = not in) */
	bool		tuple_target;	/* FOR/SET: names[] unpack a tuple */
};

/* Compare operator codes beyond jx_tok for `in` and `not in`. */
#define JX_OP_IN		1000
#define JX_OP_NOTIN		1001

/* Parse tokens into a body node.  Errors: LG_ERR_FORMAT "line L, column C: ...". */
lg_status	jx_parse(jx_arena *a, const jx_token *toks, size_t ntoks, jx_node **root, lg_error *err);

/* Does a filter or test of this name exist (checked at parse time as Jinja2 does)? */
bool		jx_filter_exists(const char *name);
bool		jx_test_exists(const char *name);

/* ---- render context ---- */

struct jx_scope
{
	jx_scope   *parent;
	const char **names;
	jv		   *vals;
	size_t		n;
	size_t		cap;
};

typedef struct jx_ctx
{
	jx_arena	ar;
	lg_error   *err;
	lg_buf	   *out;			/* where output goes now (a capture buffer inside macros) */
	size_t		steps;
	int			depth;
	int			line;			/* of the node being evaluated, for messages */
	int			ctrl;			/* JX_CTRL_* after break/continue until the loop sees it */
	int64_t		now_unix;
	bool		too_deep;		/* == or < met values nested deeper than LG_CHAT_MAX_DEPTH */
} jx_ctx;

#define JX_CTRL_NONE		0
#define JX_CTRL_BREAK		1
#define JX_CTRL_CONTINUE	2

/* Failures: set ctx->err and return false.  Runtime errors name the line. */
bool		jx_fail(jx_ctx *c, lg_status st, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));
bool		jx_nomem(jx_ctx *c);
bool		jx_undefined_error(jx_ctx *c, jv v);
/* Count one step (iteration, call); false past LG_CHAT_MAX_STEPS. */
bool		jx_step(jx_ctx *c, size_t n);

/* ---- value helpers (jinja_value.c) ---- */

jv			jv_undef(const char *name);
jv			jv_none(void);
jv			jv_bool(bool b);
jv			jv_int(int64_t i);
jv			jv_float(double f);
jv			jv_str(const char *p, size_t n);	/* no copy */
bool		jv_strdup(jx_ctx *c, const char *p, size_t n, jv *out);
bool		jv_new_list(jx_ctx *c, size_t n, bool tuple, jv *out);	/* n items, undefined */
bool		jv_new_iter(jx_ctx *c, jx_list *items, const char *what, jv *out);
bool		jv_new_dict(jx_ctx *c, jx_vkind kind, size_t cap, jv *out);
/* Set key (replacing an equal key, keeping its place); false when out of memory. */
bool		jx_dict_set(jx_ctx *c, jx_dict *d, jv key, jv val);
/* The value under key, or NULL. */
jv		   *jx_dict_get(const jx_dict *d, jv key);
jv		   *jx_dict_get_str(const jx_dict *d, const char *key);

bool		jv_truthy(jv v);
bool		jv_is_num(jv v);	/* bool, int, float */
double		jv_num(jv v);
const char *jv_type_name(jv v);	/* Python's type name: "str", "int", "NoneType" ... */
/* Python ==. */
bool		jv_equal(jx_ctx *c, jv a, jv b);
/* Python ordering for <, <=, >, >=: -1/0/1 in *r; false (error set) when not comparable. */
bool		jv_compare(jx_ctx *c, jv a, jv b, int *r);

/* Append str(v) / repr(v) as Python writes them. */
bool		jx_append_str(jx_ctx *c, lg_buf *b, jv v);
bool		jx_append_repr(jx_ctx *c, lg_buf *b, jv v);
/* str(v) as a string value. */
bool		jv_to_str(jx_ctx *c, jv v, jv *out);
/* Python repr of a float ("1.0", "1e+16", "inf"). */
void		jx_float_repr(double f, char *buf, size_t size);

/* Iterate: a list of the items `for x in v` would see (dict: keys; str: chars). */
bool		jv_iterate(jx_ctx *c, jv v, jx_list **out);
/* len(v), or an error. */
bool		jv_length(jx_ctx *c, jv v, int64_t *n);

/* UTF-8 helpers: code points in s[0..n); byte offset of code point i. */
size_t		jx_utf8_count(const char *s, size_t n);
size_t		jx_utf8_offset(const char *s, size_t n, size_t cpt);
/* Python str.isspace for one code point. */
bool		jx_is_space(uint32_t cp);
uint32_t	jx_toupper(uint32_t cp);
uint32_t	jx_tolower(uint32_t cp);

/* ---- JSON (jinja_json.c) ---- */

/* A JSON tree as Python's json.loads gives it (objects → dicts in order). */
bool		jx_from_json(jx_ctx *c, const lg_json_node *n, jv *out);
/* json.dumps(v, ensure_ascii=False, indent, separators, sort_keys); indent NULL/"" rules as Python's. */
bool		jx_tojson(jx_ctx *c, lg_buf *b, jv v, bool has_indent, const char *indent,
					  size_t indent_len, const char *item_sep, const char *key_sep, bool sort_keys);

/* ---- evaluation (jinja_eval.c) ---- */

bool		jx_eval(jx_ctx *c, jx_scope *s, const jx_node *n, jv *out);
bool		jx_exec(jx_ctx *c, jx_scope *s, const jx_node *n);
jx_scope   *jx_scope_new(jx_ctx *c, jx_scope *parent);
bool		jx_scope_set(jx_ctx *c, jx_scope *s, const char *name, jv v);
jv		   *jx_scope_lookup(jx_scope *s, const char *name);
/* a op b (op a jx_tok: + - * / // % **) with Python's rules. */
bool		jx_binop(jx_ctx *c, int op, jv a, jv b, jv *out);
/* Call a callable value with evaluated arguments. */
bool		jx_call_value(jx_ctx *c, jv fn, jv *args, size_t nargs, const char **kwnames,
						  jv *kwvals, size_t nkw, jv *out);
/* obj.name as Jinja's sandbox resolves it (attribute first, then item). */
bool		jx_getattr(jx_ctx *c, jv obj, const char *name, jv *out);
/* obj[key] as Jinja resolves it (item first, then attribute). */
bool		jx_getitem(jx_ctx *c, jv obj, jv key, jv *out);

/* ---- filters and tests (jinja_filters.c, jinja_tests.c) ---- */

bool		jx_apply_filter(jx_ctx *c, const char *name, jv in, jv *args, size_t nargs,
							const char **kwnames, jv *kwvals, size_t nkw, jv *out);
bool		jx_apply_test(jx_ctx *c, const char *name, jv in, jv *args, size_t nargs, bool *out);

/* ---- methods and globals (jinja_methods.c) ---- */

/* Is name a method of v's type (for attribute lookup)? */
bool		jx_has_method(jv v, const char *name);
bool		jx_call_method(jx_ctx *c, jv self, const char *name, jv *args, size_t nargs,
						   const char **kwnames, jv *kwvals, size_t nkw, jv *out);
bool		jx_call_global(jx_ctx *c, int fn, jv *args, size_t nargs, const char **kwnames,
						   jv *kwvals, size_t nkw, jv *out);
/* String operations shared by filters and methods (jinja_filters.c). */
/* str.strip(chars): which 1 = left, 2 = right, 3 = both; chars NULL = whitespace. */
bool		jx_strip(jx_ctx *c, jv s, const jv *chars, int which, jv *out);
/* str.replace(old, new, count); count < 0 = all. */
bool		jx_replace(jx_ctx *c, jv s, jv old, jv new, int64_t count, jv *out);
/* markupsafe's escape(): & < > ' " as entities; the result is Markup. */
bool		jx_html_escape(jx_ctx *c, jv s, jv *out);
/* Python's printf-style str % args. */
bool		jx_percent_format(jx_ctx *c, jv fmt, jv args, jv *out);

#endif							/* LG_JINJA_H */
