/*
 * attention_prompt_tc.cu — the prompt (flash) attention of
 * attention_prompt.cu on tensor cores (CUDA wmma, sm_70 and later), for
 * the common case: an F16 pool and head_dim a multiple of 16 up to 128.
 * Other cases, and HIP (Debian packages no rocWMMA), take the float kernel.
 *
 * Same grid and causal walk as the float kernel (see there), 4 warps per
 * block, each owning 16 of the tile's 64 query rows; tiles of 64 positions.
 * Per K/V tile:
 *   S = Q Kᵀ         wmma 16x16x16, f16 in, f32 accumulate, to shared f32
 *                    (Q is rounded to f16 as the CPU does with an F16 cache,
 *                    K is f16 already: the products are exact, as there);
 *   online softmax   two lanes per row, in f32; P is kept as two halves,
 *                    p = hi + lo (hi = f16(p), lo = f16(p - hi)), so P V on
 *                    f16 tensor cores loses nothing a float sum would keep;
 *   O = O * alpha + P V   O lives in shared f32, rescaled row by row, then
 *                    loaded as the accumulator of the P V products.
 * Only load/store/mma/fill of whole fragments are used (no per-element
 * fragment access), so nothing depends on the fragment layout.
 *
 * wmma pointers are 32-byte aligned and strides multiples of 16 bytes: the
 * padded strides below keep every 16-row, 16-column fragment start on a
 * 32-byte boundary (16 * stride * size is a multiple of 32).
 *
 * Shared memory (DP = 64 or 128; LDH = DP + 8 halves, LDS 68, LDP 72,
 * LDO = DP + 4 floats): Q and K/V tiles 2 * 64 * LDH * 2, S 64 * 68 * 4,
 * P 2 * 64 * 72 * 2, O 64 * LDO * 4, and 32 bytes to align the base:
 * DP 64: 71712 B; DP 128: 104480 B (2 blocks per H100 SM, 1 on an A100).
 */
#include "common.cuh"
#include "attention.cuh"

#if !defined(LG_HIP)

#define LG_ATTN_TC_THREADS	128		/* 4 warps */
#define LG_ATTN_TC_BR		64		/* query rows per block, 16 per warp */
#define LG_ATTN_TC_BC		64		/* positions per K/V tile */
#define LG_ATTN_TC_LDS		(LG_ATTN_TC_BC + 4)
#define LG_ATTN_TC_LDP		(LG_ATTN_TC_BC + 8)

namespace wmma = nvcuda::wmma;

/* Dynamic shared memory of one block for head-dim class DP, in bytes. */
static constexpr size_t
lg_attn_tc_smem_bytes(int dp)
{
	return (size_t) 32			/* room to align the base to 32 bytes */
		+ (size_t) 2 * LG_ATTN_TC_BR * (dp + 8) * 2	/* Q, K/V (half) */
		+ (size_t) LG_ATTN_TC_BR * LG_ATTN_TC_LDS * 4	/* S */
		+ (size_t) 2 * LG_ATTN_TC_BR * LG_ATTN_TC_LDP * 2	/* P hi, lo */
		+ (size_t) LG_ATTN_TC_BR * (dp + 4) * 4;	/* O */
}

/*
 * A K or V tile of F16 rows to dst[BC][LDH] (halves, copied as they are):
 * row j < nc from the pool at rows[j], rows nc .. BC-1 zeros.  D % 16 == 0,
 * so a row is whole 16-byte chunks (pool rows are 16-byte aligned).
 */
template <int DP>
static __device__ __forceinline__ void
lg_attn_tc_tile(__half *dst, const uint16_t *pool, const int64_t *rows, int nc, int D)
{
	constexpr int LDH = DP + 8;
	const int	chunks = D / 8;		/* 16-byte chunks per row */

	for (int i = threadIdx.x; i < LG_ATTN_TC_BC * (DP / 8); i += LG_ATTN_TC_THREADS)
	{
		const int	j = i / (DP / 8);
		const int	ch = i % (DP / 8);
		uint4		v = {0, 0, 0, 0};

		if (ch >= chunks)
			continue;
		if (j < nc)
			v = *(const uint4 *) (pool + rows[j] + ch * 8);
		*(uint4 *) (dst + j * LDH + ch * 8) = v;
	}
}

/* One (head, query tile, sequence) of prompt attention on tensor cores. */
template <int DP>
__global__ void __launch_bounds__(LG_ATTN_TC_THREADS, 2)	/* 2 blocks fill an H100 SM's shared memory */
lg_attn_flash_tc_kernel(lg_attn_params a)
{
	extern __shared__ uint4 lg_attn_tc_smem[];
	__shared__ int64_t rows[LG_ATTN_TC_BC];
	__shared__ float mrow[LG_ATTN_TC_BR];	/* running max per row */
	__shared__ float lrow[LG_ATTN_TC_BR];	/* running sum per row */
	__shared__ float arow[LG_ATTN_TC_BR];	/* this tile's rescale per row */

	constexpr int LDH = DP + 8;
	constexpr int LDO = DP + 4;
	constexpr int BR = LG_ATTN_TC_BR;
	constexpr int BC = LG_ATTN_TC_BC;

	/*
	 * wmma wants 32-byte aligned fragments: step the base up to 32 bytes
	 * (the launch adds 32), by pointer arithmetic so the compiler still
	 * knows these are shared-memory addresses.
	 */
	const unsigned pad = (unsigned) (32 - (uintptr_t) lg_attn_tc_smem % 32) % 32;
	__half	   *qh = (__half *) ((unsigned char *) lg_attn_tc_smem + pad);	/* [BR][LDH] */
	__half	   *kvh = qh + BR * LDH;	/* [BC][LDH], K then V */
	float	   *sf = (float *) (kvh + BC * LDH);	/* [BR][LDS] */
	__half	   *ph = (__half *) (sf + BR * LG_ATTN_TC_LDS);	/* [BR][LDP] */
	__half	   *pl = ph + BR * LG_ATTN_TC_LDP;	/* [BR][LDP] */
	float	   *of = (float *) (pl + BR * LG_ATTN_TC_LDP);	/* [BR][LDO] */

	const int	tid = threadIdx.x;
	const int	lane = tid % LG_WARP;
	const int	warp = tid / LG_WARP;
	const int	D = a.head_dim;
	const int	h = blockIdx.x;
	const int	kvhd = h / (a.n_heads / a.n_kv_heads);
	const lg_gpu_attn_seq sq = a.seqs[blockIdx.z];
	const uint16_t *kp = (const uint16_t *) a.k_pool;
	const uint16_t *vp = (const uint16_t *) a.v_pool;
	const int64_t qstride = (int64_t) a.n_heads * D;

	for (int qt = blockIdx.y; (int64_t) qt * BR < sq.n_tok; qt += gridDim.y)
	{
		const int	qr0 = qt * BR;
		const int	nr = min(BR, sq.n_tok - qr0);
		const int	qpos0 = sq.pos0 + qr0;
		const int	kv_end = lg_attn_kv_end(a, sq, qpos0 + nr - 1);

		/* Q tile as f16 (rows past nr zero), O zero, row state reset */
		for (int i = tid; i < BR * D; i += LG_ATTN_TC_THREADS)
		{
			const int	r = i / D;
			const int	c = i % D;

			qh[r * LDH + c] = __float2half_rn(r < nr ?
											  a.q[(int64_t) (sq.q_row0 + qr0 + r) * qstride + (int64_t) h * D + c] :
											  0.0f);
			of[r * LDO + c] = 0.0f;
		}
		if (tid < BR)
		{
			mrow[tid] = -INFINITY;
			lrow[tid] = 0.0f;
		}

		for (int t0 = 0; t0 < kv_end; t0 += BC)
		{
			const int	nc = min(BC, kv_end - t0);

			/* rows is free: every thread passed the last tile's barrier after its V load */
			if (tid < BC)
				rows[tid] = tid < nc ? lg_attn_kv_offset(a, sq.bt_off, t0 + tid, kvhd) : 0;
			__syncthreads();
			lg_attn_tc_tile<DP>(kvh, kp, rows, nc, D);
			__syncthreads();

			/* S rows 16w .. 16w+15 = Q Kᵀ (K row-major is Kᵀ column-major) */
			for (int j = 0; j < BC / 16; j++)
			{
				wmma::fragment<wmma::accumulator, 16, 16, 16, float> sacc;

				wmma::fill_fragment(sacc, 0.0f);
				for (int k = 0; k < D / 16; k++)
				{
					wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> qa;
					wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> kb;

					wmma::load_matrix_sync(qa, qh + warp * 16 * LDH + k * 16, LDH);
					wmma::load_matrix_sync(kb, kvh + j * 16 * LDH + k * 16, LDH);
					wmma::mma_sync(sacc, qa, kb, sacc);
				}
				wmma::store_matrix_sync(sf + warp * 16 * LG_ATTN_TC_LDS + j * 16, sacc,
										LG_ATTN_TC_LDS, wmma::mem_row_major);
			}
			__syncthreads();	/* S visible; K read by all (V goes to its buffer) */

			/* softmax: lanes 2r, 2r+1 of warp w take row 16w + r, 32 columns each */
			{
				const int	r = warp * 16 + lane / 2;
				const int	c0 = (lane % 2) * (BC / 2);
				const int	qpos = qpos0 + r;
				const float m_old = mrow[r];
				float		mx = -INFINITY;
				float		mn;
				float		alpha = 1.0f;
				float		rs = 0.0f;

				for (int c = c0; c < c0 + BC / 2; c++)
				{
					const bool	ok = r < nr && c < nc && t0 + c < lg_attn_kv_end(a, sq, qpos);

					if (ok)
						mx = fmaxf(mx, sf[r * LG_ATTN_TC_LDS + c] * a.scale);
				}
				mx = fmaxf(mx, lg_shfl_xor(mx, 1));
				mn = fmaxf(m_old, mx);
				if (mn != -INFINITY)
					alpha = expf(m_old - mn);	/* 0 when m_old was -inf */
				for (int c = c0; c < c0 + BC / 2; c++)
				{
					const bool	ok = mn != -INFINITY && r < nr && c < nc && t0 + c < lg_attn_kv_end(a, sq, qpos);
					const float p = ok ? expf(sf[r * LG_ATTN_TC_LDS + c] * a.scale - mn) : 0.0f;
					const __half hi = __float2half_rn(p);

					rs += p;
					ph[r * LG_ATTN_TC_LDP + c] = hi;
					pl[r * LG_ATTN_TC_LDP + c] = __float2half_rn(p - __half2float(hi));
				}
				rs += lg_shfl_xor(rs, 1);
				if (lane % 2 == 0)
				{
					mrow[r] = mn;
					lrow[r] = lrow[r] * alpha + rs;
					arow[r] = alpha;
				}
			}
			lg_attn_tc_tile<DP>(kvh, vp, rows, nc, D);
			__syncthreads();	/* V, P and arow visible */

			/* O rows of this warp: rescale, then += P V (hi and lo parts) */
			for (int i = lane; i < 16 * D; i += LG_WARP)
			{
				const int	r = warp * 16 + i / D;

				of[r * LDO + i % D] *= arow[r];
			}
			__syncwarp();
			for (int n = 0; n < D / 16; n++)
			{
				wmma::fragment<wmma::accumulator, 16, 16, 16, float> oacc;

				wmma::load_matrix_sync(oacc, of + warp * 16 * LDO + n * 16, LDO, wmma::mem_row_major);
				for (int k = 0; k < BC / 16; k++)
				{
					wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> pa;
					wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> vb;

					wmma::load_matrix_sync(vb, kvh + k * 16 * LDH + n * 16, LDH);
					wmma::load_matrix_sync(pa, ph + warp * 16 * LG_ATTN_TC_LDP + k * 16, LG_ATTN_TC_LDP);
					wmma::mma_sync(oacc, pa, vb, oacc);
					wmma::load_matrix_sync(pa, pl + warp * 16 * LG_ATTN_TC_LDP + k * 16, LG_ATTN_TC_LDP);
					wmma::mma_sync(oacc, pa, vb, oacc);
				}
				wmma::store_matrix_sync(of + warp * 16 * LDO + n * 16, oacc, LDO, wmma::mem_row_major);
			}
		}
		__syncthreads();		/* O and lrow complete */

		for (int i = tid; i < nr * D; i += LG_ATTN_TC_THREADS)
		{
			const int	r = i / D;
			const float l = lrow[r];

			a.out[(int64_t) (sq.q_row0 + qr0 + r) * qstride + (int64_t) h * D + i % D] =
				l > 0.0f ? of[r * LDO + i % D] / l : 0.0f;
		}
		__syncthreads();		/* qh, of and the row state are rewritten by the next query tile */
	}
}

/* Launch one head-dim class: grid (n_heads, query tiles, n_seqs). */
template <int DP>
static lg_gpu_status
lg_attn_tc_launch(cudaStream_t st, const lg_attn_params &p, int32_t n_seqs, int32_t max_n_tok)
{
	constexpr size_t smem = lg_attn_tc_smem_bytes(DP);
	const int64_t tiles = lg_ceil_div(max_n_tok, LG_ATTN_TC_BR);
	const dim3	grid((unsigned) p.n_heads, (unsigned) (tiles < 65535 ? tiles : 65535), (unsigned) n_seqs);
	lg_gpu_status rc;

	rc = lg_gpu_check(cudaFuncSetAttribute((const void *) lg_attn_flash_tc_kernel<DP>,
										   cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem),
					  "attention: cudaFuncSetAttribute");
	if (rc != LG_GPU_OK)
		return rc;
	lg_attn_flash_tc_kernel<DP><<<grid, LG_ATTN_TC_THREADS, smem, st>>>(p);
	return LG_GPU_OK;
}

/*
 * Prompt attention on tensor cores when the call suits them (F16 pool,
 * head_dim % 16 == 0 and <= 128; the CUDA build targets sm_80 and later);
 * LG_GPU_ERR_UNSUPPORTED otherwise, without a message: the caller takes
 * the float kernel.
 */
lg_gpu_status
lg_attn_launch_prompt_tc(cudaStream_t st, const lg_attn_params &p, int kv_type, int32_t n_seqs,
						 int32_t max_n_tok)
{
	if (kv_type != LG_GPU_KV_F16 || p.head_dim % 16 != 0 || p.head_dim > 128)
		return LG_GPU_ERR_UNSUPPORTED;
	if (p.head_dim <= 64)
		return lg_attn_tc_launch<64>(st, p, n_seqs, max_n_tok);
	return lg_attn_tc_launch<128>(st, p, n_seqs, max_n_tok);
}

#else							/* LG_HIP */

/* No wmma under HIP here: the float kernel does every prompt. */
lg_gpu_status
lg_attn_launch_prompt_tc(cudaStream_t, const lg_attn_params &, int, int32_t, int32_t)
{
	return LG_GPU_ERR_UNSUPPORTED;
}

#endif
