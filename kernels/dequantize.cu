/*
 * dequantize.cu — lg_gpu_dequantize_f16: rows of any supported weight type
 * to IEEE half, the form cuBLAS multiplies (blas.cu dequantizes quantized
 * weights through it, a chunk of rows at a time).
 *
 * One thread per output value in a grid-stride loop: value i of the
 * n_rows × k output is row i / k, column i % k, dequantized exactly as the
 * CPU does (quants.cuh) and rounded to nearest even.  Consecutive threads
 * write consecutive halves and read the same or neighbouring blocks, so
 * both sides are coalesced; the scale bytes a K-quant thread re-reads come
 * from L1.
 */
#include "common.cuh"
#include "quants.cuh"
#include "matmul.cuh"

#define DQ_THREADS 256
#define DQ_MAX_BLOCKS 65536		/* grid-stride beyond: enough to fill any GPU */

/* Thread i (grid-stride) writes value i of the n_rows × k output. */
template <class T>
__global__ void __launch_bounds__(DQ_THREADS)
dequant_f16_kernel(uint16_t *__restrict__ dst, const uint8_t *__restrict__ w, size_t row_bytes, int64_t k,
				   int64_t total)
{
	for (int64_t i = (int64_t) blockIdx.x * DQ_THREADS + threadIdx.x; i < total;
		 i += (int64_t) gridDim.x * DQ_THREADS)
	{
		int64_t		row = i / k;
		int64_t		col = i % k;
		float		v = T::get(w + (size_t) row * row_bytes + (size_t) (col / T::QK) * T::BYTES,
							   (int) (col % T::QK));

		dst[i] = lg_f2h(v);
	}
}

/* Grid-stride launch over all values, at most DQ_MAX_BLOCKS blocks. */
template <class T>
static lg_gpu_status
dequant_type(cudaStream_t st, void *dst, const void *w, int64_t k, int64_t n_rows)
{
	int64_t		total = k * n_rows;
	int64_t		blocks = lg_ceil_div(total, DQ_THREADS);

	if (total == 0)
		return LG_GPU_OK;
	if (blocks > DQ_MAX_BLOCKS)
		blocks = DQ_MAX_BLOCKS;
	dequant_f16_kernel<T><<<(unsigned) blocks, DQ_THREADS, 0, st>>>((uint16_t *) dst, (const uint8_t *) w,
																	 (size_t) (k / T::QK) * T::BYTES, k, total);
	return lg_gpu_check_launch("dequantize_f16");
}

/* Switch on the type (shapes checked by the caller). */
lg_gpu_status
lg_dequant_f16_launch(cudaStream_t st, void *dst, const void *w, lg_type type, int64_t k, int64_t n_rows)
{
	LG_DISPATCH_TYPE(type, dequant_type,
					 lg_gpu_set_error(LG_GPU_ERR_UNSUPPORTED, "dequantize_f16: no kernel for type %d", (int) type),
					 st, dst, w, k, n_rows);
}

/* Entry: check the type, the shape and the pointers, then launch. */
lg_gpu_status
lg_gpu_dequantize_f16(lg_gpu_stream s, void *dst, const void *w, lg_type type, int64_t k, int64_t n_rows)
{
	int			qk;
	const char *name;

	if (!lg_gpu_type_desc(type, &qk, NULL, &name))
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "dequantize_f16: unsupported type %d", (int) type);
	if (n_rows < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "dequantize_f16: negative row count %lld", (long long) n_rows);
	if (k <= 0 || k % qk != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "dequantize_f16: k %lld is not a positive multiple of %s's block size %d",
								(long long) k, name, qk);
	if (n_rows > INT64_MAX / k)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "dequantize_f16: %lld rows of %lld values overflow",
								(long long) n_rows, (long long) k);
	if (n_rows == 0)
		return LG_GPU_OK;
	if (dst == NULL || w == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "dequantize_f16: NULL %s", dst == NULL ? "destination" : "weights");
	if ((uintptr_t) w % lg_gpu_type_align(type) != 0 || (uintptr_t) dst % 2 != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "dequantize_f16: misaligned %s", (uintptr_t) dst % 2 ? "destination" : "weights");
	return lg_dequant_f16_launch((cudaStream_t) s, dst, w, type, k, n_rows);
}
