/*
 * json_value.c — JSON text to a tree and back, on top of json.c's reader.
 *
 * The reader checks a whole array or object (to LG_JSON_MAX_DEPTH) before
 * reporting it, so by the time a container is walked here its depth is
 * known to be bounded and the recursion cannot run away.
 */
#include <stdlib.h>
#include <string.h>

#include "json_value.h"

static void
node_free_items(lg_json_node *n)
{
	for (size_t i = 0; i < n->n; i++)
	{
		lg_json_node_free(n->items[i]);
		if (n->keys)
			free(n->keys[i]);
	}
	free(n->items);
	free(n->keys);
	free(n->key_lens);
}

/* Free a tree (NULL is fine). */
void
lg_json_node_free(lg_json_node *n)
{
	if (n == NULL)
		return;
	node_free_items(n);
	free(n->str);
	free(n);
}

/* A malloc'd NUL-terminated copy of s[0..len). */
static char *
copy_bytes(const char *s, size_t len)
{
	char	   *c = malloc(len + 1);

	if (c == NULL)
		return NULL;
	if (len > 0)
		memcpy(c, s, len);
	c[len] = '\0';
	return c;
}

/* Append child (and, for objects, its key) to n, growing the arrays by doubling. */
static bool
node_push(lg_json_node *n, lg_json_node *child, const lg_buf *key, size_t *cap)
{
	if (n->n == *cap)
	{
		size_t		nc = *cap ? *cap * 2 : 4;
		lg_json_node **items = realloc(n->items, nc * sizeof(*items));

		if (items == NULL)
			return false;
		n->items = items;
		if (key != NULL)
		{
			char	  **keys = realloc(n->keys, nc * sizeof(*keys));
			size_t	   *lens;

			if (keys == NULL)
				return false;
			n->keys = keys;
			lens = realloc(n->key_lens, nc * sizeof(*lens));
			if (lens == NULL)
				return false;
			n->key_lens = lens;
		}
		*cap = nc;
	}
	if (key != NULL)
	{
		char	   *k = copy_bytes(key->data ? key->data : "", key->len);

		if (k == NULL)
			return false;
		n->keys[n->n] = k;
		n->key_lens[n->n] = key->len;
	}
	n->items[n->n++] = child;
	return true;
}

static lg_json_node *build(const char *in, size_t len, const lg_json_value *v, lg_error *err);

/* Walk the array or object v spans and build its children into n. */
static lg_status
build_children(lg_json_node *n, const char *in, size_t len, const lg_json_value *v, lg_error *err)
{
	lg_json_iter it;
	lg_json_value cv;
	lg_buf		key;
	size_t		cap = 0;
	bool		is_obj = v->kind == LG_JSON_OBJECT;
	lg_status	st;

	lg_json_value_init(&cv);
	lg_buf_init(&key);
	st = is_obj ? lg_json_object_begin(&it, in, len, v->start, err)
		: lg_json_array_begin(&it, in, len, v->start, err);
	while (st == LG_OK)
	{
		lg_json_node *child;

		st = is_obj ? lg_json_object_next(&it, &key, &cv, err) : lg_json_array_next(&it, &cv, err);
		if (st != LG_OK || it.done)
			break;
		if ((child = build(in, len, &cv, err)) == NULL)
		{
			st = err && err->status != LG_OK ? err->status : LG_ERR_NOMEM;
			break;
		}
		if (!node_push(n, child, is_obj ? &key : NULL, &cap))
		{
			lg_json_node_free(child);
			st = lg_error_set(err, LG_ERR_NOMEM, "out of memory building a JSON tree");
			break;
		}
	}
	lg_json_value_free(&cv);
	lg_buf_free(&key);
	return st;
}

/* One node from the value the reader reported. */
static lg_json_node *
build(const char *in, size_t len, const lg_json_value *v, lg_error *err)
{
	lg_json_node *n = calloc(1, sizeof(*n));

	if (n == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory building a JSON tree");
		return NULL;
	}
	n->kind = v->kind;
	switch (v->kind)
	{
		case LG_JSON_NULL:
			break;
		case LG_JSON_BOOL:
			n->boolean = v->boolean;
			break;
		case LG_JSON_NUMBER:
			n->number = v->number;
			n->is_int = v->is_int;
			n->integer = v->integer;
			n->str_len = v->end - v->start;
			n->str = copy_bytes(in + v->start, n->str_len);
			break;
		case LG_JSON_STRING:
			n->str_len = v->str.len;
			n->str = copy_bytes(v->str.data ? v->str.data : "", v->str.len);
			break;
		case LG_JSON_ARRAY:
		case LG_JSON_OBJECT:
			if (build_children(n, in, len, v, err) != LG_OK)
			{
				lg_json_node_free(n);
				return NULL;
			}
			return n;
	}
	if ((v->kind == LG_JSON_NUMBER || v->kind == LG_JSON_STRING) && n->str == NULL)
	{
		lg_json_node_free(n);
		lg_error_set(err, LG_ERR_NOMEM, "out of memory building a JSON tree");
		return NULL;
	}
	return n;
}

/* Parse exactly one JSON value (surrounded by optional whitespace) into a tree. */
lg_json_node *
lg_json_parse(const char *in, size_t len, lg_error *err)
{
	lg_json_value v;
	lg_json_node *n = NULL;
	size_t		pos = 0;

	lg_json_value_init(&v);
	if (lg_json_parse_value(in, len, &pos, &v, err) == LG_OK)
	{
		if (!lg_json_at_end(in, len, &pos))
			lg_error_set(err, LG_ERR_FORMAT, "unexpected text after the JSON value at offset %zu", pos);
		else
			n = build(in, len, &v, err);
	}
	lg_json_value_free(&v);
	return n;
}

/* The last member named key, as JSON.parse keeps the last of repeated keys. */
const lg_json_node *
lg_json_get(const lg_json_node *n, const char *key)
{
	size_t		klen;

	if (n == NULL || n->kind != LG_JSON_OBJECT)
		return NULL;
	klen = strlen(key);
	for (size_t i = n->n; i-- > 0;)
		if (n->key_lens[i] == klen && memcmp(n->keys[i], key, klen) == 0)
			return n->items[i];
	return NULL;
}

/* A string member's value, or NULL. */
const char *
lg_json_get_str(const lg_json_node *n, const char *key)
{
	const lg_json_node *v = lg_json_get(n, key);

	return v != NULL && v->kind == LG_JSON_STRING ? v->str : NULL;
}

/* Element i of an array, or NULL. */
const lg_json_node *
lg_json_at(const lg_json_node *n, size_t i)
{
	if (n == NULL || n->kind != LG_JSON_ARRAY || i >= n->n)
		return NULL;
	return n->items[i];
}

/* The value of member name[0..len) of an object (last of repeats), or NULL. */
static const lg_json_node *
get_len(const lg_json_node *n, const char *key, size_t klen)
{
	for (size_t i = n->n; i-- > 0;)
		if (n->key_lens[i] == klen && memcmp(n->keys[i], key, klen) == 0)
			return n->items[i];
	return NULL;
}

/* Number of distinct member names (repeats count once). */
static size_t
distinct_keys(const lg_json_node *n)
{
	size_t		count = 0;

	for (size_t i = 0; i < n->n; i++)
		if (get_len(n, n->keys[i], n->key_lens[i]) == n->items[i])
			count++;
	return count;
}

/* JSON equality (JSON Schema's for enum and const): 1 and 1.0 are equal. */
bool
lg_json_equal(const lg_json_node *a, const lg_json_node *b)
{
	if (a == NULL || b == NULL || a->kind != b->kind)
		return a == b;
	switch (a->kind)
	{
		case LG_JSON_NULL:
			return true;
		case LG_JSON_BOOL:
			return a->boolean == b->boolean;
		case LG_JSON_NUMBER:
			if (a->is_int && b->is_int)
				return a->integer == b->integer;
			return a->number == b->number;
		case LG_JSON_STRING:
			return a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0;
		case LG_JSON_ARRAY:
			if (a->n != b->n)
				return false;
			for (size_t i = 0; i < a->n; i++)
				if (!lg_json_equal(a->items[i], b->items[i]))
					return false;
			return true;
		case LG_JSON_OBJECT:
			if (distinct_keys(a) != distinct_keys(b))
				return false;
			for (size_t i = 0; i < a->n; i++)
			{
				const lg_json_node *bv = get_len(b, a->keys[i], a->key_lens[i]);

				if (get_len(a, a->keys[i], a->key_lens[i]) != a->items[i])
					continue;	/* an overridden repeat */
				if (bv == NULL || !lg_json_equal(a->items[i], bv))
					return false;
			}
			return true;
	}
	return false;
}

/* The JSON name of a kind, as error messages and JSON Schema's "type" say it. */
const char *
lg_json_kind_name(lg_json_kind k)
{
	switch (k)
	{
		case LG_JSON_NULL:
			return "null";
		case LG_JSON_BOOL:
			return "boolean";
		case LG_JSON_NUMBER:
			return "number";
		case LG_JSON_STRING:
			return "string";
		case LG_JSON_ARRAY:
			return "array";
		case LG_JSON_OBJECT:
			return "object";
	}
	return "?";
}

/* A newline and indent * level spaces, when indenting. */
static bool
write_newline(lg_buf *b, int indent, int level)
{
	if (indent <= 0)
		return true;
	if (!lg_buf_append(b, "\n", 1))
		return false;
	for (int i = 0; i < indent * level; i++)
		if (!lg_buf_append(b, " ", 1))
			return false;
	return true;
}

static bool
write_at(lg_buf *b, const lg_json_node *n, int indent, int level)
{
	bool		is_obj;

	switch (n->kind)
	{
		case LG_JSON_NULL:
			return lg_buf_append(b, "null", 4);
		case LG_JSON_BOOL:
			return n->boolean ? lg_buf_append(b, "true", 4) : lg_buf_append(b, "false", 5);
		case LG_JSON_NUMBER:
			return lg_buf_append(b, n->str, n->str_len);
		case LG_JSON_STRING:
			return lg_buf_append_json_str(b, n->str, n->str_len);
		case LG_JSON_ARRAY:
		case LG_JSON_OBJECT:
			break;
	}
	is_obj = n->kind == LG_JSON_OBJECT;
	if (!lg_buf_append(b, is_obj ? "{" : "[", 1))
		return false;
	for (size_t i = 0; i < n->n; i++)
	{
		if (i > 0 && !lg_buf_append(b, ",", 1))
			return false;
		if (!write_newline(b, indent, level + 1))
			return false;
		if (is_obj)
		{
			if (!lg_buf_append_json_str(b, n->keys[i], n->key_lens[i]))
				return false;
			if (!lg_buf_append(b, indent > 0 ? ": " : ":", indent > 0 ? 2 : 1))
				return false;
		}
		if (!write_at(b, n->items[i], indent, level + 1))
			return false;
	}
	if (n->n > 0 && !write_newline(b, indent, level))
		return false;
	return lg_buf_append(b, is_obj ? "}" : "]", 1);
}

/* Append the tree as JSON text, compact or indented like json.dumps(indent=…). */
bool
lg_json_write(lg_buf *b, const lg_json_node *n, int indent)
{
	return write_at(b, n, indent, 0);
}
