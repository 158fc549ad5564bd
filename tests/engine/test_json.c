/*
 * test_json.c — the JSON writer (escaping, invalid UTF-8) and the strict
 * reader (strings, numbers, arrays, the object iterator the protocols use).
 */
#include "test_util.h"

#include <locale.h>
#include <math.h>

#include "json.h"
#include "json_value.h"

/* Parse a whole C string as one JSON string; the status. */
static lg_status
parse_str(const char *in, lg_buf *out, lg_error *err)
{
	size_t		pos = 0;

	return lg_json_parse_string(in, strlen(in), &pos, out, err);
}

/*
 * in must be rejected as a string, with a message and *pos unchanged.  The
 * input is copied to a buffer of exactly len bytes so that a read past the
 * end shows under AddressSanitizer.
 */
static void
expect_bad_string(const char *lit, size_t len, const char *msg_part)
{
	lg_buf		out;
	lg_error	err;
	size_t		pos = 0;
	char	   *in = malloc(len ? len : 1);

	memcpy(in, lit, len);
	lg_buf_init(&out);
	lg_error_clear(&err);
	if (lg_json_parse_string(in, len, &pos, &out, &err) != LG_ERR_FORMAT)
		fail_msg("accepted bad string %.*s", (int) len, in);
	assert_int_equal(pos, 0);
	assert_int_equal(err.status, LG_ERR_FORMAT);
	if (strstr(err.msg, msg_part) == NULL)
		fail_msg("message for %.*s: \"%s\" lacks \"%s\"", (int) len, in, err.msg, msg_part);
	lg_buf_free(&out);
	free(in);
}

/* Encode bytes and compare with the expected JSON text. */
static void
expect_encoded(const char *in, size_t len, const char *want)
{
	lg_buf		b;

	lg_buf_init(&b);
	assert_true(lg_buf_append_json_str(&b, in, len));
	if (strcmp(b.data, want) != 0)
		fail_msg("encoded %s, want %s", b.data, want);
	assert_int_equal(b.len, strlen(want));
	lg_buf_free(&b);
}

/* True if s[0..n) is valid UTF-8 (a plain decoder, independent of json.c). */
static bool
valid_utf8(const unsigned char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		unsigned	c = s[i];
		unsigned	cp;
		size_t		k;
		size_t		j;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0)
		{
			k = 2;
			cp = c & 0x1F;
		}
		else if ((c & 0xF0) == 0xE0)
		{
			k = 3;
			cp = c & 0x0F;
		}
		else if ((c & 0xF8) == 0xF0)
		{
			k = 4;
			cp = c & 0x07;
		}
		else
			return false;
		if (i + k > n)
			return false;
		for (j = 1; j < k; j++)
		{
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k;
	}
	return true;
}

/* lg_buf: NULL until the first append, NUL-terminated after, growth. */
static void
test_buf(void **state)
{
	lg_buf		b;
	int			i;

	lg_buf_init(&b);
	assert_null(b.data);
	assert_true(lg_buf_append(&b, "", 0));
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	for (i = 0; i < 1000; i++)
		assert_true(lg_buf_appendf(&b, "%d,", i));
	assert_int_equal(b.len, strlen(b.data));
	assert_memory_equal(b.data, "0,1,2,", 6);
	assert_memory_equal(b.data + b.len - 4, "999,", 4);
	lg_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);

	/* appendf into a fresh buffer, and one longer than the spare room */
	assert_true(lg_buf_appendf(&b, "%s-%05d", "x", 42));
	assert_string_equal(b.data, "x-00042");
	assert_true(lg_buf_appendf(&b, "%0300d", 7));
	assert_int_equal(b.len, 307);
	assert_int_equal(b.data[306], '7');
	assert_int_equal(b.data[307], '\0');
	/* an impossible size fails and leaves the buffer alone */
	assert_false(lg_buf_reserve(&b, SIZE_MAX - 2));
	assert_int_equal(b.len, 307);
	lg_buf_free(&b);
}

/* Escapes: quotes, backslash, control characters; '/' and DEL stay. */
static void
test_encode_escapes(void **state)
{
	static const char in[] = "a\"b\\c\n\t\r\b\f\x01\x1f/\x7f";

	expect_encoded(in, sizeof(in) - 1, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/\x7f\"");
	expect_encoded("", 0, "\"\"");
	expect_encoded(NULL, 0, "\"\"");
	expect_encoded("a\0b", 3, "\"a\\u0000b\"");
	/* U+2028/U+2029 are escaped for JavaScript readers */
	expect_encoded("x\xE2\x80\xA8y\xE2\x80\xA9", 8, "\"x\\u2028y\\u2029\"");
}

/* Valid UTF-8 is kept; each maximal ill-formed subpart becomes one U+FFFD. */
static void
test_encode_invalid_utf8(void **state)
{
#define FFFD "\xEF\xBF\xBD"
	expect_encoded("é日本🙂", strlen("é日本🙂"), "\"é日本🙂\"");
	expect_encoded("\xFF", 1, "\"" FFFD "\"");
	expect_encoded("a\x80z", 3, "\"a" FFFD "z\"");
	/* a 3-byte character cut after 2 bytes: one replacement, then A */
	expect_encoded("\xE6\x97" "A", 3, "\"" FFFD "A\"");
	/* cut at the very end of the input (a token that ends mid-character) */
	expect_encoded("ok\xF0\x9F\x99", 5, "\"ok" FFFD "\"");
	/* overlong '/', encoded surrogate, beyond U+10FFFF: one per byte */
	expect_encoded("\xC0\xAF", 2, "\"" FFFD FFFD "\"");
	expect_encoded("\xED\xA0\x80", 3, "\"" FFFD FFFD FFFD "\"");
	expect_encoded("\xF4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\"");
	/* the largest code point and the edges of each length are fine */
	expect_encoded("\xF4\x8F\xBF\xBF\xC2\x80\xE0\xA0\x80\xEF\xBF\xBF", 12,
				   "\"\xF4\x8F\xBF\xBF\xC2\x80\xE0\xA0\x80\xEF\xBF\xBF\"");
#undef FFFD
}

/* Any bytes encode to JSON that parses back to valid UTF-8; valid input round-trips exactly. */
static void
test_encode_roundtrip_random(void **state)
{
	uint64_t	rs = 12345;
	lg_buf		enc;
	lg_buf		dec;
	lg_error	err;
	unsigned char raw[64];
	int			iter;

	lg_buf_init(&enc);
	lg_buf_init(&dec);
	for (iter = 0; iter < 20000; iter++)
	{
		size_t		n = (size_t) ((lg_test_randf(&rs) + 1.0f) * 32.0f);
		size_t		pos = 0;
		size_t		i;

		for (i = 0; i < n; i++)
		{
			float		r = lg_test_randf(&rs);

			/* mostly ASCII and UTF-8 lead/continuation bytes, to hit every path */
			raw[i] = r < -0.5f ? (unsigned char) ((r + 1.0f) * 256.0f) :
				(unsigned char) (0x80 + (unsigned) ((r + 0.5f) / 1.5f * 0x7F));
		}
		enc.len = 0;
		assert_true(lg_buf_append_json_str(&enc, (const char *) raw, n));
		assert_true(valid_utf8((const unsigned char *) enc.data, enc.len));
		if (lg_json_parse_string(enc.data, enc.len, &pos, &dec, &err) != LG_OK)
			fail_msg("encoded text did not parse: %s", err.msg);
		assert_int_equal(pos, enc.len);
		assert_true(valid_utf8((const unsigned char *) dec.data, dec.len));
		if (valid_utf8(raw, n))
		{
			assert_int_equal(dec.len, n);
			assert_memory_equal(dec.data, raw, n);
		}
	}
	lg_buf_free(&enc);
	lg_buf_free(&dec);
}

/* Every escape decodes; surrogate pairs become one 4-byte character; \u0000 a NUL. */
static void
test_parse_escapes(void **state)
{
	static const char want[] = "\"\\/\b\f\n\r\tAé日🙂\0z";
	lg_buf		out;
	lg_error	err;
	size_t		pos = 0;
	const char *in = "  \"\\\"\\\\\\/\\b\\f\\n\\r\\tA\\u00e9\\u65E5\\ud83d\\uDE42\\u0000z\" tail";

	lg_buf_init(&out);
	assert_int_equal(lg_json_parse_string(in, strlen(in), &pos, &out, &err), LG_OK);
	assert_int_equal(out.len, sizeof(want) - 1);
	assert_memory_equal(out.data, want, sizeof(want) - 1);
	assert_int_equal(out.data[out.len], '\0');
	assert_int_equal(in[pos], ' ');
	assert_false(lg_json_at_end(in, strlen(in), &pos));
	assert_int_equal(in[pos], 't');

	/* two strings in a row, and the empty string */
	in = "\"ab\"\"\"";
	pos = 0;
	assert_int_equal(lg_json_parse_string(in, strlen(in), &pos, &out, &err), LG_OK);
	assert_string_equal(out.data, "ab");
	assert_int_equal(lg_json_parse_string(in, strlen(in), &pos, &out, &err), LG_OK);
	assert_int_equal(out.len, 0);
	assert_string_equal(out.data, "");
	assert_true(lg_json_at_end(in, strlen(in), &pos));

	/* raw UTF-8 in the input is kept */
	assert_int_equal(parse_str("\"日本語\"", &out, &err), LG_OK);
	assert_string_equal(out.data, "日本語");
	lg_buf_free(&out);
}

/* Malformed strings are errors with a message, never a crash or a read past len. */
static void
test_parse_string_errors(void **state)
{
	expect_bad_string("\"\\ud83d\"", 8, "lone high surrogate");
	expect_bad_string("\"\\ud83d\\u0041\"", 14, "lone high surrogate");
	expect_bad_string("\"\\ud83d\\n\"", 10, "lone high surrogate");
	expect_bad_string("\"\\ude42\"", 8, "lone low surrogate");
	expect_bad_string("\"\\ud83d", 7, "lone high surrogate");
	expect_bad_string("\"\\ud83d\\", 8, "lone high surrogate");
	expect_bad_string("\"\\ud83d\\u", 9, "lone high surrogate");
	expect_bad_string("\"\\ud83d\\ude4\"", 13, "surrogate");
	expect_bad_string("\"\\ud83d\\ud83d\"", 14, "lone high surrogate");
	expect_bad_string("\"abc", 4, "unterminated");
	expect_bad_string("\"abc\\", 5, "unterminated");
	expect_bad_string("\"abc\\\"", 6, "unterminated");
	expect_bad_string("\"", 1, "unterminated");
	/* the closing quote is past len: must not be seen */
	expect_bad_string("\"abc\"", 4, "unterminated");
	expect_bad_string("\"a\nb\"", 5, "control character");
	expect_bad_string("\"a\tb\"", 5, "control character");
	expect_bad_string("\"a\0b\"", 5, "control character");
	expect_bad_string("\"\x1f\"", 3, "control character");
	expect_bad_string("\"\\x\"", 4, "invalid escape");
	expect_bad_string("\"\\U0041\"", 8, "invalid escape");
	expect_bad_string("\"\\u12G4\"", 8, "invalid \\u escape");
	expect_bad_string("\"\\u12\"", 6, "invalid \\u escape");
	expect_bad_string("\"\\u", 3, "invalid \\u escape");
	expect_bad_string("\"\xFF\"", 3, "invalid UTF-8");
	expect_bad_string("\"\xC0\xAF\"", 4, "invalid UTF-8");
	expect_bad_string("\"\xED\xA0\x80\"", 5, "invalid UTF-8");
	expect_bad_string("\"\xE6\x97\"", 4, "invalid UTF-8");
	expect_bad_string("\"\xF0\x9F\x99", 4, "invalid UTF-8");
	expect_bad_string("abc", 3, "expected a string");
	expect_bad_string("", 0, "expected a string");
	expect_bad_string("   ", 3, "expected a string");
	expect_bad_string("'a'", 3, "expected a string");
}

/* Megabyte strings: escaping and decoding are linear and exact. */
static void
test_big_strings(void **state)
{
	size_t		n = 4 << 20;
	char	   *raw = malloc(n);
	lg_buf		enc;
	lg_buf		dec;
	lg_error	err;
	size_t		pos = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		raw[i] = (i % 97 == 0) ? '\n' : (i % 89 == 0) ? '"' : (char) ('a' + i % 26);
	memcpy(raw + 1000, "日本", 6);
	lg_buf_init(&enc);
	lg_buf_init(&dec);
	assert_true(lg_buf_append_json_str(&enc, raw, n));
	assert_true(enc.len > n);
	assert_int_equal(lg_json_parse_string(enc.data, enc.len, &pos, &dec, &err), LG_OK);
	assert_int_equal(dec.len, n);
	assert_memory_equal(dec.data, raw, n);
	lg_buf_free(&enc);
	lg_buf_free(&dec);
	free(raw);
}

/* Parse s as an int array; expect st, and on success n values. */
static void
expect_ints(const char *s, lg_status st, const int64_t *want, size_t n)
{
	int64_t    *vals = (int64_t *) 1;
	size_t		got = 99;
	size_t		pos = 0;
	lg_error	err;

	lg_error_clear(&err);
	if (lg_json_parse_int_array(s, strlen(s), &pos, &vals, &got, &err) != st)
		fail_msg("int array %s: status %d (%s)", s, err.status, err.msg);
	if (st != LG_OK)
	{
		assert_null(vals);
		assert_int_equal(got, 0);
		assert_int_equal(pos, 0);
		assert_true(err.msg[0] != '\0');
		return;
	}
	assert_int_equal(got, n);
	if (n > 0)
		assert_memory_equal(vals, want, n * sizeof(int64_t));
	else
		assert_null(vals);
	assert_true(lg_json_at_end(s, strlen(s), &pos));
	free(vals);
}

/* Integer arrays: whitespace, limits of int64, and every malformation. */
static void
test_int_array(void **state)
{
	static const int64_t a[] = {1, -2, 3};
	static const int64_t lim[] = {INT64_MAX, INT64_MIN, 0, 0};
	int64_t		many[1000];
	char		buf[8000];
	size_t		off = 0;
	int			i;

	expect_ints("[1,-2,3]", LG_OK, a, 3);
	expect_ints(" \n[ 1 ,\t-2 , 3 ]\r\n", LG_OK, a, 3);
	expect_ints("[]", LG_OK, NULL, 0);
	expect_ints(" [ ] ", LG_OK, NULL, 0);
	expect_ints("[9223372036854775807,-9223372036854775808,0,-0]", LG_OK, lim, 4);

	off += (size_t) snprintf(buf + off, sizeof(buf) - off, "[");
	for (i = 0; i < 1000; i++)
	{
		many[i] = (int64_t) i * 7919 - 3000;
		off += (size_t) snprintf(buf + off, sizeof(buf) - off, "%s%lld", i ? "," : "",
								 (long long) many[i]);
	}
	snprintf(buf + off, sizeof(buf) - off, "]");
	expect_ints(buf, LG_OK, many, 1000);

	expect_ints("[9223372036854775808]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[-9223372036854775809]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[99999999999999999999999]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[1.0]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[1e3]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[1,]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[,1]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[1 2]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[1,,2]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[01]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[-]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[+1]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[\"1\"]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[[1]]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[null]", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[1", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[1,", LG_ERR_FORMAT, NULL, 0);
	expect_ints("[", LG_ERR_FORMAT, NULL, 0);
	expect_ints("", LG_ERR_FORMAT, NULL, 0);
	expect_ints("1", LG_ERR_FORMAT, NULL, 0);
	expect_ints("{}", LG_ERR_FORMAT, NULL, 0);
}

/* String arrays become C strings; a NUL inside one is refused. */
static void
test_string_array(void **state)
{
	const char *in = " [\"a\", \"\\n\", \"日本\", \"\"] ";
	char	  **strs;
	size_t		n;
	size_t		pos = 0;
	lg_error	err;

	assert_int_equal(lg_json_parse_string_array(in, strlen(in), &pos, &strs, &n, &err), LG_OK);
	assert_int_equal(n, 4);
	assert_string_equal(strs[0], "a");
	assert_string_equal(strs[1], "\n");
	assert_string_equal(strs[2], "日本");
	assert_string_equal(strs[3], "");
	assert_true(lg_json_at_end(in, strlen(in), &pos));
	lg_json_free_string_array(strs, n);

	in = "[]";
	pos = 0;
	assert_int_equal(lg_json_parse_string_array(in, 2, &pos, &strs, &n, &err), LG_OK);
	assert_int_equal(n, 0);
	assert_null(strs);

	in = "[\"a\", \"b\\u0000c\"]";
	pos = 0;
	assert_int_equal(lg_json_parse_string_array(in, strlen(in), &pos, &strs, &n, &err),
					 LG_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "NUL"));
	assert_null(strs);
	in = "[\"a\", 1]";
	assert_int_equal(lg_json_parse_string_array(in, strlen(in), &pos, &strs, &n, &err),
					 LG_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "not a string"));
	in = "[\"a\"";
	assert_int_equal(lg_json_parse_string_array(in, strlen(in), &pos, &strs, &n, &err),
					 LG_ERR_FORMAT);
}

/* Parse one value from a C string; the status. */
static lg_status
parse_val(const char *s, lg_json_value *v, lg_error *err)
{
	size_t		pos = 0;
	lg_status	st = lg_json_parse_value(s, strlen(s), &pos, v, err);

	if (st == LG_OK && !lg_json_at_end(s, strlen(s), &pos))
		return LG_ERR_ARG;		/* the test's marker for trailing text */
	return st;
}

/* Scalars and containers through lg_json_parse_value. */
static void
test_parse_value(void **state)
{
	lg_json_value v;
	lg_error	err;
	char		deep[200];
	char	   *huge;
	size_t		pos;
	int			i;

	lg_json_value_init(&v);
	assert_int_equal(parse_val("3.5", &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_NUMBER);
	assert_float_equal(v.number, 3.5, 0);
	assert_false(v.is_int);
	assert_int_equal(parse_val(" -0 ", &v, &err), LG_OK);
	assert_true(v.is_int);
	assert_int_equal(v.integer, 0);
	assert_int_equal(parse_val("1E+2", &v, &err), LG_OK);
	assert_float_equal(v.number, 100.0, 0);
	assert_false(v.is_int);
	assert_int_equal(parse_val("-12345678901", &v, &err), LG_OK);
	assert_true(v.is_int);
	assert_true(v.integer == -12345678901LL);
	assert_int_equal(parse_val("18446744073709551616", &v, &err), LG_OK);
	assert_false(v.is_int);
	assert_float_equal(v.number, 18446744073709551616.0, 0);
	assert_int_equal(parse_val("1e-400", &v, &err), LG_OK);	/* underflow is 0 */
	assert_float_equal(v.number, 0.0, 0);
	assert_int_equal(parse_val("true", &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_BOOL);
	assert_true(v.boolean);
	assert_int_equal(parse_val("false", &v, &err), LG_OK);
	assert_false(v.boolean);
	assert_int_equal(parse_val("null", &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_NULL);
	assert_int_equal(parse_val("\"x\\ty\"", &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_STRING);
	assert_string_equal(v.str.data, "x\ty");

	assert_int_equal(parse_val(" [1, {\"a\": [true, null, \"]\"]}, []] ", &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_ARRAY);
	assert_int_equal(v.start, 1);
	assert_int_equal(v.end, 34);
	assert_int_equal(parse_val("{}", &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_OBJECT);

	assert_int_equal(parse_val("1e999", &v, &err), LG_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(parse_val("1.", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val(".5", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("1e", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("-", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("tru", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("nul", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("NaN", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("Infinity", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("[1,]", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("{\"a\":1,}", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("{\"a\" 1}", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("{a:1}", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("[1}", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("", &v, &err), LG_ERR_FORMAT);
	assert_int_equal(parse_val("01", &v, &err), LG_ERR_ARG);	/* 0, then "1" trails */
	assert_int_equal(parse_val("truex", &v, &err), LG_ERR_ARG);

	/* a number longer than the limit is refused, not truncated */
	huge = malloc(1001);
	memset(huge, '1', 1000);
	huge[1000] = '\0';
	assert_int_equal(parse_val(huge, &v, &err), LG_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "too long"));

	/* nesting: 64 levels are fine, 65 are refused */
	memset(deep, '[', 64);
	memset(deep + 64, ']', 64);
	deep[128] = '\0';
	assert_int_equal(parse_val(deep, &v, &err), LG_OK);
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	deep[130] = '\0';
	assert_int_equal(parse_val(deep, &v, &err), LG_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "nesting"));
	free(huge);
	/* a million brackets: refused quickly, no stack overflow */
	huge = malloc(1000000);
	memset(huge, '[', 1000000);
	pos = 0;
	assert_int_equal(lg_json_parse_value(huge, 1000000, &pos, &v, &err), LG_ERR_FORMAT);
	for (i = 0; i < 1000000; i += 2)
		memcpy(huge + i, "{\"", 2);
	pos = 0;
	assert_int_equal(lg_json_parse_value(huge, 1000000, &pos, &v, &err), LG_ERR_FORMAT);
	free(huge);
	lg_json_value_free(&v);
}

/* A protocol line walked with the object iterator, nested values re-read from their span. */
static void
test_object_iter(void **state)
{
	const char *line = "{\"prompt\": \"hi\\n\", \"max_tokens\": 16, \"temperature\": 0.5,"
		" \"stream\": true, \"stop\": [\"\\n\", \"User:\"], \"ids\": [1, 2, 3],"
		" \"logit_bias\": {\"15\": -100, \"7\": 2.5}, \"x\": null}\n";
	size_t		len = strlen(line);
	lg_json_iter it;
	lg_json_iter sub;
	lg_json_value v;
	lg_json_value sv;
	lg_buf		key;
	lg_buf		skey;
	lg_error	err;
	int			n = 0;

	lg_buf_init(&key);
	lg_buf_init(&skey);
	lg_json_value_init(&v);
	lg_json_value_init(&sv);
	assert_int_equal(lg_json_object_begin(&it, line, len, 0, &err), LG_OK);
	for (;;)
	{
		assert_int_equal(lg_json_object_next(&it, &key, &v, &err), LG_OK);
		if (it.done)
			break;
		n++;
		if (strcmp(key.data, "prompt") == 0)
		{
			assert_int_equal(v.kind, LG_JSON_STRING);
			assert_string_equal(v.str.data, "hi\n");
		}
		else if (strcmp(key.data, "max_tokens") == 0)
		{
			assert_true(v.is_int);
			assert_int_equal(v.integer, 16);
		}
		else if (strcmp(key.data, "temperature") == 0)
			assert_float_equal(v.number, 0.5, 0);
		else if (strcmp(key.data, "stream") == 0)
			assert_true(v.kind == LG_JSON_BOOL && v.boolean);
		else if (strcmp(key.data, "stop") == 0)
		{
			char	  **stops;
			size_t		ns;
			size_t		p = v.start;

			assert_int_equal(v.kind, LG_JSON_ARRAY);
			assert_int_equal(lg_json_parse_string_array(line, len, &p, &stops, &ns, &err), LG_OK);
			assert_int_equal(p, v.end);
			assert_int_equal(ns, 2);
			assert_string_equal(stops[1], "User:");
			lg_json_free_string_array(stops, ns);
		}
		else if (strcmp(key.data, "ids") == 0)
		{
			int64_t    *ids;
			size_t		ni;
			size_t		p = v.start;

			assert_int_equal(lg_json_parse_int_array(line, len, &p, &ids, &ni, &err), LG_OK);
			assert_int_equal(ni, 3);
			assert_int_equal(ids[2], 3);
			free(ids);
		}
		else if (strcmp(key.data, "logit_bias") == 0)
		{
			int			m = 0;

			assert_int_equal(v.kind, LG_JSON_OBJECT);
			assert_int_equal(lg_json_object_begin(&sub, line, len, v.start, &err), LG_OK);
			while (lg_json_object_next(&sub, &skey, &sv, &err) == LG_OK && !sub.done)
			{
				assert_int_equal(sv.kind, LG_JSON_NUMBER);
				if (m++ == 0)
				{
					assert_string_equal(skey.data, "15");
					assert_int_equal(sv.integer, -100);
				}
				else
					assert_float_equal(sv.number, 2.5, 0);
			}
			assert_true(sub.done);
			assert_int_equal(sub.pos, v.end);
			assert_int_equal(m, 2);
		}
		else if (strcmp(key.data, "x") == 0)
			assert_int_equal(v.kind, LG_JSON_NULL);
		else
			fail_msg("unexpected key %s", key.data);
	}
	assert_int_equal(n, 8);
	assert_int_equal(it.count, 8);
	/* done is sticky */
	assert_int_equal(lg_json_object_next(&it, &key, &v, &err), LG_OK);
	assert_true(it.done);
	assert_true(lg_json_at_end(line, len, &it.pos));

	/* the empty object, and an array iterator */
	assert_int_equal(lg_json_object_begin(&it, " { } ", 5, 0, &err), LG_OK);
	assert_int_equal(lg_json_object_next(&it, &key, &v, &err), LG_OK);
	assert_true(it.done);
	assert_int_equal(it.pos, 4);
	assert_int_equal(lg_json_array_begin(&it, "[\"a\", 2, [3]]", 13, 0, &err), LG_OK);
	assert_int_equal(lg_json_array_next(&it, &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_STRING);
	assert_int_equal(lg_json_array_next(&it, &v, &err), LG_OK);
	assert_int_equal(v.integer, 2);
	assert_int_equal(lg_json_array_next(&it, &v, &err), LG_OK);
	assert_int_equal(v.kind, LG_JSON_ARRAY);
	assert_int_equal(lg_json_array_next(&it, &v, &err), LG_OK);
	assert_true(it.done);

	lg_buf_free(&key);
	lg_buf_free(&skey);
	lg_json_value_free(&v);
	lg_json_value_free(&sv);
}

/* Walk an object to its end; the first error status, or LG_OK. */
static lg_status
walk_object(const char *s)
{
	lg_json_iter it;
	lg_json_value v;
	lg_buf		key;
	lg_error	err;
	lg_status	st;

	lg_buf_init(&key);
	lg_json_value_init(&v);
	lg_error_clear(&err);
	st = lg_json_object_begin(&it, s, strlen(s), 0, &err);
	while (st == LG_OK && (st = lg_json_object_next(&it, &key, &v, &err)) == LG_OK && !it.done)
		;
	if (st == LG_OK && !lg_json_at_end(s, strlen(s), &it.pos))
		st = LG_ERR_ARG;		/* trailing text */
	if (st != LG_OK && st != LG_ERR_ARG)
		assert_true(err.msg[0] != '\0');
	lg_buf_free(&key);
	lg_json_value_free(&v);
	return st;
}

/* The iterator rejects every malformed object. */
static void
test_object_iter_errors(void **state)
{
	assert_int_equal(walk_object("{\"a\":1,\"b\":[1,2],\"c\":{\"d\":\"e\"}}"), LG_OK);
	assert_int_equal(walk_object("{\"a\" 1}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{\"a\":1,}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{,\"a\":1}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{a:1}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{\"a\":1 \"b\":2}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{\"a\":}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{\"a\":1"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{\"a\":[1,2}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{\"a\":\"\\ud800\"}"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{"), LG_ERR_FORMAT);
	assert_int_equal(walk_object(""), LG_ERR_FORMAT);
	assert_int_equal(walk_object("[]"), LG_ERR_FORMAT);
	assert_int_equal(walk_object("{\"a\":1}}"), LG_ERR_ARG);
	assert_int_equal(walk_object("{\"a\":1} x"), LG_ERR_ARG);
}

/* Numbers are written in the C locale; non-finite ones as null. */
static void
test_append_number(void **state)
{
	lg_buf		b;
	lg_json_value v;
	lg_error	err;
	const char *loc;

	lg_buf_init(&b);
	assert_true(lg_buf_append_json_number(&b, 0.1f, 9));
	assert_string_equal(b.data, "0.100000001");
	b.len = 0;
	assert_true(lg_buf_append_json_number(&b, -1.5e-7, 17));
	assert_string_equal(b.data, "-1.4999999999999999e-07");
	b.len = 0;
	assert_true(lg_buf_append_json_number(&b, NAN, 9));
	assert_true(lg_buf_append_json_number(&b, -INFINITY, 9));
	assert_string_equal(b.data, "nullnull");

	/* a locale with a decimal comma must not leak into JSON */
	loc = setlocale(LC_NUMERIC, "de_DE.UTF-8");
	if (loc == NULL)
		loc = setlocale(LC_NUMERIC, "fr_FR.UTF-8");
	if (loc == NULL)
		printf("SKIP: no decimal-comma locale installed\n");
	b.len = 0;
	assert_true(lg_buf_append_json_number(&b, 2.5, 9));
	assert_string_equal(b.data, "2.5");
	lg_json_value_init(&v);
	assert_int_equal(parse_val("2.25", &v, &err), LG_OK);
	assert_float_equal(v.number, 2.25, 0);
	setlocale(LC_NUMERIC, "C");
	lg_json_value_free(&v);
	lg_buf_free(&b);
}

/* Run the JSON tests. */
/* The tree: member order, last of repeated keys, equality by value, writing back. */
static void
test_tree(void **state)
{
	const char *src = " {\"b\": [1, 2.50, {\"x\": null}], \"a\": \"h\\u00e9\\u0000z\", \"b2\": true, \"d\": 1, \"d\": 2} ";
	lg_json_node *n;
	lg_json_node *m;
	lg_error	err;
	lg_buf		out;

	(void) state;
	n = lg_json_parse(src, strlen(src), &err);
	assert_non_null(n);
	assert_int_equal(n->kind, LG_JSON_OBJECT);
	assert_int_equal(n->n, 5);
	assert_string_equal(n->keys[0], "b");
	assert_string_equal(n->keys[1], "a");
	assert_int_equal(lg_json_get(n, "a")->str_len, 5);	/* h, é (2 bytes), NUL, z */
	assert_memory_equal(lg_json_get(n, "a")->str, "h\xc3\xa9\0z", 5);
	assert_int_equal(lg_json_get(n, "d")->integer, 2);
	assert_null(lg_json_get(n, "zz"));
	assert_null(lg_json_get_str(n, "b2"));
	assert_int_equal(lg_json_at(lg_json_get(n, "b"), 1)->kind, LG_JSON_NUMBER);
	assert_string_equal(lg_json_at(lg_json_get(n, "b"), 1)->str, "2.50");
	assert_null(lg_json_at(lg_json_get(n, "b"), 3));
	assert_string_equal(lg_json_kind_name(lg_json_get(n, "b2")->kind), "boolean");

	/* other member order, 2.5 written differently, the overridden d dropped: equal */
	src = "{\"d\":2,\"b2\":true,\"a\":\"h\xc3\xa9\\u0000z\",\"b\":[1,2.5,{\"x\":null}]}";
	m = lg_json_parse(src, strlen(src), &err);
	assert_non_null(m);
	assert_true(lg_json_equal(n, m));
	lg_json_node_free(m);
	src = "{\"d\":2,\"b2\":true,\"a\":\"h\xc3\xa9\\u0000z\",\"b\":[2.5,1,{\"x\":null}]}";
	m = lg_json_parse(src, strlen(src), &err);
	assert_non_null(m);
	assert_false(lg_json_equal(n, m));	/* arrays are ordered */
	lg_json_node_free(m);

	lg_buf_init(&out);
	assert_true(lg_json_write(&out, lg_json_get(n, "b"), 0));
	assert_string_equal(out.data, "[1,2.50,{\"x\":null}]");
	out.len = 0;
	assert_true(lg_json_write(&out, lg_json_get(n, "b"), 2));
	assert_string_equal(out.data, "[\n  1,\n  2.50,\n  {\n    \"x\": null\n  }\n]");
	out.len = 0;
	m = lg_json_parse("{}", 2, &err);
	assert_true(lg_json_write(&out, m, 2));
	assert_string_equal(out.data, "{}");
	lg_json_node_free(m);
	lg_buf_free(&out);
	lg_json_node_free(n);

	/* errors: trailing text, truncation, too deep */
	assert_null(lg_json_parse("[1] x", 5, &err));
	assert_int_equal(err.status, LG_ERR_FORMAT);
	assert_null(lg_json_parse("{\"a\": [1, 2", 11, &err));
	{
		char		deep[200];

		memset(deep, '[', 100);
		memset(deep + 100, ']', 100);
		assert_null(lg_json_parse(deep, 200, &err));
		assert_int_equal(err.status, LG_ERR_FORMAT);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_encode_escapes),
		cmocka_unit_test(test_encode_invalid_utf8),
		cmocka_unit_test(test_encode_roundtrip_random),
		cmocka_unit_test(test_parse_escapes),
		cmocka_unit_test(test_parse_string_errors),
		cmocka_unit_test(test_big_strings),
		cmocka_unit_test(test_int_array),
		cmocka_unit_test(test_string_array),
		cmocka_unit_test(test_parse_value),
		cmocka_unit_test(test_object_iter),
		cmocka_unit_test(test_object_iter_errors),
		cmocka_unit_test(test_append_number),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
