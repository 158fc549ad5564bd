/*
 * kernels_gemm_avx512.c — large-M matrix products (many activation rows,
 * prompt or batched-embedding sized) for F16 weights, bit for bit what
 * dotrn_f16 / dotr_f16 compute for every (weight row, token).
 *
 * Those kernels keep, per (row, token), one 16-lane accumulator: lane l
 * sums w[k]·x[k] over k ≡ l (mod 16) in increasing k, one FMA a step
 * (the tail padded with zeros), then lg_hsum4_ps512 adds the lanes as
 * ((b0+b1)+(b2+b3)) + ((b4+b5)+(b6+b7)) with b_m = lane m + lane m+8.
 * Lanes are independent sums, so nothing forces them into one register:
 * here a vector holds lane l of 16 weight rows, and a lane's residue
 * class l is done in full before the next one.  That is an ordinary
 * outer-product GEMM (one token broadcast × 16 rows per FMA) over
 * k = l, l+16, ..., with a 64 rows × 6 tokens register tile (24
 * accumulators; 4 row loads and 6 broadcasts for 24 FMAs).
 *
 * Blocking: a tile is LG_GEMM_ROWS weight rows × LG_GEMM_TOKS tokens.
 * Both operands are packed residue-major, so a micro-kernel step reads
 * consecutive floats: the tokens once per matmul by gemm_f16_xpack
 * (xp[l][k/16][token]), the rows once per tile by gemm_f16_wpack
 * (u[l][k/16][row], f16 converted, 16 × 16 transposes in registers).
 * Threads take tiles row-block-major and keep their packed rows while the
 * next tile has the same rows, so the rows are converted once per thread
 * and row block, not once per token block.  k goes in chunks of
 * LG_GEMM_KC so that a residue's row panel, token panel and lane sums stay
 * in L1; the per-lane partial sums wait in p[l][token][row] between
 * chunks (loading and storing a float does not change it, so the sequence
 * of FMAs per lane is the same), and are reduced with lg_hsum4_ps512's
 * tree at the end, 16 rows at a time, straight into y.
 *
 * Measured on one core (2026-11-27, perf record of a bge-base-shaped
 * encoder, 16 texts of 256 tokens, 1 thread): about 67 GFLOP/s in place,
 * against 49 for the previous 6 rows × 48 tokens tile that converted the
 * rows for every tile (the products' samples 9,691 against 13,247).  The
 * register tile alone, hot in L1, runs at 80-100 of the core's ~139
 * GFLOP/s FMA peak.  A loop of one matmul over and over (weights hot in
 * L3) is no guide here: it favoured the old tile.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend_cpu_impl.h"

#include <immintrin.h>
#include <string.h>

/* Register tile: 16-row vectors × tokens (24 accumulators). */
#define RV 4
#define MT 6

_Static_assert(RV * 16 == LG_GEMM_ROWS, "a tile is RV row vectors");
_Static_assert(LG_GEMM_TOKS % MT == 0 && LG_GEMM_TOKS % 16 == 0, "a token block is whole micro tiles and 16-token packs");

/* k values per chunk (a multiple of 16). */
#define LG_GEMM_KC 512

/* Floats of a k-padded row: cols rounded up to 16. */
static inline int64_t
kpad(int64_t cols)
{
	return (cols + 15) & ~(int64_t) 15;
}

/* Bytes of one packed token block (LG_GEMM_TOKS tokens). */
static size_t
gemm_f16_xpack_size(int64_t cols)
{
	return (size_t) kpad(cols) * LG_GEMM_TOKS * sizeof(float);
}

/* In-register transpose of a 16 × 16 float block: r[i][j] becomes r[j][i]. */
static inline void
transpose16(__m512 r[16])
{
	__m512		t[16],
				u[16],
				v[16];

	for (int i = 0; i < 16; i += 2)
	{
		t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
	}
	/* u[4g + c]: rows 4g..4g+3 of column 4j + c in each 128-bit lane j */
	for (int g = 0; g < 4; g++)
	{
		u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
		u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
		u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
		u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
	}
	for (int h = 0; h < 2; h++)
		for (int c = 0; c < 4; c++)
		{
			v[8 * h + c] = _mm512_shuffle_f32x4(u[8 * h + c], u[8 * h + 4 + c], 0x88);
			v[8 * h + 4 + c] = _mm512_shuffle_f32x4(u[8 * h + c], u[8 * h + 4 + c], 0xDD);
		}
	for (int c = 0; c < 8; c++)
	{
		r[c] = _mm512_shuffle_f32x4(v[c], v[8 + c], 0x88);
		r[8 + c] = _mm512_shuffle_f32x4(v[c], v[8 + c], 0xDD);
	}
	/* v[c] held columns c and c + 8 for c < 4, c and c + 8 for 4 <= c < 8 */
}

/*
 * The shared packing: n (≤ width) rows of cols values (f16 or f32), stride
 * bytes apart, to dst[(l * ni + i) * width + j] = row_j[16 i + l], zeros
 * past cols and past n, a 16 × 16 block (16 rows, one i) at a time,
 * transposed in registers.
 */
static inline void
pack_residues(int64_t cols, int n, int width, const void *src, size_t stride, bool f16, float *dst)
{
	const int64_t ni = kpad(cols) / 16;

	for (int g = 0; g < width; g += 16)
		for (int64_t i = 0; i < ni; i++)
		{
			const __mmask16 m = cols - 16 * i >= 16 ? (__mmask16) 0xFFFF
				: (__mmask16) ((1u << (cols - 16 * i)) - 1);
			__m512		r[16];

			for (int j = 0; j < 16; j++)
			{
				const char *row = (const char *) src + (size_t) (g + j) * stride;

				r[j] = g + j >= n ? _mm512_setzero_ps()
					: f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const lg_f16 *) row + 16 * i))
					: _mm512_maskz_loadu_ps(m, (const float *) row + 16 * i);
			}
			transpose16(r);
			for (int l = 0; l < 16; l++)
				_mm512_store_ps(dst + ((size_t) l * ni + i) * width + g, r[l]);
		}
}

/*
 * Pack nt (≤ LG_GEMM_TOKS) prep_f16 rows, xs bytes apart, residue-major:
 * dst[(l * kp/16 + i) * LG_GEMM_TOKS + t] = x_t[16 i + l], zeros past
 * cols and past nt.
 */
static void
gemm_f16_xpack(int64_t cols, int nt, const void *x, size_t xs, void *dst)
{
	pack_residues(cols, nt, LG_GEMM_TOKS, x, xs, false, (float *) dst);
}

/* Bytes of a thread's tile scratch: the packed f32 rows and the lane sums. */
static size_t
gemm_f16_scratch_size(int64_t cols)
{
	return (size_t) LG_GEMM_ROWS * kpad(cols) * sizeof(float) +
		(size_t) 16 * LG_GEMM_ROWS * LG_GEMM_TOKS * sizeof(float);
}

/*
 * Pack nr (≤ LG_GEMM_ROWS) f16 rows, ws bytes apart, as f32 residue-major
 * like the tokens: u[(l * ni + i) * LG_GEMM_ROWS + r] = w_r[16 i + l],
 * zeros past cols and past nr.
 */
static void
gemm_f16_wpack(int64_t cols, int nr, const void *w, size_t ws, float *u)
{
	pack_residues(cols, nr, LG_GEMM_ROWS, w, ws, true, u);
}

/*
 * RV·16 rows × MT tokens over ni steps of one residue: u points at
 * u[l][i0][0], xp at xp[l][i0][tok0], p at p[l][tok0][0] (the lane sums,
 * a token's LG_GEMM_ROWS rows contiguous).
 */
static inline void
gemm_f16_micro(const float *u, const float *xp, int64_t ni, float *p, bool first)
{
	__m512		acc[MT][RV];

	for (int t = 0; t < MT; t++)
		for (int v = 0; v < RV; v++)
			acc[t][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(p + t * LG_GEMM_ROWS + 16 * v);
	for (int64_t i = 0; i < ni; i++)
	{
		__m512		wv[RV];

		for (int v = 0; v < RV; v++)
			wv[v] = _mm512_load_ps(u + i * LG_GEMM_ROWS + 16 * v);
		for (int t = 0; t < MT; t++)
		{
			const __m512 x = _mm512_set1_ps(xp[i * LG_GEMM_TOKS + t]);

			for (int v = 0; v < RV; v++)
				acc[t][v] = _mm512_fmadd_ps(x, wv[v], acc[t][v]);
		}
	}
	for (int t = 0; t < MT; t++)
		for (int v = 0; v < RV; v++)
			_mm512_store_ps(p + t * LG_GEMM_ROWS + 16 * v, acc[t][v]);
}

/*
 * One tile: nr (≤ LG_GEMM_ROWS) f16 rows ws bytes apart × nt tokens of a
 * packed block; y[t * y_stride + r] for t < nt, r < nr.
 */
static void
gemm_f16_tile(int64_t cols, int nr, int nt, const void *w, size_t ws, bool rows_packed,
			  const void *xpv, float *y, int64_t y_stride, void *scratch)
{
	const int64_t ni = kpad(cols) / 16;
	const float *xp = (const float *) xpv;
	float	   *u = (float *) scratch;
	float	   *p = u + (size_t) LG_GEMM_ROWS * kpad(cols);
	const int	ntp = (nt + MT - 1) / MT * MT;
	const size_t ls = (size_t) LG_GEMM_TOKS * LG_GEMM_ROWS;

	if (!rows_packed)
		gemm_f16_wpack(cols, nr, w, ws, u);
	for (int64_t i0 = 0; i0 < ni; i0 += LG_GEMM_KC / 16)
	{
		const int64_t nic = ni - i0 < LG_GEMM_KC / 16 ? ni - i0 : LG_GEMM_KC / 16;

		for (int l = 0; l < 16; l++)
			for (int t0 = 0; t0 < ntp; t0 += MT)
				gemm_f16_micro(u + ((size_t) l * ni + i0) * LG_GEMM_ROWS,
							   xp + ((size_t) l * ni + i0) * LG_GEMM_TOKS + t0, nic,
							   p + l * ls + (size_t) t0 * LG_GEMM_ROWS, i0 == 0);
	}
	/* lg_hsum4_ps512's tree over the 16 lanes, 16 rows at a time */
	for (int t = 0; t < nt; t++)
		for (int g = 0; g < nr; g += 16)
		{
			const float *q = p + (size_t) t * LG_GEMM_ROWS + g;
			const __mmask16 m = nr - g >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << (nr - g)) - 1);
			__m512		b[8];

			for (int j = 0; j < 8; j++)
				b[j] = _mm512_add_ps(_mm512_load_ps(q + j * ls), _mm512_load_ps(q + (j + 8) * ls));
			_mm512_mask_storeu_ps(y + (size_t) t * y_stride + g, m,
								  _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(b[0], b[1]), _mm512_add_ps(b[2], b[3])),
												_mm512_add_ps(_mm512_add_ps(b[4], b[5]), _mm512_add_ps(b[6], b[7]))));
		}
}

/* Install the large-M GEMM (F16 weights, prep_f16 activations). */
void
lg_cpu_kernels_gemm_avx512(lg_cpu_kernels *k)
{
	k->gemm_xpack[LG_TYPE_F16] = gemm_f16_xpack;
	k->gemm_xpack_size[LG_TYPE_F16] = gemm_f16_xpack_size;
	k->gemm_tile[LG_TYPE_F16] = gemm_f16_tile;
	k->gemm_scratch_size[LG_TYPE_F16] = gemm_f16_scratch_size;
}
