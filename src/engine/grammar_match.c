/*
 * grammar_match.c — the matcher: one sequence's grammar state, advanced by
 * bytes or tokens, and queried for completion.
 */
#include "grammar_impl.h"

#include <stdlib.h>
#include <string.h>

lg_grammar_matcher *
lg_grammar_matcher_new(const lg_grammar *g, const lg_grammar_vocab *gv, lg_error *err)
{
	lg_grammar_matcher *m;

	if (g == NULL)
	{
		lg_error_set(err, LG_ERR_ARG, "grammar matcher needs a grammar");
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		goto nomem;
	m->g = g;
	m->gv = gv;
	if (gv != NULL)
	{
		m->n_levels = gv->max_len + 2;
		m->levels = calloc(m->n_levels, sizeof(lg_gstate));
		m->esc = calloc(m->n_levels, sizeof(uint64_t));
		m->work = malloc((LG_GRAMMAR_MAX_DEPTH + 2) * sizeof(lg_gframe));
		m->bits = malloc(((size_t) gv->n_tokens + 63) / 64 * sizeof(uint64_t));
		if (m->levels == NULL || m->esc == NULL || m->work == NULL || m->bits == NULL)
			goto nomem;
		for (uint32_t i = 0; i < m->n_levels; i++)
		{
			m->levels[i].work = m->work;
			m->levels[i].work_borrowed = true;
		}
	}
	if (!lg_gstate_start(g, &m->state))
	{
		lg_grammar_matcher_free(m);
		lg_error_set(err, LG_ERR_RANGE, "grammar start state exceeds the matcher's limits (%d frames, %d stacks)",
					 LG_GRAMMAR_MAX_DEPTH, LG_GRAMMAR_MAX_STACKS);
		return NULL;
	}
	return m;
nomem:
	lg_grammar_matcher_free(m);
	lg_error_set(err, LG_ERR_NOMEM, "out of memory creating a grammar matcher");
	return NULL;
}

void
lg_grammar_matcher_free(lg_grammar_matcher *m)
{
	if (m == NULL)
		return;
	lg_gstate_free(&m->state);
	lg_gstate_free(&m->tmp[0]);
	lg_gstate_free(&m->tmp[1]);
	if (m->levels != NULL)
		for (uint32_t i = 0; i < m->n_levels; i++)
			lg_gstate_free(&m->levels[i]);
	for (int i = 0; i < LG_GRAMMAR_RECENT; i++)
	{
		lg_gstate_free(&m->recent[i].state);
		free(m->recent[i].mask);
	}
	free(m->levels);
	free(m->esc);
	lg_gstate_free(&m->resumed);
	free(m->memo);
	free(m->whole);
	free(m->work);
	free(m->bits);
	free(m);
}

void
lg_grammar_matcher_reset(lg_grammar_matcher *m)
{
	lg_gstate_start(m->g, &m->state);
}

bool
lg_grammar_matcher_accept_bytes(lg_grammar_matcher *m, const char *s, size_t n)
{
	lg_gstate  *res,
				t;

	if (n == 0)
		return true;
	res = lg_gstate_run_bytes(m->g, &m->state, s, n, &m->tmp[0], &m->tmp[1]);
	if (res == NULL)
		return false;
	/* the result becomes the state; the old state becomes scratch */
	t = m->state;
	m->state = *res;
	*res = t;
	return true;
}

bool
lg_grammar_matcher_accept_token(lg_grammar_matcher *m, lg_token t)
{
	const lg_grammar_vocab *gv = m->gv;
	uint32_t	n;

	if (gv == NULL || t < 0 || t >= gv->n_tokens)
		return false;
	if (gv->is_eog[t])
		return lg_gstate_complete(&m->state);
	n = gv->piece_off[t + 1] - gv->piece_off[t];
	if (n == 0)
		return false;
	return lg_grammar_matcher_accept_bytes(m, gv->pieces + gv->piece_off[t], n);
}

bool
lg_grammar_matcher_is_complete(const lg_grammar_matcher *m)
{
	return lg_gstate_complete(&m->state);
}

bool
lg_grammar_matcher_can_continue(const lg_grammar_matcher *m)
{
	return lg_gstate_can_continue(m->g, &m->state);
}

bool
lg_grammar_matcher_copy_state(lg_grammar_matcher *dst, const lg_grammar_matcher *src)
{
	if (dst->g != src->g)
		return false;
	return lg_gstate_copy(&dst->state, &src->state);
}
