/*
 * matmul.cuh — the launchers lg_gpu_matmul (matmul.cu) chooses between:
 * the matrix-vector kernels (mmv.cu), the own tiled GEMM (gemm.cu) and
 * cuBLAS (blas.cu), plus dequantization to F16 (dequantize.cu) that the
 * cuBLAS path uses.  Internal to kernels/: C++ linkage, shapes already
 * checked by the entry.
 */
#ifndef LG_MATMUL_CUH
#define LG_MATMUL_CUH

#include "common.cuh"

/*
 * A weight type as the kernels see it: values and bytes per block, name.
 * Our own table rather than lg_type_get(): lg_types.h declares it without
 * C linkage for C++ callers, and the kernels should not depend on engine
 * symbols.  Returns false for a type without kernels.
 */
static inline bool
lg_gpu_type_desc(lg_type t, int *qk, int *bytes, const char **name)
{
	int			q = 0,
				b = 0;
	const char *nm = "unsupported";

	switch (t)
	{
		case LG_TYPE_F32: q = 1; b = 4; nm = "f32"; break;
		case LG_TYPE_F16: q = 1; b = 2; nm = "f16"; break;
		case LG_TYPE_BF16: q = 1; b = 2; nm = "bf16"; break;
		case LG_TYPE_Q4_0: q = 32; b = 18; nm = "q4_0"; break;
		case LG_TYPE_Q4_1: q = 32; b = 20; nm = "q4_1"; break;
		case LG_TYPE_Q5_0: q = 32; b = 22; nm = "q5_0"; break;
		case LG_TYPE_Q5_1: q = 32; b = 24; nm = "q5_1"; break;
		case LG_TYPE_Q8_0: q = 32; b = 34; nm = "q8_0"; break;
		case LG_TYPE_Q2_K: q = 256; b = 84; nm = "q2_K"; break;
		case LG_TYPE_Q3_K: q = 256; b = 110; nm = "q3_K"; break;
		case LG_TYPE_Q4_K: q = 256; b = 144; nm = "q4_K"; break;
		case LG_TYPE_Q5_K: q = 256; b = 176; nm = "q5_K"; break;
		case LG_TYPE_Q6_K: q = 256; b = 210; nm = "q6_K"; break;
		default: break;
	}
	if (qk)
		*qk = q;
	if (bytes)
		*bytes = b;
	if (name)
		*name = nm;
	return q != 0;
}

/* Alignment the kernels need of a weight pointer of this type (F32 4, else 2). */
static inline size_t
lg_gpu_type_align(lg_type t)
{
	return t == LG_TYPE_F32 ? 4 : 2;
}

/* Most rows of x the matrix-vector kernels take (decode, batched decode). */
#define LG_MMV_MAX_N 8
/*
 * Up to this many rows of x (and below the cuBLAS threshold) the
 * matrix-vector kernels run on groups of 8 rows, each group reading the
 * weights once: the tiled GEMM would have only m/64 blocks for small n
 * (32 for m = 2048), leaving most SMs idle.
 */
#define LG_MMV_BATCH_MAX_N 32
/* Fewest rows of x for which cuBLAS is used (header of lg_gpu_matmul). */
#define LG_BLAS_MIN_N 32

/* y[n][m] = x[n][k] · wᵀ for n <= LG_MMV_MAX_N; LG_GPU_ERR_UNSUPPORTED if x is not 16-byte aligned for a quantized type. */
lg_gpu_status lg_mmv_launch(cudaStream_t st, float *y, const void *w, lg_type type, int64_t k, int64_t m,
							const float *x, int64_t n);

/*
 * The same for any n with the own tiled GEMM; x of x_type: F32, F16 (any
 * weight type but BF16) or BF16 (BF16 weights).
 */
lg_gpu_status lg_gemm_launch(cudaStream_t st, float *y, const void *w, lg_type type, int64_t k, int64_t m,
							 const void *x, lg_type x_type, int64_t n);

/* Dequantize n_rows rows of k values of type to F16 (shapes checked). */
lg_gpu_status lg_dequant_f16_launch(cudaStream_t st, void *dst, const void *w, lg_type type, int64_t k,
									int64_t n_rows);

/* Scratch the cuBLAS path needs (0 when it does not run for these shapes). */
size_t		lg_blas_scratch_bytes(lg_type type, int64_t k, int64_t m, int64_t n);

/*
 * Whether lg_blas_matmul runs for this type, n and activation type (given
 * a handle): F32 activations with any weights; half activations with half
 * or quantized weights, not F32 ones (cuBLAS does not mix those).
 */
bool		lg_blas_wanted(lg_type type, lg_type x_type, int64_t n);

/*
 * y = x · wᵀ through cuBLAS (CUDA only; b not NULL; scratch checked by the
 * caller).  x is float32, or already the half type cuBLAS multiplies
 * (lg_gpu_matmul_half_type), which skips the conversion.
 */
lg_gpu_status lg_blas_matmul(lg_gpu_blas b, cudaStream_t st, float *y, const void *w, lg_type type,
							 int64_t k, int64_t m, const void *x, lg_type x_type, int64_t n, void *scratch);

#endif							/* LG_MATMUL_CUH */
