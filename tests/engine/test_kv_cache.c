/*
 * test_kv_cache.c — the paged KV cache and batched evaluation.
 *
 * Block accounting runs on a pool made for a model shape only (no weights
 * are needed to count blocks): reserve, release, commit, prefix reuse, LRU
 * eviction order, BUSY leaving a sequence as it was, collisions forced
 * through the hash hook, and n_used + n_cached + n_free == n_blocks after
 * every step.  Correctness runs on real models: stories260K (shared
 * fixture) and, when the llamagpu binary is known (check-engine sets
 * LLAMAGPU_BIN), a `llamagpu synth` model with wider heads.  Several
 * prompts and decode steps evaluated together through lg_context_eval_batch
 * on a shared pool with small interleaved blocks must give the logits each
 * prompt gives alone through lg_context_eval, and a sequence that attaches
 * a cached prefix the logits of one computed from scratch.
 */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "kv_cache.h"
#include "model.h"

/* ---- block accounting ---- */

/* A model of shape only: 2 layers, 2 KV heads of 4 (no weights). */
static void
shape_model(lg_model *m)
{
	memset(m, 0, sizeof(*m));
	m->hp.n_layer = 2;
	m->hp.n_head = 4;
	m->hp.n_head_kv = 2;
	m->hp.head_dim = 4;
}

/* A pool of n_blocks blocks of bs positions (F32), prefix cache on or off. */
static lg_kv_cache *
pool_new(const lg_model *m, int32_t bs, int32_t n_blocks, bool prefix)
{
	lg_kv_cache_params p = {.block_size = bs, .n_blocks = n_blocks, .type = LG_KV_F32,
	.prefix_cache = prefix};
	lg_error	err;
	lg_kv_cache *kv = lg_kv_cache_new(m, &p, &err);

	if (kv == NULL)
		fail_msg("lg_kv_cache_new: %s", err.msg);
	return kv;
}

/* The accounting invariant, and the expected used/cached counts when >= 0. */
static void
check_counts(const lg_kv_cache *kv, int32_t used, int32_t cached)
{
	lg_kv_stats st;

	lg_kv_cache_stats(kv, &st);
	assert_int_equal(st.n_used + st.n_cached + st.n_free, st.n_blocks);
	assert_int_equal(lg_kv_cache_available(kv), st.n_free + st.n_cached);
	if (used >= 0)
		assert_int_equal(st.n_used, used);
	if (cached >= 0)
		assert_int_equal(st.n_cached, cached);
}

/* Reserve n_pos positions for s, which must succeed. */
static void
reserve_ok(lg_kv_cache *kv, lg_kv_seq *s, int32_t n_pos)
{
	lg_error	err;

	if (lg_kv_seq_reserve(kv, s, n_pos, &err) != LG_OK)
		fail_msg("reserve %d: %s", n_pos, err.msg);
}

/* Pretend n tokens were evaluated into s (blocks reserved), then commit. */
static void
fill_commit(lg_kv_cache *kv, lg_kv_seq *s, const lg_token *tokens, int32_t n)
{
	reserve_ok(kv, s, n);
	s->n_pos = n;
	lg_kv_seq_commit(kv, s, tokens);
}

/* Bad parameters are refused with a specific status; sizes come out right. */
static void
test_params(void **state)
{
	lg_model	m;
	lg_error	err;
	lg_kv_cache_params p;
	lg_kv_cache *kv;
	lg_kv_stats st;
	/* 2 layers * (K + V) * 32 positions * 8 values * 2 bytes */
	const size_t bb = 2 * 2 * 32 * 8 * 2;

	shape_model(&m);
	assert_int_equal(lg_kv_block_bytes(&m, 32, LG_KV_F16), bb);
	assert_int_equal(lg_kv_block_bytes(&m, 32, LG_KV_F32), 2 * bb);

	memset(&p, 0, sizeof(p));
	assert_null(lg_kv_cache_new(&m, &p, &err));	/* neither n_blocks nor max_bytes */
	assert_int_equal(err.status, LG_ERR_ARG);
	assert_null(lg_kv_cache_new(&m, NULL, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	p.n_blocks = -1;
	assert_null(lg_kv_cache_new(&m, &p, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	p.n_blocks = 4;
	p.block_size = -3;
	assert_null(lg_kv_cache_new(&m, &p, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	p.block_size = 0;
	p.type = (lg_kv_type) 7;
	assert_null(lg_kv_cache_new(&m, &p, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	p.type = LG_KV_F16;
	p.n_blocks = 0;
	p.max_bytes = (int64_t) bb - 1;	/* less than one block */
	assert_null(lg_kv_cache_new(&m, &p, &err));
	assert_int_equal(err.status, LG_ERR_RANGE);

	/* a budget: as many whole blocks as fit, default block size */
	p.max_bytes = (int64_t) (10 * bb + bb / 2);
	kv = lg_kv_cache_new(&m, &p, &err);
	assert_non_null(kv);
	lg_kv_cache_stats(kv, &st);
	assert_int_equal(st.block_size, LG_KV_BLOCK_SIZE_DEFAULT);
	assert_int_equal(st.n_blocks, 10);
	assert_int_equal(st.n_free, 10);
	assert_int_equal(lg_kv_cache_type(kv), LG_KV_F16);
	assert_true(lg_kv_cache_fits(kv, &m));
	m.hp.n_head_kv = 1;
	assert_false(lg_kv_cache_fits(kv, &m));
	m.hp.n_head_kv = 2;
	m.hp.n_layer = 3;
	assert_false(lg_kv_cache_fits(kv, &m));
	m.hp.n_layer = 2;
	assert_non_null(lg_kv_cache_k(kv, 1));
	assert_null(lg_kv_cache_k(kv, 2));
	assert_null(lg_kv_cache_v(kv, -1));
	lg_kv_cache_free(kv);
}

/* Reserve grows tables block by block; release returns every block. */
static void
test_reserve_release(void **state)
{
	lg_model	m;
	lg_kv_cache *kv;
	lg_kv_seq	a,
				b;
	lg_error	err;

	shape_model(&m);
	kv = pool_new(&m, 4, 8, false);
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&b);
	assert_int_equal(lg_kv_seq_blocks_needed(kv, &a, 0), 0);
	assert_int_equal(lg_kv_seq_blocks_needed(kv, &a, 1), 1);
	assert_int_equal(lg_kv_seq_blocks_needed(kv, &a, 9), 3);
	reserve_ok(kv, &a, 0);
	assert_int_equal(a.n_blocks, 0);
	reserve_ok(kv, &a, 5);
	assert_int_equal(a.n_blocks, 2);
	assert_int_equal(a.n_pos, 0);	/* reserving writes nothing */
	check_counts(kv, 2, 0);
	reserve_ok(kv, &a, 8);			/* already held */
	assert_int_equal(a.n_blocks, 2);
	assert_int_equal(lg_kv_seq_blocks_needed(kv, &a, 9), 1);
	reserve_ok(kv, &b, 13);
	assert_int_equal(b.n_blocks, 4);
	check_counts(kv, 6, 0);
	/* every held block is distinct */
	for (int i = 0; i < a.n_blocks; i++)
		for (int j = 0; j < b.n_blocks; j++)
			assert_int_not_equal(a.blocks[i], b.blocks[j]);
	assert_int_equal(lg_kv_seq_reserve(kv, &a, -1, &err), LG_ERR_ARG);
	lg_kv_seq_release(kv, &a);
	assert_int_equal(a.n_blocks, 0);
	assert_null(a.blocks);
	check_counts(kv, 4, 0);
	lg_kv_seq_release(kv, &b);
	check_counts(kv, 0, 0);
	/* the prefix cache is off: commit and reuse do nothing */
	{
		lg_token	t[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

		fill_commit(kv, &a, t, 9);
		assert_int_equal(a.n_hashed, 0);
		lg_kv_seq_release(kv, &a);
		check_counts(kv, 0, 0);
		assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, t, 9), 0);
		assert_int_equal(b.n_blocks, 0);
	}
	lg_kv_cache_free(kv);
}

/* A pool that cannot supply the blocks: BUSY, and the sequence is as it was. */
static void
test_busy(void **state)
{
	lg_model	m;
	lg_kv_cache *kv;
	lg_kv_seq	a,
				b;
	lg_error	err;
	int32_t		b0;

	shape_model(&m);
	kv = pool_new(&m, 4, 4, true);
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&b);
	reserve_ok(kv, &a, 12);
	reserve_ok(kv, &b, 2);
	b0 = b.blocks[0];
	assert_int_equal(lg_kv_seq_reserve(kv, &b, 9, &err), LG_ERR_BUSY);
	assert_int_equal(b.n_blocks, 1);
	assert_int_equal(b.blocks[0], b0);
	assert_int_equal(lg_kv_cache_available(kv), 0);
	check_counts(kv, 4, 0);
	/* a released hashed block is cached, and cached blocks can be taken */
	{
		lg_token	t[12] = {5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7};

		a.n_pos = 12;
		lg_kv_seq_commit(kv, &a, t);
		assert_int_equal(a.n_hashed, 3);
		lg_kv_seq_release(kv, &a);
		check_counts(kv, 1, 3);
		assert_int_equal(lg_kv_cache_available(kv), 3);
		reserve_ok(kv, &b, 16);
		check_counts(kv, 4, 0);
		assert_int_equal(lg_kv_seq_reserve(kv, &b, 17, &err), LG_ERR_BUSY);
		assert_int_equal(b.n_blocks, 4);
	}
	lg_kv_seq_release(kv, &b);
	check_counts(kv, 0, 0);
	lg_kv_cache_free(kv);
}

/* Commit keys full blocks; reuse attaches whole blocks and leaves a token. */
static void
test_prefix_reuse(void **state)
{
	lg_model	m;
	lg_kv_cache *kv;
	lg_kv_seq	a,
				b;
	lg_kv_stats st;
	lg_token	t[12] = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21};
	lg_token	u[12] = {10, 11, 12, 13, 14, 15, 99, 17, 18, 19, 20, 21};
	int32_t		ablk[3];
	uint64_t	ahash;

	shape_model(&m);
	kv = pool_new(&m, 4, 8, true);
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&b);

	/* 10 tokens: two full blocks hashed, the third (2 tokens) not */
	fill_commit(kv, &a, t, 10);
	assert_int_equal(a.n_hashed, 2);
	assert_true(a.hash != 0);
	memcpy(ablk, a.blocks, sizeof(ablk));
	/* commit is incremental: two more tokens fill block 3 */
	reserve_ok(kv, &a, 12);
	a.n_pos = 12;
	lg_kv_seq_commit(kv, &a, t);
	assert_int_equal(a.n_hashed, 3);
	ahash = a.hash;

	/* while a holds them, b shares them (refcount 2) */
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, t, 12), 8);	/* 11 / 4 = 2 blocks */
	assert_int_equal(b.n_pos, 8);
	assert_int_equal(b.n_hashed, 2);
	assert_int_equal(b.blocks[0], ablk[0]);
	assert_int_equal(b.blocks[1], ablk[1]);
	check_counts(kv, 3, 0);
	lg_kv_seq_release(kv, &a);
	check_counts(kv, 2, 1);			/* a's third block is cached now */
	lg_kv_seq_release(kv, &b);
	check_counts(kv, 0, 3);

	/* exactly one block's worth plus one token: one block */
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, t, 5), 4);
	lg_kv_seq_release(kv, &b);
	/* exactly one block: nothing (its last token must be evaluated) */
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, t, 4), 0);
	lg_kv_seq_release(kv, &b);
	/* a prompt that differs inside block 2: only block 1 */
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, u, 12), 4);
	lg_kv_seq_release(kv, &b);
	/* the whole 12 cached tokens plus one more: all three blocks */
	{
		lg_token	w[13];

		memcpy(w, t, sizeof(t));
		w[12] = 1;
		assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, w, 13), 12);
		assert_int_equal(b.n_hashed, 3);
		assert_true(b.hash == ahash);
		lg_kv_seq_release(kv, &b);
	}
	/* reuse only on an empty sequence */
	reserve_ok(kv, &a, 1);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &a, t, 12), 0);
	lg_kv_seq_release(kv, &a);

	lg_kv_cache_stats(kv, &st);
	/* looked up: 12 + 5 + 4 + 12 + 13 tokens; found 8 + 4 + 0 + 4 + 12 */
	assert_int_equal(st.prefix_lookup_tokens, 46);
	assert_int_equal(st.prefix_hit_tokens, 28);
	assert_int_equal(st.evictions, 0);
	check_counts(kv, 0, 3);
	lg_kv_cache_clear_prefix(kv);
	check_counts(kv, 0, 0);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, t, 12), 0);
	lg_kv_seq_release(kv, &b);
	lg_kv_cache_free(kv);
}

/* Cached blocks are evicted only when the free list is empty, oldest first. */
static void
test_lru(void **state)
{
	lg_model	m;
	lg_kv_cache *kv;
	lg_kv_seq	a,
				b,
				c;
	lg_kv_stats st;
	lg_token	ta[5] = {1, 1, 2, 2, 9};
	lg_token	tb[5] = {3, 3, 4, 4, 9};

	shape_model(&m);
	kv = pool_new(&m, 2, 5, true);
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&b);
	lg_kv_seq_init(&c);

	fill_commit(kv, &a, ta, 4);
	lg_kv_seq_release(kv, &a);
	fill_commit(kv, &b, tb, 4);
	lg_kv_seq_release(kv, &b);
	check_counts(kv, 0, 4);			/* LRU, oldest first: a1 a0 b1 b0; one free */

	/* the free block goes first: nothing evicted */
	reserve_ok(kv, &c, 2);
	lg_kv_cache_stats(kv, &st);
	assert_int_equal(st.evictions, 0);
	check_counts(kv, 1, 4);
	/* then a1, the oldest: a's prefix keeps its first block only */
	reserve_ok(kv, &c, 4);
	lg_kv_cache_stats(kv, &st);
	assert_int_equal(st.evictions, 1);
	check_counts(kv, 2, 3);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &a, ta, 5), 2);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, tb, 5), 4);
	check_counts(kv, 5, 0);
	/* releasing b then a makes the order b1 b0 a0: b1 is next */
	lg_kv_seq_release(kv, &b);
	lg_kv_seq_release(kv, &a);
	reserve_ok(kv, &c, 6);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, tb, 5), 2);
	lg_kv_seq_release(kv, &b);
	/* then b0 would go before a0 if b were not just touched: now a0 is oldest */
	reserve_ok(kv, &c, 8);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &a, ta, 5), 0);
	lg_kv_seq_release(kv, &a);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &b, tb, 5), 2);
	lg_kv_seq_release(kv, &b);
	lg_kv_cache_stats(kv, &st);
	assert_int_equal(st.evictions, 3);
	check_counts(kv, 4, 1);
	lg_kv_seq_release(kv, &c);
	check_counts(kv, 0, 1);
	lg_kv_cache_free(kv);
}

/* Two sequences that computed the same full block end up sharing one copy. */
static void
test_commit_dedup(void **state)
{
	lg_model	m;
	lg_kv_cache *kv;
	lg_kv_seq	a,
				b;
	lg_token	t[9] = {7, 6, 5, 4, 3, 2, 1, 0, 8};

	shape_model(&m);
	kv = pool_new(&m, 4, 8, true);
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&b);
	reserve_ok(kv, &a, 9);
	reserve_ok(kv, &b, 9);
	check_counts(kv, 6, 0);
	a.n_pos = b.n_pos = 9;
	lg_kv_seq_commit(kv, &a, t);
	lg_kv_seq_commit(kv, &b, t);
	assert_int_equal(b.blocks[0], a.blocks[0]);
	assert_int_equal(b.blocks[1], a.blocks[1]);
	assert_int_not_equal(b.blocks[2], a.blocks[2]);	/* partial blocks stay private */
	assert_true(b.hash == a.hash);
	check_counts(kv, 4, 0);
	lg_kv_seq_release(kv, &a);
	check_counts(kv, 3, 0);
	lg_kv_seq_release(kv, &b);
	check_counts(kv, 0, 2);
	lg_kv_cache_free(kv);
}

/* Every block hashes alike: lookups must tell them apart by content. */
static uint64_t
hash_collide(uint64_t parent, const lg_token *tokens, int32_t n)
{
	return 42;
}

/*
 * With every key colliding, a block is found only when its own tokens and
 * its whole prefix match: same second block under a different first block
 * is not shared.
 */
static void
test_collisions(void **state)
{
	lg_model	m;
	lg_kv_cache *kv;
	lg_kv_seq	a,
				e,
				f;
	lg_token	ta[9] = {1, 2, 3, 4, 5, 6, 7, 8, 0};
	lg_token	te[9] = {4, 3, 2, 1, 5, 6, 7, 8, 0};
	lg_token	tx[9] = {9, 9, 9, 9, 5, 6, 7, 8, 0};
	lg_token	ty[9] = {1, 2, 3, 4, 5, 6, 7, 9, 0};
	int32_t		eblk[2];

	shape_model(&m);
	kv = pool_new(&m, 4, 8, true);
	lg_kv_cache_set_hash_fn(kv, hash_collide);
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&e);
	lg_kv_seq_init(&f);
	fill_commit(kv, &a, ta, 8);
	fill_commit(kv, &e, te, 8);
	/* e's second block has a's second block's tokens but another parent: its own */
	assert_int_not_equal(e.blocks[1], a.blocks[1]);
	assert_int_equal(e.n_hashed, 2);
	memcpy(eblk, e.blocks, sizeof(eblk));
	lg_kv_seq_release(kv, &a);
	lg_kv_seq_release(kv, &e);
	check_counts(kv, 0, 4);

	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &f, te, 9), 8);
	assert_int_equal(f.blocks[0], eblk[0]);
	assert_int_equal(f.blocks[1], eblk[1]);
	lg_kv_seq_release(kv, &f);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &f, tx, 9), 0);
	lg_kv_seq_release(kv, &f);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &f, ty, 9), 4);
	lg_kv_seq_release(kv, &f);
	assert_int_equal(lg_kv_seq_reuse_prefix(kv, &f, ta, 9), 8);
	lg_kv_seq_release(kv, &f);
	check_counts(kv, 0, 4);
	lg_kv_cache_free(kv);
}

/* ---- batched evaluation on real models ---- */

#define N_PROMPTS	4
#define N_DECODE	5

/* Largest |x - y| over a row, relative to the row's largest |y|. */
static double
row_diff(const float *x, const float *y, int32_t n)
{
	double		d = 0.0,
				mx = 0.0;

	for (int32_t i = 0; i < n; i++)
	{
		double		e = fabs((double) x[i] - y[i]);

		d = e > d ? e : d;
		mx = fabs(y[i]) > mx ? fabs(y[i]) : mx;
	}
	return mx > 0 ? d / mx : d;
}

/* Deterministic tokens for prompt p (length len) from a vocabulary of nv. */
static void
make_prompt(lg_token *t, int32_t len, int p, int32_t nv)
{
	uint64_t	s = 1000 + (uint64_t) p;

	for (int32_t i = 0; i < len; i++)
	{
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		t[i] = 1 + (lg_token) ((s >> 33) % (uint64_t) (nv - 1));
	}
}

static const int32_t prompt_len[N_PROMPTS] = {7, 13, 30, 21};

/* Contexts of the checks use the scalar reference kernels (else the fastest). */
static bool use_reference;

typedef struct alone_ref
{
	lg_token	tokens[N_PROMPTS][64];	/* prompt then decode tokens */
	float	   *logits;			/* [N_PROMPTS][1 + N_DECODE][n_vocab] */
} alone_ref;

/* Each prompt alone through lg_context_eval, then N_DECODE single tokens. */
static void
eval_alone(const lg_model *m, lg_kv_type kvt, alone_ref *r)
{
	const int32_t nv = m->hp.n_vocab;
	lg_context_params cp;
	lg_error	err;

	lg_context_params_default(&cp);
	cp.n_ctx = 64;
	cp.kv_type = kvt;
	cp.n_threads = 2;
	cp.reference = use_reference;
	r->logits = malloc((size_t) N_PROMPTS * (1 + N_DECODE) * nv * sizeof(float));
	for (int p = 0; p < N_PROMPTS; p++)
	{
		lg_context *c = lg_context_new(m, &cp, &err);
		float	   *out = r->logits + (size_t) p * (1 + N_DECODE) * nv;

		if (c == NULL)
			fail_msg("context: %s", err.msg);
		make_prompt(r->tokens[p], prompt_len[p] + N_DECODE, p, nv);
		if (lg_context_eval(c, r->tokens[p], prompt_len[p], out, false, &err) != LG_OK)
			fail_msg("eval: %s", err.msg);
		for (int s = 0; s < N_DECODE; s++)
			if (lg_context_eval(c, &r->tokens[p][prompt_len[p] + s], 1,
								out + (size_t) (1 + s) * nv, false, &err) != LG_OK)
				fail_msg("eval: %s", err.msg);
		lg_context_free(c);
	}
}

/*
 * The prompts batched on a shared pool of bs-position blocks: prompts 0-2
 * in step 0, prompt 3 joining in step 1 next to the others' first decode
 * token, then decode steps of all four.  Blocks are reserved one at a time
 * round-robin, so each sequence's blocks are interleaved with the others'.
 * Returns the largest relative difference from the alone logits.
 */
static double
eval_batched(const lg_model *m, lg_kv_type kvt, int32_t bs, const alone_ref *r)
{
	const int32_t nv = m->hp.n_vocab;
	lg_kv_cache_params kp = {.block_size = bs, .n_blocks = 4 * (64 / bs + 1), .type = kvt};
	lg_context_params cp;
	lg_error	err;
	lg_kv_cache *kv;
	lg_context *c;
	lg_kv_seq	seq[N_PROMPTS];
	int32_t		done[N_PROMPTS] = {0};	/* tokens evaluated per sequence */
	int32_t		outs[N_PROMPTS] = {0};	/* logits rows compared per sequence */
	float	   *logits = malloc((size_t) N_PROMPTS * nv * sizeof(float));
	double		worst = 0.0;
	bool		interleaved = false;

	kv = lg_kv_cache_new(m, &kp, &err);
	if (kv == NULL)
		fail_msg("kv: %s", err.msg);
	lg_context_params_default(&cp);
	cp.n_ctx = 64;
	cp.n_batch = 128;
	cp.n_threads = 2;
	cp.reference = use_reference;
	cp.kv = kv;
	c = lg_context_new(m, &cp, &err);
	if (c == NULL)
		fail_msg("context: %s", err.msg);
	assert_int_equal(lg_context_n_batch(c), 128);
	for (int p = 0; p < N_PROMPTS; p++)
		lg_kv_seq_init(&seq[p]);

	for (int step = 0; step < 2 + N_DECODE; step++)
	{
		lg_batch_seq b[N_PROMPTS];
		int			nb = 0;
		int			who[N_PROMPTS];
		int32_t		want[N_PROMPTS];
		bool		more = true;

		/* who runs this step, with how many tokens */
		for (int p = 0; p < N_PROMPTS; p++)
		{
			int32_t		n;

			if (p == 3 && step == 0)
				continue;
			n = done[p] == 0 ? prompt_len[p] : 1;
			if (done[p] + n > prompt_len[p] + N_DECODE)
				continue;
			who[nb] = p;
			want[nb] = done[p] + n;
			b[nb] = (lg_batch_seq) {.kv = &seq[p], .tokens = r->tokens[p] + done[p],
			.n_tokens = n, .want_logits = true};
			nb++;
		}
		if (nb == 0)
			break;
		/* one block at a time, round-robin: interleaved block ids */
		while (more)
		{
			more = false;
			for (int i = 0; i < nb; i++)
				if (lg_kv_seq_blocks_needed(kv, &seq[who[i]], want[i]) > 0)
				{
					reserve_ok(kv, &seq[who[i]], (seq[who[i]].n_blocks + 1) * bs);
					more = true;
				}
		}
		if (lg_context_eval_batch(c, b, nb, logits, &err) != LG_OK)
			fail_msg("eval_batch: %s", err.msg);
		for (int i = 0; i < nb; i++)
		{
			const int	p = who[i];
			const float *ref = r->logits + ((size_t) p * (1 + N_DECODE) + outs[p]) * nv;
			double		e = row_diff(logits + (size_t) i * nv, ref, nv);

			worst = e > worst ? e : worst;
			done[p] += b[i].n_tokens;
			outs[p]++;
			assert_int_equal(seq[p].n_pos, done[p]);
			for (int32_t j = 1; j < seq[p].n_blocks; j++)
				if (seq[p].blocks[j] != seq[p].blocks[j - 1] + 1)
					interleaved = true;
		}
	}
	for (int p = 0; p < N_PROMPTS; p++)
	{
		assert_int_equal(outs[p], 1 + N_DECODE);
		lg_kv_seq_release(kv, &seq[p]);
	}
	assert_true(interleaved || bs >= 64);
	check_counts(kv, 0, 0);
	lg_context_free(c);
	lg_kv_cache_free(kv);
	free(logits);
	return worst;
}

/*
 * Prefix reuse: prompt 2 (30 tokens) is evaluated and committed; then a
 * sequence whose prompt shares its first 17 tokens attaches the cached
 * blocks and evaluates the rest, and one with the whole prompt attaches
 * all but the last token.  Both must give the logits computed from
 * scratch.  Returns the largest relative difference.
 */
static double
eval_prefix(const lg_model *m, lg_kv_type kvt, int32_t bs, const alone_ref *r)
{
	const int32_t nv = m->hp.n_vocab;
	lg_kv_cache_params kp = {.block_size = bs, .n_blocks = 64, .type = kvt, .prefix_cache = true};
	lg_context_params cp;
	lg_error	err;
	lg_kv_cache *kv;
	lg_context *c,
			   *solo;
	lg_kv_seq	a,
				b;
	lg_token	tb[40];
	float	   *la = malloc((size_t) nv * sizeof(float));
	float	   *lb = malloc((size_t) nv * sizeof(float));
	const int32_t n = prompt_len[2];
	int32_t		got;
	double		worst = 0.0;
	lg_batch_seq bq;

	kv = lg_kv_cache_new(m, &kp, &err);
	assert_non_null(kv);
	lg_context_params_default(&cp);
	cp.n_ctx = 64;
	cp.n_threads = 2;
	cp.reference = use_reference;
	cp.kv_type = kvt;
	solo = lg_context_new(m, &cp, &err);
	assert_non_null(solo);
	cp.kv = kv;
	c = lg_context_new(m, &cp, &err);
	assert_non_null(c);
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&b);

	/* a: the whole prompt, committed, released: its full blocks stay cached */
	reserve_ok(kv, &a, n);
	bq = (lg_batch_seq) {.kv = &a, .tokens = r->tokens[2], .n_tokens = n, .want_logits = true};
	if (lg_context_eval_batch(c, &bq, 1, la, &err) != LG_OK)
		fail_msg("eval_batch: %s", err.msg);
	lg_kv_seq_commit(kv, &a, r->tokens[2]);
	assert_int_equal(a.n_hashed, n / bs);
	lg_kv_seq_release(kv, &a);

	/* b: 17 shared tokens then its own */
	memcpy(tb, r->tokens[2], 17 * sizeof(lg_token));
	make_prompt(tb + 17, 23, 9, nv);
	got = lg_kv_seq_reuse_prefix(kv, &b, tb, 40);
	assert_int_equal(got, 17 / bs * bs);
	assert_true(got > 0);
	reserve_ok(kv, &b, 40);
	bq = (lg_batch_seq) {.kv = &b, .tokens = tb + got, .n_tokens = 40 - got, .want_logits = true};
	if (lg_context_eval_batch(c, &bq, 1, lb, &err) != LG_OK)
		fail_msg("eval_batch: %s", err.msg);
	lg_kv_seq_commit(kv, &b, tb);
	if (lg_context_eval(solo, tb, 40, la, false, &err) != LG_OK)
		fail_msg("eval: %s", err.msg);
	worst = fmax(worst, row_diff(lb, la, nv));
	lg_kv_seq_release(kv, &b);

	/* the same prompt again: everything but its last token comes from the cache */
	got = lg_kv_seq_reuse_prefix(kv, &b, r->tokens[2], n);
	assert_int_equal(got, (n - 1) / bs * bs);
	reserve_ok(kv, &b, n);
	bq = (lg_batch_seq) {.kv = &b, .tokens = r->tokens[2] + got, .n_tokens = n - got, .want_logits = true};
	if (lg_context_eval_batch(c, &bq, 1, lb, &err) != LG_OK)
		fail_msg("eval_batch: %s", err.msg);
	worst = fmax(worst, row_diff(lb, r->logits + (size_t) 2 * (1 + N_DECODE) * nv, nv));
	lg_kv_seq_release(kv, &b);
	{
		lg_kv_stats st;

		lg_kv_cache_stats(kv, &st);
		assert_int_equal(st.prefix_lookup_tokens, 40 + n);
		assert_int_equal(st.prefix_hit_tokens, 17 / bs * bs + (n - 1) / bs * bs);
	}
	check_counts(kv, 0, -1);
	lg_context_free(c);
	lg_context_free(solo);
	lg_kv_cache_free(kv);
	free(la);
	free(lb);
	return worst;
}

/* Bad batches are refused with specific errors, and nothing advances. */
static void
check_batch_errors(const lg_model *m)
{
	lg_kv_cache_params kp = {.block_size = 4, .n_blocks = 8};
	lg_context_params cp;
	lg_error	err;
	lg_kv_cache *kv = lg_kv_cache_new(m, &kp, &err);
	lg_context *c,
			   *solo;
	lg_kv_seq	a,
				b;
	lg_token	t[6] = {1, 2, 3, 4, 5, 6};
	lg_batch_seq bq[2];
	lg_model	other;

	assert_non_null(kv);
	lg_context_params_default(&cp);
	cp.n_ctx = 16;
	cp.n_batch = 8;
	cp.n_threads = 1;
	solo = lg_context_new(m, &cp, &err);
	assert_non_null(solo);
	cp.kv = kv;
	c = lg_context_new(m, &cp, &err);
	assert_non_null(c);
	/* a pool of another shape */
	shape_model(&other);
	{
		lg_kv_cache *kv2 = pool_new(&other, 4, 2, false);

		cp.kv = kv2;
		assert_null(lg_context_new(m, &cp, &err));
		assert_int_equal(err.status, LG_ERR_ARG);
		lg_kv_cache_free(kv2);
	}
	lg_kv_seq_init(&a);
	lg_kv_seq_init(&b);
	reserve_ok(kv, &a, 4);
	reserve_ok(kv, &b, 16);

	bq[0] = (lg_batch_seq) {.kv = &a, .tokens = t, .n_tokens = 5};
	assert_int_equal(lg_context_eval_batch(c, bq, 1, NULL, &err), LG_ERR_ARG);	/* 5 > reserved 4 */
	bq[0].n_tokens = 4;
	bq[1] = (lg_batch_seq) {.kv = &b, .tokens = t, .n_tokens = 6};
	assert_int_equal(lg_context_eval_batch(c, bq, 2, NULL, &err), LG_ERR_RANGE);	/* 10 > n_batch */
	bq[1].n_tokens = 4;
	bq[1].kv = &a;
	assert_int_equal(lg_context_eval_batch(c, bq, 2, NULL, &err), LG_ERR_ARG);	/* a twice */
	bq[1].kv = &b;
	t[5] = m->hp.n_vocab;
	bq[1].n_tokens = 6;
	bq[0].n_tokens = 2;
	assert_int_equal(lg_context_eval_batch(c, bq, 2, NULL, &err), LG_ERR_RANGE);	/* bad id */
	t[5] = 6;
	bq[1].n_tokens = 0;
	assert_int_equal(lg_context_eval_batch(c, bq, 2, NULL, &err), LG_ERR_ARG);
	assert_int_equal(lg_context_eval_batch(c, bq, 0, NULL, &err), LG_ERR_ARG);
	assert_int_equal(a.n_pos, 0);
	assert_int_equal(b.n_pos, 0);
	/* past n_ctx (16) */
	b.n_pos = 12;
	bq[1].n_tokens = 5;
	bq[0].n_tokens = 1;
	assert_int_equal(lg_context_eval_batch(c, bq, 2, NULL, &err), LG_ERR_RANGE);
	b.n_pos = 0;
	/* the two kinds of context do not mix */
	assert_int_equal(lg_context_eval_batch(solo, bq, 1, NULL, &err), LG_ERR_ARG);
	assert_int_equal(lg_context_eval(c, t, 2, NULL, false, &err), LG_ERR_ARG);
	/* a good one advances both */
	bq[1].n_tokens = 3;
	assert_int_equal(lg_context_eval_batch(c, bq, 2, NULL, &err), LG_OK);
	assert_int_equal(a.n_pos, 1);
	assert_int_equal(b.n_pos, 3);
	lg_kv_seq_release(kv, &a);
	lg_kv_seq_release(kv, &b);
	lg_context_free(c);
	lg_context_free(solo);
	lg_kv_cache_free(kv);
}

/*
 * All checks on one model: batched vs alone for F32 and F16 caches, block
 * sizes 4, 16 and 64, with the reference kernels and with the fastest;
 * prefix reuse; the error cases.
 *
 * The logits must be bit-identical every time (docs/batching.md):
 * attention's chunks and tiles are cut by position, whatever the batch or
 * the block layout, and every matrix kernel sums a (row, token) as the
 * one-token kernel does, so neither the batch, nor where the blocks lie,
 * nor a reused prefix moves a single bit, quantized weights included.
 */
static void
check_model(const char *path, const char *label)
{
	static const int32_t block_sizes[] = {4, 16, 64};
	lg_error	err;
	lg_model   *m = lg_model_load(path, &err);

	if (m == NULL)
		fail_msg("load %s: %s", path, err.msg);
	for (int ref = 1; ref >= 0; ref--)
		for (int kt = 0; kt < 2; kt++)
		{
			const lg_kv_type kvt = kt == 0 ? LG_KV_F32 : LG_KV_F16;
			alone_ref	r;

			use_reference = ref;
			memset(&r, 0, sizeof(r));
			eval_alone(m, kvt, &r);
			for (int i = 0; i < 3; i++)
			{
				const int32_t bs = block_sizes[i];
				double		e = eval_batched(m, kvt, bs, &r);
				/* a 64-position block holds none of the 30-token prompt's prefix */
				double		ep = bs < 64 ? eval_prefix(m, kvt, bs, &r) : 0.0;

				printf("%s %s kv %s block %2d: batched vs alone max rel diff %.3g, prefix reuse %.3g\n",
					   label, ref ? "reference" : "fast", kt == 0 ? "f32" : "f16", bs, e, ep);
				assert_true(e == 0.0);
				assert_true(ep == 0.0);
			}
			free(r.logits);
		}
	use_reference = false;
	check_batch_errors(m);
	lg_model_free(m);
}

/* stories260K, the shared real model (8 heads of 8, 4 KV heads). */
static void
test_batch_stories(void **state)
{
	char		buf[4096];
	const char *path = lg_test_fixture(buf, "fixtures/models/stories260K.gguf");

	if (path == NULL)
		skip();
	check_model(path, "stories260K");
}

/* A synthetic llama with 64-wide heads and GQA 4/2, Q8_0 weights. */
static void
test_batch_synth(void **state)
{
	const char *bin = getenv("LLAMAGPU_BIN");
	char		path[64];
	char		cmd[1024];
	int			fd;

	if (bin == NULL || access(bin, X_OK) != 0)
	{
		printf("SKIP: set LLAMAGPU_BIN to the llamagpu binary to test a synth model\n");
		skip();
	}
	snprintf(path, sizeof(path), "/tmp/lg_test_kv_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd),
			 "'%s' synth --arch llama --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 "
			 "--vocab-bytes --type q8_0 --seed 5 --ctx 256 -o '%s' >/dev/null 2>&1", bin, path);
	if (system(cmd) != 0)
	{
		unlink(path);
		fail_msg("synth failed: %s", cmd);
	}
	check_model(path, "synth");
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_reserve_release),
		cmocka_unit_test(test_busy),
		cmocka_unit_test(test_prefix_reuse),
		cmocka_unit_test(test_lru),
		cmocka_unit_test(test_commit_dedup),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_batch_stories),
		cmocka_unit_test(test_batch_synth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
