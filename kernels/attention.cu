/*
 * attention.cu — the attention entry: checks the call, plans the decode
 * splits, and picks the kernel.
 *
 * A call whose host bound max_n_tok is 1 is a batch of decode steps and
 * goes to the split-K decode kernel (attention_decode.cu); any other call,
 * prompts or prompts mixed with decode steps, to the flash-style kernel
 * (attention_prompt.cu), which takes any number of queries per sequence.
 *
 * The decode split plan depends on (n_seqs, head blocks, max_kv_len) only,
 * never on the lengths in the device seqs array, so a captured launch stays
 * valid as the sequences grow (up to the bound; past it the last split
 * takes the rest, right but slower).  lg_gpu_attention_scratch_floats does
 * not know n_kv_heads: it returns a bound on every plan under its bounds.
 */
#include "common.cuh"
#include "attention.cuh"

/* Head blocks of the decode grid: per KV head, its group in blocks of up to 8 query heads. */
static int64_t
lg_attn_head_blocks(int32_t n_heads, int32_t n_kv_heads)
{
	const int32_t group = n_heads / n_kv_heads;
	const int32_t hpb = lg_attn_dec_heads(group);

	return (int64_t) n_kv_heads * ((group + hpb - 1) / hpb);
}

/* Floats of split partials for a plan: [n_seqs][n_splits][n_heads][2 + head_dim]. */
static size_t
lg_attn_part_floats(int32_t n_seqs, lg_attn_split_plan plan, int32_t n_heads, int32_t head_dim)
{
	if (plan.n_splits <= 1)
		return 0;
	return (size_t) n_seqs * (size_t) plan.n_splits * (size_t) n_heads * (size_t) (head_dim + 2);
}

/*
 * Scratch for these bounds: enough for the decode partials of any call
 * with at most n_seqs sequences of at most max_kv_len positions, whatever
 * its n_kv_heads and max_n_tok (prompt calls need none, but one buffer sized
 * here serves every call under the bounds, so it can be allocated once and
 * captured into graphs).  A split plan has n_splits <= ceil(264 / base) with
 * base >= n_seqs, and n_splits <= ceil(max_kv_len / 128), so
 * n_seqs * n_splits <= min(n_seqs + 263, n_seqs * ceil(max_kv_len / 128)):
 * monotone in both bounds.  0 when no plan can split (max_kv_len <= 128).
 */
size_t
lg_gpu_attention_scratch_floats(int32_t n_seqs, int32_t max_n_tok, int32_t max_kv_len,
								int32_t n_heads, int32_t head_dim)
{
	int64_t		tiles;
	int64_t		units;

	if (n_seqs <= 0 || max_n_tok <= 0 || max_kv_len <= 0 || n_heads <= 0 || head_dim <= 0)
		return 0;
	tiles = lg_ceil_div(max_kv_len, LG_ATTN_SPLIT_MIN);
	if (tiles <= 1)
		return 0;
	units = (int64_t) n_seqs * tiles;
	if (units > (int64_t) n_seqs + LG_ATTN_TARGET_BLOCKS - 1)
		units = (int64_t) n_seqs + LG_ATTN_TARGET_BLOCKS - 1;
	return (size_t) units * (size_t) n_heads * (size_t) (head_dim + 2);
}

/* Causal or bidirectional attention of every sequence of the call; see lg_kernels.h. */
lg_gpu_status
lg_gpu_attention(lg_gpu_stream s, const lg_gpu_attn_args *a)
{
	cudaStream_t st = (cudaStream_t) s;
	lg_attn_params p;
	lg_gpu_status rc;

	if (a == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: no arguments");
	if (a->n_seqs < 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: n_seqs %d is negative", (int) a->n_seqs);
	if (a->n_seqs == 0)
		return LG_GPU_OK;
	if (a->n_seqs > 65535)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: n_seqs %d exceeds 65535 per call",
								(int) a->n_seqs);
	if (a->head_dim <= 0 || a->head_dim > 256)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: head_dim %d is not in 1..256",
								(int) a->head_dim);
	if (a->n_heads <= 0 || a->n_kv_heads <= 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: n_heads %d and n_kv_heads %d must be positive",
								(int) a->n_heads, (int) a->n_kv_heads);
	if (a->n_heads % a->n_kv_heads != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: n_heads %d is not a multiple of n_kv_heads %d",
								(int) a->n_heads, (int) a->n_kv_heads);
	if (a->kv_type != LG_GPU_KV_F16 && a->kv_type != LG_GPU_KV_F32)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: kv_type %d is neither F16 (0) nor F32 (1)",
								a->kv_type);
	if (a->block_size <= 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: block_size %d must be positive",
								(int) a->block_size);
	if (a->max_n_tok <= 0 || a->max_kv_len <= 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG,
								"attention: the bounds max_n_tok %d and max_kv_len %d must be positive",
								(int) a->max_n_tok, (int) a->max_kv_len);
	if (a->out == NULL || a->q == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: out or q is NULL");
	if (a->k_pool == NULL || a->v_pool == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: k_pool or v_pool is NULL");
	if (a->seqs == NULL || a->block_tables == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: seqs or block_tables is NULL");
	/* the kernels read pool rows 16 (decode) and 8 bytes (pairs) at a time */
	if ((uintptr_t) a->k_pool % 16 != 0 || (uintptr_t) a->v_pool % 16 != 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "attention: k_pool and v_pool must be 16-byte aligned");

	p.out = a->out;
	p.q = a->q;
	p.k_pool = a->k_pool;
	p.v_pool = a->v_pool;
	p.seqs = a->seqs;
	p.block_tables = a->block_tables;
	p.scratch = NULL;
	p.block_size = a->block_size;
	p.n_heads = a->n_heads;
	p.n_kv_heads = a->n_kv_heads;
	p.head_dim = a->head_dim;
	p.scale = a->scale;
	p.split_len = 0;
	p.n_splits = 1;
	p.bidirectional = a->bidirectional;

	if (a->max_n_tok == 1)
	{
		const lg_attn_split_plan plan =
			lg_attn_plan_splits((int64_t) a->n_seqs * lg_attn_head_blocks(a->n_heads, a->n_kv_heads),
								a->max_kv_len);

		p.split_len = plan.split_len;
		p.n_splits = plan.n_splits;
		if (plan.n_splits > 1)
		{
			if (a->scratch == NULL)
				return lg_gpu_set_error(LG_GPU_ERR_ARG,
										"attention: scratch is NULL but %d sequences of up to %d positions need %zu floats of split partials",
										(int) a->n_seqs, (int) a->max_kv_len,
										lg_attn_part_floats(a->n_seqs, plan, a->n_heads, a->head_dim));
			p.scratch = a->scratch;
		}
		rc = lg_attn_launch_decode(st, p, a->kv_type, a->n_seqs);
	}
	else
		rc = lg_attn_launch_prompt(st, p, a->kv_type, a->n_seqs, a->max_n_tok);
	if (rc != LG_GPU_OK)
		return rc;
	return lg_gpu_check_launch("attention");
}
