/*
 * sampler.c — choosing the next token from logits.
 *
 * One call of lg_sampler_sample walks llama.cpp's default chain over a
 * scratch copy of the logits: logit bias and penalties on the whole
 * vocabulary, then (unless greedy) the truncation steps on a candidate list
 * and a draw with the sampler's own xoshiro256** generator.  The common path
 * (top-k on) is O(n_vocab): top-k is a heap selection and only the k kept
 * candidates are sorted.
 */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

/*
 * When top-p runs on an unsorted list this large (top-k off), sort only the
 * best TOP_P_PREFIX first: the nucleus is nearly always inside it.
 */
#define TOP_P_SORT_ALL_BELOW 1024
#define TOP_P_PREFIX 256

/* One entry of the candidate list the truncation steps work on. */
typedef struct lg_cand
{
	lg_token	id;
	float		logit;
	float		p;				/* probability, where a step computed it */
	float		key;			/* typical-p: distance from the entropy */
} lg_cand;

struct lg_sampler
{
	lg_sampler_params p;		/* p.logit_bias points at bias */
	lg_logit_bias *bias;		/* [p.n_logit_bias], our copy */
	int32_t		n_vocab;

	uint64_t	seed;			/* seed of the current stream */
	uint64_t	rng[4];			/* xoshiro256** state */

	/* penalties; counts is NULL when they are off */
	int32_t    *counts;			/* [n_vocab] occurrences in the window */
	lg_token   *ring;			/* [penalty_last_n] the window, when > 0 */
	int32_t		ring_head;		/* oldest entry */
	int32_t		ring_len;

	float	   *work;			/* [n_vocab] penalised, biased logits */
	lg_cand    *cand;			/* [n_vocab] candidate list */
};

/* splitmix64 step: spreads a 64-bit seed over the xoshiro state. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Rotate left; k is in 1..63. */
static inline uint64_t
rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna): small, fast, same sequence everywhere. */
static uint64_t
rng_next(uint64_t s[4])
{
	uint64_t	result = rotl64(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform double in [0, 1) from the top 53 bits. */
static double
rng_uniform(uint64_t s[4])
{
	return (double) (rng_next(s) >> 11) * 0x1.0p-53;
}

/* A seed from the OS, or from the clocks when getrandom is unavailable. */
static uint64_t
os_seed(const void *salt)
{
	uint64_t	v;
	struct timespec ts;
	uint64_t	x;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t) sizeof(v))
		return v;
	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	x ^= rotl64((uint64_t) ts.tv_nsec, 32) ^ (uint64_t) (uintptr_t) salt;
	return splitmix64(&x);
}

/* Start the stream: the given seed, or a fresh one from the OS. */
static void
sampler_seed(lg_sampler *s)
{
	uint64_t	x;
	int			i;

	s->seed = s->p.has_seed ? s->p.seed : os_seed(s);
	x = s->seed;
	for (i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
}

/* The defaults listed in sampler.h (llama.cpp's common defaults). */
void
lg_sampler_params_default(lg_sampler_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->typical_p = 1.0f;
	p->repeat_penalty = 1.0f;
	p->presence_penalty = 0.0f;
	p->frequency_penalty = 0.0f;
	p->penalty_last_n = 64;
	p->seed = 0;
	p->has_seed = false;
	p->logit_bias = NULL;
	p->n_logit_bias = 0;
	p->n_probs = 0;
}

/* Check that a float parameter is finite and in [lo, hi]. */
static lg_status
check_range(float v, const char *name, float lo, float hi, lg_error *err)
{
	if (!isfinite(v))
		return lg_error_set(err, LG_ERR_ARG, "%s must be a finite number", name);
	if (v < lo || v > hi)
		return lg_error_set(err, LG_ERR_ARG, "%s must be between %g and %g, got %g",
							name, (double) lo, (double) hi, (double) v);
	return LG_OK;
}

/* Reject NaN, infinities and values outside the ranges in sampler.h. */
lg_status
lg_sampler_params_check(const lg_sampler_params *p, lg_error *err)
{
	lg_status	st;
	int32_t		i;

	if (p == NULL)
		return lg_error_set(err, LG_ERR_ARG, "sampler parameters missing");
	if ((st = check_range(p->temperature, "temperature", 0.0f, 100.0f, err)) != LG_OK ||
		(st = check_range(p->top_p, "top_p", 0.0f, 1.0f, err)) != LG_OK ||
		(st = check_range(p->min_p, "min_p", 0.0f, 1.0f, err)) != LG_OK ||
		(st = check_range(p->typical_p, "typical_p", 0.0f, 1.0f, err)) != LG_OK ||
		(st = check_range(p->presence_penalty, "presence_penalty", -2.0f, 2.0f, err)) != LG_OK ||
		(st = check_range(p->frequency_penalty, "frequency_penalty", -2.0f, 2.0f, err)) != LG_OK)
		return st;
	if (!isfinite(p->repeat_penalty))
		return lg_error_set(err, LG_ERR_ARG, "repeat_penalty must be a finite number");
	if (p->repeat_penalty <= 0.0f || p->repeat_penalty > 10.0f)
		return lg_error_set(err, LG_ERR_ARG,
							"repeat_penalty must be greater than 0 and at most 10, got %g",
							(double) p->repeat_penalty);
	if (p->top_k < 0)
		return lg_error_set(err, LG_ERR_ARG, "top_k must be 0 (off) or positive, got %d",
							(int) p->top_k);
	if (p->penalty_last_n < -1 || p->penalty_last_n > LG_SAMPLER_MAX_PENALTY_LAST_N)
		return lg_error_set(err, LG_ERR_ARG,
							"penalty_last_n must be -1 (all), 0 (off) or at most %d, got %d",
							LG_SAMPLER_MAX_PENALTY_LAST_N, (int) p->penalty_last_n);
	if (p->n_probs < 0 || p->n_probs > LG_SAMPLER_MAX_PROBS)
		return lg_error_set(err, LG_ERR_ARG, "n_probs must be between 0 and %d, got %d",
							LG_SAMPLER_MAX_PROBS, (int) p->n_probs);
	if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && p->logit_bias == NULL))
		return lg_error_set(err, LG_ERR_ARG, "logit bias list is invalid");
	for (i = 0; i < p->n_logit_bias; i++)
	{
		const lg_logit_bias *b = &p->logit_bias[i];

		if (b->token < 0)
			return lg_error_set(err, LG_ERR_ARG, "logit bias token %d is negative",
								(int) b->token);
		/* -INFINITY is the documented way to ban; +INFINITY would make every logit tie */
		if (isnan(b->bias) || b->bias == INFINITY)
			return lg_error_set(err, LG_ERR_ARG,
								"logit bias of token %d must be a finite number or -infinity",
								(int) b->token);
	}
	return LG_OK;
}

/* True when any penalty can change a logit. */
static bool
penalties_active(const lg_sampler_params *p)
{
	return p->penalty_last_n != 0 &&
		(p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f ||
		 p->frequency_penalty != 0.0f);
}

/* Allocate the sampler and all its scratch up front, so sampling never allocates. */
lg_sampler *
lg_sampler_new(const lg_sampler_params *p, int32_t n_vocab, lg_error *err)
{
	lg_sampler *s;
	int32_t		i;

	if (lg_sampler_params_check(p, err) != LG_OK)
		return NULL;
	if (n_vocab <= 0)
	{
		lg_error_set(err, LG_ERR_ARG, "vocabulary size must be positive, got %d", (int) n_vocab);
		return NULL;
	}
	for (i = 0; i < p->n_logit_bias; i++)
	{
		if (p->logit_bias[i].token >= n_vocab)
		{
			lg_error_set(err, LG_ERR_RANGE,
						 "logit bias token %d is outside the vocabulary (%d tokens)",
						 (int) p->logit_bias[i].token, (int) n_vocab);
			return NULL;
		}
	}

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto nomem;
	s->p = *p;
	s->n_vocab = n_vocab;
	s->p.logit_bias = NULL;
	if (p->n_logit_bias > 0)
	{
		s->bias = malloc(sizeof(lg_logit_bias) * (size_t) p->n_logit_bias);
		if (s->bias == NULL)
			goto nomem;
		memcpy(s->bias, p->logit_bias, sizeof(lg_logit_bias) * (size_t) p->n_logit_bias);
		s->p.logit_bias = s->bias;
	}
	if (penalties_active(p))
	{
		s->counts = calloc((size_t) n_vocab, sizeof(int32_t));
		if (s->counts == NULL)
			goto nomem;
		if (p->penalty_last_n > 0)
		{
			s->ring = malloc(sizeof(lg_token) * (size_t) p->penalty_last_n);
			if (s->ring == NULL)
				goto nomem;
		}
	}
	s->work = malloc(sizeof(float) * (size_t) n_vocab);
	s->cand = malloc(sizeof(lg_cand) * (size_t) n_vocab);
	if (s->work == NULL || s->cand == NULL)
		goto nomem;
	sampler_seed(s);
	return s;

nomem:
	lg_sampler_free(s);
	lg_error_set(err, LG_ERR_NOMEM, "out of memory allocating a sampler for %d tokens",
				 (int) n_vocab);
	return NULL;
}

/* Free the sampler (NULL is fine). */
void
lg_sampler_free(lg_sampler *s)
{
	if (s == NULL)
		return;
	free(s->bias);
	free(s->counts);
	free(s->ring);
	free(s->work);
	free(s->cand);
	free(s);
}

/* Forget the penalty window and restart the random stream. */
void
lg_sampler_reset(lg_sampler *s)
{
	if (s->counts)
		memset(s->counts, 0, sizeof(int32_t) * (size_t) s->n_vocab);
	s->ring_head = 0;
	s->ring_len = 0;
	sampler_seed(s);
}

/* The seed of the current stream, to report or replay it. */
uint64_t
lg_sampler_seed(const lg_sampler *s)
{
	return s->seed;
}

/* Push a token into the penalty window, dropping the oldest when it is full. */
void
lg_sampler_accept(lg_sampler *s, lg_token t)
{
	int32_t		cap = s->p.penalty_last_n;

	if (s->counts == NULL || t < 0 || t >= s->n_vocab)
		return;
	if (cap < 0)
	{
		/* whole history: counts alone are enough, nothing ever leaves */
		if (s->counts[t] < INT32_MAX)
			s->counts[t]++;
		return;
	}
	if (s->ring_len == cap)
	{
		s->counts[s->ring[s->ring_head]]--;
		s->ring[s->ring_head] = t;
		s->ring_head = (s->ring_head + 1) % cap;
	}
	else
	{
		s->ring[(s->ring_head + s->ring_len) % cap] = t;
		s->ring_len++;
	}
	s->counts[t]++;
}

/* Keep +INFINITY from turning into NaN later (inf - inf): clamp it. */
static inline float
clamp_logit(float x)
{
	if (isnan(x))
		return -INFINITY;
	if (x > FLT_MAX)
		return FLT_MAX;
	return x;
}

/*
 * Copy the logits of the allowed tokens (bit t of allowed) into w and ban
 * the others.  Grammar masks are mostly all-zero or all-one words, so a
 * whole word is handled at once; only mixed words are walked bit by bit.
 */
static void
copy_allowed(float *w, const float *logits, int32_t n, const uint64_t *allowed)
{
	int32_t		n_words = (n + 63) / 64;

	for (int32_t k = 0; k < n_words; k++)
	{
		uint64_t	word = allowed[k];
		int32_t		base = k * 64;
		int32_t		end = base + 64 < n ? base + 64 : n;

		if (word == 0)
			for (int32_t i = base; i < end; i++)
				w[i] = -INFINITY;
		else if (word == UINT64_MAX)
			for (int32_t i = base; i < end; i++)
				w[i] = clamp_logit(logits[i]);
		else
			for (int32_t i = base; i < end; i++)
				w[i] = (word >> (i - base)) & 1 ? clamp_logit(logits[i]) : -INFINITY;
	}
}

/*
 * Copy the logits into s->work, then add the logit bias and apply the
 * penalties, in llama.cpp's order (common_sampler_init puts the bias first),
 * so a penalised token with a bias is (l + bias) / repeat_penalty.
 */
static void
prepare_logits(lg_sampler *s, const float *logits, const uint64_t *allowed)
{
	float	   *w = s->work;
	int32_t		n = s->n_vocab;
	int32_t		i;

	if (allowed == NULL)
		for (i = 0; i < n; i++)
			w[i] = clamp_logit(logits[i]);
	else
		copy_allowed(w, logits, n, allowed);

	for (i = 0; i < s->p.n_logit_bias; i++)
	{
		const lg_logit_bias *b = &s->bias[i];

		w[b->token] = clamp_logit(w[b->token] + b->bias);
	}

	/* a scan of counts is O(n_vocab) like the copy, and needs no token list */
	if (s->counts)
	{
		float		rp = s->p.repeat_penalty;
		float		freq = s->p.frequency_penalty;
		float		pres = s->p.presence_penalty;

		for (i = 0; i < n; i++)
		{
			int32_t		c = s->counts[i];
			float		x;

			if (c == 0)
				continue;
			x = w[i];
			x = x > 0.0f ? x / rp : x * rp;
			x -= (float) c * freq + pres;
			w[i] = clamp_logit(x);
		}
	}
}

/* Candidate order: higher logit first, then lower id, so ties are deterministic. */
static inline bool
cand_better(const lg_cand *a, const lg_cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* qsort comparator for cand_better order. */
static int
cand_cmp_logit(const void *a, const void *b)
{
	const lg_cand *x = a;
	const lg_cand *y = b;

	if (cand_better(x, y))
		return -1;
	if (cand_better(y, x))
		return 1;
	return 0;
}

/* qsort comparator for typical-p: smallest key first, then logit order. */
static int
cand_cmp_key(const void *a, const void *b)
{
	const lg_cand *x = a;
	const lg_cand *y = b;

	if (x->key < y->key)
		return -1;
	if (x->key > y->key)
		return 1;
	return cand_cmp_logit(a, b);
}

/* Restore the heap below i; the root of the heap is the worst candidate. */
static void
cand_sift_down(lg_cand *h, int32_t n, int32_t i)
{
	for (;;)
	{
		int32_t		l = 2 * i + 1;
		int32_t		r = l + 1;
		int32_t		w = i;
		lg_cand		t;

		if (l < n && cand_better(&h[w], &h[l]))
			w = l;
		if (r < n && cand_better(&h[w], &h[r]))
			w = r;
		if (w == i)
			return;
		t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

/*
 * Move the best k of c[0..n) to the front, sorted; the rest is left in some
 * order.  A heap of the k best seen so far: most candidates are rejected by
 * one comparison with its root, so this is O(n) in practice, O(n log k) at
 * worst, and never a sort of the whole vocabulary.
 */
static void
cand_select_top(lg_cand *c, int32_t n, int32_t k)
{
	int32_t		i;

	if (k >= n)
	{
		qsort(c, (size_t) n, sizeof(lg_cand), cand_cmp_logit);
		return;
	}
	for (i = k / 2 - 1; i >= 0; i--)
		cand_sift_down(c, k, i);
	for (i = k; i < n; i++)
	{
		if (cand_better(&c[i], &c[0]))
		{
			lg_cand		t = c[0];

			c[0] = c[i];
			c[i] = t;
			cand_sift_down(c, k, 0);
		}
	}
	qsort(c, (size_t) k, sizeof(lg_cand), cand_cmp_logit);
}

/* Largest logit of the list. */
static float
cand_max_logit(const lg_cand *c, int32_t n, bool sorted)
{
	float		m = c[0].logit;
	int32_t		i;

	if (sorted)
		return m;
	for (i = 1; i < n; i++)
		if (c[i].logit > m)
			m = c[i].logit;
	return m;
}

/* Fill c[].p with the softmax of the logits (temperature 1). */
static void
cand_softmax(lg_cand *c, int32_t n, bool sorted)
{
	float		m = cand_max_logit(c, n, sorted);
	double		sum = 0.0;
	int32_t		i;

	for (i = 0; i < n; i++)
	{
		c[i].p = expf(c[i].logit - m);
		sum += c[i].p;
	}
	for (i = 0; i < n; i++)
		c[i].p = (float) (c[i].p / sum);
}

/*
 * Typical sampling (Meister et al.): keep the tokens whose surprise is
 * closest to the entropy until their mass exceeds typical_p.  Leaves the
 * list in order of that distance, as llama.cpp does.
 */
static int32_t
apply_typical(lg_cand *c, int32_t n, float typical_p, bool *sorted)
{
	double		entropy = 0.0;
	double		cum = 0.0;
	int32_t		i;

	if (!*sorted)
		qsort(c, (size_t) n, sizeof(lg_cand), cand_cmp_logit);
	cand_softmax(c, n, true);
	for (i = 0; i < n; i++)
		if (c[i].p > 0.0f)
			entropy -= c[i].p * log(c[i].p);
	for (i = 0; i < n; i++)
		c[i].key = c[i].p > 0.0f ? fabsf(-logf(c[i].p) - (float) entropy) : INFINITY;
	qsort(c, (size_t) n, sizeof(lg_cand), cand_cmp_key);
	*sorted = false;
	for (i = 0; i < n; i++)
	{
		cum += c[i].p;
		if (cum > typical_p)
			return i + 1;
	}
	return n;
}

/*
 * Move the smallest prefix (in cand_better order) of c[0..n) whose mass
 * reaches target to the front, in no particular order, and return its
 * length (n if the mass never reaches it).  A quickselect weighted by
 * probability: O(n) expected where a sort would be O(n log n) on a 150k
 * list; after 64 rounds (bad pivots) it sorts what is left instead.
 */
static int32_t
cand_select_mass(lg_cand *c, int32_t n, double target)
{
	int32_t		lo = 0;			/* c[0..lo) is in the prefix; target is what it lacks */
	int32_t		hi = n;			/* the prefix ends in (lo, hi] */
	int			rounds = 0;
	double		cum = 0.0;
	int32_t		i;

	while (hi - lo > 16 && rounds++ < 64)
	{
		int32_t		mid = lo + (hi - lo) / 2;
		int32_t		piv;
		int32_t		store = lo;
		double		mass = 0.0;
		lg_cand		pv;
		lg_cand		t;

		/* median of three as pivot, moved to the end */
		if (cand_better(&c[lo], &c[mid]) == cand_better(&c[mid], &c[hi - 1]))
			piv = mid;
		else if (cand_better(&c[mid], &c[lo]) == cand_better(&c[lo], &c[hi - 1]))
			piv = lo;
		else
			piv = hi - 1;
		pv = c[piv];
		c[piv] = c[hi - 1];
		c[hi - 1] = pv;
		for (i = lo; i < hi - 1; i++)
		{
			if (cand_better(&c[i], &pv))
			{
				t = c[i];
				c[i] = c[store];
				c[store] = t;
				mass += c[store].p;
				store++;
			}
		}
		c[hi - 1] = c[store];
		c[store] = pv;
		if (mass >= target)
			hi = store;
		else if (mass + pv.p >= target)
			return store + 1;
		else
		{
			target -= mass + pv.p;
			lo = store + 1;
		}
	}
	qsort(c + lo, (size_t) (hi - lo), sizeof(lg_cand), cand_cmp_logit);
	for (i = lo; i < hi; i++)
	{
		cum += c[i].p;
		if (cum >= target)
			return i + 1;
	}
	return hi;
}

/*
 * Nucleus (top-p): keep the most likely tokens until their mass reaches
 * top_p.  A long unsorted list (top-k off) gets only its best TOP_P_PREFIX
 * sorted, which usually holds the nucleus; if not, the rest of the nucleus
 * is found by a weighted selection rather than a sort of the vocabulary.
 */
static int32_t
apply_top_p(lg_cand *c, int32_t n, float top_p, bool *sorted)
{
	double		cum = 0.0;
	int32_t		k = n;
	int32_t		i;

	cand_softmax(c, n, *sorted);
	if (!*sorted)
	{
		k = n < TOP_P_SORT_ALL_BELOW ? n : TOP_P_PREFIX;
		cand_select_top(c, n, k);
		*sorted = true;
	}
	for (i = 0; i < k; i++)
	{
		cum += c[i].p;
		if (cum >= top_p)
			return i + 1;
	}
	if (k == n)
		return n;
	/* c[0..k) are the k best, so the nucleus continues among c[k..n) */
	*sorted = false;
	return k + cand_select_mass(c + k, n - k, top_p - cum);
}

/*
 * min-p: keep tokens with p >= min_p * p_max, i.e. logit >= max + log(min_p).
 * Works on an unsorted list and keeps its order.
 */
static int32_t
apply_min_p(lg_cand *c, int32_t n, float min_p, bool sorted)
{
	float		min_logit = cand_max_logit(c, n, sorted) + logf(min_p);
	int32_t		i;
	int32_t		j = 0;

	for (i = 0; i < n; i++)
		if (c[i].logit >= min_logit)
			c[j++] = c[i];
	return j;					/* the maximum always passes, so j >= 1 */
}

/* Apply the temperature, softmax, and draw one candidate. */
static lg_token
draw(lg_sampler *s, lg_cand *c, int32_t n, bool sorted)
{
	float		m = cand_max_logit(c, n, sorted);
	float		temp = s->p.temperature;
	double		sum = 0.0;
	double		target;
	double		run = 0.0;
	int32_t		i;

	/* subtracting the maximum before dividing keeps a small temperature from overflowing */
	for (i = 0; i < n; i++)
	{
		c[i].p = expf((c[i].logit - m) / temp);
		sum += c[i].p;
	}
	target = rng_uniform(s->rng) * sum;
	for (i = 0; i < n; i++)
	{
		run += c[i].p;
		/* strict: a zero-probability candidate is never chosen */
		if (run > target)
			return c[i].id;
	}
	/* rounding left target at the very end: take the last candidate with mass */
	for (i = n - 1; i > 0; i--)
		if (c[i].p > 0.0f)
			break;
	return c[i].id;
}

/*
 * The best k finite logits of s->work into s->cand, sorted; returns how
 * many (fewer than k when fewer are finite).  Reads the logits directly, so
 * the common path never builds a candidate list of the whole vocabulary.
 */
static int32_t
select_top_k(lg_sampler *s, int32_t k)
{
	lg_cand    *h = s->cand;
	const float *w = s->work;
	int32_t		m = 0;
	int32_t		i;
	int32_t		j;

	for (i = 0; i < s->n_vocab; i++)
	{
		float		x = w[i];

		if (m < k)
		{
			if (x == -INFINITY)
				continue;
			h[m].id = i;
			h[m].logit = x;
			if (++m == k)
				for (j = k / 2 - 1; j >= 0; j--)
					cand_sift_down(h, k, j);
		}
		else if (x > h[0].logit)
		{
			/* an equal logit comes with a higher id, so it never displaces the root */
			h[0].id = i;
			h[0].logit = x;
			cand_sift_down(h, k, 0);
		}
	}
	qsort(h, (size_t) m, sizeof(lg_cand), cand_cmp_logit);
	return m;
}

/* The chain after bias and penalties, for temperature > 0. */
static lg_token
sample_dist(lg_sampler *s)
{
	const lg_sampler_params *p = &s->p;
	lg_cand    *c = s->cand;
	int32_t		n = 0;
	bool		sorted = false;
	int32_t		i;

	if (p->top_k > 0 && p->top_k < s->n_vocab)
	{
		n = select_top_k(s, p->top_k);
		sorted = true;
	}
	else
	{
		/* banned tokens never become candidates */
		for (i = 0; i < s->n_vocab; i++)
		{
			if (s->work[i] == -INFINITY)
				continue;
			c[n].id = i;
			c[n].logit = s->work[i];
			n++;
		}
	}
	if (n == 0)
		return LG_TOKEN_NULL;
	/* every step keeps at least one candidate (llama.cpp's min_keep = 1) */
	if (p->typical_p < 1.0f && n > 1)
		n = apply_typical(c, n, p->typical_p, &sorted);
	if (p->top_p < 1.0f && n > 1)
		n = apply_top_p(c, n, p->top_p, &sorted);
	if (p->min_p > 0.0f && n > 1)
		n = apply_min_p(c, n, p->min_p, sorted);
	return draw(s, c, n, sorted);
}

/* Argmax of the working logits; the lowest id wins a tie. */
static lg_token
sample_greedy(const lg_sampler *s)
{
	lg_token	best = LG_TOKEN_NULL;
	float		best_logit = -INFINITY;
	int32_t		i;

	for (i = 0; i < s->n_vocab; i++)
	{
		if (s->work[i] > best_logit)
		{
			best_logit = s->work[i];
			best = i;
		}
	}
	return best;
}

/* log of the softmax denominator of the working logits (-INFINITY if all are banned). */
static float
log_sum_exp(const float *w, int32_t n)
{
	float		m = -INFINITY;
	double		sum = 0.0;
	int32_t		i;

	for (i = 0; i < n; i++)
		if (w[i] > m)
			m = w[i];
	if (m == -INFINITY)
		return -INFINITY;
	for (i = 0; i < n; i++)
		sum += expf(w[i] - m);
	return m + (float) log(sum);
}

/* Fill res->top with the n_probs most likely tokens (insertion into a short sorted list). */
static void
fill_top_probs(const lg_sampler *s, float lse, lg_sample_result *res)
{
	int32_t		want = s->p.n_probs;
	int32_t		m = 0;
	int32_t		i;

	for (i = 0; i < s->n_vocab && want > 0; i++)
	{
		float		x = s->work[i];
		int32_t		j;

		if (x == -INFINITY)
			continue;
		/* strict > keeps the lower id ahead on a tie, since ids arrive in order */
		if (m == want && !(x > res->top[m - 1].logprob))
			continue;
		j = m < want ? m++ : m - 1;
		while (j > 0 && x > res->top[j - 1].logprob)
		{
			res->top[j] = res->top[j - 1];
			j--;
		}
		res->top[j].token = i;
		res->top[j].logprob = x;	/* the logit for now; normalised below */
	}
	for (i = 0; i < m; i++)
		res->top[i].logprob -= lse;
	res->n_top = m;
}

/* Bias and penalties, then greedy or the truncation chain and a draw; report log-probs. */
lg_token
lg_sampler_sample(lg_sampler *s, const float *logits, lg_sample_result *res)
{
	return lg_sampler_sample_masked(s, logits, NULL, res);
}

bool
lg_sampler_device_ok(const lg_sampler *s)
{
	return s->p.n_logit_bias == 0 && s->counts == NULL && s->p.typical_p >= 1.0f;
}

void
lg_sampler_device_params(lg_sampler *s, lg_device_sample *out)
{
	out->temperature = s->p.temperature > 0.0f ? s->p.temperature : 0.0f;
	out->top_k = s->p.top_k;
	out->top_p = s->p.top_p;
	out->min_p = s->p.min_p;
	out->u = out->temperature > 0.0f ? (float) rng_uniform(s->rng) : 0.0f;
	/* a float rounded up to 1 would put the draw past the last candidate */
	if (out->u >= 1.0f)
		out->u = 0x1.fffffep-1f;
}

/* lg_sampler_sample with the tokens outside allowed banned first. */
lg_token
lg_sampler_sample_masked(lg_sampler *s, const float *logits, const uint64_t *allowed,
						 lg_sample_result *res)
{
	lg_token	t;

	prepare_logits(s, logits, allowed);
	if (s->p.temperature <= 0.0f)
		t = sample_greedy(s);
	else
		t = sample_dist(s);

	if (res != NULL)
	{
		float		lse = log_sum_exp(s->work, s->n_vocab);

		res->token = t;
		res->n_top = 0;
		res->logprob = -INFINITY;
		if (t != LG_TOKEN_NULL)
		{
			res->logprob = s->work[t] - lse;
			fill_top_probs(s, lse, res);
		}
	}
	if (t != LG_TOKEN_NULL)
		lg_sampler_accept(s, t);
	return t;
}

/* Earliest stop-string match, else the longest tail that could still become one. */
int64_t
lg_stop_find(const char *text, size_t len, const char *const *stops, int n_stops,
			 size_t *hold_back)
{
	int64_t		found = -1;
	size_t		hold = 0;
	int			i;

	for (i = 0; i < n_stops; i++)
	{
		const char *stop = stops[i];
		size_t		slen;
		size_t		span = len;
		const char *hit;

		if (stop == NULL || (slen = strlen(stop)) == 0)
			continue;
		/* only a match that starts before the best so far can improve it */
		if (found >= 0 && (size_t) found + slen - 1 < span)
			span = (size_t) found + slen - 1;
		hit = span >= slen ? memmem(text, span, stop, slen) : NULL;
		if (hit != NULL)
			found = hit - text;
	}
	if (found < 0)
	{
		for (i = 0; i < n_stops; i++)
		{
			const char *stop = stops[i];
			size_t		slen;
			size_t		k;

			if (stop == NULL || (slen = strlen(stop)) == 0)
				continue;
			/* longest first: the first tail that matches is this stop's best */
			for (k = slen - 1 < len ? slen - 1 : len; k > hold; k--)
			{
				if (memcmp(text + len - k, stop, k) == 0)
				{
					hold = k;
					break;
				}
			}
		}
	}
	if (hold_back != NULL)
		*hold_back = hold;
	return found;
}
