/*
 * grammar_impl.h — the compiled form of a GBNF grammar and the pushdown
 * state the matcher and the mask code share.  Not a public header.
 *
 * A grammar is one flat array of elements.  A rule is a list of
 * alternatives; each alternative is a run of elements ended by ALT (another
 * alternative follows) or END (the rule's last).  Groups "( )" and the
 * bodies of repetitions become generated rules.  x*, x+, x?, x{m,n} are one
 * REPEAT element that refers to x's rule and carries the bounds, so a count
 * of 5000 costs nothing: the iteration count lives in the stack frame.
 *
 * A stack is an array of frames, bottom first.  The top frame's pos is
 * always a CHAR element (the next code point to match); the frames below are
 * return positions (the element after a rule reference, or a REPEAT element
 * with the number of iterations begun).  The state of a matcher is a set of
 * such stacks (the grammar may be ambiguous) plus a partial UTF-8 sequence;
 * an empty stack means the root rule has ended (complete).
 */
#ifndef LG_GRAMMAR_IMPL_H
#define LG_GRAMMAR_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grammar.h"

typedef enum lg_gelem_type
{
	LG_GE_END = 0,				/* end of the rule's last alternative */
	LG_GE_ALT,					/* end of an alternative; the next starts after it */
	LG_GE_CHAR,					/* one code point of class `value` */
	LG_GE_REF,					/* rule `value` */
	LG_GE_REPEAT				/* rule `value` repeated min..max times */
} lg_gelem_type;

#define LG_REPEAT_INF UINT32_MAX

typedef struct lg_gelem
{
	uint8_t		type;			/* lg_gelem_type */
	bool		rest_nullable;	/* the elements from here to the alternative's end can match "" */
	uint32_t	value;			/* class (CHAR) or rule (REF, REPEAT) */
	uint32_t	min;			/* REPEAT bounds; max LG_REPEAT_INF when unbounded */
	uint32_t	max;
} lg_gelem;

/* A set of code points: sorted disjoint ranges, negated or not, with an ASCII bitmap. */
typedef struct lg_gclass
{
	uint32_t	ascii[4];		/* membership of code points 0..127, negation applied */
	uint32_t	first;			/* index of the first range in lg_grammar.ranges */
	uint32_t	n;				/* number of ranges */
	bool		negated;
} lg_gclass;

typedef struct lg_grule
{
	uint32_t	first_alt;		/* index into lg_grammar.alts */
	uint32_t	n_alts;
	uint32_t	name;			/* offset of its NUL-terminated name in lg_grammar.names */
	bool		nullable;
	bool		generated;		/* a group or repetition body, named after its rule */
} lg_grule;

typedef struct lg_gcache lg_gcache;

struct lg_grammar
{
	lg_gelem   *elems;
	uint32_t	n_elems;
	uint32_t   *alts;			/* element index where each alternative starts */
	uint32_t	n_alts_total;
	lg_grule   *rules;
	uint32_t	n_rules;
	uint32_t	root;
	lg_gclass  *classes;
	uint32_t	n_classes;
	uint32_t   *ranges;			/* pairs lo, hi (inclusive) */
	uint8_t    (*first_bytes)[32];	/* per class: bitmap of the bytes a member's UTF-8 can start with */
	char	   *names;

	/* Token-split caches, one per grammar vocabulary used with this grammar. */
	pthread_mutex_t cache_lock;
	lg_gcache  *caches;

	/* Sharing by text (grammar_registry.c), under the registry's lock. */
	char	   *src;
	size_t		src_len;
	uint64_t	src_hash;
	uint32_t	refs;			/* lg_grammar_parse results not yet freed */
	lg_grammar *reg_prev;		/* most recently used first */
	lg_grammar *reg_next;
};

typedef struct lg_gframe
{
	uint32_t	pos;			/* element index */
	uint32_t	count;			/* REPEAT frames: iterations begun */
} lg_gframe;

/* A set of stacks stored end to end, and a partial UTF-8 sequence. */
typedef struct lg_gstate
{
	lg_gframe  *frames;
	uint32_t	n_frames;
	uint32_t	cap_frames;
	uint32_t   *off;			/* stack i is frames[off[i] .. off[i] + len[i]) */
	uint32_t   *len;
	uint32_t	n_stacks;
	uint32_t	cap_stacks;
	uint32_t	partial_value;	/* bits of the code point decoded so far */
	int8_t		partial_left;	/* continuation bytes still expected (0: none) */
	int8_t		partial_total;	/* length of the partial character's whole sequence */
	bool		escaped;		/* escape mode: a stack ran past its bottom */
	uint32_t	expand_left;	/* expansion steps left while building it (LG_GRAMMAR_MAX_EXPAND) */
	bool		overflow;		/* a limit was hit while building it */
	/* dedup table: stack indices + 1, 0 = empty slot */
	uint32_t   *hash_slots;
	uint32_t	hash_cap;
	lg_gframe  *work;			/* scratch stack for expansions (LG_GRAMMAR_MAX_DEPTH + 2 frames) */
	bool		work_borrowed;	/* work belongs to someone else: not freed here */
} lg_gstate;

/* Per-token output bytes and a byte trie over them (grammar_vocab.c). */
typedef struct lg_gtrie_node
{
	uint32_t	first_child;	/* index of its first child; children are consecutive */
	uint16_t	n_children;
	uint8_t		byte;			/* the byte on the edge into this node */
	uint8_t		depth_flag;		/* unused */
	uint32_t	tok_lo;			/* tokens in this subtree: order[tok_lo .. tok_hi) */
	uint32_t	tok_own;		/* the first tok_own of them end at this node */
	uint32_t	tok_hi;
} lg_gtrie_node;

struct lg_grammar_vocab
{
	uint64_t	id;				/* unique per object, keys the grammar's caches */
	int32_t		n_tokens;
	uint32_t   *piece_off;		/* token t's bytes: pieces[piece_off[t] .. piece_off[t + 1]) */
	char	   *pieces;
	bool	   *is_eog;
	int32_t    *eog;			/* the end-of-generation tokens */
	uint32_t	n_eog;
	uint32_t	max_len;		/* longest piece in bytes */
	lg_gtrie_node *nodes;		/* node 0 is the root */
	uint32_t	n_nodes;
	int32_t    *order;			/* tokens in trie order */
};

/* A recent mask and the exact state it was computed for (the matcher's own small cache). */
typedef struct lg_grecent
{
	uint64_t	hash;
	lg_gstate	state;			/* a copy; n_stacks 0 and unused when hash is 0 */
	uint64_t   *mask;
} lg_grecent;

#define LG_GRAMMAR_RECENT 4

/* One sequence's state and its scratch space. */
struct lg_grammar_matcher
{
	const lg_grammar *g;
	const lg_grammar_vocab *gv;
	lg_gstate	state;
	lg_gstate	tmp[2];			/* accept_bytes builds into these */
	lg_gframe  *work;			/* shared scratch stack of the walk levels */
	lg_gstate  *levels;			/* trie walk: state after each depth (gv->max_len + 1) */
	uint64_t   *esc;			/* trie walk: where stacks ran past the segment's bottom (esc_offsets) */
	uint32_t	n_levels;
	lg_gcache  *cache;			/* the (grammar, vocabulary) cache, found on first fill_mask */
	uint64_t   *bits;			/* scratch mask */
	lg_gstate	resumed;		/* a stack below its segment, resumed after the segment ended */
	struct suffix_memo *memo;	/* suffix → accepted from `resumed`, for one stack of one mask */
	uint32_t	memo_cap;
	uint32_t	memo_used;		/* filled slots; kept at most half of memo_cap */
	int32_t    *whole;			/* uncertain tokens to check whole */
	uint32_t	whole_cap;
	uint64_t	work_start;		/* lg_gstate_work when the current mask began */
	lg_grecent	recent[LG_GRAMMAR_RECENT];	/* masks of the last states (a string's content repeats) */
	uint32_t	recent_next;
	uint64_t	recent_hits;
};

/* grammar_state.c */
/* Expansion steps this thread has done: masks measure their work by it. */
extern __thread uint64_t lg_gstate_work;
void		lg_gstate_init(lg_gstate *s);
void		lg_gstate_free(lg_gstate *s);
void		lg_gstate_clear(lg_gstate *s);
bool		lg_gstate_copy(lg_gstate *dst, const lg_gstate *src);
/* Add one stack f[0..n) (already expanded) to s; false when a limit or memory ran out. */
bool		lg_gstate_push_stack(lg_gstate *s, const lg_gframe *f, uint32_t n);
/* Stacks of the start: the root rule expanded. */
bool		lg_gstate_start(const lg_grammar *g, lg_gstate *s);
/* out = the stack f[0..n) after its frame n - 1 is returned to (its rule's child ended), expanded. */
void		lg_gstate_resume(const lg_grammar *g, lg_gstate *out, const lg_gframe *f, uint32_t n);
/* Consume one byte: out = in after b.  escape_mode: running past a stack's bottom sets out->escaped. */
void		lg_gstate_step_byte(const lg_grammar *g, const lg_gstate *in, uint8_t b,
								lg_gstate *out, bool escape_mode);
/* Some stack is empty (the root may end here) and no partial character is pending. */
bool		lg_gstate_complete(const lg_gstate *s);
bool		lg_gstate_can_continue(const lg_grammar *g, const lg_gstate *s);
bool		lg_gclass_match(const lg_grammar *g, uint32_t cls, uint32_t cp);
/* Fill g->first_bytes for every class; false if out of memory. */
bool		lg_gclass_first_bytes_init(lg_grammar *g);
/* Bitmap of the bytes that can come next in state s (all 256 while a character is partial). */
void		lg_gstate_next_bytes(const lg_grammar *g, const lg_gstate *s, uint8_t out[32]);
/*
 * Consume p[0..n) from s (n > 0) using scratch states a and b; the state
 * after them (a or b), or NULL when they are rejected.  s is unchanged.
 */
lg_gstate  *lg_gstate_run_bytes(const lg_grammar *g, const lg_gstate *s, const char *p, size_t n,
								lg_gstate *a, lg_gstate *b);

/* grammar_gbnf.c: parse into a new grammar; free one */
lg_grammar *lg_grammar_compile(const char *gbnf, size_t len, lg_error *err);
void		lg_grammar_destroy(lg_grammar *g);

/* A growable list of token ids (grammar_walk.c fills it). */
typedef struct lg_gtok_vec
{
	int32_t    *v;
	uint64_t   *esc;			/* per token: escape offsets (see ESC_FAR) */
	uint32_t	n;
	uint32_t	cap;
	bool		failed;
} lg_gtok_vec;

/*
 * Escape offsets of an uncertain token: bit k set when some path ran past
 * the segment's bottom after the token's first k bytes (1 <= k <= 62).
 * ESC_FAR: an escape further in; 0: no escape known (the token was left
 * uncertain for another reason), so the whole token is checked.
 */
#define ESC_FAR (1ULL << 63)

/* The escape-offset bit for k bytes consumed. */
static inline uint64_t
lg_gesc_bit(uint32_t k)
{
	return k < 63 ? 1ULL << k : ESC_FAR;
}

/* Append token t with its escape offsets; a failed allocation sets failed. */
void		lg_gtok_push(lg_gtok_vec *v, int32_t t, uint64_t esc);
/*
 * grammar_walk.c: walk the trie from state start; accepted tokens into acc,
 * uncertain ones (escape mode) into unc.  Tokens longer than max_depth that
 * survive that far are left uncertain.  False when a step hit a runtime
 * limit; *aborted when the mask's budget ran out (acc then holds only some
 * of the tokens).
 */
bool		lg_gwalk(lg_grammar_matcher *m, const lg_gstate *start, bool escape_mode, uint32_t max_depth,
					 uint64_t *acc, lg_gtok_vec *unc, bool *aborted);

/* Whether the current mask has used up its expansion budget (LG_GRAMMAR_MAX_WALK). */
static inline bool
lg_gmask_out_of_work(const lg_grammar_matcher *m)
{
	return lg_gstate_work - m->work_start > LG_GRAMMAR_MAX_WALK;
}

/* grammar_mask.c */
void		lg_gcache_free_all(lg_grammar *g);
size_t		lg_gcache_bytes(lg_grammar *g);	/* memory its caches hold */

#endif							/* LG_GRAMMAR_IMPL_H */
