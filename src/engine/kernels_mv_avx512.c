/*
 * kernels_mv_avx512.c — multi-row kernels for AVX-512 with VNNI: several
 * weight rows against one activation row (dotr: generation) and against
 * several (dotrn: prompt processing).  Installed over the one-row dots of
 * kernels_dot_avx512.c for Q4_0, Q8_0 and F16 (whose activations become
 * f32 holding f16 values, see prep_f16).
 *
 * Generation reads every weight once per token, so its loops are bound by
 * memory, not arithmetic.  Two things matter:
 *
 * - Rows in flight.  Working on LG_DOTR_MAX rows at once keeps that many
 *   independent load streams going and loads/converts the activation
 *   block once for all of them.
 * - Prefetch.  The mapped model sits in 4 KiB pages and the hardware
 *   prefetchers stop at page boundaries, so each page would start with cold
 *   misses.  While a group of rows is worked on, the loop prefetches the
 *   next group's bytes (rows are contiguous) into L2, spread evenly over
 *   its iterations so a few lines are requested at a time.  Measured on
 *   weights far larger than L3: without the prefetch four rows at a time
 *   are slower than one; with it, 1.3-1.6x faster.
 *
 * Prompt processing is bound by arithmetic: dotrn keeps a 4 rows × 4
 * tokens tile of accumulators in registers, two blocks per 512-bit
 * register, so each weight block is decoded once per four tokens and
 * each activation block loaded once per four rows.
 *
 * Every path sums a (row, token) the same way, to the bit: the same
 * integer in each 32-bit lane of a block pair, the same float
 * accumulation (two blocks per 512-bit register, then lg_hsum4_ps512),
 * whether the token is decoded alone (dotr), in a tile (dotrn) or in a
 * tile of unpacked rows (dotrn_u), so batching never changes a token's
 * output (docs/batching.md, test_matmul_invariant).
 */
/*
 * At -O2 GCC 12 keeps the 4 × 4 tiles' accumulators in memory and stores
 * them back every iteration (the rows and tokens loops are unrolled only
 * after scalar replacement has run); -O3 unrolls first and keeps them in
 * registers.  Prompt processing ran 1.1-1.2x faster for it.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend_cpu_impl.h"

#include <immintrin.h>

#include "kernels_mv_avx512.h"
#include "simd_x86.h"

/* The GCC attribute that keeps a helper's body in its (unrolled) caller. */
#if defined(__GNUC__)
#define LG_INLINE static inline __attribute__((always_inline))
#else
#define LG_INLINE static inline
#endif

/* 16 bytes of nibbles → 32 bytes 0..15, low nibbles first. */
static inline __m256i
nibbles_32(const uint8_t *p)
{
	const __m128i t = _mm_loadu_si128((const __m128i *) p);

	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

/* Mask of the first r (< 16) lanes, all 16 for r >= 16. */
static inline __mmask16
tail_mask(int64_t r)
{
	return r >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << r) - 1);
}

/*
 * F16 weights take their activations as f32 holding f16 values (prep_f16):
 * the rounding to f16 that ggml's vec_dot_f16 sees, without converting
 * each activation again for every row group and tile.
 */

/* Activations for f16 weights: x rounded to f16 (to nearest even) and back. */
static void
prep_f16(const float *x, void *dst, int64_t cols)
{
	float	   *y = (float *) dst;

	for (int64_t i = 0; i < cols; i += 16)
	{
		const __mmask16 m = tail_mask(cols - i);
		const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);

		_mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(h));
	}
}

/* Bytes of a prep_f16 row. */
static size_t
prep_f16_size(int64_t cols)
{
	return (size_t) cols * sizeof(float);
}

/* f16 row · one prep_f16 row */
static void
dot_f16_x(int64_t n, float *s, const void *w, const void *vx)
{
	const lg_f16 *a = (const lg_f16 *) w;
	const float *x = (const float *) vx;
	__m512		acc0 = _mm512_setzero_ps();
	__m512		acc1 = _mm512_setzero_ps();
	int64_t		i = 0;

	for (; i + 32 <= n; i += 32)
	{
		acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (a + i))),
							   _mm512_loadu_ps(x + i), acc0);
		acc1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (a + i + 16))),
							   _mm512_loadu_ps(x + i + 16), acc1);
	}
	for (; i < n; i += 16)
	{
		const __mmask16 m = tail_mask(n - i);

		acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i)),
							   _mm512_maskz_loadu_ps(m, x + i), acc0);
	}
	*s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* f16 rows · one prep_f16 row */
static void
dotr_f16(int64_t n, int nr, float *s, const void *w, size_t ws, const void *vx)
{
	const float *x = (const float *) vx;
	const char *rows[LG_DOTR_MAX];
	const lg_f16 *a[LG_DOTR_MAX];
	__m512		acc[LG_DOTR_MAX];
	pf_cursor	pf = {(const char *) w + (size_t) nr * ws, 0, 0};
	int64_t		i = 0;

	group_rows(w, ws, nr, rows);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		a[r] = (const lg_f16 *) rows[r];
		acc[r] = _mm512_setzero_ps();
	}
	for (; i + 16 <= n; i += 16)
	{
		const __m512 xv = _mm512_loadu_ps(x + i);

		pf_advance(&pf, (size_t) nr * 16 * sizeof(lg_f16));
		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
			acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (a[r] + i))),
									 xv, acc[r]);
	}
	if (i < n)
	{
		const __mmask16 m = tail_mask(n - i);
		const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);

		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
			acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a[r] + i)), xv, acc[r]);
	}
	store_sums(s, nr, lg_hsum4_ps512(acc[0], acc[1], acc[2], acc[3]));
}

/* ---- several rows × several tokens (prompt processing) ---- */

/*
 * These work on two blocks per 512-bit register: block i in the low 256
 * bits, i + 1 in the high.  q8p keeps a row's quants contiguous, so one
 * load brings both blocks of an activation.  Each weight pair is decoded
 * once for LG_DOTN_MAX tokens and each activation pair loaded once for
 * LG_DOTR_MAX rows: 16 accumulators, the rest of the registers for the
 * decoded operands.
 */

/* Activation pair i, i+1 of a q8p row (only block i when `one`). */
static inline __m512i
y_pair(const int8_t *qy, int64_t i, bool one)
{
	return one ? _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) (qy + i * LG_QK)))
		: _mm512_loadu_si512(qy + i * LG_QK);
}

/* (a ×8 | b ×8) */
static inline __m512
f_pair(float a, float b)
{
	return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/*
 * One step of the q8_0 tile: blocks i, i+1 (only i when `one`).  Separate
 * so the main loop (one = false) and the odd last block are compiled
 * apart: with the test inside the loop GCC branched on it per token and
 * stored the accumulators every iteration.
 */
LG_INLINE void
q8_0_tile_step(int64_t n, int64_t i, const bool one, const char *const rows[LG_DOTR_MAX],
			   const char *const tok[LG_DOTN_MAX], __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX])
{
	const __m512i flip = _mm512_set1_epi8((char) 0x80);
	__m512i		q[LG_DOTR_MAX];
	__m512i		c0[LG_DOTR_MAX];
	__m512		dw[LG_DOTR_MAX];

	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		const lg_block_q8_0 *b = (const lg_block_q8_0 *) rows[r] + i;
		const __m256i lo = _mm256_loadu_si256((const __m256i *) b[0].qs);

		q[r] = one ? _mm512_zextsi256_si512(lo)
			: _mm512_inserti64x4(_mm512_castsi256_si512(lo),
								 _mm256_loadu_si256((const __m256i *) b[1].qs), 1);
		c0[r] = _mm512_sub_epi32(_mm512_setzero_si512(),
								 _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, q[r]));
		dw[r] = f_pair(lg_f16_table[b[0].d], one ? 0.0f : lg_f16_table[b[1].d]);
	}
	LG_UNROLL_ROWS
	for (int c = 0; c < LG_DOTN_MAX; c++)
	{
		const float *dy = (const float *) (tok[c] + n);
		const __m512i y = _mm512_xor_si512(y_pair((const int8_t *) tok[c], i, one), flip);
		const __m512 d = f_pair(dy[i], one ? 0.0f : dy[i + 1]);

		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
		{
			const __m512i p = _mm512_dpbusd_epi32(c0[r], y, q[r]);

			acc[r][c] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], d), _mm512_cvtepi32_ps(p), acc[r][c]);
		}
	}
}

/*
 * q8_0 rows × q8p tokens.  vpdpbusd multiplies u8 by s8, so the activation
 * goes in as y + 128 (a flip of its sign bit) and the weights as they are;
 * each accumulator starts at -128·Σw of its block, computed once per row.
 */
static void
dotrn_q8_0_p(int64_t n, int nr, int nc, float *s, const void *w, size_t ws,
			 const void *x, size_t xs)
{
	const int64_t nb = n / LG_QK;
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];
	int64_t		i = 0;

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (; i + 2 <= nb; i += 2)
		q8_0_tile_step(n, i, false, rows, tok, acc);
	if (i < nb)
		q8_0_tile_step(n, i, true, rows, tok, acc);
	store_tile(s, nr, nc, acc);
}

/*
 * Nibble pair of q4_0 blocks b[0], b[1] (only b[0] when `one`), low
 * nibbles first: 128-bit lanes (A, A, B, B) straight from two broadcast
 * loads, then the odd lanes shifted down to their high nibbles.
 */
LG_INLINE __m512i
nibbles_pair(const lg_block_q4_0 *b, const bool one)
{
	__m512i		t = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) b[0].qs));

	if (!one)
		t = _mm512_mask_broadcast_i32x4(t, 0xFF00, _mm_loadu_si128((const __m128i *) b[1].qs));
	t = _mm512_mask_srli_epi16(t, (__mmask32) 0xFF00FF00u, t, 4);
	t = _mm512_and_si512(t, _mm512_set1_epi8(0x0F));
	return one ? _mm512_zextsi256_si512(_mm512_castsi512_si256(t)) : t;
}

/* One step of the q4_0 tile, as q8_0_tile_step. */
LG_INLINE void
q4_0_tile_step(int64_t n, int64_t i, const bool one, const char *const rows[LG_DOTR_MAX],
			   const char *const tok[LG_DOTN_MAX], __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX])
{
	const int64_t nb = n / LG_QK;
	__m512i		q[LG_DOTR_MAX];
	__m512		dw[LG_DOTR_MAX];

	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		const lg_block_q4_0 *b = (const lg_block_q4_0 *) rows[r] + i;

		q[r] = nibbles_pair(b, one);
		dw[r] = f_pair(lg_f16_table[b[0].d], one ? 0.0f : lg_f16_table[b[1].d]);
	}
	LG_UNROLL_ROWS
	for (int c = 0; c < LG_DOTN_MAX; c++)
	{
		const float *dy = (const float *) (tok[c] + n);
		const int32_t *cy = (const int32_t *) (dy + nb);
		const __m512i y = y_pair((const int8_t *) tok[c], i, one);
		const __m512i c0 = _mm512_maskz_expandloadu_epi32(one ? 0x0001 : 0x0101, cy + i);
		const __m512 d = f_pair(dy[i], one ? 0.0f : dy[i + 1]);

		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
		{
			const __m512i p = _mm512_dpbusd_epi32(c0, q[r], y);

			acc[r][c] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], d), _mm512_cvtepi32_ps(p), acc[r][c]);
		}
	}
}

/*
 * q4_0 rows × q8p tokens: unsigned nibbles times y, each accumulator
 * starting at the token's c = -8·Σy of the block (lanes 0 and 8).
 */
static void
dotrn_q4_0_p(int64_t n, int nr, int nc, float *s, const void *w, size_t ws,
			 const void *x, size_t xs)
{
	const int64_t nb = n / LG_QK;
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];
	int64_t		i = 0;

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (; i + 2 <= nb; i += 2)
		q4_0_tile_step(n, i, false, rows, tok, acc);
	if (i < nb)
		q4_0_tile_step(n, i, true, rows, tok, acc);
	store_tile(s, nr, nc, acc);
}

/*
 * q4_0 rows unpacked for prompt processing (lg_unpack_fn): per pair of
 * blocks, the 64 nibbles as bytes in nibbles_pair's order, then the two
 * scales as 16 floats (f_pair's order): 128 bytes, ready to load.  An odd
 * last block is paired with a zero block of scale 0.  Decoding a row
 * group took a quarter of the tile's instructions, and without this a
 * row was decoded again for every 4 tokens.
 */
#define Q4_0U_PAIR_BYTES 128

/* Bytes of an unpacked q4_0 row of n values (a multiple of 64). */
static size_t
unpack_q4_0_size(int64_t n)
{
	return (size_t) ((n / LG_QK + 1) / 2) * Q4_0U_PAIR_BYTES;
}

/* Unpack nr q4_0 rows (see above). */
static void
unpack_q4_0(int64_t n, int nr, const void *w, size_t ws, void *dst)
{
	const int64_t nb = n / LG_QK;
	const size_t us = unpack_q4_0_size(n);

	for (int r = 0; r < nr; r++)
	{
		const lg_block_q4_0 *b = (const lg_block_q4_0 *) ((const char *) w + (size_t) r * ws);
		char	   *u = (char *) dst + (size_t) r * us;
		int64_t		i = 0;

		for (; i + 2 <= nb; i += 2, u += Q4_0U_PAIR_BYTES)
		{
			_mm512_store_si512(u, nibbles_pair(b + i, false));
			_mm512_store_ps(u + 64, f_pair(lg_f16_table[b[i].d], lg_f16_table[b[i + 1].d]));
		}
		if (i < nb)
		{
			_mm512_store_si512(u, nibbles_pair(b + i, true));
			_mm512_store_ps(u + 64, f_pair(lg_f16_table[b[i].d], 0.0f));
		}
	}
}

/*
 * One step of the unpacked q4_0 tile, as q4_0_tile_step: each vpdpbusd
 * starts at the token's -8·Σy of the block, so every lane holds the very
 * integer the plain tile and dotr_q4_0_p hold and a token's sum does not
 * depend on the path (docs/batching.md).  Adding that term once per 16
 * blocks at the end instead was a little faster but summed in another
 * order.
 */
LG_INLINE void
q4_0u_tile_step(int64_t n, int64_t i, const bool one, const char *const rows[LG_DOTR_MAX],
				const char *const tok[LG_DOTN_MAX], __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX])
{
	__m512i		q[LG_DOTR_MAX];
	__m512		dw[LG_DOTR_MAX];

	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		const char *u = rows[r] + (size_t) (i / 2) * Q4_0U_PAIR_BYTES;

		q[r] = _mm512_load_si512(u);
		dw[r] = _mm512_load_ps(u + 64);
	}
	LG_UNROLL_ROWS
	for (int c = 0; c < LG_DOTN_MAX; c++)
	{
		const float *dy = (const float *) (tok[c] + n);
		const int32_t *cy = (const int32_t *) (dy + n / LG_QK);
		const __m512i y = y_pair((const int8_t *) tok[c], i, one);
		const __m512i c0 = _mm512_maskz_expandloadu_epi32(one ? 0x0001 : 0x0101, cy + i);
		const __m512 d = f_pair(dy[i], one ? 0.0f : dy[i + 1]);

		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
			acc[r][c] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], d), _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c0, q[r], y)),
										acc[r][c]);
	}
}

/* Unpacked q4_0 rows × q8p tokens (lg_cpu_kernels.dotrn_u). */
static void
dotrn_q4_0_u(int64_t n, int nr, int nc, float *s, const void *w, size_t ws,
			 const void *x, size_t xs)
{
	const int64_t nb = n / LG_QK;
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];
	int64_t		i = 0;

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (; i + 2 <= nb; i += 2)
		q4_0u_tile_step(n, i, false, rows, tok, acc);
	if (i < nb)
		q4_0u_tile_step(n, i, true, rows, tok, acc);
store_tile(s, nr, nc, acc);
}

/*
 * q8_0 rows unpacked the same way: per pair of blocks, their 64 quants,
 * the two scales as 16 floats, then the tile's start values -128·Σq of
 * each group of 4 quants as 16 int32 (192 bytes).  The tile feeds the
 * tokens to vpdpbusd as y + 128 (unsigned), which adds 128·Σq; starting
 * from those values takes it off in every lane, so each lane holds the
 * integer dotr_q8_0_p's does and a token's sum does not depend on the
 * path (docs/batching.md).  Decoding a row pair took four instructions
 * of the plain tile's step.
 */
#define Q8_0U_PAIR_BYTES 192

/* Bytes of an unpacked q8_0 row of n values (a multiple of 64). */
static size_t
unpack_q8_0_size(int64_t n)
{
	return (size_t) ((n / LG_QK + 1) / 2) * Q8_0U_PAIR_BYTES;
}

/* Unpack nr q8_0 rows (see above). */
static void
unpack_q8_0(int64_t n, int nr, const void *w, size_t ws, void *dst)
{
	const int64_t nb = n / LG_QK;
	const size_t us = unpack_q8_0_size(n);
	const __m512i flip = _mm512_set1_epi8((char) 0x80);

	for (int r = 0; r < nr; r++)
	{
		const lg_block_q8_0 *b = (const lg_block_q8_0 *) ((const char *) w + (size_t) r * ws);
		char	   *u = (char *) dst + (size_t) r * us;

		for (int64_t i = 0; i < nb; i += 2, u += Q8_0U_PAIR_BYTES)
		{
			const bool	one = i + 1 == nb;
			const __m256i lo = _mm256_loadu_si256((const __m256i *) b[i].qs);
			const __m512i q = one ? _mm512_zextsi256_si512(lo)
				: _mm512_inserti64x4(_mm512_castsi256_si512(lo),
									 _mm256_loadu_si256((const __m256i *) b[i + 1].qs), 1);

			_mm512_store_si512(u, q);
			_mm512_store_ps(u + 64, f_pair(lg_f16_table[b[i].d], one ? 0.0f : lg_f16_table[b[i + 1].d]));
			_mm512_store_si512(u + 128, _mm512_sub_epi32(_mm512_setzero_si512(),
														 _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, q)));
		}
	}
}

/* One step of the unpacked q8_0 tile: q8_0_tile_step's, the row decoded already. */
LG_INLINE void
q8_0u_tile_step(int64_t n, int64_t i, const bool one, const char *const rows[LG_DOTR_MAX],
				const char *const tok[LG_DOTN_MAX], __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX])
{
	const __m512i flip = _mm512_set1_epi8((char) 0x80);
	__m512i		q[LG_DOTR_MAX];
	__m512i		c0[LG_DOTR_MAX];
	__m512		dw[LG_DOTR_MAX];

	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		const char *u = rows[r] + (size_t) (i / 2) * Q8_0U_PAIR_BYTES;

		q[r] = _mm512_load_si512(u);
		dw[r] = _mm512_load_ps(u + 64);
		c0[r] = _mm512_load_si512(u + 128);
	}
	LG_UNROLL_ROWS
	for (int c = 0; c < LG_DOTN_MAX; c++)
	{
		const float *dy = (const float *) (tok[c] + n);
		const __m512i y = _mm512_xor_si512(y_pair((const int8_t *) tok[c], i, one), flip);
		const __m512 d = f_pair(dy[i], one ? 0.0f : dy[i + 1]);

		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
			acc[r][c] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], d), _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c0[r], y, q[r])),
										acc[r][c]);
	}
}

/* Unpacked q8_0 rows × q8p tokens (lg_cpu_kernels.dotrn_u). */
static void
dotrn_q8_0_u(int64_t n, int nr, int nc, float *s, const void *w, size_t ws,
			 const void *x, size_t xs)
{
	const int64_t nb = n / LG_QK;
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];
	int64_t		i = 0;

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (; i + 2 <= nb; i += 2)
		q8_0u_tile_step(n, i, false, rows, tok, acc);
	if (i < nb)
		q8_0u_tile_step(n, i, true, rows, tok, acc);
	store_tile(s, nr, nc, acc);
}

/*
 * One step of q8_0 rows · one q8p row: blocks i, i+1 (only i when `one`)
 * of every row in one 512-bit register, the integers and the float
 * accumulation exactly q8_0_tile_step's, so a token's sums are the same
 * whether it is decoded alone or in a prompt tile (docs/batching.md).
 */
LG_INLINE void
q8_0_rows_step(int64_t n, int64_t i, const bool one, const char *const rows[LG_DOTR_MAX],
			   const int8_t *qy, __m512 acc[LG_DOTR_MAX])
{
	const __m512i flip = _mm512_set1_epi8((char) 0x80);
	const float *dy = (const float *) (qy + n);
	const __m512i y = _mm512_xor_si512(y_pair(qy, i, one), flip);
	const __m512 d = f_pair(dy[i], one ? 0.0f : dy[i + 1]);

	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		const lg_block_q8_0 *b = (const lg_block_q8_0 *) rows[r] + i;
		const __m256i lo = _mm256_loadu_si256((const __m256i *) b[0].qs);
		const __m512i q = one ? _mm512_zextsi256_si512(lo)
			: _mm512_inserti64x4(_mm512_castsi256_si512(lo),
								 _mm256_loadu_si256((const __m256i *) b[1].qs), 1);
		const __m512i c0 = _mm512_sub_epi32(_mm512_setzero_si512(),
											_mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, q));
		const __m512 dw = f_pair(lg_f16_table[b[0].d], one ? 0.0f : lg_f16_table[b[1].d]);
		const __m512i p = _mm512_dpbusd_epi32(c0, y, q);

		acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, d), _mm512_cvtepi32_ps(p), acc[r]);
	}
}

/* q8_0 rows · one q8p row, two blocks a step (q8_0_rows_step). */
static void
dotr_q8_0_p(int64_t n, int nr, float *s, const void *w, size_t ws, const void *vx)
{
	const int64_t nb = n / LG_QK;
	const char *rows[LG_DOTR_MAX];
	__m512		acc[LG_DOTR_MAX];
	pf_cursor	pf = {(const char *) w + (size_t) nr * ws, 0, 0};
	int64_t		i = 0;

	group_rows(w, ws, nr, rows);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
		acc[r] = _mm512_setzero_ps();
	for (; i + 2 <= nb; i += 2)
	{
		pf_advance(&pf, (size_t) nr * 2 * sizeof(lg_block_q8_0));
		q8_0_rows_step(n, i, false, rows, (const int8_t *) vx, acc);
	}
	if (i < nb)
		q8_0_rows_step(n, i, true, rows, (const int8_t *) vx, acc);
	store_sums(s, nr, lg_hsum4_ps512(acc[0], acc[1], acc[2], acc[3]));
}

/*
 * One step of q4_0 rows · one q8p row: blocks i, i+1 (only i when `one`)
 * of every row, both in one 512-bit register as in the tiles.
 */
LG_INLINE void
q4_0_rows_step(int64_t n, int64_t i, const bool one, const char *const rows[LG_DOTR_MAX],
			   const int8_t *qy, __m512 acc[LG_DOTR_MAX])
{
	const int64_t nb = n / LG_QK;
	const float *dy = (const float *) (qy + n);
	const int32_t *cy = (const int32_t *) (dy + nb);
	const __m512i y = y_pair(qy, i, one);
	const __m512i c0 = _mm512_maskz_expandloadu_epi32(one ? 0x0001 : 0x0101, cy + i);
	const __m512 d = f_pair(dy[i], one ? 0.0f : dy[i + 1]);

	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		const lg_block_q4_0 *b = (const lg_block_q4_0 *) rows[r] + i;
		const __m512i p = _mm512_dpbusd_epi32(c0, nibbles_pair(b, one), y);
		const __m512 dw = f_pair(lg_f16_table[b[0].d], one ? 0.0f : lg_f16_table[b[1].d]);

		acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, d), _mm512_cvtepi32_ps(p), acc[r]);
	}
}

/*
 * q4_0 rows · one q8p row: the unsigned nibbles go straight into vpdpbusd,
 * whose accumulator starts as (c, 0, ..., 0) with c = -8·Σy (see
 * backend_cpu_impl.h), shared by all rows.  Two blocks a step: at one a
 * step the loop issued about 10 instructions per 18-byte block and could
 * not keep up with memory.
 */
static void
dotr_q4_0_p(int64_t n, int nr, float *s, const void *w, size_t ws, const void *vx)
{
	const int64_t nb = n / LG_QK;
	const char *rows[LG_DOTR_MAX];
	__m512		acc[LG_DOTR_MAX];
	pf_cursor	pf = {(const char *) w + (size_t) nr * ws, 0, 0};
	int64_t		i = 0;

	group_rows(w, ws, nr, rows);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
		acc[r] = _mm512_setzero_ps();
	for (; i + 2 <= nb; i += 2)
	{
		pf_advance(&pf, (size_t) nr * 2 * sizeof(lg_block_q4_0));
		q4_0_rows_step(n, i, false, rows, (const int8_t *) vx, acc);
	}
	if (i < nb)
		q4_0_rows_step(n, i, true, rows, (const int8_t *) vx, acc);
	store_sums(s, nr, lg_hsum4_ps512(acc[0], acc[1], acc[2], acc[3]));
}

/*
 * f16 rows × prep_f16 tokens: each 16-wide slice of a row converted to
 * floats once for the whole 4 × 4 tile; the tokens need no conversion, so
 * a slice costs 4 conversions and 16 FMAs (it was 8 and 16 with f16
 * tokens).
 */
static void
dotrn_f16(int64_t n, int nr, int nc, float *s, const void *w, size_t ws,
		  const void *x, size_t xs)
{
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (int64_t i = 0; i < n; i += 16)
	{
		const __mmask16 m = tail_mask(n - i);
		__m512		a[LG_DOTR_MAX];

		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
			a[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const lg_f16 *) rows[r] + i));
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
		{
			const __m512 b = _mm512_maskz_loadu_ps(m, (const float *) tok[c] + i);

			LG_UNROLL_ROWS
			for (int r = 0; r < LG_DOTR_MAX; r++)
				acc[r][c] = _mm512_fmadd_ps(a[r], b, acc[r][c]);
		}
	}
	store_tile(s, nr, nc, acc);
}

/*
 * f16 rows unpacked for prompt processing (lg_unpack_fn): each row
 * converted to f32 once per tile, 64-byte aligned rows.  vcvtph2ps is two
 * uops on the FMA ports, so dotrn_f16 spent a third of a slice's issue
 * slots converting (4 conversions for 16 FMAs) and again for every group
 * of 4 tokens; from LG_MM_UNPACK_MIN tokens the tile converts once.  The
 * conversion is exact, so each (row, token) sum is dotrn_f16's and
 * dotr_f16's, to the bit (test_matmul_invariant).
 */

/* Bytes of an unpacked f16 row of n values. */
static size_t
unpack_f16_size(int64_t n)
{
	return ((size_t) n * sizeof(float) + 63) & ~(size_t) 63;
}

/* Unpack nr f16 rows to f32 (zeros past n up to the 16-lane boundary). */
static void
unpack_f16(int64_t n, int nr, const void *w, size_t ws, void *dst)
{
	const size_t us = unpack_f16_size(n);

	for (int r = 0; r < nr; r++)
	{
		const lg_f16 *a = (const lg_f16 *) ((const char *) w + (size_t) r * ws);
		float	   *u = (float *) ((char *) dst + (size_t) r * us);

		for (int64_t i = 0; i < n; i += 16)
		{
			const __mmask16 m = tail_mask(n - i);

			_mm512_mask_storeu_ps(u + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i)));
		}
	}
}

/* Unpacked f16 rows × prep_f16 tokens (lg_cpu_kernels.dotrn_u): dotrn_f16's sums. */
static void
dotrn_f16_u(int64_t n, int nr, int nc, float *s, const void *w, size_t ws,
			const void *x, size_t xs)
{
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (int64_t i = 0; i < n; i += 16)
	{
		const __mmask16 m = tail_mask(n - i);
		__m512		a[LG_DOTR_MAX];

		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
			a[r] = _mm512_maskz_loadu_ps(m, (const float *) rows[r] + i);
		LG_UNROLL_ROWS
		for (int c = 0; c < LG_DOTN_MAX; c++)
		{
			const __m512 b = _mm512_maskz_loadu_ps(m, (const float *) tok[c] + i);

			LG_UNROLL_ROWS
			for (int r = 0; r < LG_DOTR_MAX; r++)
				acc[r][c] = _mm512_fmadd_ps(a[r], b, acc[r][c]);
		}
	}
	store_tile(s, nr, nc, acc);
}

/*
 * Install the multi-row kernels (the CPU has AVX-512 VNNI) over the
 * AVX-512 table.  The q4_0/q8_0 ones read q8p activations, so they go in
 * only where the table already converts those types' activations to q8p.
 * F16 gets its activation form here, so every F16 dot is replaced with
 * one that reads it.
 */
void
lg_cpu_kernels_mv_avx512(lg_cpu_kernels *k)
{
	if (k->prep[LG_TYPE_Q8_0] != NULL)
	{
		k->dotr[LG_TYPE_Q8_0] = dotr_q8_0_p;
		k->dotrn[LG_TYPE_Q8_0] = dotrn_q8_0_p;
		k->unpack[LG_TYPE_Q8_0] = unpack_q8_0;
		k->unpack_size[LG_TYPE_Q8_0] = unpack_q8_0_size;
		k->dotrn_u[LG_TYPE_Q8_0] = dotrn_q8_0_u;
	}
	if (k->prep[LG_TYPE_Q4_0] != NULL)
	{
		k->dotr[LG_TYPE_Q4_0] = dotr_q4_0_p;
		k->dotrn[LG_TYPE_Q4_0] = dotrn_q4_0_p;
		k->unpack[LG_TYPE_Q4_0] = unpack_q4_0;
		k->unpack_size[LG_TYPE_Q4_0] = unpack_q4_0_size;
		k->dotrn_u[LG_TYPE_Q4_0] = dotrn_q4_0_u;
	}
	k->prep[LG_TYPE_F16] = prep_f16;
	k->prep_size[LG_TYPE_F16] = prep_f16_size;
	k->dot[LG_TYPE_F16] = dot_f16_x;
	k->dotn[LG_TYPE_F16] = NULL;
	k->dotr[LG_TYPE_F16] = dotr_f16;
	k->dotrn[LG_TYPE_F16] = dotrn_f16;
	k->unpack[LG_TYPE_F16] = unpack_f16;
	k->unpack_size[LG_TYPE_F16] = unpack_f16_size;
	k->dotrn_u[LG_TYPE_F16] = dotrn_f16_u;
}
