/*
 * json.c — a strict, bounds-checked JSON reader for flat protocol messages
 * and the writer helpers the engine and the CLI use (see json.h).
 *
 * Every read checks the index against len before touching a byte, so the
 * input need not be NUL-terminated; nesting is bounded by LG_JSON_MAX_DEPTH
 * so hostile input cannot exhaust the stack.
 */
#include "json.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest number text we convert; longer ones are rejected rather than truncated. */
#define JSON_MAX_NUMBER_LEN 400

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

/* Create the C locale once; numbers must not follow LC_NUMERIC. */
static void
c_locale_init(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
}

/* The C locale, or 0 if it could not be created (then the global one is used). */
static locale_t
get_c_locale(void)
{
	pthread_once(&c_locale_once, c_locale_init);
	return c_locale;
}

/* An empty buffer that owns nothing yet. */
void
lg_buf_init(lg_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* Free the data and leave the buffer empty and reusable. */
void
lg_buf_free(lg_buf *b)
{
	free(b->data);
	lg_buf_init(b);
}

/* Grow by doubling so that n more bytes and the NUL fit. */
bool
lg_buf_reserve(lg_buf *b, size_t n)
{
	size_t		need;
	size_t		cap;
	char	   *d;

	if (n > SIZE_MAX - 1 - b->len)
		return false;
	need = b->len + n + 1;
	if (b->data != NULL && need <= b->cap)
		return true;
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	d = realloc(b->data, cap);
	if (d == NULL)
		return false;
	if (b->data == NULL)
		d[0] = '\0';
	b->data = d;
	b->cap = cap;
	return true;
}

/* Append n bytes (which may include NULs). */
bool
lg_buf_append(lg_buf *b, const char *s, size_t n)
{
	if (!lg_buf_reserve(b, n))
		return false;
	if (n > 0)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

/* printf-style append, formatting in place when the spare room is enough. */
bool
lg_buf_appendf(lg_buf *b, const char *fmt, ...)
{
	va_list		ap;
	va_list		ap2;
	int			need;
	bool		ok = false;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	/* first try the room already there: most appends fit */
	if (b->data != NULL)
		need = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	else
		need = vsnprintf(NULL, 0, fmt, ap);
	if (need >= 0)
	{
		if (b->data != NULL && (size_t) need < b->cap - b->len)
			ok = true;
		else if (lg_buf_reserve(b, (size_t) need))
		{
			vsnprintf(b->data + b->len, (size_t) need + 1, fmt, ap2);
			ok = true;
		}
	}
	if (ok)
		b->len += (size_t) need;
	else if (b->data != NULL)
		b->data[b->len] = '\0';
	va_end(ap2);
	va_end(ap);
	return ok;
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is
 * ill-formed; then *bad is the length of its maximal ill-formed subpart (the
 * bytes that could start a valid sequence), at least 1, as Unicode
 * recommends for substituting U+FFFD.  Rejects overlongs, surrogates and
 * code points above U+10FFFF.
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;
	size_t		need;
	size_t		i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 2;
	else if (c == 0xE0)
	{
		need = 3;
		lo = 0xA0;
	}
	else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
		need = 3;
	else if (c == 0xED)
	{
		need = 3;
		hi = 0x9F;
	}
	else if (c == 0xF0)
	{
		need = 4;
		lo = 0x90;
	}
	else if (c >= 0xF1 && c <= 0xF3)
		need = 4;
	else if (c == 0xF4)
	{
		need = 4;
		hi = 0x8F;
	}
	else
	{
		*bad = 1;
		return 0;
	}
	for (i = 1; i < need; i++)
	{
		unsigned char lo_i = i == 1 ? lo : 0x80;
		unsigned char hi_i = i == 1 ? hi : 0xBF;

		if (i >= n || s[i] < lo_i || s[i] > hi_i)
		{
			*bad = i;
			return 0;
		}
	}
	return need;
}

/* Append a JSON string literal, copying runs of plain bytes at once. */
bool
lg_buf_append_json_str(lg_buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		save = b->len;
	size_t		i = 0;
	size_t		run = 0;

	if (!lg_buf_reserve(b, n) || !lg_buf_append(b, "\"", 1))
		goto fail;
	while (i < n)
	{
		unsigned char c = u[i];
		char		tmp[8];
		const char *esc = tmp;
		size_t		esc_len = 2;
		size_t		adv = 1;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
		{
			i++;
			continue;
		}
		if (c >= 0x80)
		{
			size_t		bad = 1;
			size_t		l = utf8_seq_len(u + i, n - i, &bad);

			if (l == 0)
			{
				esc = "\xEF\xBF\xBD";
				esc_len = 3;
				adv = bad;
			}
			else if (l == 3 && c == 0xE2 && u[i + 1] == 0x80 && (u[i + 2] & 0xFE) == 0xA8)
			{
				/* U+2028/U+2029 are valid JSON but end a line in JavaScript */
				esc = u[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
				esc_len = 6;
				adv = 3;
			}
			else
			{
				i += l;
				continue;
			}
		}
		else
		{
			tmp[0] = '\\';
			switch (c)
			{
				case '"': tmp[1] = '"'; break;
				case '\\': tmp[1] = '\\'; break;
				case '\b': tmp[1] = 'b'; break;
				case '\f': tmp[1] = 'f'; break;
				case '\n': tmp[1] = 'n'; break;
				case '\r': tmp[1] = 'r'; break;
				case '\t': tmp[1] = 't'; break;
				default:
					snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned) c);
					esc_len = 6;
					break;
			}
		}
		if (!lg_buf_append(b, s + run, i - run) || !lg_buf_append(b, esc, esc_len))
			goto fail;
		i += adv;
		run = i;
	}
	if (!lg_buf_append(b, s + run, i - run) || !lg_buf_append(b, "\"", 1))
		goto fail;
	return true;

fail:
	b->len = save;
	if (b->data != NULL)
		b->data[save] = '\0';
	return false;
}

/* Append a number in the C locale, or null when it is not finite. */
bool
lg_buf_append_json_number(lg_buf *b, double v, int digits)
{
	char		tmp[64];
	locale_t	loc;
	locale_t	old = (locale_t) 0;

	if (!isfinite(v))
		return lg_buf_append(b, "null", 4);
	if (digits < 1)
		digits = 1;
	if (digits > 17)
		digits = 17;
	/* uselocale is per thread, so this does not disturb other threads */
	loc = get_c_locale();
	if (loc != (locale_t) 0)
		old = uselocale(loc);
	snprintf(tmp, sizeof(tmp), "%.*g", digits, v);
	if (loc != (locale_t) 0)
		uselocale(old);
	return lg_buf_append(b, tmp, strlen(tmp));
}

/* Advance *i over JSON whitespace. */
static inline void
skip_ws(const char *in, size_t len, size_t *i)
{
	while (*i < len && IS_WS(in[*i]))
		(*i)++;
}

/* Value of 4 hex digits at in[i..i+4), or -1. */
static long
read_hex4(const char *in, size_t len, size_t i)
{
	long		v = 0;
	size_t		k;

	if (len < 4 || i > len - 4)
		return -1;
	for (k = 0; k < 4; k++)
	{
		char		c = in[i + k];

		v <<= 4;
		if (IS_DIGIT(c))
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* Write code point cp (<= U+10FFFF, not a surrogate) as UTF-8; returns its length. */
static size_t
utf8_encode(unsigned long cp, char *o)
{
	if (cp < 0x80)
	{
		o[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		o[0] = (char) (0xC0 | (cp >> 6));
		o[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		o[0] = (char) (0xE0 | (cp >> 12));
		o[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char) (0xF0 | (cp >> 18));
	o[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Scan the string literal whose opening quote is at in[*pos], decoding it
 * into out when out is not NULL (appending; the caller resets it).  On
 * success *pos is just past the closing quote.
 */
static lg_status
scan_string(const char *in, size_t len, size_t *pos, lg_buf *out, lg_error *err)
{
	size_t		start = *pos;
	size_t		i = start + 1;
	size_t		run = i;

	for (;;)
	{
		unsigned char c;

		if (i >= len)
			return lg_error_set(err, LG_ERR_FORMAT,
								"unterminated string starting at offset %zu", start);
		c = (unsigned char) in[i];
		if (c == '"')
			break;
		if (c < 0x20)
			return lg_error_set(err, LG_ERR_FORMAT,
								"control character 0x%02x in string at offset %zu (must be escaped)",
								(unsigned) c, i);
		if (c >= 0x80)
		{
			size_t		bad;
			size_t		l = utf8_seq_len((const unsigned char *) in + i, len - i, &bad);

			if (l == 0)
				return lg_error_set(err, LG_ERR_FORMAT,
									"invalid UTF-8 in string at offset %zu", i);
			i += l;
			continue;
		}
		if (c != '\\')
		{
			i++;
			continue;
		}

		/* an escape: flush the plain run before it */
		if (out != NULL && !lg_buf_append(out, in + run, i - run))
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory decoding a string");
		{
			char		enc[4];
			size_t		enc_len = 1;
			size_t		esc_at = i;

			if (i + 1 >= len)
				return lg_error_set(err, LG_ERR_FORMAT,
									"unterminated string starting at offset %zu", start);
			switch (in[i + 1])
			{
				case '"': enc[0] = '"'; break;
				case '\\': enc[0] = '\\'; break;
				case '/': enc[0] = '/'; break;
				case 'b': enc[0] = '\b'; break;
				case 'f': enc[0] = '\f'; break;
				case 'n': enc[0] = '\n'; break;
				case 'r': enc[0] = '\r'; break;
				case 't': enc[0] = '\t'; break;
				case 'u':
					{
						long		cp = read_hex4(in, len, i + 2);

						if (cp < 0)
							return lg_error_set(err, LG_ERR_FORMAT,
												"invalid \\u escape at offset %zu", esc_at);
						if (cp >= 0xDC00 && cp <= 0xDFFF)
							return lg_error_set(err, LG_ERR_FORMAT,
												"lone low surrogate \\u%04lX at offset %zu",
												cp, esc_at);
						if (cp >= 0xD800 && cp <= 0xDBFF)
						{
							long		lo = -1;

							if (i + 7 < len && in[i + 6] == '\\' && in[i + 7] == 'u')
								lo = read_hex4(in, len, i + 8);
							if (lo < 0xDC00 || lo > 0xDFFF)
								return lg_error_set(err, LG_ERR_FORMAT,
													"lone high surrogate \\u%04lX at offset %zu",
													cp, esc_at);
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
							i += 6;
						}
						enc_len = utf8_encode((unsigned long) cp, enc);
						i += 4;
						break;
					}
				default:
					return lg_error_set(err, LG_ERR_FORMAT, "invalid escape at offset %zu", esc_at);
			}
			i += 2;
			run = i;
			if (out != NULL && !lg_buf_append(out, enc, enc_len))
				return lg_error_set(err, LG_ERR_NOMEM, "out of memory decoding a string");
		}
	}
	if (out != NULL && !lg_buf_append(out, in + run, i - run))
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory decoding a string");
	*pos = i + 1;
	return LG_OK;
}

/* Decode one string literal; on error out is empty and *pos unchanged. */
lg_status
lg_json_parse_string(const char *in, size_t len, size_t *pos, lg_buf *out, lg_error *err)
{
	size_t		i = *pos;
	lg_status	st;

	skip_ws(in, len, &i);
	if (i >= len || in[i] != '"')
		return lg_error_set(err, LG_ERR_FORMAT, "expected a string at offset %zu", i);
	out->len = 0;
	/* an empty string still gives a usable C string */
	if (!lg_buf_reserve(out, 0))
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory decoding a string");
	out->data[0] = '\0';
	st = scan_string(in, len, &i, out, err);
	if (st != LG_OK)
	{
		out->len = 0;
		out->data[0] = '\0';
		return st;
	}
	*pos = i;
	return LG_OK;
}

/*
 * Parse a number at in[*pos] (RFC 8259 grammar).  Integers that fit int64
 * are also kept exactly; the double must be finite.
 */
static lg_status
parse_number(const char *in, size_t len, size_t *pos, lg_json_value *v, lg_error *err)
{
	size_t		start = *pos;
	size_t		i = start;
	bool		neg = false;
	bool		is_int = true;
	uint64_t	mag = 0;
	bool		overflow = false;
	char		tmp[JSON_MAX_NUMBER_LEN + 1];
	locale_t	loc;
	double		d;

	if (i < len && in[i] == '-')
	{
		neg = true;
		i++;
	}
	if (i >= len || !IS_DIGIT(in[i]))
		return lg_error_set(err, LG_ERR_FORMAT, "invalid number at offset %zu", start);
	if (in[i] == '0')
		i++;
	else
	{
		while (i < len && IS_DIGIT(in[i]))
		{
			uint64_t	digit = (uint64_t) (in[i] - '0');

			if (mag > (UINT64_MAX - digit) / 10)
				overflow = true;
			else
				mag = mag * 10 + digit;
			i++;
		}
	}
	if (i < len && in[i] == '.')
	{
		i++;
		if (i >= len || !IS_DIGIT(in[i]))
			return lg_error_set(err, LG_ERR_FORMAT,
								"invalid number at offset %zu (digit expected after '.')", start);
		while (i < len && IS_DIGIT(in[i]))
			i++;
		is_int = false;
	}
	if (i < len && (in[i] == 'e' || in[i] == 'E'))
	{
		i++;
		if (i < len && (in[i] == '+' || in[i] == '-'))
			i++;
		if (i >= len || !IS_DIGIT(in[i]))
			return lg_error_set(err, LG_ERR_FORMAT,
								"invalid number at offset %zu (digit expected in exponent)", start);
		while (i < len && IS_DIGIT(in[i]))
			i++;
		is_int = false;
	}
	if (i - start > JSON_MAX_NUMBER_LEN)
		return lg_error_set(err, LG_ERR_FORMAT, "number at offset %zu is too long (%zu characters)",
							start, i - start);

	/* strtod needs a terminated copy: the input may end right after the digits */
	memcpy(tmp, in + start, i - start);
	tmp[i - start] = '\0';
	loc = get_c_locale();
	d = loc != (locale_t) 0 ? strtod_l(tmp, NULL, loc) : strtod(tmp, NULL);
	if (!isfinite(d))
		return lg_error_set(err, LG_ERR_FORMAT, "number at offset %zu is out of range", start);

	if (is_int && (overflow || mag > (neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX)))
		is_int = false;
	if (v != NULL)
	{
		v->kind = LG_JSON_NUMBER;
		v->number = d;
		v->is_int = is_int;
		v->integer = 0;
		if (is_int)
			v->integer = neg ? (int64_t) (0 - mag) : (int64_t) mag;
	}
	*pos = i;
	return LG_OK;
}

/* Match a literal word (true, false, null) at in[*pos]. */
static bool
match_word(const char *in, size_t len, size_t *pos, const char *word)
{
	size_t		n = strlen(word);

	if (len - *pos < n || memcmp(in + *pos, word, n) != 0)
		return false;
	*pos += n;
	return true;
}

/*
 * Parse one value at in[*pos] (whitespace skipped).  v may be NULL to only
 * check and skip it.  depth counts the containers around this value.
 */
static lg_status
parse_value_at(const char *in, size_t len, size_t *pos, lg_json_value *v, int depth,
			   lg_error *err)
{
	size_t		i = *pos;
	lg_status	st;
	char		c;

	skip_ws(in, len, &i);
	if (i >= len)
		return lg_error_set(err, LG_ERR_FORMAT, "expected a value at offset %zu (end of input)", i);
	if (v != NULL)
	{
		v->start = i;
		v->is_int = false;
		v->boolean = false;
	}
	c = in[i];
	if (c == '"')
	{
		if (v != NULL)
		{
			v->kind = LG_JSON_STRING;
			v->str.len = 0;
			if (!lg_buf_reserve(&v->str, 0))
				return lg_error_set(err, LG_ERR_NOMEM, "out of memory decoding a string");
			v->str.data[0] = '\0';
		}
		st = scan_string(in, len, &i, v ? &v->str : NULL, err);
		if (st != LG_OK)
			return st;
	}
	else if (c == '-' || IS_DIGIT(c))
	{
		st = parse_number(in, len, &i, v, err);
		if (st != LG_OK)
			return st;
	}
	else if (c == 't' || c == 'f' || c == 'n')
	{
		bool		ok;
		lg_json_kind kind = c == 'n' ? LG_JSON_NULL : LG_JSON_BOOL;

		ok = match_word(in, len, &i, c == 't' ? "true" : c == 'f' ? "false" : "null");
		if (!ok)
			return lg_error_set(err, LG_ERR_FORMAT, "invalid literal at offset %zu", i);
		if (v != NULL)
		{
			v->kind = kind;
			v->boolean = c == 't';
		}
	}
	else if (c == '[' || c == '{')
	{
		char		close = c == '[' ? ']' : '}';

		if (depth >= LG_JSON_MAX_DEPTH)
			return lg_error_set(err, LG_ERR_FORMAT,
								"nesting deeper than %d levels at offset %zu", LG_JSON_MAX_DEPTH, i);
		i++;
		skip_ws(in, len, &i);
		if (i < len && in[i] == close)
		{
			i++;
			goto closed;
		}
		for (;;)
		{
			/* after '[', '{' or ',' a member must follow: this rejects trailing commas */
			if (close == '}')
			{
				skip_ws(in, len, &i);
				if (i >= len || in[i] != '"')
					return lg_error_set(err, LG_ERR_FORMAT,
										"expected a member name (string) at offset %zu", i);
				if ((st = scan_string(in, len, &i, NULL, err)) != LG_OK)
					return st;
				skip_ws(in, len, &i);
				if (i >= len || in[i] != ':')
					return lg_error_set(err, LG_ERR_FORMAT, "expected ':' at offset %zu", i);
				i++;
			}
			if ((st = parse_value_at(in, len, &i, NULL, depth + 1, err)) != LG_OK)
				return st;
			skip_ws(in, len, &i);
			if (i < len && in[i] == ',')
			{
				i++;
				continue;
			}
			if (i < len && in[i] == close)
			{
				i++;
				break;
			}
			return lg_error_set(err, LG_ERR_FORMAT, "expected ',' or '%c' at offset %zu",
								close, i);
		}
closed:
		if (v != NULL)
			v->kind = close == ']' ? LG_JSON_ARRAY : LG_JSON_OBJECT;
	}
	else
		return lg_error_set(err, LG_ERR_FORMAT, "unexpected character '%c' at offset %zu",
							c >= 0x20 && c < 0x7F ? c : '?', i);
	if (v != NULL)
		v->end = i;
	*pos = i;
	return LG_OK;
}

/* An empty value with no string buffer yet. */
void
lg_json_value_init(lg_json_value *v)
{
	memset(v, 0, sizeof(*v));
	lg_buf_init(&v->str);
}

/* Free the value's string buffer. */
void
lg_json_value_free(lg_json_value *v)
{
	lg_buf_free(&v->str);
	lg_json_value_init(v);
}

/* Parse one value of any kind at the top level (depth 0). */
lg_status
lg_json_parse_value(const char *in, size_t len, size_t *pos, lg_json_value *v, lg_error *err)
{
	return parse_value_at(in, len, pos, v, 0, err);
}

/* Skip whitespace; true if nothing else is left. */
bool
lg_json_at_end(const char *in, size_t len, size_t *pos)
{
	skip_ws(in, len, pos);
	return *pos >= len;
}

/* Start an iterator at the opening bracket open. */
static lg_status
iter_begin(lg_json_iter *it, const char *in, size_t len, size_t pos, char open, lg_error *err)
{
	skip_ws(in, len, &pos);
	it->in = in;
	it->len = len;
	it->count = 0;
	it->done = false;
	it->close = open == '{' ? '}' : ']';
	if (pos >= len || in[pos] != open)
	{
		it->pos = pos;
		return lg_error_set(err, LG_ERR_FORMAT, "expected %s at offset %zu",
							open == '{' ? "an object" : "an array", pos);
	}
	it->pos = pos + 1;
	return LG_OK;
}

/*
 * Step past the separator before the next member or element; sets done at
 * the closing bracket.  *i is where the next member starts.
 */
static lg_status
iter_step(lg_json_iter *it, size_t *i, lg_error *err)
{
	const char *in = it->in;
	size_t		len = it->len;

	*i = it->pos;
	skip_ws(in, len, i);
	if (*i < len && in[*i] == it->close)
	{
		it->pos = *i + 1;
		it->done = true;
		return LG_OK;
	}
	if (it->count > 0)
	{
		if (*i >= len || in[*i] != ',')
			return lg_error_set(err, LG_ERR_FORMAT, "expected ',' or '%c' at offset %zu",
								it->close, *i);
		(*i)++;
		skip_ws(in, len, i);
		if (*i < len && in[*i] == it->close)
			return lg_error_set(err, LG_ERR_FORMAT, "trailing comma at offset %zu", *i);
	}
	return LG_OK;
}

/* Start walking an object. */
lg_status
lg_json_object_begin(lg_json_iter *it, const char *in, size_t len, size_t pos, lg_error *err)
{
	return iter_begin(it, in, len, pos, '{', err);
}

/* Read the next "key": value of the object, or reach its end. */
lg_status
lg_json_object_next(lg_json_iter *it, lg_buf *key, lg_json_value *v, lg_error *err)
{
	size_t		i;
	lg_status	st;

	if (it->done)
		return LG_OK;
	if ((st = iter_step(it, &i, err)) != LG_OK || it->done)
		return st;
	if ((st = lg_json_parse_string(it->in, it->len, &i, key, err)) != LG_OK)
		return st;
	skip_ws(it->in, it->len, &i);
	if (i >= it->len || it->in[i] != ':')
		return lg_error_set(err, LG_ERR_FORMAT, "expected ':' at offset %zu", i);
	i++;
	/* the object itself is one level */
	if ((st = parse_value_at(it->in, it->len, &i, v, 1, err)) != LG_OK)
		return st;
	it->pos = i;
	it->count++;
	return LG_OK;
}

/* Start walking an array. */
lg_status
lg_json_array_begin(lg_json_iter *it, const char *in, size_t len, size_t pos, lg_error *err)
{
	return iter_begin(it, in, len, pos, '[', err);
}

/* Read the next element of the array, or reach its end. */
lg_status
lg_json_array_next(lg_json_iter *it, lg_json_value *v, lg_error *err)
{
	size_t		i;
	lg_status	st;

	if (it->done)
		return LG_OK;
	if ((st = iter_step(it, &i, err)) != LG_OK || it->done)
		return st;
	if ((st = parse_value_at(it->in, it->len, &i, v, 1, err)) != LG_OK)
		return st;
	it->pos = i;
	it->count++;
	return LG_OK;
}

/* An array of integers, via the array iterator. */
lg_status
lg_json_parse_int_array(const char *in, size_t len, size_t *pos,
						int64_t **vals, size_t *n, lg_error *err)
{
	lg_json_iter it;
	lg_json_value v;
	int64_t    *arr = NULL;
	size_t		cnt = 0;
	size_t		cap = 0;
	lg_status	st;

	*vals = NULL;
	*n = 0;
	if ((st = lg_json_array_begin(&it, in, len, *pos, err)) != LG_OK)
		return st;
	lg_json_value_init(&v);
	for (;;)
	{
		if ((st = lg_json_array_next(&it, &v, err)) != LG_OK)
			goto fail;
		if (it.done)
			break;
		if (v.kind != LG_JSON_NUMBER || !v.is_int)
		{
			st = lg_error_set(err, LG_ERR_FORMAT,
							  "array element %zu at offset %zu is not an integer", cnt, v.start);
			goto fail;
		}
		if (cnt == cap)
		{
			/* at most len/2 elements fit in the input, so this cannot overflow */
			size_t		ncap = cap ? cap * 2 : 16;
			int64_t    *na = realloc(arr, ncap * sizeof(int64_t));

			if (na == NULL)
			{
				st = lg_error_set(err, LG_ERR_NOMEM, "out of memory reading an array");
				goto fail;
			}
			arr = na;
			cap = ncap;
		}
		arr[cnt++] = v.integer;
	}
	lg_json_value_free(&v);
	*pos = it.pos;
	*vals = arr;
	*n = cnt;
	return LG_OK;

fail:
	lg_json_value_free(&v);
	free(arr);
	return st;
}

/* Free what lg_json_parse_string_array returned. */
void
lg_json_free_string_array(char **strs, size_t n)
{
	size_t		i;

	if (strs == NULL)
		return;
	for (i = 0; i < n; i++)
		free(strs[i]);
	free(strs);
}

/* An array of strings as NUL-terminated copies, via the array iterator. */
lg_status
lg_json_parse_string_array(const char *in, size_t len, size_t *pos,
						   char ***strs, size_t *n, lg_error *err)
{
	lg_json_iter it;
	lg_json_value v;
	char	  **arr = NULL;
	size_t		cnt = 0;
	size_t		cap = 0;
	lg_status	st;

	*strs = NULL;
	*n = 0;
	if ((st = lg_json_array_begin(&it, in, len, *pos, err)) != LG_OK)
		return st;
	lg_json_value_init(&v);
	for (;;)
	{
		if ((st = lg_json_array_next(&it, &v, err)) != LG_OK)
			goto fail;
		if (it.done)
			break;
		if (v.kind != LG_JSON_STRING)
		{
			st = lg_error_set(err, LG_ERR_FORMAT,
							  "array element %zu at offset %zu is not a string", cnt, v.start);
			goto fail;
		}
		if (memchr(v.str.data, '\0', v.str.len) != NULL)
		{
			st = lg_error_set(err, LG_ERR_FORMAT,
							  "array element %zu at offset %zu contains a NUL character",
							  cnt, v.start);
			goto fail;
		}
		if (cnt == cap)
		{
			size_t		ncap = cap ? cap * 2 : 8;
			char	  **na = realloc(arr, ncap * sizeof(char *));

			if (na == NULL)
			{
				st = lg_error_set(err, LG_ERR_NOMEM, "out of memory reading an array");
				goto fail;
			}
			arr = na;
			cap = ncap;
		}
		arr[cnt] = malloc(v.str.len + 1);
		if (arr[cnt] == NULL)
		{
			st = lg_error_set(err, LG_ERR_NOMEM, "out of memory reading an array");
			goto fail;
		}
		memcpy(arr[cnt], v.str.data, v.str.len + 1);
		cnt++;
	}
	lg_json_value_free(&v);
	*pos = it.pos;
	*strs = arr;
	*n = cnt;
	return LG_OK;

fail:
	lg_json_value_free(&v);
	lg_json_free_string_array(arr, cnt);
	return st;
}
