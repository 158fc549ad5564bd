/*
 * kernels_mv_avx512.h — pieces shared by the multi-row AVX-512 kernel files
 * (kernels_mv_avx512.c for the 32-value block types and F16,
 * kernels_mvk_avx512.c for the K-quants): row grouping, the L2 prefetch
 * cursor of the generation loops, and the horizontal sums of a tile.
 *
 * Include only from *_avx512.c files (compiled with AVX-512).
 */
#ifndef LG_KERNELS_MV_AVX512_H
#define LG_KERNELS_MV_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#include "backend_cpu_impl.h"

/*
 * The per-row loops must be unrolled so the accumulators and row pointers
 * live in registers; -O2 alone keeps them in memory.
 */
#if defined(__GNUC__) && !defined(__clang__)
#define LG_UNROLL_ROWS _Pragma("GCC unroll 4")
#elif defined(__clang__)
#define LG_UNROLL_ROWS _Pragma("unroll")
#else
#define LG_UNROLL_ROWS
#endif

/*
 * Prefetch state: bytes [next, end) of the following group are still to be
 * requested; `end` advances by the group's bytes per loop iteration.
 */
typedef struct pf_cursor
{
	const char *base;
	size_t		next;
	size_t		end;
} pf_cursor;

/* One loop iteration's share of the next group: step bytes more. */
static inline void
pf_advance(pf_cursor *pf, size_t step)
{
	pf->end += step;
	for (; pf->next < pf->end; pf->next += 64)
		_mm_prefetch(pf->base + pf->next, _MM_HINT_T1);
}

/*
 * Row pointers of a group: rows past nr repeat the last one, so the loops
 * always run all LG_DOTR_MAX (fully unrolled, no branches) and only the
 * first nr sums are kept.
 */
static inline void
group_rows(const void *w, size_t ws, int nr, const char *rows[LG_DOTR_MAX])
{
	for (int r = 0; r < LG_DOTR_MAX; r++)
		rows[r] = (const char *) w + (size_t) (r < nr ? r : nr - 1) * ws;
}

/* Activation pointers of a tile: tokens past nc repeat the last one. */
static inline void
group_tokens(const void *x, size_t xs, int nc, const char *tok[LG_DOTN_MAX])
{
	for (int c = 0; c < LG_DOTN_MAX; c++)
		tok[c] = (const char *) x + (size_t) (c < nc ? c : nc - 1) * xs;
}

/* Store the first nr of the four sums. */
static inline void
store_sums(float *s, int nr, __m128 v)
{
	float		t[4];

	_mm_storeu_ps(t, v);
	for (int r = 0; r < nr; r++)
		s[r] = t[r];
}

/* The four horizontal sums of a0..a3, as one vector. */
static inline __m128
lg_hsum4_ps512(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
	const __m256 b0 = _mm256_add_ps(_mm512_castps512_ps256(a0), _mm512_extractf32x8_ps(a0, 1));
	const __m256 b1 = _mm256_add_ps(_mm512_castps512_ps256(a1), _mm512_extractf32x8_ps(a1, 1));
	const __m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(a2), _mm512_extractf32x8_ps(a2, 1));
	const __m256 b3 = _mm256_add_ps(_mm512_castps512_ps256(a3), _mm512_extractf32x8_ps(a3, 1));
	const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(b0, b1), _mm256_hadd_ps(b2, b3));

	return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/*
 * Sums of a tile's accumulators to s[r * LG_DOTN_MAX + c], the first
 * nr × nc: four at a time, a row's four tokens sharing the reduction.
 * Every accumulator is read with a constant index: one read through a
 * variable row makes GCC keep the whole tile in memory and store it back
 * every iteration of the caller's loop.  Forced inline: as a call (GCC's
 * choice for the K-quant tiles) it took 2% of prompt time.
 */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void
store_tile(float *s, int nr, int nc, __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX])
{
	float		t[LG_DOTR_MAX][LG_DOTN_MAX];

	_mm_storeu_ps(t[0], lg_hsum4_ps512(acc[0][0], acc[0][1], acc[0][2], acc[0][3]));
	_mm_storeu_ps(t[1], lg_hsum4_ps512(acc[1][0], acc[1][1], acc[1][2], acc[1][3]));
	_mm_storeu_ps(t[2], lg_hsum4_ps512(acc[2][0], acc[2][1], acc[2][2], acc[2][3]));
	_mm_storeu_ps(t[3], lg_hsum4_ps512(acc[3][0], acc[3][1], acc[3][2], acc[3][3]));
	for (int r = 0; r < nr; r++)
		for (int c = 0; c < nc; c++)
			s[r * LG_DOTN_MAX + c] = t[r][c];
}

#endif							/* LG_KERNELS_MV_AVX512_H */
