/*
 * grammar_mask.c — which tokens may come next: a walk of the vocabulary trie,
 * made cheap by a cache of token splits per grammar position.
 *
 * The slow way walks the trie from the matcher's whole state
 * (grammar_walk.c).  Inside a JSON string nearly every token survives, so
 * that walk visits the whole trie (milliseconds).
 *
 * The fast way (XGrammar's idea, adapted to these stacks): a token's fate
 * mostly depends on the top few frames of a stack only.  For each stack we
 * take its "segment": the top frame and the frames below it down to the
 * first one that cannot end without consuming input (e.g. a string's closing
 * quote, an object's `}`).  Walking the trie from the segment alone, in
 * escape mode, splits the vocabulary three ways:
 *   - accepted: the segment consumed the whole token, so the full stack does;
 *   - rejected: every path died inside the segment;
 *   - uncertain: some path popped past the segment's bottom with bytes left
 *     (e.g. `",` at the end of a string), so the frames below decide.
 * The split is cached per segment (counts of repetitions normalised: beyond
 * the longest token's length a count cannot matter within one token), shared
 * by every matcher of the same (grammar, vocabulary) behind a mutex.  A mask
 * is then the union of the accepted sets of the state's stacks plus the
 * uncertain tokens decided against the full stack — few, because a
 * segment's bottom needs a closing delimiter to end, and cheap: the walk
 * recorded after how many bytes each left the segment, so only the rest of
 * it runs, from the stack below resumed once, each distinct rest once.
 * When the segment is the whole stack, popping past it is completion,
 * nothing is uncertain.
 *
 * Cached entries are immutable once inserted and live until the grammar is
 * freed; past LG_GCACHE_MAX_BYTES new splits are computed, used and dropped.
 * A state waiting for the rest of a UTF-8 character takes the slow way (only
 * continuation-byte tokens survive the first byte, so it is cheap).
 *
 * In front of all that, each matcher keeps the masks of its last few exact
 * states: inside a string the state after a token is usually the state
 * before it, and a copy of 4 KiB beats recombining the split.  Near the
 * runtime limits the slow way is used (it steps whole stacks, as
 * accept_token does), and one mask's work is bounded (LG_GRAMMAR_MAX_WALK).
 */
#include "grammar_impl.h"

#include <stdlib.h>
#include <string.h>

#define LG_GCACHE_MAX_BYTES ((size_t) 64 << 20)	/* per (grammar, vocabulary) */
#define SEG_MAX 64				/* frames in a segment at most */
/*
 * When a segment holds a repetition whose count matters (a finite maximum,
 * or a minimum not reached), its split decides tokens of up to this many
 * bytes and leaves longer ones that survive that far uncertain, so counts
 * in keys need only be exact within this distance of their bounds (MPT has
 * 512-byte tokens).  Other segments decide every token.
 */
#define LG_GRAMMAR_SEG_TOKEN_MAX 64

/* The token split of one segment. */
typedef struct gentry
{
	struct gentry *next;		/* hash chain */
	uint64_t	hash;
	uint32_t	n_key;
	bool		full;			/* the segment is the whole stack */
	lg_gframe  *key;
	uint64_t   *acc_bits;		/* accepted tokens as a bitset, or NULL and: */
	int32_t    *acc_list;		/* accepted tokens as a list */
	uint32_t	n_acc;
	int32_t    *unc;			/* uncertain tokens, in trie order */
	uint64_t   *unc_esc;		/* their escape offsets */
	uint32_t	n_unc;
	size_t		bytes;
} gentry;

struct lg_gcache
{
	lg_gcache  *next;
	uint64_t	vocab_id;
	gentry	  **buckets;
	uint32_t	n_buckets;
	uint32_t	n_entries;
	size_t		bytes;
	uint64_t	hits;
	uint64_t	misses;
	uint64_t	unc_checks;
	uint64_t	slow_fills;
};

/* Set the EOG tokens' bits when the state is complete. */
static void
set_eog(const lg_grammar_matcher *m, uint64_t *mask)
{
	if (!lg_gstate_complete(&m->state))
		return;
	for (uint32_t i = 0; i < m->gv->n_eog; i++)
		mask[m->gv->eog[i] >> 6] |= 1ULL << (m->gv->eog[i] & 63);
}

bool
lg_grammar_matcher_fill_mask_slow(lg_grammar_matcher *m, uint64_t *mask)
{
	size_t		words;
	bool		exact;

	if (m->gv == NULL)
		return true;
	m->work_start = lg_gstate_work;
	words = ((size_t) m->gv->n_tokens + 63) / 64;
	memset(mask, 0, words * sizeof(uint64_t));
	exact = lg_gwalk(m, &m->state, false, UINT32_MAX, mask, NULL, NULL);
	set_eog(m, mask);
	return exact;
}

/*
 * Whether the state is close to a runtime limit.  Splits are computed on
 * parts of stacks, which may stay under a limit that the whole stack
 * exceeds; near the limits the slow walk, which steps whole stacks as
 * accept_token does, keeps the mask and accept_token in agreement.
 */
static bool
near_limits(const lg_gstate *s)
{
	if (s->n_stacks > LG_GRAMMAR_MAX_STACKS / 8 || s->n_frames > LG_GRAMMAR_MAX_FRAMES / 8 ||
		s->expand_left < LG_GRAMMAR_MAX_EXPAND - LG_GRAMMAR_MAX_EXPAND / 8)
		return true;
	for (uint32_t i = 0; i < s->n_stacks; i++)
		if (s->len[i] > LG_GRAMMAR_MAX_DEPTH / 2)
			return true;
	return false;
}

/* Free every cache of a grammar (at lg_grammar_free; no matcher may use it any more). */
void
lg_gcache_free_all(lg_grammar *g)
{
	lg_gcache  *c = g->caches;

	while (c != NULL)
	{
		lg_gcache  *next = c->next;

		for (uint32_t b = 0; b < c->n_buckets; b++)
		{
			gentry	   *e = c->buckets[b];

			while (e != NULL)
			{
				gentry	   *en = e->next;

				free(e->key), free(e->acc_bits), free(e->acc_list), free(e->unc), free(e->unc_esc), free(e);
				e = en;
			}
		}
		free(c->buckets);
		free(c);
		c = next;
	}
	g->caches = NULL;
}

size_t
lg_gcache_bytes(lg_grammar *g)
{
	size_t		n = 0;

	pthread_mutex_lock(&g->cache_lock);
	for (lg_gcache *c = g->caches; c != NULL; c = c->next)
		n += c->bytes;
	pthread_mutex_unlock(&g->cache_lock);
	return n;
}

/* Free an entry that was not inserted. */
static void
entry_free(gentry *e)
{
	if (e == NULL)
		return;
	free(e->key), free(e->acc_bits), free(e->acc_list), free(e->unc), free(e->unc_esc), free(e);
}

/* The cache of (m's grammar, m's vocabulary), created on first use; NULL if out of memory. */
static lg_gcache *
get_cache(lg_grammar_matcher *m)
{
	lg_grammar *g = (lg_grammar *) m->g;	/* the caches are the mutable part, under cache_lock */
	lg_gcache  *c;

	if (m->cache != NULL)
		return m->cache;
	pthread_mutex_lock(&g->cache_lock);
	for (c = g->caches; c != NULL; c = c->next)
		if (c->vocab_id == m->gv->id)
			break;
	if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL)
	{
		c->vocab_id = m->gv->id;
		c->n_buckets = 1024;
		c->buckets = calloc(c->n_buckets, sizeof(gentry *));
		if (c->buckets == NULL)
		{
			free(c);
			c = NULL;
		}
		else
		{
			c->next = g->caches;
			g->caches = c;
		}
	}
	pthread_mutex_unlock(&g->cache_lock);
	m->cache = c;
	return c;
}

/* Hash of a segment key. */
static uint64_t
key_hash(const lg_gframe *k, uint32_t n, bool full)
{
	uint64_t	h = 0xCBF29CE484222325ULL ^ ((uint64_t) n << 1) ^ full;

	for (uint32_t i = 0; i < n; i++)
	{
		h ^= ((uint64_t) k[i].pos << 32) | k[i].count;
		h *= 0x100000001B3ULL;
		h ^= h >> 31;
	}
	return h;
}

/* The entry for key in c, or NULL (caller holds the lock). */
static gentry *
cache_find(lg_gcache *c, const lg_gframe *key, uint32_t n, bool full, uint64_t h)
{
	for (gentry *e = c->buckets[h & (c->n_buckets - 1)]; e != NULL; e = e->next)
		if (e->hash == h && e->n_key == n && e->full == full &&
			memcmp(e->key, key, n * sizeof(lg_gframe)) == 0)
			return e;
	return NULL;
}

/* Insert e (caller holds the lock), growing the table when it gets long chains. */
static void
cache_insert(lg_gcache *c, gentry *e)
{
	if (c->n_entries >= 2 * c->n_buckets)
	{
		uint32_t	nb = c->n_buckets * 4;
		gentry	  **b = calloc(nb, sizeof(gentry *));

		if (b != NULL)
		{
			for (uint32_t i = 0; i < c->n_buckets; i++)
				for (gentry *x = c->buckets[i], *nx; x != NULL; x = nx)
				{
					nx = x->next;
					x->next = b[x->hash & (nb - 1)];
					b[x->hash & (nb - 1)] = x;
				}
			free(c->buckets);
			c->buckets = b;
			c->n_buckets = nb;
		}
	}
	e->next = c->buckets[e->hash & (c->n_buckets - 1)];
	c->buckets[e->hash & (c->n_buckets - 1)] = e;
	c->n_entries++;
	c->bytes += e->bytes;
}

/* Compute the split of a segment by walking the trie from it; NULL if out of memory or work. */
static gentry *
compute_entry(lg_grammar_matcher *m, const lg_gframe *key, uint32_t n, bool full, bool counted, uint64_t h)
{
	const lg_grammar_vocab *gv = m->gv;
	size_t		words = ((size_t) gv->n_tokens + 63) / 64;
	gentry	   *e = calloc(1, sizeof(*e));
	lg_gtok_vec unc = {0};
	uint32_t	n_acc = 0;
	bool		aborted;
	lg_gstate  *start = &m->tmp[0];

	if (e == NULL)
		return NULL;
	e->hash = h;
	e->n_key = n;
	e->full = full;
	e->key = malloc(n * sizeof(lg_gframe));
	if (e->key == NULL)
		goto nomem;
	memcpy(e->key, key, n * sizeof(lg_gframe));
	lg_gstate_clear(start);
	if (!lg_gstate_push_stack(start, key, n))
		goto nomem;
	memset(m->bits, 0, words * sizeof(uint64_t));
	(void) lg_gwalk(m, start, !full, counted ? LG_GRAMMAR_SEG_TOKEN_MAX : UINT32_MAX, m->bits, &unc, &aborted);
	if (unc.failed || aborted)
		goto nomem;				/* an incomplete split must not be cached: the caller walks slowly */
	for (size_t i = 0; i < words; i++)
		n_acc += (uint32_t) __builtin_popcountll(m->bits[i]);
	e->n_acc = n_acc;
	if ((size_t) n_acc * 32 < (size_t) gv->n_tokens)
	{
		uint32_t	k = 0;

		e->acc_list = malloc(((size_t) n_acc + 1) * sizeof(int32_t));
		if (e->acc_list == NULL)
			goto nomem;
		for (size_t i = 0; i < words; i++)
			for (uint64_t b = m->bits[i]; b != 0; b &= b - 1)
				e->acc_list[k++] = (int32_t) (i * 64 + (size_t) __builtin_ctzll(b));
		e->bytes += (size_t) n_acc * sizeof(int32_t);
	}
	else
	{
		e->acc_bits = malloc(words * sizeof(uint64_t));
		if (e->acc_bits == NULL)
			goto nomem;
		memcpy(e->acc_bits, m->bits, words * sizeof(uint64_t));
		e->bytes += words * sizeof(uint64_t);
	}
	e->unc = unc.v;
	e->unc_esc = unc.esc;
	e->n_unc = unc.n;
	e->bytes += sizeof(*e) + n * sizeof(lg_gframe) + (size_t) unc.cap * (sizeof(int32_t) + sizeof(uint64_t));
	return e;
nomem:
	free(unc.v);
	free(unc.esc);
	entry_free(e);
	return NULL;
}

/* Whether frame f (the top frame when top) can reach the end of its rule without input. */
static bool
frame_rest_nullable(const lg_grammar *g, lg_gframe f, bool top)
{
	const lg_gelem *e = &g->elems[f.pos];

	if (top)
		return g->elems[f.pos + 1].rest_nullable;
	if (e->type == LG_GE_REPEAT && f.count > 0)
		return f.count >= e->min && g->elems[f.pos + 1].rest_nullable;
	return e->rest_nullable;
}

/*
 * The segment of stack f[0..n) as a cache key: frames from the top down to
 * the first that cannot end without input, counts normalised.  Returns the
 * number of frames; *full when the segment is the whole stack; *counted
 * when a repetition count in it matters (its split then stops at
 * LG_GRAMMAR_SEG_TOKEN_MAX bytes, which is what makes the normalisation
 * sound).  Both follow from the key's frames, so equal keys agree on them.
 */
static uint32_t
segment_key(const lg_grammar_matcher *m, const lg_gframe *f, uint32_t n, lg_gframe *key, bool *full,
			bool *counted)
{
	const lg_grammar *g = m->g;
	uint32_t	b = n - 1;
	uint32_t	L = (m->gv->max_len < LG_GRAMMAR_SEG_TOKEN_MAX ? m->gv->max_len : LG_GRAMMAR_SEG_TOKEN_MAX) + 1;

	while (b > 0 && n - b < SEG_MAX && frame_rest_nullable(g, f[b], b == n - 1))
		b--;
	*full = b == 0;
	*counted = false;
	for (uint32_t i = b; i < n; i++)
	{
		lg_gframe	k = f[i];
		const lg_gelem *e = &g->elems[k.pos];

		if (e->type == LG_GE_REPEAT && k.count > 0 && (e->max != LG_REPEAT_INF || k.count < e->min))
		{
			/* within one token at most L iterations start, so counts further from a bound look alike */
			*counted = true;
			if (k.count < e->min)
			{
				if (e->min - k.count > L)
					k.count = e->min - L;
			}
			else if (e->max - k.count > L)
				k.count = e->max - L;
		}
		key[i - b] = k;
	}
	return n - b;
}

/*
 * Check tokens unc[0..n_unc) (in trie order: sorted by their bytes) whole
 * against the full stack f[0..n), setting the bits of those accepted.
 * Consecutive tokens share prefixes, so the state after a shared prefix is
 * kept per depth (the walk's levels) and reused; a prefix that died is
 * remembered as an empty level.
 */
static uint64_t
check_whole(lg_grammar_matcher *m, const lg_gframe *f, uint32_t n, const int32_t *unc, uint32_t n_unc,
			uint64_t *mask)
{
	const lg_grammar_vocab *gv = m->gv;
	const char *prev = NULL;
	uint32_t	prev_len = 0,
				valid = 0;		/* levels[0..valid] hold the states after prev's first bytes */
	uint64_t	checks = 0;

	lg_gstate_clear(&m->levels[0]);
	if (!lg_gstate_push_stack(&m->levels[0], f, n))
		return 0;
	for (uint32_t k = 0; k < n_unc; k++)
	{
		int32_t		t = unc[k];
		const char *p = gv->pieces + gv->piece_off[t];
		uint32_t	len = gv->piece_off[t + 1] - gv->piece_off[t];
		uint32_t	d = 0;

		if ((mask[t >> 6] >> (t & 63)) & 1)
			continue;
		if (lg_gmask_out_of_work(m))
			break;				/* the rest stay out: a subset, never an invalid token */
		checks++;
		while (d < valid && d < len && d < prev_len && p[d] == prev[d])
			d++;
		for (; d < len && m->levels[d].n_stacks > 0 && !m->levels[d].overflow; d++)
			lg_gstate_step_byte(m->g, &m->levels[d], (uint8_t) p[d], &m->levels[d + 1], false);
		valid = d;
		prev = p;
		prev_len = len;
		if (d == len && m->levels[d].n_stacks > 0 && !m->levels[d].overflow)
			mask[t >> 6] |= 1ULL << (t & 63);
	}
	return checks;
}

/* A remembered verdict: whether the resumed stack accepts these bytes. */
typedef struct suffix_memo
{
	uint64_t	hash;			/* 0: empty slot */
	const char *p;
	uint32_t	len;
	bool		ok;
} suffix_memo;

/* Whether m->resumed accepts p[0..len), remembered per distinct suffix. */
static bool
suffix_ok(lg_grammar_matcher *m, const char *p, uint32_t len)
{
	uint64_t	h = 0xCBF29CE484222325ULL ^ len;
	uint32_t	slot;
	suffix_memo *e;

	for (uint32_t i = 0; i < len; i++)
		h = (h ^ (uint8_t) p[i]) * 0x100000001B3ULL;
	h |= 1;
	for (slot = (uint32_t) h & (m->memo_cap - 1);; slot = (slot + 1) & (m->memo_cap - 1))
	{
		e = &m->memo[slot];
		if (e->hash == 0)
			break;
		if (e->hash == h && e->len == len && memcmp(e->p, p, len) == 0)
			return e->ok;
	}
	/*
	 * A token may leave the segment at several offsets (a run of dashes in a
	 * counted repetition), so there can be more distinct suffixes than the
	 * table was sized for: past half full, answer without remembering
	 * (a full open-addressing table would have no empty slot to stop at).
	 */
	if (m->memo_used >= m->memo_cap / 2)
		return lg_gstate_run_bytes(m->g, &m->resumed, p, len, &m->levels[1], &m->levels[2]) != NULL;
	m->memo_used++;
	e->hash = h;
	e->p = p;
	e->len = len;
	e->ok = lg_gstate_run_bytes(m->g, &m->resumed, p, len, &m->levels[1], &m->levels[2]) != NULL;
	return e->ok;
}

/*
 * Decide the uncertain tokens of split e for the stack f[0..n) whose segment
 * starts at frame b.  A token that ran past the segment's bottom after k
 * bytes goes on from the stack below the segment, resumed once per mask
 * (m->resumed): it is accepted when that accepts its last len - k bytes, and
 * suffixes repeat (`",` `"}` ... all leave a string the same way), so each
 * distinct one is run once.  Tokens without known offsets are checked whole.
 */
static uint64_t
check_uncertain(lg_grammar_matcher *m, const lg_gframe *f, uint32_t n, uint32_t b, const gentry *e,
				uint64_t *mask)
{
	const lg_grammar_vocab *gv = m->gv;
	uint32_t	n_whole = 0;
	uint64_t	checks = 0;
	bool		resumed = false;

	for (uint32_t k = 0; k < e->n_unc; k++)
	{
		int32_t		t = e->unc[k];
		uint64_t	esc = e->unc_esc[k];
		const char *p = gv->pieces + gv->piece_off[t];
		uint32_t	len = gv->piece_off[t + 1] - gv->piece_off[t];

		if ((mask[t >> 6] >> (t & 63)) & 1)
			continue;
		if (lg_gmask_out_of_work(m))
			break;
		if (esc == 0 || (esc & ESC_FAR) || b == 0)
		{
			if (n_whole == m->whole_cap)
			{
				uint32_t	nc = m->whole_cap ? 2 * m->whole_cap : 256;
				int32_t    *nw = realloc(m->whole, nc * sizeof(int32_t));

				if (nw == NULL)
					return checks;
				m->whole = nw;
				m->whole_cap = nc;
			}
			m->whole[n_whole++] = t;
			continue;
		}
		checks++;
		if (!resumed)
		{
			uint32_t	need = 16;

			lg_gstate_resume(m->g, &m->resumed, f, b);
			while (need < 2 * e->n_unc)
				need *= 2;
			if (need > m->memo_cap)
			{
				suffix_memo *nm = realloc(m->memo, need * sizeof(suffix_memo));

				if (nm == NULL)
					return checks;
				m->memo = nm;
				m->memo_cap = need;
			}
			memset(m->memo, 0, m->memo_cap * sizeof(suffix_memo));
			m->memo_used = 0;
			resumed = true;
		}
		if (m->resumed.n_stacks == 0 || m->resumed.overflow)
			continue;
		for (uint64_t bits = esc; bits != 0; bits &= bits - 1)
		{
			uint32_t	off = (uint32_t) __builtin_ctzll(bits);

			if (off < len && suffix_ok(m, p + off, len - off))
			{
				mask[t >> 6] |= 1ULL << (t & 63);
				break;
			}
		}
	}
	if (n_whole > 0)
		checks += check_whole(m, f, n, m->whole, n_whole, mask);
	return checks;
}

/* Hash of a whole state (never 0, which marks an empty recent slot). */
static uint64_t
state_hash(const lg_gstate *s)
{
	uint64_t	h = 0x243F6A8885A308D3ULL ^ s->n_stacks ^ ((uint64_t) s->partial_value << 24) ^
		((uint64_t) (uint8_t) s->partial_left << 16);

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
	return h ? h : 1;
}

/* Whether two states hold the same stacks in the same order. */
static bool
state_equal(const lg_gstate *a, const lg_gstate *b)
{
	if (a->n_stacks != b->n_stacks || a->n_frames != b->n_frames || a->partial_left != b->partial_left ||
		a->partial_value != b->partial_value || a->partial_total != b->partial_total)
		return false;
	for (uint32_t i = 0; i < a->n_stacks; i++)
		if (a->len[i] != b->len[i] ||
			memcmp(a->frames + a->off[i], b->frames + b->off[i], a->len[i] * sizeof(lg_gframe)) != 0)
			return false;
	return true;
}

static void fill_mask_cached(lg_grammar_matcher *m, uint64_t *mask);

void
lg_grammar_matcher_fill_mask(lg_grammar_matcher *m, uint64_t *mask)
{
	size_t		words;
	uint64_t	h;
	lg_grecent *r;

	if (m->gv == NULL)
		return;
	m->work_start = lg_gstate_work;
	words = ((size_t) m->gv->n_tokens + 63) / 64;
	h = state_hash(&m->state);
	for (int i = 0; i < LG_GRAMMAR_RECENT; i++)
		if (m->recent[i].hash == h && state_equal(&m->recent[i].state, &m->state))
		{
			memcpy(mask, m->recent[i].mask, words * sizeof(uint64_t));
			m->recent_hits++;
			return;
		}
	fill_mask_cached(m, mask);
	/* remember it: inside a string the next state is usually this one again */
	r = &m->recent[m->recent_next];
	m->recent_next = (m->recent_next + 1) % LG_GRAMMAR_RECENT;
	r->hash = 0;
	if (r->mask == NULL && (r->mask = malloc(words * sizeof(uint64_t))) == NULL)
		return;
	if (!lg_gstate_copy(&r->state, &m->state))
		return;
	memcpy(r->mask, mask, words * sizeof(uint64_t));
	r->hash = h;
}

/* The mask from the segment cache (or the slow walk when it cannot serve). */
static void
fill_mask_cached(lg_grammar_matcher *m, uint64_t *mask)
{
	const lg_grammar_vocab *gv = m->gv;
	const lg_gstate *s = &m->state;
	lg_gcache  *c;
	size_t		words;
	lg_gframe	key[SEG_MAX];
	uint64_t	unc_checks = 0,
				hits = 0,
				misses = 0;

	if (gv == NULL)
		return;
	words = ((size_t) gv->n_tokens + 63) / 64;
	c = get_cache(m);
	if (c == NULL || s->partial_left > 0 || m->n_levels < 3 || near_limits(s))
	{
		lg_grammar_matcher_fill_mask_slow(m, mask);
		if (c != NULL)
		{
			pthread_mutex_lock(&((lg_grammar *) m->g)->cache_lock);
			c->slow_fills++;
			pthread_mutex_unlock(&((lg_grammar *) m->g)->cache_lock);
		}
		return;
	}
	memset(mask, 0, words * sizeof(uint64_t));
	for (uint32_t i = 0; i < s->n_stacks; i++)
	{
		const lg_gframe *f = s->frames + s->off[i];
		uint32_t	n = s->len[i];
		uint32_t	nk;
		bool		full,
					counted,
					owned = false;
		uint64_t	h;
		gentry	   *e;

		if (n == 0)
			continue;			/* complete: only EOG may follow on this stack */
		nk = segment_key(m, f, n, key, &full, &counted);
		h = key_hash(key, nk, full);
		pthread_mutex_lock(&((lg_grammar *) m->g)->cache_lock);
		e = cache_find(c, key, nk, full, h);
		pthread_mutex_unlock(&((lg_grammar *) m->g)->cache_lock);
		if (e != NULL)
			hits++;
		else
		{
			gentry	   *found;

			misses++;
			e = compute_entry(m, key, nk, full, counted, h);
			if (e == NULL)
			{
				lg_grammar_matcher_fill_mask_slow(m, mask);
				return;
			}
			pthread_mutex_lock(&((lg_grammar *) m->g)->cache_lock);
			found = cache_find(c, key, nk, full, h);
			if (found != NULL)
			{
				entry_free(e);	/* another matcher computed it meanwhile */
				e = found;
			}
			else if (c->bytes + e->bytes <= LG_GCACHE_MAX_BYTES)
				cache_insert(c, e);
			else
				owned = true;
			pthread_mutex_unlock(&((lg_grammar *) m->g)->cache_lock);
		}
		if (e->acc_bits != NULL)
			for (size_t w = 0; w < words; w++)
				mask[w] |= e->acc_bits[w];
		else
			for (uint32_t k = 0; k < e->n_acc; k++)
				mask[e->acc_list[k] >> 6] |= 1ULL << (e->acc_list[k] & 63);
		if (e->n_unc > 0)
			unc_checks += check_uncertain(m, f, n, n - nk, e, mask);
		if (owned)
			entry_free(e);
	}
	set_eog(m, mask);
	pthread_mutex_lock(&((lg_grammar *) m->g)->cache_lock);
	c->hits += hits;
	c->misses += misses;
	c->unc_checks += unc_checks;
	pthread_mutex_unlock(&((lg_grammar *) m->g)->cache_lock);
}

void
lg_grammar_matcher_cache_stats(const lg_grammar_matcher *m, lg_grammar_cache_stats *st)
{
	lg_gcache  *c = m->cache;

	memset(st, 0, sizeof(*st));
	st->recent_hits = m->recent_hits;
	if (m->gv == NULL)
		return;
	pthread_mutex_lock(&((lg_grammar *) m->g)->cache_lock);
	/* a matcher that has not made a mask yet has not looked its cache up */
	for (c = m->g->caches; c != NULL && c->vocab_id != m->gv->id; c = c->next)
		;
	if (c == NULL)
	{
		pthread_mutex_unlock(&((lg_grammar *) m->g)->cache_lock);
		return;
	}
	st->entries = c->n_entries;
	st->bytes = c->bytes;
	st->hits = c->hits;
	st->misses = c->misses;
	st->uncertain_checks = c->unc_checks;
	st->slow_fills = c->slow_fills;
	pthread_mutex_unlock(&((lg_grammar *) m->g)->cache_lock);
}
