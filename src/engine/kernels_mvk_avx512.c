/*
 * kernels_mvk_avx512.c — multi-row AVX-512 kernels for the K-quants Q4_K
 * and Q6_K against Q8_K activations: 4 rows × 1 token with L2 prefetch
 * (generation) and 4 rows × 4 tokens (prompt processing), the same shapes
 * as kernels_mv_avx512.c gives the 32-value block types.
 *
 * A super-block is 256 values in four chunks of 64, and each chunk is one
 * 512-bit register of unsigned quants (Q4_K: 0..15, Q6_K: 0..63).  Their
 * scales change every 32 (Q4_K) or 16 (Q6_K) values, so a chunk's dot is
 * vpmaddubsw (u8 × s8 → pairs summed to int16; at most 63·127·2 = 16002,
 * no saturation) then vpdpwssd against a register of the chunk's scales
 * as int16 (VNNI: pairs summed into the int32 accumulator).  Two integer
 * instructions per chunk and pair; the integer sums stay exact over the
 * whole super-block and become floats once per super-block.
 *
 * The parts that do not depend on the weights' quants come from the
 * activation's bsums (sums of q8 over each 16 values):
 * - Q4_K's min term, dmin·Σ_j min_j·(bsum over sub-block j), is a float
 *   product of eight mins by eight sub-block sums, one FMA per pair.
 * - Q6_K's -32 offset is -32·Σ_g scale_g·bsum_g, one more vpdpwssd that
 *   starts each pair's accumulator.
 *
 * The integer sums equal those of the one-row kernels and the scalar
 * reference; only the order of the float accumulation differs.
 */
#include "backend_cpu_impl.h"

#include <immintrin.h>
#include <string.h>

#include "kernels_mv_avx512.h"

/* GCC keeps small helpers with many vector arguments out of line otherwise. */
#if defined(__GNUC__)
#define LG_INLINE static inline __attribute__((always_inline))
#else
#define LG_INLINE static inline
#endif

/* Mask of the high 256 bits' 16-bit lanes. */
#define HI_LANES16 ((__mmask32) 0xFFFF0000u)

/*
 * Unpack Q4_K's 12 bytes of 6-bit scales and mins: out[0..7] are the
 * scales of the eight 32-value sub-blocks, out[8..15] their mins.
 */
LG_INLINE void
k4_scales(const uint8_t *q, uint8_t out[16])
{
	uint32_t	u[4];
	uint32_t	mins_lo;

	memcpy(u, q, 12);
	u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
	mins_lo = u[1] & 0x3f3f3f3f;
	u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
	u[2] = mins_lo;
	u[0] &= 0x3f3f3f3f;
	memcpy(out, u, 16);
}

/*
 * vpshufb control turning a register of the sixteen bytes out[] of
 * k4_scales (in every 128-bit lane) into chunk j's scales as int16: the
 * low 256 bits sub-block 2j's, the high 256 bits 2j+1's (a 0x80 index
 * gives the zero high byte).
 */
LG_INLINE __m512i
k4_scale_ctrl(int j)
{
	return _mm512_mask_blend_epi16(HI_LANES16, _mm512_set1_epi16((short) (0x8000 | (2 * j))),
								   _mm512_set1_epi16((short) (0x8000 | (2 * j + 1))));
}

/* Chunk j of a Q4_K block: low nibbles of qs[32j..] then the high ones. */
LG_INLINE __m512i
k4_chunk(const lg_block_q4_K *b, int j)
{
	__m512i		t = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (b->qs + 32 * j)));

	t = _mm512_mask_srli_epi16(t, HI_LANES16, t, 4);
	return _mm512_and_si512(t, _mm512_set1_epi8(0x0F));
}

/*
 * Q4_K rows unpacked for prompt processing (lg_unpack_fn): per super-block,
 * each chunk's quants as bytes (k4_chunk) and its scales as int16 (the
 * shuffle of q4_K_tile), 128 bytes a chunk; then dmin·min_j as 8 floats
 * and d as a float, padded to 64 bytes.  576 bytes per 256 values, ready
 * to load, where the tile otherwise decoded each row again for every 4
 * tokens.
 */
#define K4U_BLOCK_BYTES 576

/*
 * Q4_K rows × NC Q8_K tokens (NC 1 or 4, a constant once inlined):
 * acc[r][c] collects w_r · x_c.  With pf, the next row group is
 * prefetched as the loop goes (generation).
 */
LG_INLINE void
q4_K_tile(int64_t nb, const int NC, const bool unpacked, const char *const rows[LG_DOTR_MAX],
		  const char *const tok[LG_DOTN_MAX], __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX], pf_cursor *pf)
{
	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < NC; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (int64_t i = 0; i < nb; i++)
	{
		_Alignas(16) uint8_t sm[LG_DOTR_MAX][16];	/* k4_scales of each row */
		__m512i		sumi[LG_DOTR_MAX][LG_DOTN_MAX];

		if (pf != NULL)
			pf_advance(pf, LG_DOTR_MAX * sizeof(lg_block_q4_K));
		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX && !unpacked; r++)
		{
			k4_scales(((const lg_block_q4_K *) rows[r] + i)->scales, sm[r]);
		}
		LG_UNROLL_ROWS
		for (int j = 0; j < LG_QK_K / 64; j++)
		{
			const __m512i ctrl = k4_scale_ctrl(j);
			__m512i		q[LG_DOTR_MAX];
			__m512i		sc[LG_DOTR_MAX];

			LG_UNROLL_ROWS
			for (int r = 0; r < LG_DOTR_MAX; r++)
			{
				if (unpacked)
				{
					const char *u = rows[r] + (size_t) i * K4U_BLOCK_BYTES + 128 * j;

					q[r] = _mm512_load_si512(u);
					sc[r] = _mm512_load_si512(u + 64);
					continue;
				}
				q[r] = k4_chunk((const lg_block_q4_K *) rows[r] + i, j);
				/* from memory: a broadcast load, and no register held across chunks */
				sc[r] = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_load_si128((const __m128i *) sm[r])), ctrl);
			}
			LG_UNROLL_ROWS
			for (int c = 0; c < NC; c++)
			{
				const lg_block_q8_K *y = (const lg_block_q8_K *) tok[c] + i;
				const __m512i yv = _mm512_loadu_si512(y->qs + 64 * j);

				LG_UNROLL_ROWS
				for (int r = 0; r < LG_DOTR_MAX; r++)
				{
					const __m512i p = _mm512_maddubs_epi16(q[r], yv);

					/* the first chunk starts the sum: no zeroed register to copy */
					sumi[r][c] = j == 0 ? _mm512_madd_epi16(p, sc[r]) : _mm512_dpwssd_epi32(sumi[r][c], p, sc[r]);
				}
			}
		}
		/*
		 * The float scales only now: set up before the chunks they held 16
		 * registers through them, and the integer sums were spilled.
		 */
		__m512		dy[LG_DOTN_MAX];
		__m512		bs[LG_DOTN_MAX];	/* d·(bsum of sub-block j), lanes 0..7 */

		LG_UNROLL_ROWS
		for (int c = 0; c < NC; c++)
		{
			const lg_block_q8_K *y = (const lg_block_q8_K *) tok[c] + i;
			const __m256i s = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) y->bsums),
												_mm256_set1_epi16(1));

			dy[c] = _mm512_set1_ps(y->d);
			bs[c] = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm512_castps512_ps256(dy[c])));
		}
		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
		{
			__m512		dw;
			__m512		mn;		/* dmin·min_j, lanes 0..7 */

			if (unpacked)
			{
				const char *u = rows[r] + (size_t) i * K4U_BLOCK_BYTES + 512;

				mn = _mm512_zextps256_ps512(_mm256_load_ps((const float *) u));
				dw = _mm512_set1_ps(*(const float *) (u + 32));
			}
			else
			{
				const lg_block_q4_K *b = (const lg_block_q4_K *) rows[r] + i;
				const __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (sm[r] + 8))));

				dw = _mm512_set1_ps(lg_f16_table[b->d]);
				mn = _mm512_zextps256_ps512(_mm256_mul_ps(m, _mm256_set1_ps(lg_f16_table[b->dmin])));
			}

			LG_UNROLL_ROWS
			for (int c = 0; c < NC; c++)
			{
				acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r][c]), _mm512_mul_ps(dw, dy[c]), acc[r][c]);
				acc[r][c] = _mm512_fnmadd_ps(mn, bs[c], acc[r][c]);
			}
		}
	}
}

/*
 * vpshufb control for Q6_K scales: with four int16 scales in the low 8
 * bytes of every 128-bit lane, lane L gets scale L in all eight int16s
 * (values 16L..16L+15 of the chunk).
 */
LG_INLINE __m512i
k6_scale_ctrl(void)
{
	return _mm512_set_epi32(0x07060706, 0x07060706, 0x07060706, 0x07060706,
							0x05040504, 0x05040504, 0x05040504, 0x05040504,
							0x03020302, 0x03020302, 0x03020302, 0x03020302,
							0x01000100, 0x01000100, 0x01000100, 0x01000100);
}

/*
 * Chunk j (values 64j..64j+63) of a Q6_K block as u8 0..63.  Half h = j/2
 * holds values 128h.. in ql[64h..64h+63] (low nibbles: the first 64, high:
 * the next 64) and qh[32h..32h+31] (bit pairs 0-1, 2-3, 4-5, 6-7 for the
 * four runs of 32).
 */
LG_INLINE __m512i
k6_chunk(const lg_block_q6_K *b, int j)
{
	const int	h = j / 2;
	const __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
	__m512i		qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (b->qh + 32 * h)));

	/* high 256 bits: the next run's bit pair */
	qh = _mm512_mask_srli_epi16(qh, HI_LANES16, qh, 2);
	if (j % 2 == 0)
		return _mm512_ternarylogic_epi32(ql, _mm512_set1_epi8(0x0F),
										 _mm512_and_si512(_mm512_slli_epi16(qh, 4), _mm512_set1_epi8(0x30)),
										 0xEA);
	return _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), _mm512_set1_epi8(0x0F),
									 _mm512_and_si512(qh, _mm512_set1_epi8(0x30)), 0xEA);
}

/* Q6_K rows × NC Q8_K tokens; as q4_K_tile. */
LG_INLINE void
q6_K_tile(int64_t nb, const int NC, const char *const rows[LG_DOTR_MAX],
		  const char *const tok[LG_DOTN_MAX], __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX], pf_cursor *pf)
{
	const __m512i ctrl = k6_scale_ctrl();

	LG_UNROLL_ROWS
	for (int r = 0; r < LG_DOTR_MAX; r++)
	{
		LG_UNROLL_ROWS
		for (int c = 0; c < NC; c++)
			acc[r][c] = _mm512_setzero_ps();
	}
	for (int64_t i = 0; i < nb; i++)
	{
		_Alignas(32) int16_t sc16[LG_DOTR_MAX][16];
		__m512i		sumi[LG_DOTR_MAX][LG_DOTN_MAX];

		if (pf != NULL)
			pf_advance(pf, LG_DOTR_MAX * sizeof(lg_block_q6_K));
		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
		{
			const lg_block_q6_K *b = (const lg_block_q6_K *) rows[r] + i;

			_mm256_store_si256((__m256i *) sc16[r],
							   _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) b->scales)));
		}
		/* each sum starts at -32·Σ_g scale_g·bsum_g (scales times -32 fit int16) */
		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
		{
			const __m512i msc = _mm512_zextsi256_si512(_mm256_mullo_epi16(_mm256_load_si256((const __m256i *) sc16[r]),
																		  _mm256_set1_epi16(-32)));

			LG_UNROLL_ROWS
			for (int c = 0; c < NC; c++)
			{
				const lg_block_q8_K *y = (const lg_block_q8_K *) tok[c] + i;

				sumi[r][c] = _mm512_madd_epi16(msc, _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) y->bsums)));
			}
		}
		LG_UNROLL_ROWS
		for (int j = 0; j < LG_QK_K / 64; j++)
		{
			__m512i		q[LG_DOTR_MAX];
			__m512i		sc[LG_DOTR_MAX];

			LG_UNROLL_ROWS
			for (int r = 0; r < LG_DOTR_MAX; r++)
			{
				int64_t		s4;

				q[r] = k6_chunk((const lg_block_q6_K *) rows[r] + i, j);
				memcpy(&s4, &sc16[r][4 * j], sizeof(s4));
				sc[r] = _mm512_shuffle_epi8(_mm512_set1_epi64(s4), ctrl);
			}
			LG_UNROLL_ROWS
			for (int c = 0; c < NC; c++)
			{
				const lg_block_q8_K *y = (const lg_block_q8_K *) tok[c] + i;
				const __m512i yv = _mm512_loadu_si512(y->qs + 64 * j);

				LG_UNROLL_ROWS
				for (int r = 0; r < LG_DOTR_MAX; r++)
					sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], _mm512_maddubs_epi16(q[r], yv), sc[r]);
			}
		}
		/* the float scales only now, as in q4_K_tile */
		LG_UNROLL_ROWS
		for (int r = 0; r < LG_DOTR_MAX; r++)
		{
			const __m512 dw = _mm512_set1_ps(lg_f16_table[((const lg_block_q6_K *) rows[r] + i)->d]);

			LG_UNROLL_ROWS
			for (int c = 0; c < NC; c++)
			{
				const __m512 dy = _mm512_set1_ps(((const lg_block_q8_K *) tok[c] + i)->d);

				acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r][c]), _mm512_mul_ps(dw, dy), acc[r][c]);
			}
		}
	}
}

/* Sums of a 4 × 1 group's accumulators to s[0..nr). */
LG_INLINE void
store_rows(float *s, int nr, __m512 acc[LG_DOTR_MAX][LG_DOTN_MAX])
{
	store_sums(s, nr, lg_hsum4_ps512(acc[0][0], acc[1][0], acc[2][0], acc[3][0]));
}

/* q4_K rows · one q8_K row */
static void
dotr_q4_K(int64_t n, int nr, float *s, const void *w, size_t ws, const void *x)
{
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX] = {x, x, x, x};
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];
	pf_cursor	pf = {(const char *) w + (size_t) nr * ws, 0, 0};

	group_rows(w, ws, nr, rows);
	q4_K_tile(n / LG_QK_K, 1, false, rows, tok, acc, &pf);
	store_rows(s, nr, acc);
}

/* q4_K rows × q8_K tokens */
static void
dotrn_q4_K(int64_t n, int nr, int nc, float *s, const void *w, size_t ws, const void *x, size_t xs)
{
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	q4_K_tile(n / LG_QK_K, LG_DOTN_MAX, false, rows, tok, acc, NULL);
	store_tile(s, nr, nc, acc);
}

/* Bytes of an unpacked Q4_K row of n values. */
static size_t
unpack_q4_K_size(int64_t n)
{
	return (size_t) (n / LG_QK_K) * K4U_BLOCK_BYTES;
}

/* Unpack nr Q4_K rows (see K4U_BLOCK_BYTES). */
static void
unpack_q4_K(int64_t n, int nr, const void *w, size_t ws, void *dst)
{
	const int64_t nb = n / LG_QK_K;

	for (int r = 0; r < nr; r++)
	{
		const lg_block_q4_K *b = (const lg_block_q4_K *) ((const char *) w + (size_t) r * ws);
		char	   *u = (char *) dst + (size_t) r * unpack_q4_K_size(n);

		for (int64_t i = 0; i < nb; i++, u += K4U_BLOCK_BYTES)
		{
			_Alignas(16) uint8_t sm[16];
			__m256		m;

			k4_scales(b[i].scales, sm);
			for (int j = 0; j < LG_QK_K / 64; j++)
			{
				_mm512_store_si512(u + 128 * j, k4_chunk(b + i, j));
				_mm512_store_si512(u + 128 * j + 64,
								   _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_load_si128((const __m128i *) sm)),
													   k4_scale_ctrl(j)));
			}
			m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (sm + 8))));
			_mm512_store_ps(u + 512, _mm512_zextps256_ps512(_mm256_mul_ps(m, _mm256_set1_ps(lg_f16_table[b[i].dmin]))));
			*(float *) (u + 544) = lg_f16_table[b[i].d];
		}
	}
}

/* Unpacked Q4_K rows × q8_K tokens (lg_cpu_kernels.dotrn_u). */
static void
dotrn_q4_K_u(int64_t n, int nr, int nc, float *s, const void *w, size_t ws, const void *x, size_t xs)
{
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	q4_K_tile(n / LG_QK_K, LG_DOTN_MAX, true, rows, tok, acc, NULL);
	store_tile(s, nr, nc, acc);
}

/* q6_K rows · one q8_K row */
static void
dotr_q6_K(int64_t n, int nr, float *s, const void *w, size_t ws, const void *x)
{
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX] = {x, x, x, x};
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];
	pf_cursor	pf = {(const char *) w + (size_t) nr * ws, 0, 0};

	group_rows(w, ws, nr, rows);
	q6_K_tile(n / LG_QK_K, 1, rows, tok, acc, &pf);
	store_rows(s, nr, acc);
}

/* q6_K rows × q8_K tokens */
static void
dotrn_q6_K(int64_t n, int nr, int nc, float *s, const void *w, size_t ws, const void *x, size_t xs)
{
	const char *rows[LG_DOTR_MAX];
	const char *tok[LG_DOTN_MAX];
	__m512		acc[LG_DOTR_MAX][LG_DOTN_MAX];

	group_rows(w, ws, nr, rows);
	group_tokens(x, xs, nc, tok);
	q6_K_tile(n / LG_QK_K, LG_DOTN_MAX, rows, tok, acc, NULL);
	store_tile(s, nr, nc, acc);
}

/*
 * Activations to q8_K, bit for bit what lg_quantize_row gives
 * (lg_quant_q8_K, after ggml's quantize_row_q8_K_ref): max = the first x
 * of largest |x|, iscale = -127/max, q = round-half-even(iscale·x)
 * capped at 127, bsums over each 16, d = 1/iscale; an all-zero block is
 * all zeros.  The scalar loop was 4% of Q4_K_M prompt time.
 */
void
lg_q8K_prep_avx512(const float *x, void *dst, int64_t cols)
{
	lg_block_q8_K *y = (lg_block_q8_K *) dst;
	const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));

	for (int64_t i = 0; i < cols / LG_QK_K; i++, x += LG_QK_K)
	{
		__m512		am = _mm512_setzero_ps();
		float		amax;
		float		max = 0.0f;
		float		iscale;
		__m512		vs;

		for (int k = 0; k < LG_QK_K / 16; k++)
			am = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(x + 16 * k), abs_mask), am);	/* NaN skipped */
		amax = _mm512_reduce_max_ps(am);
		if (!(amax > 0.0f))
		{
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		for (int k = 0; k < LG_QK_K / 16; k++)
		{
			const __mmask16 m = _mm512_cmp_ps_mask(_mm512_and_ps(_mm512_loadu_ps(x + 16 * k), abs_mask),
												   _mm512_set1_ps(amax), _CMP_EQ_OQ);

			if (m != 0)
			{
				max = x[16 * k + __builtin_ctz(m)];
				break;
			}
		}
		iscale = -127.f / max;
		vs = _mm512_set1_ps(iscale);
		for (int k = 0; k < LG_QK_K / 16; k++)
		{
			/* the default rounding (to nearest even) is nearest_int's */
			__m512i		q = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * k)));

			q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
			_mm_storeu_si128((__m128i *) (y[i].qs + 16 * k), _mm512_cvtsepi32_epi8(q));
			y[i].bsums[k] = (int16_t) _mm512_reduce_add_epi32(q);
		}
		y[i].d = 1 / iscale;
	}
}

/* Bytes of a q8_K activation row. */
static size_t
q8K_row_size(int64_t cols)
{
	return (size_t) (cols / LG_QK_K) * sizeof(lg_block_q8_K);
}

/* Install the K-quant multi-row kernels (the CPU has AVX-512 VNNI). */
void
lg_cpu_kernels_mvk_avx512(lg_cpu_kernels *k)
{
	/* the same q8_K bytes, so every K-quant dot of the table still reads them */
	for (int t = 0; t < LG_TYPE_COUNT; t++)
		if (lg_type_valid((uint32_t) t) && lg_type_get((uint32_t) t)->vec_dot_type == LG_TYPE_Q8_K &&
			t != LG_TYPE_Q8_K)
		{
			k->prep[t] = lg_q8K_prep_avx512;
			k->prep_size[t] = q8K_row_size;
		}
	k->dotr[LG_TYPE_Q4_K] = dotr_q4_K;
	k->dotrn[LG_TYPE_Q4_K] = dotrn_q4_K;
	k->unpack[LG_TYPE_Q4_K] = unpack_q4_K;
	k->unpack_size[LG_TYPE_Q4_K] = unpack_q4_K_size;
	k->dotrn_u[LG_TYPE_Q4_K] = dotrn_q4_K_u;
	k->dotr[LG_TYPE_Q6_K] = dotr_q6_K;
	k->dotrn[LG_TYPE_Q6_K] = dotrn_q6_K;
}
