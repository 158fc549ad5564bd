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
 * here a vector holds lane l of 16 tokens, and a lane's residue class l
 * is done in full before the next one.  That is an ordinary outer-product
 * GEMM (one weight broadcast × 16 tokens per FMA) over k = l, l+16, ...,
 * with a 6 rows × 48 tokens register tile (18 accumulators, 3 token
 * loads and 6 broadcasts for 18 FMAs) — every FMA does useful work and
 * the operands come from L1, where the 4 × 4 tile of 16-lane dots
 * reloaded both operands from L2 for each group of 4 tokens.
 *
 * Blocking: a tile is LG_GEMM_ROWS weight rows × LG_GEMM_TOKS tokens.
 * The rows are converted to f32 once per tile (u, zero-padded to a
 * multiple of 16); the tokens were packed once per matmul by
 * gemm_f16_xpack as xp[l][k/16][token] (residue-major, zero-padded).
 * k goes in chunks of LG_GEMM_KC, and for each group of 6 rows the 16
 * residues run one after the other over the same chunk of those rows
 * (24 KiB, in L1); the per-lane partial sums wait in p[l][row][token]
 * between chunks (loading and storing a float does not change it, so the
 * sequence of FMAs per lane is the same), and are reduced with
 * lg_hsum4_ps512's tree at the end.  Measured on one core: 2048 rows ×
 * 768 × 768 went from 40-50 to 60-70 GFLOP/s; chunks of 256 k ran at
 * 75 GFLOP/s in a hot tile against 88 for 1024, and running the residues
 * outside the row groups lost 10%.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "backend_cpu_impl.h"

#include <immintrin.h>
#include <string.h>

/* Register tile: weight rows × 16-token vectors. */
#define MR 6
#define NV 3

/* k values per chunk (a multiple of 16). */
#define LG_GEMM_KC 1024

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

/*
 * Pack nt (≤ LG_GEMM_TOKS) prep_f16 rows, xs bytes apart, residue-major:
 * dst[(l * kp/16 + i) * LG_GEMM_TOKS + t] = x_t[16 i + l], zeros past
 * cols and past nt.
 */
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

static void
gemm_f16_xpack(int64_t cols, int nt, const void *x, size_t xs, void *dst)
{
	const int64_t ni = kpad(cols) / 16;
	float	   *d = (float *) dst;

	for (int t0 = 0; t0 < LG_GEMM_TOKS; t0 += 16)
		for (int64_t i = 0; i < ni; i++)
		{
			const __mmask16 m = cols - 16 * i >= 16 ? (__mmask16) 0xFFFF
				: (__mmask16) ((1u << (cols - 16 * i)) - 1);
			__m512		r[16];

			for (int t = 0; t < 16; t++)
				r[t] = t0 + t < nt
					? _mm512_maskz_loadu_ps(m, (const float *) ((const char *) x + (size_t) (t0 + t) * xs) + 16 * i)
					: _mm512_setzero_ps();
			transpose16(r);
			for (int l = 0; l < 16; l++)
				_mm512_store_ps(d + ((size_t) l * ni + i) * LG_GEMM_TOKS + t0, r[l]);
		}
}

/* Bytes of a thread's tile scratch: the f32 rows and the lane sums. */
static size_t
gemm_f16_scratch_size(int64_t cols)
{
	return (size_t) LG_GEMM_ROWS * kpad(cols) * sizeof(float) +
		(size_t) 16 * LG_GEMM_ROWS * LG_GEMM_TOKS * sizeof(float);
}

/*
 * MR rows × NV·16 tokens over ni steps of residue l: u points at the
 * group's first row at k = 16 i0 + l (rows us floats apart), xp at
 * xp[l][i0][tok0], p at p[l][row0][tok0].
 */
static inline void
gemm_f16_micro(const float *u, int64_t us, const float *xp, int64_t ni, float *p, bool first)
{
	__m512		acc[MR][NV];

	for (int r = 0; r < MR; r++)
		for (int j = 0; j < NV; j++)
			acc[r][j] = first ? _mm512_setzero_ps() : _mm512_load_ps(p + r * LG_GEMM_TOKS + 16 * j);
	for (int64_t i = 0; i < ni; i++)
	{
		__m512		xv[NV];

		for (int j = 0; j < NV; j++)
			xv[j] = _mm512_load_ps(xp + i * LG_GEMM_TOKS + 16 * j);
		for (int r = 0; r < MR; r++)
		{
			const __m512 w = _mm512_set1_ps(u[r * us + 16 * i]);

			for (int j = 0; j < NV; j++)
				acc[r][j] = _mm512_fmadd_ps(w, xv[j], acc[r][j]);
		}
	}
	for (int r = 0; r < MR; r++)
		for (int j = 0; j < NV; j++)
			_mm512_store_ps(p + r * LG_GEMM_TOKS + 16 * j, acc[r][j]);
}

/*
 * One tile: nr (≤ LG_GEMM_ROWS) f16 rows ws bytes apart × nt tokens of a
 * packed block; y[t * y_stride + r] for t < nt, r < nr.
 */
static void
gemm_f16_tile(int64_t cols, int nr, int nt, const void *w, size_t ws, const void *xpv,
			  float *y, int64_t y_stride, void *scratch)
{
	const int64_t kp = kpad(cols);
	const int64_t ni = kp / 16;
	const float *xp = (const float *) xpv;
	float	   *u = (float *) scratch;
	float	   *p = u + (size_t) LG_GEMM_ROWS * kp;
	const int	nrp = (nr + MR - 1) / MR * MR;
	const int	ntv = (nt + 15) / 16;

	/* the rows as f32, zeros past cols and past nr (up to a whole group) */
	for (int r = 0; r < nrp; r++)
	{
		const lg_f16 *a = (const lg_f16 *) ((const char *) w + (size_t) r * ws);
		float	   *ur = u + (size_t) r * kp;

		for (int64_t i = 0; i < kp; i += 16)
		{
			const __mmask16 m = r >= nr ? 0 : cols - i >= 16 ? (__mmask16) 0xFFFF
				: (__mmask16) ((1u << (cols - i)) - 1);

			_mm512_storeu_ps(ur + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i)));
		}
	}
	for (int64_t i0 = 0; i0 < ni; i0 += LG_GEMM_KC / 16)
	{
		const int64_t nic = ni - i0 < LG_GEMM_KC / 16 ? ni - i0 : LG_GEMM_KC / 16;

		for (int r0 = 0; r0 < nrp; r0 += MR)
			for (int l = 0; l < 16; l++)
				for (int j0 = 0; j0 < ntv; j0 += NV)
					gemm_f16_micro(u + (size_t) r0 * kp + 16 * i0 + l, kp,
								   xp + ((size_t) l * ni + i0) * LG_GEMM_TOKS + 16 * j0, nic,
								   p + ((size_t) l * LG_GEMM_ROWS + r0) * LG_GEMM_TOKS + 16 * j0, i0 == 0);
	}
	/* lg_hsum4_ps512's tree over the 16 lanes, 16 tokens at a time */
	for (int r = 0; r < nr; r++)
		for (int j = 0; j < ntv; j++)
		{
			const float *q = p + (size_t) r * LG_GEMM_TOKS + 16 * j;
			const size_t ls = (size_t) LG_GEMM_ROWS * LG_GEMM_TOKS;
			__m512		b[8];
			float		s[16];

			for (int m = 0; m < 8; m++)
				b[m] = _mm512_add_ps(_mm512_load_ps(q + m * ls), _mm512_load_ps(q + (m + 8) * ls));
			_mm512_storeu_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(b[0], b[1]), _mm512_add_ps(b[2], b[3])),
											  _mm512_add_ps(_mm512_add_ps(b[4], b[5]), _mm512_add_ps(b[6], b[7]))));
			for (int t = 16 * j; t < nt && t < 16 * j + 16; t++)
				y[(size_t) t * y_stride + r] = s[t - 16 * j];
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
