/*
 * emu_blas.cc — cuBLAS's cublasGemmEx on the host, for the emulated build:
 * column-major C(m×n) = alpha·op(A)·op(B) + beta·C with cuBLAS's argument
 * checks (lda >= rows of A as stored, ldb likewise, ldc >= m; A and B of
 * one type; C F32, or of A's half type), F32 accumulation, queued on the
 * handle's stream (so recorded while it is captured).  cublasSetStream
 * drops the user workspace as cuBLAS does, and a GEMM recorded into a
 * graph without one fails: cuBLAS would allocate inside the capture.
 */
#define LG_WANT_BLAS 1
#include "gpu_compat.cuh"

#include <stdio.h>
#include <stdlib.h>

bool		lg_emu_is_device(const void *p, size_t n);
bool		lg_emu_capturing(cudaStream_t s);
void		lg_emu_submit(cudaStream_t s, std::function<void()> run);

struct lg_emu_blas
{
	cudaStream_t st;
	void	   *ws;
	size_t		ws_bytes;
};

cublasStatus_t
cublasCreate(cublasHandle_t *h)
{
	*h = new lg_emu_blas();
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasDestroy(cublasHandle_t h)
{
	if (h == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	delete h;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
	if (h == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	h->st = s;
	h->ws = NULL;				/* "resets the user workspace to the default workspace pool" */
	h->ws_bytes = 0;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes)
{
	if (h == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if (bytes > 0 && (ws == NULL || (uintptr_t) ws % 256 != 0 || !lg_emu_is_device(ws, bytes)))
		return CUBLAS_STATUS_INVALID_VALUE;
	h->ws = ws;
	h->ws_bytes = bytes;
	return CUBLAS_STATUS_SUCCESS;
}

const char *
cublasGetStatusString(cublasStatus_t s)
{
	switch (s)
	{
		case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
		case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
		case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
		case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
		case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
		default: return "CUBLAS_STATUS_EXECUTION_FAILED";
	}
}

/* Element i of a matrix of type t as float. */
static float
load(const void *p, cudaDataType_t t, size_t i)
{
	if (t == CUDA_R_32F)
		return ((const float *) p)[i];
	if (t == CUDA_R_16F)
		return __half2float(__ushort_as_half(((const uint16_t *) p)[i]));
	return __uint_as_float((uint32_t) ((const uint16_t *) p)[i] << 16);
}

/* Store v at element i of type t (half types round to nearest even). */
static void
store(void *p, cudaDataType_t t, size_t i, float v)
{
	if (t == CUDA_R_32F)
		((float *) p)[i] = v;
	else if (t == CUDA_R_16F)
		((uint16_t *) p)[i] = __half_as_ushort(__float2half_rn(v));
	else
	{
		uint32_t	u = __float_as_uint(v);

		((uint16_t *) p)[i] = (uint16_t) ((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
	}
}

static size_t
tsize(cudaDataType_t t)
{
	return t == CUDA_R_32F ? 4 : 2;
}

cublasStatus_t
cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
			 const void *alpha, const void *a, cudaDataType_t at, int lda,
			 const void *b, cudaDataType_t bt, int ldb, const void *beta,
			 void *c, cudaDataType_t ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
	/* stored shapes: A is (ta == N ? m×k : k×m), B is (tb == N ? k×n : n×k), column-major */
	const int	a_rows = ta == CUBLAS_OP_N ? m : k,
				a_cols = ta == CUBLAS_OP_N ? k : m;
	const int	b_rows = tb == CUBLAS_OP_N ? k : n,
				b_cols = tb == CUBLAS_OP_N ? n : k;
	float		al,
				be;

	(void) algo;
	if (h == NULL)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if (m < 0 || n < 0 || k < 0 || (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) ||
		(tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) ||
		lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1))
	{
		fprintf(stderr, "emu: cublasGemmEx m %d n %d k %d ta %d tb %d lda %d ldb %d ldc %d: invalid\n",
				m, n, k, ta, tb, lda, ldb, ldc);
		return CUBLAS_STATUS_INVALID_VALUE;
	}
	if (compute != CUBLAS_COMPUTE_32F || at != bt ||
		!(ct == CUDA_R_32F || ct == at) || (at == CUDA_R_32F && ct != CUDA_R_32F))
	{
		fprintf(stderr, "emu: cublasGemmEx types A %d B %d C %d compute %d: not a supported combination\n",
				at, bt, ct, compute);
		return CUBLAS_STATUS_NOT_SUPPORTED;
	}
	if (m == 0 || n == 0)
		return CUBLAS_STATUS_SUCCESS;
	/* every element the call may touch lies in device memory */
	if ((k > 0 && (!lg_emu_is_device(a, ((size_t) (a_cols - 1) * lda + a_rows) * tsize(at)) ||
				   !lg_emu_is_device(b, ((size_t) (b_cols - 1) * ldb + b_rows) * tsize(bt)))) ||
		!lg_emu_is_device(c, ((size_t) (n - 1) * ldc + m) * tsize(ct)))
	{
		fprintf(stderr, "emu: cublasGemmEx: A, B or C (with its ld) leaves device memory\n");
		return CUBLAS_STATUS_EXECUTION_FAILED;
	}
	if (lg_emu_capturing(h->st) && h->ws_bytes == 0)
	{
		fprintf(stderr, "emu: cublasGemmEx captured without a user workspace (cublasSetWorkspace)\n");
		return CUBLAS_STATUS_NOT_SUPPORTED;
	}
	/* alpha and beta are host pointers (CUBLAS_POINTER_MODE_HOST): read at the call */
	al = *(const float *) alpha;
	be = *(const float *) beta;
	lg_emu_submit(h->st, [=]() {
		for (int j = 0; j < n; j++)
			for (int i = 0; i < m; i++)
			{
				float		acc = 0.0f;

				for (int l = 0; l < k; l++)
				{
					float		x = load(a, at, ta == CUBLAS_OP_N ? (size_t) l * lda + i : (size_t) i * lda + l);
					float		y = load(b, bt, tb == CUBLAS_OP_N ? (size_t) j * ldb + l : (size_t) l * ldb + j);

					acc += x * y;
				}
				acc *= al;
				if (be != 0.0f)		/* beta == 0: C is not read (it may hold NaN) */
					acc += be * load(c, ct, (size_t) j * ldc + i);
				store(c, ct, (size_t) j * ldc + i, acc);
			}
	});
	return CUBLAS_STATUS_SUCCESS;
}
