/*
 * rmsnorm.cu — y = x / sqrt(mean(x²) + eps) * w, one block per row, written
 * as float32 or (for the input of a half-precision GEMM) F16 / BF16.
 *
 * The CPU (lg_cpu_rmsnorm, after ggml) sums the float squares x*x in
 * double and rounds the mean to float; so do we, each thread over a strided
 * share of the row and then a fixed-order block reduction.  The double sum
 * of at most a few thousand float squares is exact or within one double
 * ulp in any order, so the float mean, the scale 1/sqrtf(mean + eps) (IEEE
 * sqrt and division) and y = (x*scale)*w (two roundings, as the CPU) match
 * the CPU bit for bit except when that last double ulp crosses a float
 * rounding boundary.  A float accumulation would instead differ by ~1e-7
 * relative at every row; double costs d/256 adds per thread, nothing next
 * to the memory traffic, even where FP64 is slow.
 *
 * y may equal x for the float output; a half output must not overlap x
 * (its rows are narrower, so a thread would overwrite another's input).
 */
#include "common.cuh"
#include "elem.cuh"

#define LG_RMSNORM_THREADS 256

/* How each output type is stored. */
struct lg_store_f32
{
	__device__ __forceinline__ void operator() (void *y, int64_t i, float v) const
	{
		((float *) y)[i] = v;
	}
};

struct lg_store_f16
{
	__device__ __forceinline__ void operator() (void *y, int64_t i, float v) const
	{
		((uint16_t *) y)[i] = lg_f2h_cpu(v);
	}
};

struct lg_store_bf16
{
	__device__ __forceinline__ void operator() (void *y, int64_t i, float v) const
	{
		((uint16_t *) y)[i] = lg_f2bf(v);
	}
};

/*
 * Rows blockIdx.x, blockIdx.x + gridDim.x, ...; y may equal x (each thread
 * rereads and writes only its own elements, after the reduction's barrier).
 */
template <typename Store>
__global__ void __launch_bounds__(LG_RMSNORM_THREADS)
lg_rmsnorm_kernel(void *y, const float *x, const float *w, int64_t n, int64_t d, float eps)
{
	__shared__ double buf[32];
	Store		store;

	for (int64_t r = blockIdx.x; r < n; r += gridDim.x)
	{
		const float *xr = x + r * d;
		double		s = 0.0;
		float		mean;
		float		scale;

		for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
			s += (double) (xr[i] * xr[i]);	/* the float square, as the CPU */
		s = lg_block_reduce(s, lg_op_sum(), buf);
		mean = (float) (s / (double) d);
		scale = 1.0f / sqrtf(mean + eps);
		if (w != NULL)
			for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
				store(y, r * d + i, xr[i] * scale * w[i]);
		else
			for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
				store(y, r * d + i, xr[i] * scale);
	}
}

/* Launch over n rows on stream s (n > 0, d > 0). */
template <typename Store>
static void
lg_rmsnorm_launch(cudaStream_t s, void *y, const float *x, const float *w, int64_t n, int64_t d,
				  float eps)
{
	unsigned int blocks = (unsigned int) (n > LG_ELEM_MAX_BLOCKS ? LG_ELEM_MAX_BLOCKS : n);

	lg_rmsnorm_kernel<Store><<<blocks, LG_RMSNORM_THREADS, 0, s>>>(y, x, w, n, d, eps);
}

/* The checks both entries share; LG_GPU_OK when the call may go ahead. */
static lg_gpu_status
lg_rmsnorm_check(const char *op, const void *y, const float *x, int64_t n, int64_t d)
{
	if (n < 0 || d < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: negative shape (n %lld, d %lld)", op,
								(long long) n, (long long) d);
	if (n > 0 && d == 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: rows of 0 values have no mean", op);
	if (n > 0 && (y == NULL || x == NULL))
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: %s is NULL", op, y == NULL ? "y" : "x");
	if (n > 0 && d > INT64_MAX / n)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: %lld rows of %lld values overflow", op,
								(long long) n, (long long) d);
	return LG_GPU_OK;
}

extern "C" lg_gpu_status
lg_gpu_rmsnorm(lg_gpu_stream s, float *y, const float *x, const float *w,
			   int64_t n, int64_t d, float eps)
{
	lg_gpu_status st = lg_rmsnorm_check("rmsnorm", y, x, n, d);

	if (st != LG_GPU_OK || n == 0)
		return st;
	lg_rmsnorm_launch<lg_store_f32>((cudaStream_t) s, y, x, w, n, d, eps);
	return lg_gpu_check_launch("rmsnorm");
}

extern "C" lg_gpu_status
lg_gpu_rmsnorm_half(lg_gpu_stream s, void *y_half, lg_type half_type,
					const float *x, const float *w, int64_t n, int64_t d, float eps)
{
	lg_gpu_status st;

	if (half_type != LG_TYPE_F16 && half_type != LG_TYPE_BF16)
		return lg_gpu_set_error(LG_GPU_ERR_ARG,
								"rmsnorm_half: output type %d is neither F16 nor BF16",
								(int) half_type);
	st = lg_rmsnorm_check("rmsnorm_half", y_half, x, n, d);
	if (st != LG_GPU_OK || n == 0)
		return st;
	if (half_type == LG_TYPE_F16)
		lg_rmsnorm_launch<lg_store_f16>((cudaStream_t) s, y_half, x, w, n, d, eps);
	else
		lg_rmsnorm_launch<lg_store_bf16>((cudaStream_t) s, y_half, x, w, n, d, eps);
	return lg_gpu_check_launch("rmsnorm_half");
}
