/*
 * lg_kernels.h — the C interface of the GPU kernels in kernels/.
 *
 * Everything here is callable from plain C (the engine's backend_gpu.c);
 * the definitions are CUDA C++ in kernels/<op>.cu, built by nvcc, or by
 * hipcc through gpu_compat.cuh.  Each operation follows one pattern:
 *
 *   __global__ kernel  ->  launcher (static, takes a stream)  ->  entry
 *
 * The entry (declared below) checks types and shapes, launches on the given
 * stream, and returns a status.  It never aborts and never synchronises: a
 * launch error or a CUDA error is returned as LG_GPU_ERR_DEVICE and its text
 * kept in lg_gpu_last_error() (per host thread).
 *
 * Unless a parameter says "host", every pointer is device memory.
 * Activations are row-major float32: a matrix of n rows of d values is n*d
 * contiguous floats.  Weights keep GGUF's block layouts (lg_types.h): a
 * weight of type t with k values per row and m rows is m rows of
 * lg_row_size(t, k) bytes, y = x · wᵀ.
 */
#ifndef LG_KERNELS_H
#define LG_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "lg_types.h"

#ifdef __cplusplus
extern "C"
{
#endif

typedef enum lg_gpu_status
{
	LG_GPU_OK = 0,
	LG_GPU_ERR_ARG,				/* a type, shape or pointer the entry does not accept */
	LG_GPU_ERR_UNSUPPORTED,		/* valid, but this build has no kernel for it */
	LG_GPU_ERR_NOMEM,			/* device (or pinned host) memory exhausted */
	LG_GPU_ERR_DEVICE,			/* a CUDA/HIP error: launch failure, lost device, ... */
	LG_GPU_ERR_NODEVICE			/* no usable GPU (or no driver) */
} lg_gpu_status;

/* Opaque handles: cudaStream_t / hipStream_t, and our BLAS state. */
typedef struct lg_gpu_stream_s *lg_gpu_stream;
typedef struct lg_gpu_blas_s *lg_gpu_blas;

/* Text of the last error an entry returned on this host thread ("" if none). */
const char *lg_gpu_last_error(void);
/* "cuda" or "hip": what these kernels were built for. */
const char *lg_gpu_platform(void);

/* ---- runtime (runtime.cu) ---------------------------------------------- */

typedef struct lg_gpu_device_info
{
	char		name[128];
	int			major, minor;	/* compute capability (CUDA) or gfx major/minor */
	char		arch[32];		/* "sm_90", "gfx90a" */
	size_t		total_mem;
	size_t		free_mem;
	int			n_sm;			/* multiprocessors / compute units */
	int			driver_version; /* cudaDriverGetVersion */
	int			runtime_version;
} lg_gpu_device_info;

/* Devices visible (0 with LG_GPU_OK when the driver reports none). */
lg_gpu_status lg_gpu_device_count(int *n);
lg_gpu_status lg_gpu_device_info_get(int device, lg_gpu_device_info *out);
/* Make device current for the calling host thread. */
lg_gpu_status lg_gpu_set_device(int device);

lg_gpu_status lg_gpu_stream_create(lg_gpu_stream *s);
void		lg_gpu_stream_destroy(lg_gpu_stream s);
lg_gpu_status lg_gpu_stream_sync(lg_gpu_stream s);

/*
 * Device memory.  On failure LG_GPU_ERR_NOMEM with a message that says how
 * many bytes were asked for and how many are free.
 */
lg_gpu_status lg_gpu_malloc(void **p, size_t bytes);
void		lg_gpu_free(void *p);
/* Page-locked host memory, for copies that graphs can replay. */
lg_gpu_status lg_gpu_host_alloc(void **p, size_t bytes);
void		lg_gpu_host_free(void *p);

lg_gpu_status lg_gpu_memset_async(void *dst, int value, size_t bytes, lg_gpu_stream s);
lg_gpu_status lg_gpu_copy_h2d(void *dst, const void *host_src, size_t bytes, lg_gpu_stream s);	/* async */
lg_gpu_status lg_gpu_copy_d2h(void *host_dst, const void *src, size_t bytes, lg_gpu_stream s);	/* async */
lg_gpu_status lg_gpu_copy_d2d(void *dst, const void *src, size_t bytes, lg_gpu_stream s);		/* async */

/* Timing with events: elapsed milliseconds of what runs on s between start and stop. */
typedef struct lg_gpu_event_s *lg_gpu_event;
lg_gpu_status lg_gpu_event_create(lg_gpu_event *e);
void		lg_gpu_event_destroy(lg_gpu_event e);
lg_gpu_status lg_gpu_event_record(lg_gpu_event e, lg_gpu_stream s);
lg_gpu_status lg_gpu_event_elapsed_ms(lg_gpu_event start, lg_gpu_event stop, float *ms);

/*
 * Device-to-device copy bandwidth in bytes/second (read + write counted
 * once each, as bandwidthTest does: 2 * bytes / time), measured with a
 * buffer of `bytes` copied `iters` times.  The decode bandwidth limit is
 * bytes read per token ÷ this.
 */
lg_gpu_status lg_gpu_measure_d2d_bandwidth(size_t bytes, int iters, double *bytes_per_s);

/* ---- CUDA graphs (graph.cu) -------------------------------------------- */

/*
 * A cached executable graph, updated in place when the next capture has the
 * same topology (cudaGraphExecUpdate), re-instantiated when it does not.
 */
typedef struct lg_gpu_graph_s *lg_gpu_graph;
/* Start capturing what is launched on s (relaxed mode). */
lg_gpu_status lg_gpu_graph_begin(lg_gpu_stream s);
/*
 * End the capture on s and launch it: *g is created on first use and
 * updated after.  *updated tells whether an update (not an instantiate) did it.
 */
lg_gpu_status lg_gpu_graph_end_launch(lg_gpu_graph *g, lg_gpu_stream s, bool *updated);
void		lg_gpu_graph_destroy(lg_gpu_graph g);

/* ---- operations -------------------------------------------------------- */

/* y[i][0..d) = row ids[i] of emb (type, d values per row, n_rows rows), dequantized. */
lg_gpu_status lg_gpu_get_rows(lg_gpu_stream s, float *y, const void *emb, lg_type type,
							  int64_t d, int64_t n_rows, const int32_t *ids, int64_t n);

/* y[n][d] = x / sqrt(mean(x²) + eps) * w   (y may equal x) */
lg_gpu_status lg_gpu_rmsnorm(lg_gpu_stream s, float *y, const float *x, const float *w,
							 int64_t n, int64_t d, float eps);
/*
 * The same, written as F16 (type LG_TYPE_F16) or BF16: the input of a
 * cuBLAS/own-GEMM product, so prompt processing does not make a second pass
 * to convert.  y_half[n][d].
 */
lg_gpu_status lg_gpu_rmsnorm_half(lg_gpu_stream s, void *y_half, lg_type half_type,
								  const float *x, const float *w, int64_t n, int64_t d, float eps);

typedef struct lg_gpu_rope_params
{
	int			style;			/* 0: adjacent pairs (llama); 2: NeoX halves */
	int32_t		n_rot;
	float		freq_base;
	float		freq_scale;
	const float *freq_factors;	/* device, n_rot/2 divisors, or NULL */
	float		ext_factor;		/* YaRN; 0 = off */
	float		attn_factor;
	float		beta_fast;
	float		beta_slow;
	int32_t		n_ctx_orig;
} lg_gpu_rope_params;

/* In place on x[n][n_heads*head_dim]; row i at position pos[i] (device). */
lg_gpu_status lg_gpu_rope(lg_gpu_stream s, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
						  const int32_t *pos, const lg_gpu_rope_params *rp /* host */ );

/* g[i] = silu(g[i]) * u[i], i < n */
lg_gpu_status lg_gpu_swiglu(lg_gpu_stream s, float *g, const float *u, int64_t n);
/* y[i] += x[i], i < n */
lg_gpu_status lg_gpu_add(lg_gpu_stream s, float *y, const float *x, int64_t n);
/* y[r][c] += b[c], n rows of d */
lg_gpu_status lg_gpu_add_bias(lg_gpu_stream s, float *y, const float *b, int64_t n, int64_t d);

/*
 * Encoders (bert).  y[n][d] = (x - mean(x)) / sqrt(var(x) + eps) * w + b
 * per row, as lg_cpu_layernorm (w, b may be NULL: 1 and 0; y may equal x).
 */
lg_gpu_status lg_gpu_layernorm(lg_gpu_stream s, float *y, const float *x, const float *w, const float *b,
							   int64_t n, int64_t d, float eps);
/* x[i] = gelu(x[i]), tanh approximation (ggml_gelu), i < n */
lg_gpu_status lg_gpu_gelu(lg_gpu_stream s, float *x, int64_t n);

/* Which KV element type a pool holds: 0 F16, 1 F32 (as lg_kv_type). */
#define LG_GPU_KV_F16 0
#define LG_GPU_KV_F32 1

/*
 * Paged KV store: row i of x[n][d] goes to pool row slots[i] (device;
 * slot = block * block_size + offset), converted to the pool's type.
 */
lg_gpu_status lg_gpu_kv_store(lg_gpu_stream s, void *pool, int kv_type, const int32_t *slots,
							  const float *x, int64_t n, int64_t d);

/*
 * One sequence of an attention call (device array).  Its queries are rows
 * q_row0 .. q_row0+n_tok-1 of q (and out), at positions pos0 .. ; it
 * attends causally to its positions 0 .. kv_len-1 (kv_len = pos0 + n_tok),
 * found through block_tables[bt_off + p / block_size].  In a bidirectional
 * call (encoders) every query attends to all of 0 .. kv_len-1 and pos0 is
 * not used (a pruned encoder step has fewer queries than positions).
 */
typedef struct lg_gpu_attn_seq
{
	int32_t		q_row0;
	int32_t		n_tok;
	int32_t		pos0;
	int32_t		kv_len;
	int32_t		bt_off;
	int32_t		pad_;
} lg_gpu_attn_seq;

typedef struct lg_gpu_attn_args
{
	float	   *out;			/* [rows][n_heads*head_dim] */
	const float *q;				/* [rows][n_heads*head_dim], RoPE applied */
	const void *k_pool;			/* [n_blocks][block_size][n_kv_heads*head_dim] */
	const void *v_pool;
	int			kv_type;		/* LG_GPU_KV_F16 / LG_GPU_KV_F32 */
	const lg_gpu_attn_seq *seqs;	/* device [n_seqs] */
	int32_t		n_seqs;
	const int32_t *block_tables;	/* device, packed */
	int32_t		block_size;
	int32_t		n_heads;
	int32_t		n_kv_heads;
	int32_t		head_dim;		/* 64, 80, 96, 112, 128 or 256 have fast paths; any <= 256 works */
	float		scale;
	/* host-side bounds over the seqs, to size the grid (may exceed the truth) */
	int32_t		max_n_tok;
	int32_t		max_kv_len;
	float	   *scratch;		/* lg_gpu_attention_scratch_floats() floats, or NULL if it says 0 */
	bool		bidirectional;	/* encoders: no causal mask (see lg_gpu_attn_seq) */
} lg_gpu_attn_args;

/* Scratch the attention needs for these bounds (split-K partials). */
size_t		lg_gpu_attention_scratch_floats(int32_t n_seqs, int32_t max_n_tok, int32_t max_kv_len,
											int32_t n_heads, int32_t head_dim);
/*
 * Causal (or, with bidirectional, unmasked) softmax attention of every
 * sequence: decode-shaped sequences
 * (n_tok == 1) through a paged split-K kernel, longer ones through a tiled
 * flash-style kernel; both read K/V straight from the pool.
 */
lg_gpu_status lg_gpu_attention(lg_gpu_stream s, const lg_gpu_attn_args *a /* host */ );

/* BLAS state for big GEMMs: cuBLAS under CUDA; under HIP a stub (own kernels). */
lg_gpu_status lg_gpu_blas_create(lg_gpu_blas *b, lg_gpu_stream s);
void		lg_gpu_blas_destroy(lg_gpu_blas b);

/* Types lg_gpu_matmul and lg_gpu_get_rows accept. */
bool		lg_gpu_type_supported(lg_type type);

/*
 * y[n][m] = x[n][k] · wᵀ, w of type `type`, m rows of k values.  Small n
 * (decode) runs a matrix-vector kernel per type that reads each weight once
 * for up to 8 rows of x (n <= 32: once per group of 8 rows); with blas not
 * NULL and n >= 32, cuBLAS on F16/BF16/F32 weights and, for quantized
 * weights, on a dequantized F16 copy in scratch; otherwise (HIP, no handle)
 * an own tiled GEMM that dequantizes in shared memory.  y must not overlap
 * x.  scratch: lg_gpu_matmul_scratch_bytes() bytes (may be NULL when that
 * is 0), 16-byte aligned.
 */
size_t		lg_gpu_matmul_scratch_bytes(lg_type type, int64_t k, int64_t m, int64_t n);
lg_gpu_status lg_gpu_matmul(lg_gpu_stream s, lg_gpu_blas blas, float *y, const void *w, lg_type type,
							int64_t k, int64_t m, const float *x, int64_t n,
							void *scratch, size_t scratch_bytes);

/*
 * The same with x already in half precision, as lg_gpu_rmsnorm_half writes
 * it: x_type must be lg_gpu_matmul_half_type(type) (BF16 for BF16 weights,
 * F16 for all others), x_half[n][k].  Saves cuBLAS's conversion pass in
 * prompt processing.  Without cuBLAS (or below 32 rows) it runs the tiled
 * GEMM, correct but not fast for small n: pass float x to lg_gpu_matmul for
 * decode.  Same scratch as lg_gpu_matmul.
 */
lg_type		lg_gpu_matmul_half_type(lg_type type);
lg_gpu_status lg_gpu_matmul_half(lg_gpu_stream s, lg_gpu_blas blas, float *y, const void *w, lg_type type,
								 int64_t k, int64_t m, const void *x_half, lg_type x_type, int64_t n,
								 void *scratch, size_t scratch_bytes);

/* Dequantize n_rows rows of k values to F16 (dst [n_rows][k]). */
lg_gpu_status lg_gpu_dequantize_f16(lg_gpu_stream s, void *dst, const void *w, lg_type type,
									int64_t k, int64_t n_rows);

/*
 * Sampling on the device, per row of logits[n][n_vocab]: with the CPU
 * sampler's order (top-k, top-p, min-p, temperature, draw); temperature 0
 * is argmax (lowest id on a tie).  u is the row's uniform draw in [0, 1)
 * from the host RNG, so a seed reproduces.  ids[n] (device) gets the tokens.
 */
typedef struct lg_gpu_sample_params
{
	float		temperature;
	int32_t		top_k;			/* 0 = off */
	float		top_p;			/* 1 = off */
	float		min_p;			/* 0 = off */
	float		u;
	int32_t		pad_;
} lg_gpu_sample_params;

size_t		lg_gpu_sample_scratch_bytes(int64_t n, int64_t n_vocab);
lg_gpu_status lg_gpu_sample(lg_gpu_stream s, int32_t *ids, const float *logits, int64_t n, int64_t n_vocab,
							const lg_gpu_sample_params *p /* device [n] */ ,
							void *scratch, size_t scratch_bytes);

#ifdef __cplusplus
}
#endif

#endif							/* LG_KERNELS_H */
