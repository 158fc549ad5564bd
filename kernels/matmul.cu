/*
 * matmul.cu — lg_gpu_matmul: y[n][m] = x[n][k] · wᵀ, choosing the kernel
 * by n, and the checks every path shares.
 *
 *   n <= 8                      matrix-vector kernels (mmv.cu): decode reads
 *                               each weight once for all n rows of x;
 *   n >= 32 and a BLAS handle   cuBLAS (blas.cu), quantized weights
 *                               dequantized to F16 in scratch;
 *   otherwise                   the own tiled GEMM (gemm.cu): HIP, no
 *                               handle, or 8 < n < 32.
 */
#include "common.cuh"
#include "matmul.cuh"

bool
lg_gpu_type_supported(lg_type type)
{
	return lg_gpu_type_desc(type, NULL, NULL, NULL);
}

size_t
lg_gpu_matmul_scratch_bytes(lg_type type, int64_t k, int64_t m, int64_t n)
{
	return lg_blas_scratch_bytes(type, k, m, n);
}

/* Entry: check everything (see lg_kernels.h), then dispatch on n. */
lg_gpu_status
lg_gpu_matmul(lg_gpu_stream s, lg_gpu_blas blas, float *y, const void *w, lg_type type, int64_t k, int64_t m,
			  const float *x, int64_t n, void *scratch, size_t scratch_bytes)
{
	cudaStream_t st = (cudaStream_t) s;
	int			qk;
	const char *name;

	if (!lg_gpu_type_desc(type, &qk, NULL, &name))
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: unsupported weight type %d", (int) type);
	if (k <= 0 || k % qk != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: k %lld is not a positive multiple of %s's block size %d",
								(long long) k, name, qk);
	if (m <= 0 || n < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: bad shape (m %lld, n %lld)", (long long) m, (long long) n);
	/* kernels and cuBLAS index k, m and n with 32-bit ints */
	if (k > INT32_MAX || m > INT32_MAX || n > INT32_MAX)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: shape %lld × %lld × %lld beyond 32-bit dimensions",
								(long long) n, (long long) k, (long long) m);
	if (n == 0)
		return LG_GPU_OK;
	if (y == NULL || w == NULL || x == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: NULL %s",
								y == NULL ? "output" : w == NULL ? "weights" : "activations");
	if ((uintptr_t) w % lg_gpu_type_align(type) != 0 || (uintptr_t) x % 4 != 0 || (uintptr_t) y % 4 != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: misaligned %s",
								(uintptr_t) w % lg_gpu_type_align(type) ? "weights" :
								(uintptr_t) x % 4 ? "activations" : "output");

	if (n <= LG_MMV_MAX_N)
		return lg_mmv_launch(st, y, w, type, k, m, x, n);
	if (blas != NULL && lg_blas_wanted(type, n))
	{
		size_t		need = lg_blas_scratch_bytes(type, k, m, n);

		if (need > 0 && (scratch == NULL || scratch_bytes < need))
			return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: scratch of %zu bytes given, %zu needed (%s, k %lld, m %lld, n %lld)",
									scratch == NULL ? (size_t) 0 : scratch_bytes, need, name,
									(long long) k, (long long) m, (long long) n);
		if (need > 0 && (uintptr_t) scratch % 16 != 0)
			return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul: scratch not aligned to 16 bytes");
		return lg_blas_matmul(blas, st, y, w, type, k, m, x, n, scratch);
	}
	return lg_gemm_launch(st, y, w, type, k, m, x, n);
}
