/*
 * attention_decode.cu — attention of decode steps (one query per
 * sequence) over the paged KV cache, split-K (flash-decoding, vLLM's paged
 * attention v2).
 *
 * Grid (head blocks, sequences, splits).  A head block is up to 8 query
 * heads of one KV head's group, so a block reads each K/V row once for all
 * of them.  Split z covers positions [z * split_len, (z + 1) * split_len)
 * of its sequence (the last split runs to the end, so a sequence longer
 * than the host bound is still right, only slower); a split that starts at
 * or past the sequence's own length exits at once.  The grid depends on the
 * host bounds only, so a captured graph replays with other lengths.
 *
 * A block walks its range in tiles of 128 positions, one per thread:
 *   1. the thread dots its position's K row (read straight from the pool,
 *      16 bytes at a time) with the block's queries (in shared memory);
 *   2. per head, the tile's max and the sum of exp(score - max) over the
 *      block (warp shuffles, then 4 warps through shared memory) update
 *      the running max m and sum l (online softmax);
 *   3. the threads switch to columns: a thread owns two adjacent columns
 *      of V and every n_rp-th position of the tile (n_rp = 128 / pairs
 *      per row, so head_dim 64 uses all 128 threads), accumulating
 *      p * V for each head, V read coalesced along the row.
 * The n_rp partial accumulators are summed through shared memory at the
 * end.  With one split the block writes out = acc / l; otherwise it writes
 * its partial (m, l, acc) to scratch and lg_attn_reduce_kernel folds the
 * splits: out = Σ acc_z e^(m_z - M) / Σ l_z e^(m_z - M), M = max m_z.
 *
 * All math in float.  Static shared memory: 8 KB of queries (reused for
 * the final sum), 4 KB of probabilities, 1 KB of row offsets.
 */
#include "common.cuh"
#include "attention.cuh"

#define LG_ATTN_DEC_WARPS	(LG_ATTN_DEC_THREADS / LG_WARP)
#define LG_ATTN_MAX_DIM		256

/* d[h] += q_h · k over D values, k an F16 pool row (16-byte loads when D % 8 == 0). */
static __device__ __forceinline__ void
lg_attn_dec_dot(const uint16_t *k, const float *qs, int D, int nh, float *d)
{
	if ((D & 7) == 0)
	{
		/* unrolled so several 16-byte loads of the row are in flight at once */
#pragma unroll 4
		for (int c = 0; c < D; c += 8)
		{
			const uint4 u = *(const uint4 *) (k + c);
			float		kf[8];

			kf[0] = lg_h2f((uint16_t) (u.x & 0xffffu));
			kf[1] = lg_h2f((uint16_t) (u.x >> 16));
			kf[2] = lg_h2f((uint16_t) (u.y & 0xffffu));
			kf[3] = lg_h2f((uint16_t) (u.y >> 16));
			kf[4] = lg_h2f((uint16_t) (u.z & 0xffffu));
			kf[5] = lg_h2f((uint16_t) (u.z >> 16));
			kf[6] = lg_h2f((uint16_t) (u.w & 0xffffu));
			kf[7] = lg_h2f((uint16_t) (u.w >> 16));
#pragma unroll
			for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
			{
				if (h < nh)
				{
					/* qs + h*D + c is 16-byte aligned: D and c are multiples of 8 */
					const float4 q0 = *(const float4 *) (qs + h * D + c);
					const float4 q1 = *(const float4 *) (qs + h * D + c + 4);

					d[h] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] +
						q1.x * kf[4] + q1.y * kf[5] + q1.z * kf[6] + q1.w * kf[7];
				}
			}
		}
		return;
	}
	for (int c = 0; c < D; c++)
	{
		const float kv = lg_h2f(k[c]);

#pragma unroll
		for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
			if (h < nh)
				d[h] += qs[h * D + c] * kv;
	}
}

/* The same for an F32 pool row (float4 loads when D % 4 == 0). */
static __device__ __forceinline__ void
lg_attn_dec_dot(const float *k, const float *qs, int D, int nh, float *d)
{
	if ((D & 3) == 0)
	{
#pragma unroll 4
		for (int c = 0; c < D; c += 4)
		{
			const float4 kv = *(const float4 *) (k + c);

#pragma unroll
			for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
			{
				if (h < nh)
				{
					const float4 q0 = *(const float4 *) (qs + h * D + c);

					d[h] += q0.x * kv.x + q0.y * kv.y + q0.z * kv.z + q0.w * kv.w;
				}
			}
		}
		return;
	}
	for (int c = 0; c < D; c++)
	{
		const float kv = k[c];

#pragma unroll
		for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
			if (h < nh)
				d[h] += qs[h * D + c] * kv;
	}
}

/* Values c and c + 1 of a pool row at off (the second 0 when c + 1 == D). */
template <typename KV>
static __device__ __forceinline__ void
lg_attn_dec_pair(const KV *pool, int64_t off, int c, int D, float &v0, float &v1)
{
	if ((D & 1) == 0)
		lg_attn_ld2(pool, off + c, v0, v1);
	else
	{
		v0 = lg_attn_ld1(pool, off + c);
		v1 = c + 1 < D ? lg_attn_ld1(pool, off + c + 1) : 0.0f;
	}
}

/* One (head block, sequence, split) of decode attention; see the file comment. */
template <typename KV>
__global__ void __launch_bounds__(LG_ATTN_DEC_THREADS)
lg_attn_decode_kernel(lg_attn_params a)
{
	__shared__ __align__(16) float qs[LG_ATTN_DEC_HEADS * LG_ATTN_MAX_DIM];	/* [nh][D] */
	__shared__ float ps[LG_ATTN_DEC_THREADS][LG_ATTN_DEC_HEADS];	/* p per position, head */
	__shared__ int64_t rows[LG_ATTN_DEC_THREADS];	/* pool offset of each position */
	__shared__ float red_m[LG_ATTN_DEC_WARPS][LG_ATTN_DEC_HEADS];
	__shared__ float red_s[LG_ATTN_DEC_WARPS][LG_ATTN_DEC_HEADS];

	const int	tid = threadIdx.x;
	const int	lane = tid % LG_WARP;
	const int	warp = tid / LG_WARP;
	const int	D = a.head_dim;
	const int	group = a.n_heads / a.n_kv_heads;
	const int	hpb = group < LG_ATTN_DEC_HEADS ? group : LG_ATTN_DEC_HEADS;
	const int	hblocks = (group + hpb - 1) / hpb;
	const int	kvh = blockIdx.x / hblocks;
	const int	hb = blockIdx.x % hblocks;
	const int	h0 = kvh * group + hb * hpb;	/* first query head of the block */
	const int	nh = min(hpb, group - hb * hpb);
	const lg_gpu_attn_seq sq = a.seqs[blockIdx.y];
	const KV   *kp = (const KV *) a.k_pool;
	const KV   *vp = (const KV *) a.v_pool;
	const int64_t qstride = (int64_t) a.n_heads * D;

	/* V columns: pairs (c, c+1); W pairs per pass, n_rp passes share a tile's positions */
	const int	D2 = (D + 1) / 2;
	const int	W = D2 < LG_ATTN_DEC_THREADS ? D2 : LG_ATTN_DEC_THREADS;
	const int	n_rp = LG_ATTN_DEC_THREADS / W;
	const int	rp = tid / W;
	const int	c = 2 * (tid % W);
	const bool	vcol = rp < n_rp;

	int			n_valid;
	int			s0;
	int			s1;
	float		m[LG_ATTN_DEC_HEADS];
	float		l[LG_ATTN_DEC_HEADS];
	float		acc0[LG_ATTN_DEC_HEADS];	/* column c */
	float		acc1[LG_ATTN_DEC_HEADS];	/* column c + 1 */

	if (sq.n_tok != 1)
		return;					/* not a decode step (the bounds said none is) */
	n_valid = lg_attn_kv_end(a, sq, sq.pos0);
	s0 = blockIdx.z * a.split_len;
	if (n_valid <= 0 || s0 >= n_valid)
		return;					/* the whole block: past this sequence's length */
	s1 = blockIdx.z == gridDim.z - 1 ? n_valid : min(s0 + a.split_len, n_valid);

	for (int i = tid; i < nh * D; i += LG_ATTN_DEC_THREADS)
	{
		const int	h = i / D;

		qs[i] = lg_attn_qval(kp, a.q[(int64_t) sq.q_row0 * qstride + (int64_t) (h0 + h) * D + i % D]);
	}
#pragma unroll
	for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
	{
		m[h] = -INFINITY;
		l[h] = 0.0f;
		acc0[h] = 0.0f;
		acc1[h] = 0.0f;
	}
	__syncthreads();

	for (int t0 = s0; t0 < s1; t0 += LG_ATTN_DEC_THREADS)
	{
		const int	n = min(LG_ATTN_DEC_THREADS, s1 - t0);
		float		s[LG_ATTN_DEC_HEADS];
		float		alpha[LG_ATTN_DEC_HEADS];

		/* 1. scores of this thread's position */
#pragma unroll
		for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
		{
			s[h] = 0.0f;
			alpha[h] = 1.0f;
		}
		if (tid < n)
		{
			const int64_t off = lg_attn_kv_offset(a, sq.bt_off, t0 + tid, kvh);

			rows[tid] = off;
			lg_attn_dec_dot(kp + off, qs, D, nh, s);
#pragma unroll
			for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
				s[h] *= a.scale;
		}
		else
		{
#pragma unroll
			for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
				s[h] = -INFINITY;
		}

		/* 2. the tile's max per head, then p = e^(s - max) and its sum */
#pragma unroll
		for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
		{
			if (h < nh)
			{
				const float wm = lg_warp_max(s[h]);

				if (lane == 0)
					red_m[warp][h] = wm;
			}
		}
		__syncthreads();
#pragma unroll
		for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
		{
			if (h < nh)
			{
				float		tm = red_m[0][h];
				float		mn;
				float		p;
				float		ws;

				for (int w = 1; w < LG_ATTN_DEC_WARPS; w++)
					tm = fmaxf(tm, red_m[w][h]);
				/* the tile holds n >= 1 valid positions, so mn is finite */
				mn = fmaxf(m[h], tm);
				p = tid < n ? expf(s[h] - mn) : 0.0f;
				ps[tid][h] = p;
				ws = lg_warp_sum(p);
				if (lane == 0)
					red_s[warp][h] = ws;
				/* rescale what was summed under the older max (e^-inf = 0 at first) */
				alpha[h] = expf(m[h] - mn);
				m[h] = mn;
			}
		}
		__syncthreads();
#pragma unroll
		for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
		{
			if (h < nh)
			{
				float		ts = red_s[0][h];

				for (int w = 1; w < LG_ATTN_DEC_WARPS; w++)
					ts += red_s[w][h];
				l[h] = l[h] * alpha[h] + ts;
				acc0[h] *= alpha[h];
				acc1[h] *= alpha[h];
			}
		}

		/* 3. acc += p * V, this thread's columns over every n_rp-th position */
		if (vcol)
		{
#pragma unroll 4
			for (int r = rp; r < n; r += n_rp)
			{
				float		v0;
				float		v1;

				lg_attn_dec_pair(vp, rows[r], c, D, v0, v1);
#pragma unroll
				for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
				{
					if (h < nh)
					{
						acc0[h] += ps[r][h] * v0;
						acc1[h] += ps[r][h] * v1;
					}
				}
			}
		}
		__syncthreads();		/* rows, ps and red_* are rewritten by the next tile */
	}

	/* sum the n_rp partial accumulators into pass 0 (qs is free: [h][rp][D]) */
	if (n_rp > 1)
	{
		float	   *red = qs;

		if (vcol && rp > 0)
		{
#pragma unroll
			for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
			{
				if (h < nh)
				{
					red[(h * n_rp + rp) * D + c] = acc0[h];
					if (c + 1 < D)
						red[(h * n_rp + rp) * D + c + 1] = acc1[h];
				}
			}
		}
		__syncthreads();
		if (vcol && rp == 0)
		{
#pragma unroll
			for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
			{
				if (h < nh)
				{
					for (int j = 1; j < n_rp; j++)
					{
						acc0[h] += red[(h * n_rp + j) * D + c];
						if (c + 1 < D)
							acc1[h] += red[(h * n_rp + j) * D + c + 1];
					}
				}
			}
		}
	}
	if (!vcol || rp != 0)
		return;

#pragma unroll
	for (int h = 0; h < LG_ATTN_DEC_HEADS; h++)
	{
		if (h >= nh)
			continue;
		if (gridDim.z == 1)
		{
			float	   *o = a.out + (int64_t) sq.q_row0 * qstride + (int64_t) (h0 + h) * D;
			const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;

			o[c] = acc0[h] * inv;
			if (c + 1 < D)
				o[c + 1] = acc1[h] * inv;
		}
		else
		{
			/* partial [seq][split][head][m, l, acc of D] */
			float	   *pt = a.scratch +
				(((int64_t) blockIdx.y * gridDim.z + blockIdx.z) * a.n_heads + h0 + h) * (D + 2);

			if (tid == 0)
			{
				pt[0] = m[h];
				pt[1] = l[h];
			}
			pt[2 + c] = acc0[h];
			if (c + 1 < D)
				pt[2 + c + 1] = acc1[h];
		}
	}
}

/*
 * Fold one (head, sequence)'s split partials into its output.  Grid
 * (n_heads, n_seqs); the splits that ran are those starting before the
 * sequence's length, as the decode kernel decided.
 */
__global__ void __launch_bounds__(LG_ATTN_DEC_THREADS)
lg_attn_reduce_kernel(lg_attn_params a)
{
	__shared__ float wz[LG_ATTN_TARGET_BLOCKS];	/* e^(m_z - M) */
	__shared__ float red[32];

	const int	tid = threadIdx.x;
	const int	h = blockIdx.x;
	const int	D = a.head_dim;
	const lg_gpu_attn_seq sq = a.seqs[blockIdx.y];
	const int64_t pstride = (int64_t) a.n_heads * (D + 2);	/* one split to the next */
	const float *base = a.scratch + (int64_t) blockIdx.y * a.n_splits * pstride + (int64_t) h * (D + 2);
	float	   *o;
	int			n_valid;
	int			nz;
	float		mx = -INFINITY;
	float		sum = 0.0f;
	float		inv;

	if (sq.n_tok != 1)
		return;
	n_valid = lg_attn_kv_end(a, sq, sq.pos0);
	if (n_valid <= 0)
		return;
	nz = (n_valid + a.split_len - 1) / a.split_len;
	nz = min(nz, min(a.n_splits, LG_ATTN_TARGET_BLOCKS));

	for (int z = tid; z < nz; z += blockDim.x)
		mx = fmaxf(mx, base[z * pstride]);
	mx = lg_block_max(mx, red);	/* every split ran at least one position: finite */
	for (int z = tid; z < nz; z += blockDim.x)
	{
		const float w = expf(base[z * pstride] - mx);

		wz[z] = w;
		sum += base[z * pstride + 1] * w;
	}
	sum = lg_block_sum(sum, red);	/* its barriers also publish wz */
	inv = sum > 0.0f ? 1.0f / sum : 0.0f;

	o = a.out + (int64_t) sq.q_row0 * a.n_heads * D + (int64_t) h * D;
	for (int c = tid; c < D; c += blockDim.x)
	{
		float		v = 0.0f;

		for (int z = 0; z < nz; z++)
			v += base[z * pstride + 2 + c] * wz[z];
		o[c] = v * inv;
	}
}

/*
 * Launch decode attention: the split plan is in p (split_len, n_splits),
 * p.scratch set when n_splits > 1.  Every grid dimension is >= 1.
 */
lg_gpu_status
lg_attn_launch_decode(cudaStream_t st, const lg_attn_params &p, int kv_type, int32_t n_seqs)
{
	const int	group = p.n_heads / p.n_kv_heads;
	const int	hpb = lg_attn_dec_heads(group);
	const dim3	grid((unsigned) (p.n_kv_heads * ((group + hpb - 1) / hpb)), (unsigned) n_seqs,
					 (unsigned) p.n_splits);

	if (kv_type == LG_GPU_KV_F16)
		lg_attn_decode_kernel<uint16_t><<<grid, LG_ATTN_DEC_THREADS, 0, st>>>(p);
	else
		lg_attn_decode_kernel<float><<<grid, LG_ATTN_DEC_THREADS, 0, st>>>(p);
	if (p.n_splits > 1)
		lg_attn_reduce_kernel<<<dim3((unsigned) p.n_heads, (unsigned) n_seqs), LG_ATTN_DEC_THREADS, 0, st>>>(p);
	return LG_GPU_OK;
}
