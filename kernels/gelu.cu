/*
 * gelu.cu — x = gelu(x), the tanh approximation ggml_gelu computes,
 * written as the CPU's scalar kernel writes it (scalar_gelu in
 * backend_cpu_scalar.c): x / (1 + exp(-2z)), 2z = 2·sqrt(2/pi)·(x +
 * 0.044715·x³), which is x · (1 + tanh z) / 2.  The products and sums are
 * rounded one by one (lg_fmul/lg_fadd, no FMA), so the only difference
 * from the scalar CPU is the device expf (<= 2 ulp) against glibc's; the
 * CPU's AVX2/AVX-512 path (an FMA and ggml's vector exp) is itself a few
 * ulps from the scalar one.  A large negative x gives exp(+inf) = inf and
 * x / inf = -0, as the scalar CPU.
 */
#include "common.cuh"
#include "elem.cuh"

/* Grid-stride over the n values. */
__global__ void __launch_bounds__(LG_ELEM_THREADS)
lg_gelu_kernel(float *x, int64_t n)
{
	LG_NO_CONTRACT
	const int64_t stride = (int64_t) gridDim.x * blockDim.x;

	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
	{
		const float v = x[i];
		/* 1.5957691216057308f * (v + 0.044715f * v * v * v), left to right */
		const float z2 = lg_fmul(1.5957691216057308f,
								 lg_fadd(v, lg_fmul(lg_fmul(lg_fmul(0.044715f, v), v), v)));

		x[i] = v / lg_fadd(1.0f, expf(-z2));
	}
}

extern "C" lg_gpu_status
lg_gpu_gelu(lg_gpu_stream s, float *x, int64_t n)
{
	if (n < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "gelu: negative length %lld", (long long) n);
	if (n == 0)
		return LG_GPU_OK;
	if (x == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "gelu: x is NULL");
	lg_gelu_kernel<<<lg_elem_blocks(n, LG_ELEM_THREADS), LG_ELEM_THREADS, 0, (cudaStream_t) s>>>(x, n);
	return lg_gpu_check_launch("gelu");
}
