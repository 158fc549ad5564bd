/*
 * rope.cu — rotary position embedding in place, both styles (0: adjacent
 * pairs as llama; 2: NeoX halves), with linear scaling (freq_scale),
 * per-pair divisors (llama3 rope_freqs) and YaRN.
 *
 * The math is lg_cpu_rope's (ops_cpu.c, after ggml) operation for
 * operation, so that the rounding is the same:
 *   - theta_scale = powf(base, -2/n_rot), the YaRN correction dims and
 *     the YaRN magnitude scale are computed on the host by the same float
 *     expressions (same libm) and passed in;
 *   - theta of pair j is built as the CPU builds it, p multiplied by
 *     theta_scale j times in float (not powf, which would round
 *     differently): each thread repeats the j-step recurrence for its pair;
 *   - products and sums are written with lg_fmul/lg_fadd/lg_fsub
 *     (elem.cuh) so the compiler cannot fuse them into FMAs (the CPU file
 *     is built without FMA, so each operation rounds on its own there).
 * What remains is the device cosf/sinf (<= 2 ulp in CUDA's non-fast-math
 * library) against glibc's: each rotated value is within a few float ulps
 * of |x| of the CPU's, i.e. a max error of ~4e-7 * max|x| of the head.
 *
 * One block per row: the (cos, sin) of every pair is computed once into
 * shared memory (the CPU's per-row cache), then all heads are rotated.
 */
#include "common.cuh"
#include "elem.cuh"

#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define LG_ROPE_THREADS 256
/* n_rot floats of (cos, sin) in shared memory per block: 32 KiB at most. */
#define LG_ROPE_MAX_N_ROT 8192

/* What the host prepares for the kernel (everything but the device pointers). */
typedef struct lg_rope_consts
{
	int			neox;
	int32_t		n_rot;
	float		theta_scale;
	float		freq_scale;
	float		ext_factor;
	float		mscale;			/* attn_factor, times YaRN's magnitude scale when ext_factor != 0 */
	float		corr0;			/* YaRN correction dims */
	float		corr1;
} lg_rope_consts;

/* ggml_rope_yarn_corr_dim, as lg_rope_yarn_corr_dim in ops_cpu.c. */
static float
lg_rope_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base)
{
	return n_dims * logf(n_ctx_orig / (n_rot * 2 * (float) M_PI)) / (2 * logf(base));
}

/*
 * The host half of the CPU's rope: theta_scale, the correction dims
 * (lg_rope_yarn_corr_dims) and the magnitude scale.  Exposed (C linkage)
 * so the CPU-only self-check can compare it with the engine's.
 */
extern "C" void
lg_gpu_rope_host_consts(const lg_gpu_rope_params *rp, float *theta_scale, float corr[2],
						float *mscale)
{
	float		start = floorf(lg_rope_corr_dim(rp->n_rot, rp->n_ctx_orig, rp->beta_fast, rp->freq_base));
	float		end = ceilf(lg_rope_corr_dim(rp->n_rot, rp->n_ctx_orig, rp->beta_slow, rp->freq_base));

	*theta_scale = powf(rp->freq_base, -2.0f / rp->n_rot);
	corr[0] = start > 0 ? start : 0;
	corr[1] = end < rp->n_rot - 1 ? end : (float) (rp->n_rot - 1);
	*mscale = rp->attn_factor;
	if (rp->ext_factor != 0.0f)
		*mscale *= 1.0f + 0.1f * logf(1.0f / rp->freq_scale);
}

/* ggml's rope_yarn_ramp, as lg_rope_yarn_ramp; i0/2 is integer division. */
static __device__ __forceinline__ float
lg_rope_ramp(float low, float high, int i0)
{
	float		y = (i0 / 2 - low) / fmaxf(0.001f, high - low);

	return 1 - fminf(1, fmaxf(0, y));
}

/*
 * x[n][n_heads*head_dim]: rows blockIdx.x, +gridDim.x, ...  Shared
 * memory: n_rot floats, cs[2j] = cos, cs[2j+1] = sin of pair j (i0 = 2j).
 */
__global__ void __launch_bounds__(LG_ROPE_THREADS)
lg_rope_kernel(float *x, int64_t n, int32_t n_heads, int32_t head_dim, const int32_t *pos,
			   const float *freq_factors, lg_rope_consts c)
{
	LG_NO_CONTRACT
	extern __shared__ float cs[];
	const int32_t half = c.n_rot / 2;

	for (int64_t r = blockIdx.x; r < n; r += gridDim.x)
	{
		const float p = (float) pos[r];
		float	   *xr = x + r * (int64_t) n_heads * head_dim;

		__syncthreads();		/* the previous row's cs is no longer read */
		for (int32_t j = threadIdx.x; j < half; j += blockDim.x)
		{
			const int	i0 = 2 * j;
			float		theta_base = p;
			float		ff;
			float		theta_extrap;
			float		theta_interp;
			float		theta;

			/* the CPU's recurrence: theta_base *= theta_scale once per earlier pair */
			for (int32_t k = 0; k < j; k++)
				theta_base = lg_fmul(theta_base, c.theta_scale);
			ff = freq_factors != NULL ? freq_factors[j] : 1.0f;
			theta_extrap = theta_base / ff;
			theta_interp = lg_fmul(c.freq_scale, theta_extrap);
			theta = theta_interp;
			if (c.ext_factor != 0.0f)
			{
				float		ramp_mix = lg_fmul(lg_rope_ramp(c.corr0, c.corr1, i0), c.ext_factor);

				theta = lg_fadd(lg_fmul(theta_interp, lg_fsub(1.0f, ramp_mix)),
								  lg_fmul(theta_extrap, ramp_mix));
			}
			cs[i0 + 0] = lg_fmul(cosf(theta), c.mscale);
			cs[i0 + 1] = lg_fmul(sinf(theta), c.mscale);
		}
		__syncthreads();

		/* one thread per (head, pair); dims n_rot.. of each head stay as they are */
		for (int64_t t = threadIdx.x; t < (int64_t) n_heads * half; t += blockDim.x)
		{
			const int32_t h = (int32_t) (t / half);
			const int32_t j = (int32_t) (t % half);
			float	   *v = xr + (int64_t) h * head_dim;
			const float cj = cs[2 * j];
			const float sj = cs[2 * j + 1];
			/* NeoX pairs dim j with dim j + n_rot/2; llama pairs 2j with 2j+1 */
			const int32_t a = c.neox ? j : 2 * j;
			const int32_t b = c.neox ? j + half : 2 * j + 1;
			const float x0 = v[a];
			const float x1 = v[b];

			v[a] = lg_fsub(lg_fmul(x0, cj), lg_fmul(x1, sj));
			v[b] = lg_fadd(lg_fmul(x0, sj), lg_fmul(x1, cj));
		}
	}
}

/* Launch over n rows on stream s (n > 0); c is complete. */
static void
lg_rope_launch(cudaStream_t s, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
			   const int32_t *pos, const float *freq_factors, const lg_rope_consts *c)
{
	unsigned int blocks = (unsigned int) (n > LG_ELEM_MAX_BLOCKS ? LG_ELEM_MAX_BLOCKS : n);
	size_t		shmem = (size_t) c->n_rot * sizeof(float);

	lg_rope_kernel<<<blocks, LG_ROPE_THREADS, shmem, s>>>(x, n, n_heads, head_dim, pos,
														   freq_factors, *c);
}

extern "C" lg_gpu_status
lg_gpu_rope(lg_gpu_stream s, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
			const int32_t *pos, const lg_gpu_rope_params *rp)
{
	lg_rope_consts c;
	float		corr[2];

	if (rp == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "rope: parameters are NULL");
	if (n < 0 || n_heads <= 0 || head_dim <= 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG,
								"rope: bad shape (n %lld, n_heads %d, head_dim %d)",
								(long long) n, (int) n_heads, (int) head_dim);
	if (rp->style != 0 && rp->style != 2)
		return lg_gpu_set_error(LG_GPU_ERR_ARG,
								"rope: style %d is neither 0 (adjacent pairs) nor 2 (NeoX)",
								rp->style);
	if (rp->n_rot <= 0 || rp->n_rot % 2 != 0 || rp->n_rot > head_dim)
		return lg_gpu_set_error(LG_GPU_ERR_ARG,
								"rope: n_rot %d must be even and in 2..head_dim (%d)",
								(int) rp->n_rot, (int) head_dim);
	if (rp->n_rot > LG_ROPE_MAX_N_ROT)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "rope: n_rot %d is above the supported %d",
								(int) rp->n_rot, LG_ROPE_MAX_N_ROT);
	if (n == 0)
		return LG_GPU_OK;
	if (x == NULL || pos == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "rope: %s is NULL", x == NULL ? "x" : "pos");
	if ((int64_t) n_heads * head_dim > INT64_MAX / n)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "rope: %lld rows of %lld values overflow",
								(long long) n, (long long) n_heads * head_dim);

	lg_gpu_rope_host_consts(rp, &c.theta_scale, corr, &c.mscale);
	c.neox = rp->style == 2;
	c.n_rot = rp->n_rot;
	c.freq_scale = rp->freq_scale;
	c.ext_factor = rp->ext_factor;
	c.corr0 = corr[0];
	c.corr1 = corr[1];
	lg_rope_launch((cudaStream_t) s, x, n, n_heads, head_dim, pos, rp->freq_factors, &c);
	return lg_gpu_check_launch("rope");
}
