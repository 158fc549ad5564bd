/*
 * mmv.cu — y[n][m] = x[n][k] · wᵀ for n <= 8 rows of x: decode, and
 * batched decode of up to 8 sequences, which reads each weight row once.
 *
 * Decode is bound by memory bandwidth: every weight byte is read once per
 * token, so the kernel is built around the weight stream.  One warp owns
 * MMV_R (2) consecutive output rows; its 32 lanes walk the rows together,
 * each lane taking VPL values (16 for quantized types, 8 for F16/BF16/F32)
 * of a block per step, so a warp step reads a contiguous stretch of every
 * row: 512 bytes of an F16 row (one 16-byte load per lane), 16 q4_0 blocks
 * (288 bytes), 2 K-quant super-blocks.  The dequantized values stay in
 * registers and are used for all n rows of x, whose float32 values
 * (16-byte loads) come from L1/L2: x is small and every warp reads it.
 * Two rows per warp halve that x traffic relative to the weight bytes.
 * MMV_WARPS (4) warps a block, so m/8 blocks: 512 for m = 4096, several
 * per SM on 132 SMs; with the loop unrolled twice a warp keeps about 1 KB
 * of weights in flight.  Partial sums are float, reduced over the warp at
 * the end.
 *
 * Few rows (m < 8192: the k/v projections of a GQA model have 256 or 512)
 * would leave SMs idle or a warp making many dependent round trips to
 * memory, so there the 4 warps of a block split k instead (KS = 4): they
 * own the same 2 rows, each takes every 4th warp step, and their sums meet
 * in shared memory.  That gives 4× the blocks and a quarter of the steps.
 *
 * A float-type row that is not 16-byte aligned (k % 8 != 0 or an odd
 * pointer), or x not 16-byte aligned, takes a scalar kernel (one value a
 * lane, bit-exact dequantization) that works for any shape.
 */
#include "common.cuh"
#include "quants.cuh"
#include "matmul.cuh"

#define MMV_WARPS 4
#define MMV_R 2

/*
 * Vector kernel.  KS warps share rows (KS = 1 or MMV_WARPS): warp w of
 * block b is in row group g = b*(MMV_WARPS/KS) + w/KS, owning rows
 * g*MMV_R + r, and takes k part w % KS.  A "chunk" is max(QK, VPL) values
 * (one block, or 8 floats); NSUB lanes share a chunk, lane part
 * s = lane % NSUB; a warp step covers CPI chunks, and k part p takes steps
 * p, p + KS, ...  NX is the compile-time bound of n (1, 2, 4, 8); the
 * j < n guards are uniform.
 */
template <class T, int NX, int KS>
__global__ void __launch_bounds__(MMV_WARPS * LG_WARP)
mmv_kernel(float *__restrict__ y, const uint8_t *__restrict__ w, size_t row_bytes, int n_chunks, int m,
		   const float *__restrict__ x, int64_t k, int n)
{
	constexpr int CHUNK = T::QK > T::VPL ? T::QK : T::VPL;
	constexpr int CBYTES = CHUNK / T::QK * T::BYTES;
	constexpr int NSUB = CHUNK / T::VPL;
	constexpr int CPI = LG_WARP / NSUB;
	constexpr int VPL = T::VPL;
	constexpr int G = VPL / 4;
	const int	lane = threadIdx.x % LG_WARP;
	const int	warp = threadIdx.x / LG_WARP;
	const int	row0 = (blockIdx.x * (MMV_WARPS / KS) + warp / KS) * MMV_R;
	const int	part = warp % KS;
	const int	s = lane % NSUB;
	/* a warp past the last row does no work but still meets the barrier */
	const int	end = row0 < m ? n_chunks : 0;
	const uint8_t *wr[MMV_R];
	float		acc[MMV_R][NX];
	__shared__ float red[KS > 1 ? MMV_WARPS : 1][MMV_R][NX];

	static_assert(KS == 1 || KS == MMV_WARPS, "warps split k all together or not at all");
#pragma unroll
	for (int r = 0; r < MMV_R; r++)
	{
		/* a row past m re-reads row m-1 (cached) and is not written: no divergence */
		wr[r] = w + (size_t) min(row0 + r, m - 1) * row_bytes;
#pragma unroll
		for (int j = 0; j < NX; j++)
			acc[r][j] = 0.0f;
	}

#pragma unroll 2
	for (int c = lane / NSUB + CPI * part; c < end; c += CPI * KS)
	{
		float		wv[MMV_R][VPL];
		float2		f[MMV_R];
		const float *xc = x + (size_t) c * CHUNK;

#pragma unroll
		for (int r = 0; r < MMV_R; r++)
			f[r] = T::vals(wr[r] + (size_t) c * CBYTES, s, wv[r]);
#pragma unroll
		for (int j = 0; j < NX; j++)
		{
			float		xs[VPL];

			if (j < n)
			{
#pragma unroll
				for (int g = 0; g < G; g++)
				{
					float4		v = __ldg((const float4 *) (xc + j * k + T::pos(s, g)));

					xs[4 * g] = v.x;
					xs[4 * g + 1] = v.y;
					xs[4 * g + 2] = v.z;
					xs[4 * g + 3] = v.w;
				}
#pragma unroll
				for (int r = 0; r < MMV_R; r++)
				{
					float		lo = 0.0f,
								hi = 0.0f;

#pragma unroll
					for (int i = 0; i < VPL / 2; i++)
					{
						lo = fmaf(wv[r][i], xs[i], lo);
						hi = fmaf(wv[r][i + VPL / 2], xs[i + VPL / 2], hi);
					}
					acc[r][j] = fmaf(f[r].x, lo, fmaf(f[r].y, hi, acc[r][j]));
				}
			}
		}
	}

#pragma unroll
	for (int r = 0; r < MMV_R; r++)
	{
#pragma unroll
		for (int j = 0; j < NX; j++)
		{
			float		v = lg_warp_sum(acc[r][j]);

			if (KS > 1)
			{
				if (lane == 0)
					red[warp][r][j] = v;
			}
			else if (lane == 0 && j < n && row0 + r < m)
				y[(size_t) j * m + row0 + r] = v;
		}
	}
	if (KS > 1)
	{
		/* the KS warps of the block own the same rows: warp 0 adds their sums */
		__syncthreads();
		if (warp == 0 && lane < MMV_R * NX)
		{
			int			r = lane / NX;
			int			j = lane % NX;
			float		v = 0.0f;

#pragma unroll
			for (int p = 0; p < KS; p++)
				v += red[p][r][j];
			if (j < n && row0 + r < m)
				y[(size_t) j * m + row0 + r] = v;
		}
	}
}

/*
 * Scalar kernel, any alignment and any k: warp per row, lane per value,
 * the exact per-value dequantization of quants.cuh.
 */
template <class T>
__global__ void __launch_bounds__(MMV_WARPS * LG_WARP)
mmv_scalar_kernel(float *__restrict__ y, const uint8_t *__restrict__ w, size_t row_bytes, int m,
				  const float *__restrict__ x, int64_t k, int n)
{
	const int	lane = threadIdx.x % LG_WARP;
	const int	row = blockIdx.x * MMV_WARPS + threadIdx.x / LG_WARP;
	const uint8_t *wr = w + (size_t) row * row_bytes;
	float		acc[LG_MMV_MAX_N];

	if (row >= m)
		return;
#pragma unroll
	for (int j = 0; j < LG_MMV_MAX_N; j++)
		acc[j] = 0.0f;
	for (int64_t i = lane; i < k; i += LG_WARP)
	{
		float		v = T::get(wr + (size_t) (i / T::QK) * T::BYTES, (int) (i % T::QK));

#pragma unroll
		for (int j = 0; j < LG_MMV_MAX_N; j++)
			if (j < n)
				acc[j] = fmaf(v, x[j * k + i], acc[j]);
	}
#pragma unroll
	for (int j = 0; j < LG_MMV_MAX_N; j++)
	{
		float		v = lg_warp_sum(acc[j]);

		if (lane == 0 && j < n)
			y[(size_t) j * m + row] = v;
	}
}

/*
 * Launch the vector kernel with the compile-time bound NX >= n; the warps
 * of a block split k when rows are few and every warp still gets a step.
 */
template <class T, int NX>
static void
mmv_vec(cudaStream_t st, float *y, const uint8_t *w, size_t row_bytes, int64_t k, int64_t m,
		const float *x, int64_t n)
{
	constexpr int CHUNK = T::QK > T::VPL ? T::QK : T::VPL;
	constexpr int CPI = LG_WARP / (CHUNK / T::VPL);
	int			n_chunks = (int) (k / CHUNK);

	if (m < 8192 && n_chunks >= CPI * MMV_WARPS)
	{
		unsigned	blocks = (unsigned) lg_ceil_div(m, MMV_R);

		mmv_kernel<T, NX, MMV_WARPS><<<blocks, MMV_WARPS * LG_WARP, 0, st>>>(y, w, row_bytes, n_chunks, (int) m,
																			  x, k, (int) n);
	}
	else
	{
		unsigned	blocks = (unsigned) lg_ceil_div(m, MMV_WARPS * MMV_R);

		mmv_kernel<T, NX, 1><<<blocks, MMV_WARPS * LG_WARP, 0, st>>>(y, w, row_bytes, n_chunks, (int) m,
																	  x, k, (int) n);
	}
}

/* Pick the kernel for a type: vector when alignment allows, else scalar. */
template <class T>
static lg_gpu_status
mmv_type(cudaStream_t st, float *y, const void *w, int64_t k, int64_t m, const float *x, int64_t n)
{
	const uint8_t *wb = (const uint8_t *) w;
	size_t		row_bytes = (size_t) (k / T::QK) * T::BYTES;
	bool		vec = ((uintptr_t) x % 16) == 0;

	/* float rows: 16-byte loads need k % 8 == 0 (rows of 16/32-byte multiples) and an aligned base */
	if (T::FLOAT)
		vec = vec && k % 8 == 0 && ((uintptr_t) w % 16) == 0;
	/* quantized: k is a multiple of QK >= 32, so every row of x stays 16-byte aligned */
	if (vec)
	{
		if (n == 1)
			mmv_vec<T, 1>(st, y, wb, row_bytes, k, m, x, n);
		else if (n == 2)
			mmv_vec<T, 2>(st, y, wb, row_bytes, k, m, x, n);
		else if (n <= 4)
			mmv_vec<T, 4>(st, y, wb, row_bytes, k, m, x, n);
		else
			mmv_vec<T, 8>(st, y, wb, row_bytes, k, m, x, n);
	}
	else
	{
		unsigned	blocks = (unsigned) lg_ceil_div(m, MMV_WARPS);

		mmv_scalar_kernel<T><<<blocks, MMV_WARPS * LG_WARP, 0, st>>>(y, wb, row_bytes, (int) m, x, k, (int) n);
	}
	return lg_gpu_check_launch("matmul (matrix-vector)");
}

/* Switch on the type (shapes checked by lg_gpu_matmul). */
lg_gpu_status
lg_mmv_launch(cudaStream_t st, float *y, const void *w, lg_type type, int64_t k, int64_t m,
			  const float *x, int64_t n)
{
	LG_DISPATCH_TYPE(type, mmv_type,
					 lg_gpu_set_error(LG_GPU_ERR_UNSUPPORTED, "matmul: no kernel for weight type %d", (int) type),
					 st, y, w, k, m, x, n);
}
