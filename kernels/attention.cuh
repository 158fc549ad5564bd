/*
 * attention.cuh — what the two attention kernels share: the call's
 * parameters as the kernels see them, reading K/V rows from the paged pool,
 * and the split plan of the decode kernel (which lg_gpu_attention and
 * lg_gpu_attention_scratch_floats must agree on).
 *
 * The pool: position p of a sequence is pool row
 *   block_tables[bt_off + p / block_size] * block_size + p % block_size,
 * and a pool row holds n_kv_heads * head_dim values (F16 bits or F32), KV
 * head g's slice at g * head_dim.  Query head h reads KV head h / group
 * (group = n_heads / n_kv_heads), as the CPU backend (ops_cpu_attn.c).
 */
#ifndef LG_ATTENTION_CUH
#define LG_ATTENTION_CUH

#include "common.cuh"

/* Decode: threads per block; also the positions of one tile (one each). */
#define LG_ATTN_DEC_THREADS	128
/* Decode: query heads of one KV head's group that one block handles at most. */
#define LG_ATTN_DEC_HEADS	8
/*
 * Decode: positions a split covers at least (a multiple of the tile): one
 * tile, so a short context with few sequences is cut into one-tile splits
 * and its latency is that of one tile, not of a chain of them.
 */
#define LG_ATTN_SPLIT_MIN	128
/*
 * Decode: blocks the split-K grid aims at, about two per multiprocessor of
 * an H100 (132).  A constant, not the device's count, so that the scratch
 * size and the grid depend on the call's bounds only.
 */
#define LG_ATTN_TARGET_BLOCKS 264

/* Prompt (flash) kernel: threads per block, as 16 row groups of 16 lanes. */
#define LG_ATTN_FA_THREADS	256

/* The call, as both kernels read it (passed by value). */
typedef struct lg_attn_params
{
	float	   *out;
	const float *q;
	const void *k_pool;
	const void *v_pool;
	const lg_gpu_attn_seq *seqs;
	const int32_t *block_tables;
	float	   *scratch;		/* decode partials, NULL when unsplit */
	int32_t		block_size;
	int32_t		n_heads;
	int32_t		n_kv_heads;
	int32_t		head_dim;
	float		scale;
	int32_t		split_len;		/* decode: positions per split */
	int32_t		n_splits;		/* decode: splits in the grid */
	bool		bidirectional;	/* every query sees all kv_len positions (encoders) */
} lg_attn_params;

/* Positions 0 .. end-1 that the query at position qpos of sq may see (exclusive end). */
static __device__ __forceinline__ int
lg_attn_kv_end(const lg_attn_params &a, const lg_gpu_attn_seq &sq, int qpos)
{
	return a.bidirectional ? sq.kv_len : min(qpos + 1, sq.kv_len);
}

/* The decode split plan for a host bound: how many splits of how many positions. */
typedef struct lg_attn_split_plan
{
	int32_t		n_splits;
	int32_t		split_len;
} lg_attn_split_plan;

/*
 * Split plan for `base` blocks per split (sequences x head blocks) and
 * max_kv_len positions at most: enough splits to reach the target block
 * count, none shorter than LG_ATTN_SPLIT_MIN, lengths a multiple of the
 * decode tile.  n_splits <= ceil(LG_ATTN_TARGET_BLOCKS / base) and
 * <= ceil(max_kv_len / LG_ATTN_SPLIT_MIN): the scratch bound relies on both.
 */
static inline lg_attn_split_plan
lg_attn_plan_splits(int64_t base, int64_t max_kv_len)
{
	lg_attn_split_plan p;
	int64_t		want = lg_ceil_div(LG_ATTN_TARGET_BLOCKS, base < 1 ? 1 : base);
	int64_t		by_len = lg_ceil_div(max_kv_len < 1 ? 1 : max_kv_len, LG_ATTN_SPLIT_MIN);
	int64_t		n = want < by_len ? want : by_len;
	int64_t		len;

	if (n < 1)
		n = 1;
	len = lg_ceil_div(lg_ceil_div(max_kv_len < 1 ? 1 : max_kv_len, n), LG_ATTN_DEC_THREADS) *
		LG_ATTN_DEC_THREADS;
	p.split_len = (int32_t) len;
	p.n_splits = (int32_t) lg_ceil_div(max_kv_len < 1 ? 1 : max_kv_len, len);
	return p;
}

/* Query heads one decode block takes: all of a small group, else 8 of it. */
static inline int32_t
lg_attn_dec_heads(int32_t group)
{
	return group < LG_ATTN_DEC_HEADS ? group : LG_ATTN_DEC_HEADS;
}

/* Element offset of position p's row of KV head kvh in the pool. */
static __device__ __forceinline__ int64_t
lg_attn_kv_offset(const lg_attn_params &a, int32_t bt_off, int32_t p, int32_t kvh)
{
	const int64_t blk = a.block_tables[bt_off + p / a.block_size];
	const int64_t prow = blk * a.block_size + p % a.block_size;

	return prow * ((int64_t) a.n_kv_heads * a.head_dim) + (int64_t) kvh * a.head_dim;
}

/* One pool value as float: F16 bits or F32. */
static __device__ __forceinline__ float
lg_attn_ld1(const uint16_t *pool, int64_t off)
{
	return lg_h2f(pool[off]);
}

static __device__ __forceinline__ float
lg_attn_ld1(const float *pool, int64_t off)
{
	return pool[off];
}

/* Two adjacent pool values (off even, so the pair is 4- or 8-byte aligned). */
static __device__ __forceinline__ void
lg_attn_ld2(const uint16_t *pool, int64_t off, float &a, float &b)
{
	const uint32_t u = *(const uint32_t *) (pool + off);

	a = lg_h2f((uint16_t) (u & 0xffffu));
	b = lg_h2f((uint16_t) (u >> 16));
}

static __device__ __forceinline__ void
lg_attn_ld2(const float *pool, int64_t off, float &a, float &b)
{
	const float2 v = *(const float2 *) (pool + off);

	a = v.x;
	b = v.y;
}

/*
 * A query value as the CPU dots it: with an F16 cache, q is rounded to f16
 * first (ggml's flash-attention path); with an F32 cache it is kept.
 */
static __device__ __forceinline__ float
lg_attn_qval(const uint16_t *, float x)
{
	return lg_h2f(lg_f2h(x));
}

static __device__ __forceinline__ float
lg_attn_qval(const float *, float x)
{
	return x;
}

/* Launchers (attention_decode.cu, attention_prompt.cu); the entry has checked a. */
lg_gpu_status lg_attn_launch_decode(cudaStream_t st, const lg_attn_params &p, int kv_type,
									int32_t n_seqs);
lg_gpu_status lg_attn_launch_prompt(cudaStream_t st, const lg_attn_params &p, int kv_type,
									int32_t n_seqs, int32_t max_n_tok);
/* The tensor-core prompt kernel, or LG_GPU_ERR_UNSUPPORTED (no message) where it does not apply. */
lg_gpu_status lg_attn_launch_prompt_tc(cudaStream_t st, const lg_attn_params &p, int kv_type,
									   int32_t n_seqs, int32_t max_n_tok);

#endif							/* LG_ATTENTION_CUH */
