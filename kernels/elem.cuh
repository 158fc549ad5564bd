/*
 * elem.cuh — what the small operations (rmsnorm, rope, swiglu, add,
 * kv_store, sample) share beyond common.cuh: deterministic block
 * reductions of any type (double included, for sums the CPU makes in
 * double), an f16 rounding identical to lg_f32_to_f16 down to the NaN
 * pattern, and the sizing of grid-stride launches.
 *
 * Include after common.cuh.
 */
#ifndef LG_ELEM_CUH
#define LG_ELEM_CUH

#include "common.cuh"

/* Threads of the elementwise kernels. */
#define LG_ELEM_THREADS 256
/* Cap on the blocks of a grid-stride launch: legal for CUDA and for HIP. */
#define LG_ELEM_MAX_BLOCKS 65535

/* Blocks for a grid-stride loop over n items (n > 0), never zero. */
static inline unsigned int
lg_elem_blocks(int64_t n, int threads)
{
	int64_t		b = lg_ceil_div(n, threads);

	if (b < 1)
		b = 1;
	return (unsigned int) (b > LG_ELEM_MAX_BLOCKS ? LG_ELEM_MAX_BLOCKS : b);
}

/*
 * Float products and sums that are never fused into an FMA, where the CPU
 * reference (built without FMA) rounds each operation.  nvcc fuses plain
 * operators by default but never its __f*_rn intrinsics; HIP's intrinsics
 * are plain operators that clang would fuse, so under HIP the function
 * using these starts with LG_NO_CONTRACT (#pragma clang fp contract(off)).
 */
#ifdef LG_HIP
#define LG_NO_CONTRACT _Pragma("clang fp contract(off)")
#define lg_fmul(a, b) ((a) * (b))
#define lg_fadd(a, b) ((a) + (b))
#define lg_fsub(a, b) ((a) - (b))
#else
#define LG_NO_CONTRACT
#define lg_fmul(a, b) __fmul_rn((a), (b))
#define lg_fadd(a, b) __fadd_rn((a), (b))
#define lg_fsub(a, b) __fsub_rn((a), (b))
#endif

/* Shuffles of 64-bit values as two 32-bit ones: gpu_compat.cuh maps only int and float. */
static __device__ __forceinline__ uint64_t
lg_shfl_xor_u64(uint64_t v, int lane_mask)
{
	int			lo = lg_shfl_xor_int((int) (uint32_t) v, lane_mask);
	int			hi = lg_shfl_xor_int((int) (uint32_t) (v >> 32), lane_mask);

	return ((uint64_t) (uint32_t) hi << 32) | (uint32_t) lo;
}

static __device__ __forceinline__ double
lg_shfl_xor_any(double v, int lane_mask)
{
	return __longlong_as_double((long long) lg_shfl_xor_u64((uint64_t) __double_as_longlong(v), lane_mask));
}

static __device__ __forceinline__ uint64_t
lg_shfl_xor_any(uint64_t v, int lane_mask)
{
	return lg_shfl_xor_u64(v, lane_mask);
}

static __device__ __forceinline__ float
lg_shfl_xor_any(float v, int lane_mask)
{
	return lg_shfl_xor(v, lane_mask);
}

static __device__ __forceinline__ int
lg_shfl_xor_any(int v, int lane_mask)
{
	return lg_shfl_xor_int(v, lane_mask);
}

/* The operators of the reductions below. */
struct lg_op_sum
{
	template <typename T> __device__ __forceinline__ T operator() (T a, T b) const
	{
		return a + b;
	}
};

struct lg_op_max
{
	template <typename T> __device__ __forceinline__ T operator() (T a, T b) const
	{
		return a > b ? a : b;
	}
};

struct lg_op_min
{
	template <typename T> __device__ __forceinline__ T operator() (T a, T b) const
	{
		return a < b ? a : b;
	}
};

/*
 * Reduce v over the block (blockDim.x a multiple of 32, at most 1024);
 * every thread gets the same result.  The order is fixed (a butterfly in
 * each 32-lane warp, then the warps' results left to right), so a sum in
 * floating point is the same on every run.  buf: 32 T in shared memory.
 */
template <typename T, typename Op>
static __device__ __forceinline__ T
lg_block_reduce(T v, Op op, T *buf)
{
	int			lane = threadIdx.x % LG_WARP;
	int			warp = threadIdx.x / LG_WARP;
	int			n_warps = blockDim.x / LG_WARP;
	T			r;

#pragma unroll
	for (int o = LG_WARP / 2; o > 0; o >>= 1)
		v = op(v, lg_shfl_xor_any(v, o));
	__syncthreads();			/* buf may still be read by a previous call */
	if (lane == 0)
		buf[warp] = v;
	__syncthreads();
	r = buf[0];
	for (int w = 1; w < n_warps; w++)
		r = op(r, buf[w]);
	return r;
}

/*
 * float -> IEEE half bits exactly as lg_f32_to_f16: round to nearest even,
 * overflow to infinity, and every NaN to sign | 0x7e00 (the toolkit's
 * conversion would give 0x7fff).
 */
static __device__ __forceinline__ uint16_t
lg_f2h_cpu(float f)
{
	uint32_t	u = __float_as_uint(f);

	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) (((u >> 16) & 0x8000u) | 0x7e00u);
	return lg_f2h(f);
}

#endif							/* LG_ELEM_CUH */
