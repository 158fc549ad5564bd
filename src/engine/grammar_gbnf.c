/*
 * grammar_gbnf.c — parse GBNF text (llama.cpp's grammars/README.md) into the
 * flat element array of grammar_impl.h.
 *
 * The syntax: rules `name ::= alternatives`, one per line (a rule continues
 * over several lines inside parentheses, after `::=` and `|`, and on a line
 * that starts with `|`); string literals "..." and character classes [...]
 * with the escapes \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH; `.` for any
 * character; groups ( ); repetitions * + ? {m} {m,} {m,n} {,n}; comments
 * from # to the end of the line.  Names are [a-zA-Z0-9_-]+ (llama.cpp has no
 * `_`; allowing it is harmless).
 *
 * Differences from llama.cpp, all in the direction of refusing less or
 * reporting more: a rule defined twice, an empty class [] and a range whose
 * ends are reversed are errors; left recursion is found here, naming the
 * rule, rather than while matching; repetitions stay one element with their
 * bounds instead of being unrolled into copies.
 */
#include "grammar_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable array of elements: one rule's alternatives while parsing. */
typedef struct elem_vec
{
	lg_gelem   *v;
	uint32_t	n;
	uint32_t	cap;
} elem_vec;

/* A rule while parsing: its name, body and where it was defined or first used. */
typedef struct build_rule
{
	elem_vec	body;			/* alternatives separated by ALT, no END */
	uint32_t	name;			/* offset into the name buffer */
	uint32_t	owner;			/* generated rules: the named rule they are part of */
	size_t		def_pos;		/* byte offset of the definition (SIZE_MAX: not defined) */
	size_t		ref_pos;		/* byte offset of the first reference */
	bool		generated;
} build_rule;

typedef struct parser
{
	const char *src;
	size_t		len;
	size_t		pos;
	lg_error   *err;
	bool		failed;

	build_rule *rules;
	uint32_t	n_rules;
	uint32_t	cap_rules;
	char	   *names;
	size_t		names_len;
	size_t		names_cap;
	uint32_t   *name_slots;		/* open addressing: named rule index + 1, 0 = empty */
	uint32_t	name_cap;
	uint32_t	n_named;
	lg_gclass  *classes;
	uint32_t	n_classes;
	uint32_t	cap_classes;
	uint32_t   *ranges;
	uint32_t	n_ranges;		/* uint32 values, two per range */
	uint32_t	cap_ranges;
	uint32_t   *tmp;			/* ranges of the class being parsed */
	uint32_t	n_tmp;
	uint32_t	cap_tmp;
	size_t		n_elems_total;
} parser;

/* Grow *buf (elements of size sz) so that it holds at least need; false if out of memory. */
static bool
grow(void **buf, uint32_t *cap, uint32_t need, size_t sz)
{
	uint32_t	nc;
	void	   *nb;

	if (need <= *cap)
		return true;
	nc = *cap ? *cap : 16;
	while (nc < need)
	{
		if (nc > UINT32_MAX / 2)
			return false;
		nc *= 2;
	}
	nb = realloc(*buf, (size_t) nc * sz);
	if (nb == NULL)
		return false;
	*buf = nb;
	*cap = nc;
	return true;
}

/* Record an error at byte offset at as "line L, column C: msg"; false. */
static bool
fail_at(parser *p, size_t at, lg_status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static bool
fail_at(parser *p, size_t at, lg_status st, const char *fmt, ...)
{
	size_t		line = 1,
				col = 1;
	char		msg[LG_ERROR_MSG_LEN];
	va_list		ap;

	if (p->failed)
		return false;
	p->failed = true;
	if (at > p->len)
		at = p->len;
	for (size_t i = 0; i < at; i++)
	{
		if (p->src[i] == '\n')
		{
			line++;
			col = 1;
		}
		else
			col++;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lg_error_set(p->err, st, "line %zu, column %zu: %s", line, col, msg);
	return false;
}

/* Out-of-memory error; false. */
static bool
fail_nomem(parser *p)
{
	return fail_at(p, p->pos, LG_ERR_NOMEM, "out of memory while parsing the grammar");
}

/* Current byte, or 0 at the end. */
static inline int
peek(const parser *p)
{
	return p->pos < p->len ? (unsigned char) p->src[p->pos] : -1;
}

/* Byte at pos + k, or -1 past the end. */
static inline int
peek_at(const parser *p, size_t k)
{
	return p->pos + k < p->len ? (unsigned char) p->src[p->pos + k] : -1;
}

/* Characters of rule names. */
static inline bool
is_name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '_';
}

/* Skip blanks and comments, and line breaks when newline_ok. */
static void
skip_space(parser *p, bool newline_ok)
{
	for (;;)
	{
		int			c = peek(p);

		if (c == ' ' || c == '\t')
			p->pos++;
		else if (c == '#')
		{
			while (peek(p) != -1 && peek(p) != '\n' && peek(p) != '\r')
				p->pos++;
		}
		else if (newline_ok && (c == '\n' || c == '\r'))
			p->pos++;
		else
			return;
	}
}

/* Append a NUL-terminated name; its offset, or UINT32_MAX if out of memory. */
static uint32_t
add_name(parser *p, const char *s, size_t n)
{
	size_t		off = p->names_len;

	if (p->names_len + n + 1 > p->names_cap)
	{
		size_t		nc = p->names_cap ? p->names_cap * 2 : 256;
		char	   *nb;

		while (nc < p->names_len + n + 1)
			nc *= 2;
		nb = realloc(p->names, nc);
		if (nb == NULL)
			return UINT32_MAX;
		p->names = nb;
		p->names_cap = nc;
	}
	memcpy(p->names + off, s, n);
	p->names[off + n] = '\0';
	p->names_len += n + 1;
	return (uint32_t) off;
}

/* A new rule; its index, or UINT32_MAX (error set). */
static uint32_t
new_rule(parser *p, uint32_t name, uint32_t owner, bool generated)
{
	build_rule *r;

	if (p->n_rules >= LG_GRAMMAR_MAX_ELEMS)
	{
		fail_at(p, p->pos, LG_ERR_FORMAT, "grammar too large (more than %u rules)", LG_GRAMMAR_MAX_ELEMS);
		return UINT32_MAX;
	}
	if (!grow((void **) &p->rules, &p->cap_rules, p->n_rules + 1, sizeof(build_rule)))
	{
		fail_nomem(p);
		return UINT32_MAX;
	}
	r = &p->rules[p->n_rules];
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->owner = generated ? owner : p->n_rules;
	r->generated = generated;
	r->def_pos = SIZE_MAX;
	r->ref_pos = SIZE_MAX;
	return p->n_rules++;
}

/* FNV-1a hash of a name. */
static uint32_t
name_hash(const char *s, size_t n)
{
	uint32_t	h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t) s[i]) * 16777619u;
	return h;
}

/* Grow the name table to cap slots (a power of two) and reinsert the named rules. */
static bool
rehash_names(parser *p, uint32_t cap)
{
	uint32_t   *slots = calloc(cap, sizeof(uint32_t));

	if (slots == NULL)
		return false;
	for (uint32_t r = 0; r < p->n_rules; r++)
	{
		const char *rn;
		uint32_t	h;

		if (p->rules[r].generated)
			continue;
		rn = p->names + p->rules[r].name;
		for (h = name_hash(rn, strlen(rn)) & (cap - 1); slots[h] != 0; h = (h + 1) & (cap - 1))
			;
		slots[h] = r + 1;
	}
	free(p->name_slots);
	p->name_slots = slots;
	p->name_cap = cap;
	return true;
}

/* The named rule s[0..n), created (undefined) if new; UINT32_MAX on error. */
static uint32_t
lookup_rule(parser *p, const char *s, size_t n)
{
	uint32_t	name,
				r,
				h;

	if (p->n_named * 2 + 2 > p->name_cap &&
		!rehash_names(p, p->name_cap ? p->name_cap * 2 : 256))
	{
		fail_nomem(p);
		return UINT32_MAX;
	}
	for (h = name_hash(s, n) & (p->name_cap - 1); p->name_slots[h] != 0; h = (h + 1) & (p->name_cap - 1))
	{
		const char *rn = p->names + p->rules[p->name_slots[h] - 1].name;

		if (strncmp(rn, s, n) == 0 && rn[n] == '\0')
			return p->name_slots[h] - 1;
	}
	name = add_name(p, s, n);
	if (name == UINT32_MAX)
	{
		fail_nomem(p);
		return UINT32_MAX;
	}
	if ((r = new_rule(p, name, 0, false)) == UINT32_MAX)
		return UINT32_MAX;
	p->name_slots[h] = r + 1;
	p->n_named++;
	return r;
}

/* A generated rule for a group or repetition body inside rule owner. */
static uint32_t
generated_rule(parser *p, uint32_t owner)
{
	return new_rule(p, p->rules[owner].name, owner, true);
}

/* Append one element to a rule's body. */
static bool
push_elem(parser *p, elem_vec *v, uint8_t type, uint32_t value, uint32_t min, uint32_t max)
{
	if (++p->n_elems_total > LG_GRAMMAR_MAX_ELEMS)
		return fail_at(p, p->pos, LG_ERR_FORMAT, "grammar too large (more than %u elements)", LG_GRAMMAR_MAX_ELEMS);
	if (!grow((void **) &v->v, &v->cap, v->n + 1, sizeof(lg_gelem)))
		return fail_nomem(p);
	v->v[v->n].type = type;
	v->v[v->n].rest_nullable = false;
	v->v[v->n].value = value;
	v->v[v->n].min = min;
	v->v[v->n].max = max;
	v->n++;
	return true;
}

/* Value of n hex digits at the current position; false if they are not there. */
static bool
parse_hex(parser *p, int n, uint32_t *out)
{
	uint32_t	v = 0;
	size_t		start = p->pos;

	for (int i = 0; i < n; i++)
	{
		int			c = peek(p);

		if (c >= '0' && c <= '9')
			v = v * 16 + (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint32_t) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (uint32_t) (c - 'A' + 10);
		else
			return fail_at(p, start, LG_ERR_FORMAT, "expecting %d hex digits in escape", n);
		p->pos++;
	}
	*out = v;
	return true;
}

/* One character of a literal or class (an escape or a UTF-8 sequence) as a code point. */
static bool
parse_char(parser *p, uint32_t *cp)
{
	size_t		start = p->pos;
	int			c = peek(p);

	if (c == '\\')
	{
		p->pos++;
		c = peek(p);
		p->pos++;
		switch (c)
		{
			case 'x': return parse_hex(p, 2, cp);
			case 'u': return parse_hex(p, 4, cp);
			case 'U':
				if (!parse_hex(p, 8, cp))
					return false;
				if (*cp > 0x10FFFF)
					return fail_at(p, start, LG_ERR_FORMAT, "code point \\U%08X is beyond U+10FFFF", *cp);
				return true;
			case 't': *cp = '\t'; return true;
			case 'r': *cp = '\r'; return true;
			case 'n': *cp = '\n'; return true;
			case '\\': case '"': case '[': case ']':
				*cp = (uint32_t) c;
				return true;
			case -1:
				return fail_at(p, start, LG_ERR_FORMAT, "unexpected end of input after \\");
			default:
				return fail_at(p, start, LG_ERR_FORMAT, "unknown escape \\%c", c);
		}
	}
	else
	{
		unsigned	b = (unsigned) c;
		int			n;
		uint32_t	v;

		if (b < 0x80)
			n = 0, v = b;
		else if ((b & 0xE0) == 0xC0)
			n = 1, v = b & 0x1F;
		else if ((b & 0xF0) == 0xE0)
			n = 2, v = b & 0x0F;
		else if ((b & 0xF8) == 0xF0)
			n = 3, v = b & 0x07;
		else
			return fail_at(p, start, LG_ERR_FORMAT, "invalid UTF-8 in the grammar");
		p->pos++;
		for (int i = 0; i < n; i++)
		{
			int			cc = peek(p);

			if (cc < 0 || (cc & 0xC0) != 0x80)
				return fail_at(p, start, LG_ERR_FORMAT, "invalid UTF-8 in the grammar");
			v = (v << 6) | (uint32_t) (cc & 0x3F);
			p->pos++;
		}
		*cp = v;
		return true;
	}
}

/* Add the range lo..hi to the class being parsed. */
static bool
tmp_range(parser *p, uint32_t lo, uint32_t hi)
{
	if (!grow((void **) &p->tmp, &p->cap_tmp, p->n_tmp + 2, sizeof(uint32_t)))
		return fail_nomem(p);
	p->tmp[p->n_tmp++] = lo;
	p->tmp[p->n_tmp++] = hi;
	return true;
}

/* qsort order of ranges by their low end. */
static int
cmp_range(const void *a, const void *b)
{
	uint32_t	x = ((const uint32_t *) a)[0],
				y = ((const uint32_t *) b)[0];

	return x < y ? -1 : x > y;
}

/* Turn the ranges in tmp into a class (sorted, merged); its index, or UINT32_MAX. */
static uint32_t
finish_class(parser *p, bool negated)
{
	lg_gclass  *c;
	uint32_t	n = 0;

	if (p->n_tmp > 0)
		qsort(p->tmp, p->n_tmp / 2, 2 * sizeof(uint32_t), cmp_range);
	for (uint32_t i = 0; i < p->n_tmp; i += 2)
	{
		if (n > 0 && p->tmp[i] <= p->tmp[2 * (n - 1) + 1] + 1)
		{
			if (p->tmp[i + 1] > p->tmp[2 * (n - 1) + 1])
				p->tmp[2 * (n - 1) + 1] = p->tmp[i + 1];
		}
		else
		{
			p->tmp[2 * n] = p->tmp[i];
			p->tmp[2 * n + 1] = p->tmp[i + 1];
			n++;
		}
	}
	/* a literal's characters repeat: reuse a singleton class already made */
	if (!negated && n == 1 && p->tmp[0] == p->tmp[1])
	{
		for (uint32_t i = p->n_classes; i-- > 0 && i + 64 >= p->n_classes;)
			if (!p->classes[i].negated && p->classes[i].n == 1 &&
				p->ranges[2 * p->classes[i].first] == p->tmp[0] &&
				p->ranges[2 * p->classes[i].first + 1] == p->tmp[0])
			{
				p->n_tmp = 0;
				return i;
			}
	}
	if (!grow((void **) &p->classes, &p->cap_classes, p->n_classes + 1, sizeof(lg_gclass)) ||
		!grow((void **) &p->ranges, &p->cap_ranges, p->n_ranges + 2 * n, sizeof(uint32_t)))
	{
		fail_nomem(p);
		return UINT32_MAX;
	}
	c = &p->classes[p->n_classes];
	memset(c, 0, sizeof(*c));
	c->first = p->n_ranges / 2;
	c->n = n;
	c->negated = negated;
	if (n > 0)
		memcpy(p->ranges + p->n_ranges, p->tmp, 2 * n * sizeof(uint32_t));
	p->n_ranges += 2 * n;
	for (uint32_t cp = 0; cp < 128; cp++)
	{
		bool		in = false;

		for (uint32_t i = 0; i < n && !in; i++)
			in = cp >= p->tmp[2 * i] && cp <= p->tmp[2 * i + 1];
		if (in != negated)
			c->ascii[cp >> 5] |= 1u << (cp & 31);
	}
	p->n_tmp = 0;
	return p->n_classes++;
}

/* A "..." literal: one CHAR element per code point. */
static bool
parse_literal(parser *p, elem_vec *out)
{
	size_t		start = p->pos;

	p->pos++;					/* the opening quote */
	for (;;)
	{
		uint32_t	cp,
					cls;
		int			c = peek(p);

		if (c == -1 || c == '\n' || c == '\r')
			return fail_at(p, start, LG_ERR_FORMAT, "unterminated string literal");
		if (c == '"')
		{
			p->pos++;
			return true;
		}
		if (!parse_char(p, &cp))
			return false;
		if (!tmp_range(p, cp, cp) || (cls = finish_class(p, false)) == UINT32_MAX)
			return false;
		if (!push_elem(p, out, LG_GE_CHAR, cls, 0, 0))
			return false;
	}
}

/* A [...] class or `.`: one CHAR element. */
static bool
parse_class(parser *p, elem_vec *out)
{
	size_t		start = p->pos;
	bool		negated = false;
	uint32_t	cls;

	p->n_tmp = 0;
	if (peek(p) == '.')
	{
		p->pos++;
		if (!tmp_range(p, 0, 0x10FFFF))
			return false;
	}
	else
	{
		p->pos++;				/* [ */
		if (peek(p) == '^')
		{
			negated = true;
			p->pos++;
		}
		for (;;)
		{
			uint32_t	lo,
						hi;
			size_t		item = p->pos;
			int			c = peek(p);

			if (c == -1 || c == '\n' || c == '\r')
				return fail_at(p, start, LG_ERR_FORMAT, "unterminated character class");
			if (c == ']')
			{
				p->pos++;
				break;
			}
			if (!parse_char(p, &lo))
				return false;
			hi = lo;
			if (peek(p) == '-' && peek_at(p, 1) != ']' && peek_at(p, 1) != -1)
			{
				p->pos++;
				if (!parse_char(p, &hi))
					return false;
				if (hi < lo)
					return fail_at(p, item, LG_ERR_FORMAT,
								   "invalid range in character class: U+%04X is after U+%04X", lo, hi);
			}
			if (!tmp_range(p, lo, hi))
				return false;
		}
		if (p->n_tmp == 0 && !negated)
			return fail_at(p, start, LG_ERR_FORMAT, "empty character class []");
	}
	if ((cls = finish_class(p, negated)) == UINT32_MAX)
		return false;
	return push_elem(p, out, LG_GE_CHAR, cls, 0, 0);
}

/* A decimal bound of {m,n}; false if too large. */
static bool
parse_count(parser *p, uint32_t *out)
{
	uint64_t	v = 0;
	size_t		start = p->pos;

	while (peek(p) >= '0' && peek(p) <= '9')
	{
		v = v * 10 + (uint64_t) (peek(p) - '0');
		if (v > LG_GRAMMAR_MAX_REPEAT)
			return fail_at(p, start, LG_ERR_FORMAT, "repetition bound larger than %d", LG_GRAMMAR_MAX_REPEAT);
		p->pos++;
	}
	*out = (uint32_t) v;
	return true;
}

/*
 * Replace the item at rule's body[item..] by a REPEAT of it.  One rule reference is
 * repeated as it is; anything else moves into a generated rule first.
 */
static bool
make_repeat(parser *p, uint32_t rule, uint32_t item, uint32_t owner, uint32_t min, uint32_t max)
{
	uint32_t	child;
	elem_vec   *out = &p->rules[rule].body;
	const lg_gelem *inner = NULL;

	/*
	 * An unbounded repetition of a repetition is one repetition: (x{a,}){b,}
	 * is x{ab,}, and (x{0,k}){b,} with k >= 1 is x*.  Folding them keeps
	 * x*+++... from nesting (its expansion would branch at every level).
	 */
	if (out->n - item == 1 && out->v[item].type == LG_GE_REPEAT)
		inner = &out->v[item];
	else if (out->n - item == 1 && out->v[item].type == LG_GE_REF && p->rules[out->v[item].value].generated &&
			 p->rules[out->v[item].value].body.n == 1 &&
			 p->rules[out->v[item].value].body.v[0].type == LG_GE_REPEAT)
		inner = &p->rules[out->v[item].value].body.v[0];
	if (inner != NULL && max == LG_REPEAT_INF && inner->max >= 1)
	{
		lg_gelem	folded = *inner;

		if (inner->max != LG_REPEAT_INF && inner->min == 0)
			folded.max = LG_REPEAT_INF;
		else if (inner->max == LG_REPEAT_INF && (uint64_t) inner->min * min <= LG_GRAMMAR_MAX_REPEAT)
			folded.min = inner->min * min;
		else
			inner = NULL;
		if (inner != NULL)
		{
			out->v[item] = folded;
			return true;
		}
	}
	if (out->n - item == 1 && out->v[item].type == LG_GE_REF)
		child = out->v[item].value;
	else
	{
		elem_vec   *body;

		/* generated_rule may move p->rules: take the pointers again after it */
		if ((child = generated_rule(p, owner)) == UINT32_MAX)
			return false;
		out = &p->rules[rule].body;
		body = &p->rules[child].body;
		if (out->n > item)
		{
			if (!grow((void **) &body->v, &body->cap, out->n - item, sizeof(lg_gelem)))
				return fail_nomem(p);
			memcpy(body->v, out->v + item, (out->n - item) * sizeof(lg_gelem));
			body->n = out->n - item;
		}
	}
	out->n = item;
	return push_elem(p, out, LG_GE_REPEAT, child, min, max);
}

static bool parse_alternatives(parser *p, uint32_t rule, uint32_t owner, bool nested, int depth);

/* Items up to `|`, `)`, the end of the line (top level) or of the input, into out. */
static bool
parse_sequence(parser *p, uint32_t rule, uint32_t owner, bool nested, int depth)
{
	uint32_t	item = UINT32_MAX;	/* start of the last item, for repetitions */

	for (;;)
	{
		int			c = peek(p);
		elem_vec   *out = &p->rules[rule].body;
		size_t		at = p->pos;

		if (c == '"')
		{
			item = out->n;
			if (!parse_literal(p, out))
				return false;
		}
		else if (c == '[' || c == '.')
		{
			item = out->n;
			if (!parse_class(p, out))
				return false;
		}
		else if (is_name_char(c))
		{
			size_t		s = p->pos;
			uint32_t	r;

			while (is_name_char(peek(p)))
				p->pos++;
			if ((r = lookup_rule(p, p->src + s, p->pos - s)) == UINT32_MAX)
				return false;
			if (p->rules[r].ref_pos == SIZE_MAX)
				p->rules[r].ref_pos = s;
			out = &p->rules[rule].body;
			item = out->n;
			if (!push_elem(p, out, LG_GE_REF, r, 0, 0))
				return false;
		}
		else if (c == '(')
		{
			uint32_t	g;

			if (depth >= LG_GRAMMAR_MAX_NEST)
				return fail_at(p, at, LG_ERR_FORMAT, "groups nested deeper than %d", LG_GRAMMAR_MAX_NEST);
			if ((g = generated_rule(p, owner)) == UINT32_MAX)
				return false;
			p->pos++;
			skip_space(p, true);
			if (!parse_alternatives(p, g, owner, true, depth + 1))
				return false;
			if (peek(p) != ')')
				return fail_at(p, at, LG_ERR_FORMAT, "expecting ')' to close the group opened here");
			p->pos++;
			out = &p->rules[rule].body;
			item = out->n;
			if (!push_elem(p, out, LG_GE_REF, g, 0, 0))
				return false;
		}
		else if (c == '*' || c == '+' || c == '?' || c == '{')
		{
			uint32_t	min = 0,
						max = LG_REPEAT_INF;

			if (item == UINT32_MAX)
				return fail_at(p, at, LG_ERR_FORMAT, "expecting an item before the repetition operator '%c'", c);
			p->pos++;
			if (c == '+')
				min = 1;
			else if (c == '?')
				max = 1;
			else if (c == '{')
			{
				skip_space(p, false);
				if (!(peek(p) >= '0' && peek(p) <= '9') && peek(p) != ',')
					return fail_at(p, at, LG_ERR_FORMAT, "expecting a number or ',' after '{'");
				if (!parse_count(p, &min))
					return false;
				skip_space(p, false);
				if (peek(p) == ',')
				{
					p->pos++;
					skip_space(p, false);
					if (peek(p) >= '0' && peek(p) <= '9')
					{
						if (!parse_count(p, &max))
							return false;
						skip_space(p, false);
					}
				}
				else
					max = min;
				if (peek(p) != '}')
					return fail_at(p, at, LG_ERR_FORMAT, "expecting '}' to close the repetition");
				p->pos++;
				if (max < min)
					return fail_at(p, at, LG_ERR_FORMAT, "bad repetition bounds {%u,%u}: maximum below minimum", min, max);
			}
			if (!make_repeat(p, rule, item, owner, min, max))
				return false;
		}
		else
			return true;
		skip_space(p, nested);
	}
}

/* Sequences separated by `|` into rule's body (ALT between them). */
static bool
parse_alternatives(parser *p, uint32_t rule, uint32_t owner, bool nested, int depth)
{
	if (!parse_sequence(p, rule, owner, nested, depth))
		return false;
	for (;;)
	{
		if (peek(p) != '|' && !nested)
		{
			/* a following line that starts with `|` continues the rule */
			size_t		save = p->pos;

			skip_space(p, true);
			if (peek(p) != '|')
			{
				p->pos = save;
				return true;
			}
		}
		if (peek(p) != '|')
			return true;
		if (!push_elem(p, &p->rules[rule].body, LG_GE_ALT, 0, 0, 0))
			return false;
		p->pos++;
		skip_space(p, true);
		if (!parse_sequence(p, rule, owner, nested, depth))
			return false;
	}
}

/* All rules of the text. */
static bool
parse_rules(parser *p)
{
	skip_space(p, true);
	while (peek(p) != -1)
	{
		size_t		s = p->pos;
		uint32_t	r;

		while (is_name_char(peek(p)))
			p->pos++;
		if (p->pos == s)
			return fail_at(p, s, LG_ERR_FORMAT, "expecting a rule name, found '%c'", peek(p));
		if ((r = lookup_rule(p, p->src + s, p->pos - s)) == UINT32_MAX)
			return false;
		if (p->rules[r].def_pos != SIZE_MAX)
			return fail_at(p, s, LG_ERR_FORMAT, "rule %s is defined twice", p->names + p->rules[r].name);
		p->rules[r].def_pos = s;
		skip_space(p, false);
		if (!(peek(p) == ':' && peek_at(p, 1) == ':' && peek_at(p, 2) == '='))
			return fail_at(p, p->pos, LG_ERR_FORMAT, "expecting ::= after rule name %s", p->names + p->rules[r].name);
		p->pos += 3;
		skip_space(p, true);
		if (!parse_alternatives(p, r, r, false, 0))
			return false;
		if (peek(p) == '\r' || peek(p) == '\n')
			p->pos++;			/* skip_space below takes the \n of a \r\n */
		else if (peek(p) != -1)
		{
			int			c = peek(p);

			if (c == ')')
				return fail_at(p, p->pos, LG_ERR_FORMAT, "unbalanced ')'");
			return fail_at(p, p->pos, LG_ERR_FORMAT, "unexpected '%c' (expecting newline or end)", c);
		}
		skip_space(p, true);
	}
	return true;
}

/* Whether every element of body[from..to) can match the empty string. */
static bool
seq_nullable(const build_rule *rules, const lg_gelem *e, uint32_t n, const bool *nullable)
{
	for (uint32_t i = 0; i < n; i++)
	{
		if (e[i].type == LG_GE_CHAR)
			return false;
		if (e[i].type == LG_GE_REF && !nullable[e[i].value])
			return false;
		if (e[i].type == LG_GE_REPEAT && e[i].min > 0 && !nullable[e[i].value])
			return false;
	}
	return true;
}

/* Fixpoint: which rules can match the empty string. */
static void
compute_nullable(parser *p, bool *nullable)
{
	bool		changed = true;

	memset(nullable, 0, p->n_rules * sizeof(bool));
	while (changed)
	{
		changed = false;
		for (uint32_t r = p->n_rules; r-- > 0;)
		{
			elem_vec   *b = &p->rules[r].body;
			uint32_t	s = 0;

			if (nullable[r])
				continue;
			if (b->n == 0)
			{
				nullable[r] = changed = true;	/* an empty body */
				continue;
			}
			for (uint32_t i = 0; i <= b->n; i++)
				if (i == b->n || b->v[i].type == LG_GE_ALT)
				{
					if (seq_nullable(p->rules, b->v + s, i - s, nullable))
					{
						nullable[r] = changed = true;
						break;
					}
					s = i + 1;
				}
		}
	}
}

/*
 * Left recursion: a rule reachable from itself through references at the
 * start of an alternative (after elements that can match "").  A pushdown
 * matcher would expand it forever, so it is an error naming the rule.
 */
static bool
check_left_recursion(parser *p, const bool *nullable)
{
	uint32_t   *adj_off = calloc((size_t) p->n_rules + 1, sizeof(uint32_t));
	uint32_t   *adj = NULL;
	uint8_t    *color = calloc(p->n_rules, 1);	/* 0 new, 1 on the path, 2 done */
	uint32_t   *stack_r = malloc((size_t) p->n_rules * sizeof(uint32_t));
	uint32_t   *stack_i = malloc((size_t) p->n_rules * sizeof(uint32_t));
	uint32_t	n_adj = 0;
	bool		ok = true;

	if (adj_off == NULL || color == NULL || stack_r == NULL || stack_i == NULL)
		goto nomem;
	/* two passes over the bodies: count, then fill the left-position references */
	for (int pass = 0; pass < 2; pass++)
	{
		n_adj = 0;
		for (uint32_t r = 0; r < p->n_rules; r++)
		{
			elem_vec   *b = &p->rules[r].body;
			bool		left = true;

			if (pass == 1)
				adj_off[r] = n_adj;
			for (uint32_t i = 0; i < b->n; i++)
			{
				lg_gelem   *e = &b->v[i];

				if (e->type == LG_GE_ALT)
				{
					left = true;
					continue;
				}
				if (left && (e->type == LG_GE_REF || e->type == LG_GE_REPEAT))
				{
					if (pass == 1)
						adj[n_adj] = e->value;
					n_adj++;
				}
				if (!seq_nullable(p->rules, e, 1, nullable))
					left = false;
			}
		}
		if (pass == 0 && (adj = malloc(((size_t) n_adj + 1) * sizeof(uint32_t))) == NULL)
			goto nomem;
	}
	adj_off[p->n_rules] = n_adj;
	for (uint32_t start = 0; start < p->n_rules && ok; start++)
	{
		uint32_t	sp = 0;

		if (color[start])
			continue;
		stack_r[sp] = start;
		stack_i[sp++] = adj_off[start];
		color[start] = 1;
		while (sp > 0 && ok)
		{
			uint32_t	r = stack_r[sp - 1];
			uint32_t	next;

			if (stack_i[sp - 1] == adj_off[r + 1])
			{
				color[r] = 2;
				sp--;
				continue;
			}
			next = adj[stack_i[sp - 1]++];
			if (color[next] == 1)
			{
				const build_rule *nr = &p->rules[p->rules[next].owner];

				ok = fail_at(p, nr->def_pos, LG_ERR_FORMAT, "left recursion in rule %s is not supported",
							 p->names + nr->name);
			}
			else if (color[next] == 0)
			{
				color[next] = 1;
				stack_r[sp] = next;
				stack_i[sp++] = adj_off[next];
			}
		}
	}
	free(adj_off), free(adj), free(color), free(stack_r), free(stack_i);
	return ok;
nomem:
	free(adj_off), free(adj), free(color), free(stack_r), free(stack_i);
	return fail_nomem(p);
}

/* Build the flat grammar from the parsed rules. */
static lg_grammar *
flatten(parser *p, const bool *nullable)
{
	lg_grammar *g = calloc(1, sizeof(lg_grammar));
	uint32_t	n_elems = 0,
				n_alts = 0;

	if (g == NULL)
		return NULL;
	for (uint32_t r = 0; r < p->n_rules; r++)
	{
		n_elems += p->rules[r].body.n + 1;
		n_alts += 1;
		for (uint32_t i = 0; i < p->rules[r].body.n; i++)
			n_alts += p->rules[r].body.v[i].type == LG_GE_ALT;
	}
	g->elems = malloc((size_t) n_elems * sizeof(lg_gelem));
	g->alts = malloc((size_t) n_alts * sizeof(uint32_t));
	g->rules = calloc(p->n_rules, sizeof(lg_grule));
	if (g->elems == NULL || g->alts == NULL || g->rules == NULL)
		goto nomem;
	g->n_rules = p->n_rules;
	for (uint32_t r = 0; r < p->n_rules; r++)
	{
		elem_vec   *b = &p->rules[r].body;
		lg_grule   *gr = &g->rules[r];

		gr->first_alt = g->n_alts_total;
		gr->name = p->rules[p->rules[r].owner].name;
		gr->generated = p->rules[r].generated;
		gr->nullable = nullable[r];
		g->alts[g->n_alts_total++] = g->n_elems;
		gr->n_alts = 1;
		for (uint32_t i = 0; i < b->n; i++)
		{
			lg_gelem	e = b->v[i];

			if (e.type == LG_GE_REPEAT && nullable[e.value])
				e.min = 0;		/* iterations matching "" never need to be counted */
			g->elems[g->n_elems++] = e;
			if (e.type == LG_GE_ALT)
			{
				g->alts[g->n_alts_total++] = g->n_elems;
				gr->n_alts++;
			}
		}
		g->elems[g->n_elems].type = LG_GE_END;
		g->elems[g->n_elems].value = 0;
		g->elems[g->n_elems].min = g->elems[g->n_elems].max = 0;
		g->n_elems++;
	}
	/* rest_nullable, scanning each alternative backwards */
	{
		bool		rest = true;

		for (uint32_t i = g->n_elems; i-- > 0;)
		{
			lg_gelem   *e = &g->elems[i];

			if (e->type == LG_GE_END || e->type == LG_GE_ALT)
				rest = true;
			else if (e->type == LG_GE_CHAR)
				rest = false;
			else if (e->type == LG_GE_REF)
				rest = rest && nullable[e->value];
			else
				rest = rest && (e->min == 0 || nullable[e->value]);
			e->rest_nullable = rest;
		}
	}
	g->classes = p->classes;
	g->n_classes = p->n_classes;
	g->ranges = p->ranges;
	g->names = p->names;
	p->classes = NULL;
	p->ranges = NULL;
	p->names = NULL;
	pthread_mutex_init(&g->cache_lock, NULL);
	return g;
nomem:
	free(g->elems);
	free(g->alts);
	free(g->rules);
	free(g);
	return NULL;
}

lg_grammar *
lg_grammar_compile(const char *gbnf, size_t len, lg_error *err)
{
	parser		p;
	lg_grammar *g = NULL;
	bool	   *nullable = NULL;
	uint32_t	root = UINT32_MAX;

	memset(&p, 0, sizeof(p));
	p.src = gbnf;
	p.len = len;
	p.err = err;
	if (gbnf == NULL && len > 0)
	{
		lg_error_set(err, LG_ERR_ARG, "grammar text is NULL");
		return NULL;
	}
	if (len > LG_GRAMMAR_MAX_TEXT)
	{
		lg_error_set(err, LG_ERR_FORMAT, "line 1, column 1: grammar text is %zu bytes, more than the %u allowed",
					 len, LG_GRAMMAR_MAX_TEXT);
		return NULL;
	}
	if (!parse_rules(&p))
		goto done;
	for (uint32_t r = 0; r < p.n_rules; r++)
	{
		build_rule *br = &p.rules[r];

		if (!br->generated && br->def_pos == SIZE_MAX)
		{
			fail_at(&p, br->ref_pos, LG_ERR_FORMAT, "undefined rule %s", p.names + br->name);
			goto done;
		}
		if (!br->generated && strcmp(p.names + br->name, "root") == 0)
			root = r;
	}
	if (root == UINT32_MAX)
	{
		fail_at(&p, 0, LG_ERR_FORMAT, "missing root rule (the grammar starts at a rule named root)");
		goto done;
	}
	nullable = malloc(p.n_rules * sizeof(bool));
	if (nullable == NULL)
	{
		fail_nomem(&p);
		goto done;
	}
	compute_nullable(&p, nullable);
	if (!check_left_recursion(&p, nullable))
		goto done;
	g = flatten(&p, nullable);
	if (g != NULL && !lg_gclass_first_bytes_init(g))
	{
		lg_grammar_destroy(g);
		g = NULL;
	}
	if (g == NULL)
		fail_nomem(&p);
	else
		g->root = root;
done:
	for (uint32_t r = 0; r < p.n_rules; r++)
		free(p.rules[r].body.v);
	free(p.rules);
	free(p.names);
	free(p.name_slots);
	free(p.classes);
	free(p.ranges);
	free(p.tmp);
	free(nullable);
	return g;
}

void
lg_grammar_destroy(lg_grammar *g)
{
	if (g == NULL)
		return;
	lg_gcache_free_all(g);
	pthread_mutex_destroy(&g->cache_lock);
	free(g->elems);
	free(g->alts);
	free(g->rules);
	free(g->classes);
	free(g->ranges);
	free(g->first_bytes);
	free(g->names);
	free(g->src);
	free(g);
}

void
lg_grammar_size(const lg_grammar *g, size_t *n_rules, size_t *n_elems)
{
	*n_rules = g->n_rules;
	*n_elems = g->n_elems;
}
