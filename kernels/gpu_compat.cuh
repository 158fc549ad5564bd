/*
 * gpu_compat.cuh — the one header that lets kernels/<op>.cu build with nvcc
 * (CUDA) or hipcc (HIP/ROCm).  Kernels are written in CUDA's spelling; under
 * HIP the names used below map to their hip* counterparts.  Nothing else in
 * kernels/ may include a CUDA or HIP header directly.
 *
 * Warps: kernels use logical warps of 32 lanes (LG_WARP) and shuffle with
 * width 32, which HIP honours on 64-wide wavefronts (gfx90a, gfx942) as on
 * 32-wide ones (gfx1100).
 */
#ifndef LG_GPU_COMPAT_CUH
#define LG_GPU_COMPAT_CUH

#if defined(__HIP_PLATFORM_AMD__) || defined(__HIP__) || defined(LG_HIP)
#define LG_HIP 1
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>

#define LG_GPU_PLATFORM "hip"
#define LG_GPU_HAS_BLAS 0		/* Debian 12 packages no hipBLAS: own GEMM kernels */

#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaErrorNoDevice hipErrorNoDevice
#define cudaErrorInsufficientDriver hipErrorInsufficientDriver
#define cudaGetLastError hipGetLastError
#define cudaPeekAtLastError hipPeekAtLastError
#define cudaGetErrorString hipGetErrorString
#define cudaGetErrorName hipGetErrorName
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceProp hipDeviceProp_t
#define cudaSetDevice hipSetDevice
#define cudaGetDevice hipGetDevice
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaDriverGetVersion hipDriverGetVersion
#define cudaRuntimeGetVersion hipRuntimeGetVersion
#define cudaMemGetInfo hipMemGetInfo
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost hipHostMalloc
#define cudaFreeHost hipHostFree
#define cudaMemcpy hipMemcpy
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyKind hipMemcpyKind
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaStream_t hipStream_t
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaEvent_t hipEvent_t
#define cudaEventCreate hipEventCreate
#define cudaEventDestroy hipEventDestroy
#define cudaEventRecord hipEventRecord
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventElapsedTime hipEventElapsedTime
#define cudaGraph_t hipGraph_t
#define cudaGraphExec_t hipGraphExec_t
#define cudaStreamBeginCapture hipStreamBeginCapture
#define cudaStreamEndCapture hipStreamEndCapture
#define cudaStreamCaptureModeRelaxed hipStreamCaptureModeRelaxed
#define cudaGraphInstantiate(e, g, f) hipGraphInstantiate((e), (g), NULL, NULL, 0)
#define cudaGraphLaunch hipGraphLaunch
#define cudaGraphDestroy hipGraphDestroy
#define cudaGraphExecDestroy hipGraphExecDestroy
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize

typedef __half lg_half;

/*
 * Update an executable graph in place from a new capture of the same
 * topology; an error (hipErrorGraphExecUpdateFailure) means re-instantiate.
 */
static inline hipError_t
lg_graph_exec_update(hipGraphExec_t exec, hipGraph_t graph)
{
	hipGraphNode_t err_node = NULL;
	hipGraphExecUpdateResult result;

	return hipGraphExecUpdate(exec, graph, &err_node, &result);
}

static __device__ __forceinline__ float
lg_shfl_xor(float v, int lane_mask)
{
	return __shfl_xor(v, lane_mask, 32);
}

static __device__ __forceinline__ int
lg_shfl_xor_int(int v, int lane_mask)
{
	return __shfl_xor(v, lane_mask, 32);
}

static __device__ __forceinline__ float
lg_shfl(float v, int src_lane)
{
	return __shfl(v, src_lane, 32);
}

#else							/* CUDA */

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>				/* wmma: the tensor-core attention */
#ifdef LG_WANT_BLAS				/* only blas.cu: cuBLAS's header is big */
#include <cublas_v2.h>
#endif

#define LG_GPU_PLATFORM "cuda"
#define LG_GPU_HAS_BLAS 1

typedef __half lg_half;

/*
 * Update an executable graph in place from a new capture of the same
 * topology (CUDA 12+ signature, with the result info struct); an error
 * (cudaErrorGraphExecUpdateFailure) means re-instantiate.
 */
static inline cudaError_t
lg_graph_exec_update(cudaGraphExec_t exec, cudaGraph_t graph)
{
	cudaGraphExecUpdateResultInfo info;

	return cudaGraphExecUpdate(exec, graph, &info);
}

static __device__ __forceinline__ float
lg_shfl_xor(float v, int lane_mask)
{
	return __shfl_xor_sync(0xffffffffu, v, lane_mask, 32);
}

static __device__ __forceinline__ int
lg_shfl_xor_int(int v, int lane_mask)
{
	return __shfl_xor_sync(0xffffffffu, v, lane_mask, 32);
}

static __device__ __forceinline__ float
lg_shfl(float v, int src_lane)
{
	return __shfl_sync(0xffffffffu, v, src_lane, 32);
}

#endif

#define LG_WARP 32

#endif							/* LG_GPU_COMPAT_CUH */
