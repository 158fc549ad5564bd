/*
 * generate.c — the generation loop: prompt, then sample/evaluate one token
 * at a time, streaming text that can no longer become part of a stop string.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

const char *
lg_finish_reason_name(lg_finish_reason r)
{
	switch (r)
	{
		case LG_FINISH_NONE: return "none";
		case LG_FINISH_LENGTH: return "length";
		case LG_FINISH_EOG: return "stop";
		case LG_FINISH_STOP: return "stop";
		case LG_FINISH_CONTEXT: return "length";
		case LG_FINISH_CANCELLED: return "cancelled";
	}
	return "unknown";
}

/* Milliseconds on the monotonic clock. */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

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

void
lg_generate_result_free(lg_generate_result *res)
{
	if (res == NULL)
		return;
	free(res->ids);
	free(res->text);
	memset(res, 0, sizeof(*res));
}

lg_status
lg_generate(lg_context *c, lg_sampler *s, const lg_token *prompt, int32_t n_prompt,
			const lg_generate_params *gp, lg_piece_fn on_piece, void *arg,
			lg_generate_result *res, lg_error *err)
{
	const lg_model *m = lg_context_model(c);
	const lg_vocab *v = m->vocab;
	int32_t		n_vocab = m->hp.n_vocab;
	float	   *logits = NULL;
	lg_buf		text;
	size_t		emitted = 0;
	lg_status	st = LG_OK;
	double		t0;

	memset(res, 0, sizeof(*res));
	lg_buf_init(&text);
	if (n_prompt <= 0)
		return lg_error_set(err, LG_ERR_ARG, "the prompt is empty");
	if (gp->max_tokens < 0)
		return lg_error_set(err, LG_ERR_ARG, "max_tokens must not be negative");
	logits = malloc(sizeof(float) * n_vocab);
	res->ids = malloc(sizeof(lg_token) * (gp->max_tokens + 1));
	if (logits == NULL || res->ids == NULL)
	{
		st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		goto done;
	}
	res->n_prompt = n_prompt;

	lg_context_reset(c);
	t0 = now_ms();
	st = lg_context_eval(c, prompt, n_prompt, logits, false, err);
	res->t_prompt_ms = now_ms() - t0;
	if (st != LG_OK)
		goto done;

	t0 = now_ms();
	res->finish = LG_FINISH_LENGTH;
	while (res->n_ids < gp->max_tokens)
	{
		lg_token	t = lg_sampler_sample(s, logits, NULL);
		char		piece[256];
		int32_t		plen;
		size_t		hold = 0;
		int64_t		stop_at;

		if (t == LG_TOKEN_NULL)
		{
			st = lg_error_set(err, LG_ERR_ARG, "every token is banned by the logit bias");
			goto done;
		}
		if (lg_vocab_is_eog(v, t))
		{
			if (gp->include_eog)
				res->ids[res->n_ids++] = t;
			res->finish = LG_FINISH_EOG;
			break;
		}
		res->ids[res->n_ids++] = t;
		plen = lg_token_to_piece(v, t, piece, sizeof(piece), true);
		if (plen > (int32_t) sizeof(piece))
			plen = 0;			/* no real token is this long; drop rather than truncate */
		if (plen > 0 && !lg_buf_append(&text, piece, plen))
		{
			st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
			goto done;
		}

		/* a stop string ends the text where it starts; otherwise hold back any partial match */
		stop_at = gp->n_stops > 0 ? lg_stop_find(text.data, text.len, gp->stops, gp->n_stops, &hold) : -1;
		if (stop_at >= 0)
		{
			text.len = (size_t) stop_at;
			text.data[text.len] = '\0';
			res->finish = LG_FINISH_STOP;
		}
		else
		{
			size_t		ready = text.len - hold;

			ready -= utf8_incomplete_tail(text.data, ready);
			if (on_piece && ready >= emitted)
			{
				if (!on_piece(arg, text.data + emitted, ready - emitted))
				{
					res->finish = LG_FINISH_CANCELLED;
					break;
				}
				emitted = ready;
			}
		}
		if (res->finish == LG_FINISH_STOP || res->n_ids == gp->max_tokens)
			break;
		if (lg_context_pos(c) >= lg_context_n_ctx(c))
		{
			res->finish = LG_FINISH_CONTEXT;
			break;
		}
		st = lg_context_eval(c, &t, 1, logits, false, err);
		if (st != LG_OK)
			goto done;
	}
	/* flush what was held back (a partial stop string or character that never completed) */
	if (on_piece && res->finish != LG_FINISH_CANCELLED && text.len > emitted)
		on_piece(arg, text.data + emitted, text.len - emitted);
	res->t_gen_ms = now_ms() - t0;

done:
	free(logits);
	if (st != LG_OK)
	{
		lg_buf_free(&text);
		lg_generate_result_free(res);
		return st;
	}
	if (text.data == NULL && !lg_buf_append(&text, "", 0))
	{
		lg_generate_result_free(res);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	}
	res->text = text.data;
	res->text_len = text.len;
	return LG_OK;
}
