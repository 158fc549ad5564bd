/*
 * backend_cpu_impl.h — internals shared by the CPU backend's files: the
 * kernel table picked once at start-up, and the backend's state.
 *
 * Kernels live in kernels_*_avx2.c / kernels_*_avx512.c (compiled with those
 * instruction sets) and backend_cpu_scalar.c (plain C); backend_cpu.c picks
 * one table after asking the CPU what it supports.
 */
#ifndef LG_BACKEND_CPU_IMPL_H
#define LG_BACKEND_CPU_IMPL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "lg_types.h"
#include "threadpool.h"

/*
 * Dot product of n values: w is a row of weights, x a row of activations
 * already converted to the weight type's vec_dot_type.
 */
typedef void (*lg_dot_fn) (int64_t n, float *s, const void *w, const void *x);

/*
 * One weight row against nc (1..LG_DOTN_MAX) activation rows x_stride bytes
 * apart: s[c] = w · x_c.  Decodes the weight row once for all of them.
 */
#define LG_DOTN_MAX 4
typedef void (*lg_dotn_fn) (int64_t n, int nc, float *s, const void *w,
							const void *x, size_t x_stride);

/*
 * nr (1..LG_DOTR_MAX) weight rows w_stride bytes apart against one
 * activation row: s[r] = w_r · x.  The matrix-vector (generation) kernel:
 * the rows share the activation loads and stream from memory together.
 */
#define LG_DOTR_MAX 4
typedef void (*lg_dotr_fn) (int64_t n, int nr, float *s, const void *w,
							size_t w_stride, const void *x);

/*
 * nr (1..LG_DOTR_MAX) weight rows against nc (1..LG_DOTN_MAX) activation
 * rows: s[r * LG_DOTN_MAX + c] = w_r · x_c.  The register-blocked kernel
 * of prompt processing: each weight block decoded once for all tokens,
 * each activation block loaded once for all rows.
 */
typedef void (*lg_dotrn_fn) (int64_t n, int nr, int nc, float *s, const void *w,
							 size_t w_stride, const void *x, size_t x_stride);

/*
 * "q8p", a planar form of q8_0 activations some fast kernels take instead
 * of q8_0 blocks: the same quants and scales (bit for bit what
 * lg_quantize_row gives), laid out for SIMD, plus a per-block integer term
 * c = bias * Σq that folds a weight type's fixed offset (q4_0's -8, q5_0's
 * -16) into the integer dot:
 *
 *   int8  qs[cols]   | float d[cols/32] | int32 c[cols/32]
 */
static inline size_t
lg_q8p_row_size(int64_t cols)
{
	return (size_t) cols + 8 * (size_t) (cols / LG_QK);
}

/* Fill a q8p row from floats (cols a multiple of 32); bias as above. */
void		lg_q8p_prep(const float *x, void *dst, int64_t cols, int bias);
#ifndef LG_NO_X86_SIMD
/* The same, AVX2 (and bit-identical). */
void		lg_q8p_prep_avx2(const float *x, void *dst, int64_t cols, int bias);
/* A q8_K row, bit for bit lg_quantize_row's (AVX-512; cols a multiple of 256). */
void		lg_q8K_prep_avx512(const float *x, void *dst, int64_t cols);
#endif

/* f16 → f32 for every half: a broadcast from here beats F16C in the dot loops. */
extern float lg_f16_table[1 << 16];
/* Fill lg_f16_table; backend_cpu.c calls it once. */
void		lg_f16_table_init(void);

typedef void (*lg_prep_fn) (const float *x, void *dst, int64_t cols);
/* Bytes of one activation row in a prep's form (or weight row in an unpack's). */
typedef size_t (*lg_prep_size_fn) (int64_t cols);

/*
 * Decode nr weight rows of n values, w_stride bytes apart, into dst in a
 * form of the table's own, rows unpack_size(n) bytes apart.  Prompt
 * processing does it once per tile of rows, then runs dotrn_u on that form
 * for every group of tokens instead of decoding the rows again each time.
 */
typedef void (*lg_unpack_fn) (int64_t n, int nr, const void *w, size_t w_stride, void *dst);

/*
 * Large-M GEMM (kernels_gemm_avx512.c): from LG_GEMM_MIN_N activation rows
 * the matmul packs them in blocks of LG_GEMM_TOKS (gemm_xpack,
 * gemm_xpack_size bytes a block) and hands tiles of LG_GEMM_ROWS weight
 * rows × one block to gemm_tile, with gemm_scratch_size bytes of scratch
 * per thread (rows_packed: the thread's previous tile of this matmul had
 * the same rows, whose converted form is still in the scratch).  Each output is bit for bit the dotr/dotrn kernels' sum.
 */
#define LG_GEMM_ROWS	64
#define LG_GEMM_TOKS	48
#define LG_GEMM_MIN_N	48
typedef void (*lg_gemm_xpack_fn) (int64_t cols, int nt, const void *x, size_t xs, void *dst);
typedef void (*lg_gemm_tile_fn) (int64_t cols, int nr, int nt, const void *w, size_t ws,
								 bool rows_packed, const void *xp, float *y, int64_t y_stride,
								 void *scratch);

typedef struct lg_cpu_kernels
{
	const char *name;			/* "avx512", "avx2", "scalar", "reference" */
	bool		reference;		/* use lg_vec_dot_ref for every weight type */

	lg_dot_fn	dot[LG_TYPE_COUNT];	/* NULL: lg_vec_dot_ref */
	lg_dotn_fn	dotn[LG_TYPE_COUNT];	/* NULL: loop over dot */
	lg_dotr_fn	dotr[LG_TYPE_COUNT];	/* NULL: one row at a time with dot */
	lg_dotrn_fn dotrn[LG_TYPE_COUNT];	/* NULL: one row at a time with dotn */
	/*
	 * non-NULL: every dot of this type takes activations in a form of the
	 * table's own (q8p for q4_0/q8_0, f16-rounded f32 for f16 at avx512),
	 * made by prep, prep_size bytes a row
	 */
	lg_prep_fn	prep[LG_TYPE_COUNT];
	lg_prep_size_fn prep_size[LG_TYPE_COUNT];
	/* non-NULL: dotrn_u takes weight rows unpack made (see lg_unpack_fn) */
	lg_unpack_fn unpack[LG_TYPE_COUNT];
	lg_prep_size_fn unpack_size[LG_TYPE_COUNT];
	lg_dotrn_fn dotrn_u[LG_TYPE_COUNT];
	/* non-NULL: large-M GEMM of this type (see lg_gemm_tile_fn) */
	lg_gemm_xpack_fn gemm_xpack[LG_TYPE_COUNT];
	lg_prep_size_fn gemm_xpack_size[LG_TYPE_COUNT];
	lg_gemm_tile_fn gemm_tile[LG_TYPE_COUNT];
	lg_prep_size_fn gemm_scratch_size[LG_TYPE_COUNT];

	/* float helpers of attention and the conversions */
	void		(*f32_to_f16) (const float *x, lg_f16 *y, int64_t n);
	void		(*f16_to_f32) (const lg_f16 *x, float *y, int64_t n);
	/* y[i] += a * x[i] */
	void		(*axpy_f32) (int64_t n, float *y, const float *x, float a);
	void		(*axpy_f16) (int64_t n, float *y, const lg_f16 *x, float a);
	/* y[i] *= a */
	void		(*scale_f32) (int64_t n, float *y, float a);
	/* x[i] = exp(x[i] - max); returns the sum of the new x[i] */
	float		(*exp_sum) (int64_t n, float *x, float max);
	/* g[i] = silu(g[i]) * u[i] */
	void		(*swiglu) (int64_t n, float *g, const float *u);
	/* x[i] = gelu(x[i]), tanh form: x * sigmoid(2 * sqrt(2/pi) * (x + 0.044715 x³)) */
	void		(*gelu) (int64_t n, float *x);

	/*
	 * Attention inner loops over nc cache rows of d floats, ks/vs floats
	 * apart: s[c] = (q · K[c]) * scale, and acc += Σ_c p[c] * V[c].
	 */
	void		(*attn_scores) (int64_t nc, int32_t d, const float *K, int64_t ks,
								const float *q, float scale, float *s);
	void		(*attn_accum) (int64_t nc, int32_t d, const float *V, int64_t vs,
							   const float *p, float *acc);
	/* s[j] = (q · Kt[.][j]) * scale for j < n, K transposed: Kt[i][j] at kt[i * n + j] (encoders) */
	void		(*attn_scores_t) (int64_t n, int32_t d, const float *kt, const float *q, float scale, float *s);
	/* non-NULL: attn_scores_t and attn_accum of four queries at once, the same to the bit */
	void		(*attn_scores_t4) (int64_t n, int32_t d, const float *kt, const float *const q[4],
								   float scale, float *const s[4]);
	void		(*attn_accum4) (int64_t nc, int32_t d, const float *V, int64_t vs,
								const float *const p[4], float *const acc[4]);
	/* dst[c][0..d) = src[c*ss ..] for nc f16 rows: a tile of the F16 cache */
	void		(*attn_tile_f16) (int64_t nc, int32_t d, const lg_f16 *src, int64_t ss, float *dst);
} lg_cpu_kernels;

/* Fill k with the kernels of each level. */
void		lg_cpu_kernels_scalar(lg_cpu_kernels *k);
void		lg_cpu_kernels_reference(lg_cpu_kernels *k);
#ifndef LG_NO_X86_SIMD
void		lg_cpu_kernels_avx2(lg_cpu_kernels *k);
void		lg_cpu_kernels_attn_avx2(lg_cpu_kernels *k);
void		lg_cpu_kernels_avx512(lg_cpu_kernels *k, bool has_bf16);
void		lg_cpu_kernels_mv_avx512(lg_cpu_kernels *k);
void		lg_cpu_kernels_gemm_avx512(lg_cpu_kernels *k);
void		lg_cpu_kernels_attn_avx512(lg_cpu_kernels *k);
void		lg_cpu_kernels_mvk_avx512(lg_cpu_kernels *k);
#endif

/*
 * Attention's per-thread workspace, allocated with the backend: an item's
 * queries and accumulators for every head, its scores, one tile of K and
 * of V rows in f32, and a chunk's partial and the running fold of every
 * head (see ops_cpu_attn.c).  It bounds n_heads × head_dim at about
 * LG_ATTN_WS_FLOATS / 4 (a 64-head × 128 model still gets 12-row tiles).
 */
#define LG_ATTN_WS_FLOATS	65536
#define LG_ATTN_WS_BYTES	(LG_ATTN_WS_FLOATS * sizeof(float))

/* The backend's state (lg_backend.ctx). */
typedef struct lg_cpu_ctx
{
	lg_threadpool *tp;
	int			n_threads;
	lg_cpu_kernels k;

	/* activations converted to a vec_dot_type; grown, never shrunk */
	void	   *wbuf;
	size_t		wbuf_size;
	/* n_threads slices of unpacked weight rows (lg_unpack_fn); grown */
	void	   *ubuf;
	size_t		ubuf_size;
	/* activations packed for the large-M GEMM (lg_gemm_xpack_fn); grown */
	void	   *gbuf;
	size_t		gbuf_size;

	/* n_threads attention workspaces of LG_ATTN_WS_BYTES */
	float	   *attn_ws;
	/* split-KV partial results (M, S, acc per head and chunk); grown */
	float	   *attn_part;
	size_t		attn_part_floats;
	/* attention's per-sequence plans (ops_cpu_attn.c); grown */
	void	   *attn_seqs;
	int32_t		attn_seqs_cap;
} lg_cpu_ctx;

/*
 * A CPU backend with the kernels of one level: "avx512", "avx2", "scalar",
 * "reference", or NULL for the best.  Fails if the CPU lacks the level.
 */
lg_backend *lg_backend_cpu_new_level(int n_threads, const char *level, lg_error *err);
/* Name of the kernel level a CPU backend uses. */
const char *lg_backend_cpu_kernels(lg_backend *be);

/* Operations implemented outside backend_cpu.c. */
lg_status	lg_cpu_matmul(lg_backend *be, float *y, const lg_tensor *w, const float *x, int64_t n);
lg_status	lg_cpu_get_rows(lg_backend *be, float *y, const lg_tensor *emb, const int32_t *ids, int64_t n);
void		lg_cpu_rmsnorm(lg_backend *be, float *y, const float *x, const float *w,
						   int64_t n, int64_t d, float eps);
void		lg_cpu_rope(lg_backend *be, float *x, int64_t n, int32_t n_heads, int32_t head_dim,
						const int32_t *pos, const lg_rope_params *rp);
void		lg_cpu_kv_store(lg_backend *be, void *cache, lg_kv_type kv_type,
							const int32_t *block_table, int32_t block_size, int64_t pos0,
							const float *x, int64_t n, int64_t d);
void		lg_cpu_kv_store_slots(lg_backend *be, void *cache, lg_kv_type kv_type,
								  const int32_t *slots, const float *x, int64_t n, int64_t d);
void		lg_cpu_attention(lg_backend *be, const lg_attn_args *a, int32_t n_seqs);
size_t		lg_cpu_attn_scratch_floats(lg_backend *be, int64_t n_tok, int64_t kv_len, int32_t n_heads);
void		lg_cpu_swiglu(lg_backend *be, float *g, const float *u, int64_t n, int64_t d);
void		lg_cpu_add(lg_backend *be, float *y, const float *x, int64_t n);
void		lg_cpu_add_bias(lg_backend *be, float *y, const float *b, int64_t n, int64_t d);
/* ops_cpu_bert.c: the encoders' LayerNorm and GELU */
void		lg_cpu_layernorm(lg_backend *be, float *y, const float *x, const float *w, const float *b,
							 int64_t n, int64_t d, float eps);
void		lg_cpu_gelu(lg_backend *be, float *x, int64_t n, int64_t d);
void		lg_cpu_gather_rows(lg_backend *be, float *y, const float *x, const int32_t *rows,
							   int64_t n, int64_t d);
/* Attention of encoders (every a[i].bidirectional); false: not done, use the general kernel. */
bool		lg_cpu_attention_bidir(lg_backend *be, const lg_attn_args *a, int32_t n_seqs);

/* RoPE's YaRN correction range, as ggml_rope_yarn_corr_dims computes it. */
void		lg_rope_yarn_corr_dims(int n_dims, int n_ctx_orig, float freq_base,
								   float beta_fast, float beta_slow, float dims[2]);

static inline lg_cpu_ctx *
lg_cpu_ctx_of(lg_backend *be)
{
	return (lg_cpu_ctx *) be->ctx;
}

#endif							/* LG_BACKEND_CPU_IMPL_H */
