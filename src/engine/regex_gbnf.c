/*
 * regex_gbnf.c — ECMA-262 regular expressions (JSON Schema "pattern",
 * and the formats, which are written as patterns) translated to GBNF over
 * JSON string content.  See regex_gbnf.h for what is supported.
 *
 * The pattern is parsed to a small tree (character sets as code point
 * ranges, sequences, alternations, repetitions, anchors), then written
 * out.  A set becomes a GBNF class of the characters JSON writes as they
 * are, plus the escaped forms (\" \\ \n ... \u00XX) of those it must
 * escape.
 */
#include "regex_gbnf.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_MAX_CP 0x10FFFF
#define RX_MAX_DEPTH 100

typedef enum rx_kind
{
	RX_SET, RX_SEQ, RX_ALT, RX_REP, RX_BOL, RX_EOL
} rx_kind;

typedef struct rx_node rx_node;
struct rx_node
{
	rx_kind		kind;
	uint32_t   *r;				/* SET: ranges as pairs lo, hi (sorted, merged) */
	size_t		nr;
	rx_node   **k;				/* SEQ, ALT: children; REP: k[0] */
	size_t		nk;
	long		min, max;		/* REP; max -1 = unbounded */
	rx_node    *next_alloc;
};

typedef struct rx_parser
{
	const char *s;
	size_t		n, pos;
	int			depth;
	rx_node    *all;			/* every node, for freeing */
	lg_status	st;
	char		msg[256];
} rx_parser;

/* Record the first error. */
static void *
rx_fail(rx_parser *p, lg_status st, const char *msg)
{
	if (p->st == LG_OK)
	{
		p->st = st;
		snprintf(p->msg, sizeof(p->msg), "%s at offset %zu of pattern", msg, p->pos);
	}
	return NULL;
}

/* A new node of the given kind. */
static rx_node *
rx_new(rx_parser *p, rx_kind kind)
{
	rx_node    *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return rx_fail(p, LG_ERR_NOMEM, "out of memory");
	n->kind = kind;
	n->next_alloc = p->all;
	p->all = n;
	return n;
}

/* Append a child. */
static bool
rx_add(rx_parser *p, rx_node *n, rx_node *kid)
{
	rx_node   **k = realloc(n->k, (n->nk + 1) * sizeof(*k));

	if (k == NULL)
		return rx_fail(p, LG_ERR_NOMEM, "out of memory"), false;
	n->k = k;
	n->k[n->nk++] = kid;
	return true;
}

/* Add range [lo, hi] to a set (unsorted until rx_norm). */
static bool
rx_range(rx_parser *p, rx_node *set, uint32_t lo, uint32_t hi)
{
	uint32_t   *r = realloc(set->r, (set->nr + 1) * 2 * sizeof(uint32_t));

	if (r == NULL)
		return rx_fail(p, LG_ERR_NOMEM, "out of memory"), false;
	set->r = r;
	set->r[2 * set->nr] = lo;
	set->r[2 * set->nr + 1] = hi;
	set->nr++;
	return true;
}

/* Order of ranges by start. */
static int
rx_cmp(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a, y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

/* Sort and merge the ranges of a set. */
static void
rx_norm(rx_node *set)
{
	size_t		w = 0;

	if (set->nr == 0)
		return;
	qsort(set->r, set->nr, 2 * sizeof(uint32_t), rx_cmp);
	for (size_t i = 1; i < set->nr; i++)
	{
		if (set->r[2 * i] <= set->r[2 * w + 1] + 1)
		{
			if (set->r[2 * i + 1] > set->r[2 * w + 1])
				set->r[2 * w + 1] = set->r[2 * i + 1];
		}
		else
		{
			w++;
			set->r[2 * w] = set->r[2 * i];
			set->r[2 * w + 1] = set->r[2 * i + 1];
		}
	}
	set->nr = w + 1;
}

/* Replace a (normalised) set by its complement in [0, RX_MAX_CP]. */
static bool
rx_negate(rx_parser *p, rx_node *set)
{
	uint32_t   *old = set->r;
	size_t		n = set->nr;
	uint32_t	next = 0;

	set->r = NULL;
	set->nr = 0;
	for (size_t i = 0; i < n; i++)
	{
		if (old[2 * i] > next && !rx_range(p, set, next, old[2 * i] - 1))
			break;
		next = old[2 * i + 1] + 1;
	}
	if (next <= RX_MAX_CP)
		rx_range(p, set, next, RX_MAX_CP);
	free(old);
	return p->st == LG_OK;
}

/* Add \d, \w or \s (negated: \D \W \S) to set. */
static bool
rx_class_escape(rx_parser *p, rx_node *set, char c)
{
	rx_node    *tmp;
	bool		neg = c >= 'A' && c <= 'Z';

	tmp = rx_new(p, RX_SET);
	if (tmp == NULL)
		return false;
	switch (c | 32)
	{
		case 'd':
			rx_range(p, tmp, '0', '9');
			break;
		case 'w':
			rx_range(p, tmp, '0', '9');
			rx_range(p, tmp, 'A', 'Z');
			rx_range(p, tmp, '_', '_');
			rx_range(p, tmp, 'a', 'z');
			break;
		default:
			/* ECMA-262 WhiteSpace and LineTerminator */
			rx_range(p, tmp, 9, 13);
			rx_range(p, tmp, ' ', ' ');
			rx_range(p, tmp, 0xA0, 0xA0);
			rx_range(p, tmp, 0x1680, 0x1680);
			rx_range(p, tmp, 0x2000, 0x200A);
			rx_range(p, tmp, 0x2028, 0x2029);
			rx_range(p, tmp, 0x202F, 0x202F);
			rx_range(p, tmp, 0x205F, 0x205F);
			rx_range(p, tmp, 0x3000, 0x3000);
			rx_range(p, tmp, 0xFEFF, 0xFEFF);
	}
	rx_norm(tmp);
	if (neg && !rx_negate(p, tmp))
		return false;
	for (size_t i = 0; i < tmp->nr; i++)
		if (!rx_range(p, set, tmp->r[2 * i], tmp->r[2 * i + 1]))
			return false;
	return true;
}

/* Decode one UTF-8 code point at p->pos. */
static uint32_t
rx_utf8(rx_parser *p)
{
	const unsigned char *u = (const unsigned char *) p->s + p->pos;
	size_t		left = p->n - p->pos;
	uint32_t	cp;
	size_t		n;

	if (u[0] < 0x80)
		cp = u[0], n = 1;
	else if ((u[0] & 0xE0) == 0xC0)
		cp = u[0] & 0x1F, n = 2;
	else if ((u[0] & 0xF0) == 0xE0)
		cp = u[0] & 0x0F, n = 3;
	else
		cp = u[0] & 0x07, n = 4;
	if (n > left)
		n = left;
	for (size_t k = 1; k < n; k++)
		cp = (cp << 6) | (u[k] & 0x3F);
	p->pos += n;
	return cp;
}

/* n hex digits at pos, or -1. */
static long
rx_hex(rx_parser *p, int n)
{
	long		v = 0;

	if (p->pos + n > p->n)
		return -1;
	for (int i = 0; i < n; i++)
	{
		char		c = p->s[p->pos + i];
		int			d = (c >= '0' && c <= '9') ? c - '0' : ((c | 32) >= 'a' && (c | 32) <= 'f') ? (c | 32) - 'a' + 10 : -1;

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	p->pos += n;
	return v;
}

/*
 * An escape after '\' (pos is past the backslash): a code point in *cp, or
 * a class added to set (returns 2), or an error (0).  in_class: \b is
 * backspace there.
 */
static int
rx_escape(rx_parser *p, rx_node *set, uint32_t *cp, bool in_class)
{
	char		c;
	long		v;

	if (p->pos >= p->n)
		return rx_fail(p, LG_ERR_FORMAT, "pattern ends with a backslash"), 0;
	c = p->s[p->pos++];
	switch (c)
	{
		case 'd':
		case 'D':
		case 'w':
		case 'W':
		case 's':
		case 'S':
			return rx_class_escape(p, set, c) ? 2 : 0;
		case 'b':
			if (in_class)
			{
				*cp = 8;
				return 1;
			}
			/* fall through */
		case 'B':
			return rx_fail(p, LG_ERR_UNSUPPORTED, "word boundary assertion"), 0;
		case 't':
			*cp = 9;
			return 1;
		case 'n':
			*cp = 10;
			return 1;
		case 'v':
			*cp = 11;
			return 1;
		case 'f':
			*cp = 12;
			return 1;
		case 'r':
			*cp = 13;
			return 1;
		case '0':
			if (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
				return rx_fail(p, LG_ERR_UNSUPPORTED, "octal escape"), 0;
			*cp = 0;
			return 1;
		case 'x':
			if ((v = rx_hex(p, 2)) < 0)
			{
				*cp = 'x';
				return 1;
			}
			*cp = (uint32_t) v;
			return 1;
		case 'u':
			if (p->pos < p->n && p->s[p->pos] == '{')
			{
				size_t		save = p->pos;

				p->pos++;
				v = 0;
				while (p->pos < p->n && p->s[p->pos] != '}')
				{
					long		d = rx_hex(p, 1);

					if (d < 0 || v > RX_MAX_CP)
						return rx_fail(p, LG_ERR_FORMAT, "bad \\u{...} escape"), 0;
					v = v * 16 + d;
				}
				if (p->pos >= p->n || p->pos == save + 1 || v > RX_MAX_CP)
					return rx_fail(p, LG_ERR_FORMAT, "bad \\u{...} escape"), 0;
				p->pos++;
				*cp = (uint32_t) v;
				return 1;
			}
			if ((v = rx_hex(p, 4)) < 0)
			{
				*cp = 'u';
				return 1;
			}
			/* a surrogate pair written as two escapes is one code point */
			if (v >= 0xD800 && v <= 0xDBFF && p->pos + 6 <= p->n && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u')
			{
				size_t		save = p->pos;
				long		lo;

				p->pos += 2;
				lo = rx_hex(p, 4);
				if (lo >= 0xDC00 && lo <= 0xDFFF)
					v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
				else
					p->pos = save;
			}
			*cp = (uint32_t) v;
			return 1;
		case 'c':
			if (p->pos < p->n && ((p->s[p->pos] | 32) >= 'a' && (p->s[p->pos] | 32) <= 'z'))
			{
				*cp = (uint32_t) (p->s[p->pos++] % 32);
				return 1;
			}
			*cp = '\\';
			p->pos--;
			return 1;
		case 'p':
		case 'P':
			return rx_fail(p, LG_ERR_UNSUPPORTED, "unicode property escape"), 0;
		case 'k':
			if (p->pos < p->n && p->s[p->pos] == '<')
				return rx_fail(p, LG_ERR_UNSUPPORTED, "backreference"), 0;
			*cp = 'k';
			return 1;
		default:
			if (c >= '1' && c <= '9')
			{
				if (in_class)
					return rx_fail(p, LG_ERR_UNSUPPORTED, "octal escape"), 0;
				return rx_fail(p, LG_ERR_UNSUPPORTED, "backreference"), 0;
			}
			p->pos--;
			*cp = rx_utf8(p);
			return 1;
	}
}

/* [...] (pos is past '['). */
static rx_node *
rx_class(rx_parser *p)
{
	rx_node    *set = rx_new(p, RX_SET);
	bool		neg = false;

	if (set == NULL)
		return NULL;
	if (p->pos < p->n && p->s[p->pos] == '^')
	{
		neg = true;
		p->pos++;
	}
	for (;;)
	{
		uint32_t	lo, hi;
		int			e;

		if (p->pos >= p->n)
			return rx_fail(p, LG_ERR_FORMAT, "unterminated character class");
		if (p->s[p->pos] == ']')
		{
			p->pos++;
			break;
		}
		if (p->s[p->pos] == '\\')
		{
			p->pos++;
			e = rx_escape(p, set, &lo, true);
			if (e == 0)
				return NULL;
			if (e == 2)
				continue;
		}
		else
			lo = rx_utf8(p);
		hi = lo;
		if (p->pos + 1 < p->n && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']')
		{
			size_t		save = p->pos;

			p->pos++;
			if (p->s[p->pos] == '\\')
			{
				rx_node    *tmp = rx_new(p, RX_SET);

				p->pos++;
				if (tmp == NULL || (e = rx_escape(p, tmp, &hi, true)) == 0)
					return NULL;
				if (e == 2)
				{
					/* [a-\d]: '-' is literal (Annex B) */
					for (size_t i = 0; i < tmp->nr; i++)
						rx_range(p, set, tmp->r[2 * i], tmp->r[2 * i + 1]);
					rx_range(p, set, lo, lo);
					rx_range(p, set, '-', '-');
					continue;
				}
			}
			else
				hi = rx_utf8(p);
			if (hi < lo)
			{
				p->pos = save;
				return rx_fail(p, LG_ERR_FORMAT, "character class range out of order");
			}
		}
		if (!rx_range(p, set, lo, hi))
			return NULL;
	}
	rx_norm(set);
	if (neg && !rx_negate(p, set))
		return NULL;
	return set;
}

static rx_node *rx_alt(rx_parser *p);

/* {n}, {n,}, {n,m} at pos: true and the bounds, else false with pos unchanged. */
static bool
rx_braces(rx_parser *p, long *min, long *max)
{
	size_t		i = p->pos + 1;
	long		a = 0, b;
	bool		digits = false;

	while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
	{
		a = a * 10 + (p->s[i++] - '0');
		digits = true;
		if (a > 100000)
			return false;
	}
	if (!digits || i >= p->n)
		return false;
	b = a;
	if (p->s[i] == ',')
	{
		i++;
		if (i < p->n && p->s[i] == '}')
			b = -1;
		else
		{
			b = 0;
			digits = false;
			while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
			{
				b = b * 10 + (p->s[i++] - '0');
				digits = true;
				if (b > 100000)
					return false;
			}
			if (!digits)
				return false;
		}
	}
	if (i >= p->n || p->s[i] != '}')
		return false;
	*min = a;
	*max = b;
	p->pos = i + 1;
	return true;
}

/* One atom. */
static rx_node *
rx_atom(rx_parser *p)
{
	char		c = p->s[p->pos];
	rx_node    *n;
	uint32_t	cp;

	switch (c)
	{
		case '(':
			p->pos++;
			if (p->pos < p->n && p->s[p->pos] == '?')
			{
				p->pos++;
				if (p->pos < p->n && p->s[p->pos] == ':')
					p->pos++;
				else if (p->pos + 1 < p->n && p->s[p->pos] == '<' && p->s[p->pos + 1] != '=' && p->s[p->pos + 1] != '!')
				{
					while (p->pos < p->n && p->s[p->pos] != '>')
						p->pos++;
					if (p->pos >= p->n)
						return rx_fail(p, LG_ERR_FORMAT, "unterminated group name");
					p->pos++;
				}
				else if (p->pos < p->n && (p->s[p->pos] == '=' || p->s[p->pos] == '!' || p->s[p->pos] == '<'))
					return rx_fail(p, LG_ERR_UNSUPPORTED, "lookaround assertion");
				else
					return rx_fail(p, LG_ERR_UNSUPPORTED, "group modifier");
			}
			if (++p->depth > RX_MAX_DEPTH)
				return rx_fail(p, LG_ERR_UNSUPPORTED, "groups nested too deeply");
			n = rx_alt(p);
			p->depth--;
			if (n == NULL)
				return NULL;
			if (p->pos >= p->n || p->s[p->pos] != ')')
				return rx_fail(p, LG_ERR_FORMAT, "missing )");
			p->pos++;
			return n;
		case '[':
			p->pos++;
			return rx_class(p);
		case '.':
			p->pos++;
			n = rx_new(p, RX_SET);
			if (n == NULL)
				return NULL;
			rx_range(p, n, 10, 10);
			rx_range(p, n, 13, 13);
			rx_range(p, n, 0x2028, 0x2029);
			rx_norm(n);
			return rx_negate(p, n) ? n : NULL;
		case '^':
			p->pos++;
			return rx_new(p, RX_BOL);
		case '$':
			p->pos++;
			return rx_new(p, RX_EOL);
		case '*':
		case '+':
		case '?':
			return rx_fail(p, LG_ERR_FORMAT, "nothing to repeat");
		case '{':
			{
				long		a, b;
				size_t		save = p->pos;

				if (rx_braces(p, &a, &b))
				{
					p->pos = save;
					return rx_fail(p, LG_ERR_FORMAT, "nothing to repeat");
				}
			}
			break;
		case ')':
			return rx_fail(p, LG_ERR_FORMAT, "unmatched )");
		default:
			break;
	}
	n = rx_new(p, RX_SET);
	if (n == NULL)
		return NULL;
	if (c == '\\')
	{
		int			e;

		p->pos++;
		e = rx_escape(p, n, &cp, false);
		if (e == 0)
			return NULL;
		if (e == 2)
		{
			rx_norm(n);
			return n;
		}
	}
	else
		cp = rx_utf8(p);
	rx_range(p, n, cp, cp);
	return n;
}

/* A sequence of quantified atoms. */
static rx_node *
rx_seq(rx_parser *p)
{
	rx_node    *seq = rx_new(p, RX_SEQ);

	if (seq == NULL)
		return NULL;
	while (p->pos < p->n && p->s[p->pos] != '|' && p->s[p->pos] != ')')
	{
		rx_node    *a = rx_atom(p);
		long		min, max;

		if (a == NULL)
			return NULL;
		for (;;)
		{
			char		c = p->pos < p->n ? p->s[p->pos] : '\0';
			rx_node    *r;

			if (c == '*')
				min = 0, max = -1, p->pos++;
			else if (c == '+')
				min = 1, max = -1, p->pos++;
			else if (c == '?')
				min = 0, max = 1, p->pos++;
			else if (c == '{' && rx_braces(p, &min, &max))
			{
				if (max >= 0 && max < min)
					return rx_fail(p, LG_ERR_FORMAT, "numbers out of order in {} quantifier");
			}
			else
				break;
			if (p->pos < p->n && p->s[p->pos] == '?')
				p->pos++;		/* lazy: the same language */
			if (a->kind == RX_BOL || a->kind == RX_EOL)
				return rx_fail(p, LG_ERR_UNSUPPORTED, "quantified anchor");
			if ((r = rx_new(p, RX_REP)) == NULL || !rx_add(p, r, a))
				return NULL;
			r->min = min;
			r->max = max;
			a = r;
			break;
		}
		if (p->pos < p->n && (p->s[p->pos] == '*' || p->s[p->pos] == '+' ||
							  (p->s[p->pos] == '?' && 0)))
			return rx_fail(p, LG_ERR_FORMAT, "nothing to repeat");
		if (!rx_add(p, seq, a))
			return NULL;
	}
	return seq;
}

/* Alternatives separated by '|'. */
static rx_node *
rx_alt(rx_parser *p)
{
	rx_node    *alt = rx_new(p, RX_ALT);
	rx_node    *s;

	if (alt == NULL || (s = rx_seq(p)) == NULL || !rx_add(p, alt, s))
		return NULL;
	while (p->pos < p->n && p->s[p->pos] == '|')
	{
		p->pos++;
		if ((s = rx_seq(p)) == NULL || !rx_add(p, alt, s))
			return NULL;
	}
	return alt;
}

/* Lengths of the strings a node matches. */
static void
rx_len(const rx_node *n, long *min, long *max)
{
	long		a, b;

	switch (n->kind)
	{
		case RX_SET:
			*min = *max = 1;
			return;
		case RX_BOL:
		case RX_EOL:
			*min = *max = 0;
			return;
		case RX_SEQ:
			*min = 0;
			*max = 0;
			for (size_t i = 0; i < n->nk; i++)
			{
				rx_len(n->k[i], &a, &b);
				*min += a;
				*max = (*max < 0 || b < 0) ? -1 : *max + b;
			}
			return;
		case RX_ALT:
			*min = -1;
			*max = 0;
			for (size_t i = 0; i < n->nk; i++)
			{
				rx_len(n->k[i], &a, &b);
				if (*min < 0 || a < *min)
					*min = a;
				if (*max >= 0 && (b < 0 || b > *max))
					*max = b;
			}
			if (*min < 0)
				*min = 0;
			return;
		case RX_REP:
			rx_len(n->k[0], &a, &b);
			*min = a * n->min;
			*max = (n->max < 0 && b != 0) ? -1 : (b < 0 ? (n->max == 0 ? 0 : -1) : b * n->max);
			if (n->max < 0 && b == 0)
				*max = 0;
			return;
	}
}

/* True when a node holds an anchor. */
static bool
rx_has_anchor(const rx_node *n)
{
	if (n->kind == RX_BOL || n->kind == RX_EOL)
		return true;
	for (size_t i = 0; i < n->nk; i++)
		if (rx_has_anchor(n->k[i]))
			return true;
	return false;
}

/* A code point in a GBNF class. */
static void
rx_class_cp(lg_buf *b, uint32_t cp)
{
	if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9'))
		lg_buf_appendf(b, "%c", (char) cp);
	else if (cp < 0x80)
		lg_buf_appendf(b, "\\x%02X", cp);
	else if (cp < 0x10000)
		lg_buf_appendf(b, "\\u%04X", cp);
	else
		lg_buf_appendf(b, "\\U%08X", cp);
}

/* How JSON (Python's json.dumps) writes a character it must escape. */
static void
rx_escaped(lg_buf *b, uint32_t cp)
{
	switch (cp)
	{
		case '"':
			lg_buf_append(b, "\"\\\\\\\"\"", 6);
			return;
		case '\\':
			lg_buf_append(b, "\"\\\\\\\\\"", 6);
			return;
		case '\n':
			lg_buf_append(b, "\"\\\\n\"", 5);
			return;
		case '\r':
			lg_buf_append(b, "\"\\\\r\"", 5);
			return;
		case '\t':
			lg_buf_append(b, "\"\\\\t\"", 5);
			return;
		case '\b':
			lg_buf_append(b, "\"\\\\b\"", 5);
			return;
		case '\f':
			lg_buf_append(b, "\"\\\\f\"", 5);
			return;
		default:
			lg_buf_appendf(b, "\"\\\\u%04x\"", cp);
	}
}

/*
 * A set as GBNF: a class of the characters written as they are (not
 * " or \, no controls, no surrogates) and the escaped forms of the rest.
 */
static bool
rx_emit_set(const rx_node *set, const char *any_char, lg_buf *b)
{
	lg_buf		cls;
	int			alts = 0, plain = 0;
	bool		full = true;

	/* every character: the caller's any-character rule */
	if (set->nr == 1 && set->r[0] == 0 && set->r[1] >= 0xFFFF)
		return lg_buf_append(b, any_char, strlen(any_char));
	(void) full;
	lg_buf_init(&cls);
	lg_buf_append(&cls, "[", 1);
	for (size_t i = 0; i < set->nr; i++)
	{
		uint32_t	lo = set->r[2 * i], hi = set->r[2 * i + 1];
		/* pieces of [lo, hi] outside the specials and surrogates */
		uint32_t	cuts[][2] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0xD7FF}, {0xE000, RX_MAX_CP}};

		for (int c = 0; c < 4; c++)
		{
			uint32_t	a = lo > cuts[c][0] ? lo : cuts[c][0];
			uint32_t	z = hi < cuts[c][1] ? hi : cuts[c][1];

			if (a > z)
				continue;
			rx_class_cp(&cls, a);
			if (z > a)
			{
				if (z > a + 1)
					lg_buf_append(&cls, "-", 1);
				rx_class_cp(&cls, z);
			}
			plain++;
		}
	}
	lg_buf_append(&cls, "]", 1);
	{
		int			specials = 0;

		for (size_t i = 0; i < set->nr; i++)
			for (uint32_t cp = set->r[2 * i]; cp <= set->r[2 * i + 1] && cp <= 0x5C; cp++)
				specials += cp < 0x20 || cp == '"' || cp == '\\';
		if (specials == 0)
		{
			/* the common case: a bare class */
			bool		ok = plain && lg_buf_append(b, cls.data, cls.len);

			lg_buf_free(&cls);
			return ok;
		}
	}
	lg_buf_append(b, "( ", 2);
	if (plain)
	{
		lg_buf_append(b, cls.data, cls.len);
		alts++;
	}
	lg_buf_free(&cls);
	/* all the control characters: two alternatives rather than 32 */
	bool		all_ctl = set->nr > 0 && set->r[0] == 0 && set->r[1] >= 0x1F;

	if (all_ctl)
	{
		if (alts++)
			lg_buf_append(b, " | ", 3);
		lg_buf_appendf(b, "%s", "\"\\\\\" [bfnrt] | \"\\\\u00\" [01] [0-9a-fA-F]");
	}
	for (size_t i = 0; i < set->nr; i++)
	{
		uint32_t	lo = set->r[2 * i], hi = set->r[2 * i + 1];

		for (uint32_t cp = lo; cp <= hi && cp <= 0x5C; cp++)
		{
			if (!(cp < 0x20 || cp == '"' || cp == '\\') || (all_ctl && cp < 0x20))
				continue;
			if (alts++)
				lg_buf_append(b, " | ", 3);
			rx_escaped(b, cp);
		}
	}
	lg_buf_append(b, " )", 2);
	return alts > 0;
}

/* True when GBNF text t is one term a quantifier can follow: no spaces, or one group. */
static bool
rx_atomic(const char *t)
{
	size_t		n = strlen(t);
	int			depth = 0;
	bool		quoted = false, in_class = false;

	if (strchr(t, ' ') == NULL)
		return true;
	if (n < 4 || t[0] != '(' || t[n - 1] != ')')
		return false;
	/* the first parenthesis must close at the very end */
	for (size_t i = 0; i < n; i++)
	{
		char		ch = t[i];

		if (ch == '\\')
		{
			i++;
			continue;
		}
		if (quoted)
		{
			quoted = ch != '"';
			continue;
		}
		if (in_class)
		{
			in_class = ch != ']';
			continue;
		}
		if (ch == '"')
			quoted = true;
		else if (ch == '[')
			in_class = true;
		else if (ch == '(')
			depth++;
		else if (ch == ')' && --depth == 0 && i != n - 1)
			return false;
	}
	return true;
}

/* Write node n (no anchors inside). */
static bool
rx_emit(const rx_node *n, const char *any_char, lg_buf *b)
{
	switch (n->kind)
	{
		case RX_SET:
			return rx_emit_set(n, any_char, b);
		case RX_SEQ:
			if (n->nk == 0)
				return lg_buf_append(b, "\"\"", 2);
			if (n->nk == 1)
				return rx_emit(n->k[0], any_char, b);
			lg_buf_append(b, "( ", 2);
			for (size_t i = 0; i < n->nk; i++)
			{
				if (!rx_emit(n->k[i], any_char, b))
					return false;
				lg_buf_append(b, " ", 1);
			}
			return lg_buf_append(b, ")", 1);
		case RX_ALT:
			if (n->nk == 1)
				return rx_emit(n->k[0], any_char, b);
			lg_buf_append(b, "( ", 2);
			for (size_t i = 0; i < n->nk; i++)
			{
				if (i > 0)
					lg_buf_append(b, " | ", 3);
				if (!rx_emit(n->k[i], any_char, b))
					return false;
			}
			return lg_buf_append(b, " )", 2);
		case RX_REP:
			if (n->max == 0)
				return lg_buf_append(b, "\"\"", 2);
			{
				lg_buf		kid;
				bool		ok;

				lg_buf_init(&kid);
				ok = rx_emit(n->k[0], any_char, &kid) && kid.data;
				if (ok && rx_atomic(kid.data))
					lg_buf_append(b, kid.data, kid.len);
				else if (ok)
					lg_buf_appendf(b, "( %s )", kid.data);
				lg_buf_free(&kid);
				if (!ok)
					return false;
			}
			if (n->min == 0 && n->max < 0)
				return lg_buf_append(b, "*", 1);
			if (n->min == 1 && n->max < 0)
				return lg_buf_append(b, "+", 1);
			if (n->min == 0 && n->max == 1)
				return lg_buf_append(b, "?", 1);
			if (n->max < 0)
				return lg_buf_appendf(b, "{%ld,}", n->min);
			if (n->min == n->max)
				return lg_buf_appendf(b, "{%ld}", n->min);
			return lg_buf_appendf(b, "{%ld,%ld}", n->min, n->max);
		default:
			return false;
	}
}

/* One top-level alternative with its anchors. */
typedef struct rx_piece
{
	rx_node    *body;
	bool		bol, eol;
} rx_piece;

/* Split the top-level alternatives, taking ^ and $ off their ends. */
static bool
rx_split(rx_parser *p, rx_node *n, rx_piece **pcs, size_t *np, int depth)
{
	if (depth > 8)
		return false;
	if (n->kind == RX_ALT)
	{
		for (size_t i = 0; i < n->nk; i++)
			if (!rx_split(p, n->k[i], pcs, np, depth + 1))
				return false;
		return true;
	}
	{
		rx_piece	pc = {n, false, false};
		rx_piece   *r;

		if (n->kind == RX_SEQ)
		{
			size_t		a = 0, z = n->nk;

			while (a < z && n->k[a]->kind == RX_BOL)
				a++, pc.bol = true;
			while (z > a && n->k[z - 1]->kind == RX_EOL)
				z--, pc.eol = true;
			if (!pc.bol && !pc.eol && z - a == 1 && n->k[a]->kind == RX_ALT)
				return rx_split(p, n->k[a], pcs, np, depth + 1);
			if (a > 0 || z < n->nk)
			{
				rx_node    *s = rx_new(p, RX_SEQ);

				if (s == NULL)
					return false;
				for (size_t i = a; i < z; i++)
					rx_add(p, s, n->k[i]);
				pc.body = s;
			}
		}
		r = realloc(*pcs, (*np + 1) * sizeof(*r));
		if (r == NULL)
			return false;
		*pcs = r;
		(*pcs)[(*np)++] = pc;
		return true;
	}
}

/* Free the parse. */
static void
rx_free(rx_parser *p)
{
	while (p->all)
	{
		rx_node    *n = p->all;

		p->all = n->next_alloc;
		free(n->r);
		free(n->k);
		free(n);
	}
}

/* Parse the whole pattern. */
static rx_node *
rx_parse(rx_parser *p, const char *pat, size_t len)
{
	rx_node    *root;

	memset(p, 0, sizeof(*p));
	p->s = pat;
	p->n = len;
	root = rx_alt(p);
	if (root && p->pos < p->n)
		return rx_fail(p, LG_ERR_FORMAT, "unmatched )");
	return root;
}

/*
 * Fit a piece into lengths [lo, hi]: its own lengths already inside, or
 * one repeated single character between fixed-length parts, whose count
 * is narrowed.  False when neither.
 */
static bool
rx_fit(rx_piece *pc, long lo, long hi, bool *empty)
{
	long		mn, mx;
	rx_node    *body = pc->body;
	rx_node    *var = NULL;
	long		fixed = 0;

	*empty = false;
	rx_len(body, &mn, &mx);
	if (pc->bol && pc->eol && mn >= lo && (hi < 0 || (mx >= 0 && mx <= hi)))
		return true;
	if (!pc->bol || !pc->eol)
		return lo <= 0 && hi < 0;
	if (body->kind == RX_SEQ)
	{
		for (size_t i = 0; i < body->nk; i++)
		{
			long		a, b;

			rx_len(body->k[i], &a, &b);
			if (a == b)
			{
				fixed += a;
				continue;
			}
			if (var || body->k[i]->kind != RX_REP)
				return false;
			var = body->k[i];
		}
	}
	else if (body->kind == RX_REP)
		var = body;
	if (var == NULL || var->k[0]->kind != RX_SET)
		return false;
	{
		long		nmin = lo - fixed > var->min ? lo - fixed : var->min;
		long		nmax = var->max;

		if (hi >= 0 && (nmax < 0 || hi - fixed < nmax))
			nmax = hi - fixed;
		if (nmax >= 0 && nmin > nmax)
		{
			*empty = true;
			return true;
		}
		var->min = nmin < 0 ? 0 : nmin;
		var->max = nmax;
	}
	return true;
}

/* Collect the variable repetitions of a tree (their max is kept in next_cap). */
static void
rx_unbounded(rx_node *n, rx_node ***v, size_t *nv, size_t *cap)
{
	if (n->kind == RX_REP && n->max != n->min)
	{
		if (*nv == *cap)
		{
			size_t		c2 = *cap ? 2 * *cap : 16;
			rx_node   **w = realloc(*v, c2 * sizeof(*w));

			if (w == NULL)
				return;
			*v = w;
			*cap = c2;
		}
		(*v)[(*nv)++] = n;
	}
	for (size_t i = 0; i < n->nk; i++)
		rx_unbounded(n->k[i], v, nv, cap);
}

/* True when node a has b below it. */
static bool
rx_contains(const rx_node *a, const rx_node *b)
{
	for (size_t i = 0; i < a->nk; i++)
		if (a->k[i] == b || rx_contains(a->k[i], b))
			return true;
	return false;
}

/* Caps: outer repetitions min + outer_extra, the others min + t, never above their own max. */
static void
rx_set_caps(rx_node **unb, const long *orig, const bool *outer, size_t nu, long t, long outer_extra)
{
	for (size_t i = 0; i < nu; i++)
	{
		long		c = unb[i]->min + (outer[i] ? outer_extra : t);

		unb[i]->max = (orig[i] < 0 || c < orig[i]) ? c : orig[i];
	}
}

/* "{lo,hi}" (hi -1: unbounded) after any_char. */
static void
rx_any_rep(lg_buf *b, const char *any_char, long lo, long hi)
{
	if (hi < 0)
		lg_buf_appendf(b, "%s{%ld,}", any_char, lo);
	else if (hi == 0)
		lg_buf_append(b, "\"\"", 2);
	else
		lg_buf_appendf(b, "%s{%ld,%ld}", any_char, lo, hi);
}

/*
 * Lengths for a piece rx_fit could not fit, written to b.  Search
 * semantics first: a repetition at an unanchored end only needs its
 * minimum ("contains a+b" is "contains ab"), so the piece often becomes a
 * fixed-length core P with free text around it, and "length in [lo, hi],
 * containing P" is written as the choice of P's position.  Otherwise every
 * unbounded repetition (the free ends included) gets the same cap, the
 * largest that keeps the longest match within hi: a subset of the strings,
 * all valid.  False when neither works.
 */
static bool
rx_fit_search(rx_parser *p, rx_piece *pc, long lo, long hi, const char *any_char, lg_buf *b)
{
	rx_node    *body = pc->body;
	rx_node    *seq;
	long		mn, mx;

	if (body->kind != RX_SEQ)
	{
		seq = rx_new(p, RX_SEQ);
		if (seq == NULL || !rx_add(p, seq, body))
			return false;
		body = seq;
	}
	/* trim the repetitions at the free ends */
	while (!pc->bol && body->nk > 0 && body->k[0]->kind == RX_REP)
	{
		rx_node    *r = body->k[0];

		if (r->min == 0)
		{
			memmove(body->k, body->k + 1, (body->nk - 1) * sizeof(rx_node *));
			body->nk--;
			continue;
		}
		r->max = r->min;
		break;
	}
	while (!pc->eol && body->nk > 0 && body->k[body->nk - 1]->kind == RX_REP)
	{
		rx_node    *r = body->k[body->nk - 1];

		if (r->min == 0)
		{
			body->nk--;
			continue;
		}
		r->max = r->min;
		break;
	}
	rx_len(body, &mn, &mx);
	if (mn == mx && (!pc->bol || !pc->eol) && (hi < 0 || mn <= hi))
	{
		long		L = mn;
		lg_buf		core;
		bool		ok;

		lg_buf_init(&core);
		ok = rx_emit(body, any_char, &core) && core.data;
		if (!ok)
		{
			lg_buf_free(&core);
			return false;
		}
		lg_buf_append(b, "( ", 2);
		if (pc->bol || !pc->eol)
		{
			if (pc->bol)
			{
				/* P then free text */
				lg_buf_appendf(b, "%s ", core.data);
				rx_any_rep(b, any_char, lo - L > 0 ? lo - L : 0, hi < 0 ? -1 : hi - L);
			}
			else
			{
				/* free text, P, free text: by P's position i */
				long		last = hi >= 0 ? hi - L : (lo - L > 0 ? lo - L : 0);

				if (last > 256)
				{
					lg_buf_free(&core);
					b->len -= 2;
					goto cap;
				}
				for (long i = 0; i <= last; i++)
				{
					long		rlo = lo - L - i > 0 ? lo - L - i : 0;

					if (i)
						lg_buf_append(b, " | ", 3);
					if (hi < 0 && i == last)
					{
						rx_any_rep(b, any_char, i, -1);
						lg_buf_appendf(b, " %s ", core.data);
						rx_any_rep(b, any_char, rlo, -1);
						continue;
					}
					rx_any_rep(b, any_char, i, i);
					lg_buf_appendf(b, " %s ", core.data);
					rx_any_rep(b, any_char, rlo, hi < 0 ? -1 : hi - L - i);
				}
			}
		}
		else
		{
			/* free text then P */
			rx_any_rep(b, any_char, lo - L > 0 ? lo - L : 0, hi < 0 ? -1 : hi - L);
			lg_buf_appendf(b, " %s", core.data);
		}
		lg_buf_append(b, " )", 2);
		lg_buf_free(&core);
		return true;
	}
cap:
	{
		rx_node    *all = rx_new(p, RX_SEQ);
		rx_node   **unb = NULL;
		size_t		nu = 0, cu = 0;
		long		tlo = 0, thi;

		if (all == NULL)
			return false;
		if (!pc->bol)
		{
			rx_node    *any = rx_new(p, RX_SET), *r = rx_new(p, RX_REP);

			if (any == NULL || r == NULL || !rx_range(p, any, 0, RX_MAX_CP) || !rx_add(p, r, any) || !rx_add(p, all, r))
				return false;
			r->min = 0;
			r->max = -1;
		}
		rx_add(p, all, body);
		if (!pc->eol)
		{
			rx_node    *any = rx_new(p, RX_SET), *r = rx_new(p, RX_REP);

			if (any == NULL || r == NULL || !rx_range(p, any, 0, RX_MAX_CP) || !rx_add(p, r, any) || !rx_add(p, all, r))
				return false;
			r->min = 0;
			r->max = -1;
		}
		rx_unbounded(all, &unb, &nu, &cu);
		rx_len(all, &mn, &mx);
		if (nu > 0 && hi >= 0 && (mx < 0 || mx > hi))
		{
			/* the largest uniform cap t with the longest match within hi */
			long	   *orig = malloc(nu * sizeof(long));

			if (orig == NULL)
			{
				free(unb);
				return false;
			}
			for (size_t i = 0; i < nu; i++)
				orig[i] = unb[i]->max;
			/*
			 * Repetitions around other variable ones multiply their lengths:
			 * they get at most one more than their minimum (then none), the
			 * innermost ones share the rest uniformly.
			 */
			bool	   *outer = calloc(nu, sizeof(bool));

			for (size_t i = 0; outer && i < nu; i++)
				for (size_t j = 0; j < nu && !outer[i]; j++)
					outer[i] = j != i && rx_contains(unb[i], unb[j]);
			/*
			 * Outer repetitions get extra rounds of 16, 8, ... 0: the first
			 * that still leaves the inner ones 16 or more wins (else the
			 * smallest that fits at all).
			 */
			static const long extras[] = {16, 8, 4, 2, 1, 0};

			for (int e = 0; outer && e < 6; e++)
			{
				long		outer_extra = extras[e];

				tlo = 0;
				thi = hi;
				while (tlo < thi)
				{
					long		t = (tlo + thi + 1) / 2;

					rx_set_caps(unb, orig, outer, nu, t, outer_extra);
					rx_len(all, &mn, &mx);
					if (mx >= 0 && mx <= hi)
						tlo = t;
					else
						thi = t - 1;
				}
				rx_set_caps(unb, orig, outer, nu, tlo, outer_extra);
				rx_len(all, &mn, &mx);
				if (mx >= 0 && mx <= hi && (tlo >= 16 || outer_extra <= 1))
					break;
			}
			/*
			 * An outer repetition with its own finite bound ({0,49} words) cut
			 * below it loses what the author counted on: refused instead.
			 */
			for (size_t i = 0; outer && i < nu; i++)
				if (outer[i] && orig[i] >= 0 && unb[i]->max < orig[i])
					mx = -1;
			free(orig);
			free(outer);
			if (mx < 0)
			{
				free(unb);
				return false;
			}
			rx_len(all, &mn, &mx);
		}
		free(unb);
		if (mn < lo || (hi >= 0 && (mx < 0 || mx > hi)))
			return false;
		lg_buf_append(b, "( ", 2);
		if (!rx_emit(all, any_char, b))
			return false;
		lg_buf_append(b, " )", 2);
		return true;
	}
}

lg_status
lg_regex_to_gbnf(const char *pat, size_t len, long min_len, long max_len,
				 const char *any_char, lg_buf *out, lg_error *err)
{
	rx_parser	p;
	rx_node    *root = rx_parse(&p, pat, len);
	rx_piece   *pcs = NULL;
	size_t		np = 0;
	int			alts = 0;
	lg_status	st = LG_OK;
	size_t		mark = out->len;

	if (root == NULL)
	{
		st = lg_error_set(err, p.st, "%s", p.msg);
		rx_free(&p);
		return st;
	}
	if (!rx_split(&p, root, &pcs, &np, 0))
	{
		st = lg_error_set(err, p.st != LG_OK ? p.st : LG_ERR_UNSUPPORTED, "pattern alternatives nested too deeply");
		goto done;
	}
	lg_buf_append(out, "( ", 2);
	for (size_t i = 0; i < np; i++)
	{
		bool		empty = false;

		if (rx_has_anchor(pcs[i].body))
		{
			st = lg_error_set(err, LG_ERR_UNSUPPORTED, "anchor ^ or $ inside the pattern");
			goto done;
		}
		if ((min_len > 0 || max_len >= 0) && !rx_fit(&pcs[i], min_len < 0 ? 0 : min_len, max_len, &empty))
		{
			lg_buf		piece;
			bool		ok;

			lg_buf_init(&piece);
			ok = rx_fit_search(&p, &pcs[i], min_len < 0 ? 0 : min_len, max_len, any_char, &piece) && piece.data;
			if (!ok)
			{
				lg_buf_free(&piece);
				st = lg_error_set(err, LG_ERR_UNSUPPORTED, "pattern combined with minLength/maxLength");
				goto done;
			}
			if (alts++)
				lg_buf_append(out, " | ", 3);
			lg_buf_append(out, piece.data, piece.len);
			lg_buf_free(&piece);
			continue;
		}
		if (empty)
			continue;
		if (alts++)
			lg_buf_append(out, " | ", 3);
		lg_buf_append(out, "( ", 2);
		if (!pcs[i].bol)
			lg_buf_appendf(out, "%s* ", any_char);
		if (!rx_emit(pcs[i].body, any_char, out))
		{
			st = lg_error_set(err, LG_ERR_UNSUPPORTED, "pattern has an empty character class");
			goto done;
		}
		if (!pcs[i].eol)
			lg_buf_appendf(out, " %s*", any_char);
		lg_buf_append(out, " )", 2);
	}
	lg_buf_append(out, " )", 2);
	if (alts == 0)
		st = lg_error_set(err, LG_ERR_UNSUPPORTED, "no string matches the pattern within minLength/maxLength");
	else if (out->data == NULL)
		st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
done:
	if (st != LG_OK && out->data)
	{
		out->len = mark;
		out->data[mark] = '\0';
	}
	free(pcs);
	rx_free(&p);
	return st;
}

/* The complement set (as a new node) of a set. */
static rx_node *
rx_set_complement(rx_parser *p, const rx_node *set)
{
	rx_node    *c = rx_new(p, RX_SET);

	for (size_t i = 0; c && i < set->nr; i++)
		rx_range(p, c, set->r[2 * i], set->r[2 * i + 1]);
	if (c == NULL)
		return NULL;
	rx_norm(c);
	return rx_negate(p, c) ? c : NULL;
}

lg_status
lg_regex_complement_gbnf(const char *pat, size_t len, const char *any_char, lg_buf *out, lg_error *err)
{
	rx_parser	p;
	rx_node    *root = rx_parse(&p, pat, len);
	rx_piece   *pcs = NULL;
	size_t		np = 0;
	lg_status	st = LG_OK;
	rx_node    *body;

	if (root == NULL)
	{
		st = lg_error_set(err, p.st, "%s", p.msg);
		rx_free(&p);
		return st;
	}
	if (!rx_split(&p, root, &pcs, &np, 0) || np != 1 || rx_has_anchor(pcs[0].body) || !pcs[0].bol)
	{
		st = lg_error_set(err, LG_ERR_UNSUPPORTED, "no complement for this pattern");
		goto done;
	}
	body = pcs[0].body;
	/* with a free end, a trailing x+ only needs one x: ^w+ is ^w */
	if (!pcs[0].eol && body->kind == RX_SEQ && body->nk > 0 && body->k[body->nk - 1]->kind == RX_REP &&
		body->k[body->nk - 1]->min == 1)
		body->k[body->nk - 1] = body->k[body->nk - 1]->k[0];
	else if (!pcs[0].eol && body->kind == RX_REP && body->min == 1)
		body = body->k[0];
	if (body->kind == RX_SET)
	{
		rx_node    *seq = rx_new(&p, RX_SEQ);

		if (seq == NULL || !rx_add(&p, seq, body))
		{
			st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
			goto done;
		}
		body = seq;
	}
	if (body->kind == RX_SEQ && body->nk == 1 && body->k[0]->kind != RX_SET)
		body = body->k[0];
	if (pcs[0].eol && body->kind == RX_REP && body->max < 0 && body->min <= 1 && body->k[0]->kind == RX_SET)
	{
		/* ^C*$ / ^C+$: some character outside C (or, for +, nothing at all) */
		rx_node    *nc = rx_set_complement(&p, body->k[0]);

		if (nc == NULL || nc->nr == 0)
		{
			st = lg_error_set(err, LG_ERR_UNSUPPORTED, "no complement for this pattern");
			goto done;
		}
		lg_buf_appendf(out, "( %s* ", any_char);
		rx_emit_set(nc, any_char, out);
		lg_buf_appendf(out, " %s*%s )", any_char, body->min == 1 ? " | \"\"" : "");
	}
	else if (!pcs[0].eol && body->kind == RX_SEQ && body->nk > 0)
	{
		/* ^literal: strings that do not start with it */
		size_t		k;

		for (k = 0; k < body->nk; k++)
			if (body->k[k]->kind != RX_SET || body->k[k]->nr != 1 || body->k[k]->r[0] != body->k[k]->r[1])
				break;
		if (k < body->nk)
		{
			st = lg_error_set(err, LG_ERR_UNSUPPORTED, "no complement for this pattern");
			goto done;
		}
		for (k = 0; k < body->nk; k++)
		{
			rx_node    *nc = rx_set_complement(&p, body->k[k]);

			if (nc == NULL)
			{
				st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
				goto done;
			}
			/* stop before character k, or differ there, or match it and go on (not after the last) */
			lg_buf_append(out, "( \"\" | ", 7);
			rx_emit_set(nc, any_char, out);
			lg_buf_appendf(out, " %s*", any_char);
			if (k + 1 < body->nk)
			{
				lg_buf_append(out, " | ", 3);
				rx_emit_set(body->k[k], any_char, out);
				lg_buf_append(out, " ", 1);
			}
		}
		for (k = 0; k < body->nk; k++)
			lg_buf_append(out, " )", 2);
	}
	else
		st = lg_error_set(err, LG_ERR_UNSUPPORTED, "no complement for this pattern");
done:
	free(pcs);
	rx_free(&p);
	return st;
}

/* Decode UTF-8 name into code points; the count. */
static size_t
rx_decode_name(const char *s, uint32_t *cp)
{
	rx_parser	p = {.s = s, .n = strlen(s)};
	size_t		k = 0;

	while (p.pos < p.n)
		cp[k++] = rx_utf8(&p);
	return k;
}

typedef struct rx_names
{
	uint32_t  **cp;
	size_t	   *len;
	size_t		n;
} rx_names;

/*
 * Strings of C{m,n} (n -1: unbounded) that are not among the names
 * sel[0..ns) (which share their first d code points); false when none.
 */
static bool
rx_minus_names(rx_parser *p, const rx_node *cls, long m, long n, const rx_names *nm, const size_t *sel, size_t ns,
			   size_t d, const char *any_char, lg_buf *b)
{
	int			alts = 0;
	bool		is_name = false;
	size_t	   *sub = malloc((ns + 1) * sizeof(size_t));
	rx_node    *kids = rx_new(p, RX_SET);

	if (sub == NULL || kids == NULL)
	{
		free(sub);
		return false;
	}
	for (size_t i = 0; i < ns; i++)
		if (nm->len[sel[i]] == d)
			is_name = true;
	lg_buf_append(b, "( ", 2);
	if (!is_name && (long) d >= m && (n < 0 || (long) d <= n))
	{
		lg_buf_append(b, "\"\"", 2);
		alts++;
	}
	for (size_t i = 0; i < ns; i++)
	{
		uint32_t	ch;
		size_t		nsub = 0;
		bool		seen = false;
		lg_buf		kid;

		if (nm->len[sel[i]] <= d)
			continue;
		ch = nm->cp[sel[i]][d];
		for (size_t j = 0; j < kids->nr && !seen; j++)
			seen = kids->r[2 * j] == ch;
		if (seen)
			continue;
		rx_range(p, kids, ch, ch);
		for (size_t j = 0; j < ns; j++)
			if (nm->len[sel[j]] > d && nm->cp[sel[j]][d] == ch)
				sub[nsub++] = sel[j];
		lg_buf_init(&kid);
		if (rx_minus_names(p, cls, m, n, nm, sub, nsub, d + 1, any_char, &kid) && kid.data)
		{
			if (alts++)
				lg_buf_append(b, " | ", 3);
			lg_buf_append(b, "[", 1);
			rx_class_cp(b, ch);
			lg_buf_appendf(b, "] %s", kid.data);
		}
		lg_buf_free(&kid);
	}
	/* a character of C that no name continues with, then anything of C */
	if (n < 0 || (long) d + 1 <= n)
	{
		rx_node    *other = rx_new(p, RX_SET);
		long		lo = m - (long) d - 1 > 0 ? m - (long) d - 1 : 0;

		for (size_t j = 0; other && j < kids->nr; j++)
			rx_range(p, other, kids->r[2 * j], kids->r[2 * j + 1]);
		if (other)
		{
			rx_node    *notc = rx_set_complement(p, cls);

			for (size_t j = 0; notc && j < notc->nr; j++)
				rx_range(p, other, notc->r[2 * j], notc->r[2 * j + 1]);
			rx_norm(other);
			rx_negate(p, other);
		}
		if (other && other->nr > 0)
		{
			if (alts++)
				lg_buf_append(b, " | ", 3);
			rx_emit_set(other, any_char, b);
			lg_buf_append(b, " ", 1);
			rx_emit_set(cls, any_char, b);
			if (n < 0)
				lg_buf_appendf(b, "{%ld,}", lo);
			else
				lg_buf_appendf(b, "{%ld,%ld}", lo, n - (long) d - 1);
		}
	}
	lg_buf_append(b, " )", 2);
	free(sub);
	return alts > 0;
}

lg_status
lg_regex_minus_names(const char *pat, size_t len, const char *const *names, size_t n_names,
					 const char *any_char, lg_buf *out, lg_error *err)
{
	rx_parser	p;
	rx_node    *root = rx_parse(&p, pat, len);
	rx_piece   *pcs = NULL;
	size_t		np = 0;
	lg_status	st = LG_OK;
	rx_node    *body;
	rx_names	nm = {0};
	size_t	   *sel = NULL;

	if (root == NULL)
	{
		st = lg_error_set(err, p.st, "%s", p.msg);
		rx_free(&p);
		return st;
	}
	if (!rx_split(&p, root, &pcs, &np, 0) || np != 1 || !pcs[0].bol || !pcs[0].eol || rx_has_anchor(pcs[0].body))
		goto unsupported;
	body = pcs[0].body;
	if (body->kind == RX_SEQ && body->nk == 1)
		body = body->k[0];
	if (body->kind != RX_REP || body->k[0]->kind != RX_SET)
		goto unsupported;
	nm.cp = calloc(n_names + 1, sizeof(*nm.cp));
	nm.len = calloc(n_names + 1, sizeof(*nm.len));
	sel = calloc(n_names + 1, sizeof(*sel));
	if (nm.cp == NULL || nm.len == NULL || sel == NULL)
	{
		st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n_names; i++)
	{
		nm.cp[i] = malloc((strlen(names[i]) + 1) * sizeof(uint32_t));
		if (nm.cp[i] == NULL)
		{
			st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
			goto done;
		}
		nm.len[i] = rx_decode_name(names[i], nm.cp[i]);
		sel[i] = i;
	}
	nm.n = n_names;
	if (!rx_minus_names(&p, body->k[0], body->min, body->max, &nm, sel, n_names, 0, any_char, out))
		st = lg_error_set(err, LG_ERR_UNSUPPORTED, "the pattern matches only declared names");
	goto done;
unsupported:
	st = lg_error_set(err, LG_ERR_UNSUPPORTED, "pattern is not one repeated class");
done:
	for (size_t i = 0; nm.cp && i < n_names; i++)
		free(nm.cp[i]);
	free(nm.cp);
	free(nm.len);
	free(sel);
	free(pcs);
	rx_free(&p);
	return st;
}

bool
lg_regex_literal_prefix(const char *pat, size_t len, lg_buf *out)
{
	rx_parser	p;
	rx_node    *root = rx_parse(&p, pat, len);
	rx_piece   *pcs = NULL;
	size_t		np = 0;
	bool		ok = false;
	rx_node    *body;

	if (root && rx_split(&p, root, &pcs, &np, 0) && np == 1 && pcs[0].bol && !pcs[0].eol &&
		!rx_has_anchor(pcs[0].body))
	{
		body = pcs[0].body;
		if (body->kind != RX_SEQ)
		{
			rx_node    *seq = rx_new(&p, RX_SEQ);

			if (seq && rx_add(&p, seq, body))
				body = seq;
		}
		/* a trailing x+ only needs one x */
		if (body->kind == RX_SEQ && body->nk > 0 && body->k[body->nk - 1]->kind == RX_REP &&
			body->k[body->nk - 1]->min == 1)
			body->k[body->nk - 1] = body->k[body->nk - 1]->k[0];
		ok = body->kind == RX_SEQ && body->nk > 0;
		for (size_t i = 0; ok && i < body->nk; i++)
		{
			rx_node    *k = body->k[i];
			uint32_t	cp;
			char		u[4];
			int			n;

			if (k->kind != RX_SET || k->nr != 1 || k->r[0] != k->r[1])
			{
				ok = false;
				break;
			}
			cp = k->r[0];
			if (cp < 0x80)
				u[0] = (char) cp, n = 1;
			else if (cp < 0x800)
				u[0] = (char) (0xC0 | cp >> 6), u[1] = (char) (0x80 | (cp & 0x3F)), n = 2;
			else if (cp < 0x10000)
				u[0] = (char) (0xE0 | cp >> 12), u[1] = (char) (0x80 | ((cp >> 6) & 0x3F)), u[2] = (char) (0x80 | (cp & 0x3F)), n = 3;
			else
				u[0] = (char) (0xF0 | cp >> 18), u[1] = (char) (0x80 | ((cp >> 12) & 0x3F)), u[2] = (char) (0x80 | ((cp >> 6) & 0x3F)), u[3] = (char) (0x80 | (cp & 0x3F)), n = 4;
			if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
				ok = false;
			else
				lg_buf_append(out, u, (size_t) n);
		}
	}
	free(pcs);
	rx_free(&p);
	return ok;
}

bool
lg_regex_matches_all(const char *pat, size_t len)
{
	rx_parser	p;
	rx_node    *root = rx_parse(&p, pat, len);
	rx_piece   *pcs = NULL;
	size_t		np = 0;
	bool		all = false;

	if (root && rx_split(&p, root, &pcs, &np, 0))
		for (size_t i = 0; i < np && !all; i++)
		{
			long		mn, mx;

			if (pcs[i].bol || pcs[i].eol || rx_has_anchor(pcs[i].body))
				continue;
			rx_len(pcs[i].body, &mn, &mx);
			/* an empty match is found in every string */
			all = mn == 0;
		}
	free(pcs);
	rx_free(&p);
	return all;
}

lg_status
lg_regex_lengths(const char *pat, size_t len, long *min_len, long *max_len, lg_error *err)
{
	rx_parser	p;
	rx_node    *root = rx_parse(&p, pat, len);
	lg_status	st = LG_OK;

	if (root == NULL)
		st = lg_error_set(err, p.st, "%s", p.msg);
	else
		rx_len(root, min_len, max_len);
	rx_free(&p);
	return st;
}

bool
lg_regex_search(const char *pat, const char *s, bool *unknown)
{
	int			ec;
	PCRE2_SIZE	eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR) pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ALT_BSUX, &ec, &eo, NULL);
	pcre2_match_data *md;
	int			rc;

	*unknown = false;
	if (re == NULL)
	{
		*unknown = true;
		return false;
	}
	md = pcre2_match_data_create_from_pattern(re, NULL);
	if (md == NULL)
	{
		pcre2_code_free(re);
		*unknown = true;
		return false;
	}
	rc = pcre2_match(re, (PCRE2_SPTR) s, strlen(s), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	if (rc < -1)
		*unknown = true;
	return rc >= 0;
}
