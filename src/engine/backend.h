/*
 * backend.h — the table of operations a compute backend provides.
 *
 * The forward passes (forward_*.c) call only these entries, so a backend
 * (CPU now, CUDA/HIP later) is swapped by filling the same table.  All
 * activations are row-major float32 matrices: a matrix of n rows of length d
 * is n*d contiguous floats.  Weights are lg_tensor views, usually straight
 * into the mmapped GGUF file.  Like ggml, a weight tensor of shape
 * ne = {in, out} holds `out` rows of `in` values each.
 *
 * Memory (version 3).  A backend whose buf_alloc is NULL computes on host
 * memory: activations and KV pools are malloc'd and weights are used where
 * they lie.  A GPU backend sets buf_alloc and friends: the context and the
 * KV cache then allocate their buffers through it (device memory), the
 * model's weights are copied to the device once by map_weights, and the
 * ops translate a weight pointer (host, inside a mapped region) to its
 * device copy.  Small host arrays the ops take (token ids, positions, slots,
 * block tables, attention arguments, gathered row numbers) stay host
 * memory; between step_begin and step_end they must not change, so a
 * device backend uploads each once per step however many layers use it.
 */
#ifndef LG_BACKEND_H
#define LG_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "lg_error.h"
#include "lg_types.h"

#define LG_BACKEND_VERSION 3

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
	int64_t		kv_len;			/* pos0 + n_tok (bidirectional: the whole sequence, which
								 * an encoder's pruned last layer queries only in part) */
	int32_t		n_heads;
	int32_t		n_kv_heads;		/* n_heads is a multiple: grouped-query attention */
	int32_t		head_dim;
	float		scale;			/* usually 1/sqrt(head_dim) */
	float	   *scratch;		/* see lg_backend.attn_scratch_floats */
	/*
	 * encoders: every query sees all kv_len positions, not just those up
	 * to its own (a backend without the entry below ignores it, so the
	 * forward pass checks layernorm first)
	 */
	bool		bidirectional;
} lg_attn_args;

typedef struct lg_backend lg_backend;

/* What a forward step is, for step_begin. */
typedef struct lg_step_info
{
	int32_t		n_rows;			/* tokens in the batch */
	int32_t		n_seqs;
	bool		decode;			/* every sequence has one row: a device may replay a graph */
} lg_step_info;

/*
 * One row's sampling parameters for the device sampler (lg_backend.sample):
 * the subset of lg_sampler_params it implements, and the row's uniform draw
 * in [0, 1) from the host sampler's RNG.
 */
typedef struct lg_device_sample
{
	float		temperature;	/* 0: argmax */
	int32_t		top_k;			/* 0: off */
	float		top_p;			/* 1: off */
	float		min_p;			/* 0: off */
	float		u;
} lg_device_sample;

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
	 * causal (with a[].bidirectional: unmasked) softmax attention of
	 * n_seqs sequences (a[0..n_seqs), each with its own queries, output,
	 * positions and block table; see lg_attn_args), computed together so
	 * short ones share the threads
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

	/* ---- version 3 ---- */

	/*
	 * Row i of x[n][d] to pool row slots[i] (converting to kv_type): the
	 * K or V of a whole batch in one call (slot = block * block_size +
	 * position % block_size, as vLLM's slot mapping).
	 */
	void		(*kv_store_slots) (lg_backend *be, void *cache, lg_kv_type kv_type,
								   const int32_t *slots, const float *x, int64_t n, int64_t d);

	/*
	 * Backend memory; all NULL for host memory.  buf_alloc returns zeroed
	 * memory or NULL with err set (for a device: how much was asked and how
	 * much is free).  buf_read copies to the host, waiting for the work
	 * queued before it.
	 */
	void	   *(*buf_alloc) (lg_backend *be, size_t bytes, lg_error *err);
	void		(*buf_free) (lg_backend *be, void *p);
	lg_status	(*buf_read) (lg_backend *be, void *host_dst, const void *src, size_t bytes, lg_error *err);
	lg_status	(*buf_write) (lg_backend *be, void *dst, const void *host_src, size_t bytes, lg_error *err);

	/*
	 * Make the weights in host [base, base + bytes) usable by the ops (a
	 * device uploads them once; a second map of the same base only counts
	 * a reference); unmap_weights drops a reference.  NULL: nothing to do.
	 */
	lg_status	(*map_weights) (lg_backend *be, const void *base, size_t bytes, lg_error *err);
	void		(*unmap_weights) (lg_backend *be, const void *base);

	/*
	 * Bracket one forward step.  A failed operation between them (the void
	 * ones included) is reported by step_end, also with discard (the step
	 * stopped midway: an error or a cancellation), which need not run what
	 * a device recorded.  NULL: nothing to do.
	 */
	lg_status	(*step_begin) (lg_backend *be, const lg_step_info *info, lg_error *err);
	lg_status	(*step_end) (lg_backend *be, bool discard, lg_error *err);

	/*
	 * Device sampling: ids[i] (host) = a token drawn from row i of
	 * logits[n][n_vocab] (backend memory) with p[i] (host).  Called after
	 * step_end.  NULL: the host samples.
	 */
	lg_status	(*sample) (lg_backend *be, int32_t *ids, const float *logits, int64_t n, int64_t n_vocab,
						   const lg_device_sample *p, lg_error *err);

	/*
	 * Encoders (bert).  NULL in a backend that cannot run them; one that
	 * sets them also honours lg_attn_args.bidirectional.
	 */
	/* y[n][d] = (x - mean(x)) / sqrt(var(x) + eps) * w + b   (y may equal x) */
	void		(*layernorm) (lg_backend *be, float *y, const float *x, const float *w, const float *b,
							  int64_t n, int64_t d, float eps);
	/* x = gelu(x) over n rows of d values, tanh approximation (ggml_gelu), row by row */
	void		(*gelu) (lg_backend *be, float *x, int64_t n, int64_t d);
	/*
	 * y[i] = x[rows[i]] for n rows of d values (rows: host, each < the
	 * rows of x; y must not overlap x): an encoder's last layer keeps the
	 * rows pooling wants, and its output is gathered to the caller's rows
	 */
	void		(*gather_rows) (lg_backend *be, float *y, const float *x, const int32_t *rows,
								int64_t n, int64_t d);
};

/*
 * Helpers over the version-3 entries that fall back to host memory when a
 * backend leaves them NULL.
 */
void	   *lg_backend_alloc(lg_backend *be, size_t bytes, lg_error *err);
void		lg_backend_buf_free(lg_backend *be, void *p);
lg_status	lg_backend_read(lg_backend *be, void *host_dst, const void *src, size_t bytes, lg_error *err);
lg_status	lg_backend_write(lg_backend *be, void *dst, const void *host_src, size_t bytes, lg_error *err);
/* Whether the backend computes on host memory (buf_alloc NULL). */
bool		lg_backend_is_host(const lg_backend *be);

/*
 * Open a backend by name: "cpu"; "cuda:N" or "hip:N" ("gpu:N" for either,
 * N defaults to 0); "auto" or NULL/"" (the first GPU when this build has
 * GPU support and a device is present, else the CPU).  n_threads is for the
 * CPU backend.  A GPU name in a build without GPU support, or a device
 * number past the last device, is an error saying so.
 */
lg_backend *lg_backend_open(const char *device, int n_threads, lg_error *err);
/* Whether this build has a GPU backend, and its platform ("cuda", "hip"; NULL when none). */
const char *lg_backend_gpu_platform(void);

#ifdef LG_HAVE_GPU
/* The GPU backend on device number `device` (backend_gpu.c). */
lg_backend *lg_backend_gpu_new(int device, lg_error *err);
/* Visible GPUs (0 when none or no driver). */
int			lg_backend_gpu_count(void);
#endif

/*
 * The CPU backend: n_threads workers (<= 0: all online CPUs).  reference
 * selects the scalar reference kernels (tests); otherwise the fastest
 * kernels the CPU supports, chosen once here.
 */
lg_backend *lg_backend_cpu_new(int n_threads, int reference, lg_error *err);
/* Name of the SIMD level the CPU backend picked: "avx512", "avx2", "scalar". */
const char *lg_cpu_simd_level(void);

#endif							/* LG_BACKEND_H */
