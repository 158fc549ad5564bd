/*
 * generate.h — the generation loop shared by the CLI and the engine server:
 * evaluate the prompt, then sample and evaluate one token at a time until
 * max_tokens, an end-of-generation token, a stop string, or cancellation.
 */
#ifndef LG_GENERATE_H
#define LG_GENERATE_H

#include <stdint.h>
#include <stdbool.h>

#include "model.h"
#include "sampler.h"

typedef enum lg_finish_reason
{
	LG_FINISH_NONE = 0,
	LG_FINISH_LENGTH,			/* max_tokens reached */
	LG_FINISH_EOG,				/* end-of-generation token */
	LG_FINISH_STOP,				/* a stop string matched */
	LG_FINISH_CONTEXT,			/* the context is full */
	LG_FINISH_CANCELLED,
} lg_finish_reason;

const char *lg_finish_reason_name(lg_finish_reason r);	/* "length", "stop", … */

typedef struct lg_generate_params
{
	int32_t		max_tokens;
	const char *const *stops;	/* stop strings (not included in the text) */
	int32_t		n_stops;
	bool		include_eog;	/* keep the EOG token id in the ids list (not in text) */
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
