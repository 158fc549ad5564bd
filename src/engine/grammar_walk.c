/*
 * grammar_walk.c — walking the vocabulary's byte trie from a grammar state:
 * which tokens the state accepts, and (escape mode) which ones run past the
 * bottom of a stack segment and after how many bytes.
 *
 * Each trie edge steps the state by one byte; a subtree is skipped as soon
 * as no stack survives, and bytes no stack's class can start are skipped
 * without stepping.  Walk states are interned, so each (state, byte)
 * transition is computed once per walk: inside a string every character
 * leads back to the same state and most edges become a table lookup.  The
 * walk stops when the mask it serves has used its expansion budget.
 */
#include "grammar_impl.h"

#include <stdlib.h>
#include <string.h>

/* Append token t with its escape offsets; a failed allocation is remembered. */
void
lg_gtok_push(lg_gtok_vec *v, int32_t t, uint64_t esc)
{
	if (v->n == v->cap)
	{
		uint32_t	nc = v->cap ? v->cap * 2 : 256;
		int32_t    *nv = realloc(v->v, nc * sizeof(int32_t));
		uint64_t   *ne;

		if (nv == NULL)
		{
			v->failed = true;
			return;
		}
		v->v = nv;
		ne = realloc(v->esc, nc * sizeof(uint64_t));
		if (ne == NULL)
		{
			v->failed = true;
			return;
		}
		v->esc = ne;
		v->cap = nc;
	}
	v->v[v->n] = t;
	v->esc[v->n++] = esc;
}

/*
 * A state met during a walk, interned so that each of its byte transitions
 * is computed once: inside a string every character leads back to the same
 * state, so most trie edges become a table lookup.
 */
typedef struct wstate
{
	lg_gstate	st;
	uint64_t	hash;
	int32_t		next[256];		/* id of the state after each byte; -1 not yet known */
	uint8_t		next_bytes[32];	/* bytes some stack can take (lg_gstate_next_bytes) */
} wstate;

#define WALK_MAX_STATES 2048	/* interned per walk; past it, edges are stepped as they come */

/* Walk state: the matcher (levels, vocabulary), mode, outputs and interned states. */
typedef struct walk_ctx
{
	lg_grammar_matcher *m;
	bool		escape_mode;
	uint32_t	max_depth;		/* tokens longer than this that survive are left uncertain */
	uint64_t   *acc;
	lg_gtok_vec *unc;
	bool		overflowed;		/* some step hit a runtime limit */
	bool		aborted;		/* the walk ran out of work: tokens below where it stopped are left out */
	wstate	  **states;
	uint32_t	n_states;
	uint32_t   *slots;			/* open addressing: state id + 1 */
	uint32_t	slot_cap;
} walk_ctx;

/* Hash of everything that makes a walk state: stacks, partial character, flags. */
static uint64_t
wstate_hash(const lg_gstate *s)
{
	uint64_t	h = 0x9E3779B97F4A7C15ULL ^ ((uint64_t) s->n_stacks << 8) ^
		((uint64_t) s->partial_value << 20) ^ ((uint64_t) (uint8_t) s->partial_left << 4) ^
		((uint64_t) s->escaped << 1) ^ (uint64_t) s->overflow;

	for (uint32_t i = 0; i < s->n_stacks; i++)
	{
		h = (h ^ s->len[i]) * 0x100000001B3ULL;
		for (uint32_t k = 0; k < s->len[i]; k++)
		{
			const lg_gframe *f = &s->frames[s->off[i] + k];

			h = (h ^ (((uint64_t) f->pos << 32) | f->count)) * 0x100000001B3ULL;
			h ^= h >> 29;
		}
	}
	return h;
}

/* Whether two walk states are the same state. */
static bool
wstate_equal(const lg_gstate *a, const lg_gstate *b)
{
	if (a->n_stacks != b->n_stacks || a->n_frames != b->n_frames || a->partial_left != b->partial_left ||
		a->partial_value != b->partial_value || a->partial_total != b->partial_total ||
		a->escaped != b->escaped || a->overflow != b->overflow)
		return false;
	for (uint32_t i = 0; i < a->n_stacks; i++)
		if (a->len[i] != b->len[i] ||
			memcmp(a->frames + a->off[i], b->frames + b->off[i], a->len[i] * sizeof(lg_gframe)) != 0)
			return false;
	return true;
}

/* The id of state s in the walk's table, adding a copy; -1 when the table is full or memory is short. */
static int32_t
intern(walk_ctx *w, const lg_gstate *s)
{
	uint64_t	h = wstate_hash(s);
	uint32_t	slot;
	wstate	   *ws;

	if (w->slots == NULL)
	{
		w->slot_cap = 2 * WALK_MAX_STATES;
		w->slots = calloc(w->slot_cap, sizeof(uint32_t));
		w->states = malloc(WALK_MAX_STATES * sizeof(wstate *));
		if (w->slots == NULL || w->states == NULL)
			return -1;
	}
	for (slot = h & (w->slot_cap - 1); w->slots[slot] != 0; slot = (slot + 1) & (w->slot_cap - 1))
	{
		wstate	   *o = w->states[w->slots[slot] - 1];

		if (o->hash == h && wstate_equal(&o->st, s))
			return (int32_t) w->slots[slot] - 1;
	}
	if (w->n_states >= WALK_MAX_STATES || (ws = malloc(sizeof(wstate))) == NULL)
		return -1;
	lg_gstate_init(&ws->st);
	if (!lg_gstate_copy(&ws->st, s))
	{
		lg_gstate_free(&ws->st);
		free(ws);
		return -1;
	}
	ws->hash = h;
	memset(ws->next, 0xff, sizeof(ws->next));
	lg_gstate_next_bytes(w->m->g, &ws->st, ws->next_bytes);
	w->states[w->n_states] = ws;
	w->slots[slot] = ++w->n_states;
	return (int32_t) w->n_states - 1;
}

/* Tokens order[lo..hi) into the accepted bitset. */
static void
set_range(walk_ctx *w, uint32_t lo, uint32_t hi)
{
	const int32_t *order = w->m->gv->order;

	for (uint32_t i = lo; i < hi; i++)
		w->acc[order[i] >> 6] |= 1ULL << (order[i] & 63);
}

/* Tokens order[lo..hi) onto the uncertain list, with escape offsets esc. */
static void
unc_range(walk_ctx *w, uint32_t lo, uint32_t hi, uint64_t esc)
{
	const int32_t *order = w->m->gv->order;

	for (uint32_t i = lo; i < hi; i++)
		lg_gtok_push(w->unc, order[i], esc);
}

/*
 * Visit the children of trie node `node`, at depth d, whose prefix left state
 * cur (interned as cur_id, or -1).  m->esc[d]: the escape offsets (bits,
 * see lg_gesc_bit) at which some stack ran past the segment's bottom within the
 * first d bytes (escape mode).
 */
static void
walk_node(walk_ctx *w, uint32_t node, uint32_t d, const lg_gstate *cur, int32_t cur_id)
{
	lg_grammar_matcher *m = w->m;
	const lg_grammar_vocab *gv = m->gv;
	const lg_gtrie_node *nd = &gv->nodes[node];
	uint8_t		local[32];
	const uint8_t *next_bytes = local;

	/* bytes no stack can take are skipped without stepping (most of them, in narrow states) */
	if (cur_id >= 0)
		next_bytes = w->states[cur_id]->next_bytes;
	else
		lg_gstate_next_bytes(m->g, cur, local);
	for (uint32_t c = nd->first_child; c < nd->first_child + nd->n_children; c++)
	{
		const lg_gtrie_node *ch = &gv->nodes[c];
		const lg_gstate *st;
		uint32_t	own_hi = ch->tok_lo + ch->tok_own;
		int32_t		nid = cur_id >= 0 ? w->states[cur_id]->next[ch->byte] : -1;
		bool		alive,
					esc_here;

		if (!((next_bytes[ch->byte >> 3] >> (ch->byte & 7)) & 1))
		{
			/* dead here: what escaped earlier is still for the full stack to decide */
			m->esc[d + 1] = m->esc[d];
			if (m->esc[d])
				unc_range(w, ch->tok_lo, ch->tok_hi, m->esc[d]);
			continue;
		}
		if (nid >= 0)
			st = &w->states[nid]->st;
		else
		{
			lg_gstate  *out = &m->levels[d + 1];

			if (lg_gmask_out_of_work(m))
			{
				w->aborted = true;
				return;
			}
			lg_gstate_step_byte(m->g, cur, ch->byte, out, w->escape_mode);
			st = out;
			if ((nid = intern(w, out)) >= 0)
			{
				st = &w->states[nid]->st;
				if (cur_id >= 0)
					w->states[cur_id]->next[ch->byte] = nid;
			}
		}
		if (st->overflow)
			w->overflowed = true;
		if (st->overflow && w->escape_mode)
		{
			/* the segment hit a limit: let the full stack decide, whole tokens */
			unc_range(w, ch->tok_lo, ch->tok_hi, 0);
			continue;
		}
		alive = st->n_stacks > 0 && !st->overflow;
		esc_here = st->escaped;
		if (alive || esc_here)
			set_range(w, ch->tok_lo, own_hi);
		else if (m->esc[d])
			unc_range(w, ch->tok_lo, own_hi, m->esc[d]);
		m->esc[d + 1] = m->esc[d] | (esc_here ? lg_gesc_bit(d + 1) : 0);
		if (ch->tok_hi > own_hi)
		{
			if (alive && d + 1 >= w->max_depth)
				unc_range(w, own_hi, ch->tok_hi, 0);	/* long tokens: counts in the key do not cover them */
			else if (alive)
				walk_node(w, c, d + 1, st, nid);
			else if (m->esc[d + 1])
				unc_range(w, own_hi, ch->tok_hi, m->esc[d + 1]);
		}
	}
}

/*
 * Walk the whole trie from state start: accepted tokens into acc, uncertain
 * ones into unc.  False when some step hit a runtime limit; *aborted when
 * the walk ran out of work (acc then holds only some of the tokens).
 */
bool
lg_gwalk(lg_grammar_matcher *m, const lg_gstate *start, bool escape_mode, uint32_t max_depth, uint64_t *acc,
		 lg_gtok_vec *unc, bool *aborted)
{
	walk_ctx	w;
	int32_t		id;

	memset(&w, 0, sizeof(w));
	w.m = m;
	w.escape_mode = escape_mode;
	w.max_depth = max_depth;
	w.acc = acc;
	w.unc = unc;
	m->esc[0] = 0;
	id = intern(&w, start);
	walk_node(&w, 0, 0, id >= 0 ? &w.states[id]->st : start, id);
	for (uint32_t i = 0; i < w.n_states; i++)
	{
		lg_gstate_free(&w.states[i]->st);
		free(w.states[i]);
	}
	free(w.states);
	free(w.slots);
	if (aborted != NULL)
		*aborted = w.aborted;
	return !w.overflowed && !w.aborted;
}

