/*
 * json_schema_impl.h — shared state of the JSON Schema compiler, split over
 * json_schema.c (walker, rules, $ref, anyOf/oneOf), json_schema_merge.c
 * (allOf), json_schema_object.c (objects, arrays), json_schema_string.c
 * (strings, formats, literals) and json_schema_number.c (numeric bounds).
 *
 * Every schema node becomes one GBNF rule (memoised by node, which is what
 * makes recursive $refs work); helpers return GBNF expressions appended to a
 * buffer.  The first error is kept in the context and every later step
 * returns at once.
 */
#ifndef LG_JSON_SCHEMA_IMPL_H
#define LG_JSON_SCHEMA_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "json_schema.h"
#include "json_value.h"
#include "lg_error.h"

/* JSON types as a bit set; integer is a subset of number. */
enum
{
	JS_T_NULL = 1, JS_T_BOOL = 2, JS_T_INT = 4, JS_T_NUM = 8,
	JS_T_STR = 16, JS_T_ARR = 32, JS_T_OBJ = 64, JS_T_ALL = 127
};

/* Primitive rules, emitted at the end when used. */
enum
{
	JS_P_WS = 1, JS_P_VALUE = 2, JS_P_OBJECT = 4, JS_P_ARRAY = 8, JS_P_STRING = 16,
	JS_P_CHAR = 32, JS_P_NUMBER = 64, JS_P_INTEGER = 128, JS_P_BOOLEAN = 256,
	JS_P_NULL = 512, JS_P_CHARL = 1024, JS_P_DIGITS = 2048
};

typedef struct js_rule
{
	char	   *name;
	char	   *body;			/* NULL until defined */
	bool		node;			/* a schema node's rule (not shared by body) */
} js_rule;

typedef struct js_memo
{
	const lg_json_node *node;
	const char *name;
	bool		busy;			/* being compiled: a $ref back here recurses */
	int			nest;			/* c->nest when it started */
} js_memo;

typedef struct js_ctx
{
	const lg_json_node *root;
	bool		compact;
	bool		strict_additional;
	bool		ref_siblings;	/* keywords next to "$ref" apply (2019-09 and later) */
	const char *prefix;
	js_rule    *rules;
	size_t		n_rules, cap_rules;
	js_memo    *memo;			/* open addressing on the node pointer */
	size_t		cap_memo, n_memo;
	lg_json_node **owned;		/* synthetic nodes made by merging */
	size_t		n_owned, cap_owned;
	unsigned	prims;
	int			depth;
	int			nest;			/* objects and arrays opened: recursion below one consumes input */
	lg_status	st;
	lg_error   *err;
} js_ctx;

/* json_schema.c */
bool		js_fail(js_ctx *c, lg_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool		js_oom(js_ctx *c);
const char *js_prim(js_ctx *c, unsigned p);
const char *js_ws(js_ctx *c);
const char *js_rule_add(js_ctx *c, const char *hint, const char *body);
const char *js_visit(js_ctx *c, const lg_json_node *s, const char *path);
char	   *js_path(const char *parent, const char *seg);
char	   *js_path_i(const char *parent, const char *seg, size_t i);
const lg_json_node *js_resolve_ref(js_ctx *c, const lg_json_node *s, const char *path);
unsigned	js_types(const lg_json_node *s);
unsigned	js_accept_types(const lg_json_node *s);
bool		js_is_annotation(const char *key);
const lg_json_node *js_norm(const lg_json_node *s);
bool		js_obviously_empty(const lg_json_node *s);
const lg_json_node *js_deref(js_ctx *c, const lg_json_node *s, const char *path);
/* True when schema v accepts every value (true, or {} with only annotations). */
bool		js_trivial(const lg_json_node *v);
/*
 * A length or count keyword (minLength, maxItems, …): its value, or dflt
 * when absent or on error (recorded).  A value above the largest bound the
 * grammar engine counts (LG_GRAMMAR_MAX_REPEAT) is unsupported, not
 * relaxed.
 */
long		js_bound_kw(js_ctx *c, const lg_json_node *s, const char *kw, long dflt, const char *path);

/* json_schema_merge.c */
lg_json_node *js_node_new(js_ctx *c, lg_json_kind kind, size_t n);
lg_json_node *js_merge(js_ctx *c, const lg_json_node *const *parts, size_t n, const char *path);
const lg_json_node *js_without(js_ctx *c, const lg_json_node *s, const char *const *drop, size_t n_drop);
lg_json_node *js_with(js_ctx *c, const lg_json_node *s, const char *key, const lg_json_node *v);
extern const lg_json_node js_true_node;
extern const lg_json_node js_false_node;

/* json_schema_object.c */
bool		js_object_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out);
bool		js_array_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out);

/* json_schema_string.c */
bool		js_string_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out);
bool		js_literal_expr(js_ctx *c, const lg_json_node *v, lg_buf *out);
bool		js_gbnf_lit(lg_buf *out, const char *s, size_t n);
bool		js_json_encode(lg_buf *out, const char *s, size_t n);

/* json_schema_number.c */
bool		js_integer_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out);
bool		js_number_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out);
bool		js_int_range(lg_buf *out, bool has_lo, int64_t lo, bool has_hi, int64_t hi);

#endif							/* LG_JSON_SCHEMA_IMPL_H */
