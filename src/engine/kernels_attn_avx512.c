/*
 * kernels_attn_avx512.c — encoder attention for four queries at once:
 * the scores against a transposed K and the weighted sum of V, each key
 * row or value row loaded once for the four (the one-query loops load all
 * of K and V again for every query, 64 KiB a query at 256 tokens × 64
 * dims, and were bound by those loads).
 *
 * Every lane is still one key's (or one dimension's) own chain of FMAs in
 * the same order as avx2_attn_scores_t / avx512_attn_accum, whose lanes
 * are independent too, so a query's scores and output are the same to
 * the bit as one at a time (test_attention_bidir4).
 */
/* -O2 keeps the 4 × 4 accumulators in memory (see kernels_mv_avx512.c) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend_cpu_impl.h"

#include <immintrin.h>

/* Mask of the first r (< 16) lanes, all 16 for r >= 16. */
static inline __mmask16
tail_mask(int64_t r)
{
	return r >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << r) - 1);
}

/* s[q][j] = (q[q] · Kt[.][j]) * scale for four queries, 32 keys a pass. */
static void
attn_scores_t4(int64_t n, int32_t d, const float *kt, const float *const q[4], float scale,
			   float *const s[4])
{
	const __m512 vs = _mm512_set1_ps(scale);
	int64_t		j = 0;

	for (; j + 32 <= n; j += 32)
	{
		__m512		a[4][2];

		for (int k = 0; k < 4; k++)
			a[k][0] = a[k][1] = _mm512_setzero_ps();
		for (int32_t i = 0; i < d; i++)
		{
			const float *r = kt + (int64_t) i * n + j;
			const __m512 r0 = _mm512_loadu_ps(r);
			const __m512 r1 = _mm512_loadu_ps(r + 16);

			for (int k = 0; k < 4; k++)
			{
				const __m512 qi = _mm512_set1_ps(q[k][i]);

				a[k][0] = _mm512_fmadd_ps(qi, r0, a[k][0]);
				a[k][1] = _mm512_fmadd_ps(qi, r1, a[k][1]);
			}
		}
		for (int k = 0; k < 4; k++)
		{
			_mm512_storeu_ps(s[k] + j, _mm512_mul_ps(a[k][0], vs));
			_mm512_storeu_ps(s[k] + j + 16, _mm512_mul_ps(a[k][1], vs));
		}
	}
	for (; j < n; j += 16)
	{
		const __mmask16 m = tail_mask(n - j);
		__m512		a[4];

		for (int k = 0; k < 4; k++)
			a[k] = _mm512_setzero_ps();
		for (int32_t i = 0; i < d; i++)
		{
			const __m512 r0 = _mm512_maskz_loadu_ps(m, kt + (int64_t) i * n + j);

			for (int k = 0; k < 4; k++)
				a[k] = _mm512_fmadd_ps(_mm512_set1_ps(q[k][i]), r0, a[k]);
		}
		for (int k = 0; k < 4; k++)
			_mm512_mask_storeu_ps(s[k] + j, m, _mm512_mul_ps(a[k], vs));
	}
}

/* acc[q] += Σ_c p[q][c] * V[c] for four queries; 64 dims in registers. */
static void
attn_accum4(int64_t nc, int32_t d, const float *V, int64_t vs, const float *const p[4],
			float *const acc[4])
{
	for (int32_t i0 = 0; i0 < d; i0 += 64)
	{
		__mmask16	m[4];
		__m512		a[4][4];

		for (int v = 0; v < 4; v++)
			m[v] = d - i0 > 16 * v ? tail_mask(d - i0 - 16 * v) : 0;
		for (int k = 0; k < 4; k++)
			for (int v = 0; v < 4; v++)
				a[k][v] = _mm512_maskz_loadu_ps(m[v], acc[k] + i0 + 16 * v);
		for (int64_t c = 0; c < nc; c++)
		{
			const float *vr = V + c * vs + i0;
			__m512		x[4];

			for (int v = 0; v < 4; v++)
				x[v] = _mm512_maskz_loadu_ps(m[v], vr + 16 * v);
			for (int k = 0; k < 4; k++)
			{
				const __m512 pc = _mm512_set1_ps(p[k][c]);

				for (int v = 0; v < 4; v++)
					a[k][v] = _mm512_fmadd_ps(pc, x[v], a[k][v]);
			}
		}
		for (int k = 0; k < 4; k++)
			for (int v = 0; v < 4; v++)
				_mm512_mask_storeu_ps(acc[k] + i0 + 16 * v, m[v], a[k][v]);
	}
}

/* Install the four-query attention loops. */
void
lg_cpu_kernels_attn_avx512(lg_cpu_kernels *k)
{
	k->attn_scores_t4 = attn_scores_t4;
	k->attn_accum4 = attn_accum4;
}
