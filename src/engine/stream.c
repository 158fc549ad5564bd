/*
 * stream.c — turning sampled tokens into streamed text (see stream.h).
 */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

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
	if (gp->max_tokens == 0)
		st->finish = LG_FINISH_LENGTH;
	return LG_OK;
}

void
lg_stream_free(lg_stream *st)
{
	free(st->ids);
	lg_buf_free(&st->text);
	memset(st, 0, sizeof(*st));
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
		return lg_error_set(err, LG_ERR_ARG, "every token is banned by the logit bias");
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
	if (st->n_ids == gp->max_tokens)
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
