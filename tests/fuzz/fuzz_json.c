/*
 * fuzz_json.c — libFuzzer target for the JSON reader and string writer.
 *
 * Every parser runs on the raw input (which libFuzzer hands over in a buffer
 * of exactly its size, so a read past len is caught by AddressSanitizer),
 * and properties that must hold are checked with a trap:
 *   - decoding a string and encoding it again round-trips;
 *   - encoding any bytes gives JSON that decodes, and encoding is idempotent
 *     over that decode (invalid UTF-8 becomes U+FFFD once);
 *   - a container lg_json_parse_value accepted can be walked to its end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* Walk every member of the object or array at in[start..end) and require success. */
static void
walk_container(const char *in, size_t len, const lg_json_value *c)
{
	lg_json_iter it;
	lg_json_value v;
	lg_buf		key;
	lg_status	st;

	lg_buf_init(&key);
	lg_json_value_init(&v);
	if (c->kind == LG_JSON_OBJECT)
	{
		st = lg_json_object_begin(&it, in, len, c->start, NULL);
		while (st == LG_OK && (st = lg_json_object_next(&it, &key, &v, NULL)) == LG_OK && !it.done)
			CHECK(key.data != NULL);
	}
	else
	{
		st = lg_json_array_begin(&it, in, len, c->start, NULL);
		while (st == LG_OK && (st = lg_json_array_next(&it, &v, NULL)) == LG_OK && !it.done)
			CHECK(v.end <= c->end);
	}
	CHECK(st == LG_OK);
	CHECK(it.pos == c->end);
	lg_buf_free(&key);
	lg_json_value_free(&v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *) data;
	lg_buf		a;
	lg_buf		b;
	lg_buf		c;
	lg_error	err;
	lg_json_value v;
	size_t		pos;

	lg_buf_init(&a);
	lg_buf_init(&b);
	lg_buf_init(&c);
	lg_json_value_init(&v);

	/* strings: decode, then encode and decode again */
	pos = 0;
	if (lg_json_parse_string(in, size, &pos, &a, &err) == LG_OK)
	{
		size_t		p2 = 0;

		CHECK(pos <= size && a.data != NULL && a.data[a.len] == '\0');
		CHECK(lg_buf_append_json_str(&b, a.data, a.len));
		CHECK(lg_json_parse_string(b.data, b.len, &p2, &c, &err) == LG_OK);
		CHECK(p2 == b.len && c.len == a.len && memcmp(c.data, a.data, a.len) == 0);
	}
	else
		CHECK(pos == 0 && err.msg[0] != '\0');

	/* encoding arbitrary bytes always gives a valid, stable literal */
	b.len = 0;
	CHECK(lg_buf_append_json_str(&b, in, size));
	pos = 0;
	CHECK(lg_json_parse_string(b.data, b.len, &pos, &a, &err) == LG_OK);
	CHECK(pos == b.len);
	c.len = 0;
	CHECK(lg_buf_append_json_str(&c, a.data, a.len));
	CHECK(c.len == b.len && memcmp(c.data, b.data, b.len) == 0);

	/* arrays */
	{
		int64_t    *vals;
		size_t		n;
		char	  **strs;

		pos = 0;
		if (lg_json_parse_int_array(in, size, &pos, &vals, &n, &err) == LG_OK)
		{
			CHECK(pos <= size && n <= size / 2);
			free(vals);
		}
		else
			CHECK(vals == NULL && n == 0);
		pos = 0;
		if (lg_json_parse_string_array(in, size, &pos, &strs, &n, &err) == LG_OK)
		{
			CHECK(pos <= size);
			lg_json_free_string_array(strs, n);
		}
		else
			CHECK(strs == NULL && n == 0);
	}

	/* any value, then its members if it is a container */
	pos = 0;
	if (lg_json_parse_value(in, size, &pos, &v, &err) == LG_OK)
	{
		CHECK(v.start < v.end && v.end == pos && pos <= size);
		if (v.kind == LG_JSON_OBJECT || v.kind == LG_JSON_ARRAY)
			walk_container(in, size, &v);
		(void) lg_json_at_end(in, size, &pos);
	}

	/* the object iterator straight on the input, as a protocol line */
	{
		lg_json_iter it;
		lg_status	st;

		st = lg_json_object_begin(&it, in, size, 0, &err);
		while (st == LG_OK && (st = lg_json_object_next(&it, &a, &v, &err)) == LG_OK && !it.done)
			CHECK(it.pos <= size);
	}

	lg_buf_free(&a);
	lg_buf_free(&b);
	lg_buf_free(&c);
	lg_json_value_free(&v);
	return 0;
}
