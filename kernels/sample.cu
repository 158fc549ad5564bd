/*
 * sample.cu — sampling on the device, one block of 1024 threads per row of
 * logits, so that only token ids cross to the host.
 *
 * The subset of the CPU sampler (src/engine/sampler.c) it reproduces (no
 * logit bias, penalties, typical-p, grammar mask or log-probabilities: the
 * engine samples on the host when a request needs those), in the
 * CPU's order: NaN logits count as -inf and +inf as FLT_MAX (clamp_logit);
 * temperature <= 0 is argmax, the lowest id winning a tie; otherwise top-k
 * (0 or >= n_vocab: off), top-p (1: off), min-p (0: off), each keeping at
 * least one token, then temperature and a draw with the host's uniform u:
 * the first candidate, in the CPU's list order, whose running sum of
 * exp((l - max)/T) exceeds u * total.  Banned (-inf) tokens never take part.
 *
 * The CPU's list order matters for the draw, so it is kept: with top-k on,
 * or with top-p on, the list is sorted (higher logit first, lower id first
 * on a tie); with both off it stays in id order (min-p keeps the order).
 *
 * How: every candidate gets a 64-bit key, the logit's bits made monotone in
 * the high half and ~id in the low half, so "better" is "larger key", all
 * keys are distinct, and any prefix of the sorted list is {key >= x}.
 *   1. One pass: the maximum key (argmax, done if greedy), the candidate
 *      count, and each thread's own best key.
 *   2. Sorted lists: the G-th best of the 1024 per-thread bests is a lower
 *      bound of the G-th best key overall (G threads each hold one key at or
 *      above it), so {key >= it} is an exact prefix of at least G entries,
 *      usually not many more.  If it holds at most 2048 it is gathered into
 *      shared memory and sorted (bitonic): the prefix.  Every step whose
 *      list fits in the prefix then runs exactly as the CPU does, one thread
 *      summing in double in list order: the same sums in the same order.
 *   3. Longer lists (top_k > 512, a top-p nucleus longer than the prefix,
 *      ties so dense the prefix overflows) are handled without a sort: a
 *      step is a reduction over the row restricted to {key >= x}, and
 *      "first entry whose running sum reaches t" is a search for the largest
 *      x with sum{key >= x} >= t (8-ary, ~11 passes over the row for the
 *      logit half of the key, ~11 more only when the answer is among exact
 *      ties).  Correct for any size, slower (tens of passes over the row).
 *   4. Id-order lists: per-thread contiguous chunks summed in double, a
 *      block scan of the chunk sums, and each thread walking its chunk.
 *
 * Where the result can differ from the CPU's (for the same u):
 *   - expf/logf: the device's (<= 2 ulp / 1 ulp) against glibc's; a
 *     probability one ulp away changes the outcome only when a cumulative
 *     sum lands within ~1e-7 of top_p or of u*total, or a logit sits on the
 *     min-p threshold: rare (about one token in 10^6-10^7);
 *   - double sums made in another order (the full-vocabulary softmax
 *     denominator of top-p with top-k off, the row-reduction path of 3, and
 *     the id-order draw of 4): ~1e-16 relative, flips only at those
 *     boundaries within 1e-16, never in practice;
 *   - u is a float here, the CPU draws a 53-bit double: pass the same u to
 *     both when comparing (and a u that rounds up to 1.0f selects the
 *     CPU's fallback, the last candidate with non-zero mass);
 *   - top-k off, top-p on, >= 1024 candidates and a nucleus longer than
 *     256: the CPU leaves the tail of its list in the order its
 *     quickselect made (cand_select_mass) and draws in that order; we draw
 *     in sorted order: the same distribution, another token for a given u.
 *
 * Scratch: none (lg_gpu_sample_scratch_bytes is 0); everything lives in
 * 25 KiB of static shared memory.
 */
#include "common.cuh"
#include "elem.cuh"

#include <float.h>
#include <math.h>

#define LG_SAMPLE_THREADS 1024	/* the per-thread bests sort as one key per thread */
#define LG_SAMPLE_CAP 2048		/* the longest prefix kept sorted in shared memory */
#define LG_SAMPLE_PREFIX 512	/* G: the prefix holds at least this many (or top_k) */
#define LG_SAMPLE_SPLITS 7		/* thresholds a search evaluates per pass (8-ary) */

/* The lowest key a candidate can have: logit -FLT_MAX (any id); -inf is below. */
#define LG_KEY_ALL ((uint64_t) 0x00800000u << 32)

typedef struct lg_sample_smem
{
	union
	{
		uint64_t	keys[LG_SAMPLE_CAP];	/* the sorted prefix */
		double		scan[2][LG_SAMPLE_THREADS]; /* the id-order path's block scan */
	}			u;
	float		e[LG_SAMPLE_CAP];	/* per prefix entry: exp of its logit, for one walk */
	double		red_d[32];
	uint64_t	red_u[32];
	int			red_i[32];
	int			cnt;			/* gather position */
	int			res_i;			/* thread 0's result of a walk */
} lg_sample_smem;

/* The logit as the CPU sampler sees it: NaN -> -inf, +inf -> FLT_MAX, -0 -> +0. */
static __device__ __forceinline__ float
lg_logit_at(const float *row, int64_t i)
{
	float		x = row[i];

	if (x != x)
		return -INFINITY;
	if (x > FLT_MAX)
		return FLT_MAX;
	/* the CPU compares -0 and +0 equal (a tie broken by id): give them one key */
	return x == 0.0f ? 0.0f : x;
}

/* Float bits made monotone: a larger float has a larger key32. */
static __device__ __forceinline__ uint32_t
lg_key32(float x)
{
	uint32_t	u = __float_as_uint(x);

	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* The key of token id with logit x: logit order, then the lower id first. */
static __device__ __forceinline__ uint64_t
lg_key64(float x, int64_t id)
{
	return ((uint64_t) lg_key32(x) << 32) | (uint32_t) ~(uint32_t) id;
}

static __device__ __forceinline__ float
lg_key_logit(uint64_t k)
{
	uint32_t	h = (uint32_t) (k >> 32);

	return __uint_as_float((h & 0x80000000u) ? (h & 0x7fffffffu) : ~h);
}

static __device__ __forceinline__ int32_t
lg_key_id(uint64_t k)
{
	return (int32_t) ~(uint32_t) k;
}

/* Whether a running sum f has reached target t: >= for top-p, > for the draw. */
static __device__ __forceinline__ bool
lg_reached(double f, double t, bool strict)
{
	return strict ? f > t : f >= t;
}

/* Weights of the candidates in the sums. */
struct lg_w_one
{
	__device__ __forceinline__ double operator() (float) const
	{
		return 1.0;
	}
};

/* exp(l - max): the CPU's softmax numerator (cand_softmax), as a float. */
struct lg_w_exp
{
	float		m;
	__device__ __forceinline__ double operator() (float l) const
	{
		return (double) expf(l - m);
	}
};

/* The CPU's top-p probability: the float numerator / double sum, rounded to float. */
struct lg_w_prob
{
	float		m;
	double		sum;
	__device__ __forceinline__ double operator() (float l) const
	{
		return (double) (float) ((double) expf(l - m) / sum);
	}
};

/* exp((l - max) / T): the draw's weight (draw in sampler.c). */
struct lg_w_temp
{
	float		m;
	float		temp;
	__device__ __forceinline__ double operator() (float l) const
	{
		return (double) expf((l - m) / temp);
	}
};

/* Sum of w over the candidates whose key is >= thr (thr >= LG_KEY_ALL). */
template <typename W>
static __device__ double
lg_row_sum(const float *row, int32_t nv, uint64_t thr, W w, lg_sample_smem *sh)
{
	double		a = 0.0;

	for (int64_t i = threadIdx.x; i < nv; i += blockDim.x)
	{
		float		l = lg_logit_at(row, i);

		if (lg_key64(l, i) >= thr)
			a += w(l);
	}
	return lg_block_reduce(a, lg_op_sum(), sh->red_d);
}

/* How many candidates have a key in [lo, hi). */
static __device__ int
lg_row_count(const float *row, int32_t nv, uint64_t lo, uint64_t hi, lg_sample_smem *sh)
{
	int			c = 0;

	for (int64_t i = threadIdx.x; i < nv; i += blockDim.x)
	{
		uint64_t	k = lg_key64(lg_logit_at(row, i), i);

		c += k >= lo && k < hi;
	}
	return lg_block_reduce(c, lg_op_sum(), sh->red_i);
}

/* Smallest key >= thr, of a candidate with w > 0 if positive; UINT64_MAX if none. */
template <typename W>
static __device__ uint64_t
lg_row_min_key(const float *row, int32_t nv, uint64_t thr, W w, bool positive, lg_sample_smem *sh)
{
	uint64_t	v = UINT64_MAX;

	for (int64_t i = threadIdx.x; i < nv; i += blockDim.x)
	{
		float		l = lg_logit_at(row, i);
		uint64_t	k = lg_key64(l, i);

		if (k >= thr && k < v && (!positive || w(l) > 0.0))
			v = k;
	}
	return lg_block_reduce(v, lg_op_min(), sh->red_u);
}

/*
 * The largest t in [a, b] with F(x(t)) reaching target, where F(x) is the
 * sum of w over candidates with key >= x and x(t) = max(t << 32, thr) when
 * high, (h << 32) | t otherwise (x(t) grows with t).  F(x(a)) must reach
 * target.  Each pass evaluates 7 evenly spread t at once.
 */
template <typename W>
static __device__ uint32_t
lg_search(const float *row, int32_t nv, W w, double target, bool strict, uint32_t a, uint32_t b,
		  bool high, uint64_t thr, uint32_t h, lg_sample_smem *sh)
{
	while (a < b)
	{
		const uint64_t span = (uint64_t) b - a + 1;
		uint64_t	xs[LG_SAMPLE_SPLITS];
		double		acc[LG_SAMPLE_SPLITS];
		int			jj = 0;

#pragma unroll
		for (int j = 0; j < LG_SAMPLE_SPLITS; j++)
		{
			uint32_t	t = a + (uint32_t) (span * (j + 1) / (LG_SAMPLE_SPLITS + 1));
			uint64_t	x = high ? (uint64_t) t << 32 : ((uint64_t) h << 32) | t;

			xs[j] = high && x < thr ? thr : x;
			acc[j] = 0.0;
		}
		for (int64_t i = threadIdx.x; i < nv; i += blockDim.x)
		{
			float		l = lg_logit_at(row, i);
			uint64_t	k = lg_key64(l, i);
			double		wl;

			if (k < xs[0])		/* below every threshold (they ascend) */
				continue;
			wl = w(l);
#pragma unroll
			for (int j = 0; j < LG_SAMPLE_SPLITS; j++)
				if (k >= xs[j])
					acc[j] += wl;
		}
		/* the largest t that reaches the target (a reaches it by contract) */
#pragma unroll
		for (int j = 0; j < LG_SAMPLE_SPLITS; j++)
			if (lg_reached(lg_block_reduce(acc[j], lg_op_sum(), sh->red_d), target, strict))
				jj = j + 1;
		{
			/* the next range: from the last t that reached, to just before the next one */
			int64_t		t_lo = jj == 0 ? a : a + (int64_t) (span * jj / (LG_SAMPLE_SPLITS + 1));
			int64_t		t_hi = jj == LG_SAMPLE_SPLITS ? b
				: a + (int64_t) (span * (jj + 1) / (LG_SAMPLE_SPLITS + 1)) - 1;

			/* t_hi < t_lo only if sums were not reproducible; stop rather than loop */
			a = (uint32_t) t_lo;
			b = (uint32_t) (t_hi < t_lo ? t_lo : t_hi);
		}
	}
	return a;
}

/*
 * The key of the entry at which the running sum of w, over the candidates
 * with key >= thr in key order, first reaches target; 0 if it never does.
 * top is the largest key.
 */
template <typename W>
static __device__ uint64_t
lg_row_select(const float *row, int32_t nv, uint64_t thr, uint64_t top, W w, double target,
			  bool strict, lg_sample_smem *sh)
{
	uint32_t	lo = (uint32_t) (thr >> 32);
	uint32_t	h;
	uint64_t	x;
	uint64_t	k;

	if (!lg_reached(lg_row_sum(row, nv, thr, w, sh), target, strict))
		return 0;
	/* first the logit half of the key ... */
	h = lg_search(row, nv, w, target, strict, lo, (uint32_t) (top >> 32), true, thr, 0, sh);
	x = (uint64_t) h << 32;
	if (x < thr)
		x = thr;
	/* ... then, among several candidates with that very logit, the id half */
	if (lg_row_count(row, nv, x, ((uint64_t) h + 1) << 32, sh) > 1)
	{
		uint32_t	l = lg_search(row, nv, w, target, strict, (uint32_t) x, 0xffffffffu, false,
								  thr, h, sh);

		x = ((uint64_t) h << 32) | l;
	}
	/* the entry itself: the smallest key at or above x */
	k = lg_row_min_key(row, nv, x, lg_w_one(), false, sh);
	return k != UINT64_MAX ? k : top;
}

/* Sort a[0..n) (n a power of two, <= LG_SAMPLE_CAP) descending; a is visible to all. */
static __device__ void
lg_bitonic_desc(uint64_t *a, int n)
{
	for (int k = 2; k <= n; k <<= 1)
	{
		for (int j = k >> 1; j > 0; j >>= 1)
		{
			for (int i = threadIdx.x; i < n; i += blockDim.x)
			{
				int			ixj = i ^ j;

				if (ixj > i)
				{
					uint64_t	x = a[i];
					uint64_t	y = a[ixj];

					/* runs with (i & k) == 0 go descending, the others ascending */
					if ((i & k) == 0 ? x < y : x > y)
					{
						a[i] = y;
						a[ixj] = x;
					}
				}
			}
			__syncthreads();
		}
	}
}

/* Thread 0's int, seen by every thread. */
static __device__ int
lg_bcast_int(int v, lg_sample_smem *sh)
{
	__syncthreads();
	if (threadIdx.x == 0)
		sh->res_i = v;
	__syncthreads();
	v = sh->res_i;
	__syncthreads();
	return v;
}

/*
 * temperature > 0, top-k and top-p off: the candidates in id order, min-p
 * (a value threshold, order kept), the draw.  Thread t owns ids
 * [t*len, (t+1)*len).
 */
static __device__ int32_t
lg_sample_id_order(const float *row, int32_t nv, const lg_gpu_sample_params *p, float m,
				   int n_fin, lg_sample_smem *sh)
{
	const lg_w_temp w = {m, p->temperature};
	const int	tid = threadIdx.x;
	const int64_t len = ((int64_t) nv + LG_SAMPLE_THREADS - 1) / LG_SAMPLE_THREADS;
	const int64_t beg = tid * len < nv ? tid * len : nv;
	const int64_t end = beg + len < nv ? beg + len : nv;
	float		min_logit = -FLT_MAX;
	double		own = 0.0;
	double		base;
	double		target;
	int			src = 0;
	int			found = INT32_MAX;
	int			last = -1;

	if (p->min_p > 0.0f && n_fin > 1)
	{
		min_logit = m + logf(p->min_p);
		if (!(min_logit <= m))
			min_logit = m;		/* min_p > 1 would keep nothing; the CPU forbids it */
	}
	for (int64_t i = beg; i < end; i++)
	{
		float		l = lg_logit_at(row, i);

		if (l != -INFINITY && l >= min_logit)
			own += w(l);
	}
	/* inclusive Hillis-Steele scan of the per-thread sums, double-buffered */
	sh->u.scan[0][tid] = own;
	__syncthreads();
	for (int off = 1; off < LG_SAMPLE_THREADS; off <<= 1)
	{
		double		v = sh->u.scan[src][tid];

		if (tid >= off)
			v = sh->u.scan[src][tid - off] + v;
		sh->u.scan[src ^ 1][tid] = v;
		__syncthreads();
		src ^= 1;
	}
	base = tid > 0 ? sh->u.scan[src][tid - 1] : 0.0;
	target = (double) p->u * sh->u.scan[src][LG_SAMPLE_THREADS - 1];

	/* every thread walks its chunk; the first id where the running sum passes target wins */
	for (int64_t i = beg; i < end; i++)
	{
		float		l = lg_logit_at(row, i);

		if (l != -INFINITY && l >= min_logit)
		{
			double		e = w(l);

			base += e;
			if (base > target)
			{
				found = (int) i;
				break;
			}
		}
	}
	found = lg_block_reduce(found, lg_op_min(), sh->red_i);
	if (found != INT32_MAX)
		return found;
	/* rounding left target at the very end: the last candidate with mass, as the CPU */
	for (int64_t i = beg; i < end; i++)
	{
		float		l = lg_logit_at(row, i);

		if (l != -INFINITY && l >= min_logit && w(l) > 0.0)
			last = (int) i;
	}
	return lg_block_reduce(last, lg_op_max(), sh->red_i);
}

/* One row: the token id, or -1 (LG_TOKEN_NULL) when every logit is -inf. */
static __device__ int32_t
lg_sample_row(const float *row, int32_t nv, const lg_gpu_sample_params *p, lg_sample_smem *sh)
{
	const int	tid = threadIdx.x;
	uint64_t	own = 0;		/* this thread's best key (0: none) */
	int			n_fin = 0;
	uint64_t	top;
	float		m;
	bool		topk_on;
	int			G;
	uint64_t	t0;
	int			cnt;
	int			plen = 0;		/* entries of the sorted prefix in sh->u.keys */
	int			N;				/* the list: the N best, keys >= thr */
	uint64_t	thr = LG_KEY_ALL;

	/* 1. maximum, candidate count, per-thread bests */
	for (int64_t i = tid; i < nv; i += blockDim.x)
	{
		float		l = lg_logit_at(row, i);

		if (l == -INFINITY)
			continue;
		n_fin++;
		if (lg_key64(l, i) > own)
			own = lg_key64(l, i);
	}
	top = lg_block_reduce(own, lg_op_max(), sh->red_u);
	n_fin = lg_block_reduce(n_fin, lg_op_sum(), sh->red_i);
	if (n_fin == 0)
		return -1;
	if (!(p->temperature > 0.0f))
		return lg_key_id(top);	/* greedy: largest logit, lowest id */
	m = lg_key_logit(top);
	topk_on = p->top_k > 0 && p->top_k < nv;
	if (!topk_on && !(p->top_p < 1.0f && n_fin > 1))
		return lg_sample_id_order(row, nv, p, m, n_fin, sh);

	/* 2. the sorted prefix: keys >= the G-th best of the per-thread bests */
	N = topk_on ? (p->top_k < n_fin ? p->top_k : n_fin) : 0;
	G = topk_on && N < LG_SAMPLE_PREFIX ? N : LG_SAMPLE_PREFIX;
	sh->u.keys[tid] = own;
	__syncthreads();
	lg_bitonic_desc(sh->u.keys, LG_SAMPLE_THREADS);
	t0 = sh->u.keys[G - 1];
	if (t0 < LG_KEY_ALL)
		t0 = LG_KEY_ALL;		/* fewer than G threads hold a candidate: take them all */
	if (tid == 0)
		sh->cnt = 0;
	__syncthreads();
	for (int64_t i = tid; i < nv; i += blockDim.x)
	{
		uint64_t	k = lg_key64(lg_logit_at(row, i), i);

		if (k >= t0)
		{
			int			pos = atomicAdd(&sh->cnt, 1);

			if (pos < LG_SAMPLE_CAP)
				sh->u.keys[pos] = k;
		}
	}
	__syncthreads();
	cnt = sh->cnt;
	if (cnt <= LG_SAMPLE_CAP)
	{
		int			pw = 1;

		while (pw < cnt)
			pw <<= 1;
		for (int i = cnt + tid; i < pw; i += blockDim.x)
			sh->u.keys[i] = 0;	/* padding sorts last */
		__syncthreads();
		lg_bitonic_desc(sh->u.keys, pw);
		plen = cnt;
	}

	/* 3. top-k, then top-p */
	if (topk_on)
	{
		thr = N <= plen ? sh->u.keys[N - 1]
			: lg_row_select(row, nv, LG_KEY_ALL, top, lg_w_one(), (double) N, false, sh);
		if (p->top_p < 1.0f && N > 1)
		{
			if (N <= plen)
			{
				/* apply_top_p on a sorted list: softmax, then the running sum, in list order */
				for (int i = tid; i < N; i += blockDim.x)
					sh->e[i] = expf(lg_key_logit(sh->u.keys[i]) - m);
				__syncthreads();
				if (tid == 0)
				{
					double		sum = 0.0;
					double		cum = 0.0;
					int			n1 = N;

					for (int i = 0; i < N; i++)
						sum += sh->e[i];
					for (int i = 0; i < N; i++)
					{
						cum += (float) (sh->e[i] / sum);
						if (cum >= p->top_p)
						{
							n1 = i + 1;
							break;
						}
					}
					N = n1;
				}
				N = lg_bcast_int(N, sh);
				thr = sh->u.keys[N - 1];
			}
			else
			{
				lg_w_prob	wp = {m, lg_row_sum(row, nv, thr, lg_w_exp{m}, sh)};
				uint64_t	x = lg_row_select(row, nv, thr, top, wp, (double) p->top_p, false, sh);

				if (x != 0)
				{
					thr = x;
					N = lg_row_count(row, nv, thr, UINT64_MAX, sh);
				}
			}
		}
	}
	else
	{
		/* top-p over every candidate; its softmax denominator is over all of them */
		lg_w_prob	wp = {m, lg_row_sum(row, nv, LG_KEY_ALL, lg_w_exp{m}, sh)};
		int			n1 = -1;

		if (plen > 0)
		{
			for (int i = tid; i < plen; i += blockDim.x)
				sh->e[i] = (float) wp(lg_key_logit(sh->u.keys[i]));
			__syncthreads();
			if (tid == 0)
			{
				double		cum = 0.0;

				for (int i = 0; i < plen && n1 < 0; i++)
				{
					cum += sh->e[i];
					if (cum >= p->top_p)
						n1 = i + 1;
				}
				if (n1 < 0 && plen == n_fin)
					n1 = n_fin;	/* the mass never reached top_p: keep all */
			}
			n1 = lg_bcast_int(n1, sh);
		}
		if (n1 > 0)
		{
			N = n1;
			thr = sh->u.keys[N - 1];
		}
		else
		{
			uint64_t	x = lg_row_select(row, nv, LG_KEY_ALL, top, wp, (double) p->top_p, false, sh);

			thr = x != 0 ? x : LG_KEY_ALL;
			N = lg_row_count(row, nv, thr, UINT64_MAX, sh);
		}
	}

	/* 4. min-p: the entries with logit >= max + log(min_p), a prefix of a sorted list */
	if (p->min_p > 0.0f && N > 1)
	{
		float		min_logit = m + logf(p->min_p);
		int			n2;

		if (!(min_logit <= m))
			min_logit = m;		/* min_p > 1 would keep nothing; the CPU forbids it */
		if (min_logit == 0.0f)
			min_logit = 0.0f;	/* -0 -> +0, as the logits */
		if (N <= plen)
		{
			int			c = 0;

			for (int i = tid; i < N; i += blockDim.x)
				c += lg_key_logit(sh->u.keys[i]) >= min_logit;
			n2 = lg_block_reduce(c, lg_op_sum(), sh->red_i);
			N = n2;
			thr = sh->u.keys[N - 1];
		}
		else
		{
			uint64_t	xv = (uint64_t) lg_key32(min_logit) << 32;

			n2 = lg_row_count(row, nv, xv, UINT64_MAX, sh);
			if (n2 < N)
			{
				N = n2;
				thr = xv;
			}
		}
	}

	/* 5. temperature and the draw, in list order */
	{
		const lg_w_temp w = {m, p->temperature};
		uint64_t	pick;

		if (N <= plen)
		{
			for (int i = tid; i < N; i += blockDim.x)
				sh->e[i] = (float) w(lg_key_logit(sh->u.keys[i]));
			__syncthreads();
			if (tid == 0)
			{
				double		sum = 0.0;
				double		run = 0.0;
				double		target;
				int			i;

				for (i = 0; i < N; i++)
					sum += sh->e[i];
				target = (double) p->u * sum;
				for (i = 0; i < N; i++)
				{
					run += sh->e[i];
					if (run > target)
						break;
				}
				if (i == N)
				{
					/* rounding left target at the very end: the last entry with mass */
					for (i = N - 1; i > 0; i--)
						if (sh->e[i] > 0.0f)
							break;
				}
				sh->res_i = i;
			}
			__syncthreads();
			pick = sh->u.keys[sh->res_i];
		}
		else
		{
			double		target = (double) p->u * lg_row_sum(row, nv, thr, w, sh);

			pick = lg_row_select(row, nv, thr, top, w, target, true, sh);
			if (pick == 0)
			{
				/* the last entry with mass: the smallest key with w > 0 (the max has 1) */
				pick = lg_row_min_key(row, nv, thr, w, true, sh);
				if (pick == UINT64_MAX)
					pick = top;
			}
		}
		return lg_key_id(pick);
	}
}

/* Rows blockIdx.x, +gridDim.x, ...: ids[r] = the sampled token of logits row r. */
__global__ void __launch_bounds__(LG_SAMPLE_THREADS)
lg_sample_kernel(int32_t *ids, const float *logits, int64_t n, int32_t nv,
				 const lg_gpu_sample_params *params)
{
	__shared__ lg_sample_smem sh;

	for (int64_t r = blockIdx.x; r < n; r += gridDim.x)
	{
		const lg_gpu_sample_params p = params[r];
		int32_t		tok;

		__syncthreads();		/* the previous row is done with sh */
		tok = lg_sample_row(logits + r * nv, nv, &p, &sh);
		if (threadIdx.x == 0)
			ids[r] = tok;
	}
}

/* Launch over n > 0 rows on stream s. */
static void
lg_sample_launch(cudaStream_t s, int32_t *ids, const float *logits, int64_t n, int32_t nv,
				 const lg_gpu_sample_params *p)
{
	unsigned int blocks = (unsigned int) (n > LG_ELEM_MAX_BLOCKS ? LG_ELEM_MAX_BLOCKS : n);

	lg_sample_kernel<<<blocks, LG_SAMPLE_THREADS, 0, s>>>(ids, logits, n, nv, p);
}

/* Nothing: the kernel works in shared memory and over the logits row. */
extern "C" size_t
lg_gpu_sample_scratch_bytes(int64_t n, int64_t n_vocab)
{
	(void) n;
	(void) n_vocab;
	return 0;
}

extern "C" lg_gpu_status
lg_gpu_sample(lg_gpu_stream s, int32_t *ids, const float *logits, int64_t n, int64_t n_vocab,
			  const lg_gpu_sample_params *p, void *scratch, size_t scratch_bytes)
{
	(void) scratch;
	(void) scratch_bytes;
	if (n < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "sample: negative row count %lld", (long long) n);
	if (n == 0)
		return LG_GPU_OK;
	if (n_vocab <= 0 || n_vocab > INT32_MAX)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "sample: vocabulary size %lld is not in 1..%d",
								(long long) n_vocab, INT32_MAX);
	if (ids == NULL || logits == NULL || p == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "sample: %s is NULL",
								ids == NULL ? "ids" : logits == NULL ? "logits" : "params");
	if (n > INT64_MAX / n_vocab)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "sample: %lld rows of %lld logits overflow",
								(long long) n, (long long) n_vocab);
	lg_sample_launch((cudaStream_t) s, ids, logits, n, (int32_t) n_vocab, p);
	return lg_gpu_check_launch("sample");
}
