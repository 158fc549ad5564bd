/*
 * kernels_dot_avx2.c — AVX2/FMA/F16C dot products and float helpers.
 *
 * Compiled with -mavx2 -mfma -mf16c; nothing here runs unless
 * backend_cpu.c found those features at run time.  Each dot computes what
 * ggml's scalar vec_dot for the pair of types computes, with the integer
 * parts exact and only the float summation order (and FMA) differing.
 *
 * The int8 products use the usual trick: maddubs multiplies unsigned by
 * signed bytes, so |x| is paired with y carrying x's sign.  Products of q8
 * activations (|q| <= 127) never saturate its 16-bit pair sums.
 */
#include "backend_cpu_impl.h"

#include <immintrin.h>

#include "simd_x86.h"
#include <math.h>
#include <string.h>

/* ---- helpers ---- */

/* Sum of the 4 int32 lanes. */
static inline int
hsum_epi32_128(__m128i v)
{
	v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
	v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(v);
}

/* Sum of the 8 int32 lanes. */
static inline int
hsum_epi32(__m256i v)
{
	return hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* One f16 to float (F16C: exact). */
static inline float
h2f(lg_f16 h)
{
	return _cvtsh_ss(h);
}

/* Σ x*y over pairs of int8, as 8 int32 lanes; x's sign is moved onto y. */
static inline __m256i
dot_i8_epi32(__m256i x, __m256i y)
{
	const __m256i ax = _mm256_sign_epi8(x, x);
	const __m256i sy = _mm256_sign_epi8(y, x);

	return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/* Same for x already unsigned (0..127). */
static inline __m256i
dot_u8_epi32(__m256i ux, __m256i y)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(ux, y), _mm256_set1_epi16(1));
}

/* 16 bytes of nibbles → 32 bytes 0..15, low nibbles first (ggml's order). */
static inline __m256i
nibbles_32(const uint8_t *p)
{
	const __m128i t = _mm_loadu_si128((const __m128i *) p);

	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

/* 32 bits → 32 bytes, 0xFF where the bit is set. */
static inline __m256i
bits_32(const uint8_t *p)
{
	uint32_t	b;
	__m256i		v;

	memcpy(&b, p, 4);
	v = _mm256_shuffle_epi8(_mm256_set1_epi32((int) b),
							_mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
											  0x0101010101010101, 0x0000000000000000));
	v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
	return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

/* ---- float types ---- */

/* f32 · f32 */
static void
dot_f32(int64_t n, float *s, const void *vw, const void *vx)
{
	const float *a = (const float *) vw;
	const float *b = (const float *) vx;
	__m256		acc0 = _mm256_setzero_ps();
	__m256		acc1 = _mm256_setzero_ps();
	__m256		acc2 = _mm256_setzero_ps();
	__m256		acc3 = _mm256_setzero_ps();
	int64_t		i = 0;
	float		sum;

	for (; i + 32 <= n; i += 32)
	{
		acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
		acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
		acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
		acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
	}
	for (; i + 8 <= n; i += 8)
		acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
	sum = lg_hsum_ps256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
	for (; i < n; i++)
		sum += a[i] * b[i];
	*s = sum;
}

/* 8 halves → 8 floats */
static inline __m256
load_f16(const lg_f16 *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
}

/* f16 · f16 (ggml's F16 vec_dot: products and sums in float) */
static void
dot_f16(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_f16 *a = (const lg_f16 *) vw;
	const lg_f16 *b = (const lg_f16 *) vx;
	__m256		acc0 = _mm256_setzero_ps();
	__m256		acc1 = _mm256_setzero_ps();
	__m256		acc2 = _mm256_setzero_ps();
	__m256		acc3 = _mm256_setzero_ps();
	int64_t		i = 0;
	float		sum;

	for (; i + 32 <= n; i += 32)
	{
		acc0 = _mm256_fmadd_ps(load_f16(a + i), load_f16(b + i), acc0);
		acc1 = _mm256_fmadd_ps(load_f16(a + i + 8), load_f16(b + i + 8), acc1);
		acc2 = _mm256_fmadd_ps(load_f16(a + i + 16), load_f16(b + i + 16), acc2);
		acc3 = _mm256_fmadd_ps(load_f16(a + i + 24), load_f16(b + i + 24), acc3);
	}
	for (; i + 8 <= n; i += 8)
		acc0 = _mm256_fmadd_ps(load_f16(a + i), load_f16(b + i), acc0);
	sum = lg_hsum_ps256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
	for (; i < n; i++)
		sum += h2f(a[i]) * h2f(b[i]);
	*s = sum;
}

/* 8 bfloat16 → 8 floats: the bits are the high half of a float's. */
static inline __m256
load_bf16(const lg_bf16 *p)
{
	__m256i		v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* bf16 · bf16 */
static void
dot_bf16(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_bf16 *a = (const lg_bf16 *) vw;
	const lg_bf16 *b = (const lg_bf16 *) vx;
	__m256		acc0 = _mm256_setzero_ps();
	__m256		acc1 = _mm256_setzero_ps();
	int64_t		i = 0;
	float		sum;

	for (; i + 16 <= n; i += 16)
	{
		acc0 = _mm256_fmadd_ps(load_bf16(a + i), load_bf16(b + i), acc0);
		acc1 = _mm256_fmadd_ps(load_bf16(a + i + 8), load_bf16(b + i + 8), acc1);
	}
	for (; i + 8 <= n; i += 8)
		acc0 = _mm256_fmadd_ps(load_bf16(a + i), load_bf16(b + i), acc0);
	sum = lg_hsum_ps256(_mm256_add_ps(acc0, acc1));
	for (; i < n; i++)
		sum += lg_bf16_to_f32(a[i]) * lg_bf16_to_f32(b[i]);
	*s = sum;
}

/* ---- 32-value blocks ---- */

/*
 * q8_0 and q4_0 weights take q8p activations (see backend_cpu_impl.h):
 * the activation scale is a float already, the weight scale comes from
 * lg_f16_table with a broadcast load, and for q4_0 the nibbles stay
 * unsigned, the -8 riding in as c = -8*Σq added to the integer sum.
 * These are the types of the hot matvecs, so every uop counts.
 */

/* One q4_0 block against a q8p block: integer dot plus c. */
static inline __m256i
q4p_block(const uint8_t *qs, const int8_t *qy, int32_t c)
{
	const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles_32(qs),
															 _mm256_loadu_si256((const __m256i *) qy)),
										_mm256_set1_epi16(1));

	return _mm256_add_epi32(p, _mm256_zextsi128_si256(_mm_cvtsi32_si128(c)));
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
		const __m256 d0 = _mm256_mul_ps(_mm256_set1_ps(lg_f16_table[x[i].d]), _mm256_set1_ps(dy[i]));
		const __m256 d1 = _mm256_mul_ps(_mm256_set1_ps(lg_f16_table[x[i + 1].d]), _mm256_set1_ps(dy[i + 1]));

		acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < nb; i++)
	{
		const __m256i p = q4p_block(x[i].qs, qy + i * LG_QK, cy[i]);
		const __m256 d = _mm256_mul_ps(_mm256_set1_ps(lg_f16_table[x[i].d]), _mm256_set1_ps(dy[i]));

		acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc0);
	}
	*s = lg_hsum_ps256(_mm256_add_ps(acc0, acc1));
}

/*
 * q4_0 weights against up to 4 q8p activation rows; each row's sum is
 * dot_q4_0_p's to the bit (even blocks in one accumulator, odd in the
 * other), so a token's output does not depend on the batch.
 */
static void
dotn_q4_0_p(int64_t n, int nc, float *s, const void *vw, const void *vx, size_t xs)
{
	const lg_block_q4_0 *x = (const lg_block_q4_0 *) vw;
	const int64_t nb = n / LG_QK;
	__m256		acc[2][LG_DOTN_MAX];

	for (int c = 0; c < nc; c++)
		acc[0][c] = acc[1][c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++)
	{
		const __m256i q = nibbles_32(x[i].qs);
		const __m256 dx = _mm256_set1_ps(lg_f16_table[x[i].d]);

		for (int c = 0; c < nc; c++)
		{
			const int8_t *qy = (const int8_t *) vx + c * xs;
			const float *dy = (const float *) (qy + n);
			const int32_t *cy = (const int32_t *) (dy + nb);
			__m256i		p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *) (qy + i * LG_QK))),
											  _mm256_set1_epi16(1));

			p = _mm256_add_epi32(p, _mm256_zextsi128_si256(_mm_cvtsi32_si128(cy[i])));
			acc[i & 1][c] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(dy[i])), _mm256_cvtepi32_ps(p),
											acc[i & 1][c]);
		}
	}
	for (int c = 0; c < nc; c++)
		s[c] = lg_hsum_ps256(_mm256_add_ps(acc[0][c], acc[1][c]));
}

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
		const __m256i p0 = dot_i8_epi32(_mm256_loadu_si256((const __m256i *) x[i].qs),
										_mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)));
		const __m256i p1 = dot_i8_epi32(_mm256_loadu_si256((const __m256i *) x[i + 1].qs),
										_mm256_loadu_si256((const __m256i *) (qy + (i + 1) * LG_QK)));
		const __m256 d0 = _mm256_mul_ps(_mm256_set1_ps(lg_f16_table[x[i].d]), _mm256_set1_ps(dy[i]));
		const __m256 d1 = _mm256_mul_ps(_mm256_set1_ps(lg_f16_table[x[i + 1].d]), _mm256_set1_ps(dy[i + 1]));

		acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);
		acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);
	}
	for (; i < nb; i++)
	{
		const __m256i p = dot_i8_epi32(_mm256_loadu_si256((const __m256i *) x[i].qs),
									   _mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)));
		const __m256 d = _mm256_mul_ps(_mm256_set1_ps(lg_f16_table[x[i].d]), _mm256_set1_ps(dy[i]));

		acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc0);
	}
	*s = lg_hsum_ps256(_mm256_add_ps(acc0, acc1));
}

/* q8_0 weights against up to 4 q8p activation rows, summed as dot_q8_0_p does */
static void
dotn_q8_0_p(int64_t n, int nc, float *s, const void *vw, const void *vx, size_t xs)
{
	const lg_block_q8_0 *x = (const lg_block_q8_0 *) vw;
	const int64_t nb = n / LG_QK;
	__m256		acc[2][LG_DOTN_MAX];

	for (int c = 0; c < nc; c++)
		acc[0][c] = acc[1][c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < nb; i++)
	{
		const __m256i qx = _mm256_loadu_si256((const __m256i *) x[i].qs);
		const __m256i ax = _mm256_sign_epi8(qx, qx);
		const __m256 dx = _mm256_set1_ps(lg_f16_table[x[i].d]);

		for (int c = 0; c < nc; c++)
		{
			const int8_t *qy = (const int8_t *) vx + c * xs;
			const float *dy = (const float *) (qy + n);
			const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)), qx);
			const __m256i p = dot_u8_epi32(ax, sy);

			acc[i & 1][c] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(dy[i])), _mm256_cvtepi32_ps(p),
											acc[i & 1][c]);
		}
	}
	for (int c = 0; c < nc; c++)
		s[c] = lg_hsum_ps256(_mm256_add_ps(acc[0][c], acc[1][c]));
}

/*
 * roundf() for 8 floats of magnitude < 2^23: round half away from zero,
 * as ggml's reference q8_0 quantizer does (the SIMD one in ggml rounds
 * half to even; we follow lg_quantize_row).  v - trunc(v) is exact here.
 */
static inline __m256
round_half_away(__m256 v)
{
	const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
	const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
	const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);

	return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(sign, _mm256_set1_ps(1.0f))));
}

/*
 * A q8p row (see backend_cpu_impl.h), bit for bit what lg_q8p_prep (and
 * so lg_quantize_row's q8_0) gives: amax, d = amax/127, id = 1/d, q =
 * roundf(x*id), the same IEEE operations in the same order.  It runs once
 * per activation row of every matmul, so the scalar version's cost showed.
 */
void
lg_q8p_prep_avx2(const float *x, void *dst, int64_t cols, int bias)
{
	const int64_t nb = cols / LG_QK;
	int8_t	   *qs = (int8_t *) dst;
	float	   *dq = (float *) (qs + cols);
	int32_t    *c = (int32_t *) (dq + nb);
	const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));

	for (int64_t i = 0; i < nb; i++)
	{
		const float *xb = x + i * LG_QK;
		__m256		v0 = _mm256_loadu_ps(xb);
		__m256		v1 = _mm256_loadu_ps(xb + 8);
		__m256		v2 = _mm256_loadu_ps(xb + 16);
		__m256		v3 = _mm256_loadu_ps(xb + 24);
		__m256		m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
									  _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
		__m128		m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		float		amax;
		float		d;
		float		id;
		lg_f16		dh;
		__m256		vid;
		__m256i		i0,
					i1,
					i2,
					i3;

		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		amax = _mm_cvtss_f32(m4);
		d = amax / ((1 << 7) - 1);
		id = d != 0.0f ? 1.0f / d : 0.0f;
		dh = (lg_f16) _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
		dq[i] = h2f(dh);
		vid = _mm256_set1_ps(id);
		i0 = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v0, vid)));
		i1 = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v1, vid)));
		i2 = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v2, vid)));
		i3 = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v3, vid)));
		c[i] = bias * hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
		/* packs work within 128-bit lanes; the permute puts the bytes back in order */
		i0 = _mm256_packs_epi32(i0, i1);
		i2 = _mm256_packs_epi32(i2, i3);
		i0 = _mm256_packs_epi16(i0, i2);
		i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		_mm256_storeu_si256((__m256i *) (qs + i * LG_QK), i0);
	}
}

/* q8p activations for q4_0 weights (c = -8*Σq) and q8_0 weights (c unused) */
static void
prep_q4_0(const float *x, void *dst, int64_t cols)
{
	lg_q8p_prep_avx2(x, dst, cols, -8);
}

static void
prep_q8_0(const float *x, void *dst, int64_t cols)
{
	lg_q8p_prep_avx2(x, dst, cols, 0);
}

/* q4_1 · q8_1: d*q + m, the m part through q8_1's s = d*Σq */
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
		const __m256i p = dot_u8_epi32(nibbles_32(x[i].qs), _mm256_loadu_si256((const __m256i *) y[i].qs));

		summs += h2f(x[i].m) * h2f(y[i].s);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
	}
	*s = lg_hsum_ps256(acc) + summs;
}

/* q5_0 · q8_0: the fifth bit from qh; value (nibble | bit<<4) - 16 */
static void
dot_q5_0(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q5_0 *x = (const lg_block_q5_0 *) vw;
	const lg_block_q8_0 *y = (const lg_block_q8_0 *) vx;
	const int64_t nb = n / LG_QK;
	__m256		acc = _mm256_setzero_ps();

	for (int64_t i = 0; i < nb; i++)
	{
		/* bit clear: nibble | 0xF0 is nibble - 16 as int8; bit set: nibble itself */
		const __m256i hi = _mm256_andnot_si256(bits_32(x[i].qh), _mm256_set1_epi8((char) 0xF0));
		const __m256i q = _mm256_or_si256(nibbles_32(x[i].qs), hi);
		const __m256i p = dot_i8_epi32(q, _mm256_loadu_si256((const __m256i *) y[i].qs));

		acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
	}
	*s = lg_hsum_ps256(acc);
}

/* q5_1 · q8_1: value d*(nibble | bit<<4) + m */
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
		const __m256i p = dot_u8_epi32(q, _mm256_loadu_si256((const __m256i *) y[i].qs));

		summs += h2f(x[i].m) * h2f(y[i].s);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
	}
	*s = lg_hsum_ps256(acc) + summs;
}

/* ---- K-quants (256-value super-blocks against q8_K) ---- */

/*
 * Unpack q4_K/q5_K's 12 bytes of 6-bit scales and mins: out[0..7] are the
 * scales of the eight 32-value sub-blocks, out[8..15] their mins.
 */
static inline void
k4_scales(const uint8_t *q, uint8_t out[16])
{
	uint32_t	u[4];
	const uint32_t kmask1 = 0x3f3f3f3f;
	const uint32_t kmask2 = 0x0f0f0f0f;
	const uint32_t kmask3 = 0x03030303;
	uint32_t	mins_lo;

	memcpy(u, q, 12);
	u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
	mins_lo = u[1] & kmask1;
	u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
	u[2] = mins_lo;
	u[0] &= kmask1;
	memcpy(out, u, 16);
}

/* Σ_j mins[j] * (bsums[2j] + bsums[2j+1]): the min part of q4_K/q5_K. */
static inline int
k4_min_sum(const uint8_t *mins8, const int16_t *bsums)
{
	const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *) mins8));
	const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *) bsums),
									  _mm_loadu_si128((const __m128i *) (bsums + 8)));

	return hsum_epi32_128(_mm_madd_epi16(mins, bs));
}

/* q4_K · q8_K */
static void
dot_q4_K(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q4_K *x = (const lg_block_q4_K *) vw;
	const lg_block_q8_K *y = (const lg_block_q8_K *) vx;
	const int64_t nb = n / LG_QK_K;
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m256		acc = _mm256_setzero_ps();
	float		summ = 0.0f;

	for (int64_t i = 0; i < nb; i++)
	{
		const float d = y[i].d * h2f(x[i].d);
		const float dmin = y[i].d * h2f(x[i].dmin);
		const uint8_t *q4 = x[i].qs;
		const int8_t *q8 = y[i].qs;
		uint8_t		sm[16];
		__m256i		sumi = _mm256_setzero_si256();

		k4_scales(x[i].scales, sm);
		summ += dmin * (float) k4_min_sum(sm + 8, y[i].bsums);

		for (int j = 0; j < LG_QK_K / 64; j++)
		{
			const __m256i bits = _mm256_loadu_si256((const __m256i *) q4);
			const __m256i lo = _mm256_and_si256(bits, m4);
			const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
			const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *) q8));
			const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *) (q8 + 32)));

			sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j]), pl));
			sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j + 1]), ph));
			q4 += 32;
			q8 += 64;
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	*s = lg_hsum_ps256(acc) - summ;
}

/* q5_K · q8_K: q4_K plus a fifth bit per value from qh */
static void
dot_q5_K(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q5_K *x = (const lg_block_q5_K *) vw;
	const lg_block_q8_K *y = (const lg_block_q8_K *) vx;
	const int64_t nb = n / LG_QK_K;
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	const __m256i m1 = _mm256_set1_epi8(0x01);
	__m256		acc = _mm256_setzero_ps();
	float		summ = 0.0f;

	for (int64_t i = 0; i < nb; i++)
	{
		const float d = y[i].d * h2f(x[i].d);
		const float dmin = y[i].d * h2f(x[i].dmin);
		const uint8_t *q5 = x[i].qs;
		const int8_t *q8 = y[i].qs;
		__m256i		hb = _mm256_loadu_si256((const __m256i *) x[i].qh);
		uint8_t		sm[16];
		__m256i		sumi = _mm256_setzero_si256();

		k4_scales(x[i].scales, sm);
		summ += dmin * (float) k4_min_sum(sm + 8, y[i].bsums);

		for (int j = 0; j < LG_QK_K / 64; j++)
		{
			const __m256i bits = _mm256_loadu_si256((const __m256i *) q5);
			/* bit 2j of qh[l] belongs to value l of this 64, bit 2j+1 to value 32+l */
			const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(hb, m1), 4);
			const __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), m1), 4);
			const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
			const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
			const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *) q8));
			const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *) (q8 + 32)));

			sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j]), pl));
			sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_set1_epi16(sm[2 * j + 1]), ph));
			hb = _mm256_srli_epi16(hb, 2);
			q5 += 32;
			q8 += 64;
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	*s = lg_hsum_ps256(acc) - summ;
}

/*
 * q6_K · q8_K.  Values are (6 bits) - 32; we multiply the unsigned 6 bits
 * and take 32 * Σ scale*bsum off at the end, bsums being exactly the sums
 * of q8 over each 16-value scale group.
 */
static void
dot_q6_K(int64_t n, float *s, const void *vw, const void *vx)
{
	const lg_block_q6_K *x = (const lg_block_q6_K *) vw;
	const lg_block_q8_K *y = (const lg_block_q8_K *) vx;
	const int64_t nb = n / LG_QK_K;
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	const __m256i m2 = _mm256_set1_epi8(0x03);
	__m256		acc = _mm256_setzero_ps();

	for (int64_t i = 0; i < nb; i++)
	{
		const float d = y[i].d * h2f(x[i].d);
		const uint8_t *ql = x[i].ql;
		const uint8_t *qh = x[i].qh;
		const int8_t *q8 = y[i].qs;
		const int8_t *sc = x[i].scales;
		const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) sc));
		const __m256i bsums = _mm256_loadu_si256((const __m256i *) y[i].bsums);
		__m256i		sumi = _mm256_mullo_epi32(_mm256_madd_epi16(sc16, bsums), _mm256_set1_epi32(-32));

		for (int j = 0; j < LG_QK_K / 128; j++)
		{
			const __m256i l0 = _mm256_loadu_si256((const __m256i *) ql);
			const __m256i l1 = _mm256_loadu_si256((const __m256i *) (ql + 32));
			const __m256i h = _mm256_loadu_si256((const __m256i *) qh);
			const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
											   _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
			const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
											   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
			const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
											   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
			const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
											   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
			const __m256i p0 = _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *) q8));
			const __m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *) (q8 + 32)));
			const __m256i p2 = _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *) (q8 + 64)));
			const __m256i p3 = _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *) (q8 + 96)));
			/* scale of values 0..15 of group k is sc[2k], of 16..31 sc[2k+1] */
			const __m256i s0 = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
			const __m256i s1 = _mm256_set_m128i(_mm_set1_epi16(sc[3]), _mm_set1_epi16(sc[2]));
			const __m256i s2 = _mm256_set_m128i(_mm_set1_epi16(sc[5]), _mm_set1_epi16(sc[4]));
			const __m256i s3 = _mm256_set_m128i(_mm_set1_epi16(sc[7]), _mm_set1_epi16(sc[6]));

			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(s0, p0), _mm256_madd_epi16(s1, p1)));
			sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(s2, p2), _mm256_madd_epi16(s3, p3)));
			ql += 64;
			qh += 32;
			q8 += 128;
			sc += 8;
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	*s = lg_hsum_ps256(acc);
}

/* ---- float helpers ---- */

/* f32 → f16 with F16C, round to nearest even (what ggml's CPU path does). */
static void
avx2_f32_to_f16(const float *x, lg_f16 *y, int64_t n)
{
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *) (y + i),
						 _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

/* f16 → f32 */
static void
avx2_f16_to_f32(const lg_f16 *x, float *y, int64_t n)
{
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, load_f16(x + i));
	for (; i < n; i++)
		y[i] = h2f(x[i]);
}

/* y += a*x */
static void
avx2_axpy_f32(int64_t n, float *y, const float *x, float a)
{
	const __m256 va = _mm256_set1_ps(a);
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

/* y += a*x, x in f16 */
static void
avx2_axpy_f16(int64_t n, float *y, const lg_f16 *x, float a)
{
	const __m256 va = _mm256_set1_ps(a);
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * h2f(x[i]);
}

/* y *= a */
static void
avx2_scale_f32(int64_t n, float *y, float a)
{
	const __m256 va = _mm256_set1_ps(a);
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] *= a;
}

/*
 * exp(x) for 8 floats, accurate to ~1.5 ulp: ggml's ggml_v_expf (after
 * ARM's optimized-routines), rewritten.  x = n*ln2 + r with n integer,
 * exp(r) by a degree-5 polynomial, 2^n put into the exponent; large |x|
 * takes the slower branch that handles overflow and underflow.
 */
static inline __m256
exp_ps(__m256 x)
{
	const __m256 r = _mm256_set1_ps(0x1.8p23f);
	const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
	const __m256 n = _mm256_sub_ps(z, r);
	const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
									  _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
	const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
	const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
	const __m256i c = _mm256_castps_si256(_mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n),
														_mm256_set1_ps(126), _CMP_GT_OQ));
	const __m256 u = _mm256_mul_ps(b, b);
	const __m256 j = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
																	 _mm256_set1_ps(0x1.573e2ep-5f)), u,
													 _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
																	 _mm256_set1_ps(0x1.fffdb6p-2f))),
									 u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));

	if (!_mm256_movemask_ps(_mm256_castsi256_ps(c)))
		return _mm256_fmadd_ps(j, k, k);
	{
		const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
										   _mm256_set1_epi32(0x82000000u));
		const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000u)));
		const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
		const __m256i d = _mm256_castps_si256(_mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n),
															_mm256_set1_ps(192), _CMP_GT_OQ));

		return _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(d), _mm256_mul_ps(s1, s1)),
							_mm256_andnot_ps(_mm256_castsi256_ps(d),
											 _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(c),
																		_mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
														  _mm256_andnot_ps(_mm256_castsi256_ps(c), _mm256_fmadd_ps(k, j, k)))));
	}
}

/* x = exp(x - max), returning the sum */
static float
avx2_exp_sum(int64_t n, float *x, float max)
{
	const __m256 vm = _mm256_set1_ps(max);
	__m256		acc = _mm256_setzero_ps();
	int64_t		i = 0;
	double		sum;

	for (; i + 8 <= n; i += 8)
	{
		const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));

		_mm256_storeu_ps(x + i, e);
		acc = _mm256_add_ps(acc, e);
	}
	sum = lg_hsum_ps256(acc);
	for (; i < n; i++)
	{
		const float e = expf(x[i] - max);

		x[i] = e;
		sum += e;
	}
	return (float) sum;
}

/* g = silu(g) * u; silu(x) = x / (1 + exp(-x)) */
static void
avx2_swiglu(int64_t n, float *g, const float *u)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		const __m256 x = _mm256_loadu_ps(g + i);
		const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
		const __m256 si = _mm256_div_ps(x, _mm256_add_ps(one, e));

		_mm256_storeu_ps(g + i, _mm256_mul_ps(si, _mm256_loadu_ps(u + i)));
	}
	for (; i < n; i++)
	{
		const float x = g[i];

		g[i] = x / (1.0f + expf(-x)) * u[i];
	}
}

/* x = gelu(x) = x / (1 + exp(-2z)), z = sqrt(2/pi) * (x + 0.044715 x³) */
static void
avx2_gelu(int64_t n, float *x)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	const __m256 c0 = _mm256_set1_ps(-1.5957691216057308f);
	const __m256 c1 = _mm256_set1_ps(0.044715f);
	int64_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		const __m256 v = _mm256_loadu_ps(x + i);
		const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(c1, v), _mm256_mul_ps(v, v), v);
		/* exp's argument clamped so a large negative x gives 0, not NaN (inf/inf) */
		const __m256 e = exp_ps(_mm256_min_ps(_mm256_mul_ps(c0, inner), _mm256_set1_ps(80.0f)));

		_mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
	}
	for (; i < n; i++)
	{
		const float v = x[i];

		x[i] = v / (1.0f + expf(-1.5957691216057308f * (v + 0.044715f * v * v * v)));
	}
}

/* Install the AVX2 kernels over the scalar ones. */
void
lg_cpu_kernels_avx2(lg_cpu_kernels *k)
{
	k->name = "avx2";
	k->dot[LG_TYPE_F32] = dot_f32;
	k->dot[LG_TYPE_F16] = dot_f16;
	k->dot[LG_TYPE_BF16] = dot_bf16;
	k->dot[LG_TYPE_Q4_1] = dot_q4_1;
	k->dot[LG_TYPE_Q5_0] = dot_q5_0;
	k->dot[LG_TYPE_Q5_1] = dot_q5_1;
	k->dot[LG_TYPE_Q4_K] = dot_q4_K;
	k->dot[LG_TYPE_Q5_K] = dot_q5_K;
	k->dot[LG_TYPE_Q6_K] = dot_q6_K;
	k->dot[LG_TYPE_Q8_0] = dot_q8_0_p;
	k->dotn[LG_TYPE_Q8_0] = dotn_q8_0_p;
	k->prep[LG_TYPE_Q8_0] = prep_q8_0;
	k->prep_size[LG_TYPE_Q8_0] = lg_q8p_row_size;
	k->dot[LG_TYPE_Q4_0] = dot_q4_0_p;
	k->dotn[LG_TYPE_Q4_0] = dotn_q4_0_p;
	k->prep[LG_TYPE_Q4_0] = prep_q4_0;
	k->prep_size[LG_TYPE_Q4_0] = lg_q8p_row_size;
	k->f32_to_f16 = avx2_f32_to_f16;
	k->f16_to_f32 = avx2_f16_to_f32;
	k->axpy_f32 = avx2_axpy_f32;
	k->axpy_f16 = avx2_axpy_f16;
	k->scale_f32 = avx2_scale_f32;
	k->exp_sum = avx2_exp_sum;
	k->swiglu = avx2_swiglu;
	k->gelu = avx2_gelu;
}
