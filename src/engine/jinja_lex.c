/*
 * jinja_lex.c — template text to tokens, following jinja2's lexer (3.1)
 * with the options Hugging Face uses: trim_blocks (the newline after a
 * block or comment tag goes) and lstrip_blocks (spaces and tabs before a
 * block or comment tag on its own line go); `-` next to a delimiter strips
 * all whitespace on that side, `+` keeps it.  Whitespace is Python's
 * (str.isspace), so U+00A0 and U+3000 count, as they do in jinja2.
 *
 * Inside `{{ }}` and `{% %}` an end delimiter counts only when every
 * bracket opened in the tag is closed, so `{{ {'a': {'b': 1}} }}` works.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"
#include "unicode.h"

typedef struct lexer
{
	jx_arena   *ar;
	const char *src;
	size_t		len;
	jx_token   *toks;
	size_t		n;
	size_t		cap;
	/* position → line/column cursor (positions asked for never go back) */
	size_t		lc_pos;
	int			lc_line;
	int			lc_col;
	lg_error   *err;
	bool		line_starting;
} lexer;

/* Line and column (code points, 1-based) of byte offset pos. */
static void
line_col(lexer *lx, size_t pos, int *line, int *col)
{
	if (pos < lx->lc_pos)
	{
		lx->lc_pos = 0;
		lx->lc_line = 1;
		lx->lc_col = 1;
	}
	while (lx->lc_pos < pos && lx->lc_pos < lx->len)
	{
		unsigned char ch = (unsigned char) lx->src[lx->lc_pos++];

		if (ch == '\n')
		{
			lx->lc_line++;
			lx->lc_col = 1;
		}
		else if ((ch & 0xC0) != 0x80)
			lx->lc_col++;
	}
	*line = lx->lc_line;
	*col = lx->lc_col;
}

/* A syntax error at byte offset pos. */
static lg_status
lex_error(lexer *lx, size_t pos, const char *fmt, const char *arg)
{
	int			line,
				col;
	char		msg[256];

	line_col(lx, pos, &line, &col);
	snprintf(msg, sizeof(msg), fmt, arg);
	return lg_error_set(lx->err, LG_ERR_FORMAT, "line %d, column %d: %s", line, col, msg);
}

/* Append a token; NULL when out of memory. */
static jx_token *
push(lexer *lx, jx_tok kind, size_t pos)
{
	jx_token   *t;

	if (lx->n == lx->cap)
	{
		size_t		cap = lx->cap ? lx->cap * 2 : 256;
		jx_token   *nt = jx_alloc(lx->ar, cap * sizeof(jx_token));

		if (nt == NULL)
			return NULL;
		if (lx->n)
			memcpy(nt, lx->toks, lx->n * sizeof(jx_token));
		lx->toks = nt;
		lx->cap = cap;
	}
	t = &lx->toks[lx->n++];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	line_col(lx, pos, &t->line, &t->col);
	return t;
}

/* Is there a Python whitespace character at s[*i]?  Advances past it if so. */
static bool
space_at(const char *s, size_t len, size_t *i)
{
	size_t		j = *i;
	uint32_t	cp;

	if (j >= len)
		return false;
	if ((unsigned char) s[j] < 0x80)
	{
		if (!jx_is_space((unsigned char) s[j]))
			return false;
		*i = j + 1;
		return true;
	}
	cp = lg_utf8_decode(s, len, &j);
	if (!jx_is_space(cp))
		return false;
	*i = j;
	return true;
}

/* Length of text[0..n) without trailing whitespace (str.rstrip()). */
static size_t
rstrip_len(const char *s, size_t n)
{
	size_t		i = 0,
				keep = 0;

	while (i < n)
	{
		if (space_at(s, n, &i))
			continue;
		i += lg_utf8_len((unsigned char) s[i]);
		if (i > n)
			i = n;
		keep = i;
	}
	return keep;
}

/*
 * Whitespace control on the text before a tag: `-` strips it all; otherwise
 * lstrip_blocks drops the spaces that are alone on the tag's line (not for
 * `{{`, not with `+`).  Returns the length to keep.
 */
static size_t
strip_before(lexer *lx, const char *text, size_t n, char sign, bool is_var)
{
	size_t		l_pos,
				i;

	if (sign == '-')
		return rstrip_len(text, n);
	if (sign == '+' || is_var)
		return n;
	l_pos = n;
	while (l_pos > 0 && text[l_pos - 1] != '\n')
		l_pos--;
	if (l_pos == 0 && !lx->line_starting)
		return n;
	if (l_pos == n)
		return n;				/* \s+ needs one character */
	i = l_pos;
	while (i < n && space_at(text, n, &i))
		;
	return i == n ? l_pos : n;
}

/* Emit template text (skipped when empty). */
static bool
emit_data(lexer *lx, size_t pos, size_t n)
{
	jx_token   *t;

	if (n == 0)
		return true;
	t = push(lx, JT_DATA, pos);
	if (t == NULL)
		return false;
	t->s = lx->src + pos;
	t->n = n;
	return true;
}

/* Skip Python whitespace from *i. */
static void
skip_ws(lexer *lx, size_t *i)
{
	while (space_at(lx->src, lx->len, i))
		;
}

/* Is the word w at s[i] (and not followed by a name character)? */
static bool
word_at(lexer *lx, size_t i, const char *w)
{
	size_t		n = strlen(w);
	char		ch;

	if (i + n > lx->len || memcmp(lx->src + i, w, n) != 0)
		return false;
	if (i + n == lx->len)
		return true;
	ch = lx->src[i + n];
	return !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_');
}

/* Digits with single underscores between them, (\d+_)*\d+; returns the end or start if none. */
static size_t
digit_run(const char *s, size_t len, size_t i)
{
	size_t		end = i;

	while (i < len && s[i] >= '0' && s[i] <= '9')
	{
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		end = i;
		if (i + 1 < len && s[i] == '_' && s[i + 1] >= '0' && s[i + 1] <= '9')
			i++;
		else
			break;
	}
	return end;
}

/* Copy s[0..n) without underscores into buf (size bytes). */
static void
strip_underscores(const char *s, size_t n, char *buf, size_t size)
{
	size_t		o = 0;

	for (size_t i = 0; i < n && o + 1 < size; i++)
		if (s[i] != '_')
			buf[o++] = s[i];
	buf[o] = '\0';
}

/* A number token at i: float or integer (decimal, 0b, 0o, 0x as jinja2 reads them). */
static lg_status
lex_number(lexer *lx, size_t *pi)
{
	const char *s = lx->src;
	size_t		len = lx->len,
				i = *pi,
				d = digit_run(s, len, i),
				end = d;
	bool		is_float = false;
	char		buf[128];
	jx_token   *t;

	/* float: (?<!\.)digits((\.digits)?e[+-]?digits | \.digits) */
	if (i == 0 || s[i - 1] != '.')
	{
		size_t		f = d,
					frac_end = 0;

		if (f < len && s[f] == '.' && digit_run(s, len, f + 1) > f + 1)
		{
			frac_end = digit_run(s, len, f + 1);
			f = frac_end;
		}
		if (f < len && s[f] == 'e')
		{
			size_t		e = f + 1;

			if (e < len && (s[e] == '+' || s[e] == '-'))
				e++;
			if (digit_run(s, len, e) > e)
			{
				end = digit_run(s, len, e);
				is_float = true;
			}
		}
		if (!is_float && frac_end)
		{
			end = frac_end;
			is_float = true;
		}
	}
	if (is_float)
	{
		strip_underscores(s + i, end - i, buf, sizeof(buf));
		t = push(lx, JT_FLOAT, i);
		if (t == NULL)
			return lg_error_set(lx->err, LG_ERR_NOMEM, "out of memory");
		t->fval = strtod(buf, NULL);
		*pi = end;
		return LG_OK;
	}
	/* integer */
	{
		int			base = 10;
		size_t		start = i;
		unsigned long long v;

		if (s[i] == '0' && i + 1 < len && (s[i + 1] == 'b' || s[i + 1] == 'o' || s[i + 1] == 'x'))
		{
			char		kind = s[i + 1];
			size_t		j = i + 2;

			base = kind == 'b' ? 2 : kind == 'o' ? 8 : 16;
			for (;;)
			{
				size_t		k = j;
				char		ch;

				if (k < len && s[k] == '_')
					k++;
				if (k >= len)
					break;
				ch = s[k];
				if (!((base == 2 && (ch == '0' || ch == '1')) ||
					  (base == 8 && ch >= '0' && ch <= '7') ||
					  (base == 16 && ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))))
					break;
				j = k + 1;
			}
			if (j > i + 2)
			{
				start = i + 2;
				end = j;
			}
			else
				base = 10;
		}
		if (base == 10)
		{
			end = i + 1;
			if (s[i] == '0')
			{
				while (end + 1 < len + 1 && end < len &&
					   (s[end] == '0' || (s[end] == '_' && end + 1 < len && s[end + 1] == '0')))
					end += s[end] == '_' ? 2 : 1;
			}
			else
			{
				while (end < len && ((s[end] >= '0' && s[end] <= '9') ||
									 (s[end] == '_' && end + 1 < len && s[end + 1] >= '0' && s[end + 1] <= '9')))
					end += s[end] == '_' ? 2 : 1;
			}
		}
		strip_underscores(s + start, end - start, buf, sizeof(buf));
		errno = 0;
		v = strtoull(buf, NULL, base);
		if (errno == ERANGE || v > (unsigned long long) INT64_MAX || end - start > 100)
			return lex_error(lx, i, "integer literal %s is too large", "");
		t = push(lx, JT_INT, i);
		if (t == NULL)
			return lg_error_set(lx->err, LG_ERR_NOMEM, "out of memory");
		t->ival = (int64_t) v;
		*pi = end;
		return LG_OK;
	}
}

/* Hex digits value, or -1. */
static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * A string literal at i (quote included), decoded as Python's
 * "unicode-escape" codec does after jinja2 has backslash-escaped every
 * non-ASCII character: the usual escapes, octal, \x, \u, \U; an unknown
 * escape keeps its backslash.
 */
static lg_status
lex_string(lexer *lx, size_t *pi)
{
	const char *s = lx->src;
	size_t		len = lx->len,
				i = *pi + 1,
				end;
	char		q = s[*pi];
	char	   *out;
	size_t		o = 0;
	jx_token   *t;

	/* find the closing quote */
	end = i;
	while (end < len && s[end] != q)
		end += (s[end] == '\\' && end + 1 < len) ? 2 : 1;
	if (end >= len)
		return lex_error(lx, *pi, "unexpected char '%s'", q == '"' ? "\"" : "'");
	out = jx_alloc(lx->ar, end - i + 1);
	if (out == NULL)
		return lg_error_set(lx->err, LG_ERR_NOMEM, "out of memory");
	while (i < end)
	{
		char		ch = s[i];
		uint32_t	cp;
		int			nd;

		if (ch != '\\')
		{
			out[o++] = ch;
			i++;
			continue;
		}
		ch = s[i + 1];
		i += 2;
		switch (ch)
		{
			case '\n':
				continue;
			case '\\':
			case '\'':
			case '"':
				out[o++] = ch;
				continue;
			case 'a':
				out[o++] = '\a';
				continue;
			case 'b':
				out[o++] = '\b';
				continue;
			case 'f':
				out[o++] = '\f';
				continue;
			case 'n':
				out[o++] = '\n';
				continue;
			case 'r':
				out[o++] = '\r';
				continue;
			case 't':
				out[o++] = '\t';
				continue;
			case 'v':
				out[o++] = '\v';
				continue;
			case 'x':
			case 'u':
			case 'U':
				nd = ch == 'x' ? 2 : ch == 'u' ? 4 : 8;
				cp = 0;
				for (int k = 0; k < nd; k++)
				{
					int			h = i + k < end ? hexval(s[i + k]) : -1;

					if (h < 0)
						return lex_error(lx, i - 2, "truncated \\%s escape in string literal",
										 ch == 'x' ? "xXX" : ch == 'u' ? "uXXXX" : "UXXXXXXXX");
					cp = cp * 16 + (uint32_t) h;
				}
				i += nd;
				break;
			default:
				if (ch >= '0' && ch <= '7')
				{
					cp = (uint32_t) (ch - '0');
					for (int k = 0; k < 2 && i < end && s[i] >= '0' && s[i] <= '7'; k++)
						cp = cp * 8 + (uint32_t) (s[i++] - '0');
					break;
				}
				if (ch == 'N')
					return lex_error(lx, i - 2, "%s escapes are not supported", "\\N{...}");
				/* unknown escape: Python keeps both characters */
				out[o++] = '\\';
				i--;
				continue;
		}
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return lex_error(lx, i, "escape gives an invalid code point%s", "");
		o += lg_utf8_encode(cp, out + o);
	}
	t = push(lx, JT_STRING, *pi);
	if (t == NULL)
		return lg_error_set(lx->err, LG_ERR_NOMEM, "out of memory");
	out[o] = '\0';
	t->s = out;
	t->n = o;
	*pi = end + 1;
	return LG_OK;
}

/* Operators, longest first. */
static const struct
{
	const char *text;
	jx_tok		kind;
} operators[] = {
	{"//", JT_FLOORDIV}, {"**", JT_POW}, {"==", JT_EQ}, {"!=", JT_NE}, {">=", JT_GE}, {"<=", JT_LE},
	{"+", JT_ADD}, {"-", JT_SUB}, {"/", JT_DIV}, {"*", JT_MUL}, {"%", JT_MOD}, {"~", JT_TILDE},
	{"[", JT_LBRACKET}, {"]", JT_RBRACKET}, {"(", JT_LPAREN}, {")", JT_RPAREN},
	{"{", JT_LBRACE}, {"}", JT_RBRACE}, {">", JT_GT}, {"<", JT_LT}, {"=", JT_ASSIGN},
	{".", JT_DOT}, {":", JT_COLON}, {"|", JT_PIPE}, {",", JT_COMMA}, {";", JT_SEMICOLON},
};

#define MAX_BRACKETS 512

/*
 * The inside of a `{{ }}` or `{% %}` tag from *pi; stops after its end
 * delimiter (whitespace control applied) or at the end of the text.
 */
static lg_status
lex_tag(lexer *lx, size_t *pi, bool block)
{
	const char *s = lx->src;
	size_t		len = lx->len,
				i = *pi;
	char		stack[MAX_BRACKETS];
	int			depth = 0;
	lg_status	st;

	while (i < len)
	{
		char		ch = s[i];
		bool		matched = false;

		if (depth == 0)
		{
			const char *close = block ? "%}" : "}}";

			if (block && ch == '+' && i + 2 < len + 1 && strncmp(s + i + 1, close, 2) == 0)
			{
				if (push(lx, JT_BLOCK_END, i) == NULL)
					goto nomem;
				i += 3;
				lx->line_starting = false;
				*pi = i;
				return LG_OK;
			}
			if (ch == '-' && i + 2 < len + 1 && strncmp(s + i + 1, close, 2) == 0)
			{
				if (push(lx, block ? JT_BLOCK_END : JT_VAR_END, i) == NULL)
					goto nomem;
				i += 3;
				lx->line_starting = false;
				{
					size_t		before = i;

					skip_ws(lx, &i);
					if (i > before && s[i - 1] == '\n')
						lx->line_starting = true;
				}
				*pi = i;
				return LG_OK;
			}
			if (strncmp(s + i, close, 2) == 0 && i + 1 < len)
			{
				if (push(lx, block ? JT_BLOCK_END : JT_VAR_END, i) == NULL)
					goto nomem;
				i += 2;
				lx->line_starting = false;
				if (block && i < len && s[i] == '\n')
				{
					i++;
					lx->line_starting = true;
				}
				*pi = i;
				return LG_OK;
			}
		}
		if (space_at(s, len, &i))
			continue;
		if (ch >= '0' && ch <= '9')
		{
			if ((st = lex_number(lx, &i)) != LG_OK)
				return st;
			continue;
		}
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_')
		{
			size_t		start = i;
			jx_token   *t;

			while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
							   (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
				i++;
			t = push(lx, JT_NAME, start);
			if (t == NULL || (t->s = jx_strdup(lx->ar, s + start, i - start)) == NULL)
				goto nomem;
			t->n = i - start;
			continue;
		}
		if (ch == '\'' || ch == '"')
		{
			if ((st = lex_string(lx, &i)) != LG_OK)
				return st;
			continue;
		}
		for (size_t k = 0; k < sizeof(operators) / sizeof(operators[0]); k++)
		{
			size_t		n = strlen(operators[k].text);
			jx_token   *t;

			if (i + n > len || memcmp(s + i, operators[k].text, n) != 0)
				continue;
			if (ch == '{' || ch == '(' || ch == '[')
			{
				if (depth == MAX_BRACKETS)
					return lex_error(lx, i, "brackets nested too deeply%s", "");
				stack[depth++] = ch == '{' ? '}' : ch == '(' ? ')' : ']';
			}
			else if (ch == '}' || ch == ')' || ch == ']')
			{
				char		tmp[2] = {ch, 0};

				if (depth == 0)
					return lex_error(lx, i, "unexpected '%s'", tmp);
				if (stack[--depth] != ch)
					return lex_error(lx, i, "unexpected '%s'", tmp);
			}
			t = push(lx, operators[k].kind, i);
			if (t == NULL)
				goto nomem;
			t->s = operators[k].text;
			t->n = n;
			i += n;
			matched = true;
			break;
		}
		if (!matched)
		{
			char		tmp[8] = {0};
			size_t		n = lg_utf8_len((unsigned char) ch);

			memcpy(tmp, s + i, n < 5 && i + n <= len ? n : 1);
			return lex_error(lx, i, "unexpected char '%s'", tmp);
		}
	}
	*pi = i;
	return LG_OK;				/* the parser reports the missing end */
nomem:
	return lg_error_set(lx->err, LG_ERR_NOMEM, "out of memory");
}

/*
 * After `{% raw %}`: everything up to `{% endraw %}` is text.  Returns the
 * position after the end tag.
 */
static lg_status
lex_raw(lexer *lx, size_t *pi, size_t tag_pos)
{
	const char *s = lx->src;
	size_t		len = lx->len,
				i = *pi;

	for (size_t k = i; k + 1 < len; k++)
	{
		size_t		j;
		char		sign = 0;

		if (s[k] != '{' || s[k + 1] != '%')
			continue;
		j = k + 2;
		if (j < len && (s[j] == '-' || s[j] == '+'))
			sign = s[j++];
		skip_ws(lx, &j);
		if (!word_at(lx, j, "endraw"))
			continue;
		j += 6;
		skip_ws(lx, &j);
		if (j + 2 <= len && s[j] == '+' && j + 3 <= len && strncmp(s + j + 1, "%}", 2) == 0)
			j += 3, lx->line_starting = false;
		else if (j + 3 <= len && s[j] == '-' && strncmp(s + j + 1, "%}", 2) == 0)
		{
			size_t		before;

			j += 3;
			lx->line_starting = false;
			before = j;
			skip_ws(lx, &j);
			if (j > before && s[j - 1] == '\n')
				lx->line_starting = true;
		}
		else if (j + 2 <= len && strncmp(s + j, "%}", 2) == 0)
		{
			j += 2;
			lx->line_starting = false;
			if (j < len && s[j] == '\n')
				j++, lx->line_starting = true;
		}
		else
			continue;
		{
			bool		ls = lx->line_starting;

			lx->line_starting = *pi > 0 && s[*pi - 1] == '\n';
			if (!emit_data(lx, i, strip_before(lx, s + i, k - i, sign, false)))
				return lg_error_set(lx->err, LG_ERR_NOMEM, "out of memory");
			lx->line_starting = ls;
		}
		*pi = j;
		return LG_OK;
	}
	return lex_error(lx, tag_pos, "missing end of raw directive%s", "");
}

/* Tokenize the whole template. */
lg_status
jx_lex(jx_arena *a, const char *src, size_t len, jx_token **toks, size_t *ntoks, lg_error *err)
{
	lexer		lx = {.ar = a, .src = src, .len = len, .err = err, .lc_line = 1, .lc_col = 1,
	.line_starting = true};
	size_t		pos = 0;
	lg_status	st;

	while (pos < len)
	{
		size_t		t = pos;
		char		kind = 0,
					sign = 0;
		size_t		keep,
					after;

		/* the next tag start */
		while (t + 1 < len && !(src[t] == '{' && (src[t + 1] == '{' || src[t + 1] == '%' || src[t + 1] == '#')))
			t++;
		if (t + 1 >= len)
		{
			if (!emit_data(&lx, pos, len - pos))
				goto nomem;
			break;
		}
		kind = src[t + 1];
		after = t + 2;
		if (after < len && (src[after] == '-' || src[after] == '+'))
			sign = src[after++];

		/* {% raw %} */
		if (kind == '%')
		{
			size_t		j = after;

			skip_ws(&lx, &j);
			if (word_at(&lx, j, "raw"))
			{
				j += 3;
				skip_ws(&lx, &j);
				if (j + 3 <= len && src[j] == '-' && strncmp(src + j + 1, "%}", 2) == 0)
				{
					keep = strip_before(&lx, src + pos, t - pos, sign, false);
					if (!emit_data(&lx, pos, keep))
						goto nomem;
					j += 3;
					skip_ws(&lx, &j);
					lx.line_starting = j > 0 && src[j - 1] == '\n';
					if ((st = lex_raw(&lx, &j, t)) != LG_OK)
						return st;
					pos = j;
					continue;
				}
				if (j + 2 <= len && strncmp(src + j, "%}", 2) == 0)
				{
					keep = strip_before(&lx, src + pos, t - pos, sign, false);
					if (!emit_data(&lx, pos, keep))
						goto nomem;
					j += 2;
					lx.line_starting = false;
					if ((st = lex_raw(&lx, &j, t)) != LG_OK)
						return st;
					pos = j;
					continue;
				}
			}
		}

		keep = strip_before(&lx, src + pos, t - pos, sign, kind == '{');
		if (!emit_data(&lx, pos, keep))
			goto nomem;

		if (kind == '#')
		{
			/* (.*?)((?:\+#}|\-#}\s*|#}\n?)) */
			size_t		j = after;
			bool		found = false;

			for (; j + 1 < len; j++)
			{
				if ((src[j] == '+' || src[j] == '-') && j + 2 < len && src[j + 1] == '#' && src[j + 2] == '}')
				{
					bool		minus = src[j] == '-';

					j += 3;
					lx.line_starting = false;
					if (minus)
					{
						size_t		before = j;

						skip_ws(&lx, &j);
						if (j > before && src[j - 1] == '\n')
							lx.line_starting = true;
					}
					found = true;
					break;
				}
				if (src[j] == '#' && src[j + 1] == '}')
				{
					j += 2;
					lx.line_starting = false;
					if (j < len && src[j] == '\n')
						j++, lx.line_starting = true;
					found = true;
					break;
				}
			}
			if (!found)
				return lex_error(&lx, t, "missing end of comment tag%s", "");
			pos = j;
			continue;
		}
		if (push(&lx, kind == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN, t) == NULL)
			goto nomem;
		pos = after;
		if ((st = lex_tag(&lx, &pos, kind == '%')) != LG_OK)
			return st;
	}
	if (push(&lx, JT_EOF, len) == NULL)
		goto nomem;
	*toks = lx.toks;
	*ntoks = lx.n;
	return LG_OK;
nomem:
	return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
}

/* Token kinds as jinja2 names them in messages. */
const char *
jx_tok_name(jx_tok k)
{
	switch (k)
	{
		case JT_EOF:
			return "end of template";
		case JT_DATA:
			return "template data";
		case JT_VAR_BEGIN:
			return "begin of print statement";
		case JT_VAR_END:
			return "end of print statement";
		case JT_BLOCK_BEGIN:
			return "begin of statement block";
		case JT_BLOCK_END:
			return "end of statement block";
		case JT_NAME:
			return "name";
		case JT_STRING:
			return "string";
		case JT_INT:
			return "integer";
		case JT_FLOAT:
			return "float";
		default:
			for (size_t i = 0; i < sizeof(operators) / sizeof(operators[0]); i++)
				if (operators[i].kind == k)
					return operators[i].text;
			return "token";
	}
}
