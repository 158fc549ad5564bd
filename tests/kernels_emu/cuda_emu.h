/*
 * cuda_emu.h — just enough of CUDA to run the kernels/<op>.cu files on the CPU, so that
 * their index math, barriers and reductions are checked against the CPU
 * backend where no GPU exists.  It stands in for gpu_compat.cuh (whose
 * include guard it defines): a block's threads are fibers on one OS thread
 * that run round-robin from one __syncthreads to the next, which is exactly
 * the barrier semantics; shuffles are a write, a barrier, a read and a
 * barrier; shared memory is static storage (blocks run one after another);
 * atomics are plain operations.  rewrite.py turns <<<...>>> launches into
 * lg_emu_launch calls.  Math is the host's libm, so what this checks is the
 * logic, not the device's expf.
 */
#ifndef LG_CUDA_EMU_H
#define LG_CUDA_EMU_H

#define LG_GPU_COMPAT_CUH 1		/* gpu_compat.cuh: replaced by this file */

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <tuple>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

#define LG_GPU_PLATFORM "emu"
#define LG_GPU_HAS_BLAS 0
#define LG_WARP 32

typedef struct lg_emu_dim3
{
	unsigned int x, y, z;
} lg_emu_dim3;

extern lg_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
extern char lg_emu_dyn_shmem[];	/* extern __shared__ arrays (rewrite.py) */

typedef int cudaError_t;
#define cudaSuccess 0
typedef struct lg_emu_stream *cudaStream_t;
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline const char *cudaGetErrorString(cudaError_t) { return "emulated"; }
static inline const char *cudaGetErrorName(cudaError_t) { return "emulated"; }
#define cudaErrorMemoryAllocation 2

/* A barrier of the current block. */
void		__syncthreads(void);
/* One exchange slot per thread of the block, for the shuffles. */
extern uint64_t lg_emu_xbuf[1024];

static inline uint64_t
lg_emu_exchange(uint64_t v, int lane_mask)
{
	unsigned int t = threadIdx.x;
	unsigned int src = (t & ~31u) | ((t & 31u) ^ (unsigned int) lane_mask);
	uint64_t	r;

	lg_emu_xbuf[t] = v;
	__syncthreads();
	r = lg_emu_xbuf[src];
	__syncthreads();
	return r;
}

static inline float
lg_shfl_xor(float v, int m)
{
	uint32_t	u;
	float		r;

	memcpy(&u, &v, 4);
	u = (uint32_t) lg_emu_exchange(u, m);
	memcpy(&r, &u, 4);
	return r;
}

static inline int
lg_shfl_xor_int(int v, int m)
{
	return (int) (uint32_t) lg_emu_exchange((uint32_t) v, m);
}

static inline uint32_t
__float_as_uint(float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	return u;
}

static inline float
__uint_as_float(uint32_t u)
{
	float		f;

	memcpy(&f, &u, 4);
	return f;
}

static inline long long
__double_as_longlong(double d)
{
	long long	u;

	memcpy(&u, &d, 8);
	return u;
}

static inline double
__longlong_as_double(long long u)
{
	double		d;

	memcpy(&d, &u, 8);
	return d;
}

static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }

/* IEEE half through the compiler's _Float16 (round to nearest even). */
typedef struct
{
	uint16_t	x;
} __half;
typedef __half lg_half;

static inline __half
__ushort_as_half(unsigned short u)
{
	__half		h = {u};

	return h;
}

static inline unsigned short
__half_as_ushort(__half h)
{
	return h.x;
}

static inline __half
__float2half_rn(float f)
{
	_Float16	v = (_Float16) f;
	__half		h;

	memcpy(&h.x, &v, 2);
	return h;
}

static inline float
__half2float(__half h)
{
	_Float16	v;

	memcpy(&v, &h.x, 2);
	return (float) v;
}

static inline int
atomicAdd(int *p, int v)
{
	int			o = *p;

	*p = o + v;
	return o;
}

/* Run fn once per thread of every block, blocks one after another. */
void		lg_emu_run(unsigned int grid, unsigned int block, void (*fn) (void *), void *arg);

template <typename... P>
struct lg_emu_call
{
	void		(*k) (P...);
	void	   *args;
};

/*
 * <<<grid, block, shmem, stream>>>: at most LG_EMU_MAX_GRID blocks run (the
 * kernels are grid-stride loops, so fewer blocks still cover everything,
 * and the strides get exercised).
 */
#define LG_EMU_MAX_GRID 3

template <typename... P, typename... A>
void
lg_emu_launch(void (*k) (P...), unsigned int grid, unsigned int block, size_t shmem, cudaStream_t,
			  A... a)
{
	struct pack
	{
		void		(*k) (P...);
		std::tuple<P...> args;
	}			pk = {k, std::tuple<P...>(a...)};

	(void) shmem;
	lg_emu_run(grid < LG_EMU_MAX_GRID ? grid : LG_EMU_MAX_GRID, block,
			   [](void *v) {
				   pack	   *p = (pack *) v;

				   std::apply(p->k, p->args);
			   }, &pk);
}

#endif							/* LG_CUDA_EMU_H */
