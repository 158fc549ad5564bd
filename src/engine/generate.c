/*
 * generate.c — the generation loop: prompt, then sample/evaluate one token
 * at a time, streaming text that can no longer become part of a stop string.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "stream.h"

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
		case LG_FINISH_GRAMMAR: return "stop";
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
	float	   *logits = NULL;
	lg_stream	st;
	lg_status	rc;
	double		t0;

	memset(res, 0, sizeof(*res));
	if (n_prompt <= 0)
		return lg_error_set(err, LG_ERR_ARG, "the prompt is empty");
	rc = lg_stream_init(&st, m->vocab, gp, err);
	if (rc != LG_OK)
		return rc;
	logits = malloc(sizeof(float) * m->hp.n_vocab);
	if (logits == NULL)
	{
		rc = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		goto done;
	}
	res->n_prompt = n_prompt;

	lg_context_reset(c);
	t0 = now_ms();
	rc = lg_context_eval(c, prompt, n_prompt, logits, false, err);
	res->t_prompt_ms = now_ms() - t0;
	if (rc != LG_OK)
		goto done;

	t0 = now_ms();
	while (!lg_stream_done(&st))
	{
		lg_token	t = lg_stream_sample(&st, s, logits, NULL);

		rc = lg_stream_feed(&st, t, on_piece, arg, err);
		if (rc != LG_OK)
			goto done;
		if (lg_stream_done(&st))
			break;
		if (lg_context_pos(c) >= lg_context_n_ctx(c))
		{
			st.finish = LG_FINISH_CONTEXT;
			break;
		}
		rc = lg_context_eval(c, &t, 1, logits, false, err);
		if (rc != LG_OK)
			goto done;
	}
	lg_stream_end(&st, LG_FINISH_LENGTH, on_piece, arg);
	res->t_gen_ms = now_ms() - t0;

done:
	free(logits);
	if (rc != LG_OK)
	{
		lg_stream_free(&st);
		return rc;
	}
	/* hand the stream's buffers to the result */
	res->ids = st.ids;
	res->n_ids = st.n_ids;
	res->text = st.text.data;
	res->text_len = st.text.len;
	res->finish = st.finish;
	return LG_OK;
}
