/*
 * layernorm.cu — the encoders' LayerNorm, y = (x - mean) / sqrt(var + eps)
 * * w + b, one block per row.
 *
 * The CPU (lg_cpu_layernorm, after ggml_norm) sums x in double and rounds
 * the mean to float, subtracts it in float, sums the float squares of the
 * differences in double and rounds the variance to float; then
 * y = ((v * scale) * w) + b, each operation rounded.  We do the same, each
 * thread over a strided share of the row and a fixed-order block
 * reduction: the double sums of a few thousand floats are exact or within
 * a double ulp in any order, and the float operations are written with
 * lg_fmul/lg_fadd so no FMA fuses them, so the rows match the CPU's bit
 * for bit except where that last double ulp crosses a float rounding
 * boundary.  w and b may be NULL (1 and 0).  y may equal x: each thread
 * rereads and writes only its own elements, after the reductions.
 */
#include "common.cuh"
#include "elem.cuh"

#define LG_LAYERNORM_THREADS 256

/* Rows blockIdx.x, blockIdx.x + gridDim.x, ... */
__global__ void __launch_bounds__(LG_LAYERNORM_THREADS)
lg_layernorm_kernel(float *y, const float *x, const float *w, const float *b, int64_t n, int64_t d,
					float eps)
{
	LG_NO_CONTRACT
	__shared__ double buf[32];

	for (int64_t r = blockIdx.x; r < n; r += gridDim.x)
	{
		const float *xr = x + r * d;
		float	   *yr = y + r * d;
		double		s = 0.0;
		double		sq = 0.0;
		float		mean;
		float		scale;

		for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
			s += (double) xr[i];
		s = lg_block_reduce(s, lg_op_sum(), buf);
		mean = (float) (s / (double) d);
		for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		{
			const float v = lg_fsub(xr[i], mean);

			sq += (double) lg_fmul(v, v);	/* the float square, as the CPU */
		}
		sq = lg_block_reduce(sq, lg_op_sum(), buf);
		scale = 1.0f / sqrtf(lg_fadd((float) (sq / (double) d), eps));
		for (int64_t i = threadIdx.x; i < d; i += blockDim.x)
		{
			float		v = lg_fmul(lg_fsub(xr[i], mean), scale);

			if (w != NULL)
				v = lg_fmul(v, w[i]);
			if (b != NULL)
				v = lg_fadd(v, b[i]);
			yr[i] = v;
		}
	}
}

extern "C" lg_gpu_status
lg_gpu_layernorm(lg_gpu_stream s, float *y, const float *x, const float *w, const float *b,
				 int64_t n, int64_t d, float eps)
{
	unsigned int blocks;

	if (n < 0 || d < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "layernorm: negative shape (n %lld, d %lld)",
								(long long) n, (long long) d);
	if (n == 0)
		return LG_GPU_OK;
	if (d == 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "layernorm: rows of 0 values have no mean");
	if (y == NULL || x == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "layernorm: %s is NULL", y == NULL ? "y" : "x");
	if (d > INT64_MAX / n)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "layernorm: %lld rows of %lld values overflow",
								(long long) n, (long long) d);
	blocks = (unsigned int) (n > LG_ELEM_MAX_BLOCKS ? LG_ELEM_MAX_BLOCKS : n);
	lg_layernorm_kernel<<<blocks, LG_LAYERNORM_THREADS, 0, (cudaStream_t) s>>>(y, x, w, b, n, d, eps);
	return lg_gpu_check_launch("layernorm");
}
