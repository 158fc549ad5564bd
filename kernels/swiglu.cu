/*
 * swiglu.cu — g = silu(g) * u with silu(x) = x / (1 + exp(-x)), the CPU
 * scalar expression (scalar_swiglu in backend_cpu_scalar.c) operation for
 * operation: expf, then an IEEE division and a product.  The device expf
 * (<= 2 ulp) against glibc's, and the CPU's AVX2/AVX-512 path (ggml's
 * vector exp, ~1.5 ulp), leave the result within ~4 float ulps: max
 * relative error 1e-6 where |silu(g)*u| is not the difference of nearly
 * equal terms (it never is: one division, one product).
 */
#include "common.cuh"
#include "elem.cuh"

/* Grid-stride over the n values. */
__global__ void __launch_bounds__(LG_ELEM_THREADS)
lg_swiglu_kernel(float *g, const float *u, int64_t n)
{
	const int64_t stride = (int64_t) gridDim.x * blockDim.x;

	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
	{
		const float x = g[i];

		g[i] = x / (1.0f + expf(-x)) * u[i];
	}
}

/* Launch over n > 0 values on stream s. */
static void
lg_swiglu_launch(cudaStream_t s, float *g, const float *u, int64_t n)
{
	lg_swiglu_kernel<<<lg_elem_blocks(n, LG_ELEM_THREADS), LG_ELEM_THREADS, 0, s>>>(g, u, n);
}

extern "C" lg_gpu_status
lg_gpu_swiglu(lg_gpu_stream s, float *g, const float *u, int64_t n)
{
	if (n < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "swiglu: negative length %lld", (long long) n);
	if (n == 0)
		return LG_GPU_OK;
	if (g == NULL || u == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "swiglu: %s is NULL", g == NULL ? "g" : "u");
	lg_swiglu_launch((cudaStream_t) s, g, u, n);
	return lg_gpu_check_launch("swiglu");
}
