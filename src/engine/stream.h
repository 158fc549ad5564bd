/*
 * stream.h — one sequence's generated text, token by token: the ids, the
 * text with stop strings and incomplete UTF-8 held back, end-of-generation,
 * max_tokens, and the finish reason.  lg_generate and the scheduler both
 * feed sampled tokens through it, so a request's output is the same however
 * it was run.
 */
#ifndef LG_STREAM_H
#define LG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "generate.h"
#include "json.h"
#include "vocab.h"

typedef struct lg_stream
{
	const lg_vocab *vocab;
	const lg_generate_params *gp;	/* not owned; must outlive the stream */
	lg_token   *ids;			/* [max_tokens + 1] generated ids */
	int32_t		n_ids;
	lg_buf		text;			/* generated text; a stop string cuts it */
	size_t		emitted;		/* bytes of text already passed to on_piece */
	lg_finish_reason finish;	/* LG_FINISH_NONE while it goes on */
	uint64_t   *mask;			/* with gp->grammar: [(n_vocab + 63) / 64] the last step's allowed tokens */
} lg_stream;

/*
 * Start an empty stream (finished at once, LG_FINISH_LENGTH, when max_tokens
 * is 0).  With gp->grammar the matcher is reset and a mask allocated, so
 * that no step allocates.
 */
lg_status	lg_stream_init(lg_stream *st, const lg_vocab *v, const lg_generate_params *gp, lg_error *err);
void		lg_stream_free(lg_stream *st);

/*
 * Sample the next token from logits: among the tokens gp->grammar allows
 * when there is one, else as lg_sampler_sample.  LG_TOKEN_NULL when no
 * token is allowed; lg_stream_feed turns that into the right ending.
 */
lg_token	lg_stream_sample(lg_stream *st, lg_sampler *s, const float *logits, lg_sample_result *res);

/*
 * Take one sampled token: record it, extend the text, advance the grammar,
 * look for stop strings and stream what is certain through on_piece (may be
 * NULL; called even with nothing new, so it can cancel).  Sets st->finish
 * when the token ends the stream (EOG, stop string, max_tokens, the grammar
 * complete with nothing that can follow, on_piece returned false).
 * LG_TOKEN_NULL (nothing allowed) is an error, except when a grammar is
 * complete: the stream then ends with LG_FINISH_GRAMMAR.
 */
lg_status	lg_stream_feed(lg_stream *st, lg_token t, lg_piece_fn on_piece, void *arg, lg_error *err);

/* True once a finish reason is set. */
static inline bool
lg_stream_done(const lg_stream *st)
{
	return st->finish != LG_FINISH_NONE;
}

/*
 * End the stream with reason (when not yet ended) and pass on_piece what
 * was held back — a partial stop string or character that never completed —
 * unless it was cancelled.
 */
void		lg_stream_end(lg_stream *st, lg_finish_reason reason, lg_piece_fn on_piece, void *arg);

#endif							/* LG_STREAM_H */
