/*
 * matmul.cu — lg_gpu_matmul: y[n][m] = x[n][k] · wᵀ, choosing the kernel
 * by n, and the checks every path shares.
 *
 *   n <= 8                      matrix-vector kernels (mmv.cu): decode reads
 *                               each weight once for all n rows of x;
 *   n >= 32 and a BLAS handle   cuBLAS (blas.cu), quantized weights
 *                               dequantized to F16 in scratch;
 *   other n <= 32               the matrix-vector kernels on groups of 8
 *                               rows of x (weights read ceil(n/8) times);
 *   otherwise                   the own tiled GEMM (gemm.cu): HIP, or no
 *                               handle.
 *
 * lg_gpu_matmul_half takes x already in half precision (from
 * lg_gpu_rmsnorm_half), which cuBLAS multiplies without the conversion
 * pass; below 32 rows or without a handle it goes through the GEMM (there
 * is no half matrix-vector kernel: decode should pass float x).
 */
#include "common.cuh"
#include "matmul.cuh"

/* Every type the CPU backend multiplies has kernels here. */
bool
lg_gpu_type_supported(lg_type type)
{
	return lg_gpu_type_desc(type, NULL, NULL, NULL);
}

/* Only the cuBLAS path needs scratch (half activations, dequantized weights). */
size_t
lg_gpu_matmul_scratch_bytes(lg_type type, int64_t k, int64_t m, int64_t n)
{
	return lg_blas_scratch_bytes(type, k, m, n);
}

/* BF16 weights multiply BF16 activations; all others F16 (quantized ones are dequantized to F16). */
lg_type
lg_gpu_matmul_half_type(lg_type type)
{
	return type == LG_TYPE_BF16 ? LG_TYPE_BF16 : LG_TYPE_F16;
}

/* Both entries: check everything (see lg_kernels.h), then dispatch on n. */
static lg_gpu_status
matmul_any(const char *op, lg_gpu_stream s, lg_gpu_blas blas, float *y, const void *w, lg_type type, int64_t k,
		   int64_t m, const void *x, lg_type x_type, int64_t n, void *scratch, size_t scratch_bytes)
{
	cudaStream_t st = (cudaStream_t) s;
	size_t		x_align = x_type == LG_TYPE_F32 ? 4 : 2;
	int			qk;
	const char *name;

	if (!lg_gpu_type_desc(type, &qk, NULL, &name))
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: unsupported weight type %d", op, (int) type);
	if (k <= 0 || k % qk != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: k %lld is not a positive multiple of %s's block size %d",
								op, (long long) k, name, qk);
	if (m <= 0 || n < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: bad shape (m %lld, n %lld)", op, (long long) m, (long long) n);
	/* kernels and cuBLAS index k, m and n with 32-bit ints */
	if (k > INT32_MAX || m > INT32_MAX || n > INT32_MAX)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: shape %lld × %lld × %lld beyond 32-bit dimensions",
								op, (long long) n, (long long) k, (long long) m);
	if (n == 0)
		return LG_GPU_OK;
	if (y == NULL || w == NULL || x == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: NULL %s", op,
								y == NULL ? "output" : w == NULL ? "weights" : "activations");
	if ((uintptr_t) w % lg_gpu_type_align(type) != 0 || (uintptr_t) x % x_align != 0 || (uintptr_t) y % 4 != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: misaligned %s", op,
								(uintptr_t) w % lg_gpu_type_align(type) ? "weights" :
								(uintptr_t) x % x_align ? "activations" : "output");

	if (x_type == LG_TYPE_F32 && n <= LG_MMV_BATCH_MAX_N && !(blas != NULL && lg_blas_wanted(type, x_type, n)))
	{
		lg_gpu_status rc = LG_GPU_OK;

		/* groups of up to 8 rows of x: y rows j0.. from x rows j0.. */
		for (int64_t j0 = 0; j0 < n && rc == LG_GPU_OK; j0 += LG_MMV_MAX_N)
			rc = lg_mmv_launch(st, y + j0 * m, w, type, k, m, (const float *) x + j0 * k,
							   n - j0 < LG_MMV_MAX_N ? n - j0 : LG_MMV_MAX_N);
		return rc;
	}
	if (blas != NULL && lg_blas_wanted(type, x_type, n))
	{
		/* the same layout either way (half activations leave the first region unused) */
		size_t		need = lg_blas_scratch_bytes(type, k, m, n);

		if (need > 0 && (scratch == NULL || scratch_bytes < need))
			return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: scratch of %zu bytes given, %zu needed (%s, k %lld, m %lld, n %lld)",
									op, scratch == NULL ? (size_t) 0 : scratch_bytes, need, name,
									(long long) k, (long long) m, (long long) n);
		if (need > 0 && (uintptr_t) scratch % 16 != 0)
			return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: scratch not aligned to 16 bytes", op);
		return lg_blas_matmul(blas, st, y, w, type, k, m, x, x_type, n, scratch);
	}
	return lg_gemm_launch(st, y, w, type, k, m, x, x_type, n);
}

/* Float activations: matrix-vector kernels for n <= 8, cuBLAS or the GEMM above. */
lg_gpu_status
lg_gpu_matmul(lg_gpu_stream s, lg_gpu_blas blas, float *y, const void *w, lg_type type, int64_t k, int64_t m,
			  const float *x, int64_t n, void *scratch, size_t scratch_bytes)
{
	return matmul_any("matmul", s, blas, y, w, type, k, m, x, LG_TYPE_F32, n, scratch, scratch_bytes);
}

/* Half activations in the type the weights want: no conversion pass before cuBLAS. */
lg_gpu_status
lg_gpu_matmul_half(lg_gpu_stream s, lg_gpu_blas blas, float *y, const void *w, lg_type type, int64_t k,
				   int64_t m, const void *x_half, lg_type x_type, int64_t n, void *scratch, size_t scratch_bytes)
{
	if (x_type != lg_gpu_matmul_half_type(type))
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "matmul_half: activations of type %d, weights of type %d want %s",
								(int) x_type, (int) type, type == LG_TYPE_BF16 ? "bf16" : "f16");
	return matmul_any("matmul_half", s, blas, y, w, type, k, m, x_half, x_type, n, scratch, scratch_bytes);
}
