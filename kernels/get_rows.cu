/*
 * get_rows.cu — lg_gpu_get_rows: the embedding lookup, y[i] = row ids[i]
 * of emb dequantized to float32.
 *
 * One block per output row, its threads striding over the d values (each
 * dequantized exactly as the CPU's lg_dequantize_row, quants.cuh, so the
 * embeddings are bit-identical to the CPU backend's).  The token ids are
 * checked by the engine before they reach the device (the tokenizer and
 * the sampler only make ids < n_vocab, and the engine validates ids given
 * by the caller); an id out of range here cannot be reported cheaply, so
 * the kernel writes zeros for it rather than read outside the table.
 */
#include "common.cuh"
#include "quants.cuh"
#include "matmul.cuh"

#define GR_THREADS 256

/* Block i writes row i of y from row ids[i] of the table. */
template <class T>
__global__ void __launch_bounds__(GR_THREADS)
get_rows_kernel(float *__restrict__ y, const uint8_t *__restrict__ emb, size_t row_bytes, int64_t d,
				int64_t n_rows, const int32_t *__restrict__ ids)
{
	const int64_t i = blockIdx.x;
	const int32_t id = ids[i];
	float	   *yr = y + i * d;

	if (id < 0 || id >= n_rows)
	{
		for (int64_t c = threadIdx.x; c < d; c += GR_THREADS)
			yr[c] = 0.0f;
		return;
	}
	for (int64_t c = threadIdx.x; c < d; c += GR_THREADS)
		yr[c] = T::get(emb + (size_t) id * row_bytes + (size_t) (c / T::QK) * T::BYTES, (int) (c % T::QK));
}

/* One block of GR_THREADS per id (n > 0, at most INT32_MAX: checked by the entry). */
template <class T>
static lg_gpu_status
get_rows_type(cudaStream_t st, float *y, const void *emb, int64_t d, int64_t n_rows, const int32_t *ids,
			  int64_t n)
{
	get_rows_kernel<T><<<(unsigned) n, GR_THREADS, 0, st>>>(y, (const uint8_t *) emb,
														   (size_t) (d / T::QK) * T::BYTES, d, n_rows, ids);
	return lg_gpu_check_launch("get_rows");
}

/* Entry: check type, shape and pointers, then one block per id. */
lg_gpu_status
lg_gpu_get_rows(lg_gpu_stream s, float *y, const void *emb, lg_type type, int64_t d, int64_t n_rows,
				const int32_t *ids, int64_t n)
{
	int			qk;
	const char *name;

	if (!lg_gpu_type_desc(type, &qk, NULL, &name))
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "get_rows: unsupported type %d", (int) type);
	if (d <= 0 || d % qk != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "get_rows: row length %lld is not a positive multiple of %s's block size %d",
								(long long) d, name, qk);
	if (n_rows <= 0 || n < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "get_rows: bad counts (%lld table rows, %lld ids)",
								(long long) n_rows, (long long) n);
	if (n > INT32_MAX)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "get_rows: %lld ids exceed the grid (at most %d)",
								(long long) n, INT32_MAX);
	if (n == 0)
		return LG_GPU_OK;
	if (y == NULL || emb == NULL || ids == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "get_rows: NULL %s",
								y == NULL ? "output" : emb == NULL ? "table" : "ids");
	if ((uintptr_t) emb % lg_gpu_type_align(type) != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "get_rows: table not aligned to %zu bytes", lg_gpu_type_align(type));
	LG_DISPATCH_TYPE(type, get_rows_type,
					 lg_gpu_set_error(LG_GPU_ERR_UNSUPPORTED, "get_rows: no kernel for type %d", (int) type),
					 (cudaStream_t) s, y, emb, d, n_rows, ids, n);
}
