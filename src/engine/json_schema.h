/*
 * json_schema.h — JSON Schema to GBNF: the grammar of the JSON texts a
 * schema accepts, for constrained decoding (grammar.h).
 *
 * The output accepts a subset of the valid instances, never an invalid one:
 * a keyword that cannot be enforced is an error naming it and its location
 * (LG_ERR_UNSUPPORTED), never silently dropped.  Keys come in the order of
 * the schema's "properties", then any additional ones; whitespace between
 * tokens is flexible but bounded, or absent when compact.  docs/
 * structured-output.md lists the keywords and how each is compiled.
 */
#ifndef LG_JSON_SCHEMA_H
#define LG_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"
#include "lg_error.h"

typedef struct lg_json_schema_opts
{
	bool		compact;		/* no optional whitespace */
	bool		strict_additional;	/* absent additionalProperties means false
									 * (default: allowed, as the spec says) */
	const char *rule_prefix;	/* NULL or "" → rules named plainly and the
								 * start rule is "root"; else every rule name
								 * starts with the prefix and the start rule
								 * is "<prefix>root", so several schemas can
								 * live in one grammar (tool calls) */
} lg_json_schema_opts;

/*
 * Schema text → GBNF text appended to out.  Invalid schema: LG_ERR_FORMAT; a
 * keyword we cannot enforce: LG_ERR_UNSUPPORTED.  The message names the
 * keyword and its location as a JSON Pointer, e.g. `unsupported keyword
 * "uniqueItems" at #/properties/tags`.  o may be NULL (defaults).
 */
lg_status	lg_json_schema_to_gbnf(const char *schema, size_t len, const lg_json_schema_opts *o,
								   lg_buf *out, lg_error *err);

#endif							/* LG_JSON_SCHEMA_H */
