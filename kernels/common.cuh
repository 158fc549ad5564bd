/*
 * common.cuh — what every kernels/<op>.cu shares: the compatibility
 * header, GGUF's block layouts, half/bfloat16 conversions that do not
 * depend on the toolkit's types, warp and block reductions, and the error
 * plumbing of the entries.
 */
#ifndef LG_COMMON_CUH
#define LG_COMMON_CUH

#include "gpu_compat.cuh"

#include <stdint.h>
#include <stdio.h>

#include "lg_kernels.h"

/* Record a message for lg_gpu_last_error() (runtime.cu); returns st. */
lg_gpu_status lg_gpu_set_error(lg_gpu_status st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * After a launch: a launch error (bad configuration, a sticky fault from
 * earlier work) becomes LG_GPU_ERR_DEVICE naming the operation.
 */
static inline lg_gpu_status
lg_gpu_check_launch(const char *op)
{
	cudaError_t e = cudaGetLastError();

	if (e != cudaSuccess)
		return lg_gpu_set_error(LG_GPU_ERR_DEVICE, "%s: %s (%s)", op, cudaGetErrorString(e),
								cudaGetErrorName(e));
	return LG_GPU_OK;
}

/* A CUDA runtime call's result as a status, naming the call. */
static inline lg_gpu_status
lg_gpu_check(cudaError_t e, const char *what)
{
	if (e == cudaSuccess)
		return LG_GPU_OK;
	if (e == cudaErrorMemoryAllocation)
		return lg_gpu_set_error(LG_GPU_ERR_NOMEM, "%s: out of device memory", what);
	return lg_gpu_set_error(LG_GPU_ERR_DEVICE, "%s: %s (%s)", what, cudaGetErrorString(e),
							cudaGetErrorName(e));
}

/* IEEE half bits -> float, without the toolkit's __half type (works for both). */
static __device__ __forceinline__ float
lg_h2f(uint16_t h)
{
	return __half2float(__ushort_as_half(h));
}

static __device__ __forceinline__ uint16_t
lg_f2h(float f)
{
	return __half_as_ushort(__float2half_rn(f));
}

/* bfloat16 bits -> float: the high half of a float32. */
static __device__ __forceinline__ float
lg_bf2f(uint16_t h)
{
	return __uint_as_float((uint32_t) h << 16);
}

/* float -> bfloat16 bits, round to nearest even (NaN kept quiet), as lg_f32_to_bf16. */
static __device__ __forceinline__ uint16_t
lg_f2bf(float f)
{
	uint32_t	u = __float_as_uint(f);

	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((u >> 16) | 64);
	return (uint16_t) ((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* Sum over a logical warp of 32 lanes. */
static __device__ __forceinline__ float
lg_warp_sum(float v)
{
#pragma unroll
	for (int o = LG_WARP / 2; o > 0; o >>= 1)
		v += lg_shfl_xor(v, o);
	return v;
}

static __device__ __forceinline__ float
lg_warp_max(float v)
{
#pragma unroll
	for (int o = LG_WARP / 2; o > 0; o >>= 1)
		v = fmaxf(v, lg_shfl_xor(v, o));
	return v;
}

/*
 * Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result.  shared: 32 floats.
 */
static __device__ __forceinline__ float
lg_block_sum(float v, float *shared)
{
	int			lane = threadIdx.x % LG_WARP;
	int			warp = threadIdx.x / LG_WARP;
	int			n_warps = blockDim.x / LG_WARP;

	v = lg_warp_sum(v);
	__syncthreads();			/* shared may still be read by a previous call */
	if (lane == 0)
		shared[warp] = v;
	__syncthreads();
	v = lane < n_warps ? shared[lane] : 0.0f;
	return lg_warp_sum(v);
}

static __device__ __forceinline__ float
lg_block_max(float v, float *shared)
{
	int			lane = threadIdx.x % LG_WARP;
	int			warp = threadIdx.x / LG_WARP;
	int			n_warps = blockDim.x / LG_WARP;

	v = lg_warp_max(v);
	__syncthreads();
	if (lane == 0)
		shared[warp] = v;
	__syncthreads();
	v = lane < n_warps ? shared[lane] : -INFINITY;
	return lg_warp_max(v);
}

static inline int64_t
lg_ceil_div(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

#endif							/* LG_COMMON_CUH */
