/*
 * gpu_compat.cuh (emulator) — stands in for kernels/gpu_compat.cuh when
 * tests/gpu_emu builds kernel sources as plain C++ for the host: a block's
 * threads run as fibers on one host thread (emu.cc), __syncthreads and the
 * logical-warp shuffles are barriers among them, __shared__ arrays are
 * statics (blocks run one after another).  It also declares the runtime API
 * subset runtime.cu/graph.cu use (emu_runtime.cc: streams run their work at
 * once, captures record it) and, for blas.cu, cuBLAS's GemmEx (emu_blas.cc).
 * Only what kernels/ uses is here; it checks launch shapes and shared-memory
 * sizes as CUDA does.
 */
#ifndef LG_GPU_COMPAT_CUH
#define LG_GPU_COMPAT_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LG_GPU_PLATFORM "cuda"	/* the emulated build stands in for the CUDA one: --device cuda:0 */
#define LG_GPU_HAS_BLAS 1		/* tests/gpu_emu/emu_blas.cc: cuBLAS's GemmEx on the host */
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

/* ---- the runtime API subset runtime.cu, graph.cu and blas.cu use (emu.cc) ---- */
typedef enum cudaError
{
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInvalidConfiguration = 9,
	cudaErrorInvalidDevice = 101,
	cudaErrorInsufficientDriver = 35,
	cudaErrorNoDevice = 100,
	cudaErrorNotReady = 600,
	cudaErrorStreamCaptureUnsupported = 900,
	cudaErrorStreamCaptureInvalidated = 901,
	cudaErrorStreamCaptureWrongThread = 908,
	cudaErrorGraphExecUpdateFailure = 910,
	cudaErrorIllegalAddress = 700
} cudaError_t;
typedef struct lg_emu_stream *cudaStream_t;
typedef struct lg_emu_event *cudaEvent_t;
typedef struct lg_emu_graph *cudaGraph_t;
typedef struct lg_emu_graph_exec *cudaGraphExec_t;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind
{
	cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
	cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4
};
enum cudaStreamCaptureMode
{
	cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2
};
#define cudaStreamDefault 0u
#define cudaStreamNonBlocking 1u

struct cudaDeviceProp
{
	char		name[256];
	size_t		totalGlobalMem;
	int			major,
				minor,
				multiProcessorCount;
	size_t		sharedMemPerBlockOptin;
};
struct cudaGraphExecUpdateResultInfo
{
	int			result;
	void	   *errorNode,
			   *errorFromNode;
};

cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t e, cudaGraph_t g, cudaGraphExecUpdateResultInfo *info);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
void		__syncthreads(void);

/* As the CUDA build's gpu_compat.cuh (CUDA 12+ signature). */
static inline cudaError_t
lg_graph_exec_update(cudaGraphExec_t exec, cudaGraph_t graph)
{
	cudaGraphExecUpdateResultInfo info;

	return cudaGraphExecUpdate(exec, graph, &info);
}

#ifdef LG_WANT_BLAS
/* ---- cuBLAS: what blas.cu calls (emu_blas.cc) ---- */
typedef struct lg_emu_blas *cublasHandle_t;
typedef enum
{
	CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_ALLOC_FAILED = 3,
	CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_EXECUTION_FAILED = 13, CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_16F = 64, CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
							const void *alpha, const void *a, cudaDataType_t at, int lda,
							const void *b, cudaDataType_t bt, int ldb, const void *beta,
							void *c, cudaDataType_t ct, int ldc, cublasComputeType_t compute,
							cublasGemmAlgo_t algo);
#endif

struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
static inline float2 make_float2(float a, float b) { float2 r = {a, b}; return r; }
template <class P> static inline P __ldg(const P *p) { return *p; }

struct __half { uint16_t x; };

static inline __half __ushort_as_half(uint16_t u) { __half h; h.x = u; return h; }
static inline uint16_t __half_as_ushort(__half h) { return h.x; }
static inline float __half2float(__half h) { _Float16 f; memcpy(&f, &h.x, 2); return (float) f; }
static inline __half __float2half_rn(float x) { _Float16 f = (_Float16) x; __half h; memcpy(&h.x, &f, 2); return h; }
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline long long __double_as_longlong(double d) { long long u; memcpy(&u, &d, 8); return u; }
static inline double __longlong_as_double(long long u) { double d; memcpy(&d, &u, 8); return d; }
/* built with -ffp-contract=off: each rounds by itself as on the device */
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
/* PRMT: result byte n is byte (selector nibble n & 7) of the 8 bytes y:x */
static inline uint32_t
__byte_perm(uint32_t x, uint32_t y, uint32_t s)
{
	uint64_t	v = ((uint64_t) y << 32) | x;
	uint32_t	r = 0;

	for (int n = 0; n < 4; n++)
		r |= (uint32_t) ((v >> (8 * ((s >> (4 * n)) & 7))) & 0xff) << (8 * n);
	return r;
}
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
/* fibers of a block never run at the same time: a plain add is atomic */
static inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }

typedef __half lg_half;

float		lg_shfl_xor(float v, int lane_mask);
int			lg_shfl_xor_int(int v, int lane_mask);
float		lg_shfl(float v, int src_lane);

/* The launch a rewritten kernel<<<g, b, smem, st>>>(args) becomes. */
extern void *lg_emu_dyn_smem;
extern unsigned lg_emu_grid_cap;	/* emu.cc: 0, or the blocks along x that run */
#include <functional>
#include <tuple>
/*
 * Run (or, while st is being captured, record) a launch: run is called once
 * per thread with threadIdx/blockIdx set.  The closure holds the arguments
 * by value, as a captured kernel node does.
 */
void		lg_emu_launch_fn(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t st,
							 std::function<void()> run);

/* A kernel call with its arguments evaluated now, held by value in the parameters' types. */
template <typename... P, typename... A>
static std::function<void()>
lg_emu_bind(void (*k) (P...), A &&...a)
{
	std::tuple<typename std::decay<P>::type...> t(std::forward<A>(a)...);

	return [k, t]() { std::apply(k, t); };
}

template <typename F>
static void
lg_emu_launch(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t st, F f)
{
	lg_emu_launch_fn(func, grid, block, smem, st, std::function<void()>(f));
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
