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

void		__syncwarp(void);
void		lg_emu_wmma_check(const void *p, unsigned ldm, size_t esz);

/*
 * wmma as the matrix-level operations CUDA specifies: every lane holds the
 * whole 16x16 matrix (the real fragment layout is unspecified and unused),
 * each call is warp-collective (all lanes arrive before any memory effect,
 * and before any lane goes on), pointers must be 32-byte aligned and
 * strides multiples of 16 bytes.
 */
namespace nvcuda
{
namespace wmma
{
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment
{
	float		v[16][16];		/* [row][column] of the matrix */
};

template <typename L> struct lg_emu_is_row { static const bool value = false; };
template <> struct lg_emu_is_row<row_major> { static const bool value = true; };

template <typename Use, typename L>
static inline void
load_matrix_sync(fragment<Use, 16, 16, 16, __half, L> &f, const __half *p, unsigned ldm)
{
	lg_emu_wmma_check(p, ldm, sizeof(__half));
	__syncwarp();
	for (int r = 0; r < 16; r++)
		for (int c = 0; c < 16; c++)
			f.v[r][c] = __half2float(lg_emu_is_row<L>::value ? p[r * ldm + c] : p[c * ldm + r]);
	__syncwarp();
}

static inline void
load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm, layout_t l)
{
	lg_emu_wmma_check(p, ldm, sizeof(float));
	__syncwarp();
	for (int r = 0; r < 16; r++)
		for (int c = 0; c < 16; c++)
			f.v[r][c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
	__syncwarp();
}

static inline void
store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t l)
{
	lg_emu_wmma_check(p, ldm, sizeof(float));
	__syncwarp();
	if (threadIdx.x % 32 == 0)
		for (int r = 0; r < 16; r++)
			for (int c = 0; c < 16; c++)
				(l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.v[r][c];
	__syncwarp();
}

template <typename La, typename Lb>
static inline void
mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, __half, La> &a,
		 const fragment<matrix_b, 16, 16, 16, __half, Lb> &b, const fragment<accumulator, 16, 16, 16, float> &c)
{
	float		t[16][16];

	__syncwarp();
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
		{
			float		acc = c.v[i][j];

			for (int k = 0; k < 16; k++)
				acc += a.v[i][k] * b.v[k][j];
			t[i][j] = acc;
		}
	memcpy(d.v, t, sizeof(t));
}

template <typename F>
static inline void
fill_fragment(F &f, float x)
{
	for (int r = 0; r < 16; r++)
		for (int c = 0; c < 16; c++)
			f.v[r][c] = x;
}
}								/* namespace wmma */
}								/* namespace nvcuda */

#define LG_WARP 32

#endif							/* LG_GPU_COMPAT_CUH */
