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
} lg_stream;

/* Start an empty stream (finished at once, LG_FINISH_LENGTH, when max_tokens is 0). */
lg_status	lg_stream_init(lg_stream *st, const lg_vocab *v, const lg_generate_params *gp, lg_error *err);
void		lg_stream_free(lg_stream *st);

/*
 * Take one sampled token: record it, extend the text, look for stop strings
 * and stream what is certain through on_piece (may be NULL; called even
 * with nothing new, so it can cancel).  Sets st->finish when the token ends
 * the stream (EOG, stop string, max_tokens, on_piece returned false).
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
