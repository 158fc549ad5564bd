/*
 * grammar_state.c — the pushdown state of a grammar: a set of stacks whose
 * tops are character elements, advanced one byte at a time.
 *
 * Expansion (llama.cpp's advance_stack) turns a stack whose top is a rule
 * reference, a repetition or an alternative's end into stacks whose tops are
 * characters: a reference pushes each alternative of its rule (a reference
 * that ends an alternative replaces its frame, so right recursion does not
 * grow the stack); a repetition with count c may begin another iteration
 * (c < max) and may be left (c >= min); an alternative's end pops.  Stacks
 * are deduplicated, so ambiguity costs the number of distinct stacks, not
 * of paths.
 *
 * An iteration of a repetition that matched "" is dropped: it would return
 * to the repetition with one iteration fewer left, which the stack that
 * skipped it already covers (a nullable body's minimum is 0, see
 * grammar_gbnf.c).  That keeps x* with a nullable x finite.
 *
 * Bytes are decoded as UTF-8 the way llama.cpp's decode_utf8 does: a lead
 * byte opens a partial character, kept in the state (a token may end in the
 * middle of a character); a stack survives a partial character while its top
 * class contains some code point starting with those bits.  Invalid
 * sequences reject, and so (stricter than llama.cpp) do overlong forms,
 * surrogates and code points past U+10FFFF, so output is always valid UTF-8.
 *
 * Escape mode serves the mask cache (grammar_mask.c): the stacks are the top
 * part of a longer stack, and popping the last frame is not "complete" but
 * "ran into the unknown context below": it sets state->escaped instead.
 */
#include "grammar_impl.h"

#include <stdlib.h>
#include <string.h>

__thread uint64_t lg_gstate_work;

void
lg_gstate_init(lg_gstate *s)
{
	memset(s, 0, sizeof(*s));
	s->expand_left = LG_GRAMMAR_MAX_EXPAND;
}

void
lg_gstate_free(lg_gstate *s)
{
	free(s->frames);
	free(s->off);
	free(s->len);
	free(s->hash_slots);
	if (!s->work_borrowed)
		free(s->work);
	memset(s, 0, sizeof(*s));
}

/* Empty the set; the dedup table is cleared slot by slot for the stacks it holds. */
void
lg_gstate_clear(lg_gstate *s)
{
	if (s->hash_cap > 0)
	{
		/* a table grown for a burst of stacks is dropped rather than wiped each time */
		if (s->hash_cap > 1024 && s->n_stacks * 16 < s->hash_cap)
		{
			free(s->hash_slots);
			s->hash_slots = NULL;
			s->hash_cap = 0;
		}
		else
			memset(s->hash_slots, 0, s->hash_cap * sizeof(uint32_t));
	}
	s->n_frames = 0;
	s->n_stacks = 0;
	s->partial_value = 0;
	s->partial_left = 0;
	s->partial_total = 0;
	s->escaped = false;
	s->overflow = false;
	s->expand_left = LG_GRAMMAR_MAX_EXPAND;
}

/* Hash of a stack's frames. */
static inline uint32_t
stack_hash(const lg_gframe *f, uint32_t n)
{
	uint64_t	h = 0x9E3779B97F4A7C15ULL ^ n;

	for (uint32_t i = 0; i < n; i++)
	{
		h ^= ((uint64_t) f[i].pos << 32) | f[i].count;
		h *= 0xFF51AFD7ED558CCDULL;
		h ^= h >> 29;
	}
	return (uint32_t) (h ^ (h >> 32));
}

/* Grow the dedup table to cap slots and reinsert the stacks. */
static bool
rehash(lg_gstate *s, uint32_t cap)
{
	uint32_t   *slots = calloc(cap, sizeof(uint32_t));

	if (slots == NULL)
		return false;
	free(s->hash_slots);
	s->hash_slots = slots;
	s->hash_cap = cap;
	for (uint32_t i = 0; i < s->n_stacks; i++)
	{
		uint32_t	h = stack_hash(s->frames + s->off[i], s->len[i]) & (cap - 1);

		while (slots[h] != 0)
			h = (h + 1) & (cap - 1);
		slots[h] = i + 1;
	}
	return true;
}

/* Add stack f[0..n) unless present; false when a limit or memory ran out (overflow set). */
static bool
add_stack(lg_gstate *s, const lg_gframe *f, uint32_t n)
{
	uint32_t	h,
				slot;

	if (s->n_stacks >= 8 || s->hash_cap > 0)
	{
		if (s->hash_cap < 2 * (s->n_stacks + 1) && !rehash(s, s->hash_cap ? s->hash_cap * 4 : 64))
			goto overflow;
		h = stack_hash(f, n);
		for (slot = h & (s->hash_cap - 1); s->hash_slots[slot] != 0; slot = (slot + 1) & (s->hash_cap - 1))
		{
			uint32_t	i = s->hash_slots[slot] - 1;

			if (s->len[i] == n && memcmp(s->frames + s->off[i], f, n * sizeof(lg_gframe)) == 0)
				return true;
		}
	}
	else
	{
		for (uint32_t i = 0; i < s->n_stacks; i++)
			if (s->len[i] == n && memcmp(s->frames + s->off[i], f, n * sizeof(lg_gframe)) == 0)
				return true;
		slot = UINT32_MAX;
	}
	if (s->n_stacks >= LG_GRAMMAR_MAX_STACKS || s->n_frames + n > LG_GRAMMAR_MAX_FRAMES)
		goto overflow;
	if (s->n_stacks + 1 > s->cap_stacks)
	{
		uint32_t	nc = s->cap_stacks ? s->cap_stacks * 2 : 16;
		uint32_t   *o = realloc(s->off, nc * sizeof(uint32_t));

		if (o == NULL)
			goto overflow;
		s->off = o;
		o = realloc(s->len, nc * sizeof(uint32_t));
		if (o == NULL)
			goto overflow;
		s->len = o;
		s->cap_stacks = nc;
	}
	if (s->frames == NULL || s->n_frames + n > s->cap_frames)
	{
		uint32_t	nc = s->cap_frames ? s->cap_frames : 64;
		lg_gframe  *nf;

		while (nc < s->n_frames + n)
			nc *= 2;
		nf = realloc(s->frames, nc * sizeof(lg_gframe));
		if (nf == NULL)
			goto overflow;
		s->frames = nf;
		s->cap_frames = nc;
	}
	memcpy(s->frames + s->n_frames, f, n * sizeof(lg_gframe));
	s->off[s->n_stacks] = s->n_frames;
	s->len[s->n_stacks] = n;
	s->n_frames += n;
	if (slot != UINT32_MAX)
		s->hash_slots[slot] = s->n_stacks + 1;
	s->n_stacks++;
	if (s->n_stacks == 8 && s->hash_cap == 0 && !rehash(s, 64))
		goto overflow;
	return true;
overflow:
	s->overflow = true;
	return false;
}

bool
lg_gstate_push_stack(lg_gstate *s, const lg_gframe *f, uint32_t n)
{
	return add_stack(s, f, n);
}

bool
lg_gstate_copy(lg_gstate *dst, const lg_gstate *src)
{
	lg_gstate_clear(dst);
	for (uint32_t i = 0; i < src->n_stacks; i++)
		if (!add_stack(dst, src->frames + src->off[i], src->len[i]))
			return false;
	dst->partial_value = src->partial_value;
	dst->partial_left = src->partial_left;
	dst->partial_total = src->partial_total;
	dst->escaped = src->escaped;
	dst->overflow = src->overflow;
	return true;
}

bool
lg_gclass_match(const lg_grammar *g, uint32_t cls, uint32_t cp)
{
	const lg_gclass *c = &g->classes[cls];
	const uint32_t *r;
	uint32_t	lo = 0,
				hi;

	if (cp < 128)
		return (c->ascii[cp >> 5] >> (cp & 31)) & 1;
	r = g->ranges + 2 * (size_t) c->first;
	hi = c->n;
	while (lo < hi)
	{
		uint32_t	mid = (lo + hi) / 2;

		if (cp < r[2 * mid])
			hi = mid;
		else if (cp > r[2 * mid + 1])
			lo = mid + 1;
		else
			return !c->negated;
	}
	return c->negated;
}

/* Whether class cls holds some code point in [lo, hi] (a partial UTF-8 character's candidates). */
static bool
class_meets(const lg_grammar *g, uint32_t cls, uint32_t lo, uint32_t hi)
{
	const lg_gclass *c = &g->classes[cls];
	const uint32_t *r = g->ranges + 2 * (size_t) c->first;

	for (uint32_t i = 0; i < c->n; i++)
	{
		if (c->negated && r[2 * i] <= lo && r[2 * i + 1] >= hi)
			return false;		/* the whole span is excluded */
		if (!c->negated && r[2 * i] <= hi && r[2 * i + 1] >= lo)
			return true;
	}
	return c->negated;
}

bool
lg_gclass_first_bytes_init(lg_grammar *g)
{
	g->first_bytes = calloc(g->n_classes ? g->n_classes : 1, 32);
	if (g->first_bytes == NULL)
		return false;
	for (uint32_t c = 0; c < g->n_classes; c++)
	{
		uint8_t    *fb = g->first_bytes[c];

		for (uint32_t b = 0; b < 256; b++)
		{
			uint32_t	lo,
						hi;

			if (b < 0x80)
				lo = hi = b;
			else if (b >= 0xC2 && b < 0xE0)
				lo = (b & 0x1F) << 6, hi = lo | 0x3F;
			else if (b >= 0xE0 && b < 0xF0)
			{
				lo = (b & 0x0F) << 12, hi = lo | 0xFFF;
				lo = lo < 0x800 ? 0x800 : lo;
				if (b == 0xED)
					hi = 0xD7FF;	/* the rest are surrogates */
			}
			else if (b >= 0xF0 && b < 0xF5)
			{
				lo = (b & 0x07) << 18, hi = lo | 0x3FFFF;
				lo = lo < 0x10000 ? 0x10000 : lo;
				hi = hi > 0x10FFFF ? 0x10FFFF : hi;
			}
			else
				continue;		/* never starts a valid character */
			if (lo == hi ? lg_gclass_match(g, c, lo) : class_meets(g, c, lo, hi))
				fb[b >> 3] |= (uint8_t) (1u << (b & 7));
		}
	}
	return true;
}

void
lg_gstate_next_bytes(const lg_grammar *g, const lg_gstate *s, uint8_t out[32])
{
	memset(out, s->partial_left > 0 ? 0xFF : 0, 32);
	if (s->partial_left > 0)
		return;
	for (uint32_t i = 0; i < s->n_stacks; i++)
	{
		const uint8_t *fb;

		if (s->len[i] == 0)
			continue;
		fb = g->first_bytes[g->elems[s->frames[s->off[i] + s->len[i] - 1].pos].value];
		for (int k = 0; k < 32; k++)
			out[k] |= fb[k];
	}
}

/* Expansion context: the grammar, the output set and the working stack. */
typedef struct expand_ctx
{
	const lg_grammar *g;
	lg_gstate  *out;
	lg_gframe  *w;				/* LG_GRAMMAR_MAX_DEPTH + 1 frames */
	bool		escape_mode;
} expand_ctx;

/*
 * Expand w[0..n) (top w[n - 1], at any element) into character-topped
 * stacks.  Frames below index lo are as they were before this expansion;
 * those at lo and above were pushed or rewritten by it (to spot iterations
 * that matched "").  Frames are changed in place and restored on return.
 */
static void
expand(expand_ctx *x, uint32_t n, uint32_t lo)
{
	const lg_grammar *g = x->g;
	lg_gframe  *w = x->w;
	lg_gframe	saved;
	const lg_gelem *e;

	if (x->out->overflow)
		return;
	if (x->out->expand_left == 0)
	{
		/* nested repetitions of nullable bodies can branch exponentially: a limit, not a hang */
		x->out->overflow = true;
		return;
	}
	x->out->expand_left--;
	lg_gstate_work++;
	if (n == 0)
	{
		if (x->escape_mode)
			x->out->escaped = true;
		else
			add_stack(x->out, w, 0);
		return;
	}
	saved = w[n - 1];
	e = &g->elems[saved.pos];
	switch (e->type)
	{
		case LG_GE_CHAR:
			add_stack(x->out, w, n);
			return;
		case LG_GE_END:
		case LG_GE_ALT:
			if (n >= 2 && n - 2 >= lo && g->elems[w[n - 2].pos].type == LG_GE_REPEAT && w[n - 2].count > 0)
				return;			/* an iteration that matched "" */
			if (n == 1)
				expand(x, 0, 0);
			else
				expand(x, n - 1, n - 2 < lo ? n - 2 : lo);
			return;
		case LG_GE_REF:
			{
				const lg_grule *r = &g->rules[e->value];
				uint8_t		next = g->elems[saved.pos + 1].type;
				uint32_t	top = n;

				if (next == LG_GE_END || next == LG_GE_ALT)
					top = n - 1;	/* tail call: the rule's frame is done */
				else
				{
					w[n - 1].pos = saved.pos + 1;
					w[n - 1].count = 0;
				}
				if (top >= LG_GRAMMAR_MAX_DEPTH)
				{
					x->out->overflow = true;
					w[n - 1] = saved;
					return;
				}
				for (uint32_t a = 0; a < r->n_alts; a++)
				{
					w[top].pos = g->alts[r->first_alt + a];
					w[top].count = 0;
					expand(x, top + 1, lo < n - 1 ? lo : n - 1);
				}
				w[n - 1] = saved;
				return;
			}
		case LG_GE_REPEAT:
			{
				const lg_grule *r = &g->rules[e->value];
				uint32_t	c = saved.count;

				if (c < e->max)
				{
					uint32_t	sat = e->min > 0 ? e->min : 1;

					if (n >= LG_GRAMMAR_MAX_DEPTH)
						x->out->overflow = true;
					else
					{
						w[n - 1].count = (e->max == LG_REPEAT_INF && c + 1 > sat) ? sat : c + 1;
						for (uint32_t a = 0; a < r->n_alts; a++)
						{
							w[n].pos = g->alts[r->first_alt + a];
							w[n].count = 0;
							expand(x, n + 1, lo < n - 1 ? lo : n - 1);
						}
					}
				}
				if (c >= e->min)
				{
					w[n - 1].pos = saved.pos + 1;
					w[n - 1].count = 0;
					expand(x, n, lo < n - 1 ? lo : n - 1);
				}
				w[n - 1] = saved;
				return;
			}
	}
}

/* The state's working stack for expansions, allocated on first use; NULL if out of memory. */
static lg_gframe *
work_stack(lg_gstate *out)
{
	if (out->work == NULL)
		out->work = malloc((LG_GRAMMAR_MAX_DEPTH + 2) * sizeof(lg_gframe));
	if (out->work == NULL)
		out->overflow = true;
	return out->work;
}

/* Run expand on frames f[0..n) copied to out's working stack. */
static void
expand_copy(const lg_grammar *g, lg_gstate *out, const lg_gframe *f, uint32_t n, uint32_t lo, bool escape_mode)
{
	expand_ctx	x;

	if (n > LG_GRAMMAR_MAX_DEPTH)
	{
		out->overflow = true;
		return;
	}
	if (work_stack(out) == NULL)
		return;
	memmove(out->work, f, n * sizeof(lg_gframe));
	x.g = g;
	x.out = out;
	x.w = out->work;
	x.escape_mode = escape_mode;
	expand(&x, n, lo);
}

void
lg_gstate_resume(const lg_grammar *g, lg_gstate *out, const lg_gframe *f, uint32_t n)
{
	lg_gstate_clear(out);
	if (n == 0)
		return;
	/* as after a pop in expand(): frame n - 1 was there before, so it is not a fresh iteration */
	expand_copy(g, out, f, n, n - 1, false);
}

bool
lg_gstate_start(const lg_grammar *g, lg_gstate *s)
{
	lg_gframe	f;
	const lg_grule *r = &g->rules[g->root];

	lg_gstate_clear(s);
	for (uint32_t a = 0; a < r->n_alts; a++)
	{
		f.pos = g->alts[r->first_alt + a];
		f.count = 0;
		expand_copy(g, s, &f, 1, 0, false);
	}
	return !s->overflow;
}

void
lg_gstate_step_byte(const lg_grammar *g, const lg_gstate *in, uint8_t b, lg_gstate *out, bool escape_mode)
{
	uint32_t	val,
				minv,
				maxv;
	int			left,
				total;

	lg_gstate_clear(out);
	if (in->partial_left > 0)
	{
		if ((b & 0xC0) != 0x80)
			return;				/* a character cut short: invalid */
		val = (in->partial_value << 6) | (b & 0x3F);
		left = in->partial_left - 1;
		total = in->partial_total;
	}
	else if (b < 0x80)
		val = b, left = 0, total = 1;
	else if (b >= 0xC2 && b < 0xE0)
		val = b & 0x1F, left = 1, total = 2;
	else if ((b & 0xF0) == 0xE0)
		val = b & 0x0F, left = 2, total = 3;
	else if (b >= 0xF0 && b < 0xF5)
		val = b & 0x07, left = 3, total = 4;
	else
		return;					/* a continuation byte without a lead, C0, C1, F5..FF */
	/* stricter than llama.cpp: overlong forms, surrogates and code points past U+10FFFF reject */
	minv = total == 1 ? 0 : total == 2 ? 0x80 : total == 3 ? 0x800 : 0x10000;
	maxv = total == 1 ? 0x7F : total == 2 ? 0x7FF : total == 3 ? 0xFFFF : 0x10FFFF;
	if (left > 0)
	{
		uint32_t	lo = val << (6 * left),
					hi = lo | ((1u << (6 * left)) - 1);

		lo = lo < minv ? minv : lo;
		hi = hi > maxv ? maxv : hi;
		if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF))
			return;
		for (uint32_t i = 0; i < in->n_stacks; i++)
		{
			const lg_gframe *f = in->frames + in->off[i];
			uint32_t	n = in->len[i];

			if (n > 0 && class_meets(g, g->elems[f[n - 1].pos].value, lo, hi))
				add_stack(out, f, n);
		}
		out->partial_value = val;
		out->partial_left = (int8_t) left;
		out->partial_total = (int8_t) total;
		return;
	}
	if (val < minv || val > maxv || (val >= 0xD800 && val <= 0xDFFF))
		return;
	for (uint32_t i = 0; i < in->n_stacks; i++)
	{
		const lg_gframe *f = in->frames + in->off[i];
		uint32_t	n = in->len[i];
		expand_ctx	x;

		if (n == 0 || !lg_gclass_match(g, g->elems[f[n - 1].pos].value, val))
			continue;
		if (work_stack(out) == NULL)
			return;
		memcpy(out->work, f, n * sizeof(lg_gframe));
		out->work[n - 1].pos++;
		out->work[n - 1].count = 0;
		x.g = g;
		x.out = out;
		x.w = out->work;
		x.escape_mode = escape_mode;
		expand(&x, n, n - 1);
		if (out->overflow)
			return;
	}
}

bool
lg_gstate_complete(const lg_gstate *s)
{
	if (s->partial_left > 0)
		return false;
	for (uint32_t i = 0; i < s->n_stacks; i++)
		if (s->len[i] == 0)
			return true;
	return false;
}

bool
lg_gstate_can_continue(const lg_grammar *g, const lg_gstate *s)
{
	for (uint32_t i = 0; i < s->n_stacks; i++)
		if (s->len[i] > 0)
			return true;
	return false;
}

lg_gstate *
lg_gstate_run_bytes(const lg_grammar *g, const lg_gstate *s, const char *p, size_t n,
					lg_gstate *a, lg_gstate *b)
{
	const lg_gstate *in = s;
	lg_gstate  *out = a;

	for (size_t i = 0; i < n; i++)
	{
		lg_gstate_step_byte(g, in, (uint8_t) p[i], out, false);
		if (out->n_stacks == 0 || out->overflow)
			return NULL;
		in = out;
		out = out == a ? b : a;
	}
	return (lg_gstate *) in;
}
