/*
 * kv_cache.c — the paged KV cache: a pool of fixed-size blocks, reference
 * counts, the free list, and the prefix cache (hash table + LRU list of
 * unreferenced full blocks).  See kv_cache.h for the model.
 *
 * Every block is in exactly one of three states:
 *
 *   used    ref > 0 (a sequence's table holds it); hashed or not
 *   cached  ref == 0, hashed: on the LRU list, findable by its key
 *   free    ref == 0, not hashed: on the free list
 *
 * so n_used + n_cached + n_free == n_blocks at every step.
 *
 * A hashed block's key is (its tokens, its parent): the parent is the block
 * holding the previous block_size tokens, named by id and generation (a
 * block's generation changes whenever it leaves the hash table).  A lookup
 * compares the stored tokens and the parent identity, never only the hash,
 * so by induction a match holds exactly the same prefix: a 64-bit hash
 * collision costs a longer chain walk, never wrong K/V.  The chained hash
 * of the tokens only picks the bucket.
 */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "model.h"

#define NO_BLOCK	(-1)

struct lg_kv_cache
{
	int32_t		block_size;
	int32_t		n_blocks;
	int32_t		n_layer;
	int64_t		kv_dim;			/* values per position and layer: n_head_kv * head_dim */
	lg_kv_type	type;
	bool		prefix_cache;
	void	  **k;				/* [n_layer] -> [n_blocks][block_size][kv_dim] */
	void	  **v;
	void	   *pool;			/* the one allocation k and v point into */
	lg_backend *be;				/* whose memory pool is; NULL: host */

	int32_t    *ref;			/* [n_blocks] sequences holding the block */
	int32_t    *free_list;		/* stack of free block ids */
	int32_t		n_free;
	int32_t		n_used;

	/* prefix cache: per block key, hash chain and LRU links */
	bool	   *hashed;			/* [n_blocks] in the hash table */
	uint64_t   *hash;			/* [n_blocks] chain hash of the prefix up to the block's end */
	int32_t    *parent;			/* [n_blocks] previous block of the prefix, NO_BLOCK for the first */
	uint32_t   *parent_gen;		/* [n_blocks] gen[parent] when the block was hashed */
	uint32_t   *gen;			/* [n_blocks] bumped when the block leaves the table */
	lg_token   *tokens;			/* [n_blocks][block_size] tokens of hashed blocks */
	int32_t    *chain;			/* [n_blocks] next block in the same bucket */
	int32_t    *buckets;		/* [n_buckets] first block of each bucket */
	uint32_t	bucket_mask;
	int32_t    *lru_prev;		/* [n_blocks] cached blocks, head = least recently used */
	int32_t    *lru_next;
	int32_t		lru_head;
	int32_t		lru_tail;
	int32_t		n_cached;

	lg_kv_hash_fn hash_fn;
	int64_t		lookup_tokens;
	int64_t		hit_tokens;
	int64_t		evictions;
};

/* xxHash64's primes and round: fast, and every input bit reaches every output bit. */
#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL

/* Rotate left. */
static inline uint64_t
rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/*
 * The default key hash: the parent's chain hash, then each token, through
 * xxHash64-style rounds and its final avalanche.
 */
static uint64_t
kv_hash_default(uint64_t parent, const lg_token *tokens, int32_t n)
{
	uint64_t	h = parent ^ P3 ^ ((uint64_t) n * P1);

	for (int32_t i = 0; i < n; i++)
	{
		uint64_t	k = (uint64_t) (uint32_t) tokens[i] * P2;

		h ^= rotl64(k, 31) * P1;
		h = rotl64(h, 27) * P1 + P3;
	}
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

size_t
lg_kv_block_bytes(const struct lg_model *m, int32_t block_size, lg_kv_type type)
{
	size_t		elt = type == LG_KV_F32 ? sizeof(float) : sizeof(lg_f16);

	return 2 * (size_t) m->hp.n_layer * (size_t) block_size *
		(size_t) m->hp.n_head_kv * (size_t) m->hp.head_dim * elt;
}

/* calloc that tolerates n == 0 and records failure in *ok. */
static void *
kv_calloc(size_t n, size_t size, bool *ok)
{
	void	   *p = calloc(n ? n : 1, size);

	if (p == NULL)
		*ok = false;
	return p;
}

lg_kv_cache *
lg_kv_cache_new(const struct lg_model *m, const lg_kv_cache_params *p, lg_error *err)
{
	lg_kv_cache *kv;
	int32_t		bs;
	int64_t		n_blocks;
	size_t		block_bytes;
	size_t		layer_bytes;
	uint32_t	n_buckets = 1;
	bool		ok = true;

	if (p == NULL)
	{
		lg_error_set(err, LG_ERR_ARG, "KV cache parameters are required");
		return NULL;
	}
	bs = p->block_size > 0 ? p->block_size : LG_KV_BLOCK_SIZE_DEFAULT;
	if (p->block_size < 0 || p->block_size > 65536 || p->n_blocks < 0 || p->max_bytes < 0 ||
		(p->type != LG_KV_F16 && p->type != LG_KV_F32))
	{
		lg_error_set(err, LG_ERR_ARG, "invalid KV cache parameters (block_size %d, n_blocks %d, type %d)",
					 p->block_size, p->n_blocks, (int) p->type);
		return NULL;
	}
	block_bytes = lg_kv_block_bytes(m, bs, p->type);
	n_blocks = p->n_blocks;
	if (n_blocks == 0)
	{
		if (p->max_bytes == 0)
		{
			lg_error_set(err, LG_ERR_ARG, "a KV cache needs n_blocks or max_bytes");
			return NULL;
		}
		n_blocks = p->max_bytes / (int64_t) block_bytes;
		if (n_blocks > INT32_MAX / 2)
			n_blocks = INT32_MAX / 2;
		if (n_blocks < 1)
		{
			lg_error_set(err, LG_ERR_RANGE, "a KV budget of %lld bytes holds no block of %zu bytes",
						 (long long) p->max_bytes, block_bytes);
			return NULL;
		}
	}
	if (n_blocks > INT32_MAX / bs)
	{
		lg_error_set(err, LG_ERR_RANGE, "%lld blocks of %d positions are too many",
					 (long long) n_blocks, bs);
		return NULL;
	}

	kv = calloc(1, sizeof(lg_kv_cache));
	if (kv == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	kv->block_size = bs;
	kv->n_blocks = (int32_t) n_blocks;
	kv->n_layer = m->hp.n_layer;
	kv->kv_dim = (int64_t) m->hp.n_head_kv * m->hp.head_dim;
	kv->type = p->type;
	kv->prefix_cache = p->prefix_cache;
	kv->hash_fn = kv_hash_default;
	kv->lru_head = kv->lru_tail = NO_BLOCK;

	layer_bytes = block_bytes / 2 / (size_t) kv->n_layer * (size_t) kv->n_blocks;
	kv->k = kv_calloc(kv->n_layer, sizeof(void *), &ok);
	kv->v = kv_calloc(kv->n_layer, sizeof(void *), &ok);
	if (ok)
	{
		/*
		 * every layer's K and V in one allocation, in the backend's memory
		 * (a device's, so attention reads it where it computes)
		 */
		lg_error	aerr;

		kv->be = p->backend;
		kv->pool = p->backend ? lg_backend_alloc(p->backend, 2 * layer_bytes * kv->n_layer, &aerr)
			: calloc(2 * (size_t) kv->n_layer, layer_bytes ? layer_bytes : 1);
		if (kv->pool == NULL)
		{
			if (p->backend)
				lg_error_set(err, aerr.status, "the KV cache of %d blocks (%.1f MiB) does not fit on %s: %s",
							 kv->n_blocks, (double) block_bytes * kv->n_blocks / (1024.0 * 1024.0),
							 p->backend->name, aerr.msg);
			else
				lg_error_set(err, LG_ERR_NOMEM, "out of memory for a KV cache of %d blocks (%.1f MiB)",
							 kv->n_blocks, (double) block_bytes * kv->n_blocks / (1024.0 * 1024.0));
			lg_kv_cache_free(kv);
			return NULL;
		}
		for (int il = 0; il < kv->n_layer; il++)
		{
			kv->k[il] = (char *) kv->pool + (size_t) (2 * il) * layer_bytes;
			kv->v[il] = (char *) kv->pool + (size_t) (2 * il + 1) * layer_bytes;
		}
	}
	kv->ref = kv_calloc(kv->n_blocks, sizeof(int32_t), &ok);
	kv->free_list = kv_calloc(kv->n_blocks, sizeof(int32_t), &ok);
	kv->hashed = kv_calloc(kv->n_blocks, sizeof(bool), &ok);
	kv->hash = kv_calloc(kv->n_blocks, sizeof(uint64_t), &ok);
	kv->parent = kv_calloc(kv->n_blocks, sizeof(int32_t), &ok);
	kv->parent_gen = kv_calloc(kv->n_blocks, sizeof(uint32_t), &ok);
	kv->gen = kv_calloc(kv->n_blocks, sizeof(uint32_t), &ok);
	kv->chain = kv_calloc(kv->n_blocks, sizeof(int32_t), &ok);
	kv->lru_prev = kv_calloc(kv->n_blocks, sizeof(int32_t), &ok);
	kv->lru_next = kv_calloc(kv->n_blocks, sizeof(int32_t), &ok);
	if (kv->prefix_cache)
	{
		/* a power of two at least twice the blocks: chains stay short */
		while (n_buckets < 2 * (uint32_t) kv->n_blocks)
			n_buckets <<= 1;
		kv->bucket_mask = n_buckets - 1;
		kv->tokens = kv_calloc((size_t) kv->n_blocks * bs, sizeof(lg_token), &ok);
		kv->buckets = kv_calloc(n_buckets, sizeof(int32_t), &ok);
		for (uint32_t i = 0; ok && i < n_buckets; i++)
			kv->buckets[i] = NO_BLOCK;
	}
	if (!ok)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory for a KV cache of %d blocks (%.1f MiB)",
					 kv->n_blocks, (double) block_bytes * kv->n_blocks / (1024.0 * 1024.0));
		lg_kv_cache_free(kv);
		return NULL;
	}
	/* the stack pops block 0 first, so a lone sequence gets contiguous blocks */
	for (int32_t i = 0; i < kv->n_blocks; i++)
		kv->free_list[i] = kv->n_blocks - 1 - i;
	kv->n_free = kv->n_blocks;
	return kv;
}

void
lg_kv_cache_free(lg_kv_cache *kv)
{
	if (kv == NULL)
		return;
	if (kv->be)
		lg_backend_buf_free(kv->be, kv->pool);
	else
		free(kv->pool);
	free(kv->k);
	free(kv->v);
	free(kv->ref);
	free(kv->free_list);
	free(kv->hashed);
	free(kv->hash);
	free(kv->parent);
	free(kv->parent_gen);
	free(kv->gen);
	free(kv->tokens);
	free(kv->chain);
	free(kv->buckets);
	free(kv->lru_prev);
	free(kv->lru_next);
	free(kv);
}

void
lg_kv_cache_stats(const lg_kv_cache *kv, lg_kv_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->block_size = kv->block_size;
	out->n_blocks = kv->n_blocks;
	out->n_used = kv->n_used;
	out->n_cached = kv->n_cached;
	out->n_free = kv->n_free;
	out->prefix_lookup_tokens = kv->lookup_tokens;
	out->prefix_hit_tokens = kv->hit_tokens;
	out->evictions = kv->evictions;
}

int32_t
lg_kv_cache_block_size(const lg_kv_cache *kv)
{
	return kv->block_size;
}

lg_kv_type
lg_kv_cache_type(const lg_kv_cache *kv)
{
	return kv->type;
}

bool
lg_kv_cache_fits(const lg_kv_cache *kv, const struct lg_model *m)
{
	return kv->n_layer == m->hp.n_layer && kv->kv_dim == (int64_t) m->hp.n_head_kv * m->hp.head_dim;
}

int32_t
lg_kv_cache_available(const lg_kv_cache *kv)
{
	return kv->n_free + kv->n_cached;
}

void *
lg_kv_cache_k(lg_kv_cache *kv, int il)
{
	return il >= 0 && il < kv->n_layer ? kv->k[il] : NULL;
}

void *
lg_kv_cache_v(lg_kv_cache *kv, int il)
{
	return il >= 0 && il < kv->n_layer ? kv->v[il] : NULL;
}

void
lg_kv_cache_set_hash_fn(lg_kv_cache *kv, lg_kv_hash_fn fn)
{
	kv->hash_fn = fn ? fn : kv_hash_default;
}

/* ---- the LRU list of cached blocks ---- */

/* Append b (just unreferenced) as the most recently used. */
static void
lru_push(lg_kv_cache *kv, int32_t b)
{
	kv->lru_prev[b] = kv->lru_tail;
	kv->lru_next[b] = NO_BLOCK;
	if (kv->lru_tail != NO_BLOCK)
		kv->lru_next[kv->lru_tail] = b;
	else
		kv->lru_head = b;
	kv->lru_tail = b;
	kv->n_cached++;
}

/* Unlink b from the LRU list (it is referenced again or evicted). */
static void
lru_remove(lg_kv_cache *kv, int32_t b)
{
	int32_t		p = kv->lru_prev[b];
	int32_t		n = kv->lru_next[b];

	if (p != NO_BLOCK)
		kv->lru_next[p] = n;
	else
		kv->lru_head = n;
	if (n != NO_BLOCK)
		kv->lru_prev[n] = p;
	else
		kv->lru_tail = p;
	kv->n_cached--;
}

/* ---- the hash table ---- */

/* Bucket of a chain hash. */
static inline uint32_t
bucket_of(const lg_kv_cache *kv, uint64_t h)
{
	return (uint32_t) (h ^ (h >> 32)) & kv->bucket_mask;
}

/*
 * The hashed block whose key is (tokens, parent block at parent's current
 * generation), or NO_BLOCK.  h (the chain hash) only narrows the search.
 */
static int32_t
table_find(const lg_kv_cache *kv, uint64_t h, int32_t parent, const lg_token *tokens)
{
	for (int32_t b = kv->buckets[bucket_of(kv, h)]; b != NO_BLOCK; b = kv->chain[b])
	{
		if (kv->hash[b] != h || kv->parent[b] != parent)
			continue;
		if (parent != NO_BLOCK && (!kv->hashed[parent] || kv->parent_gen[b] != kv->gen[parent]))
			continue;
		if (memcmp(kv->tokens + (size_t) b * kv->block_size, tokens,
				   (size_t) kv->block_size * sizeof(lg_token)) == 0)
			return b;
	}
	return NO_BLOCK;
}

/* Key block b by (tokens, parent) under chain hash h. */
static void
table_insert(lg_kv_cache *kv, int32_t b, uint64_t h, int32_t parent, const lg_token *tokens)
{
	uint32_t	i = bucket_of(kv, h);

	kv->hashed[b] = true;
	kv->hash[b] = h;
	kv->parent[b] = parent;
	kv->parent_gen[b] = parent != NO_BLOCK ? kv->gen[parent] : 0;
	memcpy(kv->tokens + (size_t) b * kv->block_size, tokens, (size_t) kv->block_size * sizeof(lg_token));
	kv->chain[b] = kv->buckets[i];
	kv->buckets[i] = b;
}

/*
 * Take b out of the table.  Its generation changes, so blocks that named
 * it as their parent can no longer be found through it.
 */
static void
table_remove(lg_kv_cache *kv, int32_t b)
{
	int32_t    *link = &kv->buckets[bucket_of(kv, kv->hash[b])];

	while (*link != NO_BLOCK && *link != b)
		link = &kv->chain[*link];
	if (*link == b)
		*link = kv->chain[b];
	kv->hashed[b] = false;
	kv->gen[b]++;
}

/* ---- blocks ---- */

/* A referenced block for new data: a free one, else the LRU cached one. */
static int32_t
block_take(lg_kv_cache *kv)
{
	int32_t		b;

	if (kv->n_free > 0)
		b = kv->free_list[--kv->n_free];
	else
	{
		b = kv->lru_head;
		lru_remove(kv, b);
		table_remove(kv, b);
		kv->evictions++;
	}
	kv->ref[b] = 1;
	kv->n_used++;
	return b;
}

/* One more reference to b (a cached block comes off the LRU list). */
static void
block_ref(lg_kv_cache *kv, int32_t b)
{
	if (kv->ref[b]++ == 0)
	{
		lru_remove(kv, b);
		kv->n_used++;
	}
}

/* Drop a reference: an unreferenced hashed block is cached, any other freed. */
static void
block_unref(lg_kv_cache *kv, int32_t b)
{
	if (--kv->ref[b] > 0)
		return;
	kv->n_used--;
	if (kv->hashed[b])
		lru_push(kv, b);
	else
		kv->free_list[kv->n_free++] = b;
}

void
lg_kv_cache_clear_prefix(lg_kv_cache *kv)
{
	while (kv->lru_head != NO_BLOCK)
	{
		int32_t		b = kv->lru_head;

		lru_remove(kv, b);
		table_remove(kv, b);
		kv->free_list[kv->n_free++] = b;
	}
}

/* ---- sequences ---- */

void
lg_kv_seq_init(lg_kv_seq *s)
{
	memset(s, 0, sizeof(*s));
}

int32_t
lg_kv_seq_blocks_needed(const lg_kv_cache *kv, const lg_kv_seq *s, int32_t n_pos)
{
	int64_t		want = ((int64_t) n_pos + kv->block_size - 1) / kv->block_size;

	return want > s->n_blocks ? (int32_t) (want - s->n_blocks) : 0;
}

/* Make s's table hold n entries; false when it cannot grow. */
static bool
seq_grow(lg_kv_seq *s, int32_t n)
{
	int32_t		cap = s->cap > 0 ? s->cap : 8;
	int32_t    *p;

	if (n <= s->cap)
		return true;
	while (cap < n)
		cap = cap > INT32_MAX / 2 ? n : cap * 2;
	p = realloc(s->blocks, (size_t) cap * sizeof(int32_t));
	if (p == NULL)
		return false;
	s->blocks = p;
	s->cap = cap;
	return true;
}

int32_t
lg_kv_seq_reuse_prefix(lg_kv_cache *kv, lg_kv_seq *s, const lg_token *tokens, int32_t n)
{
	const int32_t bs = kv->block_size;
	/* whole blocks that still leave the last token to evaluate */
	const int32_t max_blocks = n > 0 ? (n - 1) / bs : 0;
	int32_t		parent = NO_BLOCK;
	uint64_t	h = 0;
	int32_t		j;

	if (!kv->prefix_cache || s->n_blocks != 0 || s->n_pos != 0 || n <= 0)
		return 0;
	kv->lookup_tokens += n;
	if (max_blocks == 0 || !seq_grow(s, max_blocks))
		return 0;
	for (j = 0; j < max_blocks; j++)
	{
		const lg_token *bt = tokens + (size_t) j * bs;
		uint64_t	hj = kv->hash_fn(h, bt, bs);
		int32_t		b = table_find(kv, hj, parent, bt);

		if (b == NO_BLOCK)
			break;
		block_ref(kv, b);
		s->blocks[j] = b;
		parent = b;
		h = hj;
	}
	s->n_blocks = j;
	s->n_hashed = j;
	s->n_pos = j * bs;
	s->hash = h;
	kv->hit_tokens += s->n_pos;
	return s->n_pos;
}

lg_status
lg_kv_seq_reserve(lg_kv_cache *kv, lg_kv_seq *s, int32_t n_pos, lg_error *err)
{
	int32_t		need;

	if (n_pos < 0)
		return lg_error_set(err, LG_ERR_ARG, "cannot reserve %d positions", n_pos);
	need = lg_kv_seq_blocks_needed(kv, s, n_pos);
	if (need == 0)
		return LG_OK;
	if (need > kv->n_free + kv->n_cached)
		return lg_error_set(err, LG_ERR_BUSY, "KV cache full: %d blocks needed, %d available",
							need, kv->n_free + kv->n_cached);
	if (!seq_grow(s, s->n_blocks + need))
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory for a block table of %d blocks",
							s->n_blocks + need);
	for (int32_t i = 0; i < need; i++)
		s->blocks[s->n_blocks++] = block_take(kv);
	return LG_OK;
}

void
lg_kv_seq_commit(lg_kv_cache *kv, lg_kv_seq *s, const lg_token *tokens)
{
	const int32_t bs = kv->block_size;

	if (!kv->prefix_cache)
		return;
	while ((int64_t) (s->n_hashed + 1) * bs <= s->n_pos && s->n_hashed < s->n_blocks)
	{
		const int32_t j = s->n_hashed;
		const lg_token *bt = tokens + (size_t) j * bs;
		const int32_t parent = j > 0 ? s->blocks[j - 1] : NO_BLOCK;
		uint64_t	h = kv->hash_fn(s->hash, bt, bs);
		int32_t		b = table_find(kv, h, parent, bt);

		if (b == NO_BLOCK)
			table_insert(kv, s->blocks[j], h, parent, bt);
		else if (b != s->blocks[j])
		{
			/*
			 * Another sequence computed the same prefix meanwhile: share
			 * its block and give ours back (unhashed, so it is freed), so
			 * the cache keeps one copy and later blocks chain to it.
			 */
			block_ref(kv, b);
			block_unref(kv, s->blocks[j]);
			s->blocks[j] = b;
		}
		s->n_hashed++;
		s->hash = h;
	}
}

void
lg_kv_seq_release(lg_kv_cache *kv, lg_kv_seq *s)
{
	/* last block first: the LRU list then evicts a prefix's tail before its head */
	for (int32_t j = s->n_blocks - 1; j >= 0; j--)
		block_unref(kv, s->blocks[j]);
	free(s->blocks);
	lg_kv_seq_init(s);
}
