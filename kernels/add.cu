/*
 * add.cu — the residual addition y += x and the bias addition y[r] += b,
 * exact (one float addition per value, as lg_cpu_add / lg_cpu_add_bias).
 */
#include "common.cuh"
#include "elem.cuh"

/* y[i] += x[i], grid-stride. */
__global__ void __launch_bounds__(LG_ELEM_THREADS)
lg_add_kernel(float *y, const float *x, int64_t n)
{
	const int64_t stride = (int64_t) gridDim.x * blockDim.x;

	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		y[i] += x[i];
}

/* y[r*d + c] += b[c] over the n*d values, grid-stride. */
__global__ void __launch_bounds__(LG_ELEM_THREADS)
lg_add_bias_kernel(float *y, const float *b, int64_t nd, int64_t d)
{
	const int64_t stride = (int64_t) gridDim.x * blockDim.x;

	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < nd; i += stride)
		y[i] += b[i % d];
}

/* Launchers on stream s; the counts are > 0. */
static void
lg_add_launch(cudaStream_t s, float *y, const float *x, int64_t n)
{
	lg_add_kernel<<<lg_elem_blocks(n, LG_ELEM_THREADS), LG_ELEM_THREADS, 0, s>>>(y, x, n);
}

static void
lg_add_bias_launch(cudaStream_t s, float *y, const float *b, int64_t nd, int64_t d)
{
	lg_add_bias_kernel<<<lg_elem_blocks(nd, LG_ELEM_THREADS), LG_ELEM_THREADS, 0, s>>>(y, b, nd, d);
}

extern "C" lg_gpu_status
lg_gpu_add(lg_gpu_stream s, float *y, const float *x, int64_t n)
{
	if (n < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "add: negative length %lld", (long long) n);
	if (n == 0)
		return LG_GPU_OK;
	if (y == NULL || x == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "add: %s is NULL", y == NULL ? "y" : "x");
	lg_add_launch((cudaStream_t) s, y, x, n);
	return lg_gpu_check_launch("add");
}

extern "C" lg_gpu_status
lg_gpu_add_bias(lg_gpu_stream s, float *y, const float *b, int64_t n, int64_t d)
{
	if (n < 0 || d < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "add_bias: negative shape (n %lld, d %lld)",
								(long long) n, (long long) d);
	if (n == 0 || d == 0)
		return LG_GPU_OK;
	if (y == NULL || b == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "add_bias: %s is NULL", y == NULL ? "y" : "b");
	if (d > INT64_MAX / n)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "add_bias: %lld rows of %lld values overflow",
								(long long) n, (long long) d);
	lg_add_bias_launch((cudaStream_t) s, y, b, n * d, d);
	return lg_gpu_check_launch("add_bias");
}
