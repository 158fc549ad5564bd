/*
 * blas.cu — large products through cuBLAS (CUDA builds): F16/BF16 weights
 * directly, quantized weights dequantized to F16 in scratch a chunk of
 * rows at a time, F32 weights in FP32; activations converted once to the
 * weights' half type in scratch; accumulation always FP32
 * (CUBLAS_COMPUTE_32F), output float32.
 *
 * The handle is bound to the caller's stream with a workspace we own
 * (cublasSetWorkspace), so a GEMM never allocates and can be captured in a
 * CUDA graph.  Under HIP (Debian 12 packages no hipBLAS) the handle is NULL
 * and lg_gpu_matmul uses the own GEMM (gemm.cu).
 *
 * Layout.  cuBLAS is column-major; our matrices are row-major.  A
 * row-major r×c matrix M is the column-major c×r matrix Mᵀ with leading
 * dimension c.  So x[n][k] is column-major X' = xᵀ (k×n, ld k), w[m][k] is
 * W' = wᵀ (k×m, ld k), y[n][m] is Y' = yᵀ (m×n, ld m).  We want
 * y = x·wᵀ, i.e. yᵀ = w·xᵀ, i.e. Y' = W'ᵀ·X':
 *   cublasGemmEx(transa = T, transb = N, M = m, N = n, K = k,
 *                A = w, lda = k, B = x, ldb = k, C = y, ldc = m).
 * A chunk of weight rows m0 .. m0+mc-1 is columns m0.. of Y': the same call
 * with M = mc, A = the chunk, C = y + m0 (ldc still m).
 */
#define LG_WANT_BLAS 1
#include "common.cuh"
#include "quants.cuh"
#include "matmul.cuh"

#include <stdlib.h>

/*
 * Bytes of dequantized F16 weights per chunk.  It bounds the scratch, and
 * small enough a chunk stays in L2 (50 MB on an H100) between being
 * written by the dequantization and read by the GEMM, so batched decode
 * pays mostly the quantized bytes in DRAM traffic; large enough that the
 * GEMMs stay efficient (4096 rows of 2048, 1472 of 5632).
 */
#define LG_BLAS_CHUNK_BYTES ((size_t) 16 << 20)

/* Rows of a chunk for rows of k values: a multiple of 64, at least 64, at most m. */
static int64_t
blas_chunk_rows(int64_t k, int64_t m)
{
	int64_t		r = (int64_t) (LG_BLAS_CHUNK_BYTES / ((size_t) k * 2)) / 64 * 64;

	if (r < 64)
		r = 64;
	return r < m ? r : m;
}

/* n rounded up to a multiple of 256 (each scratch region starts aligned). */
static size_t
blas_align(size_t n)
{
	return (n + 255) & ~(size_t) 255;
}

/* cuBLAS takes products of at least 32 rows whose types it can mix. */
bool
lg_blas_wanted(lg_type type, lg_type x_type, int64_t n)
{
	return LG_GPU_HAS_BLAS && n >= LG_BLAS_MIN_N && lg_gpu_type_desc(type, NULL, NULL, NULL) &&
		(x_type == LG_TYPE_F32 || type != LG_TYPE_F32);
}

/* Activations in half [n][k], 256-aligned, then one chunk of F16 weights (quantized types). */
size_t
lg_blas_scratch_bytes(lg_type type, int64_t k, int64_t m, int64_t n)
{
	if (!lg_blas_wanted(type, LG_TYPE_F32, n) || k <= 0 || m <= 0 || type == LG_TYPE_F32)
		return 0;
	if (type == LG_TYPE_F16 || type == LG_TYPE_BF16)
		return blas_align((size_t) n * (size_t) k * 2);
	return blas_align((size_t) n * (size_t) k * 2) + (size_t) blas_chunk_rows(k, m) * (size_t) k * 2;
}

#if LG_GPU_HAS_BLAS

/* cuBLAS's recommendation for Hopper (32 MiB; 4 MiB would do before it). */
#define LG_BLAS_WORKSPACE ((size_t) 32 << 20)

struct lg_gpu_blas_s
{
	cublasHandle_t h;
	void	   *ws;				/* device workspace, LG_BLAS_WORKSPACE bytes */
	cudaStream_t st;			/* the stream h is bound to */
};

/* A cuBLAS status as ours, naming the call. */
static lg_gpu_status
blas_check(cublasStatus_t e, const char *what)
{
	if (e == CUBLAS_STATUS_SUCCESS)
		return LG_GPU_OK;
	if (e == CUBLAS_STATUS_ALLOC_FAILED)
		return lg_gpu_set_error(LG_GPU_ERR_NOMEM, "%s: cuBLAS could not allocate memory", what);
	return lg_gpu_set_error(LG_GPU_ERR_DEVICE, "%s: %s", what, cublasGetStatusString(e));
}

/* Bind the handle to st with our workspace (cublasSetStream resets the workspace). */
static lg_gpu_status
blas_bind(lg_gpu_blas b, cudaStream_t st)
{
	lg_gpu_status rc = blas_check(cublasSetStream(b->h, st), "cublasSetStream");

	if (rc == LG_GPU_OK)
		rc = blas_check(cublasSetWorkspace(b->h, b->ws, LG_BLAS_WORKSPACE), "cublasSetWorkspace");
	if (rc == LG_GPU_OK)
		b->st = st;
	return rc;
}

/* A cuBLAS handle bound to s with its own workspace (graph-capturable GEMMs). */
lg_gpu_status
lg_gpu_blas_create(lg_gpu_blas *out, lg_gpu_stream s)
{
	lg_gpu_blas b;
	lg_gpu_status rc;

	if (out == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "blas_create: NULL handle pointer");
	*out = NULL;
	b = (lg_gpu_blas) calloc(1, sizeof(*b));
	if (b == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_NOMEM, "blas_create: out of host memory");
	rc = blas_check(cublasCreate(&b->h), "cublasCreate");
	if (rc != LG_GPU_OK)
	{
		free(b);
		return rc;
	}
	rc = lg_gpu_check(cudaMalloc(&b->ws, LG_BLAS_WORKSPACE), "blas_create: cuBLAS workspace (32 MiB)");
	if (rc == LG_GPU_OK)
		rc = blas_bind(b, (cudaStream_t) s);
	if (rc != LG_GPU_OK)
	{
		lg_gpu_blas_destroy(b);
		return rc;
	}
	*out = b;
	return LG_GPU_OK;
}

/* Free the handle and its workspace (NULL is a no-op). */
void
lg_gpu_blas_destroy(lg_gpu_blas b)
{
	if (b == NULL)
		return;
	if (b->h)
		cublasDestroy(b->h);
	if (b->ws)
		cudaFree(b->ws);
	free(b);
}

/* Activations to F16 (round to nearest even) or BF16 (as lg_f32_to_bf16). */
template <bool BF>
__global__ void __launch_bounds__(256)
to_half_kernel(uint16_t *__restrict__ dst, const float *__restrict__ x, int64_t total)
{
	for (int64_t i = (int64_t) blockIdx.x * 256 + threadIdx.x; i < total; i += (int64_t) gridDim.x * 256)
		dst[i] = BF ? lg_f2bf(x[i]) : lg_f2h(x[i]);
}

/* Launch the conversion of total activations to F16 or BF16. */
static lg_gpu_status
to_half(cudaStream_t st, void *dst, const float *x, int64_t total, bool bf)
{
	int64_t		blocks = lg_ceil_div(total, 256);

	if (blocks > 65536)
		blocks = 65536;
	if (bf)
		to_half_kernel<true><<<(unsigned) blocks, 256, 0, st>>>((uint16_t *) dst, x, total);
	else
		to_half_kernel<false><<<(unsigned) blocks, 256, 0, st>>>((uint16_t *) dst, x, total);
	return lg_gpu_check_launch("matmul (activations to half)");
}

/* Y'(mc×n) = A'ᵀ·X' with A rows of k values of type dt (see the derivation above). */
static lg_gpu_status
blas_gemm(lg_gpu_blas b, float *y, int64_t ldy, const void *a, const void *xb, cudaDataType_t dt,
		  int64_t k, int64_t mc, int64_t n)
{
	const float one = 1.0f;
	const float zero = 0.0f;

	return blas_check(cublasGemmEx(b->h, CUBLAS_OP_T, CUBLAS_OP_N, (int) mc, (int) n, (int) k,
								   &one, a, dt, (int) k, xb, dt, (int) k,
								   &zero, y, CUDA_R_32F, (int) ldy,
								   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
					  "matmul: cublasGemmEx");
}

/* F32 weights as they are; half weights with half activations; quantized ones chunk by chunk. */
lg_gpu_status
lg_blas_matmul(lg_gpu_blas b, cudaStream_t st, float *y, const void *w, lg_type type, int64_t k, int64_t m,
			   const void *x, lg_type x_type, int64_t n, void *scratch)
{
	lg_gpu_status rc = LG_GPU_OK;
	const void *xh = x;			/* the activations in the weights' half type */
	char	   *wh;
	int64_t		rows;

	if (b->st != st && (rc = blas_bind(b, st)) != LG_GPU_OK)
		return rc;
	if (type == LG_TYPE_F32)
		return blas_gemm(b, y, m, w, x, CUDA_R_32F, k, m, n);
	if (x_type == LG_TYPE_F32)
	{
		rc = to_half(st, scratch, (const float *) x, n * k, type == LG_TYPE_BF16);
		if (rc != LG_GPU_OK)
			return rc;
		xh = scratch;
	}
	if (type == LG_TYPE_F16 || type == LG_TYPE_BF16)
		return blas_gemm(b, y, m, w, xh, type == LG_TYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F, k, m, n);

	/* quantized: dequantize a chunk of rows to F16 after the activations, multiply, repeat */
	wh = (char *) scratch + blas_align((size_t) n * (size_t) k * 2);
	rows = blas_chunk_rows(k, m);
	for (int64_t m0 = 0; m0 < m && rc == LG_GPU_OK; m0 += rows)
	{
		int64_t		mc = m - m0 < rows ? m - m0 : rows;
		int			qk,
					bytes;

		lg_gpu_type_desc(type, &qk, &bytes, NULL);
		rc = lg_dequant_f16_launch(st, wh, (const char *) w + (size_t) m0 * (size_t) (k / qk) * (size_t) bytes,
								   type, k, mc);
		if (rc == LG_GPU_OK)
			rc = blas_gemm(b, y + m0, m, wh, xh, CUDA_R_16F, k, mc, n);
	}
	return rc;
}

#else							/* HIP: no BLAS library, own GEMM kernels */

/* No BLAS library: a NULL handle, and lg_gpu_matmul uses the own GEMM. */
lg_gpu_status
lg_gpu_blas_create(lg_gpu_blas *out, lg_gpu_stream s)
{
	(void) s;
	if (out == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "blas_create: NULL handle pointer");
	*out = NULL;
	return LG_GPU_OK;
}

/* Nothing to free without a BLAS library. */
void
lg_gpu_blas_destroy(lg_gpu_blas b)
{
	(void) b;
}

/* Never called: lg_blas_wanted() is false without a BLAS library. */
lg_gpu_status
lg_blas_matmul(lg_gpu_blas b, cudaStream_t st, float *y, const void *w, lg_type type, int64_t k, int64_t m,
			   const void *x, lg_type x_type, int64_t n, void *scratch)
{
	(void) b, (void) st, (void) y, (void) w, (void) k, (void) m, (void) x, (void) x_type, (void) n, (void) scratch;
	return lg_gpu_set_error(LG_GPU_ERR_UNSUPPORTED, "matmul: no BLAS in this build (type %d)", (int) type);
}

#endif
