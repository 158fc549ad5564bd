/*
 * stream.c — turning sampled tokens into streamed text (see stream.h).
 */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include "grammar.h"

/*
 * Bytes at the end of s[0..len) that start an incomplete UTF-8 sequence:
 * they are held back so a stream never splits a character.
 */
static size_t
utf8_incomplete_tail(const char *s, size_t len)
{
	for (size_t back = 1; back <= 3 && back <= len; back++)
	{
		unsigned char ch = (unsigned char) s[len - back];
		size_t		need;

		if ((ch & 0xC0) == 0x80)
			continue;			/* continuation byte: look further back */
		if (ch >= 0xF0)
			need = 4;
		else if (ch >= 0xE0)
			need = 3;
		else if (ch >= 0xC0)
			need = 2;
		else
			return 0;
		return need > back ? back : 0;
	}
	return 0;
}

lg_status
lg_stream_init(lg_stream *st, const lg_vocab *v, const lg_generate_params *gp, lg_error *err)
{
	memset(st, 0, sizeof(*st));
	lg_buf_init(&st->text);
	if (gp->max_tokens < 0)
		return lg_error_set(err, LG_ERR_ARG, "max_tokens must not be negative");
	st->vocab = v;
	st->gp = gp;
	st->ids = malloc(sizeof(lg_token) * ((size_t) gp->max_tokens + 1));
	/* an empty text is "" rather than NULL, so results always have a string */
	if (st->ids == NULL || !lg_buf_append(&st->text, "", 0))
	{
		lg_stream_free(st);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	}
	if (gp->grammar != NULL)
	{
		st->mask = calloc(((size_t) lg_vocab_n_tokens(v) + 63) / 64, sizeof(uint64_t));
		if (st->mask == NULL)
		{
			lg_stream_free(st);
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		}
		lg_grammar_matcher_reset(gp->grammar);
	}
	if (gp->max_tokens == 0)
		st->finish = LG_FINISH_LENGTH;
	return LG_OK;
}

void
lg_stream_free(lg_stream *st)
{
	free(st->ids);
	free(st->mask);
	lg_buf_free(&st->text);
	memset(st, 0, sizeof(*st));
}

/* The mask from the grammar, then the sampler's chain over the allowed tokens. */
lg_token
lg_stream_sample(lg_stream *st, lg_sampler *s, const float *logits, lg_sample_result *res)
{
	if (st->gp->grammar == NULL)
		return lg_sampler_sample(s, logits, res);
	lg_grammar_matcher_fill_mask(st->gp->grammar, st->mask);
	return lg_sampler_sample_masked(s, logits, st->mask, res);
}

/* Tokens the last mask allowed (only counted to explain a dead end). */
static int64_t
mask_count(const lg_stream *st)
{
	int64_t		n = 0;
	int32_t		n_words = (lg_vocab_n_tokens(st->vocab) + 63) / 64;

	for (int32_t k = 0; k < n_words; k++)
		n += __builtin_popcountll(st->mask[k]);
	return n;
}

/*
 * Nothing could be sampled.  A complete grammar just ends there (its end
 * token was not available); otherwise it is a dead end, reported rather
 * than looped on.
 */
static lg_status
no_token(lg_stream *st, lg_error *err)
{
	lg_grammar_matcher *g = st->gp->grammar;

	if (g == NULL)
		return lg_error_set(err, LG_ERR_ARG, "every token is banned by the logit bias");
	if (lg_grammar_matcher_is_complete(g))
	{
		st->finish = LG_FINISH_GRAMMAR;
		return LG_OK;
	}
	if (mask_count(st) == 0)
		return lg_error_set(err, LG_ERR_FORMAT,
							"the grammar reached a dead end after %d generated tokens: "
							"no token of the vocabulary can continue it",
							(int) st->n_ids);
	return lg_error_set(err, LG_ERR_ARG,
						"the logit bias bans every token the grammar allows after %d generated tokens",
						(int) st->n_ids);
}

lg_status
lg_stream_feed(lg_stream *st, lg_token t, lg_piece_fn on_piece, void *arg, lg_error *err)
{
	const lg_generate_params *gp = st->gp;
	char		piece[256];
	int32_t		plen;
	size_t		hold = 0;
	int64_t		stop_at;

	if (t == LG_TOKEN_NULL)
		return no_token(st, err);
	/* the mask allowed t, so this only fails if a caller bypassed it */
	if (gp->grammar != NULL && !lg_grammar_matcher_accept_token(gp->grammar, t))
		return lg_error_set(err, LG_ERR_INTERNAL, "token %d is not allowed by the grammar", (int) t);
	if (lg_vocab_is_eog(st->vocab, t))
	{
		if (gp->include_eog)
			st->ids[st->n_ids++] = t;
		st->finish = LG_FINISH_EOG;
		return LG_OK;
	}
	st->ids[st->n_ids++] = t;
	plen = lg_token_to_piece(st->vocab, t, piece, sizeof(piece), true);
	if (plen > (int32_t) sizeof(piece))
		plen = 0;				/* no real token is this long; drop rather than truncate */
	if (plen > 0 && !lg_buf_append(&st->text, piece, plen))
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");

	/* a stop string ends the text where it starts; otherwise hold back any partial match */
	stop_at = gp->n_stops > 0 ? lg_stop_find(st->text.data, st->text.len, gp->stops, gp->n_stops, &hold) : -1;
	if (stop_at >= 0)
	{
		st->text.len = (size_t) stop_at;
		st->text.data[st->text.len] = '\0';
		st->finish = LG_FINISH_STOP;
		return LG_OK;
	}
	else
	{
		size_t		ready = st->text.len - hold;

		ready -= utf8_incomplete_tail(st->text.data, ready);
		if (on_piece && ready >= st->emitted)
		{
			if (!on_piece(arg, st->text.data + st->emitted, ready - st->emitted))
			{
				st->finish = LG_FINISH_CANCELLED;
				return LG_OK;
			}
			st->emitted = ready;
		}
	}
	/* a complete sentence that nothing may extend: done, without waiting for EOG */
	if (gp->grammar != NULL && lg_grammar_matcher_is_complete(gp->grammar) &&
		!lg_grammar_matcher_can_continue(gp->grammar))
		st->finish = LG_FINISH_GRAMMAR;
	else if (st->n_ids == gp->max_tokens)
		st->finish = LG_FINISH_LENGTH;
	return LG_OK;
}

void
lg_stream_end(lg_stream *st, lg_finish_reason reason, lg_piece_fn on_piece, void *arg)
{
	if (st->finish == LG_FINISH_NONE)
		st->finish = reason;
	if (on_piece && st->finish != LG_FINISH_CANCELLED && st->text.len > st->emitted)
	{
		on_piece(arg, st->text.data + st->emitted, st->text.len - st->emitted);
		st->emitted = st->text.len;
	}
}
