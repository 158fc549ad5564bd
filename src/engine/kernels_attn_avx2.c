/*
 * kernels_attn_avx2.c — attention's inner loops with AVX2/FMA.
 *
 * ops_cpu_attn.c hands these a tile of K or V rows already in f32, so
 * they are plain float loops, register-blocked: four K rows per q load
 * with one combined horizontal sum for the four scores, and 32 output
 * dims held in registers while all V rows of the tile are weighted in.
 */
#include "backend_cpu_impl.h"

#include <immintrin.h>
#include <math.h>

#include "simd_x86.h"

/* s[c] = (q · K[c]) * scale for nc rows of d floats, ks apart. */
static void
avx2_attn_scores(int64_t nc, int32_t d, const float *K, int64_t ks,
				 const float *q, float scale, float *s)
{
	int64_t		c = 0;

	if (d % 8 != 0)
	{
		for (; c < nc; c++)
		{
			float		sum = 0.0f;

			for (int32_t i = 0; i < d; i++)
				sum += q[i] * K[c * ks + i];
			s[c] = sum * scale;
		}
		return;
	}
	for (; c + 4 <= nc; c += 4)
	{
		const float *k0 = K + c * ks;
		__m256		a0 = _mm256_setzero_ps();
		__m256		a1 = _mm256_setzero_ps();
		__m256		a2 = _mm256_setzero_ps();
		__m256		a3 = _mm256_setzero_ps();

		for (int32_t i = 0; i < d; i += 8)
		{
			const __m256 qv = _mm256_loadu_ps(q + i);

			a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
			a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + ks + i), a1);
			a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * ks + i), a2);
			a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * ks + i), a3);
		}
		_mm_storeu_ps(s + c, _mm_mul_ps(lg_hsum4_ps256(a0, a1, a2, a3), _mm_set1_ps(scale)));
	}
	for (; c < nc; c++)
	{
		const float *kr = K + c * ks;
		__m256		a0 = _mm256_setzero_ps();
		__m128		r;

		for (int32_t i = 0; i < d; i += 8)
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kr + i), a0);
		r = lg_hsum4_ps256(a0, a0, a0, a0);
		s[c] = _mm_cvtss_f32(r) * scale;
	}
}

/* acc += Σ_c p[c] * V[c] for nc rows of d floats, vs apart. */
static void
avx2_attn_accum(int64_t nc, int32_t d, const float *V, int64_t vs,
				const float *p, float *acc)
{
	int32_t		i0 = 0;

	if (d % 8 != 0)
	{
		for (int64_t c = 0; c < nc; c++)
			for (int32_t i = 0; i < d; i++)
				acc[i] += p[c] * V[c * vs + i];
		return;
	}
	for (; i0 + 32 <= d; i0 += 32)
	{
		__m256		a0 = _mm256_loadu_ps(acc + i0);
		__m256		a1 = _mm256_loadu_ps(acc + i0 + 8);
		__m256		a2 = _mm256_loadu_ps(acc + i0 + 16);
		__m256		a3 = _mm256_loadu_ps(acc + i0 + 24);

		for (int64_t c = 0; c < nc; c++)
		{
			const float *vr = V + c * vs + i0;
			const __m256 pc = _mm256_broadcast_ss(p + c);

			a0 = _mm256_fmadd_ps(pc, _mm256_loadu_ps(vr), a0);
			a1 = _mm256_fmadd_ps(pc, _mm256_loadu_ps(vr + 8), a1);
			a2 = _mm256_fmadd_ps(pc, _mm256_loadu_ps(vr + 16), a2);
			a3 = _mm256_fmadd_ps(pc, _mm256_loadu_ps(vr + 24), a3);
		}
		_mm256_storeu_ps(acc + i0, a0);
		_mm256_storeu_ps(acc + i0 + 8, a1);
		_mm256_storeu_ps(acc + i0 + 16, a2);
		_mm256_storeu_ps(acc + i0 + 24, a3);
	}
	for (; i0 < d; i0 += 8)
	{
		__m256		a0 = _mm256_loadu_ps(acc + i0);

		for (int64_t c = 0; c < nc; c++)
			a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + c), _mm256_loadu_ps(V + c * vs + i0), a0);
		_mm256_storeu_ps(acc + i0, a0);
	}
}

/*
 * A tile of nc f16 cache rows, ss halves apart, to packed f32.  The rows
 * are strided (one KV head of each position), so prefetch a few ahead.
 */
static void
avx2_attn_tile_f16(int64_t nc, int32_t d, const lg_f16 *src, int64_t ss, float *dst)
{
	if (d % 8 != 0)
	{
		for (int64_t c = 0; c < nc; c++)
			for (int32_t i = 0; i < d; i++)
				dst[c * d + i] = _cvtsh_ss(src[c * ss + i]);
		return;
	}
	for (int64_t c = 0; c < nc; c++)
	{
		const lg_f16 *sr = src + c * ss;
		float	   *dr = dst + c * d;

		_mm_prefetch((const char *) (sr + 4 * ss), _MM_HINT_T0);
		_mm_prefetch((const char *) (sr + 4 * ss) + 64, _MM_HINT_T0);
		for (int32_t i = 0; i < d; i += 8)
			_mm256_storeu_ps(dr + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (sr + i))));
	}
}

/*
 * s[j] = (q · Kt[.][j]) * scale over a transposed K: 32 keys per pass in
 * four accumulators, one load per multiply-add, no horizontal sums.
 */
static void
avx2_attn_scores_t(int64_t n, int32_t d, const float *kt, const float *q, float scale, float *s)
{
	const __m256 vs = _mm256_set1_ps(scale);
	int64_t		j = 0;

	for (; j + 32 <= n; j += 32)
	{
		__m256		a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

		for (int32_t i = 0; i < d; i++)
		{
			const __m256 qi = _mm256_broadcast_ss(q + i);
			const float *r = kt + (int64_t) i * n + j;

			a0 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(r), a0);
			a1 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(r + 8), a1);
			a2 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(r + 16), a2);
			a3 = _mm256_fmadd_ps(qi, _mm256_loadu_ps(r + 24), a3);
		}
		_mm256_storeu_ps(s + j, _mm256_mul_ps(a0, vs));
		_mm256_storeu_ps(s + j + 8, _mm256_mul_ps(a1, vs));
		_mm256_storeu_ps(s + j + 16, _mm256_mul_ps(a2, vs));
		_mm256_storeu_ps(s + j + 24, _mm256_mul_ps(a3, vs));
	}
	for (; j + 8 <= n; j += 8)
	{
		__m256		a = _mm256_setzero_ps();

		for (int32_t i = 0; i < d; i++)
			a = _mm256_fmadd_ps(_mm256_broadcast_ss(q + i), _mm256_loadu_ps(kt + (int64_t) i * n + j), a);
		_mm256_storeu_ps(s + j, _mm256_mul_ps(a, vs));
	}
	for (; j < n; j++)
	{
		float		a = 0.0f;

		for (int32_t i = 0; i < d; i++)
			a = fmaf(q[i], kt[(int64_t) i * n + j], a);
		s[j] = a * scale;
	}
}

/* Install the AVX2 attention loops. */
void
lg_cpu_kernels_attn_avx2(lg_cpu_kernels *k)
{
	k->attn_scores = avx2_attn_scores;
	k->attn_accum = avx2_attn_accum;
	k->attn_tile_f16 = avx2_attn_tile_f16;
	k->attn_scores_t = avx2_attn_scores_t;
}
