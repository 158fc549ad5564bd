/*
 * json.h — the small JSON reader and writer the engine and the CLI need:
 * JSON strings (with every escape, surrogate pairs, and invalid UTF-8 in
 * output escaped safely), numbers, and flat arrays/objects for the line
 * protocols.  Parsing is strict (RFC 8259: no comments, no trailing commas,
 * no leading zeros, UTF-8 input) and bounds-checked: the input is never read
 * past len and need not be NUL-terminated (fuzzed).  Numbers are read and
 * written in the C locale whatever LC_NUMERIC says.
 *
 * Reading a line of the protocol, e.g. {"prompt": "hi", "stop": ["\n"]}:
 *
 *		lg_json_iter it;
 *		lg_json_value v;
 *		lg_buf key;
 *
 *		lg_buf_init(&key);
 *		lg_json_value_init(&v);
 *		st = lg_json_object_begin(&it, line, len, 0, err);
 *		while (st == LG_OK && (st = lg_json_object_next(&it, &key, &v, err)) == LG_OK && !it.done)
 *		{
 *			if (strcmp(key.data, "stop") == 0 && v.kind == LG_JSON_ARRAY)
 *				st = lg_json_parse_string_array(line, len, &(size_t){v.start}, &stops, &n, err);
 *			...
 *		}
 *		if (st == LG_OK && !lg_json_at_end(line, len, &it.pos))
 *			... trailing garbage ...
 *		lg_json_value_free(&v);
 *		lg_buf_free(&key);
 *
 * Duplicate keys are passed through in order; the caller decides.
 */
#ifndef LG_JSON_H
#define LG_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "lg_error.h"

/* Nesting deeper than this is rejected rather than recursed into. */
#define LG_JSON_MAX_DEPTH 64

/*
 * A growable byte buffer.  data is NULL after init until the first append
 * (even of 0 bytes); from then on it is malloc'd and NUL-terminated, and a
 * caller may take it over and free() it.  An append that fails (out of
 * memory, size overflow) returns false and leaves the buffer as it was.
 */
typedef struct lg_buf
{
	char	   *data;
	size_t		len;
	size_t		cap;			/* bytes allocated, NUL included */
} lg_buf;

void		lg_buf_init(lg_buf *b);
void		lg_buf_free(lg_buf *b);
/* Make room for n more bytes (and the NUL) without changing the content. */
bool		lg_buf_reserve(lg_buf *b, size_t n);
bool		lg_buf_append(lg_buf *b, const char *s, size_t n);
/* printf-style; %f and %g follow LC_NUMERIC, so JSON numbers go through lg_buf_append_json_number. */
bool		lg_buf_appendf(lg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Append s as a JSON string literal with quotes.  Valid UTF-8 is kept as it
 * is (except U+2028/U+2029, escaped for JavaScript readers); each maximal
 * ill-formed subsequence of bytes becomes one U+FFFD, so any bytes (token
 * text cut mid-character) give valid JSON.
 */
bool		lg_buf_append_json_str(lg_buf *b, const char *s, size_t n);
/*
 * Append a number in the C locale with the given significant digits (9
 * round-trips a float, 17 a double); NaN and infinities become null, which
 * is all JSON can say about them.
 */
bool		lg_buf_append_json_number(lg_buf *b, double v, int digits);

/*
 * Parse one JSON string literal starting at in[*pos] (after optional
 * whitespace); decode it into out (which is reset); advance *pos past it.
 * Lone surrogates, raw control characters, bad escapes and invalid UTF-8
 * are errors (LG_ERR_FORMAT, *pos unchanged).  Decoded text may contain NUL
 * bytes.
 */
lg_status	lg_json_parse_string(const char *in, size_t len, size_t *pos, lg_buf *out, lg_error *err);
/*
 * Parse a JSON array of integers, e.g. "[1, 2, 3]", into a malloc'd array
 * (NULL when empty; the caller frees it).  Fractions, exponents and values
 * outside int64 are errors.  On error *vals is NULL and *n 0.
 */
lg_status	lg_json_parse_int_array(const char *in, size_t len, size_t *pos,
									int64_t **vals, size_t *n, lg_error *err);
/*
 * Parse a JSON array of strings into malloc'd NUL-terminated copies (free
 * with lg_json_free_string_array; NULL when empty).  A string containing a
 * NUL byte is an error, since the result is used as C strings.
 */
lg_status	lg_json_parse_string_array(const char *in, size_t len, size_t *pos,
									   char ***strs, size_t *n, lg_error *err);
void		lg_json_free_string_array(char **strs, size_t n);
/* Skip whitespace; true if only whitespace remains. */
bool		lg_json_at_end(const char *in, size_t len, size_t *pos);

/* Kinds of value lg_json_parse_value reports. */
typedef enum lg_json_kind
{
	LG_JSON_NULL = 0,
	LG_JSON_BOOL,
	LG_JSON_NUMBER,
	LG_JSON_STRING,
	LG_JSON_ARRAY,
	LG_JSON_OBJECT
} lg_json_kind;

/*
 * One value.  Scalars are decoded; an array or object is checked to be
 * well-formed (to LG_JSON_MAX_DEPTH) and reported by its span, to be read
 * again from start with an iterator or lg_json_parse_*_array.
 */
typedef struct lg_json_value
{
	lg_json_kind kind;
	bool		boolean;		/* LG_JSON_BOOL */
	double		number;			/* LG_JSON_NUMBER (always finite) */
	bool		is_int;			/* a number with no fraction or exponent that fits int64 */
	int64_t		integer;		/* when is_int (exact) */
	lg_buf		str;			/* LG_JSON_STRING, decoded */
	size_t		start;			/* the value's text is in[start, end) */
	size_t		end;
} lg_json_value;

void		lg_json_value_init(lg_json_value *v);
void		lg_json_value_free(lg_json_value *v);
/* Parse any one value at in[*pos] (after whitespace) into v; *pos goes past it. */
lg_status	lg_json_parse_value(const char *in, size_t len, size_t *pos, lg_json_value *v,
								lg_error *err);

/*
 * Walking the members of an object or the elements of an array, one value
 * at a time.  After a next call that returns LG_OK, done tells whether the
 * closing bracket was reached (and nothing was read); then pos is just past
 * it.
 */
typedef struct lg_json_iter
{
	const char *in;
	size_t		len;
	size_t		pos;
	size_t		count;			/* members or elements read so far */
	bool		done;
	char		close;			/* '}' or ']' */
} lg_json_iter;

/* Expect '{' at in[pos] (after whitespace). */
lg_status	lg_json_object_begin(lg_json_iter *it, const char *in, size_t len, size_t pos,
								 lg_error *err);
/* Read the next "key": value; the key is decoded into key. */
lg_status	lg_json_object_next(lg_json_iter *it, lg_buf *key, lg_json_value *v, lg_error *err);
/* Expect '[' at in[pos] (after whitespace). */
lg_status	lg_json_array_begin(lg_json_iter *it, const char *in, size_t len, size_t pos,
								lg_error *err);
lg_status	lg_json_array_next(lg_json_iter *it, lg_json_value *v, lg_error *err);

#endif							/* LG_JSON_H */
