/*
 * sampler.h — choosing the next token from logits.
 *
 * The order of steps is llama.cpp's (common_sampler_init with the default
 * sampler list): logit bias, penalties (repetition, presence, frequency over
 * the last penalty_last_n tokens), top-k, typical-p, top-p, min-p,
 * temperature, then a draw from the distribution with the sampler's own RNG
 * (so the same seed and inputs give the same output on every platform).
 * temperature == 0 is greedy (argmax of the biased and penalised logits; the
 * lowest id wins a tie).  Every truncation step keeps at least one token.
 *
 * Parameters, their defaults (lg_sampler_params_default) and the ranges
 * lg_sampler_params_check accepts; NaN and infinities are always rejected:
 *
 *   temperature        0.8    [0, 100]; 0 = greedy
 *   top_k              40     >= 0; 0 = off (values >= n_vocab are also off)
 *   top_p              0.95   [0, 1]; 1 = off
 *   min_p              0.05   [0, 1]; 0 = off
 *   typical_p          1      [0, 1]; 1 = off
 *   repeat_penalty     1      (0, 10]; 1 = off.  A logit l of a token seen in
 *                             the window becomes l / penalty if l > 0, else
 *                             l * penalty.
 *   frequency_penalty  0      [-2, 2]; subtracts count * penalty
 *   presence_penalty   0      [-2, 2]; subtracts penalty if count > 0
 *   penalty_last_n     64     [-1, 1048576]; the window of accepted tokens the
 *                             penalties look at; 0 = off, -1 = all history
 *   seed, has_seed     -      without has_seed the seed comes from the OS
 *                             (getrandom, else the clock); lg_sampler_seed
 *                             tells which seed was used
 *   logit_bias         none   tokens in [0, n_vocab) (checked by
 *                             lg_sampler_new); bias finite or -INFINITY (ban)
 *   n_probs            0      [0, 32]
 */
#ifndef LG_SAMPLER_H
#define LG_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "backend.h"
#include "lg_error.h"
#include "vocab.h"

#define LG_SAMPLER_MAX_PROBS 32
#define LG_SAMPLER_MAX_PENALTY_LAST_N (1 << 20)

typedef struct lg_logit_bias
{
	lg_token	token;
	float		bias;			/* added to the logit; -INFINITY bans the token */
} lg_logit_bias;

typedef struct lg_sampler_params
{
	float		temperature;	/* default 0.8; 0 greedy */
	int32_t		top_k;			/* default 40; 0 disables */
	float		top_p;			/* default 0.95; 1 disables */
	float		min_p;			/* default 0.05; 0 disables */
	float		typical_p;		/* default 1 (disabled) */
	float		repeat_penalty; /* default 1 (disabled) */
	float		presence_penalty;	/* default 0 */
	float		frequency_penalty;	/* default 0 */
	int32_t		penalty_last_n; /* default 64; -1 = whole history */
	uint64_t	seed;			/* used when has_seed */
	bool		has_seed;		/* else seeded from the OS */
	const lg_logit_bias *logit_bias;	/* not owned; copied by lg_sampler_new */
	int32_t		n_logit_bias;
	int32_t		n_probs;		/* >0: report this many top alternatives */
} lg_sampler_params;

/* One alternative in the reported distribution. */
typedef struct lg_token_prob
{
	lg_token	token;
	float		logprob;		/* log-softmax of the biased, penalised logits */
} lg_token_prob;

/*
 * What lg_sampler_sample reports.  Log-probabilities are the log-softmax of
 * the whole vocabulary after logit bias and penalties, before top-k/p,
 * min-p, typical-p and temperature: the model's distribution as the request
 * shaped it (what OpenAI-style logprobs mean), not the truncated one the
 * token was drawn from.  Banned tokens (-INFINITY) are never listed.
 */
typedef struct lg_sample_result
{
	lg_token	token;
	float		logprob;		/* of the chosen token */
	int32_t		n_top;			/* entries filled in top[] */
	lg_token_prob top[LG_SAMPLER_MAX_PROBS];	/* highest first (lowest id
												 * first on a tie); at most
												 * n_probs */
} lg_sample_result;

typedef struct lg_sampler lg_sampler;

void		lg_sampler_params_default(lg_sampler_params *p);
/* Check ranges (NaN, negative temperature, top_p outside [0,1], …). */
lg_status	lg_sampler_params_check(const lg_sampler_params *p, lg_error *err);
/* Checks p (and the logit bias tokens against n_vocab); NULL on error. */
lg_sampler *lg_sampler_new(const lg_sampler_params *p, int32_t n_vocab, lg_error *err);
void		lg_sampler_free(lg_sampler *s);
/* Forget the history (for penalties) and reseed (a fresh OS seed without has_seed). */
void		lg_sampler_reset(lg_sampler *s);
/* The seed of the current random stream (the OS one when has_seed was false). */
uint64_t	lg_sampler_seed(const lg_sampler *s);
/*
 * Record a token in the history without sampling it (prompt tokens are not
 * recorded by default).  Ids outside [0, n_vocab) are ignored.
 */
void		lg_sampler_accept(lg_sampler *s, lg_token t);

/*
 * Device sampling (lg_backend.sample) implements top-k, top-p, min-p and
 * temperature.  lg_sampler_device_ok: whether s uses nothing else (no logit
 * bias, no penalties, no typical-p).  lg_sampler_device_params fills *out
 * and, for temperature > 0, takes the draw's uniform from s's RNG as
 * lg_sampler_sample would, so a seed gives the same stream either way
 * (up to float rounding on the device).  After the device picked t, call
 * lg_sampler_accept(s, t).
 */
bool		lg_sampler_device_ok(const lg_sampler *s);
void		lg_sampler_device_params(lg_sampler *s, lg_device_sample *out);
/*
 * Pick the next token from n_vocab logits (not modified).  The chosen token
 * is accepted into the history.  res may be NULL.  NaN logits count as
 * -INFINITY.  Returns LG_TOKEN_NULL (and accepts nothing) only when every
 * token is banned, i.e. every logit is -INFINITY after bias and penalties.
 */
lg_token	lg_sampler_sample(lg_sampler *s, const float *logits, lg_sample_result *res);
/*
 * The same with a mask: bit t of allowed ((n_vocab + 63) / 64 words; NULL =
 * all) set means token t may be chosen; the others are banned before bias
 * and penalties, so log-probabilities are those of the allowed tokens
 * (the distribution the token is really drawn from).  LG_TOKEN_NULL when no
 * allowed token is left.  Allocates nothing.
 */
lg_token	lg_sampler_sample_masked(lg_sampler *s, const float *logits, const uint64_t *allowed,
									 lg_sample_result *res);

/*
 * Stop strings: lg_stop_find looks for any of the stop strings (NUL-terminated;
 * NULL or empty ones are ignored) in text, the generated text so far, byte
 * by byte.  Returns the offset where the earliest match starts, or -1.
 * *hold_back (may be NULL) is set to the length of the longest tail of text
 * that is a proper prefix of some stop string, so the caller holds that tail
 * back before streaming; it is 0 when a match was found.
 */
int64_t		lg_stop_find(const char *text, size_t len, const char *const *stops, int n_stops,
						 size_t *hold_back);

#endif							/* LG_SAMPLER_H */
