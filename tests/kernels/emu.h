/*
 * emu.h — just enough of CUDA to run the kernels/ sources on the host, for checks
 * on a machine without a GPU (tests/kernels/run_quants_host.sh).
 *
 * Every GPU thread is a std::thread: a launch runs its blocks one after
 * the other, each with blockDim threads; __syncthreads is a barrier of the
 * block, a warp shuffle an exchange through memory between two barriers of
 * the warp's 32 threads; __shared__ arrays are statics, safe because one
 * block runs at a time.  "Device" pointers are host pointers.  The sources
 * are used unchanged except that the script rewrites k<<<g, b, s, st>>>(a)
 * into lg_emu_launch(g, b, s, st, k, a).  Slow (a thread per GPU thread):
 * small shapes only.
 */
#ifndef LG_EMU_H
#define LG_EMU_H

#include <barrier>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

extern "C"
{
#include "lg_types.h"
}
#include "lg_kernels.h"

/* skip the real headers: common.cuh and gpu_compat.cuh */
#define LG_COMMON_CUH 1
#define LG_GPU_COMPAT_CUH 1
#define LG_GPU_PLATFORM "emu"
#define LG_GPU_HAS_BLAS 0
#define LG_WARP 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;

struct dim3
{
	unsigned	x, y, z;
	dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct uint4 { uint32_t x, y, z, w; };
static inline float2 make_float2(float a, float b) { float2 r = {a, b}; return r; }
template <class P> static inline P __ldg(const P *p) { return *p; }
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
/* compiled with -ffp-contract=off: each rounds by itself as on the device */
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
/* PRMT: result byte n is byte (selector nibble n & 7) of the 8 bytes y:x */
static inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s)
{
	uint64_t	v = ((uint64_t) y << 32) | x;
	uint32_t	r = 0;

	for (int n = 0; n < 4; n++)
		r |= (uint32_t) ((v >> (8 * ((s >> (4 * n)) & 7))) & 0xff) << (8 * n);
	return r;
}
static inline int min(int a, int b) { return a < b ? a : b; }

/* ---- the thread model ---- */
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
extern std::barrier<> *lg_emu_block_bar;
extern std::vector<std::unique_ptr<std::barrier<>>> lg_emu_warp_bar;
extern std::vector<float> lg_emu_xch;

static inline void __syncthreads(void) { lg_emu_block_bar->arrive_and_wait(); }

/* Lane threadIdx.x reads the value of lane threadIdx.x ^ mask of its warp. */
static inline float lg_shfl_xor(float v, int mask)
{
	unsigned	t = threadIdx.x;
	std::barrier<> &bar = *lg_emu_warp_bar[t / LG_WARP];
	float		r;

	lg_emu_xch[t] = v;
	bar.arrive_and_wait();
	r = lg_emu_xch[t ^ (unsigned) mask];
	bar.arrive_and_wait();
	return r;
}

/* Run kernel k on grid g of blocks b, one block at a time. */
template <class... P, class... A>
static void lg_emu_launch(dim3 g, dim3 b, size_t shmem, cudaStream_t st, void (*k)(P...), A... a)
{
	(void) shmem, (void) st;
	gridDim = g;
	blockDim = b;
	for (unsigned by = 0; by < g.y; by++)
		for (unsigned bx = 0; bx < g.x; bx++)
		{
			unsigned	n = b.x;	/* our kernels are 1-D blocks */
			std::barrier<> bar((std::ptrdiff_t) n);
			std::vector<std::thread> th;

			lg_emu_block_bar = &bar;
			lg_emu_warp_bar.clear();
			for (unsigned w = 0; w < (n + LG_WARP - 1) / LG_WARP; w++)
				lg_emu_warp_bar.emplace_back(new std::barrier<>(LG_WARP));
			lg_emu_xch.assign(n, 0.0f);
			for (unsigned t = 0; t < n; t++)
				th.emplace_back([=]() {
					threadIdx = dim3(t);
					blockIdx = dim3(bx, by);
					k(a...);
				});
			for (auto &x : th)
				x.join();
		}
}

/* ---- what common.cuh gives the kernels ---- */
lg_gpu_status lg_gpu_set_error(lg_gpu_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline lg_gpu_status lg_gpu_check_launch(const char *op) { (void) op; return LG_GPU_OK; }
static inline float lg_h2f(uint16_t h) { return lg_f16_to_f32(h); }
static inline uint16_t lg_f2h(float f) { return lg_f32_to_f16(f); }
static inline float lg_bf2f(uint16_t h) { return lg_bf16_to_f32(h); }
static inline uint16_t lg_f2bf(float f) { return lg_f32_to_bf16(f); }
static inline float lg_warp_sum(float v)
{
	for (int o = LG_WARP / 2; o > 0; o >>= 1)
		v += lg_shfl_xor(v, o);
	return v;
}
static inline int64_t lg_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

#endif
