/*
 * gpu_compat.cuh (emulator) — stands in for kernels/gpu_compat.cuh when
 * tests/gpu_emu builds kernel sources as plain C++ for the host: a block's
 * threads run as fibers on one host thread (emu.cc), __syncthreads and the
 * logical-warp shuffles are barriers among them, __shared__ arrays are
 * statics (blocks run one after another).  Only what the emulated kernels
 * use is here; it checks launch shapes and shared-memory sizes as CUDA does.
 */
#ifndef LG_GPU_COMPAT_CUH
#define LG_GPU_COMPAT_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LG_GPU_PLATFORM "emu"
#define LG_GPU_HAS_BLAS 0
#define LG_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3
{
	unsigned	x, y, z;
	dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

extern dim3 threadIdx, blockIdx, blockDim, gridDim;

typedef int cudaError_t;
#define cudaSuccess 0
#define cudaErrorMemoryAllocation 2
#define cudaErrorInvalidConfiguration 9
#define cudaErrorInvalidValue 1
typedef struct lg_emu_stream *cudaStream_t;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value);
void		__syncthreads(void);

struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };

struct __half { uint16_t x; };

static inline __half __ushort_as_half(uint16_t u) { __half h; h.x = u; return h; }
static inline uint16_t __half_as_ushort(__half h) { return h.x; }
static inline float __half2float(__half h) { _Float16 f; memcpy(&f, &h.x, 2); return (float) f; }
static inline __half __float2half_rn(float x) { _Float16 f = (_Float16) x; __half h; memcpy(&h.x, &f, 2); return h; }
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

typedef __half lg_half;

float		lg_shfl_xor(float v, int lane_mask);
int			lg_shfl_xor_int(int v, int lane_mask);
float		lg_shfl(float v, int src_lane);

/* The launch a rewritten kernel<<<g, b, smem, st>>>(args) becomes. */
extern void *lg_emu_dyn_smem;
void		lg_emu_launch_fn(const void *func, dim3 grid, dim3 block, size_t smem, void (*run)(void *), void *arg);

template <typename F>
static void
lg_emu_trampoline(void *f)
{
	(*(F *) f)();
}

template <typename F>
static void
lg_emu_launch(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t, F f)
{
	lg_emu_launch_fn(func, grid, block, smem, lg_emu_trampoline<F>, &f);
}

#define LG_WARP 32

#endif							/* LG_GPU_COMPAT_CUH */
