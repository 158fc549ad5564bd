/*
 * kernels_dot_avx512.c — AVX-512 (F/BW/VL/DQ/VNNI, BF16 where present)
 * dot products and float helpers.
 *
 * Installed over the AVX2 table, replacing only what gains from AVX-512:
 * float dots, conversions and attention loops at 512 bits, and the int8
 * block dots with VNNI's vpdpbusd, which multiplies u8 by s8 and sums four
 * products into an int32 in one instruction (no 16-bit intermediate to
 * saturate).  The K-quant dots keep their AVX2 versions: their per-16/32
 * scales need the 16-bit products anyway.  The q8p activation prep is the
 * AVX2 one (same format).
 */
#include "backend_cpu_impl.h"

#include <immintrin.h>

#include "kernels_mv_avx512.h"
#include "simd_x86.h"
#include <string.h>

/* One f16 to float. */
static inline float
h2f(lg_f16 h)
{
	return _cvtsh_ss(h);
}

/* Σ x*y over int8 pairs, 8 int32 lanes, via VNNI; x's sign moved onto y. */
static inline __m256i
vnni_dot_i8(__m256i x, __m256i y)
{
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
}

/* 16 bytes of nibbles → 32 bytes 0..15, low nibbles first. */
static inline __m256i
nibbles_32(const uint8_t *p)
{
	const __m128i t = _mm_loadu_si128((const __m128i *) p);

	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

/* 32 bits → 32 byte mask, 0xFF where set (AVX-512BW mask register). */
static inline __m256i
bits_32(const uint8_t *p)
{
	uint32_t	b;

	memcpy(&b, p, 4);
	return _mm256_movm_epi8((__mmask32) b);
}

/* ---- float types ---- */

/* f32 · f32 */
static void
dot_f32(int64_t n, float *s, const void *vw, const void *vx)
{
	const float *a = (const float *) vw;
	const float *b = (const float *) vx;
	__m512		acc0 = _mm512_setzero_ps();
	__m512		acc1 = _mm512_setzero_ps();
	int64_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
		acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
	}
	if (i < n)
	{
		/* masked tail: no scalar loop */
		for (; i < n; i += 16)
		{
			__mmask16	m = n - i >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);

			acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
		}
	}
	*s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* 16 halves → 16 floats, masked */
static inline __m512
load_f16m(const lg_f16 *p, __mmask16 m)
{
	return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* f16 · f16 */
static void
dot_f16(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_f16 *a = (const lg_f16 *) vw;
	const lg_f16 *b = (const lg_f16 *) vx;
	__m512		acc0 = _mm512_setzero_ps();
	__m512		acc1 = _mm512_setzero_ps();
	int64_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (a + i))),
							   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (b + i))), acc0);
		acc1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (a + i + 16))),
							   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (b + i + 16))), acc1);
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);

		acc0 = _mm512_fmadd_ps(load_f16m(a + i, m), load_f16m(b + i, m), acc0);
	}
	*s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* 16 bfloat16 → 16 floats, masked */
static inline __m512
load_bf16m(const lg_bf16 *p, __mmask16 m)
{
	__m512i		v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

/* bf16 · bf16 by widening to f32 (AVX-512F) */
static void
dot_bf16(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_bf16 *a = (const lg_bf16 *) vw;
	const lg_bf16 *b = (const lg_bf16 *) vx;
	__m512		acc0 = _mm512_setzero_ps();
	__m512		acc1 = _mm512_setzero_ps();
	int64_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		acc0 = _mm512_fmadd_ps(load_bf16m(a + i, 0xFFFF), load_bf16m(b + i, 0xFFFF), acc0);
		acc1 = _mm512_fmadd_ps(load_bf16m(a + i + 16, 0xFFFF), load_bf16m(b + i + 16, 0xFFFF), acc1);
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);

		acc0 = _mm512_fmadd_ps(load_bf16m(a + i, m), load_bf16m(b + i, m), acc0);
	}
	*s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* bf16 · bf16 with AVX512-BF16's pairwise dot (vdpbf16ps) */
static void
dot_bf16_native(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_bf16 *a = (const lg_bf16 *) vw;
	const lg_bf16 *b = (const lg_bf16 *) vx;
	__m512		acc0 = _mm512_setzero_ps();
	__m512		acc1 = _mm512_setzero_ps();
	int64_t		i = 0;

	for (; i + 64 <= n; i += 64)
	{
		acc0 = _mm512_dpbf16_ps(acc0, (__m512bh) _mm512_loadu_si512(a + i), (__m512bh) _mm512_loadu_si512(b + i));
		acc1 = _mm512_dpbf16_ps(acc1, (__m512bh) _mm512_loadu_si512(a + i + 32),
								(__m512bh) _mm512_loadu_si512(b + i + 32));
	}
	for (; i < n; i += 16)
	{
		__mmask16	m = n - i >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << (n - i)) - 1);

		acc0 = _mm512_fmadd_ps(load_bf16m(a + i, m), load_bf16m(b + i, m), acc0);
	}
	*s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* ---- 32-value blocks, VNNI ---- */

/*
 * q8_0 and q4_0 weights against q8p activations (see backend_cpu_impl.h).
 * For q4_0 the unsigned nibbles go straight into vpdpbusd, whose
 * accumulator starts as (c, 0, ..., 0) with c = -8*Σq: one instruction for
 * the whole integer block dot.
 */

/* q8_0 · q8p */
static void
dot_q8_0_p(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q8_0 *x = (const lg_block_q8_0 *) vw;
	const int64_t nb = n / LG_QK;
	const int8_t *qy = (const int8_t *) vx;
	const float *dy = (const float *) (qy + n);
	__m256		acc0 = _mm256_setzero_ps();
	__m256		acc1 = _mm256_setzero_ps();
	int64_t		i = 0;

	for (; i + 2 <= nb; i += 2)
	{
		const __m256i p0 = vnni_dot_i8(_mm256_loadu_si256((const __m256i *) x[i].qs),
									   _mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)));
		const __m256i p1 = vnni_dot_i8(_mm256_loadu_si256((const __m256i *) x[i + 1].qs),
									   _mm256_loadu_si256((const __m256i *) (qy + (i + 1) * LG_QK)));
		const __m256 d0 = _mm256_mul_ps(_mm256_broadcast_ss(&lg_f16_table[x[i].d]), _mm256_broadcast_ss(&dy[i]));
		const __m256 d1 = _mm256_mul_ps(_mm256_broadcast_ss(&lg_f16_table[x[i + 1].d]), _mm256_broadcast_ss(&dy[i + 1]));

		acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < nb; i++)
	{
		const __m256i p = vnni_dot_i8(_mm256_loadu_si256((const __m256i *) x[i].qs),
									  _mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)));
		const __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(&lg_f16_table[x[i].d]), _mm256_broadcast_ss(&dy[i]));

		acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc0);
	}
	*s = lg_hsum_ps256(_mm256_add_ps(acc0, acc1));
}

/* q8_0 weights against up to 4 q8p activation rows */
static void
dotn_q8_0_p(int64_t n, int nc, float *s, const void *vw, const void *vx, size_t xs)
{
	const lg_block_q8_0 *x = (const lg_block_q8_0 *) vw;
	const int64_t nb = n / LG_QK;
	__m256		acc[LG_DOTN_MAX];

	for (int c = 0; c < nc; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++)
	{
		const __m256i qx = _mm256_loadu_si256((const __m256i *) x[i].qs);
		const __m256i ax = _mm256_abs_epi8(qx);
		const __m256 dx = _mm256_set1_ps(lg_f16_table[x[i].d]);

		for (int c = 0; c < nc; c++)
		{
			const int8_t *qy = (const int8_t *) vx + c * xs;
			const float *dy = (const float *) (qy + n);
			const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)), qx);
			const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);

			acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(dy[i])), _mm256_cvtepi32_ps(p), acc[c]);
		}
	}
	for (int c = 0; c < nc; c++)
		s[c] = lg_hsum_ps256(acc[c]);
}

/* One q4_0 block against a q8p block: Σ nibble*y + c in one vpdpbusd. */
static inline __m256i
q4p_block(const uint8_t *qs, const int8_t *qy, int32_t c)
{
	return _mm256_dpbusd_epi32(_mm256_zextsi128_si256(_mm_cvtsi32_si128(c)), nibbles_32(qs),
							   _mm256_loadu_si256((const __m256i *) qy));
}

/* q4_0 · q8p */
static void
dot_q4_0_p(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q4_0 *x = (const lg_block_q4_0 *) vw;
	const int64_t nb = n / LG_QK;
	const int8_t *qy = (const int8_t *) vx;
	const float *dy = (const float *) (qy + n);
	const int32_t *cy = (const int32_t *) (dy + nb);
	__m256		acc0 = _mm256_setzero_ps();
	__m256		acc1 = _mm256_setzero_ps();
	int64_t		i = 0;

	for (; i + 2 <= nb; i += 2)
	{
		const __m256i p0 = q4p_block(x[i].qs, qy + i * LG_QK, cy[i]);
		const __m256i p1 = q4p_block(x[i + 1].qs, qy + (i + 1) * LG_QK, cy[i + 1]);
		const __m256 d0 = _mm256_mul_ps(_mm256_broadcast_ss(&lg_f16_table[x[i].d]), _mm256_broadcast_ss(&dy[i]));
		const __m256 d1 = _mm256_mul_ps(_mm256_broadcast_ss(&lg_f16_table[x[i + 1].d]), _mm256_broadcast_ss(&dy[i + 1]));

		acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < nb; i++)
	{
		const __m256i p = q4p_block(x[i].qs, qy + i * LG_QK, cy[i]);
		const __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(&lg_f16_table[x[i].d]), _mm256_broadcast_ss(&dy[i]));

		acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc0);
	}
	*s = lg_hsum_ps256(_mm256_add_ps(acc0, acc1));
}

/* q4_0 weights against up to 4 q8p activation rows */
static void
dotn_q4_0_p(int64_t n, int nc, float *s, const void *vw, const void *vx, size_t xs)
{
	const lg_block_q4_0 *x = (const lg_block_q4_0 *) vw;
	const int64_t nb = n / LG_QK;
	__m256		acc[LG_DOTN_MAX];

	for (int c = 0; c < nc; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++)
	{
		const __m256i q = nibbles_32(x[i].qs);
		const __m256 dx = _mm256_set1_ps(lg_f16_table[x[i].d]);

		for (int c = 0; c < nc; c++)
		{
			const int8_t *qy = (const int8_t *) vx + c * xs;
			const float *dy = (const float *) (qy + n);
			const int32_t *cy = (const int32_t *) (dy + nb);
			const __m256i p = _mm256_dpbusd_epi32(_mm256_zextsi128_si256(_mm_cvtsi32_si128(cy[i])), q,
												  _mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)));

			acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(dy[i])), _mm256_cvtepi32_ps(p), acc[c]);
		}
	}
	for (int c = 0; c < nc; c++)
		s[c] = lg_hsum_ps256(acc[c]);
}

/* q4_1 · q8_1 */
static void
dot_q4_1(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q4_1 *x = (const lg_block_q4_1 *) vw;
	const lg_block_q8_1 *y = (const lg_block_q8_1 *) vx;
	const int64_t nb = n / LG_QK;
	__m256		acc = _mm256_setzero_ps();
	float		summs = 0.0f;

	for (int64_t i = 0; i < nb; i++)
	{
		const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), nibbles_32(x[i].qs),
											  _mm256_loadu_si256((const __m256i *) y[i].qs));

		summs += h2f(x[i].m) * h2f(y[i].s);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
	}
	*s = lg_hsum_ps256(acc) + summs;
}

/* q5_0 · q8_0: (nibble | bit<<4) - 16 as u8 minus 16 * Σy */
static void
dot_q5_0(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q5_0 *x = (const lg_block_q5_0 *) vw;
	const lg_block_q8_0 *y = (const lg_block_q8_0 *) vx;
	const int64_t nb = n / LG_QK;
	__m256		acc = _mm256_setzero_ps();

	for (int64_t i = 0; i < nb; i++)
	{
		const __m256i hi = _mm256_and_si256(bits_32(x[i].qh), _mm256_set1_epi8(0x10));
		const __m256i q = _mm256_or_si256(nibbles_32(x[i].qs), hi);
		const __m256i qy = _mm256_loadu_si256((const __m256i *) y[i].qs);
		const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q, qy),
										   _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(16), qy));

		acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
	}
	*s = lg_hsum_ps256(acc);
}

/* q5_1 · q8_1 */
static void
dot_q5_1(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q5_1 *x = (const lg_block_q5_1 *) vw;
	const lg_block_q8_1 *y = (const lg_block_q8_1 *) vx;
	const int64_t nb = n / LG_QK;
	__m256		acc = _mm256_setzero_ps();
	float		summs = 0.0f;

	for (int64_t i = 0; i < nb; i++)
	{
		const __m256i hi = _mm256_and_si256(bits_32(x[i].qh), _mm256_set1_epi8(0x10));
		const __m256i q = _mm256_or_si256(nibbles_32(x[i].qs), hi);
		const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q,
											  _mm256_loadu_si256((const __m256i *) y[i].qs));

		summs += h2f(x[i].m) * h2f(y[i].s);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
	}
	*s = lg_hsum_ps256(acc) + summs;
}

/* ---- float helpers at 512 bits ---- */

/* Mask of the first r (< 16) lanes, all 16 for r >= 16. */
static inline __mmask16
tail_mask(int64_t r)
{
	return r >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << r) - 1);
}

/* f32 → f16, round to nearest even */
static void
avx512_f32_to_f16(const float *x, lg_f16 *y, int64_t n)
{
	for (int64_t i = 0; i < n; i += 16)
	{
		const __mmask16 m = tail_mask(n - i);

		_mm256_mask_storeu_epi16(y + i, m,
								 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT));
	}
}

/* f16 → f32 */
static void
avx512_f16_to_f32(const lg_f16 *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i += 16)
	{
		const __mmask16 m = tail_mask(n - i);

		_mm512_mask_storeu_ps(y + i, m, load_f16m(x + i, m));
	}
}

/* y += a*x */
static void
avx512_axpy_f32(int64_t n, float *y, const float *x, float a)
{
	const __m512 va = _mm512_set1_ps(a);

	for (int64_t i = 0; i < n; i += 16)
	{
		const __mmask16 m = tail_mask(n - i);

		_mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
														_mm512_maskz_loadu_ps(m, y + i)));
	}
}

/* y += a*x, x in f16 */
static void
avx512_axpy_f16(int64_t n, float *y, const lg_f16 *x, float a)
{
	const __m512 va = _mm512_set1_ps(a);

	for (int64_t i = 0; i < n; i += 16)
	{
		const __mmask16 m = tail_mask(n - i);

		_mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, load_f16m(x + i, m),
														_mm512_maskz_loadu_ps(m, y + i)));
	}
}

/* ---- attention inner loops at 512 bits (see kernels_attn_avx2.c) ---- */

/* s[c] = (q · K[c]) * scale for nc rows of d floats, ks apart. */
static void
avx512_attn_scores(int64_t nc, int32_t d, const float *K, int64_t ks,
				   const float *q, float scale, float *s)
{
	int64_t		c = 0;

	for (; c + 4 <= nc; c += 4)
	{
		const float *k0 = K + c * ks;
		__m512		a0 = _mm512_setzero_ps();
		__m512		a1 = _mm512_setzero_ps();
		__m512		a2 = _mm512_setzero_ps();
		__m512		a3 = _mm512_setzero_ps();

		for (int32_t i = 0; i < d; i += 16)
		{
			const __mmask16 m = tail_mask(d - i);
			const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);

			a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + i), a0);
			a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + ks + i), a1);
			a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + 2 * ks + i), a2);
			a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + 3 * ks + i), a3);
		}
		_mm_storeu_ps(s + c, _mm_mul_ps(lg_hsum4_ps512(a0, a1, a2, a3), _mm_set1_ps(scale)));
	}
	for (; c < nc; c++)
	{
		const float *kr = K + c * ks;
		__m512		a0 = _mm512_setzero_ps();

		for (int32_t i = 0; i < d; i += 16)
		{
			const __mmask16 m = tail_mask(d - i);

			a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, kr + i), a0);
		}
		s[c] = _mm_cvtss_f32(lg_hsum4_ps512(a0, a0, a0, a0)) * scale;
	}
}

/* acc += Σ_c p[c] * V[c] for nc rows of d floats, vs apart; 64 dims in registers. */
static void
avx512_attn_accum(int64_t nc, int32_t d, const float *V, int64_t vs,
				  const float *p, float *acc)
{
	for (int32_t i0 = 0; i0 < d; i0 += 64)
	{
		const __mmask16 m0 = tail_mask(d - i0);
		const __mmask16 m1 = d - i0 > 16 ? tail_mask(d - i0 - 16) : 0;
		const __mmask16 m2 = d - i0 > 32 ? tail_mask(d - i0 - 32) : 0;
		const __mmask16 m3 = d - i0 > 48 ? tail_mask(d - i0 - 48) : 0;
		__m512		a0 = _mm512_maskz_loadu_ps(m0, acc + i0);
		__m512		a1 = _mm512_maskz_loadu_ps(m1, acc + i0 + 16);
		__m512		a2 = _mm512_maskz_loadu_ps(m2, acc + i0 + 32);
		__m512		a3 = _mm512_maskz_loadu_ps(m3, acc + i0 + 48);

		for (int64_t c = 0; c < nc; c++)
		{
			const float *vr = V + c * vs + i0;
			const __m512 pc = _mm512_set1_ps(p[c]);

			a0 = _mm512_fmadd_ps(pc, _mm512_maskz_loadu_ps(m0, vr), a0);
			a1 = _mm512_fmadd_ps(pc, _mm512_maskz_loadu_ps(m1, vr + 16), a1);
			a2 = _mm512_fmadd_ps(pc, _mm512_maskz_loadu_ps(m2, vr + 32), a2);
			a3 = _mm512_fmadd_ps(pc, _mm512_maskz_loadu_ps(m3, vr + 48), a3);
		}
		_mm512_mask_storeu_ps(acc + i0, m0, a0);
		_mm512_mask_storeu_ps(acc + i0 + 16, m1, a1);
		_mm512_mask_storeu_ps(acc + i0 + 32, m2, a2);
		_mm512_mask_storeu_ps(acc + i0 + 48, m3, a3);
	}
}

/* A tile of nc f16 cache rows, ss halves apart, to packed f32. */
static void
avx512_attn_tile_f16(int64_t nc, int32_t d, const lg_f16 *src, int64_t ss, float *dst)
{
	if (ss == d)
	{
		/* whole rows: one contiguous run */
		avx512_f16_to_f32(src, dst, nc * d);
		return;
	}
	for (int64_t c = 0; c < nc; c++)
		avx512_f16_to_f32(src + c * ss, dst + c * d, d);
}

/*
 * Install the AVX-512 kernels over the AVX2 ones.  q8_0/q4_0 keep the AVX2
 * table's q8p prep: same format.
 */
void
lg_cpu_kernels_avx512(lg_cpu_kernels *k, bool has_bf16)
{
	k->name = "avx512";
	k->dot[LG_TYPE_F32] = dot_f32;
	k->dot[LG_TYPE_F16] = dot_f16;
	k->dot[LG_TYPE_BF16] = has_bf16 ? dot_bf16_native : dot_bf16;
	k->dot[LG_TYPE_Q8_0] = dot_q8_0_p;
	k->dotn[LG_TYPE_Q8_0] = dotn_q8_0_p;
	k->dot[LG_TYPE_Q4_0] = dot_q4_0_p;
	k->dotn[LG_TYPE_Q4_0] = dotn_q4_0_p;
	k->dot[LG_TYPE_Q4_1] = dot_q4_1;
	k->dot[LG_TYPE_Q5_0] = dot_q5_0;
	k->dot[LG_TYPE_Q5_1] = dot_q5_1;
	k->f32_to_f16 = avx512_f32_to_f16;
	k->f16_to_f32 = avx512_f16_to_f32;
	k->axpy_f32 = avx512_axpy_f32;
	k->axpy_f16 = avx512_axpy_f16;
	k->attn_scores = avx512_attn_scores;
	k->attn_accum = avx512_attn_accum;
	k->attn_tile_f16 = avx512_attn_tile_f16;
}
