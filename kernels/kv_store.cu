/*
 * kv_store.cu — the paged KV-cache store: row i of x[n][d] goes to pool
 * row slots[i] (slot = block * block_size + offset), as float32 (a copy)
 * or as F16 rounded to nearest even exactly as lg_f32_to_f16 (NaN as
 * sign | 0x7e00), so a GPU cache holds the same bits as the CPU's.
 *
 * slots live in device memory and cannot be checked on the host: a
 * negative slot is skipped (its row is not stored) rather than written
 * before the pool.  Slots past the pool's end are the caller's bug, as
 * on the CPU.
 */
#include "common.cuh"
#include "elem.cuh"

/* One thread per value, grid-stride: value c of row i to pool[slots[i]*d + c]. */
template <bool F16>
__global__ void __launch_bounds__(LG_ELEM_THREADS)
lg_kv_store_kernel(void *pool, const int32_t *slots, const float *x, int64_t nd, int64_t d)
{
	const int64_t stride = (int64_t) gridDim.x * blockDim.x;

	for (int64_t t = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; t < nd; t += stride)
	{
		const int64_t i = t / d;
		const int64_t c = t - i * d;
		const int32_t slot = slots[i];
		int64_t		dst;

		if (slot < 0)
			continue;
		dst = (int64_t) slot * d + c;
		if (F16)
			((uint16_t *) pool)[dst] = lg_f2h_cpu(x[t]);
		else
			((float *) pool)[dst] = x[t];
	}
}

/* Launch over nd > 0 values on stream s. */
static void
lg_kv_store_launch(cudaStream_t s, void *pool, bool f16, const int32_t *slots, const float *x,
				   int64_t nd, int64_t d)
{
	unsigned int blocks = lg_elem_blocks(nd, LG_ELEM_THREADS);

	if (f16)
		lg_kv_store_kernel<true><<<blocks, LG_ELEM_THREADS, 0, s>>>(pool, slots, x, nd, d);
	else
		lg_kv_store_kernel<false><<<blocks, LG_ELEM_THREADS, 0, s>>>(pool, slots, x, nd, d);
}

extern "C" lg_gpu_status
lg_gpu_kv_store(lg_gpu_stream s, void *pool, int kv_type, const int32_t *slots,
				const float *x, int64_t n, int64_t d)
{
	if (kv_type != LG_GPU_KV_F16 && kv_type != LG_GPU_KV_F32)
		return lg_gpu_set_error(LG_GPU_ERR_ARG,
								"kv_store: KV type %d is neither F16 (%d) nor F32 (%d)",
								kv_type, LG_GPU_KV_F16, LG_GPU_KV_F32);
	if (n < 0 || d < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "kv_store: negative shape (n %lld, d %lld)",
								(long long) n, (long long) d);
	if (n == 0 || d == 0)
		return LG_GPU_OK;
	if (pool == NULL || slots == NULL || x == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "kv_store: %s is NULL",
								pool == NULL ? "pool" : slots == NULL ? "slots" : "x");
	if (d > INT64_MAX / n)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "kv_store: %lld rows of %lld values overflow",
								(long long) n, (long long) d);
	lg_kv_store_launch((cudaStream_t) s, pool, kv_type == LG_GPU_KV_F16, slots, x, n * d, d);
	return lg_gpu_check_launch("kv_store");
}
