/*
 * backend.h — the table of operations a compute backend provides.
 *
 * The forward passes (forward_*.c) call only these entries, so a backend
 * (CPU now, CUDA/HIP later) is swapped by filling the same table.  All
 * activations are row-major float32 matrices: a matrix of n rows of length d
 * is n*d contiguous floats.  Weights are lg_tensor views, usually straight
 * into the mmapped GGUF file.  Like ggml, a weight tensor of shape
 * ne = {in, out} holds `out` rows of `in` values each.
 */
#ifndef LG_BACKEND_H
#define LG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "lg_error.h"
#include "lg_types.h"

#define LG_BACKEND_VERSION 2

typedef struct lg_tensor
{
	const char *name;
	lg_type		type;
	int64_t		ne[4];			/* ne[0] = row length; ne[1] = rows */
	size_t		row_bytes;		/* lg_row_size(type, ne[0]) */
	const void *data;
} lg_tensor;

typedef enum lg_rope_style
{
	LG_ROPE_NORM = 0,			/* rotate adjacent pairs (x[2i], x[2i+1]): llama */
	LG_ROPE_NEOX = 2,			/* rotate (x[i], x[i + n_rot/2]): qwen2, gpt-neox */
} lg_rope_style;

typedef struct lg_rope_params
{
	lg_rope_style style;
	int32_t		n_rot;			/* rotated dims per head (<= head_dim) */
	float		freq_base;		/* theta base, 10000 by default */
	float		freq_scale;		/* 1 / linear scaling factor */
	const float *freq_factors;	/* n_rot/2 divisors (llama3 rope_freqs) or NULL */
	/* YaRN (rope.scaling.type == yarn); ext_factor 0 disables */
	float		ext_factor;
	float		attn_factor;
	float		beta_fast;
	float		beta_slow;
	int32_t		n_ctx_orig;
} lg_rope_params;

typedef enum lg_kv_type
{
	LG_KV_F16 = 0,
	LG_KV_F32 = 1,
} lg_kv_type;

/*
 * One layer's attention input, over one sequence of a paged KV cache
 * (kv_cache.h).  The layer's K and V pools hold rows of
 * n_kv_heads*head_dim values (F16 or F32, kv_type) in blocks of block_size
 * positions; the sequence's position p is pool row
 * block_table[p / block_size] * block_size + p % block_size, for
 * p in 0..kv_len-1.
 */
typedef struct lg_attn_args
{
	float	   *out;			/* [n_tok][n_heads*head_dim] */
	const float *q;				/* [n_tok][n_heads*head_dim], RoPE applied */
	const void *k_cache;		/* the layer's K pool: [n_blocks][block_size][n_kv_heads*head_dim] */
	const void *v_cache;
	const int32_t *block_table;	/* the sequence's blocks, ceil(kv_len / block_size) of them */
	int32_t		block_size;
	lg_kv_type	kv_type;
	int64_t		n_tok;			/* queries; query i sits at position pos0 + i */
	int64_t		pos0;
	int64_t		kv_len;			/* pos0 + n_tok */
	int32_t		n_heads;
	int32_t		n_kv_heads;		/* n_heads is a multiple: grouped-query attention */
	int32_t		head_dim;
	float		scale;			/* usually 1/sqrt(head_dim) */
	float	   *scratch;		/* see lg_backend.attn_scratch_floats */
} lg_attn_args;

typedef struct lg_backend lg_backend;

struct lg_backend
{
	uint32_t	version;		/* LG_BACKEND_VERSION */
	const char *name;			/* "cpu", "cuda:0" */
	void	   *ctx;			/* backend state */

	void		(*free) (lg_backend *be);

	/* y[n][w.ne[1]] = x[n][w.ne[0]] · wᵀ   (x converted to the type's vec_dot_type) */
	lg_status	(*matmul) (lg_backend *be, float *y, const lg_tensor *w, const float *x, int64_t n);
	/* y[n][d] = embedding rows ids[i] of emb (dequantized) */
	lg_status	(*get_rows) (lg_backend *be, float *y, const lg_tensor *emb, const int32_t *ids, int64_t n);
	/* y[n][d] = x / sqrt(mean(x²) + eps) * w    (y may equal x) */
	void		(*rmsnorm) (lg_backend *be, float *y, const float *x, const float *w, int64_t n, int64_t d, float eps);
	/* in place on x[n][n_heads*head_dim]; row i at position pos[i] */
	void		(*rope) (lg_backend *be, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
						 const int32_t *pos, const lg_rope_params *rp);
	/*
	 * copy n rows of d floats (converting to kv_type) to positions
	 * pos0..pos0+n-1 of a sequence in a paged pool (as in lg_attn_args)
	 */
	void		(*kv_store) (lg_backend *be, void *cache, lg_kv_type kv_type,
							 const int32_t *block_table, int32_t block_size, int64_t pos0,
							 const float *x, int64_t n, int64_t d);
	/*
	 * causal softmax attention of n_seqs sequences (a[0..n_seqs), each
	 * with its own queries, output, positions and block table; see
	 * lg_attn_args), computed together so short ones share the threads
	 */
	void		(*attention) (lg_backend *be, const lg_attn_args *a, int32_t n_seqs);
	/* floats of scratch attention needs for (n_tok, kv_len, n_heads) */
	size_t		(*attn_scratch_floats) (lg_backend *be, int64_t n_tok, int64_t kv_len, int32_t n_heads);
	/*
	 * g[i] = silu(g[i]) * u[i] for n rows of d values, row by row (as
	 * ggml): which of a row's values take the vector loop and which the
	 * tail depends on d only, not on the rows in the batch
	 */
	void		(*swiglu) (lg_backend *be, float *g, const float *u, int64_t n, int64_t d);
	/* y[i] += x[i] */
	void		(*add) (lg_backend *be, float *y, const float *x, int64_t n);
	/* y[r][c] += b[c] for n rows of d (biases) */
	void		(*add_bias) (lg_backend *be, float *y, const float *b, int64_t n, int64_t d);
};

/*
 * The CPU backend: n_threads workers (<= 0: all online CPUs).  reference
 * selects the scalar reference kernels (tests); otherwise the fastest
 * kernels the CPU supports, chosen once here.
 */
lg_backend *lg_backend_cpu_new(int n_threads, int reference, lg_error *err);
/* Name of the SIMD level the CPU backend picked: "avx512", "avx2", "scalar". */
const char *lg_cpu_simd_level(void);

#endif							/* LG_BACKEND_H */
