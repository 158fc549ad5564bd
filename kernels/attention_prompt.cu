/*
 * attention_prompt.cu — causal attention of any number of queries per
 * sequence (prompts, and batches that mix prompts with decode steps),
 * tiled in the manner of FlashAttention, in float (no tensor cores).
 *
 * Grid (n_heads, query tiles, sequences): a block takes one query head of
 * one sequence and a tile of BR query rows (rows qt*BR ..; a block whose
 * tile starts past the sequence's n_tok exits, and a block loops over
 * qt + gridDim.y, ... so a sequence longer than the host bound is still
 * done).  It streams the causal range of the tile, positions 0 ..
 * min(pos0 + last row, kv_len - 1), in tiles of BC positions:
 *   K tile -> shared;  S = scale * Q Kᵀ (BR x BC, masked: position <= the
 *   row's position);  online softmax per row (running max m and sum l,
 *   the accumulator rescaled by e^(m_old - m_new));  P -> shared;
 *   V tile -> shared (the K tile's buffer);  acc += P V.
 * out = acc / l.  Pool rows past the range are never read (the tile's
 * missing rows are zeros).
 *
 * 256 threads as 16 x 16: thread (ty, tx) owns rows ty + 16 i (i < BR/16),
 * score columns tx + 16 j (j < BC/16) and output columns tx + 16 k
 * (k < DP/16); row max and sum are reduced over the 16 lanes of a row
 * group (xor shuffles 8, 4, 2, 1 stay inside a half warp).  Shared rows are
 * padded to an odd stride (DP + 1, BC + 1) so the 16 rows a warp reads in
 * one step fall in distinct banks.
 *
 * Shapes by head_dim class DP (the smallest of 64, 128, 256 >= head_dim):
 *   DP  64: BR 64, BC 64   shared (64*65 + 64*65 + 64*65) * 4   = 49920 B
 *   DP 128: BR 64, BC 32   shared (64*129 + 32*129 + 64*33) * 4 = 57984 B
 *   DP 256: BR 32, BC 16   shared (32*257 + 16*257 + 32*17) * 4 = 51520 B
 * all above the 48 KB default (cudaFuncAttributeMaxDynamicSharedMemorySize
 * is raised before each launch) and within the 64 KB of an AMD CU.
 */
#include "common.cuh"
#include "attention.cuh"

#define LG_ATTN_FA_MAX_BC	64

/* Max and sum over the 16 lanes of a row group (lanes 0-15 or 16-31 of a warp). */
static __device__ __forceinline__ float
lg_attn_max16(float v)
{
#pragma unroll
	for (int o = 8; o > 0; o >>= 1)
		v = fmaxf(v, lg_shfl_xor(v, o));
	return v;
}

static __device__ __forceinline__ float
lg_attn_sum16(float v)
{
#pragma unroll
	for (int o = 8; o > 0; o >>= 1)
		v += lg_shfl_xor(v, o);
	return v;
}

/*
 * A K or V tile to dst[BC][SD] as float: row j < nc from the pool at
 * rows[j] (element offsets), rows nc .. BC-1 zeros; columns >= D untouched.
 */
template <typename KV, int DP, int BC>
static __device__ __forceinline__ void
lg_attn_fa_tile(float *dst, const KV *pool, const int64_t *rows, int nc, int D)
{
	constexpr int SD = DP + 1;

	if ((D & 1) == 0)
	{
		/* pairs: DP/2 per row, a power of two, so / and % are shifts */
		for (int i = threadIdx.x; i < BC * (DP / 2); i += LG_ATTN_FA_THREADS)
		{
			const int	j = i / (DP / 2);
			const int	c = 2 * (i % (DP / 2));
			float		x = 0.0f;
			float		y = 0.0f;

			if (c >= D)
				continue;
			if (j < nc)
				lg_attn_ld2(pool, rows[j] + c, x, y);
			dst[j * SD + c] = x;
			dst[j * SD + c + 1] = y;
		}
		return;
	}
	for (int i = threadIdx.x; i < BC * DP; i += LG_ATTN_FA_THREADS)
	{
		const int	j = i / DP;
		const int	c = i % DP;

		if (c < D)
			dst[j * SD + c] = j < nc ? lg_attn_ld1(pool, rows[j] + c) : 0.0f;
	}
}

/* One (head, query tile, sequence) of prompt attention; see the file comment. */
template <typename KV, int DP, int BR, int BC>
__global__ void __launch_bounds__(LG_ATTN_FA_THREADS)
lg_attn_flash_kernel(lg_attn_params a)
{
	extern __shared__ float lg_attn_fa_smem[];
	__shared__ int64_t rows[LG_ATTN_FA_MAX_BC];	/* pool offsets of the K/V tile's rows */

	constexpr int SD = DP + 1;	/* row stride of the Q and K/V tiles (odd) */
	constexpr int SP = BC + 1;	/* row stride of P (odd) */
	constexpr int RI = BR / 16;	/* rows per thread */
	constexpr int CJ = BC / 16;	/* score columns per thread */
	constexpr int DC = DP / 16;	/* output columns per thread */

	float	   *qs = lg_attn_fa_smem;	/* [BR][SD] */
	float	   *kv = qs + BR * SD;	/* [BC][SD], K then V */
	float	   *ps = kv + BC * SD;	/* [BR][SP] */

	const int	tid = threadIdx.x;
	const int	ty = tid / 16;
	const int	tx = tid % 16;
	const int	D = a.head_dim;
	const int	h = blockIdx.x;
	const int	kvh = h / (a.n_heads / a.n_kv_heads);
	const lg_gpu_attn_seq sq = a.seqs[blockIdx.z];
	const KV   *kp = (const KV *) a.k_pool;
	const KV   *vp = (const KV *) a.v_pool;
	const int64_t qstride = (int64_t) a.n_heads * D;

	for (int qt = blockIdx.y; (int64_t) qt * BR < sq.n_tok; qt += gridDim.y)
	{
		const int	qr0 = qt * BR;	/* the tile's first row in the sequence */
		const int	nr = min(BR, sq.n_tok - qr0);
		const int	qpos0 = sq.pos0 + qr0;	/* position of the tile's row 0 */
		const int	kv_end = lg_attn_kv_end(a, sq, qpos0 + nr - 1);	/* last row's position + 1 */
		float		m[RI];
		float		l[RI];
		float		acc[RI][DC];

		/* Q tile, rows past nr zero (their scores are masked anyway) */
		for (int i = tid; i < BR * DP; i += LG_ATTN_FA_THREADS)
		{
			const int	r = i / DP;
			const int	c = i % DP;

			if (c < D)
				qs[r * SD + c] = r < nr ?
					lg_attn_qval(kp, a.q[(int64_t) (sq.q_row0 + qr0 + r) * qstride + (int64_t) h * D + c]) :
					0.0f;
		}
#pragma unroll
		for (int i = 0; i < RI; i++)
		{
			m[i] = -INFINITY;
			l[i] = 0.0f;
#pragma unroll
			for (int k = 0; k < DC; k++)
				acc[i][k] = 0.0f;
		}

		for (int t0 = 0; t0 < kv_end; t0 += BC)
		{
			const int	nc = min(BC, kv_end - t0);
			float		s[RI][CJ];

			/*
			 * rows is free: whoever gets here has passed the last tile's
			 * barrier after its V load.  The barrier after it publishes rows
			 * and, at the first tile, Q.
			 */
			if (tid < BC)
				rows[tid] = tid < nc ? lg_attn_kv_offset(a, sq.bt_off, t0 + tid, kvh) : 0;
			__syncthreads();
			lg_attn_fa_tile<KV, DP, BC>(kv, kp, rows, nc, D);
			__syncthreads();

			/* S = Q Kᵀ for this thread's rows and columns */
#pragma unroll
			for (int i = 0; i < RI; i++)
#pragma unroll
				for (int j = 0; j < CJ; j++)
					s[i][j] = 0.0f;
#pragma unroll 4
			for (int c = 0; c < D; c++)
			{
				float		qv[RI];
				float		kc[CJ];

#pragma unroll
				for (int i = 0; i < RI; i++)
					qv[i] = qs[(ty + 16 * i) * SD + c];
#pragma unroll
				for (int j = 0; j < CJ; j++)
					kc[j] = kv[(tx + 16 * j) * SD + c];
#pragma unroll
				for (int i = 0; i < RI; i++)
#pragma unroll
					for (int j = 0; j < CJ; j++)
						s[i][j] += qv[i] * kc[j];
			}

			/* mask, online softmax, P */
#pragma unroll
			for (int i = 0; i < RI; i++)
			{
				const int	r = ty + 16 * i;
				const int	qpos = qpos0 + r;
				float		mx = -INFINITY;
				float		mn;
				float		alpha = 1.0f;
				float		rs = 0.0f;

#pragma unroll
				for (int j = 0; j < CJ; j++)
				{
					const int	cj = tx + 16 * j;

					if (r < nr && cj < nc && t0 + cj < lg_attn_kv_end(a, sq, qpos))
						s[i][j] *= a.scale;
					else
						s[i][j] = -INFINITY;
					mx = fmaxf(mx, s[i][j]);
				}
				mx = lg_attn_max16(mx);
				mn = fmaxf(m[i], mx);
				if (mn == -INFINITY)
				{
					/* nothing of this row yet (a padding row, or all in its future) */
#pragma unroll
					for (int j = 0; j < CJ; j++)
						s[i][j] = 0.0f;
				}
				else
				{
					alpha = expf(m[i] - mn);	/* 0 when m was -inf */
#pragma unroll
					for (int j = 0; j < CJ; j++)
					{
						s[i][j] = expf(s[i][j] - mn);	/* masked: e^-inf = 0 */
						rs += s[i][j];
					}
				}
				rs = lg_attn_sum16(rs);
				l[i] = l[i] * alpha + rs;
				m[i] = mn;
#pragma unroll
				for (int k = 0; k < DC; k++)
					acc[i][k] *= alpha;
#pragma unroll
				for (int j = 0; j < CJ; j++)
					ps[r * SP + tx + 16 * j] = s[i][j];
			}
			__syncthreads();	/* K read by all; P written */

			lg_attn_fa_tile<KV, DP, BC>(kv, vp, rows, nc, D);
			__syncthreads();

			/* acc += P V */
			for (int j = 0; j < nc; j++)
			{
				float		vv[DC];

#pragma unroll
				for (int k = 0; k < DC; k++)
					vv[k] = tx + 16 * k < D ? kv[j * SD + tx + 16 * k] : 0.0f;
#pragma unroll
				for (int i = 0; i < RI; i++)
				{
					const float p = ps[(ty + 16 * i) * SP + j];

#pragma unroll
					for (int k = 0; k < DC; k++)
						acc[i][k] += p * vv[k];
				}
			}
		}

		/* out = acc / l for the tile's real rows */
#pragma unroll
		for (int i = 0; i < RI; i++)
		{
			const int	r = ty + 16 * i;
			const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
			float	   *o;

			if (r >= nr)
				continue;
			o = a.out + (int64_t) (sq.q_row0 + qr0 + r) * qstride + (int64_t) h * D;
#pragma unroll
			for (int k = 0; k < DC; k++)
				if (tx + 16 * k < D)
					o[tx + 16 * k] = acc[i][k] * inv;
		}
		__syncthreads();		/* qs is rewritten by the next query tile */
	}
}

/* Dynamic shared memory of one flash block, in bytes. */
static constexpr size_t
lg_attn_fa_smem_bytes(int dp, int br, int bc)
{
	return (size_t) (br * (dp + 1) + bc * (dp + 1) + br * (bc + 1)) * sizeof(float);
}

/* Launch one shape of the flash kernel: grid (n_heads, query tiles, n_seqs). */
template <typename KV, int DP, int BR, int BC>
static lg_gpu_status
lg_attn_flash_launch(cudaStream_t st, const lg_attn_params &p, int32_t n_seqs, int32_t max_n_tok)
{
	constexpr size_t smem = lg_attn_fa_smem_bytes(DP, BR, BC);
	const int64_t tiles = lg_ceil_div(max_n_tok, BR);
	const dim3	grid((unsigned) p.n_heads, (unsigned) (tiles < 65535 ? tiles : 65535), (unsigned) n_seqs);
	lg_gpu_status rc;

	static_assert(BC <= LG_ATTN_FA_MAX_BC && BR % 16 == 0 && BC % 16 == 0 && DP % 16 == 0,
				  "flash tile shape");
	static_assert(BC <= LG_ATTN_FA_THREADS, "one thread per K/V tile row offset");
	rc = lg_gpu_check(cudaFuncSetAttribute((const void *) lg_attn_flash_kernel<KV, DP, BR, BC>,
										   cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem),
					  "attention: cudaFuncSetAttribute");
	if (rc != LG_GPU_OK)
		return rc;
	lg_attn_flash_kernel<KV, DP, BR, BC><<<grid, LG_ATTN_FA_THREADS, smem, st>>>(p);
	return LG_GPU_OK;
}

/* The shape for the head size, for one pool type. */
template <typename KV>
static lg_gpu_status
lg_attn_flash_dispatch(cudaStream_t st, const lg_attn_params &p, int32_t n_seqs, int32_t max_n_tok)
{
	if (p.head_dim <= 64)
		return lg_attn_flash_launch<KV, 64, 64, 64>(st, p, n_seqs, max_n_tok);
	if (p.head_dim <= 128)
		return lg_attn_flash_launch<KV, 128, 64, 32>(st, p, n_seqs, max_n_tok);
	return lg_attn_flash_launch<KV, 256, 32, 16>(st, p, n_seqs, max_n_tok);
}

/*
 * Launch prompt attention (the entry has checked p; head_dim <= 256): on
 * tensor cores where attention_prompt_tc.cu takes the call, else here.
 */
lg_gpu_status
lg_attn_launch_prompt(cudaStream_t st, const lg_attn_params &p, int kv_type, int32_t n_seqs,
					  int32_t max_n_tok)
{
	const lg_gpu_status rc = lg_attn_launch_prompt_tc(st, p, kv_type, n_seqs, max_n_tok);

	if (rc != LG_GPU_ERR_UNSUPPORTED)
		return rc;
	if (kv_type == LG_GPU_KV_F16)
		return lg_attn_flash_dispatch<uint16_t>(st, p, n_seqs, max_n_tok);
	return lg_attn_flash_dispatch<float>(st, p, n_seqs, max_n_tok);
}
