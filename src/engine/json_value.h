/*
 * json_value.h — a JSON document as a tree, for inputs that must be walked
 * more than once or in no fixed order: JSON Schemas, chat messages, tool
 * definitions.  The line protocols keep using the streaming reader in json.h;
 * this is built on it, so the parsing rules (strict RFC 8259, UTF-8, depth
 * at most LG_JSON_MAX_DEPTH, input need not be NUL-terminated) are the same.
 *
 * Objects keep their members in document order (a schema's "properties"
 * order is the order keys are generated in); duplicate keys are kept too,
 * and lg_json_get returns the last one, as JSON.parse and jsonb do.
 */
#ifndef LG_JSON_VALUE_H
#define LG_JSON_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

typedef struct lg_json_node lg_json_node;

struct lg_json_node
{
	lg_json_kind kind;
	bool		boolean;		/* LG_JSON_BOOL */
	double		number;			/* LG_JSON_NUMBER */
	bool		is_int;			/* a number written without fraction or exponent that fits int64 */
	int64_t		integer;		/* when is_int */
	char	   *str;			/* STRING: decoded, NUL-terminated (may hold NULs: see str_len);
								 * NUMBER: the literal as written */
	size_t		str_len;
	size_t		n;				/* ARRAY: elements; OBJECT: members */
	lg_json_node **items;		/* ARRAY: the elements; OBJECT: the members' values */
	char	  **keys;			/* OBJECT: the members' names, decoded, NUL-terminated */
	size_t	   *key_lens;		/* OBJECT: their lengths (a name may hold a NUL) */
};

/* Parse len bytes that must hold exactly one JSON value (whitespace around it allowed). */
lg_json_node *lg_json_parse(const char *in, size_t len, lg_error *err);
void		lg_json_node_free(lg_json_node *n);

/* The value of member key of an object (the last one if repeated); NULL if absent or n is no object. */
const lg_json_node *lg_json_get(const lg_json_node *n, const char *key);
/* The string value of member key, or NULL when absent or not a string. */
const char *lg_json_get_str(const lg_json_node *n, const char *key);
/* Element i of an array, or NULL. */
const lg_json_node *lg_json_at(const lg_json_node *n, size_t i);
/* JSON equality: numbers by value, objects regardless of member order, arrays in order. */
bool		lg_json_equal(const lg_json_node *a, const lg_json_node *b);
/* The name of a kind: "null", "boolean", "number", "string", "array", "object". */
const char *lg_json_kind_name(lg_json_kind k);

/*
 * Append n as JSON text: compact (no whitespace) or, with indent > 0, one
 * member per line indented by that many spaces and ": " after keys, as
 * Python's json.dumps(indent=…) writes.  Numbers are written as they were
 * read.  Returns false when out of memory.
 */
bool		lg_json_write(lg_buf *b, const lg_json_node *n, int indent);

#endif							/* LG_JSON_VALUE_H */
