/*
 * grammar.h — GBNF grammars (llama.cpp's syntax), a pushdown matcher over
 * Unicode code points, and per-step token masks over a model's vocabulary.
 *
 *   lg_grammar *g = lg_grammar_parse(text, len, &err);
 *   lg_grammar_vocab *gv = lg_grammar_vocab_new(vocab, &err);
 *   lg_grammar_matcher *m = lg_grammar_matcher_new(g, gv, &err);
 *   loop: lg_grammar_matcher_fill_mask(m, mask); pick t with its bit set;
 *         lg_grammar_matcher_accept_token(m, t);
 *
 * A grammar and a grammar vocabulary are immutable and shared by threads; a
 * matcher is one sequence, used by one thread at a time.  Masks come from a
 * cache of per-grammar-position results shared by every matcher of the same
 * (grammar, vocabulary), behind a mutex (see grammar_mask.c).
 */
#ifndef LG_GRAMMAR_H
#define LG_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lg_error.h"
#include "vocab.h"

/* Limits against abusive grammars: exceeding one is an LG_ERR_FORMAT error. */
#define LG_GRAMMAR_MAX_TEXT   (16u << 20)	/* bytes of GBNF text */
#define LG_GRAMMAR_MAX_NEST   256			/* nesting of ( ) groups */
#define LG_GRAMMAR_MAX_ELEMS  (4u << 20)	/* elements after parsing */
#define LG_GRAMMAR_MAX_REPEAT 1000000		/* bound in {m,n} */
/* Runtime limits: a step exceeding one is refused (the text is rejected). */
#define LG_GRAMMAR_MAX_DEPTH  1024			/* frames on one stack */
#define LG_GRAMMAR_MAX_STACKS 16384			/* stacks alive at once (ambiguity) */
#define LG_GRAMMAR_MAX_FRAMES (1u << 20)	/* frames in all stacks of a state (8 MiB) */
#define LG_GRAMMAR_MAX_EXPAND (1u << 16)	/* expansion steps for one byte (nested nullable repetitions) */
/*
 * Expansion steps for one mask (its walks and checks).  A grammar that needs
 * more (only pathological ones do) gets a mask with the tokens found so
 * far: a subset of the allowed ones, never an invalid token.
 */
#define LG_GRAMMAR_MAX_WALK   (1u << 20)

typedef struct lg_grammar lg_grammar;	/* immutable after parse; shared read-only by threads */

/*
 * GBNF as llama.cpp's grammars/README.md defines it; start rule "root".
 * Errors: LG_ERR_FORMAT, message "line L, column C: ..." (undefined rule
 * names it, etc.).
 *
 * Grammars are shared by text: parsing a text that a live or recently freed
 * grammar has returns that grammar again (reference counted), with the
 * token-mask caches it has built, so requests that repeat a schema start
 * warm.  lg_grammar_free releases one reference; up to
 * LG_GRAMMAR_KEEP_IDLE unreferenced grammars (LG_GRAMMAR_KEEP_BYTES of
 * caches in all) stay for reuse, least recently used dropped first.
 */
lg_grammar *lg_grammar_parse(const char *gbnf, size_t len, lg_error *err);
void		lg_grammar_free(lg_grammar *g);
/* Drop every unreferenced grammar kept for reuse (tests, benchmarks of cold caches). */
void		lg_grammar_drop_idle(void);

#define LG_GRAMMAR_KEEP_IDLE  16
#define LG_GRAMMAR_KEEP_BYTES ((size_t) 256 << 20)
/* Number of rules (named and generated) and elements, for diagnostics. */
void		lg_grammar_size(const lg_grammar *g, size_t *n_rules, size_t *n_elems);

typedef struct lg_grammar_vocab lg_grammar_vocab;	/* per model, immutable, shared by threads */

/*
 * Every token's output bytes (lg_token_to_piece, special=false); control
 * tokens have none and are never allowed, except end-of-generation tokens,
 * allowed exactly when the grammar is complete.
 */
lg_grammar_vocab *lg_grammar_vocab_new(const lg_vocab *v, lg_error *err);
void		lg_grammar_vocab_free(lg_grammar_vocab *gv);
int32_t		lg_grammar_vocab_n_tokens(const lg_grammar_vocab *gv);

typedef struct lg_grammar_matcher lg_grammar_matcher;	/* one sequence; one thread at a time */

/* gv may be NULL for a matcher used only with accept_bytes. */
lg_grammar_matcher *lg_grammar_matcher_new(const lg_grammar *g, const lg_grammar_vocab *gv, lg_error *err);
void		lg_grammar_matcher_free(lg_grammar_matcher *m);
void		lg_grammar_matcher_reset(lg_grammar_matcher *m);
/* mask has (n_vocab + 63) / 64 words; bit t set = token t may come next. */
void		lg_grammar_matcher_fill_mask(lg_grammar_matcher *m, uint64_t *mask);
/*
 * The same mask computed the slow way (a walk of the whole vocabulary from
 * the full state), for tests.  Returns false when a runtime limit was hit on
 * the way: those tokens are left out, as accept_token refuses them, but the
 * fast mask, which works on parts of the stacks, may then allow some of them.
 */
bool		lg_grammar_matcher_fill_mask_slow(lg_grammar_matcher *m, uint64_t *mask);

/*
 * Advance by one token; false and state unchanged when the grammar does not
 * allow it.  An EOG token is accepted exactly when complete.
 */
bool		lg_grammar_matcher_accept_token(lg_grammar_matcher *m, lg_token t);
/* Advance by raw bytes; false and state unchanged when not allowed. */
bool		lg_grammar_matcher_accept_bytes(lg_grammar_matcher *m, const char *s, size_t n);
bool		lg_grammar_matcher_is_complete(const lg_grammar_matcher *m);	/* root may end here */
bool		lg_grammar_matcher_can_continue(const lg_grammar_matcher *m);	/* some byte may follow */
/* Copy a's state into b (same grammar and vocabulary); false if out of memory. */
bool		lg_grammar_matcher_copy_state(lg_grammar_matcher *dst, const lg_grammar_matcher *src);

/* Cache counters of the (grammar, vocabulary) pair a matcher uses. */
typedef struct lg_grammar_cache_stats
{
	uint64_t	entries;		/* grammar positions with a cached token split */
	uint64_t	bytes;			/* memory those entries hold */
	uint64_t	hits;
	uint64_t	misses;			/* positions computed (a vocabulary walk each) */
	uint64_t	uncertain_checks;	/* tokens checked against a full stack */
	uint64_t	slow_fills;		/* masks computed by a full walk (partial UTF-8 pending, cache full) */
	uint64_t	recent_hits;	/* this matcher: masks reused because the state repeated exactly */
} lg_grammar_cache_stats;

void		lg_grammar_matcher_cache_stats(const lg_grammar_matcher *m, lg_grammar_cache_stats *st);

#endif							/* LG_GRAMMAR_H */
