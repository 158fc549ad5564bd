/*
 * generate.h — the generation loop shared by the CLI and the engine server:
 * evaluate the prompt, then sample and evaluate one token at a time until
 * max_tokens, an end-of-generation token, a stop string, the end of a
 * grammar, or cancellation.
 *
 * With a grammar (lg_generate_params.grammar), every step samples only
 * among the tokens the grammar allows next (grammar.h's mask), so the text
 * is always a prefix of a sentence of the grammar; an end-of-generation
 * token is allowed exactly when the grammar is complete, and generation
 * stops by itself (finish "stop") once the grammar is complete and no byte
 * can follow.  A grammar that allows no token while incomplete (a dead end:
 * it needs bytes no token can produce, or the logit bias banned every token
 * it allows) fails the generation with LG_ERR_FORMAT instead of looping.
 * Stop strings and max_tokens still apply and may cut the text short.
 */
#ifndef LG_GENERATE_H
#define LG_GENERATE_H

#include <stdint.h>
#include <stdbool.h>

#include "model.h"
#include "sampler.h"

/* grammar.h's matcher; declared here so this header does not need it */
typedef struct lg_grammar_matcher lg_grammar_matcher;

typedef enum lg_finish_reason
{
	LG_FINISH_NONE = 0,
	LG_FINISH_LENGTH,			/* max_tokens reached */
	LG_FINISH_EOG,				/* end-of-generation token */
	LG_FINISH_STOP,				/* a stop string matched */
	LG_FINISH_CONTEXT,			/* the context is full */
	LG_FINISH_CANCELLED,
	LG_FINISH_GRAMMAR,			/* the grammar is complete and cannot go on */
} lg_finish_reason;

const char *lg_finish_reason_name(lg_finish_reason r);	/* "length", "stop", … */

typedef struct lg_generate_params
{
	int32_t		max_tokens;
	const char *const *stops;	/* stop strings (not included in the text) */
	int32_t		n_stops;
	bool		include_eog;	/* keep the EOG token id in the ids list (not in text) */
	/*
	 * NULL, or a matcher that constrains the output (not owned; reset when
	 * the generation starts, advanced by every token).  The scheduler makes
	 * its own from lg_sched_request's grammar: leave this NULL there.
	 */
	lg_grammar_matcher *grammar;
} lg_generate_params;

/*
 * Called after every generated token with the new text that is certain not
 * to be part of a stop string (len may be 0: the callback is also the place
 * to check for cancellation).  Return false to cancel.
 */
typedef bool (*lg_piece_fn) (void *arg, const char *piece, size_t len);

typedef struct lg_generate_result
{
	lg_token   *ids;			/* generated ids (malloc'd; caller frees) */
	int32_t		n_ids;
	char	   *text;			/* generated text, NUL-terminated (malloc'd) */
	size_t		text_len;
	lg_finish_reason finish;
	int32_t		n_prompt;
	double		t_prompt_ms;
	double		t_gen_ms;
} lg_generate_result;

/*
 * Generate after the prompt.  The context is reset first.  on_piece may be
 * NULL.  The result's buffers are owned by the caller (lg_generate_result_free).
 */
lg_status	lg_generate(lg_context *c, lg_sampler *s, const lg_token *prompt, int32_t n_prompt,
						const lg_generate_params *gp, lg_piece_fn on_piece, void *arg,
						lg_generate_result *res, lg_error *err);
void		lg_generate_result_free(lg_generate_result *res);

#endif							/* LG_GENERATE_H */
