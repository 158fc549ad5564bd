/*
 * simd_x86.h — horizontal sums shared by the x86 kernel files.
 *
 * Include only from *_avx2.c / *_avx512.c files: they are compiled with at
 * least AVX2, and their code runs only after runtime CPU detection.
 */
#ifndef LG_SIMD_X86_H
#define LG_SIMD_X86_H

#include <immintrin.h>

/* Sum of the 8 lanes. */
static inline float
lg_hsum_ps256(__m256 v)
{
	__m128		lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	__m128		sh = _mm_movehdup_ps(lo);

	lo = _mm_add_ps(lo, sh);
	sh = _mm_movehl_ps(sh, lo);
	lo = _mm_add_ss(lo, sh);
	return _mm_cvtss_f32(lo);
}

/* The four horizontal sums of a0..a3, as one vector. */
static inline __m128
lg_hsum4_ps256(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
	const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));

	return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

#endif							/* LG_SIMD_X86_H */
