/*
 * gemm.cu — y[n][m] = x[n][k] · wᵀ for any n, k, m with our own kernel:
 * the only GEMM of the HIP build (no hipBLAS on Debian 12), and under CUDA
 * the one for quantized or half weights at 8 < n < 32 and when no cuBLAS
 * handle is given.
 *
 * Classic shared-memory tiling: a block of 256 threads computes a 64×64
 * tile of y (64 weight rows × 64 rows of x), walking k in steps of 32.  Per
 * step it dequantizes the 64×32 tile of w (exact per-value dequantization,
 * quants.cuh) and copies the 32×64 tile of x into shared memory as float,
 * both stored k-major (ws[kk][row]) so the inner loop reads rows of
 * consecutive addresses; each thread then accumulates a 4×4 register
 * block: weight rows tx + 16i, x rows ty + 16j (strided, so a warp's
 * reads fall in distinct banks or broadcast).  Values outside m, n or k
 * are loaded as 0, so every tail is handled by the same code.
 *
 * x is float32, or F16/BF16 for lg_gpu_matmul_half (the output of
 * lg_gpu_rmsnorm_half): the X template parameter reads one value.
 */
#include "common.cuh"
#include "quants.cuh"
#include "matmul.cuh"

#define GEMM_BM 64				/* weight rows (m) per tile */
#define GEMM_BN 64				/* rows of x (n) per tile */
#define GEMM_BK 32				/* k per step */
#define GEMM_THREADS 256		/* 16 × 16, each 4 × 4 outputs */

/* Readers of activation i as float: float32, F16, BF16. */
struct lg_x_f32
{
	static __device__ __forceinline__ float ld(const void *x, int64_t i)
	{
		return ((const float *) x)[i];
	}
};
struct lg_x_f16
{
	static __device__ __forceinline__ float ld(const void *x, int64_t i)
	{
		return lg_h2f(((const uint16_t *) x)[i]);
	}
};
struct lg_x_bf16
{
	static __device__ __forceinline__ float ld(const void *x, int64_t i)
	{
		return lg_bf2f(((const uint16_t *) x)[i]);
	}
};

template <class T, class X>
__global__ void __launch_bounds__(GEMM_THREADS)
gemm_kernel(float *__restrict__ y, const uint8_t *__restrict__ w, size_t row_bytes, int64_t m,
			const void *__restrict__ x, int64_t k, int64_t n)
{
	/* +1 column: the k-major stores (consecutive kk, same row) hit distinct banks */
	__shared__ float ws[GEMM_BK][GEMM_BM + 1];
	__shared__ float xs[GEMM_BK][GEMM_BN + 1];
	const int	tid = threadIdx.x;
	const int	tx = tid % 16;
	const int	ty = tid / 16;
	const int64_t m0 = (int64_t) blockIdx.x * GEMM_BM;
	const int64_t n0 = (int64_t) blockIdx.y * GEMM_BN;
	float		acc[4][4];

#pragma unroll
	for (int i = 0; i < 4; i++)
#pragma unroll
		for (int j = 0; j < 4; j++)
			acc[i][j] = 0.0f;

	for (int64_t k0 = 0; k0 < k; k0 += GEMM_BK)
	{
		/*
		 * Load: element e = tid + 256*i of a 64×32 tile is row e/32, column
		 * e%32, so a warp reads 32 consecutive k of one row (coalesced).
		 */
#pragma unroll
		for (int i = 0; i < GEMM_BM * GEMM_BK / GEMM_THREADS; i++)
		{
			int			e = tid + GEMM_THREADS * i;
			int			r = e / GEMM_BK;
			int			c = e % GEMM_BK;
			int64_t		row = m0 + r;
			int64_t		col = k0 + c;
			float		v = 0.0f;

			if (row < m && col < k)
				v = T::get(w + (size_t) row * row_bytes + (size_t) (col / T::QK) * T::BYTES, (int) (col % T::QK));
			ws[c][r] = v;
		}
#pragma unroll
		for (int i = 0; i < GEMM_BN * GEMM_BK / GEMM_THREADS; i++)
		{
			int			e = tid + GEMM_THREADS * i;
			int			r = e / GEMM_BK;
			int			c = e % GEMM_BK;
			int64_t		row = n0 + r;
			int64_t		col = k0 + c;

			xs[c][r] = row < n && col < k ? X::ld(x, row * k + col) : 0.0f;
		}
		__syncthreads();

#pragma unroll 8
		for (int kk = 0; kk < GEMM_BK; kk++)
		{
			float		a[4],
						b[4];

#pragma unroll
			for (int i = 0; i < 4; i++)
			{
				a[i] = ws[kk][tx + 16 * i];
				b[i] = xs[kk][ty + 16 * i];
			}
#pragma unroll
			for (int i = 0; i < 4; i++)
#pragma unroll
				for (int j = 0; j < 4; j++)
					acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
		}
		__syncthreads();		/* before the next step overwrites the tiles */
	}

#pragma unroll
	for (int j = 0; j < 4; j++)
	{
		int64_t		row = n0 + ty + 16 * j;

		if (row >= n)
			continue;
#pragma unroll
		for (int i = 0; i < 4; i++)
		{
			int64_t		col = m0 + tx + 16 * i;

			if (col < m)
				y[row * m + col] = acc[i][j];
		}
	}
}

/* Launch for one type: grid (m/64, n/64) rounded up, both nonzero for m, n > 0. */
template <class T, class X>
static lg_gpu_status
gemm_type(cudaStream_t st, float *y, const void *w, int64_t k, int64_t m, const void *x, int64_t n)
{
	size_t		row_bytes = (size_t) (k / T::QK) * T::BYTES;
	dim3		grid((unsigned) lg_ceil_div(m, GEMM_BM), (unsigned) lg_ceil_div(n, GEMM_BN));

	if (grid.y > 65535)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: %lld rows of x exceed the GEMM grid (at most %d)",
								(long long) n, 65535 * GEMM_BN);
	gemm_kernel<T, X><<<grid, GEMM_THREADS, 0, st>>>(y, (const uint8_t *) w, row_bytes, m, x, k, n);
	return lg_gpu_check_launch("matmul (gemm)");
}

/* Float activations. */
template <class T>
static lg_gpu_status
gemm_x_f32(cudaStream_t st, float *y, const void *w, int64_t k, int64_t m, const void *x, int64_t n)
{
	return gemm_type<T, lg_x_f32>(st, y, w, k, m, x, n);
}

/* F16 activations (any weight type but BF16, see lg_gpu_matmul_half_type). */
template <class T>
static lg_gpu_status
gemm_x_f16(cudaStream_t st, float *y, const void *w, int64_t k, int64_t m, const void *x, int64_t n)
{
	return gemm_type<T, lg_x_f16>(st, y, w, k, m, x, n);
}

/* Switch on the activation type, then the weight type (shapes checked by the entry). */
lg_gpu_status
lg_gemm_launch(cudaStream_t st, float *y, const void *w, lg_type type, int64_t k, int64_t m,
			   const void *x, lg_type x_type, int64_t n)
{
	if (x_type == LG_TYPE_BF16 && type == LG_TYPE_BF16)
		return gemm_type<lg_t_bf16, lg_x_bf16>(st, y, w, k, m, x, n);
	if (x_type == LG_TYPE_F16 && type != LG_TYPE_BF16)
		LG_DISPATCH_TYPE(type, gemm_x_f16,
						 lg_gpu_set_error(LG_GPU_ERR_UNSUPPORTED, "matmul: no kernel for weight type %d", (int) type),
						 st, y, w, k, m, x, n);
	if (x_type != LG_TYPE_F32)
		return lg_gpu_set_error(LG_GPU_ERR_UNSUPPORTED, "matmul: no GEMM for activations of type %d with weights of type %d",
								(int) x_type, (int) type);
	LG_DISPATCH_TYPE(type, gemm_x_f32,
					 lg_gpu_set_error(LG_GPU_ERR_UNSUPPORTED, "matmul: no kernel for weight type %d", (int) type),
					 st, y, w, k, m, x, n);
}
