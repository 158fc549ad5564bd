/*
 * test_sampler.c — the sampler chain, step by step on small hand-made logit
 * vectors whose kept sets can be worked out on paper, and stop strings.
 */
#include "test_util.h"

#include <float.h>
#include <math.h>

#include "sampler.h"

#define N_DRAWS 2000

/* Parameters with every filter off, so one step can be switched on alone. */
static lg_sampler_params
plain_params(float temperature, uint64_t seed)
{
	lg_sampler_params p;

	lg_sampler_params_default(&p);
	p.temperature = temperature;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0.0f;
	p.typical_p = 1.0f;
	p.seed = seed;
	p.has_seed = true;
	return p;
}

/* A sampler that must be created without error. */
static lg_sampler *
new_sampler(const lg_sampler_params *p, int32_t n_vocab)
{
	lg_error	err;
	lg_sampler *s;

	lg_error_clear(&err);
	s = lg_sampler_new(p, n_vocab, &err);
	if (s == NULL)
		fail_msg("lg_sampler_new: %s", err.msg);
	return s;
}

/* Count how often each token is drawn in n draws. */
static void
draw_counts(lg_sampler *s, const float *logits, int n, int32_t n_vocab, int *counts)
{
	int			i;

	memset(counts, 0, sizeof(int) * (size_t) n_vocab);
	for (i = 0; i < n; i++)
	{
		lg_token	t = lg_sampler_sample(s, logits, NULL);

		assert_true(t >= 0 && t < n_vocab);
		counts[t]++;
	}
}

/* Sample n times and check that exactly the tokens in want[] appear (each at least once). */
static void
expect_kept_set(const lg_sampler_params *p, const float *logits, int32_t n_vocab,
				const bool *want)
{
	lg_sampler *s = new_sampler(p, n_vocab);
	int			counts[64];
	int32_t		i;

	assert_true(n_vocab <= 64);
	draw_counts(s, logits, N_DRAWS, n_vocab, counts);
	for (i = 0; i < n_vocab; i++)
	{
		if (want[i] && counts[i] == 0)
			fail_msg("token %d should be kept but was never drawn", (int) i);
		if (!want[i] && counts[i] != 0)
			fail_msg("token %d should be cut but was drawn %d times", (int) i, counts[i]);
	}
	lg_sampler_free(s);
}

/* Probabilities 0.5, 0.3, 0.15, 0.05 as logits, in a shuffled id order. */
static void
four_probs(float *logits)
{
	/* id 0 -> 0.15, id 1 -> 0.5, id 2 -> 0.05, id 3 -> 0.3 */
	logits[0] = logf(0.15f) + 3.0f;
	logits[1] = logf(0.5f) + 3.0f;
	logits[2] = logf(0.05f) + 3.0f;
	logits[3] = logf(0.3f) + 3.0f;
}

/* temperature 0 is the argmax; the lowest id wins a tie; NaN never wins. */
static void
test_greedy(void **state)
{
	lg_sampler_params p = plain_params(0.0f, 1);
	float		a[] = {0.1f, 2.0f, -1.0f, 1.9f};
	float		tie[] = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
	float		odd[] = {NAN, -INFINITY, 0.5f, NAN};
	lg_sampler *s;

	/* the default filters do not matter for greedy */
	p.top_k = 40;
	p.top_p = 0.5f;
	p.min_p = 0.05f;
	s = new_sampler(&p, 4);
	assert_int_equal(lg_sampler_sample(s, a, NULL), 1);
	assert_int_equal(lg_sampler_sample(s, odd, NULL), 2);
	lg_sampler_free(s);

	s = new_sampler(&p, 5);
	assert_int_equal(lg_sampler_sample(s, tie, NULL), 1);
	lg_sampler_free(s);
}

/* The same seed gives the same tokens; another seed other tokens; reset replays. */
static void
test_seed_reproducible(void **state)
{
	lg_sampler_params p = plain_params(1.0f, 1234);
	float		logits[50];
	lg_token	a[500];
	int			i;
	int			differ = 0;
	lg_sampler *s1;
	lg_sampler *s2;
	lg_sampler *s3;

	for (i = 0; i < 50; i++)
		logits[i] = (float) (i % 7) * 0.1f;
	s1 = new_sampler(&p, 50);
	s2 = new_sampler(&p, 50);
	p.seed = 1235;
	s3 = new_sampler(&p, 50);
	assert_true(lg_sampler_seed(s1) == 1234);
	for (i = 0; i < 500; i++)
	{
		a[i] = lg_sampler_sample(s1, logits, NULL);
		assert_int_equal(a[i], lg_sampler_sample(s2, logits, NULL));
		if (a[i] != lg_sampler_sample(s3, logits, NULL))
			differ++;
	}
	assert_true(differ > 400);	/* 50 near-equal choices: ~98% differ */
	lg_sampler_reset(s1);
	for (i = 0; i < 500; i++)
		assert_int_equal(a[i], lg_sampler_sample(s1, logits, NULL));
	lg_sampler_free(s1);
	lg_sampler_free(s2);
	lg_sampler_free(s3);

	/* without a seed two samplers get different OS seeds */
	p.has_seed = false;
	s1 = new_sampler(&p, 50);
	s2 = new_sampler(&p, 50);
	assert_true(lg_sampler_seed(s1) != lg_sampler_seed(s2));
	lg_sampler_free(s1);
	lg_sampler_free(s2);
}

/*
 * The exact tokens for seed 42: pins the generator (xoshiro256** seeded by
 * splitmix64) and the draw, so a platform or refactoring that changes
 * seeded output shows up here.
 */
static void
test_seed_golden(void **state)
{
	static const lg_token golden[16] = {
		2, 6, 8, 9, 9, 9, 8, 9, 9, 8, 8, 5, 9, 6, 8, 9
	};
	lg_sampler_params p = plain_params(1.0f, 42);
	float		logits[10];
	lg_sampler *s;
	int			i;

	for (i = 0; i < 10; i++)
		logits[i] = (float) i * 0.25f;
	s = new_sampler(&p, 10);
	for (i = 0; i < 16; i++)
		assert_int_equal(lg_sampler_sample(s, logits, NULL), golden[i]);
	lg_sampler_free(s);
}

/* top-k = 2 can only give the two best ids; ties go to the lower id. */
static void
test_top_k(void **state)
{
	lg_sampler_params p = plain_params(1.0f, 7);
	float		a[] = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f};
	bool		want_a[] = {false, true, false, false, true};
	float		tie[] = {2.0f, 1.0f, 2.0f, 2.0f};
	bool		want_tie[] = {true, false, true, false};

	p.top_k = 2;
	expect_kept_set(&p, a, 5, want_a);
	expect_kept_set(&p, tie, 4, want_tie);
	/* k >= n_vocab is no cut */
	p.top_k = 100;
	{
		bool		all[] = {true, true, true, true, true};

		expect_kept_set(&p, a, 5, all);
	}
}

/* top-k on a large vocabulary keeps exactly the k best (the heap selection). */
static void
test_top_k_large(void **state)
{
	enum
	{
		N = 20000, K = 10
	};
	lg_sampler_params p = plain_params(1.0f, 9);
	float	   *logits = malloc(sizeof(float) * N);
	float	   *sorted = malloc(sizeof(float) * N);
	uint64_t	rs = 99;
	float		kth;
	lg_sampler *s;
	int			i;
	int			j;

	for (i = 0; i < N; i++)
		logits[i] = sorted[i] = lg_test_randf(&rs) * 10.0f;
	/* the k-th largest by selection, to compare with */
	for (i = 0; i < K; i++)
		for (j = i + 1; j < N; j++)
			if (sorted[j] > sorted[i])
			{
				float		t = sorted[i];

				sorted[i] = sorted[j];
				sorted[j] = t;
			}
	kth = sorted[K - 1];
	p.top_k = K;
	s = new_sampler(&p, N);
	for (i = 0; i < 500; i++)
	{
		lg_token	t = lg_sampler_sample(s, logits, NULL);

		assert_true(logits[t] >= kth);
	}
	lg_sampler_free(s);
	free(logits);
	free(sorted);
}

/* top-p keeps the smallest set whose mass reaches p. */
static void
test_top_p(void **state)
{
	lg_sampler_params p = plain_params(1.0f, 11);
	float		l[4];
	bool		w07[] = {false, true, false, true};	/* 0.5 + 0.3 >= 0.7 */
	bool		w085[] = {true, true, false, true};	/* + 0.15 = 0.95 >= 0.85 */
	bool		w0[] = {false, true, false, false};	/* always one */
	bool		w1[] = {true, true, true, true};

	four_probs(l);
	p.top_p = 0.7f;
	expect_kept_set(&p, l, 4, w07);
	p.top_p = 0.85f;
	expect_kept_set(&p, l, 4, w085);
	p.top_p = 0.0f;
	expect_kept_set(&p, l, 4, w0);
	p.top_p = 1.0f;
	expect_kept_set(&p, l, 4, w1);
}

/*
 * top-p on a long flat list whose nucleus is longer than the sorted prefix
 * (256): 3000 equal logits, p = 0.4003 keeps 1201 tokens, the lowest ids.
 */
static void
test_top_p_long(void **state)
{
	enum
	{
		N = 3000
	};
	lg_sampler_params p = plain_params(1.0f, 13);
	float	   *logits = malloc(sizeof(float) * N);
	lg_sampler *s;
	lg_token	max_seen = 0;
	int			i;

	for (i = 0; i < N; i++)
		logits[i] = 0.0f;
	p.top_p = 0.4003f;
	s = new_sampler(&p, N);
	for (i = 0; i < 4000; i++)
	{
		lg_token	t = lg_sampler_sample(s, logits, NULL);

		assert_true(t >= 0 && t <= 1200);
		if (t > max_seen)
			max_seen = t;
	}
	assert_true(max_seen > 256);
	lg_sampler_free(s);

	/* a peaked one at the end: the nucleus is only it (inside the prefix) */
	logits[N - 1] = 20.0f;
	s = new_sampler(&p, N);
	for (i = 0; i < 200; i++)
		assert_int_equal(lg_sampler_sample(s, logits, NULL), N - 1);
	lg_sampler_free(s);
	free(logits);
}

/* Order for the reference nucleus: higher logit first, then lower id. */
static const float *ref_logits;

/* qsort comparator for the reference nucleus. */
static int
ref_cmp(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	if (ref_logits[x] != ref_logits[y])
		return ref_logits[x] > ref_logits[y] ? -1 : 1;
	return x - y;
}

/*
 * top-p with top-k off on 4000 varied logits: the nucleus (about a third of
 * the list) is found by the weighted selection; every draw must be in the
 * nucleus a plain sort gives, and the excluded half of the mass is never hit.
 */
static void
test_top_p_select(void **state)
{
	enum
	{
		N = 4000
	};
	lg_sampler_params p = plain_params(1.0f, 15);
	float	   *logits = malloc(sizeof(float) * N);
	float	   *prob = malloc(sizeof(float) * N);
	int		   *order = malloc(sizeof(int) * N);
	bool	   *kept = calloc(N, sizeof(bool));
	uint64_t	rs = 77;
	float		m = -INFINITY;
	double		sum = 0.0;
	double		cum = 0.0;
	int			cut = 0;
	int			distinct = 0;
	lg_sampler *s;
	int			i;

	for (i = 0; i < N; i++)
	{
		logits[i] = lg_test_randf(&rs) * 3.0f;
		if (logits[i] > m)
			m = logits[i];
		order[i] = i;
	}
	for (i = 0; i < N; i++)
		sum += prob[i] = expf(logits[i] - m);
	for (i = 0; i < N; i++)
		prob[i] = (float) (prob[i] / sum);
	ref_logits = logits;
	qsort(order, N, sizeof(int), ref_cmp);
	while (cum < 0.5)
		cum += prob[order[cut++]];
	/* not a borderline instance: the last kept token matters */
	assert_true(cum - prob[order[cut - 1]] < 0.5 - 1e-5 && cum > 0.5 + 1e-5);
	assert_true(cut > 256);
	for (i = 0; i < cut; i++)
		kept[order[i]] = true;

	p.top_p = 0.5f;
	s = new_sampler(&p, N);
	for (i = 0; i < 4000; i++)
	{
		lg_token	t = lg_sampler_sample(s, logits, NULL);

		if (!kept[t])
			fail_msg("token %d (rank outside the %d-token nucleus) drawn", (int) t, cut);
		if (kept[t] && prob[t] >= 0.0f)
		{
			prob[t] = -1.0f;	/* mark as seen */
			distinct++;
		}
	}
	assert_true(distinct > cut / 2);
	lg_sampler_free(s);
	free(logits);
	free(prob);
	free(order);
	free(kept);
}

/* min-p keeps p >= min_p * p_max. */
static void
test_min_p(void **state)
{
	lg_sampler_params p = plain_params(1.0f, 17);
	float		l[4];
	bool		w025[] = {true, true, false, true};	/* >= 0.125 */
	bool		w05[] = {false, true, false, true};	/* >= 0.25 */
	bool		w07[] = {false, true, false, false};	/* >= 0.35 */
	bool		w1[] = {false, true, false, false};

	four_probs(l);
	p.min_p = 0.25f;
	expect_kept_set(&p, l, 4, w025);
	p.min_p = 0.5f;
	expect_kept_set(&p, l, 4, w05);
	p.min_p = 0.7f;
	expect_kept_set(&p, l, 4, w07);
	p.min_p = 1.0f;
	expect_kept_set(&p, l, 4, w1);
}

/*
 * typical-p.  Entropy of (0.5, 0.3, 0.15, 0.05) is 1.1421; |-ln p - H| is
 * 0.449, 0.062, 0.755, 1.854, so the order is p=0.3, 0.5, 0.15, 0.05 and
 * typical_p = 0.2 keeps only the 0.3 token, not the most likely one.
 */
static void
test_typical_p(void **state)
{
	lg_sampler_params p = plain_params(1.0f, 19);
	float		l[4];
	bool		w02[] = {false, false, false, true};
	bool		w05[] = {false, true, false, true};	/* 0.3 + 0.5 > 0.5 */
	bool		w085[] = {true, true, false, true};	/* + 0.15 > 0.85 */

	four_probs(l);
	p.typical_p = 0.2f;
	expect_kept_set(&p, l, 4, w02);
	p.typical_p = 0.5f;
	expect_kept_set(&p, l, 4, w05);
	p.typical_p = 0.85f;
	expect_kept_set(&p, l, 4, w085);
}

/* The steps chain: top-k 3 then min-p 0.4 of what is left. */
static void
test_chain(void **state)
{
	lg_sampler_params p = plain_params(1.0f, 21);
	float		l[4];
	bool		want[] = {false, true, false, true};

	four_probs(l);
	p.top_k = 3;				/* keeps 0.5, 0.3, 0.15 */
	p.min_p = 0.4f;				/* of those, >= 0.2 */
	expect_kept_set(&p, l, 4, want);
}

/* Chi-square of counts against expected probabilities. */
static double
chi_square(const int *counts, const double *prob, int n, int total)
{
	double		x = 0.0;
	int			i;

	for (i = 0; i < n; i++)
	{
		double		e = prob[i] * total;

		x += (counts[i] - e) * (counts[i] - e) / e;
	}
	return x;
}

/*
 * Temperature: logits 0, ln 2, ln 4 give p proportional to 1, 2^(1/T),
 * 4^(1/T).  20000 draws; chi-square with 2 degrees of freedom must stay
 * under 13.8 (p = 0.001).  A sampler that ignored T would be far off.
 */
static void
test_temperature(void **state)
{
	static const float temps[] = {1.0f, 2.0f, 0.5f};
	float		l[3] = {0.0f, logf(2.0f), logf(4.0f)};
	int			k;

	for (k = 0; k < 3; k++)
	{
		lg_sampler_params p = plain_params(temps[k], 23 + k);
		lg_sampler *s = new_sampler(&p, 3);
		double		prob[3];
		double		sum = 0.0;
		int			counts[3];
		int			i;
		double		x;

		for (i = 0; i < 3; i++)
			sum += prob[i] = pow(2.0, i / (double) temps[k]);
		for (i = 0; i < 3; i++)
			prob[i] /= sum;
		draw_counts(s, l, 20000, 3, counts);
		x = chi_square(counts, prob, 3, 20000);
		if (x > 13.8)
			fail_msg("temperature %g: chi-square %.2f (counts %d %d %d)", (double) temps[k], x,
					 counts[0], counts[1], counts[2]);
		lg_sampler_free(s);
	}
}

/* Log-probs of all n_vocab tokens, read back as the post-penalty logits up to a constant. */
static void
logits_seen(lg_sampler *s, const float *logits, int32_t n_vocab, float *out)
{
	lg_sample_result r;
	int			i;

	lg_sampler_sample(s, logits, &r);
	assert_int_equal(r.n_top, n_vocab);
	for (i = 0; i < n_vocab; i++)
		out[r.top[i].token] = r.top[i].logprob;
}

/*
 * Penalties change logits by exactly the formula: l/rp if l > 0 else l*rp,
 * minus count*freq, minus presence when count > 0.
 */
static void
test_penalties(void **state)
{
	lg_sampler_params p = plain_params(0.0f, 1);
	float		l[4] = {2.0f, -1.0f, 0.5f, 1.0f};
	float		seen[4];
	lg_sampler *s;

	p.repeat_penalty = 1.5f;
	p.frequency_penalty = 0.25f;
	p.presence_penalty = 0.5f;
	p.penalty_last_n = -1;
	p.n_probs = 4;
	s = new_sampler(&p, 4);
	lg_sampler_accept(s, 0);
	lg_sampler_accept(s, 0);
	lg_sampler_accept(s, 1);
	lg_sampler_accept(s, 99);	/* out of range: ignored */
	logits_seen(s, l, 4, seen);
	/* relative to token 3 (never seen, logit 1.0) */
	assert_float_equal(seen[0] - seen[3], (2.0f / 1.5f - 2 * 0.25f - 0.5f) - 1.0f, 1e-5);
	assert_float_equal(seen[1] - seen[3], (-1.0f * 1.5f - 0.25f - 0.5f) - 1.0f, 1e-5);
	assert_float_equal(seen[2] - seen[3], 0.5f - 1.0f, 1e-5);

	/* greedy picked token 3 and accepted it, so it is penalised now */
	logits_seen(s, l, 4, seen);
	assert_float_equal(seen[3] - seen[2], (1.0f / 1.5f - 0.25f - 0.5f) - 0.5f, 1e-5);

	/* reset forgets the history */
	lg_sampler_reset(s);
	logits_seen(s, l, 4, seen);
	assert_float_equal(seen[0] - seen[3], 1.0f, 1e-5);
	lg_sampler_free(s);

	/* a window of 2: of 0, 0, 1 only 0 and 1 count, once each */
	p.penalty_last_n = 2;
	s = new_sampler(&p, 4);
	lg_sampler_accept(s, 0);
	lg_sampler_accept(s, 0);
	lg_sampler_accept(s, 1);
	logits_seen(s, l, 4, seen);
	assert_float_equal(seen[0] - seen[2], (2.0f / 1.5f - 0.25f - 0.5f) - 0.5f, 1e-5);
	assert_float_equal(seen[1] - seen[2], (-1.5f - 0.25f - 0.5f) - 0.5f, 1e-5);
	/* token 3 was sampled and pushed 0 out: window is 1, 3 */
	logits_seen(s, l, 4, seen);
	assert_float_equal(seen[0] - seen[2], 2.0f - 0.5f, 1e-5);
	lg_sampler_free(s);

	/* window 0: no penalties at all */
	p.penalty_last_n = 0;
	s = new_sampler(&p, 4);
	lg_sampler_accept(s, 0);
	logits_seen(s, l, 4, seen);
	assert_float_equal(seen[0] - seen[2], 1.5f, 1e-5);
	lg_sampler_free(s);
}

/*
 * The bias comes before the penalties, as in llama.cpp: a seen token with
 * logit 1, bias +2 and repeat penalty 2 ends at (1 + 2) / 2 = 1.5, not
 * 1 / 2 + 2 = 2.5.
 */
static void
test_bias_before_penalty(void **state)
{
	lg_sampler_params p = plain_params(0.0f, 1);
	float		l[2] = {1.0f, 0.0f};
	lg_logit_bias bias[] = {{0, 2.0f}};
	float		seen[2];
	lg_sampler *s;

	p.repeat_penalty = 2.0f;
	p.logit_bias = bias;
	p.n_logit_bias = 1;
	p.n_probs = 2;
	s = new_sampler(&p, 2);
	lg_sampler_accept(s, 0);
	logits_seen(s, l, 2, seen);
	assert_float_equal(seen[0] - seen[1], 1.5f, 1e-5);
	lg_sampler_free(s);
}

/* The repetition penalty can flip the greedy choice. */
static void
test_penalty_changes_choice(void **state)
{
	lg_sampler_params p = plain_params(0.0f, 1);
	float		l[3] = {3.0f, 2.5f, 0.0f};
	lg_sampler *s;

	p.repeat_penalty = 1.5f;
	s = new_sampler(&p, 3);
	assert_int_equal(lg_sampler_sample(s, l, NULL), 0);	/* 3.0 */
	assert_int_equal(lg_sampler_sample(s, l, NULL), 1);	/* 3.0/1.5 = 2 < 2.5 */
	assert_int_equal(lg_sampler_sample(s, l, NULL), 0);	/* 2.0 vs 2.5/1.5 */
	lg_sampler_free(s);
}

/* A -INFINITY bias bans a token; a finite one shifts it. */
static void
test_logit_bias(void **state)
{
	lg_sampler_params p = plain_params(0.0f, 1);
	float		l[3] = {5.0f, 1.0f, 1.0f};
	lg_logit_bias ban[] = {{0, -INFINITY}};
	lg_logit_bias push[] = {{2, 2.5f}};
	lg_logit_bias all[] = {{0, -INFINITY}, {1, -INFINITY}, {2, -INFINITY}};
	bool		want[] = {false, true, true};
	lg_sample_result r;
	lg_sampler *s;

	p.logit_bias = ban;
	p.n_logit_bias = 1;
	s = new_sampler(&p, 3);
	assert_int_equal(lg_sampler_sample(s, l, NULL), 1);
	lg_sampler_free(s);
	p.temperature = 1.0f;
	expect_kept_set(&p, l, 3, want);

	p.temperature = 0.0f;
	p.logit_bias = push;
	s = new_sampler(&p, 3);
	assert_int_equal(lg_sampler_sample(s, l, NULL), 0);	/* 3.5 < 5 */
	lg_sampler_free(s);
	push[0].bias = 4.5f;
	s = new_sampler(&p, 3);
	assert_int_equal(lg_sampler_sample(s, l, NULL), 2);	/* 5.5 > 5 */
	lg_sampler_free(s);
	push[0].bias = 4.0f;		/* 5 == 5: the lower id wins */
	s = new_sampler(&p, 3);
	assert_int_equal(lg_sampler_sample(s, l, NULL), 0);
	lg_sampler_free(s);

	/* every token banned: no token, greedy or not */
	p.logit_bias = all;
	p.n_logit_bias = 3;
	p.n_probs = 3;
	s = new_sampler(&p, 3);
	assert_int_equal(lg_sampler_sample(s, l, &r), LG_TOKEN_NULL);
	assert_int_equal(r.token, LG_TOKEN_NULL);
	assert_int_equal(r.n_top, 0);
	lg_sampler_free(s);
	p.temperature = 1.0f;
	s = new_sampler(&p, 3);
	assert_int_equal(lg_sampler_sample(s, l, NULL), LG_TOKEN_NULL);
	lg_sampler_free(s);
}

/*
 * Log-probs are the log-softmax of the whole (biased) vocabulary, before
 * truncation and temperature: they sum to 1, are sorted, and do not depend
 * on top-k or temperature.
 */
static void
test_logprobs(void **state)
{
	lg_sampler_params p = plain_params(0.5f, 31);
	float		l[8] = {0.3f, -1.2f, 2.2f, 0.0f, 1.7f, -0.4f, 2.2f, 0.9f};
	double		lse = 0.0;
	lg_sample_result r;
	lg_sampler *s;
	double		sum = 0.0;
	int			i;

	for (i = 0; i < 8; i++)
		lse += exp(l[i]);
	lse = log(lse);
	p.top_k = 2;
	p.n_probs = 8;
	s = new_sampler(&p, 8);
	lg_sampler_sample(s, l, &r);
	assert_int_equal(r.n_top, 8);
	assert_true(r.token == 2 || r.token == 6);	/* top-k 2 */
	for (i = 0; i < 8; i++)
	{
		sum += exp(r.top[i].logprob);
		assert_float_equal(r.top[i].logprob, l[r.top[i].token] - lse, 1e-5);
		if (i > 0)
			assert_true(r.top[i].logprob <= r.top[i - 1].logprob);
	}
	assert_float_equal(sum, 1.0, 1e-5);
	/* equal logits: the lower id first */
	assert_int_equal(r.top[0].token, 2);
	assert_int_equal(r.top[1].token, 6);
	assert_float_equal(r.logprob, l[r.token] - lse, 1e-5);
	lg_sampler_free(s);

	/* fewer alternatives than tokens, and none at all */
	p.n_probs = 3;
	s = new_sampler(&p, 8);
	lg_sampler_sample(s, l, &r);
	assert_int_equal(r.n_top, 3);
	assert_int_equal(r.top[2].token, 4);
	lg_sampler_free(s);
	p.n_probs = 0;
	s = new_sampler(&p, 8);
	lg_sampler_sample(s, l, &r);
	assert_int_equal(r.n_top, 0);
	assert_float_equal(r.logprob, l[r.token] - lse, 1e-5);
	lg_sampler_free(s);
}

/* Steps with their most extreme settings still keep one token: the argmax. */
static void
test_min_keep(void **state)
{
	lg_sampler_params p = plain_params(1.0f, 37);
	float		l[4];
	lg_sampler *s;
	int			i;

	four_probs(l);
	p.top_k = 1;
	p.top_p = 0.0f;
	p.min_p = 1.0f;
	s = new_sampler(&p, 4);
	for (i = 0; i < 200; i++)
		assert_int_equal(lg_sampler_sample(s, l, NULL), 1);
	lg_sampler_free(s);
	p = plain_params(1.0f, 37);
	p.typical_p = 0.0f;
	s = new_sampler(&p, 4);
	for (i = 0; i < 200; i++)
		assert_int_equal(lg_sampler_sample(s, l, NULL), 3);
	lg_sampler_free(s);
}

/* Extreme logits (+inf, huge, tiny temperature) give a valid token, not NaN trouble. */
static void
test_extreme_logits(void **state)
{
	lg_sampler_params p = plain_params(0.01f, 41);
	float		l[4] = {FLT_MAX, -FLT_MAX, INFINITY, 1e30f};
	lg_sample_result r;
	lg_sampler *s;
	int			i;

	p.n_probs = 4;
	s = new_sampler(&p, 4);
	for (i = 0; i < 50; i++)
	{
		lg_token	t = lg_sampler_sample(s, l, &r);

		assert_true(t == 0 || t == 2);
		assert_false(isnan(r.logprob));
	}
	lg_sampler_free(s);
}

/* A 150k vocabulary with the default chain runs (the common path). */
static void
test_large_vocab_default(void **state)
{
	enum
	{
		N = 150000
	};
	lg_sampler_params p;
	float	   *l = malloc(sizeof(float) * N);
	uint64_t	rs = 5;
	lg_sample_result r;
	lg_sampler *s;
	int			i;

	lg_sampler_params_default(&p);
	p.has_seed = true;
	p.n_probs = 5;
	p.repeat_penalty = 1.1f;
	for (i = 0; i < N; i++)
		l[i] = lg_test_randf(&rs) * 8.0f;
	s = new_sampler(&p, N);
	for (i = 0; i < 100; i++)
	{
		lg_token	t = lg_sampler_sample(s, l, &r);

		assert_true(t >= 0 && t < N);
		assert_int_equal(r.n_top, 5);
	}
	/* top-k off: top-p and min-p on the whole list */
	lg_sampler_free(s);
	p.top_k = 0;
	s = new_sampler(&p, N);
	for (i = 0; i < 20; i++)
		assert_true(lg_sampler_sample(s, l, NULL) >= 0);
	lg_sampler_free(s);
	free(l);
}

/* Each bad parameter is rejected with a message naming it. */
static void
test_params_check(void **state)
{
	lg_sampler_params p;
	lg_error	err;
	lg_logit_bias bad_tok[] = {{-1, 1.0f}};
	lg_logit_bias bad_nan[] = {{3, NAN}};
	lg_logit_bias bad_inf[] = {{3, INFINITY}};
	lg_logit_bias big_tok[] = {{10, -INFINITY}};
	lg_sampler *s;
	int			n = 0;

#define BAD(field_, value_, name_) \
	do { \
		lg_sampler_params_default(&p); \
		p.field_ = value_; \
		lg_error_clear(&err); \
		assert_int_equal(lg_sampler_params_check(&p, &err), LG_ERR_ARG); \
		assert_int_equal(err.status, LG_ERR_ARG); \
		if (strstr(err.msg, name_) == NULL) \
			fail_msg("message for %s: %s", name_, err.msg); \
		assert_null(lg_sampler_new(&p, 10, NULL)); \
		n++; \
	} while (0)

	lg_sampler_params_default(&p);
	assert_int_equal(lg_sampler_params_check(&p, NULL), LG_OK);
	assert_null(lg_sampler_new(&p, 0, NULL));

	BAD(temperature, NAN, "temperature");
	BAD(temperature, INFINITY, "temperature");
	BAD(temperature, -0.1f, "temperature");
	BAD(temperature, 100.5f, "temperature");
	BAD(top_p, NAN, "top_p");
	BAD(top_p, 1.01f, "top_p");
	BAD(top_p, -0.01f, "top_p");
	BAD(min_p, -INFINITY, "min_p");
	BAD(min_p, 1.5f, "min_p");
	BAD(typical_p, 2.0f, "typical_p");
	BAD(top_k, -1, "top_k");
	BAD(repeat_penalty, 0.0f, "repeat_penalty");
	BAD(repeat_penalty, 10.5f, "repeat_penalty");
	BAD(repeat_penalty, NAN, "repeat_penalty");
	BAD(presence_penalty, 2.5f, "presence_penalty");
	BAD(frequency_penalty, -2.5f, "frequency_penalty");
	BAD(frequency_penalty, NAN, "frequency_penalty");
	BAD(penalty_last_n, -2, "penalty_last_n");
	BAD(penalty_last_n, LG_SAMPLER_MAX_PENALTY_LAST_N + 1, "penalty_last_n");
	BAD(n_probs, -1, "n_probs");
	BAD(n_probs, 33, "n_probs");

	lg_sampler_params_default(&p);
	p.n_logit_bias = 1;
	assert_int_equal(lg_sampler_params_check(&p, &err), LG_ERR_ARG);
	p.logit_bias = bad_tok;
	assert_int_equal(lg_sampler_params_check(&p, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "-1"));
	p.logit_bias = bad_nan;
	assert_int_equal(lg_sampler_params_check(&p, &err), LG_ERR_ARG);
	p.logit_bias = bad_inf;
	assert_int_equal(lg_sampler_params_check(&p, &err), LG_ERR_ARG);
	/* a token past the vocabulary is only known to be bad when n_vocab is */
	p.logit_bias = big_tok;
	assert_int_equal(lg_sampler_params_check(&p, &err), LG_OK);
	assert_null(lg_sampler_new(&p, 10, &err));
	assert_int_equal(err.status, LG_ERR_RANGE);
	s = lg_sampler_new(&p, 11, &err);
	assert_non_null(s);
	lg_sampler_free(s);
	assert_int_equal(n, 21);
#undef BAD
}

/* Defaults are what the header says. */
static void
test_defaults(void **state)
{
	lg_sampler_params p;

	lg_sampler_params_default(&p);
	assert_float_equal(p.temperature, 0.8, 1e-7);
	assert_int_equal(p.top_k, 40);
	assert_float_equal(p.top_p, 0.95, 1e-7);
	assert_float_equal(p.min_p, 0.05, 1e-7);
	assert_float_equal(p.typical_p, 1.0, 0);
	assert_float_equal(p.repeat_penalty, 1.0, 0);
	assert_int_equal(p.penalty_last_n, 64);
	assert_false(p.has_seed);
	assert_int_equal(p.n_probs, 0);
}

/* Shorthand: lg_stop_find over a C string. */
static int64_t
stop_find(const char *text, const char *const *stops, int n, size_t *hold)
{
	return lg_stop_find(text, strlen(text), stops, n, hold);
}

/* Stop strings: earliest match, overlapping stops, hold-back, UTF-8. */
/*
 * A mask bans exactly what a -INFINITY logit bias on the same tokens bans:
 * greedy and seeded draws (default chain) agree token for token, over a
 * vocabulary that is not a multiple of 64 and masks with empty, full and
 * mixed words; an empty mask gives LG_TOKEN_NULL.
 */
static void
test_masked(void **state)
{
	enum
	{
		NV = 1000, NW = (NV + 63) / 64
	};
	static float logits[NV];
	static lg_logit_bias bans[NV];
	uint64_t	mask[NW];
	uint64_t	rng = 7;

	for (int i = 0; i < NV; i++)
		logits[i] = 3.0f * lg_test_randf(&rng);
	for (int round = 0; round < 6; round++)
	{
		int			n_bans = 0;

		memset(mask, 0, sizeof(mask));
		for (int i = 0; i < NV; i++)
		{
			/* word 0 all allowed, word 1 none, the rest sparse and mixed */
			bool		allowed = i < 64 ? round != 5 : i < 128 ? false : (lg_test_randf(&rng) > 0.7f);

			if (round == 4)
				allowed = i == 999;
			if (allowed)
				mask[i / 64] |= 1ULL << (i % 64);
			else
			{
				bans[n_bans].token = i;
				bans[n_bans].bias = -INFINITY;
				n_bans++;
			}
		}
		for (int greedy = 0; greedy < 2; greedy++)
		{
			lg_sampler_params p;
			lg_sampler_params pb;
			lg_sampler *a;
			lg_sampler *b;

			lg_sampler_params_default(&p);
			p.temperature = greedy ? 0.0f : 1.0f;
			p.seed = 100 + (uint64_t) round;
			p.has_seed = true;
			pb = p;
			pb.logit_bias = bans;
			pb.n_logit_bias = n_bans;
			a = new_sampler(&p, NV);
			b = new_sampler(&pb, NV);
			for (int k = 0; k < 50; k++)
			{
				lg_sample_result ra;
				lg_sample_result rb;
				lg_token	ta = lg_sampler_sample_masked(a, logits, mask, &ra);
				lg_token	tb = lg_sampler_sample(b, logits, &rb);

				assert_int_equal(ta, tb);
				assert_true(ta >= 0 && (mask[ta / 64] >> (ta % 64)) & 1);
				assert_float_equal(ra.logprob, rb.logprob, 1e-6);
			}
			lg_sampler_free(a);
			lg_sampler_free(b);
		}
	}
	{
		lg_sampler_params p = plain_params(1.0f, 1);
		lg_sampler *s = new_sampler(&p, NV);

		memset(mask, 0, sizeof(mask));
		assert_int_equal(lg_sampler_sample_masked(s, logits, mask, NULL), LG_TOKEN_NULL);
		/* NULL means no mask */
		assert_true(lg_sampler_sample_masked(s, logits, NULL, NULL) >= 0);
		lg_sampler_free(s);
	}
}

static void
test_stop_find(void **state)
{
	const char *wor[] = {"wor"};
	const char *two[] = {"END", "STOP"};
	const char *ovl[] = {"bcd", "abc"};
	const char *ovl2[] = {"cd", "abcd"};
	const char *world[] = {"world"};
	const char *pre[] = {"b c", "ab x"};
	const char *aab[] = {"aab"};
	const char *odd[] = {NULL, "", "x"};
	const char *jp[] = {"日本語"};
	const char *hon[] = {"本"};
	const char *go[] = {"語"};
	size_t		hold = 99;

	assert_int_equal(stop_find("Hello world", wor, 1, &hold), 6);
	assert_int_equal(hold, 0);
	assert_int_equal(stop_find("abc STOP xyz END", two, 2, &hold), 4);
	assert_int_equal(stop_find("abc END xyz STOP", two, 2, &hold), 4);
	assert_int_equal(stop_find("xxabcd", ovl, 2, &hold), 2);
	assert_int_equal(stop_find("xxabcd", ovl2, 2, &hold), 2);
	/* a whole stop at the very end is a match, not a hold */
	assert_int_equal(stop_find("Hello world", world, 1, &hold), 6);
	assert_int_equal(hold, 0);

	assert_int_equal(stop_find("Hello wo", world, 1, &hold), -1);
	assert_int_equal(hold, 2);
	assert_int_equal(stop_find("Hello w", world, 1, &hold), -1);
	assert_int_equal(hold, 1);
	assert_int_equal(stop_find("Hello", world, 1, &hold), -1);
	assert_int_equal(hold, 0);
	assert_int_equal(stop_find("wor", world, 1, &hold), -1);
	assert_int_equal(hold, 3);	/* the whole text */
	assert_int_equal(stop_find("ab", pre, 2, &hold), -1);
	assert_int_equal(hold, 2);	/* the longest over all stops */
	assert_int_equal(stop_find("aaa", aab, 1, &hold), -1);
	assert_int_equal(hold, 2);
	assert_int_equal(stop_find("aab", aab, 1, &hold), 0);

	/* NULL and empty stops are ignored */
	assert_int_equal(stop_find("abc", odd, 3, &hold), -1);
	assert_int_equal(hold, 0);
	assert_int_equal(stop_find("abx", odd, 3, NULL), 2);
	assert_int_equal(lg_stop_find("abc", 3, NULL, 0, &hold), -1);
	assert_int_equal(lg_stop_find(NULL, 0, wor, 1, &hold), -1);
	assert_int_equal(hold, 0);
	/* bytes after a NUL are still searched */
	assert_int_equal(lg_stop_find("a\0wor", 5, wor, 1, &hold), 2);

	/* UTF-8: byte offsets and byte hold-backs, even mid-character */
	assert_int_equal(stop_find("naïve 日本", jp, 1, &hold), -1);
	assert_int_equal(hold, 6);
	assert_int_equal(stop_find("naïve 日本語です", jp, 1, &hold), 7);
	assert_int_equal(stop_find("naïve 日本", hon, 1, &hold), 10);
	assert_int_equal(lg_stop_find("x\xE8", 2, go, 1, &hold), -1);
	assert_int_equal(hold, 1);
}

/* Run the sampler tests. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_masked),
		cmocka_unit_test(test_seed_reproducible),
		cmocka_unit_test(test_seed_golden),
		cmocka_unit_test(test_top_k),
		cmocka_unit_test(test_top_k_large),
		cmocka_unit_test(test_top_p),
		cmocka_unit_test(test_top_p_long),
		cmocka_unit_test(test_top_p_select),
		cmocka_unit_test(test_min_p),
		cmocka_unit_test(test_typical_p),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_temperature),
		cmocka_unit_test(test_penalties),
		cmocka_unit_test(test_penalty_changes_choice),
		cmocka_unit_test(test_bias_before_penalty),
		cmocka_unit_test(test_logit_bias),
		cmocka_unit_test(test_logprobs),
		cmocka_unit_test(test_min_keep),
		cmocka_unit_test(test_extreme_logits),
		cmocka_unit_test(test_large_vocab_default),
		cmocka_unit_test(test_params_check),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_stop_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
